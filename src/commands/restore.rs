//! `custos restore`: snapshot → tree walk (include/exclude) → reads planned by
//! pack → decrypt, verify, decompress → sparse writes → metadata last.
//!
//! * Each pack is fetched once, with ranged reads covering only the blobs needed
//!   (neighbouring blobs are merged into one request when the gap is small).
//! * Packs are processed a few at a time; memory is bounded by
//!   `concurrency × largest range`, whatever the snapshot's size.
//! * Blocks of zeros are not written: files are sized first, so holes stay holes.
//! * A file already present with the right content is left alone, so a restore
//!   interrupted and run again finishes the rest.
//! * Live data is never overwritten by accident: a non-empty target is refused
//!   unless it holds the marker of an unfinished restore of the same snapshot
//!   (which is then resumed) or `overwrite` is set.
//! * Metadata (owner when root, mode, extended attributes, times) is applied
//!   after all content, directories deepest first so their mtimes stick.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::StreamExt;
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::at;
use crate::id::{BlobId, PackId};
use crate::index::Location;
use crate::progress::Progress;
use crate::repofile::pack::open_blob;
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::{Node, NodeKind};
use crate::repository::{pack_path, IndexedRepository};
use crate::{Error, Result};

/// One blob to restore: its ID, where it is stored, and the (file index, offset)
/// pairs it is written to.
type BlobWork = (BlobId, Location, Vec<(usize, u64)>);

/// Largest gap between two needed blobs that is still read in one request
/// (reading a little waste beats another round trip).
const MERGE_GAP: u64 = 1 << 20;
/// Largest single ranged read: with `concurrency` packs in flight, restore
/// memory is about `concurrency × 2 × MAX_RANGE` (the read and the decoded
/// blobs), whatever the snapshot's size.
const MAX_RANGE: u64 = 8 << 20;
/// Granularity of hole detection when writing.
const SPARSE_BLOCK: usize = 4096;

/// Left in the target while a restore runs; holds the snapshot's root tree ID,
/// so that only the same restore may resume into a non-empty target.
pub const MARKER: &str = ".custos-restore-in-progress";

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
    /// Restore into a non-empty target, replacing files the snapshot has
    /// (files it does not have are left alone).
    pub overwrite: bool,
    /// Packs processed at once.
    pub concurrency: usize,
    /// Progress display.
    pub progress: Progress,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            target: PathBuf::new(),
            includes: Vec::new(),
            excludes: Vec::new(),
            verify: false,
            overwrite: false,
            concurrency: 4,
            progress: Progress::hidden(),
        }
    }
}

/// What a restore did.
#[derive(Debug, Default, Clone, serde::Serialize)]
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
    /// Problems: files that could not be restored or verified.
    pub errors: Vec<String>,
}

struct Item {
    rel: PathBuf,
    snap_path: String,
    node: Node,
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

/// Collects the snapshot's entries (depth first, parents before children),
/// applying include and exclude patterns. A directory whose tree is damaged
/// or missing is left out and named in the second list; everything else is
/// still restored.
async fn collect(
    repo: &IndexedRepository,
    snap: &Snapshot,
    opts: &RestoreOptions,
) -> Result<(Vec<Item>, Vec<String>)> {
    let includes = globset(&opts.includes, "include")?;
    let excludes = globset(&opts.excludes, "exclude")?;
    let mut out = Vec::new();
    // (tree, relative dir, snapshot dir, an ancestor matched an include)
    let mut stack = vec![(snap.tree, PathBuf::new(), String::new(), includes.is_none())];
    let mut lost = Vec::new();
    while let Some((tree_id, rel, sp, included)) = stack.pop() {
        let tree = match repo.read_tree(&tree_id).await {
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
            let name = OsStr::from_bytes(&node.name);
            let rel_child = rel.join(name);
            let sp_child = format!("{sp}/{}", String::from_utf8_lossy(&node.name));
            if excludes.as_ref().is_some_and(|e| e.is_match(&sp_child)) {
                continue;
            }
            let inc = included || includes.as_ref().is_some_and(|i| i.is_match(&sp_child));
            if node.kind == NodeKind::Dir {
                if let Some(sub) = node.subtree {
                    stack.push((sub, rel_child.clone(), sp_child.clone(), inc));
                }
                out.push(Item {
                    rel: rel_child,
                    snap_path: sp_child,
                    node,
                });
            } else if inc {
                out.push(Item {
                    rel: rel_child,
                    snap_path: sp_child,
                    node,
                });
            }
        }
    }
    // Keep directories only when something under them is restored (or they were
    // included themselves), then order parents before children.
    if includes.is_some() {
        let inc = includes.as_ref();
        let mut keep_dirs = std::collections::HashSet::new();
        for it in &out {
            if it.node.kind != NodeKind::Dir || inc.is_some_and(|i| i.is_match(&it.snap_path)) {
                let mut p = it.rel.as_path();
                while let Some(parent) = p.parent() {
                    keep_dirs.insert(parent.to_path_buf());
                    p = parent;
                }
                if it.node.kind == NodeKind::Dir {
                    keep_dirs.insert(it.rel.clone());
                }
            }
        }
        out.retain(|it| it.node.kind != NodeKind::Dir || keep_dirs.contains(&it.rel));
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok((out, lost))
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::Usage(format!("path with NUL byte: {}", p.display())))
}

fn set_times(path: &Path, mtime_ns: i64) -> Result<()> {
    let ts = libc::timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000) as _,
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    let times = [ts, ts];
    let c = cstr(path)?;
    // SAFETY: `c` is a valid NUL-terminated path, `times` points to two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(Error::io_path(
            "cannot set times of",
            path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn apply_metadata(path: &Path, node: &Node, root: bool) -> Result<()> {
    if root {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
            .map_err(at("cannot set owner of", path))?;
    }
    if node.kind != NodeKind::Symlink {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777))
            .map_err(at("cannot set mode of", path))?;
    }
    for x in &node.xattrs {
        let name = OsStr::from_bytes(&x.name);
        if let Err(e) = xattr::set(path, name, &x.value) {
            // Attributes of other namespaces may need privileges we lack; the
            // content is still restored, so warn rather than fail.
            tracing::warn!(path = %path.display(), attr = %name.to_string_lossy(), error = %e, "cannot restore extended attribute");
        }
    }
    set_times(path, node.mtime_ns)
}

/// Writes `data` at `offset`, skipping all-zero blocks (the file was sized
/// beforehand, so they read back as zeros and stay holes).
fn write_sparse(f: &std::fs::File, offset: u64, data: &[u8]) -> std::io::Result<u64> {
    let mut written = 0u64;
    let mut pos = 0usize;
    while pos < data.len() {
        let end = (pos + SPARSE_BLOCK).min(data.len());
        // Extend the run of non-zero blocks as far as it goes, then write it at once.
        if data[pos..end].iter().all(|&b| b == 0) {
            pos = end;
            continue;
        }
        let mut run_end = end;
        while run_end < data.len() {
            let next = (run_end + SPARSE_BLOCK).min(data.len());
            if data[run_end..next].iter().all(|&b| b == 0) {
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

/// Checks whether the file at `path` already holds exactly `node`'s content.
fn content_matches(repo: &IndexedRepository, path: &Path, node: &Node) -> bool {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !md.is_file() || md.len() != node.size {
        return false;
    }
    verify_file(repo, path, node).is_ok()
}

/// Re-reads a restored file and checks every chunk against the snapshot.
fn verify_file(repo: &IndexedRepository, path: &Path, node: &Node) -> Result<()> {
    let f = std::fs::File::open(path).map_err(at("cannot open for verification", path))?;
    let mut offset = 0u64;
    let mut buf = Vec::new();
    for id in &node.content {
        let loc = repo.locate(id)?;
        buf.resize(loc.raw_len as usize, 0);
        f.read_exact_at(&mut buf, offset)
            .map_err(at("cannot read back", path))?;
        if repo.keys().blob_id(&buf) != *id {
            return Err(Error::integrity(
                path.display().to_string(),
                format!("content at offset {offset} differs from the snapshot"),
            ));
        }
        offset += u64::from(loc.raw_len);
    }
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX) != offset {
        return Err(Error::integrity(
            path.display().to_string(),
            "size differs from the snapshot",
        ));
    }
    Ok(())
}

struct Target {
    file: usize,
    offset: u64,
}

struct PlannedBlob {
    id: BlobId,
    loc: Location,
    targets: Vec<Target>,
}

/// Restores a snapshot (or part of it) into `opts.target`.
///
/// # Errors
/// Fatal errors (unreadable trees, backend failure, target not writable). Files
/// that fail individually are listed in [`RestoreResult::errors`].
pub async fn restore(
    repo: &IndexedRepository,
    snap: &Snapshot,
    opts: &RestoreOptions,
) -> Result<RestoreResult> {
    let (items, lost) = collect(repo, snap, opts).await?;
    let target = &opts.target;
    let marker = claim_target(target, &snap.tree, opts.overwrite)?;
    let root = crate::util::is_root();
    let mut result = RestoreResult {
        errors: lost,
        ..RestoreResult::default()
    };

    // 1. Structure: directories, files sized, links, special files.
    let mut files: Vec<(PathBuf, &Node, String)> = Vec::new();
    let mut hardlinks: Vec<(PathBuf, usize)> = Vec::new();
    let mut first_link: HashMap<(u64, u64), usize> = HashMap::new();
    for it in &items {
        let path = target.join(&it.rel);
        let n = &it.node;
        match n.kind {
            NodeKind::Dir => {
                std::fs::create_dir_all(&path).map_err(at("cannot create directory", &path))?;
                result.dirs += 1;
            }
            NodeKind::File => {
                if n.links > 1 && n.inode != 0 {
                    if let Some(&first) = first_link.get(&(n.device, n.inode)) {
                        hardlinks.push((path, first));
                        continue;
                    }
                    first_link.insert((n.device, n.inode), files.len());
                }
                result.total_bytes += n.size;
                opts.progress.add_total(1, n.size);
                files.push((path, n, it.snap_path.clone()));
            }
            NodeKind::Symlink => {
                let _ = std::fs::remove_file(&path);
                std::os::unix::fs::symlink(OsStr::from_bytes(&n.target), &path)
                    .map_err(at("cannot create symlink", &path))?;
                result.others += 1;
            }
            NodeKind::Fifo | NodeKind::CharDev | NodeKind::BlockDev => {
                if n.kind != NodeKind::Fifo && !root {
                    result.errors.push(format!(
                        "{}: device files are recreated only when running as root",
                        it.snap_path
                    ));
                    continue;
                }
                let _ = std::fs::remove_file(&path);
                let c = cstr(&path)?;
                // SAFETY: valid path; mode and rdev come from the snapshot.
                let r = unsafe {
                    libc::mknod(c.as_ptr(), n.mode as libc::mode_t, n.rdev as libc::dev_t)
                };
                if r != 0 {
                    result.errors.push(format!(
                        "{}: cannot recreate special file: {}",
                        it.snap_path,
                        std::io::Error::last_os_error()
                    ));
                    continue;
                }
                result.others += 1;
            }
            NodeKind::Socket => {}
        }
    }

    // 2. Plan reads by pack for files whose content is not already there.
    let mut plan: BTreeMap<PackId, Vec<PlannedBlob>> = BTreeMap::new();
    let mut by_blob: HashMap<BlobId, (PackId, usize)> = HashMap::new();
    let mut pending_files = vec![false; files.len()];
    for (fi, (path, node, snap_path)) in files.iter().enumerate() {
        if node.size > 0 && content_matches(repo, path, node) {
            result.files_skipped += 1;
            opts.progress.add_bytes(node.size);
            continue;
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(at("cannot create file", path))?;
        f.set_len(node.size).map_err(at("cannot size file", path))?;
        let mut offset = 0u64;
        for id in &node.content {
            let loc = match repo.locate(id) {
                Ok(l) => l,
                Err(e) => {
                    result.errors.push(format!("{snap_path}: {e}"));
                    break;
                }
            };
            let t = Target { file: fi, offset };
            offset += u64::from(loc.raw_len);
            match by_blob.get(id) {
                Some(&(pack, i)) => plan.entry(pack).or_default()[i].targets.push(t),
                None => {
                    let v = plan.entry(loc.pack).or_default();
                    by_blob.insert(*id, (loc.pack, v.len()));
                    v.push(PlannedBlob {
                        id: *id,
                        loc,
                        targets: vec![t],
                    });
                }
            }
        }
        pending_files[fi] = true;
    }
    drop(by_blob);

    // 3. Fetch each pack once, a few at a time; decrypt, verify and write.
    let failed: Mutex<HashMap<usize, String>> = Mutex::new(HashMap::new());
    let written = std::sync::atomic::AtomicU64::new(0);
    let file_paths: Vec<&Path> = files.iter().map(|(p, _, _)| p.as_path()).collect();
    let results = futures::stream::iter(plan)
        .map(|(pack, mut blobs)| {
            let failed = &failed;
            let written = &written;
            let file_paths = &file_paths;
            async move {
                blobs.sort_by_key(|b| b.loc.offset);
                for range in ranges(&blobs) {
                    let (start, end) = (
                        blobs[range.start].loc.offset,
                        range_end(&blobs[range.clone()]),
                    );
                    let data = repo
                        .backend()
                        .get_range(&pack_path(&pack), start..end)
                        .await;
                    let data = match data {
                        Ok(d) => d,
                        Err(e)
                            if matches!(e, Error::Backend { .. })
                                && !crate::backend::is_not_found(&e) =>
                        {
                            return Err(e)
                        }
                        Err(e) => {
                            let mut f = failed
                                .lock()
                                .map_err(|_| Error::Problems("poisoned".into()))?;
                            for b in &blobs[range.clone()] {
                                for t in &b.targets {
                                    f.entry(t.file).or_insert_with(|| e.to_string());
                                }
                            }
                            continue;
                        }
                    };
                    let keys = repo.keys().clone();
                    let chunk: Vec<BlobWork> = blobs[range]
                        .iter()
                        .map(|b| {
                            (
                                b.id,
                                b.loc,
                                b.targets.iter().map(|t| (t.file, t.offset)).collect(),
                            )
                        })
                        .collect();
                    let paths: Vec<PathBuf> = file_paths.iter().map(|p| p.to_path_buf()).collect();
                    let progress = opts.progress.clone();
                    let (errs, n) = tokio::task::spawn_blocking(move || {
                        let mut errs = Vec::new();
                        let mut n = 0u64;
                        for (id, loc, targets) in chunk {
                            let s = (loc.offset - start) as usize;
                            let stored = &data[s..s + loc.length as usize];
                            match open_blob(&keys, &pack, &loc.entry(id), stored) {
                                Ok(plain) => {
                                    for (fi, off) in targets {
                                        let r = std::fs::OpenOptions::new()
                                            .write(true)
                                            .open(&paths[fi])
                                            .and_then(|f| write_sparse(&f, off, &plain));
                                        match r {
                                            Ok(w) => n += w,
                                            Err(e) => errs.push((
                                                fi,
                                                format!("cannot write: {e}"),
                                                e.raw_os_error() == Some(libc::ENOSPC),
                                            )),
                                        }
                                        progress.add_bytes(plain.len() as u64);
                                    }
                                }
                                Err(e) => {
                                    for (fi, _) in targets {
                                        errs.push((fi, e.to_string(), false));
                                    }
                                }
                            }
                        }
                        (errs, n)
                    })
                    .await
                    .map_err(|e| Error::Problems(format!("restore writer failed: {e}")))?;
                    written.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    let mut f = failed
                        .lock()
                        .map_err(|_| Error::Problems("poisoned".into()))?;
                    for (fi, e, disk_full) in errs {
                        if disk_full {
                            return Err(Error::io(
                                format!(
                                    "the restore target is full (writing {}): free space and run the same restore again, it resumes where it stopped",
                                    file_paths[fi].display()
                                ),
                                std::io::Error::from_raw_os_error(libc::ENOSPC),
                            ));
                        }
                        f.entry(fi).or_insert(e);
                    }
                }
                crate::util::crash_point("restore:after-pack");
                Ok(())
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect::<Vec<Result<()>>>()
        .await;
    for r in results {
        r?;
    }
    result.bytes_written = written.into_inner();
    let failed = failed
        .into_inner()
        .map_err(|_| Error::Problems("poisoned".into()))?;

    // 4. Hard links, then metadata (files, then directories deepest first).
    for (path, first) in &hardlinks {
        let _ = std::fs::remove_file(path);
        if let Err(e) = std::fs::hard_link(files[*first].0.as_path(), path) {
            result
                .errors
                .push(format!("{}: cannot create hard link: {e}", path.display()));
        } else {
            result.others += 1;
        }
    }
    for (fi, (path, node, snap_path)) in files.iter().enumerate() {
        if let Some(e) = failed.get(&fi) {
            result.errors.push(format!("{snap_path}: {e}"));
            continue;
        }
        if let Err(e) = apply_metadata(path, node, root) {
            result.errors.push(format!("{snap_path}: {e}"));
        }
        if pending_files[fi] {
            opts.progress.file_done();
        }
        result.files += 1;
    }
    for it in items.iter().filter(|i| {
        !matches!(
            i.node.kind,
            NodeKind::File | NodeKind::Dir | NodeKind::Socket
        )
    }) {
        let path = target.join(&it.rel);
        if std::fs::symlink_metadata(&path).is_ok() {
            if let Err(e) = apply_metadata(&path, &it.node, root) {
                result.errors.push(format!("{}: {e}", it.snap_path));
            }
        }
    }
    for it in items.iter().rev().filter(|i| i.node.kind == NodeKind::Dir) {
        if let Err(e) = apply_metadata(&target.join(&it.rel), &it.node, root) {
            result.errors.push(format!("{}: {e}", it.snap_path));
        }
    }

    // 5. Optional verification: read everything back.
    if opts.verify {
        for (fi, (path, node, snap_path)) in files.iter().enumerate() {
            if failed.contains_key(&fi) {
                continue;
            }
            match verify_file(repo, path, node) {
                Ok(()) => result.files_verified += 1,
                Err(e) => result
                    .errors
                    .push(format!("{snap_path}: verification failed: {e}")),
            }
        }
    }
    opts.progress.finish();
    // A complete restore drops its marker; one with errors keeps it, so that
    // running it again (after fixing the cause) resumes.
    if result.errors.is_empty() {
        std::fs::remove_file(&marker).map_err(at("cannot remove the restore marker", &marker))?;
    }
    Ok(result)
}

/// Checks that `target` may be restored into and leaves the marker there;
/// returns the marker's path.
///
/// # Errors
/// [`Error::Refused`] for a non-empty target that is not an unfinished restore
/// of the same snapshot, without `overwrite`; I/O errors.
fn claim_target(target: &Path, tree: &BlobId, overwrite: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(target).map_err(at("cannot create restore target", target))?;
    let marker = target.join(MARKER);
    let resuming = std::fs::read_to_string(&marker)
        .ok()
        .map(|s| s.trim() == tree.to_hex());
    let mut entries =
        std::fs::read_dir(target).map_err(at("cannot read restore target", target))?;
    let occupied = entries.any(|e| e.is_ok_and(|e| e.file_name() != MARKER));
    match resuming {
        Some(true) => tracing::info!(target = %target.display(), "resuming an unfinished restore of this snapshot"),
        _ if !occupied || overwrite => {}
        Some(false) => {
            return Err(Error::Refused(format!(
                "restore target {} holds an unfinished restore of another snapshot: finish that one, or choose another target (or --overwrite)",
                target.display()
            )))
        }
        None => {
            return Err(Error::Refused(format!(
                "restore target {} is not empty: restore into a new or empty directory, or add --overwrite to replace the files the snapshot has (others are left alone)",
                target.display()
            )))
        }
    }
    let mut f =
        std::fs::File::create(&marker).map_err(at("cannot write the restore marker", &marker))?;
    std::io::Write::write_all(&mut f, tree.to_hex().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(at("cannot write the restore marker", &marker))?;
    Ok(marker)
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
pub async fn find_node(repo: &IndexedRepository, snap: &Snapshot, path: &str) -> Result<Node> {
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
