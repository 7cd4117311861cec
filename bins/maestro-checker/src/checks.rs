//! The assertions: parsed from the command line (a keyword and its arguments each), run in
//! order, each printing one line, `ok <check>` or `FAIL <check>: expected X, got Y`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroup::{self, Cgroups, Version};
use crate::procfs;

/// One assertion and its arguments, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub args: Vec<String>,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        for arg in &self.args {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

/// Every check: keyword, number of arguments, argument syntax, meaning.
#[rustfmt::skip]
pub const CHECKS: &[(&str, usize, &str, &str)] = &[
    ("env", 1, "NAME=VALUE", "environment variable NAME is VALUE"),
    ("env-unset", 1, "NAME", "NAME is not in the environment"),
    ("hostname", 1, "NAME", "the UTS hostname"),
    ("uid", 1, "N", "effective user id"),
    ("gid", 1, "N", "effective group id"),
    ("groups", 1, "N,N..|none", "supplementary groups, in any order"),
    ("umask", 1, "OCTAL", "the process umask, e.g. 0022"),
    ("cwd", 1, "PATH", "working directory"),
    ("pid", 1, "N", "own pid (1 in a private pid namespace)"),
    ("memory-limit", 1, "BYTES|max", "cgroup memory limit (64Mi, 67108864)"),
    ("cpu-quota", 1, "QUOTA/PERIOD|max/PERIOD", "CFS quota, microseconds"),
    ("cpu-shares", 1, "N", "cpu.shares (v1), or its cpu.weight (v2)"),
    ("pids-limit", 1, "N|max", "cgroup pids limit"),
    ("cgroup", 1, "FILE=VALUE", "raw cgroup file (memory.swappiness=0)"),
    ("mount-ro", 1, "PATH", "PATH is a mount point, mounted read-only"),
    ("mount-rw", 1, "PATH", "PATH is a mount point, mounted read-write"),
    ("mount-type", 1, "PATH=FSTYPE", "filesystem type of the mount at PATH"),
    ("not-mounted", 1, "PATH", "nothing is mounted at PATH"),
    ("shm-size", 1, "BYTES", "size of the tmpfs at /dev/shm"),
    ("readonly-rootfs", 0, "", "/ is mounted read-only"),
    ("writable", 1, "DIR", "a file can be created in DIR"),
    ("not-writable", 1, "DIR", "no file can be created in DIR"),
    ("file", 1, "PATH=CONTENT", "file content (a final newline is ignored)"),
    ("file-contains", 1, "PATH=TEXT", "file content includes TEXT"),
    ("exists", 1, "PATH", "PATH exists"),
    ("absent", 1, "PATH", "PATH does not exist"),
    ("mode", 1, "PATH=OCTAL", "permission bits of PATH (links followed)"),
    ("owner", 1, "PATH=UID:GID", "owner of PATH (links followed)"),
    ("cap", 1, "NAME", "capability in the effective set (NET_RAW, CAP_NET_RAW)"),
    ("cap-absent", 1, "NAME", "capability not in the effective set"),
    ("cap-bounding", 1, "NAME", "capability in the bounding set"),
    ("cap-bounding-absent", 1, "NAME", "capability not in the bounding set"),
    ("no-new-privs", 1, "0|1", "the no_new_privs bit"),
    ("seccomp", 1, "0|1|2", "seccomp mode (2: filter)"),
    ("oom-score-adj", 1, "N", "/proc/self/oom_score_adj"),
    ("rlimit", 1, "NAME=SOFT/HARD", "resource limit (nofile=1024/4096, core=0/unlimited)"),
    ("sysctl", 1, "NAME=VALUE", "a /proc/sys value (net.ipv4.ip_forward=1)"),
    ("connect", 1, "IP:PORT", "a TCP connection succeeds within 2 s"),
    ("no-connect", 1, "IP:PORT", "no TCP connection within 2 s"),
];

/// Parses `keyword args... keyword args...` up to the end.
pub fn parse(args: &[String]) -> Result<Vec<Check>, String> {
    let mut checks = Vec::new();
    let mut rest = args;
    while let Some((keyword, tail)) = rest.split_first() {
        let &(name, arity, syntax, _) = CHECKS
            .iter()
            .find(|(name, ..)| name == keyword)
            .ok_or_else(|| format!("unknown check {keyword:?}"))?;
        if tail.len() < arity {
            return Err(format!("{name} needs {syntax}"));
        }
        let check = Check {
            name,
            args: tail[..arity].to_vec(),
        };
        validate(&check).map_err(|e| format!("{check}: {e}"))?;
        checks.push(check);
        rest = &tail[arity..];
    }
    Ok(checks)
}

/// Syntax errors are found before anything runs, so a typo is not reported as a failure.
fn validate(check: &Check) -> Result<(), String> {
    let arg = check.args.first().map(String::as_str).unwrap_or("");
    let need_pair = || {
        arg.split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .map(|_| ())
            .ok_or_else(|| "expected KEY=VALUE".to_owned())
    };
    match check.name {
        "env" | "cgroup" | "mount-type" | "file" | "file-contains" | "sysctl" => need_pair(),
        "mode" => {
            need_pair()?;
            u32::from_str_radix(arg.split_once('=').unwrap().1, 8)
                .map(|_| ())
                .map_err(|_| "mode must be octal".into())
        }
        "owner" => {
            need_pair()?;
            parse_ids(arg.split_once('=').unwrap().1).map(|_| ())
        }
        "uid" | "gid" | "pid" | "cpu-shares" | "oom-score-adj" => arg
            .parse::<i64>()
            .map(|_| ())
            .map_err(|_| "expected a number".into()),
        "umask" => u32::from_str_radix(arg, 8)
            .map(|_| ())
            .map_err(|_| "umask must be octal".into()),
        "groups" => parse_groups(arg).map(|_| ()),
        "memory-limit" | "pids-limit" if arg == "max" => Ok(()),
        "memory-limit" | "pids-limit" | "shm-size" => parse_quantity(arg).map(|_| ()),
        "cpu-quota" => parse_quota(arg).map(|_| ()),
        "cap" | "cap-absent" | "cap-bounding" | "cap-bounding-absent" => {
            procfs::capability_bit(arg)
                .map(|_| ())
                .ok_or_else(|| "unknown capability".into())
        }
        "no-new-privs" | "seccomp" => arg
            .parse::<u8>()
            .map(|_| ())
            .map_err(|_| "expected a number".into()),
        "rlimit" => {
            need_pair()?;
            let (name, value) = arg.split_once('=').unwrap();
            procfs::limit_row(name).ok_or("unknown rlimit")?;
            value
                .split_once('/')
                .map(|_| ())
                .ok_or_else(|| "expected NAME=SOFT/HARD".into())
        }
        "connect" | "no-connect" => arg
            .parse::<std::net::SocketAddr>()
            .map(|_| ())
            .map_err(|_| "expected IP:PORT".into()),
        _ => Ok(()),
    }
}

/// `64Mi`, `1Gi`, `100M`, `512k`, `67108864`.
pub fn parse_quantity(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("bad quantity {text:?}"))?;
    let factor: u64 = match suffix {
        "" => 1,
        "k" | "K" => 1000,
        "M" => 1000_u64.pow(2),
        "G" => 1000_u64.pow(3),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(format!("bad quantity suffix in {text:?}")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("quantity {text:?} too large"))
}

/// `50000/100000` or `max/100000`: quota (None = unlimited) and period.
fn parse_quota(text: &str) -> Result<(Option<u64>, u64), String> {
    let (quota, period) = text
        .split_once('/')
        .ok_or("expected QUOTA/PERIOD or max/PERIOD")?;
    let period = period.parse().map_err(|_| "bad period")?;
    let quota = match quota {
        "max" => None,
        q => Some(q.parse().map_err(|_| "bad quota")?),
    };
    Ok((quota, period))
}

fn parse_groups(text: &str) -> Result<Vec<u32>, String> {
    if text == "none" {
        return Ok(Vec::new());
    }
    let mut groups = text
        .split(',')
        .map(|g| g.parse::<u32>().map_err(|_| format!("bad group {g:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    groups.sort_unstable();
    groups.dedup();
    Ok(groups)
}

fn parse_ids(text: &str) -> Result<(u32, u32), String> {
    let (uid, gid) = text.split_once(':').ok_or("expected UID:GID")?;
    Ok((
        uid.parse().map_err(|_| "bad uid")?,
        gid.parse().map_err(|_| "bad gid")?,
    ))
}

/// Why a check did not pass.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The value differs: shown as `expected X, got Y`.
    Mismatch { expected: String, got: String },
    /// The value could not be read.
    Error(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Mismatch { expected, got } => write!(f, "expected {expected}, got {got}"),
            Failure::Error(message) => f.write_str(message),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Error(message)
    }
}

fn expect(expected: impl fmt::Display, got: impl fmt::Display) -> Result<(), Failure> {
    let (expected, got) = (expected.to_string(), got.to_string());
    if expected == got {
        Ok(())
    } else {
        Err(Failure::Mismatch { expected, got })
    }
}

/// What the checks read: the file system under `root` (`/` for real) for kernel views.
#[derive(Debug)]
pub struct Context {
    pub root: PathBuf,
}

impl Context {
    fn read(&self, path: &str) -> Result<String, Failure> {
        let full = self.root.join(path.trim_start_matches('/'));
        std::fs::read_to_string(&full)
            .map_err(|e| Failure::Error(format!("cannot read {}: {e}", full.display())))
    }

    fn status(&self, key: &str) -> Result<String, Failure> {
        let status = self.read("/proc/self/status")?;
        procfs::status_field(&status, key)
            .map(str::to_owned)
            .ok_or_else(|| Failure::Error(format!("no {key} in /proc/self/status")))
    }

    fn mounts(&self) -> Result<Vec<procfs::MountInfo>, Failure> {
        Ok(procfs::parse_mountinfo(&self.read("/proc/self/mountinfo")?))
    }

    fn cgroups(&self) -> Result<Cgroups, Failure> {
        Cgroups::read(&self.root).map_err(|e| Failure::Error(format!("reading cgroups: {e}")))
    }
}

/// A validated `KEY=VALUE` argument split at its first `=` (values may hold more).
fn pair(arg: &str) -> (&str, &str) {
    arg.split_once('=').expect("validated")
}

pub fn run(check: &Check, cx: &Context) -> Result<(), Failure> {
    let arg = check.args.first().map(String::as_str).unwrap_or("");
    match check.name {
        "env" => {
            let (name, value) = pair(arg);
            match std::env::var_os(name) {
                Some(got) => expect(format!("{value:?}"), format!("{:?}", got.to_string_lossy())),
                None => expect(format!("{value:?}"), "unset"),
            }
        }
        "env-unset" => match std::env::var_os(arg) {
            None => Ok(()),
            Some(v) => expect("unset", format!("{:?}", v.to_string_lossy())),
        },
        "hostname" => expect(arg, cx.read("/proc/sys/kernel/hostname")?.trim()),
        "uid" | "gid" => {
            let ids = cx.status(if check.name == "uid" { "Uid" } else { "Gid" })?;
            // real, effective, saved, filesystem: the effective one decides access.
            let effective = ids.split_whitespace().nth(1).unwrap_or("?");
            expect(arg, effective)
        }
        "groups" => {
            let expected = parse_groups(arg)?;
            let mut got = cx
                .status("Groups")?
                .split_whitespace()
                .map(|g| g.parse::<u32>().map_err(|_| format!("bad group {g}")))
                .collect::<Result<Vec<_>, _>>()?;
            got.sort_unstable();
            expect(join(&expected), join(&got))
        }
        "umask" => {
            let expected = u32::from_str_radix(arg, 8).expect("validated");
            let got = u32::from_str_radix(&cx.status("Umask")?, 8)
                .map_err(|e| Failure::Error(format!("Umask: {e}")))?;
            expect(format!("{expected:04o}"), format!("{got:04o}"))
        }
        "cwd" => {
            let got = std::env::current_dir().map_err(|e| format!("getcwd: {e}"))?;
            expect(arg, got.display())
        }
        "pid" => expect(arg, std::process::id()),
        "memory-limit" => {
            let (value, version, _) =
                cx.cgroups()?
                    .read_file("memory", "memory.limit_in_bytes", "memory.max")?;
            let got = match (version, value.parse::<u64>()) {
                (Version::V1, Ok(v)) if cgroup::is_unlimited_v1_memory(v) => "max".to_owned(),
                _ => value,
            };
            let expected = match arg {
                "max" => "max".to_owned(),
                q => parse_quantity(q)?.to_string(),
            };
            expect(expected, got)
        }
        "cpu-quota" => {
            let (quota, period) = parse_quota(arg)?;
            let expected = format!(
                "{}/{period}",
                quota.map_or_else(|| "max".to_owned(), |q| q.to_string())
            );
            let cgroups = cx.cgroups()?;
            let (value, version, file) = cgroups.read_file("cpu", "cpu.cfs_quota_us", "cpu.max")?;
            let got = match version {
                Version::V2 => value.replacen(' ', "/", 1),
                Version::V1 => {
                    let period = std::fs::read_to_string(file.with_file_name("cpu.cfs_period_us"))
                        .map_err(|e| format!("cannot read cpu.cfs_period_us: {e}"))?;
                    let quota = if value == "-1" { "max" } else { &value };
                    format!("{quota}/{}", period.trim())
                }
            };
            expect(expected, got)
        }
        "cpu-shares" => {
            let shares: u64 = arg.parse().map_err(|_| "bad shares".to_owned())?;
            let (value, version, _) = cx.cgroups()?.read_file("cpu", "cpu.shares", "cpu.weight")?;
            match version {
                Version::V1 => expect(shares, value),
                Version::V2 => expect(
                    format!("weight {}", cgroup::shares_to_weight(shares)),
                    format!("weight {value}"),
                ),
            }
        }
        "pids-limit" => {
            let (value, ..) = cx.cgroups()?.read_file("pids", "pids.max", "pids.max")?;
            let expected = match arg {
                "max" => "max".to_owned(),
                q => parse_quantity(q)?.to_string(),
            };
            expect(expected, value)
        }
        "cgroup" => {
            let (file, value) = pair(arg);
            let controller = file.split('.').next().unwrap_or(file);
            let (got, ..) = cx.cgroups()?.read_file(controller, file, file)?;
            expect(value, got)
        }
        "mount-ro" | "mount-rw" => {
            let mounts = cx.mounts()?;
            let mount = procfs::mount_at(&mounts, arg)
                .ok_or_else(|| Failure::Error(format!("{arg} is not a mount point")))?;
            let got = if mount.read_only() { "ro" } else { "rw" };
            expect(&check.name[6..], got)
        }
        "mount-type" => {
            let (path, fs_type) = pair(arg);
            let mounts = cx.mounts()?;
            let got = procfs::mount_at(&mounts, path).map_or("not mounted", |m| &m.fs_type);
            expect(fs_type, got)
        }
        "not-mounted" => {
            let mounts = cx.mounts()?;
            match procfs::mount_at(&mounts, arg) {
                None => Ok(()),
                Some(m) => expect("not mounted", format!("{} from {}", m.fs_type, m.source)),
            }
        }
        "shm-size" => {
            let mounts = cx.mounts()?;
            let mount = procfs::mount_at(&mounts, "/dev/shm")
                .ok_or_else(|| Failure::Error("/dev/shm is not a mount point".into()))?;
            let size = mount
                .super_options
                .iter()
                .find_map(|o| o.strip_prefix("size="))
                .ok_or_else(|| Failure::Error(format!("no size= in {:?}", mount.super_options)))?;
            // tmpfs reports kibibytes as `65536k`.
            let got = match size.strip_suffix('k') {
                Some(k) => k.parse::<u64>().map(|k| k * 1024).unwrap_or(0),
                None => size.parse().unwrap_or(0),
            };
            expect(parse_quantity(arg)?, got)
        }
        "readonly-rootfs" => {
            let mounts = cx.mounts()?;
            let root = procfs::mount_at(&mounts, "/")
                .ok_or_else(|| Failure::Error("no mount at /".into()))?;
            expect("ro", if root.read_only() { "ro" } else { "rw" })
        }
        "writable" | "not-writable" => {
            let got = match try_create(Path::new(arg)) {
                Ok(()) => "writable".to_owned(),
                Err(e) => format!("not writable ({e})"),
            };
            if check.name == "writable" {
                expect("writable", got)
            } else if got == "writable" {
                expect("not writable", got)
            } else {
                Ok(())
            }
        }
        "file" | "file-contains" => {
            let (path, text) = pair(arg);
            let got = std::fs::read_to_string(path)
                .map_err(|e| Failure::Error(format!("cannot read {path}: {e}")))?;
            let pass = if check.name == "file" {
                got == text || got.strip_suffix('\n') == Some(text)
            } else {
                got.contains(text)
            };
            if pass {
                Ok(())
            } else {
                expect(format!("{text:?}"), format!("{got:?}"))
            }
        }
        "exists" => std::fs::metadata(arg)
            .map(|_| ())
            .map_err(|e| Failure::Mismatch {
                expected: "exists".into(),
                got: e.to_string(),
            }),
        "absent" => match std::fs::symlink_metadata(arg) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Failure::Error(format!("stat {arg}: {e}"))),
            Ok(m) => expect("absent", if m.is_dir() { "a directory" } else { "a file" }),
        },
        "mode" => {
            use std::os::unix::fs::PermissionsExt;
            let (path, mode) = pair(arg);
            let expected = u32::from_str_radix(mode, 8).expect("validated");
            let got = std::fs::metadata(path)
                .map_err(|e| Failure::Error(format!("stat {path}: {e}")))?
                .permissions()
                .mode()
                & 0o7777;
            expect(format!("{expected:04o}"), format!("{got:04o}"))
        }
        "owner" => {
            use std::os::unix::fs::MetadataExt;
            let (path, ids) = pair(arg);
            let (uid, gid) = parse_ids(ids)?;
            let meta =
                std::fs::metadata(path).map_err(|e| Failure::Error(format!("stat {path}: {e}")))?;
            expect(
                format!("{uid}:{gid}"),
                format!("{}:{}", meta.uid(), meta.gid()),
            )
        }
        "cap" | "cap-absent" | "cap-bounding" | "cap-bounding-absent" => {
            // A non-root process has no effective capabilities unless they are ambient, but
            // the bounding set still shows what the runtime granted.
            let (field, set) = if check.name.starts_with("cap-bounding") {
                ("CapBnd", "bounding")
            } else {
                ("CapEff", "effective")
            };
            let bit = procfs::capability_bit(arg).expect("validated");
            let mask = u64::from_str_radix(&cx.status(field)?, 16)
                .map_err(|e| Failure::Error(format!("{field}: {e}")))?;
            let present = mask & (1 << bit) != 0;
            if present != check.name.ends_with("-absent") {
                Ok(())
            } else {
                let name = procfs::CAPABILITIES[bit as usize];
                let names = procfs::capability_names(mask);
                Err(Failure::Mismatch {
                    expected: format!(
                        "{name} {} the {set} set",
                        if present { "not in" } else { "in" }
                    ),
                    got: if names.is_empty() {
                        "an empty set".into()
                    } else {
                        names.join(",")
                    },
                })
            }
        }
        "no-new-privs" => expect(arg, cx.status("NoNewPrivs")?),
        "seccomp" => expect(arg, cx.status("Seccomp")?),
        "oom-score-adj" => expect(arg, cx.read("/proc/self/oom_score_adj")?.trim()),
        "rlimit" => {
            let (name, value) = pair(arg);
            let row = procfs::limit_row(name).expect("validated");
            let limits = cx.read("/proc/self/limits")?;
            let (soft, hard) = procfs::parse_limit(&limits, row)
                .ok_or_else(|| Failure::Error(format!("no {row:?} in /proc/self/limits")))?;
            expect(value, format!("{soft}/{hard}"))
        }
        "sysctl" => {
            let (name, value) = pair(arg);
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            let got = cx.read(&path)?;
            // Multi-value sysctls separate with tabs; compare word by word.
            let got: Vec<&str> = got.split_whitespace().collect();
            let want: Vec<&str> = value.split_whitespace().collect();
            expect(want.join(" "), got.join(" "))
        }
        "connect" | "no-connect" => {
            let addr: std::net::SocketAddr = arg.parse().expect("validated");
            let got = match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(_) => "connected".to_owned(),
                Err(e) => format!("no connection ({e})"),
            };
            match (check.name, got.as_str()) {
                ("connect", "connected") => Ok(()),
                ("connect", _) => expect("connected", got),
                (_, "connected") => expect("no connection", got),
                _ => Ok(()),
            }
        }
        other => Err(Failure::Error(format!("check {other} is not implemented"))),
    }
}

fn join(ids: &[u32]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn try_create(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".maestro-checker-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// Runs every check, printing one line each; returns how many passed.
pub fn run_all(checks: &[Check], cx: &Context, out: &mut impl std::io::Write) -> usize {
    let mut passed = 0;
    for check in checks {
        let line = match run(check, cx) {
            Ok(()) => {
                passed += 1;
                format!("ok {check}")
            }
            Err(failure) => format!("FAIL {check}: {failure}"),
        };
        let _ = writeln!(out, "{line}");
    }
    passed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn parses_keywords_with_their_arguments() {
        let checks = parse(&args(
            "env FOO=bar readonly-rootfs memory-limit 64Mi cpu-quota 50000/100000 cap-absent NET_RAW",
        ))
        .unwrap();
        let shown: Vec<String> = checks.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "env FOO=bar",
                "readonly-rootfs",
                "memory-limit 64Mi",
                "cpu-quota 50000/100000",
                "cap-absent NET_RAW"
            ]
        );
        for bad in [
            "nope",
            "env",
            "env FOO",
            "uid x",
            "memory-limit 64Q",
            "cap-absent NET_RAWR",
            "cpu-quota 5",
            "mode /x=9",
            "rlimit nofile=5",
            "connect localhost",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("64Mi"), Ok(64 << 20));
        assert_eq!(parse_quantity("100M"), Ok(100_000_000));
        assert_eq!(parse_quantity("5"), Ok(5));
        assert!(parse_quantity("Mi").is_err());
        assert!(parse_quantity("1x").is_err());
    }

    #[test]
    fn runs_against_the_current_process() {
        let cx = Context { root: "/".into() };
        let cwd = std::env::current_dir().unwrap();
        let tmp = std::env::temp_dir();
        let passing = format!(
            "pid {} cwd {} exists / absent /no/such/path writable {} env-unset MAESTRO_CHECKER_NOPE",
            std::process::id(),
            cwd.display(),
            tmp.display()
        );
        let checks = parse(&args(&passing)).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            run_all(&checks, &cx, &mut out),
            checks.len(),
            "{}",
            String::from_utf8_lossy(&out)
        );
        let failing = parse(&args("pid 0 absent /")).unwrap();
        let mut out = Vec::new();
        assert_eq!(run_all(&failing, &cx, &mut out), 0);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(&format!(
                "FAIL pid 0: expected 0, got {}\n",
                std::process::id()
            )),
            "{text}"
        );
        assert!(
            text.contains("FAIL absent /: expected absent, got a directory"),
            "{text}"
        );
    }
}
