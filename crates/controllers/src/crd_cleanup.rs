//! Deleting a CustomResourceDefinition deletes its custom objects first: the CRD carries the
//! `customresourcecleanup.apiextensions.k8s.io` finalizer until none is left.

use std::sync::Arc;
use std::time::Duration;

use maestro_api::{meta, resources};
use maestro_apiserver::Registry;
use maestro_apiserver::crd::CLEANUP_FINALIZER;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::{DeleteOptions, Resource, WriteOptions};
use maestro_store::CacheEvent;
use serde_json::{Value, json};

use crate::queue::{self, Reconciler};

struct CrdCleanup;

fn crds() -> Arc<Resource> {
    Resource::builtin(
        resources::find_builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .expect("built in"),
    )
}

impl Reconciler for CrdCleanup {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        vec![event.key.clone()]
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        registry
            .cache()
            .list(&crds().info.storage_prefix())
            .0
            .iter()
            .map(|o| o.key.clone())
            .collect()
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some((stored, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            let crd = stored.value();
            if !stored.deleting || !stored.finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
                return Ok(());
            }
            mark_terminating(registry, &stored.name, &crd).await?;
            let group = crd
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = crd
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let prefix = format!("/registry/{group}/{plural}/");
            let (items, _) = registry.cache().list(&prefix);
            if let Some(res) = registry.custom_resources().find_storage(group, plural) {
                for item in &items {
                    let opts = DeleteOptions {
                        precondition_uid: Some(item.uid.clone()),
                        ..Default::default()
                    };
                    match registry
                        .delete(&res, item.namespace.as_deref(), &item.name, &opts)
                        .await
                    {
                        Ok(_) => {}
                        Err(err) if err.code == 404 || err.code == 409 => {}
                        Err(err) => return Err(err.message),
                    }
                }
            }
            if !items.is_empty() {
                // Retried shortly: the objects' own finalizers may still hold them.
                return Err(format!("{} custom objects remain", items.len()));
            }
            let result = registry
                .read_modify_write(
                    &crds(),
                    None,
                    &stored.name,
                    None,
                    &WriteOptions::default(),
                    |current| {
                        let mut next = current.clone();
                        let remaining: Vec<String> = meta::finalizers(current)
                            .into_iter()
                            .filter(|f| f != CLEANUP_FINALIZER)
                            .collect();
                        meta::metadata_mut(&mut next).insert("finalizers".into(), json!(remaining));
                        if remaining.is_empty() {
                            meta::metadata_mut(&mut next).remove("finalizers");
                        }
                        Ok(next)
                    },
                    None,
                )
                .await;
            match result {
                Ok(_) => Ok(()),
                Err(err) if err.code == 404 => Ok(()),
                Err(err) => Err(err.message),
            }
        })
    }
}

/// Report the deletion on the CRD, as Kubernetes does with a `Terminating` condition.
async fn mark_terminating(registry: &Registry, name: &str, crd: &Value) -> Result<(), String> {
    let already = crd
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Terminating" && c["status"] == "True")
        });
    if already {
        return Ok(());
    }
    let condition = json!({
        "type": "Terminating",
        "status": "True",
        "reason": "InstanceDeletionInProgress",
        "message": "CustomResource deletion is in progress",
        "lastTransitionTime": meta::format_time(jiff::Timestamp::now()),
    });
    let result = registry
        .read_modify_write(
            &crds(),
            None,
            name,
            None,
            &WriteOptions::default(),
            |current| {
                let mut next = current.clone();
                let conditions = next["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut conditions: Vec<Value> = conditions
                    .into_iter()
                    .filter(|c| c["type"] != "Terminating")
                    .collect();
                conditions.push(condition.clone());
                next["status"]["conditions"] = json!(conditions);
                Ok(next)
            },
            Some("status"),
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.code == 404 => Ok(()),
        Err(err) => Err(err.message),
    }
}

/// Run the CRD cleanup controller.
pub async fn run(registry: Arc<Registry>) {
    let prefix = crds().info.storage_prefix();
    queue::run(registry, &prefix, CrdCleanup, Duration::from_secs(30)).await;
}
