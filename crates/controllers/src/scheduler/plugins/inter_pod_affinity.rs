//! InterPodAffinity: required pod affinity and anti-affinity (filter) and preferred terms
//! (score), over the topology domains of the pods the terms select. Filtering checks three
//! things, as kube-scheduler does: the anti-affinity of pods already placed (a pod may not go
//! where an existing pod's anti-affinity term selects it), the pod's own anti-affinity, and its
//! own affinity — which the first pod of a group satisfies by matching its own terms. Counts per
//! domain come from the scheduler cache, kept current as pods are placed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{Cycle, Lookup, MAX_NODE_SCORE, Plugin, Unfit};
use crate::scheduler::types::{AffinityTerm, NodeInfo};

pub struct InterPodAffinity;

type Counts = Arc<HashMap<String, i64>>;

#[derive(Default)]
struct FilterState {
    existing_anti: Vec<(String, Counts)>,
    affinity: Vec<(String, Counts)>,
    /// No placed pod matches the affinity terms but the pod matches them itself.
    affinity_waived: bool,
    anti: Vec<(String, Counts)>,
}

struct ScoreState {
    /// (topology key, counts, weight: negative for anti-affinity)
    terms: Vec<(String, Counts, i64)>,
}

fn present(counts: &Counts, node: &NodeInfo, key: &str) -> bool {
    node.labels
        .get(key)
        .is_some_and(|value| counts.get(value).copied().unwrap_or(0) > 0)
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn pre_filter(
        &self,
        cycle: &mut Cycle,
        cache: &mut Cache,
        _: Lookup<'_>,
    ) -> Result<bool, Unfit> {
        let pod = cycle.pod.clone();
        let mut state = FilterState {
            existing_anti: cache
                .anti_affinity_against(&pod)
                .into_iter()
                .map(|t| (t.term.topology_key.clone(), t.counts))
                .collect(),
            ..Default::default()
        };
        let count = |cache: &mut Cache, terms: &[AffinityTerm]| -> Vec<(String, Counts)> {
            terms
                .iter()
                .map(|t| (t.topology_key.clone(), cache.term_counts(t)))
                .collect()
        };
        state.affinity = count(cache, &pod.affinity);
        state.anti = count(cache, &pod.anti_affinity);
        if !state.affinity.is_empty() {
            let none_anywhere = state
                .affinity
                .iter()
                .all(|(_, counts)| counts.values().all(|c| *c <= 0));
            let namespaces = cache.namespaces.clone();
            let lookup = move |ns: &str| namespaces.get(ns).cloned();
            let matches_itself = pod.affinity.iter().all(|t| t.matches(&pod, &lookup));
            state.affinity_waived = none_anywhere && matches_itself;
        }
        let active =
            !state.existing_anti.is_empty() || !state.affinity.is_empty() || !state.anti.is_empty();
        cycle.put("InterPodAffinity", state);
        Ok(active)
    }

    fn filter(&self, cycle: &Cycle, node: &NodeInfo) -> Result<(), Unfit> {
        let Some(state) = cycle.get::<FilterState>("InterPodAffinity") else {
            return Ok(());
        };
        if state
            .existing_anti
            .iter()
            .any(|(key, counts)| present(counts, node, key))
        {
            return Err(Unfit::new(
                "node(s) didn't satisfy existing pods anti-affinity rules",
            ));
        }
        if !state.affinity_waived
            && !state
                .affinity
                .iter()
                .all(|(key, counts)| present(counts, node, key))
        {
            return Err(Unfit::unresolvable(
                "node(s) didn't match pod affinity rules",
            ));
        }
        if state
            .anti
            .iter()
            .any(|(key, counts)| present(counts, node, key))
        {
            return Err(Unfit::new("node(s) didn't match pod anti-affinity rules"));
        }
        Ok(())
    }

    fn pre_score(&self, cycle: &mut Cycle, cache: &mut Cache, _: &[usize]) -> bool {
        let pod = cycle.pod.clone();
        let mut terms = Vec::new();
        for (weight, term) in &pod.preferred_affinity {
            terms.push((term.topology_key.clone(), cache.term_counts(term), *weight));
        }
        for (weight, term) in &pod.preferred_anti_affinity {
            terms.push((term.topology_key.clone(), cache.term_counts(term), -*weight));
        }
        if terms.is_empty() {
            return false;
        }
        cycle.put("InterPodAffinity.score", ScoreState { terms });
        true
    }

    fn score(&self, cycle: &Cycle, node: &NodeInfo) -> i64 {
        let Some(state) = cycle.get::<ScoreState>("InterPodAffinity.score") else {
            return 0;
        };
        state
            .terms
            .iter()
            .map(|(key, counts, weight)| {
                node.labels
                    .get(key)
                    .and_then(|v| counts.get(v))
                    .copied()
                    .unwrap_or(0)
                    * weight
            })
            .sum()
    }

    fn normalize(&self, _: &Cycle, scores: &mut [i64]) {
        let (min, max) = (
            scores.iter().copied().min().unwrap_or(0),
            scores.iter().copied().max().unwrap_or(0),
        );
        for score in scores.iter_mut() {
            *score = if max == min {
                0
            } else {
                MAX_NODE_SCORE * (*score - min) / (max - min)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{node, pod_named};
    use serde_json::json;

    fn setup() -> Cache {
        let mut cache = Cache::default();
        cache.set_node(node("a", json!({"zone": "z1"})));
        cache.set_node(node("b", json!({"zone": "z2"})));
        cache.pod_event(
            "db",
            Some(pod_named("db", "a", json!({"app": "db"}), json!({}))),
        );
        cache
    }

    fn verdicts(cache: &mut Cache, spec: serde_json::Value) -> Vec<bool> {
        let mut cycle = Cycle::new(pod_named("new", "", json!({"app": "web"}), spec));
        InterPodAffinity
            .pre_filter(&mut cycle, cache, &|_, _, _| None)
            .unwrap();
        ["a", "b"]
            .iter()
            .map(|n| InterPodAffinity.filter(&cycle, &cache.nodes[*n]).is_ok())
            .collect()
    }

    #[test]
    fn affinity_and_anti_affinity_follow_the_domains_of_selected_pods() {
        let mut cache = setup();
        let term = |app: &str| json!([{"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "zone"}]);
        assert_eq!(
            verdicts(
                &mut cache,
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("db")}}})
            ),
            [true, false]
        );
        assert_eq!(
            verdicts(
                &mut cache,
                json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("db")}}})
            ),
            [false, true]
        );
        // The first pod of a group may go anywhere when it matches its own affinity.
        assert_eq!(
            verdicts(
                &mut cache,
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("web")}}})
            ),
            [true, true]
        );
        // An existing pod's anti-affinity keeps matching pods out of its domain.
        cache.pod_event("guard", Some(pod_named("guard", "b", json!({"app": "guard"}),
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term("web")}}}))));
        assert_eq!(verdicts(&mut cache, json!({})), [true, false]);
    }

    #[test]
    fn preferred_terms_score_domains() {
        let mut cache = setup();
        let mut cycle = Cycle::new(pod_named(
            "new",
            "",
            json!({}),
            json!({"affinity": {"podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "podAffinityTerm":
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}}]}}}),
        ));
        assert!(InterPodAffinity.pre_score(&mut cycle, &mut cache, &[]));
        let mut scores = [
            InterPodAffinity.score(&cycle, &cache.nodes["a"]),
            InterPodAffinity.score(&cycle, &cache.nodes["b"]),
        ];
        InterPodAffinity.normalize(&cycle, &mut scores);
        assert_eq!(scores, [100, 0]);
    }
}
