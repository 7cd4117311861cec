//! Containers on a node: OCI images (`image`: references, registry pulls, the content store,
//! layer unpacking, root filesystem snapshots, archive import) and the runtime boundary
//! (`runtime`: OCI runtime specs, runc/crun behind a trait, cgroups v1 and v2).

pub mod image;
pub mod runtime;
