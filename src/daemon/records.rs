//! The daemon's records in the catalog: jobs, when each schedule last ran,
//! the snapshot cache, counters for `/metrics`, what each repository held at
//! the last look, and alarms. Each is one [`Table`] of [`crate::catalog`]
//! (its module docs list every table and its keys).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Json, Key, Table};
use crate::config::ServiceKey;
use crate::repository::watch::Seen;
use crate::Result;

/// What a job does.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Back up the service's source.
    Backup,
    /// forget + prune per the retention policy.
    Retention,
    /// `check --read-data-subset`.
    Check,
    /// Copy new snapshots to the standby target.
    Replicate,
    /// DR drill: restore the newest snapshot into a scratch place, verify,
    /// run the check command, measure the RTO, wipe.
    Drill,
}

impl JobKind {
    /// Every kind.
    pub(crate) const ALL: [JobKind; 5] = [
        JobKind::Backup,
        JobKind::Retention,
        JobKind::Check,
        JobKind::Replicate,
        JobKind::Drill,
    ];

    /// Lowercase name, as in metrics labels and the API.
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Retention => "retention",
            JobKind::Check => "check",
            JobKind::Replicate => "replicate",
            JobKind::Drill => "drill",
        }
    }
}

/// Why a job ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Trigger {
    /// Its schedule came due.
    Schedule,
    /// Its schedule came due while the daemon was down.
    CatchUp,
    /// Asked for through the API or the command line.
    OnDemand {
        /// Who asked (token name).
        actor: String,
    },
    /// Another job asked for it (hot standby after a backup).
    Follows {
        /// The job it follows.
        job: JobId,
    },
}

impl Trigger {
    /// Why the job ran, in words (for logs).
    pub fn word(&self) -> String {
        match self {
            Trigger::Schedule => "schedule".into(),
            Trigger::CatchUp => "catch-up after downtime".into(),
            Trigger::OnDemand { actor } => format!("asked by {actor}"),
            Trigger::Follows { job } => format!("after job {job}"),
        }
    }
}

/// A job's ID: increasing, from the catalog's counter; a plain number in
/// JSON and URLs (`/v1/jobs/<id>`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = u64)]
pub struct JobId(pub u64);

/// A restore request's ID: from the same counter as jobs; a plain number in
/// JSON and URLs (`/v1/restores/<id>`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = u64)]
pub struct RestoreId(pub u64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for RestoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a slot.
    Queued,
    /// Started and not ended yet.
    Running,
    /// Finished well.
    Succeeded,
    /// Finished with a problem (partial backup: some files unreadable).
    Warning,
    /// Failed after its retries.
    Failed,
}

impl JobState {
    /// The state in words, for logs and messages.
    pub fn word(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Warning => "warning",
            JobState::Failed => "failed",
        }
    }

    /// True once the job has ended.
    pub fn finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Warning | JobState::Failed
        )
    }
}

/// One job, as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRecord {
    /// Job ID (increasing).
    pub id: JobId,
    /// Backup, retention, check, replication or DR drill.
    pub kind: JobKind,
    /// The tenant's ID, as in the config.
    pub tenant: String,
    /// The service's name within its tenant.
    pub service: String,
    /// Why it ran.
    pub trigger: Trigger,
    /// Tags for the snapshot (backups).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Queued, running, or how it ended.
    pub state: JobState,
    /// When it was queued (RFC 3339).
    pub queued: String,
    /// When it started.
    #[serde(default)]
    pub started: Option<String>,
    /// When it ended.
    #[serde(default)]
    pub finished: Option<String>,
    /// Attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// The error of the last attempt.
    #[serde(default)]
    pub error: Option<String>,
    /// Snapshot written (backups).
    #[serde(default)]
    pub snapshot: Option<crate::SnapshotId>,
    /// Bytes read from the source.
    #[serde(default)]
    pub bytes_read: u64,
    /// Bytes added to the repository (after dedup and compression).
    #[serde(default)]
    pub bytes_added: u64,
    /// Files in the snapshot.
    #[serde(default)]
    pub files: u64,
    /// Seconds from start to end.
    #[serde(default)]
    pub duration_secs: f64,
    /// A one-line summary (what retention removed, what check found).
    #[serde(default)]
    pub summary: Option<String>,
    /// DR drills: the restore time achieved and the policy's RTO.
    #[serde(default)]
    pub rto: Option<RtoMeasure>,
}

/// What a DR drill measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RtoMeasure {
    /// Seconds from the start of the restore to the end of the check command.
    pub achieved_secs: f64,
    /// The policy's RTO in seconds.
    pub objective_secs: f64,
}

impl RtoMeasure {
    /// True when the drill met the objective.
    pub(crate) fn met(&self) -> bool {
        self.achieved_secs <= self.objective_secs
    }
}

/// A snapshot in the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct SnapshotEntry {
    /// Snapshot ID.
    pub id: crate::SnapshotId,
    /// The tenant's ID, as in the config.
    pub tenant: String,
    /// The service's name within its tenant.
    pub service: String,
    /// Time (RFC 3339).
    pub time: String,
    /// Tags of the snapshot (`pre-change`, a ticket reference, …): filters and `keep_tags` use them.
    pub tags: Vec<String>,
    /// Logical size.
    pub size: u64,
    /// True when some files could not be read.
    pub partial: bool,
}

/// A change in a repository that custos did not make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alarm {
    /// When it was noticed.
    pub time: String,
    /// The tenant's ID, as in the config.
    pub tenant: String,
    /// Repository URL.
    pub repository: String,
    /// What changed, one sentence.
    pub text: String,
}

impl Key for JobId {
    fn key(&self) -> Vec<u8> {
        self.0.key()
    }
}

impl Key for RestoreId {
    fn key(&self) -> Vec<u8> {
        self.0.key()
    }
}

impl Json for JobRecord {}
impl Json for SnapshotEntry {}
impl Json for Alarm {}
impl Json for Seen {}

/// The key of a schedule's last run.
fn run_key(key: &ServiceKey, kind: JobKind) -> String {
    format!("{key}/{}", kind.name())
}

/// The key prefix of a service's snapshots.
fn snapshot_prefix(key: &ServiceKey) -> String {
    format!("{key}/")
}

impl Catalog {
    fn job_table(&self) -> Table<JobId, JobRecord> {
        self.table("jobs")
    }

    fn last_run_table(&self) -> Table<str, String> {
        self.table("last_runs")
    }

    fn snapshot_table(&self) -> Table<str, SnapshotEntry> {
        self.table("snapshots")
    }

    fn counter_table(&self) -> Table<str, u64> {
        self.table("counters")
    }

    fn watch_table(&self) -> Table<str, Seen> {
        self.table("watch")
    }

    fn alarm_table(&self) -> Table<[u8], Alarm> {
        self.table("alarms")
    }

    /// Records a new queued job and returns it with its ID.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn queue_job(
        &self,
        kind: JobKind,
        tenant: &str,
        service: &str,
        trigger: Trigger,
        tags: Vec<String>,
        now: Timestamp,
    ) -> Result<JobRecord> {
        let rec = JobRecord {
            id: JobId(self.next_id()?),
            kind,
            tenant: tenant.to_string(),
            service: service.to_string(),
            trigger,
            tags,
            state: JobState::Queued,
            queued: crate::util::stamp(now),
            started: None,
            finished: None,
            attempts: 0,
            error: None,
            snapshot: None,
            bytes_read: 0,
            bytes_added: 0,
            files: 0,
            duration_secs: 0.0,
            summary: None,
            rto: None,
        };
        self.put_job(&rec)?;
        Ok(rec)
    }

    /// Stores a job record (insert or update).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn put_job(&self, rec: &JobRecord) -> Result<()> {
        self.job_table().put(&rec.id, rec)
    }

    /// One job.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn job(&self, id: JobId) -> Result<Option<JobRecord>> {
        self.job_table().get(&id)
    }

    /// The newest `limit` jobs matching `filter`, newest first.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn jobs(
        &self,
        limit: usize,
        filter: impl Fn(&JobRecord) -> bool,
    ) -> Result<Vec<JobRecord>> {
        self.job_table().newest("", limit, filter)
    }

    /// Removes the records of jobs that finished more than `keep` before
    /// `now`; queued and running jobs stay whatever their age. Returns how
    /// many were removed.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn expire_jobs(&self, keep: std::time::Duration, now: Timestamp) -> Result<usize> {
        let keep = jiff::SignedDuration::try_from(keep).unwrap_or(jiff::SignedDuration::MAX);
        let Ok(cutoff) = now.checked_sub(keep) else {
            return Ok(0);
        };
        self.job_table().remove_where(|j| {
            j.state.finished()
                && j.finished
                    .as_deref()
                    .and_then(|f| f.parse::<Timestamp>().ok())
                    .is_some_and(|f| f < cutoff)
        })
    }

    /// Jobs left queued or running by a daemon that stopped: marked failed
    /// ("interrupted") at start-up. Returns how many.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn fail_interrupted(&self, now: Timestamp) -> Result<usize> {
        let table = self.job_table();
        let mut n = 0;
        for mut rec in table.values("")? {
            if !rec.state.finished() {
                rec.state = JobState::Failed;
                rec.finished = Some(crate::util::stamp(now));
                rec.error = Some(
                    "interrupted: the daemon stopped while the job was queued or running".into(),
                );
                table.put(&rec.id, &rec)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// When the schedule of (service, kind) last started a run.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn last_run(&self, key: &ServiceKey, kind: JobKind) -> Result<Option<Timestamp>> {
        Ok(self
            .last_run_table()
            .get(&run_key(key, kind))?
            .and_then(|v| v.parse().ok()))
    }

    /// Records that the schedule of (service, kind) started a run due at `at`.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn set_last_run(
        &self,
        key: &ServiceKey,
        kind: JobKind,
        at: Timestamp,
    ) -> Result<()> {
        self.last_run_table()
            .put(&run_key(key, kind), &at.to_string())
    }

    /// Adds or replaces a snapshot in the cache.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn put_snapshot(&self, s: &SnapshotEntry) -> Result<()> {
        let key = format!(
            "{}{}/{}",
            snapshot_prefix(&ServiceKey::new(&s.tenant, &s.service)),
            s.time,
            s.id
        );
        self.snapshot_table().put(&key, s)
    }

    /// Replaces the cached snapshots of one service with `snaps`.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn replace_snapshots(
        &self,
        key: &ServiceKey,
        snaps: &[SnapshotEntry],
    ) -> Result<()> {
        self.snapshot_table().remove_prefix(&snapshot_prefix(key))?;
        for s in snaps {
            self.put_snapshot(s)?;
        }
        Ok(())
    }

    /// The cached snapshots of one service, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn snapshots(&self, key: &ServiceKey) -> Result<Vec<SnapshotEntry>> {
        self.snapshot_table().values(&snapshot_prefix(key))
    }

    /// The newest cached snapshot of a service that is complete (no
    /// unreadable files).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn newest_good_snapshot(&self, key: &ServiceKey) -> Result<Option<SnapshotEntry>> {
        Ok(self
            .snapshot_table()
            .newest(&snapshot_prefix(key), 1, |s| !s.partial)?
            .pop())
    }

    /// What the repository at `url` held at the last look (`None`: never
    /// looked).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn seen(&self, tenant: &str, url: &str) -> Result<Option<Seen>> {
        self.watch_table().get(&format!("{tenant}/{url}"))
    }

    /// Remembers what the repository at `url` holds now.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn put_seen(&self, tenant: &str, url: &str, seen: &Seen) -> Result<()> {
        self.watch_table().put(&format!("{tenant}/{url}"), seen)
    }

    /// Records an alarm (the same text for the same repository only once).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn add_alarm(&self, tenant: &str, url: &str, text: &str) -> Result<()> {
        let table = self.alarm_table();
        let prefix = format!("{tenant}/");
        if table
            .values(&prefix)?
            .iter()
            .any(|a| a.repository == url && a.text == text)
        {
            return Ok(());
        }
        tracing::error!(%tenant, repository = %url, alarm = %text, "the repository changed behind custos's back");
        let mut key = prefix.into_bytes();
        key.extend_from_slice(&self.next_id()?.to_be_bytes());
        let alarm = Alarm {
            time: crate::util::stamp(Timestamp::now()),
            tenant: tenant.to_string(),
            repository: url.to_string(),
            text: text.to_string(),
        };
        table.put(&key, &alarm)?;
        self.flush()
    }

    /// Removes the alarms of `tenant` (an operator accepted the repository
    /// as it now is); returns them.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn accept_alarms(&self, tenant: &str) -> Result<Vec<Alarm>> {
        let mut out = self.alarm_table().remove_prefix(&format!("{tenant}/"))?;
        self.flush()?;
        out.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(out)
    }

    /// Every alarm that `filter` lets through, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn alarms(&self, filter: impl Fn(&Alarm) -> bool) -> Result<Vec<Alarm>> {
        let mut out: Vec<Alarm> = self.alarm_table().values("")?;
        out.retain(|a| filter(a));
        out.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(out)
    }

    /// Adds `n` to a service's counter `name`.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn add_counter(&self, key: &ServiceKey, name: &str, n: u64) -> Result<()> {
        self.counter_table()
            .update(&format!("{key}/{name}"), |old| {
                old.unwrap_or(0).saturating_add(n)
            })
    }

    /// A service's counters, by name.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn counters(&self, key: &ServiceKey) -> Result<Vec<(String, u64)>> {
        self.counter_table().scan(&format!("{key}/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot ID starting with `prefix` (hex), zeros after.
    fn sid(prefix: &str) -> crate::SnapshotId {
        format!("{prefix:0<64}").parse().unwrap()
    }
    use crate::erasure::ErasedTenant;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn jobs_are_numbered_listed_newest_first_and_interrupted_ones_fail() {
        let c = Catalog::temporary().unwrap();
        let now = t("2026-11-22T10:00:00Z");
        let a = c
            .queue_job(
                JobKind::Backup,
                "acme",
                "db",
                Trigger::Schedule,
                vec![],
                now,
            )
            .unwrap();
        let mut b = c
            .queue_job(
                JobKind::Check,
                "acme",
                "web",
                Trigger::Schedule,
                vec![],
                now,
            )
            .unwrap();
        assert!(b.id > a.id);
        b.state = JobState::Succeeded;
        c.put_job(&b).unwrap();
        let all = c.jobs(10, |_| true).unwrap();
        assert_eq!(all.iter().map(|j| j.id).collect::<Vec<_>>(), [b.id, a.id]);
        assert_eq!(c.jobs(10, |j| j.service == "db").unwrap().len(), 1);
        assert_eq!(c.fail_interrupted(now).unwrap(), 1);
        let a = c.job(a.id).unwrap().unwrap();
        assert_eq!(a.state, JobState::Failed);
        assert!(a.error.unwrap().contains("interrupted"));
    }

    #[test]
    fn finished_jobs_older_than_the_history_expire_and_queued_ones_stay() {
        let c = Catalog::temporary().unwrap();
        let queued_at = t("2026-08-01T00:00:00Z");
        let job = |finished: Option<&str>| {
            let mut j = c
                .queue_job(
                    JobKind::Backup,
                    "acme",
                    "db",
                    Trigger::Schedule,
                    vec![],
                    queued_at,
                )
                .unwrap();
            if let Some(f) = finished {
                j.state = JobState::Succeeded;
                j.finished = Some(f.into());
                c.put_job(&j).unwrap();
            }
            j.id
        };
        let old = job(Some("2026-08-01T01:00:00Z"));
        let recent = job(Some("2026-11-20T01:00:00Z"));
        let waiting = job(None);
        let now = t("2026-11-22T00:00:00Z");
        let kept = std::time::Duration::from_secs(90 * 86_400);
        assert_eq!(c.expire_jobs(kept, now).unwrap(), 1);
        assert!(c.job(old).unwrap().is_none());
        assert!(c.job(recent).unwrap().is_some());
        assert!(
            c.job(waiting).unwrap().is_some(),
            "a queued job never expires"
        );
        assert_eq!(c.expire_jobs(kept, now).unwrap(), 0);
        // New jobs keep counting up after old ones are gone.
        assert!(job(None) > waiting);
    }

    #[test]
    fn last_runs_and_snapshots_per_service() {
        let c = Catalog::temporary().unwrap();
        assert_eq!(
            c.last_run(&ServiceKey::new("acme", "db"), JobKind::Backup)
                .unwrap(),
            None
        );
        let at = t("2026-11-22T01:00:00Z");
        c.set_last_run(&ServiceKey::new("acme", "db"), JobKind::Backup, at)
            .unwrap();
        assert_eq!(
            c.last_run(&ServiceKey::new("acme", "db"), JobKind::Backup)
                .unwrap(),
            Some(at)
        );
        assert_eq!(
            c.last_run(&ServiceKey::new("acme", "db"), JobKind::Check)
                .unwrap(),
            None
        );

        let snap = |id: &str, time: &str, partial: bool| SnapshotEntry {
            id: sid(id),
            tenant: "acme".into(),
            service: "db".into(),
            time: time.into(),
            tags: vec![],
            size: 1,
            partial,
        };
        c.replace_snapshots(
            &ServiceKey::new("acme", "db"),
            &[
                snap("a", "2026-11-20T01:00:00Z", false),
                snap("b", "2026-11-21T01:00:00Z", false),
                snap("c", "2026-11-22T01:00:00Z", true),
            ],
        )
        .unwrap();
        // A service whose name starts like another's is not mixed in.
        c.put_snapshot(&SnapshotEntry {
            service: "db2".into(),
            ..snap("e", "2026-11-23T01:00:00Z", false)
        })
        .unwrap();
        assert_eq!(
            c.snapshots(&ServiceKey::new("acme", "db")).unwrap().len(),
            3
        );
        assert_eq!(
            c.newest_good_snapshot(&ServiceKey::new("acme", "db"))
                .unwrap()
                .unwrap()
                .id,
            sid("b")
        );
        c.replace_snapshots(
            &ServiceKey::new("acme", "db"),
            &[snap("d", "2026-11-22T02:00:00Z", false)],
        )
        .unwrap();
        assert_eq!(
            c.snapshots(&ServiceKey::new("acme", "db")).unwrap().len(),
            1
        );

        c.add_counter(&ServiceKey::new("acme", "db"), "bytes_read", 5)
            .unwrap();
        c.add_counter(&ServiceKey::new("acme", "db"), "bytes_read", 7)
            .unwrap();
        c.add_counter(&ServiceKey::new("acme", "db2"), "bytes_read", 1)
            .unwrap();
        assert_eq!(
            c.counters(&ServiceKey::new("acme", "db")).unwrap(),
            [("bytes_read".to_string(), 12)]
        );

        let erased = ErasedTenant {
            completed: "2026-11-30T00:00:00Z".into(),
            certificate_blake3: "00".repeat(32),
        };
        assert!(c.purge_tenant("acme", &erased).unwrap() >= 2);
        assert_eq!(
            c.erasure("acme").unwrap().unwrap().state,
            crate::erasure::ErasureState::Erased
        );
        assert!(c
            .counters(&ServiceKey::new("acme", "db"))
            .unwrap()
            .is_empty());
        assert!(c
            .snapshots(&ServiceKey::new("acme", "db"))
            .unwrap()
            .is_empty());
        assert_eq!(
            c.last_run(&ServiceKey::new("acme", "db"), JobKind::Backup)
                .unwrap(),
            None
        );
    }

    #[test]
    fn a_purged_tenant_leaves_no_byte_in_the_catalog_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        let now = t("2026-11-22T10:00:00Z");
        for tenant in ["zyxwvut-erased", "kept-tenant"] {
            for i in 0..200 {
                let mut j = c
                    .queue_job(
                        JobKind::Backup,
                        tenant,
                        "web",
                        Trigger::Schedule,
                        vec![],
                        now,
                    )
                    .unwrap();
                j.summary = Some(format!("{tenant} job {i}"));
                c.put_job(&j).unwrap();
            }
            c.note_tenant_target(tenant, "primary", "s3://b/p").unwrap();
        }
        c.flush().unwrap();
        let ids_before = c.next_id().unwrap();
        let erased = ErasedTenant {
            completed: now.to_string(),
            certificate_blake3: "ab".repeat(32),
        };
        assert!(c.purge_tenant("zyxwvut-erased", &erased).unwrap() >= 200);
        c.flush().unwrap();
        let grep = |needle: &[u8]| -> bool {
            let mut stack = vec![dir.path().to_path_buf()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if std::fs::read(&p)
                        .unwrap()
                        .windows(needle.len())
                        .any(|w| w == needle)
                    {
                        return true;
                    }
                }
            }
            false
        };
        assert!(
            !grep(b"zyxwvut-erased"),
            "the erased tenant's ID is still in a file"
        );
        assert!(grep(b"kept-tenant"), "the other tenant's records are gone");
        // Still refused, IDs go on, the other tenant's records are there.
        assert_eq!(
            c.erasure("zyxwvut-erased").unwrap().unwrap().state,
            crate::erasure::ErasureState::Erased
        );
        assert!(c.next_id().unwrap() > ids_before);
        assert_eq!(
            c.jobs(1000, |j| j.tenant == "kept-tenant").unwrap().len(),
            200
        );
        assert_eq!(c.tenant_targets("kept-tenant").unwrap().len(), 1);
        // And after reopening.
        drop(c);
        let c = Catalog::open(dir.path()).unwrap();
        assert_eq!(c.jobs(1000, |_| true).unwrap().len(), 200);
        assert!(c.erasure("zyxwvut-erased").unwrap().is_some());
    }

    #[test]
    fn alarms_are_recorded_once_and_accepted_per_tenant() {
        let c = Catalog::temporary().unwrap();
        c.add_alarm("acme", "s3://b/acme", "snapshot 1 is gone")
            .unwrap();
        c.add_alarm("acme", "s3://b/acme", "snapshot 1 is gone")
            .unwrap();
        c.add_alarm("acme", "s3://b/acme", "snapshot 2 is gone")
            .unwrap();
        c.add_alarm("acme-two", "s3://b/acme-two", "snapshot 3 is gone")
            .unwrap();
        assert_eq!(c.alarms(|_| true).unwrap().len(), 3);
        let accepted = c.accept_alarms("acme").unwrap();
        assert_eq!(accepted.len(), 2);
        let left = c.alarms(|_| true).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].tenant, "acme-two");
        assert!(c.accept_alarms("acme").unwrap().is_empty());
    }
}
