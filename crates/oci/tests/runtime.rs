//! Real containers: runc and crun, a busybox rootfs, cgroups and namespaces of this machine.
//! Needs root plus `runc`, `crun` and `busybox-static`; skipped (with a message) otherwise. The
//! checker tests also build the static `maestro-checker` (cargo, `libc6-dev`) on first use.
//! Every test owns a `Node` whose `Drop` deletes its containers, tears its sandboxes down and
//! removes its cgroup root, so a failing assertion leaves nothing behind either.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maestro_oci::runtime::cgroup::{self, CgroupManager, CgroupVersion};
use maestro_oci::runtime::{
    ContainerConfig, ContainerIo, ContainerState, ContainerStatus, ExecConfig, Mount, OciRuntime,
    Output, POD_UID_ANNOTATION, PodSandbox, QosClass, Resources, Rlimit, RlimitKind, RuncCli,
    RuncConfig, RuntimeKind, SandboxConfig, SandboxManager, ShimCommand, Signal, User,
};

const APPLETS: &[&str] = &[
    "sh", "cat", "sleep", "id", "hostname", "echo", "ls", "dd", "head", "grep", "readlink",
    "touch", "pwd", "env", "true", "false", "kill", "tty", "wc", "ip", "mkdir", "rm", "stat",
    "seq", "tr", "unshare", "mount",
];

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn available(kind: RuntimeKind) -> bool {
    let root = rustix::process::geteuid().is_root();
    let binaries = [kind.name(), "busybox", "unshare"].iter().all(|b| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(b).exists())
    });
    if !(root && binaries) {
        eprintln!("skipping: needs root, {}, busybox and unshare", kind.name());
    }
    root && binaries
}

/// One node's worth of runtime state in a temp dir, with its own cgroup root.
struct Node {
    tmp: tempfile::TempDir,
    rootfs: PathBuf,
    cgroup_root: String,
    cgroups: Arc<dyn CgroupManager>,
    runtime: RuncCli,
    config: RuncConfig,
    sandboxes: SandboxManager,
    containers: Mutex<Vec<String>>,
    pods: Mutex<Vec<String>>,
}

impl Node {
    fn new(kind: RuntimeKind) -> Option<Node> {
        Node::with_config(kind, |_| {})
    }

    /// A node whose runtime config `adjust` changes first (the defaults are the agent's).
    fn with_config(kind: RuntimeKind, adjust: impl FnOnce(&mut RuncConfig)) -> Option<Node> {
        if !available(kind) {
            return None;
        }
        let tmp = tempfile::Builder::new()
            .prefix("maestro-oci-rt-")
            .tempdir()
            .unwrap();
        let rootfs = tmp.path().join("rootfs");
        build_rootfs(&rootfs);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let cgroup_root = format!("/maestro-test-{}-{n}", std::process::id());
        let cgroups = cgroup::detect(Path::new(cgroup::DEFAULT_ROOT)).unwrap();
        let mut config = RuncConfig::new(
            kind,
            ShimCommand::binary(env!("CARGO_BIN_EXE_maestro-oci-shim")),
        );
        config.root = tmp.path().join("state");
        config.bundle_dir = tmp.path().join("containers");
        adjust(&mut config);
        let runtime = RuncCli::new(config.clone(), cgroups.clone()).unwrap();
        let sandboxes = SandboxManager::new(
            tmp.path().join("pods"),
            cgroup_root.clone(),
            cgroups.clone(),
        );
        fs::create_dir(tmp.path().join("logs")).unwrap();
        Some(Node {
            tmp,
            rootfs,
            cgroup_root,
            cgroups,
            runtime,
            config,
            sandboxes,
            containers: Mutex::new(Vec::new()),
            pods: Mutex::new(Vec::new()),
        })
    }

    /// A container running `script` with `sh -c`, logging to `logs/<id>.log`.
    fn container(&self, id: &str, script: &str) -> ContainerConfig {
        let mut c = ContainerConfig::new(
            id,
            &self.rootfs,
            vec!["sh".into(), "-c".into(), script.into()],
        );
        c.io = ContainerIo::log_file(self.log_path(id));
        c.cgroup_path = Some(format!("{}/{id}", self.cgroup_root));
        c
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.tmp.path().join("logs").join(format!("{id}.log"))
    }

    fn log(&self, id: &str) -> String {
        fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    fn create(&self, config: &ContainerConfig) {
        self.containers.lock().unwrap().push(config.id.clone());
        self.runtime.create(config).unwrap();
    }

    fn start(&self, config: &ContainerConfig) {
        self.create(config);
        self.runtime.start(&config.id).unwrap();
    }

    /// create + start + wait for the exit.
    fn run(&self, config: &ContainerConfig) -> ContainerStatus {
        self.start(config);
        self.runtime
            .wait(&config.id, Duration::from_secs(20))
            .unwrap()
            .unwrap_or_else(|| panic!("{} did not stop; log: {}", config.id, self.log(&config.id)))
    }

    fn sandbox(
        &self,
        uid: &str,
        hostname: &str,
        qos: QosClass,
        resources: Resources,
    ) -> PodSandbox {
        self.pods.lock().unwrap().push(uid.to_string());
        let mut config = SandboxConfig::new(uid, hostname, qos);
        config.resources = resources;
        self.sandboxes.create(&config).unwrap()
    }

    fn wait_for_log(&self, id: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log(id).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{id}: no {needle:?} in log {:?}",
                self.log(id)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for id in self.containers.lock().unwrap().iter() {
            if let Err(e) = self.runtime.delete(id, true) {
                eprintln!("cleanup: delete {id}: {e}");
            }
        }
        for uid in self.pods.lock().unwrap().iter() {
            if let Err(e) = self.sandboxes.teardown(uid) {
                eprintln!("cleanup: teardown {uid}: {e}");
            }
        }
        if let Err(e) = self
            .cgroups
            .remove(&self.cgroup_root, Duration::from_secs(10))
        {
            eprintln!("cleanup: cgroup root {}: {e}", self.cgroup_root);
        }
    }
}

fn build_rootfs(rootfs: &Path) {
    for dir in ["bin", "proc", "sys", "dev", "etc", "tmp", "root", "work"] {
        fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/work:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\napp:x:1000:\nextra:x:2000:\n",
    )
    .unwrap();
}

fn wait_until(mut condition: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "not within 10 s: {:?}", what());
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn ns_inode(path: &Path) -> u64 {
    fs::metadata(path).unwrap().ino()
}

// ---------------------------------------------------------------------------------------------
// Scenarios, run with runc and (the main ones) with crun.
// ---------------------------------------------------------------------------------------------

fn process_and_log(kind: RuntimeKind) {
    let Some(node) = Node::new(kind) else { return };
    let mut c = node.container(
        "proc",
        "echo to-stdout; echo to-stderr >&2; echo A=$A B=$B; pwd; id -u; id -g; id -G; \
         echo HOST=$HOSTNAME; echo nofile=$(ulimit -Sn)/$(ulimit -Hn); \
         echo oom=$(cat /proc/self/oom_score_adj); \
         echo port=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); exit 3",
    );
    c.rlimits = vec![Rlimit {
        kind: RlimitKind::RlimitNofile,
        soft: 1000,
        hard: 2000,
    }];
    c.oom_score_adj = Some(500);
    c.sysctls
        .insert("net.ipv4.ip_unprivileged_port_start".into(), "80".into());
    c.annotations
        .insert("io.maestro.container".into(), "proc".into());
    c.env = vec![("A".into(), "1".into()), ("B".into(), "two words".into())];
    c.cwd = "/work".into();
    c.hostname = Some("solo".into());
    c.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![2000],
        umask: None,
    };
    let status = node.run(&c);
    let log = node.log("proc");
    let exit = status.exit.expect("exit status");
    assert_eq!(
        (exit.code, exit.signal, exit.oom_killed),
        (3, None, false),
        "log: {log}"
    );
    assert_eq!(exit.reason(), "Error");
    assert_eq!(status.state, ContainerState::Stopped);
    assert_eq!(status.annotations["io.maestro.container"], "proc");
    for line in [
        "to-stdout",
        "to-stderr",
        "A=1 B=two words",
        "/work",
        "1000",
        "1000 2000",
        "HOST=solo",
        "nofile=1000/2000",
        "oom=500",
        "port=80",
    ] {
        assert!(
            log.lines().any(|l| l == line),
            "missing {line:?} in {log:?}"
        );
    }

    // Ids are unique until deleted.
    assert!(matches!(
        node.runtime.create(&c),
        Err(maestro_oci::runtime::Error::AlreadyExists { .. })
    ));

    // Separate files for the two streams; hostname of a private UTS namespace.
    let mut c = node.container("split", "hostname; echo oops >&2");
    c.hostname = Some("solo".into());
    let out = node.tmp.path().join("logs/split.out");
    let err = node.tmp.path().join("logs/split.err");
    c.io = ContainerIo::log_files(&out, &err);
    let status = node.run(&c);
    assert_eq!(status.exit.unwrap().code, 0);
    assert_eq!(fs::read_to_string(&out).unwrap(), "solo\n");
    assert_eq!(fs::read_to_string(&err).unwrap(), "oops\n");

    // CRI log: both streams through the shim into one file, each line timestamped and tagged,
    // a final line without newline written as a partial entry.
    let mut c = node.container("cri", "echo out-line; echo err-line >&2; printf tail");
    let cri = node.tmp.path().join("logs/cri.log");
    c.io = ContainerIo {
        stdout: Output::CriLog(cri.clone()),
        stderr: Output::CriLog(cri.clone()),
        ..c.io
    };
    let status = node.run(&c);
    assert_eq!(status.exit.unwrap().code, 0);
    let text = fs::read_to_string(&cri).unwrap();
    let entries: Vec<(String, String, String)> = text
        .lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let time = parts.next().unwrap().to_string();
            let stream = parts.next().unwrap().to_string();
            let tag = parts.next().unwrap().to_string();
            let msg = parts.next().unwrap_or("").to_string();
            assert!(
                time.parse::<jiff::Timestamp>().is_ok(),
                "bad timestamp in {line:?}"
            );
            (stream, tag, msg)
        })
        .collect();
    for expected in [
        ("stdout", "F", "out-line"),
        ("stderr", "F", "err-line"),
        ("stdout", "P", "tail"),
    ] {
        assert!(
            entries
                .iter()
                .any(|(s, t, m)| (s.as_str(), t.as_str(), m.as_str()) == expected),
            "missing {expected:?} in {text:?}"
        );
    }

    // A missing executable is a start failure with the runtime's own words, and leaves nothing.
    let c = ContainerConfig {
        io: ContainerIo::log_file(node.log_path("bad")),
        ..ContainerConfig::new("bad", &node.rootfs, vec!["/no/such/binary".into()])
    };
    node.containers.lock().unwrap().push("bad".into());
    let err = node
        .runtime
        .create(&c)
        .and_then(|()| node.runtime.start("bad"))
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("no such file"),
        "{err}"
    );
    assert!(matches!(
        node.runtime.state("bad"),
        Err(maestro_oci::runtime::Error::NotFound { .. }) | Ok(_)
    ));
}

fn pod_shares_namespaces(kind: RuntimeKind) {
    let Some(node) = Node::new(kind) else { return };
    let pod = node.sandbox(
        "pod-ns",
        "web-0",
        QosClass::BestEffort,
        Resources::default(),
    );
    let script = "for n in net ipc uts pid; do readlink /proc/self/ns/$n; done; hostname; cat /etc/hostname; ip -o link show lo | grep -c UP";
    let mut pids = Vec::new();
    for id in ["first", "second"] {
        let mut c = node.container(
            id,
            &format!("{script}; echo {id} > /dev/shm/{id}; sleep 30"),
        );
        pod.configure(&mut c);
        node.start(&c);
        node.wait_for_log(id, "web-0\nweb-0\n1\n");
        pids.push(node.runtime.state(id).unwrap().pid.unwrap());
    }
    let a: Vec<String> = node.log("first").lines().map(String::from).collect();
    let b: Vec<String> = node.log("second").lines().map(String::from).collect();
    // Same network, IPC and UTS namespaces, those of the sandbox's files; own pid namespaces.
    assert_eq!(a[0..3], b[0..3]);
    assert_ne!(a[3], b[3]);
    assert_eq!(a[0], format!("net:[{}]", ns_inode(&pod.net_ns())));
    assert_eq!(a[1], format!("ipc:[{}]", ns_inode(&pod.ipc_ns())));
    assert_eq!(a[2], format!("uts:[{}]", ns_inode(&pod.uts_ns())));
    // The pod's /dev/shm is one tmpfs.
    assert_eq!(
        fs::read_to_string(pod.shm_dir().join("first")).unwrap(),
        "first\n"
    );
    assert_eq!(
        fs::read_to_string(pod.shm_dir().join("second")).unwrap(),
        "second\n"
    );
    // Both containers live under the pod cgroup in its QoS tier.
    assert_eq!(
        pod.cgroup_path,
        format!("{}/besteffort/podpod-ns", node.cgroup_root)
    );
    let in_pod: HashSet<u32> = node
        .cgroups
        .procs(&pod.cgroup_path)
        .unwrap()
        .into_iter()
        .collect();
    assert!(
        pids.iter().all(|p| in_pod.contains(p)),
        "{pids:?} not all in {in_pod:?}"
    );
    // Re-attach: the agent finds the sandbox and the pod's containers by annotation.
    assert_eq!(node.sandboxes.get("pod-ns").unwrap(), Some(pod.clone()));
    let listed = node.runtime.list().unwrap();
    let mine: Vec<&str> = listed
        .iter()
        .filter(|s| s.annotations.get(POD_UID_ANNOTATION).map(String::as_str) == Some("pod-ns"))
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(mine, ["first", "second"]);

    // Deleting the pod: containers, then the sandbox. Nothing may be left.
    for id in ["first", "second"] {
        node.runtime
            .stop(id, Signal::TERM, Duration::from_millis(100))
            .unwrap();
        node.runtime.delete(id, false).unwrap();
    }
    node.sandboxes.teardown("pod-ns").unwrap();
    assert_nothing_left(&node, &pod, &pids);
    node.sandboxes.teardown("pod-ns").unwrap();
}

fn assert_nothing_left(node: &Node, pod: &PodSandbox, pids: &[u32]) {
    assert!(
        node.cgroups.dirs(&pod.cgroup_path).is_empty(),
        "cgroups left: {:?}",
        node.cgroups.dirs(&pod.cgroup_path)
    );
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let pod_dir = pod.dir.to_string_lossy().into_owned();
    assert!(!mountinfo.contains(&pod_dir), "mounts left under {pod_dir}");
    assert!(!pod.dir.exists());
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} left"
        );
    }
    let state: Vec<_> = fs::read_dir(&node.config.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(state.is_empty(), "runtime state left: {state:?}");
    let bundles: Vec<_> = fs::read_dir(&node.config.bundle_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(bundles.is_empty(), "bundles left: {bundles:?}");
}

fn memory_limit_oom(kind: RuntimeKind) {
    let Some(node) = Node::new(kind) else { return };
    // dd's buffer is anonymous memory twice the limit; `exec` makes dd the container's init.
    let mut c = node.container("hog", "exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    c.resources = Resources {
        memory_limit: Some(32 << 20),
        ..Default::default()
    };
    let status = node.run(&c);
    let exit = status.exit.expect("exit status");
    assert_eq!(
        (exit.code, exit.signal, exit.oom_killed),
        (137, Some(9), true),
        "log: {}",
        node.log("hog")
    );
    assert_eq!(exit.reason(), "OOMKilled");

    // The same code from a plain SIGKILL is not an OOM kill.
    let c = node.container("victim", "exec sleep 30");
    node.start(&c);
    node.runtime.kill("victim", Signal::KILL).unwrap();
    let status = node
        .runtime
        .wait("victim", Duration::from_secs(10))
        .unwrap()
        .unwrap();
    let exit = status.exit.unwrap();
    assert_eq!(
        (exit.code, exit.signal, exit.oom_killed),
        (137, Some(9), false)
    );
    assert_eq!(exit.reason(), "Error");
}

fn exec_into_running(kind: RuntimeKind) {
    let Some(node) = Node::new(kind) else { return };
    let mut c = node.container("target", "echo ready; exec sleep 30");
    c.env = vec![("FROM_CONTAINER".into(), "yes".into())];
    c.cwd = "/work".into();
    node.start(&c);
    node.wait_for_log("target", "ready");

    // Output, exit code and the container's environment and directory.
    let session = node
        .runtime
        .exec(
            "target",
            &ExecConfig::command([
                "sh",
                "-c",
                "echo out $FROM_CONTAINER $EXTRA; pwd; echo err >&2; exit 3",
            ])
            .with_env("EXTRA", "x"),
        )
        .unwrap();
    let out = session.output(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out yes x\n/work\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    // Another user.
    let mut exec = ExecConfig::command(["id", "-u"]);
    exec.user = Some(User {
        uid: 1234,
        gid: 1234,
        ..Default::default()
    });
    let out = node
        .runtime
        .exec("target", &exec)
        .unwrap()
        .output(None)
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1234\n");

    // Interactive, with pipes: what goes in comes back out.
    let mut exec = ExecConfig::command(["cat"]);
    exec.stdin = true;
    let mut session = node.runtime.exec("target", &exec).unwrap();
    let mut stdin = session.take_stdin().unwrap();
    let mut stdout = session.take_stdout().unwrap();
    stdin.write_all(b"ping\n").unwrap();
    let mut buf = [0u8; 5];
    stdout.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping\n");
    drop(stdin);
    assert_eq!(session.wait().unwrap(), 0);

    // A terminal: the process sees a tty of the size we set, and of the size we change it to.
    let mut exec = ExecConfig::command(["sh"]);
    exec.tty = true;
    exec.stdin = true;
    exec.tty_size = Some((100, 30));
    let mut session = node.runtime.exec("target", &exec).unwrap();
    let mut pty = session.take_pty().unwrap();
    let mut reader = pty.try_clone().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let output = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once the terminal's last user is gone: the pty's end of file.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    // Type only at the prompt: an interactive shell may flush what arrived before it set up the
    // terminal (under load the line was lost that way).
    wait_until(
        || seen.lock().unwrap().contains("# "),
        || seen.lock().unwrap().clone(),
    );
    pty.write_all(b"tty; stty size; echo typed-$((6*7))\n")
        .unwrap();
    // How the output line ends depends on the terminal modes busybox's line editing left set
    // when the command ran ("\r\n", or "\r\r\n" when newlines are translated twice): wait for
    // the end of the line, whatever it looks like.
    wait_until(
        || {
            let seen = seen.lock().unwrap();
            seen.contains("typed-42\r") || seen.contains("typed-42\n")
        },
        || seen.lock().unwrap().clone(),
    );
    session.resize(120, 40).unwrap();
    pty.write_all(b"stty size; exit 4\n").unwrap();
    let code = session.wait().unwrap();
    drop(pty);
    output.join().unwrap();
    let text = seen.lock().unwrap().clone();
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("30 100"), "{text}");
    assert!(text.contains("typed-42"), "{text}");
    assert!(text.contains("40 120"), "{text}");

    // A timed-out probe is killed.
    let started = Instant::now();
    let out = node
        .runtime
        .exec("target", &ExecConfig::command(["sleep", "30"]))
        .unwrap()
        .output(Some(Duration::from_millis(200)))
        .unwrap();
    assert_eq!(out.exit_code, None);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The container itself is unaffected.
    assert_eq!(
        node.runtime.state("target").unwrap().state,
        ContainerState::Running
    );
}

fn graceful_stop(kind: RuntimeKind) {
    let Some(node) = Node::new(kind) else { return };
    let polite = node.container(
        "polite",
        "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.05; done",
    );
    let stubborn = node.container("stubborn", "echo ready; exec sleep 30");
    node.start(&polite);
    node.start(&stubborn);
    node.wait_for_log("polite", "ready");
    node.wait_for_log("stubborn", "ready");
    assert!(!node.runtime.stopped("polite").unwrap());

    let started = Instant::now();
    let status = node
        .runtime
        .stop("polite", Signal::TERM, Duration::from_secs(5))
        .unwrap();
    let exit = status.exit.unwrap();
    assert_eq!((exit.code, exit.signal), (0, None));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(node.log("polite").contains("bye"));
    assert!(node.runtime.stopped("polite").unwrap());

    // PID 1 of a pid namespace ignores SIGTERM without a handler: SIGKILL after the grace.
    let grace = Duration::from_millis(400);
    let started = Instant::now();
    let status = node.runtime.stop("stubborn", Signal::TERM, grace).unwrap();
    let exit = status.exit.unwrap();
    assert_eq!(
        (exit.code, exit.signal, exit.oom_killed),
        (137, Some(9), false)
    );
    assert!(started.elapsed() >= grace);

    // Stopping a stopped container changes nothing; deleting twice is fine.
    assert_eq!(
        node.runtime
            .stop("stubborn", Signal::TERM, grace)
            .unwrap()
            .exit
            .unwrap()
            .code,
        137
    );
    node.runtime.delete("stubborn", false).unwrap();
    node.runtime.delete("stubborn", false).unwrap();
    assert!(matches!(
        node.runtime.state("stubborn"),
        Err(maestro_oci::runtime::Error::NotFound { .. })
    ));
}

/// The static checker (`maestro_e2e::checker`) as the container's process: what the runtime
/// set up, asserted from inside; its OOM and SIGTERM modes as pid 1.
fn checker_asserts_from_inside(kind: RuntimeKind) {
    let Some(node) = Node::new(kind) else { return };
    let checker = maestro_e2e::checker::static_binary().expect("static maestro-checker");
    fs::copy(&checker, node.rootfs.join("bin/maestro-checker")).unwrap();
    let data = node.tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("file"), "host data\n").unwrap();
    // runc gives a tmpfs the mode of the directory it covers: make /tmp an image's usual 1777.
    fs::set_permissions(
        node.rootfs.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let pod = node.sandbox(
        &format!("pod-checked-{}", kind.name()),
        "checked",
        QosClass::Burstable,
        Resources {
            memory_limit: Some(256 << 20),
            ..Default::default()
        },
    );
    let checker_container = |id: &str, args: &[&str]| {
        let mut argv = vec!["/bin/maestro-checker".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let mut c = ContainerConfig::new(id, &node.rootfs, argv);
        c.io = ContainerIo::log_file(node.log_path(id));
        pod.configure(&mut c);
        c
    };

    let checks = [
        "hostname checked",
        "file /etc/hostname=checked",
        "pid 1",
        "uid 1000",
        "gid 1000",
        "groups 2000",
        "env A=1",
        "env-unset B",
        "cwd /work",
        "memory-limit 64Mi",
        "cpu-quota 50000/100000",
        "cpu-shares 512",
        "pids-limit 100",
        "readonly-rootfs",
        "not-writable /",
        "writable /tmp",
        "mount-type /tmp=tmpfs",
        "mount-ro /data",
        "mount-rw /dev/shm",
        "shm-size 64Mi",
        "cap-bounding NET_BIND_SERVICE",
        "cap-bounding-absent NET_RAW",
        "cap-absent NET_BIND_SERVICE",
        "no-new-privs 1",
        "seccomp 2",
        "rlimit nofile=1000/2000",
        "oom-score-adj 500",
    ];
    let mut args: Vec<&str> = checks
        .iter()
        .flat_map(|c| c.splitn(2, ' ').collect::<Vec<_>>())
        .collect();
    args.extend(["file", "/data/file=host data"]);
    let mut c = checker_container("checked", &args);
    c.resources = Resources {
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        memory_limit: Some(64 << 20),
        pids_limit: Some(100),
    };
    c.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![2000],
        umask: None,
    };
    c.env = vec![("A".into(), "1".into())];
    c.cwd = "/work".into();
    c.security.readonly_rootfs = true;
    c.security.cap_drop = vec!["ALL".into()];
    c.security.cap_add = vec!["NET_BIND_SERVICE".into()];
    c.security.no_new_privileges = true;
    c.mounts.extend([
        Mount::tmpfs("/tmp", Some(1 << 20)),
        Mount::bind(&data, "/data", true),
    ]);
    c.rlimits = vec![Rlimit {
        kind: RlimitKind::RlimitNofile,
        soft: 1000,
        hard: 2000,
    }];
    c.oom_score_adj = Some(500);
    let status = node.run(&c);
    let log = node.log("checked");
    assert_eq!(status.exit.unwrap().code, 0, "{log}");
    let total = checks.len() + 1;
    assert!(
        log.ends_with(&format!("{total} of {total} checks passed\n")),
        "{log}"
    );

    // A failing check says what it found, and fails the container.
    let mut c = checker_container("wrong", &["memory-limit", "32Mi", "uid", "0"]);
    c.resources.memory_limit = Some(64 << 20);
    let status = node.run(&c);
    assert_eq!(status.exit.unwrap().code, 1);
    assert_eq!(
        node.log("wrong"),
        "FAIL memory-limit 32Mi: expected 33554432, got 67108864\nok uid 0\n1 of 2 checks passed\n"
    );

    // hog: past the limit, the OOM killer.
    let mut c = checker_container("hog", &["hog", "256Mi"]);
    c.resources.memory_limit = Some(32 << 20);
    let exit = node.run(&c).exit.unwrap();
    assert_eq!(
        (exit.code, exit.oom_killed),
        (137, true),
        "{}",
        node.log("hog")
    );

    // As pid 1, SIGTERM still ends it at once (it blocks and waits for the signal).
    let c = checker_container("sleeper", &["sleep", "forever"]);
    node.start(&c);
    node.wait_for_log("sleeper", "sleeping forever");
    let started = Instant::now();
    let status = node
        .runtime
        .stop("sleeper", Signal::TERM, Duration::from_secs(10))
        .unwrap();
    assert_eq!(status.exit.unwrap().code, 0, "{}", node.log("sleeper"));
    assert!(started.elapsed() < Duration::from_secs(3));
}

// ---------------------------------------------------------------------------------------------
// runc
// ---------------------------------------------------------------------------------------------

#[test]
fn runc_checker_asserts_from_inside() {
    checker_asserts_from_inside(RuntimeKind::Runc);
}

#[test]
fn runc_process_and_log() {
    process_and_log(RuntimeKind::Runc);
}

#[test]
fn runc_pod_shares_namespaces() {
    pod_shares_namespaces(RuntimeKind::Runc);
}

#[test]
fn runc_memory_limit_oom() {
    memory_limit_oom(RuntimeKind::Runc);
}

#[test]
fn runc_exec_into_running() {
    exec_into_running(RuntimeKind::Runc);
}

#[test]
fn runc_graceful_stop() {
    graceful_stop(RuntimeKind::Runc);
}

#[test]
fn runc_cri_log_rotates_in_whole_lines() {
    const MAX_SIZE: u64 = 16 * 1024;
    let Some(node) = Node::with_config(RuntimeKind::Runc, |c| {
        c.container_log_max_size = MAX_SIZE;
        c.container_log_max_files = 3;
    }) else {
        return;
    };
    // About 250 KB of numbered lines: many rotations, some of them within one second.
    let mut c = node.container(
        "rotate",
        "i=1; while [ $i -le 3000 ]; do \
         echo \"line $i ......................................................\"; \
         i=$((i+1)); done",
    );
    let cri = node.tmp.path().join("logs/0.log");
    c.io = ContainerIo {
        stdout: Output::CriLog(cri.clone()),
        stderr: Output::CriLog(cri.clone()),
        ..c.io
    };
    let status = node.run(&c);
    assert_eq!(status.exit.unwrap().code, 0);

    let rotated = maestro_oci::runtime::cri_log::rotated_files(&cri).unwrap();
    assert_eq!(rotated.len(), 2, "max_files - 1 rotated files: {rotated:?}");
    let mut numbers = Vec::new();
    for file in rotated.iter().chain([&cri]) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name == "0.log" || (name.starts_with("0.log.20") && name.len() >= 21),
            "{name}"
        );
        let text = fs::read_to_string(file).unwrap();
        assert!(
            text.len() as u64 <= MAX_SIZE,
            "{name}: {} bytes",
            text.len()
        );
        assert!(text.ends_with('\n'), "{name} ends mid-line");
        for line in text.lines() {
            let mut parts = line.splitn(4, ' ');
            let time = parts.next().unwrap();
            assert!(time.parse::<jiff::Timestamp>().is_ok(), "{line:?}");
            assert_eq!((parts.next(), parts.next()), (Some("stdout"), Some("F")));
            let msg = parts.next().unwrap();
            let n: u32 = msg
                .strip_prefix("line ")
                .and_then(|m| m.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name}: incomplete line {line:?}"));
            numbers.push(n);
        }
    }
    // The newest output, nothing lost or reordered within what is kept.
    assert_eq!(numbers.last(), Some(&3000));
    let first = numbers[0];
    assert!(first > 1, "older output was rotated away");
    assert_eq!(numbers, (first..=3000).collect::<Vec<_>>());
}

#[test]
fn runc_limits_in_cgroup_files_and_pids_limit() {
    let Some(node) = Node::new(RuntimeKind::Runc) else {
        return;
    };
    let pod_resources = Resources {
        cpu_shares: Some(1024),
        cpu_quota: Some(100_000),
        cpu_period: Some(100_000),
        memory_limit: Some(256 << 20),
        pids_limit: Some(64),
    };
    let pod = node.sandbox("pod-limits", "limits", QosClass::Burstable, pod_resources);
    let mut c = node.container("limited", "echo ready; exec sleep 30");
    pod.configure(&mut c);
    c.resources = Resources {
        cpu_shares: Some(512),
        cpu_quota: Some(25_000),
        cpu_period: Some(100_000),
        memory_limit: Some(64 << 20),
        pids_limit: Some(16),
    };
    node.start(&c);
    node.wait_for_log("limited", "ready");
    let read = |controller: &str, path: &str, file: &str| {
        fs::read_to_string(node.cgroups.file(controller, path, file).unwrap())
            .unwrap()
            .trim()
            .to_string()
    };
    let ctr = pod.container_cgroup("limited");
    match node.cgroups.version() {
        CgroupVersion::V1 => {
            assert_eq!(read("cpu", &ctr, "cpu.shares"), "512");
            assert_eq!(read("cpu", &ctr, "cpu.cfs_quota_us"), "25000");
            assert_eq!(read("cpu", &ctr, "cpu.cfs_period_us"), "100000");
            assert_eq!(
                read("memory", &ctr, "memory.limit_in_bytes"),
                (64u64 << 20).to_string()
            );
            assert_eq!(read("pids", &ctr, "pids.max"), "16");
            assert_eq!(read("cpu", &pod.cgroup_path, "cpu.shares"), "1024");
            assert_eq!(read("cpu", &pod.cgroup_path, "cpu.cfs_quota_us"), "100000");
            assert_eq!(
                read("memory", &pod.cgroup_path, "memory.limit_in_bytes"),
                (256u64 << 20).to_string()
            );
            assert_eq!(read("pids", &pod.cgroup_path, "pids.max"), "64");
        }
        CgroupVersion::V2 => {
            assert_eq!(read("cpu", &ctr, "cpu.max"), "25000 100000");
            assert_eq!(
                read("memory", &ctr, "memory.max"),
                (64u64 << 20).to_string()
            );
            assert_eq!(read("pids", &ctr, "pids.max"), "16");
            assert_eq!(read("cpu", &pod.cgroup_path, "cpu.max"), "100000 100000");
        }
    }
    node.runtime
        .stop("limited", Signal::KILL, Duration::ZERO)
        .unwrap();

    // The pids limit: the fifth fork fails and the shell gives up.
    let mut c = node.container(
        "forker",
        "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done; echo all-started",
    );
    c.resources.pids_limit = Some(5);
    let status = node.run(&c);
    let log = node.log("forker");
    assert!(log.contains("can't fork"), "{log}");
    assert!(!log.contains("all-started"), "{log}");
    assert_ne!(status.exit.unwrap().code, 0);
}

#[test]
fn runc_security_context() {
    let Some(node) = Node::new(RuntimeKind::Runc) else {
        return;
    };
    // Read-only root, a writable tmpfs, and a read-only bind mount.
    let data = node.tmp.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("file"), "host data\n").unwrap();
    let mut c = node.container(
        "ro",
        "touch /rootfile 2>&1; echo rc=$?; touch /tmp/ok && echo tmp-ok; cat /data/file; touch /data/x 2>&1; echo rc=$?",
    );
    c.security.readonly_rootfs = true;
    c.mounts = vec![
        Mount::tmpfs("/tmp", Some(1 << 20)),
        Mount::bind(&data, "/data", true),
    ];
    node.run(&c);
    let log = node.log("ro");
    assert_eq!(log.matches("Read-only file system").count(), 2, "{log}");
    assert!(log.contains("tmp-ok") && log.contains("host data"), "{log}");
    assert!(!node.rootfs.join("rootfile").exists());

    // Capabilities: Docker's default set, then drop ALL + add one; seccomp and no_new_privs.
    let status_of = |id: &str, configure: &dyn Fn(&mut ContainerConfig)| -> String {
        let mut c = node.container(
            id,
            "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status",
        );
        configure(&mut c);
        node.run(&c);
        node.log(id)
    };
    let default = status_of("caps-default", &|_| {});
    assert!(default.contains("CapEff:\t00000000a80425fb"), "{default}");
    assert!(default.contains("Seccomp:\t2"), "{default}");
    assert!(default.contains("NoNewPrivs:\t0"), "{default}");
    let minimal = status_of("caps-min", &|c| {
        c.security.cap_drop = vec!["ALL".into()];
        c.security.cap_add = vec!["NET_BIND_SERVICE".into()];
        c.security.no_new_privileges = true;
    });
    assert!(minimal.contains("CapEff:\t0000000000000400"), "{minimal}");
    assert!(minimal.contains("CapBnd:\t0000000000000400"), "{minimal}");
    assert!(minimal.contains("NoNewPrivs:\t1"), "{minimal}");
    // Privileged: every capability the host has (here all but CAP_SYS_RESOURCE), no seccomp.
    let privileged = status_of("caps-priv", &|c| c.security.privileged = true);
    let host_bnd = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap()
        .to_string();
    assert!(
        privileged.contains(&host_bnd.replace("CapBnd", "CapEff")),
        "{privileged} vs {host_bnd}"
    );
    assert!(privileged.contains("Seccomp:\t0"), "{privileged}");

    // The default seccomp profile refuses new namespaces to a container without CAP_SYS_ADMIN;
    // the kernel alone would let root create a user namespace.
    let confined = node.container("seccomp", "unshare -U true 2>&1; echo rc=$?");
    node.run(&confined);
    let log = node.log("seccomp");
    assert!(
        log.contains("Operation not permitted") && !log.contains("rc=0"),
        "{log}"
    );
    let mut unconfined = node.container("unconfined", "unshare -U true 2>&1; echo rc=$?");
    unconfined.security.seccomp = maestro_oci::runtime::SeccompProfile::Unconfined;
    node.run(&unconfined);
    assert!(
        node.log("unconfined").contains("rc=0"),
        "{}",
        node.log("unconfined")
    );

    // runAsNonRoot with uid 0 never reaches the runtime.
    let mut c = node.container("nonroot", "true");
    c.security.run_as_non_root = true;
    assert!(matches!(
        node.runtime.create(&c),
        Err(maestro_oci::runtime::Error::InvalidConfig(_))
    ));
}

#[test]
fn runc_list_and_reattach_after_restart() {
    let Some(node) = Node::new(RuntimeKind::Runc) else {
        return;
    };
    let mut running = node.container(
        "still-running",
        "echo ready; trap 'exit 0' TERM; while true; do sleep 0.05; done",
    );
    running
        .annotations
        .insert("io.maestro.container".into(), "web".into());
    node.start(&running);
    node.wait_for_log("still-running", "ready");
    let finished = node.container("finished", "exit 7");
    node.run(&finished);
    let created = node.container("created-only", "true");
    node.create(&created);
    let pid_before = node.runtime.state("still-running").unwrap().pid.unwrap();

    // A new agent: a fresh runtime object over the same directories, no memory of the first.
    let restarted = RuncCli::new(node.config.clone(), node.cgroups.clone()).unwrap();
    let listed = restarted.list().unwrap();
    let by_id = |id: &str| {
        listed
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("{id} not listed: {listed:?}"))
    };
    let r = by_id("still-running");
    assert_eq!(
        (r.state, r.pid),
        (ContainerState::Running, Some(pid_before))
    );
    assert_eq!(r.annotations["io.maestro.container"], "web");
    assert_eq!(by_id("finished").exit.unwrap().code, 7);
    assert_eq!(by_id("created-only").state, ContainerState::Created);
    assert_eq!(listed.len(), 3);

    // A created container can be deleted without ever running.
    let never = node.container("never-started", "true");
    node.create(&never);
    restarted.delete("never-started", false).unwrap();

    // The adopted container is managed normally, and its original shim still records the exit.
    let status = restarted
        .stop("still-running", Signal::TERM, Duration::from_secs(5))
        .unwrap();
    assert_eq!(status.exit.unwrap().code, 0);
    restarted.start("created-only").unwrap();
    assert_eq!(
        restarted
            .wait("created-only", Duration::from_secs(10))
            .unwrap()
            .unwrap()
            .exit
            .unwrap()
            .code,
        0
    );
    for id in ["still-running", "finished", "created-only"] {
        restarted.delete(id, false).unwrap();
    }
    assert!(restarted.list().unwrap().is_empty());
}

#[test]
fn runc_teardown_after_crash_kills_everything() {
    let Some(node) = Node::new(RuntimeKind::Runc) else {
        return;
    };
    let pod = node.sandbox(
        "pod-crash",
        "crashy",
        QosClass::Guaranteed,
        Resources {
            memory_limit: Some(128 << 20),
            ..Default::default()
        },
    );
    assert_eq!(
        pod.cgroup_path,
        format!("{}/podpod-crash", node.cgroup_root)
    );
    let mut pids = Vec::new();
    for id in ["c1", "c2"] {
        let mut c = node.container(id, "echo ready; sleep 30 & sleep 30");
        pod.configure(&mut c);
        node.start(&c);
        node.wait_for_log(id, "ready");
        pids.extend(node.cgroups.procs(&pod.container_cgroup(id)).unwrap());
    }
    assert!(pids.len() >= 4, "{pids:?}");
    // The agent died without deleting anything: a teardown by uid alone kills the processes
    // and removes cgroups and mounts; deleting the containers afterwards clears runtime state.
    node.sandboxes.teardown("pod-crash").unwrap();
    for id in ["c1", "c2"] {
        let status = node
            .runtime
            .wait(id, Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!(status.exit.unwrap().code, 137);
        node.runtime.delete(id, false).unwrap();
    }
    assert_nothing_left(&node, &pod, &pids);
}

#[test]
fn runc_sandbox_creation_is_idempotent_and_recovers_partial_state() {
    let Some(node) = Node::new(RuntimeKind::Runc) else {
        return;
    };
    let pod = node.sandbox(
        "pod-twice",
        "twice",
        QosClass::Burstable,
        Resources::default(),
    );
    let again = node.sandboxes.create(&SandboxConfig::new(
        "pod-twice",
        "twice",
        QosClass::Burstable,
    ));
    assert!(matches!(
        again,
        Err(maestro_oci::runtime::Error::AlreadyExists { .. })
    ));
    assert_eq!(node.sandboxes.list().unwrap(), ["pod-twice"]);
    // A crash halfway through: the namespaces exist but sandbox.json does not.
    fs::remove_file(pod.dir.join("sandbox.json")).unwrap();
    assert_eq!(node.sandboxes.get("pod-twice").unwrap(), None);
    let rebuilt = node
        .sandboxes
        .create(&SandboxConfig::new(
            "pod-twice",
            "twice",
            QosClass::Burstable,
        ))
        .unwrap();
    assert_eq!(rebuilt, pod);
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(
        mounts
            .matches(&format!("{}/ns/net", pod.dir.display()))
            .count(),
        1
    );
    node.sandboxes.teardown("pod-twice").unwrap();
    assert_nothing_left(&node, &pod, &[]);
}

// ---------------------------------------------------------------------------------------------
// crun (with the hybrid-cgroup fix applied by RuncCli::new when this host needs it)
// ---------------------------------------------------------------------------------------------

#[test]
fn crun_process_and_log() {
    process_and_log(RuntimeKind::Crun);
}

#[test]
fn crun_pod_shares_namespaces() {
    pod_shares_namespaces(RuntimeKind::Crun);
}

#[test]
fn crun_memory_limit_oom() {
    memory_limit_oom(RuntimeKind::Crun);
}

#[test]
fn crun_exec_into_running() {
    exec_into_running(RuntimeKind::Crun);
}

#[test]
fn crun_graceful_stop() {
    graceful_stop(RuntimeKind::Crun);
}

#[test]
fn crun_checker_asserts_from_inside() {
    checker_asserts_from_inside(RuntimeKind::Crun);
}

#[test]
fn crun_hybrid_fix_is_idempotent() {
    let Some(node) = Node::new(RuntimeKind::Crun) else {
        return;
    };
    // Whoever applied it first, nothing is left attached to cgroup2 and a second pass is a no-op.
    assert!(cgroup::hybrid_controllers(Path::new(cgroup::DEFAULT_ROOT)).is_empty());
    let again = cgroup::crun_hybrid_fix(Path::new(cgroup::DEFAULT_ROOT)).unwrap();
    assert!(again.mounted.is_empty());
    let _ = node.runtime.hybrid_fix();
}
