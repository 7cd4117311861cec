//! The revisioned key-value store under the API: etcd semantics (one global revision that is
//! every object's resourceVersion, compare-on-revision writes, watch from a revision,
//! compaction) behind the [`Backend`] trait, with the embedded redb backend as the default, the
//! etcd v3 backend for high availability, and the in-memory [`WatchCache`] that serves lists and
//! watches.

mod backend;
#[cfg(test)]
mod conformance;
pub mod etcd_backend;
#[cfg(any(test, feature = "test-support"))]
pub mod etcd_testing;
pub mod redb_backend;
pub mod watch_cache;

pub use backend::{
    Backend, Event, EventKind, KeyValue, Revision, StoreError, Watch, spawn_compactor,
};
pub use etcd_backend::{EtcdBackend, EtcdOptions};
pub use redb_backend::RedbBackend;
pub use watch_cache::{CacheEvent, CacheEventKind, CacheWatch, WatchCache};
