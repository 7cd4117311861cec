//! The scheduling queue, as kube-scheduler's: pods waiting to be scheduled are taken by
//! priority (then age); a pod that did not fit waits among the unschedulable until a cluster
//! event that may make it fit (a node added or changed, a pod gone) moves it back, through a
//! back-off of 1 s doubling to 10 s per failed attempt; pods left unschedulable for 5 minutes
//! are retried anyway. A failed binding goes straight to back-off.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::types::PodInfo;

const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(300);

#[derive(Debug, PartialEq, Eq)]
struct Ready {
    priority: i64,
    created: String,
    seq: u64,
    key: String,
}

impl Ord for Ready {
    /// Higher priority first, then the older pod, then the order of arrival.
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.created.cmp(&self.created))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Ready {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff,
    Unschedulable(Instant),
    /// Taken by a scheduling cycle.
    InFlight,
}

#[derive(Debug, Default)]
pub struct SchedulingQueue {
    pods: HashMap<String, (Arc<PodInfo>, Place, u32)>,
    active: BinaryHeap<Ready>,
    backoff: BTreeMap<(Instant, u64), String>,
    seq: u64,
}

fn backoff_for(attempts: u32) -> Duration {
    let doubled = INITIAL_BACKOFF * 2u32.saturating_pow(attempts.saturating_sub(1).min(16));
    doubled.min(MAX_BACKOFF)
}

impl SchedulingQueue {
    /// A pod waiting to be scheduled, new or changed.
    pub fn upsert(&mut self, pod: Arc<PodInfo>) {
        let key = pod.key.clone();
        match self.pods.get_mut(&key) {
            None => {
                self.pods
                    .insert(key.clone(), (pod.clone(), Place::Active, 0));
                self.push_active(&pod);
            }
            Some((current, place, _)) => {
                *current = pod.clone();
                // A change to an unschedulable pod may make it fit.
                if let Place::Unschedulable(_) = place {
                    *place = Place::Active;
                    self.push_active(&pod);
                }
            }
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.pods.remove(key);
    }

    fn push_active(&mut self, pod: &PodInfo) {
        self.seq += 1;
        self.active.push(Ready {
            priority: pod.priority,
            created: pod.created.clone(),
            seq: self.seq,
            key: pod.key.clone(),
        });
    }

    /// The next pod to schedule.
    pub fn pop(&mut self) -> Option<Arc<PodInfo>> {
        while let Some(ready) = self.active.pop() {
            if let Some((pod, place, _)) = self.pods.get_mut(&ready.key)
                && *place == Place::Active
            {
                *place = Place::InFlight;
                return Some(pod.clone());
            }
        }
        None
    }

    /// The pod fitted no node: it waits for a cluster event.
    pub fn unschedulable(&mut self, key: &str, now: Instant) {
        if let Some((_, place, attempts)) = self.pods.get_mut(key) {
            *attempts += 1;
            *place = Place::Unschedulable(now);
        }
    }

    /// The pod's binding failed, or it must be tried again soon: back-off.
    pub fn retry_later(&mut self, key: &str, now: Instant) {
        if let Some((_, place, attempts)) = self.pods.get_mut(key) {
            *attempts += 1;
            *place = Place::Backoff;
            self.seq += 1;
            self.backoff
                .insert((now + backoff_for(*attempts), self.seq), key.to_string());
        }
    }

    /// The pod was bound: it leaves the queue.
    pub fn done(&mut self, key: &str) {
        self.pods.remove(key);
    }

    /// A cluster event that may make waiting pods fit: the unschedulable ones go to back-off
    /// (or straight back if they have waited out their back-off already).
    pub fn cluster_changed(&mut self, now: Instant) {
        let waiting: Vec<(String, Instant, u32)> = self
            .pods
            .iter()
            .filter_map(|(key, (_, place, attempts))| match place {
                Place::Unschedulable(since) => Some((key.clone(), *since, *attempts)),
                _ => None,
            })
            .collect();
        for (key, since, attempts) in waiting {
            let until = since + backoff_for(attempts);
            if until <= now {
                self.activate(&key);
            } else if let Some(entry) = self.pods.get_mut(&key) {
                entry.1 = Place::Backoff;
                self.seq += 1;
                self.backoff.insert((until, self.seq), key);
            }
        }
    }

    fn activate(&mut self, key: &str) {
        if let Some((pod, place, _)) = self.pods.get_mut(key) {
            *place = Place::Active;
            let pod = pod.clone();
            self.push_active(&pod);
        }
    }

    /// Move pods whose back-off is over (and long-unschedulable ones) to the active queue.
    pub fn tick(&mut self, now: Instant) {
        let later = self.backoff.split_off(&(now, u64::MAX));
        let due = std::mem::replace(&mut self.backoff, later);
        for key in due.into_values() {
            if self
                .pods
                .get(&key)
                .is_some_and(|(_, place, _)| *place == Place::Backoff)
            {
                self.activate(&key);
            }
        }
        let stale: Vec<String> = self
            .pods
            .iter()
            .filter_map(|(key, (_, place, _))| match place {
                Place::Unschedulable(since) if now.duration_since(*since) >= MAX_UNSCHEDULABLE => {
                    Some(key.clone())
                }
                _ => None,
            })
            .collect();
        for key in stale {
            self.activate(&key);
        }
    }

    /// When the next back-off ends.
    pub fn next_wake(&self) -> Option<Instant> {
        self.backoff.keys().next().map(|(at, _)| *at)
    }

    pub fn has_active(&self) -> bool {
        !self.active.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i64, created: &str) -> Arc<PodInfo> {
        Arc::new(PodInfo::parse(
            name,
            &json!({"metadata": {"name": name, "creationTimestamp": created},
                "spec": {"priority": priority}}),
        ))
    }

    #[test]
    fn higher_priority_then_older_pods_go_first() {
        let mut queue = SchedulingQueue::default();
        queue.upsert(pod("new", 0, "2026-01-02T00:00:00Z"));
        queue.upsert(pod("old", 0, "2026-01-01T00:00:00Z"));
        queue.upsert(pod("urgent", 100, "2026-01-03T00:00:00Z"));
        let order: Vec<String> =
            std::iter::from_fn(|| queue.pop().map(|p| p.name.clone())).collect();
        assert_eq!(order, ["urgent", "old", "new"]);
    }

    #[test]
    fn unschedulable_pods_wait_for_an_event_and_their_back_off() {
        let mut queue = SchedulingQueue::default();
        let start = Instant::now();
        queue.upsert(pod("p", 0, "t"));
        assert!(queue.pop().is_some());
        queue.unschedulable("p", start);
        assert!(queue.pop().is_none());
        // An event within the back-off: the pod waits for its end.
        queue.cluster_changed(start + Duration::from_millis(100));
        queue.tick(start + Duration::from_millis(500));
        assert!(queue.pop().is_none());
        queue.tick(start + Duration::from_millis(1100));
        assert_eq!(queue.pop().unwrap().name, "p");
        // A second failure doubles the back-off; a failed binding backs off too.
        queue.retry_later("p", start);
        queue.tick(start + Duration::from_millis(1500));
        assert!(queue.pop().is_none());
        queue.tick(start + Duration::from_millis(2100));
        assert!(queue.pop().is_some());
        assert_eq!(backoff_for(10), MAX_BACKOFF);
    }

    #[test]
    fn pods_left_unschedulable_are_retried_after_five_minutes() {
        let mut queue = SchedulingQueue::default();
        let start = Instant::now();
        queue.upsert(pod("p", 0, "t"));
        queue.pop();
        queue.unschedulable("p", start);
        queue.tick(start + Duration::from_secs(299));
        assert!(queue.pop().is_none());
        queue.tick(start + Duration::from_secs(300));
        assert!(queue.pop().is_some());
    }
}
