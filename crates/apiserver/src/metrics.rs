//! Prometheus metrics of the API server: request counts and latency histograms by verb,
//! resource and code, open watches, and store size and object counts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;

/// Histogram bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0,
];

#[derive(Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Request metrics, keyed by (verb, resource, code).
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Values read at scrape time from elsewhere in the server.
#[derive(Debug, Default)]
pub struct Gauges {
    pub open_watches: i64,
    pub store_size_bytes: u64,
    pub objects: BTreeMap<String, usize>,
    pub revision: i64,
    pub pods_bound: u64,
}

impl Metrics {
    pub fn observe(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.requests.lock();
        let series = map
            .entry((verb.to_string(), resource.to_string(), code))
            .or_default();
        series.count += 1;
        series.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                series.buckets[i] += 1;
            }
        }
    }

    /// The text exposition format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let map = self.requests.lock().clone();
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Requests by verb, resource and HTTP code.\n# TYPE apiserver_request_total counter\n");
        for ((verb, resource, code), s) in &map {
            let _ = writeln!(
                out,
                "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP apiserver_request_duration_seconds Request latency by verb and resource.\n# TYPE apiserver_request_duration_seconds histogram\n");
        let mut by_verb: BTreeMap<(String, String), Series> = BTreeMap::new();
        for ((verb, resource, _), s) in &map {
            let agg = by_verb.entry((verb.clone(), resource.clone())).or_default();
            agg.count += s.count;
            agg.sum += s.sum;
            for i in 0..BUCKETS.len() {
                agg.buckets[i] += s.buckets[i];
            }
        }
        for ((verb, resource), s) in &by_verb {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",resource=\"{resource}\",le=\"{bound}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",resource=\"{resource}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_sum{{verb=\"{verb}\",resource=\"{resource}\"}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_count{{verb=\"{verb}\",resource=\"{resource}\"}} {}",
                s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP apiserver_registered_watchers Open watch requests.\n# TYPE apiserver_registered_watchers gauge\napiserver_registered_watchers {}",
            gauges.open_watches
        );
        let _ = writeln!(
            out,
            "# HELP apiserver_storage_size_bytes Size of the store on disk.\n# TYPE apiserver_storage_size_bytes gauge\napiserver_storage_size_bytes {}",
            gauges.store_size_bytes
        );
        let _ = writeln!(
            out,
            "# HELP maestro_store_revision Current store revision.\n# TYPE maestro_store_revision gauge\nmaestro_store_revision {}",
            gauges.revision
        );
        let _ = writeln!(
            out,
            "# HELP scheduler_pods_bound_total Pods the scheduler bound to nodes since the server started.\n# TYPE scheduler_pods_bound_total counter\nscheduler_pods_bound_total {}",
            gauges.pods_bound
        );
        out.push_str("# HELP apiserver_storage_objects Objects stored per resource.\n# TYPE apiserver_storage_objects gauge\n");
        for (resource, count) in &gauges.objects {
            let _ = writeln!(
                out,
                "apiserver_storage_objects{{resource=\"{resource}\"}} {count}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_histograms() {
        let m = Metrics::default();
        m.observe("GET", "pods", 200, Duration::from_millis(2));
        m.observe("GET", "pods", 200, Duration::from_millis(200));
        m.observe("GET", "pods", 404, Duration::from_millis(1));
        let text = m.render(&Gauges {
            open_watches: 3,
            ..Default::default()
        });
        assert!(
            text.contains("apiserver_request_total{verb=\"GET\",resource=\"pods\",code=\"200\"} 2")
        );
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"GET\",resource=\"pods\",le=\"0.005\"} 2"));
        assert!(text.contains(
            "apiserver_request_duration_seconds_count{verb=\"GET\",resource=\"pods\"} 3"
        ));
        assert!(text.contains("apiserver_registered_watchers 3"));
    }
}
