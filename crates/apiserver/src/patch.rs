//! PATCH: JSON patch (RFC 6902), JSON merge patch (RFC 7396), strategic merge patch and
//! server-side apply, each applied to the current object inside the registry's
//! read-modify-write loop so that concurrent writers never lose updates.

use std::sync::Arc;

use bytes::Bytes;
use maestro_api::patch_meta::{self, ListType, Shape};
use maestro_api::{ApiError, meta, strategic_merge};
use serde_json::Value;

use crate::registry::{Registry, Resource, WriteOptions, WriteResult};

const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// The 415 of a patch type the resource does not take.
fn unsupported_patch(res: Option<&Resource>) -> ApiError {
    let mut accepted = vec![JSON_PATCH, MERGE_PATCH, APPLY_PATCH];
    if res.is_none_or(|r| r.custom.is_none()) {
        accepted.push(STRATEGIC_MERGE_PATCH);
    }
    ApiError::unsupported_media_type(&accepted)
}

fn media(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError::new(422, "Invalid", message)
}

/// Apply a patch document of the given type to `current`. `res` is None for views that have no
/// schema of their own (the Scale subresource): strategic merge then behaves like merge patch.
pub fn apply_patch_document(
    res: Option<&Resource>,
    current: &Value,
    content_type: &str,
    body: &Bytes,
) -> Result<Value, ApiError> {
    let kind = media(content_type);
    match kind.as_str() {
        JSON_PATCH => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops)
                .map_err(|e| unprocessable(format!("the JSON patch could not be applied: {e}")))?;
            Ok(doc)
        }
        MERGE_PATCH => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding merge patch: {e}")))?;
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            let mut doc = current.clone();
            json_patch::merge(&mut doc, &patch);
            Ok(doc)
        }
        STRATEGIC_MERGE_PATCH => {
            // Custom resources have no patch metadata: kubectl falls back to merge patch on 415.
            if res.is_some_and(|r| r.custom.is_some()) {
                return Err(unsupported_patch(res));
            }
            let patch: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("error decoding strategic merge patch: {e}"))
            })?;
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            strategic_merge(res, current, &patch)
        }
        _ => Err(unsupported_patch(res)),
    }
}

/// Strategic merge of `patch` into `current` with the patch metadata of the resource's kind.
pub fn strategic_merge(
    res: Option<&Resource>,
    current: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    let root =
        res.and_then(|r| patch_meta::root_definition(&r.info.group, &r.info.version, &r.info.kind));
    Ok(strategic_merge::apply(current, patch, root)?)
}

/// The list merge keys of a resource's schema, for server-side apply.
pub fn list_keys_for(res: &Resource) -> impl Fn(&[String]) -> Option<Vec<String>> + use<> {
    let root = if res.custom.is_none() {
        patch_meta::root_definition(&res.info.group, &res.info.version, &res.info.kind)
    } else {
        None
    };
    move |path: &[String]| {
        let root = root?;
        let (last, parent) = path.split_last()?;
        let owner = if parent.is_empty() {
            root
        } else {
            let steps: Vec<&str> = parent.iter().map(String::as_str).collect();
            let mut shape = root.shape_at(&steps)?;
            while let Shape::Array(item) = shape {
                shape = item;
            }
            shape.definition()?
        };
        let meta = owner.field(last)?.meta();
        match meta.list_type {
            Some(ListType::Map(keys)) => Some(keys.iter().map(|k| k.to_string()).collect()),
            _ if meta.strategy.merges_lists() => meta.merge_key.map(|k| vec![k.to_string()]),
            _ => None,
        }
    }
}

/// PATCH an object (or its status).
#[allow(clippy::too_many_arguments)]
pub async fn patch(
    registry: &Arc<Registry>,
    res: &Arc<Resource>,
    namespace: Option<&str>,
    name: &str,
    content_type: &str,
    body: &Bytes,
    subresource: Option<&str>,
    opts: &WriteOptions,
    force: bool,
) -> Result<WriteResult, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the patch body is empty"));
    }
    if media(content_type) == APPLY_PATCH {
        return crate::apply::apply(
            registry,
            res,
            namespace,
            name,
            body,
            subresource,
            opts,
            force,
        )
        .await;
    }
    if force {
        return Err(crate::request::invalid_option(
            "PatchOptions",
            maestro_api::Cause::forbidden("force", "may not be specified for non-apply patch"),
        ));
    }
    // Reject unknown patch types before touching the object.
    let kind = media(content_type);
    if ![JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH].contains(&kind.as_str()) {
        return Err(unsupported_patch(Some(res)));
    }
    registry
        .read_modify_write(
            res,
            namespace,
            name,
            None,
            opts,
            |current| {
                let patched = apply_patch_document(Some(res), current, content_type, body)?;
                // A resourceVersion in the patch is a precondition.
                if let Some(rv) = meta::resource_version(&patched)
                    && Some(rv) != meta::resource_version(current)
                {
                    return Err(ApiError::conflict(&res.info.group, &res.info.plural, name));
                }
                Ok(patched)
            },
            subresource,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_merge_patches() {
        let current = json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "spec": {"replicas": 1}});
        let merged = apply_patch_document(
            None,
            &current,
            "application/merge-patch+json",
            &Bytes::from(r#"{"metadata":{"labels":{"x":null,"z":"3"}}}"#),
        )
        .unwrap();
        assert_eq!(merged["metadata"]["labels"], json!({"y": "2", "z": "3"}));
        let patched = apply_patch_document(
            None,
            &current,
            "application/json-patch+json",
            &Bytes::from(r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#),
        )
        .unwrap();
        assert_eq!(patched["spec"]["replicas"], 3);
        let failed = apply_patch_document(
            None,
            &current,
            "application/json-patch+json",
            &Bytes::from(r#"[{"op":"test","path":"/spec/replicas","value":9}]"#),
        )
        .unwrap_err();
        assert_eq!(failed.code, 422);
        let bad = apply_patch_document(
            None,
            &current,
            "application/json-patch+json",
            &Bytes::from("{"),
        )
        .unwrap_err();
        assert_eq!(bad.code, 400);
        let unsupported =
            apply_patch_document(None, &current, "text/plain", &Bytes::from("{}")).unwrap_err();
        assert_eq!(unsupported.code, 415);
    }
}
