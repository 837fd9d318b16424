//! Retention: which snapshots of one group a policy keeps, and why.
//!
//! This is the pure core of `custos forget`: no I/O, no clock. The caller groups
//! snapshots (by service, host, paths), calls [`apply`] once per group with the
//! current time, and forgets the snapshots whose [`Decision`] says `keep: false`.
//!
//! # Rules
//!
//! Snapshots are considered newest first. Every rule looks at every snapshot on
//! its own, and a snapshot is kept if **any** rule keeps it (as in restic's
//! `forget` and borg's `prune`):
//!
//! | rule | keeps | reason shown |
//! |---|---|---|
//! | pinned (legal hold) | every pinned snapshot, whatever the policy | `pinned` |
//! | `keep_last` N | the N newest snapshots | `last` |
//! | `keep_hourly` N | the newest snapshot of each of the N newest hours that have snapshots | `hourly 2026-11-22T10` |
//! | `keep_daily` N | the same per day | `daily 2026-11-22` |
//! | `keep_weekly` N | the same per ISO 8601 week (weeks start on Monday; the week-numbering year may differ from the calendar year around 1 January) | `weekly 2026-W47` |
//! | `keep_monthly` N | the same per month | `monthly 2026-11` |
//! | `keep_yearly` N | the same per year | `yearly 2026` |
//! | `keep_within` D | every snapshot taken at or after `newest - D`, where `newest` is the group's newest snapshot (or `now`, if that is earlier): restic's rule | `within 90d` |
//! | `keep_tags` | every snapshot carrying one of the tags | `tag pre-change` |
//! | always | the group's newest complete snapshot (its newest snapshot if none is complete), when no rule above keeps it | `newest` |
//!
//! A calendar rule stops once it has taken N buckets; a bucket already taken
//! by a newer snapshot does not count again. A count of 0 is the same as no
//! rule, as in restic.
//!
//! # Time zones and daylight saving
//!
//! Buckets are civil time in the policy's [`RetentionPolicy::time_zone`], not
//! UTC: a snapshot at 23:30 UTC on 31 October is in November in Brussels. Hours
//! are civil hours, as restic and borg count them: on a fall-back day the
//! repeated hour (02:00–03:00 twice in Europe/Brussels) is **one** hourly
//! bucket, and on a spring-forward day the skipped hour simply has no snapshot.
//!
//! # Safety
//!
//! A policy without any rule would forget every snapshot that is not pinned:
//! [`apply`] refuses it with [`RetentionError::NoRule`], as restic does.
//!
//! No policy removes a group's newest complete snapshot, and `keep_within`
//! counts back from the newest snapshot, not from the clock: a service whose
//! backups have failed for longer than every window keeps its history
//! instead of losing all of it to the next `forget`. (A snapshot dated in the
//! future, from a wrong clock, does not move the window past `now`.)
//!
//! # Durations
//!
//! Windows (`keep_within`) are [`crate::duration::HumanDuration`]s.

use std::collections::HashSet;
use std::fmt;

use jiff::civil;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize, Serializer};

use crate::duration::HumanDuration;

/// One snapshot as retention sees it: an ID, a time, tags, and the legal hold.
///
/// `I` is the caller's snapshot ID type (a `String` by default); [`apply`] only
/// clones it into the matching [`Decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate<I = String> {
    /// The snapshot's ID, handed back in its [`Decision`].
    pub id: I,
    /// When the snapshot was taken.
    pub time: Timestamp,
    /// The snapshot's tags, matched against [`RetentionPolicy::keep_tags`].
    pub tags: Vec<String>,
    /// Legal hold: a pinned snapshot is always kept.
    pub pinned: bool,
    /// False when some files could not be read: the newest snapshot kept
    /// whatever the policy is the newest complete one.
    pub complete: bool,
}

/// A calendar period that a bucket rule counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// One civil hour.
    Hourly,
    /// One civil day.
    Daily,
    /// One ISO 8601 week (Monday to Sunday).
    Weekly,
    /// One calendar month.
    Monthly,
    /// One calendar year.
    Yearly,
}

impl Period {
    /// Every period, shortest first: the order rules are applied and shown in.
    pub const ALL: [Period; 5] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    /// The rule's name: `hourly`, `daily`, `weekly`, `monthly` or `yearly`.
    pub fn name(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }

    /// The period's noun, singular for a count of 1 and plural otherwise.
    fn noun(self, count: u32) -> &'static str {
        let one = count == 1;
        match self {
            Period::Hourly if one => "hour",
            Period::Hourly => "hours",
            Period::Daily if one => "day",
            Period::Daily => "days",
            Period::Weekly if one => "week",
            Period::Weekly => "weeks",
            Period::Monthly if one => "month",
            Period::Monthly => "months",
            Period::Yearly if one => "year",
            Period::Yearly => "years",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One calendar bucket in the policy's time zone: an hour, a day, an ISO week,
/// a month or a year.
///
/// Displayed as `2026-11-22T10`, `2026-11-22`, `2026-W47`, `2026-11` or `2026`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// A civil hour: a repeated hour on a fall-back day is one bucket.
    Hour {
        /// The civil date.
        date: civil::Date,
        /// The civil hour, 0 to 23.
        hour: i8,
    },
    /// A civil day.
    Day(civil::Date),
    /// An ISO 8601 week.
    Week {
        /// The ISO week-numbering year (2026 for 1 January 2027, a Friday).
        year: i16,
        /// The week, 1 to 53.
        week: i8,
    },
    /// A calendar month.
    Month {
        /// The year.
        year: i16,
        /// The month, 1 to 12.
        month: i8,
    },
    /// A calendar year.
    Year(i16),
}

impl Bucket {
    /// The bucket of `period` that holds `time`, in civil time of `tz`.
    pub fn of(period: Period, time: Timestamp, tz: &TimeZone) -> Bucket {
        let civil = tz.to_datetime(time);
        let date = civil.date();
        match period {
            Period::Hourly => Bucket::Hour {
                date,
                hour: civil.hour(),
            },
            Period::Daily => Bucket::Day(date),
            Period::Weekly => {
                let week = date.iso_week_date();
                Bucket::Week {
                    year: week.year(),
                    week: week.week(),
                }
            }
            Period::Monthly => Bucket::Month {
                year: date.year(),
                month: date.month(),
            },
            Period::Yearly => Bucket::Year(date.year()),
        }
    }

    /// The period this bucket belongs to.
    pub fn period(&self) -> Period {
        match self {
            Bucket::Hour { .. } => Period::Hourly,
            Bucket::Day(_) => Period::Daily,
            Bucket::Week { .. } => Period::Weekly,
            Bucket::Month { .. } => Period::Monthly,
            Bucket::Year(_) => Period::Yearly,
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bucket::Hour { date, hour } => write!(f, "{date}T{hour:02}"),
            Bucket::Day(date) => write!(f, "{date}"),
            Bucket::Week { year, week } => write!(f, "{year:04}-W{week:02}"),
            Bucket::Month { year, month } => write!(f, "{year:04}-{month:02}"),
            Bucket::Year(year) => write!(f, "{year:04}"),
        }
    }
}

/// A retention policy for one group of snapshots.
///
/// Plain data: every field is public and the [`Default`] has no rule at all
/// (which `apply` refuses) and UTC buckets. A count of `Some(0)` and a zero
/// `keep_within` mean "no rule", as `None` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep the N newest snapshots.
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours that have one.
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest days that have one.
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N newest ISO weeks that have one.
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest months that have one.
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest years that have one.
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot taken at or after `now` minus this duration.
    pub keep_within: Option<HumanDuration>,
    /// Keep every snapshot carrying any of these tags.
    pub keep_tags: Vec<String>,
    /// The time zone calendar buckets are computed in (the service's local
    /// time: a "day" should be the operator's day, not UTC's).
    pub time_zone: TimeZone,
}

impl Default for RetentionPolicy {
    /// No rule, UTC buckets.
    fn default() -> Self {
        RetentionPolicy {
            keep_last: None,
            keep_hourly: None,
            keep_daily: None,
            keep_weekly: None,
            keep_monthly: None,
            keep_yearly: None,
            keep_within: None,
            keep_tags: Vec::new(),
            time_zone: TimeZone::UTC,
        }
    }
}

impl RetentionPolicy {
    /// The count of the calendar rule for `period`, or `None` when that rule is
    /// not set or is 0.
    pub fn keep_count(&self, period: Period) -> Option<u32> {
        let count = match period {
            Period::Hourly => self.keep_hourly,
            Period::Daily => self.keep_daily,
            Period::Weekly => self.keep_weekly,
            Period::Monthly => self.keep_monthly,
            Period::Yearly => self.keep_yearly,
        };
        count.filter(|&n| n > 0)
    }

    /// `keep_last`, or `None` when it is not set or is 0.
    fn last_count(&self) -> Option<u32> {
        self.keep_last.filter(|&n| n > 0)
    }

    /// `keep_within`, or `None` when it is not set or is zero.
    fn within(&self) -> Option<HumanDuration> {
        self.keep_within.filter(|d| !d.is_zero())
    }

    /// True when the policy has no rule that keeps anything: no count above 0,
    /// no non-zero `keep_within`, no `keep_tags`. Pinned snapshots do not make
    /// a policy non-empty: `apply` refuses an empty policy even then.
    pub fn is_empty(&self) -> bool {
        self.last_count().is_none()
            && Period::ALL.iter().all(|&p| self.keep_count(p).is_none())
            && self.within().is_none()
            && self.keep_tags.is_empty()
    }
}

impl fmt::Display for RetentionPolicy {
    /// For example `keep last 3, 7 daily, 4 weekly, within 90d, tagged
    /// pre-change or post-change (time zone Europe/Brussels)`, or `no
    /// retention rule`. The time zone is shown when a calendar rule uses it and
    /// it is a named zone other than UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = self.last_count() {
            parts.push(format!("last {n}"));
        }
        let mut calendar = false;
        for period in Period::ALL {
            if let Some(n) = self.keep_count(period) {
                calendar = true;
                parts.push(format!("{n} {period}"));
            }
        }
        if let Some(d) = self.within() {
            parts.push(format!("within {d}"));
        }
        if !self.keep_tags.is_empty() {
            parts.push(format!("tagged {}", self.keep_tags.join(" or ")));
        }
        if parts.is_empty() {
            return f.write_str("no retention rule");
        }
        write!(f, "keep {}", parts.join(", "))?;
        match self.time_zone.iana_name() {
            Some(name) if calendar && name != "UTC" => write!(f, " (time zone {name})"),
            _ => Ok(()),
        }
    }
}

/// Why a rule keeps a snapshot. Serialized as its display text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The snapshot is pinned (legal hold): `pinned`.
    Pinned,
    /// One of the `keep_last` newest snapshots: `last`.
    Last,
    /// The newest snapshot of a calendar bucket: `daily 2026-11-22`.
    Calendar(Bucket),
    /// Inside the `keep_within` window: `within 90d`.
    Within(HumanDuration),
    /// Carries a tag of `keep_tags`: `tag pre-change`.
    Tag(String),
    /// The group's newest complete snapshot, which no policy removes:
    /// `newest`.
    Newest,
}

impl Reason {
    /// The calendar period of a [`Reason::Calendar`], `None` for other reasons.
    pub fn period(&self) -> Option<Period> {
        match self {
            Reason::Calendar(bucket) => Some(bucket.period()),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Pinned => f.write_str("pinned"),
            Reason::Last => f.write_str("last"),
            Reason::Calendar(bucket) => write!(f, "{} {bucket}", bucket.period()),
            Reason::Within(d) => write!(f, "within {d}"),
            Reason::Tag(tag) => write!(f, "tag {tag}"),
            Reason::Newest => f.write_str("newest"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why one rule of the policy did not keep a forgotten snapshot. Serialized as
/// its display text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Miss {
    /// `keep_last` N kept N newer snapshots: `not among the last 3`.
    NotLast {
        /// The rule's count.
        count: u32,
    },
    /// A newer snapshot already holds this bucket:
    /// `daily 2026-11-22 keeps a newer snapshot`.
    BucketTaken(Bucket),
    /// The rule had already taken its N buckets, all newer than this one:
    /// `daily 2026-11-10: the 7 newer days are already kept`.
    BucketsFull {
        /// The snapshot's own bucket.
        bucket: Bucket,
        /// The rule's count.
        count: u32,
    },
    /// Older than the `keep_within` window, counted back from the newest
    /// snapshot: `older than 90d before the newest snapshot`.
    Outside(HumanDuration),
    /// Carries none of `keep_tags`: `has none of the tags pre-change, post-change`.
    Untagged(Vec<String>),
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::NotLast { count } => write!(f, "not among the last {count}"),
            Miss::BucketTaken(bucket) => {
                write!(f, "{} {bucket} keeps a newer snapshot", bucket.period())
            }
            Miss::BucketsFull { bucket, count } => {
                let period = bucket.period();
                let noun = period.noun(*count);
                if *count == 1 {
                    write!(f, "{period} {bucket}: the newer {noun} is already kept")
                } else {
                    write!(
                        f,
                        "{period} {bucket}: the {count} newer {noun} are already kept"
                    )
                }
            }
            Miss::Outside(d) => write!(f, "older than {d} before the newest snapshot"),
            Miss::Untagged(tags) if tags.len() == 1 => write!(f, "has no tag {}", tags[0]),
            Miss::Untagged(tags) => write!(f, "has none of the tags {}", tags.join(", ")),
        }
    }
}

impl Serialize for Miss {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What [`apply`] decided for one snapshot, and why.
///
/// Serializes as `{"id": .., "time": "2026-11-22T10:00:00Z", "keep": true,
/// "reasons": ["daily 2026-11-22"], "misses": []}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision<I = String> {
    /// The snapshot's ID, from its [`Candidate`].
    pub id: I,
    /// The snapshot's time (RFC 3339 in JSON).
    #[serde(serialize_with = "serialize_display")]
    pub time: Timestamp,
    /// True when at least one rule keeps the snapshot.
    pub keep: bool,
    /// Every rule that keeps it, in the order pinned, last, hourly to yearly,
    /// within, tags. Empty exactly when the snapshot is forgotten.
    pub reasons: Vec<Reason>,
    /// For a forgotten snapshot, what each rule of the policy said about it, in
    /// the same order. Empty when the snapshot is kept.
    pub misses: Vec<Miss>,
}

impl<I> Decision<I> {
    /// One line for people: the reasons joined by `, ` when kept, the misses
    /// joined by `; ` when forgotten (`no rule keeps it` if there are none).
    pub fn explanation(&self) -> String {
        if self.keep {
            join(&self.reasons, ", ")
        } else if self.misses.is_empty() {
            "no rule keeps it".to_owned()
        } else {
            join(&self.misses, "; ")
        }
    }
}

fn join<T: fmt::Display>(items: &[T], separator: &str) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(separator)
}

fn serialize_display<T: fmt::Display, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Why [`apply`] refused to decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// The policy has no rule: applying it would forget every snapshot.
    #[error("no retention rule given: refusing to forget every snapshot")]
    NoRule,
}

impl From<RetentionError> for crate::Error {
    /// A missing policy is a usage error (exit code 2).
    fn from(error: RetentionError) -> Self {
        crate::Error::Usage(error.to_string())
    }
}

/// Decide, for every snapshot of one group, whether `policy` keeps it.
///
/// Returns one [`Decision`] per candidate, **in the order of `snapshots`**
/// (decision `i` is about `snapshots[i]`). Candidates need not be sorted; rules
/// walk them newest first, and of two snapshots with the same time the one
/// listed first counts as the newer. `now` only bounds the `keep_within`
/// window: it counts back from the newest snapshot, or from `now` if that
/// is earlier.
///
/// # Errors
///
/// [`RetentionError::NoRule`] when [`RetentionPolicy::is_empty`]: an empty
/// policy would forget every snapshot that is not pinned, so it is refused
/// even if some snapshots are pinned or the list is empty.
pub(crate) fn apply<I: Clone>(
    policy: &RetentionPolicy,
    snapshots: &[Candidate<I>],
    now: Timestamp,
) -> Result<Vec<Decision<I>>, RetentionError> {
    if policy.is_empty() {
        return Err(RetentionError::NoRule);
    }

    // Newest first; the sort is stable, so equal times keep the input order.
    let mut order: Vec<usize> = (0..snapshots.len()).collect();
    order.sort_by(|&a, &b| snapshots[b].time.cmp(&snapshots[a].time));

    let mut decisions: Vec<Decision<I>> = snapshots
        .iter()
        .map(|c| Decision {
            id: c.id.clone(),
            time: c.time,
            keep: false,
            reasons: Vec::new(),
            misses: Vec::new(),
        })
        .collect();

    for (decision, candidate) in decisions.iter_mut().zip(snapshots) {
        if candidate.pinned {
            decision.reasons.push(Reason::Pinned);
        }
    }

    if let Some(count) = policy.last_count() {
        for (rank, &i) in order.iter().enumerate() {
            if rank < count as usize {
                decisions[i].reasons.push(Reason::Last);
            } else {
                decisions[i].misses.push(Miss::NotLast { count });
            }
        }
    }

    for period in Period::ALL {
        let Some(count) = policy.keep_count(period) else {
            continue;
        };
        let mut taken: HashSet<Bucket> = HashSet::new();
        for &i in &order {
            let bucket = Bucket::of(period, snapshots[i].time, &policy.time_zone);
            if taken.contains(&bucket) {
                decisions[i].misses.push(Miss::BucketTaken(bucket));
            } else if taken.len() < count as usize {
                taken.insert(bucket);
                decisions[i].reasons.push(Reason::Calendar(bucket));
            } else {
                decisions[i]
                    .misses
                    .push(Miss::BucketsFull { bucket, count });
            }
        }
    }

    if let Some(within) = policy.within() {
        let newest = order.first().map_or(now, |&i| snapshots[i].time.min(now));
        let cutoff = within_cutoff(newest, within);
        for (decision, candidate) in decisions.iter_mut().zip(snapshots) {
            // No cutoff: the window reaches back past the earliest time jiff
            // can represent, so it holds every snapshot.
            if cutoff.is_none_or(|c| candidate.time >= c) {
                decision.reasons.push(Reason::Within(within));
            } else {
                decision.misses.push(Miss::Outside(within));
            }
        }
    }

    if !policy.keep_tags.is_empty() {
        let mut wanted: Vec<&String> = Vec::new();
        for tag in &policy.keep_tags {
            if !wanted.contains(&tag) {
                wanted.push(tag);
            }
        }
        for (decision, candidate) in decisions.iter_mut().zip(snapshots) {
            let before = decision.reasons.len();
            for &tag in &wanted {
                if candidate.tags.contains(tag) {
                    decision.reasons.push(Reason::Tag(tag.clone()));
                }
            }
            if decision.reasons.len() == before {
                decision.misses.push(Miss::Untagged(
                    wanted.iter().map(|t| (*t).clone()).collect(),
                ));
            }
        }
    }

    // Whatever the rules said, the newest complete snapshot stays (the
    // newest of all when none is complete).
    if let Some(&i) = order
        .iter()
        .find(|&&i| snapshots[i].complete)
        .or(order.first())
    {
        if decisions[i].reasons.is_empty() {
            decisions[i].reasons.push(Reason::Newest);
        }
    }

    for decision in &mut decisions {
        decision.keep = !decision.reasons.is_empty();
        if decision.keep {
            decision.misses.clear();
        }
    }
    Ok(decisions)
}

/// `newest - within`, or `None` when that is before the earliest
/// representable time.
fn within_cutoff(newest: Timestamp, within: HumanDuration) -> Option<Timestamp> {
    let secs = i64::try_from(within.as_secs()).ok()?;
    newest.checked_sub(SignedDuration::from_secs(secs)).ok()
}

#[cfg(test)]
mod tests;
