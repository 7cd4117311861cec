//! Helpers shared by the end-to-end suites: start the real `maestro` binary on a free port with
//! its own data directory, run real clients (kubectl of several versions) against it, and stop
//! it (gracefully or with SIGKILL) by the PID we started. Pods get their images from a private
//! registry ([`registry`]) fed with small busybox images ([`image`]), optionally carrying the
//! static in-container checker ([`checker`]).
//!
//! This crate depends on no maestro crate, so maestro's own crates can use it in their tests.

pub mod browser;
pub mod checker;
pub mod hosts;
pub mod image;
pub mod node;
pub mod registry;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Runs `cmd` to completion; its stdout, or an error carrying the command and both streams.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The suites live in the `maestro` package, so cargo builds the binary before running them and
/// names it in `CARGO_BIN_EXE_maestro`; each suite passes that path to [`Cluster::start`].
fn check_binary(path: &Path) -> PathBuf {
    assert!(
        path.exists(),
        "maestro binary not found at {}",
        path.display()
    );
    path.to_path_buf()
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral port")
}

/// A kubectl binary of a given version.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub path: PathBuf,
    pub version: String,
}

impl Kubectl {
    /// kubectl 1.33 from the machine image (next to the `kubectl` on PATH).
    pub fn v1_33() -> Kubectl {
        let on_path = which("kubectl").expect("kubectl is on PATH");
        let real = std::fs::canonicalize(&on_path).unwrap_or(on_path);
        let path = real
            .parent()
            .expect("kubectl has a folder")
            .join("kubectl.1.33");
        assert!(path.exists(), "{} is missing", path.display());
        Kubectl {
            path,
            version: "1.33".into(),
        }
    }

    /// kubectl 1.34, fetched by `scripts/fetch-kubectl-1.34` into `$KUBECTL_1_34` or .tmp/tools.
    pub fn v1_34() -> Kubectl {
        let path = std::env::var("KUBECTL_1_34")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tmp/tools/kubectl-1.34")
            });
        assert!(
            path.exists(),
            "kubectl 1.34 not found at {}: run scripts/fetch-kubectl-1.34 or set KUBECTL_1_34",
            path.display()
        );
        Kubectl {
            path,
            version: "1.34".into(),
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.exists())
}

/// A running maestro server owned by the test.
#[derive(Debug)]
pub struct Cluster {
    binary: PathBuf,
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub kubectl: Kubectl,
    extra_args: Vec<String>,
    /// Set when the server runs its node agent (see [`Cluster::start_node`]).
    pub node: Option<node::NodeSandbox>,
}

impl Cluster {
    /// Start a control plane (no node agent) from `binary` and wait until it is ready.
    pub fn start(binary: &str, kubectl: Kubectl) -> Cluster {
        Self::start_with(binary, kubectl, &[])
    }

    pub fn start_with(binary: &str, kubectl: Kubectl, extra_args: &[&str]) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("maestro-e2e-")
            .tempdir()
            .expect("temp dir");
        let mut cluster = Cluster {
            binary: check_binary(Path::new(binary)),
            child: None,
            dir,
            port: free_port(),
            kubectl,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            node: None,
        };
        cluster.launch().expect("starting maestro");
        cluster
    }

    /// Start a server with its embedded node agent (a single-node cluster that runs pods),
    /// isolated in a [`node::NodeSandbox`] that is cleaned up when the cluster is dropped.
    pub fn start_node(binary: &str, kubectl: Kubectl, extra_args: &[&str]) -> Cluster {
        Self::start_node_in(binary, kubectl, extra_args, |_| {})
    }

    /// [`Cluster::start_node`] with the ingress controller on, on free ports (HTTP, HTTPS,
    /// metrics: `cluster.node.ingress_ports`).
    pub fn start_node_with_ingress(binary: &str, kubectl: Kubectl, extra_args: &[&str]) -> Cluster {
        Self::start_node_in(binary, kubectl, extra_args, |sandbox| {
            sandbox.ingress_ports = Some([free_port(), free_port(), free_port()]);
        })
    }

    fn start_node_in(
        binary: &str,
        kubectl: Kubectl,
        extra_args: &[&str],
        customize: impl FnOnce(&mut node::NodeSandbox),
    ) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("maestro-e2e-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let mut sandbox = node::NodeSandbox::new(dir.path(), &dir.path().join("data"), port);
        customize(&mut sandbox);
        let mut args = sandbox.args();
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let mut cluster = Cluster {
            binary: check_binary(Path::new(binary)),
            child: None,
            dir,
            port,
            kubectl,
            extra_args: args,
            node: Some(sandbox),
        };
        cluster.launch().expect("starting maestro");
        cluster
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))?;
        let child = Command::new(&self.binary)
            .arg("server")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--api-port")
            .arg(self.port.to_string())
            .args(self.node.is_none().then_some("--no-agent"))
            .args(&self.extra_args)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("spawning maestro")?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig")
    }

    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("admin.token"))
            .expect("admin token")
            .trim()
            .to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("maestro exited with {status}:\n{}", self.log());
            }
            if self.kubeconfig().exists() {
                let out = self.run(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return Ok(());
                }
            }
            if start.elapsed() > limit {
                bail!("maestro not ready after {limit:?}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Run kubectl with this cluster's kubeconfig and a private cache dir.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(&self.kubectl.path);
        cmd.env("KUBECONFIG", self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawning kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("writing stdin");
        }
        child.wait_with_output().expect("waiting for kubectl")
    }

    /// Run kubectl and return stdout, panicking with both streams on failure.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_stdin(args, None)
    }

    #[track_caller]
    pub fn ok_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run_with_stdin(args, stdin);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl {} {:?} failed:\nstdout: {stdout}\nstderr: {}",
            self.kubectl.version,
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Run kubectl expecting failure; returns stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run_with_stdin(args, stdin);
        assert!(
            !out.status.success(),
            "kubectl {:?} should have failed:\n{}",
            args,
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    /// `kubectl get -o json` parsed.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["-o", "json"]);
        let out = self.ok(&full);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("kubectl output is not JSON ({e}): {out}"))
    }

    /// Stop the server with SIGKILL (no chance to flush anything).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same data directory and port.
    pub fn restart(&mut self) {
        self.kill9();
        self.launch().expect("restarting maestro");
    }

    /// The pods of `namespace` matching `selector` that are not being deleted (none when the
    /// list fails).
    pub fn live_pods(&self, namespace: &str, selector: &str) -> Vec<serde_json::Value> {
        let out = self.run(&["get", "pods", "-n", namespace, "-l", selector, "-o", "json"]);
        let Ok(list) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
            return Vec::new();
        };
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .cloned()
            .collect()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill9();
        if let Some(node) = &self.node {
            node.cleanup();
        }
    }
}

/// Poll `check` until it returns true or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// Counts the Ready pods of a label selector with kubectl in the background until stopped, for
/// tests that assert availability never drops during a rollout or a drain.
pub struct ReadyWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl ReadyWatch {
    pub fn start(cluster: &Cluster, selector: &str) -> ReadyWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (kubectl, kubeconfig, selector) = (
            cluster.kubectl.path.clone(),
            cluster.kubeconfig(),
            selector.to_string(),
        );
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut lowest = usize::MAX;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok(out) = Command::new(&kubectl)
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["get", "pods", "-l", &selector, "-o", "json"])
                    .output()
                else {
                    continue;
                };
                if let Ok(list) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                    let ready = list["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|p| {
                            p["status"]["conditions"].as_array().is_some_and(|cs| {
                                cs.iter()
                                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                            })
                        })
                        .count();
                    lowest = lowest.min(ready);
                }
            }
            lowest
        });
        ReadyWatch { stop, thread }
    }

    /// Stop watching: the lowest count seen.
    pub fn lowest(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("the watch thread")
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The status of condition `kind` of an object.
pub fn condition<'a>(object: &'a serde_json::Value, kind: &str) -> Option<&'a str> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)?["status"]
        .as_str()
}
