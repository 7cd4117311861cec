//! Crash safety: SIGKILL the server in the middle of a storm of creates, restart it on the same
//! data directory, and check that every create the server acknowledged is there, intact.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use maestro_e2e::{Cluster, Kubectl};
use serde_json::json;

async fn client(cluster: &Cluster) -> Client {
    let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig()).expect("kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    config.read_timeout = Some(Duration::from_secs(5));
    config.connect_timeout = Some(Duration::from_secs(2));
    Client::try_from(config).expect("client")
}

/// Create configmaps from `writers` tasks until the server goes away; return what was acknowledged.
async fn storm(client: Client, round: usize, writers: usize) -> BTreeSet<String> {
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let acknowledged = acknowledged.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("r{round}-w{w}-{i}");
                let cm: ConfigMap = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name},
                    "data": {"payload": "x".repeat(512), "writer": w.to_string()}
                }))
                .unwrap();
                match api.create(&PostParams::default(), &cm).await {
                    Ok(_) => {
                        acknowledged.lock().unwrap().insert(name);
                    }
                    // The server is gone: stop writing.
                    Err(_) => return,
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Arc::try_unwrap(acknowledged).unwrap().into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_creates_survive_sigkill() {
    let mut cluster = Cluster::start(env!("CARGO_BIN_EXE_maestro"), Kubectl::v1_33());
    let mut all_acknowledged = BTreeSet::new();
    for round in 0..3 {
        let writer = tokio::spawn(storm(client(&cluster).await, round, 32));
        tokio::time::sleep(Duration::from_millis(700 + 300 * round as u64)).await;
        let pid = cluster.pid().expect("server running");
        cluster.kill9();
        let acknowledged = writer.await.unwrap();
        assert!(
            acknowledged.len() > 50,
            "round {round}: the storm barely wrote ({}) before pid {pid} was killed",
            acknowledged.len()
        );
        all_acknowledged.extend(acknowledged);
        cluster.restart();
        let api: Api<ConfigMap> = Api::namespaced(client(&cluster).await, "default");
        let stored = api.list(&ListParams::default()).await.unwrap();
        let names: BTreeSet<String> = stored
            .items
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        let lost: Vec<&String> = all_acknowledged.difference(&names).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged creates lost after SIGKILL, e.g. {:?}",
            lost.len(),
            lost.iter().take(5).collect::<Vec<_>>()
        );
        for cm in stored
            .items
            .iter()
            .filter(|c| c.metadata.name.as_deref() != Some("kube-root-ca.crt"))
        {
            let data = cm.data.as_ref().expect("stored objects are whole");
            assert_eq!(
                data.get("payload").map(String::len),
                Some(512),
                "torn object {:?}",
                cm.metadata.name
            );
        }
    }
}
