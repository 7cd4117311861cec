//! Patch metadata of the built-in Kubernetes types, and the type graph that says where each
//! piece of an object lives.
//!
//! Two things a strategic merge patch (and the OpenAPI document kubectl computes its patches
//! from) needs that k8s-openapi does not carry:
//!
//! - the Kubernetes markers of each list and map field: the patch strategy and merge key
//!   (`patchStrategy`/`patchMergeKey` struct tags in k8s.io/api) and the list/map topology
//!   (`+listType`, `+listMapKey`, `+mapType`, `+structType`). They are a static table below,
//!   taken from the Kubernetes 1.33 API types, matching the `v1_33` k8s-openapi types;
//! - which definition each nested object, array item or map value is. That comes from the
//!   JSON schemas k8s-openapi generates (`schemars` feature), reduced once, lazily, to a compact
//!   graph without descriptions: the generated schemas weigh megabytes, the graph a few hundred
//!   kilobytes.
//!
//! Definitions are named as in the Kubernetes OpenAPI document (`io.k8s.api.core.v1.PodSpec`).

use std::sync::OnceLock;

use schemars::SchemaGenerator;
use serde_json::{Map, Value};

/// How a field takes a strategic merge patch (`x-kubernetes-patch-strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchStrategy {
    /// No marker: maps merge key by key, lists are replaced whole.
    Default,
    /// `replace`: the field is replaced whole, even when it is a map.
    Replace,
    /// `merge`: lists merge, element by element (by merge key) or as a set of primitives.
    Merge,
    /// `retainKeys`: a `$retainKeys` directive may clear the keys it does not list (union types).
    RetainKeys,
    /// `merge,retainKeys`: a merge list whose elements take `$retainKeys` (volumes).
    MergeRetainKeys,
}

impl PatchStrategy {
    /// The value of `x-kubernetes-patch-strategy`, if any.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            PatchStrategy::Default => None,
            PatchStrategy::Replace => Some("replace"),
            PatchStrategy::Merge => Some("merge"),
            PatchStrategy::RetainKeys => Some("retainKeys"),
            PatchStrategy::MergeRetainKeys => Some("merge,retainKeys"),
        }
    }

    /// Whether a list with this strategy merges instead of being replaced.
    pub fn merges_lists(self) -> bool {
        matches!(self, PatchStrategy::Merge | PatchStrategy::MergeRetainKeys)
    }
}

/// The topology of a list for server-side apply (`x-kubernetes-list-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole.
    Atomic,
    /// A set of scalars.
    Set,
    /// A map keyed by these fields of its elements (`x-kubernetes-list-map-keys`).
    Map(&'static [&'static str]),
}

/// The topology of a map or struct for server-side apply (`x-kubernetes-map-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapType {
    Atomic,
    Granular,
}

/// The Kubernetes markers of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMeta {
    pub strategy: PatchStrategy,
    /// `x-kubernetes-patch-merge-key`: the element field that identifies list elements.
    pub merge_key: Option<&'static str>,
    pub list_type: Option<ListType>,
    pub map_type: Option<MapType>,
}

impl FieldMeta {
    /// A field without markers: maps merge, lists are replaced.
    pub const NONE: FieldMeta = FieldMeta {
        strategy: PatchStrategy::Default,
        merge_key: None,
        list_type: None,
        map_type: None,
    };

    /// The OpenAPI extensions these markers become, in the order Kubernetes writes them.
    pub fn openapi_extensions(&self) -> Map<String, Value> {
        let mut ext = Map::new();
        match self.list_type {
            Some(ListType::Atomic) => {
                ext.insert("x-kubernetes-list-type".into(), "atomic".into());
            }
            Some(ListType::Set) => {
                ext.insert("x-kubernetes-list-type".into(), "set".into());
            }
            Some(ListType::Map(keys)) => {
                ext.insert("x-kubernetes-list-map-keys".into(), keys.to_vec().into());
                ext.insert("x-kubernetes-list-type".into(), "map".into());
            }
            None => {}
        }
        match self.map_type {
            Some(MapType::Atomic) => {
                ext.insert("x-kubernetes-map-type".into(), "atomic".into());
            }
            Some(MapType::Granular) => {
                ext.insert("x-kubernetes-map-type".into(), "granular".into());
            }
            None => {}
        }
        if let Some(key) = self.merge_key {
            ext.insert("x-kubernetes-patch-merge-key".into(), key.into());
        }
        if let Some(strategy) = self.strategy.as_str() {
            ext.insert("x-kubernetes-patch-strategy".into(), strategy.into());
        }
        ext
    }
}

const fn meta(
    strategy: PatchStrategy,
    merge_key: Option<&'static str>,
    list_type: Option<ListType>,
) -> FieldMeta {
    FieldMeta {
        strategy,
        merge_key,
        list_type,
        map_type: None,
    }
}

/// `+listType=atomic`
const ATOMIC: FieldMeta = meta(PatchStrategy::Default, None, Some(ListType::Atomic));
/// `+listType=set`
const SET: FieldMeta = meta(PatchStrategy::Default, None, Some(ListType::Set));
/// `patchStrategy:"merge"` on a list of scalars, `+listType=set` (finalizers).
const MERGE_SET: FieldMeta = meta(PatchStrategy::Merge, None, Some(ListType::Set));
/// `patchStrategy:"retainKeys"` on a union struct (Deployment strategy).
const RETAIN_KEYS: FieldMeta = meta(PatchStrategy::RetainKeys, None, None);
/// `patchStrategy:"replace"` on a struct.
const REPLACE: FieldMeta = meta(PatchStrategy::Replace, None, None);
/// `+mapType=atomic` on a map field.
const ATOMIC_MAP: FieldMeta = FieldMeta {
    map_type: Some(MapType::Atomic),
    ..FieldMeta::NONE
};
/// `+mapType=granular` on a map field.
const GRANULAR_MAP: FieldMeta = FieldMeta {
    map_type: Some(MapType::Granular),
    ..FieldMeta::NONE
};

/// `+listType=map` with these keys, no patch strategy: SSA merges it, SMP replaces it.
const fn keyed(keys: &'static [&'static str]) -> FieldMeta {
    meta(PatchStrategy::Default, None, Some(ListType::Map(keys)))
}

/// The common case: a list merged by `key`, a list-map on `keys` for SSA.
const fn merge_by(key: &'static str, keys: &'static [&'static str]) -> FieldMeta {
    meta(PatchStrategy::Merge, Some(key), Some(ListType::Map(keys)))
}

/// Like [`merge_by`], with `retainKeys` on the elements (volumes, resource claims).
const fn merge_retain_by(key: &'static str, keys: &'static [&'static str]) -> FieldMeta {
    meta(
        PatchStrategy::MergeRetainKeys,
        Some(key),
        Some(ListType::Map(keys)),
    )
}

/// A list merged by `key` under SMP that SSA treats as atomic (kept that way upstream for
/// compatibility: pod hostIPs, job conditions).
const fn merge_atomic(key: &'static str) -> FieldMeta {
    meta(PatchStrategy::Merge, Some(key), Some(ListType::Atomic))
}

// The markers of the Kubernetes 1.33 API types (k8s.io/api, k8s.io/apimachinery meta/v1,
// k8s.io/apiextensions-apiserver v1), for the definitions reachable from the kinds maestro
// serves. Embedded structs (`json:",inline"`) are flattened into their embedder, as in OpenAPI.
// Sorted by definition, then property: lookups are binary searches.
static FIELDS: &[(&str, &[(&str, FieldMeta)])] = &[
    (
        "io.k8s.api.apps.v1.DaemonSetStatus",
        &[("conditions", merge_by("type", &["type"]))],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        &[("strategy", RETAIN_KEYS)],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        &[("conditions", merge_by("type", &["type"]))],
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        &[("conditions", merge_by("type", &["type"]))],
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetSpec",
        &[("volumeClaimTemplates", ATOMIC)],
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetStatus",
        &[("conditions", merge_by("type", &["type"]))],
    ),
    (
        "io.k8s.api.autoscaling.v2.HPAScalingRules",
        &[("policies", ATOMIC)],
    ),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec",
        &[("metrics", ATOMIC)],
    ),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        &[
            ("conditions", merge_by("type", &["type"])),
            ("currentMetrics", ATOMIC),
        ],
    ),
    ("io.k8s.api.batch.v1.CronJobStatus", &[("active", ATOMIC)]),
    (
        "io.k8s.api.batch.v1.JobStatus",
        &[("conditions", merge_atomic("type"))],
    ),
    ("io.k8s.api.batch.v1.PodFailurePolicy", &[("rules", ATOMIC)]),
    (
        "io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement",
        &[("values", SET)],
    ),
    (
        "io.k8s.api.batch.v1.PodFailurePolicyRule",
        &[("onPodConditions", ATOMIC)],
    ),
    ("io.k8s.api.batch.v1.SuccessPolicy", &[("rules", ATOMIC)]),
    (
        "io.k8s.api.batch.v1.UncountedTerminatedPods",
        &[("failed", SET), ("succeeded", SET)],
    ),
    (
        "io.k8s.api.core.v1.Capabilities",
        &[("add", ATOMIC), ("drop", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.CephFSPersistentVolumeSource",
        &[("monitors", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.CephFSVolumeSource",
        &[("monitors", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.ConfigMapProjection",
        &[("items", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.ConfigMapVolumeSource",
        &[("items", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.Container",
        &[
            ("args", ATOMIC),
            ("command", ATOMIC),
            ("env", merge_by("name", &["name"])),
            ("envFrom", ATOMIC),
            (
                "ports",
                merge_by("containerPort", &["containerPort", "protocol"]),
            ),
            ("resizePolicy", ATOMIC),
            ("volumeDevices", merge_by("devicePath", &["devicePath"])),
            ("volumeMounts", merge_by("mountPath", &["mountPath"])),
        ],
    ),
    ("io.k8s.api.core.v1.ContainerImage", &[("names", ATOMIC)]),
    (
        "io.k8s.api.core.v1.ContainerStatus",
        &[
            ("allocatedResourcesStatus", merge_by("name", &["name"])),
            ("volumeMounts", merge_by("mountPath", &["mountPath"])),
        ],
    ),
    (
        "io.k8s.api.core.v1.DownwardAPIProjection",
        &[("items", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.DownwardAPIVolumeSource",
        &[("items", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.EndpointSubset",
        &[
            ("addresses", ATOMIC),
            ("notReadyAddresses", ATOMIC),
            ("ports", ATOMIC),
        ],
    ),
    ("io.k8s.api.core.v1.Endpoints", &[("subsets", ATOMIC)]),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        &[
            ("args", ATOMIC),
            ("command", ATOMIC),
            ("env", merge_by("name", &["name"])),
            ("envFrom", ATOMIC),
            (
                "ports",
                merge_by("containerPort", &["containerPort", "protocol"]),
            ),
            ("resizePolicy", ATOMIC),
            ("volumeDevices", merge_by("devicePath", &["devicePath"])),
            ("volumeMounts", merge_by("mountPath", &["mountPath"])),
        ],
    ),
    ("io.k8s.api.core.v1.ExecAction", &[("command", ATOMIC)]),
    (
        "io.k8s.api.core.v1.FCVolumeSource",
        &[("targetWWNs", ATOMIC), ("wwids", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.HTTPGetAction",
        &[("httpHeaders", ATOMIC)],
    ),
    ("io.k8s.api.core.v1.HostAlias", &[("hostnames", ATOMIC)]),
    (
        "io.k8s.api.core.v1.ISCSIPersistentVolumeSource",
        &[("portals", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.ISCSIVolumeSource",
        &[("portals", ATOMIC)],
    ),
    ("io.k8s.api.core.v1.LimitRangeSpec", &[("limits", ATOMIC)]),
    (
        "io.k8s.api.core.v1.LinuxContainerUser",
        &[("supplementalGroups", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.LoadBalancerIngress",
        &[("ports", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.LoadBalancerStatus",
        &[("ingress", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.NamespaceSpec",
        &[("finalizers", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        &[("conditions", merge_by("type", &["type"]))],
    ),
    (
        "io.k8s.api.core.v1.NodeAffinity",
        &[("preferredDuringSchedulingIgnoredDuringExecution", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.NodeSelector",
        &[("nodeSelectorTerms", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.NodeSelectorRequirement",
        &[("values", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.NodeSelectorTerm",
        &[("matchExpressions", ATOMIC), ("matchFields", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.NodeSpec",
        &[("podCIDRs", MERGE_SET), ("taints", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        &[
            ("addresses", merge_by("type", &["type"])),
            ("conditions", merge_by("type", &["type"])),
            ("images", ATOMIC),
            ("runtimeHandlers", ATOMIC),
            ("volumesAttached", ATOMIC),
            ("volumesInUse", ATOMIC),
        ],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        &[("accessModes", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        &[
            ("accessModes", ATOMIC),
            ("allocatedResourceStatuses", GRANULAR_MAP),
            ("conditions", merge_by("type", &["type"])),
        ],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeSpec",
        &[("accessModes", ATOMIC), ("mountOptions", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.PodAffinity",
        &[
            ("preferredDuringSchedulingIgnoredDuringExecution", ATOMIC),
            ("requiredDuringSchedulingIgnoredDuringExecution", ATOMIC),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodAffinityTerm",
        &[
            ("matchLabelKeys", ATOMIC),
            ("mismatchLabelKeys", ATOMIC),
            ("namespaces", ATOMIC),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodAntiAffinity",
        &[
            ("preferredDuringSchedulingIgnoredDuringExecution", ATOMIC),
            ("requiredDuringSchedulingIgnoredDuringExecution", ATOMIC),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodDNSConfig",
        &[
            ("nameservers", ATOMIC),
            ("options", ATOMIC),
            ("searches", ATOMIC),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodSecurityContext",
        &[("supplementalGroups", ATOMIC), ("sysctls", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        &[
            ("containers", merge_by("name", &["name"])),
            ("ephemeralContainers", merge_by("name", &["name"])),
            ("hostAliases", merge_by("ip", &["ip"])),
            ("imagePullSecrets", merge_by("name", &["name"])),
            ("initContainers", merge_by("name", &["name"])),
            ("nodeSelector", ATOMIC_MAP),
            ("readinessGates", ATOMIC),
            ("resourceClaims", merge_retain_by("name", &["name"])),
            ("schedulingGates", merge_by("name", &["name"])),
            ("tolerations", ATOMIC),
            (
                "topologySpreadConstraints",
                merge_by("topologyKey", &["topologyKey", "whenUnsatisfiable"]),
            ),
            ("volumes", merge_retain_by("name", &["name"])),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        &[
            ("conditions", merge_by("type", &["type"])),
            ("containerStatuses", ATOMIC),
            ("ephemeralContainerStatuses", ATOMIC),
            ("hostIPs", merge_atomic("ip")),
            ("initContainerStatuses", ATOMIC),
            ("podIPs", merge_by("ip", &["ip"])),
            ("resourceClaimStatuses", merge_retain_by("name", &["name"])),
        ],
    ),
    (
        "io.k8s.api.core.v1.ProjectedVolumeSource",
        &[("sources", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.RBDPersistentVolumeSource",
        &[("monitors", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.RBDVolumeSource",
        &[("monitors", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.ResourceQuotaSpec",
        &[("scopes", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.ResourceRequirements",
        &[("claims", keyed(&["name"]))],
    ),
    (
        "io.k8s.api.core.v1.ResourceStatus",
        &[("resources", keyed(&["resourceID"]))],
    ),
    (
        "io.k8s.api.core.v1.ScopeSelector",
        &[("matchExpressions", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.ScopedResourceSelectorRequirement",
        &[("values", ATOMIC)],
    ),
    ("io.k8s.api.core.v1.SecretProjection", &[("items", ATOMIC)]),
    (
        "io.k8s.api.core.v1.SecretVolumeSource",
        &[("items", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        &[
            ("imagePullSecrets", ATOMIC),
            ("secrets", merge_by("name", &["name"])),
        ],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        &[
            ("clusterIPs", ATOMIC),
            ("externalIPs", ATOMIC),
            ("ipFamilies", ATOMIC),
            ("loadBalancerSourceRanges", ATOMIC),
            ("ports", merge_by("port", &["port", "protocol"])),
            ("selector", ATOMIC_MAP),
        ],
    ),
    (
        "io.k8s.api.core.v1.ServiceStatus",
        &[("conditions", merge_by("type", &["type"]))],
    ),
    (
        "io.k8s.api.core.v1.TopologySelectorLabelRequirement",
        &[("values", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.TopologySelectorTerm",
        &[("matchLabelExpressions", ATOMIC)],
    ),
    (
        "io.k8s.api.core.v1.TopologySpreadConstraint",
        &[("matchLabelKeys", ATOMIC)],
    ),
    ("io.k8s.api.discovery.v1.Endpoint", &[("addresses", SET)]),
    (
        "io.k8s.api.discovery.v1.EndpointHints",
        &[("forNodes", ATOMIC), ("forZones", ATOMIC)],
    ),
    (
        "io.k8s.api.discovery.v1.EndpointSlice",
        &[("endpoints", ATOMIC), ("ports", ATOMIC)],
    ),
    (
        "io.k8s.api.networking.v1.HTTPIngressRuleValue",
        &[("paths", ATOMIC)],
    ),
    ("io.k8s.api.networking.v1.IPBlock", &[("except", ATOMIC)]),
    (
        "io.k8s.api.networking.v1.IngressLoadBalancerIngress",
        &[("ports", ATOMIC)],
    ),
    (
        "io.k8s.api.networking.v1.IngressLoadBalancerStatus",
        &[("ingress", ATOMIC)],
    ),
    (
        "io.k8s.api.networking.v1.IngressSpec",
        &[("rules", ATOMIC), ("tls", ATOMIC)],
    ),
    ("io.k8s.api.networking.v1.IngressTLS", &[("hosts", ATOMIC)]),
    (
        "io.k8s.api.networking.v1.NetworkPolicyEgressRule",
        &[("ports", ATOMIC), ("to", ATOMIC)],
    ),
    (
        "io.k8s.api.networking.v1.NetworkPolicyIngressRule",
        &[("from", ATOMIC), ("ports", ATOMIC)],
    ),
    (
        "io.k8s.api.networking.v1.NetworkPolicySpec",
        &[
            ("egress", ATOMIC),
            ("ingress", ATOMIC),
            ("policyTypes", ATOMIC),
        ],
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
        &[("selector", REPLACE)],
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        &[("conditions", merge_by("type", &["type"]))],
    ),
    (
        "io.k8s.api.rbac.v1.AggregationRule",
        &[("clusterRoleSelectors", ATOMIC)],
    ),
    ("io.k8s.api.rbac.v1.ClusterRole", &[("rules", ATOMIC)]),
    (
        "io.k8s.api.rbac.v1.ClusterRoleBinding",
        &[("subjects", ATOMIC)],
    ),
    (
        "io.k8s.api.rbac.v1.PolicyRule",
        &[
            ("apiGroups", ATOMIC),
            ("nonResourceURLs", ATOMIC),
            ("resourceNames", ATOMIC),
            ("resources", ATOMIC),
            ("verbs", ATOMIC),
        ],
    ),
    ("io.k8s.api.rbac.v1.Role", &[("rules", ATOMIC)]),
    ("io.k8s.api.rbac.v1.RoleBinding", &[("subjects", ATOMIC)]),
    (
        "io.k8s.api.storage.v1.StorageClass",
        &[("allowedTopologies", ATOMIC), ("mountOptions", ATOMIC)],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionNames",
        &[("categories", ATOMIC), ("shortNames", ATOMIC)],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec",
        &[("versions", ATOMIC)],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus",
        &[("conditions", keyed(&["type"])), ("storedVersions", ATOMIC)],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionVersion",
        &[
            ("additionalPrinterColumns", ATOMIC),
            ("selectableFields", ATOMIC),
        ],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
        &[
            ("allOf", ATOMIC),
            ("anyOf", ATOMIC),
            ("enum", ATOMIC),
            ("oneOf", ATOMIC),
            ("required", ATOMIC),
            ("x-kubernetes-list-map-keys", ATOMIC),
            ("x-kubernetes-validations", merge_by("rule", &["rule"])),
        ],
    ),
    (
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.WebhookConversion",
        &[("conversionReviewVersions", ATOMIC)],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        &[("dryRun", ATOMIC)],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        &[("matchExpressions", ATOMIC)],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
        &[("values", ATOMIC)],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        &[
            ("finalizers", MERGE_SET),
            ("managedFields", ATOMIC),
            ("ownerReferences", merge_by("uid", &["uid"])),
        ],
    ),
];

// Structs that server-side apply replaces whole (`+structType=atomic`), sorted.
static ATOMIC_STRUCTS: &[&str] = &[
    "io.k8s.api.autoscaling.v1.CrossVersionObjectReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.EndpointAddress",
    "io.k8s.api.core.v1.EndpointPort",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ScopeSelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.discovery.v1.EndpointPort",
    "io.k8s.api.networking.v1.ServiceBackendPort",
    "io.k8s.api.rbac.v1.RoleRef",
    "io.k8s.api.rbac.v1.Subject",
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
];

/// The markers of `property` in `definition`, if it has any.
pub fn field_meta(definition: &str, property: &str) -> Option<&'static FieldMeta> {
    let fields = FIELDS
        .binary_search_by(|(name, _)| (*name).cmp(definition))
        .ok()
        .map(|i| FIELDS[i].1)?;
    fields
        .binary_search_by(|(name, _)| (*name).cmp(property))
        .ok()
        .map(|i| &fields[i].1)
}

/// The `x-kubernetes-*` extensions (patch merge key, patch strategy, list type, list-map keys,
/// map type) that the OpenAPI document carries on `property` of `definition`. None when the
/// field has no markers.
pub fn openapi_extensions(definition: &str, property: &str) -> Option<Map<String, Value>> {
    field_meta(definition, property).map(FieldMeta::openapi_extensions)
}

/// The extensions on a definition itself: `x-kubernetes-map-type: atomic` for structs that
/// server-side apply replaces whole (`+structType=atomic`, e.g. `LocalObjectReference`).
pub fn definition_extensions(definition: &str) -> Option<Map<String, Value>> {
    ATOMIC_STRUCTS.binary_search(&definition).ok().map(|_| {
        let mut ext = Map::new();
        ext.insert("x-kubernetes-map-type".into(), "atomic".into());
        ext
    })
}

/// Adds the Kubernetes extensions to OpenAPI component schemas generated from the k8s-openapi
/// types (`definitions`: definition name → schema, as `SchemaGenerator::take_definitions`
/// returns them). Properties and definitions without markers are left alone.
pub fn annotate_definitions(definitions: &mut Map<String, Value>) {
    for (name, schema) in definitions.iter_mut() {
        let Some(schema) = schema.as_object_mut() else {
            continue;
        };
        if let Some(ext) = definition_extensions(name) {
            schema.extend(ext);
        }
        let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
            continue;
        };
        for (property, property_schema) in properties.iter_mut() {
            if let (Some(ext), Some(target)) = (
                openapi_extensions(name, property),
                property_schema.as_object_mut(),
            ) {
                target.extend(ext);
            }
        }
    }
}

/// What a value at some place in an object is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A string, number or boolean (also quantities, times, int-or-strings).
    Scalar,
    /// Free-form JSON (`RawExtension`, `FieldsV1`, CRD `JSON`): no patch metadata below.
    Untyped,
    /// An object of a known definition.
    Object(Definition),
    /// An array of items of this shape.
    Array(Box<Shape>),
    /// A map from arbitrary keys to values of this shape (`labels`, `resources.limits`).
    Map(Box<Shape>),
}

impl Shape {
    /// The definition, when this is an object of one.
    pub fn definition(&self) -> Option<Definition> {
        match self {
            Shape::Object(definition) => Some(*definition),
            _ => None,
        }
    }

    /// The shape of an array's items.
    pub fn item(&self) -> Option<&Shape> {
        match self {
            Shape::Array(item) => Some(item),
            _ => None,
        }
    }

    /// The shape of a map's values.
    pub fn value(&self) -> Option<&Shape> {
        match self {
            Shape::Map(value) => Some(value),
            _ => None,
        }
    }
}

/// One property of a definition: its shape and its markers.
#[derive(Debug)]
pub struct Field {
    name: Box<str>,
    shape: Shape,
    meta: Option<&'static FieldMeta>,
}

impl Field {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// The field's markers ([`FieldMeta::NONE`] when it has none).
    pub fn meta(&self) -> &'static FieldMeta {
        self.meta.unwrap_or(&FieldMeta::NONE)
    }
}

/// A handle on an object definition of the type graph (cheap to copy, valid for the life of the
/// process).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Definition(u32);

impl std::fmt::Debug for Definition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Definition({})", self.name())
    }
}

impl Definition {
    /// The definition of this OpenAPI name, if it is an object reachable from a served kind.
    pub fn named(name: &str) -> Option<Definition> {
        let graph = graph();
        graph
            .defs
            .binary_search_by(|node| (*node.name).cmp(name))
            .ok()
            .map(|i| Definition(i as u32))
    }

    /// The OpenAPI definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub fn name(self) -> &'static str {
        &graph().defs[self.0 as usize].name
    }

    /// All properties, sorted by name.
    pub fn fields(self) -> &'static [Field] {
        &graph().defs[self.0 as usize].fields
    }

    /// The property `name`, if the definition has it.
    pub fn field(self, name: &str) -> Option<&'static Field> {
        let fields = self.fields();
        fields
            .binary_search_by(|field| (*field.name).cmp(name))
            .ok()
            .map(|i| &fields[i])
    }

    /// The shape at a path of property names and map keys below this definition. Array items
    /// are stepped into implicitly (a path names fields, not indexes): `["spec", "containers",
    /// "env"]` from a Pod is the env list of a container.
    pub fn shape_at(self, path: &[&str]) -> Option<&'static Shape> {
        let (first, rest) = path.split_first()?;
        let mut shape = &self.field(first)?.shape;
        for step in rest {
            while let Shape::Array(item) = shape {
                shape = item;
            }
            shape = match shape {
                Shape::Object(definition) => &definition.field(step)?.shape,
                Shape::Map(value) => value,
                _ => return None,
            };
        }
        Some(shape)
    }
}

/// The root definition of a built-in kind (for instance `io.k8s.api.apps.v1.Deployment` for
/// `apps/v1 Deployment`). None for kinds without a typed schema (custom resources).
pub fn root_definition(group: &str, version: &str, kind: &str) -> Option<Definition> {
    graph()
        .roots
        .iter()
        .find(|(g, v, k, _)| *g == group && *v == version && *k == kind)
        .map(|(_, _, _, definition)| *definition)
}

struct DefNode {
    name: Box<str>,
    /// Sorted by name.
    fields: Box<[Field]>,
}

struct Graph {
    /// Sorted by name; a [`Definition`] is an index here.
    defs: Vec<DefNode>,
    roots: Vec<(&'static str, &'static str, &'static str, Definition)>,
}

fn graph() -> &'static Graph {
    static GRAPH: OnceLock<Graph> = OnceLock::new();
    GRAPH.get_or_init(build_graph)
}

/// Generates the schemas of every typed kind of [`crate::codec`] into `generator`; returns each
/// kind with the name of its definition.
fn generate_roots(
    generator: &mut SchemaGenerator,
) -> Vec<(&'static str, &'static str, &'static str, String)> {
    crate::codec::typed_kinds()
        .iter()
        .filter_map(|&(group, version, kind)| {
            crate::codec::schema_for(group, version, kind, generator)?;
            Some((
                group,
                version,
                kind,
                crate::codec::definition_name(group, version, kind)?,
            ))
        })
        .collect()
}

/// Generates the schemas of the root kinds and keeps only their skeleton: for each object
/// definition, its properties' shapes. The generated schemas (descriptions included) are
/// dropped when this returns.
fn build_graph() -> Graph {
    let mut generator = SchemaGenerator::default();
    let roots = generate_roots(&mut generator);
    let definitions = generator.take_definitions(false);

    // Only definitions with properties become nodes; the others (quantities, times, free-form
    // objects) are shapes of their own.
    let mut names: Vec<&str> = definitions
        .iter()
        .filter(|(_, schema)| schema.get("properties").is_some_and(Value::is_object))
        .map(|(name, _)| name.as_str())
        .collect();
    names.sort_unstable();
    let lookup = |name: &str| -> Option<Definition> {
        names
            .binary_search(&name)
            .ok()
            .map(|i| Definition(i as u32))
    };

    let defs = names
        .iter()
        .map(|name| {
            let properties = definitions[*name]["properties"]
                .as_object()
                .expect("filtered on properties");
            let mut fields: Vec<Field> = properties
                .iter()
                .map(|(property, schema)| Field {
                    name: property.as_str().into(),
                    shape: shape_of(schema, &definitions, &lookup),
                    meta: field_meta(name, property),
                })
                .collect();
            fields.sort_unstable_by(|a, b| a.name.cmp(&b.name));
            DefNode {
                name: (*name).into(),
                fields: fields.into_boxed_slice(),
            }
        })
        .collect();

    let roots = roots
        .into_iter()
        .map(|(group, version, kind, name)| {
            let definition = lookup(&name).expect("every root kind is an object with properties");
            (group, version, kind, definition)
        })
        .collect();
    Graph { defs, roots }
}

fn shape_of(
    schema: &Value,
    definitions: &Map<String, Value>,
    lookup: &dyn Fn(&str) -> Option<Definition>,
) -> Shape {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix("#/$defs/")
            .or_else(|| reference.strip_prefix("#/definitions/"))
            .unwrap_or(reference);
        if let Some(definition) = lookup(name) {
            return Shape::Object(definition);
        }
        return match definitions.get(name) {
            Some(target) => shape_of(target, definitions, lookup),
            None => Shape::Untyped,
        };
    }
    if schema.get("oneOf").is_some() || schema.get("anyOf").is_some() {
        // JSONSchemaPropsOrArray / OrBool / OrStringArray: no single shape to follow.
        return Shape::Untyped;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => Shape::Array(Box::new(match schema.get("items") {
            Some(items) => shape_of(items, definitions, lookup),
            None => Shape::Untyped,
        })),
        Some("object") => match schema.get("additionalProperties") {
            Some(values) if values.is_object() => {
                Shape::Map(Box::new(shape_of(values, definitions, lookup)))
            }
            _ => Shape::Untyped,
        },
        _ => Shape::Scalar,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ext(definition: &str, property: &str) -> Value {
        openapi_extensions(definition, property).map_or(Value::Null, Value::Object)
    }

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(FIELDS.windows(2).all(|w| w[0].0 < w[1].0));
        for (definition, fields) in FIELDS {
            assert!(
                fields.windows(2).all(|w| w[0].0 < w[1].0),
                "{definition} is not sorted"
            );
        }
        assert!(ATOMIC_STRUCTS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_marker_names_a_reachable_property() {
        let mut missing = Vec::new();
        for (definition, fields) in FIELDS {
            for (property, _) in *fields {
                if Definition::named(definition)
                    .and_then(|d| d.field(property))
                    .is_none()
                {
                    missing.push(format!("{definition}.{property}"));
                }
            }
        }
        for definition in ATOMIC_STRUCTS {
            if Definition::named(definition).is_none() {
                missing.push(definition.to_string());
            }
        }
        assert!(missing.is_empty(), "not in the type graph: {missing:#?}");
    }

    #[test]
    fn markers_agree_with_the_shapes_they_annotate() {
        for (definition, fields) in FIELDS {
            let definition = Definition::named(definition).unwrap();
            for (property, meta) in *fields {
                let field = definition.field(property).unwrap();
                let at = format!("{}.{property}", definition.name());
                if meta.list_type.is_some() || meta.merge_key.is_some() {
                    assert!(matches!(field.shape(), Shape::Array(_)), "{at} is no list");
                }
                let item = field.shape().item().and_then(Shape::definition);
                if let Some(key) = meta.merge_key {
                    let item = item.unwrap_or_else(|| panic!("{at}: merge key on scalars"));
                    assert!(item.field(key).is_some(), "{at}: no merge key {key}");
                } else if meta.strategy.merges_lists() {
                    assert_eq!(field.shape().item(), Some(&Shape::Scalar), "{at}");
                }
                if let Some(ListType::Map(keys)) = meta.list_type {
                    for key in keys {
                        assert!(item.unwrap().field(key).is_some(), "{at}: no key {key}");
                    }
                }
                if meta.map_type.is_some() {
                    assert!(matches!(field.shape(), Shape::Map(_)), "{at} is no map");
                }
            }
        }
    }

    #[test]
    fn every_list_of_the_served_kinds_has_markers() {
        // Since 1.33 every list of the built-in types declares its list type, so a list without
        // an entry here means a kind was added to the roots without its markers.
        let unmarked: Vec<String> = graph()
            .defs
            .iter()
            .flat_map(|node| {
                node.fields
                    .iter()
                    .filter(|field| matches!(field.shape, Shape::Array(_)) && field.meta.is_none())
                    .map(move |field| format!("{}.{}", node.name, field.name))
            })
            .collect();
        assert!(unmarked.is_empty(), "lists without markers: {unmarked:#?}");
    }

    #[test]
    fn every_typed_kind_has_a_root() {
        for (group, version, kind, definition) in &graph().roots {
            assert!(crate::codec::is_typed(group, version, kind), "{kind}");
            assert!(definition.field("metadata").is_some() || *kind == "Binding");
        }
        assert_eq!(
            root_definition("apps", "v1", "Deployment").unwrap().name(),
            "io.k8s.api.apps.v1.Deployment"
        );
        assert_eq!(
            root_definition("", "v1", "Pod").unwrap(),
            Definition::named("io.k8s.api.core.v1.Pod").unwrap()
        );
        assert!(root_definition("example.com", "v1", "Widget").is_none());
        assert!(root_definition("apps", "v2", "Deployment").is_none());
    }

    #[test]
    fn openapi_extensions_of_well_known_fields() {
        let core = |t: &str| format!("io.k8s.api.core.v1.{t}");
        let meta = |t: &str| format!("io.k8s.apimachinery.pkg.apis.meta.v1.{t}");
        let cases: &[(String, &str, Value)] = &[
            (
                core("PodSpec"),
                "containers",
                json!({"x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}),
            ),
            (
                core("PodSpec"),
                "volumes",
                json!({"x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-patch-strategy": "merge,retainKeys"}),
            ),
            (
                core("PodSpec"),
                "tolerations",
                json!({"x-kubernetes-list-type": "atomic"}),
            ),
            (
                core("PodSpec"),
                "topologySpreadConstraints",
                json!({"x-kubernetes-list-map-keys": ["topologyKey", "whenUnsatisfiable"],
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "topologyKey",
                    "x-kubernetes-patch-strategy": "merge"}),
            ),
            (
                core("PodSpec"),
                "nodeSelector",
                json!({"x-kubernetes-map-type": "atomic"}),
            ),
            (
                core("Container"),
                "ports",
                json!({"x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "containerPort",
                    "x-kubernetes-patch-strategy": "merge"}),
            ),
            (
                core("Container"),
                "volumeMounts",
                json!({"x-kubernetes-list-map-keys": ["mountPath"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "mountPath",
                    "x-kubernetes-patch-strategy": "merge"}),
            ),
            (
                core("EphemeralContainer"),
                "env",
                json!({"x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}),
            ),
            (
                core("Container"),
                "args",
                json!({"x-kubernetes-list-type": "atomic"}),
            ),
            (
                core("ServiceSpec"),
                "ports",
                json!({"x-kubernetes-list-map-keys": ["port", "protocol"],
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "port", "x-kubernetes-patch-strategy": "merge"}),
            ),
            (
                core("NodeStatus"),
                "addresses",
                json!({"x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "type", "x-kubernetes-patch-strategy": "merge"}),
            ),
            (
                core("PodStatus"),
                "hostIPs",
                json!({"x-kubernetes-list-type": "atomic",
                    "x-kubernetes-patch-merge-key": "ip", "x-kubernetes-patch-strategy": "merge"}),
            ),
            (
                core("ServiceAccount"),
                "secrets",
                json!({"x-kubernetes-list-map-keys": ["name"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}),
            ),
            (
                meta("ObjectMeta"),
                "finalizers",
                json!({"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"}),
            ),
            (
                meta("ObjectMeta"),
                "ownerReferences",
                json!({"x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "uid", "x-kubernetes-patch-strategy": "merge"}),
            ),
            (meta("ObjectMeta"), "labels", Value::Null),
            (
                "io.k8s.api.apps.v1.DeploymentSpec".into(),
                "strategy",
                json!({"x-kubernetes-patch-strategy": "retainKeys"}),
            ),
            (
                "io.k8s.api.apps.v1.DeploymentStatus".into(),
                "conditions",
                json!({"x-kubernetes-list-map-keys": ["type"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "type", "x-kubernetes-patch-strategy": "merge"}),
            ),
            (
                "io.k8s.api.policy.v1.PodDisruptionBudgetSpec".into(),
                "selector",
                json!({"x-kubernetes-patch-strategy": "replace"}),
            ),
            (
                "io.k8s.api.rbac.v1.ClusterRole".into(),
                "rules",
                json!({"x-kubernetes-list-type": "atomic"}),
            ),
            (
                "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps".into(),
                "x-kubernetes-validations",
                json!({"x-kubernetes-list-map-keys": ["rule"], "x-kubernetes-list-type": "map",
                    "x-kubernetes-patch-merge-key": "rule", "x-kubernetes-patch-strategy": "merge"}),
            ),
            (core("PodSpec"), "nope", Value::Null),
            (core("Nope"), "containers", Value::Null),
        ];
        for (definition, property, expected) in cases {
            assert_eq!(
                &ext(definition, property),
                expected,
                "{definition}.{property}"
            );
        }
        assert_eq!(
            definition_extensions("io.k8s.api.core.v1.LocalObjectReference"),
            json!({"x-kubernetes-map-type": "atomic"})
                .as_object()
                .cloned()
        );
        assert_eq!(definition_extensions("io.k8s.api.core.v1.PodSpec"), None);
    }

    #[test]
    fn navigation_follows_objects_arrays_and_maps() {
        let deployment = root_definition("apps", "v1", "Deployment").unwrap();
        let env = deployment
            .shape_at(&["spec", "template", "spec", "containers", "env"])
            .unwrap();
        assert_eq!(
            env.item().and_then(Shape::definition).map(Definition::name),
            Some("io.k8s.api.core.v1.EnvVar")
        );
        let containers = Definition::named("io.k8s.api.core.v1.PodSpec")
            .unwrap()
            .field("containers")
            .unwrap();
        assert_eq!(containers.meta().merge_key, Some("name"));
        assert_eq!(
            deployment.shape_at(&["metadata", "labels", "app"]),
            Some(&Shape::Scalar)
        );
        assert_eq!(
            deployment.shape_at(&[
                "spec",
                "template",
                "spec",
                "containers",
                "resources",
                "limits"
            ]),
            Some(&Shape::Map(Box::new(Shape::Scalar)))
        );
        assert_eq!(deployment.shape_at(&["spec", "nope"]), None);
        let crd =
            root_definition("apiextensions.k8s.io", "v1", "CustomResourceDefinition").unwrap();
        let props = crd
            .shape_at(&[
                "spec",
                "versions",
                "schema",
                "openAPIV3Schema",
                "properties",
                "spec",
            ])
            .and_then(Shape::definition)
            .unwrap();
        assert_eq!(
            props.name(),
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"
        );
        assert_eq!(
            props.field("default").map(Field::shape),
            Some(&Shape::Untyped)
        );
    }

    #[test]
    fn annotate_definitions_adds_the_extensions() {
        let mut generator = SchemaGenerator::default();
        generator.subschema_for::<k8s_openapi::api::core::v1::Pod>();
        let mut definitions = generator.take_definitions(false);
        annotate_definitions(&mut definitions);
        let containers = &definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["type"], "array");
        assert_eq!(
            definitions["io.k8s.api.core.v1.LocalObjectReference"]["x-kubernetes-map-type"],
            "atomic"
        );
        assert!(
            definitions["io.k8s.api.core.v1.PodSpec"]["properties"]["hostname"]
                .get("x-kubernetes-patch-strategy")
                .is_none()
        );
    }
}
