//! The blob index: blob → (pack, offset, length), served from an on-disk cache.
//!
//! The repository's `index/` objects are the truth; this module keeps a sled
//! database under the cache directory with every entry of every live index
//! object, so lookups cost a B-tree probe and memory does not grow with the
//! repository. On open the cache is brought up to date:
//!
//! | cache state | action |
//! |---|---|
//! | missing | load every index object |
//! | knows only objects that still exist | load the new ones |
//! | knows an object that is gone (prune, repair rewrote the index) | clear, load all |
//! | locked by another process | use a private temporary cache for this run |
//!
//! Loading an object inserts its entries first and marks the object loaded last,
//! so a crash in between only means the object is loaded again.
//!
//! Layer 2 of `docs/architecture.md`: it uses `error`, `id`, `repofile`, and nothing of a layer above.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::id::{BlobId, IndexId, PackId};
use crate::repofile::index::{IndexBlob, IndexFile};
use crate::repofile::pack::{BlobKind, Compression};
use crate::{Error, Result};

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Pack holding it.
    pub pack: PackId,
    /// Data or tree.
    pub kind: BlobKind,
    /// Stored representation.
    pub compression: Compression,
    /// Offset in the pack.
    pub offset: u64,
    /// Stored length.
    pub length: u32,
    /// Plaintext length.
    pub raw_len: u32,
}

const LOC_LEN: usize = 32 + 1 + 1 + 8 + 4 + 4;

impl Location {
    fn encode(&self) -> [u8; LOC_LEN] {
        let mut b = [0u8; LOC_LEN];
        b[..32].copy_from_slice(self.pack.as_bytes());
        b[32] = self.kind as u8;
        b[33] = self.compression as u8;
        b[34..42].copy_from_slice(&self.offset.to_le_bytes());
        b[42..46].copy_from_slice(&self.length.to_le_bytes());
        b[46..50].copy_from_slice(&self.raw_len.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Location> {
        if b.len() != LOC_LEN {
            return None;
        }
        Some(Location {
            pack: PackId::from_slice(&b[..32])?,
            kind: match b[32] {
                0 => BlobKind::Data,
                1 => BlobKind::Tree,
                _ => return None,
            },
            compression: match b[33] {
                0 => Compression::Raw,
                1 => Compression::Zstd,
                _ => return None,
            },
            offset: u64::from_le_bytes(b[34..42].try_into().ok()?),
            length: u32::from_le_bytes(b[42..46].try_into().ok()?),
            raw_len: u32::from_le_bytes(b[46..50].try_into().ok()?),
        })
    }

    /// The pack entry this location describes.
    pub fn entry(&self, id: BlobId) -> crate::repofile::pack::PackEntry {
        crate::repofile::pack::PackEntry {
            kind: self.kind,
            id,
            compression: self.compression,
            offset: self.offset,
            length: self.length,
            raw_len: self.raw_len,
        }
    }
}

/// The on-disk blob index of one repository.
pub struct BlobIndex {
    db: sled::Db,
    blobs: sled::Tree,
    packs: sled::Tree,
    by_pack: sled::Tree,
    loaded: sled::Tree,
    superseded: sled::Tree,
    dir: std::path::PathBuf,
    _temp: Option<tempfile::TempDir>,
}

fn sled_err(path: &Path) -> impl Fn(sled::Error) -> Error + '_ {
    move |e| cache_error(path, e)
}

/// A cache error with the directory named; a full disk is said plainly (and
/// keeps ENOSPC, so that callers can tell).
fn cache_error(dir: &Path, e: sled::Error) -> Error {
    let full = |io: &std::io::Error| {
        io.kind() == std::io::ErrorKind::StorageFull
            || io.raw_os_error() == Some(libc::ENOSPC)
            || io.to_string().contains("No space left on device")
    };
    match e {
        sled::Error::Io(io) if full(&io) => Error::io(
            format!(
                "the cache directory {} is full: free space there or set CUSTOS_CACHE_DIR to another disk (the cache is only a copy of the repository's index; the repository is unchanged)",
                dir.display()
            ),
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        ),
        sled::Error::Io(io) => Error::io(format!("index cache {}", dir.display()), io),
        other => Error::io(
            format!("index cache {}", dir.display()),
            std::io::Error::other(other.to_string()),
        ),
    }
}

impl BlobIndex {
    /// Opens (or creates) the cache at `dir`. If another process holds it, or it is
    /// damaged, falls back to a private temporary cache.
    ///
    /// # Errors
    /// When neither the cache nor a temporary one can be opened.
    pub fn open(dir: Option<&Path>) -> Result<BlobIndex> {
        if let Some(dir) = dir {
            match Self::open_at(dir, None) {
                Ok(i) => return Ok(i),
                Err(e) => {
                    tracing::warn!(cache = %dir.display(), error = %e, "index cache unavailable, using a temporary one for this run");
                }
            }
        }
        let tmp = tempfile::Builder::new()
            .prefix("custos-index-")
            .tempdir()
            .map_err(|e| Error::io("cannot create a temporary index cache", e))?;
        let path = tmp.path().join("index");
        Self::open_at(&path, Some(tmp))
    }

    fn open_at(dir: &Path, temp: Option<tempfile::TempDir>) -> Result<BlobIndex> {
        std::fs::create_dir_all(dir)
            .map_err(crate::error::at("cannot create cache directory", dir))?;
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(32 << 20)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(sled_err(dir))?;
        let blobs = db.open_tree("blobs").map_err(sled_err(dir))?;
        let packs = db.open_tree("packs").map_err(sled_err(dir))?;
        let by_pack = db.open_tree("by_pack").map_err(sled_err(dir))?;
        let loaded = db.open_tree("loaded").map_err(sled_err(dir))?;
        let superseded = db.open_tree("superseded").map_err(sled_err(dir))?;
        Ok(BlobIndex {
            db,
            blobs,
            packs,
            by_pack,
            loaded,
            superseded,
            dir: dir.to_path_buf(),
            _temp: temp,
        })
    }

    fn err(&self) -> impl Fn(sled::Error) -> Error + '_ {
        |e| cache_error(&self.dir, e)
    }

    /// Index objects already loaded.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn loaded(&self) -> Result<HashSet<IndexId>> {
        let mut out = HashSet::new();
        for kv in self.loaded.iter() {
            let (k, _) = kv.map_err(self.err())?;
            if let Some(id) = IndexId::from_slice(&k) {
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// Index objects that a loaded object supersedes.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn superseded(&self) -> Result<HashSet<IndexId>> {
        let mut out = HashSet::new();
        for kv in self.superseded.iter() {
            let (k, _) = kv.map_err(self.err())?;
            if let Some(id) = IndexId::from_slice(&k) {
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// Forgets every entry and loaded object, to be loaded again. The
    /// superseded set stays: an object once superseded never counts again
    /// (IDs are random), and rollback detection needs the whole history.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn clear(&self) -> Result<()> {
        self.blobs.clear().map_err(self.err())?;
        self.packs.clear().map_err(self.err())?;
        self.by_pack.clear().map_err(self.err())?;
        self.loaded.clear().map_err(self.err())?;
        Ok(())
    }

    /// Adds the entries of one index object and marks it loaded.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn add_index(&self, id: IndexId, file: &IndexFile) -> Result<()> {
        for p in &file.packs {
            self.add_pack(p.id, p.size, &p.blobs)?;
        }
        for s in &file.supersedes {
            self.superseded
                .insert(s.as_bytes(), &[])
                .map_err(self.err())?;
        }
        self.loaded.insert(id.as_bytes(), &[]).map_err(self.err())?;
        Ok(())
    }

    /// Records that index object `id` is gone (replaced and deleted), so that
    /// readers do not ask for it again.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn mark_gone(&self, id: IndexId) -> Result<()> {
        self.superseded
            .insert(id.as_bytes(), &[])
            .map_err(self.err())?;
        Ok(())
    }

    /// Adds one pack's entries (not tied to an index object: used while writing).
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn add_pack(&self, pack: PackId, size: u64, blobs: &[IndexBlob]) -> Result<()> {
        let mut batch = sled::Batch::default();
        let mut by_pack = sled::Batch::default();
        for b in blobs {
            let mut k = [0u8; 40];
            k[..32].copy_from_slice(pack.as_bytes());
            k[32..].copy_from_slice(&b.offset.to_be_bytes());
            let mut v = Vec::with_capacity(32 + LOC_LEN);
            v.extend_from_slice(b.id.as_bytes());
            v.extend_from_slice(
                &Location {
                    pack,
                    kind: b.kind,
                    compression: b.compression,
                    offset: b.offset,
                    length: b.length,
                    raw_len: b.raw_len,
                }
                .encode(),
            );
            by_pack.insert(&k[..], v);
            let loc = Location {
                pack,
                kind: b.kind,
                compression: b.compression,
                offset: b.offset,
                length: b.length,
                raw_len: b.raw_len,
            };
            batch.insert(b.id.as_bytes(), &loc.encode()[..]);
        }
        self.blobs.apply_batch(batch).map_err(self.err())?;
        self.by_pack.apply_batch(by_pack).map_err(self.err())?;
        self.packs
            .insert(pack.as_bytes(), &size.to_le_bytes())
            .map_err(self.err())?;
        Ok(())
    }

    /// Where a blob is, if known.
    ///
    /// # Errors
    /// On cache I/O errors or a damaged cache entry.
    pub fn get(&self, id: &BlobId) -> Result<Option<Location>> {
        match self.blobs.get(id.as_bytes()).map_err(self.err())? {
            None => Ok(None),
            Some(v) => Location::decode(&v).map(Some).ok_or_else(|| {
                Error::integrity("index cache", "damaged entry: delete the cache directory")
            }),
        }
    }

    /// True when the blob is known.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        self.blobs.contains_key(id.as_bytes()).map_err(self.err())
    }

    /// Every pack with its size.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn packs(&self) -> Result<Vec<(PackId, u64)>> {
        let mut out = Vec::new();
        for kv in self.packs.iter() {
            let (k, v) = kv.map_err(self.err())?;
            let size = v.as_ref().try_into().map(u64::from_le_bytes).unwrap_or(0);
            if let Some(id) = PackId::from_slice(&k) {
                out.push((id, size));
            }
        }
        Ok(out)
    }

    /// The blobs the index places in one pack, by offset.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn blobs_in_pack(&self, pack: &PackId) -> Result<Vec<(BlobId, Location)>> {
        let mut out = Vec::new();
        for kv in self.by_pack.scan_prefix(pack.as_bytes()) {
            let (_, v) = kv.map_err(self.err())?;
            // The location in *this* pack: another pack may hold the same blob
            // (duplicates from concurrent backups), and the by-blob map keeps one.
            let bad = || Error::integrity("index cache", "bad entry: delete the cache directory");
            let id = BlobId::from_slice(v.get(..32).ok_or_else(bad)?).ok_or_else(bad)?;
            let loc = Location::decode(&v[32..]).ok_or_else(bad)?;
            out.push((id, loc));
        }
        Ok(out)
    }

    /// Iterates over every blob and its location.
    pub fn iter(&self) -> impl Iterator<Item = Result<(BlobId, Location)>> + '_ {
        self.blobs.iter().map(|kv| {
            let (k, v) = kv.map_err(self.err())?;
            let id =
                BlobId::from_slice(&k).ok_or_else(|| Error::integrity("index cache", "bad key"))?;
            let loc =
                Location::decode(&v).ok_or_else(|| Error::integrity("index cache", "bad entry"))?;
            Ok((id, loc))
        })
    }

    /// Number of blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Makes what was written durable.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(self.err())
    }
}

/// The default cache directory: `$CUSTOS_CACHE_DIR`, `$XDG_CACHE_HOME/custos`,
/// or `~/.cache/custos`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("CUSTOS_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("custos"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("custos"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repofile::index::IndexPack;

    #[test]
    fn add_and_lookup_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let blob = BlobId::random();
        let pack = PackId::random();
        let idx = IndexId::random();
        {
            let i = BlobIndex::open(Some(dir.path())).unwrap();
            let f = IndexFile {
                supersedes: vec![],
                packs: vec![IndexPack {
                    id: pack,
                    size: 100,
                    blobs: vec![IndexBlob {
                        kind: BlobKind::Tree,
                        id: blob,
                        compression: Compression::Zstd,
                        offset: 7,
                        length: 20,
                        raw_len: 30,
                    }],
                }],
            };
            i.add_index(idx, &f).unwrap();
            i.flush().unwrap();
        }
        let i = BlobIndex::open(Some(dir.path())).unwrap();
        let loc = i.get(&blob).unwrap().unwrap();
        assert_eq!(
            (loc.pack, loc.offset, loc.length, loc.raw_len),
            (pack, 7, 20, 30)
        );
        assert!(i.loaded().unwrap().contains(&idx));
        assert_eq!(i.packs().unwrap(), vec![(pack, 100)]);
        // A second opener while the first holds it gets a private cache.
        let j = BlobIndex::open(Some(dir.path())).unwrap();
        assert!(j.is_empty());
    }
}
