//! `metadata` checks shared by every kind (apimachinery's `ValidateObjectMeta` and
//! `ValidateObjectMetaUpdate`, plus the core package's finalizer rule), and the label, selector
//! and immutability helpers the kind validators reuse.

use serde_json::{Map, Value};

use super::field::{Bad, Path, forbidden, go_quote, go_string_slice, invalid, required, str_at};
use super::names::{NameRule, is_qualified_name, is_valid_label_value};
use crate::status::Cause;

/// `TotalAnnotationSizeLimitB`.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Finalizers Kubernetes accepts without a domain prefix.
const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// How a kind's metadata is checked.
pub(super) struct MetaRules {
    name: NameRule,
    namespaced: bool,
    /// Built-in kinds go through the core package, which also rejects unqualified finalizers
    /// that are not standard; custom resources and CRDs only get the generic check.
    kube_finalizers: bool,
    /// A CRD's name must be `<plural>.<group>`.
    required_name: Option<String>,
}

fn is_builtin_group(group: &str) -> bool {
    matches!(group, "" | "apps" | "batch" | "autoscaling" | "policy")
        || (group.ends_with(".k8s.io") && group != "apiextensions.k8s.io")
}

impl MetaRules {
    pub(super) fn for_kind(group: &str, kind: &str, obj: &Value, namespaced: bool) -> MetaRules {
        let name = match (group, kind) {
            ("", "Namespace") | ("apps", "StatefulSet") => NameRule::Label,
            ("", "Service") => NameRule::Dns1035,
            ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
            _ => NameRule::Subdomain,
        };
        let required_name = (group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition")
            .then(|| {
                let spec = obj.get("spec").unwrap_or(&Value::Null);
                let plural = spec
                    .pointer("/names/plural")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                format!("{plural}.{}", str_at(spec, "group"))
            });
        MetaRules {
            name,
            namespaced,
            kube_finalizers: is_builtin_group(group),
            required_name,
        }
    }
}

fn metadata(obj: &Value) -> &Value {
    obj.get("metadata").unwrap_or(&Value::Null)
}

/// `ValidateObjectMeta` for a create.
pub(super) fn validate_object_meta(obj: &Value, rules: &MetaRules, errs: &mut Vec<Cause>) {
    let meta = metadata(obj);
    let path = Path::new("metadata");
    let generate_name = str_at(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in rules.name.check(generate_name, true) {
            errs.push(invalid(&path.child("generateName"), generate_name, &msg));
        }
    }
    let name = str_at(meta, "name");
    if name.is_empty() {
        errs.push(required(
            &path.child("name"),
            "name or generateName is required",
        ));
    } else {
        let mut msgs = rules.name.check(name, false);
        if let Some(expected) = &rules.required_name
            && name != expected
        {
            msgs.push("must be spec.names.plural+\".\"+spec.group".to_string());
        }
        for msg in msgs {
            errs.push(invalid(&path.child("name"), name, &msg));
        }
    }
    validate_namespace_field(meta, rules.namespaced, &path, errs);
    if let Some(generation) = meta.get("generation").and_then(Value::as_i64)
        && generation < 0
    {
        errs.push(invalid(
            &path.child("generation"),
            generation,
            "must be greater than or equal to 0",
        ));
    }
    validate_common_meta(meta, &path, errs);
    validate_finalizers(meta, &path, rules, errs);
}

fn validate_namespace_field(meta: &Value, namespaced: bool, path: &Path, errs: &mut Vec<Cause>) {
    let namespace = str_at(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(required(&path.child("namespace"), ""));
        } else {
            for msg in NameRule::Label.check(namespace, false) {
                errs.push(invalid(&path.child("namespace"), namespace, &msg));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
}

/// Labels, annotations and owner references: checked on create and on update alike.
fn validate_common_meta(meta: &Value, path: &Path, errs: &mut Vec<Cause>) {
    validate_labels(
        meta.get("labels").and_then(Value::as_object),
        &path.child("labels"),
        errs,
    );
    validate_annotations(
        meta.get("annotations").and_then(Value::as_object),
        &path.child("annotations"),
        errs,
    );
    validate_owner_references(meta, &path.child("ownerReferences"), errs);
}

fn validate_finalizers(meta: &Value, path: &Path, rules: &MetaRules, errs: &mut Vec<Cause>) {
    let Some(finalizers) = meta.get("finalizers").and_then(Value::as_array) else {
        return;
    };
    let fin_path = path.child("finalizers");
    let mut orphan = false;
    let mut foreground = false;
    for f in finalizers {
        let f = f.as_str().unwrap_or("");
        for msg in is_qualified_name(f) {
            errs.push(invalid(&fin_path, f, &msg));
        }
        orphan |= f == "orphan";
        foreground |= f == "foregroundDeletion";
    }
    if orphan && foreground {
        errs.push(invalid(
            &fin_path,
            Bad::Raw(go_string_slice(Some(finalizers))),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    if rules.kube_finalizers {
        for (i, f) in finalizers.iter().enumerate() {
            validate_kube_finalizer_name(f.as_str().unwrap_or(""), &fin_path.index(i), errs);
        }
    }
}

/// The core package's rule: a finalizer without a `/` must be one of the standard ones.
pub(super) fn validate_kube_finalizer_name(name: &str, path: &Path, errs: &mut Vec<Cause>) {
    if !name.contains('/') && !STANDARD_FINALIZERS.contains(&name) {
        errs.push(invalid(
            path,
            name,
            "name is neither a standard finalizer name nor is it fully qualified",
        ));
    }
}

/// `ValidateObjectMetaUpdate`: identity fields are immutable and a terminating object may not
/// gain finalizers. Fields the server copies from the stored object when a client omits them
/// (namespace, uid, creationTimestamp) only count when present.
pub(super) fn validate_object_meta_update(
    obj: &Value,
    old: &Value,
    rules: &MetaRules,
    errs: &mut Vec<Cause>,
) {
    let meta = metadata(obj);
    let old_meta = metadata(old);
    let path = Path::new("metadata");

    if !str_at(old_meta, "deletionTimestamp").is_empty() {
        let old_fins: Vec<&str> = old_meta
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut extra: Vec<String> = meta
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .filter(|f| !old_fins.contains(f))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        extra.sort();
        extra.dedup();
        if !extra.is_empty() {
            errs.push(forbidden(
                &path.child("finalizers"),
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    super::field::go_strings(&extra)
                ),
            ));
        }
    }

    let name = str_at(meta, "name");
    let old_name = str_at(old_meta, "name");
    if name != old_name {
        errs.push(invalid(&path.child("name"), name, "field is immutable"));
    }
    for key in ["namespace", "uid"] {
        let new = str_at(meta, key);
        let before = str_at(old_meta, key);
        if !new.is_empty() && new != before {
            errs.push(invalid(&path.child(key), new, "field is immutable"));
        }
    }
    let created = str_at(meta, "creationTimestamp");
    let old_created = str_at(old_meta, "creationTimestamp");
    if !created.is_empty() && !same_time(created, old_created) {
        errs.push(invalid(
            &path.child("creationTimestamp"),
            Bad::Raw(go_time(created)),
            "field is immutable",
        ));
    }

    validate_common_meta(meta, &path, errs);
    if rules.kube_finalizers
        && let Some(finalizers) = meta.get("finalizers").and_then(Value::as_array)
    {
        for (i, f) in finalizers.iter().enumerate() {
            validate_kube_finalizer_name(
                f.as_str().unwrap_or(""),
                &path.child("finalizers").index(i),
                errs,
            );
        }
    }
}

fn same_time(a: &str, b: &str) -> bool {
    match (a.parse::<jiff::Timestamp>(), b.parse::<jiff::Timestamp>()) {
        (Ok(a), Ok(b)) => a.as_second() == b.as_second(),
        _ => a == b,
    }
}

/// How Go prints a `metav1.Time` (`time.Time.String`).
fn go_time(value: &str) -> String {
    match value.parse::<jiff::Timestamp>() {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
        Err(_) => go_quote(value),
    }
}

/// `ValidateLabels`: every key a qualified name, every value a label value. Errors carry the
/// map's path, not the key's, as in Kubernetes.
pub(super) fn validate_labels(
    labels: Option<&Map<String, Value>>,
    path: &Path,
    errs: &mut Vec<Cause>,
) {
    let Some(labels) = labels else { return };
    for (key, value) in labels {
        for msg in is_qualified_name(key) {
            errs.push(invalid(path, key.as_str(), &msg));
        }
        let value = value.as_str().unwrap_or("");
        for msg in is_valid_label_value(value) {
            errs.push(invalid(path, value, &msg));
        }
    }
}

/// `ValidateAnnotations`: case-insensitive qualified-name keys and 256 KiB in total.
pub(super) fn validate_annotations(
    annotations: Option<&Map<String, Value>>,
    path: &Path,
    errs: &mut Vec<Cause>,
) {
    let Some(annotations) = annotations else {
        return;
    };
    let mut total = 0usize;
    for (key, value) in annotations {
        for msg in is_qualified_name(&key.to_lowercase()) {
            errs.push(invalid(path, key.as_str(), &msg));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_MAX_BYTES {
        errs.push(super::field::too_long(path, ANNOTATIONS_MAX_BYTES));
    }
}

fn validate_owner_references(meta: &Value, path: &Path, errs: &mut Vec<Cause>) {
    let Some(refs) = meta.get("ownerReferences").and_then(Value::as_array) else {
        return;
    };
    let mut first_controller: Option<String> = None;
    for r in refs {
        let api_version = str_at(r, "apiVersion");
        let kind = str_at(r, "kind");
        // schema.FromAPIVersionAndKind: more than one '/' makes the group/version unparsable.
        let version = match api_version.split('/').collect::<Vec<_>>().as_slice() {
            [v] => *v,
            [_, v] => *v,
            _ => "",
        };
        let group = api_version
            .split_once('/')
            .map(|(g, _)| g)
            .unwrap_or_default();
        if version.is_empty() {
            errs.push(invalid(
                &path.child("apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(invalid(&path.child("kind"), kind, "kind must not be empty"));
        }
        let name = str_at(r, "name");
        if name.is_empty() {
            errs.push(invalid(&path.child("name"), name, "name must not be empty"));
        }
        let uid = str_at(r, "uid");
        if uid.is_empty() {
            errs.push(invalid(&path.child("uid"), uid, "uid must not be empty"));
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(invalid(
                path,
                Bad::json(r),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => errs.push(invalid(
                    path,
                    Bad::json(&Value::Array(refs.clone())),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
}

/// `ValidateLabelSelector` (strict: label values in expressions must be valid).
pub(super) fn validate_label_selector(selector: &Value, path: &Path, errs: &mut Vec<Cause>) {
    validate_labels(
        selector.get("matchLabels").and_then(Value::as_object),
        &path.child("matchLabels"),
        errs,
    );
    let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) else {
        return;
    };
    for (i, expr) in exprs.iter().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = expr
            .get("values")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let operator = str_at(expr, "operator");
        match operator {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(invalid(
                &p.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        let key = str_at(expr, "key");
        for msg in is_qualified_name(key) {
            errs.push(invalid(&p.child("key"), key, &msg));
        }
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or("");
            for msg in is_valid_label_value(v) {
                errs.push(invalid(&p.child("values").index(j), v, &msg));
            }
        }
    }
}

/// Whether a `metav1.LabelSelector` matches a label map (`LabelSelectorAsSelector` + `Matches`).
/// None when the selector cannot be converted: an unknown operator, or keys and values that are
/// not valid labels (Kubernetes builds its requirements through the same checks).
pub(super) fn selector_matches(
    selector: &Value,
    labels: Option<&Map<String, Value>>,
) -> Option<bool> {
    let mut problems = Vec::new();
    validate_label_selector(selector, &Path::new("selector"), &mut problems);
    if !problems.is_empty() {
        return None;
    }
    crate::selector::LabelSelector::from_object(selector)
        .ok()
        .map(|s| s.matches(labels))
}

/// Whether a selector has neither matchLabels nor matchExpressions.
pub(super) fn selector_is_empty(selector: &Value) -> bool {
    let count = |key: &str| {
        selector
            .get(key)
            .map(|v| match v {
                Value::Object(m) => m.len(),
                Value::Array(a) => a.len(),
                _ => 0,
            })
            .unwrap_or(0)
    };
    count("matchLabels") + count("matchExpressions") == 0
}

/// JSON with nulls, empty maps and empty lists removed: Kubernetes' semantic equality treats
/// nil and empty alike, and serializers differ in which one they emit.
pub(super) fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let v = normalized(v);
                let empty = match &v {
                    Value::Null => true,
                    Value::Object(m) => m.is_empty(),
                    Value::Array(a) => a.is_empty(),
                    _ => false,
                };
                if !empty {
                    out.insert(k.clone(), v);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// Whether two optional JSON values are semantically equal.
pub(super) fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let a = a.map(normalized).unwrap_or(Value::Null);
    let b = b.map(normalized).unwrap_or(Value::Null);
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(l) => l.is_empty(),
        _ => false,
    };
    (empty(&a) && empty(&b)) || a == b
}

/// A diff of differing top-level fields, in the spirit of the `cmp.Diff` Kubernetes appends.
pub(super) fn struct_diff(type_name: &str, old: &Value, new: &Value) -> String {
    let empty = Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = format!("  {type_name}{{\n");
    for key in keys {
        let (a, b) = (old.get(key), new.get(key));
        if a == b {
            continue;
        }
        if let Some(a) = a {
            out.push_str(&format!("- \t{}: {},\n", go_quote(key), a));
        }
        if let Some(b) = b {
            out.push_str(&format!("+ \t{}: {},\n", go_quote(key), b));
        }
    }
    out.push_str("  }\n");
    out
}
