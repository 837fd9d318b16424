//! Schedules: cron expressions with seconds, evaluated in a time zone.
//!
//! The `cron` crate knows no time zones worth trusting across daylight-saving
//! changes, so it is only asked about *civil* (wall-clock) times; jiff turns
//! those into instants in the schedule's zone:
//!
//! - a time that does not exist (spring forward: 02:30 on the last Sunday of
//!   March in Europe/Paris) runs at the first instant after the gap (03:30
//!   local), as cronie does;
//! - a time that exists twice (fall back: 02:30 on the last Sunday of
//!   October) runs once, at the first of the two.
//!
//! Expressions are checked and normalised by [`super::cron_expr`]: five
//! fields, six with seconds first, seven with a year, or a macro such as
//! `@daily`; days of the week are numbered as in Unix cron (0 and 7 are
//! Sunday).

use std::str::FromStr;

use chrono::{Datelike, TimeZone as _, Timelike};
use jiff::civil::DateTime;
use jiff::tz::{Disambiguation, TimeZone};
use jiff::Timestamp;

/// A recurring schedule: what the daemon's scheduler asks of a policy.
pub trait Schedule: Send + Sync {
    /// The first time strictly after `after`, or `None` when there is none.
    fn next_after(&self, after: Timestamp) -> Option<Timestamp>;
}

/// A cron schedule in a time zone.
#[derive(Clone)]
pub struct CronSchedule {
    expr: String,
    cron: cron::Schedule,
    tz: TimeZone,
    tz_name: String,
}

impl std::fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CronSchedule({} {})", self.expr, self.tz_name)
    }
}

impl std::fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.expr, self.tz_name)
    }
}

fn to_chrono(d: DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::Utc
        .with_ymd_and_hms(
            i32::from(d.year()),
            u32::try_from(d.month()).ok()?,
            u32::try_from(d.day()).ok()?,
            u32::try_from(d.hour()).ok()?,
            u32::try_from(d.minute()).ok()?,
            u32::try_from(d.second()).ok()?,
        )
        .single()
}

fn from_chrono(c: chrono::DateTime<chrono::Utc>) -> Option<DateTime> {
    DateTime::new(
        i16::try_from(c.year()).ok()?,
        i8::try_from(c.month()).ok()?,
        i8::try_from(c.day()).ok()?,
        i8::try_from(c.hour()).ok()?,
        i8::try_from(c.minute()).ok()?,
        i8::try_from(c.second()).ok()?,
        0,
    )
    .ok()
}

impl CronSchedule {
    /// Parses `expr` (5, 6 or 7 fields) for the IANA zone `tz`.
    ///
    /// # Errors
    /// A message saying what is wrong with the expression or the zone.
    pub fn new(expr: &str, tz: &str) -> Result<CronSchedule, String> {
        let normalized = super::cron_expr::normalize(expr)
            .map_err(|e| format!("cron expression {expr:?} {e}"))?;
        let cron = cron::Schedule::from_str(&normalized).map_err(|e| {
            // normalize() checked every field; say it in one line anyway.
            let one_line = e.to_string().replace('\n', " ");
            format!("cron expression {expr:?} is refused: {one_line}")
        })?;
        let zone = TimeZone::get(tz).map_err(|e| format!("time zone {tz:?}: {e}"))?;
        Ok(CronSchedule {
            expr: expr.to_string(),
            cron,
            tz: zone,
            tz_name: tz.to_string(),
        })
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The time zone's name.
    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    /// The first run strictly after `after`.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let mut civil = after.to_zoned(self.tz.clone()).datetime();
        // Each round moves to a later civil time; a few rounds cover the
        // repeated hour of a fall-back day.
        for _ in 0..4 {
            let from = to_chrono(civil)?;
            let next = from_chrono(self.cron.after(&from).next()?)?;
            let instant = self
                .tz
                .to_ambiguous_zoned(next)
                .disambiguate(Disambiguation::Compatible)
                .ok()?
                .timestamp();
            if instant > after {
                return Some(instant);
            }
            civil = next;
        }
        None
    }

    /// The next `n` runs after `after`.
    pub fn upcoming(&self, after: Timestamp, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    /// The usual interval between runs: the gap between the second and third
    /// runs after `after` (for the default RPO: one interval plus a grace).
    pub fn interval(&self, after: Timestamp) -> Option<std::time::Duration> {
        let runs = self.upcoming(after, 3);
        let (a, b) = (runs.get(1)?, runs.get(2)?);
        std::time::Duration::try_from(b.duration_since(*a)).ok()
    }

    /// A time in this schedule's zone, for people.
    pub fn local(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }
}

impl Schedule for CronSchedule {
    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        CronSchedule::next_after(self, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn runs(expr: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
        let s = CronSchedule::new(expr, tz).unwrap();
        s.upcoming(t(from), n).iter().map(|x| s.local(*x)).collect()
    }

    #[test]
    fn five_six_and_seven_fields() {
        assert_eq!(
            runs("30 1 * * *", "UTC", "2026-11-22T00:00:00Z", 2),
            ["2026-11-22T01:30:00+00:00", "2026-11-23T01:30:00+00:00"]
        );
        assert_eq!(
            runs("15 30 1 * * *", "UTC", "2026-11-22T00:00:00Z", 1),
            ["2026-11-22T01:30:15+00:00"]
        );
        assert_eq!(
            runs("0 0 0 1 1 * 2030", "UTC", "2026-11-22T00:00:00Z", 1),
            ["2030-01-01T00:00:00+00:00"]
        );
        for bad in ["* * *", "0 0 25 * * *", "every day"] {
            assert!(CronSchedule::new(bad, "UTC").is_err(), "{bad}");
        }
        assert!(CronSchedule::new("0 0 1 * * *", "Europe/Atlantis").is_err());
    }

    #[test]
    fn spring_forward_runs_after_the_gap_once() {
        // Europe/Paris, 29 March 2026: 02:00 CET jumps to 03:00 CEST.
        assert_eq!(
            runs("0 30 2 * * *", "Europe/Paris", "2026-03-28T00:00:00Z", 3),
            [
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:30:00+02:00",
                "2026-03-30T02:30:00+02:00"
            ]
        );
        // Hourly through the gap: 01:00, 03:00 (02:00 does not exist).
        assert_eq!(
            runs(
                "0 0 * * * *",
                "Europe/Brussels",
                "2026-03-29T00:30:00+01:00",
                3
            ),
            [
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T04:00:00+02:00"
            ]
        );
    }

    #[test]
    fn fall_back_runs_the_repeated_time_once() {
        // Europe/Paris, 25 October 2026: 03:00 CEST goes back to 02:00 CET.
        assert_eq!(
            runs("0 30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z", 3),
            [
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
                "2026-10-27T02:30:00+01:00"
            ]
        );
        // A daily 01:00 job stays at 01:00 local on both sides.
        let s = CronSchedule::new("0 0 1 * * *", "Europe/Brussels").unwrap();
        let r = s.upcoming(t("2026-10-24T12:00:00Z"), 2);
        assert_eq!(r[0], t("2026-10-24T23:00:00Z"));
        assert_eq!(r[1], t("2026-10-26T00:00:00Z"));
    }

    #[test]
    fn interval_of_common_schedules() {
        let from = t("2026-11-22T00:00:00Z");
        let hour = |e: &str| {
            CronSchedule::new(e, "Europe/Paris")
                .unwrap()
                .interval(from)
                .unwrap()
                .as_secs()
                / 3600
        };
        assert_eq!(hour("0 0 * * * *"), 1);
        assert_eq!(hour("0 0 1 * * *"), 24);
        assert_eq!(hour("0 0 2 * * Sun"), 168);
    }
}
