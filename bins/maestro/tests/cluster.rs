//! A real three-node cluster on one machine: the server in the root network namespace and
//! three `maestro agent`s, each in a network namespace of its own joined to a bridge
//! (`maestro_e2e::hosts`), running the checker image from a registry on the bridge's address.
//! Driven by kubectl as a user would: rollouts, scaling, drain with a PodDisruptionBudget, a
//! node lost with its agent killed, NoExecute taints.
//!
//! Needs root, runc, nsenter, iproute2 and the test packages; everything is removed on drop.

use std::time::{Duration, Instant};

use maestro_e2e::hosts::HostCluster;
use maestro_e2e::{ReadyWatch, condition, eventually};
use serde_json::Value;

fn node_of(pod: &Value) -> String {
    pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ready(pod: &Value) -> bool {
    condition(pod, "Ready") == Some("True")
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
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
"#;

/// Rollouts, scaling and drain on three nodes, as on Kubernetes: the pods spread over the
/// nodes; `rollout status` follows a rolling update that never goes below replicas -
/// maxUnavailable ready pods, and `rollout undo` returns to the first template; `scale` resizes;
/// `drain` is refused while a PodDisruptionBudget would be violated and goes through (never
/// below the budget) once it allows, leaving the node cordoned with none of the pods;
/// `uncordon` makes it schedulable again.
#[test]
fn three_nodes_roll_out_scale_and_drain() {
    let nodes = HostCluster::start(env!("CARGO_BIN_EXE_maestro"), 3, &[]);
    let c = &nodes.cluster;
    nodes.apply(WEB);
    let status = c.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    assert!(status.contains("successfully rolled out"), "{status}");
    let mut spread: Vec<String> = nodes.live_pods("app=web").iter().map(node_of).collect();
    spread.sort();
    spread.dedup();
    assert_eq!(spread.len(), 3, "pods not spread: {}", nodes.debug());

    // A rolling update watched from the side, then undone.
    let watch = ReadyWatch::start(c, "app=web");
    c.ok(&["set", "env", "deploy/web", "VERSION=2"]);
    let status = c.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    let lowest = watch.lowest();
    assert!(status.contains("successfully rolled out"), "{status}");
    assert!(
        lowest >= 5,
        "ready pods fell to {lowest} with maxUnavailable 1"
    );
    c.ok(&["rollout", "undo", "deploy/web"]);
    c.ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    let versions: Vec<String> = nodes
        .live_pods("app=web")
        .iter()
        .map(|p| {
            p["spec"]["containers"][0]["env"][0]["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(versions, vec!["1"; 6], "{}", nodes.debug());

    c.ok(&["scale", "deploy/web", "--replicas=3"]);
    assert!(
        eventually(Duration::from_secs(60), || nodes.live_pods("app=web").len()
            == 3),
        "{}",
        nodes.debug()
    );
    c.ok(&["rollout", "status", "deploy/web", "--timeout=60s"]);

    // A budget that allows no disruption: drain is refused with the budget's reason.
    c.ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=3",
    ]);
    let victim = node_of(&nodes.live_pods("app=web")[0]);
    let refused = c.run(&["drain", &victim, "--ignore-daemonsets", "--timeout=8s"]);
    let text = String::from_utf8_lossy(&refused.stderr).to_string()
        + &String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success(), "{text}");
    assert!(
        text.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{text}"
    );
    assert_eq!(nodes.live_pods("app=web").len(), 3);

    // One disruption at a time allowed: the drain completes without going below it.
    c.ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":2}}"#,
    ]);
    let watch = ReadyWatch::start(c, "app=web");
    let drained = c.ok(&["drain", &victim, "--ignore-daemonsets", "--timeout=120s"]);
    let lowest = watch.lowest();
    assert!(
        drained.contains(&format!("node/{victim} drained")),
        "{drained}"
    );
    assert!(
        lowest >= 2,
        "ready pods fell to {lowest} under a budget of 2"
    );
    let node = c.json(&["get", "node", &victim]);
    assert_eq!(node["spec"]["unschedulable"], true);
    assert!(
        eventually(Duration::from_secs(60), || {
            let pods = nodes.live_pods("app=web");
            pods.len() == 3 && pods.iter().all(|p| node_of(p) != victim && ready(p))
        }),
        "{}",
        nodes.debug()
    );
    let listed = c.ok(&["get", "node", &victim, "--no-headers"]);
    assert!(listed.contains("SchedulingDisabled"), "{listed}");

    c.ok(&["uncordon", &victim]);
    let node = c.json(&["get", "node", &victim]);
    assert!(node["spec"]["unschedulable"].is_null() || node["spec"]["unschedulable"] == false);
    c.ok(&["scale", "deploy/web", "--replicas=6"]);
    assert!(
        eventually(Duration::from_secs(60), || nodes
            .live_pods("app=web")
            .iter()
            .any(|p| node_of(p) == victim)),
        "nothing was scheduled on the uncordoned node: {}",
        nodes.debug()
    );
}

/// A node whose agent is killed is marked Unknown and tainted unreachable; its pods are
/// replaced on the other nodes within 30 s (12 s grace period + 8 s default toleration). A
/// NoExecute taint evicts the pods that do not tolerate it and keeps the one that does. When
/// the agent comes back the node is Ready and untainted again.
#[test]
fn a_lost_node_s_pods_come_back_elsewhere() {
    let mut nodes = HostCluster::start(env!("CARGO_BIN_EXE_maestro"), 3, &[]);
    nodes.apply(&WEB.replace("replicas: 6", "replicas: 3"));
    nodes
        .cluster
        .ok(&["rollout", "status", "deploy/web", "--timeout=120s"]);
    let before = nodes.live_pods("app=web");
    let victim = node_of(&before[0]);
    let index = nodes
        .hosts
        .hosts
        .iter()
        .position(|h| h.name == victim)
        .unwrap();
    let lost: Vec<String> = before
        .iter()
        .filter(|p| node_of(p) == victim)
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();

    nodes.hosts.hosts[index].kill_agent();
    let killed = Instant::now();
    let replaced = eventually(Duration::from_secs(30), || {
        let pods = nodes.live_pods("app=web");
        pods.len() == 3
            && pods.iter().all(|p| {
                let node = node_of(p);
                !node.is_empty() && node != victim
            })
    });
    let took = killed.elapsed();
    assert!(replaced, "not replaced within 30 s: {}", nodes.debug());
    eprintln!("pods of the lost node replaced elsewhere after {took:?}");
    let c = &nodes.cluster;
    assert!(
        eventually(Duration::from_secs(60), || {
            let pods = nodes.live_pods("app=web");
            pods.len() == 3 && pods.iter().all(ready)
        }),
        "{}",
        nodes.debug()
    );
    let node = c.json(&["get", "node", &victim]);
    assert_eq!(condition(&node, "Ready"), Some("Unknown"), "{node}");
    let taints = node["spec"]["taints"].to_string();
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    for name in &lost {
        let pod = c.json(&["get", "pod", name]);
        assert!(!pod["metadata"]["deletionTimestamp"].is_null(), "{pod}");
        assert_eq!(condition(&pod, "Ready"), Some("False"), "{pod}");
    }
    let events = c.ok(&["get", "events", "-A", "-o", "custom-columns=REASON:.reason"]);
    assert!(events.contains("TaintManagerEviction"), "{events}");
    assert!(events.contains("NodeNotReady"), "{events}");

    // A NoExecute taint: pods that do not tolerate it go, the one that does stays.
    let tainted = nodes
        .ready_nodes()
        .into_iter()
        .find(|n| *n != victim)
        .unwrap();
    nodes.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: tolerant, labels: {{app: tolerant}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {tainted}}}
  terminationGracePeriodSeconds: 1
  tolerations: [{{key: dedicated, operator: Exists, effect: NoExecute}}]
  containers: [{{name: app, image: IMAGE, args: ["sleep", "forever"]}}]
"#
    ));
    assert!(
        eventually(Duration::from_secs(60), || nodes
            .live_pods("app=tolerant")
            .first()
            .is_some_and(|p| p["status"]["phase"] == "Running")),
        "{}",
        nodes.debug()
    );
    c.ok(&["taint", "node", &tainted, "dedicated=db:NoExecute"]);
    assert!(
        eventually(Duration::from_secs(60), || {
            let pods = nodes.live_pods("app=web");
            pods.len() == 3
                && pods
                    .iter()
                    .all(|p| node_of(p) != tainted && node_of(p) != victim)
        }),
        "{}",
        nodes.debug()
    );
    let tolerant = c.json(&["get", "pod", "tolerant"]);
    assert!(
        tolerant["metadata"]["deletionTimestamp"].is_null(),
        "{tolerant}"
    );
    c.ok(&["taint", "node", &tainted, "dedicated=db:NoExecute-"]);

    // The agent is back: the node is Ready and loses the unreachable taints.
    let setup = nodes.setup.clone();
    nodes.hosts.start_agent(index, &setup).unwrap();
    let c = &nodes.cluster;
    assert!(
        eventually(Duration::from_secs(60), || {
            let node = c.json(&["get", "node", &victim]);
            condition(&node, "Ready") == Some("True")
                && !node["spec"]["taints"].to_string().contains("unreachable")
        }),
        "{}\n{}",
        nodes.debug(),
        nodes.hosts.hosts[index].log()
    );
    // Its old pods, deleted while it was away, are stopped and removed.
    assert!(
        eventually(Duration::from_secs(60), || lost.iter().all(|name| c
            .run(&["get", "pod", name])
            .status
            .code()
            == Some(1))),
        "{}",
        nodes.debug()
    );
}

/// Scheduler profiles and priorities on three nodes: a `bin-packing` profile (MostAllocated
/// weighted 5, from a KubeSchedulerConfiguration file) fills one node before the next; a pod that fits
/// nowhere stays Pending with kube-scheduler's FailedScheduling wording; a pod of a higher
/// PriorityClass preempts lower-priority pods to get onto the node it must run on.
#[test]
fn profiles_bin_pack_and_priorities_preempt() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packing
  plugins:
    score:
      enabled: [{name: NodeResourcesFit, weight: 5}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources: [{name: cpu, weight: 1}, {name: memory, weight: 1}]
"#,
    )
    .unwrap();
    let config_path = config.path().display().to_string();
    let nodes = HostCluster::start(
        env!("CARGO_BIN_EXE_maestro"),
        3,
        &["--scheduler-config", &config_path],
    );
    let c = &nodes.cluster;
    let allocatable = c.json(&["get", "node", "node-1"])["status"]["allocatable"]["cpu"]
        .as_str()
        .unwrap()
        .to_string();
    // Pods of a quarter of a node's cpu: four would not fit one node (allocatable is a little
    // below the core count), three do.
    let millis: i64 = if let Some(m) = allocatable.strip_suffix('m') {
        m.parse().unwrap()
    } else {
        allocatable.parse::<i64>().unwrap() * 1000
    };
    let quarter = format!("{}m", millis / 4 + 1);
    nodes.apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: packed}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: packed}}}}
  template:
    metadata: {{labels: {{app: packed}}}}
    spec:
      schedulerName: bin-packing
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: app, image: IMAGE, args: ["sleep", "forever"], resources: {{requests: {{cpu: "{quarter}", memory: 16Mi}}}}}}
"#
    ));
    nodes.rollout("packed");
    let per_node = |selector: &str| -> Vec<usize> {
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for pod in nodes.live_pods(selector) {
            *counts.entry(node_of(&pod)).or_default() += 1;
        }
        let mut counts: Vec<usize> = counts.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        counts
    };
    assert_eq!(per_node("app=packed"), [3], "{}", nodes.debug());
    c.ok(&["scale", "deploy/packed", "--replicas=5"]);
    nodes.rollout("packed");
    assert_eq!(per_node("app=packed"), [3, 2], "{}", nodes.debug());
    let full = node_of(
        &nodes
            .live_pods("app=packed")
            .into_iter()
            .find(|p| {
                let n = node_of(p);
                nodes
                    .live_pods("app=packed")
                    .iter()
                    .filter(|q| node_of(q) == n)
                    .count()
                    == 3
            })
            .unwrap(),
    );

    // Too big for any node: Pending, with the reasons per node.
    nodes.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: huge}
spec:
  containers: [{name: app, image: IMAGE, args: ["sleep", "forever"], resources: {requests: {cpu: "64"}}}]
"#,
    );
    let expected = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
    assert!(
        eventually(Duration::from_secs(30), || {
            c.ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=huge,reason=FailedScheduling",
                "-o",
                "jsonpath={.items[*].message}",
            ])
            .contains(expected)
        }),
        "{}",
        c.ok(&["describe", "pod", "huge"])
    );
    let huge = c.json(&["get", "pod", "huge"]);
    assert_eq!(huge["status"]["phase"], "Pending");
    let scheduled = huge["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .unwrap()
        .clone();
    assert_eq!(scheduled["reason"], "Unschedulable", "{scheduled}");
    c.ok(&["delete", "pod", "huge", "--wait=false"]);

    // An unknown PriorityClass is refused; a known one lets its pod preempt.
    let refused = c.fails(
        &["apply", "-f", "-"],
        Some(&"apiVersion: v1\nkind: Pod\nmetadata: {name: nope}\nspec:\n  priorityClassName: missing\n  containers: [{name: a, image: IMAGE}]\n".replace("IMAGE", &nodes.image)),
    );
    assert!(
        refused.contains("no PriorityClass with name missing was found"),
        "{refused}"
    );
    nodes.apply(&format!(
        r#"
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {{name: high}}
value: 1000
---
apiVersion: v1
kind: Pod
metadata: {{name: vip}}
spec:
  priorityClassName: high
  nodeSelector: {{kubernetes.io/hostname: {full}}}
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: app, image: IMAGE, args: ["sleep", "forever"], resources: {{requests: {{cpu: "{}m"}}}}}}
"#,
        millis / 2
    ));
    assert!(
        eventually(Duration::from_secs(90), || {
            let vip = c.json(&["get", "pod", "vip"]);
            vip["spec"]["nodeName"] == full.as_str() && vip["status"]["phase"] == "Running"
        }),
        "{}\n{}",
        nodes.debug(),
        c.ok(&["describe", "pod", "vip"])
    );
    assert_eq!(c.json(&["get", "pod", "vip"])["spec"]["priority"], 1000);
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "reason=Preempted",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains(&format!("on node {full}")), "{events}");
    // The preempted pods were replaced, on the other nodes.
    assert!(
        eventually(Duration::from_secs(90), || {
            let pods = nodes.live_pods("app=packed");
            pods.len() == 5 && pods.iter().all(|p| p["status"]["phase"] == "Running")
        }),
        "{}",
        nodes.debug()
    );
}
