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

/// The name of the object of `kind` that controls `object`, if one does.
pub fn controller_name<'a>(object: &'a Value, kind: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true && r["kind"] == kind)
        .and_then(|r| r["name"].as_str())
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

/// A pod that counts: not being deleted and not finished.
pub fn is_active_pod(pod: &Value) -> bool {
    !deleting(pod) && !is_finished_pod(pod)
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
