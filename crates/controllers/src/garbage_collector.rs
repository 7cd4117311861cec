//! Garbage collection through ownerReferences, as Kubernetes does it:
//! - a dependent whose owners are all gone (by uid) is deleted;
//! - an owner deleted with `propagationPolicy: Foreground` carries the `foregroundDeletion`
//!   finalizer: its dependents are deleted (in the foreground too) and the finalizer is removed
//!   once none is left;
//! - an owner deleted with `Orphan` carries the `orphan` finalizer: the ownerReferences pointing
//!   at it are removed from its dependents, then the finalizer.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use maestro_api::meta;
use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::Propagation;
use maestro_store::{CacheEvent, CacheEventKind};
use serde_json::Value;

use crate::queue::{self, Reconciler};
use crate::writes;

const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

#[derive(Default)]
struct GarbageCollector {
    /// uid → key of every live object.
    keys_by_uid: HashMap<String, String>,
    /// owner uid → keys of its dependents.
    dependents: HashMap<String, BTreeSet<String>>,
}

impl GarbageCollector {
    fn forget_owners(&mut self, key: &str, obj: &StoredObject) {
        for owner in &obj.owner_uids {
            if let Some(set) = self.dependents.get_mut(owner) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    async fn delete(
        registry: &Registry,
        key: &str,
        propagation: Propagation,
        uid: &str,
    ) -> Result<(), String> {
        let (Some(res), Some((obj, _))) =
            (registry.resource_for_key(key), registry.cache().get(key))
        else {
            return Ok(());
        };
        writes::delete(
            registry,
            &res,
            obj.namespace.as_deref(),
            &obj.name,
            uid,
            Some(propagation),
        )
        .await
    }
}

impl Reconciler for GarbageCollector {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        // Works from the metadata the cache extracted: no object is parsed per event.
        let obj = &event.object;
        let key = event.key.clone();
        let mut keys = Vec::new();
        if let Some(prev) = &event.prev {
            self.forget_owners(&key, prev);
        }
        match event.kind {
            CacheEventKind::Deleted => {
                self.keys_by_uid.remove(&obj.uid);
                self.forget_owners(&key, obj);
                // Dependents may be orphans now; owners waiting in the foreground may be done.
                keys.extend(self.dependents_of(&obj.uid));
                keys.extend(
                    obj.owner_uids
                        .iter()
                        .filter_map(|u| self.keys_by_uid.get(u).cloned()),
                );
            }
            CacheEventKind::Added | CacheEventKind::Modified => {
                self.keys_by_uid.insert(obj.uid.clone(), key.clone());
                for owner in &obj.owner_uids {
                    self.dependents
                        .entry(owner.clone())
                        .or_default()
                        .insert(key.clone());
                }
                let waits_for_gc = obj
                    .finalizers
                    .iter()
                    .any(|f| f == FOREGROUND || f == ORPHAN);
                if !obj.owner_uids.is_empty() || (obj.deleting && waits_for_gc) {
                    keys.push(key);
                }
            }
        }
        keys
    }

    fn resync_keys(&mut self, _registry: &Registry) -> Vec<String> {
        let mut keys: BTreeSet<String> = self.dependents.values().flatten().cloned().collect();
        keys.extend(
            self.dependents
                .keys()
                .filter_map(|u| self.keys_by_uid.get(u).cloned()),
        );
        keys.into_iter().collect()
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some((stored, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            let uid = stored.uid.clone();
            let finalizers = &stored.finalizers;
            if stored.deleting {
                if finalizers.iter().any(|f| f == ORPHAN) {
                    for dependent in self.dependents_of(&uid) {
                        let owner = uid.clone();
                        writes::edit_key(registry, &dependent, move |d| {
                            if let Some(refs) = d
                                .pointer_mut("/metadata/ownerReferences")
                                .and_then(Value::as_array_mut)
                            {
                                refs.retain(|r| {
                                    r.get("uid").and_then(Value::as_str) != Some(owner.as_str())
                                });
                                if refs.is_empty() {
                                    meta::metadata_mut(d).remove("ownerReferences");
                                }
                            }
                        })
                        .await?;
                    }
                    return writes::remove_finalizer(registry, key, ORPHAN).await;
                }
                if finalizers.iter().any(|f| f == FOREGROUND) {
                    let dependents = self.dependents_of(&uid);
                    for dependent in &dependents {
                        let Some((dep, _)) = registry.cache().get(dependent) else {
                            continue;
                        };
                        if !dep.deleting {
                            Self::delete(registry, dependent, Propagation::Foreground, &dep.uid)
                                .await?;
                        }
                    }
                    let remaining = dependents
                        .iter()
                        .filter(|d| registry.cache().get(d).is_some())
                        .count();
                    if remaining == 0 {
                        return writes::remove_finalizer(registry, key, FOREGROUND).await;
                    }
                    return Ok(());
                }
            }
            let owners = &stored.owner_uids;
            if !owners.is_empty() && owners.iter().all(|o| !self.keys_by_uid.contains_key(o)) {
                if !stored.deleting {
                    Self::delete(registry, key, Propagation::Background, &uid).await?;
                }
            } else {
                // References to owners that are gone are dropped while others remain.
                let absent: Vec<String> = owners
                    .iter()
                    .filter(|o| !self.keys_by_uid.contains_key(*o))
                    .cloned()
                    .collect();
                if !absent.is_empty() {
                    writes::edit_key(registry, key, move |d| {
                        if let Some(refs) = d
                            .pointer_mut("/metadata/ownerReferences")
                            .and_then(Value::as_array_mut)
                        {
                            refs.retain(|r| {
                                r.get("uid")
                                    .and_then(Value::as_str)
                                    .is_none_or(|u| !absent.iter().any(|a| a == u))
                            });
                        }
                    })
                    .await?;
                }
                // An owner being deleted in the foreground takes its dependents with it.
                let foreground_owner =
                    owners
                        .iter()
                        .filter_map(|o| self.keys_by_uid.get(o))
                        .any(|owner_key| {
                            registry.cache().get(owner_key).is_some_and(|(o, _)| {
                                o.deleting && o.finalizers.iter().any(|f| f == FOREGROUND)
                            })
                        });
                if foreground_owner && !stored.deleting {
                    Self::delete(registry, key, Propagation::Foreground, &uid).await?;
                }
            }
            Ok(())
        })
    }
}

/// Run the garbage collector.
pub async fn run(registry: Arc<Registry>) {
    queue::run(
        registry,
        "/registry/",
        GarbageCollector::default(),
        Duration::from_secs(30),
    )
    .await;
}
