//! The proxy's rules as data (what each kind of Service becomes) and, in a network namespace
//! made for the test, as the kernel takes them: the full table, then diffs, each checked
//! against `nft list`.

use std::net::Ipv4Addr;
use std::process::Command;

use super::rules::{render, usable};
use super::*;
use crate::nft::ruleset::Ruleset;

fn config() -> ProxyConfig {
    ProxyConfig {
        table: "maestro-test".into(),
        cluster_cidr: Ipv4Cidr::new(Ipv4Addr::new(10, 42, 0, 0), 16).unwrap(),
        service_cidr: Ipv4Cidr::new(Ipv4Addr::new(10, 43, 0, 0), 16).unwrap(),
        node_name: "node-1".into(),
        bridge: "mb0".into(),
        dns: Some(Ipv4Addr::new(10, 43, 0, 10)),
    }
}

fn endpoint(last: u8, node: &str, ready: bool) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::new(10, 42, 1, last),
        port: 8080,
        ready,
        serving: ready,
        terminating: false,
        node: Some(node.into()),
    }
}

fn web(endpoints: Vec<Endpoint>) -> Service {
    Service {
        namespace: "shop".into(),
        name: "web".into(),
        cluster_ips: vec![Ipv4Addr::new(10, 43, 0, 50)],
        external_ips: vec![],
        ports: vec![ServicePort {
            name: "http".into(),
            protocol: Protocol::Tcp,
            port: 80,
            node_port: None,
            endpoints,
        }],
        affinity_timeout: None,
        internal_local: false,
        external_local: false,
    }
}

fn chain_rules<'a>(r: &'a Ruleset, prefix: &str) -> &'a [String] {
    let (_, chain) = r
        .chains
        .iter()
        .find(|(name, _)| name.starts_with(prefix))
        .unwrap_or_else(|| panic!("no chain {prefix}*: {:?}", r.chains.keys()));
    &chain.rules
}

#[test]
fn a_cluster_ip_balances_over_ready_endpoints() {
    let service = web(vec![
        endpoint(5, "node-1", true),
        endpoint(6, "node-2", true),
        endpoint(7, "node-2", false),
    ]);
    let r = render(&config(), &[service]);
    let ips = &r.maps["service-ips"].elements;
    assert_eq!(ips.len(), 1);
    let (key, verdict) = ips.iter().next().unwrap();
    assert_eq!(key, "10.43.0.50 . tcp . 80");
    assert!(verdict.starts_with("goto svc-") && verdict.ends_with("-shop/web/tcp/http"));
    let pick = chain_rules(&r, "cluster-");
    assert_eq!(pick.len(), 1);
    assert!(pick[0].starts_with("numgen random mod 2 vmap { 0 : goto ep-"));
    assert!(pick[0].contains("10.42.1.5/8080") && pick[0].contains("10.42.1.6/8080"));
    assert!(
        !pick[0].contains("10.42.1.7"),
        "the unready endpoint is left out"
    );
    let ep = chain_rules(&r, "ep-").to_vec();
    assert_eq!(
        ep,
        [
            "ip saddr 10.42.1.5 jump mark-for-masquerade",
            "meta l4proto tcp dnat to 10.42.1.5:8080"
        ]
    );
    assert!(r.maps["service-nodeports"].elements.is_empty());
}

#[test]
fn no_usable_endpoint_means_no_rule_and_terminating_ones_are_a_fallback() {
    let r = render(&config(), &[web(vec![endpoint(5, "node-1", false)])]);
    assert!(r.maps["service-ips"].elements.is_empty());
    assert!(!r.chains.keys().any(|c| c.starts_with("svc-")));

    let mut leaving = endpoint(5, "node-1", false);
    leaving.serving = true;
    leaving.terminating = true;
    let eps = [leaving.clone(), endpoint(6, "node-1", false)];
    assert_eq!(usable(eps.iter()), vec![&leaving]);
    let eps = [leaving, endpoint(6, "node-1", true)];
    assert_eq!(usable(eps.iter()), vec![&eps[1]], "ready ones win");
}

#[test]
fn node_ports_policies_and_affinity() {
    let mut service = web(vec![
        endpoint(5, "node-1", true),
        endpoint(6, "node-2", true),
    ]);
    service.ports[0].node_port = Some(30080);
    service.external_ips = vec![Ipv4Addr::new(192, 0, 2, 7)];
    service.affinity_timeout = Some(600);
    let r = render(&config(), std::slice::from_ref(&service));
    let ext = r.maps["service-nodeports"].elements["tcp . 30080"].clone();
    assert!(ext.starts_with("goto ext-"));
    assert_eq!(
        r.maps["service-ips"].elements["192.0.2.7 . tcp . 80"], ext,
        "external IPs go the node-port way"
    );
    let ext_rules = chain_rules(&r, "ext-");
    assert_eq!(ext_rules[0], "jump mark-for-masquerade");
    assert!(ext_rules[1].starts_with("goto cluster-"));
    // Affinity: one timed set per endpoint, checked before the random pick.
    assert_eq!(r.sets.len(), 2);
    assert!(r.sets.values().all(|d| d.contains("timeout 600s")));
    let pick = chain_rules(&r, "cluster-");
    assert!(pick[0].starts_with("ip saddr @affinity-"));
    assert!(pick[2].starts_with("numgen"));
    assert!(chain_rules(&r, "ep-")[1].starts_with("update @affinity-"));

    // externalTrafficPolicy Local: this node's endpoint only, clients keep their address,
    // pods still reach every endpoint.
    service.external_local = true;
    service.affinity_timeout = None;
    let r = render(&config(), std::slice::from_ref(&service));
    let ext_rules = chain_rules(&r, "ext-");
    assert!(ext_rules[0].starts_with("ip saddr 10.42.0.0/16 goto cluster-"));
    assert!(ext_rules[1].starts_with("goto local-"));
    let local = chain_rules(&r, "local-");
    assert_eq!(local.len(), 1);
    assert!(local[0].starts_with("goto ep-") && local[0].ends_with("10.42.1.5/8080"));

    // internalTrafficPolicy Local with no endpoint here: dropped.
    let mut internal = web(vec![endpoint(6, "node-2", true)]);
    internal.internal_local = true;
    let r = render(&config(), &[internal]);
    assert!(chain_rules(&r, "svc-")[1].starts_with("goto local-"));
    assert_eq!(chain_rules(&r, "local-"), ["drop"]);
}

#[test]
fn names_stay_apart_when_namespace_and_name_run_together() {
    let mut a = web(vec![endpoint(5, "node-1", true)]);
    a.namespace = "a-b".into();
    a.name = "c".into();
    let mut b = a.clone();
    b.namespace = "a".into();
    b.name = "b-c".into();
    b.cluster_ips = vec![Ipv4Addr::new(10, 43, 0, 51)];
    let r = render(&config(), &[a, b]);
    assert_eq!(r.chains.keys().filter(|c| c.starts_with("svc-")).count(), 2);
}

/// A network namespace for one test, deleted on drop.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Netns {
        let ok = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .unwrap();
        assert!(ok.success(), "ip netns add {name}");
        Netns(name.into())
    }

    /// Run `f` on a thread that lives in the namespace (commands it starts inherit it).
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).unwrap();
                nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_kernel_takes_the_table_and_its_diffs() {
    let netns = Netns::create(&format!("mproxy-{}", std::process::id()));
    netns.run(|| {
        let config = config();
        let mut proxy = Proxy::new(config.clone()).unwrap();
        let routes = output(Command::new("ip").args(["route", "show", "table", "local"]));
        assert!(routes.contains("local 10.43.0.0/16 dev lo"), "{routes}");

        let mut service = web(vec![
            endpoint(5, "node-1", true),
            endpoint(6, "node-2", true),
        ]);
        service.ports[0].node_port = Some(30080);
        service.affinity_timeout = Some(60);
        let first = proxy.sync(std::slice::from_ref(&service)).unwrap();
        assert!(first.full && !first.unchanged);
        let again = proxy.sync(std::slice::from_ref(&service)).unwrap();
        assert!(again.unchanged);

        let list = || output(Command::new("nft").args(["list", "table", "ip", "maestro-test"]));
        let table = list();
        assert!(
            table.contains("10.43.0.50 . tcp . 80 : goto svc-"),
            "{table}"
        );
        assert!(table.contains("tcp . 30080 : goto ext-"), "{table}");
        assert!(table.contains("dnat to 10.42.1.6:8080"), "{table}");

        // One endpoint goes unready, another appears: an incremental change.
        service.ports[0].endpoints[1].ready = false;
        service.ports[0].endpoints.push(endpoint(9, "node-3", true));
        let diff = proxy.sync(std::slice::from_ref(&service)).unwrap();
        assert!(!diff.full && !diff.unchanged);
        let table = list();
        assert!(!table.contains("10.42.1.6"), "{table}");
        assert!(table.contains("dnat to 10.42.1.9:8080"), "{table}");

        // The Service goes: only the fixed part is left.
        let gone = proxy.sync(&[]).unwrap();
        assert!(!gone.full);
        let table = list();
        assert!(
            !table.contains("svc-") && !table.contains("affinity-"),
            "{table}"
        );

        Proxy::remove(&config).unwrap();
        let tables = output(Command::new("nft").args(["list", "tables"]));
        assert!(!tables.contains("maestro-test"));
        let routes = output(Command::new("ip").args(["route", "show", "table", "local"]));
        assert!(!routes.contains("10.43.0.0/16"), "{routes}");
    });
}
