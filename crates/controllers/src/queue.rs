//! The loop every controller here shares: follow the watch cache under a prefix, collect the
//! keys that need attention, reconcile them in batches, retry failures after a delay, come
//! back to keys a reconciler asked to see again at a given time, and resync everything
//! periodically.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

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
    /// Keys to reconcile again after a delay, whatever happens meanwhile (a deadline or a
    /// minimum time to wait that no event will announce). Drained after every batch.
    fn take_requeues(&mut self) -> Vec<(String, Duration)> {
        Vec::new()
    }
}

/// Keys waiting for their time, earliest first.
#[derive(Default)]
struct Delayed(BTreeMap<Instant, BTreeSet<String>>);

impl Delayed {
    fn add(&mut self, key: String, after: Duration) {
        self.0
            .entry(Instant::now() + after)
            .or_default()
            .insert(key);
    }

    fn next_due(&self) -> Instant {
        self.0
            .keys()
            .next()
            .copied()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    fn take_due(&mut self, dirty: &mut BTreeSet<String>) {
        let now = Instant::now();
        let later = self.0.split_off(&(now + Duration::from_nanos(1)));
        for keys in std::mem::replace(&mut self.0, later).into_values() {
            dirty.extend(keys);
        }
    }
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
    let mut delayed = Delayed::default();
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
                _ = tokio::time::sleep_until(delayed.next_due()) => {}
            }
            delayed.take_due(&mut dirty);
            let batch: Vec<String> = std::mem::take(&mut dirty).into_iter().collect();
            for key in batch {
                if let Err(err) = reconciler.reconcile(&registry, &key).await {
                    tracing::debug!(key, err, "reconcile failed; will retry");
                    dirty.insert(key);
                }
            }
            for (key, after) in reconciler.take_requeues() {
                delayed.add(key, after);
            }
        }
    }
}

/// The keys a controller of `owner` objects (kind `kind`) reconciles for an event: one of its
/// own objects that changed (not once it is deleted), or the owner of a `child` object it
/// controls (read from the controller reference, without parsing the child).
pub fn owner_keys(
    event: &CacheEvent<StoredObject>,
    owner: &maestro_apiserver::registry::Resource,
    kind: &str,
    child: &maestro_apiserver::registry::Resource,
) -> Vec<String> {
    if event.key.starts_with(&owner.info.storage_prefix()) {
        return if event.kind == maestro_store::CacheEventKind::Deleted {
            vec![]
        } else {
            vec![event.key.clone()]
        };
    }
    if event.key.starts_with(&child.info.storage_prefix()) {
        return crate::objects::controller_ref(&event.object)
            .filter(|o| o.kind == kind)
            .map(|o| owner.info.key(event.object.namespace.as_deref(), &o.name))
            .into_iter()
            .collect();
    }
    vec![]
}

/// Every stored object of a resource, for a periodic resync.
pub fn all_keys(registry: &Registry, res: &maestro_apiserver::registry::Resource) -> Vec<String> {
    let (all, _) = registry.cache().list(&res.info.storage_prefix());
    all.iter().map(|o| o.key.clone()).collect()
}
