//! End of contract: erasure of a tenant's data and the deletion certificate.
//!
//! State per tenant, in the catalog: `notice_given` (date, contract,
//! operator) → `erasing` (from notice + 21 days; `--now` with a reason is
//! audited) → `erased` (deadline: notice + 30 days). Erasure, per target:
//!
//! 1. the key slots are read (fingerprinted) and deleted first: from then on
//!    whatever escapes deletion (object versions, replicas) is unreadable;
//! 2. every other object under the tenant's prefix is deleted, each recorded
//!    (name and size) in the catalog as it goes, so an interrupted erasure
//!    resumes and the Merkle root still covers every object;
//! 3. the prefix is listed again: it must be empty.
//!
//! A target that cannot be reached leaves the tenant in `erasing` with the
//! reason, never `erased`. When every target is verified empty, the tenant's
//! catalog entries, index caches and restore outputs are purged, the audit
//! log records the completion, and a certificate signed with the operator's
//! key is written under `<state_dir>/certificates/`.

pub mod certificate;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::audit::AuditLog;
use crate::backend::Backend;
use crate::config::Config;
use crate::daemon::catalog::Catalog;
use crate::{Error, Result};

/// Notice period before erasure (catalogue: 21 calendar days).
pub const NOTICE_PERIOD: Duration = Duration::from_secs(21 * 86_400);
/// Erasure deadline after notice (catalogue: at most 30 days).
pub const DEADLINE: Duration = Duration::from_secs(30 * 86_400);

/// Where a tenant's erasure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureState {
    /// Notice given; backups go on until erasure starts.
    NoticeGiven,
    /// Erasure started (backups stopped); interrupted ones resume.
    Erasing,
    /// Done, certificate issued.
    Erased,
}

/// One target's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetProgress {
    /// Repository URL.
    pub url: String,
    /// Fingerprints of the key slots destroyed.
    pub keys_destroyed: Vec<String>,
    /// Objects deleted so far.
    pub objects: u64,
    /// Bytes deleted so far.
    pub bytes: u64,
    /// True once a listing found nothing left.
    pub verified_empty: bool,
    /// Why it is not done.
    pub error: Option<String>,
}

/// A tenant's erasure record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    /// Tenant.
    pub tenant: String,
    /// Contract reference.
    pub contract: Option<String>,
    /// State.
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
        return Err(Error::Refused(format!(
            "notice was already given for {tenant} on {} ({:?})",
            r.notice_given, r.state
        )));
    }
    let rec = ErasureRecord {
        tenant: tenant.to_string(),
        contract: contract.map(str::to_string).or_else(|| t.contract.clone()),
        state: ErasureState::NoticeGiven,
        notice_given: at.to_string(),
        notice_by: by.to_string(),
        due: add(at, NOTICE_PERIOD).to_string(),
        deadline: add(at, DEADLINE).to_string(),
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

/// Runs (or resumes) the erasure of `tenant`.
///
/// # Errors
/// [`Error::Refused`] before the notice period ends without `early`
/// (a reason), without notice, or without a certificate key;
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
        rec.state = ErasureState::Erasing;
        rec.started = Some(now.to_string());
        catalog.put_erasure(&rec)?;
        audit.append(by, "erasure.started", Some(tenant), serde_json::json!({}))?;
    }

    let mut failed = Vec::new();
    for target in &cfg.targets {
        let url = format!("{}/{}", target.url.trim_end_matches('/'), tenant);
        let mut progress = rec.targets.get(&target.name).cloned().unwrap_or_default();
        progress.url = url.clone();
        if progress.verified_empty {
            continue;
        }
        match erase_target(catalog, tenant, &target.name, &url, &mut progress).await {
            Ok(()) => progress.error = None,
            Err(e) => {
                tracing::warn!(target = %target.name, error = %e, "target not erased yet");
                progress.error = Some(e.to_string());
                failed.push(format!("{}: {e}", target.name));
            }
        }
        rec.targets.insert(target.name.clone(), progress);
        catalog.put_erasure(&rec)?;
    }
    if !failed.is_empty() {
        audit.append(
            "daemon",
            "erasure.incomplete",
            Some(tenant),
            serde_json::json!({"failed": failed}),
        )?;
        return Err(Error::Problems(format!(
            "erasure of {tenant} is not complete ({}); it stays in `erasing`: run it again once the targets answer",
            failed.join("; ")
        )));
    }

    // Technical data on this host.
    let purged = catalog.purge_tenant(tenant)?;
    let restores = cfg.restore_root.join(tenant);
    if restores.exists() {
        std::fs::remove_dir_all(&restores).map_err(crate::error::at("cannot remove", &restores))?;
    }
    for dir in catalog.erasure_caches(tenant)? {
        let path = cfg.cache_dir.join(&dir);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(crate::error::at("cannot remove", &path))?;
        }
    }
    let completed = Timestamp::now();
    audit.append(
        by,
        "erasure.completed",
        Some(tenant),
        serde_json::json!({"catalog_entries_purged": purged}),
    )?;

    let cert = certificate::Certificate {
        version: 1,
        tenant: tenant.to_string(),
        contract: rec.contract.clone(),
        notice_given: rec.notice_given.clone(),
        erasure_started: rec.started.clone().unwrap_or_default(),
        erasure_completed: completed.to_string(),
        targets: rec
            .targets
            .iter()
            .map(|(name, p)| -> Result<certificate::TargetReport> {
                // From the catalog's record of every deletion: complete even
                // when the erasure was interrupted and resumed.
                let objects: Vec<(String, u64)> = catalog
                    .erased_objects(tenant, name)?
                    .into_iter()
                    .map(|(n, s, _)| (n, s))
                    .collect();
                Ok(certificate::TargetReport {
                    name: name.clone(),
                    url: p.url.clone(),
                    objects_deleted: objects.len() as u64,
                    bytes_deleted: objects.iter().map(|(_, s)| s).sum(),
                    merkle_root: certificate::merkle_root(&objects),
                    remaining_after: 0,
                })
            })
            .collect::<Result<_>>()?,
        destroyed_key_slots: rec
            .targets
            .keys()
            .map(|name| catalog.erased_objects(tenant, name))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .filter_map(|(_, _, fingerprint)| fingerprint)
            .collect(),
        verification:
            "a listing of every target after erasure found no object under the tenant's prefix"
                .into(),
        audit_head: audit.head(),
        issuer: by.to_string(),
    };
    let signed = certificate::sign(cert, &signing_key)?;
    let dir = cfg.state_dir.join("certificates");
    std::fs::create_dir_all(&dir).map_err(crate::error::at("cannot create", &dir))?;
    let stem = format!("{tenant}-{}", completed.strftime("%Y%m%dT%H%M%SZ"));
    let json = dir.join(format!("{stem}.json"));
    let text = serde_json::to_string_pretty(&signed)
        .map_err(|e| Error::Problems(format!("certificate: {e}")))?;
    std::fs::write(&json, text).map_err(crate::error::at("cannot write", &json))?;
    let md = dir.join(format!("{stem}.md"));
    std::fs::write(&md, certificate::render_markdown(&signed))
        .map_err(crate::error::at("cannot write", &md))?;
    rec.state = ErasureState::Erased;
    rec.completed = Some(completed.to_string());
    rec.certificate = Some(json.display().to_string());
    catalog.put_erasure(&rec)?;
    catalog.drop_erased_objects(tenant)?;
    Ok(rec)
}

/// Erases one target's prefix: key slots first, then the rest, then checks.
async fn erase_target(
    catalog: &Catalog,
    tenant: &str,
    target: &str,
    url: &str,
    progress: &mut TargetProgress,
) -> Result<()> {
    let backend = match Backend::open(url, false) {
        Ok(b) => b,
        // A local target where nothing was ever written for this tenant.
        Err(Error::NoRepository(_)) => {
            progress.verified_empty = true;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let listed = backend.list("").await?;
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
    for l in rest.into_iter().chain(config) {
        backend.delete(&l.path).await?;
        catalog.record_erased_object(tenant, target, &l.path, l.size, None)?;
        progress.objects += 1;
        progress.bytes += l.size;
        crate::util::crash_point("erase:mid-delete");
    }
    let left = backend.list("").await?;
    if !left.is_empty() {
        return Err(Error::Problems(format!(
            "{} objects are still listed under {url} after deletion",
            left.len()
        )));
    }
    progress.verified_empty = true;
    Ok(())
}
