//! Validation of objects on create and update: the checks of Kubernetes' `pkg/apis/*/validation`
//! (and of the apiextensions and apimachinery packages) that clients actually meet, producing the
//! same field paths and messages so that `kubectl` output and client error handling match a real
//! cluster.
//!
//! [`validate`] expects the object after [`crate::defaults::apply_defaults`], as Kubernetes
//! validates defaulted objects; a field that defaulting would have filled is treated as its
//! default rather than reported missing. Values Go would print as internal structs (a whole pod
//! template, a PDB spec) are printed as JSON: those messages are the only ones that differ.

mod apps;
mod batch;
mod core_kinds;
mod cron;
mod field;
mod meta;
mod names;
mod networking;
mod others;
mod pod;
pub(crate) mod quantity;

use serde_json::Value;

use crate::status::Cause;

/// The priority classes the system defines and their fixed values (neither is a global
/// default). Defaulting resolves them for pods; validation reserves the `system-` prefix.
pub(crate) const SYSTEM_PRIORITY_CLASSES: [(&str, i64); 2] = [
    ("system-node-critical", 2_000_001_000),
    ("system-cluster-critical", 2_000_000_000),
];

/// Labels the Job strategy puts on generated templates: the prefixed label and its legacy twin.
pub(crate) const JOB_CONTROLLER_UID_LABELS: [&str; 2] =
    ["batch.kubernetes.io/controller-uid", "controller-uid"];
pub(crate) const JOB_NAME_LABELS: [&str; 2] = ["batch.kubernetes.io/job-name", "job-name"];

/// Validate `obj` of `group`/`kind`; `old` is the stored object on updates. `namespaced` tells
/// whether the resource lives in a namespace. An empty result means the object is valid.
pub fn validate(
    group: &str,
    kind: &str,
    obj: &Value,
    old: Option<&Value>,
    namespaced: bool,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let rules = meta::MetaRules::for_kind(group, kind, obj, namespaced);
    match old {
        None => meta::validate_object_meta(obj, &rules, &mut errs),
        Some(old) => meta::validate_object_meta_update(obj, old, &rules, &mut errs),
    }
    match (group, kind) {
        ("", "Pod") => pod::validate_pod(obj, old, &mut errs),
        ("", "PodTemplate") => pod::validate_pod_template(obj, &mut errs),
        ("", "ReplicationController") => apps::validate_replication_controller(obj, &mut errs),
        ("", "Service") => core_kinds::validate_service(obj, old, &mut errs),
        ("", "ConfigMap") => core_kinds::validate_config_map(obj, old, &mut errs),
        ("", "Secret") => core_kinds::validate_secret(obj, old, &mut errs),
        ("", "Namespace") => core_kinds::validate_namespace(obj, old, &mut errs),
        ("", "PersistentVolumeClaim") => core_kinds::validate_pvc(obj, old, &mut errs),
        ("", "PersistentVolume") => core_kinds::validate_pv(obj, &mut errs),
        ("", "Endpoints") => core_kinds::validate_endpoints(obj, &mut errs),
        ("", "ResourceQuota") => core_kinds::validate_resource_quota(obj, &mut errs),
        ("", "LimitRange") => core_kinds::validate_limit_range(obj, &mut errs),
        ("apps", "Deployment") => apps::validate_deployment(obj, old, &mut errs),
        ("apps", "ReplicaSet") => apps::validate_replica_set(obj, old, &mut errs),
        ("apps", "StatefulSet") => apps::validate_stateful_set(obj, old, &mut errs),
        ("apps", "DaemonSet") => apps::validate_daemon_set(obj, old, &mut errs),
        ("batch", "Job") => batch::validate_job(obj, old, &mut errs),
        ("batch", "CronJob") => batch::validate_cron_job(obj, old, &mut errs),
        ("autoscaling", "HorizontalPodAutoscaler") => others::validate_hpa(obj, &mut errs),
        ("networking.k8s.io", "Ingress") => networking::validate_ingress(obj, &mut errs),
        ("networking.k8s.io", "IngressClass") => {
            networking::validate_ingress_class(obj, old, &mut errs)
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            networking::validate_network_policy(obj, &mut errs)
        }
        ("policy", "PodDisruptionBudget") => others::validate_pdb(obj, &mut errs),
        ("scheduling.k8s.io", "PriorityClass") => {
            others::validate_priority_class(obj, old, &mut errs)
        }
        ("storage.k8s.io", "StorageClass") => others::validate_storage_class(obj, old, &mut errs),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            others::validate_crd(obj, old, &mut errs)
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            others::validate_role_binding(obj, old, false, &mut errs)
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            others::validate_role_binding(obj, old, true, &mut errs)
        }
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests;
