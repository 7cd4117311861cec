//! The scheduling framework, shaped like kube-scheduler's: plugins implement extension points
//! (PreFilter, Filter, PreScore, Score with normalization, Reserve, Permit; binding is the
//! scheduler's), a profile lists the plugins it runs with a weight per scorer, and one
//! scheduling cycle runs them for one pod over the nodes:
//!
//! 1. PreFilter prepares per-pod state (or rules the pod out everywhere) and says whether the
//!    plugin's Filter has anything to check for this pod, so idle filters cost nothing;
//! 2. Filter runs node by node, starting where the previous cycle stopped, until enough
//!    feasible nodes are found (`percentageOfNodesToScore`: all nodes up to 100, then an
//!    adaptive share, as kube-scheduler does);
//! 3. each scorer scores the feasible nodes, normalizes to 0..=100, and the weighted sum picks
//!    the node, ties broken at random.

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::cache::Cache;
use super::types::{NodeInfo, PodInfo};

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// Reads other objects a plugin needs (PersistentVolumeClaims, PersistentVolumes,
/// StorageClasses): `(plural, namespace, name)` → the object.
pub type Lookup<'a> = &'a dyn Fn(&str, &str, &str) -> Option<Value>;

/// State of one scheduling cycle: the pod and what the plugins prepared for it.
pub struct Cycle {
    pub pod: Arc<PodInfo>,
    state: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl Cycle {
    pub fn new(pod: Arc<PodInfo>) -> Cycle {
        Cycle {
            pod,
            state: HashMap::new(),
        }
    }

    pub fn put<T: Any + Send + Sync>(&mut self, plugin: &'static str, value: T) {
        self.state.insert(plugin, Box::new(value));
    }

    pub fn get<T: Any + Send + Sync>(&self, plugin: &'static str) -> Option<&T> {
        self.state.get(plugin)?.downcast_ref()
    }
}

/// Why a node (or every node) does not fit, in the words of FailedScheduling events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfit {
    pub reasons: Vec<String>,
    /// Removing pods from the node would not help (preemption skips such nodes).
    pub unresolvable: bool,
}

impl Unfit {
    pub fn new(reason: impl Into<String>) -> Unfit {
        Unfit {
            reasons: vec![reason.into()],
            unresolvable: false,
        }
    }

    pub fn unresolvable(reason: impl Into<String>) -> Unfit {
        Unfit {
            reasons: vec![reason.into()],
            unresolvable: true,
        }
    }
}

/// What Permit decides about a placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permit {
    Allow,
    Deny(String),
}

/// A scheduling plugin: every extension point has a default that does nothing.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;

    /// Prepare filtering for the cycle's pod. `Ok(false)`: nothing to check, Filter is skipped.
    fn pre_filter(
        &self,
        _cycle: &mut Cycle,
        _cache: &mut Cache,
        _lookup: Lookup<'_>,
    ) -> Result<bool, Unfit> {
        Ok(false)
    }

    fn filter(&self, _cycle: &Cycle, _node: &NodeInfo) -> Result<(), Unfit> {
        Ok(())
    }

    /// Prepare scoring over the feasible nodes (by cache slot). `false`: nothing to score,
    /// Score is skipped.
    fn pre_score(&self, _cycle: &mut Cycle, _cache: &mut Cache, _nodes: &[usize]) -> bool {
        true
    }

    fn score(&self, _cycle: &Cycle, _node: &NodeInfo) -> i64 {
        0
    }

    /// Bring this plugin's scores of the feasible nodes to 0..=MAX_NODE_SCORE.
    fn normalize(&self, _cycle: &Cycle, _scores: &mut [i64]) {}

    /// Claim what the placement needs before the binding is written.
    fn reserve(&self, _cycle: &Cycle, _node: &str) -> Result<(), Unfit> {
        Ok(())
    }

    /// Undo `reserve` when the placement falls through.
    fn unreserve(&self, _cycle: &Cycle, _node: &str) {}

    fn permit(&self, _cycle: &Cycle, _node: &str) -> Permit {
        Permit::Allow
    }
}

/// A scheduler profile: the plugins one `schedulerName` runs.
#[derive(Clone)]
pub struct Profile {
    pub scheduler_name: String,
    /// PreFilter and Filter, in order.
    pub filters: Vec<Arc<dyn Plugin>>,
    /// PreScore and Score, each with its weight.
    pub scorers: Vec<(Arc<dyn Plugin>, i64)>,
    /// Share of the nodes to find feasible before scoring; 0 means adaptive.
    pub percentage_of_nodes_to_score: u32,
    /// Whether DefaultPreemption runs when no node fits.
    pub preemption: bool,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("scheduler_name", &self.scheduler_name)
            .field(
                "filters",
                &self.filters.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .field(
                "scorers",
                &self
                    .scorers
                    .iter()
                    .map(|(p, w)| (p.name(), *w))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// How many feasible nodes to look for among `total` (kube-scheduler's
/// numFeasibleNodesToFind).
pub fn feasible_nodes_to_find(total: usize, percentage: u32) -> usize {
    const MIN_NODES: usize = 100;
    if total < MIN_NODES {
        return total;
    }
    let percentage = if percentage == 0 {
        (50 - (total / 125) as i64).max(5) as usize
    } else {
        percentage.min(100) as usize
    };
    (total * percentage / 100).max(MIN_NODES)
}

/// Why no node fits: reasons with the number of nodes each ruled out.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    pub nodes: usize,
    pub reasons: BTreeMap<String, usize>,
    /// Nodes where removing pods would not help.
    pub unresolvable: HashSet<String>,
}

impl Failure {
    /// "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {...}."
    pub fn message(&self) -> String {
        if self.nodes == 0 {
            return "no nodes available to schedule pods".into();
        }
        let mut message = format!("0/{} nodes are available", self.nodes);
        if !self.reasons.is_empty() {
            let parts: Vec<String> = self
                .reasons
                .iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            message.push_str(": ");
            message.push_str(&parts.join(", "));
        }
        message.push('.');
        message
    }
}

/// A small random source for tie breaks (xorshift; not for anything that needs real
/// randomness).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Where the next cycle starts its search, and the tie-break source.
#[derive(Debug)]
pub struct SearchState {
    pub next_start: usize,
    pub rng: Rng,
}

impl Profile {
    /// Run PreFilter and Filter: the feasible nodes, or why there are none.
    pub fn find_nodes(
        &self,
        cycle: &mut Cycle,
        cache: &mut Cache,
        lookup: Lookup<'_>,
        search: &mut SearchState,
    ) -> Result<Vec<usize>, Failure> {
        let total = cache.order.len();
        let mut failure = Failure {
            nodes: total,
            ..Default::default()
        };
        let mut active: Vec<&Arc<dyn Plugin>> = Vec::new();
        for plugin in &self.filters {
            match plugin.pre_filter(cycle, cache, lookup) {
                Ok(true) => active.push(plugin),
                Ok(false) => {}
                Err(unfit) => {
                    for reason in unfit.reasons {
                        failure.reasons.insert(reason, total);
                    }
                    if unfit.unresolvable {
                        failure.unresolvable = cache
                            .order
                            .iter()
                            .map(|s| cache.nodes.at(*s).name.clone())
                            .collect();
                    }
                    return Err(failure);
                }
            }
        }
        cycle.put(
            "framework.active",
            active
                .iter()
                .map(|p| p.name())
                .collect::<Vec<&'static str>>(),
        );
        if total == 0 {
            return Err(failure);
        }
        let wanted = feasible_nodes_to_find(total, self.percentage_of_nodes_to_score);
        let start = search.next_start % total;
        let mut feasible = Vec::new();
        let mut looked_at = 0;
        for offset in 0..total {
            looked_at = offset + 1;
            let slot = cache.order[(start + offset) % total];
            let node = cache.nodes.at(slot);
            let verdict = active.iter().try_for_each(|p| p.filter(cycle, node));
            match verdict {
                Ok(()) => {
                    feasible.push(slot);
                    if feasible.len() >= wanted {
                        break;
                    }
                }
                Err(unfit) => {
                    for reason in unfit.reasons {
                        *failure.reasons.entry(reason).or_default() += 1;
                    }
                    if unfit.unresolvable {
                        failure.unresolvable.insert(node.name.clone());
                    }
                }
            }
        }
        search.next_start = (start + looked_at) % total;
        if feasible.is_empty() {
            Err(failure)
        } else {
            Ok(feasible)
        }
    }

    /// Run PreScore and Score over the feasible nodes; the best one's slot.
    pub fn pick(
        &self,
        cycle: &mut Cycle,
        cache: &mut Cache,
        feasible: &[usize],
        rng: &mut Rng,
    ) -> usize {
        if feasible.len() == 1 {
            return feasible[0];
        }
        let mut totals = vec![0i64; feasible.len()];
        for (plugin, weight) in &self.scorers {
            let active = plugin.pre_score(cycle, cache, feasible);
            if !active {
                continue;
            }
            let mut scores: Vec<i64> = feasible
                .iter()
                .map(|n| plugin.score(cycle, cache.nodes.at(*n)))
                .collect();
            plugin.normalize(cycle, &mut scores);
            for (total, score) in totals.iter_mut().zip(scores) {
                *total += score * weight;
            }
        }
        let best = totals.iter().copied().max().unwrap_or(0);
        let ties: Vec<usize> = (0..totals.len()).filter(|i| totals[*i] == best).collect();
        let chosen = ties[rng.below(ties.len() as u64) as usize];
        feasible[chosen]
    }
}

/// Scale raw scores to 0..=MAX_NODE_SCORE by the largest (`reverse`: the largest gets 0).
pub fn normalize_by_max(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for score in scores.iter_mut() {
        *score = if max == 0 {
            if reverse { MAX_NODE_SCORE } else { 0 }
        } else {
            let scaled = MAX_NODE_SCORE * *score / max;
            if reverse {
                MAX_NODE_SCORE - scaled
            } else {
                scaled
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_of_nodes_searched_shrinks_with_the_cluster() {
        assert_eq!(feasible_nodes_to_find(50, 0), 50);
        assert_eq!(feasible_nodes_to_find(1000, 0), 420);
        assert_eq!(feasible_nodes_to_find(5000, 0), 500);
        assert_eq!(feasible_nodes_to_find(100_000, 0), 5000);
        assert_eq!(feasible_nodes_to_find(5000, 100), 5000);
        assert_eq!(feasible_nodes_to_find(200, 10), 100);
    }

    #[test]
    fn failure_messages_read_like_kube_scheduler() {
        let mut failure = Failure {
            nodes: 3,
            ..Default::default()
        };
        failure.reasons.insert("Insufficient cpu".into(), 1);
        failure
            .reasons
            .insert("node(s) had untolerated taint {dedicated: db}".into(), 2);
        assert_eq!(
            failure.message(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: db}."
        );
    }

    #[test]
    fn normalization_scales_to_the_maximum() {
        let mut scores = [0, 5, 10];
        normalize_by_max(&mut scores, false);
        assert_eq!(scores, [0, 50, 100]);
        let mut scores = [0, 5, 10];
        normalize_by_max(&mut scores, true);
        assert_eq!(scores, [100, 50, 0]);
    }
}
