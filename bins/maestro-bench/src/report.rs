//! What a run measured, for each system, and the markdown it prints: one table for the store
//! operations (maestro and etcd side by side, with the targets and a verdict), one for
//! memory, and the machine they ran on.

use std::fmt::Write as _;
use std::time::Duration;

use crate::machine::Machine;
use crate::procs::CpuUse;
use crate::stats::{Samples, Throughput};

/// Targets from the issue.
const CREATES_PER_SECOND: f64 = 3000.0;
const GET_P99_IDLE_MS: f64 = 1.0;
const GET_P99_LOADED_MS: f64 = 5.0;
const FANOUT_MAX_MS: f64 = 100.0;
const RSS_IDLE_MIB: f64 = 37.0;
const RSS_OPENAPI_MIB: f64 = 50.0;

/// Full-range reads of the stored pods.
#[derive(Debug, Clone)]
pub struct ListStat {
    pub runs: Samples,
    pub bytes: usize,
}

/// One watched object updated `rounds` times, each update seen by every watcher.
#[derive(Debug, Clone)]
pub struct Fanout {
    pub watchers: usize,
    pub rounds: usize,
    /// From the writer reading the update's acknowledgement to a watcher reading the event.
    pub from_ack: Samples,
    /// From the writer sending the update to a watcher reading the event.
    pub from_send: Samples,
    /// Worst delivery of each round, from the acknowledgement.
    pub round_max: Vec<f64>,
    /// Time to open all watches.
    pub setup: Duration,
}

/// Where a memory reading was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Idle,
    AfterApply,
    PodsCreated,
    AfterJsonLists,
    AfterLists,
    End,
}

#[derive(Debug, Clone)]
pub struct Results {
    pub system: String,
    pub get_idle: Samples,
    pub pods: Throughput,
    pub list_json: ListStat,
    /// Only maestro serves Tables.
    pub list_table: Option<ListStat>,
    pub creates: Throughput,
    /// CPU used while the creates ran.
    pub creates_cpu: CpuUse,
    pub get_loaded: Samples,
    /// maestro only: GET /version beside the GETs, a round trip that reads no object.
    pub version_loaded: Option<Samples>,
    pub fanout: Fanout,
    pub rss_kib: Vec<(Point, u64)>,
    /// Object counts and sizes worth printing next to the figures.
    pub notes: Vec<String>,
}

impl Results {
    fn rss_mib(&self, point: Point) -> Option<f64> {
        self.rss_kib
            .iter()
            .find(|(p, _)| *p == point)
            .map(|(_, kib)| *kib as f64 / 1024.0)
    }
}

/// The sizes and counts of one run, echoed in the headings.
#[derive(Debug, Clone)]
pub struct Shape {
    pub clients: usize,
    pub creates: usize,
    pub configmap_bytes: usize,
    pub pods: usize,
    pub pod_bytes_sent: usize,
    pub pod_bytes_stored: usize,
    pub watchers: usize,
}

/// 20000 → "20,000".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn per_second(rate: f64) -> String {
    format!("{}/s", thousands(rate.round() as usize))
}

fn ms(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn pair(s: &Samples) -> String {
    format!("{} / {}", ms(s.p50()), ms(s.p99()))
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

/// The whole report in markdown.
pub fn render(
    machine: &Machine,
    shape: &Shape,
    maestro: &Results,
    etcd: Option<&Results>,
    elapsed: Duration,
) -> String {
    let mut out = String::new();
    let etcd_name = etcd.map_or("etcd (not run)".to_string(), |e| e.system.clone());
    let other = |f: &dyn Fn(&Results) -> String| etcd.map_or("–".to_string(), f);

    let _ = writeln!(out, "## Store operations\n");
    let _ = writeln!(
        out,
        "| measurement | {} | {} | target | verdict (maestro) |",
        maestro.system, etcd_name
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    let rate = maestro.creates.per_second();
    let _ = writeln!(
        out,
        "| durable creates/s, {} clients, {} ConfigMaps of {} B | {} | {} | ≥ {} | {} |",
        shape.clients,
        thousands(shape.creates),
        shape.configmap_bytes,
        per_second(rate),
        other(&|e| per_second(e.creates.per_second())),
        per_second(CREATES_PER_SECOND),
        verdict(rate >= CREATES_PER_SECOND)
    );
    let _ = writeln!(
        out,
        "| create latency p50 / p99 (same load) | {} | {} | | |",
        pair(&maestro.creates.latency),
        other(&|e| pair(&e.creates.latency))
    );
    let cpu = |c: &CpuUse| format!("{:.2} / {:.2}", c.server, c.client);
    let _ = writeln!(
        out,
        "| cores used during the creates: server / benchmark client (of {}) | {} | {} | | |",
        machine.cores,
        cpu(&maestro.creates_cpu),
        other(&|e| cpu(&e.creates_cpu))
    );
    let _ = writeln!(
        out,
        "| pod creates/s, {} clients, {} pods (setup for LIST) | {} | {} | | |",
        shape.clients,
        thousands(shape.pods),
        per_second(maestro.pods.per_second()),
        other(&|e| per_second(e.pods.per_second()))
    );
    let idle = maestro.get_idle.p99();
    let _ = writeln!(
        out,
        "| GET p50 / p99, one client, no other load ({} GETs) | {} | {} | p99 < {GET_P99_IDLE_MS} ms | {} |",
        maestro.get_idle.len(),
        pair(&maestro.get_idle),
        other(&|e| pair(&e.get_idle)),
        verdict(idle < GET_P99_IDLE_MS)
    );
    let loaded = maestro.get_loaded.p99();
    let _ = writeln!(
        out,
        "| GET p50 / p99, one client, during the {}-client creates | {} | {} | p99 < {GET_P99_LOADED_MS} ms | {} |",
        shape.clients,
        pair(&maestro.get_loaded),
        other(&|e| pair(&e.get_loaded)),
        verdict(loaded < GET_P99_LOADED_MS)
    );
    if let Some(version) = &maestro.version_loaded {
        let _ = writeln!(
            out,
            "| GET /version (reads no object), one client, during the same creates | {} | – | | |",
            pair(version)
        );
    }
    let _ = writeln!(
        out,
        "| LIST {} pods, JSON, p50 of {} (response size) | {} ({}) | {} | – | |",
        thousands(shape.pods),
        maestro.list_json.runs.len(),
        ms(maestro.list_json.runs.p50()),
        mib(maestro.list_json.bytes),
        other(&|e| format!(
            "{} ({})",
            ms(e.list_json.runs.p50()),
            mib(e.list_json.bytes)
        ))
    );
    if let Some(table) = &maestro.list_table {
        let _ = writeln!(
            out,
            "| LIST {} pods, Table (kubectl get), p50 of {} (response size) | {} ({}) | – | – | |",
            thousands(shape.pods),
            table.runs.len(),
            ms(table.runs.p50()),
            mib(table.bytes)
        );
    }
    let f = &maestro.fanout;
    let fan = |f: &Fanout| {
        format!(
            "{} / {} / {}",
            ms(f.from_ack.p50()),
            ms(f.from_ack.p99()),
            ms(f.from_ack.max())
        )
    };
    let _ = writeln!(
        out,
        "| watch fan-out to {} watchers, p50 / p99 / max from the update's ack ({} updates) | {} | {} | all < {FANOUT_MAX_MS} ms | {} |",
        thousands(f.watchers),
        f.rounds,
        fan(f),
        other(&|e| fan(&e.fanout)),
        verdict(f.from_ack.max() < FANOUT_MAX_MS)
    );
    let _ = writeln!(
        out,
        "| same, from sending the update | {} / {} / {} | {} | | |",
        ms(f.from_send.p50()),
        ms(f.from_send.p99()),
        ms(f.from_send.max()),
        other(&|e| format!(
            "{} / {} / {}",
            ms(e.fanout.from_send.p50()),
            ms(e.fanout.from_send.p99()),
            ms(e.fanout.from_send.max())
        ))
    );
    let _ = writeln!(
        out,
        "| time to open {} watches | {} | {} | | |",
        thousands(f.watchers),
        ms(f.setup.as_secs_f64() * 1e3),
        other(&|e| ms(e.fanout.setup.as_secs_f64() * 1e3))
    );

    let _ = writeln!(out, "\n## Server memory (VmRSS)\n");
    let _ = writeln!(
        out,
        "| point | {} | {} | target | verdict (maestro) |",
        maestro.system, etcd_name
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    let rows = [
        (
            Point::Idle,
            "idle, right after ready".to_string(),
            Some(RSS_IDLE_MIB),
        ),
        (
            Point::AfterApply,
            "after a kubectl apply session (OpenAPI v3 served)".to_string(),
            Some(RSS_OPENAPI_MIB),
        ),
        (
            Point::PodsCreated,
            format!(
                "with {} pods stored, right after creating them",
                thousands(shape.pods)
            ),
            None,
        ),
        (
            Point::AfterJsonLists,
            format!(
                "with {} pods stored, after the JSON LISTs",
                thousands(shape.pods)
            ),
            None,
        ),
        (
            Point::AfterLists,
            format!(
                "with {} pods stored, after the Table LISTs too",
                thousands(shape.pods)
            ),
            None,
        ),
        (
            Point::End,
            format!(
                "end of run ({} pods + {} ConfigMaps, after {} watches)",
                thousands(shape.pods),
                thousands(shape.creates),
                thousands(shape.watchers)
            ),
            None,
        ),
    ];
    for (point, label, target) in rows {
        let Some(value) = maestro.rss_mib(point) else {
            continue;
        };
        let theirs = etcd
            .and_then(|e| e.rss_mib(point))
            .map_or("–".to_string(), |v| format!("{v:.1} MiB"));
        let (target, met) = match target {
            Some(t) => (format!("≤ {t:.0} MB"), verdict(value <= t).to_string()),
            None => ("–".to_string(), String::new()),
        };
        let _ = writeln!(
            out,
            "| {label} | {value:.1} MiB | {theirs} | {target} | {met} |"
        );
    }

    let _ = writeln!(out, "\n## Run\n");
    let _ = writeln!(
        out,
        "- payloads: ConfigMap {} B; pod {} B as sent, {} B as stored and served by maestro (etcd holds those bytes)",
        shape.configmap_bytes, shape.pod_bytes_sent, shape.pod_bytes_stored
    );
    for r in std::iter::once(maestro).chain(etcd) {
        for note in &r.notes {
            let _ = writeln!(out, "- {}: {note}", r.system);
        }
        let worst: Vec<String> = r.fanout.round_max.iter().map(|m| ms(*m)).collect();
        let _ = writeln!(
            out,
            "- {}: worst fan-out delivery per update: {}",
            r.system,
            worst.join(", ")
        );
    }
    let _ = writeln!(out, "- total run time: {:.0} s", elapsed.as_secs_f64());
    let _ = writeln!(out, "\n## Machine\n");
    out.push_str(&machine.markdown());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(20000), "20,000");
        assert_eq!(per_second(8066.4), "8,066/s");
    }
}
