//! Server-side table printing: the `meta.k8s.io/v1` `Table` that `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! Built-in kinds get the columns and cells of Kubernetes' own printers
//! (`pkg/printers/internalversion`), so `kubectl get` and `-o wide` print exactly what users know;
//! custom resources get their CRD `additionalPrinterColumns`; every other kind gets Kubernetes'
//! default `Name` / `Created At` table. Like the Kubernetes server, cells are computed for every
//! column, including the `priority: 1` ones only `-o wide` shows: kubectl hides those itself.
//!
//! Objects are JSON in the version they are served in; `now` is passed in so ages are
//! deterministic.

mod docs;
mod jsonpath;
mod quantity;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::selector::LabelSelector;
use jsonpath::JsonPath;
use quantity::{canonical as quantity, canonical_or_nil as quantity_or_nil};

/// One column of a table, serialized as a `meta.k8s.io/v1` `TableColumnDefinition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnDefinition {
    pub name: String,
    /// OpenAPI type of the cells: `string`, `integer`, `number`, `boolean` or `date`.
    #[serde(rename = "type")]
    pub column_type: String,
    /// OpenAPI format; `name` marks the column holding the object name.
    pub format: String,
    pub description: String,
    /// 0 for the default columns; higher ones are printed only with `-o wide`.
    pub priority: i32,
}

impl ColumnDefinition {
    /// The JSON form (every field present, as Kubernetes sends it).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.column_type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The columns of a built-in kind (`group` is "" for the core group), or the default
/// `Name` / `Created At` pair for kinds Kubernetes has no printer for.
pub fn columns(group: &str, kind: &str) -> Vec<ColumnDefinition> {
    let cols = printer(group, kind).map_or(DEFAULT_COLUMNS, |(cols, _)| cols);
    cols.iter().map(Col::definition).collect()
}

/// The cells of one object, one per column of [`columns`] for the same kind.
pub fn cells(group: &str, kind: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    match printer(group, kind) {
        Some((_, cells)) => cells(obj, now),
        None => default_cells(obj),
    }
}

/// The columns of a custom resource from its CRD version's `additionalPrinterColumns`: `Name`
/// first, then each column; a lone `Age` column when the CRD declares none.
pub fn custom_columns(additional_printer_columns: &[Value]) -> Vec<ColumnDefinition> {
    let mut out = vec![NAME.definition()];
    if additional_printer_columns.is_empty() {
        out.push(CUSTOM_AGE.definition());
        return out;
    }
    for column in additional_printer_columns {
        let json_path = text(column, "/jsonPath");
        let description = match text(column, "/description") {
            "" => format!("Custom resource definition column (in JSONPath format): {json_path}"),
            given => given.to_string(),
        };
        out.push(ColumnDefinition {
            name: text(column, "/name").to_string(),
            column_type: text(column, "/type").to_string(),
            format: text(column, "/format").to_string(),
            description,
            priority: i32::try_from(int(column, "/priority")).unwrap_or(0),
        });
    }
    out
}

/// The cells of a custom resource for [`custom_columns`] of the same `additionalPrinterColumns`.
pub fn custom_cells(
    additional_printer_columns: &[Value],
    obj: &Value,
    now: Timestamp,
) -> Vec<Value> {
    let mut out = vec![Value::from(crate::meta::name(obj))];
    if additional_printer_columns.is_empty() {
        out.push(custom_cell("date", ".metadata.creationTimestamp", obj, now));
        return out;
    }
    for column in additional_printer_columns {
        out.push(custom_cell(
            text(column, "/type"),
            text(column, "/jsonPath"),
            obj,
            now,
        ));
    }
    out
}

/// A whole `meta.k8s.io/v1` `Table`. Each row is its cells and the object to embed: pass
/// [`partial_object_metadata`] of the object for the default `includeObject=Metadata`, the full
/// object for `includeObject=Object`, or `null` for `includeObject=None`.
pub fn table(
    columns: Vec<ColumnDefinition>,
    rows: Vec<(Vec<Value>, Value)>,
    resource_version: &str,
) -> Value {
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), resource_version.into());
    }
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(cells, object)| json!({"cells": cells, "object": object}))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns.iter().map(ColumnDefinition::to_json).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// The `PartialObjectMetadata` a table row carries by default: the object's whole metadata
/// (kubectl reads the namespace and labels from it).
pub fn partial_object_metadata(obj: &Value) -> Value {
    let metadata = obj
        .get("metadata")
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    })
}

/// Kubernetes' `duration.HumanDuration`: about two significant figures ("5s", "119s", "2m3s",
/// "10m", "179m", "3h4m", "47h", "2d1h", "729d", "2y100d", "8y"). Up to one second in the future
/// reads "0s" (clock skew); further is "<invalid>".
pub fn human_duration(d: SignedDuration) -> String {
    const SECOND: i128 = 1_000_000_000;
    let nanos = d.as_nanos();
    let seconds = nanos / SECOND;
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / (60 * SECOND);
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / (3600 * SECOND);
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

// ---------------------------------------------------------------------------------------------
// Column definitions

/// A column definition known at compile time.
#[derive(Clone, Copy)]
struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

impl Col {
    fn definition(&self) -> ColumnDefinition {
        ColumnDefinition {
            name: self.name.into(),
            column_type: self.ty.into(),
            format: self.format.into(),
            description: self.description.into(),
            priority: self.priority,
        }
    }
}

const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        description,
        priority: 0,
    }
}

/// A column shown only with `-o wide`.
const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Col {
    Col {
        priority: 1,
        ..col(name, ty, description)
    }
}

const NAME: Col = Col {
    format: "name",
    ..col("Name", "string", docs::META_NAME)
};
const AGE: Col = col("Age", "string", docs::META_CREATION);
const CONTAINERS: Col = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Col = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

/// What the Kubernetes server sends for resources without a printer.
const DEFAULT_COLUMNS: &[Col] = &[NAME, col("Created At", "date", docs::META_CREATION)];

/// The column a CRD without `additionalPrinterColumns` gets (`.metadata.creationTimestamp`).
const CUSTOM_AGE: Col = col("Age", "date", docs::META_CREATION);

const NAMESPACE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

const POD_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last \
         container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", docs::POD_IP),
    wide("Node", "string", docs::POD_NODE_NAME),
    wide("Nominated Node", "string", docs::POD_NOMINATED_NODE),
    wide("Readiness Gates", "string", docs::POD_READINESS_GATES),
];

const POD_TEMPLATE_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    col("Pod Labels", "string", "The labels for the pod template."),
];

const SERVICE_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", docs::SVC_TYPE),
    col("Cluster-IP", "string", docs::SVC_CLUSTER_IP),
    col("External-IP", "string", docs::SVC_EXTERNAL_IPS),
    col("Port(s)", "string", docs::SVC_PORTS),
    AGE,
    wide("Selector", "string", docs::SVC_SELECTOR),
];

const ENDPOINTS_COLUMNS: &[Col] = &[NAME, col("Endpoints", "string", docs::EP_SUBSETS), AGE];

const CONFIG_MAP_COLUMNS: &[Col] = &[NAME, col("Data", "string", docs::CM_DATA), AGE];

const SECRET_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", docs::SECRET_TYPE),
    col("Data", "string", docs::SECRET_DATA),
    AGE,
];

const SERVICE_ACCOUNT_COLUMNS: &[Col] = &[NAME, col("Secrets", "string", docs::SA_SECRETS), AGE];

const EVENT_COLUMNS: &[Col] = &[
    col("Last Seen", "string", docs::EV_LAST),
    col("Type", "string", docs::EV_TYPE),
    col("Reason", "string", docs::EV_REASON),
    col("Object", "string", docs::EV_OBJECT),
    wide("Subobject", "string", docs::REF_FIELD_PATH),
    wide("Source", "string", docs::EV_SOURCE),
    col("Message", "string", docs::EV_MESSAGE),
    wide("First Seen", "string", docs::EV_FIRST),
    wide("Count", "string", docs::EV_COUNT),
    Col {
        priority: 1,
        ..NAME
    },
];

const NODE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", docs::NODE_KUBELET),
    wide("Internal-IP", "string", docs::NODE_ADDRESSES),
    wide("External-IP", "string", docs::NODE_ADDRESSES),
    wide("OS-Image", "string", docs::NODE_OS_IMAGE),
    wide("Kernel-Version", "string", docs::NODE_KERNEL),
    wide("Container-Runtime", "string", docs::NODE_RUNTIME),
];

const PERSISTENT_VOLUME_COLUMNS: &[Col] = &[
    NAME,
    col("Capacity", "string", docs::PV_CAPACITY),
    col("Access Modes", "string", docs::PV_ACCESS_MODES),
    col("Reclaim Policy", "string", docs::PV_RECLAIM),
    col("Status", "string", docs::PV_PHASE),
    col("Claim", "string", docs::PV_CLAIM),
    col("StorageClass", "string", "StorageClass of the pv"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    col("Reason", "string", docs::PV_REASON),
    AGE,
    wide("VolumeMode", "string", docs::PV_VOLUME_MODE),
];

const PERSISTENT_VOLUME_CLAIM_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", docs::PVC_PHASE),
    col("Volume", "string", docs::PVC_VOLUME),
    col("Capacity", "string", docs::PVC_CAPACITY),
    col("Access Modes", "string", docs::PVC_ACCESS_MODES),
    col("StorageClass", "string", "StorageClass of the pvc"),
    col(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    wide("VolumeMode", "string", docs::PVC_VOLUME_MODE),
];

const RESOURCE_QUOTA_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Request",
        "string",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
    ),
    col(
        "Limit",
        "string",
        "Limits control the maximum amount of cpu/memory that a container may use independent \
         of contention on the node.",
    ),
    AGE,
];

const DEPLOYMENT_COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", docs::DEPLOY_UPDATED),
    col("Available", "string", docs::DEPLOY_AVAILABLE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", docs::DEPLOY_SELECTOR),
];

const REPLICA_SET_COLUMNS: &[Col] = &[
    NAME,
    col("Desired", "integer", docs::RS_SPEC_REPLICAS),
    col("Current", "integer", docs::RS_STATUS_REPLICAS),
    col("Ready", "integer", docs::RS_READY),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", docs::RS_SELECTOR),
];

const STATEFUL_SET_COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

const DAEMON_SET_COLUMNS: &[Col] = &[
    NAME,
    col("Desired", "integer", docs::DS_DESIRED),
    col("Current", "integer", docs::DS_CURRENT),
    col("Ready", "integer", docs::DS_READY),
    col("Up-to-date", "integer", docs::DS_UPDATED),
    col("Available", "integer", docs::DS_AVAILABLE),
    col("Node Selector", "string", docs::POD_NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", docs::DS_SELECTOR),
];

const CONTROLLER_REVISION_COLUMNS: &[Col] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col("Revision", "string", docs::CR_REVISION),
    AGE,
];

const JOB_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", docs::JOB_SUCCEEDED),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", docs::JOB_SELECTOR),
];

const CRON_JOB_COLUMNS: &[Col] = &[
    NAME,
    col("Schedule", "string", docs::CJ_SCHEDULE),
    col("Timezone", "string", docs::CJ_TIMEZONE),
    col("Suspend", "boolean", docs::CJ_SUSPEND),
    col("Active", "integer", docs::CJ_ACTIVE),
    col("Last Schedule", "string", docs::CJ_LAST_SCHEDULE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", docs::JOB_SELECTOR),
];

const HPA_COLUMNS: &[Col] = &[
    NAME,
    col("Reference", "string", docs::HPA_REF),
    col("Targets", "string", docs::HPA_METRICS),
    col("MinPods", "string", docs::HPA_MIN),
    col("MaxPods", "string", docs::HPA_MAX),
    col("Replicas", "string", docs::HPA_CURRENT),
    AGE,
];

const INGRESS_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    col(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    col(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

const INGRESS_CLASS_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    col(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

const NETWORK_POLICY_COLUMNS: &[Col] = &[
    NAME,
    col("Pod-Selector", "string", docs::NETPOL_POD_SELECTOR),
    AGE,
];

const LEASE_COLUMNS: &[Col] = &[NAME, col("Holder", "string", docs::LEASE_HOLDER), AGE];

const ENDPOINT_SLICE_COLUMNS: &[Col] = &[
    NAME,
    col("AddressType", "string", docs::ES_ADDRESS_TYPE),
    col("Ports", "string", docs::ES_PORTS),
    col("Endpoints", "string", docs::ES_ENDPOINTS),
    AGE,
];

const PDB_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    col(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

const PRIORITY_CLASS_COLUMNS: &[Col] = &[
    NAME,
    col("Value", "integer", docs::PC_VALUE),
    col("Global-Default", "boolean", docs::PC_GLOBAL_DEFAULT),
    AGE,
    col("PreemptionPolicy", "string", docs::PC_PREEMPTION),
];

const STORAGE_CLASS_COLUMNS: &[Col] = &[
    NAME,
    col("Provisioner", "string", docs::SC_PROVISIONER),
    col("ReclaimPolicy", "string", docs::SC_RECLAIM),
    col("VolumeBindingMode", "string", docs::SC_BINDING_MODE),
    col("AllowVolumeExpansion", "string", docs::SC_EXPANSION),
    AGE,
];

const ROLE_BINDING_COLUMNS: &[Col] = &[
    NAME,
    col("Role", "string", docs::RB_ROLE_REF),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    ),
];

const CLUSTER_ROLE_BINDING_COLUMNS: &[Col] = &[
    NAME,
    col("Role", "string", docs::CRB_ROLE_REF),
    AGE,
    wide("Users", "string", "Users in the clusterRoleBinding"),
    wide("Groups", "string", "Groups in the clusterRoleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    ),
];

type CellsFn = fn(&Value, Timestamp) -> Vec<Value>;

/// The printer of a built-in kind. Kinds Kubernetes prints with its default table (roles,
/// cluster roles, limit ranges, CRDs...) have none.
fn printer(group: &str, kind: &str) -> Option<(&'static [Col], CellsFn)> {
    let found: (&'static [Col], CellsFn) = match (group, kind) {
        ("", "Namespace") => (NAMESPACE_COLUMNS, namespace_cells),
        ("", "Pod") => (POD_COLUMNS, pod_cells),
        ("", "PodTemplate") => (POD_TEMPLATE_COLUMNS, pod_template_cells),
        ("", "Service") => (SERVICE_COLUMNS, service_cells),
        ("", "Endpoints") => (ENDPOINTS_COLUMNS, endpoints_cells),
        ("", "ConfigMap") => (CONFIG_MAP_COLUMNS, config_map_cells),
        ("", "Secret") => (SECRET_COLUMNS, secret_cells),
        ("", "ServiceAccount") => (SERVICE_ACCOUNT_COLUMNS, service_account_cells),
        ("", "Event") | ("events.k8s.io", "Event") => (EVENT_COLUMNS, event_cells),
        ("", "Node") => (NODE_COLUMNS, node_cells),
        ("", "PersistentVolume") => (PERSISTENT_VOLUME_COLUMNS, persistent_volume_cells),
        ("", "PersistentVolumeClaim") => (PERSISTENT_VOLUME_CLAIM_COLUMNS, pvc_cells),
        ("", "ResourceQuota") => (RESOURCE_QUOTA_COLUMNS, resource_quota_cells),
        ("apps", "Deployment") => (DEPLOYMENT_COLUMNS, deployment_cells),
        ("apps", "ReplicaSet") => (REPLICA_SET_COLUMNS, replica_set_cells),
        ("apps", "StatefulSet") => (STATEFUL_SET_COLUMNS, stateful_set_cells),
        ("apps", "DaemonSet") => (DAEMON_SET_COLUMNS, daemon_set_cells),
        ("apps", "ControllerRevision") => (CONTROLLER_REVISION_COLUMNS, controller_revision_cells),
        ("batch", "Job") => (JOB_COLUMNS, job_cells),
        ("batch", "CronJob") => (CRON_JOB_COLUMNS, cron_job_cells),
        ("autoscaling", "HorizontalPodAutoscaler") => (HPA_COLUMNS, hpa_cells),
        ("networking.k8s.io", "Ingress") => (INGRESS_COLUMNS, ingress_cells),
        ("networking.k8s.io", "IngressClass") => (INGRESS_CLASS_COLUMNS, ingress_class_cells),
        ("networking.k8s.io", "NetworkPolicy") => (NETWORK_POLICY_COLUMNS, network_policy_cells),
        ("coordination.k8s.io", "Lease") => (LEASE_COLUMNS, lease_cells),
        ("discovery.k8s.io", "EndpointSlice") => (ENDPOINT_SLICE_COLUMNS, endpoint_slice_cells),
        ("policy", "PodDisruptionBudget") => (PDB_COLUMNS, pdb_cells),
        ("scheduling.k8s.io", "PriorityClass") => (PRIORITY_CLASS_COLUMNS, priority_class_cells),
        ("storage.k8s.io", "StorageClass") => (STORAGE_CLASS_COLUMNS, storage_class_cells),
        ("rbac.authorization.k8s.io", "RoleBinding") => (ROLE_BINDING_COLUMNS, role_binding_cells),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            (CLUSTER_ROLE_BINDING_COLUMNS, role_binding_cells)
        }
        _ => return None,
    };
    Some(found)
}

// ---------------------------------------------------------------------------------------------
// Reading objects

/// The value at a JSON pointer, treating `null` as absent.
fn get<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|v| !v.is_null())
}

/// A string field, "" when absent.
fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    get(v, pointer).and_then(Value::as_str).unwrap_or("")
}

/// An integer field, 0 when absent.
fn int(v: &Value, pointer: &str) -> i64 {
    get(v, pointer)
        .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)))
        .unwrap_or(0)
}

fn flag(v: &Value, pointer: &str) -> bool {
    get(v, pointer).and_then(Value::as_bool).unwrap_or(false)
}

fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    get(v, pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn map_len(v: &Value, pointer: &str) -> usize {
    get(v, pointer)
        .and_then(Value::as_object)
        .map_or(0, Map::len)
}

/// A `metav1.Time` / `MicroTime` field; the Go zero time counts as absent.
fn time(v: &Value, pointer: &str) -> Option<Timestamp> {
    const GO_ZERO_TIME: i64 = -62_135_596_800;
    let ts: Timestamp = get(v, pointer)?.as_str()?.parse().ok()?;
    (ts.as_second() != GO_ZERO_TIME || ts.subsec_nanosecond() != 0).then_some(ts)
}

/// `translateTimestampSince`: the age of a timestamp, "<unknown>" when unset.
fn since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(ts) => human_duration(now.duration_since(ts)),
        None => "<unknown>".into(),
    }
}

fn age(obj: &Value, now: Timestamp) -> Value {
    since(time(obj, "/metadata/creationTimestamp"), now).into()
}

fn name(obj: &Value) -> Value {
    crate::meta::name(obj).into()
}

fn or_else<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.is_empty() { fallback } else { s }
}

/// `labels.FormatLabels`: sorted `k=v` pairs, "<none>" when empty.
fn format_labels(labels: Option<&Value>) -> String {
    let mut pairs: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

/// `LabelSelectorAsSelector(s).String()`: requirements sorted by key; "" for a missing or empty
/// selector, an error for an invalid one.
fn selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    let mut parsed = LabelSelector::from_object(selector).map_err(|_| ())?;
    parsed.requirements.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(parsed.to_string())
}

/// `metav1.FormatLabelSelector`: "<none>" when empty, "<error>" when invalid.
fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".into(),
        Ok(s) => s,
        Err(()) => "<error>".into(),
    }
}

/// `layoutContainerCells`: container names and images, comma-separated.
fn containers_and_images(containers: &[Value]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    (names.join(",").into(), images.join(",").into())
}

/// Whether a condition of the given type is the first of its type and has status True.
fn condition_true(status: &Value, condition_type: &str) -> bool {
    items(status, "/conditions")
        .iter()
        .find(|c| text(c, "/type") == condition_type)
        .is_some_and(|c| text(c, "/status") == "True")
}

/// A sorted, de-duplicated comma list of load-balancer ingress IPs (or hostnames).
fn load_balancer_addresses(ingress: &[Value]) -> String {
    let mut addresses: Vec<&str> = ingress
        .iter()
        .map(|i| or_else(text(i, "/ip"), text(i, "/hostname")))
        .filter(|a| !a.is_empty())
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    addresses.join(",")
}

/// `listWithMoreString`: up to three entries, then "+ N more...".
fn list_with_more(all: Vec<String>, max: usize) -> String {
    let count = all.len();
    let shown = all[..count.min(max)].join(",");
    if count > max {
        format!("{shown} + {} more...", count - max)
    } else if shown.is_empty() {
        "<unset>".into()
    } else {
        shown
    }
}

// ---------------------------------------------------------------------------------------------
// Printers, in the order of Kubernetes' printers.go where practical

fn default_cells(obj: &Value) -> Vec<Value> {
    let created = time(obj, "/metadata/creationTimestamp").map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        crate::meta::format_time,
    );
    vec![name(obj), created.into()]
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let status = pod.get("status").unwrap_or(&Value::Null);
    let init_specs = items(spec, "/initContainers");
    // Sidecars (init containers with restartPolicy Always) count as regular containers.
    let is_sidecar = |c: &Value| text(c, "/restartPolicy") == "Always";
    let sidecar_named = |name: &str| {
        init_specs
            .iter()
            .any(|c| text(c, "/name") == name && is_sidecar(c))
    };
    let total =
        items(spec, "/containers").len() + init_specs.iter().filter(|c| is_sidecar(c)).count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;
    let later = |current: &mut Option<Timestamp>, candidate: Option<Timestamp>| {
        if candidate > *current {
            *current = candidate;
        }
    };
    let last_finished = |cs: &Value| time(cs, "/lastState/terminated/finishedAt");

    let phase = text(status, "/phase");
    let mut reason = or_else(text(status, "/reason"), phase).to_string();
    if items(status, "/conditions")
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let mut initializing = false;
    for (i, cs) in items(status, "/initContainerStatuses").iter().enumerate() {
        let count = int(cs, "/restartCount");
        restarts += count;
        later(&mut last_restart, last_finished(cs));
        let sidecar = sidecar_named(text(cs, "/name"));
        if sidecar {
            sidecar_restarts += count;
            later(&mut last_sidecar_restart, last_finished(cs));
        }
        let terminated = get(cs, "/state/terminated");
        let waiting_reason = get(cs, "/state/waiting").map_or("", |w| text(w, "/reason"));
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && flag(cs, "/started") {
            if flag(cs, "/ready") {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match text(t, "/reason") {
                "" if int(t, "/signal") != 0 => format!("Init:Signal:{}", int(t, "/signal")),
                "" => format!("Init:ExitCode:{}", int(t, "/exitCode")),
                r => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    if !initializing || condition_true(status, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in items(status, "/containerStatuses").iter().rev() {
            restarts += int(cs, "/restartCount");
            later(&mut last_restart, last_finished(cs));
            let waiting_reason = get(cs, "/state/waiting").map_or("", |w| text(w, "/reason"));
            let terminated = get(cs, "/state/terminated");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.into();
            } else if let Some(t) = terminated {
                reason = match text(t, "/reason") {
                    "" if int(t, "/signal") != 0 => format!("Signal:{}", int(t, "/signal")),
                    "" => format!("ExitCode:{}", int(t, "/exitCode")),
                    r => r.into(),
                };
            } else if flag(cs, "/ready") && get(cs, "/state/running").is_some() {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed but another still runs is still running.
        if reason == "Completed" && has_running {
            reason = if condition_true(status, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if crate::meta::deletion_timestamp(pod).is_some() {
        if text(status, "/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts_cell = match last_restart {
        Some(at) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(at), now)),
        _ => restarts.to_string(),
    };

    let ip = or_else(
        or_else(text(status, "/podIPs/0/ip"), text(status, "/podIP")),
        "<none>",
    );
    let gates = items(spec, "/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let passing = gates
            .iter()
            .filter(|g| condition_true(status, text(g, "/conditionType")))
            .count();
        format!("{passing}/{}", gates.len())
    };

    vec![
        name(pod),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_cell.into(),
        age(pod, now),
        ip.into(),
        or_else(text(spec, "/nodeName"), "<none>").into(),
        or_else(text(status, "/nominatedNodeName"), "<none>").into(),
        readiness_gates.into(),
    ]
}

fn pod_template_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let (names, images) = containers_and_images(items(obj, "/template/spec/containers"));
    vec![
        name(obj),
        names,
        images,
        format_labels(get(obj, "/template/metadata/labels")).into(),
    ]
}

fn pdb_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let int_or_string = |pointer: &str| match get(obj, pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    };
    vec![
        name(obj),
        int_or_string("/spec/minAvailable").into(),
        int_or_string("/spec/maxUnavailable").into(),
        int(obj, "/status/disruptionsAllowed").into(),
        age(obj, now),
    ]
}

/// `spec.replicas` of a workload; the API server defaults a missing one to 1.
fn desired_replicas(obj: &Value) -> i64 {
    get(obj, "/spec/replicas").map_or(1, |_| int(obj, "/spec/replicas"))
}

fn replica_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers_and_images(items(obj, "/spec/template/spec/containers"));
    vec![
        name(obj),
        desired_replicas(obj).into(),
        int(obj, "/status/replicas").into(),
        int(obj, "/status/readyReplicas").into(),
        age(obj, now),
        names,
        images,
        format_label_selector(get(obj, "/spec/selector")).into(),
    ]
}

fn job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(obj, "/status/succeeded");
    let completions = match get(obj, "/spec/completions") {
        Some(_) => format!("{succeeded}/{}", int(obj, "/spec/completions")),
        None => match int(obj, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time(obj, "/status/startTime"),
        time(obj, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now.duration_since(start)),
        (Some(start), Some(end)) => human_duration(end.duration_since(start)),
    };
    let status = obj.get("status").unwrap_or(&Value::Null);
    let job_condition = |t: &str| condition_true(status, t);
    let state = if job_condition("Complete") {
        "Complete"
    } else if job_condition("Failed") {
        "Failed"
    } else if crate::meta::deletion_timestamp(obj).is_some() {
        "Terminating"
    } else if job_condition("Suspended") {
        "Suspended"
    } else if job_condition("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = containers_and_images(items(obj, "/spec/template/spec/containers"));
    vec![
        name(obj),
        state.into(),
        completions.into(),
        duration.into(),
        age(obj, now),
        names,
        images,
        format_label_selector(get(obj, "/spec/selector")).into(),
    ]
}

fn cron_job_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = match time(obj, "/status/lastScheduleTime") {
        Some(at) => since(Some(at), now),
        None => "<none>".into(),
    };
    let suspend = match get(obj, "/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let template = get(obj, "/spec/jobTemplate").unwrap_or(&Value::Null);
    let (names, images) = containers_and_images(items(template, "/spec/template/spec/containers"));
    vec![
        name(obj),
        text(obj, "/spec/schedule").into(),
        or_else(text(obj, "/spec/timeZone"), "<none>").into(),
        suspend.into(),
        (items(obj, "/status/active").len() as i64).into(),
        last_schedule.into(),
        age(obj, now),
        names,
        images,
        format_label_selector(get(template, "/spec/selector")).into(),
    ]
}

/// `getServiceExternalIP` for the wide (untruncated) output the server always produces.
fn service_external_ip(spec: &Value, status: &Value, service_type: &str) -> String {
    let external: Vec<&str> = items(spec, "/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match service_type {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".into(),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(items(status, "/loadBalancer/ingress"));
            if !external.is_empty() {
                let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
                all.extend(external);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".into()
            }
        }
        "ExternalName" => text(spec, "/externalName").into(),
        _ => "<unknown>".into(),
    }
}

fn service_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let status = obj.get("status").unwrap_or(&Value::Null);
    // The API server defaults the type; an object that skipped defaulting reads as ClusterIP.
    let service_type = or_else(text(spec, "/type"), "ClusterIP");
    let cluster_ip = or_else(
        or_else(text(spec, "/clusterIPs/0"), text(spec, "/clusterIP")),
        "<none>",
    );
    let ports: Vec<String> = items(spec, "/ports")
        .iter()
        .map(|p| {
            let protocol = or_else(text(p, "/protocol"), "TCP");
            match int(p, "/nodePort") {
                node_port if node_port > 0 => {
                    format!("{}:{node_port}/{protocol}", int(p, "/port"))
                }
                _ => format!("{}/{protocol}", int(p, "/port")),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    };
    vec![
        name(obj),
        service_type.into(),
        cluster_ip.into(),
        service_external_ip(spec, status, service_type).into(),
        ports.into(),
        age(obj, now),
        format_labels(get(spec, "/selector")).into(),
    ]
}

fn ingress_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let rules = items(obj, "/spec/rules");
    let max = 3;
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == max {
            more = true;
        }
        let host = text(rule, "/host");
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - max)
    } else {
        hosts.join(",")
    };
    let ports = if items(obj, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj),
        or_else(text(obj, "/spec/ingressClassName"), "<none>").into(),
        hosts.into(),
        load_balancer_addresses(items(obj, "/status/loadBalancer/ingress")).into(),
        ports.into(),
        age(obj, now),
    ]
}

fn ingress_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match get(obj, "/spec/parameters") {
        Some(p) => {
            let mut kind = text(p, "/kind").to_string();
            if let Some(group) = get(p, "/apiGroup").and_then(Value::as_str) {
                kind = format!("{kind}.{group}");
            }
            format!("{kind}/{}", text(p, "/name"))
        }
        None => "<none>".into(),
    };
    vec![
        name(obj),
        text(obj, "/spec/controller").into(),
        parameters.into(),
        age(obj, now),
    ]
}

fn stateful_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers_and_images(items(obj, "/spec/template/spec/containers"));
    vec![
        name(obj),
        format!(
            "{}/{}",
            int(obj, "/status/readyReplicas"),
            desired_replicas(obj)
        )
        .into(),
        age(obj, now),
        names,
        images,
    ]
}

fn daemon_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers_and_images(items(obj, "/spec/template/spec/containers"));
    vec![
        name(obj),
        int(obj, "/status/desiredNumberScheduled").into(),
        int(obj, "/status/currentNumberScheduled").into(),
        int(obj, "/status/numberReady").into(),
        int(obj, "/status/updatedNumberScheduled").into(),
        int(obj, "/status/numberAvailable").into(),
        format_labels(get(obj, "/spec/template/spec/nodeSelector")).into(),
        age(obj, now),
        names,
        images,
        format_label_selector(get(obj, "/spec/selector")).into(),
    ]
}

/// `formatEndpoints`: up to three `ip:port` pairs (bare IPs for port-less subsets).
fn endpoints_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let subsets = items(obj, "/subsets");
    let cell = if subsets.is_empty() {
        "<none>".to_string()
    } else {
        let max = 3;
        let mut list: Vec<String> = Vec::new();
        let mut count = 0;
        for subset in subsets {
            let addresses = items(subset, "/addresses");
            let ports = items(subset, "/ports");
            let targets: Vec<Option<i64>> = if ports.is_empty() {
                vec![None]
            } else {
                ports.iter().map(|p| Some(int(p, "/port"))).collect()
            };
            for port in targets {
                count += addresses.len();
                for address in addresses {
                    if list.len() == max {
                        break;
                    }
                    let ip = text(address, "/ip");
                    list.push(match port {
                        None => ip.to_string(),
                        Some(port) if ip.contains(':') => format!("[{ip}]:{port}"),
                        Some(port) => format!("{ip}:{port}"),
                    });
                }
            }
        }
        if count > max {
            format!("{} + {} more...", list.join(","), count - max)
        } else {
            list.join(",")
        }
    };
    vec![name(obj), cell.into(), age(obj, now)]
}

fn endpoint_slice_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let ports: Vec<String> = items(obj, "/ports")
        .iter()
        .map(
            |p| match (get(p, "/port"), get(p, "/name").and_then(Value::as_str)) {
                (Some(_), _) => int(p, "/port").to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => "*".into(),
            },
        )
        .collect();
    let addresses: Vec<String> = items(obj, "/endpoints")
        .iter()
        .flat_map(|e| items(e, "/addresses"))
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect();
    vec![
        name(obj),
        text(obj, "/addressType").into(),
        list_with_more(ports, 3).into(),
        list_with_more(addresses, 3).into(),
        age(obj, now),
    ]
}

fn namespace_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), text(obj, "/status/phase").into(), age(obj, now)]
}

fn secret_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, "/type").into(),
        (map_len(obj, "/data") as i64).into(),
        age(obj, now),
    ]
}

fn service_account_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        (items(obj, "/secrets").len() as i64).into(),
        age(obj, now),
    ]
}

fn node_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let status = obj.get("status").unwrap_or(&Value::Null);
    // The last condition of a type wins, as in the Go map Kubernetes builds.
    let ready = items(status, "/conditions")
        .iter()
        .rev()
        .find(|c| text(c, "/type") == "Ready");
    let mut state = vec![match ready {
        Some(c) if text(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if flag(obj, "/spec/unschedulable") {
        state.push("SchedulingDisabled");
    }

    let mut roles: Vec<&str> = crate::meta::labels(obj)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                (!role.is_empty()).then_some(role)
            } else if key == "kubernetes.io/role" {
                value.as_str().filter(|v| !v.is_empty())
            } else {
                None
            }
        })
        .collect();
    roles.sort_unstable();
    roles.dedup();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };

    let address = |address_type: &str| -> Value {
        items(status, "/addresses")
            .iter()
            .find(|a| text(a, "/type") == address_type)
            .map_or("<none>", |a| text(a, "/address"))
            .into()
    };
    let info = |field: &str| -> Value {
        or_else(text(status, &format!("/nodeInfo/{field}")), "<unknown>").into()
    };
    vec![
        name(obj),
        state.join(",").into(),
        roles.into(),
        age(obj, now),
        text(status, "/nodeInfo/kubeletVersion").into(),
        address("InternalIP"),
        address("ExternalIP"),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ]
}

/// `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order, each once.
fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The storage class of a volume or claim: the beta annotation wins over the field.
fn storage_class(obj: &Value) -> &str {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| text(obj, "/spec/storageClassName"))
}

fn persistent_volume_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let claim = match get(obj, "/spec/claimRef") {
        Some(c) => format!("{}/{}", text(c, "/namespace"), text(c, "/name")),
        None => String::new(),
    };
    let phase = if crate::meta::deletion_timestamp(obj).is_some() {
        "Terminating"
    } else {
        text(obj, "/status/phase")
    };
    vec![
        name(obj),
        quantity(get(obj, "/spec/capacity/storage").unwrap_or(&Value::Null)).into(),
        access_modes(items(obj, "/spec/accessModes")).into(),
        text(obj, "/spec/persistentVolumeReclaimPolicy").into(),
        phase.into(),
        claim.into(),
        storage_class(obj).into(),
        or_else(text(obj, "/spec/volumeAttributesClassName"), "<unset>").into(),
        text(obj, "/status/reason").into(),
        age(obj, now),
        or_else(text(obj, "/spec/volumeMode"), "<unset>").into(),
    ]
}

fn pvc_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let phase = if crate::meta::deletion_timestamp(obj).is_some() {
        "Terminating"
    } else {
        text(obj, "/status/phase")
    };
    let volume = text(obj, "/spec/volumeName");
    // Capacity and access modes are only meaningful once the claim is bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(get(obj, "/status/capacity/storage").unwrap_or(&Value::Null)),
            access_modes(items(obj, "/status/accessModes")),
        )
    };
    vec![
        name(obj),
        phase.into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        storage_class(obj).into(),
        or_else(text(obj, "/spec/volumeAttributesClassName"), "<unset>").into(),
        age(obj, now),
        or_else(text(obj, "/spec/volumeMode"), "<unset>").into(),
    ]
}

/// Core events (`involvedObject`, `firstTimestamp`...) and `events.k8s.io` events (`regarding`,
/// `deprecatedFirstTimestamp`...) print the same way.
fn event_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let new_shape = text(obj, "/apiVersion").starts_with("events.k8s.io/")
        || (obj.get("involvedObject").is_none() && obj.get("regarding").is_some());
    let field = |core: &'static str, events_v1: &'static str| {
        if new_shape { events_v1 } else { core }
    };

    // Events recorded through the new API only carry eventTime.
    let first = since(
        time(obj, field("/firstTimestamp", "/deprecatedFirstTimestamp"))
            .or_else(|| time(obj, "/eventTime")),
        now,
    );
    let mut last = match time(obj, field("/lastTimestamp", "/deprecatedLastTimestamp")) {
        Some(at) => since(Some(at), now),
        None => first.clone(),
    };
    let mut count = int(obj, field("/count", "/deprecatedCount"));
    if let Some(series) = get(obj, "/series") {
        last = since(time(series, "/lastObservedTime"), now);
        count = int(series, "/count");
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }

    let regarding = get(obj, field("/involvedObject", "/regarding")).unwrap_or(&Value::Null);
    let kind = text(regarding, "/kind").to_lowercase();
    let target = match text(regarding, "/name") {
        "" => kind,
        object_name => format!("{kind}/{object_name}"),
    };
    let source = get(obj, field("/source", "/deprecatedSource")).unwrap_or(&Value::Null);
    let component = or_else(
        text(source, "/component"),
        text(obj, "/reportingController"),
    );
    let host = or_else(text(source, "/host"), text(obj, "/reportingInstance"));
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };

    vec![
        last.into(),
        text(obj, "/type").into(),
        text(obj, "/reason").into(),
        target.into(),
        text(regarding, "/fieldPath").into(),
        source.into(),
        text(obj, field("/message", "/note")).trim().into(),
        first.into(),
        count.into(),
        name(obj),
    ]
}

/// The `subjects` of a binding split into users, groups and service accounts.
fn role_binding_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (mut users, mut groups, mut service_accounts) = (vec![], vec![], vec![]);
    for subject in items(obj, "/subjects") {
        let subject_name = text(subject, "/name");
        match text(subject, "/kind") {
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{subject_name}", text(subject, "/namespace")))
            }
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            _ => {}
        }
    }
    vec![
        name(obj),
        format!(
            "{}/{}",
            text(obj, "/roleRef/kind"),
            text(obj, "/roleRef/name")
        )
        .into(),
        age(obj, now),
        users.join(", ").into(),
        groups.join(", ").into(),
        service_accounts.join(", ").into(),
    ]
}

fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers_and_images(items(obj, "/spec/template/spec/containers"));
    let selector =
        selector_string(get(obj, "/spec/selector")).unwrap_or_else(|()| "<invalid>".into());
    vec![
        name(obj),
        format!(
            "{}/{}",
            int(obj, "/status/readyReplicas"),
            desired_replicas(obj)
        )
        .into(),
        int(obj, "/status/updatedReplicas").into(),
        int(obj, "/status/availableReplicas").into(),
        age(obj, now),
        names,
        images,
        selector.into(),
    ]
}

/// `formatHPAMetrics` over `autoscaling/v2` metric specs and statuses.
fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    let max = 2;
    let mut list: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i).unwrap_or(&Value::Null);
        // `source` is the metric's block in the spec and status: `resource`, `pods`, ...
        let entry = |source: &str| -> String {
            let target = get(spec, &format!("/{source}/target")).unwrap_or(&Value::Null);
            let current = get(status, &format!("/{source}"))
                .map(|s| s.get("current").unwrap_or(&Value::Null));
            let average_value = get(target, "/averageValue");
            match source {
                "pods" => format!(
                    "{}/{}",
                    current.map_or("<unknown>".into(), |c| quantity_or_nil(get(
                        c,
                        "/averageValue"
                    ))),
                    quantity_or_nil(average_value)
                ),
                "external" | "object" => match average_value {
                    Some(avg) => format!(
                        "{}/{} (avg)",
                        current
                            .and_then(|c| get(c, "/averageValue"))
                            .map_or("<unknown>".into(), quantity),
                        quantity(avg)
                    ),
                    None => format!(
                        "{}/{}",
                        current.map_or("<unknown>".into(), |c| quantity_or_nil(get(c, "/value"))),
                        quantity_or_nil(get(target, "/value"))
                    ),
                },
                _ => {
                    // resource and containerResource
                    let metric = text(spec, &format!("/{source}/name"));
                    match average_value {
                        Some(avg) => format!(
                            "{metric}: {}/{}",
                            current.map_or("<unknown>".into(), |c| quantity_or_nil(get(
                                c,
                                "/averageValue"
                            ))),
                            quantity(avg)
                        ),
                        None => {
                            let current = current
                                .and_then(|c| get(c, "/averageUtilization"))
                                .map_or("<unknown>".into(), |u| format!("{}%", u));
                            let target = get(target, "/averageUtilization")
                                .map_or("<auto>".into(), |u| format!("{}%", u));
                            format!("{metric}: {current}/{target}")
                        }
                    }
                }
            }
        };
        list.push(match text(spec, "/type") {
            "External" => entry("external"),
            "Pods" => entry("pods"),
            "Object" => entry("object"),
            "Resource" => entry("resource"),
            "ContainerResource" => entry("containerResource"),
            _ => "<unknown type>".into(),
        });
    }
    let count = list.len();
    if count > max {
        format!("{} + {} more...", list[..max].join(", "), count - max)
    } else {
        list.join(", ")
    }
}

/// Both `autoscaling/v2` objects and the `autoscaling/v1` shape (a CPU utilization target only).
fn hpa_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let metrics = if let Some(target) = get(obj, "/spec/targetCPUUtilizationPercentage") {
        let spec = json!([{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}]);
        let status = match get(obj, "/status/currentCPUUtilizationPercentage") {
            Some(current) => json!([{"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": current}}}]),
            None => json!([]),
        };
        format_hpa_metrics(items(&spec, ""), items(&status, ""))
    } else {
        format_hpa_metrics(
            items(obj, "/spec/metrics"),
            items(obj, "/status/currentMetrics"),
        )
    };
    let min_pods = match get(obj, "/spec/minReplicas") {
        Some(_) => int(obj, "/spec/minReplicas").to_string(),
        None => "<unset>".into(),
    };
    vec![
        name(obj),
        format!(
            "{}/{}",
            text(obj, "/spec/scaleTargetRef/kind"),
            text(obj, "/spec/scaleTargetRef/name")
        )
        .into(),
        metrics.into(),
        min_pods.into(),
        int(obj, "/spec/maxReplicas").into(),
        int(obj, "/status/currentReplicas").into(),
        age(obj, now),
    ]
}

fn config_map_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let entries = map_len(obj, "/data") + map_len(obj, "/binaryData");
    vec![name(obj), (entries as i64).into(), age(obj, now)]
}

fn network_policy_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // podSelector is a struct, not a pointer: a missing one is the empty selector.
    let empty = json!({});
    let selector = get(obj, "/spec/podSelector").unwrap_or(&empty);
    vec![
        name(obj),
        format_label_selector(Some(selector)).into(),
        age(obj, now),
    ]
}

fn storage_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let annotations = obj.pointer("/metadata/annotations");
    let is_default = [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|key| {
        annotations
            .and_then(|a| a.get(*key))
            .and_then(Value::as_str)
            == Some("true")
    });
    let mut display_name = crate::meta::name(obj).to_string();
    if is_default {
        display_name.push_str(" (default)");
    }
    vec![
        display_name.into(),
        text(obj, "/provisioner").into(),
        or_else(text(obj, "/reclaimPolicy"), "Delete").into(),
        or_else(text(obj, "/volumeBindingMode"), "Immediate").into(),
        flag(obj, "/allowVolumeExpansion").into(),
        age(obj, now),
    ]
}

fn lease_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, "/spec/holderIdentity").into(),
        age(obj, now),
    ]
}

fn controller_revision_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = items(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| flag(r, "/controller"))
        .map_or_else(
            || "<none>".to_string(),
            |owner| {
                let group = text(owner, "/apiVersion")
                    .split_once('/')
                    .map_or("", |(group, _)| group);
                let kind = text(owner, "/kind");
                let owner_name = text(owner, "/name");
                match (group, kind) {
                    ("", "") => owner_name.to_string(),
                    ("", kind) => format!("{}/{owner_name}", kind.to_lowercase()),
                    (group, kind) => format!(
                        "{}.{}/{owner_name}",
                        kind.to_lowercase(),
                        group.to_lowercase()
                    ),
                }
            },
        );
    vec![
        name(obj),
        controller.into(),
        int(obj, "/revision").into(),
        age(obj, now),
    ]
}

/// Used/hard per resource, requests and limits in separate columns.
fn resource_quota_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut resources: Vec<&String> = get(obj, "/status/hard")
        .and_then(Value::as_object)
        .map(|hard| hard.keys().collect())
        .unwrap_or_default();
    resources.sort();
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for resource in resources {
        let lookup = |block: &str| {
            obj.pointer(&format!("/status/{block}"))
                .and_then(|m| m.get(resource.as_str()))
                .unwrap_or(&Value::Null)
        };
        let entry = format!(
            "{resource}: {}/{}",
            quantity(lookup("used")),
            quantity(lookup("hard"))
        );
        if resource
            .split_once('.')
            .is_some_and(|(first, _)| first == "limits")
        {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        name(obj),
        requests.join(", ").into(),
        limits.join(", ").into(),
        age(obj, now),
    ]
}

fn priority_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        int(obj, "/value").into(),
        flag(obj, "/globalDefault").into(),
        age(obj, now),
        text(obj, "/preemptionPolicy").into(),
    ]
}

// ---------------------------------------------------------------------------------------------
// Custom resources

/// One `additionalPrinterColumns` cell, as apiextensions' table convertor computes it: the first
/// JSONPath result converted to the column type, `null` when nothing matches or the type differs.
fn custom_cell(column_type: &str, json_path: &str, obj: &Value, now: Timestamp) -> Value {
    let Ok(path) = JsonPath::parse(json_path) else {
        return Value::Null;
    };
    let found = match path.find(obj) {
        Ok(found) => found,
        Err(_) => return Value::Null,
    };
    let Some(&value) = found.first() else {
        return Value::Null;
    };
    match (column_type, value) {
        ("string", value) => jsonpath_text(value).into(),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        ("number", Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => (f as i64).into(),
            (None, Some(f)) => f.into(),
            (None, None) => Value::Null,
        },
        ("boolean", Value::Bool(b)) => (*b).into(),
        ("date", Value::String(s)) => {
            if s.is_empty() || s == "null" {
                return "<unknown>".into();
            }
            match s.parse::<Timestamp>() {
                Ok(ts) => since(Some(ts), now).into(),
                Err(_) => "<invalid>".into(),
            }
        }
        _ => Value::Null,
    }
}

/// How kubectl's JSONPath prints a value: strings raw, numbers and booleans as Go prints them,
/// objects and arrays as compact JSON with sorted keys.
fn jsonpath_text(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => go_float(u as f64),
            (None, None, Some(f)) => go_float(f),
            _ => n.to_string(),
        },
        Value::Array(_) | Value::Object(_) => {
            // Go's encoding/json sorts map keys and escapes HTML characters.
            let text = sorted_keys(value).to_string();
            text.replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026")
                .replace('\u{2028}', "\\u2028")
                .replace('\u{2029}', "\\u2029")
        }
    }
}

fn sorted_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

/// Go's `%v` for a float64: the shortest round-trip digits, in exponent form below 1e-4 and
/// from 1e21 up.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..21).contains(&exponent) {
        return format!("{f}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

#[cfg(test)]
mod tests;
