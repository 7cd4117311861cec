//! Real etcd servers for tests: each [`EtcdServer`] or [`EtcdCluster`] runs its own `etcd`
//! processes on loopback ports with a private data directory, and kills them by PID when dropped
//! (also when a test panics).
//!
//! The binary is `etcd` from `PATH` (Debian's `etcd-server` package, which `scripts/test`
//! installs) or `$MAESTRO_ETCD_BIN`. A missing binary fails the test with that advice: tests of
//! the HA backend must not pass silently without it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

/// How long a new etcd may take to elect a leader and answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts with fresh ports, for when another process takes a port between our probe and etcd.
const START_ATTEMPTS: usize = 3;

fn etcd_binary() -> String {
    std::env::var("MAESTRO_ETCD_BIN").unwrap_or_else(|_| "etcd".to_string())
}

/// Panics with installation advice when the etcd binary cannot be run.
fn check_installed(bin: &str) {
    let found = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "etcd is not installed (could not run `{bin} --version`): the etcd backend tests need a \
         real etcd. Install Debian's package with `apt-get install -y etcd-server` (scripts/test \
         does) or point MAESTRO_ETCD_BIN at an etcd binary."
    );
}

/// Free loopback ports, all probed at once so that they differ from each other.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

/// A scratch directory, in memory when `/dev/shm` exists: etcd fsyncs every commit.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("maestro-etcd")
            .tempdir_in(shm)
    {
        return dir;
    }
    tempfile::Builder::new()
        .prefix("maestro-etcd")
        .tempdir()
        .expect("create a temporary directory")
}

/// One etcd process.
struct Member {
    name: String,
    client_url: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Member {
    fn spawn(
        dir: &Path,
        name: &str,
        client_port: u16,
        peer_port: u16,
        initial_cluster: &str,
        timing: (u32, u32),
    ) -> Member {
        let bin = etcd_binary();
        let data_dir = dir.join(format!("{name}.etcd"));
        let log = dir.join(format!("{name}.log"));
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let log_file = std::fs::File::create(&log).expect("create the etcd log file");
        let child = Command::new(&bin)
            .arg("--name")
            .arg(name)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "maestro-test"])
            // Short raft timings: quick elections on an otherwise idle loopback.
            .args(["--heartbeat-interval", &timing.0.to_string()])
            .args(["--election-timeout", &timing.1.to_string()])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log file"))
            .stderr(log_file)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(err) => {
                check_installed(&bin);
                panic!("could not start {bin}: {err}");
            }
        };
        Member {
            name: name.to_string(),
            client_url,
            log,
            child: Some(child),
        }
    }

    /// The last lines of the member's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Whether the process has exited.
    fn exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill sends SIGKILL to this PID only.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a linearizable read through `url` succeeds, i.e. the member has a leader.
async fn healthy(url: &str) -> bool {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(300))
        .with_timeout(Duration::from_millis(1000));
    let probe = async {
        let mut client = Client::connect([url], Some(opts)).await.ok()?;
        client.get("health", None).await.ok()
    };
    tokio::time::timeout(Duration::from_millis(1500), probe)
        .await
        .ok()
        .flatten()
        .is_some()
}

/// A cluster of etcd members on loopback (one member for [`EtcdServer`]).
pub struct EtcdCluster {
    members: Vec<Member>,
    /// Kept for the life of the cluster: the members' data and logs.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for EtcdCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdCluster")
            .field("endpoints", &self.endpoints())
            .finish()
    }
}

impl EtcdCluster {
    /// Start `size` members and wait until every one of them serves linearizable reads.
    pub async fn start(size: usize) -> EtcdCluster {
        check_installed(&etcd_binary());
        // A single member can use tighter timings: it has no peers to miss heartbeats from.
        let timing = if size == 1 { (25, 250) } else { (50, 500) };
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(size, timing).await {
                Ok(cluster) => return cluster,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "etcd did not start in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        );
    }

    async fn try_start(size: usize, timing: (u32, u32)) -> Result<EtcdCluster, String> {
        let dir = scratch_dir();
        let ports = free_ports(2 * size);
        let names: Vec<String> = (0..size).map(|i| format!("m{i}")).collect();
        let initial_cluster = names
            .iter()
            .enumerate()
            .map(|(i, name)| format!("{name}=http://127.0.0.1:{}", ports[2 * i + 1]))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Member> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                Member::spawn(
                    dir.path(),
                    name,
                    ports[2 * i],
                    ports[2 * i + 1],
                    &initial_cluster,
                    timing,
                )
            })
            .collect();
        let deadline = Instant::now() + START_TIMEOUT;
        for member in &mut members {
            loop {
                if member.exited() {
                    return Err(format!(
                        "etcd member {} exited:\n{}",
                        member.name,
                        member.log_tail()
                    ));
                }
                if healthy(&member.client_url).await {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "etcd member {} not healthy after {START_TIMEOUT:?}:\n{}",
                        member.name,
                        member.log_tail()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(EtcdCluster { members, _dir: dir })
    }

    /// Client URLs of the members still running.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.client_url.clone())
            .collect()
    }

    /// Client URL of every member, running or killed.
    pub fn all_endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Index of the current leader, as the running members report it.
    pub async fn leader(&self) -> Option<usize> {
        let mut ids = Vec::new();
        let mut leader = None;
        for (i, member) in self.members.iter().enumerate() {
            if member.child.is_none() {
                continue;
            }
            let status = async {
                let mut client = Client::connect([&member.client_url], None).await.ok()?;
                client.status().await.ok()
            };
            if let Ok(Some(status)) = tokio::time::timeout(Duration::from_secs(2), status).await {
                if let Some(header) = status.header() {
                    ids.push((i, header.member_id()));
                }
                if status.leader() != 0 {
                    leader = Some(status.leader());
                }
            }
        }
        let leader = leader?;
        ids.into_iter()
            .find(|(_, id)| *id == leader)
            .map(|(i, _)| i)
    }

    /// Kill member `index` (SIGKILL to its PID).
    pub fn kill(&mut self, index: usize) {
        self.members[index].kill();
    }
}

/// A single-member etcd.
#[derive(Debug)]
pub struct EtcdServer {
    cluster: EtcdCluster,
}

impl EtcdServer {
    /// Start one etcd and wait until it serves requests.
    pub async fn start() -> EtcdServer {
        EtcdServer {
            cluster: EtcdCluster::start(1).await,
        }
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn endpoint(&self) -> String {
        self.cluster.all_endpoints().remove(0)
    }

    /// The client URL in a list, as [`crate::EtcdBackend::connect`] takes it.
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint()]
    }

    /// Kill the etcd process (SIGKILL to its PID).
    pub fn kill(&mut self) {
        self.cluster.kill(0);
    }
}
