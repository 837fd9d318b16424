//! `custos stats`: logical size, stored size, deduplication and compression.

use crate::repofile::pack::BlobKind;
use crate::repository::IndexedRepository;
use crate::Result;

/// Repository sizes.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Stats {
    /// Snapshots in the repository.
    pub snapshots: usize,
    /// Sum of the sizes of all files in all snapshots (what restoring every
    /// snapshot would write).
    pub logical_bytes: u64,
    /// Unique blobs.
    pub blobs: u64,
    /// Unique data blobs.
    pub data_blobs: u64,
    /// Unique tree blobs.
    pub tree_blobs: u64,
    /// Plaintext size of the unique blobs (after deduplication, before compression).
    pub unique_bytes: u64,
    /// Stored size of the unique blobs (compressed and encrypted).
    pub stored_blob_bytes: u64,
    /// Pack files holding the blobs.
    pub packs: u64,
    /// Total size of the packs (what the store bills).
    pub stored_bytes: u64,
    /// logical / unique.
    pub dedup_ratio: f64,
    /// unique / stored blob bytes.
    pub compression_ratio: f64,
    /// logical / stored.
    pub total_ratio: f64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Computes the repository's sizes from the index and snapshot summaries.
///
/// # Errors
/// Backend and cache errors.
pub async fn stats(repo: &IndexedRepository) -> Result<Stats> {
    let mut s = Stats::default();
    let (snaps, _) = repo.snapshots().await?;
    s.snapshots = snaps.len();
    s.logical_bytes = snaps.iter().map(|(_, x)| x.summary.total_bytes).sum();
    repo.index().for_each_blob(|_, loc| {
        s.blobs += 1;
        match loc.kind {
            BlobKind::Data => s.data_blobs += 1,
            BlobKind::Tree => s.tree_blobs += 1,
        }
        s.unique_bytes += u64::from(loc.raw_len);
        s.stored_blob_bytes += u64::from(loc.length);
        Ok(())
    })?;
    for (_, size) in repo.index().packs()? {
        s.packs += 1;
        s.stored_bytes += size;
    }
    s.dedup_ratio = ratio(s.logical_bytes, s.unique_bytes);
    s.compression_ratio = ratio(s.unique_bytes, s.stored_blob_bytes);
    s.total_ratio = ratio(s.logical_bytes, s.stored_bytes);
    Ok(s)
}

/// What `stats --mode` counts over the snapshots asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// What restoring the snapshots would write: files, directories, bytes.
    RestoreSize,
    /// Files counted once per distinct content.
    FilesByContents,
    /// The distinct blobs the snapshots reference: plaintext and stored bytes.
    RawData,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Mode, String> {
        match s {
            "restore-size" => Ok(Mode::RestoreSize),
            "files-by-contents" => Ok(Mode::FilesByContents),
            "raw-data" => Ok(Mode::RawData),
            other => Err(format!(
                "unknown mode {other:?}: restore-size, files-by-contents or raw-data"
            )),
        }
    }
}

/// Sizes of a set of snapshots.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SnapshotStats {
    /// Snapshots counted.
    pub snapshots: usize,
    /// The mode (`restore-size`, `files-by-contents`, `raw-data`).
    pub mode: String,
    /// Files (restore-size: every one; files-by-contents: distinct contents).
    pub files: u64,
    /// Directories (restore-size).
    pub dirs: u64,
    /// Bytes of those files.
    pub total_bytes: u64,
    /// Distinct blobs referenced (raw-data).
    pub blobs: u64,
    /// Their plaintext size (raw-data).
    pub raw_bytes: u64,
    /// Their stored size, compressed and encrypted (raw-data).
    pub stored_bytes: u64,
}

/// Counts `mode` over the snapshots whose root trees are `roots`. A tree
/// shared by several snapshots is walked once for `raw-data` and
/// `files-by-contents` (what they count is distinct anyway) and once per
/// snapshot for `restore-size`.
///
/// # Errors
/// A tree or index lookup that fails.
pub async fn snapshot_stats(
    repo: &IndexedRepository,
    roots: Vec<crate::id::BlobId>,
    mode: Mode,
) -> Result<SnapshotStats> {
    use std::collections::HashSet;
    repo.walk_trees(move |r| {
        let mut s = SnapshotStats {
            snapshots: roots.len(),
            mode: match mode {
                Mode::RestoreSize => "restore-size",
                Mode::FilesByContents => "files-by-contents",
                Mode::RawData => "raw-data",
            }
            .into(),
            ..Default::default()
        };
        let mut seen_trees: HashSet<crate::id::BlobId> = HashSet::new();
        let mut seen_blobs: HashSet<crate::id::BlobId> = HashSet::new();
        let mut seen_files: HashSet<blake3::Hash> = HashSet::new();
        for root in roots {
            let mut stack = vec![root];
            if mode == Mode::RestoreSize {
                seen_trees.clear();
            }
            while let Some(t) = stack.pop() {
                if !seen_trees.insert(t) {
                    continue;
                }
                if mode == Mode::RawData && seen_blobs.insert(t) {
                    let loc = r.repo().locate(&t)?;
                    s.blobs += 1;
                    s.raw_bytes += u64::from(loc.raw_len);
                    s.stored_bytes += u64::from(loc.length);
                }
                for n in r.read(&t)?.nodes {
                    if let Some(sub) = n.subtree {
                        s.dirs += u64::from(mode == Mode::RestoreSize);
                        stack.push(sub);
                        continue;
                    }
                    if n.kind != crate::repofile::tree::NodeKind::File {
                        continue;
                    }
                    match mode {
                        Mode::RestoreSize => {
                            s.files += 1;
                            s.total_bytes += n.size;
                        }
                        Mode::FilesByContents => {
                            let mut h = blake3::Hasher::new();
                            for b in &n.content {
                                h.update(b.as_bytes());
                            }
                            if seen_files.insert(h.finalize()) {
                                s.files += 1;
                                s.total_bytes += n.size;
                            }
                        }
                        Mode::RawData => {
                            for b in &n.content {
                                if seen_blobs.insert(*b) {
                                    let loc = r.repo().locate(b)?;
                                    s.blobs += 1;
                                    s.raw_bytes += u64::from(loc.raw_len);
                                    s.stored_bytes += u64::from(loc.length);
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(s)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::backup::{backup, BackupOptions};

    #[tokio::test]
    async fn modes_count_what_they_say() {
        let repo = crate::repository::test_repository("stats-unit").await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), b"same content").unwrap();
        std::fs::write(dir.path().join("sub/b"), b"same content").unwrap();
        std::fs::write(dir.path().join("c"), b"other").unwrap();
        let r = backup(
            &repo,
            BackupOptions {
                paths: vec![dir.path().to_path_buf()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let root = r.snapshot.tree;
        let size = snapshot_stats(&repo, vec![root, root], Mode::RestoreSize)
            .await
            .unwrap();
        assert_eq!((size.files, size.total_bytes), (6, 2 * (12 + 12 + 5)));
        let by = snapshot_stats(&repo, vec![root, root], Mode::FilesByContents)
            .await
            .unwrap();
        assert_eq!((by.files, by.total_bytes), (2, 17));
        let raw = snapshot_stats(&repo, vec![root], Mode::RawData)
            .await
            .unwrap();
        // Two distinct data blobs, and the trees on the way.
        assert!(raw.blobs >= 4, "{raw:?}");
        assert!(raw.raw_bytes >= 17);
    }
}
