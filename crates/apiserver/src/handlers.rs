//! The resource verbs over HTTP: get, list, watch, create, update, patch, delete and
//! deletecollection, plus the status, scale, finalize, eviction and binding subresources.
//! Content negotiation (JSON, YAML, protobuf bodies; JSON, YAML and Table answers) happens here;
//! the semantics live in the registry.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response};
use maestro_api::selector::LabelSelector;
use maestro_api::{ApiError, meta};
use serde_json::{Value, json};

use crate::registry::{DeleteOptions, Registry, Resource, WriteResult};
use crate::request::{Query, ResourcePath, Wanted, parse_propagation, wanted};
use crate::response::{Body, add_warnings, bytes_response, json_response, yaml_response};
use crate::{patch, tables, watch};

/// Largest request body accepted (Kubernetes' limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Decode a request body by its content type into JSON.
pub fn decode_body(content_type: Option<&str>, body: &Bytes) -> Result<Value, ApiError> {
    let media = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match media.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON body: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            serde_yaml::from_slice::<Value>(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML body: {e}")))
        }
        "application/vnd.kubernetes.protobuf" => maestro_api::protobuf::decode_body(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding protobuf body: {e}"))),
        _ => Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
        ])),
    }
}

/// Repeated keys of a JSON body, when the field validation mode cares about them.
fn body_duplicates(req: &Request<Bytes>, opts: &crate::registry::WriteOptions) -> Vec<String> {
    let json =
        header(req, "content-type").is_none_or(|ct| ct.trim().starts_with("application/json"));
    if json && opts.field_validation != crate::registry::FieldValidation::Ignore {
        crate::duplicates::duplicate_fields(req.body())
    } else {
        Vec::new()
    }
}

fn header<'a>(req: &'a Request<Bytes>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Render one object for the client: JSON, YAML, a one-row Table or its metadata.
fn render_object(res: &Resource, obj: &Value, how: Wanted, code: u16) -> Response<Body> {
    match how {
        Wanted::Table => {
            let rv = meta::resource_version(obj).unwrap_or_default().to_string();
            let rows = tables::Rows::new(res, tables::RowObject::Metadata);
            bytes_response(
                code,
                "application/json",
                rows.render(&rv, true, std::iter::once(obj.clone())),
            )
        }
        Wanted::PartialObjectMetadata | Wanted::PartialObjectMetadataList => {
            json_response(code, &maestro_api::table::partial_object_metadata(obj))
        }
        Wanted::Yaml => yaml_response(code, obj),
        Wanted::Json => json_response(code, obj),
    }
}

fn write_response(res: &Resource, result: WriteResult, how: Wanted, code: u16) -> Response<Body> {
    let mut resp = render_object(res, &result.object, how, code);
    add_warnings(&mut resp, &result.warnings);
    resp
}

/// Serve a request on a resource path.
pub async fn serve(
    state: &crate::server::ApiState,
    req: Request<Bytes>,
    path: ResourcePath,
) -> Result<Response<Body>, ApiError> {
    let registry = &state.registry;
    let query = Query::parse(req.uri().query());
    let Some(res) = registry
        .resolve_fresh(&path.group, &path.version, &path.resource)
        .await
    else {
        return Err(ApiError::path_not_found());
    };
    if !res.info.namespaced() && path.namespace.is_some() {
        return Err(ApiError::path_not_found());
    }
    let how = wanted(header(&req, "accept"));
    let ns = path.namespace.as_deref();
    let method = req.method().clone();
    let sub = path.subresource.as_deref();
    if let Some(sub) = sub
        && !res.info.has_subresource(sub)
    {
        return Err(ApiError::path_not_found());
    }
    if res.info.namespaced() && path.name.is_some() && ns.is_none() {
        return Err(ApiError::path_not_found());
    }
    match (method, path.name.as_deref(), sub) {
        (Method::GET, None, None) => {
            if query.flag("watch") || path.watch_prefix {
                watch::serve(registry.clone(), res, ns.map(str::to_string), &query, how).await
            } else {
                list(registry, &res, ns, &query, how).await
            }
        }
        (Method::GET, Some(name), None | Some("status")) => {
            if query.flag("watch") || path.watch_prefix {
                let mut q = query.clone();
                q.params
                    .insert("fieldSelector".into(), format!("metadata.name={name}"));
                return watch::serve(registry.clone(), res, ns.map(str::to_string), &q, how).await;
            }
            let obj = registry.get(&res, ns, name).await?;
            Ok(render_object(&res, &obj, how, 200))
        }
        (Method::POST, None, None) => {
            let mut opts = query.write_options("CreateOptions")?;
            let body = decode_body(header(&req, "content-type"), req.body())?;
            opts.duplicate_fields = body_duplicates(&req, &opts);
            let result = registry.create(&res, ns, body, &opts).await?;
            let code = if opts.dry_run { 200 } else { 201 };
            Ok(write_response(&res, result, how, code))
        }
        (Method::PUT, Some(name), None | Some("status")) => {
            let mut opts = query.write_options("UpdateOptions")?;
            let body = decode_body(header(&req, "content-type"), req.body())?;
            opts.duplicate_fields = body_duplicates(&req, &opts);
            let result = registry.update(&res, ns, name, body, sub, &opts).await?;
            Ok(write_response(&res, result, how, 200))
        }
        (Method::PATCH, Some(name), None | Some("status")) => {
            let opts = query.write_options("PatchOptions")?;
            let content_type = header(&req, "content-type").unwrap_or_default().to_string();
            let force = query.flag("force");
            let result = patch::patch(
                registry,
                &res,
                ns,
                name,
                &content_type,
                req.body(),
                sub,
                &opts,
                force,
            )
            .await?;
            let code = if result.created { 201 } else { 200 };
            Ok(write_response(&res, result, how, code))
        }
        (Method::DELETE, Some(name), None) => {
            let opts = delete_options(&query, req.body())?;
            let deleted = registry.delete(&res, ns, name, &opts).await?;
            let how = if how == Wanted::Table {
                Wanted::Json
            } else {
                how
            };
            if deleted.removed && !returns_deleted_object(&res) {
                return Ok(json_response(200, &deleted_status(&res, &deleted.object)));
            }
            Ok(render_object(&res, &deleted.object, how, 200))
        }
        (Method::DELETE, None, None) => {
            let opts = delete_options(&query, req.body())?;
            let list_opts = query.list_options()?;
            let deleted = registry
                .delete_collection(&res, ns, &list_opts, &opts)
                .await?;
            let rv = registry.cache().revision().to_string();
            Ok(json_response(
                200,
                &json!({
                    "kind": res.info.list_kind(),
                    "apiVersion": res.info.api_version(),
                    "metadata": {"resourceVersion": rv},
                    "items": deleted.into_iter().map(|d| d.object).collect::<Vec<_>>(),
                }),
            ))
        }
        (Method::GET | Method::PUT | Method::PATCH, Some(name), Some("scale")) => {
            scale(registry, &res, ns, name, &req, &query).await
        }
        (Method::PUT, Some(name), Some("finalize")) => {
            let opts = query.write_options("UpdateOptions")?;
            let body = decode_body(header(&req, "content-type"), req.body())?;
            let finalizers = body
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            let result = registry
                .read_modify_write(
                    &res,
                    ns,
                    name,
                    None,
                    &opts,
                    |current| {
                        let mut next = current.clone();
                        next["spec"]["finalizers"] = finalizers.clone();
                        Ok(next)
                    },
                    None,
                )
                .await?;
            Ok(write_response(&res, result, how, 200))
        }
        (Method::POST, Some(name), Some("eviction")) => {
            let body = decode_body(header(&req, "content-type"), req.body())?;
            let mut opts = DeleteOptions::default();
            if let Some(delete) = body.get("deleteOptions") {
                apply_delete_body(&mut opts, delete)?;
            }
            opts.dry_run = opts.dry_run || query.dry_run("DeleteOptions")?;
            crate::eviction::evict(registry, &res, ns.unwrap_or("default"), name, &opts).await?;
            Ok(json_response(
                201,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        (Method::GET, Some(name), Some("log")) if res.info.kind == "Pod" => {
            crate::node_proxy::logs(
                registry,
                &state.signer,
                ns.unwrap_or("default"),
                name,
                req.uri().query(),
            )
            .await
        }
        (
            Method::GET | Method::POST,
            Some(name),
            Some(sub @ ("exec" | "attach" | "portforward")),
        ) if res.info.kind == "Pod" => {
            crate::node_proxy::upgrade(
                registry,
                &state.signer,
                ns.unwrap_or("default"),
                name,
                sub,
                req,
            )
            .await
        }
        (Method::POST, Some(name), Some("token")) => {
            let body = decode_body(header(&req, "content-type"), req.body())?;
            let response =
                crate::tokens::token_request(registry, &state.signer, ns, name, &body).await?;
            Ok(json_response(201, &response))
        }
        (Method::POST, Some(name), Some("binding")) => {
            let body = decode_body(header(&req, "content-type"), req.body())?;
            let node = body
                .pointer("/target/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if node.is_empty() {
                return Err(ApiError::invalid(
                    "",
                    "Binding",
                    name,
                    vec![maestro_api::Cause::required("target.name")],
                ));
            }
            let opts = query.write_options("CreateOptions")?;
            registry
                .read_modify_write(
                    &res,
                    ns,
                    name,
                    None,
                    &opts,
                    |current| {
                        let bound = current
                            .pointer("/spec/nodeName")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if !bound.is_empty() {
                            return Err(ApiError::conflict_with(
                                "",
                                "pods",
                                name,
                                &format!("pod {name} is already assigned to node \"{bound}\""),
                            ));
                        }
                        let mut next = current.clone();
                        next["spec"]["nodeName"] = json!(node);
                        Ok(next)
                    },
                    Some("binding"),
                )
                .await?;
            Ok(json_response(
                201,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        (_, _, Some(other)) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({other})"
        ))),
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// Kinds whose DELETE answers with the object itself, as their Kubernetes registries do; the
/// others answer with a success Status once the object is gone.
fn returns_deleted_object(res: &Resource) -> bool {
    res.custom.is_some()
        || (res.info.group.is_empty() && matches!(res.info.kind.as_str(), "Pod" | "Service"))
}

/// The success Status of a completed delete.
fn deleted_status(res: &Resource, obj: &Value) -> Value {
    let mut details = json!({"name": meta::name(obj), "kind": res.info.plural});
    if !res.info.group.is_empty() {
        details["group"] = json!(res.info.group);
    }
    if let Some(uid) = meta::uid(obj) {
        details["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn delete_options(query: &Query, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let mut opts = query.delete_options()?;
    if !body.is_empty() {
        let value: Value = serde_json::from_slice(body)
            .or_else(|_| serde_yaml::from_slice(body))
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
        apply_delete_body(&mut opts, &value)?;
    }
    Ok(opts)
}

fn apply_delete_body(opts: &mut DeleteOptions, value: &Value) -> Result<(), ApiError> {
    if let Some(p) = value.get("propagationPolicy").and_then(Value::as_str) {
        opts.propagation = Some(parse_propagation(p)?);
    }
    if let Some(orphan) = value.get("orphanDependents").and_then(Value::as_bool) {
        opts.propagation = Some(if orphan {
            crate::registry::Propagation::Orphan
        } else {
            crate::registry::Propagation::Background
        });
    }
    if let Some(g) = value.get("gracePeriodSeconds").and_then(Value::as_i64) {
        opts.grace_period_seconds = Some(g);
    }
    if let Some(uid) = value.pointer("/preconditions/uid").and_then(Value::as_str) {
        opts.precondition_uid = Some(uid.to_string());
    }
    if let Some(rv) = value
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
    {
        opts.precondition_resource_version = Some(rv.to_string());
    }
    if let Some(dry) = value.get("dryRun").and_then(Value::as_array)
        && dry.iter().any(|d| d == "All")
    {
        opts.dry_run = true;
    }
    Ok(())
}

async fn list(
    registry: &Arc<Registry>,
    res: &Arc<Resource>,
    ns: Option<&str>,
    query: &Query,
    how: Wanted,
) -> Result<Response<Body>, ApiError> {
    let opts = query.list_options()?;
    if query.flag("sendInitialEvents") {
        return Err(ApiError::bad_request(
            "sendInitialEvents is only supported on watch requests",
        ));
    }
    let (items, revision) = registry.list(res, ns, &opts).await?;
    let rv = revision.to_string();
    match how {
        Wanted::Table => {
            let rows = tables::Rows::new(
                res,
                tables::RowObject::from_query(query.get("includeObject")),
            );
            // Objects are parsed one row at a time: a Table of thousands stays small in memory.
            let body = rows.render(&rv, true, items.iter().map(|o| registry.present(res, o)));
            Ok(bytes_response(200, "application/json", body))
        }
        Wanted::PartialObjectMetadata | Wanted::PartialObjectMetadataList => {
            let items: Vec<Value> = items
                .iter()
                .map(|o| maestro_api::table::partial_object_metadata(&o.value()))
                .collect();
            Ok(json_response(
                200,
                &json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                }),
            ))
        }
        Wanted::Yaml => {
            let items: Vec<Value> = items.iter().map(|o| registry.present(res, o)).collect();
            Ok(yaml_response(
                200,
                &json!({
                    "kind": res.info.list_kind(),
                    "apiVersion": res.info.api_version(),
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                }),
            ))
        }
        Wanted::Json => {
            // Stored objects are already JSON: splice them into the list without re-encoding
            // when no conversion is needed.
            let convert = res.storage_api_version() != res.info.api_version();
            let mut out =
                Vec::with_capacity(items.iter().map(|o| o.json.len() + 1).sum::<usize>() + 128);
            out.extend_from_slice(
                format!(
                    "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{{\"resourceVersion\":\"{rv}\"}},\"items\":[",
                    json!(res.info.list_kind()),
                    json!(res.info.api_version())
                )
                .as_bytes(),
            );
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if convert {
                    out.extend_from_slice(
                        &serde_json::to_vec(&registry.present(res, item)).unwrap_or_default(),
                    );
                } else {
                    out.extend_from_slice(&item.json);
                }
            }
            out.extend_from_slice(b"]}");
            Ok(crate::response::bytes_response(
                200,
                "application/json",
                out,
            ))
        }
    }
}

/// The `autoscaling/v1` Scale view of an object with replicas.
fn scale_of(res: &Resource, obj: &Value) -> Result<Value, ApiError> {
    let paths = res
        .info
        .scale
        .as_ref()
        .ok_or_else(ApiError::path_not_found)?;
    let spec_replicas = meta::get_path(obj, &paths.spec_replicas)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status_replicas = meta::get_path(obj, &paths.status_replicas)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = match &paths.label_selector {
        Some(path) => meta::get_path(obj, path)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        None => obj
            .pointer("/spec/selector")
            .map(|s| {
                LabelSelector::from_object(s)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            })
            .unwrap_or_default(),
    };
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut metadata = json!({});
    for field in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(field) {
            metadata[field] = v.clone();
        }
    }
    let mut status = json!({"replicas": status_replicas});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": spec_replicas},
        "status": status,
    }))
}

async fn scale(
    registry: &Arc<Registry>,
    res: &Arc<Resource>,
    ns: Option<&str>,
    name: &str,
    req: &Request<Bytes>,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    if req.method() == Method::GET {
        let obj = registry.get(res, ns, name).await?;
        return Ok(json_response(200, &scale_of(res, &obj)?));
    }
    let opts = query.write_options(if req.method() == Method::PUT {
        "UpdateOptions"
    } else {
        "PatchOptions"
    })?;
    let paths = res
        .info
        .scale
        .clone()
        .ok_or_else(ApiError::path_not_found)?;
    let content_type = header(req, "content-type")
        .unwrap_or("application/json")
        .to_string();
    let is_put = req.method() == Method::PUT;
    let body = req.body().clone();
    let result = registry
        .read_modify_write(
            res,
            ns,
            name,
            None,
            &opts,
            |current| {
                let current_scale = scale_of(res, current)?;
                let new_scale = if is_put {
                    decode_body(Some(&content_type), &body)?
                } else {
                    patch::apply_patch_document(None, &current_scale, &content_type, &body)?
                };
                if let Some(rv) = meta::resource_version(&new_scale)
                    && Some(rv) != meta::resource_version(current)
                {
                    return Err(ApiError::conflict(&res.info.group, &res.info.plural, name));
                }
                let replicas = new_scale
                    .pointer("/spec/replicas")
                    .cloned()
                    .unwrap_or(json!(0));
                if replicas.as_i64().is_none_or(|r| r < 0) {
                    return Err(ApiError::invalid(
                        "autoscaling",
                        "Scale",
                        name,
                        vec![maestro_api::Cause::invalid(
                            "spec.replicas",
                            &replicas,
                            "must be greater than or equal to 0",
                        )],
                    ));
                }
                let mut next = current.clone();
                meta::set_path(&mut next, &paths.spec_replicas, replicas);
                Ok(next)
            },
            None,
        )
        .await?;
    let mut resp = json_response(200, &scale_of(res, &result.object)?);
    add_warnings(&mut resp, &result.warnings);
    Ok(resp)
}
