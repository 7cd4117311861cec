//! [`NetworkOps`] over iproute2 child processes: `ip -j` (JSON) for reads, `ip link|addr|route`
//! for changes on the host, and `nsenter --net=<path> ip -batch -` for the changes inside a
//! pod's namespace.
//!
//! Namespaces are referenced by file path throughout (a bind-mounted nsfs file such as
//! `/run/maestro/pods/<uid>/ns/net`, or `/run/netns/<name>`). iproute2 6.1 accepts a path where
//! a link is moved (`netns <path>`: any argument containing a `/` is opened as a file), but
//! `ip -n <name>` and `ip netns exec <name>` only take names under /run/netns, so commands that
//! run inside a namespace go through util-linux `nsenter --net=<path>`, which needs no name and
//! no symlink in /run/netns that `ip netns` would then list or delete.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use super::cidr::Ipv4Cidr;
use super::error::NetError;
use super::naming::MacAddr;
use super::ops::{BridgeSpec, Link, LinkAddress, NetworkOps, PodInterfaceSpec, Route, VethSpec};

/// The iproute2 implementation of [`NetworkOps`].
#[derive(Debug, Clone)]
pub struct IpRoute {
    ip: PathBuf,
    nsenter: PathBuf,
    proc_sys: PathBuf,
}

impl Default for IpRoute {
    fn default() -> Self {
        IpRoute {
            ip: "ip".into(),
            nsenter: "nsenter".into(),
            proc_sys: "/proc/sys".into(),
        }
    }
}

impl IpRoute {
    /// `ip` and `nsenter` from `PATH`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Explicit paths to the two binaries (e.g. `/usr/sbin/ip`, `/usr/bin/nsenter`).
    pub fn with_binaries(ip: impl Into<PathBuf>, nsenter: impl Into<PathBuf>) -> Self {
        IpRoute {
            ip: ip.into(),
            nsenter: nsenter.into(),
            ..Self::default()
        }
    }

    fn ip(&self, args: &[&str]) -> Result<String, NetError> {
        run(Command::new(&self.ip).args(args), None)
    }

    fn ip_json<T: for<'de> Deserialize<'de>>(&self, args: &[&str]) -> Result<T, NetError> {
        let out = self.ip(args)?;
        // `ip -j` prints nothing at all (not `[]`) for some empty results.
        let out = if out.trim().is_empty() {
            "[]"
        } else {
            out.as_str()
        };
        serde_json::from_str(out).map_err(|e| NetError::Parse {
            command: describe(&self.ip, args),
            message: e.to_string(),
        })
    }
}

/// Runs a command with the C locale (error messages are matched below), returning stdout.
pub(crate) fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<String, NetError> {
    let command = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    cmd.env("LC_ALL", "C")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let err = |message: String| NetError::Command {
        command: command.clone(),
        message,
    };
    let mut child = cmd.spawn().map_err(|e| err(e.to_string()))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes())
            .map_err(|e| err(format!("writing stdin: {e}")))?;
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(err(if stderr.is_empty() {
            out.status.to_string()
        } else {
            stderr
        }));
    }
    String::from_utf8(out.stdout).map_err(|e| err(format!("output is not UTF-8: {e}")))
}

fn describe(program: &Path, args: &[&str]) -> String {
    format!("{} {}", program.display(), args.join(" "))
}

/// Whether a command error says the object was not there (for idempotent deletes and reads).
fn is_not_found(err: &NetError) -> bool {
    matches!(err, NetError::Command { message, .. }
        if message.contains("does not exist")
            || message.contains("Cannot find device")
            || message.contains("No such process")
            || message.contains("No such device"))
}

impl NetworkOps for IpRoute {
    fn link(&self, name: &str) -> Result<Option<Link>, NetError> {
        match self.ip_json::<Vec<JsonLink>>(&["-j", "-d", "link", "show", "dev", name]) {
            Ok(links) => Ok(links.into_iter().map(Link::from).find(|l| l.name == name)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn links(&self) -> Result<Vec<Link>, NetError> {
        let links: Vec<JsonLink> = self.ip_json(&["-j", "-d", "link", "show"])?;
        Ok(links.into_iter().map(Link::from).collect())
    }

    fn addresses(&self) -> Result<Vec<LinkAddress>, NetError> {
        let links: Vec<JsonAddrLink> = self.ip_json(&["-j", "-4", "addr", "show"])?;
        Ok(parse_addresses(links))
    }

    fn routes(&self) -> Result<Vec<Route>, NetError> {
        let args = ["-j", "-4", "route", "show", "table", "main"];
        let routes: Vec<JsonRoute> = self.ip_json(&args)?;
        routes
            .into_iter()
            .map(|r| {
                r.into_route().map_err(|message| NetError::Parse {
                    command: describe(&self.ip, &args),
                    message,
                })
            })
            .collect()
    }

    fn create_bridge(&self, spec: &BridgeSpec) -> Result<(), NetError> {
        let (mac, mtu) = (spec.mac.to_string(), spec.mtu.to_string());
        self.ip(&[
            "link", "add", "name", &spec.name, "address", &mac, "mtu", &mtu, "type", "bridge",
        ])
        .map(drop)
    }

    fn add_address(&self, link: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        let cidr = format!("{addr}/{prefix}");
        self.ip(&["addr", "replace", &cidr, "dev", link]).map(drop)
    }

    fn set_mtu(&self, link: &str, mtu: u32) -> Result<(), NetError> {
        self.ip(&["link", "set", "dev", link, "mtu", &mtu.to_string()])
            .map(drop)
    }

    fn set_up(&self, link: &str) -> Result<(), NetError> {
        self.ip(&["link", "set", "dev", link, "up"]).map(drop)
    }

    fn ensure_unreachable_route(&self, cidr: Ipv4Cidr, metric: u32) -> Result<(), NetError> {
        let (cidr, metric) = (cidr.to_string(), metric.to_string());
        self.ip(&["route", "replace", "unreachable", &cidr, "metric", &metric])
            .map(drop)
    }

    fn remove_unreachable_route(&self, cidr: Ipv4Cidr, metric: u32) -> Result<(), NetError> {
        let (cidr, metric) = (cidr.to_string(), metric.to_string());
        match self.ip(&["route", "del", "unreachable", &cidr, "metric", &metric]) {
            Err(e) if !is_not_found(&e) => Err(e),
            _ => Ok(()),
        }
    }

    fn write_sysctl(&self, key: &str, value: &str) -> Result<(), NetError> {
        let path = self.proc_sys.join(key);
        if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
            return Ok(());
        }
        std::fs::write(&path, value).map_err(|e| NetError::io(path, e))
    }

    fn create_veth(&self, spec: &VethSpec) -> Result<(), NetError> {
        let mtu = spec.mtu.to_string();
        let mac = spec.pod_mac.to_string();
        let netns = spec.netns.to_str().ok_or_else(|| NetError::Command {
            command: "ip link add".into(),
            message: format!("namespace path {:?} is not UTF-8", spec.netns),
        })?;
        // The peer is created inside the pod's namespace under its final name: it never exists
        // in the host namespace, so it cannot clash with a host interface or need a rename.
        // A path works here because iproute2 opens any `netns` argument containing a '/'.
        // Then the alias (our mark) and hairpin, then up, so the port only forwards once it is
        // configured. One `ip -batch` process for the three (it stops at the first failure, and
        // the caller then deletes the link): a burst of pods spends much of its CPU on spawns.
        let hairpin = if spec.hairpin { "on" } else { "off" };
        let words = [netns, spec.host_alias.as_str()];
        if words.iter().any(|w| {
            w.is_empty() || w.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\')
        }) {
            return Err(NetError::Command {
                command: "ip link add".into(),
                message: format!("cannot pass {words:?} to ip -batch"),
            });
        }
        let script = format!(
            "link add name {host} master {bridge} mtu {mtu} type veth peer name {pod_if} \
             address {mac} mtu {mtu} netns {netns}\n\
             link set dev {host} alias {alias} type bridge_slave hairpin {hairpin}\n\
             link set dev {host} up\n",
            host = spec.host_name,
            bridge = spec.bridge,
            pod_if = spec.pod_ifname,
            alias = spec.host_alias,
        );
        run(Command::new(&self.ip).args(["-batch", "-"]), Some(&script)).map(drop)
    }

    fn configure_pod(&self, netns: &Path, spec: &PodInterfaceSpec) -> Result<(), NetError> {
        // `replace` everywhere so that a retry after a partial failure converges.
        let script = format!(
            "link set dev lo up\n\
             addr replace {addr}/{prefix} dev {ifname}\n\
             link set dev {ifname} up\n\
             route replace default via {gateway} dev {ifname}\n",
            addr = spec.addr,
            prefix = spec.prefix,
            ifname = spec.ifname,
            gateway = spec.gateway,
        );
        let mut net = std::ffi::OsString::from("--net=");
        net.push(netns);
        run(
            Command::new(&self.nsenter)
                .arg(net)
                .arg("--")
                .arg(&self.ip)
                .args(["-batch", "-"]),
            Some(&script),
        )
        .map(drop)
    }

    fn delete_link(&self, name: &str) -> Result<bool, NetError> {
        match self.ip(&["link", "del", "dev", name]) {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[derive(Debug, Deserialize)]
struct JsonLink {
    ifname: String,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    ifalias: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    linkinfo: Option<JsonLinkInfo>,
}

#[derive(Debug, Deserialize)]
struct JsonLinkInfo {
    #[serde(default)]
    info_kind: Option<String>,
    #[serde(default)]
    info_slave_kind: Option<String>,
    #[serde(default)]
    info_slave_data: Option<JsonSlaveData>,
}

#[derive(Debug, Deserialize)]
struct JsonSlaveData {
    #[serde(default)]
    hairpin: Option<bool>,
}

impl From<JsonLink> for Link {
    fn from(j: JsonLink) -> Self {
        let info = j.linkinfo;
        let hairpin = info
            .as_ref()
            .filter(|i| i.info_slave_kind.as_deref() == Some("bridge"))
            .and_then(|i| i.info_slave_data.as_ref())
            .and_then(|d| d.hairpin);
        Link {
            up: j.flags.iter().any(|f| f == "UP"),
            kind: info.and_then(|i| i.info_kind),
            name: j.ifname,
            master: j.master,
            alias: j.ifalias.filter(|a| !a.is_empty()),
            mtu: j.mtu,
            mac: j.address.as_deref().and_then(MacAddr::parse),
            hairpin,
        }
    }
}

#[derive(Debug, Deserialize)]
struct JsonAddrLink {
    #[serde(default)]
    ifname: String,
    #[serde(default)]
    addr_info: Vec<JsonAddrInfo>,
}

#[derive(Debug, Deserialize)]
struct JsonAddrInfo {
    #[serde(default)]
    family: String,
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    prefixlen: u8,
}

fn parse_addresses(links: Vec<JsonAddrLink>) -> Vec<LinkAddress> {
    let mut out = Vec::new();
    for link in links {
        for info in link.addr_info {
            let addr = info.local.as_deref().and_then(|a| a.parse().ok());
            if let (Some(addr), "inet") = (addr, info.family.as_str()) {
                out.push(LinkAddress {
                    link: link.ifname.clone(),
                    addr,
                    prefix: info.prefixlen,
                });
            }
        }
    }
    out
}

#[derive(Debug, Deserialize)]
struct JsonRoute {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    dst: String,
    #[serde(default)]
    dev: Option<String>,
    #[serde(default)]
    metric: Option<u32>,
}

impl JsonRoute {
    fn into_route(self) -> Result<Route, String> {
        let dst = match self.dst.as_str() {
            "default" => None,
            dst => Some(match dst.split_once('/') {
                Some(_) => dst.parse::<Ipv4Cidr>()?,
                None => {
                    let addr = dst
                        .parse::<Ipv4Addr>()
                        .map_err(|_| format!("route destination {dst:?}"))?;
                    Ipv4Cidr::new(addr, 32)?
                }
            }),
        };
        Ok(Route {
            dst,
            dev: self.dev,
            kind: self.kind.unwrap_or_else(|| "unicast".into()),
            metric: self.metric,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from iproute2 6.1 on Debian 12.
    const LINKS: &str = r#"[
      {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"link_type":"loopback","address":"00:00:00:00:00:00"},
      {"ifindex":5,"ifname":"mexpbr0","flags":["BROADCAST","MULTICAST"],"mtu":1500,"address":"0a:58:0a:fe:07:01","linkinfo":{"info_kind":"bridge","info_data":{"stp_state":0}}},
      {"ifindex":6,"link_index":2,"ifname":"mexpv0","flags":["BROADCAST","MULTICAST","UP"],"mtu":1400,"master":"mexpbr0","address":"12:50:c0:92:1d:6f","ifalias":"maestro:mexpbr0:uid-1","link_netnsid":0,"linkinfo":{"info_kind":"veth","info_slave_kind":"bridge","info_slave_data":{"state":"disabled","hairpin":true,"learning":true}}}
    ]"#;

    #[test]
    fn parses_links() {
        let links: Vec<JsonLink> = serde_json::from_str(LINKS).unwrap();
        let links: Vec<Link> = links.into_iter().map(Link::from).collect();
        assert_eq!(links[0].name, "lo");
        assert_eq!(links[0].kind, None);
        assert!(links[0].up);
        assert_eq!(links[1].kind.as_deref(), Some("bridge"));
        assert!(!links[1].up);
        assert_eq!(links[1].hairpin, None);
        assert_eq!(links[1].mac.unwrap().to_string(), "0a:58:0a:fe:07:01");
        assert_eq!(
            links[2],
            Link {
                name: "mexpv0".into(),
                kind: Some("veth".into()),
                master: Some("mexpbr0".into()),
                alias: Some("maestro:mexpbr0:uid-1".into()),
                mtu: 1400,
                up: true,
                mac: MacAddr::parse("12:50:c0:92:1d:6f"),
                hairpin: Some(true),
            }
        );
    }

    #[test]
    fn parses_addresses() {
        let json = r#"[
          {"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
          {"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"192.0.2.2","prefixlen":24},{"family":"inet6","local":"fd00::2","prefixlen":64}]},
          {"ifindex":3,"ifname":"ifb0","addr_info":[]}
        ]"#;
        let addrs = super::parse_addresses(serde_json::from_str(json).unwrap());
        assert_eq!(
            addrs,
            vec![
                LinkAddress {
                    link: "lo".into(),
                    addr: Ipv4Addr::LOCALHOST,
                    prefix: 8
                },
                LinkAddress {
                    link: "eth0".into(),
                    addr: Ipv4Addr::new(192, 0, 2, 2),
                    prefix: 24
                },
            ]
        );
    }

    #[test]
    fn parses_routes() {
        let json = r#"[
          {"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},
          {"type":"unreachable","dst":"10.253.9.0/24","metric":4000000000,"flags":[]},
          {"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.2","flags":[]},
          {"dst":"198.51.100.7","dev":"eth0","flags":[]}
        ]"#;
        let routes: Vec<JsonRoute> = serde_json::from_str(json).unwrap();
        let routes: Vec<Route> = routes
            .into_iter()
            .map(|r| r.into_route().unwrap())
            .collect();
        assert_eq!(routes[0].dst, None);
        assert_eq!(routes[0].kind, "unicast");
        assert_eq!(routes[1].kind, "unreachable");
        assert_eq!(routes[1].metric, Some(4_000_000_000));
        assert_eq!(routes[1].dev, None);
        assert_eq!(routes[2].dst, Some("192.0.2.0/24".parse().unwrap()));
        assert_eq!(routes[3].dst, Some("198.51.100.7/32".parse().unwrap()));
    }

    #[test]
    fn recognises_not_found_errors() {
        let e = |m: &str| NetError::Command {
            command: "ip".into(),
            message: m.into(),
        };
        assert!(is_not_found(&e("Device \"x\" does not exist.")));
        assert!(is_not_found(&e("Cannot find device \"x\"")));
        assert!(is_not_found(&e("RTNETLINK answers: No such process")));
        assert!(!is_not_found(&e("RTNETLINK answers: File exists")));
        assert!(!is_not_found(&e(
            "RTNETLINK answers: Operation not permitted"
        )));
    }
}
