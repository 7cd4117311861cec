//! The node agent (the kubelet's job): it registers its Node with capacity read from the host,
//! keeps the node's Lease and conditions current, and runs the pods bound to it. It talks to the
//! API server over HTTPS like any other client; `maestro server` runs one in-process by default.

pub mod client;
pub mod events;
pub mod exec;
pub mod host;
pub mod image_import;
pub mod ingress;
pub mod join;
pub mod local_path;
pub mod logs;
pub mod node;
pub mod pods;
pub mod policy;
pub mod portforward;
pub mod probes;
pub mod pty;
pub mod server;
pub mod services;
pub mod simulate;
pub mod streaming;
pub mod volumes;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use maestro_oci::image::{ImageStore, PullOptions};
pub use maestro_oci::runtime::RuntimeKind;
use maestro_oci::runtime::{RuncCli, RuncConfig, SandboxManager, ShimCommand, cgroup};

/// The per-container shim's entry point, for the binary's hidden `shim` subcommand.
pub fn shim_main(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    maestro_oci::runtime::shim::main(args)
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("joining the cluster: {0}")]
    Join(#[from] join::JoinError),
    #[error("API client: {0}")]
    Client(String),
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Host(String),
}

/// How to run an agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// API server URL, e.g. `https://10.0.0.1:6443`.
    pub server: String,
    pub credentials: client::Credentials,
    pub node_name: String,
    pub data_dir: PathBuf,
    /// Resources kept back from pods: allocatable = capacity - reserved.
    pub reserved_cpu_millis: u64,
    pub reserved_memory_bytes: u64,
    pub max_pods: u32,
    /// The address other nodes and the API server reach this node at.
    pub node_ip: Option<IpAddr>,
    /// Port of the agent's HTTPS endpoint (logs, exec, port-forward); 0 picks a free one.
    pub port: u16,
    pub pods: PodSettings,
}

/// How this node runs pods.
#[derive(Debug, Clone)]
pub struct PodSettings {
    /// Run the pods bound to the node (off: the node only registers and heartbeats).
    pub enabled: bool,
    pub runtime: RuntimeKind,
    /// How the runtime starts a container's shim (`maestro shim`).
    pub shim: ShimCommand,
    /// Runtime state, bundles and sandboxes (`/run/maestro`): a tmpfs, gone after a reboot.
    pub run_dir: PathBuf,
    /// The cgroup under which pods live (`/maestro`).
    pub cgroup_root: String,
    /// The node bridge's name.
    pub bridge: String,
    /// Registries (host[:port]) that may be reached over plain HTTP besides loopback.
    pub insecure_registries: Vec<String>,
    /// Registry name in image references → host[:port] actually contacted (mirrors).
    pub registry_endpoints: BTreeMap<String, String>,
    /// The cluster DNS addresses pods resolve with (none: the node's resolver); set from the
    /// cluster's published network settings when the agent starts.
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// The nftables table of the service proxy.
    pub nft_table: String,
    /// DNS servers the node's cluster DNS forwards other names to (none: refused).
    pub dns_upstreams: Vec<SocketAddr>,
    /// Ports of the built-in ingress controller on every address of the node (0: off).
    pub ingress_http_port: u16,
    pub ingress_https_port: u16,
    /// Port of the ingress controller's Prometheus metrics (0: off).
    pub ingress_metrics_port: u16,
    /// Process limit of each pod.
    pub pod_pids_limit: Option<i64>,
}

impl PodSettings {
    /// The shim as `<this executable> shim`.
    pub fn shim_command() -> std::io::Result<ShimCommand> {
        ShimCommand::current_exe("shim")
    }

    /// Defaults: runc, `/run/maestro`, cgroup `/maestro`, bridge `maestro0`.
    pub fn new(shim: ShimCommand) -> Self {
        PodSettings {
            enabled: true,
            runtime: RuntimeKind::Runc,
            shim,
            run_dir: PathBuf::from("/run/maestro"),
            cgroup_root: maestro_oci::runtime::DEFAULT_CGROUP_ROOT.to_string(),
            bridge: maestro_net::pod_network::DEFAULT_BRIDGE.to_string(),
            insecure_registries: Vec::new(),
            registry_endpoints: BTreeMap::new(),
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            nft_table: maestro_net::proxy::DEFAULT_TABLE.to_string(),
            dns_upstreams: Vec::new(),
            ingress_http_port: 80,
            ingress_https_port: 443,
            ingress_metrics_port: 10254,
            pod_pids_limit: None,
        }
    }
}

/// A free TCP port on this host (bound and released: a tiny race other processes share).
fn free_port() -> Result<u16, AgentError> {
    std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| AgentError::Host(format!("finding a free port: {e}")))
}

/// The key that signs the API server's tokens for agents, from its JWKS document; retried
/// until the server answers.
async fn api_key(client: &kube::Client) -> Vec<u8> {
    loop {
        let request = http::Request::get("/openid/v1/jwks").body(Vec::new());
        if let Ok(request) = request {
            match client.request::<serde_json::Value>(request).await {
                Ok(jwks) => {
                    if let Some(key) = server::key_from_jwks(&jwks) {
                        return key;
                    }
                    tracing::warn!("the API server's JWKS has no P-256 key");
                }
                Err(err) => tracing::warn!(%err, "fetching the API server's JWKS failed"),
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Puts the run directory (runtime state, bundles, pod namespaces) on a tmpfs when the host has
/// not: that state must not outlive a reboot, as `/run` never does, and a burst of pods creates
/// and removes thousands of small files there, which costs far more on a disk filesystem (ext4
/// without a journal scans its recently freed inodes on every create). A directory that already
/// holds state stays as it is, so that running containers are never hidden.
fn volatile_run_dir(dir: &Path) -> Result<(), String> {
    use nix::sys::statfs::{TMPFS_MAGIC, statfs};
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let on_tmpfs = statfs(dir)
        .map(|s| s.filesystem_type() == TMPFS_MAGIC)
        .map_err(|e| format!("statfs {}: {e}", dir.display()))?;
    if on_tmpfs {
        return Ok(());
    }
    let empty = std::fs::read_dir(dir)
        .map_err(|e| format!("reading {}: {e}", dir.display()))?
        .next()
        .is_none();
    if !empty {
        tracing::warn!(dir = %dir.display(), "the run directory is on a disk filesystem and holds state; leaving it there");
        return Ok(());
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some("mode=0711"),
    )
    .map_err(|e| format!("mounting a tmpfs on {}: {e}", dir.display()))?;
    tracing::info!(dir = %dir.display(), "mounted a tmpfs on the run directory");
    Ok(())
}

/// Builds what the pod workers share.
fn node_context(
    client: &kube::Client,
    config: &AgentConfig,
) -> Result<pods::NodeContext, AgentError> {
    let settings = &config.pods;
    fn host_error<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> AgentError + '_ {
        move |e| AgentError::Host(format!("{what}: {e}"))
    }
    let cgroups =
        cgroup::detect(Path::new(cgroup::DEFAULT_ROOT)).map_err(host_error("detecting cgroups"))?;
    volatile_run_dir(&settings.run_dir).map_err(host_error("preparing the run directory"))?;
    let mut runc = RuncConfig::new(settings.runtime, settings.shim.clone());
    runc.root = settings.run_dir.join(settings.runtime.name());
    runc.bundle_dir = settings.run_dir.join("containers");
    let runtime = RuncCli::new(runc, cgroups.clone()).map_err(host_error("the OCI runtime"))?;
    let sandboxes = SandboxManager::new(
        settings.run_dir.join("pods"),
        settings.cgroup_root.clone(),
        cgroups,
    );
    let images = ImageStore::open(&config.data_dir.join("images"))
        .map_err(|e| AgentError::Host(format!("opening the image store: {e}")))?;
    let resources = host::resources(&config.data_dir).map_err(AgentError::Host)?;
    let pull_options = PullOptions {
        insecure_registries: settings.insecure_registries.clone(),
        endpoints: settings.registry_endpoints.clone(),
        ..Default::default()
    };
    Ok(pods::NodeContext {
        client: client.clone(),
        node_name: config.node_name.clone(),
        data_dir: config.data_dir.clone(),
        runtime: Arc::new(runtime),
        sandboxes,
        images,
        pull_options,
        network: OnceLock::new(),
        bridge: settings.bridge.clone(),
        events: events::Recorder::start(client.clone(), &config.node_name),
        node_ip: config.node_ip.or_else(host::primary_ip),
        cluster_dns: settings.cluster_dns.clone(),
        cluster_domain: settings.cluster_domain.clone(),
        node_cpu_millis: (resources.cpus * 1000).saturating_sub(config.reserved_cpu_millis),
        node_memory_bytes: resources
            .memory_bytes
            .saturating_sub(config.reserved_memory_bytes),
        pids_limit: settings.pod_pids_limit,
    })
}

/// Run the agent until an unrecoverable error.
pub async fn run(mut config: AgentConfig) -> Result<(), AgentError> {
    let client = client::connect(&config.server, &config.credentials).await?;
    if config.port == 0 {
        config.port = free_port()?;
    }
    if config.pods.enabled {
        let network = services::ClusterNetwork::fetch(&client).await;
        config.pods.cluster_dns = vec![IpAddr::V4(network.cluster_dns)];
        config.pods.cluster_domain = network.cluster_domain.clone();
        if config.pods.ingress_http_port != 0 || config.pods.ingress_https_port != 0 {
            let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            tokio::spawn(ingress::run(
                client.clone(),
                ingress::IngressConfig {
                    http: SocketAddr::new(any, config.pods.ingress_http_port),
                    https: SocketAddr::new(any, config.pods.ingress_https_port),
                    metrics: SocketAddr::new(any, config.pods.ingress_metrics_port),
                },
            ));
        }
        tokio::spawn(policy::run(
            client.clone(),
            config.node_name.clone(),
            config.pods.nft_table.clone(),
        ));
        tokio::spawn(services::run(
            client.clone(),
            services::ServiceNetworkConfig {
                network,
                node_name: config.node_name.clone(),
                bridge: config.pods.bridge.clone(),
                table: config.pods.nft_table.clone(),
                dns_upstreams: config.pods.dns_upstreams.clone(),
                node_ip: match config.node_ip.or_else(host::primary_ip) {
                    Some(IpAddr::V4(ip)) => Some(ip),
                    _ => None,
                },
            },
        ));
        tokio::spawn(local_path::run(
            client.clone(),
            config.node_name.clone(),
            local_path::storage_dir(&config.data_dir),
        ));
        let ctx = node_context(&client, &config)?;
        tokio::spawn(image_import::run(
            ctx.images.clone(),
            image_import::import_dir(&config.data_dir),
        ));
        let manager = pods::PodManager::new(ctx);
        let streams: Arc<dyn server::PodStreams> = manager.clone();
        let (server_client, data_dir, port) =
            (client.clone(), config.data_dir.clone(), config.port);
        let mut names = vec![config.node_name.clone()];
        if let Some(ip) = config.node_ip.or_else(host::primary_ip) {
            names.push(ip.to_string());
        }
        tokio::spawn(async move {
            let key = api_key(&server_client).await;
            let bind = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
            if let Err(err) = server::serve(bind, data_dir, names, key, streams).await {
                tracing::error!(%err, "the agent's HTTPS endpoint stopped");
            }
        });
        tokio::spawn(manager.run());
    }
    node::run(client, &config).await
}
