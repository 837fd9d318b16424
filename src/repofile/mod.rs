//! The versioned on-storage formats: repository config, pack layout, index,
//! snapshot and tree. Each decoder rejects malformed input with an error (they
//! are fuzzed), never panics.
//!
//! See `docs/repository-format.md` for the byte-level description.
//!
//! Layer 1 of `docs/architecture.md`: it uses `id`, `crypto`, and nothing of a layer above.

pub mod config;
pub mod index;
pub mod pack;
pub mod snapshot;
pub mod tree;

use serde::{de::DeserializeOwned, Serialize};

use crate::crypto::{Keys, ObjectKind};
use crate::{Error, Result};

/// First byte of every encrypted metadata object: the format version.
pub const OBJECT_VERSION: u8 = 1;

/// Largest decompressed size of a metadata object (index, snapshot) that is
/// read (256 MiB: fifty times the largest index object written).
pub(crate) const MAX_METADATA_BYTES: u64 = 256 << 20;

/// Encodes a value as CBOR.
pub fn to_cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing CBOR into a Vec only fails on serializer errors, which our plain
    // data types (no maps with non-string keys, no custom failing impls) never raise.
    if let Err(e) = ciborium::into_writer(v, &mut out) {
        unreachable!("CBOR encoding of an in-memory value failed: {e}");
    }
    out
}

/// Decodes CBOR, naming `what` in the error.
pub fn from_cbor<T: DeserializeOwned>(what: &str, b: &[u8]) -> Result<T> {
    ciborium::from_reader(b).map_err(|e| Error::integrity(what, format!("cannot decode: {e}")))
}

/// Seals a metadata object: `version || AES-GCM(zstd(cbor(value)))` under the key
/// derived for (kind, id). The object's ID is bound to its key, so an object
/// renamed or moved is rejected.
pub fn seal_object<T: Serialize>(keys: &Keys, kind: ObjectKind, id: &[u8; 32], v: &T) -> Vec<u8> {
    let plain = to_cbor(v);
    let compressed = zstd::bulk::compress(&plain, 3).unwrap_or(plain);
    let mut out = Vec::with_capacity(compressed.len() + 17);
    out.push(OBJECT_VERSION);
    out.extend_from_slice(
        &keys
            .object_cipher(kind, id)
            .seal(0, &[OBJECT_VERSION], &compressed),
    );
    out
}

/// Opens an object sealed by [`seal_object`].
///
/// # Errors
/// [`Error::Integrity`] when the version is unknown, authentication fails, or the
/// content does not decode.
pub fn open_object<T: DeserializeOwned>(
    keys: &Keys,
    kind: ObjectKind,
    id: &[u8; 32],
    what: &str,
    data: &[u8],
) -> Result<T> {
    let (&version, rest) = data
        .split_first()
        .ok_or_else(|| Error::integrity(what, "empty object"))?;
    if version != OBJECT_VERSION {
        return Err(Error::integrity(
            what,
            format!("unknown format version {version}"),
        ));
    }
    let compressed = keys
        .object_cipher(kind, id)
        .open(0, &[OBJECT_VERSION], rest)
        .map_err(|e| Error::integrity(what, e.to_string()))?;
    // Metadata objects are small (an index object lists at most 50 000
    // blobs, a few MiB); decompress as a stream, so memory follows the real
    // size, and stop a bomb at the cap.
    let mut plain = Vec::new();
    let decoder = zstd::stream::read::Decoder::new(&compressed[..])
        .map_err(|e| Error::integrity(what, format!("cannot decompress: {e}")))?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(decoder, MAX_METADATA_BYTES + 1),
        &mut plain,
    )
    .map_err(|e| Error::integrity(what, format!("cannot decompress: {e}")))?;
    if plain.len() as u64 > MAX_METADATA_BYTES {
        return Err(Error::integrity(
            what,
            format!("decompresses to more than {MAX_METADATA_BYTES} bytes"),
        ));
    }
    from_cbor(what, &plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn a_decompression_bomb_is_refused_at_the_cap() {
        let keys = MasterKey::generate().keys();
        // 300 MiB of zeros, compressed in pieces (never held whole).
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            std::io::Write::write_all(&mut enc, &zeros).unwrap();
        }
        let compressed = enc.finish().unwrap();
        let id = [5u8; 32];
        let mut obj = vec![OBJECT_VERSION];
        obj.extend_from_slice(&keys.object_cipher(ObjectKind::Index, &id).seal(
            0,
            &[OBJECT_VERSION],
            &compressed,
        ));
        let e = open_object::<index::IndexFile>(&keys, ObjectKind::Index, &id, "index/x", &obj)
            .unwrap_err()
            .to_string();
        assert!(e.contains("decompresses to more than"), "{e}");
        // A normal object still opens.
        let ok = seal_object(&keys, ObjectKind::Index, &id, &index::IndexFile::default());
        open_object::<index::IndexFile>(&keys, ObjectKind::Index, &id, "index/x", &ok).unwrap();
    }
}
