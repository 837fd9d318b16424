//! `custos forget`: apply a retention policy to the snapshots of each group and
//! remove the snapshots it does not keep.
//!
//! Snapshots are grouped before the policy is applied, so that "keep 7 daily"
//! means seven days *of each service*, not seven days of the whole repository.
//! The default group is (tenant, service, host, paths): a service backed up
//! from two hosts, or as two path sets, has a group per host and path set, as
//! restic and borg users expect. `--group-by` narrows the key.
//!
//! Pinned snapshots (`custos pin`, or the tag `legal-hold`) are always
//! kept, and the repository refuses to delete them even if a caller tries.
//!
//! Forget only removes snapshot objects; the data they alone referenced stays
//! until `custos prune` (or `forget --prune`) gives its space back. It takes a
//! shared lock: backups and prune may run meanwhile.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::Serialize;

use crate::id::SnapshotId;
use crate::policy::retention::{self, Candidate, Decision, RetentionPolicy};
use crate::repofile::snapshot::Snapshot;
use crate::repository::lock::{Lock, LockKind};
use crate::repository::Repository;
use crate::Result;

/// A snapshot carrying this tag is under legal hold, like a pinned one.
pub(crate) const LEGAL_HOLD_TAG: &str = "legal-hold";

/// Which snapshot fields make up a retention group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    /// Tenant and service (a snapshot without a service groups by paths).
    pub service: bool,
    /// Host the backup ran on.
    pub host: bool,
    /// The set of backed-up paths.
    pub paths: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            service: true,
            host: true,
            paths: true,
        }
    }
}

impl FromStr for GroupBy {
    type Err = String;

    /// A comma-separated list of `service`, `host`, `paths`; empty for one
    /// group holding every snapshot.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let mut g = GroupBy {
            service: false,
            host: false,
            paths: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "service" => g.service = true,
                "host" => g.host = true,
                "paths" => g.paths = true,
                other => {
                    return Err(format!(
                        "unknown group key `{other}` (use service, host and paths)"
                    ))
                }
            }
        }
        Ok(g)
    }
}

/// What a group is: the values of the fields in [`GroupBy`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GroupKey {
    /// Tenant, when grouping by service.
    pub tenant: Option<String>,
    /// Service, when grouping by service.
    pub service: Option<String>,
    /// Host, when grouping by host.
    pub hostname: Option<String>,
    /// Sorted paths, when grouping by paths.
    pub paths: Option<Vec<String>>,
}

impl GroupKey {
    /// The group `snap` falls in.
    pub fn of(snap: &Snapshot, by: GroupBy) -> GroupKey {
        let mut paths = snap.paths.clone();
        paths.sort();
        GroupKey {
            tenant: by.service.then(|| snap.tenant.clone()).flatten(),
            service: by.service.then(|| snap.service.clone()).flatten(),
            hostname: by.host.then(|| snap.hostname.clone()),
            paths: by.paths.then_some(paths),
        }
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(t) = &self.tenant {
            parts.push(format!("tenant {t}"));
        }
        if let Some(s) = &self.service {
            parts.push(format!("service {s}"));
        }
        if let Some(h) = &self.hostname {
            parts.push(format!("host {h}"));
        }
        if let Some(p) = &self.paths {
            parts.push(format!("paths {}", p.join(" ")));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Which snapshots to consider, and the policy to apply.
#[derive(Debug, Clone)]
pub struct ForgetOptions {
    /// The retention rules (must have at least one).
    pub policy: RetentionPolicy,
    /// Only snapshots of this service.
    pub service: Option<String>,
    /// Only snapshots of this tenant.
    pub tenant: Option<String>,
    /// Only snapshots from this host.
    pub host: Option<String>,
    /// Only snapshots carrying every one of these tags.
    pub tags: Vec<String>,
    /// How snapshots are grouped.
    pub group_by: GroupBy,
    /// Decide and report; remove nothing.
    pub dry_run: bool,
    /// "Now" for `keep_within` (the current time outside tests).
    pub now: Timestamp,
}

/// The decisions for one group, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// The group.
    #[serde(flatten)]
    pub key: GroupKey,
    /// IDs kept.
    pub keep: Vec<SnapshotId>,
    /// IDs removed (or that would be with `--dry-run`).
    pub remove: Vec<SnapshotId>,
    /// One decision per snapshot with its reasons.
    pub decisions: Vec<Decision<SnapshotId>>,
}

/// What `forget --prune` did: the forget report's fields, and the prune
/// report under `prune` when it pruned.
#[derive(Debug, Serialize)]
pub struct ForgetPruneReport<'a> {
    /// What forget decided and removed.
    #[serde(flatten)]
    pub forget: &'a ForgetReport,
    /// What prune then did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<&'a crate::commands::prune::PruneReport>,
}

/// What forget did.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    /// True when nothing was removed on purpose.
    pub dry_run: bool,
    /// Per group.
    pub groups: Vec<GroupReport>,
    /// Snapshots kept.
    pub kept: usize,
    /// Snapshots removed (0 with `--dry-run`).
    pub removed: usize,
    /// Snapshots that could not be read and were left alone.
    pub unreadable: Vec<String>,
}

/// Applies the policy and removes what it does not keep.
///
/// # Errors
/// `Error::Usage` for a policy with no rule; `Error::Locked` when an
/// exclusive holder is in the repository; backend errors. Snapshots removed
/// before an error stay removed (each removal is a single delete).
pub async fn forget(repo: &Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    if opts.policy.is_empty() {
        return Err(retention::RetentionError::NoRule.into());
    }
    let lock = if opts.dry_run {
        None
    } else {
        Some(Lock::acquire(repo.backend(), LockKind::Shared, "forget").await?)
    };
    let result = run(repo, opts).await;
    if let Some(lock) = lock {
        let released = lock.release().await;
        let r = result?;
        released?;
        Ok(r)
    } else {
        result
    }
}

async fn run(repo: &Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    let (snaps, bad) = repo.snapshots().await?;
    let pins = repo.pins().await?;
    let mut groups: BTreeMap<GroupKey, Vec<(SnapshotId, &Snapshot)>> = BTreeMap::new();
    for (id, snap) in &snaps {
        if !selected(snap, opts) {
            continue;
        }
        groups
            .entry(GroupKey::of(snap, opts.group_by))
            .or_default()
            .push((*id, snap));
    }

    let mut report = ForgetReport {
        dry_run: opts.dry_run,
        groups: Vec::new(),
        kept: 0,
        removed: 0,
        unreadable: bad.iter().map(|(p, e)| format!("{p}: {e}")).collect(),
    };
    let mut to_remove: Vec<SnapshotId> = Vec::new();
    for (key, members) in groups {
        let candidates: Vec<Candidate<SnapshotId>> = members
            .iter()
            .map(|(id, s)| Candidate {
                id: *id,
                time: s.timestamp(),
                tags: s.tags.clone(),
                pinned: pins.contains(id) || s.tags.iter().any(|t| t == LEGAL_HOLD_TAG),
                complete: s.summary.errors.is_empty(),
            })
            .collect();
        let mut decisions = retention::apply(&opts.policy, &candidates, opts.now)?;
        decisions.sort_by_key(|d| std::cmp::Reverse(d.time));
        let mut group = GroupReport {
            key,
            keep: Vec::new(),
            remove: Vec::new(),
            decisions: Vec::with_capacity(decisions.len()),
        };
        for d in decisions {
            if d.keep {
                group.keep.push(d.id);
                report.kept += 1;
            } else {
                group.remove.push(d.id);
                to_remove.push(d.id);
            }
            group.decisions.push(d);
        }
        report.groups.push(group);
    }

    if !opts.dry_run {
        // Pins taken since we listed them still win: delete_snapshot refuses
        // a pinned snapshot.
        let pinned_now: HashSet<SnapshotId> = repo.pins().await?;
        for id in to_remove {
            if pinned_now.contains(&id) {
                tracing::info!(snapshot = %id, "kept: pinned while forget was deciding");
                continue;
            }
            repo.delete_snapshot(&id).await?;
            tracing::info!(snapshot = %id, "forgot snapshot");
            report.removed += 1;
        }
    }
    Ok(report)
}

fn selected(snap: &Snapshot, opts: &ForgetOptions) -> bool {
    let matches = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    matches(&opts.service, &snap.service)
        && matches(&opts.tenant, &snap.tenant)
        && opts.host.as_ref().is_none_or(|h| *h == snap.hostname)
        && opts.tags.iter().all(|t| snap.tags.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(service: Option<&str>, host: &str, paths: &[&str]) -> Snapshot {
        Snapshot {
            time: "2026-11-22T10:00:00Z".into(),
            tree: crate::id::BlobId([0; 32]),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            hostname: host.into(),
            username: "root".into(),
            service: service.map(str::to_string),
            tenant: Some("acme".into()),
            tags: Vec::new(),
            parent: None,
            stream: false,
            original: None,
            index: Vec::new(),
            program: "custos".into(),
            summary: Default::default(),
        }
    }

    #[test]
    fn group_by_parses() {
        assert_eq!(
            "service,host,paths".parse::<GroupBy>(),
            Ok(GroupBy::default())
        );
        let g: GroupBy = "service".parse().unwrap();
        assert!(g.service && !g.host && !g.paths);
        let g: GroupBy = "".parse().unwrap();
        assert!(!g.service && !g.host && !g.paths);
        assert!("service,disk".parse::<GroupBy>().is_err());
    }

    #[test]
    fn group_keys_split_by_host_and_paths_order_free() {
        let by = GroupBy::default();
        let a = GroupKey::of(&snap(Some("db"), "h1", &["/b", "/a"]), by);
        let b = GroupKey::of(&snap(Some("db"), "h1", &["/a", "/b"]), by);
        let c = GroupKey::of(&snap(Some("db"), "h2", &["/a", "/b"]), by);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let only_service: GroupBy = "service".parse().unwrap();
        assert_eq!(
            GroupKey::of(&snap(Some("db"), "h1", &["/a"]), only_service),
            GroupKey::of(&snap(Some("db"), "h2", &["/x"]), only_service)
        );
        assert_eq!(
            a.to_string(),
            "tenant acme, service db, host h1, paths /a /b"
        );
    }
}
