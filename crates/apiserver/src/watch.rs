//! Watch over HTTP: a chunked stream of `{"type":...,"object":...}` lines, one per event,
//! flushed as they happen; initial ADDED events or a replay from a resourceVersion; selector
//! transitions (an object leaving the selection is DELETED for that watcher); bookmarks;
//! `sendInitialEvents`; a 410 ERROR event for versions older than the cache window.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use maestro_api::ApiError;
use maestro_store::CacheEventKind;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::object::StoredObject;
use crate::registry::{ListOptions, Registry, Resource};
use crate::request::{Query, Wanted};
use crate::response::{Body, bytes_response};
use crate::tables;

/// How often bookmarks are sent to clients that allow them.
static BOOKMARK_INTERVAL_MS: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(60_000);

/// Set how often watches that allow bookmarks get one (the server's `--watch-bookmark-interval`;
/// Kubernetes sends them about once a minute).
pub fn set_bookmark_interval(interval: Duration) {
    BOOKMARK_INTERVAL_MS.store(
        interval.as_millis().clamp(100, u128::from(u64::MAX)) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
}

fn bookmark_interval() -> Duration {
    Duration::from_millis(BOOKMARK_INTERVAL_MS.load(std::sync::atomic::Ordering::Relaxed))
}
/// Watch length when the client gives no timeoutSeconds (Kubernetes picks 30-60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Number of open watches (for metrics).
pub static OPEN_WATCHES: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

struct WatchGuard;

impl WatchGuard {
    fn new() -> Self {
        OPEN_WATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        WatchGuard
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        OPEN_WATCHES.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn selected(obj: &StoredObject, opts: &ListOptions) -> bool {
    opts.labels.matches_map(&obj.labels) && opts.fields.matches(|f| obj.field(f))
}

/// Serve a watch request.
pub async fn serve(
    registry: Arc<Registry>,
    res: Arc<Resource>,
    namespace: Option<String>,
    query: &Query,
    how: Wanted,
) -> Result<Response<Body>, ApiError> {
    let opts = query.list_options()?;
    let allow_bookmarks = query.flag("allowWatchBookmarks");
    let send_initial = query.flag("sendInitialEvents");
    if send_initial && !allow_bookmarks {
        return Err(ApiError::invalid(
            "",
            "ListOptions",
            "",
            vec![maestro_api::Cause::forbidden(
                "sendInitialEvents",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            )],
        ));
    }
    let from = match query.get("resourceVersion") {
        _ if send_initial => None,
        None | Some("") | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv:?}")))?,
        ),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let body =
        StreamBody::new(ReceiverStream::new(rx).map(|b| Ok::<_, std::io::Error>(Frame::data(b))))
            .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = http::StatusCode::OK;
    let template = bytes_response(200, "application/json", Bytes::new());
    *response.headers_mut() = template.headers().clone();
    response.headers_mut().insert(
        http::header::TRANSFER_ENCODING,
        http::HeaderValue::from_static("chunked"),
    );

    // Start from a snapshot that holds every acknowledged write, as a consistent list would.
    registry
        .cache()
        .fresh()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut watch = match registry.watch(&res, namespace.as_deref(), &opts, from) {
        Ok(w) => w,
        Err(err) if err.code == 410 => {
            // An expired version is reported in the stream, so that clients relist.
            let line = event_line("ERROR", &err.to_status());
            tokio::spawn(async move {
                let _ = tx.send(line).await;
            });
            return Ok(response);
        }
        Err(err) => return Err(err),
    };
    tokio::spawn(async move {
        let _guard = WatchGuard::new();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut bookmarks = tokio::time::interval(bookmark_interval());
        bookmarks.tick().await;
        let mut initial_end_sent = !send_initial;
        let mut first_table = true;
        loop {
            if !initial_end_sent && !watch.has_pending() {
                let line = bookmark(&res, watch.revision(), true);
                if tx.send(line).await.is_err() {
                    return;
                }
                initial_end_sent = true;
                continue;
            }
            tokio::select! {
                event = watch.next() => {
                    let Ok(event) = event else { return };
                    let now_selected = selected(&event.object, &opts);
                    let was_selected = event.prev.as_deref().map(|p| selected(p, &opts));
                    let kind = match (event.kind, was_selected, now_selected) {
                        (CacheEventKind::Added, _, true) => "ADDED",
                        (CacheEventKind::Modified, Some(true), true) => "MODIFIED",
                        (CacheEventKind::Modified, _, true) => "ADDED",
                        (CacheEventKind::Modified, Some(true), false) => "DELETED",
                        (CacheEventKind::Deleted, _, true) => "DELETED",
                        _ => continue,
                    };
                    let deleted = event.kind == CacheEventKind::Deleted;
                    let line = render_event(&registry, &res, kind, &event.object, deleted.then_some(event.revision), how, &mut first_table);
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                _ = bookmarks.tick(), if allow_bookmarks => {
                    if let Some(rev) = watch.bookmark_revision()
                        && tx.send(bookmark(&res, rev, false)).await.is_err()
                    {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(response)
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut out = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn bookmark(res: &Resource, revision: i64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": res.info.kind, "apiVersion": res.info.api_version(), "metadata": metadata}),
    )
}

fn render_event(
    registry: &Registry,
    res: &Resource,
    kind: &str,
    obj: &StoredObject,
    deleted_at: Option<i64>,
    how: Wanted,
    first_table: &mut bool,
) -> Bytes {
    let needs_value = how != Wanted::Json
        || deleted_at.is_some()
        || res.storage_api_version() != res.info.api_version();
    if !needs_value {
        // Fast path: splice the stored JSON.
        let mut out = Vec::with_capacity(obj.json.len() + 32);
        out.extend_from_slice(format!("{{\"type\":\"{kind}\",\"object\":").as_bytes());
        out.extend_from_slice(&obj.json);
        out.extend_from_slice(b"}\n");
        return Bytes::from(out);
    }
    let mut value = registry.present(res, obj);
    if let Some(rev) = deleted_at {
        maestro_api::meta::metadata_mut(&mut value)
            .insert("resourceVersion".into(), json!(rev.to_string()));
    }
    let object = match how {
        Wanted::Table => {
            let rv = maestro_api::meta::resource_version(&value)
                .unwrap_or_default()
                .to_string();
            // Column definitions go with the first event only; kubectl keeps them.
            let rows = tables::Rows::new(res, tables::RowObject::Metadata);
            let table = rows.single(&rv, *first_table, value);
            *first_table = false;
            table
        }
        Wanted::PartialObjectMetadata | Wanted::PartialObjectMetadataList => {
            maestro_api::table::partial_object_metadata(&value)
        }
        _ => value,
    };
    event_line(kind, &object)
}
