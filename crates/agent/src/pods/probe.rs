//! Running a container's liveness, readiness and startup probes on their schedule: one task per
//! probe of one container run, counting consecutive results against the thresholds and telling
//! the pod worker only about transitions (ready/unready, started, "restart it"). Failed checks
//! become `Unhealthy` events as the kubelet records them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use maestro_oci::runtime::{ExecConfig, OciRuntime};
use tokio::sync::mpsc;

use crate::events::{Recorder, Subject};
use crate::probes::{self, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    fn label(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// A transition reported to the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Readiness changed.
    Ready(bool),
    /// The startup probe succeeded: liveness and readiness probes start now.
    Started,
    /// Liveness or startup failed `failureThreshold` times: the container is to be restarted.
    Restart { kind: ProbeKind, message: String },
}

/// A verdict about one run of one container (its runtime id).
#[derive(Debug, Clone)]
pub struct Report {
    pub container_id: String,
    pub verdict: Verdict,
}

/// Everything a probe task needs.
pub struct ProbeTarget {
    pub runtime: Arc<dyn OciRuntime>,
    pub container_id: String,
    pub container: Container,
    pub pod_ip: IpAddr,
    pub events: Recorder,
    pub subject: Subject,
}

fn seconds(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

/// A port given by number or by the name of one of the container's ports.
fn resolve_port(container: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port {name:?} in the container's ports"))
        }
    }
}

/// One check of `probe`, bounded by its timeout.
pub async fn check(probe: &Probe, target: &ProbeTarget) -> Outcome {
    let timeout = seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        let runtime = target.runtime.clone();
        let id = target.container_id.clone();
        let result = tokio::task::spawn_blocking(move || {
            runtime
                .exec(&id, &ExecConfig::command(command))
                .and_then(|session| session.output(Some(timeout)))
        })
        .await;
        return match result {
            Ok(Ok(out)) => match out.exit_code {
                Some(0) => Outcome::Success,
                Some(code) => {
                    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                    text.push_str(&String::from_utf8_lossy(&out.stderr));
                    let text = text.trim();
                    Outcome::Failure(if text.is_empty() {
                        format!("command exited with code {code}")
                    } else {
                        text.to_string()
                    })
                }
                None => Outcome::Failure(format!("command timed out after {}s", timeout.as_secs())),
            },
            Ok(Err(err)) => Outcome::Failure(err.to_string()),
            Err(err) => Outcome::Failure(err.to_string()),
        };
    }
    if let Some(http) = &probe.http_get {
        let port = match resolve_port(&target.container, &http.port) {
            Ok(p) => p,
            Err(m) => return Outcome::Failure(m),
        };
        let ip = http
            .host
            .as_deref()
            .and_then(|h| h.parse::<IpAddr>().ok())
            .unwrap_or(target.pod_ip);
        let headers: Vec<(String, String)> = http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        let host_header = http
            .host
            .as_deref()
            .filter(|h| h.parse::<IpAddr>().is_err());
        let https = http.scheme.as_deref() == Some("HTTPS");
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        return probes::http_get(
            SocketAddr::new(ip, port),
            https,
            host_header,
            &path,
            &headers,
            timeout,
        )
        .await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let port = match resolve_port(&target.container, &tcp.port) {
            Ok(p) => p,
            Err(m) => return Outcome::Failure(m),
        };
        let ip = tcp
            .host
            .as_deref()
            .and_then(|h| h.parse::<IpAddr>().ok())
            .unwrap_or(target.pod_ip);
        return probes::tcp(SocketAddr::new(ip, port), timeout).await;
    }
    if let Some(grpc) = &probe.grpc {
        let Ok(port) = u16::try_from(grpc.port) else {
            return Outcome::Failure(format!("invalid port {}", grpc.port));
        };
        return probes::grpc(
            SocketAddr::new(target.pod_ip, port),
            grpc.service.as_deref().unwrap_or(""),
            timeout,
        )
        .await;
    }
    Outcome::Failure("probe has no handler".into())
}

/// Runs one probe until the task is aborted (the container stopped) or, for liveness and
/// startup, until it asked for a restart.
pub async fn run(
    kind: ProbeKind,
    probe: Probe,
    target: ProbeTarget,
    reports: mpsc::Sender<Report>,
) {
    let period = seconds(probe.period_seconds, 10).max(Duration::from_secs(1));
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1) as u32;
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1) as u32;
    tokio::time::sleep(seconds(probe.initial_delay_seconds, 0)).await;
    let (mut successes, mut failures) = (0u32, 0u32);
    // Readiness starts unknown (false); the first verdict is sent when a threshold is met.
    let mut ready: Option<bool> = None;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let send = |verdict: Verdict| {
            let reports = reports.clone();
            let container_id = target.container_id.clone();
            async move {
                reports
                    .send(Report {
                        container_id,
                        verdict,
                    })
                    .await
                    .is_ok()
            }
        };
        match check(&probe, &target).await {
            Outcome::Success => {
                failures = 0;
                successes += 1;
                match kind {
                    ProbeKind::Startup => {
                        send(Verdict::Started).await;
                        return;
                    }
                    ProbeKind::Readiness
                        if successes >= success_threshold && ready != Some(true) =>
                    {
                        ready = Some(true);
                        if !send(Verdict::Ready(true)).await {
                            return;
                        }
                    }
                    _ => {}
                }
            }
            Outcome::Failure(message) => {
                successes = 0;
                failures += 1;
                target.events.warning(
                    &target.subject,
                    "Unhealthy",
                    &format!("{} probe failed: {message}", kind.label()),
                );
                if failures < failure_threshold {
                    continue;
                }
                match kind {
                    ProbeKind::Readiness => {
                        if ready != Some(false) {
                            ready = Some(false);
                            if !send(Verdict::Ready(false)).await {
                                return;
                            }
                        }
                    }
                    ProbeKind::Liveness | ProbeKind::Startup => {
                        send(Verdict::Restart { kind, message }).await;
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ports() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "http", "containerPort": 8080}]
        }))
        .unwrap();
        assert_eq!(resolve_port(&c, &IntOrString::Int(80)), Ok(80));
        assert_eq!(
            resolve_port(&c, &IntOrString::String("http".into())),
            Ok(8080)
        );
        assert_eq!(resolve_port(&c, &IntOrString::String("81".into())), Ok(81));
        assert!(resolve_port(&c, &IntOrString::String("nope".into())).is_err());
        assert!(resolve_port(&c, &IntOrString::Int(70000)).is_err());
    }
}
