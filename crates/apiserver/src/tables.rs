//! `meta.k8s.io/v1` Table answers: the printer columns of built-in kinds and the
//! `additionalPrinterColumns` of custom resources. Lists are rendered row by row, so a Table of
//! thousands of objects never holds them all parsed at once.

use maestro_api::table::{self, ColumnDefinition};
use serde_json::{Value, json};

use crate::registry::Resource;

/// What a row carries as its `object` (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowObject {
    None,
    /// A PartialObjectMetadata: kubectl reads namespace and labels from it (the default).
    Metadata,
    Object,
}

impl RowObject {
    pub fn from_query(value: Option<&str>) -> RowObject {
        match value {
            Some("None") => RowObject::None,
            Some("Object") => RowObject::Object,
            _ => RowObject::Metadata,
        }
    }
}

/// Rows of one resource's Table.
pub struct Rows<'a> {
    res: &'a Resource,
    columns: Vec<ColumnDefinition>,
    now: jiff::Timestamp,
    include: RowObject,
}

impl<'a> Rows<'a> {
    pub fn new(res: &'a Resource, include: RowObject) -> Self {
        let columns = match &res.custom {
            Some(custom) => table::custom_columns(&custom.printer_columns),
            None => table::columns(&res.info.group, &res.info.kind),
        };
        Rows {
            res,
            columns,
            now: jiff::Timestamp::now(),
            include,
        }
    }

    /// One row of an object in the served version.
    pub fn row(&self, obj: Value) -> Value {
        let cells = match &self.res.custom {
            Some(custom) => table::custom_cells(&custom.printer_columns, &obj, self.now),
            None => table::cells(&self.res.info.group, &self.res.info.kind, &obj, self.now),
        };
        let object = match self.include {
            RowObject::None => Value::Null,
            RowObject::Metadata => {
                // kubectl reads names, namespaces and labels from row objects; managed fields
                // would only make large Tables larger.
                let mut partial = table::partial_object_metadata(&obj);
                if let Some(m) = partial.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("managedFields");
                }
                partial
            }
            RowObject::Object => obj,
        };
        json!({"cells": cells, "object": object})
    }

    fn parts(&self, resource_version: &str, with_columns: bool) -> (Value, Value) {
        let columns: Vec<Value> = if with_columns {
            self.columns.iter().map(ColumnDefinition::to_json).collect()
        } else {
            Vec::new()
        };
        let metadata = if resource_version.is_empty() {
            json!({})
        } else {
            json!({"resourceVersion": resource_version})
        };
        (metadata, Value::Array(columns))
    }

    fn header(&self, resource_version: &str, with_columns: bool) -> Vec<u8> {
        let (metadata, columns) = self.parts(resource_version, with_columns);
        format!(
            "{{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{metadata},\"columnDefinitions\":{columns},\"rows\":["
        )
        .into_bytes()
    }

    /// A one-row Table as a value (watch events carry one per event).
    pub fn single(&self, resource_version: &str, with_columns: bool, obj: Value) -> Value {
        let (metadata, columns) = self.parts(resource_version, with_columns);
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
               "columnDefinitions": columns, "rows": [self.row(obj)]})
    }

    /// A whole Table, written row by row as `objects` yields them.
    pub fn render(
        &self,
        resource_version: &str,
        with_columns: bool,
        objects: impl Iterator<Item = Value>,
    ) -> Vec<u8> {
        let mut out = self.header(resource_version, with_columns);
        for (i, obj) in objects.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Serializing a Value into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, &self.row(obj));
        }
        out.extend_from_slice(b"]}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_api::resources;

    #[test]
    fn renders_rows_with_metadata_objects() {
        let res = Resource::builtin(resources::find_builtin("", "v1", "configmaps").unwrap());
        let rows = Rows::new(&res, RowObject::Metadata);
        let objects = (0..2).map(|i| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}"), "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"}, "data": {"a": "b"}})
        });
        let table: Value = serde_json::from_slice(&rows.render("7", true, objects)).unwrap();
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["metadata"]["resourceVersion"], "7");
        assert_eq!(table["columnDefinitions"][0]["name"], "Name");
        assert_eq!(table["rows"].as_array().unwrap().len(), 2);
        assert_eq!(table["rows"][1]["cells"][0], "c1");
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let without: Value =
            serde_json::from_slice(&rows.render("", false, std::iter::empty())).unwrap();
        assert_eq!(without["columnDefinitions"], json!([]));
    }
}
