//! The in-container checker (`bins/maestro-checker`) for node tests: built statically on first
//! use, and put into a busybox image.
//!
//! The static build is a second cargo invocation with its own target directory
//! (`<target>/checker-static`), so its flags never touch the rest of the workspace's build:
//!
//! ```text
//! CARGO_ENCODED_RUSTFLAGS=$'-Ctarget-feature=+crt-static\x1f-Cstrip=symbols' \
//!   cargo build --release -p maestro-checker --target x86_64-unknown-linux-gnu \
//!   --target-dir target/checker-static
//! ```
//!
//! `+crt-static` links glibc's static archives (from `libc6-dev`) into a static-pie; `--target`
//! keeps the flag off build scripts. About 10 s from scratch on two cores, well under a second
//! when up to date; the binary is about 1.6 MB. Set `MAESTRO_CHECKER` to a prebuilt binary to
//! skip the build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, ensure};

use crate::image::ImageBuilder;

/// Where [`image`] puts the checker.
pub const PATH_IN_IMAGE: &str = "/bin/maestro-checker";

/// The static checker binary, built once per test process.
pub fn static_binary() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("MAESTRO_CHECKER") {
        let path = PathBuf::from(path);
        ensure!(
            is_static(&path)?,
            "MAESTRO_CHECKER={} is not a static executable",
            path.display()
        );
        return Ok(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("checker-static");
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    // `cargo test` tells its tests which cargo runs them.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "--locked", "-p", "maestro-checker"])
        .args(["--target", &triple])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The encoded form wins over RUSTFLAGS and build.rustflags, whatever the caller set.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Ctarget-feature=+crt-static\x1f-Cstrip=symbols",
        )
        .output()
        .context("running cargo to build maestro-checker")?;
    ensure!(
        out.status.success(),
        "building the static maestro-checker failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let binary = target_dir.join(&triple).join("release/maestro-checker");
    ensure!(
        is_static(&binary)?,
        "{} is not static (is libc6-dev installed?)",
        binary.display()
    );
    Ok(binary)
}

/// An ELF executable without a program interpreter (`PT_INTERP`) needs no dynamic loader: it
/// runs in an image that has no libc.
pub fn is_static(path: &Path) -> Result<bool> {
    let elf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        elf.len() > 64 && elf.starts_with(b"\x7fELF") && elf[4] == 2 && elf[5] == 1,
        "{} is not a 64-bit little-endian ELF file",
        path.display()
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into()?) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let kind = elf.get(at..at + 4).context("truncated program headers")?;
        if u32::from_le_bytes(kind.try_into()?) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A busybox image with the static checker at [`PATH_IN_IMAGE`] as its entrypoint: give it
/// the checks (or a mode) as the container's args.
pub fn image() -> Result<ImageBuilder> {
    Ok(ImageBuilder::busybox()
        .copy(PATH_IN_IMAGE, static_binary()?, 0o755)
        .entrypoint([PATH_IN_IMAGE]))
}
