//! The files a pod's containers see as /etc/hosts, /etc/hostname and /etc/resolv.conf,
//! rendered as kubelet renders them and written into a per-pod directory that the runtime
//! bind-mounts into every container of the pod. Rendering is pure; only [`write_pod_files`]
//! touches the disk.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::error::NetError;

/// Kubernetes' DNS label limit, which is also what kubelet cuts a pod name to for a hostname.
const MAX_HOSTNAME_LEN: usize = 63;
/// Linux's limit on the hostname (`HOST_NAME_MAX`), which an FQDN hostname must fit in.
const MAX_FQDN_HOSTNAME_LEN: usize = 64;

/// What the generated files are made of: the pod's identity, address and DNS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFiles {
    /// From [`pod_hostname`]: `spec.hostname`, or the pod's name.
    pub hostname: String,
    /// `spec.subdomain`: with it the pod also gets the name
    /// `hostname.subdomain.namespace.svc.<cluster domain>`.
    pub subdomain: Option<String>,
    pub namespace: String,
    /// "cluster.local" unless the cluster is configured otherwise.
    pub cluster_domain: String,
    /// The pod's addresses (the first one is what `hostname -i` returns).
    pub pod_ips: Vec<IpAddr>,
    /// `spec.hostAliases`, in order.
    pub host_aliases: Vec<HostAlias>,
    /// `spec.setHostnameAsFQDN`: /etc/hostname holds the FQDN instead of the short name.
    pub set_hostname_as_fqdn: bool,
    pub dns: DnsConfig,
}

/// One `spec.hostAliases` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Vec<String>,
}

/// The resolver configuration, already resolved from the pod's `dnsPolicy` and `dnsConfig` by
/// the caller (only it knows the cluster DNS address and the node's own resolv.conf).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `ndots:<n>`, written first; an `ndots` entry in `options` overrides it, as a pod's
    /// `dnsConfig.options` overrides the policy's defaults in Kubernetes.
    pub ndots: Option<u32>,
    pub options: Vec<DnsOption>,
}

/// A resolv.conf option: `name` or `name:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsOption {
    pub name: String,
    pub value: Option<String>,
}

impl DnsConfig {
    /// `dnsPolicy: ClusterFirst`: the cluster DNS, the namespace's service domains, ndots 5.
    pub fn cluster_first(
        namespace: &str,
        cluster_domain: &str,
        nameservers: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        DnsConfig {
            nameservers: nameservers.into_iter().map(Into::into).collect(),
            searches: vec![
                format!("{namespace}.svc.{cluster_domain}"),
                format!("svc.{cluster_domain}"),
                cluster_domain.to_owned(),
            ],
            ndots: Some(5),
            options: Vec::new(),
        }
    }
}

/// The three rendered files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFiles {
    pub hosts: String,
    pub hostname: String,
    pub resolv_conf: String,
}

/// Where [`write_pod_files`] put the files, for the runtime's bind mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFilePaths {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
}

/// The pod's hostname as kubelet derives it: `spec.hostname` if set, else the pod name, cut to
/// 63 characters without a trailing '-' or '.' (a pod name may be up to 253 characters).
pub fn pod_hostname(pod_name: &str, spec_hostname: Option<&str>) -> String {
    let name = spec_hostname.filter(|h| !h.is_empty()).unwrap_or(pod_name);
    if name.len() <= MAX_HOSTNAME_LEN {
        return name.to_owned();
    }
    // Names are DNS labels/subdomains (ASCII), so byte slicing is on a char boundary.
    name[..MAX_HOSTNAME_LEN]
        .trim_end_matches(['-', '.'])
        .to_owned()
}

impl PodFiles {
    /// `hostname.subdomain.namespace.svc.<cluster domain>`, when the pod has a subdomain.
    pub fn fqdn(&self) -> Option<String> {
        let subdomain = self.subdomain.as_deref().filter(|s| !s.is_empty())?;
        Some(format!(
            "{}.{subdomain}.{}.svc.{}",
            self.hostname, self.namespace, self.cluster_domain
        ))
    }

    /// Renders all three files; fails only when `setHostnameAsFQDN` asks for a hostname longer
    /// than the kernel allows (kubelet refuses such a pod the same way).
    pub fn render(&self) -> Result<RenderedFiles, NetError> {
        Ok(RenderedFiles {
            hosts: self.hosts(),
            hostname: self.hostname_file()?,
            resolv_conf: self.dns.resolv_conf(),
        })
    }

    /// /etc/hosts: kubelet's managed header, the pod's own names, then the host aliases.
    pub fn hosts(&self) -> String {
        let mut out = String::from(
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n",
        );
        let fqdn = self.fqdn();
        for ip in &self.pod_ips {
            match &fqdn {
                Some(fqdn) => out.push_str(&format!("{ip}\t{fqdn}\t{}\n", self.hostname)),
                None => out.push_str(&format!("{ip}\t{}\n", self.hostname)),
            }
        }
        if !self.host_aliases.is_empty() {
            out.push_str("\n# Entries added by HostAliases.\n");
            for alias in &self.host_aliases {
                out.push_str(&format!("{}\t{}\n", alias.ip, alias.hostnames.join("\t")));
            }
        }
        out
    }

    /// /etc/hostname: the short name, or the FQDN with `setHostnameAsFQDN`.
    pub fn hostname_file(&self) -> Result<String, NetError> {
        let name = match self.fqdn() {
            Some(fqdn) if self.set_hostname_as_fqdn => {
                if fqdn.len() > MAX_FQDN_HOSTNAME_LEN {
                    return Err(NetError::InvalidConfig(format!(
                        "pod FQDN {fqdn:?} is {} characters, more than the {MAX_FQDN_HOSTNAME_LEN} \
                         a hostname may have (setHostnameAsFQDN)",
                        fqdn.len()
                    )));
                }
                fqdn
            }
            _ => self.hostname.clone(),
        };
        Ok(format!("{name}\n"))
    }
}

impl DnsConfig {
    /// /etc/resolv.conf in the layout container runtimes write for Kubernetes: nameservers,
    /// then one `search` line, then one `options` line.
    pub fn resolv_conf(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        let mut options = Vec::new();
        if let Some(ndots) = self.ndots
            && !self.options.iter().any(|o| o.name == "ndots")
        {
            options.push(format!("ndots:{ndots}"));
        }
        for option in &self.options {
            options.push(match &option.value {
                Some(value) => format!("{}:{value}", option.name),
                None => option.name.clone(),
            });
        }
        if !options.is_empty() {
            out.push_str(&format!("options {}\n", options.join(" ")));
        }
        out
    }
}

/// Renders the files and writes them as `hosts`, `hostname` and `resolv.conf` into `dir`
/// (created if needed). Each file is rewritten in place rather than replaced by a rename:
/// a container bind-mounts the file's inode, and kubelet likewise updates it in place.
pub fn write_pod_files(dir: &Path, files: &PodFiles) -> Result<PodFilePaths, NetError> {
    let rendered = files.render()?;
    fs::create_dir_all(dir).map_err(|e| NetError::io(dir, e))?;
    let paths = PodFilePaths {
        hosts: dir.join("hosts"),
        hostname: dir.join("hostname"),
        resolv_conf: dir.join("resolv.conf"),
    };
    for (path, text) in [
        (&paths.hosts, &rendered.hosts),
        (&paths.hostname, &rendered.hostname),
        (&paths.resolv_conf, &rendered.resolv_conf),
    ] {
        fs::write(path, text).map_err(|e| NetError::io(path, e))?;
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "# Kubernetes-managed hosts file.\n\
        127.0.0.1\tlocalhost\n\
        ::1\tlocalhost ip6-localhost ip6-loopback\n\
        fe00::0\tip6-localnet\n\
        fe00::0\tip6-mcastprefix\n\
        fe00::1\tip6-allnodes\n\
        fe00::2\tip6-allrouters\n";

    fn pod() -> PodFiles {
        PodFiles {
            hostname: "web-0".into(),
            subdomain: None,
            namespace: "shop".into(),
            cluster_domain: "cluster.local".into(),
            pod_ips: vec!["10.42.0.5".parse().unwrap()],
            host_aliases: Vec::new(),
            set_hostname_as_fqdn: false,
            dns: DnsConfig::cluster_first("shop", "cluster.local", ["10.43.0.10"]),
        }
    }

    #[test]
    fn hosts_table() {
        let cases: Vec<(&str, PodFiles, String)> = vec![
            ("plain", pod(), format!("{HEADER}10.42.0.5\tweb-0\n")),
            (
                "subdomain",
                PodFiles {
                    subdomain: Some("nginx".into()),
                    ..pod()
                },
                format!("{HEADER}10.42.0.5\tweb-0.nginx.shop.svc.cluster.local\tweb-0\n"),
            ),
            (
                "empty subdomain is none",
                PodFiles {
                    subdomain: Some(String::new()),
                    ..pod()
                },
                format!("{HEADER}10.42.0.5\tweb-0\n"),
            ),
            (
                "host aliases",
                PodFiles {
                    host_aliases: vec![
                        HostAlias {
                            ip: "127.0.0.1".into(),
                            hostnames: vec!["foo.local".into(), "bar.local".into()],
                        },
                        HostAlias {
                            ip: "10.1.2.3".into(),
                            hostnames: vec!["foo.remote".into()],
                        },
                    ],
                    ..pod()
                },
                format!(
                    "{HEADER}10.42.0.5\tweb-0\n\n# Entries added by HostAliases.\n\
                     127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"
                ),
            ),
            (
                "no address yet",
                PodFiles {
                    pod_ips: Vec::new(),
                    ..pod()
                },
                HEADER.to_owned(),
            ),
            (
                "dual stack",
                PodFiles {
                    pod_ips: vec!["10.42.0.5".parse().unwrap(), "fd42::5".parse().unwrap()],
                    ..pod()
                },
                format!("{HEADER}10.42.0.5\tweb-0\nfd42::5\tweb-0\n"),
            ),
        ];
        for (name, files, want) in cases {
            assert_eq!(files.hosts(), want, "{name}");
        }
    }

    #[test]
    fn hostname_table() {
        let with_sub = PodFiles {
            subdomain: Some("nginx".into()),
            ..pod()
        };
        let cases: Vec<(&str, PodFiles, Result<&str, ()>)> = vec![
            ("short", pod(), Ok("web-0\n")),
            (
                "subdomain keeps the short name",
                with_sub.clone(),
                Ok("web-0\n"),
            ),
            (
                "fqdn",
                PodFiles {
                    set_hostname_as_fqdn: true,
                    ..with_sub.clone()
                },
                Ok("web-0.nginx.shop.svc.cluster.local\n"),
            ),
            (
                "fqdn without subdomain is the short name",
                PodFiles {
                    set_hostname_as_fqdn: true,
                    ..pod()
                },
                Ok("web-0\n"),
            ),
            (
                "fqdn too long",
                PodFiles {
                    set_hostname_as_fqdn: true,
                    hostname: "h".repeat(40),
                    ..with_sub
                },
                Err(()),
            ),
        ];
        for (name, files, want) in cases {
            let got = files.hostname_file().map_err(drop);
            assert_eq!(got.as_deref().map_err(drop), want, "{name}");
        }
    }

    #[test]
    fn pod_hostname_table() {
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        let dotted = format!("{}.x", "a".repeat(62));
        for (name, hostname, want) in [
            ("web-0", None, "web-0".to_owned()),
            ("web-0", Some("db"), "db".to_owned()),
            ("web-0", Some(""), "web-0".to_owned()),
            (long.as_str(), None, "a".repeat(62)),
            (dotted.as_str(), None, "a".repeat(62)),
            (&"c".repeat(70), None, "c".repeat(63)),
        ] {
            assert_eq!(pod_hostname(name, hostname), want, "{name} {hostname:?}");
        }
    }

    #[test]
    fn resolv_conf_table() {
        let opt = |name: &str, value: Option<&str>| DnsOption {
            name: name.into(),
            value: value.map(Into::into),
        };
        let cases = vec![
            (
                "cluster first",
                DnsConfig::cluster_first("shop", "cluster.local", ["10.43.0.10"]),
                "nameserver 10.43.0.10\n\
                 search shop.svc.cluster.local svc.cluster.local cluster.local\n\
                 options ndots:5\n",
            ),
            ("empty", DnsConfig::default(), ""),
            (
                "several nameservers and options",
                DnsConfig {
                    nameservers: vec!["10.43.0.10".into(), "fd43::a".into()],
                    searches: vec!["a.example".into()],
                    ndots: Some(2),
                    options: vec![opt("edns0", None), opt("timeout", Some("1"))],
                },
                "nameserver 10.43.0.10\nnameserver fd43::a\nsearch a.example\n\
                 options ndots:2 edns0 timeout:1\n",
            ),
            (
                "ndots option overrides the default",
                DnsConfig {
                    ndots: Some(5),
                    options: vec![opt("ndots", Some("1"))],
                    ..DnsConfig::default()
                },
                "options ndots:1\n",
            ),
            (
                "options without ndots",
                DnsConfig {
                    nameservers: vec!["1.1.1.1".into()],
                    options: vec![opt("rotate", None)],
                    ..DnsConfig::default()
                },
                "nameserver 1.1.1.1\noptions rotate\n",
            ),
        ];
        for (name, dns, want) in cases {
            assert_eq!(dns.resolv_conf(), want, "{name}");
        }
    }

    #[test]
    fn writes_the_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let pod_dir = dir.path().join("pods/uid-1/etc");
        let files = PodFiles {
            subdomain: Some("nginx".into()),
            ..pod()
        };
        let paths = write_pod_files(&pod_dir, &files).unwrap();
        assert_eq!(paths.hosts, pod_dir.join("hosts"));
        let rendered = files.render().unwrap();
        assert_eq!(fs::read_to_string(&paths.hosts).unwrap(), rendered.hosts);
        assert_eq!(fs::read_to_string(&paths.hostname).unwrap(), "web-0\n");
        assert_eq!(
            fs::read_to_string(&paths.resolv_conf).unwrap(),
            rendered.resolv_conf
        );
        // Rewriting keeps the same inode, so a running container's bind mount sees it.
        use std::os::unix::fs::MetadataExt;
        let inode = fs::metadata(&paths.hosts).unwrap().ino();
        write_pod_files(&pod_dir, &pod()).unwrap();
        assert_eq!(fs::metadata(&paths.hosts).unwrap().ino(), inode);
        assert_eq!(
            fs::read_to_string(&paths.hosts).unwrap(),
            format!("{HEADER}10.42.0.5\tweb-0\n")
        );
    }
}
