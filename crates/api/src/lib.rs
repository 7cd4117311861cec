//! The Kubernetes API as maestro understands it: the resource registry (what kinds exist and how
//! they are served), typed decoding through k8s-openapi, defaults, validation, label and field
//! selectors, patches, table output and the `Status` errors every failure becomes.
//!
//! Pure data and logic: this crate does no IO, so everything here is unit-testable.

pub mod codec;
pub mod defaults;
pub mod local_path;
pub mod meta;
pub mod patch_meta;
pub mod protobuf;
pub mod quantity;
pub mod resources;
pub mod selector;
pub mod status;
pub mod strategic_merge;
pub mod table;
pub mod validation;

pub use resources::{ResourceInfo, Scope};
pub use status::{ApiError, Cause};
