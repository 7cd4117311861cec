//! nftables tables owned by maestro: each held as data ([`ruleset::Ruleset`]) and applied with
//! `nft -f -`, one transaction per change — the whole table the first time (and after a failure
//! or [`NftTable::forget_applied`]), only the difference afterwards. The service proxy and the
//! network policy enforcer each own one table.

pub mod ruleset;

use std::process::Command;
use std::time::{Duration, Instant};

use crate::pod_network::{NetError, run_command};
use ruleset::Ruleset;

/// What one [`NftTable::sync`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Nothing changed: no script ran.
    pub unchanged: bool,
    /// The whole table was written (first sync, a structural change, or after a failure).
    pub full: bool,
    /// Lines of the script applied.
    pub lines: usize,
    pub elapsed: Duration,
}

/// A table name nft accepts and that cannot smuggle syntax into a script.
pub fn check_table_name(name: &str) -> Result<(), NetError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(NetError::InvalidConfig(format!(
            "nftables table name {name:?}: expected 1 to 64 of [A-Za-z0-9_-]"
        )))
    }
}

/// One `ip` table and what the kernel holds of it, as far as we know.
#[derive(Debug)]
pub struct NftTable {
    name: String,
    applied: Option<Ruleset>,
}

impl NftTable {
    pub fn new(name: impl Into<String>) -> Self {
        NftTable {
            name: name.into(),
            applied: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Make the next sync rewrite the whole table.
    pub fn forget_applied(&mut self) {
        self.applied = None;
    }

    /// Make the kernel's table match `desired` (whose table name must be this one's).
    pub fn sync(&mut self, desired: Ruleset) -> Result<SyncOutcome, NetError> {
        let started = Instant::now();
        debug_assert_eq!(desired.table, self.name);
        let diff = self
            .applied
            .as_ref()
            .and_then(|applied| desired.diff_script(applied));
        let (script, full) = match diff {
            Some(script) if script.is_empty() => {
                return Ok(SyncOutcome {
                    unchanged: true,
                    full: false,
                    lines: 0,
                    elapsed: started.elapsed(),
                });
            }
            Some(script) => (script, false),
            None => (desired.full_script(), true),
        };
        // Whatever happens, the kernel's state is unknown until a write succeeds.
        self.applied = None;
        let result = apply(&script);
        if result.is_err() && !full {
            // A diff against a table someone else changed can fail: rewrite it whole.
            tracing::warn!(table = %self.name, "incremental nftables update failed; rewriting the table");
            apply(&desired.full_script())?;
        } else {
            result?;
        }
        self.applied = Some(desired);
        Ok(SyncOutcome {
            unchanged: false,
            full,
            lines: script.lines().count(),
            elapsed: started.elapsed(),
        })
    }

    /// Delete the table `name` if it exists.
    pub fn remove(name: &str) -> Result<(), NetError> {
        check_table_name(name)?;
        apply(&format!("add table ip {name}\ndelete table ip {name}\n"))
    }
}

fn apply(script: &str) -> Result<(), NetError> {
    run_command(Command::new("nft").args(["-f", "-"]), Some(script)).map(drop)
}
