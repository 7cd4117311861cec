//! The backend conformance suite: what every [`Backend`] must do, written once and run against
//! each backend (redb in `redb_backend`, etcd in `etcd_backend`) through
//! [`backend_conformance_tests!`], including the [`WatchCache`] running on top of it.
//!
//! Each check takes a fresh, empty store.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::backend::{Backend, EventKind, KeyValue, StoreError, Watch};
use crate::watch_cache::{CacheEventKind, DecodeFn, WatchCache};

/// Generate one `#[tokio::test]` per conformance check. `$open` is an expression evaluating to a
/// future of `(guard, Arc<dyn Backend>)`: a fresh, empty store, and whatever must live as long as
/// it (a temporary directory, an etcd process).
macro_rules! backend_conformance_tests {
    ($open:expr) => {
        $crate::conformance::backend_conformance_tests!(@each $open;
            fresh_store_starts_at_revision_one,
            create_update_delete_follow_revisions,
            updates_and_deletes_of_missing_keys_fail,
            values_are_binary_safe,
            list_is_by_prefix_in_key_order,
            watch_replays_history_then_follows,
            watch_from_now_sees_only_new_events,
            compaction_expires_old_watches,
            compaction_keeps_newer_history,
            concurrent_writers_get_distinct_revisions,
            size_is_reported,
            cache_reads_see_acknowledged_writes,
            cache_watch_from_now_from_revision_and_too_old,
            cache_watchers_only_see_their_prefix_and_bookmark_after_draining,
            cache_follows_deletes_and_recreates,
        );
    };
    (@each $open:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_guard, store) = $open.await;
                $crate::conformance::$check(store).await;
            }
        )*
    };
}
pub(crate) use backend_conformance_tests;

/// Longest wait for one watch event: a missing event fails instead of hanging the suite.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

async fn next_event(watch: &mut Watch) -> crate::backend::Event {
    tokio::time::timeout(EVENT_TIMEOUT, watch.next())
        .await
        .expect("watch event within the timeout")
        .expect("watch still open")
        .expect("watch event, not an error")
}

/// No event arrives within a short while.
async fn assert_quiet(watch: &mut Watch) {
    if let Ok(event) = tokio::time::timeout(Duration::from_millis(300), watch.next()).await {
        panic!("unexpected watch item: {event:?}");
    }
}

pub(crate) async fn fresh_store_starts_at_revision_one(store: Arc<dyn Backend>) {
    // Revision 0 keeps its Kubernetes meaning of "any version", as in etcd.
    assert_eq!(store.current_revision().await.unwrap(), 1);
    let (items, rev) = store.list("/").await.unwrap();
    assert!(items.is_empty());
    assert_eq!(rev, 1);
    assert_eq!(store.create("/k", b("v")).await.unwrap(), 2);
    assert_eq!(store.current_revision().await.unwrap(), 2);
}

pub(crate) async fn create_update_delete_follow_revisions(store: Arc<dyn Backend>) {
    let before = store.current_revision().await.unwrap();
    let r1 = store.create("/a/1", b("one")).await.unwrap();
    assert!(r1 > before);
    assert_eq!(
        store.create("/a/1", b("x")).await,
        Err(StoreError::AlreadyExists("/a/1".into()))
    );
    let r2 = store.update("/a/1", b("two"), r1).await.unwrap();
    assert!(r2 > r1);
    assert_eq!(
        store.update("/a/1", b("three"), r1).await,
        Err(StoreError::Conflict {
            key: "/a/1".into(),
            expected: r1,
            actual: r2
        })
    );
    let kv = store.get("/a/1").await.unwrap().unwrap();
    assert_eq!(
        kv,
        KeyValue {
            key: "/a/1".into(),
            value: b("two"),
            create_revision: r1,
            mod_revision: r2,
        }
    );
    assert_eq!(
        store.delete("/a/1", Some(r1)).await,
        Err(StoreError::Conflict {
            key: "/a/1".into(),
            expected: r1,
            actual: r2
        })
    );
    let (r3, deleted) = store.delete("/a/1", Some(r2)).await.unwrap();
    assert!(r3 > r2);
    assert_eq!(deleted, kv, "delete returns the value it removed");
    assert_eq!(store.current_revision().await.unwrap(), r3);
    assert_eq!(store.get("/a/1").await.unwrap(), None);

    // A key created again starts a new life.
    let r4 = store.create("/a/1", b("again")).await.unwrap();
    let kv = store.get("/a/1").await.unwrap().unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (r4, r4));
    let (r5, deleted) = store.delete("/a/1", None).await.unwrap();
    assert!(r5 > r4);
    assert_eq!(deleted.value, b("again"));
}

pub(crate) async fn updates_and_deletes_of_missing_keys_fail(store: Arc<dyn Backend>) {
    let before = store.current_revision().await.unwrap();
    let missing = || Err(StoreError::NotFound("/m/x".into()));
    assert_eq!(store.update("/m/x", b("v"), 5).await, missing());
    // A missing key has no revision: expecting 0 must not create it.
    assert_eq!(store.update("/m/x", b("v"), 0).await, missing());
    assert_eq!(store.get("/m/x").await.unwrap(), None);
    assert_eq!(store.delete("/m/x", None).await.map(|_| 0), missing());
    assert_eq!(store.delete("/m/x", Some(3)).await.map(|_| 0), missing());
    assert_eq!(
        store.current_revision().await.unwrap(),
        before,
        "failed writes take no revision"
    );
}

pub(crate) async fn values_are_binary_safe(store: Arc<dyn Backend>) {
    let value = Bytes::from((0..=255u8).chain([0, 0, 255]).collect::<Vec<_>>());
    store.create("/bin/x", value.clone()).await.unwrap();
    assert_eq!(store.get("/bin/x").await.unwrap().unwrap().value, value);
    store.create("/bin/empty", Bytes::new()).await.unwrap();
    assert_eq!(
        store.get("/bin/empty").await.unwrap().unwrap().value,
        Bytes::new()
    );
    let (items, _) = store.list("/bin/").await.unwrap();
    assert_eq!(items.len(), 2);
}

pub(crate) async fn list_is_by_prefix_in_key_order(store: Arc<dyn Backend>) {
    for key in ["/p/b", "/p/a", "/q/a", "/p/c", "/pa/x", "/p/a/deep", "/p/é"] {
        store
            .create(key, Bytes::from(key.to_string()))
            .await
            .unwrap();
    }
    let (items, rev) = store.list("/p/").await.unwrap();
    let keys: Vec<_> = items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/p/a", "/p/a/deep", "/p/b", "/p/c", "/p/é"]);
    assert!(items.iter().all(|kv| kv.value == kv.key.as_bytes()));
    assert_eq!(rev, store.current_revision().await.unwrap());
    let (all, _) = store.list("/").await.unwrap();
    assert_eq!(all.len(), 7);
    let (none, rev_none) = store.list("/zzz/").await.unwrap();
    assert!(none.is_empty());
    assert_eq!(rev_none, rev, "an empty list still reports the revision");
}

pub(crate) async fn watch_replays_history_then_follows(store: Arc<dyn Backend>) {
    let r1 = store.create("/w/a", b("1")).await.unwrap();
    store.create("/x/ignored", b("1")).await.unwrap();
    let r2 = store.update("/w/a", b("2"), r1).await.unwrap();
    let mut watch = store.watch("/w/", r1 - 1).await.unwrap();
    let first = next_event(&mut watch).await;
    assert_eq!(
        (first.kind, first.kv.key.as_str(), first.kv.mod_revision),
        (EventKind::Put, "/w/a", r1)
    );
    assert_eq!(first.kv.create_revision, r1);
    let second = next_event(&mut watch).await;
    assert_eq!(
        (second.kv.mod_revision, second.kv.value.clone()),
        (r2, b("2"))
    );
    // Live from here.
    store.create("/x/other", b("1")).await.unwrap();
    let (r3, _) = store.delete("/w/a", None).await.unwrap();
    let third = next_event(&mut watch).await;
    assert_eq!(
        third,
        crate::backend::Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: "/w/a".into(),
                value: b("2"),
                create_revision: r1,
                mod_revision: r3,
            },
        },
        "a delete carries the last value and the revision of the delete"
    );
    let r4 = store.create("/w/b", b("b")).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv.mod_revision, r4);
    assert_quiet(&mut watch).await;
}

pub(crate) async fn watch_from_now_sees_only_new_events(store: Arc<dyn Backend>) {
    store.create("/n/old", b("old")).await.unwrap();
    let now = store.current_revision().await.unwrap();
    let mut watch = store.watch("/n/", now).await.unwrap();
    assert_quiet(&mut watch).await;
    let r = store.create("/n/new", b("new")).await.unwrap();
    let event = next_event(&mut watch).await;
    assert_eq!(
        (event.kv.key.as_str(), event.kv.mod_revision),
        ("/n/new", r)
    );
}

pub(crate) async fn compaction_expires_old_watches(store: Arc<dyn Backend>) {
    let r1 = store.create("/c/a", b("1")).await.unwrap();
    let r2 = store.update("/c/a", b("2"), r1).await.unwrap();
    store.compact(r2).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), r2);
    assert!(matches!(
        store.watch("/c/", r1).await,
        Err(StoreError::Compacted { requested, .. }) if requested == r1
    ));
    let mut watch = store.watch("/c/", r2).await.unwrap();
    let r3 = store.update("/c/a", b("3"), r2).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv.mod_revision, r3);
    // Current state is untouched by compaction.
    assert_eq!(store.get("/c/a").await.unwrap().unwrap().value, b("3"));
}

pub(crate) async fn compaction_keeps_newer_history(store: Arc<dyn Backend>) {
    let r1 = store.create("/h/a", b("1")).await.unwrap();
    let r2 = store.update("/h/a", b("2"), r1).await.unwrap();
    let r3 = store.create("/h/b", b("b")).await.unwrap();
    store.compact(r1).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), r1);
    // Compacting an older point again changes nothing.
    store.compact(r1 - 1).await.unwrap();
    assert_eq!(store.compacted_revision().await.unwrap(), r1);
    assert!(matches!(
        store.watch("/h/", r1 - 1).await,
        Err(StoreError::Compacted { .. })
    ));
    let mut watch = store.watch("/h/", r1).await.unwrap();
    assert_eq!(next_event(&mut watch).await.kv.mod_revision, r2);
    assert_eq!(next_event(&mut watch).await.kv.mod_revision, r3);
    assert_quiet(&mut watch).await;
}

pub(crate) async fn concurrent_writers_get_distinct_revisions(store: Arc<dyn Backend>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for j in 0..10 {
                revs.push(store.create(&format!("/g/{i}/{j}"), b("x")).await.unwrap());
            }
            revs
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        let revs = task.await.unwrap();
        assert!(
            revs.windows(2).all(|w| w[0] < w[1]),
            "one client's writes are ordered"
        );
        acknowledged.extend(revs);
    }
    let (items, _) = store.list("/g/").await.unwrap();
    assert_eq!(items.len(), 160);
    let mut revs: Vec<_> = items.iter().map(|kv| kv.mod_revision).collect();
    revs.sort();
    revs.dedup();
    assert_eq!(revs.len(), 160, "every write has its own revision");
    acknowledged.sort();
    assert_eq!(acknowledged, revs);
}

pub(crate) async fn size_is_reported(store: Arc<dyn Backend>) {
    store.create("/s/x", b("x")).await.unwrap();
    assert!(store.size_bytes().await.unwrap() > 0);
}

async fn cache_on(store: &Arc<dyn Backend>, capacity: usize) -> Arc<WatchCache<String>> {
    let decode: DecodeFn<String> =
        Arc::new(|kv: &KeyValue| String::from_utf8(kv.value.to_vec()).ok());
    WatchCache::start(store.clone(), "/", decode, capacity)
        .await
        .unwrap()
}

async fn next_cache_event<T>(
    watch: &mut crate::CacheWatch<T>,
) -> Arc<crate::watch_cache::CacheEvent<T>> {
    tokio::time::timeout(EVENT_TIMEOUT, watch.next())
        .await
        .expect("cache event within the timeout")
        .expect("cache event, not an error")
}

pub(crate) async fn cache_reads_see_acknowledged_writes(store: Arc<dyn Backend>) {
    store.create("/r/before", b("B")).await.unwrap();
    let cache = cache_on(&store, 100).await;
    store.create("/r/a", b("A")).await.unwrap();
    let rev = cache.fresh().await.unwrap();
    let (items, list_rev) = cache.list("/r/");
    let values: Vec<&str> = items.iter().map(|s| s.as_str()).collect();
    assert_eq!(values, ["A", "B"]);
    assert_eq!(list_rev, rev);
    assert_eq!(
        cache.get("/r/a").map(|(o, _)| (*o).clone()),
        Some("A".to_string())
    );
    assert_eq!(cache.count("/r/"), 2);
}

pub(crate) async fn cache_watch_from_now_from_revision_and_too_old(store: Arc<dyn Backend>) {
    let cache = cache_on(&store, 2).await;
    let r1 = store.create("/w/a", b("1")).await.unwrap();
    cache.fresh().await.unwrap();
    let mut initial = cache.watch("/w/", None).unwrap();
    let first = next_cache_event(&mut initial).await;
    assert_eq!((first.kind, first.revision), (CacheEventKind::Added, r1));

    let r2 = store.update("/w/a", b("2"), r1).await.unwrap();
    let second = next_cache_event(&mut initial).await;
    assert_eq!(
        (
            second.kind,
            second.revision,
            second.prev.as_deref().map(String::as_str)
        ),
        (CacheEventKind::Modified, r2, Some("1"))
    );

    let mut resumed = cache.watch("/w/", Some(r1)).unwrap();
    assert_eq!(next_cache_event(&mut resumed).await.revision, r2);

    // Push the window past r1: capacity is two events.
    let r3 = store.update("/w/a", b("3"), r2).await.unwrap();
    let (r4, _) = store.delete("/w/a", None).await.unwrap();
    cache.fresh().await.unwrap();
    assert!(matches!(
        cache.watch("/w/", Some(r1)),
        Err(StoreError::Compacted { .. })
    ));
    let mut recent = cache.watch("/w/", Some(r3)).unwrap();
    let deleted = next_cache_event(&mut recent).await;
    assert_eq!(
        (deleted.kind, deleted.revision, deleted.object.as_str()),
        (CacheEventKind::Deleted, r4, "3")
    );
}

pub(crate) async fn cache_watchers_only_see_their_prefix_and_bookmark_after_draining(
    store: Arc<dyn Backend>,
) {
    let cache = cache_on(&store, 100).await;
    let mut watch = cache.watch("/a/", None).unwrap();
    store.create("/b/x", b("x")).await.unwrap();
    let ra = store.create("/a/x", b("y")).await.unwrap();
    let event = next_cache_event(&mut watch).await;
    assert_eq!((event.key.as_str(), event.revision), ("/a/x", ra));
    assert_eq!(watch.bookmark_revision(), Some(ra));
}

pub(crate) async fn cache_follows_deletes_and_recreates(store: Arc<dyn Backend>) {
    let cache = cache_on(&store, 100).await;
    let mut watch = cache.watch("/d/", None).unwrap();
    let r1 = store.create("/d/x", b("1")).await.unwrap();
    let (r2, _) = store.delete("/d/x", Some(r1)).await.unwrap();
    let r3 = store.create("/d/x", b("2")).await.unwrap();
    let kinds: Vec<_> = [
        next_cache_event(&mut watch).await,
        next_cache_event(&mut watch).await,
        next_cache_event(&mut watch).await,
    ]
    .iter()
    .map(|e| (e.kind, e.revision, e.object.as_str().to_string()))
    .collect();
    assert_eq!(
        kinds,
        [
            (CacheEventKind::Added, r1, "1".to_string()),
            (CacheEventKind::Deleted, r2, "1".to_string()),
            (CacheEventKind::Added, r3, "2".to_string()),
        ]
    );
    cache.fresh().await.unwrap();
    assert_eq!(cache.get("/d/x").map(|(_, rev)| rev), Some(r3));
}
