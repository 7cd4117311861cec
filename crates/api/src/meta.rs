//! Small accessors over objects held as JSON: metadata fields, dotted paths, timestamps and
//! generated names. The API server works on `serde_json::Value` so that built-in and custom
//! kinds share one code path.

use serde_json::{Map, Value};

/// `metadata.name`, or "" when missing.
pub fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.namespace`, if set.
pub fn namespace(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/namespace").and_then(Value::as_str)
}

pub fn uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

pub fn resource_version(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub fn labels(obj: &Value) -> Option<&Map<String, Value>> {
    obj.pointer("/metadata/labels").and_then(Value::as_object)
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
}

/// The `metadata` object, created if missing (or replaced if not an object).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("just made an object");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("just made an object")
}

/// Read a dotted path like `.spec.replicas` or `spec.nodeName`.
pub fn get_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = obj;
    for part in path.trim_start_matches('.').split('.') {
        if part.is_empty() {
            continue;
        }
        current = current.get(part)?;
    }
    Some(current)
}

/// Write a dotted path, creating intermediate objects.
pub fn set_path(obj: &mut Value, path: &str, value: Value) {
    let parts: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
        .collect();
    let mut current = obj;
    for (i, part) in parts.iter().enumerate() {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let map = current.as_object_mut().expect("just made an object");
        if i == parts.len() - 1 {
            map.insert(part.to_string(), value);
            return;
        }
        current = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// RFC 3339 timestamp at second precision, as Kubernetes writes `metav1.Time`.
pub fn format_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 3339 with microseconds, as Kubernetes writes `metav1.MicroTime`.
pub fn format_micro_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The characters Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
pub const NAME_SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Longest prefix kept from `generateName` (63 - 5 random characters).
pub const MAX_GENERATE_NAME_PREFIX: usize = 58;

/// `generateName` + 5 characters chosen by the caller's random source (one index per char).
pub fn generated_name(prefix: &str, random: [u8; 5]) -> String {
    let cut = prefix.len().min(MAX_GENERATE_NAME_PREFIX);
    let mut prefix_end = cut;
    while !prefix.is_char_boundary(prefix_end) {
        prefix_end -= 1;
    }
    let mut out = String::with_capacity(prefix_end + 5);
    out.push_str(&prefix[..prefix_end]);
    for r in random {
        out.push(NAME_SUFFIX_ALPHABET[r as usize % NAME_SUFFIX_ALPHABET.len()] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_and_write() {
        let mut obj = json!({"spec": {"replicas": 2}});
        assert_eq!(get_path(&obj, ".spec.replicas"), Some(&json!(2)));
        set_path(&mut obj, ".status.replicas", json!(3));
        assert_eq!(obj["status"]["replicas"], 3);
        assert_eq!(get_path(&obj, "spec.missing"), None);
    }

    #[test]
    fn generated_names_truncate_the_prefix() {
        let long = "a".repeat(70);
        let name = generated_name(&long, [0, 1, 2, 3, 26]);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("bcdf9"));
        assert_eq!(generated_name("web-", [0; 5]), "web-bbbbb");
    }

    #[test]
    fn times_have_kubernetes_precision() {
        let ts: jiff::Timestamp = "2026-01-02T03:04:05.123456789Z".parse().unwrap();
        assert_eq!(format_time(ts), "2026-01-02T03:04:05Z");
        assert_eq!(format_micro_time(ts), "2026-01-02T03:04:05.123456Z");
    }
}
