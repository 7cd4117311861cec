//! `maestro`: the one binary. `maestro server` runs a whole single-node control plane (API
//! server on the embedded store, controllers); more subcommands join as the node agent and
//! tooling land.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "maestro",
    version,
    about = "A lightweight Kubernetes-compatible orchestrator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the control plane (and, by default, a node agent) in the foreground.
    Server(ServerArgs),
    /// Run a node agent that joins a cluster with a join token.
    Agent(AgentArgs),
    /// Manage join tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage the images of this node.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Load images from an OCI archive or a `docker save` tarball (for air-gapped nodes). The
    /// node's agent imports it (right away if it runs, else when it starts).
    Import(ImageImportArgs),
}

#[derive(Args, Debug)]
struct ImageImportArgs {
    /// The archives (tar, optionally gzipped).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The agent's data directory (default: /var/lib/maestro/agent when it exists, else
    /// /var/lib/maestro-agent).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seconds to wait for the agent to report the import (0: do not wait).
    #[arg(long, default_value_t = 600)]
    timeout_seconds: u64,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a join token for agents (printed on stdout).
    Create(TokenCreateArgs),
}

#[derive(Args, Debug)]
struct TokenCreateArgs {
    /// The server's data directory (its kubeconfig and CA are used).
    #[arg(long, default_value = "/var/lib/maestro")]
    data_dir: PathBuf,
    /// How long the token stays valid, in hours (0: forever).
    #[arg(long, default_value_t = 24)]
    ttl_hours: u64,
}

#[derive(Args, Debug)]
struct AgentArgs {
    /// The API server, e.g. https://10.0.0.1:6443.
    #[arg(long)]
    server: String,
    /// The join token from `maestro token create`.
    #[arg(long, env = "MAESTRO_TOKEN")]
    token: String,
    /// This node's name (default: the host name). With --simulate, the prefix of the
    /// simulated nodes' names.
    #[arg(long)]
    node_name: Option<String>,
    /// Where the agent keeps images, containers and pod state.
    #[arg(long, default_value = "/var/lib/maestro-agent")]
    data_dir: PathBuf,
    /// SCALE TESTING ONLY: instead of being a node, register N simulated nodes
    /// (`<node-name>-sim-00001`...) that heartbeat like real ones and report the pods bound to
    /// them Running without starting any container. For testing the control plane at scale
    /// (like kwok or kubemark); never on a cluster that runs real workloads.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(maestro_agent::simulate::MAX_NODES))
    )]
    simulate: Option<u32>,
    /// With --simulate: seconds between renewals of each simulated node's Lease (spread over
    /// the nodes).
    #[arg(
        long,
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..),
        requires = "simulate"
    )]
    simulate_lease_seconds: u64,
    #[command(flatten)]
    node: NodeArgs,
}

/// Settings of the node, shared by `agent` and the agent embedded in `server`.
#[derive(Args, Debug, Clone)]
struct NodeArgs {
    /// CPU kept back from pods, in millicores.
    #[arg(long, default_value_t = 100)]
    reserved_cpu_millis: u64,
    /// Memory kept back from pods, in MiB.
    #[arg(long, default_value_t = 256)]
    reserved_memory_mib: u64,
    /// Most pods this node runs.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// The address of this node (default: the source address of its default route).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Port of the agent's HTTPS endpoint for logs, exec and port-forward (0: any free port).
    #[arg(long, default_value_t = 10250)]
    agent_port: u16,
    /// The OCI runtime that runs containers.
    #[arg(long, default_value = "runc", value_parser = ["runc", "crun"])]
    container_runtime: String,
    /// Runtime state, bundles and pod sandboxes (a tmpfs).
    #[arg(long, default_value = "/run/maestro")]
    run_dir: PathBuf,
    /// The cgroup pods are placed under.
    #[arg(long, default_value = "/maestro")]
    cgroup_root: String,
    /// The name of the node's pod bridge.
    #[arg(long, default_value = "maestro0")]
    bridge: String,
    /// A registry (host[:port]) that may be reached over plain HTTP (loopback always may).
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// Pull images of registry NAME from HOST:PORT instead (a mirror): NAME=HOST:PORT.
    #[arg(long = "registry-endpoint", value_parser = parse_endpoint)]
    registry_endpoints: Vec<(String, String)>,
    /// Register the node without running pods (for control-plane-only tests).
    #[arg(long)]
    no_pods: bool,
    /// The nftables table (family ip) of the node's service proxy.
    #[arg(long, default_value = maestro_net::proxy::DEFAULT_TABLE)]
    nft_table: String,
    /// A DNS server (IP or IP:PORT) that the node's cluster DNS forwards names outside the
    /// cluster to; without one such names are refused.
    #[arg(long = "dns-upstream", value_parser = parse_dns_upstream)]
    dns_upstreams: Vec<SocketAddr>,
    /// HTTP port of the built-in ingress controller on this node (0: off).
    #[arg(long, default_value_t = 80)]
    ingress_http_port: u16,
    /// HTTPS port of the built-in ingress controller on this node (0: off).
    #[arg(long, default_value_t = 443)]
    ingress_https_port: u16,
    /// Port of the ingress controller's Prometheus metrics, `/metrics` (0: off).
    #[arg(long, default_value_t = 10254)]
    ingress_metrics_port: u16,
}

fn parse_dns_upstream(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| format!("expected IP or IP:PORT, got {s:?}"))
}

fn parse_endpoint(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .ok_or_else(|| format!("expected NAME=HOST:PORT, got {s:?}"))
}

impl NodeArgs {
    /// The agent's settings for running pods.
    fn pod_settings(&self) -> anyhow::Result<maestro_agent::PodSettings> {
        let shim = maestro_agent::PodSettings::shim_command()
            .context("finding this executable for the container shim")?;
        let mut settings = maestro_agent::PodSettings::new(shim);
        settings.enabled = !self.no_pods;
        settings.runtime = match self.container_runtime.as_str() {
            "crun" => maestro_agent::RuntimeKind::Crun,
            _ => maestro_agent::RuntimeKind::Runc,
        };
        settings.run_dir = self.run_dir.clone();
        settings.cgroup_root = self.cgroup_root.clone();
        settings.bridge = self.bridge.clone();
        settings.insecure_registries = self.insecure_registries.clone();
        settings.registry_endpoints = self.registry_endpoints.iter().cloned().collect();
        settings.nft_table = self.nft_table.clone();
        settings.dns_upstreams = self.dns_upstreams.clone();
        settings.ingress_http_port = self.ingress_http_port;
        settings.ingress_https_port = self.ingress_https_port;
        settings.ingress_metrics_port = self.ingress_metrics_port;
        Ok(settings)
    }
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Where the store, credentials and kubeconfig live.
    #[arg(long, default_value = "/var/lib/maestro")]
    data_dir: PathBuf,
    /// HTTPS port of the Kubernetes API.
    #[arg(long, default_value_t = 6443)]
    api_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// Extra names or IP addresses for the serving certificate.
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// Do not run the embedded node agent (control plane only).
    #[arg(long)]
    no_agent: bool,
    /// Name of the embedded agent's node (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    #[command(flatten)]
    node: NodeArgs,
    /// Range the nodes' pod CIDRs come from.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Size of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// Seconds between store compactions (history older than one interval is dropped).
    #[arg(long, default_value_t = 300)]
    compaction_interval_seconds: u64,
    /// etcd v3 endpoints (comma-separated `http://host:port`) to keep the cluster state in
    /// instead of the embedded store; several servers on one etcd cluster make it highly
    /// available.
    #[arg(long = "etcd-servers", value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// Key prefix in etcd, so that several clusters can share one etcd.
    #[arg(long, default_value = "/maestro")]
    etcd_prefix: String,
    /// Range of Service virtual IPs (ClusterIPs).
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    /// The cluster DNS address, inside the service range (default: its tenth address).
    #[arg(long)]
    cluster_dns: Option<std::net::Ipv4Addr>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Addresses for Services of type LoadBalancer (`a.b.c.d/len` or `a.b.c.d-e.f.g.h`), on a
    /// network the nodes are on: one node answers for each. Without a pool such Services stay
    /// pending, as on Kubernetes without a cloud.
    #[arg(long)]
    load_balancer_pool: Option<String>,
    /// Seconds between the bookmarks sent to watches that allow them.
    #[arg(long, default_value_t = 60.0)]
    watch_bookmark_interval_seconds: f64,
    /// Seconds a node may go without renewing its Lease or posting status before it is marked
    /// Unknown and tainted unreachable.
    #[arg(long, default_value_t = 12)]
    node_monitor_grace_period_seconds: u64,
    /// tolerationSeconds of the not-ready toleration every pod gets (Kubernetes: 300).
    #[arg(long, default_value_t = 8)]
    default_not_ready_toleration_seconds: i64,
    /// tolerationSeconds of the unreachable toleration every pod gets (Kubernetes: 300).
    #[arg(long, default_value_t = 8)]
    default_unreachable_toleration_seconds: i64,
    /// A KubeSchedulerConfiguration file (kubescheduler.config.k8s.io/v1) with the scheduler's
    /// profiles; without it, one `default-scheduler` profile with the default plugins.
    #[arg(long)]
    scheduler_config: Option<PathBuf>,
    /// Run no scheduler (pods stay Pending unless something else binds them).
    #[arg(long)]
    disable_scheduler: bool,
}

fn main() -> anyhow::Result<()> {
    // `maestro shim ...`: the per-container shim, started by the OCI runtime layer for every
    // container. Dispatched before anything else so it stays small (no async runtime, no
    // logging setup): it must outlive the agent.
    let mut raw = std::env::args_os();
    if raw.nth(1).is_some_and(|a| a == "shim") {
        std::process::exit(maestro_agent::shim_main(raw));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server(args)),
        Command::Agent(args) => runtime.block_on(agent(args)),
        Command::Token(TokenCommand::Create(args)) => runtime.block_on(token_create(args)),
        Command::Image(ImageCommand::Import(args)) => image_import(args),
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    // A bad scheduler configuration stops the server before it serves anything.
    let scheduler_profiles = if args.disable_scheduler {
        tracing::info!("running without a scheduler (--disable-scheduler)");
        None
    } else {
        Some(match &args.scheduler_config {
            Some(path) => maestro_controllers::scheduler::config::load(path)
                .with_context(|| format!("--scheduler-config {}", path.display()))?,
            None => maestro_controllers::scheduler::default_profiles(),
        })
    };
    let store = if args.etcd_servers.is_empty() {
        maestro_apiserver::StoreConfig::Embedded
    } else {
        maestro_apiserver::StoreConfig::Etcd {
            endpoints: args.etcd_servers.clone(),
            prefix: Some(args.etcd_prefix.clone()).filter(|p| !p.is_empty()),
        }
    };
    let service_cidr = args
        .service_cidr
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--service-cidr: {e}"))?;
    let config = maestro_apiserver::ApiServerConfig {
        data_dir: args.data_dir.clone(),
        bind: SocketAddr::new(args.bind_address, args.api_port),
        extra_sans: args.tls_san.clone(),
        compaction_interval: Duration::from_secs(args.compaction_interval_seconds.max(1)),
        store,
        service_cidr,
        watch_bookmark_interval: Duration::from_secs_f64(
            args.watch_bookmark_interval_seconds.max(0.1),
        ),
        default_toleration_seconds: maestro_apiserver::registry::DefaultTolerationSeconds {
            not_ready: args.default_not_ready_toleration_seconds.max(0),
            unreachable: args.default_unreachable_toleration_seconds.max(0),
        },
    };
    let server = maestro_apiserver::ApiServer::start(config)
        .await
        .with_context(|| {
            format!(
                "starting the API server with data dir {}",
                args.data_dir.display()
            )
        })?;
    let load_balancer_pool: Option<maestro_controllers::load_balancer::Pool> = args
        .load_balancer_pool
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| anyhow::anyhow!("--load-balancer-pool: {e}"))?;
    let cluster_dns = args.cluster_dns.unwrap_or(service_cidr.nth(10));
    anyhow::ensure!(
        service_cidr.contains(cluster_dns),
        "--cluster-dns {cluster_dns} is outside the service range {service_cidr}"
    );
    let network = maestro_apiserver::bootstrap::ClusterNetwork {
        cluster_cidr: args.cluster_cidr.clone(),
        service_cidr: args.service_cidr.clone(),
        cluster_dns,
        cluster_domain: args.cluster_domain.clone(),
        load_balancer_pool: load_balancer_pool.map(|p| p.to_string()),
    };
    maestro_apiserver::bootstrap::publish_cluster_network(&server.state.registry, &network)
        .await
        .context("publishing the cluster's network settings")?;
    let identity = server_identity(&args.data_dir).context("reading this server's identity")?;
    let ipam = maestro_controllers::node_ipam::NodeIpam {
        cluster_cidr: args
            .cluster_cidr
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--cluster-cidr: {e}"))?,
        node_prefix: args.node_cidr_mask_size,
    };
    maestro_controllers::start(
        server.state.registry.clone(),
        &server.credentials,
        identity,
        ipam,
        maestro_controllers::node_lifecycle::NodeLifecycleConfig {
            grace_period: Duration::from_secs(args.node_monitor_grace_period_seconds.max(1)),
            ..Default::default()
        },
        scheduler_profiles,
        load_balancer_pool,
    );
    if args.no_agent {
        tracing::info!("running without a node agent (--no-agent)");
    } else {
        let config = maestro_agent::AgentConfig {
            server: format!("https://127.0.0.1:{}", server.address.port()),
            credentials: maestro_agent::client::Credentials::Bearer {
                token: server.credentials.admin_token.clone(),
                ca_pem: server.credentials.ca_cert_pem.clone(),
            },
            node_name: args
                .node_name
                .clone()
                .unwrap_or_else(maestro_agent::host::hostname),
            data_dir: args.data_dir.join("agent"),
            reserved_cpu_millis: args.node.reserved_cpu_millis,
            reserved_memory_bytes: args.node.reserved_memory_mib * 1024 * 1024,
            max_pods: args.node.max_pods,
            node_ip: args.node.node_ip,
            port: args.node.agent_port,
            pods: args.node.pod_settings()?,
        };
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        tokio::spawn(async move {
            if let Err(err) = maestro_agent::run(config).await {
                tracing::error!(%err, "the embedded node agent stopped");
            }
        });
    }
    tracing::info!(address = %server.address, kubeconfig = %server.kubeconfig.display(), "maestro server ready");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for a signal")?;
    tracing::info!("shutting down");
    Ok(())
}

/// This server's name in leader election: kept in the data directory so that it survives
/// restarts (a restarted server resumes its own Lease instead of waiting for it to lapse).
fn server_identity(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("identity");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.trim().is_empty()
    {
        return Ok(existing.trim().to_string());
    }
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let suffix: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
        ^ u64::from(std::process::id());
    let identity = format!("{}_{suffix:016x}", host.trim());
    std::fs::write(&path, &identity).with_context(|| format!("writing {}", path.display()))?;
    Ok(identity)
}

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    if let Some(nodes) = args.simulate {
        // Simulated nodes for scale testing, joined with the same token as a real agent. The
        // node settings that make sense for a fake node (pods, reserved resources) apply to
        // each; the rest (runtime, directories, network) have nothing to act on.
        let capacity = maestro_agent::simulate::Capacity {
            pods: args.node.max_pods,
            reserved_cpu_millis: args.node.reserved_cpu_millis,
            reserved_memory_bytes: args.node.reserved_memory_mib * 1024 * 1024,
            ..Default::default()
        };
        let config = maestro_agent::simulate::SimulationConfig {
            server: args.server.clone(),
            credentials: maestro_agent::client::Credentials::Join(args.token.clone()),
            prefix: args
                .node_name
                .clone()
                .unwrap_or_else(maestro_agent::host::hostname),
            nodes,
            lease_period: Duration::from_secs(args.simulate_lease_seconds),
            capacity,
        };
        eprintln!(
            "maestro agent: SIMULATION MODE (scale testing) - {nodes} simulated nodes named \
             {}-sim-NNNNN; no container will run",
            config.prefix
        );
        return maestro_agent::simulate::run(config)
            .await
            .context("the node simulator stopped");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let config = maestro_agent::AgentConfig {
        server: args.server.clone(),
        credentials: maestro_agent::client::Credentials::Join(args.token.clone()),
        node_name: args
            .node_name
            .clone()
            .unwrap_or_else(maestro_agent::host::hostname),
        data_dir: args.data_dir.clone(),
        reserved_cpu_millis: args.node.reserved_cpu_millis,
        reserved_memory_bytes: args.node.reserved_memory_mib * 1024 * 1024,
        max_pods: args.node.max_pods,
        node_ip: args.node.node_ip,
        port: args.node.agent_port,
        pods: args.node.pod_settings()?,
    };
    tracing::info!(server = %config.server, node = %config.node_name, "starting the node agent");
    maestro_agent::run(config)
        .await
        .context("the node agent stopped")
}

/// Create a bootstrap token Secret through the API (with the admin kubeconfig of the data dir)
/// and print the join token.
async fn token_create(args: TokenCreateArgs) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, PostParams};

    let kubeconfig_path = args.data_dir.join("kubeconfig");
    let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig_path)
        .with_context(|| format!("reading {}", kubeconfig_path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("loading the admin kubeconfig")?;
    let client = kube::Client::try_from(config).context("building the API client")?;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let random = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    let (id, secret) = (random(6), random(16));
    let mut data = serde_json::json!({
        "token-id": id,
        "token-secret": secret,
        "usage-bootstrap-authentication": "true",
        "description": "maestro join token",
    });
    if args.ttl_hours > 0 {
        let expires = jiff_expiration(args.ttl_hours);
        data["expiration"] = serde_json::json!(expires);
    }
    let body: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": data,
    }))?;
    let secrets: Api<Secret> = Api::namespaced(client, "kube-system");
    secrets
        .create(&PostParams::default(), &body)
        .await
        .context("creating the bootstrap token Secret")?;
    let ca_path = args.data_dir.join("ca.crt");
    let ca = std::fs::read_to_string(&ca_path)
        .with_context(|| format!("reading {}", ca_path.display()))?;
    println!(
        "{}",
        maestro_agent::join::JoinToken::format(&ca, &format!("{id}.{secret}"))
    );
    Ok(())
}

fn jiff_expiration(hours: u64) -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(hours as i64);
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `maestro image import`: hand the archives to the node's agent and wait for its answers.
fn image_import(args: ImageImportArgs) -> anyhow::Result<()> {
    use maestro_agent::image_import::{PARTIAL_SUFFIX, RESULT_SUFFIX, import_dir};
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        let embedded = PathBuf::from("/var/lib/maestro/agent");
        if embedded.exists() {
            embedded
        } else {
            PathBuf::from("/var/lib/maestro-agent")
        }
    });
    let dir = import_dir(&data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut waiting = Vec::new();
    for file in &args.files {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let base = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "archive".into());
        let target = dir.join(format!("{stamp}-{base}"));
        let partial = dir.join(format!("{stamp}-{base}{PARTIAL_SUFFIX}"));
        std::fs::copy(file, &partial)
            .with_context(|| format!("copying {} into {}", file.display(), dir.display()))?;
        std::fs::rename(&partial, &target)?;
        waiting.push((
            file.clone(),
            dir.join(format!("{stamp}-{base}{RESULT_SUFFIX}")),
        ));
    }
    if args.timeout_seconds == 0 {
        println!("queued for the agent in {}", dir.display());
        return Ok(());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(args.timeout_seconds);
    let mut failed = false;
    for (file, result_path) in waiting {
        let result = loop {
            if let Ok(bytes) = std::fs::read(&result_path) {
                let _ = std::fs::remove_file(&result_path);
                break serde_json::from_slice::<serde_json::Value>(&bytes)?;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the agent did not import {} within {}s (is it running with data dir {}?); \
                 it stays queued",
                file.display(),
                args.timeout_seconds,
                data_dir.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        if let Some(error) = result["error"].as_str() {
            eprintln!("{}: {error}", file.display());
            failed = true;
            continue;
        }
        for name in result["images"].as_array().into_iter().flatten() {
            println!("{}", name.as_str().unwrap_or_default());
        }
    }
    anyhow::ensure!(!failed, "some archives could not be imported");
    Ok(())
}
