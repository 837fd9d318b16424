//! `custos repair`: rebuild the index from the packs themselves, and (only when
//! asked) remove snapshots that reference data that is gone.
//!
//! Every pack is downloaded, its header authenticated, and every blob it lists
//! decrypted and its ID re-checked. The new index lists only blobs that
//! verified, so a later backup of the same files stores the lost blobs again
//! (deduplication no longer finds them) and the repository heals. A pack whose
//! header cannot be read is left where it is and reported: nothing is deleted
//! by repair except superseded index objects and, with `--drop-snapshots`,
//! snapshot objects.
//!
//! Runs under an exclusive lock: nothing else may read an index that is being
//! replaced, and no prune may run.

use std::collections::{BTreeMap, HashSet};

use futures::StreamExt;
use serde::Serialize;

use crate::id::{BlobId, IndexId, PackId, SnapshotId};
use crate::index::BlobIndex;
use crate::repofile::index::{IndexBlob, IndexPack};
use crate::repofile::pack::{open_blob, read_header};
use crate::repository::lock::{Lock, LockKind};
use crate::repository::{pack_path, Repository};
use crate::{Error, Result};

/// How many packs are downloaded and verified at once.
const CONCURRENCY: usize = 4;

/// What to repair.
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Remove snapshots that cannot be read or that reference lost blobs
    /// (never pinned ones).
    pub drop_snapshots: bool,
    /// Report only; write nothing.
    pub dry_run: bool,
}

/// A snapshot that cannot be restored completely.
#[derive(Debug, Clone, Serialize)]
pub struct DamagedSnapshot {
    /// Snapshot ID (or object path when it does not decode).
    pub snapshot: String,
    /// What is wrong.
    pub problem: String,
    /// Removed by this run.
    pub removed: bool,
}

/// What repair found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// True when nothing was written.
    pub dry_run: bool,
    /// Packs read.
    pub packs: usize,
    /// Blobs indexed (verified).
    pub blobs: usize,
    /// Packs left out of the index: unreadable header, or no valid blob.
    pub bad_packs: Vec<String>,
    /// Blobs left out because they failed verification.
    pub bad_blobs: usize,
    /// Index objects replaced.
    pub index_replaced: usize,
    /// Snapshots that reference lost data or do not decode.
    pub damaged_snapshots: Vec<DamagedSnapshot>,
}

/// Rebuilds the index from the packs.
///
/// # Errors
/// [`Error::Locked`] when anything else is in the repository; backend errors.
/// Damaged packs and snapshots are reported, not errors.
pub async fn repair(repo: &Repository, opts: &RepairOptions) -> Result<RepairReport> {
    let lock = Lock::acquire(repo.backend(), LockKind::Exclusive, "repair").await?;
    let r = run(repo, opts, &lock).await;
    let released = lock.release().await;
    let r = r?;
    released?;
    Ok(r)
}

async fn run(repo: &Repository, opts: &RepairOptions, lock: &Lock) -> Result<RepairReport> {
    let mut report = RepairReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let old_index: Vec<IndexId> = repo.index_ids().await?;
    let listed = repo.backend().list("data").await?;
    let packs: Vec<(PackId, String)> = listed
        .iter()
        .filter_map(|l| {
            let id = l.path.rsplit('/').next()?.parse::<PackId>().ok()?;
            Some((id, l.path.clone()))
        })
        .collect();

    // Verify packs a few at a time; keep the verified entries on disk-backed
    // index objects as they come (a pack's entries are small).
    let mut rebuilt: Vec<IndexPack> = Vec::new();
    let mut results =
        futures::stream::iter(packs.iter().map(|(id, path)| verify_pack(repo, *id, path)))
            .buffer_unordered(CONCURRENCY);
    while let Some(r) = results.next().await {
        report.packs += 1;
        match r? {
            PackOutcome::Good { pack, bad } => {
                report.bad_blobs += bad;
                report.blobs += pack.blobs.len();
                rebuilt.push(pack);
            }
            PackOutcome::Bad { pack, why } => {
                tracing::warn!(pack = %pack, error = %why, "pack left out of the index");
                report.bad_packs.push(format!("{pack}: {why}"));
            }
        }
    }
    drop(results);
    rebuilt.sort_by_key(|p| p.id);

    // Which blobs exist now, for the snapshot walk (on disk, like the index).
    let scratch = tempfile::Builder::new()
        .prefix("repair-")
        .tempdir()
        .map_err(|e| Error::io("repair work directory", e))?;
    let available = BlobIndex::open(Some(scratch.path()))?;
    for p in &rebuilt {
        available.add_pack(p.id, p.size, &p.blobs)?;
    }

    if !opts.dry_run {
        lock.ensure_held().await?;
        let history = repo.superseded_by(&old_index).await?;
        let written = repo
            .replace_index(rebuilt.into_iter().map(Ok), &old_index, history, "repair")
            .await?;
        let written: HashSet<IndexId> = written.into_iter().collect();
        for id in old_index.iter().filter(|i| !written.contains(i)) {
            repo.backend().delete(&format!("index/{id}")).await?;
            report.index_replaced += 1;
        }
    }

    // Snapshots: every tree and data blob they reach must be available.
    let (snaps, bad) = repo.snapshots().await?;
    let pins = repo.pins().await?;
    for (path, e) in bad {
        // Under its ID with a tombstone, so that check sees a removal custos
        // made; an object under no valid ID just goes. A pin keeps it.
        let id = path
            .strip_prefix("snapshots/")
            .and_then(|n| n.parse::<SnapshotId>().ok());
        let pinned = id.is_some_and(|id| pins.contains(&id));
        let removed = opts.drop_snapshots && !opts.dry_run && !pinned;
        if removed {
            match &id {
                Some(id) => repo.delete_snapshot_because(id, "repair").await?,
                None => repo.backend().delete(&path).await?,
            }
        }
        report.damaged_snapshots.push(DamagedSnapshot {
            snapshot: path,
            problem: if pinned && opts.drop_snapshots {
                format!("does not decode: {e} (pinned: kept)")
            } else {
                format!("does not decode: {e}")
            },
            removed,
        });
    }
    let mut checked: BTreeMap<BlobId, bool> = BTreeMap::new();
    for (id, snap) in &snaps {
        if let Some(problem) = missing_data(repo, &available, snap.tree, &mut checked).await? {
            let pinned = pins.contains(id);
            let removed = opts.drop_snapshots && !opts.dry_run && !pinned;
            if removed {
                repo.delete_snapshot_because(id, "repair").await?;
            }
            report.damaged_snapshots.push(DamagedSnapshot {
                snapshot: id.to_hex(),
                problem: if pinned && opts.drop_snapshots {
                    format!("{problem} (pinned: kept)")
                } else {
                    problem
                },
                removed,
            });
        }
    }
    Ok(report)
}

enum PackOutcome {
    Good { pack: IndexPack, bad: usize },
    Bad { pack: PackId, why: String },
}

async fn verify_pack(repo: &Repository, id: PackId, path: &str) -> Result<PackOutcome> {
    let data = match repo.backend().get(path).await {
        Ok(d) => d,
        Err(e) if crate::backend::is_not_found(&e) => {
            return Ok(PackOutcome::Bad {
                pack: id,
                why: "vanished while repairing".into(),
            })
        }
        Err(e) => return Err(e),
    };
    if pack_path(&id) != path {
        return Ok(PackOutcome::Bad {
            pack: id,
            why: format!("stored under the wrong name {path}"),
        });
    }
    let entries = match read_header(repo.keys(), &id, &data) {
        Ok(e) => e,
        Err(e) => {
            return Ok(PackOutcome::Bad {
                pack: id,
                why: e.to_string(),
            })
        }
    };
    let mut blobs = Vec::with_capacity(entries.len());
    let mut bad = 0;
    let mut seen: HashSet<BlobId> = HashSet::new();
    for e in &entries {
        let end = e.offset.saturating_add(u64::from(e.length));
        let stored = usize::try_from(e.offset)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(a, b)| data.get(a..b));
        let ok = match stored {
            Some(stored) => match open_blob(repo.keys(), &id, e, stored) {
                Ok(_) => true,
                Err(err) => {
                    tracing::warn!(blob = %e.id, pack = %id, error = %err, "blob fails verification");
                    false
                }
            },
            None => false,
        };
        if ok && seen.insert(e.id) {
            blobs.push(IndexBlob::from(e));
        } else if !ok {
            bad += 1;
        }
    }
    if blobs.is_empty() {
        return Ok(PackOutcome::Bad {
            pack: id,
            why: format!("none of its {} blobs verifies", entries.len()),
        });
    }
    Ok(PackOutcome::Good {
        pack: IndexPack {
            id,
            size: data.len() as u64,
            blobs,
        },
        bad,
    })
}

/// The first thing a snapshot's tree needs that is not available, if any.
async fn missing_data(
    repo: &Repository,
    available: &BlobIndex,
    root: BlobId,
    checked: &mut BTreeMap<BlobId, bool>,
) -> Result<Option<String>> {
    let mut stack = vec![root];
    let mut problem = None;
    while let Some(tid) = stack.pop() {
        if let Some(&ok) = checked.get(&tid) {
            if !ok && problem.is_none() {
                problem = Some(format!("tree {} is damaged or lost", tid.short()));
            }
            continue;
        }
        let tree = match available.get(&tid)? {
            None => None,
            Some(loc) => repo.read_tree_at(&tid, &loc).await.ok(),
        };
        let Some(tree) = tree else {
            checked.insert(tid, false);
            problem.get_or_insert_with(|| format!("tree {} is lost", tid.short()));
            continue;
        };
        checked.insert(tid, true);
        for n in &tree.nodes {
            if let Some(s) = n.subtree {
                stack.push(s);
            }
            if problem.is_none() {
                for b in &n.content {
                    if !available.contains(b)? {
                        problem = Some(format!(
                            "data of {:?} is lost (blob {})",
                            String::from_utf8_lossy(&n.name),
                            b.short()
                        ));
                        break;
                    }
                }
            }
        }
        if problem.is_some() {
            break;
        }
    }
    Ok(problem)
}
