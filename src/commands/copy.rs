//! `custos copy`: replicate snapshots to another repository (the standby
//! target), so a partner's data survives the loss of the primary.
//!
//! The destination is an independent repository with its **own** master key:
//! a key leaked from one target opens nothing on the other, and each target's
//! key slots can be destroyed separately. Blob IDs are keyed hashes, so the
//! same data has different IDs in the two repositories: copying decrypts and
//! verifies every blob read from the source, re-hashes it with the
//! destination's ID key, and rewrites the trees with the new IDs. Only blobs
//! the destination lacks are uploaded (deduplication against its index).
//!
//! Incremental copies stay cheap: a map of source → destination IDs (trees
//! and data) is kept in the cache directory, so a subtree already copied is
//! neither read nor walked again. The map is only a cache: without it a copy
//! is slower, never wrong (every mapped ID is checked against the
//! destination's index before use).
//!
//! Write order in the destination: packs → index → snapshot, under a shared
//! lock verified before the snapshot is written. A copied snapshot records
//! its source snapshot in `original`; a snapshot whose copy exists is skipped.

use std::collections::HashSet;

use serde::Serialize;

use crate::blob::{compress, Packer};
use crate::id::{BlobId, SnapshotId};
use crate::repofile::index::IndexFile;
use crate::repofile::pack::{BlobKind, Compression, FinishedPack};
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::Tree;
use crate::repository::lock::{Lock, LockKind};
use crate::repository::IndexedRepository;
use crate::{Error, Result};

/// What to copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Only these snapshots (IDs or unique prefixes); all when empty.
    pub snapshots: Vec<String>,
    /// Only snapshots of this service.
    pub service: Option<String>,
    /// Only snapshots of this tenant.
    pub tenant: Option<String>,
    /// Only snapshots with every one of these tags.
    pub tags: Vec<String>,
    /// Say what would be copied; write nothing.
    pub dry_run: bool,
    /// zstd level for blobs stored in the destination.
    pub compression_level: i32,
}

/// One snapshot's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CopiedSnapshot {
    /// Source ID.
    pub source: SnapshotId,
    /// Destination ID (none when skipped, failed or a dry run).
    pub copy: Option<SnapshotId>,
    /// `copied`, `present`, `would copy` or `failed`.
    pub outcome: String,
    /// Blobs uploaded for it.
    pub blobs_added: u64,
    /// Bytes uploaded for it.
    pub bytes_added: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// What copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Per snapshot, oldest first.
    pub snapshots: Vec<CopiedSnapshot>,
    /// Copied now.
    pub copied: usize,
    /// Already in the destination.
    pub present: usize,
    /// Failed (the others are still copied).
    pub failed: usize,
    /// Bytes uploaded in all.
    pub bytes_added: u64,
}

/// Copies the selected snapshots from `src` to `dst`.
///
/// # Errors
/// Locks, backend errors of the destination, a bad selection. A snapshot
/// that cannot be read from the source (damaged data) is reported as failed
/// and the others are still copied.
pub async fn copy(
    src: &IndexedRepository,
    dst: &IndexedRepository,
    opts: &CopyOptions,
) -> Result<CopyReport> {
    if src.config().id == dst.config().id {
        return Err(Error::Usage(
            "source and destination are the same repository".into(),
        ));
    }
    let src_lock = Lock::acquire(src.backend(), LockKind::Shared, "copy").await?;
    let dst_lock = match Lock::acquire(dst.backend(), LockKind::Shared, "copy").await {
        Ok(l) => l,
        Err(e) => {
            let _ = src_lock.release().await;
            return Err(e);
        }
    };
    let r = run(src, dst, opts, &dst_lock).await;
    let a = dst_lock.release().await;
    let b = src_lock.release().await;
    let r = r?;
    a?;
    b?;
    Ok(r)
}

fn selected<'a>(
    snaps: &'a [(SnapshotId, Snapshot)],
    opts: &CopyOptions,
) -> Result<Vec<&'a (SnapshotId, Snapshot)>> {
    let filter = |s: &Snapshot| {
        opts.service
            .as_ref()
            .is_none_or(|v| s.service.as_ref() == Some(v))
            && opts
                .tenant
                .as_ref()
                .is_none_or(|v| s.tenant.as_ref() == Some(v))
            && opts.tags.iter().all(|t| s.tags.contains(t))
    };
    if opts.snapshots.is_empty() {
        return Ok(snaps.iter().filter(|(_, s)| filter(s)).collect());
    }
    let mut out = Vec::new();
    for spec in &opts.snapshots {
        let hit = crate::repository::select_snapshot(snaps, spec, filter)?;
        if !out
            .iter()
            .any(|(id, _): &&(SnapshotId, Snapshot)| *id == hit.0)
        {
            out.push(hit);
        }
    }
    out.sort_by_key(|(_, s)| s.timestamp());
    Ok(out)
}

async fn run(
    src: &IndexedRepository,
    dst: &IndexedRepository,
    opts: &CopyOptions,
    dst_lock: &Lock,
) -> Result<CopyReport> {
    src.refresh_index().await?;
    dst.refresh_index().await?;
    let (snaps, _) = src.snapshots().await?;
    let (existing, _) = dst.snapshots().await?;
    let present: HashSet<SnapshotId> = existing.iter().filter_map(|(_, s)| s.original).collect();
    let map = IdMap::open(src, dst)?;
    let mut report = CopyReport::default();
    for (id, snap) in selected(&snaps, opts)? {
        let mut entry = CopiedSnapshot {
            source: *id,
            copy: None,
            outcome: String::new(),
            blobs_added: 0,
            bytes_added: 0,
            error: None,
        };
        if present.contains(id) {
            entry.outcome = "present".into();
            report.present += 1;
        } else if opts.dry_run {
            entry.outcome = "would copy".into();
        } else {
            let mut w = Writer::new(dst, opts.compression_level);
            match copy_tree(src, &mut w, &map, snap.tree).await {
                Ok(root) => {
                    let stored = w.finish().await?;
                    dst_lock.ensure_held().await?;
                    let copy = Snapshot {
                        tree: root,
                        original: Some(*id),
                        parent: None,
                        // The source's index objects mean nothing here.
                        index: Vec::new(),
                        ..snap.clone()
                    };
                    let new_id = dst.save_snapshot(&copy).await?;
                    map.flush()?;
                    entry.copy = Some(new_id);
                    entry.outcome = "copied".into();
                    entry.blobs_added = stored.0;
                    entry.bytes_added = stored.1;
                    report.copied += 1;
                    report.bytes_added += stored.1;
                    tracing::info!(source = %id, copy = %new_id, blobs = stored.0, "snapshot copied");
                }
                Err(e) => {
                    // Packs already uploaded are indexed (they are sound);
                    // no snapshot refers to a partial tree.
                    let _ = w.finish().await;
                    tracing::warn!(snapshot = %id, error = %e, "snapshot not copied");
                    entry.outcome = "failed".into();
                    entry.error = Some(e.to_string());
                    report.failed += 1;
                }
            }
        }
        report.snapshots.push(entry);
    }
    Ok(report)
}

/// Source → destination blob IDs, on disk under the cache directory.
struct IdMap {
    tree: Option<sled::Tree>,
    _db: Option<sled::Db>,
}

impl IdMap {
    fn open(src: &IndexedRepository, dst: &IndexedRepository) -> Result<IdMap> {
        let Some(dir) = src.cache_dir() else {
            return Ok(IdMap {
                tree: None,
                _db: None,
            });
        };
        let path = dir.join(format!(
            "copy-{}-{}",
            src.config().id.to_hex(),
            dst.config().id.to_hex()
        ));
        let err = |e: sled::Error| {
            Error::io(
                format!("copy map {}", path.display()),
                std::io::Error::other(e.to_string()),
            )
        };
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(16 << 20)
            .open()
            .map_err(err)?;
        let tree = db.open_tree("map").map_err(err)?;
        Ok(IdMap {
            tree: Some(tree),
            _db: Some(db),
        })
    }

    fn get(&self, id: &BlobId) -> Option<BlobId> {
        let v = self.tree.as_ref()?.get(id.as_bytes()).ok()??;
        BlobId::from_slice(&v)
    }

    fn put(&self, from: &BlobId, to: &BlobId) {
        if let Some(t) = &self.tree {
            if let Err(e) = t.insert(from.as_bytes(), to.as_bytes().as_slice()) {
                tracing::debug!(error = %e, "copy map insert failed");
            }
        }
    }

    fn flush(&self) -> Result<()> {
        if let Some(t) = &self.tree {
            t.flush()
                .map_err(|e| Error::io("copy map", std::io::Error::other(e.to_string())))?;
        }
        Ok(())
    }
}

/// Packs blobs for the destination and uploads them.
struct Writer<'a> {
    dst: &'a IndexedRepository,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    data: Packer,
    trees: Packer,
    session: HashSet<BlobId>,
    index: IndexFile,
    blobs: u64,
    bytes: u64,
}

impl<'a> Writer<'a> {
    fn new(dst: &'a IndexedRepository, level: i32) -> Writer<'a> {
        let target = dst.config().pack_size as usize;
        Writer {
            dst,
            compressor: zstd::bulk::Compressor::new(if level == 0 { 3 } else { level }).ok(),
            data: Packer::new(dst.keys().clone(), target),
            trees: Packer::new(dst.keys().clone(), target),
            session: HashSet::new(),
            index: IndexFile::default(),
            blobs: 0,
            bytes: 0,
        }
    }

    fn known(&self, id: &BlobId) -> Result<bool> {
        Ok(self.session.contains(id) || self.dst.index().contains(id)?)
    }

    /// Stores `plain` unless the destination has it; returns its ID there.
    async fn add(&mut self, kind: BlobKind, plain: &[u8]) -> Result<BlobId> {
        let id = self.dst.keys().blob_id(plain);
        if self.known(&id)? {
            return Ok(id);
        }
        let (comp, compressed) = match self.compressor.as_mut() {
            Some(c) => compress(c, plain),
            None => (Compression::Raw, None),
        };
        let payload = compressed.as_deref().unwrap_or(plain);
        let len =
            u32::try_from(plain.len()).map_err(|_| Error::Problems("blob too large".into()))?;
        self.session.insert(id);
        self.blobs += 1;
        self.bytes += payload.len() as u64;
        let packer = if kind == BlobKind::Tree {
            &mut self.trees
        } else {
            &mut self.data
        };
        if let Some(p) = packer.add(kind, id, comp, payload, len) {
            self.upload(p).await?;
            if self.index.blob_count() >= crate::repository::INDEX_OBJECT_BLOBS {
                self.checkpoint().await?;
            }
        }
        Ok(id)
    }

    /// Uploads both open packs, then indexes everything uploaded. A tree is
    /// added after everything under it, so once it is indexed its contents
    /// are too: an interrupted copy never leaves an indexed tree whose data
    /// is missing (the ID map relies on that).
    async fn checkpoint(&mut self) -> Result<()> {
        for p in [self.data.flush(), self.trees.flush()]
            .into_iter()
            .flatten()
        {
            self.upload(p).await?;
        }
        self.write_index().await
    }

    async fn upload(&mut self, p: FinishedPack) -> Result<()> {
        let stored = self.dst.put_pack(p).await?;
        self.index.packs.push(stored);
        Ok(())
    }

    async fn write_index(&mut self) -> Result<()> {
        let file = std::mem::take(&mut self.index);
        if file.packs.is_empty() {
            return Ok(());
        }
        let id = self.dst.save_index(&file).await?;
        self.dst.index().add_index(id, &file)?;
        self.dst.index().flush()
    }

    /// Uploads what is left and writes the index; returns (blobs, bytes) added.
    async fn finish(mut self) -> Result<(u64, u64)> {
        self.checkpoint().await?;
        Ok((self.blobs, self.bytes))
    }
}

/// Copies the tree `src_id` (and everything under it); returns its ID in the
/// destination.
async fn copy_tree(
    src: &IndexedRepository,
    w: &mut Writer<'_>,
    map: &IdMap,
    src_id: BlobId,
) -> Result<BlobId> {
    if let Some(mapped) = map.get(&src_id) {
        if w.known(&mapped)? {
            return Ok(mapped);
        }
    }
    let mut tree: Tree = src.read_tree(&src_id).await?;
    for node in &mut tree.nodes {
        if let Some(sub) = node.subtree {
            node.subtree = Some(Box::pin(copy_tree(src, w, map, sub)).await?);
        }
        let mut content = Vec::with_capacity(node.content.len());
        for blob in &node.content {
            let mapped = map.get(blob).filter(|m| w.known(m).unwrap_or(false));
            let id = match mapped {
                Some(m) => m,
                None => {
                    let plain = src.read_blob(blob).await?;
                    let id = w.add(BlobKind::Data, &plain).await?;
                    map.put(blob, &id);
                    id
                }
            };
            content.push(id);
        }
        node.content = content;
    }
    let id = w.add(BlobKind::Tree, &tree.encode()).await?;
    map.put(&src_id, &id);
    Ok(id)
}
