//! The Job controller, as Kubernetes' job controller: runs pods of the template until
//! `completions` succeed (or, without completions, until one succeeds and the rest are done),
//! at most `parallelism` at a time.
//!
//! - Failed pods count against `backoffLimit`; beyond it the Job fails (BackoffLimitExceeded)
//!   and its running pods are deleted. A replacement for a failed pod waits 10 s doubling to
//!   6 min, as Kubernetes' back-off does.
//! - `activeDeadlineSeconds` from the start time fails it with DeadlineExceeded.
//! - Indexed Jobs give each pod its completion index (annotation, label, `JOB_COMPLETION_INDEX`
//!   and a `<job>-<index>` hostname) and track `completedIndexes`.
//! - `suspend` deletes active pods and sets the Suspended condition.
//! - Finished Jobs with `ttlSecondsAfterFinished` are deleted (with their pods) after it.
//!
//! Status: active, ready, succeeded, failed, terminating, startTime, completionTime and the
//! Complete / SuccessCriteriaMet / Failed / FailureTarget / Suspended conditions.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::{DeleteOptions, Propagation, Resource, WriteOptions};
use maestro_store::{CacheEvent, Revision};
use serde_json::{Value, json};

use crate::objects::{
    controlled_by, controller_reference, deleting, int, ready_since, resource, revision_of,
};
use crate::queue::{self, Reconciler};

const INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
const INITIAL_BACKOFF_SECS: i64 = 10;
const MAX_BACKOFF_SECS: i64 = 360;

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn stamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn parse_time(value: &Value) -> Option<jiff::Timestamp> {
    value.as_str()?.parse().ok()
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

fn index_of(pod: &Value) -> Option<i64> {
    pod["metadata"]["annotations"][INDEX_ANNOTATION]
        .as_str()
        .and_then(|i| i.parse().ok())
}

/// `0-2,4,6-7` from a set of indexes.
fn format_indexes(indexes: &BTreeSet<i64>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().expect("peeked");
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

fn parse_indexes(text: &str) -> BTreeSet<i64> {
    let mut set = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i64>(), b.parse::<i64>()) {
                    set.extend(a..=b);
                }
            }
            None => {
                if let Ok(i) = part.parse() {
                    set.insert(i);
                }
            }
        }
    }
    set
}

/// A pod of the Job, for completion index `index` when the Job is Indexed.
fn job_pod(job: &Value, index: Option<i64>) -> Value {
    let name = job["metadata"]["name"].as_str().unwrap_or_default();
    let template = &job["spec"]["template"];
    let mut spec = template["spec"].clone();
    let mut labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut annotations = template["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut generate_name = format!("{name}-");
    if let Some(i) = index {
        annotations.insert(INDEX_ANNOTATION.into(), json!(i.to_string()));
        labels.insert(INDEX_ANNOTATION.into(), json!(i.to_string()));
        generate_name = format!("{name}-{i}-");
        if spec["hostname"].is_null() {
            spec["hostname"] = json!(format!("{name}-{i}"));
        }
        for list in ["containers", "initContainers"] {
            if let Some(containers) = spec[list].as_array_mut() {
                for c in containers {
                    let mut env = c["env"].as_array().cloned().unwrap_or_default();
                    if !env.iter().any(|e| e["name"] == "JOB_COMPLETION_INDEX") {
                        env.push(
                            json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef":
                            {"fieldPath": format!("metadata.annotations['{INDEX_ANNOTATION}']")}}}),
                        );
                    }
                    c["env"] = json!(env);
                }
            }
        }
    }
    let mut owner = controller_reference(job);
    owner["apiVersion"] = json!("batch/v1");
    owner["kind"] = json!("Job");
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": generate_name, "labels": labels,
            "annotations": annotations, "ownerReferences": [owner]},
        "spec": spec})
}

fn condition(kind: &str, reason: &str, message: &str) -> Value {
    let now = stamp(now());
    json!({"type": kind, "status": "True", "reason": reason, "message": message,
        "lastProbeTime": now, "lastTransitionTime": now})
}

fn has_condition(job: &Value, kind: &str) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

fn finished(job: &Value) -> bool {
    has_condition(job, "Complete") || has_condition(job, "Failed")
}

struct Jobs {
    jobs: Arc<Resource>,
    pods: Arc<Resource>,
    requeues: Vec<(String, Duration)>,
}

impl Jobs {
    fn requeue(&mut self, job: &Value, seconds: i64) {
        let key = self.jobs.info.key(
            job["metadata"]["namespace"].as_str(),
            job["metadata"]["name"].as_str().unwrap_or_default(),
        );
        self.requeues
            .push((key, Duration::from_secs(seconds.max(0) as u64 + 1)));
    }

    async fn delete_pods(
        &self,
        registry: &Registry,
        pods: &[&Value],
    ) -> Result<Option<Revision>, String> {
        let mut written = None;
        for pod in pods {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let opts = DeleteOptions {
                precondition_uid: pod["metadata"]["uid"].as_str().map(String::from),
                ..Default::default()
            };
            match registry
                .delete(
                    &self.pods,
                    pod["metadata"]["namespace"].as_str(),
                    name,
                    &opts,
                )
                .await
            {
                Ok(d) => written = written.max(revision_of(&d.object)),
                Err(e) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(format!("deleting pod {name}: {}", e.message)),
            }
        }
        Ok(written)
    }

    async fn sync(&mut self, registry: &Registry, stored: &StoredObject) -> Result<(), String> {
        let job = stored.value();
        if deleting(&job) {
            return Ok(());
        }
        let namespace = stored.namespace.clone().unwrap_or_default();
        let (all, _) = registry
            .cache()
            .list(&self.pods.info.namespace_prefix(Some(&namespace)));
        let pods: Vec<Value> = all
            .iter()
            .map(|p| p.value())
            .filter(|p| controlled_by(p, &stored.uid))
            .collect();
        let now_t = now();

        if finished(&job) {
            return self.expire(registry, &job, &namespace, now_t).await;
        }

        let indexed = job["spec"]["completionMode"] == "Indexed";
        let completions = job["spec"]["completions"].as_i64();
        let parallelism = job["spec"]["parallelism"].as_i64().unwrap_or(1).max(0);
        let backoff_limit = job["spec"]["backoffLimit"].as_i64().unwrap_or(6);
        let suspended = job["spec"]["suspend"] == true;

        let active: Vec<&Value> = pods
            .iter()
            .filter(|p| !deleting(p) && !matches!(phase(p), "Succeeded" | "Failed"))
            .collect();
        let terminating = pods
            .iter()
            .filter(|p| deleting(p) && !matches!(phase(p), "Succeeded" | "Failed"))
            .count() as i64;
        let succeeded_pods: Vec<&Value> = pods.iter().filter(|p| phase(p) == "Succeeded").collect();
        let failed_pods: Vec<&Value> = pods.iter().filter(|p| phase(p) == "Failed").collect();
        // Counts never go down: a finished pod deleted by someone still counted.
        let succeeded = (succeeded_pods.len() as i64).max(int(&job, "/status/succeeded"));
        let failed = (failed_pods.len() as i64).max(int(&job, "/status/failed"));
        let mut completed: BTreeSet<i64> = parse_indexes(
            job["status"]["completedIndexes"]
                .as_str()
                .unwrap_or_default(),
        );
        completed.extend(succeeded_pods.iter().filter_map(|p| index_of(p)));

        let mut status = job["status"].clone();
        if !status.is_object() {
            status = json!({});
        }
        let mut conditions: Vec<Value> =
            status["conditions"].as_array().cloned().unwrap_or_default();
        let start = parse_time(&status["startTime"]);
        if start.is_none() && !suspended {
            status["startTime"] = json!(stamp(now_t));
        }
        let mut written: Option<Revision> = None;

        // Failure: too many failed pods, or past the deadline.
        let deadline_left = job["spec"]["activeDeadlineSeconds"]
            .as_i64()
            .zip(start)
            .map(|(limit, start)| limit - now_t.duration_since(start).as_secs());
        let failure = if failed > backoff_limit {
            Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else if deadline_left.is_some_and(|left| left <= 0) {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else {
            None
        };
        let complete = match completions {
            Some(n) if indexed => completed.len() as i64 >= n,
            Some(n) => succeeded >= n,
            // Without completions: done once a pod succeeded and none is left running.
            None => succeeded > 0 && active.is_empty(),
        };

        if let Some((reason, message)) = failure {
            written = written.max(self.delete_pods(registry, &active).await?);
            conditions.push(condition("FailureTarget", reason, message));
            conditions.push(condition("Failed", reason, message));
        } else if complete {
            written = written.max(self.delete_pods(registry, &active).await?);
            conditions.push(condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            ));
            conditions.push(condition(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            ));
            status["completionTime"] = json!(stamp(now_t));
        } else if suspended {
            written = written.max(self.delete_pods(registry, &active).await?);
            if !has_condition(&job, "Suspended") {
                conditions.retain(|c| c["type"] != "Suspended");
                conditions.push(condition("Suspended", "JobSuspended", "Job suspended"));
            }
        } else {
            if has_condition(&job, "Suspended") {
                conditions.retain(|c| c["type"] != "Suspended");
                let mut resumed = condition("Suspended", "JobResumed", "Job resumed");
                resumed["status"] = json!("False");
                conditions.push(resumed);
            }
            // How many pods should run now.
            let wanted = match completions {
                Some(n) if indexed => (n - completed.len() as i64).min(parallelism),
                Some(n) => (n - succeeded).min(parallelism),
                None if succeeded > 0 => 0,
                None => parallelism,
            }
            .max(0);
            let running = active.len() as i64;
            if running > wanted {
                // Newest first, as Kubernetes picks surplus pods.
                let mut surplus = active.clone();
                surplus.sort_by_key(|p| {
                    std::cmp::Reverse(
                        p["metadata"]["creationTimestamp"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    )
                });
                surplus.truncate((running - wanted) as usize);
                written = written.max(self.delete_pods(registry, &surplus).await?);
            } else if running < wanted {
                // Replacements for failed pods wait out the back-off.
                let last_failure = failed_pods
                    .iter()
                    .filter_map(|p| {
                        p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
                            .as_str()
                            .or(p["metadata"]["creationTimestamp"].as_str())
                            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    })
                    .max();
                let delay = if failed == 0 {
                    0
                } else {
                    (INITIAL_BACKOFF_SECS << (failed - 1).min(10)).min(MAX_BACKOFF_SECS)
                };
                let waited = last_failure.map_or(delay, |t| now_t.duration_since(t).as_secs());
                if waited < delay {
                    self.requeue(&job, delay - waited);
                } else {
                    let busy: BTreeSet<i64> = active.iter().filter_map(|p| index_of(p)).collect();
                    let mut free = (0..completions.unwrap_or(0))
                        .filter(|i| !completed.contains(i) && !busy.contains(i));
                    for _ in running..wanted {
                        let index = if indexed {
                            match free.next() {
                                Some(i) => Some(i),
                                None => break,
                            }
                        } else {
                            None
                        };
                        match registry
                            .create(
                                &self.pods,
                                Some(&namespace),
                                job_pod(&job, index),
                                &WriteOptions::default(),
                            )
                            .await
                        {
                            Ok(created) => written = written.max(revision_of(&created.object)),
                            Err(e) => return Err(format!("creating a pod: {}", e.message)),
                        }
                    }
                }
            }
            if let Some(left) = deadline_left {
                self.requeue(&job, left);
            }
        }
        if let Some(revision) = written {
            let _ = registry.cache().wait_for(revision).await;
        }
        // Status from what is there now.
        let (all, _) = registry
            .cache()
            .list(&self.pods.info.namespace_prefix(Some(&namespace)));
        let live: Vec<Value> = all
            .iter()
            .map(|p| p.value())
            .filter(|p| {
                controlled_by(p, &stored.uid)
                    && !deleting(p)
                    && !matches!(phase(p), "Succeeded" | "Failed")
            })
            .collect();
        status["active"] = json!(live.len());
        status["ready"] = json!(live.iter().filter(|p| ready_since(p).is_some()).count());
        status["succeeded"] = json!(succeeded);
        status["failed"] = json!(failed);
        status["terminating"] = json!(terminating);
        if indexed {
            status["completedIndexes"] = json!(format_indexes(&completed));
        }
        status["conditions"] = json!(conditions);
        if status["conditions"].as_array().is_some_and(Vec::is_empty)
            && let Some(s) = status.as_object_mut()
        {
            s.remove("conditions");
        }
        if status == job["status"] {
            return Ok(());
        }
        crate::writes::edit(
            registry,
            &self.jobs,
            Some(&namespace),
            &stored.name,
            Some("status"),
            |next| {
                next["status"] = status.clone();
            },
        )
        .await
    }

    /// ttlSecondsAfterFinished: delete the Job and its pods once it has expired.
    async fn expire(
        &mut self,
        registry: &Registry,
        job: &Value,
        namespace: &str,
        now_t: jiff::Timestamp,
    ) -> Result<(), String> {
        let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_i64() else {
            return Ok(());
        };
        let finished_at = job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
            .filter_map(|c| parse_time(&c["lastTransitionTime"]))
            .max()
            .unwrap_or(now_t);
        let left = ttl - now_t.duration_since(finished_at).as_secs();
        if left > 0 {
            self.requeue(job, left);
            return Ok(());
        }
        let name = job["metadata"]["name"].as_str().unwrap_or_default();
        crate::writes::delete(
            registry,
            &self.jobs,
            Some(namespace),
            name,
            job["metadata"]["uid"].as_str().unwrap_or_default(),
            Some(Propagation::Background),
        )
        .await
    }
}

impl Reconciler for Jobs {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        queue::owner_keys(event, &self.jobs, "Job", &self.pods)
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        queue::all_keys(registry, &self.jobs)
    }

    fn take_requeues(&mut self) -> Vec<(String, Duration)> {
        std::mem::take(&mut self.requeues)
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some((job, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            self.sync(registry, &job).await
        })
    }
}

/// Run the Job controller.
pub async fn run(registry: Arc<Registry>) {
    let controller = Jobs {
        jobs: resource("jobs", "batch"),
        pods: resource("pods", ""),
        requeues: Vec::new(),
    };
    queue::run(registry, "/registry/", controller, Duration::from_secs(30)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_read_and_write_as_ranges() {
        let set: BTreeSet<i64> = [0, 1, 2, 4, 6, 7].into();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7"), set);
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let job = json!({"metadata": {"name": "work", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"job-name": "work"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}});
        let pod = job_pod(&job, Some(3));
        assert_eq!(pod["metadata"]["annotations"][INDEX_ANNOTATION], "3");
        assert_eq!(pod["metadata"]["generateName"], "work-3-");
        assert_eq!(pod["spec"]["hostname"], "work-3");
        assert_eq!(
            pod["spec"]["containers"][0]["env"][0]["name"],
            "JOB_COMPLETION_INDEX"
        );
        assert!(controlled_by(&pod, "u1"));
        let plain = job_pod(&job, None);
        assert!(
            plain["metadata"]["annotations"]
                .get(INDEX_ANNOTATION)
                .is_none()
        );
        assert_eq!(plain["metadata"]["generateName"], "work-");
    }
}
