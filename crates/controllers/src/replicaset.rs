//! The ReplicaSet controller: keeps `spec.replicas` pods that match the ReplicaSet's selector
//! and name it as their controller, creating them from the template and deleting the surplus in
//! the order Kubernetes uses (unscheduled, then pending, then not ready, then the newest first),
//! and writes `status` (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
//! observedGeneration). Pods of a deleted ReplicaSet go with the garbage collector, through their
//! owner reference. Orphans that match a selector are not adopted yet.

use std::sync::Arc;
use std::time::Duration;

use maestro_api::selector::LabelSelector;
use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::{DeleteOptions, Resource, WriteOptions};
use maestro_store::{CacheEvent, CacheEventKind, WatchCache};
use serde_json::{Value, json};

use crate::objects::{
    PodSummaries, PodSummary, controller_ref, controller_reference, has_controller, resource,
    revision_of,
};
use crate::queue::{self, Reconciler};

/// Deletion preference, lower first: unscheduled, pending, not ready, then the newest.
fn deletion_rank(pod: &PodSummary) -> (u8, u8, u8, std::cmp::Reverse<String>) {
    (
        u8::from(!pod.node.is_empty()),
        u8::from(pod.phase == "Running"),
        u8::from(pod.ready_since.is_some()),
        std::cmp::Reverse(pod.created.clone()),
    )
}

/// A new pod from the ReplicaSet's template, owned by it.
fn pod_from_template(rs: &Value) -> Value {
    let template = &rs["spec"]["template"];
    let name = rs["metadata"]["name"].as_str().unwrap_or_default();
    let mut owner = controller_reference(rs);
    owner["apiVersion"] = json!("apps/v1");
    owner["kind"] = json!("ReplicaSet");
    let mut metadata = json!({
        "generateName": format!("{name}-"),
        "ownerReferences": [owner],
    });
    for field in ["labels", "annotations"] {
        if let Some(v) = template["metadata"].get(field) {
            metadata[field] = v.clone();
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

/// Most pods created in one pass (Kubernetes' burstReplicas).
const BURST_REPLICAS: usize = 500;

struct ReplicaSets {
    replicasets: Arc<Resource>,
    pods: Arc<Resource>,
    summaries: PodSummaries,
    /// ReplicaSets to look at again when a ready pod turns available (minReadySeconds).
    requeues: Vec<(String, Duration)>,
    cache: Arc<WatchCache<StoredObject>>,
}

impl ReplicaSets {
    async fn sync(&mut self, registry: &Registry, rs: &StoredObject) -> Result<(), String> {
        let value = rs.value();
        if value.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(());
        }
        let namespace = rs.namespace.clone().unwrap_or_default();
        let selector = LabelSelector::from_object(&value["spec"]["selector"])
            .map_err(|e| format!("selector: {e}"))?;
        let wanted = value["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        self.claim_pods(registry, &value, &namespace, &selector)
            .await?;
        let prefix = format!("{}{namespace}/", self.pods.info.storage_prefix());
        let (pods, _) = registry.cache().list(&prefix);
        let mut owned: Vec<Arc<PodSummary>> = pods
            .iter()
            .filter(|p| selector.matches_map(&p.labels))
            .map(|p| self.summaries.get(p))
            .filter(|p| p.controller_uid.as_deref() == Some(rs.uid.as_str()) && p.active())
            .collect();

        let mut last_revision = None;
        if owned.len() < wanted {
            // Kubernetes' slow start: batches of 1, 2, 4... created concurrently (so they share
            // the store's commits), stopping at the first failure; at most 500 per pass.
            let mut remaining = (wanted - owned.len()).min(BURST_REPLICAS);
            let mut batch = 1;
            let options = WriteOptions::default();
            while remaining > 0 {
                let size = batch.min(remaining);
                let results = futures::future::join_all((0..size).map(|_| {
                    registry.create(
                        &self.pods,
                        Some(&namespace),
                        pod_from_template(&value),
                        &options,
                    )
                }))
                .await;
                for result in results {
                    match result {
                        Ok(created) => {
                            last_revision = last_revision.max(revision_of(&created.object));
                        }
                        Err(e) => {
                            if let Some(revision) = last_revision {
                                let _ = registry.cache().wait_for(revision).await;
                            }
                            return Err(format!("creating a pod: {}", e.message));
                        }
                    }
                }
                remaining -= size;
                batch *= 2;
            }
        } else if owned.len() > wanted {
            owned.sort_by_key(|p| deletion_rank(p));
            for pod in owned.drain(..owned.len() - wanted) {
                let name = pod.name.as_str();
                match registry
                    .delete(
                        &self.pods,
                        Some(&namespace),
                        name,
                        &DeleteOptions::default(),
                    )
                    .await
                {
                    Ok(deleted) => {
                        last_revision = last_revision.max(revision_of(&deleted.object));
                    }
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(format!("deleting pod {name}: {}", e.message)),
                }
            }
        }
        if let Some(revision) = last_revision {
            // The next reconcile must see these creations and deletions, or it would create or
            // delete again.
            let _ = registry.cache().wait_for(revision).await;
        }
        self.write_status(registry, &value, &namespace, &selector, &rs.uid)
            .await
    }

    /// Adopt the orphan pods the selector matches and release the owned pods it no longer
    /// matches, as Kubernetes' controller reference manager does.
    async fn claim_pods(
        &mut self,
        registry: &Registry,
        rs: &Value,
        namespace: &str,
        selector: &LabelSelector,
    ) -> Result<(), String> {
        let uid = rs["metadata"]["uid"].as_str().unwrap_or_default();
        let prefix = format!("{}{namespace}/", self.pods.info.storage_prefix());
        let (pods, _) = registry.cache().list(&prefix);
        let mut last_revision = None;
        for stored in pods.iter() {
            let matches = selector.matches_map(&stored.labels);
            let pod = self.summaries.get(stored);
            let name = pod.name.as_str();
            let adopt = matches && pod.controller_uid.is_none() && pod.active();
            let release = !matches && pod.controller_uid.as_deref() == Some(uid);
            if !adopt && !release {
                continue;
            }
            let mut owner = controller_reference(rs);
            owner["apiVersion"] = json!("apps/v1");
            owner["kind"] = json!("ReplicaSet");
            let written = registry
                .read_modify_write(
                    &self.pods,
                    Some(namespace),
                    name,
                    None,
                    &WriteOptions::default(),
                    |current| {
                        let mut next = current.clone();
                        let refs = next["metadata"]["ownerReferences"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        let mut refs: Vec<Value> =
                            refs.into_iter().filter(|r| r["uid"] != uid).collect();
                        if adopt && !has_controller(current) {
                            refs.push(owner.clone());
                        }
                        next["metadata"]["ownerReferences"] = json!(refs);
                        Ok(next)
                    },
                    None,
                )
                .await;
            match written {
                Ok(w) => last_revision = last_revision.max(revision_of(&w.object)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(format!("claiming pod {name}: {}", e.message)),
            }
        }
        if let Some(revision) = last_revision {
            let _ = registry.cache().wait_for(revision).await;
        }
        Ok(())
    }

    async fn write_status(
        &mut self,
        registry: &Registry,
        rs: &Value,
        namespace: &str,
        selector: &LabelSelector,
        uid: &str,
    ) -> Result<(), String> {
        let prefix = format!("{}{namespace}/", self.pods.info.storage_prefix());
        let (pods, _) = registry.cache().list(&prefix);
        let min_ready = rs["spec"]["minReadySeconds"].as_i64().unwrap_or(0);
        let now = jiff::Timestamp::now();
        let template_labels = rs["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let (mut replicas, mut labeled, mut ready, mut available) = (0, 0, 0, 0);
        for stored in pods.iter() {
            if !selector.matches_map(&stored.labels) {
                continue;
            }
            let pod = self.summaries.get(stored);
            if pod.controller_uid.as_deref() != Some(uid) || !pod.active() {
                continue;
            }
            replicas += 1;
            if template_labels
                .iter()
                .all(|(k, v)| stored.labels.get(k).map(String::as_str) == v.as_str())
            {
                labeled += 1;
            }
            if let Some(since) = pod.ready_since {
                ready += 1;
                let ready_for = now.duration_since(since).as_secs();
                if ready_for >= min_ready {
                    available += 1;
                } else {
                    // No event announces that the pod has now been ready long enough.
                    let key = self.replicasets.info.key(
                        Some(namespace),
                        rs["metadata"]["name"].as_str().unwrap_or_default(),
                    );
                    self.requeues
                        .push((key, Duration::from_secs((min_ready - ready_for) as u64 + 1)));
                }
            }
        }
        let status = json!({
            "replicas": replicas,
            "fullyLabeledReplicas": labeled,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": rs["metadata"]["generation"],
        });
        let current = &rs["status"];
        if [
            "replicas",
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
            "observedGeneration",
        ]
        .iter()
        .all(|k| current.get(*k).unwrap_or(&json!(0)) == &status[*k])
        {
            return Ok(());
        }
        let name = rs["metadata"]["name"].as_str().unwrap_or_default();
        let result = registry
            .read_modify_write(
                &self.replicasets,
                Some(namespace),
                name,
                None,
                &WriteOptions {
                    field_manager: Some("replicaset-controller".into()),
                    ..Default::default()
                },
                |current| {
                    let mut next = current.clone();
                    let fields = status.as_object().expect("built above");
                    for (k, v) in fields {
                        next["status"][k] = v.clone();
                    }
                    Ok(next)
                },
                Some("status"),
            )
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(format!("status: {}", e.message)),
        }
    }
}

impl Reconciler for ReplicaSets {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        if event
            .key
            .starts_with(&self.replicasets.info.storage_prefix())
        {
            return if event.kind == CacheEventKind::Deleted {
                vec![]
            } else {
                vec![event.key.clone()]
            };
        }
        if event.key.starts_with(&self.pods.info.storage_prefix()) {
            if event.kind == CacheEventKind::Deleted {
                self.summaries.forget(&event.key);
            }
            let stored = &event.object;
            if let Some(owner) = controller_ref(stored) {
                return (owner.kind == "ReplicaSet")
                    .then(|| {
                        self.replicasets
                            .info
                            .key(stored.namespace.as_deref(), &owner.name)
                    })
                    .into_iter()
                    .collect();
            }
            let finished = matches!(
                stored.field("status.phase").as_deref(),
                Some("Succeeded" | "Failed")
            );
            if stored.deleting || finished || event.kind == CacheEventKind::Deleted {
                return vec![];
            }
            // An orphan: the ReplicaSets whose selector matches it may adopt it.
            let prefix = self
                .replicasets
                .info
                .namespace_prefix(stored.namespace.as_deref());
            let (sets, _) = self.cache.list(&prefix);
            return sets
                .into_iter()
                .filter(|rs| {
                    LabelSelector::from_object(&rs.value()["spec"]["selector"])
                        .is_ok_and(|s| !s.is_empty() && s.matches_map(&stored.labels))
                })
                .map(|rs| rs.key.clone())
                .collect();
        }
        vec![]
    }

    fn take_requeues(&mut self) -> Vec<(String, Duration)> {
        std::mem::take(&mut self.requeues)
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        queue::all_keys(registry, &self.replicasets)
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some((rs, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            self.sync(registry, &rs).await
        })
    }
}

/// Run the ReplicaSet controller.
pub async fn run(registry: Arc<Registry>) {
    let controller = ReplicaSets {
        replicasets: resource("replicasets", "apps"),
        pods: resource("pods", ""),
        requeues: Vec::new(),
        cache: registry.cache().clone(),
        summaries: PodSummaries::default(),
    };
    queue::run(registry, "/registry/", controller, Duration::from_secs(30)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created,
                "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": "u1", "controller": true}]},
            "spec": {"nodeName": node},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        })
    }

    #[test]
    fn surplus_goes_unscheduled_first_then_pending_then_unready_then_newest() {
        let pods = [
            pod("ready-old", "n1", "Running", true, "2026-01-01T00:00:00Z"),
            pod("ready-new", "n1", "Running", true, "2026-01-02T00:00:00Z"),
            pod("unready", "n1", "Running", false, "2026-01-01T00:00:00Z"),
            pod("pending", "n1", "Pending", false, "2026-01-01T00:00:00Z"),
            pod("unscheduled", "", "Pending", false, "2026-01-01T00:00:00Z"),
        ];
        let mut pods: Vec<PodSummary> = pods.iter().map(PodSummary::parse).collect();
        pods.sort_by_key(deletion_rank);
        let order: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            order,
            [
                "unscheduled",
                "pending",
                "unready",
                "ready-new",
                "ready-old"
            ]
        );
    }

    #[test]
    fn template_pods_are_owned_and_keyed_back_to_their_replicaset() {
        let rs = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        });
        let mut pod = pod_from_template(&rs);
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(pod["spec"]["containers"][0]["image"], "i");
        assert!(crate::objects::controlled_by(&pod, "u1"));
        assert!(!crate::objects::controlled_by(&pod, "u2"));
        pod["metadata"]["namespace"] = json!("default");
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["name"].as_str()),
            (Some("ReplicaSet"), Some("web"))
        );
    }
}
