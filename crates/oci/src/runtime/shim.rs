//! The per-container shim: a small process that outlives the agent and knows how the container
//! ended. `runc create` leaves the container's init process behind and exits, so without a
//! waiting parent the exit status goes to whoever reaps orphans (nobody we can ask). The shim
//! makes itself a child subreaper, runs the runtime's `create` with the container's stdio as its
//! own, adopts the init process when `create` exits, waits for it, and records the status in
//! the bundle:
//!
//! ```text
//! <bundle>/shim.pid    the shim's pid (written first)
//! <bundle>/shim.ready  written when `create` succeeded (the agent waits for it)
//! <bundle>/exit.json   {"exit_code":..,"signal":..,"finished_at_unix_nanos":..} or
//!                      {"create_failed":"exit status: 1"} (the runtime's log says why)
//! <bundle>/shim.log    the shim's own diagnostics (never the container's streams)
//! ```
//!
//! Invoked as `<shim> --bundle <dir> --pid-file <file> [--cri-log <file>
//! [--cri-log-max-size <bytes> --cri-log-max-files <n>]] -- <runtime> <args...> create ...`;
//! with `--cri-log` the shim copies the container's stdout and stderr into that file as CRI
//! entries and rotates it ([`cri_log::RotatingLog`]). The agent binary exposes it as a hidden
//! subcommand that calls [`main`], and this crate ships it as the `maestro-oci-shim` binary. It holds no other state, so an agent restart does not
//! disturb it, and it exits as soon as the container has.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::process::{Pid, WaitOptions};

use super::cri_log;
use serde::{Deserialize, Serialize};

pub(crate) const SHIM_PID_FILE: &str = "shim.pid";
pub(crate) const EXIT_FILE: &str = "exit.json";
pub(crate) const SHIM_LOG: &str = "shim.log";
/// Written once the runtime's `create` has returned: the container exists and its init process
/// is ours to reap.
pub(crate) const SHIM_READY_FILE: &str = "shim.ready";

/// What the shim writes when the container (or its creation) ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExitRecord {
    /// The exit code, or 128 + signal number when killed by a signal (the shell convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_unix_nanos: Option<u64>,
    /// Set instead of the fields above when the runtime's `create` failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_failed: Option<String>,
    /// Set when the init process could not be waited for (the status is then unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct Args {
    bundle: PathBuf,
    pid_file: PathBuf,
    /// Write the container's stdout and stderr to this file as CRI log entries.
    cri_log: Option<PathBuf>,
    /// How that file rotates; `None` never.
    rotation: Option<cri_log::Rotation>,
    command: Vec<OsString>,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
    let mut bundle = None;
    let mut pid_file = None;
    let mut cri_log = None;
    let mut max_size: Option<u64> = None;
    let mut max_files: Option<u32> = None;
    let mut args = args.into_iter();
    fn number<T: std::str::FromStr>(flag: &str, value: Option<OsString>) -> Result<T, String> {
        value
            .as_ref()
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a number"))
    }
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--bundle") => bundle = args.next().map(PathBuf::from),
            Some("--pid-file") => pid_file = args.next().map(PathBuf::from),
            Some("--cri-log") => cri_log = args.next().map(PathBuf::from),
            Some(flag @ "--cri-log-max-size") => max_size = Some(number(flag, args.next())?),
            Some(flag @ "--cri-log-max-files") => max_files = Some(number(flag, args.next())?),
            Some("--") => {
                let command: Vec<OsString> = args.collect();
                if command.is_empty() {
                    return Err("no runtime command after --".into());
                }
                // A max size of 0 turns rotation off, as a negative containerLogMaxSize does.
                let rotation = match (max_size, max_files) {
                    (None, None) | (Some(0), _) => None,
                    (size, files) => Some(cri_log::Rotation {
                        max_size: size.unwrap_or(cri_log::DEFAULT_MAX_SIZE),
                        max_files: files.unwrap_or(cri_log::DEFAULT_MAX_FILES),
                    }),
                };
                if rotation.is_some_and(|r| r.max_files < 2) {
                    return Err("--cri-log-max-files must be at least 2".into());
                }
                return Ok(Args {
                    bundle: bundle.ok_or("--bundle is required")?,
                    pid_file: pid_file.ok_or("--pid-file is required")?,
                    cri_log,
                    rotation,
                    command,
                });
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Err("missing -- <runtime command>".into())
}

/// The shim's entry point; `args` excludes the program name (and any subcommand). Returns the
/// process exit code: 0 once a status is recorded, 1 when it could not even start.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args = match parse(args) {
        Ok(args) => args,
        Err(message) => {
            // The only time the shim speaks on stderr: it has not been given a bundle to log to.
            eprintln!("maestro shim: {message}");
            return 2;
        }
    };
    let log = |message: &str| log_line(&args.bundle, message);
    // Own session: signals aimed at the agent's process group or terminal do not reach us.
    if let Err(e) = rustix::process::setsid() {
        log(&format!("setsid: {e}"));
    }
    // Orphans among our descendants (the container's init, once `create` exits) become ours.
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        log(&format!("cannot become a subreaper: {e}"));
        return 1;
    }
    let own_pid = rustix::process::getpid().as_raw_nonzero().get().to_string();
    if let Err(e) = fs::write(args.bundle.join(SHIM_PID_FILE), own_pid) {
        log(&format!("write {SHIM_PID_FILE}: {e}"));
    }

    let record = supervise(&args, &log);
    if let Err(e) = write_record(&args.bundle, &record) {
        log(&format!("write {EXIT_FILE}: {e}"));
        return 1;
    }
    0
}

/// Copy one output pipe of the container into the CRI log, line by line. Both streams share
/// the log (behind the lock, so rotation sees every writer's entries whole).
fn copy_to_cri_log(
    mut pipe: std::io::PipeReader,
    stream: cri_log::Stream,
    log: std::sync::Arc<std::sync::Mutex<cri_log::RotatingLog>>,
    bundle: PathBuf,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = vec![0u8; 32 * 1024];
        let mut pending = Vec::new();
        // A full disk fails every write: say so once, not once per line.
        let mut reported = false;
        let mut write = |out: &[u8], now: jiff::Timestamp| {
            if out.is_empty() {
                return;
            }
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = log.write(out, now)
                && !std::mem::replace(&mut reported, true)
            {
                log_line(
                    &bundle,
                    &format!("{}: {e} (further errors not logged)", log.path().display()),
                );
            }
        };
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let now = jiff::Timestamp::now();
                    let mut out = Vec::new();
                    let _ = cri_log::write_entries(&mut out, stream, now, &mut pending, &buf[..n]);
                    write(&out, now);
                }
            }
        }
        let now = jiff::Timestamp::now();
        let mut out = Vec::new();
        let _ = cri_log::flush_partial(&mut out, stream, now, &mut pending);
        write(&out, now);
    })
}

fn supervise(args: &Args, log: &dyn Fn(&str)) -> ExitRecord {
    let mut command = Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    // Without a CRI log, stdio is inherited: the runtime passes it on to the container's init.
    let mut copiers = Vec::new();
    if let Some(path) = &args.cri_log {
        let file = match cri_log::RotatingLog::open(path, args.rotation) {
            Ok(f) => std::sync::Arc::new(std::sync::Mutex::new(f)),
            Err(e) => {
                return ExitRecord {
                    create_failed: Some(format!("open {}: {e}", path.display())),
                    ..Default::default()
                };
            }
        };
        let pipes = std::io::pipe().and_then(|out| std::io::pipe().map(|err| (out, err)));
        let ((out_r, out_w), (err_r, err_w)) = match pipes {
            Ok(p) => p,
            Err(e) => {
                return ExitRecord {
                    create_failed: Some(format!("pipe: {e}")),
                    ..Default::default()
                };
            }
        };
        command.stdout(out_w).stderr(err_w);
        copiers.push(copy_to_cri_log(
            out_r,
            cri_log::Stream::Stdout,
            file.clone(),
            args.bundle.clone(),
        ));
        copiers.push(copy_to_cri_log(
            err_r,
            cri_log::Stream::Stderr,
            file,
            args.bundle.clone(),
        ));
    }
    let record = supervise_command(command, args, log);
    // The copiers end when every writer of the pipes is gone (the container and anything it
    // left behind); a daemon that keeps them open must not keep the exit record back.
    let deadline = Instant::now() + Duration::from_secs(2);
    for copier in copiers {
        while !copier.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    record
}

fn supervise_command(mut command: Command, args: &Args, log: &dyn Fn(&str)) -> ExitRecord {
    // `status` drops the command's copies of the pipe writers once the runtime exits.
    let status = command.status();
    drop(command);
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => {
            return ExitRecord {
                create_failed: Some(status.to_string()),
                ..Default::default()
            };
        }
        Err(e) => {
            return ExitRecord {
                create_failed: Some(format!("cannot run {:?}: {e}", args.command[0])),
                ..Default::default()
            };
        }
    }
    let init = match read_pid(&args.pid_file) {
        Some(pid) => pid,
        None => {
            return ExitRecord {
                create_failed: Some(format!("no pid in {}", args.pid_file.display())),
                ..Default::default()
            };
        }
    };
    if let Err(e) = fs::write(
        args.bundle.join(SHIM_READY_FILE),
        init.as_raw_nonzero().to_string(),
    ) {
        log(&format!("write {SHIM_READY_FILE}: {e}"));
    }
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, status))) if pid == init => {
                let signal = status.terminating_signal();
                let exit_code = status.exit_status().or(signal.map(|s| 128 + s));
                return ExitRecord {
                    exit_code,
                    signal,
                    finished_at_unix_nanos: Some(now_nanos()),
                    ..Default::default()
                };
            }
            // Intermediate processes of the runtime, or orphans of a container that shares
            // the host's pid namespace: reaped and forgotten.
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                // The init process is not our child (another subreaper sits between us), so its
                // status is out of reach: wait for it to disappear and say so.
                log(&format!("wait: {e}; polling pid {}", init.as_raw_nonzero()));
                while Path::new(&format!("/proc/{}", init.as_raw_nonzero())).exists() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return ExitRecord {
                    finished_at_unix_nanos: Some(now_nanos()),
                    error: Some(format!("exit status unknown: {e}")),
                    ..Default::default()
                };
            }
        }
    }
}

fn read_pid(file: &Path) -> Option<Pid> {
    // The runtime writes the pid file before `create` exits; a short grace covers a runtime
    // that renames it into place late.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        if let Some(pid) = fs::read_to_string(file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .and_then(Pid::from_raw)
        {
            return Some(pid);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn write_record(bundle: &Path, record: &ExitRecord) -> std::io::Result<()> {
    let tmp = bundle.join("exit.json.tmp");
    fs::write(&tmp, serde_json::to_vec(record).expect("record serializes"))?;
    fs::rename(tmp, bundle.join(EXIT_FILE))
}

fn log_line(bundle: &Path, message: &str) {
    if let Ok(mut file) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(bundle.join(SHIM_LOG))
    {
        let _ = writeln!(file, "{} {message}", now_nanos());
    }
}

/// The exit record of a bundle, if the shim wrote one.
pub(crate) fn read_record(bundle: &Path) -> Option<ExitRecord> {
    serde_json::from_slice(&fs::read(bundle.join(EXIT_FILE)).ok()?).ok()
}

/// How the agent starts the shim: a program and the arguments before the shim's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl ShimCommand {
    /// A standalone shim binary (such as `maestro-oci-shim`).
    pub fn binary(program: impl Into<PathBuf>) -> Self {
        ShimCommand {
            program: program.into(),
            args: Vec::new(),
        }
    }

    /// The running executable again, with a subcommand that dispatches to [`main`]
    /// (`maestro shim ...`).
    pub fn current_exe(subcommand: &str) -> std::io::Result<Self> {
        Ok(ShimCommand {
            program: std::env::current_exe()?,
            args: vec![subcommand.into()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_arguments() {
        let a = parse(os(&[
            "--bundle",
            "/b",
            "--pid-file",
            "/b/init.pid",
            "--",
            "runc",
            "create",
            "x",
        ]))
        .unwrap();
        assert_eq!(a.bundle, PathBuf::from("/b"));
        assert_eq!(a.pid_file, PathBuf::from("/b/init.pid"));
        assert_eq!(a.command, os(&["runc", "create", "x"]));
        assert_eq!(a.rotation, None);
        let r = parse(os(&[
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "--cri-log",
            "/l/0.log",
            "--cri-log-max-size",
            "1024",
            "--cri-log-max-files",
            "3",
            "--",
            "runc",
        ]))
        .unwrap();
        assert_eq!(r.cri_log, Some(PathBuf::from("/l/0.log")));
        assert_eq!(
            r.rotation,
            Some(cri_log::Rotation {
                max_size: 1024,
                max_files: 3
            })
        );
        let off = parse(os(&[
            "--bundle",
            "/b",
            "--pid-file",
            "/p",
            "--cri-log-max-size",
            "0",
            "--",
            "runc",
        ]));
        assert_eq!(off.unwrap().rotation, None);
        for bad in [["--cri-log-max-files", "1"], ["--cri-log-max-size", "ten"]] {
            let mut args = vec!["--bundle", "/b", "--pid-file", "/p"];
            args.extend(bad);
            args.extend(["--", "runc"]);
            assert!(parse(os(&args)).is_err(), "{bad:?}");
        }
        assert!(parse(os(&["--bundle", "/b", "--"])).is_err());
        assert!(parse(os(&["--pid-file", "/p", "--", "runc"])).is_err());
        assert!(parse(os(&["--what"])).is_err());
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_record(dir.path()), None);
        let record = ExitRecord {
            exit_code: Some(137),
            signal: Some(9),
            finished_at_unix_nanos: Some(5),
            ..Default::default()
        };
        write_record(dir.path(), &record).unwrap();
        assert_eq!(read_record(dir.path()), Some(record));
        let text = fs::read_to_string(dir.path().join(EXIT_FILE)).unwrap();
        assert_eq!(
            text,
            r#"{"exit_code":137,"signal":9,"finished_at_unix_nanos":5}"#
        );
    }
}
