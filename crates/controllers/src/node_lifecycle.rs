//! Node lifecycle, as Kubernetes' node lifecycle controller and taint manager do it:
//!
//! - a node whose agent has neither renewed its Lease nor posted status for the grace period
//!   gets its conditions set to Unknown ("Kubelet stopped posting node status.") and its pods
//!   marked not ready (so that Services stop sending them traffic);
//! - taints follow the Ready condition (`node.kubernetes.io/not-ready` when False,
//!   `node.kubernetes.io/unreachable` when Unknown, each NoSchedule and NoExecute) and
//!   `spec.unschedulable` (`node.kubernetes.io/unschedulable:NoSchedule`);
//! - pods on a node with NoExecute taints they do not tolerate are deleted, at once or after
//!   the shortest matching `tolerationSeconds` counted from the taint's `timeAdded`, with a
//!   DisruptionTarget condition and a TaintManagerEviction event. Their controllers replace
//!   them on other nodes. The API server gives every pod a not-ready and an unreachable
//!   toleration with a default number of seconds, which with the grace period decides how soon
//!   the pods of a lost node come back elsewhere.
//!
//! A heartbeat is a new revision of the node's Lease, timed by this server's clock when it sees
//! it, not by the timestamps the agents write: clock skew between machines does not matter, and
//! nothing is parsed for a node that is fine (it matters at thousands of nodes). Taints follow
//! node changes as they are seen.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::events::{self, EventType, Involved};
use crate::objects::{deleting, resource};
use crate::taints;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const COMPONENT: &str = "node-controller";
const CONDITION_TYPES: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Timing of the node lifecycle controller.
#[derive(Debug, Clone, Copy)]
pub struct NodeLifecycleConfig {
    /// How long a node may be silent before it is considered unreachable.
    pub grace_period: Duration,
    /// How often nodes and taints are checked.
    pub period: Duration,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            grace_period: Duration::from_secs(12),
            period: Duration::from_secs(1),
        }
    }
}

/// The last heartbeat seen from a node (a store revision) and when this server saw it change.
struct Heartbeat {
    seen: maestro_store::Revision,
    at: Instant,
}

fn now_text() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn ready_status(node: &Value) -> &str {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown")
}

/// The taints the controller owns for a node in this state (key, effect).
fn wanted_taints(node: &Value) -> Vec<(&'static str, &'static str)> {
    let mut wanted = Vec::new();
    match ready_status(node) {
        "True" => {}
        "False" => {
            wanted.push((NOT_READY, "NoSchedule"));
            wanted.push((NOT_READY, "NoExecute"));
        }
        _ => {
            wanted.push((UNREACHABLE, "NoSchedule"));
            wanted.push((UNREACHABLE, "NoExecute"));
        }
    }
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        wanted.push((UNSCHEDULABLE, "NoSchedule"));
    }
    wanted
}

/// The node's taints with the controller's own brought in line with `wanted`; other taints
/// and the `timeAdded` of kept ones stay. `None` when nothing changes.
fn reconcile_taints(node: &Value, wanted: &[(&str, &str)], now: &str) -> Option<Vec<Value>> {
    let current: Vec<Value> = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let owned = |t: &Value| {
        [NOT_READY, UNREACHABLE, UNSCHEDULABLE].contains(&t["key"].as_str().unwrap_or_default())
    };
    let has = |key: &str, effect: &str| {
        current
            .iter()
            .any(|t| t["key"] == key && t["effect"] == effect)
    };
    let mut next: Vec<Value> = current
        .iter()
        .filter(|t| {
            !owned(t)
                || wanted
                    .iter()
                    .any(|(k, e)| t["key"] == *k && t["effect"] == *e)
        })
        .cloned()
        .collect();
    for (key, effect) in wanted {
        if !has(key, effect) {
            let mut taint = json!({"key": key, "effect": effect});
            if *effect == "NoExecute" {
                taint["timeAdded"] = json!(now);
            }
            next.push(taint);
        }
    }
    (next != current).then_some(next)
}

/// Seconds until the pod must leave a node with these NoExecute taints (0: now), or `None`
/// when it may stay.
fn eviction_due_in(pod: &Value, no_execute: &[&Value], now: jiff::Timestamp) -> Option<i64> {
    let grace = taints::no_execute_grace(pod, no_execute)?;
    if grace == 0 {
        return Some(0);
    }
    // Counted from the newest of the taints the pod only tolerates for a while.
    let added = no_execute
        .iter()
        .filter_map(|t| t["timeAdded"].as_str())
        .filter_map(|t| t.parse::<jiff::Timestamp>().ok())
        .max()
        .unwrap_or(now);
    Some((grace - now.duration_since(added).as_secs()).max(0))
}

struct NodeLifecycle {
    registry: Arc<Registry>,
    config: NodeLifecycleConfig,
    heartbeats: HashMap<String, Heartbeat>,
    /// Each node's NoExecute taints with the node revision they were read from.
    no_execute: HashMap<String, (maestro_store::Revision, Vec<Value>)>,
}

impl NodeLifecycle {
    async fn pass(&mut self) {
        let nodes_res = resource("nodes", "");
        let leases = resource("leases", "coordination.k8s.io");
        let (nodes, _) = self.registry.cache().list(&nodes_res.info.storage_prefix());
        let now = Instant::now();
        for node in nodes.iter() {
            // A heartbeat is a new revision of the node's Lease (or, for an agent without one,
            // of the Node): comparing revisions costs no parsing, which matters at thousands
            // of nodes.
            let lease = self
                .registry
                .cache()
                .get(&leases.info.key(Some("kube-node-lease"), &node.name))
                .map(|(l, _)| l.revision);
            let seen = lease.unwrap_or(node.revision);
            let heartbeat = self
                .heartbeats
                .entry(node.name.clone())
                .or_insert(Heartbeat { seen, at: now });
            if heartbeat.seen != seen {
                heartbeat.seen = seen;
                heartbeat.at = now;
            }
            let silent = now.duration_since(heartbeat.at) > self.config.grace_period;
            if !silent {
                continue;
            }
            let value = node.value();
            if ready_status(&value) == "Unknown" {
                continue;
            }
            if let Err(err) = self.mark_unknown(&node.name).await {
                tracing::warn!(node = %node.name, err, "cannot mark the node Unknown");
                continue;
            }
            let mut involved = Involved::of(&value);
            involved.api_version = "v1".into();
            involved.kind = "Node".into();
            events::record(
                &self.registry,
                COMPONENT,
                &involved,
                EventType::Normal,
                "NodeNotReady",
                &format!("Node {} status is now: NodeNotReady", node.name),
            )
            .await;
            self.mark_pods_not_ready(&node.name).await;
        }
        self.heartbeats
            .retain(|name, _| nodes.iter().any(|n| &n.name == name));
        self.evict(&nodes).await;
    }

    async fn mark_unknown(&self, node: &str) -> Result<(), String> {
        let now = now_text();
        tracing::info!(node, "node stopped posting status; marking it Unknown");
        crate::writes::edit(
            &self.registry,
            &resource("nodes", ""),
            None,
            node,
            Some("status"),
            |next| {
                let mut conditions = next["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for kind in CONDITION_TYPES {
                    let fresh = json!({"type": kind, "status": "Unknown",
                        "reason": "NodeStatusUnknown",
                        "message": "Kubelet stopped posting node status.",
                        "lastHeartbeatTime": Value::Null, "lastTransitionTime": now});
                    match conditions.iter_mut().find(|c| c["type"] == kind) {
                        Some(c) => {
                            c["status"] = json!("Unknown");
                            c["reason"] = json!("NodeStatusUnknown");
                            c["message"] = json!("Kubelet stopped posting node status.");
                            c["lastTransitionTime"] = json!(now);
                        }
                        None => conditions.push(fresh),
                    }
                }
                next["status"]["conditions"] = json!(conditions);
            },
        )
        .await
    }

    /// Pods of an unreachable node are no longer ready (MarkPodsNotReady).
    async fn mark_pods_not_ready(&self, node: &str) {
        let pods = resource("pods", "");
        let (all, _) = self.registry.cache().list(&pods.info.storage_prefix());
        let now = now_text();
        for pod in all
            .iter()
            .filter(|p| p.field("spec.nodeName").as_deref() == Some(node))
        {
            let ready = pod.value()["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            if !ready {
                continue;
            }
            let result = crate::writes::edit(
                &self.registry,
                &pods,
                pod.namespace.as_deref(),
                &pod.name,
                Some("status"),
                |next| {
                    if let Some(conditions) = next["status"]["conditions"].as_array_mut() {
                        for c in conditions.iter_mut().filter(|c| c["type"] == "Ready") {
                            c["status"] = json!("False");
                            c["lastTransitionTime"] = json!(now);
                        }
                    }
                },
            )
            .await;
            if let Err(err) = result {
                tracing::warn!(pod = %pod.name, err, "cannot mark the pod not ready");
            }
        }
    }

    async fn sync_taints(&self, node: &str) -> Result<(), String> {
        let nodes = resource("nodes", "");
        let Some((current, _)) = self.registry.cache().get(&nodes.info.key(None, node)) else {
            return Ok(());
        };
        let now = now_text();
        if reconcile_taints(&current.value(), &wanted_taints(&current.value()), &now).is_none() {
            return Ok(());
        }
        crate::writes::edit(&self.registry, &nodes, None, node, None, |next| {
            let wanted = wanted_taints(next);
            if let Some(taints) = reconcile_taints(next, &wanted, &now) {
                if taints.is_empty() {
                    if let Some(spec) = next["spec"].as_object_mut() {
                        spec.remove("taints");
                    }
                } else {
                    next["spec"]["taints"] = json!(taints);
                }
            }
        })
        .await
    }

    /// Delete the pods that NoExecute taints send away (the taint manager).
    async fn evict(&mut self, nodes: &[Arc<StoredObject>]) {
        // Each node's NoExecute taints, parsed again only when the node changed.
        for n in nodes {
            let current = self.no_execute.get(&n.name).map(|(rev, _)| *rev);
            if current != Some(n.revision) {
                let taints: Vec<Value> = n.value()["spec"]["taints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|t| t["effect"] == "NoExecute")
                    .cloned()
                    .collect();
                self.no_execute.insert(n.name.clone(), (n.revision, taints));
            }
        }
        self.no_execute
            .retain(|name, _| nodes.iter().any(|n| &n.name == name));
        let tainted: HashMap<String, Vec<Value>> = self
            .no_execute
            .iter()
            .filter(|(_, (_, taints))| !taints.is_empty())
            .map(|(name, (_, taints))| (name.clone(), taints.clone()))
            .collect();
        if tainted.is_empty() {
            return;
        }
        let pods = resource("pods", "");
        let (all, _) = self.registry.cache().list(&pods.info.storage_prefix());
        let now = jiff::Timestamp::now();
        for pod in all.iter() {
            let Some(node_taints) = pod.field("spec.nodeName").and_then(|n| tainted.get(&n)) else {
                continue;
            };
            let value = pod.value();
            if deleting(&value) {
                continue;
            }
            let refs: Vec<&Value> = node_taints.iter().collect();
            if eviction_due_in(&value, &refs, now) != Some(0) {
                continue;
            }
            let namespace = pod.namespace.clone().unwrap_or_default();
            tracing::info!(pod = %pod.name, namespace, "evicting a pod from a NoExecute-tainted node");
            let stamp = now_text();
            let _ = crate::writes::edit(
                &self.registry,
                &pods,
                Some(&namespace),
                &pod.name,
                Some("status"),
                |next| {
                    let mut conditions = next["status"]["conditions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    conditions.retain(|c| c["type"] != "DisruptionTarget");
                    conditions.push(json!({"type": "DisruptionTarget", "status": "True",
                        "reason": "DeletionByTaintManager",
                        "message": "Taint manager: deleting due to NoExecute taint",
                        "lastTransitionTime": stamp}));
                    next["status"]["conditions"] = json!(conditions);
                },
            )
            .await;
            events::record(
                &self.registry,
                "taint-eviction-controller",
                &Involved::pod(&namespace, &pod.name, &pod.uid),
                EventType::Normal,
                "TaintManagerEviction",
                &format!("Marking for deletion Pod {namespace}/{}", pod.name),
            )
            .await;
            if let Err(err) = crate::writes::delete(
                &self.registry,
                &pods,
                Some(&namespace),
                &pod.name,
                &pod.uid,
                None,
            )
            .await
            {
                tracing::warn!(pod = %pod.name, err, "cannot evict the pod");
            }
        }
    }
}

/// Run the node lifecycle controller.
pub async fn run(registry: Arc<Registry>, config: NodeLifecycleConfig) {
    let mut controller = NodeLifecycle {
        registry,
        config,
        heartbeats: HashMap::new(),
        no_execute: HashMap::new(),
    };
    let mut tick = tokio::time::interval(config.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let nodes = resource("nodes", "").info.storage_prefix();
    loop {
        let mut watch = match controller.registry.cache().watch(&nodes, None) {
            Ok(w) => w,
            Err(err) => {
                tracing::warn!(%err, "node lifecycle cannot watch nodes; retrying");
                tokio::time::sleep(config.period).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = tick.tick() => controller.pass().await,
                // Cordoning, uncordoning and readiness changes get their taints at once, not
                // at the next pass: the scheduler reads the taints.
                event = watch.next() => match event {
                    Ok(event) if event.kind != maestro_store::CacheEventKind::Deleted => {
                        if let Err(err) = controller.sync_taints(&event.object.name).await {
                            tracing::warn!(node = %event.object.name, err, "cannot update the node's taints");
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: &str, unschedulable: bool, taints: Value) -> Value {
        json!({"spec": {"unschedulable": unschedulable, "taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}})
    }

    #[test]
    fn taints_follow_readiness_and_cordoning() {
        let t = "2026-01-01T00:00:00Z";
        assert_eq!(
            reconcile_taints(
                &node("True", false, json!([])),
                &wanted_taints(&node("True", false, json!([]))),
                t
            ),
            None
        );
        let lost = node(
            "Unknown",
            false,
            json!([{"key": "dedicated", "effect": "NoSchedule"}]),
        );
        let taints = reconcile_taints(&lost, &wanted_taints(&lost), t).unwrap();
        assert_eq!(taints.len(), 3);
        assert!(
            taints.iter().any(|x| x["key"] == UNREACHABLE
                && x["effect"] == "NoExecute"
                && x["timeAdded"] == t)
        );
        assert!(taints.iter().any(|x| x["key"] == "dedicated"));
        // Back to Ready: only the foreign taint stays.
        let back = node("True", false, json!(taints));
        assert_eq!(
            reconcile_taints(&back, &wanted_taints(&back), t).unwrap(),
            vec![json!({"key": "dedicated", "effect": "NoSchedule"})]
        );
        let cordoned = node("True", true, json!([]));
        assert_eq!(
            reconcile_taints(&cordoned, &wanted_taints(&cordoned), t).unwrap(),
            vec![json!({"key": UNSCHEDULABLE, "effect": "NoSchedule"})]
        );
        let not_ready = node("False", false, json!([]));
        let taints = reconcile_taints(&not_ready, &wanted_taints(&not_ready), t).unwrap();
        assert!(taints.iter().all(|x| x["key"] == NOT_READY));
    }

    #[test]
    fn eviction_waits_for_the_toleration_seconds_from_the_taint() {
        let added: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let taint =
            json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"});
        let pod = json!({"spec": {"tolerations": [{"key": UNREACHABLE, "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 8}]}});
        let at = |s: i64| {
            added
                .checked_add(jiff::SignedDuration::from_secs(s))
                .unwrap()
        };
        assert_eq!(eviction_due_in(&pod, &[&taint], at(3)), Some(5));
        assert_eq!(eviction_due_in(&pod, &[&taint], at(9)), Some(0));
        assert_eq!(
            eviction_due_in(&json!({"spec": {}}), &[&taint], at(0)),
            Some(0)
        );
        let forever = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        assert_eq!(eviction_due_in(&forever, &[&taint], at(1000)), None);
    }
}
