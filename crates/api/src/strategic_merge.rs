//! Strategic merge patch: the server side of `application/strategic-merge-patch+json`, the
//! patch format of `kubectl apply`, `kubectl edit` and `kubectl patch`.
//!
//! A JSON merge patch (RFC 7396) in which lists merge according to the patch metadata of their
//! field ([`crate::patch_meta`]): a list with strategy `merge` and a merge key merges element by
//! element (containers by `name`, ports by `containerPort`, ...), a `merge` list of scalars is a
//! set, every other list is replaced. Directives in the patch steer the merge:
//!
//! - `$patch: replace` in a map replaces the map; `{"$patch": "replace"}` in a list replaces the
//!   list with the other elements of the patch list;
//! - `$patch: delete` in a map deletes the map; `{"$patch": "delete", <key>: <v>}` in a list
//!   deletes the elements whose merge key is `<v>`;
//! - `$patch: merge` in a map is the default, spelled out;
//! - `$setElementOrder/<list>` orders the merged list;
//! - `$deleteFromPrimitiveList/<list>` removes scalars from a list;
//! - `$retainKeys` clears the keys of a map it does not name (union types such as volume
//!   sources or the Deployment strategy).
//!
//! The behaviour follows apimachinery's `pkg/util/strategicpatch` (what kubectl is tested
//! against), including its ordering: elements named by the patch come in the patch's order,
//! and elements only the server has keep their place relative to them as far as possible — so
//! an element added without `$setElementOrder` lands *before* the existing ones, as on a real
//! cluster. Where upstream leaks directives into the result or turns `$patch: delete` on a map
//! into `{}`, this implementation removes them and deletes the map (as the specification
//! says): no directive ever reaches the stored object.

use serde_json::{Map, Value};

use crate::patch_meta::{Definition, FieldMeta, PatchStrategy, Shape};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Why a strategic merge patch could not be applied. Every one is the client's fault: the API
/// server answers 400 Bad Request with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{kind}", at(.path))]
pub struct StrategicMergeError {
    /// Where in the patch, e.g. `spec.template.spec.containers[1]`; empty at the top.
    pub path: String,
    pub kind: ErrorKind,
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// What is wrong with a patch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("a strategic merge patch must be a JSON object")]
    NotAnObject,
    #[error("unknown patch type {0} in $patch (expected replace, merge or delete)")]
    UnknownPatchType(String),
    #[error("$patch: merge is not supported inside a list")]
    MergeInList,
    #[error("map {element} does not contain declared merge key: {key}")]
    MissingMergeKey { element: String, key: String },
    #[error("cannot merge a list of objects without a merge key")]
    NoMergeKey,
    #[error("{0} must be followed by / and the name of a list")]
    BadDirectiveKey(String),
    #[error("the value of {0} must be a list")]
    NotAList(String),
    #[error("the order in the patch list doesn't match the $setElementOrder list")]
    OrderMismatch,
    #[error("field {0:?} of the patch is not in the $retainKeys list")]
    NotRetained(String),
    #[error("lists of lists are not supported")]
    ListOfLists,
    #[error("the elements of the list do not all have the same type")]
    MixedList,
}

impl From<StrategicMergeError> for crate::ApiError {
    fn from(err: StrategicMergeError) -> Self {
        crate::ApiError::bad_request(err.to_string())
    }
}

type Result<T> = std::result::Result<T, StrategicMergeError>;

/// Applies a strategic merge `patch` to `original` and returns the patched object.
///
/// `schema` is the root definition of the object's kind
/// ([`crate::patch_meta::root_definition`]); with None (no schema known) maps still merge and
/// directives are still honoured, but every list is replaced, as in a JSON merge patch.
pub fn apply(
    original: &Value,
    patch: &Value,
    schema: Option<Definition>,
) -> std::result::Result<Value, StrategicMergeError> {
    let root = Path::Root;
    let Some(patch) = patch.as_object() else {
        return Err(root.error(ErrorKind::NotAnObject));
    };
    let original = original.as_object().cloned().unwrap_or_default();
    let schema = schema.map_or(Schema::None, Schema::Object);
    // `$patch: delete` on the whole object leaves nothing, which decoding then rejects.
    let merged = merge_map(original, patch, schema, &root)?.unwrap_or_default();
    Ok(Value::Object(merged))
}

/// What is known about the map being merged.
#[derive(Clone, Copy)]
enum Schema {
    /// Nothing: maps merge, lists are replaced.
    None,
    /// An object of a definition: its fields carry patch metadata.
    Object(Definition),
    /// A map whose values all have this shape (`labels`, `resources.limits`).
    Map(&'static Shape),
}

impl Schema {
    fn of(shape: Option<&'static Shape>) -> Schema {
        match shape {
            Some(Shape::Object(definition)) => Schema::Object(*definition),
            Some(Shape::Map(value)) => Schema::Map(value),
            _ => Schema::None,
        }
    }

    /// The shape and patch metadata of the value under `key`.
    fn child(self, key: &str) -> (Option<&'static Shape>, &'static FieldMeta) {
        match self {
            Schema::Object(definition) => match definition.field(key) {
                Some(field) => (Some(field.shape()), field.meta()),
                None => (None, &FieldMeta::NONE),
            },
            Schema::Map(value) => (Some(value), &FieldMeta::NONE),
            Schema::None => (None, &FieldMeta::NONE),
        }
    }
}

/// Where the merge is, for error messages; only rendered when an error happens.
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn key<'a>(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    fn index(&self, index: usize) -> Path<'_> {
        Path::Index(self, index)
    }

    fn render(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.render(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Index(parent, index) => {
                parent.render(out);
                out.push_str(&format!("[{index}]"));
            }
        }
    }

    fn error(&self, kind: ErrorKind) -> StrategicMergeError {
        let mut path = String::new();
        self.render(&mut path);
        StrategicMergeError { path, kind }
    }
}

/// Whether `key` is a directive rather than a field. Other keys starting with `$` are fields
/// (`$ref` and `$schema` in a CRD's OpenAPI schema).
fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// The list a `$setElementOrder/<list>` or `$deleteFromPrimitiveList/<list>` key is about.
fn directive_target<'a>(key: &'a str, prefix: &str, path: &Path<'_>) -> Result<&'a str> {
    match key.split_once('/') {
        Some((head, target)) if head == prefix => Ok(target),
        _ => Err(path.error(ErrorKind::BadDirectiveKey(key.to_string()))),
    }
}

/// Merges a patch map into an original map. None when the patch deletes the map.
fn merge_map(
    original: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Schema,
    path: &Path<'_>,
) -> Result<Option<Map<String, Value>>> {
    match patch.get(PATCH) {
        None => merge_fields(original, patch, schema, path).map(Some),
        Some(directive) => match directive.as_str() {
            Some("merge") => merge_fields(original, patch, schema, path).map(Some),
            // The rest of the patch map is the new content, directives included (they are
            // resolved against an empty original).
            Some("replace") => merge_fields(Map::new(), patch, schema, path).map(Some),
            Some("delete") => Ok(None),
            _ => Err(path.error(ErrorKind::UnknownPatchType(directive.to_string()))),
        },
    }
}

/// Merges the fields of a patch map (its `$patch` already handled) into `original`.
fn merge_fields(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Schema,
    path: &Path<'_>,
) -> Result<Map<String, Value>> {
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        apply_retain_keys(&mut original, patch, retain, path)?;
    }

    let mut orders: Vec<(&str, &Vec<Value>)> = Vec::new();
    for (key, value) in patch {
        if key.starts_with(SET_ELEMENT_ORDER) {
            let target = directive_target(key, SET_ELEMENT_ORDER, path)?;
            let Value::Array(order) = value else {
                return Err(path.error(ErrorKind::NotAList(key.clone())));
            };
            orders.push((target, order));
        } else if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            let target = directive_target(key, DELETE_FROM_PRIMITIVE_LIST, path)?;
            let Value::Array(doomed) = value else {
                return Err(path.error(ErrorKind::NotAList(key.clone())));
            };
            // Whatever the field's strategy, and never creating the list.
            if let Some(Value::Array(list)) = original.get_mut(target) {
                list.retain(|item| !doomed.contains(item));
            }
        }
    }
    let order_of = |key: &str| {
        orders
            .iter()
            .find(|(target, _)| *target == key)
            .map(|(_, order)| order.as_slice())
    };

    for (key, patch_value) in patch {
        if is_directive(key) {
            continue;
        }
        if patch_value.is_null() {
            original.shift_remove(key);
            continue;
        }
        let child_path = path.key(key);
        let (shape, meta) = schema.child(key);
        let current = original.get_mut(key).map(std::mem::take);
        let order = order_of(key).filter(|_| meta.strategy.merges_lists());
        // Ordering puts server-only elements back where they were in the list before the merge.
        let server_ids = match (order, &current) {
            (Some(order), Some(Value::Array(list))) => {
                if let Value::Array(patch_list) = patch_value {
                    validate_order(patch_list, order, meta.merge_key, &child_path)?;
                }
                Some(identities(list, meta.merge_key))
            }
            (Some(order), _) => {
                if let Value::Array(patch_list) = patch_value {
                    validate_order(patch_list, order, meta.merge_key, &child_path)?;
                }
                Some(Vec::new())
            }
            (None, _) => None,
        };
        let merged = merge_value(current, patch_value, shape, meta, &child_path)?;
        let merged = match (merged, order, server_ids) {
            (Some(Value::Array(list)), Some(order), Some(server_ids)) => {
                let order_ids = order_identities(order, meta.merge_key, &child_path)?;
                Some(Value::Array(reorder(
                    list,
                    &order_ids,
                    &server_ids,
                    meta.merge_key,
                )))
            }
            (merged, _, _) => merged,
        };
        match (merged, original.get_mut(key)) {
            (Some(value), Some(slot)) => *slot = value,
            (Some(value), None) => {
                original.insert(key.clone(), value);
            }
            (None, _) => {
                original.shift_remove(key);
            }
        }
    }

    // An order for a list the patch does not otherwise touch: reorder what is there.
    for (target, order) in &orders {
        if patch.contains_key(*target) {
            continue;
        }
        let (_, meta) = schema.child(target);
        if !meta.strategy.merges_lists() {
            continue;
        }
        if let Some(Value::Array(list)) = original.get_mut(*target) {
            let child_path = path.key(target);
            let order_ids = order_identities(order, meta.merge_key, &child_path)?;
            let server_ids = identities(list, meta.merge_key);
            let items = std::mem::take(list);
            *list = reorder(items, &order_ids, &server_ids, meta.merge_key);
        }
    }
    Ok(original)
}

/// `$retainKeys`: every field the patch sets must be listed; fields of the original that are
/// not listed are cleared.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: &Value,
    path: &Path<'_>,
) -> Result<()> {
    let Value::Array(retain) = retain else {
        return Err(path.error(ErrorKind::NotAList(RETAIN_KEYS.to_string())));
    };
    let retained = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch {
        if value.is_null() || is_directive(key) {
            continue;
        }
        if !retained(key) {
            return Err(path.error(ErrorKind::NotRetained(key.clone())));
        }
    }
    original.retain(|key, _| retained(key));
    Ok(())
}

/// Merges one patch value into the current value of a field (None when absent). None when the
/// result is that the field goes away.
fn merge_value(
    current: Option<Value>,
    patch: &Value,
    shape: Option<&'static Shape>,
    meta: &FieldMeta,
    path: &Path<'_>,
) -> Result<Option<Value>> {
    match patch {
        Value::Null => Ok(None),
        Value::Object(patch) => {
            let original = match current {
                Some(Value::Object(map)) if meta.strategy != PatchStrategy::Replace => map,
                _ => Map::new(),
            };
            Ok(merge_map(original, patch, Schema::of(shape), path)?.map(Value::Object))
        }
        Value::Array(patch) => {
            let item = shape.and_then(Shape::item);
            let list = match current {
                Some(Value::Array(list)) if meta.strategy.merges_lists() => {
                    merge_list(list, patch, item, meta.merge_key, path)?
                }
                _ => fresh_list(patch, item, path)?,
            };
            Ok(Some(Value::Array(list)))
        }
        scalar => Ok(Some(scalar.clone())),
    }
}

/// A patch list taken as the new value: list directives dropped, elements cleaned of theirs.
fn fresh_list(
    patch: &[Value],
    item: Option<&'static Shape>,
    path: &Path<'_>,
) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(patch.len());
    for (i, element) in patch.iter().enumerate() {
        let element_path = path.index(i);
        if let Some(directive) = element.get(PATCH) {
            list_directive(directive, &element_path)?;
            continue;
        }
        out.push(match element {
            Value::Object(map) => {
                let merged = merge_fields(Map::new(), map, Schema::of(item), &element_path)?;
                Value::Object(merged)
            }
            Value::Array(list) => Value::Array(fresh_list(list, None, &element_path)?),
            other => other.clone(),
        });
    }
    Ok(out)
}

/// What a `$patch` element inside a list asks for.
enum ListDirective {
    Delete,
    Replace,
}

fn list_directive(directive: &Value, path: &Path<'_>) -> Result<ListDirective> {
    match directive.as_str() {
        Some("delete") => Ok(ListDirective::Delete),
        Some("replace") => Ok(ListDirective::Replace),
        Some("merge") => Err(path.error(ErrorKind::MergeInList)),
        _ => Err(path.error(ErrorKind::UnknownPatchType(directive.to_string()))),
    }
}

/// Merges a patch list into an original list of a field whose strategy is `merge`.
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    item: Option<&'static Shape>,
    merge_key: Option<&str>,
    path: &Path<'_>,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let mut objects = false;
    let mut scalars = false;
    for element in original.iter().chain(patch) {
        match element {
            Value::Array(_) => return Err(path.error(ErrorKind::ListOfLists)),
            Value::Object(_) => objects = true,
            _ => scalars = true,
        }
    }
    if objects && scalars {
        return Err(path.error(ErrorKind::MixedList));
    }

    if scalars {
        // A set: the union, each value once.
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for value in original.iter().chain(patch) {
            if !merged.contains(value) {
                merged.push(value.clone());
            }
        }
        return Ok(reorder(merged, patch, &original, None));
    }

    let Some(key) = merge_key else {
        return Err(path.error(ErrorKind::NoMergeKey));
    };
    let mut original = original;
    let mut elements: Vec<(usize, &Map<String, Value>)> = Vec::with_capacity(patch.len());
    let mut replace = false;
    for (i, element) in patch.iter().enumerate() {
        let map = element.as_object().expect("checked: all objects");
        let Some(directive) = map.get(PATCH) else {
            elements.push((i, map));
            continue;
        };
        let element_path = path.index(i);
        match list_directive(directive, &element_path)? {
            ListDirective::Delete => {
                let Some(doomed) = map.get(key) else {
                    return Err(element_path.error(missing_key(map, key)));
                };
                original.retain(|o| o.get(key) != Some(doomed));
            }
            ListDirective::Replace => replace = true,
        }
    }
    if replace {
        // `[{"$patch": "replace"}, ...]`: the other elements are the whole list.
        let mut list = Vec::with_capacity(elements.len());
        for (i, map) in elements {
            let merged = merge_fields(Map::new(), map, Schema::of(item), &path.index(i))?;
            list.push(Value::Object(merged));
        }
        return Ok(list);
    }

    let server_ids = identities(&original, Some(key));
    let mut order_ids = Vec::with_capacity(elements.len());
    for (i, map) in elements {
        let element_path = path.index(i);
        let Some(id) = map.get(key) else {
            return Err(element_path.error(missing_key(map, key)));
        };
        order_ids.push(id.clone());
        let found = original.iter().position(|o| o.get(key) == Some(id));
        let base = match found {
            Some(pos) => match std::mem::take(&mut original[pos]) {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            None => Map::new(),
        };
        let merged = Value::Object(merge_fields(base, map, Schema::of(item), &element_path)?);
        match found {
            Some(pos) => original[pos] = merged,
            None => original.push(merged),
        }
    }
    Ok(reorder(original, &order_ids, &server_ids, Some(key)))
}

fn missing_key(element: &Map<String, Value>, key: &str) -> ErrorKind {
    ErrorKind::MissingMergeKey {
        element: Value::Object(element.clone()).to_string(),
        key: key.to_string(),
    }
}

/// What identifies an element: its merge key value, or itself for scalars.
fn identity<'a>(element: &'a Value, merge_key: Option<&str>) -> Option<&'a Value> {
    match merge_key {
        Some(key) => element.get(key),
        None => Some(element),
    }
}

fn identities(list: &[Value], merge_key: Option<&str>) -> Vec<Value> {
    list.iter()
        .map(|element| identity(element, merge_key).cloned().unwrap_or(Value::Null))
        .collect()
}

/// The identities a `$setElementOrder` list names; each entry of a keyed list must carry the key.
fn order_identities(
    order: &[Value],
    merge_key: Option<&str>,
    path: &Path<'_>,
) -> Result<Vec<Value>> {
    order
        .iter()
        .enumerate()
        .map(|(i, entry)| match merge_key {
            None => Ok(entry.clone()),
            Some(key) => match entry.get(key) {
                Some(id) => Ok(id.clone()),
                None => Err(path.index(i).error(ErrorKind::MissingMergeKey {
                    element: entry.to_string(),
                    key: key.to_string(),
                })),
            },
        })
        .collect()
}

/// Checks that the elements of a patch list appear in its `$setElementOrder` list, in the same
/// relative order (deletions aside).
fn validate_order(
    patch: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
    path: &Path<'_>,
) -> Result<()> {
    let order_ids = order_identities(order, merge_key, path)?;
    let mut next = 0;
    for (i, element) in patch.iter().enumerate() {
        if element.get(PATCH).is_some() {
            continue;
        }
        let Some(id) = identity(element, merge_key) else {
            let map = element.as_object().cloned().unwrap_or_default();
            return Err(path
                .index(i)
                .error(missing_key(&map, merge_key.unwrap_or_default())));
        };
        match order_ids[next..].iter().position(|o| o == id) {
            Some(found) => next += found + 1,
            None => return Err(path.error(ErrorKind::OrderMismatch)),
        }
    }
    Ok(())
}

/// Orders a merged list: the elements named by `order_ids` first in that order, the others
/// (server-only) in their original order, interleaved with the first wherever the original
/// order puts them before (apimachinery's `normalizeElementOrder`).
fn reorder(
    merged: Vec<Value>,
    order_ids: &[Value],
    server_ids: &[Value],
    merge_key: Option<&str>,
) -> Vec<Value> {
    let position = |ids: &[Value], element: &Value| {
        identity(element, merge_key).and_then(|id| ids.iter().position(|other| other == id))
    };
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|element| position(order_ids, element).is_some());
    named.sort_by_key(|element| position(order_ids, element));
    server_only.sort_by_key(|element| position(server_ids, element).unwrap_or(usize::MAX));

    // Take a server-only element first only when the original order says it came before the
    // next named one; named elements the server never had go first.
    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut named = named.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let take_server = match (server_only.peek(), named.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(left), Some(right)) => {
                match (position(server_ids, left), position(server_ids, right)) {
                    (Some(l), Some(r)) => l < r,
                    _ => false,
                }
            }
        };
        out.extend(if take_server {
            server_only.next()
        } else {
            named.next()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch_meta::root_definition;
    use serde_json::json;

    fn deployment(containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": containers}}}
        })
    }

    fn containers(object: &Value) -> &Value {
        &object["spec"]["template"]["spec"]["containers"]
    }

    /// (what, kind, original, patch, expected result)
    type Case = (
        &'static str,
        Option<(&'static str, &'static str)>,
        Value,
        Value,
        Value,
    );

    fn run(cases: Vec<Case>) {
        for (what, kind, original, patch, expected) in cases {
            let schema = kind.map(|(group, kind)| {
                let version = if group == "autoscaling" { "v2" } else { "v1" };
                root_definition(group, version, kind).expect("a built-in kind")
            });
            let result = apply(&original, &patch, schema)
                .unwrap_or_else(|err| panic!("{what}: unexpected error {err}"));
            assert_eq!(result, expected, "{what}");
            let text = result.to_string();
            assert!(
                ![
                    "$patch",
                    "$retainKeys",
                    "$setElementOrder",
                    "$deleteFromPrimitiveList"
                ]
                .iter()
                .any(|directive| text.contains(directive)),
                "{what}: a directive leaked: {result}"
            );
        }
    }

    const DEPLOYMENT: Option<(&str, &str)> = Some(("apps", "Deployment"));
    const POD: Option<(&str, &str)> = Some(("", "Pod"));

    #[test]
    fn kubectl_apply_updates_one_container_and_deletes_another() {
        let original = deployment(json!([
            {"name": "c", "image": "nginx:1", "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "terminationMessagePath": "/dev/termination-log"},
            {"name": "side", "image": "busybox"}
        ]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "c"}],
            "containers": [{"image": "nginx:2", "name": "c"}, {"$patch": "delete", "name": "side"}]
        }}}});
        let result = apply(
            &original,
            &patch,
            root_definition("apps", "v1", "Deployment"),
        )
        .unwrap();
        assert_eq!(
            containers(&result),
            &json!([{"name": "c", "image": "nginx:2", "imagePullPolicy": "IfNotPresent",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "terminationMessagePath": "/dev/termination-log"}])
        );
        // Everything else is untouched.
        assert_eq!(result["metadata"], original["metadata"]);
        assert_eq!(result["spec"]["selector"], original["spec"]["selector"]);
    }

    #[test]
    fn without_a_schema_lists_are_replaced() {
        let original = deployment(json!([{"name": "c", "image": "nginx:1"}, {"name": "side"}]));
        let patch = json!({"spec": {"template": {"spec": {
            "containers": [{"image": "nginx:2", "name": "c"}]}}}});
        let result = apply(&original, &patch, None).unwrap();
        assert_eq!(
            containers(&result),
            &json!([{"image": "nginx:2", "name": "c"}])
        );
        assert_eq!(result["spec"]["replicas"], 1);
    }

    #[test]
    fn merge_lists_and_maps() {
        run(vec![
            (
                "env var removed with $patch: delete, another changed, one added",
                DEPLOYMENT,
                deployment(json!([{"name": "c", "image": "i", "env": [
                    {"name": "A", "value": "1"}, {"name": "X", "value": "x"},
                    {"name": "B", "value": "2"}]}])),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "c",
                    "$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "C"}],
                    "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"},
                        {"$patch": "delete", "name": "X"}]}]}}}}),
                deployment(json!([{"name": "c", "image": "i", "env": [
                    {"name": "A", "value": "1"}, {"name": "B", "value": "3"},
                    {"name": "C", "value": "4"}]}])),
            ),
            (
                "ports merge by containerPort; a port new to the server goes first",
                DEPLOYMENT,
                deployment(json!([{"name": "c", "ports": [
                    {"containerPort": 80, "protocol": "TCP"},
                    {"containerPort": 443, "protocol": "TCP"}]}])),
                json!({"spec": {"template": {"spec": {"containers": [{"name": "c",
                    "ports": [{"containerPort": 80, "name": "http"},
                        {"containerPort": 8080}]}]}}}}),
                deployment(json!([{"name": "c", "ports": [
                    {"containerPort": 80, "protocol": "TCP", "name": "http"},
                    {"containerPort": 8080},
                    {"containerPort": 443, "protocol": "TCP"}]}])),
            ),
            (
                "a container added without $setElementOrder comes first, as upstream",
                DEPLOYMENT,
                deployment(json!([{"name": "a", "image": "nginx"}])),
                json!({"spec": {"template": {"spec": {"containers": [
                    {"name": "b", "image": "redis"}]}}}}),
                deployment(json!([{"name": "b", "image": "redis"},
                    {"name": "a", "image": "nginx"}])),
            ),
            (
                "$setElementOrder places new elements",
                DEPLOYMENT,
                deployment(json!([{"name": "a", "image": "nginx"}])),
                json!({"spec": {"template": {"spec": {
                    "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                    "containers": [{"name": "b", "image": "redis"}]}}}}),
                deployment(json!([{"name": "a", "image": "nginx"},
                    {"name": "b", "image": "redis"}])),
            ),
            (
                "tolerations have no strategy: replaced",
                POD,
                json!({"spec": {"containers": [{"name": "c"}], "tolerations": [
                    {"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]}}),
                json!({"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}}),
                json!({"spec": {"containers": [{"name": "c"}], "tolerations": [
                    {"key": "c", "operator": "Exists"}]}}),
            ),
            (
                "container args are atomic: replaced",
                POD,
                json!({"spec": {"containers": [{"name": "c", "args": ["a", "b"]}]}}),
                json!({"spec": {"containers": [{"name": "c", "args": ["b"]}]}}),
                json!({"spec": {"containers": [{"name": "c", "args": ["b"]}]}}),
            ),
            (
                "labels: null removes, others merge",
                POD,
                json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}}),
                json!({"metadata": {"labels": {"a": null, "c": "3", "zzz": null}}}),
                json!({"metadata": {"name": "p", "labels": {"b": "2", "c": "3"}}}),
            ),
            (
                "map values merge key by key (resources.limits)",
                POD,
                json!({"spec": {"containers": [{"name": "c", "resources": {
                    "limits": {"cpu": "1", "memory": "1Gi"}}}]}}),
                json!({"spec": {"containers": [{"name": "c", "resources": {
                    "limits": {"cpu": "2", "memory": null}}}]}}),
                json!({"spec": {"containers": [{"name": "c", "resources": {
                    "limits": {"cpu": "2"}}}]}}),
            ),
            (
                "status conditions merge by type",
                DEPLOYMENT,
                json!({"status": {"conditions": [
                    {"type": "Available", "status": "False"},
                    {"type": "Progressing", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
                json!({"status": {"conditions": [
                    {"type": "Available", "status": "True"},
                    {"type": "Progressing", "status": "True"}]}}),
            ),
            (
                "ownerReferences merge by uid; delete by uid",
                POD,
                json!({"metadata": {"ownerReferences": [
                    {"uid": "1", "kind": "ReplicaSet", "name": "a"},
                    {"uid": "2", "kind": "ReplicaSet", "name": "b"}]}}),
                json!({"metadata": {"ownerReferences": [
                    {"$patch": "delete", "uid": "1"}, {"uid": "2", "controller": true}]}}),
                json!({"metadata": {"ownerReferences": [
                    {"uid": "2", "kind": "ReplicaSet", "name": "b", "controller": true}]}}),
            ),
            (
                "$patch: delete removes every element with the key",
                POD,
                json!({"spec": {"containers": [{"name": "c", "volumeMounts": [
                    {"mountPath": "/a", "name": "v"}, {"mountPath": "/b", "name": "w"},
                    {"mountPath": "/a", "name": "dup"}]}]}}),
                json!({"spec": {"containers": [{"name": "c", "volumeMounts": [
                    {"$patch": "delete", "mountPath": "/a"}]}]}}),
                json!({"spec": {"containers": [{"name": "c", "volumeMounts": [
                    {"mountPath": "/b", "name": "w"}]}]}}),
            ),
            (
                "preserve the patch's order, server-only elements before (upstream table)",
                POD,
                json!({"spec": {"containers": [{"name": "1"}, {"name": "2", "image": "b"},
                    {"name": "3"}]}}),
                json!({"spec": {"containers": [{"name": "3", "image": "c"},
                    {"name": "1", "image": "a"}]}}),
                json!({"spec": {"containers": [{"name": "2", "image": "b"},
                    {"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}}),
            ),
            (
                "set element order with server-only elements (upstream table)",
                POD,
                json!({"spec": {"containers": [{"name": "1", "image": "a"},
                    {"name": "2", "image": "2"}, {"name": "9"}, {"name": "3", "image": "3"},
                    {"name": "4", "image": "4"}]}}),
                json!({"spec": {"$setElementOrder/containers": [
                    {"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}]}}),
                json!({"spec": {"containers": [{"name": "2", "image": "2"},
                    {"name": "1", "image": "a"}, {"name": "9"}, {"name": "4", "image": "4"},
                    {"name": "3", "image": "3"}]}}),
            ),
            (
                "$setElementOrder naming an element the list lacks",
                POD,
                json!({"metadata": {"finalizers": ["1", "3"]}}),
                json!({"metadata": {"$setElementOrder/finalizers": ["3", "2", "1"]}}),
                json!({"metadata": {"finalizers": ["3", "1"]}}),
            ),
            (
                "a whole new list is cleaned of its directives",
                POD,
                json!({"spec": {"containers": [{"name": "c"}]}}),
                json!({"spec": {"containers": [{"name": "c",
                    "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                    "env": [{"name": "A", "value": "1"}, {"$patch": "delete", "name": "Z"},
                        {"name": "B", "value": "2"}]}]}}),
                json!({"spec": {"containers": [{"name": "c", "env": [
                    {"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}),
            ),
        ]);
    }

    #[test]
    fn primitive_merge_lists_are_sets() {
        run(vec![
            (
                "finalizers: union",
                POD,
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"finalizers": ["b", "c"]}}),
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            ),
            (
                "finalizers: a value new to the server goes first, as upstream",
                POD,
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"finalizers": ["c"]}}),
                json!({"metadata": {"finalizers": ["c", "a", "b"]}}),
            ),
            (
                "finalizers: duplicates collapse",
                POD,
                json!({"metadata": {"finalizers": ["a", "a"]}}),
                json!({"metadata": {"finalizers": ["a"]}}),
                json!({"metadata": {"finalizers": ["a"]}}),
            ),
            (
                "$deleteFromPrimitiveList",
                POD,
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zzz"]}}),
                json!({"metadata": {"finalizers": ["a", "c"]}}),
            ),
            (
                "$deleteFromPrimitiveList never creates the list",
                POD,
                json!({"metadata": {"name": "p"}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
                json!({"metadata": {"name": "p"}}),
            ),
            (
                "$deleteFromPrimitiveList works on lists without merge strategy too",
                POD,
                json!({"spec": {"containers": [{"name": "c", "args": ["1", "2", "3"]}]}}),
                json!({"spec": {"containers": [{"name": "c",
                    "$deleteFromPrimitiveList/args": ["2"]}]}}),
                json!({"spec": {"containers": [{"name": "c", "args": ["1", "3"]}]}}),
            ),
            (
                "kubectl apply removing one finalizer and adding another",
                POD,
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"],
                    "$setElementOrder/finalizers": ["b", "c"], "finalizers": ["c"]}}),
                json!({"metadata": {"finalizers": ["b", "c"]}}),
            ),
            (
                "preserve the patch's order in a set (upstream table)",
                POD,
                json!({"metadata": {"finalizers": ["1", "2", "3"]}}),
                json!({"metadata": {"finalizers": ["3", "1"]}}),
                json!({"metadata": {"finalizers": ["2", "3", "1"]}}),
            ),
        ]);
    }

    #[test]
    fn services_merge_ports_by_port() {
        run(vec![(
            "Service ports",
            Some(("", "Service")),
            json!({"spec": {"selector": {"app": "a"}, "ports": [
                {"port": 80, "targetPort": 8080, "protocol": "TCP", "name": "http"},
                {"port": 443, "targetPort": 8443, "protocol": "TCP", "name": "https"}]}}),
            json!({"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                "ports": [{"port": 443, "targetPort": 9443}],
                "selector": {"app": "b"}}}),
            json!({"spec": {"selector": {"app": "b"}, "ports": [
                {"port": 80, "targetPort": 8080, "protocol": "TCP", "name": "http"},
                {"port": 443, "targetPort": 9443, "protocol": "TCP", "name": "https"}]}}),
        )]);
    }

    #[test]
    fn directives() {
        let volume_pod =
            |volumes: Value| json!({"spec": {"containers": [{"name": "c"}], "volumes": volumes}});
        run(vec![
            (
                "$retainKeys switches a volume from emptyDir to configMap",
                POD,
                volume_pod(json!([{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}])),
                json!({"spec": {"$setElementOrder/volumes": [{"name": "v"}, {"name": "w"}],
                    "volumes": [{"$retainKeys": ["configMap", "name"],
                        "configMap": {"name": "cm"}, "name": "v"}]}}),
                volume_pod(json!([{"name": "v", "configMap": {"name": "cm"}},
                    {"name": "w", "emptyDir": {}}])),
            ),
            (
                "$retainKeys on the Deployment strategy clears rollingUpdate",
                DEPLOYMENT,
                json!({"spec": {"strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1}}}}),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate",
                    "rollingUpdate": null}}}),
                json!({"spec": {"strategy": {"type": "Recreate"}}}),
            ),
            (
                "$retainKeys in a new volume is not stored",
                POD,
                volume_pod(json!([])),
                json!({"spec": {"volumes": [{"$retainKeys": ["name", "secret"], "name": "s",
                    "secret": {"secretName": "x"}}]}}),
                volume_pod(json!([{"name": "s", "secret": {"secretName": "x"}}])),
            ),
            (
                "$patch: replace on a map",
                POD,
                json!({"spec": {"containers": [{"name": "c", "resources": {
                    "limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}]}}),
                json!({"spec": {"containers": [{"name": "c", "resources": {
                    "$patch": "replace", "limits": {"cpu": "2"}}}]}}),
                json!({"spec": {"containers": [{"name": "c", "resources": {
                    "limits": {"cpu": "2"}}}]}}),
            ),
            (
                "$patch: replace in a list",
                POD,
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                json!({"spec": {"containers": [{"name": "c", "image": "x"},
                    {"$patch": "replace"}]}}),
                json!({"spec": {"containers": [{"name": "c", "image": "x"}]}}),
            ),
            (
                "$patch: replace alone empties a list",
                POD,
                json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}),
                json!({"spec": {"containers": [{"$patch": "replace"}]}}),
                json!({"spec": {"containers": []}}),
            ),
            (
                "$patch: delete on a map deletes it",
                DEPLOYMENT,
                json!({"spec": {"strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1}}}}),
                json!({"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}}),
                json!({"spec": {"strategy": {"type": "RollingUpdate"}}}),
            ),
            (
                "$patch: merge on a map is the default",
                POD,
                json!({"metadata": {"labels": {"a": "1"}}}),
                json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
                json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            ),
            (
                "patchStrategy replace on a struct (PodDisruptionBudget selector)",
                Some(("policy", "PodDisruptionBudget")),
                json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}}),
                json!({"spec": {"selector": {"matchExpressions": [
                    {"key": "a", "operator": "Exists"}]}}}),
                json!({"spec": {"selector": {"matchExpressions": [
                    {"key": "a", "operator": "Exists"}]}}}),
            ),
            (
                "directives in free-form and schema-less places are still resolved",
                None,
                json!({"a": {"b": [1, 2], "c": {"d": 1}}}),
                json!({"a": {"b": [{"$patch": "replace"}, 3], "c": {"$patch": "delete"},
                    "e": {"$patch": "replace", "f": {"g": null, "h": 1}}}}),
                json!({"a": {"b": [3], "e": {"f": {"h": 1}}}}),
            ),
            (
                "$ref and $schema stay fields of a CRD schema",
                Some(("apiextensions.k8s.io", "CustomResourceDefinition")),
                json!({"spec": {"group": "g"}}),
                json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
                    "$schema": "s", "type": "object",
                    "properties": {"spec": {"$ref": "#/r"}}}}}]}}),
                json!({"spec": {"group": "g", "versions": [{"name": "v1", "schema": {
                    "openAPIV3Schema": {"$schema": "s", "type": "object",
                        "properties": {"spec": {"$ref": "#/r"}}}}}]}}),
            ),
            (
                "$patch: replace on the whole object (upstream table)",
                None,
                json!({"name": 1, "value": 1}),
                json!({"other": "a", "$patch": "replace"}),
                json!({"other": "a"}),
            ),
            (
                "an empty map patch changes nothing, even under $retainKeys strategy",
                DEPLOYMENT,
                json!({"spec": {"strategy": {"type": "Recreate"}}}),
                json!({"spec": {"strategy": {}}}),
                json!({"spec": {"strategy": {"type": "Recreate"}}}),
            ),
            (
                "empty merge lists stay empty",
                POD,
                json!({"spec": {"containers": []}}),
                json!({"spec": {"containers": []}}),
                json!({"spec": {"containers": []}}),
            ),
            (
                "a patch deleting the whole object leaves an empty one",
                POD,
                json!({"metadata": {"name": "p"}}),
                json!({"$patch": "delete"}),
                json!({}),
            ),
        ]);
    }

    #[test]
    fn invalid_patches_are_rejected() {
        let pod = root_definition("", "v1", "Pod");
        let original = json!({"metadata": {"name": "p", "finalizers": ["a"]},
            "spec": {"containers": [{"name": "c", "image": "i"}, {"name": "d"}]}});
        let cases: &[(&str, Value, &str)] = &[
            (
                "not an object",
                json!([1]),
                "a strategic merge patch must be a JSON object",
            ),
            (
                "unknown $patch on a map",
                json!({"spec": {"$patch": "remove"}}),
                "spec: unknown patch type \"remove\" in $patch (expected replace, merge or delete)",
            ),
            (
                "unknown $patch in a list",
                json!({"spec": {"containers": [{"$patch": 1, "name": "c"}]}}),
                "spec.containers[0]: unknown patch type 1 in $patch",
            ),
            (
                "$patch: merge in a list",
                json!({"spec": {"containers": [{"$patch": "merge", "name": "c"}]}}),
                "spec.containers[0]: $patch: merge is not supported inside a list",
            ),
            (
                "element without its merge key",
                json!({"spec": {"containers": [{"image": "x"}]}}),
                "spec.containers[0]: map {\"image\":\"x\"} does not contain declared merge key: name",
            ),
            (
                "delete without the merge key",
                json!({"spec": {"containers": [{"$patch": "delete"}]}}),
                "spec.containers[0]: map {\"$patch\":\"delete\"} does not contain declared merge key: name",
            ),
            (
                "patch order contradicting $setElementOrder",
                json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "d"}],
                    "containers": [{"name": "d", "image": "x"}, {"name": "c", "image": "y"}]}}),
                "spec.containers: the order in the patch list doesn't match the $setElementOrder list",
            ),
            (
                "$setElementOrder entry without the merge key",
                json!({"spec": {"$setElementOrder/containers": [{"image": "c"}]}}),
                "spec.containers[0]: map {\"image\":\"c\"} does not contain declared merge key: name",
            ),
            (
                "$setElementOrder without a list name",
                json!({"spec": {"$setElementOrder": []}}),
                "spec: $setElementOrder must be followed by / and the name of a list",
            ),
            (
                "$deleteFromPrimitiveList that is not a list",
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
                "metadata: the value of $deleteFromPrimitiveList/finalizers must be a list",
            ),
            (
                "a field outside $retainKeys",
                json!({"spec": {"containers": [{"name": "c", "$retainKeys": ["name"], "image": "x"}]}}),
                "spec.containers[0]: field \"image\" of the patch is not in the $retainKeys list",
            ),
            (
                "lists of lists",
                json!({"metadata": {"finalizers": [["a"]]}}),
                "metadata.finalizers: lists of lists are not supported",
            ),
            (
                "mixed element types",
                json!({"metadata": {"finalizers": [{"a": 1}]}}),
                "metadata.finalizers: the elements of the list do not all have the same type",
            ),
        ];
        for (what, patch, message) in cases {
            let err = apply(&original, patch, pod).expect_err(what);
            assert!(
                err.to_string().starts_with(message),
                "{what}: {err} does not start with {message}"
            );
        }
        let err = apply(&original, &json!({"spec": {"$patch": "x"}}), pod).unwrap_err();
        let status = crate::ApiError::from(err);
        assert_eq!(status.code, 400);
    }
}
