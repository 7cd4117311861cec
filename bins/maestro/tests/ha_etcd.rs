//! High availability on etcd: two maestro servers share one real etcd cluster (Debian's etcd,
//! three members on loopback). A write through one server is read and watched through the
//! other, and the servers keep serving when the etcd leader is killed.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use maestro_e2e::{Cluster, Kubectl, eventually};
use maestro_store::etcd_testing::EtcdCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_one_etcd() {
    let mut etcd = EtcdCluster::start(3).await;
    let endpoints = etcd.endpoints().join(",");
    let bin = env!("CARGO_BIN_EXE_maestro");
    let (a, b) = tokio::task::spawn_blocking(move || {
        let args = [
            "--etcd-servers",
            endpoints.as_str(),
            "--etcd-prefix",
            "/ha-test",
        ];
        let a = Cluster::start_with(bin, Kubectl::v1_33(), &args);
        let b = Cluster::start_with(bin, Kubectl::v1_33(), &args);
        (a, b)
    })
    .await
    .unwrap();

    // A watch through server B sees what server A writes.
    let mut watcher = Command::new(&b.kubectl.path)
        .env("KUBECONFIG", b.kubeconfig())
        .args([
            "--cache-dir",
            b.dir.path().join("watch-cache").to_str().unwrap(),
        ])
        .args(["get", "configmaps", "-w", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    a.ok(&["create", "configmap", "shared", "--from-literal=k=v"]);
    assert_eq!(b.json(&["get", "configmap", "shared"])["data"]["k"], "v");
    // Both servers agree on the system objects (created once, whichever started first).
    assert_eq!(
        a.json(&["get", "namespace", "default"])["metadata"]["uid"],
        b.json(&["get", "namespace", "default"])["metadata"]["uid"]
    );

    // Kill the etcd leader: both servers keep answering after the election.
    let leader = etcd.leader().await.expect("a leader");
    etcd.kill(leader);
    assert!(
        eventually(Duration::from_secs(20), || a
            .run(&["create", "configmap", "after-failover"])
            .status
            .success()),
        "server A could not write after the leader was killed:\n{}",
        a.log()
    );
    assert!(eventually(Duration::from_secs(20), || b
        .run(&["get", "configmap", "after-failover"])
        .status
        .success()));

    let _ = watcher.kill();
    let mut out = String::new();
    watcher
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = watcher.wait();
    assert!(
        out.lines().any(|l| l == "configmap/shared"),
        "watch through B missed A's write:\n{out}"
    );
    drop((a, b));
}
