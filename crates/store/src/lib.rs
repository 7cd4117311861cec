//! The revisioned key-value store under the API: etcd semantics (one global revision that is
//! every object's resourceVersion, compare-on-revision writes, watch from a revision,
//! compaction) behind the [`Backend`] trait, with the embedded redb backend as the default and
//! the in-memory [`WatchCache`] that serves lists and watches.

mod backend;
pub mod redb_backend;
pub mod watch_cache;

pub use backend::{
    Backend, Event, EventKind, KeyValue, Revision, StoreError, Watch, spawn_compactor,
};
pub use redb_backend::RedbBackend;
pub use watch_cache::{CacheEvent, CacheEventKind, CacheWatch, WatchCache};
