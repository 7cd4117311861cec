//! NodeUnschedulable: cordoned nodes take no pods, unless the pod tolerates the
//! `node.kubernetes.io/unschedulable` taint (DaemonSet pods do).

use serde_json::json;

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{Cycle, Lookup, Plugin, Unfit};
use crate::scheduler::types::NodeInfo;
use crate::taints::toleration_matches;

pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn pre_filter(&self, _: &mut Cycle, _: &mut Cache, _: Lookup<'_>) -> Result<bool, Unfit> {
        Ok(true)
    }

    fn filter(&self, cycle: &Cycle, node: &NodeInfo) -> Result<(), Unfit> {
        if !node.unschedulable {
            return Ok(());
        }
        let taint = json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"});
        if cycle
            .pod
            .tolerations
            .iter()
            .any(|t| toleration_matches(t, &taint))
        {
            return Ok(());
        }
        Err(Unfit::unresolvable("node(s) were unschedulable"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{node, pod};

    #[test]
    fn cordoned_nodes_take_only_tolerating_pods() {
        let mut cordoned = node("a", json!({}));
        cordoned.unschedulable = true;
        let plain = Cycle::new(pod(json!({})));
        let tolerant = Cycle::new(pod(json!({"tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]})));
        for (cycle, node, fits) in [
            (&plain, &node("b", json!({})), true),
            (&plain, &cordoned, false),
            (&tolerant, &cordoned, true),
        ] {
            assert_eq!(NodeUnschedulable.filter(cycle, node).is_ok(), fits);
        }
    }
}
