//! Pods and pod templates: the pod spec (containers, ports, env, probes, volumes and mounts,
//! resources, tolerations, scheduling fields) and the pod update rules (only images, the active
//! deadline, new tolerations and a few more may change).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::field::{
    Bad, Path, duplicate, forbidden, go_quote, int_at, invalid, list_at, not_found, not_supported,
    present, required, str_at,
};
use super::meta::{
    normalized, struct_diff, validate_annotations, validate_label_selector, validate_labels,
};
use super::names::{
    NameRule, inclusive_range_error, is_config_map_key, is_dns1123_label, is_dns1123_subdomain,
    is_env_var_name, is_http_header_name, is_qualified_name, is_valid_label_value,
    is_valid_port_name, is_valid_port_num,
};
use super::quantity::{QUANTITY_ERROR, Quantity, from_json};
use crate::status::Cause;

const FILE_MODE_ERROR: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const MAX_INT32: i64 = i32::MAX as i64;

/// The pod spec fields `ValidatePodUpdate` lets change, as listed in its message.
const UPDATABLE_POD_SPEC_FIELDS: [&str; 5] = [
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

/// A Pod on create or update.
pub(super) fn validate_pod(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let spec_path = Path::new("spec");
    let name = obj.pointer("/metadata/name").and_then(Value::as_str);
    validate_pod_spec(spec, &spec_path, name, true, errs);
    for key in ["containers", "initContainers"] {
        for (i, c) in list_at(spec, key).iter().enumerate() {
            validate_image_whitespace(c, &spec_path.child(key).index(i), errs);
        }
    }
    if let Some(old) = old {
        validate_pod_update(spec, old.get("spec").unwrap_or(&Value::Null), errs);
    }
}

/// A PodTemplate object.
pub(super) fn validate_pod_template(obj: &Value, errs: &mut Vec<Cause>) {
    validate_pod_template_spec(
        obj.get("template").unwrap_or(&Value::Null),
        &Path::new("template"),
        errs,
    );
}

/// `ValidatePodTemplateSpec`: the template of every workload. Its label errors are reported at
/// `<template>.labels`, as Kubernetes does.
pub(super) fn validate_pod_template_spec(template: &Value, path: &Path, errs: &mut Vec<Cause>) {
    let meta = template.get("metadata").unwrap_or(&Value::Null);
    validate_labels(
        meta.get("labels").and_then(Value::as_object),
        &path.child("labels"),
        errs,
    );
    validate_annotations(
        meta.get("annotations").and_then(Value::as_object),
        &path.child("annotations"),
        errs,
    );
    let spec = template.get("spec").unwrap_or(&Value::Null);
    validate_pod_spec(spec, &path.child("spec"), None, false, errs);
    if !list_at(spec, "ephemeralContainers").is_empty() {
        errs.push(forbidden(
            &path.at(&["spec", "ephemeralContainers"]),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

fn validate_image_whitespace(container: &Value, path: &Path, errs: &mut Vec<Cause>) {
    let image = str_at(container, "image");
    if image.len() != image.trim().len() {
        errs.push(invalid(
            &path.child("image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
}

/// What the container checks need to know about a declared volume.
struct VolumeInfo {
    is_claim: bool,
}

/// `ValidatePodSpec`. `pod_name` is known for Pods (ephemeral volume claim names derive from
/// it); `is_pod` distinguishes a Pod from a template.
pub(super) fn validate_pod_spec(
    spec: &Value,
    path: &Path,
    pod_name: Option<&str>,
    is_pod: bool,
    errs: &mut Vec<Cause>,
) {
    let grace = int_at(spec, "terminationGracePeriodSeconds").unwrap_or(30);
    let volumes = validate_volumes(
        list_at(spec, "volumes"),
        pod_name,
        &path.child("volumes"),
        errs,
    );
    validate_containers(
        list_at(spec, "containers"),
        &volumes,
        grace,
        &path.child("containers"),
        errs,
    );
    validate_init_containers(spec, &volumes, grace, &path.child("initContainers"), errs);
    validate_ephemeral_containers(spec, &volumes, &path.child("ephemeralContainers"), errs);
    validate_host_network_ports(spec, path, is_pod, errs);

    let restart = str_at(spec, "restartPolicy");
    if !restart.is_empty() && !matches!(restart, "Always" | "OnFailure" | "Never") {
        errs.push(not_supported(
            &path.child("restartPolicy"),
            restart,
            &["Always", "OnFailure", "Never"],
        ));
    }
    let dns_policy = str_at(spec, "dnsPolicy");
    if !dns_policy.is_empty()
        && !matches!(
            dns_policy,
            "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None"
        )
    {
        errs.push(not_supported(
            &path.child("dnsPolicy"),
            dns_policy,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        ));
    }
    validate_labels(
        spec.get("nodeSelector").and_then(Value::as_object),
        &path.child("nodeSelector"),
        errs,
    );
    validate_dns_config(spec, dns_policy, &path.child("dnsConfig"), errs);
    for (i, gate) in list_at(spec, "readinessGates").iter().enumerate() {
        let condition = str_at(gate, "conditionType");
        for msg in is_qualified_name(condition) {
            errs.push(invalid(
                &path.child("readinessGates").index(i).child("conditionType"),
                condition,
                &msg,
            ));
        }
    }
    validate_topology_spread(
        list_at(spec, "topologySpreadConstraints"),
        &path.child("topologySpreadConstraints"),
        errs,
    );

    for (key, rule) in [
        ("serviceAccountName", NameRule::Subdomain),
        ("nodeName", NameRule::Subdomain),
    ] {
        let value = str_at(spec, key);
        if !value.is_empty() {
            for msg in rule.check(value, false) {
                errs.push(invalid(&path.child(key), value, &msg));
            }
        }
    }
    if let Some(deadline) = int_at(spec, "activeDeadlineSeconds")
        && !(1..=MAX_INT32).contains(&deadline)
    {
        errs.push(invalid(
            &path.child("activeDeadlineSeconds"),
            deadline,
            &inclusive_range_error(1, MAX_INT32),
        ));
    }
    for key in ["hostname", "subdomain"] {
        let value = str_at(spec, key);
        if !value.is_empty() {
            for msg in is_dns1123_label(value) {
                errs.push(invalid(&path.child(key), value, &msg));
            }
        }
    }
    validate_tolerations(
        list_at(spec, "tolerations"),
        &path.child("tolerations"),
        errs,
    );
    for (i, alias) in list_at(spec, "hostAliases").iter().enumerate() {
        let p = path.child("hostAliases").index(i);
        let ip = str_at(alias, "ip");
        if ip.parse::<std::net::IpAddr>().is_err() {
            errs.push(invalid(
                &p.child("ip"),
                ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
        for (j, host) in list_at(alias, "hostnames").iter().enumerate() {
            let host = host.as_str().unwrap_or("");
            for msg in is_dns1123_subdomain(host) {
                errs.push(invalid(&p.child("hostnames").index(j), host, &msg));
            }
        }
    }
    let priority_class = str_at(spec, "priorityClassName");
    if !priority_class.is_empty() {
        for msg in is_dns1123_subdomain(priority_class) {
            errs.push(invalid(
                &path.child("priorityClassName"),
                priority_class,
                &msg,
            ));
        }
    }
    if let Some(policy) = present(spec, "preemptionPolicy") {
        let policy = policy.as_str().unwrap_or("");
        if policy.is_empty() {
            errs.push(required(&path.child("preemptionPolicy"), ""));
        } else if !matches!(policy, "PreemptLowerPriority" | "Never") {
            errs.push(not_supported(
                &path.child("preemptionPolicy"),
                policy,
                &["PreemptLowerPriority", "Never"],
            ));
        }
    }
}

fn validate_dns_config(spec: &Value, dns_policy: &str, path: &Path, errs: &mut Vec<Cause>) {
    let config = present(spec, "dnsConfig");
    if dns_policy == "None" {
        let Some(config) = config else {
            errs.push(required(
                path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
            return;
        };
        if list_at(config, "nameservers").is_empty() {
            errs.push(required(
                &path.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
        }
    }
    let Some(config) = config else { return };
    let nameservers = list_at(config, "nameservers");
    if nameservers.len() > 3 {
        errs.push(invalid(
            &path.child("nameservers"),
            Bad::Raw(super::field::go_string_slice(Some(nameservers))),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        let ns = ns.as_str().unwrap_or("");
        if ns.parse::<std::net::IpAddr>().is_err() {
            errs.push(invalid(
                &path.child("nameservers").index(i),
                ns,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
}

fn validate_topology_spread(constraints: &[Value], path: &Path, errs: &mut Vec<Cause>) {
    for (i, c) in constraints.iter().enumerate() {
        let p = path.index(i);
        let skew = int_at(c, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            errs.push(invalid(
                &p.child("maxSkew"),
                skew,
                "must be greater than zero",
            ));
        }
        if str_at(c, "topologyKey").is_empty() {
            errs.push(required(&p.child("topologyKey"), "can not be empty"));
        }
        let action = str_at(c, "whenUnsatisfiable");
        if !matches!(action, "DoNotSchedule" | "ScheduleAnyway") {
            errs.push(not_supported(
                &p.child("whenUnsatisfiable"),
                action,
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if let Some(selector) = present(c, "labelSelector") {
            validate_label_selector(selector, &p.child("labelSelector"), errs);
        }
    }
}

/// Volume source fields in the order `validateVolumeSource` checks them: when several are set,
/// the later ones are reported.
const VOLUME_SOURCES: [&str; 29] = [
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "csi",
    "configMap",
    "projected",
    "scaleIO",
    "storageos",
    "ephemeral",
    "image",
];

fn validate_volumes(
    volumes: &[Value],
    pod_name: Option<&str>,
    path: &Path,
    errs: &mut Vec<Cause>,
) -> HashMap<String, VolumeInfo> {
    let mut valid = HashMap::new();
    let mut names = HashSet::new();
    // PVCs created for ephemeral volumes are named <pod>-<volume>; a claim volume may not
    // point at one of them.
    let created_claims: HashSet<String> = match pod_name {
        Some(pod) if !pod.is_empty() => volumes
            .iter()
            .filter(|v| present(v, "ephemeral").is_some())
            .map(|v| format!("{pod}-{}", str_at(v, "name")))
            .collect(),
        _ => HashSet::new(),
    };
    for (i, vol) in volumes.iter().enumerate() {
        let p = path.index(i);
        let name = str_at(vol, "name");
        let mut el = Vec::new();
        validate_volume_source(vol, &p, pod_name, &mut el);
        if name.is_empty() {
            el.push(required(&p.child("name"), ""));
        } else {
            for msg in is_dns1123_label(name) {
                el.push(invalid(&p.child("name"), name, &msg));
            }
        }
        if names.contains(name) {
            el.push(duplicate(&p.child("name"), name));
        }
        if el.is_empty() {
            names.insert(name.to_string());
            valid.insert(
                name.to_string(),
                VolumeInfo {
                    is_claim: present(vol, "persistentVolumeClaim").is_some()
                        || present(vol, "ephemeral").is_some(),
                },
            );
        } else {
            errs.extend(el);
        }
        if let Some(claim) = present(vol, "persistentVolumeClaim") {
            let claim_name = str_at(claim, "claimName");
            if created_claims.contains(claim_name) {
                errs.push(invalid(
                    &p.at(&["persistentVolumeClaim", "claimName"]),
                    claim_name,
                    "must not reference a PVC that gets created for an ephemeral volume",
                ));
            }
        }
    }
    valid
}

fn validate_volume_source(vol: &Value, path: &Path, pod_name: Option<&str>, errs: &mut Vec<Cause>) {
    let mut count = 0;
    for key in VOLUME_SOURCES {
        let Some(source) = present(vol, key) else {
            continue;
        };
        if count > 0 {
            errs.push(forbidden(
                &path.child(key),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let p = path.child(key);
        match key {
            "emptyDir" => {
                if let Some(limit) = present(source, "sizeLimit")
                    && from_json(limit).is_some_and(|q| q.is_negative())
                {
                    errs.push(forbidden(
                        &p.child("sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    ));
                }
            }
            "hostPath" => {
                let host_path = str_at(source, "path");
                if host_path.is_empty() {
                    errs.push(required(&p.child("path"), ""));
                    continue;
                }
                validate_no_backsteps(host_path, &p.child("path"), errs);
                if let Some(t) = present(source, "type") {
                    let t = t.as_str().unwrap_or("");
                    const TYPES: [&str; 8] = [
                        "",
                        "BlockDevice",
                        "CharDevice",
                        "Directory",
                        "DirectoryOrCreate",
                        "File",
                        "FileOrCreate",
                        "Socket",
                    ];
                    if !TYPES.contains(&t) {
                        errs.push(not_supported(&p.child("type"), t, &TYPES));
                    }
                }
            }
            "secret" => {
                if str_at(source, "secretName").is_empty() {
                    errs.push(required(&p.child("secretName"), ""));
                }
                validate_mode(source, "defaultMode", &p, errs);
                validate_key_to_paths(source, &p, errs);
            }
            "configMap" => {
                if str_at(source, "name").is_empty() {
                    errs.push(required(&p.child("name"), ""));
                }
                validate_mode(source, "defaultMode", &p, errs);
                validate_key_to_paths(source, &p, errs);
            }
            "downwardAPI" | "projected" => validate_mode(source, "defaultMode", &p, errs),
            "persistentVolumeClaim" if str_at(source, "claimName").is_empty() => {
                errs.push(required(&p.child("claimName"), ""));
            }
            "nfs" => {
                if str_at(source, "server").is_empty() {
                    errs.push(required(&p.child("server"), ""));
                }
                let nfs_path = str_at(source, "path");
                if nfs_path.is_empty() {
                    errs.push(required(&p.child("path"), ""));
                }
                if !nfs_path.starts_with('/') {
                    errs.push(invalid(
                        &p.child("path"),
                        nfs_path,
                        "must be an absolute path",
                    ));
                }
            }
            "csi" if str_at(source, "driver").is_empty() => {
                errs.push(required(&p.child("driver"), ""));
            }
            "ephemeral" => {
                if present(source, "volumeClaimTemplate").is_none() {
                    errs.push(required(&p.child("volumeClaimTemplate"), ""));
                }
                let vol_name = str_at(vol, "name");
                if let Some(pod) = pod_name
                    && !pod.is_empty()
                    && !vol_name.is_empty()
                {
                    let claim = format!("{pod}-{vol_name}");
                    for msg in is_dns1123_subdomain(&claim) {
                        errs.push(invalid(
                            &path.child("name"),
                            vol_name,
                            &format!("PVC name {}: {msg}", go_quote(&claim)),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a volume type"));
    }
}

fn validate_mode(source: &Value, key: &str, path: &Path, errs: &mut Vec<Cause>) {
    if let Some(mode) = int_at(source, key)
        && !(0..=0o777).contains(&mode)
    {
        errs.push(invalid(&path.child(key), mode, FILE_MODE_ERROR));
    }
}

fn validate_key_to_paths(source: &Value, path: &Path, errs: &mut Vec<Cause>) {
    for (i, item) in list_at(source, "items").iter().enumerate() {
        let p = path.child("items").index(i);
        if str_at(item, "key").is_empty() {
            errs.push(required(&p.child("key"), ""));
        }
        let item_path = str_at(item, "path");
        if item_path.is_empty() {
            errs.push(required(&p.child("path"), ""));
        }
        validate_local_non_reserved_path(item_path, &p.child("path"), errs);
        validate_mode(item, "mode", &p, errs);
    }
}

fn validate_no_backsteps(target: &str, path: &Path, errs: &mut Vec<Cause>) {
    if target.split('/').any(|part| part == "..") {
        errs.push(invalid(path, target, "must not contain '..'"));
    }
}

fn validate_local_descending_path(target: &str, path: &Path, errs: &mut Vec<Cause>) {
    if target.starts_with('/') {
        errs.push(invalid(path, target, "must be a relative path"));
    }
    validate_no_backsteps(target, path, errs);
}

fn validate_local_non_reserved_path(target: &str, path: &Path, errs: &mut Vec<Cause>) {
    validate_local_descending_path(target, path, errs);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(invalid(path, target, "must not start with '..'"));
    }
}

fn validate_containers(
    containers: &[Value],
    volumes: &HashMap<String, VolumeInfo>,
    grace: i64,
    path: &Path,
    errs: &mut Vec<Cause>,
) {
    if containers.is_empty() {
        errs.push(required(path, ""));
        return;
    }
    let mut names = HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        validate_container_common(c, volumes, &p, errs);
        let name = str_at(c, "name");
        if !names.insert(name) {
            errs.push(duplicate(&p.child("name"), name));
        }
        validate_lifecycle_and_probes(c, grace, &p, errs);
        if present(c, "restartPolicy").is_some() {
            errs.push(forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    check_host_port_conflicts(containers, path, errs);
}

fn validate_init_containers(
    spec: &Value,
    volumes: &HashMap<String, VolumeInfo>,
    grace: i64,
    path: &Path,
    errs: &mut Vec<Cause>,
) {
    let mut names: HashSet<&str> = list_at(spec, "containers")
        .iter()
        .map(|c| str_at(c, "name"))
        .collect();
    for (i, c) in list_at(spec, "initContainers").iter().enumerate() {
        let p = path.index(i);
        validate_container_common(c, volumes, &p, errs);
        let mut restartable = false;
        if let Some(policy) = present(c, "restartPolicy") {
            let policy = policy.as_str().unwrap_or("");
            if policy == "Always" {
                restartable = true;
            } else {
                errs.push(not_supported(
                    &p.child("restartPolicy"),
                    policy,
                    &["Always"],
                ));
            }
        }
        let name = str_at(c, "name");
        if names.contains(name) {
            errs.push(duplicate(&p.child("name"), name));
        } else if !name.is_empty() {
            names.insert(name);
        }
        check_host_port_conflicts(std::slice::from_ref(c), path, errs);
        if restartable {
            validate_lifecycle_and_probes(c, grace, &p, errs);
        } else {
            for key in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if present(c, key).is_some() {
                    errs.push(forbidden(
                        &p.child(key),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
        if !list_at(c, "resizePolicy").is_empty() {
            errs.push(invalid(
                &p.child("resizePolicy"),
                Bad::json(c.get("resizePolicy").unwrap_or(&Value::Null)),
                "must not be set for init containers",
            ));
        }
    }
}

fn validate_ephemeral_containers(
    spec: &Value,
    volumes: &HashMap<String, VolumeInfo>,
    path: &Path,
    errs: &mut Vec<Cause>,
) {
    let mut names: HashSet<&str> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| list_at(spec, k))
        .map(|c| str_at(c, "name"))
        .collect();
    for (i, c) in list_at(spec, "ephemeralContainers").iter().enumerate() {
        let p = path.index(i);
        validate_container_common(c, volumes, &p, errs);
        validate_image_whitespace(c, &p, errs);
        let name = str_at(c, "name");
        if !names.insert(name) {
            errs.push(duplicate(&p.child("name"), name));
        }
    }
}

/// With host networking the container port is the host port.
fn validate_host_network_ports(spec: &Value, path: &Path, is_pod: bool, errs: &mut Vec<Cause>) {
    if spec.get("hostNetwork").and_then(Value::as_bool) != Some(true) {
        return;
    }
    for (i, c) in list_at(spec, "containers").iter().enumerate() {
        for (j, port) in list_at(c, "ports").iter().enumerate() {
            let host = int_at(port, "hostPort").unwrap_or(0);
            let container = int_at(port, "containerPort").unwrap_or(0);
            if (is_pod || host != 0) && host != container {
                errs.push(invalid(
                    &path
                        .child("containers")
                        .index(i)
                        .child("ports")
                        .index(j)
                        .child("hostPort"),
                    host,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
}

/// Checks shared by regular, init and ephemeral containers (`validateContainerCommon`).
fn validate_container_common(
    c: &Value,
    volumes: &HashMap<String, VolumeInfo>,
    path: &Path,
    errs: &mut Vec<Cause>,
) {
    let name = str_at(c, "name");
    if name.is_empty() {
        errs.push(required(&path.child("name"), ""));
    } else {
        for msg in is_dns1123_label(name) {
            errs.push(invalid(&path.child("name"), name, &msg));
        }
    }
    if str_at(c, "image").is_empty() {
        errs.push(required(&path.child("image"), ""));
    }
    let tmp = str_at(c, "terminationMessagePolicy");
    if !tmp.is_empty() && !matches!(tmp, "File" | "FallbackToLogsOnError") {
        errs.push(not_supported(
            &path.child("terminationMessagePolicy"),
            tmp,
            &["File", "FallbackToLogsOnError"],
        ));
    }
    validate_container_ports(list_at(c, "ports"), &path.child("ports"), errs);
    validate_env(list_at(c, "env"), &path.child("env"), errs);
    validate_env_from(list_at(c, "envFrom"), &path.child("envFrom"), errs);
    validate_volume_mounts(c, volumes, &path.child("volumeMounts"), errs);
    validate_volume_devices(c, volumes, &path.child("volumeDevices"), errs);
    let pull = str_at(c, "imagePullPolicy");
    if !pull.is_empty() && !matches!(pull, "Always" | "IfNotPresent" | "Never") {
        errs.push(not_supported(
            &path.child("imagePullPolicy"),
            pull,
            &["Always", "IfNotPresent", "Never"],
        ));
    }
    validate_resources(
        c.get("resources").unwrap_or(&Value::Null),
        &path.child("resources"),
        errs,
    );
}

fn validate_container_ports(ports: &[Value], path: &Path, errs: &mut Vec<Cause>) {
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = str_at(port, "name");
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(invalid(&p.child("name"), name, &msg));
                }
            } else if !names.insert(name) {
                errs.push(duplicate(&p.child("name"), name));
            }
        }
        match int_at(port, "containerPort").unwrap_or(0) {
            0 => errs.push(required(&p.child("containerPort"), "")),
            n => {
                for msg in is_valid_port_num(n) {
                    errs.push(invalid(&p.child("containerPort"), n, &msg));
                }
            }
        }
        let host = int_at(port, "hostPort").unwrap_or(0);
        if host != 0 {
            for msg in is_valid_port_num(host) {
                errs.push(invalid(&p.child("hostPort"), host, &msg));
            }
        }
        validate_protocol(port, &p, errs);
    }
}

/// A port's protocol: TCP when unset (the default), else one of the supported three.
pub(super) fn validate_protocol(port: &Value, path: &Path, errs: &mut Vec<Cause>) {
    if let Some(protocol) = present(port, "protocol") {
        let protocol = protocol.as_str().unwrap_or("");
        if protocol.is_empty() {
            errs.push(required(&path.child("protocol"), ""));
        } else if !matches!(protocol, "TCP" | "UDP" | "SCTP") {
            errs.push(not_supported(
                &path.child("protocol"),
                protocol,
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }
}

fn check_host_port_conflicts(containers: &[Value], path: &Path, errs: &mut Vec<Cause>) {
    let mut seen = HashSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in list_at(c, "ports").iter().enumerate() {
            let host = int_at(port, "hostPort").unwrap_or(0);
            if host == 0 {
                continue;
            }
            let protocol = port
                .get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP");
            let key = format!("{protocol}/{}/{host}", str_at(port, "hostIP"));
            if !seen.insert(key.clone()) {
                errs.push(duplicate(
                    &path.index(ci).child("ports").index(pi).child("hostPort"),
                    key,
                ));
            }
        }
    }
}

/// Downward API field paths an env var may use.
const ENV_FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// Field labels the v1 pod conversion understands at all.
const CONVERTIBLE_FIELD_PATHS: [&str; 15] = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
    "metadata.generateName",
];

const ENV_RESOURCE_FIELDS: [&str; 6] = [
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn validate_env(vars: &[Value], path: &Path, errs: &mut Vec<Cause>) {
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        let name = str_at(ev, "name");
        if name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        } else {
            for msg in is_env_var_name(name) {
                errs.push(invalid(&p.child("name"), name, &msg));
            }
        }
        let Some(from) = present(ev, "valueFrom") else {
            continue;
        };
        let vp = p.child("valueFrom");
        let mut sources = 0;
        if let Some(field_ref) = present(from, "fieldRef") {
            sources += 1;
            validate_object_field_selector(
                field_ref,
                &ENV_FIELD_PATHS,
                &vp.child("fieldRef"),
                errs,
            );
        }
        if let Some(resource_ref) = present(from, "resourceFieldRef") {
            sources += 1;
            let rp = vp.child("resourceFieldRef");
            let resource = str_at(resource_ref, "resource");
            if resource.is_empty() {
                errs.push(required(&rp.child("resource"), ""));
            } else if !ENV_RESOURCE_FIELDS.contains(&resource)
                && !resource.starts_with("requests.hugepages-")
                && !resource.starts_with("limits.hugepages-")
            {
                errs.push(not_supported(
                    &rp.child("resource"),
                    resource,
                    &ENV_RESOURCE_FIELDS,
                ));
            }
        }
        for key in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(selector) = present(from, key) {
                sources += 1;
                let sp = vp.child(key);
                let ref_name = str_at(selector, "name");
                for msg in is_dns1123_subdomain(ref_name) {
                    errs.push(invalid(&sp.child("name"), ref_name, &msg));
                }
                let ref_key = str_at(selector, "key");
                if ref_key.is_empty() {
                    errs.push(required(&sp.child("key"), ""));
                } else {
                    for msg in is_config_map_key(ref_key) {
                        errs.push(invalid(&sp.child("key"), ref_key, &msg));
                    }
                }
            }
        }
        if sources == 0 {
            errs.push(invalid(
                &vp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !str_at(ev, "value").is_empty() {
            errs.push(invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if sources > 1 {
            errs.push(invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// `validateObjectFieldSelector` for the downward API.
fn validate_object_field_selector(
    selector: &Value,
    allowed: &[&str],
    path: &Path,
    errs: &mut Vec<Cause>,
) {
    let api_version = selector
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1");
    if api_version.is_empty() {
        errs.push(required(&path.child("apiVersion"), ""));
        return;
    }
    let field_path = str_at(selector, "fieldPath");
    if field_path.is_empty() {
        errs.push(required(&path.child("fieldPath"), ""));
        return;
    }
    if api_version != "v1" {
        errs.push(invalid(
            &path.child("fieldPath"),
            field_path,
            &format!("error converting fieldPath: unsupported pod version: {api_version}"),
        ));
        return;
    }
    // `metadata.labels['key']` and `metadata.annotations['key']` select one entry.
    if let Some((base, rest)) = field_path.split_once("['")
        && let Some(subscript) = rest.strip_suffix("']")
    {
        match base {
            "metadata.annotations" => {
                for msg in is_qualified_name(&subscript.to_lowercase()) {
                    errs.push(invalid(path, subscript.to_lowercase(), &msg));
                }
            }
            "metadata.labels" => {
                for msg in is_qualified_name(subscript) {
                    errs.push(invalid(path, subscript, &msg));
                }
            }
            _ => errs.push(invalid(path, base, "does not support subscript")),
        }
        return;
    }
    if !CONVERTIBLE_FIELD_PATHS.contains(&field_path) {
        errs.push(invalid(
            &path.child("fieldPath"),
            field_path,
            &format!("error converting fieldPath: field label not supported: {field_path}"),
        ));
    } else if !allowed.contains(&field_path) {
        errs.push(not_supported(&path.child("fieldPath"), field_path, allowed));
    }
}

fn validate_env_from(sources: &[Value], path: &Path, errs: &mut Vec<Cause>) {
    for (i, source) in sources.iter().enumerate() {
        let p = path.index(i);
        let prefix = str_at(source, "prefix");
        if !prefix.is_empty() {
            for msg in is_env_var_name(prefix) {
                errs.push(invalid(&p.child("prefix"), prefix, &msg));
            }
        }
        let mut count = 0;
        for key in ["configMapRef", "secretRef"] {
            if let Some(r) = present(source, key) {
                count += 1;
                let name = str_at(r, "name");
                if name.is_empty() {
                    errs.push(required(&p.child(key).child("name"), ""));
                } else {
                    for msg in NameRule::Subdomain.check(name, true) {
                        errs.push(invalid(&p.child(key).child("name"), name, &msg));
                    }
                }
            }
        }
        if count == 0 {
            errs.push(invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if count > 1 {
            errs.push(invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

fn validate_volume_mounts(
    c: &Value,
    volumes: &HashMap<String, VolumeInfo>,
    path: &Path,
    errs: &mut Vec<Cause>,
) {
    let device_names: HashSet<&str> = list_at(c, "volumeDevices")
        .iter()
        .map(|d| str_at(d, "name"))
        .collect();
    let device_paths: HashSet<&str> = list_at(c, "volumeDevices")
        .iter()
        .map(|d| str_at(d, "devicePath"))
        .collect();
    let mut mount_points = HashSet::new();
    for (i, mount) in list_at(c, "volumeMounts").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(mount, "name");
        if name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        }
        if !volumes.contains_key(name) {
            errs.push(not_found(&p.child("name"), name));
        }
        let mount_path = str_at(mount, "mountPath");
        if mount_path.is_empty() {
            errs.push(required(&p.child("mountPath"), ""));
        }
        if !mount_points.insert(mount_path) {
            errs.push(invalid(&p.child("mountPath"), mount_path, "must be unique"));
        }
        if device_names.contains(name) {
            errs.push(invalid(
                &p.child("name"),
                name,
                "must not already exist in volumeDevices",
            ));
        }
        if device_paths.contains(mount_path) {
            errs.push(invalid(
                &p.child("mountPath"),
                mount_path,
                "must not already exist as a path in volumeDevices",
            ));
        }
        // Kubernetes reports sub-path problems against the list, not the entry.
        let sub_path = str_at(mount, "subPath");
        if !sub_path.is_empty() {
            validate_local_descending_path(sub_path, &path.child("subPath"), errs);
        }
        let sub_path_expr = str_at(mount, "subPathExpr");
        if !sub_path_expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(invalid(
                    &p.child("subPathExpr"),
                    sub_path_expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            validate_local_descending_path(sub_path_expr, &path.child("subPathExpr"), errs);
        }
        if let Some(propagation) = present(mount, "mountPropagation") {
            let propagation = propagation.as_str().unwrap_or("");
            const MODES: [&str; 3] = ["Bidirectional", "HostToContainer", "None"];
            if !MODES.contains(&propagation) {
                errs.push(not_supported(
                    &path.child("mountPropagation"),
                    propagation,
                    &MODES,
                ));
            }
        }
    }
}

fn validate_volume_devices(
    c: &Value,
    volumes: &HashMap<String, VolumeInfo>,
    path: &Path,
    errs: &mut Vec<Cause>,
) {
    let mount_names: HashSet<&str> = list_at(c, "volumeMounts")
        .iter()
        .map(|m| str_at(m, "name"))
        .collect();
    let mut device_paths = HashSet::new();
    let mut device_names = HashSet::new();
    for (i, dev) in list_at(c, "volumeDevices").iter().enumerate() {
        let p = path.index(i);
        let name = str_at(dev, "name");
        let dev_path = str_at(dev, "devicePath");
        if name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        }
        if !device_names.insert(name) {
            errs.push(invalid(&p.child("name"), name, "must be unique"));
        }
        match volumes.get(name) {
            Some(info) if !info.is_claim => errs.push(invalid(
                &p.child("name"),
                name,
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            )),
            None => errs.push(not_found(&p.child("name"), name)),
            _ => {}
        }
        if dev_path.is_empty() {
            errs.push(required(&p.child("devicePath"), ""));
        }
        if !device_paths.insert(dev_path) {
            errs.push(invalid(&p.child("devicePath"), dev_path, "must be unique"));
        }
        if mount_names.contains(name) {
            errs.push(invalid(
                &p.child("name"),
                name,
                "must not already exist in volumeMounts",
            ));
        }
    }
}

fn validate_lifecycle_and_probes(c: &Value, grace: i64, path: &Path, errs: &mut Vec<Cause>) {
    if let Some(lifecycle) = present(c, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(handler) = present(lifecycle, hook) {
                validate_handler(handler, false, grace, &path.at(&["lifecycle", hook]), errs);
            }
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(probe) = present(c, key) else {
            continue;
        };
        let p = path.child(key);
        validate_handler(probe, true, grace, &p, errs);
        for field in [
            "initialDelaySeconds",
            "timeoutSeconds",
            "periodSeconds",
            "successThreshold",
            "failureThreshold",
        ] {
            if let Some(v) = int_at(probe, field)
                && v < 0
            {
                errs.push(invalid(
                    &p.child(field),
                    v,
                    "must be greater than or equal to 0",
                ));
            }
        }
        let tgps = int_at(probe, "terminationGracePeriodSeconds");
        if let Some(t) = tgps
            && t <= 0
        {
            errs.push(invalid(
                &p.child("terminationGracePeriodSeconds"),
                t,
                "must be greater than 0",
            ));
        }
        match key {
            "readinessProbe" => {
                if let Some(t) = tgps {
                    errs.push(invalid(
                        &p.child("terminationGracePeriodSeconds"),
                        t,
                        "must not be set for readinessProbes",
                    ));
                }
            }
            _ => {
                let success = int_at(probe, "successThreshold").unwrap_or(1);
                if success != 1 {
                    errs.push(invalid(&p.child("successThreshold"), success, "must be 1"));
                }
            }
        }
    }
}

/// `validateHandler`: exactly one action, each well formed.
fn validate_handler(handler: &Value, probe: bool, grace: i64, path: &Path, errs: &mut Vec<Cause>) {
    let kinds: &[&str] = if probe {
        &["exec", "httpGet", "tcpSocket", "grpc"]
    } else {
        &["exec", "httpGet", "tcpSocket", "sleep"]
    };
    let mut count = 0;
    for kind in kinds {
        let Some(action) = present(handler, kind) else {
            continue;
        };
        let p = path.child(kind);
        if count > 0 {
            errs.push(forbidden(&p, "may not specify more than 1 handler type"));
            continue;
        }
        count += 1;
        match *kind {
            "exec" if list_at(action, "command").is_empty() => {
                errs.push(required(&p.child("command"), ""));
            }
            "httpGet" => {
                if action.get("path").and_then(Value::as_str) == Some("") {
                    errs.push(required(&p.child("path"), ""));
                }
                validate_port_num_or_name(action.get("port"), &p.child("port"), errs);
                let scheme = action
                    .get("scheme")
                    .and_then(Value::as_str)
                    .unwrap_or("HTTP");
                if !matches!(scheme, "HTTP" | "HTTPS") {
                    errs.push(not_supported(
                        &p.child("scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
                for header in list_at(action, "httpHeaders") {
                    let name = str_at(header, "name");
                    for msg in is_http_header_name(name) {
                        errs.push(invalid(&p.child("httpHeaders"), name, &msg));
                    }
                }
            }
            "tcpSocket" => validate_port_num_or_name(action.get("port"), &p.child("port"), errs),
            "grpc" => {
                let port = int_at(action, "port").unwrap_or(0);
                for msg in is_valid_port_num(port) {
                    errs.push(invalid(&p.child("port"), port, &msg));
                }
            }
            "sleep" => {
                let seconds = int_at(action, "seconds").unwrap_or(0);
                if seconds <= 0 || seconds > grace {
                    errs.push(invalid(
                        &p,
                        seconds,
                        &format!(
                            "must be greater than 0 and less than terminationGracePeriodSeconds ({grace})"
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a handler type"));
    }
}

/// `ValidatePortNumOrName` for an IntOrString port.
pub(super) fn validate_port_num_or_name(port: Option<&Value>, path: &Path, errs: &mut Vec<Cause>) {
    match port {
        Some(Value::String(name)) => {
            for msg in is_valid_port_name(name) {
                errs.push(invalid(path, name.as_str(), &msg));
            }
        }
        other => {
            let n = other.and_then(Value::as_i64).unwrap_or(0);
            for msg in is_valid_port_num(n) {
                errs.push(invalid(path, n, &msg));
            }
        }
    }
}

/// Resource names a container may request without a domain prefix.
fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

fn is_standard_resource(name: &str) -> bool {
    is_standard_container_resource(name)
        || matches!(
            name,
            "pods"
                | "services"
                | "replicationcontrollers"
                | "resourcequotas"
                | "secrets"
                | "configmaps"
                | "persistentvolumeclaims"
                | "storage"
                | "services.nodeports"
                | "services.loadbalancers"
        )
        || name.starts_with("requests.")
        || name.starts_with("limits.")
}

/// Native resources (unprefixed or `kubernetes.io/`) may be overcommitted unless hugepages.
fn is_overcommit_allowed(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    native && !name.starts_with("hugepages-")
}

fn validate_container_resource_name(name: &str, path: &Path, errs: &mut Vec<Cause>) {
    let msgs = is_qualified_name(name);
    if !msgs.is_empty() {
        for msg in msgs {
            errs.push(invalid(path, name, &msg));
        }
    } else if !name.contains('/') && !is_standard_resource(name) {
        errs.push(invalid(
            path,
            name,
            "must be a standard resource type or fully qualified",
        ));
    }
    if !name.contains('/') && !is_standard_container_resource(name) {
        errs.push(invalid(
            path,
            name,
            "must be a standard resource for containers",
        ));
    }
}

/// Parse one quantity of a resource list, reporting syntax errors, negatives and fractions of
/// integer resources.
fn resource_quantity(
    name: &str,
    value: &Value,
    path: &Path,
    errs: &mut Vec<Cause>,
) -> Option<Quantity> {
    let Some(q) = from_json(value) else {
        errs.push(invalid(path, Bad::json(value), QUANTITY_ERROR));
        return None;
    };
    if q.is_negative() {
        errs.push(invalid(
            path,
            q.canonical(),
            "must be greater than or equal to 0",
        ));
    }
    // Extended resources (prefixed, not kubernetes.io) only come in whole units.
    let extended = name.contains('/') && !name.contains("kubernetes.io/");
    if extended && !q.is_integer() {
        errs.push(invalid(path, Bad::Raw(q.canonical()), "must be an integer"));
    }
    Some(q)
}

/// `ValidateResourceRequirements`: names, quantities, and requests not above limits.
fn validate_resources(resources: &Value, path: &Path, errs: &mut Vec<Cause>) {
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let empty = Map::new();
    let limits = resources
        .get("limits")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let requests = resources
        .get("requests")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut parsed_limits = HashMap::new();
    let mut cpu_or_memory = false;
    let mut hugepages = false;
    for (name, value) in limits {
        let p = lim_path.key(name);
        validate_container_resource_name(name, &p, errs);
        if let Some(q) = resource_quantity(name, value, &p, errs) {
            parsed_limits.insert(name.as_str(), q);
        }
        cpu_or_memory |= matches!(name.as_str(), "cpu" | "memory");
        hugepages |= name.starts_with("hugepages-");
    }
    for (name, value) in requests {
        let p = req_path.key(name);
        validate_container_resource_name(name, &p, errs);
        let request = resource_quantity(name, value, &p, errs);
        match (request, parsed_limits.get(name.as_str())) {
            (Some(request), Some(limit)) => {
                if request != *limit && !is_overcommit_allowed(name) {
                    errs.push(invalid(
                        &req_path,
                        request.canonical(),
                        &format!("must be equal to {name} limit of {}", limit.canonical()),
                    ));
                } else if request > *limit {
                    errs.push(invalid(
                        &req_path,
                        request.canonical(),
                        &format!(
                            "must be less than or equal to {name} limit of {}",
                            limit.canonical()
                        ),
                    ));
                }
            }
            (_, None) if !is_overcommit_allowed(name) && !limits.contains_key(name) => {
                errs.push(required(
                    &lim_path,
                    "Limit must be set for non overcommitable resources",
                ));
            }
            _ => {}
        }
        cpu_or_memory |= matches!(name.as_str(), "cpu" | "memory");
        hugepages |= name.starts_with("hugepages-");
    }
    if hugepages && !cpu_or_memory {
        errs.push(forbidden(path, "HugePages require cpu or memory"));
    }
}

/// `%#v` of a `core.Toleration`; a set `tolerationSeconds` is a pointer Go prints as an address,
/// so that case falls back to JSON.
fn go_toleration(t: &Value) -> Bad {
    if present(t, "tolerationSeconds").is_some() {
        return Bad::json(t);
    }
    Bad::Raw(format!(
        "core.Toleration{{Key:{}, Operator:{}, Value:{}, Effect:{}, TolerationSeconds:(*int64)(nil)}}",
        go_quote(str_at(t, "key")),
        go_quote(str_at(t, "operator")),
        go_quote(str_at(t, "value")),
        go_quote(str_at(t, "effect"))
    ))
}

/// `ValidateTolerations`.
pub(super) fn validate_tolerations(tolerations: &[Value], path: &Path, errs: &mut Vec<Cause>) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let key = str_at(t, "key");
        if !key.is_empty() {
            for msg in is_qualified_name(key) {
                errs.push(invalid(&p.child("key"), key, &msg));
            }
        }
        let operator = str_at(t, "operator");
        if key.is_empty() && operator != "Exists" {
            errs.push(invalid(
                &p.child("operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        let effect = str_at(t, "effect");
        if present(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            errs.push(invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = str_at(t, "value");
        match operator {
            "Equal" | "" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(invalid(&p.child("operator"), value, &msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(invalid(
                        &p.child("operator"),
                        go_toleration(t),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(not_supported(
                &p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            errs.push(not_supported(
                &p.child("effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
}

/// `ValidatePodUpdate`: beyond what the new spec must satisfy on its own, only a few fields
/// may change.
fn validate_pod_update(spec: &Value, old_spec: &Value, errs: &mut Vec<Cause>) {
    let path = Path::new("spec");
    for key in ["containers", "initContainers"] {
        let new = list_at(spec, key);
        let old = list_at(old_spec, key);
        if new.len() != old.len() {
            errs.push(forbidden(
                &path.child(key),
                "pod updates may not add or remove containers",
            ));
            return;
        }
    }

    if let Some(deadline) = int_at(spec, "activeDeadlineSeconds") {
        if !(0..=MAX_INT32).contains(&deadline) {
            errs.push(invalid(
                &path.child("activeDeadlineSeconds"),
                deadline,
                &inclusive_range_error(0, MAX_INT32),
            ));
            return;
        }
        if let Some(old_deadline) = int_at(old_spec, "activeDeadlineSeconds")
            && old_deadline < deadline
        {
            errs.push(invalid(
                &path.child("activeDeadlineSeconds"),
                deadline,
                "must be less than or equal to previous value",
            ));
            return;
        }
    } else if int_at(old_spec, "activeDeadlineSeconds").is_some() {
        errs.push(invalid(
            &path.child("activeDeadlineSeconds"),
            Bad::Null,
            "must not update from a positive integer to nil value",
        ));
    }

    // Existing tolerations may only change their tolerationSeconds.
    let new_tolerations = list_at(spec, "tolerations");
    let strip_seconds = |t: &Value| {
        let mut t = normalized(t);
        if let Some(map) = t.as_object_mut() {
            map.remove("tolerationSeconds");
        }
        t
    };
    let kept = list_at(old_spec, "tolerations").iter().all(|old| {
        let old = strip_seconds(old);
        new_tolerations.iter().any(|new| strip_seconds(new) == old)
    });
    if !kept {
        errs.push(forbidden(
            &path.child("tolerations"),
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }

    let munged = munge_pod_spec(spec, old_spec);
    let old_norm = normalized(old_spec);
    if munged != old_norm {
        errs.push(forbidden(
            &path,
            &format!(
                "pod updates may not change fields other than {}\n{}",
                UPDATABLE_POD_SPEC_FIELDS.join(","),
                struct_diff("core.PodSpec", &old_norm, &munged)
            ),
        ));
    }
}

/// The new spec with every field a pod update may change taken from the old spec.
fn munge_pod_spec(spec: &Value, old_spec: &Value) -> Value {
    let mut munged = spec.clone();
    if let Some(map) = munged.as_object_mut() {
        for key in ["containers", "initContainers"] {
            if let Some(Value::Array(list)) = map.get_mut(key) {
                for (c, old) in list.iter_mut().zip(list_at(old_spec, key)) {
                    if let Some(c) = c.as_object_mut() {
                        match old.get("image") {
                            Some(image) => c.insert("image".into(), image.clone()),
                            None => c.remove("image"),
                        };
                    }
                }
            }
        }
        for key in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
            match old_spec.get(key) {
                Some(v) => map.insert(key.into(), v.clone()),
                None => map.remove(key),
            };
        }
        let old_grace = int_at(old_spec, "terminationGracePeriodSeconds");
        if old_grace.is_some_and(|g| g < 0)
            && int_at(spec, "terminationGracePeriodSeconds") == Some(1)
        {
            map.insert(
                "terminationGracePeriodSeconds".into(),
                Value::from(old_grace.unwrap_or_default()),
            );
        }
    }
    normalized(&munged)
}
