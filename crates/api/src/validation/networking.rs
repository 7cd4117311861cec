//! `networking.k8s.io`: Ingress rules, paths and backends, IngressClass controllers, and
//! NetworkPolicy selectors, ports and peers.

use serde_json::Value;

use super::core_kinds::{parse_cidr, validate_cidr};
use super::field::{
    Bad, Path, forbidden, go_quote, int_at, invalid, list_at, not_supported, present, required,
    str_at, too_long,
};
use super::meta::validate_label_selector;
use super::names::{
    NameRule, is_dns1123_subdomain, is_valid_port_name, is_valid_port_num,
    is_wildcard_dns1123_subdomain,
};
use crate::status::Cause;

const INVALID_PATH_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: [&str; 2] = ["/..", "/."];

fn validate_host(host: &str, path: &Path, errs: &mut Vec<Cause>) {
    let msgs = if host.contains('*') {
        is_wildcard_dns1123_subdomain(host)
    } else {
        is_dns1123_subdomain(host)
    };
    for msg in msgs {
        errs.push(invalid(path, host, &msg));
    }
}

pub(super) fn validate_ingress(obj: &Value, errs: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    let rules = list_at(spec, "rules");
    let default_backend = present(spec, "defaultBackend");
    if rules.is_empty() && default_backend.is_none() {
        errs.push(invalid(
            &path,
            Bad::Raw("[]networking.IngressRule(nil)".to_string()),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default_backend {
        validate_backend(backend, &path.child("defaultBackend"), errs);
    }
    for (i, rule) in rules.iter().enumerate() {
        let p = path.child("rules").index(i);
        let host = str_at(rule, "host");
        if !host.is_empty() {
            if host.parse::<std::net::IpAddr>().is_ok() {
                errs.push(invalid(
                    &p.child("host"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            validate_host(host, &p.child("host"), errs);
        }
        let Some(http) = present(rule, "http") else {
            continue;
        };
        let hp = p.child("http");
        let paths = list_at(http, "paths");
        if paths.is_empty() {
            errs.push(required(&hp.child("paths"), ""));
        }
        for (j, http_path) in paths.iter().enumerate() {
            validate_http_path(http_path, &hp.child("paths").index(j), errs);
        }
    }
    for (i, tls) in list_at(spec, "tls").iter().enumerate() {
        let p = path.child("tls").index(i);
        for (j, host) in list_at(tls, "hosts").iter().enumerate() {
            validate_host(
                host.as_str().unwrap_or(""),
                &p.child("hosts").index(j),
                errs,
            );
        }
        let secret = str_at(tls, "secretName");
        if !secret.is_empty() {
            for msg in is_dns1123_subdomain(secret) {
                errs.push(invalid(&p.child("secretName"), secret, &msg));
            }
        }
    }
    let class = str_at(spec, "ingressClassName");
    if !class.is_empty() {
        for msg in is_dns1123_subdomain(class) {
            errs.push(invalid(&path.child("ingressClassName"), class, &msg));
        }
    }
}

fn validate_http_path(http_path: &Value, path: &Path, errs: &mut Vec<Cause>) {
    let Some(path_type) = present(http_path, "pathType") else {
        errs.push(required(
            &path.child("pathType"),
            "pathType must be specified",
        ));
        return;
    };
    let value = str_at(http_path, "path");
    match path_type.as_str().unwrap_or("") {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.push(invalid(
                    &path.child("path"),
                    value,
                    "must be an absolute path",
                ));
            }
            if !value.is_empty() {
                for seq in INVALID_PATH_SEQUENCES {
                    if value.contains(seq) {
                        errs.push(invalid(
                            &path.child("path"),
                            value,
                            &format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in INVALID_PATH_SUFFIXES {
                    if value.ends_with(suffix) {
                        errs.push(invalid(
                            &path.child("path"),
                            value,
                            &format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(invalid(
                    &path.child("path"),
                    value,
                    "must be an absolute path",
                ));
            }
        }
        other => errs.push(not_supported(
            &path.child("pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    validate_backend(
        http_path.get("backend").unwrap_or(&Value::Null),
        &path.child("backend"),
        errs,
    );
}

fn validate_backend(backend: &Value, path: &Path, errs: &mut Vec<Cause>) {
    let resource = present(backend, "resource");
    let service = present(backend, "service");
    match (resource, service) {
        (Some(_), Some(_)) => {
            errs.push(invalid(
                path,
                "",
                "cannot set both resource and service backends",
            ));
        }
        (Some(resource), None) => {
            let rp = path.child("resource");
            for key in ["kind", "name"] {
                if str_at(resource, key).is_empty() {
                    errs.push(required(&rp.child(key), ""));
                }
            }
            let group = str_at(resource, "apiGroup");
            if !group.is_empty() {
                for msg in is_dns1123_subdomain(group) {
                    errs.push(invalid(&rp.child("apiGroup"), group, &msg));
                }
            }
        }
        (None, Some(service)) => {
            let sp = path.child("service");
            let name = str_at(service, "name");
            if name.is_empty() {
                errs.push(required(&sp.child("name"), ""));
            } else {
                for msg in NameRule::Dns1035.check(name, false) {
                    errs.push(invalid(&sp.child("name"), name, &msg));
                }
            }
            let port = service.get("port").unwrap_or(&Value::Null);
            let port_name = str_at(port, "name");
            let port_number = int_at(port, "number").unwrap_or(0);
            if !port_name.is_empty() && port_number != 0 {
                errs.push(invalid(path, "", "cannot set both port name & port number"));
            } else if !port_name.is_empty() {
                for msg in is_valid_port_name(port_name) {
                    errs.push(invalid(&sp.at(&["port", "name"]), port_name, &msg));
                }
            } else if port_number != 0 {
                for msg in is_valid_port_num(port_number) {
                    errs.push(invalid(&sp.at(&["port", "number"]), port_number, &msg));
                }
            } else {
                errs.push(required(path, "port name or number is required"));
            }
        }
        (None, None) => errs.push(invalid(path, "", "resource or service backend is required")),
    }
}

pub(super) fn validate_ingress_class(obj: &Value, old: Option<&Value>, errs: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec").child("controller");
    let controller = str_at(spec, "controller");
    if controller.len() > 250 {
        errs.push(too_long(&path, 250));
    }
    // IsDomainPrefixedPath: `<dns subdomain>/<http path>`.
    match controller.split_once('/') {
        _ if controller.is_empty() => errs.push(required(&path, "")),
        Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
            for msg in is_dns1123_subdomain(host) {
                errs.push(invalid(&path, host, &msg));
            }
            let valid_char =
                |c: char| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c);
            if !rest.chars().all(valid_char) {
                errs.push(invalid(
                    &path,
                    rest,
                    "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
                ));
            }
        }
        _ => errs.push(invalid(
            &path,
            controller,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )),
    }
    if let Some(old) = old {
        let old_controller = old
            .pointer("/spec/controller")
            .and_then(Value::as_str)
            .unwrap_or("");
        if controller != old_controller {
            errs.push(invalid(&path, controller, "field is immutable"));
        }
    }
}

pub(super) fn validate_network_policy(obj: &Value, errs: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let path = Path::new("spec");
    if let Some(selector) = present(spec, "podSelector") {
        validate_label_selector(selector, &path.child("podSelector"), errs);
    }
    for (direction, peers_key) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in list_at(spec, direction).iter().enumerate() {
            let rp = path.child(direction).index(i);
            for (j, port) in list_at(rule, "ports").iter().enumerate() {
                validate_policy_port(port, &rp.child("ports").index(j), errs);
            }
            for (j, peer) in list_at(rule, peers_key).iter().enumerate() {
                validate_peer(peer, &rp.child(peers_key).index(j), errs);
            }
        }
    }
    let types = list_at(spec, "policyTypes");
    if types.len() > 2 {
        let rendered: Vec<String> = types
            .iter()
            .map(|t| go_quote(t.as_str().unwrap_or("")))
            .collect();
        errs.push(invalid(
            &path.child("policyTypes"),
            Bad::Raw(format!(
                "[]networking.PolicyType{{{}}}",
                rendered.join(", ")
            )),
            "may not specify more than two policyTypes",
        ));
        return;
    }
    for (i, t) in types.iter().enumerate() {
        let t = t.as_str().unwrap_or("");
        if !matches!(t, "Ingress" | "Egress") {
            errs.push(not_supported(
                &path.child("policyTypes").index(i),
                t,
                &["Ingress", "Egress"],
            ));
        }
    }
}

fn validate_policy_port(port: &Value, path: &Path, errs: &mut Vec<Cause>) {
    if let Some(protocol) = present(port, "protocol") {
        let protocol = protocol.as_str().unwrap_or("");
        if !matches!(protocol, "TCP" | "UDP" | "SCTP") {
            errs.push(not_supported(
                &path.child("protocol"),
                protocol,
                &["TCP", "UDP", "SCTP"],
            ));
        }
    }
    let end_port = int_at(port, "endPort");
    match present(port, "port") {
        Some(Value::String(name)) => {
            if let Some(end) = end_port {
                errs.push(invalid(
                    &path.child("endPort"),
                    end,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for msg in is_valid_port_name(name) {
                errs.push(invalid(&path.child("port"), name.as_str(), &msg));
            }
        }
        Some(number) => {
            let number = number.as_i64().unwrap_or(0);
            for msg in is_valid_port_num(number) {
                errs.push(invalid(&path.child("port"), number, &msg));
            }
            if let Some(end) = end_port {
                if end < number {
                    errs.push(invalid(
                        &path.child("endPort"),
                        number,
                        "must be greater than or equal to `port`",
                    ));
                }
                for msg in is_valid_port_num(end) {
                    errs.push(invalid(&path.child("endPort"), end, &msg));
                }
            }
        }
        None => {
            if let Some(end) = end_port {
                errs.push(invalid(
                    &path.child("endPort"),
                    end,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn validate_peer(peer: &Value, path: &Path, errs: &mut Vec<Cause>) {
    let mut count = 0;
    for key in ["podSelector", "namespaceSelector"] {
        if let Some(selector) = present(peer, key) {
            count += 1;
            validate_label_selector(selector, &path.child(key), errs);
        }
    }
    let ip_block = present(peer, "ipBlock");
    if let Some(block) = ip_block {
        count += 1;
        let bp = path.child("ipBlock");
        let cidr = str_at(block, "cidr");
        if cidr.is_empty() {
            errs.push(required(&bp.child("cidr"), ""));
        } else {
            validate_cidr(cidr, &bp.child("cidr"), errs);
            if let Some((net, len)) = parse_cidr(cidr) {
                for (i, except) in list_at(block, "except").iter().enumerate() {
                    let except = except.as_str().unwrap_or("");
                    let ep = bp.child("except").index(i);
                    validate_cidr(except, &ep, errs);
                    if let Some((ex_ip, ex_len)) = parse_cidr(except)
                        && (ex_len <= len || !cidr_contains(net, len, ex_ip))
                    {
                        errs.push(invalid(&ep, except, "must be a strict subset of `cidr`"));
                    }
                }
            }
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a peer"));
    } else if count > 1 && ip_block.is_some() {
        errs.push(forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

fn cidr_contains(net: std::net::IpAddr, len: u8, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            (u32::from(n) & mask) == (u32::from(i) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            (u128::from(n) & mask) == (u128::from(i) & mask)
        }
        _ => false,
    }
}
