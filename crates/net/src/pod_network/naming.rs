//! Names and marks derived from a pod: the host-side veth name, the interface alias that marks
//! a veth as ours, and MAC addresses derived from IPs. All deterministic, so that an agent
//! restarted with no memory finds what it made before.

use std::fmt;
use std::net::Ipv4Addr;

/// Host veth names start with this so an operator can tell them apart in `ip link`.
pub const HOST_VETH_PREFIX: &str = "mae";

/// The interface name of the pod's side of the veth pair, inside its namespace.
pub const POD_IFNAME: &str = "eth0";

/// Linux interface names hold at most 15 bytes (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// The host-side veth name of a pod: the prefix and 12 hex digits (48 bits) of a hash of its
/// uid. A uid is 36 characters and names are limited to 15, so it cannot be used directly; the
/// hash keeps names stable across agent restarts without any stored mapping. A collision (about
/// one in 10^7 with a thousand pods on a node) is detected through the alias, never acted on.
pub fn host_veth_name(pod_uid: &str) -> String {
    let hash = fnv1a64(pod_uid.as_bytes());
    format!("{HOST_VETH_PREFIX}{:012x}", hash >> 16)
}

/// Whether `name` has the form [`host_veth_name`] produces.
pub fn looks_like_host_veth(name: &str) -> bool {
    name.len() == MAX_IFNAME_LEN
        && name
            .strip_prefix(HOST_VETH_PREFIX)
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The alias (`ip link set X alias ...`, IFLA_IFALIAS) put on each host veth: it names the
/// bridge and the pod, so that repair after a restart knows whose veth it is and never touches
/// an interface some other program (or another maestro network on the same node) made.
pub fn veth_alias(bridge: &str, pod_uid: &str) -> String {
    format!("{}{pod_uid}", alias_prefix(bridge))
}

/// The pod uid in an alias written by [`veth_alias`] for this bridge, if it is one.
pub fn alias_pod_uid<'a>(bridge: &str, alias: &'a str) -> Option<&'a str> {
    alias
        .strip_prefix(&alias_prefix(bridge))
        .filter(|uid| !uid.is_empty())
}

fn alias_prefix(bridge: &str) -> String {
    format!("maestro:{bridge}:")
}

/// Kubernetes pod uids are UUIDs; anything else that is safe as a file name and in an alias is
/// accepted too (test doubles, static pods with hashed uids).
pub fn valid_pod_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 128
        && uid != "."
        && uid != ".."
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Interface names the bridge may have: what the kernel accepts, minus characters that would
/// make our aliases or `ip` command lines ambiguous.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `0a:58:` followed by the four bytes of the IP (the scheme of OVN-Kubernetes): locally
    /// administered, unicast, unique as long as the IPs are, and stable for an IP, so a pod that
    /// gets a released IP does not leave neighbours with a stale ARP entry for it.
    pub fn from_ip(ip: Ipv4Addr) -> Self {
        let [a, b, c, d] = ip.octets();
        MacAddr([0x0a, 0x58, a, b, c, d])
    }

    /// Parses `aa:bb:cc:dd:ee:ff` (the form `ip` prints).
    pub fn parse(s: &str) -> Option<Self> {
        let mut bytes = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut bytes {
            let part = parts.next()?;
            if part.is_empty() || part.len() > 2 {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(MacAddr(bytes))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// FNV-1a: tiny, dependency-free and stable across releases (unlike std's `DefaultHasher`,
/// whose output may change between Rust versions and would rename every veth).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Whether a network interface of this name exists in the caller's network namespace.
/// (`/sys/class/net` would show the namespace sysfs was mounted in, which differs for an agent
/// started with `nsenter --net`.)
pub fn link_exists(name: &str) -> bool {
    std::fs::read_to_string("/proc/self/net/dev").is_ok_and(|dev| {
        dev.lines()
            .filter_map(|l| l.split_once(':'))
            .any(|(ifname, _)| ifname.trim() == name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn veth_names_are_short_stable_and_distinct() {
        let uid = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
        let name = host_veth_name(uid);
        assert_eq!(name.len(), MAX_IFNAME_LEN);
        assert!(name.starts_with(HOST_VETH_PREFIX));
        assert!(valid_ifname(&name));
        // Pinned: changing the scheme would orphan the veths of running pods on upgrade.
        assert_eq!(name, host_veth_name(uid));
        assert_eq!(host_veth_name("a"), "maeaf63dc4c8601");
        assert!(looks_like_host_veth(&name));
        assert!(!looks_like_host_veth("maestro0"));

        let names: HashSet<String> = (0..10_000)
            .map(|i| host_veth_name(&format!("pod-{i}")))
            .collect();
        assert_eq!(names.len(), 10_000);
    }

    #[test]
    fn alias_round_trip() {
        let alias = veth_alias("maestro0", "uid-1");
        assert_eq!(alias, "maestro:maestro0:uid-1");
        assert_eq!(alias_pod_uid("maestro0", &alias), Some("uid-1"));
        assert_eq!(alias_pod_uid("maestro1", &alias), None);
        assert_eq!(alias_pod_uid("maestro0", "maestro:maestro0:"), None);
        assert_eq!(alias_pod_uid("maestro0", "something else"), None);
    }

    #[test]
    fn uid_and_ifname_validation() {
        for (uid, ok) in [
            ("6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", true),
            ("pod_1.a", true),
            ("", false),
            (".", false),
            ("..", false),
            ("a/b", false),
            ("a b", false),
            ("a:b", false),
        ] {
            assert_eq!(valid_pod_uid(uid), ok, "{uid:?}");
        }
        assert!(!valid_pod_uid(&"a".repeat(129)));
        assert!(valid_ifname("maestro0"));
        assert!(!valid_ifname("a-name-too-long-x"));
        assert!(!valid_ifname("br:0"));
        assert!(!valid_ifname(""));
    }

    #[test]
    fn mac_from_ip() {
        let mac = MacAddr::from_ip(Ipv4Addr::new(10, 42, 0, 5));
        assert_eq!(mac.to_string(), "0a:58:0a:2a:00:05");
        assert_eq!(MacAddr::parse("0a:58:0a:2a:00:05"), Some(mac));
        assert_eq!(MacAddr::parse("0a:58:0a:2a:00"), None);
        assert_eq!(MacAddr::parse("0a:58:0a:2a:00:05:01"), None);
        assert_eq!(MacAddr::parse("0a:58:0a:2a:00:zz"), None);
        // Locally administered, unicast.
        assert_eq!(mac.0[0] & 0b11, 0b10);
    }
}
