//! The StatefulSet controller, as Kubernetes' stateful set controller: pods with stable names
//! and identities (`<set>-<ordinal>`, hostname and the governing Service's subdomain), created
//! in order and removed in reverse order.
//!
//! - OrderedReady (the default) creates ordinal n only once 0..n are Running and Ready, and
//!   scales down one pod at a time from the highest ordinal; Parallel does both at once.
//! - `volumeClaimTemplates` give each ordinal its own PersistentVolumeClaims
//!   (`<template>-<set>-<ordinal>`), created before the pod and kept when it goes (unless the
//!   retention policy says Delete).
//! - Templates are versioned as ControllerRevisions; RollingUpdate replaces pods from the
//!   highest ordinal down to `partition`, one at a time, each waiting for the previous to be
//!   ready; OnDelete leaves pods until they are deleted. Failed pods are replaced.
//! - Status: replicas, ready/available/current/updated counts, currentRevision and
//!   updateRevision, as `kubectl rollout status statefulset` reads them.

use std::sync::Arc;
use std::time::Duration;

use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::{DeleteOptions, Resource, WriteOptions};
use maestro_store::{CacheEvent, Revision};
use serde_json::{Value, json};

use crate::objects::{
    controlled_by, controller_reference, deleting, int, is_finished_pod, ready_since, resource,
    revision_of,
};
use crate::queue::{self, Reconciler};

const REVISION_LABEL: &str = "controller-revision-hash";
const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

fn ordinal_of(set_name: &str, pod: &Value) -> Option<i64> {
    pod["metadata"]["name"]
        .as_str()?
        .strip_prefix(set_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

fn running_and_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running" && ready_since(pod).is_some()
}

/// The claim name for a volume claim template and ordinal.
fn claim_name(template: &Value, set: &str, ordinal: i64) -> String {
    format!(
        "{}-{set}-{ordinal}",
        template["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// The pod of `ordinal` at revision `revision` (the ControllerRevision's name).
fn stateful_pod(set: &Value, template: &Value, ordinal: i64, revision: &str) -> Value {
    let set_name = set["metadata"]["name"].as_str().unwrap_or_default();
    let name = format!("{set_name}-{ordinal}");
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(name);
    if let Some(service) = set["spec"]["serviceName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        spec["subdomain"] = json!(service);
    }
    // Each claim template becomes a volume of that name backed by this ordinal's claim.
    let mut volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    for claim in set["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let volume = claim["metadata"]["name"].clone();
        volumes.retain(|v| v["name"] != volume);
        volumes.push(json!({"name": volume,
            "persistentVolumeClaim": {"claimName": claim_name(claim, set_name, ordinal)}}));
    }
    if !volumes.is_empty() {
        spec["volumes"] = json!(volumes);
    }
    let mut labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), json!(name));
    labels.insert(POD_INDEX_LABEL.into(), json!(ordinal.to_string()));
    labels.insert(REVISION_LABEL.into(), json!(revision));
    let mut owner = controller_reference(set);
    owner["apiVersion"] = json!("apps/v1");
    owner["kind"] = json!("StatefulSet");
    let mut metadata = json!({"name": name, "labels": labels, "ownerReferences": [owner]});
    if let Some(annotations) = template["metadata"].get("annotations") {
        metadata["annotations"] = annotations.clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
}

struct StatefulSets {
    sets: Arc<Resource>,
    pods: Arc<Resource>,
    claims: Arc<Resource>,
    revisions: Arc<Resource>,
}

/// The template of a ControllerRevision (what `ensure` stored), without the patch marker.
fn revision_template(revision: &Value) -> Value {
    let mut template = revision["data"]["spec"]["template"].clone();
    if let Some(t) = template.as_object_mut() {
        t.remove("$patch");
    }
    template
}

impl StatefulSets {
    async fn sync(&mut self, registry: &Registry, stored: &StoredObject) -> Result<(), String> {
        let set = stored.value();
        if deleting(&set) {
            return Ok(());
        }
        let namespace = stored.namespace.clone().unwrap_or_default();
        let name = stored.name.clone();
        let update_revision = format!(
            "{name}-{}",
            crate::revisions::template_hash(&set["spec"]["template"])
        );
        crate::revisions::ensure(
            registry,
            &self.revisions,
            &set,
            "StatefulSet",
            &update_revision,
        )
        .await?;
        // The revision the pods below the partition keep: the recorded current one while a
        // rollout is unfinished.
        let current_revision = set["status"]["currentRevision"]
            .as_str()
            .filter(|r| !r.is_empty())
            .unwrap_or(&update_revision)
            .to_string();
        let current_template = registry
            .cache()
            .get(&self.revisions.info.key(Some(&namespace), &current_revision))
            .map(|(r, _)| revision_template(&r.value()))
            .unwrap_or_else(|| set["spec"]["template"].clone());

        let replicas = set["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
        let start = int(&set, "/spec/ordinals/start");
        let parallel = set["spec"]["podManagementPolicy"] == "Parallel";
        let rolling = set["spec"]["updateStrategy"]["type"].as_str() != Some("OnDelete");
        let partition = int(&set, "/spec/updateStrategy/rollingUpdate/partition");

        let (all, _) = registry
            .cache()
            .list(&self.pods.info.namespace_prefix(Some(&namespace)));
        let mut pods: std::collections::BTreeMap<i64, Value> = Default::default();
        for pod in all.iter().map(|p| p.value()) {
            if controlled_by(&pod, &stored.uid)
                && let Some(ordinal) = ordinal_of(&name, &pod)
            {
                pods.insert(ordinal, pod);
            }
        }
        let mut written: Option<Revision> = None;
        let wanted = start..start + replicas;

        // Create missing and replace failed pods, in order.
        for ordinal in wanted.clone() {
            match pods.get(&ordinal) {
                Some(pod) if deleting(pod) => {
                    if !parallel {
                        break;
                    }
                }
                Some(pod) if is_finished_pod(pod) => {
                    written = written.max(self.delete_pod(registry, &namespace, pod).await?);
                    if !parallel {
                        break;
                    }
                }
                Some(pod) => {
                    if !parallel && !running_and_ready(pod) {
                        break;
                    }
                }
                None => {
                    let (revision, template) = if ordinal - start < partition {
                        (&current_revision, &current_template)
                    } else {
                        (&update_revision, &set["spec"]["template"])
                    };
                    self.create_claims(registry, &set, &namespace, ordinal)
                        .await?;
                    let pod = stateful_pod(&set, template, ordinal, revision);
                    match registry
                        .create(&self.pods, Some(&namespace), pod, &WriteOptions::default())
                        .await
                    {
                        Ok(created) => written = written.max(revision_of(&created.object)),
                        Err(e) if e.code == 409 => {}
                        Err(e) => {
                            return Err(format!("creating pod {name}-{ordinal}: {}", e.message));
                        }
                    }
                    if !parallel {
                        break;
                    }
                }
            }
        }

        // Scale down from the highest ordinal (one at a time unless Parallel).
        let condemned: Vec<&Value> = pods
            .iter()
            .rev()
            .filter(|(o, _)| !wanted.contains(o))
            .map(|(_, p)| p)
            .collect();
        let all_healthy = wanted
            .clone()
            .all(|o| pods.get(&o).is_some_and(running_and_ready));
        for pod in condemned {
            if deleting(pod) {
                if !parallel {
                    break;
                }
                continue;
            }
            if !parallel && !all_healthy {
                break;
            }
            written = written.max(self.delete_pod(registry, &namespace, pod).await?);
            if set["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete"
                && let Some(ordinal) = ordinal_of(&name, pod)
            {
                self.delete_claims(registry, &set, &namespace, ordinal)
                    .await?;
            }
            if !parallel {
                break;
            }
        }

        // Rolling update: the highest outdated ordinal at or above the partition goes, once
        // every pod is running and ready.
        if rolling && all_healthy && pods.len() as i64 == replicas {
            let outdated = wanted.clone().rev().find(|o| {
                o - start >= partition
                    && pods.get(o).is_some_and(|p| {
                        p["metadata"]["labels"][REVISION_LABEL] != update_revision.as_str()
                    })
            });
            if let Some(ordinal) = outdated {
                written = written.max(
                    self.delete_pod(registry, &namespace, &pods[&ordinal])
                        .await?,
                );
            }
        }
        if let Some(revision) = written {
            let _ = registry.cache().wait_for(revision).await;
        }
        self.write_status(
            registry,
            &set,
            &namespace,
            &stored.uid,
            &current_revision,
            &update_revision,
            replicas,
            partition,
            start,
        )
        .await
    }

    async fn delete_pod(
        &self,
        registry: &Registry,
        namespace: &str,
        pod: &Value,
    ) -> Result<Option<Revision>, String> {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let opts = DeleteOptions {
            precondition_uid: pod["metadata"]["uid"].as_str().map(String::from),
            ..Default::default()
        };
        match registry
            .delete(&self.pods, Some(namespace), name, &opts)
            .await
        {
            Ok(d) => Ok(revision_of(&d.object)),
            Err(e) if e.code == 404 || e.code == 409 => Ok(None),
            Err(e) => Err(format!("deleting pod {name}: {}", e.message)),
        }
    }

    async fn create_claims(
        &self,
        registry: &Registry,
        set: &Value,
        namespace: &str,
        ordinal: i64,
    ) -> Result<(), String> {
        let set_name = set["metadata"]["name"].as_str().unwrap_or_default();
        for template in set["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = claim_name(template, set_name, ordinal);
            if registry
                .cache()
                .get(&self.claims.info.key(Some(namespace), &name))
                .is_some()
            {
                continue;
            }
            let mut labels = template["metadata"]["labels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (k, v) in set["spec"]["selector"]["matchLabels"]
                .as_object()
                .into_iter()
                .flatten()
            {
                labels.insert(k.clone(), v.clone());
            }
            let mut claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "labels": labels}, "spec": template["spec"]});
            // Claims follow the set when the retention policy says Delete on deletion.
            if set["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete" {
                let mut owner = controller_reference(set);
                owner["apiVersion"] = json!("apps/v1");
                owner["kind"] = json!("StatefulSet");
                claim["metadata"]["ownerReferences"] = json!([owner]);
            }
            match registry
                .create(
                    &self.claims,
                    Some(namespace),
                    claim,
                    &WriteOptions::default(),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(format!("creating claim {name}: {}", e.message)),
            }
        }
        Ok(())
    }

    async fn delete_claims(
        &self,
        registry: &Registry,
        set: &Value,
        namespace: &str,
        ordinal: i64,
    ) -> Result<(), String> {
        let set_name = set["metadata"]["name"].as_str().unwrap_or_default();
        for template in set["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = claim_name(template, set_name, ordinal);
            match registry
                .delete(
                    &self.claims,
                    Some(namespace),
                    &name,
                    &DeleteOptions::default(),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(format!("deleting claim {name}: {}", e.message)),
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_status(
        &self,
        registry: &Registry,
        set: &Value,
        namespace: &str,
        uid: &str,
        current_revision: &str,
        update_revision: &str,
        replicas: i64,
        partition: i64,
        start: i64,
    ) -> Result<(), String> {
        let name = set["metadata"]["name"].as_str().unwrap_or_default();
        let (all, _) = registry
            .cache()
            .list(&self.pods.info.namespace_prefix(Some(namespace)));
        let pods: Vec<Value> = all
            .iter()
            .map(|p| p.value())
            .filter(|p| controlled_by(p, uid) && !deleting(p) && ordinal_of(name, p).is_some())
            .collect();
        let min_ready = int(set, "/spec/minReadySeconds");
        let now = jiff::Timestamp::now();
        let revision = |p: &Value| {
            p["metadata"]["labels"][REVISION_LABEL]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let ready = pods.iter().filter(|p| running_and_ready(p)).count() as i64;
        let available = pods
            .iter()
            .filter(|p| {
                ready_since(p).is_some_and(|t| now.duration_since(t).as_secs() >= min_ready)
            })
            .count() as i64;
        let updated = pods
            .iter()
            .filter(|p| revision(p) == update_revision)
            .count() as i64;
        let in_range = pods
            .iter()
            .filter(|p| ordinal_of(name, p).is_some_and(|o| o >= start && o < start + replicas))
            .count() as i64;
        // The rollout is over when every pod runs the update revision: it becomes current.
        let done =
            updated == replicas && in_range == replicas && ready == replicas && partition == 0;
        let current = if done {
            update_revision
        } else {
            current_revision
        };
        let current_count = pods.iter().filter(|p| revision(p) == current).count() as i64;
        let status = json!({
            "observedGeneration": set["metadata"]["generation"],
            "replicas": pods.len(),
            "readyReplicas": ready,
            "availableReplicas": available,
            "currentReplicas": current_count,
            "updatedReplicas": updated,
            "currentRevision": current,
            "updateRevision": update_revision,
            "collisionCount": set["status"]["collisionCount"].as_i64().unwrap_or(0),
        });
        let unchanged = status
            .as_object()
            .expect("built above")
            .iter()
            .all(|(k, v)| set["status"].get(k) == Some(v));
        if unchanged {
            return Ok(());
        }
        crate::writes::edit(
            registry,
            &self.sets,
            Some(namespace),
            name,
            Some("status"),
            |next| {
                for (k, v) in status.as_object().expect("built above") {
                    next["status"][k] = v.clone();
                }
            },
        )
        .await
    }
}

impl Reconciler for StatefulSets {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        queue::owner_keys(event, &self.sets, "StatefulSet", &self.pods)
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        queue::all_keys(registry, &self.sets)
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some((set, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            self.sync(registry, &set).await
        })
    }
}

/// Run the StatefulSet controller.
pub async fn run(registry: Arc<Registry>) {
    let controller = StatefulSets {
        sets: resource("statefulsets", "apps"),
        pods: resource("pods", ""),
        claims: resource("persistentvolumeclaims", ""),
        revisions: resource("controllerrevisions", "apps"),
    };
    queue::run(registry, "/registry/", controller, Duration::from_secs(30)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_get_stable_identities_and_their_claims() {
        let set = json!({"metadata": {"name": "db", "uid": "u1"},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}});
        let template = json!({"metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": [{"name": "data", "emptyDir": {}}]}});
        let pod = stateful_pod(&set, &template, 2, "db-abc");
        assert_eq!(pod["metadata"]["name"], "db-2");
        assert_eq!(pod["spec"]["hostname"], "db-2");
        assert_eq!(pod["spec"]["subdomain"], "db");
        assert_eq!(pod["metadata"]["labels"][POD_INDEX_LABEL], "2");
        assert_eq!(pod["metadata"]["labels"][REVISION_LABEL], "db-abc");
        // The claim template replaces the template's volume of the same name.
        let volumes = pod["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 1);
        assert_eq!(
            volumes[0]["persistentVolumeClaim"]["claimName"],
            "data-db-2"
        );
        assert_eq!(ordinal_of("db", &pod), Some(2));
        assert_eq!(ordinal_of("d", &pod), None);
        assert!(controlled_by(&pod, "u1"));
    }
}
