//! The threads of a backup: the walker, one worker per core reading small
//! files, hashing, deduplicating, compressing and encrypting into packs, and
//! the uploader; bounded channels between.

use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::walker::Walker;
use super::*;
use crate::backend::StagedFile;
use crate::id::PackId;

pub(super) type Walked = (BlobId, Vec<SkippedEntry>, Vec<IndexId>);

/// Where a worker's result goes: a node of one of the walker's open
/// directories.
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub(super) dir: usize,
    pub(super) node: usize,
}

/// A file for a worker to read whole (it is at most
/// [`Chunker::whole_file_limit`] long).
pub(super) struct FileWork {
    pub(super) path: PathBuf,
    pub(super) size: u64,
    pub(super) slot: Slot,
}

/// What the walker hands to the workers.
pub(super) enum Work {
    /// A chunk of a large file the walker reads and cuts: its `index`th.
    Chunk {
        data: Vec<u8>,
        slot: Slot,
        index: usize,
        reply: Sender<Done>,
    },
    /// Small files, a few at a time, so that a hand-off between threads is
    /// not paid per file.
    Files {
        files: Vec<FileWork>,
        reply: Sender<Done>,
    },
}

/// A worker's answer for one [`Work`] item.
pub(super) struct Done {
    pub(super) slot: Slot,
    pub(super) outcome: Outcome,
}

pub(super) enum Outcome {
    /// The ID of a file's `index`th chunk.
    Chunk { index: usize, id: BlobId },
    /// A small file's chunks and size, or why it could not be read.
    File(std::io::Result<(Vec<BlobId>, u64)>),
}

/// The run's deduplication: the repository's index and the blobs on their
/// way into it.
pub(super) struct Dedup<'a> {
    repo: &'a IndexedRepository,
    session: Mutex<HashSet<BlobId>>,
}

impl Dedup<'_> {
    /// True when the blob is stored neither in the repository nor in this
    /// run, and claims it for the caller: of two threads meeting the same
    /// chunk, one stores it. The index is asked under the session's lock:
    /// the uploader moves blobs from the session to the index (index first),
    /// so a blob is always seen in one or the other.
    pub(super) fn is_new(&self, id: &BlobId) -> Result<bool> {
        let mut s = self
            .session
            .lock()
            .map_err(|_| Error::Internal("dedup set poisoned".into()))?;
        if s.contains(id) || self.repo.index().contains(id)? {
            return Ok(false);
        }
        Ok(s.insert(*id))
    }
}

/// How long the walker waits for a result before it looks whether the
/// backup was cancelled or a worker failed.
pub(super) const RESULT_POLL: Duration = Duration::from_millis(100);

/// Sets up workers and the uploader, runs `walk` on this thread, and waits
/// for everything to be stored.
pub(super) fn pipeline<F>(
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
    // Made before any thread starts: a failure here leaves none waiting.
    let contexts = (0..workers)
        .map(|_| Ok((compressor(level)?, compressor(level)?)))
        .collect::<Result<Vec<_>>>()?;
    let (job_tx, job_rx) = crossbeam_channel::bounded::<Work>(jobs_queued(workers));
    let direct = repo.backend().stages_locally();
    // Not on demand: a new directory's sync would stall the pack writer.
    repo.backend()
        .make_fanout(crate::repository::PACKS_FOLDER)?;
    let (pack_tx, pack_rx) = tokio::sync::mpsc::channel::<Sealed>(sealed_queued(direct));
    let sink = PackSink {
        repo,
        tx: pack_tx,
        direct,
    };
    let abort = AtomicBool::new(false);
    let dedup = Dedup {
        repo,
        session: Mutex::new(HashSet::new()),
    };
    // Buffers go round instead of being made anew (see `Buffers`).
    let buffers = Buffers::for_workers(workers);
    let chunker = Chunker::new(repo.config().chunker, repo.keys().chunker_seed());

    // One pack is filled at a time, by whichever worker has a blob ready:
    // a packer per worker kept a pack per core resident for nothing.
    // Copying a blob in and sealing it is quick beside compressing it.
    let packer = Mutex::new(Filling::new(repo, &sink));

    std::thread::scope(|s| {
        let uploader = s.spawn(|| handle.block_on(upload_loop(repo, pack_rx, &dedup.session)));
        let mut worker_handles = Vec::new();
        for (small, large) in contexts {
            let rx = job_rx.clone();
            let mut worker = Worker {
                keys: repo.keys(),
                chunker,
                dedup: &dedup,
                packer: &packer,
                packs: sink.clone(),
                buffers: &buffers,
                stats,
                progress,
                small,
                large,
                out: Vec::new(),
            };
            let abort = &abort;
            worker_handles.push(s.spawn(move || worker.run(&rx, abort)));
        }
        drop(job_rx);
        let (reply, results) = crossbeam_channel::unbounded();

        let walked = {
            let mut walker = Walker {
                repo,
                trees: TreeReader::new(repo.clone(), handle.clone()),
                buffers: &buffers,
                chunker,
                jobs: Some(job_tx),
                reply,
                results,
                files: Vec::new(),
                files_bytes: 0,
                dirs: Vec::new(),
                free_dirs: Vec::new(),
                tree_packer: Filling::new(repo, &sink),
                packs: sink.clone(),
                dedup: &dedup,
                stats,
                progress,
                errors: Vec::new(),
                hardlinks: HashMap::new(),
                abort: &abort,
                compressor: zstd::bulk::Compressor::new(level).ok(),
                excludes: None,
                root_device: None,
            };
            let r = walk(&mut walker);
            // Closing the job channel lets the workers stop.
            walker.jobs = None;
            let flushed = walker.flush_trees();
            (
                r.and_then(|root| flushed.map(|()| root)),
                std::mem::take(&mut walker.errors),
            )
        };
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
        // Every blob is in: the last pack goes.
        let last = lock_packer(&packer).flush();
        let stored_last = match last {
            Some(p) => sink.send(p),
            None => Ok(()),
        };
        drop(sink);
        let uploaded = uploader
            .join()
            .map_err(|_| Error::Internal("the upload thread panicked".into()))?;
        // Report the root cause: an upload failure makes the others fail too.
        let index_ids = uploaded?;
        if let Some(e) = worker_err {
            return Err(e);
        }
        stored_last?;
        let (root, errors) = walked;
        Ok((root?, errors, index_ids))
    })
}

fn compressor(level: i32) -> Result<zstd::bulk::Compressor<'static>> {
    zstd::bulk::Compressor::new(level)
        .map_err(|e| Error::Usage(format!("invalid compression level {level}: {e}")))
}

/// One CPU worker: reads the small files it is given, hashes every chunk,
/// and compresses and encrypts the new ones into the shared packer.
struct Worker<'a> {
    keys: &'a crate::crypto::Keys,
    chunker: Chunker,
    dedup: &'a Dedup<'a>,
    packer: &'a Mutex<Filling>,
    packs: PackSink<'a>,
    buffers: &'a Buffers,
    stats: &'a Stats,
    progress: &'a Progress,
    // zstd sizes its tables for the input and reallocates them when small
    // and large inputs alternate (each time mapped and faulted in anew):
    // small blobs get a context of their own.
    small: zstd::bulk::Compressor<'static>,
    large: zstd::bulk::Compressor<'static>,
    out: Vec<u8>,
}

/// Sets the abort flag if the worker's thread unwinds, so that the walker,
/// waiting for that worker's answers, stops instead of waiting for ever.
struct AbortOnPanic<'a>(&'a AtomicBool);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

impl Worker<'_> {
    /// Works until the walker closes the queue. After a failure (or another
    /// thread's) the rest of the queue is dropped unworked, so the walker is
    /// never left blocked on a full queue.
    fn run(&mut self, jobs: &Receiver<Work>, abort: &AtomicBool) -> Result<()> {
        let _guard = AbortOnPanic(abort);
        let mut failed = None;
        for work in jobs.iter() {
            if failed.is_some() || abort.load(Ordering::Relaxed) {
                continue;
            }
            if let Err(e) = self.work(work) {
                abort.store(true, Ordering::Relaxed);
                failed = Some(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    fn work(&mut self, work: Work) -> Result<()> {
        match work {
            Work::Chunk {
                data,
                slot,
                index,
                reply,
            } => {
                let id = self.store(&data)?;
                self.buffers.give_chunk(data);
                // A walker that is gone has failed, and says why itself.
                let _ = reply.send(Done {
                    slot,
                    outcome: Outcome::Chunk { index, id },
                });
            }
            Work::Files { files, reply } => {
                for f in files {
                    let outcome = Outcome::File(self.file(&f.path, f.size)?);
                    let _ = reply.send(Done {
                        slot: f.slot,
                        outcome,
                    });
                }
            }
        }
        Ok(())
    }

    /// Reads a file of known, modest size whole and stores its chunks.
    fn file(&mut self, path: &Path, size_hint: u64) -> Result<std::io::Result<(Vec<BlobId>, u64)>> {
        let mut data = self.buffers.chunk(size_hint as usize + 1);
        let read = crate::source::open_regular(path).and_then(|mut f| f.read_to_end(&mut data));
        if let Err(e) = read {
            self.buffers.give_chunk(data);
            return Ok(Err(e));
        }
        let n = data.len() as u64;
        add(&self.stats.bytes_read, n);
        self.progress.add_bytes(n);
        let chunker = self.chunker;
        let mut content = Vec::new();
        for (off, len) in chunker.cuts(&data) {
            content.push(self.store(&data[off..off + len])?);
        }
        self.buffers.give_chunk(data);
        Ok(Ok((content, n)))
    }

    /// Hashes a chunk and, unless it is stored already, compresses,
    /// encrypts and packs it.
    fn store(&mut self, data: &[u8]) -> Result<BlobId> {
        let id = self.keys.blob_id(data);
        if !self.dedup.is_new(&id)? {
            return Ok(id);
        }
        let raw_len = data.len() as u32;
        let compressor = if data.len() < SMALL_INPUT {
            &mut self.small
        } else {
            &mut self.large
        };
        // Room for a pooled chunk's output, made once rather than grown
        // chunk by chunk; a larger one is not kept.
        let out_room = zstd::zstd_safe::compress_bound(POOLED_CHUNK_MAX);
        if self.out.capacity() < out_room && data.len() >= SMALL_INPUT {
            self.out.reserve(out_room);
        }
        let comp = compress_into(compressor, data, &mut self.out);
        let payload = match comp {
            Compression::Zstd => &self.out[..],
            Compression::Raw => data,
        };
        self.stats.blob_added(data.len(), payload.len());
        let finished = lock_packer(self.packer).add(
            &self.packs,
            BlobKind::Data,
            id,
            comp,
            payload,
            raw_len,
        )?;
        // A whole file's worth is not kept resident for the rest.
        if self.out.capacity() > out_room {
            self.out = Vec::new();
        }
        if let Some(p) = finished {
            self.packs.send(p)?;
        }
        Ok(id)
    }
}

/// A sealed pack on its way to the uploader: the pack itself, or for a
/// local repository what it holds and its staged file, written in full,
/// for the uploader to publish (sync and rename into place).
pub(super) enum Sealed {
    Pack(FinishedPack),
    Staged(IndexPack, StagedFile),
}

/// Sealed packs queued for the uploader. A store's hold the whole pack
/// (16 MiB): one. A local repository's are files written already, each
/// only an open file: a few, so that the workers go on filling the next
/// packs while the uploader syncs (about 10 ms a pack here; on a worker's
/// thread, 1.8 s of a 6.8 s first backup of the mixed corpus were spent
/// waiting in fsync while a core idled).
fn sealed_queued(direct: bool) -> usize {
    if direct {
        8
    } else {
        1
    }
}

/// How many bytes of a local repository's pack are held before they are
/// written to its staged file: a pack is 16 MiB, and held whole it was
/// that much more resident and that much memory mapped anew per pack.
const SPILL: usize = 1 << 20;

/// A pack being filled and, for a local repository, the staged file its
/// first part is already written to.
pub(super) struct Filling {
    packer: Packer,
    staged: Option<StagedFile>,
}

/// A sealed pack and the staged file holding its first part, if any.
pub(super) struct Ready {
    pack: FinishedPack,
    staged: Option<StagedFile>,
}

impl Filling {
    pub(super) fn new(repo: &IndexedRepository, sink: &PackSink<'_>) -> Filling {
        let keys = repo.keys().clone();
        let target = repo.config().pack_size as usize;
        Filling {
            packer: if sink.direct {
                Packer::spilling(keys, target, 2 * SPILL)
            } else {
                Packer::new(keys, target)
            },
            staged: None,
        }
    }

    /// Adds a blob; returns the pack it sealed, if it sealed one, for
    /// [`PackSink::send`] (outside any lock: it writes the pack's rest). For a local
    /// repository, what the pack being filled holds beyond [`SPILL`] is
    /// written to its staged file here.
    pub(super) fn add(
        &mut self,
        sink: &PackSink<'_>,
        kind: BlobKind,
        id: BlobId,
        compression: Compression,
        payload: &[u8],
        raw_len: u32,
    ) -> Result<Option<Ready>> {
        let ready = self
            .packer
            .add(kind, id, compression, payload, raw_len)
            .map(|pack| Ready {
                pack,
                staged: self.staged.take(),
            });
        if sink.direct {
            let staged = &mut self.staged;
            self.packer.spill(SPILL, |pack, bytes| {
                let file = match staged {
                    Some(f) => f,
                    None => staged.insert(sink.stage(pack)?),
                };
                file.write_all(bytes)
            })?;
        }
        Ok(ready)
    }

    /// Seals the pack in progress, if any.
    pub(super) fn flush(&mut self) -> Option<Ready> {
        self.packer.flush().map(|pack| Ready {
            pack,
            staged: self.staged.take(),
        })
    }
}

/// Where the workers and the walker put sealed packs.
///
/// A local repository's pack is written by the threads that fill it, a
/// part at a time as it fills (see [`Filling`]), finished by the one that
/// sealed it, and published (synced, renamed into place) by the uploader
/// (see [`sealed_queued`]). Held whole and queued for an uploader,
/// a pack waiting behind the one being written and another held by a
/// worker blocked on the full queue were each up to 18 MiB more resident
/// (the mixed corpus's first backup peaked at 130–141 MiB that way,
/// 110–117 written at once). A store's packs go whole to the uploader,
/// which keeps a few in flight to hide its latency.
#[derive(Clone)]
pub(super) struct PackSink<'a> {
    repo: &'a IndexedRepository,
    tx: tokio::sync::mpsc::Sender<Sealed>,
    direct: bool,
}

impl PackSink<'_> {
    /// A staged file for pack `id` of a local repository.
    fn stage(&self, id: &PackId) -> Result<StagedFile> {
        self.repo.backend().stage(&pack_path(id))?.ok_or_else(|| {
            Error::Internal("a pack was staged for a repository that is not local".into())
        })
    }

    pub(super) fn send(&self, ready: Ready) -> Result<()> {
        let Ready { pack, staged } = ready;
        let sealed = if self.direct {
            let stored = IndexPack::from(&pack);
            let mut file = match staged {
                Some(f) => f,
                None => self.stage(&pack.id)?,
            };
            file.write_all(&pack.bytes)?;
            drop(pack);
            Sealed::Staged(stored, file)
        } else {
            Sealed::Pack(pack)
        };
        self.tx
            .blocking_send(sealed)
            .map_err(|_| Error::Problems("backup aborted: the uploader stopped".into()))
    }
}

/// Uploads finished packs a few at a time and writes index objects for them.
/// Blobs in a written index object are in the blob index from then on, so
/// they leave `session`: the run's own dedup set holds only what is on its
/// way, not every blob of the backup.
pub(super) async fn upload_loop(
    repo: &IndexedRepository,
    rx: tokio::sync::mpsc::Receiver<Sealed>,
    session: &Mutex<HashSet<BlobId>>,
) -> Result<Vec<IndexId>> {
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) });
    let uploads = stream
        .map(|sealed| async move {
            match sealed {
                Sealed::Staged(stored, file) => {
                    tokio::task::spawn_blocking(move || file.publish())
                        .await
                        .map_err(|e| Error::Internal(format!("publishing a pack failed: {e}")))??;
                    Ok(stored)
                }
                Sealed::Pack(p) => repo.put_pack(p).await,
            }
        })
        .buffer_unordered(upload_concurrency(repo));
    let mut uploads = std::pin::pin!(uploads);
    let mut pending = IndexFile::default();
    let mut written = Vec::new();
    while let Some(r) = uploads.next().await {
        pending.packs.push(r?);
        if pending.blob_count() >= crate::repository::INDEX_OBJECT_BLOBS {
            written.push(write_index(repo, std::mem::take(&mut pending), session).await?);
        }
    }
    if !pending.packs.is_empty() {
        written.push(write_index(repo, pending, session).await?);
    }
    Ok(written)
}

async fn write_index(
    repo: &IndexedRepository,
    file: IndexFile,
    session: &Mutex<HashSet<BlobId>>,
) -> Result<IndexId> {
    let id = repo.save_index(&file).await?;
    repo.index().add_index(id, &file)?;
    repo.index().flush()?;
    let mut s = session
        .lock()
        .map_err(|_| Error::Internal("dedup set poisoned".into()))?;
    for p in &file.packs {
        for b in &p.blobs {
            s.remove(&b.id);
        }
    }
    let keep = s.len() * 2;
    s.shrink_to(keep);
    Ok(id)
}

/// The chunk buffers a backup passes round: the walker fills them, a
/// worker gives them back once the chunk is packed. Allocations of a
/// megabyte or more are mapped fresh each time (see `tune_allocator` in
/// `main.rs`) and cost a page fault per 4 KiB: a first backup of 2 GiB took
/// 845 000 of them. As many are kept as can be in flight, which the
/// pipeline's channels bound. (Pack buffers are not reused: a
/// reused one is resident in full from the start, and with spares kept the
/// first backup of a million small files peaked at 102 MiB instead of 75.)
pub(super) struct Buffers {
    chunks: Pool<Vec<u8>>,
}

/// Chunk buffers smaller than this come from the heap, cheaply: not pooled.
const POOLED_CHUNK: usize = 256 << 10;
/// Nor are those larger than this (whole files read at once).
const POOLED_CHUNK_MAX: usize = 4 << 20;
/// Inputs zstd compresses with small tables (its parameters change at
/// 256 KiB).
const SMALL_INPUT: usize = 256 << 10;

/// True for a chunk length whose buffer goes round through the pool.
fn pooled(len: usize) -> bool {
    (POOLED_CHUNK..=POOLED_CHUNK_MAX).contains(&len)
}

impl Buffers {
    /// Buffers for a pipeline of `workers`: as many are kept as can be in
    /// flight at once (queued for the workers, one being packed by each,
    /// one being filled by the walker), so none is freed only to be mapped
    /// again a moment later; the pool never holds more than were alive at
    /// once.
    pub(super) fn for_workers(workers: usize) -> Buffers {
        Buffers {
            chunks: Pool::keeping(jobs_queued(workers) + workers + 1),
        }
    }

    /// An empty buffer with room for `len` bytes.
    pub(super) fn chunk(&self, len: usize) -> Vec<u8> {
        if !pooled(len) {
            return Vec::with_capacity(len);
        }
        // Made with room for any chunk it will be given, so it is never
        // reallocated (moved to fresh pages) as it goes round; only the
        // pages a chunk fills are resident.
        let mut b = self
            .chunks
            .take_owned(|| Vec::with_capacity(POOLED_CHUNK_MAX));
        b.clear();
        b.reserve(len);
        b
    }

    /// Gives a chunk's buffer back.
    pub(super) fn give_chunk(&self, b: Vec<u8>) {
        if pooled(b.capacity()) {
            self.chunks.put(b);
        }
    }
}

/// Items queued for the workers: one each is enough to keep them busy (the
/// walker only lists and decides, or cuts a large file), and each queued
/// chunk is up to a few megabytes resident.
fn jobs_queued(workers: usize) -> usize {
    workers
}

fn lock_packer(packer: &Mutex<Filling>) -> std::sync::MutexGuard<'_, Filling> {
    packer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Packs uploaded at once: a store's latency is hidden by a few uploads in
/// flight, each a pack resident. (A local repository's packs arrive
/// written: see [`PackSink`].)
fn upload_concurrency(repo: &IndexedRepository) -> usize {
    if repo.backend().local_root().is_some() {
        1
    } else {
        UPLOAD_CONCURRENCY
    }
}
