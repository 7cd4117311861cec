//! Simulated nodes for scale testing (`maestro agent --simulate N`), in the manner of kwok and
//! kubemark: N Node objects that behave like real nodes to the control plane — registration
//! with capacity, labels and conditions, a Lease renewed on schedule, status re-posted every few
//! minutes, pods bound to them reported Running and Ready, their deletions confirmed — while no
//! container, network or volume exists anywhere. The scheduler, the controllers, the watch cache
//! and the store then carry thousands of nodes and pods that one test machine could never run.
//!
//! Cost is the design constraint: the simulator is there to measure the server, so it must not
//! flood it. Every node's heartbeat has its own phase, spread evenly over the period ([`due`]),
//! so 5,000 nodes renewing every 10 s make a steady 500 small writes a second rather than a
//! burst of 5,000; all pods come from one watch; writes go through small bounded pools; and the
//! simulator keeps no copy of what it watches, only the few facts it decided (a pod's fake IP).
//!
//! Everything simulated says so: the nodes carry the `maestro.dev/simulated=true` label,
//! container and image ids use the `sim://` scheme, and addresses come from ranges nothing routes
//! to (node InternalIPs from 10.200.0.0/16, pod IPs from one /24 per node in 100.64.0.0/10), so
//! logs, exec and port-forward to them fail rather than reach something unrelated.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Node, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};

use crate::pods::status::{ContainerRecord, PodRecord, State};
use crate::{AgentError, client, host, node};

/// Most simulated nodes per simulator: each node gets a /24 of pod addresses in 100.64.0.0/10.
pub const MAX_NODES: u32 = 1 << 14;
/// The label every simulated node carries, so that tests and people can tell them apart.
pub const SIMULATED_LABEL: &str = "maestro.dev/simulated";
/// How often a node's status is re-posted when nothing changes, as the kubelet does
/// (`nodeStatusReportFrequency`); the Lease is what says the node is alive in between.
const STATUS_PERIOD: Duration = Duration::from_secs(300);
/// Granularity of the heartbeat schedule: each tick writes the heartbeats that fell due.
const TICK: Duration = Duration::from_millis(100);
/// Requests in flight per kind of work. Separate pools, so that a burst of pods or of
/// registrations cannot hold back Lease renewals (whose lateness would mark nodes Unknown).
const REGISTER_CONCURRENCY: usize = 48;
const HEARTBEAT_CONCURRENCY: usize = 32;
const POD_CONCURRENCY: usize = 64;
/// The kubelet port the nodes advertise; nothing listens there.
const KUBELET_PORT: u16 = 10250;
const NODE_IP_BASE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 0);
const POD_IP_BASE: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 0);
/// Zones the nodes are spread over, so that topology spread constraints have domains.
const ZONES: u32 = 3;
/// How often a failing kind of request is reported (failures come in thousands when the
/// server is away).
const FAILURE_REPORT_PERIOD: Duration = Duration::from_secs(10);

/// What every simulated node reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub pods: u32,
    pub ephemeral_storage_bytes: u64,
    /// Kept back from pods as a kubelet's reservations are: allocatable = capacity - reserved
    /// (and 90% of the ephemeral storage, the kubelet's default eviction threshold).
    pub reserved_cpu_millis: u64,
    pub reserved_memory_bytes: u64,
}

impl Default for Capacity {
    /// A typical large cloud machine: 32 CPUs, 128 GiB, 110 pods, 500 GiB of disk.
    fn default() -> Self {
        const GIB: u64 = 1024 * 1024 * 1024;
        Capacity {
            cpu_millis: 32_000,
            memory_bytes: 128 * GIB,
            pods: 110,
            ephemeral_storage_bytes: 500 * GIB,
            reserved_cpu_millis: 100,
            reserved_memory_bytes: 256 * 1024 * 1024,
        }
    }
}

/// How to run a simulator.
#[derive(Debug, Clone)]
pub struct SimulationConfig {
    /// API server URL, e.g. `https://10.0.0.1:6443`.
    pub server: String,
    pub credentials: client::Credentials,
    /// The nodes are `<prefix>-sim-00001`, `<prefix>-sim-00002`...
    pub prefix: String,
    /// How many nodes (at most [`MAX_NODES`]).
    pub nodes: u32,
    /// How often each node's Lease is renewed.
    pub lease_period: Duration,
    pub capacity: Capacity,
}

/// The name of simulated node `index` (0-based; names count from 1).
pub fn node_name(prefix: &str, index: u32) -> String {
    format!("{prefix}-sim-{:05}", index + 1)
}

/// The node's fake InternalIP.
fn node_ip(index: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(NODE_IP_BASE) + index + 1)
}

/// The `serial`th fake pod address of node `index`: host parts .2 to .254 of its /24, reused in
/// turn (far more than the 110 pods a node holds at once).
fn pod_ip(index: u32, serial: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(POD_IP_BASE) + (index << 8) + 2 + serial % 253)
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// 32 hex digits as a UUID (8-4-4-4-12).
fn uuid(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Kubernetes CPU quantity: whole cores as a plain number, else millicores.
fn cpu_quantity(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// The Node a simulated node registers: the real agent's object with a zone and the
/// simulation label. Its status is written next, as the API server drops status on create.
pub fn node_object(prefix: &str, index: u32) -> Value {
    let mut object = node::node_object(&node_name(prefix, index), "amd64");
    let labels = &mut object["metadata"]["labels"];
    labels["topology.kubernetes.io/zone"] = json!(format!("zone-{}", index % ZONES));
    labels[SIMULATED_LABEL] = json!("true");
    object
}

/// The conditions of a healthy node: no pressure, Ready since `registered_at`, heard from
/// `now`.
fn conditions(registered_at: &str, now: &str) -> Vec<Value> {
    let first = node::conditions(&[], false, false, false, registered_at);
    node::conditions(&first, false, false, false, now)
}

/// The full status of simulated node `index`.
pub fn node_status(
    prefix: &str,
    index: u32,
    capacity: &Capacity,
    kernel_version: &str,
    registered_at: &str,
    now: &str,
) -> Value {
    let name = node_name(prefix, index);
    let identity = sha256_hex(&name);
    let info = host::NodeInfo {
        machine_id: identity[..32].to_string(),
        system_uuid: uuid(&identity[32..64]),
        boot_id: uuid(&sha256_hex(&format!("{name}/{registered_at}"))),
        kernel_version: kernel_version.to_string(),
        os_image: "maestro simulated node".into(),
    };
    let pods = capacity.pods.to_string();
    json!({
        "capacity": {
            "cpu": cpu_quantity(capacity.cpu_millis),
            "memory": host::kibibytes(capacity.memory_bytes),
            "pods": pods,
            "ephemeral-storage": host::kibibytes(capacity.ephemeral_storage_bytes),
            "hugepages-2Mi": "0",
            "hugepages-1Gi": "0",
        },
        "allocatable": {
            "cpu": cpu_quantity(capacity.cpu_millis.saturating_sub(capacity.reserved_cpu_millis)),
            "memory": host::kibibytes(capacity.memory_bytes.saturating_sub(capacity.reserved_memory_bytes)),
            "pods": pods,
            "ephemeral-storage": host::kibibytes(capacity.ephemeral_storage_bytes * 9 / 10),
            "hugepages-2Mi": "0",
            "hugepages-1Gi": "0",
        },
        "conditions": conditions(registered_at, now),
        "addresses": [
            {"type": "InternalIP", "address": node_ip(index).to_string()},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": node::node_info(&info, "sim://1", "amd64"),
    })
}

/// Which of `n` items, spread evenly over `period` (item i at phase i·period/n), fall due in
/// the window `[from, to)` of time since the schedule started: at most two ranges of indices,
/// as the window may wrap around the end of a period. Consecutive windows hand out every item
/// exactly once per period; a window of a whole period or more (after a stall) hands out each
/// item once, not once per period missed.
pub fn due(n: usize, period: Duration, from: Duration, to: Duration) -> [Range<usize>; 2] {
    let period_ns = period.as_nanos().max(1);
    let (from_ns, to_ns) = (from.as_nanos(), to.as_nanos());
    if n == 0 || to_ns <= from_ns {
        return [0..0, 0..0];
    }
    if to_ns - from_ns >= period_ns {
        return [0..n, 0..0];
    }
    // Item i's phase is floor(i·period/n) ns; it is at least x exactly when i ≥ x·n/period.
    let first_at = |x: u128| (x * n as u128).div_ceil(period_ns).min(n as u128) as usize;
    let (start, end) = (first_at(from_ns % period_ns), first_at(to_ns % period_ns));
    if from_ns % period_ns < to_ns % period_ns {
        [start..end, 0..0]
    } else {
        [start..n, 0..end]
    }
}

/// The status of a pod as a kubelet reports it once all its containers run: phase Running,
/// every condition True, app containers and sidecars running and ready, regular init
/// containers Completed. `pod_ip` is ignored for host-network pods, which share the node's.
pub fn running_status(
    pod: &Pod,
    host_ip: Ipv4Addr,
    pod_ip: Ipv4Addr,
    started: jiff::Timestamp,
    now: jiff::Timestamp,
) -> Value {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let record = |c: &Container| {
        let image = c.image.as_deref().unwrap_or_default();
        let mut record = ContainerRecord::new(&c.name, image);
        record.image_id = format!("sim://sha256:{}", sha256_hex(image));
        record.container_id = Some(format!(
            "sim://{}",
            sha256_hex(&format!("{uid}/{}", c.name))
        ));
        record.state = State::Running {
            started_at: started,
        };
        record.ready = true;
        record.started = true;
        record
    };
    let init_containers = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| {
            let mut r = record(c);
            if c.restart_policy.as_deref() == Some("Always") {
                r.sidecar = true;
            } else {
                r.state = State::Terminated {
                    exit_code: 0,
                    signal: None,
                    reason: State::exit_reason(0, false).into(),
                    message: None,
                    started_at: Some(started),
                    finished_at: started,
                    container_id: r.container_id.clone(),
                };
                // A completed init container reports ready, as the kubelet's does.
                r.started = false;
            }
            r
        })
        .collect();
    let host_network = spec.and_then(|s| s.host_network) == Some(true);
    let previous: Vec<Value> = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    PodRecord {
        restart_policy: spec
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into()),
        host_ip: Some(host_ip.to_string()),
        pod_ip: Some(if host_network { host_ip } else { pod_ip }.to_string()),
        start_time: Some(started),
        sandbox_ready: true,
        init_containers,
        containers: spec
            .map(|s| s.containers.iter().map(record).collect())
            .unwrap_or_default(),
        qos_class: pod
            .status
            .as_ref()
            .and_then(|s| s.qos_class.clone())
            .unwrap_or_else(|| "BestEffort".into()),
        reason: None,
    }
    .to_status(now, &previous)
}

/// Whether a pod's status still has to say it runs: not Running, not Ready, or not every
/// container reported (a new pod; or one the node lifecycle controller marked not ready
/// while the server thought the node gone). Finished pods stay as they are.
pub fn needs_report(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return true;
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return false;
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let containers = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let reported = status
        .container_statuses
        .as_ref()
        .is_some_and(|cs| cs.len() == containers && cs.iter().all(|c| c.ready));
    status.phase.as_deref() != Some("Running") || !ready || !reported
}

/// Counts failures of one kind of request and reports them now and then, not one line each.
struct Failures {
    what: &'static str,
    state: Mutex<(u64, Option<Instant>)>,
}

impl Failures {
    const fn new(what: &'static str) -> Self {
        Failures {
            what,
            state: Mutex::new((0, None)),
        }
    }

    fn note(&self, node: &str, err: &AgentError) {
        tracing::debug!(node, %err, "{} failed", self.what);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 += 1;
        let now = Instant::now();
        if state
            .1
            .is_none_or(|last| now - last >= FAILURE_REPORT_PERIOD)
        {
            tracing::warn!(failures = state.0, last_node = node, %err, "{} failed; retrying", self.what);
            *state = (0, Some(now));
        }
    }
}

/// One simulated node's state in this process.
struct SimNode {
    name: String,
    /// When this run registered the node: its conditions' transition time.
    registered_at: OnceLock<String>,
    /// Registered with status and Lease: heartbeats and repairs apply from then on.
    live: AtomicBool,
    /// A status repair is queued or in flight.
    repairing: AtomicBool,
    /// How many pod addresses the node handed out.
    pod_serial: AtomicU32,
}

/// All simulated nodes and what their work shares.
struct Fleet {
    config: SimulationConfig,
    client: Client,
    nodes: Vec<SimNode>,
    by_name: HashMap<String, u32>,
    node_api: Api<Node>,
    lease_api: Api<Lease>,
    pod_api: Api<Pod>,
    /// The host's kernel, reported by every node (the one thing of the host they show).
    kernel_version: String,
    lease_duration_seconds: i64,
    registered: AtomicUsize,
    repairs: Semaphore,
    registration_failures: Failures,
    lease_failures: Failures,
    status_failures: Failures,
    pod_failures: Failures,
}

impl Fleet {
    fn new(client: Client, config: SimulationConfig) -> Fleet {
        let nodes: Vec<SimNode> = (0..config.nodes)
            .map(|i| SimNode {
                name: node_name(&config.prefix, i),
                registered_at: OnceLock::new(),
                live: AtomicBool::new(false),
                repairing: AtomicBool::new(false),
                pod_serial: AtomicU32::new(0),
            })
            .collect();
        let by_name = nodes
            .iter()
            .zip(0..)
            .map(|(n, i)| (n.name.clone(), i))
            .collect();
        Fleet {
            nodes,
            by_name,
            node_api: Api::all(client.clone()),
            lease_api: Api::namespaced(client.clone(), "kube-node-lease"),
            pod_api: Api::all(client.clone()),
            client,
            kernel_version: host::node_info().kernel_version,
            // Valid for four renewals, the kubelet's ratio (40 s leases renewed every 10 s).
            lease_duration_seconds: (config.lease_period.as_secs_f64() * 4.0).ceil() as i64,
            registered: AtomicUsize::new(0),
            repairs: Semaphore::new(HEARTBEAT_CONCURRENCY),
            registration_failures: Failures::new("registering simulated nodes"),
            lease_failures: Failures::new("renewing simulated nodes' Leases"),
            status_failures: Failures::new("posting simulated nodes' status"),
            pod_failures: Failures::new("updating pods of simulated nodes"),
            config,
        }
    }

    fn node(&self, index: u32) -> &SimNode {
        &self.nodes[index as usize]
    }

    /// Node, status, Lease: what a kubelet does when it starts.
    async fn register(&self, index: u32) -> Result<(), AgentError> {
        let node = self.node(index);
        node::create_node(&self.node_api, node_object(&self.config.prefix, index)).await?;
        let registered_at = node.registered_at.get_or_init(node::now);
        let status = node_status(
            &self.config.prefix,
            index,
            &self.config.capacity,
            &self.kernel_version,
            registered_at,
            &node::now(),
        );
        self.node_api
            .patch_status(
                &node.name,
                &node::field_manager(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
        self.renew_lease(index).await?;
        node.live.store(true, Ordering::Release);
        Ok(())
    }

    async fn renew_lease(&self, index: u32) -> Result<(), AgentError> {
        node::renew_node_lease(
            &self.lease_api,
            &self.node(index).name,
            self.lease_duration_seconds,
        )
        .await
    }

    /// The periodic status: only the conditions change (their heartbeat time), so only they
    /// are sent.
    async fn post_conditions(&self, index: u32) -> Result<(), AgentError> {
        let node = self.node(index);
        let Some(registered_at) = node.registered_at.get() else {
            return Ok(());
        };
        let patch = json!({"status": {"conditions": conditions(registered_at, &node::now())}});
        self.node_api
            .patch_status(&node.name, &node::field_manager(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }
}

/// Registers every node, `REGISTER_CONCURRENCY` at a time, each retried until it succeeds;
/// reports progress while it lasts.
async fn register_all(fleet: &Arc<Fleet>) {
    let started = Instant::now();
    let total = fleet.nodes.len();
    let work = futures::stream::iter(0..fleet.config.nodes).for_each_concurrent(
        REGISTER_CONCURRENCY,
        |index| async move {
            loop {
                match fleet.register(index).await {
                    Ok(()) => break,
                    Err(err) => {
                        fleet
                            .registration_failures
                            .note(&fleet.node(index).name, &err);
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
            fleet.registered.fetch_add(1, Ordering::Relaxed);
        },
    );
    tokio::pin!(work);
    let mut progress = tokio::time::interval(Duration::from_secs(5));
    progress.tick().await;
    loop {
        tokio::select! {
            () = &mut work => break,
            _ = progress.tick() => tracing::info!(
                registered = fleet.registered.load(Ordering::Relaxed), total,
                "registering simulated nodes"),
        }
    }
    tracing::info!(
        nodes = total,
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "all simulated nodes registered"
    );
}

/// Runs `beat` for every live node once per `period`, each node at its own phase (see [`due`]),
/// `HEARTBEAT_CONCURRENCY` at a time. Late ticks catch up on what fell due meanwhile rather
/// than skipping it.
async fn every_node<F, Fut>(fleet: Arc<Fleet>, period: Duration, failures: &Failures, beat: F)
where
    F: Fn(Arc<Fleet>, u32) -> Fut,
    Fut: Future<Output = Result<(), AgentError>>,
{
    let start = Instant::now();
    let mut done = Duration::ZERO;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = start.elapsed();
        let [a, b] = due(fleet.nodes.len(), period, done, now);
        done = now;
        let live = a
            .chain(b)
            .filter(|&i| fleet.nodes[i].live.load(Ordering::Acquire))
            .map(|i| i as u32);
        let results: Vec<(u32, Result<(), AgentError>)> = futures::stream::iter(live)
            .map(|index| {
                let beat = beat(fleet.clone(), index);
                async move { (index, beat.await) }
            })
            .buffer_unordered(HEARTBEAT_CONCURRENCY)
            .collect()
            .await;
        for (index, result) in results {
            if let Err(err) = result {
                failures.note(&fleet.node(index).name, &err);
            }
        }
    }
}

/// Watches the simulated nodes and re-posts the status of any that the server marked other
/// than Ready (the node lifecycle controller does when heartbeats reached it late, e.g. under
/// load), as a kubelet does when its Node differs from what it reports. Waiting for the next
/// periodic status would leave the node tainted unreachable, and its pods evicted, for minutes.
async fn repair_nodes(fleet: Arc<Fleet>) {
    let config = watcher::Config::default().labels(&format!("{SIMULATED_LABEL}=true"));
    let mut stream = watcher(fleet.node_api.clone(), config)
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        let node = match event {
            Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => n,
            Ok(_) => continue,
            Err(err) => {
                tracing::warn!(%err, "watching the simulated nodes failed; retrying");
                continue;
            }
        };
        let Some(&index) = node
            .metadata
            .name
            .as_ref()
            .and_then(|n| fleet.by_name.get(n))
        else {
            continue;
        };
        // Only a Ready condition someone else changed: a node just created has none yet.
        let not_ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status != "True");
        let sim = fleet.node(index);
        if !not_ready
            || !sim.live.load(Ordering::Acquire)
            || sim.repairing.swap(true, Ordering::AcqRel)
        {
            continue;
        }
        tracing::debug!(node = %sim.name, "the server marked the node not ready; re-posting its status");
        let fleet = fleet.clone();
        tokio::spawn(async move {
            let result = match fleet.repairs.acquire().await {
                Ok(_permit) => fleet.post_conditions(index).await,
                Err(_) => Ok(()),
            };
            if let Err(err) = result {
                fleet.status_failures.note(&fleet.node(index).name, &err);
            }
            fleet.node(index).repairing.store(false, Ordering::Release);
        });
    }
}

/// What the simulator decided for a pod it reported running, kept so that a repeated report
/// says the same thing.
#[derive(Debug, Clone, Copy)]
struct Started {
    ip: Ipv4Addr,
    at: jiff::Timestamp,
}

#[derive(Default)]
struct PodBook {
    /// Pods with a write queued or in flight (uid).
    busy: HashSet<String>,
    started: HashMap<String, Started>,
}

/// The kubelet's side of the pods bound to simulated nodes: report them running, confirm
/// their deletion.
struct PodRunner {
    fleet: Arc<Fleet>,
    limit: Semaphore,
    book: Mutex<PodBook>,
}

impl PodRunner {
    fn book(&self) -> std::sync::MutexGuard<'_, PodBook> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One watch on every bound pod; the simulated nodes' are picked out here (the field
    /// selector cannot name thousands of nodes).
    async fn run(self: Arc<Self>) {
        let config = watcher::Config::default().fields("spec.nodeName!=");
        let mut stream = watcher(self.fleet.pod_api.clone(), config)
            .default_backoff()
            .boxed();
        let mut listed: HashSet<String> = HashSet::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(pod)) => {
                    if let Some(uid) = &pod.metadata.uid {
                        listed.insert(uid.clone());
                    }
                    self.apply(pod);
                }
                Ok(watcher::Event::InitDone) => {
                    // Forget pods deleted while the watch was down.
                    self.book().started.retain(|uid, _| listed.contains(uid));
                    listed.clear();
                }
                Ok(watcher::Event::Apply(pod)) => self.apply(pod),
                Ok(watcher::Event::Delete(pod)) => {
                    if let Some(uid) = &pod.metadata.uid {
                        self.book().started.remove(uid);
                    }
                }
                Err(err) => tracing::warn!(%err, "watching pods failed; retrying"),
            }
        }
    }

    fn apply(self: &Arc<Self>, pod: Pod) {
        let Some(&index) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .and_then(|n| self.fleet.by_name.get(n))
        else {
            return;
        };
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let deleting = pod.metadata.deletion_timestamp.is_some();
        if !deleting && !needs_report(&pod) {
            return;
        }
        if !self.book().busy.insert(uid.clone()) {
            return;
        }
        let runner = self.clone();
        tokio::spawn(async move {
            let _permit = runner.limit.acquire().await;
            if deleting {
                runner.confirm_deletion(&pod, &uid).await;
            } else {
                runner.report_running(&pod, &uid, index).await;
            }
            runner.book().busy.remove(&uid);
        });
    }

    async fn report_running(&self, pod: &Pod, uid: &str, index: u32) {
        let now = jiff::Timestamp::now();
        let node = self.fleet.node(index);
        // Keep what was reported before: from the pod itself (after a simulator restart), else
        // from this run, else new.
        let reported = pod.status.as_ref().and_then(|s| {
            Some(Started {
                ip: s.pod_ip.as_ref()?.parse().ok()?,
                at: s.start_time.as_ref()?.0,
            })
        });
        let started = *self
            .book()
            .started
            .entry(uid.to_string())
            .or_insert_with(|| {
                reported.unwrap_or_else(|| Started {
                    ip: pod_ip(index, node.pod_serial.fetch_add(1, Ordering::Relaxed)),
                    at: now,
                })
            });
        let status = running_status(pod, node_ip(index), started.ip, started.at, now);
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.fleet.client.clone(), namespace);
        match api
            .patch_status(
                name,
                &node::field_manager(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
        {
            Ok(_) => {}
            // Deleted meanwhile (its deletion event may have come already).
            Err(kube::Error::Api(e)) if e.code == 404 => {
                self.book().started.remove(uid);
            }
            Err(err) => self.fleet.pod_failures.note(&node.name, &err.into()),
        }
    }

    /// What the kubelet does once a deleted pod's containers stopped: remove the object for
    /// good (grace period 0), and only that pod (its uid, not a namesake made since).
    async fn confirm_deletion(&self, pod: &Pod, uid: &str) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.fleet.client.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(err) => {
                let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
                self.fleet
                    .pod_failures
                    .note(node.unwrap_or_default(), &err.into());
            }
        }
    }
}

/// Runs the simulated nodes until an unrecoverable error.
pub async fn run(config: SimulationConfig) -> Result<(), AgentError> {
    if config.nodes == 0 || config.nodes > MAX_NODES {
        return Err(AgentError::Host(format!(
            "--simulate takes 1 to {MAX_NODES} nodes, not {}",
            config.nodes
        )));
    }
    if config.lease_period < Duration::from_secs(1) {
        return Err(AgentError::Host(
            "the simulated nodes' lease period must be at least a second".into(),
        ));
    }
    let client = client::connect(&config.server, &config.credentials).await?;
    tracing::warn!(
        nodes = config.nodes,
        first = %node_name(&config.prefix, 0),
        lease_seconds = config.lease_period.as_secs_f64(),
        "SIMULATION (scale testing): registering simulated nodes; no container runs on them"
    );
    let lease_period = config.lease_period;
    let fleet = Arc::new(Fleet::new(client, config));
    let mut loops = tokio::task::JoinSet::new();
    let runner = Arc::new(PodRunner {
        fleet: fleet.clone(),
        limit: Semaphore::new(POD_CONCURRENCY),
        book: Mutex::new(PodBook::default()),
    });
    loops.spawn(async move {
        runner.run().await;
        "pod watch"
    });
    let f = fleet.clone();
    loops.spawn(async move {
        repair_nodes(f).await;
        "node watch"
    });
    let f = fleet.clone();
    loops.spawn(async move {
        every_node(
            f.clone(),
            lease_period,
            &f.lease_failures,
            |fleet, index| async move { fleet.renew_lease(index).await },
        )
        .await;
        "lease"
    });
    let f = fleet.clone();
    loops.spawn(async move {
        every_node(
            f.clone(),
            STATUS_PERIOD,
            &f.status_failures,
            |fleet, index| async move { fleet.post_conditions(index).await },
        )
        .await;
        "status"
    });
    register_all(&fleet).await;
    // The loops run as long as the process; one that ends is a bug.
    match loops.join_next().await {
        Some(Ok(name)) => Err(AgentError::Host(format!(
            "the simulator's {name} loop stopped"
        ))),
        Some(Err(err)) => Err(AgentError::Host(format!("a simulator loop failed: {err}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn names_addresses_and_zones() {
        assert_eq!(node_name("host", 0), "host-sim-00001");
        assert_eq!(node_name("host", 4999), "host-sim-05000");
        assert_eq!(node_ip(0), Ipv4Addr::new(10, 200, 0, 1));
        assert_eq!(node_ip(300), Ipv4Addr::new(10, 200, 1, 45));
        assert_eq!(pod_ip(0, 0), Ipv4Addr::new(100, 64, 0, 2));
        assert_eq!(pod_ip(1, 252), Ipv4Addr::new(100, 64, 1, 254));
        assert_eq!(pod_ip(1, 253), Ipv4Addr::new(100, 64, 1, 2));
        // The last node's range is still in 100.64.0.0/10.
        assert_eq!(
            pod_ip(MAX_NODES - 1, 252),
            Ipv4Addr::new(100, 127, 255, 254)
        );
        let zones: Vec<Value> = (0..4)
            .map(|i| {
                node_object("h", i)["metadata"]["labels"]["topology.kubernetes.io/zone"].clone()
            })
            .collect();
        assert_eq!(zones, ["zone-0", "zone-1", "zone-2", "zone-0"]);
    }

    #[test]
    fn the_node_object_has_the_kubelets_labels_and_says_it_is_simulated() {
        let node = node_object("h", 6);
        let labels = &node["metadata"]["labels"];
        assert_eq!(node["metadata"]["name"], "h-sim-00007");
        assert_eq!(labels["kubernetes.io/hostname"], "h-sim-00007");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        assert_eq!(labels[SIMULATED_LABEL], "true");
        // It is a valid Node.
        serde_json::from_value::<Node>(node).unwrap();
    }

    #[test]
    fn the_node_status_is_a_healthy_kubelets() {
        let status = node_status(
            "h",
            2,
            &Capacity::default(),
            "6.1.0",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:05:00Z",
        );
        assert_eq!(status["capacity"]["cpu"], "32");
        assert_eq!(status["capacity"]["memory"], "134217728Ki");
        assert_eq!(status["capacity"]["pods"], "110");
        assert_eq!(status["capacity"]["ephemeral-storage"], "524288000Ki");
        assert_eq!(status["allocatable"]["cpu"], "31900m");
        assert_eq!(status["allocatable"]["memory"], "133955584Ki");
        assert_eq!(status["allocatable"]["ephemeral-storage"], "471859200Ki");
        let conditions = status["conditions"].as_array().unwrap();
        let by_type = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap();
        assert_eq!(by_type("Ready")["status"], "True");
        assert_eq!(by_type("Ready")["reason"], "KubeletReady");
        for pressure in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert_eq!(by_type(pressure)["status"], "False");
        }
        for c in conditions {
            assert_eq!(c["lastTransitionTime"], "2026-01-01T00:00:00Z");
            assert_eq!(c["lastHeartbeatTime"], "2026-01-01T00:05:00Z");
        }
        assert_eq!(
            status["addresses"],
            json!([{"type": "InternalIP", "address": "10.200.0.3"},
                   {"type": "Hostname", "address": "h-sim-00003"}])
        );
        assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        let info = &status["nodeInfo"];
        assert_eq!(info["containerRuntimeVersion"], "sim://1");
        assert_eq!(info["architecture"], "amd64");
        assert_eq!(info["kernelVersion"], "6.1.0");
        assert_eq!(info["machineID"].as_str().unwrap().len(), 32);
        assert_eq!(info["systemUUID"].as_str().unwrap().len(), 36);
        // Each node has its own identity.
        let other = node_status("h", 3, &Capacity::default(), "6.1.0", "x", "y");
        assert_ne!(other["nodeInfo"]["machineID"], info["machineID"]);
        // The whole status is a valid NodeStatus.
        serde_json::from_value::<k8s_openapi::api::core::v1::NodeStatus>(status).unwrap();
    }

    /// Walks the schedule in windows of the given lengths and counts how often each item came
    /// due.
    fn walk(n: usize, period: Duration, windows: &[Duration]) -> Vec<usize> {
        let mut counts = vec![0; n];
        let mut t = Duration::ZERO;
        for w in windows {
            for i in due(n, period, t, t + *w).into_iter().flatten() {
                counts[i] += 1;
            }
            t += *w;
        }
        counts
    }

    #[test]
    fn every_item_comes_due_once_per_period() {
        let period = Duration::from_secs(10);
        let ms = Duration::from_millis;
        // 100 ms ticks over exactly three periods, and uneven windows with a late one.
        assert!(
            walk(5000, period, &vec![ms(100); 300])
                .iter()
                .all(|&c| c == 3)
        );
        let uneven = [ms(130), ms(70), ms(2500), ms(999), ms(6301)];
        assert!(walk(7, period, &uneven).iter().all(|&c| c == 1));
        // Windows that end mid-period: the items with a phase before the end.
        let counts = walk(10, period, &[ms(2500), ms(2500)]);
        assert_eq!(counts, [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
        // A stall longer than a period: each item once, not once per period missed (item 0,
        // due at the start, came in the first window too).
        let counts = walk(50, period, &[ms(100), ms(35_000)]);
        assert_eq!(counts[0], 2);
        assert!(counts[1..].iter().all(|&c| c == 1));
        assert_eq!(
            due(0, period, ms(0), ms(100)),
            [0..0, 0..0],
            "no items, nothing due"
        );
        assert_eq!(due(10, period, ms(500), ms(500)), [0..0, 0..0]);
    }

    #[test]
    fn heartbeats_are_spread_evenly() {
        // 5,000 nodes every 10 s in 100 ms ticks: 50 a tick, never a burst.
        let period = Duration::from_secs(10);
        let tick = Duration::from_millis(100);
        for k in 0..200u32 {
            let n: usize = due(5000, period, tick * k, tick * (k + 1))
                .into_iter()
                .map(|r| r.len())
                .sum();
            assert_eq!(n, 50, "tick {k}");
        }
        // The window wrapping past a period's end takes the tail and then the head.
        assert_eq!(
            due(
                100,
                period,
                Duration::from_millis(9_850),
                Duration::from_millis(10_050)
            ),
            [99..100, 0..1]
        );
    }

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "Burstable", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_pod_is_reported_running_and_ready() {
        let p = pod(json!({
            "nodeName": "h-sim-00001",
            "initContainers": [
                {"name": "setup", "image": "busybox"},
                {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
            "containers": [{"name": "app", "image": "nginx:1"}, {"name": "log", "image": "fluent"}]
        }));
        assert!(needs_report(&p));
        let status = running_status(
            &p,
            Ipv4Addr::new(10, 200, 0, 1),
            Ipv4Addr::new(100, 64, 0, 2),
            at("2026-01-01T00:00:01Z"),
            at("2026-01-01T00:00:02Z"),
        );
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "100.64.0.2");
        assert_eq!(status["podIPs"], json!([{"ip": "100.64.0.2"}]));
        assert_eq!(status["hostIP"], "10.200.0.1");
        assert_eq!(status["startTime"], "2026-01-01T00:00:01Z");
        assert_eq!(status["qosClass"], "Burstable");
        for kind in ["Initialized", "Ready", "ContainersReady", "PodScheduled"] {
            let c = status["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == kind)
                .unwrap();
            assert_eq!(c["status"], "True", "{kind}");
        }
        // The scheduler's condition keeps its time.
        let scheduled = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "PodScheduled")
            .unwrap();
        assert_eq!(scheduled["lastTransitionTime"], "2020-01-01T00:00:00Z");
        let apps = status["containerStatuses"].as_array().unwrap();
        assert_eq!(apps.len(), 2);
        for c in apps {
            assert_eq!(c["ready"], true);
            assert_eq!(c["started"], true);
            assert_eq!(c["state"]["running"]["startedAt"], "2026-01-01T00:00:01Z");
            assert!(c["containerID"].as_str().unwrap().starts_with("sim://"));
            assert!(c["imageID"].as_str().unwrap().starts_with("sim://sha256:"));
        }
        assert_eq!(apps[0]["image"], "nginx:1");
        assert_ne!(apps[0]["containerID"], apps[1]["containerID"]);
        let inits = status["initContainerStatuses"].as_array().unwrap();
        assert_eq!(inits[0]["state"]["terminated"]["reason"], "Completed");
        assert_eq!(inits[0]["state"]["terminated"]["exitCode"], 0);
        assert_eq!(inits[0]["ready"], true);
        assert!(inits[1]["state"]["running"].is_object(), "a sidecar runs");
        // What the simulator writes reads back as a pod that needs nothing more.
        let mut reported = p.clone();
        reported.status = Some(serde_json::from_value(status).unwrap());
        assert!(!needs_report(&reported));
    }

    #[test]
    fn host_network_pods_have_the_nodes_address() {
        let p = pod(json!({"hostNetwork": true, "containers": [{"name": "a", "image": "i"}]}));
        let status = running_status(
            &p,
            Ipv4Addr::new(10, 200, 0, 9),
            Ipv4Addr::new(100, 64, 0, 2),
            at("2026-01-01T00:00:01Z"),
            at("2026-01-01T00:00:01Z"),
        );
        assert_eq!(status["podIP"], "10.200.0.9");
    }

    #[test]
    fn reports_are_needed_until_running_and_ready() {
        let mut p = pod(json!({"containers": [{"name": "a", "image": "i"}]}));
        let running = running_status(
            &p,
            node_ip(0),
            pod_ip(0, 0),
            at("2026-01-01T00:00:01Z"),
            at("2026-01-01T00:00:01Z"),
        );
        p.status = Some(serde_json::from_value(running).unwrap());
        assert!(!needs_report(&p));
        // Marked not ready by the node lifecycle controller: reported again.
        let mut unready = p.clone();
        for c in unready
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
        {
            if c.type_ == "Ready" {
                c.status = "False".into();
            }
        }
        assert!(needs_report(&unready));
        // Finished pods are left alone.
        let mut done = p.clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!needs_report(&done));
        let mut fresh = p;
        fresh.status = None;
        assert!(needs_report(&fresh));
    }
}
