//! kubectl scenarios against a real maestro server, run with kubectl 1.33 (from the machine
//! image) and 1.34 (from PyPI), each with default flags: client-side validation on, OpenAPI
//! fetched from the server, protobuf bodies for `kubectl create <generator>`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use maestro_e2e::{Cluster, Kubectl, eventually};
use serde_json::Value;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: registry.local/web:1
        env:
        - {name: MODE, value: prod}
        - {name: DEBUG, value: "0"}
        ports: [{containerPort: 8080}]
      - name: sidecar
        image: registry.local/proxy:1
"#;

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    i["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn exists(c: &Cluster, args: &[&str]) -> bool {
    c.run(args).status.success()
}

pub fn discovery(c: &Cluster) {
    let resources = c.ok(&["api-resources"]);
    for expected in [
        "deployments",
        "deploy",
        "apps/v1",
        "horizontalpodautoscalers",
        "customresourcedefinitions",
        "networkpolicies",
        "leases",
    ] {
        assert!(
            resources.contains(expected),
            "api-resources lacks {expected}:\n{resources}"
        );
    }
    let versions = c.ok(&["api-versions"]);
    for expected in [
        "v1",
        "apps/v1",
        "batch/v1",
        "autoscaling/v1",
        "autoscaling/v2",
        "policy/v1",
        "rbac.authorization.k8s.io/v1",
    ] {
        assert!(
            versions.lines().any(|l| l == expected),
            "api-versions lacks {expected}:\n{versions}"
        );
    }
    let namespaced = c.ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    assert!(namespaced.lines().any(|l| l == "namespaces"));
    assert!(!namespaced.lines().any(|l| l == "pods"));
    let version: Value = serde_json::from_str(&c.ok(&["version", "-o", "json"])).unwrap();
    assert_eq!(version["serverVersion"]["minor"], "33");
}

pub fn apply_three_way(c: &Cluster) {
    assert!(
        c.ok_stdin(&["apply", "-f", "-"], Some(DEPLOYMENT))
            .contains("deployment.apps/web created")
    );
    let d = c.json(&["get", "deployment", "web"]);
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Applying the same manifest again changes nothing.
    assert!(
        c.ok_stdin(&["apply", "-f", "-"], Some(DEPLOYMENT))
            .contains("unchanged")
    );
    // Remove the sidecar and an env var, change the image.
    let changed = DEPLOYMENT
        .replace("registry.local/web:1", "registry.local/web:2")
        .replace("        - {name: DEBUG, value: \"0\"}\n", "")
        .replace(
            "      - name: sidecar\n        image: registry.local/proxy:1\n",
            "",
        );
    assert!(
        c.ok_stdin(&["apply", "-f", "-"], Some(&changed))
            .contains("configured")
    );
    let d = c.json(&["get", "deployment", "web"]);
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0]["image"], "registry.local/web:2");
    let env = containers[0]["env"].as_array().unwrap();
    assert_eq!(env.len(), 1);
    assert_eq!(env[0]["name"], "MODE");
    assert_eq!(
        containers[0]["ports"][0]["containerPort"], 8080,
        "fields not in the patch are kept"
    );
    assert_eq!(d["metadata"]["generation"], 2);
    // A change made outside apply survives the next apply (three-way merge).
    c.ok(&["label", "deployment", "web", "owner=ops"]);
    c.ok_stdin(&["apply", "-f", "-"], Some(&changed));
    assert_eq!(
        c.json(&["get", "deployment", "web"])["metadata"]["labels"]["owner"],
        "ops"
    );
}

pub fn get_outputs(c: &Cluster) {
    c.ok_stdin(&["apply", "-f", "-"], Some(DEPLOYMENT));
    let table = c.ok(&["get", "deployments"]);
    let header = table.lines().next().unwrap();
    for col in ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(!header.contains("CONTAINERS"));
    let wide = c.ok(&["get", "deployments", "-o", "wide"]);
    assert!(
        wide.lines().next().unwrap().contains("CONTAINERS"),
        "{wide}"
    );
    assert!(wide.contains("app,sidecar"), "{wide}");
    let yaml = c.ok(&["get", "deployment", "web", "-o", "yaml"]);
    let parsed: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(parsed["kind"], "Deployment");
    assert!(
        parsed["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty())
    );
    let name = c.ok(&["get", "deploy", "-o", "name"]);
    assert_eq!(name.trim(), "deployment.apps/web");
    let all = c.ok(&["get", "all"]);
    assert!(all.contains("deployment.apps/web"), "{all}");
    let list = c.json(&["get", "deployments", "-A"]);
    assert_eq!(names(&list), vec!["web"]);
    let ns = c.ok(&["get", "namespaces"]);
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(ns.contains(name), "{ns}");
    }
    let selected = c.json(&["get", "deployments", "-l", "app in (web,db),app!=x"]);
    assert_eq!(names(&selected), vec!["web"]);
    let none = c.json(&["get", "deployments", "-l", "!app"]);
    assert!(names(&none).is_empty());
    let by_field = c.json(&[
        "get",
        "deployments",
        "--field-selector",
        "metadata.name=web",
    ]);
    assert_eq!(names(&by_field), vec!["web"]);
    let bad = c.fails(&["get", "pods", "--field-selector", "spec.bogus=1"], None);
    assert!(bad.contains("field label not supported"), "{bad}");
}

pub fn watch(c: &Cluster) {
    let mut child = Command::new(&c.kubectl.path)
        .env("KUBECONFIG", c.kubeconfig())
        .args([
            "--cache-dir",
            c.dir.path().join("watch-cache").to_str().unwrap(),
        ])
        .args([
            "get",
            "configmaps",
            "-w",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    c.ok(&["create", "configmap", "watched", "--from-literal=v=1"]);
    c.ok(&[
        "patch",
        "configmap",
        "watched",
        "--type=merge",
        "-p",
        r#"{"data":{"v":"2"}}"#,
    ]);
    c.ok(&["delete", "configmap", "watched"]);
    std::thread::sleep(Duration::from_millis(800));
    let _ = child.kill();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let _ = child.wait();
    let events: Vec<(String, String, String)> = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map(|e| e.expect("kubectl prints JSON events"))
        .map(|e| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&e["type"]),
                s(&e["object"]["metadata"]["name"]),
                s(&e["object"]["data"]["v"]),
            )
        })
        .filter(|(_, name, _)| name == "watched")
        .collect();
    let expected: Vec<(String, String, String)> =
        [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]
            .iter()
            .map(|(t, v)| (t.to_string(), "watched".to_string(), v.to_string()))
            .collect();
    assert_eq!(events, expected, "{out}");
}

pub fn label_annotate(c: &Cluster) {
    c.ok(&["create", "configmap", "tags", "--from-literal=a=b"]);
    c.ok(&["label", "configmap", "tags", "tier=web", "env=prod"]);
    let err = c.fails(&["label", "configmap", "tags", "tier=db"], None);
    assert!(err.contains("already has a value"), "{err}");
    c.ok(&["label", "configmap", "tags", "tier=db", "--overwrite"]);
    c.ok(&["label", "configmap", "tags", "env-"]);
    c.ok(&["annotate", "configmap", "tags", "note=hello world"]);
    let cm = c.json(&["get", "configmap", "tags"]);
    assert_eq!(cm["metadata"]["labels"], serde_json::json!({"tier": "db"}));
    assert_eq!(cm["metadata"]["annotations"]["note"], "hello world");
    let bad = c.fails(&["label", "configmap", "tags", "bad key=1"], None);
    assert!(!bad.is_empty());
}

pub fn patches(c: &Cluster) {
    c.ok_stdin(&["apply", "-f", "-"], Some(DEPLOYMENT));
    // Strategic merge: containers merge by name.
    c.ok(&["patch", "deployment", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"registry.local/proxy:2"}]}}}}"#]);
    let d = c.json(&["get", "deployment", "web"]);
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    let sidecar = containers.iter().find(|c| c["name"] == "sidecar").unwrap();
    assert_eq!(sidecar["image"], "registry.local/proxy:2");
    // Strategic merge delete directive.
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","$patch":"delete"}]}}}}"#,
    ]);
    assert_eq!(
        c.json(&["get", "deployment", "web"])["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Merge patch replaces lists.
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"patched":"merge"}}}"#,
    ]);
    // JSON patch.
    c.ok(&["patch", "deployment", "web", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/replicas","value":4},{"op":"add","path":"/metadata/labels/json","value":"yes"}]"#]);
    let d = c.json(&["get", "deployment", "web"]);
    assert_eq!(d["spec"]["replicas"], 4);
    assert_eq!(d["metadata"]["labels"]["patched"], "merge");
    assert_eq!(d["metadata"]["labels"]["json"], "yes");
    let failed = c.fails(
        &[
            "patch",
            "deployment",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
        ],
        None,
    );
    assert!(!failed.is_empty());
    // Patch on status only touches status.
    c.ok(&[
        "patch",
        "deployment",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Patched","status":"True"}]}}"#,
    ]);
    // The Deployment controller rewrites the counts and conditions it owns and keeps others.
    let d = c.json(&["get", "deployment", "web"]);
    let conditions = d["status"]["conditions"].as_array().unwrap();
    assert!(conditions.iter().any(|c| c["type"] == "Patched"), "{d}");
    assert_eq!(d["spec"]["replicas"], 4);
}

pub fn scale(c: &Cluster) {
    c.ok_stdin(&["apply", "-f", "-"], Some(DEPLOYMENT));
    assert!(
        c.ok(&["scale", "deployment", "web", "--replicas=5"])
            .contains("scaled")
    );
    assert_eq!(c.json(&["get", "deployment", "web"])["spec"]["replicas"], 5);
    let err = c.fails(
        &[
            "scale",
            "deployment",
            "web",
            "--current-replicas=3",
            "--replicas=1",
        ],
        None,
    );
    assert!(!err.is_empty());
    assert_eq!(c.json(&["get", "deployment", "web"])["spec"]["replicas"], 5);
    let scale = c.ok(&[
        "get",
        "--raw",
        "/apis/apps/v1/namespaces/default/deployments/web/scale",
    ]);
    let scale: Value = serde_json::from_str(&scale).unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["status"]["selector"], "app=web");
}

fn owned_configmaps(c: &Cluster, owner: &str) {
    c.ok(&["create", "configmap", owner]);
    let uid = c.ok(&["get", "configmap", owner, "-o", "jsonpath={.metadata.uid}"]);
    for i in 0..2 {
        let manifest = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {owner}-child{i}\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: {owner}, uid: {uid}, blockOwnerDeletion: true}}\n"
        );
        c.ok_stdin(&["apply", "-f", "-"], Some(&manifest));
    }
}

pub fn delete_cascades(c: &Cluster) {
    owned_configmaps(c, "bg");
    c.ok(&["delete", "configmap", "bg"]);
    assert!(
        eventually(Duration::from_secs(10), || !exists(
            c,
            &["get", "configmap", "bg-child0"]
        ) && !exists(
            c,
            &["get", "configmap", "bg-child1"]
        )),
        "background cascade left dependents"
    );

    owned_configmaps(c, "fg");
    c.ok(&["delete", "configmap", "fg", "--cascade=foreground"]);
    // kubectl waited for the owner; in the foreground the dependents went first.
    assert!(!exists(c, &["get", "configmap", "fg"]));
    assert!(!exists(c, &["get", "configmap", "fg-child0"]));

    owned_configmaps(c, "or");
    c.ok(&["delete", "configmap", "or", "--cascade=orphan"]);
    assert!(!exists(c, &["get", "configmap", "or"]));
    let child = c.json(&["get", "configmap", "or-child0"]);
    assert!(
        child["metadata"].get("ownerReferences").is_none(),
        "orphaned dependents lose the reference: {child}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        exists(c, &["get", "configmap", "or-child1"]),
        "orphans are kept"
    );
}

pub fn finalizers_and_wait(c: &Cluster) {
    c.ok_stdin(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n"));
    c.ok(&["delete", "configmap", "held", "--wait=false"]);
    let held = c.json(&["get", "configmap", "held"]);
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    let waiter = Command::new(&c.kubectl.path)
        .env("KUBECONFIG", c.kubeconfig())
        .args([
            "--cache-dir",
            c.dir.path().join("wait-cache").to_str().unwrap(),
        ])
        .args(["wait", "--for=delete", "configmap/held", "--timeout=20s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.ok(&[
        "patch",
        "configmap",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    let out = waiter.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "wait --for=delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.ok(&["create", "configmap", "ready", "--from-literal=state=on"]);
    c.ok(&[
        "wait",
        "--for=jsonpath={.data.state}=on",
        "configmap/ready",
        "--timeout=10s",
    ]);
}

pub fn explain(c: &Cluster) {
    let out = c.ok(&["explain", "deployment.spec.replicas"]);
    assert!(out.contains("replicas") && out.contains("integer"), "{out}");
    let out = c.ok(&["explain", "pods.spec.containers"]);
    assert!(out.contains("image"), "{out}");
    let out = c.ok(&["explain", "services", "--recursive"]);
    assert!(out.contains("clusterIP"), "{out}");
}

pub fn create_generators(c: &Cluster) {
    c.ok(&[
        "create",
        "configmap",
        "gen-cm",
        "--from-literal=a=b",
        "--from-literal=empty=",
    ]);
    let cm = c.json(&["get", "configmap", "gen-cm"]);
    assert_eq!(cm["data"], serde_json::json!({"a": "b", "empty": ""}));
    c.ok(&[
        "create",
        "secret",
        "generic",
        "gen-secret",
        "--from-literal=user=admin",
    ]);
    let secret = c.json(&["get", "secret", "gen-secret"]);
    assert_eq!(secret["data"]["user"], "YWRtaW4=");
    assert_eq!(secret["type"], "Opaque");
    c.ok(&[
        "create",
        "deployment",
        "gen-deploy",
        "--image=registry.local/app:1",
        "--replicas=3",
    ]);
    let d = c.json(&["get", "deployment", "gen-deploy"]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/app:1"
    );
    c.ok(&["create", "namespace", "gen-ns"]);
    assert!(eventually(Duration::from_secs(5), || exists(
        c,
        &["get", "serviceaccount", "default", "-n", "gen-ns"]
    )));
    assert!(exists(
        c,
        &["get", "configmap", "kube-root-ca.crt", "-n", "gen-ns"]
    ));
    c.ok(&["create", "service", "clusterip", "gen-svc", "--tcp=80:8080"]);
    let svc = c.json(&["get", "service", "gen-svc"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    c.ok(&["create", "job", "gen-job", "--image=registry.local/job:1"]);
    c.ok(&[
        "create",
        "cronjob",
        "gen-cron",
        "--image=registry.local/job:1",
        "--schedule=*/5 * * * *",
    ]);
    assert_eq!(
        c.json(&["get", "cronjob", "gen-cron"])["spec"]["schedule"],
        "*/5 * * * *"
    );
    c.ok(&["create", "serviceaccount", "gen-sa"]);
    c.ok(&[
        "create",
        "quota",
        "gen-quota",
        "--hard=pods=20,configmaps=50",
    ]);
    assert_eq!(
        c.json(&["get", "quota", "gen-quota"])["spec"]["hard"]["pods"],
        "20"
    );
    c.ok(&["create", "priorityclass", "gen-pc", "--value=100"]);
    c.ok(&[
        "create",
        "poddisruptionbudget",
        "gen-pdb",
        "--selector=app=x",
        "--min-available=1",
    ]);
    c.ok(&[
        "create",
        "ingress",
        "gen-ing",
        "--rule=example.com/api=gen-svc:80",
    ]);
    c.ok(&[
        "create",
        "role",
        "gen-role",
        "--verb=get",
        "--resource=pods",
    ]);
    c.ok(&[
        "create",
        "rolebinding",
        "gen-rb",
        "--role=gen-role",
        "--serviceaccount=default:gen-sa",
    ]);
    c.ok(&["run", "gen-pod", "--image=registry.local/app:1"]);
    let pod = c.json(&["get", "pod", "gen-pod"]);
    assert_eq!(pod["status"]["phase"], "Pending");
    // Server-side dry run stores nothing.
    c.ok(&[
        "create",
        "configmap",
        "dry",
        "--from-literal=a=b",
        "--dry-run=server",
    ]);
    assert!(!exists(c, &["get", "configmap", "dry"]));
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              color: {type: string, enum: [red, blue], default: red}
          status:
            type: object
            properties:
              phase: {type: string}
"#;

pub fn custom_resources(c: &Cluster) {
    c.ok_stdin(&["apply", "-f", "-"], Some(CRD));
    c.ok(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.example.com",
        "--timeout=10s",
    ]);
    c.ok_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n"),
    );
    let w = c.json(&["get", "widget", "w1"]);
    assert_eq!(w["spec"]["color"], "red", "schema defaults apply");
    assert_eq!(w["metadata"]["generation"], 1);
    let table = c.ok(&["get", "wd"]);
    assert!(table.lines().next().unwrap().contains("SIZE"), "{table}");
    assert!(table.contains('3'), "{table}");
    let unknown = c.fails(&["apply", "-f", "-"], Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 1, shape: round}\n"));
    assert!(
        unknown.contains("unknown field") && unknown.contains("spec.shape"),
        "{unknown}"
    );
    let invalid = c.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {size: 0}\n"),
    );
    assert!(
        invalid.contains("spec.size") && invalid.contains("greater than or equal to 1"),
        "{invalid}"
    );
    c.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ]);
    // Custom resources have no strategic merge patch: 415, as in Kubernetes.
    let smp = c.fails(
        &[
            "patch",
            "widget",
            "w1",
            "-p",
            r#"{"spec":{"color":"blue"}}"#,
        ],
        None,
    );
    assert!(
        smp.contains("application/strategic-merge-patch+json is not supported"),
        "{smp}"
    );
    c.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/color","value":"blue"}]"#,
    ]);
    let w = c.json(&["get", "widget", "w1"]);
    assert_eq!(
        (w["spec"]["size"].as_i64(), w["spec"]["color"].as_str()),
        (Some(5), Some("blue"))
    );
    assert_eq!(w["metadata"]["generation"], 3);
    c.ok(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Ready"}}"#,
    ]);
    let w = c.json(&["get", "widget", "w1"]);
    assert_eq!(w["status"]["phase"], "Ready");
    assert_eq!(
        w["metadata"]["generation"], 3,
        "status writes do not bump generation"
    );
    let explained = c.ok(&["explain", "widgets.spec"]);
    assert!(explained.contains("size"), "{explained}");
    c.ok(&["delete", "crd", "widgets.example.com"]);
    assert!(eventually(Duration::from_secs(10), || !c
        .ok(&["api-resources"])
        .contains("widgets")));
}

pub fn bad_input(c: &Cluster) {
    let unknown = c.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: strict}\nbogus: 1\n"),
    );
    assert!(unknown.contains("unknown field \"bogus\""), "{unknown}");
    assert!(!exists(c, &["get", "configmap", "strict"]));
    let invalid_name = c.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_Valid}\n"),
    );
    assert!(
        invalid_name.contains("is invalid") && invalid_name.contains("metadata.name"),
        "{invalid_name}"
    );
    let bad_label = c.fails(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lbl, labels: {\"a b\": c}}\n"),
    );
    assert!(bad_label.contains("metadata.labels"), "{bad_label}");
    // Immutable selector.
    c.ok_stdin(&["apply", "-f", "-"], Some(DEPLOYMENT));
    let immutable = c.fails(&["patch", "deployment", "web", "--type=merge", "-p", r#"{"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"other"}}}}}"#], None);
    assert!(immutable.contains("field is immutable"), "{immutable}");
    // Stale resourceVersion.
    let d = c.json(&["get", "deployment", "web"]);
    c.ok(&["label", "deployment", "web", "bump=1"]);
    let mut stale = d.clone();
    stale["spec"]["replicas"] = serde_json::json!(7);
    let conflict = c.fails(&["replace", "-f", "-"], Some(&stale.to_string()));
    assert!(
        conflict.contains("the object has been modified"),
        "{conflict}"
    );
    // Wrong kind for the endpoint is refused by the server, nothing is written.
    let wrong = c.fails(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            "-",
        ],
        Some(r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#),
    );
    assert!(
        wrong.contains("does not match the expected kind"),
        "{wrong}"
    );
    let malformed = c.fails(
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            "-",
        ],
        Some("{not json"),
    );
    assert!(!malformed.is_empty());
    assert!(!exists(c, &["get", "configmap", "x"]));
    // The server keeps serving.
    c.ok(&["get", "configmaps"]);
}

pub fn namespace_lifecycle(c: &Cluster) {
    c.ok_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: doomed}\n"),
    );
    c.ok(&["create", "configmap", "inside", "-n", "doomed"]);
    c.ok_stdin(&["apply", "-n", "doomed", "-f", "-"], Some(DEPLOYMENT));
    c.ok_stdin(&["apply", "-n", "doomed", "-f", "-"], Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: blocker\n  finalizers: [example.com/block]\n"));
    c.ok(&["delete", "namespace", "doomed", "--wait=false"]);
    assert!(eventually(Duration::from_secs(10), || c.json(&[
        "get",
        "namespace",
        "doomed"
    ])["status"]["phase"]
        == "Terminating"));
    let refused = c.fails(&["create", "configmap", "late", "-n", "doomed"], None);
    assert!(refused.contains("being terminated"), "{refused}");
    assert!(eventually(Duration::from_secs(10), || !exists(
        c,
        &["get", "deployment", "web", "-n", "doomed"]
    )));
    assert!(
        exists(c, &["get", "namespace", "doomed"]),
        "a finalizer holds the namespace"
    );
    c.ok(&[
        "patch",
        "configmap",
        "blocker",
        "-n",
        "doomed",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    assert!(
        eventually(Duration::from_secs(10), || !exists(
            c,
            &["get", "namespace", "doomed"]
        )),
        "namespace should be gone"
    );
}

pub fn server_side_apply(c: &Cluster) {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: \"1\", b: \"2\"}\n";
    c.ok_stdin(&["apply", "--server-side", "-f", "-"], Some(cm));
    c.ok_stdin(
        &["apply", "--server-side", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: \"1\"}\n"),
    );
    let live = c.json(&["get", "configmap", "ssa"]);
    assert_eq!(
        live["data"],
        serde_json::json!({"a": "1"}),
        "fields no longer applied are removed"
    );
    let conflict = c.fails(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: \"9\"}\n"),
    );
    assert!(conflict.contains("conflict"), "{conflict}");
    c.ok_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: \"9\"}\n"),
    );
    assert_eq!(c.json(&["get", "configmap", "ssa"])["data"]["a"], "9");
}

pub fn generate_name(c: &Cluster) {
    let out = c.ok_stdin(
        &["create", "-f", "-", "-o", "name"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: job-}\n"),
    );
    let name = out.trim().trim_start_matches("configmap/");
    assert!(name.starts_with("job-") && name.len() == 9, "{name}");
    assert!(
        name[4..]
            .chars()
            .all(|ch| "bcdfghjklmnpqrstvwxz2456789".contains(ch)),
        "{name}"
    );
}

pub fn converted_versions_and_describe(c: &Cluster) {
    c.ok_stdin(&["apply", "-f", "-"], Some(DEPLOYMENT));
    // kubectl autoscale posts autoscaling/v1 (1.32) or v2 (1.33+) in protobuf; both views agree.
    c.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=5",
        "--cpu-percent=70",
    ]);
    let v2 = c.json(&["get", "horizontalpodautoscalers.v2.autoscaling", "web"]);
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        70
    );
    let v1 = c.json(&["get", "horizontalpodautoscalers.v1.autoscaling", "web"]);
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
    assert_eq!(v1["spec"]["maxReplicas"], 5);
    // A core event is also an events.k8s.io event.
    let uid = c.ok(&["get", "deployment", "web", "-o", "jsonpath={.metadata.uid}"]);
    let event = format!(
        "apiVersion: v1\nkind: Event\nmetadata: {{name: web.1}}\ninvolvedObject: {{apiVersion: apps/v1, kind: Deployment, name: web, namespace: default, uid: {uid}}}\nreason: ScalingReplicaSet\nmessage: Scaled up replica set web-1 to 2\ntype: Normal\nsource: {{component: deployment-controller}}\ncount: 1\n"
    );
    c.ok_stdin(&["create", "-f", "-"], Some(&event));
    let new = c.json(&["get", "events.v1.events.k8s.io", "web.1"]);
    assert_eq!(new["note"], "Scaled up replica set web-1 to 2");
    assert_eq!(new["regarding"]["name"], "web");
    let described = c.ok(&["describe", "deployment", "web"]);
    assert!(
        described.contains("ScalingReplicaSet"),
        "describe shows the object's events:\n{described}"
    );
    assert!(described.contains("registry.local/web:1"), "{described}");
    let events = c.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web,reason=ScalingReplicaSet",
    ]);
    assert!(events.contains("Scaled up replica set"), "{events}");
    let metrics = c.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics.contains("apiserver_request_total{verb=\"POST\",resource=\"events\",code=\"201\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("apiserver_storage_size_bytes"),
        "{metrics}"
    );
}

pub fn service_account_tokens(c: &Cluster) {
    c.ok(&["create", "serviceaccount", "robot"]);
    let token = c
        .ok(&["create", "token", "robot", "--duration=1h"])
        .trim()
        .to_string();
    assert_eq!(token.matches('.').count(), 2, "a JWT: {token}");
    let as_robot = |args: &[&str]| {
        let mut full = vec!["--token", token.as_str()];
        full.extend_from_slice(args);
        c.run(&full)
    };
    assert!(
        as_robot(&["get", "namespaces"]).status.success(),
        "the token authenticates"
    );
    let short = c.fails(&["create", "token", "robot", "--duration=1m"], None);
    assert!(
        short.contains("may not specify a duration less than 10 minutes"),
        "{short}"
    );
    let missing = c.fails(&["create", "token", "nobody"], None);
    assert!(missing.contains("not found"), "{missing}");
    c.ok(&["delete", "serviceaccount", "robot"]);
    let out = as_robot(&["get", "namespaces"]);
    assert!(
        !out.status.success(),
        "a deleted account's token no longer authenticates"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthorized"));
}

/// Claims and volumes without a node: the default StorageClass is filled in and waits for a
/// consumer; a claim that asks for no class binds to the smallest hand-made volume big enough,
/// one that nothing fits waits until a volume that does appears, a claim or volume in use is
/// kept until it is not, and a deleted claim releases its volume (Retain keeps it).
pub fn persistent_volumes(c: &Cluster) {
    let classes = c.ok(&["get", "storageclass"]);
    assert!(classes.contains("local-path (default)"), "{classes}");
    assert!(classes.contains("WaitForFirstConsumer"), "{classes}");
    let volume = |name: &str, size: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {name}}}\nspec:\n  \
             capacity: {{storage: {size}}}\n  accessModes: [ReadWriteOnce]\n  \
             hostPath: {{path: /srv/{name}}}\n"
        )
    };
    let claim = |name: &str, size: &str, class: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n  \
             {class}accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: {size}}}}}\n"
        )
    };
    let phase =
        |kind: &str, name: &str| c.ok(&["get", kind, name, "-o", "jsonpath={.status.phase}"]);
    let volumes = [
        volume("small", "500Mi"),
        volume("medium", "2Gi"),
        volume("big", "5Gi"),
    ];
    c.ok_stdin(&["apply", "-f", "-"], Some(&volumes.join("---\n")));
    let claims = [
        claim("later", "1Gi", ""),
        claim("manual", "1Gi", "storageClassName: \"\"\n  "),
        claim("waiting", "10Gi", "storageClassName: \"\"\n  "),
    ];
    c.ok_stdin(&["apply", "-f", "-"], Some(&claims.join("---\n")));

    let later = c.json(&["get", "pvc", "later", "-o", "json"]);
    assert_eq!(
        later["spec"]["storageClassName"], "local-path",
        "the default class"
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            c.ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=later",
            ])
            .contains("waiting for first consumer to be created before binding")
        }),
        "{}",
        c.ok(&["get", "events"])
    );
    assert!(
        eventually(Duration::from_secs(10), || phase("pvc", "manual")
            == "Bound"),
        "{}",
        c.ok(&["get", "pv,pvc"])
    );
    let manual = c.json(&["get", "pvc", "manual", "-o", "json"]);
    assert_eq!(
        manual["spec"]["storageClassName"], "",
        "no class asked for, none given"
    );
    assert_eq!(
        manual["spec"]["volumeName"], "medium",
        "the smallest that fits"
    );
    assert_eq!(manual["status"]["capacity"]["storage"], "2Gi");
    let medium = c.json(&["get", "pv", "medium", "-o", "json"]);
    assert_eq!(medium["status"]["phase"], "Bound");
    assert_eq!(medium["spec"]["claimRef"]["uid"], manual["metadata"]["uid"]);

    assert_eq!(phase("pvc", "waiting"), "Pending", "nothing holds 10Gi");
    assert!(
        c.ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=waiting"
        ])
        .contains("no persistent volumes available for this claim and no storage class is set")
    );
    c.ok_stdin(&["apply", "-f", "-"], Some(&volume("huge", "20Gi")));
    assert!(
        eventually(Duration::from_secs(10), || phase("pvc", "waiting")
            == "Bound"),
        "a new volume that fits is taken: {}",
        c.ok(&["get", "pv,pvc"])
    );

    // In use: a pod names the claim, so deleting the claim waits for the pod, and deleting the
    // bound volume waits for the claim (Kubernetes' storage object in-use protection).
    c.ok_stdin(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: user}\nspec:\n  containers: \
             [{name: c, image: registry.local/app:1}]\n  volumes: \
             [{name: data, persistentVolumeClaim: {claimName: waiting}}]\n",
        ),
    );
    c.ok(&["delete", "pvc", "waiting", "--wait=false"]);
    c.ok(&["delete", "pv", "huge", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(1));
    let waiting = c.json(&["get", "pvc", "waiting", "-o", "json"]);
    assert!(!waiting["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(
        waiting["metadata"]["finalizers"],
        serde_json::json!(["kubernetes.io/pvc-protection"])
    );
    assert_eq!(phase("pv", "huge"), "Bound", "kept while its claim is");
    c.ok(&["delete", "pod", "user", "--grace-period=0", "--force"]);
    assert!(
        eventually(Duration::from_secs(10), || {
            !exists(c, &["get", "pvc", "waiting"]) && !exists(c, &["get", "pv", "huge"])
        }),
        "{}",
        c.ok(&["get", "pv,pvc"])
    );

    c.ok(&["delete", "pvc", "manual"]);
    assert!(
        eventually(Duration::from_secs(10), || phase("pv", "medium")
            == "Released"),
        "{}",
        c.ok(&["get", "pv"])
    );
    for pv in ["small", "big"] {
        assert_eq!(phase("pv", pv), "Available");
    }
}

macro_rules! kubectl_suite {
    ($module:ident, $kubectl:expr) => {
        mod $module {
            use super::*;

            fn cluster() -> Cluster {
                Cluster::start(env!("CARGO_BIN_EXE_maestro"), $kubectl)
            }

            #[test]
            fn discovery() {
                super::discovery(&cluster());
            }
            #[test]
            fn apply_three_way() {
                super::apply_three_way(&cluster());
            }
            #[test]
            fn get_outputs() {
                super::get_outputs(&cluster());
            }
            #[test]
            fn watch() {
                super::watch(&cluster());
            }
            #[test]
            fn label_annotate() {
                super::label_annotate(&cluster());
            }
            #[test]
            fn patches() {
                super::patches(&cluster());
            }
            #[test]
            fn scale() {
                super::scale(&cluster());
            }
            #[test]
            fn delete_cascades() {
                super::delete_cascades(&cluster());
            }
            #[test]
            fn finalizers_and_wait() {
                super::finalizers_and_wait(&cluster());
            }
            #[test]
            fn explain() {
                super::explain(&cluster());
            }
            #[test]
            fn create_generators() {
                super::create_generators(&cluster());
            }
            #[test]
            fn custom_resources() {
                super::custom_resources(&cluster());
            }
            #[test]
            fn bad_input() {
                super::bad_input(&cluster());
            }
            #[test]
            fn namespace_lifecycle() {
                super::namespace_lifecycle(&cluster());
            }
            #[test]
            fn server_side_apply() {
                super::server_side_apply(&cluster());
            }
            #[test]
            fn converted_versions_and_describe() {
                super::converted_versions_and_describe(&cluster());
            }
            #[test]
            fn service_account_tokens() {
                super::service_account_tokens(&cluster());
            }
            #[test]
            fn generate_name() {
                super::generate_name(&cluster());
            }
            #[test]
            fn persistent_volumes() {
                super::persistent_volumes(&cluster());
            }
        }
    };
}

kubectl_suite!(kubectl_1_33, Kubectl::v1_33());
kubectl_suite!(kubectl_1_34, Kubectl::v1_34());
