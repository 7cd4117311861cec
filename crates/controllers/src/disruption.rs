//! The disruption controller: keeps each PodDisruptionBudget's status current — the pods it
//! expects (from its pods' controllers' replica counts), how many are healthy (ready, not being
//! deleted, not just evicted), how many must be, and so how many disruptions the eviction API
//! may still grant. Evictions recorded in `disruptedPods` stop counting as healthy until the pod
//! is seen going, or for two minutes at most, as in Kubernetes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use maestro_api::selector::LabelSelector;
use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_store::{CacheEvent, CacheEventKind, WatchCache};
use serde_json::{Value, json};

use crate::objects::{deleting, int, is_finished_pod, ready_since, resource};
use crate::queue::{self, Reconciler};

/// How long an eviction granted by the API keeps a pod out of the healthy count when its
/// deletion is not seen.
const DISRUPTED_POD_TIMEOUT: i64 = 120;

/// An int-or-percent of `total`, percentages rounded up.
fn scaled_up(value: &Value, total: i64) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) if s.ends_with('%') => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            (percent * total + 99) / 100
        }
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// (expectedPods, desiredHealthy) for a budget over `pods`; `scale_of` gives the replica count
/// of a pod's controller (by its owner reference), `None` for a pod without one.
fn expectations(
    budget: &Value,
    pods: &[Value],
    scale_of: impl Fn(&Value) -> Option<(String, i64)>,
) -> (i64, i64) {
    let spec = &budget["spec"];
    let count = pods.len() as i64;
    // An integer minAvailable needs no controller: the pods themselves are the expectation.
    if let Some(Value::Number(n)) = spec.get("minAvailable") {
        return (count, n.as_i64().unwrap_or(0));
    }
    let mut controllers: BTreeMap<String, i64> = BTreeMap::new();
    let mut uncontrolled = 0;
    for pod in pods {
        match scale_of(pod) {
            Some((uid, replicas)) => {
                controllers.insert(uid, replicas);
            }
            None => uncontrolled += 1,
        }
    }
    let expected = controllers.values().sum::<i64>() + uncontrolled;
    let desired = match (spec.get("maxUnavailable"), spec.get("minAvailable")) {
        (Some(max), _) => (expected - scaled_up(max, expected)).max(0),
        (None, Some(min)) => scaled_up(min, expected),
        (None, None) => expected,
    };
    (expected, desired)
}

struct Disruptions {
    budgets: Arc<maestro_apiserver::registry::Resource>,
    pods: Arc<maestro_apiserver::registry::Resource>,
    cache: Arc<WatchCache<StoredObject>>,
    requeues: Vec<(String, Duration)>,
}

impl Disruptions {
    /// The replica count of the workload a pod belongs to: its ReplicaSet's, or the
    /// Deployment's when a Deployment owns that ReplicaSet; StatefulSets' likewise.
    fn scale_of(&self, pod: &Value) -> Option<(String, i64)> {
        let namespace = pod["metadata"]["namespace"].as_str()?;
        let owner = pod["metadata"]["ownerReferences"]
            .as_array()?
            .iter()
            .find(|r| r["controller"] == true)?;
        let (plural, group) = match owner["kind"].as_str()? {
            "ReplicaSet" => ("replicasets", "apps"),
            "StatefulSet" => ("statefulsets", "apps"),
            "ReplicationController" => ("replicationcontrollers", ""),
            "Job" => ("jobs", "batch"),
            _ => return Some((owner["uid"].as_str()?.to_string(), 1)),
        };
        let res = resource(plural, group);
        let (controller, _) = self
            .cache
            .get(&res.info.key(Some(namespace), owner["name"].as_str()?))?;
        let value = controller.value();
        if let Some(deployment) = value["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|refs| {
                refs.iter()
                    .find(|r| r["controller"] == true && r["kind"] == "Deployment")
            })
        {
            let deployments = resource("deployments", "apps");
            if let Some((d, _)) = self.cache.get(
                &deployments
                    .info
                    .key(Some(namespace), deployment["name"].as_str()?),
            ) {
                let d = d.value();
                return Some((
                    d["metadata"]["uid"].as_str()?.to_string(),
                    d["spec"]["replicas"].as_i64().unwrap_or(1),
                ));
            }
        }
        let replicas = match owner["kind"].as_str()? {
            "Job" => value["spec"]["parallelism"].as_i64().unwrap_or(1),
            _ => value["spec"]["replicas"].as_i64().unwrap_or(1),
        };
        Some((value["metadata"]["uid"].as_str()?.to_string(), replicas))
    }

    async fn sync(&mut self, registry: &Registry, stored: &StoredObject) -> Result<(), String> {
        let budget = stored.value();
        if deleting(&budget) {
            return Ok(());
        }
        let namespace = stored.namespace.clone().unwrap_or_default();
        let selector = LabelSelector::from_object(&budget["spec"]["selector"])
            .map_err(|e| format!("selector: {e}"))?;
        let (all, _) = registry
            .cache()
            .list(&self.pods.info.namespace_prefix(Some(&namespace)));
        let pods: Vec<Value> = all
            .iter()
            .map(|p| p.value())
            .filter(|p| {
                !is_finished_pod(p)
                    && selector.matches(p.pointer("/metadata/labels").and_then(Value::as_object))
            })
            .collect();
        let now = jiff::Timestamp::now();
        // Evictions granted but not yet seen as deletions.
        let mut disrupted = serde_json::Map::new();
        if let Some(recorded) = budget["status"]["disruptedPods"].as_object() {
            for (name, at) in recorded {
                let Some(at_time) = at.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok())
                else {
                    continue;
                };
                let age = now.duration_since(at_time).as_secs();
                let still_there = pods
                    .iter()
                    .any(|p| p["metadata"]["name"] == name.as_str() && !deleting(p));
                if still_there && age < DISRUPTED_POD_TIMEOUT {
                    disrupted.insert(name.clone(), at.clone());
                    let key = self.budgets.info.key(Some(&namespace), &stored.name);
                    self.requeues.push((
                        key,
                        Duration::from_secs((DISRUPTED_POD_TIMEOUT - age) as u64),
                    ));
                }
            }
        }
        let healthy = pods
            .iter()
            .filter(|p| {
                !deleting(p)
                    && ready_since(p).is_some()
                    && !disrupted.contains_key(p["metadata"]["name"].as_str().unwrap_or_default())
            })
            .count() as i64;
        let (expected, desired) = expectations(&budget, &pods, |p| self.scale_of(p));
        let allowed = (healthy - desired).max(0);
        let (condition_status, reason) = if allowed > 0 {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        let mut status = json!({
            "observedGeneration": budget["metadata"]["generation"],
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
        });
        if !disrupted.is_empty() {
            status["disruptedPods"] = Value::Object(disrupted);
        }
        let previous = budget["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionAllowed"))
            .cloned();
        let transition = match &previous {
            Some(c) if c["status"] == condition_status => c["lastTransitionTime"].clone(),
            _ => json!(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        };
        status["conditions"] = json!([{"type": "DisruptionAllowed", "status": condition_status,
            "reason": reason, "message": "", "observedGeneration": budget["metadata"]["generation"],
            "lastTransitionTime": transition}]);
        let unchanged = [
            "observedGeneration",
            "disruptionsAllowed",
            "currentHealthy",
            "desiredHealthy",
            "expectedPods",
            "disruptedPods",
            "conditions",
        ]
        .iter()
        .all(|k| budget["status"].get(*k) == status.get(*k));
        if unchanged {
            return Ok(());
        }
        let generation = int(&budget, "/metadata/generation");
        crate::writes::edit(
            registry,
            &self.budgets,
            Some(&namespace),
            &stored.name,
            Some("status"),
            |next| {
                // Only over the generation it was computed for (a newer spec gets its own pass).
                if int(next, "/metadata/generation") == generation {
                    next["status"] = status.clone();
                }
            },
        )
        .await
    }
}

impl Reconciler for Disruptions {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        if event.key.starts_with(&self.budgets.info.storage_prefix()) {
            return if event.kind == CacheEventKind::Deleted {
                vec![]
            } else {
                vec![event.key.clone()]
            };
        }
        if !event.key.starts_with(&self.pods.info.storage_prefix()) {
            return vec![];
        }
        let (budgets, _) = self.cache.list(
            &self
                .budgets
                .info
                .namespace_prefix(event.object.namespace.as_deref()),
        );
        budgets
            .iter()
            .filter(|b| {
                LabelSelector::from_object(&b.value()["spec"]["selector"])
                    .is_ok_and(|s| s.matches_map(&event.object.labels))
            })
            .map(|b| b.key.clone())
            .collect()
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        queue::all_keys(registry, &self.budgets)
    }

    fn take_requeues(&mut self) -> Vec<(String, Duration)> {
        std::mem::take(&mut self.requeues)
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some((budget, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            self.sync(registry, &budget).await
        })
    }
}

/// Run the disruption controller.
pub async fn run(registry: Arc<Registry>) {
    let controller = Disruptions {
        budgets: resource("poddisruptionbudgets", "policy"),
        pods: resource("pods", ""),
        cache: registry.cache().clone(),
        requeues: Vec::new(),
    };
    queue::run(registry, "/registry/", controller, Duration::from_secs(30)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(spec: Value) -> Value {
        json!({"spec": spec})
    }

    #[test]
    fn expectations_follow_min_available_and_max_unavailable() {
        let pods: Vec<Value> = (0..3).map(|i| json!({"metadata": {"name": i}})).collect();
        let controlled = |_: &Value| Some(("rs".to_string(), 4));
        let none = |_: &Value| None;
        assert_eq!(
            expectations(&budget(json!({"minAvailable": 2})), &pods, none),
            (3, 2)
        );
        // Percentages and maxUnavailable count the controller's replicas, not the pods seen.
        assert_eq!(
            expectations(&budget(json!({"minAvailable": "50%"})), &pods, controlled),
            (4, 2)
        );
        assert_eq!(
            expectations(&budget(json!({"maxUnavailable": 1})), &pods, controlled),
            (4, 3)
        );
        assert_eq!(
            expectations(&budget(json!({"maxUnavailable": "30%"})), &pods, controlled),
            (4, 2)
        );
        assert_eq!(
            expectations(&budget(json!({"maxUnavailable": 1})), &pods, none),
            (3, 2)
        );
    }
}
