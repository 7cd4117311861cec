//! The `pods/eviction` subresource: a pod is deleted unless that would take the
//! PodDisruptionBudget covering it below its minimum, in which case the caller gets 429
//! TooManyRequests with a `DisruptionBudget` cause and retries (as `kubectl drain` does).
//! Granting an eviction decrements the budget's `disruptionsAllowed` and records the pod in
//! `disruptedPods` in one conditional write, so two concurrent evictions cannot both spend the
//! last allowed disruption.

use maestro_api::selector::LabelSelector;
use maestro_api::{ApiError, Cause, resources};
use serde_json::{Value, json};

use crate::registry::{DeleteOptions, Registry, Resource, WriteOptions};

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn violation(budget: &Value) -> ApiError {
    let name = budget["metadata"]["name"].as_str().unwrap_or_default();
    let mut err = ApiError::new(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
    );
    err.causes.push(Cause::new(
        "DisruptionBudget",
        "",
        format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently",
            budget["status"]["desiredHealthy"].as_i64().unwrap_or(0),
            budget["status"]["currentHealthy"].as_i64().unwrap_or(0)
        ),
    ));
    err
}

/// Evict a pod: check and spend its disruption budget, then delete it with `opts`.
pub async fn evict(
    registry: &Registry,
    pods: &Resource,
    namespace: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(), ApiError> {
    let pod = registry.get(pods, Some(namespace), name).await?;
    let finished_or_pending = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed" | "Pending") | None
    );
    // Pods already going, finished or not started yet cost no availability.
    if pod.pointer("/metadata/deletionTimestamp").is_none() && !finished_or_pending {
        spend_budget(registry, namespace, &pod, opts.dry_run).await?;
    }
    registry.delete(pods, Some(namespace), name, opts).await?;
    Ok(())
}

async fn spend_budget(
    registry: &Registry,
    namespace: &str,
    pod: &Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    let budgets_res = Resource::builtin(
        resources::find_builtin("policy", "v1", "poddisruptionbudgets").expect("built in"),
    );
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    let (all, _) = registry
        .cache()
        .list(&budgets_res.info.namespace_prefix(Some(namespace)));
    let covering: Vec<Value> = all
        .iter()
        .map(|b| b.value())
        .filter(|b| {
            LabelSelector::from_object(&b["spec"]["selector"]).is_ok_and(|s| s.matches(labels))
        })
        .collect();
    let budget = match covering.as_slice() {
        [] => return Ok(()),
        [one] => one,
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let budget_name = budget["metadata"]["name"].as_str().unwrap_or_default();
    let pod_name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pod_ready = is_ready(pod);
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let result = registry
        .read_modify_write(
            &budgets_res,
            Some(namespace),
            budget_name,
            None,
            &WriteOptions {
                dry_run,
                ..Default::default()
            },
            |current| {
                let generation = current["metadata"]["generation"].as_i64().unwrap_or(0);
                let observed = current["status"]["observedGeneration"]
                    .as_i64()
                    .unwrap_or(0);
                if observed < generation {
                    let mut err = violation(current);
                    err.causes[0].message = format!(
                        "The disruption budget {} is still being processed by the server.",
                        current["metadata"]["name"].as_str().unwrap_or_default()
                    );
                    return Err(err);
                }
                let healthy = current["status"]["currentHealthy"].as_i64().unwrap_or(0);
                let desired = current["status"]["desiredHealthy"].as_i64().unwrap_or(0);
                // An unready pod costs nothing while the budget is met (IfHealthyBudget).
                if !pod_ready && healthy >= desired {
                    return Ok(current.clone());
                }
                let allowed = current["status"]["disruptionsAllowed"]
                    .as_i64()
                    .unwrap_or(0);
                if allowed <= 0 {
                    return Err(violation(current));
                }
                let mut next = current.clone();
                next["status"]["disruptionsAllowed"] = json!(allowed - 1);
                if !next["status"]["disruptedPods"].is_object() {
                    next["status"]["disruptedPods"] = json!({});
                }
                next["status"]["disruptedPods"][&pod_name] = json!(now);
                Ok(next)
            },
            Some("status"),
        )
        .await;
    match result {
        Ok(_) => Ok(()),
        // The budget went away meanwhile: nothing protects the pod any more.
        Err(err) if err.code == 404 => Ok(()),
        Err(err) => Err(err),
    }
}
