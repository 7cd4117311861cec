//! `--suite scheduler`: the control plane at scale on simulated nodes (`maestro agent
//! --simulate`), as kube-scheduler's scheduler_perf measures it.
//!
//! Scheduling throughput, per scenario (plain pods, pods with required anti-affinity, pods with
//! a zone spread constraint): a server started with `--disable-scheduler` gets the simulated
//! nodes and the pods, all pending; it is then restarted with its scheduler, and the
//! `scheduler_pods_bound_total` counter of /metrics is sampled every 20 ms until every pod is
//! bound. Throughput is the pods bound between the first sample that saw a binding and the
//! last one, over that time. Nodes heartbeat through the whole run (the grace period is raised
//! so a restart cannot make them Unknown).
//!
//! Deployment at scale: a Deployment of N replicas created on a fresh server with the
//! simulated nodes; timed from the create until the Deployment reports every replica
//! available (the simulated nodes report the pods Running and Ready), then the server's RSS.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::maestro::{Api, Conn};
use crate::procs::{Server, free_port};

const JSON: &str = "application/json";
const NAMESPACE: &str = "bench-sched";

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub nodes: usize,
    pub pods: usize,
    pub replicas: usize,
    pub clients: usize,
    /// Extra environment for the server (diagnosis, e.g. MALLOC_ARENA_MAX=2).
    pub server_env: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Plain,
    AntiAffinity,
    Spread,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Plain => "plain pods",
            Scenario::AntiAffinity => "required pod anti-affinity (hostname, 10 groups)",
            Scenario::Spread => "topology spread (zone, maxSkew 1, DoNotSchedule)",
        }
    }

    /// A pending pod of this scenario: requests like a small web pod, the scenario's rules.
    fn pod(self, i: usize) -> Value {
        let group = format!("group-{}", i % 10);
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("pod-{i:05}"), "namespace": NAMESPACE,
                "labels": {"app": "bench", "group": group}},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
        });
        match self {
            Scenario::Plain => {}
            Scenario::AntiAffinity => {
                pod["spec"]["affinity"] = json!({"podAntiAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [{
                        "labelSelector": {"matchLabels": {"group": group}},
                        "topologyKey": "kubernetes.io/hostname"}]}});
            }
            Scenario::Spread => {
                pod["spec"]["topologySpreadConstraints"] = json!([{
                    "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"app": "bench"}}}]);
            }
        }
        pod
    }
}

#[derive(Debug, Clone)]
pub struct Throughput {
    pub scenario: &'static str,
    pub pods: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub server_rss_kib: u64,
}

#[derive(Debug, Clone)]
pub struct DeploymentRun {
    pub replicas: usize,
    pub all_bound: f64,
    pub all_available: f64,
    pub server_rss_kib: u64,
    /// Server RSS with the nodes registered, before the Deployment.
    pub nodes_rss_kib: u64,
    pub agent_rss_kib: u64,
}

#[derive(Debug, Clone)]
pub struct SchedulerReport {
    pub registration_seconds: f64,
    pub throughput: Vec<Throughput>,
    pub deployment: Option<DeploymentRun>,
}

/// A server whose data directory outlives restarts.
struct Cluster {
    binary: PathBuf,
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    port: u16,
    server: Option<Server>,
    agent: Option<Server>,
}

impl Cluster {
    fn new(binary: &Path, env: &[(String, String)]) -> anyhow::Result<Cluster> {
        Ok(Cluster {
            binary: binary.to_path_buf(),
            env: env.to_vec(),
            dir: tempfile::Builder::new()
                .prefix("maestro-bench-sched-")
                .tempdir()?,
            port: free_port()?,
            server: None,
            agent: None,
        })
    }

    async fn start_server(&mut self, scheduler: bool) -> anyhow::Result<Api> {
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--api-port", &self.port.to_string(), "--no-agent"])
            // The simulated nodes keep heartbeating, but a restart must not make them Unknown.
            .args(["--node-monitor-grace-period-seconds", "3600"])
            // Room for a /24 per node, as a cluster of this size is configured.
            .args(["--cluster-cidr", "10.128.0.0/9"])
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if !scheduler {
            cmd.arg("--disable-scheduler");
        }
        let log_dir = tempfile::tempdir_in(self.dir.path())?;
        let mut server = Server::spawn("maestro", cmd, log_dir)?;
        let kubeconfig = self.dir.path().join("data/kubeconfig");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            server.check_alive()?;
            if kubeconfig.exists()
                && let Ok(api) = Api::from_kubeconfig(&kubeconfig)
                && let Ok(conn) = api.connect().await
                && conn
                    .expect(StatusCode::OK, Method::GET, "/readyz", "text/plain", None)
                    .await
                    .is_ok()
            {
                self.server = Some(server);
                return Ok(api);
            }
            ensure!(
                Instant::now() < deadline,
                "maestro not ready after 60 s:\n{}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.terminate(Duration::from_secs(10));
        }
    }

    fn start_agent(&mut self, nodes: usize) -> anyhow::Result<()> {
        let token = std::process::Command::new(&self.binary)
            .args(["token", "create", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .output()?;
        ensure!(token.status.success(), "maestro token create failed");
        let token = String::from_utf8(token.stdout)?.trim().to_string();
        let mut cmd = std::process::Command::new(&self.binary);
        cmd.args(["agent", "--simulate", &nodes.to_string()])
            .args(["--server", &format!("https://127.0.0.1:{}", self.port)])
            .args(["--token", &token, "--node-name", "bench"])
            .env("RUST_LOG", "warn");
        let log_dir = tempfile::tempdir_in(self.dir.path())?;
        self.agent = Some(Server::spawn("simulated nodes", cmd, log_dir)?);
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Agent first: it would only retry against a server that is gone.
        self.agent.take();
        self.server.take();
    }
}

async fn get_json(conn: &Conn, path: &str) -> anyhow::Result<Value> {
    let bytes = conn
        .expect(StatusCode::OK, Method::GET, path, JSON, None)
        .await?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Wait until `count` Ready nodes are registered; returns how long it took.
async fn wait_for_nodes(cluster: &mut Cluster, api: &Api, count: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let conn = api.connect().await?;
    loop {
        if let Some(agent) = cluster.agent.as_mut() {
            agent.check_alive()?;
        }
        let nodes = get_json(&conn, "/api/v1/nodes").await?;
        let ready = nodes["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|n| {
                        n["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                    })
                    .count()
            })
            .unwrap_or(0);
        if ready >= count {
            return Ok(started.elapsed().as_secs_f64());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(300),
            "only {ready} of {count} simulated nodes Ready after 300 s"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn create_namespace(conn: &Conn) -> anyhow::Result<()> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    conn.expect(
        StatusCode::CREATED,
        Method::POST,
        "/api/v1/namespaces",
        JSON,
        Some((JSON, Bytes::from(body.to_string()))),
    )
    .await?;
    Ok(())
}

fn bound_counter(metrics: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("scheduler_pods_bound_total "))
        .and_then(|v| v.trim().parse().ok())
}

/// One throughput scenario on a fresh cluster; also returns node registration time.
async fn throughput(
    binary: &Path,
    cfg: &SchedulerConfig,
    scenario: Scenario,
) -> anyhow::Result<(Throughput, f64)> {
    let mut cluster = Cluster::new(binary, &cfg.server_env)?;
    let api = cluster.start_server(false).await?;
    cluster.start_agent(cfg.nodes)?;
    crate::progress(&format!(
        "scheduler: {} simulated nodes registering",
        cfg.nodes
    ));
    let registration = wait_for_nodes(&mut cluster, &api, cfg.nodes).await?;
    let conn = api.connect().await?;
    create_namespace(&conn).await?;
    crate::progress(&format!(
        "scheduler: creating {} pending pods ({})",
        cfg.pods,
        scenario.name()
    ));
    let clients = api.connect_many(cfg.clients).await?;
    crate::stats::drive(clients, cfg.pods, move |c: Conn, i| async move {
        c.expect(
            StatusCode::CREATED,
            Method::POST,
            &format!("/api/v1/namespaces/{NAMESPACE}/pods"),
            JSON,
            Some((JSON, Bytes::from(scenario.pod(i).to_string()))),
        )
        .await
        .map(drop)
    })
    .await?;

    crate::progress("scheduler: restarting the server with its scheduler");
    cluster.stop_server();
    let api = cluster.start_server(true).await?;
    let conn = api.connect().await?;
    let mut first: Option<(Instant, u64)> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let last = loop {
        let text = conn
            .expect(StatusCode::OK, Method::GET, "/metrics", "text/plain", None)
            .await?;
        let now = Instant::now();
        let bound = bound_counter(&String::from_utf8_lossy(&text))
            .context("no scheduler_pods_bound_total in /metrics")?;
        if bound > 0 && first.is_none() {
            first = Some((now, bound));
        }
        if bound as usize >= cfg.pods {
            break now;
        }
        if now > deadline {
            bail!("only {bound} of {} pods bound after 600 s", cfg.pods);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (start, already) = first.expect("set before the last sample");
    let seconds = last.duration_since(start).as_secs_f64().max(0.02);
    let counted = cfg.pods as u64 - already;
    let server_rss_kib = cluster
        .server
        .as_ref()
        .map(|s| s.rss_kib())
        .transpose()?
        .unwrap_or(0);
    Ok((
        Throughput {
            scenario: scenario.name(),
            pods: cfg.pods,
            seconds,
            per_second: counted as f64 / seconds,
            server_rss_kib,
        },
        registration,
    ))
}

/// A Deployment of `replicas` on the simulated nodes, from create to all available.
async fn deployment(binary: &Path, cfg: &SchedulerConfig) -> anyhow::Result<DeploymentRun> {
    let mut cluster = Cluster::new(binary, &cfg.server_env)?;
    let api = cluster.start_server(true).await?;
    cluster.start_agent(cfg.nodes)?;
    wait_for_nodes(&mut cluster, &api, cfg.nodes).await?;
    // Settle, then the memory the nodes alone take.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let nodes_rss_kib = cluster
        .server
        .as_ref()
        .map(|s| s.rss_kib())
        .transpose()?
        .unwrap_or(0);
    let conn = api.connect().await?;
    create_namespace(&conn).await?;
    let body = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "scale", "namespace": NAMESPACE},
        "spec": {"replicas": cfg.replicas, "selector": {"matchLabels": {"app": "scale"}},
            "template": {"metadata": {"labels": {"app": "scale"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1",
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}},
    });
    crate::progress(&format!(
        "scheduler: Deployment of {} replicas",
        cfg.replicas
    ));
    let started = Instant::now();
    conn.expect(
        StatusCode::CREATED,
        Method::POST,
        &format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments"),
        JSON,
        Some((JSON, Bytes::from(body.to_string()))),
    )
    .await?;
    let mut all_bound = None;
    loop {
        let text = conn
            .expect(StatusCode::OK, Method::GET, "/metrics", "text/plain", None)
            .await?;
        if all_bound.is_none()
            && bound_counter(&String::from_utf8_lossy(&text)).unwrap_or(0) as usize >= cfg.replicas
        {
            all_bound = Some(started.elapsed().as_secs_f64());
        }
        let d = get_json(
            &conn,
            &format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/scale"),
        )
        .await?;
        if d["status"]["availableReplicas"].as_u64().unwrap_or(0) as usize >= cfg.replicas {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(900),
            "Deployment not available after 900 s: {}",
            d["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_available = started.elapsed().as_secs_f64();
    // Let the last status writes settle before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(server) = cluster.server.as_ref() {
        crate::progress(&format!(
            "scheduler: server {} KiB RSS, {} KiB anonymous",
            server.rss_kib()?,
            crate::procs::status_kib(server.pid(), "RssAnon:")?
        ));
    }
    Ok(DeploymentRun {
        replicas: cfg.replicas,
        all_bound: all_bound.unwrap_or(all_available),
        all_available,
        server_rss_kib: cluster
            .server
            .as_ref()
            .map(|s| s.rss_kib())
            .transpose()?
            .unwrap_or(0),
        nodes_rss_kib,
        agent_rss_kib: cluster
            .agent
            .as_ref()
            .map(|s| s.rss_kib())
            .transpose()?
            .unwrap_or(0),
    })
}

pub async fn run(
    binary: &Path,
    cfg: &SchedulerConfig,
    deployment_too: bool,
) -> anyhow::Result<SchedulerReport> {
    let mut report = SchedulerReport {
        registration_seconds: 0.0,
        throughput: Vec::new(),
        deployment: None,
    };
    let scenarios = if cfg.pods == 0 {
        Vec::new()
    } else {
        vec![Scenario::Plain, Scenario::AntiAffinity, Scenario::Spread]
    };
    for scenario in scenarios {
        let (result, registration) = throughput(binary, cfg, scenario).await?;
        crate::progress(&format!(
            "scheduler: {}: {:.0} pods/s ({} pods in {:.2} s)",
            result.scenario, result.per_second, result.pods, result.seconds
        ));
        report.registration_seconds = report.registration_seconds.max(registration);
        report.throughput.push(result);
    }
    if deployment_too {
        let run = deployment(binary, cfg).await?;
        crate::progress(&format!(
            "scheduler: Deployment of {}: all bound {:.1} s, all available {:.1} s, server RSS {} MiB",
            run.replicas,
            run.all_bound,
            run.all_available,
            run.server_rss_kib / 1024
        ));
        report.deployment = Some(run);
    }
    Ok(report)
}

pub fn render(report: &SchedulerReport, cfg: &SchedulerConfig) -> String {
    let mut out = format!(
        "## Scheduling at scale ({} simulated nodes)\n\nNode registration: {} simulated nodes Ready after {:.1} s.\n\n| scenario | pods | time to bind all | pods bound/s | server RSS after |\n|---|---|---|---|---|\n",
        cfg.nodes, cfg.nodes, report.registration_seconds
    );
    for t in &report.throughput {
        out.push_str(&format!(
            "| {} | {} | {:.2} s | {:.0} | {:.0} MiB |\n",
            t.scenario,
            t.pods,
            t.seconds,
            t.per_second,
            t.server_rss_kib as f64 / 1024.0
        ));
    }
    if let Some(d) = &report.deployment {
        out.push_str(&format!(
            "\nDeployment of {} replicas on {} simulated nodes: every pod bound after {:.1} s, every replica available after {:.1} s; control-plane RSS then {:.0} MiB ({:.0} MiB with the nodes alone, before the Deployment; simulated-node process {:.0} MiB).\n",
            d.replicas,
            cfg.nodes,
            d.all_bound,
            d.all_available,
            d.server_rss_kib as f64 / 1024.0,
            d.nodes_rss_kib as f64 / 1024.0,
            d.agent_rss_kib as f64 / 1024.0
        ));
    }
    out
}
