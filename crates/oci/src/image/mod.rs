//! Container images on a node: image references, registry pulls (OCI and Docker v2 manifests,
//! indexes with platform selection, token and basic auth), a content-addressed store whose
//! unpacked layers are shared between images, overlayfs root filesystem snapshots per container,
//! archive import for air-gapped nodes, and garbage collection by disk thresholds.
//!
//! The agent holds one [`ImageStore`] and calls [`ImageStore::ensure`] (or [`ImageStore::pull`])
//! before it creates a container, then [`ImageStore::create_snapshot`] for the container's root
//! filesystem and [`ImageStore::remove_snapshot`] when the container is gone.
//!
//! Layout under the store's root (see `store.rs` for the invariants):
//!
//! ```text
//! images.json                   references → images, images → manifest, config, layers, last use
//! blobs/sha256/<hex>            manifests, indexes and configs, verified against their digest
//! layers/<diff-id hex>/fs       one unpacked layer: an overlayfs lower dir (overlay whiteouts)
//! layers/<diff-id hex>/size     bytes the unpacked layer holds (for garbage collection)
//! snapshots/<container>/        image (which image), upper/, work/, rootfs/ (the overlay mount)
//! tmp/, trash/                  partial writes and content being deleted; emptied at open
//! ```

mod auth;
mod digest;
mod error;
mod gc;
mod import;
mod manifest;
mod pull;
mod reference;
mod snapshot;
mod store;
mod unpack;

pub use auth::{Credentials, DockerConfig};
pub use digest::Digest;
pub use error::ImageError;
pub use gc::{DiskUsage, GcPolicy, GcReport};
pub use manifest::{ImageConfig, Platform};
pub use pull::{PullEvent, PullOptions, PullPolicy};
pub use reference::Reference;
pub use snapshot::Snapshot;
pub use store::{Image, ImageStore};

/// Result of the image functions.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
