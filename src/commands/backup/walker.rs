//! The walking end of the pipeline: directories in name order, the
//! decision per file (reuse the parent's chunks, or read and chunk it),
//! trees written bottom-up, the snapshot root assembled from the paths.

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

/// The walking end of the pipeline (runs on its own thread).
pub(super) struct Walker<'a> {
    pub(super) repo: &'a IndexedRepository,
    pub(super) trees: TreeReader,
    pub(super) buffers: &'a Buffers,
    pub(super) chunker: Chunker,
    pub(super) jobs: Option<crossbeam_channel::Sender<Job>>,
    pub(super) tree_packer: Packer,
    pub(super) packs: tokio::sync::mpsc::Sender<FinishedPack>,
    pub(super) session: &'a Mutex<HashSet<BlobId>>,
    pub(super) stats: &'a Stats,
    pub(super) progress: &'a Progress,
    pub(super) errors: Vec<SkippedEntry>,
    pub(super) hardlinks: HashMap<(u64, u64), (u64, Vec<BlobId>)>,
    pub(super) abort: &'a AtomicBool,
    pub(super) compressor: Option<zstd::bulk::Compressor<'static>>,
    pub(super) excludes: Option<Excludes>,
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

    /// True when the blob is stored neither in the repository nor in this run.
    /// The index is asked under the session's lock: the uploader moves blobs
    /// from the session to the index (index first), so a blob is always seen
    /// in one or the other.
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

    pub(super) fn skip(&mut self, path: &Path, error: impl std::fmt::Display) {
        let msg = format!("warning: skipping {}: {error}", path.display());
        tracing::warn!("{msg}");
        self.progress.println(&msg);
        self.errors.push(SkippedEntry {
            path: path.to_string_lossy().into_owned(),
            error: error.to_string(),
        });
    }

    /// Reads, chunks and queues one stream; returns its chunk list and size.
    pub(super) fn store_stream(
        &mut self,
        mut reader: impl Read,
    ) -> Result<std::result::Result<(Vec<BlobId>, u64), std::io::Error>> {
        let mut content = Vec::new();
        let mut size = 0u64;
        let keys = self.repo.keys().clone();
        // Its 2 × the largest chunk is freed when the stream ends: streams
        // are few and large (files over the whole-file limit, dumps).
        let mut stream = ChunkBuffer::new();
        let stored = self.cut_stream(&keys, &mut stream, &mut reader, &mut content, &mut size);
        Ok(stored?.map(|()| (content, size)))
    }

    /// [`Self::store_stream`]'s loop, cutting in `stream`.
    fn cut_stream(
        &mut self,
        keys: &crate::crypto::Keys,
        stream: &mut ChunkBuffer,
        reader: &mut impl Read,
        content: &mut Vec<BlobId>,
        size: &mut u64,
    ) -> Result<std::result::Result<(), std::io::Error>> {
        loop {
            self.check_abort()?;
            let chunk = match self.chunker.next_chunk(stream, reader) {
                Ok(Some(c)) => c,
                Ok(None) => return Ok(Ok(())),
                Err(e) => return Ok(Err(e)),
            };
            let id = keys.blob_id(chunk);
            let n = chunk.len() as u64;
            *size += n;
            add(&self.stats.bytes_read, n);
            self.progress.add_bytes(n);
            if self.is_new(&id)? {
                let mut data = self.buffers.chunk(chunk.len());
                data.extend_from_slice(chunk);
                self.send_job(id, data)?;
            }
            content.push(id);
        }
    }

    fn send_job(&self, id: BlobId, data: Vec<u8>) -> Result<()> {
        let tx = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::Problems("pipeline closed".into()))?;
        tx.send(Job {
            kind: BlobKind::Data,
            id,
            data,
        })
        .map_err(|_| Error::Problems("backup aborted: workers stopped".into()))
    }

    /// Reads a file of known, modest size whole and cuts it in memory.
    pub(super) fn store_small_file(
        &mut self,
        mut file: std::fs::File,
        size_hint: u64,
    ) -> Result<std::result::Result<(Vec<BlobId>, u64), std::io::Error>> {
        let mut data = self.buffers.chunk(size_hint as usize + 1);
        if let Err(e) = file.read_to_end(&mut data) {
            self.buffers.give_chunk(data);
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
                    let mut c = self.buffers.chunk(len);
                    c.extend_from_slice(&data[off..off + len]);
                    c
                };
                self.send_job(id, chunk)?;
            }
            content.push(id);
        }
        self.buffers.give_chunk(data);
        Ok(Ok((content, n)))
    }

    /// Stores a tree blob (compressed and encrypted here: trees are small).
    pub(super) fn store_tree(&mut self, tree: &Tree) -> Result<BlobId> {
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

    pub(super) fn send_pack(&self, p: FinishedPack) -> Result<()> {
        self.packs
            .blocking_send(p)
            .map_err(|_| Error::Problems("backup aborted: the uploader stopped".into()))
    }

    pub(super) fn flush_trees(&mut self) -> Result<()> {
        if let Some(p) = self.tree_packer.flush() {
            self.send_pack(p)?;
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

    /// Backs up one entry; `None` when it was skipped.
    pub(super) fn entry(
        &mut self,
        path: &Path,
        name: &OsStr,
        old: Option<&Node>,
    ) -> Result<Option<Node>> {
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

    pub(super) fn walk_dir(&mut self, path: &Path, old: Option<&Tree>) -> Result<BlobId> {
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
    pub(super) fn stream_root(&mut self, s: StreamSource) -> Result<BlobId> {
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
    pub(super) fn paths_root(
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
