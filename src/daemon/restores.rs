//! Restores for the service desk: request (with a ticket) → queued → running
//! (files and bytes so far) → done or failed with the reason.
//!
//! A request is checked when it is made: the service exists for the caller,
//! the ticket reference is well formed, and the snapshot it designates (by ID,
//! prefix, `latest`, or the newest at or before `at`, resolved on the
//! catalog's snapshot cache) is inside the service's restore window. A
//! request outside the window is refused at once, naming the window and the
//! date asked for.
//!
//! Restores land in `<restore root>/<tenant>/<ticket>-<request id>`, never
//! over live data; the partner's data is handed over from there. They run
//! one at a time by default (a restore is I/O heavy and should not starve
//! backups), each with `--verify` unless the request says otherwise.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::jobs::ServiceJobs;
use super::records::{RestoreId, SnapshotEntry};
use crate::catalog::{Catalog, Json, Table};
use crate::commands::restore;
use crate::config::ServiceKey;
use crate::duration::HumanDuration;
use crate::progress::Progress;
use crate::{Error, Result};

/// How often a running restore's progress is written to the catalog.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What a caller asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Service-desk ticket reference (letters, digits, `-`, `_`, `.`).
    pub ticket: String,
    /// Snapshot ID, unique prefix, or `latest` (default).
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Or the newest snapshot at or before this time (RFC 3339).
    #[serde(default)]
    pub at: Option<String>,
    /// Only these paths (globs).
    #[serde(default)]
    pub include: Vec<String>,
    /// Only these paths, as the snapshot names them: no pattern (`*`, `?`
    /// and `[` in a name mean themselves). With `include`, either matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Not these paths.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Read everything back after writing (default true).
    #[serde(default = "yes")]
    pub verify: bool,
}

fn yes() -> bool {
    true
}

/// Where a restore is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestoreState {
    /// Waiting for its turn.
    Queued,
    /// Writing.
    Running,
    /// Finished, every file restored (and verified).
    Done,
    /// Finished with problems, or not at all.
    Failed,
}

impl RestoreState {
    /// The state in words, for people.
    pub fn word(self) -> &'static str {
        match self {
            RestoreState::Queued => "queued",
            RestoreState::Running => "running",
            RestoreState::Done => "done",
            RestoreState::Failed => "failed",
        }
    }
}

/// A restore as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RestoreRecord {
    /// Request ID.
    pub id: super::records::RestoreId,
    /// The tenant's ID, as in the config.
    pub tenant: String,
    /// The service's name within its tenant.
    pub service: String,
    /// Ticket reference.
    pub ticket: String,
    /// Who asked (token name).
    pub requested_by: String,
    /// When.
    pub requested_at: String,
    /// The request as made.
    pub request: RestoreRequest,
    /// The snapshot it resolved to.
    pub snapshot: crate::SnapshotId,
    /// That snapshot's time.
    pub snapshot_time: String,
    /// Where the files go.
    #[schema(value_type = String)]
    pub target: PathBuf,
    /// Queued, running, or how it ended.
    pub state: RestoreState,
    /// Files written so far.
    pub files_done: u64,
    /// Files to write.
    pub files_total: u64,
    /// Bytes written so far.
    pub bytes_done: u64,
    /// Bytes to write.
    pub bytes_total: u64,
    /// Start.
    pub started: Option<String>,
    /// End.
    pub finished: Option<String>,
    /// Seconds from start to end.
    pub duration_secs: f64,
    /// Why it failed, or what could not be restored.
    pub errors: Vec<String>,
    /// Privileged content left out (setuid and setgid bits, file
    /// capabilities, device nodes): service-desk restores never restore it.
    #[serde(default)]
    pub dropped: Vec<String>,
    /// When the restored files were removed (`daemon.restore_retention`
    /// after the restore finished).
    #[serde(default)]
    pub expired: Option<String>,
}

/// Resolves a request against the cached snapshots (oldest first).
fn resolve<'a>(
    snaps: &'a [SnapshotEntry],
    req: &RestoreRequest,
    at: Option<Timestamp>,
) -> Result<&'a SnapshotEntry> {
    let time = |s: &SnapshotEntry| s.time.parse::<Timestamp>().unwrap_or(Timestamp::MIN);
    match (req.snapshot.as_deref(), at) {
        (Some(_), Some(_)) => Err(Error::Usage(
            "give either a snapshot or `at`, not both".into(),
        )),
        (None, Some(t)) => snaps
            .iter()
            .rev()
            .find(|s| time(s) <= t)
            .ok_or_else(|| Error::NotFound(format!("a snapshot at or before {t}"))),
        (None | Some("latest"), None) => snaps
            .last()
            .ok_or_else(|| Error::NotFound("a snapshot of this service".into())),
        (Some(spec), None) => {
            let spec = spec.to_ascii_lowercase();
            let hits: Vec<_> = snaps
                .iter()
                .filter(|s| s.id.to_hex().starts_with(&spec))
                .collect();
            match hits.as_slice() {
                [one] => Ok(one),
                [] => Err(Error::NotFound(format!("snapshot {spec} of this service"))),
                _ => Err(Error::Usage(format!("snapshot prefix {spec} is ambiguous"))),
            }
        }
    }
}

fn valid_ticket(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !t.starts_with('.')
}

/// Restores a tenant may have queued or running at once, by default.
pub(crate) const RESTORES_PER_TENANT: usize = 2;

/// Free space kept on the restore root beyond a restore's size: 5 % and
/// 64 MiB (directories, metadata, the file system's own reserve).
fn space_needed(size: u64) -> u64 {
    size.saturating_add(size / 20).saturating_add(64 << 20)
}

/// The restore desk: checks requests, queues and runs them.
#[derive(Clone)]
pub(crate) struct RestoreDesk {
    catalog: Catalog,
    root: PathBuf,
    slots: Arc<Semaphore>,
    audit: Option<crate::audit::AuditLog>,
    per_tenant: usize,
    /// The runtime restores run on (the daemon's; a request arrives on the
    /// API's), when the desk was made inside one.
    runtime: Option<tokio::runtime::Handle>,
}

impl RestoreDesk {
    /// Restores go under `root`; `concurrency` run at once.
    pub(crate) fn new(catalog: Catalog, root: PathBuf, concurrency: usize) -> RestoreDesk {
        RestoreDesk {
            catalog,
            root,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            audit: None,
            per_tenant: RESTORES_PER_TENANT,
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// At most `n` restores queued or running per tenant (the next request
    /// is answered [`Error::Busy`]).
    pub(crate) fn with_per_tenant(mut self, n: usize) -> RestoreDesk {
        self.per_tenant = n.max(1);
        self
    }

    /// Removes the files of restores that finished more than `keep` ago
    /// (they were handed over; the restore root is shared by every
    /// tenant), marking their records `expired`. Returns how many.
    ///
    /// # Errors
    /// Catalog errors; a directory that cannot be removed is logged.
    pub(crate) fn expire_outputs(&self, keep: Duration, now: Timestamp) -> Result<usize> {
        let Ok(keep) = jiff::SignedDuration::try_from(keep) else {
            return Ok(0);
        };
        let Ok(cutoff) = now.checked_sub(keep) else {
            return Ok(0);
        };
        let old = self.catalog.restores(usize::MAX, |r| {
            r.expired.is_none()
                && matches!(r.state, RestoreState::Done | RestoreState::Failed)
                && r.finished
                    .as_deref()
                    .and_then(|f| f.parse::<Timestamp>().ok())
                    .is_some_and(|f| f < cutoff)
        })?;
        let mut n = 0;
        for mut rec in old {
            if rec.target.exists() {
                if let Err(e) = std::fs::remove_dir_all(&rec.target) {
                    tracing::error!(restore = %rec.id, target = %rec.target.display(), error = %e, "cannot remove an expired restore");
                    continue;
                }
            }
            rec.expired = Some(crate::util::stamp(now));
            self.save(&rec);
            tracing::info!(restore = %rec.id, tenant = %rec.tenant, "restored files removed after the retention period");
            n += 1;
        }
        Ok(n)
    }

    /// Records requests and outcomes in `audit`.
    pub(crate) fn with_audit(mut self, audit: crate::audit::AuditLog) -> RestoreDesk {
        self.audit = Some(audit);
        self
    }

    fn audit(&self, actor: &str, action: &str, rec: &RestoreRecord, extra: serde_json::Value) {
        if let Some(a) = &self.audit {
            let mut details = serde_json::json!({
                "restore": rec.id,
                "service": rec.service,
                "ticket": rec.ticket,
                "snapshot": rec.snapshot,
                "target": rec.target,
            });
            if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
                d.extend(e.clone());
            }
            a.record(actor, action, Some(&rec.tenant), details);
        }
    }

    /// Checks a request and queues it; the restore runs in the background.
    /// When the catalog's snapshot cache has no snapshot that matches, the
    /// service's snapshots are re-read from its repository first (one made
    /// by the command line or another host is found).
    ///
    /// # Errors
    /// [`Error::Usage`] for a malformed request, [`Error::NotFound`] when no
    /// snapshot matches, [`Error::Refused`] outside the restore window or
    /// once the tenant's erasure has started.
    pub(crate) async fn submit(
        &self,
        svc: Arc<ServiceJobs>,
        window: Option<HumanDuration>,
        req: RestoreRequest,
        actor: &str,
        now: Timestamp,
    ) -> Result<RestoreRecord> {
        if !valid_ticket(&req.ticket) {
            return Err(Error::Usage(format!(
                "ticket {:?}: 1-64 letters, digits, '-', '_' or '.' expected",
                req.ticket
            )));
        }
        let refused = |e: Error| {
            if let Some(a) = &self.audit {
                a.record(
                    actor,
                    "restore.refused",
                    Some(&svc.tenant),
                    serde_json::json!({"service": svc.service, "ticket": req.ticket, "snapshot": req.snapshot, "at": req.at, "reason": e.to_string()}),
                );
            }
            e
        };
        let at = req
            .at
            .as_deref()
            .map(|t| {
                t.parse::<Timestamp>()
                    .map_err(|e| Error::Usage(format!("at {t:?}: not an RFC 3339 time: {e}")))
            })
            .transpose()?;
        // A point in time before the window is refused before anything else.
        crate::policy::window::check(window, at, now, now).map_err(|e| refused(e.into()))?;
        if let Some(e) = self.catalog.erasure(&svc.tenant)? {
            if e.state.refused() {
                return Err(refused(Error::Refused(e.refusal())));
            }
        }
        let mut snaps = self
            .catalog
            .snapshots(&ServiceKey::new(&svc.tenant, &svc.service))?;
        if resolve(&snaps, &req, at).is_err() {
            super::jobs::refresh_snapshots(&svc, &self.catalog).await;
            snaps = self
                .catalog
                .snapshots(&ServiceKey::new(&svc.tenant, &svc.service))?;
        }
        let snap = resolve(&snaps, &req, at).map_err(refused)?.clone();
        let snap_time = snap.time.parse::<Timestamp>().unwrap_or(Timestamp::MIN);
        crate::policy::window::check(window, at, snap_time, now).map_err(|e| refused(e.into()))?;
        // One tenant cannot fill the shared restore disk or queue.
        let active = self
            .catalog
            .restores(usize::MAX, |r| {
                r.tenant == svc.tenant
                    && matches!(r.state, RestoreState::Queued | RestoreState::Running)
            })?
            .len();
        if active >= self.per_tenant {
            return Err(refused(Error::Busy(format!(
                "tenant {} has {active} restores queued or running, the most it may have: ask again when one is done",
                svc.tenant
            ))));
        }
        if let Some(bad) = req.paths.iter().find(|p| !p.starts_with('/')) {
            return Err(refused(Error::Usage(format!(
                "path {bad:?}: a path starts with / (as the snapshot's tree names it)"
            ))));
        }
        if req.include.is_empty() && req.paths.is_empty() {
            self.check_space(snap.size).map_err(refused)?;
        }
        let id = super::records::RestoreId(self.catalog.next_id()?);
        let rec = RestoreRecord {
            id,
            tenant: svc.tenant.clone(),
            service: svc.service.clone(),
            ticket: req.ticket.clone(),
            requested_by: actor.to_string(),
            requested_at: crate::util::stamp(now),
            snapshot: snap.id,
            snapshot_time: snap
                .time
                .parse::<jiff::Timestamp>()
                .map_or_else(|_| snap.time.clone(), crate::util::stamp),
            target: self
                .root
                .join(&svc.tenant)
                .join(format!("{}-{id}", req.ticket)),
            state: RestoreState::Queued,
            files_done: 0,
            files_total: 0,
            bytes_done: 0,
            bytes_total: 0,
            started: None,
            finished: None,
            duration_secs: 0.0,
            errors: Vec::new(),
            dropped: Vec::new(),
            expired: None,
            request: req,
        };
        // Fail closed: nothing is restored unless the request is on record.
        if let Some(a) = &self.audit {
            a.append(
                actor,
                "restore.requested",
                Some(&rec.tenant),
                serde_json::json!({
                    "restore": rec.id,
                    "service": rec.service,
                    "ticket": rec.ticket,
                    "snapshot": rec.snapshot,
                    "target": rec.target,
                    "at": rec.request.at,
                }),
            )
            .map_err(|e| {
                Error::io(
                    format!("the audit log cannot be written ({e}): the request is refused"),
                    std::io::Error::other("audit log"),
                )
            })?;
        }
        self.catalog.put_restore(&rec)?;
        tracing::info!(restore = %id, tenant = %rec.tenant, service = %rec.service, ticket = %rec.ticket, by = actor, snapshot = %rec.snapshot, "restore requested");
        let desk = self.clone();
        let queued = rec.clone();
        let run = async move { desk.run(svc, queued).await };
        match &self.runtime {
            Some(rt) => drop(rt.spawn(run)),
            None => drop(tokio::spawn(run)),
        }
        Ok(rec)
    }

    /// Refuses a restore of `size` bytes that the restore root has no room
    /// for (with [`space_needed`]'s margin).
    fn check_space(&self, size: u64) -> Result<()> {
        std::fs::create_dir_all(&self.root).map_err(crate::error::at(
            "cannot create the restore root",
            &self.root,
        ))?;
        let st = rustix::fs::statvfs(&self.root)
            .map_err(|e| Error::io_path("cannot read the free space of", &self.root, e.into()))?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let need = space_needed(size);
        if free < need {
            return Err(Error::io(
                format!(
                    "the restore disk has {} free and this restore needs about {}: ask again when older restores were removed, or restore fewer paths",
                    crate::util::human_bytes(free),
                    crate::util::human_bytes(need)
                ),
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            ));
        }
        Ok(())
    }

    async fn run(self, svc: Arc<ServiceJobs>, mut rec: RestoreRecord) {
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            return;
        };
        // Erasure may have started while the request waited for its turn.
        if let Ok(Some(e)) = self.catalog.erasure(&rec.tenant) {
            if e.state.refused() {
                rec.state = RestoreState::Failed;
                rec.finished = Some(crate::util::stamp(Timestamp::now()));
                rec.errors = vec![e.refusal()];
                self.save(&rec);
                return;
            }
        }
        let start = tokio::time::Instant::now();
        rec.state = RestoreState::Running;
        rec.started = Some(crate::util::stamp(Timestamp::now()));
        self.save(&rec);
        let progress = Progress::hidden();
        let request = rec.clone();
        let work = run_restore(&svc, &request, progress.clone());
        tokio::pin!(work);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = tick.tick() => {
                    (rec.files_done, rec.files_total, rec.bytes_done, rec.bytes_total) = progress.counts();
                    self.save(&rec);
                }
            }
        };
        (
            rec.files_done,
            rec.files_total,
            rec.bytes_done,
            rec.bytes_total,
        ) = progress.counts();
        rec.finished = Some(crate::util::stamp(Timestamp::now()));
        rec.duration_secs = start.elapsed().as_secs_f64();
        if let Ok(r) = &result {
            rec.dropped = r
                .dropped
                .iter()
                .map(|d| format!("{}: {}", d.path, d.reason))
                .collect();
        }
        match result {
            Ok(r) if r.errors.is_empty() => rec.state = RestoreState::Done,
            Ok(r) => {
                rec.state = RestoreState::Failed;
                rec.errors = r.errors;
            }
            Err(e) => {
                rec.state = RestoreState::Failed;
                rec.errors = vec![e.to_string()];
            }
        }
        tracing::info!(restore = %rec.id, tenant = %rec.tenant, service = %rec.service, ticket = %rec.ticket,
            result = rec.state.word(), files = rec.files_done, bytes = rec.bytes_done,
            duration_s = (rec.duration_secs * 10.0).round() / 10.0, "restore finished");
        self.save(&rec);
        let action = if rec.state == RestoreState::Done {
            "restore.done"
        } else {
            "restore.failed"
        };
        self.audit(
            "daemon",
            action,
            &rec,
            serde_json::json!({"requested_by": rec.requested_by, "files": rec.files_done, "bytes": rec.bytes_done, "errors": rec.errors}),
        );
    }

    fn save(&self, rec: &RestoreRecord) {
        if let Err(e) = self.catalog.put_restore(rec) {
            tracing::error!(restore = %rec.id, error = %e, "cannot record the restore");
        }
    }
}

async fn run_restore(
    svc: &ServiceJobs,
    rec: &RestoreRecord,
    progress: Progress,
) -> Result<restore::RestoreResult> {
    let repo = svc.repo.open(false).await?;
    let (snaps, _) = repo.snapshots().await?;
    let (_, snap) = snaps
        .iter()
        .find(|(id, _)| *id == rec.snapshot)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "snapshot {} (forgotten since the request?)",
                rec.snapshot
            ))
        })?;
    // Service-desk restores never recreate privileged content: the data is
    // the tenant's, the host is ours.
    let opts = restore::RestoreOptions {
        target: rec.target.clone(),
        includes: rec
            .request
            .include
            .iter()
            .cloned()
            .chain(rec.request.paths.iter().map(|p| globset::escape(p)))
            .collect(),
        excludes: rec.request.exclude.clone(),
        verify: rec.request.verify,
        progress,
        // The window was checked when the request was accepted (a refusal
        // is audited there); a request in the queue is not refused later.
        window: None,
        ..Default::default()
    };
    restore::restore(&repo, snap, &opts).await
}

impl Json for RestoreRecord {}

/// The `restores` table of the catalog.
impl Catalog {
    fn restore_table(&self) -> Table<RestoreId, RestoreRecord> {
        self.table("restores")
    }

    /// Stores a restore request (insert or update).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub(crate) fn put_restore(&self, rec: &RestoreRecord) -> Result<()> {
        self.restore_table().put(&rec.id, rec)
    }

    /// One restore request.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn restore(&self, id: RestoreId) -> Result<Option<RestoreRecord>> {
        self.restore_table().get(&id)
    }

    /// The newest `limit` restore requests matching `filter`, newest first.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn restores(
        &self,
        limit: usize,
        filter: impl Fn(&RestoreRecord) -> bool,
    ) -> Result<Vec<RestoreRecord>> {
        self.restore_table().newest("", limit, filter)
    }

    /// Restores left queued or running by a daemon that stopped: marked
    /// failed ("interrupted"; asking again resumes into the same target).
    /// Returns how many.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub(crate) fn fail_interrupted_restores(&self, now: Timestamp) -> Result<usize> {
        let table = self.restore_table();
        let mut n = 0;
        for mut rec in table.values("")? {
            if matches!(rec.state, RestoreState::Queued | RestoreState::Running) {
                rec.state = RestoreState::Failed;
                rec.finished = Some(crate::util::stamp(now));
                rec.errors = vec!["interrupted: the daemon stopped during the restore".into()];
                table.put(&rec.id, &rec)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot ID starting with `prefix` (hex), zeros after.
    fn sid(prefix: &str) -> crate::SnapshotId {
        format!("{prefix:0<64}").parse().unwrap()
    }

    fn entry(id: &str, time: &str) -> SnapshotEntry {
        SnapshotEntry {
            id: sid(id),
            tenant: "acme".into(),
            service: "app".into(),
            time: time.into(),
            tags: vec![],
            size: 1,
            partial: false,
        }
    }

    #[test]
    fn requests_resolve_by_id_prefix_latest_and_time() {
        let snaps = [
            entry("aa11", "2026-11-01T01:00:00Z"),
            entry("ab22", "2026-11-02T01:00:00Z"),
            entry("cc33", "2026-11-03T01:00:00Z"),
        ];
        let req = |snapshot: Option<&str>| RestoreRequest {
            ticket: "SD-1".into(),
            snapshot: snapshot.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(resolve(&snaps, &req(None), None).unwrap().id, sid("cc33"));
        assert_eq!(
            resolve(&snaps, &req(Some("latest")), None).unwrap().id,
            sid("cc33")
        );
        assert_eq!(
            resolve(&snaps, &req(Some("AB")), None).unwrap().id,
            sid("ab22")
        );
        assert!(matches!(
            resolve(&snaps, &req(Some("a")), None),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            resolve(&snaps, &req(Some("ff")), None),
            Err(Error::NotFound(_))
        ));
        let at = "2026-11-02T12:00:00Z".parse().ok();
        assert_eq!(resolve(&snaps, &req(None), at).unwrap().id, sid("ab22"));
        let before = "2026-10-01T00:00:00Z".parse().ok();
        assert!(matches!(
            resolve(&snaps, &req(None), before),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            resolve(&snaps, &req(Some("aa11")), at),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn tickets_are_safe_path_components() {
        assert!(valid_ticket("SD-4711"));
        assert!(valid_ticket("INC0012345.2"));
        for bad in ["", "../etc", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_ticket(bad), "{bad}");
        }
    }
}
