//! Taints and tolerations as the scheduler and the node lifecycle controller read them.

use serde_json::Value;

/// Whether one toleration matches a taint (key, operator Equal or Exists, value, effect).
pub fn toleration_matches(toleration: &Value, taint: &Value) -> bool {
    let key_ok = match toleration["operator"].as_str().unwrap_or("Equal") {
        "Exists" => toleration["key"]
            .as_str()
            .is_none_or(|k| k.is_empty() || Some(k) == taint["key"].as_str()),
        _ => {
            toleration["key"] == taint["key"]
                && toleration["value"].as_str().unwrap_or_default()
                    == taint["value"].as_str().unwrap_or_default()
        }
    };
    let effect = taint["effect"].as_str().unwrap_or_default();
    let effect_ok = toleration["effect"]
        .as_str()
        .is_none_or(|e| e.is_empty() || e == effect);
    key_ok && effect_ok
}

/// The pod's tolerations.
pub fn tolerations(pod: &Value) -> &[Value] {
    pod.pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Whether the pod may be placed on a node with this taint (PreferNoSchedule never forbids).
pub fn tolerates(pod: &Value, taint: &Value) -> bool {
    taint["effect"] == "PreferNoSchedule"
        || tolerations(pod)
            .iter()
            .any(|t| toleration_matches(t, taint))
}

/// How long a pod may stay on a node with these NoExecute taints: `None` if it tolerates them
/// forever, `Some(0)` if it must go now, otherwise the shortest tolerationSeconds of the
/// tolerations that match (a taint one does not tolerate at all means now).
pub fn no_execute_grace(pod: &Value, taints: &[&Value]) -> Option<i64> {
    let mut shortest: Option<i64> = None;
    for taint in taints {
        let matching: Vec<&Value> = tolerations(pod)
            .iter()
            .filter(|t| toleration_matches(t, taint))
            .collect();
        if matching.is_empty() {
            return Some(0);
        }
        // A matching toleration without tolerationSeconds tolerates the taint forever.
        if matching.iter().any(|t| t["tolerationSeconds"].is_null()) {
            continue;
        }
        let seconds = matching
            .iter()
            .filter_map(|t| t["tolerationSeconds"].as_i64())
            .min()
            .unwrap_or(0)
            .max(0);
        shortest = Some(shortest.map_or(seconds, |s| s.min(seconds)));
    }
    shortest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tolerations_match_by_key_value_operator_and_effect() {
        let taint = json!({"key": "k", "value": "v", "effect": "NoExecute"});
        for (toleration, expected) in [
            (json!({"key": "k", "value": "v"}), true),
            (json!({"key": "k", "value": "w"}), false),
            (json!({"key": "k", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (
                json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"}),
                false,
            ),
            (
                json!({"key": "k", "operator": "Exists", "effect": "NoExecute"}),
                true,
            ),
            (json!({"key": "other", "operator": "Exists"}), false),
        ] {
            assert_eq!(
                toleration_matches(&toleration, &taint),
                expected,
                "{toleration}"
            );
        }
        let pod = json!({"spec": {}});
        assert!(tolerates(
            &pod,
            &json!({"key": "k", "effect": "PreferNoSchedule"})
        ));
        assert!(!tolerates(&pod, &taint));
    }

    #[test]
    fn no_execute_grace_is_the_shortest_matching_toleration() {
        let unreachable = json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"});
        let custom = json!({"key": "dedicated", "value": "db", "effect": "NoExecute"});
        let pod = |tolerations: Value| json!({"spec": {"tolerations": tolerations}});
        let t = |key: &str, seconds: Option<i64>| {
            let mut t = json!({"key": key, "operator": "Exists", "effect": "NoExecute"});
            if let Some(s) = seconds {
                t["tolerationSeconds"] = json!(s);
            }
            t
        };
        assert_eq!(no_execute_grace(&pod(json!([])), &[&unreachable]), Some(0));
        let p = pod(json!([t("node.kubernetes.io/unreachable", Some(8))]));
        assert_eq!(no_execute_grace(&p, &[&unreachable]), Some(8));
        assert_eq!(no_execute_grace(&p, &[&unreachable, &custom]), Some(0));
        let p = pod(json!([
            t("node.kubernetes.io/unreachable", None),
            t("dedicated", Some(30))
        ]));
        assert_eq!(no_execute_grace(&p, &[&unreachable]), None);
        assert_eq!(no_execute_grace(&p, &[&unreachable, &custom]), Some(30));
    }
}
