//! Core kinds other than pods: Services (ports, types, cluster IPs, traffic policies),
//! ConfigMaps and Secrets (keys, sizes, immutability), Namespaces, PersistentVolumes and claims,
//! Endpoints, ResourceQuotas and LimitRanges.

use std::collections::HashSet;
use std::net::IpAddr;

use base64::Engine;
use serde_json::{Map, Value};

use super::field::{
    Bad, Path, duplicate, forbidden, go_quote, int_at, invalid, list_at, not_supported, present,
    required, str_at, too_long,
};
use super::meta::{
    normalized, same, struct_diff, validate_kube_finalizer_name, validate_label_selector,
    validate_labels,
};
use super::names::{
    is_config_map_key, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_port_num,
};
use super::pod::{validate_port_num_or_name, validate_protocol};
use super::quantity::{QUANTITY_ERROR, Quantity, from_json};
use crate::status::Cause;

/// `core.MaxSecretSize`: ConfigMaps and Secrets hold at most 1 MiB.
const MAX_DATA_BYTES: usize = 1024 * 1024;

/// The kubelet port, which a LoadBalancer may not expose.
const KUBELET_PORT: i64 = 10250;

/// The default NodePort range of the API server.
const NODE_PORT_RANGE: (i64, i64) = (30000, 32767);

fn spec(obj: &Value) -> &Value {
    obj.get("spec").unwrap_or(&Value::Null)
}

/// A Service's cluster IPs after the strategy's normalization: `clusterIPs` wins, else the
/// single `clusterIP`.
fn cluster_ips(spec: &Value) -> Vec<String> {
    let ips: Vec<String> = list_at(spec, "clusterIPs")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    if !ips.is_empty() {
        return ips;
    }
    match str_at(spec, "clusterIP") {
        "" => Vec::new(),
        ip => vec![ip.to_string()],
    }
}

fn parse_ip(ip: &str) -> Option<IpAddr> {
    ip.parse().ok()
}

fn validate_ip(ip: &str, path: &Path, errs: &mut Vec<Cause>) -> bool {
    if parse_ip(ip).is_some() {
        true
    } else {
        errs.push(invalid(
            path,
            ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
        false
    }
}

/// `ValidateNonSpecialIP`: no unspecified, loopback or link-local addresses.
fn validate_non_special_ip(ip: &str, path: &Path, errs: &mut Vec<Cause>) {
    let Some(addr) = parse_ip(ip) else {
        errs.push(invalid(path, ip, "must be a valid IP address"));
        return;
    };
    if addr.is_unspecified() {
        errs.push(invalid(path, ip, &format!("may not be unspecified ({ip})")));
    }
    if addr.is_loopback() {
        errs.push(invalid(
            path,
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let link_local = match addr {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        errs.push(invalid(
            path,
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    let link_local_multicast = match addr {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => (v6.segments()[0] & 0xff0f) == 0xff02,
    };
    if link_local_multicast {
        errs.push(invalid(
            path,
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
}

/// Parse `ip/prefix`, returning the address and prefix length.
pub(super) fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

pub(super) fn validate_cidr(cidr: &str, path: &Path, errs: &mut Vec<Cause>) {
    if parse_cidr(cidr).is_none() {
        errs.push(invalid(
            path,
            cidr,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
    }
}

/// `%#v` of the internal `core.ServicePort` key used for duplicate detection.
fn go_service_port_key(protocol: &str, port: i64) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(protocol)
    )
}

pub(super) fn validate_service(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    // On update a client may omit the allocated IPs; the server keeps the stored ones.
    let mut ips = cluster_ips(spec);
    if let Some(old) = old
        && ips.is_empty()
        && str_at(spec, "clusterIP").is_empty()
    {
        ips = cluster_ips(old.get("spec").unwrap_or(&Value::Null));
    }
    let service_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let headless = ips.len() == 1 && ips[0] == "None";
    let ports = list_at(spec, "ports");

    if let Some(old) = old {
        validate_service_update(spec, &ips, service_type, old, errs);
    }

    if ports.is_empty() && !headless && service_type != "ExternalName" {
        errs.push(required(&path.child("ports"), ""));
    }
    match service_type {
        "LoadBalancer" | "NodePort" => {
            if service_type == "LoadBalancer" {
                for (i, port) in ports.iter().enumerate() {
                    if int_at(port, "port") == Some(KUBELET_PORT) {
                        errs.push(invalid(
                            &path.child("ports").index(i),
                            KUBELET_PORT,
                            "may not expose port 10250 externally since it is used by kubelet",
                        ));
                    }
                }
            }
            if headless {
                errs.push(invalid(
                    &path.child("clusterIPs").index(0),
                    "None",
                    &format!("may not be set to 'None' for {service_type} services"),
                ));
            }
        }
        "ExternalName" => {
            if !ips.is_empty() {
                errs.push(forbidden(
                    &path.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if !list_at(spec, "ipFamilies").is_empty() {
                errs.push(forbidden(
                    &path.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if present(spec, "ipFamilyPolicy").is_some() {
                errs.push(forbidden(
                    &path.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let cname = str_at(spec, "externalName");
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(required(&path.child("externalName"), ""));
            } else {
                for msg in is_dns1123_subdomain(cname) {
                    errs.push(invalid(&path.child("externalName"), cname, &msg));
                }
            }
        }
        _ => {}
    }

    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.child("ports").index(i);
        let name = str_at(port, "name");
        if ports.len() > 1 && name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        } else if !name.is_empty() {
            for msg in is_dns1123_label(name) {
                errs.push(invalid(&p.child("name"), name, &msg));
            }
            if !names.insert(name) {
                errs.push(duplicate(&p.child("name"), name));
            }
        }
        let number = int_at(port, "port").unwrap_or(0);
        for msg in is_valid_port_num(number) {
            errs.push(invalid(&p.child("port"), number, &msg));
        }
        validate_protocol(port, &p, errs);
        // An unset targetPort defaults to the port.
        match port.get("targetPort") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_i64() == Some(0) => {}
            target => validate_port_num_or_name(target, &p.child("targetPort"), errs),
        }
        let app_protocol = str_at(port, "appProtocol");
        if present(port, "appProtocol").is_some() {
            for msg in is_qualified_name(app_protocol) {
                errs.push(invalid(&p.child("appProtocol"), app_protocol, &msg));
            }
        }
        let node_port = int_at(port, "nodePort").unwrap_or(0);
        if node_port != 0
            && service_type != "ClusterIP"
            && !(NODE_PORT_RANGE.0..=NODE_PORT_RANGE.1).contains(&node_port)
        {
            errs.push(invalid(
                &p.child("nodePort"),
                node_port,
                &format!(
                    "provided port is not in the valid range. The range of valid ports is {}-{}",
                    NODE_PORT_RANGE.0, NODE_PORT_RANGE.1
                ),
            ));
        }
    }

    if let Some(selector) = spec.get("selector").and_then(Value::as_object) {
        validate_labels(Some(selector), &path.child("selector"), errs);
    }

    let affinity = spec
        .get("sessionAffinity")
        .and_then(Value::as_str)
        .unwrap_or("None");
    match affinity {
        "ClientIP" => {
            let config_path = path.child("sessionAffinityConfig");
            let detail = "when session affinity type is ClientIP";
            let config = present(spec, "sessionAffinityConfig");
            let client_ip = config.and_then(|c| present(c, "clientIP"));
            let timeout = client_ip.and_then(|c| int_at(c, "timeoutSeconds"));
            match (config, client_ip, timeout) {
                (None, _, _) => errs.push(required(&config_path, detail)),
                (_, None, _) => errs.push(required(&config_path.child("clientIP"), detail)),
                (_, _, None) => errs.push(required(
                    &config_path.at(&["clientIP", "timeoutSeconds"]),
                    detail,
                )),
                (_, _, Some(t)) if t <= 0 || t > 86400 => errs.push(invalid(
                    &config_path.at(&["clientIP", "timeoutSeconds"]),
                    t,
                    "must be greater than 0 and less than 86400",
                )),
                _ => {}
            }
        }
        "None" => {
            if present(spec, "sessionAffinityConfig").is_some() {
                errs.push(forbidden(
                    &path.child("sessionAffinityConfig"),
                    "must not be set when session affinity is None",
                ));
            }
        }
        "" => errs.push(required(&path.child("sessionAffinity"), "")),
        other => errs.push(not_supported(
            &path.child("sessionAffinity"),
            other,
            &["ClientIP", "None"],
        )),
    }

    if service_type != "ExternalName" {
        validate_cluster_ip_fields(spec, &ips, headless, &path, errs);
    }

    for (i, ip) in list_at(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        let p = path.child("externalIPs").index(i);
        if validate_ip(ip, &p, errs) {
            validate_non_special_ip(ip, &p, errs);
        }
    }

    if !matches!(
        service_type,
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort"
    ) {
        errs.push(not_supported(
            &path.child("type"),
            service_type,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        ));
    }

    if service_type == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int_at(port, "nodePort").unwrap_or(0) != 0 {
                errs.push(forbidden(
                    &path.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    let mut node_ports = HashSet::new();
    let mut port_keys = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        let node_port = int_at(port, "nodePort").unwrap_or(0);
        if node_port != 0 && !node_ports.insert((protocol, node_port)) {
            errs.push(duplicate(
                &path.child("ports").index(i).child("nodePort"),
                node_port,
            ));
        }
        let number = int_at(port, "port").unwrap_or(0);
        if !port_keys.insert((protocol, number)) {
            errs.push(duplicate(
                &path.child("ports").index(i),
                Bad::Raw(go_service_port_key(protocol, number)),
            ));
        }
    }

    let source_ranges = list_at(spec, "loadBalancerSourceRanges");
    if !source_ranges.is_empty() {
        let p = path.child("LoadBalancerSourceRanges");
        if service_type != "LoadBalancer" {
            errs.push(forbidden(
                &p,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, range) in source_ranges.iter().enumerate() {
            validate_cidr(range.as_str().unwrap_or("").trim(), &p.index(i), errs);
        }
    }

    let allocate = present(spec, "allocateLoadBalancerNodePorts");
    if allocate.is_some() && service_type != "LoadBalancer" {
        errs.push(forbidden(
            &path.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if service_type == "LoadBalancer" && allocate.is_none() {
        // Kubernetes reports this one without the `spec.` prefix.
        errs.push(required(&Path::new("allocateLoadBalancerNodePorts"), ""));
    }

    validate_traffic_policies(spec, service_type, &path, errs);
}

fn validate_traffic_policies(spec: &Value, service_type: &str, path: &Path, errs: &mut Vec<Cause>) {
    let externally_accessible = matches!(service_type, "LoadBalancer" | "NodePort")
        || (service_type == "ClusterIP" && !list_at(spec, "externalIPs").is_empty());
    let etp = str_at(spec, "externalTrafficPolicy");
    if !externally_accessible {
        if !etp.is_empty() {
            errs.push(invalid(
                &path.child("externalTrafficPolicy"),
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(required(&path.child("externalTrafficPolicy"), ""));
    } else if !matches!(etp, "Cluster" | "Local") {
        errs.push(not_supported(
            &path.child("externalTrafficPolicy"),
            etp,
            &["Cluster", "Local"],
        ));
    }
    let needs_health_check = service_type == "LoadBalancer" && etp == "Local";
    let hc = int_at(spec, "healthCheckNodePort").unwrap_or(0);
    if !needs_health_check && hc != 0 {
        errs.push(invalid(
            &path.child("healthCheckNodePort"),
            hc,
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    } else if needs_health_check && hc != 0 {
        for msg in is_valid_port_num(hc) {
            errs.push(invalid(&path.child("healthCheckNodePort"), hc, &msg));
        }
    }
    match present(spec, "internalTrafficPolicy") {
        None => {
            if matches!(service_type, "ClusterIP" | "NodePort" | "LoadBalancer") {
                errs.push(required(&path.child("internalTrafficPolicy"), ""));
            }
        }
        Some(itp) => {
            let itp = itp.as_str().unwrap_or("");
            if !matches!(itp, "Cluster" | "Local") {
                errs.push(not_supported(
                    &path.child("internalTrafficPolicy"),
                    itp,
                    &["Cluster", "Local"],
                ));
            }
        }
    }
    if let Some(td) = present(spec, "trafficDistribution") {
        let td = td.as_str().unwrap_or("");
        if td != "PreferClose" {
            errs.push(not_supported(
                &path.child("trafficDistribution"),
                td,
                &["PreferClose"],
            ));
        }
    }
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn validate_cluster_ip_fields(
    spec: &Value,
    ips: &[String],
    headless: bool,
    path: &Path,
    errs: &mut Vec<Cause>,
) {
    let ips_path = path.child("clusterIPs");
    let ips_value = Bad::Raw(super::field::go_strings(ips));
    let cluster_ip = str_at(spec, "clusterIP");
    let explicit_ips = list_at(spec, "clusterIPs");
    if !cluster_ip.is_empty()
        && !explicit_ips.is_empty()
        && explicit_ips[0].as_str() != Some(cluster_ip)
    {
        errs.push(invalid(
            &ips_path,
            ips_value.clone(),
            "first value must match `clusterIP`",
        ));
    }
    let families = list_at(spec, "ipFamilies");
    let mut seen = HashSet::new();
    for (i, family) in families.iter().enumerate() {
        let family = family.as_str().unwrap_or("");
        if !matches!(family, "IPv4" | "IPv6") {
            errs.push(not_supported(
                &path.child("ipFamilies").index(i),
                family,
                &["IPv4", "IPv6"],
            ));
        }
        if !seen.insert(family) {
            errs.push(duplicate(&path.child("ipFamilies").index(i), family));
        }
    }
    if let Some(policy) = present(spec, "ipFamilyPolicy") {
        let policy = policy.as_str().unwrap_or("");
        if !matches!(
            policy,
            "SingleStack" | "PreferDualStack" | "RequireDualStack"
        ) {
            errs.push(not_supported(
                &path.child("ipFamilyPolicy"),
                policy,
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }
    let mut invalid_ips = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                invalid_ips = true;
                errs.push(invalid(
                    &ips_path,
                    ips_value.clone(),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        invalid_ips |= !validate_ip(ip, &ips_path.index(i), errs);
    }
    if ips.len() > 2 {
        errs.push(invalid(
            &ips_path,
            ips_value.clone(),
            "may only hold up to 2 values",
        ));
    }
    if invalid_ips {
        return;
    }
    if ips.len() > 1 {
        let v4 = ips
            .iter()
            .filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
            .count();
        if v4 != 1 {
            errs.push(invalid(
                &ips_path,
                ips_value,
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !headless {
        for (i, (ip, family)) in ips.iter().zip(families).enumerate() {
            let is_v6 = ip.parse::<std::net::Ipv6Addr>().is_ok();
            match family.as_str() {
                Some("IPv4") if is_v6 => errs.push(invalid(
                    &ips_path.index(i),
                    ip.as_str(),
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                )),
                Some("IPv6") if !is_v6 => errs.push(invalid(
                    &ips_path.index(i),
                    ip.as_str(),
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                )),
                _ => {}
            }
        }
    }
}

/// `validateUpgradeDowngradeClusterIPs` and friends: an allocated IP never changes.
fn validate_service_update(
    spec: &Value,
    ips: &[String],
    service_type: &str,
    old: &Value,
    errs: &mut Vec<Cause>,
) {
    let old_spec = old.get("spec").unwrap_or(&Value::Null);
    let old_type = old_spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if service_type == "ExternalName" || old_type == "ExternalName" {
        return;
    }
    let old_ips = cluster_ips(old_spec);
    let old_headless = old_ips.len() == 1 && old_ips[0] == "None";
    let headless = ips.len() == 1 && ips[0] == "None";
    if old_headless && headless {
        return;
    }
    let ips_path = Path::new("spec").child("clusterIPs");
    let value = || Bad::Raw(super::field::go_strings(ips));
    if old_ips.len() == ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if *ip != ips[i] {
                errs.push(invalid(
                    &ips_path.index(i),
                    value(),
                    "may not change once set",
                ));
            }
        }
    } else if old_ips.len() > ips.len() {
        if ips.is_empty() {
            errs.push(invalid(
                &ips_path.index(0),
                value(),
                "primary clusterIP can not be unset",
            ));
        } else if ips[0] != old_ips[0] {
            errs.push(invalid(
                &ips_path.index(0),
                value(),
                "may not change once set",
            ));
        }
        if ips.len() == 1 && str_at(spec, "ipFamilyPolicy") != "SingleStack" {
            errs.push(invalid(
                &Path::new("spec").child("ipFamilyPolicy"),
                Bad::json(spec.get("ipFamilyPolicy").unwrap_or(&Value::Null)),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && ips[0] != old_ips[0] {
        errs.push(invalid(
            &ips_path.index(0),
            value(),
            "may not change once set",
        ));
    }
    let needs_hc =
        |s: &Value, t: &str| t == "LoadBalancer" && str_at(s, "externalTrafficPolicy") == "Local";
    if needs_hc(spec, service_type)
        && needs_hc(old_spec, old_type)
        && int_at(spec, "healthCheckNodePort").is_some_and(|hc| hc != 0)
        && int_at(spec, "healthCheckNodePort") != int_at(old_spec, "healthCheckNodePort")
    {
        errs.push(forbidden(
            &Path::new("spec").child("healthCheckNodePort"),
            "field is immutable",
        ));
    }
}

/// Decoded sizes of a Secret's `data` (base64) merged with `stringData` (plain), as the API
/// server converts one into the other before validating.
fn secret_entries(obj: &Value) -> Vec<(String, usize, Option<Vec<u8>>)> {
    let mut entries: Vec<(String, usize, Option<Vec<u8>>)> = Vec::new();
    if let Some(data) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let raw = v.as_str().unwrap_or("");
            let decoded = base64::engine::general_purpose::STANDARD.decode(raw).ok();
            let len = decoded.as_ref().map_or(raw.len(), Vec::len);
            entries.push((k.clone(), len, decoded));
        }
    }
    if let Some(data) = obj.get("stringData").and_then(Value::as_object) {
        for (k, v) in data {
            let raw = v.as_str().unwrap_or("").as_bytes().to_vec();
            entries.retain(|(key, _, _)| key != k);
            entries.push((k.clone(), raw.len(), Some(raw)));
        }
    }
    entries
}

pub(super) fn validate_config_map(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let data = obj.get("data").and_then(Value::as_object);
    let binary = obj.get("binaryData").and_then(Value::as_object);
    let mut total = 0usize;
    for (key, value) in data.into_iter().flatten() {
        let p = Path::new("data").key(key);
        for msg in is_config_map_key(key) {
            errs.push(invalid(&p, key.as_str(), &msg));
        }
        if binary.is_some_and(|b| b.contains_key(key)) {
            errs.push(invalid(
                &p,
                key.as_str(),
                "duplicate of key present in binaryData",
            ));
        }
        total += value.as_str().map_or(0, str::len);
    }
    for (key, value) in binary.into_iter().flatten() {
        for msg in is_config_map_key(key) {
            errs.push(invalid(
                &Path::new("binaryData").key(key),
                key.as_str(),
                &msg,
            ));
        }
        let raw = value.as_str().unwrap_or("");
        total += base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_or(raw.len(), |d| d.len());
    }
    if total > MAX_DATA_BYTES {
        errs.push(too_long(&Path::root(), MAX_DATA_BYTES));
    }
    if let Some(old) = old
        && old.get("immutable").and_then(Value::as_bool) == Some(true)
    {
        if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
            errs.push(forbidden(
                &Path::new("immutable"),
                "field is immutable when `immutable` is set",
            ));
        }
        for key in ["data", "binaryData"] {
            if !same(obj.get(key), old.get(key)) {
                errs.push(forbidden(
                    &Path::new(key),
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
}

pub(super) fn validate_secret(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let data_path = Path::new("data");
    let entries = secret_entries(obj);
    let mut total = 0usize;
    for (key, len, _) in &entries {
        for msg in is_config_map_key(key) {
            errs.push(invalid(&data_path.key(key), key.as_str(), &msg));
        }
        total += len;
    }
    if total > MAX_DATA_BYTES {
        errs.push(too_long(&data_path, MAX_DATA_BYTES));
    }
    let has = |key: &str| entries.iter().any(|(k, _, _)| k == key);
    let bytes = |key: &str| {
        entries
            .iter()
            .find(|(k, _, _)| k == key)
            .and_then(|(_, _, b)| b.clone())
    };
    let secret_type = str_at(obj, "type");
    match secret_type {
        "kubernetes.io/service-account-token" => {
            let sa = obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if sa.is_empty() {
                errs.push(required(
                    &Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if secret_type == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            if !has(key) {
                errs.push(required(&data_path.key(key), ""));
            } else if let Some(raw) = bytes(key)
                && let Err(e) = serde_json::from_slice::<Map<String, Value>>(&raw)
            {
                errs.push(invalid(
                    &data_path.key(key),
                    "<secret contents redacted>",
                    &e.to_string(),
                ));
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(required(&data_path.key("username"), ""));
            errs.push(required(&data_path.key("password"), ""));
        }
        "kubernetes.io/ssh-auth" if bytes("ssh-privatekey").is_none_or(|b| b.is_empty()) => {
            errs.push(required(&data_path.key("ssh-privatekey"), ""));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errs.push(required(&data_path.key(key), ""));
                }
            }
        }
        _ => {}
    }
    if let Some(old) = old {
        let old_type = str_at(old, "type");
        if !secret_type.is_empty() && secret_type != old_type {
            errs.push(invalid(
                &Path::new("type"),
                secret_type,
                "field is immutable",
            ));
        }
        if old.get("immutable").and_then(Value::as_bool) == Some(true) {
            if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
                errs.push(forbidden(
                    &Path::new("immutable"),
                    "field is immutable when `immutable` is set",
                ));
            }
            let decoded = |o: &Value| {
                let mut e: Vec<(String, Option<Vec<u8>>)> = secret_entries(o)
                    .into_iter()
                    .map(|(k, _, b)| (k, b))
                    .collect();
                e.sort();
                e
            };
            if decoded(obj) != decoded(old) {
                errs.push(forbidden(
                    &Path::new("data"),
                    "field is immutable when `immutable` is set",
                ));
            }
        }
    }
}

pub(super) fn validate_namespace(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    if old.is_some() {
        // Updates ignore spec.finalizers and status (the finalize and status subresources
        // own them).
        return;
    }
    let path = Path::new("spec").child("finalizers");
    for f in list_at(spec(obj), "finalizers") {
        let f = f.as_str().unwrap_or("");
        for msg in is_qualified_name(f) {
            errs.push(invalid(&path, f, &msg));
        }
        validate_kube_finalizer_name(f, &path, errs);
    }
}

const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

fn validate_access_modes(spec: &Value, path: &Path, required_detail: &str, errs: &mut Vec<Cause>) {
    let modes = list_at(spec, "accessModes");
    if modes.is_empty() {
        errs.push(required(&path.child("accessModes"), required_detail));
    }
    let mut once_pod = false;
    let mut other = false;
    for mode in modes {
        let mode = mode.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&mode) {
            errs.push(not_supported(
                &path.child("accessModes"),
                mode,
                &ACCESS_MODES,
            ));
        } else if mode == "ReadWriteOncePod" {
            once_pod = true;
        } else {
            other = true;
        }
    }
    if once_pod && other {
        errs.push(forbidden(
            &path.child("accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

/// `ValidatePersistentVolumeClaimSpec` (also used for claim templates).
pub(super) fn validate_pvc_spec(spec: &Value, path: &Path, errs: &mut Vec<Cause>) {
    validate_access_modes(spec, path, "at least 1 access mode is required", errs);
    if let Some(selector) = present(spec, "selector") {
        validate_label_selector(selector, &path.child("selector"), errs);
    }
    // Kubernetes reports the storage request at `spec.resources[storage]`.
    let storage_path = path.child("resources").key("storage");
    match spec.pointer("/resources/requests/storage") {
        None | Some(Value::Null) => errs.push(required(&storage_path, "")),
        Some(value) => match from_json(value) {
            None => errs.push(invalid(&storage_path, Bad::json(value), QUANTITY_ERROR)),
            Some(q) if q.is_negative() || q.is_zero() => {
                errs.push(invalid(
                    &storage_path,
                    q.canonical(),
                    "must be greater than zero",
                ));
            }
            Some(_) => {}
        },
    }
    let class = str_at(spec, "storageClassName");
    if !class.is_empty() {
        for msg in is_dns1123_subdomain(class) {
            errs.push(invalid(&path.child("storageClassName"), class, &msg));
        }
    }
    if let Some(mode) = present(spec, "volumeMode") {
        let mode = mode.as_str().unwrap_or("");
        if !matches!(mode, "Block" | "Filesystem") {
            errs.push(not_supported(
                &path.child("volumeMode"),
                mode,
                &["Block", "Filesystem"],
            ));
        }
    }
}

pub(super) fn validate_pvc(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    validate_pvc_spec(spec, &path, errs);
    let Some(old) = old else { return };
    let old_spec = old.get("spec").unwrap_or(&Value::Null);

    // Only the storage request may change; the volume name may be set once (by the binder).
    let comparable = |s: &Value, other: &Value| {
        let mut s = normalized(s);
        if let Some(map) = s.as_object_mut() {
            if let Some(requests) = map
                .get_mut("resources")
                .and_then(|r| r.get_mut("requests"))
                .and_then(Value::as_object_mut)
            {
                requests.remove("storage");
            }
            if str_at(other, "volumeName").is_empty() {
                map.remove("volumeName");
            }
            map.remove("volumeAttributesClassName");
        }
        normalized(&s)
    };
    let new_cmp = comparable(spec, old_spec);
    let old_cmp = comparable(old_spec, old_spec);
    if new_cmp != old_cmp {
        errs.push(forbidden(
            &path,
            &format!(
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n{}",
                struct_diff("core.PersistentVolumeClaimSpec", &old_cmp, &new_cmp)
            ),
        ));
    }
    let size = |s: &Value| s.pointer("/resources/requests/storage").and_then(from_json);
    if let (Some(new_size), Some(old_size)) = (size(spec), size(old_spec))
        && new_size < old_size
    {
        // With RecoverVolumeExpansionFailure (on since 1.32) a claim may shrink back down
        // to, but not below, what the volume really has.
        let capacity = old
            .pointer("/status/capacity/storage")
            .and_then(from_json)
            .unwrap_or(Quantity::parse("0").expect("zero parses"));
        if new_size <= capacity {
            errs.push(forbidden(
                &path.at(&["resources", "requests", "storage"]),
                "field can not be less than status.capacity",
            ));
        }
    }
    let mode = spec.get("volumeMode");
    if !same(mode, old_spec.get("volumeMode")) {
        errs.push(invalid(
            &Path::new("volumeMode"),
            Bad::json(mode.unwrap_or(&Value::Null)),
            "field is immutable",
        ));
    }
}

/// PersistentVolume sources, in Kubernetes' check order.
const PV_SOURCES: [&str; 22] = [
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cinder",
    "cephfs",
    "iscsi",
    "fc",
    "azureFile",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
    "flexVolume",
];

pub(super) fn validate_pv(obj: &Value, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    let path = Path::new("spec");
    validate_access_modes(spec, &path, "", errs);
    let capacity = spec.get("capacity").and_then(Value::as_object);
    let cap_path = path.child("capacity");
    if capacity.is_none_or(Map::is_empty) {
        errs.push(required(&cap_path, ""));
    }
    if capacity.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        errs.push(not_supported(
            &cap_path,
            Bad::json(spec.get("capacity").unwrap_or(&Value::Null)),
            &["storage"],
        ));
    }
    for (name, value) in capacity.into_iter().flatten() {
        match from_json(value) {
            None => errs.push(invalid(
                &cap_path.key(name),
                Bad::json(value),
                QUANTITY_ERROR,
            )),
            Some(q) if q.is_negative() || q.is_zero() => errs.push(invalid(
                &cap_path.key(name),
                q.canonical(),
                "must be greater than zero",
            )),
            Some(_) => {}
        }
    }
    let reclaim = str_at(spec, "persistentVolumeReclaimPolicy");
    if !reclaim.is_empty() && !matches!(reclaim, "Delete" | "Recycle" | "Retain") {
        errs.push(not_supported(
            &path.child("persistentVolumeReclaimPolicy"),
            reclaim,
            &["Delete", "Recycle", "Retain"],
        ));
    }
    let mut count = 0;
    for key in PV_SOURCES {
        if present(spec, key).is_some() {
            if count > 0 {
                errs.push(forbidden(
                    &path.child(key),
                    "may not specify more than 1 volume type",
                ));
            }
            count += 1;
        }
    }
    if count == 0 {
        errs.push(required(&path, "must specify a volume type"));
    }
    let class = str_at(spec, "storageClassName");
    if !class.is_empty() {
        for msg in is_dns1123_subdomain(class) {
            errs.push(invalid(&path.child("storageClassName"), class, &msg));
        }
    }
    if let Some(mode) = present(spec, "volumeMode") {
        let mode = mode.as_str().unwrap_or("");
        if !matches!(mode, "Block" | "Filesystem") {
            errs.push(not_supported(
                &path.child("volumeMode"),
                mode,
                &["Block", "Filesystem"],
            ));
        }
    }
}

pub(super) fn validate_endpoints(obj: &Value, errs: &mut Vec<Cause>) {
    let path = Path::new("subsets");
    for (i, subset) in list_at(obj, "subsets").iter().enumerate() {
        let p = path.index(i);
        let addresses = list_at(subset, "addresses");
        let not_ready = list_at(subset, "notReadyAddresses");
        if addresses.is_empty() && not_ready.is_empty() {
            errs.push(required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (key, list) in [("addresses", addresses), ("notReadyAddresses", not_ready)] {
            for (j, address) in list.iter().enumerate() {
                let ap = p.child(key).index(j);
                let ip = str_at(address, "ip");
                validate_ip(ip, &ap.child("ip"), errs);
                let hostname = str_at(address, "hostname");
                if !hostname.is_empty() {
                    for msg in is_dns1123_label(hostname) {
                        errs.push(invalid(&ap.child("hostname"), hostname, &msg));
                    }
                }
                if let Some(node) = address.get("nodeName").and_then(Value::as_str) {
                    for msg in is_dns1123_subdomain(node) {
                        errs.push(invalid(&ap.child("nodeName"), node, &msg));
                    }
                }
                validate_non_special_ip(ip, &ap.child("ip"), errs);
            }
        }
        let ports = list_at(subset, "ports");
        for (j, port) in ports.iter().enumerate() {
            let pp = p.child("ports").index(j);
            let name = str_at(port, "name");
            if ports.len() > 1 && name.is_empty() {
                errs.push(required(&pp.child("name"), ""));
            } else if !name.is_empty() {
                for msg in is_dns1123_label(name) {
                    errs.push(invalid(&pp.child("name"), name, &msg));
                }
            }
            let number = int_at(port, "port").unwrap_or(0);
            for msg in is_valid_port_num(number) {
                errs.push(invalid(&pp.child("port"), number, &msg));
            }
            validate_protocol(port, &pp, errs);
        }
    }
}

pub(super) fn validate_resource_quota(obj: &Value, errs: &mut Vec<Cause>) {
    let spec = spec(obj);
    for key in ["hard"] {
        let path = Path::new("spec").child(key);
        for (name, value) in spec
            .get(key)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let p = path.key(name);
            for msg in is_qualified_name(name) {
                errs.push(invalid(&p, name.as_str(), &msg));
            }
            match from_json(value) {
                None => errs.push(invalid(&p, Bad::json(value), QUANTITY_ERROR)),
                Some(q) if q.is_negative() => errs.push(invalid(
                    &p,
                    q.canonical(),
                    "must be greater than or equal to 0",
                )),
                Some(_) => {}
            }
        }
    }
}

pub(super) fn validate_limit_range(obj: &Value, errs: &mut Vec<Cause>) {
    let path = Path::new("spec").child("limits");
    let mut types = HashSet::new();
    for (i, limit) in list_at(spec(obj), "limits").iter().enumerate() {
        let p = path.index(i);
        let limit_type = str_at(limit, "type");
        let msgs = is_qualified_name(limit_type);
        if !msgs.is_empty() {
            for msg in msgs {
                errs.push(invalid(&p.child("type"), limit_type, &msg));
            }
        } else if !limit_type.contains('/')
            && !matches!(limit_type, "Pod" | "Container" | "PersistentVolumeClaim")
        {
            errs.push(invalid(
                &p.child("type"),
                limit_type,
                "must be a standard limit type or fully qualified",
            ));
        }
        if !types.insert(limit_type) {
            errs.push(duplicate(&p.child("type"), limit_type));
        }
        if limit_type == "Pod" {
            for key in ["default", "defaultRequest"] {
                if limit
                    .get(key)
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
                {
                    errs.push(forbidden(
                        &p.child(key),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
        }
        for key in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            for (name, value) in limit
                .get(key)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let q = from_json(value);
                if q.is_none() {
                    errs.push(invalid(
                        &p.child(key).key(name),
                        Bad::json(value),
                        QUANTITY_ERROR,
                    ));
                }
            }
        }
    }
}
