//! Index objects under `index/<id>`: which blobs each pack holds and where.
//!
//! Sealed with [`super::seal_object`]. An index object may list `supersedes`:
//! index objects it replaces (written by prune and repair); readers then ignore
//! the superseded ones even if their deletion has not happened yet.

use serde::{Deserialize, Serialize};

use super::pack::{BlobKind, Compression, FinishedPack, PackEntry};
use crate::id::{BlobId, IndexId, PackId};

/// One blob in an index object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexBlob {
    /// Data or tree.
    #[serde(rename = "k")]
    pub kind: BlobKind,
    /// Content ID.
    #[serde(rename = "i")]
    pub id: BlobId,
    /// Stored representation.
    #[serde(rename = "c")]
    pub compression: Compression,
    /// Offset in the pack.
    #[serde(rename = "o")]
    pub offset: u64,
    /// Stored length.
    #[serde(rename = "l")]
    pub length: u32,
    /// Plaintext length.
    #[serde(rename = "r")]
    pub raw_len: u32,
}

impl From<&FinishedPack> for IndexPack {
    fn from(p: &FinishedPack) -> Self {
        IndexPack {
            id: p.id,
            size: p.size(),
            blobs: p.entries.iter().map(IndexBlob::from).collect(),
        }
    }
}

impl From<&PackEntry> for IndexBlob {
    fn from(e: &PackEntry) -> Self {
        IndexBlob {
            kind: e.kind,
            id: e.id,
            compression: e.compression,
            offset: e.offset,
            length: e.length,
            raw_len: e.raw_len,
        }
    }
}

impl IndexBlob {
    /// Back to a pack entry.
    pub fn to_entry(&self) -> PackEntry {
        PackEntry {
            kind: self.kind,
            id: self.id,
            compression: self.compression,
            offset: self.offset,
            length: self.length,
            raw_len: self.raw_len,
        }
    }
}

/// One pack in an index object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    /// The pack.
    pub id: PackId,
    /// Its total size in bytes.
    pub size: u64,
    /// Its blobs.
    pub blobs: Vec<IndexBlob>,
}

/// The body of an index object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Index objects this one replaces.
    #[serde(default)]
    pub supersedes: Vec<IndexId>,
    /// Packs listed.
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    /// Number of blobs listed.
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{MasterKey, ObjectKind};
    use crate::repofile::{open_object, seal_object};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sealed_round_trip(n in 0usize..50, off in any::<u64>()) {
            let keys = MasterKey::generate().keys();
            let idx = IndexFile {
                supersedes: vec![IndexId::random()],
                packs: vec![IndexPack {
                    id: PackId::random(),
                    size: 99,
                    blobs: (0..n).map(|i| IndexBlob {
                        kind: if i % 2 == 0 { BlobKind::Data } else { BlobKind::Tree },
                        id: BlobId::random(),
                        compression: Compression::Zstd,
                        offset: off.wrapping_add(i as u64),
                        length: 17,
                        raw_len: i as u32,
                    }).collect(),
                }],
            };
            let id = IndexId::random();
            let sealed = seal_object(&keys, ObjectKind::Index, id.as_bytes(), &idx);
            let back: IndexFile = open_object(&keys, ObjectKind::Index, id.as_bytes(), "i", &sealed).unwrap();
            prop_assert_eq!(back, idx);
            // Bound to its ID: the same bytes under another ID do not open.
            let other = IndexId::random();
            prop_assert!(open_object::<IndexFile>(&keys, ObjectKind::Index, other.as_bytes(), "i", &sealed).is_err());
        }
    }
}
