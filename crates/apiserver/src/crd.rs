//! CustomResourceDefinitions: turning established CRDs into served resources, and admitting
//! custom objects against their structural OpenAPI schema (pruning unknown fields, applying
//! defaults, checking types and constraints). CEL `x-kubernetes-validations` rules are not
//! evaluated (documented in docs/api-compatibility.md).

use std::sync::Arc;

use maestro_api::resources::{ResourceInfo, ScalePaths, Scope};
use maestro_api::{ApiError, Cause, meta};
use serde_json::{Map, Value, json};

use crate::registry::Resource;

/// Finalizer that makes deleting a CRD delete its custom objects first.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// One served version of a custom resource.
#[derive(Debug, Clone)]
pub struct CustomVersion {
    pub schema: Option<Value>,
    pub printer_columns: Vec<Value>,
    pub status_subresource: bool,
    pub crd_name: String,
}

/// Every custom resource defined by the CRDs in the store.
#[derive(Debug, Default)]
pub struct CustomResources {
    pub resources: Vec<Arc<Resource>>,
    /// (group, preferred version) per group, in CRD order.
    pub groups: Vec<(String, Vec<String>)>,
}

impl CustomResources {
    pub fn from_crds(crds: impl Iterator<Item = Value>) -> Self {
        let mut index = CustomResources::default();
        for crd in crds {
            if meta::deletion_timestamp(&crd).is_some() && !established(&crd) {
                continue;
            }
            let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
            let group = spec
                .get("group")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let names = spec.get("names").cloned().unwrap_or(Value::Null);
            let s = |v: &Value, k: &str| {
                v.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let list = |v: &Value, k: &str| -> Vec<String> {
                v.get(k)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let plural = s(&names, "plural");
            let kind = s(&names, "kind");
            if group.is_empty() || plural.is_empty() || kind.is_empty() {
                continue;
            }
            let scope = if s(&spec, "scope") == "Cluster" {
                Scope::Cluster
            } else {
                Scope::Namespaced
            };
            let mut served_versions = Vec::new();
            let versions = spec
                .get("versions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for version in &versions {
                if version.get("served").and_then(Value::as_bool) == Some(false) {
                    continue;
                }
                let name = s(version, "name");
                served_versions.push(name.clone());
                let subresources = version.get("subresources").cloned().unwrap_or(Value::Null);
                let scale = subresources.get("scale").map(|scale| ScalePaths {
                    spec_replicas: s(scale, "specReplicasPath"),
                    status_replicas: s(scale, "statusReplicasPath"),
                    label_selector: scale
                        .get("labelSelectorPath")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                });
                let status_subresource = subresources.get("status").is_some();
                let singular = match s(&names, "singular") {
                    empty if empty.is_empty() => kind.to_lowercase(),
                    other => other,
                };
                let info = ResourceInfo {
                    group: group.clone(),
                    version: name.clone(),
                    kind: kind.clone(),
                    plural: plural.clone(),
                    singular,
                    scope,
                    short_names: list(&names, "shortNames"),
                    categories: list(&names, "categories"),
                    status_subresource,
                    scale,
                    extra_subresources: vec![],
                    storage_group: group.clone(),
                    storage_version: name.clone(),
                    custom: true,
                    has_generation: true,
                };
                index.resources.push(Arc::new(Resource {
                    info,
                    custom: Some(CustomVersion {
                        schema: version.pointer("/schema/openAPIV3Schema").cloned(),
                        printer_columns: version
                            .get("additionalPrinterColumns")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                        status_subresource,
                        crd_name: meta::name(&crd).to_string(),
                    }),
                }));
            }
            if !served_versions.is_empty() {
                index.groups.push((group, served_versions));
            }
        }
        index
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        self.resources
            .iter()
            .find(|r| r.info.group == group && r.info.version == version && r.info.plural == plural)
            .cloned()
    }

    /// Any served version of a stored custom resource (for scans by key).
    pub fn find_storage(&self, group: &str, plural: &str) -> Option<Arc<Resource>> {
        self.resources
            .iter()
            .find(|r| r.info.group == group && r.info.plural == plural)
            .cloned()
    }
}

fn established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
}

/// Accept the CRD's names and mark it established (there is no separate naming controller:
/// a CRD is served as soon as it is stored).
pub fn establish(crd: &mut Value, now: jiff::Timestamp) {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    if let Some(map) = accepted.as_object_mut() {
        if !map.contains_key("singular")
            && let Some(kind) = names.get("kind").and_then(Value::as_str)
        {
            map.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if !map.contains_key("listKind")
            && let Some(kind) = names.get("kind").and_then(Value::as_str)
        {
            map.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let time = meta::format_time(now);
    let existing = crd.pointer("/status/conditions").cloned();
    let condition = |kind: &str, reason: &str, message: &str| {
        // Keep the transition time of a condition that was already true.
        let previous = existing
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c["type"] == kind && c["status"] == "True")
            })
            .and_then(|c| c.get("lastTransitionTime").cloned());
        json!({"type": kind, "status": "True", "reason": reason, "message": message,
               "lastTransitionTime": previous.unwrap_or(json!(time))})
    };
    let status = json!({
        "acceptedNames": accepted,
        "storedVersions": storage,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ]
    });
    if let Some(map) = crd.as_object_mut() {
        map.insert("status".into(), status);
    }
}

/// Metadata checks for custom objects (name format, labels, immutable identity).
pub fn validate_meta(obj: &Value, old: Option<&Value>, namespaced: bool) -> Vec<Cause> {
    // Custom objects follow the generic ObjectMeta rules; the built-in validation provides them
    // for any kind it does not know specifically.
    maestro_api::validation::validate("", "", obj, old, namespaced)
}

impl CustomVersion {
    /// Prune fields the schema does not declare (returned as unknown) and apply schema defaults.
    pub fn admit(&self, mut body: Value) -> Result<(Value, Vec<String>), ApiError> {
        let mut unknown = Vec::new();
        if let Some(schema) = &self.schema {
            prune(&mut body, schema, "", true, &mut unknown);
            apply_defaults(&mut body, schema);
        }
        Ok((body, unknown))
    }

    /// Check the object against its schema.
    pub fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        if let Some(schema) = &self.schema {
            check(obj, schema, "", true, &mut causes);
        }
        causes
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Remove fields not in the schema, as the Kubernetes API server does for structural schemas.
fn prune(value: &mut Value, schema: &Value, path: &str, root: bool, unknown: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                // apiVersion, kind and metadata are always kept at the root and in embedded
                // resources; metadata is validated as ObjectMeta elsewhere.
                if (root || embedded) && matches!(key.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    continue;
                }
                let child_path = join(path, &key);
                if let Some(child_schema) = properties.and_then(|p| p.get(&key)) {
                    if let Some(child) = map.get_mut(&key) {
                        prune(child, child_schema, &child_path, false, unknown);
                    }
                } else if let Some(add) = additional {
                    if add.is_object()
                        && let Some(child) = map.get_mut(&key)
                    {
                        prune(child, add, &child_path, false, unknown);
                    }
                } else if !preserves_unknown(schema) {
                    map.remove(&key);
                    unknown.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item, item_schema, &format!("{path}[{i}]"), false, unknown);
                }
            }
        }
        _ => {}
    }
}

/// Fill `default` values of absent properties, recursively.
fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, child_schema) in properties {
                    if !map.contains_key(key)
                        && let Some(default) = child_schema.get("default")
                    {
                        map.insert(key.clone(), default.clone());
                    }
                    if let Some(child) = map.get_mut(key) {
                        apply_defaults(child, child_schema);
                    }
                }
            }
            if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for child in map.values_mut() {
                    apply_defaults(child, add);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(value: &Value, schema: &Value, path: &str, root: bool, causes: &mut Vec<Cause>) {
    let shown = if path.is_empty() { "<root>" } else { path };
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) && !root {
            // Kubernetes drops nulls of non-nullable fields before validating.
        }
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let ok = actual == expected
            || (expected == "number" && actual == "integer")
            || (int_or_string && matches!(actual, "integer" | "string"));
        if !ok {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: \"{actual}\": {shown} in body must be of type {expected}: \"{actual}\""),
            ));
            return;
        }
    } else if int_or_string && !matches!(type_name(value), "integer" | "string") {
        causes.push(Cause::invalid(
            path,
            value,
            "must be an integer or a string",
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let supported: Vec<String> = options
            .iter()
            .map(|o| {
                o.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| o.to_string())
            })
            .collect();
        let refs: Vec<&str> = supported.iter().map(String::as_str).collect();
        causes.push(Cause::not_supported(path, value, &refs));
    }
    match value {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            let exclusive_min =
                schema.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
            let exclusive_max =
                schema.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                let bad = if exclusive_min { x <= min } else { x < min };
                if bad {
                    let op = if exclusive_min {
                        "greater than"
                    } else {
                        "greater than or equal to"
                    };
                    causes.push(Cause::invalid(
                        path,
                        value,
                        format!("{shown} in body should be {op} {}", fmt_num(min)),
                    ));
                }
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                let bad = if exclusive_max { x >= max } else { x > max };
                if bad {
                    let op = if exclusive_max {
                        "less than"
                    } else {
                        "less than or equal to"
                    };
                    causes.push(Cause::invalid(
                        path,
                        value,
                        format!("{shown} in body should be {op} {}", fmt_num(max)),
                    ));
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                causes.push(Cause::invalid(
                    path,
                    value,
                    format!("{shown} in body should be at least {min} chars long"),
                ));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                causes.push(Cause::new(
                    "FieldValueTooLong",
                    path,
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                match regex::Regex::new(pattern) {
                    Ok(re) if !re.is_match(s) => causes.push(Cause::invalid(
                        path,
                        value,
                        format!("{shown} in body should match '{pattern}'"),
                    )),
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && len < min
            {
                causes.push(Cause::invalid(
                    path,
                    value,
                    format!("{shown} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && len > max
            {
                causes.push(Cause::new(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {len}: must have at most {max} items"),
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, item_schema, &format!("{path}[{i}]"), false, causes);
                }
            }
        }
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for field in required.iter().filter_map(Value::as_str) {
                    if map.get(field).is_none_or(Value::is_null) {
                        causes.push(Cause::required(join(path, field)));
                    }
                }
            }
            let count = map.len() as u64;
            if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
                && count < min
            {
                causes.push(Cause::invalid(
                    path,
                    &json!(count),
                    format!("{shown} in body should have at least {min} properties"),
                ));
            }
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
                && count > max
            {
                causes.push(Cause::new(
                    "FieldValueTooMany",
                    path,
                    format!("Too many: {count}: must have at most {max} items"),
                ));
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (key, child) in map {
                if root && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_path = join(path, key);
                if let Some(child_schema) = properties.and_then(|p: &Map<String, Value>| p.get(key))
                {
                    check(child, child_schema, &child_path, false, causes);
                } else if let Some(add) = additional {
                    check(child, add, &child_path, false, causes);
                }
            }
        }
        _ => {}
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widget_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": {"type": "integer", "minimum": 1},
                        "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "port": {"x-kubernetes-int-or-string": true}
                    }
                }
            }
        })
    }

    fn version() -> CustomVersion {
        CustomVersion {
            schema: Some(widget_schema()),
            printer_columns: vec![],
            status_subresource: false,
            crd_name: "widgets.example.com".into(),
        }
    }

    #[test]
    fn prunes_unknown_fields_and_defaults() {
        let body = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"size": 2, "bogus": 1, "labels": {"a": "b"}, "free": {"any": {"thing": 1}}, "port": "http"}, "extra": true});
        let (obj, unknown) = version().admit(body).unwrap();
        assert_eq!(unknown, vec!["spec.bogus", "extra"]);
        assert_eq!(obj["spec"]["color"], "red");
        assert_eq!(obj["spec"]["free"]["any"]["thing"], 1);
        assert!(version().validate(&obj).is_empty());
    }

    #[test]
    fn reports_schema_violations() {
        let obj = json!({"spec": {"size": 0, "color": "green", "port": true}});
        let causes = version().validate(&obj);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.size", "spec.color", "spec.port"]);
        assert_eq!(
            causes[0].message,
            "Invalid value: 0: spec.size in body should be greater than or equal to 1"
        );
        let wrong_type = version().validate(&json!({"spec": {"size": "big"}}));
        assert_eq!(
            wrong_type[0].message,
            "Invalid value: \"string\": spec.size in body must be of type integer: \"string\""
        );
        let missing = version().validate(&json!({"spec": {}}));
        assert_eq!(missing[0].display(), "spec.size: Required value");
    }

    #[test]
    fn index_from_crd() {
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                         {"name": "v2", "served": false, "storage": false}]}});
        let index = CustomResources::from_crds(std::iter::once(crd));
        let widgets = index.find("example.com", "v1", "widgets").unwrap();
        assert_eq!(
            widgets.info.key(Some("ns"), "w"),
            "/registry/example.com/widgets/ns/w"
        );
        assert!(widgets.info.status_subresource);
        assert!(index.find("example.com", "v2", "widgets").is_none());
    }
}
