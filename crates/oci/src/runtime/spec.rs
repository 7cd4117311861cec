//! [`ContainerConfig`] → OCI runtime spec (`config.json`): a pure function, so what a pod asks
//! for and what runc is told can be checked without running anything.
//!
//! The defaults follow containerd's CRI plugin, which is what Kubernetes users expect: Docker's
//! capability set, the usual masked and read-only `/proc` paths, a device allowlist, private
//! pid/mount/cgroup namespaces, and for pods the sandbox's network, IPC and UTS namespaces.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory,
    LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources, PosixRlimitBuilder, Process,
    Root, Spec, User as OciUser,
};

use super::config::{
    ContainerConfig, MountSource, NamespaceMode, ProcMount, Propagation, SeccompProfile,
};
use super::error::{Error, Result};
use super::seccomp;

/// The runtime-spec version written into bundles; runc 1.1 and crun 1.8 both accept it.
pub const OCI_VERSION: &str = "1.0.2";
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's and containerd's default capability set, which Kubernetes `add`/`drop` lists are
/// relative to.
pub const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability, indexed by its kernel number (bit `n` of `CapBnd` is `ALL_CAPABILITIES[n]`).
pub const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// Paths under `/proc` and `/sys` that leak host information or control host state.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Character devices every container may use: null, zero, full, random, urandom, tty, ptmx and
/// its own ptys (the nodes themselves are created by the runtime).
const ALLOWED_DEVICES: &[(i64, Option<i64>)] = &[
    (1, Some(3)),
    (1, Some(5)),
    (1, Some(7)),
    (1, Some(8)),
    (1, Some(9)),
    (5, Some(0)),
    (5, Some(2)),
    (136, None),
];

/// A capability from its Kubernetes or kernel name (`NET_ADMIN`, `CAP_NET_ADMIN`, any case).
pub fn parse_capability(name: &str) -> Result<Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| Error::InvalidConfig(format!("unknown capability {name:?}")))
}

/// The capability set of the container process (bounding = permitted = effective).
pub fn capabilities(config: &ContainerConfig) -> Result<HashSet<Capability>> {
    let security = &config.security;
    if security.privileged {
        return Ok(ALL_CAPABILITIES.iter().copied().collect());
    }
    let is_all = |name: &String| name.eq_ignore_ascii_case("ALL");
    let mut caps: HashSet<Capability> = if security.cap_drop.iter().any(is_all) {
        HashSet::new()
    } else {
        DEFAULT_CAPABILITIES.iter().copied().collect()
    };
    for name in &security.cap_add {
        if is_all(name) {
            caps.extend(ALL_CAPABILITIES);
        } else {
            caps.insert(parse_capability(name)?);
        }
    }
    for name in security.cap_drop.iter().filter(|n| !is_all(n)) {
        caps.remove(&parse_capability(name)?);
    }
    Ok(caps)
}

/// Builds the runtime spec. Fails only on configurations no runtime could honour (missing
/// fields, relative paths, unknown capabilities, `run_as_non_root` with uid 0).
pub fn spec(config: &ContainerConfig) -> Result<Spec> {
    validate(config)?;
    let caps = capabilities(config)?;
    let security = &config.security;

    let mut spec = Spec::default();
    spec.set_version(OCI_VERSION.to_string());

    let mut root = Root::default();
    root.set_path(config.rootfs.clone());
    root.set_readonly(Some(security.readonly_rootfs));
    spec.set_root(Some(root));

    spec.set_process(Some(process(config, &caps)));
    // With a joined UTS namespace the sandbox already set the name, and runc would try to set it
    // again in a namespace it does not own.
    let private_uts = config.namespaces.uts == NamespaceMode::Private;
    spec.set_hostname(config.hostname.clone().filter(|_| private_uts));
    spec.set_mounts(Some(mounts(config)));
    spec.set_annotations(if config.annotations.is_empty() {
        None
    } else {
        Some(
            config
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    });

    let mut linux = oci_spec::runtime::Linux::default();
    linux.set_namespaces(Some(namespaces(config)));
    linux.set_resources(Some(resources(config)));
    linux.set_cgroups_path(config.cgroup_path.as_ref().map(PathBuf::from));
    linux.set_sysctl(if config.sysctls.is_empty() {
        None
    } else {
        Some(
            config
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        )
    });
    let masked = !security.privileged && security.proc_mount == ProcMount::Default;
    linux.set_masked_paths(masked.then(|| MASKED_PATHS.iter().map(|s| s.to_string()).collect()));
    linux
        .set_readonly_paths(masked.then(|| READONLY_PATHS.iter().map(|s| s.to_string()).collect()));
    let seccomp = !security.privileged && security.seccomp == SeccompProfile::RuntimeDefault;
    linux.set_seccomp(seccomp.then(|| seccomp::runtime_default(&caps)));
    linux.set_rootfs_propagation(rootfs_propagation(config));
    spec.set_linux(Some(linux));
    Ok(spec)
}

fn validate(config: &ContainerConfig) -> Result<()> {
    let invalid = |msg: String| Err(Error::InvalidConfig(msg));
    if !is_valid_id(&config.id) {
        return invalid(format!(
            "container id {:?} must match [A-Za-z0-9][A-Za-z0-9_.-]*",
            config.id
        ));
    }
    if !config.rootfs.is_absolute() {
        return invalid(format!(
            "rootfs {} must be an absolute path",
            config.rootfs.display()
        ));
    }
    if config.args.is_empty() || config.args[0].is_empty() {
        return invalid("the process needs a command".into());
    }
    if !config.cwd.as_os_str().is_empty() && !config.cwd.is_absolute() {
        return invalid(format!(
            "working directory {} must be absolute",
            config.cwd.display()
        ));
    }
    if let Some((key, _)) = config
        .env
        .iter()
        .find(|(k, _)| k.is_empty() || k.contains('='))
    {
        return invalid(format!("invalid environment variable name {key:?}"));
    }
    if config.security.run_as_non_root && config.user.uid == 0 {
        return invalid("runAsNonRoot is set but the container would run as uid 0".into());
    }
    if let Some(hostname) = &config.hostname
        && (hostname.is_empty() || hostname.len() > 64)
    {
        return invalid(format!(
            "hostname {hostname:?} must have 1 to 64 characters"
        ));
    }
    for mount in &config.mounts {
        if !mount.destination.is_absolute() {
            return invalid(format!(
                "mount destination {} must be absolute",
                mount.destination.display()
            ));
        }
        if let MountSource::Bind(source) = &mount.source
            && !source.is_absolute()
        {
            return invalid(format!(
                "bind mount source {} must be absolute",
                source.display()
            ));
        }
        if mount.propagation == Propagation::Bidirectional && !config.security.privileged {
            return invalid(format!(
                "bidirectional propagation for {} needs a privileged container",
                mount.destination.display()
            ));
        }
    }
    Ok(())
}

/// Ids become directory names and command arguments: keep them boring.
pub fn is_valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && id.len() <= 128
}

fn process(config: &ContainerConfig, caps: &HashSet<Capability>) -> Process {
    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_args(Some(config.args.clone()));
    process.set_env(Some(environment(config)));
    process.set_cwd(if config.cwd.as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        config.cwd.clone()
    });

    let mut user = OciUser::default();
    user.set_uid(config.user.uid);
    user.set_gid(config.user.gid);
    user.set_umask(config.user.umask);
    user.set_additional_gids(if config.user.additional_gids.is_empty() {
        None
    } else {
        Some(config.user.additional_gids.clone())
    });
    process.set_user(user);

    // Inheritable and ambient stay empty, as in containerd: a non-root process keeps its
    // capabilities only through file capabilities, never by inheritance.
    let mut capabilities = LinuxCapabilities::default();
    capabilities.set_bounding(Some(caps.clone()));
    capabilities.set_permitted(Some(caps.clone()));
    capabilities.set_effective(Some(caps.clone()));
    capabilities.set_inheritable(Some(HashSet::new()));
    capabilities.set_ambient(Some(HashSet::new()));
    process.set_capabilities(Some(capabilities));

    process.set_rlimits(if config.rlimits.is_empty() {
        None
    } else {
        Some(
            config
                .rlimits
                .iter()
                .map(|r| {
                    PosixRlimitBuilder::default()
                        .typ(r.kind)
                        .soft(r.soft)
                        .hard(r.hard)
                        .build()
                        .expect("every field has a default")
                })
                .collect(),
        )
    });
    process.set_no_new_privileges(Some(config.security.no_new_privileges));
    process.set_oom_score_adj(config.oom_score_adj);
    process
}

fn environment(config: &ContainerConfig) -> Vec<String> {
    let mut env: Vec<String> = config.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let has = |key: &str| config.env.iter().any(|(k, _)| k == key);
    if !has("PATH") {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if let Some(hostname) = &config.hostname
        && !has("HOSTNAME")
    {
        env.push(format!("HOSTNAME={hostname}"));
    }
    env
}

fn oci_mount(
    destination: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> oci_spec::runtime::Mount {
    let mut mount = oci_spec::runtime::Mount::default();
    mount.set_destination(PathBuf::from(destination));
    mount.set_typ(Some(typ.to_string()));
    mount.set_source(Some(PathBuf::from(source)));
    mount.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    mount
}

fn default_mounts(privileged: bool) -> Vec<oci_spec::runtime::Mount> {
    let sys_mode = if privileged { "rw" } else { "ro" };
    vec![
        oci_mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        oci_mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        oci_mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        oci_mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        oci_mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        oci_mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_mode],
        ),
        oci_mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_mode],
        ),
    ]
}

fn mounts(config: &ContainerConfig) -> Vec<oci_spec::runtime::Mount> {
    let overridden = |dest: &Path| config.mounts.iter().any(|m| m.destination == dest);
    let mut mounts: Vec<_> = default_mounts(config.security.privileged)
        .into_iter()
        .filter(|m| !overridden(m.destination()))
        .collect();
    // Parents before children, whatever order the volumes were listed in; stable otherwise.
    let mut user: Vec<_> = config.mounts.iter().collect();
    user.sort_by_key(|m| m.destination.components().count());
    for m in user {
        let access = if m.read_only { "ro" } else { "rw" };
        let propagation = match m.propagation {
            Propagation::Private => "rprivate",
            Propagation::HostToContainer => "rslave",
            Propagation::Bidirectional => "rshared",
        };
        let destination = m.destination.to_string_lossy();
        let mount = match &m.source {
            MountSource::Bind(source) => oci_mount(
                &destination,
                "bind",
                &source.to_string_lossy(),
                &["rbind", access, propagation],
            ),
            MountSource::Tmpfs { size_bytes, mode } => {
                let mut options = vec![
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    access.to_string(),
                ];
                options.push(format!("mode={:o}", mode.unwrap_or(0o1777)));
                if let Some(size) = size_bytes {
                    options.push(format!("size={size}"));
                }
                let options: Vec<&str> = options.iter().map(String::as_str).collect();
                oci_mount(&destination, "tmpfs", "tmpfs", &options)
            }
        };
        mounts.push(mount);
    }
    mounts
}

/// Volumes that propagate need the container's root mount to be a slave or shared too.
fn rootfs_propagation(config: &ContainerConfig) -> Option<String> {
    let wants = |p: Propagation| config.mounts.iter().any(|m| m.propagation == p);
    if wants(Propagation::Bidirectional) {
        Some("rshared".into())
    } else if wants(Propagation::HostToContainer) {
        Some("rslave".into())
    } else {
        None
    }
}

fn namespaces(config: &ContainerConfig) -> Vec<LinuxNamespace> {
    let ns = &config.namespaces;
    let mut out = Vec::new();
    let mut add = |typ: LinuxNamespaceType, mode: &NamespaceMode| {
        let path = match mode {
            NamespaceMode::Host => return,
            NamespaceMode::Private => None,
            NamespaceMode::Join(path) => Some(path.clone()),
        };
        let mut namespace = LinuxNamespace::default();
        namespace.set_typ(typ);
        namespace.set_path(path);
        out.push(namespace);
    };
    add(LinuxNamespaceType::Pid, &ns.pid);
    add(LinuxNamespaceType::Network, &ns.network);
    add(LinuxNamespaceType::Ipc, &ns.ipc);
    add(LinuxNamespaceType::Uts, &ns.uts);
    add(LinuxNamespaceType::Mount, &NamespaceMode::Private);
    add(LinuxNamespaceType::Cgroup, &ns.cgroup);
    out
}

fn device_rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(allow);
    rule.set_typ(Some(typ));
    rule.set_major(major);
    rule.set_minor(minor);
    rule.set_access(Some("rwm".to_string()));
    rule
}

fn resources(config: &ContainerConfig) -> LinuxResources {
    let r = &config.resources;
    let mut resources = LinuxResources::default();

    let devices =
        if config.security.privileged {
            vec![device_rule(true, LinuxDeviceType::A, None, None)]
        } else {
            std::iter::once(device_rule(false, LinuxDeviceType::A, None, None))
                .chain(ALLOWED_DEVICES.iter().map(|&(major, minor)| {
                    device_rule(true, LinuxDeviceType::C, Some(major), minor)
                }))
                .collect()
        };
    resources.set_devices(Some(devices));

    if let Some(limit) = r.memory_limit {
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(limit));
        // memory+swap = memory: no swap, as the kubelet does when swap is off.
        memory.set_swap(Some(limit));
        resources.set_memory(Some(memory));
    }
    if r.cpu_shares.is_some() || r.cpu_quota.is_some() || r.cpu_period.is_some() {
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(r.cpu_shares);
        cpu.set_quota(r.cpu_quota.filter(|q| *q > 0));
        cpu.set_period(r.cpu_period);
        resources.set_cpu(Some(cpu));
    }
    if let Some(limit) = r.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        resources.set_pids(Some(pids));
    }
    resources
}

/// Keeps only capabilities in `allowed` (the agent's own bounding set): a runtime cannot grant
/// what it does not hold, and runc fails the start rather than silently dropping one.
pub fn restrict_capabilities(spec: &mut Spec, allowed: &HashSet<Capability>) {
    let Some(process) = spec.process_mut() else {
        return;
    };
    let Some(mut caps) = process.capabilities().clone() else {
        return;
    };
    let keep = |set: &Option<HashSet<Capability>>| {
        set.as_ref()
            .map(|s| s.intersection(allowed).copied().collect())
    };
    caps.set_bounding(keep(caps.bounding()));
    caps.set_permitted(keep(caps.permitted()));
    caps.set_effective(keep(caps.effective()));
    caps.set_inheritable(keep(caps.inheritable()));
    caps.set_ambient(keep(caps.ambient()));
    process.set_capabilities(Some(caps));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::{Mount, Resources, Rlimit, RlimitKind, User};

    fn base() -> ContainerConfig {
        ContainerConfig::new(
            "c1",
            "/var/lib/rootfs",
            vec!["sh".into(), "-c".into(), "true".into()],
        )
    }

    fn names(caps: &HashSet<Capability>) -> Vec<String> {
        let mut v: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    }

    fn json(spec: &Spec) -> serde_json::Value {
        serde_json::to_value(spec).unwrap()
    }

    #[test]
    fn capability_sets() {
        type Case = (
            &'static str,
            bool,
            &'static [&'static str],
            &'static [&'static str],
            usize,
            &'static [&'static str],
            &'static [&'static str],
        );
        // (name, privileged, add, drop, expected count, must contain, must not contain)
        let cases: &[Case] = &[
            (
                "defaults",
                false,
                &[],
                &[],
                14,
                &["CHOWN", "NET_RAW", "KILL"],
                &["SYS_ADMIN", "NET_ADMIN"],
            ),
            (
                "add one",
                false,
                &["NET_ADMIN"],
                &[],
                15,
                &["NET_ADMIN"],
                &[],
            ),
            (
                "kernel spelling",
                false,
                &["cap_sys_time"],
                &[],
                15,
                &["SYS_TIME"],
                &[],
            ),
            (
                "drop one",
                false,
                &[],
                &["NET_RAW"],
                13,
                &["CHOWN"],
                &["NET_RAW"],
            ),
            (
                "drop all add one",
                false,
                &["NET_BIND_SERVICE"],
                &["ALL"],
                1,
                &["NET_BIND_SERVICE"],
                &["CHOWN"],
            ),
            (
                "drop wins",
                false,
                &["NET_RAW"],
                &["NET_RAW"],
                13,
                &[],
                &["NET_RAW"],
            ),
            (
                "add all",
                false,
                &["ALL"],
                &[],
                41,
                &["SYS_ADMIN", "BPF"],
                &[],
            ),
            ("privileged", true, &[], &["ALL"], 41, &["SYS_ADMIN"], &[]),
        ];
        for (name, privileged, add, drop, count, has, lacks) in cases {
            let mut c = base();
            c.security.privileged = *privileged;
            c.security.cap_add = add.iter().map(|s| s.to_string()).collect();
            c.security.cap_drop = drop.iter().map(|s| s.to_string()).collect();
            let caps = capabilities(&c).unwrap();
            let got = names(&caps);
            assert_eq!(caps.len(), *count, "{name}: {got:?}");
            for cap in *has {
                assert!(got.iter().any(|g| g == cap), "{name}: missing {cap}");
            }
            for cap in *lacks {
                assert!(!got.iter().any(|g| g == cap), "{name}: unexpected {cap}");
            }
        }
        let mut c = base();
        c.security.cap_add = vec!["NET_WIZARD".into()];
        assert!(matches!(capabilities(&c), Err(Error::InvalidConfig(_))));
    }

    #[test]
    fn invalid_configs_are_refused() {
        type Mutation = Box<dyn Fn(&mut ContainerConfig)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("empty id", Box::new(|c| c.id.clear())),
            ("slash in id", Box::new(|c| c.id = "a/b".into())),
            ("relative rootfs", Box::new(|c| c.rootfs = "rootfs".into())),
            ("no command", Box::new(|c| c.args.clear())),
            ("relative cwd", Box::new(|c| c.cwd = "work".into())),
            (
                "bad env",
                Box::new(|c| c.env.push(("A=B".into(), "x".into()))),
            ),
            (
                "root with runAsNonRoot",
                Box::new(|c| c.security.run_as_non_root = true),
            ),
            (
                "relative mount",
                Box::new(|c| c.mounts.push(Mount::tmpfs("tmp", None))),
            ),
            (
                "relative bind source",
                Box::new(|c| c.mounts.push(Mount::bind("data", "/data", false))),
            ),
            (
                "bidirectional unprivileged",
                Box::new(|c| {
                    let mut m = Mount::bind("/mnt", "/mnt", false);
                    m.propagation = Propagation::Bidirectional;
                    c.mounts.push(m);
                }),
            ),
            (
                "long hostname",
                Box::new(|c| c.hostname = Some("h".repeat(65))),
            ),
        ];
        for (name, mutate) in cases {
            let mut c = base();
            mutate(&mut c);
            assert!(
                matches!(spec(&c), Err(Error::InvalidConfig(_))),
                "{name} should be refused"
            );
        }
        let mut c = base();
        c.security.run_as_non_root = true;
        c.user.uid = 1000;
        assert!(spec(&c).is_ok());
    }

    #[test]
    fn process_fields() {
        let mut c = base();
        c.env = vec![("A".into(), "1".into()), ("B".into(), "two words".into())];
        c.cwd = "/work".into();
        c.user = User {
            uid: 1000,
            gid: 2000,
            additional_gids: vec![3000, 4000],
            umask: Some(0o22),
        };
        c.hostname = Some("web-0".into());
        c.rlimits = vec![Rlimit {
            kind: RlimitKind::RlimitNofile,
            soft: 1024,
            hard: 4096,
        }];
        c.security.no_new_privileges = true;
        c.oom_score_adj = Some(500);
        let v = json(&spec(&c).unwrap());
        let p = &v["process"];
        assert_eq!(p["args"], serde_json::json!(["sh", "-c", "true"]));
        assert_eq!(
            p["env"],
            serde_json::json!([
                format!("PATH={DEFAULT_PATH}"),
                "A=1",
                "B=two words",
                "HOSTNAME=web-0"
            ])
        );
        assert_eq!(p["cwd"], "/work");
        assert_eq!(
            p["user"],
            serde_json::json!({"uid": 1000, "gid": 2000, "umask": 18, "additionalGids": [3000, 4000]})
        );
        assert_eq!(
            p["rlimits"],
            serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}])
        );
        assert_eq!(p["noNewPrivileges"], true);
        assert_eq!(p["oomScoreAdj"], 500);
        assert_eq!(p["terminal"], false);
        assert_eq!(p["capabilities"]["ambient"], serde_json::json!([]));
        // A private UTS namespace gets the hostname from the runtime.
        assert_eq!(v["hostname"], "web-0");
        // An explicit PATH is kept as given.
        c.env.push(("PATH".into(), "/bin".into()));
        let v = json(&spec(&c).unwrap());
        assert_eq!(v["process"]["env"][0], "A=1");
    }

    #[test]
    fn namespaces_by_mode() {
        let mut c = base();
        c.hostname = Some("pod".into());
        c.namespaces.network = NamespaceMode::Join("/run/maestro/pods/u/ns/net".into());
        c.namespaces.ipc = NamespaceMode::Join("/run/maestro/pods/u/ns/ipc".into());
        c.namespaces.uts = NamespaceMode::Join("/run/maestro/pods/u/ns/uts".into());
        c.namespaces.cgroup = NamespaceMode::Host;
        let v = json(&spec(&c).unwrap());
        assert_eq!(
            v["linux"]["namespaces"],
            serde_json::json!([
                {"type": "pid"},
                {"type": "network", "path": "/run/maestro/pods/u/ns/net"},
                {"type": "ipc", "path": "/run/maestro/pods/u/ns/ipc"},
                {"type": "uts", "path": "/run/maestro/pods/u/ns/uts"},
                {"type": "mount"},
            ])
        );
        // The sandbox's UTS namespace already has the name.
        assert!(v.get("hostname").is_none());

        c.namespaces.network = NamespaceMode::Host;
        let v = json(&spec(&c).unwrap());
        let types: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["pid", "ipc", "uts", "mount"]);
    }

    #[test]
    fn resources_and_cgroup_path() {
        let mut c = base();
        c.cgroup_path = Some("/maestro/burstable/podu/c1".into());
        c.resources = Resources {
            cpu_shares: Some(256),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory_limit: Some(64 << 20),
            pids_limit: Some(100),
        };
        let v = json(&spec(&c).unwrap());
        let l = &v["linux"];
        assert_eq!(l["cgroupsPath"], "/maestro/burstable/podu/c1");
        assert_eq!(
            l["resources"]["cpu"],
            serde_json::json!({"shares": 256, "quota": 50000, "period": 100000})
        );
        assert_eq!(
            l["resources"]["memory"],
            serde_json::json!({"limit": 64 << 20, "swap": 64 << 20})
        );
        assert_eq!(l["resources"]["pids"], serde_json::json!({"limit": 100}));
        let devices = l["resources"]["devices"].as_array().unwrap();
        assert_eq!(
            devices[0],
            serde_json::json!({"allow": false, "type": "a", "access": "rwm"})
        );
        assert!(devices.contains(&serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"})));

        let v = json(&spec(&base()).unwrap());
        assert!(v["linux"]["resources"].get("memory").is_none());
        assert!(v["linux"]["resources"].get("cpu").is_none());
        assert!(v["linux"].get("cgroupsPath").is_none());
    }

    #[test]
    fn security_profiles() {
        // (name, privileged, readonly, proc unmasked, seccomp) → (masked, seccomp present, sys mode)
        let cases = [
            (
                "default",
                false,
                false,
                false,
                SeccompProfile::RuntimeDefault,
                true,
                true,
                "ro",
            ),
            (
                "unconfined",
                false,
                false,
                false,
                SeccompProfile::Unconfined,
                true,
                false,
                "ro",
            ),
            (
                "unmasked",
                false,
                true,
                true,
                SeccompProfile::RuntimeDefault,
                false,
                true,
                "ro",
            ),
            (
                "privileged",
                true,
                false,
                false,
                SeccompProfile::RuntimeDefault,
                false,
                false,
                "rw",
            ),
        ];
        for (name, privileged, readonly, unmasked, seccomp, masked, has_seccomp, sys) in cases {
            let mut c = base();
            c.security.privileged = privileged;
            c.security.readonly_rootfs = readonly;
            c.security.proc_mount = if unmasked {
                ProcMount::Unmasked
            } else {
                ProcMount::Default
            };
            c.security.seccomp = seccomp;
            let v = json(&spec(&c).unwrap());
            assert_eq!(v["root"]["readonly"], readonly, "{name}");
            assert_eq!(v["linux"].get("maskedPaths").is_some(), masked, "{name}");
            assert_eq!(v["linux"].get("readonlyPaths").is_some(), masked, "{name}");
            assert_eq!(v["linux"].get("seccomp").is_some(), has_seccomp, "{name}");
            let sysfs = v["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["destination"] == "/sys")
                .unwrap();
            assert!(
                sysfs["options"]
                    .as_array()
                    .unwrap()
                    .contains(&serde_json::json!(sys)),
                "{name}"
            );
            let devices = &v["linux"]["resources"]["devices"];
            assert_eq!(devices[0]["allow"], privileged, "{name}");
        }
    }

    #[test]
    fn mounts_defaults_overrides_and_order() {
        let mut c = base();
        c.mounts = vec![
            Mount::bind("/var/lib/vol/data/cache", "/data/cache", true),
            Mount::bind("/var/lib/vol/data", "/data", false),
            Mount::bind("/run/maestro/pods/u/shm", "/dev/shm", false),
            Mount::bind("/run/maestro/pods/u/hosts", "/etc/hosts", true),
            Mount::tmpfs("/scratch", Some(1 << 20)),
        ];
        let mut slave = Mount::bind("/mnt/host", "/mnt/host", true);
        slave.propagation = Propagation::HostToContainer;
        c.mounts.push(slave);
        let v = json(&spec(&c).unwrap());
        let mounts = v["mounts"].as_array().unwrap();
        let dests: Vec<&str> = mounts
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/data",
                "/scratch",
                "/data/cache",
                "/dev/shm",
                "/etc/hosts",
                "/mnt/host",
            ]
        );
        let find = |d: &str| mounts.iter().find(|m| m["destination"] == d).unwrap();
        assert_eq!(find("/dev/shm")["type"], "bind");
        assert_eq!(
            find("/etc/hosts")["options"],
            serde_json::json!(["rbind", "ro", "rprivate"])
        );
        assert_eq!(
            find("/data")["options"],
            serde_json::json!(["rbind", "rw", "rprivate"])
        );
        assert_eq!(
            find("/scratch")["options"],
            serde_json::json!(["nosuid", "nodev", "rw", "mode=1777", "size=1048576"])
        );
        assert_eq!(
            find("/mnt/host")["options"],
            serde_json::json!(["rbind", "ro", "rslave"])
        );
        assert_eq!(v["linux"]["rootfsPropagation"], "rslave");
    }

    #[test]
    fn annotations_sysctls_and_capability_restriction() {
        let mut c = base();
        c.annotations
            .insert("io.maestro.pod-uid".into(), "u1".into());
        c.sysctls
            .insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
        c.security.privileged = true;
        let mut s = spec(&c).unwrap();
        let v = json(&s);
        assert_eq!(v["annotations"]["io.maestro.pod-uid"], "u1");
        assert_eq!(
            v["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"],
            "0"
        );

        let allowed: HashSet<Capability> = ALL_CAPABILITIES
            .iter()
            .copied()
            .filter(|c| *c != Capability::SysResource)
            .collect();
        restrict_capabilities(&mut s, &allowed);
        let caps = s
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 40);
        assert!(
            !caps
                .effective()
                .as_ref()
                .unwrap()
                .contains(&Capability::SysResource)
        );
    }

    #[test]
    fn capability_numbers_match_the_kernel() {
        // Spot checks of the bit positions the CapBnd filter relies on.
        assert_eq!(ALL_CAPABILITIES[0], Capability::Chown);
        assert_eq!(ALL_CAPABILITIES[21], Capability::SysAdmin);
        assert_eq!(ALL_CAPABILITIES[24], Capability::SysResource);
        assert_eq!(ALL_CAPABILITIES[40], Capability::CheckpointRestore);
        for name in ["NET_ADMIN", "CAP_NET_ADMIN", "net_admin"] {
            assert_eq!(parse_capability(name).unwrap(), Capability::NetAdmin);
        }
    }
}
