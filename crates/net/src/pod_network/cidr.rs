//! IPv4 prefixes: the pod CIDR, its gateway and host range, and overlap checks against the
//! node's own addresses and routes.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network written `a.b.c.d/len` with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// A network from its address and prefix length; host bits must be zero so that a typo
    /// such as `10.42.0.1/24` is caught instead of silently meaning `10.42.0.0/24`.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        if prefix > 32 {
            return Err(format!("prefix length {prefix} is larger than 32"));
        }
        let cidr = Ipv4Cidr { network, prefix };
        if u32::from(network) & !cidr.mask() != 0 {
            return Err(format!(
                "{network}/{prefix} has host bits set (the network is {}/{prefix})",
                Ipv4Addr::from(u32::from(network) & cidr.mask())
            ));
        }
        Ok(cidr)
    }

    /// The network that contains `addr` with this prefix length (host bits cleared).
    pub fn containing(addr: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        if prefix > 32 {
            return Err(format!("prefix length {prefix} is larger than 32"));
        }
        let mask = mask(prefix);
        Ok(Ipv4Cidr {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        mask(self.prefix)
    }

    /// The last address (the broadcast address for prefixes shorter than /31).
    pub fn last(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }

    /// The number of addresses in the network, including network and broadcast.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The address at `offset` from the network address, if inside the network.
    pub fn nth(&self, offset: u64) -> Option<Ipv4Addr> {
        (offset < self.size()).then(|| Ipv4Addr::from(u32::from(self.network) + offset as u32))
    }

    /// The offset of `addr` from the network address, if inside the network.
    pub fn offset_of(&self, addr: Ipv4Addr) -> Option<u64> {
        self.contains(addr)
            .then(|| u64::from(u32::from(addr) - u32::from(self.network)))
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.network)
    }

    /// Whether the two networks share at least one address (one contains the other).
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (expected a.b.c.d/len)"))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{s:?}: {addr:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| format!("{s:?}: {prefix:?} is not a prefix length"))?;
        Ipv4Cidr::new(addr, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        let c = cidr("10.42.0.0/24");
        assert_eq!(c.network(), Ipv4Addr::new(10, 42, 0, 0));
        assert_eq!(c.prefix(), 24);
        assert_eq!(c.to_string(), "10.42.0.0/24");
        assert_eq!(c.last(), Ipv4Addr::new(10, 42, 0, 255));
        assert_eq!(c.size(), 256);
        assert_eq!(cidr("0.0.0.0/0").size(), 1 << 32);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "10.42.0.0",
            "10.42.0.1/24",
            "10.42.0.0/33",
            "x/24",
            "10.42.0.0/x",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_and_membership() {
        let c = cidr("10.42.0.0/24");
        assert_eq!(c.nth(1), Some(Ipv4Addr::new(10, 42, 0, 1)));
        assert_eq!(c.nth(256), None);
        assert_eq!(c.offset_of(Ipv4Addr::new(10, 42, 0, 9)), Some(9));
        assert_eq!(c.offset_of(Ipv4Addr::new(10, 42, 1, 9)), None);
        assert!(!c.contains(Ipv4Addr::new(10, 43, 0, 1)));
    }

    #[test]
    fn overlap() {
        let c = cidr("10.42.0.0/24");
        assert!(c.overlaps(&cidr("10.0.0.0/8")));
        assert!(c.overlaps(&cidr("10.42.0.128/25")));
        assert!(!c.overlaps(&cidr("10.42.1.0/24")));
        assert_eq!(
            Ipv4Cidr::containing(Ipv4Addr::new(192, 0, 2, 7), 24).unwrap(),
            cidr("192.0.2.0/24")
        );
    }
}
