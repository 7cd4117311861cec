//! Table tests: for each rule a valid object yields nothing and a broken one yields exactly the
//! field paths and messages Kubernetes reports.

use serde_json::{Value, json};

use super::validate;
use crate::defaults::apply_defaults;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";

/// A scope per kind, as the resource registry knows it.
fn namespaced(kind: &str) -> bool {
    !matches!(
        kind,
        "Namespace"
            | "Node"
            | "PersistentVolume"
            | "PriorityClass"
            | "StorageClass"
            | "IngressClass"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
    )
}

/// Defaulted copy of an object, the way the server validates it.
fn defaulted(group: &str, kind: &str, obj: &Value) -> Value {
    let mut obj = obj.clone();
    apply_defaults(group, kind, &mut obj);
    obj
}

/// `(field, message)` of every cause for a create.
fn create_causes(group: &str, kind: &str, obj: &Value) -> Vec<(String, String)> {
    let obj = defaulted(group, kind, obj);
    validate(group, kind, &obj, None, namespaced(kind))
        .into_iter()
        .map(|c| (c.field, c.message))
        .collect()
}

/// `(field, message)` of every cause for an update of `old` (stored, defaulted) to `new`.
fn update_causes(group: &str, kind: &str, old: &Value, new: &Value) -> Vec<(String, String)> {
    let old = defaulted(group, kind, old);
    let new = defaulted(group, kind, new);
    validate(group, kind, &new, Some(&old), namespaced(kind))
        .into_iter()
        .map(|c| (c.field, c.message))
        .collect()
}

fn expect(causes: Vec<(String, String)>, expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect();
    assert_eq!(causes, expected);
}

/// Apply `edit` to a copy of `obj`.
fn with(obj: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut obj = obj.clone();
    edit(&mut obj);
    obj
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "uid": "u-1",
        "creationTimestamp": "2025-01-01T00:00:00Z", "resourceVersion": "1"})
}

fn pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("web"),
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25",
            "ports": [{"containerPort": 80, "name": "http"}],
            "env": [{"name": "MODE", "value": "prod"}],
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/web"}],
            "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "128Mi"}},
            "readinessProbe": {"httpGet": {"port": "http"}}}],
            "volumes": [{"name": "cfg", "configMap": {"name": "web"}}]}})
}

fn template(labels: Value) -> Value {
    json!({"metadata": {"labels": labels},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": template(json!({"app": "web"}))}})
}

fn service() -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": meta("web"),
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
}

// --- metadata ------------------------------------------------------------------------------

#[test]
fn valid_objects_have_no_causes() {
    for (group, kind, obj) in [
        ("", "Pod", pod()),
        ("apps", "Deployment", deployment()),
        ("", "Service", service()),
        (
            "",
            "ConfigMap",
            json!({"metadata": meta("cfg"), "data": {"app.properties": "a=b"}}),
        ),
        ("", "Namespace", json!({"metadata": {"name": "team-a"}})),
    ] {
        assert_eq!(create_causes(group, kind, &obj), vec![], "{kind}");
    }
}

#[test]
fn metadata_names() {
    type Case = (
        &'static str,
        &'static str,
        Value,
        Vec<(&'static str, String)>,
    );
    let cases: Vec<Case> = vec![
        (
            "",
            "Pod",
            with(&pod(), |p| {
                p["metadata"].as_object_mut().map(|m| m.remove("name"));
            }),
            vec![(
                "metadata.name",
                "Required value: name or generateName is required".into(),
            )],
        ),
        (
            "",
            "Pod",
            with(&pod(), |p| p["metadata"]["name"] = json!("Web_1")),
            vec![(
                "metadata.name",
                format!("Invalid value: \"Web_1\": {SUBDOMAIN_MSG}"),
            )],
        ),
        (
            "",
            "Pod",
            with(&pod(), |p| p["metadata"]["generateName"] = json!("Web-")),
            vec![(
                "metadata.generateName",
                format!("Invalid value: \"Web-\": {SUBDOMAIN_MSG}"),
            )],
        ),
        (
            "",
            "Namespace",
            json!({"metadata": {"name": "team.a"}}),
            vec![(
                "metadata.name",
                "Invalid value: \"team.a\": must not contain dots".into(),
            )],
        ),
        (
            "",
            "Service",
            with(&service(), |s| s["metadata"]["name"] = json!("1web")),
            vec![(
                "metadata.name",
                format!("Invalid value: \"1web\": {DNS1035_MSG}"),
            )],
        ),
        (
            "apps",
            "StatefulSet",
            json!({"metadata": {"name": "db.v1", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "db"}}, "template": template(json!({"app": "db"}))}}),
            vec![(
                "metadata.name",
                "Invalid value: \"db.v1\": must not contain dots".into(),
            )],
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"metadata": {"name": "a/b", "namespace": "default"},
                "roleRef": {"kind": "Role", "name": "r"}}),
            vec![(
                "metadata.name",
                "Invalid value: \"a/b\": may not contain '/'".into(),
            )],
        ),
        (
            "",
            "ConfigMap",
            json!({"metadata": {"name": format!("{}x", "a".repeat(253)), "namespace": "default"}}),
            vec![(
                "metadata.name",
                format!(
                    "Invalid value: \"{}x\": must be no more than 253 characters",
                    "a".repeat(253)
                ),
            )],
        ),
    ];
    for (group, kind, obj, expected) in cases {
        let expected: Vec<(&str, &str)> = expected.iter().map(|(f, m)| (*f, m.as_str())).collect();
        expect(create_causes(group, kind, &obj), &expected);
    }
}

#[test]
fn metadata_namespace_labels_annotations() {
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["metadata"].as_object_mut().map(|m| m.remove("namespace"));
            }),
        ),
        &[("metadata.namespace", "Required value")],
    );
    expect(
        create_causes(
            "",
            "Namespace",
            &json!({"metadata": {"name": "a", "namespace": "b"}}),
        ),
        &[("metadata.namespace", "Forbidden: not allowed on this type")],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["metadata"]["labels"] = json!({"-app": "web", "tier": "front end"});
            }),
        ),
        &[
            (
                "metadata.labels",
                "Invalid value: \"-app\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ),
            (
                "metadata.labels",
                "Invalid value: \"front end\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ),
        ],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["metadata"]["annotations"] =
                    json!({"Example.com/Owner": "x", "big": "y".repeat(262_144)});
            }),
        ),
        &[(
            "metadata.annotations",
            "Too long: may not be more than 262144 bytes",
        )],
    );
}

#[test]
fn metadata_finalizers_and_owners() {
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["metadata"]["finalizers"] =
                    json!(["example.com/cleanup", "kubernetes", "cleanup"]);
            }),
        ),
        &[(
            "metadata.finalizers[2]",
            "Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified",
        )],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["metadata"]["finalizers"] = json!(["orphan", "foregroundDeletion"]);
            }),
        ),
        &[(
            "metadata.finalizers",
            "Invalid value: []string{\"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set",
        )],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["metadata"]["ownerReferences"] = json!([
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": true},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "", "controller": true},
                ]);
            }),
        ),
        &[
            (
                "metadata.ownerReferences.uid",
                "Invalid value: \"\": uid must not be empty",
            ),
            (
                "metadata.ownerReferences",
                "Invalid value: [{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"name\":\"a\",\"uid\":\"1\",\"controller\":true},{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\",\"name\":\"b\",\"uid\":\"\",\"controller\":true}]: Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and ReplicaSet/b",
            ),
        ],
    );
}

#[test]
fn metadata_updates() {
    let old = pod();
    expect(update_causes("", "Pod", &old, &old), &[]);
    expect(
        update_causes(
            "",
            "Pod",
            &old,
            &with(&old, |p| p["metadata"]["uid"] = json!("u-2")),
        ),
        &[("metadata.uid", "Invalid value: \"u-2\": field is immutable")],
    );
    expect(
        update_causes(
            "",
            "Pod",
            &old,
            &with(&old, |p| {
                p["metadata"]["creationTimestamp"] = json!("2025-02-01T00:00:00Z");
            }),
        ),
        &[(
            "metadata.creationTimestamp",
            "Invalid value: 2025-02-01 00:00:00 +0000 UTC: field is immutable",
        )],
    );
    // Fields the server fills from the stored object may be omitted.
    expect(
        update_causes(
            "",
            "Pod",
            &old,
            &with(&old, |p| {
                let m = p["metadata"].as_object_mut().expect("metadata");
                m.remove("uid");
                m.remove("creationTimestamp");
            }),
        ),
        &[],
    );
    let deleting = with(&old, |p| {
        p["metadata"]["deletionTimestamp"] = json!("2025-03-01T00:00:00Z");
        p["metadata"]["finalizers"] = json!(["example.com/a"]);
    });
    expect(
        update_causes(
            "",
            "Pod",
            &deleting,
            &with(&deleting, |p| {
                p["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
            }),
        ),
        &[(
            "metadata.finalizers",
            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/b\"}",
        )],
    );
}

// --- pods ----------------------------------------------------------------------------------

#[test]
fn pod_containers() {
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| p["spec"]["containers"] = json!([])),
        ),
        &[("spec.containers", "Required value")],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["spec"]["containers"] = json!([
                    {"name": "Web", "image": "nginx"},
                    {"name": "sidecar"},
                    {"name": "sidecar", "image": "busybox"},
                ]);
                p["spec"]["volumes"] = json!([]);
            }),
        ),
        &[
            (
                "spec.containers[0].name",
                &format!("Invalid value: \"Web\": {LABEL_MSG}"),
            ),
            ("spec.containers[1].image", "Required value"),
            ("spec.containers[2].name", "Duplicate value: \"sidecar\""),
        ],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["spec"]["containers"][0]["image"] = json!(" nginx")
            }),
        ),
        &[(
            "spec.containers[0].image",
            "Invalid value: \" nginx\": must not have leading or trailing whitespace",
        )],
    );
}

#[test]
fn pod_ports_env_and_mounts() {
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["spec"]["containers"][0]["ports"] = json!([
                    {"containerPort": 70000, "protocol": "HTTP"},
                    {"containerPort": 81, "name": "8080"},
                ]);
                p["spec"]["containers"][0]["readinessProbe"] = json!({"tcpSocket": {"port": 80}});
            }),
        ),
        &[
            (
                "spec.containers[0].ports[0].containerPort",
                &format!("Invalid value: 70000: {PORT_RANGE_MSG}"),
            ),
            (
                "spec.containers[0].ports[0].protocol",
                "Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ),
            (
                "spec.containers[0].ports[1].name",
                "Invalid value: \"8080\": must contain at least one letter (a-z)",
            ),
        ],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["spec"]["containers"][0]["env"] = json!([
                    {"name": "A=B", "value": "x"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}},
                    {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "cfg"}}},
                ]);
            }),
        ),
        &[
            (
                "spec.containers[0].env[0].name",
                "Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            ),
            (
                "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath",
                "Unsupported value: \"status.phase\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
            ),
            (
                "spec.containers[0].env[2].valueFrom.configMapKeyRef.key",
                "Required value",
            ),
        ],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["spec"]["containers"][0]["volumeMounts"] = json!([
                    {"name": "cfg", "mountPath": "/etc/web"},
                    {"name": "data", "mountPath": "/etc/web"},
                ]);
                p["spec"]["volumes"] = json!([
                    {"name": "cfg", "configMap": {"name": "web"}},
                    {"name": "cfg", "emptyDir": {}},
                    {"name": "x", "secret": {"secretName": "s", "defaultMode": 1000}, "emptyDir": {}},
                ]);
            }),
        ),
        &[
            ("spec.volumes[1].name", "Duplicate value: \"cfg\""),
            (
                "spec.volumes[2].secret",
                "Forbidden: may not specify more than 1 volume type",
            ),
            (
                "spec.containers[0].volumeMounts[1].name",
                "Not found: \"data\"",
            ),
            (
                "spec.containers[0].volumeMounts[1].mountPath",
                "Invalid value: \"/etc/web\": must be unique",
            ),
        ],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["spec"]["volumes"][0] =
                    json!({"name": "cfg", "secret": {"secretName": "s", "defaultMode": 1000}});
            }),
        ),
        // An invalid volume does not count as declared, so its mount is "not found" too.
        &[
            (
                "spec.volumes[0].secret.defaultMode",
                "Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive",
            ),
            (
                "spec.containers[0].volumeMounts[0].name",
                "Not found: \"cfg\"",
            ),
        ],
    );
}

#[test]
fn pod_spec_fields() {
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| p["spec"]["restartPolicy"] = json!("Sometimes")),
        ),
        &[(
            "spec.restartPolicy",
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
        )],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| p["spec"]["dnsPolicy"] = json!("Cluster")),
        ),
        &[(
            "spec.dnsPolicy",
            "Unsupported value: \"Cluster\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
        )],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["spec"]["tolerations"] = json!([{"key": "", "operator": "Equal", "value": "x"},
                {"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]);
            }),
        ),
        &[
            (
                "spec.tolerations[0].operator",
                "Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ),
            (
                "spec.tolerations[1].effect",
                "Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
            ),
        ],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| p["spec"]["activeDeadlineSeconds"] = json!(0)),
        ),
        &[(
            "spec.activeDeadlineSeconds",
            "Invalid value: 0: must be between 1 and 2147483647, inclusive",
        )],
    );
}

#[test]
fn pod_resources_and_probes() {
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["spec"]["containers"][0]["resources"] =
                    json!({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}});
            }),
        ),
        &[(
            "spec.containers[0].resources.requests",
            "Invalid value: \"2\": must be less than or equal to cpu limit of 1",
        )],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["spec"]["containers"][0]["resources"] =
                    json!({"requests": {"memory": "-1", "gpu": "1"}});
            }),
        ),
        &[
            (
                "spec.containers[0].resources.requests[memory]",
                "Invalid value: \"-1\": must be greater than or equal to 0",
            ),
            (
                "spec.containers[0].resources.requests[gpu]",
                "Invalid value: \"gpu\": must be a standard resource type or fully qualified",
            ),
            (
                "spec.containers[0].resources.requests[gpu]",
                "Invalid value: \"gpu\": must be a standard resource for containers",
            ),
        ],
    );
    expect(
        create_causes(
            "",
            "Pod",
            &with(&pod(), |p| {
                p["spec"]["containers"][0]["livenessProbe"] =
                    json!({"exec": {"command": ["true"]}, "successThreshold": 2});
                p["spec"]["containers"][0]["startupProbe"] = json!({"periodSeconds": 5});
            }),
        ),
        &[
            (
                "spec.containers[0].livenessProbe.successThreshold",
                "Invalid value: 2: must be 1",
            ),
            (
                "spec.containers[0].startupProbe",
                "Required value: must specify a handler type",
            ),
        ],
    );
}

#[test]
fn pod_updates() {
    let old = pod();
    expect(
        update_causes(
            "",
            "Pod",
            &old,
            &with(&old, |p| {
                p["spec"]["containers"][0]["image"] = json!("nginx:1.26")
            }),
        ),
        &[],
    );
    expect(
        update_causes(
            "",
            "Pod",
            &old,
            &with(&old, |p| p["spec"]["activeDeadlineSeconds"] = json!(30)),
        ),
        &[],
    );
    let added = with(&old, |p| {
        p["spec"]["tolerations"] =
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]);
    });
    expect(update_causes("", "Pod", &old, &added), &[]);
    let causes = update_causes("", "Pod", &added, &old);
    assert_eq!(
        causes[0],
        (
            "spec.tolerations".to_string(),
            "Forbidden: existing toleration can not be modified except its tolerationSeconds"
                .to_string()
        )
    );
    let causes = update_causes(
        "",
        "Pod",
        &old,
        &with(&old, |p| p["spec"]["restartPolicy"] = json!("Never")),
    );
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].0, "spec");
    assert!(
        causes[0].1.starts_with(
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
        ),
        "{}",
        causes[0].1
    );
    assert!(
        causes[0].1.contains("\"restartPolicy\": \"Never\""),
        "{}",
        causes[0].1
    );
    expect(
        update_causes(
            "",
            "Pod",
            &old,
            &with(&old, |p| {
                if let Some(c) = p["spec"]["containers"].as_array_mut() {
                    c.push(json!({"name": "b", "image": "b"}))
                }
            }),
        ),
        &[(
            "spec.containers",
            "Forbidden: pod updates may not add or remove containers",
        )],
    );
}

// --- workloads -----------------------------------------------------------------------------

#[test]
fn deployments() {
    expect(
        create_causes(
            "apps",
            "Deployment",
            &with(&deployment(), |d| {
                d["spec"].as_object_mut().map(|s| s.remove("selector"));
            }),
        ),
        // A missing selector selects nothing, so Kubernetes reports the template as well.
        &[
            ("spec.selector", "Required value"),
            (
                "spec.template.metadata.labels",
                "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ),
        ],
    );
    expect(
        create_causes(
            "apps",
            "Deployment",
            &with(&deployment(), |d| {
                d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
            }),
        ),
        &[(
            "spec.template.metadata.labels",
            "Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`",
        )],
    );
    expect(
        create_causes(
            "apps",
            "Deployment",
            &with(&deployment(), |d| d["spec"]["selector"] = json!({})),
        ),
        &[(
            "spec.selector",
            "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
        )],
    );
    expect(
        create_causes(
            "apps",
            "Deployment",
            &with(&deployment(), |d| {
                d["spec"]["replicas"] = json!(-1);
                d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
                d["spec"]["strategy"] =
                    json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}});
            }),
        ),
        &[
            (
                "spec.replicas",
                "Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                "spec.template.spec.restartPolicy",
                "Unsupported value: \"Never\": supported values: \"Always\"",
            ),
            (
                "spec.strategy.rollingUpdate.maxUnavailable",
                "Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
            ),
        ],
    );
    expect(
        create_causes(
            "apps",
            "Deployment",
            &with(&deployment(), |d| {
                d["spec"]["strategy"] = json!({"rollingUpdate": {"maxUnavailable": "150%"}});
            }),
        ),
        &[(
            "spec.strategy.rollingUpdate.maxUnavailable",
            "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%",
        )],
    );
    let old = deployment();
    expect(
        update_causes(
            "apps",
            "Deployment",
            &old,
            &with(&old, |d| d["spec"]["replicas"] = json!(5)),
        ),
        &[],
    );
    expect(
        update_causes(
            "apps",
            "Deployment",
            &old,
            &with(&old, |d| {
                d["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "front"}});
                d["spec"]["template"]["metadata"]["labels"] =
                    json!({"app": "web", "tier": "front"});
            }),
        ),
        &[(
            "spec.selector",
            "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"front\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable",
        )],
    );
}

#[test]
fn replica_sets_and_daemon_sets() {
    let rs = with(&deployment(), |d| d["kind"] = json!("ReplicaSet"));
    expect(create_causes("apps", "ReplicaSet", &rs), &[]);
    expect(
        create_causes(
            "apps",
            "ReplicaSet",
            &with(&rs, |d| d["spec"]["selector"] = json!({"matchLabels": {}})),
        ),
        &[(
            "spec.selector",
            "Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment",
        )],
    );
    let ds = json!({"metadata": meta("agent"), "spec": {"selector": {"matchLabels": {"app": "agent"}},
        "template": template(json!({"app": "agent"}))}});
    expect(create_causes("apps", "DaemonSet", &ds), &[]);
    expect(
        create_causes(
            "apps",
            "DaemonSet",
            &with(&ds, |d| {
                d["spec"]["template"]["metadata"]["labels"] = json!({"app": "x"});
                d["spec"]["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}});
            }),
        ),
        &[
            (
                "spec.template.metadata.labels",
                "Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`",
            ),
            (
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                "Required value: cannot be 0 when maxSurge is 0",
            ),
        ],
    );
}

#[test]
fn stateful_sets() {
    let sts = json!({"metadata": meta("db"), "spec": {"serviceName": "db", "replicas": 1,
        "selector": {"matchLabels": {"app": "db"}}, "template": template(json!({"app": "db"})),
        "volumeClaimTemplates": [{"metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
    expect(create_causes("apps", "StatefulSet", &sts), &[]);
    expect(
        update_causes(
            "apps",
            "StatefulSet",
            &sts,
            &with(&sts, |s| {
                s["spec"]["replicas"] = json!(3);
                s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.26");
                s["spec"]["revisionHistoryLimit"] = json!(3);
            }),
        ),
        &[],
    );
    expect(
        update_causes(
            "apps",
            "StatefulSet",
            &sts,
            &with(&sts, |s| {
                s["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] =
                    json!("2Gi");
            }),
        ),
        &[(
            "spec",
            "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        )],
    );
    expect(
        create_causes(
            "apps",
            "StatefulSet",
            &with(&sts, |s| s["spec"]["podManagementPolicy"] = json!("Fast")),
        ),
        &[(
            "spec.podManagementPolicy",
            "Invalid value: \"Fast\": must be 'OrderedReady' or 'Parallel'",
        )],
    );
}

fn job() -> Value {
    json!({"metadata": meta("pi"), "spec": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "pi", "image": "perl:5.34"}]}}}})
}

#[test]
fn jobs() {
    expect(create_causes("batch", "Job", &job()), &[]);
    expect(
        create_causes(
            "batch",
            "Job",
            &with(&job(), |j| {
                j["spec"]["template"]["spec"]
                    .as_object_mut()
                    .map(|s| s.remove("restartPolicy"));
                j["spec"]["backoffLimit"] = json!(-1);
            }),
        ),
        &[
            (
                "spec.backoffLimit",
                "Invalid value: -1: must be greater than or equal to 0",
            ),
            (
                "spec.template.spec.restartPolicy",
                "Required value: valid values: \"OnFailure\", \"Never\"",
            ),
        ],
    );
    expect(
        create_causes(
            "batch",
            "Job",
            &with(&job(), |j| {
                j["spec"]["completionMode"] = json!("Indexed");
                j["spec"]["completions"] = json!(3);
                j["metadata"]["name"] = json!(format!("{}", "j".repeat(62)));
            }),
        ),
        &[(
            "metadata.name",
            &format!(
                "Invalid value: \"{0}\": will not able to create pod with invalid DNS label: {0}-2",
                "j".repeat(62)
            ),
        )],
    );
    // The stored Job has its generated selector; updates must keep selector and template.
    let old = defaulted("batch", "Job", &job());
    expect(
        update_causes(
            "batch",
            "Job",
            &old,
            &with(&old, |j| j["spec"]["parallelism"] = json!(4)),
        ),
        &[],
    );
    let changed = update_causes(
        "batch",
        "Job",
        &old,
        &with(&old, |j| {
            j["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:5.36");
        }),
    );
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0, "spec.template");
    assert!(
        changed[0].1.ends_with(": field is immutable"),
        "{}",
        changed[0].1
    );
    // A suspended Job that never ran may still be pointed at other nodes.
    let suspended = with(&old, |j| j["spec"]["suspend"] = json!(true));
    expect(
        update_causes(
            "batch",
            "Job",
            &suspended,
            &with(&suspended, |j| {
                j["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
            }),
        ),
        &[],
    );
    expect(
        update_causes(
            "batch",
            "Job",
            &old,
            &with(&old, |j| j["spec"]["completions"] = json!(2)),
        ),
        &[("spec.completions", "Invalid value: 2: field is immutable")],
    );
}

#[test]
fn cron_jobs() {
    let cron = json!({"metadata": meta("hello"), "spec": {"schedule": "*/5 * * * *",
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
            "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}});
    expect(create_causes("batch", "CronJob", &cron), &[]);
    expect(
        create_causes(
            "batch",
            "CronJob",
            &with(&cron, |c| c["spec"]["schedule"] = json!("* * *")),
        ),
        &[(
            "spec.schedule",
            "Invalid value: \"* * *\": expected exactly 5 fields, found 3: [* * *]",
        )],
    );
    expect(
        create_causes(
            "batch",
            "CronJob",
            &with(&cron, |c| c["spec"]["schedule"] = json!("TZ=UTC 0 * * * *")),
        ),
        &[(
            "spec.schedule",
            "Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        )],
    );
    let long = "c".repeat(53);
    expect(
        create_causes(
            "batch",
            "CronJob",
            &with(&cron, |c| {
                c["metadata"]["name"] = json!(long);
                c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] =
                    json!("Always");
                c["spec"]["concurrencyPolicy"] = json!("Sometimes");
            }),
        ),
        &[
            (
                "spec.concurrencyPolicy",
                "Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
            ),
            (
                "spec.jobTemplate.spec.template.spec.restartPolicy",
                "Required value: valid values: \"OnFailure\", \"Never\"",
            ),
            (
                "metadata.name",
                &format!("Invalid value: \"{long}\": must be no more than 52 characters"),
            ),
        ],
    );
}

// --- services ------------------------------------------------------------------------------

#[test]
fn services() {
    expect(
        create_causes(
            "",
            "Service",
            &with(&service(), |s| s["spec"]["ports"] = json!([{"port": 0}])),
        ),
        &[(
            "spec.ports[0].port",
            &format!("Invalid value: 0: {PORT_RANGE_MSG}"),
        )],
    );
    expect(
        create_causes(
            "",
            "Service",
            &with(&service(), |s| {
                s["spec"]["ports"] = json!([{"port": 80}, {"port": 443}])
            }),
        ),
        &[
            ("spec.ports[0].name", "Required value"),
            ("spec.ports[1].name", "Required value"),
        ],
    );
    expect(
        create_causes(
            "",
            "Service",
            &with(&service(), |s| {
                s["spec"]["ports"] = json!([{"name": "a", "port": 80}, {"name": "b", "port": 80}]);
            }),
        ),
        &[(
            "spec.ports[1]",
            "Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
        )],
    );
    expect(
        create_causes(
            "",
            "Service",
            &with(&service(), |s| s["spec"]["type"] = json!("Public")),
        ),
        &[(
            "spec.type",
            "Unsupported value: \"Public\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
        )],
    );
    expect(
        create_causes(
            "",
            "Service",
            &with(&service(), |s| {
                s["spec"]["type"] = json!("NodePort");
                s["spec"]["ports"][0]["nodePort"] = json!(80);
            }),
        ),
        &[(
            "spec.ports[0].nodePort",
            "Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
        )],
    );
    expect(
        create_causes(
            "",
            "Service",
            &with(&service(), |s| {
                s["spec"]["ports"][0]["nodePort"] = json!(30080)
            }),
        ),
        &[(
            "spec.ports[0].nodePort",
            "Forbidden: may not be used when `type` is 'ClusterIP'",
        )],
    );
    expect(
        create_causes(
            "",
            "Service",
            &with(&service(), |s| {
                s["spec"]["selector"] = json!({"app": "web site"})
            }),
        ),
        &[(
            "spec.selector",
            "Invalid value: \"web site\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        )],
    );
    expect(
        create_causes(
            "",
            "Service",
            &json!({"metadata": meta("ext"),
            "spec": {"type": "ExternalName", "externalName": "Example.com"}}),
        ),
        &[(
            "spec.externalName",
            &format!("Invalid value: \"Example.com\": {SUBDOMAIN_MSG}"),
        )],
    );
    expect(
        create_causes(
            "",
            "Service",
            &json!({"metadata": meta("headless"), "spec": {"clusterIP": "None", "selector": {"a": "b"}}}),
        ),
        &[],
    );
}

#[test]
fn service_updates_keep_cluster_ips() {
    let old = with(&service(), |s| s["spec"]["clusterIP"] = json!("10.96.0.10"));
    // Clients that omit the allocated IP keep it.
    expect(update_causes("", "Service", &old, &service()), &[]);
    expect(
        update_causes(
            "",
            "Service",
            &old,
            &with(&old, |s| {
                s["spec"]["clusterIP"] = json!("10.96.0.11");
                s["spec"].as_object_mut().map(|m| m.remove("clusterIPs"));
            }),
        ),
        &[(
            "spec.clusterIPs[0]",
            "Invalid value: []string{\"10.96.0.11\"}: may not change once set",
        )],
    );
}

// --- config and storage ---------------------------------------------------------------------

#[test]
fn config_maps() {
    let cm = json!({"metadata": meta("cfg"), "data": {"a": "1"}});
    expect(
        create_causes(
            "",
            "ConfigMap",
            &with(&cm, |c| c["data"] = json!({"a b": "1", "..x": "2"})),
        ),
        &[
            (
                "data[a b]",
                "Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ),
            (
                "data[..x]",
                "Invalid value: \"..x\": must not start with '..'",
            ),
        ],
    );
    expect(
        create_causes(
            "",
            "ConfigMap",
            &with(&cm, |c| {
                c["data"] = json!({"big": "x".repeat(1024 * 1024 + 1)})
            }),
        ),
        &[("", "Too long: may not be more than 1048576 bytes")],
    );
    let frozen = with(&cm, |c| c["immutable"] = json!(true));
    expect(update_causes("", "ConfigMap", &frozen, &frozen), &[]);
    expect(
        update_causes(
            "",
            "ConfigMap",
            &frozen,
            &with(&cm, |c| c["data"]["a"] = json!("2")),
        ),
        &[
            (
                "immutable",
                "Forbidden: field is immutable when `immutable` is set",
            ),
            (
                "data",
                "Forbidden: field is immutable when `immutable` is set",
            ),
        ],
    );
    expect(
        update_causes(
            "",
            "ConfigMap",
            &cm,
            &with(&cm, |c| c["data"]["a"] = json!("2")),
        ),
        &[],
    );
}

#[test]
fn secrets() {
    let secret = json!({"metadata": meta("s"), "data": {"password": "czNjcjN0"}});
    expect(create_causes("", "Secret", &secret), &[]);
    expect(
        create_causes(
            "",
            "Secret",
            &json!({"metadata": meta("tls"), "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": "x"}}),
        ),
        &[("data[tls.key]", "Required value")],
    );
    expect(
        update_causes(
            "",
            "Secret",
            &secret,
            &with(&secret, |s| s["type"] = json!("kubernetes.io/basic-auth")),
        ),
        &[(
            "type",
            "Invalid value: \"kubernetes.io/basic-auth\": field is immutable",
        )],
    );
    let frozen = with(&secret, |s| s["immutable"] = json!(true));
    expect(
        update_causes(
            "",
            "Secret",
            &frozen,
            &with(&frozen, |s| s["stringData"] = json!({"password": "other"})),
        ),
        &[(
            "data",
            "Forbidden: field is immutable when `immutable` is set",
        )],
    );
    expect(
        create_causes(
            "",
            "Secret",
            &with(&secret, |s| {
                s["stringData"] = json!({"big": "x".repeat(1024 * 1024)})
            }),
        ),
        &[("data", "Too long: may not be more than 1048576 bytes")],
    );
}

#[test]
fn namespaces_and_claims() {
    expect(
        create_causes(
            "",
            "Namespace",
            &json!({"metadata": {"name": "a"}, "spec": {"finalizers": ["cleanup"]}}),
        ),
        &[(
            "spec.finalizers",
            "Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified",
        )],
    );
    let pvc = json!({"metadata": meta("data"), "spec": {"accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}}}});
    expect(create_causes("", "PersistentVolumeClaim", &pvc), &[]);
    expect(
        create_causes(
            "",
            "PersistentVolumeClaim",
            &with(&pvc, |p| {
                p["spec"] = json!({"accessModes": ["ReadWriteSometimes"]});
            }),
        ),
        &[
            (
                "spec.accessModes",
                "Unsupported value: \"ReadWriteSometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
            ),
            ("spec.resources[storage]", "Required value"),
        ],
    );
    expect(
        update_causes(
            "",
            "PersistentVolumeClaim",
            &pvc,
            &with(&pvc, |p| {
                p["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
                p["spec"]["volumeName"] = json!("pv-1");
            }),
        ),
        &[],
    );
    let causes = update_causes(
        "",
        "PersistentVolumeClaim",
        &pvc,
        &with(&pvc, |p| {
            p["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        }),
    );
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].0, "spec");
    assert!(causes[0].1.starts_with("Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n"));
}

// --- other groups ---------------------------------------------------------------------------

#[test]
fn horizontal_pod_autoscalers() {
    let hpa = json!({"apiVersion": "autoscaling/v2", "metadata": meta("web"), "spec": {"minReplicas": 2, "maxReplicas": 5,
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}});
    expect(
        create_causes("autoscaling", "HorizontalPodAutoscaler", &hpa),
        &[],
    );
    expect(
        create_causes(
            "autoscaling",
            "HorizontalPodAutoscaler",
            &with(&hpa, |h| {
                h["spec"]["minReplicas"] = json!(0);
                h["spec"]["maxReplicas"] = json!(0);
            }),
        ),
        &[
            (
                "spec.minReplicas",
                "Invalid value: 0: must be greater than or equal to 1",
            ),
            (
                "spec.maxReplicas",
                "Invalid value: 0: must be greater than 0",
            ),
        ],
    );
    expect(
        create_causes(
            "autoscaling",
            "HorizontalPodAutoscaler",
            &with(&hpa, |h| {
                h["spec"]["maxReplicas"] = json!(1);
                h["spec"]["scaleTargetRef"] = json!({"kind": "Deployment"});
            }),
        ),
        &[
            (
                "spec.maxReplicas",
                "Invalid value: 1: must be greater than or equal to `minReplicas`",
            ),
            ("spec.scaleTargetRef.name", "Required value"),
        ],
    );
    expect(
        create_causes(
            "autoscaling",
            "HorizontalPodAutoscaler",
            &with(&hpa, |h| {
                h["spec"]["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}]);
            }),
        ),
        &[(
            "spec.metrics[0].resource.target.averageUtilization",
            "Invalid value: 0: must be greater than 0",
        )],
    );
}

#[test]
fn ingresses() {
    let ing = json!({"metadata": meta("web"), "spec": {"rules": [{"host": "web.example.com",
        "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}});
    expect(create_causes("networking.k8s.io", "Ingress", &ing), &[]);
    expect(
        create_causes(
            "networking.k8s.io",
            "Ingress",
            &with(&ing, |i| {
                let path = &mut i["spec"]["rules"][0]["http"]["paths"][0];
                path.as_object_mut().map(|p| p.remove("pathType"));
            }),
        ),
        &[(
            "spec.rules[0].http.paths[0].pathType",
            "Required value: pathType must be specified",
        )],
    );
    expect(
        create_causes(
            "networking.k8s.io",
            "Ingress",
            &with(&ing, |i| {
                i["spec"]["rules"][0]["host"] = json!("10.0.0.1");
                i["spec"]["rules"][0]["http"]["paths"][0]["path"] = json!("api");
                i["spec"]["rules"][0]["http"]["paths"][0]["backend"] =
                    json!({"service": {"name": "web", "port": {}}});
            }),
        ),
        &[
            (
                "spec.rules[0].host",
                "Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address",
            ),
            (
                "spec.rules[0].http.paths[0].path",
                "Invalid value: \"api\": must be an absolute path",
            ),
            (
                "spec.rules[0].http.paths[0].backend",
                "Required value: port name or number is required",
            ),
        ],
    );
    expect(
        create_causes(
            "networking.k8s.io",
            "Ingress",
            &json!({"metadata": meta("empty"), "spec": {}}),
        ),
        &[(
            "spec",
            "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified",
        )],
    );
}

#[test]
fn network_policies() {
    let np = json!({"metadata": meta("np"), "spec": {"podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 5432}]}]}});
    expect(
        create_causes("networking.k8s.io", "NetworkPolicy", &np),
        &[],
    );
    expect(
        create_causes(
            "networking.k8s.io",
            "NetworkPolicy",
            &with(&np, |n| {
                n["spec"]["ingress"][0]["ports"] = json!([{"port": 0, "protocol": "ICMP"}]);
                n["spec"]["ingress"][0]["from"] =
                    json!([{}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]);
                n["spec"]["policyTypes"] = json!(["Ingress", "Both"]);
            }),
        ),
        &[
            (
                "spec.ingress[0].ports[0].protocol",
                "Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            ),
            (
                "spec.ingress[0].ports[0].port",
                &format!("Invalid value: 0: {PORT_RANGE_MSG}"),
            ),
            (
                "spec.ingress[0].from[0]",
                "Required value: must specify a peer",
            ),
            (
                "spec.ingress[0].from[1].ipBlock.except[0]",
                "Invalid value: \"192.168.0.0/16\": must be a strict subset of `cidr`",
            ),
            (
                "spec.policyTypes[1]",
                "Unsupported value: \"Both\": supported values: \"Ingress\", \"Egress\"",
            ),
        ],
    );
}

#[test]
fn disruption_budgets_priority_and_storage_classes() {
    expect(
        create_causes(
            "policy",
            "PodDisruptionBudget",
            &json!({"metadata": meta("pdb"),
            "spec": {"minAvailable": 1, "maxUnavailable": "10%", "selector": {"matchLabels": {"app": "web"}}}}),
        ),
        &[(
            "spec",
            "Invalid value: {\"minAvailable\":1,\"maxUnavailable\":\"10%\",\"selector\":{\"matchLabels\":{\"app\":\"web\"}}}: minAvailable and maxUnavailable cannot be both set",
        )],
    );
    expect(
        create_causes(
            "policy",
            "PodDisruptionBudget",
            &json!({"metadata": meta("pdb"), "spec": {"minAvailable": "120%"}}),
        ),
        &[(
            "spec.minAvailable",
            "Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"120%\"}: must not be greater than 100%",
        )],
    );
    expect(
        create_causes(
            "scheduling.k8s.io",
            "PriorityClass",
            &json!({"metadata": {"name": "huge"}, "value": 2_000_000_000}),
        ),
        &[(
            "value",
            "Forbidden: maximum allowed value of a user defined priority is 1000000000",
        )],
    );
    expect(
        create_causes(
            "scheduling.k8s.io",
            "PriorityClass",
            &json!({"metadata": {"name": "system-mine"}, "value": 5}),
        ),
        &[(
            "metadata.name",
            "Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class",
        )],
    );
    let pc = json!({"metadata": {"name": "high"}, "value": 1000});
    expect(
        update_causes(
            "scheduling.k8s.io",
            "PriorityClass",
            &pc,
            &with(&pc, |p| p["value"] = json!(2000)),
        ),
        &[("value", "Forbidden: may not be changed in an update.")],
    );
    let sc = json!({"metadata": {"name": "fast"}, "provisioner": "example.com/disk", "parameters": {"type": "ssd"}});
    expect(create_causes("storage.k8s.io", "StorageClass", &sc), &[]);
    expect(
        update_causes(
            "storage.k8s.io",
            "StorageClass",
            &sc,
            &with(&sc, |s| s["parameters"]["type"] = json!("hdd")),
        ),
        &[(
            "parameters",
            "Forbidden: updates to parameters are forbidden.",
        )],
    );
}

#[test]
fn role_bindings() {
    let rb = json!({"metadata": meta("rb"), "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}]});
    expect(
        create_causes("rbac.authorization.k8s.io", "RoleBinding", &rb),
        &[],
    );
    expect(
        update_causes(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            &rb,
            &with(&rb, |r| r["roleRef"]["name"] = json!("admin")),
        ),
        &[(
            "roleRef",
            "Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"admin\"}: cannot change roleRef",
        )],
    );
    expect(
        create_causes(
            "rbac.authorization.k8s.io",
            "RoleBinding",
            &with(&rb, |r| r["subjects"][0]["kind"] = json!("Robot")),
        ),
        &[(
            "subjects[0].kind",
            "Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
        )],
    );
}

#[test]
fn custom_resource_definitions() {
    let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
    expect(
        create_causes("apiextensions.k8s.io", "CustomResourceDefinition", &crd),
        &[],
    );
    expect(
        create_causes(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &with(&crd, |c| {
                c["metadata"]["name"] = json!("widgets.example.org");
                c["spec"]["scope"] = json!("Global");
                c["spec"]["versions"][0]["storage"] = json!(false);
            }),
        ),
        &[
            (
                "metadata.name",
                "Invalid value: \"widgets.example.org\": must be spec.names.plural+\".\"+spec.group",
            ),
            (
                "spec.scope",
                "Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
            ),
            (
                "spec.versions",
                "Invalid value: [{\"name\":\"v1\",\"served\":true,\"storage\":false,\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\"}}}]: must have exactly one version marked as storage version",
            ),
        ],
    );
    expect(
        create_causes(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &json!({"metadata": {"name": "things.local"},
            "spec": {"group": "local", "scope": "Cluster", "names": {"plural": "things"},
                "versions": [{"name": "v1", "served": true, "storage": true}]}}),
        ),
        &[
            (
                "spec.group",
                "Invalid value: \"local\": should be a domain with at least one dot",
            ),
            (
                "spec.versions[0].schema.openAPIV3Schema",
                "Required value: schemas are required",
            ),
            ("spec.names.singular", "Required value"),
            ("spec.names.kind", "Required value"),
            ("spec.names.listKind", "Required value"),
        ],
    );
    let stored = defaulted("apiextensions.k8s.io", "CustomResourceDefinition", &crd);
    expect(
        update_causes(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &stored,
            &with(&stored, |c| {
                c["spec"]["group"] = json!("example.org");
            }),
        ),
        &[(
            "spec.group",
            "Invalid value: \"example.org\": field is immutable",
        )],
    );
}

#[test]
fn custom_resources_get_metadata_checks_only() {
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "default", "finalizers": ["cleanup"]}, "spec": {"anything": 1}});
    expect(create_causes("example.com", "Widget", &widget), &[]);
    expect(
        create_causes(
            "example.com",
            "Widget",
            &with(&widget, |w| w["metadata"]["name"] = json!("W")),
        ),
        &[(
            "metadata.name",
            &format!("Invalid value: \"W\": {SUBDOMAIN_MSG}"),
        )],
    );
}

#[test]
fn cron_job_time_zones() {
    let cron = json!({"metadata": meta("tz"), "spec": {"schedule": "0 3 * * *", "timeZone": "",
        "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}});
    expect(
        create_causes("batch", "CronJob", &cron),
        &[(
            "spec.timeZone",
            "Invalid value: \"\": timeZone must be nil or non-empty string",
        )],
    );
    expect(
        create_causes(
            "batch",
            "CronJob",
            &with(&cron, |c| c["spec"]["timeZone"] = json!("../etc")),
        ),
        &[(
            "spec.timeZone",
            "Invalid value: \"../etc\": unknown time zone ../etc",
        )],
    );
    // Only meaningful where a time zone database is installed.
    if jiff::tz::TimeZone::get("Europe/London").is_ok() {
        expect(
            create_causes(
                "batch",
                "CronJob",
                &with(&cron, |c| c["spec"]["timeZone"] = json!("Europe/London")),
            ),
            &[],
        );
        expect(
            create_causes(
                "batch",
                "CronJob",
                &with(&cron, |c| c["spec"]["timeZone"] = json!("Mars/Olympus")),
            ),
            &[(
                "spec.timeZone",
                "Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus",
            )],
        );
    }
}

#[test]
fn causes_aggregate_into_the_status_kubectl_prints() {
    let obj = defaulted(
        "apps",
        "Deployment",
        &with(&deployment(), |d| {
            d["spec"].as_object_mut().map(|s| s.remove("selector"));
        }),
    );
    let causes = validate("apps", "Deployment", &obj, None, true);
    let err = crate::status::ApiError::invalid("apps", "Deployment", "web", causes);
    assert_eq!(
        err.message,
        "Deployment.apps \"web\" is invalid: [spec.selector: Required value, spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`]"
    );
    assert_eq!(
        err.to_status()["details"]["causes"][0]["reason"],
        "FieldValueRequired"
    );
}
