//! The store contract every backend (embedded redb, etcd v3) implements, and the types that
//! cross it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

/// A store revision: strictly increasing, shared by all keys (etcd's `mod_revision`).
pub type Revision = i64;

/// One key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// Revision of the write that created the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
}

/// What a change did to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change, in revision order. For a delete, `kv.value` is the last value before deletion
/// and `kv.mod_revision` is the revision of the delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("key {0:?} already exists")]
    AlreadyExists(String),
    #[error("key {0:?} not found")]
    NotFound(String),
    #[error("revision conflict on {key:?}: expected {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    #[error("revision {requested} has been compacted (oldest available is {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("watch fell behind and was closed")]
    WatchLagged,
    #[error("storage error: {0}")]
    Backend(String),
    #[error("the store is closed")]
    Closed,
}

/// A stream of events for keys under a prefix, in revision order.
#[derive(Debug)]
pub struct Watch {
    pub(crate) rx: mpsc::Receiver<Result<Event, StoreError>>,
}

impl Watch {
    /// The next event; `None` when the backend closed the watch.
    pub async fn next(&mut self) -> Option<Result<Event, StoreError>> {
        self.rx.recv().await
    }

    /// The next event if one is already waiting, without waiting.
    pub fn try_next(&mut self) -> Option<Result<Event, StoreError>> {
        self.rx.try_recv().ok()
    }

    /// A watch fed by a channel the backend writes to.
    pub fn from_channel(rx: mpsc::Receiver<Result<Event, StoreError>>) -> Self {
        Watch { rx }
    }
}

/// A revisioned key-value store with etcd semantics.
///
/// Writes are linearizable and, once acknowledged, durable. Callers decide every value
/// (timestamps, uids, names): the store never invents data, which keeps writes deterministic.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The key's current value.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Every key under `prefix`, in key order, with the revision the list was read at.
    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError>;

    /// Create `key`; fails with `AlreadyExists` if it is present. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError>;

    /// Replace `key` if its `mod_revision` is `expected`; `Conflict` otherwise.
    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError>;

    /// Delete `key` (if `expected` is set, only at that `mod_revision`). Returns the revision of
    /// the delete and the value that was deleted.
    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError>;

    /// Events for keys under `prefix` with a revision greater than `after`.
    /// Fails with `Compacted` when `after` is older than the compaction point.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError>;

    /// Forget history up to and including `revision`.
    async fn compact(&self, revision: Revision) -> Result<(), StoreError>;

    /// The latest committed revision.
    async fn current_revision(&self) -> Result<Revision, StoreError>;

    /// The oldest revision still available to watches (history before it is compacted).
    async fn compacted_revision(&self) -> Result<Revision, StoreError>;

    /// Bytes the store occupies (for metrics).
    async fn size_bytes(&self) -> Result<u64, StoreError>;
}

/// Compact history periodically, keeping what happened during the last `interval`
/// (as the Kubernetes API server does with etcd every five minutes).
pub fn spawn_compactor(
    backend: Arc<dyn Backend>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut previous: Option<Revision> = None;
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Some(rev) = previous
                && let Err(err) = backend.compact(rev).await
            {
                tracing::warn!(%err, revision = rev, "compaction failed");
            }
            previous = backend.current_revision().await.ok();
        }
    })
}
