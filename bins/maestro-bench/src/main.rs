//! `maestro-bench`: measures maestro's API server beside etcd on the same machine in one run
//! (durable creates under 64 clients, GET latency idle and under that load, LIST of 10,000 pods,
//! watch fan-out to 1,000 watchers, server memory) and writes the figures as markdown.
//! `--suite pods` measures the node instead: pod start latency beside `docker run` and
//! `podman run`, and the agent's memory (see `pods.rs`). `--suite scheduler` measures
//! scheduling and a large Deployment on simulated nodes (see `scheduling.rs`). `--suite network`
//! measures the service proxy, the ClusterIP hop and the ingress beside nginx (see `network.rs`).
//!
//! It starts both servers itself, each with its own temporary data directory on loopback ports,
//! one after the other so they never compete for the CPU, and kills them by PID when done.
//! See docs/benchmarks.md for the method and the latest figures.

mod etcd;
mod machine;
mod maestro;
mod network;
mod payload;
mod pods;
mod procs;
mod report;
mod scheduling;
mod stats;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "maestro-bench",
    about = "Benchmark maestro's API server beside etcd"
)]
struct Cli {
    /// What to measure: the API server beside etcd, or a node's pods beside docker and podman.
    #[arg(long, value_enum, default_value_t = Suite::Api)]
    suite: Suite,
    /// Pods suite: sequential single-pod starts per runtime.
    #[arg(long, default_value_t = 20)]
    single_pods: usize,
    /// Pods suite: pods per burst.
    #[arg(long, default_value_t = 100)]
    burst: usize,
    /// Pods suite: bursts per runtime.
    #[arg(long, default_value_t = 3)]
    bursts: usize,
    /// Pods suite: OCI runtimes to run the agent with.
    #[arg(long, value_delimiter = ',', default_value = "runc,crun")]
    runtimes: Vec<String>,
    /// Pods suite: skip docker and podman.
    #[arg(long)]
    no_peers: bool,
    /// Scheduler suite: simulated nodes.
    #[arg(long, default_value_t = 5_000)]
    sim_nodes: usize,
    /// Scheduler suite: pods per throughput scenario (0: skip them).
    #[arg(long, default_value_t = 10_000)]
    sched_pods: usize,
    /// Scheduler suite: replicas of the large Deployment (0: skip it).
    #[arg(long, default_value_t = 10_000)]
    replicas: usize,
    /// Network suite: Services in the proxy convergence benchmark.
    #[arg(long, default_value_t = 1_000)]
    net_services: usize,
    /// Network suite: endpoints per Service.
    #[arg(long, default_value_t = 10)]
    net_endpoints: usize,
    /// Network suite: round trips per path in the ClusterIP benchmark.
    #[arg(long, default_value_t = 5_000)]
    round_trips: usize,
    /// Network suite: seconds of each wrk run.
    #[arg(long, default_value_t = 10)]
    wrk_seconds: u64,
    /// Network suite: wrk's open connections.
    #[arg(long, default_value_t = 64)]
    wrk_connections: usize,
    /// The maestro binary to measure (build it with --release).
    #[arg(long, default_value = "target/release/maestro")]
    maestro: PathBuf,
    /// The etcd binary (Debian's etcd-server is installed when the default is missing).
    #[arg(long, default_value = "etcd")]
    etcd: String,
    /// Measure maestro only.
    #[arg(long)]
    no_etcd: bool,
    /// kubectl for the apply session.
    #[arg(long, default_value = "kubectl")]
    kubectl: String,
    /// Extra environment for the maestro server, KEY=VALUE (for diagnosis, e.g.
    /// MALLOC_ARENA_MAX=2); printed with the results.
    #[arg(long = "maestro-env", value_parser = parse_env)]
    maestro_env: Vec<(String, String)>,
    /// Where to write the markdown report (it is also printed).
    #[arg(long, default_value = "target/maestro-bench.md")]
    output: PathBuf,
    /// Concurrent clients of the create load.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// ConfigMaps created under load.
    #[arg(long, default_value_t = 20_000)]
    creates: usize,
    /// Pods stored for the LIST benchmark.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent watchers of the fan-out benchmark.
    #[arg(long, default_value_t = 1_000)]
    watchers: usize,
    /// Updates delivered to the watchers.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Sequential GETs of the idle GET benchmark.
    #[arg(long, default_value_t = 5_000)]
    get_samples: usize,
    /// Full LISTs timed per representation.
    #[arg(long, default_value_t = 10)]
    list_runs: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Suite {
    Api,
    Pods,
    Scheduler,
    Network,
}

/// What every system's run shares.
#[derive(Debug, Clone)]
pub struct Config {
    pub clients: usize,
    pub creates: usize,
    pub pods: usize,
    pub watchers: usize,
    pub rounds: usize,
    pub get_samples: usize,
    pub list_runs: usize,
    pub kubectl: String,
    pub maestro_env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// Objects read by the GET benchmarks (created before any load).
pub const GET_TARGETS: usize = 100;
/// Watch streams per connection: well under maestro's HTTP/2 stream limit (hyper's default is
/// 200 per connection), as a client spreading many watches over its connections would.
pub const WATCHES_PER_CONNECTION: usize = 50;

static STARTED: OnceLock<Instant> = OnceLock::new();

/// A progress line on stderr, stamped with the time since start.
pub fn progress(what: &str) {
    let t = STARTED.get_or_init(Instant::now).elapsed();
    eprintln!("[{:6.1}s] {what}", t.as_secs_f64());
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // As many workers as cores: the client shares the machine with the server it measures.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::select! {
            result = run(cli) => result,
            // Dropping `run` drops the servers, which kills them.
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
        }
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    progress("starting");
    let started = Instant::now();
    let maestro_bin = std::fs::canonicalize(&cli.maestro)
        .with_context(|| format!("maestro binary {}", cli.maestro.display()))?;
    if cli.suite == Suite::Pods {
        return run_pods(&cli, &maestro_bin, started).await;
    }
    if cli.suite == Suite::Scheduler {
        return run_scheduler(&cli, &maestro_bin, started).await;
    }
    if cli.suite == Suite::Network {
        return run_network(&cli, &maestro_bin, started).await;
    }
    if !cli.no_etcd {
        etcd::ensure_installed(&cli.etcd)?;
    }
    let mut machine =
        machine::Machine::probe(&maestro_bin, &cli.etcd, &cli.kubectl, &std::env::temp_dir());
    progress(&format!("load average {}", machine.load_start));
    let cfg = Config {
        clients: cli.clients,
        creates: cli.creates,
        pods: cli.pods,
        watchers: cli.watchers,
        rounds: cli.rounds,
        get_samples: cli.get_samples,
        list_runs: cli.list_runs,
        kubectl: cli.kubectl.clone(),
        maestro_env: cli.maestro_env.clone(),
    };

    let (maestro, pods) = maestro::run(&maestro_bin, &cfg).await?;
    let etcd = if cli.no_etcd {
        None
    } else {
        Some(etcd::run(&cli.etcd, &cfg, &pods).await?)
    };
    machine.load_end = machine::load_average();

    let shape = report::Shape {
        clients: cfg.clients,
        creates: cfg.creates,
        configmap_bytes: payload::configmap("bench", "cm-000000").len(),
        pods: cfg.pods,
        pod_bytes_sent: payload::pod("bench-list", "pod-00000").len(),
        pod_bytes_stored: pods.iter().map(|p| p.len()).sum::<usize>() / pods.len().max(1),
        watchers: cfg.watchers,
    };
    let text = report::render(&machine, &shape, &maestro, etcd.as_ref(), started.elapsed());
    println!("{text}");
    if let Some(dir) = cli.output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&cli.output, &text)
        .with_context(|| format!("writing {}", cli.output.display()))?;
    progress(&format!("report written to {}", cli.output.display()));
    Ok(())
}

async fn run_pods(
    cli: &Cli,
    maestro_bin: &std::path::Path,
    started: Instant,
) -> anyhow::Result<()> {
    let mut machine =
        machine::Machine::probe(maestro_bin, &cli.etcd, &cli.kubectl, &std::env::temp_dir());
    let cfg = pods::PodsConfig {
        single: cli.single_pods,
        burst: cli.burst,
        bursts: cli.bursts,
        runtimes: cli.runtimes.clone(),
        peers: !cli.no_peers,
    };
    let report = pods::run(maestro_bin, &cfg).await?;
    write_suite_report(
        cli,
        &mut machine,
        &pods::render(&report, &cfg),
        started,
        "target/maestro-bench-pods.md",
    )
}

async fn run_scheduler(
    cli: &Cli,
    maestro_bin: &std::path::Path,
    started: Instant,
) -> anyhow::Result<()> {
    let mut machine =
        machine::Machine::probe(maestro_bin, &cli.etcd, &cli.kubectl, &std::env::temp_dir());
    let cfg = scheduling::SchedulerConfig {
        nodes: cli.sim_nodes,
        pods: cli.sched_pods,
        replicas: cli.replicas,
        clients: cli.clients,
        server_env: cli.maestro_env.clone(),
    };
    let report = scheduling::run(maestro_bin, &cfg, cli.replicas > 0).await?;
    write_suite_report(
        cli,
        &mut machine,
        &scheduling::render(&report, &cfg),
        started,
        "target/maestro-bench-scheduler.md",
    )
}

async fn run_network(
    cli: &Cli,
    maestro_bin: &std::path::Path,
    started: Instant,
) -> anyhow::Result<()> {
    let mut machine =
        machine::Machine::probe(maestro_bin, &cli.etcd, &cli.kubectl, &std::env::temp_dir());
    let cfg = network::NetworkConfig {
        services: cli.net_services,
        endpoints: cli.net_endpoints,
        round_trips: cli.round_trips,
        wrk_seconds: cli.wrk_seconds,
        wrk_connections: cli.wrk_connections,
    };
    let report = network::run(&cfg).await?;
    write_suite_report(
        cli,
        &mut machine,
        &network::render(&report, &cfg),
        started,
        "target/maestro-bench-network.md",
    )
}

/// A suite's report (machine, results, duration): printed and written to `--output`, or to
/// the suite's default file when `--output` was left at the API suite's default.
fn write_suite_report(
    cli: &Cli,
    machine: &mut machine::Machine,
    results: &str,
    started: Instant,
    default_file: &str,
) -> anyhow::Result<()> {
    machine.load_end = machine::load_average();
    let text = format!(
        "{}\n{results}\nRun took {:.0} s.\n",
        machine.markdown(),
        started.elapsed().as_secs_f64(),
    );
    println!("{text}");
    let output = if cli.output == std::path::Path::new("target/maestro-bench.md") {
        PathBuf::from(default_file)
    } else {
        cli.output.clone()
    };
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&output, &text).with_context(|| format!("writing {}", output.display()))?;
    progress(&format!("report written to {}", output.display()));
    Ok(())
}
