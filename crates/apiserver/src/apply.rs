//! Server-side apply, the documented subset maestro implements:
//!
//! - `PATCH` with `application/apply-patch+yaml` creates the object when it is missing and
//!   otherwise merges the applied configuration into it (maps recursively, lists with a merge key
//!   by key, other lists replaced);
//! - each field manager's applied fields are recorded in `metadata.managedFields`
//!   (`operation: Apply`, `fieldsType: FieldsV1`); fields a manager applied before and no longer
//!   applies are removed unless another applier owns them;
//! - a field owned by another applier with a different value is a 409 conflict, unless
//!   `force=true`, which takes ownership;
//! - ownership is tracked between appliers only: plain updates (PUT, other patches) do not take
//!   ownership of fields.

use std::sync::Arc;

use bytes::Bytes;
use maestro_api::{ApiError, Cause, meta};
use serde_json::{Map, Value, json};

use crate::registry::{Registry, Resource, WriteOptions, WriteResult};

/// How the list at a path is merged: by these key fields, or atomically (`None`).
pub type ListKeys<'a> = &'a dyn Fn(&[String]) -> Option<Vec<String>>;

fn item_key(item: &Value, keys: &[String]) -> Option<String> {
    let mut map = Map::new();
    for k in keys {
        map.insert(k.clone(), item.get(k)?.clone());
    }
    Some(format!("k:{}", Value::Object(map)))
}

/// The FieldsV1 set of an applied configuration.
pub fn field_set(config: &Value, path: &mut Vec<String>, keys: ListKeys<'_>) -> Value {
    let mut set = Map::new();
    if let Value::Object(map) = config {
        for (k, v) in map {
            if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind") {
                continue;
            }
            if path.len() == 1
                && path[0] == "metadata"
                && !matches!(
                    k.as_str(),
                    "labels" | "annotations" | "finalizers" | "ownerReferences"
                )
            {
                continue;
            }
            path.push(k.clone());
            let child = match v {
                Value::Object(_) => field_set(v, path, keys),
                Value::Array(items) => match keys(path) {
                    Some(list_keys) => {
                        let mut items_set = Map::new();
                        for item in items {
                            if let Some(key) = item_key(item, &list_keys) {
                                let mut inner = field_set(item, path, keys);
                                if let Some(m) = inner.as_object_mut() {
                                    m.insert(".".into(), json!({}));
                                }
                                items_set.insert(key, inner);
                            }
                        }
                        Value::Object(items_set)
                    }
                    None => json!({}),
                },
                _ => json!({}),
            };
            path.pop();
            // Only labels, annotations, finalizers and ownerReferences of metadata are owned:
            // a metadata holding nothing else owns nothing.
            if path.is_empty() && k == "metadata" && child.as_object().is_some_and(|m| m.is_empty())
            {
                continue;
            }
            set.insert(format!("f:{k}"), child);
        }
    }
    Value::Object(set)
}

/// Merge the applied configuration into the live object.
fn merge(live: &Value, config: &Value, path: &mut Vec<String>, keys: ListKeys<'_>) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (k, v) in c {
                path.push(k.clone());
                let merged = match out.get(k) {
                    Some(existing) => merge(existing, v, path, keys),
                    None => v.clone(),
                };
                path.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => match keys(path) {
            Some(list_keys) => {
                let mut out = l.clone();
                for item in c {
                    let key = item_key(item, &list_keys);
                    match out
                        .iter()
                        .position(|x| key.is_some() && item_key(x, &list_keys) == key)
                    {
                        Some(i) => out[i] = merge(&out[i], item, path, keys),
                        None => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
            None => config.clone(),
        },
        _ => config.clone(),
    }
}

/// Remove from `obj` the fields in `removed` (a FieldsV1 set).
fn remove_fields(obj: &mut Value, removed: &Value) {
    let (Some(map), Some(set)) = (obj.as_object_mut(), removed.as_object()) else {
        return;
    };
    for (entry, children) in set {
        let Some(field) = entry.strip_prefix("f:") else {
            continue;
        };
        let leaf = children.as_object().is_none_or(|c| c.is_empty());
        if leaf {
            map.remove(field);
            continue;
        }
        let Some(child) = map.get_mut(field) else {
            continue;
        };
        match child {
            Value::Array(items) => {
                let Some(children) = children.as_object() else {
                    continue;
                };
                for (item_key, item_set) in children {
                    let Some(json_key) = item_key.strip_prefix("k:") else {
                        continue;
                    };
                    let Ok(Value::Object(key_fields)) = serde_json::from_str::<Value>(json_key)
                    else {
                        continue;
                    };
                    let matches =
                        |item: &Value| key_fields.iter().all(|(k, v)| item.get(k) == Some(v));
                    if item_set.get(".").is_some() {
                        items.retain(|item| !matches(item));
                    } else if let Some(item) = items.iter_mut().find(|i| matches(i)) {
                        remove_fields(item, item_set);
                    }
                }
            }
            other => remove_fields(other, children),
        }
    }
}

/// `a \ b` over FieldsV1 sets: what `a` has that `b` does not.
fn difference(a: &Value, b: &Value) -> Value {
    let mut out = Map::new();
    if let Some(a) = a.as_object() {
        for (k, v) in a {
            match b.get(k) {
                None => {
                    out.insert(k.clone(), v.clone());
                }
                Some(bv) => {
                    let d = difference(v, bv);
                    if d.as_object().is_some_and(|m| !m.is_empty()) {
                        out.insert(k.clone(), d);
                    }
                }
            }
        }
    }
    Value::Object(out)
}

/// Leaf paths present in both sets, as `.spec.replicas`-style strings.
fn overlap(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return;
    };
    for (k, v) in a {
        if let Some(bv) = b.get(k) {
            let name = k
                .strip_prefix("f:")
                .map(|f| format!("{prefix}.{f}"))
                .unwrap_or_else(|| format!("{prefix}[{k}]"));
            let leaf = v.as_object().is_none_or(|m| m.is_empty())
                || bv.as_object().is_none_or(|m| m.is_empty());
            if leaf {
                if k != "." {
                    out.push(name);
                }
            } else {
                overlap(v, bv, &name, out);
            }
        }
    }
}

fn value_at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = obj;
    for part in path.trim_start_matches('.').split('.') {
        if part.contains('[') {
            return None;
        }
        current = current.get(part)?;
    }
    Some(current)
}

fn managed_entry(manager: &str, api_version: &str, fields: Value) -> Value {
    json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": meta::format_time(jiff::Timestamp::now()),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    })
}

/// Fields of built-in kinds that are maps of arbitrary keys rather than structs.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "binaryData",
    "matchLabels",
    "nodeSelector",
    "limits",
    "requests",
    "hard",
    "capacity",
    "allocatable",
    "parameters",
    "selector",
];

/// Union of two FieldsV1 sets.
fn union(a: &Value, b: &Value) -> Value {
    let mut out = a.as_object().cloned().unwrap_or_default();
    if let Some(b) = b.as_object() {
        for (k, v) in b {
            let merged = match out.get(k) {
                Some(existing) => union(existing, v),
                None => v.clone(),
            };
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// The fields `new` sets that `old` did not have or had with another value.
fn changed_set(
    old: Option<&Value>,
    new: &Value,
    path: &mut Vec<String>,
    keys: ListKeys<'_>,
) -> Value {
    let empty = Map::new();
    let old_map = match old {
        Some(Value::Object(map)) => map,
        None => &empty,
        Some(_) => return field_set(new, path, keys),
    };
    let Value::Object(new_map) = new else {
        return field_set(new, path, keys);
    };
    let mut set = Map::new();
    for (k, v) in new_map {
        if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind") {
            continue;
        }
        if path.len() == 1
            && path[0] == "metadata"
            && !matches!(
                k.as_str(),
                "labels" | "annotations" | "finalizers" | "ownerReferences"
            )
        {
            continue;
        }
        let before = old_map.get(k);
        if before == Some(v) {
            continue;
        }
        path.push(k.clone());
        let child = match (before, v) {
            (Some(b @ Value::Object(_)), Value::Object(_)) => changed_set(Some(b), v, path, keys),
            (Some(Value::Array(b_items)), Value::Array(items)) => match keys(path) {
                Some(list_keys) => {
                    let mut items_set = Map::new();
                    for item in items {
                        let Some(key) = item_key(item, &list_keys) else {
                            continue;
                        };
                        let previous = b_items
                            .iter()
                            .find(|x| item_key(x, &list_keys).as_ref() == Some(&key));
                        if previous == Some(item) {
                            continue;
                        }
                        let mut inner = changed_set(previous, item, path, keys);
                        if previous.is_none()
                            && let Some(m) = inner.as_object_mut()
                        {
                            m.insert(".".into(), json!({}));
                        }
                        items_set.insert(key, inner);
                    }
                    Value::Object(items_set)
                }
                None => json!({}),
            },
            (None, Value::Object(_)) => {
                let mut inner = field_set(v, path, keys);
                // A map (not a struct) created by this write is itself owned: Kubernetes marks
                // it with ".". Without struct/map schema information, the common map fields
                // are named here.
                if MAP_FIELDS.contains(&k.as_str())
                    && let Some(m) = inner.as_object_mut()
                {
                    m.insert(".".into(), json!({}));
                }
                inner
            }
            _ => field_set_leaf(v, path, keys),
        };
        path.pop();
        if path.is_empty() && k == "metadata" && child.as_object().is_some_and(|m| m.is_empty()) {
            continue;
        }
        set.insert(format!("f:{k}"), child);
    }
    Value::Object(set)
}

/// A changed non-object value: a whole keyed list or a leaf.
fn field_set_leaf(v: &Value, path: &mut Vec<String>, keys: ListKeys<'_>) -> Value {
    match v {
        Value::Array(_) if keys(path).is_some() => {
            let mut wrapper = Map::new();
            let last = path.last().cloned().unwrap_or_default();
            wrapper.insert(last.clone(), v.clone());
            path.pop();
            let set = field_set(&Value::Object(wrapper), path, keys);
            path.push(last.clone());
            set.get(format!("f:{last}")).cloned().unwrap_or(json!({}))
        }
        _ => json!({}),
    }
}

/// The fields `old` had that `new` no longer has.
fn removed_set(old: &Value, new: &Value, path: &mut Vec<String>, keys: ListKeys<'_>) -> Value {
    let (Value::Object(old_map), Value::Object(new_map)) = (old, new) else {
        return json!({});
    };
    let mut set = Map::new();
    for (k, v) in old_map {
        if path.len() == 1
            && path[0] == "metadata"
            && !matches!(
                k.as_str(),
                "labels" | "annotations" | "finalizers" | "ownerReferences"
            )
        {
            continue;
        }
        path.push(k.clone());
        match new_map.get(k) {
            None => {
                set.insert(format!("f:{k}"), field_set(v, path, keys));
            }
            Some(n) if n.is_object() && v.is_object() => {
                let inner = removed_set(v, n, path, keys);
                if inner.as_object().is_some_and(|m| !m.is_empty()) {
                    set.insert(format!("f:{k}"), inner);
                }
            }
            _ => {}
        }
        path.pop();
    }
    Value::Object(set)
}

/// Record a non-apply write in `metadata.managedFields`: the fields it set become `manager`'s
/// (operation `Update`, taken from other managers without conflict, as in Kubernetes), and the
/// fields it removed are no longer anyone's.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    keys: ListKeys<'_>,
) {
    let mut entries: Vec<Value> = new
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .or_else(|| {
            old.and_then(|o| o.pointer("/metadata/managedFields"))
                .and_then(Value::as_array)
                .cloned()
        })
        .unwrap_or_default();
    // Both sets look at metadata's labels, annotations, finalizers and ownerReferences only,
    // so managedFields themselves never count as a change.
    let changed = changed_set(old, new, &mut Vec::new(), keys);
    let removed = match old {
        Some(o) => removed_set(o, new, &mut Vec::new(), keys),
        None => json!({}),
    };
    let nothing = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
    if nothing(&changed) && nothing(&removed) {
        meta::metadata_mut(new).insert("managedFields".into(), Value::Array(entries));
        if entries_empty(new) {
            meta::metadata_mut(new).remove("managedFields");
        }
        return;
    }
    let api_version = new
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mine = |e: &Value| {
        e["manager"] == manager
            && e["operation"] == "Update"
            && e.get("subresource").and_then(Value::as_str) == subresource
    };
    for entry in entries.iter_mut().filter(|e| !mine(e)) {
        let fields = difference(&difference(&entry["fieldsV1"], &changed), &removed);
        entry["fieldsV1"] = fields;
    }
    let previous = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(json!({}));
    entries.retain(|e| !mine(e) && !nothing(&e["fieldsV1"]));
    let owned = difference(&union(&previous, &changed), &removed);
    if !nothing(&owned) {
        let mut entry = json!({
            "manager": manager,
            "operation": "Update",
            "apiVersion": api_version,
            "time": meta::format_time(jiff::Timestamp::now()),
            "fieldsType": "FieldsV1",
            "fieldsV1": owned,
        });
        if let Some(sub) = subresource {
            entry["subresource"] = json!(sub);
        }
        entries.push(entry);
    }
    if entries.is_empty() {
        meta::metadata_mut(new).remove("managedFields");
    } else {
        meta::metadata_mut(new).insert("managedFields".into(), Value::Array(entries));
    }
}

fn entries_empty(obj: &Value) -> bool {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_none_or(|a| a.is_empty())
}

/// Compute the object after applying `config` as `manager` onto `live`.
pub fn apply_to(
    live: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    keys: ListKeys<'_>,
) -> Result<Value, ApiError> {
    let new_set = field_set(config, &mut Vec::new(), keys);
    let entries: Vec<Value> = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_applier = |e: &Value, name: &str| e["manager"] == name && e["operation"] == "Apply";
    let previous = entries
        .iter()
        .find(|e| is_applier(e, manager))
        .and_then(|e| e.get("fieldsV1").cloned())
        .unwrap_or(json!({}));
    let mut others: Vec<Value> = entries
        .iter()
        .filter(|e| !is_applier(e, manager))
        .cloned()
        .collect();
    let mut conflicts = Vec::new();
    for other in others.iter_mut() {
        let mut shared = Vec::new();
        overlap(&new_set, &other["fieldsV1"], "", &mut shared);
        let differing: Vec<String> = shared
            .into_iter()
            .filter(|p| value_at(live, p) != value_at(config, p))
            .collect();
        if differing.is_empty() {
            continue;
        }
        if force {
            other["fieldsV1"] = difference(&other["fieldsV1"], &new_set);
        } else {
            let who = format!(
                "\"{}\" using {}",
                other["manager"].as_str().unwrap_or_default(),
                other["apiVersion"].as_str().unwrap_or_default()
            );
            conflicts.extend(differing.into_iter().map(|p| (who.clone(), p)));
        }
    }
    if !conflicts.is_empty() {
        let mut err = ApiError::new(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                conflicts
                    .iter()
                    .map(|(who, p)| format!("conflict with {who}: {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        );
        err.causes = conflicts
            .into_iter()
            .map(|(who, p)| Cause::new("FieldManagerConflict", p, format!("conflict with {who}")))
            .collect();
        return Err(err);
    }
    let mut result = merge(live, config, &mut Vec::new(), keys);
    // Fields this manager stopped applying go away unless another manager still owns them.
    let mut dropped = difference(&previous, &new_set);
    for other in others.iter() {
        dropped = difference(&dropped, &other["fieldsV1"]);
    }
    remove_fields(&mut result, &dropped);
    let api_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    others.retain(|e| {
        e.get("fieldsV1")
            .and_then(Value::as_object)
            .is_none_or(|m| !m.is_empty())
    });
    others.push(managed_entry(manager, api_version, new_set));
    meta::metadata_mut(&mut result).insert("managedFields".into(), Value::Array(others));
    Ok(result)
}

/// Serve an apply PATCH.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    registry: &Arc<Registry>,
    res: &Arc<Resource>,
    namespace: Option<&str>,
    name: &str,
    body: &Bytes,
    subresource: Option<&str>,
    opts: &WriteOptions,
    force: bool,
) -> Result<WriteResult, ApiError> {
    let Some(manager) = opts.field_manager.clone().filter(|m| !m.is_empty()) else {
        return Err(crate::request::invalid_option(
            "PatchOptions",
            Cause::new(
                "FieldValueRequired",
                "fieldManager",
                "Required value: is required for apply patch",
            ),
        ));
    };
    let config: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    let config_name = meta::name(&config);
    if config_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({config_name}) does not match the name on the URL ({name})"
        )));
    }
    let keys = crate::patch::list_keys_for(res);
    let opts = &WriteOptions {
        apply: true,
        ..opts.clone()
    };
    let exists = registry.get_stored(res, namespace, name).await.is_ok();
    if !exists && subresource.is_none() {
        let created = apply_to(&json!({}), &config, &manager, true, &keys)?;
        match registry.create(res, namespace, created, opts).await {
            Ok(result) => return Ok(result),
            // Lost a race with another creator: fall through to the merge.
            Err(err) if err.code == 409 && err.reason == "AlreadyExists" => {}
            Err(err) => return Err(err),
        }
    }
    registry
        .read_modify_write(
            res,
            namespace,
            name,
            None,
            opts,
            |current| apply_to(current, &config, &manager, force, &keys),
            subresource,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(path: &[String]) -> Option<Vec<String>> {
        (path.last().map(String::as_str) == Some("containers")).then(|| vec!["name".to_string()])
    }

    #[test]
    fn reapply_removes_what_the_manager_dropped() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}});
        let live = apply_to(&json!({}), &first, "me", false, &keys).unwrap();
        assert_eq!(live["data"], json!({"x": "1", "y": "2"}));
        let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "3"}});
        let live = apply_to(&live, &second, "me", false, &keys).unwrap();
        assert_eq!(live["data"], json!({"x": "3"}));
        assert_eq!(live["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(
            live["metadata"]["managedFields"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn conflicts_between_appliers_need_force() {
        let a = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 2}});
        let live = apply_to(&json!({}), &a, "alice", false, &keys).unwrap();
        let b = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 5}});
        let err = apply_to(&live, &b, "bob", false, &keys).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(
            err.message
                .contains("conflict with \"alice\" using apps/v1: .spec.replicas"),
            "{}",
            err.message
        );
        let forced = apply_to(&live, &b, "bob", true, &keys).unwrap();
        assert_eq!(forced["spec"]["replicas"], 5);
        // Same value is shared ownership, not a conflict.
        assert!(apply_to(&live, &a, "carol", false, &keys).is_ok());
    }

    #[test]
    fn updates_take_ownership_and_conflict_with_appliers() {
        let created = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"u": "1"}});
        let mut live = created.clone();
        record_update(None, &mut live, "editor", None, &keys);
        let entries = live["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries[0]["operation"], "Update");
        assert_eq!(
            entries[0]["fieldsV1"],
            json!({"f:data": {".": {}, "f:u": {}}})
        );
        let err = apply_to(&live, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"u": "2"}}), "applier", false, &keys).unwrap_err();
        assert!(
            err.message
                .contains("conflict with \"editor\" using v1: .data.u"),
            "{}",
            err.message
        );
        // An update of a field an applier owns takes it over silently.
        let applied = apply_to(&live, &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"w": "1"}}), "applier", false, &keys).unwrap();
        let mut edited = applied.clone();
        edited["data"]["w"] = json!("2");
        record_update(Some(&applied), &mut edited, "editor", None, &keys);
        let applier = edited["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == "applier")
            .cloned();
        assert!(
            applier.is_none(),
            "the applier owned only data.w and lost it: {edited}"
        );
        // A no-op update leaves the entries alone.
        let mut same = edited.clone();
        record_update(Some(&edited), &mut same, "other", None, &keys);
        assert_eq!(same, edited);
    }

    #[test]
    fn keyed_lists_merge_and_drop_items() {
        let first = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}});
        let live = apply_to(&json!({}), &first, "me", false, &keys).unwrap();
        let second = json!({"spec": {"containers": [{"name": "a", "image": "2"}]}});
        let live = apply_to(&live, &second, "me", false, &keys).unwrap();
        assert_eq!(
            live["spec"]["containers"],
            json!([{"name": "a", "image": "2"}])
        );
    }
}
