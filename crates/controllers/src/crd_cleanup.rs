//! Deleting a CustomResourceDefinition deletes its custom objects first: the CRD carries the
//! `customresourcecleanup.apiextensions.k8s.io` finalizer until none is left.

use std::sync::Arc;
use std::time::Duration;

use maestro_api::{meta, resources};
use maestro_apiserver::Registry;
use maestro_apiserver::crd::CLEANUP_FINALIZER;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::Resource;
use maestro_store::CacheEvent;
use serde_json::{Value, json};

use crate::queue::{self, Reconciler};
use crate::writes;

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
                    writes::delete(
                        registry,
                        &res,
                        item.namespace.as_deref(),
                        &item.name,
                        &item.uid,
                        None,
                    )
                    .await?;
                }
            }
            if !items.is_empty() {
                // Retried shortly: the objects' own finalizers may still hold them.
                return Err(format!("{} custom objects remain", items.len()));
            }
            writes::remove_finalizer(registry, key, CLEANUP_FINALIZER).await
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
    writes::edit(registry, &crds(), None, name, Some("status"), |next| {
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
    })
    .await
}

/// Run the CRD cleanup controller.
pub async fn run(registry: Arc<Registry>) {
    let prefix = crds().info.storage_prefix();
    queue::run(registry, &prefix, CrdCleanup, Duration::from_secs(30)).await;
}
