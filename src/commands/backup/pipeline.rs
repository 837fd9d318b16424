//! The threads of a backup: the walker, one worker per core compressing
//! and encrypting into packs, and the uploader; bounded channels between.

use super::walker::Walker;
use super::*;

pub(super) type Walked = (BlobId, Vec<SkippedEntry>, Vec<IndexId>);

/// Sets up workers and the uploader, runs `walk` on its own thread, and waits
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
    let (job_tx, job_rx) = crossbeam_channel::bounded::<Job>(jobs_queued(workers));
    let (pack_tx, pack_rx) = tokio::sync::mpsc::channel::<FinishedPack>(1);
    let abort = AtomicBool::new(false);
    let session: Mutex<HashSet<BlobId>> = Mutex::new(HashSet::new());
    let pack_target = repo.config().pack_size as usize;
    // Buffers go round instead of being made anew (see `Buffers`).
    let buffers = Buffers::for_workers(workers);

    // One pack is filled at a time, by whichever worker has a blob ready:
    // a packer per worker kept a pack per core resident for nothing.
    // Copying a blob in and sealing it is quick beside compressing it.
    let packer = Mutex::new(Packer::new(repo.keys().clone(), pack_target));

    std::thread::scope(|s| {
        let uploader = s.spawn(|| handle.block_on(upload_loop(repo, pack_rx, &session)));
        let mut worker_handles = Vec::new();
        for _ in 0..workers {
            let rx = job_rx.clone();
            let tx = pack_tx.clone();
            let abort = &abort;
            let buffers = &buffers;
            let packer = &packer;
            worker_handles.push(s.spawn(move || -> Result<()> {
                let compressor = || {
                    zstd::bulk::Compressor::new(level).map_err(|e| {
                        Error::Usage(format!("invalid compression level {level}: {e}"))
                    })
                };
                // zstd sizes its tables for the input and reallocates them
                // when small and large inputs alternate (each time mapped
                // and faulted in anew): small blobs get a context of their own.
                let (mut small, mut large) = (compressor()?, compressor()?);
                // Room for a pooled chunk's output, made once rather than
                // grown chunk by chunk; a larger one is not kept.
                let out_room = zstd::zstd_safe::compress_bound(POOLED_CHUNK_MAX);
                let mut out = Vec::new();
                for job in rx.iter() {
                    let raw_len = job.data.len() as u32;
                    let compressor = if job.data.len() < SMALL_INPUT {
                        &mut small
                    } else {
                        &mut large
                    };
                    if out.capacity() < out_room && job.data.len() >= SMALL_INPUT {
                        out.reserve(out_room);
                    }
                    let comp = compress_into(compressor, &job.data, &mut out);
                    let payload = match comp {
                        Compression::Zstd => &out[..],
                        Compression::Raw => &job.data[..],
                    };
                    add(&stats.bytes_added_raw, u64::from(raw_len));
                    add(
                        &stats.bytes_added,
                        (payload.len() + crate::crypto::TAG_LEN) as u64,
                    );
                    add(&stats.blobs_added, 1);
                    let finished =
                        lock_packer(packer).add(job.kind, job.id, comp, payload, raw_len);
                    buffers.give_chunk(job.data);
                    // A whole file's worth is not kept resident for the rest.
                    if out.capacity() > out_room {
                        out = Vec::new();
                    }
                    if let Some(p) = finished {
                        if tx.blocking_send(p).is_err() {
                            abort.store(true, Ordering::Relaxed);
                            return Ok(());
                        }
                    }
                }
                Ok(())
            }));
        }
        drop(job_rx);

        let walked = {
            let mut walker = Walker {
                repo,
                trees: TreeReader::new(repo.clone(), handle.clone()),
                buffers: &buffers,
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
        if let Some(p) = last {
            if pack_tx.blocking_send(p).is_err() {
                abort.store(true, Ordering::Relaxed);
            }
        }
        drop(pack_tx);
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
/// Blobs in a written index object are in the blob index from then on, so
/// they leave `session`: the run's own dedup set holds only what is on its
/// way, not every blob of the backup.
pub(super) async fn upload_loop(
    repo: &IndexedRepository,
    rx: tokio::sync::mpsc::Receiver<FinishedPack>,
    session: &Mutex<HashSet<BlobId>>,
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

/// Chunks queued for the workers: one each is enough to keep them busy
/// (the walker cuts and hashes far faster than they compress), and each
/// queued chunk is up to a few megabytes resident.
fn jobs_queued(workers: usize) -> usize {
    workers
}

fn lock_packer(packer: &Mutex<Packer>) -> std::sync::MutexGuard<'_, Packer> {
    packer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Packs written at once: a store's latency is hidden by a few uploads in
/// flight; a local disk gains nothing from more than one write per core
/// beside the workers, and each pack in flight is 16 MiB resident.
fn upload_concurrency(repo: &IndexedRepository) -> usize {
    if repo.backend().local_root().is_some() {
        1
    } else {
        UPLOAD_CONCURRENCY
    }
}
