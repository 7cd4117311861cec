//! Defaulting of built-in kinds on create and update, so that objects read back look like a real
//! cluster's: what `kubectl get -o yaml` shows and what `kubectl diff`/`apply` compare against.
//!
//! This covers the `SetDefaults_*` functions of Kubernetes' `pkg/apis/*/v1` packages and their
//! generated defaulters, plus what the registry strategies and default admission plugins add
//! on create (Namespace finalizers, Service IP family fields, generated Job selectors, pod
//! priority, default tolerations and service account, pod status phase and QoS class).
//! Defaulting is idempotent: applying it twice changes nothing.
//!
//! Call it after `metadata.name` and `metadata.uid` are set: Namespaces label themselves with
//! their name and Jobs select their pods by uid.

use serde_json::{Map, Value, json};

use crate::validation::quantity::{Quantity, from_json};
use crate::validation::{JOB_CONTROLLER_UID_LABELS, JOB_NAME_LABELS, SYSTEM_PRIORITY_CLASSES};

/// Apply Kubernetes' defaults for `group`/`kind` to `obj` in place. Unknown kinds (custom
/// resources) are left alone: their defaults come from their schema.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, kind) {
        ("", "Pod") => default_pod(obj),
        ("", "PodTemplate") => {
            if let Some(template) = field(obj, "template") {
                default_pod_template(template);
            }
        }
        ("", "ReplicationController") => default_replication_controller(obj),
        ("", "Service") => default_service(obj),
        ("", "Secret") => default_str(map(obj), "type", "Opaque"),
        ("", "Namespace") => default_namespace(obj),
        ("", "Node") => default_node(obj),
        ("", "PersistentVolume") => default_pv(obj),
        ("", "PersistentVolumeClaim") => default_pvc(obj),
        ("", "Endpoints") => {
            for subset in items(obj, "subsets") {
                for port in items(subset, "ports") {
                    default_str(map(port), "protocol", "TCP");
                }
            }
        }
        ("", "LimitRange") => default_limit_range(obj),
        ("", "Event") => {
            let m = map(obj);
            default_val(m, "reportingComponent", json!(""));
            default_val(m, "reportingInstance", json!(""));
            default_val(m, "source", json!({}));
        }
        ("apps", "Deployment") => default_deployment(obj),
        ("apps", "ReplicaSet") => {
            let spec = ensure(obj, "spec");
            default_val(map(spec), "replicas", json!(1));
            default_template_of(spec);
            default_status_counters(obj, &["replicas"]);
        }
        ("apps", "StatefulSet") => {
            default_stateful_set(obj);
            default_status_counters(obj, &["replicas", "availableReplicas"]);
        }
        ("apps", "DaemonSet") => {
            default_daemon_set(obj);
            default_status_counters(
                obj,
                &[
                    "currentNumberScheduled",
                    "numberMisscheduled",
                    "desiredNumberScheduled",
                    "numberReady",
                ],
            );
        }
        ("batch", "Job") => default_job(obj),
        ("batch", "CronJob") => default_cron_job(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => default_hpa(obj),
        ("networking.k8s.io", "NetworkPolicy") => default_network_policy(obj),
        ("networking.k8s.io", "IngressClass") => {
            if let Some(params) = field(obj, "spec").and_then(|s| field(s, "parameters")) {
                default_str(map(params), "scope", "Cluster");
            }
        }
        ("policy", "PodDisruptionBudget") => default_status_counters(
            obj,
            &[
                "disruptionsAllowed",
                "currentHealthy",
                "desiredHealthy",
                "expectedPods",
            ],
        ),
        ("scheduling.k8s.io", "PriorityClass") => {
            default_str(map(obj), "preemptionPolicy", "PreemptLowerPriority");
        }
        ("storage.k8s.io", "StorageClass") => {
            let m = map(obj);
            default_str(m, "reclaimPolicy", "Delete");
            default_str(m, "volumeBindingMode", "Immediate");
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in items(obj, "ports") {
                let m = map(port);
                default_val(m, "name", json!(""));
                default_str(m, "protocol", "TCP");
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            default_role_binding(obj);
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => default_crd(obj),
        _ => {}
    }
}

// --- JSON helpers -------------------------------------------------------------------------

/// The object behind `v`, turning a non-object into an empty one (callers only pass values
/// that the schema says are objects).
fn map(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("just made an object")
}

/// An existing, non-null field.
fn field<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    v.as_object_mut()?.get_mut(key).filter(|f| !f.is_null())
}

/// A field that must exist (Go's non-pointer structs always do), created empty if missing.
fn ensure<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    let entry = map(v).entry(key).or_insert_with(|| json!({}));
    if entry.is_null() {
        *entry = json!({});
    }
    entry
}

/// The elements of a list field (none when missing).
fn items<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    field(v, key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn is_unset(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

/// Default a pointer field: only when missing or null.
fn default_val(m: &mut Map<String, Value>, key: &str, value: Value) {
    if is_unset(m.get(key)) {
        m.insert(key.to_string(), value);
    }
}

/// Default a string field: Go cannot tell "" from unset, so "" is defaulted too.
fn default_str(m: &mut Map<String, Value>, key: &str, value: &str) {
    if is_unset(m.get(key)) || m.get(key).and_then(Value::as_str) == Some("") {
        m.insert(key.to_string(), json!(value));
    }
}

/// Default a non-pointer integer field, where 0 means unset.
fn default_nonzero(m: &mut Map<String, Value>, key: &str, value: i64) {
    if is_unset(m.get(key)) || m.get(key).and_then(Value::as_i64) == Some(0) {
        m.insert(key.to_string(), json!(value));
    }
}

/// Status counters Go always serializes (no `omitempty`): a new object reads back with them at
/// 0 until its controller reports, and typed clients require them once `status` is present.
fn default_status_counters(obj: &mut Value, counters: &[&str]) {
    let status = map(ensure(obj, "status"));
    for counter in counters {
        default_val(status, counter, json!(0));
    }
}

fn str_of<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

// --- pods ------------------------------------------------------------------------------------

fn default_pod(obj: &mut Value) {
    let spec = ensure(obj, "spec");
    default_pod_spec(spec);
    let s = map(spec);

    // SetDefaults_Pod: only Pods (not templates) get these.
    for key in ["containers", "initContainers"] {
        if let Some(Value::Array(containers)) = s.get_mut(key) {
            for c in containers {
                default_requests_from_limits(c);
            }
        }
    }
    default_val(s, "enableServiceLinks", json!(true));
    if s.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        for key in ["containers", "initContainers"] {
            if let Some(Value::Array(containers)) = s.get_mut(key) {
                for port in containers.iter_mut().flat_map(|c| items(c, "ports")) {
                    let p = map(port);
                    let container_port = p.get("containerPort").and_then(Value::as_i64);
                    if let Some(container_port) = container_port.filter(|p| *p != 0) {
                        default_nonzero(p, "hostPort", container_port);
                    }
                }
            }
        }
    }

    // The ServiceAccount admission plugin.
    default_str(s, "serviceAccountName", "default");
    let sa = str_of(s, "serviceAccountName").to_string();
    s.insert("serviceAccount".into(), json!(sa));

    // The Priority admission plugin: without a class, priority 0 (no global default class);
    // the system classes resolve to their fixed values.
    let class = str_of(s, "priorityClassName").to_string();
    let priority = if class.is_empty() {
        Some(0)
    } else {
        SYSTEM_PRIORITY_CLASSES
            .iter()
            .find(|(name, _)| *name == class)
            .map(|(_, value)| *value)
    };
    if let Some(priority) = priority {
        default_val(s, "priority", json!(priority));
        default_val(s, "preemptionPolicy", json!("PreemptLowerPriority"));
    }

    // The DefaultTolerationSeconds admission plugin is the registry's: its seconds are
    // server settings.

    // The strategy starts every pod Pending with its QoS class computed.
    let qos = pod_qos_class(spec);
    let status = ensure(obj, "status");
    let st = map(status);
    default_str(st, "phase", "Pending");
    default_str(st, "qosClass", qos);
}

/// Requests default to limits for every resource that has a limit but no request.
fn default_requests_from_limits(container: &mut Value) {
    let Some(resources) = field(container, "resources") else {
        return;
    };
    let limits = match resources.get("limits").and_then(Value::as_object) {
        Some(l) if !l.is_empty() => l.clone(),
        _ => return,
    };
    let requests = ensure(resources, "requests");
    let r = map(requests);
    for (name, value) in limits {
        r.entry(name).or_insert(value);
    }
}

/// `ComputePodQOS`: Guaranteed when every container limits cpu and memory and requests equal
/// limits, BestEffort when nothing is requested or limited, Burstable otherwise.
fn pod_qos_class(spec: &Value) -> &'static str {
    let mut requests: Vec<(String, i128)> = Vec::new();
    let mut limits: Vec<(String, i128)> = Vec::new();
    let mut guaranteed = true;
    let add = |acc: &mut Vec<(String, i128)>, name: &str, q: Quantity| match acc
        .iter_mut()
        .find(|(n, _)| n == name)
    {
        Some((_, total)) => *total = total.saturating_add(q.nanos()),
        None => acc.push((name.to_string(), q.nanos())),
    };
    let containers = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten());
    for c in containers {
        let resources = c.get("resources").unwrap_or(&Value::Null);
        let positive = |key: &str| -> Vec<(String, Quantity)> {
            resources
                .get(key)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter(|(name, _)| matches!(name.as_str(), "cpu" | "memory"))
                .filter_map(|(name, v)| from_json(v).map(|q| (name.clone(), q)))
                .filter(|(_, q)| q.nanos() > 0)
                .collect()
        };
        for (name, q) in positive("requests") {
            add(&mut requests, &name, q);
        }
        let found = positive("limits");
        if !(found.iter().any(|(n, _)| n == "cpu") && found.iter().any(|(n, _)| n == "memory")) {
            guaranteed = false;
        }
        for (name, q) in found {
            add(&mut limits, &name, q);
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        guaranteed = requests
            .iter()
            .all(|(name, req)| limits.iter().any(|(n, lim)| n == name && lim == req));
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A pod template inside a workload: only `SetDefaults_PodSpec`-level defaults.
fn default_pod_template(template: &mut Value) {
    default_pod_spec(ensure(template, "spec"));
}

/// The pod template under `spec.template`, when there is one.
fn default_template_of(spec: &mut Value) {
    if let Some(template) = field(spec, "template") {
        default_pod_template(template);
    }
}

/// `SetDefaults_PodSpec` plus the per-field defaulters of everything a pod spec contains.
fn default_pod_spec(spec: &mut Value) {
    let s = map(spec);
    default_str(s, "dnsPolicy", "ClusterFirst");
    default_str(s, "restartPolicy", "Always");
    default_val(s, "securityContext", json!({}));
    default_val(s, "terminationGracePeriodSeconds", json!(30));
    default_str(s, "schedulerName", "default-scheduler");
    // The v1 conversion keeps the deprecated serviceAccount in step with serviceAccountName.
    if str_of(s, "serviceAccountName").is_empty() && !str_of(s, "serviceAccount").is_empty() {
        let sa = str_of(s, "serviceAccount").to_string();
        s.insert("serviceAccountName".into(), json!(sa));
    }
    if !str_of(s, "serviceAccountName").is_empty() {
        let sa = str_of(s, "serviceAccountName").to_string();
        s.insert("serviceAccount".into(), json!(sa));
    }
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(Value::Array(containers)) = s.get_mut(key) {
            containers.iter_mut().for_each(default_container);
        }
    }
    if let Some(Value::Array(volumes)) = s.get_mut("volumes") {
        volumes.iter_mut().for_each(default_volume);
    }
}

/// `parsers.ParseImageName`'s tag: `latest` when neither a tag nor a digest is given.
fn image_tag(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    match last_segment.split_once(':') {
        Some((_, tag)) => tag.to_string(),
        None if digest.is_some() => String::new(),
        None => "latest".to_string(),
    }
}

fn default_container(container: &mut Value) {
    let c = map(container);
    if is_unset(c.get("imagePullPolicy")) || str_of(c, "imagePullPolicy").is_empty() {
        let policy = if image_tag(str_of(c, "image")) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    // ResourceRequirements is a plain struct in Go: it always serializes, as `{}` when empty.
    default_val(c, "resources", json!({}));
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for port in ports {
            default_str(map(port), "protocol", "TCP");
        }
    }
    if let Some(Value::Array(env)) = c.get_mut("env") {
        for var in env {
            if let Some(from) = field(var, "valueFrom") {
                default_field_refs(from);
            }
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = c.get_mut(key).filter(|p| !p.is_null()) {
            let p = map(probe);
            default_nonzero(p, "timeoutSeconds", 1);
            default_nonzero(p, "periodSeconds", 10);
            default_nonzero(p, "successThreshold", 1);
            default_nonzero(p, "failureThreshold", 3);
            default_handler(probe);
        }
    }
    if let Some(lifecycle) = c.get_mut("lifecycle").filter(|l| !l.is_null()) {
        for hook in ["postStart", "preStop"] {
            if let Some(handler) = field(lifecycle, hook) {
                default_handler(handler);
            }
        }
    }
}

/// Probe and lifecycle actions: HTTP GETs default to `/` over HTTP, gRPC to the "" service.
fn default_handler(handler: &mut Value) {
    if let Some(http) = field(handler, "httpGet") {
        let h = map(http);
        default_str(h, "path", "/");
        default_str(h, "scheme", "HTTP");
    }
    if let Some(grpc) = field(handler, "grpc") {
        default_val(map(grpc), "service", json!(""));
    }
}

/// Downward API selectors: field refs default to apiVersion v1, and a resource ref's divisor
/// (a non-pointer quantity in Go) always serializes, as "0" when unset.
fn default_field_refs(source: &mut Value) {
    if let Some(field_ref) = field(source, "fieldRef") {
        default_str(map(field_ref), "apiVersion", "v1");
    }
    if let Some(resource_ref) = field(source, "resourceFieldRef") {
        default_val(map(resource_ref), "divisor", json!("0"));
    }
}

/// File mode 0644, the default of secret, configMap, downwardAPI and projected volumes.
const DEFAULT_FILE_MODE: i64 = 0o644;

fn default_volume(volume: &mut Value) {
    let v = map(volume);
    // A volume without a source is an emptyDir.
    if !v.iter().any(|(k, val)| k != "name" && !val.is_null()) {
        v.insert("emptyDir".into(), json!({}));
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(source) = v.get_mut(key).filter(|s| !s.is_null()) {
            default_val(map(source), "defaultMode", json!(DEFAULT_FILE_MODE));
        }
    }
    if let Some(downward) = v.get_mut("downwardAPI").filter(|s| !s.is_null()) {
        items(downward, "items").for_each(default_field_refs);
    }
    if let Some(projected) = v.get_mut("projected").filter(|s| !s.is_null()) {
        for source in items(projected, "sources") {
            if let Some(token) = field(source, "serviceAccountToken") {
                default_val(map(token), "expirationSeconds", json!(3600));
            }
            if let Some(downward) = field(source, "downwardAPI") {
                items(downward, "items").for_each(default_field_refs);
            }
        }
    }
    if let Some(ephemeral) = v.get_mut("ephemeral").filter(|s| !s.is_null())
        && let Some(template) = field(ephemeral, "volumeClaimTemplate")
    {
        default_pvc_spec(ensure(template, "spec"));
    }
    default_volume_sources(v);
}

/// Defaults of volume sources shared by pod volumes and PersistentVolumes.
fn default_volume_sources(v: &mut Map<String, Value>) {
    if let Some(host_path) = v.get_mut("hostPath").filter(|s| !s.is_null()) {
        default_val(map(host_path), "type", json!(""));
    }
    if let Some(iscsi) = v.get_mut("iscsi").filter(|s| !s.is_null()) {
        default_str(map(iscsi), "iscsiInterface", "default");
    }
    if let Some(rbd) = v.get_mut("rbd").filter(|s| !s.is_null()) {
        let r = map(rbd);
        default_str(r, "pool", "rbd");
        default_str(r, "user", "admin");
        default_str(r, "keyring", "/etc/ceph/keyring");
    }
    if let Some(disk) = v.get_mut("azureDisk").filter(|s| !s.is_null()) {
        let d = map(disk);
        default_val(d, "cachingMode", json!("ReadWrite"));
        default_val(d, "kind", json!("Shared"));
        default_val(d, "fsType", json!("ext4"));
        default_val(d, "readOnly", json!(false));
    }
    if let Some(scale_io) = v.get_mut("scaleIO").filter(|s| !s.is_null()) {
        let s = map(scale_io);
        default_str(s, "storageMode", "ThinProvisioned");
        default_str(s, "fsType", "xfs");
    }
}

// --- workloads -------------------------------------------------------------------------------

fn default_replication_controller(obj: &mut Value) {
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned();
    if let Some(labels) = template_labels {
        let spec = map(ensure(obj, "spec"));
        if spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            spec.insert("selector".into(), Value::Object(labels.clone()));
        }
        let meta = crate::meta::metadata_mut(obj);
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            meta.insert("labels".into(), Value::Object(labels));
        }
    }
    let spec = ensure(obj, "spec");
    default_val(map(spec), "replicas", json!(1));
    default_template_of(spec);
}

fn default_deployment(obj: &mut Value) {
    let spec = ensure(obj, "spec");
    let s = map(spec);
    default_val(s, "replicas", json!(1));
    default_val(s, "revisionHistoryLimit", json!(10));
    default_val(s, "progressDeadlineSeconds", json!(600));
    let strategy = map(ensure(spec, "strategy"));
    default_str(strategy, "type", "RollingUpdate");
    if str_of(strategy, "type") == "RollingUpdate" {
        let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
        let r = map(rolling);
        default_val(r, "maxUnavailable", json!("25%"));
        default_val(r, "maxSurge", json!("25%"));
    }
    default_template_of(spec);
}

fn default_stateful_set(obj: &mut Value) {
    let spec = ensure(obj, "spec");
    let s = map(spec);
    default_str(s, "podManagementPolicy", "OrderedReady");
    default_val(s, "replicas", json!(1));
    default_val(s, "revisionHistoryLimit", json!(10));
    let retention = map(ensure(spec, "persistentVolumeClaimRetentionPolicy"));
    default_str(retention, "whenDeleted", "Retain");
    default_str(retention, "whenScaled", "Retain");
    let strategy = map(ensure(spec, "updateStrategy"));
    if str_of(strategy, "type").is_empty() {
        strategy.insert("type".into(), json!("RollingUpdate"));
        default_val(strategy, "rollingUpdate", json!({}));
    }
    if str_of(strategy, "type") == "RollingUpdate"
        && let Some(rolling) = strategy.get_mut("rollingUpdate").filter(|r| !r.is_null())
    {
        default_val(map(rolling), "partition", json!(0));
    }
    default_template_of(spec);
    // Claim templates are full PVCs: they carry their kind and read back as Pending claims.
    for claim in items(spec, "volumeClaimTemplates") {
        let c = map(claim);
        default_str(c, "apiVersion", "v1");
        default_str(c, "kind", "PersistentVolumeClaim");
        default_pvc(claim);
    }
}

fn default_daemon_set(obj: &mut Value) {
    let spec = ensure(obj, "spec");
    default_val(map(spec), "revisionHistoryLimit", json!(10));
    let strategy = map(ensure(spec, "updateStrategy"));
    default_str(strategy, "type", "RollingUpdate");
    if str_of(strategy, "type") == "RollingUpdate" {
        let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
        let r = map(rolling);
        default_val(r, "maxUnavailable", json!(1));
        default_val(r, "maxSurge", json!(0));
    }
    default_template_of(spec);
}

fn default_job(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // Template labels become the Job's labels when it has none; Kubernetes does this both
    // when the Job arrives and when it is read back after the selector was generated.
    copy_template_labels_to_job(obj);
    let spec = ensure(obj, "spec");
    let s = map(spec);
    if is_unset(s.get("completions")) && is_unset(s.get("parallelism")) {
        s.insert("completions".into(), json!(1));
    }
    default_val(s, "parallelism", json!(1));
    let backoff = if is_unset(s.get("backoffLimitPerIndex")) {
        6
    } else {
        i64::from(i32::MAX)
    };
    default_val(s, "backoffLimit", json!(backoff));
    default_val(s, "completionMode", json!("NonIndexed"));
    default_val(s, "suspend", json!(false));
    let has_failure_policy = !is_unset(s.get("podFailurePolicy"));
    default_val(
        s,
        "podReplacementPolicy",
        json!(if has_failure_policy {
            "Failed"
        } else {
            "TerminatingOrFailed"
        }),
    );
    if let Some(policy) = field(spec, "podFailurePolicy") {
        for rule in items(policy, "rules") {
            for pattern in items(rule, "onPodConditions") {
                default_str(map(pattern), "status", "True");
            }
        }
    }
    let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
    if !manual && !uid.is_empty() {
        generate_job_selector(spec, &name, &uid);
    }
    default_template_of(spec);
    copy_template_labels_to_job(obj);
}

fn copy_template_labels_to_job(obj: &mut Value) {
    let labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
        .cloned();
    if let Some(labels) = labels {
        let meta = crate::meta::metadata_mut(obj);
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            meta.insert("labels".into(), Value::Object(labels));
        }
    }
}

/// The Job strategy's `generateSelector`: label the template with the Job's name and uid and
/// select on the uid. Labels the user set are kept (validation rejects wrong ones).
fn generate_job_selector(spec: &mut Value, name: &str, uid: &str) {
    let template = ensure(spec, "template");
    let labels = map(ensure(ensure(template, "metadata"), "labels"));
    for key in JOB_NAME_LABELS {
        labels.entry(key).or_insert_with(|| json!(name));
    }
    for key in JOB_CONTROLLER_UID_LABELS {
        labels.entry(key).or_insert_with(|| json!(uid));
    }
    let selector = ensure(spec, "selector");
    let match_labels = map(ensure(selector, "matchLabels"));
    match_labels
        .entry(JOB_CONTROLLER_UID_LABELS[0])
        .or_insert_with(|| json!(uid));
}

fn default_cron_job(obj: &mut Value) {
    let spec = ensure(obj, "spec");
    let s = map(spec);
    default_str(s, "concurrencyPolicy", "Allow");
    default_val(s, "suspend", json!(false));
    default_val(s, "successfulJobsHistoryLimit", json!(3));
    default_val(s, "failedJobsHistoryLimit", json!(1));
    if let Some(job_spec) = field(spec, "jobTemplate").and_then(|t| field(t, "spec")) {
        default_template_of(job_spec);
    }
}

// --- services and core kinds -----------------------------------------------------------------

fn default_service(obj: &mut Value) {
    let spec = ensure(obj, "spec");
    let s = map(spec);
    default_str(s, "sessionAffinity", "None");
    match str_of(s, "sessionAffinity") {
        "None" => {
            s.remove("sessionAffinityConfig");
        }
        "ClientIP" => {
            let timeout = s
                .get("sessionAffinityConfig")
                .and_then(|c| c.pointer("/clientIP/timeoutSeconds"))
                .filter(|t| !t.is_null());
            if timeout.is_none() {
                s.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    default_str(s, "type", "ClusterIP");
    let service_type = str_of(s, "type").to_string();
    if let Some(Value::Array(ports)) = s.get_mut("ports") {
        for port in ports {
            let p = map(port);
            default_str(p, "protocol", "TCP");
            let unset_target = match p.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                Some(Value::String(t)) => t.is_empty(),
                _ => false,
            };
            if unset_target && let Some(port_number) = p.get("port").cloned() {
                p.insert("targetPort".into(), port_number);
            }
        }
    }
    let external_ips = s
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|ips| !ips.is_empty());
    let externally_accessible = matches!(service_type.as_str(), "NodePort" | "LoadBalancer")
        || (service_type == "ClusterIP" && external_ips);
    if externally_accessible {
        default_str(s, "externalTrafficPolicy", "Cluster");
    }
    if matches!(
        service_type.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer"
    ) {
        default_val(s, "internalTrafficPolicy", json!("Cluster"));
    }
    if service_type == "LoadBalancer" {
        default_val(s, "allocateLoadBalancerNodePorts", json!(true));
    }
    if service_type != "ExternalName" {
        // The strategy keeps clusterIP and clusterIPs in step.
        let cluster_ip = str_of(s, "clusterIP").to_string();
        let has_ips = s
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_some_and(|ips| !ips.is_empty());
        if !cluster_ip.is_empty() && !has_ips {
            s.insert("clusterIPs".into(), json!([cluster_ip]));
        } else if cluster_ip.is_empty()
            && let Some(first) = s
                .get("clusterIPs")
                .and_then(Value::as_array)
                .and_then(|ips| ips.first())
                .cloned()
        {
            s.insert("clusterIP".into(), first);
        }
        // Single-stack IPv4 cluster: the IP family fields the allocator fills in.
        default_val(s, "ipFamilyPolicy", json!("SingleStack"));
        let no_families = s
            .get("ipFamilies")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if no_families {
            s.insert("ipFamilies".into(), json!(["IPv4"]));
        }
    }
    let status = map(ensure(obj, "status"));
    default_val(status, "loadBalancer", json!({}));
}

fn default_namespace(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        let meta = crate::meta::metadata_mut(obj);
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        let labels = map(labels);
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    default_val(
        map(ensure(obj, "spec")),
        "finalizers",
        json!(["kubernetes"]),
    );
    default_str(map(ensure(obj, "status")), "phase", "Active");
}

fn default_node(obj: &mut Value) {
    let Some(status) = field(obj, "status") else {
        return;
    };
    let st = map(status);
    if is_unset(st.get("allocatable"))
        && let Some(capacity) = st.get("capacity").filter(|c| !c.is_null()).cloned()
    {
        st.insert("allocatable".into(), capacity);
    }
}

fn default_pvc_spec(spec: &mut Value) {
    default_val(map(spec), "volumeMode", json!("Filesystem"));
}

fn default_pvc(obj: &mut Value) {
    default_pvc_spec(ensure(obj, "spec"));
    default_str(map(ensure(obj, "status")), "phase", "Pending");
}

fn default_pv(obj: &mut Value) {
    let spec = map(ensure(obj, "spec"));
    default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
    default_val(spec, "volumeMode", json!("Filesystem"));
    default_volume_sources(spec);
    default_str(map(ensure(obj, "status")), "phase", "Pending");
}

fn default_limit_range(obj: &mut Value) {
    let Some(spec) = field(obj, "spec") else {
        return;
    };
    for item in items(spec, "limits") {
        let m = map(item);
        if str_of(m, "type") != "Container" {
            continue;
        }
        let get = |m: &Map<String, Value>, key: &str| {
            m.get(key)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        // Default limits come from max; default requests from the default limits, then min.
        let mut defaults = get(m, "default");
        for (k, v) in get(m, "max") {
            defaults.entry(k).or_insert(v);
        }
        let mut default_requests = get(m, "defaultRequest");
        for (k, v) in defaults.clone().into_iter().chain(get(m, "min")) {
            default_requests.entry(k).or_insert(v);
        }
        if !defaults.is_empty() {
            m.insert("default".into(), Value::Object(defaults));
        }
        if !default_requests.is_empty() {
            m.insert("defaultRequest".into(), Value::Object(default_requests));
        }
    }
}

// --- other groups ----------------------------------------------------------------------------

fn default_hpa(obj: &mut Value) {
    let v1 = obj.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v1")
        || obj
            .pointer("/spec/targetCPUUtilizationPercentage")
            .is_some();
    if v1 {
        default_val(map(ensure(obj, "spec")), "minReplicas", json!(1));
        default_status_counters(obj, &["currentReplicas", "desiredReplicas"]);
        return;
    }
    default_status_counters(obj, &["desiredReplicas"]);
    let spec = ensure(obj, "spec");
    let s = map(spec);
    default_val(s, "minReplicas", json!(1));
    let no_metrics = s
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_metrics {
        s.insert(
            "metrics".into(),
            json!([{
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }]),
        );
    }
    // A behavior, once given, is completed with the controller's historical rules.
    if let Some(behavior) = field(spec, "behavior") {
        let b = map(behavior);
        let scale_up = json!({
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15},
            ],
        });
        let scale_down = json!({
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        });
        for (key, defaults) in [("scaleUp", scale_up), ("scaleDown", scale_down)] {
            let rules = b.entry(key).or_insert_with(|| json!({}));
            let r = map(rules);
            for (k, v) in defaults.as_object().into_iter().flatten() {
                default_val(r, k, v.clone());
            }
        }
    }
}

fn default_network_policy(obj: &mut Value) {
    let spec = ensure(obj, "spec");
    for direction in ["ingress", "egress"] {
        for rule in items(spec, direction) {
            for port in items(rule, "ports") {
                default_val(map(port), "protocol", json!("TCP"));
            }
        }
    }
    let s = map(spec);
    let no_types = s
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_types {
        let egress = s
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        s.insert("policyTypes".into(), types);
    }
}

fn default_role_binding(obj: &mut Value) {
    if let Some(role_ref) = field(obj, "roleRef") {
        default_str(map(role_ref), "apiGroup", "rbac.authorization.k8s.io");
    }
    for subject in items(obj, "subjects") {
        let s = map(subject);
        if str_of(s, "apiGroup").is_empty() {
            match str_of(s, "kind") {
                "ServiceAccount" => {
                    s.insert("apiGroup".into(), json!(""));
                }
                "User" | "Group" => {
                    s.insert("apiGroup".into(), json!("rbac.authorization.k8s.io"));
                }
                _ => {}
            }
        }
    }
}

fn default_crd(obj: &mut Value) {
    let spec = ensure(obj, "spec");
    let names = map(ensure(spec, "names"));
    let kind = str_of(names, "kind").to_string();
    default_str(names, "singular", &kind.to_lowercase());
    if !kind.is_empty() {
        default_str(names, "listKind", &format!("{kind}List"));
    }
    let conversion = map(spec)
        .entry("conversion")
        .or_insert_with(|| json!({"strategy": "None"}));
    if let Some(service) = field(conversion, "webhook")
        .and_then(|w| field(w, "clientConfig"))
        .and_then(|c| field(c, "service"))
    {
        default_val(map(service), "port", json!(443));
    }
    let storage_version = spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("name").cloned());
    if let Some(version) = storage_version {
        let status = map(ensure(obj, "status"));
        let empty = status
            .get("storedVersions")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if empty {
            status.insert("storedVersions".into(), json!([version]));
        }
    }
}

#[cfg(test)]
mod tests;
