//! `custos restore`: snapshot → tree walk (include/exclude) → reads planned by
//! pack → decrypt, verify, decompress → sparse writes → metadata.
//!
//! * Each pack is fetched once, with ranged reads covering only the blobs needed
//!   (neighbouring blobs are merged into one request when the gap is small).
//! * Packs are processed a few at a time; memory is bounded by
//!   `concurrency × largest range`, whatever the snapshot's size.
//! * Blocks of zeros are not written: files are sized first, so holes stay holes.
//! * **Nothing outside the target is touched**, whatever the target already
//!   holds: every operation is relative to an open directory and names one
//!   component, never following a symlink (`target` has the table). Paths of
//!   any length restore.
//! * A file's content is written under a temporary name
//!   (`.custos-partial.<hash of the name>`) and renamed over its real name only
//!   when complete, with its metadata already set: a file at its real name is
//!   always a complete one. One that cannot be finished is removed.
//! * A file already present with the right content (a regular file with one
//!   link) is left alone, so a restore interrupted and run again finishes the
//!   rest.
//! * Live data is never overwritten by accident: a non-empty target is refused
//!   unless it holds the marker of an unfinished restore of the same snapshot
//!   (which is then resumed) or `overwrite` is set.
//! * An entry that cannot be created is skipped and named
//!   ([`RestoreResult::skipped`]); the restore goes on with the rest.
//! * Privileged content (setuid and setgid bits of files, the
//!   `security.capability` attribute, device nodes) is restored only with
//!   [`RestoreOptions::privileged`]; otherwise it is dropped and listed in
//!   [`RestoreResult::dropped`].
//! * The restore holds a shared lock on the repository while it reads.

mod target;

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use globset::{Glob, GlobSet, GlobSetBuilder};
use rustix::fs::{FileType, Mode, OFlags};
use serde::Serialize;

use crate::crypto::Keys;
use crate::id::{BlobId, PackId};
use crate::index::Location;
use crate::progress::Progress;
use crate::repofile::pack::BlobOpener;
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::{Node, NodeKind};
use crate::repository::lock::{Lock, LockKind};
use crate::repository::{pack_path, IndexedRepository, TreeReader};
use crate::util::Pool;
use crate::{Error, Result};
use target::{DirSlot, Meta, TargetDirs};

/// Largest gap between two needed blobs that is still read in one request
/// (reading a little waste beats another round trip).
const MERGE_GAP: u64 = 1 << 20;
/// Largest single ranged read: with `concurrency` packs in flight, restore
/// memory is about `concurrency × 2 × MAX_RANGE` (the read and the decoded
/// blobs), whatever the snapshot's size. 4 MiB rather than 8: the tree
/// corpus's restore peaked 8 MiB lower (89 → 81 MiB), in the same time
/// within the spread of single runs.
const MAX_RANGE: u64 = 4 << 20;
/// Granularity of hole detection when writing.
const SPARSE_BLOCK: usize = 4096;

/// Left in the target while a restore runs; holds the snapshot's root tree ID,
/// so that only the same restore may resume into a non-empty target.
pub const MARKER: &str = ".custos-restore-in-progress";

/// Prefix of the temporary name a file's content is written under.
pub(crate) const PARTIAL_PREFIX: &str = ".custos-partial.";

/// The extended attribute that grants file capabilities.
const CAPABILITY_XATTR: &[u8] = b"security.capability";

/// What to restore and how.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Where to restore to.
    pub target: PathBuf,
    /// Only these paths (globs on the path inside the snapshot); everything if empty.
    pub includes: Vec<String>,
    /// Not these paths.
    pub excludes: Vec<String>,
    /// Read every restored file back and check it.
    pub verify: bool,
    /// Restore into a non-empty target, replacing the entries the snapshot
    /// has (entries it does not have are left alone).
    pub overwrite: bool,
    /// Restore setuid and setgid bits of files, file capabilities
    /// (`security.capability`) and device nodes. Off by default: a snapshot's
    /// content is the tenant's, and these grant privileges on the host that
    /// restores it.
    pub privileged: bool,
    /// Packs processed at once (from a local repository at most one per
    /// core, at least two).
    pub concurrency: usize,
    /// Progress display.
    pub progress: Progress,
    /// The service's restore window: a snapshot (or a point in time `at`)
    /// older than this is refused before anything is read or written
    /// (`crate::policy::window::check`). `None`: every kept snapshot.
    pub window: Option<crate::duration::HumanDuration>,
    /// The point in time the snapshot was chosen for, if one was asked.
    pub at: Option<jiff::Timestamp>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            target: PathBuf::new(),
            includes: Vec::new(),
            excludes: Vec::new(),
            verify: false,
            overwrite: false,
            privileged: false,
            concurrency: 4,
            progress: Progress::hidden(),
            window: None,
            at: None,
        }
    }
}

/// What `custos restore --json` prints.
#[derive(Debug, Serialize)]
pub struct RestoreReport<'a> {
    /// The snapshot restored.
    pub snapshot: crate::SnapshotId,
    /// Where to.
    pub target: &'a std::path::Path,
    /// What was restored, skipped, dropped, and the problems.
    pub result: &'a RestoreResult,
}

/// An entry a restore could not create (or finish), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Path inside the snapshot.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What a restore did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RestoreResult {
    /// Regular files restored (or found complete).
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Other entries (symlinks, hardlinks, special files).
    pub others: u64,
    /// Bytes of file content written.
    pub bytes_written: u64,
    /// Total size of restored files.
    pub total_bytes: u64,
    /// Files already complete (from an earlier, interrupted run).
    pub files_skipped: u64,
    /// Files verified after writing (with `verify`).
    pub files_verified: u64,
    /// Entries not restored: they could not be created or finished (the
    /// rest was restored).
    pub skipped: Vec<Skipped>,
    /// Privileged content left out because it was not asked for: setuid and
    /// setgid bits, file capabilities, device nodes.
    pub dropped: Vec<Skipped>,
    /// Every problem as one line: skipped entries, damaged directories,
    /// metadata that could not be set, failed verifications. Empty exactly
    /// when everything asked for was restored.
    pub errors: Vec<String>,
    /// Extended attributes the file system or our privileges did not take
    /// (the content and the rest of the metadata are restored): reported,
    /// not failures.
    pub warnings: Vec<String>,
}

impl RestoreResult {
    fn skip(&mut self, path: &str, reason: impl Into<String>) {
        let reason = reason.into();
        self.errors.push(format!("{path}: {reason}"));
        self.skipped.push(Skipped {
            path: path.to_string(),
            reason,
        });
    }

    /// What setting an entry's metadata did: attributes refused are
    /// warnings, anything else an error.
    fn record_meta(&mut self, path: &str, set: std::io::Result<target::MetaProblems>) {
        match set {
            Ok(problems) => self
                .warnings
                .extend(problems.into_iter().map(|p| format!("{path}: {p}"))),
            Err(e) => self
                .errors
                .push(format!("{path}: cannot set metadata: {e}")),
        }
    }

    fn drop_privileged(&mut self, path: &str, what: impl Into<String>) {
        self.dropped.push(Skipped {
            path: path.to_string(),
            reason: what.into(),
        });
    }
}

/// One entry to restore.
struct Item {
    /// Slot of its parent directory.
    dir: usize,
    /// Its own slot (directories).
    slot: Option<usize>,
    node: Node,
}

impl Item {
    /// Its path in the snapshot (for messages; not kept per entry: with
    /// 81 000 files it was 9 MB of the restore's peak).
    fn path(&self, dirs: &TargetDirs) -> String {
        dirs.snapshot_path(self.dir, &self.node.name)
    }
}

fn globset(patterns: &[String], what: &str) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let p = if p.starts_with('/') || p.contains('/') {
            p.clone()
        } else {
            format!("**/{p}")
        };
        b.add(
            Glob::new(&p)
                .map_err(|e| Error::Usage(format!("invalid {what} pattern {p:?}: {e}")))?,
        );
    }
    b.build()
        .map(Some)
        .map_err(|e| Error::Usage(format!("invalid {what} patterns: {e}")))
}

/// The entries to restore, parents before children, and the directory slots
/// they live in.
struct Collected {
    items: Vec<Item>,
    slots: Vec<DirSlot>,
    /// Directories whose tree could not be read.
    lost: Vec<String>,
}

/// Collects the snapshot's entries (depth first, parents before children),
/// applying include and exclude patterns. A directory whose tree is damaged
/// or missing is left out and named; everything else is still restored.
fn collect(
    r: &TreeReader,
    root: BlobId,
    include: &[String],
    exclude: &[String],
) -> Result<Collected> {
    let includes = globset(include, "include")?;
    let excludes = globset(exclude, "exclude")?;
    // Includes that are plain absolute paths (no wildcard) can only match
    // under the directories on their way: no other tree needs reading, so
    // restoring one file of a million reads a few trees, not all.
    let literal_includes: Option<Vec<&str>> = include
        .iter()
        .map(|p| {
            (p.starts_with('/') && !p.contains(['*', '?', '[', ']', '{', '}', '\\']))
                .then(|| p.trim_end_matches('/'))
        })
        .collect();
    let on_the_way = |dir: &str| {
        literal_includes.as_ref().is_none_or(|l| {
            l.iter().any(|p| {
                p.strip_prefix(dir)
                    .is_some_and(|rest| rest.starts_with('/'))
            })
        })
    };
    let mut items = Vec::new();
    let mut slots = vec![DirSlot {
        parent: 0,
        name: Vec::new(),
    }];
    // (tree, its slot, snapshot dir, an ancestor matched an include)
    let mut stack = vec![(root, 0usize, String::new(), includes.is_none())];
    let mut lost = Vec::new();
    while let Some((tree_id, slot, sp, included)) = stack.pop() {
        let tree = match r.read(&tree_id) {
            Ok(t) => t,
            // The root must be readable; below it, damage costs only the
            // directory it is in.
            Err(e @ (Error::Integrity { .. } | Error::NotFound(_))) if !sp.is_empty() => {
                lost.push(format!(
                    "{sp}/: the directory's tree {tree_id} cannot be read ({e}): nothing under it is restored"
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        for node in tree.nodes {
            let sp_child = format!("{sp}/{}", String::from_utf8_lossy(&node.name));
            if excludes.as_ref().is_some_and(|e| e.is_match(&sp_child)) {
                continue;
            }
            let inc = included || includes.as_ref().is_some_and(|i| i.is_match(&sp_child));
            if node.kind == NodeKind::Dir {
                let own = slots.len();
                slots.push(DirSlot {
                    parent: slot,
                    name: node.name.clone(),
                });
                if let Some(sub) = node.subtree.filter(|_| inc || on_the_way(&sp_child)) {
                    stack.push((sub, own, sp_child.clone(), inc));
                }
                items.push(Item {
                    dir: slot,
                    slot: Some(own),
                    node,
                });
            } else if inc {
                items.push(Item {
                    dir: slot,
                    slot: None,
                    node,
                });
            }
        }
    }
    // Keep directories only when something under them is restored (or they
    // were included themselves).
    if let Some(inc) = includes.as_ref() {
        let mut needed = vec![false; slots.len()];
        needed[0] = true;
        for it in &items {
            let own = match it.slot {
                Some(s) if inc.is_match(target::path_in(&slots, it.dir, &it.node.name)) => Some(s),
                Some(_) => continue,
                None => None,
            };
            let mut s = own.unwrap_or(it.dir);
            while !needed[s] {
                needed[s] = true;
                s = slots[s].parent;
            }
        }
        items.retain(|it| it.slot.is_none_or(|s| needed[s]));
    }
    Ok(Collected { items, slots, lost })
}

/// Writes `data` at `offset`, skipping all-zero blocks (the file was sized
/// beforehand, so they read back as zeros and stay holes).
fn write_sparse(f: &std::fs::File, offset: u64, data: &[u8]) -> std::io::Result<u64> {
    let mut written = 0u64;
    let mut pos = 0usize;
    while pos < data.len() {
        let end = (pos + SPARSE_BLOCK).min(data.len());
        // Extend the run of non-zero blocks as far as it goes, then write it at once.
        if all_zero(&data[pos..end]) {
            pos = end;
            continue;
        }
        let mut run_end = end;
        while run_end < data.len() {
            let next = (run_end + SPARSE_BLOCK).min(data.len());
            if all_zero(&data[run_end..next]) {
                break;
            }
            run_end = next;
        }
        crate::util::crash_point("restore:write");
        f.write_all_at(&data[pos..run_end], offset + pos as u64)?;
        written += (run_end - pos) as u64;
        pos = run_end;
    }
    Ok(written)
}

/// True when every byte of `block` is zero. Most blocks of data have a
/// non-zero byte among the first few; the rest is tested 64 bytes at a
/// time without a branch per byte (a byte-by-byte test of the zero runs of
/// disk images was 3 % of a restore's CPU time).
fn all_zero(block: &[u8]) -> bool {
    let (head, rest) = block.split_at(block.len().min(16));
    head.iter().all(|&b| b == 0)
        && rest
            .chunks(64)
            .all(|c| c.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Checks every chunk of an open file against the snapshot.
fn verify_fd(repo: &IndexedRepository, f: &std::fs::File, node: &Node) -> Result<()> {
    let chunks = node
        .content
        .iter()
        .map(|id| repo.locate(id).map(|l| (*id, l.raw_len)))
        .collect::<Result<Vec<_>>>()?;
    verify_chunks(repo.keys(), f, &chunks)
}

/// A file's chunks: ID and plain length, in order.
type Chunks = Vec<(BlobId, u32)>;

/// Reads `f` back chunk by chunk (ID and plain length) and checks each
/// chunk's ID and the file's length.
fn verify_chunks(keys: &Keys, f: &std::fs::File, chunks: &[(BlobId, u32)]) -> Result<()> {
    let mut offset = 0u64;
    let mut buf = Vec::new();
    for (id, raw_len) in chunks {
        buf.resize(*raw_len as usize, 0);
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io("cannot read back", e))?;
        if keys.blob_id(&buf) != *id {
            return Err(Error::integrity(
                "the restored file",
                format!("content at offset {offset} differs from the snapshot"),
            ));
        }
        offset += u64::from(*raw_len);
    }
    let len = f
        .metadata()
        .map_err(|e| Error::io("cannot read back", e))?
        .len();
    if len != offset {
        return Err(Error::integrity(
            "the restored file",
            "size differs from the snapshot",
        ));
    }
    Ok(())
}

/// Opens `name` of `dir` as a regular file for reading (never a symlink).
fn open_regular(dir: BorrowedFd<'_>, name: &[u8]) -> std::io::Result<std::fs::File> {
    let fd = target::open_child(dir, name, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())?;
    let f = std::fs::File::from(fd);
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(f)
}

/// The temporary name a file's content is written under: a fixed prefix and
/// a hash of the real name, so that a rerun finds (and replaces) its own
/// leftovers, and at most 33 bytes, whatever the real name's length.
fn partial_name(name: &[u8]) -> Vec<u8> {
    let h = blake3::hash(name);
    let mut n = PARTIAL_PREFIX.as_bytes().to_vec();
    n.extend_from_slice(&h.to_hex().as_bytes()[..16]);
    n
}

/// Where one regular file is.
struct FileSlot {
    item: usize,
    /// (device, inode) of its temporary file: a write finds the very file
    /// the restore created, or fails.
    created: Mutex<Option<(u64, u64)>>,
    /// Blob writes still to come.
    remaining: AtomicU32,
}

/// State shared by the writers.
struct Shared {
    dirs: TargetDirs,
    items: Vec<Item>,
    files: Vec<FileSlot>,
    root: bool,
    privileged: bool,
    /// Files that failed, with why.
    failed: Mutex<HashMap<usize, String>>,
    /// Metadata that could not be set on files that are otherwise complete.
    meta_problems: Mutex<Vec<String>>,
}

impl Shared {
    fn fail(&self, fi: usize, why: String) {
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(fi)
            .or_insert(why);
    }

    /// Fails every file of `targets` (a blob's (file, offset) pairs).
    fn fail_all(&self, targets: &[(usize, u64)], why: &str) {
        for &(fi, _) in targets {
            self.fail(fi, why.to_string());
        }
    }

    fn has_failed(&self, fi: usize) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(&fi)
    }

    /// The temporary file of `fi`, open for writing: created and sized by
    /// the first writer that needs it (on a writer's thread, not in the
    /// serial planning pass), reopened by later ones, which check that it
    /// is still the file created for it. `Err` is why the file fails.
    fn open_partial(&self, fi: usize) -> std::result::Result<std::fs::File, String> {
        let slot = &self.files[fi];
        let item = &self.items[slot.item];
        let name = partial_name(&item.node.name);
        let dir = self
            .dirs
            .dir(item.dir)
            .map_err(|e| format!("its directory cannot be opened: {e}"))?;
        let mut created = slot
            .created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(expected) = *created else {
            // Created under the lock: another writer of the same file waits
            // for it rather than creating it a second time.
            let made = target::create_file(dir.as_fd(), &name).and_then(|f| {
                f.set_len(item.node.size)?;
                let st = rustix::fs::fstat(&f)?;
                Ok((f, (st.st_dev, st.st_ino)))
            });
            let (f, id) = made.map_err(|e| format!("cannot create the file: {e}"))?;
            *created = Some(id);
            return Ok(f);
        };
        drop(created);
        let reopened = (|| {
            let fd = target::open_child(dir.as_fd(), &name, OFlags::WRONLY, Mode::empty())?;
            let st = rustix::fs::fstat(&fd)?;
            if (st.st_dev, st.st_ino) != expected {
                return Err(std::io::Error::other(
                    "its temporary file was replaced during the restore",
                ));
            }
            Ok(std::fs::File::from(fd))
        })();
        reopened.map_err(|e| format!("cannot write: {e}"))
    }

    /// Sets the metadata of a complete file and renames it to its real name.
    fn finish(&self, fi: usize, f: &std::fs::File) {
        let item = &self.items[self.files[fi].item];
        let r = (|| -> std::io::Result<()> {
            let (meta, _) = meta_of(&item.node, self.root, self.privileged);
            let problems = target::set_meta_fd(f.as_fd(), &meta)?;
            let dir = self.dirs.dir(item.dir)?;
            target::rename_over(dir.as_fd(), &partial_name(&item.node.name), &item.node.name)?;
            if !problems.is_empty() {
                self.meta_problems
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(
                        problems
                            .into_iter()
                            .map(|p| format!("{}: {p}", item.path(&self.dirs))),
                    );
            }
            Ok(())
        })();
        if let Err(e) = r {
            self.fail(fi, format!("cannot finish the file: {e}"));
        }
    }

    /// Removes the temporary file of `fi`, if any (best effort).
    fn remove_partial(&self, fi: usize) {
        let item = &self.items[self.files[fi].item];
        if let Ok(dir) = self.dirs.dir(item.dir) {
            let _ = target::remove_file(dir.as_fd(), &partial_name(&item.node.name));
        }
    }
}

/// What a node's metadata becomes on this host, and what privileged part of
/// it is left out (for [`RestoreResult::dropped`]).
fn meta_of(node: &Node, root: bool, privileged: bool) -> (Meta<'_>, Vec<String>) {
    let mut dropped = Vec::new();
    let mut mode = node.mode & 0o7777;
    // Setuid and setgid on a file run it with its owner's or group's rights;
    // on a directory, setgid only passes the group on to new entries.
    let special = if node.kind == NodeKind::Dir {
        mode & 0o4000
    } else {
        mode & 0o6000
    };
    if special != 0 && !privileged {
        mode &= !special;
        dropped.push(match special {
            0o4000 => "setuid bit".to_string(),
            0o2000 => "setgid bit".to_string(),
            _ => "setuid and setgid bits".to_string(),
        });
    }
    let xattrs = node
        .xattrs
        .iter()
        .filter(|x| {
            let cap = x.name == CAPABILITY_XATTR;
            if cap && !privileged {
                dropped.push("file capabilities (security.capability)".to_string());
            }
            !cap || privileged
        })
        .map(|x| (x.name.as_slice(), x.value.as_slice()))
        .collect();
    (
        Meta {
            owner: root.then_some((node.uid, node.gid)),
            mode,
            xattrs,
            mtime_ns: node.mtime_ns,
        },
        dropped,
    )
}

struct PlannedBlob {
    id: BlobId,
    loc: Location,
    targets: Vec<(usize, u64)>,
}

/// Refuses a snapshot (made at `snapshot_time`, or asked for as the newest
/// at `at`) older than the restore `window`: the one rule every restore
/// path applies (this one, the daemon's desk, `restore --into`).
///
/// # Errors
/// [`Error::Refused`] with the window's sentence.
pub fn check_window(
    window: Option<crate::duration::HumanDuration>,
    at: Option<jiff::Timestamp>,
    snapshot_time: jiff::Timestamp,
) -> Result<()> {
    crate::policy::window::check(window, at, snapshot_time, jiff::Timestamp::now())
        .map_err(Error::from)
}

/// Restores a snapshot (or part of it) into `opts.target`, holding a shared
/// lock on the repository while it reads, after checking the restore
/// window of `opts`.
///
/// # Errors
/// [`Error::Refused`] for a snapshot or point in time outside the window.
/// Fatal errors: unreadable root tree, backend failure, a target that cannot
/// be opened or is full, a lock that cannot be taken. Entries that fail one
/// by one are listed in [`RestoreResult::skipped`] and [`RestoreResult::errors`]
/// while the rest is restored.
pub async fn restore(
    repo: &IndexedRepository,
    snap: &Snapshot,
    opts: &RestoreOptions,
) -> Result<RestoreResult> {
    check_window(opts.window, opts.at, snap.timestamp())?;
    let lock = Lock::acquire(repo.backend(), LockKind::Shared, "restore").await?;
    let r = restore_locked(repo, snap, opts).await;
    let released = lock.release().await;
    let r = r?;
    released?;
    Ok(r)
}

async fn restore_locked(
    repo: &IndexedRepository,
    snap: &Snapshot,
    opts: &RestoreOptions,
) -> Result<RestoreResult> {
    let (root, include, exclude) = (snap.tree, opts.includes.clone(), opts.excludes.clone());
    let Collected { items, slots, lost } = repo
        .walk_trees(move |r| collect(r, root, &include, &exclude))
        .await?;
    let dirs = TargetDirs::open(&opts.target, slots)
        .map_err(crate::error::at("cannot open restore target", &opts.target))?;
    let fresh = claim_target(&dirs, &opts.target, &snap.tree, opts.overwrite)?;
    let root = crate::util::is_root();
    let mut result = RestoreResult {
        errors: lost,
        ..RestoreResult::default()
    };

    // 1. Structure: directories, links, special files; regular files listed.
    // A directory that cannot be made costs the entries under it: the first
    // such entry names it.
    let mut broken: HashMap<usize, String> = HashMap::new();
    let mut files: Vec<FileSlot> = Vec::new();
    let mut hardlinks: Vec<(usize, usize)> = Vec::new(); // (item, first file)
    let mut first_link: HashMap<(u64, u64), usize> = HashMap::new();
    let mut specials: Vec<usize> = Vec::new();
    for (ii, it) in items.iter().enumerate() {
        let n = &it.node;
        if let Some(why) = broken.get(&it.dir).cloned() {
            if let Some(s) = it.slot {
                broken.insert(s, why);
            }
            continue;
        }
        let parent = match dirs.dir(it.dir) {
            Ok(d) => d,
            Err(e) => {
                let why = format!("its directory cannot be opened: {e}");
                result.skip(&it.path(&dirs), why.clone());
                if let Some(s) = it.slot {
                    broken.insert(s, why);
                }
                continue;
            }
        };
        match n.kind {
            NodeKind::Dir => {
                let slot = it.slot.unwrap_or(0);
                match target::make_dir(parent.as_fd(), &n.name) {
                    Ok(fd) => {
                        dirs.remember(slot, fd);
                        result.dirs += 1;
                    }
                    Err(e) => {
                        result.skip(
                            &it.path(&dirs),
                            format!(
                                "cannot create the directory ({e}): nothing under it is restored"
                            ),
                        );
                        broken.insert(slot, "its directory was not created".into());
                    }
                }
            }
            NodeKind::File => {
                if n.links > 1 && n.inode != 0 {
                    if let Some(&first) = first_link.get(&(n.device, n.inode)) {
                        hardlinks.push((ii, first));
                        continue;
                    }
                    first_link.insert((n.device, n.inode), files.len());
                }
                result.total_bytes += n.size;
                opts.progress.add_total(1, n.size);
                files.push(FileSlot {
                    item: ii,
                    created: Mutex::new(None),
                    remaining: AtomicU32::new(0),
                });
            }
            NodeKind::Symlink => match target::make_symlink(parent.as_fd(), &n.name, &n.target) {
                Ok(()) => {
                    result.others += 1;
                    specials.push(ii);
                }
                Err(e) => result.skip(&it.path(&dirs), format!("cannot create the symlink: {e}")),
            },
            NodeKind::Fifo | NodeKind::CharDev | NodeKind::BlockDev => {
                let kind = match n.kind {
                    NodeKind::Fifo => FileType::Fifo,
                    NodeKind::CharDev => FileType::CharacterDevice,
                    _ => FileType::BlockDevice,
                };
                if kind != FileType::Fifo && !opts.privileged {
                    result.drop_privileged(&it.path(&dirs), "device node");
                    continue;
                }
                if kind != FileType::Fifo && !root {
                    result.skip(
                        &it.path(&dirs),
                        "device nodes are recreated only when running as root",
                    );
                    continue;
                }
                match target::make_node(parent.as_fd(), &n.name, kind, n.mode, n.rdev) {
                    Ok(()) => {
                        result.others += 1;
                        specials.push(ii);
                    }
                    Err(e) => result.skip(
                        &it.path(&dirs),
                        format!("cannot create the special file: {e}"),
                    ),
                }
            }
            NodeKind::Socket => {}
        }
    }
    for it in items
        .iter()
        .filter(|it| it.slot.is_none() && broken.contains_key(&it.dir))
    {
        result.skip(&it.path(&dirs), broken[&it.dir].clone());
    }

    let shared = Arc::new(Shared {
        dirs,
        items,
        files,
        root,
        privileged: opts.privileged,
        failed: Mutex::new(HashMap::new()),
        meta_problems: Mutex::new(Vec::new()),
    });

    // 2. Plan reads by pack for files whose content is not already there.
    // Their temporary files are created by the writers (see
    // `Shared::open_partial`), in parallel and as the first blob arrives.
    let mut plan: BTreeMap<PackId, Vec<PlannedBlob>> = BTreeMap::new();
    let mut by_blob: HashMap<BlobId, (PackId, usize)> = HashMap::new();
    let mut complete = vec![false; shared.files.len()];
    for (fi, done) in complete.iter_mut().enumerate() {
        let item = &shared.items[shared.files[fi].item];
        let node = &item.node;
        if !fresh && node.size > 0 {
            let dir = match shared.dirs.dir(item.dir) {
                Ok(d) => d,
                Err(e) => {
                    shared.fail(fi, format!("its directory cannot be opened: {e}"));
                    continue;
                }
            };
            if let Some(f) = already_restored(repo, dir.as_fd(), node) {
                let (meta, _) = meta_of(node, root, opts.privileged);
                result.record_meta(
                    &item.path(&shared.dirs),
                    target::set_meta_fd(f.as_fd(), &meta),
                );
                result.files_skipped += 1;
                opts.progress.add_bytes(node.size);
                *done = true;
                continue;
            }
        }
        let mut offset = 0u64;
        let mut targets = Vec::with_capacity(node.content.len());
        let mut missing = None;
        for id in &node.content {
            match repo.locate(id) {
                Ok(loc) => {
                    targets.push((*id, loc, offset));
                    offset += u64::from(loc.raw_len);
                }
                Err(e) => {
                    missing = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = missing {
            shared.fail(fi, e.to_string());
            continue;
        }
        if targets.is_empty() {
            // No content to write: created (and sized: all of it a hole)
            // and finished here.
            match shared.open_partial(fi) {
                Ok(f) => shared.finish(fi, &f),
                Err(why) => shared.fail(fi, why),
            }
            continue;
        }
        shared.files[fi]
            .remaining
            .store(targets.len() as u32, Ordering::Relaxed);
        for (id, loc, off) in targets {
            match by_blob.get(&id) {
                Some(&(pack, i)) => plan.entry(pack).or_default()[i].targets.push((fi, off)),
                None => {
                    let v = plan.entry(loc.pack).or_default();
                    by_blob.insert(id, (loc.pack, v.len()));
                    v.push(PlannedBlob {
                        id,
                        loc,
                        targets: vec![(fi, off)],
                    });
                }
            }
        }
    }
    drop(by_blob);

    // 3. Fetch each pack once, a few at a time; decrypt, verify and write.
    let written = AtomicU64::new(0);
    let fatal = write_packs(repo, &shared, plan, opts, &written).await;
    if let Err(e) = fatal {
        // Nothing half-written stays behind under a real name; temporary
        // files go too (a rerun resumes with what is complete).
        for (fi, done) in complete.iter().enumerate() {
            if !done {
                shared.remove_partial(fi);
            }
        }
        return Err(e);
    }
    result.bytes_written = written.into_inner();

    // 4. Files not finished; hard links; metadata of links and special
    // files, then of directories, deepest first.
    let failed = shared
        .failed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for (fi, slot) in shared.files.iter().enumerate() {
        let item = &shared.items[slot.item];
        if let Some(why) = failed.get(&fi) {
            shared.remove_partial(fi);
            result.skip(&item.path(&shared.dirs), why.clone());
            continue;
        }
        if !complete[fi] {
            opts.progress.file_done();
        }
        let (_, dropped) = meta_of(&item.node, root, opts.privileged);
        for d in dropped {
            result.drop_privileged(&item.path(&shared.dirs), d);
        }
        result.files += 1;
    }
    result.warnings.extend(
        shared
            .meta_problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..),
    );
    for &(ii, first) in &hardlinks {
        let it = &shared.items[ii];
        if failed.contains_key(&first) {
            result.skip(
                &it.path(&shared.dirs),
                "the file it is a hard link of was not restored",
            );
            continue;
        }
        let from = &shared.items[shared.files[first].item];
        let linked = shared.dirs.dir(from.dir).and_then(|from_dir| {
            let dir = shared.dirs.dir(it.dir)?;
            target::make_hardlink(
                from_dir.as_fd(),
                &from.node.name,
                dir.as_fd(),
                &it.node.name,
            )
        });
        match linked {
            Ok(()) => result.others += 1,
            Err(e) => result.skip(
                &it.path(&shared.dirs),
                format!("cannot create the hard link: {e}"),
            ),
        }
    }
    for &ii in &specials {
        let it = &shared.items[ii];
        let (meta, dropped) = meta_of(&it.node, root, opts.privileged);
        for d in dropped {
            result.drop_privileged(&it.path(&shared.dirs), d);
        }
        let set = shared.dirs.dir(it.dir).and_then(|dir| {
            target::set_meta_at(
                dir.as_fd(),
                &it.node.name,
                it.node.kind == NodeKind::Symlink,
                &meta,
            )
        });
        result.record_meta(&it.path(&shared.dirs), set);
    }
    for it in shared.items.iter().rev() {
        let Some(slot) = it.slot else { continue };
        if broken.contains_key(&slot) {
            continue;
        }
        let (meta, dropped) = meta_of(&it.node, root, opts.privileged);
        for d in dropped {
            result.drop_privileged(&it.path(&shared.dirs), d);
        }
        let set = shared
            .dirs
            .dir(slot)
            .and_then(|fd| target::set_meta_fd(fd.as_fd(), &meta));
        result.record_meta(&it.path(&shared.dirs), set);
    }

    // 5. Optional verification: read everything back, hashing on a
    // blocking thread (whole files: not work for the runtime's threads).
    if opts.verify {
        let plans: Vec<(usize, Result<Chunks>)> = shared
            .files
            .iter()
            .enumerate()
            .filter(|(fi, _)| !failed.contains_key(fi))
            .map(|(_, slot)| {
                let chunks = shared.items[slot.item]
                    .node
                    .content
                    .iter()
                    .map(|id| repo.locate(id).map(|l| (*id, l.raw_len)))
                    .collect();
                (slot.item, chunks)
            })
            .collect();
        let (blocking, keys) = (shared.clone(), repo.keys().clone());
        let outcomes = tokio::task::spawn_blocking(move || {
            plans
                .into_iter()
                .map(|(it, chunks)| {
                    let item = &blocking.items[it];
                    let checked = chunks.and_then(|chunks| {
                        blocking
                            .dirs
                            .dir(item.dir)
                            .and_then(|dir| open_regular(dir.as_fd(), &item.node.name))
                            .map_err(|e| Error::io("cannot open for verification", e))
                            .and_then(|f| verify_chunks(&keys, &f, &chunks))
                    });
                    (it, checked)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::Internal(format!("verification stopped: {e}")))?;
        for (it, checked) in outcomes {
            match checked {
                Ok(()) => result.files_verified += 1,
                Err(e) => result.errors.push(format!(
                    "{}: verification failed: {e}",
                    shared.items[it].path(&shared.dirs)
                )),
            }
        }
    }
    opts.progress.finish();
    // A complete restore drops its marker; one with errors keeps it, so that
    // running it again (after fixing the cause) resumes.
    if result.errors.is_empty() {
        target::remove_file(shared.dirs.root(), MARKER.as_bytes()).map_err(crate::error::at(
            "cannot remove the restore marker",
            &opts.target,
        ))?;
    }
    Ok(result)
}

/// The file at `node`'s name in `dir` when it already holds exactly the
/// node's content: a regular file with one link (a file linked from
/// elsewhere is not trusted: its metadata would be changed there too).
fn already_restored(
    repo: &IndexedRepository,
    dir: BorrowedFd<'_>,
    node: &Node,
) -> Option<std::fs::File> {
    let f = open_regular(dir, &node.name).ok()?;
    let st = rustix::fs::fstat(&f).ok()?;
    if st.st_nlink != 1 || u64::try_from(st.st_size).ok()? != node.size {
        return None;
    }
    // A whole-file read and hash: not on a runtime worker's time.
    crate::util::blocking(|| verify_fd(repo, &f, node)).ok()?;
    Some(f)
}

/// Phase 3 of [`restore`]: every pack read once, its blobs written to their
/// files. Returns only fatal errors (backend, full disk); a file that fails
/// is recorded in `shared.failed`.
///
/// A local repository read directly is read and written by one thread per
/// range in flight ([`crate::util::on_threads`]); another store's ranges
/// are fetched concurrently and written on blocking threads.
async fn write_packs(
    repo: &IndexedRepository,
    shared: &Arc<Shared>,
    plan: BTreeMap<PackId, Vec<PlannedBlob>>,
    opts: &RestoreOptions,
    written: &AtomicU64,
) -> Result<()> {
    let at_once = packs_at_once(repo, opts.concurrency);
    let work = plan
        .into_iter()
        .flat_map(|(pack, blobs)| pack_ranges(pack, blobs));
    if let Some(local) = repo.backend().direct_reads() {
        let (repo, shared, progress) = (repo.clone(), shared.clone(), opts.progress.clone());
        let counts = crate::util::on_threads(work, at_once, Scratch::new, move |scratch, range| {
            let last = range.last;
            let data = local.read(&pack_path(&range.pack), Some(range.bytes.clone()));
            let n = write_range(repo.keys(), &shared, &progress, scratch, range, data)?;
            if last {
                crate::util::crash_point("restore:after-pack");
            }
            Ok(n)
        })
        .await?;
        written.fetch_add(counts.iter().sum(), Ordering::Relaxed);
        return Ok(());
    }
    let scratch: Arc<Pool<Scratch>> = Arc::new(Pool::new());
    let scratch = &scratch;
    let results = futures::stream::iter(work)
        .map(|range| async move {
            let last = range.last;
            let data = match repo
                .backend()
                .start_read(&pack_path(&range.pack), Some(range.bytes.clone()))
                .await
            {
                Ok(d) => d,
                Err(e) if fatal_read_error(&e) => return Err(e),
                Err(e) => {
                    for b in &range.blobs {
                        shared.fail_all(&b.targets, &e.to_string());
                    }
                    return Ok(());
                }
            };
            let (scratch, keys) = (scratch.clone(), repo.keys().clone());
            let (shared, progress) = (shared.clone(), opts.progress.clone());
            let n = tokio::task::spawn_blocking(move || {
                let mut scratch = scratch.take(Scratch::new);
                write_range(&keys, &shared, &progress, &mut scratch, range, data)
            })
            .await
            .map_err(|e| Error::Internal(format!("restore writer failed: {e}")))??;
            written.fetch_add(n, Ordering::Relaxed);
            if last {
                crate::util::crash_point("restore:after-pack");
            }
            Ok(())
        })
        .buffer_unordered(at_once)
        .collect::<Vec<Result<()>>>()
        .await;
    results.into_iter().collect()
}

/// One request's worth of a pack: the bytes read at once, the blobs in
/// them and where each goes.
struct PackRange {
    pack: PackId,
    bytes: std::ops::Range<u64>,
    blobs: Vec<PlannedBlob>,
    /// The pack's last range.
    last: bool,
}

/// The ranges `blobs` of `pack` are read in (see [`ranges`]), in order.
fn pack_ranges(pack: PackId, mut blobs: Vec<PlannedBlob>) -> Vec<PackRange> {
    blobs.sort_by_key(|b| b.loc.offset);
    let split = ranges(&blobs);
    let count = split.len();
    let mut blobs = blobs.into_iter();
    split
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let chunk: Vec<PlannedBlob> = blobs.by_ref().take(r.len()).collect();
            let start = chunk.first().map_or(0, |b| b.loc.offset);
            PackRange {
                pack,
                bytes: start..range_end(&chunk),
                blobs: chunk,
                last: i + 1 == count,
            }
        })
        .collect()
}

/// Reads one range (`data`), decrypts, verifies and decompresses its blobs
/// and writes each where it goes; returns the bytes written. Files that
/// fail are recorded in `shared`; the error returned is fatal (the store
/// failed, the target is full).
fn write_range(
    keys: &Keys,
    shared: &Shared,
    progress: &Progress,
    scratch: &mut Scratch,
    range: PackRange,
    data: crate::backend::Pending,
) -> Result<u64> {
    let Scratch { read: buf, opener } = scratch;
    let PackRange {
        pack, bytes, blobs, ..
    } = range;
    // The range in the scratch buffer, where its blobs are decrypted in
    // place.
    match data.into_buffer(buf) {
        Ok(()) => {}
        Err(e) if fatal_read_error(&e) => return Err(e),
        Err(e) => {
            for b in &blobs {
                shared.fail_all(&b.targets, &e.to_string());
            }
            return Ok(0);
        }
    }
    let mut n = 0u64;
    // The file written last, kept open for its next blob.
    let mut open: Option<(usize, std::fs::File)> = None;
    for PlannedBlob { id, loc, targets } in blobs {
        let s = (loc.offset - bytes.start) as usize;
        let Some(stored) = buf.get_mut(s..s + loc.length as usize) else {
            let why = format!("blob {id} lies beyond the range read from pack {pack}");
            shared.fail_all(&targets, &why);
            continue;
        };
        let plain = match opener.open_in_place(keys, &pack, &loc.entry(id), stored) {
            Ok(p) => p,
            Err(e) => {
                shared.fail_all(&targets, &e.to_string());
                continue;
            }
        };
        for (fi, off) in targets {
            if shared.has_failed(fi) {
                continue;
            }
            if open.as_ref().is_none_or(|(f, _)| *f != fi) {
                match shared.open_partial(fi) {
                    Ok(f) => open = Some((fi, f)),
                    Err(why) => {
                        shared.fail(fi, why);
                        continue;
                    }
                }
            }
            let Some((_, f)) = open.as_ref() else {
                continue;
            };
            match write_sparse(f, off, plain) {
                Ok(w) => n += w,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    return Err(Error::io(
                        format!(
                            "the restore target is full (writing {}): free space and run the same restore again, it resumes where it stopped",
                            shared.items[shared.files[fi].item].path(&shared.dirs)
                        ),
                        e,
                    ));
                }
                Err(e) => {
                    shared.fail(fi, format!("cannot write: {e}"));
                    continue;
                }
            }
            progress.add_bytes(plain.len() as u64);
            // Counted after the write: whoever writes a file's last blob
            // finishes it, once every other write to it is done.
            let left = shared.files[fi].remaining.fetch_sub(1, Ordering::AcqRel) - 1;
            if left == 0 && !shared.has_failed(fi) {
                shared.finish(fi, f);
                open = None;
            }
        }
    }
    Ok(n)
}

/// Ranges read and written at once. A store's latency is hidden by
/// `requested` reads in flight; a local repository is read with `pread`,
/// where every range in flight is work for a core, so more than one per core
/// only keeps more buffers resident (each up to twice [`MAX_RANGE`]): on two
/// cores, 4 at once peaked at 109 MiB and 2 at 80 MiB, in the same time
/// within the runs' spread.
fn packs_at_once(repo: &IndexedRepository, requested: usize) -> usize {
    let requested = requested.max(1);
    if repo.backend().local_root().is_some() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        requested.min(cores.max(2))
    } else {
        requested
    }
}

/// What one range's blocking task needs besides the range: the buffer a
/// local range is read into and the blob opener, reused from range to range
/// (one per range in flight, so at most `concurrency` of them).
struct Scratch {
    read: Vec<u8>,
    opener: BlobOpener,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            read: Vec::new(),
            opener: BlobOpener::new(),
        }
    }
}

/// A read error that stops the whole restore (the store failed), as opposed
/// to one that fails only the files of that range (a missing or truncated
/// pack: damage, reported per file).
fn fatal_read_error(e: &Error) -> bool {
    matches!(e, Error::Backend { .. }) && !crate::backend::is_not_found(e)
}

/// Checks that the target may be restored into and leaves the marker
/// there; returns true when the target was empty (nothing can be in the
/// way of any entry).
///
/// # Errors
/// [`Error::Refused`] for a non-empty target that is not an unfinished restore
/// of the same snapshot, without `overwrite`; I/O errors.
fn claim_target(
    dirs: &TargetDirs,
    path: &std::path::Path,
    tree: &BlobId,
    overwrite: bool,
) -> Result<bool> {
    let root = dirs.root();
    let marker = MARKER.as_bytes();
    let resuming = open_regular(root, marker).ok().and_then(|f| {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(&f, 256), &mut s).ok()?;
        Some(s.trim() == tree.to_hex())
    });
    let mut entries =
        std::fs::read_dir(path).map_err(crate::error::at("cannot read restore target", path))?;
    let occupied = entries.any(|e| e.is_ok_and(|e| e.file_name() != MARKER));
    match resuming {
        Some(true) => tracing::info!(target = %path.display(), "resuming an unfinished restore of this snapshot"),
        _ if !occupied || overwrite => {}
        Some(false) => {
            return Err(Error::Refused(format!(
                "restore target {} holds an unfinished restore of another snapshot: finish that one, or choose another target (or --overwrite)",
                path.display()
            )))
        }
        None => {
            return Err(Error::Refused(format!(
                "restore target {} is not empty: restore into a new or empty directory, or add --overwrite to replace the entries the snapshot has (others are left alone)",
                path.display()
            )))
        }
    }
    let write = || -> std::io::Result<()> {
        let f = target::create_file(root, marker)?;
        f.write_all_at(tree.to_hex().as_bytes(), 0)?;
        f.sync_all()
    };
    write().map_err(crate::error::at("cannot write the restore marker in", path))?;
    Ok(!occupied)
}

/// Splits blobs (sorted by offset) into ranges read with one request each.
fn ranges(blobs: &[PlannedBlob]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=blobs.len() {
        let split = i == blobs.len() || {
            let prev_end = blobs[i - 1].loc.offset + u64::from(blobs[i - 1].loc.length);
            let next = &blobs[i].loc;
            next.offset.saturating_sub(prev_end) > MERGE_GAP
                || next.offset + u64::from(next.length) - blobs[start].loc.offset > MAX_RANGE
        };
        if split {
            out.push(start..i);
            start = i;
        }
    }
    out
}

fn range_end(blobs: &[PlannedBlob]) -> u64 {
    blobs
        .iter()
        .map(|b| b.loc.offset + u64::from(b.loc.length))
        .max()
        .unwrap_or(0)
}

/// Finds a node by its path inside a snapshot (`/a/b/c`).
///
/// # Errors
/// [`Error::NotFound`] when a component does not exist.
pub(crate) async fn find_node(
    repo: &IndexedRepository,
    snap: &Snapshot,
    path: &str,
) -> Result<Node> {
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut tree = repo.read_tree(&snap.tree).await?;
    for (i, c) in comps.iter().enumerate() {
        let node = tree
            .find(c.as_bytes())
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("{path} in the snapshot")))?;
        if i + 1 == comps.len() {
            return Ok(node);
        }
        let sub = node
            .subtree
            .ok_or_else(|| Error::NotFound(format!("{path} in the snapshot (not a directory)")))?;
        tree = repo.read_tree(&sub).await?;
    }
    Err(Error::Usage(
        "give the path of a file inside the snapshot".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repofile::pack::{BlobKind, Compression};
    use crate::repofile::tree::Xattr;

    fn blob(offset: u64, length: u32) -> PlannedBlob {
        PlannedBlob {
            id: BlobId([0; 32]),
            loc: Location {
                pack: PackId([0; 32]),
                kind: BlobKind::Data,
                compression: Compression::Raw,
                offset,
                length,
                raw_len: length,
            },
            targets: Vec::new(),
        }
    }

    #[test]
    fn all_zero_finds_any_non_zero_byte() {
        for len in [0usize, 1, 15, 16, 17, 63, 64, 65, 100, 4096] {
            let mut b = vec![0u8; len];
            assert!(all_zero(&b), "{len} zeros");
            for i in 0..len {
                b[i] = 1;
                assert!(!all_zero(&b), "byte {i} of {len}");
                b[i] = 0;
            }
        }
    }

    #[test]
    fn holes_are_left_for_zero_blocks_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("f"))
            .unwrap();
        let mut data = vec![0u8; 5 * SPARSE_BLOCK + 100];
        data[SPARSE_BLOCK + 4000] = 7; // block 1
        data[3 * SPARSE_BLOCK] = 9; // block 3
        data[5 * SPARSE_BLOCK + 99] = 3; // the short last block
        f.set_len(10 + data.len() as u64).unwrap();
        let written = write_sparse(&f, 10, &data).unwrap();
        assert_eq!(written, (2 * SPARSE_BLOCK + 100) as u64);
        let mut back = vec![0u8; data.len()];
        f.read_exact_at(&mut back, 10).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn blobs_of_a_pack_are_read_in_few_ranges_of_bounded_size() {
        assert!(ranges(&[]).is_empty());
        // Neighbours and small gaps: one request.
        let near = [blob(0, 100), blob(100, 100), blob(200 + MERGE_GAP, 100)];
        assert_eq!(ranges(&near), std::iter::once(0..3).collect::<Vec<_>>());
        // A gap wider than MERGE_GAP: two requests.
        let far = [blob(0, 100), blob(101 + MERGE_GAP, 100)];
        assert_eq!(ranges(&far), [0..1, 1..2]);
        // A range never grows beyond MAX_RANGE.
        let big = MAX_RANGE as u32 / 2;
        let run = [
            blob(0, big),
            blob(u64::from(big), big),
            blob(2 * u64::from(big), big),
        ];
        assert_eq!(ranges(&run), [0..2, 2..3]);
        assert_eq!(range_end(&run), 3 * u64::from(big));
    }

    fn node(kind: NodeKind, mode: u32, xattrs: Vec<Xattr>) -> Node {
        Node {
            name: b"x".to_vec(),
            kind,
            mode,
            uid: 1000,
            gid: 1000,
            mtime_ns: 5,
            ctime_ns: 5,
            inode: 1,
            device: 1,
            links: 1,
            size: 0,
            content: Vec::new(),
            subtree: None,
            target: Vec::new(),
            rdev: 0,
            xattrs,
        }
    }

    #[test]
    fn privileged_bits_and_capabilities_are_planned_only_when_asked() {
        let cap = Xattr {
            name: CAPABILITY_XATTR.to_vec(),
            value: vec![1],
        };
        let user = Xattr {
            name: b"user.note".to_vec(),
            value: vec![2],
        };
        let f = node(NodeKind::File, 0o106755, vec![cap, user]);
        let (meta, dropped) = meta_of(&f, false, false);
        assert_eq!(meta.mode, 0o755);
        assert_eq!(meta.xattrs, [(&b"user.note"[..], &[2u8][..])]);
        assert_eq!(meta.owner, None, "ownership only when running as root");
        assert_eq!(
            dropped,
            [
                "setuid and setgid bits",
                "file capabilities (security.capability)"
            ]
        );
        let (meta, dropped) = meta_of(&f, true, true);
        assert_eq!(meta.mode, 0o6755);
        assert_eq!(meta.xattrs.len(), 2);
        assert_eq!(meta.owner, Some((1000, 1000)));
        assert!(dropped.is_empty());
        // A directory's setgid bit only passes its group on: always kept.
        let d = node(NodeKind::Dir, 0o42775, Vec::new());
        let (meta, dropped) = meta_of(&d, false, false);
        assert_eq!(meta.mode, 0o2775);
        assert!(dropped.is_empty());
    }

    #[test]
    fn a_temporary_file_is_created_once_by_its_first_writer_and_checked_after() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"not ours").unwrap();
        let mut n = node(NodeKind::File, 0o644, Vec::new());
        n.size = 1 << 20;
        let partial = dir
            .path()
            .join(std::str::from_utf8(&partial_name(&n.name)).unwrap());
        // A symlink planted at the temporary name is replaced, not followed.
        std::os::unix::fs::symlink(&victim, &partial).unwrap();
        let shared = Shared {
            dirs: TargetDirs::open(
                dir.path(),
                vec![target::DirSlot {
                    parent: 0,
                    name: Vec::new(),
                }],
            )
            .unwrap(),
            items: vec![Item {
                dir: 0,
                slot: None,
                node: n,
            }],
            files: vec![FileSlot {
                item: 0,
                created: Mutex::new(None),
                remaining: AtomicU32::new(1),
            }],
            root: false,
            privileged: false,
            failed: Mutex::new(HashMap::new()),
            meta_problems: Mutex::new(Vec::new()),
        };
        let first = shared.open_partial(0).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"not ours");
        let st = std::fs::symlink_metadata(&partial).unwrap();
        assert!(st.is_file());
        assert_eq!(st.len(), 1 << 20, "sized when created");
        first.write_all_at(b"abc", 10).unwrap();
        // A later writer reopens the same file: nothing truncated.
        let again = shared.open_partial(0).unwrap();
        again.write_all_at(b"def", 20).unwrap();
        let bytes = std::fs::read(&partial).unwrap();
        assert_eq!((&bytes[10..13], &bytes[20..23]), (&b"abc"[..], &b"def"[..]));
        // Replaced behind the restore's back (a file, then a symlink): the
        // writer refuses it rather than write into someone else's file.
        std::fs::remove_file(&partial).unwrap();
        std::fs::write(&partial, b"planted").unwrap();
        let e = shared.open_partial(0).unwrap_err();
        assert!(e.contains("replaced during the restore"), "{e}");
        std::fs::remove_file(&partial).unwrap();
        std::os::unix::fs::symlink(&victim, &partial).unwrap();
        let e = shared.open_partial(0).unwrap_err();
        assert!(e.starts_with("cannot write: "), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"not ours");
    }
}
