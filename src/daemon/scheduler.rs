//! When jobs run: one task per (service, job kind) sleeps until the next time
//! its schedule gives, plus a fixed per-entry jitter, then queues a job.
//!
//! A run missed while the daemon was down is caught up once, at start-up, if
//! the newest missed time is within the entry's catch-up window; older misses
//! are logged and skipped (a backup from three weeks ago is not worth running
//! now, the next scheduled one is). The time of the last run a schedule started
//! is kept in the catalog, so catch-up survives restarts.
//!
//! Time comes from a [`Clock`]: the system's in production, the tokio clock in
//! tests, so scheduler tests run on a paused clock without real sleeping.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, watch};

use super::records::{JobKind, Trigger};
use crate::catalog::Catalog;
use crate::config::ServiceKey;
use crate::policy::schedule::Schedule;
use crate::Result;

/// The longest single sleep: the wall clock is re-read at least this often, so
/// a suspended machine or a clock step is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Bound on the missed runs counted at start-up (a per-second schedule after a
/// month down).
const MAX_MISSED_SCAN: usize = 100_000;

/// Where "now" comes from.
pub(crate) trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A wall clock driven by tokio's clock: `base` plus the tokio time elapsed
/// since creation. With `tokio::time::pause` it only moves when tokio
/// advances time, which makes scheduler tests exact and instant.
#[derive(Debug, Clone, Copy)]
#[cfg(test)]
pub(crate) struct TokioClock {
    base: Timestamp,
    start: tokio::time::Instant,
}

#[cfg(test)]
impl TokioClock {
    /// A clock that reads `base` now.
    pub(crate) fn starting_at(base: Timestamp) -> TokioClock {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

#[cfg(test)]
impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.start.elapsed()).unwrap_or(SignedDuration::MAX);
        self.base.checked_add(elapsed).unwrap_or(Timestamp::MAX)
    }
}

/// One scheduled job kind of one service.
#[derive(Clone)]
pub struct Entry {
    /// The tenant's ID, as in the config.
    pub tenant: String,
    /// The service's name within its tenant.
    pub service: String,
    /// What to run.
    pub kind: JobKind,
    /// When.
    pub schedule: Arc<dyn Schedule>,
    /// Upper bound of the delay added to every run (the delay itself is fixed
    /// per entry, so runs stay evenly spaced while services spread out).
    pub jitter: Duration,
    /// A run missed by at most this much is caught up at start-up; zero
    /// disables catch-up.
    pub catch_up: Duration,
}

impl Entry {
    /// The service this entry runs for.
    pub(crate) fn key(&self) -> ServiceKey {
        ServiceKey::new(&self.tenant, &self.service)
    }

    /// This entry's fixed delay: a hash of its identity, below `jitter`.
    pub fn delay(&self) -> Duration {
        let ms = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return Duration::ZERO;
        }
        let h = blake3::hash(
            format!("{}/{}/{}", self.tenant, self.service, self.kind.name()).as_bytes(),
        );
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        Duration::from_millis(u64::from_le_bytes(b) % ms)
    }
}

/// A job the scheduler (or the API) wants run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// The tenant's ID, as in the config.
    pub tenant: String,
    /// The service's name within its tenant.
    pub service: String,
    /// What.
    pub kind: JobKind,
    /// Why.
    pub trigger: Trigger,
    /// Snapshot tags (on-demand backups: `pre-change`, `post-change`, ...).
    pub tags: Vec<String>,
    /// The schedule time it stands for, if any.
    pub due: Option<Timestamp>,
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Sleeps until `clock` reads `at` or later. Returns false if `shutdown`
/// fired first.
pub(crate) async fn sleep_until(
    clock: &dyn Clock,
    at: Timestamp,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        if *shutdown.borrow() {
            return false;
        }
        let now = clock.now();
        if now >= at {
            return true;
        }
        let left = Duration::try_from(at.duration_since(now)).unwrap_or(MAX_SLEEP);
        tokio::select! {
            () = tokio::time::sleep(left.min(MAX_SLEEP)) => {}
            r = shutdown.changed() => if r.is_err() { return false; },
        }
    }
}

/// Runs one entry until shutdown: catch-up first, then every scheduled time.
///
/// # Errors
/// Catalog errors (the entry stops; the daemon logs it).
pub(crate) async fn run_entry(
    entry: Entry,
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    queue: mpsc::Sender<Request>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let request = |trigger: Trigger, due: Timestamp| Request {
        tenant: entry.tenant.clone(),
        service: entry.service.clone(),
        kind: entry.kind,
        trigger,
        tags: Vec::new(),
        due: Some(due),
    };
    // Nothing is recorded or queued for a tenant whose erasure has started
    // (its records are purged at the end, and must stay purged).
    let refused = || {
        catalog
            .erasure(&entry.tenant)
            .ok()
            .flatten()
            .is_some_and(|e| e.state.refused())
    };
    let now = clock.now();
    if refused() {
        tracing::info!(tenant = %entry.tenant, service = %entry.service, job = entry.kind.name(),
            "not scheduled: the tenant's erasure has started");
        return Ok(());
    }
    let mut last = match catalog.last_run(&entry.key(), entry.kind)? {
        Some(last) => {
            let (mut missed, mut count, mut t) = (None, 0usize, last);
            while let Some(next) = entry.schedule.next_after(t) {
                if next > now || count >= MAX_MISSED_SCAN {
                    break;
                }
                missed = Some(next);
                count += 1;
                t = next;
            }
            if let Some(m) = missed {
                let late = Duration::try_from(now.duration_since(m)).unwrap_or(Duration::MAX);
                if !entry.catch_up.is_zero() && late <= entry.catch_up {
                    tracing::info!(
                        tenant = %entry.tenant, service = %entry.service, job = entry.kind.name(),
                        missed = count, due = %m,
                        "catching up a run missed while the daemon was down"
                    );
                    catalog.set_last_run(&entry.key(), entry.kind, m)?;
                    if queue.send(request(Trigger::CatchUp, m)).await.is_err() {
                        return Ok(());
                    }
                } else {
                    tracing::warn!(
                        tenant = %entry.tenant, service = %entry.service, job = entry.kind.name(),
                        missed = count, due = %m,
                        "runs missed while the daemon was down are older than the catch-up window: skipped"
                    );
                    catalog.set_last_run(&entry.key(), entry.kind, m)?;
                }
                m
            } else {
                last
            }
        }
        None => now,
    };
    let delay = entry.delay();
    loop {
        let Some(due) = entry.schedule.next_after(last) else {
            tracing::info!(tenant = %entry.tenant, service = %entry.service, job = entry.kind.name(), "schedule has no further runs");
            return Ok(());
        };
        if !sleep_until(clock.as_ref(), add(due, delay), &mut shutdown).await {
            return Ok(());
        }
        if refused() {
            tracing::info!(tenant = %entry.tenant, service = %entry.service, job = entry.kind.name(),
                "schedule stopped: the tenant's erasure has started");
            return Ok(());
        }
        catalog.set_last_run(&entry.key(), entry.kind, due)?;
        if queue.send(request(Trigger::Schedule, due)).await.is_err() {
            return Ok(());
        }
        last = due;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `period` from the epoch.
    struct Every(Duration);

    impl Schedule for Every {
        fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
            let p = self.0.as_secs() as i64;
            let s = after.as_second();
            Timestamp::from_second((s.div_euclid(p) + 1) * p).ok()
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn entry(period: Duration, jitter: Duration, catch_up: Duration) -> Entry {
        Entry {
            tenant: "acme".into(),
            service: "db".into(),
            kind: JobKind::Backup,
            schedule: Arc::new(Every(period)),
            jitter,
            catch_up,
        }
    }

    async fn collect(
        e: Entry,
        catalog: &Catalog,
        start: Timestamp,
        run_for: Duration,
    ) -> Vec<(Timestamp, Request)> {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(start));
        let (tx, mut rx) = mpsc::channel(100);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_entry(e, catalog.clone(), clock.clone(), tx, stop_rx));
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + run_for;
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => got.push((clock.now(), r)),
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        stop_tx.send(true).unwrap();
        task.await.unwrap().unwrap();
        got
    }

    #[tokio::test(start_paused = true)]
    async fn runs_at_each_scheduled_time_without_real_sleeping() {
        let c = Catalog::temporary().unwrap();
        let hour = Duration::from_secs(3600);
        let wall = std::time::Instant::now();
        let got = collect(
            entry(hour, Duration::ZERO, hour),
            &c,
            t("2026-11-22T10:30:00Z"),
            hour * 3,
        )
        .await;
        assert!(wall.elapsed() < Duration::from_secs(5), "slept for real");
        let times: Vec<_> = got
            .iter()
            .map(|(at, r)| (at.to_string(), r.due.unwrap().to_string()))
            .collect();
        assert_eq!(
            times,
            [
                (
                    "2026-11-22T11:00:00Z".to_string(),
                    "2026-11-22T11:00:00Z".to_string()
                ),
                ("2026-11-22T12:00:00Z".into(), "2026-11-22T12:00:00Z".into()),
                ("2026-11-22T13:00:00Z".into(), "2026-11-22T13:00:00Z".into()),
            ]
        );
        assert!(got.iter().all(|(_, r)| r.trigger == Trigger::Schedule));
        assert_eq!(
            c.last_run(&ServiceKey::new("acme", "db"), JobKind::Backup)
                .unwrap(),
            Some(t("2026-11-22T13:00:00Z"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_delays_each_run_by_the_same_amount_below_the_bound() {
        let c = Catalog::temporary().unwrap();
        let hour = Duration::from_secs(3600);
        let jitter = Duration::from_secs(600);
        let e = entry(hour, jitter, Duration::ZERO);
        let delay = e.delay();
        assert!(delay < jitter);
        let mut other = e.clone();
        other.service = "web".into();
        assert_ne!(other.delay(), delay, "services spread out");
        let got = collect(e, &c, t("2026-11-22T10:30:00Z"), hour * 2).await;
        assert_eq!(got.len(), 2);
        for (at, r) in &got {
            let late = at.duration_since(r.due.unwrap());
            assert_eq!(Duration::try_from(late).unwrap(), delay);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_missed_while_down_is_caught_up_once() {
        let c = Catalog::temporary().unwrap();
        let hour = Duration::from_secs(3600);
        // Last run at 06:00; the daemon comes back at 10:30: 07..10 were missed.
        c.set_last_run(
            &ServiceKey::new("acme", "db"),
            JobKind::Backup,
            t("2026-11-22T06:00:00Z"),
        )
        .unwrap();
        let got = collect(
            entry(hour, Duration::ZERO, hour * 12),
            &c,
            t("2026-11-22T10:30:00Z"),
            hour,
        )
        .await;
        let summary: Vec<_> = got
            .iter()
            .map(|(at, r)| {
                (
                    at.to_string(),
                    r.trigger.clone(),
                    r.due.unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "2026-11-22T10:30:00Z".to_string(),
                    Trigger::CatchUp,
                    "2026-11-22T10:00:00Z".to_string()
                ),
                (
                    "2026-11-22T11:00:00Z".into(),
                    Trigger::Schedule,
                    "2026-11-22T11:00:00Z".into()
                ),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn misses_older_than_the_window_are_skipped() {
        let c = Catalog::temporary().unwrap();
        let day = Duration::from_secs(86_400);
        c.set_last_run(
            &ServiceKey::new("acme", "db"),
            JobKind::Backup,
            t("2026-11-01T00:00:00Z"),
        )
        .unwrap();
        // Window of one hour; the newest miss (22 Nov 00:00) is 10 h old.
        let got = collect(
            entry(day, Duration::ZERO, Duration::from_secs(3600)),
            &c,
            t("2026-11-22T10:00:00Z"),
            day,
        )
        .await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1.trigger, Trigger::Schedule);
        assert_eq!(got[0].1.due, Some(t("2026-11-23T00:00:00Z")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_service_waits_for_its_first_scheduled_time() {
        let c = Catalog::temporary().unwrap();
        let day = Duration::from_secs(86_400);
        let got = collect(
            entry(day, Duration::ZERO, day),
            &c,
            t("2026-11-22T10:00:00Z"),
            Duration::from_secs(3600),
        )
        .await;
        assert!(got.is_empty(), "{got:?}");
    }
}
