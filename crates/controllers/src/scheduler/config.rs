//! Scheduler profiles from a KubeSchedulerConfiguration file
//! (`kubescheduler.config.k8s.io/v1`), the format kube-scheduler reads: `profiles` with a
//! `schedulerName`, `plugins` enabled or disabled per extension point (`preFilter`/`filter`,
//! `score` with weights, `postFilter` for preemption, `multiPoint`), `pluginConfig` for
//! NodeResourcesFit's `scoringStrategy` (LeastAllocated, MostAllocated,
//! RequestedToCapacityRatio with its shape and resource weights), and
//! `percentageOfNodesToScore`. Without a file there is one profile, `default-scheduler`, with
//! kube-scheduler's default plugins.

use std::sync::Arc;

use serde_json::Value;

use super::framework::{Plugin, Profile};
use super::plugins::node_resources::{NodeResourcesFit, Strategy};
use super::plugins::{DEFAULT_FILTERS, DEFAULT_SCORERS, by_name};

/// Why a scheduler configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing the scheduler configuration: {0}")]
    Parse(String),
    #[error("{0}")]
    Invalid(String),
}

/// The profile every cluster has when no configuration says otherwise.
pub fn default_profiles() -> Vec<Profile> {
    vec![
        build_profile(
            &serde_json::json!({"schedulerName": "default-scheduler"}),
            0,
        )
        .expect("defaults are valid"),
    ]
}

/// Profiles from a configuration file's text (YAML or JSON).
pub fn parse(text: &str) -> Result<Vec<Profile>, ConfigError> {
    let config: Value =
        serde_yaml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
    match config["kind"].as_str() {
        Some("KubeSchedulerConfiguration") => {}
        other => {
            return Err(ConfigError::Invalid(format!(
                "kind must be KubeSchedulerConfiguration, not {other:?}"
            )));
        }
    }
    let percentage = config["percentageOfNodesToScore"].as_u64().unwrap_or(0) as u32;
    let profiles: Vec<Value> = match config["profiles"].as_array() {
        Some(list) if !list.is_empty() => list.clone(),
        _ => vec![serde_json::json!({})],
    };
    let mut built = Vec::new();
    for profile in &profiles {
        let profile = build_profile(profile, percentage)?;
        if built
            .iter()
            .any(|p: &Profile| p.scheduler_name == profile.scheduler_name)
        {
            return Err(ConfigError::Invalid(format!(
                "duplicate profile with scheduler name {:?}",
                profile.scheduler_name
            )));
        }
        built.push(profile);
    }
    Ok(built)
}

/// Read profiles from a file.
pub fn load(path: &std::path::Path) -> Result<Vec<Profile>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text)
}

fn names(point: &Value, list: &str) -> Vec<(String, Option<i64>)> {
    point[list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["weight"].as_i64())))
                .collect()
        })
        .unwrap_or_default()
}

fn fit_args(profile: &Value) -> Result<NodeResourcesFit, ConfigError> {
    let mut fit = NodeResourcesFit::default();
    let Some(args) = profile["pluginConfig"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["name"] == "NodeResourcesFit"))
        .map(|c| &c["args"]["scoringStrategy"])
    else {
        return Ok(fit);
    };
    if let Some(resources) = args["resources"].as_array() {
        fit.resources = resources
            .iter()
            .filter_map(|r| {
                Some((
                    r["name"].as_str()?.to_string(),
                    r["weight"].as_i64().unwrap_or(1),
                ))
            })
            .collect();
    }
    fit.strategy = match args["type"].as_str().unwrap_or("LeastAllocated") {
        "LeastAllocated" => Strategy::LeastAllocated,
        "MostAllocated" => Strategy::MostAllocated,
        "RequestedToCapacityRatio" => {
            let shape: Vec<(i64, i64)> = args["requestedToCapacityRatio"]["shape"]
                .as_array()
                .map(|points| {
                    points
                        .iter()
                        .filter_map(|p| Some((p["utilization"].as_i64()?, p["score"].as_i64()?)))
                        .collect()
                })
                .unwrap_or_default();
            if shape.is_empty()
                || shape.windows(2).any(|w| w[1].0 <= w[0].0)
                || shape
                    .iter()
                    .any(|(u, s)| !(0..=100).contains(u) || !(0..=10).contains(s))
            {
                return Err(ConfigError::Invalid(
                    "requestedToCapacityRatio.shape needs points with increasing utilization (0-100) and scores 0-10".into(),
                ));
            }
            Strategy::RequestedToCapacityRatio(shape)
        }
        other => {
            return Err(ConfigError::Invalid(format!(
                "unknown NodeResourcesFit scoring strategy {other:?}"
            )));
        }
    };
    Ok(fit)
}

fn build_profile(profile: &Value, percentage: u32) -> Result<Profile, ConfigError> {
    let scheduler_name = profile["schedulerName"]
        .as_str()
        .unwrap_or("default-scheduler")
        .to_string();
    let fit = fit_args(profile)?;
    let plugins = &profile["plugins"];
    let plugin = |name: &str| -> Result<Arc<dyn Plugin>, ConfigError> {
        by_name(name, &fit).ok_or_else(|| ConfigError::Invalid(format!("unknown plugin {name:?}")))
    };
    let disabled = |point: &str| -> Vec<String> {
        let mut all: Vec<String> = names(&plugins[point], "disabled")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        all.extend(
            names(&plugins["multiPoint"], "disabled")
                .into_iter()
                .map(|(n, _)| n),
        );
        all
    };
    let enabled = |points: &[&str]| -> Vec<(String, Option<i64>)> {
        let mut all = names(&plugins["multiPoint"], "enabled");
        for point in points {
            all.extend(names(&plugins[*point], "enabled"));
        }
        all
    };

    let filter_off = [disabled("filter"), disabled("preFilter")].concat();
    let mut filter_names: Vec<String> = if filter_off.iter().any(|n| n == "*") {
        Vec::new()
    } else {
        DEFAULT_FILTERS
            .iter()
            .filter(|n| !filter_off.iter().any(|d| d == *n))
            .map(|n| n.to_string())
            .collect()
    };
    for (name, _) in enabled(&["filter", "preFilter"]) {
        if !filter_names.contains(&name) && DEFAULT_FILTERS.contains(&name.as_str()) {
            filter_names.push(name);
        }
    }
    let score_off = disabled("score");
    let mut scorer_names: Vec<(String, i64)> = if score_off.iter().any(|n| n == "*") {
        Vec::new()
    } else {
        DEFAULT_SCORERS
            .iter()
            .filter(|(n, _)| !score_off.iter().any(|d| d == n))
            .map(|(n, w)| (n.to_string(), *w))
            .collect()
    };
    for (name, weight) in enabled(&["score"]) {
        let default_weight = DEFAULT_SCORERS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(1, |(_, w)| *w);
        let weight = weight.unwrap_or(default_weight);
        if weight <= 0 {
            return Err(ConfigError::Invalid(format!(
                "score plugin {name:?} needs a positive weight"
            )));
        }
        match scorer_names.iter_mut().find(|(n, _)| *n == name) {
            Some(existing) => existing.1 = weight,
            None if DEFAULT_SCORERS.iter().any(|(n, _)| *n == name) => {
                scorer_names.push((name, weight))
            }
            None => {
                return Err(ConfigError::Invalid(format!(
                    "{name:?} has no score extension point"
                )));
            }
        }
    }
    let post_filter_off = disabled("postFilter");
    Ok(Profile {
        scheduler_name,
        filters: filter_names
            .iter()
            .map(|n| plugin(n))
            .collect::<Result<_, _>>()?,
        scorers: scorer_names
            .iter()
            .map(|(n, w)| Ok((plugin(n)?, *w)))
            .collect::<Result<_, ConfigError>>()?,
        percentage_of_nodes_to_score: profile["percentageOfNodesToScore"]
            .as_u64()
            .map_or(percentage, |p| p as u32),
        preemption: !post_filter_off
            .iter()
            .any(|n| n == "*" || n == "DefaultPreemption"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_has_kube_schedulers_plugins() {
        let profiles = default_profiles();
        assert_eq!(profiles.len(), 1);
        assert_eq!(profiles[0].scheduler_name, "default-scheduler");
        assert_eq!(profiles[0].filters.len(), DEFAULT_FILTERS.len());
        assert_eq!(profiles[0].scorers.len(), DEFAULT_SCORERS.len());
        assert!(profiles[0].preemption);
    }

    #[test]
    fn profiles_enable_disable_and_configure_plugins() {
        let profiles = parse(
            r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 50
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packing
  plugins:
    score:
      disabled: [{name: NodeResourcesBalancedAllocation}]
      enabled: [{name: NodeResourcesFit, weight: 5}]
    postFilter:
      disabled: [{name: "*"}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources: [{name: cpu, weight: 2}, {name: memory, weight: 1}]
"#,
        )
        .unwrap();
        assert_eq!(profiles.len(), 2);
        let packing = &profiles[1];
        assert_eq!(packing.scheduler_name, "bin-packing");
        assert_eq!(packing.percentage_of_nodes_to_score, 50);
        assert!(!packing.preemption);
        let scorers: Vec<(&str, i64)> = packing
            .scorers
            .iter()
            .map(|(p, w)| (p.name(), *w))
            .collect();
        assert!(scorers.contains(&("NodeResourcesFit", 5)));
        assert!(
            !scorers
                .iter()
                .any(|(n, _)| *n == "NodeResourcesBalancedAllocation")
        );
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        for (text, wanted) in [
            ("kind: Other", "kind must be KubeSchedulerConfiguration"),
            (
                "kind: KubeSchedulerConfiguration\nprofiles: [{schedulerName: a}, {schedulerName: a}]",
                "duplicate profile",
            ),
            (
                "kind: KubeSchedulerConfiguration\nprofiles: [{plugins: {score: {enabled: [{name: Nope}]}}}]",
                "has no score extension point",
            ),
            (
                "kind: KubeSchedulerConfiguration\nprofiles: [{pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy: {type: Fancy}}}]}]",
                "unknown NodeResourcesFit scoring strategy",
            ),
            (
                "kind: KubeSchedulerConfiguration\nprofiles: [{pluginConfig: [{name: NodeResourcesFit, args: {scoringStrategy: {type: RequestedToCapacityRatio, requestedToCapacityRatio: {shape: [{utilization: 50, score: 1}, {utilization: 10, score: 2}]}}}}]}]",
                "increasing utilization",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(wanted), "{text}: {err}");
        }
    }
}
