//! [`OciRuntime`] over the runc command line, for runc and for crun (same commands, flags and
//! JSON). Each container gets a bundle directory and a shim ([`super::shim`]) that runs the
//! runtime's `create` and records the exit status; everything else (`start`, `state`, `kill`,
//! `delete`, `exec`, `list`) is one runtime invocation. All state is on disk, so a restarted
//! agent sees the same containers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use oci_spec::runtime::{Capability, Spec};
use serde::Deserialize;

use super::cgroup::{self, CgroupManager, HybridFix};
use super::config::{ContainerConfig, ContainerIo, Output};
use super::cri_log;
use super::error::{Error, Result, describe, run};
use super::exec::{ExecConfig, ExecSession};
use super::shim::{self, SHIM_PID_FILE, SHIM_READY_FILE, ShimCommand};
use super::spec::{ALL_CAPABILITIES, is_valid_id, restrict_capabilities, spec};
use super::{ContainerState, ContainerStatus, ExitStatus, OciRuntime, Signal};

const CONFIG_FILE: &str = "config.json";
const INIT_PID_FILE: &str = "init.pid";
const RUNTIME_LOG: &str = "runtime.log";

/// Which runtime binary speaks the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeKind {
    /// runc: the default, works on every layout.
    Runc,
    /// crun: about twice as fast to start; needs [`cgroup::crun_hybrid_fix`] on hybrid hosts,
    /// which [`RuncCli::new`] applies.
    Crun,
}

impl RuntimeKind {
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Runc => "runc",
            RuntimeKind::Crun => "crun",
        }
    }
}

/// How to run the runtime.
#[derive(Debug, Clone)]
pub struct RuncConfig {
    pub kind: RuntimeKind,
    /// The binary; `None` searches `PATH` (and the sbin directories) for `kind`'s name.
    pub binary: Option<PathBuf>,
    /// The runtime's state directory (`--root`); default `/run/maestro/<runc|crun>`.
    pub root: PathBuf,
    /// Where bundles live; default `/run/maestro/containers`.
    pub bundle_dir: PathBuf,
    pub shim: ShimCommand,
    /// Where cgroup filesystems are mounted (for crun's hybrid-layout fix).
    pub cgroup_root: PathBuf,
    /// How long `create` may take before it is reported as failed.
    pub create_timeout: Duration,
    /// The kubelet's `containerLogMaxSize`: a CRI log file ([`Output::CriLog`]) is rotated
    /// before it grows past this many bytes; 0 never rotates. Default 10 MiB.
    pub container_log_max_size: u64,
    /// The kubelet's `containerLogMaxFiles`: files per container log, the current one
    /// included (at least 2 when rotating). Default 5.
    pub container_log_max_files: u32,
}

impl RuncConfig {
    pub fn new(kind: RuntimeKind, shim: ShimCommand) -> Self {
        RuncConfig {
            kind,
            binary: None,
            root: PathBuf::from("/run/maestro").join(kind.name()),
            bundle_dir: PathBuf::from("/run/maestro/containers"),
            shim,
            cgroup_root: PathBuf::from(cgroup::DEFAULT_ROOT),
            create_timeout: Duration::from_secs(60),
            container_log_max_size: cri_log::DEFAULT_MAX_SIZE,
            container_log_max_files: cri_log::DEFAULT_MAX_FILES,
        }
    }
}

/// runc or crun driven through its command line.
#[derive(Debug)]
pub struct RuncCli {
    config: RuncConfig,
    binary: PathBuf,
    cgroups: Arc<dyn CgroupManager>,
    /// Capabilities the agent itself holds: the most a container can get.
    host_capabilities: HashSet<Capability>,
    /// Shims this process started, reaped as they exit. Shims of a previous agent were
    /// re-parented away and need nothing from us.
    shims: Mutex<HashMap<String, Child>>,
    hybrid_fix: HybridFix,
    exec_counter: AtomicU64,
}

/// One entry of `runtime state` / `runtime list --format json`.
#[derive(Debug, Deserialize)]
struct RuntimeState {
    id: String,
    #[serde(default)]
    pid: Option<i64>,
    status: String,
    #[serde(default)]
    created: Option<String>,
}

impl RuncCli {
    /// Finds the binary, creates the state directories and, for crun on a hybrid cgroup host,
    /// moves the cgroup2 controllers to v1 (left in place; see [`cgroup::crun_hybrid_fix`]).
    pub fn new(config: RuncConfig, cgroups: Arc<dyn CgroupManager>) -> Result<Self> {
        if config.container_log_max_size > 0 && config.container_log_max_files < 2 {
            return Err(Error::InvalidConfig(format!(
                "container_log_max_files must be at least 2, got {}",
                config.container_log_max_files
            )));
        }
        let binary = match &config.binary {
            Some(path) => path.clone(),
            None => find_binary(config.kind.name()).ok_or_else(|| Error::Spawn {
                program: config.kind.name().into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not found in PATH"),
            })?,
        };
        for dir in [&config.root, &config.bundle_dir] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(Error::io_path("create", dir))?;
        }
        let hybrid_fix = match config.kind {
            RuntimeKind::Crun => cgroup::crun_hybrid_fix(&config.cgroup_root)?,
            RuntimeKind::Runc => HybridFix::default(),
        };
        Ok(RuncCli {
            config,
            binary,
            cgroups,
            host_capabilities: host_capabilities(),
            shims: Mutex::new(HashMap::new()),
            hybrid_fix,
            exec_counter: AtomicU64::new(0),
        })
    }

    pub fn config(&self) -> &RuncConfig {
        &self.config
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// What the crun fix mounted when this runtime was set up (empty for runc or when no fix
    /// was needed).
    pub fn hybrid_fix(&self) -> &HybridFix {
        &self.hybrid_fix
    }

    fn bundle(&self, id: &str) -> Result<PathBuf> {
        if !is_valid_id(id) {
            return Err(Error::InvalidConfig(format!("invalid container id {id:?}")));
        }
        Ok(self.config.bundle_dir.join(id))
    }

    /// The runtime's own state for `id` exists.
    fn has_runtime_state(&self, id: &str) -> bool {
        self.config.root.join(id).exists()
    }

    fn runtime(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.config.root);
        cmd
    }

    fn reap_shims(&self) {
        let mut shims = self.shims.lock().unwrap_or_else(|e| e.into_inner());
        shims.retain(|_, child| !matches!(child.try_wait(), Ok(Some(_)) | Err(_)));
    }

    fn create_inner(&self, config: &ContainerConfig, bundle: &Path) -> Result<()> {
        let mut spec = spec(config)?;
        let rootfs = fs::canonicalize(&config.rootfs)
            .map_err(Error::io_path("resolve rootfs", &config.rootfs))?;
        if let Some(root) = spec.root_mut() {
            root.set_path(rootfs);
        }
        restrict_capabilities(&mut spec, &self.host_capabilities);
        let json = serde_json::to_vec_pretty(&spec).expect("spec serializes");
        fs::write(bundle.join(CONFIG_FILE), json)
            .map_err(Error::io_path("write", &bundle.join(CONFIG_FILE)))?;

        let (stdin, stdout, stderr) = open_io(&config.io)?;
        let mut cmd = Command::new(&self.config.shim.program);
        cmd.args(&self.config.shim.args);
        if let Output::CriLog(path) = &config.io.stdout {
            cmd.arg("--cri-log").arg(path);
            // Rotation is the shim's: it is the only writer and outlives the agent.
            if self.config.container_log_max_size > 0 {
                cmd.arg("--cri-log-max-size")
                    .arg(self.config.container_log_max_size.to_string())
                    .arg("--cri-log-max-files")
                    .arg(self.config.container_log_max_files.to_string());
            }
        }
        cmd.arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(bundle.join(INIT_PID_FILE))
            .arg("--")
            .arg(&self.binary)
            .arg("--root")
            .arg(&self.config.root)
            .arg("--log")
            .arg(bundle.join(RUNTIME_LOG))
            .arg("--log-format")
            .arg("json")
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(bundle.join(INIT_PID_FILE))
            .arg(&config.id)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            program: describe(&cmd),
            source,
        })?;
        let shim_pid = child.id();
        self.shims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(config.id.clone(), child);

        // Ready, failed, or gone: whichever comes first.
        let deadline = Instant::now() + self.config.create_timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            if bundle.join(SHIM_READY_FILE).exists() {
                return Ok(());
            }
            if let Some(record) = shim::read_record(bundle) {
                let message = record
                    .create_failed
                    .map(|status| runtime_error(bundle).unwrap_or(status))
                    .or(record.error)
                    .unwrap_or_else(|| "the container exited during creation".into());
                return Err(Error::StartFailed {
                    id: config.id.clone(),
                    message,
                });
            }
            if self.shim_exited(&config.id) {
                let message = fs::read_to_string(bundle.join(shim::SHIM_LOG)).unwrap_or_default();
                return Err(Error::StartFailed {
                    id: config.id.clone(),
                    message: format!(
                        "shim {shim_pid} exited without a status: {}",
                        message.trim()
                    ),
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("container {} to be created", config.id),
                    after: self.config.create_timeout,
                });
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn shim_exited(&self, id: &str) -> bool {
        let mut shims = self.shims.lock().unwrap_or_else(|e| e.into_inner());
        match shims.get_mut(id) {
            Some(child) => matches!(child.try_wait(), Ok(Some(_))),
            None => false,
        }
    }

    /// Waits (bounded) for the container's shim to finish, so its exit record is on disk and
    /// nothing writes into the bundle once we remove it. Returns whether the shim is gone.
    fn wait_for_shim(&self, id: &str, bundle: &Path, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let child = self
            .shims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(mut child) = child {
            loop {
                if !matches!(child.try_wait(), Ok(None)) {
                    return true;
                }
                if Instant::now() >= deadline {
                    tracing::warn!(%id, "shim still running after {timeout:?}");
                    // Kept for a later reap rather than left as a zombie.
                    self.shims
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id.to_string(), child);
                    return false;
                }
                thread::sleep(Duration::from_millis(2));
            }
        }
        // A shim started by a previous agent: watch its pid until it goes.
        let Some(pid) = fs::read_to_string(bundle.join(SHIM_PID_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            return true;
        };
        while is_shim_of(pid, bundle) {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(2));
        }
        true
    }

    fn runtime_state(&self, id: &str) -> Result<Option<RuntimeState>> {
        if !self.has_runtime_state(id) {
            return Ok(None);
        }
        match run(self.runtime().arg("state").arg(id)) {
            Ok(output) => serde_json::from_slice(&output.stdout)
                .map(Some)
                .map_err(|source| Error::Decode {
                    what: format!("{} state {id}", self.config.kind.name()),
                    source,
                }),
            // Deleted between the check and the call.
            Err(_) if !self.has_runtime_state(id) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Merges the runtime's view with the bundle (annotations, exit record, OOM counter).
    fn compose(&self, id: &str, runtime: Option<RuntimeState>) -> Result<ContainerStatus> {
        let bundle = self.bundle(id)?;
        let bundle_spec = read_spec(&bundle);
        let annotations: BTreeMap<String, String> = bundle_spec
            .as_ref()
            .and_then(|s| s.annotations().clone())
            .map(|a| a.into_iter().collect())
            .unwrap_or_default();
        let cgroup_path = bundle_spec
            .as_ref()
            .and_then(|s| s.linux().as_ref())
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| p.to_string_lossy().into_owned());

        let mut status = ContainerStatus {
            id: id.to_string(),
            state: ContainerState::Unknown,
            pid: None,
            bundle: bundle.clone(),
            created_at: None,
            annotations,
            exit: None,
            error: None,
        };
        let mut record = shim::read_record(&bundle);
        match runtime {
            Some(rt) => {
                status.state = match rt.status.as_str() {
                    "creating" => ContainerState::Creating,
                    "created" => ContainerState::Created,
                    "running" => ContainerState::Running,
                    "paused" => ContainerState::Paused,
                    "stopped" => ContainerState::Stopped,
                    _ => ContainerState::Unknown,
                };
                status.pid = rt.pid.filter(|&p| p > 0).map(|p| p as u32);
                status.created_at = rt.created;
                if status.state == ContainerState::Stopped {
                    status.pid = None;
                    if record.is_none() {
                        // The runtime noticed the exit a moment before the shim wrote it down.
                        let shim_gone = self.wait_for_shim(id, &bundle, Duration::from_secs(2));
                        record = shim::read_record(&bundle);
                        if record.is_none() && shim_gone {
                            status.error =
                                Some("the shim exited without recording an exit status".into());
                        }
                    }
                }
            }
            None if record.as_ref().is_some_and(|r| r.create_failed.is_some()) => {}
            None if bundle.exists() => {}
            None => return Err(Error::not_found("container", id)),
        }
        if let Some(record) = record {
            if let Some(failed) = record.create_failed {
                status.error = Some(runtime_error(&bundle).unwrap_or(failed));
            } else if let Some(code) = record.exit_code {
                status.state = ContainerState::Stopped;
                status.pid = None;
                let oom_killed = cgroup_path
                    .as_deref()
                    .and_then(|p| self.cgroups.oom_kills(p))
                    .is_some_and(|n| n > 0);
                status.exit = Some(ExitStatus {
                    code,
                    signal: record.signal,
                    oom_killed,
                    finished_at: record
                        .finished_at_unix_nanos
                        .map(|n| UNIX_EPOCH + Duration::from_nanos(n)),
                });
            } else if let Some(error) = record.error {
                status.state = ContainerState::Stopped;
                status.error = Some(error);
            }
        }
        Ok(status)
    }
}

impl OciRuntime for RuncCli {
    fn name(&self) -> &str {
        self.config.kind.name()
    }

    fn create(&self, config: &ContainerConfig) -> Result<()> {
        let bundle = self.bundle(&config.id)?;
        self.reap_shims();
        if bundle.exists() || self.has_runtime_state(&config.id) {
            return Err(Error::AlreadyExists {
                kind: "container",
                id: config.id.clone(),
            });
        }
        // Not recursive: of two concurrent creates with one id, exactly one gets the directory.
        match fs::DirBuilder::new().mode(0o700).create(&bundle) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists {
                    kind: "container",
                    id: config.id.clone(),
                });
            }
            Err(e) => return Err(Error::io_path("create", &bundle)(e)),
        }
        let result = self.create_inner(config, &bundle);
        if result.is_err() {
            // Leave nothing half-made: runtime state, cgroup, the shim, the bundle.
            if let Err(e) = self.delete(&config.id, true) {
                tracing::warn!(id = %config.id, error = %e, "cleanup after failed create");
            }
        }
        result
    }

    fn start(&self, id: &str) -> Result<()> {
        self.bundle(id)?;
        if !self.has_runtime_state(id) {
            return Err(Error::not_found("container", id));
        }
        run(self.runtime().arg("start").arg(id)).map(|_| ())
    }

    fn state(&self, id: &str) -> Result<ContainerStatus> {
        self.reap_shims();
        let runtime = self.runtime_state(id)?;
        self.compose(id, runtime)
    }

    fn stopped(&self, id: &str) -> Result<bool> {
        // The shim writes the exit record as soon as the process is gone.
        Ok(self.bundle(id)?.join(shim::EXIT_FILE).exists())
    }

    fn kill(&self, id: &str, signal: Signal) -> Result<()> {
        self.bundle(id)?;
        match run(self.runtime().arg("kill").arg(id).arg(signal.0.to_string())) {
            Ok(_) => Ok(()),
            Err(e) => match self.state(id) {
                // Already gone: the signal has nothing left to do.
                Ok(s) if s.state == ContainerState::Stopped || s.exit.is_some() => Ok(()),
                _ => Err(e),
            },
        }
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        let bundle = self.bundle(id)?;
        self.reap_shims();
        if let Some(state) = self.runtime_state(id)? {
            let running = matches!(state.status.as_str(), "running" | "paused" | "creating");
            if running && !force {
                let status = self.compose(id, Some(state))?;
                return Err(Error::InvalidState {
                    id: id.into(),
                    state: status.state,
                    needed: "stopped or created",
                });
            }
            if running {
                let _ = run(self.runtime().arg("kill").arg(id).arg("KILL"));
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline
                    && self
                        .runtime_state(id)?
                        .is_some_and(|s| matches!(s.status.as_str(), "running" | "paused"))
                {
                    thread::sleep(Duration::from_millis(5));
                }
            }
            let mut delete = self.runtime();
            delete.arg("delete");
            if force {
                delete.arg("--force");
            }
            // Gone anyway (deleted concurrently) is as good as deleted.
            if let Err(e) = run(delete.arg(id))
                && self.has_runtime_state(id)
            {
                return Err(e);
            }
        }
        self.wait_for_shim(id, &bundle, Duration::from_secs(5));
        match fs::remove_dir_all(&bundle) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io_path("remove", &bundle)(e)),
        }
    }

    fn exec(&self, id: &str, exec: &ExecConfig) -> Result<ExecSession> {
        let bundle = self.bundle(id)?;
        if exec.args.is_empty() {
            return Err(Error::InvalidConfig("exec needs a command".into()));
        }
        let spec = read_spec(&bundle).ok_or_else(|| Error::not_found("container", id))?;
        // The container's own process section keeps its capabilities, rlimits, seccomp-related
        // no_new_privileges and user unless the exec overrides them.
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(exec.args.clone()));
        let mut env = process.env().clone().unwrap_or_default();
        for (key, value) in &exec.env {
            env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key.as_str()));
            env.push(format!("{key}={value}"));
        }
        process.set_env(Some(env));
        if let Some(cwd) = &exec.cwd {
            process.set_cwd(cwd.clone());
        }
        if let Some(user) = &exec.user {
            let mut u = process.user().clone();
            u.set_uid(user.uid);
            u.set_gid(user.gid);
            u.set_additional_gids(if user.additional_gids.is_empty() {
                None
            } else {
                Some(user.additional_gids.clone())
            });
            process.set_user(u);
        }
        process.set_terminal(Some(exec.tty));
        let n = self.exec_counter.fetch_add(1, Ordering::Relaxed);
        let stamp = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        let process_file = bundle.join(format!("exec-{stamp}-{n}.json"));
        let pid_file = bundle.join(format!("exec-{stamp}-{n}.pid"));
        fs::write(
            &process_file,
            serde_json::to_vec(&process).expect("process serializes"),
        )
        .map_err(Error::io_path("write", &process_file))?;
        let mut cmd = self.runtime();
        cmd.arg("exec")
            .arg("--process")
            .arg(&process_file)
            .arg("--pid-file")
            .arg(&pid_file);
        if exec.tty {
            cmd.arg("--tty");
        }
        cmd.arg(id);
        ExecSession::spawn(cmd, exec, pid_file, process_file)
    }

    fn list(&self) -> Result<Vec<ContainerStatus>> {
        self.reap_shims();
        let output = run(self.runtime().args(["list", "--format", "json"]))?;
        let text = String::from_utf8_lossy(&output.stdout);
        // runc prints `null` for an empty root; crun prints `[]`.
        let states: Vec<RuntimeState> = if text.trim().is_empty() || text.trim() == "null" {
            Vec::new()
        } else {
            serde_json::from_str(&text).map_err(|source| Error::Decode {
                what: format!("{} list", self.config.kind.name()),
                source,
            })?
        };
        let mut by_id: BTreeMap<String, Option<RuntimeState>> = states
            .into_iter()
            .map(|s| (s.id.clone(), Some(s)))
            .collect();
        // Bundles without runtime state: failed or interrupted creations the agent must delete.
        if let Ok(entries) = fs::read_dir(&self.config.bundle_dir) {
            for entry in entries.flatten() {
                if let Ok(name) = entry.file_name().into_string() {
                    by_id.entry(name).or_insert(None);
                }
            }
        }
        let mut out = Vec::new();
        for (id, state) in by_id {
            if !is_valid_id(&id) {
                continue;
            }
            match self.compose(&id, state) {
                Ok(status) => out.push(status),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

fn read_spec(bundle: &Path) -> Option<Spec> {
    serde_json::from_slice(&fs::read(bundle.join(CONFIG_FILE)).ok()?).ok()
}

/// The last error the runtime logged (its JSON log has one object per line).
fn runtime_error(bundle: &Path) -> Option<String> {
    let text = fs::read_to_string(bundle.join(RUNTIME_LOG)).ok()?;
    text.lines().rev().find_map(|line| {
        let entry: serde_json::Value = serde_json::from_str(line).ok()?;
        matches!(entry.get("level")?.as_str()?, "error" | "fatal")
            .then(|| entry.get("msg")?.as_str().map(str::to_string))?
    })
}

fn open_io(io: &ContainerIo) -> Result<(Stdio, Stdio, Stdio)> {
    let stdin = match &io.stdin {
        Some(fd) => Stdio::from(fd.try_clone().map_err(Error::io("duplicate stdin"))?),
        None => Stdio::null(),
    };
    let open = |output: &Output| -> Result<Stdio> {
        Ok(match output {
            Output::Null => Stdio::null(),
            Output::Fd(fd) => {
                Stdio::from(fd.try_clone().map_err(Error::io("duplicate output fd"))?)
            }
            // The shim makes the pipes and writes the entries.
            Output::CriLog(_) => Stdio::null(),
            Output::File(path) => Stdio::from(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    .open(path)
                    .map_err(Error::io_path("open", path))?,
            ),
        })
    };
    // One file for both streams: share one open file so lines interleave in order.
    if let (Output::File(a), Output::File(b)) = (&io.stdout, &io.stderr)
        && a == b
    {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(a)
            .map_err(Error::io_path("open", a))?;
        let dup = file.try_clone().map_err(Error::io_path("duplicate", a))?;
        return Ok((stdin, Stdio::from(file), Stdio::from(dup)));
    }
    Ok((stdin, open(&io.stdout)?, open(&io.stderr)?))
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The agent's bounding set, from `/proc/self/status`; everything if it cannot be read.
fn host_capabilities() -> HashSet<Capability> {
    let bits = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        });
    match bits {
        Some(bits) => ALL_CAPABILITIES
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, c)| *c)
            .collect(),
        None => ALL_CAPABILITIES.iter().copied().collect(),
    }
}

/// Whether `pid` is still the shim of `bundle` (and not a recycled pid of something else).
fn is_shim_of(pid: u32, bundle: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline
        .split(|b| *b == 0)
        .map(|a| Path::new(std::ffi::OsStr::from_bytes(a)));
    // The shim is the one whose own `--bundle` (before `--`) is this bundle.
    let mut previous_was_bundle = false;
    for arg in args.by_ref() {
        if arg == Path::new("--") {
            break;
        }
        if previous_was_bundle && arg == bundle {
            return true;
        }
        previous_was_bundle = arg == Path::new("--bundle");
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_from_json_logs() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(runtime_error(dir.path()), None);
        fs::write(
            dir.path().join(RUNTIME_LOG),
            "{\"level\":\"info\",\"msg\":\"hello\"}\n{\"level\":\"error\",\"msg\":\"exec: \\\"/nope\\\": no such file\",\"time\":\"t\"}\n{\"level\":\"warning\",\"msg\":\"later\"}\n",
        )
        .unwrap();
        assert_eq!(
            runtime_error(dir.path()).as_deref(),
            Some("exec: \"/nope\": no such file")
        );
    }

    #[test]
    fn state_json_of_both_runtimes() {
        let runc: RuntimeState = serde_json::from_str(r#"{"ociVersion":"1.0.2-dev","id":"c1","pid":9192,"status":"running","bundle":"/b","rootfs":"/r","created":"2026-11-28T16:09:57Z","owner":"root"}"#).unwrap();
        assert_eq!(
            (runc.id.as_str(), runc.pid, runc.status.as_str()),
            ("c1", Some(9192), "running")
        );
        let crun: RuntimeState = serde_json::from_str(r#"{"ociVersion":"1.0.0","id":"c4","pid":0,"status":"stopped","bundle":"/b","rootfs":"/r","created":"x","systemd-scope":"","owner":"root"}"#).unwrap();
        assert_eq!((crun.pid, crun.status.as_str()), (Some(0), "stopped"));
    }

    #[test]
    fn host_capabilities_reads_the_bounding_set() {
        // Whatever this process holds, it is a subset of all capabilities and never empty for
        // a normal test run.
        let caps = host_capabilities();
        assert!(caps.len() <= ALL_CAPABILITIES.len());
    }
}
