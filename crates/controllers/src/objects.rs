//! Readings of stored objects that several controllers share: owner references, pod
//! liveness and readiness, resource versions.

use std::sync::Arc;

use maestro_api::resources;
use maestro_apiserver::registry::Resource;
use serde_json::Value;

/// A built-in resource by plural and group (version v1).
pub fn resource(plural: &str, group: &str) -> Arc<Resource> {
    Resource::builtin(resources::find_builtin(group, "v1", plural).expect("built in"))
}

/// Whether the object with `uid` controls `object`.
pub fn controlled_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["controller"] == true && r["uid"] == uid)
        })
}

/// Whether anything controls `object`.
pub fn has_controller(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == true))
}

/// The owner reference that makes `owner` the controller of an object.
pub fn controller_reference(owner: &Value) -> Value {
    serde_json::json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether the object is marked for deletion.
pub fn deleting(object: &Value) -> bool {
    object.pointer("/metadata/deletionTimestamp").is_some()
}

/// A pod that succeeded or failed.
pub fn is_finished_pod(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// The time the pod's Ready condition turned true, if it is true.
pub fn ready_since(pod: &Value) -> Option<jiff::Timestamp> {
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")
        .map(|c| {
            c["lastTransitionTime"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        })
}

/// The store revision an object was written at.
pub fn revision_of(object: &Value) -> Option<maestro_store::Revision> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
}

/// An integer field, 0 when absent.
pub fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// What controllers read from a pod, parsed once per stored version of it.
#[derive(Debug, Clone, Default)]
pub struct PodSummary {
    pub name: String,
    /// The uid of the owner reference marked as controller.
    pub controller_uid: Option<String>,
    pub phase: String,
    pub ready_since: Option<jiff::Timestamp>,
    pub deleting: bool,
    pub created: String,
    pub node: String,
}

impl PodSummary {
    pub fn parse(pod: &Value) -> PodSummary {
        let text = |pointer: &str| {
            pod.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        PodSummary {
            name: text("/metadata/name"),
            controller_uid: pod
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| refs.iter().find(|r| r["controller"] == true))
                .and_then(|r| r["uid"].as_str())
                .map(String::from),
            phase: text("/status/phase"),
            ready_since: ready_since(pod),
            deleting: deleting(pod),
            created: text("/metadata/creationTimestamp"),
            node: text("/spec/nodeName"),
        }
    }

    /// Not being deleted and not finished.
    pub fn active(&self) -> bool {
        !self.deleting && self.phase != "Succeeded" && self.phase != "Failed"
    }
}

/// [`PodSummary`]s by key, reparsed only when a pod's stored revision changes: a controller
/// that looks at thousands of pods on every pass then parses only those that changed.
#[derive(Debug, Default)]
pub struct PodSummaries {
    cache: std::collections::HashMap<String, (maestro_store::Revision, Arc<PodSummary>)>,
}

impl PodSummaries {
    pub fn get(&mut self, pod: &maestro_apiserver::object::StoredObject) -> Arc<PodSummary> {
        match self.cache.get(&pod.key) {
            Some((revision, summary)) if *revision == pod.revision => summary.clone(),
            _ => {
                let summary = Arc::new(PodSummary::parse(&pod.value()));
                self.cache
                    .insert(pod.key.clone(), (pod.revision, summary.clone()));
                summary
            }
        }
    }

    /// Forget pods that are gone.
    pub fn forget(&mut self, key: &str) {
        self.cache.remove(key);
    }
}

/// The controller of a stored object, read without parsing the whole object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerRef {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

#[derive(serde::Deserialize, Default)]
struct OwnersOnly {
    #[serde(default)]
    metadata: OwnersMeta,
}

#[derive(serde::Deserialize, Default)]
struct OwnersMeta {
    #[serde(default, rename = "ownerReferences")]
    owner_references: Vec<OwnerRef>,
}

#[derive(serde::Deserialize)]
struct OwnerRef {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    controller: Option<bool>,
}

/// The owner reference marked controller, if any. Objects without owners (the cache knows
/// their owner uids) cost nothing; others are decoded into the owner references alone, which
/// skips the rest of the JSON instead of building it. Controllers call this for every pod
/// event, so at thousands of pods it matters.
pub fn controller_ref(stored: &maestro_apiserver::object::StoredObject) -> Option<ControllerRef> {
    if stored.owner_uids.is_empty() {
        return None;
    }
    let owners: OwnersOnly = serde_json::from_slice(&stored.json).unwrap_or_default();
    owners
        .metadata
        .owner_references
        .into_iter()
        .find(|r| r.controller == Some(true))
        .map(|r| ControllerRef {
            kind: r.kind,
            name: r.name,
            uid: r.uid,
        })
}
