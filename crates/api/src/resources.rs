//! The resource registry: which kinds the API serves, under which group/version/plural, with
//! which verbs, short names and subresources, and where each is kept in the store. Built-in kinds
//! are listed here; custom resources get the same description from their CRD at run time.

use std::sync::OnceLock;

/// Whether a resource lives in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// How one resource is served and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    /// Lower-case plural used in URLs (`deployments`).
    pub plural: String,
    pub singular: String,
    pub scope: Scope,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Whether `/status` is a subresource (then the main resource ignores status changes).
    pub status_subresource: bool,
    /// Whether `/scale` is a subresource, with the JSON paths of the replica fields.
    pub scale: Option<ScalePaths>,
    /// Other subresources served for this resource (`log`, `exec`, `eviction`, `finalize`...).
    pub extra_subresources: Vec<String>,
    /// Group of the stored representation (differs for `events.k8s.io`, stored as core events).
    pub storage_group: String,
    /// Version of the stored representation (`v2` for `autoscaling/v1` objects).
    pub storage_version: String,
    /// Whether this resource comes from a CustomResourceDefinition.
    pub custom: bool,
    /// Whether objects carry `metadata.generation` bumped on spec changes.
    pub has_generation: bool,
}

/// The replica fields a `/scale` subresource reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// e.g. `.spec.replicas`
    pub spec_replicas: String,
    /// e.g. `.status.replicas`
    pub status_replicas: String,
    /// e.g. `.status.selector`; None when the selector comes from `.spec.selector`.
    pub label_selector: Option<String>,
}

impl ScalePaths {
    fn standard() -> Self {
        ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: None,
        }
    }
}

impl ResourceInfo {
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// `v1` or `apps/v1`
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Verbs in discovery.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }

    /// Store key prefix holding every object of this resource (all namespaces).
    pub fn storage_prefix(&self) -> String {
        let group = if self.storage_group.is_empty() {
            "core"
        } else {
            &self.storage_group
        };
        format!("/registry/{group}/{}/", self.plural)
    }

    /// Store key prefix for one namespace (or the whole resource when cluster-scoped).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match (self.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => format!("{}{ns}/", self.storage_prefix()),
            _ => self.storage_prefix(),
        }
    }

    /// Store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.namespace_prefix(namespace))
    }

    /// Whether `sub` is a subresource of this resource.
    pub fn has_subresource(&self, sub: &str) -> bool {
        match sub {
            "status" => self.status_subresource,
            "scale" => self.scale.is_some(),
            other => self.extra_subresources.iter().any(|s| s == other),
        }
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    scope: Scope,
    short_names: &'static [&'static str],
    in_all: bool,
    status: bool,
    scale: bool,
    extra: &'static [&'static str],
}

const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        scope: Scope::Namespaced,
        short_names: &[],
        in_all: false,
        status: false,
        scale: false,
        extra: &[],
    }
}

impl Builtin {
    const fn cluster(mut self) -> Self {
        self.scope = Scope::Cluster;
        self
    }
    const fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }
    const fn all(mut self) -> Self {
        self.in_all = true;
        self
    }
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }
    const fn scale(mut self) -> Self {
        self.scale = true;
        self
    }
    const fn extra(mut self, extra: &'static [&'static str]) -> Self {
        self.extra = extra;
        self
    }
}

const BUILTINS: &[Builtin] = &[
    // core/v1
    b("", "v1", "Namespace", "namespaces")
        .cluster()
        .short(&["ns"])
        .status()
        .extra(&["finalize"]),
    b("", "v1", "Pod", "pods")
        .short(&["po"])
        .all()
        .status()
        .extra(&[
            "binding",
            "eviction",
            "log",
            "exec",
            "attach",
            "portforward",
            "proxy",
            "ephemeralcontainers",
            "resize",
        ]),
    b("", "v1", "Service", "services")
        .short(&["svc"])
        .all()
        .status()
        .extra(&["proxy"]),
    b("", "v1", "Endpoints", "endpoints").short(&["ep"]),
    b("", "v1", "ConfigMap", "configmaps").short(&["cm"]),
    b("", "v1", "Secret", "secrets"),
    b("", "v1", "ServiceAccount", "serviceaccounts")
        .short(&["sa"])
        .extra(&["token"]),
    b("", "v1", "Event", "events").short(&["ev"]),
    b("", "v1", "Node", "nodes")
        .cluster()
        .short(&["no"])
        .status()
        .extra(&["proxy"]),
    b("", "v1", "PersistentVolume", "persistentvolumes")
        .cluster()
        .short(&["pv"])
        .status(),
    b("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
        .short(&["pvc"])
        .status(),
    b("", "v1", "LimitRange", "limitranges").short(&["limits"]),
    b("", "v1", "ResourceQuota", "resourcequotas")
        .short(&["quota"])
        .status(),
    b("", "v1", "PodTemplate", "podtemplates"),
    // apps/v1
    b("apps", "v1", "Deployment", "deployments")
        .short(&["deploy"])
        .all()
        .status()
        .scale(),
    b("apps", "v1", "ReplicaSet", "replicasets")
        .short(&["rs"])
        .all()
        .status()
        .scale(),
    b("apps", "v1", "StatefulSet", "statefulsets")
        .short(&["sts"])
        .all()
        .status()
        .scale(),
    b("apps", "v1", "DaemonSet", "daemonsets")
        .short(&["ds"])
        .all()
        .status(),
    b("apps", "v1", "ControllerRevision", "controllerrevisions"),
    // batch/v1
    b("batch", "v1", "Job", "jobs").all().status(),
    b("batch", "v1", "CronJob", "cronjobs")
        .short(&["cj"])
        .all()
        .status(),
    // autoscaling: v2 is the stored version, v1 is converted
    b(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    )
    .short(&["hpa"])
    .all()
    .status(),
    b(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    )
    .short(&["hpa"])
    .all()
    .status(),
    // networking.k8s.io/v1
    b("networking.k8s.io", "v1", "Ingress", "ingresses")
        .short(&["ing"])
        .status(),
    b("networking.k8s.io", "v1", "IngressClass", "ingressclasses").cluster(),
    b(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    )
    .short(&["netpol"]),
    // coordination.k8s.io/v1
    b("coordination.k8s.io", "v1", "Lease", "leases"),
    // discovery.k8s.io/v1
    b("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
    // events.k8s.io/v1: the same objects as core/v1 events, another shape
    b("events.k8s.io", "v1", "Event", "events").short(&["ev"]),
    // policy/v1
    b(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    )
    .short(&["pdb"])
    .status(),
    // scheduling.k8s.io/v1
    b(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
    )
    .cluster()
    .short(&["pc"]),
    // storage.k8s.io/v1
    b("storage.k8s.io", "v1", "StorageClass", "storageclasses")
        .cluster()
        .short(&["sc"]),
    // rbac.authorization.k8s.io/v1
    b("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
    )
    .cluster(),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
    )
    .cluster(),
    // apiextensions.k8s.io/v1
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    )
    .cluster()
    .short(&["crd", "crds"])
    .status(),
];

/// Where a built-in resource is stored when it differs from where it is served.
fn storage_of(group: &str, plural: &str) -> (&'static str, &'static str) {
    match (group, plural) {
        ("events.k8s.io", "events") => ("", "v1"),
        ("autoscaling", "horizontalpodautoscalers") => ("autoscaling", "v2"),
        _ => ("", ""),
    }
}

fn build(bi: &Builtin) -> ResourceInfo {
    let (storage_group, storage_version) = match storage_of(bi.group, bi.plural) {
        ("", "") => (bi.group, bi.version),
        other => other,
    };
    ResourceInfo {
        group: bi.group.to_string(),
        version: bi.version.to_string(),
        kind: bi.kind.to_string(),
        plural: bi.plural.to_string(),
        singular: bi.kind.to_lowercase(),
        scope: bi.scope,
        short_names: bi.short_names.iter().map(|s| s.to_string()).collect(),
        categories: if bi.in_all {
            vec!["all".to_string()]
        } else {
            vec![]
        },
        status_subresource: bi.status,
        scale: bi.scale.then(ScalePaths::standard),
        extra_subresources: bi.extra.iter().map(|s| s.to_string()).collect(),
        storage_group: storage_group.to_string(),
        storage_version: storage_version.to_string(),
        custom: false,
        // The kinds whose registry strategy bumps metadata.generation on spec changes.
        has_generation: matches!(
            bi.kind,
            "Deployment"
                | "ReplicaSet"
                | "StatefulSet"
                | "DaemonSet"
                | "Job"
                | "CronJob"
                | "HorizontalPodAutoscaler"
                | "Ingress"
                | "NetworkPolicy"
                | "PodDisruptionBudget"
                | "CustomResourceDefinition"
        ),
    }
}

/// Every built-in resource, in discovery order.
pub fn builtins() -> &'static [ResourceInfo] {
    static ALL: OnceLock<Vec<ResourceInfo>> = OnceLock::new();
    ALL.get_or_init(|| BUILTINS.iter().map(build).collect())
}

/// The built-in resource served at group/version/plural.
pub fn find_builtin(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    builtins()
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The built-in resource for a group/version/kind.
pub fn find_builtin_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    builtins()
        .iter()
        .find(|r| r.group == group && r.version == version && r.kind == kind)
}

/// The version a group prefers (the first one listed wins, except autoscaling prefers v2).
pub fn preferred_version(group: &str) -> Option<&'static str> {
    builtins()
        .iter()
        .find(|r| r.group == group)
        .map(|r| r.version.as_str())
}

/// Split `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_namespaces_and_groups() {
        let pods = find_builtin("", "v1", "pods").unwrap();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/core/pods/default/web"
        );
        assert_eq!(pods.namespace_prefix(None), "/registry/core/pods/");
        let nodes = find_builtin("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/registry/core/nodes/n1");
        let deploy = find_builtin_kind("apps", "v1", "Deployment").unwrap();
        assert_eq!(deploy.key(Some("a"), "b"), "/registry/apps/deployments/a/b");
        assert!(deploy.has_subresource("scale"));
        assert!(deploy.has_generation);
    }

    #[test]
    fn converted_versions_share_storage() {
        let v1 = find_builtin("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v2 = find_builtin("autoscaling", "v2", "horizontalpodautoscalers").unwrap();
        assert_eq!(v1.storage_prefix(), v2.storage_prefix());
        assert_eq!(v1.storage_version, "v2");
        let ev = find_builtin("events.k8s.io", "v1", "events").unwrap();
        let core_ev = find_builtin("", "v1", "events").unwrap();
        assert_eq!(ev.storage_prefix(), core_ev.storage_prefix());
        assert_eq!(preferred_version("autoscaling"), Some("v2"));
    }
}
