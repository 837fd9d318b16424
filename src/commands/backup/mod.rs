//! `custos backup`: the backup pipeline.
//!
//! ```text
//!  walker thread                   CPU workers (one per core)           uploader thread
//!  ─────────────                   ──────────────────────────           ───────────────
//!  walk, lstat, excludes           read small files whole               index objects;
//!  unchanged files → parent's      FastCDC → keyed BLAKE3 → dedup       a store's packs
//!  chunks                     ──▶  (index + this run) → zstd →    ──▶   uploaded a few
//!  large files read and cut        encrypt into the shared pack         at once
//!  trees written as directories    (a local repository's pack is
//!  complete ◀── answers ────────   written here, when sealed)
//! ```
//!
//! The queue to the workers is bounded (one item per worker: a chunk, or a
//! few small files), answers come back per entry, and a directory's tree is
//! written once all its entries are in, while the walk goes on. Memory is
//! bounded by the chunks and files in the workers' hands, the open pack and
//! the pack being written, whatever the size of the source. The snapshot is
//! written only after every pack and index object it references is stored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use tokio::runtime::Handle;

use crate::blob::{compress, compress_into, Packer};
use crate::chunker::{ChunkBuffer, Chunker};
use crate::id::{BlobId, IndexId, SnapshotId};
use crate::progress::Progress;
use crate::repofile::index::{IndexFile, IndexPack};
use crate::repofile::pack::{BlobKind, Compression, FinishedPack};
use crate::repofile::snapshot::{SkippedEntry, Snapshot, Summary};
use crate::repofile::tree::{Node, NodeKind, Tree};
use crate::repository::{
    lock::{Lock, LockKind},
    pack_path, select_snapshot, IndexedRepository, TreeReader,
};
use crate::source::{node_from_metadata, unchanged, Excludes};
use crate::{Error, Result};

mod pipeline;
mod walker;

use crate::util::Pool;
use pipeline::{pipeline, Buffers};

/// How many packs are uploaded at once: hides object-store latency; each holds
/// one pack in memory.
const UPLOAD_CONCURRENCY: usize = 3;

/// A stream to back up as a single file.
pub struct StreamSource {
    /// File name inside the snapshot.
    pub name: String,
    /// The data.
    pub reader: Box<dyn Read + Send + Sync>,
}

impl std::fmt::Debug for StreamSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamSource({})", self.name)
    }
}

/// What to back up and how.
#[derive(Debug)]
pub struct BackupOptions {
    /// Paths to back up (ignored with `stream`).
    pub paths: Vec<PathBuf>,
    /// A stream instead of paths.
    pub stream: Option<StreamSource>,
    /// Service the snapshot belongs to.
    pub service: Option<String>,
    /// Tenant the snapshot belongs to.
    pub tenant: Option<String>,
    /// Tags of the snapshot (`pre-change`, a ticket reference, …): filters and `keep_tags` use them.
    pub tags: Vec<String>,
    /// Exclude globs.
    pub excludes: Vec<String>,
    /// The other exclusion rules (case-insensitive globs, marker files,
    /// caches, size, one file system); its `patterns` add to `excludes`.
    pub exclude: crate::source::ExcludeOptions,
    /// The host to record (default: this one's name).
    pub host: Option<String>,
    /// Parent snapshot (ID or prefix); by default the latest of the same service
    /// (or the same paths and host).
    pub parent: Option<String>,
    /// Read every file, ignoring the parent.
    pub force: bool,
    /// Time to record (imports, tests); now by default.
    pub time: Option<jiff::Timestamp>,
    /// zstd level.
    pub compression_level: i32,
    /// CPU workers (0: one per core).
    pub workers: usize,
    /// Progress display.
    pub progress: Progress,
    /// Set from elsewhere (a job timeout, daemon shutdown) to stop the backup
    /// at the next file or chunk; no snapshot is written then.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            paths: Vec::new(),
            stream: None,
            service: None,
            tenant: None,
            tags: Vec::new(),
            excludes: Vec::new(),
            exclude: Default::default(),
            host: None,
            parent: None,
            force: false,
            time: None,
            compression_level: 3,
            workers: 0,
            progress: Progress::hidden(),
            cancel: None,
        }
    }
}

/// The outcome of a backup.
#[derive(Debug)]
pub struct BackupResult {
    /// The new snapshot.
    pub id: SnapshotId,
    /// Its manifest (summary included).
    pub snapshot: Snapshot,
}

/// What `custos backup --json` prints: the new snapshot and its counts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupReport {
    /// The new snapshot's ID.
    pub id: SnapshotId,
    /// Its first 8 hex characters.
    pub short_id: String,
    /// The snapshot's time (RFC 3339).
    pub time: String,
    /// Files in the snapshot.
    pub files: u64,
    /// Directories in the snapshot.
    pub dirs: u64,
    /// Files read (new or changed).
    pub files_read: u64,
    /// Files taken from the parent snapshot unread.
    pub files_unchanged: u64,
    /// Bytes of all files in the snapshot.
    pub total_bytes: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Bytes stored (compressed and encrypted) for new blobs.
    pub bytes_added: u64,
    /// Plain bytes of the new blobs.
    pub bytes_added_raw: u64,
    /// New blobs.
    pub blobs_added: u64,
    /// Seconds the backup took.
    pub duration: f64,
    /// Entries that could not be read and are missing from the snapshot.
    pub errors: Vec<SkippedEntry>,
}

impl BackupResult {
    /// The report of this backup.
    pub fn report(&self) -> BackupReport {
        let s = &self.snapshot.summary;
        BackupReport {
            id: self.id,
            short_id: self.id.short(),
            time: self.snapshot.time.clone(),
            files: s.files,
            dirs: s.dirs,
            files_read: s.files_read,
            files_unchanged: s.files_unchanged,
            total_bytes: s.total_bytes,
            bytes_read: s.bytes_read,
            bytes_added: s.bytes_added,
            bytes_added_raw: s.bytes_added_raw,
            blobs_added: s.blobs_added,
            duration: s.duration_secs,
            errors: s.errors.clone(),
        }
    }
}

#[derive(Default)]
struct Stats {
    files: AtomicU64,
    dirs: AtomicU64,
    files_read: AtomicU64,
    files_unchanged: AtomicU64,
    total_bytes: AtomicU64,
    bytes_read: AtomicU64,
    bytes_added_raw: AtomicU64,
    bytes_added: AtomicU64,
    blobs_added: AtomicU64,
    cancel: Option<Arc<AtomicBool>>,
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

impl Stats {
    /// A new blob of `raw_len` plain bytes stored as `payload_len` bytes
    /// (compressed or not) plus its tag.
    fn blob_added(&self, raw_len: usize, payload_len: usize) {
        add(&self.bytes_added_raw, raw_len as u64);
        add(
            &self.bytes_added,
            (payload_len + crate::crypto::TAG_LEN) as u64,
        );
        add(&self.blobs_added, 1);
    }

    /// A file read whole or as a stream, `size` bytes.
    fn file_read(&self, size: u64, progress: &Progress) {
        add(&self.files_read, 1);
        add(&self.total_bytes, size);
        progress.file_done();
    }
}

/// Runs a backup and writes its snapshot.
///
/// Unreadable entries are skipped with a warning and listed in the snapshot's
/// summary (`summary.errors`); the caller decides the exit code.
///
/// # Errors
/// [`Error::Usage`] for bad paths or options, [`Error::Locked`], backend and
/// cache errors. On error no snapshot is written.
pub async fn backup(repo: &IndexedRepository, mut opts: BackupOptions) -> Result<BackupResult> {
    let start = Instant::now();
    let excludes = {
        let mut rules = opts.exclude.clone();
        rules.patterns.extend(opts.excludes.iter().cloned());
        Excludes::from_options(&rules)?
    };
    let paths = if opts.stream.is_some() {
        Vec::new()
    } else {
        normalize_paths(&opts.paths)?
    };
    let lock = Lock::acquire(repo.backend(), LockKind::Shared, "backup").await?;
    // Re-read the index under the lock: a prune that finished before the lock
    // was taken may have retired packs, which must not be deduplicated against.
    let result = match repo.refresh_index().await {
        Ok(()) => run(repo, &mut opts, &paths, &excludes, start, &lock).await,
        Err(e) => Err(e),
    };
    let released = lock.release().await;
    let r = result?;
    released?;
    Ok(r)
}

fn normalize_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(Error::Usage(
            "nothing to back up: give at least one path, or --stdin".into(),
        ));
    }
    let mut out = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(crate::error::at("cannot resolve", p))?;
        let mut norm = PathBuf::from("/");
        for c in abs.components() {
            match c {
                Component::Normal(n) => norm.push(n),
                Component::ParentDir => {
                    norm.pop();
                }
                _ => {}
            }
        }
        if std::fs::symlink_metadata(&norm).is_err() {
            return Err(Error::Usage(format!(
                "cannot back up {}: no such file or directory",
                p.display()
            )));
        }
        out.push(norm);
    }
    out.sort();
    out.dedup();
    for w in out.windows(2) {
        if w[1].starts_with(&w[0]) {
            return Err(Error::Usage(format!(
                "paths overlap: {} is inside {}",
                w[1].display(),
                w[0].display()
            )));
        }
    }
    Ok(out)
}

async fn find_parent(
    repo: &IndexedRepository,
    opts: &BackupOptions,
    paths: &[String],
) -> Result<Option<(SnapshotId, Tree)>> {
    if opts.force {
        return Ok(None);
    }
    let (snaps, _) = repo.snapshots().await?;
    let host = opts.host.clone().unwrap_or_else(crate::util::hostname);
    let chosen = match &opts.parent {
        Some(spec) => Some(select_snapshot(&snaps, spec, |_| true)?),
        None => snaps.iter().rev().find(|(_, s)| {
            s.tenant == opts.tenant
                && match &opts.service {
                    Some(svc) => s.service.as_ref() == Some(svc),
                    None => s.service.is_none() && s.paths == paths && s.hostname == host,
                }
        }),
    };
    let Some((id, snap)) = chosen else {
        return Ok(None);
    };
    match repo.read_tree(&snap.tree).await {
        Ok(t) => Ok(Some((*id, t))),
        Err(e) => {
            tracing::warn!(parent = %id, error = %e, "cannot read the parent snapshot's tree: reading every file");
            Ok(None)
        }
    }
}

async fn run(
    repo: &IndexedRepository,
    opts: &mut BackupOptions,
    paths: &[PathBuf],
    excludes: &Excludes,
    start: Instant,
    lock: &Lock,
) -> Result<BackupResult> {
    let path_strings: Vec<String> = match &opts.stream {
        Some(s) => vec![format!("/{}", s.name)],
        None => paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
    };
    if let Some(s) = &opts.stream {
        if s.name.is_empty() || s.name.contains('/') || s.name == "." || s.name == ".." {
            return Err(Error::Usage(format!(
                "invalid --stdin-name {:?}: a plain file name is needed",
                s.name
            )));
        }
    }
    let parent = find_parent(repo, opts, &path_strings).await?;
    let workers = if opts.workers == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        opts.workers
    };
    let stats = Stats {
        cancel: opts.cancel.clone(),
        ..Stats::default()
    };
    let stream = opts.stream.take();
    let progress = opts.progress.clone();
    let handle = Handle::current();
    let level = opts.compression_level;

    // The walk, the workers and the uploader are threads of their own;
    // this task only waits for them, so the runtime (of either flavour)
    // keeps driving the uploads' I/O meanwhile.
    let owned = (
        repo.clone(),
        paths.to_vec(),
        excludes.clone(),
        parent.as_ref().map(|(_, t)| t.clone()),
        progress.clone(),
    );
    let (walked, stats) = tokio::task::spawn_blocking(move || {
        let (repo, paths, excludes, parent_tree, progress) = owned;
        let walked = pipeline(
            &repo,
            &handle,
            workers,
            level,
            &stats,
            &progress,
            |walker| {
                if let Some(s) = stream {
                    walker.stream_root(s)
                } else {
                    // Totals only matter to a bar someone sees: no second walk
                    // of the tree otherwise.
                    if progress.is_shown() {
                        let total_paths = paths.clone();
                        let p = progress.clone();
                        let ex = excludes.clone();
                        std::thread::spawn(move || scan_totals(&total_paths, &ex, &p));
                    }
                    walker.paths_root(&paths, parent_tree.as_ref(), &excludes)
                }
            },
        );
        (walked, stats)
    })
    .await
    .map_err(|e| Error::Internal(format!("the backup's threads stopped: {e}")))?;
    let (root, errors, index_ids) = walked?;
    progress.finish();

    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let snapshot = Snapshot {
        time: opts.time.unwrap_or_else(jiff::Timestamp::now).to_string(),
        tree: root,
        paths: path_strings,
        hostname: opts.host.clone().unwrap_or_else(crate::util::hostname),
        username: crate::util::username(),
        service: opts.service.clone(),
        tenant: opts.tenant.clone(),
        tags: opts.tags.clone(),
        parent: parent.map(|(id, _)| id),
        stream: opts.stream.is_some() || paths.is_empty(),
        original: None,
        index: index_ids.clone(),
        program: format!("custos {}", env!("CARGO_PKG_VERSION")),
        summary: Summary {
            files: ld(&stats.files),
            dirs: ld(&stats.dirs),
            files_read: ld(&stats.files_read),
            files_unchanged: ld(&stats.files_unchanged),
            total_bytes: ld(&stats.total_bytes),
            bytes_read: ld(&stats.bytes_read),
            bytes_added_raw: ld(&stats.bytes_added_raw),
            bytes_added: ld(&stats.bytes_added),
            blobs_added: ld(&stats.blobs_added),
            duration_secs: start.elapsed().as_secs_f64(),
            errors,
        },
    };
    tracing::debug!(indexes = index_ids.len(), "backup data stored");
    // A prune may only retire packs we deduplicated against if our lock
    // lapsed; then the snapshot must not be written.
    lock.ensure_held().await?;
    let id = repo.save_snapshot(&snapshot).await?;
    Ok(BackupResult { id, snapshot })
}

/// Counts files and bytes alongside the backup so the progress bar has a total.
fn scan_totals(paths: &[PathBuf], excludes: &Excludes, progress: &Progress) {
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| !excludes.matches(p)),
                );
            }
        } else if md.is_file() {
            progress.add_total(1, md.len());
        }
    }
}

#[cfg(test)]
mod tests;
