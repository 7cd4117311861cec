//! An nftables table held as data: chains with their rules, sets and verdict maps with their
//! elements. [`Ruleset::full_script`] writes a script that replaces the whole table in one
//! transaction; [`Ruleset::diff_script`] writes the smallest script that turns a table applied
//! earlier into this one (changed chains flushed and refilled, map elements added and removed,
//! chains nothing refers to any more deleted), also one transaction. Changing only what changed
//! keeps the kernel's work proportional to the change: replacing a table of 11,000 chains takes
//! over a second, and would also reset the session-affinity sets.

use std::collections::BTreeMap;
use std::fmt::Write;

/// A chain: a base chain has a hook line (`type nat hook prerouting priority dstnat; policy
/// accept;`), a regular chain none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    pub hook: Option<String>,
    pub rules: Vec<String>,
}

/// A verdict map: its declaration (`type ... : verdict;`) and elements, key → verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Map {
    pub declaration: String,
    pub elements: BTreeMap<String, String>,
}

/// One `ip` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
    pub chains: BTreeMap<String, Chain>,
    /// Set name → declaration (`type ipv4_addr; flags dynamic,timeout; timeout 10800s;`).
    pub sets: BTreeMap<String, String>,
    pub maps: BTreeMap<String, Map>,
}

impl Ruleset {
    pub fn new(table: impl Into<String>) -> Self {
        Ruleset {
            table: table.into(),
            chains: BTreeMap::new(),
            sets: BTreeMap::new(),
            maps: BTreeMap::new(),
        }
    }

    /// A script that creates the table, or replaces it if it exists, atomically (`add` first
    /// so that `delete` cannot fail on a missing table).
    pub fn full_script(&self) -> String {
        let t = &self.table;
        let mut out = format!("add table ip {t}\ndelete table ip {t}\ntable ip {t} {{\n");
        for (name, declaration) in &self.sets {
            let _ = writeln!(out, "  set {name} {{ {declaration} }}");
        }
        for (name, map) in &self.maps {
            let _ = write!(out, "  map {name} {{ {}", map.declaration);
            if !map.elements.is_empty() {
                out.push_str(" elements = { ");
                let elements: Vec<String> = map
                    .elements
                    .iter()
                    .map(|(k, v)| format!("{k} : {v}"))
                    .collect();
                out.push_str(&elements.join(", "));
                out.push_str(" };");
            }
            out.push_str(" }\n");
        }
        // Chains are declared empty first, so that a rule may jump to a chain written later.
        for (name, chain) in &self.chains {
            match &chain.hook {
                Some(hook) => writeln!(out, "  chain {name} {{ {hook} }}"),
                None => writeln!(out, "  chain {name} {{ }}"),
            }
            .expect("writing to a String");
        }
        out.push_str("}\n");
        for (name, chain) in &self.chains {
            for rule in &chain.rules {
                let _ = writeln!(out, "add rule ip {t} {name} {rule}");
            }
        }
        out
    }

    /// The script that turns `applied` (what the kernel holds) into `self`, or `None` when the
    /// two differ in something only a full replacement changes (the table's name, a base
    /// chain's hook, a map's or set's declaration). An empty script means nothing changed.
    pub fn diff_script(&self, applied: &Ruleset) -> Option<String> {
        if self.table != applied.table {
            return None;
        }
        let hooks_differ = |a: &Ruleset, b: &Ruleset| {
            a.chains.iter().any(|(name, chain)| {
                chain.hook.is_some() && b.chains.get(name).map(|c| &c.hook) != Some(&chain.hook)
            })
        };
        if hooks_differ(self, applied) || hooks_differ(applied, self) {
            return None;
        }
        let declarations_differ = self.maps.iter().any(|(name, map)| {
            applied
                .maps
                .get(name)
                .is_some_and(|old| old.declaration != map.declaration)
        }) || self.sets.iter().any(|(name, declaration)| {
            applied.sets.get(name).is_some_and(|old| old != declaration)
        });
        if declarations_differ {
            return None;
        }
        let t = &self.table;
        let mut out = String::new();
        // 1. New sets, maps and chains, so that rules and elements below may refer to them.
        for (name, declaration) in &self.sets {
            if !applied.sets.contains_key(name) {
                let _ = writeln!(out, "add set ip {t} {name} {{ {declaration} }}");
            }
        }
        for (name, map) in &self.maps {
            if !applied.maps.contains_key(name) {
                let _ = writeln!(out, "add map ip {t} {name} {{ {} }}", map.declaration);
            }
        }
        for name in self.chains.keys() {
            if !applied.chains.contains_key(name) {
                let _ = writeln!(out, "add chain ip {t} {name}");
            }
        }
        // 2. Chains whose rules changed are flushed and refilled.
        for (name, chain) in &self.chains {
            let old = applied.chains.get(name);
            if old.map(|c| &c.rules) == Some(&chain.rules) {
                continue;
            }
            if old.is_some_and(|c| !c.rules.is_empty()) {
                let _ = writeln!(out, "flush chain ip {t} {name}");
            }
            for rule in &chain.rules {
                let _ = writeln!(out, "add rule ip {t} {name} {rule}");
            }
        }
        // 3. Map elements: removed and changed ones deleted, new and changed ones added.
        let empty = BTreeMap::new();
        for (name, map) in &self.maps {
            let old = applied.maps.get(name).map_or(&empty, |m| &m.elements);
            let stale: Vec<&String> = old
                .iter()
                .filter(|(k, v)| map.elements.get(*k) != Some(*v))
                .map(|(k, _)| k)
                .collect();
            if !stale.is_empty() {
                let keys: Vec<&str> = stale.iter().map(|k| k.as_str()).collect();
                let _ = writeln!(
                    out,
                    "delete element ip {t} {name} {{ {} }}",
                    keys.join(", ")
                );
            }
            let fresh: Vec<String> = map
                .elements
                .iter()
                .filter(|(k, v)| old.get(*k) != Some(*v))
                .map(|(k, v)| format!("{k} : {v}"))
                .collect();
            if !fresh.is_empty() {
                let _ = writeln!(out, "add element ip {t} {name} {{ {} }}", fresh.join(", "));
            }
        }
        // 4. What nothing refers to any more: chains first (their rules may use sets and maps).
        for name in applied.chains.keys() {
            if !self.chains.contains_key(name) {
                let _ = writeln!(out, "delete chain ip {t} {name}");
            }
        }
        for name in applied.maps.keys() {
            if !self.maps.contains_key(name) {
                let _ = writeln!(out, "delete map ip {t} {name}");
            }
        }
        for name in applied.sets.keys() {
            if !self.sets.contains_key(name) {
                let _ = writeln!(out, "delete set ip {t} {name}");
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Ruleset {
        let mut r = Ruleset::new("t");
        r.chains.insert(
            "pre".into(),
            Chain {
                hook: Some("type nat hook prerouting priority dstnat; policy accept;".into()),
                rules: vec!["ip daddr . meta l4proto . th dport vmap @ips".into()],
            },
        );
        r.chains.insert(
            "svc-a".into(),
            Chain {
                hook: None,
                rules: vec!["goto ep-1".into()],
            },
        );
        r.chains.insert(
            "ep-1".into(),
            Chain {
                hook: None,
                rules: vec!["dnat to 10.0.0.1:80".into()],
            },
        );
        r.maps.insert(
            "ips".into(),
            Map {
                declaration: "type ipv4_addr . inet_proto . inet_service : verdict;".into(),
                elements: [("1.2.3.4 . tcp . 80".into(), "goto svc-a".into())].into(),
            },
        );
        r
    }

    #[test]
    fn full_script_declares_chains_before_rules_refer_to_them() {
        let script = sample().full_script();
        let declared = script.find("chain svc-a { }").unwrap();
        let used = script.find("add rule ip t svc-a goto ep-1").unwrap();
        assert!(declared < used);
        assert!(script.starts_with("add table ip t\ndelete table ip t\n"));
        assert!(script.contains("elements = { 1.2.3.4 . tcp . 80 : goto svc-a };"));
        assert!(script.contains("  chain pre { type nat hook prerouting"));
    }

    #[test]
    fn diff_changes_only_what_changed() {
        let old = sample();
        assert_eq!(old.diff_script(&old).as_deref(), Some(""));

        // An endpoint added to the service: new chain, the service chain refilled.
        let mut new = old.clone();
        new.chains.insert(
            "ep-2".into(),
            Chain {
                hook: None,
                rules: vec!["dnat to 10.0.0.2:80".into()],
            },
        );
        new.chains.get_mut("svc-a").unwrap().rules =
            vec!["numgen random mod 2 vmap { 0 : goto ep-1, 1 : goto ep-2 }".into()];
        let script = new.diff_script(&old).unwrap();
        assert_eq!(
            script,
            "add chain ip t ep-2\n\
             add rule ip t ep-2 dnat to 10.0.0.2:80\n\
             flush chain ip t svc-a\n\
             add rule ip t svc-a numgen random mod 2 vmap { 0 : goto ep-1, 1 : goto ep-2 }\n"
        );

        // The service removed: its map element goes before its chains.
        let mut gone = old.clone();
        gone.chains.remove("svc-a");
        gone.chains.remove("ep-1");
        gone.maps.get_mut("ips").unwrap().elements.clear();
        let script = gone.diff_script(&old).unwrap();
        assert_eq!(
            script,
            "delete element ip t ips { 1.2.3.4 . tcp . 80 }\n\
             delete chain ip t ep-1\n\
             delete chain ip t svc-a\n"
        );

        // A changed hook needs a full replacement.
        let mut hooked = old.clone();
        hooked.chains.get_mut("pre").unwrap().hook = Some("type nat hook output".into());
        assert!(hooked.diff_script(&old).is_none());
    }
}
