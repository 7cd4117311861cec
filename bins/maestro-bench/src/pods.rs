//! The node benchmark (`--suite pods`): how long a pod takes from its create request to Running
//! when its image is already on the node, for one pod at a time and for bursts of pods created
//! together; the same image started by `docker run -d` and `podman run -d` in the same run; and
//! the agent's memory idle and with a burst's pods running.
//!
//! Everything runs on this machine: a private `docker-registry` on 127.0.0.1 holds the image (a
//! busybox-static root built here), maestro's control plane runs with `--no-agent` and a separate
//! `maestro agent` process joins it, so the agent's RSS is its own. The node is isolated like the
//! e2e nodes (own run dir, cgroup root, bridge, pod CIDR) and removed afterwards, as are dockerd's
//! and podman's private roots.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use maestro_e2e::image::ImageBuilder;
use maestro_e2e::node::NodeSandbox;
use maestro_e2e::registry::{Registry, RegistryAuth};
use maestro_e2e::{Cluster, Kubectl};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::maestro::{Api, Conn};
use crate::procs::{Server, status_kib};
use crate::progress;
use crate::stats::Samples;

const NAMESPACE: &str = "default";
const JSON: &str = "application/json";

/// What the node benchmark measures.
#[derive(Debug, Clone)]
pub struct PodsConfig {
    /// Sequential single-pod starts per runtime.
    pub single: usize,
    /// Pods per burst.
    pub burst: usize,
    /// Bursts per runtime.
    pub bursts: usize,
    /// OCI runtimes the agent is measured with (`runc`, `crun`).
    pub runtimes: Vec<String>,
    /// Also measure `docker run` and `podman run` (installed from Debian when missing).
    pub peers: bool,
}

/// One runtime's figures.
#[derive(Debug, Default)]
pub struct NodeResults {
    pub runtime: String,
    pub single: Samples,
    /// Each pod's create-to-Running time within its burst.
    pub burst_pods: Samples,
    /// From the first create of a burst to its last pod Running.
    pub burst_all: Samples,
    /// From the first create of a burst to its last pod bound to the node by the scheduler.
    pub burst_bound: Samples,
    /// Right after the node registered, before any pod.
    pub agent_rss_fresh_kib: u64,
    /// After the first pod ran and was deleted.
    pub agent_rss_idle_kib: u64,
    pub agent_rss_busy_kib: u64,
    /// The anonymous (heap and stacks) part of the idle and busy RSS; the rest is the binary's
    /// code, shared with every other maestro process on the node.
    pub agent_anon_idle_kib: u64,
    pub agent_anon_busy_kib: u64,
    /// Mean proportional set size (PSS) of the per-container shims with a burst running: the
    /// shims share the maestro binary's pages, so their RSS would count those once per shim.
    pub shim_pss_kib: u64,
}

#[derive(Debug, Default)]
pub struct PodsReport {
    pub nodes: Vec<NodeResults>,
    pub docker: Option<Samples>,
    pub podman: Option<Samples>,
    pub image: String,
}

pub async fn run(maestro: &Path, cfg: &PodsConfig) -> anyhow::Result<PodsReport> {
    let dir = tempfile::Builder::new()
        .prefix("maestro-bench-pods-")
        .tempdir()?;
    let registry = Registry::start(&dir.path().join("registry"), &RegistryAuth::None)?;
    let built = ImageBuilder::busybox()
        .cmd(["sleep", "3600"])
        .build(&dir.path().join("layout"), "1")?;
    let image = registry.push_image(&built, "bench:1")?;
    progress(&format!("image {image} pushed"));
    let mut report = PodsReport {
        image: image.clone(),
        ..Default::default()
    };
    for runtime in &cfg.runtimes {
        report
            .nodes
            .push(node(maestro, runtime, &image, cfg).await?);
    }
    if cfg.peers {
        report.docker = Some(docker(dir.path(), &image, cfg.single).await?);
        report.podman = Some(podman(dir.path(), &image, cfg.single).await?);
    }
    Ok(report)
}

/// The control plane plus a joined agent using `runtime`, measured.
async fn node(
    maestro: &Path,
    runtime: &str,
    image: &str,
    cfg: &PodsConfig,
) -> anyhow::Result<NodeResults> {
    let maestro_str = maestro.to_str().context("maestro path is not UTF-8")?;
    // The agent runs in the machine's own network namespace: its service range and proxy
    // table are the sandbox's, removed afterwards.
    let service_cidr = "10.254.0.0/16";
    let cluster = Cluster::start_with(
        maestro_str,
        Kubectl::v1_33(),
        &[
            "--cluster-cidr",
            "10.253.0.0/16",
            "--service-cidr",
            service_cidr,
        ],
    );
    let mut sandbox = NodeSandbox::new(
        cluster.dir.path(),
        &cluster.dir.path().join("agent"),
        cluster.port,
    );
    sandbox.service_cidr = Some(service_cidr.into());
    // The sandbox is removed even if a step below fails.
    let _cleanup = SandboxGuard(sandbox.clone());
    let token = String::from_utf8(
        Command::new(maestro)
            .args(["token", "create", "--data-dir"])
            .arg(cluster.data_dir())
            .output()?
            .stdout,
    )?
    .trim()
    .to_string();
    ensure!(!token.is_empty(), "maestro token create printed nothing");
    let agent_dir = tempfile::Builder::new()
        .prefix("maestro-bench-agent-")
        .tempdir()?;
    let mut cmd = Command::new(maestro);
    cmd.arg("agent")
        .args(["--server", &cluster.server_url(), "--token", &token])
        .args(["--node-name", "bench", "--data-dir"])
        .arg(&sandbox.agent_data)
        .args(["--agent-port", "0", "--container-runtime", runtime])
        .arg("--run-dir")
        .arg(&sandbox.run_dir)
        .args(["--cgroup-root", &sandbox.cgroup_root])
        .args(["--bridge", &sandbox.bridge])
        .args(sandbox.agent_network_args())
        .env("RUST_LOG", "warn");
    let mut agent = Server::spawn("maestro agent", cmd, agent_dir)?;

    let api = Api::from_kubeconfig(&cluster.kubeconfig())?;
    let conn = api.connect().await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        agent.check_alive()?;
        let nodes: Value = serde_json::from_slice(
            &conn
                .expect(StatusCode::OK, Method::GET, "/api/v1/nodes", JSON, None)
                .await?,
        )?;
        let ready = nodes["items"].as_array().is_some_and(|items| {
            items.iter().any(|n| {
                n["spec"]["podCIDR"].is_string()
                    && n["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            })
        });
        if ready {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the agent did not register:\n{}",
            agent.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress(&format!("{runtime}: node ready"));

    tokio::time::sleep(Duration::from_secs(3)).await;
    let agent_rss_fresh_kib = agent.rss_kib()?;
    let watch = Watch::start(&api).await?;
    // The first pod pulls the image; it is not measured.
    start_pods(&conn, &watch, image, "warm", 1).await?;
    delete_all(&conn, &sandbox).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut results = NodeResults {
        runtime: runtime.to_string(),
        agent_rss_fresh_kib,
        agent_rss_idle_kib: agent.rss_kib()?,
        agent_anon_idle_kib: status_kib(agent.pid(), "RssAnon:")?,
        ..Default::default()
    };

    for i in 0..cfg.single {
        let started = start_pods(&conn, &watch, image, &format!("one{i}"), 1).await?;
        results.single.extend(started.latencies);
        delete_all(&conn, &sandbox).await?;
    }
    progress(&format!(
        "{runtime}: single pod p50 {:.0} ms",
        results.single.p50()
    ));
    for b in 0..cfg.bursts {
        // The kernel frees the previous pods' cgroups and namespaces in the background: start
        // each burst on a settled node.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let started = start_pods(&conn, &watch, image, &format!("b{b}-"), cfg.burst).await?;
        let all = started.all;
        results.burst_pods.extend(started.latencies);
        results.burst_all.push(all);
        results.burst_bound.push(started.all_bound);
        if b == 0 {
            // Memory with the burst running, after the agent settled (status writes done).
            tokio::time::sleep(Duration::from_secs(5)).await;
            results.agent_rss_busy_kib = agent.rss_kib()?;
            results.agent_anon_busy_kib = status_kib(agent.pid(), "RssAnon:")?;
            results.shim_pss_kib = shim_pss_kib(&sandbox.run_dir)?;
        }
        delete_all(&conn, &sandbox).await?;
        progress(&format!(
            "{runtime}: burst {b}: all {} Running in {:.0} ms (all bound after {:.0} ms)",
            cfg.burst,
            all.as_secs_f64() * 1e3,
            started.all_bound.as_secs_f64() * 1e3
        ));
    }
    drop(watch);
    drop(agent);
    drop(cluster);
    Ok(results)
}

/// Removes the node's containers, mounts, cgroups and bridge.
struct SandboxGuard(NodeSandbox);

impl Drop for SandboxGuard {
    fn drop(&mut self) {
        self.0.cleanup();
    }
}

/// When each pod was first seen bound to the node, and Running with every container running.
struct Watch {
    scheduled: Arc<Mutex<HashMap<String, Instant>>>,
    running: Arc<Mutex<HashMap<String, Instant>>>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    async fn start(api: &Api) -> anyhow::Result<Watch> {
        let conn = api.connect().await?;
        let resp = conn
            .send(
                Method::GET,
                &format!("/api/v1/namespaces/{NAMESPACE}/pods?watch=1&allowWatchBookmarks=false"),
                JSON,
                None,
            )
            .await?;
        ensure!(resp.status() == StatusCode::OK, "watch: {}", resp.status());
        let running = Arc::new(Mutex::new(HashMap::new()));
        let scheduled = Arc::new(Mutex::new(HashMap::new()));
        let changed = Arc::new(Notify::new());
        let task = tokio::spawn({
            let running = running.clone();
            let scheduled = scheduled.clone();
            let changed = changed.clone();
            async move {
                let _conn = conn;
                let mut body = resp.into_body();
                let mut buffer: Vec<u8> = Vec::new();
                while let Some(Ok(frame)) = body.frame().await {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let seen = Instant::now();
                    buffer.extend_from_slice(&data);
                    while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                            continue;
                        };
                        let pod = &event["object"];
                        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
                        if event["type"] != "DELETED" && pod["spec"]["nodeName"].is_string() {
                            scheduled
                                .lock()
                                .expect("watch map")
                                .entry(name.to_string())
                                .or_insert(seen);
                        }
                        if event["type"] != "DELETED" && pod_running(pod) {
                            running
                                .lock()
                                .expect("watch map")
                                .entry(name.to_string())
                                .or_insert(seen);
                        }
                    }
                    changed.notify_waiters();
                }
            }
        });
        Ok(Watch {
            scheduled,
            running,
            changed,
            task,
        })
    }

    fn bound(&self, name: &str) -> Option<Instant> {
        self.scheduled.lock().expect("watch map").get(name).copied()
    }

    fn seen(&self, name: &str) -> Option<Instant> {
        self.running.lock().expect("watch map").get(name).copied()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn pod_running(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|cs| {
                !cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object())
            })
}

fn pod_json(name: &str, image: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent"}]
        }
    })
    .to_string()
}

/// Creates `count` pods at once (`prefix0`, `prefix1`, ...) and waits until all are Running.
/// Returns each pod's create-to-Running time and the time until the last one ran.
async fn start_pods(
    conn: &Conn,
    watch: &Watch,
    image: &str,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Started> {
    let names: Vec<String> = if count == 1 {
        vec![prefix.to_string()]
    } else {
        (0..count).map(|i| format!("{prefix}{i}")).collect()
    };
    let burst_started = Instant::now();
    // All creates go out at once; every pod's latency counts from the burst's start (for a
    // single pod, from its create request).
    let mut creates = tokio::task::JoinSet::new();
    for name in &names {
        let conn = conn.clone();
        let body = Bytes::from(pod_json(name, image));
        creates.spawn(async move {
            conn.expect(
                StatusCode::CREATED,
                Method::POST,
                &format!("/api/v1/namespaces/{NAMESPACE}/pods"),
                JSON,
                Some((JSON, body)),
            )
            .await
        });
    }
    while let Some(done) = creates.join_next().await {
        done??;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let notified = watch.changed.notified();
        if names.iter().all(|n| watch.seen(n).is_some()) {
            break;
        }
        if Instant::now() > deadline {
            let missing: Vec<&String> = names.iter().filter(|n| watch.seen(n).is_none()).collect();
            bail!("pods not Running after 120 s: {missing:?}");
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), notified).await;
    }
    let mut started = Started::default();
    let mut last = burst_started;
    let mut last_bound = burst_started;
    for name in &names {
        let seen = watch.seen(name).expect("checked above");
        started.latencies.push(seen.duration_since(burst_started));
        last = last.max(seen);
        last_bound = last_bound.max(watch.bound(name).unwrap_or(seen));
    }
    started.all = last.duration_since(burst_started);
    started.all_bound = last_bound.duration_since(burst_started);
    Ok(started)
}

/// What [`start_pods`] measured.
#[derive(Default)]
struct Started {
    /// Each pod's create-to-Running time.
    latencies: Samples,
    /// Until the last pod ran.
    all: Duration,
    /// Until the scheduler had bound the last pod.
    all_bound: Duration,
}

/// Deletes every pod and waits until the node has removed their containers.
async fn delete_all(conn: &Conn, sandbox: &NodeSandbox) -> anyhow::Result<()> {
    conn.expect(
        StatusCode::OK,
        Method::DELETE,
        &format!("/api/v1/namespaces/{NAMESPACE}/pods"),
        JSON,
        None,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pods: Value = serde_json::from_slice(
            &conn
                .expect(
                    StatusCode::OK,
                    Method::GET,
                    &format!("/api/v1/namespaces/{NAMESPACE}/pods"),
                    JSON,
                    None,
                )
                .await?,
        )?;
        let left = pods["items"].as_array().map_or(0, Vec::len);
        if left == 0 && sandbox.containers().is_empty() {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{left} pods still there after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Mean PSS of the shims (one per container) under `run_dir`.
fn shim_pss_kib(run_dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut count = 0;
    for entry in std::fs::read_dir(run_dir.join("containers"))? {
        let pid_file = entry?.path().join("shim.pid");
        let Ok(pid) = std::fs::read_to_string(&pid_file) else {
            continue;
        };
        if let Some(kib) = pss_of(pid.trim()) {
            total += kib;
            count += 1;
        }
    }
    ensure!(count > 0, "no shim found under {}", run_dir.display());
    Ok(total / count)
}

fn pss_of(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/// Installs Debian packages that are missing (the peers are only needed here).
fn ensure_packages(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    progress(&format!("apt-get install {}", missing.join(" ")));
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()?;
    ensure!(status.success(), "apt-get install {missing:?} failed");
    Ok(())
}

/// Runs a command to completion, failing with its output.
fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Times `start` (a detached run of the image's `sleep`) `samples` times, removing each
/// container untimed before the next.
fn time_runs(
    samples: usize,
    mut start: impl FnMut(&str) -> Command,
    mut remove: impl FnMut(&str) -> Command,
) -> anyhow::Result<Samples> {
    let mut out = Samples::default();
    // One untimed run warms caches, as the pod benchmark's first pod does.
    for i in 0..=samples {
        let name = format!("bench{i}");
        let began = Instant::now();
        run_ok(&mut start(&name))?;
        if i > 0 {
            out.push(began.elapsed());
        }
        run_ok(&mut remove(&name))?;
    }
    Ok(out)
}

/// dockerd with private roots and no iptables, its bridge on a private range.
async fn docker(dir: &Path, image: &str, samples: usize) -> anyhow::Result<Samples> {
    ensure_packages(&["docker.io"])?;
    let root = dir.join("docker");
    std::fs::create_dir_all(&root)?;
    let socket = format!("unix://{}", root.join("docker.sock").display());
    let bridge_existed = Path::new("/sys/class/net/docker0").exists();
    let mut cmd = Command::new("dockerd");
    cmd.arg("--data-root")
        .arg(root.join("data"))
        .arg("--exec-root")
        .arg(root.join("exec"))
        .arg("--pidfile")
        .arg(root.join("dockerd.pid"))
        .args(["-H", &socket, "--iptables=false", "--ip6tables=false"])
        .args(["--bip", "10.254.254.1/24", "--storage-driver", "overlay2"]);
    let daemon = Server::spawn(
        "dockerd",
        cmd,
        tempfile::Builder::new()
            .prefix("bench-dockerd-")
            .tempdir()?,
    )?;
    // Debian's client beside Debian's daemon (another docker may come first on PATH).
    let client = ["/usr/bin/docker", "docker"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("docker");
    let docker = |args: &[&str]| {
        let mut c = Command::new(client);
        c.args(["-H", &socket]).args(args);
        c
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !docker(&["info"]).output().is_ok_and(|o| o.status.success()) {
        ensure!(
            Instant::now() < deadline,
            "dockerd did not start:\n{}",
            daemon.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = (|| {
        run_ok(&mut docker(&["pull", "-q", image]))?;
        time_runs(
            samples,
            |name| docker(&["run", "-d", "--name", name, image]),
            |name| docker(&["rm", "-f", name]),
        )
    })();
    progress("docker measured");
    // Whatever a failed step left running goes before the daemon does.
    if let Ok(ids) = run_ok(&mut docker(&["ps", "-aq"])) {
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = docker(&["rm", "-f"]).args(&ids).output();
        }
    }
    daemon.terminate(Duration::from_secs(20));
    if !bridge_existed {
        let _ = Command::new("ip").args(["link", "del", "docker0"]).output();
    }
    // Containerd's shims and mounts live under the private roots: unmount what is left.
    unmount_below(&root);
    result
}

/// podman with private storage, cgroupfs and file events (no systemd here), no network.
async fn podman(dir: &Path, image: &str, samples: usize) -> anyhow::Result<Samples> {
    ensure_packages(&["podman"])?;
    let root = dir.join("podman");
    std::fs::create_dir_all(&root)?;
    let conf = root.join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
         [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
    )?;
    let storage: PathBuf = root.join("storage");
    let run_root: PathBuf = root.join("run");
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &conf)
            .arg("--root")
            .arg(&storage)
            .arg("--runroot")
            .arg(&run_root)
            .args(["--storage-driver", "overlay"])
            .args(args);
        c
    };
    let result = (|| {
        run_ok(&mut podman(&["pull", "-q", "--tls-verify=false", image]))?;
        time_runs(
            samples,
            |name| podman(&["run", "-d", "--network", "none", "--name", name, image]),
            |name| podman(&["rm", "-f", "-t", "0", name]),
        )
    })();
    progress("podman measured");
    let _ = podman(&["system", "reset", "-f"]).output();
    unmount_below(&root);
    result
}

/// Lazily unmounts every mount point under `dir` (deepest first).
fn unmount_below(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(p).output();
    }
}

/// The markdown section for docs/benchmarks.md.
pub fn render(report: &PodsReport, cfg: &PodsConfig) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Image `{}` (busybox-static, `sleep 3600`), present on the node before timing.\n\n",
        report.image
    ));
    out.push_str("| system | single start p50 | p99 | burst: each pod p50 | p99 | burst: all Running (median of bursts) | burst: all bound by the scheduler |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for node in &report.nodes {
        out.push_str(&format!(
            "| maestro pod ({}) | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms (max {:.0}) | {:.0} ms |\n",
            node.runtime,
            node.single.p50(),
            node.single.p99(),
            node.burst_pods.p50(),
            node.burst_pods.p99(),
            node.burst_all.p50(),
            node.burst_all.max(),
            node.burst_bound.p50(),
        ));
    }
    for (name, samples) in [
        ("`docker run -d` (bridge network)", &report.docker),
        ("`podman run -d --network none`", &report.podman),
    ] {
        if let Some(s) = samples {
            out.push_str(&format!(
                "| {name} | {:.0} ms | {:.0} ms | | | | |\n",
                s.p50(),
                s.p99()
            ));
        }
    }
    out.push_str(&format!(
        "\n{} single starts and {} bursts of {} pods per runtime.\n\n",
        cfg.single, cfg.bursts, cfg.burst
    ));
    out.push_str("| agent (`maestro agent` process) | RSS registered, no pod yet | RSS idle after a pod ran (anonymous) | RSS with a burst running (anonymous) | per pod | shim per container (PSS) |\n|---|---|---|---|---|---|\n");
    for node in &report.nodes {
        let per_pod = node
            .agent_rss_busy_kib
            .saturating_sub(node.agent_rss_idle_kib) as f64
            / cfg.burst.max(1) as f64;
        out.push_str(&format!(
            "| {} | {:.1} MiB | {:.1} MiB ({:.1}) | {:.1} MiB ({:.1}) | {:.2} MiB | {:.1} MiB |\n",
            node.runtime,
            node.agent_rss_fresh_kib as f64 / 1024.0,
            node.agent_rss_idle_kib as f64 / 1024.0,
            node.agent_anon_idle_kib as f64 / 1024.0,
            node.agent_rss_busy_kib as f64 / 1024.0,
            node.agent_anon_busy_kib as f64 / 1024.0,
            per_pod / 1024.0,
            node.shim_pss_kib as f64 / 1024.0,
        ));
    }
    out
}
