//! Pack objects under `data/<2 hex>/<pack id>`.
//!
//! ```text
//! blob 0 ciphertext | blob 1 ciphertext | ... | header ciphertext | header length (u32 LE)
//! ```
//!
//! Every ciphertext is AES-256-GCM under the pack's own key (derived from the
//! master key and the pack ID). A blob's nonce is its byte offset in the pack; the
//! header's nonce is `u64::MAX`. The header plaintext is
//! `"CPK1" | count (u32 LE) | count × entry`, an entry being
//! `kind (u8) | compression (u8) | blob id (32) | stored length (u32 LE) | raw length (u32 LE)`;
//! blob offsets are the running sum of stored lengths.
//!
//! [`PackWriter`] is the pure core of the packer: no I/O.

use crate::crypto::{Cipher, Keys, TAG_LEN};
use crate::id::{BlobId, PackId};
use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"CPK1";
const ENTRY_LEN: usize = 42;
/// Nonce position of the header.
pub const HEADER_POSITION: u64 = u64::MAX;
/// Largest header accepted when reading (a pack never holds more blobs than this).
pub(crate) const MAX_HEADER_LEN: u32 = 64 << 20;

/// Data or tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 0,
    /// A serialized directory.
    Tree = 1,
}

/// How a blob's plaintext was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Stored as is (compression did not help).
    Raw = 0,
    /// zstd frame.
    Zstd = 1,
}

/// One blob's place in a pack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackEntry {
    /// Data or tree.
    pub kind: BlobKind,
    /// Content ID.
    pub id: BlobId,
    /// Stored representation.
    pub compression: Compression,
    /// Byte offset in the pack (also the nonce).
    pub offset: u64,
    /// Stored (ciphertext) length, tag included.
    pub length: u32,
    /// Length of the plaintext.
    pub raw_len: u32,
}

/// A pack being filled (pure, no I/O).
pub struct PackWriter {
    id: PackId,
    cipher: Cipher,
    buf: Vec<u8>,
    /// Bytes handed out by [`PackWriter::spill`] before `buf`'s.
    spilled: u64,
    entries: Vec<PackEntry>,
}

/// A complete pack, ready to upload.
pub struct FinishedPack {
    /// Its ID.
    pub id: PackId,
    /// Its bytes after the `spilled` first ones (all of them when nothing
    /// was spilled).
    pub bytes: Vec<u8>,
    /// How many of its first bytes [`PackWriter::spill`] handed out before.
    pub spilled: u64,
    /// What it holds.
    pub entries: Vec<PackEntry>,
}

impl FinishedPack {
    /// The pack's whole size in bytes.
    pub fn size(&self) -> u64 {
        self.spilled + self.bytes.len() as u64
    }

    /// The whole pack, when no part of it was spilled.
    ///
    /// # Errors
    /// [`Error::Internal`] for a pack whose first bytes were spilled: its
    /// bytes here are only its end.
    pub fn into_whole(self) -> Result<Vec<u8>> {
        if self.spilled != 0 {
            return Err(Error::Internal(format!(
                "pack {} was spilled: its first {} bytes are elsewhere",
                self.id, self.spilled
            )));
        }
        Ok(self.bytes)
    }
}

impl PackWriter {
    /// A new, empty pack with a random ID.
    pub fn new(keys: &Keys, capacity: usize) -> Self {
        let id = PackId::random();
        PackWriter {
            cipher: keys.pack_cipher(&id),
            id,
            buf: Vec::with_capacity(capacity),
            spilled: 0,
            entries: Vec::new(),
        }
    }

    /// Its ID.
    pub fn id(&self) -> &PackId {
        &self.id
    }

    /// Bytes so far, spilled ones included.
    pub fn len(&self) -> usize {
        self.spilled as usize + self.buf.len()
    }

    /// Bytes held in memory (added since the last spill).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Hands the bytes held in memory to `write` (which puts them after
    /// those it had before) and forgets them, keeping the buffer's room: a
    /// pack written out as it fills needs only a spill's worth in memory.
    ///
    /// # Errors
    /// `write`'s; the bytes are then kept.
    pub fn spill<E>(
        &mut self,
        write: impl FnOnce(&[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        write(&self.buf)?;
        self.spilled += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Encrypts and appends one blob whose (possibly compressed) payload is `payload`.
    pub fn add(
        &mut self,
        kind: BlobKind,
        id: BlobId,
        compression: Compression,
        payload: &[u8],
        raw_len: u32,
    ) {
        let offset = self.len() as u64;
        let start = self.buf.len();
        self.buf.extend_from_slice(payload);
        self.cipher.seal_tail(offset, &[], &mut self.buf, start);
        self.entries.push(PackEntry {
            kind,
            id,
            compression,
            offset,
            length: (payload.len() + TAG_LEN) as u32,
            raw_len,
        });
    }

    /// Writes the header and returns the pack.
    pub fn finish(mut self) -> FinishedPack {
        let header = encode_header(&self.entries);
        let sealed = self.cipher.seal(HEADER_POSITION, MAGIC, &header);
        self.buf.extend_from_slice(&sealed);
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        FinishedPack {
            id: self.id,
            bytes: self.buf,
            spilled: self.spilled,
            entries: self.entries,
        }
    }
}

fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut h = Vec::with_capacity(8 + entries.len() * ENTRY_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        h.push(e.kind as u8);
        h.push(e.compression as u8);
        h.extend_from_slice(e.id.as_bytes());
        h.extend_from_slice(&e.length.to_le_bytes());
        h.extend_from_slice(&e.raw_len.to_le_bytes());
    }
    h
}

/// Decodes a plaintext header into entries with offsets. `data_len` is the size
/// of the blob area (pack size minus header and length field).
///
/// # Errors
/// When the header is malformed or its blobs do not fit the blob area.
pub fn decode_header(what: &str, h: &[u8], data_len: u64) -> Result<Vec<PackEntry>> {
    let bad = |r: String| Error::integrity(what, r);
    if h.len() < 8 || &h[..4] != MAGIC {
        return Err(bad("pack header has no magic".into()));
    }
    let count = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if h.len() != 8 + count * ENTRY_LEN {
        return Err(bad(format!(
            "pack header length {} does not fit {count} entries",
            h.len()
        )));
    }
    let mut entries = Vec::with_capacity(count);
    let mut offset = 0u64;
    for chunk in h[8..].chunks_exact(ENTRY_LEN) {
        let kind = match chunk[0] {
            0 => BlobKind::Data,
            1 => BlobKind::Tree,
            k => return Err(bad(format!("unknown blob kind {k}"))),
        };
        let compression = match chunk[1] {
            0 => Compression::Raw,
            1 => Compression::Zstd,
            c => return Err(bad(format!("unknown compression {c}"))),
        };
        let id = BlobId::from_slice(&chunk[2..34]).ok_or_else(|| bad("bad blob id".into()))?;
        let length = u32::from_le_bytes([chunk[34], chunk[35], chunk[36], chunk[37]]);
        let raw_len = u32::from_le_bytes([chunk[38], chunk[39], chunk[40], chunk[41]]);
        if (length as usize) < TAG_LEN {
            return Err(bad(format!("blob {} is shorter than its tag", id.short())));
        }
        entries.push(PackEntry {
            kind,
            id,
            compression,
            offset,
            length,
            raw_len,
        });
        offset += u64::from(length);
    }
    if offset != data_len {
        return Err(bad(format!(
            "pack header describes {offset} bytes of blobs, pack holds {data_len}"
        )));
    }
    Ok(entries)
}

/// Reads and authenticates the header of a complete pack.
///
/// # Errors
/// When the pack is truncated, the header fails authentication or does not decode.
pub fn read_header(keys: &Keys, id: &PackId, pack: &[u8]) -> Result<Vec<PackEntry>> {
    let what = format!("pack {id}");
    let n = pack.len();
    if n < 4 {
        return Err(Error::integrity(&what, "truncated: no header length"));
    }
    let hlen = u32::from_le_bytes([pack[n - 4], pack[n - 3], pack[n - 2], pack[n - 1]]);
    if hlen > MAX_HEADER_LEN || hlen as usize + 4 > n {
        return Err(Error::integrity(
            &what,
            format!("truncated or bad header length {hlen}"),
        ));
    }
    let hstart = n - 4 - hlen as usize;
    let header = keys
        .pack_cipher(id)
        .open(HEADER_POSITION, MAGIC, &pack[hstart..n - 4])
        .map_err(|e| Error::integrity(&what, format!("header: {e}")))?;
    decode_header(&what, &header, hstart as u64)
}

/// Decrypts one blob and verifies it, returning the stored payload (still
/// compressed if it was) for copying into another pack without recompressing.
///
/// # Errors
/// As [`open_blob`].
pub(crate) fn open_payload(
    keys: &Keys,
    pack: &PackId,
    e: &PackEntry,
    stored: &[u8],
) -> Result<Vec<u8>> {
    let what = || format!("blob {} in pack {}", e.id, pack);
    let payload = keys
        .pack_cipher(pack)
        .open(e.offset, &[], stored)
        .map_err(|err| Error::integrity(what(), err.to_string()))?;
    let plain_id = match e.compression {
        Compression::Raw => keys.blob_id(&payload),
        Compression::Zstd => {
            let plain = zstd::bulk::decompress(&payload, e.raw_len as usize)
                .map_err(|err| Error::integrity(what(), format!("cannot decompress: {err}")))?;
            keys.blob_id(&plain)
        }
    };
    if plain_id != e.id {
        return Err(Error::integrity(what(), "content does not match its ID"));
    }
    Ok(payload)
}

/// Opens blobs one after another with the same buffers and the same zstd
/// context, instead of two fresh allocations and a context per blob: a
/// restore or a `check --read-data` opens every blob of the repository, and
/// large fresh buffers cost a page fault per 4 KiB each time (they are
/// mapped and unmapped: see `tune_allocator` in `main.rs`). It holds two
/// buffers of the largest blob it opened (blobs are at most 16 MiB); the
/// operations keep one per task in flight (`util::Pool`).
pub(crate) struct BlobOpener {
    payload: Vec<u8>,
    plain: Vec<u8>,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
}

impl BlobOpener {
    /// An opener with empty buffers.
    pub(crate) fn new() -> BlobOpener {
        BlobOpener {
            payload: Vec::new(),
            plain: Vec::new(),
            zstd: None,
        }
    }

    /// Decrypts, decompresses and verifies one blob's stored bytes, as
    /// [`open_blob`]; the plaintext is valid until the next call.
    ///
    /// # Errors
    /// As [`open_blob`].
    pub(crate) fn open(
        &mut self,
        keys: &Keys,
        pack: &PackId,
        e: &PackEntry,
        stored: &[u8],
    ) -> Result<&[u8]> {
        let mut payload = std::mem::take(&mut self.payload);
        let what = || format!("blob {} in pack {}", e.id, pack);
        let opened = keys
            .pack_cipher(pack)
            .open_into(e.offset, &[], stored, &mut payload)
            .map_err(|err| Error::integrity(what(), err.to_string()));
        self.payload = payload;
        opened?;
        let BlobOpener {
            payload,
            plain,
            zstd,
        } = self;
        finish_blob(keys, pack, e, payload, plain, zstd)
    }

    /// As [`BlobOpener::open`], decrypting `stored` where it lies (it is
    /// the caller's scratch copy of the pack's bytes, which this destroys):
    /// no copy of the payload.
    ///
    /// # Errors
    /// As [`open_blob`].
    pub(crate) fn open_in_place<'a>(
        &'a mut self,
        keys: &Keys,
        pack: &PackId,
        e: &PackEntry,
        stored: &'a mut [u8],
    ) -> Result<&'a [u8]> {
        let what = || format!("blob {} in pack {}", e.id, pack);
        let payload = keys
            .pack_cipher(pack)
            .open_in_place(e.offset, &[], stored)
            .map_err(|err| Error::integrity(what(), err.to_string()))?;
        finish_blob(keys, pack, e, payload, &mut self.plain, &mut self.zstd)
    }
}

/// Decompresses a blob's decrypted `payload` (into `plain`, with `zstd`'s
/// context) when it is compressed, and checks its length and ID; returns
/// the plaintext.
fn finish_blob<'a>(
    keys: &Keys,
    pack: &PackId,
    e: &PackEntry,
    payload: &'a [u8],
    plain: &'a mut Vec<u8>,
    zstd: &mut Option<zstd::bulk::Decompressor<'static>>,
) -> Result<&'a [u8]> {
    let what = || format!("blob {} in pack {}", e.id, pack);
    let plain: &[u8] = match e.compression {
        Compression::Raw => payload,
        Compression::Zstd => {
            let dctx = match zstd {
                Some(d) => d,
                None => zstd.insert(zstd::bulk::Decompressor::new().map_err(|err| {
                    Error::Internal(format!("cannot make a zstd context: {err}"))
                })?),
            };
            plain.clear();
            plain.reserve(e.raw_len as usize);
            dctx.decompress_to_buffer(payload, plain)
                .map_err(|err| Error::integrity(what(), format!("cannot decompress: {err}")))?;
            plain
        }
    };
    if plain.len() != e.raw_len as usize {
        return Err(Error::integrity(what(), "length differs from the index"));
    }
    if keys.blob_id(plain) != e.id {
        return Err(Error::integrity(what(), "content does not match its ID"));
    }
    Ok(plain)
}

/// Decrypts, decompresses and verifies one blob's stored bytes. The zstd
/// context is the thread's own, kept between calls (making one was 6 % of a
/// `check` that opened every tree).
///
/// # Errors
/// When authentication, decompression or the ID check fails.
pub(crate) fn open_blob(
    keys: &Keys,
    pack: &PackId,
    e: &PackEntry,
    stored: &[u8],
) -> Result<Vec<u8>> {
    thread_local! {
        static ZSTD: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    ZSTD.with_borrow_mut(|zstd| {
        let mut opener = BlobOpener {
            payload: Vec::new(),
            plain: Vec::new(),
            zstd: zstd.take(),
        };
        let opened = opener.open(keys, pack, e, stored).map(<[u8]>::to_vec);
        *zstd = opener.zstd.take();
        opened
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use proptest::prelude::*;

    fn build(keys: &Keys, blobs: &[Vec<u8>]) -> FinishedPack {
        let mut w = PackWriter::new(keys, 0);
        for b in blobs {
            w.add(
                BlobKind::Data,
                keys.blob_id(b),
                Compression::Raw,
                b,
                b.len() as u32,
            );
        }
        w.finish()
    }

    proptest! {
        #[test]
        fn round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let keys = MasterKey::generate().keys();
            let p = build(&keys, &blobs);
            let entries = read_header(&keys, &p.id, &p.bytes).unwrap();
            prop_assert_eq!(&entries, &p.entries);
            for (e, b) in entries.iter().zip(&blobs) {
                let stored = &p.bytes[e.offset as usize..(e.offset + u64::from(e.length)) as usize];
                prop_assert_eq!(&open_blob(&keys, &p.id, e, stored).unwrap(), b);
            }
        }

        /// A pack written out in parts as it fills (spilled after the blobs
        /// `spill_after` picks) is the same pack as one kept whole.
        #[test]
        fn spilled_pack_reads_back_whole(
            blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
            spill_after in proptest::collection::vec(any::<bool>(), 20),
        ) {
            let keys = MasterKey::generate().keys();
            let mut w = PackWriter::new(&keys, 0);
            let mut out = Vec::new();
            for (b, spill) in blobs.iter().zip(&spill_after) {
                w.add(BlobKind::Data, keys.blob_id(b), Compression::Raw, b, b.len() as u32);
                if *spill {
                    w.spill(|part| { out.extend_from_slice(part); Ok::<(), ()>(()) }).unwrap();
                    prop_assert_eq!(w.buffered(), 0);
                    prop_assert_eq!(w.len(), out.len());
                }
            }
            let p = w.finish();
            prop_assert_eq!(p.spilled, out.len() as u64);
            out.extend_from_slice(&p.bytes);
            prop_assert_eq!(p.size(), out.len() as u64);
            let entries = read_header(&keys, &p.id, &out).unwrap();
            prop_assert_eq!(&entries, &p.entries);
            for (e, b) in entries.iter().zip(&blobs) {
                let stored = &out[e.offset as usize..(e.offset + u64::from(e.length)) as usize];
                prop_assert_eq!(&open_blob(&keys, &p.id, e, stored).unwrap(), b);
            }
            if p.spilled > 0 {
                prop_assert!(p.into_whole().is_err());
            }
        }

        #[test]
        fn decode_header_never_panics(h in proptest::collection::vec(any::<u8>(), 0..200), n in 0u64..10_000) {
            let _ = decode_header("x", &h, n);
        }
    }

    #[test]
    fn flipped_byte_anywhere_is_detected() {
        let keys = MasterKey::generate().keys();
        let blobs = vec![b"alpha".to_vec(), b"beta beta".to_vec()];
        let p = build(&keys, &blobs);
        for i in 0..p.bytes.len() {
            let mut bad = p.bytes.clone();
            bad[i] ^= 0x01;
            let ok = match read_header(&keys, &p.id, &bad) {
                Err(_) => false,
                Ok(entries) => entries.iter().zip(&blobs).all(|(e, _)| {
                    let s = &bad[e.offset as usize..(e.offset + u64::from(e.length)) as usize];
                    open_blob(&keys, &p.id, e, s).is_ok()
                }),
            };
            assert!(!ok, "flip at {i} went unnoticed");
        }
    }
}
