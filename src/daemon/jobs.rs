//! What each job kind does, for one service: the daemon's [`Executor`].
//!
//! | kind | does |
//! |---|---|
//! | backup | pre hook → back up the paths or the dump command's output → post hook (always, even when the backup failed) → refresh the snapshot cache |
//! | retention | `forget` with the service's policy (this service's snapshots only, grouped by service) then `prune` |
//! | check | `check --read-data-subset` |
//! | replicate | `copy` the service's new snapshots to the standby target |
//! | drill | restore the newest snapshot into a scratch directory with `--verify`, run the check command on it, measure the time (the RTO achieved), compare it with the policy's RTO, wipe the scratch directory |
//!
//! A service's repository is `<target url>/<tenant>`: one repository per tenant
//! and target, shared by the tenant's services (deduplication within a
//! partner, never across partners). A missing repository is created at the
//! first backup with the tenant's key.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::records::{JobKind, SnapshotEntry};
use super::runner::{Executor, JobContext, JobOutcome};
use crate::backend::Backend;
use crate::catalog::Catalog;
use crate::commands::{backup, check, forget, prune};
use crate::config::{Hook, RepoAccess, ServiceKey, SourceSpec};
use crate::policy::retention::RetentionPolicy;
use crate::source::command::{run_hook, CommandSpec, CommandStream};
use crate::{Error, Result};

/// A DR drill's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillSpec {
    /// Run on the restored data (e.g. start the database and run a query);
    /// it gets `CUSTOS_DRILL_DIR` (the restored tree) and `CUSTOS_SNAPSHOT`.
    pub check: Option<Hook>,
    /// Database services: queries on the scratch server once every dump is
    /// loaded.
    pub sql: Vec<crate::config::SqlCheck>,
    /// As root, the user the scratch database server runs as.
    pub run_as: String,
    /// The policy's RTO.
    pub rto: Duration,
    /// Scratch directories are created under this one, and wiped afterwards.
    pub scratch_root: PathBuf,
}

/// Everything the jobs of one service need.
#[derive(Debug, Clone)]
pub struct ServiceJobs {
    /// The tenant's ID, as in the config.
    pub tenant: String,
    /// The service's name within its tenant.
    pub service: String,
    /// Primary repository.
    pub repo: RepoAccess,
    /// Standby repository.
    pub standby: Option<RepoAccess>,
    /// What to back up.
    pub source: SourceSpec,
    /// Run before the backup (quiesce, snapshot).
    pub pre_hook: Option<Hook>,
    /// Run after the backup, whatever happened (thaw).
    pub post_hook: Option<Hook>,
    /// zstd level.
    pub compression_level: i32,
    /// Retention rules.
    pub retention: RetentionPolicy,
    /// The service's RPO: while its newest complete snapshot is older than
    /// this, retention forgets nothing.
    pub rpo: Duration,
    /// Prune settings after forget.
    pub prune: prune::PruneOptions,
    /// Percentage of packs a check job reads.
    pub check_subset: f64,
    /// DR drills, if the policy has them.
    pub drill: Option<DrillSpec>,
}

/// The services' jobs, replaceable on reload.
pub(crate) type Services = Arc<RwLock<HashMap<ServiceKey, Arc<ServiceJobs>>>>;

/// The executor over `services`, recording snapshots in `catalog` and
/// deletions (retention) in `audit`.
pub(crate) fn executor(
    services: Services,
    catalog: Catalog,
    audit: Option<crate::audit::AuditLog>,
) -> Executor {
    Arc::new(move |ctx: JobContext| {
        let services = services.clone();
        let catalog = catalog.clone();
        let audit = audit.clone();
        Box::pin(async move {
            let svc = services
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&ServiceKey::new(&ctx.job.tenant, &ctx.job.service))
                .cloned()
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "service {}/{} (removed from the config?)",
                        ctx.job.tenant, ctx.job.service
                    ))
                })?;
            // Once erasure has started, nothing more is done for the tenant
            // (the runner refuses such jobs already; this covers one queued
            // before erasure started).
            if let Some(e) = catalog.erasure(&svc.tenant)? {
                if e.state.refused() {
                    return Err(Error::Refused(e.refusal()));
                }
            }
            match ctx.job.kind {
                JobKind::Backup => run_backup(&svc, &ctx, &catalog).await,
                JobKind::Retention => {
                    let r = run_retention(&svc, &catalog).await;
                    if let (Some(a), Ok(o)) = (&audit, &r) {
                        a.record(
                            "daemon",
                            "retention.done",
                            Some(&svc.tenant),
                            serde_json::json!({"service": svc.service, "job": ctx.job.id, "summary": o.summary}),
                        );
                    }
                    r
                }
                JobKind::Check => run_check(&svc, &catalog).await,
                JobKind::Replicate => run_replicate(&svc).await,
                JobKind::Drill => run_drill(&svc, &ctx).await,
            }
        })
    })
}

fn job_env(svc: &ServiceJobs, ctx: &JobContext) -> Vec<(String, String)> {
    vec![
        ("CUSTOS_TENANT".into(), svc.tenant.clone()),
        ("CUSTOS_SERVICE".into(), svc.service.clone()),
        ("CUSTOS_JOB_ID".into(), ctx.job.id.to_string()),
    ]
}

fn with_env(c: &CommandSpec, env: &[(String, String)]) -> CommandSpec {
    let mut c = c.clone();
    c.env.extend_from_slice(env);
    c
}

async fn run_backup(svc: &ServiceJobs, ctx: &JobContext, catalog: &Catalog) -> Result<JobOutcome> {
    let env = job_env(svc, ctx);
    if let Some(h) = &svc.pre_hook {
        if let Err(e) = run_hook(&with_env(&h.command, &env), "pre", h.timeout).await {
            // The pre hook may have half-quiesced the workload: thaw it.
            post_hook(svc, &env).await;
            return Err(e);
        }
    }
    let result = backup_once(svc, ctx, &env).await;
    let post = post_hook(svc, &env).await;
    let made = result?;
    refresh_snapshots(svc, catalog).await;
    let mut out = JobOutcome::default();
    let mut parts = Vec::new();
    let mut unreadable = 0;
    for r in &made {
        let s = &r.snapshot.summary;
        out.snapshot = Some(r.id);
        out.bytes_read += s.bytes_read;
        out.bytes_added += s.bytes_added;
        out.files += s.files;
        unreadable += s.errors.len();
        let what = match r.snapshot.paths.as_slice() {
            [one] if r.snapshot.stream && made.len() > 1 => {
                format!("{} ", one.trim_start_matches('/'))
            }
            _ => String::new(),
        };
        parts.push(format!(
            "{what}snapshot {}: {} files, {} read, {} added",
            r.id.short(),
            s.files,
            crate::util::human_bytes(s.bytes_read),
            crate::util::human_bytes(s.bytes_added)
        ));
    }
    let mut summary = parts.join("; ");
    if unreadable > 0 {
        summary.push_str(&format!("; {unreadable} entries could not be read"));
    }
    if let Some(p) = &post {
        summary.push_str(&format!("; post hook failed: {p}"));
    }
    out.warning = unreadable > 0 || post.is_some();
    out.summary = Some(summary);
    Ok(out)
}

/// Runs the post hook; returns its error as text (logged, not fatal).
async fn post_hook(svc: &ServiceJobs, env: &[(String, String)]) -> Option<String> {
    let h = svc.post_hook.as_ref()?;
    match run_hook(&with_env(&h.command, env), "post", h.timeout).await {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, "post hook failed");
            Some(e.to_string())
        }
    }
}

/// The backup itself: one snapshot, or for a database source one per
/// database (each tagged `db:<name>`), in order. A dump that fails stops
/// the job there: it never becomes a snapshot, and its stderr is in the
/// error; the databases dumped before it keep their snapshots.
async fn backup_once(
    svc: &ServiceJobs,
    ctx: &JobContext,
    env: &[(String, String)],
) -> Result<Vec<backup::BackupResult>> {
    let repo = svc.repo.open(true).await?;
    let opts = || backup::BackupOptions {
        service: Some(svc.service.clone()),
        tenant: Some(svc.tenant.clone()),
        tags: ctx.job.tags.clone(),
        compression_level: svc.compression_level,
        cancel: Some(ctx.cancel.clone()),
        ..Default::default()
    };
    let stream_of = |command: &CommandSpec, name: &str| -> Result<backup::StreamSource> {
        Ok(backup::StreamSource {
            name: name.to_string(),
            reader: Box::new(CommandStream::spawn(&with_env(command, env))?),
        })
    };
    match &svc.source {
        SourceSpec::Paths { paths, exclude } => {
            let mut o = opts();
            o.paths = paths.clone();
            o.exclude = exclude.clone();
            Ok(vec![backup::backup(&repo, o).await?])
        }
        SourceSpec::Command { command, name } => {
            let mut o = opts();
            o.stream = Some(stream_of(command, name)?);
            Ok(vec![backup::backup(&repo, o).await?])
        }
        SourceSpec::Image(image) => {
            let mut o = opts();
            let src = image.clone();
            let stream =
                tokio::task::spawn_blocking(move || crate::source::image::ImageStream::open(&src))
                    .await
                    .map_err(|e| Error::Internal(format!("opening the image stopped: {e}")))??;
            o.stream = Some(backup::StreamSource {
                name: image.stream_name(),
                reader: Box::new(stream),
            });
            Ok(vec![backup::backup(&repo, o).await?])
        }
        SourceSpec::Database(db) => {
            db.conn.check_credentials()?;
            let mut made = Vec::new();
            for dump in db.dumps()? {
                let mut o = opts();
                o.tags.push(dump.tag.clone());
                o.stream = Some(stream_of(&dump.command, &dump.stream_name)?);
                let r = backup::backup(&repo, o).await.map_err(|e| {
                    Error::Command(format!(
                        "dump of {} failed, no snapshot of it was written: {e}",
                        dump.database.as_deref().unwrap_or("the instance")
                    ))
                })?;
                made.push(r);
            }
            Ok(made)
        }
    }
}

/// Why retention must not run now: the service's newest complete snapshot
/// (in `snaps`) is missing or older than its RPO. Forgetting on a schedule
/// while backups fail would eat the history the service still has.
fn rpo_breached(
    svc: &ServiceJobs,
    snaps: &[(crate::id::SnapshotId, crate::repofile::snapshot::Snapshot)],
    now: jiff::Timestamp,
) -> Option<String> {
    let newest = snaps
        .iter()
        .filter(|(_, s)| {
            s.tenant.as_deref() == Some(svc.tenant.as_str())
                && s.service.as_deref() == Some(svc.service.as_str())
                && s.summary.errors.is_empty()
        })
        .map(|(_, s)| s.timestamp())
        .max();
    let rpo = crate::duration::HumanDuration::from_secs(svc.rpo.as_secs());
    match newest {
        None => Some(format!(
            "retention of {}/{} forgot nothing: the service has no complete snapshot",
            svc.tenant, svc.service
        )),
        Some(t) if now.duration_since(t).as_secs() > svc.rpo.as_secs() as i64 => {
            let age = crate::duration::HumanDuration::from_secs(
                now.duration_since(t).as_secs().max(0) as u64,
            );
            Some(format!(
                "retention of {}/{} forgot nothing: its newest complete snapshot ({t}) is {age} old, past its RPO of {rpo}; it runs again once a backup succeeds",
                svc.tenant, svc.service
            ))
        }
        Some(_) => None,
    }
}

async fn run_retention(svc: &ServiceJobs, catalog: &Catalog) -> Result<JobOutcome> {
    let repo = svc.repo.open(false).await?;
    let now = jiff::Timestamp::now();
    let (snaps, _) = repo.snapshots().await?;
    if let Some(why) = rpo_breached(svc, &snaps, now) {
        tracing::warn!(tenant = %svc.tenant, service = %svc.service, "{why}");
        return Ok(JobOutcome {
            warning: true,
            summary: Some(why),
            ..Default::default()
        });
    }
    let report = forget::forget(
        &repo,
        &forget::ForgetOptions {
            policy: svc.retention.clone(),
            service: Some(svc.service.clone()),
            tenant: Some(svc.tenant.clone()),
            host: None,
            tags: Vec::new(),
            group_by: "service".parse().map_err(Error::Usage)?,
            dry_run: false,
            now,
        },
    )
    .await?;
    let pruned = prune::prune(&repo, &svc.prune).await?;
    refresh_snapshots(svc, catalog).await;
    Ok(JobOutcome {
        summary: Some(format!(
            "kept {}, removed {} snapshots; freed {}{}",
            report.kept,
            report.removed,
            crate::util::human_bytes(pruned.bytes_freed),
            if pruned.deferred.is_empty() {
                String::new()
            } else {
                format!("; {} pending", pruned.deferred.len())
            }
        )),
        ..Default::default()
    })
}

async fn run_drill(svc: &ServiceJobs, ctx: &JobContext) -> Result<JobOutcome> {
    let spec = svc.drill.as_ref().ok_or_else(|| {
        Error::Usage(format!(
            "service {}/{} has no DR drill configured",
            svc.tenant, svc.service
        ))
    })?;
    // `<scratch>/<tenant>/<service>-<job>`: an erasure removes the tenant's
    // directory, and the daemon wipes the whole scratch root at start.
    let scratch = spec
        .scratch_root
        .join(&svc.tenant)
        .join(format!("{}-{}", svc.service, ctx.job.id));
    let started = tokio::time::Instant::now();
    let result = match &svc.source {
        SourceSpec::Database(db) => drill_database(svc, spec, db, &scratch).await,
        _ => drill_in(svc, ctx, spec, &scratch)
            .await
            .map(|(id, files, bytes)| {
                let what = format!(
                    "{files} files ({}) restored, verified{}",
                    crate::util::human_bytes(bytes),
                    if spec.check.is_some() {
                        " and checked"
                    } else {
                        ""
                    }
                );
                (id, files, what)
            }),
    };
    let achieved = started.elapsed();
    // Wiped whatever happened: drill data must not linger.
    if scratch.exists() {
        if let Err(e) = std::fs::remove_dir_all(&scratch) {
            tracing::error!(dir = %scratch.display(), error = %e, "cannot wipe the drill's scratch directory");
        }
    }
    if let Some(tenant_dir) = scratch.parent() {
        // Only when empty: another drill of the tenant may be running.
        let _ = std::fs::remove_dir(tenant_dir);
    }
    let (snapshot, files, what) = result?;
    let rto = super::records::RtoMeasure {
        achieved_secs: achieved.as_secs_f64(),
        objective_secs: spec.rto.as_secs_f64(),
    };
    Ok(JobOutcome {
        warning: !rto.met(),
        snapshot: Some(snapshot),
        files,
        summary: Some(format!(
            "drill of snapshot {}: {what} in {:.1} s; RTO {} s {}",
            snapshot.short(),
            rto.achieved_secs,
            spec.rto.as_secs(),
            if rto.met() { "met" } else { "MISSED" }
        )),
        rto: Some(rto),
        ..Default::default()
    })
}

async fn drill_in(
    svc: &ServiceJobs,
    ctx: &JobContext,
    spec: &DrillSpec,
    scratch: &std::path::Path,
) -> Result<(crate::SnapshotId, u64, u64)> {
    let repo = svc.repo.open(false).await?;
    let (snaps, _) = repo.snapshots().await?;
    let (id, snap) = newest_complete(svc, &snaps, None)?;
    let r = crate::commands::restore::restore(
        &repo,
        snap,
        &crate::commands::restore::RestoreOptions {
            target: scratch.to_path_buf(),
            verify: true,
            ..Default::default()
        },
    )
    .await?;
    if !r.errors.is_empty() {
        return Err(Error::Problems(format!(
            "drill restore of {} failed: {}",
            id.short(),
            r.errors.join("; ")
        )));
    }
    if let Some(check) = &spec.check {
        let mut env = job_env(svc, ctx);
        env.push(("CUSTOS_DRILL_DIR".into(), scratch.display().to_string()));
        env.push(("CUSTOS_SNAPSHOT".into(), id.to_hex()));
        run_hook(
            &with_env(&check.command, &env),
            "drill check",
            check.timeout,
        )
        .await?;
    }
    Ok((*id, r.files, r.total_bytes))
}

/// What a drill restores: the service's newest complete snapshot (with
/// `tag`, when given).
///
/// # Errors
/// [`Error::NotFound`] when there is none.
fn newest_complete<'a>(
    svc: &ServiceJobs,
    snaps: &'a [(crate::SnapshotId, crate::repofile::snapshot::Snapshot)],
    tag: Option<&str>,
) -> Result<&'a (crate::SnapshotId, crate::repofile::snapshot::Snapshot)> {
    snaps
        .iter()
        .rev()
        .filter(|(_, s)| {
            s.tenant.as_deref() == Some(svc.tenant.as_str())
                && s.service.as_deref() == Some(svc.service.as_str())
                && tag.is_none_or(|t| s.tags.iter().any(|x| x == t))
        })
        .find(|(_, s)| s.summary.errors.is_empty())
        .ok_or_else(|| {
            Error::NotFound(format!(
                "a complete snapshot of {}/{}{} to drill",
                svc.tenant,
                svc.service,
                tag.map(|t| format!(" tagged {t}")).unwrap_or_default()
            ))
        })
}

/// A database service's drill: a scratch server of the same kind is
/// started in the scratch directory, the newest complete snapshot of each
/// database is loaded into a new database of its name, the check queries
/// run, and the server is stopped (the caller wipes the directory). Returns
/// the last snapshot loaded, how many databases, and what was found.
async fn drill_database(
    svc: &ServiceJobs,
    spec: &DrillSpec,
    db: &crate::source::database::DbSource,
    scratch: &std::path::Path,
) -> Result<(crate::SnapshotId, u64, String)> {
    use crate::source::database::{db_tag, ScratchServer};
    let repo = svc.repo.open(false).await?;
    let (snaps, _) = repo.snapshots().await?;
    let mut chosen = Vec::new();
    for dump in db.dumps()? {
        let tag = db_tag(dump.database.as_deref());
        let (id, snap) = newest_complete(svc, &snaps, Some(&tag))?;
        chosen.push((dump, *id, snap.clone()));
    }
    let (kind, run_as, checks) = (db.conn.kind, spec.run_as.clone(), spec.sql.clone());
    let (handle, dir) = (tokio::runtime::Handle::current(), scratch.join("server"));
    tokio::task::spawn_blocking(move || {
        let mut server = ScratchServer::start(kind, &dir, Some(&run_as))?;
        let mut bytes = 0u64;
        let mut last = None;
        for (dump, id, snap) in &chosen {
            // The instance's dump (pg_dumpall) makes its own databases.
            let name = dump.database.clone().unwrap_or_else(|| match kind {
                crate::source::database::DbKind::Postgres => "postgres".into(),
                crate::source::database::DbKind::Mysql => "mysql".into(),
            });
            if dump.database.is_some() {
                server.conn.create(&name)?;
            }
            let custom = dump.stream_name.ends_with(".dump");
            server.conn.load(&name, custom, &mut |input| {
                let mut counted = crate::util::CountingWriter { inner: input, n: 0 };
                let r = handle.block_on(crate::commands::browse::dump(
                    &repo,
                    snap,
                    None,
                    &mut counted,
                ));
                bytes += counted.n;
                r.map(|_| ())
            })?;
            last = Some(*id);
        }
        let mut found = Vec::new();
        for c in &checks {
            let n = server.conn.count(&c.database, &c.query)?;
            if n < c.min {
                return Err(Error::Problems(format!(
                    "drill check failed: {:?} on {} answered {n}, at least {} expected",
                    c.query, c.database, c.min
                )));
            }
            found.push(format!("{}: {n} ≥ {}", c.query, c.min));
        }
        server.stop()?;
        let id = last.ok_or_else(|| Error::Internal("no database to drill".into()))?;
        let loaded = chosen.len() as u64;
        let what = format!(
            "{loaded} database{} ({}) loaded into a scratch {} server{}",
            if loaded == 1 { "" } else { "s" },
            crate::util::human_bytes(bytes),
            kind.name(),
            if found.is_empty() {
                String::new()
            } else {
                format!(" and checked ({})", found.join("; "))
            }
        );
        Ok((id, loaded, what))
    })
    .await
    .map_err(|e| Error::Internal(format!("the drill stopped: {e}")))?
}

async fn run_check(svc: &ServiceJobs, catalog: &Catalog) -> Result<JobOutcome> {
    let repo = svc.repo.open(false).await?;
    let report = check::check(
        &repo,
        &check::CheckOptions {
            read_data: false,
            read_data_subset: Some(crate::commands::check::Subset::Percent(svc.check_subset)),
            rollback: Some(catalog.seen(&svc.tenant, &svc.repo.url)?),
        },
    )
    .await?;
    if let Some(seen) = &report.seen {
        catalog.put_seen(&svc.tenant, &svc.repo.url, seen)?;
    }
    for a in &report.rollback {
        catalog.add_alarm(&svc.tenant, &svc.repo.url, a)?;
    }
    if !report.errors.is_empty() {
        return Err(Error::Problems(format!(
            "check found {} problems: {}",
            report.errors.len(),
            report.errors.first().cloned().unwrap_or_default()
        )));
    }
    Ok(JobOutcome {
        warning: !report.warnings.is_empty(),
        summary: Some(format!(
            "{} snapshots, {} packs read, {} blobs verified, {} warnings",
            report.snapshots,
            report.packs_read,
            report.blobs_read,
            report.warnings.len()
        )),
        ..Default::default()
    })
}

async fn run_replicate(svc: &ServiceJobs) -> Result<JobOutcome> {
    let Some(standby) = &svc.standby else {
        return Err(Error::Usage(format!(
            "service {}/{} has no standby target",
            svc.tenant, svc.service
        )));
    };
    let src = svc.repo.open(false).await?;
    let dst = standby.open(true).await?;
    let r = crate::commands::copy::copy(
        &src,
        &dst,
        &crate::commands::copy::CopyOptions {
            service: Some(svc.service.clone()),
            tenant: Some(svc.tenant.clone()),
            compression_level: svc.compression_level,
            ..Default::default()
        },
    )
    .await?;
    if r.failed > 0 {
        let why = r
            .snapshots
            .iter()
            .find_map(|s| s.error.clone())
            .unwrap_or_default();
        return Err(Error::Problems(format!(
            "{} snapshots not copied to the standby target ({} copied): {why}",
            r.failed, r.copied
        )));
    }
    Ok(JobOutcome {
        bytes_added: r.bytes_added,
        summary: Some(format!(
            "{} snapshots copied to the standby target, {} already there, {} uploaded",
            r.copied,
            r.present,
            crate::util::human_bytes(r.bytes_added)
        )),
        ..Default::default()
    })
}

/// Re-reads the service's snapshots into the catalog's cache (best effort:
/// a failure is logged, the job's result stands).
pub(crate) async fn refresh_snapshots(svc: &ServiceJobs, catalog: &Catalog) {
    if let Err(e) = reread(svc, catalog).await {
        refresh_failed(svc, &e);
    }
}

/// Logs why a refresh of the snapshot cache failed; a repository not made
/// yet is no problem (the service's first backup creates it).
fn refresh_failed(svc: &ServiceJobs, e: &Error) {
    if matches!(e, Error::NoRepository(_)) {
        tracing::debug!(tenant = %svc.tenant, service = %svc.service, "no repository yet: the first backup creates it");
    } else {
        tracing::warn!(tenant = %svc.tenant, service = %svc.service, error = %e, "cannot refresh the snapshot cache");
    }
}

/// What the periodic refresh saw last, per (repository URL, service): a
/// hash of the repository's snapshot listing.
fn seen_listings() -> &'static std::sync::Mutex<HashMap<(String, String), blake3::Hash>> {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<HashMap<(String, String), blake3::Hash>>> =
        std::sync::OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// [`refresh_snapshots`] for the periodic refresh: the repository's
/// snapshot objects are listed (one cheap request, no key needed), and the
/// repository is only opened (a key derivation, snapshot reads) when that
/// listing changed since the last look.
pub(crate) async fn refresh_snapshots_if_changed(svc: &ServiceJobs, catalog: &Catalog) {
    let key = (svc.repo.url.clone(), svc.service.clone());
    let listed = async {
        let backend = Backend::open(&svc.repo.url, false)?.with_limits(&svc.repo.limits);
        let mut names: Vec<String> = backend
            .list("snapshots")
            .await?
            .into_iter()
            .map(|l| l.path)
            .collect();
        names.sort();
        let mut h = blake3::Hasher::new();
        for n in &names {
            h.update(n.as_bytes());
            h.update(b"\0");
        }
        Ok::<_, Error>(h.finalize())
    }
    .await;
    let hash = match listed {
        Ok(h) => h,
        Err(e) => {
            refresh_failed(svc, &e);
            return;
        }
    };
    let unchanged = seen_listings()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
        == Some(&hash);
    if unchanged {
        return;
    }
    match reread(svc, catalog).await {
        Ok(()) => {
            seen_listings()
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key, hash);
        }
        Err(e) => refresh_failed(svc, &e),
    }
}

async fn reread(svc: &ServiceJobs, catalog: &Catalog) -> Result<()> {
    let repo = svc.repo.open_unindexed().await?;
    // Rollback detection on snapshots at every look (index objects are
    // compared by the check job, which loads the index).
    let seen = catalog.seen(&svc.tenant, &svc.repo.url)?;
    let now = crate::repository::watch::observe(&repo, seen.as_ref(), None).await?;
    let (seen, alarms) = crate::repository::watch::compare(seen.as_ref(), &now);
    catalog.put_seen(&svc.tenant, &svc.repo.url, &seen)?;
    for a in &alarms {
        catalog.add_alarm(&svc.tenant, &svc.repo.url, a)?;
    }
    let (snaps, _) = repo.snapshots().await?;
    let entries: Vec<SnapshotEntry> = snaps
        .iter()
        .filter(|(_, s)| {
            s.tenant.as_deref() == Some(svc.tenant.as_str())
                && s.service.as_deref() == Some(svc.service.as_str())
        })
        .map(|(id, s)| SnapshotEntry {
            id: *id,
            tenant: svc.tenant.clone(),
            service: svc.service.clone(),
            time: s.time.clone(),
            tags: s.tags.clone(),
            size: s.summary.total_bytes,
            partial: !s.summary.errors.is_empty(),
        })
        .collect();
    catalog.replace_snapshots(&ServiceKey::new(&svc.tenant, &svc.service), &entries)
}
