//! Addresses for Services of type LoadBalancer without a cloud: taken from the pool the server
//! was given (`--load-balancer-pool`) and written to `status.loadBalancer.ingress`; one node
//! announces each address on its network (the agent, `services.rs`), as MetalLB's layer-2 mode
//! and k3s's servicelb do. `spec.loadBalancerIP` asks for a particular address of the pool;
//! Services with a `loadBalancerClass` belong to another implementation and are left alone.
//! A Service that stops being a LoadBalancer loses its address.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::Resource;
use maestro_store::{CacheEvent, CacheEventKind};
use serde_json::{Value, json};

use crate::objects::resource;
use crate::queue::{self, Reconciler};

/// An inclusive range of IPv4 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl std::str::FromStr for Pool {
    type Err = String;

    /// `a.b.c.d/len` (without the network and broadcast addresses when the prefix is below
    /// 31) or `a.b.c.d-e.f.g.h`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| format!("{text:?}: {why}");
        let pool = if let Some((ip, prefix)) = text.split_once('/') {
            let ip: Ipv4Addr = ip.parse().map_err(|_| bad("not an IPv4 address"))?;
            let prefix: u32 = prefix.parse().map_err(|_| bad("not a prefix length"))?;
            if !(8..=32).contains(&prefix) {
                return Err(bad("the prefix must be between /8 and /32"));
            }
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            let network = u32::from(ip) & mask;
            let broadcast = network | !mask;
            let (first, last) = if prefix < 31 {
                (network + 1, broadcast - 1)
            } else {
                (network, broadcast)
            };
            Pool {
                first: first.into(),
                last: last.into(),
            }
        } else if let Some((first, last)) = text.split_once('-') {
            Pool {
                first: first
                    .trim()
                    .parse()
                    .map_err(|_| bad("not an IPv4 address"))?,
                last: last
                    .trim()
                    .parse()
                    .map_err(|_| bad("not an IPv4 address"))?,
            }
        } else {
            return Err(bad("expected a.b.c.d/len or a.b.c.d-e.f.g.h"));
        };
        if pool.first > pool.last {
            return Err(bad("the range is empty"));
        }
        Ok(pool)
    }
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl Pool {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }

    fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.first)..=u32::from(self.last)).map(Ipv4Addr::from)
    }
}

/// Whether this pool's implementation serves the Service.
fn is_ours(service: &Value) -> bool {
    service["spec"]["type"] == "LoadBalancer"
        && service["spec"]
            .get("loadBalancerClass")
            .is_none_or(Value::is_null)
}

/// The pool addresses a Service's status holds.
fn held(service: &Value, pool: &Pool) -> Vec<Ipv4Addr> {
    service["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str()?.parse().ok())
        .filter(|ip| pool.contains(*ip))
        .collect()
}

/// The address a Service should hold: the one it holds, the one it asks for, or the first free
/// one. `taken` holds the other Services' addresses. `None`: nothing left (or the requested one
/// is outside the pool or taken).
pub fn choose(service: &Value, pool: &Pool, taken: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let requested = service["spec"]["loadBalancerIP"]
        .as_str()
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<Ipv4Addr>().ok());
    let current = held(service, pool).into_iter().next();
    match (requested, current) {
        (Some(ip), _) => (pool.contains(ip) && !taken.contains(&ip)).then_some(ip),
        (None, Some(ip)) if !taken.contains(&ip) => Some(ip),
        _ => pool.addresses().find(|ip| !taken.contains(ip)),
    }
}

struct Balancers {
    services: Arc<Resource>,
    pool: Pool,
}

impl Balancers {
    /// LoadBalancer Services waiting for an address (a freed one may be theirs now).
    fn pending(&self, registry: &Registry) -> Vec<String> {
        let (items, _) = registry.cache().list(&self.services.info.storage_prefix());
        items
            .iter()
            .filter(|s| {
                let value = s.value();
                is_ours(&value) && held(&value, &self.pool).is_empty()
            })
            .map(|s| s.key.clone())
            .collect()
    }
}

impl Reconciler for Balancers {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        if !event.key.starts_with(&self.services.info.storage_prefix()) {
            return vec![];
        }
        if event.kind == CacheEventKind::Deleted {
            // Its address is free again: resync gives it to a waiting Service.
            return vec![];
        }
        vec![event.key.clone()]
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        self.pending(registry)
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some((stored, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            let service = stored.value();
            let namespace = stored.namespace.clone().unwrap_or_default();
            let wanted = if is_ours(&service) {
                let (items, _) = registry.cache().list(&self.services.info.storage_prefix());
                let taken: Vec<Ipv4Addr> = items
                    .iter()
                    .filter(|s| s.key != key)
                    .flat_map(|s| held(&s.value(), &self.pool))
                    .collect();
                let chosen = choose(&service, &self.pool, &taken);
                if chosen.is_none() {
                    tracing::warn!(service = %key, pool = %self.pool, "no address left for a LoadBalancer Service");
                }
                chosen
            } else {
                None
            };
            let current = held(&service, &self.pool);
            if current.first() == wanted.as_ref() && current.len() <= 1 {
                return Ok(());
            }
            let ingress = match wanted {
                Some(ip) => json!([{"ip": ip.to_string(), "ipMode": "VIP"}]),
                None => json!([]),
            };
            crate::writes::edit(
                registry,
                &self.services,
                Some(&namespace),
                &stored.name,
                Some("status"),
                |next| next["status"]["loadBalancer"] = json!({"ingress": ingress.clone()}),
            )
            .await
        })
    }
}

/// Run the LoadBalancer address controller for `pool`.
pub async fn run(registry: Arc<Registry>, pool: Pool) {
    let controller = Balancers {
        services: resource("services", ""),
        pool,
    };
    queue::run(
        registry,
        "/registry/services/",
        controller,
        Duration::from_secs(10),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_and_choices() {
        let pool: Pool = "192.168.5.0/29".parse().unwrap();
        assert_eq!(pool.to_string(), "192.168.5.1-192.168.5.6");
        let range: Pool = "10.0.0.10-10.0.0.11".parse().unwrap();
        assert!(range.contains("10.0.0.11".parse().unwrap()));
        assert!("10.0.0.11-10.0.0.10".parse::<Pool>().is_err());
        assert!("nope".parse::<Pool>().is_err());

        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let fresh = json!({"spec": {"type": "LoadBalancer"}});
        assert_eq!(choose(&fresh, &range, &[]), Some(ip("10.0.0.10")));
        assert_eq!(
            choose(&fresh, &range, &[ip("10.0.0.10")]),
            Some(ip("10.0.0.11"))
        );
        assert_eq!(
            choose(&fresh, &range, &[ip("10.0.0.10"), ip("10.0.0.11")]),
            None,
            "exhausted"
        );
        let asking = json!({"spec": {"type": "LoadBalancer", "loadBalancerIP": "10.0.0.11"}});
        assert_eq!(choose(&asking, &range, &[]), Some(ip("10.0.0.11")));
        assert_eq!(choose(&asking, &range, &[ip("10.0.0.11")]), None);
        let holding = json!({"spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.11"}]}}});
        assert_eq!(choose(&holding, &range, &[]), Some(ip("10.0.0.11")), "kept");
        assert!(!is_ours(
            &json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "x"}})
        ));
    }
}
