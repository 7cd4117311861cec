//! Service networking with real traffic between pods on different hosts: two `maestro agent`s
//! in network namespaces of their own (`maestro_e2e::hosts`), each with its pod bridge, its
//! nftables proxy and its cluster DNS server. Pods resolve Services by name from inside, a
//! ClusterIP spreads requests over the endpoints of both nodes and stops sending to one that
//! turns unready, ClientIP affinity pins a client, a NodePort answers on each node's address
//! from the node itself and from outside, and NetworkPolicies enforce the seed's audit rule (the
//! database may not reach the frontend) while the allowed connections go on.
//!
//! Needs root, runc, nsenter, iproute2, nftables, curl and the test packages; everything is
//! removed on drop (the namespaces take the nodes' tables and routes with them).

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use maestro_e2e::eventually;
use maestro_e2e::hosts::HostCluster;
use serde_json::Value;

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
         labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: IMAGE
        args: ["serve", "8080", "--unready-file", "/tmp/unready"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 1, failureThreshold: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-pods}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {role: client}}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: node-1}
  containers:
  - {name: client, image: IMAGE, args: ["serve", "8080"]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {role: db}}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: node-2}
  containers:
  - {name: db, image: IMAGE, args: ["serve", "5432"], ports: [{name: db, containerPort: 5432}]}
"#;

/// The client pod as a second backend, and an Ingress routing by host and path with TLS.
const INGRESS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: client}
spec:
  selector: {role: client}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  tls: [{hosts: [shop.example.test], secretName: shop-tls}]
  rules:
  - host: shop.example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {path: /hostname, pathType: Exact, backend: {service: {name: client, port: {number: 8080}}}}
"#;

/// The audit's rules: the database may not open connections to the frontend, and only the
/// client may open connections to the database, on its named port.
const AUDIT: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-not-to-frontend}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [web]}]}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-client}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: db}]
"#;

/// Hostnames answering `count` requests to `url` made from inside the client pod.
fn hits(nodes: &HostCluster, url: &str, count: usize) -> Vec<String> {
    hits_from(nodes, "client", url, count)
}

/// Hostnames answering `count` requests to `url` made from inside `pod` (`FAILED` for each
/// request that got no answer within 5 s).
fn hits_from(nodes: &HostCluster, pod: &str, url: &str, count: usize) -> Vec<String> {
    let script =
        format!("for i in $(seq {count}); do timeout 5 wget -q -O - {url} || echo FAILED; done");
    let out = nodes.cluster.ok(&["exec", pod, "--", "sh", "-c", &script]);
    out.lines().map(str::to_string).collect()
}

/// Whether one request from `pod` to `url` is answered.
fn reaches(nodes: &HostCluster, pod: &str, url: &str) -> bool {
    hits_from(nodes, pod, url, 1) != ["FAILED"]
}

fn pods(nodes: &HostCluster) -> Vec<Value> {
    nodes.live_pods("app=web")
}

fn pod_ip(pod: &Value) -> String {
    pod["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Whether the EndpointSlices of `web` list this address as ready.
fn endpoint_ready(nodes: &HostCluster, ip: &str) -> Option<bool> {
    let slices = nodes.cluster.json(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "json",
    ]);
    slices["items"]
        .as_array()?
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .find(|e| e["addresses"][0] == ip)
        .map(|e| e["conditions"]["ready"] == true)
}

fn curl(netns: Option<&str>, url: &str) -> String {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg("curl");
            c
        }
        None => Command::new("curl"),
    };
    let out = cmd.args(["-s", "-m", "5", url]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn services_dns_and_node_ports_across_hosts() {
    let nodes = HostCluster::start(env!("CARGO_BIN_EXE_maestro"), 2, &[]);
    nodes.apply(APP);
    nodes.rollout("web");
    nodes.cluster.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "--timeout=60s",
    ]);
    let web = pods(&nodes);
    let hosts_used: BTreeSet<&str> = web
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str())
        .collect();
    assert_eq!(
        hosts_used.len(),
        2,
        "spread over both nodes:\n{}",
        nodes.debug()
    );
    let names: BTreeSet<String> = web
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();

    // Cluster DNS from inside a pod: resolv.conf points at kube-dns, which the node answers.
    let dns_ip = nodes.cluster.ok(&[
        "get",
        "svc",
        "-n",
        "kube-system",
        "kube-dns",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let resolv = nodes
        .cluster
        .ok(&["exec", "client", "--", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains(&format!("nameserver {dns_ip}")), "{resolv}");
    assert!(resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local"));
    let web_ip = nodes
        .cluster
        .ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let lookup = nodes.cluster.ok(&[
        "exec",
        "client",
        "--",
        "nslookup",
        "web.default.svc.cluster.local",
    ]);
    assert!(lookup.contains(&web_ip), "{lookup}");
    let missing = nodes.cluster.run(&[
        "exec",
        "client",
        "--",
        "nslookup",
        "nothing.default.svc.cluster.local",
    ]);
    assert!(
        !missing.status.success(),
        "an unknown name does not resolve"
    );

    // Pod to pod across nodes, directly.
    let remote = web
        .iter()
        .find(|p| p["spec"]["nodeName"] == "node-2")
        .expect("a web pod on node-2");
    let direct = hits(&nodes, &format!("http://{}:8080/", pod_ip(remote)), 1);
    assert_eq!(direct, [remote["metadata"]["name"].as_str().unwrap()]);

    // The ClusterIP, by short name: every endpoint on both nodes answers.
    let answered: BTreeSet<String> = hits(&nodes, "http://web/", 40).into_iter().collect();
    assert_eq!(answered, names, "40 requests through the Service");

    // An endpoint that turns unready leaves the rotation.
    let leaving = &web[0];
    let leaving_name = leaving["metadata"]["name"].as_str().unwrap();
    nodes
        .cluster
        .ok(&["exec", leaving_name, "--", "touch", "/tmp/unready"]);
    assert!(
        eventually(Duration::from_secs(20), || endpoint_ready(
            &nodes,
            &pod_ip(leaving)
        ) == Some(false)),
        "the endpoint of {leaving_name} did not turn unready"
    );
    // The nodes apply the change within a second of seeing it.
    std::thread::sleep(Duration::from_secs(1));
    let after = hits(&nodes, "http://web/", 30);
    assert!(
        !after.iter().any(|h| h == leaving_name || h == "FAILED"),
        "requests after {leaving_name} turned unready: {after:?}"
    );

    // ClientIP affinity: one client, one endpoint.
    nodes.cluster.ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"sessionAffinity":"ClientIP"}}"#,
    ]);
    std::thread::sleep(Duration::from_secs(1));
    let pinned: BTreeSet<String> = hits(&nodes, "http://web/", 10).into_iter().collect();
    assert_eq!(pinned.len(), 1, "affinity: {pinned:?}");

    // NodePort: on each node's address, from the node itself and from outside the nodes.
    let node_port = nodes.cluster.ok(&[
        "get",
        "svc",
        "web-np",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let port: u16 = node_port.trim().parse().expect("an allocated node port");
    assert!((30000..=32767).contains(&port));
    for host in &nodes.hosts.hosts {
        let url = format!("http://{}:{port}/", host.ip);
        let inside = curl(Some(&host.netns), &url);
        assert!(
            names.contains(&inside),
            "{url} from {}: {inside:?}",
            host.name
        );
        let outside = curl(None, &url);
        assert!(names.contains(&outside), "{url} from outside: {outside:?}");
    }
    // LoadBalancer: an address from the pool, answered by one node, reached from outside.
    nodes.cluster.ok(&[
        "expose",
        "deployment",
        "web",
        "--name",
        "web-lb",
        "--type",
        "LoadBalancer",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let lb_ip = || {
        nodes.cluster.ok(&[
            "get",
            "svc",
            "web-lb",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ])
    };
    assert!(
        eventually(Duration::from_secs(10), || !lb_ip().trim().is_empty()),
        "no LoadBalancer address:\n{}",
        nodes.cluster.ok(&["get", "svc", "web-lb", "-o", "yaml"])
    );
    let lb = lb_ip().trim().to_string();
    assert!(lb.ends_with(".200"), "the pool's first address: {lb}");
    let via_lb = format!("http://{lb}/");
    assert!(
        eventually(Duration::from_secs(10), || names
            .contains(&curl(None, &via_lb))),
        "{via_lb} from outside: {:?}",
        curl(None, &via_lb)
    );
    nodes.cluster.ok(&["delete", "svc", "web-lb"]);
    assert!(
        eventually(Duration::from_secs(10), || curl(None, &via_lb).is_empty()),
        "{via_lb} still answers after the Service went"
    );

    // A node port nobody holds is refused, not forwarded.
    let closed = curl(
        Some(&nodes.hosts.hosts[0].netns),
        &format!(
            "http://{}:{}/",
            nodes.hosts.hosts[0].ip,
            if port == 30000 { 30001 } else { 30000 }
        ),
    );
    assert!(closed.is_empty());

    // Ingress: by host and path, over HTTP and HTTPS (SNI), on every node's address.
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["shop.example.test".into()]).unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    nodes.cluster.ok(&[
        "create",
        "secret",
        "tls",
        "shop-tls",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    nodes.apply(INGRESS);
    let class = nodes
        .cluster
        .ok(&["get", "ingressclass", "maestro", "-o", "name"]);
    assert_eq!(class.trim(), "ingressclass.networking.k8s.io/maestro");
    let through_ingress = |scheme: &str, host: &str, node: &str, path: &str| {
        let port = if scheme == "https" { 443 } else { 80 };
        let out = Command::new("curl")
            .args(["-s", "-m", "5", "--cacert", cert.to_str().unwrap()])
            .args(["--resolve", &format!("{host}:{port}:{node}")])
            .args(["-o", "-", "-w", " %{http_code}"])
            .arg(format!("{scheme}://{host}{path}"))
            .output()
            .unwrap();
        // "<body> <status>", the body on one line.
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    for host in &nodes.hosts.hosts {
        let node = host.ip.to_string();
        assert!(
            eventually(Duration::from_secs(10), || {
                through_ingress("http", "shop.example.test", &node, "/hostname") == "client 200"
            }),
            "the Ingress did not route /hostname on {node}: {:?}",
            through_ingress("http", "shop.example.test", &node, "/hostname")
        );
        let page = through_ingress("https", "shop.example.test", &node, "/");
        let (name, code) = page.split_once(' ').unwrap_or_default();
        assert!(
            names.contains(name) && code == "200",
            "https / on {node}: {page:?}"
        );
        assert_eq!(
            through_ingress("http", "other.example.test", &node, "/"),
            "default backend - 404 404"
        );
    }

    // The ingress counts what it served, on its metrics port.
    let metrics = curl(
        None,
        &format!("http://{}:10254/metrics", nodes.hosts.hosts[0].ip),
    );
    assert!(
        metrics.lines().any(
            |l| l.starts_with("maestro_ingress_responses_total{class=\"2xx\"}")
                && !l.ends_with(" 0")
        ),
        "{metrics}"
    );

    // The audit: once the policies are in, the database cannot reach the frontend (through the
    // Service or directly) but still reaches the client; only the client reaches the database.
    let db_ip = nodes
        .cluster
        .ok(&["get", "pod", "db", "-o", "jsonpath={.status.podIP}"]);
    let client_ip = nodes
        .cluster
        .ok(&["get", "pod", "client", "-o", "jsonpath={.status.podIP}"]);
    let frontend = web
        .iter()
        .find(|p| p["metadata"]["name"] != leaving["metadata"]["name"])
        .unwrap();
    let frontend_url = format!("http://{}:8080/", pod_ip(frontend));
    let db_url = format!("http://{db_ip}:5432/");
    assert!(reaches(&nodes, "db", "http://web.default/"));
    assert!(reaches(
        &nodes,
        frontend["metadata"]["name"].as_str().unwrap(),
        &db_url
    ));
    nodes.apply(AUDIT);
    assert!(
        eventually(Duration::from_secs(10), || !reaches(
            &nodes,
            "db",
            &frontend_url
        )),
        "the database still reaches the frontend at {frontend_url}"
    );
    assert!(
        !reaches(&nodes, "db", "http://web.default/"),
        "nor through the Service"
    );
    assert!(
        reaches(&nodes, "db", &format!("http://{client_ip}:8080/")),
        "egress elsewhere is allowed"
    );
    assert!(reaches(&nodes, "client", &db_url), "the client is let in");
    assert!(
        !reaches(
            &nodes,
            frontend["metadata"]["name"].as_str().unwrap(),
            &db_url
        ),
        "the frontend is kept out of the database"
    );
    assert!(
        reaches(&nodes, "client", "http://web/"),
        "the frontend is not isolated"
    );
    // Removing a policy lifts its rule.
    nodes
        .cluster
        .ok(&["delete", "networkpolicy", "db-not-to-frontend"]);
    assert!(
        eventually(Duration::from_secs(10), || reaches(
            &nodes,
            "db",
            &frontend_url
        )),
        "the database is still cut off after the policy went"
    );
}

/// Two nodes on different subnets, routed to each other but sharing no link: their pods reach
/// each other, directly and through a Service, over the VXLAN overlay.
#[test]
fn pods_on_nodes_without_a_shared_link_talk_over_the_overlay() {
    let nodes = HostCluster::start_split(env!("CARGO_BIN_EXE_maestro"), 2, &[], true);
    nodes.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: far, labels: {app: far}}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: node-2}
  containers: [{name: far, image: IMAGE, args: ["serve", "8080"]}]
---
apiVersion: v1
kind: Service
metadata: {name: far}
spec:
  selector: {app: far}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: node-1}
  containers: [{name: client, image: IMAGE, args: ["sleep", "forever"]}]
"#,
    );
    let waited = nodes.cluster.run(&[
        "wait",
        "--for=condition=Ready",
        "pod/far",
        "pod/client",
        "--timeout=60s",
    ]);
    assert!(
        waited.status.success(),
        "pods not Ready:\n{}\n{}\n--- node-2 agent ---\n{}",
        nodes.debug(),
        nodes.cluster.ok(&["describe", "pods"]),
        maestro_e2e::tail(&nodes.hosts.hosts[1].log(), 40)
    );
    let far_ip = nodes
        .cluster
        .ok(&["get", "pod", "far", "-o", "jsonpath={.status.podIP}"]);
    assert_eq!(
        hits(&nodes, &format!("http://{far_ip}:8080/"), 1),
        ["far"],
        "pod to pod across the overlay"
    );
    assert_eq!(hits(&nodes, "http://far/", 3), ["far", "far", "far"]);
    // The route on node-1 goes through the tunnel, not the gateway between the subnets.
    let host = &nodes.hosts.hosts[0];
    let routes = maestro_e2e::run(Command::new("ip").args(["-n", &host.netns, "route"])).unwrap();
    assert!(
        routes
            .lines()
            .any(|l| l.contains("dev maestro.vxlan") && l.contains("proto 77")),
        "{routes}"
    );
}
