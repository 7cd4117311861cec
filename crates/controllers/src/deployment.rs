//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets, as
//! Kubernetes' deployment controller does, so that `kubectl rollout status|history|undo|pause|
//! resume|restart` and `kubectl scale` see what they expect.
//!
//! Each pod template gets one ReplicaSet, named `<deployment>-<pod-template-hash>`, whose pods
//! carry the `pod-template-hash` label. RollingUpdate scales the new ReplicaSet up within
//! `maxSurge` and the old ones down within `maxUnavailable` (old ReplicaSets' unhealthy pods
//! first); Recreate scales the old ones to zero, waits for their pods to be gone, then scales
//! the new one up. A change of `replicas` during a rollout is spread over the active
//! ReplicaSets in proportion to their sizes. Revisions are kept in the ReplicaSets'
//! `deployment.kubernetes.io/revision` annotation (an old template coming back takes the next
//! revision), and ReplicaSets beyond `revisionHistoryLimit` are deleted once scaled to zero.
//! Status follows Kubernetes field for field, including the Available and Progressing
//! conditions with their reasons (NewReplicaSetCreated, ReplicaSetUpdated,
//! NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused, DeploymentResumed).

use std::sync::Arc;
use std::time::Duration;

use maestro_api::selector::LabelSelector;
use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::{DeleteOptions, Resource, WriteOptions};
use maestro_store::{CacheEvent, CacheEventKind, Revision, WatchCache};
use serde_json::{Map, Value, json};

use crate::events::{self, EventType, Involved};
use crate::objects::{
    controlled_by, controller_ref, controller_reference, deleting, has_controller, int,
    is_finished_pod, resource, revision_of,
};
use crate::queue::{self, Reconciler};

const REVISION: &str = "deployment.kubernetes.io/revision";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const HASH_LABEL: &str = "pod-template-hash";
/// Deployment annotations that are not copied to its ReplicaSets.
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
const COMPONENT: &str = "deployment-controller";

// ---- Reading a Deployment -------------------------------------------------------------------

fn replicas(d: &Value) -> i64 {
    d.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

fn is_recreate(d: &Value) -> bool {
    d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate")
}

fn paused(d: &Value) -> bool {
    d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true)
}

/// An int-or-percent against `total`, percentages rounded up or down.
fn scaled_value(value: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match value {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) if s.ends_with('%') => {
            let percent: i64 = s.trim_end_matches('%').parse().unwrap_or(25);
            let scaled = percent * total;
            if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            }
        }
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => {
            let scaled = 25 * total;
            if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            }
        }
    }
}

/// (maxSurge, maxUnavailable) resolved against the replica count; both zero means one may be
/// unavailable, as Kubernetes resolves them.
fn fenceposts(d: &Value) -> (i64, i64) {
    let total = replicas(d);
    let rolling = d.pointer("/spec/strategy/rollingUpdate");
    let surge = scaled_value(rolling.and_then(|r| r.get("maxSurge")), total, true);
    let unavailable = scaled_value(rolling.and_then(|r| r.get("maxUnavailable")), total, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

fn max_surge(d: &Value) -> i64 {
    if is_recreate(d) { 0 } else { fenceposts(d).0 }
}

fn max_unavailable(d: &Value) -> i64 {
    if is_recreate(d) || replicas(d) == 0 {
        0
    } else {
        fenceposts(d).1.min(replicas(d))
    }
}

// ---- Templates and their hash ---------------------------------------------------------------

/// JSON with object keys sorted, so that equal templates hash alike whatever their key order.
pub(crate) fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The `pod-template-hash` of a template: FNV-1a over its canonical JSON and the collision
/// count, written in the consonant-and-digit alphabet Kubernetes uses for generated names.
fn template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let mut text = String::new();
    canonical(&without_hash(template), &mut text);
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(text.as_bytes());
    if let Some(count) = collision_count {
        feed(&(count as u32).to_le_bytes());
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

fn without_hash(template: &Value) -> Value {
    let mut template = template.clone();
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    template
}

/// Whether two pod templates are the same but for the hash label.
fn same_template(a: &Value, b: &Value) -> bool {
    without_hash(a) == without_hash(b)
}

// ---- ReplicaSets as the controller sees them ------------------------------------------------

#[derive(Debug, Clone)]
struct Set {
    value: Value,
}

impl Set {
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }
    fn replicas(&self) -> i64 {
        int(&self.value, "/spec/replicas")
    }
    fn status(&self, field: &str) -> i64 {
        self.value["status"][field].as_i64().unwrap_or(0)
    }
    fn annotation(&self, key: &str) -> Option<i64> {
        self.value["metadata"]["annotations"][key]
            .as_str()
            .and_then(|v| v.parse().ok())
    }
    fn revision(&self) -> i64 {
        self.annotation(REVISION).unwrap_or(0)
    }
    fn created(&self) -> String {
        self.value["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn total_replicas(sets: &[&Set]) -> i64 {
    sets.iter().map(|s| s.replicas()).sum()
}

fn total_status(sets: &[&Set], field: &str) -> i64 {
    sets.iter().map(|s| s.status(field)).sum()
}

/// The index of the ReplicaSet of the Deployment's current template: the one named by its
/// hash, else the oldest with an equal template.
fn find_new(d: &Value, sets: &[Set]) -> Option<usize> {
    let template = &d["spec"]["template"];
    let hash = template_hash(template, d["status"]["collisionCount"].as_i64());
    let name = format!(
        "{}-{hash}",
        d["metadata"]["name"].as_str().unwrap_or_default()
    );
    if let Some(i) = sets.iter().position(|s| s.name() == name) {
        return Some(i);
    }
    let mut equal: Vec<usize> = (0..sets.len())
        .filter(|&i| same_template(&sets[i].value["spec"]["template"], template))
        .collect();
    equal.sort_by_key(|&i| (sets[i].created(), sets[i].name().to_string()));
    equal.first().copied()
}

/// How many replicas the new ReplicaSet should have now (NewRSNewReplicas).
fn new_set_replicas(d: &Value, all: &[&Set], new_replicas: i64) -> i64 {
    if is_recreate(d) {
        return replicas(d);
    }
    let max_total = replicas(d) + max_surge(d);
    let current = total_replicas(all);
    if current >= max_total {
        return new_replicas;
    }
    let up = (max_total - current).min(replicas(d) - new_replicas);
    new_replicas + up.max(0)
}

/// Scale-downs of old ReplicaSets' unhealthy replicas, oldest first, within `budget`.
fn unhealthy_scale_downs(old: &[&Set], budget: i64) -> Vec<(String, i64)> {
    let mut old: Vec<&&Set> = old.iter().collect();
    old.sort_by_key(|s| (s.created(), s.name().to_string()));
    let mut done = 0;
    let mut plan = Vec::new();
    for set in old {
        if done >= budget {
            break;
        }
        let unhealthy = set.replicas() - set.status("availableReplicas");
        if set.replicas() == 0 || unhealthy <= 0 {
            continue;
        }
        let down = (budget - done).min(unhealthy);
        plan.push((set.name().to_string(), set.replicas() - down));
        done += down;
    }
    plan
}

/// Scale-downs of old ReplicaSets, oldest first, as far as availability allows.
fn available_scale_downs(d: &Value, all: &[&Set], old: &[&Set]) -> Vec<(String, i64)> {
    let min_available = replicas(d) - max_unavailable(d);
    let available = total_status(all, "availableReplicas");
    if available <= min_available {
        return Vec::new();
    }
    let budget = available - min_available;
    let mut old: Vec<&&Set> = old.iter().collect();
    old.sort_by_key(|s| (s.created(), s.name().to_string()));
    let mut done = 0;
    let mut plan = Vec::new();
    for set in old {
        if done >= budget {
            break;
        }
        if set.replicas() == 0 {
            continue;
        }
        let down = set.replicas().min(budget - done);
        plan.push((set.name().to_string(), set.replicas() - down));
        done += down;
    }
    plan
}

/// New sizes when `replicas` changed with several ReplicaSets active: the difference spread in
/// proportion to their sizes, leftovers to the largest (Kubernetes' proportional scaling).
fn proportional_sizes(d: &Value, active: &[&Set]) -> Vec<(String, i64)> {
    let allowed = if replicas(d) > 0 {
        replicas(d) + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - total_replicas(active);
    let mut order: Vec<&&Set> = active.iter().collect();
    // Largest first; ties: the newer first when growing, the older first when shrinking.
    order.sort_by(|a, b| {
        b.replicas().cmp(&a.replicas()).then_with(|| {
            if to_add > 0 {
                b.created().cmp(&a.created())
            } else {
                a.created().cmp(&b.created())
            }
        })
    });
    let mut added = 0;
    let mut sizes: Vec<(String, i64)> = Vec::new();
    for set in &order {
        let mut proportion = 0;
        if to_add != 0 && set.replicas() != 0 && to_add != added {
            let fraction = if replicas(d) == 0 {
                -set.replicas()
            } else {
                let annotated = set
                    .annotation(MAX_REPLICAS)
                    .unwrap_or_else(|| int(d, "/status/replicas"))
                    .max(1);
                let size = (set.replicas() * allowed) as f64 / annotated as f64;
                size.round() as i64 - set.replicas()
            };
            let remaining = to_add - added;
            proportion = if to_add > 0 {
                fraction.min(remaining)
            } else {
                fraction.max(remaining)
            };
        }
        added += proportion;
        sizes.push((set.name().to_string(), set.replicas() + proportion));
    }
    if let Some(first) = sizes.first_mut()
        && to_add != 0
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    sizes
}

// ---- Conditions and status ------------------------------------------------------------------

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    let now = now();
    json!({"type": kind, "status": status, "lastUpdateTime": now,
        "lastTransitionTime": now, "reason": reason, "message": message})
}

fn get_condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// SetDeploymentCondition: the same status and reason keep the condition as it is; the same
/// status keeps its transition time.
fn set_condition(status: &mut Value, mut new: Value) {
    let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    if let Some(current) = conditions.iter().find(|c| c["type"] == new["type"]) {
        if current["status"] == new["status"] && current["reason"] == new["reason"] {
            return;
        }
        if current["status"] == new["status"] {
            new["lastTransitionTime"] = current["lastTransitionTime"].clone();
        }
    }
    let mut kept: Vec<Value> = conditions
        .into_iter()
        .filter(|c| c["type"] != new["type"])
        .collect();
    kept.push(new);
    status["conditions"] = json!(kept);
}

fn remove_condition(status: &mut Value, kind: &str) {
    if let Some(conditions) = status["conditions"].as_array_mut() {
        conditions.retain(|c| c["type"] != kind);
    }
}

/// The status counts of the ReplicaSets, with the Available condition (calculateStatus).
fn calculate_status(d: &Value, all: &[&Set], new: Option<&Set>) -> Value {
    let available = total_status(all, "availableReplicas");
    let unavailable = (total_replicas(all) - available).max(0);
    let mut status = json!({"observedGeneration": d["metadata"]["generation"]});
    let counts = [
        ("replicas", total_status(all, "replicas")),
        ("updatedReplicas", new.map_or(0, |n| n.status("replicas"))),
        ("readyReplicas", total_status(all, "readyReplicas")),
        ("availableReplicas", available),
        ("unavailableReplicas", unavailable),
    ];
    // Zero counts are left out, as Kubernetes' omitempty fields are.
    for (field, count) in counts {
        if count != 0 {
            status[field] = json!(count);
        }
    }
    if let Some(count) = d["status"].get("collisionCount") {
        status["collisionCount"] = count.clone();
    }
    if let Some(conditions) = d["status"].get("conditions") {
        status["conditions"] = conditions.clone();
    }
    if available >= replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            ),
        );
    } else {
        set_condition(
            &mut status,
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            ),
        );
    }
    status
}

fn status_count(status: &Value, field: &str) -> i64 {
    status[field].as_i64().unwrap_or(0)
}

/// Every replica is updated and available, and the spec is observed (DeploymentComplete).
fn complete(d: &Value, status: &Value) -> bool {
    let want = replicas(d);
    status_count(status, "updatedReplicas") == want
        && status_count(status, "replicas") == want
        && status_count(status, "availableReplicas") == want
        && status_count(status, "observedGeneration") >= int(d, "/metadata/generation")
}

/// Whether the rollout moved since the last status (DeploymentProgressing).
fn progressing(d: &Value, new: &Value) -> bool {
    let old = &d["status"];
    let old_replicas = |s: &Value| status_count(s, "replicas") - status_count(s, "updatedReplicas");
    status_count(new, "updatedReplicas") > status_count(old, "updatedReplicas")
        || old_replicas(new) < old_replicas(old)
        || status_count(new, "readyReplicas") > status_count(old, "readyReplicas")
        || status_count(new, "availableReplicas") > status_count(old, "availableReplicas")
}

fn progress_deadline(d: &Value) -> Option<i64> {
    match d.pointer("/spec/progressDeadlineSeconds") {
        Some(Value::Number(n)) if n.as_i64() == Some(i64::from(i32::MAX)) => None,
        Some(Value::Number(n)) => n.as_i64(),
        _ => Some(600),
    }
}

/// Seconds left before the Progressing condition times out, if it may.
fn seconds_to_deadline(d: &Value, status: &Value) -> Option<i64> {
    let deadline = progress_deadline(d)?;
    let progress = get_condition(status, "Progressing")?;
    if progress["reason"] == "NewReplicaSetAvailable" || progress["status"] != "True" {
        return None;
    }
    let since: jiff::Timestamp = progress["lastUpdateTime"].as_str()?.parse().ok()?;
    Some(deadline - jiff::Timestamp::now().duration_since(since).as_secs())
}

// ---- The controller -------------------------------------------------------------------------

struct Deployments {
    deployments: Arc<Resource>,
    replicasets: Arc<Resource>,
    pods: Arc<Resource>,
    cache: Arc<WatchCache<StoredObject>>,
    requeues: Vec<(String, Duration)>,
}

/// One pass over one Deployment: the object as last written and the newest store revision
/// this pass wrote (the next pass must see its own writes).
struct Pass {
    d: Value,
    namespace: String,
    name: String,
    sets: Vec<Set>,
    written: Option<Revision>,
}

impl Pass {
    fn wrote(&mut self, object: &Value) {
        self.written = self.written.max(revision_of(object));
    }

    fn involved(&self) -> Involved {
        let mut involved = Involved::of(&self.d);
        involved.api_version = "apps/v1".into();
        involved.kind = "Deployment".into();
        involved
    }

    fn split(&self) -> (Option<&Set>, Vec<&Set>) {
        match find_new(&self.d, &self.sets) {
            Some(i) => (
                Some(&self.sets[i]),
                self.sets
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, s)| s)
                    .collect(),
            ),
            None => (None, self.sets.iter().collect()),
        }
    }

    fn set_mut(&mut self, name: &str) -> Option<&mut Set> {
        self.sets.iter_mut().find(|s| s.name() == name)
    }
}

impl Deployments {
    async fn sync(&mut self, registry: &Registry, stored: &StoredObject) -> Result<(), String> {
        let d = stored.value();
        if deleting(&d) {
            return Ok(());
        }
        let namespace = stored.namespace.clone().unwrap_or_default();
        let selector = LabelSelector::from_object(&d["spec"]["selector"])
            .map_err(|e| format!("selector: {e}"))?;
        if selector.is_empty() {
            // An empty selector would claim every ReplicaSet of the namespace.
            return Ok(());
        }
        let mut pass = Pass {
            d,
            namespace,
            name: stored.name.clone(),
            sets: Vec::new(),
            written: None,
        };
        self.claim_sets(registry, &mut pass, &selector).await?;
        let result = self.sync_claimed(registry, &mut pass).await;
        if let Some(revision) = pass.written {
            let _ = registry.cache().wait_for(revision).await;
        }
        if let Some(seconds) = seconds_to_deadline(&pass.d, &pass.d["status"]) {
            let key = self.deployments.info.key(Some(&pass.namespace), &pass.name);
            self.requeues
                .push((key, Duration::from_secs(seconds.max(0) as u64 + 1)));
        }
        result
    }

    async fn sync_claimed(&self, registry: &Registry, pass: &mut Pass) -> Result<(), String> {
        self.check_paused_conditions(registry, pass).await?;
        if paused(&pass.d) || self.is_scaling_event(pass) {
            return self.sync_only(registry, pass).await;
        }
        if is_recreate(&pass.d) {
            self.rollout_recreate(registry, pass).await
        } else {
            self.rollout_rolling(registry, pass).await
        }
    }

    /// The ReplicaSets this Deployment controls, after adopting matching orphans and releasing
    /// those its selector no longer matches.
    async fn claim_sets(
        &self,
        registry: &Registry,
        pass: &mut Pass,
        selector: &LabelSelector,
    ) -> Result<(), String> {
        let uid = pass.d["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let prefix = self
            .replicasets
            .info
            .namespace_prefix(Some(&pass.namespace));
        let (all, _) = registry.cache().list(&prefix);
        for stored in all.iter() {
            let mut rs = stored.value();
            let matches =
                selector.matches(rs.pointer("/metadata/labels").and_then(Value::as_object));
            let adopt = matches && !has_controller(&rs) && !deleting(&rs);
            let release = !matches && controlled_by(&rs, &uid);
            if adopt || release {
                let mut owner = controller_reference(&pass.d);
                owner["apiVersion"] = json!("apps/v1");
                owner["kind"] = json!("Deployment");
                let written = self
                    .edit_set(registry, &pass.namespace, &stored.name, |next| {
                        let refs = next["metadata"]["ownerReferences"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        let mut refs: Vec<Value> =
                            refs.into_iter().filter(|r| r["uid"] != uid).collect();
                        if adopt && !has_controller(next) {
                            refs.push(owner.clone());
                        }
                        next["metadata"]["ownerReferences"] = json!(refs);
                    })
                    .await?;
                match written {
                    Some(object) => {
                        pass.wrote(&object);
                        rs = object;
                    }
                    None => continue,
                }
            }
            if controlled_by(&rs, &uid) {
                pass.sets.push(Set { value: rs });
            }
        }
        Ok(())
    }

    async fn edit_set(
        &self,
        registry: &Registry,
        namespace: &str,
        name: &str,
        change: impl Fn(&mut Value),
    ) -> Result<Option<Value>, String> {
        crate::writes::edit_as(
            registry,
            &self.replicasets,
            Some(namespace),
            name,
            None,
            Some(COMPONENT),
            change,
        )
        .await
    }

    /// DeploymentPaused / DeploymentResumed on the Progressing condition.
    async fn check_paused_conditions(
        &self,
        registry: &Registry,
        pass: &mut Pass,
    ) -> Result<(), String> {
        if progress_deadline(&pass.d).is_none() {
            return Ok(());
        }
        let current = get_condition(&pass.d["status"], "Progressing");
        let was_paused = current.is_some_and(|c| c["reason"] == "DeploymentPaused");
        let mut status = pass.d["status"].clone();
        if paused(&pass.d) && !was_paused {
            set_condition(
                &mut status,
                condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused",
                ),
            );
        } else if !paused(&pass.d) && was_paused {
            set_condition(
                &mut status,
                condition(
                    "Progressing",
                    "Unknown",
                    "DeploymentResumed",
                    "Deployment is resumed",
                ),
            );
        } else {
            return Ok(());
        }
        self.write_status(registry, pass, status).await
    }

    /// Whether `replicas` changed since the active ReplicaSets were sized (isScalingEvent).
    fn is_scaling_event(&self, pass: &Pass) -> bool {
        let want = replicas(&pass.d);
        pass.sets
            .iter()
            .filter(|s| s.replicas() > 0)
            .any(|s| s.annotation(DESIRED_REPLICAS).is_some_and(|d| d != want))
    }

    /// Scale without rolling out (paused, or `replicas` changed), then write status.
    async fn sync_only(&self, registry: &Registry, pass: &mut Pass) -> Result<(), String> {
        self.sync_revision(registry, pass, false).await?;
        self.scale(registry, pass).await?;
        if paused(&pass.d) {
            self.clean_up(registry, pass).await?;
        }
        let (new, all) = {
            let (new, old) = pass.split();
            let mut all = old.clone();
            all.extend(new);
            (new.cloned(), all.into_iter().cloned().collect::<Vec<_>>())
        };
        let all: Vec<&Set> = all.iter().collect();
        let status = calculate_status(&pass.d, &all, new.as_ref());
        self.write_status(registry, pass, status).await
    }

    async fn scale(&self, registry: &Registry, pass: &mut Pass) -> Result<(), String> {
        let want = replicas(&pass.d);
        let (new, old) = pass.split();
        let new_name = new.map(|n| n.name().to_string());
        let mut active: Vec<Set> = old
            .iter()
            .chain(new.iter())
            .filter(|s| s.replicas() > 0)
            .map(|s| (*s).clone())
            .collect();
        if active.len() <= 1 {
            // One active ReplicaSet (or none: then the newest) takes the whole count.
            let target = match active.pop() {
                Some(set) => set.name().to_string(),
                None => match (new_name, old.iter().max_by_key(|s| s.created())) {
                    (Some(name), _) => name,
                    (None, Some(latest)) => latest.name().to_string(),
                    (None, None) => return Ok(()),
                },
            };
            return self
                .scale_set(registry, pass, &target, want)
                .await
                .map(|_| ());
        }
        let saturated = new.is_some_and(|n| {
            n.annotation(DESIRED_REPLICAS) == Some(want)
                && n.replicas() == want
                && n.status("availableReplicas") == want
        });
        if saturated {
            let old_names: Vec<String> = old
                .iter()
                .filter(|s| s.replicas() > 0)
                .map(|s| s.name().to_string())
                .collect();
            for name in old_names {
                self.scale_set(registry, pass, &name, 0).await?;
            }
            return Ok(());
        }
        if is_recreate(&pass.d) {
            return Ok(());
        }
        let refs: Vec<&Set> = active.iter().collect();
        for (name, size) in proportional_sizes(&pass.d, &refs) {
            self.scale_set(registry, pass, &name, size).await?;
        }
        Ok(())
    }

    /// Size one ReplicaSet and stamp the Deployment's replica annotations on it. Returns
    /// whether its size changed.
    async fn scale_set(
        &self,
        registry: &Registry,
        pass: &mut Pass,
        name: &str,
        size: i64,
    ) -> Result<bool, String> {
        let want = replicas(&pass.d);
        let max = want + max_surge(&pass.d);
        let Some(set) = pass.set_mut(name) else {
            return Ok(false);
        };
        let from = set.replicas();
        let annotations_current = set.annotation(DESIRED_REPLICAS) == Some(want)
            && set.annotation(MAX_REPLICAS) == Some(max);
        if from == size && annotations_current {
            return Ok(false);
        }
        let written = self
            .edit_set(registry, &pass.namespace, name, |next| {
                next["spec"]["replicas"] = json!(size);
                next["metadata"]["annotations"][DESIRED_REPLICAS] = json!(want.to_string());
                next["metadata"]["annotations"][MAX_REPLICAS] = json!(max.to_string());
            })
            .await?;
        let Some(object) = written else {
            return Ok(false);
        };
        pass.wrote(&object);
        if let Some(set) = pass.set_mut(name) {
            set.value = object;
        }
        if from != size {
            let direction = if size > from { "up" } else { "down" };
            events::record(
                registry,
                COMPONENT,
                &pass.involved(),
                EventType::Normal,
                "ScalingReplicaSet",
                &format!("Scaled {direction} replica set {name} from {from} to {size}"),
            )
            .await;
        }
        Ok(from != size)
    }

    /// Find (or with `create`, make) the ReplicaSet of the current template, bring its
    /// revision and annotations up to date and record the revision on the Deployment
    /// (getAllReplicaSetsAndSyncRevision).
    async fn sync_revision(
        &self,
        registry: &Registry,
        pass: &mut Pass,
        create: bool,
    ) -> Result<(), String> {
        let (new, old) = pass.split();
        let max_old = old.iter().map(|s| s.revision()).max().unwrap_or(0);
        let next_revision = max_old + 1;
        let new_name = new.map(|n| n.name().to_string());
        let revision = match new_name {
            Some(name) => {
                self.update_new_set(registry, pass, &name, next_revision)
                    .await?
            }
            None if create => self.create_new_set(registry, pass, next_revision).await?,
            None => return Ok(()),
        };
        if pass.d["metadata"]["annotations"][REVISION].as_str() != Some(revision.as_str()) {
            let written = crate::writes::edit_as(
                registry,
                &self.deployments,
                Some(&pass.namespace),
                &pass.name,
                None,
                Some(COMPONENT),
                |next| next["metadata"]["annotations"][REVISION] = json!(revision),
            )
            .await?;
            let Some(object) = written else {
                return Ok(());
            };
            pass.wrote(&object);
            // Keep the status this pass computed so far.
            let status = pass.d["status"].clone();
            pass.d = object;
            pass.d["status"] = status;
        }
        Ok(())
    }

    /// The Deployment's own annotations for a ReplicaSet, and its revision raised to
    /// `next_revision` if it is lower (SetNewReplicaSetAnnotations).
    fn set_annotations(d: &Value, rs: &mut Value, next_revision: i64) {
        if !rs["metadata"]["annotations"].is_object() {
            rs["metadata"]["annotations"] = json!({});
        }
        let annotations = rs["metadata"]["annotations"]
            .as_object_mut()
            .expect("made above");
        if let Some(own) = d["metadata"]["annotations"].as_object() {
            for (k, v) in own {
                if !NOT_COPIED.contains(&k.as_str()) {
                    annotations.insert(k.clone(), v.clone());
                }
            }
        }
        let current: i64 = annotations
            .get(REVISION)
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if current < next_revision {
            annotations.insert(REVISION.into(), json!(next_revision.to_string()));
        }
    }

    async fn update_new_set(
        &self,
        registry: &Registry,
        pass: &mut Pass,
        name: &str,
        next_revision: i64,
    ) -> Result<String, String> {
        let set = pass.set_mut(name).expect("found by split").clone();
        let mut updated = set.value.clone();
        Self::set_annotations(&pass.d, &mut updated, next_revision);
        let min_ready = pass.d["spec"]["minReadySeconds"].clone();
        let min_ready_changed =
            int(&updated, "/spec/minReadySeconds") != int(&pass.d, "/spec/minReadySeconds");
        if updated["metadata"]["annotations"] != set.value["metadata"]["annotations"]
            || min_ready_changed
        {
            let annotations = updated["metadata"]["annotations"].clone();
            if let Some(object) = self
                .edit_set(registry, &pass.namespace, name, |next| {
                    next["metadata"]["annotations"] = annotations.clone();
                    if min_ready.is_null() {
                        if let Some(spec) = next["spec"].as_object_mut() {
                            spec.remove("minReadySeconds");
                        }
                    } else {
                        next["spec"]["minReadySeconds"] = min_ready.clone();
                    }
                })
                .await?
            {
                pass.wrote(&object);
                if let Some(set) = pass.set_mut(name) {
                    set.value = object;
                }
            }
        }
        if get_condition(&pass.d["status"], "Progressing").is_none()
            && progress_deadline(&pass.d).is_some()
        {
            set_condition(
                &mut pass.d["status"],
                condition(
                    "Progressing",
                    "True",
                    "FoundNewReplicaSet",
                    &format!("Found new replica set \"{name}\""),
                ),
            );
        }
        let set = pass.set_mut(name).expect("found by split");
        Ok(set.revision().to_string())
    }

    async fn create_new_set(
        &self,
        registry: &Registry,
        pass: &mut Pass,
        next_revision: i64,
    ) -> Result<String, String> {
        let d = &pass.d;
        let collision_count = d["status"]["collisionCount"].as_i64();
        let hash = template_hash(&d["spec"]["template"], collision_count);
        let name = format!("{}-{hash}", pass.name);
        let mut template = d["spec"]["template"].clone();
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = d["spec"]["selector"].clone();
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let mut labels: Map<String, Value> = template["metadata"]["labels"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        labels.insert(HASH_LABEL.into(), json!(hash));
        let mut owner = controller_reference(d);
        owner["apiVersion"] = json!("apps/v1");
        owner["kind"] = json!("Deployment");
        let mut rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": pass.namespace, "labels": labels,
                "ownerReferences": [owner]},
            "spec": {"replicas": 0, "selector": selector, "template": template},
        });
        if let Some(min_ready) = d["spec"].get("minReadySeconds") {
            rs["spec"]["minReadySeconds"] = min_ready.clone();
        }
        Self::set_annotations(d, &mut rs, next_revision);
        let all: Vec<&Set> = pass.sets.iter().collect();
        let size = new_set_replicas(d, &all, 0);
        let want = replicas(d);
        rs["spec"]["replicas"] = json!(size);
        rs["metadata"]["annotations"][DESIRED_REPLICAS] = json!(want.to_string());
        rs["metadata"]["annotations"][MAX_REPLICAS] = json!((want + max_surge(d)).to_string());
        let created = registry
            .create(
                &self.replicasets,
                Some(&pass.namespace),
                rs,
                &WriteOptions {
                    field_manager: Some(COMPONENT.into()),
                    ..Default::default()
                },
            )
            .await;
        let object = match created {
            Ok(written) => written.object,
            Err(e) if e.code == 409 => {
                // A ReplicaSet by that name exists: ours with this template (a cache that lags)
                // or a hash collision, which the next hash avoids.
                let existing = registry
                    .get(&self.replicasets, Some(&pass.namespace), &name)
                    .await
                    .map_err(|e| e.message)?;
                if controlled_by(&existing, pass.d["metadata"]["uid"].as_str().unwrap_or("-"))
                    && same_template(&existing["spec"]["template"], &pass.d["spec"]["template"])
                {
                    pass.sets.push(Set { value: existing });
                    return self
                        .update_new_set(registry, pass, &name, next_revision)
                        .await;
                }
                let mut status = pass.d["status"].clone();
                status["collisionCount"] = json!(collision_count.unwrap_or(0) + 1);
                self.write_status(registry, pass, status).await?;
                return Err(format!("hash collision for replicaset {name}; retrying"));
            }
            Err(e) => return Err(format!("creating replicaset {name}: {}", e.message)),
        };
        pass.wrote(&object);
        let revision = Set {
            value: object.clone(),
        }
        .revision()
        .to_string();
        pass.sets.push(Set { value: object });
        if size > 0 {
            events::record(
                registry,
                COMPONENT,
                &pass.involved(),
                EventType::Normal,
                "ScalingReplicaSet",
                &format!("Scaled up replica set {name} from 0 to {size}"),
            )
            .await;
        }
        if progress_deadline(&pass.d).is_some() {
            set_condition(
                &mut pass.d["status"],
                condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetCreated",
                    &format!("Created new replica set \"{name}\""),
                ),
            );
        }
        Ok(revision)
    }

    async fn rollout_rolling(&self, registry: &Registry, pass: &mut Pass) -> Result<(), String> {
        self.sync_revision(registry, pass, true).await?;
        if self.reconcile_new_set(registry, pass).await? {
            return self.sync_rollout_status(registry, pass).await;
        }
        if self.reconcile_old_sets(registry, pass).await? {
            return self.sync_rollout_status(registry, pass).await;
        }
        if complete(&pass.d, &pass.d["status"]) {
            self.clean_up(registry, pass).await?;
        }
        self.sync_rollout_status(registry, pass).await
    }

    async fn reconcile_new_set(
        &self,
        registry: &Registry,
        pass: &mut Pass,
    ) -> Result<bool, String> {
        let (new, old) = pass.split();
        let Some(new) = new else {
            return Ok(false);
        };
        let want = replicas(&pass.d);
        let name = new.name().to_string();
        let size = if new.replicas() > want {
            want
        } else {
            let mut all = old.clone();
            all.push(new);
            new_set_replicas(&pass.d, &all, new.replicas())
        };
        if size == new.replicas() {
            return Ok(false);
        }
        self.scale_set(registry, pass, &name, size).await
    }

    async fn reconcile_old_sets(
        &self,
        registry: &Registry,
        pass: &mut Pass,
    ) -> Result<bool, String> {
        let (new, old) = pass.split();
        let old_count = total_replicas(&old);
        if old_count == 0 {
            return Ok(false);
        }
        let mut all = old.clone();
        all.extend(new);
        let min_available = replicas(&pass.d) - max_unavailable(&pass.d);
        let new_unavailable = new.map_or(0, |n| n.replicas() - n.status("availableReplicas"));
        let budget = total_replicas(&all) - min_available - new_unavailable;
        if budget <= 0 {
            return Ok(false);
        }
        let mut scaled = false;
        for (name, size) in unhealthy_scale_downs(&old, budget) {
            scaled |= self.scale_set(registry, pass, &name, size).await?;
        }
        let (new, old) = pass.split();
        let mut all = old.clone();
        all.extend(new);
        for (name, size) in available_scale_downs(&pass.d, &all, &old) {
            scaled |= self.scale_set(registry, pass, &name, size).await?;
        }
        Ok(scaled)
    }

    async fn rollout_recreate(&self, registry: &Registry, pass: &mut Pass) -> Result<(), String> {
        self.sync_revision(registry, pass, false).await?;
        let (_, old) = pass.split();
        let active_old: Vec<String> = old
            .iter()
            .filter(|s| s.replicas() > 0)
            .map(|s| s.name().to_string())
            .collect();
        let mut scaled = false;
        for name in active_old {
            scaled |= self.scale_set(registry, pass, &name, 0).await?;
        }
        if scaled || self.old_pods_running(registry, pass) {
            return self.sync_rollout_status(registry, pass).await;
        }
        self.sync_revision(registry, pass, true).await?;
        if let (Some(new), _) = pass.split() {
            let name = new.name().to_string();
            self.scale_set(registry, pass, &name, replicas(&pass.d))
                .await?;
        }
        if complete(&pass.d, &pass.d["status"]) {
            self.clean_up(registry, pass).await?;
        }
        self.sync_rollout_status(registry, pass).await
    }

    /// Whether pods of old ReplicaSets still exist and have not finished (Recreate waits for
    /// them, terminating ones included).
    fn old_pods_running(&self, registry: &Registry, pass: &Pass) -> bool {
        let (new, old) = pass.split();
        if old.iter().any(|s| s.status("replicas") > 0) {
            return true;
        }
        let old_uids: Vec<&str> = old
            .iter()
            .filter_map(|s| s.value["metadata"]["uid"].as_str())
            .collect();
        let _ = new;
        let prefix = self.pods.info.namespace_prefix(Some(&pass.namespace));
        let (pods, _) = registry.cache().list(&prefix);
        pods.iter().map(|p| p.value()).any(|pod| {
            old_uids.iter().any(|uid| controlled_by(&pod, uid)) && !is_finished_pod(&pod)
        })
    }

    /// Delete old ReplicaSets, scaled to zero, beyond `revisionHistoryLimit`, oldest revision
    /// first.
    async fn clean_up(&self, registry: &Registry, pass: &mut Pass) -> Result<(), String> {
        let limit = pass.d["spec"]["revisionHistoryLimit"]
            .as_i64()
            .unwrap_or(10);
        let (_, old) = pass.split();
        let mut cleanable: Vec<&Set> = old.into_iter().filter(|s| !deleting(&s.value)).collect();
        let excess = cleanable.len() as i64 - limit;
        if excess <= 0 {
            return Ok(());
        }
        cleanable.sort_by_key(|s| (s.revision(), s.created()));
        let doomed: Vec<(String, String)> = cleanable
            .iter()
            .take(excess as usize)
            .filter(|s| {
                s.status("replicas") == 0
                    && s.replicas() == 0
                    && int(&s.value, "/metadata/generation") <= s.status("observedGeneration")
            })
            .map(|s| {
                (
                    s.name().to_string(),
                    s.value["metadata"]["uid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        for (name, uid) in doomed {
            let opts = DeleteOptions {
                precondition_uid: Some(uid),
                ..Default::default()
            };
            match registry
                .delete(&self.replicasets, Some(&pass.namespace), &name, &opts)
                .await
            {
                Ok(deleted) => {
                    pass.wrote(&deleted.object);
                    pass.sets.retain(|s| s.name() != name);
                }
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(format!("deleting replicaset {name}: {}", e.message)),
            }
        }
        Ok(())
    }

    /// Status with the Progressing condition moved on (syncRolloutStatus).
    async fn sync_rollout_status(
        &self,
        registry: &Registry,
        pass: &mut Pass,
    ) -> Result<(), String> {
        let (new, old) = pass.split();
        let mut all = old.clone();
        all.extend(new);
        let mut status = calculate_status(&pass.d, &all, new);
        let new_name = new.map(|n| n.name().to_string());
        let Some(_) = progress_deadline(&pass.d) else {
            remove_condition(&mut status, "Progressing");
            return self.write_status(registry, pass, status).await;
        };
        let current = get_condition(&pass.d["status"], "Progressing").cloned();
        let already_complete = status_count(&status, "replicas")
            == status_count(&status, "updatedReplicas")
            && current
                .as_ref()
                .is_some_and(|c| c["reason"] == "NewReplicaSetAvailable");
        if !already_complete {
            let subject = match &new_name {
                Some(name) => format!("ReplicaSet \"{name}\""),
                None => format!("Deployment \"{}\"", pass.name),
            };
            if complete(&pass.d, &status) {
                set_condition(
                    &mut status,
                    condition(
                        "Progressing",
                        "True",
                        "NewReplicaSetAvailable",
                        &format!("{subject} has successfully progressed."),
                    ),
                );
            } else if progressing(&pass.d, &status) {
                let mut next = condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    &format!("{subject} is progressing."),
                );
                if let Some(current) = &current {
                    if current["status"] == "True" {
                        next["lastTransitionTime"] = current["lastTransitionTime"].clone();
                    }
                    remove_condition(&mut status, "Progressing");
                }
                set_condition(&mut status, next);
            } else if seconds_to_deadline(&pass.d, &pass.d["status"]).is_some_and(|s| s < 0)
                || current
                    .as_ref()
                    .is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded")
            {
                set_condition(
                    &mut status,
                    condition(
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        &format!("{subject} has timed out progressing."),
                    ),
                );
            }
        }
        self.write_status(registry, pass, status).await
    }

    async fn write_status(
        &self,
        registry: &Registry,
        pass: &mut Pass,
        status: Value,
    ) -> Result<(), String> {
        if pass.d["status"] == status {
            return Ok(());
        }
        let written = crate::writes::edit_as(
            registry,
            &self.deployments,
            Some(&pass.namespace),
            &pass.name,
            Some("status"),
            Some(COMPONENT),
            |next| {
                // The controller owns the counts and its two conditions; conditions others
                // wrote since this pass read the Deployment are kept.
                let mut merged = status.clone();
                let owned = |c: &Value| c["type"] == "Available" || c["type"] == "Progressing";
                let mut conditions: Vec<Value> = next["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| !owned(c))
                    .cloned()
                    .collect();
                conditions.extend(
                    status["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|c| owned(c))
                        .cloned(),
                );
                if let Some(fields) = merged.as_object_mut() {
                    fields.remove("conditions");
                }
                if !conditions.is_empty() {
                    merged["conditions"] = json!(conditions);
                }
                next["status"] = merged;
            },
        )
        .await?;
        if let Some(object) = written {
            pass.wrote(&object);
            pass.d = object;
        }
        Ok(())
    }
}

impl Reconciler for Deployments {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        let stored = &event.object;
        let namespace = stored.namespace.as_deref();
        if event
            .key
            .starts_with(&self.deployments.info.storage_prefix())
        {
            return if event.kind == CacheEventKind::Deleted {
                vec![]
            } else {
                vec![event.key.clone()]
            };
        }
        if event
            .key
            .starts_with(&self.replicasets.info.storage_prefix())
        {
            if let Some(owner) = controller_ref(stored) {
                return (owner.kind == "Deployment")
                    .then(|| self.deployments.info.key(namespace, &owner.name))
                    .into_iter()
                    .collect();
            }
            if event.kind == CacheEventKind::Deleted {
                return vec![];
            }
            // An orphan: the Deployments whose selector matches it may adopt it.
            let (deployments, _) = self
                .cache
                .list(&self.deployments.info.namespace_prefix(namespace));
            return deployments
                .iter()
                .filter(|d| {
                    LabelSelector::from_object(&d.value()["spec"]["selector"])
                        .is_ok_and(|s| !s.is_empty() && s.matches_map(&stored.labels))
                })
                .map(|d| d.key.clone())
                .collect();
        }
        // Recreate waits for the old pods to be gone or finished.
        let gone = event.kind == CacheEventKind::Deleted
            || matches!(
                stored.field("status.phase").as_deref(),
                Some("Succeeded" | "Failed")
            );
        if gone
            && event.key.starts_with(&self.pods.info.storage_prefix())
            && let Some(owner) = controller_ref(stored)
            && owner.kind == "ReplicaSet"
            && let Some((rs, _)) = self
                .cache
                .get(&self.replicasets.info.key(namespace, &owner.name))
            && let Some(deployment) = controller_ref(&rs)
            && deployment.kind == "Deployment"
        {
            return vec![self.deployments.info.key(namespace, &deployment.name)];
        }
        vec![]
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        queue::all_keys(registry, &self.deployments)
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
            let Some((d, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            self.sync(registry, &d).await
        })
    }
}

/// Run the Deployment controller.
pub async fn run(registry: Arc<Registry>) {
    let controller = Deployments {
        deployments: resource("deployments", "apps"),
        replicasets: resource("replicasets", "apps"),
        pods: resource("pods", ""),
        cache: registry.cache().clone(),
        requeues: Vec::new(),
    };
    queue::run(registry, "/registry/", controller, Duration::from_secs(30)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, surge: Value, unavailable: Value) -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d1", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "v2"}]}}},
            "status": {},
        })
    }

    fn set(name: &str, created: &str, replicas: i64, available: i64) -> Set {
        Set {
            value: json!({
                "metadata": {"name": name, "creationTimestamp": created,
                    "annotations": {MAX_REPLICAS: "5"}},
                "spec": {"replicas": replicas},
                "status": {"replicas": replicas, "availableReplicas": available},
            }),
        }
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        assert_eq!(
            fenceposts(&deployment(10, json!("25%"), json!("25%"))),
            (3, 2)
        );
        assert_eq!(fenceposts(&deployment(3, json!(0), json!(0))), (0, 1));
        assert_eq!(fenceposts(&deployment(4, json!(1), json!("0%"))), (1, 0));
        let mut recreate = deployment(4, json!(1), json!(1));
        recreate["spec"]["strategy"] = json!({"type": "Recreate"});
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
        assert_eq!(max_unavailable(&deployment(1, json!(0), json!(5))), 1);
    }

    #[test]
    fn the_hash_ignores_key_order_and_the_hash_label_and_changes_with_collisions() {
        let a = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": {"x": 1}});
        let b = json!({"spec": {"x": 1}, "metadata": {"labels": {"tier": "front", "app": "web",
            HASH_LABEL: "zzz"}}});
        assert_eq!(template_hash(&a, None), template_hash(&b, None));
        assert_ne!(template_hash(&a, None), template_hash(&a, Some(1)));
        assert!(same_template(&a, &b));
        let hash = template_hash(&a, None);
        assert!(
            hash.chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{hash}"
        );
    }

    #[test]
    fn the_new_replicaset_grows_within_max_surge() {
        let d = deployment(5, json!(2), json!(0));
        let old = set("web-old", "2026-01-01T00:00:00Z", 5, 5);
        // 5 old + 0 new, surge 2: the new one may take 2.
        assert_eq!(new_set_replicas(&d, &[&old], 0), 2);
        let new = set("web-new", "2026-01-02T00:00:00Z", 2, 0);
        assert_eq!(new_set_replicas(&d, &[&old, &new], 2), 2);
        let old = set("web-old", "2026-01-01T00:00:00Z", 3, 3);
        assert_eq!(new_set_replicas(&d, &[&old, &new], 2), 4);
    }

    #[test]
    fn old_replicasets_shrink_unhealthy_first_then_within_availability() {
        let d = deployment(4, json!(1), json!(1));
        let older = set("web-1", "2026-01-01T00:00:00Z", 2, 1);
        let old = set("web-2", "2026-01-02T00:00:00Z", 2, 2);
        // Budget 2: one unhealthy replica of the oldest, nothing else unhealthy.
        assert_eq!(
            unhealthy_scale_downs(&[&old, &older], 2),
            vec![("web-1".to_string(), 1)]
        );
        // 4 available of which 3 must stay: one replica may go, from the oldest.
        let older = set("web-1", "2026-01-01T00:00:00Z", 2, 2);
        let new = set("web-3", "2026-01-03T00:00:00Z", 1, 0);
        assert_eq!(
            available_scale_downs(&d, &[&older, &old, &new], &[&old, &older]),
            vec![("web-1".to_string(), 1)]
        );
    }

    #[test]
    fn scaling_during_a_rollout_is_proportional() {
        // 10 replicas (max 13) went to 20 (max 25) while two sets hold 8 and 5.
        let mut d = deployment(20, json!("25%"), json!("25%"));
        d["status"]["replicas"] = json!(13);
        let mut a = set("web-a", "2026-01-01T00:00:00Z", 8, 8);
        let mut b = set("web-b", "2026-01-02T00:00:00Z", 5, 0);
        for s in [&mut a, &mut b] {
            s.value["metadata"]["annotations"][MAX_REPLICAS] = json!("13");
        }
        let sizes = proportional_sizes(&d, &[&a, &b]);
        let total: i64 = sizes.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 25);
        assert_eq!(sizes[0], ("web-a".to_string(), 15));
        assert_eq!(sizes[1], ("web-b".to_string(), 10));
    }

    #[test]
    fn status_and_conditions_follow_kubernetes() {
        let d = deployment(2, json!(1), json!(0));
        let new = set("web-new", "2026-01-02T00:00:00Z", 2, 2);
        let status = calculate_status(&d, &[&new], Some(&new));
        assert_eq!(status["updatedReplicas"], 2);
        assert_eq!(status.get("unavailableReplicas"), None);
        assert_eq!(
            get_condition(&status, "Available").unwrap()["status"],
            "True"
        );
        assert!(complete(&d, &status));
        assert!(progressing(&d, &status));
        let half = set("web-new", "2026-01-02T00:00:00Z", 2, 1);
        let status = calculate_status(&d, &[&half], Some(&half));
        assert_eq!(
            get_condition(&status, "Available").unwrap()["reason"],
            "MinimumReplicasUnavailable"
        );
        assert!(!complete(&d, &status));
        // The same status and reason keep their times.
        let mut status = json!({"conditions": [{"type": "Progressing", "status": "True",
            "reason": "ReplicaSetUpdated", "lastTransitionTime": "t0", "lastUpdateTime": "t0"}]});
        set_condition(
            &mut status,
            condition("Progressing", "True", "ReplicaSetUpdated", "m"),
        );
        assert_eq!(status["conditions"][0]["lastUpdateTime"], "t0");
        set_condition(
            &mut status,
            condition("Progressing", "True", "NewReplicaSetAvailable", "m"),
        );
        assert_eq!(status["conditions"][0]["lastTransitionTime"], "t0");
        assert_eq!(status["conditions"][0]["reason"], "NewReplicaSetAvailable");
    }

    #[test]
    fn the_new_replicaset_is_found_by_name_or_template() {
        let d = deployment(2, json!(1), json!(0));
        let hash = template_hash(&d["spec"]["template"], None);
        let mut by_template = set("web-x", "2026-01-01T00:00:00Z", 1, 1);
        by_template.value["spec"]["template"] = d["spec"]["template"].clone();
        by_template.value["spec"]["template"]["metadata"]["labels"][HASH_LABEL] = json!("x");
        let other = set("web-y", "2026-01-01T00:00:00Z", 1, 1);
        assert_eq!(find_new(&d, &[other.clone(), by_template.clone()]), Some(1));
        let by_name = set(&format!("web-{hash}"), "2026-01-03T00:00:00Z", 1, 1);
        assert_eq!(
            find_new(&d, &[by_template, other.clone(), by_name]),
            Some(2)
        );
        assert_eq!(find_new(&d, &[other]), None);
    }
}
