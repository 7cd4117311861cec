//! One pod's life on this node, as one task: sandbox, network and volumes; images; init
//! containers in order (sidecars kept running); the app containers; exits, restarts with
//! back-off, probes and hooks; the pod status after every change; graceful termination and a
//! teardown that leaves nothing behind.
//!
//! The worker owns its pod's state; the manager only forwards new versions of the Pod object
//! (or `None` once it is gone from the API). Everything that blocks (the OCI runtime, the pod
//! network, snapshots) runs on the blocking pool, so one slow pod never holds up another.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use maestro_oci::image::{DockerConfig, Image, PullEvent, PullPolicy, Reference};
use maestro_oci::runtime::{
    ContainerConfig, ContainerIo, ContainerState, ContainerStatus, ExecConfig, InitContainer,
    Mount, NamespaceMode, Output, PodSandbox, QosClass, SandboxConfig, Signal, pod_resources,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::backoff::Backoff;
use super::container::{self, ConfigError, References};
use super::probe::{self, ProbeKind, ProbeTarget, Report, Verdict};
use super::setup::{self, VolumeContext, Volumes};
use super::status::{ContainerRecord, PodRecord, State};
use super::{ContainerView, NodeContext, PodView};
use crate::events::Subject;

/// Annotations on every container, to find them again after an agent restart.
pub const CONTAINER_NAME_ANNOTATION: &str = "io.maestro.container.name";
pub const ATTEMPT_ANNOTATION: &str = "io.maestro.container.attempt";
pub const POD_NAME_ANNOTATION: &str = "io.maestro.pod.name";
pub const POD_NAMESPACE_ANNOTATION: &str = "io.maestro.pod.namespace";

/// How often running containers are checked for an exit (a stat of the shim's exit record).
const POLL: Duration = Duration::from_millis(200);
/// How often projected volume contents are compared with the API.
const VOLUME_REFRESH: Duration = Duration::from_secs(10);
/// How long to wait before retrying a failed pod setup (volumes, sandbox).
const SETUP_RETRY: Duration = Duration::from_secs(2);
/// The most of a termination message kept.
const MAX_TERMINATION_MESSAGE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Init,
    Sidecar,
    App,
}

/// One running instance of a container.
struct Run {
    id: String,
    started: Instant,
    started_at: jiff::Timestamp,
    probes: Vec<tokio::task::JoinHandle<()>>,
    /// Why the agent is stopping it, if it is (liveness failure...).
    killing: Option<String>,
    /// The image's StopSignal, SIGTERM by default.
    stop_signal: Signal,
}

impl Drop for Run {
    fn drop(&mut self) {
        for p in &self.probes {
            p.abort();
        }
    }
}

/// One container of the pod spec and everything known about it.
struct Slot {
    spec: Container,
    kind: Kind,
    record: ContainerRecord,
    run: Option<Run>,
    backoff: Backoff,
    pull_backoff: Backoff,
    /// Waiting (back-off or retry) until this instant before the next start.
    not_before: Option<Instant>,
    /// A regular init container that completed, or a container that will not run again.
    done: bool,
    /// A run of this container ended before (here or under a previous agent): the next start
    /// is a restart.
    ran_before: bool,
}

impl Slot {
    fn field(&self) -> &'static str {
        match self.kind {
            Kind::App => "containers",
            _ => "initContainers",
        }
    }
}

pub struct Worker {
    ctx: Arc<NodeContext>,
    pod: Arc<Pod>,
    uid: String,
    namespace: String,
    name: String,
    subject: Subject,
    updates: watch::Receiver<Option<Arc<Pod>>>,
    view: Arc<Mutex<PodView>>,
    slots: Vec<Slot>,
    qos: QosClass,
    sandbox: Option<PodSandbox>,
    pod_ip: Option<IpAddr>,
    /// Containers were adopted and their probes wait for the pod IP.
    adopted_probes_pending: bool,
    etc_files: Option<maestro_net::pod_network::files::PodFilePaths>,
    volumes: Volumes,
    volumes_ready: bool,
    next_volume_refresh: Instant,
    setup_retry_at: Option<Instant>,
    setup_error: Option<(String, String)>,
    start_time: Option<jiff::Timestamp>,
    last_status: Option<Value>,
    reports_tx: mpsc::Sender<Report>,
    reports_rx: mpsc::Receiver<Report>,
    /// Phase reached Succeeded/Failed and the resources were released.
    finished: bool,
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn to_timestamp(t: std::time::SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(t).unwrap_or_else(|_| now())
}

/// A fresh runtime id: 64 hex characters, as container runtimes name containers.
fn new_container_id(uid: &str, name: &str, attempt: u32) -> String {
    use sha2::Digest;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let digest = sha2::Sha256::digest(format!("{uid}/{name}/{attempt}/{nanos}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn qos_class(pod: &Pod) -> QosClass {
    let spec = pod.spec.as_ref();
    let all: Vec<_> = spec
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
                .map(container::resource_requirements)
                .collect()
        })
        .unwrap_or_default();
    QosClass::of(all.iter())
}

fn qos_name(q: QosClass) -> &'static str {
    match q {
        QosClass::Guaranteed => "Guaranteed",
        QosClass::Burstable => "Burstable",
        QosClass::BestEffort => "BestEffort",
    }
}

/// The record a container starts with, continuing what a previous agent reported.
fn initial_record(c: &Container, kind: Kind, previous: Option<&Value>) -> ContainerRecord {
    let image = c.image.clone().unwrap_or_default();
    let mut record = ContainerRecord::new(&c.name, &image);
    record.sidecar = kind == Kind::Sidecar;
    if let Some(prev) = previous {
        record.restart_count = prev["restartCount"].as_u64().unwrap_or(0) as u32;
        record.image_id = prev["imageID"].as_str().unwrap_or_default().to_string();
        record.ready = prev["ready"].as_bool().unwrap_or(false);
        record.started = prev["started"].as_bool().unwrap_or(false);
        record.last_state = parse_state(&prev["lastState"]);
        if let Some(state) = parse_state(&prev["state"]) {
            record.state = state;
        }
    }
    record
}

/// Whether a stored status shows that the container ran before.
fn ran_before(record: &ContainerRecord) -> bool {
    record.restart_count > 0
        || record.last_state.is_some()
        || matches!(
            record.state,
            State::Running { .. } | State::Terminated { .. }
        )
}

fn parse_time(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// A state object from a stored status (`{"terminated": {...}}`).
fn parse_state(v: &Value) -> Option<State> {
    if let Some(t) = v.get("terminated") {
        return Some(State::Terminated {
            exit_code: t["exitCode"].as_i64().unwrap_or(0) as i32,
            signal: t["signal"].as_i64().map(|s| s as i32),
            reason: t["reason"].as_str().unwrap_or("Error").to_string(),
            message: t["message"].as_str().map(String::from),
            started_at: parse_time(&t["startedAt"]),
            finished_at: parse_time(&t["finishedAt"]).unwrap_or_else(now),
            container_id: t["containerID"].as_str().map(String::from),
        });
    }
    if let Some(r) = v.get("running") {
        return Some(State::Running {
            started_at: parse_time(&r["startedAt"]).unwrap_or_else(now),
        });
    }
    v.get("waiting").map(|w| State::Waiting {
        reason: w["reason"]
            .as_str()
            .unwrap_or("ContainerCreating")
            .to_string(),
        message: w["message"].as_str().map(String::from),
    })
}

impl Worker {
    pub fn new(
        ctx: Arc<NodeContext>,
        pod: Arc<Pod>,
        updates: watch::Receiver<Option<Arc<Pod>>>,
        view: Arc<Mutex<PodView>>,
    ) -> Worker {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status =
            serde_json::to_value(pod.status.clone().unwrap_or_default()).unwrap_or_default();
        let previous = |list: &str, n: &str| -> Option<Value> {
            status[list]
                .as_array()?
                .iter()
                .find(|s| s["name"] == n)
                .cloned()
        };
        let mut slots = Vec::new();
        if let Some(spec) = &pod.spec {
            for c in spec.init_containers.iter().flatten() {
                let kind = if c.restart_policy.as_deref() == Some("Always") {
                    Kind::Sidecar
                } else {
                    Kind::Init
                };
                let prev = previous("initContainerStatuses", &c.name);
                let record = initial_record(c, kind, prev.as_ref());
                let done = kind == Kind::Init
                    && matches!(record.state, State::Terminated { exit_code: 0, .. });
                slots.push(Slot {
                    spec: c.clone(),
                    kind,
                    ran_before: ran_before(&record),
                    record,
                    run: None,
                    backoff: Backoff::default(),
                    pull_backoff: Backoff::default(),
                    not_before: None,
                    done,
                });
            }
            for c in &spec.containers {
                let prev = previous("containerStatuses", &c.name);
                let mut record = initial_record(c, Kind::App, prev.as_ref());
                if spec.init_containers.as_ref().is_some_and(|i| !i.is_empty())
                    && record.state == State::waiting("ContainerCreating")
                {
                    record.state = State::waiting("PodInitializing");
                }
                slots.push(Slot {
                    spec: c.clone(),
                    kind: Kind::App,
                    ran_before: ran_before(&record),
                    record,
                    run: None,
                    backoff: Backoff::default(),
                    pull_backoff: Backoff::default(),
                    not_before: None,
                    done: false,
                });
            }
        }
        let start_time = parse_time(&status["startTime"]);
        // A pod that already ended (before an agent restart) is not run again.
        let finished = matches!(status["phase"].as_str(), Some("Succeeded" | "Failed"));
        let (reports_tx, reports_rx) = mpsc::channel(64);
        let qos = qos_class(&pod);
        Worker {
            subject: Subject::pod(&namespace, &name, &uid),
            ctx,
            pod,
            uid,
            namespace,
            name,
            updates,
            view,
            slots,
            qos,
            sandbox: None,
            pod_ip: None,
            adopted_probes_pending: false,
            etc_files: None,
            volumes: Volumes::default(),
            volumes_ready: false,
            next_volume_refresh: Instant::now() + VOLUME_REFRESH,
            setup_retry_at: None,
            setup_error: None,
            start_time,
            last_status: None,
            reports_tx,
            reports_rx,
            finished,
        }
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn host_network(&self) -> bool {
        self.pod.spec.as_ref().and_then(|s| s.host_network) == Some(true)
    }

    fn pod_dir(&self) -> PathBuf {
        setup::pod_dir(&self.ctx.data_dir, &self.uid)
    }

    /// `<data>/logs/<ns>_<name>_<uid>/<container>/<attempt>.log`, as the kubelet lays them out.
    fn log_path(&self, container: &str, attempt: u32) -> PathBuf {
        super::log_dir(&self.ctx.data_dir, &self.namespace, &self.name, &self.uid)
            .join(container)
            .join(format!("{attempt}.log"))
    }

    fn runtime_prefix(&self) -> String {
        format!("{}://", self.ctx.runtime.name())
    }

    /// Runs the pod until it is deleted and torn down. `adopted` are the containers of this
    /// pod a previous agent left running.
    pub async fn run(mut self, adopted: Vec<ContainerStatus>) {
        self.adopt(adopted).await;
        loop {
            let latest = self.updates.borrow_and_update().clone();
            match latest {
                None => {
                    self.terminate(Duration::ZERO, false).await;
                    return;
                }
                Some(pod) => {
                    if pod.metadata.deletion_timestamp.is_some() {
                        let grace = pod
                            .metadata
                            .deletion_grace_period_seconds
                            .or_else(|| {
                                pod.spec
                                    .as_ref()
                                    .and_then(|s| s.termination_grace_period_seconds)
                            })
                            .unwrap_or(30)
                            .max(0) as u64;
                        self.pod = pod;
                        self.terminate(Duration::from_secs(grace), true).await;
                        return;
                    }
                    self.pod = pod;
                }
            }
            if !self.finished {
                self.step().await;
            }
            self.publish_status().await;
            tokio::select! {
                changed = self.updates.changed() => {
                    if changed.is_err() {
                        // The manager is gone (agent shutting down): leave the pod running.
                        return;
                    }
                }
                Some(report) = self.reports_rx.recv() => self.on_report(report).await,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Takes over the containers a previous agent left: the newest run of each container
    /// becomes its current run; older ones are removed.
    async fn adopt(&mut self, adopted: Vec<ContainerStatus>) {
        if self.finished {
            for status in &adopted {
                self.remove_container(&status.id).await;
            }
            self.release().await;
            return;
        }
        if adopted.is_empty() {
            return;
        }
        let mut newest: BTreeMap<String, (u32, ContainerStatus)> = BTreeMap::new();
        let mut stale = Vec::new();
        for status in adopted {
            let name = status
                .annotations
                .get(CONTAINER_NAME_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            let attempt = status
                .annotations
                .get(ATTEMPT_ANNOTATION)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            match newest.get(&name) {
                Some((a, _)) if *a >= attempt => stale.push(status.id.clone()),
                _ => {
                    if let Some((_, old)) = newest.insert(name, (attempt, status)) {
                        stale.push(old.id);
                    }
                }
            }
        }
        for id in stale {
            self.remove_container(&id).await;
        }
        if let Ok(Some(sandbox)) = self
            .blocking({
                let sandboxes = self.ctx.sandboxes.clone();
                let uid = self.uid.clone();
                move || sandboxes.get(&uid)
            })
            .await
        {
            self.sandbox = Some(sandbox);
        }
        for (name, (attempt, status)) in newest {
            let Some(index) = self.slots.iter().position(|s| s.spec.name == name) else {
                self.remove_container(&status.id).await;
                continue;
            };
            let created = status
                .created_at
                .as_deref()
                .and_then(|c| c.parse::<jiff::Timestamp>().ok())
                .unwrap_or_else(now);
            let slot = &mut self.slots[index];
            slot.record.restart_count = attempt;
            slot.record.container_id = Some(format!("{}://{}", self.ctx.runtime.name(), status.id));
            if status.state == ContainerState::Running {
                slot.record.state = State::Running {
                    started_at: match &slot.record.state {
                        State::Running { started_at } => *started_at,
                        _ => created,
                    },
                };
            }
            let ran = now().duration_since(created).unsigned_abs();
            slot.run = Some(Run {
                id: status.id.clone(),
                started: Instant::now().checked_sub(ran).unwrap_or_else(Instant::now),
                started_at: created,
                probes: Vec::new(),
                killing: None,
                stop_signal: Signal::TERM,
            });
            tracing::info!(pod = %self.name, container = %name, id = %status.id, "re-attached to a running container");
        }
        // Probes start again for the adopted runs once setup has found the pod's IP again
        // (`step`); until the first verdict the containers count as not ready.
        self.adopted_probes_pending = true;
        self.update_view();
    }

    /// Restarts the probes of the runs taken over from a previous agent.
    fn start_adopted_probes(&mut self) {
        self.adopted_probes_pending = false;
        for index in 0..self.slots.len() {
            if self.slots[index].run.is_some() {
                let startup_done = self.slots[index].record.started
                    || self.slots[index].spec.startup_probe.is_none();
                self.start_probes(index, startup_done);
            }
        }
    }

    async fn blocking<T: Send + 'static, E: std::fmt::Display + Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Result<T, String> {
        match tokio::task::spawn_blocking(f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The pod as JSON with what this node assigned (for fieldRefs and the downward API).
    fn pod_json(&self) -> Value {
        let mut v = serde_json::to_value(&*self.pod).unwrap_or_default();
        if let Some(ip) = self.pod_ip {
            v["status"]["podIP"] = json!(ip.to_string());
        }
        if let Some(ip) = self.ctx.node_ip {
            v["status"]["hostIP"] = json!(ip.to_string());
        }
        v
    }

    /// Sandbox, network, /etc files and volumes. `Err` is shown on the pod and retried.
    async fn setup(&mut self) -> Result<(), (String, String)> {
        if self.start_time.is_none() {
            self.start_time = Some(now());
        }
        if self.sandbox.is_none() {
            let hostname = maestro_net::pod_network::files::pod_hostname(
                &self.name,
                self.pod.spec.as_ref().and_then(|s| s.hostname.as_deref()),
            );
            let mut config = SandboxConfig::new(&self.uid, hostname, self.qos);
            let spec = self.pod.spec.clone().unwrap_or_default();
            let containers: Vec<_> = spec
                .containers
                .iter()
                .map(container::resource_requirements)
                .collect();
            let inits: Vec<InitContainer> = spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| InitContainer {
                    resources: container::resource_requirements(c),
                    restartable: c.restart_policy.as_deref() == Some("Always"),
                })
                .collect();
            config.resources = pod_resources(&containers, &inits, self.ctx.pids_limit);
            let sandboxes = self.ctx.sandboxes.clone();
            let sandbox = self
                .blocking(move || sandboxes.create(&config))
                .await
                .map_err(|m| {
                    (
                        "FailedCreatePodSandBox".to_string(),
                        format!("Failed to create pod sandbox: {m}"),
                    )
                })?;
            self.sandbox = Some(sandbox);
        }
        let sandbox = self.sandbox.clone().expect("created above");
        if self.pod_ip.is_none() {
            if self.host_network() {
                self.pod_ip = self.ctx.node_ip;
            } else {
                let network = self.ctx.network.get().cloned().ok_or_else(|| {
                    (
                        "NetworkNotReady".to_string(),
                        "network is not ready: the node has no pod CIDR yet".to_string(),
                    )
                })?;
                let uid = self.uid.clone();
                let existing = network.lookup(&uid).filter(|_| {
                    maestro_net::pod_network::naming::link_exists(
                        &maestro_net::pod_network::naming::host_veth_name(&uid),
                    )
                });
                let ip = match existing {
                    Some(ip) => ip,
                    None => {
                        let netns = sandbox.net_ns();
                        self.blocking(move || network.attach(&uid, &netns))
                            .await
                            .map_err(|m| {
                                (
                                    "FailedCreatePodSandBox".to_string(),
                                    format!("Failed to set up the pod network: {m}"),
                                )
                            })?
                            .ip
                    }
                };
                self.pod_ip = Some(IpAddr::V4(ip));
            }
            self.update_view();
        }
        if self.etc_files.is_none() {
            let spec = self.pod.spec.clone().unwrap_or_default();
            let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let files = maestro_net::pod_network::files::PodFiles {
                hostname: sandbox.hostname.clone(),
                subdomain: spec.subdomain.clone(),
                namespace: self.namespace.clone(),
                cluster_domain: self.ctx.cluster_domain.clone(),
                pod_ips: self.pod_ip.into_iter().collect(),
                host_aliases: spec
                    .host_aliases
                    .iter()
                    .flatten()
                    .map(|a| maestro_net::pod_network::files::HostAlias {
                        ip: a.ip.clone(),
                        hostnames: a.hostnames.clone().unwrap_or_default(),
                    })
                    .collect(),
                set_hostname_as_fqdn: spec.set_hostname_as_fqdn == Some(true),
                dns: setup::dns_config(
                    &self.pod,
                    &self.ctx.cluster_dns,
                    &self.ctx.cluster_domain,
                    &host_resolv,
                ),
            };
            let dir = self.pod_dir().join("etc");
            let paths = self
                .blocking(move || maestro_net::pod_network::files::write_pod_files(&dir, &files))
                .await
                .map_err(|m| ("FailedCreatePodSandBox".to_string(), m))?;
            self.etc_files = Some(paths);
        }
        if !self.volumes_ready {
            let pod_json = self.pod_json();
            let pod_dir = self.pod_dir();
            let storage_dir = crate::local_path::storage_dir(&self.ctx.data_dir);
            let ctx = VolumeContext {
                client: &self.ctx.client,
                pod: &self.pod,
                pod_json: &pod_json,
                pod_dir: &pod_dir,
                node_cpu_millis: self.ctx.node_cpu_millis,
                node_memory_bytes: self.ctx.node_memory_bytes,
                storage_dir: &storage_dir,
            };
            let mut volumes = std::mem::take(&mut self.volumes);
            let result = volumes.prepare(&ctx).await;
            self.volumes = volumes;
            result.map_err(|e| ("FailedMount".to_string(), e.to_string()))?;
            self.volumes_ready = true;
        }
        Ok(())
    }

    /// One round: set up what is missing, notice exits, start what is due.
    async fn step(&mut self) {
        if self.sandbox.is_none()
            || self.pod_ip.is_none()
            || self.etc_files.is_none()
            || !self.volumes_ready
        {
            if self.setup_retry_at.is_some_and(|t| Instant::now() < t) {
                return;
            }
            if let Err((reason, message)) = self.setup().await {
                if self.setup_error.as_ref() != Some(&(reason.clone(), message.clone())) {
                    self.ctx.events.warning(&self.subject, &reason, &message);
                }
                tracing::warn!(pod = %self.name, %reason, %message, "pod setup failed");
                self.setup_error = Some((reason, message));
                self.setup_retry_at = Some(Instant::now() + SETUP_RETRY);
                return;
            }
            self.setup_error = None;
        }
        if self.adopted_probes_pending {
            self.start_adopted_probes();
        }
        if Instant::now() >= self.next_volume_refresh {
            self.next_volume_refresh = Instant::now() + VOLUME_REFRESH;
            let pod_json = self.pod_json();
            let pod_dir = self.pod_dir();
            let storage_dir = crate::local_path::storage_dir(&self.ctx.data_dir);
            let ctx = VolumeContext {
                client: &self.ctx.client,
                pod: &self.pod,
                pod_json: &pod_json,
                pod_dir: &pod_dir,
                node_cpu_millis: self.ctx.node_cpu_millis,
                node_memory_bytes: self.ctx.node_memory_bytes,
                storage_dir: &storage_dir,
            };
            let mut volumes = std::mem::take(&mut self.volumes);
            if let Err(err) = volumes.refresh(&ctx).await {
                tracing::debug!(pod = %self.name, %err, "refreshing volumes failed");
            }
            self.volumes = volumes;
        }
        self.check_exits().await;
        self.advance().await;
        self.finish_if_done().await;
    }

    /// Starts the containers whose turn it is.
    async fn advance(&mut self) {
        // Init containers, in order: each regular one must complete, each sidecar must have
        // started, before the next.
        let mut index = 0;
        while index < self.slots.len() && self.slots[index].kind != Kind::App {
            let slot = &self.slots[index];
            match slot.kind {
                Kind::Init if slot.done => {}
                Kind::Init => {
                    if slot.run.is_none() && self.may_start(index) {
                        self.start(index).await;
                    }
                    return;
                }
                _ => {
                    if slot.run.is_none() && self.may_start(index) {
                        self.start(index).await;
                    }
                    let slot = &self.slots[index];
                    let started = slot.run.is_some() && slot.record.started;
                    // `started` is set at start without a startup probe, else when it passes.
                    if !started {
                        return;
                    }
                }
            }
            index += 1;
        }
        for index in 0..self.slots.len() {
            if self.slots[index].kind == Kind::App
                && self.slots[index].run.is_none()
                && self.may_start(index)
            {
                self.start(index).await;
            }
        }
    }

    fn may_start(&self, index: usize) -> bool {
        let slot = &self.slots[index];
        !slot.done && slot.not_before.is_none_or(|t| Instant::now() >= t)
    }

    fn back_off(&mut self, index: usize, delay: Duration) {
        self.slots[index].not_before = Some(Instant::now() + delay);
    }

    /// The image of a container, pulled as its policy says, with the kubelet's events.
    async fn ensure_image(&mut self, index: usize) -> Result<Image, (String, String)> {
        let spec = self.slots[index].spec.clone();
        let subject = self
            .subject
            .container(self.slots[index].field(), &spec.name);
        let image_name = spec.image.clone().unwrap_or_default();
        let reference = Reference::parse(&image_name).map_err(|e| {
            (
                "InvalidImageName".to_string(),
                format!(
                    "Failed to apply default image tag \"{image_name}\": couldn't parse image name \"{image_name}\": {e}"
                ),
            )
        })?;
        let policy = spec
            .image_pull_policy
            .as_deref()
            .and_then(PullPolicy::parse)
            .unwrap_or_else(|| PullPolicy::default_for(&reference));
        let present = self.ctx.images.get(&reference).ok().flatten();
        if let (Some(image), true) = (&present, policy != PullPolicy::Always) {
            self.ctx.events.normal(
                &subject,
                "Pulled",
                &format!("Container image \"{image_name}\" already present on machine"),
            );
            let _ = self.ctx.images.touch(&image.digest);
            return Ok(image.clone());
        }
        if policy == PullPolicy::Never {
            let message = format!(
                "Container image \"{image_name}\" is not present with pull policy of Never"
            );
            self.ctx
                .events
                .warning(&subject, "ErrImageNeverPull", &message);
            return Err(("ErrImageNeverPull".into(), message));
        }
        let mut options = self.ctx.pull_options.clone();
        options.credentials = self.pull_credentials(&reference).await;
        self.ctx.events.normal(
            &subject,
            "Pulling",
            &format!("Pulling image \"{image_name}\""),
        );
        let started = Instant::now();
        let name_for_log = image_name.clone();
        let progress = move |event: &PullEvent| match event {
            PullEvent::LayerDone { digest } => {
                tracing::info!(image = %name_for_log, layer = %digest.as_str(), "layer pulled")
            }
            PullEvent::Done {
                downloaded,
                elapsed,
                ..
            } => tracing::info!(image = %name_for_log, downloaded, ?elapsed, "image pulled"),
            _ => {}
        };
        let images = self.ctx.images.clone();
        let pulled = images.ensure(&reference, policy, &options, &progress).await;
        match pulled {
            Ok(image) => {
                let took = started.elapsed().as_secs_f64();
                self.ctx.events.normal(
                    &subject,
                    "Pulled",
                    &format!(
                        "Successfully pulled image \"{image_name}\" in {took:.3}s ({took:.3}s including waiting). Image size: {} bytes.",
                        image.size
                    ),
                );
                self.slots[index].pull_backoff.reset();
                Ok(image)
            }
            Err(err) => {
                let message = format!("Failed to pull image \"{image_name}\": {err}");
                self.ctx.events.warning(&subject, "Failed", &message);
                self.ctx.events.warning(
                    &subject,
                    "Failed",
                    &format!("Error: {}", err.kubelet_reason()),
                );
                Err((err.kubelet_reason().to_string(), message))
            }
        }
    }

    /// Credentials from the pod's imagePullSecrets that match the image's registry.
    async fn pull_credentials(
        &self,
        reference: &Reference,
    ) -> Vec<maestro_oci::image::Credentials> {
        let mut out = Vec::new();
        let secrets = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default();
        for s in secrets {
            let name = s.name;
            if name.is_empty() {
                continue;
            }
            match setup::secret(&self.ctx.client, &self.namespace, &name).await {
                Ok(Some(data)) => {
                    let raw = data
                        .get(".dockerconfigjson")
                        .or_else(|| data.get(".dockercfg"));
                    if let Some(config) = raw.and_then(|r| DockerConfig::parse(r).ok()) {
                        out.extend(config.credentials_for(reference));
                    }
                }
                Ok(None) => {
                    tracing::warn!(pod = %self.name, secret = %name, "image pull secret not found")
                }
                Err(err) => {
                    tracing::warn!(pod = %self.name, %err, "reading an image pull secret failed")
                }
            }
        }
        out
    }

    /// ConfigMaps and secrets the container's environment refers to.
    async fn references(&self, c: &Container) -> Result<References, ConfigError> {
        let (maps, secrets) = References::wanted(c);
        let mut refs = References::default();
        for name in maps {
            let data = setup::config_map(&self.ctx.client, &self.namespace, &name)
                .await
                .map_err(|e| ConfigError::config(e.to_string()))?;
            refs.config_maps.insert(name, data);
        }
        for name in secrets {
            let data = setup::secret(&self.ctx.client, &self.namespace, &name)
                .await
                .map_err(|e| ConfigError::config(e.to_string()))?;
            refs.secrets.insert(name, data);
        }
        Ok(refs)
    }

    fn waiting(&mut self, index: usize, reason: &str, message: Option<String>) {
        self.slots[index].record.state = State::Waiting {
            reason: reason.to_string(),
            message,
        };
    }

    /// Creates and starts one container (a new run of the slot).
    async fn start(&mut self, index: usize) {
        let image = match self.ensure_image(index).await {
            Ok(image) => image,
            Err((reason, message)) => {
                let delay = self.slots[index].pull_backoff.next_delay(Duration::ZERO);
                // After the first failure the kubelet shows the back-off state.
                let shown = if delay > Duration::ZERO && reason == "ErrImagePull" {
                    let name = self.slots[index].spec.image.clone().unwrap_or_default();
                    self.ctx.events.normal(
                        &self
                            .subject
                            .container(self.slots[index].field(), &self.slots[index].spec.name),
                        "BackOff",
                        &format!("Back-off pulling image \"{name}\""),
                    );
                    "ImagePullBackOff"
                } else {
                    reason.as_str()
                };
                let shown = shown.to_string();
                self.waiting(index, &shown, Some(message));
                self.back_off(index, delay.max(Duration::from_secs(1)));
                return;
            }
        };
        let spec = self.slots[index].spec.clone();
        let subject = self
            .subject
            .container(self.slots[index].field(), &spec.name);
        let attempt = if self.slots[index].ran_before {
            self.slots[index].record.restart_count + 1
        } else {
            self.slots[index].record.restart_count
        };
        let id = new_container_id(&self.uid, &spec.name, attempt);
        let images = self.ctx.images.clone();
        let (snap_id, snap_image) = (id.clone(), image.clone());
        let snapshot = match self
            .blocking(move || images.create_snapshot(&snap_id, &snap_image))
            .await
        {
            Ok(s) => s,
            Err(message) => {
                self.ctx
                    .events
                    .warning(&subject, "Failed", &format!("Error: {message}"));
                self.waiting(index, "CreateContainerError", Some(message));
                let delay = self.slots[index].backoff.next_delay(Duration::ZERO);
                self.back_off(index, delay.max(Duration::from_secs(1)));
                return;
            }
        };
        let config = match self
            .container_config(index, &id, attempt, &image, &snapshot.rootfs)
            .await
        {
            Ok(c) => c,
            Err(err) => {
                self.ctx
                    .events
                    .warning(&subject, "Failed", &format!("Error: {}", err.message));
                self.waiting(index, err.reason, Some(err.message));
                self.remove_container(&id).await;
                let delay = self.slots[index].backoff.next_delay(Duration::ZERO);
                self.back_off(index, delay.max(Duration::from_secs(1)));
                return;
            }
        };
        let runtime = self.ctx.runtime.clone();
        let start_id = id.clone();
        let created = self
            .blocking(move || {
                runtime.create(&config)?;
                runtime.start(&start_id)
            })
            .await;
        let slot_record_image = image
            .repo_digest()
            .map(String::from)
            .unwrap_or_else(|| image.digest.as_str().to_string());
        let container_id = format!("{}{id}", self.runtime_prefix());
        {
            let slot = &mut self.slots[index];
            slot.record.image_id = slot_record_image;
            slot.record.restart_count = attempt;
            if let State::Terminated { .. } = slot.record.state {
                slot.record.last_state = Some(slot.record.state.clone());
            }
        }
        if let Err(message) = created {
            // The runtime's own words; the run counts as a failed attempt.
            self.ctx
                .events
                .warning(&subject, "Failed", &format!("Error: {message}"));
            self.remove_container(&id).await;
            let slot = &mut self.slots[index];
            slot.record.container_id = Some(container_id.clone());
            slot.record.state = State::Terminated {
                exit_code: 128,
                signal: None,
                reason: "StartError".into(),
                message: Some(message),
                started_at: None,
                finished_at: now(),
                container_id: Some(container_id),
            };
            self.after_exit(index, Duration::ZERO, false).await;
            return;
        }
        self.ctx.events.normal(
            &subject,
            "Created",
            &format!("Created container: {}", spec.name),
        );
        self.ctx.events.normal(
            &subject,
            "Started",
            &format!("Started container {}", spec.name),
        );
        let started_at = now();
        {
            let slot = &mut self.slots[index];
            slot.record.container_id = Some(container_id);
            slot.record.state = State::Running { started_at };
            slot.record.started = slot.spec.startup_probe.is_none();
            slot.record.ready = slot.spec.readiness_probe.is_none()
                && slot.spec.startup_probe.is_none()
                && slot.kind != Kind::Init;
            slot.not_before = None;
            slot.run = Some(Run {
                id: id.clone(),
                started: Instant::now(),
                started_at,
                probes: Vec::new(),
                killing: None,
                stop_signal: image
                    .config
                    .stop_signal
                    .as_deref()
                    .and_then(Signal::parse)
                    .unwrap_or(Signal::TERM),
            });
        }
        self.update_view();
        if let Some(hook) = spec.lifecycle.as_ref().and_then(|l| l.post_start.clone()) {
            let grace = self.grace_period();
            if let Err(message) = self.run_hook(&id, &spec, &hook, grace).await {
                self.ctx.events.warning(
                    &subject,
                    "FailedPostStartHook",
                    &format!("PostStartHook failed: {message}"),
                );
                self.kill(index, "FailedPostStartHook".into());
                return;
            }
        }
        let startup_done = spec.startup_probe.is_none();
        self.start_probes(index, startup_done);
    }

    fn grace_period(&self) -> Duration {
        Duration::from_secs(
            self.pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30)
                .max(0) as u64,
        )
    }

    /// The runtime config of one run of a container.
    async fn container_config(
        &self,
        index: usize,
        id: &str,
        attempt: u32,
        image: &Image,
        rootfs: &Path,
    ) -> Result<ContainerConfig, ConfigError> {
        let spec = &self.slots[index].spec;
        let references = self.references(spec).await?;
        let pod_json = self.pod_json();
        let ctx = container::Context {
            pod: &self.pod,
            pod_json: &pod_json,
            image: &image.config,
            rootfs,
            volumes: &self.volumes.host,
            references: &references,
            node_cpu_millis: self.ctx.node_cpu_millis,
            node_memory_bytes: self.ctx.node_memory_bytes,
        };
        let mut config = container::build(id, spec, &ctx)?;
        let sandbox = self.sandbox.as_ref().expect("set up before containers");
        // The pod's /etc files first: `configure` keeps mounts already at a destination.
        let mut pod_mounts = Vec::new();
        if let Some(files) = &self.etc_files {
            for (source, destination) in [
                (&files.hosts, "/etc/hosts"),
                (&files.hostname, "/etc/hostname"),
                (&files.resolv_conf, "/etc/resolv.conf"),
            ] {
                if !config
                    .mounts
                    .iter()
                    .any(|m| m.destination == Path::new(destination))
                {
                    pod_mounts.push(Mount::bind(source, destination, false));
                }
            }
        }
        let termination_path = spec
            .termination_message_path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/dev/termination-log".into());
        let termination_file = self.termination_file(&spec.name, attempt);
        if let Some(parent) = termination_file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ConfigError::create(format!("termination log: {e}")))?;
        }
        std::fs::write(&termination_file, b"")
            .map_err(|e| ConfigError::create(format!("termination log: {e}")))?;
        pod_mounts.push(Mount::bind(&termination_file, termination_path, false));
        pod_mounts.append(&mut config.mounts);
        config.mounts = pod_mounts;
        sandbox.configure(&mut config);
        let pod_spec = self.pod.spec.clone().unwrap_or_default();
        if pod_spec.host_network == Some(true) {
            config.namespaces.network = NamespaceMode::Host;
            config.namespaces.uts = NamespaceMode::Host;
            config.hostname = None;
        }
        if pod_spec.host_ipc == Some(true) {
            config.namespaces.ipc = NamespaceMode::Host;
        }
        if pod_spec.host_pid == Some(true) {
            config.namespaces.pid = NamespaceMode::Host;
        }
        let requests = container::resource_requirements(spec);
        config.oom_score_adj = Some(
            self.qos
                .oom_score_adj(
                    requests.memory_request_bytes.unwrap_or(0),
                    self.ctx.node_memory_bytes,
                )
                .max(maestro_oci::runtime::qos::oom_score_adj_floor()),
        );
        let log = self.log_path(&spec.name, attempt);
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ConfigError::create(format!("log directory: {e}")))?;
        }
        config.io = ContainerIo {
            stdin: None,
            stdout: Output::CriLog(log.clone()),
            stderr: Output::CriLog(log),
        };
        for (k, v) in [
            (CONTAINER_NAME_ANNOTATION, spec.name.clone()),
            (ATTEMPT_ANNOTATION, attempt.to_string()),
            (POD_NAME_ANNOTATION, self.name.clone()),
            (POD_NAMESPACE_ANNOTATION, self.namespace.clone()),
        ] {
            config.annotations.insert(k.to_string(), v);
        }
        Ok(config)
    }

    fn termination_file(&self, container: &str, attempt: u32) -> PathBuf {
        self.pod_dir()
            .join("containers")
            .join(container)
            .join(format!("termination-log.{attempt}"))
    }

    /// Starts the startup probe, or (once started) the liveness and readiness probes.
    fn start_probes(&mut self, index: usize, startup_done: bool) {
        let Some(pod_ip) = self.pod_ip.or(self.ctx.node_ip) else {
            return;
        };
        let slot = &self.slots[index];
        let Some(run) = &slot.run else {
            return;
        };
        let mut probes: Vec<(ProbeKind, k8s_openapi::api::core::v1::Probe)> = Vec::new();
        if !startup_done {
            if let Some(p) = &slot.spec.startup_probe {
                probes.push((ProbeKind::Startup, p.clone()));
            }
        } else {
            if let Some(p) = &slot.spec.liveness_probe {
                probes.push((ProbeKind::Liveness, p.clone()));
            }
            if let Some(p) = &slot.spec.readiness_probe {
                probes.push((ProbeKind::Readiness, p.clone()));
            }
        }
        let mut handles = Vec::new();
        for (kind, p) in probes {
            let target = ProbeTarget {
                runtime: self.ctx.runtime.clone(),
                container_id: run.id.clone(),
                container: slot.spec.clone(),
                pod_ip,
                events: self.ctx.events.clone(),
                subject: self.subject.container(slot.field(), &slot.spec.name),
            };
            handles.push(tokio::spawn(probe::run(
                kind,
                p,
                target,
                self.reports_tx.clone(),
            )));
        }
        if let Some(run) = &mut self.slots[index].run {
            run.probes.extend(handles);
        }
    }

    async fn on_report(&mut self, report: Report) {
        let Some(index) = self
            .slots
            .iter()
            .position(|s| s.run.as_ref().is_some_and(|r| r.id == report.container_id))
        else {
            return;
        };
        match report.verdict {
            Verdict::Ready(ready) => self.slots[index].record.ready = ready,
            Verdict::Started => {
                let slot = &mut self.slots[index];
                slot.record.started = true;
                if slot.spec.readiness_probe.is_none() && slot.kind != Kind::Init {
                    slot.record.ready = true;
                }
                self.start_probes(index, true);
            }
            Verdict::Restart { kind, message } => {
                let name = self.slots[index].spec.name.clone();
                let what = match kind {
                    ProbeKind::Startup => "startup",
                    _ => "liveness",
                };
                let subject = self.subject.container(self.slots[index].field(), &name);
                self.ctx.events.normal(
                    &subject,
                    "Killing",
                    &format!("Container {name} failed {what} probe, will be restarted"),
                );
                tracing::info!(pod = %self.name, container = %name, %message, "probe failed; restarting");
                self.slots[index].record.ready = false;
                self.kill(index, format!("failed {what} probe"));
            }
        }
    }

    /// Stops a run in the background (probe failure, hook failure); its exit is then seen by
    /// the poll like any other.
    fn kill(&mut self, index: usize, why: String) {
        let grace = self.grace_period();
        let signal = self.stop_signal(index);
        let Some(run) = &mut self.slots[index].run else {
            return;
        };
        if run.killing.is_some() {
            return;
        }
        run.killing = Some(why);
        for p in run.probes.drain(..) {
            p.abort();
        }
        let runtime = self.ctx.runtime.clone();
        let id = run.id.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(err) = runtime.stop(&id, signal, grace) {
                tracing::warn!(%err, id, "stopping a container failed");
            }
        });
    }

    fn stop_signal(&self, index: usize) -> Signal {
        self.slots[index]
            .run
            .as_ref()
            .map_or(Signal::TERM, |r| r.stop_signal)
    }

    /// Notices runs that have ended.
    async fn check_exits(&mut self) {
        for index in 0..self.slots.len() {
            let Some(id) = self.slots[index].run.as_ref().map(|r| r.id.clone()) else {
                continue;
            };
            let runtime = self.ctx.runtime.clone();
            let probe_id = id.clone();
            let stopped = match self.blocking(move || runtime.stopped(&probe_id)).await {
                Ok(s) => s,
                Err(message) => {
                    tracing::warn!(pod = %self.name, id, %message, "checking a container failed");
                    // The container vanished (deleted by hand, node cleanup): treat as exited.
                    true
                }
            };
            if !stopped {
                continue;
            }
            let runtime = self.ctx.runtime.clone();
            let state_id = id.clone();
            let status = self.blocking(move || runtime.state(&state_id)).await.ok();
            let run = self.slots[index].run.take().expect("checked above");
            let ran = run.started.elapsed();
            let exit = status.as_ref().and_then(|s| s.exit);
            // CRI runtimes report no signal, only the 128+N exit code; neither do we.
            let (code, signal, reason) = match exit {
                Some(e) => (e.code, None, e.reason().to_string()),
                None => (
                    137,
                    None,
                    if status.is_none() {
                        "ContainerStatusUnknown"
                    } else {
                        "Error"
                    }
                    .to_string(),
                ),
            };
            let finished_at = exit
                .and_then(|e| e.finished_at)
                .map(to_timestamp)
                .unwrap_or_else(now);
            let attempt = self.slots[index].record.restart_count;
            let message = self.termination_message(index, attempt, code);
            let container_id = Some(format!("{}{id}", self.runtime_prefix()));
            self.slots[index].record.state = State::Terminated {
                exit_code: code,
                signal,
                reason,
                message,
                started_at: Some(run.started_at),
                finished_at,
                container_id,
            };
            self.slots[index].record.ready = false;
            drop(run);
            self.remove_container(&id).await;
            self.after_exit(index, ran, true).await;
        }
        self.update_view();
    }

    /// The termination message: the file the container wrote, or with FallbackToLogsOnError
    /// the end of its log after a failure.
    fn termination_message(&self, index: usize, attempt: u32, code: i32) -> Option<String> {
        let spec = &self.slots[index].spec;
        let file = self.termination_file(&spec.name, attempt);
        let mut text = std::fs::read(&file).unwrap_or_default();
        text.truncate(MAX_TERMINATION_MESSAGE);
        if text.is_empty()
            && code != 0
            && spec.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
        {
            let log = std::fs::read(self.log_path(&spec.name, attempt)).unwrap_or_default();
            let rendered = crate::logs::render(
                &log[..],
                &crate::logs::LogOptions {
                    tail_lines: Some(80),
                    ..Default::default()
                },
            );
            let start = rendered.len().saturating_sub(2048);
            text = rendered[start..].to_vec();
        }
        (!text.is_empty()).then(|| String::from_utf8_lossy(&text).into_owned())
    }

    /// Decides what happens after a run ended: done, or a restart now or after back-off.
    async fn after_exit(&mut self, index: usize, ran: Duration, count_backoff: bool) {
        let policy = self.restart_policy();
        let succeeded = matches!(
            self.slots[index].record.state,
            State::Terminated { exit_code: 0, .. }
        );
        self.slots[index].ran_before = true;
        if self.slots[index].kind == Kind::Init && succeeded {
            // A completed init container reports ready, as the kubelet's does.
            self.slots[index].record.ready = true;
        }
        let restart = match self.slots[index].kind {
            Kind::Sidecar => true,
            Kind::Init => !succeeded && policy != "Never",
            Kind::App => match policy.as_str() {
                "Never" => false,
                "OnFailure" => !succeeded,
                _ => true,
            },
        };
        if !restart {
            self.slots[index].done = true;
            return;
        }
        let delay = if count_backoff {
            self.slots[index].backoff.next_delay(ran)
        } else {
            self.slots[index].backoff.next_delay(Duration::ZERO)
        };
        if delay > Duration::ZERO {
            let name = self.slots[index].spec.name.clone();
            let message = format!(
                "back-off {} restarting failed container={name} pod={}_{}({})",
                humanize(delay),
                self.name,
                self.namespace,
                self.uid
            );
            let subject = self.subject.container(self.slots[index].field(), &name);
            self.ctx.events.warning(
                &subject,
                "BackOff",
                &format!(
                    "Back-off restarting failed container {name} in pod {}_{}({})",
                    self.name, self.namespace, self.uid
                ),
            );
            let last = self.slots[index].record.state.clone();
            self.slots[index].record.last_state = Some(last);
            self.waiting(index, "CrashLoopBackOff", Some(message));
        }
        self.back_off(index, delay);
    }

    /// Once every app container is done for good (restartPolicy Never/OnFailure, or a failed
    /// init container with Never), stops the sidecars and releases the pod's resources; the
    /// logs stay for `kubectl logs` until the pod is deleted.
    async fn finish_if_done(&mut self) {
        if self.finished {
            return;
        }
        let record = self.record();
        if !matches!(record.phase(), "Succeeded" | "Failed") {
            return;
        }
        let grace = self.grace_period();
        self.stop_all(grace, false).await;
        self.release().await;
        self.finished = true;
        tracing::info!(pod = %self.name, phase = record.phase(), "pod finished");
    }

    /// Runs a lifecycle hook (preStop, postStart) within `limit`.
    async fn run_hook(
        &self,
        id: &str,
        spec: &Container,
        hook: &LifecycleHandler,
        limit: Duration,
    ) -> Result<(), String> {
        if let Some(exec) = &hook.exec {
            let command = exec.command.clone().unwrap_or_default();
            let runtime = self.ctx.runtime.clone();
            let id = id.to_string();
            let out = self
                .blocking(move || {
                    runtime
                        .exec(&id, &ExecConfig::command(command))
                        .and_then(|s| s.output(Some(limit)))
                })
                .await?;
            return match out.exit_code {
                Some(0) => Ok(()),
                Some(code) => Err(format!(
                    "command exited with {code}: {}",
                    String::from_utf8_lossy(&out.stdout).trim()
                )),
                None => Err("command timed out".into()),
            };
        }
        if let Some(http) = &hook.http_get {
            let port = match &http.port {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => *n as u16,
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => spec
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name))
                    .map(|p| p.container_port as u16)
                    .ok_or_else(|| format!("port {name:?} not found"))?,
            };
            let ip = http
                .host
                .as_deref()
                .and_then(|h| h.parse().ok())
                .or(self.pod_ip)
                .ok_or("no pod IP")?;
            let path = http.path.clone().unwrap_or_else(|| "/".into());
            return match crate::probes::http_get(
                std::net::SocketAddr::new(ip, port),
                http.scheme.as_deref() == Some("HTTPS"),
                None,
                &path,
                &[],
                limit,
            )
            .await
            {
                crate::probes::Outcome::Success => Ok(()),
                crate::probes::Outcome::Failure(m) => Err(m),
            };
        }
        if let Some(sleep) = &hook.sleep {
            tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64).min(limit)).await;
        }
        Ok(())
    }

    /// Stops every running container: preStop hooks, the stop signal, SIGKILL after `grace`.
    /// App containers first, sidecars after them in reverse order, as Kubernetes does.
    async fn stop_all(&mut self, grace: Duration, announce: bool) {
        let deadline = Instant::now() + grace;
        let order: Vec<usize> = {
            let mut apps: Vec<usize> = (0..self.slots.len())
                .filter(|&i| self.slots[i].kind == Kind::App)
                .collect();
            let mut inits: Vec<usize> = (0..self.slots.len())
                .filter(|&i| self.slots[i].kind != Kind::App)
                .rev()
                .collect();
            apps.append(&mut inits);
            apps
        };
        let (apps, sidecars): (Vec<usize>, Vec<usize>) = order
            .into_iter()
            .partition(|&i| self.slots[i].kind == Kind::App);
        for group in [apps, sidecars] {
            let mut tasks = Vec::new();
            for index in group {
                let Some(run) = &mut self.slots[index].run else {
                    continue;
                };
                for p in run.probes.drain(..) {
                    p.abort();
                }
                let id = run.id.clone();
                let spec = self.slots[index].spec.clone();
                if announce {
                    let subject = self
                        .subject
                        .container(self.slots[index].field(), &spec.name);
                    self.ctx.events.normal(
                        &subject,
                        "Killing",
                        &format!("Stopping container {}", spec.name),
                    );
                }
                if let Some(hook) = spec.lifecycle.as_ref().and_then(|l| l.pre_stop.clone()) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if let Err(message) = self.run_hook(&id, &spec, &hook, left).await {
                        let subject = self
                            .subject
                            .container(self.slots[index].field(), &spec.name);
                        self.ctx.events.warning(
                            &subject,
                            "FailedPreStopHook",
                            &format!("PreStopHook failed: {message}"),
                        );
                    }
                }
                let runtime = self.ctx.runtime.clone();
                let signal = self.stop_signal(index);
                let left = deadline.saturating_duration_since(Instant::now());
                tasks.push(tokio::task::spawn_blocking(move || {
                    runtime.stop(&id, signal, left)
                }));
            }
            for t in tasks {
                if let Ok(Err(err)) = t.await {
                    tracing::warn!(pod = %self.name, %err, "stopping a container failed");
                }
            }
        }
        // Record how they ended; nothing restarts any more.
        for slot in &mut self.slots {
            slot.done = true;
        }
        self.check_exits().await;
    }

    /// Removes a container's runtime state and root filesystem (not its logs).
    async fn remove_container(&self, id: &str) {
        let runtime = self.ctx.runtime.clone();
        let images = self.ctx.images.clone();
        let id = id.to_string();
        let result = self
            .blocking(move || {
                runtime.delete(&id, true).map_err(|e| e.to_string())?;
                images.remove_snapshot(&id).map_err(|e| e.to_string())
            })
            .await;
        if let Err(message) = result {
            tracing::warn!(pod = %self.name, %message, "removing a container failed");
        }
    }

    /// Releases the sandbox, network, volumes and /etc files.
    async fn release(&mut self) {
        for slot in &mut self.slots {
            slot.run = None;
        }
        if let Some(network) = self.ctx.network.get().cloned()
            && !self.host_network()
        {
            let uid = self.uid.clone();
            if let Err(m) = self.blocking(move || network.detach(&uid)).await {
                tracing::warn!(pod = %self.name, %m, "detaching the pod network failed");
            }
        }
        let sandboxes = self.ctx.sandboxes.clone();
        let uid = self.uid.clone();
        if let Err(m) = self.blocking(move || sandboxes.teardown(&uid)).await {
            tracing::warn!(pod = %self.name, %m, "tearing down the sandbox failed");
        }
        let dir = self.pod_dir();
        if let Err(m) = self.blocking(move || setup::remove_pod_dir(&dir)).await {
            tracing::warn!(pod = %self.name, %m, "removing the pod directory failed");
        }
        self.sandbox = None;
        self.volumes_ready = false;
        self.etc_files = None;
        self.update_view();
    }

    /// Deletion: graceful stop (or immediate, when the object is already gone), teardown,
    /// the final status, and the removal of the Pod object.
    async fn terminate(&mut self, grace: Duration, object_exists: bool) {
        tracing::info!(pod = %self.name, ?grace, "terminating pod");
        self.stop_all(grace, object_exists).await;
        self.release().await;
        let logs = super::log_dir(&self.ctx.data_dir, &self.namespace, &self.name, &self.uid);
        let _ = std::fs::remove_dir_all(&logs);
        if !object_exists {
            return;
        }
        self.finished = true;
        self.publish_status().await;
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        for _ in 0..5 {
            match api.delete(&self.name, &params).await {
                Ok(_) => return,
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return,
                Err(err) => {
                    tracing::warn!(pod = %self.name, %err, "deleting the pod failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn record(&self) -> PodRecord {
        let (inits, apps): (Vec<&Slot>, Vec<&Slot>) =
            self.slots.iter().partition(|s| s.kind != Kind::App);
        PodRecord {
            restart_policy: self.restart_policy(),
            host_ip: self.ctx.node_ip.map(|ip| ip.to_string()),
            pod_ip: self.pod_ip.map(|ip| ip.to_string()),
            start_time: self.start_time,
            sandbox_ready: self.sandbox.is_some() && self.pod_ip.is_some(),
            init_containers: inits.iter().map(|s| s.record.clone()).collect(),
            containers: apps.iter().map(|s| s.record.clone()).collect(),
            qos_class: qos_name(self.qos).to_string(),
            reason: None,
        }
    }

    /// Writes the pod status when it changed.
    async fn publish_status(&mut self) {
        let record = self.record();
        let previous: Vec<Value> = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|c| {
                c.iter()
                    .filter_map(|c| serde_json::to_value(c).ok())
                    .collect()
            })
            .unwrap_or_default();
        let status = record.to_status(now(), &previous);
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.namespace);
        let patch = json!({"status": status});
        match api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.last_status = Some(status),
            Err(err) => tracing::debug!(pod = %self.name, %err, "writing the pod status failed"),
        }
    }

    fn update_view(&self) {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        view.pod_ip = self.pod_ip;
        view.containers = self
            .slots
            .iter()
            .map(|s| ContainerView {
                name: s.spec.name.clone(),
                running_id: s.run.as_ref().map(|r| r.id.clone()),
                attempt: s.record.restart_count,
                app: s.kind == Kind::App,
            })
            .collect();
    }
}

/// `10s`, `1m20s`, `5m0s` as Go prints durations in back-off messages.
fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_prints_them() {
        assert_eq!(humanize(Duration::from_secs(10)), "10s");
        assert_eq!(humanize(Duration::from_secs(80)), "1m20s");
        assert_eq!(humanize(Duration::from_secs(300)), "5m0s");
    }

    #[test]
    fn stored_states_parse_back() {
        let state = parse_state(&json!({"terminated": {"exitCode": 2, "reason": "Error",
            "finishedAt": "2026-01-01T00:00:00Z", "startedAt": "2026-01-01T00:00:00Z"}}))
        .unwrap();
        assert!(matches!(state, State::Terminated { exit_code: 2, .. }));
        assert!(matches!(
            parse_state(&json!({"waiting": {"reason": "CrashLoopBackOff"}})),
            Some(State::Waiting { .. })
        ));
        assert_eq!(parse_state(&json!({})), None);
    }

    #[test]
    fn container_ids_are_runtime_names() {
        let id = new_container_id("u", "c", 0);
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, new_container_id("u", "c", 1));
    }
}
