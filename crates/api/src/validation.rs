//! Placeholder: this module is being written.
use crate::status::Cause;
use serde_json::Value;
pub fn validate(_group: &str, _kind: &str, _obj: &Value, _old: Option<&Value>, _namespaced: bool) -> Vec<Cause> {
    Vec::new()
}
