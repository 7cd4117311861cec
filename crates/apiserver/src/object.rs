//! The cached form of a stored object: its JSON with `resourceVersion` filled in, plus the
//! metadata that selectors need, extracted once when the object enters the watch cache so that
//! lists and watches never re-parse objects to filter them.

use std::collections::BTreeMap;

use bytes::Bytes;
use maestro_store::{KeyValue, Revision};
use serde_json::Value;

/// An object as the watch cache keeps it.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub key: String,
    /// JSON of the object in its storage version, `metadata.resourceVersion` set.
    pub json: Bytes,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Values of the resource-specific fields that `fieldSelector` may use.
    pub fields: Vec<(&'static str, String)>,
    pub revision: Revision,
    /// uids of `metadata.ownerReferences` (what the garbage collector follows).
    pub owner_uids: Vec<String>,
    pub finalizers: Vec<String>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

impl StoredObject {
    /// Parse the JSON (callers that need the whole object).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The value of a field selector field.
    pub fn field(&self, field: &str) -> Option<String> {
        match field {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone().unwrap_or_default()),
            other => self
                .fields
                .iter()
                .find(|(name, _)| *name == other)
                .map(|(_, value)| value.clone()),
        }
    }
}

/// `/registry/<group>/<plural>/...` → (group, plural); the core group is stored as `core`.
pub fn key_resource(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("/registry/")?;
    let mut parts = rest.splitn(3, '/');
    let group = parts.next()?;
    let plural = parts.next()?;
    Some((if group == "core" { "" } else { group }, plural))
}

/// The selectable fields per resource, beyond `metadata.name` and `metadata.namespace`.
pub fn selectable_fields(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "events") | ("events.k8s.io", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        ("certificates.k8s.io", "certificatesigningrequests") => &["spec.signerName"],
        _ => &[],
    }
}

fn field_value(obj: &Value, field: &str) -> String {
    let value = match field {
        // The events field `source` is the reporting component's name.
        "source" => obj.pointer("/source/component"),
        _ => maestro_api::meta::get_path(obj, field),
    };
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        // Kubernetes renders unset booleans as "false" (spec.unschedulable, spec.hostNetwork).
        None if matches!(field, "spec.unschedulable" | "spec.hostNetwork") => "false".to_string(),
        None if matches!(field, "status.replicas" | "status.successful") => "0".to_string(),
        _ => String::new(),
    }
}

/// Build the cached object from a store record (returns None for undecodable values).
pub fn decode(kv: &KeyValue) -> Option<StoredObject> {
    let mut value: Value = match serde_json::from_slice(&kv.value) {
        Ok(v) => v,
        Err(err) => {
            tracing::error!(key = %kv.key, %err, "undecodable object in store");
            return None;
        }
    };
    maestro_api::meta::metadata_mut(&mut value).insert(
        "resourceVersion".into(),
        Value::String(kv.mod_revision.to_string()),
    );
    let (group, plural) = key_resource(&kv.key).unwrap_or(("", ""));
    let fields = selectable_fields(group, plural)
        .iter()
        .map(|f| (*f, field_value(&value, f)))
        .collect();
    let labels = maestro_api::meta::labels(&value)
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let owner_uids = value
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let finalizers = maestro_api::meta::finalizers(&value);
    let deleting = maestro_api::meta::deletion_timestamp(&value).is_some();
    let json = Bytes::from(serde_json::to_vec(&value).ok()?);
    Some(StoredObject {
        owner_uids,
        finalizers,
        deleting,
        key: kv.key.clone(),
        namespace: maestro_api::meta::namespace(&value).map(str::to_string),
        name: maestro_api::meta::name(&value).to_string(),
        uid: maestro_api::meta::uid(&value)
            .unwrap_or_default()
            .to_string(),
        labels,
        fields,
        json,
        revision: kv.mod_revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_fills_resource_version_and_fields() {
        let kv = KeyValue {
            key: "/registry/core/pods/default/web".into(),
            value: Bytes::from(
                r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","uid":"u1","labels":{"app":"web"}},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}}"#,
            ),
            create_revision: 5,
            mod_revision: 7,
        };
        let obj = decode(&kv).unwrap();
        assert_eq!(obj.value()["metadata"]["resourceVersion"], "7");
        assert_eq!(obj.field("spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(obj.field("status.phase").as_deref(), Some("Running"));
        assert_eq!(obj.field("spec.hostNetwork").as_deref(), Some("false"));
        assert_eq!(obj.field("metadata.namespace").as_deref(), Some("default"));
        assert_eq!(obj.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(
            key_resource("/registry/apps/deployments/a/b"),
            Some(("apps", "deployments"))
        );
    }
}
