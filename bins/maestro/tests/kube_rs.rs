//! kube-rs against a real maestro server: typed CRUD and every patch type, aggregated
//! discovery, the runtime watcher (classic list+watch and streaming lists), and raw requests
//! with bad input that must get the right Status code without writing anything.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, Config};
use maestro_e2e::{Cluster, Kubectl};
use serde_json::{Value, json};

async fn client(cluster: &Cluster) -> Client {
    let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig()).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

fn configmap(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"suite": "kube-rs"}},
        "data": {"v": value}
    }))
    .unwrap()
}

async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body)
        .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .expect("transport");
    let status = response.status().as_u16();
    let bytes = http_body_util_collect(response.into_body()).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn http_body_util_collect(body: kube::client::Body) -> Vec<u8> {
    use http_body_util::BodyExt;
    body.collect().await.expect("body").to_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_crud_and_patches() {
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_maestro"), Kubectl::v1_33());
    let client = client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &configmap("a", "1"))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some());
    // Strategic, merge, JSON and apply patches.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Strategic(json!({"data": {"s": "1"}})),
    )
    .await
    .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"m": "1"}})),
    )
    .await
    .unwrap();
    let ops =
        serde_json::from_value(json!([{"op": "add", "path": "/data/j", "value": "1"}])).unwrap();
    cms.patch("a", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    let applied = cms
        .patch("a", &PatchParams::apply("kube-rs-test").force(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"v": "2"}})))
        .await
        .unwrap();
    let data = applied.data.unwrap();
    assert_eq!(data.get("v").map(String::as_str), Some("2"));
    for key in ["s", "m", "j"] {
        assert!(
            data.contains_key(key),
            "{key} missing after patches: {data:?}"
        );
    }
    assert_ne!(applied.metadata.resource_version.unwrap(), rv);
    // Optimistic concurrency: a replace with the old resourceVersion conflicts.
    let mut stale = created.clone();
    stale.data = Some([("v".to_string(), "stale".to_string())].into());
    let err = cms
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let listed = cms
        .list(&ListParams::default().labels("suite=kube-rs"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let missing = cms.get("a").await.unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404 && s.message == "configmaps \"a\" not found"),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_discovery_finds_every_group() {
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_maestro"), Kubectl::v1_33());
    let client = client(&cluster).await;
    let discovery = kube::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    let groups: Vec<String> = discovery.groups().map(|g| g.name().to_string()).collect();
    for group in [
        "",
        "apps",
        "batch",
        "autoscaling",
        "networking.k8s.io",
        "policy",
        "apiextensions.k8s.io",
    ] {
        assert!(
            groups.iter().any(|g| g == group),
            "{group} missing from {groups:?}"
        );
    }
    let apps = discovery.get("apps").unwrap();
    let (deployments, caps) = apps.recommended_kind("Deployment").unwrap();
    assert_eq!(deployments.plural, "deployments");
    assert!(
        caps.subresources
            .iter()
            .any(|(r, _)| r.plural == "deployments/scale" || r.plural == "scale"),
        "{:?}",
        caps.subresources
    );
    let legacy = kube::Discovery::new(client).run().await.unwrap();
    assert!(legacy.groups().any(|g| g.name() == "batch"));
}

async fn watch_sees_changes(streaming: bool) {
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_maestro"), Kubectl::v1_33());
    let client = client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("before", "0"))
        .await
        .unwrap();
    let config = if streaming {
        watcher::Config::default()
            .labels("suite=kube-rs")
            .streaming_lists()
    } else {
        watcher::Config::default().labels("suite=kube-rs")
    };
    let mut stream = watcher(cms.clone(), config).boxed();
    let writer = {
        let cms = cms.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cms.create(&PostParams::default(), &configmap("during", "1"))
                .await
                .unwrap();
            cms.patch(
                "during",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"v": "2"}})),
            )
            .await
            .unwrap();
            cms.delete("during", &DeleteParams::default())
                .await
                .unwrap();
        })
    };
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, stream.try_next())
        .await
        .map(|r| r.unwrap())
    {
        match event {
            watcher::Event::InitApply(cm) => {
                seen.push(format!("init:{}", cm.metadata.name.unwrap()))
            }
            watcher::Event::InitDone => seen.push("init-done".into()),
            watcher::Event::Apply(cm) => seen.push(format!(
                "apply:{}={}",
                cm.metadata.name.unwrap(),
                cm.data
                    .unwrap_or_default()
                    .get("v")
                    .cloned()
                    .unwrap_or_default()
            )),
            watcher::Event::Delete(cm) => {
                seen.push(format!("delete:{}", cm.metadata.name.unwrap()));
                break;
            }
            watcher::Event::Init => {}
        }
    }
    writer.await.unwrap();
    assert_eq!(
        seen,
        vec![
            "init:before",
            "init-done",
            "apply:during=1",
            "apply:during=2",
            "delete:during"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_list_then_watch() {
    watch_sees_changes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_streaming_lists() {
    watch_sees_changes(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_status_and_writes_nothing() {
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_maestro"), Kubectl::v1_33());
    let client = client(&cluster).await;
    let path = "/api/v1/namespaces/default/configmaps";
    let (code, status) = raw(
        &client,
        "POST",
        path,
        "application/json",
        b"{\"apiVersion\":\"v1\",".to_vec(),
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (400, Some("BadRequest")),
        "{status}"
    );
    let (code, status) = raw(
        &client,
        "POST",
        path,
        "application/yaml",
        b"kind: [unclosed".to_vec(),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    let big = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"big\"}},\"data\":{{\"x\":\"{}\"}}}}",
        "a".repeat(4 * 1024 * 1024)
    );
    let (code, status) = raw(&client, "POST", path, "application/json", big.into_bytes()).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (413, Some("RequestEntityTooLarge")),
        "{status}"
    );
    let (code, status) = raw(&client, "POST", path, "text/plain", b"hello".to_vec()).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (415, Some("UnsupportedMediaType")),
        "{status}"
    );
    let (code, status) = raw(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Strict"),
        "application/json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"strict"},"bogus":true}"#
            .to_vec(),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(
        status["message"],
        "strict decoding error: unknown field \"bogus\""
    );
    let (code, _) = raw(
        &client,
        "POST",
        &format!("{path}?fieldValidation=Warn"),
        "application/json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"warned"},"bogus":true}"#
            .to_vec(),
    )
    .await;
    assert_eq!(code, 201);
    let (code, status) = raw(
        &client,
        "POST",
        path,
        "application/json",
        br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"wrong"}}"#.to_vec(),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    let (code, status) = raw(
        &client,
        "POST",
        path,
        "application/json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"UPPER"}}"#.to_vec(),
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "{status}"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": -1, "selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let (code, status) = raw(
        &client,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        "application/json",
        deploy.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("spec.replicas"),
        "{status}"
    );
    let (code, status) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/nowhere/configmaps",
        "application/json",
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"lost"}}"#.to_vec(),
    )
    .await;
    assert_eq!(
        (code, status["message"].as_str()),
        (404, Some("namespaces \"nowhere\" not found")),
        "{status}"
    );
    // Only the Warn request created something; the server still serves.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let names: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, vec!["kube-root-ca.crt", "warned"]);
    let deployments: Api<Deployment> = Api::namespaced(client, "default");
    assert!(
        deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_credentials_are_unauthorized() {
    let cluster = Cluster::start(env!("CARGO_BIN_EXE_maestro"), Kubectl::v1_33());
    let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info = Default::default();
    let anonymous = Client::try_from(config.clone()).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(anonymous.clone(), "default");
    match cms.list(&ListParams::default()).await.unwrap_err() {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"))
        }
        other => panic!("expected 401, got {other:?}"),
    }
    config.auth_info.token = Some("not-the-token".to_string().into());
    let wrong = Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(wrong, "default");
    assert!(
        matches!(cms.list(&ListParams::default()).await.unwrap_err(), kube::Error::Api(s) if s.code == 401)
    );
    // Health and version stay public, as in Kubernetes.
    assert!(anonymous.apiserver_version().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_get_bookmarks_when_they_allow_them() {
    use http_body_util::BodyExt;
    let cluster = Cluster::start_with(
        env!("CARGO_BIN_EXE_maestro"),
        Kubectl::v1_33(),
        &["--watch-bookmark-interval-seconds", "0.3"],
    );
    let client = client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let list_rv: i64 = list.metadata.resource_version.unwrap().parse().unwrap();
    let request = http::Request::get(format!(
        "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion={list_rv}&timeoutSeconds=5"
    ))
    .body(Vec::new())
    .unwrap();
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let written = cms
        .create(&PostParams::default(), &configmap("marked", "1"))
        .await
        .unwrap();
    let written_rv: i64 = written.metadata.resource_version.unwrap().parse().unwrap();
    let mut buffer = Vec::new();
    let mut events: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    // Read until a bookmark past the write arrives.
    while !events.iter().any(|e| {
        e["type"] == "BOOKMARK"
            && e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|r| r.parse::<i64>().ok())
                .is_some_and(|r| r >= written_rv)
    }) {
        let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await else {
            break;
        };
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                events.push(serde_json::from_slice(&line).unwrap());
            }
        }
    }
    let added = events
        .iter()
        .position(|e| e["type"] == "ADDED" && e["object"]["metadata"]["name"] == "marked");
    let bookmark = events.iter().position(|e| {
        e["type"] == "BOOKMARK"
            && e["object"]["kind"] == "ConfigMap"
            && e["object"]["apiVersion"] == "v1"
            && e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|r| r.parse::<i64>().ok())
                .is_some_and(|r| r >= written_rv)
    });
    assert!(
        added.is_some() && bookmark.is_some() && added < bookmark,
        "events: {events:?}"
    );
}
