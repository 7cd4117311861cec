//! Typed decoding of built-in kinds through the k8s-openapi types.
//!
//! A request body is decoded into its Rust type and encoded again: what comes out is the
//! normalized object (unknown fields dropped, wrong types and wrong apiVersion/kind rejected),
//! and comparing it with what came in names the unknown fields for `fieldValidation`.

use k8s_openapi::api;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a body could not be decoded as its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} in version \"{version}\" cannot be handled as a {kind}: {detail}")]
pub struct DecodeError {
    pub kind: String,
    pub version: String,
    pub detail: String,
}

/// The result of decoding: the normalized object and the paths of fields the type does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub object: Value,
    pub unknown_fields: Vec<String>,
}

type NormalizeFn = fn(Value) -> Result<Value, serde_json::Error>;

fn roundtrip<T: Serialize + DeserializeOwned>(value: Value) -> Result<Value, serde_json::Error> {
    let typed: T = serde_json::from_value(value)?;
    serde_json::to_value(typed)
}

macro_rules! typed_kinds {
    ($( ($group:literal, $version:literal, $kind:literal, $ty:ty) ),* $(,)?) => {
        fn normalizer(group: &str, version: &str, kind: &str) -> Option<NormalizeFn> {
            match (group, version, kind) {
                $( ($group, $version, $kind) => Some(roundtrip::<$ty> as NormalizeFn), )*
                _ => None,
            }
        }

        /// The JSON schema of a built-in kind, registering its definitions in `generator`
        /// (used for the OpenAPI documents and the patch metadata).
        pub fn schema_for(
            group: &str,
            version: &str,
            kind: &str,
            generator: &mut schemars::SchemaGenerator,
        ) -> Option<schemars::Schema> {
            match (group, version, kind) {
                $( ($group, $version, $kind) => Some(generator.subschema_for::<$ty>()), )*
                _ => None,
            }
        }

        /// Every (group, version, kind) with a typed decoder.
        pub fn typed_kinds() -> &'static [(&'static str, &'static str, &'static str)] {
            &[$( ($group, $version, $kind), )*]
        }

        /// The OpenAPI definition name of a built-in kind (`io.k8s.api.core.v1.Pod`).
        pub fn definition_name(group: &str, version: &str, kind: &str) -> Option<String> {
            match (group, version, kind) {
                $( ($group, $version, $kind) => Some(<$ty as schemars::JsonSchema>::schema_name().into_owned()), )*
                _ => None,
            }
        }
    };
}

typed_kinds! {
    ("", "v1", "Namespace", api::core::v1::Namespace),
    ("", "v1", "Pod", api::core::v1::Pod),
    ("", "v1", "Service", api::core::v1::Service),
    ("", "v1", "Endpoints", api::core::v1::Endpoints),
    ("", "v1", "ConfigMap", api::core::v1::ConfigMap),
    ("", "v1", "Secret", api::core::v1::Secret),
    ("", "v1", "ServiceAccount", api::core::v1::ServiceAccount),
    ("", "v1", "Event", api::core::v1::Event),
    ("", "v1", "Node", api::core::v1::Node),
    ("", "v1", "PersistentVolume", api::core::v1::PersistentVolume),
    ("", "v1", "PersistentVolumeClaim", api::core::v1::PersistentVolumeClaim),
    ("", "v1", "LimitRange", api::core::v1::LimitRange),
    ("", "v1", "ResourceQuota", api::core::v1::ResourceQuota),
    ("", "v1", "PodTemplate", api::core::v1::PodTemplate),
    ("", "v1", "Binding", api::core::v1::Binding),
    ("apps", "v1", "Deployment", api::apps::v1::Deployment),
    ("apps", "v1", "ReplicaSet", api::apps::v1::ReplicaSet),
    ("apps", "v1", "StatefulSet", api::apps::v1::StatefulSet),
    ("apps", "v1", "DaemonSet", api::apps::v1::DaemonSet),
    ("apps", "v1", "ControllerRevision", api::apps::v1::ControllerRevision),
    ("batch", "v1", "Job", api::batch::v1::Job),
    ("batch", "v1", "CronJob", api::batch::v1::CronJob),
    ("autoscaling", "v1", "HorizontalPodAutoscaler", api::autoscaling::v1::HorizontalPodAutoscaler),
    ("autoscaling", "v1", "Scale", api::autoscaling::v1::Scale),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", api::autoscaling::v2::HorizontalPodAutoscaler),
    ("networking.k8s.io", "v1", "Ingress", api::networking::v1::Ingress),
    ("networking.k8s.io", "v1", "IngressClass", api::networking::v1::IngressClass),
    ("networking.k8s.io", "v1", "NetworkPolicy", api::networking::v1::NetworkPolicy),
    ("coordination.k8s.io", "v1", "Lease", api::coordination::v1::Lease),
    ("discovery.k8s.io", "v1", "EndpointSlice", api::discovery::v1::EndpointSlice),
    ("events.k8s.io", "v1", "Event", api::events::v1::Event),
    ("policy", "v1", "PodDisruptionBudget", api::policy::v1::PodDisruptionBudget),
    ("policy", "v1", "Eviction", api::policy::v1::Eviction),
    ("scheduling.k8s.io", "v1", "PriorityClass", api::scheduling::v1::PriorityClass),
    ("storage.k8s.io", "v1", "StorageClass", api::storage::v1::StorageClass),
    ("rbac.authorization.k8s.io", "v1", "Role", api::rbac::v1::Role),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", api::rbac::v1::RoleBinding),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", api::rbac::v1::ClusterRole),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", api::rbac::v1::ClusterRoleBinding),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", apiext::CustomResourceDefinition),
}

/// Whether a typed decoder exists for this group/version/kind.
pub fn is_typed(group: &str, version: &str, kind: &str) -> bool {
    normalizer(group, version, kind).is_some()
}

/// Decode `value` as the given built-in kind. Returns None for kinds without a typed decoder
/// (custom resources), which are validated against their schema instead.
pub fn decode(
    group: &str,
    version: &str,
    kind: &str,
    value: Value,
) -> Option<Result<Decoded, DecodeError>> {
    let normalize = normalizer(group, version, kind)?;
    let original = value.clone();
    Some(match normalize(value) {
        Ok(object) => {
            let mut unknown = Vec::new();
            collect_unknown(&original, &object, "", &mut unknown);
            Ok(Decoded {
                object,
                unknown_fields: unknown,
            })
        }
        Err(err) => Err(DecodeError {
            kind: kind.to_string(),
            version: version.to_string(),
            detail: err.to_string(),
        }),
    })
}

/// Paths present (and non-null) in `input` but missing from the decoded `output`.
fn collect_unknown(input: &Value, output: &Value, path: &str, unknown: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(inp), Value::Object(out)) => {
            for (key, value) in inp {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match out.get(key) {
                    Some(decoded) => collect_unknown(value, decoded, &child, unknown),
                    None if value.is_null() => {}
                    None => unknown.push(child),
                }
            }
        }
        (Value::Array(inp), Value::Array(out)) => {
            for (i, (a, b)) in inp.iter().zip(out.iter()).enumerate() {
                collect_unknown(a, b, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_named_with_their_paths() {
        let body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"any": "label"}},
            "spec": {"replicas": 2, "foo": 1, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i", "bar": true}]}}}
        });
        let decoded = decode("apps", "v1", "Deployment", body).unwrap().unwrap();
        assert_eq!(
            decoded.unknown_fields,
            vec!["spec.foo", "spec.template.spec.containers[0].bar"]
        );
        assert!(decoded.object["spec"].get("foo").is_none());
        assert_eq!(decoded.object["metadata"]["labels"]["any"], "label");
    }

    #[test]
    fn wrong_types_and_kinds_are_rejected() {
        let err = decode("apps", "v1", "Deployment", json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "three"}}))
            .unwrap()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Deployment in version \"v1\" cannot be handled as a Deployment:"),
            "{err}"
        );
        assert!(
            decode(
                "",
                "v1",
                "ConfigMap",
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
            )
            .unwrap()
            .is_err()
        );
    }

    #[test]
    fn custom_kinds_have_no_typed_decoder() {
        assert!(decode("example.com", "v1", "Widget", json!({})).is_none());
    }
}
