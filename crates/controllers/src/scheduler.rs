//! A first scheduler: binds each unscheduled pod (for `default-scheduler`) to a node that is
//! Ready, schedulable, matches its nodeSelector and required node affinity terms on labels,
//! tolerates its NoSchedule/NoExecute taints and has room for its requests (cpu, memory, pods),
//! preferring the least requested node. It writes a `Binding` through the registry and a
//! `FailedScheduling` event when nothing fits. The scheduling framework with plugins, queues and
//! preemption replaces it later; the filters here are the ones every cluster needs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use maestro_api::selector::LabelSelector;
use maestro_api::{quantity, resources};
use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::{Resource, WriteOptions};
use maestro_store::{CacheEvent, CacheEventKind};
use serde_json::{Value, json};

use crate::events::{self, EventType, Involved};
use crate::queue::{self, Reconciler};
use crate::taints::tolerates;

fn resource(plural: &str) -> Arc<Resource> {
    Resource::builtin(resources::find_builtin("", "v1", plural).expect("built in"))
}

/// A pod's requests: the larger of the sum over containers and the largest init container.
fn pod_requests(pod: &Value) -> BTreeMap<String, i128> {
    let sum_of = |list: &str| -> Vec<BTreeMap<String, i128>> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        c.pointer("/resources/requests")
                            .and_then(Value::as_object)
                            .map(|r| {
                                r.iter()
                                    .filter_map(|(k, v)| {
                                        Some((k.clone(), quantity::milli(v.as_str()?)?))
                                    })
                                    .collect()
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut total: BTreeMap<String, i128> = BTreeMap::new();
    for c in sum_of("containers") {
        for (k, v) in c {
            *total.entry(k).or_default() += v;
        }
    }
    for c in sum_of("initContainers") {
        for (k, v) in c {
            let slot = total.entry(k).or_default();
            *slot = (*slot).max(v);
        }
    }
    total
}

fn node_selector_terms_match(pod: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(terms) = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
    else {
        return true;
    };
    terms.iter().any(|term| {
        let exprs = term.get("matchExpressions").cloned().unwrap_or(json!([]));
        // Node selector operators Gt/Lt and matchFields are not label selector operators.
        let selector = LabelSelector::from_object(&json!({"matchExpressions": exprs}));
        selector.is_ok_and(|s| s.matches_map(labels))
    })
}

/// Why a node does not fit a pod, in the words of kube-scheduler's FailedScheduling events.
fn misfit(
    pod: &Value,
    node: &Value,
    requested: &BTreeMap<String, i128>,
    pods_on_node: i128,
) -> Option<String> {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    if !ready {
        return Some("node(s) were not ready".into());
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        return Some("node(s) were unschedulable".into());
    }
    let labels: BTreeMap<String, String> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let selector_ok = pod
        .pointer("/spec/nodeSelector")
        .and_then(Value::as_object)
        .is_none_or(|sel| {
            sel.iter()
                .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        });
    if !selector_ok || !node_selector_terms_match(pod, &labels) {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    if let Some(taint) = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .and_then(|ts| ts.iter().find(|t| !tolerates(pod, t)))
    {
        return Some(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint["key"].as_str().unwrap_or_default(),
            taint["value"].as_str().unwrap_or_default()
        ));
    }
    let allocatable = |k: &str| {
        node.pointer(&format!("/status/allocatable/{k}"))
            .and_then(Value::as_str)
            .and_then(quantity::milli)
    };
    if allocatable("pods").is_some_and(|max| pods_on_node * 1000 >= max) {
        return Some("Too many pods".into());
    }
    let wants = pod_requests(pod);
    for (resource, amount) in &wants {
        if let Some(free) = allocatable(resource)
            && requested.get(resource).copied().unwrap_or(0) + amount > free
        {
            return Some(format!("Insufficient {resource}"));
        }
    }
    None
}

#[derive(Default)]
struct Scheduler {
    /// Each bound pod's requests by key, with the stored JSON they were read from (kept, so
    /// the pointer comparison cannot match a reused allocation): binding a burst of pods would
    /// otherwise parse every pod of the cluster once per binding.
    requests: HashMap<String, (bytes::Bytes, BTreeMap<String, i128>)>,
}

fn unscheduled(obj: &Value) -> bool {
    obj.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
        && obj
            .pointer("/spec/schedulerName")
            .and_then(Value::as_str)
            .is_none_or(|s| s == "default-scheduler")
        && obj.pointer("/metadata/deletionTimestamp").is_none()
        && !matches!(
            obj.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        )
}

impl Scheduler {
    async fn bind(&mut self, registry: &Arc<Registry>, pod: &StoredObject) -> Result<(), String> {
        let pod_value = pod.value();
        if !unscheduled(&pod_value) {
            return Ok(());
        }
        let (nodes, _) = registry
            .cache()
            .list(&resource("nodes").info.storage_prefix());
        let (pods, _) = registry
            .cache()
            .list(&resource("pods").info.storage_prefix());
        let mut usage: BTreeMap<String, (BTreeMap<String, i128>, i128)> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for p in &pods {
            let Some(node) = p.field("spec.nodeName").filter(|n| !n.is_empty()) else {
                continue;
            };
            if matches!(
                p.field("status.phase").as_deref(),
                Some("Succeeded" | "Failed")
            ) {
                continue;
            }
            seen.insert(p.key.as_str());
            let cached = self
                .requests
                .get(&p.key)
                .filter(|(json, _)| json.as_ptr() == p.json.as_ptr() && json.len() == p.json.len());
            let requests = match cached {
                Some((_, requests)) => requests.clone(),
                None => {
                    let requests = pod_requests(&p.value());
                    self.requests
                        .insert(p.key.clone(), (p.json.clone(), requests.clone()));
                    requests
                }
            };
            let entry = usage.entry(node).or_default();
            for (k, amount) in requests {
                *entry.0.entry(k).or_default() += amount;
            }
            entry.1 += 1;
        }
        self.requests.retain(|key, _| seen.contains(key.as_str()));
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut best: Option<(i128, String)> = None;
        for node in &nodes {
            let nv = node.value();
            let (requested, count) = usage.get(&node.name).cloned().unwrap_or_default();
            if let Some(reason) = misfit(&pod_value, &nv, &requested, count) {
                *reasons.entry(reason).or_default() += 1;
                continue;
            }
            // Least requested: the lowest share of cpu and memory in use after placing the pod.
            let wants = pod_requests(&pod_value);
            let share = |k: &str| -> i128 {
                let free = nv
                    .pointer(&format!("/status/allocatable/{k}"))
                    .and_then(Value::as_str)
                    .and_then(quantity::milli)
                    .unwrap_or(1)
                    .max(1);
                (requested.get(k).copied().unwrap_or(0) + wants.get(k).copied().unwrap_or(0)) * 1000
                    / free
            };
            let score = share("cpu") + share("memory") + count;
            if best.as_ref().is_none_or(|(s, _)| score < *s) {
                best = Some((score, node.name.clone()));
            }
        }
        let namespace = pod.namespace.clone().unwrap_or_default();
        let Some((_, node)) = best else {
            let mut message = format!("0/{} nodes are available", nodes.len());
            if !reasons.is_empty() {
                let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                message.push_str(&format!(": {}", parts.join(", ")));
            }
            message.push('.');
            record_failed(registry, &namespace, &pod.name, &pod.uid, &message).await;
            return Err(message);
        };
        let result = registry
            .read_modify_write(
                &resource("pods"),
                Some(&namespace),
                &pod.name,
                None,
                &WriteOptions {
                    field_manager: Some("default-scheduler".into()),
                    ..Default::default()
                },
                |current| {
                    let mut next = current.clone();
                    if next
                        .pointer("/spec/nodeName")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        next["spec"]["nodeName"] = json!(node);
                    }
                    Ok(next)
                },
                Some("binding"),
            )
            .await;
        match result {
            Ok(_) => {
                // The event is not awaited: the next pod's binding need not wait for its write.
                let registry = registry.clone();
                let (name, uid) = (pod.name.clone(), pod.uid.clone());
                tokio::spawn(async move {
                    events::record(
                        &registry,
                        "default-scheduler",
                        &Involved::pod(&namespace, &name, &uid),
                        EventType::Normal,
                        "Scheduled",
                        &format!("Successfully assigned {namespace}/{name} to {node}"),
                    )
                    .await;
                });
                Ok(())
            }
            Err(err) if err.code == 404 => Ok(()),
            Err(err) => Err(err.message),
        }
    }
}

async fn record_failed(registry: &Registry, namespace: &str, pod: &str, uid: &str, message: &str) {
    events::record(
        registry,
        "default-scheduler",
        &Involved::pod(namespace, pod, uid),
        EventType::Warning,
        "FailedScheduling",
        message,
    )
    .await;
}

impl Reconciler for Scheduler {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        let pods = resource("pods").info.storage_prefix();
        let nodes = resource("nodes").info.storage_prefix();
        if event.key.starts_with(&pods) && event.kind != CacheEventKind::Deleted {
            if event
                .object
                .field("spec.nodeName")
                .is_none_or(|n| n.is_empty())
            {
                return vec![event.key.clone()];
            }
            return vec![];
        }
        // A node appearing or changing, or a pod going away, can make waiting pods fit.
        let freed = event.key.starts_with(&pods) && event.kind == CacheEventKind::Deleted;
        if event.key.starts_with(&nodes) || freed {
            return vec!["*".to_string()];
        }
        vec![]
    }

    fn resync_keys(&mut self, _registry: &Registry) -> Vec<String> {
        vec!["*".to_string()]
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            if key == "*" {
                let (pods, _) = registry
                    .cache()
                    .list(&resource("pods").info.storage_prefix());
                for pod in pods
                    .iter()
                    .filter(|p| p.field("spec.nodeName").is_none_or(|n| n.is_empty()))
                {
                    let _ = self.bind(registry, pod).await;
                }
                return Ok(());
            }
            let Some((pod, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            // Unschedulable pods are retried when nodes or pods change and on resync, not in a
            // tight loop.
            let _ = self.bind(registry, &pod).await;
            Ok(())
        })
    }
}

/// Run the scheduler.
pub async fn run(registry: Arc<Registry>) {
    queue::run(
        registry,
        "/registry/core/",
        Scheduler::default(),
        Duration::from_secs(30),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cpu: &str, labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints},
               "status": {"allocatable": {"cpu": cpu, "memory": "1Gi", "pods": "10"},
                          "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    #[test]
    fn filters() {
        let pod = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "500m"}}}], "nodeSelector": {"disk": "ssd"}}});
        let none = BTreeMap::new();
        assert_eq!(
            misfit(
                &pod,
                &node("a", "1", json!({"disk": "ssd"}), json!([])),
                &none,
                0
            ),
            None
        );
        assert_eq!(
            misfit(&pod, &node("a", "1", json!({}), json!([])), &none, 0).as_deref(),
            Some("node(s) didn't match Pod's node affinity/selector")
        );
        let busy: BTreeMap<String, i128> = [("cpu".to_string(), 600)].into();
        assert_eq!(
            misfit(
                &pod,
                &node("a", "1", json!({"disk": "ssd"}), json!([])),
                &busy,
                1
            )
            .as_deref(),
            Some("Insufficient cpu")
        );
        let tainted = node(
            "a",
            "1",
            json!({"disk": "ssd"}),
            json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
        );
        assert_eq!(
            misfit(&pod, &tainted, &none, 0).as_deref(),
            Some("node(s) had untolerated taint {dedicated: db}")
        );
        let tolerant = json!({"spec": {"containers": [{}], "nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}});
        assert_eq!(misfit(&tolerant, &tainted, &none, 0), None);
        let mut unready = node("a", "1", json!({"disk": "ssd"}), json!([]));
        unready["status"]["conditions"][0]["status"] = json!("False");
        assert_eq!(
            misfit(&pod, &unready, &none, 0).as_deref(),
            Some("node(s) were not ready")
        );
        assert_eq!(
            misfit(
                &pod,
                &node("a", "1", json!({"disk": "ssd"}), json!([])),
                &none,
                10
            )
            .as_deref(),
            Some("Too many pods")
        );
    }
}
