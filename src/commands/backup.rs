//! `custos backup`: the backup pipeline.
//!
//! ```text
//!  walker thread                      CPU workers (one per core)        uploader thread
//!  ─────────────                      ──────────────────────────        ───────────────
//!  walk, lstat, excludes              compress (zstd)                   upload packs, a few at
//!  unchanged files → parent's chunks  encrypt into the worker's pack    once, with retries
//!  read → FastCDC → keyed BLAKE3  ──▶ full pack ───────────────────▶    index objects
//!  dedup (index + this run)           (bounded channel)                 (bounded channel)
//!  tree blobs → tree packs ─────────────────────────────────────────▶
//! ```
//!
//! Channels are bounded, so memory is bounded by two chunks per worker, one open
//! pack per worker plus one, and the finished packs waiting for upload, whatever
//! the size of the source. The snapshot is written only after every pack and index object it
//! references is stored.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use tokio::runtime::Handle;

use crate::blob::{compress, Packer};
use crate::chunker::Chunker;
use crate::id::{BlobId, IndexId, SnapshotId};
use crate::progress::Progress;
use crate::repofile::index::{IndexBlob, IndexFile, IndexPack};
use crate::repofile::pack::{BlobKind, FinishedPack};
use crate::repofile::snapshot::{SkippedEntry, Snapshot, Summary};
use crate::repofile::tree::{Node, NodeKind, Tree};
use crate::repository::{
    lock::{Lock, LockKind},
    pack_path, select_snapshot, IndexedRepository,
};
use crate::source::{node_from_metadata, unchanged, Excludes};
use crate::{Error, Result};

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

struct Job {
    kind: BlobKind,
    id: BlobId,
    data: Vec<u8>,
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
    let excludes = Excludes::new(&opts.excludes)?;
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
    let host = crate::util::hostname();
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
        hostname: crate::util::hostname(),
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

type Walked = (BlobId, Vec<SkippedEntry>, Vec<IndexId>);

/// Sets up workers and the uploader, runs `walk` on its own thread, and waits
/// for everything to be stored.
fn pipeline<F>(
    repo: &IndexedRepository,
    handle: &Handle,
    workers: usize,
    level: i32,
    stats: &Stats,
    progress: &Progress,
    walk: F,
) -> Result<Walked>
where
    F: FnOnce(&mut Walker<'_>) -> Result<BlobId> + Send,
{
    let (job_tx, job_rx) = crossbeam_channel::bounded::<Job>(workers * 2);
    let (pack_tx, pack_rx) = tokio::sync::mpsc::channel::<FinishedPack>(1);
    let abort = AtomicBool::new(false);
    let session: Mutex<HashSet<BlobId>> = Mutex::new(HashSet::new());
    let pack_target = repo.config().pack_size as usize;

    std::thread::scope(|s| {
        let uploader = s.spawn(|| handle.block_on(upload_loop(repo, pack_rx)));
        let mut worker_handles = Vec::new();
        for _ in 0..workers {
            let rx = job_rx.clone();
            let tx = pack_tx.clone();
            let abort = &abort;
            let keys = repo.keys().clone();
            worker_handles.push(s.spawn(move || -> Result<()> {
                let mut compressor = zstd::bulk::Compressor::new(level)
                    .map_err(|e| Error::Usage(format!("invalid compression level {level}: {e}")))?;
                let mut packer = Packer::new(keys, pack_target);
                for job in rx.iter() {
                    let raw_len = job.data.len() as u32;
                    let (comp, compressed) = compress(&mut compressor, &job.data);
                    let payload = compressed.as_deref().unwrap_or(&job.data);
                    add(&stats.bytes_added_raw, u64::from(raw_len));
                    add(
                        &stats.bytes_added,
                        (payload.len() + crate::crypto::TAG_LEN) as u64,
                    );
                    add(&stats.blobs_added, 1);
                    if let Some(p) = packer.add(job.kind, job.id, comp, payload, raw_len) {
                        if tx.blocking_send(p).is_err() {
                            abort.store(true, Ordering::Relaxed);
                            return Ok(());
                        }
                    }
                }
                if let Some(p) = packer.flush() {
                    if tx.blocking_send(p).is_err() {
                        abort.store(true, Ordering::Relaxed);
                    }
                }
                Ok(())
            }));
        }
        drop(job_rx);

        let walked = {
            let mut walker = Walker {
                repo,
                handle,
                chunker: Chunker::new(repo.config().chunker, repo.keys().chunker_seed()),
                jobs: Some(job_tx),
                tree_packer: Packer::new(repo.keys().clone(), pack_target),
                packs: pack_tx.clone(),
                session: &session,
                stats,
                progress,
                errors: Vec::new(),
                hardlinks: HashMap::new(),
                abort: &abort,
                compressor: zstd::bulk::Compressor::new(level).ok(),
                excludes: None,
            };
            let r = walk(&mut walker);
            // Closing the job channel lets the workers flush their last packs.
            walker.jobs = None;
            let flushed = walker.flush_trees();
            (
                r.and_then(|root| flushed.map(|()| root)),
                std::mem::take(&mut walker.errors),
            )
        };
        drop(pack_tx);
        let mut worker_err = None;
        for h in worker_handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => worker_err = Some(e),
                Err(_) => {
                    worker_err = Some(Error::Internal("a backup worker thread panicked".into()))
                }
            }
        }
        let uploaded = uploader
            .join()
            .map_err(|_| Error::Internal("the upload thread panicked".into()))?;
        // Report the root cause: an upload failure makes the walker fail too.
        let index_ids = uploaded?;
        if let Some(e) = worker_err {
            return Err(e);
        }
        let (root, errors) = walked;
        Ok((root?, errors, index_ids))
    })
}

/// Uploads finished packs a few at a time and writes index objects for them.
async fn upload_loop(
    repo: &IndexedRepository,
    rx: tokio::sync::mpsc::Receiver<FinishedPack>,
) -> Result<Vec<IndexId>> {
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) });
    let uploads = stream
        .map(|p| async move {
            let size = p.bytes.len() as u64;
            repo.backend()
                .put(&pack_path(&p.id), Bytes::from(p.bytes))
                .await?;
            Ok::<_, Error>(IndexPack {
                id: p.id,
                size,
                blobs: p.entries.iter().map(IndexBlob::from).collect(),
            })
        })
        .buffer_unordered(UPLOAD_CONCURRENCY);
    let mut uploads = std::pin::pin!(uploads);
    let mut pending = IndexFile::default();
    let mut written = Vec::new();
    while let Some(r) = uploads.next().await {
        pending.packs.push(r?);
        if pending.blob_count() >= crate::repository::INDEX_OBJECT_BLOBS {
            written.push(write_index(repo, std::mem::take(&mut pending)).await?);
        }
    }
    if !pending.packs.is_empty() {
        written.push(write_index(repo, pending).await?);
    }
    Ok(written)
}

async fn write_index(repo: &IndexedRepository, file: IndexFile) -> Result<IndexId> {
    let id = repo.save_index(&file).await?;
    repo.index().add_index(id, &file)?;
    repo.index().flush()?;
    Ok(id)
}

/// A directory being assembled for the snapshot root (ancestors of the paths).
#[derive(Default)]
struct VirtualDir {
    node: Option<Node>,
    children: BTreeMap<Vec<u8>, VirtualEntry>,
}

enum VirtualEntry {
    Done(Node),
    Dir(VirtualDir),
}

/// The walking end of the pipeline (runs on its own thread).
pub(crate) struct Walker<'a> {
    repo: &'a IndexedRepository,
    handle: &'a Handle,
    chunker: Chunker,
    jobs: Option<crossbeam_channel::Sender<Job>>,
    tree_packer: Packer,
    packs: tokio::sync::mpsc::Sender<FinishedPack>,
    session: &'a Mutex<HashSet<BlobId>>,
    stats: &'a Stats,
    progress: &'a Progress,
    errors: Vec<SkippedEntry>,
    hardlinks: HashMap<(u64, u64), (u64, Vec<BlobId>)>,
    abort: &'a AtomicBool,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    excludes: Option<Excludes>,
}

impl Walker<'_> {
    fn check_abort(&self) -> Result<()> {
        if self
            .stats
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(Error::Cancelled(
                "backup cancelled (job timeout or daemon shutdown): no snapshot written".into(),
            ));
        }
        if self.abort.load(Ordering::Relaxed) {
            Err(Error::Problems(
                "backup aborted: storing data failed".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// True when the blob is stored neither in the repository nor in this run.
    fn is_new(&self, id: &BlobId) -> Result<bool> {
        if self.repo.index().contains(id)? {
            return Ok(false);
        }
        let mut s = self
            .session
            .lock()
            .map_err(|_| Error::Internal("dedup set poisoned".into()))?;
        Ok(s.insert(*id))
    }

    fn skip(&mut self, path: &Path, error: impl std::fmt::Display) {
        let msg = format!("warning: skipping {}: {error}", path.display());
        tracing::warn!("{msg}");
        self.progress.println(&msg);
        self.errors.push(SkippedEntry {
            path: path.to_string_lossy().into_owned(),
            error: error.to_string(),
        });
    }

    /// Reads, chunks and queues one stream; returns its chunk list and size.
    fn store_stream(
        &mut self,
        mut reader: impl Read,
    ) -> Result<std::result::Result<(Vec<BlobId>, u64), std::io::Error>> {
        let mut content = Vec::new();
        let mut size = 0u64;
        let keys = self.repo.keys().clone();
        for chunk in self.chunker.chunks(&mut reader) {
            self.check_abort()?;
            let data = match chunk {
                Ok(d) => d,
                Err(e) => return Ok(Err(e)),
            };
            let id = keys.blob_id(&data);
            let n = data.len() as u64;
            size += n;
            add(&self.stats.bytes_read, n);
            self.progress.add_bytes(n);
            if self.is_new(&id)? {
                let tx = self
                    .jobs
                    .as_ref()
                    .ok_or_else(|| Error::Problems("pipeline closed".into()))?;
                tx.send(Job {
                    kind: BlobKind::Data,
                    id,
                    data,
                })
                .map_err(|_| Error::Problems("backup aborted: workers stopped".into()))?;
            }
            content.push(id);
        }
        Ok(Ok((content, size)))
    }

    /// Reads a file of known, modest size whole and cuts it in memory.
    fn store_small_file(
        &mut self,
        mut file: std::fs::File,
        size_hint: u64,
    ) -> Result<std::result::Result<(Vec<BlobId>, u64), std::io::Error>> {
        let mut data = Vec::with_capacity(size_hint as usize + 1);
        if let Err(e) = file.read_to_end(&mut data) {
            return Ok(Err(e));
        }
        let n = data.len() as u64;
        add(&self.stats.bytes_read, n);
        self.progress.add_bytes(n);
        let cuts: Vec<(usize, usize)> = self.chunker.cuts(&data).collect();
        let mut content = Vec::with_capacity(cuts.len());
        let single = cuts.len() == 1;
        for (off, len) in cuts {
            self.check_abort()?;
            let id = self.repo.keys().blob_id(&data[off..off + len]);
            if self.is_new(&id)? {
                // A one-chunk file hands its buffer over without a copy.
                let chunk = if single {
                    std::mem::take(&mut data)
                } else {
                    data[off..off + len].to_vec()
                };
                let tx = self
                    .jobs
                    .as_ref()
                    .ok_or_else(|| Error::Problems("pipeline closed".into()))?;
                tx.send(Job {
                    kind: BlobKind::Data,
                    id,
                    data: chunk,
                })
                .map_err(|_| Error::Problems("backup aborted: workers stopped".into()))?;
            }
            content.push(id);
        }
        Ok(Ok((content, n)))
    }

    /// Stores a tree blob (compressed and encrypted here: trees are small).
    fn store_tree(&mut self, tree: &Tree) -> Result<BlobId> {
        let data = tree.encode();
        let id = self.repo.keys().blob_id(&data);
        if self.is_new(&id)? {
            let (comp, compressed) = match self.compressor.as_mut() {
                Some(c) => compress(c, &data),
                None => (crate::repofile::pack::Compression::Raw, None),
            };
            let payload = compressed.as_deref().unwrap_or(&data);
            add(&self.stats.bytes_added_raw, data.len() as u64);
            add(
                &self.stats.bytes_added,
                (payload.len() + crate::crypto::TAG_LEN) as u64,
            );
            add(&self.stats.blobs_added, 1);
            if let Some(p) =
                self.tree_packer
                    .add(BlobKind::Tree, id, comp, payload, data.len() as u32)
            {
                self.send_pack(p)?;
            }
        }
        Ok(id)
    }

    fn send_pack(&self, p: FinishedPack) -> Result<()> {
        self.packs
            .blocking_send(p)
            .map_err(|_| Error::Problems("backup aborted: the uploader stopped".into()))
    }

    fn flush_trees(&mut self) -> Result<()> {
        if let Some(p) = self.tree_packer.flush() {
            self.send_pack(p)?;
        }
        Ok(())
    }

    fn read_old_tree(&self, node: Option<&Node>) -> Option<Tree> {
        let id = node.filter(|n| n.kind == NodeKind::Dir)?.subtree?;
        match self.handle.block_on(self.repo.read_tree(&id)) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(tree = %id, error = %e, "cannot read a parent tree: reading its files");
                None
            }
        }
    }

    /// Backs up one entry; `None` when it was skipped.
    fn entry(&mut self, path: &Path, name: &OsStr, old: Option<&Node>) -> Result<Option<Node>> {
        self.check_abort()?;
        let md = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.skip(path, e);
                return Ok(None);
            }
        };
        let mut node = node_from_metadata(name, path, &md);
        match node.kind {
            NodeKind::File => {
                add(&self.stats.files, 1);
                let reusable = reusable_content(&node, old, |id| {
                    self.repo.index().contains(id).unwrap_or(false)
                });
                let link_key = (node.device, node.inode);
                if let Some(content) = reusable {
                    node.content = content;
                    add(&self.stats.files_unchanged, 1);
                    self.progress.add_bytes(node.size);
                } else if let Some((size, content)) =
                    self.hardlinks.get(&link_key).filter(|_| node.links > 1)
                {
                    node.content = content.clone();
                    node.size = *size;
                } else {
                    let file = match std::fs::File::open(path) {
                        Ok(f) => f,
                        Err(e) => {
                            self.skip(path, e);
                            return Ok(None);
                        }
                    };
                    let stored = if node.size <= self.chunker.whole_file_limit() {
                        self.store_small_file(file, node.size)?
                    } else {
                        self.store_stream(std::io::BufReader::with_capacity(1 << 20, file))?
                    };
                    match stored {
                        Ok((content, size)) => {
                            node.content = content;
                            node.size = size;
                        }
                        Err(e) => {
                            self.skip(path, e);
                            return Ok(None);
                        }
                    }
                    add(&self.stats.files_read, 1);
                    if node.links > 1 {
                        self.hardlinks
                            .insert(link_key, (node.size, node.content.clone()));
                    }
                }
                add(&self.stats.total_bytes, node.size);
                self.progress.file_done();
            }
            NodeKind::Dir => {
                add(&self.stats.dirs, 1);
                let old_tree = self.read_old_tree(old);
                node.subtree = Some(self.walk_dir(path, old_tree.as_ref())?);
            }
            _ => {}
        }
        Ok(Some(node))
    }

    fn walk_dir(&mut self, path: &Path, old: Option<&Tree>) -> Result<BlobId> {
        let mut names: Vec<_> = match std::fs::read_dir(path) {
            Ok(rd) => {
                let mut v = Vec::new();
                for e in rd {
                    match e {
                        Ok(e) => v.push(e.file_name()),
                        Err(e) => self.skip(path, e),
                    }
                }
                v
            }
            Err(e) => {
                self.skip(path, e);
                Vec::new()
            }
        };
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut tree = Tree::default();
        for name in names {
            let child = path.join(&name);
            if self.excludes.as_ref().is_some_and(|e| e.matches(&child)) {
                continue;
            }
            let old_node = old.and_then(|t| t.find(name.as_bytes()));
            if let Some(n) = self.entry(&child, &name, old_node)? {
                tree.nodes.push(n);
            }
        }
        self.store_tree(&tree)
    }

    /// Root for a stream: one file in the root directory.
    fn stream_root(&mut self, s: StreamSource) -> Result<BlobId> {
        let (content, size) = match self.store_stream(s.reader)? {
            Ok(r) => r,
            Err(e) => {
                return Err(Error::io(
                    format!("cannot read the stream for {}", s.name),
                    e,
                ))
            }
        };
        add(&self.stats.files, 1);
        add(&self.stats.files_read, 1);
        add(&self.stats.total_bytes, size);
        // SAFETY: getuid/getgid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let now = jiff::Timestamp::now().as_nanosecond() as i64;
        let node = Node {
            name: s.name.into_bytes(),
            kind: NodeKind::File,
            mode: 0o100600,
            uid,
            gid,
            mtime_ns: now,
            ctime_ns: now,
            inode: 0,
            device: 0,
            links: 1,
            size,
            content,
            subtree: None,
            target: Vec::new(),
            rdev: 0,
            xattrs: Vec::new(),
        };
        self.store_tree(&Tree { nodes: vec![node] })
    }

    /// Root for paths: the paths with their ancestor directories.
    fn paths_root(
        &mut self,
        paths: &[PathBuf],
        parent: Option<&Tree>,
        excludes: &Excludes,
    ) -> Result<BlobId> {
        self.excludes = Some(excludes.clone());
        if paths.len() == 1 && paths[0] == Path::new("/") {
            return self.walk_dir(Path::new("/"), parent);
        }
        let mut root = VirtualDir::default();
        for p in paths {
            let comps: Vec<&OsStr> = p
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n),
                    _ => None,
                })
                .collect();
            let mut dir = &mut root;
            let mut cur = PathBuf::from("/");
            let mut old_tree = parent.cloned();
            for (i, name) in comps.iter().enumerate() {
                cur.push(name);
                let key = name.as_bytes().to_vec();
                let old_node = old_tree.as_ref().and_then(|t| t.find(&key)).cloned();
                if i + 1 == comps.len() {
                    if let Some(n) = self.entry(&cur, name, old_node.as_ref())? {
                        dir.children.insert(key, VirtualEntry::Done(n));
                    }
                    break;
                }
                old_tree = self.read_old_tree(old_node.as_ref());
                let entry = dir.children.entry(key).or_insert_with(|| {
                    let node = std::fs::symlink_metadata(&cur)
                        .ok()
                        .map(|md| node_from_metadata(name, &cur, &md));
                    VirtualEntry::Dir(VirtualDir {
                        node,
                        children: BTreeMap::new(),
                    })
                });
                dir = match entry {
                    VirtualEntry::Dir(d) => d,
                    VirtualEntry::Done(_) => {
                        return Err(Error::Usage(format!("paths overlap at {}", cur.display())));
                    }
                };
            }
        }
        self.write_virtual(root)
    }

    fn write_virtual(&mut self, dir: VirtualDir) -> Result<BlobId> {
        let mut tree = Tree::default();
        for (name, entry) in dir.children {
            let node = match entry {
                VirtualEntry::Done(n) => n,
                VirtualEntry::Dir(d) => {
                    let mut node = d.node.clone().unwrap_or_else(|| synthetic_dir(&name));
                    node.kind = NodeKind::Dir;
                    node.subtree = Some(self.write_virtual(d)?);
                    node
                }
            };
            tree.nodes.push(node);
        }
        self.store_tree(&tree)
    }
}

/// The walker's decision for a file: its content from the parent snapshot
/// when the file is unchanged (same size, times and inode) and every chunk
/// of it is still stored; `None` means read it again.
fn reusable_content(
    node: &Node,
    old: Option<&Node>,
    stored: impl Fn(&BlobId) -> bool,
) -> Option<Vec<BlobId>> {
    old.filter(|o| unchanged(node, o))
        .map(|o| o.content.clone())
        .filter(|c| c.iter().all(&stored))
}

fn synthetic_dir(name: &[u8]) -> Node {
    Node {
        name: name.to_vec(),
        kind: NodeKind::Dir,
        mode: 0o40755,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
        ctime_ns: 0,
        inode: 0,
        device: 0,
        links: 1,
        size: 0,
        content: Vec::new(),
        subtree: None,
        target: Vec::new(),
        rdev: 0,
        xattrs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, mtime_ns: i64, content: Vec<BlobId>) -> Node {
        Node {
            kind: NodeKind::File,
            mode: 0o100644,
            size,
            mtime_ns,
            ctime_ns: mtime_ns,
            inode: 7,
            content,
            ..synthetic_dir(b"f")
        }
    }

    #[test]
    fn an_unchanged_file_reuses_its_chunks_only_while_they_are_stored() {
        let a = BlobId([1; 32]);
        let b = BlobId([2; 32]);
        let old = file(10, 100, vec![a, b]);
        let now = file(10, 100, Vec::new());
        assert_eq!(
            reusable_content(&now, Some(&old), |_| true),
            Some(vec![a, b])
        );
        // A chunk that prune removed (or a damaged index) means read again.
        assert_eq!(reusable_content(&now, Some(&old), |id| *id == a), None);
        // No parent, or a parent entry that is not this file as it was.
        assert_eq!(reusable_content(&now, None, |_| true), None);
        for changed in [
            file(11, 100, Vec::new()),
            file(10, 101, Vec::new()),
            Node {
                inode: 8,
                ..file(10, 100, Vec::new())
            },
        ] {
            assert_eq!(reusable_content(&changed, Some(&old), |_| true), None);
        }
        let dir = synthetic_dir(b"f");
        assert_eq!(reusable_content(&now, Some(&dir), |_| true), None);
        // A non-empty file recorded with no content is never trusted.
        assert_eq!(
            reusable_content(&now, Some(&file(10, 100, Vec::new())), |_| true),
            None
        );
        // An empty file has no chunks to reuse, and needs none.
        let empty = file(0, 5, Vec::new());
        assert_eq!(
            reusable_content(&empty, Some(&empty), |_| false),
            Some(vec![])
        );
    }

    #[test]
    fn paths_are_made_absolute_sorted_deduplicated_and_must_not_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir_all(a.join("inner")).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let got = normalize_paths(&[b.clone(), a.join("inner/.."), a.clone()]).unwrap();
        assert_eq!(got, [a.clone(), b.clone()]);
        let e = normalize_paths(&[a.clone(), a.join("inner")]).unwrap_err();
        assert!(e.to_string().contains("paths overlap"), "{e}");
        let e = normalize_paths(&[dir.path().join("missing")]).unwrap_err();
        assert!(e.to_string().contains("no such file"), "{e}");
        assert!(matches!(normalize_paths(&[]), Err(Error::Usage(_))));
    }

    /// The runtime a caller brings may have one thread: the backup must not
    /// need a second one to make progress.
    #[tokio::test(flavor = "current_thread")]
    async fn a_backup_runs_on_a_current_thread_runtime() {
        use crate::backend::Backend;
        use crate::crypto::keyslot::{KdfParams, Secret};
        use crate::repository::{InitOptions, Repository};
        let secret = Secret::Passphrase(zeroize::Zeroizing::new("one thread".into()));
        let opts = InitOptions {
            kdf: KdfParams {
                m_kib: 1024,
                t: 1,
                p: 1,
            },
            ..InitOptions::default()
        };
        let backend = Backend::open("memory://backup-current-thread", true).unwrap();
        let repo = Repository::init(backend, &secret, &opts, None)
            .await
            .unwrap()
            .load_index()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![7u8; 3 << 20]).unwrap();
        let r = backup(
            &repo,
            BackupOptions {
                paths: vec![dir.path().to_path_buf()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(r.snapshot.summary.files, 1);
        assert!(r.snapshot.summary.errors.is_empty());
    }
}
