//! Test images without a public registry: an OCI layout built from the host's busybox-static
//! (one 2 MB binary plus its applet links), a config (entrypoint, cmd, env, workdir, user) and
//! extra files such as a test binary, pushed with [`crate::registry::Registry::push_image`].
//!
//! The root filesystem is written to a scratch directory, packed with `tar` into one layer and
//! added with `umoci raw add-layer`; `umoci config` sets the config. Building one takes a few
//! hundred milliseconds. Needs the Debian packages `busybox-static`, `umoci` and `tar`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::run;

/// Where the busybox-static package installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// A tagged image in an OCI layout: what `skopeo copy oci:<layout>:<tag>` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciImage {
    pub layout: PathBuf,
    pub tag: String,
}

impl OciImage {
    /// The manifest digest (`sha256:...`) the layout's index gives the tag: the image's digest
    /// once pushed (skopeo copies OCI manifests unchanged).
    pub fn digest(&self) -> Result<String> {
        layout_tags(&self.layout)?
            .into_iter()
            .find(|(tag, _)| *tag == self.tag)
            .map(|(_, digest)| digest)
            .with_context(|| format!("tag {} not in {}", self.tag, self.layout.display()))
    }
}

/// The tags of an OCI layout's `index.json` with their manifest digests, in index order.
pub fn layout_tags(layout: &Path) -> Result<Vec<(String, String)>> {
    let path = layout.join("index.json");
    let index: serde_json::Value = serde_json::from_slice(
        &fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    let mut tags = Vec::new();
    for m in index["manifests"].as_array().into_iter().flatten() {
        if let (Some(tag), Some(digest)) = (
            m["annotations"]["org.opencontainers.image.ref.name"].as_str(),
            m["digest"].as_str(),
        ) {
            tags.push((tag.to_owned(), digest.to_owned()));
        }
    }
    Ok(tags)
}

/// What the image config says about the process to run (the OCI `config` section).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `uid[:gid]` or a name from the image's /etc/passwd.
    pub user: Option<String>,
    /// `8080/tcp`.
    pub exposed_ports: Vec<String>,
    pub labels: Vec<(String, String)>,
}

type Customize = Box<dyn Fn(&Path) -> Result<()>>;

enum Entry {
    Bytes {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Copy {
        path: String,
        from: PathBuf,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
}

/// Builds a one-layer image: busybox, its applets, a minimal /etc, then the added entries (which
/// win over the defaults), then the `customize` hooks on the finished root filesystem.
pub struct ImageBuilder {
    config: ImageConfig,
    applets: bool,
    entries: Vec<Entry>,
    customize: Vec<Customize>,
}

impl std::fmt::Debug for ImageBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageBuilder")
            .field("config", &self.config)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl ImageBuilder {
    /// `/bin/busybox` with every applet linked where busybox installs it (`/bin/sh`,
    /// `/bin/sleep`, `/usr/bin/wget`, ...), `/etc/passwd` and `/etc/group` (root, nobody),
    /// and empty `/tmp`, `/root`, `/proc`, `/sys`, `/dev`. `PATH` is set in the config.
    pub fn busybox() -> ImageBuilder {
        ImageBuilder {
            config: ImageConfig {
                env: vec!["PATH=/usr/sbin:/usr/bin:/sbin:/bin".into()],
                ..Default::default()
            },
            applets: true,
            entries: Vec::new(),
            customize: Vec::new(),
        }
    }

    /// Only `/bin/busybox` and the `/bin/sh` link: the smallest useful root.
    pub fn busybox_minimal() -> ImageBuilder {
        ImageBuilder {
            applets: false,
            ..ImageBuilder::busybox()
        }
    }

    pub fn entrypoint<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.config.entrypoint = args.into_iter().map(Into::into).collect();
        self
    }

    pub fn cmd<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.config.cmd = args.into_iter().map(Into::into).collect();
        self
    }

    /// Adds (or replaces) `NAME=value` in the config's environment.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        let prefix = format!("{name}=");
        self.config.env.retain(|e| !e.starts_with(&prefix));
        self.config.env.push(format!("{name}={value}"));
        self
    }

    pub fn workdir(mut self, dir: &str) -> Self {
        self.config.working_dir = Some(dir.into());
        self
    }

    pub fn user(mut self, user: &str) -> Self {
        self.config.user = Some(user.into());
        self
    }

    pub fn expose(mut self, port: &str) -> Self {
        self.config.exposed_ports.push(port.into());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.config.labels.push((key.into(), value.into()));
        self
    }

    /// A file at `path` (absolute, in the image) with `data` and permission bits `mode`.
    pub fn file(mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.entries.push(Entry::Bytes {
            path: path.into(),
            data: data.into(),
            mode,
        });
        self
    }

    /// The host file `from` copied to `path` in the image with permission bits `mode` (e.g. a
    /// test binary with 0o755).
    pub fn copy(mut self, path: &str, from: impl Into<PathBuf>, mode: u32) -> Self {
        self.entries.push(Entry::Copy {
            path: path.into(),
            from: from.into(),
            mode,
        });
        self
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.entries.push(Entry::Dir {
            path: path.into(),
            mode,
        });
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.entries.push(Entry::Symlink {
            path: path.into(),
            target: target.into(),
        });
        self
    }

    /// Runs `f` on the root filesystem directory before it is packed, for what the other
    /// methods cannot say (hard links, owners, device nodes).
    pub fn customize(mut self, f: impl Fn(&Path) -> Result<()> + 'static) -> Self {
        self.customize.push(Box::new(f));
        self
    }

    pub fn config(&self) -> &ImageConfig {
        &self.config
    }

    /// Writes the image into the OCI layout at `layout` (created if missing; other tags stay)
    /// as `tag`.
    pub fn build(&self, layout: &Path, tag: &str) -> Result<OciImage> {
        let parent = layout
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(parent)?;
        let scratch = tempfile::Builder::new()
            .prefix(".image-build-")
            .tempdir_in(parent)?;
        let root = scratch.path().join("rootfs");
        self.write_rootfs(&root)?;

        // The layer: top-level names, so entries read `bin/busybox` (no `./` prefix), with
        // numeric owners so the host's user names do not matter.
        let mut names: Vec<_> = fs::read_dir(&root)?
            .map(|e| Ok(e?.file_name()))
            .collect::<Result<_>>()?;
        names.sort();
        let tar = scratch.path().join("layer.tar");
        run(Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["--numeric-owner", "-cf"])
            .arg(&tar)
            .args(&names))?;

        if !layout.join("index.json").exists() {
            run(Command::new("umoci").args(["init", "--layout"]).arg(layout))
                .context("umoci init (apt install umoci)")?;
        }
        let image = format!("{}:{tag}", layout.display());
        run(Command::new("umoci").args(["new", "--image", &image]))?;
        run(Command::new("umoci")
            .args(["raw", "add-layer", "--no-history", "--image", &image])
            .arg(&tar))?;
        let mut config = Command::new("umoci");
        config.args(["config", "--no-history", "--image", &image]);
        let c = &self.config;
        for arg in &c.entrypoint {
            config.args(["--config.entrypoint", arg]);
        }
        for arg in &c.cmd {
            config.args(["--config.cmd", arg]);
        }
        for env in &c.env {
            config.args(["--config.env", env]);
        }
        if let Some(dir) = &c.working_dir {
            config.args(["--config.workingdir", dir]);
        }
        if let Some(user) = &c.user {
            config.args(["--config.user", user]);
        }
        for port in &c.exposed_ports {
            config.args(["--config.exposedports", port]);
        }
        for (key, value) in &c.labels {
            config.args(["--config.label", &format!("{key}={value}")]);
        }
        run(&mut config)?;
        Ok(OciImage {
            layout: layout.to_path_buf(),
            tag: tag.to_owned(),
        })
    }

    fn write_rootfs(&self, root: &Path) -> Result<()> {
        for dir in ["bin", "etc", "proc", "sys", "dev", "root"] {
            fs::create_dir_all(root.join(dir))?;
        }
        fs::create_dir_all(root.join("tmp"))?;
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
        fs::copy(BUSYBOX, root.join("bin/busybox"))
            .with_context(|| format!("copying {BUSYBOX} (apt install busybox-static)"))?;
        std::os::unix::fs::symlink("busybox", root.join("bin/sh"))?;
        if self.applets {
            for applet in busybox_applets()? {
                let link = root.join(&applet);
                if link.symlink_metadata().is_ok() {
                    continue;
                }
                if let Some(dir) = link.parent() {
                    fs::create_dir_all(dir)?;
                }
                // Relative links, so they also resolve from the host (tests look at layers).
                let target = if applet.starts_with("bin/") {
                    "busybox".to_owned()
                } else {
                    let depth = Path::new(&applet).components().count() - 1;
                    format!("{}bin/busybox", "../".repeat(depth))
                };
                std::os::unix::fs::symlink(target, link)?;
            }
        }
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )?;
        fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;

        for entry in &self.entries {
            match entry {
                Entry::Bytes { path, data, mode } => {
                    let dest = in_root(root, path)?;
                    replace(&dest)?;
                    fs::write(&dest, data)?;
                    fs::set_permissions(&dest, fs::Permissions::from_mode(*mode))?;
                }
                Entry::Copy { path, from, mode } => {
                    let dest = in_root(root, path)?;
                    replace(&dest)?;
                    fs::copy(from, &dest)
                        .with_context(|| format!("copying {} into the image", from.display()))?;
                    fs::set_permissions(&dest, fs::Permissions::from_mode(*mode))?;
                }
                Entry::Dir { path, mode } => {
                    let dest = in_root(root, path)?;
                    fs::create_dir_all(&dest)?;
                    fs::set_permissions(&dest, fs::Permissions::from_mode(*mode))?;
                }
                Entry::Symlink { path, target } => {
                    let dest = in_root(root, path)?;
                    replace(&dest)?;
                    std::os::unix::fs::symlink(target, &dest)?;
                }
            }
        }
        for f in &self.customize {
            f(root)?;
        }
        Ok(())
    }
}

/// `busybox --list-full` without `linuxrc`: `bin/sh`, `usr/bin/wget`, ...
fn busybox_applets() -> Result<Vec<String>> {
    let out = run(Command::new(BUSYBOX).arg("--list-full"))?;
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|l| l.contains('/') && !l.contains(".."))
        .map(str::to_owned)
        .collect())
}

/// `path` (absolute in the image) below `root`, its parent directories created.
fn in_root(root: &Path, path: &str) -> Result<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    ensure!(
        rel.components().all(|c| matches!(c, Component::Normal(_))) && !path.is_empty(),
        "image path {path:?} must be absolute and normal"
    );
    let dest = root.join(rel);
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir)?;
    }
    Ok(dest)
}

/// Removes what is at `path` so a new entry can take its place (an applet link, say).
fn replace(path: &Path) -> Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => bail!("{} is a directory in the image", path.display()),
        Ok(_) => Ok(fs::remove_file(path)?),
        Err(_) => Ok(()),
    }
}
