use super::*;
use fixtures::*;
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::authentication::v1 as authentication;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::events::v1 as events;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::json;

mod fixtures;

fn unhex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2));
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn decode_hex(hex: &str) -> Value {
    decode_body(&unhex(hex)).unwrap()
}

/// A body as client-go writes it: magic, then Unknown with empty contentEncoding/contentType.
fn body(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

/// The JSON must decode as its kind through the typed codec, with no unknown fields and
/// unchanged (the codec's normalized object equals it).
fn assert_typed(value: &Value) {
    let api_version = value["apiVersion"].as_str().unwrap();
    let kind = value["kind"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    match crate::codec::decode(group, version, kind, value.clone()) {
        Some(decoded) => {
            let decoded = decoded.unwrap_or_else(|err| panic!("{kind}: {err}"));
            assert!(
                decoded.unknown_fields.is_empty(),
                "{kind}: unknown fields {:?}",
                decoded.unknown_fields
            );
            assert_eq!(
                numbers_as_floats(decoded.object),
                numbers_as_floats(value.clone()),
                "{kind}: the typed round trip changed the object"
            );
        }
        None => {
            // Not stored kinds, so not in the codec: check them against k8s-openapi directly.
            // It writes required fields the object lacks (`spec.audiences: []`), so the check is
            // that nothing was lost.
            use k8s_openapi::api::{authentication::v1 as authn, authorization::v1 as authz};
            fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(
                value: &Value,
            ) -> Value {
                serde_json::to_value(serde_json::from_value::<T>(value.clone()).unwrap()).unwrap()
            }
            let mut value = value.clone();
            let back = match kind {
                "TokenRequest" => {
                    // k8s-openapi requires status.expirationTimestamp, which kubectl never sets
                    // (its JSON body has `null` there and fails the same way); the status of a
                    // request is output only.
                    value.as_object_mut().unwrap().remove("status");
                    roundtrip::<authn::TokenRequest>(&value)
                }
                "SelfSubjectReview" => roundtrip::<authn::SelfSubjectReview>(&value),
                "SelfSubjectAccessReview" => roundtrip::<authz::SelfSubjectAccessReview>(&value),
                "SelfSubjectRulesReview" => roundtrip::<authz::SelfSubjectRulesReview>(&value),
                other => panic!("no typed decoder for {other}"),
            };
            assert_subset(&value, &back, kind);
        }
    }
}

/// Every member of `part` is in `whole`, with the same value.
fn assert_subset(part: &Value, whole: &Value, path: &str) {
    match (part, whole) {
        (Value::Object(part), Value::Object(whole)) => {
            for (key, value) in part {
                let child = format!("{path}.{key}");
                let other = whole
                    .get(key)
                    .unwrap_or_else(|| panic!("{child} was dropped"));
                assert_subset(value, other, &child);
            }
        }
        (Value::Array(part), Value::Array(whole)) => {
            assert_eq!(part.len(), whole.len(), "{path}");
            for (i, (a, b)) in part.iter().zip(whole).enumerate() {
                assert_subset(a, b, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(part, whole, "{path}"),
    }
}

/// k8s-openapi writes f64 fields as `10.0` where Go (and this decoder) write `10`.
fn numbers_as_floats(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

fn decode_typed(hex: &str) -> Value {
    let value = decode_hex(hex);
    assert_typed(&value);
    value
}

// ------------------------------------------------------------------------------------------
// Recorded kubectl bodies.

#[test]
fn configmap_with_data() {
    let value = decode_typed(CONFIGMAP);
    // What kubectl 1.31 sends as JSON for the same command, minus `creationTimestamp: null`.
    assert_eq!(
        value,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}})
    );
    assert_eq!(decode_typed(CONFIGMAP_DRY_RUN)["metadata"]["name"], "dry");
}

#[test]
fn secret_data_is_base64() {
    let value = decode_typed(SECRET_GENERIC);
    // `type: ""` is on the wire and dropped (non-pointer omitempty), so defaulting sees no type.
    assert_eq!(
        value,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "Yg=="}})
    );

    let value = decode_typed(SECRET_DOCKER_REGISTRY);
    assert_eq!(value["type"], "kubernetes.io/dockerconfigjson");
    let config = base64::engine::general_purpose::STANDARD
        .decode(value["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&config).unwrap(),
        json!({"auths": {"s": {"username": "u", "password": "p", "auth": "dTpw"}}})
    );
}

#[test]
fn namespace() {
    assert_eq!(
        decode_typed(NAMESPACE),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "spec": {}, "status": {}})
    );
}

#[test]
fn deployment() {
    let value = decode_typed(DEPLOYMENT);
    // Exactly the JSON body kubectl 1.27-1.31 sends for `create deployment d --image=nginx`
    // (recorded), without its two `creationTimestamp: null`.
    assert_eq!(
        value,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"app": "d"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "d"}},
                "template": {
                    "metadata": {"labels": {"app": "d"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": {}}]}
                },
                "strategy": {}
            },
            "status": {}
        })
    );
    assert!(value["metadata"].get("creationTimestamp").is_none());
    assert!(
        value["spec"]["template"]["metadata"]
            .get("creationTimestamp")
            .is_none()
    );
}

#[test]
fn service_clusterip_target_port_is_a_number() {
    assert_eq!(
        decode_typed(SERVICE_CLUSTERIP),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "labels": {"app": "s"}},
            "spec": {
                "ports": [{"name": "80-80", "protocol": "TCP", "port": 80, "targetPort": 80}],
                "selector": {"app": "s"},
                "type": "ClusterIP"
            },
            "status": {"loadBalancer": {}}
        })
    );
}

#[test]
fn serviceaccount() {
    assert_eq!(
        decode_typed(SERVICEACCOUNT),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}})
    );
}

#[test]
fn job_and_cronjob() {
    assert_eq!(
        decode_typed(JOB),
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j"},
            "spec": {"template": {
                "metadata": {},
                "spec": {
                    "containers": [{"name": "j", "image": "busybox", "resources": {}}],
                    "restartPolicy": "Never"
                }
            }},
            "status": {}
        })
    );
    let cronjob = decode_typed(CRONJOB);
    assert_eq!(cronjob["spec"]["schedule"], "* * * * *");
    assert_eq!(
        cronjob["spec"]["jobTemplate"],
        json!({
            "metadata": {"name": "c"},
            "spec": {"template": {
                "metadata": {},
                "spec": {
                    "containers": [{"name": "c", "image": "busybox", "resources": {}}],
                    "restartPolicy": "OnFailure"
                }
            }}
        })
    );
    assert_eq!(cronjob["status"], json!({}));
}

#[test]
fn quota_quantities_are_strings() {
    assert_eq!(
        decode_typed(QUOTA),
        json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"}}, "status": {}
        })
    );
}

#[test]
fn priorityclass() {
    assert_eq!(
        decode_typed(PRIORITYCLASS),
        json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "p"}, "value": 10, "preemptionPolicy": "PreemptLowerPriority"
        })
    );
}

#[test]
fn pdb_min_available_is_an_int_or_string() {
    assert_eq!(
        decode_typed(PDB),
        json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "p"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"a": "b"}}},
            // Go has no omitempty on these: its JSON carries the zeros too.
            "status": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
        })
    );
}

#[test]
fn ingress_rules() {
    let value = decode_typed(INGRESS);
    // `http` comes from the inlined IngressRuleValue.
    assert_eq!(
        value["spec"],
        json!({"rules": [{
            "host": "foo.com",
            "http": {"paths": [{
                "path": "/bar",
                "pathType": "Exact",
                "backend": {"service": {"name": "svc", "port": {"number": 80}}}
            }]}
        }]})
    );
    assert_eq!(value["status"], json!({"loadBalancer": {}}));
}

#[test]
fn rbac() {
    let rules = json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]);
    let role = decode_typed(ROLE);
    assert_eq!(
        role,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}, "rules": rules})
    );
    let clusterrole = decode_typed(CLUSTERROLE);
    assert_eq!(clusterrole["kind"], "ClusterRole");
    assert_eq!(clusterrole["rules"], rules);
    assert_eq!(
        decode_typed(ROLEBINDING),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "rb"},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "u"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}
        })
    );
}

#[test]
fn hpa_v1_and_v2() {
    let v1 = decode_typed(HPA_V1);
    assert_eq!(
        v1,
        json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "d"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "d", "apiVersion": "apps/v1"},
                "maxReplicas": 3
            },
            // v1 has no omitempty on either counter; v2 has it on currentReplicas only.
            "status": {"currentReplicas": 0, "desiredReplicas": 0}
        })
    );
    let v2 = decode_typed(HPA_V2);
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(v2["spec"], v1["spec"]);
    assert_eq!(v2["status"], json!({"desiredReplicas": 0}));
}

#[test]
fn token_request_and_reviews() {
    // kubectl 1.31 JSON: {"metadata":{"creationTimestamp":null},"spec":{"audiences":null,
    // "expirationSeconds":null,"boundObjectRef":null},"status":{"token":"","expirationTimestamp":null}}
    assert_eq!(
        decode_typed(TOKEN_REQUEST),
        json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "metadata": {}, "spec": {}, "status": {"token": ""}
        })
    );
    assert_eq!(
        decode_typed(SELF_SUBJECT_ACCESS_REVIEW),
        json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}},
            "status": {"allowed": false}
        })
    );
    assert_eq!(
        decode_typed(SELF_SUBJECT_REVIEW),
        json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
            "metadata": {}, "status": {"userInfo": {}}
        })
    );
}

/// `value` without its `null` members, recursively.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

#[test]
fn protobuf_bodies_decode_to_the_json_kubectl_1_31_sends() {
    // The empty-value rule, checked end to end: pointer zeros (`replicas: 0`,
    // `expirationSeconds`, `value: 0`), non-omitempty zeros (`allowed: false`), empty strings
    // inside maps and lists, intstr strings (`targetPort: "https"`, `maxUnavailable: "50%"`).
    for (command, hex, json) in SAME_AS_JSON {
        let value = decode_hex(hex);
        let expected = without_nulls(serde_json::from_str(json).unwrap());
        assert_eq!(value, expected, "{command}");
        assert_typed(&value);
    }
    let v1 = decode_typed(HPA_V1_CPU);
    assert_eq!(
        v1,
        without_nulls(serde_json::from_str(HPA_V1_CPU_JSON).unwrap())
    );
    let v2 = decode_typed(HPA_V2_CPU);
    assert_eq!(
        v2["spec"],
        json!({
            "scaleTargetRef": {"kind": "Deployment", "name": "d", "apiVersion": "apps/v1"},
            "minReplicas": 2,
            "maxReplicas": 5,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}
            }]
        })
    );
}

#[test]
fn envelope_fields() {
    let envelope = decode_envelope(&unhex(CONFIGMAP)).unwrap();
    assert_eq!(envelope.api_version, "v1");
    assert_eq!(envelope.kind, "ConfigMap");
    assert_eq!(envelope.content_type, "");
    assert_eq!(envelope.raw.len(), 27);
    assert_eq!(
        to_json(&envelope.api_version, &envelope.kind, &envelope.raw).unwrap(),
        decode_hex(CONFIGMAP)
    );
}

#[test]
fn content_type_detection() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf(
        "Application/VND.Kubernetes.Protobuf; charset=binary"
    ));
    assert!(is_protobuf(
        " application/vnd.kubernetes.protobuf ;stream=watch"
    ));
    assert!(!is_protobuf("application/json"));
    assert!(!is_protobuf("application/vnd.kubernetes.protobuf+json"));
    assert!(!is_protobuf(""));
}

// ------------------------------------------------------------------------------------------
// Synthetic objects, encoded with the k8s-pb types the way Go writes them.

fn object_meta(name: &str) -> meta::ObjectMeta {
    // Go always writes ObjectMeta fields 2-8.
    meta::ObjectMeta {
        name: Some(name.into()),
        generate_name: Some(String::new()),
        namespace: Some(String::new()),
        self_link: Some(String::new()),
        uid: Some(String::new()),
        resource_version: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    }
}

fn quantity(s: &str) -> Quantity {
    Quantity {
        string: Some(s.into()),
    }
}

#[test]
fn pod_with_specials_inlines_and_pointer_zeros() {
    let http_get = core::ProbeHandler {
        http_get: Some(core::HttpGetAction {
            path: Some("/healthz".into()),
            port: Some(IntOrString {
                r#type: Some(1),
                int_val: Some(0),
                str_val: Some("http".into()),
            }),
            host: Some(String::new()),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let container = core::Container {
        name: Some("app".into()),
        image: Some("nginx:1.27".into()),
        command: vec!["nginx".into(), String::new()],
        working_dir: Some(String::new()),
        ports: vec![core::ContainerPort {
            name: Some("http".into()),
            host_port: Some(0),
            container_port: Some(8080),
            protocol: Some("TCP".into()),
            host_ip: Some(String::new()),
        }],
        resources: Some(core::ResourceRequirements {
            limits: [("memory".to_string(), quantity("128Mi"))].into(),
            requests: [("cpu".to_string(), quantity("100m"))].into(),
            ..Default::default()
        }),
        liveness_probe: Some(core::Probe {
            handler: Some(http_get),
            initial_delay_seconds: Some(0),
            timeout_seconds: Some(1),
            period_seconds: Some(10),
            success_threshold: Some(1),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        security_context: Some(core::SecurityContext {
            run_as_user: Some(0),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        }),
        termination_message_path: Some(String::new()),
        image_pull_policy: Some(String::new()),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        termination_message_policy: Some(String::new()),
        ..Default::default()
    };
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_767_323_045), // 2026-01-02T03:04:05Z
                nanos: Some(0),
            }),
            deletion_grace_period_seconds: Some(0),
            owner_references: vec![meta::OwnerReference {
                api_version: Some("apps/v1".into()),
                kind: Some("ReplicaSet".into()),
                name: Some("web-5d4f".into()),
                uid: Some("8a1c".into()),
                controller: Some(true),
                block_owner_deletion: Some(false),
            }],
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: Some("kubectl".into()),
                operation: Some("Update".into()),
                api_version: Some("v1".into()),
                time: Some(meta::Time {
                    seconds: Some(1_767_323_045),
                    nanos: Some(0),
                }),
                fields_type: Some("FieldsV1".into()),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:metadata":{"f:labels":{".":{}}}}"#.to_vec()),
                }),
                subresource: Some(String::new()),
            }],
            ..object_meta("web")
        }),
        spec: Some(core::PodSpec {
            volumes: vec![core::Volume {
                name: Some("config".into()),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: Some("web-config".into()),
                        }),
                        default_mode: Some(0o644),
                        optional: Some(false),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            containers: vec![container],
            ephemeral_containers: vec![core::EphemeralContainer {
                ephemeral_container_common: Some(core::EphemeralContainerCommon {
                    name: Some("debug".into()),
                    image: Some("busybox".into()),
                    ..Default::default()
                }),
                target_container_name: Some("app".into()),
            }],
            restart_policy: Some("Always".into()),
            termination_grace_period_seconds: Some(0),
            dns_policy: Some(String::new()),
            automount_service_account_token: Some(false),
            host_network: Some(false),
            security_context: Some(core::PodSecurityContext {
                run_as_non_root: Some(false),
                fs_group: Some(0),
                supplemental_groups: vec![0, 1000],
                ..Default::default()
            }),
            tolerations: vec![core::Toleration {
                key: Some("node.kubernetes.io/not-ready".into()),
                operator: Some("Exists".into()),
                value: Some(String::new()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(300),
            }],
            priority: Some(-5),
            overhead: [("cpu".to_string(), quantity("0"))].into(),
            ..Default::default()
        }),
        status: Some(core::PodStatus {
            phase: Some(String::new()),
            start_time: Some(meta::Time::default()),
            ..Default::default()
        }),
    };
    let value = decode_body(&body("v1", "Pod", pod.encode_to_vec())).unwrap();
    assert_eq!(
        value,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "web",
                "creationTimestamp": "2026-01-02T03:04:05Z",
                "deletionGracePeriodSeconds": 0,
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": "8a1c",
                    "controller": true, "blockOwnerDeletion": false
                }],
                "managedFields": [{
                    "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                    "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}
                }]
            },
            "spec": {
                "volumes": [{"name": "config", "configMap": {"name": "web-config", "defaultMode": 420, "optional": false}}],
                "containers": [{
                    "name": "app", "image": "nginx:1.27", "command": ["nginx", ""],
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "100m"}},
                    "livenessProbe": {
                        "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3
                    },
                    "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": false}
                }],
                "ephemeralContainers": [{"name": "debug", "image": "busybox", "targetContainerName": "app"}],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": false,
                "securityContext": {"runAsNonRoot": false, "supplementalGroups": [0, 1000], "fsGroup": 0},
                "tolerations": [{
                    "key": "node.kubernetes.io/not-ready", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": 300
                }],
                "priority": -5,
                "overhead": {"cpu": "0"}
            },
            "status": {}
        })
    );
    assert_typed(&value);
}

#[test]
fn zero_replicas_is_kept_and_non_pointer_zeros_are_dropped() {
    let deployment = apps::Deployment {
        metadata: Some(object_meta("d")),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            min_ready_seconds: Some(0),
            paused: Some(false),
            revision_history_limit: Some(0),
            ..Default::default()
        }),
        status: None,
    };
    let value = decode_body(&body("apps/v1", "Deployment", deployment.encode_to_vec())).unwrap();
    assert_eq!(
        value["spec"],
        json!({"replicas": 0, "revisionHistoryLimit": 0})
    );
    assert!(value.get("status").is_none());

    let configmap = core::ConfigMap {
        metadata: Some(object_meta("bin")),
        immutable: Some(false),
        data: [("empty".to_string(), String::new())].into(),
        binary_data: [("blob".to_string(), vec![0, 159, 146, 150])].into(),
    };
    let value = decode_body(&body("v1", "ConfigMap", configmap.encode_to_vec())).unwrap();
    assert_eq!(
        value,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bin"},
            "immutable": false, "data": {"empty": ""}, "binaryData": {"blob": "AJ+Slg=="}
        })
    );
    assert_typed(&value);
}

#[test]
fn micro_time_and_raw_extension() {
    let event = events::Event {
        metadata: Some(object_meta("e")),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_767_323_045),
            nanos: Some(123_456_789),
        }),
        reporting_controller: Some("maestro".into()),
        reporting_instance: Some(String::new()),
        action: Some("Scheduled".into()),
        reason: Some("Scheduled".into()),
        r#type: Some("Normal".into()),
        deprecated_first_timestamp: Some(meta::Time::default()),
        deprecated_count: Some(0),
        ..Default::default()
    };
    let value = decode_body(&body("events.k8s.io/v1", "Event", event.encode_to_vec())).unwrap();
    assert_eq!(value["eventTime"], "2026-01-02T03:04:05.123456Z");
    assert!(value.get("deprecatedFirstTimestamp").is_none());
    assert!(value.get("deprecatedCount").is_none());
    // Dropped: omitempty in events/v1 (core/v1 Event has none, and keeps it).
    assert!(value.get("reportingInstance").is_none());
    assert_typed(&value);

    let lease = coordination::Lease {
        metadata: Some(object_meta("l")),
        spec: Some(coordination::LeaseSpec {
            holder_identity: Some("node-1".into()),
            lease_duration_seconds: Some(40),
            renew_time: Some(meta::MicroTime {
                seconds: Some(0),
                nanos: Some(1_500),
            }),
            ..Default::default()
        }),
    };
    let value = decode_body(&body(
        "coordination.k8s.io/v1",
        "Lease",
        lease.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(value["spec"]["renewTime"], "1970-01-01T00:00:00.000001Z");
    assert_typed(&value);

    let revision = apps::ControllerRevision {
        metadata: Some(object_meta("web-1")),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"template":{"$patch":"replace"}}}"#.to_vec()),
        }),
        revision: Some(1),
    };
    let value = decode_body(&body(
        "apps/v1",
        "ControllerRevision",
        revision.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(
        value["data"],
        json!({"spec": {"template": {"$patch": "replace"}}})
    );
    assert_eq!(value["revision"], 1);
    assert_typed(&value);
}

#[test]
fn user_info_extra_values_are_string_arrays() {
    let review = authentication::SelfSubjectReview {
        metadata: Some(object_meta("")),
        status: Some(authentication::SelfSubjectReviewStatus {
            user_info: Some(authentication::UserInfo {
                username: Some("alice".into()),
                uid: Some(String::new()),
                groups: vec!["system:authenticated".into()],
                extra: [(
                    "scopes".to_string(),
                    authentication::ExtraValue {
                        items: vec!["read".into(), "write".into()],
                    },
                )]
                .into(),
            }),
        }),
    };
    let value = decode_body(&body(
        "authentication.k8s.io/v1",
        "SelfSubjectReview",
        review.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(
        value["status"]["userInfo"],
        json!({"username": "alice", "groups": ["system:authenticated"], "extra": {"scopes": ["read", "write"]}})
    );
    assert_typed(&value);
}

#[test]
fn custom_resource_definition_schemas() {
    let string_schema = apiext::JsonSchemaProps {
        r#type: Some("string".into()),
        r#enum: vec![
            apiext::Json {
                raw: Some(br#""a""#.to_vec()),
            },
            apiext::Json {
                raw: Some(br#""b""#.to_vec()),
            },
        ],
        ..Default::default()
    };
    let schema = apiext::JsonSchemaProps {
        r#type: Some("object".into()),
        properties: [
            ("mode".to_string(), string_schema.clone()),
            (
                "tags".to_string(),
                apiext::JsonSchemaProps {
                    r#type: Some("array".into()),
                    items: Some(Box::new(apiext::JsonSchemaPropsOrArray {
                        schema: Some(Box::new(apiext::JsonSchemaProps {
                            r#type: Some("string".into()),
                            ..Default::default()
                        })),
                        j_son_schemas: vec![],
                    })),
                    max_items: Some(0),
                    ..Default::default()
                },
            ),
            (
                "labels".to_string(),
                apiext::JsonSchemaProps {
                    r#type: Some("object".into()),
                    additional_properties: Some(Box::new(apiext::JsonSchemaPropsOrBool {
                        allows: Some(true),
                        schema: Some(Box::new(apiext::JsonSchemaProps {
                            r#type: Some("string".into()),
                            ..Default::default()
                        })),
                    })),
                    ..Default::default()
                },
            ),
            (
                "raw".to_string(),
                apiext::JsonSchemaProps {
                    x_kubernetes_preserve_unknown_fields: Some(true),
                    additional_properties: Some(Box::new(apiext::JsonSchemaPropsOrBool {
                        allows: Some(false),
                        schema: None,
                    })),
                    default: Some(apiext::Json {
                        raw: Some(br#"{"k":[1,2.5,null]}"#.to_vec()),
                    }),
                    maximum: Some(10.0),
                    minimum: Some(-0.5),
                    ..Default::default()
                },
            ),
        ]
        .into(),
        ..Default::default()
    };
    let crd = apiext::CustomResourceDefinition {
        metadata: Some(object_meta("widgets.example.com")),
        spec: Some(apiext::CustomResourceDefinitionSpec {
            group: Some("example.com".into()),
            names: Some(apiext::CustomResourceDefinitionNames {
                plural: Some("widgets".into()),
                singular: Some(String::new()),
                kind: Some("Widget".into()),
                list_kind: Some(String::new()),
                ..Default::default()
            }),
            scope: Some("Namespaced".into()),
            versions: vec![apiext::CustomResourceDefinitionVersion {
                name: Some("v1".into()),
                served: Some(true),
                storage: Some(true),
                deprecated: Some(false),
                schema: Some(apiext::CustomResourceValidation {
                    open_apiv3_schema: Some(schema),
                }),
                ..Default::default()
            }],
            preserve_unknown_fields: Some(false),
            ..Default::default()
        }),
        status: None,
    };
    let value = decode_body(&body(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        crd.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(
        value["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
        json!({
            "type": "object",
            "properties": {
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "raw": {
                    "default": {"k": [1, 2.5, null]}, "maximum": 10, "minimum": -0.5,
                    "additionalProperties": false, "x-kubernetes-preserve-unknown-fields": true
                },
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 0}
            }
        })
    );
    assert_eq!(
        value["spec"]["names"],
        json!({"plural": "widgets", "kind": "Widget"})
    );
    assert_typed(&value);
}

#[test]
fn time_and_duration_formats() {
    assert_eq!(format_time(0, None).unwrap(), "1970-01-01T00:00:00Z");
    assert_eq!(
        format_time(1_767_323_045, None).unwrap(),
        "2026-01-02T03:04:05Z"
    );
    assert_eq!(
        format_time(1_767_323_045, Some(5_000)).unwrap(),
        "2026-01-02T03:04:05.000005Z"
    );
    assert_eq!(
        format_time(-1, Some(0)).unwrap(),
        "1969-12-31T23:59:59.000000Z"
    );
    assert!(format_time(i64::MAX, None).is_err());

    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(30_000_000_000), "30s");
    assert_eq!(go_duration(90_000_000_000), "1m30s");
    assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
    assert_eq!(go_duration(1_500_000_000), "1.5s");
    assert_eq!(go_duration(300_000_000), "300ms");
    assert_eq!(go_duration(1_500), "1.5µs");
    assert_eq!(go_duration(7), "7ns");
    assert_eq!(go_duration(-90_000_000_000), "-1m30s");
    assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
}

#[test]
fn duplicate_messages_merge_and_unknown_fields_are_skipped() {
    let mut extended = decode_envelope(&unhex(CONFIGMAP)).unwrap().raw;
    // metadata again, with labels: merged into the first one.
    extended.extend([0x0a, 0x08, 0x5a, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v']);
    // Unknown fields 99 (varint), 100 (fixed64), 101 (bytes), 102 (fixed32).
    extended.extend([0x98, 0x06, 0x01]);
    extended.extend([0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]);
    extended.extend([0xaa, 0x06, 0x02, 0xff, 0xff]);
    extended.extend([0xb5, 0x06, 1, 2, 3, 4]);
    let value = to_json("v1", "ConfigMap", &extended).unwrap();
    assert_eq!(
        value,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"k": "v"}}, "data": {"a": "b"}})
    );
}

#[test]
fn packed_and_negative_integers() {
    // PodSecurityContext.supplementalGroups (4, int64) packed; PodSpec.priority (25, int32) = -1
    // as a 10-byte varint, the way Go writes negative int32s.
    let security_context = [0x22, 0x03, 0x00, 0xe8, 0x07];
    let mut spec = vec![0x72, security_context.len() as u8];
    spec.extend(security_context);
    spec.extend([
        0xc8, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ]);
    let mut pod = vec![0x12, spec.len() as u8];
    pod.extend(spec);
    let value = to_json("v1", "Pod", &pod).unwrap();
    assert_eq!(
        value["spec"],
        json!({"securityContext": {"supplementalGroups": [0, 1000]}, "priority": -1})
    );
}

#[test]
fn unknown_json_content_type_envelopes() {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
        }),
        raw: Some(br#"{"metadata":{"name":"j"}}"#.to_vec()),
        content_encoding: None,
        content_type: Some("application/json".into()),
    };
    let mut bytes = MAGIC.to_vec();
    bytes.extend(unknown.encode_to_vec());
    assert_eq!(
        decode_body(&bytes).unwrap(),
        json!({"metadata": {"name": "j"}, "apiVersion": "v1", "kind": "ConfigMap"})
    );
}

// ------------------------------------------------------------------------------------------
// Malformed input.

fn malformed(result: Result<Value>) -> Malformation {
    match result {
        Err(ProtobufError::Malformed { problem, .. }) => problem,
        other => panic!("expected a malformed-input error, got {other:?}"),
    }
}

#[test]
fn malformed_inputs_are_errors() {
    assert_eq!(
        decode_body(b"{\"kind\":\"ConfigMap\"}"),
        Err(ProtobufError::MissingMagic)
    );
    assert_eq!(decode_body(b"k8s"), Err(ProtobufError::MissingMagic));
    assert_eq!(decode_body(b"k8s\0"), Err(ProtobufError::MissingTypeMeta));

    // Truncated varint (a key whose continuation bit promises more).
    assert_eq!(
        malformed(decode_body(b"k8s\0\x0a\x80")),
        Malformation::TruncatedVarint
    );
    assert_eq!(
        malformed(to_json("v1", "ConfigMap", &[0x80])),
        Malformation::TruncatedVarint
    );
    // A varint of 11 bytes.
    assert_eq!(
        malformed(to_json("v1", "ConfigMap", &[0xff; 11])),
        Malformation::VarintTooLong
    );
    // Length past the end: typeMeta says 5 bytes, 3 follow.
    assert_eq!(
        malformed(decode_body(b"k8s\0\x0a\x05\x0a\x01v")),
        Malformation::LengthPastEnd(5)
    );
    // A huge length.
    assert_eq!(
        malformed(to_json(
            "v1",
            "ConfigMap",
            &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]
        )),
        Malformation::LengthPastEnd(0xffff_ffff)
    );
    // Field number 0, groups, wire types 6 and 7.
    assert_eq!(
        malformed(to_json("v1", "ConfigMap", &[0x00, 0x00])),
        Malformation::InvalidFieldNumber
    );
    assert_eq!(
        malformed(to_json("v1", "ConfigMap", &[0x0b])),
        Malformation::UnsupportedWireType(3)
    );
    assert_eq!(
        malformed(to_json("v1", "ConfigMap", &[0x0e])),
        Malformation::UnsupportedWireType(6)
    );
    // Truncated fixed64 in an unknown field.
    assert_eq!(
        malformed(to_json("v1", "ConfigMap", &[0x49, 1, 2, 3])),
        Malformation::TruncatedFixed
    );

    // Wrong wire type: ConfigMap.data (2) as a varint, ObjectMeta.name as a varint.
    match to_json("v1", "ConfigMap", &[0x10, 0x01]) {
        Err(ProtobufError::WrongWireType {
            field: 2,
            wire_type: 0,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let err = to_json("v1", "ConfigMap", &[0x0a, 0x02, 0x08, 0x01]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed protobuf in ObjectMeta: field 1 (name) has wire type 0, expected length-delimited"
    );

    // Unknown kinds.
    assert_eq!(
        to_json("v1", "Frobnicator", &[]),
        Err(ProtobufError::UnknownKind {
            api_version: "v1".into(),
            kind: "Frobnicator".into()
        })
    );
    assert!(matches!(
        decode_body(&body("example.com/v1", "Widget", vec![])),
        Err(ProtobufError::UnknownKind { .. })
    ));

    // Envelope oddities.
    let mut gzip = body("v1", "ConfigMap", vec![]);
    gzip.extend([0x1a, 0x04, b'g', b'z', b'i', b'p']);
    assert_eq!(
        decode_body(&gzip),
        Err(ProtobufError::UnsupportedEncoding("gzip".into()))
    );
    let mut yaml = body("v1", "ConfigMap", vec![]);
    yaml.extend([0x22, 0x09]);
    yaml.extend(b"text/yaml");
    assert_eq!(
        decode_body(&yaml),
        Err(ProtobufError::UnsupportedContentType("text/yaml".into()))
    );

    // Invalid special values.
    let revision = apps::ControllerRevision {
        data: Some(RawExtension {
            raw: Some(b"{not json".to_vec()),
        }),
        ..Default::default()
    };
    assert!(matches!(
        to_json("apps/v1", "ControllerRevision", &revision.encode_to_vec()),
        Err(ProtobufError::InvalidValue { .. })
    ));
    let service = core::Service {
        spec: Some(core::ServiceSpec {
            ports: vec![core::ServicePort {
                target_port: Some(IntOrString {
                    r#type: Some(7),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(matches!(
        to_json("v1", "Service", &service.encode_to_vec()),
        Err(ProtobufError::InvalidValue { .. })
    ));
    let quota = core::ResourceQuota {
        spec: Some(core::ResourceQuotaSpec {
            hard: [("pods".to_string(), quantity(""))].into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        to_json("v1", "ResourceQuota", &quota.encode_to_vec())
            .unwrap_err()
            .to_string(),
        "invalid value in Quantity: empty quantity"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // JSONSchemaProps.not (28), nested 1000 times.
    let mut schema = Vec::new();
    for _ in 0..1000 {
        let mut outer = vec![0xe2, 0x01];
        let mut len = schema.len();
        while len >= 0x80 {
            outer.push((len as u8) | 0x80);
            len >>= 7;
        }
        outer.push(len as u8);
        outer.extend(schema);
        schema = outer;
    }
    let index = schema::MESSAGES
        .iter()
        .position(|m| m.name == "JsonSchemaProps")
        .unwrap() as u16;
    assert!(matches!(
        decode_message(index, &schema, 0, 0),
        Err(ProtobufError::TooDeep { .. })
    ));
}

#[test]
fn truncated_and_corrupted_bodies_never_panic() {
    for hex in [
        CONFIGMAP,
        SECRET_DOCKER_REGISTRY,
        DEPLOYMENT,
        SERVICE_CLUSTERIP,
        JOB,
        CRONJOB,
        INGRESS,
        PDB,
        ROLEBINDING,
        TOKEN_REQUEST,
        SELF_SUBJECT_ACCESS_REVIEW,
        HPA_V2,
    ] {
        let bytes = unhex(hex);
        for end in 0..bytes.len() {
            let _ = decode_body(&bytes[..end]);
        }
        for i in 4..bytes.len() {
            for flip in [0x01, 0x07, 0x80, 0xff] {
                let mut corrupted = bytes.clone();
                corrupted[i] ^= flip;
                let _ = decode_body(&corrupted);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// The table itself.

#[test]
fn schema_table_is_consistent() {
    for (i, msg) in schema::MESSAGES.iter().enumerate() {
        assert!(
            msg.fields.windows(2).all(|w| w[0].tag < w[1].tag),
            "{} ({i}): fields not sorted by tag",
            msg.name
        );
        for field in msg.fields {
            if let Ty::Msg(child) = field.ty {
                assert!(usize::from(child) < schema::MESSAGES.len());
            }
            if field.card == Card::Inline {
                assert!(
                    matches!(field.ty, Ty::Msg(_)),
                    "{}.{}",
                    msg.name,
                    field.json
                );
            }
        }
    }
    assert!(
        schema::ROOTS
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
    );
    // The roots are the codec's typed kinds (read from codec.rs by the generator) and the
    // request-only kinds kubectl POSTs.
    for (api_version, kind, _) in schema::ROOTS {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let extra = [
            "TokenRequest",
            "SelfSubjectReview",
            "SelfSubjectAccessReview",
            "SelfSubjectRulesReview",
        ]
        .contains(kind);
        assert!(
            extra || crate::codec::is_typed(group, version, kind),
            "{api_version} {kind}"
        );
    }
}
