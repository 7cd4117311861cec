//! Jobs and CronJobs: the generated selector and template labels, counts and modes, the restart
//! policy a job pod may use, cron schedules and time zones, and what a Job update may change.

use serde_json::{Map, Value};

use super::apps::{nonnegative, spec};
use super::field::{
    Bad, Path, go_label_selector, go_string_map, invalid, not_supported, present, required, str_at,
};
use super::meta::{same, selector_matches, validate_label_selector};
use super::names::is_dns1123_label;
use super::pod::validate_pod_template_spec;
use super::{JOB_CONTROLLER_UID_LABELS, JOB_NAME_LABELS};
use crate::status::Cause;

/// The largest parallelism an Indexed Job may ask for.
const MAX_PARALLELISM_FOR_INDEXED_JOB: i64 = 100_000;

pub(super) fn validate_job(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if old.is_none() {
        validate_generated_selector(obj, spec, errs);
    }
    validate_job_spec(spec, &path, errs);
    match present(spec, "selector") {
        None => errs.push(required(&path.child("selector"), "")),
        Some(selector) => validate_label_selector(selector, &path.child("selector"), errs),
    }
    // A missing selector selects nothing, so the template cannot match it either.
    let mismatch = match present(spec, "selector") {
        None => true,
        Some(selector) => {
            !super::meta::selector_is_empty(selector)
                && selector_matches(selector, template_labels(spec)) == Some(false)
        }
    };
    if mismatch {
        errs.push(invalid(
            &path.at(&["template", "metadata", "labels"]),
            Bad::Raw(go_string_map(template_labels(spec))),
            "`selector` does not match template `labels`",
        ));
    }
    if str_at(spec, "completionMode") == "Indexed"
        && let Some(completions) = spec.get("completions").and_then(Value::as_i64)
        && completions > 0
    {
        // Pod hostnames get an index suffix; the longest one must still be a DNS label.
        let hostname = format!("{name}-{}", completions - 1);
        if !is_dns1123_label(&hostname).is_empty() {
            errs.push(invalid(
                &Path::new("metadata").child("name"),
                name,
                &format!("will not able to create pod with invalid DNS label: {hostname}"),
            ));
        }
    }
    if let Some(old) = old {
        validate_job_update(spec, old, errs);
    }
}

fn template_labels(spec: &Value) -> Option<&Map<String, Value>> {
    spec.pointer("/template/metadata/labels")
        .and_then(Value::as_object)
}

/// `validateGeneratedSelector`: unless the selector is manual, the template carries the
/// generated labels and the selector selects them.
fn validate_generated_selector(obj: &Value, spec: &Value, errs: &mut Vec<Cause>) {
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let Some(selector) = present(spec, "selector") else {
        return;
    };
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if uid.is_empty() {
        errs.push(required(&Path::new("metadata").child("uid"), ""));
    }
    let meta_path = Path::new("spec").at(&["template", "metadata"]);
    let labels = template_labels(spec);
    let mut expected = Map::new();
    // Kubernetes checks the legacy label before the prefixed one.
    for (keys, value) in [(JOB_CONTROLLER_UID_LABELS, uid), (JOB_NAME_LABELS, name)] {
        let keys = [keys[1], keys[0]];
        for key in keys {
            match labels.and_then(|l| l.get(key)).and_then(Value::as_str) {
                None => errs.push(required(
                    &meta_path.child("labels").key(key),
                    &format!("must be '{value}'"),
                )),
                Some(actual) if actual != value => errs.push(invalid(
                    &meta_path.child("labels").key(key),
                    Bad::Raw(go_string_map(labels)),
                    &format!("must be '{value}'"),
                )),
                Some(_) => {}
            }
            expected.insert(key.to_string(), Value::from(value));
        }
    }
    if selector_matches(selector, Some(&expected)) == Some(false) {
        errs.push(invalid(
            &Path::new("spec").child("selector"),
            Bad::Raw(go_label_selector(selector)),
            "`selector` not auto-generated",
        ));
    }
}

/// `validateJobSpec`: the checks shared by Jobs and CronJob job templates.
fn validate_job_spec(spec: &Value, path: &Path, errs: &mut Vec<Cause>) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(spec, key, path, errs);
    }
    if let Some(mode) = present(spec, "completionMode") {
        let mode = mode.as_str().unwrap_or("");
        if !matches!(mode, "NonIndexed" | "Indexed") {
            errs.push(not_supported(
                &path.child("completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
        if mode == "Indexed" {
            if present(spec, "completions").is_none() {
                errs.push(required(
                    &path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(parallelism) = spec.get("parallelism").and_then(Value::as_i64)
                && parallelism > MAX_PARALLELISM_FOR_INDEXED_JOB
            {
                errs.push(invalid(
                    &path.child("parallelism"),
                    parallelism,
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
        }
    }
    let has_failure_policy = present(spec, "podFailurePolicy").is_some();
    if let Some(policy) = present(spec, "podReplacementPolicy") {
        let policy = policy.as_str().unwrap_or("");
        if has_failure_policy {
            if policy != "Failed" {
                errs.push(not_supported(
                    &path.child("podReplacementPolicy"),
                    policy,
                    &["Failed"],
                ));
            }
        } else if !matches!(policy, "Failed" | "TerminatingOrFailed") {
            errs.push(not_supported(
                &path.child("podReplacementPolicy"),
                policy,
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let template_path = path.child("template");
    validate_pod_template_spec(
        spec.get("template").unwrap_or(&Value::Null),
        &template_path,
        errs,
    );
    let restart_path = template_path.at(&["spec", "restartPolicy"]);
    let restart = spec
        .pointer("/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    // The pod default (Always) is not acceptable for a job, hence "required".
    if restart == "Always" || restart.is_empty() {
        errs.push(required(
            &restart_path,
            "valid values: \"OnFailure\", \"Never\"",
        ));
    } else if !matches!(restart, "OnFailure" | "Never") {
        errs.push(not_supported(
            &restart_path,
            restart,
            &["OnFailure", "Never"],
        ));
    } else if has_failure_policy && restart != "Never" {
        errs.push(invalid(
            &restart_path,
            restart,
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
}

/// `ValidateJobSpecUpdate`.
fn validate_job_update(spec: &Value, old: &Value, errs: &mut Vec<Cause>) {
    let old_spec = old.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    let indexed = str_at(spec, "completionMode") == "Indexed";
    let completions = present(spec, "completions");
    if !same(completions, present(old_spec, "completions")) {
        if !indexed {
            errs.push(invalid(
                &path.child("completions"),
                Bad::json(completions.unwrap_or(&Value::Null)),
                "field is immutable",
            ));
        } else if let Some(c) = completions
            && Some(c) != present(spec, "parallelism")
        {
            errs.push(invalid(
                &path.child("completions"),
                Bad::json(c),
                "can only be modified in tandem with spec.parallelism",
            ));
        }
    }
    if !same(present(spec, "selector"), present(old_spec, "selector")) {
        errs.push(invalid(
            &path.child("selector"),
            Bad::Raw(go_label_selector(
                spec.get("selector").unwrap_or(&Value::Null),
            )),
            "field is immutable",
        ));
    }
    // A suspended Job that never started may still change where its pods will run.
    let suspended = spec.get("suspend").and_then(Value::as_bool) == Some(true);
    let never_started = old.pointer("/status/startTime").is_none_or(Value::is_null);
    let mut template = spec.get("template").cloned().unwrap_or(Value::Null);
    let mut old_template = old_spec.get("template").cloned().unwrap_or(Value::Null);
    if suspended && never_started {
        for t in [&mut template, &mut old_template] {
            if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("labels");
                meta.remove("annotations");
            }
            if let Some(pod) = t.get_mut("spec").and_then(Value::as_object_mut) {
                pod.remove("nodeSelector");
                pod.remove("tolerations");
                pod.remove("schedulingGates");
                if let Some(affinity) = pod.get_mut("affinity").and_then(Value::as_object_mut) {
                    affinity.remove("nodeAffinity");
                }
            }
        }
    }
    if !same(Some(&template), Some(&old_template)) {
        errs.push(invalid(
            &path.child("template"),
            Bad::json(spec.get("template").unwrap_or(&Value::Null)),
            "field is immutable",
        ));
    }
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        if !same(present(spec, key), present(old_spec, key)) {
            errs.push(invalid(
                &path.child(key),
                Bad::json(spec.get(key).unwrap_or(&Value::Null)),
                "field is immutable",
            ));
        }
    }
}

/// Whether the time zone database knows `zone`. When no database is available at all, every
/// well-formed name is accepted rather than rejecting everything.
pub(super) fn is_known_time_zone(zone: &str) -> bool {
    jiff::tz::TimeZone::get(zone).is_ok() || jiff::tz::TimeZone::get("Europe/London").is_err()
}

pub(super) fn validate_cron_job(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    let old_spec = old.and_then(|o| o.get("spec"));

    let schedule = str_at(spec, "schedule");
    let schedule_path = path.child("schedule");
    if schedule.is_empty() {
        errs.push(required(&schedule_path, ""));
    } else {
        if let Err(msg) = super::cron::parse_standard(schedule) {
            errs.push(invalid(&schedule_path, schedule, &msg));
        }
        // Stored schedules that already used TZ keep working; new ones must use timeZone.
        let allow_tz = old_spec.is_some_and(|s| str_at(s, "schedule").contains("TZ"));
        let has_time_zone = present(spec, "timeZone").is_some();
        if allow_tz && schedule.contains("TZ") && has_time_zone {
            errs.push(invalid(
                &schedule_path,
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(invalid(
                &schedule_path,
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    nonnegative(spec, "startingDeadlineSeconds", &path, errs);
    let time_zone = present(spec, "timeZone");
    if time_zone.is_some() && !old_spec.is_some_and(|s| present(s, "timeZone") == time_zone) {
        validate_time_zone(
            time_zone.and_then(Value::as_str).unwrap_or(""),
            &path.child("timeZone"),
            errs,
        );
    }
    let policy = str_at(spec, "concurrencyPolicy");
    if !policy.is_empty() && !matches!(policy, "Allow" | "Forbid" | "Replace") {
        errs.push(not_supported(
            &path.child("concurrencyPolicy"),
            policy,
            &["Allow", "Forbid", "Replace"],
        ));
    }
    let template_path = path.child("jobTemplate");
    let job_spec = spec.pointer("/jobTemplate/spec").unwrap_or(&Value::Null);
    let job_spec_path = template_path.child("spec");
    validate_job_spec(job_spec, &job_spec_path, errs);
    if let Some(selector) = present(job_spec, "selector") {
        errs.push(invalid(
            &job_spec_path.child("selector"),
            Bad::Raw(go_label_selector(selector)),
            "`selector` will be auto-generated",
        ));
    }
    if job_spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        errs.push(not_supported(
            &job_spec_path.child("manualSelector"),
            true,
            &["nil", "false"],
        ));
    }
    nonnegative(spec, "successfulJobsHistoryLimit", &path, errs);
    nonnegative(spec, "failedJobsHistoryLimit", &path, errs);

    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    // Job names get an 11-character suffix and must stay within 63 characters.
    if old.is_none() && name.len() > 52 {
        errs.push(invalid(
            &Path::new("metadata").child("name"),
            name,
            "must be no more than 52 characters",
        ));
    }
}

fn validate_time_zone(zone: &str, path: &Path, errs: &mut Vec<Cause>) {
    if zone.is_empty() {
        errs.push(invalid(
            path,
            zone,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    let well_formed = zone.split('/').all(|part| {
        part != "."
            && part != ".."
            && !part.starts_with('-')
            && (1..=14).contains(&part.len())
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
    });
    if !well_formed {
        errs.push(invalid(path, zone, &format!("unknown time zone {zone}")));
        return;
    }
    if zone.eq_ignore_ascii_case("Local") {
        errs.push(invalid(
            path,
            zone,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    } else if !is_known_time_zone(zone) {
        errs.push(invalid(path, zone, &format!("unknown time zone {zone}")));
    }
}
