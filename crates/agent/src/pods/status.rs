//! A pod's status as the kubelet reports it, computed from what the agent knows about its
//! containers: phase, the pod conditions, and one status per container with the state names
//! and reasons `kubectl get pods` shows (ContainerCreating, CrashLoopBackOff, Completed, Error,
//! OOMKilled, ErrImagePull...). Pure: the worker owns the records, this renders them.

use serde_json::{Value, json};

fn time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The state of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: jiff::Timestamp,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        message: Option<String>,
        started_at: Option<jiff::Timestamp>,
        finished_at: jiff::Timestamp,
        container_id: Option<String>,
    },
}

impl State {
    pub fn waiting(reason: &str) -> State {
        State::Waiting {
            reason: reason.to_string(),
            message: None,
        }
    }

    /// Kubernetes' reason for an exit: Completed, OOMKilled or Error.
    pub fn exit_reason(exit_code: i32, oom_killed: bool) -> &'static str {
        if oom_killed {
            "OOMKilled"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }

    fn to_json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": time(*started_at)}}),
            State::Terminated {
                exit_code,
                signal,
                reason,
                message,
                started_at,
                finished_at,
                container_id,
            } => {
                let mut t = json!({"exitCode": exit_code, "reason": reason, "finishedAt": time(*finished_at)});
                if let Some(s) = signal {
                    t["signal"] = json!(s);
                }
                if let Some(m) = message {
                    t["message"] = json!(m);
                }
                if let Some(s) = started_at {
                    t["startedAt"] = json!(time(*s));
                }
                if let Some(id) = container_id {
                    t["containerID"] = json!(id);
                }
                json!({"terminated": t})
            }
        }
    }

    fn is_running(&self) -> bool {
        matches!(self, State::Running { .. })
    }

    fn succeeded(&self) -> bool {
        matches!(self, State::Terminated { exit_code: 0, .. })
    }

    fn terminated(&self) -> bool {
        matches!(self, State::Terminated { .. })
    }
}

/// What the agent knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: State,
    pub last_state: Option<State>,
    pub restart_count: u32,
    /// Readiness probe result (true without a probe once running).
    pub ready: bool,
    /// Startup probe passed (or none).
    pub started: bool,
    /// A restartable init container (sidecar).
    pub sidecar: bool,
}

impl ContainerRecord {
    pub fn new(name: &str, image: &str) -> Self {
        ContainerRecord {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            container_id: None,
            state: State::waiting("ContainerCreating"),
            last_state: None,
            restart_count: 0,
            ready: false,
            started: false,
            sidecar: false,
        }
    }

    fn to_json(&self) -> Value {
        let mut status = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "state": self.state.to_json(),
            "lastState": self.last_state.as_ref().map(State::to_json).unwrap_or(json!({})),
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started && self.state.is_running(),
        });
        if let Some(id) = &self.container_id {
            status["containerID"] = json!(id);
        }
        status
    }
}

/// What the agent knows about a pod.
#[derive(Debug, Clone, Default)]
pub struct PodRecord {
    pub restart_policy: String,
    pub host_ip: Option<String>,
    pub pod_ip: Option<String>,
    pub start_time: Option<jiff::Timestamp>,
    /// The sandbox (namespaces, network) exists.
    pub sandbox_ready: bool,
    pub init_containers: Vec<ContainerRecord>,
    pub containers: Vec<ContainerRecord>,
    pub qos_class: String,
    /// Why the pod cannot start at all (e.g. an unmountable volume), shown as its message.
    pub reason: Option<(String, String)>,
}

impl PodRecord {
    /// Every regular init container has completed (sidecars only need to have started).
    pub fn initialized(&self) -> bool {
        self.init_containers.iter().all(|c| {
            if c.sidecar {
                c.started || c.state.is_running()
            } else {
                c.state.succeeded()
            }
        })
    }

    pub fn phase(&self) -> &'static str {
        let main = &self.containers;
        if main.is_empty() {
            return "Pending";
        }
        // A failed regular init container with restartPolicy Never fails the pod.
        if self.restart_policy == "Never"
            && self
                .init_containers
                .iter()
                .any(|c| !c.sidecar && c.state.terminated() && !c.state.succeeded())
        {
            return "Failed";
        }
        if !self.initialized() {
            return "Pending";
        }
        let all_terminated = main.iter().all(|c| c.state.terminated());
        if all_terminated {
            let all_succeeded = main.iter().all(|c| c.state.succeeded());
            return match self.restart_policy.as_str() {
                // Restarting containers are still part of a Running pod.
                "Always" => "Running",
                "OnFailure" if !all_succeeded => "Running",
                _ if all_succeeded => "Succeeded",
                _ => "Failed",
            };
        }
        let any_started = main
            .iter()
            .any(|c| c.state.is_running() || c.state.terminated() || c.restart_count > 0);
        if any_started { "Running" } else { "Pending" }
    }

    /// The `status` object of the pod.
    pub fn to_status(&self, now: jiff::Timestamp, previous_conditions: &[Value]) -> Value {
        let now_text = time(now);
        let condition = |kind: &str, ok: bool, reason: Option<&str>| {
            let status = if ok { "True" } else { "False" };
            let transition = previous_conditions
                .iter()
                .find(|c| c["type"] == kind && c["status"] == status)
                .and_then(|c| c.get("lastTransitionTime").cloned())
                .unwrap_or_else(|| json!(now_text));
            let mut c = json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": transition});
            if let (false, Some(r)) = (ok, reason) {
                c["reason"] = json!(r);
            }
            c
        };
        let initialized = self.initialized();
        let containers_ready =
            !self.containers.is_empty() && self.containers.iter().all(|c| c.ready);
        let phase = self.phase();
        let done = matches!(phase, "Succeeded" | "Failed");
        let mut conditions = vec![
            condition(
                "PodReadyToStartContainers",
                self.sandbox_ready && !done,
                None,
            ),
            condition("Initialized", initialized, Some("ContainersNotInitialized")),
            condition(
                "Ready",
                containers_ready && !done,
                Some(if done {
                    "PodCompleted"
                } else {
                    "ContainersNotReady"
                }),
            ),
            condition(
                "ContainersReady",
                containers_ready && !done,
                Some(if done {
                    "PodCompleted"
                } else {
                    "ContainersNotReady"
                }),
            ),
            condition("PodScheduled", true, None),
        ];
        if done
            && let Some(c) = conditions.get_mut(1)
            && initialized
        {
            c["reason"] = json!("PodCompleted");
        }
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "qosClass": self.qos_class,
            "containerStatuses": self.containers.iter().map(ContainerRecord::to_json).collect::<Vec<_>>(),
        });
        if !self.init_containers.is_empty() {
            status["initContainerStatuses"] = json!(
                self.init_containers
                    .iter()
                    .map(ContainerRecord::to_json)
                    .collect::<Vec<_>>()
            );
        }
        if let Some(ip) = &self.host_ip {
            status["hostIP"] = json!(ip);
            status["hostIPs"] = json!([{"ip": ip}]);
        }
        if let Some(ip) = &self.pod_ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        if let Some(start) = self.start_time {
            status["startTime"] = json!(time(start));
        }
        if let Some((reason, message)) = &self.reason {
            status["reason"] = json!(reason);
            status["message"] = json!(message);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn running(name: &str) -> ContainerRecord {
        let mut c = ContainerRecord::new(name, "img");
        c.state = State::Running {
            started_at: at("2026-01-01T00:00:00Z"),
        };
        c.ready = true;
        c.started = true;
        c
    }

    fn exited(name: &str, code: i32) -> ContainerRecord {
        let mut c = ContainerRecord::new(name, "img");
        c.state = State::Terminated {
            exit_code: code,
            signal: None,
            reason: State::exit_reason(code, false).into(),
            message: None,
            started_at: None,
            finished_at: at("2026-01-01T00:00:05Z"),
            container_id: None,
        };
        c
    }

    fn pod(policy: &str, init: Vec<ContainerRecord>, main: Vec<ContainerRecord>) -> PodRecord {
        PodRecord {
            restart_policy: policy.into(),
            sandbox_ready: true,
            init_containers: init,
            containers: main,
            qos_class: "BestEffort".into(),
            ..Default::default()
        }
    }

    #[test]
    fn phases() {
        assert_eq!(
            pod("Always", vec![], vec![ContainerRecord::new("a", "i")]).phase(),
            "Pending"
        );
        assert_eq!(pod("Always", vec![], vec![running("a")]).phase(), "Running");
        assert_eq!(
            pod("Never", vec![], vec![exited("a", 0)]).phase(),
            "Succeeded"
        );
        assert_eq!(pod("Never", vec![], vec![exited("a", 1)]).phase(), "Failed");
        assert_eq!(
            pod("OnFailure", vec![], vec![exited("a", 1)]).phase(),
            "Running"
        );
        assert_eq!(
            pod("OnFailure", vec![], vec![exited("a", 0)]).phase(),
            "Succeeded"
        );
        assert_eq!(
            pod("Always", vec![], vec![exited("a", 0)]).phase(),
            "Running"
        );
        assert_eq!(
            pod(
                "Always",
                vec![ContainerRecord::new("init", "i")],
                vec![ContainerRecord::new("a", "i")]
            )
            .phase(),
            "Pending"
        );
        assert_eq!(
            pod(
                "Never",
                vec![exited("init", 1)],
                vec![ContainerRecord::new("a", "i")]
            )
            .phase(),
            "Failed"
        );
        let mut sidecar = running("side");
        sidecar.sidecar = true;
        assert_eq!(
            pod("Always", vec![sidecar], vec![running("a")]).phase(),
            "Running"
        );
    }

    #[test]
    fn conditions_and_container_statuses() {
        let mut unready = running("a");
        unready.ready = false;
        let status =
            pod("Always", vec![], vec![unready]).to_status(at("2026-01-01T00:01:00Z"), &[]);
        let cond = |kind: &str| {
            status["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == kind)
                .unwrap()
                .clone()
        };
        assert_eq!(cond("Ready")["status"], "False");
        assert_eq!(cond("Ready")["reason"], "ContainersNotReady");
        assert_eq!(cond("Initialized")["status"], "True");
        assert_eq!(
            status["containerStatuses"][0]["state"]["running"]["startedAt"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(status["containerStatuses"][0]["started"], true);
        let done =
            pod("Never", vec![], vec![exited("a", 0)]).to_status(at("2026-01-01T00:01:00Z"), &[]);
        assert_eq!(done["phase"], "Succeeded");
        assert_eq!(
            done["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let ready_cond = done["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready_cond["reason"], "PodCompleted");
        // Transition times stay while a condition does not change.
        let previous = vec![
            json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}),
        ];
        let again = pod("Always", vec![], vec![running("a")])
            .to_status(at("2026-01-01T00:01:00Z"), &previous);
        assert_eq!(
            again["conditions"][4]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(State::exit_reason(137, true), "OOMKilled");
    }
}
