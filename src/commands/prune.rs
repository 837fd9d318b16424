//! `custos prune`: give back the space of data no snapshot references, in two
//! phases, while backups keep running.
//!
//! | phase | what | when |
//! |---|---|---|
//! | mark | walk every snapshot: the set of used blobs (on disk, not in memory) | every run |
//! | plan | packs with no used blob, and packs left unindexed by interrupted backups, are *condemned*; packs whose live fraction is below the threshold are repacked (live blobs copied to new packs) and condemned; the index is rewritten without them; the plan (`prune/<id>`) records the condemned packs and the locks alive at that moment | every run |
//! | sweep | once the plan is older than the grace period and every lock it recorded is gone, each condemned pack is deleted, unless a snapshot written since uses a blob only it holds (then it is indexed again) | a later run, or the same run with a zero grace period and no other lock |
//!
//! Why a backup never loses a blob it deduplicated against: a backup reads the
//! index after taking its lock. If it read it before the plan's index rewrite,
//! its lock was alive when the plan was made, so the sweep waits for it to end;
//! by then its snapshot is visible and the sweep keeps (re-indexes) any
//! condemned pack it uses. If it read the index after the rewrite, it never saw
//! the condemned packs.
//!
//! Crash safety: new packs → new index objects → superseding marker → plan →
//! deletion of the old index objects → (sweep) deletions → plan removal. A crash
//! at any point leaves a repository that `check` passes; the next prune
//! finishes the work (condemned packs that missed their plan show up as
//! unindexed and are condemned again).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::blob::Packer;
use crate::id::{BlobId, IndexId, LockId, PackId, SnapshotId};
use crate::repofile::index::{IndexBlob, IndexFile, IndexPack};
use crate::repofile::pack::{open_payload, read_header, BlobKind};
use crate::repository::lock::{self, Lock, LockKind};
use crate::repository::{pack_path, IndexedRepository, TreeReader};
use crate::{Error, Result};

/// How to prune.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Report what would happen; change nothing.
    pub dry_run: bool,
    /// Repack packs whose live fraction (by bytes) is below this (0.0–1.0).
    pub repack_below: f64,
    /// Minimum age of a plan before its packs are deleted.
    pub grace: Duration,
}

impl Default for PruneOptions {
    /// Repack packs less than 80 % live (copying a pack costs a download and
    /// an upload; at 50 % a repository after a month of daily changes kept a
    /// fifth more than restic's, whose default leaves at most 5 % unused); no extra grace
    /// period: a sweep always waits for every lock alive when its plan was
    /// made, which is what keeps concurrent backups safe. A grace period adds
    /// a margin for stores whose listings lag.
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            repack_below: 0.8,
            grace: Duration::ZERO,
        }
    }
}

/// A plan: packs condemned by one prune run (stored as JSON under `prune/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PrunePlan {
    /// When the plan (and the index without its packs) was written.
    pub created: String,
    /// Packs to delete.
    pub condemned: Vec<PackId>,
    /// Their total size.
    pub bytes: u64,
    /// Locks alive when the plan was made: the sweep waits for all of them.
    pub blocking_locks: Vec<LockId>,
    /// With a grace period: the index objects the plan's index rewrite
    /// replaced. They stay until the sweep, so that a reader whose listing
    /// does not show the new objects yet still finds every blob.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub superseded_index: Vec<IndexId>,
    /// With a grace period: when a prune first saw no lock left to wait for.
    /// The sweep waits a further grace period from then, so that the last
    /// snapshots of those writers show in listings that lag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writers_gone: Option<String>,
}

/// What a prune did (or would do, with `dry_run`).
#[derive(Debug, Default, Clone, Serialize)]
pub struct PruneReport {
    /// True for a dry run.
    pub dry_run: bool,
    /// Snapshots whose data is kept.
    pub snapshots: usize,
    /// Blobs in use.
    pub used_blobs: u64,
    /// Packs in the index before.
    pub packs: usize,
    /// Packs with no used blob, condemned.
    pub packs_unused: usize,
    /// Packs repacked (live blobs copied), condemned.
    pub packs_repacked: usize,
    /// Packs in storage that no index lists, condemned.
    pub packs_unindexed: usize,
    /// Blobs copied by repacking.
    pub blobs_repacked: u64,
    /// Bytes of condemned packs (freed once swept).
    pub bytes_condemned: u64,
    /// Plans swept in this run.
    pub plans_swept: usize,
    /// Packs deleted in this run.
    pub packs_deleted: usize,
    /// Bytes deleted in this run.
    pub bytes_freed: u64,
    /// Condemned packs kept because a newer snapshot uses them.
    pub packs_resurrected: usize,
    /// Plans not swept yet, and why.
    pub deferred: Vec<String>,
    /// Index objects replaced.
    pub index_superseded: usize,
}

/// The blobs that snapshots use, on disk ([`crate::index::runs::IdSet`]),
/// so marking a large repository does not hold every ID in memory; and the
/// snapshots already walked. Shared with the thread that walks the trees.
#[derive(Clone)]
struct UsedSet(Arc<Mutex<UsedInner>>);

struct UsedInner {
    ids: crate::index::runs::IdSet,
    /// Snapshots already walked.
    seen: HashSet<SnapshotId>,
}

impl UsedSet {
    fn new(parent: Option<&std::path::Path>) -> Result<UsedSet> {
        Ok(UsedSet(Arc::new(Mutex::new(UsedInner {
            ids: crate::index::runs::IdSet::new(parent)?,
            seen: HashSet::new(),
        }))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UsedInner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Inserts; true when it was not there.
    fn insert(&self, id: &BlobId) -> Result<bool> {
        self.lock().ids.insert(id.as_bytes())
    }

    fn contains(&self, id: &BlobId) -> Result<bool> {
        self.lock().ids.contains(id.as_bytes())
    }

    /// Records that snapshot `sid` is walked; true the first time.
    fn walked(&self, sid: SnapshotId) -> bool {
        self.lock().seen.insert(sid)
    }

    /// Snapshots walked.
    fn snapshots(&self) -> usize {
        self.lock().seen.len()
    }

    /// Distinct blobs used.
    fn blobs(&self) -> u64 {
        self.lock().ids.len()
    }
}

/// Runs prune.
///
/// # Errors
/// [`Error::Locked`] when another prune (or an exclusive holder) is running;
/// [`Error::Refused`] when a snapshot or index object is damaged (nothing is
/// deleted then: run `check` and `repair`); backend errors.
pub async fn prune(repo: &IndexedRepository, opts: &PruneOptions) -> Result<PruneReport> {
    let lock = Lock::acquire(repo.backend(), LockKind::Prune, "prune").await?;
    let r = run(repo, opts, &lock).await;
    let released = lock.release().await;
    let r = r?;
    released?;
    Ok(r)
}

async fn run(repo: &IndexedRepository, opts: &PruneOptions, lock: &Lock) -> Result<PruneReport> {
    let own_lock = lock.id();
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    repo.refresh_index().await?;

    // Refuse to work from an incomplete picture.
    let listed: Vec<IndexId> = repo.index_ids().await?;
    let loaded = repo.index().loaded()?;
    let superseded = repo
        .index()
        .superseded_among(&listed.iter().copied().collect())?;
    for bad in listed
        .iter()
        .filter(|i| !loaded.contains(i) && !superseded.contains(i))
    {
        // Not loaded yet: new since the index was refreshed (listings that
        // lag show it now), gone since (a listing that lags behind a
        // deletion), or damaged. Only the last stops the prune.
        match repo.read_index(bad).await {
            Ok(f) => {
                repo.index().add_index(*bad, &f)?;
                continue;
            }
            Err(e) if crate::backend::is_not_found(&e) => continue,
            Err(Error::Integrity { .. }) => {}
            Err(e) => return Err(e),
        }
        return Err(Error::Refused(format!(
            "cannot prune: index object {bad} is damaged and the packs it lists would look unused; run `custos check` and `custos repair` first"
        )));
    }
    let earlier_plans = load_plans(repo).await?;
    if !opts.dry_run {
        // Finish an interrupted index rewrite (objects that a plan keeps
        // until its sweep excepted).
        let kept: HashSet<IndexId> = earlier_plans
            .iter()
            .flat_map(|(_, p)| p.superseded_index.iter().copied())
            .collect();
        for id in listed
            .iter()
            .filter(|i| superseded.contains(i) && !kept.contains(i))
        {
            repo.backend().delete(&format!("index/{id}")).await?;
        }
    }
    let live_index: Vec<IndexId> = listed
        .iter()
        .filter(|i| !superseded.contains(i))
        .copied()
        .collect();

    // Which earlier plans are due is decided before marking: every process
    // that could have deduplicated against their packs is gone by then, so its
    // snapshot is visible to the mark.
    let mut plans = Vec::new();
    for (plan_id, plan) in earlier_plans {
        let record = (!opts.dry_run).then_some(plan_id.as_str());
        let blocked = sweep_blocked(repo, &plan, opts.grace, own_lock, record).await?;
        plans.push((plan_id, plan, blocked));
    }

    let used = UsedSet::new(repo.cache_dir().as_deref())?;
    mark(repo, &used).await?;
    report.snapshots = used.snapshots();
    report.used_blobs = used.blobs();

    // Sweep earlier plans that are due.
    let mut pending: HashSet<PackId> = HashSet::new();
    for (plan_id, plan, blocked) in &plans {
        match blocked.clone() {
            Some(why) => {
                report.deferred.push(format!(
                    "plan {plan_id} ({} packs, {}): {why}",
                    plan.condemned.len(),
                    crate::util::human_bytes(plan.bytes)
                ));
                pending.extend(plan.condemned.iter().copied());
            }
            None if opts.dry_run => {
                report.deferred.push(format!(
                    "plan {plan_id} is due: {} packs ({}) would be deleted",
                    plan.condemned.len(),
                    crate::util::human_bytes(plan.bytes)
                ));
            }
            None => {
                sweep(repo, lock, plan_id, plan, &used, &mut report).await?;
            }
        }
    }
    if report.plans_swept > 0 {
        repo.refresh_index().await?;
    }

    // Classify packs.
    let indexed = repo.index().packs()?;
    report.packs = indexed.len();
    let indexed_set: HashSet<PackId> = indexed.iter().map(|(p, _)| *p).collect();
    let mut condemned: Vec<(PackId, u64)> = Vec::new();
    let mut repack: Vec<PackId> = Vec::new();
    for (pack, size) in &indexed {
        let blobs = repo.index().blobs_in_pack(pack)?;
        let (mut live, mut total) = (0u64, 0u64);
        for (id, loc) in &blobs {
            total += u64::from(loc.length);
            if used.contains(id)? {
                live += u64::from(loc.length);
            }
        }
        match pack_fate(live, total, opts.repack_below) {
            PackFate::Unused => {
                report.packs_unused += 1;
                condemned.push((*pack, *size));
            }
            PackFate::Repack => {
                report.packs_repacked += 1;
                repack.push(*pack);
                condemned.push((*pack, *size));
            }
            PackFate::Keep => {}
        }
    }
    for l in repo.backend().list("data").await? {
        let Some(id) = l
            .path
            .rsplit('/')
            .next()
            .and_then(|s| s.parse::<PackId>().ok())
        else {
            continue;
        };
        if !indexed_set.contains(&id) && !pending.contains(&id) {
            report.packs_unindexed += 1;
            condemned.push((id, l.size));
        }
    }
    report.bytes_condemned = condemned.iter().map(|(_, s)| s).sum();
    if opts.dry_run {
        for p in &repack {
            for (id, _) in repo.index().blobs_in_pack(p)? {
                if used.contains(&id)? && repo.locate(&id)?.pack == *p {
                    report.blobs_repacked += 1;
                }
            }
        }
        return Ok(report);
    }
    if condemned.is_empty() {
        return Ok(report);
    }

    // Repack, rewrite the index, record the plan.
    let condemned_set: HashSet<PackId> = condemned.iter().map(|(p, _)| *p).collect();
    let new_packs = repack_packs(repo, &repack, &condemned_set, &used, &mut report).await?;
    crate::util::crash_point("prune:after-repack");
    let kept = kept_packs(repo, &indexed, &condemned_set).chain(new_packs.into_iter().map(Ok));
    let history = repo.index().superseded()?;
    repo.replace_index(kept, &live_index, history, "prune")
        .await?;
    report.index_superseded = live_index.len();
    let now = jiff::Timestamp::now();
    let blocking_locks = lock::list(repo.backend())
        .await?
        .into_iter()
        .filter(|(id, info)| *id != own_lock && !info.stale(now))
        .map(|(id, _)| id)
        .collect();
    let plan = PrunePlan {
        created: now.to_string(),
        condemned: condemned.iter().map(|(p, _)| *p).collect(),
        bytes: report.bytes_condemned,
        writers_gone: None,
        superseded_index: if opts.grace.is_zero() {
            Vec::new()
        } else {
            live_index.clone()
        },
        blocking_locks,
    };
    let plan_id = crate::id::LockId::random().to_hex();
    repo.backend()
        .put(
            &format!("prune/{plan_id}"),
            Bytes::from(serde_json::to_vec_pretty(&plan).unwrap_or_default()),
        )
        .await?;
    crate::util::crash_point("prune:after-plan");
    for id in live_index.iter().filter(|_| opts.grace.is_zero()) {
        repo.backend().delete(&format!("index/{id}")).await?;
        crate::util::crash_point("prune:mid-index-delete");
    }
    repo.refresh_index().await?;

    // With no grace period and nobody else in the repository, sweep now.
    match sweep_blocked(repo, &plan, opts.grace, own_lock, Some(&plan_id)).await? {
        None => sweep(repo, lock, &plan_id, &plan, &used, &mut report).await?,
        Some(why) => report.deferred.push(format!(
            "plan {plan_id} ({} packs, {}): {why}",
            plan.condemned.len(),
            crate::util::human_bytes(plan.bytes)
        )),
    }
    Ok(report)
}

/// What prune does with a pack, from the bytes of its blobs that a
/// snapshot uses (`live`) out of all its blob bytes (`total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PackFate {
    /// Some of it is used, enough to leave it as it is.
    Keep,
    /// Nothing in it is used: delete it.
    Unused,
    /// Less than `repack_below` of it is used: copy the used blobs into a
    /// new pack, then delete it.
    Repack,
}

/// The marking rule for one pack. The live fraction counts blob bytes only
/// (not the header), so a fully used pack is at 1.0 and never repacked,
/// whatever the threshold.
fn pack_fate(live: u64, total: u64, repack_below: f64) -> PackFate {
    if live == 0 {
        PackFate::Unused
    } else if live < total && (live as f64) < repack_below * (total as f64) {
        PackFate::Repack
    } else {
        PackFate::Keep
    }
}

/// The index entries of the packs that stay, read from the cache one pack at
/// a time (boxed: a named type keeps the enclosing future `Send`).
fn kept_packs<'a>(
    repo: &'a IndexedRepository,
    indexed: &'a [(PackId, u64)],
    condemned: &'a HashSet<PackId>,
) -> Box<dyn Iterator<Item = Result<IndexPack>> + Send + 'a> {
    Box::new(
        indexed
            .iter()
            .filter(move |(p, _)| !condemned.contains(p))
            .map(move |(pack, size)| -> Result<IndexPack> {
                Ok(IndexPack {
                    id: *pack,
                    size: *size,
                    blobs: repo
                        .index()
                        .blobs_in_pack(pack)?
                        .into_iter()
                        .map(|(id, l)| IndexBlob {
                            kind: l.kind,
                            id,
                            compression: l.compression,
                            offset: l.offset,
                            length: l.length,
                            raw_len: l.raw_len,
                        })
                        .collect(),
                })
            }),
    )
}

/// Marks every blob that a snapshot not marked yet reaches. Called once before
/// planning and again before each sweep, so snapshots written meanwhile (by
/// backups that read the index before it was rewritten) keep what they use.
async fn mark(repo: &IndexedRepository, used: &UsedSet) -> Result<()> {
    let (snaps, bad) = repo.snapshots().await?;
    if let Some((path, e)) = bad.first() {
        return Err(Error::Refused(format!(
            "cannot prune: {path} is damaged ({e}); data it references would look unused. Run `custos check`, and `custos repair` to drop it"
        )));
    }
    let roots: Vec<(SnapshotId, BlobId)> = snaps
        .iter()
        .filter(|(sid, _)| used.walked(*sid))
        .map(|(sid, snap)| (*sid, snap.tree))
        .collect();
    let used = used.clone();
    repo.walk_trees(move |r| mark_trees(r, &roots, &used)).await
}

/// Marks what the trees under `roots` reach, each tree once.
fn mark_trees(r: &TreeReader, roots: &[(SnapshotId, BlobId)], used: &UsedSet) -> Result<()> {
    for (sid, root) in roots {
        let mut stack = vec![*root];
        while let Some(tid) = stack.pop() {
            if !used.insert(&tid)? {
                continue;
            }
            let tree = match r.read(&tid) {
                Ok(t) => t,
                // A backup that finished since our index was read: its index
                // objects are there now.
                Err(Error::NotFound(_)) => {
                    r.block_on(r.repo().refresh_index())?;
                    r.read(&tid).map_err(|e| refuse(sid, e))?
                }
                Err(e) => return Err(refuse(sid, e)),
            };
            for n in &tree.nodes {
                if let Some(s) = n.subtree {
                    stack.push(s);
                }
                for b in &n.content {
                    used.insert(b)?;
                }
            }
        }
    }
    Ok(())
}

fn refuse(sid: &SnapshotId, e: Error) -> Error {
    Error::Refused(format!(
        "cannot prune: snapshot {} cannot be read completely ({e}); run `custos check`",
        sid.short()
    ))
}

async fn load_plans(repo: &IndexedRepository) -> Result<Vec<(String, PrunePlan)>> {
    let mut out = Vec::new();
    for l in repo.backend().list("prune").await? {
        let id = l.path.trim_start_matches("prune/").to_string();
        let data = match repo.backend().get(&l.path).await {
            Ok(d) => d,
            // Swept by another prune since the listing.
            Err(e) if crate::backend::is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        match serde_json::from_slice::<PrunePlan>(&data) {
            Ok(p) => out.push((id, p)),
            Err(e) => {
                tracing::warn!(plan = %l.path, error = %e, "ignoring a prune plan that does not decode (its packs show up as unindexed and are planned again)")
            }
        }
    }
    Ok(out)
}

/// Why a plan cannot be swept yet, or `None` when it can. With `record` (the
/// plan's ID; not in a dry run), the first time no writer is left to wait
/// for, the moment is recorded in the plan: with a grace period, the sweep
/// waits one more grace period from there.
async fn sweep_blocked(
    repo: &IndexedRepository,
    plan: &PrunePlan,
    grace: Duration,
    own: LockId,
    record: Option<&str>,
) -> Result<Option<String>> {
    if let Some(why) = waiting_for_writers(repo, plan, grace, own).await? {
        return Ok(Some(why));
    }
    if let Some(plan_id) = record.filter(|_| !grace.is_zero() && plan.writers_gone.is_none()) {
        let mut updated = plan.clone();
        updated.writers_gone = Some(crate::util::stamp(jiff::Timestamp::now()));
        repo.backend()
            .put(
                &format!("prune/{plan_id}"),
                Bytes::from(serde_json::to_vec_pretty(&updated).unwrap_or_default()),
            )
            .await?;
    }
    Ok(after_writers(plan, grace))
}

fn grace_span(grace: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::MAX)
}

/// The plan is younger than the grace period, or a lock alive when it was
/// made (or taken before it) is still held.
async fn waiting_for_writers(
    repo: &IndexedRepository,
    plan: &PrunePlan,
    grace: Duration,
    own: LockId,
) -> Result<Option<String>> {
    let now = jiff::Timestamp::now();
    let created: jiff::Timestamp = plan.created.parse().unwrap_or(now);
    if now.duration_since(created) < grace_span(grace) {
        let due = created.checked_add(grace_span(grace)).unwrap_or(now);
        return Ok(Some(format!("grace period runs until {due}")));
    }
    let blocking: HashSet<LockId> = plan.blocking_locks.iter().copied().collect();
    for (id, info) in lock::list(repo.backend()).await? {
        if id == own || info.stale(now) {
            continue;
        }
        // A lock taken just before the plan may have been missing from the
        // plan's listing (listings that lag): its creation time tells.
        let older = info
            .created
            .parse::<jiff::Timestamp>()
            .is_ok_and(|c| c <= created);
        if blocking.contains(&id) || older {
            return Ok(Some(format!(
                "waiting for the {} (alive when the plan was made)",
                info.holder()
            )));
        }
    }
    Ok(None)
}

/// With a grace period, once the writers are gone: a grace period from the
/// moment that was first seen, so their last snapshots show in listings that
/// lag.
fn after_writers(plan: &PrunePlan, grace: Duration) -> Option<String> {
    if grace.is_zero() {
        return None;
    }
    let now = jiff::Timestamp::now();
    match plan.writers_gone.as_deref().map(str::parse::<jiff::Timestamp>) {
        Some(Ok(gone)) if now.duration_since(gone) >= grace_span(grace) => None,
        Some(Ok(gone)) => Some(format!(
            "the last writer of the plan's time finished at {gone}: waiting the grace period, until {}",
            gone.checked_add(grace_span(grace)).unwrap_or(now)
        )),
        _ => Some(
            "no writer of the plan's time is left: waiting one more grace period from now".into(),
        ),
    }
}

/// Deletes a plan's packs, except those a snapshot still needs.
async fn sweep(
    repo: &IndexedRepository,
    lock: &Lock,
    plan_id: &str,
    plan: &PrunePlan,
    used: &UsedSet,
    report: &mut PruneReport,
) -> Result<()> {
    // If our lease lapsed, another prune may be at work: delete nothing.
    lock.ensure_held().await?;
    mark(repo, used).await?;
    // The index may have grown since the plan (backups indexing packs that were
    // unindexed when it was made): a pack indexed again is kept.
    repo.refresh_index().await?;
    let indexed: HashSet<PackId> = repo.index().packs()?.into_iter().map(|(p, _)| p).collect();
    for pack in &plan.condemned {
        if indexed.contains(pack) {
            continue;
        }
        let path = pack_path(pack);
        let data = match repo.backend().get(&path).await {
            Ok(d) => d,
            Err(e) if crate::backend::is_not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        let size = data.len() as u64;
        match read_header(repo.keys(), pack, &data) {
            Ok(entries) => {
                let mut needed = false;
                for e in &entries {
                    if used.contains(&e.id)? && !repo.index().contains(&e.id)? {
                        needed = true;
                        break;
                    }
                }
                if needed {
                    let file = IndexFile {
                        supersedes: Vec::new(),
                        packs: vec![IndexPack {
                            id: *pack,
                            size,
                            blobs: entries.iter().map(IndexBlob::from).collect(),
                        }],
                    };
                    let id = repo.save_index(&file).await?;
                    repo.index().add_index(id, &file)?;
                    report.packs_resurrected += 1;
                    tracing::info!(pack = %pack, "kept a condemned pack: a newer snapshot uses it");
                    continue;
                }
            }
            Err(e) => {
                // Without a readable header we cannot tell what it holds; keep
                // it and say so (check reports it, repair can salvage it).
                tracing::warn!(pack = %pack, error = %e, "keeping a condemned pack whose header cannot be read");
                continue;
            }
        }
        repo.backend().delete(&path).await?;
        crate::util::crash_point("prune:mid-sweep");
        report.packs_deleted += 1;
        report.bytes_freed += size;
    }
    repo.index().flush()?;
    // The replaced index objects the plan kept for lagging listings.
    for id in &plan.superseded_index {
        repo.backend().delete(&format!("index/{id}")).await?;
    }
    crate::util::crash_point("prune:before-plan-removal");
    repo.backend().delete(&format!("prune/{plan_id}")).await?;
    report.plans_swept += 1;
    Ok(())
}

/// Copies the live blobs of `packs` into new packs; returns their index entries.
async fn repack_packs(
    repo: &IndexedRepository,
    packs: &[PackId],
    condemned: &HashSet<PackId>,
    used: &UsedSet,
    report: &mut PruneReport,
) -> Result<Vec<IndexPack>> {
    let mut data_packer = Packer::new(repo.keys().clone(), repo.config().pack_size as usize);
    let mut tree_packer = Packer::new(repo.keys().clone(), repo.config().pack_size as usize);
    let mut copied: HashSet<BlobId> = HashSet::new();
    let mut out = Vec::new();
    for pack in packs {
        let data = repo.backend().get(&pack_path(pack)).await?;
        for (id, loc) in repo.index().blobs_in_pack(pack)? {
            if !used.contains(&id)? || copied.contains(&id) {
                continue;
            }
            // A copy in a pack that stays makes this one redundant.
            if let Some(cur) = repo.index().get(&id)? {
                if !condemned.contains(&cur.pack) {
                    continue;
                }
            }
            let end = (loc.offset + u64::from(loc.length)) as usize;
            let stored = data.get(loc.offset as usize..end).ok_or_else(|| {
                Error::integrity(format!("pack {pack}"), "shorter than its index says")
            })?;
            let payload = open_payload(repo.keys(), pack, &loc.entry(id), stored).map_err(|e| {
                Error::Refused(format!(
                    "cannot repack: {e}; run `custos check --read-data` and `custos repair`"
                ))
            })?;
            let packer = if loc.kind == BlobKind::Tree {
                &mut tree_packer
            } else {
                &mut data_packer
            };
            if let Some(p) = packer.add(loc.kind, id, loc.compression, &payload, loc.raw_len) {
                out.push(upload(repo, p).await?);
            }
            copied.insert(id);
            report.blobs_repacked += 1;
        }
    }
    for p in [data_packer.flush(), tree_packer.flush()]
        .into_iter()
        .flatten()
    {
        out.push(upload(repo, p).await?);
    }
    Ok(out)
}

async fn upload(
    repo: &IndexedRepository,
    p: crate::repofile::pack::FinishedPack,
) -> Result<IndexPack> {
    repo.put_pack(p).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_is_kept_repacked_or_unused_by_its_live_fraction() {
        assert_eq!(pack_fate(0, 100, 0.8), PackFate::Unused);
        assert_eq!(pack_fate(79, 100, 0.8), PackFate::Repack);
        assert_eq!(pack_fate(80, 100, 0.8), PackFate::Keep);
        // A fully used pack is never repacked, whatever the threshold.
        assert_eq!(pack_fate(100, 100, 2.0), PackFate::Keep);
        assert_eq!(pack_fate(99, 100, 1.0), PackFate::Repack);
        assert_eq!(pack_fate(1, 100, 0.0), PackFate::Keep);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn marking_reaches_every_blob_of_every_snapshot_and_nothing_else() {
        let repo = crate::repository::test_repository("prune-mark-unit").await;
        let dir = tempfile::tempdir().unwrap();
        let mut snaps = Vec::new();
        for (name, body) in [("a", b"first file".as_slice()), ("b", b"second".as_slice())] {
            let src = dir.path().join(name);
            std::fs::create_dir_all(src.join("sub")).unwrap();
            std::fs::write(src.join("sub/file"), body).unwrap();
            let r = crate::commands::backup::backup(
                &repo,
                crate::commands::backup::BackupOptions {
                    paths: vec![src],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            snaps.push(r.snapshot);
        }
        let used = UsedSet::new(None).unwrap();
        mark(&repo, &used).await.unwrap();
        assert_eq!(used.snapshots(), 2);
        // Each snapshot: its root tree, the path's directories down to the
        // source, `sub`'s tree, and the file's one chunk, all reached.
        for snap in &snaps {
            assert!(used.contains(&snap.tree).unwrap());
            let mut stack = vec![snap.tree];
            while let Some(t) = stack.pop() {
                for n in repo.read_tree(&t).await.unwrap().nodes {
                    stack.extend(n.subtree);
                    for b in &n.content {
                        assert!(used.contains(b).unwrap());
                    }
                }
            }
        }
        assert!(!used.contains(&BlobId([9; 32])).unwrap());
        // Marking again adds nothing: each snapshot is walked once.
        let count = used.blobs();
        mark(&repo, &used).await.unwrap();
        assert_eq!(used.blobs(), count);
    }
}
