//! Image tests against a real registry: Debian's `docker-registry` on 127.0.0.1, images built
//! with umoci from a busybox-static root filesystem and pushed with skopeo (the shared fixtures
//! of `maestro_e2e::{registry, image}`), pulled, unpacked and mounted through
//! `maestro_oci::image`. Needs root (overlay mounts, device nodes, chown) and
//! the packages `docker-registry umoci skopeo busybox-static apache2-utils`.
//!
//! Every test starts its own registry on a free port and works in its own temp dir; the
//! registry is killed by PID and snapshots are removed on drop, also when a test fails.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use maestro_e2e::image::{ImageBuilder, layout_tags};
use maestro_e2e::registry::{Registry, RegistryAuth};
use maestro_e2e::run;
use maestro_oci::image::{
    Credentials, Digest, DiskUsage, DockerConfig, GcPolicy, Image, ImageError, ImageStore,
    Platform, PullEvent, PullOptions, PullPolicy, Reference,
};

// --- harness ---------------------------------------------------------------------------------

/// Image names in the test registry as `maestro_oci` parses them.
trait RegistryExt {
    fn reference(&self, name: &str) -> Reference;
}

impl RegistryExt for Registry {
    fn reference(&self, name: &str) -> Reference {
        Reference::parse(&self.image(name)).unwrap()
    }
}

/// The OCI layout the tests push from, with its tags' manifest digests.
struct Layout {
    path: PathBuf,
    /// v1: busybox root; v2: v1 + a layer with a whiteout and an opaque dir; arm: v1's layers
    /// with an arm64 config; multi: an index of arm (first) and v2.
    digests: BTreeMap<String, Digest>,
}

/// Builds the test images: v1 with the shared image builder, the rest by hand with umoci.
fn build_layout(dir: &Path) -> Result<Layout> {
    let path = dir.join("layout");
    let image = |tag: &str| format!("{}:{tag}", path.display());
    // Content the unpacker must keep: a hard link, an owner and mode, a dir the next layer
    // makes opaque.
    ImageBuilder::busybox_minimal()
        .dir("/work", 0o755)
        .file("/etc/motd", "hello\n", 0o644)
        .file("/var/cache/old", "old\n", 0o644)
        .file("/etc/secret", "s\n", 0o600)
        .customize(|root| {
            fs::hard_link(root.join("etc/motd"), root.join("etc/motd.link"))?;
            std::os::unix::fs::lchown(root.join("etc/secret"), Some(1000), Some(1001))?;
            Ok(())
        })
        .entrypoint(["/bin/sh", "-c"])
        .cmd(["echo hi"])
        .env("PATH", "/bin")
        .env("FOO", "bar")
        .workdir("/work")
        .user("1000:1000")
        .expose("8080/tcp")
        .build(&path, "v1")?;

    // A layer written by hand: a whiteout for etc/motd, an opaque var/cache with a new file.
    let upper = dir.join("layer2");
    fs::create_dir_all(upper.join("etc"))?;
    fs::create_dir_all(upper.join("var/cache"))?;
    fs::write(upper.join("etc/.wh.motd"), "")?;
    fs::write(upper.join("var/cache/.wh..wh..opq"), "")?;
    fs::write(upper.join("var/cache/new"), "new\n")?;
    let tar = dir.join("layer2.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&upper)
        .arg("-cf")
        .arg(&tar)
        .args(["etc", "var"]))?;
    run(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &image("v1"), "--tag", "v2"])
        .arg(&tar))?;
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image("v1"),
        "--tag",
        "arm",
        "--architecture",
        "arm64",
    ]))?;

    let mut digests = read_layout_tags(&path)?;
    // The index, written into the layout by hand (umoci makes none): arm64 first, so taking
    // the first entry would be wrong on amd64.
    let entry = |tag: &str, arch: &str| -> Result<serde_json::Value> {
        let digest = &digests[tag];
        let size = fs::metadata(path.join("blobs/sha256").join(digest.hex()))?.len();
        Ok(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest.as_str(), "size": size,
            "platform": {"os": "linux", "architecture": arch}
        }))
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("arm", "arm64")?, entry("v2", "amd64")?],
    }))?;
    let index_digest = Digest::of(&index);
    fs::write(path.join("blobs/sha256").join(index_digest.hex()), &index)?;
    let mut layout_index: serde_json::Value =
        serde_json::from_slice(&fs::read(path.join("index.json"))?)?;
    layout_index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest.as_str(), "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"}
        }));
    fs::write(path.join("index.json"), serde_json::to_vec(&layout_index)?)?;
    digests.insert("multi".into(), index_digest);
    Ok(Layout { path, digests })
}

fn read_layout_tags(layout: &Path) -> Result<BTreeMap<String, Digest>> {
    layout_tags(layout)?
        .into_iter()
        .map(|(tag, digest)| Ok((tag, Digest::parse(&digest)?)))
        .collect()
}

/// A temp dir with a registry, the layout, and a store.
struct Env {
    registry: Registry,
    layout: Layout,
    store: ImageStore,
    dir: tempfile::TempDir,
}

impl Env {
    fn new(auth: RegistryAuth) -> Result<Env> {
        let dir = tempfile::tempdir()?;
        let registry = Registry::start(dir.path(), &auth)?;
        let layout = build_layout(dir.path())?;
        let store = ImageStore::open(&dir.path().join("store"))?;
        Ok(Env {
            registry,
            layout,
            store,
            dir,
        })
    }
}

/// Removes the snapshots a test made, also when it fails.
struct SnapshotCleanup<'a>(&'a ImageStore, Vec<&'static str>);

impl Drop for SnapshotCleanup<'_> {
    fn drop(&mut self) {
        for id in &self.1 {
            if let Err(e) = self.0.remove_snapshot(id) {
                eprintln!("cleanup of snapshot {id}: {e}");
            }
        }
    }
}

/// Collects pull events.
#[derive(Default)]
struct Events(Mutex<Vec<PullEvent>>);

impl Events {
    fn take(&self) -> Vec<PullEvent> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

async fn pull(
    store: &ImageStore,
    reference: &Reference,
    options: &PullOptions,
) -> Result<Image, ImageError> {
    store.pull(reference, options, &|_| {}).await
}

fn layer_names(store: &ImageStore) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(store.root().join("layers"))?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    Ok(names)
}

fn layer_path(store: &ImageStore, diff_id: &Digest, rel: &str) -> PathBuf {
    store
        .root()
        .join("layers")
        .join(diff_id.hex())
        .join("fs")
        .join(rel)
}

fn is_mount_point(path: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

// --- tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn pulls_oci_and_docker_manifests_sharing_layers() -> Result<()> {
    let env = Env::new(RegistryAuth::None)?;
    let (reg, store) = (&env.registry, &env.store);
    reg.push(&env.layout.path, "v1", "test/busybox:v1")?;
    reg.push(&env.layout.path, "v2", "test/busybox:v2")?;
    reg.push_with(
        &env.layout.path,
        "v1",
        "test/docker:v1",
        &["--format", "v2s2"],
    )?;
    let options = PullOptions::default();

    let events = Events::default();
    let record = |e: &PullEvent| events.0.lock().unwrap().push(e.clone());
    let v1 = store
        .pull(&reg.reference("test/busybox:v1"), &options, &record)
        .await?;
    assert_eq!(
        v1.digest, env.layout.digests["v1"],
        "OCI manifests are stored unchanged"
    );
    assert_eq!(v1.layers.len(), 1);
    assert_eq!(v1.config.entrypoint, ["/bin/sh", "-c"]);
    assert_eq!(v1.config.cmd, ["echo hi"]);
    assert!(
        v1.config.env.contains(&"FOO=bar".to_owned()),
        "{:?}",
        v1.config.env
    );
    assert_eq!(v1.config.working_dir.as_deref(), Some("/work"));
    assert_eq!(v1.config.user.as_deref(), Some("1000:1000"));
    assert_eq!(v1.config.exposed_ports, ["8080/tcp"]);
    assert_eq!(v1.platform, Platform::new("linux", "amd64", None));
    let tag = format!("{}/test/busybox:v1", reg.host());
    assert!(v1.names.contains(&tag), "{:?}", v1.names);
    assert_eq!(
        v1.repo_digest(),
        Some(format!("{}/test/busybox@{}", reg.host(), v1.digest).as_str())
    );
    let seen = events.take();
    assert!(
        matches!(&seen[0], PullEvent::Resolved { digest, .. } if *digest == v1.digest),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, PullEvent::LayerStarted { .. }))
    );
    assert!(seen.iter().any(
        |e| matches!(e, PullEvent::LayerProgress { downloaded, size, .. } if downloaded == size)
    ));
    assert!(
        matches!(seen.last(), Some(PullEvent::Done { downloaded, .. }) if *downloaded > 500_000)
    );

    // The unpacked base layer keeps modes, owners, symlinks and hard links.
    let base = &v1.layers[0];
    let busybox = fs::metadata(layer_path(store, base, "bin/busybox"))?;
    assert_eq!(busybox.mode() & 0o777, 0o755);
    assert_eq!(
        fs::read_link(layer_path(store, base, "bin/sh"))?,
        Path::new("busybox")
    );
    assert_eq!(
        fs::metadata(layer_path(store, base, "etc/motd.link"))?.ino(),
        fs::metadata(layer_path(store, base, "etc/motd"))?.ino()
    );
    let secret = fs::metadata(layer_path(store, base, "etc/secret"))?;
    assert_eq!(
        (secret.uid(), secret.gid(), secret.mode() & 0o777),
        (1000, 1001, 0o600)
    );

    // v2 shares the base layer: only its own layer is downloaded.
    let v2 = store
        .pull(&reg.reference("test/busybox:v2"), &options, &record)
        .await?;
    assert_eq!(v2.digest, env.layout.digests["v2"]);
    assert_eq!(v2.layers.len(), 2);
    assert_eq!(&v2.layers[0], base);
    let seen = events.take();
    assert!(
        seen.iter()
            .any(|e| matches!(e, PullEvent::LayerCached { .. })),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|e| matches!(e, PullEvent::LayerStarted { .. }))
            .count(),
        1
    );
    let top = &v2.layers[1];
    assert!(
        fs::symlink_metadata(layer_path(store, top, "etc/motd"))?
            .file_type()
            .is_char_device()
    );
    let mut opaque = [0u8; 4];
    let n = rustix::fs::lgetxattr(
        layer_path(store, top, "var/cache"),
        "trusted.overlay.opaque",
        &mut opaque[..],
    )?;
    assert_eq!(&opaque[..n], b"y");

    // A Docker v2 schema 2 manifest of the same image: other config digest, same layers.
    let docker = pull(store, &reg.reference("test/docker:v1"), &options).await?;
    assert_ne!(docker.digest, v1.digest);
    assert_eq!(docker.layers, v1.layers);
    assert_eq!(docker.config.entrypoint, v1.config.entrypoint);
    assert_eq!(layer_names(store)?, {
        let mut l = vec![base.hex().to_owned(), top.hex().to_owned()];
        l.sort();
        l
    });
    assert_eq!(store.images()?.len(), 3);

    // Pulling again asks for the manifest only.
    let again = store
        .pull(&reg.reference("test/busybox:v1"), &options, &record)
        .await?;
    assert_eq!(again.digest, v1.digest);
    assert!(matches!(
        events.take().last(),
        Some(PullEvent::Done { downloaded: 0, .. })
    ));
    // By digest.
    let by_digest = pull(
        store,
        &reg.reference(&format!("test/busybox@{}", v1.digest)),
        &options,
    )
    .await?;
    assert_eq!(by_digest.digest, v1.digest);

    // The store survives a reopen (an agent restart).
    let reopened = ImageStore::open(store.root())?;
    let found = reopened
        .get(&reg.reference("test/busybox:v2"))?
        .context("v2 after reopen")?;
    assert_eq!(found.layers, v2.layers);
    assert_eq!(
        reopened.get_by_digest(&v2.config_digest)?.map(|i| i.digest),
        Some(v2.digest.clone())
    );
    Ok(())
}

#[tokio::test]
async fn pull_policies_and_precise_errors() -> Result<()> {
    let env = Env::new(RegistryAuth::None)?;
    let (reg, store) = (&env.registry, &env.store);
    reg.push(&env.layout.path, "v1", "test/busybox:v1")?;
    let options = PullOptions::default();
    let noop = |_: &PullEvent| {};

    let missing_tag = pull(store, &reg.reference("test/busybox:nope"), &options).await;
    assert!(
        matches!(missing_tag, Err(ImageError::NotFound { .. })),
        "{missing_tag:?}"
    );
    let missing_repo = pull(store, &reg.reference("test/nothing:v1"), &options).await;
    assert!(
        matches!(missing_repo, Err(ImageError::NotFound { .. })),
        "{missing_repo:?}"
    );
    let wrong = Digest::of(b"no such manifest");
    let missing_digest = pull(
        store,
        &reg.reference(&format!("test/busybox@{wrong}")),
        &options,
    )
    .await;
    assert!(
        matches!(missing_digest, Err(ImageError::NotFound { .. })),
        "{missing_digest:?}"
    );
    assert_eq!(missing_digest.unwrap_err().kubelet_reason(), "ErrImagePull");

    // Nothing listens there: a network error, retried by the agent with back-off.
    let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let refused = pull(
        store,
        &Reference::parse(&format!("127.0.0.1:{closed}/x:y"))?,
        &options,
    )
    .await;
    assert!(
        matches!(&refused, Err(e @ ImageError::Network { .. }) if e.is_transient()),
        "{refused:?}"
    );

    // A registry name mapped to the test registry.
    let mut mapped = options.clone();
    mapped
        .endpoints
        .insert("registry.example.test".into(), reg.host());
    let image = pull(
        store,
        &Reference::parse("registry.example.test/test/busybox:v1")?,
        &mapped,
    )
    .await?;
    assert!(
        image
            .names
            .contains(&"registry.example.test/test/busybox:v1".to_owned()),
        "{:?}",
        image.names
    );

    // imagePullPolicy.
    let never = store
        .ensure(
            &reg.reference("test/busybox:v9"),
            PullPolicy::Never,
            &options,
            &noop,
        )
        .await;
    assert!(
        matches!(&never, Err(e @ ImageError::NeverPull { .. }) if e.kubelet_reason() == "ErrImageNeverPull")
    );
    let present = store
        .ensure(
            &reg.reference("test/busybox:v1"),
            PullPolicy::IfNotPresent,
            &options,
            &noop,
        )
        .await?;
    assert_eq!(present.digest, env.layout.digests["v1"]);
    let never_present = store
        .ensure(
            &reg.reference("test/busybox:v1"),
            PullPolicy::Never,
            &options,
            &noop,
        )
        .await?;
    assert_eq!(never_present.digest, present.digest);
    // IfNotPresent must not touch the registry: it works with the registry gone.
    let reference = reg.reference("test/busybox:v1");
    drop(env.registry);
    let offline = store
        .ensure(&reference, PullPolicy::IfNotPresent, &options, &noop)
        .await?;
    assert_eq!(offline.digest, present.digest);
    let always = store
        .ensure(&reference, PullPolicy::Always, &options, &noop)
        .await;
    assert!(
        matches!(always, Err(ImageError::Network { .. })),
        "{always:?}"
    );
    Ok(())
}

#[tokio::test]
async fn basic_auth_from_pull_secrets() -> Result<()> {
    let env = Env::new(RegistryAuth::basic("maestro", "s3cret"))?;
    let (reg, store) = (&env.registry, &env.store);
    reg.push_with(
        &env.layout.path,
        "v1",
        "private/busybox:v1",
        &["--dest-creds", "maestro:s3cret"],
    )?;
    let reference = reg.reference("private/busybox:v1");

    let anonymous = pull(store, &reference, &PullOptions::default()).await;
    assert!(
        matches!(anonymous, Err(ImageError::Unauthorized { .. })),
        "{anonymous:?}"
    );
    let bad = PullOptions {
        credentials: vec![Credentials::new("maestro", "wrong")],
        ..Default::default()
    };
    let wrong = pull(store, &reference, &bad).await;
    assert!(
        matches!(wrong, Err(ImageError::Unauthorized { .. })),
        "{wrong:?}"
    );

    // As the agent gets it: a kubernetes.io/dockerconfigjson secret.
    let secret = format!(
        r#"{{"auths":{{"{}":{{"username":"maestro","password":"s3cret"}}}}}}"#,
        reg.host()
    );
    let mut creds = vec![Credentials::new("maestro", "wrong")];
    creds.extend(DockerConfig::parse(secret.as_bytes())?.credentials_for(&reference));
    let options = PullOptions {
        credentials: creds,
        ..Default::default()
    };
    let image = pull(store, &reference, &options).await?;
    assert_eq!(image.digest, env.layout.digests["v1"]);
    Ok(())
}

#[tokio::test]
async fn index_selects_the_platform() -> Result<()> {
    let env = Env::new(RegistryAuth::None)?;
    let (reg, store) = (&env.registry, &env.store);
    reg.push_with(&env.layout.path, "multi", "test/multi:latest", &["--all"])?;
    let reference = reg.reference("test/multi");

    let amd64 = pull(
        store,
        &reference,
        &PullOptions {
            platform: Platform::new("linux", "amd64", None),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(amd64.digest, env.layout.digests["v2"]);
    assert_eq!(
        amd64.repo_digest(),
        Some(format!("{}/test/multi@{}", reg.host(), env.layout.digests["multi"]).as_str())
    );
    let arm64 = pull(
        store,
        &reference,
        &PullOptions {
            platform: Platform::new("linux", "arm64", Some("v8")),
            ..Default::default()
        },
    )
    .await?;
    assert_eq!(arm64.digest, env.layout.digests["arm"]);
    assert_eq!(arm64.platform.architecture, "arm64");
    let none = pull(
        store,
        &reference,
        &PullOptions {
            platform: Platform::new("linux", "s390x", None),
            ..Default::default()
        },
    )
    .await;
    assert!(
        matches!(none, Err(ImageError::NoMatchingPlatform { .. })),
        "{none:?}"
    );
    // The index digest names the image too.
    let by_index =
        store.get(&reg.reference(&format!("test/multi@{}", env.layout.digests["multi"])))?;
    assert!(by_index.is_some());
    Ok(())
}

#[tokio::test]
async fn snapshots_mount_the_merged_view_and_clean_up() -> Result<()> {
    let env = Env::new(RegistryAuth::None)?;
    let (reg, store) = (&env.registry, &env.store);
    reg.push(&env.layout.path, "v2", "test/busybox:v2")?;
    reg.push(&env.layout.path, "v1", "test/busybox:v1")?;
    let v2 = pull(
        store,
        &reg.reference("test/busybox:v2"),
        &PullOptions::default(),
    )
    .await?;
    let v1 = pull(
        store,
        &reg.reference("test/busybox:v1"),
        &PullOptions::default(),
    )
    .await?;
    let _cleanup = SnapshotCleanup(store, vec!["c1", "c2"]);

    let snap = store.create_snapshot("c1", &v2)?;
    assert!(is_mount_point(&snap.rootfs));
    assert!(!fs::symlink_metadata(&snap.rootfs)?.file_type().is_symlink());
    let rootfs = &snap.rootfs;
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(
        !rootfs.join("etc/motd").exists(),
        "whited out in the top layer"
    );
    assert!(
        rootfs.join("etc/motd.link").exists(),
        "the other name of the inode stays"
    );
    assert!(
        !rootfs.join("var/cache/old").exists(),
        "hidden by the opaque dir"
    );
    assert_eq!(fs::read_to_string(rootfs.join("var/cache/new"))?, "new\n");
    // The image runs from it, and writes land in the upper dir, not in the layers.
    let out = run(Command::new("chroot").arg(rootfs).args([
        "/bin/sh",
        "-c",
        "echo written > /work/out; /bin/busybox cat /var/cache/new",
    ]))?;
    assert_eq!(out, "new\n");
    assert_eq!(
        fs::read_to_string(snap.upper.join("work/out"))?,
        "written\n"
    );
    fs::remove_file(rootfs.join("bin/sh"))?;
    assert!(
        layer_path(store, &v2.layers[0], "bin/sh")
            .symlink_metadata()
            .is_ok(),
        "layers are read-only"
    );

    // Idempotent create; another image under the same id is refused.
    assert_eq!(store.create_snapshot("c1", &v2)?, snap);
    assert!(matches!(
        store.create_snapshot("c1", &v1),
        Err(ImageError::Snapshot { .. })
    ));
    assert!(matches!(
        store.create_snapshot("../x", &v1),
        Err(ImageError::Snapshot { .. })
    ));
    // Images under a snapshot are not removed.
    assert!(matches!(
        store.remove_image(&v2.digest),
        Err(ImageError::Snapshot { .. })
    ));

    // A second container from a one-layer image, then an agent "crash": a fresh store finds
    // both snapshots and removes them.
    let snap2 = store.create_snapshot("c2", &v1)?;
    assert!(snap2.rootfs.join("etc/motd").exists());
    let restarted = ImageStore::open(store.root())?;
    assert_eq!(restarted.snapshot_ids()?, ["c1", "c2"]);
    // Unmounted behind our back (a reboot): create mounts it again with the old writes.
    rustix::mount::unmount(&snap2.rootfs, rustix::mount::UnmountFlags::empty())?;
    let again = restarted.create_snapshot("c2", &v1)?;
    assert!(is_mount_point(&again.rootfs));
    for id in restarted.snapshot_ids()? {
        restarted.remove_snapshot(&id)?;
        restarted.remove_snapshot(&id)?; // twice: idempotent
    }
    assert!(!is_mount_point(&snap.rootfs) && !is_mount_point(&snap2.rootfs));
    assert!(!snap.rootfs.exists() && !snap2.rootfs.exists());
    assert!(restarted.snapshot_ids()?.is_empty());
    store.remove_image(&v2.digest)?;
    assert_eq!(layer_names(store)?, [v1.layers[0].hex()]);
    Ok(())
}

#[tokio::test]
async fn imports_oci_archives_and_docker_save_tarballs() -> Result<()> {
    let env = Env::new(RegistryAuth::None)?;
    let dir = env.dir.path();
    let layout = &env.layout.path;
    let oci = dir.join("oci.tar");
    let save = dir.join("save.tar");
    run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:v2", layout.display()))
        .arg(format!(
            "oci-archive:{}:registry.example.test/imported/oci:v2",
            oci.display()
        )))?;
    run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:v2", layout.display()))
        .arg(format!(
            "docker-archive:{}:imported/busybox:v2",
            save.display()
        )))?;
    let gz = dir.join("save.tar.gz");
    run(Command::new("sh").arg("-c").arg(format!(
        "gzip -c {} > {}",
        save.display(),
        gz.display()
    )))?;

    let store = &env.store;
    let from_oci = store.import(&oci)?;
    assert_eq!(from_oci.len(), 1);
    assert_eq!(from_oci[0].digest, env.layout.digests["v2"]);
    assert!(
        from_oci[0]
            .names
            .contains(&"registry.example.test/imported/oci:v2".to_owned()),
        "{:?}",
        from_oci[0].names
    );
    let from_save = store.import(&save)?;
    assert_eq!(from_save.len(), 1);
    assert_eq!(
        from_save[0].layers, from_oci[0].layers,
        "same content, same diff ids"
    );
    assert_eq!(from_save[0].config.entrypoint, ["/bin/sh", "-c"]);
    assert!(
        from_save[0]
            .names
            .contains(&"docker.io/imported/busybox:v2".to_owned()),
        "{:?}",
        from_save[0].names
    );
    assert_eq!(layer_names(store)?.len(), 2);
    // Import again from gzip: same image, nothing new.
    let from_gz = store.import(&gz)?;
    assert_eq!(from_gz[0].digest, from_save[0].digest);
    assert_eq!(store.images()?.len(), 2);

    // And it can be run from.
    let _cleanup = SnapshotCleanup(store, vec!["imported"]);
    let snap = store.create_snapshot("imported", &from_save[0])?;
    assert!(snap.rootfs.join("bin/busybox").is_file() && !snap.rootfs.join("etc/motd").exists());
    store.remove_snapshot("imported")?;

    let junk = dir.join("junk.tar");
    fs::File::create(&junk)?.write_all(&[0u8; 1024])?;
    assert!(matches!(
        store.import(&junk),
        Err(ImageError::Import { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn garbage_collection_by_disk_thresholds() -> Result<()> {
    let env = Env::new(RegistryAuth::None)?;
    let (reg, store) = (&env.registry, &env.store);
    reg.push(&env.layout.path, "v1", "test/busybox:v1")?;
    reg.push(&env.layout.path, "v2", "test/busybox:v2")?;
    reg.push_with(
        &env.layout.path,
        "v1",
        "test/docker:v1",
        &["--format", "v2s2"],
    )?;
    let o = PullOptions::default();
    let v1 = pull(store, &reg.reference("test/busybox:v1"), &o).await?;
    let docker = pull(store, &reg.reference("test/docker:v1"), &o).await?;
    let v2 = pull(store, &reg.reference("test/busybox:v2"), &o).await?;
    std::thread::sleep(Duration::from_millis(5));
    store.touch(&v1.digest)?; // now docker is the least recently used
    let policy = GcPolicy {
        high_threshold_percent: 85,
        low_threshold_percent: 80,
        min_age: Duration::ZERO,
    };
    let gib = 1u64 << 30;

    // Below the high threshold: nothing goes.
    let report = store.gc(
        &policy,
        DiskUsage {
            capacity: 100 * gib,
            available: 20 * gib,
        },
        &HashSet::new(),
    )?;
    assert!(report.removed.is_empty());
    // Too young for min_age.
    let strict = GcPolicy {
        min_age: Duration::from_secs(3600),
        ..policy.clone()
    };
    let report = store.gc(
        &strict,
        DiskUsage {
            capacity: 100 * gib,
            available: 5 * gib,
        },
        &HashSet::new(),
    )?;
    assert!(report.removed.is_empty());
    // Above it, a byte to free: only the least recently used image goes.
    let report = store.gc(
        &policy,
        DiskUsage {
            capacity: 100,
            available: 14,
        },
        &HashSet::new(),
    )?;
    assert_eq!(report.removed, std::slice::from_ref(&docker.digest));
    assert!(
        !store
            .root()
            .join("blobs/sha256")
            .join(docker.digest.hex())
            .exists()
    );
    // skopeo kept the config when converting to Docker's format: still v1's.
    assert!(
        store
            .root()
            .join("blobs/sha256")
            .join(v1.config_digest.hex())
            .exists()
    );
    // Much to free, v2 in use (by config digest, as the agent may know it): v1 goes, and
    // the base layer stays for v2.
    let in_use: HashSet<Digest> = [v2.config_digest.clone()].into();
    let report = store.gc(
        &policy,
        DiskUsage {
            capacity: 100 * gib,
            available: gib,
        },
        &in_use,
    )?;
    assert_eq!(report.removed, std::slice::from_ref(&v1.digest));
    assert_eq!(store.images()?.len(), 1);
    assert_eq!(layer_names(store)?.len(), 2);
    assert!(store.get(&reg.reference("test/busybox:v1"))?.is_none());
    // Unused and nothing in use: the last image and all its content go.
    let report = store.gc(
        &policy,
        DiskUsage {
            capacity: 100 * gib,
            available: gib,
        },
        &HashSet::new(),
    )?;
    assert_eq!(report.removed, std::slice::from_ref(&v2.digest));
    assert!(report.freed > 1_000_000, "{report:?}");
    assert!(layer_names(store)?.is_empty());
    assert_eq!(fs::read_dir(store.root().join("blobs/sha256"))?.count(), 0);
    Ok(())
}

// --- bearer tokens -----------------------------------------------------------------------------

const TOKEN_SERVICE: &str = "maestro-test-registry";
const TOKEN_ISSUER: &str = "maestro-test-issuer";

/// A minimal token server (the part of Docker's token auth that is not the registry): checks
/// Basic credentials and answers an ES256 JWT granting the requested repository scopes, with
/// its certificate in `x5c` so the registry can check it against `rootcertbundle`.
struct TokenServer {
    realm: String,
    cert_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl TokenServer {
    async fn start(user: &'static str, password: &'static str) -> Result<TokenServer> {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let cert_key = rcgen::KeyPair::try_from(pkcs8.as_ref())?;
        let mut params = rcgen::CertificateParams::new(vec!["maestro-token".to_owned()])?;
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&cert_key)?;
        let cert_der = cert.der().to_vec();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let realm = format!("http://{}/token", listener.local_addr()?);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = answer_token_request(stream, user, password, &key, &cert_der).await;
            }
        });
        Ok(TokenServer {
            realm,
            cert_pem: cert.pem(),
            task,
        })
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer_token_request(
    mut stream: tokio::net::TcpStream,
    user: &str,
    password: &str,
    key: &ring::signature::EcdsaKeyPair,
    cert_der: &[u8],
) -> Result<()> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        ensure!(n > 0, "connection closed");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split(' ').nth(1).unwrap_or("");
    let expected = format!("basic {}", STANDARD.encode(format!("{user}:{password}")));
    let authorized = head.lines().any(|l| {
        l.to_ascii_lowercase().starts_with("authorization:")
            && l[14..].trim().eq_ignore_ascii_case(&expected)
    });
    let (status, body) = if authorized {
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let mut access = Vec::new();
        for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
            if k == "scope" {
                let scope = v
                    .replace("%3A", ":")
                    .replace("%2F", "/")
                    .replace("%2C", ",");
                let (kind, rest) = scope.split_once(':').unwrap_or(("", ""));
                let (name, actions) = rest.rsplit_once(':').unwrap_or(("", ""));
                access.push(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}));
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let header =
            serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(cert_der)]});
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER, "sub": user, "aud": TOKEN_SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
        );
        let signature = key
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let token = format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        );
        (
            "200 OK",
            serde_json::json!({"token": token, "access_token": token}).to_string(),
        )
    } else {
        (
            "401 Unauthorized",
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#.to_owned(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_auth() -> Result<()> {
    let tokens = TokenServer::start("maestro", "t0ken").await?;
    let env = Env::new(RegistryAuth::Token {
        realm: tokens.realm.clone(),
        service: TOKEN_SERVICE.into(),
        issuer: TOKEN_ISSUER.into(),
        cert_pem: tokens.cert_pem.clone(),
    })?;
    let (reg, store) = (&env.registry, &env.store);
    // skopeo blocks on the token server, which runs on this runtime's other worker.
    tokio::task::block_in_place(|| {
        reg.push_with(
            &env.layout.path,
            "v1",
            "private/busybox:v1",
            &["--dest-creds", "maestro:t0ken"],
        )
    })?;
    let reference = reg.reference("private/busybox:v1");

    let anonymous = pull(store, &reference, &PullOptions::default()).await;
    assert!(
        matches!(anonymous, Err(ImageError::Unauthorized { .. })),
        "{anonymous:?}"
    );
    let options = PullOptions {
        credentials: vec![Credentials::new("maestro", "t0ken")],
        ..Default::default()
    };
    let image = pull(store, &reference, &options).await?;
    assert_eq!(image.digest, env.layout.digests["v1"]);
    assert_eq!(image.layers.len(), 1);
    Ok(())
}

/// Flips one byte in the middle of a blob in the registry's storage (the registry serves what
/// is on disk without checking it again).
fn corrupt_registry_blob(registry: &Registry, digest: &Digest) -> Result<()> {
    let path = registry
        .data_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&digest.hex()[..2])
        .join(digest.hex())
        .join("data");
    let mut bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&path, bytes)?;
    Ok(())
}

#[tokio::test]
async fn corrupt_content_is_refused() -> Result<()> {
    let env = Env::new(RegistryAuth::None)?;
    let (reg, store) = (&env.registry, &env.store);
    reg.push(&env.layout.path, "v1", "test/busybox:v1")?;
    reg.push(&env.layout.path, "v2", "test/busybox:v2")?;
    let manifest = |tag: &str| -> Result<serde_json::Value> {
        let digest = &env.layout.digests[tag];
        Ok(serde_json::from_slice(&fs::read(
            env.layout.path.join("blobs/sha256").join(digest.hex()),
        )?)?)
    };
    let digest_at = |v: &serde_json::Value| Digest::parse(v["digest"].as_str().unwrap()).unwrap();

    corrupt_registry_blob(&env.registry, &digest_at(&manifest("v1")?["config"]))?;
    let config = pull(
        store,
        &reg.reference("test/busybox:v1"),
        &PullOptions::default(),
    )
    .await;
    assert!(
        matches!(&config, Err(ImageError::DigestMismatch { what, .. }) if what.contains("config")),
        "{config:?}"
    );

    let top = digest_at(&manifest("v2")?["layers"][1]);
    corrupt_registry_blob(&env.registry, &top)?;
    let layer = pull(
        store,
        &reg.reference("test/busybox:v2"),
        &PullOptions::default(),
    )
    .await;
    assert!(
        matches!(&layer, Err(ImageError::DigestMismatch { what, .. }) if what.contains("layer")),
        "{layer:?}"
    );
    assert!(store.images()?.is_empty());
    // Nothing half-written: the good base layer may stay (a retry reuses it), the bad one not.
    assert_eq!(layer_names(store)?.len(), 1);
    assert_eq!(fs::read_dir(store.root().join("tmp"))?.count(), 0);
    Ok(())
}
