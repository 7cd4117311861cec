//! Persistent IP address management for the node's pod CIDR: one file per allocated address,
//! named by the address and holding the pod uid.
//!
//! The directory is the truth, the in-memory map a cache of it. An address is taken by
//! hard-linking a fully written temporary file to the address's name, which fails if the name
//! exists: a record is never half-written, two allocations can never get the same address, and a
//! crash after the link keeps the address reserved (repair releases it if the pod is gone). A
//! restarted agent reads the directory back and gives each pod the address it had. One agent
//! owns the directory at a time.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::cidr::Ipv4Cidr;
use super::error::NetError;

const TMP_PREFIX: &str = ".tmp-";

/// The allocations of one pod CIDR, stored in one directory.
#[derive(Debug)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Ipv4Cidr,
    /// Offsets (from the network address) that are never handed out: network, gateway and
    /// broadcast.
    reserved: Vec<u64>,
    by_ip: BTreeMap<Ipv4Addr, String>,
    /// Offset of the last address handed out: allocation continues after it (next-fit), so a
    /// released address is reused as late as possible and a new pod does not receive traffic
    /// meant for the pod that just left.
    cursor: u64,
}

/// The result of [`Ipam::allocate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub ip: Ipv4Addr,
    /// The pod already had this address (a re-attach, or an agent restart).
    pub existing: bool,
}

impl Ipam {
    /// Opens (creating it if needed) the allocation directory of `cidr`. `gateway` is never
    /// allocated; neither are the network and broadcast addresses. Records of addresses outside
    /// the CIDR are left alone (the CIDR was changed; they are not ours to judge).
    pub fn open(
        dir: impl Into<PathBuf>,
        cidr: Ipv4Cidr,
        gateway: Ipv4Addr,
    ) -> Result<Self, NetError> {
        let dir = dir.into();
        if cidr.prefix() > 30 {
            return Err(NetError::InvalidConfig(format!(
                "pod CIDR {cidr} is too small: it needs a gateway and at least one pod address"
            )));
        }
        fs::create_dir_all(&dir).map_err(|e| NetError::io(&dir, e))?;
        let mut reserved = vec![0, cidr.size() - 1];
        if let Some(offset) = cidr.offset_of(gateway) {
            reserved.push(offset);
        }
        let mut by_ip = BTreeMap::new();
        for entry in fs::read_dir(&dir).map_err(|e| NetError::io(&dir, e))? {
            let entry = entry.map_err(|e| NetError::io(&dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if name.starts_with(TMP_PREFIX) {
                // A temporary record never linked: the allocation that wrote it did not happen.
                fs::remove_file(&path).map_err(|e| NetError::io(&path, e))?;
                continue;
            }
            let Ok(ip) = name.parse::<Ipv4Addr>() else {
                continue;
            };
            if !cidr.contains(ip) {
                tracing::warn!(%ip, %cidr, "IPAM record outside the pod CIDR, ignored");
                continue;
            }
            by_ip.insert(ip, read_record(&path, ip)?);
        }
        let cursor = by_ip
            .keys()
            .filter_map(|ip| cidr.offset_of(*ip))
            .max()
            .unwrap_or(0);
        Ok(Ipam {
            dir,
            cidr,
            reserved,
            by_ip,
            cursor,
        })
    }

    pub fn cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// The address of `pod_uid`, if it has one.
    pub fn lookup(&self, pod_uid: &str) -> Option<Ipv4Addr> {
        self.by_ip
            .iter()
            .find(|(_, uid)| uid.as_str() == pod_uid)
            .map(|(ip, _)| *ip)
    }

    /// Every allocation, by address.
    pub fn allocations(&self) -> impl Iterator<Item = (Ipv4Addr, &str)> {
        self.by_ip.iter().map(|(ip, uid)| (*ip, uid.as_str()))
    }

    /// The pod's existing address, or a new one persisted before it is returned.
    pub fn allocate(&mut self, pod_uid: &str) -> Result<Allocation, NetError> {
        if let Some(ip) = self.lookup(pod_uid) {
            return Ok(Allocation { ip, existing: true });
        }
        let size = self.cidr.size();
        for step in 1..=size {
            let offset = (self.cursor + step) % size;
            if self.reserved.contains(&offset) {
                continue;
            }
            let ip = self.cidr.nth(offset).expect("offset below size");
            if self.by_ip.contains_key(&ip) {
                continue;
            }
            if self.claim(ip, pod_uid)? {
                self.by_ip.insert(ip, pod_uid.to_owned());
                self.cursor = offset;
                return Ok(Allocation {
                    ip,
                    existing: false,
                });
            }
            // The file exists though we did not know it (written behind our back): respect it.
            let path = self.dir.join(ip.to_string());
            let owner = read_record(&path, ip)?;
            self.by_ip.insert(ip, owner);
        }
        Err(NetError::Exhausted {
            cidr: self.cidr.to_string(),
        })
    }

    /// Releases the pod's address; `None` if it had none. Idempotent.
    pub fn release(&mut self, pod_uid: &str) -> Result<Option<Ipv4Addr>, NetError> {
        let Some(ip) = self.lookup(pod_uid) else {
            return Ok(None);
        };
        self.release_ip(ip)?;
        Ok(Some(ip))
    }

    /// Releases an address whoever holds it.
    pub fn release_ip(&mut self, ip: Ipv4Addr) -> Result<(), NetError> {
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetError::io(&path, e)),
        }
        self.by_ip.remove(&ip);
        Ok(())
    }

    /// Writes the record to a temporary file, syncs it and links it to the address's name.
    /// Returns false if the address is already recorded on disk.
    fn claim(&self, ip: Ipv4Addr, pod_uid: &str) -> Result<bool, NetError> {
        let path = self.dir.join(ip.to_string());
        let tmp = self
            .dir
            .join(format!("{TMP_PREFIX}{ip}-{}", std::process::id()));
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(pod_uid.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        };
        write().map_err(|e| NetError::io(&tmp, e))?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&self.dir)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(NetError::io(&path, e)),
        }
    }
}

fn read_record(path: &Path, ip: Ipv4Addr) -> Result<String, NetError> {
    let text = fs::read_to_string(path).map_err(|e| NetError::io(path, e))?;
    let uid = text.trim();
    if !super::naming::valid_pod_uid(uid) {
        return Err(NetError::BadRecord {
            ip,
            path: path.to_owned(),
            message: format!("{uid:?} is not a pod uid"),
        });
    }
    Ok(uid.to_owned())
}

/// Makes the new directory entry durable, so an address handed out survives a power cut.
fn sync_dir(dir: &Path) -> Result<(), NetError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| NetError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn open(dir: &Path, c: &str) -> Ipam {
        let c = cidr(c);
        Ipam::open(dir, c, c.nth(1).unwrap()).unwrap()
    }

    #[test]
    fn allocates_in_order_skipping_network_gateway_and_broadcast() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = open(dir.path(), "10.42.0.0/29");
        let ips: Vec<Ipv4Addr> = (0..5)
            .map(|i| ipam.allocate(&format!("pod-{i}")).unwrap().ip)
            .collect();
        assert_eq!(
            ips,
            [
                "10.42.0.2",
                "10.42.0.3",
                "10.42.0.4",
                "10.42.0.5",
                "10.42.0.6"
            ]
            .map(ip)
        );
        let err = ipam.allocate("pod-5").unwrap_err();
        assert!(matches!(err, NetError::Exhausted { .. }), "{err}");
        // The record is the uid, one file per address.
        assert_eq!(
            fs::read_to_string(dir.path().join("10.42.0.4")).unwrap(),
            "pod-2\n"
        );
    }

    #[test]
    fn same_pod_gets_the_same_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = open(dir.path(), "10.42.0.0/24");
        let a = ipam.allocate("a").unwrap();
        assert!(!a.existing);
        ipam.allocate("b").unwrap();
        let again = ipam.allocate("a").unwrap();
        assert_eq!(
            again,
            Allocation {
                ip: a.ip,
                existing: true
            }
        );
        assert_eq!(ipam.lookup("a"), Some(a.ip));
        assert_eq!(ipam.lookup("c"), None);
    }

    #[test]
    fn persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = {
            let mut ipam = open(dir.path(), "10.42.0.0/24");
            (
                ipam.allocate("a").unwrap().ip,
                ipam.allocate("b").unwrap().ip,
            )
        };
        let mut ipam = open(dir.path(), "10.42.0.0/24");
        assert_eq!(
            ipam.allocate("a").unwrap(),
            Allocation {
                ip: a,
                existing: true
            }
        );
        assert_eq!(ipam.lookup("b"), Some(b));
        // New pods continue after the highest address in use, never on a taken one.
        let c = ipam.allocate("c").unwrap().ip;
        assert_eq!(c, ip("10.42.0.4"));
        let all: Vec<_> = ipam.allocations().collect();
        assert_eq!(all, vec![(a, "a"), (b, "b"), (c, "c")]);
    }

    #[test]
    fn release_frees_the_address_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = open(dir.path(), "10.42.0.0/30");
        let a = ipam.allocate("a").unwrap().ip;
        assert_eq!(a, ip("10.42.0.2"));
        assert!(matches!(
            ipam.allocate("b"),
            Err(NetError::Exhausted { .. })
        ));
        assert_eq!(ipam.release("a").unwrap(), Some(a));
        assert_eq!(ipam.release("a").unwrap(), None);
        assert!(!dir.path().join("10.42.0.2").exists());
        assert_eq!(ipam.allocate("b").unwrap().ip, a);
        // A released address does not come back after a reopen.
        drop(ipam);
        let ipam = open(dir.path(), "10.42.0.0/30");
        assert_eq!(ipam.lookup("a"), None);
        assert_eq!(ipam.lookup("b"), Some(a));
    }

    #[test]
    fn next_fit_delays_reuse_of_released_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = open(dir.path(), "10.42.0.0/24");
        let a = ipam.allocate("a").unwrap().ip;
        ipam.release("a").unwrap();
        let b = ipam.allocate("b").unwrap().ip;
        assert_ne!(a, b);
        assert_eq!(b, ip("10.42.0.3"));
    }

    #[test]
    fn wraps_around_to_free_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = open(dir.path(), "10.42.0.0/29");
        for i in 0..5 {
            ipam.allocate(&format!("p{i}")).unwrap();
        }
        ipam.release("p1").unwrap();
        assert_eq!(ipam.allocate("q").unwrap().ip, ip("10.42.0.3"));
    }

    #[test]
    fn respects_records_it_did_not_know_about() {
        // Another writer (or a crash between link and bookkeeping) left a record: it must not
        // be handed out twice.
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = open(dir.path(), "10.42.0.0/24");
        fs::write(dir.path().join("10.42.0.2"), "other\n").unwrap();
        assert_eq!(ipam.allocate("a").unwrap().ip, ip("10.42.0.3"));
        assert_eq!(ipam.lookup("other"), Some(ip("10.42.0.2")));
    }

    #[test]
    fn open_cleans_temporary_files_and_skips_foreign_entries() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".tmp-10.42.0.2-1"), "a\n").unwrap();
        fs::write(dir.path().join("README"), "not a record").unwrap();
        fs::write(dir.path().join("10.99.0.2"), "old\n").unwrap();
        let mut ipam = open(dir.path(), "10.42.0.0/24");
        assert!(!dir.path().join(".tmp-10.42.0.2-1").exists());
        assert_eq!(ipam.allocations().count(), 0);
        assert_eq!(ipam.allocate("a").unwrap().ip, ip("10.42.0.2"));
        assert!(dir.path().join("10.99.0.2").exists());
    }

    #[test]
    fn corrupt_record_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("10.42.0.7"), "\n").unwrap();
        let c = cidr("10.42.0.0/24");
        let err = Ipam::open(dir.path(), c, c.nth(1).unwrap()).unwrap_err();
        assert!(matches!(err, NetError::BadRecord { .. }), "{err}");
    }

    #[test]
    fn too_small_cidr_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let c = cidr("10.42.0.0/31");
        assert!(Ipam::open(dir.path(), c, c.nth(1).unwrap()).is_err());
    }
}
