//! Workload controllers of the `apps` group (and the core ReplicationController): selectors that
//! must exist and match the template, replica counts, rollout strategies, and what an update may
//! not change.

use serde_json::Value;

use super::field::{
    Bad, Path, forbidden, go_int_or_string, go_label_selector, go_string_map, int_at, invalid,
    not_supported, present, required, str_at,
};
use super::meta::{normalized, same, selector_is_empty, selector_matches, validate_label_selector};
use super::names::is_valid_percent;
use super::pod::validate_pod_template_spec;
use crate::status::Cause;

const NONNEGATIVE: &str = "must be greater than or equal to 0";

pub(super) fn spec(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

/// `ValidateNonnegativeField` for an optional integer.
pub(super) fn nonnegative(obj: &Value, key: &str, path: &Path, errs: &mut Vec<Cause>) {
    if let Some(v) = int_at(obj, key)
        && v < 0
    {
        errs.push(invalid(&path.child(key), v, NONNEGATIVE));
    }
}

fn template_labels(spec: &Value) -> Option<&serde_json::Map<String, Value>> {
    spec.pointer("/template/metadata/labels")
        .and_then(Value::as_object)
}

/// The selector part shared by Deployments, ReplicaSets and StatefulSets: required, valid,
/// non-empty, and matching the template labels.
fn validate_selector_and_template(
    spec: &Value,
    path: &Path,
    empty_message: &str,
    invalid_message: &str,
    errs: &mut Vec<Cause>,
) -> bool {
    let selector = present(spec, "selector");
    match selector {
        None => errs.push(required(&path.child("selector"), "")),
        Some(selector) => {
            validate_label_selector(selector, &path.child("selector"), errs);
            if selector_is_empty(selector) {
                errs.push(invalid(
                    &path.child("selector"),
                    Bad::Raw(go_label_selector(selector)),
                    empty_message,
                ));
            }
        }
    }
    let matches = match selector {
        // A nil selector converts to "nothing", which matches no labels at all, while an
        // empty one converts to "everything", which skips the check.
        None => Some(false),
        Some(selector) if selector_is_empty(selector) => Some(true),
        Some(selector) => selector_matches(selector, template_labels(spec)),
    };
    match matches {
        None => {
            errs.push(invalid(
                &path.child("selector"),
                Bad::Raw(go_label_selector(selector.unwrap_or(&Value::Null))),
                invalid_message,
            ));
            false
        }
        Some(false) => {
            errs.push(invalid(
                &path.at(&["template", "metadata", "labels"]),
                Bad::Raw(go_string_map(template_labels(spec))),
                "`selector` does not match template `labels`",
            ));
            true
        }
        Some(true) => true,
    }
}

/// `ValidatePodTemplateSpecForReplicaSet`: the template must restart pods always and may not
/// carry a deadline.
fn validate_replica_template(spec: &Value, path: &Path, kind: &str, errs: &mut Vec<Cause>) {
    let template_path = path.child("template");
    let template = spec.get("template").unwrap_or(&Value::Null);
    validate_pod_template_spec(template, &template_path, errs);
    validate_always_restart(template, &template_path, errs);
    forbid_active_deadline(template, &template_path, kind, errs);
}

/// Controller-managed pods run until replaced, so a template may not carry a deadline.
fn forbid_active_deadline(
    template: &Value,
    template_path: &Path,
    kind: &str,
    errs: &mut Vec<Cause>,
) {
    if template
        .pointer("/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(forbidden(
            &template_path.at(&["spec", "activeDeadlineSeconds"]),
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

fn validate_always_restart(template: &Value, template_path: &Path, errs: &mut Vec<Cause>) {
    let restart = template
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always");
    if restart != "Always" {
        errs.push(not_supported(
            &template_path.at(&["spec", "restartPolicy"]),
            restart,
            &["Always"],
        ));
    }
}

/// `%#v` of a strategy struct with an unknown type. Go prints a set `rollingUpdate` as a pointer
/// address, so that case falls back to JSON.
fn go_strategy(type_name: &str, rolling_type: &str, strategy: &Value) -> Bad {
    if present(strategy, "rollingUpdate").is_some() {
        return Bad::json(strategy);
    }
    Bad::Raw(format!(
        "{type_name}{{Type:{}, RollingUpdate:(*{rolling_type})(nil)}}",
        super::field::go_quote(str_at(strategy, "type"))
    ))
}

/// `ValidatePositiveIntOrPercent`.
fn validate_int_or_percent(value: &Value, path: &Path, errs: &mut Vec<Cause>) {
    match value {
        Value::String(s) => {
            for msg in is_valid_percent(s) {
                errs.push(invalid(path, Bad::Raw(go_int_or_string(value)), &msg));
            }
        }
        other => {
            let n = other.as_i64().unwrap_or(0);
            if n < 0 {
                errs.push(invalid(path, n, NONNEGATIVE));
            }
        }
    }
}

fn percent_value(value: &Value) -> Option<i64> {
    let s = value.as_str()?;
    if !is_valid_percent(s).is_empty() {
        return None;
    }
    s.trim_end_matches('%').parse().ok()
}

/// `getIntOrPercentValue`: a malformed string counts as 0, as in Kubernetes.
fn int_or_percent_value(value: Option<&Value>) -> i64 {
    match value {
        Some(v @ Value::String(_)) => percent_value(v).unwrap_or(0),
        Some(v) => v.as_i64().unwrap_or(0),
        None => 0,
    }
}

fn not_more_than_100_percent(value: &Value, path: &Path, errs: &mut Vec<Cause>) {
    if percent_value(value).is_some_and(|p| p > 100) {
        errs.push(invalid(
            path,
            Bad::Raw(go_int_or_string(value)),
            "must not be greater than 100%",
        ));
    }
}

/// The selector may not change after creation (apps/v1 strategies).
fn validate_selector_immutable(spec: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let Some(old) = old else { return };
    let new_sel = present(spec, "selector");
    let old_sel = present(old, "spec").and_then(|s| present(s, "selector"));
    if !same(new_sel, old_sel) {
        errs.push(invalid(
            &Path::new("spec").child("selector"),
            Bad::Raw(go_label_selector(new_sel.unwrap_or(&Value::Null))),
            "field is immutable",
        ));
    }
}

pub(super) fn validate_deployment(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    nonnegative(spec, "replicas", &path, errs);
    if validate_selector_and_template(
        spec,
        &path,
        "empty selector is invalid for deployment",
        "invalid label selector",
        errs,
    ) {
        validate_replica_template(spec, &path, "ReplicaSet", errs);
    }
    if let Some(strategy) = present(spec, "strategy") {
        validate_deployment_strategy(strategy, &path.child("strategy"), errs);
    }
    nonnegative(spec, "minReadySeconds", &path, errs);
    nonnegative(spec, "revisionHistoryLimit", &path, errs);
    if let Some(deadline) = int_at(spec, "progressDeadlineSeconds") {
        if deadline < 0 {
            errs.push(invalid(
                &path.child("progressDeadlineSeconds"),
                deadline,
                NONNEGATIVE,
            ));
        }
        if deadline <= int_at(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(invalid(
                &path.child("progressDeadlineSeconds"),
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    validate_selector_immutable(spec, old, errs);
}

fn validate_deployment_strategy(strategy: &Value, path: &Path, errs: &mut Vec<Cause>) {
    match str_at(strategy, "type") {
        "Recreate" => {
            if present(strategy, "rollingUpdate").is_some() {
                errs.push(forbidden(
                    &path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match present(strategy, "rollingUpdate") {
            None => errs.push(required(
                &path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let p = path.child("rollingUpdate");
                let unavailable = ru.get("maxUnavailable").cloned().unwrap_or(Value::from(0));
                let surge = ru.get("maxSurge").cloned().unwrap_or(Value::from(0));
                validate_int_or_percent(&unavailable, &p.child("maxUnavailable"), errs);
                validate_int_or_percent(&surge, &p.child("maxSurge"), errs);
                if int_or_percent_value(Some(&unavailable)) == 0
                    && int_or_percent_value(Some(&surge)) == 0
                {
                    errs.push(invalid(
                        &p.child("maxUnavailable"),
                        Bad::Raw(go_int_or_string(&unavailable)),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100_percent(&unavailable, &p.child("maxUnavailable"), errs);
            }
        },
        _ => errs.push(not_supported(
            path,
            go_strategy(
                "apps.DeploymentStrategy",
                "apps.RollingUpdateDeployment",
                strategy,
            ),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

pub(super) fn validate_replica_set(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    nonnegative(spec, "replicas", &path, errs);
    nonnegative(spec, "minReadySeconds", &path, errs);
    // Kubernetes' ReplicaSet validation really says "deployment" here.
    if validate_selector_and_template(
        spec,
        &path,
        "empty selector is invalid for deployment",
        "invalid label selector",
        errs,
    ) {
        validate_replica_template(spec, &path, "ReplicaSet", errs);
    }
    validate_selector_immutable(spec, old, errs);
}

pub(super) fn validate_stateful_set(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    match str_at(spec, "podManagementPolicy") {
        "" | "OrderedReady" | "Parallel" => {}
        other => errs.push(invalid(
            &path.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    if let Some(strategy) = present(spec, "updateStrategy") {
        let sp = path.child("updateStrategy");
        match str_at(strategy, "type") {
            "" | "RollingUpdate" => {
                if let Some(ru) = present(strategy, "rollingUpdate") {
                    let rp = sp.child("rollingUpdate");
                    nonnegative(ru, "partition", &rp, errs);
                    if let Some(max) = present(ru, "maxUnavailable") {
                        validate_int_or_percent(max, &rp.child("maxUnavailable"), errs);
                        if int_or_percent_value(Some(max)) == 0 {
                            errs.push(invalid(
                                &rp.child("maxUnavailable"),
                                Bad::Raw(go_int_or_string(max)),
                                "cannot be 0",
                            ));
                        }
                        not_more_than_100_percent(max, &rp.child("maxUnavailable"), errs);
                    }
                }
            }
            "OnDelete" => {
                if let Some(ru) = present(strategy, "rollingUpdate") {
                    errs.push(invalid(
                        &sp.child("rollingUpdate"),
                        Bad::json(ru),
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            _ => errs.push(invalid(
                &sp,
                go_strategy(
                    "apps.StatefulSetUpdateStrategy",
                    "apps.RollingUpdateStatefulSetStrategy",
                    strategy,
                ),
                "must be 'RollingUpdate' or 'OnDelete'",
            )),
        }
    }
    if let Some(policy) = present(spec, "persistentVolumeClaimRetentionPolicy") {
        let pp = path.child("persistentVolumeClaimRetentionPolicy");
        for key in ["whenDeleted", "whenScaled"] {
            let value = policy.get(key).and_then(Value::as_str).unwrap_or("Retain");
            if !matches!(value, "Retain" | "Delete") {
                errs.push(not_supported(&pp.child(key), value, &["Retain", "Delete"]));
            }
        }
    }
    nonnegative(spec, "replicas", &path, errs);
    nonnegative(spec, "minReadySeconds", &path, errs);
    nonnegative(spec, "revisionHistoryLimit", &path, errs);
    if let Some(ordinals) = present(spec, "ordinals")
        && let Some(start) = int_at(ordinals, "start")
        && start < 0
    {
        errs.push(invalid(&path.child("ordinals.start"), start, NONNEGATIVE));
    }
    validate_selector_and_template(
        spec,
        &path,
        "empty selector is invalid for statefulset",
        "",
        errs,
    );
    // StatefulSet templates only get their metadata checked: volumes may come from claim
    // templates, so the pod spec is validated when pods are created.
    let template_path = path.child("template");
    let template = spec.get("template").unwrap_or(&Value::Null);
    let meta = template.get("metadata").unwrap_or(&Value::Null);
    super::meta::validate_labels(
        meta.get("labels").and_then(Value::as_object),
        &template_path.child("labels"),
        errs,
    );
    super::meta::validate_annotations(
        meta.get("annotations").and_then(Value::as_object),
        &template_path.child("annotations"),
        errs,
    );
    validate_always_restart(template, &template_path, errs);
    forbid_active_deadline(template, &template_path, "StatefulSet", errs);

    if let Some(old) = old {
        // Everything but these fields is fixed once the StatefulSet exists.
        let strip = |s: &Value| {
            let mut s = normalized(s);
            if let Some(map) = s.as_object_mut() {
                for key in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "revisionHistoryLimit",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                ] {
                    map.remove(key);
                }
            }
            s
        };
        if strip(spec) != strip(old.get("spec").unwrap_or(&Value::Null)) {
            errs.push(forbidden(
                &path,
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

pub(super) fn validate_daemon_set(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    let selector = present(spec, "selector");
    if let Some(selector) = selector {
        validate_label_selector(selector, &path.child("selector"), errs);
    }
    // A missing selector matches nothing, so the template can never match it.
    let matches = match selector {
        None => Some(false),
        Some(selector) => selector_matches(selector, template_labels(spec)),
    };
    if matches == Some(false) {
        errs.push(invalid(
            &path.at(&["template", "metadata", "labels"]),
            Bad::Raw(go_string_map(template_labels(spec))),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(selector) = selector
        && selector_is_empty(selector)
    {
        errs.push(invalid(
            &path.child("selector"),
            Bad::Raw(go_label_selector(selector)),
            "empty selector is invalid for daemonset",
        ));
    }
    let template_path = path.child("template");
    let template = spec.get("template").unwrap_or(&Value::Null);
    validate_pod_template_spec(template, &template_path, errs);
    validate_always_restart(template, &template_path, errs);
    forbid_active_deadline(template, &template_path, "DaemonSet", errs);
    nonnegative(spec, "minReadySeconds", &path, errs);
    if let Some(strategy) = present(spec, "updateStrategy") {
        let sp = path.child("updateStrategy");
        match str_at(strategy, "type") {
            "OnDelete" => {}
            "RollingUpdate" => match present(strategy, "rollingUpdate") {
                None => errs.push(required(&sp.child("rollingUpdate"), "")),
                Some(ru) => {
                    let rp = sp.child("rollingUpdate");
                    let unavailable = ru.get("maxUnavailable").cloned().unwrap_or(Value::from(0));
                    let surge = ru.get("maxSurge").cloned().unwrap_or(Value::from(0));
                    validate_int_or_percent(&unavailable, &rp.child("maxUnavailable"), errs);
                    validate_int_or_percent(&surge, &rp.child("maxSurge"), errs);
                    not_more_than_100_percent(&unavailable, &rp.child("maxUnavailable"), errs);
                    not_more_than_100_percent(&surge, &rp.child("maxSurge"), errs);
                    let has_unavailable = int_or_percent_value(Some(&unavailable)) != 0;
                    let has_surge = int_or_percent_value(Some(&surge)) != 0;
                    if has_unavailable && has_surge {
                        errs.push(invalid(
                            &rp.child("maxSurge"),
                            Bad::Raw(go_int_or_string(&surge)),
                            "may not be set when maxUnavailable is non-zero",
                        ));
                    } else if !has_unavailable && !has_surge {
                        errs.push(required(
                            &rp.child("maxUnavailable"),
                            "cannot be 0 when maxSurge is 0",
                        ));
                    }
                }
            },
            _ => errs.push(not_supported(
                &sp,
                go_strategy(
                    "apps.DaemonSetUpdateStrategy",
                    "apps.RollingUpdateDaemonSet",
                    strategy,
                ),
                &["RollingUpdate", "OnDelete"],
            )),
        }
    }
    nonnegative(spec, "revisionHistoryLimit", &path, errs);
    validate_selector_immutable(spec, old, errs);
}

/// The core ReplicationController: a plain label-map selector defaulted from the template.
pub(super) fn validate_replication_controller(obj: &Value, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    let selector = spec.get("selector").and_then(Value::as_object);
    match selector {
        Some(s) if !s.is_empty() => {
            super::meta::validate_labels(Some(s), &path.child("selector"), errs);
        }
        _ => errs.push(required(&path.child("selector"), "")),
    }
    nonnegative(spec, "replicas", &path, errs);
    nonnegative(spec, "minReadySeconds", &path, errs);
    let template_path = path.child("template");
    let Some(template) = present(spec, "template") else {
        errs.push(required(&template_path, ""));
        return;
    };
    if let Some(selector) = selector.filter(|s| !s.is_empty()) {
        let labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let matches = selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)).and_then(Value::as_str) == v.as_str());
        if !matches {
            errs.push(invalid(
                &template_path.at(&["metadata", "labels"]),
                Bad::Raw(go_string_map(labels)),
                "`selector` does not match template `labels`",
            ));
        }
    }
    validate_pod_template_spec(template, &template_path, errs);
    validate_always_restart(template, &template_path, errs);
    forbid_active_deadline(template, &template_path, "ReplicationController", errs);
}
