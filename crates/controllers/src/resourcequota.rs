//! ResourceQuota status: `status.hard` mirrors the spec and `status.used` the namespace's usage
//! of each limited resource (counted as the admission check counts it,
//! `maestro_apiserver::quota`), kept current as objects in the namespace come and go, so that
//! `kubectl describe quota` shows what is left.

use std::sync::Arc;
use std::time::Duration;

use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::quota;
use maestro_apiserver::registry::Resource;
use maestro_store::{CacheEvent, CacheEventKind};
use serde_json::{Map, Value, json};

use crate::objects::resource;
use crate::queue::{self, Reconciler};

struct Quotas {
    quotas: Arc<Resource>,
    cache: Arc<maestro_store::WatchCache<StoredObject>>,
}

impl Reconciler for Quotas {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        if event.key.starts_with(&self.quotas.info.storage_prefix()) {
            return if event.kind == CacheEventKind::Deleted {
                vec![]
            } else {
                vec![event.key.clone()]
            };
        }
        // Anything created, changed or deleted in a namespace with quotas may change usage.
        let Some(namespace) = event.object.namespace.as_deref() else {
            return vec![];
        };
        let prefix = self.quotas.info.namespace_prefix(Some(namespace));
        if self.cache.count(&prefix) == 0 {
            return vec![];
        }
        self.cache
            .list(&prefix)
            .0
            .iter()
            .map(|q| q.key.clone())
            .collect()
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        queue::all_keys(registry, &self.quotas)
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
            let value = stored.value();
            let namespace = stored.namespace.clone().unwrap_or_default();
            let hard = value["spec"]["hard"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let used: Map<String, Value> = quota::usage(registry.cache(), &namespace, &hard)
                .into_iter()
                .map(|(name, amount)| {
                    let text = quota::format_amount(&name, amount);
                    (name, json!(text))
                })
                .collect();
            let status = json!({"hard": hard, "used": used});
            if value["status"] == status {
                return Ok(());
            }
            crate::writes::edit(
                registry,
                &self.quotas,
                Some(&namespace),
                &stored.name,
                Some("status"),
                |next| next["status"] = status.clone(),
            )
            .await
        })
    }
}

/// Run the ResourceQuota status controller.
pub async fn run(registry: Arc<Registry>) {
    let controller = Quotas {
        quotas: resource("resourcequotas", ""),
        cache: registry.cache().clone(),
    };
    queue::run(registry, "/registry/", controller, Duration::from_secs(30)).await;
}
