//! The harness's own fixtures, end to end: a checker image is built, pushed to the private
//! registry, read back from it, unpacked, and the static checker runs in it with nothing but
//! busybox around (chroot in private mount and pid namespaces, so the proc mount and every
//! process go away with the test). Needs root and `docker-registry umoci skopeo busybox-static`.

use std::fs;
use std::process::Command;

use anyhow::{Context, Result};
use maestro_e2e::image::ImageBuilder;
use maestro_e2e::registry::{Registry, RegistryAuth};
use maestro_e2e::{checker, run};

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

#[test]
fn checker_is_static_and_runs_in_a_busybox_image_from_the_registry() -> Result<()> {
    if !is_root() {
        eprintln!("skipping: needs root (umoci unpack, chroot)");
        return Ok(());
    }
    let binary = checker::static_binary()?;
    assert!(checker::is_static(&binary)?);
    assert!(!checker::is_static(&std::env::current_exe()?)?);

    let dir = tempfile::tempdir()?;
    let registry = Registry::start(dir.path(), &RegistryAuth::None)?;
    let image = checker::image()?
        .file("/etc/greeting", "hello\n", 0o640)
        .env("GREETING", "hello world")
        .workdir("/tmp")
        .cmd(["exists", "/bin/busybox"])
        .build(&dir.path().join("layout"), "checker")?;
    let name = registry.push_image(&image, "test/checker:v1")?;
    assert_eq!(name, format!("{}/test/checker:v1", registry.host()));

    // What a node will pull: the config and one small layer.
    let inspect: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(format!("docker://{name}")))?)?;
    assert_eq!(inspect["Digest"], image.digest()?.as_str());
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(1));
    let config: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo")
        .args(["inspect", "--config", "--tls-verify=false"])
        .arg(format!("docker://{name}")))?)?;
    assert_eq!(config["config"]["Entrypoint"][0], checker::PATH_IN_IMAGE);
    assert_eq!(config["config"]["WorkingDir"], "/tmp");
    let env = config["config"]["Env"].to_string();
    assert!(
        env.contains("GREETING=hello world") && env.contains("PATH="),
        "{env}"
    );

    // Copy it back from the registry and run it as a container would, minus the runtime.
    let pulled = dir.path().join("pulled");
    run(Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{name}"))
        .arg(format!("oci:{}:v1", pulled.display())))?;
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", pulled.display()))
        .arg(&bundle))?;
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("usr/bin/wget").symlink_metadata().is_ok());
    assert!(
        !rootfs.join("lib").exists(),
        "no libc in the image: the checker must be static"
    );
    let out = Command::new("unshare")
        .args(["--mount", "--pid", "--fork"])
        .arg(format!("--mount-proc={}", rootfs.join("proc").display()))
        // The environment is the container's: cleared, so the path to chroot is spelled out.
        .arg("/usr/sbin/chroot")
        .arg(&rootfs)
        .arg(checker::PATH_IN_IMAGE)
        .args([
            "pid",
            "1",
            "uid",
            "0",
            "file",
            "/etc/greeting=hello",
            "mode",
            "/etc/greeting=0640",
            "exists",
            "/bin/sleep",
            "env",
            "GREETING=hello world",
            "absent",
            "/etc/shadow",
        ])
        .env_clear()
        .env("GREETING", "hello world")
        .output()
        .context("unshare + chroot")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok file /etc/greeting=hello\n"), "{stdout}");
    assert!(stdout.ends_with("7 of 7 checks passed\n"), "{stdout}");

    // A failing check: its line says why, and the exit code says it failed.
    let out = Command::new("chroot")
        .arg(&rootfs)
        .args([checker::PATH_IN_IMAGE, "file", "/etc/greeting=bye"])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "FAIL file /etc/greeting=bye: expected \"bye\", got \"hello\\n\"\n0 of 1 checks passed\n"
    );
    Ok(())
}

#[test]
fn images_stack_tags_in_one_layout() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let layout = dir.path().join("layout");
    let small = ImageBuilder::busybox_minimal()
        .cmd(["sh", "-c", "echo hi"])
        .build(&layout, "small")?;
    let big = ImageBuilder::busybox()
        .user("1000:1000")
        .symlink("/bin/hello", "busybox")
        .build(&layout, "big")?;
    let tags: Vec<String> = maestro_e2e::image::layout_tags(&layout)?
        .into_iter()
        .map(|(tag, _)| tag)
        .collect();
    assert_eq!(tags, ["small", "big"]);
    assert_ne!(small.digest()?, big.digest()?);
    // Rebuilding a tag replaces it.
    ImageBuilder::busybox_minimal().build(&layout, "small")?;
    assert_eq!(maestro_e2e::image::layout_tags(&layout)?.len(), 2);
    assert!(
        ImageBuilder::busybox()
            .file("../escape", "x", 0o644)
            .build(&layout, "bad")
            .is_err()
    );
    assert!(
        fs::read_dir(dir.path())?.count() == 1,
        "scratch dirs removed"
    );
    Ok(())
}
