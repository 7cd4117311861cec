//! The embedded backend: a redb file holding the current keys and the change log.
//!
//! All writes go through one writer thread that commits whatever requests are waiting in a single
//! durable transaction (group commit): a write is acknowledged only after its transaction is on
//! disk, and concurrent clients share the cost of each fsync. Reads use redb's MVCC snapshots and
//! never wait for the writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc as std_mpsc;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::backend::{Backend, Event, EventKind, KeyValue, Revision, StoreError, Watch};

/// key → [create_revision i64][mod_revision i64][value]
const KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
/// revision → [kind u8][create_revision i64][key length u32][key][value]
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
/// "revision" and "compacted" counters.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

/// redb's page cache. Reads are served by the watch cache, so redb only needs the pages a
/// commit touches; 8 MiB keeps write throughput (see docs/benchmarks.md) at a quarter of the
/// memory of 32 MiB.
const REDB_CACHE_BYTES: usize = 8 * 1024 * 1024;
/// Most requests folded into one transaction.
const MAX_BATCH: usize = 1024;
/// Commits kept for slow watchers before they are told they lagged.
const EVENT_BUFFER: usize = 4096;

fn backend_err(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

enum WriteOutcome {
    Revision(Revision),
    Deleted(Revision, KeyValue),
    /// The compaction point after the request (never lower than before it).
    Compacted(Revision),
}

struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome, StoreError>>,
}

/// The redb-backed store.
pub struct RedbBackend {
    db: Arc<Database>,
    path: PathBuf,
    /// Taken on drop so that the writer thread ends and releases the file lock.
    writer: Option<std_mpsc::Sender<WriteRequest>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    revision: Arc<AtomicI64>,
    compacted: Arc<AtomicI64>,
    events: broadcast::Sender<Arc<Vec<Event>>>,
}

impl std::fmt::Debug for RedbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbBackend")
            .field("path", &self.path)
            .finish()
    }
}

fn encode_kv(create: Revision, modified: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + value.len());
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&modified.to_le_bytes());
    out.extend_from_slice(value);
    out
}

fn decode_kv(key: &str, raw: &[u8]) -> Result<KeyValue, StoreError> {
    if raw.len() < 16 {
        return Err(StoreError::Backend(format!("corrupt record for {key:?}")));
    }
    let create = i64::from_le_bytes(raw[0..8].try_into().expect("8 bytes"));
    let modified = i64::from_le_bytes(raw[8..16].try_into().expect("8 bytes"));
    Ok(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(&raw[16..]),
        create_revision: create,
        mod_revision: modified,
    })
}

fn encode_event(event: &Event) -> Vec<u8> {
    let key = event.kv.key.as_bytes();
    let mut out = Vec::with_capacity(13 + key.len() + event.kv.value.len());
    out.push(match event.kind {
        EventKind::Put => 0,
        EventKind::Delete => 1,
    });
    out.extend_from_slice(&event.kv.create_revision.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&event.kv.value);
    out
}

fn decode_event(revision: Revision, raw: &[u8]) -> Result<Event, StoreError> {
    let corrupt = || StoreError::Backend(format!("corrupt log entry at revision {revision}"));
    if raw.len() < 13 {
        return Err(corrupt());
    }
    let kind = match raw[0] {
        0 => EventKind::Put,
        1 => EventKind::Delete,
        _ => return Err(corrupt()),
    };
    let create = i64::from_le_bytes(raw[1..9].try_into().expect("8 bytes"));
    let key_len = u32::from_le_bytes(raw[9..13].try_into().expect("4 bytes")) as usize;
    let key_end = 13 + key_len;
    if raw.len() < key_end {
        return Err(corrupt());
    }
    let key = std::str::from_utf8(&raw[13..key_end]).map_err(|_| corrupt())?;
    Ok(Event {
        kind,
        kv: KeyValue {
            key: key.to_string(),
            value: Bytes::copy_from_slice(&raw[key_end..]),
            create_revision: create,
            mod_revision: revision,
        },
    })
}

impl RedbBackend {
    /// Open (or create) the store file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // Reads are served by the watch cache, so redb's own page cache only needs to hold what
        // the writer touches; its 1 GiB default would be a second, unread copy of the data.
        let db = redb::Builder::new()
            .set_cache_size(REDB_CACHE_BYTES)
            .create(path)
            .map_err(backend_err)?;
        let (revision, compacted) = {
            let txn = db.begin_write().map_err(backend_err)?;
            let counters = {
                txn.open_table(KV).map_err(backend_err)?;
                txn.open_table(LOG).map_err(backend_err)?;
                let mut meta = txn.open_table(META).map_err(backend_err)?;
                let revision = meta
                    .get("revision")
                    .map_err(backend_err)?
                    .map(|v| v.value());
                let compacted = meta
                    .get("compacted")
                    .map_err(backend_err)?
                    .map(|v| v.value());
                // Like etcd, an empty store starts at revision 1 so that "0" keeps its
                // Kubernetes meaning of "any version".
                let revision = match revision {
                    Some(r) => r,
                    None => {
                        meta.insert("revision", 1).map_err(backend_err)?;
                        1
                    }
                };
                (revision as i64, compacted.unwrap_or(0) as i64)
            };
            txn.commit().map_err(backend_err)?;
            counters
        };
        let db = Arc::new(db);
        let revision = Arc::new(AtomicI64::new(revision));
        let compacted = Arc::new(AtomicI64::new(compacted));
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (writer, rx) = std_mpsc::channel();
        let writer_thread = {
            let db = db.clone();
            let revision = revision.clone();
            let compacted = compacted.clone();
            let events = events.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || writer_loop(&db, &rx, &revision, &compacted, &events))
                .map_err(backend_err)?
        };
        Ok(RedbBackend {
            db,
            path: path.to_path_buf(),
            writer: Some(writer),
            writer_thread: Some(writer_thread),
            revision,
            compacted,
            events,
        })
    }

    async fn submit(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(WriteRequest { op, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    fn read_range(db: &Database, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        let txn = db.begin_read().map_err(backend_err)?;
        let table = txn.open_table(KV).map_err(backend_err)?;
        let mut out = Vec::new();
        for entry in table.range(prefix..).map_err(backend_err)? {
            let (key, value) = entry.map_err(backend_err)?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            out.push(decode_kv(key, value.value())?);
        }
        Ok(out)
    }

    fn read_log(db: &Database, prefix: &str, after: Revision) -> Result<Vec<Event>, StoreError> {
        let txn = db.begin_read().map_err(backend_err)?;
        let table = txn.open_table(LOG).map_err(backend_err)?;
        let mut out = Vec::new();
        for entry in table.range((after + 1) as u64..).map_err(backend_err)? {
            let (rev, raw) = entry.map_err(backend_err)?;
            let event = decode_event(rev.value() as i64, raw.value())?;
            if event.kv.key.starts_with(prefix) {
                out.push(event);
            }
        }
        Ok(out)
    }
}

impl Drop for RedbBackend {
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

fn writer_loop(
    db: &Database,
    rx: &std_mpsc::Receiver<WriteRequest>,
    revision: &AtomicI64,
    compacted: &AtomicI64,
    events: &broadcast::Sender<Arc<Vec<Event>>>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        let start = revision.load(Ordering::SeqCst);
        let mut committed_events = Vec::new();
        let mut new_compacted = None;
        let result =
            (|| -> Result<(Vec<Result<WriteOutcome, StoreError>>, Revision), StoreError> {
                let txn = db.begin_write().map_err(backend_err)?;
                let mut outcomes = Vec::with_capacity(batch.len());
                let mut rev = start;
                {
                    let mut kv = txn.open_table(KV).map_err(backend_err)?;
                    let mut log = txn.open_table(LOG).map_err(backend_err)?;
                    let mut meta = txn.open_table(META).map_err(backend_err)?;
                    for req in &batch {
                        let outcome = apply(
                            &mut kv,
                            &mut log,
                            &mut meta,
                            &req.op,
                            &mut rev,
                            &mut committed_events,
                        );
                        if let Ok(WriteOutcome::Compacted(point)) = &outcome {
                            new_compacted = Some(*point);
                        }
                        outcomes.push(outcome);
                    }
                    if rev != start {
                        meta.insert("revision", rev as u64).map_err(backend_err)?;
                    }
                }
                txn.commit().map_err(backend_err)?;
                Ok((outcomes, rev))
            })();
        match result {
            Ok((outcomes, rev)) => {
                revision.store(rev, Ordering::SeqCst);
                if let Some(c) = new_compacted {
                    compacted.store(c, Ordering::SeqCst);
                }
                if !committed_events.is_empty() {
                    // No receivers is fine: nobody watches yet.
                    let _ = events.send(Arc::new(committed_events));
                }
                for (req, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = req.reply.send(outcome);
                }
            }
            Err(err) => {
                tracing::error!(%err, "store commit failed");
                for req in batch {
                    let _ = req.reply.send(Err(err.clone()));
                }
            }
        }
    }
}

fn apply(
    kv: &mut redb::Table<'_, &str, &[u8]>,
    log: &mut redb::Table<'_, u64, &[u8]>,
    meta: &mut redb::Table<'_, &str, u64>,
    op: &WriteOp,
    rev: &mut Revision,
    events: &mut Vec<Event>,
) -> Result<WriteOutcome, StoreError> {
    let current =
        |kv: &redb::Table<'_, &str, &[u8]>, key: &str| -> Result<Option<KeyValue>, StoreError> {
            match kv.get(key).map_err(backend_err)? {
                Some(raw) => Ok(Some(decode_kv(key, raw.value())?)),
                None => Ok(None),
            }
        };
    match op {
        WriteOp::Create { key, value } => {
            if current(kv, key)?.is_some() {
                return Err(StoreError::AlreadyExists(key.clone()));
            }
            let create = *rev + 1;
            record(
                kv,
                log,
                rev,
                events,
                EventKind::Put,
                key,
                value.clone(),
                create,
            )
            .map(WriteOutcome::Revision)
        }
        WriteOp::Update {
            key,
            value,
            expected,
        } => {
            let Some(existing) = current(kv, key)? else {
                return Err(StoreError::NotFound(key.clone()));
            };
            if existing.mod_revision != *expected {
                return Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    actual: existing.mod_revision,
                });
            }
            record(
                kv,
                log,
                rev,
                events,
                EventKind::Put,
                key,
                value.clone(),
                existing.create_revision,
            )
            .map(WriteOutcome::Revision)
        }
        WriteOp::Delete { key, expected } => {
            let Some(existing) = current(kv, key)? else {
                return Err(StoreError::NotFound(key.clone()));
            };
            if let Some(expected) = expected
                && existing.mod_revision != *expected
            {
                return Err(StoreError::Conflict {
                    key: key.clone(),
                    expected: *expected,
                    actual: existing.mod_revision,
                });
            }
            let deleted_rev = record(
                kv,
                log,
                rev,
                events,
                EventKind::Delete,
                key,
                existing.value.clone(),
                existing.create_revision,
            )?;
            Ok(WriteOutcome::Deleted(deleted_rev, existing))
        }
        WriteOp::Compact { revision } => {
            let old = meta
                .get("compacted")
                .map_err(backend_err)?
                .map(|v| v.value())
                .unwrap_or(0);
            let target = (*revision).min(*rev) as u64;
            if target <= old {
                // Compacting to an older point changes nothing (and must not move the
                // compaction point back, or watches would miss the deleted history).
                return Ok(WriteOutcome::Compacted(old as Revision));
            }
            log.retain_in(..=target, |_, _| false)
                .map_err(backend_err)?;
            meta.insert("compacted", target).map_err(backend_err)?;
            Ok(WriteOutcome::Compacted(target as Revision))
        }
    }
}

/// Write one change to the key table and the log, taking the next revision.
#[allow(clippy::too_many_arguments)]
fn record(
    kv: &mut redb::Table<'_, &str, &[u8]>,
    log: &mut redb::Table<'_, u64, &[u8]>,
    rev: &mut Revision,
    events: &mut Vec<Event>,
    kind: EventKind,
    key: &str,
    value: Bytes,
    create: Revision,
) -> Result<Revision, StoreError> {
    let next = *rev + 1;
    let event = Event {
        kind,
        kv: KeyValue {
            key: key.to_string(),
            value,
            create_revision: create,
            mod_revision: next,
        },
    };
    match kind {
        EventKind::Put => {
            kv.insert(key, encode_kv(create, next, &event.kv.value).as_slice())
                .map_err(backend_err)?;
        }
        EventKind::Delete => {
            kv.remove(key).map_err(backend_err)?;
        }
    }
    log.insert(next as u64, encode_event(&event).as_slice())
        .map_err(backend_err)?;
    *rev = next;
    events.push(event);
    Ok(next)
}

#[async_trait::async_trait]
impl Backend for RedbBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let txn = self.db.begin_read().map_err(backend_err)?;
        let table = txn.open_table(KV).map_err(backend_err)?;
        match table.get(key).map_err(backend_err)? {
            Some(raw) => Ok(Some(decode_kv(key, raw.value())?)),
            None => Ok(None),
        }
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        let db = self.db.clone();
        let prefix = prefix.to_string();
        // The revision is read before the snapshot so that it never claims more than it holds;
        // a concurrent commit can only make the snapshot newer, which watches dedupe.
        let revision = self.revision.load(Ordering::SeqCst);
        let items = tokio::task::spawn_blocking(move || Self::read_range(&db, &prefix))
            .await
            .map_err(backend_err)??;
        let revision = items
            .iter()
            .map(|kv| kv.mod_revision)
            .max()
            .unwrap_or(0)
            .max(revision);
        Ok((items, revision))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        match self
            .submit(WriteOp::Create {
                key: key.to_string(),
                value,
            })
            .await?
        {
            WriteOutcome::Revision(rev) => Ok(rev),
            _ => Err(StoreError::Backend("unexpected write outcome".into())),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        match self
            .submit(WriteOp::Update {
                key: key.to_string(),
                value,
                expected,
            })
            .await?
        {
            WriteOutcome::Revision(rev) => Ok(rev),
            _ => Err(StoreError::Backend("unexpected write outcome".into())),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        match self
            .submit(WriteOp::Delete {
                key: key.to_string(),
                expected,
            })
            .await?
        {
            WriteOutcome::Deleted(rev, kv) => Ok((rev, kv)),
            _ => Err(StoreError::Backend("unexpected write outcome".into())),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
        // Subscribe before reading history so that no commit falls between the two.
        let mut live = self.events.subscribe();
        let compacted = self.compacted.load(Ordering::SeqCst);
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let db = self.db.clone();
        let history_prefix = prefix.to_string();
        let history =
            tokio::task::spawn_blocking(move || Self::read_log(&db, &history_prefix, after))
                .await
                .map_err(backend_err)??;
        let (tx, rx) = mpsc::channel(1024);
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            let mut last = after;
            for event in history {
                last = event.kv.mod_revision;
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(batch) => {
                        for event in batch.iter() {
                            if event.kv.mod_revision > last && event.kv.key.starts_with(&prefix) {
                                last = event.kv.mod_revision;
                                if tx.send(Ok(event.clone())).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(Err(StoreError::WatchLagged)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Watch { rx })
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.submit(WriteOp::Compact { revision }).await.map(|_| ())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.revision.load(Ordering::SeqCst))
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.compacted.load(Ordering::SeqCst))
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(backend_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open() -> (tempfile::TempDir, Arc<dyn Backend>) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbBackend::open(&dir.path().join("store.redb")).unwrap();
        (dir, Arc::new(store))
    }

    crate::conformance::backend_conformance_tests!(open());

    #[tokio::test]
    async fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let rev = {
            let store = RedbBackend::open(&path).unwrap();
            store.create("/k", Bytes::from_static(b"v")).await.unwrap()
        };
        let store = RedbBackend::open(&path).unwrap();
        assert_eq!(store.current_revision().await.unwrap(), rev);
        assert_eq!(store.get("/k").await.unwrap().unwrap().value.as_ref(), b"v");
        let next = store.create("/k2", Bytes::from_static(b"v")).await.unwrap();
        assert_eq!(next, rev + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_commits() {
        let (_dir, store) = open().await;
        let mut tasks = Vec::new();
        for i in 0..64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for j in 0..10 {
                    store
                        .create(&format!("/g/{i}/{j}"), Bytes::from_static(b"x"))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (items, _) = store.list("/g/").await.unwrap();
        assert_eq!(items.len(), 640);
        let mut revs: Vec<_> = items.iter().map(|kv| kv.mod_revision).collect();
        revs.sort();
        revs.dedup();
        assert_eq!(revs.len(), 640, "every write has its own revision");
    }
}
