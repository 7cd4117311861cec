//! PersistentVolume binding and the built-in local-path provisioner: Kubernetes' PV controller
//! and an external provisioner (like Rancher's local-path-provisioner, k3s's default) in one
//! loop.
//!
//! A claim binds to a matching existing volume first (pre-bound to it, or the smallest that has
//! its class, access modes, size, volume mode and selector). Otherwise, when its StorageClass
//! names [`PROVISIONER`], a volume is created for it: a directory on one node, as a hostPath
//! volume with node affinity for that node, so the scheduler keeps the claim's pods there. With
//! `WaitForFirstConsumer` (the default class) the node is the one the scheduler picked for the
//! claim's first pod (it writes [`SELECTED_NODE`] on the claim before binding the pod); with
//! `Immediate` it is the first ready node. The node's agent creates the directory when a pod
//! mounts it.
//!
//! Binding writes the volume's `claimRef` first, then the claim's `volumeName`, then both
//! statuses, so a restart in between finishes the same binding. Claims and volumes in use are
//! protected as in Kubernetes: a claim being deleted keeps `kubernetes.io/pvc-protection` until
//! no unfinished pod names it, a volume `kubernetes.io/pv-protection` until no claim is bound to
//! it (the API server adds both finalizers). A volume whose claim is gone is
//! `Released`; with reclaim policy `Delete`, a provisioned one is deleted, and its node's agent
//! removes the directory before lifting [`CLEANUP_FINALIZER`]; `Retain` keeps both.

use std::sync::Arc;
use std::time::Duration;

use maestro_api::local_path::{
    CLEANUP_FINALIZER, DEFAULT_DIR, DIR_ANNOTATION, PROVISIONED_BY, PROVISIONER, SELECTED_NODE,
    volume_dir,
};
use maestro_api::meta;
use maestro_api::quantity;
use maestro_api::selector::LabelSelector;
use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::{Resource, WriteOptions};
use maestro_store::{CacheEvent, CacheEventKind};
use serde_json::{Value, json};

use crate::events::{self, EventType, Involved};
use crate::objects::{deleting, is_finished_pod, resource};
use crate::queue::{self, Reconciler};
use crate::scheduler::types::{NodeInfo, NodeSelectorTerm};
use crate::writes;

const COMPONENT: &str = "persistentvolume-controller";
const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// Kept on a claim while a pod uses it, and on a volume while a claim is bound to it (added by
/// the API server's StorageObjectInUseProtection admission).
const CLAIM_PROTECTION: &str = "kubernetes.io/pvc-protection";
const VOLUME_PROTECTION: &str = "kubernetes.io/pv-protection";

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn annotation<'a>(value: &'a Value, key: &str) -> &'a str {
    value["metadata"]["annotations"][key].as_str().unwrap_or("")
}

fn strings(value: &Value, pointer: &str) -> Vec<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn storage_bytes(value: &Value, pointer: &str) -> Option<i128> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(quantity::milli)
}

/// Whether a claim's `claimRef` names this claim (a ref without uid pre-binds a future claim).
fn refers_to(pv: &Value, claim: &Value) -> bool {
    let reference = &pv["spec"]["claimRef"];
    reference["namespace"] == claim["metadata"]["namespace"]
        && reference["name"] == claim["metadata"]["name"]
        && (text(reference, "/uid").is_empty() || reference["uid"] == claim["metadata"]["uid"])
}

/// Whether an existing volume can serve a claim; `node` is the selected node (with its labels)
/// for classes that wait for the first consumer, whose volumes must be reachable from there.
pub fn volume_matches(pv: &Value, claim: &Value, node: Option<&Value>) -> bool {
    if deleting(pv) || matches!(text(pv, "/status/phase"), "Released" | "Failed") {
        return false;
    }
    if !pv["spec"]["claimRef"].is_null() && !refers_to(pv, claim) {
        return false;
    }
    if text(pv, "/spec/storageClassName") != text(claim, "/spec/storageClassName") {
        return false;
    }
    let offered = strings(pv, "/spec/accessModes");
    if !strings(claim, "/spec/accessModes")
        .iter()
        .all(|m| offered.contains(m))
    {
        return false;
    }
    let mode = |v: &Value| match text(v, "/spec/volumeMode") {
        "" => "Filesystem".to_string(),
        m => m.to_string(),
    };
    if mode(pv) != mode(claim) {
        return false;
    }
    let requested = storage_bytes(claim, "/spec/resources/requests/storage").unwrap_or(0);
    if storage_bytes(pv, "/spec/capacity/storage").unwrap_or(0) < requested {
        return false;
    }
    if let Some(selector) = claim["spec"].get("selector").filter(|s| !s.is_null()) {
        let Ok(selector) = LabelSelector::from_object(selector) else {
            return false;
        };
        if !selector.matches(pv["metadata"]["labels"].as_object()) {
            return false;
        }
    }
    match (
        node,
        pv.pointer("/spec/nodeAffinity/required/nodeSelectorTerms")
            .and_then(Value::as_array),
    ) {
        (_, None) => true,
        (None, Some(_)) => true,
        (Some(node), Some(terms)) => {
            let info = NodeInfo::parse(node);
            terms
                .iter()
                .any(|t| NodeSelectorTerm::parse(t).matches(&info))
        }
    }
}

/// The best existing volume for a claim: one pre-bound to it, else the smallest that matches.
pub fn choose_volume<'a>(
    volumes: &'a [Value],
    claim: &Value,
    node: Option<&Value>,
) -> Option<&'a Value> {
    let candidates: Vec<&Value> = volumes
        .iter()
        .filter(|pv| volume_matches(pv, claim, node))
        .collect();
    candidates
        .iter()
        .find(|pv| !pv["spec"]["claimRef"].is_null())
        .or_else(|| {
            candidates
                .iter()
                .min_by_key(|pv| storage_bytes(pv, "/spec/capacity/storage").unwrap_or(0))
        })
        .copied()
}

/// The volume the provisioner creates for `claim` on `node` (whose agent published `root` as its
/// volume directory), pre-bound to the claim.
pub fn provisioned_volume(claim: &Value, class: &Value, node: &str, root: &str) -> Value {
    let (namespace, name, uid) = (
        text(claim, "/metadata/namespace"),
        text(claim, "/metadata/name"),
        text(claim, "/metadata/uid"),
    );
    let volume = format!("pvc-{uid}");
    let reclaim = match text(class, "/reclaimPolicy") {
        "" => "Delete",
        policy => policy,
    };
    let mut metadata = json!({
        "name": volume,
        "annotations": {PROVISIONED_BY: PROVISIONER},
    });
    if reclaim == "Delete" {
        metadata["finalizers"] = json!([CLEANUP_FINALIZER]);
    }
    let mut spec = json!({
        "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
        "accessModes": claim["spec"]["accessModes"],
        "persistentVolumeReclaimPolicy": reclaim,
        "storageClassName": text(class, "/metadata/name"),
        "volumeMode": "Filesystem",
        "hostPath": {
            "path": volume_dir(root, &volume, namespace, name),
            "type": "DirectoryOrCreate",
        },
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
        ]}]}},
        "claimRef": {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "namespace": namespace, "name": name, "uid": uid,
            "resourceVersion": claim["metadata"]["resourceVersion"],
        },
    });
    if let Some(options) = class.get("mountOptions").filter(|o| !o.is_null()) {
        spec["mountOptions"] = options.clone();
    }
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": metadata, "spec": spec})
}

/// Why the provisioner refuses a claim, in Rancher's words where it has them.
fn unprovisionable(claim: &Value) -> Option<String> {
    let modes = strings(claim, "/spec/accessModes");
    if modes
        .iter()
        .any(|m| m != "ReadWriteOnce" && m != "ReadWriteOncePod")
    {
        return Some(
            "local-path volumes support only the ReadWriteOnce and ReadWriteOncePod access modes"
                .into(),
        );
    }
    if text(claim, "/spec/volumeMode") == "Block" {
        return Some(
            "local-path volumes are directories: volumeMode Block is not supported".into(),
        );
    }
    if storage_bytes(claim, "/spec/resources/requests/storage").is_none() {
        return Some("the claim requests no storage size".into());
    }
    None
}

struct Volumes {
    claims: Arc<Resource>,
    volumes: Arc<Resource>,
    classes: Arc<Resource>,
    nodes: Arc<Resource>,
    pods: Arc<Resource>,
}

/// The claims a pod's volumes name.
fn pod_claims(pod: &Value) -> Vec<&str> {
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .collect()
}

impl Volumes {
    /// Whether a pod that has not finished (terminating ones included: their containers may
    /// still write) uses the claim.
    fn claim_in_use(&self, registry: &Registry, namespace: &str, claim: &str) -> bool {
        let (pods, _) = registry
            .cache()
            .list(&self.pods.info.namespace_prefix(Some(namespace)));
        let quoted = format!("\"{claim}\"");
        pods.iter()
            // Cheap look at the raw JSON before parsing the few pods that may match.
            .filter(|p| p.json.windows(quoted.len()).any(|w| w == quoted.as_bytes()))
            .map(|p| p.value())
            .any(|pod| !is_finished_pod(&pod) && pod_claims(&pod).contains(&claim))
    }

    /// Lift the protection finalizer of a claim being deleted once no pod uses it.
    async fn release_protected_claim(
        &self,
        registry: &Registry,
        claim: &Value,
    ) -> Result<(), String> {
        let (namespace, name) = (
            text(claim, "/metadata/namespace"),
            text(claim, "/metadata/name"),
        );
        if !meta::finalizers(claim)
            .iter()
            .any(|f| f == CLAIM_PROTECTION)
            || self.claim_in_use(registry, namespace, name)
        {
            return Ok(());
        }
        writes::remove_finalizer(
            registry,
            &self.claims.info.key(Some(namespace), name),
            CLAIM_PROTECTION,
        )
        .await
    }

    fn values(&self, registry: &Registry, res: &Resource) -> Vec<Value> {
        let (items, _) = registry.cache().list(&res.info.storage_prefix());
        items.iter().map(|i| i.value()).collect()
    }

    fn get(
        &self,
        registry: &Registry,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        if name.is_empty() {
            return None;
        }
        registry
            .cache()
            .get(&res.info.key(ns, name))
            .map(|(stored, _)| stored.value())
    }

    async fn event(
        &self,
        registry: &Registry,
        object: &Value,
        kind: EventType,
        reason: &str,
        message: &str,
    ) {
        events::record(
            registry,
            COMPONENT,
            &Involved::of(object),
            kind,
            reason,
            message,
        )
        .await;
    }

    async fn sync_claim(&self, registry: &Registry, claim: &Value) -> Result<(), String> {
        if deleting(claim) {
            return self.release_protected_claim(registry, claim).await;
        }
        let namespace = text(claim, "/metadata/namespace");
        let name = text(claim, "/metadata/name");
        let bound_to = text(claim, "/spec/volumeName");
        if !bound_to.is_empty() {
            return match self.get(registry, &self.volumes, None, bound_to) {
                Some(pv) if pv["spec"]["claimRef"].is_null() || refers_to(&pv, claim) => {
                    self.bind(registry, &pv, claim).await
                }
                found => {
                    if text(claim, "/status/phase") != "Lost" {
                        let message = if found.is_some() {
                            "Two claims are bound to the same volume, this one is bound incorrectly"
                        } else {
                            "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
                        };
                        let reason = if found.is_some() {
                            "ClaimMisbound"
                        } else {
                            "ClaimLost"
                        };
                        self.event(registry, claim, EventType::Warning, reason, message)
                            .await;
                        writes::edit(
                            registry,
                            &self.claims,
                            Some(namespace),
                            name,
                            Some("status"),
                            |c| {
                                c["status"]["phase"] = json!("Lost");
                            },
                        )
                        .await?;
                    }
                    Ok(())
                }
            };
        }
        let class_name = text(claim, "/spec/storageClassName");
        let class = self.get(registry, &self.classes, None, class_name);
        let waits = class
            .as_ref()
            .is_some_and(|c| c["volumeBindingMode"] == "WaitForFirstConsumer");
        let selected = annotation(claim, SELECTED_NODE);
        let node = self.get(registry, &self.nodes, None, selected);
        if !(waits && node.is_none()) {
            let volumes = self.values(registry, &self.volumes);
            if let Some(pv) = choose_volume(&volumes, claim, node.as_ref().filter(|_| waits)) {
                return self.bind(registry, pv, claim).await;
            }
        }
        let Some(class) = class else {
            let message = if class_name.is_empty() {
                "no persistent volumes available for this claim and no storage class is set"
                    .to_string()
            } else {
                format!("storageclass.storage.k8s.io \"{class_name}\" not found")
            };
            self.event(
                registry,
                claim,
                EventType::Warning,
                "FailedBinding",
                &message,
            )
            .await;
            return Ok(());
        };
        let provisioner = text(&class, "/provisioner");
        if provisioner != PROVISIONER {
            let message = format!(
                "Waiting for a volume to be created either by the external provisioner '{provisioner}' \
                 or manually by the system administrator. If volume creation is delayed, please \
                 verify that the provisioner is running and correctly registered."
            );
            self.event(
                registry,
                claim,
                EventType::Normal,
                "ExternalProvisioning",
                &message,
            )
            .await;
            return Ok(());
        }
        if let Some(why) = unprovisionable(claim) {
            let message =
                format!("failed to provision volume with StorageClass \"{class_name}\": {why}");
            self.event(
                registry,
                claim,
                EventType::Warning,
                "ProvisioningFailed",
                &message,
            )
            .await;
            return Ok(());
        }
        let node = if waits {
            match node {
                Some(node) => node,
                None => {
                    self.event(
                        registry,
                        claim,
                        EventType::Normal,
                        "WaitForFirstConsumer",
                        "waiting for first consumer to be created before binding",
                    )
                    .await;
                    return Ok(());
                }
            }
        } else {
            let mut nodes: Vec<Value> = self
                .values(registry, &self.nodes)
                .into_iter()
                .filter(|n| {
                    n["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        && n["spec"]["unschedulable"] != true
                })
                .collect();
            nodes.sort_by(|a, b| text(a, "/metadata/name").cmp(text(b, "/metadata/name")));
            match nodes.into_iter().next() {
                Some(node) => node,
                None => {
                    self.event(registry, claim, EventType::Warning, "ProvisioningFailed",
                        &format!("failed to provision volume with StorageClass \"{class_name}\": no ready node")).await;
                    return Ok(());
                }
            }
        };
        let node_name = text(&node, "/metadata/name");
        let root = match annotation(&node, DIR_ANNOTATION) {
            "" => DEFAULT_DIR,
            dir => dir,
        };
        let pv = provisioned_volume(claim, &class, node_name, root);
        let created = registry
            .create(
                &self.volumes,
                None,
                pv.clone(),
                &WriteOptions {
                    field_manager: Some(COMPONENT.into()),
                    ..Default::default()
                },
            )
            .await;
        let pv = match created {
            Ok(written) => {
                let message = format!(
                    "Successfully provisioned volume {} on node {node_name}",
                    text(&written.object, "/metadata/name")
                );
                self.event(
                    registry,
                    claim,
                    EventType::Normal,
                    "ProvisioningSucceeded",
                    &message,
                )
                .await;
                written.object
            }
            // Created by an earlier pass whose binding did not finish.
            Err(err) if err.code == 409 => registry
                .get(&self.volumes, None, text(&pv, "/metadata/name"))
                .await
                .map_err(|e| e.message)?,
            Err(err) => return Err(err.message),
        };
        self.bind(registry, &pv, claim).await
    }

    /// Bind `pv` and `claim` to each other, in Kubernetes' order (volume first).
    async fn bind(&self, registry: &Registry, pv: &Value, claim: &Value) -> Result<(), String> {
        let pv_name = text(pv, "/metadata/name").to_string();
        let namespace = text(claim, "/metadata/namespace");
        let name = text(claim, "/metadata/name");
        let uid = claim["metadata"]["uid"].clone();
        if pv["spec"]["claimRef"]["uid"] != uid {
            let reference = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": namespace, "name": name, "uid": uid,
                "resourceVersion": claim["metadata"]["resourceVersion"],
            });
            let written = writes::edit_as(
                registry,
                &self.volumes,
                None,
                &pv_name,
                None,
                Some(COMPONENT),
                |next| {
                    // Taken meanwhile by another claim: leave it.
                    if !next["spec"]["claimRef"].is_null() && !refers_to(next, claim) {
                        return;
                    }
                    if next["spec"]["claimRef"].is_null() {
                        meta::metadata_mut(next)
                            .entry("annotations")
                            .or_insert_with(|| json!({}))[BOUND_BY_CONTROLLER] = json!("yes");
                    }
                    next["spec"]["claimRef"] = reference.clone();
                },
            )
            .await?;
            if written.is_none_or(|w| w["spec"]["claimRef"]["uid"] != uid) {
                return Err(format!("volume {pv_name} was taken by another claim"));
            }
        }
        if text(pv, "/status/phase") != "Bound" {
            writes::edit(
                registry,
                &self.volumes,
                None,
                &pv_name,
                Some("status"),
                |next| {
                    next["status"]["phase"] = json!("Bound");
                    if let Some(status) = next["status"].as_object_mut() {
                        status.remove("message");
                        status.remove("reason");
                    }
                },
            )
            .await?;
        }
        if text(claim, "/spec/volumeName") != pv_name {
            writes::edit(
                registry,
                &self.claims,
                Some(namespace),
                name,
                None,
                |next| {
                    next["spec"]["volumeName"] = json!(pv_name);
                    let annotations = meta::metadata_mut(next)
                        .entry("annotations")
                        .or_insert_with(|| json!({}));
                    annotations[BIND_COMPLETED] = json!("yes");
                    annotations[BOUND_BY_CONTROLLER] = json!("yes");
                    if annotation(pv, PROVISIONED_BY) == PROVISIONER {
                        annotations[STORAGE_PROVISIONER] = json!(PROVISIONER);
                    }
                },
            )
            .await?;
        }
        if text(claim, "/status/phase") != "Bound" {
            let capacity = pv["spec"]["capacity"].clone();
            let modes = pv["spec"]["accessModes"].clone();
            writes::edit(
                registry,
                &self.claims,
                Some(namespace),
                name,
                Some("status"),
                |next| {
                    next["status"]["phase"] = json!("Bound");
                    next["status"]["capacity"] = capacity.clone();
                    next["status"]["accessModes"] = modes.clone();
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn set_volume_phase(
        &self,
        registry: &Registry,
        pv: &Value,
        phase: &str,
        message: Option<&str>,
    ) -> Result<(), String> {
        if text(pv, "/status/phase") == phase
            && message.is_none_or(|m| text(pv, "/status/message") == m)
        {
            return Ok(());
        }
        writes::edit(
            registry,
            &self.volumes,
            None,
            text(pv, "/metadata/name"),
            Some("status"),
            |next| {
                next["status"]["phase"] = json!(phase);
                match message {
                    Some(m) => next["status"]["message"] = json!(m),
                    None => {
                        if let Some(status) = next["status"].as_object_mut() {
                            status.remove("message");
                        }
                    }
                }
            },
        )
        .await
    }

    /// The claim the volume's `claimRef` names, if it still exists (and is the same claim).
    fn claim_of(&self, registry: &Registry, pv: &Value) -> Option<Value> {
        let reference = &pv["spec"]["claimRef"];
        if reference.is_null() {
            return None;
        }
        self.get(
            registry,
            &self.claims,
            reference["namespace"].as_str(),
            text(reference, "/name"),
        )
        .filter(|claim| refers_to(pv, claim))
    }

    async fn sync_volume(&self, registry: &Registry, pv: &Value) -> Result<(), String> {
        if deleting(pv) {
            // Protected while a claim is bound to it; the node's agent lifts the cleanup
            // finalizer of a provisioned one.
            let bound = self.claim_of(registry, pv).is_some();
            if !bound && meta::finalizers(pv).iter().any(|f| f == VOLUME_PROTECTION) {
                let key = self.volumes.info.key(None, text(pv, "/metadata/name"));
                return writes::remove_finalizer(registry, &key, VOLUME_PROTECTION).await;
            }
            return Ok(());
        }
        let name = text(pv, "/metadata/name");
        let ours = annotation(pv, PROVISIONED_BY) == PROVISIONER;
        let reclaim = text(pv, "/spec/persistentVolumeReclaimPolicy");
        if ours {
            // The cleanup finalizer follows the policy (an operator may switch to Retain).
            let wanted = reclaim == "Delete";
            if meta::finalizers(pv).iter().any(|f| f == CLEANUP_FINALIZER) != wanted {
                writes::edit(registry, &self.volumes, None, name, None, |next| {
                    let mut list: Vec<String> = meta::finalizers(next)
                        .into_iter()
                        .filter(|f| f != CLEANUP_FINALIZER)
                        .collect();
                    if wanted {
                        list.push(CLEANUP_FINALIZER.into());
                    }
                    meta::metadata_mut(next).insert("finalizers".into(), json!(list));
                })
                .await?;
            }
        }
        let reference = &pv["spec"]["claimRef"];
        if reference.is_null() {
            return self.set_volume_phase(registry, pv, "Available", None).await;
        }
        match self.claim_of(registry, pv) {
            Some(claim) => {
                let bound_to = text(&claim, "/spec/volumeName");
                if bound_to == name {
                    self.set_volume_phase(registry, pv, "Bound", None).await
                } else if bound_to.is_empty() {
                    // The claim's own pass finishes the binding.
                    Ok(())
                } else if annotation(pv, BOUND_BY_CONTROLLER) == "yes" {
                    // The claim went to another volume: give this one back.
                    writes::edit(registry, &self.volumes, None, name, None, |next| {
                        if let Some(spec) = next["spec"].as_object_mut() {
                            spec.remove("claimRef");
                        }
                    })
                    .await
                } else {
                    Ok(())
                }
            }
            _ if text(reference, "/uid").is_empty() => {
                self.set_volume_phase(registry, pv, "Available", None).await
            }
            _ => {
                self.set_volume_phase(registry, pv, "Released", None)
                    .await?;
                match reclaim {
                    "Delete" if ours => {
                        let uid = text(pv, "/metadata/uid");
                        writes::delete(registry, &self.volumes, None, name, uid, None).await
                    }
                    "Delete" => {
                        let message = format!(
                            "error getting deleter volume plugin for volume \"{name}\": no deletable volume plugin matched"
                        );
                        self.set_volume_phase(registry, pv, "Failed", Some(&message))
                            .await?;
                        self.event(
                            registry,
                            pv,
                            EventType::Warning,
                            "VolumeFailedDelete",
                            &message,
                        )
                        .await;
                        Ok(())
                    }
                    "Recycle" => {
                        let message = "recycling volumes is not supported; delete the volume's data and the volume by hand";
                        self.set_volume_phase(registry, pv, "Failed", Some(message))
                            .await?;
                        self.event(
                            registry,
                            pv,
                            EventType::Warning,
                            "VolumeFailedRecycle",
                            message,
                        )
                        .await;
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

impl Volumes {
    /// Another pass over the unbound claims of a class (a volume or the class itself changed).
    async fn sync_waiting_claims(&self, registry: &Registry, class: &str) -> Result<(), String> {
        for claim in self.values(registry, &self.claims) {
            if text(&claim, "/spec/storageClassName") == class
                && text(&claim, "/spec/volumeName").is_empty()
            {
                self.sync_claim(registry, &claim).await?;
            }
        }
        Ok(())
    }
}

impl Reconciler for Volumes {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        let claims = self.claims.info.storage_prefix();
        let volumes = self.volumes.info.storage_prefix();
        if event.key.starts_with(&claims) {
            // A deleted claim's key too: its pass releases the volumes that referred to it.
            return vec![event.key.clone()];
        }
        if event.key.starts_with(&volumes) {
            if event.kind == CacheEventKind::Deleted {
                return vec![];
            }
            let value = event.object.value();
            let mut keys = vec![event.key.clone()];
            let reference = &value["spec"]["claimRef"];
            if let (Some(ns), Some(name)) =
                (reference["namespace"].as_str(), reference["name"].as_str())
            {
                keys.push(self.claims.info.key(Some(ns), name));
            }
            return keys;
        }
        if event.key.starts_with(&self.pods.info.storage_prefix()) {
            // A pod that goes or finishes may free a claim being deleted.
            if !event
                .object
                .json
                .windows(b"persistentVolumeClaim".len())
                .any(|w| w == b"persistentVolumeClaim")
            {
                return vec![];
            }
            let pod = event.object.value();
            let namespace = event.object.namespace.as_deref();
            return pod_claims(&pod)
                .into_iter()
                .map(|claim| self.claims.info.key(namespace, claim))
                .collect();
        }
        if event.key.starts_with(&self.classes.info.storage_prefix())
            && event.kind != CacheEventKind::Deleted
        {
            // Claims waiting for this class.
            return vec![event.key.clone()];
        }
        vec![]
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        let mut keys = queue::all_keys(registry, &self.claims);
        keys.extend(queue::all_keys(registry, &self.volumes));
        keys
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let claims = self.claims.info.storage_prefix();
            let Some((stored, _)) = registry.cache().get(key) else {
                if let Some(rest) = key.strip_prefix(&claims)
                    && let Some((namespace, name)) = rest.split_once('/')
                {
                    for pv in self.values(registry, &self.volumes) {
                        let reference = &pv["spec"]["claimRef"];
                        if reference["namespace"] == namespace && reference["name"] == name {
                            self.sync_volume(registry, &pv).await?;
                        }
                    }
                }
                return Ok(());
            };
            let value = stored.value();
            if key.starts_with(&claims) {
                self.sync_claim(registry, &value).await
            } else if key.starts_with(&self.volumes.info.storage_prefix()) {
                self.sync_volume(registry, &value).await?;
                // A free volume may be what a waiting claim of its class needs.
                if value["spec"]["claimRef"].is_null() && !deleting(&value) {
                    self.sync_waiting_claims(registry, text(&value, "/spec/storageClassName"))
                        .await?;
                }
                Ok(())
            } else {
                self.sync_waiting_claims(registry, text(&value, "/metadata/name"))
                    .await
            }
        })
    }
}

/// Run the PersistentVolume controller and the local-path provisioner.
pub async fn run(registry: Arc<Registry>) {
    let controller = Volumes {
        claims: resource("persistentvolumeclaims", ""),
        volumes: resource("persistentvolumes", ""),
        classes: resource("storageclasses", "storage.k8s.io"),
        nodes: resource("nodes", ""),
        pods: resource("pods", ""),
    };
    queue::run(registry, "/registry/", controller, Duration::from_secs(30)).await;
}

/// Write the scheduler's choice on the pod's unbound claims of classes that wait for their
/// first consumer, so the provisioner creates their volumes on `node` (kube-scheduler's
/// PreBind step of VolumeBinding). Claims that are bound or already carry this node are left.
pub async fn select_node(
    registry: &Registry,
    namespace: &str,
    claims: &[String],
    node: &str,
) -> Result<(), String> {
    let claims_res = resource("persistentvolumeclaims", "");
    for name in claims {
        let Some((stored, _)) = registry
            .cache()
            .get(&claims_res.info.key(Some(namespace), name))
        else {
            continue;
        };
        let claim = stored.value();
        if !text(&claim, "/spec/volumeName").is_empty() || annotation(&claim, SELECTED_NODE) == node
        {
            continue;
        }
        writes::edit(registry, &claims_res, Some(namespace), name, None, |next| {
            if text(next, "/spec/volumeName").is_empty() {
                meta::metadata_mut(next)
                    .entry("annotations")
                    .or_insert_with(|| json!({}))[SELECTED_NODE] = json!(node);
            }
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON merge patch (RFC 7396) of `patch` into `target`.
    fn merge(target: &mut Value, patch: Value) {
        match patch {
            Value::Object(fields) if target.is_object() => {
                for (key, value) in fields {
                    if value.is_null() {
                        target.as_object_mut().expect("object").remove(&key);
                    } else {
                        merge(
                            target
                                .as_object_mut()
                                .expect("object")
                                .entry(key)
                                .or_insert(Value::Null),
                            value,
                        );
                    }
                }
            }
            other => *target = other,
        }
    }

    fn claim(extra: Value) -> Value {
        let mut claim = json!({
            "metadata": {"namespace": "default", "name": "data", "uid": "u1", "resourceVersion": "7"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                "resources": {"requests": {"storage": "1Gi"}}},
        });
        merge(&mut claim, extra);
        claim
    }

    fn volume(name: &str, size: &str, extra: Value) -> Value {
        let mut pv = json!({
            "metadata": {"name": name, "labels": {"tier": "fast"}},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                "storageClassName": "manual", "hostPath": {"path": "/srv"}},
            "status": {"phase": "Available"},
        });
        merge(&mut pv, extra);
        pv
    }

    #[test]
    fn claims_bind_to_the_smallest_matching_volume_or_the_one_reserved_for_them() {
        let volumes = vec![
            volume("big", "10Gi", json!({})),
            volume("small", "2Gi", json!({})),
            volume("tiny", "500Mi", json!({})),
            volume(
                "other-class",
                "1Gi",
                json!({"spec": {"storageClassName": "slow"}}),
            ),
            volume("released", "1Gi", json!({"status": {"phase": "Released"}})),
        ];
        let plain = claim(json!({}));
        let name = |pv: Option<&Value>| pv.map(|p| text(p, "/metadata/name").to_string());
        assert_eq!(
            name(choose_volume(&volumes, &plain, None)),
            Some("small".into())
        );

        let mut reserved = volumes.clone();
        reserved.push(volume(
            "reserved",
            "20Gi",
            json!({"spec": {"claimRef": {"namespace": "default", "name": "data"}}}),
        ));
        assert_eq!(
            name(choose_volume(&reserved, &plain, None)),
            Some("reserved".into())
        );
        let taken = volume(
            "taken",
            "1Gi",
            json!({"spec": {"claimRef": {"namespace": "default", "name": "data", "uid": "other"}}}),
        );
        assert!(
            !volume_matches(&taken, &plain, None),
            "bound to an earlier claim of that name"
        );

        let many = claim(json!({"spec": {"accessModes": ["ReadWriteMany"]}}));
        assert_eq!(
            choose_volume(&volumes, &many, None),
            None,
            "no volume offers RWX"
        );
        let block = claim(json!({"spec": {"volumeMode": "Block"}}));
        assert_eq!(choose_volume(&volumes, &block, None), None);
        let huge = claim(json!({"spec": {"resources": {"requests": {"storage": "11Gi"}}}}));
        assert_eq!(choose_volume(&volumes, &huge, None), None);
        let selective = claim(json!({"spec": {"selector": {"matchLabels": {"tier": "slow"}}}}));
        assert_eq!(choose_volume(&volumes, &selective, None), None);
    }

    #[test]
    fn volumes_waiting_for_a_consumer_must_reach_the_selected_node() {
        let pinned = volume(
            "local",
            "1Gi",
            json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}}}),
        );
        let node = |name: &str| json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}});
        let plain = claim(json!({}));
        assert!(volume_matches(&pinned, &plain, Some(&node("n1"))));
        assert!(!volume_matches(&pinned, &plain, Some(&node("n2"))));
    }

    #[test]
    fn provisioned_volumes_are_directories_pinned_to_their_node() {
        let class = json!({"metadata": {"name": "local-path"}, "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete", "mountOptions": null});
        let pv = provisioned_volume(&claim(json!({})), &class, "n1", "/var/lib/maestro/storage/");
        assert_eq!(pv["metadata"]["name"], "pvc-u1");
        assert_eq!(pv["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
        assert_eq!(
            pv["spec"]["hostPath"]["path"],
            "/var/lib/maestro/storage/pvc-u1_default_data"
        );
        assert_eq!(pv["spec"]["capacity"]["storage"], "1Gi");
        assert_eq!(pv["spec"]["claimRef"]["uid"], "u1");
        assert_eq!(
            pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
            json!(["n1"])
        );
        let retained = json!({"metadata": {"name": "keep"}, "reclaimPolicy": "Retain"});
        let pv = provisioned_volume(&claim(json!({})), &retained, "n1", "/d");
        assert!(
            pv["metadata"].get("finalizers").is_none(),
            "Retain keeps the data: no cleanup"
        );
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");

        assert!(unprovisionable(&claim(json!({}))).is_none());
        assert!(
            unprovisionable(&claim(json!({"spec": {"accessModes": ["ReadWriteMany"]}})))
                .is_some_and(|m| m.contains("ReadWriteOnce"))
        );
    }
}
