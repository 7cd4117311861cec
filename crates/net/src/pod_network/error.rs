//! The one error type of the pod network: what went wrong, with the command, path or address
//! that an operator needs to find it.

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// A failure of the pod network.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The configuration cannot describe a working network (bad CIDR, name or MTU).
    #[error("invalid pod network configuration: {0}")]
    InvalidConfig(String),

    /// A pod uid that cannot safely name a file, an interface alias or a record.
    #[error("invalid pod uid {0:?}: expected 1 to 128 characters of [A-Za-z0-9._-]")]
    InvalidPodUid(String),

    /// Every address of the pod CIDR is allocated.
    #[error("no free address left in pod CIDR {cidr}")]
    Exhausted { cidr: String },

    /// Another interface or route of the node already covers part of the pod CIDR: using it
    /// would hijack (or be hijacked by) the node's own traffic.
    #[error("pod CIDR {cidr} overlaps {what}")]
    Overlap { cidr: String, what: String },

    /// An interface with the bridge's name exists but is not a bridge; it is not ours to change.
    #[error("interface {name} exists and is a {kind}, not a bridge")]
    NotABridge { name: String, kind: String },

    /// An interface with the name we would give a pod's veth exists and belongs to something else.
    #[error("interface {name} exists and was not created for pod {uid} on this network: {owner}")]
    ForeignInterface {
        name: String,
        uid: String,
        owner: String,
    },

    /// A command (`ip`, `nsenter`) could not be started or failed.
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },

    /// A command printed something we could not understand.
    #[error("cannot parse the output of `{command}`: {message}")]
    Parse { command: String, message: String },

    /// A file of the IPAM state or of a pod's generated files.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An IPAM record that does not hold a pod uid (written by something else, or corrupted).
    #[error("IPAM record for {ip} at {} is not valid: {message}", path.display())]
    BadRecord {
        ip: Ipv4Addr,
        path: PathBuf,
        message: String,
    },
}

impl NetError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        NetError::Io {
            path: path.into(),
            source,
        }
    }
}
