//! The n-tier example end to end (`examples/ntier`): its images built by its own script from
//! Debian packages and the example program, pushed to a real registry, its manifests applied
//! unchanged (but for the registry's address) to a single-node cluster with the embedded store,
//! then used as a user would: the page through the Ingress, documents created, read, updated
//! and deleted through the API (which reaches PostgreSQL by service DNS), the data still there
//! after the database pod is deleted, requests spread over five API replicas, the network
//! policies holding (the frontend cannot open a connection to the database), and headless
//! Chromium adding an item through the page, with a screenshot.
//!
//! Needs root, runc, nftables, curl, chromium, the test packages and the Debian archive (the
//! image script downloads PostgreSQL's packages into .tmp/ntier/debs once).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use maestro_e2e::browser::Browser;
use maestro_e2e::registry::{Registry, RegistryAuth};
use maestro_e2e::{Cluster, Kubectl, eventually, run};
use serde_json::{Value, json};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The example program, built in a target directory of its own (without debug info, to keep
/// the images small) so that this test never waits on the workspace's build lock.
fn ntier_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NTIER_BIN") {
        return PathBuf::from(path);
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ntier-build");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .args([
            "build",
            "--locked",
            "-p",
            "maestro-ntier",
            "--manifest-path",
        ])
        .arg(workspace().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env("CARGO_PROFILE_DEV_STRIP", "true"))
    .expect("building the example program");
    target.join("debug/ntier")
}

/// The example's manifests as one document stream, images from `registry`.
fn manifests(registry: &str) -> String {
    let dir = workspace().join("examples/ntier/manifests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
        .replace("127.0.0.1:5000/", &format!("{registry}/"))
}

/// One HTTP exchange with curl: status, headers (lower-case names), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: not JSON: {}", self.body))
    }
}

fn http(method: &str, url: &str, body: Option<&str>) -> Reply {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "-m", "10", "-X", method, url]);
    if let Some(body) = body {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

fn api_pods(cluster: &Cluster) -> BTreeSet<String> {
    cluster
        .live_pods("ntier", "app=api")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn titles(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {items}"))
        .iter()
        .filter_map(|i| i["title"].as_str().map(String::from))
        .collect()
}

#[test]
fn the_ntier_example_runs_end_to_end() {
    let scratch = tempfile::Builder::new()
        .prefix("maestro-e2e-ntier-")
        .tempdir()
        .unwrap();
    let registry = Registry::start(scratch.path(), &RegistryAuth::None).unwrap();
    let registry_host = registry.host();
    run(
        Command::new(workspace().join("examples/ntier/build-images"))
            .arg(&registry_host)
            .env("NTIER_BIN", ntier_binary()),
    )
    .expect("building the example's images");

    let cluster =
        Cluster::start_node_with_ingress(env!("CARGO_BIN_EXE_maestro"), Kubectl::v1_34(), &[]);
    let [http_port, ..] = cluster.node.as_ref().unwrap().ingress_ports.unwrap();
    let applied = cluster.ok_stdin(&["apply", "-f", "-"], Some(&manifests(&registry_host)));
    assert!(applied.contains("statefulset.apps/db created"), "{applied}");
    for workload in ["statefulset/db", "deployment/api", "deployment/web"] {
        cluster.ok(&[
            "rollout",
            "status",
            "-n",
            "ntier",
            workload,
            "--timeout=300s",
        ]);
    }
    let claim = cluster.json(&["get", "pvc", "-n", "ntier", "data-db-0", "-o", "json"]);
    assert_eq!(claim["status"]["phase"], "Bound", "{claim}");
    assert_eq!(
        claim["spec"]["storageClassName"], "local-path",
        "the default class"
    );
    let volume = claim["spec"]["volumeName"].as_str().unwrap().to_string();

    let base = format!("http://127.0.0.1:{http_port}");
    // The tiers are ready; the Ingress routes to them as soon as its controller has the
    // endpoints.
    assert!(
        eventually(Duration::from_secs(30), || http(
            "GET",
            &format!("{base}/api/items"),
            None
        )
        .status
            == 200),
        "the API never answered through the Ingress:\n{}",
        cluster.ok(&[
            "get",
            "all,ingress,endpointslices",
            "-n",
            "ntier",
            "-o",
            "wide"
        ])
    );

    // The page, with the title from the ConfigMap.
    let page = http("GET", &format!("{base}/"), None);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<title>Things to do</title>"),
        "{}",
        page.body
    );

    // From the node itself through the frontend's ClusterIP (the replies come back addressed to
    // the service address, which the proxy must let through).
    let web_ip = cluster.ok(&[
        "get",
        "svc",
        "-n",
        "ntier",
        "web",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let via_service = http("GET", &format!("http://{web_ip}:8080/api/items"), None);
    assert_eq!(via_service.status, 200, "{}", via_service.body);
    assert!(
        via_service.header("x-frontend").is_some(),
        "through the frontend's proxy"
    );

    // Create, read, update, delete through the API; the API keeps the documents in PostgreSQL.
    let created = http(
        "POST",
        &format!("{base}/api/items"),
        Some(r#"{"title": "write the report", "done": false, "tags": ["work"]}"#),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_i64().expect("an id");
    assert_eq!(
        created.header("location"),
        Some(format!("/api/items/{id}").as_str())
    );
    let item = format!("{base}/api/items/{id}");
    let read = http("GET", &item, None);
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["title"], "write the report");
    assert_eq!(read.json()["tags"], json!(["work"]));
    let updated = http(
        "PUT",
        &item,
        Some(r#"{"title": "write the report", "done": true}"#),
    );
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.json()["done"], true);
    assert!(
        updated.json().get("tags").is_none(),
        "PUT replaces the document"
    );
    let found = http(
        "GET",
        &format!("{base}/api/items?title=write%20the%20report"),
        None,
    );
    assert_eq!(titles(&found.json()), ["write the report"]);
    let done = http("GET", &format!("{base}/api/items?done=true"), None);
    assert_eq!(
        titles(&done.json()),
        ["write the report"],
        "a boolean field"
    );
    let none = http(
        "GET",
        &format!("{base}/api/items?title=nothing%20like%20it"),
        None,
    );
    assert_eq!(none.json(), json!([]));
    let stored = cluster.ok(&[
        "exec", "-n", "ntier", "db-0", "--", "psql", "--username=ntier", "--dbname=ntier",
        "--tuples-only", "--no-align", "--command",
        "SELECT doc->>'title' FROM items WHERE (doc->>'done')::boolean AND jsonb_typeof(doc) = 'object'",
    ]);
    assert_eq!(
        stored.trim(),
        "write the report",
        "the row is JSONB in PostgreSQL"
    );
    for (body, why) in [
        ("not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
    ] {
        let refused = http("POST", &format!("{base}/api/items"), Some(body));
        assert_eq!(refused.status, 400, "{body}");
        assert!(
            refused.json()["error"].as_str().unwrap().contains(why),
            "{}",
            refused.body
        );
    }
    assert_eq!(
        http("GET", &format!("{base}/api/items/999999"), None).status,
        404
    );
    assert_eq!(
        http("GET", &format!("{base}/api/items/abc"), None).status,
        404
    );
    assert_eq!(http("DELETE", &item, None).status, 204);
    assert_eq!(http("GET", &item, None).status, 404);
    assert_eq!(http("DELETE", &item, None).status, 404);

    // The data outlives the database pod: the StatefulSet's replacement mounts the same volume.
    let kept = http(
        "POST",
        &format!("{base}/api/items"),
        Some(r#"{"title": "survive a restart"}"#),
    );
    assert_eq!(kept.status, 201);
    let old_uid = cluster.ok(&[
        "get",
        "pod",
        "-n",
        "ntier",
        "db-0",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    cluster.ok(&["delete", "pod", "-n", "ntier", "db-0", "--timeout=60s"]);
    assert!(
        eventually(Duration::from_secs(90), || {
            let pod = cluster.json(&["get", "pod", "-n", "ntier", "db-0", "-o", "json"]);
            pod["metadata"]["uid"] != old_uid.as_str()
                && maestro_e2e::condition(&pod, "Ready") == Some("True")
        }),
        "db-0 did not come back:\n{}",
        cluster.ok(&["describe", "pod", "-n", "ntier", "db-0"])
    );
    assert!(
        eventually(Duration::from_secs(60), || {
            let list = http("GET", &format!("{base}/api/items"), None);
            list.status == 200 && titles(&list.json()) == ["survive a restart"]
        }),
        "the document did not survive the database pod's replacement: {}",
        http("GET", &format!("{base}/api/items"), None).body
    );
    let claim = cluster.json(&["get", "pvc", "-n", "ntier", "data-db-0", "-o", "json"]);
    assert_eq!(
        claim["spec"]["volumeName"],
        volume.as_str(),
        "the same volume"
    );

    // Five API replicas share the requests.
    cluster.ok(&["scale", "-n", "ntier", "deployment/api", "--replicas=5"]);
    cluster.ok(&[
        "rollout",
        "status",
        "-n",
        "ntier",
        "deployment/api",
        "--timeout=120s",
    ]);
    let replicas = api_pods(&cluster);
    assert_eq!(replicas.len(), 5, "{replicas:?}");
    let mut served = BTreeSet::new();
    assert!(
        eventually(Duration::from_secs(30), || {
            for _ in 0..20 {
                let reply = http("GET", &format!("{base}/api/items"), None);
                if reply.status == 200 {
                    served.extend(reply.header("x-served-by").map(String::from));
                }
            }
            served == replicas
        }),
        "requests reached {served:?} of {replicas:?}"
    );

    // The audit's rules: the frontend cannot open a connection to the database, the API can,
    // and the database reaches nothing beyond name lookups.
    let from_web = cluster.run(&[
        "exec",
        "-n",
        "ntier",
        "deployment/web",
        "--",
        "ntier",
        "connect",
        "db:5432",
    ]);
    assert!(
        !from_web.status.success(),
        "the frontend reached the database"
    );
    assert!(
        String::from_utf8_lossy(&from_web.stderr).contains("cannot connect to db:5432"),
        "{}",
        String::from_utf8_lossy(&from_web.stderr)
    );
    let from_api = cluster.ok(&[
        "exec",
        "-n",
        "ntier",
        "deployment/api",
        "--",
        "ntier",
        "connect",
        "db:5432",
    ]);
    assert!(from_api.contains("connected to db:5432"), "{from_api}");
    let from_db = cluster.run(&[
        "exec", "-n", "ntier", "db-0", "--", "nc", "-w", "2", "web", "8080",
    ]);
    assert!(
        !from_db.status.success(),
        "the database reached the frontend"
    );

    // A user adds an item through the page in a real browser.
    let mut browser = Browser::launch(1000, 700).unwrap();
    browser.navigate(&format!("{base}/")).unwrap();
    browser
        .wait_for(
            "document.getElementById('status').textContent.includes('served by API replica')",
            Duration::from_secs(20),
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", browser.log()));
    let title = "Buy oat milk (added in Chromium)";
    browser.type_into("#title", title).unwrap();
    browser.click("#add-button").unwrap();
    let shown = browser
        .wait_for(
            &format!(
                "(() => {{ const t = [...document.querySelectorAll('#items .title')].map(e => e.textContent); return t.includes({}) ? t : null; }})()",
                json!(title)
            ),
            Duration::from_secs(20),
        )
        .unwrap_or_else(|e| panic!("the page never showed the new item: {e:#}"));
    assert_eq!(
        shown,
        json!(["survive a restart", title]),
        "the page lists both items"
    );
    let status = browser
        .evaluate("document.getElementById('status').textContent")
        .unwrap();
    assert!(
        status
            .as_str()
            .unwrap()
            .starts_with("2 items · served by API replica api-"),
        "{status}"
    );
    assert_eq!(
        browser
            .evaluate("document.getElementById('title').value")
            .unwrap(),
        "",
        "the field is cleared after adding"
    );
    let screenshot = browser
        .screenshot(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("ntier/browser-check.png"))
        .unwrap();
    println!("screenshot: {}", screenshot.display());
    // What the browser added is in the database.
    let list = http(
        "GET",
        &format!(
            "{base}/api/items?title={}",
            "Buy%20oat%20milk%20(added%20in%20Chromium)"
        ),
        None,
    );
    assert_eq!(titles(&list.json()), [title]);
}
