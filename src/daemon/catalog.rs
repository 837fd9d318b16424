//! The daemon's catalog: a sled database under the state directory.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `jobs` | job ID (8 bytes, big-endian, increasing) | [`JobRecord`] (JSON) |
//! | `last_runs` | `tenant/service/kind` | RFC 3339 time of the last scheduled run that was started |
//! | `snapshots` | `tenant/service/time/id` | [`SnapshotEntry`] (JSON) |
//! | `counters` | `tenant/service/name` | u64, big-endian (monotonic, for `/metrics`) |
//! | `restores` | request ID (8 bytes, big-endian) | `RestoreRecord` (JSON) |
//! | `erasures` | tenant | `ErasureRecord` (JSON): the end-of-contract state machine; never purged |
//! | `erased` | `tenant/target/object` (and `tenant//cache/<repo id>`) | `[size, key fingerprint]`: every object an erasure deleted, for the certificate |
//!
//! Everything here can be rebuilt: job history is informational, `last_runs`
//! only drives catch-up, and the snapshot cache is rebuilt from the
//! repositories by `custos catalog rebuild` (or on demand). The repositories
//! remain the truth.

use std::path::Path;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    pub const ALL: [JobKind; 5] = [
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        job: u64,
    },
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a slot.
    Queued,
    /// Running.
    Running,
    /// Finished well.
    Succeeded,
    /// Finished with a problem (partial backup: some files unreadable).
    Warning,
    /// Failed after its retries.
    Failed,
}

impl JobState {
    /// True once the job has ended.
    pub fn finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Warning | JobState::Failed
        )
    }
}

/// One job, as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Job ID (increasing).
    pub id: u64,
    /// Kind.
    pub kind: JobKind,
    /// Tenant.
    pub tenant: String,
    /// Service.
    pub service: String,
    /// Why it ran.
    pub trigger: Trigger,
    /// Tags for the snapshot (backups).
    #[serde(default)]
    pub tags: Vec<String>,
    /// State.
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
    pub snapshot: Option<String>,
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RtoMeasure {
    /// Seconds from the start of the restore to the end of the check command.
    pub achieved_secs: f64,
    /// The policy's RTO in seconds.
    pub objective_secs: f64,
}

impl RtoMeasure {
    /// True when the drill met the objective.
    pub fn met(&self) -> bool {
        self.achieved_secs <= self.objective_secs
    }
}

/// A snapshot in the cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// Snapshot ID.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Service.
    pub service: String,
    /// Time (RFC 3339).
    pub time: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Logical size.
    pub size: u64,
    /// True when some files could not be read.
    pub partial: bool,
}

/// The catalog.
#[derive(Clone)]
pub struct Catalog {
    db: sled::Db,
    jobs: sled::Tree,
    last_runs: sled::Tree,
    snapshots: sled::Tree,
    counters: sled::Tree,
    restores: sled::Tree,
    erasures: sled::Tree,
    erased: sled::Tree,
}

fn db_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::io(
        format!("catalog: {what}"),
        std::io::Error::other(e.to_string()),
    )
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|e| db_err(what, e))
}

/// The newest `limit` records of a tree keyed by increasing IDs that pass
/// `filter`, newest first.
fn newest<T: for<'de> Deserialize<'de>>(
    tree: &sled::Tree,
    what: &str,
    limit: usize,
    filter: impl Fn(&T) -> bool,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for item in tree.iter().rev() {
        let (_, v) = item.map_err(|e| db_err(what, e))?;
        let rec: T = decode(what, &v)?;
        if filter(&rec) {
            out.push(rec);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

fn encode<T: Serialize>(what: &str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| db_err(what, e))
}

impl Catalog {
    /// Opens (or creates) the catalog under `state_dir/catalog`.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created or the database is
    /// locked by another daemon.
    pub fn open(state_dir: &Path) -> Result<Catalog> {
        let dir = state_dir.join("catalog");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        let db = sled::Config::new()
            .path(&dir)
            .cache_capacity(32 << 20)
            .open()
            .map_err(|e| {
                db_err(
                    &format!("cannot open {} (is another daemon running?)", dir.display()),
                    e,
                )
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| db_err(name, e));
        Ok(Catalog {
            jobs: tree("jobs")?,
            last_runs: tree("last_runs")?,
            snapshots: tree("snapshots")?,
            counters: tree("counters")?,
            restores: tree("restores")?,
            erasures: tree("erasures")?,
            erased: tree("erased")?,
            db,
        })
    }

    /// A catalog in a temporary directory that sled removes on drop (tests).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn temporary() -> Result<Catalog> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| db_err("temporary", e))?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| db_err(name, e));
        Ok(Catalog {
            jobs: tree("jobs")?,
            last_runs: tree("last_runs")?,
            snapshots: tree("snapshots")?,
            counters: tree("counters")?,
            restores: tree("restores")?,
            erasures: tree("erasures")?,
            erased: tree("erased")?,
            db,
        })
    }

    /// Records a new queued job and returns it with its ID.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn queue_job(
        &self,
        kind: JobKind,
        tenant: &str,
        service: &str,
        trigger: Trigger,
        tags: Vec<String>,
        now: Timestamp,
    ) -> Result<JobRecord> {
        let id = self.next_id()?;
        let rec = JobRecord {
            id,
            kind,
            tenant: tenant.to_string(),
            service: service.to_string(),
            trigger,
            tags,
            state: JobState::Queued,
            queued: now.to_string(),
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
    /// [`Error::Io`].
    pub fn put_job(&self, rec: &JobRecord) -> Result<()> {
        self.jobs
            .insert(rec.id.to_be_bytes(), encode("job", rec)?)
            .map_err(|e| db_err("job", e))?;
        Ok(())
    }

    /// One job.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn job(&self, id: u64) -> Result<Option<JobRecord>> {
        self.jobs
            .get(id.to_be_bytes())
            .map_err(|e| db_err("job", e))?
            .map(|v| decode("job", &v))
            .transpose()
    }

    /// The newest `limit` jobs matching `filter`, newest first.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn jobs(
        &self,
        limit: usize,
        filter: impl Fn(&JobRecord) -> bool,
    ) -> Result<Vec<JobRecord>> {
        newest(&self.jobs, "job", limit, filter)
    }

    /// Restores left queued or running by a daemon that stopped: marked
    /// failed ("interrupted"; asking again resumes into the same target).
    /// Returns how many.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn fail_interrupted_restores(&self, now: Timestamp) -> Result<usize> {
        use super::restores::RestoreState;
        let mut n = 0;
        for item in self.restores.iter() {
            let (_, v) = item.map_err(|e| db_err("restores", e))?;
            let mut rec: super::restores::RestoreRecord = decode("restore", &v)?;
            if matches!(rec.state, RestoreState::Queued | RestoreState::Running) {
                rec.state = RestoreState::Failed;
                rec.finished = Some(now.to_string());
                rec.errors = vec!["interrupted: the daemon stopped during the restore".into()];
                self.put_restore(&rec)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Jobs left queued or running by a daemon that stopped: marked failed
    /// ("interrupted") at start-up. Returns how many.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn fail_interrupted(&self, now: Timestamp) -> Result<usize> {
        let mut n = 0;
        for item in self.jobs.iter() {
            let (_, v) = item.map_err(|e| db_err("jobs", e))?;
            let mut rec: JobRecord = decode("job", &v)?;
            if !rec.state.finished() {
                rec.state = JobState::Failed;
                rec.finished = Some(now.to_string());
                rec.error = Some(
                    "interrupted: the daemon stopped while the job was queued or running".into(),
                );
                self.put_job(&rec)?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn run_key(tenant: &str, service: &str, kind: JobKind) -> String {
        format!("{tenant}/{service}/{}", kind.name())
    }

    /// When the schedule of (service, kind) last started a run.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn last_run(
        &self,
        tenant: &str,
        service: &str,
        kind: JobKind,
    ) -> Result<Option<Timestamp>> {
        Ok(self
            .last_runs
            .get(Self::run_key(tenant, service, kind))
            .map_err(|e| db_err("last run", e))?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
    }

    /// Records that the schedule of (service, kind) started a run due at `at`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn set_last_run(
        &self,
        tenant: &str,
        service: &str,
        kind: JobKind,
        at: Timestamp,
    ) -> Result<()> {
        self.last_runs
            .insert(
                Self::run_key(tenant, service, kind),
                at.to_string().as_bytes(),
            )
            .map_err(|e| db_err("last run", e))?;
        Ok(())
    }

    fn snapshot_prefix(tenant: &str, service: &str) -> String {
        format!("{tenant}/{service}/")
    }

    /// Adds or replaces a snapshot in the cache.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn put_snapshot(&self, s: &SnapshotEntry) -> Result<()> {
        let key = format!(
            "{}{}/{}",
            Self::snapshot_prefix(&s.tenant, &s.service),
            s.time,
            s.id
        );
        self.snapshots
            .insert(key, encode("snapshot", s)?)
            .map_err(|e| db_err("snapshot", e))?;
        Ok(())
    }

    /// Replaces the cached snapshots of one service with `snaps`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn replace_snapshots(
        &self,
        tenant: &str,
        service: &str,
        snaps: &[SnapshotEntry],
    ) -> Result<()> {
        let prefix = Self::snapshot_prefix(tenant, service);
        for item in self.snapshots.scan_prefix(&prefix) {
            let (k, _) = item.map_err(|e| db_err("snapshots", e))?;
            self.snapshots
                .remove(k)
                .map_err(|e| db_err("snapshots", e))?;
        }
        for s in snaps {
            self.put_snapshot(s)?;
        }
        Ok(())
    }

    /// The cached snapshots of one service, oldest first.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn snapshots(&self, tenant: &str, service: &str) -> Result<Vec<SnapshotEntry>> {
        self.snapshots
            .scan_prefix(Self::snapshot_prefix(tenant, service))
            .map(|item| {
                let (_, v) = item.map_err(|e| db_err("snapshots", e))?;
                decode("snapshot", &v)
            })
            .collect()
    }

    /// The newest cached snapshot of a service that is complete (no
    /// unreadable files).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn newest_good_snapshot(
        &self,
        tenant: &str,
        service: &str,
    ) -> Result<Option<SnapshotEntry>> {
        for item in self
            .snapshots
            .scan_prefix(Self::snapshot_prefix(tenant, service))
            .rev()
        {
            let (_, v) = item.map_err(|e| db_err("snapshots", e))?;
            let s: SnapshotEntry = decode("snapshot", &v)?;
            if !s.partial {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// A fresh ID (jobs and restore requests share the sequence).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn next_id(&self) -> Result<u64> {
        Ok(self.db.generate_id().map_err(|e| db_err("id", e))? + 1)
    }

    /// Stores a restore request (insert or update).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn put_restore(&self, rec: &super::restores::RestoreRecord) -> Result<()> {
        self.restores
            .insert(rec.id.to_be_bytes(), encode("restore", rec)?)
            .map_err(|e| db_err("restore", e))?;
        Ok(())
    }

    /// One restore request.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn restore(&self, id: u64) -> Result<Option<super::restores::RestoreRecord>> {
        self.restores
            .get(id.to_be_bytes())
            .map_err(|e| db_err("restore", e))?
            .map(|v| decode("restore", &v))
            .transpose()
    }

    /// The newest `limit` restore requests matching `filter`, newest first.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn restores(
        &self,
        limit: usize,
        filter: impl Fn(&super::restores::RestoreRecord) -> bool,
    ) -> Result<Vec<super::restores::RestoreRecord>> {
        newest(&self.restores, "restore", limit, filter)
    }

    /// A tenant's erasure record.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn erasure(&self, tenant: &str) -> Result<Option<crate::erasure::ErasureRecord>> {
        self.erasures
            .get(tenant)
            .map_err(|e| db_err("erasure", e))?
            .map(|v| decode("erasure", &v))
            .transpose()
    }

    /// Every erasure record.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn erasures(&self) -> Result<Vec<crate::erasure::ErasureRecord>> {
        self.erasures
            .iter()
            .map(|item| {
                let (_, v) = item.map_err(|e| db_err("erasures", e))?;
                decode("erasure", &v)
            })
            .collect()
    }

    /// Stores a tenant's erasure record (synced: it is a legal record).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn put_erasure(&self, rec: &crate::erasure::ErasureRecord) -> Result<()> {
        self.erasures
            .insert(rec.tenant.as_bytes(), encode("erasure", rec)?)
            .map_err(|e| db_err("erasure", e))?;
        self.flush()
    }

    /// Records one object an erasure deleted (synced before the next delete
    /// counts on it).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn record_erased_object(
        &self,
        tenant: &str,
        target: &str,
        name: &str,
        size: u64,
        fingerprint: Option<&str>,
    ) -> Result<()> {
        self.erased
            .insert(
                format!("{tenant}/{target}/{name}"),
                encode("erased", &(size, fingerprint))?,
            )
            .map_err(|e| db_err("erased", e))?;
        self.erased.flush().map_err(|e| db_err("erased", e))?;
        Ok(())
    }

    /// The objects an erasure deleted on one target: (name, size, key
    /// fingerprint for key slots).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn erased_objects(
        &self,
        tenant: &str,
        target: &str,
    ) -> Result<Vec<(String, u64, Option<String>)>> {
        let prefix = format!("{tenant}/{target}/");
        self.erased
            .scan_prefix(&prefix)
            .map(|item| {
                let (k, v) = item.map_err(|e| db_err("erased", e))?;
                let (size, fp): (u64, Option<String>) = decode("erased", &v)?;
                Ok((
                    String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                    size,
                    fp,
                ))
            })
            .collect()
    }

    /// Remembers a repository ID whose index cache must be removed.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn note_erasure_cache(&self, tenant: &str, repo_id: &str) -> Result<()> {
        self.erased
            .insert(
                format!("{tenant}//cache/{repo_id}"),
                encode("erased", &(0u64, None::<String>))?,
            )
            .map_err(|e| db_err("erased", e))?;
        Ok(())
    }

    /// The repository IDs noted by [`Catalog::note_erasure_cache`].
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn erasure_caches(&self, tenant: &str) -> Result<Vec<String>> {
        let prefix = format!("{tenant}//cache/");
        self.erased
            .scan_prefix(&prefix)
            .map(|item| {
                let (k, _) = item.map_err(|e| db_err("erased", e))?;
                Ok(String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            })
            .collect()
    }

    /// Forgets an erasure's object list once its certificate is written.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn drop_erased_objects(&self, tenant: &str) -> Result<()> {
        for item in self.erased.scan_prefix(format!("{tenant}/")) {
            let (k, _) = item.map_err(|e| db_err("erased", e))?;
            self.erased.remove(k).map_err(|e| db_err("erased", e))?;
        }
        self.flush()
    }

    /// Adds `n` to a service's counter `name`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn add_counter(&self, tenant: &str, service: &str, name: &str, n: u64) -> Result<()> {
        self.counters
            .update_and_fetch(format!("{tenant}/{service}/{name}"), |old| {
                let cur = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Some(cur.saturating_add(n).to_be_bytes().to_vec())
            })
            .map_err(|e| db_err("counter", e))?;
        Ok(())
    }

    /// A service's counters, by name.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn counters(&self, tenant: &str, service: &str) -> Result<Vec<(String, u64)>> {
        let prefix = format!("{tenant}/{service}/");
        self.counters
            .scan_prefix(&prefix)
            .map(|item| {
                let (k, v) = item.map_err(|e| db_err("counters", e))?;
                let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                let n = <[u8; 8]>::try_from(v.as_ref()).map_or(0, u64::from_be_bytes);
                Ok((name, n))
            })
            .collect()
    }

    /// Removes everything about a tenant (end-of-contract erasure).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn purge_tenant(&self, tenant: &str) -> Result<usize> {
        let mut n = 0;
        let prefix = format!("{tenant}/");
        for tree in [&self.snapshots, &self.last_runs, &self.counters] {
            for item in tree.scan_prefix(&prefix) {
                let (k, _) = item.map_err(|e| db_err("purge", e))?;
                tree.remove(k).map_err(|e| db_err("purge", e))?;
                n += 1;
            }
        }
        for item in self.jobs.iter() {
            let (k, v) = item.map_err(|e| db_err("purge", e))?;
            let rec: JobRecord = decode("job", &v)?;
            if rec.tenant == tenant {
                self.jobs.remove(k).map_err(|e| db_err("purge", e))?;
                n += 1;
            }
        }
        for item in self.restores.iter() {
            let (k, v) = item.map_err(|e| db_err("purge", e))?;
            let rec: super::restores::RestoreRecord = decode("restore", &v)?;
            if rec.tenant == tenant {
                self.restores.remove(k).map_err(|e| db_err("purge", e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Writes everything to disk.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| db_err("flush", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn last_runs_and_snapshots_per_service() {
        let c = Catalog::temporary().unwrap();
        assert_eq!(c.last_run("acme", "db", JobKind::Backup).unwrap(), None);
        let at = t("2026-11-22T01:00:00Z");
        c.set_last_run("acme", "db", JobKind::Backup, at).unwrap();
        assert_eq!(c.last_run("acme", "db", JobKind::Backup).unwrap(), Some(at));
        assert_eq!(c.last_run("acme", "db", JobKind::Check).unwrap(), None);

        let snap = |id: &str, time: &str, partial: bool| SnapshotEntry {
            id: id.into(),
            tenant: "acme".into(),
            service: "db".into(),
            time: time.into(),
            tags: vec![],
            size: 1,
            partial,
        };
        c.replace_snapshots(
            "acme",
            "db",
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
            ..snap("z", "2026-11-23T01:00:00Z", false)
        })
        .unwrap();
        assert_eq!(c.snapshots("acme", "db").unwrap().len(), 3);
        assert_eq!(
            c.newest_good_snapshot("acme", "db").unwrap().unwrap().id,
            "b"
        );
        c.replace_snapshots("acme", "db", &[snap("d", "2026-11-22T02:00:00Z", false)])
            .unwrap();
        assert_eq!(c.snapshots("acme", "db").unwrap().len(), 1);

        c.add_counter("acme", "db", "bytes_read", 5).unwrap();
        c.add_counter("acme", "db", "bytes_read", 7).unwrap();
        c.add_counter("acme", "db2", "bytes_read", 1).unwrap();
        assert_eq!(
            c.counters("acme", "db").unwrap(),
            [("bytes_read".to_string(), 12)]
        );

        assert!(c.purge_tenant("acme").unwrap() >= 2);
        assert!(c.counters("acme", "db").unwrap().is_empty());
        assert!(c.snapshots("acme", "db").unwrap().is_empty());
        assert_eq!(c.last_run("acme", "db", JobKind::Backup).unwrap(), None);
    }
}
