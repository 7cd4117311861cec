//! `meta.k8s.io/v1` Table answers: the printer columns of built-in kinds and the
//! `additionalPrinterColumns` of custom resources.

use maestro_api::table;
use serde_json::{Value, json};

use crate::registry::Resource;

/// A Table of `objects` (already in the served version). Rows carry PartialObjectMetadata when
/// `include_object` is set (kubectl reads namespace and labels from it).
pub fn render(
    res: &Resource,
    objects: &[Value],
    resource_version: &str,
    include_object: bool,
) -> Value {
    let now = jiff::Timestamp::now();
    let (columns, rows): (Vec<table::ColumnDefinition>, Vec<(Vec<Value>, Value)>) =
        match &res.custom {
            Some(custom) => (
                table::custom_columns(&custom.printer_columns),
                objects
                    .iter()
                    .map(|o| {
                        (
                            table::custom_cells(&custom.printer_columns, o, now),
                            row_object(o, include_object),
                        )
                    })
                    .collect(),
            ),
            None => (
                table::columns(&res.info.group, &res.info.kind),
                objects
                    .iter()
                    .map(|o| {
                        (
                            table::cells(&res.info.group, &res.info.kind, o, now),
                            row_object(o, include_object),
                        )
                    })
                    .collect(),
            ),
        };
    table::table(columns, rows, resource_version)
}

fn row_object(obj: &Value, include: bool) -> Value {
    if include {
        table::partial_object_metadata(obj)
    } else {
        json!(null)
    }
}
