//! The image errors, precise enough for the agent to report them the way the kubelet does
//! (`ErrImagePull`, `ErrImageNeverPull`, `InvalidImageName`, then `ImagePullBackOff`).

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong with images. The display text is the message a pod event or a
/// container status shows.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image name cannot be parsed.
    #[error("invalid reference format: {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// The registry has no such repository, tag or digest.
    #[error("{reference}: not found")]
    NotFound { reference: String },
    /// The registry refused the credentials we had (or we had none).
    #[error("{registry}: unauthorized: {message}")]
    Unauthorized { registry: String, message: String },
    /// Content does not hash to the digest that names it.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// A manifest, config or layer type we do not handle.
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// An index without a manifest for the wanted platform.
    #[error("{reference}: no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform { reference: String, platform: String },
    /// The registry could not be reached or the connection broke.
    #[error("{registry}: {message}")]
    Network { registry: String, message: String },
    /// The registry answered with an unexpected status (rate limits, server errors).
    #[error("{registry}: unexpected status {status}: {message}")]
    Registry {
        registry: String,
        status: u16,
        message: String,
    },
    /// A manifest, index or config that does not follow the specs.
    #[error("invalid {what}: {message}")]
    Invalid { what: String, message: String },
    /// A layer entry that would land outside the layer (`..`, absolute path, through a symlink).
    #[error("layer {layer}: refusing entry {path:?}: {reason}")]
    PathTraversal {
        layer: String,
        path: String,
        reason: String,
    },
    /// `imagePullPolicy: Never` and the image is not on the node.
    #[error("container image {reference:?} is not present with pull policy of Never")]
    NeverPull { reference: String },
    /// The store has no such image.
    #[error("image {0} is not in the store")]
    NotInStore(String),
    /// A snapshot exists for this container with another image, or its id is not usable.
    #[error("snapshot {id}: {message}")]
    Snapshot { id: String, message: String },
    /// An archive given to import is neither an OCI layout nor a `docker save` tarball.
    #[error("import {path}: {message}")]
    Import { path: PathBuf, message: String },
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    /// The container waiting reason the kubelet reports for this failure.
    pub fn kubelet_reason(&self) -> &'static str {
        match self {
            ImageError::InvalidReference { .. } => "InvalidImageName",
            ImageError::NeverPull { .. } => "ErrImageNeverPull",
            _ => "ErrImagePull",
        }
    }

    /// True for failures that may go away by themselves (network, server errors), which the
    /// agent retries with back-off rather than surfacing as a configuration problem.
    pub fn is_transient(&self) -> bool {
        match self {
            ImageError::Network { .. } => true,
            ImageError::Registry { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ImageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, message: impl ToString) -> Self {
        ImageError::Invalid {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

/// Attaches the operation and path to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, ImageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, ImageError> {
        self.map_err(|e| ImageError::io(op, path, e))
    }
}
