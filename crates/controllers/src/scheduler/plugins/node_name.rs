//! NodeName: a pod that names its node fits only that node.

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{Cycle, Lookup, Plugin, Unfit};
use crate::scheduler::types::NodeInfo;

pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn pre_filter(&self, cycle: &mut Cycle, _: &mut Cache, _: Lookup<'_>) -> Result<bool, Unfit> {
        Ok(!cycle.pod.node_name.is_empty())
    }

    fn filter(&self, cycle: &Cycle, node: &NodeInfo) -> Result<(), Unfit> {
        if cycle.pod.node_name == node.name {
            Ok(())
        } else {
            Err(Unfit::unresolvable(
                "node(s) didn't match the requested node name",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn only_the_named_node_fits() {
        let mut cycle = Cycle::new(pod(json!({"nodeName": "a"})));
        assert_eq!(
            NodeName.pre_filter(&mut cycle, &mut Cache::default(), &|_, _, _| None),
            Ok(true)
        );
        assert!(NodeName.filter(&cycle, &node("a", json!({}))).is_ok());
        assert!(NodeName.filter(&cycle, &node("b", json!({}))).is_err());
    }
}
