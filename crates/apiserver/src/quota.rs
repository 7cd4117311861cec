//! Namespace limits at admission, as Kubernetes' LimitRanger and ResourceQuota admission
//! plugins do:
//!
//! - LimitRanges give a new pod's containers their `default` limits and `defaultRequest`
//!   requests (noted in the `kubernetes.io/limit-ranger` annotation) and refuse a pod outside
//!   `min`, `max` or `maxLimitRequestRatio`, per container or per pod;
//! - ResourceQuotas refuse an object that would take the namespace past `spec.hard` (pods,
//!   `requests.*`, `limits.*`, `cpu`/`memory`, object counts such as `configmaps` or
//!   `count/deployments.apps`), and a pod that does not state a resource a quota limits. Usage is
//!   counted from the watch cache when the object arrives; creations under a quota are
//!   serialized so that two cannot both take the last room. Quota scopes are not supported yet.
//!
//! `usage` also feeds the ResourceQuota status the controllers keep.

use std::collections::BTreeMap;

use maestro_api::{ApiError, quantity, resources};
use serde_json::{Map, Value, json};

use crate::object::StoredObject;
use crate::registry::Resource;
use maestro_store::WatchCache;

fn list(
    cache: &WatchCache<StoredObject>,
    plural: &str,
    group: &str,
    namespace: &str,
) -> Vec<Value> {
    let Some(info) = resources::find_builtin(group, "v1", plural) else {
        return Vec::new();
    };
    cache
        .list(&info.namespace_prefix(Some(namespace)))
        .0
        .iter()
        .map(|o| o.value())
        .collect()
}

/// A pod's requests or limits (`field`) per resource, in milli-units: the sum over app
/// containers, or the largest init container if more, plus the pod overhead.
pub fn pod_amounts(pod: &Value, field: &str) -> BTreeMap<String, i128> {
    let of = |c: &Value| -> BTreeMap<String, i128> {
        c["resources"][field]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), quantity::milli(v.as_str()?)?)))
            .collect()
    };
    let mut total: BTreeMap<String, i128> = BTreeMap::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        for (k, v) in of(c) {
            *total.entry(k).or_default() += v;
        }
    }
    for c in pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for (k, v) in of(c) {
            let slot = total.entry(k).or_default();
            *slot = (*slot).max(v);
        }
    }
    for (k, v) in pod["spec"]["overhead"].as_object().into_iter().flatten() {
        if let Some(m) = v.as_str().and_then(quantity::milli) {
            *total.entry(k.clone()).or_default() += m;
        }
    }
    total
}

fn active_pod(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// The amount `name` (a quota resource name) that one object adds, in milli-units.
fn amount_of(name: &str, plural: &str, group: &str, object: &Value) -> i128 {
    let is = |p: &str, g: &str| plural == p && group == g;
    if let Some(counted) = name.strip_prefix("count/") {
        let (p, g) = counted.split_once('.').unwrap_or((counted, ""));
        return if is(p, g) { 1000 } else { 0 };
    }
    match name {
        "pods" if is("pods", "") => i128::from(active_pod(object)) * 1000,
        "services"
        | "configmaps"
        | "secrets"
        | "persistentvolumeclaims"
        | "replicationcontrollers"
        | "resourcequotas"
            if is(name, "") =>
        {
            1000
        }
        "services.nodeports" if is("services", "") => {
            let nodeport = matches!(
                object["spec"]["type"].as_str(),
                Some("NodePort" | "LoadBalancer")
            );
            if nodeport {
                object["spec"]["ports"]
                    .as_array()
                    .map_or(0, |p| p.len() as i128)
                    * 1000
            } else {
                0
            }
        }
        "services.loadbalancers" if is("services", "") => {
            i128::from(object["spec"]["type"] == "LoadBalancer") * 1000
        }
        "requests.storage" if is("persistentvolumeclaims", "") => object
            .pointer("/spec/resources/requests/storage")
            .and_then(Value::as_str)
            .and_then(quantity::milli)
            .unwrap_or(0),
        _ if is("pods", "") && active_pod(object) => {
            let (field, resource) = match name.split_once('.') {
                Some(("requests", r)) => ("requests", r),
                Some(("limits", r)) => ("limits", r),
                _ => ("requests", name),
            };
            pod_amounts(object, field)
                .get(resource)
                .copied()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// Which (plural, group) a quota resource name counts.
fn counted_kind(name: &str) -> (String, String) {
    if let Some(counted) = name.strip_prefix("count/") {
        let (p, g) = counted.split_once('.').unwrap_or((counted, ""));
        return (p.to_string(), g.to_string());
    }
    match name {
        "services" | "services.nodeports" | "services.loadbalancers" => {
            ("services".into(), String::new())
        }
        "configmaps"
        | "secrets"
        | "persistentvolumeclaims"
        | "replicationcontrollers"
        | "resourcequotas" => (name.into(), String::new()),
        "requests.storage" => ("persistentvolumeclaims".into(), String::new()),
        _ => ("pods".into(), String::new()),
    }
}

/// Current usage in a namespace of each resource named in `hard`, in milli-units.
pub fn usage(
    cache: &WatchCache<StoredObject>,
    namespace: &str,
    hard: &Map<String, Value>,
) -> BTreeMap<String, i128> {
    let mut used = BTreeMap::new();
    let mut objects: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for name in hard.keys() {
        let kind = counted_kind(name);
        let list = objects
            .entry(kind.clone())
            .or_insert_with(|| list(cache, &kind.0, &kind.1, namespace));
        let total = list
            .iter()
            .map(|o| amount_of(name, &kind.0, &kind.1, o))
            .sum();
        used.insert(name.clone(), total);
    }
    used
}

/// A milli-unit amount written back as a quantity: cores and counts as plain or `m` numbers,
/// bytes in binary units when they divide evenly.
pub fn format_amount(name: &str, milli: i128) -> String {
    let bytes = name.contains("memory") || name.contains("storage");
    if bytes && milli % 1000 == 0 {
        let value = milli / 1000;
        for (unit, size) in [
            ("Ti", 1i128 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if value != 0 && value % size == 0 {
                return format!("{}{unit}", value / size);
            }
        }
        return value.to_string();
    }
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// Whether the namespace has quotas (creations there are checked and serialized).
pub fn has_quota(cache: &WatchCache<StoredObject>, namespace: &str) -> bool {
    let info = resources::find_builtin("", "v1", "resourcequotas").expect("built in");
    cache.count(&info.namespace_prefix(Some(namespace))) > 0
}

/// A resource over its quota: (name, requested, used, limit), in milli-units.
type Excess = (String, i128, i128, i128);

/// Refuse `object` if it takes the namespace past a quota.
pub fn check_quota(
    cache: &WatchCache<StoredObject>,
    res: &Resource,
    namespace: &str,
    name: &str,
    object: &Value,
) -> Result<(), ApiError> {
    let plural = res.info.plural.as_str();
    let group = res.info.group.as_str();
    for quota in list(cache, "resourcequotas", "", namespace) {
        let Some(hard) = quota["spec"]["hard"].as_object() else {
            continue;
        };
        let quota_name = quota["metadata"]["name"].as_str().unwrap_or_default();
        // A pod must state every compute resource a quota limits.
        if plural == "pods" && group.is_empty() {
            let mut missing = Vec::new();
            for resource in hard.keys() {
                let (field, r) = match resource.split_once('.') {
                    Some(("requests", r)) if !r.contains('/') && r != "storage" => ("requests", r),
                    Some(("limits", r)) => ("limits", r),
                    None if resource == "cpu" || resource == "memory" => {
                        ("requests", resource.as_str())
                    }
                    _ => continue,
                };
                let unstated: Vec<&str> = object["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["resources"][field].get(r).is_none())
                    .filter_map(|c| c["name"].as_str())
                    .collect();
                if !unstated.is_empty() {
                    missing.push(format!("{resource} for: {}", unstated.join(",")));
                }
            }
            if !missing.is_empty() {
                return Err(ApiError::forbidden(format!(
                    "{plural} \"{name}\" is forbidden: failed quota: {quota_name}: must specify {}",
                    missing.join("; ")
                )));
            }
        }
        let used = usage(cache, namespace, hard);
        let mut over: Vec<Excess> = Vec::new();
        for (resource, limit) in hard {
            let added = amount_of(resource, plural, group, object);
            if added == 0 {
                continue;
            }
            let Some(limit) = limit
                .as_str()
                .and_then(quantity::milli)
                .or_else(|| limit.as_i64().map(|n| i128::from(n) * 1000))
            else {
                continue;
            };
            let now = used.get(resource).copied().unwrap_or(0);
            if now + added > limit {
                over.push((resource.clone(), added, now, limit));
            }
        }
        if !over.is_empty() {
            // One list per column: requested, used, limited.
            let column = |pick: fn(&Excess) -> i128| {
                over.iter()
                    .map(|e| format!("{}={}", e.0, format_amount(&e.0, pick(e))))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(ApiError::forbidden(format!(
                "{plural} \"{name}\" is forbidden: exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
                column(|e| e.1),
                column(|e| e.2),
                column(|e| e.3),
            )));
        }
    }
    Ok(())
}

/// LimitRange defaults and bounds for a new pod.
pub fn apply_limit_ranges(
    cache: &WatchCache<StoredObject>,
    namespace: &str,
    name: &str,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let ranges = list(cache, "limitranges", "", namespace);
    if ranges.is_empty() {
        return Ok(());
    }
    let mut defaulted: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let milli = |v: &Value| v.as_str().and_then(quantity::milli);
    for range in &ranges {
        for item in range["spec"]["limits"].as_array().into_iter().flatten() {
            match item["type"].as_str() {
                Some("Container") => {
                    for list_name in ["containers", "initContainers"] {
                        let Some(containers) = pod["spec"][list_name].as_array_mut() else {
                            continue;
                        };
                        for c in containers {
                            let cname = c["name"].as_str().unwrap_or_default().to_string();
                            for (field, source) in [
                                ("limits", "default"),
                                ("requests", "defaultRequest"),
                                ("requests", "default"),
                            ] {
                                for (resource, value) in
                                    item[source].as_object().into_iter().flatten()
                                {
                                    if c["resources"][field].get(resource).is_none() {
                                        c["resources"][field][resource] = value.clone();
                                        let kind = if field == "limits" {
                                            "limit"
                                        } else {
                                            "request"
                                        };
                                        let init = if list_name == "initContainers" {
                                            "init "
                                        } else {
                                            ""
                                        };
                                        defaulted.push(format!(
                                            "{resource} {kind} for {init}container {cname}"
                                        ));
                                    }
                                }
                            }
                            for (resource, bound) in item["min"].as_object().into_iter().flatten() {
                                if let (Some(min), Some(req)) = (
                                    milli(bound),
                                    c["resources"]["requests"].get(resource).and_then(milli),
                                ) && req < min
                                {
                                    problems.push(format!("minimum {resource} usage per Container is {}, but request is {}", bound.as_str().unwrap_or_default(), c["resources"]["requests"][resource].as_str().unwrap_or_default()));
                                }
                            }
                            for (resource, bound) in item["max"].as_object().into_iter().flatten() {
                                match c["resources"]["limits"].get(resource).and_then(milli) {
                                    Some(limit) if milli(bound).is_some_and(|max| limit > max) => problems.push(format!("maximum {resource} usage per Container is {}, but limit is {}", bound.as_str().unwrap_or_default(), c["resources"]["limits"][resource].as_str().unwrap_or_default())),
                                    None => problems.push(format!("maximum {resource} usage per Container is {}.  No limit is specified", bound.as_str().unwrap_or_default())),
                                    _ => {}
                                }
                            }
                            for (resource, ratio) in item["maxLimitRequestRatio"]
                                .as_object()
                                .into_iter()
                                .flatten()
                            {
                                let limit = c["resources"]["limits"].get(resource).and_then(milli);
                                let request =
                                    c["resources"]["requests"].get(resource).and_then(milli);
                                if let (Some(l), Some(r), Some(max)) =
                                    (limit, request, milli(ratio))
                                    && r > 0
                                    && l * 1000 / r > max
                                {
                                    problems.push(format!("{resource} max limit to request ratio per Container is {}, but provided ratio is {:.6}", ratio.as_str().unwrap_or_default(), l as f64 / r as f64));
                                }
                            }
                        }
                    }
                }
                Some("Pod") => {
                    let requests = pod_amounts(pod, "requests");
                    let limits = pod_amounts(pod, "limits");
                    for (resource, bound) in item["min"].as_object().into_iter().flatten() {
                        if milli(bound)
                            .is_some_and(|min| requests.get(resource).copied().unwrap_or(0) < min)
                        {
                            problems.push(format!(
                                "minimum {resource} usage per Pod is {}, but request is {}",
                                bound.as_str().unwrap_or_default(),
                                format_amount(
                                    resource,
                                    requests.get(resource).copied().unwrap_or(0)
                                )
                            ));
                        }
                    }
                    for (resource, bound) in item["max"].as_object().into_iter().flatten() {
                        if milli(bound)
                            .is_some_and(|max| limits.get(resource).copied().unwrap_or(0) > max)
                        {
                            problems.push(format!(
                                "maximum {resource} usage per Pod is {}, but limit is {}",
                                bound.as_str().unwrap_or_default(),
                                format_amount(resource, limits.get(resource).copied().unwrap_or(0))
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::forbidden(format!(
            "pods \"{name}\" is forbidden: [{}]",
            problems.join(", ")
        )));
    }
    if !defaulted.is_empty() {
        defaulted.sort();
        defaulted.dedup();
        pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] =
            json!(format!("LimitRanger plugin set: {}", defaulted.join("; ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_back_as_quantities() {
        assert_eq!(format_amount("requests.cpu", 1500), "1500m");
        assert_eq!(format_amount("requests.cpu", 2000), "2");
        assert_eq!(format_amount("limits.memory", (1i128 << 30) * 1000), "1Gi");
        assert_eq!(format_amount("pods", 3000), "3");
    }

    #[test]
    fn objects_count_toward_the_right_quota_names() {
        let pod = json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"resources": {"requests": {"cpu": "250m"}}}]}});
        assert_eq!(amount_of("pods", "pods", "", &pod), 1000);
        assert_eq!(amount_of("requests.cpu", "pods", "", &pod), 500);
        assert_eq!(amount_of("cpu", "pods", "", &pod), 500);
        assert_eq!(amount_of("limits.cpu", "pods", "", &pod), 1000);
        assert_eq!(amount_of("count/pods", "pods", "", &pod), 1000);
        assert_eq!(amount_of("configmaps", "pods", "", &pod), 0);
        let done = json!({"status": {"phase": "Succeeded"}, "spec": pod["spec"]});
        assert_eq!(amount_of("pods", "pods", "", &done), 0);
        assert_eq!(
            amount_of("count/deployments.apps", "deployments", "apps", &json!({})),
            1000
        );
        assert_eq!(
            counted_kind("count/deployments.apps"),
            ("deployments".into(), "apps".into())
        );
    }
}
