//! The remaining kinds clients create every day: HorizontalPodAutoscalers, PodDisruptionBudgets,
//! PriorityClasses, StorageClasses, RBAC bindings and CustomResourceDefinitions.

use std::collections::HashSet;

use serde_json::Value;

use super::SYSTEM_PRIORITY_CLASSES;
use super::apps::spec;
use super::field::{
    Bad, Path, forbidden, go_quote, int_at, invalid, list_at, not_supported, present, required,
    str_at, too_long,
};
use super::meta::{same, validate_label_selector};
use super::names::{
    is_dns1035_label, is_dns1123_subdomain, is_qualified_name, is_valid_path_segment_name,
    is_valid_percent,
};
use super::quantity::from_json;
use crate::status::Cause;

pub(super) fn validate_hpa(obj: &Value, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    let min = int_at(spec, "minReplicas");
    if let Some(min) = min
        && min < 1
    {
        errs.push(invalid(
            &path.child("minReplicas"),
            min,
            "must be greater than or equal to 1",
        ));
    }
    let max = int_at(spec, "maxReplicas").unwrap_or(0);
    if max < 1 {
        errs.push(invalid(
            &path.child("maxReplicas"),
            max,
            "must be greater than 0",
        ));
    }
    if let Some(min) = min
        && max < min
    {
        errs.push(invalid(
            &path.child("maxReplicas"),
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    // As in Kubernetes, metrics and behavior are only looked at once the target is valid.
    let mut ref_errs = Vec::new();
    let target = spec.get("scaleTargetRef").unwrap_or(&Value::Null);
    let tp = path.child("scaleTargetRef");
    for key in ["kind", "name"] {
        let value = str_at(target, key);
        if value.is_empty() {
            ref_errs.push(required(&tp.child(key), ""));
        } else {
            for msg in is_valid_path_segment_name(value) {
                ref_errs.push(invalid(&tp.child(key), value, &msg));
            }
        }
    }
    if !ref_errs.is_empty() {
        errs.extend(ref_errs);
        return;
    }
    if let Some(target) = int_at(spec, "targetCPUUtilizationPercentage")
        && target < 1
    {
        // autoscaling/v1 objects are validated as their v2 form.
        errs.push(invalid(
            &path
                .at(&["metrics"])
                .index(0)
                .at(&["resource", "target", "averageUtilization"]),
            target,
            "must be greater than 0",
        ));
        return;
    }
    let mut metric_errs = Vec::new();
    for (i, metric) in list_at(spec, "metrics").iter().enumerate() {
        validate_metric(metric, &path.child("metrics").index(i), &mut metric_errs);
    }
    if !metric_errs.is_empty() {
        errs.extend(metric_errs);
        return;
    }
    if let Some(behavior) = present(spec, "behavior") {
        let bp = path.child("behavior");
        for key in ["scaleUp", "scaleDown"] {
            if let Some(rules) = present(behavior, key) {
                validate_scaling_rules(rules, &bp.child(key), errs);
            }
        }
    }
}

const METRIC_TYPES: [&str; 5] = [
    "Object",
    "Pods",
    "Resource",
    "External",
    "ContainerResource",
];

fn validate_metric(metric: &Value, path: &Path, errs: &mut Vec<Cause>) {
    let metric_type = str_at(metric, "type");
    if metric_type.is_empty() {
        errs.push(required(
            &path.child("type"),
            "must specify a metric source type",
        ));
    }
    let sources = [
        ("Object", "object"),
        ("Pods", "pods"),
        ("Resource", "resource"),
        ("External", "external"),
        ("ContainerResource", "containerResource"),
    ];
    let present_sources: Vec<&str> = sources
        .iter()
        .filter(|(_, field)| present(metric, field).is_some())
        .map(|(_, field)| *field)
        .collect();
    if let Some(resource) = present(metric, "resource")
        && present_sources.len() == 1
    {
        validate_resource_metric(resource, &path.child("resource"), errs);
    }
    match sources.iter().find(|(t, _)| *t == metric_type) {
        Some((_, field)) => {
            if present(metric, field).is_none() {
                errs.push(required(
                    &path.child(field),
                    "must populate information for the given metric source",
                ));
            }
            if present_sources.len() != 1 {
                for other in present_sources.iter().filter(|f| *f != field) {
                    errs.push(forbidden(
                        &path.child(other),
                        "must populate the given metric source only",
                    ));
                }
            }
        }
        None => errs.push(not_supported(
            &path.child("type"),
            metric_type,
            &METRIC_TYPES,
        )),
    }
}

fn validate_resource_metric(resource: &Value, path: &Path, errs: &mut Vec<Cause>) {
    let name = str_at(resource, "name");
    if name.is_empty() {
        errs.push(required(
            &path.child("name"),
            "must specify a resource name",
        ));
    }
    let target = resource.get("target").unwrap_or(&Value::Null);
    let tp = path.child("target");
    let target_type = str_at(target, "type");
    if target_type.is_empty() {
        errs.push(required(
            &tp.child("type"),
            "must specify a metric target type",
        ));
    }
    if !matches!(target_type, "Utilization" | "Value" | "AverageValue") {
        errs.push(invalid(
            &tp.child("type"),
            target_type,
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    for key in ["value", "averageValue"] {
        if let Some(v) = present(target, key)
            && from_json(v).is_none_or(|q| q.is_negative() || q.is_zero())
        {
            errs.push(invalid(&tp.child(key), Bad::json(v), "must be positive"));
        }
    }
    let utilization = int_at(target, "averageUtilization");
    if let Some(u) = utilization
        && u < 1
    {
        errs.push(invalid(
            &tp.child("averageUtilization"),
            u,
            "must be greater than 0",
        ));
    }
    let average_value = present(target, "averageValue");
    if utilization.is_none() && average_value.is_none() {
        errs.push(required(
            &tp.child("averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if utilization.is_some() && average_value.is_some() {
        errs.push(forbidden(
            &tp.child("averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
}

fn validate_scaling_rules(rules: &Value, path: &Path, errs: &mut Vec<Cause>) {
    if let Some(window) = int_at(rules, "stabilizationWindowSeconds") {
        if window < 0 {
            errs.push(invalid(
                &path.child("stabilizationWindowSeconds"),
                window,
                "must be greater than or equal to zero",
            ));
        }
        if window > 3600 {
            errs.push(invalid(
                &path.child("stabilizationWindowSeconds"),
                window,
                "must be less than or equal to 3600",
            ));
        }
    }
    if let Some(select) = present(rules, "selectPolicy") {
        let select = select.as_str().unwrap_or("");
        if !matches!(select, "Max" | "Min" | "Disabled") {
            errs.push(not_supported(
                &path.child("selectPolicy"),
                select,
                &["Max", "Min", "Disabled"],
            ));
        }
    }
    let policies = list_at(rules, "policies");
    if policies.is_empty() {
        errs.push(required(
            &path.child("policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, policy) in policies.iter().enumerate() {
        let p = path.child("policies").index(i);
        let policy_type = str_at(policy, "type");
        if !matches!(policy_type, "Pods" | "Percent") {
            errs.push(not_supported(
                &p.child("type"),
                policy_type,
                &["Pods", "Percent"],
            ));
        }
        let value = int_at(policy, "value").unwrap_or(0);
        if value <= 0 {
            errs.push(invalid(
                &p.child("value"),
                value,
                "must be greater than zero",
            ));
        }
        let period = int_at(policy, "periodSeconds").unwrap_or(0);
        if period <= 0 {
            errs.push(invalid(
                &p.child("periodSeconds"),
                period,
                "must be greater than zero",
            ));
        }
        if period > 1800 {
            errs.push(invalid(
                &p.child("periodSeconds"),
                period,
                "must be less than or equal to 1800",
            ));
        }
    }
}

pub(super) fn validate_pdb(obj: &Value, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    let min = present(spec, "minAvailable");
    let max = present(spec, "maxUnavailable");
    if min.is_some() && max.is_some() {
        errs.push(invalid(
            &path,
            Bad::json(spec),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (key, value) in [("minAvailable", min), ("maxUnavailable", max)] {
        let Some(value) = value else { continue };
        let p = path.child(key);
        let rendered = Bad::Raw(super::field::go_int_or_string(value));
        match value {
            Value::String(s) => {
                for msg in is_valid_percent(s) {
                    errs.push(invalid(&p, rendered.clone(), &msg));
                }
                let percent: Option<i64> = is_valid_percent(s)
                    .is_empty()
                    .then(|| s.trim_end_matches('%').parse().ok())
                    .flatten();
                if percent.is_some_and(|v| v > 100) {
                    errs.push(invalid(&p, rendered, "must not be greater than 100%"));
                }
            }
            other => {
                let n = other.as_i64().unwrap_or(0);
                if n < 0 {
                    errs.push(invalid(&p, n, "must be greater than or equal to 0"));
                }
            }
        }
    }
    if let Some(selector) = present(spec, "selector") {
        validate_label_selector(selector, &path.child("selector"), errs);
    }
    if let Some(policy) = present(spec, "unhealthyPodEvictionPolicy") {
        let policy = policy.as_str().unwrap_or("");
        if !matches!(policy, "AlwaysAllow" | "IfHealthyBudget") {
            errs.push(not_supported(
                &path.child("unhealthyPodEvictionPolicy"),
                policy,
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
    }
}

/// `HighestUserDefinablePriority`.
const MAX_USER_PRIORITY: i64 = 1_000_000_000;

pub(super) fn validate_priority_class(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = int_at(obj, "value").unwrap_or(0);
    let global_default = obj.get("globalDefault").and_then(Value::as_bool) == Some(true);
    if name.starts_with("system-") {
        let err = match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _)| *n == name) {
            None => Some(format!("{name} is not a known system priority class")),
            Some((n, v)) if *v != value => Some(format!("value of {n} PriorityClass must be {v}")),
            Some((n, _)) if global_default => {
                Some(format!("globalDefault of {n} PriorityClass must be false"))
            }
            Some(_) => None,
        };
        if let Some(err) = err {
            errs.push(forbidden(
                &Path::new("metadata").child("name"),
                &format!(
                    "priority class names with 'system-' prefix are reserved for system use only. error: {err}"
                ),
            ));
        }
    } else if value > MAX_USER_PRIORITY {
        errs.push(forbidden(
            &Path::new("value"),
            &format!("maximum allowed value of a user defined priority is {MAX_USER_PRIORITY}"),
        ));
    }
    if let Some(policy) = present(obj, "preemptionPolicy") {
        let policy = policy.as_str().unwrap_or("");
        if policy.is_empty() {
            errs.push(required(&Path::new("preemptionPolicy"), ""));
        } else if !matches!(policy, "PreemptLowerPriority" | "Never") {
            errs.push(not_supported(
                &Path::new("preemptionPolicy"),
                policy,
                &["PreemptLowerPriority", "Never"],
            ));
        }
    }
    if let Some(old) = old {
        if int_at(old, "value").unwrap_or(0) != value {
            errs.push(forbidden(
                &Path::new("value"),
                "may not be changed in an update.",
            ));
        }
        if !same(obj.get("preemptionPolicy"), old.get("preemptionPolicy")) {
            errs.push(invalid(
                &Path::new("preemptionPolicy"),
                Bad::json(obj.get("preemptionPolicy").unwrap_or(&Value::Null)),
                "field is immutable",
            ));
        }
    }
}

/// `maxProvisionerParameterSize` and `maxProvisionerParameterLen`.
const MAX_PARAMETERS_BYTES: usize = 256 * 1024;
const MAX_PARAMETERS: usize = 512;

pub(super) fn validate_storage_class(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let provisioner = str_at(obj, "provisioner");
    let pp = Path::new("provisioner");
    if provisioner.is_empty() {
        errs.push(required(&pp, ""));
    } else {
        let lower = provisioner.to_lowercase();
        for msg in is_qualified_name(&lower) {
            errs.push(invalid(&pp, lower.as_str(), &msg));
        }
    }
    let params_path = Path::new("parameters");
    let params = obj.get("parameters").and_then(Value::as_object);
    if let Some(params) = params {
        if params.len() > MAX_PARAMETERS {
            errs.push(too_long(&params_path, MAX_PARAMETERS));
        } else {
            let mut total = 0usize;
            for (k, v) in params {
                if k.is_empty() {
                    errs.push(invalid(&params_path, k.as_str(), "field can not be empty."));
                }
                total += k.len() + v.as_str().map_or(0, str::len);
            }
            if total > MAX_PARAMETERS_BYTES {
                errs.push(too_long(&params_path, MAX_PARAMETERS_BYTES));
            }
        }
    }
    let reclaim = str_at(obj, "reclaimPolicy");
    if !reclaim.is_empty() && !matches!(reclaim, "Delete" | "Retain") {
        errs.push(not_supported(
            &Path::new("reclaimPolicy"),
            reclaim,
            &["Delete", "Retain"],
        ));
    }
    if let Some(mode) = present(obj, "volumeBindingMode") {
        let mode = mode.as_str().unwrap_or("");
        if !matches!(mode, "Immediate" | "WaitForFirstConsumer") {
            errs.push(not_supported(
                &Path::new("volumeBindingMode"),
                mode,
                &["Immediate", "WaitForFirstConsumer"],
            ));
        }
    }
    if let Some(old) = old {
        if !same(obj.get("parameters"), old.get("parameters")) {
            errs.push(forbidden(
                &params_path,
                "updates to parameters are forbidden.",
            ));
        }
        if provisioner != str_at(old, "provisioner") {
            errs.push(forbidden(&pp, "updates to provisioner are forbidden."));
        }
        let reclaim_or_default = |o: &Value| {
            o.get("reclaimPolicy")
                .and_then(Value::as_str)
                .unwrap_or("Delete")
                .to_string()
        };
        if reclaim_or_default(obj) != reclaim_or_default(old) {
            errs.push(forbidden(
                &Path::new("reclaimPolicy"),
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        if !same(obj.get("volumeBindingMode"), old.get("volumeBindingMode")) {
            errs.push(invalid(
                &Path::new("volumeBindingMode"),
                Bad::json(obj.get("volumeBindingMode").unwrap_or(&Value::Null)),
                "field is immutable",
            ));
        }
    }
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// RoleBindings and ClusterRoleBindings: a well-formed roleRef that never changes, and subjects
/// of known kinds.
pub(super) fn validate_role_binding(
    obj: &Value,
    old: Option<&Value>,
    cluster: bool,
    errs: &mut Vec<Cause>,
) {
    let role_ref = obj.get("roleRef").unwrap_or(&Value::Null);
    let rp = Path::new("roleRef");
    let api_group = str_at(role_ref, "apiGroup");
    if api_group != RBAC_GROUP {
        errs.push(not_supported(
            &rp.child("apiGroup"),
            api_group,
            &[RBAC_GROUP],
        ));
    }
    let kind = str_at(role_ref, "kind");
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(not_supported(&rp.child("kind"), kind, kinds));
    }
    let name = str_at(role_ref, "name");
    if name.is_empty() {
        errs.push(required(&rp.child("name"), ""));
    } else {
        for msg in is_valid_path_segment_name(name) {
            errs.push(invalid(&rp.child("name"), name, &msg));
        }
    }
    for (i, subject) in list_at(obj, "subjects").iter().enumerate() {
        let sp = Path::new("subjects").index(i);
        let subject_name = str_at(subject, "name");
        if subject_name.is_empty() {
            errs.push(required(&sp.child("name"), ""));
        }
        let group = str_at(subject, "apiGroup");
        match str_at(subject, "kind") {
            "ServiceAccount" => {
                if !subject_name.is_empty() {
                    for msg in is_dns1123_subdomain(subject_name) {
                        errs.push(invalid(&sp.child("name"), subject_name, &msg));
                    }
                }
                if !group.is_empty() {
                    errs.push(not_supported(&sp.child("apiGroup"), group, &[""]));
                }
                if cluster && str_at(subject, "namespace").is_empty() {
                    errs.push(required(&sp.child("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    errs.push(not_supported(&sp.child("apiGroup"), group, &[RBAC_GROUP]));
                }
            }
            other => errs.push(not_supported(
                &sp.child("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    if let Some(old) = old
        && !same(obj.get("roleRef"), old.get("roleRef"))
    {
        errs.push(invalid(
            &rp,
            Bad::Raw(format!(
                "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
                go_quote(api_group),
                go_quote(kind),
                go_quote(name)
            )),
            "cannot change roleRef",
        ));
    }
}

/// CustomResourceDefinitions (apiextensions' `ValidateCustomResourceDefinition`, minus the
/// structural-schema analysis).
pub(super) fn validate_crd(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    let group = str_at(spec, "group");
    if group.is_empty() {
        errs.push(required(&path.child("group"), ""));
    } else {
        let msgs = is_dns1123_subdomain(group);
        if !msgs.is_empty() {
            errs.push(invalid(&path.child("group"), group, &msgs.join(",")));
        } else if !group.contains('.') {
            errs.push(invalid(
                &path.child("group"),
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    match str_at(spec, "scope") {
        "" => errs.push(required(&path.child("scope"), "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(not_supported(
            &path.child("scope"),
            other,
            &["Cluster", "Namespaced"],
        )),
    }

    let versions = list_at(spec, "versions");
    let versions_value = || Bad::json(spec.get("versions").unwrap_or(&Value::Null));
    let mut storage = 0;
    let mut names = HashSet::new();
    let mut unique = true;
    for (i, version) in versions.iter().enumerate() {
        let vp = path.child("versions").index(i);
        if version.get("storage").and_then(Value::as_bool) == Some(true) {
            storage += 1;
        }
        let name = str_at(version, "name");
        if !names.insert(name) {
            unique = false;
        }
        let msgs = is_dns1035_label(name);
        if !msgs.is_empty() {
            errs.push(invalid(&vp.child("name"), name, &msgs.join(",")));
        }
        if version
            .pointer("/schema/openAPIV3Schema")
            .is_none_or(Value::is_null)
        {
            errs.push(required(
                &vp.at(&["schema", "openAPIV3Schema"]),
                "schemas are required",
            ));
        }
        for (j, column) in list_at(version, "additionalPrinterColumns")
            .iter()
            .enumerate()
        {
            let cp = vp.child("additionalPrinterColumns").index(j);
            if str_at(column, "name").is_empty() {
                errs.push(required(&cp.child("name"), ""));
            }
            const TYPES: &str = "boolean,date,integer,number,string";
            let column_type = str_at(column, "type");
            if column_type.is_empty() {
                errs.push(required(
                    &cp.child("type"),
                    &format!("must be one of {TYPES}"),
                ));
            } else if !TYPES.split(',').any(|t| t == column_type) {
                errs.push(invalid(
                    &cp.child("type"),
                    column_type,
                    &format!("must be one of {TYPES}"),
                ));
            }
            if str_at(column, "jsonPath").is_empty() {
                errs.push(required(&cp.child("JSONPath"), ""));
            }
        }
    }
    if !unique {
        errs.push(invalid(
            &path.child("versions"),
            versions_value(),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(invalid(
            &path.child("versions"),
            versions_value(),
            "must have exactly one version marked as storage version",
        ));
    }

    let names_value = spec.get("names").unwrap_or(&Value::Null);
    let np = path.child("names");
    for key in ["plural", "singular", "kind", "listKind"] {
        if str_at(names_value, key).is_empty() {
            errs.push(required(&np.child(key), ""));
        }
    }
    for key in ["plural", "singular"] {
        let value = str_at(names_value, key);
        let msgs = is_dns1035_label(value);
        if !value.is_empty() && !msgs.is_empty() {
            errs.push(invalid(&np.child(key), value, &msgs.join(",")));
        }
    }
    for key in ["kind", "listKind"] {
        let value = str_at(names_value, key);
        let msgs = is_dns1035_label(&value.to_lowercase());
        if !value.is_empty() && !msgs.is_empty() {
            errs.push(invalid(
                &np.child(key),
                value,
                &format!(
                    "may have mixed case, but should otherwise match: {}",
                    msgs.join(",")
                ),
            ));
        }
    }
    for key in ["shortNames", "categories"] {
        for (i, value) in list_at(names_value, key).iter().enumerate() {
            let value = value.as_str().unwrap_or("");
            let msgs = is_dns1035_label(value);
            if !msgs.is_empty() {
                errs.push(invalid(&np.child(key).index(i), value, &msgs.join(",")));
            }
        }
    }
    let kind = str_at(names_value, "kind");
    if !kind.is_empty() && kind == str_at(names_value, "listKind") {
        errs.push(invalid(
            &np.child("listKind"),
            kind,
            "kind and listKind may not be the same",
        ));
    }

    if let Some(conversion) = present(spec, "conversion") {
        let cp = path.child("conversion");
        let strategy = str_at(conversion, "strategy");
        match strategy {
            "" => errs.push(required(&cp.child("strategy"), "")),
            "None" => {
                if present(conversion, "webhook").is_some() {
                    errs.push(forbidden(
                        &cp.child("webhookClientConfig"),
                        "should not be set when strategy is not set to Webhook",
                    ));
                }
            }
            "Webhook" => {
                let client_config = conversion.pointer("/webhook/clientConfig");
                match client_config.filter(|c| !c.is_null()) {
                    None => errs.push(required(
                        &cp.child("webhookClientConfig"),
                        "required when strategy is set to Webhook",
                    )),
                    Some(cc) => {
                        if present(cc, "url").is_some() == present(cc, "service").is_some() {
                            errs.push(required(
                                &cp.child("webhookClientConfig"),
                                "exactly one of url or service is required",
                            ));
                        }
                    }
                }
                let review_versions = conversion
                    .pointer("/webhook/conversionReviewVersions")
                    .and_then(Value::as_array);
                match review_versions {
                    Some(v) if !v.is_empty() => {
                        if !v
                            .iter()
                            .any(|x| matches!(x.as_str(), Some("v1" | "v1beta1")))
                        {
                            errs.push(invalid(
                                &cp.child("conversionReviewVersions"),
                                Bad::Raw(super::field::go_string_slice(Some(v))),
                                "must include at least one of v1, v1beta1",
                            ));
                        }
                    }
                    _ => errs.push(required(&cp.child("conversionReviewVersions"), "")),
                }
            }
            other => errs.push(not_supported(
                &cp.child("strategy"),
                other,
                &["None", "Webhook"],
            )),
        }
    }

    if let Some(old) = old {
        let old_spec = old.get("spec").unwrap_or(&Value::Null);
        let established = list_at(old.get("status").unwrap_or(&Value::Null), "conditions")
            .iter()
            .any(|c| str_at(c, "type") == "Established" && str_at(c, "status") == "True");
        if established {
            for (key, value, old_value) in [
                ("scope", str_at(spec, "scope"), str_at(old_spec, "scope")),
                (
                    "names.kind",
                    str_at(names_value, "kind"),
                    old_spec
                        .pointer("/names/kind")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                ),
            ] {
                if value != old_value {
                    let p = key.split('.').fold(path.clone(), |p, k| p.child(k));
                    errs.push(invalid(&p, value, "field is immutable"));
                }
            }
        }
        if group != str_at(old_spec, "group") {
            errs.push(invalid(&path.child("group"), group, "field is immutable"));
        }
        let plural = str_at(names_value, "plural");
        let old_plural = old_spec
            .pointer("/names/plural")
            .and_then(Value::as_str)
            .unwrap_or("");
        if plural != old_plural {
            errs.push(invalid(&np.child("plural"), plural, "field is immutable"));
        }
    }
}
