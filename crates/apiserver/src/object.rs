//! The cached form of a stored object: its JSON with `resourceVersion` filled in, plus the
//! metadata that selectors need, extracted once when the object enters the watch cache so that
//! lists and watches never re-parse objects to filter them.

use std::collections::BTreeMap;

use bytes::Bytes;
use maestro_store::{KeyValue, Revision};
use serde::Deserialize;
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

/// The parts of a stored object the cache indexes. Decoding into this skips everything else
/// without building it, which is much cheaper than a full JSON value per write.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Indexed {
    metadata: IndexedMeta,
    spec: IndexedSpec,
    status: IndexedStatus,
    involved_object: IndexedInvolved,
    source: IndexedSource,
    reason: Option<Value>,
    reporting_component: Option<Value>,
    #[serde(rename = "type")]
    type_: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IndexedMeta {
    name: String,
    namespace: Option<String>,
    uid: String,
    labels: BTreeMap<String, Value>,
    finalizers: Vec<String>,
    deletion_timestamp: Option<Value>,
    owner_references: Vec<IndexedOwner>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IndexedOwner {
    uid: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IndexedSpec {
    node_name: Option<Value>,
    restart_policy: Option<Value>,
    scheduler_name: Option<Value>,
    service_account_name: Option<Value>,
    host_network: Option<Value>,
    unschedulable: Option<Value>,
    signer_name: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IndexedStatus {
    phase: Option<Value>,
    #[serde(rename = "podIP")]
    pod_ip: Option<Value>,
    nominated_node_name: Option<Value>,
    replicas: Option<Value>,
    successful: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IndexedInvolved {
    kind: Option<Value>,
    namespace: Option<Value>,
    name: Option<Value>,
    uid: Option<Value>,
    api_version: Option<Value>,
    resource_version: Option<Value>,
    field_path: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IndexedSource {
    component: Option<Value>,
}

fn field_value(obj: &Indexed, field: &str) -> String {
    let value = match field {
        "spec.nodeName" => &obj.spec.node_name,
        "spec.restartPolicy" => &obj.spec.restart_policy,
        "spec.schedulerName" => &obj.spec.scheduler_name,
        "spec.serviceAccountName" => &obj.spec.service_account_name,
        "spec.hostNetwork" => &obj.spec.host_network,
        "spec.unschedulable" => &obj.spec.unschedulable,
        "spec.signerName" => &obj.spec.signer_name,
        "status.phase" => &obj.status.phase,
        "status.podIP" => &obj.status.pod_ip,
        "status.nominatedNodeName" => &obj.status.nominated_node_name,
        "status.replicas" => &obj.status.replicas,
        "status.successful" => &obj.status.successful,
        "involvedObject.kind" => &obj.involved_object.kind,
        "involvedObject.namespace" => &obj.involved_object.namespace,
        "involvedObject.name" => &obj.involved_object.name,
        "involvedObject.uid" => &obj.involved_object.uid,
        "involvedObject.apiVersion" => &obj.involved_object.api_version,
        "involvedObject.resourceVersion" => &obj.involved_object.resource_version,
        "involvedObject.fieldPath" => &obj.involved_object.field_path,
        // The events field `source` is the reporting component's name.
        "source" => &obj.source.component,
        "reason" => &obj.reason,
        "reportingComponent" => &obj.reporting_component,
        "type" => &obj.type_,
        _ => &None,
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

/// The stored JSON with `metadata.resourceVersion` spliced in. The registry writes `apiVersion`,
/// `kind` and `metadata` first and never stores a resourceVersion, so the first `"metadata":{`
/// is the object's own (a quote inside a string is escaped and cannot form the pattern before
/// it); anything else is re-encoded.
fn with_resource_version(raw: &[u8], revision: Revision) -> Option<Vec<u8>> {
    const PATTERN: &[u8] = b"\"metadata\":{";
    let start = raw.windows(PATTERN.len()).position(|w| w == PATTERN)? + PATTERN.len();
    let field = format!("\"resourceVersion\":\"{revision}\"");
    let mut out = Vec::with_capacity(raw.len() + field.len() + 1);
    out.extend_from_slice(&raw[..start]);
    out.extend_from_slice(field.as_bytes());
    if raw.get(start) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(&raw[start..]);
    Some(out)
}

/// Build the cached object from a store record (returns None for undecodable values).
pub fn decode(kv: &KeyValue) -> Option<StoredObject> {
    // Records that are not API objects (allocation records) are followed, not cached.
    if !kv.key.starts_with("/registry/") {
        return None;
    }
    let indexed: Indexed = match serde_json::from_slice(&kv.value) {
        Ok(v) => v,
        Err(err) => {
            tracing::error!(key = %kv.key, %err, "undecodable object in store");
            return None;
        }
    };
    let json = match with_resource_version(&kv.value, kv.mod_revision) {
        Some(bytes) if !indexed.metadata.uid.is_empty() || !indexed.metadata.name.is_empty() => {
            bytes
        }
        _ => {
            let mut value: Value = serde_json::from_slice(&kv.value).ok()?;
            maestro_api::meta::metadata_mut(&mut value).insert(
                "resourceVersion".into(),
                Value::String(kv.mod_revision.to_string()),
            );
            serde_json::to_vec(&value).ok()?
        }
    };
    let (group, plural) = key_resource(&kv.key).unwrap_or(("", ""));
    let fields = selectable_fields(group, plural)
        .iter()
        .map(|f| (*f, field_value(&indexed, f)))
        .collect();
    let meta = indexed.metadata;
    Some(StoredObject {
        key: kv.key.clone(),
        json: Bytes::from(json),
        namespace: meta.namespace,
        name: meta.name,
        uid: meta.uid,
        labels: meta
            .labels
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
            .collect(),
        fields,
        revision: kv.mod_revision,
        owner_uids: meta.owner_references.into_iter().map(|o| o.uid).collect(),
        finalizers: meta.finalizers,
        deleting: meta.deletion_timestamp.is_some_and(|d| !d.is_null()),
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
        assert_eq!(obj.uid, "u1");
        let empty_meta = KeyValue {
            key: "/registry/core/configmaps/x/y".into(),
            value: Bytes::from(
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{},"data":{"metadata":{"a":"b"}}}"#,
            ),
            create_revision: 1,
            mod_revision: 3,
        };
        let obj = decode(&empty_meta).unwrap();
        assert_eq!(obj.value()["metadata"]["resourceVersion"], "3");
        assert_eq!(obj.value()["data"]["metadata"]["a"], "b");
        assert_eq!(
            key_resource("/registry/apps/deployments/a/b"),
            Some(("apps", "deployments"))
        );
    }
}
