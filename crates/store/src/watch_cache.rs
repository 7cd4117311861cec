//! The watch cache: an in-memory copy of every object, kept current by one watch on the
//! backend, with a window of recent events. Lists, gets and watches are served from here so that
//! a thousand watchers cost the backend one watch.
//!
//! Consistency: a read first asks the backend for its current revision and waits until the cache
//! has applied it, so a client always reads its own acknowledged writes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::{broadcast, watch};

use crate::backend::{Backend, EventKind, KeyValue, Revision, StoreError};

/// Turns a stored value into the cached object; `None` skips the key.
pub type DecodeFn<T> = Arc<dyn Fn(&KeyValue) -> Option<T> + Send + Sync>;

/// What happened to an object, as Kubernetes watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEventKind {
    Added,
    Modified,
    Deleted,
}

/// One change seen by the cache.
#[derive(Debug)]
pub struct CacheEvent<T> {
    pub kind: CacheEventKind,
    /// Revision of the change (for synthetic initial events, the object's own revision).
    pub revision: Revision,
    pub key: String,
    /// The object after the change (for `Deleted`, its last state).
    pub object: Arc<T>,
    /// The object before the change, if it existed.
    pub prev: Option<Arc<T>>,
}

struct Entry<T> {
    object: Arc<T>,
    revision: Revision,
}

struct State<T> {
    objects: BTreeMap<String, Entry<T>>,
    /// Everything up to this revision has been applied.
    revision: Revision,
    /// Recent events, oldest first.
    history: VecDeque<Arc<CacheEvent<T>>>,
    /// Every event newer than this revision is in `history`.
    oldest: Revision,
}

/// The cache over one backend.
pub struct WatchCache<T> {
    backend: Arc<dyn Backend>,
    decode: DecodeFn<T>,
    state: RwLock<State<T>>,
    live: broadcast::Sender<Arc<CacheEvent<T>>>,
    progress: watch::Sender<Revision>,
    history_capacity: usize,
}

/// Most backend events applied under one lock.
const MAX_APPLY_BATCH: usize = 1024;

/// How long a read waits for the cache to catch up with the backend before failing.
const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(5);

impl<T: Send + Sync + 'static> WatchCache<T> {
    /// Load every key under `prefix` and follow the backend from there.
    pub async fn start(
        backend: Arc<dyn Backend>,
        prefix: &str,
        decode: DecodeFn<T>,
        history_capacity: usize,
    ) -> Result<Arc<Self>, StoreError> {
        let (items, revision) = backend.list(prefix).await?;
        let mut objects = BTreeMap::new();
        for kv in &items {
            if let Some(object) = decode(kv) {
                objects.insert(
                    kv.key.clone(),
                    Entry {
                        object: Arc::new(object),
                        revision: kv.mod_revision,
                    },
                );
            }
        }
        let (live, _) = broadcast::channel(history_capacity.max(1024));
        let (progress, _) = watch::channel(revision);
        let cache = Arc::new(WatchCache {
            backend,
            decode,
            state: RwLock::new(State {
                objects,
                revision,
                history: VecDeque::new(),
                oldest: revision,
            }),
            live,
            progress,
            history_capacity,
        });
        let feeder = cache.clone();
        let prefix = prefix.to_string();
        tokio::spawn(async move { feeder.follow(&prefix).await });
        Ok(cache)
    }

    /// Runs for the life of the process: the cache is the server's view of the store.
    async fn follow(self: Arc<Self>, prefix: &str) {
        loop {
            let from = self.state.read().revision;
            let mut watch = match self.backend.watch(prefix, from).await {
                Ok(watch) => watch,
                Err(StoreError::Compacted { .. }) => {
                    if let Err(err) = self.resync(prefix).await {
                        tracing::warn!(%err, "watch cache resync failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    continue;
                }
                Err(err) => {
                    tracing::warn!(%err, "watch cache lost its backend watch");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            while let Some(event) = watch.next().await {
                // Take whatever else is already waiting: a group commit arrives as many events,
                // and applying them together takes the lock and wakes readers once.
                let mut batch = vec![event];
                while batch.len() < MAX_APPLY_BATCH
                    && let Some(next) = watch.try_next()
                {
                    batch.push(next);
                }
                let failed = batch.iter().position(Result::is_err);
                let events: Vec<(EventKind, KeyValue)> = batch
                    .into_iter()
                    .take(failed.unwrap_or(usize::MAX))
                    .filter_map(Result::ok)
                    .map(|e| (e.kind, e.kv))
                    .collect();
                self.apply_batch(&events);
                if failed.is_some() {
                    tracing::debug!("backend watch ended; resuming");
                    break;
                }
            }
        }
    }

    /// After losing history, reload everything and emit the differences as events.
    async fn resync(&self, prefix: &str) -> Result<(), StoreError> {
        let (items, revision) = self.backend.list(prefix).await?;
        let mut present = std::collections::HashSet::new();
        for kv in &items {
            present.insert(kv.key.clone());
            let changed = self
                .state
                .read()
                .objects
                .get(&kv.key)
                .is_none_or(|e| e.revision != kv.mod_revision);
            if changed {
                self.apply(EventKind::Put, kv);
            }
        }
        let gone: Vec<(String, Revision)> = {
            let state = self.state.read();
            state
                .objects
                .iter()
                .filter(|(k, _)| !present.contains(*k))
                .map(|(k, e)| (k.clone(), e.revision))
                .collect()
        };
        for (key, _) in gone {
            self.remove_at(&key, revision);
        }
        let mut state = self.state.write();
        state.revision = state.revision.max(revision);
        let rev = state.revision;
        drop(state);
        self.progress.send_replace(rev);
        Ok(())
    }

    fn remove_at(&self, key: &str, revision: Revision) {
        let mut state = self.state.write();
        if let Some(prev) = state.objects.remove(key) {
            let event = Arc::new(CacheEvent {
                kind: CacheEventKind::Deleted,
                revision,
                key: key.to_string(),
                object: prev.object.clone(),
                prev: Some(prev.object),
            });
            self.record(&mut state, event);
        }
    }

    fn apply(&self, kind: EventKind, kv: &KeyValue) {
        self.apply_batch(&[(kind, kv.clone())]);
    }

    fn apply_batch(&self, events: &[(EventKind, KeyValue)]) {
        if events.is_empty() {
            return;
        }
        // Decoding happens outside the lock: readers are never held up by parsing.
        let decoded: Vec<Option<Arc<T>>> = events
            .iter()
            .map(|(kind, kv)| match kind {
                EventKind::Put => (self.decode)(kv).map(Arc::new),
                EventKind::Delete => None,
            })
            .collect();
        let mut state = self.state.write();
        for ((kind, kv), decoded) in events.iter().zip(decoded) {
            self.apply_one(&mut state, *kind, kv, decoded);
        }
        let rev = state.revision;
        drop(state);
        self.progress.send_replace(rev);
    }

    fn apply_one(
        &self,
        state: &mut State<T>,
        kind: EventKind,
        kv: &KeyValue,
        decoded: Option<Arc<T>>,
    ) {
        let event = match (kind, decoded) {
            (EventKind::Put, Some(object)) => {
                let prev = state.objects.insert(
                    kv.key.clone(),
                    Entry {
                        object: object.clone(),
                        revision: kv.mod_revision,
                    },
                );
                Some(CacheEvent {
                    kind: if prev.is_some() {
                        CacheEventKind::Modified
                    } else {
                        CacheEventKind::Added
                    },
                    revision: kv.mod_revision,
                    key: kv.key.clone(),
                    object,
                    prev: prev.map(|p| p.object),
                })
            }
            // A value the decoder rejects is treated as gone.
            (EventKind::Put, None) | (EventKind::Delete, _) => {
                state.objects.remove(&kv.key).map(|prev| CacheEvent {
                    kind: CacheEventKind::Deleted,
                    revision: kv.mod_revision,
                    key: kv.key.clone(),
                    object: prev.object.clone(),
                    prev: Some(prev.object),
                })
            }
        };
        state.revision = state.revision.max(kv.mod_revision);
        if let Some(event) = event {
            self.record(state, Arc::new(event));
        }
    }

    fn record(&self, state: &mut State<T>, event: Arc<CacheEvent<T>>) {
        state.history.push_back(event.clone());
        while state.history.len() > self.history_capacity {
            if let Some(old) = state.history.pop_front() {
                state.oldest = old.revision;
            }
        }
        // Sent under the write lock: a watcher that subscribes under the read lock sees each
        // event exactly once, either in its snapshot or live.
        let _ = self.live.send(event);
    }

    /// The revision the cache has applied.
    pub fn revision(&self) -> Revision {
        self.state.read().revision
    }

    /// Wait until the cache has applied `revision`.
    pub async fn wait_for(&self, revision: Revision) -> Result<(), StoreError> {
        let mut rx = self.progress.subscribe();
        let wait = rx.wait_for(|applied| *applied >= revision);
        match tokio::time::timeout(FRESHNESS_TIMEOUT, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => Err(StoreError::Backend(format!(
                "timed out waiting for the watch cache to reach revision {revision}"
            ))),
        }
    }

    /// Wait until the cache holds every write the backend has acknowledged.
    pub async fn fresh(&self) -> Result<Revision, StoreError> {
        let revision = self.backend.current_revision().await?;
        self.wait_for(revision).await?;
        Ok(revision)
    }

    /// One object, as of the cache's current revision.
    pub fn get(&self, key: &str) -> Option<(Arc<T>, Revision)> {
        self.state
            .read()
            .objects
            .get(key)
            .map(|e| (e.object.clone(), e.revision))
    }

    /// Every object under `prefix`, in key order, and the revision of this view.
    pub fn list(&self, prefix: &str) -> (Vec<Arc<T>>, Revision) {
        let state = self.state.read();
        let items = state
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.object.clone())
            .collect();
        (items, state.revision)
    }

    /// Number of cached objects under `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        let state = self.state.read();
        state
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .count()
    }

    /// Watch keys under `prefix`. With `from = None` the watch starts with a synthetic `Added`
    /// event per existing object; with `Some(rev)` it replays what happened after `rev`, or fails
    /// with `Compacted` when that is older than the cache's window.
    pub fn watch(&self, prefix: &str, from: Option<Revision>) -> Result<CacheWatch<T>, StoreError> {
        let state = self.state.read();
        let live = self.live.subscribe();
        let mut pending = VecDeque::new();
        let start = match from {
            None => {
                for (key, entry) in state
                    .objects
                    .range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                {
                    pending.push_back(Arc::new(CacheEvent {
                        kind: CacheEventKind::Added,
                        revision: entry.revision,
                        key: key.clone(),
                        object: entry.object.clone(),
                        prev: None,
                    }));
                }
                state.revision
            }
            Some(rev) if rev >= state.oldest => {
                pending.extend(
                    state
                        .history
                        .iter()
                        .filter(|e| e.revision > rev && e.key.starts_with(prefix))
                        .cloned(),
                );
                state.revision.max(rev)
            }
            Some(rev) => {
                return Err(StoreError::Compacted {
                    requested: rev,
                    compacted: state.oldest,
                });
            }
        };
        Ok(CacheWatch {
            pending,
            live,
            seen: start,
            prefix: prefix.to_string(),
        })
    }
}

/// One client's watch on the cache.
pub struct CacheWatch<T> {
    pending: VecDeque<Arc<CacheEvent<T>>>,
    live: broadcast::Receiver<Arc<CacheEvent<T>>>,
    /// Every event up to this revision has been delivered or skipped as not matching.
    seen: Revision,
    prefix: String,
}

impl<T> CacheWatch<T> {
    /// The next event under the prefix. `WatchLagged` means the watcher fell too far behind
    /// and must start again (clients re-watch from their last resourceVersion).
    pub async fn next(&mut self) -> Result<Arc<CacheEvent<T>>, StoreError> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(event);
        }
        loop {
            match self.live.recv().await {
                Ok(event) => {
                    if event.revision <= self.seen {
                        continue;
                    }
                    self.seen = event.revision;
                    if event.key.starts_with(&self.prefix) {
                        return Ok(event);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => return Err(StoreError::WatchLagged),
                Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
            }
        }
    }

    /// Whether synthetic or replayed events are still queued.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The revision this watch has reached (its start revision until live events arrive).
    pub fn revision(&self) -> Revision {
        self.seen
    }

    /// A revision safe to report in a bookmark: everything up to it has been delivered. `None`
    /// while events are still queued for this watcher.
    pub fn bookmark_revision(&self) -> Option<Revision> {
        if self.pending.is_empty() && self.live.is_empty() {
            Some(self.seen)
        } else {
            None
        }
    }
}
