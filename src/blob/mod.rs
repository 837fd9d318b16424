//! Blob storage: compression and the packer.
//!
//! [`compress`] is pure; [`Packer`] wraps a [`PackWriter`] (the pure pack
//! builder in `repofile::pack`) with the policy of when a pack is full.
//!
//! Layer 2 of `docs/architecture.md`: it uses `id`, `crypto`, `repofile`, and nothing of a layer above.

use crate::crypto::{Keys, TAG_LEN};
use crate::id::BlobId;
use crate::repofile::pack::{BlobKind, Compression, FinishedPack, PackWriter};

/// Compresses with zstd; keeps the raw bytes when compression does not save at
/// least 1/32 (so incompressible data costs nothing to decompress).
pub fn compress(
    compressor: &mut zstd::bulk::Compressor<'_>,
    data: &[u8],
) -> (Compression, Option<Vec<u8>>) {
    let mut out = Vec::new();
    match compress_into(compressor, data, &mut out) {
        Compression::Zstd => (Compression::Zstd, Some(out)),
        Compression::Raw => (Compression::Raw, None),
    }
}

/// As [`compress`], into `out` (replacing what it held), which a caller
/// compressing many blobs keeps: a fresh buffer of a megabyte or more per
/// chunk is mapped and faulted in anew each time. When the result is
/// [`Compression::Zstd`], `out` holds the compressed bytes.
pub(crate) fn compress_into(
    compressor: &mut zstd::bulk::Compressor<'_>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Compression {
    out.clear();
    out.reserve(zstd::zstd_safe::compress_bound(data.len()));
    match compressor.compress_to_buffer(data, out) {
        Ok(n) if n + data.len() / 32 < data.len() => Compression::Zstd,
        _ => Compression::Raw,
    }
}

/// Accumulates blobs into packs of about `target` bytes.
pub struct Packer {
    keys: Keys,
    target: usize,
    current: Option<PackWriter>,
}

impl Packer {
    /// A packer for packs of about `target` bytes.
    pub fn new(keys: Keys, target: usize) -> Self {
        Packer {
            keys,
            target,
            current: None,
        }
    }

    /// Adds a blob; returns a finished pack when this one filled it.
    pub fn add(
        &mut self,
        kind: BlobKind,
        id: BlobId,
        compression: Compression,
        payload: &[u8],
        raw_len: u32,
    ) -> Option<FinishedPack> {
        let target = self.target;
        let capacity = target + target / 8;
        // A blob that would overflow the buffer goes into the next pack: the
        // buffer never reallocates (which would double it), so a pack in
        // memory stays within `capacity` plus one blob at most.
        let overflow = self
            .current
            .as_ref()
            .is_some_and(|w| !w.is_empty() && w.len() + payload.len() + TAG_LEN > capacity);
        let finished = if overflow {
            self.current.take().map(PackWriter::finish)
        } else {
            None
        };
        let w = self.current.get_or_insert_with(|| {
            // Room for the header too (entries are small; 256 KiB covers thousands).
            PackWriter::new(
                &self.keys,
                capacity.max(payload.len() + TAG_LEN) + (256 << 10),
            )
        });
        w.add(kind, id, compression, payload, raw_len);
        if finished.is_some() {
            return finished;
        }
        if w.len() >= target {
            self.current.take().map(PackWriter::finish)
        } else {
            None
        }
    }

    /// Finishes the pack in progress, if any.
    pub fn flush(&mut self) -> Option<FinishedPack> {
        self.current
            .take()
            .filter(|w| !w.is_empty())
            .map(PackWriter::finish)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn compress_keeps_raw_for_random() {
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        let random: Vec<u8> = (0..10_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let text = b"hello hello hello hello hello hello hello hello".repeat(100);
        assert_eq!(compress(&mut c, &text).0, Compression::Zstd);
        let _ = compress(&mut c, &random);
    }

    #[test]
    fn packer_cuts_at_target() {
        let keys = MasterKey::generate().keys();
        let mut p = Packer::new(keys.clone(), 1000);
        let mut finished = 0;
        for i in 0..50u32 {
            let b = vec![i as u8; 100];
            if p.add(BlobKind::Data, keys.blob_id(&b), Compression::Raw, &b, 100)
                .is_some()
            {
                finished += 1;
            }
        }
        assert!(p.flush().is_some() || finished > 0);
        assert!(finished >= 4);
    }
}
