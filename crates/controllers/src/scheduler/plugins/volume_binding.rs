//! VolumeBinding: a pod's PersistentVolumeClaims must exist; a claim bound to a volume with
//! node affinity (a local volume) keeps the pod on the nodes that volume allows; an unbound
//! claim is fine only if its StorageClass binds on first use (WaitForFirstConsumer), when the
//! provisioner creates the volume where the pod lands.

use serde_json::Value;

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{Cycle, Lookup, Plugin, Unfit};
use crate::scheduler::types::{NodeInfo, NodeSelectorTerm};

pub struct VolumeBinding;

/// Node selector terms of the bound volumes (any term of each volume must match).
struct Bound(Vec<Vec<NodeSelectorTerm>>);

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        "VolumeBinding"
    }

    fn pre_filter(
        &self,
        cycle: &mut Cycle,
        _: &mut Cache,
        lookup: Lookup<'_>,
    ) -> Result<bool, Unfit> {
        let pod = cycle.pod.clone();
        if pod.claims.is_empty() {
            return Ok(false);
        }
        let mut bound = Vec::new();
        for name in &pod.claims {
            let Some(claim) = lookup("persistentvolumeclaims", &pod.namespace, name) else {
                return Err(Unfit::unresolvable(format!(
                    "persistentvolumeclaim \"{name}\" not found"
                )));
            };
            if claim.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(Unfit::unresolvable(format!(
                    "persistentvolumeclaim \"{name}\" is being deleted"
                )));
            }
            let volume = claim["spec"]["volumeName"].as_str().unwrap_or_default();
            if volume.is_empty() {
                let class = claim["spec"]["storageClassName"]
                    .as_str()
                    .unwrap_or_default();
                let waits = lookup("storageclasses", "", class)
                    .is_some_and(|c| c["volumeBindingMode"] == "WaitForFirstConsumer");
                if !waits {
                    return Err(Unfit::unresolvable(
                        "pod has unbound immediate PersistentVolumeClaims",
                    ));
                }
                continue;
            }
            let Some(pv) = lookup("persistentvolumes", "", volume) else {
                return Err(Unfit::unresolvable(format!(
                    "persistentvolume \"{volume}\" not found"
                )));
            };
            if let Some(terms) = pv
                .pointer("/spec/nodeAffinity/required/nodeSelectorTerms")
                .and_then(Value::as_array)
            {
                bound.push(terms.iter().map(NodeSelectorTerm::parse).collect());
            }
        }
        let active = !bound.is_empty();
        cycle.put("VolumeBinding", Bound(bound));
        Ok(active)
    }

    fn filter(&self, cycle: &Cycle, node: &NodeInfo) -> Result<(), Unfit> {
        let Some(Bound(volumes)) = cycle.get::<Bound>("VolumeBinding") else {
            return Ok(());
        };
        if volumes
            .iter()
            .all(|terms| terms.iter().any(|t| t.matches(node)))
        {
            Ok(())
        } else {
            Err(Unfit::unresolvable(
                "node(s) had volume node affinity conflict",
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
    fn claims_must_exist_and_bound_volumes_pin_the_node() {
        let objects = |plural: &str, _: &str, name: &str| -> Option<Value> {
            match (plural, name) {
                ("persistentvolumeclaims", "data") => Some(json!({"spec": {"volumeName": "pv1"}})),
                ("persistentvolumeclaims", "later") => {
                    Some(json!({"spec": {"storageClassName": "local-path"}}))
                }
                ("persistentvolumeclaims", "now") => {
                    Some(json!({"spec": {"storageClassName": "fast"}}))
                }
                ("storageclasses", "local-path") => {
                    Some(json!({"volumeBindingMode": "WaitForFirstConsumer"}))
                }
                ("storageclasses", "fast") => Some(json!({"volumeBindingMode": "Immediate"})),
                ("persistentvolumes", "pv1") => Some(
                    json!({"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["a"]}]}]}}}}),
                ),
                _ => None,
            }
        };
        let with_claim = |claim: &str| {
            Cycle::new(pod(
                json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}),
            ))
        };
        let mut cycle = with_claim("data");
        assert_eq!(
            VolumeBinding.pre_filter(&mut cycle, &mut Cache::default(), &objects),
            Ok(true)
        );
        assert!(
            VolumeBinding
                .filter(&cycle, &node("a", json!({"kubernetes.io/hostname": "a"})))
                .is_ok()
        );
        assert!(
            VolumeBinding
                .filter(&cycle, &node("b", json!({"kubernetes.io/hostname": "b"})))
                .is_err()
        );
        assert_eq!(
            VolumeBinding.pre_filter(&mut with_claim("later"), &mut Cache::default(), &objects),
            Ok(false)
        );
        assert_eq!(
            VolumeBinding
                .pre_filter(&mut with_claim("now"), &mut Cache::default(), &objects)
                .unwrap_err()
                .reasons,
            ["pod has unbound immediate PersistentVolumeClaims"]
        );
        assert_eq!(
            VolumeBinding
                .pre_filter(&mut with_claim("gone"), &mut Cache::default(), &objects)
                .unwrap_err()
                .reasons,
            ["persistentvolumeclaim \"gone\" not found"]
        );
    }
}
