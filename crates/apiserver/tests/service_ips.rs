//! ClusterIP allocation goes through records in the store: an address recorded by another API
//! server (one this server's watch cache has no Service for yet) is never handed out again.

use std::sync::Arc;

use bytes::Bytes;
use maestro_api::resources;
use maestro_apiserver::Registry;
use maestro_apiserver::registry::{Resource, WriteOptions};
use maestro_apiserver::service_ips::{Cidr, record_key};
use maestro_store::{Backend, RedbBackend};
use serde_json::{Value, json};

async fn registry(cidr: &str) -> (tempfile::TempDir, Arc<dyn Backend>, Arc<Registry>) {
    let dir = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> =
        Arc::new(RedbBackend::open(&dir.path().join("s.redb")).unwrap());
    let cidr: Cidr = cidr.parse().unwrap();
    let registry = Registry::new(backend.clone(), cidr).await.unwrap();
    maestro_apiserver::bootstrap::ensure_system_namespaces(&registry)
        .await
        .unwrap();
    (dir, backend, registry)
}

fn service(name: &str, ip: Option<&str>) -> Value {
    let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}});
    if let Some(ip) = ip {
        svc["spec"]["clusterIP"] = json!(ip);
    }
    svc
}

fn services() -> Arc<Resource> {
    Resource::builtin(resources::find_builtin("", "v1", "services").unwrap())
}

#[tokio::test]
async fn addresses_recorded_elsewhere_are_not_handed_out() {
    // 10.0.0.0/29: hosts .1 (reserved for the kubernetes Service) to .6.
    let (_dir, backend, registry) = registry("10.0.0.0/29").await;
    // Another server holds .2 to .5 without this server having seen those Services.
    for host in 2..=5 {
        backend
            .create(
                &record_key(&format!("10.0.0.{host}")),
                Bytes::from_static(b"other/svc"),
            )
            .await
            .unwrap();
    }
    let opts = WriteOptions::default();
    let taken = registry
        .create(
            &services(),
            Some("default"),
            service("asks", Some("10.0.0.3")),
            &opts,
        )
        .await
        .unwrap_err();
    assert_eq!(taken.code, 422, "{taken:?}");
    assert!(
        taken.message.contains("provided IP is already allocated"),
        "{}",
        taken.message
    );
    let created = registry
        .create(&services(), Some("default"), service("auto", None), &opts)
        .await
        .unwrap();
    assert_eq!(
        created.object["spec"]["clusterIP"], "10.0.0.6",
        "the only address nobody recorded"
    );
    assert!(
        backend
            .get(&record_key("10.0.0.6"))
            .await
            .unwrap()
            .is_some()
    );
    let full = registry
        .create(
            &services(),
            Some("default"),
            service("none-left", None),
            &opts,
        )
        .await
        .unwrap_err();
    assert_eq!(full.code, 422, "{full:?}");
}

#[tokio::test]
async fn records_follow_services_and_are_repaired() {
    let (_dir, backend, registry) = registry("10.0.0.0/29").await;
    let opts = WriteOptions::default();
    let created = registry
        .create(
            &services(),
            Some("default"),
            service("web", Some("10.0.0.4")),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(created.object["spec"]["clusterIP"], "10.0.0.4");
    assert!(
        backend
            .get(&record_key("10.0.0.4"))
            .await
            .unwrap()
            .is_some()
    );
    registry
        .delete(&services(), Some("default"), "web", &Default::default())
        .await
        .unwrap();
    assert!(
        backend
            .get(&record_key("10.0.0.4"))
            .await
            .unwrap()
            .is_none(),
        "released with the Service"
    );
    // A record left by a crash between reserving and writing is dropped at start-up.
    backend
        .create(
            &record_key("10.0.0.5"),
            Bytes::from_static(b"default/ghost"),
        )
        .await
        .unwrap();
    registry.repair_service_ips().await.unwrap();
    assert!(
        backend
            .get(&record_key("10.0.0.5"))
            .await
            .unwrap()
            .is_none()
    );
    // A failed create releases what it reserved.
    let invalid = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "Bad_Name"}, "spec": {"ports": [{"port": 80}], "clusterIP": "10.0.0.6"}});
    assert_eq!(
        registry
            .create(&services(), Some("default"), invalid, &opts)
            .await
            .unwrap_err()
            .code,
        422
    );
    tokio::task::yield_now().await;
    for _ in 0..50 {
        if backend
            .get(&record_key("10.0.0.6"))
            .await
            .unwrap()
            .is_none()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the reservation of a failed create was not released");
}
