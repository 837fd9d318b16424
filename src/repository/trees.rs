//! Tree walks on a thread of their own.
//!
//! A walk over a snapshot's trees (a backup's parent, `check`, prune's
//! marking, a restore's plan) reads one small blob after another, each
//! needed before the next can be named. Read through the async runtime,
//! every tree costs three thread hand-offs (fetch, decode, back), and on a
//! tree of many small directories those wake-ups were most of the time:
//! `check` of 11 558 trees spent 3.5 s, mostly in futex wake-ups. A
//! [`TreeReader`] reads a local repository's packs with `pread` and opens
//! the blob on the walking thread, with one zstd context and one buffer for
//! the whole walk, and keeps the pack it read last open (a walk's trees are
//! mostly in a few tree packs: a restore of 3 232 trees opened the same
//! pack 3 232 times); other stores are fetched through the runtime's handle.

use crate::backend::{DirectReads, LocalObject};
use crate::id::BlobId;
use crate::repofile::pack::BlobOpener;
use crate::repofile::tree::Tree;
use crate::Result;

use super::{pack_path, tree_kind, IndexedRepository};

/// Reads trees on a thread that may block (see the module's overview).
/// Not shared between threads: it keeps its buffers.
pub(crate) struct TreeReader {
    repo: IndexedRepository,
    handle: tokio::runtime::Handle,
    opener: std::cell::RefCell<(BlobOpener, Vec<u8>)>,
    /// A local repository's reads, and the pack file read last (closed
    /// with the reader, at the end of the walk).
    local: Option<(DirectReads, std::cell::RefCell<Option<LocalObject>>)>,
}

impl TreeReader {
    /// A reader of `repo`'s trees that reaches other stores through `handle`.
    pub(crate) fn new(repo: IndexedRepository, handle: tokio::runtime::Handle) -> TreeReader {
        let local = repo
            .backend()
            .direct_reads()
            .map(|d| (d, std::cell::RefCell::new(None)));
        TreeReader {
            repo,
            handle,
            opener: std::cell::RefCell::new((BlobOpener::new(), Vec::new())),
            local,
        }
    }

    /// The repository the trees come from.
    pub(crate) fn repo(&self) -> &IndexedRepository {
        &self.repo
    }

    /// Runs `fut` to completion from this (blocking) thread: what a walk
    /// needs of the async API besides trees (refreshing the index).
    pub(crate) fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.handle.block_on(fut)
    }

    /// Reads, authenticates, decompresses, ID-checks and decodes a tree.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] when the index does not know it,
    /// [`crate::Error::Integrity`] when it is not a tree or does not open,
    /// [`crate::Error::Backend`].
    pub(crate) fn read(&self, id: &BlobId) -> Result<Tree> {
        let loc = self.repo.locate(id)?;
        tree_kind(id, &loc)?;
        let range = loc.offset..loc.offset + u64::from(loc.length);
        let path = pack_path(&loc.pack);
        let mut guard = self.opener.borrow_mut();
        let (opener, stored) = &mut *guard;
        match &self.local {
            Some((reads, last)) => {
                let mut last = last.borrow_mut();
                let file = match last.take() {
                    Some(f) if f.path() == path => f,
                    _ => reads.open(&path)?,
                };
                file.read(Some(range), stored)?;
                *last = Some(file);
            }
            None => self
                .handle
                .block_on(self.repo.backend().start_read(&path, Some(range)))?
                .into_buffer(stored)?,
        }
        let plain = opener.open_in_place(self.repo.keys(), &loc.pack, &loc.entry(*id), stored)?;
        let tree = Tree::decode(id, plain);
        // A huge directory's buffers are not kept for the rest of the walk.
        if stored.capacity() > KEEP_BUFFER {
            *guard = (BlobOpener::new(), Vec::new());
        }
        tree
    }
}

/// Buffers larger than this (a directory of tens of thousands of entries)
/// are dropped after use rather than kept for the walk.
const KEEP_BUFFER: usize = 4 << 20;

impl IndexedRepository {
    /// Runs the tree walk `walk` on a blocking thread with a [`TreeReader`],
    /// and returns what it returns.
    ///
    /// # Errors
    /// What `walk` returns; [`crate::Error::Internal`] if its thread panicked.
    pub(crate) async fn walk_trees<T, F>(&self, walk: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&TreeReader) -> Result<T> + Send + 'static,
    {
        let reader = TreeReader::new(self.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || walk(&reader))
            .await
            .map_err(|e| crate::Error::Internal(format!("tree walk failed: {e}")))?
    }

    /// A walk that does not need its trees in order (`check`'s): `visit`
    /// runs on one blocking thread per core, each with a [`TreeReader`] of
    /// its own, on the items of `start` and on the items each visit finds
    /// (which trees to read next: the visit decides, and keeps its own
    /// record of what was seen). Returns every visit's result, in no
    /// particular order. At most one tree per core is decoded at once.
    ///
    /// # Errors
    /// The first error a visit returns (the other threads stop after their
    /// current tree).
    pub(crate) async fn walk_trees_on<T, R, F>(&self, start: Vec<T>, visit: F) -> Result<Vec<R>>
    where
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(&TreeReader, T) -> Result<(R, Vec<T>)> + Send + Sync + 'static,
    {
        let (repo, handle) = (self.clone(), tokio::runtime::Handle::current());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        crate::util::on_threads_expanding(
            start,
            threads,
            move || TreeReader::new(repo.clone(), handle.clone()),
            move |reader: &mut TreeReader, item| visit(reader, item),
        )
        .await
    }
}
