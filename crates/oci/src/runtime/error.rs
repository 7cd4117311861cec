//! The runtime layer's error type and the helper that runs its child processes.

use std::io;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use super::ContainerState;
use super::cgroup::CgroupError;

/// Everything that can go wrong below the agent: bad input, a missing container, a failed child
/// process (with its stderr), the kernel saying no.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be turned into a runnable container.
    #[error("invalid container configuration: {0}")]
    InvalidConfig(String),

    /// No container (or sandbox) with this id exists.
    #[error("{kind} {id:?} not found")]
    NotFound { kind: &'static str, id: String },

    /// A container (or sandbox) with this id already exists.
    #[error("{kind} {id:?} already exists")]
    AlreadyExists { kind: &'static str, id: String },

    /// The operation needs the container in another state (e.g. deleting a running one).
    #[error("container {id:?} is {state}, the operation needs it {needed}")]
    InvalidState {
        id: String,
        state: ContainerState,
        needed: &'static str,
    },

    /// A file or directory operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// A child process (runc, crun, unshare, mount...) could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },

    /// A child process exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    /// The runtime refused to create or start the container; `message` is its own words.
    #[error("container {id:?} failed to start: {message}")]
    StartFailed { id: String, message: String },

    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },

    /// A JSON document (runtime state, bundle files) could not be read.
    #[error("cannot decode {what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    pub(crate) fn io_path(op: &str, path: &Path) -> impl FnOnce(io::Error) -> Error {
        Error::io(format!("{op} {}", path.display()))
    }

    pub(crate) fn not_found(kind: &'static str, id: &str) -> Error {
        Error::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Renders a command line for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion with stdin closed and output captured; a non-zero exit becomes
/// [`Error::Command`] carrying the process's stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(std::process::Stdio::null());
    let output = cmd.output().map_err(|source| Error::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(Error::Command {
            command: describe(cmd),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}
