//! The CronJob controller: creates a Job from `jobTemplate` at each time of `schedule`
//! (standard five-field cron, the `@hourly`-style descriptors, in `timeZone` or UTC), as
//! Kubernetes' CronJob controller does:
//!
//! - one Job per scheduled time, named `<cronjob>-<minutes since the epoch>`, so a time is
//!   never run twice; only the most recent missed time runs, and not once it is older than
//!   `startingDeadlineSeconds`;
//! - `concurrencyPolicy`: Allow, Forbid (skip while a Job runs) or Replace (delete the running
//!   Jobs first); `suspend` stops new runs;
//! - finished Jobs beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` are deleted,
//!   oldest first;
//! - status: `active` references, `lastScheduleTime`, `lastSuccessfulTime`.

use std::sync::Arc;
use std::time::Duration;

use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::{Propagation, Resource, WriteOptions};
use maestro_store::CacheEvent;
use serde_json::{Value, json};

use crate::events::{self, EventType, Involved};
use crate::objects::{controlled_by, controller_reference, deleting, resource};
use crate::queue::{self, Reconciler};

const COMPONENT: &str = "cronjob-controller";
const SCHEDULED_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// A parsed cron schedule: the allowed values of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    /// Both day fields restricted: a day matches either (cron's rule).
    either_day: bool,
}

fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<(Vec<bool>, bool), String> {
    let mut allowed = vec![false; max as usize + 1];
    let restricted = text != "*" && text != "?";
    let value = |v: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(min + i as u32);
        }
        v.parse::<u32>()
            .map_err(|_| format!("{v:?} is not a number"))
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{part:?} is out of range {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            allowed[v as usize] = true;
            v += step;
        }
    }
    Ok((allowed, restricted))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: {text:?}",
                fields.len()
            ));
        }
        const MONTHS: [&str; 12] = [
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        let (minutes, _) = field(fields[0], 0, 59, &[])?;
        let (hours, _) = field(fields[1], 0, 23, &[])?;
        let (days, days_restricted) = field(fields[2], 1, 31, &[])?;
        let (months, _) = field(fields[3], 1, 12, &MONTHS)?;
        let (mut weekdays, weekdays_restricted) = field(fields[4], 0, 7, &DAYS)?;
        // 7 is Sunday too.
        if weekdays[7] {
            weekdays[0] = true;
        }
        Ok(Schedule {
            minutes,
            hours,
            days,
            months,
            weekdays,
            either_day: days_restricted && weekdays_restricted,
        })
    }

    fn day_matches(&self, t: &jiff::civil::DateTime) -> bool {
        let dom = self.days[t.day() as usize];
        let dow = self.weekdays[t.weekday().to_sunday_zero_offset() as usize];
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The first scheduled time strictly after `after`, in `tz`.
    pub fn next_after(
        &self,
        after: jiff::Timestamp,
        tz: &jiff::tz::TimeZone,
    ) -> Option<jiff::Timestamp> {
        let local = after.to_zoned(tz.clone()).datetime();
        // Start at the next whole minute.
        let mut t = local
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(jiff::Span::new().minutes(1))
            .ok()?;
        // Enough for any schedule that can fire at all (leap days included).
        for _ in 0..600_000 {
            if !self.months[t.month() as usize] {
                t = t
                    .first_of_month()
                    .checked_add(jiff::Span::new().months(1))
                    .ok()?;
                t = t.with().hour(0).minute(0).build().ok()?;
                continue;
            }
            if !self.day_matches(&t) {
                t = t.checked_add(jiff::Span::new().days(1)).ok()?;
                t = t.with().hour(0).minute(0).build().ok()?;
                continue;
            }
            if !self.hours[t.hour() as usize] {
                t = t.checked_add(jiff::Span::new().hours(1)).ok()?;
                t = t.with().minute(0).build().ok()?;
                continue;
            }
            if !self.minutes[t.minute() as usize] {
                t = t.checked_add(jiff::Span::new().minutes(1)).ok()?;
                continue;
            }
            return t.to_zoned(tz.clone()).ok().map(|z| z.timestamp());
        }
        None
    }
}

fn time_zone(cron: &Value) -> Result<jiff::tz::TimeZone, String> {
    match cron["spec"]["timeZone"].as_str() {
        None | Some("") => Ok(jiff::tz::TimeZone::UTC),
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|e| format!("timeZone {name:?}: {e}")),
    }
}

fn parse_time(value: &Value) -> Option<jiff::Timestamp> {
    value.as_str()?.parse().ok()
}

fn stamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn job_finished(job: &Value) -> Option<&'static str> {
    let conditions = job["status"]["conditions"].as_array()?;
    for (kind, outcome) in [("Complete", "Complete"), ("Failed", "Failed")] {
        if conditions
            .iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
        {
            return Some(outcome);
        }
    }
    None
}

/// The Job for one scheduled time.
fn job_for(cron: &Value, at: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> Value {
    let name = cron["metadata"]["name"].as_str().unwrap_or_default();
    let template = &cron["spec"]["jobTemplate"];
    let mut annotations = template["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.insert(
        SCHEDULED_ANNOTATION.into(),
        json!(
            at.to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        ),
    );
    let mut owner = controller_reference(cron);
    owner["apiVersion"] = json!("batch/v1");
    owner["kind"] = json!("CronJob");
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": format!("{name}-{}", at.as_second() / 60),
            "labels": template["metadata"]["labels"].clone(),
            "annotations": annotations, "ownerReferences": [owner]},
        "spec": template["spec"]})
}

struct CronJobs {
    cronjobs: Arc<Resource>,
    jobs: Arc<Resource>,
    requeues: Vec<(String, Duration)>,
}

impl CronJobs {
    async fn sync(&mut self, registry: &Registry, stored: &StoredObject) -> Result<(), String> {
        let cron = stored.value();
        if deleting(&cron) {
            return Ok(());
        }
        let namespace = stored.namespace.clone().unwrap_or_default();
        let involved = {
            let mut i = Involved::of(&cron);
            i.api_version = "batch/v1".into();
            i.kind = "CronJob".into();
            i
        };
        let schedule = match Schedule::parse(cron["spec"]["schedule"].as_str().unwrap_or_default())
        {
            Ok(s) => s,
            Err(e) => {
                events::record(
                    registry,
                    COMPONENT,
                    &involved,
                    EventType::Warning,
                    "UnparseableSchedule",
                    &format!("unparseable schedule: {e}"),
                )
                .await;
                return Ok(());
            }
        };
        let tz = match time_zone(&cron) {
            Ok(tz) => tz,
            Err(e) => {
                events::record(
                    registry,
                    COMPONENT,
                    &involved,
                    EventType::Warning,
                    "UnknownTimeZone",
                    &e,
                )
                .await;
                return Ok(());
            }
        };
        let (all, _) = registry
            .cache()
            .list(&self.jobs.info.namespace_prefix(Some(&namespace)));
        let mut jobs: Vec<Value> = all
            .iter()
            .map(|j| j.value())
            .filter(|j| controlled_by(j, &stored.uid) && !deleting(j))
            .collect();
        let now = jiff::Timestamp::now();

        // The most recent scheduled time not yet run.
        let since = parse_time(&cron["status"]["lastScheduleTime"])
            .or_else(|| parse_time(&cron["metadata"]["creationTimestamp"]))
            .unwrap_or(now);
        let mut due = None;
        let mut cursor = since;
        let mut missed = 0;
        while let Some(t) = schedule.next_after(cursor, &tz) {
            if t > now {
                break;
            }
            due = Some(t);
            cursor = t;
            missed += 1;
            if missed > 100 {
                // As Kubernetes: too many missed runs; only the latest counts.
                cursor = now - jiff::SignedDuration::from_secs(60);
            }
        }
        let mut last_schedule = cron["status"]["lastScheduleTime"].clone();
        if let Some(t) = due
            && cron["spec"]["suspend"] != true
        {
            let too_late = cron["spec"]["startingDeadlineSeconds"]
                .as_i64()
                .is_some_and(|d| now.duration_since(t).as_secs() > d);
            let active: Vec<Value> = jobs
                .iter()
                .filter(|j| job_finished(j).is_none())
                .cloned()
                .collect();
            let policy = cron["spec"]["concurrencyPolicy"]
                .as_str()
                .unwrap_or("Allow");
            if too_late {
                events::record(
                    registry,
                    COMPONENT,
                    &involved,
                    EventType::Warning,
                    "MissSchedule",
                    &format!("Missed scheduled time to start a job: {}", stamp(t)),
                )
                .await;
                last_schedule = json!(stamp(t));
            } else if policy == "Forbid" && !active.is_empty() {
                // Skipped, not recorded: it runs when the Job finishes if still due then.
            } else {
                if policy == "Replace" {
                    for job in &active {
                        let name = job["metadata"]["name"].as_str().unwrap_or_default();
                        crate::writes::delete(
                            registry,
                            &self.jobs,
                            Some(&namespace),
                            name,
                            job["metadata"]["uid"].as_str().unwrap_or_default(),
                            Some(Propagation::Background),
                        )
                        .await?;
                        events::record(
                            registry,
                            COMPONENT,
                            &involved,
                            EventType::Normal,
                            "SuccessfulDelete",
                            &format!("Deleted job {name}"),
                        )
                        .await;
                    }
                    jobs.retain(|j| job_finished(j).is_some());
                }
                let job = job_for(&cron, t, &tz);
                let name = job["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                match registry
                    .create(&self.jobs, Some(&namespace), job, &WriteOptions::default())
                    .await
                {
                    Ok(created) => {
                        events::record(
                            registry,
                            COMPONENT,
                            &involved,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created job {name}"),
                        )
                        .await;
                        jobs.push(created.object);
                    }
                    // Already created for this time (by an earlier pass).
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(format!("creating job {name}: {}", e.message)),
                }
                last_schedule = json!(stamp(t));
            }
        }

        // History limits.
        for (outcome, limit_field, default) in [
            ("Complete", "successfulJobsHistoryLimit", 3),
            ("Failed", "failedJobsHistoryLimit", 1),
        ] {
            let limit = cron["spec"][limit_field].as_i64().unwrap_or(default).max(0) as usize;
            let mut done: Vec<&Value> = jobs
                .iter()
                .filter(|j| job_finished(j) == Some(outcome))
                .collect();
            if done.len() > limit {
                done.sort_by_key(|j| {
                    j["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                });
                for job in &done[..done.len() - limit] {
                    let name = job["metadata"]["name"].as_str().unwrap_or_default();
                    crate::writes::delete(
                        registry,
                        &self.jobs,
                        Some(&namespace),
                        name,
                        job["metadata"]["uid"].as_str().unwrap_or_default(),
                        Some(Propagation::Background),
                    )
                    .await?;
                }
            }
        }

        // Status.
        let active: Vec<Value> = jobs
            .iter()
            .filter(|j| job_finished(j).is_none())
            .map(|j| {
                json!({"kind": "Job", "apiVersion": "batch/v1", "namespace": namespace,
                "name": j["metadata"]["name"], "uid": j["metadata"]["uid"],
                "resourceVersion": j["metadata"]["resourceVersion"]})
            })
            .collect();
        let last_success = jobs
            .iter()
            .filter(|j| job_finished(j) == Some("Complete"))
            .filter_map(|j| parse_time(&j["status"]["completionTime"]))
            .max()
            .map(|t| json!(stamp(t)))
            .unwrap_or_else(|| cron["status"]["lastSuccessfulTime"].clone());
        let mut status = json!({});
        if !active.is_empty() {
            status["active"] = json!(active);
        }
        if !last_schedule.is_null() {
            status["lastScheduleTime"] = last_schedule;
        }
        if !last_success.is_null() {
            status["lastSuccessfulTime"] = last_success;
        }
        let current = if cron["status"].is_object() {
            cron["status"].clone()
        } else {
            json!({})
        };
        let same_refs = |a: &Value, b: &Value| {
            let names = |v: &Value| -> Vec<Value> {
                v.as_array()
                    .map(|l| l.iter().map(|r| r["uid"].clone()).collect())
                    .unwrap_or_default()
            };
            names(a) == names(b)
        };
        if !(same_refs(&status["active"], &current["active"])
            && status["lastScheduleTime"] == current["lastScheduleTime"]
            && status["lastSuccessfulTime"] == current["lastSuccessfulTime"])
        {
            crate::writes::edit(
                registry,
                &self.cronjobs,
                Some(&namespace),
                &stored.name,
                Some("status"),
                |next| {
                    next["status"] = status.clone();
                },
            )
            .await?;
        }
        if let Some(next) = schedule.next_after(now, &tz) {
            let wait = next.duration_since(now).as_secs().max(0) as u64 + 1;
            self.requeues
                .push((stored.key.clone(), Duration::from_secs(wait)));
        }
        Ok(())
    }
}

impl Reconciler for CronJobs {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        queue::owner_keys(event, &self.cronjobs, "CronJob", &self.jobs)
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        queue::all_keys(registry, &self.cronjobs)
    }

    fn take_requeues(&mut self) -> Vec<(String, Duration)> {
        std::mem::take(&mut self.requeues)
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some((cron, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            self.sync(registry, &cron).await
        })
    }
}

/// Run the CronJob controller.
pub async fn run(registry: Arc<Registry>) {
    let controller = CronJobs {
        cronjobs: resource("cronjobs", "batch"),
        jobs: resource("jobs", "batch"),
        requeues: Vec::new(),
    };
    queue::run(registry, "/registry/", controller, Duration::from_secs(30)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn next(schedule: &str, after: &str) -> String {
        stamp(
            Schedule::parse(schedule)
                .unwrap()
                .next_after(at(after), &jiff::tz::TimeZone::UTC)
                .unwrap(),
        )
    }

    #[test]
    fn schedules_fire_at_the_next_matching_minute() {
        assert_eq!(
            next("*/15 * * * *", "2026-01-01T10:07:30Z"),
            "2026-01-01T10:15:00Z"
        );
        assert_eq!(
            next("0 3 * * *", "2026-01-01T03:00:00Z"),
            "2026-01-02T03:00:00Z"
        );
        assert_eq!(
            next("@hourly", "2026-01-01T10:59:59Z"),
            "2026-01-01T11:00:00Z"
        );
        assert_eq!(
            next("30 9 * * MON-FRI", "2026-01-02T10:00:00Z"),
            "2026-01-05T09:30:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        // Day of month and day of week both set: either matches.
        assert_eq!(
            next("0 0 13 * 5", "2026-02-01T00:00:00Z"),
            "2026-02-06T00:00:00Z"
        );
        assert_eq!(
            next("0 12 * JAN,jul 7", "2026-01-01T00:00:00Z"),
            "2026-01-04T12:00:00Z"
        );
    }

    #[test]
    fn time_zones_shift_the_schedule() {
        let tz = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        let t = Schedule::parse("0 9 * * *")
            .unwrap()
            .next_after(at("2026-07-01T00:00:00Z"), &tz)
            .unwrap();
        assert_eq!(stamp(t), "2026-07-01T07:00:00Z");
    }

    #[test]
    fn bad_schedules_say_why() {
        for (text, wanted) in [
            ("* * * *", "expected exactly 5 fields"),
            ("61 * * * *", "out of range"),
            ("*/0 * * * *", "bad step"),
            ("0 0 * FOO *", "is not a number"),
        ] {
            let err = Schedule::parse(text).unwrap_err();
            assert!(err.contains(wanted), "{text}: {err}");
        }
    }

    #[test]
    fn jobs_are_named_after_their_scheduled_minute() {
        let cron = json!({"metadata": {"name": "backup", "uid": "u1"},
            "spec": {"jobTemplate": {"metadata": {"labels": {"app": "backup"}},
                "spec": {"template": {"spec": {"containers": []}}}}}});
        let job = job_for(&cron, at("2026-01-01T00:05:00Z"), &jiff::tz::TimeZone::UTC);
        assert_eq!(
            job["metadata"]["name"],
            format!("backup-{}", at("2026-01-01T00:05:00Z").as_second() / 60)
        );
        assert_eq!(
            job["metadata"]["annotations"][SCHEDULED_ANNOTATION],
            "2026-01-01T00:05:00+00:00"
        );
        assert!(controlled_by(&job, "u1"));
    }
}
