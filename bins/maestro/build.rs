//! Links `maestro` as a position-dependent executable. Every node runs one `maestro shim` per
//! container, and in a position-independent executable the dynamic loader relocates all of
//! `.data.rel.ro` (close to 1 MiB of pointers, mostly trait vtables) in each process: private
//! dirty memory that a shim never reads. Without PIE those pages stay clean, shared and mostly
//! untouched. Go builds its binaries (containerd's shims, the kubelet) without PIE for the same
//! reason; the cost is a fixed load address for the executable itself.

fn main() {
    println!("cargo:rustc-link-arg-bin=maestro=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
