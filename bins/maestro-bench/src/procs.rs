//! The servers under test as child processes: each with its own temporary directory and log,
//! killed by the PID we started (on drop, so also when a benchmark fails or is interrupted).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

/// A free TCP port on loopback.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A server we started. Dropping it kills the process, then removes its directory.
pub struct Server {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
    // Declared last: dropped after the process is gone.
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Start `cmd` with stdout and stderr in `dir/server.log`.
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Server> {
        let log = dir.path().join("server.log");
        let file = std::fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        Ok(Server {
            name,
            child,
            log,
            dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fail with the end of the log if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited with {status}:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    /// SIGTERM to the PID we spawned and up to `grace` for it to exit (daemons such as dockerd
    /// stop their children on SIGTERM, not on SIGKILL); dropping kills it if it is still there.
    pub fn terminate(mut self, grace: std::time::Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Resident set size in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        status_kib(self.pid(), "VmRSS:").context(self.name)
    }
}

/// A `/proc/PID/status` field given in kB (`VmRSS:`, `RssAnon:`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} for pid {pid}"))
}

/// CPU time (user + system) a process has used so far. /proc reports it in USER_HZ ticks, which
/// Linux fixes at 100 per second for user space.
pub fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may itself hold spaces: ") S ppid ...".
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    let ticks: f64 = fields
        .get(11..13)
        .context("short stat")?
        .iter()
        .map(|f| f.parse::<f64>())
        .sum::<Result<f64, _>>()?;
    Ok(ticks / 100.0)
}

/// Cores used by the server and by this process between two points.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub server: f64,
    pub client: f64,
}

/// Measures [`CpuUse`] from its creation to [`CpuMeter::stop`].
pub struct CpuMeter {
    pid: String,
    started: std::time::Instant,
    server: f64,
    client: f64,
}

impl CpuMeter {
    pub fn start(server: &Server) -> anyhow::Result<CpuMeter> {
        let pid = server.pid().to_string();
        Ok(CpuMeter {
            server: cpu_seconds(&pid)?,
            client: cpu_seconds("self")?,
            started: std::time::Instant::now(),
            pid,
        })
    }

    pub fn stop(self) -> anyhow::Result<CpuUse> {
        let wall = self.started.elapsed().as_secs_f64();
        Ok(CpuUse {
            server: (cpu_seconds(&self.pid)? - self.server) / wall,
            client: (cpu_seconds("self")? - self.client) / wall,
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL to exactly the PID we spawned; then reap it so no zombie stays behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
