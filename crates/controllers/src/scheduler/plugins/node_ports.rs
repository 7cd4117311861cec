//! NodePorts: a pod's host ports must be free on the node.

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{Cycle, Lookup, Plugin, Unfit};
use crate::scheduler::types::NodeInfo;

pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn pre_filter(&self, cycle: &mut Cycle, _: &mut Cache, _: Lookup<'_>) -> Result<bool, Unfit> {
        Ok(!cycle.pod.host_ports.is_empty())
    }

    fn filter(&self, cycle: &Cycle, node: &NodeInfo) -> Result<(), Unfit> {
        let taken = cycle
            .pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| used.conflicts(want)));
        if taken {
            Err(Unfit::new(
                "node(s) didn't have free ports for the requested pod ports",
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn a_used_host_port_rules_the_node_out() {
        let spec = json!({"containers": [{"ports": [{"containerPort": 80, "hostPort": 8080}]}]});
        let mut busy = node("a", json!({}));
        busy.add_pod(pod(spec.clone()));
        let cycle = Cycle::new(pod(spec));
        assert!(NodePorts.filter(&cycle, &busy).is_err());
        assert!(NodePorts.filter(&cycle, &node("b", json!({}))).is_ok());
        let other_port = Cycle::new(pod(
            json!({"containers": [{"ports": [{"containerPort": 80, "hostPort": 9090}]}]}),
        ));
        assert!(NodePorts.filter(&other_port, &busy).is_ok());
    }
}
