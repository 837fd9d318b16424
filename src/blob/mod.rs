//! Blob storage: compression and the packer.
//!
//! [`compress`] is pure; [`Packer`] wraps a [`PackWriter`] (the pure pack
//! builder in `repofile::pack`) with the policy of when a pack is full.
//!
//! Layer 2 of `docs/architecture.md`: it uses `id`, `crypto`, `repofile`, and nothing of a layer above.

use crate::crypto::{Keys, TAG_LEN};
use crate::id::{BlobId, PackId};
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
    /// Room a new pack's buffer is made with (`None`: the whole pack's).
    buffer: Option<usize>,
    current: Option<PackWriter>,
}

impl Packer {
    /// A packer for packs of about `target` bytes, each held whole in memory.
    pub fn new(keys: Keys, target: usize) -> Self {
        Packer {
            keys,
            target,
            buffer: None,
            current: None,
        }
    }

    /// A packer whose packs are written out as they fill ([`Packer::spill`]):
    /// a pack's buffer is made with `buffer` bytes of room, not a pack's.
    pub fn spilling(keys: Keys, target: usize, buffer: usize) -> Self {
        Packer {
            keys,
            target,
            buffer: Some(buffer),
            current: None,
        }
    }

    /// When the pack being filled holds at least `at_least` bytes in
    /// memory, hands them to `write` with the pack's ID (see
    /// [`PackWriter::spill`]).
    ///
    /// # Errors
    /// `write`'s.
    pub fn spill<E>(
        &mut self,
        at_least: usize,
        write: impl FnOnce(&PackId, &[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        match &mut self.current {
            Some(w) if w.buffered() >= at_least && w.buffered() > 0 => {
                let id = *w.id();
                w.spill(|bytes| write(&id, bytes))
            }
            _ => Ok(()),
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
        let buffer = self.buffer;
        let w = self.current.get_or_insert_with(|| {
            // Room for the header too (entries are small; 256 KiB covers thousands).
            let room = buffer.unwrap_or(capacity).max(payload.len() + TAG_LEN) + (256 << 10);
            PackWriter::new(&self.keys, room)
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

    #[test]
    fn a_spilling_packer_cuts_at_the_same_places_and_holds_only_a_spill() {
        let keys = MasterKey::generate().keys();
        let mut whole = Packer::new(keys.clone(), 1000);
        let mut spilling = Packer::spilling(keys.clone(), 1000, 300);
        let mut out = Vec::new();
        for i in 0..50u32 {
            let b = vec![i as u8; 100];
            let id = keys.blob_id(&b);
            let a = whole.add(BlobKind::Data, id, Compression::Raw, &b, 100);
            let s = spilling.add(BlobKind::Data, id, Compression::Raw, &b, 100);
            assert_eq!(a.is_some(), s.is_some());
            if let (Some(a), Some(s)) = (a, s) {
                assert_eq!(a.entries, s.entries);
                assert_eq!(a.size(), s.size());
                assert_eq!(s.spilled, out.len() as u64);
                out.clear();
            }
            spilling
                .spill(300, |_, bytes| {
                    out.extend_from_slice(bytes);
                    Ok::<(), ()>(())
                })
                .unwrap();
            let held = spilling.current.as_ref().map_or(0, PackWriter::buffered);
            assert!(held < 300, "{held} bytes held after a spill");
        }
    }
}
