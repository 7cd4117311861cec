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
    controlled_by, controller_name, controller_reference, has_controller, is_active_pod,
    ready_since, resource, revision_of,
};
use crate::queue::{self, Reconciler};

/// The key of the ReplicaSet that controls `pod`, if one does.
fn controller_key(pod: &Value, replicasets: &Resource) -> Option<String> {
    let namespace = pod.pointer("/metadata/namespace")?.as_str()?;
    controller_name(pod, "ReplicaSet").map(|name| replicasets.info.key(Some(namespace), name))
}

/// Deletion preference, lower first: unscheduled, pending, not ready, then the newest.
fn deletion_rank(pod: &Value) -> (u8, u8, u8, std::cmp::Reverse<String>) {
    let unscheduled = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let pending = pod.pointer("/status/phase").and_then(Value::as_str) != Some("Running");
    let created = pod
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    (
        u8::from(!unscheduled),
        u8::from(!pending),
        u8::from(ready_since(pod).is_some()),
        std::cmp::Reverse(created),
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

struct ReplicaSets {
    replicasets: Arc<Resource>,
    pods: Arc<Resource>,
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
        let mut owned: Vec<Value> = pods
            .iter()
            .map(|p| p.value())
            .filter(|p| {
                controlled_by(p, &rs.uid)
                    && is_active_pod(p)
                    && selector.matches(p.pointer("/metadata/labels").and_then(Value::as_object))
            })
            .collect();

        let mut last_revision = None;
        if owned.len() < wanted {
            for _ in owned.len()..wanted {
                let created = registry
                    .create(
                        &self.pods,
                        Some(&namespace),
                        pod_from_template(&value),
                        &WriteOptions::default(),
                    )
                    .await
                    .map_err(|e| format!("creating a pod: {}", e.message))?;
                last_revision = revision_of(&created.object);
            }
        } else if owned.len() > wanted {
            owned.sort_by_key(deletion_rank);
            for pod in owned.drain(..owned.len() - wanted) {
                let name = pod["metadata"]["name"].as_str().unwrap_or_default();
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
        &self,
        registry: &Registry,
        rs: &Value,
        namespace: &str,
        selector: &LabelSelector,
    ) -> Result<(), String> {
        let uid = rs["metadata"]["uid"].as_str().unwrap_or_default();
        let prefix = format!("{}{namespace}/", self.pods.info.storage_prefix());
        let (pods, _) = registry.cache().list(&prefix);
        let mut last_revision = None;
        for pod in pods.iter().map(|p| p.value()) {
            let matches =
                selector.matches(pod.pointer("/metadata/labels").and_then(Value::as_object));
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let adopt = matches && !has_controller(&pod) && is_active_pod(&pod);
            let release = !matches && controlled_by(&pod, uid);
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
        for pod in pods.iter().map(|p| p.value()) {
            if !controlled_by(&pod, uid)
                || !is_active_pod(&pod)
                || !selector.matches(pod.pointer("/metadata/labels").and_then(Value::as_object))
            {
                continue;
            }
            replicas += 1;
            let labels = pod["metadata"]["labels"].as_object();
            if template_labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            {
                labeled += 1;
            }
            if let Some(since) = ready_since(&pod) {
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
            let pod = event.object.value();
            if has_controller(&pod) || !is_active_pod(&pod) {
                return controller_key(&pod, &self.replicasets)
                    .into_iter()
                    .collect();
            }
            // An orphan: the ReplicaSets whose selector matches it may adopt it.
            let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
            let prefix = self
                .replicasets
                .info
                .namespace_prefix(event.object.namespace.as_deref());
            let (sets, _) = self.cache.list(&prefix);
            return sets
                .into_iter()
                .filter(|rs| {
                    LabelSelector::from_object(&rs.value()["spec"]["selector"])
                        .is_ok_and(|s| !s.is_empty() && s.matches(labels))
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
        let (all, _) = registry
            .cache()
            .list(&self.replicasets.info.storage_prefix());
        all.iter().map(|rs| rs.key.clone()).collect()
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
        let mut pods = [
            pod("ready-old", "n1", "Running", true, "2026-01-01T00:00:00Z"),
            pod("ready-new", "n1", "Running", true, "2026-01-02T00:00:00Z"),
            pod("unready", "n1", "Running", false, "2026-01-01T00:00:00Z"),
            pod("pending", "n1", "Pending", false, "2026-01-01T00:00:00Z"),
            pod("unscheduled", "", "Pending", false, "2026-01-01T00:00:00Z"),
        ];
        pods.sort_by_key(deletion_rank);
        let order: Vec<&str> = pods
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect();
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
        assert!(controlled_by(&pod, "u1"));
        assert!(!controlled_by(&pod, "u2"));
        pod["metadata"]["namespace"] = json!("default");
        let replicasets = resource("replicasets", "apps");
        assert_eq!(
            controller_key(&pod, &replicasets),
            Some(replicasets.info.key(Some("default"), "web"))
        );
    }
}
