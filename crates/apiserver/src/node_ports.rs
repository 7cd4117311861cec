//! NodePort allocation for Services of type NodePort and LoadBalancer, from 30000-32767. Like
//! ClusterIPs ([`crate::service_ips`]), each allocated port has a record in the store
//! (`/maestro/nodeports/<protocol>/<port>`), created atomically before the Service is written,
//! so that two API servers can never hand out the same port; records are released when the
//! Service gives the port up or goes, and repaired at start-up.

use std::collections::HashSet;

use maestro_api::Cause;
use serde_json::{Value, json};

/// The node port range (Kubernetes' default `--service-node-port-range`).
pub const RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

/// Prefix of the allocation records in the store.
pub const RECORD_PREFIX: &str = "/maestro/nodeports/";

/// A node port: protocol (as in the API, `TCP`) and number.
pub type NodePort = (String, u16);

/// The store key recording that `port` is allocated.
pub fn record_key((protocol, port): &NodePort) -> String {
    format!("{RECORD_PREFIX}{}/{port}", protocol.to_ascii_lowercase())
}

/// The node port a record key stands for.
pub fn from_record_key(key: &str) -> Option<NodePort> {
    let (protocol, port) = key.strip_prefix(RECORD_PREFIX)?.split_once('/')?;
    Some((protocol.to_ascii_uppercase(), port.parse().ok()?))
}

/// Whether a Service spec gets node ports.
pub fn wants_node_ports(spec: &Value) -> bool {
    match spec.get("type").and_then(Value::as_str) {
        Some("NodePort") => true,
        Some("LoadBalancer") => spec.get("allocateLoadBalancerNodePorts") != Some(&json!(false)),
        _ => false,
    }
}

fn protocol_of(port: &Value) -> String {
    port.get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP")
        .to_string()
}

fn node_port_of(port: &Value) -> Option<u16> {
    port.get("nodePort")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
}

/// The node ports a Service holds.
pub fn held(service: &Value) -> Vec<NodePort> {
    service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| Some((protocol_of(p), node_port_of(p)?)))
        .collect()
}

/// Node ports held by the given Services.
pub fn used<'a>(services: impl Iterator<Item = &'a Value>) -> HashSet<NodePort> {
    services.flat_map(held).collect()
}

/// On a replace that does not repeat them, keep the node ports the Service had for the same
/// port and protocol (as Kubernetes does: `kubectl apply` of a manifest without nodePort must
/// not move the port).
pub fn keep_allocated(new: &mut Value, old: &Value) {
    let Some(spec) = new.get("spec") else { return };
    if !wants_node_ports(spec) {
        return;
    }
    let old_ports: Vec<Value> = old
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
        return;
    };
    for port in ports {
        if node_port_of(port).is_some() {
            continue;
        }
        let same = old_ports
            .iter()
            .find(|o| o.get("port") == port.get("port") && protocol_of(o) == protocol_of(port));
        if let Some(kept) = same.and_then(node_port_of)
            && let Some(map) = port.as_object_mut()
        {
            map.insert("nodePort".into(), json!(kept));
        }
    }
}

/// When an update turns a Service into a type without node ports, clear the fields that only
/// such types may carry — where the client left them as they were (Kubernetes' service
/// strategy does the same, so that `kubectl patch -p '{"spec":{"type":"ClusterIP"}}'` works).
pub fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let (Some(new_spec), Some(old_spec)) = (new.get("spec"), old.get("spec")) else {
        return;
    };
    let new_type = new_spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if wants_node_ports(new_spec) || !wants_node_ports(old_spec) {
        return;
    }
    let old_spec = old_spec.clone();
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let unchanged =
        |spec: &serde_json::Map<String, Value>, field: &str| spec.get(field) == old_spec.get(field);
    let externally_reachable = matches!(new_type.as_str(), "NodePort" | "LoadBalancer");
    if !externally_reachable {
        for field in ["externalTrafficPolicy", "healthCheckNodePort"] {
            if unchanged(spec, field) {
                spec.remove(field);
            }
        }
    }
    if new_type != "LoadBalancer" && unchanged(spec, "allocateLoadBalancerNodePorts") {
        spec.remove("allocateLoadBalancerNodePorts");
    }
    let old_ports = old_spec.get("ports").and_then(Value::as_array).cloned();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            let was = old_ports.iter().flatten().any(|o| {
                o.get("port") == port.get("port")
                    && protocol_of(o) == protocol_of(port)
                    && node_port_of(o).is_some()
                    && node_port_of(o) == node_port_of(port)
            });
            if was && let Some(map) = port.as_object_mut() {
                map.remove("nodePort");
            }
        }
    }
}

/// Give every port of `spec` that lacks one a free node port. `used` holds every other
/// Service's ports and those found taken meanwhile.
pub fn assign(spec: &mut Value, used: &HashSet<NodePort>, seed: u32) -> Result<(), Vec<Cause>> {
    if !wants_node_ports(spec) {
        return Ok(());
    }
    let size = u32::from(RANGE.end() - RANGE.start()) + 1;
    let mut taken: HashSet<NodePort> = used.clone();
    let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for port in ports.iter() {
        if let Some(number) = node_port_of(port) {
            taken.insert((protocol_of(port), number));
        }
    }
    for (i, port) in ports.iter_mut().enumerate() {
        if node_port_of(port).is_some() {
            continue;
        }
        let protocol = protocol_of(port);
        let start = seed.wrapping_add(i as u32) % size;
        let free = (0..size)
            .map(|k| RANGE.start() + ((start + k) % size) as u16)
            .find(|candidate| !taken.contains(&(protocol.clone(), *candidate)))
            .ok_or_else(|| {
                vec![Cause::invalid(
                    format!("spec.ports[{i}].nodePort"),
                    &json!(0),
                    format!(
                        "failed to allocate a nodePort: range is full ({}-{})",
                        RANGE.start(),
                        RANGE.end()
                    ),
                )]
            })?;
        taken.insert((protocol, free));
        if let Some(map) = port.as_object_mut() {
            map.insert("nodePort".into(), json!(free));
        }
    }
    Ok(())
}

/// The error for a node port someone already holds.
pub fn taken_cause(spec: &Value, (protocol, number): &NodePort) -> Cause {
    let index = spec
        .get("ports")
        .and_then(Value::as_array)
        .and_then(|ports| {
            ports
                .iter()
                .position(|p| node_port_of(p) == Some(*number) && protocol_of(p) == *protocol)
        })
        .unwrap_or(0);
    Cause::invalid(
        format!("spec.ports[{index}].nodePort"),
        &json!(number),
        "provided port is already allocated",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_keeps_and_skips() {
        let mut spec = json!({"type": "NodePort", "ports": [
            {"port": 80}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]});
        let used: HashSet<NodePort> = [("TCP".to_string(), 30000)].into();
        assign(&mut spec, &used, 0).unwrap();
        assert_eq!(spec["ports"][0]["nodePort"], 30001, "30000 is used");
        assert_eq!(spec["ports"][1]["nodePort"], 30053, "asked for");
        let service = json!({"spec": spec});
        assert_eq!(
            held(&service),
            [("TCP".to_string(), 30001), ("UDP".to_string(), 30053)]
        );

        let mut cluster_ip = json!({"type": "ClusterIP", "ports": [{"port": 80}]});
        assign(&mut cluster_ip, &HashSet::new(), 0).unwrap();
        assert!(cluster_ip["ports"][0].get("nodePort").is_none());
        let mut no_ports = json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80}]});
        assign(&mut no_ports, &HashSet::new(), 0).unwrap();
        assert!(no_ports["ports"][0].get("nodePort").is_none());

        // A replace without nodePort keeps the allocated one.
        let mut replaced = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        keep_allocated(&mut replaced, &service);
        assert_eq!(replaced["spec"]["ports"][0]["nodePort"], 30001);

        // Back to ClusterIP: the ports and the external policy go.
        let mut back = json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "nodePort": 30001}]}});
        let mut before = service.clone();
        before["spec"]["externalTrafficPolicy"] = json!("Cluster");
        drop_type_dependent_fields(&mut back, &before);
        assert_eq!(
            back,
            json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}})
        );

        let key = record_key(&("UDP".into(), 30053));
        assert_eq!(key, "/maestro/nodeports/udp/30053");
        assert_eq!(from_record_key(&key), Some(("UDP".into(), 30053)));
    }

    #[test]
    fn a_full_range_is_an_error() {
        let used: HashSet<NodePort> = RANGE.map(|p| ("TCP".to_string(), p)).collect();
        let mut spec = json!({"type": "NodePort", "ports": [{"port": 80}]});
        let err = assign(&mut spec, &used, 7).unwrap_err();
        assert!(err[0].message.contains("range is full"));
        let mut udp = json!({"type": "NodePort", "ports": [{"port": 80, "protocol": "UDP"}]});
        assign(&mut udp, &used, 7).unwrap();
    }
}
