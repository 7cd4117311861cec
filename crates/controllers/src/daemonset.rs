//! The DaemonSet controller: one pod of the template on every node the DaemonSet selects
//! (nodeSelector and required node affinity of the template, taints it tolerates), as
//! Kubernetes' daemon controller does:
//!
//! - each pod is pinned to its node with required node affinity on `metadata.name`, so the
//!   scheduler places it, and gets the tolerations daemons have (not-ready, unreachable,
//!   pressure conditions, unschedulable — a cordoned node keeps its daemons);
//! - nodes that should not run it lose their pod, extra pods go, failed pods are replaced;
//! - templates are versioned as ControllerRevisions (`<name>-<hash>`, the pods' label
//!   `controller-revision-hash`), which `kubectl rollout history|undo daemonset` read;
//! - RollingUpdate replaces old pods at most `maxUnavailable` at a time (unavailable pods first);
//!   OnDelete leaves them until they are deleted;
//! - status: desired/current/misscheduled/ready/available/updated counts, as `kubectl rollout
//!   status daemonset` reads them.

use std::collections::BTreeMap;
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
use crate::taints::tolerates;

const HASH_LABEL: &str = "controller-revision-hash";

/// Tolerations every daemon pod gets, so that node conditions do not evict or block it.
fn daemon_tolerations(host_network: bool) -> Vec<Value> {
    let mut list = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        list.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    list
}

/// The pod template with the daemon tolerations added (those it does not have).
fn with_daemon_tolerations(template: &Value) -> Value {
    let mut template = template.clone();
    let host_network = template["spec"]["hostNetwork"] == true;
    let mut tolerations = template["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for t in daemon_tolerations(host_network) {
        if !tolerations
            .iter()
            .any(|have| have["key"] == t["key"] && have["effect"] == t["effect"])
        {
            tolerations.push(t);
        }
    }
    template["spec"]["tolerations"] = json!(tolerations);
    template
}

/// Whether the DaemonSet's pods belong on this node.
fn should_run(template: &Value, node: &Value) -> bool {
    let pod = json!({"metadata": {"name": "daemon", "namespace": "x"}, "spec": template["spec"]});
    if !crate::scheduler::node_affinity_allows(&pod, node) {
        return false;
    }
    let pod_with = json!({"spec": {"tolerations": template["spec"]["tolerations"]}});
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| matches!(t["effect"].as_str(), Some("NoSchedule" | "NoExecute")))
        .all(|t| tolerates(&pod_with, t))
}

/// The pod for one node.
fn daemon_pod(ds: &Value, template: &Value, node: &str, hash: &str) -> Value {
    let name = ds["metadata"]["name"].as_str().unwrap_or_default();
    let mut pod_spec = template["spec"].clone();
    // Pin to the node through the scheduler (as Kubernetes does since 1.12).
    let pin =
        json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]});
    let terms = pod_spec
        .pointer("/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let merged: Vec<Value> = if terms.is_empty() {
        vec![pin.clone()]
    } else {
        terms
            .into_iter()
            .map(|mut t| {
                t["matchFields"] = pin["matchFields"].clone();
                t
            })
            .collect()
    };
    pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
        json!({"nodeSelectorTerms": merged});
    let mut labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), json!(hash));
    let mut owner = controller_reference(ds);
    owner["apiVersion"] = json!("apps/v1");
    owner["kind"] = json!("DaemonSet");
    let mut metadata = json!({"generateName": format!("{name}-"), "labels": labels,
        "ownerReferences": [owner]});
    if let Some(annotations) = template["metadata"].get("annotations") {
        metadata["annotations"] = annotations.clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec})
}

struct DaemonSets {
    daemonsets: Arc<Resource>,
    pods: Arc<Resource>,
    nodes: Arc<Resource>,
    revisions: Arc<Resource>,
    requeues: Vec<(String, Duration)>,
}

impl DaemonSets {
    async fn sync(&mut self, registry: &Registry, stored: &StoredObject) -> Result<(), String> {
        let ds = stored.value();
        if deleting(&ds) {
            return Ok(());
        }
        let namespace = stored.namespace.clone().unwrap_or_default();
        let template = with_daemon_tolerations(&ds["spec"]["template"]);
        let hash = crate::revisions::template_hash(&ds["spec"]["template"]);
        let mut written: Option<Revision> = None;
        crate::revisions::ensure(
            registry,
            &self.revisions,
            &ds,
            "DaemonSet",
            &format!("{}-{hash}", stored.name),
        )
        .await?;
        let (nodes, _) = registry.cache().list(&self.nodes.info.storage_prefix());
        let (all_pods, _) = registry
            .cache()
            .list(&self.pods.info.namespace_prefix(Some(&namespace)));
        let mut by_node: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut unscheduled: Vec<Value> = Vec::new();
        for pod in all_pods.iter().map(|p| p.value()) {
            if !controlled_by(&pod, &stored.uid) || deleting(&pod) {
                continue;
            }
            // The node a pod is for: where it runs, or the node its affinity pins it to.
            let node = pod["spec"]["nodeName"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(String::from)
                .or_else(|| {
                    pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0")
                        .and_then(Value::as_str)
                        .map(String::from)
                });
            match node {
                Some(node) => by_node.entry(node).or_default().push(pod),
                None => unscheduled.push(pod),
            }
        }
        let max_unavailable = {
            let desired = nodes
                .iter()
                .filter(|n| should_run(&template, &n.value()))
                .count() as i64;
            let value = &ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"];
            match value {
                Value::Number(n) => n.as_i64().unwrap_or(1),
                Value::String(s) if s.ends_with('%') => {
                    (s.trim_end_matches('%').parse::<i64>().unwrap_or(0) * desired / 100).max(1)
                }
                _ => 1,
            }
            .max(1)
        };
        let rolling = ds["spec"]["updateStrategy"]["type"].as_str() != Some("OnDelete");
        let mut to_create: Vec<String> = Vec::new();
        let mut to_delete: Vec<Value> = unscheduled;
        let mut old_pods: Vec<(bool, Value)> = Vec::new();
        let mut unavailable = 0i64;
        for node in nodes.iter() {
            let wanted = should_run(&template, &node.value());
            let mut pods = by_node.remove(&node.name).unwrap_or_default();
            if !wanted {
                to_delete.extend(pods);
                continue;
            }
            // Failed daemons are replaced.
            let (failed, mut live): (Vec<Value>, Vec<Value>) =
                pods.drain(..).partition(is_finished_pod);
            to_delete.extend(failed);
            if live.is_empty() {
                to_create.push(node.name.clone());
                unavailable += 1;
                continue;
            }
            // Keep the newest revision's pod (or the oldest pod), delete the rest.
            live.sort_by_key(|p| {
                (
                    p["metadata"]["labels"][HASH_LABEL] != hash.as_str(),
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            });
            let keep = live.remove(0);
            to_delete.extend(live);
            let available = self.available(&ds, &keep);
            if !available {
                unavailable += 1;
            }
            if keep["metadata"]["labels"][HASH_LABEL] != hash.as_str() {
                old_pods.push((available, keep));
            }
        }
        // Pods for nodes that are gone.
        to_delete.extend(by_node.into_values().flatten());
        if rolling {
            // Unavailable old pods first: replacing them costs no availability.
            old_pods.sort_by_key(|(available, _)| *available);
            let mut budget = max_unavailable - unavailable;
            for (available, pod) in old_pods {
                if !available {
                    to_delete.push(pod);
                } else if budget > 0 {
                    budget -= 1;
                    to_delete.push(pod);
                }
            }
        }
        for pod in &to_delete {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let uid = pod["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let opts = DeleteOptions {
                precondition_uid: Some(uid),
                ..Default::default()
            };
            match registry
                .delete(&self.pods, Some(&namespace), name, &opts)
                .await
            {
                Ok(deleted) => written = written.max(revision_of(&deleted.object)),
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(format!("deleting pod {name}: {}", e.message)),
            }
        }
        for node in &to_create {
            let pod = daemon_pod(&ds, &template, node, &hash);
            match registry
                .create(&self.pods, Some(&namespace), pod, &WriteOptions::default())
                .await
            {
                Ok(created) => written = written.max(revision_of(&created.object)),
                Err(e) => return Err(format!("creating the pod for node {node}: {}", e.message)),
            }
        }
        if let Some(revision) = written {
            let _ = registry.cache().wait_for(revision).await;
        }
        self.write_status(registry, &ds, &namespace, &stored.uid, &template, &hash)
            .await
    }

    fn available(&mut self, ds: &Value, pod: &Value) -> bool {
        let Some(since) = ready_since(pod) else {
            return false;
        };
        let min_ready = int(ds, "/spec/minReadySeconds");
        let ready_for = jiff::Timestamp::now().duration_since(since).as_secs();
        if ready_for >= min_ready {
            return true;
        }
        let key = self.daemonsets.info.key(
            ds["metadata"]["namespace"].as_str(),
            ds["metadata"]["name"].as_str().unwrap_or_default(),
        );
        self.requeues
            .push((key, Duration::from_secs((min_ready - ready_for) as u64 + 1)));
        false
    }

    async fn write_status(
        &mut self,
        registry: &Registry,
        ds: &Value,
        namespace: &str,
        uid: &str,
        template: &Value,
        hash: &str,
    ) -> Result<(), String> {
        let (nodes, _) = registry.cache().list(&self.nodes.info.storage_prefix());
        let (pods, _) = registry
            .cache()
            .list(&self.pods.info.namespace_prefix(Some(namespace)));
        let pods: Vec<Value> = pods
            .iter()
            .map(|p| p.value())
            .filter(|p| controlled_by(p, uid) && !deleting(p) && !is_finished_pod(p))
            .collect();
        let (mut desired, mut current, mut misscheduled) = (0, 0, 0);
        let (mut ready, mut available, mut updated) = (0, 0, 0);
        for node in nodes.iter() {
            let wanted = should_run(template, &node.value());
            let here: Vec<&Value> = pods
                .iter()
                .filter(|p| p["spec"]["nodeName"] == node.name.as_str())
                .collect();
            if wanted {
                desired += 1;
            }
            if here.is_empty() {
                continue;
            }
            if !wanted {
                misscheduled += 1;
                continue;
            }
            current += 1;
            let pod = here[0];
            if ready_since(pod).is_some() {
                ready += 1;
                if self.available(ds, pod) {
                    available += 1;
                }
            }
            if pod["metadata"]["labels"][HASH_LABEL] == hash {
                updated += 1;
            }
        }
        let status = json!({
            "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired,
            "numberReady": ready,
            "observedGeneration": ds["metadata"]["generation"],
            "updatedNumberScheduled": updated,
            "numberAvailable": available,
            "numberUnavailable": (desired - available).max(0),
        });
        let unchanged = status
            .as_object()
            .expect("built above")
            .iter()
            .all(|(k, v)| ds["status"].get(k).unwrap_or(&json!(0)) == v);
        if unchanged {
            return Ok(());
        }
        let name = ds["metadata"]["name"].as_str().unwrap_or_default();
        crate::writes::edit(
            registry,
            &self.daemonsets,
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

impl Reconciler for DaemonSets {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        if event.key.starts_with(&self.nodes.info.storage_prefix()) {
            // A node added, relabelled or retainted may change where daemons run.
            return vec!["*".into()];
        }
        queue::owner_keys(event, &self.daemonsets, "DaemonSet", &self.pods)
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        queue::all_keys(registry, &self.daemonsets)
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
            let keys = if key == "*" {
                self.resync_keys(registry)
            } else {
                vec![key.to_string()]
            };
            for key in keys {
                if let Some((ds, _)) = registry.cache().get(&key) {
                    self.sync(registry, &ds).await?;
                }
            }
            Ok(())
        })
    }
}

/// Run the DaemonSet controller.
pub async fn run(registry: Arc<Registry>) {
    let controller = DaemonSets {
        daemonsets: resource("daemonsets", "apps"),
        pods: resource("pods", ""),
        nodes: resource("nodes", ""),
        revisions: resource("controllerrevisions", "apps"),
        requeues: Vec::new(),
    };
    queue::run(registry, "/registry/", controller, Duration::from_secs(30)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
    }

    #[test]
    fn daemons_go_where_selectors_and_taints_allow() {
        let template = with_daemon_tolerations(&json!({"metadata": {"labels": {"app": "d"}},
            "spec": {"nodeSelector": {"role": "edge"}, "containers": [{"name": "c", "image": "i"}]}}));
        assert!(should_run(
            &template,
            &node("a", json!({"role": "edge"}), json!([]))
        ));
        assert!(!should_run(
            &template,
            &node("b", json!({"role": "core"}), json!([]))
        ));
        // Cordoned and not-ready nodes keep their daemons; a foreign NoSchedule taint does not.
        assert!(should_run(
            &template,
            &node(
                "c",
                json!({"role": "edge"}),
                json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                   {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])
            )
        ));
        assert!(!should_run(
            &template,
            &node(
                "d",
                json!({"role": "edge"}),
                json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
            )
        ));
    }

    #[test]
    fn daemon_pods_are_pinned_to_their_node_and_labelled_with_the_revision() {
        let ds = json!({"metadata": {"name": "agent", "uid": "u1"}});
        let template = json!({"metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let pod = daemon_pod(&ds, &template, "n1", "abc");
        assert_eq!(pod["metadata"]["labels"][HASH_LABEL], "abc");
        assert_eq!(pod["metadata"]["generateName"], "agent-");
        assert_eq!(
            pod.pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchFields/0/values/0"),
            Some(&json!("n1"))
        );
        assert!(controlled_by(&pod, "u1"));
        assert_ne!(
            crate::revisions::template_hash(&template),
            crate::revisions::template_hash(&json!({}))
        );
    }
}
