//! The scheduler: places each pod that waits for one of its profiles (`spec.schedulerName`) on
//! a node, with kube-scheduler's framework (`framework`), plugins (`plugins`), profiles from a
//! KubeSchedulerConfiguration file (`config`), scheduling queue (`queue`) and preemption
//! (`preemption`).
//!
//! One loop follows the watch cache: nodes, bound pods and namespaces update the scheduler's
//! picture of the cluster (`cache`), pending pods enter the queue, and events that can make a
//! waiting pod fit move it back. Each cycle takes the most important pod, finds and scores
//! nodes, assumes the pod on the chosen node at once (so the next cycle already counts it) and
//! hands the binding to a task; many bindings are written concurrently, so they share the
//! store's commits. A failed binding is undone in the picture and retried after a back-off.
//! A pod that fits nowhere gets a FailedScheduling event and a PodScheduled=False condition
//! worded as kube-scheduler words them, and may preempt pods of lower priority.

mod cache;
pub mod config;
pub mod framework;
mod plugins;
mod preemption;
mod queue;
pub(crate) mod types;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_store::{CacheEvent, CacheEventKind};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::events::{self, EventType, Involved};
use crate::objects::resource;
pub use config::{ConfigError, default_profiles};
use framework::{Cycle, Failure, Permit, Profile, Rng, SearchState};
use types::{NodeInfo, PodInfo};

/// Whether a pod's nodeSelector and required node affinity allow a node, for controllers that
/// decide placement themselves (the DaemonSet controller).
pub fn node_affinity_allows(pod: &Value, node: &Value) -> bool {
    plugins::node_affinity::required_match(&PodInfo::parse("", pod), &NodeInfo::parse(node))
}

/// Bindings written at the same time.
const BINDINGS_IN_FLIGHT: usize = 512;
/// Pods scheduled between two looks at the watch.
const CYCLES_PER_TURN: usize = 128;
const COMPONENT: &str = "default-scheduler";

struct Bound {
    pod: Arc<PodInfo>,
    node: String,
    result: Result<(), maestro_api::ApiError>,
}

struct Scheduler {
    registry: Arc<Registry>,
    profiles: Vec<Profile>,
    cache: cache::Cache,
    queue: queue::SchedulingQueue,
    search: SearchState,
    prefixes: Prefixes,
    bindings: Arc<tokio::sync::Semaphore>,
    bound_tx: mpsc::UnboundedSender<Bound>,
    /// Scheduled events go through a bounded channel: when the writer falls behind (thousands
    /// of pods a second), events are dropped rather than slowing scheduling, as client-go's
    /// event broadcaster does.
    scheduled_events: mpsc::Sender<(Involved, String)>,
    /// Pods that preempted others, by key, with the node they were nominated to. Their room
    /// is held in the cache (a reservation) so that lesser pods do not take it while the
    /// victims terminate.
    nominations: std::collections::HashMap<String, String>,
    /// The last FailedScheduling message reported per pod.
    reported: std::collections::HashMap<String, String>,
}

fn reservation_key(key: &str) -> String {
    format!("nominated:{key}")
}

struct Prefixes {
    pods: String,
    nodes: String,
    namespaces: String,
    volumes: [String; 3],
}

impl Scheduler {
    fn handles(&self, pod: &PodInfo) -> bool {
        self.profiles
            .iter()
            .any(|p| p.scheduler_name == pod.scheduler_name)
    }

    fn on_event(&mut self, event: &CacheEvent<StoredObject>) {
        let key = event.key.as_str();
        let now = Instant::now();
        if key.starts_with(&self.prefixes.pods) {
            if event.kind == CacheEventKind::Deleted {
                let was_placed = self.cache.is_placed(key);
                self.cache.pod_event(key, None);
                self.queue.remove(key);
                self.reported.remove(key);
                if self.nominations.remove(key).is_some() {
                    self.cache.forget(&reservation_key(key));
                }
                if was_placed {
                    self.queue.cluster_changed(now);
                }
                return;
            }
            // A placed pod whose node, labels, phase and deletion are unchanged (a status
            // update, or the store confirming our binding) needs no parsing.
            let stored = &event.object;
            let node = stored.field("spec.nodeName").unwrap_or_default();
            let finished = matches!(
                stored.field("status.phase").as_deref(),
                Some("Succeeded" | "Failed")
            );
            if !node.is_empty()
                && !finished
                && self.cache.placed_pod(key).is_some_and(|p| {
                    p.node_name == node
                        && p.uid == stored.uid
                        && p.labels == stored.labels
                        && p.deleting == stored.deleting
                })
            {
                self.cache.confirm(key);
                self.queue.done(key);
                return;
            }
            let pod = Arc::new(PodInfo::parse(key, &stored.value()));
            if pod.node_name.is_empty() {
                self.cache.pod_event(key, None);
                if pod.unscheduled() && !pod.scheduling_gated && self.handles(&pod) {
                    if !self.cache.is_placed(key) {
                        self.queue.upsert(pod);
                    }
                } else {
                    self.queue.remove(key);
                }
            } else {
                self.queue.done(key);
                let finished = pod.finished;
                self.cache.pod_event(key, Some(pod));
                if finished {
                    self.queue.cluster_changed(now);
                }
            }
        } else if key.starts_with(&self.prefixes.nodes) {
            let name = event.object.name.clone();
            if event.kind == CacheEventKind::Deleted {
                self.cache.remove_node(&name);
                return;
            }
            let node = NodeInfo::parse(&event.object.value());
            let changed = self.cache.nodes.get(&name).is_none_or(|old| {
                old.labels != node.labels
                    || old.taints != node.taints
                    || old.allocatable != node.allocatable
                    || old.unschedulable != node.unschedulable
                    || old.ready != node.ready
                    || old.images.len() != node.images.len()
            });
            if changed {
                self.cache.set_node(node);
                self.queue.cluster_changed(now);
            }
        } else if key.starts_with(&self.prefixes.namespaces) {
            if event.kind == CacheEventKind::Deleted {
                self.cache.namespaces.remove(&event.object.name);
            } else {
                self.cache
                    .namespaces
                    .insert(event.object.name.clone(), event.object.labels.clone());
            }
        } else if self
            .prefixes
            .volumes
            .iter()
            .any(|p| key.starts_with(p.as_str()))
        {
            self.queue.cluster_changed(now);
        }
    }

    fn schedule_one(&mut self, pod: Arc<PodInfo>) {
        let Some(profile) = self
            .profiles
            .iter()
            .find(|p| p.scheduler_name == pod.scheduler_name)
            .cloned()
        else {
            self.queue.remove(&pod.key);
            return;
        };
        // A nominated pod's own reservation must not stand in its way.
        let nominated = self.nominations.get(&pod.key).cloned();
        if nominated.is_some() {
            self.cache.forget(&reservation_key(&pod.key));
        }
        let mut cycle = Cycle::new(pod.clone());
        let registry = self.registry.clone();
        let lookup = move |plural: &str, namespace: &str, name: &str| {
            let group = if plural == "storageclasses" {
                "storage.k8s.io"
            } else {
                ""
            };
            let res = resource(plural, group);
            let ns = (!namespace.is_empty()).then_some(namespace);
            registry
                .cache()
                .get(&res.info.key(ns, name))
                .map(|(o, _)| o.value())
        };
        let found = profile.find_nodes(&mut cycle, &mut self.cache, &lookup, &mut self.search);
        let feasible = match found {
            Ok(feasible) => feasible,
            Err(failure) => {
                if let Some(node) = nominated {
                    self.reserve(&pod, &node);
                }
                return self.unschedulable(&profile, cycle, failure);
            }
        };
        if nominated.is_some() {
            self.nominations.remove(&pod.key);
        }
        let slot = profile.pick(&mut cycle, &mut self.cache, &feasible, &mut self.search.rng);
        let node = self.cache.nodes.at(slot).name.clone();
        // Reserve, then Permit, over every plugin of the profile; undo on refusal.
        let plugins: Vec<_> = profile
            .filters
            .iter()
            .chain(profile.scorers.iter().map(|(p, _)| p))
            .cloned()
            .collect();
        for (i, plugin) in plugins.iter().enumerate() {
            let verdict = plugin
                .reserve(&cycle, &node)
                .err()
                .map(|u| u.reasons.join(", "));
            let verdict = verdict.or_else(|| match plugin.permit(&cycle, &node) {
                Permit::Allow => None,
                Permit::Deny(reason) => Some(reason),
            });
            if let Some(reason) = verdict {
                for earlier in &plugins[..=i] {
                    earlier.unreserve(&cycle, &node);
                }
                tracing::debug!(pod = %pod.key, node, reason, "placement refused");
                self.queue.retry_later(&pod.key, Instant::now());
                return;
            }
        }
        let mut placed = (*pod).clone();
        placed.node_name = node.clone();
        self.cache.assume(Arc::new(placed));
        let (registry, slots, tx) = (
            self.registry.clone(),
            self.bindings.clone(),
            self.bound_tx.clone(),
        );
        tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            // Claims waiting for their first consumer get their volumes on this node.
            if let Err(message) =
                crate::volumes::select_node(&registry, &pod.namespace, &pod.claims, &node).await
            {
                let result = Err(maestro_api::ApiError::internal(message));
                let _ = tx.send(Bound { pod, node, result });
                return;
            }
            let result = registry
                .bind_pod(&pod.namespace, &pod.name, &pod.uid, &node)
                .await
                .map(|_| ());
            let _ = tx.send(Bound { pod, node, result });
        });
    }

    fn on_bound(&mut self, bound: Bound) {
        let key = bound.pod.key.clone();
        match bound.result {
            Ok(()) => {
                self.queue.done(&key);
                self.reported.remove(&key);
                let pod = &bound.pod;
                let _ = self.scheduled_events.try_send((
                    Involved::pod(&pod.namespace, &pod.name, &pod.uid),
                    format!(
                        "Successfully assigned {}/{} to {}",
                        pod.namespace, pod.name, bound.node
                    ),
                ));
            }
            Err(err) => {
                self.cache.forget(&key);
                // Gone, replaced or bound by someone else: nothing left to do for this pod.
                if err.code == 404 || err.code == 409 {
                    tracing::debug!(pod = %key, err = %err.message, "binding not needed any more");
                    self.queue.remove(&key);
                } else {
                    tracing::warn!(pod = %key, node = %bound.node, err = %err.message, "binding failed; retrying");
                    self.queue.retry_later(&key, Instant::now());
                }
            }
        }
    }

    fn unschedulable(&mut self, profile: &Profile, cycle: Cycle, failure: Failure) {
        let pod = cycle.pod.clone();
        let mut message = failure.message();
        if profile.preemption && failure.nodes > 0 {
            let waiting_for_victims = self.nominations.get(&pod.key).is_some_and(|node| {
                self.cache.nodes.get(node).is_some_and(|n| {
                    n.pods
                        .iter()
                        .any(|p| p.deleting && p.priority < pod.priority)
                })
            });
            if pod.preempt_never {
                message.push_str(" preemption: not eligible due to preemptionPolicy=Never.");
            } else if waiting_for_victims {
                // Its victims are still terminating: preempting again would evict more pods.
            } else {
                match preemption::find(profile, &cycle, &self.cache, &failure) {
                    Some(chosen) => self.preempt(&pod, chosen),
                    None => {
                        let hopeless = failure.unresolvable.len();
                        let mut parts = Vec::new();
                        if failure.nodes > hopeless {
                            parts.push(format!(
                                "{} No preemption victims found for incoming pod",
                                failure.nodes - hopeless
                            ));
                        }
                        if hopeless > 0 {
                            parts.push(format!(
                                "{hopeless} Preemption is not helpful for scheduling"
                            ));
                        }
                        message.push_str(&format!(
                            " preemption: 0/{} nodes are available: {}.",
                            failure.nodes,
                            parts.join(", ")
                        ));
                    }
                }
            }
        }
        self.queue.unschedulable(&pod.key, Instant::now());
        // Reported once per pod and reason: retries with the same outcome write nothing (a
        // thousand pending pods retried on every cluster event would otherwise flood the store).
        if self.reported.get(&pod.key) == Some(&message) {
            return;
        }
        self.reported.insert(pod.key.clone(), message.clone());
        let registry = self.registry.clone();
        tokio::spawn(async move { report_unschedulable(&registry, &pod, &message).await });
    }

    /// Evict the victims and nominate the node; the pod is scheduled when they are gone.
    /// Hold room for a nominated pod on its node.
    fn reserve(&mut self, pod: &PodInfo, node: &str) {
        if !self.cache.nodes.contains_key(node) {
            self.nominations.remove(&pod.key);
            return;
        }
        let mut reservation = pod.clone();
        reservation.key = reservation_key(&pod.key);
        reservation.node_name = node.to_string();
        self.cache.assume(Arc::new(reservation));
        self.nominations.insert(pod.key.clone(), node.to_string());
    }

    fn preempt(&mut self, pod: &Arc<PodInfo>, chosen: preemption::Preemption) {
        tracing::info!(pod = %pod.key, node = %chosen.node, victims = chosen.victims.len(), "preempting");
        // Victims still count until they are gone; marking them keeps the next attempt from
        // choosing more.
        for victim in &chosen.victims {
            let mut going = (**victim).clone();
            going.deleting = true;
            self.cache.pod_event(&victim.key, Some(Arc::new(going)));
        }
        self.reserve(pod, &chosen.node);
        let registry = self.registry.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            let pods = resource("pods", "");
            let node = chosen.node.clone();
            let _ = crate::writes::edit(
                &registry,
                &pods,
                Some(&pod.namespace),
                &pod.name,
                Some("status"),
                |next| {
                    next["status"]["nominatedNodeName"] = json!(node);
                },
            )
            .await;
            for victim in chosen.victims {
                let stamp = jiff::Timestamp::now()
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string();
                let _ = crate::writes::edit(&registry, &pods, Some(&victim.namespace), &victim.name, Some("status"), |next| {
                    let mut conditions = next["status"]["conditions"].as_array().cloned().unwrap_or_default();
                    conditions.retain(|c| c["type"] != "DisruptionTarget");
                    conditions.push(json!({"type": "DisruptionTarget", "status": "True",
                        "reason": "PreemptionByScheduler",
                        "message": format!("{COMPONENT}: preempting to accommodate a higher priority pod"),
                        "lastTransitionTime": stamp}));
                    next["status"]["conditions"] = json!(conditions);
                })
                .await;
                events::record(
                    &registry,
                    COMPONENT,
                    &Involved::pod(&victim.namespace, &victim.name, &victim.uid),
                    EventType::Normal,
                    "Preempted",
                    &format!("Preempted by pod {} on node {}", pod.uid, chosen.node),
                )
                .await;
                let _ = crate::writes::delete(
                    &registry,
                    &pods,
                    Some(&victim.namespace),
                    &victim.name,
                    &victim.uid,
                    None,
                )
                .await;
            }
        });
    }
}

/// FailedScheduling event and the PodScheduled=False condition, written when they change.
async fn report_unschedulable(registry: &Registry, pod: &PodInfo, message: &str) {
    events::create(
        registry,
        COMPONENT,
        &Involved::pod(&pod.namespace, &pod.name, &pod.uid),
        EventType::Warning,
        "FailedScheduling",
        message,
    )
    .await;
    let pods = resource("pods", "");
    let current = registry
        .cache()
        .get(&pod.key)
        .map(|(p, _)| p.value())
        .unwrap_or(Value::Null);
    let same = current["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
        .is_some_and(|c| c["status"] == "False" && c["message"] == message);
    if same || current.is_null() {
        return;
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let _ = crate::writes::edit(
        registry,
        &pods,
        Some(&pod.namespace),
        &pod.name,
        Some("status"),
        |next| {
            if next["spec"]["nodeName"]
                .as_str()
                .is_some_and(|n| !n.is_empty())
            {
                return;
            }
            let mut conditions = next["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            conditions.retain(|c| c["type"] != "PodScheduled");
            conditions.push(
                json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": stamp}),
            );
            next["status"]["conditions"] = json!(conditions);
        },
    )
    .await;
}

/// Write Scheduled events as they come, dropping none unless the channel overflows.
async fn write_scheduled_events(
    registry: Arc<Registry>,
    mut rx: mpsc::Receiver<(Involved, String)>,
) {
    while let Some((involved, message)) = rx.recv().await {
        events::create(
            &registry,
            COMPONENT,
            &involved,
            EventType::Normal,
            "Scheduled",
            &message,
        )
        .await;
    }
}

/// Run the scheduler with these profiles until the task is aborted.
pub async fn run(registry: Arc<Registry>, profiles: Vec<Profile>) {
    let (events_tx, events_rx) = mpsc::channel(1024);
    tokio::spawn(write_scheduled_events(registry.clone(), events_rx));
    loop {
        let (bound_tx, mut bound_rx) = mpsc::unbounded_channel();
        let mut scheduler = Scheduler {
            registry: registry.clone(),
            profiles: profiles.clone(),
            cache: cache::Cache::default(),
            queue: queue::SchedulingQueue::default(),
            search: SearchState {
                next_start: 0,
                rng: Rng::new(jiff::Timestamp::now().as_nanosecond() as u64),
            },
            prefixes: Prefixes {
                pods: resource("pods", "").info.storage_prefix(),
                nodes: resource("nodes", "").info.storage_prefix(),
                namespaces: resource("namespaces", "").info.storage_prefix(),
                volumes: [
                    resource("persistentvolumeclaims", "").info.storage_prefix(),
                    resource("persistentvolumes", "").info.storage_prefix(),
                    resource("storageclasses", "storage.k8s.io")
                        .info
                        .storage_prefix(),
                ],
            },
            bindings: Arc::new(tokio::sync::Semaphore::new(BINDINGS_IN_FLIGHT)),
            bound_tx,
            scheduled_events: events_tx.clone(),
            nominations: Default::default(),
            reported: Default::default(),
        };
        let mut watch = match registry.cache().watch("/registry/", None) {
            Ok(w) => w,
            Err(err) => {
                tracing::warn!(%err, "scheduler cannot watch; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        'watching: loop {
            // Take in everything that is already known before deciding anything.
            loop {
                match watch.next().now_or_never() {
                    Some(Ok(event)) => scheduler.on_event(&event),
                    Some(Err(_)) => break 'watching,
                    None => break,
                }
            }
            while let Ok(bound) = bound_rx.try_recv() {
                scheduler.on_bound(bound);
            }
            scheduler.queue.tick(Instant::now());
            if scheduler.queue.has_active() {
                for _ in 0..CYCLES_PER_TURN {
                    let Some(pod) = scheduler.queue.pop() else {
                        break;
                    };
                    scheduler.schedule_one(pod);
                }
                tokio::task::yield_now().await;
                continue;
            }
            let wake = scheduler
                .queue
                .next_wake()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(5));
            tokio::select! {
                event = watch.next() => match event {
                    Ok(event) => scheduler.on_event(&event),
                    Err(_) => break 'watching,
                },
                Some(bound) = bound_rx.recv() => scheduler.on_bound(bound),
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        tracing::info!("scheduler watch ended; rebuilding its picture of the cluster");
    }
}
