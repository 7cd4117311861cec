//! The `RuntimeDefault` seccomp profile: a deny-list. Everything is allowed except system calls
//! that reach kernel state no container should touch (modules, kexec, clocks, keyrings, swap,
//! accounting) and the ones whose capability the container lacks (mount and namespaces without
//! `CAP_SYS_ADMIN`, ptrace without `CAP_SYS_PTRACE`...), which answer `EPERM`. This is looser
//! than Docker's allow-list, but it never breaks a program for using a new, harmless syscall.

use std::collections::HashSet;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
const CLONE_NEWUSER: u64 = 0x1000_0000;

/// Denied whatever the capabilities.
const ALWAYS_DENIED: &[&str] = &[
    // Kernel keyrings are not namespaced.
    "add_key",
    "keyctl",
    "request_key",
    // Loading kernels or replacing the running one.
    "kexec_file_load",
    "kexec_load",
    // Obsolete or host-wide interfaces.
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "vm86",
    "vm86old",
    "lookup_dcookie",
    "swapon",
    "swapoff",
    // Lets a container observe and intercept the host's page faults.
    "userfaultfd",
    // io_uring bypasses the seccomp checks of the operations it performs.
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// Denied unless the container holds the capability that makes the call meaningful.
const CAPABILITY_GATED: &[(Capability, &[&str])] = &[
    (
        Capability::SysAdmin,
        &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
            "quotactl",
            "quotactl_fd",
            "name_to_handle_at",
            "fanotify_init",
            "lsm_set_self_attr",
        ],
    ),
    (Capability::DacReadSearch, &["open_by_handle_at"]),
    (
        Capability::SysModule,
        &["init_module", "finit_module", "delete_module"],
    ),
    (Capability::SysBoot, &["reboot"]),
    (
        Capability::SysTime,
        &[
            "settimeofday",
            "stime",
            "clock_settime",
            "clock_settime64",
            "clock_adjtime",
            "clock_adjtime64",
            "adjtimex",
        ],
    ),
    (Capability::SysPacct, &["acct"]),
    (Capability::SysRawio, &["iopl", "ioperm"]),
    (
        Capability::SysPtrace,
        &[
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "kcmp",
            "pidfd_getfd",
        ],
    ),
    (
        Capability::SysNice,
        &["mbind", "set_mempolicy", "move_pages", "get_mempolicy"],
    ),
    (Capability::Syslog, &["syslog"]),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
];

/// Capabilities that also unlock a gated group (the newer, narrower caps were split out of
/// `CAP_SYS_ADMIN`, which still implies them).
fn holds(caps: &HashSet<Capability>, needed: Capability) -> bool {
    caps.contains(&needed)
        || (matches!(
            needed,
            Capability::Bpf | Capability::Perfmon | Capability::Syslog
        ) && caps.contains(&Capability::SysAdmin))
}

/// The profile for a container whose bounding set is `caps`.
pub fn runtime_default(caps: &HashSet<Capability>) -> LinuxSeccomp {
    let mut denied: Vec<String> = ALWAYS_DENIED.iter().map(|s| s.to_string()).collect();
    for (cap, calls) in CAPABILITY_GATED {
        if !holds(caps, *cap) {
            denied.extend(calls.iter().map(|s| s.to_string()));
        }
    }
    let mut syscalls = vec![syscall_rule(
        denied,
        LinuxSeccompAction::ScmpActErrno,
        EPERM,
        None,
    )];
    if !caps.contains(&Capability::SysAdmin) {
        // clone3 passes its flags in memory, out of seccomp's reach: answering ENOSYS makes libc
        // fall back to clone, whose flags argument can be filtered.
        syscalls.push(syscall_rule(
            vec!["clone3".into()],
            LinuxSeccompAction::ScmpActErrno,
            ENOSYS,
            None,
        ));
        // New user namespaces are the usual first step of kernel exploits.
        let new_user = LinuxSeccompArgBuilder::default()
            .index(clone_flags_index())
            .value(CLONE_NEWUSER)
            .value_two(CLONE_NEWUSER)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .expect("every field has a default");
        syscalls.push(syscall_rule(
            vec!["clone".into()],
            LinuxSeccompAction::ScmpActErrno,
            EPERM,
            Some(vec![new_user]),
        ));
    }
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActAllow);
    profile.set_architectures(Some(architectures()));
    profile.set_syscalls(Some(syscalls));
    profile
}

fn syscall_rule(
    names: Vec<String>,
    action: LinuxSeccompAction,
    errno: u32,
    args: Option<Vec<LinuxSeccompArg>>,
) -> LinuxSyscall {
    let mut rule = LinuxSyscall::default();
    rule.set_names(names);
    rule.set_action(action);
    rule.set_errno_ret(Some(errno));
    rule.set_args(args);
    rule
}

// s390 swaps clone's first two arguments; every other architecture passes the flags first.
fn clone_flags_index() -> usize {
    if cfg!(target_arch = "s390x") { 1 } else { 0 }
}

/// The native architecture and the compat ones it can run, so 32-bit binaries are filtered too.
fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied_names(profile: &LinuxSeccomp) -> HashSet<String> {
        profile
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|r| r.args().is_none() && r.errno_ret() == Some(EPERM))
            .flat_map(|r| r.names().iter().cloned())
            .collect()
    }

    #[test]
    fn default_caps_deny_mount_ptrace_and_keyrings() {
        let profile = runtime_default(&HashSet::from([
            Capability::Chown,
            Capability::NetBindService,
        ]));
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActAllow);
        let denied = denied_names(&profile);
        for name in [
            "mount",
            "unshare",
            "setns",
            "ptrace",
            "keyctl",
            "kexec_load",
            "bpf",
            "reboot",
        ] {
            assert!(denied.contains(name), "{name} should be denied");
        }
        for name in ["read", "clone", "execve", "socket"] {
            assert!(!denied.contains(name), "{name} should be allowed");
        }
        let rules = profile.syscalls().as_ref().unwrap();
        assert!(
            rules
                .iter()
                .any(|r| r.names() == &["clone3"] && r.errno_ret() == Some(ENOSYS))
        );
        let clone = rules.iter().find(|r| r.names() == &["clone"]).unwrap();
        let arg = clone.args().as_ref().unwrap()[0];
        assert_eq!(
            (arg.value(), arg.value_two(), arg.op()),
            (
                CLONE_NEWUSER,
                Some(CLONE_NEWUSER),
                LinuxSeccompOperator::ScmpCmpMaskedEq
            )
        );
    }

    #[test]
    fn granted_capabilities_lift_their_group() {
        let profile = runtime_default(&HashSet::from([
            Capability::SysAdmin,
            Capability::SysPtrace,
        ]));
        let denied = denied_names(&profile);
        for name in [
            "mount",
            "unshare",
            "setns",
            "ptrace",
            "bpf",
            "perf_event_open",
        ] {
            assert!(!denied.contains(name), "{name} should be allowed");
        }
        assert!(denied.contains("keyctl"));
        assert!(denied.contains("init_module"));
        assert!(
            !profile
                .syscalls()
                .as_ref()
                .unwrap()
                .iter()
                .any(|r| r.names() == &["clone"])
        );
    }
}
