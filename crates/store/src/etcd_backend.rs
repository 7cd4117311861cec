//! The etcd v3 backend, for running several API servers against one highly available store.
//!
//! etcd already has the semantics the [`Backend`] contract describes (one global revision,
//! compare-on-revision transactions, watches from a revision, compaction), so each operation is
//! one etcd request:
//!
//! - create: `txn(create_revision(key) == 0) { put }` (`AlreadyExists` when the compare fails);
//! - update: `txn(key exists && mod_revision(key) == expected) { put } else { get }`, the `get`
//!   telling `NotFound` from `Conflict`;
//! - delete: `txn(key exists [&& mod_revision(key) == expected]) { delete(prev_kv) } else { get }`;
//! - get and list: linearizable ranges, lists paginated at one revision;
//! - watch: an etcd watch from `after + 1` with `prev_kv`, so that deletes carry the last value.
//!
//! An optional key prefix namespaces maestro's keys inside a shared etcd: it is added to every
//! key sent and stripped from every key received.
//!
//! **The revision marker.** Every write also puts one marker key in the namespace, in the same
//! transaction, so the marker's `mod_revision` is the revision of maestro's latest write.
//! [`Backend::current_revision`] reads it instead of etcd's global revision: the watch cache
//! waits until it has seen the current revision before serving a read, and a global revision
//! moved by writes outside the namespace (another tenant of a shared etcd) would never arrive
//! on maestro's watch, so reads would stall. etcd's progress notifications could report such
//! revisions, but the etcd 3.4 that Debian ships can send one before the events it covers.
//!
//! Limitations:
//! - etcd does not report its compaction point. [`Backend::compacted_revision`] returns the
//!   highest point this process compacted to or learned from a `Compacted` error; compactions
//!   by other clients are discovered when a watch runs into them. Compaction is global to the
//!   etcd cluster, so in a shared etcd it also drops the history of the other tenants.
//! - A delete event whose previous value etcd had already compacted away carries an empty value.
//! - Every request runs under [`EtcdOptions::request_timeout`]. Reads are retried within it when
//!   a member is unavailable; writes only when they certainly never reached etcd (see
//!   `retryable`). A write in flight when the leader dies is usually lost by etcd (the
//!   forwarded proposal goes nowhere) but reported only by the timeout, and may in general have
//!   been applied: only the caller can resolve it (for a create, by reading the key back).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, GetResponse,
    KvClient, MaintenanceClient, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient, WatchOptions,
};
use tokio::sync::mpsc;

use crate::backend::{Backend, Event, EventKind, KeyValue, Revision, StoreError, Watch};

/// Key, under the namespace, of the marker every write touches. No API key starts with NUL,
/// and NUL sorts before `/`, so the marker never falls inside a list of API keys.
const MARKER: &str = "\0maestro/revision";

/// Largest message accepted from etcd: a list page or a watch response. Objects are at most
/// 1.5 MiB, so the client's 4 MiB default could not hold a page of large objects.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// gRPC's UNAVAILABLE status code: no connection, or etcd without a leader.
const GRPC_UNAVAILABLE: i32 = 14;

/// Events buffered per watch before the reader applies backpressure to the etcd stream.
const WATCH_BUFFER: usize = 1024;

/// Connection settings for [`EtcdBackend`].
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Longest wait for any one request (and for a watch to be established). Requests that run
    /// longer fail with `StoreError::Backend` instead of hanging when etcd is unreachable.
    pub request_timeout: Duration,
    /// Longest wait for a TCP connection to one endpoint.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval, which notices a dead connection under an idle watch. etcd
    /// answers pings more often than every 5 s with GOAWAY, so keep it above that.
    pub keep_alive_interval: Duration,
    /// How long a keep-alive ping may go unanswered before the connection is dropped.
    pub keep_alive_timeout: Duration,
    /// Keys per list request; a list is read page by page at one revision.
    pub list_page_size: i64,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            keep_alive_interval: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            list_page_size: 500,
        }
    }
}

/// The etcd-backed store.
pub struct EtcdBackend {
    kv: KvClient,
    watch: WatchClient,
    maintenance: MaintenanceClient,
    endpoints: Vec<String>,
    /// Prepended to every key; empty without a namespace.
    namespace: String,
    /// The namespaced marker key.
    marker: Vec<u8>,
    options: EtcdOptions,
    /// Highest compaction point known to this process (see the module docs).
    compacted: Arc<AtomicI64>,
}

impl std::fmt::Debug for EtcdBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBackend")
            .field("endpoints", &self.endpoints)
            .field("namespace", &self.namespace)
            .finish()
    }
}

fn etcd_err(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("etcd {what}: {err}"))
}

/// Why one request failed, before it becomes a [`StoreError`].
#[derive(Debug)]
enum CallError {
    Etcd(etcd_client::Error),
    TimedOut(Duration),
}

impl CallError {
    fn into_store(self, what: &str) -> StoreError {
        match self {
            CallError::Etcd(err) => etcd_err(what, err),
            CallError::TimedOut(after) => {
                StoreError::Backend(format!("etcd {what} timed out after {after:?}"))
            }
        }
    }

    /// Whether etcd refused a read because its revision is compacted.
    fn is_compacted(&self) -> bool {
        self.status_message()
            .is_some_and(|m| m.contains("required revision has been compacted"))
    }

    /// Whether etcd refused a read because its revision is in the future.
    fn is_future_revision(&self) -> bool {
        self.status_message()
            .is_some_and(|m| m.contains("required revision is a future revision"))
    }

    fn status_message(&self) -> Option<&str> {
        match self {
            CallError::Etcd(etcd_client::Error::GRpcStatus(status)) => Some(status.message()),
            _ => None,
        }
    }
}

/// Whether a failed request may be sent again. The client balances requests over all
/// endpoints, a dead member included, so a request can fail on a member that is down while the
/// others serve: reads are retried on any unavailability, and writes only when they certainly
/// never reached etcd (no connection, or refused for want of a leader), as etcd's own Go client
/// does. A write that may have been applied is left to the caller.
fn retryable(err: &etcd_client::Error, idempotent: bool) -> bool {
    match err {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(status) if i32::from(status.code()) == GRPC_UNAVAILABLE => {
            idempotent || {
                let message = status.message();
                message.contains("tcp connect error")
                    || message.contains("error trying to connect")
                    || message.contains("etcdserver: no leader")
            }
        }
        _ => false,
    }
}

/// The first key after every key starting with `prefix` (etcd's range end for a prefix).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // No key follows a prefix of 0xff bytes: "\0" as range end means "to the end".
    vec![0]
}

fn txn_revision(resp: &TxnResponse) -> Result<Revision, StoreError> {
    resp.header()
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Backend("etcd response without a header".into()))
}

impl EtcdBackend {
    /// Connect to the etcd cluster at `endpoints` (`http://host:port`, every member's, so that
    /// requests move to the survivors when one fails) with default options.
    ///
    /// With `prefix`, every key is stored under it, so maestro can share an etcd with others.
    /// Ranges are by string prefix: with `/maestro`, a list of `/registry/` reads
    /// `/maestro/registry/`, but a list of the empty prefix would also span a tenant at
    /// `/maestro-b`. maestro's keys all start with `/registry/`, so only such whole-keyspace
    /// reads are affected.
    pub async fn connect(endpoints: &[String], prefix: Option<String>) -> Result<Self, StoreError> {
        Self::connect_with(endpoints, prefix, EtcdOptions::default()).await
    }

    /// Connect with explicit options. Fails if no endpoint answers within the request timeout,
    /// so that a misconfigured server stops at startup rather than at its first request.
    pub async fn connect_with(
        endpoints: &[String],
        prefix: Option<String>,
        options: EtcdOptions,
    ) -> Result<Self, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::Backend("no etcd endpoints given".into()));
        }
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(options.keep_alive_interval, options.keep_alive_timeout)
            // etcd rejects pings on connections without streams (GOAWAY "too many pings").
            .with_keep_alive_while_idle(false)
            // A member cut off from its leader fails requests and cancels watches at once,
            // so the client moves to a member that can serve it instead of waiting.
            .with_require_leader(true);
        let client = match tokio::time::timeout(
            options.request_timeout,
            Client::connect(endpoints, Some(connect)),
        )
        .await
        {
            Ok(Ok(client)) => client,
            Ok(Err(err)) => return Err(etcd_err("connect", err)),
            Err(_) => {
                return Err(StoreError::Backend(format!(
                    "etcd connect timed out after {:?}",
                    options.request_timeout
                )));
            }
        };
        let namespace = prefix.unwrap_or_default();
        let backend = EtcdBackend {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            maintenance: client.maintenance_client(),
            endpoints: endpoints.to_vec(),
            marker: format!("{namespace}{MARKER}").into_bytes(),
            namespace,
            options,
            compacted: Arc::new(AtomicI64::new(0)),
        };
        // The client connects lazily: one read proves that the cluster is there.
        backend.global_revision().await?;
        Ok(backend)
    }

    /// Run one request, retrying as [`retryable`] allows, within the request timeout.
    /// `request` builds a new attempt each time.
    async fn call_raw<T, F, Fut>(&self, idempotent: bool, mut request: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let timeout = self.options.request_timeout;
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(10);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, request()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(err))
                    if retryable(&err, idempotent) && Instant::now() + backoff < deadline =>
                {
                    tracing::debug!(%err, "etcd request failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(250));
                }
                Ok(Err(err)) => return Err(CallError::Etcd(err)),
                Err(_) => return Err(CallError::TimedOut(timeout)),
            }
        }
    }

    /// [`Self::call_raw`] with the failure as a [`StoreError`].
    async fn call<T, F, Fut>(
        &self,
        what: &str,
        idempotent: bool,
        request: F,
    ) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call_raw(idempotent, request)
            .await
            .map_err(|err| err.into_store(what))
    }

    /// A linearizable range read, retried on unavailability.
    async fn range(
        &self,
        key: Vec<u8>,
        opts: Option<GetOptions>,
    ) -> Result<GetResponse, CallError> {
        self.call_raw(true, || {
            let mut kv = self.kv.clone();
            let (key, opts) = (key.clone(), opts.clone());
            async move { kv.get(key, opts).await }
        })
        .await
    }

    /// A write transaction, retried only when it certainly was not applied.
    async fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.call(what, false, || {
            let mut kv = self.kv.clone();
            let txn = txn.clone();
            async move { kv.txn(txn).await }
        })
        .await
    }

    fn full_key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.namespace).into_bytes()
    }

    /// Put of the marker, added to every write transaction.
    fn mark(&self) -> TxnOp {
        TxnOp::put(self.marker.clone(), Vec::new(), None)
    }

    /// etcd's latest revision, moved by every write in the cluster.
    async fn global_revision(&self) -> Result<Revision, StoreError> {
        let opts = GetOptions::new().with_count_only();
        let resp = self
            .range(self.marker.clone(), Some(opts))
            .await
            .map_err(|err| err.into_store("read revision"))?;
        resp.header()
            .map(|h| h.revision())
            .ok_or_else(|| StoreError::Backend("etcd response without a header".into()))
    }

    /// The key current in etcd for a failed transaction's `else { get }`.
    fn else_get(&self, resp: &TxnResponse) -> Result<Option<KeyValue>, StoreError> {
        match resp.op_responses().into_iter().next() {
            Some(TxnOpResponse::Get(get)) => match get.kvs().first() {
                Some(kv) => convert_kv(&self.namespace, kv),
                None => Ok(None),
            },
            _ => Err(StoreError::Backend(
                "etcd transaction returned no read".into(),
            )),
        }
    }

    /// Note a compaction point (ours or learned) so later watches fail fast.
    fn note_compacted(&self, revision: Revision) {
        self.compacted.fetch_max(revision, Ordering::SeqCst);
    }
}

/// A key-value from etcd, without the namespace; `None` for the marker or a foreign key.
fn convert_kv(namespace: &str, kv: &etcd_client::KeyValue) -> Result<Option<KeyValue>, StoreError> {
    let Some(key) = kv.key().strip_prefix(namespace.as_bytes()) else {
        return Ok(None);
    };
    if key == MARKER.as_bytes() {
        return Ok(None);
    }
    let key = std::str::from_utf8(key)
        .map_err(|_| StoreError::Backend(format!("etcd key {:?} is not UTF-8", kv.key())))?;
    Ok(Some(KeyValue {
        key: key.to_string(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }))
}

/// A watch event from etcd in the store's terms: a delete carries the value it removed (from
/// `prev_kv`) and the revision of the delete.
fn convert_event(namespace: &str, event: &etcd_client::Event) -> Result<Option<Event>, StoreError> {
    let Some(kv) = event.kv() else {
        return Ok(None);
    };
    let Some(mut converted) = convert_kv(namespace, kv)? else {
        return Ok(None);
    };
    let kind = match event.event_type() {
        EventType::Put => EventKind::Put,
        EventType::Delete => {
            if let Some(prev) = event.prev_kv() {
                converted.value = Bytes::copy_from_slice(prev.value());
                converted.create_revision = prev.create_revision();
            }
            EventKind::Delete
        }
    };
    Ok(Some(Event {
        kind,
        kv: converted,
    }))
}

#[async_trait::async_trait]
impl Backend for EtcdBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let resp = self
            .range(self.full_key(key), None)
            .await
            .map_err(|err| err.into_store("get"))?;
        match resp.kvs().first() {
            Some(kv) => convert_kv(&self.namespace, kv),
            None => Ok(None),
        }
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision), StoreError> {
        let start = self.full_key(prefix);
        let end = prefix_end(&start);
        // etcd rejects an empty key; "\0" is the first key there is.
        let mut from = if start.is_empty() { vec![0] } else { start };
        let mut items = Vec::new();
        let mut revision = None;
        loop {
            let mut opts = GetOptions::new()
                .with_range(end.clone())
                .with_limit(self.options.list_page_size);
            // Later pages read at the first page's revision: one consistent snapshot.
            if let Some(rev) = revision {
                opts = opts.with_revision(rev);
            }
            let resp = self
                .range(from.clone(), Some(opts))
                .await
                .map_err(|err| err.into_store("list"))?;
            let rev = *revision.get_or_insert(
                resp.header()
                    .map(|h| h.revision())
                    .ok_or_else(|| StoreError::Backend("etcd response without a header".into()))?,
            );
            for kv in resp.kvs() {
                if let Some(kv) = convert_kv(&self.namespace, kv)? {
                    items.push(kv);
                }
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok((items, rev)),
            }
        }
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision, StoreError> {
        let full = self.full_key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(full, value.to_vec(), None), self.mark()]);
        let resp = self.txn("create", txn).await?;
        if resp.succeeded() {
            txn_revision(&resp)
        } else {
            Err(StoreError::AlreadyExists(key.to_string()))
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<Revision, StoreError> {
        let full = self.full_key(key);
        // A missing key has mod_revision 0: without the existence check an update expecting 0
        // would create it.
        let txn = Txn::new()
            .when([
                Compare::create_revision(full.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(full.clone(), CompareOp::Equal, expected),
            ])
            .and_then([TxnOp::put(full.clone(), value.to_vec(), None), self.mark()])
            .or_else([TxnOp::get(full, None)]);
        let resp = self.txn("update", txn).await?;
        if resp.succeeded() {
            return txn_revision(&resp);
        }
        match self.else_get(&resp)? {
            None => Err(StoreError::NotFound(key.to_string())),
            Some(current) => Err(StoreError::Conflict {
                key: key.to_string(),
                expected,
                actual: current.mod_revision,
            }),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<(Revision, KeyValue), StoreError> {
        let full = self.full_key(key);
        let mut compares = vec![Compare::create_revision(
            full.clone(),
            CompareOp::Greater,
            0,
        )];
        if let Some(expected) = expected {
            compares.push(Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                expected,
            ));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([
                TxnOp::delete(full.clone(), Some(DeleteOptions::new().with_prev_key())),
                self.mark(),
            ])
            .or_else([TxnOp::get(full, None)]);
        let resp = self.txn("delete", txn).await?;
        if resp.succeeded() {
            let revision = txn_revision(&resp)?;
            let deleted = match resp.op_responses().into_iter().next() {
                Some(TxnOpResponse::Delete(del)) => match del.prev_kvs().first() {
                    Some(kv) => convert_kv(&self.namespace, kv)?,
                    None => None,
                },
                _ => None,
            };
            return deleted.map(|kv| (revision, kv)).ok_or_else(|| {
                StoreError::Backend(format!("etcd delete of {key:?} returned no previous value"))
            });
        }
        match (self.else_get(&resp)?, expected) {
            (Some(current), Some(expected)) => Err(StoreError::Conflict {
                key: key.to_string(),
                expected,
                actual: current.mod_revision,
            }),
            _ => Err(StoreError::NotFound(key.to_string())),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch, StoreError> {
        let after = after.max(0);
        let known = self.compacted.load(Ordering::SeqCst);
        if after < known {
            return Err(StoreError::Compacted {
                requested: after,
                compacted: known,
            });
        }
        // An etcd watch reports compaction only asynchronously, after it was created. A read at
        // the first revision the watch needs fails at once when that revision is gone, so the
        // caller gets `Compacted` here, as the contract says.
        let probe = GetOptions::new().with_revision(after + 1).with_count_only();
        match self.range(self.marker.clone(), Some(probe)).await {
            Ok(_) => {}
            Err(err) if err.is_future_revision() => {}
            Err(err) if err.is_compacted() => {
                // etcd's compaction point is above `after + 1`; the exact value is not returned.
                let compacted = (after + 1).max(known);
                self.note_compacted(compacted);
                return Err(StoreError::Compacted {
                    requested: after,
                    compacted,
                });
            }
            Err(err) => return Err(err.into_store("watch")),
        }

        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(after + 1)
            .with_prev_key()
            // Large transactions arrive in several responses instead of exceeding the limit.
            .with_fragment();
        let key = self.full_key(prefix);
        // Wait for etcd to confirm the watch, so that refusals surface here.
        let (mut stream, created) = self
            .call("watch", true, || {
                let mut client = self.watch.clone();
                let (key, opts) = (key.clone(), opts.clone());
                async move {
                    let mut stream = client.watch(key, Some(opts)).await?;
                    let created = stream.message().await?;
                    Ok((stream, created))
                }
            })
            .await?;
        match created {
            Some(resp) if resp.created() && !resp.canceled() => {}
            Some(resp) if resp.compact_revision() > 0 => {
                let compacted = resp.compact_revision() - 1;
                self.note_compacted(compacted);
                return Err(StoreError::Compacted {
                    requested: after,
                    compacted,
                });
            }
            Some(resp) => {
                return Err(StoreError::Backend(format!(
                    "etcd refused the watch: {}",
                    resp.cancel_reason()
                )));
            }
            None => return Err(StoreError::Backend("etcd closed the watch stream".into())),
        }

        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let namespace = self.namespace.clone();
        let compacted = self.compacted.clone();
        tokio::spawn(async move {
            let mut last = after;
            loop {
                let message = tokio::select! {
                    // The reader is gone: dropping the stream cancels the etcd watch.
                    _ = tx.closed() => return,
                    message = stream.message() => message,
                };
                let resp = match message {
                    Ok(Some(resp)) => resp,
                    Ok(None) => {
                        let _ = tx
                            .send(Err(StoreError::Backend(
                                "etcd closed the watch stream".into(),
                            )))
                            .await;
                        return;
                    }
                    Err(err) => {
                        let _ = tx.send(Err(etcd_err("watch", err))).await;
                        return;
                    }
                };
                if resp.compact_revision() > 0 {
                    // The watcher fell behind a compaction (etcd cancels it).
                    let point = resp.compact_revision() - 1;
                    compacted.fetch_max(point, Ordering::SeqCst);
                    let _ = tx
                        .send(Err(StoreError::Compacted {
                            requested: last,
                            compacted: point,
                        }))
                        .await;
                    return;
                }
                for event in resp.events() {
                    let event = match convert_event(&namespace, event) {
                        Ok(Some(event)) => event,
                        Ok(None) => continue,
                        Err(err) => {
                            let _ = tx.send(Err(err)).await;
                            return;
                        }
                    };
                    last = event.kv.mod_revision;
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                if resp.canceled() {
                    let reason = resp.cancel_reason().to_string();
                    let _ = tx
                        .send(Err(StoreError::Backend(format!(
                            "etcd cancelled the watch: {reason}"
                        ))))
                        .await;
                    return;
                }
            }
        });
        Ok(Watch::from_channel(rx))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let current = self.global_revision().await?;
        let point = revision.min(current);
        if point <= 0 {
            return Ok(());
        }
        // etcd's compact(R) drops revisions below R, and the contract drops history up to and
        // including `revision`: R = revision + 1, unless that revision does not exist yet (a
        // watch after `point` is then refused by the local check above).
        let target = (point + 1).min(current);
        let compacted = self
            .call_raw(true, || {
                let mut kv = self.kv.clone();
                async move { kv.compact(target, None).await }
            })
            .await;
        match compacted {
            Ok(_) => {}
            // Someone (another API server) already compacted this far.
            Err(err) if err.is_compacted() => {}
            Err(err) => return Err(err.into_store("compact")),
        }
        self.note_compacted(point);
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let resp = self
            .range(self.marker.clone(), None)
            .await
            .map_err(|err| err.into_store("read revision"))?;
        // No write yet in this namespace: the revision of an empty store, as in etcd itself.
        Ok(resp.kvs().first().map_or(1, |kv| kv.mod_revision()))
    }

    async fn compacted_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.compacted.load(Ordering::SeqCst))
    }

    async fn size_bytes(&self) -> Result<u64, StoreError> {
        let status = self
            .call("status", true, || {
                let mut maintenance = self.maintenance.clone();
                async move { maintenance.status().await }
            })
            .await?;
        Ok(status.db_size().max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::etcd_testing::{EtcdCluster, EtcdServer};
    use crate::watch_cache::{DecodeFn, WatchCache};

    /// A fresh etcd with the store in a namespace, so the conformance suite also checks that the
    /// prefix is added and stripped everywhere.
    async fn open() -> (EtcdServer, Arc<dyn Backend>) {
        let server = EtcdServer::start().await;
        let store = EtcdBackend::connect(&server.endpoints(), Some("/maestro-test".into()))
            .await
            .unwrap();
        (server, Arc::new(store))
    }

    crate::conformance::backend_conformance_tests!(open());

    fn quick() -> EtcdOptions {
        EtcdOptions {
            request_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(250),
            ..EtcdOptions::default()
        }
    }

    async fn raw(server: &EtcdServer) -> Client {
        Client::connect(server.endpoints(), None).await.unwrap()
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_are_stored_as_given_without_a_namespace() {
        let server = EtcdServer::start().await;
        let store = EtcdBackend::connect(&server.endpoints(), None)
            .await
            .unwrap();
        let rev = store
            .create("/a/x", Bytes::from_static(b"v"))
            .await
            .unwrap();
        let mut client = raw(&server).await;
        let resp = client.get("/a/x", None).await.unwrap();
        assert_eq!(resp.kvs()[0].value(), b"v");
        assert_eq!(resp.kvs()[0].mod_revision(), rev);
        // The revision marker stays out of every listing, even of the whole keyspace.
        let (items, _) = store.list("").await.unwrap();
        let keys: Vec<_> = items.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["/a/x"]);
        let mut watch = store.watch("", 0).await.unwrap();
        let event = watch.next().await.unwrap().unwrap();
        assert_eq!(event.kv.key, "/a/x");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn namespaces_isolate_tenants_of_a_shared_etcd() {
        let server = EtcdServer::start().await;
        let a = Arc::new(
            EtcdBackend::connect(&server.endpoints(), Some("/tenant-a".into()))
                .await
                .unwrap(),
        );
        let b = EtcdBackend::connect(&server.endpoints(), Some("/tenant-b".into()))
            .await
            .unwrap();
        let ra = a.create("/k", Bytes::from_static(b"a")).await.unwrap();
        let rb = b.create("/k", Bytes::from_static(b"b")).await.unwrap();
        assert!(rb > ra, "tenants share etcd's revision");
        assert_eq!(a.get("/k").await.unwrap().unwrap().value.as_ref(), b"a");
        assert_eq!(b.get("/k").await.unwrap().unwrap().value.as_ref(), b"b");
        let (items, _) = a.list("/").await.unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key, "/k");
        let mut raw = raw(&server).await;
        assert_eq!(
            raw.get("/tenant-a/k", None).await.unwrap().kvs()[0].value(),
            b"a"
        );

        // A's current revision is its own latest write, not the shared etcd's, so its watch
        // cache stays fresh however much the other tenants write.
        let decode: DecodeFn<String> =
            Arc::new(|kv: &KeyValue| String::from_utf8(kv.value.to_vec()).ok());
        let cache = WatchCache::start(a.clone(), "/", decode, 100)
            .await
            .unwrap();
        for i in 0..5 {
            b.create(&format!("/other/{i}"), Bytes::from_static(b"x"))
                .await
                .unwrap();
            raw.put(format!("/foreign/{i}"), "x", None).await.unwrap();
        }
        assert_eq!(a.current_revision().await.unwrap(), ra);
        let started = Instant::now();
        cache.fresh().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        let ra2 = a.create("/k2", Bytes::from_static(b"a2")).await.unwrap();
        assert_eq!(cache.fresh().await.unwrap(), ra2);
        assert_eq!(cache.count("/"), 2);

        let mut watch = a.watch("/", 0).await.unwrap();
        let keys = [
            watch.next().await.unwrap().unwrap().kv.key,
            watch.next().await.unwrap().unwrap().kv.key,
        ];
        assert_eq!(keys, ["/k", "/k2"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compaction_by_another_client_is_learned_from_watches() {
        let server = EtcdServer::start().await;
        let first = EtcdBackend::connect(&server.endpoints(), Some("/m".into()))
            .await
            .unwrap();
        let r1 = first.create("/a", Bytes::from_static(b"1")).await.unwrap();
        let r2 = first
            .update("/a", Bytes::from_static(b"2"), r1)
            .await
            .unwrap();
        let r3 = first
            .update("/a", Bytes::from_static(b"3"), r2)
            .await
            .unwrap();
        first.compact(r2).await.unwrap();

        let second = EtcdBackend::connect(&server.endpoints(), Some("/m".into()))
            .await
            .unwrap();
        assert_eq!(
            second.compacted_revision().await.unwrap(),
            0,
            "not known yet"
        );
        assert!(matches!(
            second.watch("/", r1).await,
            Err(StoreError::Compacted { requested, .. }) if requested == r1
        ));
        assert!(second.compacted_revision().await.unwrap() > r1);
        let mut watch = second.watch("/", r2).await.unwrap();
        assert_eq!(watch.next().await.unwrap().unwrap().kv.mod_revision, r3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_watch_overtaken_by_compaction_reports_it() {
        let server = EtcdServer::start().await;
        let store = EtcdBackend::connect(&server.endpoints(), Some("/m".into()))
            .await
            .unwrap();
        let r1 = store.create("/a", Bytes::from_static(b"1")).await.unwrap();
        let mut rev = r1;
        for i in 0..20 {
            rev = store
                .update("/a", Bytes::from(format!("{i}")), rev)
                .await
                .unwrap();
        }
        // The watch starts after the probe said its history exists; a compaction in between
        // must arrive as an error in the stream, never as a silent gap.
        let mut client = raw(&server).await;
        let mut watch = store.watch("/", r1).await.unwrap();
        client.compact(rev, None).await.unwrap();
        let expected: Vec<Revision> = (r1 + 1..=rev).collect();
        let mut seen = Vec::new();
        let mut compacted = false;
        while seen.len() < expected.len() {
            let item = tokio::time::timeout(Duration::from_secs(5), watch.next())
                .await
                .expect("the watch delivers or errs")
                .expect("the watch says why it ends");
            match item {
                Ok(event) => seen.push(event.kv.mod_revision),
                Err(StoreError::Compacted { .. }) => {
                    compacted = true;
                    break;
                }
                Err(err) => panic!("unexpected error {err}"),
            }
        }
        // Either every event arrived (etcd sent them before compacting) or the stream said why
        // it stopped; what did arrive is a gapless run after r1.
        assert_eq!(seen, expected[..seen.len()]);
        assert!(compacted || seen.len() == expected.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn long_lists_are_read_page_by_page() {
        let server = EtcdServer::start().await;
        let options = EtcdOptions {
            list_page_size: 7,
            ..EtcdOptions::default()
        };
        let store = EtcdBackend::connect_with(&server.endpoints(), Some("/p".into()), options)
            .await
            .unwrap();
        for i in 0..30 {
            store
                .create(&format!("/l/{i:02}"), Bytes::from(vec![i as u8]))
                .await
                .unwrap();
        }
        store.create("/m/after", Bytes::new()).await.unwrap();
        let (items, rev) = store.list("/l/").await.unwrap();
        let keys: Vec<String> = items.iter().map(|kv| kv.key.clone()).collect();
        let expected: Vec<String> = (0..30).map(|i| format!("/l/{i:02}")).collect();
        assert_eq!(keys, expected);
        assert_eq!(rev, store.current_revision().await.unwrap());
        let (all, _) = store.list("").await.unwrap();
        assert_eq!(all.len(), 31);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_etcd_surfaces_as_errors_not_hangs() {
        let mut server = EtcdServer::start().await;
        let store = EtcdBackend::connect_with(&server.endpoints(), None, quick())
            .await
            .unwrap();
        let rev = store.create("/x", Bytes::from_static(b"v")).await.unwrap();
        let mut watch = store.watch("/", rev).await.unwrap();
        server.kill();

        let started = Instant::now();
        let watch_end = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("the watch notices the lost connection");
        assert!(
            matches!(watch_end, None | Some(Err(StoreError::Backend(_)))),
            "{watch_end:?}"
        );
        // The process is gone, so its connections closed: no keep-alive wait.
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(store.get("/x").await, Err(StoreError::Backend(_))));
        assert!(matches!(
            store.create("/y", Bytes::new()).await,
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(store.list("/").await, Err(StoreError::Backend(_))));
        assert!(matches!(
            store.current_revision().await,
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            store.watch("/", rev).await,
            Err(StoreError::Backend(_))
        ));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "each request is bounded by the request timeout: {:?}",
            started.elapsed()
        );

        let started = Instant::now();
        let refused = EtcdBackend::connect_with(&server.endpoints(), None, quick()).await;
        assert!(matches!(refused, Err(StoreError::Backend(_))));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    /// Three members; the leader is killed half-way through a run of writes. Writes must
    /// resume on the survivors and every acknowledged write must still be there, in order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leader_failover_loses_no_acknowledged_write() {
        const WRITES: usize = 200;
        let started = Instant::now();
        let mut cluster = EtcdCluster::start(3).await;
        let options = EtcdOptions {
            request_timeout: Duration::from_secs(2),
            ..EtcdOptions::default()
        };
        let store = EtcdBackend::connect_with(&cluster.endpoints(), Some("/ha".into()), options)
            .await
            .unwrap();
        let first = store.current_revision().await.unwrap();

        let mut acknowledged = Vec::new();
        let mut failed_attempts = 0;
        let mut outage = Duration::ZERO;
        for i in 0..WRITES {
            if i == WRITES / 2 {
                let leader = cluster.leader().await.expect("the cluster has a leader");
                cluster.kill(leader);
            }
            let key = format!("/k/{i:04}");
            let value = Bytes::from(format!("value {i}"));
            let attempt_started = Instant::now();
            loop {
                match store.create(&key, value.clone()).await {
                    Ok(rev) => {
                        acknowledged.push((key, rev));
                        break;
                    }
                    // A timed-out attempt may have been applied: read it back.
                    Err(StoreError::AlreadyExists(_)) => {
                        let kv = store.get(&key).await.unwrap().unwrap();
                        assert_eq!(kv.value, value);
                        acknowledged.push((key, kv.mod_revision));
                        break;
                    }
                    Err(err) => {
                        failed_attempts += 1;
                        eprintln!(
                            "write {i} failed after {:?}: {err}",
                            attempt_started.elapsed()
                        );
                        assert!(
                            attempt_started.elapsed() < Duration::from_secs(15),
                            "writes did not resume after the leader was killed: {err}"
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            outage = outage.max(attempt_started.elapsed());
        }

        let (items, _) = store.list("/k/").await.unwrap();
        let listed: Vec<(String, Revision)> = items
            .into_iter()
            .map(|kv| (kv.key, kv.mod_revision))
            .collect();
        assert_eq!(listed, acknowledged, "every acknowledged write is there");
        assert!(acknowledged.windows(2).all(|w| w[0].1 < w[1].1));

        // The history survived too: a watch from before the run replays it in order.
        let mut watch = store.watch("/k/", first).await.unwrap();
        for (key, rev) in &acknowledged {
            let event = tokio::time::timeout(Duration::from_secs(5), watch.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!((&event.kv.key, event.kv.mod_revision), (key, *rev));
        }
        eprintln!(
            "failover: {WRITES} writes, {failed_attempts} failed attempts, longest write \
             {outage:?}, total {:?}",
            started.elapsed()
        );
    }
}
