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
