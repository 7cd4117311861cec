//! ClusterIP allocation for Services from the service CIDR. The first address belongs to the
//! `default/kubernetes` Service. Each allocated address has a record in the store
//! (`/maestro/serviceips/<ip>`, outside the objects the watch cache serves), created atomically
//! before the Service is written: two API servers on one etcd can never hand out the same
//! address. Records are released when the Service goes, and records without a Service (a crash
//! between the two writes) are repaired at start-up. (A server starting while another is between
//! the two writes can drop that fresh record; the next repair restores it from the Service.)

use std::net::Ipv4Addr;

use maestro_api::{ApiError, Cause};
use serde_json::{Value, json};

/// An IPv4 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let prefix: u8 = prefix.parse().map_err(|e| format!("{s:?}: {e}"))?;
        if !(8..=30).contains(&prefix) {
            return Err(format!("{s:?}: the prefix must be between /8 and /30"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr {
            network: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == u32::from(self.network)
    }

    /// The n-th address of the block.
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + n)
    }

    /// The address of the `kubernetes` Service.
    pub fn first_host(&self) -> Ipv4Addr {
        self.nth(1)
    }
}

/// Prefix of the allocation records in the store.
pub const RECORD_PREFIX: &str = "/maestro/serviceips/";

/// The store key recording that `ip` is allocated.
pub fn record_key(ip: &str) -> String {
    format!("{RECORD_PREFIX}{ip}")
}

/// Whether a Service spec asks for a virtual IP at all.
pub fn wants_cluster_ip(spec: &Value) -> bool {
    spec.get("type").and_then(Value::as_str) != Some("ExternalName")
        && spec.get("clusterIP").and_then(Value::as_str) != Some("None")
}

/// Pick an address for `spec`, or check the one it asks for, and write it into the spec.
/// `used` holds the addresses of every other Service.
pub fn assign(
    cidr: &Cidr,
    spec: &mut Value,
    used: &[Ipv4Addr],
    seed: u32,
) -> Result<(), Vec<Cause>> {
    if !wants_cluster_ip(spec) {
        return Ok(());
    }
    let requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| spec.pointer("/clusterIPs/0").and_then(Value::as_str));
    let ip = match requested {
        Some(text) => {
            let invalid = |why: &str| {
                vec![Cause::invalid(
                    "spec.clusterIPs",
                    &json!([text]),
                    format!("failed to allocate IP {text}: {why}"),
                )]
            };
            let ip: Ipv4Addr = text
                .parse()
                .map_err(|_| invalid("not a valid IPv4 address"))?;
            if !cidr.contains(ip) {
                return Err(invalid(&format!(
                    "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {cidr}"
                )));
            }
            if used.contains(&ip) {
                return Err(invalid("provided IP is already allocated"));
            }
            ip
        }
        None => {
            // Network and broadcast addresses are never handed out; the first host is kept for
            // the kubernetes Service, which asks for it by address.
            let usable = cidr.size() - 2;
            let start = seed % usable;
            (0..usable)
                .map(|i| cidr.nth(1 + (start + i) % usable))
                .find(|ip| !used.contains(ip) && *ip != cidr.first_host())
                .ok_or_else(|| {
                    vec![Cause::new(
                        "FieldValueInvalid",
                        "spec.clusterIPs",
                        format!("Internal error occurred: failed to allocate a serviceIP: range is full ({cidr})"),
                    )]
                })?
        }
    };
    if let Some(map) = spec.as_object_mut() {
        map.insert("clusterIP".into(), json!(ip.to_string()));
        map.insert("clusterIPs".into(), json!([ip.to_string()]));
    }
    Ok(())
}

/// The addresses a Service holds (`clusterIPs`, or `clusterIP`).
pub fn addresses_of(service: &Value) -> Vec<String> {
    let from_list: Vec<String> = service
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let list = if from_list.is_empty() {
        service
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .map(|ip| vec![ip.to_string()])
            .unwrap_or_default()
    } else {
        from_list
    };
    list.into_iter()
        .filter(|ip| ip.parse::<Ipv4Addr>().is_ok())
        .collect()
}

/// Addresses held by the given Services.
pub fn used_addresses<'a>(services: impl Iterator<Item = &'a Value>) -> Vec<Ipv4Addr> {
    services
        .filter_map(|svc| svc.pointer("/spec/clusterIP").and_then(Value::as_str))
        .filter_map(|ip| ip.parse().ok())
        .collect()
}

/// The error when a Service cannot get an address.
pub fn allocation_error(name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("", "Service", name, causes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_free_addresses_and_checks_requests() {
        let cidr: Cidr = "10.43.0.0/16".parse().unwrap();
        assert_eq!(cidr.first_host(), Ipv4Addr::new(10, 43, 0, 1));
        let mut spec = json!({"ports": [{"port": 80}]});
        assign(&cidr, &mut spec, &[], 0).unwrap();
        let ip: Ipv4Addr = spec["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(cidr.contains(ip) && ip != cidr.first_host());
        assert_eq!(spec["clusterIPs"][0], spec["clusterIP"]);
        let mut taken = json!({"clusterIP": ip.to_string()});
        let err = assign(&cidr, &mut taken, &[ip], 0).unwrap_err();
        assert!(err[0].message.contains("already allocated"));
        let mut outside = json!({"clusterIP": "192.168.0.1"});
        assert!(assign(&cidr, &mut outside, &[], 0).is_err());
        let mut headless = json!({"clusterIP": "None"});
        assign(&cidr, &mut headless, &[], 0).unwrap();
        assert_eq!(headless["clusterIP"], "None");
        let small: Cidr = "10.0.0.0/30".parse().unwrap();
        let mut full = json!({});
        assert!(
            assign(&small, &mut full, &[small.nth(2)], 0).is_err(),
            "only .1 (reserved) and .2 are hosts"
        );
    }
}
