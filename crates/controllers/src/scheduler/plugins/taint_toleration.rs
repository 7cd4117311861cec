//! TaintToleration: a node's NoSchedule and NoExecute taints keep out pods that do not
//! tolerate them (filter); PreferNoSchedule taints a pod does not tolerate make the node less
//! attractive (score, fewer is better).

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{Cycle, Lookup, Plugin, Unfit, normalize_by_max};
use crate::scheduler::types::NodeInfo;
use crate::taints::toleration_matches;

pub struct TaintToleration;

fn tolerated(cycle: &Cycle, taint: &serde_json::Value) -> bool {
    cycle
        .pod
        .tolerations
        .iter()
        .any(|t| toleration_matches(t, taint))
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn pre_filter(&self, _: &mut Cycle, _: &mut Cache, _: Lookup<'_>) -> Result<bool, Unfit> {
        Ok(true)
    }

    fn filter(&self, cycle: &Cycle, node: &NodeInfo) -> Result<(), Unfit> {
        let untolerated = node.taints.iter().find(|taint| {
            matches!(taint["effect"].as_str(), Some("NoSchedule" | "NoExecute"))
                && !tolerated(cycle, taint)
        });
        match untolerated {
            None => Ok(()),
            Some(taint) => Err(Unfit::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint["key"].as_str().unwrap_or_default(),
                taint["value"].as_str().unwrap_or_default()
            ))),
        }
    }

    fn score(&self, cycle: &Cycle, node: &NodeInfo) -> i64 {
        node.taints
            .iter()
            .filter(|t| t["effect"] == "PreferNoSchedule" && !tolerated(cycle, t))
            .count() as i64
    }

    fn normalize(&self, _: &Cycle, scores: &mut [i64]) {
        normalize_by_max(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn taints_filter_and_score() {
        let mut tainted = node("a", json!({}));
        tainted.taints = vec![json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"})];
        let mut soft = node("b", json!({}));
        soft.taints = vec![json!({"key": "spot", "effect": "PreferNoSchedule"})];
        let plain = Cycle::new(pod(json!({})));
        let tolerant = Cycle::new(pod(
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
        ));
        assert_eq!(
            TaintToleration
                .filter(&plain, &tainted)
                .unwrap_err()
                .reasons,
            ["node(s) had untolerated taint {dedicated: db}"]
        );
        assert!(TaintToleration.filter(&tolerant, &tainted).is_ok());
        assert!(TaintToleration.filter(&plain, &soft).is_ok());
        let mut scores = [
            TaintToleration.score(&plain, &soft),
            TaintToleration.score(&plain, &node("c", json!({}))),
        ];
        TaintToleration.normalize(&plain, &mut scores);
        assert_eq!(scores, [0, 100]);
    }
}
