//! Field paths and field errors worded exactly like apimachinery's `field.Error`, including the
//! way Go prints the offending value (`%q` strings, `%#v` maps and structs), because clients and
//! people grep for those messages.

use serde_json::{Map, Value};

use crate::status::Cause;

/// A field path as Kubernetes prints it: `spec.containers[0].ports[1].containerPort`, with map
/// keys in brackets (`data[key]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn new(first: &str) -> Path {
        Path(first.to_string())
    }

    /// The path of the whole object (`field.NewPath("")`), used for object-wide size errors.
    pub(crate) fn root() -> Path {
        Path(String::new())
    }

    pub(crate) fn child(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    /// Several children at once: `p.at(&["template", "spec"])`.
    pub(crate) fn at(&self, names: &[&str]) -> Path {
        names.iter().fold(self.clone(), |p, n| p.child(n))
    }

    pub(crate) fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    pub(crate) fn key(&self, key: &str) -> Path {
        Path(format!("{}[{key}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The offending value of an error, rendered the way `field.Error.ErrorBody` renders it.
#[derive(Debug, Clone)]
pub(crate) enum Bad {
    Str(String),
    Int(i64),
    Bool(bool),
    /// Already rendered (Go `%#v` of a map, slice or struct).
    Raw(String),
    Null,
}

impl Bad {
    pub(crate) fn render(&self) -> String {
        match self {
            Bad::Str(s) => go_quote(s),
            Bad::Int(i) => i.to_string(),
            Bad::Bool(b) => b.to_string(),
            Bad::Raw(s) => s.clone(),
            Bad::Null => "null".to_string(),
        }
    }

    /// A JSON value of unknown shape: strings, numbers and booleans print like Go scalars,
    /// anything else falls back to compact JSON (Go would print an internal struct here).
    pub(crate) fn json(value: &Value) -> Bad {
        match value {
            Value::String(s) => Bad::Str(s.clone()),
            Value::Bool(b) => Bad::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Bad::Int(i),
                None => Bad::Raw(n.to_string()),
            },
            Value::Null => Bad::Null,
            other => Bad::Raw(other.to_string()),
        }
    }
}

impl From<&str> for Bad {
    fn from(s: &str) -> Bad {
        Bad::Str(s.to_string())
    }
}

impl From<String> for Bad {
    fn from(s: String) -> Bad {
        Bad::Str(s)
    }
}

impl From<&String> for Bad {
    fn from(s: &String) -> Bad {
        Bad::Str(s.clone())
    }
}

impl From<i64> for Bad {
    fn from(i: i64) -> Bad {
        Bad::Int(i)
    }
}

impl From<i32> for Bad {
    fn from(i: i32) -> Bad {
        Bad::Int(i64::from(i))
    }
}

impl From<bool> for Bad {
    fn from(b: bool) -> Bad {
        Bad::Bool(b)
    }
}

/// `field.Required`: `Required value` or `Required value: <detail>`.
pub(crate) fn required(path: &Path, detail: &str) -> Cause {
    Cause::new(
        "FieldValueRequired",
        path.as_str(),
        with_detail("Required value".to_string(), detail),
    )
}

/// `field.Invalid`: `Invalid value: <value>: <detail>`.
pub(crate) fn invalid(path: &Path, value: impl Into<Bad>, detail: &str) -> Cause {
    Cause::new(
        "FieldValueInvalid",
        path.as_str(),
        with_detail(format!("Invalid value: {}", value.into().render()), detail),
    )
}

/// `field.NotSupported`: `Unsupported value: <value>: supported values: "a", "b"`.
pub(crate) fn not_supported(path: &Path, value: impl Into<Bad>, supported: &[&str]) -> Cause {
    let detail = if supported.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        format!("supported values: {}", quoted.join(", "))
    };
    Cause::new(
        "FieldValueNotSupported",
        path.as_str(),
        with_detail(
            format!("Unsupported value: {}", value.into().render()),
            &detail,
        ),
    )
}

/// `field.Duplicate`: `Duplicate value: <value>`.
pub(crate) fn duplicate(path: &Path, value: impl Into<Bad>) -> Cause {
    Cause::new(
        "FieldValueDuplicate",
        path.as_str(),
        format!("Duplicate value: {}", value.into().render()),
    )
}

/// `field.Forbidden`: `Forbidden: <detail>`.
pub(crate) fn forbidden(path: &Path, detail: &str) -> Cause {
    Cause::new(
        "FieldValueForbidden",
        path.as_str(),
        with_detail("Forbidden".to_string(), detail),
    )
}

/// `field.NotFound`: `Not found: <value>`.
pub(crate) fn not_found(path: &Path, value: impl Into<Bad>) -> Cause {
    Cause::new(
        "FieldValueNotFound",
        path.as_str(),
        format!("Not found: {}", value.into().render()),
    )
}

/// `field.TooLong`: `Too long: may not be more than <n> bytes`.
pub(crate) fn too_long(path: &Path, max: usize) -> Cause {
    Cause::new(
        "FieldValueTooLong",
        path.as_str(),
        format!("Too long: may not be more than {max} bytes"),
    )
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

/// Go's `strconv.Quote` (what `%q` prints).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `%#v` of a `map[string]string`; keys sorted as Go's fmt sorts them.
pub(crate) fn go_string_map(map: Option<&Map<String, Value>>) -> String {
    let Some(map) = map else {
        return "map[string]string(nil)".to_string();
    };
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let parts: Vec<String> = entries
        .iter()
        .map(|(k, v)| {
            format!(
                "{}:{}",
                go_quote(k),
                go_quote(v.as_str().unwrap_or_default())
            )
        })
        .collect();
    format!("map[string]string{{{}}}", parts.join(", "))
}

/// `%#v` of a `[]string`.
pub(crate) fn go_string_slice(items: Option<&[Value]>) -> String {
    let Some(items) = items else {
        return "[]string(nil)".to_string();
    };
    let parts: Vec<String> = items
        .iter()
        .map(|v| go_quote(v.as_str().unwrap_or_default()))
        .collect();
    format!("[]string{{{}}}", parts.join(", "))
}

/// `%#v` of a `[]string` built from Rust strings.
pub(crate) fn go_strings(items: &[String]) -> String {
    let parts: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[]string{{{}}}", parts.join(", "))
}

/// `%#v` of an `intstr.IntOrString` (its `String` method has a pointer receiver, so Go prints
/// the struct).
pub(crate) fn go_int_or_string(value: &Value) -> String {
    match value {
        Value::String(s) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            go_quote(s)
        ),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or_default()
        ),
    }
}

/// `%#v` of a `metav1.LabelSelector`.
pub(crate) fn go_label_selector(selector: &Value) -> String {
    let labels = go_string_map(selector.get("matchLabels").and_then(Value::as_object));
    let exprs = match selector.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let parts: Vec<String> = list
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(str_at(e, "key")),
                        go_quote(str_at(e, "operator")),
                        go_string_slice(
                            e.get("values").and_then(Value::as_array).map(Vec::as_slice)
                        )
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", parts.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

/// A string field, or "" when missing (Go's zero value).
pub(crate) fn str_at<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A list field, or an empty slice when missing.
pub(crate) fn list_at<'a>(obj: &'a Value, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// An integer field, if set.
pub(crate) fn int_at(obj: &Value, key: &str) -> Option<i64> {
    obj.get(key).and_then(Value::as_i64)
}

/// A field that is present and not null.
pub(crate) fn present<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_render_like_apimachinery() {
        let p = Path::new("spec")
            .child("containers")
            .index(0)
            .child("resources")
            .child("limits")
            .key("cpu");
        assert_eq!(p.as_str(), "spec.containers[0].resources.limits[cpu]");
        assert_eq!(Path::root().child("data").as_str(), "data");
    }

    #[test]
    fn messages_match_field_error_body() {
        let p = Path::new("spec").child("replicas");
        assert_eq!(
            invalid(&p, -1, "must be greater than or equal to 0").message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(required(&p, "").message, "Required value");
        assert_eq!(
            required(&p, "name or generateName is required").message,
            "Required value: name or generateName is required"
        );
        assert_eq!(
            not_supported(&p, "X", &["A", "B"]).message,
            "Unsupported value: \"X\": supported values: \"A\", \"B\""
        );
        assert_eq!(
            too_long(&Path::root(), 1048576).message,
            "Too long: may not be more than 1048576 bytes"
        );
    }

    #[test]
    fn go_values_render_like_fmt() {
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
        let labels = json!({"b": "2", "a": "1"});
        assert_eq!(
            go_string_map(labels.as_object()),
            "map[string]string{\"a\":\"1\", \"b\":\"2\"}"
        );
        assert_eq!(go_string_map(None), "map[string]string(nil)");
        assert_eq!(
            go_label_selector(&json!({"matchLabels": {"app": "x"}})),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(
            go_int_or_string(&json!(0)),
            "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}"
        );
    }
}
