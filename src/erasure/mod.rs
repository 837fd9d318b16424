//! End of contract: erasure of a tenant's data and the deletion certificate.
//!
//! State per tenant, in the catalog: `notice_given` (date, contract,
//! operator) → `erasing` (from notice + 21 days; `--now` with a reason is
//! audited) → `erased` (deadline: notice + 30 days). From `erasing` on, the
//! tenant is refused everywhere: no job, backup or restore runs for it, its
//! tokens stop working.
//!
//! Erasure covers every target the tenant ever used: those of today's
//! config and those the catalog noted when the tenant first used them.
//!
//! 1. **Before anything is deleted anywhere**, each target's store is asked
//!    what it keeps of deleted objects ([`crate::backend::versions`]): S3
//!    versioning, MFA delete and object lock; Azure soft delete, permanent
//!    delete, immutability policies and legal holds. Where deleted data
//!    could not be removed (object lock, a soft delete without permanent
//!    delete, settings that cannot be read), erasure stops before deleting
//!    anything, naming the target and the setting.
//! 2. Per target, under the repository's **exclusive lock** (no backup,
//!    restore or prune runs alongside): the key slots are read
//!    (fingerprinted) and deleted first, then every other object, each
//!    recorded (name and size) in the catalog as it goes, so an interrupted
//!    erasure resumes and the Merkle root still covers every object.
//! 3. Where the store keeps versions, every version, delete marker,
//!    snapshot and soft-deleted blob under the prefix is deleted one by one
//!    (old key slot versions fingerprinted first).
//! 4. The prefix is listed again, and its versions where the store keeps
//!    them: both must be empty.
//!
//! A target that cannot be reached or locked leaves the tenant in `erasing`
//! with the reason, never `erased`. When every target is verified empty, the
//! tenant's key material on this host (a passphrase or key file) is
//! overwritten and removed, its restore outputs, drill scratch and index
//! caches are removed, its catalog records are purged and the catalog
//! rewritten (no file of it names the tenant afterwards), the audit log
//! records the completion, and a certificate signed with the operator's key
//! is written under `<state_dir>/certificates/`. The certificate states
//! what was verified and what was not (a passphrase in an environment
//! variable, a key file shared with another tenant).
//!
//! Layer 10 of `docs/architecture.md`: it uses `error`, `secrets`, `util`, `crypto`, `repofile`, `backend`, `repository`, `config`, `catalog`, `audit`, and nothing of a layer above.

pub mod certificate;
mod records;

pub(crate) use records::ErasedTenant;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::audit::AuditLog;
use crate::backend::versions::{Retention, VersionKind, Versions};
use crate::backend::Backend;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::crypto::keyslot::KeySource;
use crate::repository::lock::{Lock, LockKind};
use crate::{Error, Result};

/// Notice period before erasure (catalogue: 21 calendar days).
pub(crate) const NOTICE_PERIOD: Duration = Duration::from_secs(21 * 86_400);
/// Erasure deadline after notice (catalogue: at most 30 days).
pub(crate) const DEADLINE: Duration = Duration::from_secs(30 * 86_400);

/// Rounds of "list the versions, delete them" before giving up: deleting a
/// current Azure version turns it into a previous one, listed next round.
const VERSION_ROUNDS: usize = 4;

/// The name under which an erased object version is recorded in the
/// catalog (apart from the objects the Merkle root covers).
const VERSION_MARK: &str = "#version/";

/// Where a tenant's erasure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErasureState {
    /// Notice given; backups go on until erasure starts.
    NoticeGiven,
    /// Erasure started (backups stopped); interrupted ones resume.
    Erasing,
    /// Done, certificate issued.
    Erased,
}

impl ErasureState {
    /// True from `erasing` on: the tenant is refused everywhere.
    pub fn refused(self) -> bool {
        self != ErasureState::NoticeGiven
    }
}

/// One target's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TargetProgress {
    /// Repository URL.
    pub url: String,
    /// Fingerprints of the key slots destroyed.
    pub keys_destroyed: Vec<String>,
    /// Objects deleted so far.
    pub objects: u64,
    /// Bytes deleted so far.
    pub bytes: u64,
    /// What the store keeps of deleted objects, as read before erasure.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// True once a listing found nothing left (and no version, where the
    /// store keeps versions).
    pub verified_empty: bool,
    /// Why it is not done.
    pub error: Option<String>,
}

/// A tenant's erasure record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErasureRecord {
    /// The tenant's ID, as in the config.
    pub tenant: String,
    /// Contract reference.
    pub contract: Option<String>,
    /// Where the end-of-contract flow is: notice given, erasing, erased.
    pub state: ErasureState,
    /// When notice was given.
    pub notice_given: String,
    /// Who gave it.
    pub notice_by: String,
    /// Erasure may start from.
    pub due: String,
    /// Erasure must be done by.
    pub deadline: String,
    /// When erasure started.
    pub started: Option<String>,
    /// When it completed.
    pub completed: Option<String>,
    /// Reason for starting before `due`.
    pub early_reason: Option<String>,
    /// Per target name.
    pub targets: BTreeMap<String, TargetProgress>,
    /// The certificate written at completion.
    pub certificate: Option<String>,
}

impl ErasureRecord {
    /// True when the deadline has passed and the tenant is not erased.
    pub fn overdue(&self, now: Timestamp) -> bool {
        self.state != ErasureState::Erased
            && self.deadline.parse::<Timestamp>().is_ok_and(|d| now > d)
    }

    /// What is left of an erased tenant's record: its state and completion
    /// (the rest is in its certificate and the audit log).
    pub fn erased(tenant: &str, e: &ErasedTenant) -> ErasureRecord {
        ErasureRecord {
            tenant: tenant.to_string(),
            contract: None,
            state: ErasureState::Erased,
            notice_given: String::new(),
            notice_by: String::new(),
            due: String::new(),
            deadline: String::new(),
            started: None,
            completed: Some(e.completed.clone()),
            early_reason: None,
            targets: BTreeMap::new(),
            certificate: Some(format!("BLAKE3 {}", e.certificate_blake3)),
        }
    }

    /// One sentence for a refusal: the tenant is being erased or erased.
    pub fn refusal(&self) -> String {
        match self.state {
            ErasureState::Erased => format!(
                "tenant {} was erased at the end of its contract{}: nothing more is done for it",
                self.tenant,
                self.completed
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
            _ => format!(
                "tenant {} is being erased at the end of its contract: no more backups, restores or jobs",
                self.tenant
            ),
        }
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Records the notice for `tenant`.
///
/// # Errors
/// [`Error::Usage`] for an unknown tenant, [`Error::Refused`] when notice
/// was already given; catalog errors.
pub fn give_notice(
    cfg: &Config,
    catalog: &Catalog,
    audit: &AuditLog,
    tenant: &str,
    contract: Option<&str>,
    by: &str,
    at: Timestamp,
) -> Result<ErasureRecord> {
    let t = cfg
        .tenants
        .iter()
        .find(|t| t.id == tenant)
        .ok_or_else(|| Error::Usage(format!("unknown tenant {tenant:?}")))?;
    if let Some(r) = catalog.erasure(tenant)? {
        return Err(Error::Refused(match r.state {
            ErasureState::Erased => r.refusal(),
            _ => format!(
                "notice was already given for {tenant} on {} ({})",
                r.notice_given,
                state_name(r.state)
            ),
        }));
    }
    note_config_targets(cfg, catalog, tenant)?;
    let rec = ErasureRecord {
        tenant: tenant.to_string(),
        contract: contract.map(str::to_string).or_else(|| t.contract.clone()),
        state: ErasureState::NoticeGiven,
        notice_given: crate::util::stamp(at),
        notice_by: by.to_string(),
        due: crate::util::stamp(add(at, NOTICE_PERIOD)),
        deadline: crate::util::stamp(add(at, DEADLINE)),
        started: None,
        completed: None,
        early_reason: None,
        targets: BTreeMap::new(),
        certificate: None,
    };
    catalog.put_erasure(&rec)?;
    audit.append(
        by,
        "erasure.notice",
        Some(tenant),
        serde_json::json!({"contract": rec.contract, "due": rec.due, "deadline": rec.deadline}),
    )?;
    Ok(rec)
}

/// What `custos erase status` lists: every live erasure (notice given,
/// erasing), then the configured tenants already erased, each with the path
/// of its certificate when one is under the state directory.
///
/// # Errors
/// The catalog's errors.
pub fn status_list(cfg: &Config, catalog: &Catalog) -> Result<Vec<ErasureRecord>> {
    let mut list = catalog.erasures()?;
    let certs = erased_still_configured(cfg);
    for t in &cfg.tenants {
        if list.iter().any(|r| r.tenant == t.id) {
            continue;
        }
        if let Some(mut r) = catalog.erasure(&t.id)? {
            if let Some((_, path)) = certs.iter().find(|(id, _)| *id == t.id) {
                r.certificate = Some(path.display().to_string());
            }
            list.push(r);
        }
    }
    Ok(list)
}

/// The configured tenants that have a deletion certificate under
/// `<state_dir>/certificates/` (`<tenant>-<YYYYMMDDTHHMMSSZ>.json`): erased
/// tenants still in the config. Works while the daemon holds the catalog.
pub fn erased_still_configured(cfg: &Config) -> Vec<(String, std::path::PathBuf)> {
    let dir = cfg.state_dir.join("certificates");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut out = Vec::new();
    for t in &cfg.tenants {
        let found = names.iter().find(|n| {
            n.strip_prefix(&format!("{}-", t.id))
                .and_then(|rest| rest.strip_suffix(".json"))
                .is_some_and(|stamp| {
                    stamp.len() == 16
                        && stamp.as_bytes()[8] == b'T'
                        && stamp.ends_with('Z')
                        && stamp[..8].bytes().all(|b| b.is_ascii_digit())
                        && stamp[9..15].bytes().all(|b| b.is_ascii_digit())
                })
        });
        if let Some(n) = found {
            out.push((t.id.clone(), dir.join(n)));
        }
    }
    out
}

/// A state as people read it.
pub fn state_name(s: ErasureState) -> &'static str {
    match s {
        ErasureState::NoticeGiven => "notice given",
        ErasureState::Erasing => "erasing",
        ErasureState::Erased => "erased",
    }
}

/// Notes, for `tenant`, every target of the config: erasure covers every
/// target the tenant was ever configured with, also after a config change.
///
/// # Errors
/// Catalog errors.
pub(crate) fn note_config_targets(cfg: &Config, catalog: &Catalog, tenant: &str) -> Result<()> {
    for t in &cfg.targets {
        catalog.note_tenant_target(tenant, &t.name, &t.url)?;
    }
    Ok(())
}

/// Every target to erase: (name, target URL), today's config first.
fn targets_of(cfg: &Config, catalog: &Catalog, tenant: &str) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = cfg
        .targets
        .iter()
        .map(|t| (t.name.clone(), t.url.clone()))
        .collect();
    for (name, url) in catalog.tenant_targets(tenant)? {
        match out.iter().position(|(n, _)| *n == name) {
            // Same name, another URL: the target moved; both are erased.
            Some(i) if out[i].1 != url => out.push((format!("{name} (earlier {url})"), url)),
            Some(_) => {}
            None => out.push((name, url)),
        }
    }
    Ok(out)
}

fn repo_url(target_url: &str, tenant: &str) -> String {
    format!("{}/{}", target_url.trim_end_matches('/'), tenant)
}

/// Runs (or resumes) the erasure of `tenant`.
///
/// # Errors
/// [`Error::Refused`] before the notice period ends without `early`
/// (a reason), without notice, without a certificate key, or when a
/// target's store would keep deleted data (nothing is deleted then);
/// [`Error::Problems`] when a target could not be erased (the record says
/// which and why; run again to resume).
pub async fn execute(
    cfg: &Config,
    catalog: &Catalog,
    audit: &AuditLog,
    tenant: &str,
    by: &str,
    early: Option<&str>,
    now: Timestamp,
) -> Result<ErasureRecord> {
    let key_path = cfg.certificate_key.as_ref().ok_or_else(|| {
        Error::Refused("daemon.certificate_key is not set: create one with `custos certificate keygen` first (no erasure without a certificate)".into())
    })?;
    let signing_key = certificate::read_signing_key(key_path)?;
    let mut rec = catalog.erasure(tenant)?.ok_or_else(|| {
        Error::Refused(format!(
            "no notice was given for {tenant}: run `custos erase notice` first"
        ))
    })?;
    if rec.state == ErasureState::Erased {
        return Ok(rec);
    }
    if rec.state == ErasureState::NoticeGiven {
        let due: Timestamp = rec.due.parse().unwrap_or(Timestamp::MAX);
        match (now < due, early) {
            (true, None) => {
                return Err(Error::Refused(format!(
                    "the notice period for {tenant} ends on {}: erasure is refused before then (use --now with a reason to override, which is audited)",
                    rec.due
                )))
            }
            (true, Some(reason)) => {
                rec.early_reason = Some(reason.to_string());
                audit.append(by, "erasure.early", Some(tenant), serde_json::json!({"reason": reason, "due": rec.due}))?;
            }
            (false, _) => {}
        }
    }
    // From here on the tenant is refused everywhere, even if a target
    // stops the erasure before anything is deleted.
    if rec.state == ErasureState::NoticeGiven {
        rec.state = ErasureState::Erasing;
        rec.started = Some(crate::util::stamp(now));
        catalog.put_erasure(&rec)?;
        audit.append(by, "erasure.started", Some(tenant), serde_json::json!({}))?;
    }
    if cfg.tenants.iter().any(|t| t.id == tenant) {
        note_config_targets(cfg, catalog, tenant)?;
    }
    let targets = targets_of(cfg, catalog, tenant)?;

    // 1. What each store keeps of deleted objects, before anything is
    // deleted anywhere.
    let mut blocked = Vec::new();
    let mut news = false;
    for (name, url) in &targets {
        let url = repo_url(url, tenant);
        let mut progress = rec.targets.get(name).cloned().unwrap_or_default();
        progress.url = url.clone();
        if progress.verified_empty {
            continue;
        }
        let read = async { Versions::for_url(&url)?.inspect().await }.await;
        let why = match read {
            Ok(r) => {
                let why = r.blocks.clone();
                progress.retention = Some(r);
                why
            }
            Err(e) => Some(format!(
                "cannot read what the store keeps of deleted objects ({e})"
            )),
        };
        if let Some(why) = why {
            let line = format!("target {name}: {why}");
            // The daemon retries every minute: the audit log hears of a
            // refusal once, not once a minute.
            news |= progress.error.as_deref() != Some(line.as_str());
            progress.error = Some(line.clone());
            blocked.push(line);
        } else {
            progress.error = None;
        }
        rec.targets.insert(name.clone(), progress);
    }
    if !blocked.is_empty() {
        catalog.put_erasure(&rec)?;
        if news {
            audit.append(
                "daemon",
                "erasure.refused",
                Some(tenant),
                serde_json::json!({"targets": blocked}),
            )?;
        }
        return Err(Error::Refused(format!(
            "erasure of {tenant} stopped before deleting anything: {}",
            blocked.join("; ")
        )));
    }
    // 2-4. Each target.
    let mut failed = Vec::new();
    let mut all_locked_or_unreachable = true;
    for (name, _) in &targets {
        let mut progress = rec.targets.get(name).cloned().unwrap_or_default();
        if progress.verified_empty {
            continue;
        }
        let url = progress.url.clone();
        match erase_target(catalog, tenant, name, &url, &mut progress).await {
            Ok(()) => progress.error = None,
            Err(e) => {
                tracing::warn!(target = %name, error = %e, "target not erased yet");
                progress.error = Some(e.to_string());
                all_locked_or_unreachable &= e.exit_code() == 3;
                failed.push(format!("{name}: {e}"));
            }
        }
        rec.targets.insert(name.clone(), progress);
        catalog.put_erasure(&rec)?;
    }
    if !failed.is_empty() {
        audit.append(
            "daemon",
            "erasure.incomplete",
            Some(tenant),
            serde_json::json!({"failed": failed}),
        )?;
        let msg = format!(
            "erasure of {tenant} is not complete ({}); it stays in `erasing`: run it again once the targets answer",
            failed.join("; ")
        );
        // Exit code 3 when every target was only locked or unreachable.
        return Err(if all_locked_or_unreachable {
            Error::Locked(msg)
        } else {
            Error::Problems(msg)
        });
    }

    // Technical data on this host.
    let local_keys = erase_local_keys(cfg, catalog, tenant)?;
    let mut dirs_removed = 0u64;
    for dir in [cfg.restore_root.join(tenant), cfg.scratch_dir.join(tenant)] {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(crate::error::at("cannot remove", &dir))?;
            dirs_removed += 1;
        }
    }
    let mut caches_removed = 0u64;
    for dir in catalog.erasure_caches(tenant)? {
        let path = cfg.cache_dir.join(&dir);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(crate::error::at("cannot remove", &path))?;
            caches_removed += 1;
        }
    }

    let completed = Timestamp::now();
    let mut reports = Vec::new();
    let mut destroyed_keys = Vec::new();
    for (name, p) in &rec.targets {
        // From the catalog's record of every deletion: complete even when
        // the erasure was interrupted and resumed.
        let all = catalog.erased_objects(tenant, name)?;
        let (versions, objects): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|(n, _, _)| n.starts_with(VERSION_MARK));
        for (_, _, fp) in objects.iter().chain(&versions) {
            if let Some(fp) = fp {
                if !destroyed_keys.contains(fp) {
                    destroyed_keys.push(fp.clone());
                }
            }
        }
        let objects: Vec<(String, u64)> = objects.into_iter().map(|(n, s, _)| (n, s)).collect();
        reports.push(certificate::TargetReport {
            name: name.clone(),
            url: p.url.clone(),
            objects_deleted: objects.len() as u64,
            bytes_deleted: objects.iter().map(|(_, s)| s).sum(),
            merkle_root: certificate::merkle_root(&objects),
            remaining_after: 0,
            store: p.retention.as_ref().map(|r| certificate::StoreReport {
                store: r.store.clone(),
                versioning: r.versioning.clone(),
                soft_delete: r.soft_delete.clone(),
                object_lock: r.object_lock.clone(),
                versions_deleted: versions.len() as u64,
                version_bytes_deleted: versions.iter().map(|(_, s, _)| s).sum(),
                versions_remaining_after: r.keeps_versions.then_some(0),
            }),
        });
    }
    let verification = verification_text(&rec, &local_keys);
    audit.append(
        by,
        "erasure.completed",
        Some(tenant),
        serde_json::json!({
            "targets": rec.targets.keys().collect::<Vec<_>>(),
            "local_key_material": local_keys,
        }),
    )?;
    let cert = certificate::Certificate {
        version: 2,
        tenant: tenant.to_string(),
        contract: rec.contract.clone(),
        notice_given: rec.notice_given.clone(),
        erasure_started: rec.started.clone().unwrap_or_default(),
        erasure_completed: crate::util::stamp(completed),
        targets: reports,
        destroyed_key_slots: destroyed_keys,
        verification,
        audit_head: audit.head(),
        issuer: by.to_string(),
        local_key_material: Some(local_keys),
        host: None,
        early_start: rec
            .early_reason
            .clone()
            .map(|reason| certificate::EarlyStart {
                notice_period_ended: rec.due.clone(),
                reason,
            }),
    };
    let mut cert = cert;
    cert.host = Some(certificate::HostReport {
        catalog_records_purged: catalog.tenant_records(tenant)? as u64,
        catalog_rewritten: true,
        index_caches_removed: caches_removed,
        restore_and_drill_dirs_removed: dirs_removed,
    });
    let signed = certificate::sign(cert, &signing_key)?;
    let text = serde_json::to_string_pretty(&signed)
        .map_err(|e| Error::Internal(format!("certificate: {e}")))?;
    let dir = cfg.state_dir.join("certificates");
    std::fs::create_dir_all(&dir).map_err(crate::error::at("cannot create", &dir))?;
    let stem = format!("{tenant}-{}", completed.strftime("%Y%m%dT%H%M%SZ"));
    let json = dir.join(format!("{stem}.json"));
    write_synced(&json, text.as_bytes())?;
    let md = dir.join(format!("{stem}.md"));
    write_synced(&md, certificate::render_markdown(&signed).as_bytes())?;
    // The certificate exists: the catalog may forget the tenant (a crash
    // before this line reruns the local steps and issues a new one).
    catalog.purge_tenant(
        tenant,
        &ErasedTenant {
            completed: completed.to_string(),
            certificate_blake3: blake3::hash(text.as_bytes()).to_hex().to_string(),
        },
    )?;
    rec.state = ErasureState::Erased;
    rec.completed = Some(completed.to_string());
    rec.certificate = Some(json.display().to_string());
    Ok(rec)
}

/// Writes a file and syncs it: a certificate is a legal record.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(crate::error::at("cannot write", path))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(crate::error::at("cannot write", path))
}

/// The certificate's verification sentence: exactly what was checked.
fn verification_text(rec: &ErasureRecord, keys: &[certificate::LocalKeyReport]) -> String {
    let versioned: Vec<&str> = rec
        .targets
        .iter()
        .filter(|(_, p)| p.retention.as_ref().is_some_and(|r| r.keeps_versions))
        .map(|(n, _)| n.as_str())
        .collect();
    let mut s = String::from(
        "A listing of every target after erasure found no object under the tenant's prefix",
    );
    if versioned.is_empty() {
        s.push_str(
            "; no target keeps versions or soft-deleted objects (settings read before erasure)",
        );
    } else {
        s.push_str(&format!(
            "; on {} (where the store keeps versions or soft-deleted objects) a listing of versions, delete markers and deleted objects found none either",
            versioned.join(", ")
        ));
    }
    let kept: Vec<String> = keys
        .iter()
        .filter(|k| !k.erased)
        .map(|k| format!("{} {} ({})", k.source, k.location, k.detail))
        .collect();
    if kept.is_empty() {
        s.push_str(". The tenant's key material on the erasing host was overwritten and removed.");
    } else {
        s.push_str(&format!(
            ". NOT erased by custos: {}. Every key slot in the repositories was destroyed, so that material no longer opens any copy custos made.",
            kept.join("; ")
        ));
    }
    s
}

/// Overwrites and removes the tenant's passphrase or key file, unless
/// another tenant still uses the same file; says what was done.
fn erase_local_keys(
    cfg: &Config,
    catalog: &Catalog,
    tenant: &str,
) -> Result<Vec<certificate::LocalKeyReport>> {
    let Some(t) = cfg.tenants.iter().find(|t| t.id == tenant) else {
        return Ok(vec![certificate::LocalKeyReport {
            source: "unknown".into(),
            location: "-".into(),
            erased: false,
            detail: "the tenant is no longer in the config, so custos does not know where its key material was kept".into(),
        }]);
    };
    let (source, path) = match &t.key {
        KeySource::PasswordFile(p) => ("password_file", p),
        KeySource::KeyFile(p) => ("key_file", p),
        KeySource::Env(v) => {
            return Ok(vec![certificate::LocalKeyReport {
                source: "environment".into(),
                location: v.clone(),
                erased: false,
                detail: "the passphrase is in the daemon's environment: custos cannot remove it; take it out of the service's environment".into(),
            }])
        }
    };
    let same = |other: &Path| {
        other == path.as_path()
            || match (other.canonicalize(), path.canonicalize()) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
    };
    let mut sharers = Vec::new();
    for o in cfg.tenants.iter().filter(|o| o.id != tenant) {
        let uses = match &o.key {
            KeySource::PasswordFile(p) | KeySource::KeyFile(p) => same(p),
            KeySource::Env(_) => false,
        };
        let erased = catalog
            .erasure(&o.id)?
            .is_some_and(|r| r.state == ErasureState::Erased);
        if uses && !erased {
            sharers.push(o.id.clone());
        }
    }
    let location = path.display().to_string();
    if !sharers.is_empty() {
        return Ok(vec![certificate::LocalKeyReport {
            source: source.into(),
            location,
            erased: false,
            detail: format!(
                "the same file is the key of tenant {}: it was kept",
                sharers.join(", ")
            ),
        }]);
    }
    let existed = path.exists();
    // A file custos may not change (a read-only /etc under systemd's
    // ProtectSystem, another owner) does not stop the erasure: the
    // certificate says it was not erased, and why.
    let (erased, detail) = match crate::util::overwrite_with_zeros(path) {
        Ok(()) if existed => (true, "overwritten with zeros and removed".to_string()),
        Ok(()) => (
            true,
            "already gone (an interrupted erasure removed it)".to_string(),
        ),
        Err(e) => (
            false,
            format!("custos could not overwrite and remove it ({e}): remove it by hand"),
        ),
    };
    Ok(vec![certificate::LocalKeyReport {
        source: source.into(),
        location,
        erased,
        detail,
    }])
}

/// Erases one target's prefix: key slots first, then the rest, under the
/// exclusive lock; then every kept version; then checks.
async fn erase_target(
    catalog: &Catalog,
    tenant: &str,
    target: &str,
    url: &str,
    progress: &mut TargetProgress,
) -> Result<()> {
    // The master keys this process unwrapped for the repository go first
    // (zeroed as they drop): nothing here opens it again.
    crate::repository::key_cache::forget(url);
    let versions = Versions::for_url(url)?;
    let keeps_versions = progress
        .retention
        .as_ref()
        .is_some_and(|r| r.keeps_versions);
    match Backend::open(url, false) {
        Ok(backend) => {
            let lock = Lock::acquire(&backend, LockKind::Exclusive, "erase")
                .await
                .map_err(|e| match e {
                    Error::Locked(m) => Error::Locked(format!(
                        "{m}: erasure waits until nothing else uses the repository"
                    )),
                    e => e,
                })?;
            let mine = format!("locks/{}", lock.id());
            let deleted = delete_current(&backend, catalog, tenant, target, &mine, progress).await;
            let released = lock.release().await;
            deleted?;
            released?;
            let left = backend.list("").await?;
            if !left.is_empty() {
                return Err(Error::Problems(format!(
                    "{} objects are still listed under {url} after deletion",
                    left.len()
                )));
            }
            if let Some(root) = backend.local_root() {
                // What a listing cannot show must not be there either: a
                // write a crash interrupted leaves its staged file
                // (`<object>#<n>`), removed here as the objects were; any
                // other file fails the erasure.
                let mut files = Vec::new();
                for (path, size) in sweep_local(root, root, &mut files)? {
                    catalog.record_erased_object(tenant, target, &path, size, None)?;
                    progress.objects += 1;
                    progress.bytes += size;
                }
                if let Some(first) = files.first() {
                    return Err(Error::Problems(format!(
                        "{} files are still under {} after deletion, {} among them: remove them by hand, then erase again",
                        files.len(),
                        root.display(),
                        first.display()
                    )));
                }
                // An empty repository directory is removed too.
                let _ = remove_empty_dirs(root);
            }
        }
        // A local target where nothing was ever written for this tenant.
        Err(Error::NoRepository(_)) => {}
        Err(e) => return Err(e),
    }
    if keeps_versions {
        purge_versions(&versions, catalog, tenant, target, progress).await?;
        let left = versions.list().await?;
        if !left.is_empty() {
            return Err(Error::Problems(format!(
                "{} object versions are still listed under {url} after deletion",
                left.len()
            )));
        }
    }
    progress.verified_empty = true;
    Ok(())
}

/// True for a staged file's name: `<object>#<digits>` (see
/// `backend::StagedFile`; `object_store`'s local store names its own the same way).
fn is_staged_name(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(object, n)| {
        !object.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Removes every staged file under `dir` and returns each one's path
/// (relative to `root`) and size; every other file (anything not a
/// directory) goes into `others`. Symlinks are not followed.
fn sweep_local(
    root: &Path,
    dir: &Path,
    others: &mut Vec<std::path::PathBuf>,
) -> Result<Vec<(String, u64)>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(Error::io_path("cannot list", dir, e)),
    };
    for e in entries {
        let e = e.map_err(crate::error::at("cannot list", dir))?;
        let path = e.path();
        let kind = e
            .file_type()
            .map_err(crate::error::at("cannot stat", &path))?;
        if kind.is_dir() {
            removed.extend(sweep_local(root, &path, others)?);
        } else if kind.is_file() && e.file_name().to_str().is_some_and(is_staged_name) {
            let size = e.metadata().map_or(0, |m| m.len());
            std::fs::remove_file(&path).map_err(crate::error::at("cannot remove", &path))?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            removed.push((rel.to_string_lossy().into_owned(), size));
        } else {
            others.push(path);
        }
    }
    Ok(removed)
}

/// Removes `root` and every empty directory under it, deepest first (a
/// directory with a file stays).
fn remove_empty_dirs(root: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(root)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            remove_empty_dirs(&e.path())?;
        }
    }
    std::fs::remove_dir(root)
}

/// Deletes every current object but the lock `mine`: key slots first, the
/// config last.
async fn delete_current(
    backend: &Backend,
    catalog: &Catalog,
    tenant: &str,
    target: &str,
    mine: &str,
    progress: &mut TargetProgress,
) -> Result<()> {
    let listed: Vec<_> = backend
        .list("")
        .await?
        .into_iter()
        .filter(|l| l.path != mine)
        .collect();
    // The repository's ID names its index caches on this host.
    if listed.iter().any(|l| l.path == "config") {
        if let Ok(raw) = backend.get("config").await {
            if let Ok((cfg, _)) = crate::repofile::config::RepoConfig::decode_unverified(&raw) {
                catalog.note_erasure_cache(tenant, &cfg.id.to_hex())?;
            }
        }
    }
    let (keys, rest): (Vec<_>, Vec<_>) = listed
        .into_iter()
        .partition(|l| l.path.starts_with("keys/"));
    for l in keys {
        let body = backend.get(&l.path).await?;
        let fingerprint = blake3::hash(&body).to_hex().to_string();
        backend.delete(&l.path).await?;
        catalog.record_erased_object(tenant, target, &l.path, l.size, Some(&fingerprint))?;
        progress.keys_destroyed.push(fingerprint);
        progress.objects += 1;
        progress.bytes += l.size;
        crate::util::crash_point("erase:after-key");
    }
    // The config last: until then the prefix is recognisably a repository.
    let (config, rest): (Vec<_>, Vec<_>) = rest.into_iter().partition(|l| l.path == "config");
    let ordered: Vec<_> = rest.into_iter().chain(config).collect();
    // One sync of the catalog per batch, not per object.
    for batch in ordered.chunks(ERASE_BATCH) {
        let records: Vec<_> = batch
            .iter()
            .map(|l| (l.path.clone(), l.size, None))
            .collect();
        catalog.record_erasing(tenant, target, &records)?;
        for l in batch {
            backend.delete(&l.path).await?;
            progress.objects += 1;
            progress.bytes += l.size;
            crate::util::crash_point("erase:mid-delete");
        }
    }
    Ok(())
}

/// Deletes every version, delete marker, snapshot and soft-deleted blob
/// under the prefix, old key slots first (fingerprinted).
async fn purge_versions(
    versions: &Versions,
    catalog: &Catalog,
    tenant: &str,
    target: &str,
    progress: &mut TargetProgress,
) -> Result<()> {
    for _ in 0..VERSION_ROUNDS {
        let mut list = versions.list().await?;
        if list.is_empty() {
            return Ok(());
        }
        list.sort_by_key(|v| !v.path.starts_with("keys/"));
        for v in list {
            let fingerprint = if v.path.starts_with("keys/")
                && matches!(v.kind, VersionKind::Version | VersionKind::Snapshot)
            {
                versions
                    .get(&v)
                    .await
                    .ok()
                    .map(|body| blake3::hash(&body).to_hex().to_string())
            } else {
                None
            };
            versions.delete(&v).await?;
            let name = format!(
                "{VERSION_MARK}{}@{}",
                v.path,
                v.version_id.as_deref().unwrap_or("-")
            );
            catalog.record_erased_object(tenant, target, &name, v.size, fingerprint.as_deref())?;
            if let Some(fp) = fingerprint {
                if !progress.keys_destroyed.contains(&fp) {
                    progress.keys_destroyed.push(fp);
                }
            }
            crate::util::crash_point("erase:version");
        }
    }
    Ok(())
}

/// Tenants of `cfg` whose contract has ended: erased (a certificate exists,
/// or the catalog says so) or being erased. Read without disturbing a
/// running daemon: its catalog is only opened when nothing holds it.
pub fn config_warnings(cfg: &Config) -> Vec<String> {
    let mut out: Vec<String> = erased_still_configured(cfg)
        .into_iter()
        .map(|(t, cert)| {
            format!(
                "tenant {t} was erased at the end of its contract (certificate {}) but is still in the config: its services are not run; remove it and its services",
                cert.display()
            )
        })
        .collect();
    if cfg.state_dir.join("catalog").exists() {
        if let Ok(catalog) = Catalog::open(&cfg.state_dir) {
            for t in &cfg.tenants {
                let Ok(Some(r)) = catalog.erasure(&t.id) else {
                    continue;
                };
                let known = out
                    .iter()
                    .any(|w| w.starts_with(&format!("tenant {} ", t.id)));
                match r.state {
                    ErasureState::Erased if !known => out.push(format!(
                        "tenant {} was erased at the end of its contract but is still in the config: its services are not run; remove it and its services",
                        t.id
                    )),
                    ErasureState::Erasing => out.push(format!(
                        "tenant {} is being erased: its services run no more jobs",
                        t.id
                    )),
                    _ => {}
                }
            }
        }
    }
    out
}

/// Objects recorded (with one catalog sync) before they are deleted.
const ERASE_BATCH: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_a_listing_cannot_show_are_found_and_removed() {
        assert!(is_staged_name("abcd#1") && is_staged_name("config#12"));
        for name in ["abcd", "#1", "abcd#", "abcd#x1", "a#1b"] {
            assert!(!is_staged_name(name), "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("data/ab")).unwrap();
        std::fs::write(root.join("data/ab/abcd#1"), b"part of a pack").unwrap();
        std::fs::write(root.join("data/ab/other"), b"not staged").unwrap();
        let mut left = Vec::new();
        let removed = sweep_local(root, root, &mut left).unwrap();
        assert_eq!(removed, vec![("data/ab/abcd#1".to_string(), 14)]);
        assert_eq!(left, vec![root.join("data/ab/other")]);
        assert!(!root.join("data/ab/abcd#1").exists());
    }

    fn config(dir: &Path) -> Config {
        let text = format!(
            r#"
[daemon]
state_dir = "{d}/state"

[[target]]
name = "t"
url = "{d}/target"
region = "eu-west-par"
zone = "par2"

[[tenant]]
id = "alone"
password_file = "{d}/alone.pass"

[[tenant]]
id = "shared-a"
password_file = "{d}/shared.pass"

[[tenant]]
id = "shared-b"
key_file = "{d}/shared.pass"

[[tenant]]
id = "from-env"
password_env = "CUSTOS_ERASURE_UNIT_NEVER_SET"
"#,
            d = dir.display()
        );
        Config::parse(&dir.join("custos.toml"), &text).unwrap()
    }

    #[test]
    fn local_key_material_is_erased_or_the_reason_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("alone.pass"), "secret one\n").unwrap();
        std::fs::write(d.join("shared.pass"), "secret two\n").unwrap();
        let cfg = config(d);
        let catalog = Catalog::temporary().unwrap();

        let r = erase_local_keys(&cfg, &catalog, "alone").unwrap();
        assert!(r[0].erased, "{r:?}");
        assert!(!d.join("alone.pass").exists());
        // Run again (an interrupted erasure): said to be gone already.
        let r = erase_local_keys(&cfg, &catalog, "alone").unwrap();
        assert!(r[0].erased && r[0].detail.contains("already gone"), "{r:?}");

        // Another tenant's key too: kept, and said so.
        let r = erase_local_keys(&cfg, &catalog, "shared-a").unwrap();
        assert!(!r[0].erased && r[0].detail.contains("shared-b"), "{r:?}");
        assert!(d.join("shared.pass").exists());

        // From the environment: not erasable by custos, and said so.
        let r = erase_local_keys(&cfg, &catalog, "from-env").unwrap();
        assert_eq!(r[0].source, "environment");
        assert!(
            !r[0].erased && r[0].location == "CUSTOS_ERASURE_UNIT_NEVER_SET",
            "{r:?}"
        );

        // One custos may not change: kept, and said so (not a failure).
        let ro = d.join("ro");
        std::fs::create_dir(&ro).unwrap();
        let text = format!(
            "[daemon]\nstate_dir = \"{d}/state\"\n\n[[target]]\nname = \"t\"\nurl = \"{d}/target\"\nregion = \"eu-west-par\"\nzone = \"par2\"\n\n[[tenant]]\nid = \"ro\"\npassword_file = \"{d}/ro/not-a-file\"\n",
            d = d.display()
        );
        std::fs::create_dir(ro.join("not-a-file")).unwrap();
        let ro_cfg = Config::parse(&d.join("custos.toml"), &text).unwrap();
        let r = erase_local_keys(&ro_cfg, &catalog, "ro").unwrap();
        assert!(
            !r[0].erased && r[0].detail.contains("remove it by hand"),
            "{r:?}"
        );

        // Gone from the config: unknown, and said so.
        let r = erase_local_keys(&cfg, &catalog, "not-configured").unwrap();
        assert!(!r[0].erased && r[0].source == "unknown", "{r:?}");

        // The certificate's sentence names what was not erased.
        let rec = ErasureRecord::erased(
            "from-env",
            &ErasedTenant {
                completed: String::new(),
                certificate_blake3: String::new(),
            },
        );
        let v = verification_text(&rec, &r);
        assert!(v.contains("NOT erased by custos"), "{v}");
    }

    #[test]
    fn a_gcs_target_is_refused_rather_than_claimed() {
        let r = futures::executor::block_on(async {
            Versions::for_url("gs://bucket/prefix/t")
                .unwrap()
                .inspect()
                .await
        })
        .unwrap();
        assert!(r.blocks.is_some_and(|b| b.contains("GCS")));
    }
}
