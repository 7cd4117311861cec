//! Image garbage collection with the kubelet's semantics: when the image filesystem is more
//! than `imageGCHighThresholdPercent` full, delete unused images, least recently used first,
//! until usage would be back at `imageGCLowThresholdPercent`.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::time::Duration;

use super::error::IoContext;
use super::store::{lock, now};
use super::{Digest, ImageStore, Result};

/// The thresholds (kubelet defaults: 85, 80, 2 minutes).
#[derive(Clone, Debug)]
pub struct GcPolicy {
    pub high_threshold_percent: u8,
    pub low_threshold_percent: u8,
    /// Images pulled more recently than this are kept (`imageMinimumGCAge`).
    pub min_age: Duration,
}

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

/// Size and free space of the filesystem holding the store, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskUsage {
    pub capacity: u64,
    pub available: u64,
}

/// What a collection did.
#[derive(Clone, Debug, Default)]
pub struct GcReport {
    /// Manifest digests of the removed images.
    pub removed: Vec<Digest>,
    /// Bytes of blobs and layers deleted.
    pub freed: u64,
}

impl ImageStore {
    /// The filesystem usage of the store's root (`statvfs`).
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let s = rustix::fs::statvfs(self.root())
            .map_err(io::Error::from)
            .ctx("statvfs", self.root())?;
        Ok(DiskUsage {
            capacity: s.f_blocks * s.f_frsize,
            available: s.f_bavail * s.f_frsize,
        })
    }

    /// Collects images if `usage` is above the high threshold. `in_use` holds the images that
    /// pods on the node reference (manifest or config digests); images with a snapshot are in
    /// use too. Content that no image references any more is always swept.
    pub fn gc(
        &self,
        policy: &GcPolicy,
        usage: DiskUsage,
        in_use: &HashSet<Digest>,
    ) -> Result<GcReport> {
        let mut report = GcReport::default();
        let percent_used = usage
            .available
            .saturating_mul(100)
            .checked_div(usage.capacity)
            .map_or(0, |free| 100u64.saturating_sub(free));
        if percent_used >= u64::from(policy.high_threshold_percent) {
            let target_available =
                usage.capacity * (100 - u64::from(policy.low_threshold_percent.min(100))) / 100;
            let to_free = target_available.saturating_sub(usage.available);
            tracing::info!(percent_used, to_free, "image garbage collection");
            self.collect(policy, in_use, to_free, &mut report)?;
        }
        report.freed += self.sweep()?;
        Ok(report)
    }

    fn collect(
        &self,
        policy: &GcPolicy,
        in_use: &HashSet<Digest>,
        to_free: u64,
        report: &mut GcReport,
    ) -> Result<()> {
        let mut index = lock(&self.inner.index);
        let in_snapshot: HashSet<Digest> = self
            .snapshot_ids()?
            .into_iter()
            .filter_map(|id| self.snapshot(&id).ok().flatten().map(|s| s.image))
            .collect();
        let young = now().saturating_sub(policy.min_age.as_millis() as u64);
        let mut candidates: Vec<(u64, u64, Digest)> = index
            .images
            .iter()
            .filter(|(d, e)| {
                !in_use.contains(*d)
                    && !in_use.contains(&e.config)
                    && !in_snapshot.contains(*d)
                    && e.created <= young
            })
            .map(|(d, e)| (e.last_used, e.created, d.clone()))
            .collect();
        candidates.sort();

        // How many images use each layer: removing an image frees only the layers it alone has.
        let mut layer_users: BTreeMap<Digest, usize> = BTreeMap::new();
        for e in index.images.values() {
            for l in &e.layers {
                *layer_users.entry(l.clone()).or_default() += 1;
            }
        }
        let mut estimate = 0u64;
        for (_, _, digest) in candidates {
            if estimate >= to_free {
                break;
            }
            let Some(entry) = index.images.remove(&digest) else {
                continue;
            };
            let config_shared = index.images.values().any(|e| e.config == entry.config);
            for blob in [Some(&digest), (!config_shared).then_some(&entry.config)]
                .into_iter()
                .flatten()
            {
                estimate += std::fs::metadata(self.blob_path(blob))
                    .map(|m| m.len())
                    .unwrap_or(0);
            }
            for l in &entry.layers {
                let users = layer_users.get_mut(l).expect("counted above");
                *users -= 1;
                if *users == 0 {
                    estimate += std::fs::read_to_string(self.layer_dir(l).join("size"))
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
            index.refs.retain(|_, d| *d != digest);
            tracing::info!(image = %digest, "removing unused image");
            report.removed.push(digest);
        }
        if !report.removed.is_empty() {
            self.save_index(&index)?;
        }
        Ok(())
    }
}
