//! Pod CIDRs for nodes: every Node gets `spec.podCIDR` (and `podCIDRs`), a distinct block of the
//! cluster CIDR (a /24 of 10.42.0.0/16 by default), as kube-controller-manager's node IPAM does.
//! The node agent builds its pod network from it.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use maestro_api::resources;
use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::Resource;
use maestro_apiserver::service_ips::Cidr;
use maestro_store::{CacheEvent, CacheEventKind};
use serde_json::{Value, json};

use crate::queue::{self, Reconciler};
use crate::writes;

fn nodes() -> Arc<Resource> {
    Resource::builtin(resources::find_builtin("", "v1", "nodes").expect("built in"))
}

/// Carves node blocks of `/node_prefix` out of the cluster CIDR.
#[derive(Debug, Clone, Copy)]
pub struct NodeIpam {
    pub cluster_cidr: Cidr,
    pub node_prefix: u8,
}

impl NodeIpam {
    /// The n-th node block.
    fn block(&self, n: u32) -> Option<String> {
        let count = 1u32.checked_shl(u32::from(
            self.node_prefix.checked_sub(self.cluster_cidr.prefix)?,
        ))?;
        if n >= count {
            return None;
        }
        let size = 1u32 << (32 - u32::from(self.node_prefix));
        let start = u32::from(self.cluster_cidr.network) + n * size;
        Some(format!("{}/{}", Ipv4Addr::from(start), self.node_prefix))
    }

    /// The first block no node holds.
    pub fn next_free(&self, used: &BTreeSet<String>) -> Option<String> {
        (0..)
            .map_while(|n| self.block(n))
            .find(|b| !used.contains(b))
    }
}

struct Assigner {
    ipam: NodeIpam,
    /// Blocks held, by node: built once from the cache, then kept current from events, so that
    /// an assignment does not read every node (which at thousands of nodes would make each
    /// node event cost a pass over the cluster).
    held: Option<std::collections::BTreeMap<String, String>>,
    /// Nodes already reported as left without a block (reported once, not at every event).
    starved: BTreeSet<String>,
}

/// `spec.podCIDR` read straight from the stored JSON: a node event costs a byte search, not a
/// parse (the key appears nowhere else in a Node; a CIDR holds no escapes).
fn stored_pod_cidr(node: &StoredObject) -> Option<String> {
    const KEY: &[u8] = b"\"podCIDR\":\"";
    let json = &node.json[..];
    let start = json.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = json[start..].iter().position(|b| *b == b'"')?;
    let cidr = std::str::from_utf8(&json[start..start + len]).ok()?;
    (!cidr.is_empty()).then(|| cidr.to_string())
}

fn pod_cidr(node: &Value) -> Option<String> {
    node.pointer("/spec/podCIDR")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

impl Reconciler for Assigner {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        if event.kind == CacheEventKind::Deleted {
            if let Some(held) = self.held.as_mut() {
                held.remove(&event.object.name);
            }
            self.starved.remove(&event.object.name);
            return vec![];
        }
        let cidr = stored_pod_cidr(&event.object);
        // A block is released only when its node goes: an event without a CIDR may be an
        // older version of a node this controller has just given one (a status write that
        // raced the assignment), and forgetting the block then would hand it out twice.
        if let Some(held) = self.held.as_mut()
            && let Some(block) = &cidr
        {
            held.insert(event.object.name.clone(), block.clone());
        }
        if cidr.is_some() || self.starved.contains(&event.object.name) {
            return vec![];
        }
        vec![event.key.clone()]
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        registry
            .cache()
            .list(&nodes().info.storage_prefix())
            .0
            .iter()
            .map(|n| n.key.clone())
            .collect()
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some((stored, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            if stored_pod_cidr(&stored).is_some() {
                return Ok(());
            }
            let held = self.held.get_or_insert_with(|| {
                let (all, _) = registry.cache().list(&nodes().info.storage_prefix());
                all.iter()
                    .filter_map(|n| Some((n.name.clone(), stored_pod_cidr(n)?)))
                    .collect()
            });
            // A block reserved by a failed attempt for this node is free again.
            // A block given earlier whose write this cache has not seen yet is written again
            // (the write only fills an empty podCIDR), never replaced by a second one.
            if let Some(block) = held.get(&stored.name).cloned() {
                return writes::edit(registry, &nodes(), None, &stored.name, None, |node| {
                    if pod_cidr(node).is_none() {
                        node["spec"]["podCIDR"] = json!(block);
                        node["spec"]["podCIDRs"] = json!([block]);
                    }
                })
                .await;
            }
            let used: BTreeSet<String> = held.values().cloned().collect();
            let Some(block) = self.ipam.next_free(&used) else {
                tracing::warn!(
                    node = %stored.name,
                    "the cluster CIDR {} has no free /{}: the node gets no pod CIDR",
                    self.ipam.cluster_cidr,
                    self.ipam.node_prefix
                );
                self.starved.insert(stored.name.clone());
                return Ok(());
            };
            // Held at once: the next node must not get the same block before this write's
            // event comes back.
            held.insert(stored.name.clone(), block.clone());
            writes::edit(registry, &nodes(), None, &stored.name, None, |node| {
                if pod_cidr(node).is_none() {
                    node["spec"]["podCIDR"] = json!(block);
                    node["spec"]["podCIDRs"] = json!([block]);
                }
            })
            .await
        })
    }
}

/// Run the node IPAM controller.
pub async fn run(registry: Arc<Registry>, ipam: NodeIpam) {
    let prefix = nodes().info.storage_prefix();
    queue::run(
        registry,
        &prefix,
        Assigner {
            ipam,
            held: None,
            starved: BTreeSet::new(),
        },
        Duration::from_secs(60),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_handed_out_in_order_and_run_out() {
        let ipam = NodeIpam {
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            node_prefix: 24,
        };
        let mut used = BTreeSet::new();
        assert_eq!(ipam.next_free(&used).as_deref(), Some("10.42.0.0/24"));
        used.insert("10.42.0.0/24".to_string());
        used.insert("10.42.2.0/24".to_string());
        assert_eq!(ipam.next_free(&used).as_deref(), Some("10.42.1.0/24"));
        let tiny = NodeIpam {
            cluster_cidr: "10.42.0.0/23".parse().unwrap(),
            node_prefix: 24,
        };
        let full: BTreeSet<String> = ["10.42.0.0/24", "10.42.1.0/24"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(tiny.next_free(&full), None);
    }
}
