//! The daemon's catalog: a sled database under the state directory.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `jobs` | job ID (8 bytes, big-endian, increasing) | [`JobRecord`] (JSON) |
//! | `last_runs` | `tenant/service/kind` | RFC 3339 time of the last scheduled run that was started |
//! | `snapshots` | `tenant/service/time/id` | [`SnapshotEntry`] (JSON) |
//! | `counters` | `tenant/service/name` | u64, big-endian (monotonic, for `/metrics`) |
//! | `restores` | request ID (8 bytes, big-endian) | `RestoreRecord` (JSON) |
//! | `erasures` | tenant | `ErasureRecord` (JSON): the end-of-contract state machine, until the tenant is erased |
//! | `erased` | `tenant/target/object` (and `tenant//cache/<repo id>`) | `[size, key fingerprint]`: every object an erasure deleted, for the certificate |
//! | `erased_tenants` | BLAKE3 of the tenant ID | [`ErasedTenant`]: an erased tenant is refused everywhere, and nothing here names it |
//! | `tenant_targets` | `tenant/target` | the target's URL: every target a tenant used, erased at the end of its contract even after a config change |
//! | `watch` | `tenant/repository URL` | what the repository held at the last look ([`crate::repository::watch::Seen`]): rollback detection |
//! | `alarms` | `tenant/<8-byte seq>` | [`Alarm`]: a change custos did not make (a snapshot deleted without a forget, an older index object put back) |
//! | `meta` | `next_id`, `rewrite_owed` | the ID counter; set while a rewrite of the database is owed |
//!
//! When a tenant is erased, its records are removed and the database is
//! rewritten into new files (sled is log-structured: removed records would
//! otherwise stay in old log segments), the old files overwritten and
//! removed: afterwards no file of the catalog holds the tenant's ID.
//!
//! Everything here can be rebuilt: job history is informational, `last_runs`
//! only drives catch-up, and the snapshot cache is rebuilt from the
//! repositories by `custos catalog rebuild` (or on demand). The repositories
//! remain the truth.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

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
        job: JobId,
    },
}

/// A job's ID: increasing, from the catalog's counter; a plain number in
/// JSON and URLs (`/v1/jobs/<id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

/// A restore request's ID: from the same counter as jobs; a plain number in
/// JSON and URLs (`/v1/restores/<id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RestoreId(pub u64);

impl JobId {
    /// The catalog key: big-endian, so keys sort by ID.
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl RestoreId {
    /// The catalog key: big-endian, so keys sort by ID.
    pub fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

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
    pub id: JobId,
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

/// A tenant erased: what is left of it in the catalog, under a hash of its ID
/// (so that nothing here names it), for refusing it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedTenant {
    /// When the erasure completed (RFC 3339).
    pub completed: String,
    /// BLAKE3 of the certificate file (its name holds the tenant ID).
    pub certificate_blake3: String,
}

/// A change in a repository that custos did not make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
    /// When it was noticed.
    pub time: String,
    /// Tenant.
    pub tenant: String,
    /// Repository URL.
    pub repository: String,
    /// What changed, one sentence.
    pub text: String,
}

/// The trees, replaced as a whole when the database is rewritten.
struct Trees {
    db: sled::Db,
    jobs: sled::Tree,
    last_runs: sled::Tree,
    snapshots: sled::Tree,
    counters: sled::Tree,
    restores: sled::Tree,
    erasures: sled::Tree,
    erased: sled::Tree,
    erased_tenants: sled::Tree,
    tenant_targets: sled::Tree,
    watch: sled::Tree,
    alarms: sled::Tree,
    meta: sled::Tree,
}

impl Trees {
    fn from_db(db: sled::Db) -> Result<Trees> {
        let tree = |name: &str| db.open_tree(name).map_err(|e| db_err(name, e));
        let t = Trees {
            jobs: tree("jobs")?,
            last_runs: tree("last_runs")?,
            snapshots: tree("snapshots")?,
            counters: tree("counters")?,
            restores: tree("restores")?,
            erasures: tree("erasures")?,
            erased: tree("erased")?,
            erased_tenants: tree("erased_tenants")?,
            tenant_targets: tree("tenant_targets")?,
            watch: tree("watch")?,
            alarms: tree("alarms")?,
            meta: tree("meta")?,
            db,
        };
        // IDs come from a counter of our own (copied with the rest when the
        // database is rewritten); a catalog from before it starts above
        // every ID sled handed out.
        if t.meta
            .get(NEXT_ID)
            .map_err(|e| db_err("meta", e))?
            .is_none()
        {
            let start = t.db.generate_id().map_err(|e| db_err("id", e))? + 1;
            t.meta
                .insert(NEXT_ID, &start.to_be_bytes())
                .map_err(|e| db_err("meta", e))?;
        }
        Ok(t)
    }

    fn next_id(&self) -> Result<u64> {
        let v = self
            .meta
            .update_and_fetch(NEXT_ID, |old| {
                let cur = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(1, u64::from_be_bytes);
                Some(cur.saturating_add(1).to_be_bytes().to_vec())
            })
            .map_err(|e| db_err("id", e))?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(1, u64::from_be_bytes);
        Ok(v - 1)
    }

    fn put_job(&self, rec: &JobRecord) -> Result<()> {
        self.jobs
            .insert(rec.id.to_be_bytes(), encode("job", rec)?)
            .map_err(|e| db_err("job", e))?;
        Ok(())
    }

    fn put_restore(&self, rec: &super::restores::RestoreRecord) -> Result<()> {
        self.restores
            .insert(rec.id.to_be_bytes(), encode("restore", rec)?)
            .map_err(|e| db_err("restore", e))?;
        Ok(())
    }

    fn put_snapshot(&self, s: &SnapshotEntry) -> Result<()> {
        let key = format!(
            "{}{}/{}",
            Catalog::snapshot_prefix(&s.tenant, &s.service),
            s.time,
            s.id
        );
        self.snapshots
            .insert(key, encode("snapshot", s)?)
            .map_err(|e| db_err("snapshot", e))?;
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| db_err("flush", e))?;
        Ok(())
    }
}

/// The `meta` key of the ID counter.
const NEXT_ID: &[u8] = b"next_id";
/// The `meta` key set while a rewrite of the database is owed (an erasure
/// purged records whose old copies may still sit in sled's log).
const REWRITE_OWED: &[u8] = b"rewrite_owed";

/// The catalog.
#[derive(Clone)]
pub struct Catalog {
    trees: Arc<RwLock<Trees>>,
    /// The database directory (`None`: temporary).
    dir: Option<PathBuf>,
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

/// Every (tree, key) of a record that names `tenant`.
fn tenant_keys(t: &Trees, tenant: &str) -> Result<Vec<(sled::Tree, sled::IVec)>> {
    let mut out = Vec::new();
    let prefix = format!("{tenant}/");
    for tree in [
        &t.snapshots,
        &t.last_runs,
        &t.counters,
        &t.erased,
        &t.tenant_targets,
        &t.watch,
        &t.alarms,
    ] {
        for item in tree.scan_prefix(&prefix) {
            let (k, _) = item.map_err(|e| db_err("purge", e))?;
            out.push((tree.clone(), k));
        }
    }
    if t.erasures
        .contains_key(tenant)
        .map_err(|e| db_err("purge", e))?
    {
        out.push((t.erasures.clone(), sled::IVec::from(tenant.as_bytes())));
    }
    for item in t.jobs.iter() {
        let (k, v) = item.map_err(|e| db_err("purge", e))?;
        let rec: JobRecord = decode("job", &v)?;
        if rec.tenant == tenant {
            out.push((t.jobs.clone(), k));
        }
    }
    for item in t.restores.iter() {
        let (k, v) = item.map_err(|e| db_err("purge", e))?;
        let rec: super::restores::RestoreRecord = decode("restore", &v)?;
        if rec.tenant == tenant {
            out.push((t.restores.clone(), k));
        }
    }
    Ok(out)
}

/// The key an erased tenant is remembered under: a hash, not its ID.
fn erased_key(tenant: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"custos erased tenant v1\0");
    h.update(tenant.as_bytes());
    h.finalize().to_hex().to_string()
}

fn open_db(dir: &Path) -> Result<sled::Db> {
    sled::Config::new()
        .path(dir)
        .cache_capacity(32 << 20)
        .open()
        .map_err(|e| {
            db_err(
                &format!("cannot open {} (is another daemon running?)", dir.display()),
                e,
            )
        })
}

/// Overwrites every file under `dir` with zeros, then removes the tree: the
/// old copy of a rewritten catalog holds records an erasure purged.
fn shred_dir(dir: &Path) -> Result<()> {
    // Another process may be shredding the same copy (a `config check`
    // opening the catalog while the daemon finishes a rewrite): what is gone
    // already is fine.
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(Error::io_path("cannot read", &d, e)),
        };
        for e in entries {
            let e = match e {
                Ok(e) => e,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(Error::io_path("cannot read", &d, e)),
            };
            let p = e.path();
            match e.file_type() {
                Ok(ft) if ft.is_dir() => stack.push(p),
                Ok(ft) if ft.is_file() => crate::util::overwrite_with_zeros(&p)?,
                Ok(_) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(Error::io_path("cannot read", &p, e)),
            }
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if !gone(&e) => Err(Error::io_path("cannot remove", dir, e)),
        _ => Ok(()),
    }
}

impl Catalog {
    /// Opens (or creates) the catalog under `state_dir/catalog`, finishing a
    /// rewrite that a crash interrupted, or one an erasure still owes.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created or the database is
    /// locked by another daemon.
    pub fn open(state_dir: &Path) -> Result<Catalog> {
        let dir = state_dir.join("catalog");
        let fresh = dir.with_extension("rewritten");
        let old = dir.with_extension("old");
        // A rewrite renames the live copy away only once the new one is
        // complete: with no live copy, the new one is it.
        if !dir.exists() && fresh.exists() {
            std::fs::rename(&fresh, &dir).map_err(crate::error::at("cannot rename", &fresh))?;
        }
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh).map_err(crate::error::at("cannot remove", &fresh))?;
        }
        shred_dir(&old)?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        crate::util::private_dir(&dir)?;
        let trees = Trees::from_db(open_db(&dir)?)?;
        let owed = trees
            .meta
            .get(REWRITE_OWED)
            .map_err(|e| db_err("meta", e))?
            .is_some();
        let c = Catalog {
            trees: Arc::new(RwLock::new(trees)),
            dir: Some(dir),
        };
        if owed {
            c.rewrite()?;
        }
        Ok(c)
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
        Ok(Catalog {
            trees: Arc::new(RwLock::new(Trees::from_db(db)?)),
            dir: None,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Trees> {
        self.trees
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Rewrites the database into a fresh one and shreds the old files.
    ///
    /// sled is log-structured: a removed record stays in the old log
    /// segments until they are reused. After an erasure purged a tenant,
    /// copying every live record into a new database and overwriting the
    /// old files leaves no byte of the purged records in the catalog's
    /// files. (What the file system or the disk keeps of overwritten blocks
    /// is beyond what custos can verify.) Holds the catalog's write lock:
    /// every other use waits for the few milliseconds it takes.
    ///
    /// # Errors
    /// [`Error::Io`]; the old database stays in use when the copy fails.
    pub fn rewrite(&self) -> Result<()> {
        let mut trees = self
            .trees
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        trees.flush()?;
        let copy = |into: &sled::Db| -> Result<()> {
            for name in trees.db.tree_names() {
                let from = trees
                    .db
                    .open_tree(&name)
                    .map_err(|e| db_err("rewrite", e))?;
                let to = into.open_tree(&name).map_err(|e| db_err("rewrite", e))?;
                for item in from.iter() {
                    let (k, v) = item.map_err(|e| db_err("rewrite", e))?;
                    if name.as_ref() == b"meta" && k.as_ref() == REWRITE_OWED {
                        continue;
                    }
                    to.insert(k, v).map_err(|e| db_err("rewrite", e))?;
                }
            }
            into.flush().map_err(|e| db_err("rewrite", e))?;
            Ok(())
        };
        let Some(dir) = &self.dir else {
            let db = sled::Config::new()
                .temporary(true)
                .open()
                .map_err(|e| db_err("temporary", e))?;
            copy(&db)?;
            *trees = Trees::from_db(db)?;
            return Ok(());
        };
        let fresh = dir.with_extension("rewritten");
        let old = dir.with_extension("old");
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh).map_err(crate::error::at("cannot remove", &fresh))?;
        }
        std::fs::create_dir_all(&fresh).map_err(crate::error::at("cannot create", &fresh))?;
        crate::util::private_dir(&fresh)?;
        {
            let db = open_db(&fresh)?;
            copy(&db)?;
        }
        // The new copy is complete: swap it in (`open` finishes a swap a
        // crash interrupted), then reopen.
        std::fs::rename(dir, &old).map_err(crate::error::at("cannot rename", dir))?;
        std::fs::rename(&fresh, dir).map_err(crate::error::at("cannot rename", &fresh))?;
        // sled releases the old files when the last handle goes: replace
        // the trees first, then shred.
        let placeholder = Trees::from_db(
            sled::Config::new()
                .temporary(true)
                .open()
                .map_err(|e| db_err("temporary", e))?,
        )?;
        drop(std::mem::replace(&mut *trees, placeholder));
        *trees = Trees::from_db(open_db(dir)?)?;
        shred_dir(&old)
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
        let t = self.read();
        let rec = JobRecord {
            id: JobId(t.next_id()?),
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
        t.put_job(&rec)?;
        Ok(rec)
    }

    /// Stores a job record (insert or update).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn put_job(&self, rec: &JobRecord) -> Result<()> {
        self.read().put_job(rec)
    }

    /// One job.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn job(&self, id: JobId) -> Result<Option<JobRecord>> {
        self.read()
            .jobs
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
        newest(&self.read().jobs, "job", limit, filter)
    }

    /// Restores left queued or running by a daemon that stopped: marked
    /// failed ("interrupted"; asking again resumes into the same target).
    /// Returns how many.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn fail_interrupted_restores(&self, now: Timestamp) -> Result<usize> {
        use super::restores::RestoreState;
        let t = self.read();
        let mut n = 0;
        for item in t.restores.iter() {
            let (_, v) = item.map_err(|e| db_err("restores", e))?;
            let mut rec: super::restores::RestoreRecord = decode("restore", &v)?;
            if matches!(rec.state, RestoreState::Queued | RestoreState::Running) {
                rec.state = RestoreState::Failed;
                rec.finished = Some(now.to_string());
                rec.errors = vec!["interrupted: the daemon stopped during the restore".into()];
                t.put_restore(&rec)?;
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
        let t = self.read();
        let mut n = 0;
        for item in t.jobs.iter() {
            let (_, v) = item.map_err(|e| db_err("jobs", e))?;
            let mut rec: JobRecord = decode("job", &v)?;
            if !rec.state.finished() {
                rec.state = JobState::Failed;
                rec.finished = Some(now.to_string());
                rec.error = Some(
                    "interrupted: the daemon stopped while the job was queued or running".into(),
                );
                t.put_job(&rec)?;
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
            .read()
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
        self.read()
            .last_runs
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
        self.read().put_snapshot(s)
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
        let t = self.read();
        let prefix = Self::snapshot_prefix(tenant, service);
        for item in t.snapshots.scan_prefix(&prefix) {
            let (k, _) = item.map_err(|e| db_err("snapshots", e))?;
            t.snapshots.remove(k).map_err(|e| db_err("snapshots", e))?;
        }
        for s in snaps {
            t.put_snapshot(s)?;
        }
        Ok(())
    }

    /// The cached snapshots of one service, oldest first.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn snapshots(&self, tenant: &str, service: &str) -> Result<Vec<SnapshotEntry>> {
        self.read()
            .snapshots
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
        let t = self.read();
        for item in t
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
        self.read().next_id()
    }

    /// Stores a restore request (insert or update).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn put_restore(&self, rec: &super::restores::RestoreRecord) -> Result<()> {
        self.read().put_restore(rec)
    }

    /// One restore request.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn restore(&self, id: RestoreId) -> Result<Option<super::restores::RestoreRecord>> {
        self.read()
            .restores
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
        newest(&self.read().restores, "restore", limit, filter)
    }

    /// A tenant's erasure record: the live one while notice is given or
    /// erasure runs, or, once it is erased, a record rebuilt from what the
    /// catalog keeps (state, completion, certificate digest).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn erasure(&self, tenant: &str) -> Result<Option<crate::erasure::ErasureRecord>> {
        let t = self.read();
        if let Some(v) = t.erasures.get(tenant).map_err(|e| db_err("erasure", e))? {
            return decode("erasure", &v).map(Some);
        }
        let Some(v) = t
            .erased_tenants
            .get(erased_key(tenant))
            .map_err(|e| db_err("erasure", e))?
        else {
            return Ok(None);
        };
        let e: ErasedTenant = decode("erased tenant", &v)?;
        Ok(Some(crate::erasure::ErasureRecord::erased(tenant, &e)))
    }

    /// Every live erasure record (notice given, erasing). Erased tenants are
    /// not listed: nothing here names them; their certificates do.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn erasures(&self) -> Result<Vec<crate::erasure::ErasureRecord>> {
        self.read()
            .erasures
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
        let t = self.read();
        t.erasures
            .insert(rec.tenant.as_bytes(), encode("erasure", rec)?)
            .map_err(|e| db_err("erasure", e))?;
        t.flush()
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
        let t = self.read();
        t.erased
            .insert(
                format!("{tenant}/{target}/{name}"),
                encode("erased", &(size, fingerprint))?,
            )
            .map_err(|e| db_err("erased", e))?;
        t.erased.flush().map_err(|e| db_err("erased", e))?;
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
        self.read()
            .erased
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
        self.read()
            .erased
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
        self.read()
            .erased
            .scan_prefix(&prefix)
            .map(|item| {
                let (k, _) = item.map_err(|e| db_err("erased", e))?;
                Ok(String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            })
            .collect()
    }

    /// Remembers that `tenant` keeps data on target `name` at `url` (the
    /// target's URL, without the tenant): an erasure erases every target the
    /// tenant ever used, also those a later config no longer has.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn note_tenant_target(&self, tenant: &str, name: &str, url: &str) -> Result<()> {
        let t = self.read();
        let key = format!("{tenant}/{name}");
        if t.tenant_targets
            .get(&key)
            .map_err(|e| db_err("tenant targets", e))?
            .is_some_and(|v| v.as_ref() == url.as_bytes())
        {
            return Ok(());
        }
        t.tenant_targets
            .insert(key, url.as_bytes())
            .map_err(|e| db_err("tenant targets", e))?;
        t.tenant_targets
            .flush()
            .map_err(|e| db_err("tenant targets", e))?;
        Ok(())
    }

    /// The targets noted for `tenant`: (name, target URL).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn tenant_targets(&self, tenant: &str) -> Result<Vec<(String, String)>> {
        let prefix = format!("{tenant}/");
        self.read()
            .tenant_targets
            .scan_prefix(&prefix)
            .map(|item| {
                let (k, v) = item.map_err(|e| db_err("tenant targets", e))?;
                Ok((
                    String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            })
            .collect()
    }

    /// What the repository at `url` held at the last look (`None`: never
    /// looked).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn seen(&self, tenant: &str, url: &str) -> Result<Option<crate::repository::watch::Seen>> {
        self.read()
            .watch
            .get(format!("{tenant}/{url}"))
            .map_err(|e| db_err("watch", e))?
            .map(|v| decode("watch", &v))
            .transpose()
    }

    /// Remembers what the repository at `url` holds now.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn put_seen(
        &self,
        tenant: &str,
        url: &str,
        seen: &crate::repository::watch::Seen,
    ) -> Result<()> {
        self.read()
            .watch
            .insert(format!("{tenant}/{url}"), encode("watch", seen)?)
            .map_err(|e| db_err("watch", e))?;
        Ok(())
    }

    /// Records an alarm (the same text for the same repository only once).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn add_alarm(&self, tenant: &str, url: &str, text: &str) -> Result<()> {
        let t = self.read();
        let prefix = format!("{tenant}/");
        for item in t.alarms.scan_prefix(&prefix) {
            let (_, v) = item.map_err(|e| db_err("alarms", e))?;
            let a: Alarm = decode("alarm", &v)?;
            if a.repository == url && a.text == text {
                return Ok(());
            }
        }
        tracing::error!(%tenant, repository = %url, alarm = %text, "the repository changed behind custos's back");
        let mut key = prefix.into_bytes();
        key.extend_from_slice(&t.next_id()?.to_be_bytes());
        let alarm = Alarm {
            time: Timestamp::now().to_string(),
            tenant: tenant.to_string(),
            repository: url.to_string(),
            text: text.to_string(),
        };
        t.alarms
            .insert(key, encode("alarm", &alarm)?)
            .map_err(|e| db_err("alarms", e))?;
        t.flush()
    }

    /// Removes the alarms of `tenant` (an operator accepted the repository
    /// as it now is); returns them.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn accept_alarms(&self, tenant: &str) -> Result<Vec<Alarm>> {
        let t = self.read();
        let mut out = Vec::new();
        for item in t.alarms.scan_prefix(format!("{tenant}/")) {
            let (k, v) = item.map_err(|e| db_err("alarms", e))?;
            out.push(decode::<Alarm>("alarm", &v)?);
            t.alarms.remove(k).map_err(|e| db_err("alarms", e))?;
        }
        t.flush()?;
        out.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(out)
    }

    /// Every alarm that `filter` lets through, oldest first.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn alarms(&self, filter: impl Fn(&Alarm) -> bool) -> Result<Vec<Alarm>> {
        let mut out = Vec::new();
        for item in self.read().alarms.iter() {
            let (_, v) = item.map_err(|e| db_err("alarms", e))?;
            let a: Alarm = decode("alarm", &v)?;
            if filter(&a) {
                out.push(a);
            }
        }
        out.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(out)
    }

    /// Adds `n` to a service's counter `name`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn add_counter(&self, tenant: &str, service: &str, name: &str, n: u64) -> Result<()> {
        self.read()
            .counters
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
        self.read()
            .counters
            .scan_prefix(&prefix)
            .map(|item| {
                let (k, v) = item.map_err(|e| db_err("counters", e))?;
                let name = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                let n = <[u8; 8]>::try_from(v.as_ref()).map_or(0, u64::from_be_bytes);
                Ok((name, n))
            })
            .collect()
    }

    /// How many records name `tenant` (what [`Catalog::purge_tenant`]
    /// removes).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn tenant_records(&self, tenant: &str) -> Result<usize> {
        Ok(tenant_keys(&self.read(), tenant)?.len())
    }

    /// Removes every record about a tenant (end-of-contract erasure) and
    /// remembers it as erased under a hash of its ID; then rewrites the
    /// database so that no old copy of a purged record stays in its files
    /// ([`Catalog::rewrite`]). Returns how many records were removed.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn purge_tenant(&self, tenant: &str, erased: &ErasedTenant) -> Result<usize> {
        let n = {
            let t = self.read();
            // Owed until the rewrite is done: `open` finishes it after a crash.
            t.meta
                .insert(REWRITE_OWED, b"1")
                .map_err(|e| db_err("meta", e))?;
            t.erased_tenants
                .insert(erased_key(tenant), encode("erased tenant", erased)?)
                .map_err(|e| db_err("erased tenant", e))?;
            let keys = tenant_keys(&t, tenant)?;
            for (tree, k) in &keys {
                tree.remove(k).map_err(|e| db_err("purge", e))?;
            }
            t.flush()?;
            keys.len()
        };
        self.rewrite()?;
        Ok(n)
    }

    /// Writes everything to disk.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn flush(&self) -> Result<()> {
        self.read().flush()
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

        let erased = ErasedTenant {
            completed: "2026-11-30T00:00:00Z".into(),
            certificate_blake3: "00".repeat(32),
        };
        assert!(c.purge_tenant("acme", &erased).unwrap() >= 2);
        assert_eq!(
            c.erasure("acme").unwrap().unwrap().state,
            crate::erasure::ErasureState::Erased
        );
        assert!(c.counters("acme", "db").unwrap().is_empty());
        assert!(c.snapshots("acme", "db").unwrap().is_empty());
        assert_eq!(c.last_run("acme", "db", JobKind::Backup).unwrap(), None);
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
