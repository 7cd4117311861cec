//! Simulated nodes (`maestro agent --simulate N`, the scale-testing mode): a control plane
//! without any real node, and one simulator process joined with a token that registers 50
//! nodes. They become Ready and stay so on their Leases alone; a Deployment's pods are
//! scheduled across them and reported Running and Ready although no container exists; deleting
//! the Deployment removes the pods, the simulator confirming each deletion as a kubelet does.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use maestro_e2e::{Cluster, Kubectl, eventually};
use serde_json::Value;

const NODES: usize = 50;
const REPLICAS: usize = 20;

/// The simulator process, killed (by its own PID) when the test ends.
struct Simulator {
    child: Child,
    log: PathBuf,
}

impl Simulator {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn items(cluster: &Cluster, args: &[&str]) -> Vec<Value> {
    let mut full = args.to_vec();
    full.extend(["-o", "json"]);
    let out = cluster.run(&full);
    if !out.status.success() {
        return Vec::new();
    }
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|list| list["items"].as_array().cloned())
        .unwrap_or_default()
}

fn condition_true(object: &Value, kind: &str) -> bool {
    object["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

fn simulated_nodes(cluster: &Cluster) -> Vec<Value> {
    items(
        cluster,
        &["get", "nodes", "-l", "maestro.dev/simulated=true"],
    )
}

/// Every simulated node is Ready and carries none of the node lifecycle controller's taints.
fn all_ready(nodes: &[Value]) -> bool {
    nodes.len() == NODES
        && nodes.iter().all(|n| {
            condition_true(n, "Ready")
                && n["spec"]["taints"]
                    .as_array()
                    .is_none_or(|ts| ts.is_empty())
        })
}

fn sim_pods(cluster: &Cluster) -> Vec<Value> {
    items(cluster, &["get", "pods", "-l", "app=sim"])
}

#[test]
fn simulated_nodes_register_and_run_a_deployment() {
    let cluster = Cluster::start_with(env!("CARGO_BIN_EXE_maestro"), Kubectl::v1_33(), &[]);
    let token = maestro_e2e::run(
        Command::new(env!("CARGO_BIN_EXE_maestro"))
            .args(["token", "create", "--data-dir"])
            .arg(cluster.data_dir()),
    )
    .unwrap();
    let log = cluster.dir.path().join("simulator.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_maestro"))
        .args(["agent", "--server", &cluster.server_url()])
        .args(["--token", token.trim(), "--node-name", "e2e"])
        .args(["--simulate", &NODES.to_string()])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let sim = Simulator { child, log };

    // Registration: every node Ready, with its zone, address and Lease.
    assert!(
        eventually(Duration::from_secs(60), || all_ready(&simulated_nodes(
            &cluster
        ))),
        "the simulated nodes did not all become Ready:\n{}\n{}",
        cluster.ok(&["get", "nodes"]),
        sim.log()
    );
    let ready_at = Instant::now();
    let nodes = simulated_nodes(&cluster);
    let names: BTreeSet<String> = nodes
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains("e2e-sim-00001") && names.contains("e2e-sim-00050"));
    let zones: BTreeSet<&str> = nodes
        .iter()
        .filter_map(|n| n["metadata"]["labels"]["topology.kubernetes.io/zone"].as_str())
        .collect();
    assert_eq!(zones.len(), 3, "{zones:?}");
    let first = nodes
        .iter()
        .find(|n| n["metadata"]["name"] == "e2e-sim-00001")
        .unwrap();
    assert_eq!(first["status"]["addresses"][0]["address"], "10.200.0.1");
    assert_eq!(first["status"]["capacity"]["cpu"], "32");
    let leases = items(&cluster, &["get", "leases", "-n", "kube-node-lease"]);
    assert!(
        names
            .iter()
            .all(|name| leases.iter().any(|l| &l["metadata"]["name"] == name)),
        "missing node Leases"
    );
    // The wide table prints the fake InternalIP.
    assert!(
        cluster
            .ok(&["get", "nodes", "-o", "wide"])
            .contains("10.200.0.50")
    );

    // A Deployment: its pods are placed over the nodes and reported running. The requests make
    // least-requested scoring spread them; the image exists nowhere, and nothing pulls it.
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        Some(&format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: sim}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: sim}}}}
  template:
    metadata: {{labels: {{app: sim}}}}
    spec:
      containers:
      - name: app
        image: registry.invalid/simulated:1
        resources: {{requests: {{cpu: "4", memory: 1Gi}}}}
"#
        )),
    );
    let running = |pods: &[Value]| {
        pods.len() == REPLICAS
            && pods.iter().all(|p| {
                p["status"]["phase"] == "Running"
                    && condition_true(p, "Ready")
                    && p["status"]["containerStatuses"][0]["ready"] == true
                    && p["status"]["podIP"]
                        .as_str()
                        .is_some_and(|ip| ip.starts_with("100."))
            })
    };
    assert!(
        eventually(Duration::from_secs(90), || running(&sim_pods(&cluster))),
        "the Deployment's pods did not all become Running and Ready:\n{}\n{}\n{}",
        cluster.ok(&["get", "pods", "-o", "wide"]),
        sim.log(),
        cluster.log()
    );
    let pods = sim_pods(&cluster);
    let used: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p["spec"]["nodeName"].as_str())
        .collect();
    assert!(
        used.len() >= 5 && used.iter().all(|n| names.contains(*n)),
        "the pods are not spread over the simulated nodes: {used:?}"
    );
    let ips: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str())
        .collect();
    assert_eq!(ips.len(), REPLICAS, "pod IPs repeat: {ips:?}");
    assert!(
        pods[0]["status"]["containerStatuses"][0]["containerID"]
            .as_str()
            .is_some_and(|id| id.starts_with("sim://"))
    );
    assert!(
        eventually(Duration::from_secs(30), || cluster
            .run(&[
                "get",
                "deployment",
                "sim",
                "-o",
                "jsonpath={.status.readyReplicas}"
            ])
            .stdout
            == REPLICAS.to_string().as_bytes()),
        "the Deployment does not count its pods ready:\n{}",
        cluster.ok(&["get", "deployment", "sim", "-o", "yaml"])
    );

    // Deletion: the pods go (graceful deletion, confirmed by the simulator).
    cluster.ok(&["delete", "deployment", "sim"]);
    assert!(
        eventually(Duration::from_secs(60), || sim_pods(&cluster).is_empty()),
        "the pods were not deleted:\n{}\n{}",
        cluster.ok(&["get", "pods", "-o", "wide"]),
        sim.log()
    );

    // Past the server's grace period (12 s) without a status post: the Leases keep every node
    // Ready.
    let grace = Duration::from_secs(20);
    if let Some(rest) = grace.checked_sub(ready_at.elapsed()) {
        std::thread::sleep(rest);
    }
    assert!(
        all_ready(&simulated_nodes(&cluster)),
        "simulated nodes stopped being Ready:\n{}\n{}",
        cluster.ok(&["get", "nodes"]),
        sim.log()
    );
    let exited = Command::new("kill")
        .args(["-0", &sim.child.id().to_string()])
        .status()
        .is_ok_and(|s| !s.success());
    assert!(!exited, "the simulator exited:\n{}", sim.log());
    assert!(sim.log().contains("SIMULATION"), "{}", sim.log());
}
