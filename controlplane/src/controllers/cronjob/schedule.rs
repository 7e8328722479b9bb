//! Cron schedules as Kubernetes reads them (robfig/cron v3's standard parser): five fields
//! `minute hour day-of-month month day-of-week` with `*`, `?`, lists, ranges, steps and
//! month/weekday names, or a descriptor (`@hourly`, `@daily`, `@midnight`, `@weekly`,
//! `@monthly`, `@yearly`, `@annually`), or `@every DURATION` (a Go duration such as `1h30m`,
//! counted from the previous run, at least a second). When both day fields are restricted a day matching
//! either runs (the classic cron OR rule).
//!
//! wasmkube extension: six fields whose first is the second (robfig's optional seconds
//! field), so a test can run a CronJob every few seconds. Five-field schedules always fire at
//! second 0, exactly as in Kubernetes.
//!
//! [`Schedule::next_after`] follows robfig's `Next` step for step, so daylight saving time
//! behaves the same: a time in a spring-forward gap is skipped, one in a fall-back overlap
//! fires twice.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// A parse failure, with the message robfig would give.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ParseError(String);

/// A parsed schedule: a bit set per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    second: u64,
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Either day field started with `*` or `?` (unstepped): then both must match.
    day_star: bool,
    /// Whether its times may fall within one minute (a seconds field or `@every`), so Job
    /// names need seconds.
    pub with_seconds: bool,
    /// `@every`: a constant delay in whole seconds.
    every: Option<i64>,
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const SECONDS: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

impl std::str::FromStr for Schedule {
    type Err = ParseError;

    fn from_str(spec: &str) -> Result<Self, ParseError> {
        let spec = spec.trim();
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with("@every ") => {
                let delay = go_duration(&s["@every ".len()..])
                    .ok_or_else(|| ParseError(format!("failed to parse duration {s}")))?;
                return Ok(Schedule {
                    second: 0,
                    minute: 0,
                    hour: 0,
                    dom: 0,
                    month: 0,
                    dow: 0,
                    day_star: false,
                    with_seconds: true,
                    every: Some(delay.max(1)),
                });
            }
            s if s.starts_with('@') => {
                return Err(ParseError(format!("unrecognized descriptor: {s}")));
            }
            s => s,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (seconds, rest, with_seconds) = match fields.len() {
            5 => ("0", &fields[..], false),
            6 => (fields[0], &fields[1..], true),
            n => {
                return Err(ParseError(format!(
                    "expected exactly 5 fields, found {n}: [{}]",
                    fields.join(" ")
                )));
            }
        };
        let (dom, dom_star) = field(rest[2], &DOM)?;
        let (dow, dow_star) = field(rest[4], &DOW)?;
        Ok(Schedule {
            second: field(seconds, &SECONDS)?.0,
            minute: field(rest[0], &MINUTES)?.0,
            hour: field(rest[1], &HOURS)?.0,
            dom,
            month: field(rest[3], &MONTHS)?.0,
            dow,
            day_star: dom_star || dow_star,
            with_seconds,
            every: None,
        })
    }
}

/// One comma-separated field: its bits, and whether it was an unstepped `*` or `?`.
fn field(text: &str, bounds: &Bounds) -> Result<(u64, bool), ParseError> {
    let mut bits = 0;
    let mut star = false;
    for part in text.split(',') {
        let (b, s) = range(part, bounds)?;
        bits |= b;
        star |= s;
    }
    Ok((bits, star))
}

/// `*`, `?`, `N`, `N-M`, each optionally `/STEP` (`N/STEP` meaning `N-max/STEP`).
fn range(expr: &str, bounds: &Bounds) -> Result<(u64, bool), ParseError> {
    let (span, step) = match expr.split_once('/') {
        Some((span, step)) => {
            let step: u32 = step
                .parse()
                .map_err(|_| ParseError(format!("failed to parse int from {step}")))?;
            (span, Some(step))
        }
        None => (expr, None),
    };
    let mut star = false;
    let (start, end) = if span == "*" || span == "?" {
        star = true;
        (bounds.min, bounds.max)
    } else {
        match span.split_once('-') {
            Some((a, b)) => (value(a, bounds)?, value(b, bounds)?),
            None => {
                let v = value(span, bounds)?;
                (v, if step.is_some() { bounds.max } else { v })
            }
        }
    };
    let step = step.unwrap_or(1);
    if step > 1 {
        star = false;
    }
    if start < bounds.min {
        return Err(ParseError(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            bounds.min
        )));
    }
    if end > bounds.max {
        return Err(ParseError(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            bounds.max
        )));
    }
    if start > end {
        return Err(ParseError(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        )));
    }
    if step == 0 {
        return Err(ParseError(format!(
            "step of range should be a positive number: {expr}"
        )));
    }
    let bits = (start..=end)
        .step_by(step as usize)
        .fold(0u64, |b, i| b | 1 << i);
    Ok((bits, star))
}

fn value(text: &str, bounds: &Bounds) -> Result<u32, ParseError> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = bounds.names.iter().position(|n| *n == lower) {
        return Ok(u32::try_from(i).unwrap_or(0) + bounds.min);
    }
    text.parse()
        .map_err(|_| ParseError(format!("failed to parse int from {text}")))
}

/// A Go `time.ParseDuration` string (`90s`, `1h30m`, `1.5h`) in whole seconds, rounded down
/// as robfig's `Every` does.
fn go_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let mut rest = text;
    let mut nanos: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += number * scale;
        rest = &rest[unit_len..];
    }
    #[allow(
        clippy::cast_possible_truncation,
        reason = "durations are far below i64::MAX seconds"
    )]
    Some((nanos / 1e9).floor() as i64)
}

fn has(bits: u64, i: i8) -> bool {
    bits & (1 << i) != 0
}

impl Schedule {
    fn day_matches(&self, t: &Zoned) -> bool {
        let dom = has(self.dom, t.day());
        let dow = has(self.dow, t.weekday().to_sunday_zero_offset());
        if self.day_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first time strictly after `after` (in `tz`) that the schedule fires, or `None` if
    /// there is none within five years (as robfig gives up: `0 0 30 2 *`).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        if let Some(delay) = self.every {
            return Timestamp::from_second(after.as_second().checked_add(delay)?).ok();
        }
        let mut t = Timestamp::from_second(after.as_second() + 1)
            .ok()?
            .to_zoned(tz.clone());
        let year_limit = t.year() + 5;
        let midnight = |d: Date| d.to_zoned(tz.clone()).ok();
        let mut added = false;
        'wrap: loop {
            if t.year() > year_limit {
                return None;
            }
            while !has(self.month, t.month()) {
                if !added {
                    added = true;
                    t = midnight(t.date().first_of_month())?;
                }
                t = midnight(t.date().first_of_month().checked_add(1.month()).ok()?)?;
                if t.month() == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(&t) {
                if !added {
                    added = true;
                }
                // The day's first instant, even where midnight does not exist.
                t = midnight(t.date().tomorrow().ok()?)?;
                if t.day() == 1 {
                    continue 'wrap;
                }
            }
            while !has(self.hour, t.hour()) {
                if !added {
                    added = true;
                    t = truncate(&t, i64::from(t.minute()) * 60 + i64::from(t.second()))?;
                }
                t = t.checked_add(1.hour()).ok()?;
                if t.hour() == 0 {
                    continue 'wrap;
                }
            }
            while !has(self.minute, t.minute()) {
                if !added {
                    added = true;
                    t = truncate(&t, i64::from(t.second()))?;
                }
                t = t.checked_add(1.minute()).ok()?;
                if t.minute() == 0 {
                    continue 'wrap;
                }
            }
            while !has(self.second, t.second()) {
                added = true;
                t = t.checked_add(1.second()).ok()?;
                if t.second() == 0 {
                    continue 'wrap;
                }
            }
            return Some(t.timestamp());
        }
    }
}

/// `t` moved back by `seconds` in absolute time (Go's `Truncate`).
fn truncate(t: &Zoned, seconds: i64) -> Option<Zoned> {
    t.checked_sub(seconds.seconds()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Schedule {
        s.parse().unwrap()
    }

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// The next `n` firing times after `from` in `tz`, as RFC 3339 in that zone's offset.
    fn times(spec: &str, from: &str, tz: &str, n: usize) -> Vec<String> {
        let tz = TimeZone::get(tz).unwrap();
        let s = parse(spec);
        let mut at = utc(from);
        (0..n)
            .map(|_| {
                at = s.next_after(at, &tz).unwrap();
                at.to_zoned(tz.clone())
                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn steps_ranges_and_lists() {
        assert_eq!(
            times("*/15 * * * *", "2026-01-01T00:07:00Z", "UTC", 3),
            [
                "2026-01-01T00:15:00+00:00",
                "2026-01-01T00:30:00+00:00",
                "2026-01-01T00:45:00+00:00"
            ]
        );
        assert_eq!(
            times("1-30/10 9,17 * * *", "2026-01-01T09:12:00Z", "UTC", 3),
            [
                "2026-01-01T09:21:00+00:00",
                "2026-01-01T17:01:00+00:00",
                "2026-01-01T17:11:00+00:00"
            ]
        );
        assert_eq!(
            times("5/20 * * * *", "2026-01-01T00:00:00Z", "UTC", 3),
            [
                "2026-01-01T00:05:00+00:00",
                "2026-01-01T00:25:00+00:00",
                "2026-01-01T00:45:00+00:00"
            ]
        );
    }

    #[test]
    fn names_and_descriptors() {
        // 2026-01-01 is a Thursday.
        assert_eq!(
            times("0 12 * FEB MON-wed", "2026-01-01T00:00:00Z", "UTC", 2),
            ["2026-02-02T12:00:00+00:00", "2026-02-03T12:00:00+00:00"]
        );
        assert_eq!(parse("@daily"), parse("0 0 * * *"));
        assert_eq!(parse("@midnight"), parse("0 0 * * *"));
        assert_eq!(parse("@annually"), parse("@yearly"));
        assert_eq!(
            times("@weekly", "2026-01-01T00:00:00Z", "UTC", 1),
            ["2026-01-04T00:00:00+00:00"]
        );
        assert_eq!(
            times("@monthly", "2026-01-01T00:00:00Z", "UTC", 1),
            ["2026-02-01T00:00:00+00:00"]
        );
    }

    #[test]
    fn restricted_day_fields_are_ored() {
        // The 13th, or any Friday.
        assert_eq!(
            times("0 0 13 * FRI", "2026-01-01T00:00:00Z", "UTC", 3),
            [
                "2026-01-02T00:00:00+00:00",
                "2026-01-09T00:00:00+00:00",
                "2026-01-13T00:00:00+00:00"
            ]
        );
        // A star day-of-month makes it AND (only Fridays).
        assert_eq!(
            times("0 0 * * FRI", "2026-01-01T00:00:00Z", "UTC", 1),
            ["2026-01-02T00:00:00+00:00"]
        );
    }

    #[test]
    fn seconds_extension_fires_within_the_minute() {
        assert_eq!(
            times("*/20 * * * * *", "2026-01-01T00:00:05Z", "UTC", 3),
            [
                "2026-01-01T00:00:20+00:00",
                "2026-01-01T00:00:40+00:00",
                "2026-01-01T00:01:00+00:00"
            ]
        );
        assert!(parse("*/2 * * * * *").with_seconds);
        assert!(!parse("* * * * *").with_seconds);
    }

    #[test]
    fn every_counts_from_the_previous_time() {
        let s = parse("@every 1m30s");
        assert!(s.with_seconds);
        let at = s.next_after(utc("2026-01-01T00:00:10.5Z"), &TimeZone::UTC);
        assert_eq!(at, Some(utc("2026-01-01T00:01:40Z")));
        let sub_second = parse("@every 200ms");
        let at = sub_second.next_after(utc("2026-01-01T00:00:00Z"), &TimeZone::UTC);
        assert_eq!(at, Some(utc("2026-01-01T00:00:01Z")));
        assert_eq!(go_duration("1.5h"), Some(5400));
    }

    #[test]
    fn dst_gap_is_skipped_and_overlap_fires_twice() {
        // 2026-03-08: New York skips 02:00-03:00; 2026-11-01: it repeats 01:00-02:00.
        assert_eq!(
            times("30 2 * * *", "2026-03-07T12:00:00Z", "America/New_York", 2),
            ["2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"]
        );
        assert_eq!(
            times("30 1 * * *", "2026-11-01T04:00:00Z", "America/New_York", 3),
            [
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-02T01:30:00-05:00"
            ]
        );
        assert_eq!(
            times("0 9 * * *", "2026-03-07T15:00:00Z", "America/New_York", 2),
            ["2026-03-08T09:00:00-04:00", "2026-03-09T09:00:00-04:00"]
        );
    }

    #[test]
    fn rejects_bad_schedules() {
        for bad in [
            "* * * *",
            "60 * * * *",
            "* * * * 7",
            "*/0 * * * *",
            "5-1 * * * *",
            "@every 5",
            "@every",
            "@often",
            "x * * * *",
        ] {
            assert!(bad.parse::<Schedule>().is_err(), "{bad}");
        }
        assert_eq!(
            parse("0 0 30 2 *").next_after(utc("2026-01-01T00:00:00Z"), &TimeZone::UTC),
            None
        );
    }
}
