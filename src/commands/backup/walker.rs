//! The walking end of the pipeline: directories in name order, the
//! decision per file (reuse the parent's chunks, or have it read), trees
//! written bottom-up as their entries complete, the snapshot root assembled
//! from the paths.
//!
//! The walker only lists, `lstat`s and decides; the workers read small
//! files, hash and store. A directory stays open until every answer for
//! its entries is in, while the walk goes on: it never waits at a
//! directory's end, which in trees of small directories kept the workers
//! idle half of the time. What stays open is bounded by the queue: only
//! directories with an entry still in the workers' hands, and their
//! ancestors.

use crossbeam_channel::{Receiver, Sender};

use super::pipeline::{Dedup, Done, FileWork, Filling, Outcome, PackSink, Slot, Work, RESULT_POLL};
use super::*;

/// A directory being assembled for the snapshot root (ancestors of the paths).
#[derive(Default)]
pub(super) struct VirtualDir {
    node: Option<Node>,
    children: BTreeMap<Vec<u8>, VirtualEntry>,
}

pub(super) enum VirtualEntry {
    Done(Node),
    Dir(VirtualDir),
}

/// Small files handed to a worker in one message.
const FILES_PER_JOB: usize = 16;
/// Or fewer, when they add up to this many bytes.
const FILE_BYTES_PER_JOB: u64 = 1 << 20;

/// What becomes of a directory once all its entries are in.
#[derive(Clone, Copy)]
pub(super) enum Up {
    /// Its tree is stored and its ID goes into the parent's node.
    Parent(Slot),
    /// Its tree is stored and kept for [`Walker::wait_tree`].
    Tree,
    /// Its nodes are kept for [`Walker::wait_nodes`] (a path's one entry).
    Nodes,
}

/// A directory whose tree is not written yet.
pub(super) struct OpenDir {
    path: PathBuf,
    nodes: Vec<Node>,
    /// Nodes whose file could not be read: left out of the tree.
    skipped: Vec<usize>,
    /// Answers still to come: files, chunks and subdirectories.
    waiting: usize,
    /// Every entry has been looked at.
    listed: bool,
    up: Up,
    /// For `Up::Tree` and `Up::Nodes`: complete.
    done: Option<BlobId>,
    finished: bool,
}

/// The walking end of the pipeline (runs on its own thread).
pub(super) struct Walker<'a> {
    pub(super) repo: &'a IndexedRepository,
    pub(super) trees: TreeReader,
    pub(super) buffers: &'a Buffers,
    pub(super) chunker: Chunker,
    pub(super) jobs: Option<Sender<Work>>,
    /// Where the workers answer (the walker keeps a sender to clone).
    pub(super) reply: Sender<Done>,
    pub(super) results: Receiver<Done>,
    /// Small files not yet handed over.
    pub(super) files: Vec<FileWork>,
    pub(super) files_bytes: u64,
    pub(super) dirs: Vec<Option<OpenDir>>,
    pub(super) free_dirs: Vec<usize>,
    pub(super) tree_packer: Filling,
    pub(super) packs: PackSink<'a>,
    pub(super) dedup: &'a Dedup<'a>,
    pub(super) stats: &'a Stats,
    pub(super) progress: &'a Progress,
    pub(super) errors: Vec<SkippedEntry>,
    pub(super) hardlinks: HashMap<(u64, u64), (u64, Vec<BlobId>)>,
    pub(super) abort: &'a AtomicBool,
    pub(super) compressor: Option<zstd::bulk::Compressor<'static>>,
    pub(super) excludes: Option<Excludes>,
    /// The device of the path being backed up, when the walk stays on one
    /// file system.
    pub(super) root_device: Option<u64>,
}

impl Walker<'_> {
    pub(super) fn check_abort(&self) -> Result<()> {
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

    pub(super) fn skip(&mut self, path: &Path, error: impl std::fmt::Display) {
        let msg = format!("warning: skipping {}: {error}", path.display());
        tracing::warn!("{msg}");
        self.progress.println(&msg);
        self.errors.push(SkippedEntry {
            path: path.to_string_lossy().into_owned(),
            error: error.to_string(),
        });
    }

    fn open_dir(&mut self, path: PathBuf, up: Up) -> usize {
        let dir = OpenDir {
            path,
            nodes: Vec::new(),
            skipped: Vec::new(),
            waiting: 0,
            listed: false,
            up,
            done: None,
            finished: false,
        };
        match self.free_dirs.pop() {
            Some(d) => {
                self.dirs[d] = Some(dir);
                d
            }
            None => {
                self.dirs.push(Some(dir));
                self.dirs.len() - 1
            }
        }
    }

    fn dir(&mut self, d: usize) -> Result<&mut OpenDir> {
        self.dirs
            .get_mut(d)
            .and_then(Option::as_mut)
            .ok_or_else(|| Error::Internal(format!("backup: directory slot {d} is not open")))
    }

    fn node(&mut self, slot: Slot) -> Result<&mut Node> {
        self.dir(slot.dir)?
            .nodes
            .get_mut(slot.node)
            .ok_or_else(|| Error::Internal(format!("backup: no node {slot:?}")))
    }

    fn send(&self, work: Work) -> Result<()> {
        let tx = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::Problems("pipeline closed".into()))?;
        tx.send(work)
            .map_err(|_| Error::Problems("backup aborted: workers stopped".into()))
    }

    /// Hands the small files gathered so far to a worker.
    fn flush_files(&mut self) -> Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let files = std::mem::take(&mut self.files);
        self.files_bytes = 0;
        self.send(Work::Files {
            files,
            reply: self.reply.clone(),
        })
    }

    /// Takes in the answers that are there, without waiting.
    fn take_results(&mut self) -> Result<()> {
        while let Ok(done) = self.results.try_recv() {
            self.apply(done)?;
        }
        Ok(())
    }

    /// Waits for one answer on `rx`.
    fn next_result(&self, rx: &Receiver<Done>) -> Result<Done> {
        loop {
            self.check_abort()?;
            match rx.recv_timeout(RESULT_POLL) {
                Ok(done) => return Ok(done),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    self.check_abort()?;
                    return Err(Error::Internal(
                        "backup: the workers stopped without an answer".into(),
                    ));
                }
            }
        }
    }

    /// Puts a worker's answer into its node, and closes what it completes.
    fn apply(&mut self, done: Done) -> Result<()> {
        let slot = done.slot;
        match done.outcome {
            Outcome::Chunk { index, id } => {
                let node = self.node(slot)?;
                let c = node.content.get_mut(index).ok_or_else(|| {
                    Error::Internal(format!("backup: no chunk {index} in {slot:?}"))
                })?;
                *c = id;
            }
            Outcome::File(Ok((content, size))) => {
                let node = self.node(slot)?;
                node.content = content;
                node.size = size;
                self.stats.file_read(size, self.progress);
            }
            Outcome::File(Err(e)) => {
                let dir = self.dir(slot.dir)?;
                let path = match dir.nodes.get(slot.node) {
                    Some(n) => dir.path.join(OsStr::from_bytes(&n.name)),
                    None => dir.path.clone(),
                };
                self.drop_entry(slot, &path, e)?;
            }
        }
        self.answered(slot.dir)?;
        self.try_finish(slot.dir)
    }

    /// Counts one answer for directory `d` in.
    fn answered(&mut self, d: usize) -> Result<()> {
        let dir = self.dir(d)?;
        dir.waiting = dir.waiting.checked_sub(1).ok_or_else(|| {
            Error::Internal(format!("backup: an answer for {d} that was not asked for"))
        })?;
        Ok(())
    }

    /// Leaves out of the tree a file that could not be read, and names it.
    fn drop_entry(&mut self, slot: Slot, path: &Path, e: std::io::Error) -> Result<()> {
        self.dir(slot.dir)?.skipped.push(slot.node);
        self.skip(path, e);
        Ok(())
    }

    /// Writes the tree of a directory whose entries are all in, and of the
    /// ancestors that completes.
    fn try_finish(&mut self, mut d: usize) -> Result<()> {
        loop {
            let dir = self.dir(d)?;
            if !dir.listed || dir.waiting > 0 || dir.finished {
                return Ok(());
            }
            let up = dir.up;
            let mut skipped = std::mem::take(&mut dir.skipped);
            skipped.sort_unstable();
            let mut i = 0;
            dir.nodes.retain(|_| {
                i += 1;
                skipped.binary_search(&(i - 1)).is_err()
            });
            if let Up::Nodes = up {
                dir.finished = true;
                return Ok(());
            }
            let nodes = std::mem::take(&mut dir.nodes);
            let id = self.store_tree(&Tree { nodes })?;
            let Up::Parent(slot) = up else {
                let dir = self.dir(d)?;
                dir.done = Some(id);
                dir.finished = true;
                return Ok(());
            };
            self.dirs[d] = None;
            self.free_dirs.push(d);
            self.node(slot)?.subtree = Some(id);
            self.answered(slot.dir)?;
            d = slot.dir;
        }
    }

    /// Waits until directory `d` (opened `Up::Tree` or `Up::Nodes`) is
    /// complete, and closes it.
    fn wait_dir(&mut self, d: usize) -> Result<OpenDir> {
        self.flush_files()?;
        while !self.dir(d)?.finished {
            let done = self.next_result(&self.results)?;
            self.apply(done)?;
        }
        let dir = self.dirs[d]
            .take()
            .ok_or_else(|| Error::Internal(format!("backup: directory slot {d} is not open")))?;
        self.free_dirs.push(d);
        Ok(dir)
    }

    fn wait_tree(&mut self, d: usize) -> Result<BlobId> {
        self.wait_dir(d)?
            .done
            .ok_or_else(|| Error::Internal("backup: a directory closed without its tree".into()))
    }

    /// Reads, chunks and hands over one stream into the node at `slot`;
    /// returns its size. Its chunks' IDs arrive at `reply`, one per chunk
    /// counted in the directory's `waiting`.
    fn cut_stream(
        &mut self,
        reader: &mut impl Read,
        slot: Slot,
        reply: &Sender<Done>,
    ) -> Result<std::result::Result<u64, std::io::Error>> {
        // Its 2 × the largest chunk is freed when the stream ends: streams
        // are few and large (files over the whole-file limit, dumps).
        let mut stream = ChunkBuffer::new();
        let mut size = 0u64;
        loop {
            self.check_abort()?;
            let chunk = match self.chunker.next_chunk(&mut stream, reader) {
                Ok(Some(c)) => c,
                Ok(None) => return Ok(Ok(size)),
                Err(e) => return Ok(Err(e)),
            };
            let n = chunk.len() as u64;
            size += n;
            add(&self.stats.bytes_read, n);
            self.progress.add_bytes(n);
            let mut data = self.buffers.chunk(chunk.len());
            data.extend_from_slice(chunk);
            let node = self.node(slot)?;
            let index = node.content.len();
            node.content.push(BlobId([0; 32]));
            self.dir(slot.dir)?.waiting += 1;
            self.send(Work::Chunk {
                data,
                slot,
                index,
                reply: reply.clone(),
            })?;
            self.take_results()?;
        }
    }

    /// Stores a tree blob (compressed and encrypted here: trees are small).
    pub(super) fn store_tree(&mut self, tree: &Tree) -> Result<BlobId> {
        let data = tree.encode();
        let id = self.repo.keys().blob_id(&data);
        if self.dedup.is_new(&id)? {
            let (comp, compressed) = match self.compressor.as_mut() {
                Some(c) => compress(c, &data),
                None => (crate::repofile::pack::Compression::Raw, None),
            };
            let payload = compressed.as_deref().unwrap_or(&data);
            self.stats.blob_added(data.len(), payload.len());
            if let Some(p) = self.tree_packer.add(
                &self.packs,
                BlobKind::Tree,
                id,
                comp,
                payload,
                data.len() as u32,
            )? {
                self.packs.send(p)?;
            }
        }
        Ok(id)
    }

    pub(super) fn flush_trees(&mut self) -> Result<()> {
        if let Some(p) = self.tree_packer.flush() {
            self.packs.send(p)?;
        }
        Ok(())
    }

    pub(super) fn read_old_tree(&self, node: Option<&Node>) -> Option<Tree> {
        let id = node.filter(|n| n.kind == NodeKind::Dir)?.subtree?;
        match self.trees.read(&id) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(tree = %id, error = %e, "cannot read a parent tree: reading its files");
                None
            }
        }
    }

    /// Backs up one entry into open directory `d` (nothing when it is
    /// skipped); what workers do for it completes later.
    fn entry(&mut self, path: &Path, name: &OsStr, old: Option<&Node>, d: usize) -> Result<()> {
        self.check_abort()?;
        let md = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.skip(path, e);
                return Ok(());
            }
        };
        let mut node = node_from_metadata(name, path, &md);
        if let Some(ex) = &self.excludes {
            let left_out = match node.kind {
                NodeKind::File => ex.too_large(node.size),
                NodeKind::Dir => ex.marked(path),
                _ => false,
            };
            if left_out {
                return Ok(());
            }
        }
        let slot = Slot {
            dir: d,
            node: self.dir(d)?.nodes.len(),
        };
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
                    add(&self.stats.total_bytes, node.size);
                    self.progress.add_bytes(node.size);
                    self.progress.file_done();
                    self.dir(d)?.nodes.push(node);
                } else if let Some((size, content)) =
                    self.hardlinks.get(&link_key).filter(|_| node.links > 1)
                {
                    node.content = content.clone();
                    node.size = *size;
                    add(&self.stats.total_bytes, node.size);
                    self.progress.file_done();
                    self.dir(d)?.nodes.push(node);
                } else {
                    let linked = node.links > 1;
                    let small = node.size <= self.chunker.whole_file_limit();
                    let size = node.size;
                    self.dir(d)?.nodes.push(node);
                    // The other names of a file with several need its
                    // content: its answers come on a channel of their own.
                    let own = linked.then(crossbeam_channel::unbounded::<Done>);
                    let reply = own.as_ref().map_or(&self.reply, |(tx, _)| tx).clone();
                    let answers = if small {
                        self.queue_file(path, size, slot, &reply)?;
                        1
                    } else {
                        self.read_large_file(path, slot, &reply)?
                    };
                    drop(reply);
                    if let Some((tx, rx)) = own {
                        drop(tx);
                        for _ in 0..answers {
                            let done = self.next_result(&rx)?;
                            self.apply(done)?;
                        }
                        let dir = self.dir(d)?;
                        if !dir.skipped.contains(&slot.node) {
                            let n = self.node(slot)?;
                            let entry = (n.size, n.content.clone());
                            self.hardlinks.insert(link_key, entry);
                        }
                    }
                }
            }
            NodeKind::Dir => {
                add(&self.stats.dirs, 1);
                // Another file system's mount point is kept, empty.
                let foreign = self.root_device.is_some_and(|dev| node.device != dev);
                let old_tree = self.read_old_tree(old);
                let dir = self.dir(d)?;
                dir.nodes.push(node);
                dir.waiting += 1;
                self.walk_dir_listing(path, old_tree.as_ref(), Up::Parent(slot), !foreign)?;
            }
            _ => self.dir(d)?.nodes.push(node),
        }
        Ok(())
    }

    /// Gives a small file to the workers (in a batch, unless it has its own
    /// answer channel); one answer will come.
    fn queue_file(
        &mut self,
        path: &Path,
        size: u64,
        slot: Slot,
        reply: &Sender<Done>,
    ) -> Result<()> {
        self.dir(slot.dir)?.waiting += 1;
        let work = FileWork {
            path: path.to_path_buf(),
            size,
            slot,
        };
        if !reply.same_channel(&self.reply) {
            return self.send(Work::Files {
                files: vec![work],
                reply: reply.clone(),
            });
        }
        self.files.push(work);
        self.files_bytes += size;
        if self.files.len() >= FILES_PER_JOB || self.files_bytes >= FILE_BYTES_PER_JOB {
            self.flush_files()?;
        }
        Ok(())
    }

    /// Reads a file over the whole-file limit as a stream, here; returns
    /// how many answers its chunks will get. A file that cannot be opened
    /// or read is skipped.
    fn read_large_file(&mut self, path: &Path, slot: Slot, reply: &Sender<Done>) -> Result<usize> {
        let file = match crate::source::open_regular(path) {
            Ok(f) => f,
            Err(e) => {
                self.drop_entry(slot, path, e)?;
                return Ok(0);
            }
        };
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let read = self.cut_stream(&mut reader, slot, reply)?;
        let answers = self.node(slot)?.content.len();
        match read {
            Ok(size) => {
                self.node(slot)?.size = size;
                self.stats.file_read(size, self.progress);
            }
            Err(e) => self.drop_entry(slot, path, e)?,
        }
        Ok(answers)
    }

    /// Lists a directory and backs up its entries; its tree is written once
    /// they are all in, and goes where `up` says. Returns its slot.
    fn walk_dir(&mut self, path: &Path, old: Option<&Tree>, up: Up) -> Result<usize> {
        self.walk_dir_listing(path, old, up, true)
    }

    /// [`Self::walk_dir`], or with `list` false the directory alone, empty
    /// (a mount point the walk does not cross).
    fn walk_dir_listing(
        &mut self,
        path: &Path,
        old: Option<&Tree>,
        up: Up,
        list: bool,
    ) -> Result<usize> {
        let listing = if list {
            std::fs::read_dir(path).map(Some)
        } else {
            Ok(None)
        };
        let mut names: Vec<_> = match listing {
            Ok(None) => Vec::new(),
            Ok(Some(rd)) => {
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
        let d = self.open_dir(path.to_path_buf(), up);
        for name in names {
            let child = path.join(&name);
            if self.excludes.as_ref().is_some_and(|e| e.matches(&child)) {
                continue;
            }
            let old_node = old.and_then(|t| t.find(name.as_bytes()));
            self.entry(&child, &name, old_node, d)?;
            self.take_results()?;
        }
        self.dir(d)?.listed = true;
        self.try_finish(d)?;
        Ok(d)
    }

    /// One path's entry, complete (its subtree written).
    fn entry_now(&mut self, path: &Path, name: &OsStr, old: Option<&Node>) -> Result<Option<Node>> {
        let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let d = self.open_dir(parent, Up::Nodes);
        self.entry(path, name, old, d)?;
        self.dir(d)?.listed = true;
        self.try_finish(d)?;
        Ok(self.wait_dir(d)?.nodes.pop())
    }

    /// Root for a stream: one file in the root directory.
    pub(super) fn stream_root(&mut self, mut s: StreamSource) -> Result<BlobId> {
        // SAFETY: getuid/getgid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let now = jiff::Timestamp::now().as_nanosecond() as i64;
        let node = Node {
            name: s.name.clone().into_bytes(),
            kind: NodeKind::File,
            mode: 0o100600,
            uid,
            gid,
            mtime_ns: now,
            ctime_ns: now,
            inode: 0,
            device: 0,
            links: 1,
            size: 0,
            content: Vec::new(),
            subtree: None,
            target: Vec::new(),
            rdev: 0,
            xattrs: Vec::new(),
        };
        let d = self.open_dir(PathBuf::from("/"), Up::Tree);
        self.dir(d)?.nodes.push(node);
        let slot = Slot { dir: d, node: 0 };
        let reply = self.reply.clone();
        let size = match self.cut_stream(&mut s.reader, slot, &reply)? {
            Ok(size) => size,
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
        self.node(slot)?.size = size;
        self.dir(d)?.listed = true;
        self.try_finish(d)?;
        self.wait_tree(d)
    }

    /// Root for paths: the paths with their ancestor directories.
    pub(super) fn paths_root(
        &mut self,
        paths: &[PathBuf],
        parent: Option<&Tree>,
        excludes: &Excludes,
    ) -> Result<BlobId> {
        self.excludes = Some(excludes.clone());
        if paths.len() == 1 && paths[0] == Path::new("/") {
            self.root_device = excludes
                .one_file_system()
                .then(|| std::fs::symlink_metadata("/").ok())
                .flatten()
                .map(|md| std::os::unix::fs::MetadataExt::dev(&md));
            let d = self.walk_dir(Path::new("/"), parent, Up::Tree)?;
            return self.wait_tree(d);
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
                    self.root_device = self
                        .excludes
                        .as_ref()
                        .filter(|e| e.one_file_system())
                        .and_then(|_| std::fs::symlink_metadata(&cur).ok())
                        .map(|md| std::os::unix::fs::MetadataExt::dev(&md));
                    if let Some(n) = self.entry_now(&cur, name, old_node.as_ref())? {
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

    pub(super) fn write_virtual(&mut self, dir: VirtualDir) -> Result<BlobId> {
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
pub(super) fn reusable_content(
    node: &Node,
    old: Option<&Node>,
    stored: impl Fn(&BlobId) -> bool,
) -> Option<Vec<BlobId>> {
    old.filter(|o| unchanged(node, o))
        .map(|o| o.content.clone())
        .filter(|c| c.iter().all(&stored))
}

pub(super) fn synthetic_dir(name: &[u8]) -> Node {
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
