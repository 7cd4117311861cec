//! Pods on a real node: `maestro server` with its embedded agent runs pods from a private
//! registry on 127.0.0.1 as runc containers, driven by kubectl. The image carries the static
//! checker (`bins/maestro-checker`), which asserts from inside the container what the agent was
//! asked to set up, serves HTTP for the probes and allocates memory for the OOM case.
//!
//! Needs root and the test packages (runc, docker-registry, umoci, skopeo, busybox-static).
//! Every node is isolated (own run dir, cgroup root, bridge, pod CIDR) and cleaned up on drop.

use std::path::Path;
use std::time::Duration;

use maestro_e2e::registry::{Registry, RegistryAuth};
use maestro_e2e::{Cluster, Kubectl, checker, eventually};
use serde_json::Value;

/// A node cluster plus the registry holding the checker image.
struct Node {
    cluster: Cluster,
    _registry: Registry,
    image: String,
}

fn node() -> Node {
    let cluster = Cluster::start_node(env!("CARGO_BIN_EXE_maestro"), Kubectl::v1_33(), &[]);
    let registry =
        Registry::start(&cluster.dir.path().join("registry"), &RegistryAuth::None).unwrap();
    let image = checker::image()
        .unwrap()
        .build(&cluster.dir.path().join("layout"), "1")
        .unwrap();
    let image = registry.push_image(&image, "checker:1").unwrap();
    assert!(
        eventually(Duration::from_secs(20), || cluster
            .run(&["get", "node", "-o", "jsonpath={.items[0].spec.podCIDR}"])
            .stdout
            .starts_with(b"10.")),
        "the node did not register:\n{}",
        cluster.log()
    );
    Node {
        cluster,
        _registry: registry,
        image,
    }
}

impl Node {
    fn apply(&self, yaml: &str) {
        self.cluster.ok_stdin(
            &["apply", "-f", "-"],
            Some(&yaml.replace("IMAGE", &self.image)),
        );
    }

    fn pod(&self, name: &str) -> Value {
        self.cluster.json(&["get", "pod", name])
    }

    fn container_status(&self, pod: &str, index: usize) -> Value {
        self.pod(pod)["status"]["containerStatuses"][index].clone()
    }

    /// Waits until `check` holds for the pod, or fails with the pod, its events and the log.
    #[track_caller]
    fn wait_for(&self, pod: &str, what: &str, limit: Duration, check: impl Fn(&Value) -> bool) {
        let ok = eventually(limit, || {
            let out = self.cluster.run(&["get", "pod", pod, "-o", "json"]);
            out.status.success()
                && serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|p| check(&p))
        });
        if !ok {
            let described = self.cluster.run(&["describe", "pod", pod]);
            panic!(
                "pod {pod}: {what} did not happen within {limit:?}\n{}\n--- server log tail ---\n{}",
                String::from_utf8_lossy(&described.stdout),
                tail(&self.cluster.log(), 60)
            );
        }
    }

    /// Column `index` of `kubectl get pod` (1: READY, 2: STATUS).
    fn column(&self, pod: &str, index: usize) -> String {
        let out = self.cluster.ok(&["get", "pod", pod, "--no-headers"]);
        out.split_whitespace()
            .nth(index)
            .unwrap_or_default()
            .to_string()
    }

    fn status_column(&self, pod: &str) -> String {
        self.column(pod, 2)
    }

    fn ready_column(&self, pod: &str) -> String {
        self.column(pod, 1)
    }

    fn events(&self, pod: &str) -> String {
        self.cluster.ok(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod}"),
            "-o",
            "custom-columns=REASON:.reason,MESSAGE:.message",
        ])
    }

    /// The runtime id of a container from its status (`runc://<id>`).
    fn container_id(&self, pod: &str, index: usize) -> String {
        self.container_status(pod, index)["containerID"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("runc://")
            .to_string()
    }

    fn sandbox(&self) -> &maestro_e2e::node::NodeSandbox {
        self.cluster.node.as_ref().expect("a node cluster")
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|cs| cs.iter().all(|c| c["state"].get("running").is_some()))
}

/// The issue's "done when", on one node: a pod from the local registry runs via kubectl apply;
/// logs (also followed) and exec -it work; a killed main process is restarted with back-off; a
/// memory hog shows OOMKilled; a failing liveness probe restarts its container; an unready pod
/// shows READY 0/1; restarting the agent restarts no healthy container; deleting pods leaves
/// nothing behind.
#[test]
fn pods_run_restart_and_clean_up() {
    let node = node();
    let c = &node.cluster;

    node.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: IMAGE
    args: ["serve", "8080"]
    ports: [{containerPort: 8080, name: http}]
    readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 1}
"#,
    );
    node.wait_for("web", "Running and ready", Duration::from_secs(60), |p| {
        running(p) && p["status"]["containerStatuses"][0]["ready"] == true
    });
    assert_eq!(node.ready_column("web"), "1/1");
    let pod = node.pod("web");
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10."), "{ip}");
    assert_eq!(pod["status"]["qosClass"], "BestEffort");
    let events = node.events("web");
    for reason in ["Scheduled", "Pulling", "Pulled", "Created", "Started"] {
        assert!(events.contains(reason), "no {reason} event:\n{events}");
    }

    // The pod's port is reachable from the node; its requests show up in the logs.
    let body = std::process::Command::new("timeout")
        .args([
            "5",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{ip}:8080/"),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&body.stdout).contains("web"),
        "{body:?}"
    );
    assert!(eventually(Duration::from_secs(5), || c
        .ok(&["logs", "web"])
        .contains("GET /")));
    let tail_one = c.ok(&["logs", "web", "--tail", "1", "--timestamps"]);
    assert_eq!(tail_one.lines().count(), 1, "{tail_one}");
    assert!(tail_one.starts_with("20"), "{tail_one}");
    // `logs -f` streams until stopped.
    let mut follow = std::process::Command::new(&c.kubectl.path)
        .env("KUBECONFIG", c.kubeconfig())
        .args(["logs", "-f", "web"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let _ = std::process::Command::new("timeout")
        .args([
            "5",
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{ip}:8080/followed"),
        ])
        .output();
    std::thread::sleep(Duration::from_millis(800));
    follow.kill().unwrap();
    let followed = follow.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&followed.stdout).contains("/followed"),
        "{}",
        String::from_utf8_lossy(&followed.stdout)
    );

    // exec, plain and with a terminal (kubectl -it under `script` for a pty).
    let out = c.ok(&["exec", "web", "--", "sh", "-c", "echo $((6*7)); hostname"]);
    assert_eq!(out, "42\nweb\n");
    let failed = c.run(&["exec", "web", "--", "sh", "-c", "exit 3"]);
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    let interactive = std::process::Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(format!(
            "KUBECONFIG={} {} exec -it web -- sh -c 'tty; echo $((7*6))'",
            c.kubeconfig().display(),
            c.kubectl.path.display()
        ))
        .arg("/dev/null")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&interactive.stdout);
    assert!(
        text.contains("/dev/pts/") && text.contains("42"),
        "exec -it: {text} {}",
        String::from_utf8_lossy(&interactive.stderr)
    );

    // Killing the main process: restarted right away, then with back-off.
    let first_id = node.container_id("web", 0);
    let pid = node
        .sandbox()
        .container_pid(&first_id)
        .expect("container pid");
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    node.wait_for("web", "the first restart", Duration::from_secs(20), |p| {
        running(p) && p["status"]["containerStatuses"][0]["restartCount"] == 1
    });
    let status = node.container_status("web", 0);
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 137);
    assert_eq!(status["lastState"]["terminated"]["reason"], "Error");
    let previous = c.ok(&["logs", "web", "--previous"]);
    assert!(previous.contains("GET /"), "{previous}");
    let second_id = node.container_id("web", 0);
    assert_ne!(first_id, second_id);
    let pid = node.sandbox().container_pid(&second_id).unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    node.wait_for("web", "CrashLoopBackOff", Duration::from_secs(10), |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    let waiting = node.container_status("web", 0)["state"]["waiting"]["message"].clone();
    assert!(
        waiting
            .as_str()
            .unwrap()
            .starts_with("back-off 10s restarting failed container=web pod=web_default("),
        "{waiting}"
    );
    assert_eq!(node.status_column("web"), "CrashLoopBackOff");
    assert!(node.events("web").contains("BackOff"));
    node.wait_for(
        "web",
        "the restart after 10s",
        Duration::from_secs(25),
        |p| running(p) && p["status"]["containerStatuses"][0]["restartCount"] == 2,
    );

    // A memory hog is OOM-killed; a failing liveness probe restarts; unready shows 0/1.
    node.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: IMAGE
    args: ["hog", "256Mi"]
    resources: {limits: {memory: 32Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: liveness}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: IMAGE
    args: ["serve", "8080", "--healthy-for", "2"]
    livenessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1, failureThreshold: 2}
---
apiVersion: v1
kind: Pod
metadata: {name: unready}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: IMAGE
    args: ["serve", "8080", "--unready-file", "/tmp"]
    readinessProbe: {httpGet: {path: /readyz, port: 8080}, periodSeconds: 1}
"#,
    );
    node.wait_for("hog", "OOMKilled", Duration::from_secs(60), |p| {
        p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "OOMKilled"
    });
    assert_eq!(node.status_column("hog"), "OOMKilled");
    assert_eq!(node.pod("hog")["status"]["phase"], "Failed");
    assert_eq!(
        node.container_status("hog", 0)["state"]["terminated"]["exitCode"],
        137
    );
    node.wait_for(
        "liveness",
        "a liveness restart",
        Duration::from_secs(60),
        |p| {
            p["status"]["containerStatuses"][0]["restartCount"]
                .as_u64()
                .is_some_and(|n| n >= 1)
        },
    );
    let events = node.events("liveness");
    assert!(
        events.contains("Liveness probe failed: HTTP probe failed with statuscode: 503")
            && events.contains("Container app failed liveness probe, will be restarted"),
        "{events}"
    );
    node.wait_for("unready", "Running", Duration::from_secs(30), running);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(node.ready_column("unready"), "0/1");
    let conditions = node.pod("unready")["status"]["conditions"].clone();
    let ready = conditions
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ContainersNotReady");

    // Restarting the agent (the whole server, kill -9) restarts no healthy container.
    let web_before = node.container_status("web", 0);
    let unready_before = node.container_status("unready", 0);
    let mut cluster = node;
    cluster.cluster.restart();
    std::thread::sleep(Duration::from_secs(4));
    let node = cluster;
    let web_after = node.container_status("web", 0);
    assert_eq!(web_after["containerID"], web_before["containerID"]);
    assert_eq!(web_after["restartCount"], web_before["restartCount"]);
    assert_eq!(
        web_after["state"]["running"]["startedAt"],
        web_before["state"]["running"]["startedAt"]
    );
    assert_eq!(
        node.container_status("unready", 0)["containerID"],
        unready_before["containerID"]
    );
    assert_eq!(node.ready_column("web"), "1/1");
    let out = node
        .cluster
        .ok(&["exec", "web", "--", "echo", "still here"]);
    assert_eq!(out, "still here\n");

    // Deleting the pods leaves no container, mount, cgroup or veth behind.
    node.cluster.ok(&[
        "delete",
        "pod",
        "web",
        "hog",
        "liveness",
        "unready",
        "--wait=true",
    ]);
    let sandbox = node.sandbox();
    assert!(
        sandbox.containers().is_empty(),
        "{:?}",
        sandbox.containers()
    );
    let pod_cgroups: Vec<_> = sandbox
        .cgroups()
        .into_iter()
        .filter(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("pod"))
        })
        .collect();
    assert!(pod_cgroups.is_empty(), "{pod_cgroups:?}");
    let mounts = sandbox.mounts();
    assert!(
        mounts.iter().all(|m| !m.contains("/pods/")),
        "mounts left: {mounts:?}"
    );
    let links = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", &sandbox.bridge])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&links.stdout).trim().is_empty(),
        "veths left on the bridge: {}",
        String::from_utf8_lossy(&links.stdout)
    );
}

/// What the container sees, asserted from inside by the checker: env from configMaps, secrets
/// and the downward API, identity, hostname, limits, volumes; configMap updates reach the
/// mounted files; bad input gives kubectl's reasons and events.
#[test]
fn containers_get_what_the_spec_asks_and_bad_input_is_reported() {
    let node = node();
    let c = &node.cluster;
    node.apply(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: blue, greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: checked, labels: {app: checked}}
spec:
  restartPolicy: Never
  hostname: box
  securityContext: {runAsUser: 1000, runAsGroup: 1000, supplementalGroups: [2000]}
  volumes:
  - {name: config, configMap: {name: settings}}
  - {name: secret, secret: {secretName: creds}}
  - {name: scratch, emptyDir: {}}
  - {name: ram, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  - name: info
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  containers:
  - name: check
    image: IMAGE
    env:
    - {name: MODE, valueFrom: {configMapKeyRef: {name: settings, key: mode}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: creds, key: password}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: COMBINED, value: "$(MODE)-$(POD_NAME)"}
    envFrom: [{configMapRef: {name: settings}, prefix: CFG_}]
    resources: {limits: {cpu: 500m, memory: 64Mi}}
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
    volumeMounts:
    - {name: config, mountPath: /etc/config}
    - {name: secret, mountPath: /etc/secret}
    - {name: scratch, mountPath: /scratch}
    - {name: ram, mountPath: /ram}
    - {name: info, mountPath: /etc/info}
    args: ["env", "MODE=blue", "env", "PASSWORD=s3cret", "env", "POD_NAME=checked",
           "env", "MEM=64", "env", "COMBINED=blue-checked", "env", "CFG_greeting=hello",
           "hostname", "box", "uid", "1000", "gid", "1000", "groups", "2000",
           "memory-limit", "64Mi", "cpu-quota", "50000/100000",
           "file", "/etc/config/mode=blue", "file", "/etc/secret/password=s3cret",
           "mount-ro", "/etc/config", "mount-ro", "/etc/secret", "writable", "/scratch",
           "mount-type", "/ram=tmpfs", "file-contains", "/etc/info/labels=app=\"checked\"",
           "file-contains", "/etc/hosts=box", "no-new-privs", "1", "cap-absent", "NET_RAW",
           "exists", "/var/run/secrets/kubernetes.io/serviceaccount/token"]
"#,
    );
    node.wait_for("checked", "completion", Duration::from_secs(60), |p| {
        matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    });
    let logs = c.ok(&["logs", "checked"]);
    assert!(
        node.pod("checked")["status"]["phase"] == "Succeeded",
        "the checker failed:\n{logs}"
    );
    assert!(logs.contains("checks passed"), "{logs}");
    assert_eq!(node.status_column("checked"), "Completed");

    // A configMap change reaches the mounted file of a running pod.
    node.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: watcher}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: config, configMap: {name: settings}}]
  containers:
  - name: app
    image: IMAGE
    args: ["sleep", "forever"]
    volumeMounts: [{name: config, mountPath: /etc/config}]
"#,
    );
    node.wait_for("watcher", "Running", Duration::from_secs(60), running);
    assert_eq!(
        c.ok(&["exec", "watcher", "--", "cat", "/etc/config/mode"]),
        "blue"
    );
    c.ok(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"mode":"green"}}"#,
    ]);
    assert!(
        eventually(Duration::from_secs(30), || c
            .run(&["exec", "watcher", "--", "cat", "/etc/config/mode"])
            .stdout
            == b"green"),
        "the mounted configMap was not updated"
    );

    // Bad input: each pod gets kubectl's reason and an event; the node carries on.
    node.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: no-image}
spec:
  containers: [{name: app, image: "REGISTRY/missing:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: bad-command}
spec:
  containers: [{name: app, image: IMAGE, command: ["/no/such/binary"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: no-config}
spec:
  containers:
  - name: app
    image: IMAGE
    env: [{name: X, valueFrom: {configMapKeyRef: {name: absent, key: k}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: root-refused}
spec:
  securityContext: {runAsNonRoot: true}
  containers: [{name: app, image: IMAGE, args: ["sleep", "forever"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: no-volume}
spec:
  volumes: [{name: v, configMap: {name: absent}}]
  containers: [{name: app, image: IMAGE, volumeMounts: [{name: v, mountPath: /v}]}]
"#
        .replace("REGISTRY", node.image.split('/').next().unwrap_or_default())
        .as_str(),
    );
    let waiting_reason = |p: &Value| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    node.wait_for("no-image", "ErrImagePull", Duration::from_secs(30), |p| {
        matches!(
            waiting_reason(p).as_str(),
            "ErrImagePull" | "ImagePullBackOff"
        )
    });
    assert!(node.events("no-image").contains("Failed to pull image"));
    node.wait_for(
        "bad-command",
        "a start error",
        Duration::from_secs(30),
        |p| {
            let s = &p["status"]["containerStatuses"][0];
            s["lastState"]["terminated"]["reason"] == "StartError"
                || s["state"]["terminated"]["reason"] == "StartError"
        },
    );
    node.wait_for(
        "no-config",
        "CreateContainerConfigError",
        Duration::from_secs(30),
        |p| waiting_reason(p) == "CreateContainerConfigError",
    );
    let message = node.container_status("no-config", 0)["state"]["waiting"]["message"].clone();
    assert_eq!(message, "configmap \"absent\" not found");
    node.wait_for(
        "root-refused",
        "CreateContainerConfigError",
        Duration::from_secs(30),
        |p| waiting_reason(p) == "CreateContainerConfigError",
    );
    node.wait_for(
        "no-volume",
        "a FailedMount event",
        Duration::from_secs(30),
        |_| node.events("no-volume").contains("FailedMount"),
    );
    assert_eq!(node.status_column("no-volume"), "ContainerCreating");
    // The good pod still runs.
    assert_eq!(node.status_column("watcher"), "Running");
    c.ok(&["delete", "pods", "--all", "--wait=true"]);
    assert!(node.sandbox().containers().is_empty());
}

/// kube-rs's own exec (WebSocket v4/v5, stdout and stderr apart, the exit status) and
/// port-forward, through the API server to the agent.
#[test]
fn kube_rs_exec_and_port_forward() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, AttachParams};
    use kube::config::{KubeConfigOptions, Kubeconfig};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let node = node();
    node.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: web, image: IMAGE, args: ["serve", "8080"]}
"#,
    );
    node.wait_for("web", "Running", Duration::from_secs(60), running);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let kubeconfig = Kubeconfig::read_from(node.cluster.kubeconfig()).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap();
        let pods: Api<Pod> = Api::default_namespaced(kube::Client::try_from(config).unwrap());

        let mut process = pods
            .exec(
                "web",
                ["sh", "-c", "echo out; echo err >&2; exit 3"],
                &AttachParams::default().stderr(true),
            )
            .await
            .expect("exec");
        let mut stdout = process.stdout().unwrap();
        let mut stderr = process.stderr().unwrap();
        let status = process.take_status().unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        stdout.read_to_string(&mut out).await.unwrap();
        stderr.read_to_string(&mut err).await.unwrap();
        let status = status.await.expect("an exit status");
        assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
        assert_eq!(
            status.reason.as_deref(),
            Some("NonZeroExitCode"),
            "{status:?}"
        );
        let code = status
            .details
            .and_then(|d| d.causes)
            .and_then(|c| {
                c.into_iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message);
        assert_eq!(code.as_deref(), Some("3"));

        let mut forwarder = pods
            .portforward("web", &[8080])
            .await
            .expect("port-forward");
        let mut stream = forwarder.take_stream(8080).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        drop(stream);
        forwarder.abort();
    });
}

/// A `maestro agent` process of its own, killed and its node sandbox cleaned up on drop.
struct SeparateAgent {
    child: std::process::Child,
    sandbox: maestro_e2e::node::NodeSandbox,
}

impl Drop for SeparateAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.sandbox.cleanup();
    }
}

/// An agent cut off from the server keeps its pods running, and picks up where it left when
/// the server is back: the pod is still the same container, and a deletion and a new pod made
/// after the outage are carried out.
#[test]
fn an_agent_cut_off_from_the_server_keeps_its_pods_and_resyncs() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = maestro_e2e::node::NodeSandbox::new(
        dir.path(),
        &dir.path().join("agent"),
        maestro_e2e::free_port(),
    );
    let service_cidr = sandbox.service_cidr.clone().unwrap_or_default();
    let mut cluster = Cluster::start_with(
        env!("CARGO_BIN_EXE_maestro"),
        Kubectl::v1_33(),
        &[
            "--cluster-cidr",
            &sandbox.cluster_cidr,
            "--service-cidr",
            &service_cidr,
        ],
    );
    let registry =
        Registry::start(&cluster.dir.path().join("registry"), &RegistryAuth::None).unwrap();
    let image = checker::image()
        .unwrap()
        .build(&cluster.dir.path().join("layout"), "1")
        .unwrap();
    let image = registry.push_image(&image, "checker:1").unwrap();
    let token = maestro_e2e::run(
        std::process::Command::new(env!("CARGO_BIN_EXE_maestro"))
            .args(["token", "create", "--data-dir"])
            .arg(cluster.data_dir()),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_maestro"))
        .args(["agent", "--server", &cluster.server_url()])
        .args([
            "--token",
            token.trim(),
            "--node-name",
            "cut-off",
            "--data-dir",
        ])
        .arg(&sandbox.agent_data)
        .args(["--agent-port", "0", "--run-dir"])
        .arg(&sandbox.run_dir)
        .args(["--cgroup-root", &sandbox.cgroup_root])
        .args(["--bridge", &sandbox.bridge])
        .args(sandbox.agent_network_args())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let agent = SeparateAgent { child, sandbox };
    let agent_log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  \
             terminationGracePeriodSeconds: 1\n  containers:\n  \
             - {{name: app, image: \"{image}\", args: [serve, \"8080\"]}}\n"
        )
    };
    let running_pod = |cluster: &Cluster, name: &str| {
        eventually(Duration::from_secs(60), || {
            let out = cluster.run(&["get", "pod", name, "-o", "json"]);
            out.status.success()
                && serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|p| running(&p))
        })
    };
    cluster.ok_stdin(&["apply", "-f", "-"], Some(&pod("before")));
    assert!(running_pod(&cluster, "before"), "{}", agent_log());
    let before = cluster.json(&["get", "pod", "before"]);
    let id = before["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .trim_start_matches("runc://")
        .to_string();
    let pid = agent
        .sandbox
        .container_pid(&id)
        .expect("the container runs");

    // The server is gone for a while: the agent and its pod carry on.
    cluster.kill9();
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the container died without the server"
    );
    let child_alive = || {
        std::process::Command::new("kill")
            .args(["-0", &agent.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(child_alive(), "the agent exited:\n{}", agent_log());

    // Back: the same container, and what is asked after the outage is done.
    cluster.restart();
    cluster.ok(&["delete", "pod", "before", "--wait=false"]);
    cluster.ok_stdin(&["apply", "-f", "-"], Some(&pod("after")));
    assert!(running_pod(&cluster, "after"), "{}", agent_log());
    assert!(
        eventually(Duration::from_secs(30), || !Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()),
        "the pod deleted after the outage still runs:\n{}",
        agent_log()
    );
    assert!(eventually(Duration::from_secs(30), || cluster
        .run(&["get", "pod", "before"])
        .status
        .code()
        == Some(1)));
    let containers = agent.sandbox.containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    drop(agent);
    drop(registry);
}

/// A ReplicaSet on a real node: its pods run and are counted ready, a deleted pod is replaced,
/// `kubectl scale` removes the surplus, and deleting the ReplicaSet removes its pods.
#[test]
fn a_replicaset_keeps_its_pods() {
    let node = node();
    let c = &node.cluster;
    node.apply(
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: IMAGE
        args: ["serve", "8080"]
        readinessProbe: {httpGet: {path: /readyz, port: 8080}, periodSeconds: 1}
"#,
    );
    let pods = || -> Vec<String> {
        c.live_pods("default", "app=web")
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let ready_replicas = || c.json(&["get", "rs", "web"])["status"]["readyReplicas"].clone();
    assert!(
        eventually(Duration::from_secs(60), || ready_replicas() == 3),
        "{}\n{}",
        c.ok(&["get", "rs,pods", "-o", "wide"]),
        tail(&c.log(), 40)
    );
    let first = pods();
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(first.iter().all(|n| n.starts_with("web-")), "{first:?}");
    let table = c.ok(&["get", "rs", "web", "--no-headers"]);
    assert_eq!(
        table.split_whitespace().take(4).collect::<Vec<_>>(),
        ["web", "3", "3", "3"],
        "{table}"
    );

    // A deleted pod is replaced by a new one.
    c.ok(&["delete", "pod", &first[0], "--wait=false"]);
    assert!(
        eventually(Duration::from_secs(60), || {
            let now = pods();
            now.len() == 3 && !now.contains(&first[0]) && ready_replicas() == 3
        }),
        "{}",
        c.ok(&["get", "rs,pods"])
    );

    // Scaled down: the surplus goes.
    c.ok(&["scale", "rs", "web", "--replicas=1"]);
    assert!(
        eventually(Duration::from_secs(30), || pods().len() == 1
            && ready_replicas() == 1),
        "{}",
        c.ok(&["get", "rs,pods"])
    );

    // Deleting the ReplicaSet deletes its pods (garbage collection through the owner reference).
    c.ok(&["delete", "rs", "web", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(30), || pods().is_empty()
            && node.sandbox().containers().is_empty()),
        "{}",
        c.ok(&["get", "pods"])
    );
}

/// A Deployment on a real node, driven by kubectl as a user would: `rollout status` waits for
/// the rollout, a rolling update with maxUnavailable 0 never drops below three ready pods,
/// `rollout history` lists the revisions, `rollout undo` brings the first template back (its
/// ReplicaSet takes the next revision), pause holds a template change until resume, `scale`
/// resizes, and deleting the Deployment removes its ReplicaSets and pods.
#[test]
fn a_deployment_rolls_out_undoes_pauses_and_scales() {
    let node = node();
    let c = &node.cluster;
    node.apply(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: IMAGE
        args: ["serve", "8080"]
        env: [{name: VERSION, value: "1"}]
        readinessProbe: {httpGet: {path: /readyz, port: 8080}, periodSeconds: 1}
"#,
    );
    let status = c.ok(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let first_rs = c.json(&["get", "rs", "-l", "app=web"])["items"][0].clone();
    let first_rs_name = first_rs["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        first_rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );

    // A rolling update, watched from the side: ready pods never fall below 3.
    c.ok(&["set", "env", "deploy/web", "VERSION=2"]);
    let watch = maestro_e2e::ReadyWatch::start(c, "app=web");
    let status = c.ok(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    let lowest = watch.lowest();
    assert!(
        status.contains("new replicas have been updated"),
        "{status}"
    );
    assert!(status.contains("successfully rolled out"), "{status}");
    assert!(
        lowest >= 3,
        "ready pods fell to {lowest} during the rollout"
    );
    let history = c.ok(&["rollout", "history", "deploy/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    // Undo: the first ReplicaSet comes back as revision 3 and holds every pod.
    c.ok(&["rollout", "undo", "deploy/web"]);
    c.ok(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    let rs = c.json(&["get", "rs", &first_rs_name]);
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(rs["status"]["readyReplicas"], 3, "{rs}");
    let pods = c.json(&["get", "pods", "-l", "app=web"]);
    let versions: Vec<&Value> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| &p["spec"]["containers"][0]["env"][0]["value"])
        .collect();
    assert_eq!(versions, ["1", "1", "1"], "{pods}");

    // Paused: a template change waits; scale still applies; resume rolls it out.
    c.ok(&["rollout", "pause", "deploy/web"]);
    c.ok(&["set", "env", "deploy/web", "VERSION=3"]);
    c.ok(&["scale", "deploy/web", "--replicas=4"]);
    assert!(
        eventually(Duration::from_secs(30), || {
            c.json(&["get", "rs", &first_rs_name])["status"]["readyReplicas"] == 4
        }),
        "{}",
        c.ok(&["get", "rs"])
    );
    assert_eq!(
        c.json(&["get", "rs", "-l", "app=web"])["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let progressing = c.ok(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}",
    ]);
    assert_eq!(progressing, "DeploymentPaused");
    c.ok(&["rollout", "resume", "deploy/web"]);
    c.ok(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    let deploy = c.json(&["get", "deploy", "web"]);
    assert_eq!(deploy["status"]["updatedReplicas"], 4, "{deploy}");
    assert_eq!(deploy["status"]["availableReplicas"], 4, "{deploy}");
    assert_eq!(
        c.json(&["get", "rs", "-l", "app=web"])["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Deleting the Deployment takes its ReplicaSets and pods with it.
    c.ok(&["delete", "deploy", "web", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(60), || {
            c.json(&["get", "rs,pods", "-l", "app=web"])["items"]
                .as_array()
                .unwrap()
                .is_empty()
                && node.sandbox().containers().is_empty()
        }),
        "{}",
        c.ok(&["get", "rs,pods"])
    );
}

/// The other workload controllers and namespace limits on a real node: an indexed Job runs its
/// completions, a failing Job stops at its back-off limit, a StatefulSet starts its pods in
/// order with stable hostnames and scales down from the top, a DaemonSet rolls out, a CronJob
/// starts a Job at the next minute, and a LimitRange and ResourceQuota default and refuse pods
/// with Kubernetes' messages.
#[test]
fn jobs_statefulsets_daemonsets_cronjobs_and_quotas() {
    let node = node();
    let c = &node.cluster;
    node.apply(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 3
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: IMAGE, args: ["env", "JOB_COMPLETION_INDEX=$(JOB_COMPLETION_INDEX)", "--", "sleep", "1"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: doomed}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: IMAGE, args: ["env", "NOT_SET=1"]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: IMAGE
        args: ["serve", "8080"]
        readinessProbe: {httpGet: {path: /readyz, port: 8080}, periodSeconds: 1}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: IMAGE, args: ["sleep", "forever"]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: c, image: IMAGE, args: ["sleep", "0"]}
"#,
    );
    // Indexed Job: every index done once.
    c.ok(&[
        "wait",
        "--for=condition=complete",
        "job/count",
        "--timeout=120s",
    ]);
    let job = c.json(&["get", "job", "count"]);
    assert_eq!(job["status"]["succeeded"], 3, "{job}");
    assert_eq!(job["status"]["completedIndexes"], "0-2", "{job}");
    let pods = c.json(&["get", "pods", "-l", "job-name=count"]);
    let mut indexes: Vec<String> = pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);
    // A Job with no back-off left fails.
    c.ok(&[
        "wait",
        "--for=condition=failed",
        "job/doomed",
        "--timeout=120s",
    ]);
    let doomed = c.json(&["get", "job", "doomed"]);
    let failed = doomed["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap()
        .clone();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{doomed}");

    // StatefulSet: ordered, stable names and hostnames; scaled down from the highest ordinal.
    c.ok(&["rollout", "status", "statefulset/db", "--timeout=120s"]);
    let db0 = c.json(&["get", "pod", "db-0"]);
    let db1 = c.json(&["get", "pod", "db-1"]);
    assert_eq!(db1["spec"]["hostname"], "db-1");
    assert_eq!(db1["spec"]["subdomain"], "db");
    assert!(
        db0["metadata"]["creationTimestamp"].as_str()
            <= db1["metadata"]["creationTimestamp"].as_str()
    );
    c.ok(&["scale", "statefulset/db", "--replicas=1"]);
    assert!(
        eventually(Duration::from_secs(60), || c
            .run(&["get", "pod", "db-1"])
            .status
            .code()
            == Some(1)),
        "{}",
        c.ok(&["get", "pods"])
    );
    assert!(c.run(&["get", "pod", "db-0"]).status.success());

    // DaemonSet: one pod on the node.
    c.ok(&["rollout", "status", "daemonset/agent", "--timeout=120s"]);
    let ds = c.json(&["get", "daemonset", "agent"]);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 1, "{ds}");
    assert_eq!(ds["status"]["numberAvailable"], 1, "{ds}");

    // CronJob: a Job at the next minute, which completes.
    assert!(
        eventually(Duration::from_secs(150), || {
            let cron = c.json(&["get", "cronjob", "tick"]);
            !cron["status"]["lastScheduleTime"].is_null()
                && c.json(&["get", "jobs"])["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|j| {
                        j["metadata"]["ownerReferences"][0]["name"] == "tick"
                            && j["status"]["succeeded"] == 1
                    })
        }),
        "{}\n{}",
        c.ok(&["get", "cronjob,jobs,pods"]),
        tail(&c.log(), 30)
    );
    c.ok(&["delete", "cronjob", "tick"]);

    // Namespace limits.
    c.ok(&["create", "namespace", "limited"]);
    c.ok_stdin(
        &["apply", "-n", "limited", "-f", "-"],
        Some(
            r#"
apiVersion: v1
kind: LimitRange
metadata: {name: defaults}
spec:
  limits:
  - {type: Container, default: {cpu: 200m}, defaultRequest: {cpu: 100m}, max: {cpu: "1"}}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: compute}
spec:
  hard: {pods: "1", requests.cpu: 500m}
"#,
        ),
    );
    let pod = |name: &str, cpu_limit: Option<&str>| {
        let resources = cpu_limit
            .map(|l| format!(", resources: {{limits: {{cpu: \"{l}\"}}}}"))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: c, image: \"{}\", args: [sleep, forever]{resources}}}]\n",
            node.image
        )
    };
    c.ok_stdin(
        &["apply", "-n", "limited", "-f", "-"],
        Some(&pod("first", None)),
    );
    let first = c.json(&["get", "pod", "-n", "limited", "first"]);
    assert_eq!(
        first["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        "100m"
    );
    assert_eq!(
        first["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "200m"
    );
    let too_big = c.fails(
        &["apply", "-n", "limited", "-f", "-"],
        Some(&pod("big", Some("2"))),
    );
    assert!(
        too_big.contains("maximum cpu usage per Container is 1, but limit is 2"),
        "{too_big}"
    );
    let over = c.fails(
        &["apply", "-n", "limited", "-f", "-"],
        Some(&pod("second", None)),
    );
    assert!(
        over.contains("exceeded quota: compute, requested: pods=1"),
        "{over}"
    );
    assert!(
        eventually(Duration::from_secs(30), || {
            c.json(&["get", "resourcequota", "-n", "limited", "compute"])["status"]["used"]
                == serde_json::json!({"pods": "1", "requests.cpu": "100m"})
        }),
        "{}",
        c.ok(&["describe", "resourcequota", "-n", "limited"])
    );
}
