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

    // Services created through both servers at once never share a ClusterIP: allocations are
    // recorded in etcd, not only in each server's memory.
    std::thread::scope(|scope| {
        for (server, prefix) in [(&a, "a"), (&b, "b")] {
            scope.spawn(move || {
                for i in 0..15 {
                    server.ok(&[
                        "create",
                        "service",
                        "clusterip",
                        &format!("svc-{prefix}-{i}"),
                        "--tcp=80:80",
                    ]);
                }
            });
        }
    });
    // In `default`: the 30 and `kubernetes` (kube-system holds kube-dns).
    let services = a.json(&["get", "services", "-n", "default"]);
    let ips: Vec<String> = services["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["spec"]["clusterIP"].as_str().unwrap().to_string())
        .collect();
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ips.len(), 31, "30 services and kubernetes: {ips:?}");
    assert_eq!(unique.len(), ips.len(), "duplicate ClusterIPs: {ips:?}");

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

    // The controllers run on one server, the holder of the Lease; when it dies the other server
    // takes the Lease over and the controllers' work goes on (a new namespace gets its
    // ServiceAccount).
    let identity = |c: &Cluster| std::fs::read_to_string(c.data_dir().join("identity")).unwrap();
    let holder = a.json(&["get", "lease", "-n", "kube-system", "maestro-controllers"])["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .to_string();
    let (mut leader, follower) = if holder == identity(&a) {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(holder, identity(&leader));
    leader.kill9();
    follower.ok(&["create", "namespace", "after-leader"]);
    assert!(
        eventually(Duration::from_secs(30), || follower
            .run(&["get", "serviceaccount", "default", "-n", "after-leader"])
            .status
            .success()),
        "no controller took over after the leader died:\n{}",
        follower.log()
    );
    let new_holder = follower.json(&["get", "lease", "-n", "kube-system", "maestro-controllers"])["spec"]["holderIdentity"].clone();
    assert_eq!(new_holder, identity(&follower).as_str());
    let (a, b) = (leader, follower);

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
