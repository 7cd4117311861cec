//! Placeholder: this module is being written.
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize)]
pub struct ColumnDefinition {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
}

pub fn columns(_group: &str, _kind: &str) -> Vec<ColumnDefinition> {
    vec![ColumnDefinition { name: "Name".into(), type_: "string".into(), format: "name".into(), description: String::new(), priority: 0 }]
}
pub fn cells(_group: &str, _kind: &str, obj: &Value, _now: jiff::Timestamp) -> Vec<Value> {
    vec![obj["metadata"]["name"].clone()]
}
pub fn custom_columns(_cols: &[Value]) -> Vec<ColumnDefinition> {
    columns("", "")
}
pub fn custom_cells(_cols: &[Value], obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    cells("", "", obj, now)
}
pub fn partial_object_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}
pub fn table(columns: Vec<ColumnDefinition>, rows: Vec<(Vec<Value>, Value)>, resource_version: &str) -> Value {
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows.into_iter().map(|(cells, object)| json!({"cells": cells, "object": object})).collect::<Vec<_>>()})
}
