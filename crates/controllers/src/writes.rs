//! The writes controllers make, with the error policy they share: an object that disappeared
//! meanwhile (404) or was replaced by another with the same name (409 on the uid precondition)
//! means the loop has nothing left to do; other failures are returned so the key is retried.

use maestro_api::meta;
use maestro_apiserver::Registry;
use maestro_apiserver::registry::{DeleteOptions, Propagation, Resource, WriteOptions};
use serde_json::{Value, json};

/// Read-modify-write one object (or its status) through the registry.
pub async fn edit(
    registry: &Registry,
    res: &Resource,
    namespace: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    change: impl Fn(&mut Value),
) -> Result<(), String> {
    edit_as(registry, res, namespace, name, subresource, None, change)
        .await
        .map(drop)
}

/// [`edit`] as a named field manager, returning the object as written (`None` when it is
/// gone), for loops that go on from their own write.
pub async fn edit_as(
    registry: &Registry,
    res: &Resource,
    namespace: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    manager: Option<&str>,
    change: impl Fn(&mut Value),
) -> Result<Option<Value>, String> {
    let result = registry
        .read_modify_write(
            res,
            namespace,
            name,
            None,
            &WriteOptions {
                field_manager: manager.map(String::from),
                ..Default::default()
            },
            |current| {
                let mut next = current.clone();
                change(&mut next);
                Ok(next)
            },
            subresource,
        )
        .await;
    match result {
        Ok(written) => Ok(Some(written.object)),
        Err(err) if err.code == 404 => Ok(None),
        Err(err) => Err(format!("{} {name}: {}", res.info.kind, err.message)),
    }
}

/// [`edit`] for a stored key, whatever its resource.
pub async fn edit_key(
    registry: &Registry,
    key: &str,
    change: impl Fn(&mut Value),
) -> Result<(), String> {
    let (Some(res), Some((obj, _))) = (registry.resource_for_key(key), registry.cache().get(key))
    else {
        return Ok(());
    };
    edit(
        registry,
        &res,
        obj.namespace.as_deref(),
        &obj.name,
        None,
        change,
    )
    .await
}

/// Remove one finalizer from a stored object (the registry deletes it when none is left).
pub async fn remove_finalizer(
    registry: &Registry,
    key: &str,
    finalizer: &str,
) -> Result<(), String> {
    edit_key(registry, key, |obj| {
        let remaining: Vec<String> = meta::finalizers(obj)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        let metadata = meta::metadata_mut(obj);
        if remaining.is_empty() {
            metadata.remove("finalizers");
        } else {
            metadata.insert("finalizers".into(), json!(remaining));
        }
    })
    .await
}

/// Delete the object with this uid (and no other that took its name).
pub async fn delete(
    registry: &Registry,
    res: &Resource,
    namespace: Option<&str>,
    name: &str,
    uid: &str,
    propagation: Option<Propagation>,
) -> Result<(), String> {
    let opts = DeleteOptions {
        propagation,
        precondition_uid: Some(uid.to_string()),
        ..Default::default()
    };
    match registry.delete(res, namespace, name, &opts).await {
        Ok(_) => Ok(()),
        Err(err) if err.code == 404 || err.code == 409 => Ok(()),
        Err(err) => Err(err.message),
    }
}
