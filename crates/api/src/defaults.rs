//! Placeholder: this module is being written.
use serde_json::Value;
pub fn apply_defaults(_group: &str, _kind: &str, _obj: &mut Value) {}
