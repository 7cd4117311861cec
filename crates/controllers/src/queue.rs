//! The loop every controller here shares: follow the watch cache under a prefix, collect the
//! keys that need attention, reconcile them in batches, retry failures after a delay, and
//! resync everything periodically.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_store::CacheEvent;

/// Delay before keys that failed are tried again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What a controller does with events and keys.
pub trait Reconciler: Send + 'static {
    /// Keys to reconcile because of this event.
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String>;
    /// Keys to reconcile on a periodic resync.
    fn resync_keys(&mut self, registry: &Registry) -> Vec<String>;
    /// Converge one key. Errors requeue it.
    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

/// Run `reconciler` over events under `prefix` forever.
pub async fn run(
    registry: Arc<Registry>,
    prefix: &str,
    mut reconciler: impl Reconciler,
    resync: Duration,
) {
    let mut dirty: BTreeSet<String> = BTreeSet::new();
    let mut ticker = tokio::time::interval(resync);
    let mut retry = tokio::time::interval(RETRY_DELAY);
    loop {
        let mut watch = match registry.cache().watch(prefix, None) {
            Ok(w) => w,
            Err(err) => {
                tracing::warn!(%err, prefix, "controller cannot watch");
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                event = watch.next() => match event {
                    Ok(event) => {
                        dirty.extend(reconciler.keys_for(&event));
                        // Take whatever else is already queued before reconciling.
                        while watch.has_pending() {
                            match watch.next().await {
                                Ok(event) => dirty.extend(reconciler.keys_for(&event)),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(_) => break,
                },
                _ = ticker.tick() => dirty.extend(reconciler.resync_keys(&registry)),
                _ = retry.tick() => {}
            }
            let batch: Vec<String> = std::mem::take(&mut dirty).into_iter().collect();
            for key in batch {
                if let Err(err) = reconciler.reconcile(&registry, &key).await {
                    tracing::debug!(key, err, "reconcile failed; will retry");
                    dirty.insert(key);
                }
            }
        }
    }
}
