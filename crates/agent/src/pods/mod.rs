//! Running the pods bound to this node. The [`PodManager`] watches the pods whose
//! `spec.nodeName` is this node and gives each its own [`worker::Worker`] task; after an agent
//! restart it hands each worker the containers a previous agent left running, and removes the
//! containers, sandboxes and network attachments of pods that no longer exist. It also answers
//! the agent server's questions about pods (log files, exec, pod IPs).

pub mod backoff;
pub mod container;
pub mod probe;
pub mod setup;
pub mod status;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use maestro_net::pod_network::{Ipv4Cidr, PodNetwork, PodNetworkConfig};
use maestro_oci::image::{Digest, GcPolicy, ImageStore, PullOptions, Reference};
use maestro_oci::runtime::{
    ContainerStatus, ExecConfig, ExecSession, OciRuntime, POD_UID_ANNOTATION, SandboxManager,
};
use tokio::sync::watch;

use crate::events::Recorder;
use crate::server::{PodStreams, StreamError};

/// What every pod worker shares: the API client, the runtime, images, sandboxes, the network.
pub struct NodeContext {
    pub client: Client,
    pub node_name: String,
    pub data_dir: PathBuf,
    pub runtime: Arc<dyn OciRuntime>,
    pub sandboxes: SandboxManager,
    pub images: ImageStore,
    /// Registry settings (insecure registries, mirrors); credentials are added per pod.
    pub pull_options: PullOptions,
    /// Set once the node has a pod CIDR.
    pub network: OnceLock<Arc<PodNetwork>>,
    /// The node bridge's name.
    pub bridge: String,
    pub events: Recorder,
    pub node_ip: Option<IpAddr>,
    /// The cluster DNS service address(es); empty until cluster DNS exists.
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub node_cpu_millis: u64,
    pub node_memory_bytes: u64,
    /// Process limit per pod cgroup.
    pub pids_limit: Option<i64>,
}

/// `<data>/logs/<namespace>_<name>_<uid>`: a pod's container logs.
pub fn log_dir(data_dir: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    data_dir
        .join("logs")
        .join(format!("{namespace}_{name}_{uid}"))
}

/// One container as the server's streams see it.
#[derive(Debug, Clone, Default)]
pub struct ContainerView {
    pub name: String,
    /// The runtime id while a run is going.
    pub running_id: Option<String>,
    /// The current (or last) run's number: its log file is `<attempt>.log`.
    pub attempt: u32,
    /// An app container (not an init container).
    pub app: bool,
}

/// What a worker publishes about its pod for logs, exec and port-forward.
#[derive(Debug, Clone, Default)]
pub struct PodView {
    pub pod_ip: Option<IpAddr>,
    pub containers: Vec<ContainerView>,
}

struct Handle {
    namespace: String,
    name: String,
    uid: String,
    updates: watch::Sender<Option<Arc<Pod>>>,
    view: Arc<Mutex<PodView>>,
    task: tokio::task::JoinHandle<()>,
    /// The images the pod's containers name: kept by image garbage collection.
    images: Vec<String>,
}

/// How often images are garbage-collected (the kubelet's `ImageGCPeriod`).
const IMAGE_GC_PERIOD: Duration = Duration::from_secs(300);

/// Every image a pod's containers (init, sidecar, app) name.
fn pod_images(pod: &Pod) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .filter_map(|c| c.image.clone())
        .collect()
}

/// Runs this node's pods.
pub struct PodManager {
    ctx: Arc<NodeContext>,
    pods: Mutex<HashMap<String, Handle>>,
}

/// How long to wait between looks at the Node for its pod CIDR.
const CIDR_POLL: Duration = Duration::from_millis(500);

impl PodManager {
    pub fn new(ctx: NodeContext) -> Arc<PodManager> {
        Arc::new(PodManager {
            ctx: Arc::new(ctx),
            pods: Mutex::new(HashMap::new()),
        })
    }

    pub fn context(&self) -> &Arc<NodeContext> {
        &self.ctx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the node's pod CIDR and sets up the node bridge.
    async fn network(&self) -> Arc<PodNetwork> {
        let nodes: Api<Node> = Api::all(self.ctx.client.clone());
        loop {
            match nodes.get_opt(&self.ctx.node_name).await {
                Ok(Some(node)) => {
                    if let Some(cidr) = node.spec.and_then(|s| s.pod_cidr) {
                        let parsed = cidr.split_once('/').and_then(|(ip, prefix)| {
                            Ipv4Cidr::new(ip.parse().ok()?, prefix.parse().ok()?).ok()
                        });
                        match parsed {
                            Some(cidr) => {
                                let mut config =
                                    PodNetworkConfig::new(cidr, self.ctx.data_dir.join("network"));
                                config.bridge = self.ctx.bridge.clone();
                                let made =
                                    tokio::task::spawn_blocking(move || PodNetwork::new(config))
                                        .await;
                                match made {
                                    Ok(Ok(network)) => return Arc::new(network),
                                    Ok(Err(err)) => {
                                        tracing::error!(%err, "setting up the pod network failed")
                                    }
                                    Err(err) => tracing::error!(%err, "pod network task failed"),
                                }
                            }
                            None => tracing::error!(cidr, "the node's pod CIDR is not IPv4"),
                        }
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        continue;
                    }
                }
                Ok(None) => {}
                Err(err) => tracing::debug!(%err, "reading the node failed"),
            }
            tokio::time::sleep(CIDR_POLL).await;
        }
    }

    /// Watches this node's pods until the agent stops.
    pub async fn run(self: Arc<Self>) {
        tokio::spawn(self.clone().collect_images());
        let network = self.network().await;
        let _ = self.ctx.network.set(network);
        let runtime = self.ctx.runtime.clone();
        let mut adopted: HashMap<String, Vec<ContainerStatus>> =
            match tokio::task::spawn_blocking(move || runtime.list()).await {
                Ok(Ok(list)) => {
                    let mut by_pod: HashMap<String, Vec<ContainerStatus>> = HashMap::new();
                    for c in list {
                        if let Some(uid) = c.annotations.get(POD_UID_ANNOTATION).cloned() {
                            by_pod.entry(uid).or_default().push(c);
                        }
                    }
                    by_pod
                }
                Ok(Err(err)) => {
                    tracing::error!(%err, "listing containers failed");
                    HashMap::new()
                }
                Err(err) => {
                    tracing::error!(%err, "listing containers failed");
                    HashMap::new()
                }
            };
        let api: Api<Pod> = Api::all(self.ctx.client.clone());
        let config =
            watcher::Config::default().fields(&format!("spec.nodeName={}", self.ctx.node_name));
        let mut stream = watcher(api, config).default_backoff().boxed();
        let mut listing: HashSet<String> = HashSet::new();
        let mut cleaned_up = false;
        // Pods whose worker already tore them down: later events about them are ignored.
        let mut gone: HashSet<String> = HashSet::new();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(e) => e,
                Err(err) => {
                    tracing::warn!(%err, "watching pods failed; retrying");
                    continue;
                }
            };
            match event {
                watcher::Event::Init => listing.clear(),
                watcher::Event::InitApply(pod) => {
                    if let Some(uid) = pod.metadata.uid.clone() {
                        listing.insert(uid);
                    }
                    self.apply(pod, &mut adopted, &gone);
                }
                watcher::Event::InitDone => {
                    // Pods that vanished while the watch was down.
                    let missing: Vec<String> = self
                        .lock()
                        .keys()
                        .filter(|uid| !listing.contains(*uid))
                        .cloned()
                        .collect();
                    for uid in missing {
                        if let Some(h) = self.lock().get(&uid) {
                            let _ = h.updates.send(None);
                        }
                    }
                    if !cleaned_up {
                        cleaned_up = true;
                        let orphans: Vec<(String, Vec<ContainerStatus>)> =
                            adopted.drain().collect();
                        self.clean_up_orphans(orphans, &listing).await;
                    }
                }
                watcher::Event::Apply(pod) => self.apply(pod, &mut adopted, &gone),
                watcher::Event::Delete(pod) => {
                    if let Some(uid) = pod.metadata.uid.as_deref()
                        && let Some(h) = self.lock().get(uid)
                    {
                        let _ = h.updates.send(None);
                    }
                }
            }
            // Forget workers that finished.
            let mut pods = self.lock();
            let finished: Vec<String> = pods
                .iter()
                .filter(|(_, h)| h.task.is_finished())
                .map(|(uid, _)| uid.clone())
                .collect();
            for uid in finished {
                pods.remove(&uid);
                gone.insert(uid);
            }
        }
    }

    fn apply(
        &self,
        pod: Pod,
        adopted: &mut HashMap<String, Vec<ContainerStatus>>,
        gone: &HashSet<String>,
    ) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        if gone.contains(&uid) {
            return;
        }
        let images = pod_images(&pod);
        let pod = Arc::new(pod);
        let mut pods = self.lock();
        if let Some(h) = pods.get_mut(&uid) {
            h.images = images;
            let _ = h.updates.send(Some(pod));
            return;
        }
        let (tx, rx) = watch::channel(Some(pod.clone()));
        let view = Arc::new(Mutex::new(PodView::default()));
        let worker = worker::Worker::new(self.ctx.clone(), pod.clone(), rx, view.clone());
        let containers = adopted.remove(&uid).unwrap_or_default();
        let task = tokio::spawn(worker.run(containers));
        pods.insert(
            uid.clone(),
            Handle {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                name: pod.metadata.name.clone().unwrap_or_default(),
                uid,
                updates: tx,
                view,
                task,
                images,
            },
        );
    }

    /// Image garbage collection every [`IMAGE_GC_PERIOD`], with the kubelet's thresholds
    /// (above 85 % disk use, remove unused images, least recently used first, down to 80 %; never
    /// one pulled in the last 2 minutes or named by a pod of this node).
    async fn collect_images(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(IMAGE_GC_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let names: Vec<String> = self
                .lock()
                .values()
                .flat_map(|h| h.images.iter().cloned())
                .collect();
            let ctx = self.ctx.clone();
            let result = tokio::task::spawn_blocking(move || {
                let in_use: HashSet<Digest> = names
                    .iter()
                    .filter_map(|n| Reference::parse(n).ok())
                    .filter_map(|r| ctx.images.get(&r).ok().flatten())
                    .map(|image| image.digest)
                    .collect();
                let usage = ctx.images.disk_usage()?;
                ctx.images.gc(&GcPolicy::default(), usage, &in_use)
            })
            .await;
            match result {
                Ok(Ok(report)) if !report.removed.is_empty() || report.freed > 0 => {
                    tracing::info!(
                        removed = report.removed.len(),
                        freed = report.freed,
                        "image garbage collection"
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::warn!(%err, "image garbage collection failed"),
                Err(err) => tracing::warn!(%err, "image garbage collection failed"),
            }
        }
    }

    /// Removes what a previous agent left for pods that no longer exist.
    async fn clean_up_orphans(
        &self,
        orphans: Vec<(String, Vec<ContainerStatus>)>,
        known: &HashSet<String>,
    ) {
        let ctx = self.ctx.clone();
        let known: Vec<String> = known.iter().cloned().collect();
        let result = tokio::task::spawn_blocking(move || {
            for (uid, containers) in orphans {
                tracing::info!(
                    uid,
                    "removing the containers of a pod that no longer exists"
                );
                for c in containers {
                    if let Err(err) = ctx.runtime.delete(&c.id, true) {
                        tracing::warn!(%err, id = c.id, "removing an orphaned container failed");
                    }
                    let _ = ctx.images.remove_snapshot(&c.id);
                }
            }
            if let Ok(sandboxes) = ctx.sandboxes.list() {
                for uid in sandboxes.iter().filter(|u| !known.contains(u)) {
                    tracing::info!(uid, "removing the sandbox of a pod that no longer exists");
                    if let Err(err) = ctx.sandboxes.teardown(uid) {
                        tracing::warn!(%err, uid, "removing an orphaned sandbox failed");
                    }
                    let _ = setup::remove_pod_dir(&setup::pod_dir(&ctx.data_dir, uid));
                }
            }
            if let Some(network) = ctx.network.get()
                && let Err(err) = network.repair(known.iter().map(String::as_str))
            {
                tracing::warn!(%err, "repairing the pod network failed");
            }
        })
        .await;
        if let Err(err) = result {
            tracing::warn!(%err, "orphan cleanup failed");
        }
    }

    /// The newest pod with this namespace and name, and its view.
    fn find(
        &self,
        namespace: &str,
        pod: &str,
    ) -> Result<(String, Arc<Mutex<PodView>>), StreamError> {
        self.lock()
            .values()
            .find(|h| h.namespace == namespace && h.name == pod && !h.task.is_finished())
            .map(|h| (h.uid.clone(), h.view.clone()))
            .ok_or_else(|| StreamError::not_found(format!("pod \"{pod}\" not found on this node")))
    }
}

fn view_of(view: &Arc<Mutex<PodView>>) -> PodView {
    view.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl PodStreams for PodManager {
    fn log_path(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<PathBuf, StreamError> {
        let (uid, view) = self.find(namespace, pod)?;
        let view = view_of(&view);
        let c = view
            .containers
            .iter()
            .find(|c| c.name == container)
            .ok_or_else(|| {
                StreamError::bad_request(format!(
                    "container {container} is not valid for pod {pod}"
                ))
            })?;
        let dir = log_dir(&self.ctx.data_dir, namespace, pod, &uid).join(container);
        if previous {
            let path = c
                .attempt
                .checked_sub(1)
                .map(|a| dir.join(format!("{a}.log")))
                .filter(|p| p.exists())
                .ok_or_else(|| {
                    StreamError::bad_request(format!(
                        "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                    ))
                })?;
            return Ok(path);
        }
        Ok(dir.join(format!("{}.log", c.attempt)))
    }

    fn running(&self, namespace: &str, pod: &str, container: &str) -> bool {
        self.find(namespace, pod).is_ok_and(|(_, view)| {
            view_of(&view)
                .containers
                .iter()
                .any(|c| c.name == container && c.running_id.is_some())
        })
    }

    fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        exec: ExecConfig,
    ) -> Result<ExecSession, StreamError> {
        let (_, view) = self.find(namespace, pod)?;
        let view = view_of(&view);
        let target = match container {
            Some(name) => view
                .containers
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| {
                    StreamError::bad_request(format!("container {name} is not valid for pod {pod}"))
                })?,
            None => {
                let apps: Vec<&ContainerView> = view.containers.iter().filter(|c| c.app).collect();
                match apps.as_slice() {
                    [only] => *only,
                    _ => {
                        return Err(StreamError::bad_request(format!(
                            "a container name must be specified for pod {pod}, choose one of: [{}]",
                            apps.iter()
                                .map(|c| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(" ")
                        )));
                    }
                }
            }
        };
        let id = target.running_id.clone().ok_or_else(|| {
            StreamError::bad_request(format!(
                "container {} is not running in pod {pod}",
                target.name
            ))
        })?;
        self.ctx
            .runtime
            .exec(&id, &exec)
            .map_err(|e| StreamError::bad_request(e.to_string()))
    }

    fn pod_ip(&self, namespace: &str, pod: &str) -> Result<IpAddr, StreamError> {
        let (_, view) = self.find(namespace, pod)?;
        view_of(&view)
            .pod_ip
            .ok_or_else(|| StreamError::bad_request(format!("pod {pod} has no IP yet")))
    }
}
