//! Joining a node: `maestro token create` on the server prints a join token; `maestro agent`
//! with it verifies the server's CA against the token, registers its Node (capacity, conditions,
//! addresses), renews its Lease and gets a pod CIDR. A token with another CA's hash is refused.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use maestro_e2e::{Cluster, Kubectl, eventually};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(cluster: &Cluster, token: &str, node: &str) -> Agent {
    let dir = cluster.dir.path().join(format!("agent-{node}"));
    Agent(
        Command::new(env!("CARGO_BIN_EXE_maestro"))
            .args([
                "agent",
                "--server",
                &cluster.server_url(),
                "--token",
                token,
                "--node-name",
                node,
                // Registration only: several agents on one host would share its runtime dirs,
                // and the pods here name registries that do not exist.
                "--no-pods",
                "--agent-port",
                "0",
            ])
            .arg("--data-dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the agent"),
    )
}

fn c_run(cluster: &Cluster, args: &[&str]) {
    cluster.ok(args);
}

#[test]
fn an_agent_joins_with_a_token() {
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_maestro"), Kubectl::v1_33());
    let out = Command::new(env!("CARGO_BIN_EXE_maestro"))
        .args(["token", "create", "--data-dir"])
        .arg(cluster.data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("maestro1::"), "{token}");
    let secrets = cluster.ok(&[
        "get",
        "secrets",
        "-n",
        "kube-system",
        "--field-selector",
        "type=bootstrap.kubernetes.io/token",
        "-o",
        "name",
    ]);
    assert_eq!(secrets.lines().count(), 1, "{secrets}");

    let _worker = agent(&cluster, &token, "worker-1");
    assert!(
        eventually(Duration::from_secs(20), || cluster
            .run(&["get", "node", "worker-1", "-o", "jsonpath={.spec.podCIDR}"])
            .stdout
            .starts_with(b"10.42.")),
        "the node did not register with a pod CIDR:\n{}",
        cluster.log()
    );
    let node = cluster.json(&["get", "node", "worker-1"]);
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["reason"], "KubeletReady");
    assert!(
        node["status"]["capacity"]["cpu"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert!(
        node["status"]["allocatable"]["memory"]
            .as_str()
            .unwrap()
            .ends_with("Ki")
    );
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "worker-1"
    );
    assert!(eventually(Duration::from_secs(15), || cluster
        .run(&["get", "lease", "-n", "kube-node-lease", "worker-1"])
        .status
        .success()));
    let lease = cluster.json(&["get", "lease", "-n", "kube-node-lease", "worker-1"]);
    assert_eq!(lease["spec"]["holderIdentity"], "worker-1");
    let wide = cluster.ok(&["get", "nodes", "-o", "wide"]);
    assert!(
        wide.contains("worker-1") && wide.contains("Ready"),
        "{wide}"
    );

    // A second node gets another block.
    let _second = agent(&cluster, &token, "worker-2");
    assert!(eventually(Duration::from_secs(20), || cluster
        .run(&["get", "node", "worker-2", "-o", "jsonpath={.spec.podCIDR}"])
        .stdout
        .starts_with(b"10.42.")));
    let first = cluster.ok(&["get", "node", "worker-1", "-o", "jsonpath={.spec.podCIDR}"]);
    let second = cluster.ok(&["get", "node", "worker-2", "-o", "jsonpath={.spec.podCIDR}"]);
    assert_ne!(first, second);

    // Pods are scheduled onto the joined nodes; one that fits nowhere gets the event
    // kube-scheduler users know.
    c_run(&cluster, &["run", "placed", "--image=registry.local/app:1"]);
    assert!(eventually(Duration::from_secs(10), || {
        let node = cluster.ok(&["get", "pod", "placed", "-o", "jsonpath={.spec.nodeName}"]);
        node == "worker-1" || node == "worker-2"
    }));
    cluster.ok_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: nowhere}\nspec:\n  nodeSelector: {disk: ssd}\n  containers: [{name: c, image: registry.local/app:1}]\n"),
    );
    assert!(
        eventually(Duration::from_secs(10), || cluster
            .ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=nowhere,reason=FailedScheduling"
            ])
            .contains(
                "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
            )),
        "{}",
        cluster.ok(&["get", "events", "-A"])
    );
    assert_eq!(
        cluster.ok(&["get", "pod", "nowhere", "-o", "jsonpath={.spec.nodeName}"]),
        ""
    );

    // A token naming another CA is refused before anything is sent with it.
    let forged = format!(
        "maestro1::{}::{}",
        "0".repeat(64),
        token.rsplit("::").next().unwrap()
    );
    let mut bad = agent(&cluster, &forged, "impostor");
    let status = bad.0.wait().unwrap();
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(bad.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("does not match the join token"), "{err}");
    assert!(!cluster.run(&["get", "node", "impostor"]).status.success());
}
