//! Conversion between served and stored versions of the same resource: `autoscaling/v1`
//! HorizontalPodAutoscalers are stored as `autoscaling/v2`, and `events.k8s.io/v1` Events are the
//! core/v1 Events seen through another schema. Custom resources convert by relabelling
//! `apiVersion` (conversion strategy `None`).

use serde_json::{Map, Value, json};

/// Convert `obj` (in `from` apiVersion) to the `to` apiVersion of the same kind.
pub fn convert(obj: Value, from: &str, to: &str) -> Value {
    if from == to {
        return obj;
    }
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut out = match (kind.as_str(), from, to) {
        ("HorizontalPodAutoscaler", "autoscaling/v1", "autoscaling/v2") => hpa_v1_to_v2(obj),
        ("HorizontalPodAutoscaler", "autoscaling/v2", "autoscaling/v1") => hpa_v2_to_v1(obj),
        ("Event", "events.k8s.io/v1", "v1") => event_new_to_core(obj),
        ("Event", "v1", "events.k8s.io/v1") => event_core_to_new(obj),
        _ => obj,
    };
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(to.to_string()));
    }
    out
}

/// Fold write-only convenience fields into the stored form, as Kubernetes' conversion to its
/// internal types does: a Secret's `stringData` becomes base64 `data` (winning over `data` for
/// the same key) and is never stored.
pub fn fold_write_only_fields(group: &str, kind: &str, obj: &mut Value) {
    if group.is_empty()
        && kind == "Secret"
        && let Some(map) = obj.as_object_mut()
        && let Some(Value::Object(strings)) = map.remove("stringData")
    {
        use base64::Engine;
        let data = map.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        let data = data.as_object_mut().expect("just made an object");
        for (key, value) in strings {
            let text = value.as_str().unwrap_or_default();
            data.insert(
                key,
                json!(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

fn take(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    map.remove(key)
}

fn hpa_v1_to_v2(mut obj: Value) -> Value {
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
        && let Some(target) = take(spec, "targetCPUUtilizationPercentage")
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}}]),
        );
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut)
        && let Some(current) = take(status, "currentCPUUtilizationPercentage")
    {
        status.insert(
            "currentMetrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}}]),
        );
    }
    obj
}

fn cpu_utilization(list: Option<&Value>, field: &str) -> Option<Value> {
    list?.as_array()?.iter().find_map(|m| {
        let resource = m.get("resource")?;
        if m.get("type")?.as_str()? == "Resource" && resource.get("name")?.as_str()? == "cpu" {
            resource.get(field)?.get("averageUtilization").cloned()
        } else {
            None
        }
    })
}

fn hpa_v2_to_v1(mut obj: Value) -> Value {
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        let target = cpu_utilization(spec.get("metrics"), "target");
        spec.remove("metrics");
        spec.remove("behavior");
        if let Some(target) = target {
            spec.insert("targetCPUUtilizationPercentage".into(), target);
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        let current = cpu_utilization(status.get("currentMetrics"), "current");
        status.remove("currentMetrics");
        status.remove("conditions");
        if let Some(current) = current {
            status.insert("currentCPUUtilizationPercentage".into(), current);
        }
        if !status.contains_key("currentReplicas") {
            status.insert("currentReplicas".into(), json!(0));
        }
        if !status.contains_key("desiredReplicas") {
            status.insert("desiredReplicas".into(), json!(0));
        }
    }
    obj
}

/// (events.k8s.io/v1 field, core/v1 field)
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename_fields(mut obj: Value, new_to_core: bool) -> Value {
    if let Some(map) = obj.as_object_mut() {
        for (new, core) in EVENT_RENAMES {
            let (from, to) = if new_to_core {
                (new, core)
            } else {
                (core, new)
            };
            if let Some(v) = map.remove(*from) {
                map.insert((*to).to_string(), v);
            }
        }
    }
    obj
}

fn event_new_to_core(obj: Value) -> Value {
    rename_fields(obj, true)
}

fn event_core_to_new(obj: Value) -> Value {
    rename_fields(obj, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_round_trip_keeps_cpu_target() {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "spec": {"maxReplicas": 5, "targetCPUUtilizationPercentage": 60}});
        let v2 = convert(v1, "autoscaling/v1", "autoscaling/v2");
        assert_eq!(
            v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            60
        );
        let back = convert(v2, "autoscaling/v2", "autoscaling/v1");
        assert_eq!(back["spec"]["targetCPUUtilizationPercentage"], 60);
        assert_eq!(back["apiVersion"], "autoscaling/v1");
        assert!(back["spec"].get("metrics").is_none());
    }

    #[test]
    fn secret_string_data_becomes_data() {
        let mut secret = json!({"kind": "Secret", "stringData": {"user": "admin", "both": "s"}, "data": {"pass": "eA==", "both": "ZA=="}});
        fold_write_only_fields("", "Secret", &mut secret);
        assert_eq!(
            secret,
            json!({"kind": "Secret", "data": {"pass": "eA==", "both": "cw==", "user": "YWRtaW4="}})
        );
    }

    #[test]
    fn events_rename_between_shapes() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "message": "hi", "involvedObject": {"name": "p"}, "count": 2});
        let new = convert(core.clone(), "v1", "events.k8s.io/v1");
        assert_eq!(new["note"], "hi");
        assert_eq!(new["regarding"]["name"], "p");
        assert_eq!(new["deprecatedCount"], 2);
        assert_eq!(convert(new, "events.k8s.io/v1", "v1"), core);
    }
}
