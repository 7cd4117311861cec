//! OpenAPI v3, generated from the k8s-openapi types (never copied from a spec file): the
//! `/openapi/v3` index and one document per group-version, with the paths and operations
//! kubectl inspects (the PATCH operation's `x-kubernetes-group-version-kind` and its
//! `fieldValidation` parameter turn on server-side validation) and component schemas carrying
//! the patch-merge extensions that client-side apply and `kubectl explain` use.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::registry::Resource;

/// Cached documents, keyed by group-version path and a hash of what they describe.
#[derive(Default)]
pub struct OpenApiCache {
    docs: Mutex<HashMap<String, (u64, Bytes)>>,
}

impl std::fmt::Debug for OpenApiCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApiCache").finish_non_exhaustive()
    }
}

/// `api/v1` or `apis/apps/v1`
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// FNV-1a: a stable hash of what a document describes (kubectl caches documents by it).
fn fnv(data: &[u8], mut hash: u64) -> u64 {
    for b in data {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    hash
}

fn gv_hash(all: &[Arc<Resource>], group: &str, version: &str) -> u64 {
    let mut hash = fnv(env!("CARGO_PKG_VERSION").as_bytes(), 0xcbf29ce484222325);
    for r in all
        .iter()
        .filter(|r| r.info.group == group && r.info.version == version)
    {
        hash = fnv(format!("{:?}", r.info).as_bytes(), hash);
        if let Some(custom) = &r.custom {
            hash = fnv(
                custom
                    .schema
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default()
                    .as_bytes(),
                hash,
            );
        }
    }
    hash
}

/// The `/openapi/v3` index.
pub fn index(all: &[Arc<Resource>]) -> Value {
    let mut paths = Map::new();
    let mut seen = Vec::new();
    for r in all {
        let key = (r.info.group.clone(), r.info.version.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let path = gv_path(&r.info.group, &r.info.version);
        let hash = gv_hash(all, &r.info.group, &r.info.version);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash:016X}")}),
        );
    }
    json!({"paths": paths})
}

impl OpenApiCache {
    /// The document for `api/v1` or `apis/{group}/{version}`, built once per content.
    pub fn document(&self, all: &[Arc<Resource>], gv: &str) -> Option<Bytes> {
        let (group, version) = match gv
            .trim_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .as_slice()
        {
            ["api", v] => (String::new(), v.to_string()),
            ["apis", g, v] => (g.to_string(), v.to_string()),
            _ => return None,
        };
        let hash = gv_hash(all, &group, &version);
        if let Some((h, bytes)) = self.docs.lock().get(gv)
            && *h == hash
        {
            return Some(bytes.clone());
        }
        let doc = build_document(all, &group, &version)?;
        let bytes = Bytes::from(serde_json::to_vec(&doc).ok()?);
        self.docs
            .lock()
            .insert(gv.to_string(), (hash, bytes.clone()));
        Some(bytes)
    }
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(
    action: &str,
    op_id: String,
    gvk: &Value,
    response: &Value,
    extra_params: Vec<Value>,
    body: Option<Value>,
) -> Value {
    let mut op = json!({
        "operationId": op_id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": response}}}},
    });
    if !extra_params.is_empty() {
        op["parameters"] = Value::Array(extra_params);
    }
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

fn write_params(with_force: bool) -> Vec<Value> {
    let mut params = vec![
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted. Valid values: All",
        ),
        query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values: Ignore, Warn, Strict.",
        ),
    ];
    if with_force {
        params.push(json!({"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.", "schema": {"type": "boolean", "uniqueItems": true}}));
    }
    params
}

fn build_document(all: &[Arc<Resource>], group: &str, version: &str) -> Option<Value> {
    let members: Vec<&Arc<Resource>> = all
        .iter()
        .filter(|r| r.info.group == group && r.info.version == version)
        .collect();
    if members.is_empty() {
        return None;
    }
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut roots: Vec<(String, &Arc<Resource>)> = Vec::new();
    let mut custom_schemas: Vec<(String, Value)> = Vec::new();
    for r in &members {
        match &r.custom {
            None => {
                maestro_api::codec::schema_for(
                    &r.info.group,
                    &r.info.version,
                    &r.info.kind,
                    &mut generator,
                )?;
                let name = maestro_api::codec::definition_name(
                    &r.info.group,
                    &r.info.version,
                    &r.info.kind,
                )?;
                roots.push((name, r));
            }
            Some(custom) => {
                let reversed: Vec<&str> = r.info.group.split('.').rev().collect();
                let name = format!("{}.{}.{}", reversed.join("."), r.info.version, r.info.kind);
                let mut schema = custom.schema.clone().unwrap_or(
                    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                );
                if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
                    props.insert(
                        "metadata".into(),
                        schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
                    );
                    props
                        .entry("apiVersion")
                        .or_insert(json!({"type": "string"}));
                    props.entry("kind").or_insert(json!({"type": "string"}));
                }
                custom_schemas.push((name.clone(), schema));
                roots.push((name, r));
            }
        }
    }
    // Types every document refers to.
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
    generator.subschema_for::<k8s_openapi::api::autoscaling::v1::Scale>();
    let mut schemas = generator.take_definitions(true);
    for (name, schema) in custom_schemas {
        schemas.insert(name, schema);
    }
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
    );
    for (name, r) in &roots {
        if let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": r.info.group, "version": r.info.version, "kind": r.info.kind}]),
            );
        }
    }
    maestro_api::patch_meta::annotate_definitions(&mut schemas);
    let mut paths = Map::new();
    for (def_name, r) in &roots {
        let info = &r.info;
        let gvk = json!({"group": info.group, "version": info.version, "kind": info.kind});
        let obj_ref = schema_ref(def_name);
        let list_ref = json!({"type": "object"});
        let base = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let kind = &info.kind;
        let scope = if info.namespaced() { "Namespaced" } else { "" };
        let (collection, item) = if info.namespaced() {
            (
                format!("{base}/namespaces/{{namespace}}/{}", info.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", info.plural),
            )
        } else {
            (
                format!("{base}/{}", info.plural),
                format!("{base}/{}/{{name}}", info.plural),
            )
        };
        let mut patch_types = Map::new();
        let mut types = vec![
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        ];
        if r.custom.is_none() {
            types.push("application/strategic-merge-patch+json");
        }
        for t in types {
            patch_types.insert(
                t.into(),
                json!({"schema": schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Patch")}),
            );
        }
        let patch_body = json!({"content": patch_types, "required": true});
        let object_body = json!({"content": {"*/*": {"schema": obj_ref}}, "required": true});
        let name_param = json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}});
        let ns_param = json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}});
        let mut path_params = vec![];
        if info.namespaced() {
            path_params.push(ns_param.clone());
        }
        paths.insert(collection, json!({
            "get": operation("list", format!("list{scope}{kind}"), &gvk, &list_ref, vec![], None),
            "post": operation("post", format!("create{scope}{kind}"), &gvk, &obj_ref, write_params(false), Some(object_body.clone())),
            "delete": operation("deletecollection", format!("deleteCollection{scope}{kind}"), &gvk, &schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status"), vec![], None),
            "parameters": path_params,
        }));
        let mut item_params = vec![name_param.clone()];
        if info.namespaced() {
            item_params.push(ns_param.clone());
        }
        paths.insert(item.clone(), json!({
            "get": operation("get", format!("read{scope}{kind}"), &gvk, &obj_ref, vec![], None),
            "put": operation("put", format!("replace{scope}{kind}"), &gvk, &obj_ref, write_params(false), Some(object_body.clone())),
            "patch": operation("patch", format!("patch{scope}{kind}"), &gvk, &obj_ref, write_params(true), Some(patch_body.clone())),
            "delete": operation("delete", format!("delete{scope}{kind}"), &gvk, &obj_ref, vec![], None),
            "parameters": item_params.clone(),
        }));
        if info.status_subresource {
            paths.insert(format!("{item}/status"), json!({
                "get": operation("get", format!("read{scope}{kind}Status"), &gvk, &obj_ref, vec![], None),
                "put": operation("put", format!("replace{scope}{kind}Status"), &gvk, &obj_ref, write_params(false), Some(object_body.clone())),
                "patch": operation("patch", format!("patch{scope}{kind}Status"), &gvk, &obj_ref, write_params(true), Some(patch_body.clone())),
                "parameters": item_params.clone(),
            }));
        }
        if info.scale.is_some() {
            let scale_gvk = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
            let scale_ref = schema_ref("io.k8s.api.autoscaling.v1.Scale");
            paths.insert(format!("{item}/scale"), json!({
                "get": operation("get", format!("read{scope}{kind}Scale"), &scale_gvk, &scale_ref, vec![], None),
                "put": operation("put", format!("replace{scope}{kind}Scale"), &scale_gvk, &scale_ref, write_params(false), Some(json!({"content": {"*/*": {"schema": scale_ref}}, "required": true}))),
                "patch": operation("patch", format!("patch{scope}{kind}Scale"), &scale_gvk, &scale_ref, write_params(true), Some(patch_body.clone())),
                "parameters": item_params.clone(),
            }));
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::version::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_document_has_patch_operation_with_field_validation() {
        let all = crate::discovery::all_resources(&[]);
        let doc = build_document(&all, "", "v1").unwrap();
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "ConfigMap"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let cm = &doc["components"]["schemas"]["io.k8s.api.core.v1.ConfigMap"];
        assert_eq!(
            cm["x-kubernetes-group-version-kind"][0]["kind"],
            "ConfigMap"
        );
        let idx = index(&all);
        assert!(
            idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
    }
}
