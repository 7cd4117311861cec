//! Kubernetes requests/limits → QoS class and cgroup values, with the kubelet's conversions
//! (milli-CPU to shares and CFS quota, pod totals, OOM score), so pods get the same cgroups here
//! as on a kubelet node.

use super::config::Resources;

/// Shares for no CPU request; also the weight of the best-effort tier.
pub const MIN_CPU_SHARES: u64 = 2;
pub const MAX_CPU_SHARES: u64 = 262_144;
/// The CFS period the kubelet uses: 100 ms.
pub const DEFAULT_CPU_PERIOD: u64 = 100_000;
/// The kernel refuses quotas below 1 ms.
pub const MIN_CPU_QUOTA: i64 = 1_000;

/// One container's requests and limits (Kubernetes units already resolved: milli-CPUs and bytes;
/// `None` = not set). API defaulting (request = limit when only the limit is set) is assumed done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceRequirements {
    pub cpu_request_millis: Option<u64>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_request_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
}

/// The pod's quality-of-service class, which decides its cgroup parent and OOM score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The class of a pod from all its containers (init containers included).
    pub fn of<'a>(containers: impl IntoIterator<Item = &'a ResourceRequirements>) -> QosClass {
        let mut any_set = false;
        let mut guaranteed = true;
        for r in containers {
            let set = [
                r.cpu_request_millis,
                r.cpu_limit_millis,
                r.memory_request_bytes,
                r.memory_limit_bytes,
            ]
            .iter()
            .any(|v| v.is_some_and(|v| v > 0));
            any_set |= set;
            let cpu_ok = r.cpu_limit_millis.is_some_and(|l| l > 0)
                && r.cpu_request_millis
                    .is_none_or(|q| q == r.cpu_limit_millis.unwrap_or(0));
            let mem_ok = r.memory_limit_bytes.is_some_and(|l| l > 0)
                && r.memory_request_bytes
                    .is_none_or(|q| q == r.memory_limit_bytes.unwrap_or(0));
            guaranteed &= cpu_ok && mem_ok;
        }
        match (any_set, guaranteed) {
            (false, _) => QosClass::BestEffort,
            (true, true) => QosClass::Guaranteed,
            (true, false) => QosClass::Burstable,
        }
    }

    /// The tier directory under the node's cgroup root; guaranteed pods sit directly in it.
    pub fn cgroup_tier(self) -> Option<&'static str> {
        match self {
            QosClass::Guaranteed => None,
            QosClass::Burstable => Some("burstable"),
            QosClass::BestEffort => Some("besteffort"),
        }
    }

    /// The kubelet's `oom_score_adj` for a container of this class. Negative values (guaranteed)
    /// need `CAP_SYS_RESOURCE` in the agent, which some hosts do not grant: callers raise the
    /// value to [`oom_score_adj_floor`].
    pub fn oom_score_adj(self, memory_request_bytes: u64, node_memory_bytes: u64) -> i32 {
        match self {
            QosClass::Guaranteed => -997,
            QosClass::BestEffort => 1000,
            QosClass::Burstable => {
                let node = node_memory_bytes.max(1) as u128;
                let adj = 1000 - (1000 * memory_request_bytes as u128 / node).min(1000) as i32;
                adj.clamp(2, 999)
            }
        }
    }
}

/// The lowest `oom_score_adj` this process may give its children: anything without
/// `CAP_SYS_RESOURCE` (an agent inside an unprivileged container, say) cannot go below its own
/// value, and runc's init dies on the attempt. Like containerd's `restrict_oom_score_adj`, the
/// wanted value is raised to that floor there.
pub fn oom_score_adj_floor() -> i32 {
    static FLOOR: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *FLOOR.get_or_init(|| {
        const CAP_SYS_RESOURCE: u32 = 24;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let effective = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        if effective & (1 << CAP_SYS_RESOURCE) != 0 {
            return -1000;
        }
        std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}

/// `milliCPU` → `cpu.shares` (1024 per CPU, clamped).
pub fn cpu_shares(cpu_millis: Option<u64>) -> u64 {
    match cpu_millis {
        None | Some(0) => MIN_CPU_SHARES,
        Some(m) => (m.saturating_mul(1024) / 1000).clamp(MIN_CPU_SHARES, MAX_CPU_SHARES),
    }
}

/// `milliCPU` → CFS quota for `period` microseconds; `None` for no limit.
pub fn cpu_quota(cpu_millis: Option<u64>, period: u64) -> Option<i64> {
    match cpu_millis {
        None | Some(0) => None,
        Some(m) => Some(((m as i128 * period as i128 / 1000) as i64).max(MIN_CPU_QUOTA)),
    }
}

impl ResourceRequirements {
    /// The container's own cgroup values.
    pub fn container_resources(&self) -> Resources {
        let quota = cpu_quota(self.cpu_limit_millis, DEFAULT_CPU_PERIOD);
        Resources {
            cpu_shares: Some(cpu_shares(self.cpu_request_millis)),
            cpu_quota: quota,
            cpu_period: quota.map(|_| DEFAULT_CPU_PERIOD),
            memory_limit: self.memory_limit_bytes.filter(|&m| m > 0).map(|m| m as i64),
            pids_limit: None,
        }
    }
}

/// An init container's requirements. `restartable` marks a sidecar (`restartPolicy: Always`),
/// which keeps running next to everything started after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InitContainer {
    pub resources: ResourceRequirements,
    pub restartable: bool,
}

/// The pod cgroup's values: what all containers may use together (the kubelet's
/// `ResourceConfigForPod`, sidecars included). Plain init containers run one at a time next to
/// the sidecars started before them; app containers run next to all sidecars; the pod needs
/// the larger of the two peaks. Quota and memory limit are set only when every container has
/// a limit. `pids_limit` is the node's per-pod limit.
pub fn pod_resources(
    containers: &[ResourceRequirements],
    init_containers: &[InitContainer],
    pids_limit: Option<i64>,
) -> Resources {
    let qos = QosClass::of(
        containers
            .iter()
            .chain(init_containers.iter().map(|i| &i.resources)),
    );
    if qos == QosClass::BestEffort {
        return Resources {
            cpu_shares: Some(MIN_CPU_SHARES),
            pids_limit,
            ..Resources::default()
        };
    }
    let cpu_request = peak(containers, init_containers, |r| r.cpu_request_millis, false);
    let cpu_limit = peak(containers, init_containers, |r| r.cpu_limit_millis, true);
    let memory_limit = peak(containers, init_containers, |r| r.memory_limit_bytes, true);
    let quota = cpu_quota(cpu_limit, DEFAULT_CPU_PERIOD);
    Resources {
        cpu_shares: Some(cpu_shares(cpu_request)),
        cpu_quota: quota,
        cpu_period: quota.map(|_| DEFAULT_CPU_PERIOD),
        memory_limit: memory_limit.filter(|&m| m > 0).map(|m| m as i64),
        pids_limit,
    }
}

/// The most of one value the pod's containers use at the same time. With `every_container`,
/// one container without the value makes the whole `None` (no pod limit).
fn peak(
    containers: &[ResourceRequirements],
    init_containers: &[InitContainer],
    value: impl Fn(&ResourceRequirements) -> Option<u64>,
    every_container: bool,
) -> Option<u64> {
    let get = |r: &ResourceRequirements| match value(r) {
        Some(v) => Some(v),
        None if every_container => None,
        None => Some(0),
    };
    let mut sidecars = 0u64;
    let mut init_peak = 0u64;
    for init in init_containers {
        let v = get(&init.resources)?;
        if init.restartable {
            sidecars = sidecars.saturating_add(v);
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(sidecars.saturating_add(v));
        }
    }
    let mut apps = 0u64;
    for c in containers {
        apps = apps.saturating_add(get(c)?);
    }
    Some(apps.saturating_add(sidecars).max(init_peak))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        cpu_req: Option<u64>,
        cpu_lim: Option<u64>,
        mem_req: Option<u64>,
        mem_lim: Option<u64>,
    ) -> ResourceRequirements {
        ResourceRequirements {
            cpu_request_millis: cpu_req,
            cpu_limit_millis: cpu_lim,
            memory_request_bytes: mem_req,
            memory_limit_bytes: mem_lim,
        }
    }

    #[test]
    fn qos_classes() {
        let none = req(None, None, None, None);
        let full = req(Some(500), Some(500), Some(1 << 20), Some(1 << 20));
        let limits_only = req(None, Some(500), None, Some(1 << 20));
        let partial = req(Some(100), None, None, None);
        let unequal = req(Some(100), Some(500), Some(1 << 20), Some(1 << 20));
        let cases: &[(&str, &[ResourceRequirements], QosClass)] = &[
            ("nothing set", &[none], QosClass::BestEffort),
            ("no containers", &[], QosClass::BestEffort),
            ("requests equal limits", &[full], QosClass::Guaranteed),
            ("limits only", &[limits_only], QosClass::Guaranteed),
            ("one request", &[partial], QosClass::Burstable),
            ("request below limit", &[unequal], QosClass::Burstable),
            (
                "one best-effort container among guaranteed",
                &[full, none],
                QosClass::Burstable,
            ),
        ];
        for (name, containers, want) in cases {
            assert_eq!(QosClass::of(containers.iter()), *want, "{name}");
        }
    }

    #[test]
    fn kubelet_conversions() {
        let cases: &[(Option<u64>, u64, Option<i64>)] = &[
            (None, 2, None),
            (Some(0), 2, None),
            (Some(1), 2, Some(1000)),
            (Some(100), 102, Some(10_000)),
            (Some(250), 256, Some(25_000)),
            (Some(1000), 1024, Some(100_000)),
            (Some(2500), 2560, Some(250_000)),
            (Some(1_000_000), MAX_CPU_SHARES, Some(100_000_000)),
        ];
        for &(millis, shares, quota) in cases {
            assert_eq!(cpu_shares(millis), shares, "shares of {millis:?}");
            assert_eq!(
                cpu_quota(millis, DEFAULT_CPU_PERIOD),
                quota,
                "quota of {millis:?}"
            );
        }
    }

    #[test]
    fn oom_score_adj_by_class() {
        let gib = 1u64 << 30;
        assert_eq!(QosClass::Guaranteed.oom_score_adj(gib, 16 * gib), -997);
        assert_eq!(QosClass::BestEffort.oom_score_adj(0, 16 * gib), 1000);
        assert_eq!(QosClass::Burstable.oom_score_adj(0, 16 * gib), 999);
        assert_eq!(QosClass::Burstable.oom_score_adj(8 * gib, 16 * gib), 500);
        assert_eq!(QosClass::Burstable.oom_score_adj(16 * gib, 16 * gib), 2);
    }

    #[test]
    fn container_and_pod_resources() {
        let a = req(Some(250), Some(500), Some(64 << 20), Some(128 << 20));
        let b = req(Some(250), Some(500), Some(64 << 20), Some(128 << 20));
        let init = InitContainer {
            resources: req(Some(1000), Some(2000), None, Some(512 << 20)),
            restartable: false,
        };
        let r = a.container_resources();
        assert_eq!(r.cpu_shares, Some(256));
        assert_eq!(r.cpu_quota, Some(50_000));
        assert_eq!(r.cpu_period, Some(DEFAULT_CPU_PERIOD));
        assert_eq!(r.memory_limit, Some(128 << 20));

        let pod = pod_resources(&[a, b], &[], Some(1024));
        assert_eq!(pod.cpu_shares, Some(512));
        assert_eq!(pod.cpu_quota, Some(100_000));
        assert_eq!(pod.memory_limit, Some(256 << 20));
        assert_eq!(pod.pids_limit, Some(1024));

        // The init container needs more than the app containers together.
        let pod = pod_resources(&[a, b], &[init], None);
        assert_eq!(pod.cpu_shares, Some(1024));
        assert_eq!(pod.cpu_quota, Some(200_000));
        assert_eq!(pod.memory_limit, Some(512 << 20));

        // One container without limits: no pod quota or memory limit.
        let open = req(Some(100), None, None, None);
        let pod = pod_resources(&[a, open], &[], None);
        assert_eq!(pod.cpu_shares, Some(358));
        assert_eq!(pod.cpu_quota, None);
        assert_eq!(pod.memory_limit, None);

        let pod = pod_resources(&[req(None, None, None, None)], &[], Some(10));
        assert_eq!(
            pod,
            Resources {
                cpu_shares: Some(2),
                pids_limit: Some(10),
                ..Default::default()
            }
        );
    }

    #[test]
    fn sidecars_add_to_everything_after_them() {
        let app = req(Some(500), Some(500), Some(100 << 20), Some(100 << 20));
        let sidecar = InitContainer {
            resources: req(Some(200), Some(200), Some(50 << 20), Some(50 << 20)),
            restartable: true,
        };
        let setup = InitContainer {
            resources: req(Some(600), Some(600), Some(300 << 20), Some(300 << 20)),
            restartable: false,
        };
        // sidecar, then setup (next to the sidecar: 800m / 350Mi), then the app next to the
        // sidecar (700m / 150Mi): the init phase is the peak.
        let pod = pod_resources(&[app], &[sidecar, setup], None);
        assert_eq!(pod.cpu_quota, Some(80_000));
        assert_eq!(pod.memory_limit, Some(350 << 20));
        assert_eq!(pod.cpu_shares, Some(cpu_shares(Some(800))));
        // setup first (alone: 600m / 300Mi), then the sidecar with the app: 700m / 150Mi.
        let pod = pod_resources(&[app], &[setup, sidecar], None);
        assert_eq!(pod.cpu_quota, Some(70_000));
        assert_eq!(pod.memory_limit, Some(300 << 20));
    }
}
