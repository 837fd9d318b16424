//! The versioned on-storage formats: repository config, pack layout, index,
//! snapshot and tree. Each decoder rejects malformed input with an error (they
//! are fuzzed), never panics.
//!
//! See `docs/repository-format.md` for the byte-level description.

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
    // Metadata objects are small; cap decompression to stop a bomb anyway.
    let plain = zstd::bulk::decompress(&compressed, 1 << 30)
        .map_err(|e| Error::integrity(what, format!("cannot decompress: {e}")))?;
    from_cbor(what, &plain)
}
