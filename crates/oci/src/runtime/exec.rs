//! Processes started inside running containers (`kubectl exec`, exec probes, lifecycle hooks).
//!
//! The runtime's `exec` runs in the foreground as our child, so its exit code is the process's
//! and nothing is left to reap elsewhere. Two ways to stream:
//! - pipes (default): stdin (optional), stdout and stderr are separate pipes;
//! - tty: we open a pseudo-terminal and give its slave end to the runtime as stdin/stdout/
//!   stderr; the runtime (which insists on a terminal of its own for `--tty` in the
//!   foreground) puts the container's process on a second pty and copies between the two.
//!   The caller reads and writes the master; [`ExecSession::resize`] sets its size and that of
//!   the container's pty (through the process's `/proc/<pid>/fd/0`).

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal as RawSignal};

use super::Signal;
use super::config::User;
use super::error::{Error, Result};

/// What to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecConfig {
    pub args: Vec<String>,
    /// Added to (and overriding) the container's environment.
    pub env: Vec<(String, String)>,
    /// Defaults to the container's working directory.
    pub cwd: Option<PathBuf>,
    /// Defaults to the container's user.
    pub user: Option<User>,
    /// Give the process a terminal (`kubectl exec -t`); stdout and stderr are then one stream.
    pub tty: bool,
    /// Keep stdin open for the caller (`kubectl exec -i`); otherwise it is `/dev/null`. With a
    /// tty, input always comes from the terminal.
    pub stdin: bool,
    /// Initial terminal size (columns, rows) in tty mode.
    pub tty_size: Option<(u16, u16)>,
}

impl ExecConfig {
    /// A non-interactive command (an exec probe).
    pub fn command(args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ExecConfig {
            args: args.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Adds one environment variable.
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// The collected result of a non-interactive exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (128 + signal when killed); `None` when it timed out and was killed.
    pub exit_code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A running exec. Take its streams, then [`wait`](Self::wait). Dropping a session whose
/// process still runs kills it, so no exec outlives the agent's interest in it.
#[derive(Debug)]
pub struct ExecSession {
    child: Child,
    /// Kept for `resize` even after the caller took its own handle.
    pty: Option<File>,
    pty_taken: bool,
    pid_file: PathBuf,
    process_file: PathBuf,
    exit_code: Option<i32>,
}

impl ExecSession {
    pub(crate) fn spawn(
        mut command: Command,
        exec: &ExecConfig,
        pid_file: PathBuf,
        process_file: PathBuf,
    ) -> Result<ExecSession> {
        let mut pty = None;
        if exec.tty {
            let (master, slave) = open_pty(exec.tty_size)?;
            let clone = |fd: &OwnedFd| fd.try_clone().map_err(Error::io("duplicate pty"));
            command
                .stdin(Stdio::from(clone(&slave)?))
                .stdout(Stdio::from(clone(&slave)?))
                .stderr(Stdio::from(slave));
            pty = Some(File::from(master));
        } else {
            command
                .stdin(if exec.stdin {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        let child = command.spawn().map_err(|source| Error::Spawn {
            program: command.get_program().to_string_lossy().into_owned(),
            source,
        });
        // The slave ends were moved into `command`; dropping it closes our copies so the
        // master sees EOF when the runtime exits.
        drop(command);
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_file(&process_file);
                return Err(e);
            }
        };
        let mut session = ExecSession {
            child,
            pty,
            pty_taken: false,
            pid_file,
            process_file,
            exit_code: None,
        };
        if let (Some((columns, rows)), true) = (exec.tty_size, exec.tty) {
            // The runtime sizes the container's terminal some time after the process started;
            // set it ourselves before the caller can type anything.
            session.wait_for_pid(Duration::from_secs(5));
            session.resize(columns, rows)?;
        }
        Ok(session)
    }

    /// The caller's end of stdin (only with `stdin: true`, pipe mode).
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// The pty master (tty mode): read the terminal's output from it, write its input to it.
    /// Clone it (`try_clone`) for a reader and a writer on separate threads.
    pub fn take_pty(&mut self) -> Option<File> {
        if self.pty_taken {
            return None;
        }
        let file = self.pty.as_ref()?.try_clone().ok()?;
        self.pty_taken = true;
        Some(file)
    }

    /// Resizes the terminal (tty mode; a no-op otherwise).
    pub fn resize(&self, columns: u16, rows: u16) -> Result<()> {
        let Some(pty) = &self.pty else { return Ok(()) };
        let size = winsize(columns, rows);
        rustix::termios::tcsetwinsize(pty, size).map_err(|e| Error::io("resize pty")(e.into()))?;
        // The container's own terminal, reached through the process's stdin: setting its size
        // sends the process SIGWINCH. (runc would also copy our size over on SIGWINCH; crun 1.8
        // does not, so this is the path that works for both.)
        if let Some(pid) = self.pid() {
            let path = format!("/proc/{pid}/fd/0");
            let flags =
                rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC;
            if let Ok(tty) = rustix::fs::open(path.as_str(), flags, rustix::fs::Mode::empty())
                && rustix::termios::isatty(&tty)
            {
                let _ = rustix::termios::tcsetwinsize(&tty, size);
            }
        }
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, RawSignal::WINCH);
        }
        Ok(())
    }

    /// Waits (bounded) until the runtime has started the process and written its pid, or
    /// has given up.
    fn wait_for_pid(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.pid().is_none() && Instant::now() < deadline {
            if matches!(self.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// The pid of the process inside the container (host pid namespace), once started.
    pub fn pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()
    }

    /// Sends a signal to the process inside the container.
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let raw = RawSignal::from_named_raw(signal.0)
            .ok_or_else(|| Error::InvalidConfig(format!("unknown signal {}", signal.0)))?;
        let Some(pid) = self.pid().and_then(|p| Pid::from_raw(p as i32)) else {
            return Ok(());
        };
        match rustix::process::kill_process(pid, raw) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(Error::io(format!("signal exec process {pid:?}"))(e.into())),
        }
    }

    /// Waits for the process and returns its exit code (128 + signal when killed).
    pub fn wait(&mut self) -> Result<i32> {
        if let Some(code) = self.exit_code {
            return Ok(code);
        }
        let status = self.child.wait().map_err(Error::io("wait for exec"))?;
        let code = exit_code(status);
        self.exit_code = Some(code);
        Ok(code)
    }

    /// Non-blocking [`wait`](Self::wait).
    pub fn try_wait(&mut self) -> Result<Option<i32>> {
        if let Some(code) = self.exit_code {
            return Ok(Some(code));
        }
        let status = self.child.try_wait().map_err(Error::io("wait for exec"))?;
        self.exit_code = status.map(exit_code);
        Ok(self.exit_code)
    }

    /// Reads all output and waits, killing the process if it runs longer than `timeout`
    /// (exec probes). In tty mode everything arrives as stdout.
    pub fn output(mut self, timeout: Option<Duration>) -> Result<ExecOutput> {
        drop(self.take_stdin());
        let stdout = self.take_stdout().map(|s| reader(Box::new(s)));
        let stderr = self.take_stderr().map(|s| reader(Box::new(s)));
        let pty = self.take_pty().map(|s| reader(Box::new(s)));
        let deadline = timeout.map(|t| Instant::now() + t);
        let exit_code = loop {
            if let Some(code) = self.try_wait()? {
                break Some(code);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.kill_and_reap();
                break None;
            }
            thread::sleep(Duration::from_millis(2));
        };
        // The pty reader ends with EIO once the runtime and the process have closed every
        // slave end, which they have by now.
        let join = |h: Option<thread::JoinHandle<Vec<u8>>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        let mut out = join(stdout);
        out.extend(join(pty));
        Ok(ExecOutput {
            exit_code,
            stdout: out,
            stderr: join(stderr),
        })
    }

    /// Kills the process inside and lets the runtime reap it and exit. Killing the runtime
    /// first would orphan the process, and an orphan's zombie keeps the container's cgroup
    /// busy until someone else reaps it.
    fn kill_and_reap(&mut self) {
        let _ = self.signal(Signal::KILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit_code.get_or_insert(exit_code(status));
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
        // The process never started (no pid yet) or the runtime hangs.
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.exit_code.get_or_insert(exit_code(status));
        }
    }
}

impl Drop for ExecSession {
    fn drop(&mut self) {
        if self.exit_code.is_none() && !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.kill_and_reap();
        }
        let _ = fs::remove_file(&self.process_file);
        let _ = fs::remove_file(&self.pid_file);
    }
}

fn reader(mut source: Box<dyn Read + Send>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        // A pty master reports EIO once the last slave closes: that is its end of file.
        let _ = source.read_to_end(&mut buf);
        buf
    })
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn winsize(columns: u16, rows: u16) -> rustix::termios::Winsize {
    rustix::termios::Winsize {
        ws_col: columns,
        ws_row: rows,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

fn open_pty(size: Option<(u16, u16)>) -> Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::{OpenptFlags, grantpt, ioctl_tiocgptpeer, openpt, unlockpt};
    let err = |what: &'static str| move |e: rustix::io::Errno| Error::io(what)(e.into());
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = openpt(flags).map_err(err("open pty"))?;
    grantpt(&master).map_err(err("grantpt"))?;
    unlockpt(&master).map_err(err("unlockpt"))?;
    let slave = ioctl_tiocgptpeer(&master, flags).map_err(err("open pty slave"))?;
    if let Some((columns, rows)) = size {
        rustix::termios::tcsetwinsize(&master, winsize(columns, rows))
            .map_err(err("resize pty"))?;
    }
    Ok((master, slave))
}
