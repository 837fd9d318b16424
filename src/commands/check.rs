//! `custos check`: structure, and optionally content.
//!
//! Structure: every snapshot decodes, every tree it reaches decodes, every blob
//! a tree references is in the index, every pack the index lists exists with its
//! size. Content (`--read-data`, or a sample with `--read-data-subset`): every
//! pack is downloaded, its header authenticated and compared with the index, and
//! every blob decrypted and its ID re-checked.
//!
//! When something is damaged, the snapshots and files that depend on it are
//! named, so an operator knows what a restore would lose.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;

use crate::crypto::Keys;
use crate::id::{BlobId, IndexId, PackId, SnapshotId};
use crate::index::Location;
use crate::repofile::pack::{read_header, BlobOpener};

use crate::repofile::tree::NodeKind;
use crate::repository::watch::{self, Seen};
use crate::repository::{
    lock::{Lock, LockKind},
    pack_path, IndexedRepository, TreeReader,
};
use crate::util::{lock, Pool};
use crate::{Error, Result};

/// Which packs `--read-data-subset` reads (restic's three forms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    /// `P%`: this percentage of the packs, chosen at random, so that
    /// repeated checks cover the whole repository.
    Percent(f64),
    /// `n/t`: group `n` of `t` (1-based), groups fixed by pack ID, so that
    /// checking 1/7 to 7/7 on seven days reads every pack once.
    Group {
        /// Which group.
        n: u32,
        /// Of how many.
        t: u32,
    },
    /// `SIZE` (`500M`, `2G`): packs chosen at random until this many bytes.
    Bytes(u64),
}

impl Subset {
    /// Parses `P%`, `n/t` or a size with a unit (K, M, G, T).
    ///
    /// # Errors
    /// One sentence naming the accepted forms.
    pub fn parse(s: &str) -> std::result::Result<Subset, String> {
        let t = s.trim();
        let bad = || {
            format!(
                "{s:?} is not a subset: give a percentage (10%), a group (2/7) or a size (500M)"
            )
        };
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!("{s:?}: a percentage above 0 and at most 100"));
            }
            return Ok(Subset::Percent(p));
        }
        if let Some((n, total)) = t.split_once('/') {
            let (n, total): (u32, u32) = (
                n.trim().parse().map_err(|_| bad())?,
                total.trim().parse().map_err(|_| bad())?,
            );
            if total == 0 || n == 0 || n > total {
                return Err(format!("{s:?}: the group n/t needs 1 <= n <= t"));
            }
            return Ok(Subset::Group { n, t: total });
        }
        let (num, unit) = t
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or((t, ""), |i| t.split_at(i));
        let mult: u64 = match unit.to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "K" | "KB" | "KIB" => 1 << 10,
            "M" | "MB" | "MIB" => 1 << 20,
            "G" | "GB" | "GIB" => 1 << 30,
            "T" | "TB" | "TIB" => 1 << 40,
            _ => return Err(bad()),
        };
        let n: u64 = num.trim().parse().map_err(|_| bad())?;
        match n.checked_mul(mult) {
            Some(0) | None => Err(bad()),
            Some(b) => Ok(Subset::Bytes(b)),
        }
    }

    /// The packs of `packs` (with their sizes) to read.
    fn choose(&self, mut packs: Vec<(PackId, u64)>) -> Vec<PackId> {
        match *self {
            Subset::Group { n, t } => packs
                .into_iter()
                .filter(|(p, _)| {
                    let b = p.as_bytes();
                    let head = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    head % u64::from(t) == u64::from(n - 1)
                })
                .map(|(p, _)| p)
                .collect(),
            Subset::Percent(p) => {
                let want = ((packs.len() as f64 * p / 100.0).ceil() as usize).min(packs.len());
                shuffle(&mut packs);
                packs.into_iter().take(want).map(|(p, _)| p).collect()
            }
            Subset::Bytes(limit) => {
                shuffle(&mut packs);
                let mut total = 0u64;
                packs
                    .into_iter()
                    .take_while(|(_, size)| {
                        let go = total < limit;
                        total = total.saturating_add(*size);
                        go
                    })
                    .map(|(p, _)| p)
                    .collect()
            }
        }
    }
}

/// Random order: repeated subset checks cover the whole repository.
fn shuffle(packs: &mut [(PackId, u64)]) {
    let mut keyed: Vec<(u64, (PackId, u64))> =
        packs.iter().map(|p| (rand::random::<u64>(), *p)).collect();
    keyed.sort_by_key(|(k, _)| *k);
    for (slot, (_, p)) in packs.iter_mut().zip(keyed) {
        *slot = p;
    }
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Read and verify every pack.
    pub read_data: bool,
    /// Read and verify a part of the packs.
    pub read_data_subset: Option<Subset>,
    /// Compare the repository with what the last check saw (rollback
    /// detection, see [`crate::repository::watch`]): `None` skips it,
    /// `Some(None)` is a first look (it only records).
    pub rollback: Option<Option<Seen>>,
}

/// A file or directory that damage makes unrestorable.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Affected {
    /// The snapshot that references the damaged data.
    pub snapshot: SnapshotId,
    /// Path inside it.
    pub path: String,
}

/// The outcome of a check.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct CheckReport {
    /// Snapshots checked.
    pub snapshots: usize,
    /// Trees read.
    pub trees: usize,
    /// Packs listed in the index.
    pub packs: usize,
    /// Packs whose content was read.
    pub packs_read: usize,
    /// Blobs whose content was verified.
    pub blobs_read: usize,
    /// Problems that make data unrestorable.
    pub errors: Vec<String>,
    /// Harmless findings (e.g. unindexed packs left by an interrupted backup).
    pub warnings: Vec<String>,
    /// Damaged or missing blobs.
    pub damaged_blobs: Vec<BlobId>,
    /// What the damage affects.
    pub affected: Vec<Affected>,
    /// Changes custos did not make: snapshots or index objects deleted,
    /// older ones put back (also counted in `errors`).
    pub rollback: Vec<String>,
    /// What this check saw, to compare the next one with.
    #[serde(skip)]
    pub seen: Option<Seen>,
}

impl CheckReport {
    /// True when no error was found.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Runs the check.
///
/// # Errors
/// Only when the check itself cannot run (backend unreachable, lock held);
/// damage is reported in the [`CheckReport`].
pub async fn check(repo: &IndexedRepository, opts: &CheckOptions) -> Result<CheckReport> {
    let lock = Lock::acquire(repo.backend(), LockKind::Shared, "check").await?;
    let r = run(repo, opts).await;
    let released = lock.release().await;
    let r = r?;
    released?;
    Ok(r)
}

async fn run(repo: &IndexedRepository, opts: &CheckOptions) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut damaged: HashSet<BlobId> = HashSet::new();

    // Key slots must all decode (the one that opened the repository did; a
    // damaged other one would fail its passphrase or key file later).
    for l in repo.backend().list("keys").await? {
        let data = repo.backend().get(&l.path).await?;
        let problem = match serde_json::from_slice::<crate::crypto::keyslot::KeySlot>(&data) {
            Ok(slot) => match slot.excessive_cost() {
                Some(why) => Some(format!("damaged key slot: {why}")),
                None if !l.path.ends_with(&slot.id.to_string()) => Some(format!(
                    "key slot {} is stored under another name (moved or replaced)",
                    slot.id
                )),
                None => None,
            },
            Err(e) => Some(format!(
                "damaged key slot, it does not decode ({e}); its passphrase or key file no longer opens the repository"
            )),
        };
        if let Some(p) = problem {
            report.errors.push(format!(
                "{}: {p}: remove it (`custos key remove`) and add a new one",
                l.path
            ));
        }
    }

    // Index objects must all decode (load_index already read them; re-read to
    // report every damaged one rather than the first). Decoding them is a
    // fifth of a check of a million files: it runs beside the tree walk
    // below, and its errors go here, after the key slots'.
    let index_ids = repo.index_ids().await?;
    let index_errors_at = report.errors.len();

    // Packs: listed in the index ↔ present in storage.
    let stored: HashMap<PackId, u64> = repo
        .backend()
        .list("data")
        .await?
        .into_iter()
        .filter_map(|l| Some((l.path.rsplit('/').next()?.parse().ok()?, l.size)))
        .collect();
    let indexed = repo.index().packs()?;
    report.packs = indexed.len();
    let indexed_set: HashSet<PackId> = indexed.iter().map(|(p, _)| *p).collect();
    for (pack, size) in &indexed {
        match stored.get(pack) {
            // Listings of eventually consistent stores lag behind writes:
            // ask for the pack by name before calling it missing.
            None if repo.backend().exists(&pack_path(pack)).await? => {}
            None => {
                report.errors.push(format!(
                    "pack {pack} is listed in the index but missing from storage"
                ));
                damaged.extend(
                    repo.index()
                        .blobs_in_pack(pack)?
                        .into_iter()
                        .map(|(id, _)| id),
                );
            }
            Some(s) if s != size => {
                report.errors.push(format!("pack {pack} has {s} bytes in storage, the index says {size} (truncated or replaced)"));
                damaged.extend(
                    repo.index()
                        .blobs_in_pack(pack)?
                        .into_iter()
                        .map(|(id, _)| id),
                );
            }
            Some(_) => {}
        }
    }
    for pack in stored.keys().filter(|p| !indexed_set.contains(p)) {
        report.warnings.push(format!(
            "pack {pack} is not in any index (left by an interrupted backup; prune removes it)"
        ));
    }

    // Snapshots and trees.
    // (Refreshes the index too: a backup that finished meanwhile is covered.)
    let (snaps, bad) = repo.snapshots().await?;
    report.snapshots = snaps.len();
    for (path, e) in bad {
        report.errors.push(format!("{path}: {e}"));
    }
    let roots: Vec<(SnapshotId, BlobId)> = snaps.iter().map(|(s, sn)| (*s, sn.tree)).collect();
    let walk = walk_snapshot_trees(repo, roots, damaged);

    // Content, read while the trees are walked (and the index objects
    // decoded): all three share the cores, none waits for another.
    let present = || {
        indexed
            .iter()
            .filter_map(|(p, _)| stored.get(p).map(|size| (*p, *size)))
    };
    let packs: Vec<PackId> = match (opts.read_data, opts.read_data_subset) {
        (true, _) => present().map(|(p, _)| p).collect(),
        (false, Some(s)) => s.choose(present().collect()),
        (false, None) => Vec::new(),
    };
    let (walked, read, index_errors) = tokio::join!(
        walk,
        read_packs(repo, packs),
        check_indexes(repo, index_ids)
    );
    report
        .errors
        .splice(index_errors_at..index_errors_at, index_errors);
    let (trees, errors, walked) = walked?;
    report.trees = trees;
    report.errors.extend(errors);
    let mut damaged = walked;
    let read = read?;
    report.packs_read = read.packs;
    report.blobs_read = read.blobs;
    report.errors.extend(read.errors);
    damaged.extend(read.damaged);

    if !damaged.is_empty() {
        let mut d: Vec<BlobId> = damaged.iter().copied().collect();
        d.sort();
        report.damaged_blobs = d;
        let roots: Vec<(SnapshotId, BlobId)> = snaps.iter().map(|(s, sn)| (*s, sn.tree)).collect();
        let damaged = damaged.clone();
        report.affected = repo
            .walk_trees(move |r| Ok(affected(r, &roots, &damaged)))
            .await?;
    }
    if let Some(previous) = &opts.rollback {
        let superseded = repo.index().superseded()?.into_iter().collect();
        let now = watch::observe(repo, previous.as_ref(), Some(superseded)).await?;
        let (seen, alarms) = watch::compare(previous.as_ref(), &now);
        report
            .errors
            .extend(alarms.iter().map(|a| format!("rollback: {a}")));
        report.rollback = alarms;
        report.seen = Some(seen);
    }
    Ok(report)
}

/// Reads every index object, and returns an error for each that does not
/// open or decode.
async fn check_indexes(repo: &IndexedRepository, ids: Vec<IndexId>) -> Vec<String> {
    let mut errors = Vec::new();
    for id in ids {
        match repo.read_index(&id).await {
            Ok(_) => {}
            // Replaced and deleted by a prune since the listing.
            Err(e) if crate::backend::is_not_found(&e) => {}
            Err(e) => errors.push(format!("index/{id}: {e}")),
        }
    }
    errors
}

/// Reads every tree the snapshots reach, once each, and checks that each
/// directory has a tree and each blob is indexed. Returns the number of
/// trees, the errors, and `damaged` with the unreadable trees and unindexed
/// blobs added.
///
/// The trees are read and decoded on one thread per core (decoding and the
/// index lookups of their blobs were three quarters of a check of a
/// million files, on one core); each error names the first snapshot found
/// to reach its tree.
async fn walk_snapshot_trees(
    repo: &IndexedRepository,
    roots: Vec<(SnapshotId, BlobId)>,
    damaged: HashSet<BlobId>,
) -> Result<(usize, Vec<String>, HashSet<BlobId>)> {
    let mut seen: HashSet<BlobId> = HashSet::new();
    let mut start: Vec<(SnapshotId, BlobId)> = roots
        .into_iter()
        .filter(|(_, root)| seen.insert(*root))
        .collect();
    // Taken last first: the first snapshot's trees first.
    start.reverse();
    let seen = Arc::new(Mutex::new(seen));
    let damaged = Arc::new(Mutex::new(damaged));
    let (seen_in, damaged_in) = (seen.clone(), damaged.clone());
    let visited = repo
        .walk_trees_on(start, move |r, (sid, tid)| {
            let mut errors = Vec::new();
            let tree = match r.read(&tid) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(format!("snapshot {}: tree {tid}: {e}", sid.short()));
                    lock(&damaged_in).insert(tid);
                    return Ok((errors, Vec::new()));
                }
            };
            let mut subtrees = Vec::new();
            for n in &tree.nodes {
                if let Some(sub) = n.subtree {
                    subtrees.push(sub);
                } else if n.kind == NodeKind::Dir {
                    errors.push(format!(
                        "tree {tid}: directory {:?} has no subtree",
                        n.name_lossy()
                    ));
                }
                for b in &n.content {
                    if !r.repo().index().contains(b)? && lock(&damaged_in).insert(*b) {
                        errors.push(format!(
                            "blob {b} (file {:?}) is not in the index",
                            n.name_lossy()
                        ));
                    }
                }
            }
            // Pushed in reverse, taken last first: directories in order.
            let mut seen = lock(&seen_in);
            let next = subtrees
                .into_iter()
                .rev()
                .filter(|sub| seen.insert(*sub))
                .map(|sub| (sid, sub))
                .collect();
            Ok((errors, next))
        })
        .await?;
    let trees = lock(&seen).len();
    let errors = visited.into_iter().flatten().collect();
    let damaged = std::mem::take(&mut *lock(&damaged));
    Ok((trees, errors, damaged))
}

/// What reading packs found.
#[derive(Default)]
struct PacksRead {
    packs: usize,
    blobs: usize,
    damaged: Vec<BlobId>,
    errors: Vec<String>,
}

/// Reads and verifies `packs`, [`read_concurrency`] at once: a local
/// repository's on as many threads ([`crate::util::on_threads`]), another
/// store's fetched concurrently and checked on blocking threads.
async fn read_packs(repo: &IndexedRepository, packs: Vec<PackId>) -> Result<PacksRead> {
    let mut found = PacksRead::default();
    let mut add = |(read, bad, errors): PackChecked| {
        found.packs += 1;
        found.blobs += read;
        found.errors.extend(errors);
        found.damaged.extend(bad);
    };
    if let Some(local) = repo.backend().direct_reads() {
        let repo = repo.clone();
        let checked = crate::util::on_threads(
            packs.into_iter(),
            read_concurrency(),
            || (Vec::new(), BlobOpener::new()),
            move |scratch: &mut PackScratch, pack| {
                let data = local.read(&pack_path(&pack), None);
                let expected = repo.index().blobs_in_pack(&pack)?;
                check_read(repo.keys(), &pack, data, expected, scratch)
            },
        )
        .await?;
        checked.into_iter().for_each(&mut add);
        return Ok(found);
    }
    let scratch = Arc::new(Pool::new());
    let mut reads = futures::stream::iter(packs)
        .map(|pack| read_pack(repo, pack, scratch.clone()))
        .buffer_unordered(read_concurrency());
    while let Some(r) = reads.next().await {
        add(r?);
    }
    Ok(found)
}

/// What checking one pack found: (blobs verified, damaged blobs, what is
/// wrong).
type PackChecked = (usize, Vec<BlobId>, Vec<String>);

/// Fetches one pack from a store and checks it on a blocking thread.
async fn read_pack(
    repo: &IndexedRepository,
    pack: PackId,
    scratch: Arc<Pool<PackScratch>>,
) -> Result<PackChecked> {
    let expected = repo.index().blobs_in_pack(&pack)?;
    let data = match repo.backend().start_read(&pack_path(&pack), None).await {
        Ok(d) => d,
        Err(e) if crate::backend::is_not_found(&e) => return Ok(gone(&pack, expected)),
        Err(e) => return Err(e),
    };
    let keys = repo.keys().clone();
    tokio::task::spawn_blocking(move || {
        let mut scratch = scratch.take(|| (Vec::new(), BlobOpener::new()));
        check_read(&keys, &pack, data, expected, &mut scratch)
    })
    .await
    .map_err(|e| Error::Internal(format!("check task failed: {e}")))?
}

/// Reads a pack (`data`) into the scratch buffer and checks it against the
/// index's `expected` blobs; a pack gone since the index was read is
/// reported, not fatal.
fn check_read(
    keys: &Keys,
    pack: &PackId,
    data: crate::backend::Pending,
    expected: Vec<(BlobId, Location)>,
    scratch: &mut PackScratch,
) -> Result<PackChecked> {
    let (buf, opener) = scratch;
    match data.into_buffer(buf) {
        Ok(()) => Ok(check_pack(keys, pack, buf, &expected, opener)),
        Err(e) if crate::backend::is_not_found(&e) => Ok(gone(pack, expected)),
        Err(e) => Err(e),
    }
}

/// A pack that disappeared during the check: every blob expected in it is
/// damaged.
fn gone(pack: &PackId, expected: Vec<(BlobId, Location)>) -> PackChecked {
    (
        0,
        expected.into_iter().map(|(id, _)| id).collect(),
        vec![format!("pack {pack} disappeared during the check")],
    )
}

/// Packs `check --read-data` reads at once: one per core (at least two, so
/// that one pack's read overlaps another's decryption).
fn read_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

/// A pack read's reusable parts: the buffer the pack is read into and the
/// blob opener (one per pack in flight).
type PackScratch = (Vec<u8>, BlobOpener);

/// Checks one pack's bytes against its header and the index's `expected`
/// blobs; returns (blobs verified, damaged blobs, what is wrong).
fn check_pack(
    keys: &Keys,
    pack: &PackId,
    data: &[u8],
    expected: &[(BlobId, Location)],
    opener: &mut BlobOpener,
) -> PackChecked {
    let mut errors = Vec::new();
    let mut bad = Vec::new();
    match read_header(keys, pack, data) {
        Ok(entries) => {
            let header: BTreeSet<(u64, BlobId)> =
                entries.iter().map(|e| (e.offset, e.id)).collect();
            let index: BTreeSet<(u64, BlobId)> =
                expected.iter().map(|(id, l)| (l.offset, *id)).collect();
            if !index.is_subset(&header) {
                errors.push(format!(
                    "pack {pack}: header does not list every blob the index places in it"
                ));
            }
        }
        Err(e) => errors.push(format!("{e}")),
    }
    let mut read = 0;
    for (id, loc) in expected {
        let end = (loc.offset + u64::from(loc.length)) as usize;
        let r = match data.get(loc.offset as usize..end) {
            Some(stored) => opener.open(keys, pack, &loc.entry(*id), stored).map(|_| ()),
            None => Err(Error::integrity(
                format!("blob {id} in pack {pack}"),
                "beyond the end of the pack",
            )),
        };
        match r {
            Ok(()) => read += 1,
            Err(e) => {
                errors.push(e.to_string());
                bad.push(*id);
            }
        }
    }
    (read, bad, errors)
}

/// Walks every snapshot and lists the files and directories touching damage.
fn affected(
    r: &TreeReader,
    roots: &[(SnapshotId, BlobId)],
    damaged: &HashSet<BlobId>,
) -> Vec<Affected> {
    let mut out = Vec::new();
    for (sid, root) in roots {
        let mut stack = vec![(*root, String::new())];
        while let Some((tid, path)) = stack.pop() {
            if damaged.contains(&tid) {
                out.push(Affected {
                    snapshot: *sid,
                    path: if path.is_empty() {
                        "/".into()
                    } else {
                        format!("{path}/ (whole directory)")
                    },
                });
                continue;
            }
            let Ok(tree) = r.read(&tid) else {
                out.push(Affected {
                    snapshot: *sid,
                    path: format!("{path}/ (whole directory)"),
                });
                continue;
            };
            for n in tree.nodes {
                let p = format!("{path}/{}", n.name_lossy());
                if let Some(sub) = n.subtree {
                    stack.push((sub, p));
                } else if n.content.iter().any(|b| damaged.contains(b)) {
                    out.push(Affected {
                        snapshot: *sid,
                        path: p,
                    });
                }
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod subset_tests {
    use super::*;

    #[test]
    fn subsets_parse() {
        assert_eq!(Subset::parse("10%"), Ok(Subset::Percent(10.0)));
        assert_eq!(Subset::parse("2/7"), Ok(Subset::Group { n: 2, t: 7 }));
        assert_eq!(Subset::parse("500M"), Ok(Subset::Bytes(500 << 20)));
        assert_eq!(Subset::parse("1GiB"), Ok(Subset::Bytes(1 << 30)));
        for bad in ["0%", "101%", "0/3", "4/3", "1/0", "x", "12Q", "0"] {
            assert!(Subset::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn groups_cover_every_pack_once_and_sizes_stop_at_the_limit() {
        let packs: Vec<(PackId, u64)> = (0..200).map(|_| (PackId::random(), 10)).collect();
        let mut seen = std::collections::HashSet::new();
        for n in 1..=7 {
            for p in (Subset::Group { n, t: 7 }).choose(packs.clone()) {
                assert!(seen.insert(p), "a pack in two groups");
            }
        }
        assert_eq!(seen.len(), packs.len());
        // 25 bytes of packs of 10: three packs (the third crosses the limit).
        assert_eq!(Subset::Bytes(25).choose(packs.clone()).len(), 3);
        assert_eq!(Subset::Percent(10.0).choose(packs).len(), 20);
    }
}
