//! Which schedule time is due (kube's `mostRecentScheduleTime`), what its Job is called, and
//! which finished Jobs are the oldest.

use std::cmp::Ordering;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::Job;

use super::schedule::Schedule;

/// More missed schedules than this earn a `TooManyMissedTimes` warning.
pub const TOO_MANY: u64 = 100;

/// The latest schedule time in `(earliest, now]` and roughly how many there were, counted
/// as kube does (the gap between the first two times, fitted into the window), so a
/// long-idle every-second schedule does not walk millions of times.
pub fn most_recent(
    schedule: &Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, u64) {
    let Some(t1) = schedule.next_after(earliest, tz) else {
        return (None, 0);
    };
    if now < t1 {
        return (None, 0);
    }
    let Some(t2) = schedule.next_after(t1, tz).filter(|t2| *t2 <= now) else {
        return (Some(t1), 1);
    };
    let gap = t2.as_second() - t1.as_second();
    let missed = u64::try_from((now.as_second() - t1.as_second()) / gap.max(1) + 1).unwrap_or(0);
    // Start two gaps before the estimate and let the schedule find the true last time;
    // irregular schedules (`30 6-16/4 * * 1-5`) may need the full walk.
    let back = i64::try_from(missed).unwrap_or(i64::MAX).saturating_sub(2);
    let from = Timestamp::from_second(t1.as_second() + back * gap).unwrap_or(t1);
    let last = walk(schedule, tz, from, now).or_else(|| walk(schedule, tz, earliest, now));
    (last, missed)
}

fn walk(schedule: &Schedule, tz: &TimeZone, from: Timestamp, now: Timestamp) -> Option<Timestamp> {
    let mut last = None;
    let mut at = from;
    while let Some(t) = schedule.next_after(at, tz).filter(|t| *t <= now) {
        last = Some(t);
        at = t;
    }
    last
}

/// `CRONJOB-<minutes since the epoch>` as Kubernetes names it; seconds for a schedule with a
/// seconds field, whose times may fall within one minute.
pub fn job_name(cronjob: &str, scheduled: Timestamp, with_seconds: bool) -> String {
    let t = scheduled.as_second();
    if with_seconds {
        format!("{cronjob}-{t}")
    } else {
        format!("{cronjob}-{}", t.div_euclid(60))
    }
}

/// Oldest first by `status.startTime` (Jobs without one last), then by name (kube's
/// `byJobStartTime`).
pub fn by_start_time(a: &Job, b: &Job) -> Ordering {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    match (start(a), start(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        _ => a.metadata.name.cmp(&b.metadata.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn schedule(s: &str) -> Schedule {
        s.parse().unwrap()
    }

    #[test]
    fn nothing_is_due_before_the_first_time() {
        let s = schedule("0 * * * *");
        let got = most_recent(
            &s,
            &TimeZone::UTC,
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-01T00:59:59Z"),
        );
        assert_eq!(got, (None, 0));
    }

    #[test]
    fn picks_the_latest_missed_time_and_counts_them() {
        let s = schedule("*/5 * * * *");
        let got = most_recent(
            &s,
            &TimeZone::UTC,
            utc("2026-01-01T00:00:00Z"),
            utc("2026-01-01T00:17:00Z"),
        );
        assert_eq!(got, (Some(utc("2026-01-01T00:15:00Z")), 3));
        let s = schedule("* * * * * *");
        let (last, count) = most_recent(
            &s,
            &TimeZone::UTC,
            utc("2025-01-01T00:00:00Z"),
            utc("2026-01-01T00:00:00Z"),
        );
        assert_eq!(last, Some(utc("2026-01-01T00:00:00Z")));
        assert!(count > TOO_MANY);
    }

    #[test]
    fn irregular_schedules_still_find_the_latest_time() {
        let s = schedule("30 6-16/4 * * 1-5");
        // Monday 2026-01-05 .. Wednesday 2026-01-07 12:00.
        let got = most_recent(
            &s,
            &TimeZone::UTC,
            utc("2026-01-05T00:00:00Z"),
            utc("2026-01-07T12:00:00Z"),
        );
        assert_eq!(got.0, Some(utc("2026-01-07T10:30:00Z")));
    }

    #[test]
    fn names_by_minute_or_by_second() {
        let t = utc("2026-01-01T00:01:30Z");
        assert_eq!(
            job_name("hello", t, false),
            format!("hello-{}", t.as_second() / 60)
        );
        assert_eq!(
            job_name("hello", t, true),
            format!("hello-{}", t.as_second())
        );
    }

    #[test]
    fn oldest_started_jobs_sort_first_and_unstarted_last() {
        let job = |name: &str, start: Option<&str>| -> Job {
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"template": {}},
                "status": {"startTime": start}}))
            .unwrap()
        };
        let mut jobs = [
            job("c", None),
            job("b", Some("2026-01-01T00:02:00Z")),
            job("a", Some("2026-01-01T00:01:00Z")),
        ];
        jobs.sort_by(by_start_time);
        let names: Vec<_> = jobs
            .iter()
            .map(|j| j.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
