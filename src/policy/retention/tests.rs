//! The retention rules, case by case, and their properties.
use super::*;

use std::cmp::Reverse;
use std::collections::BTreeSet;

use proptest::prelude::*;

/// The POSIX rule of Europe/Brussels and Europe/Paris since 1996: the
/// fallback when the system has no tz database (slim CI images).
const CET_POSIX: &str = "CET-1CEST,M3.5.0,M10.5.0/3";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn zone(name: &str, posix: &str) -> TimeZone {
    TimeZone::get(name)
        .or_else(|_| TimeZone::posix(posix))
        .unwrap()
}

fn brussels() -> TimeZone {
    zone("Europe/Brussels", CET_POSIX)
}

fn paris() -> TimeZone {
    zone("Europe/Paris", CET_POSIX)
}

fn new_york() -> TimeZone {
    zone("America/New_York", "EST5EDT,M3.2.0,M11.1.0")
}

fn snap(id: &str, time: &str) -> Candidate {
    Candidate {
        id: id.to_owned(),
        time: ts(time),
        tags: Vec::new(),
        pinned: false,
        complete: true,
    }
}

fn snaps(times: &[(&str, &str)]) -> Vec<Candidate> {
    times.iter().map(|(id, t)| snap(id, t)).collect()
}

fn now() -> Timestamp {
    ts("2027-06-01T00:00:00Z")
}

fn kept(decisions: &[Decision]) -> Vec<&str> {
    decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.id.as_str())
        .collect()
}

fn reasons(decisions: &[Decision], id: &str) -> Vec<String> {
    let d = decisions.iter().find(|d| d.id == id).unwrap();
    d.reasons.iter().map(ToString::to_string).collect()
}

fn misses(decisions: &[Decision], id: &str) -> Vec<String> {
    let d = decisions.iter().find(|d| d.id == id).unwrap();
    d.misses.iter().map(ToString::to_string).collect()
}

fn dur(s: &str) -> HumanDuration {
    s.parse().unwrap()
}

// ---- safety ----

#[test]
fn empty_policy_is_refused_even_with_pinned_snapshots() {
    let mut list = snaps(&[("a", "2026-01-01T00:00:00Z")]);
    list[0].pinned = true;
    let err = apply(&RetentionPolicy::default(), &list, now()).unwrap_err();
    assert_eq!(err, RetentionError::NoRule);
    assert_eq!(
        err.to_string(),
        "no retention rule given: refusing to forget every snapshot"
    );
    assert_eq!(crate::Error::from(err).exit_code(), 2);
    assert!(apply::<String>(&RetentionPolicy::default(), &[], now()).is_err());
}

#[test]
fn zero_counts_and_zero_window_are_no_rule() {
    let policy = RetentionPolicy {
        keep_last: Some(0),
        keep_hourly: Some(0),
        keep_daily: Some(0),
        keep_weekly: Some(0),
        keep_monthly: Some(0),
        keep_yearly: Some(0),
        keep_within: Some(HumanDuration::ZERO),
        ..RetentionPolicy::default()
    };
    assert!(policy.is_empty());
    assert_eq!(policy.to_string(), "no retention rule");
    assert!(apply::<String>(&policy, &[], now()).is_err());
    for rule in [
        RetentionPolicy {
            keep_weekly: Some(1),
            ..RetentionPolicy::default()
        },
        RetentionPolicy {
            keep_within: Some(dur("1s")),
            ..RetentionPolicy::default()
        },
        RetentionPolicy {
            keep_tags: vec!["x".to_owned()],
            ..RetentionPolicy::default()
        },
    ] {
        assert!(!rule.is_empty(), "{rule}");
    }
}

// ---- the rules ----

#[test]
fn keep_last_keeps_the_newest_whatever_the_input_order() {
    let list = snaps(&[
        ("b", "2026-01-02T00:00:00Z"),
        ("d", "2026-01-04T00:00:00Z"),
        ("a", "2026-01-01T00:00:00Z"),
        ("c", "2026-01-03T00:00:00Z"),
    ]);
    let policy = RetentionPolicy {
        keep_last: Some(2),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    // Decisions come back in input order.
    let ids: Vec<&str> = d.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["b", "d", "a", "c"]);
    assert_eq!(kept(&d), ["d", "c"]);
    assert_eq!(reasons(&d, "d"), ["last"]);
    assert_eq!(misses(&d, "a"), ["not among the last 2"]);
    assert_eq!(d[2].explanation(), "not among the last 2");
    assert_eq!(d[1].explanation(), "last");
}

#[test]
fn equal_times_count_the_first_listed_as_newer() {
    let list = snaps(&[
        ("first", "2026-01-01T00:00:00Z"),
        ("second", "2026-01-01T00:00:00Z"),
    ]);
    let policy = RetentionPolicy {
        keep_last: Some(1),
        keep_daily: Some(5),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["first"]);
    assert_eq!(
        misses(&d, "second"),
        [
            "not among the last 1",
            "daily 2026-01-01 keeps a newer snapshot"
        ]
    );
}

#[test]
fn daily_keeps_the_newest_of_each_of_the_newest_days() {
    let list = snaps(&[
        ("d1-early", "2026-11-20T08:00:00Z"),
        ("d1-late", "2026-11-20T20:00:00Z"),
        ("d2", "2026-11-21T12:00:00Z"),
        ("d4-early", "2026-11-23T01:00:00Z"),
        ("d4-late", "2026-11-23T23:00:00Z"),
    ]);
    let policy = RetentionPolicy {
        keep_daily: Some(2),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["d2", "d4-late"]);
    assert_eq!(reasons(&d, "d4-late"), ["daily 2026-11-23"]);
    assert_eq!(reasons(&d, "d2"), ["daily 2026-11-21"]);
    assert_eq!(
        misses(&d, "d4-early"),
        ["daily 2026-11-23 keeps a newer snapshot"]
    );
    assert_eq!(
        misses(&d, "d1-late"),
        ["daily 2026-11-20: the 2 newer days are already kept"]
    );
    // A taken bucket is reported as taken even after the rule is full.
    assert_eq!(
        misses(&d, "d1-early"),
        ["daily 2026-11-20: the 2 newer days are already kept"]
    );
}

#[test]
fn buckets_full_with_a_count_of_one_reads_well() {
    let list = snaps(&[
        ("old", "2026-01-01T00:00:00Z"),
        ("new", "2026-03-01T00:00:00Z"),
    ]);
    let policy = RetentionPolicy {
        keep_monthly: Some(1),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(
        misses(&d, "old"),
        ["monthly 2026-01: the newer month is already kept"]
    );
}

#[test]
fn within_keeps_the_window_inclusive_and_future_snapshots() {
    // The newest snapshot is in the future: the window counts from now.
    let list = snaps(&[
        ("edge", "2027-05-25T00:00:00Z"),
        ("just-out", "2027-05-24T23:59:59Z"),
        ("future", "2027-06-02T00:00:00Z"),
    ]);
    let policy = RetentionPolicy {
        keep_within: Some(dur("7d")),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["edge", "future"]);
    assert_eq!(reasons(&d, "edge"), ["within 7d"]);
    assert_eq!(
        misses(&d, "just-out"),
        ["older than 7d before the newest snapshot"]
    );
}

#[test]
fn within_counts_back_from_the_newest_snapshot_not_the_clock() {
    // A service whose backups stopped 100 days ago: every snapshot is
    // older than a 30-day window counted from now.
    let list = snaps(&[
        ("newest", "2027-02-21T01:00:00Z"),
        ("a", "2027-02-01T01:00:00Z"),
        ("b", "2027-01-22T01:00:00Z"),
        ("c", "2027-01-21T00:59:59Z"),
    ]);
    let policy = RetentionPolicy {
        keep_within: Some(dur("30d")),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["newest", "a", "b"]);
    assert_eq!(
        misses(&d, "c"),
        ["older than 30d before the newest snapshot"]
    );
}

#[test]
fn a_future_snapshot_does_not_move_the_window_past_now() {
    let list = snaps(&[
        ("skewed", "2030-01-01T00:00:00Z"),
        ("recent", "2027-05-30T00:00:00Z"),
    ]);
    let policy = RetentionPolicy {
        keep_within: Some(dur("7d")),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["skewed", "recent"]);
}

#[test]
fn no_policy_removes_the_newest_complete_snapshot() {
    // A tag rule that keeps nothing, and a newest snapshot that is
    // partial: the newest complete one stays, with its reason.
    let mut list = snaps(&[
        ("partial", "2026-01-03T00:00:00Z"),
        ("good", "2026-01-02T00:00:00Z"),
        ("older", "2026-01-01T00:00:00Z"),
    ]);
    list[0].complete = false;
    let policy = RetentionPolicy {
        keep_tags: vec!["never-used".into()],
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["good"]);
    assert_eq!(reasons(&d, "good"), ["newest"]);
    // None complete: the newest of all stays.
    for c in &mut list {
        c.complete = false;
    }
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["partial"]);
}

#[test]
fn within_longer_than_representable_time_keeps_everything() {
    let list = snaps(&[("old", "1970-01-01T00:00:00Z")]);
    let policy = RetentionPolicy {
        keep_within: Some(HumanDuration::from_secs(u64::MAX)),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["old"]);
}

#[test]
fn tags_keep_every_tagged_snapshot() {
    let mut list = snaps(&[
        ("pre", "2026-01-01T00:00:00Z"),
        ("both", "2026-01-02T00:00:00Z"),
        ("plain", "2026-01-03T00:00:00Z"),
        ("post", "2026-01-04T00:00:00Z"),
    ]);
    list[0].tags = vec!["pre-change".to_owned()];
    list[1].tags = vec!["post-change".to_owned(), "pre-change".to_owned()];
    list[3].tags = vec!["post-change".to_owned()];
    let policy = RetentionPolicy {
        keep_tags: vec![
            "pre-change".to_owned(),
            "post-change".to_owned(),
            "pre-change".to_owned(),
        ],
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["pre", "both", "post"]);
    assert_eq!(reasons(&d, "pre"), ["tag pre-change"]);
    assert_eq!(reasons(&d, "both"), ["tag pre-change", "tag post-change"]);
    assert_eq!(
        misses(&d, "plain"),
        ["has none of the tags pre-change, post-change"]
    );

    let one = RetentionPolicy {
        keep_tags: vec!["pre-change".to_owned()],
        ..RetentionPolicy::default()
    };
    let d = apply(&one, &list, now()).unwrap();
    assert_eq!(misses(&d, "plain"), ["has no tag pre-change"]);
    // The newest snapshot has no pre-change tag, and stays anyway.
    assert_eq!(reasons(&d, "post"), ["newest"]);
}

#[test]
fn pinned_is_always_kept_and_rules_still_count_it() {
    let mut list = snaps(&[
        ("old", "2020-01-01T00:00:00Z"),
        ("newest", "2026-01-02T00:00:00Z"),
        ("middle", "2026-01-01T00:00:00Z"),
    ]);
    list[0].pinned = true;
    list[1].pinned = true;
    let policy = RetentionPolicy {
        keep_last: Some(1),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["old", "newest"]);
    assert_eq!(reasons(&d, "old"), ["pinned"]);
    // Rules are independent: the pinned newest snapshot also takes the
    // keep-last slot.
    assert_eq!(reasons(&d, "newest"), ["pinned", "last"]);
    assert_eq!(misses(&d, "middle"), ["not among the last 1"]);
    assert!(misses(&d, "old").is_empty());
}

#[test]
fn reasons_come_in_rule_order() {
    let mut list = snaps(&[("a", "2027-05-31T10:00:00Z")]);
    list[0].pinned = true;
    list[0].tags = vec!["t".to_owned()];
    let policy = RetentionPolicy {
        keep_last: Some(1),
        keep_hourly: Some(1),
        keep_daily: Some(1),
        keep_weekly: Some(1),
        keep_monthly: Some(1),
        keep_yearly: Some(1),
        keep_within: Some(dur("1d")),
        keep_tags: vec!["t".to_owned()],
        time_zone: TimeZone::UTC,
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(
        reasons(&d, "a"),
        [
            "pinned",
            "last",
            "hourly 2027-05-31T10",
            "daily 2027-05-31",
            "weekly 2027-W22",
            "monthly 2027-05",
            "yearly 2027",
            "within 1d",
            "tag t",
        ]
    );
    assert_eq!(d[0].explanation().matches(", ").count(), 8);
}

// ---- daylight saving ----

#[test]
fn brussels_fall_back_repeated_hour_is_one_hourly_bucket() {
    // 2026-10-25: at 01:00 UTC Brussels goes from 03:00 CEST back to 02:00 CET.
    let list = snaps(&[
        ("0210-cest", "2026-10-25T00:10:00Z"),
        ("0240-cest", "2026-10-25T00:40:00Z"),
        ("0210-cet", "2026-10-25T01:10:00Z"),
        ("0240-cet", "2026-10-25T01:40:00Z"),
        ("0310-cet", "2026-10-25T02:10:00Z"),
        ("0130-cest", "2026-10-24T23:30:00Z"),
    ]);
    let policy = RetentionPolicy {
        keep_hourly: Some(10),
        time_zone: brussels(),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["0240-cet", "0310-cet", "0130-cest"]);
    assert_eq!(reasons(&d, "0310-cet"), ["hourly 2026-10-25T03"]);
    assert_eq!(reasons(&d, "0240-cet"), ["hourly 2026-10-25T02"]);
    assert_eq!(reasons(&d, "0130-cest"), ["hourly 2026-10-25T01"]);
    for id in ["0210-cest", "0240-cest", "0210-cet"] {
        assert_eq!(
            misses(&d, id),
            ["hourly 2026-10-25T02 keeps a newer snapshot"],
            "{id}"
        );
    }
    // In UTC the same snapshots are five distinct hours.
    let utc = RetentionPolicy {
        time_zone: TimeZone::UTC,
        ..policy
    };
    assert_eq!(kept(&apply(&utc, &list, now()).unwrap()).len(), 4);
}

#[test]
fn brussels_fall_back_day_has_25_hours_in_one_daily_bucket() {
    let list = snaps(&[
        // 00:30 CEST on the 25th (the 24th in UTC).
        ("start", "2026-10-24T22:30:00Z"),
        // 02:30 CEST and 02:30 CET: both the 25th.
        ("dup-cest", "2026-10-25T00:30:00Z"),
        ("dup-cet", "2026-10-25T01:30:00Z"),
        // 23:30 CET, still the 25th (the 25th in UTC too).
        ("end", "2026-10-25T22:30:00Z"),
        // 00:30 CET on the 26th (the 25th in UTC).
        ("next", "2026-10-25T23:30:00Z"),
    ]);
    let policy = RetentionPolicy {
        keep_daily: Some(7),
        time_zone: brussels(),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["end", "next"]);
    assert_eq!(reasons(&d, "next"), ["daily 2026-10-26"]);
    assert_eq!(reasons(&d, "end"), ["daily 2026-10-25"]);
    assert_eq!(
        misses(&d, "start"),
        ["daily 2026-10-25 keeps a newer snapshot"]
    );
}

#[test]
fn paris_spring_forward_skips_an_hour_and_keeps_the_day() {
    // 2026-03-29: at 01:00 UTC Paris jumps from 02:00 CET to 03:00 CEST.
    let list = snaps(&[
        ("0130-cet", "2026-03-29T00:30:00Z"),
        ("0159-cet", "2026-03-29T00:59:59Z"),
        ("0300-cest", "2026-03-29T01:00:00Z"),
        ("0330-cest", "2026-03-29T01:30:00Z"),
    ]);
    let hourly = RetentionPolicy {
        keep_hourly: Some(10),
        time_zone: paris(),
        ..RetentionPolicy::default()
    };
    let d = apply(&hourly, &list, now()).unwrap();
    assert_eq!(kept(&d), ["0159-cet", "0330-cest"]);
    assert_eq!(reasons(&d, "0159-cet"), ["hourly 2026-03-29T01"]);
    assert_eq!(reasons(&d, "0330-cest"), ["hourly 2026-03-29T03"]);

    let list = snaps(&[
        ("first", "2026-03-28T23:30:00Z"), // 00:30 CET on the 29th
        ("last", "2026-03-29T21:30:00Z"),  // 23:30 CEST on the 29th
        ("next", "2026-03-29T22:30:00Z"),  // 00:30 CEST on the 30th
    ]);
    let daily = RetentionPolicy {
        keep_daily: Some(7),
        time_zone: paris(),
        ..RetentionPolicy::default()
    };
    let d = apply(&daily, &list, now()).unwrap();
    assert_eq!(kept(&d), ["last", "next"]);
    assert_eq!(reasons(&d, "last"), ["daily 2026-03-29"]);
    assert_eq!(reasons(&d, "next"), ["daily 2026-03-30"]);
    assert_eq!(
        misses(&d, "first"),
        ["daily 2026-03-29 keeps a newer snapshot"]
    );
}

// ---- calendar boundaries ----

#[test]
fn iso_week_spans_the_year_boundary() {
    // 2026 starts on a Thursday, so it has 53 ISO weeks, and Friday
    // 1 January 2027 is still in 2026-W53.
    let new_year = civil::date(2027, 1, 1).iso_week_date();
    assert_eq!((new_year.year(), new_year.week()), (2026, 53));
    let list = snaps(&[
        ("mon", "2026-12-28T12:00:00Z"),
        ("thu", "2026-12-31T12:00:00Z"),
        ("fri", "2027-01-01T12:00:00Z"),
        ("sun", "2027-01-03T12:00:00Z"),
        ("next-mon", "2027-01-04T12:00:00Z"),
        ("prev-sun", "2026-12-27T12:00:00Z"),
    ]);
    let policy = RetentionPolicy {
        keep_weekly: Some(10),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(kept(&d), ["sun", "next-mon", "prev-sun"]);
    assert_eq!(reasons(&d, "next-mon"), ["weekly 2027-W01"]);
    assert_eq!(reasons(&d, "sun"), ["weekly 2026-W53"]);
    assert_eq!(reasons(&d, "prev-sun"), ["weekly 2026-W52"]);
    for id in ["mon", "thu", "fri"] {
        assert_eq!(
            misses(&d, id),
            ["weekly 2026-W53 keeps a newer snapshot"],
            "{id}"
        );
    }
}

#[test]
fn iso_week_follows_the_policy_time_zone() {
    // Sunday 23:30 UTC is already Monday 00:30 in Brussels.
    let t = ts("2026-12-27T23:30:00Z");
    assert_eq!(
        Bucket::of(Period::Weekly, t, &TimeZone::UTC).to_string(),
        "2026-W52"
    );
    assert_eq!(
        Bucket::of(Period::Weekly, t, &brussels()).to_string(),
        "2026-W53"
    );
}

#[test]
fn month_and_year_boundaries_in_local_time() {
    let bru = brussels();
    // 23:30 UTC on 31 October is 00:30 CET on 1 November.
    let t = ts("2026-10-31T23:30:00Z");
    assert_eq!(Bucket::of(Period::Monthly, t, &bru).to_string(), "2026-11");
    assert_eq!(
        Bucket::of(Period::Monthly, t, &TimeZone::UTC).to_string(),
        "2026-10"
    );
    let t = ts("2026-10-31T22:30:00Z");
    assert_eq!(Bucket::of(Period::Monthly, t, &bru).to_string(), "2026-10");

    let par = paris();
    let t = ts("2026-12-31T23:30:00Z");
    assert_eq!(Bucket::of(Period::Yearly, t, &par).to_string(), "2027");
    let t = ts("2026-12-31T22:59:59Z");
    assert_eq!(Bucket::of(Period::Yearly, t, &par).to_string(), "2026");
    // West of Greenwich the year ends later.
    let t = ts("2027-01-01T03:00:00Z");
    assert_eq!(
        Bucket::of(Period::Yearly, t, &new_york()).to_string(),
        "2026"
    );
    assert_eq!(
        Bucket::of(Period::Hourly, t, &new_york()).to_string(),
        "2026-12-31T22"
    );

    let list = snaps(&[
        ("oct", "2026-10-31T22:30:00Z"),
        ("nov", "2026-10-31T23:30:00Z"),
        ("dec", "2026-12-31T22:30:00Z"),
        ("jan", "2026-12-31T23:30:00Z"),
    ]);
    let policy = RetentionPolicy {
        keep_monthly: Some(3),
        keep_yearly: Some(5),
        time_zone: par,
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(reasons(&d, "jan"), ["monthly 2027-01", "yearly 2027"]);
    assert_eq!(reasons(&d, "dec"), ["monthly 2026-12", "yearly 2026"]);
    assert_eq!(reasons(&d, "nov"), ["monthly 2026-11"]);
    assert_eq!(
        misses(&d, "oct"),
        [
            "monthly 2026-10: the 3 newer months are already kept",
            "yearly 2026 keeps a newer snapshot"
        ]
    );
}

// ---- display and serde ----

#[test]
fn policy_display() {
    let policy = RetentionPolicy {
        keep_daily: Some(7),
        keep_weekly: Some(4),
        keep_within: Some(dur("90d")),
        ..RetentionPolicy::default()
    };
    assert_eq!(policy.to_string(), "keep 7 daily, 4 weekly, within 90d");
    let full = RetentionPolicy {
        keep_last: Some(3),
        keep_hourly: Some(24),
        keep_monthly: Some(12),
        keep_yearly: Some(2),
        keep_tags: vec!["pre-change".to_owned(), "post-change".to_owned()],
        time_zone: brussels(),
        ..policy
    };
    let text = full.to_string();
    assert!(
        text.starts_with(
            "keep last 3, 24 hourly, 7 daily, 4 weekly, 12 monthly, 2 yearly, \
             within 90d, tagged pre-change or post-change"
        ),
        "{text}"
    );
    if TimeZone::get("Europe/Brussels").is_ok() {
        assert!(text.ends_with(" (time zone Europe/Brussels)"), "{text}");
    }
    let tz_unused = RetentionPolicy {
        keep_within: Some(dur("90d")),
        time_zone: brussels(),
        ..RetentionPolicy::default()
    };
    assert_eq!(tz_unused.to_string(), "keep within 90d");
}

#[test]
fn decision_serializes_as_plain_json() {
    let mut list = snaps(&[("a", "2026-11-22T10:00:00Z"), ("b", "2026-11-22T09:00:00Z")]);
    list[0].pinned = true;
    let policy = RetentionPolicy {
        keep_daily: Some(1),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"id": "a", "time": "2026-11-22T10:00:00Z", "keep": true,
             "reasons": ["pinned", "daily 2026-11-22"], "misses": []},
            {"id": "b", "time": "2026-11-22T09:00:00Z", "keep": false,
             "reasons": [], "misses": ["daily 2026-11-22 keeps a newer snapshot"]},
        ])
    );
}

#[test]
fn generic_ids_work() {
    let list = vec![Candidate {
        id: 42u64,
        time: ts("2026-01-01T00:00:00Z"),
        tags: Vec::new(),
        pinned: false,
        complete: true,
    }];
    let policy = RetentionPolicy {
        keep_last: Some(1),
        ..RetentionPolicy::default()
    };
    let d = apply(&policy, &list, now()).unwrap();
    assert_eq!(d[0].id, 42);
    assert!(d[0].keep);
}

// ---- property tests against a reference model ----

/// 2025-01-01T00:00:00Z.
const BASE: i64 = 1_735_689_600;
/// About three years.
const SPAN: i64 = 3 * 365 * 86_400;
/// 2026-10-25T00:00:00Z: the Brussels fall-back night.
const FALL_BACK: i64 = 1_792_886_400;

fn arb_offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        // Anywhere in three years: mostly distinct days.
        4 => 0..SPAN,
        // The last three weeks: many per day and hour.
        3 => (SPAN - 21 * 86_400)..SPAN,
        // Whole hours: exact ties.
        2 => (0i64..200).prop_map(|k| SPAN - k * 3_600),
        // Around a DST change, every 10 minutes.
        1 => (0i64..24).prop_map(|k| FALL_BACK - BASE + k * 600),
    ]
}

fn arb_snapshots() -> impl Strategy<Value = Vec<Candidate>> {
    let one = (
        arb_offset(),
        proptest::sample::subsequence(vec!["a", "b", "c"], 0..=3),
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.9),
    );
    proptest::collection::vec(one, 0..200).prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(|(i, (offset, tags, pinned, complete))| Candidate {
                id: format!("s{i}"),
                time: Timestamp::from_second(BASE + offset).unwrap(),
                tags: tags.into_iter().map(str::to_owned).collect(),
                pinned,
                complete,
            })
            .collect()
    })
}

fn arb_zone() -> impl Strategy<Value = TimeZone> {
    prop_oneof![
        Just(TimeZone::UTC),
        Just(TimeZone::posix(CET_POSIX).unwrap()),
        Just(TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap()),
        // Lord Howe Island: a 30-minute DST shift.
        Just(TimeZone::posix("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0").unwrap()),
        Just(TimeZone::posix("IST-5:30").unwrap()),
    ]
}

fn arb_count() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![3 => Just(None), 1 => Just(Some(0)), 3 => (1u32..15).prop_map(Some)]
}

fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
    (
        (arb_count(), arb_count(), arb_count()),
        (arb_count(), arb_count(), arb_count()),
        proptest::option::weighted(0.3, 0u64..(SPAN as u64)),
        proptest::sample::subsequence(vec!["a", "b", "d"], 0..=1),
        arb_zone(),
    )
        .prop_map(
            |((last, hourly, daily), (weekly, monthly, yearly), within, tags, zone)| {
                RetentionPolicy {
                    keep_last: last,
                    keep_hourly: hourly,
                    keep_daily: daily,
                    keep_weekly: weekly,
                    keep_monthly: monthly,
                    keep_yearly: yearly,
                    keep_within: within.map(HumanDuration::from_secs),
                    keep_tags: tags.into_iter().map(str::to_owned).collect(),
                    time_zone: zone,
                }
            },
        )
}

fn arb_now() -> impl Strategy<Value = Timestamp> {
    (0i64..30 * 86_400).prop_map(|s| Timestamp::from_second(BASE + SPAN + s).unwrap())
}

/// Indices of `snaps`, newest first, equal times in input order.
fn newest_first(snaps: &[Candidate]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..snaps.len()).collect();
    order.sort_by_key(|&i| Reverse(snaps[i].time));
    order
}

type Key = (i32, i32, i32, i32);

/// The bucket keys of the reference model, computed from the zoned
/// date-time independently of `Bucket`.
fn model_key(rule: usize, time: Timestamp, tz: &TimeZone) -> Key {
    let z = time.to_zoned(tz.clone());
    let (y, m, d, h) = (
        i32::from(z.year()),
        i32::from(z.month()),
        i32::from(z.day()),
        i32::from(z.hour()),
    );
    match rule {
        0 => (y, m, d, h),
        1 => (y, m, d, -1),
        2 => {
            let w = z.date().iso_week_date();
            (i32::from(w.year()), -1, i32::from(w.week()), -1)
        }
        3 => (y, m, -1, -1),
        _ => (y, -1, -1, -1),
    }
}

/// A straightforward reference model of the rules: the kept indices.
fn model(policy: &RetentionPolicy, snaps: &[Candidate], now: Timestamp) -> BTreeSet<usize> {
    let order = newest_first(snaps);
    let mut kept = BTreeSet::new();
    for (i, s) in snaps.iter().enumerate() {
        if s.pinned {
            kept.insert(i);
        }
    }
    if let Some(n) = policy.keep_last {
        for &i in order.iter().take(n as usize) {
            kept.insert(i);
        }
    }
    let counts = [
        policy.keep_hourly,
        policy.keep_daily,
        policy.keep_weekly,
        policy.keep_monthly,
        policy.keep_yearly,
    ];
    for (rule, count) in counts.into_iter().enumerate() {
        let Some(n) = count else { continue };
        let mut seen: HashSet<Key> = HashSet::new();
        for &i in &order {
            let key = model_key(rule, snaps[i].time, &policy.time_zone);
            if seen.contains(&key) {
                continue;
            }
            if seen.len() == n as usize {
                break;
            }
            seen.insert(key);
            kept.insert(i);
        }
    }
    if let Some(d) = policy.keep_within.filter(|d| !d.is_zero()) {
        let cutoff = window_start(snaps, now, d.as_secs());
        for (i, s) in snaps.iter().enumerate() {
            if s.time.as_second() >= cutoff {
                kept.insert(i);
            }
        }
    }
    for (i, s) in snaps.iter().enumerate() {
        if policy.keep_tags.iter().any(|t| s.tags.contains(t)) {
            kept.insert(i);
        }
    }
    // The newest complete snapshot (else the newest) is always kept.
    if let Some(&i) = order.iter().find(|&&i| snaps[i].complete).or(order.first()) {
        kept.insert(i);
    }
    kept
}

/// The first second of a `keep_within` window of `secs`: counted back
/// from the newest snapshot, or from `now` when that is earlier.
fn window_start(snaps: &[Candidate], now: Timestamp, secs: u64) -> i64 {
    let newest = snaps
        .iter()
        .map(|s| s.time.as_second())
        .max()
        .unwrap_or(i64::MAX)
        .min(now.as_second());
    newest - secs as i64
}

fn kept_set(decisions: &[Decision]) -> BTreeSet<usize> {
    decisions
        .iter()
        .enumerate()
        .filter(|(_, d)| d.keep)
        .map(|(i, _)| i)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn kept_set_matches_the_reference_model(
        snaps in arb_snapshots(),
        policy in arb_policy(),
        now in arb_now(),
    ) {
        let result = apply(&policy, &snaps, now);
        if policy.is_empty() {
            prop_assert_eq!(result, Err(RetentionError::NoRule));
            return Ok(());
        }
        let decisions = result.unwrap();
        prop_assert_eq!(decisions.len(), snaps.len());
        for (d, s) in decisions.iter().zip(&snaps) {
            prop_assert_eq!(&d.id, &s.id);
            prop_assert_eq!(d.time, s.time);
            prop_assert_eq!(d.keep, !d.reasons.is_empty());
            prop_assert!(d.keep || !d.misses.is_empty());
            prop_assert!(!d.keep || d.misses.is_empty());
            // (4) pinned is always kept, with its reason.
            if s.pinned {
                prop_assert!(d.keep);
                prop_assert_eq!(d.reasons.first(), Some(&Reason::Pinned));
            }
        }
        // (1) the same set as the reference model.
        prop_assert_eq!(kept_set(&decisions), model(&policy, &snaps, now));
    }

    #[test]
    fn calendar_rules_keep_at_most_n_distinct_buckets(
        snaps in arb_snapshots(),
        policy in arb_policy(),
        now in arb_now(),
    ) {
        prop_assume!(!policy.is_empty());
        let decisions = apply(&policy, &snaps, now).unwrap();
        for period in Period::ALL {
            let buckets: Vec<Bucket> = decisions
                .iter()
                .flat_map(|d| &d.reasons)
                .filter_map(|r| match r {
                    Reason::Calendar(b) if b.period() == period => Some(*b),
                    _ => None,
                })
                .collect();
            let distinct: HashSet<Bucket> = buckets.iter().copied().collect();
            // (2) at most N, each bucket once, and exactly N when the
            // timeline has that many buckets.
            prop_assert_eq!(distinct.len(), buckets.len());
            let available: HashSet<Bucket> = snaps
                .iter()
                .map(|s| Bucket::of(period, s.time, &policy.time_zone))
                .collect();
            let n = policy.keep_count(period).unwrap_or(0) as usize;
            prop_assert_eq!(buckets.len(), n.min(available.len()));
            // Each kept bucket holds the reason's snapshot's own time.
            for (d, s) in decisions.iter().zip(&snaps) {
                for r in &d.reasons {
                    if let Reason::Calendar(b) = r {
                        prop_assert_eq!(*b, Bucket::of(b.period(), s.time, &policy.time_zone));
                    }
                }
            }
        }
    }

    #[test]
    fn within_alone_keeps_exactly_the_window(
        snaps in arb_snapshots(),
        secs in 1u64..(SPAN as u64),
        now in arb_now(),
    ) {
        let within = HumanDuration::from_secs(secs);
        let policy = RetentionPolicy {
            keep_within: Some(within),
            ..RetentionPolicy::default()
        };
        let decisions = apply(&policy, &snaps, now).unwrap();
        let cutoff = window_start(&snaps, now, secs);
        for (d, s) in decisions.iter().zip(&snaps) {
            let inside = s.time.as_second() >= cutoff;
            // (3)
            prop_assert_eq!(d.reasons.contains(&Reason::Within(within)), inside);
            prop_assert_eq!(
                d.keep,
                inside || s.pinned || d.reasons == [Reason::Newest]
            );
        }
        // The window never comes out empty: the newest is inside.
        prop_assert!(snaps.is_empty() || decisions.iter().any(|d| d.keep));
    }

    #[test]
    fn keep_last_alone_keeps_the_n_newest(
        snaps in arb_snapshots(),
        n in 1u32..250,
        now in arb_now(),
    ) {
        let policy = RetentionPolicy {
            keep_last: Some(n),
            ..RetentionPolicy::default()
        };
        let decisions = apply(&policy, &snaps, now).unwrap();
        let order = newest_first(&snaps);
        let expected: BTreeSet<usize> =
            order.iter().take(n as usize).copied().collect();
        let with_last: BTreeSet<usize> = decisions
            .iter()
            .enumerate()
            .filter(|(_, d)| d.reasons.contains(&Reason::Last))
            .map(|(i, _)| i)
            .collect();
        // (5)
        prop_assert_eq!(with_last.len(), (n as usize).min(snaps.len()));
        prop_assert_eq!(&with_last, &expected);
        for (i, (d, s)) in decisions.iter().zip(&snaps).enumerate() {
            prop_assert_eq!(
                d.keep,
                expected.contains(&i) || s.pinned || d.reasons == [Reason::Newest]
            );
        }
    }
}
