//! The blob index: blob → (pack, offset, length), served from an on-disk cache.
//!
//! The repository's `index/` objects are the truth; this module keeps a copy
//! of every entry of every live index object under the cache directory, so
//! that lookups cost a filter probe and one or two small reads, and memory
//! does not grow with the repository (about 1.3 bytes per blob for the
//! filters and samples of [`runs`], plus 80 bytes per pack). On open the
//! cache is brought up to date:
//!
//! | cache state | action |
//! |---|---|
//! | missing | load every index object |
//! | knows only objects that still exist | load the new ones |
//! | knows an object that is gone (prune, repair rewrote the index) | clear, load all |
//! | locked by another process | use a private temporary cache for this run |
//!
//! Files in the cache directory:
//!
//! ```text
//! packs      every pack as its index object lists it, appended: pack ID [32],
//!            size u64, blob count u32, then per blob ID [32], kind and
//!            compression u8, offset u48, length u32, raw length u32 (47 B)
//! run-<seq>  sorted runs of (first 12 bytes of the blob ID → pack number,
//!            blob number), see [`runs`]
//! manifest   which runs are current, how much of `packs` is whole, which
//!            index objects are loaded, and which are superseded and by
//!            which object; replaced atomically, with a BLAKE3 checksum
//! lock       flock'ed by the process using the cache
//! ```
//!
//! Entries go to `packs` as they are added and to a run every
//! [`MEMORY_ENTRIES`] blobs or at [`BlobIndex::flush`]; the manifest names
//! only what was written whole, so a crash only means some objects are loaded
//! again. A lookup finds the candidates by ID prefix and confirms the full ID
//! in `packs`; the cache is about 69 bytes per blob (index objects are
//! about 39).
//!
//! Layer 2 of `docs/architecture.md`: it uses `error`, `id`, `repofile`, and nothing of a layer above.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::id::{BlobId, IndexId, PackId};
use crate::repofile::index::{IndexBlob, IndexFile};
use crate::repofile::pack::{BlobKind, Compression};
use crate::{Error, Result};

pub(crate) mod runs;

use runs::RunStack;

/// Blob entries kept in memory before they go to a run file.
pub(crate) const MEMORY_ENTRIES: usize = 1 << 16;

const PACK_HEAD: usize = 32 + 8 + 4;
const ENTRY: usize = 32 + 1 + 6 + 4 + 4;
const MANIFEST_MAGIC: &[u8; 8] = b"CXIDXM02";

/// Stands for "found deleted" where a superseding object is recorded.
const GONE: IndexId = IndexId([0; 32]);
const RUN_PREFIX: &str = "run-";
type Prefix = [u8; PREFIX];
const PREFIX: usize = 12;

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

impl Location {
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

fn encode_entry(b: &IndexBlob, out: &mut Vec<u8>) -> Result<()> {
    if b.offset >= 1 << 48 {
        return Err(Error::Internal(format!(
            "blob {} at offset {} of its pack: beyond what the index cache records",
            b.id, b.offset
        )));
    }
    out.extend_from_slice(b.id.as_bytes());
    out.push(b.kind as u8 | (b.compression as u8) << 1);
    out.extend_from_slice(&b.offset.to_le_bytes()[..6]);
    out.extend_from_slice(&b.length.to_le_bytes());
    out.extend_from_slice(&b.raw_len.to_le_bytes());
    Ok(())
}

fn decode_entry(pack: PackId, b: &[u8]) -> Option<(BlobId, Location)> {
    if b.len() != ENTRY {
        return None;
    }
    let id = BlobId::from_slice(&b[..32])?;
    Some((
        id,
        Location {
            pack,
            kind: match b[32] & 1 {
                0 => BlobKind::Data,
                _ => BlobKind::Tree,
            },
            compression: match b[32] >> 1 {
                0 => Compression::Raw,
                1 => Compression::Zstd,
                _ => return None,
            },
            offset: {
                let mut o = [0u8; 8];
                o[..6].copy_from_slice(&b[33..39]);
                u64::from_le_bytes(o)
            },
            length: u32::from_le_bytes(b[39..43].try_into().ok()?),
            raw_len: u32::from_le_bytes(b[43..47].try_into().ok()?),
        },
    ))
}

fn prefix(id: &BlobId) -> Prefix {
    let mut p = [0u8; PREFIX];
    p.copy_from_slice(&id.as_bytes()[..PREFIX]);
    p
}

fn value(pack: u32, member: u32) -> u64 {
    (u64::from(pack) << 32) | u64::from(member)
}

/// A pack as the cache knows it.
struct PackMeta {
    id: PackId,
    size: u64,
    /// Where its blob entries start in `packs`.
    entries_at: u64,
    blobs: u32,
}

struct State {
    packs_file: File,
    packs_len: u64,
    packs: Vec<PackMeta>,
    by_id: HashMap<PackId, u32>,
    runs: RunStack<PREFIX>,
    /// Entries not in a run yet: (prefix, value), unsorted.
    mem: Vec<(Prefix, u64)>,
    /// The same, for lookups.
    mem_map: HashMap<Prefix, u64, runs::KeyBuild>,
    /// Prefixes of `mem` with more than one value (rare: one blob in two packs).
    mem_more: Vec<(Prefix, u64)>,
    loaded: HashSet<IndexId>,
    /// Superseded index objects → the object that superseded them (the
    /// newest loaded), or [`GONE`] when it was found deleted.
    superseded: HashMap<IndexId, IndexId>,
    entries: u64,
    /// Something changed since the manifest was written.
    dirty: bool,
}

/// The on-disk blob index of one repository.
pub struct BlobIndex {
    dir: PathBuf,
    state: RwLock<State>,
    _lock: File,
    _temp: Option<tempfile::TempDir>,
}

fn io_at<'a>(what: &'static str, dir: &'a Path) -> impl Fn(std::io::Error) -> Error + 'a {
    move |e| {
        let full =
            e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc::ENOSPC);
        if full {
            Error::io(
                format!(
                    "the cache directory {} is full: free space there or set CUSTOS_CACHE_DIR to another disk (the cache is only a copy of the repository's index; the repository is unchanged)",
                    dir.display()
                ),
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            )
        } else {
            Error::io(format!("index cache {}: {what}", dir.display()), e)
        }
    }
}

fn damaged(dir: &Path, why: &str) -> Error {
    Error::integrity(
        format!("index cache {}", dir.display()),
        format!("{why}: delete the cache directory"),
    )
}

/// What the manifest records.
#[derive(Default)]
struct Manifest {
    packs_len: u64,
    next_seq: u64,
    runs: Vec<u64>,
    loaded: Vec<IndexId>,
    /// (superseded, by) pairs.
    superseded: Vec<(IndexId, IndexId)>,
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(MANIFEST_MAGIC);
        b.extend_from_slice(&self.packs_len.to_le_bytes());
        b.extend_from_slice(&self.next_seq.to_le_bytes());
        b.extend_from_slice(&(self.runs.len() as u64).to_le_bytes());
        for r in &self.runs {
            b.extend_from_slice(&r.to_le_bytes());
        }
        let pairs: Vec<IndexId> = self.superseded.iter().flat_map(|(a, b)| [*a, *b]).collect();
        for ids in [&self.loaded, &pairs] {
            b.extend_from_slice(&(ids.len() as u64).to_le_bytes());
            for id in ids {
                b.extend_from_slice(id.as_bytes());
            }
        }
        let sum = blake3::hash(&b);
        b.extend_from_slice(sum.as_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Manifest> {
        let (body, sum) = b.split_at(b.len().checked_sub(32)?);
        if blake3::hash(body).as_bytes() != sum || body.get(..8)? != MANIFEST_MAGIC {
            return None;
        }
        let mut at = 8;
        let mut u64_next = || {
            let v = u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?);
            at += 8;
            Some(v)
        };
        let mut m = Manifest {
            packs_len: u64_next()?,
            next_seq: u64_next()?,
            ..Manifest::default()
        };
        let n = u64_next()?;
        for _ in 0..n {
            m.runs.push(u64_next()?);
        }
        let ids = |at: &mut usize| -> Option<Vec<IndexId>> {
            let n = u64::from_le_bytes(body.get(*at..*at + 8)?.try_into().ok()?);
            *at += 8;
            let mut out = Vec::new();
            for _ in 0..n {
                out.push(IndexId::from_slice(body.get(*at..*at + 32)?)?);
                *at += 32;
            }
            Some(out)
        };
        m.loaded = ids(&mut at)?;
        let pairs = ids(&mut at)?;
        if pairs.len() % 2 != 0 {
            return None;
        }
        m.superseded = pairs.chunks(2).map(|p| (p[0], p[1])).collect();
        (at == body.len()).then_some(m)
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
        let lock = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("lock"))
            .map_err(io_at("cannot open its lock", dir))?;
        // SAFETY: flock on a descriptor this function owns; no memory is involved.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::io(
                format!("index cache {} is in use by another process", dir.display()),
                std::io::Error::last_os_error(),
            ));
        }
        remove_legacy(dir);
        let state = match Self::load_state(dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(cache = %dir.display(), error = %e, "index cache damaged: rebuilding it");
                Self::fresh_state(dir, HashMap::new())?
            }
        };
        Ok(BlobIndex {
            dir: dir.to_path_buf(),
            state: RwLock::new(state),
            _lock: lock,
            _temp: temp,
        })
    }

    fn open_packs(dir: &Path) -> Result<File> {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("packs"))
            .map_err(io_at("cannot open its pack list", dir))
    }

    /// An empty cache (keeping what is known to be superseded).
    fn fresh_state(dir: &Path, superseded: HashMap<IndexId, IndexId>) -> Result<State> {
        let packs_file = Self::open_packs(dir)?;
        packs_file
            .set_len(0)
            .map_err(io_at("cannot truncate its pack list", dir))?;
        let state = State {
            packs_file,
            packs_len: 0,
            packs: Vec::new(),
            by_id: HashMap::new(),
            runs: RunStack::new(dir, RUN_PREFIX, 0),
            mem: Vec::new(),
            mem_map: HashMap::default(),
            mem_more: Vec::new(),
            loaded: HashSet::new(),
            superseded,
            entries: 0,
            dirty: false,
        };
        remove_stray_runs(dir, &state.runs);
        write_manifest(dir, &state)?;
        Ok(state)
    }

    fn load_state(dir: &Path) -> Result<State> {
        let manifest = match std::fs::read(dir.join("manifest")) {
            Ok(b) => Manifest::decode(&b).ok_or_else(|| damaged(dir, "a damaged manifest"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Self::fresh_state(dir, HashMap::new());
            }
            Err(e) => return Err(io_at("cannot read its manifest", dir)(e)),
        };
        let packs_file = Self::open_packs(dir)?;
        let len = packs_file
            .metadata()
            .map_err(io_at("cannot read its pack list", dir))?
            .len();
        if len < manifest.packs_len {
            return Err(damaged(dir, "a pack list shorter than its manifest says"));
        }
        // Whatever was appended after the last manifest is not known to be whole.
        packs_file
            .set_len(manifest.packs_len)
            .map_err(io_at("cannot truncate its pack list", dir))?;
        let (packs, by_id, entries) = read_pack_list(dir, &packs_file, manifest.packs_len)?;
        let runs = RunStack::open(dir, RUN_PREFIX, &manifest.runs, manifest.next_seq)?;
        if runs.len() != entries {
            return Err(damaged(dir, "runs that do not match the pack list"));
        }
        remove_stray_runs(dir, &runs);
        Ok(State {
            packs_file,
            packs_len: manifest.packs_len,
            packs,
            by_id,
            runs,
            mem: Vec::new(),
            mem_map: HashMap::default(),
            mem_more: Vec::new(),
            loaded: manifest.loaded.into_iter().collect(),
            superseded: manifest.superseded.into_iter().collect(),
            entries,
            dirty: false,
        })
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, State>> {
        self.state
            .read()
            .map_err(|_| Error::Internal("index cache lock poisoned".into()))
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, State>> {
        self.state
            .write()
            .map_err(|_| Error::Internal("index cache lock poisoned".into()))
    }

    /// Index objects already loaded.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn loaded(&self) -> Result<HashSet<IndexId>> {
        Ok(self.read()?.loaded.clone())
    }

    /// Index objects that a loaded object supersedes.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn superseded(&self) -> Result<HashSet<IndexId>> {
        Ok(self.read()?.superseded.keys().copied().collect())
    }

    /// The superseded objects that still count as superseded when the
    /// objects in `present` are there (listed, or loaded): those whose
    /// superseding object is present, and those found deleted that are not
    /// present themselves. An object superseded by one that is not there is
    /// not: the store was put back to an older state, or it is a copy of
    /// the repository, sharing this cache, whose prune replaced objects the
    /// original still holds; skipping them would hide their blobs.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn superseded_among(&self, present: &HashSet<IndexId>) -> Result<HashSet<IndexId>> {
        Ok(self
            .read()?
            .superseded
            .iter()
            .filter(|(old, by)| present.contains(by) || (**by == GONE && !present.contains(old)))
            .map(|(old, _)| *old)
            .collect())
    }

    /// Forgets every entry and loaded object, to be loaded again. The
    /// superseded set stays: an object once superseded never counts again
    /// (IDs are random), and rollback detection needs the whole history.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn clear(&self) -> Result<()> {
        let mut s = self.write()?;
        s.runs.clear();
        let superseded = std::mem::take(&mut s.superseded);
        *s = Self::fresh_state(&self.dir, superseded)?;
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
        let mut s = self.write()?;
        s.superseded
            .extend(file.supersedes.iter().map(|old| (*old, id)));
        s.loaded.insert(id);
        s.dirty = true;
        Ok(())
    }

    /// Records that index object `id` is gone (replaced and deleted), so that
    /// readers do not ask for it again.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn mark_gone(&self, id: IndexId) -> Result<()> {
        let mut s = self.write()?;
        s.superseded.entry(id).or_insert(GONE);
        s.dirty = true;
        Ok(())
    }

    /// Adds one pack's entries (not tied to an index object: used while
    /// writing). A pack already known is left as it is: its ID is the hash
    /// of its content, so its listing cannot differ.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn add_pack(&self, pack: PackId, size: u64, blobs: &[IndexBlob]) -> Result<()> {
        let mut s = self.write()?;
        if s.by_id.contains_key(&pack) {
            return Ok(());
        }
        let ord = u32::try_from(s.packs.len())
            .map_err(|_| Error::Internal("more than 2^32 packs in the index cache".into()))?;
        let count = u32::try_from(blobs.len())
            .map_err(|_| Error::Internal("a pack of more than 2^32 blobs".into()))?;
        let mut rec = Vec::with_capacity(PACK_HEAD + blobs.len() * ENTRY);
        rec.extend_from_slice(pack.as_bytes());
        rec.extend_from_slice(&size.to_le_bytes());
        rec.extend_from_slice(&count.to_le_bytes());
        for b in blobs {
            encode_entry(b, &mut rec)?;
        }
        let at = s.packs_len;
        s.packs_file
            .write_all_at(&rec, at)
            .map_err(io_at("cannot write its pack list", &self.dir))?;
        s.packs_len += rec.len() as u64;
        s.packs.push(PackMeta {
            id: pack,
            size,
            entries_at: at + PACK_HEAD as u64,
            blobs: count,
        });
        s.by_id.insert(pack, ord);
        s.dirty = true;
        for (i, b) in (0u32..).zip(blobs) {
            let key = prefix(&b.id);
            let v = value(ord, i);
            s.mem.push((key, v));
            if s.mem_map.insert(key, v).is_some() {
                s.mem_more.push((key, v));
            }
        }
        s.entries += u64::from(count);
        if s.mem.len() >= MEMORY_ENTRIES {
            self.spill(&mut s)?;
        }
        Ok(())
    }

    /// Moves the entries in memory to a new run and records it.
    fn spill(&self, s: &mut State) -> Result<()> {
        if s.mem.is_empty() {
            return Ok(());
        }
        s.packs_file
            .sync_data()
            .map_err(io_at("cannot write its pack list", &self.dir))?;
        let mut records = std::mem::take(&mut s.mem);
        records.sort_unstable();
        let State {
            runs,
            packs_len,
            loaded,
            superseded,
            ..
        } = &mut *s;
        let (packs_len, loaded, superseded) = (*packs_len, &*loaded, &*superseded);
        let dir = &self.dir;
        let pushed = runs.push(&records, &mut |stack| {
            write_manifest_parts(dir, packs_len, stack, loaded, superseded)
        });
        if let Err(e) = pushed {
            s.mem = records;
            return Err(e);
        }
        s.mem_map.clear();
        s.mem_more.clear();
        s.dirty = false;
        Ok(())
    }

    fn entry_at(&self, s: &State, ord: u32, member: u32) -> Result<(BlobId, Location)> {
        let meta = s
            .packs
            .get(ord as usize)
            .filter(|m| member < m.blobs)
            .ok_or_else(|| damaged(&self.dir, "an entry naming no pack"))?;
        let mut b = [0u8; ENTRY];
        s.packs_file
            .read_exact_at(&mut b, meta.entries_at + u64::from(member) * ENTRY as u64)
            .map_err(io_at("cannot read its pack list", &self.dir))?;
        decode_entry(meta.id, &b).ok_or_else(|| damaged(&self.dir, "a damaged entry"))
    }

    fn candidates(s: &State, key: &Prefix) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        s.runs.lookup(key, &mut out)?;
        if let Some(v) = s.mem_map.get(key) {
            out.push(*v);
            out.extend(s.mem_more.iter().filter(|(k, _)| k == key).map(|(_, v)| *v));
        }
        Ok(out)
    }

    /// Where a blob is, if known. When several packs hold it, the one added
    /// last.
    ///
    /// # Errors
    /// On cache I/O errors or a damaged cache entry.
    pub fn get(&self, id: &BlobId) -> Result<Option<Location>> {
        let s = self.read()?;
        let mut c = Self::candidates(&s, &prefix(id))?;
        c.sort_unstable();
        c.dedup();
        for v in c.into_iter().rev() {
            let (found, loc) = self.entry_at(&s, (v >> 32) as u32, v as u32)?;
            if found == *id {
                return Ok(Some(loc));
            }
        }
        Ok(None)
    }

    /// True when the blob is known.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        Ok(self.get(id)?.is_some())
    }

    /// Every pack with its size, by pack ID.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn packs(&self) -> Result<Vec<(PackId, u64)>> {
        let s = self.read()?;
        let mut out: Vec<(PackId, u64)> = s.packs.iter().map(|m| (m.id, m.size)).collect();
        out.sort_unstable_by_key(|(p, _)| *p);
        Ok(out)
    }

    /// The blobs the index places in one pack, by offset.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn blobs_in_pack(&self, pack: &PackId) -> Result<Vec<(BlobId, Location)>> {
        let s = self.read()?;
        let Some(&ord) = s.by_id.get(pack) else {
            return Ok(Vec::new());
        };
        let meta = &s.packs[ord as usize];
        let mut b = vec![0u8; meta.blobs as usize * ENTRY];
        s.packs_file
            .read_exact_at(&mut b, meta.entries_at)
            .map_err(io_at("cannot read its pack list", &self.dir))?;
        let mut out = b
            .chunks_exact(ENTRY)
            .map(|e| decode_entry(meta.id, e).ok_or_else(|| damaged(&self.dir, "a damaged entry")))
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|(_, l)| l.offset);
        Ok(out)
    }

    /// Every blob once, with the location [`Self::get`] gives, in ID order.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn for_each_blob(&self, mut f: impl FnMut(BlobId, Location) -> Result<()>) -> Result<()> {
        let s = self.read()?;
        let mut mem = s.mem.clone();
        mem.sort_unstable();
        let stream = runs::merge(vec![
            Box::new(s.runs.iter()) as Box<dyn Iterator<Item = Result<(Prefix, u64)>>>,
            Box::new(mem.into_iter().map(Ok)),
        ]);
        // Equal prefixes are adjacent: resolve each group to its distinct IDs.
        let mut group: Vec<u64> = Vec::new();
        let mut current: Option<Prefix> = None;
        let mut resolve = |group: &mut Vec<u64>| -> Result<()> {
            group.sort_unstable();
            let mut seen: Vec<BlobId> = Vec::new();
            for v in group.drain(..).rev() {
                let (id, loc) = self.entry_at(&s, (v >> 32) as u32, v as u32)?;
                if !seen.contains(&id) {
                    seen.push(id);
                    f(id, loc)?;
                }
            }
            Ok(())
        };
        for r in stream {
            let (k, v) = r?;
            if current != Some(k) {
                resolve(&mut group)?;
                current = Some(k);
            }
            group.push(v);
        }
        resolve(&mut group)
    }

    /// Number of blob entries (a blob held by two packs counts twice).
    pub fn len(&self) -> usize {
        self.read().map(|s| s.entries as usize).unwrap_or(0)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes what was added durable.
    ///
    /// # Errors
    /// On cache I/O errors.
    pub fn flush(&self) -> Result<()> {
        let mut s = self.write()?;
        if !s.mem.is_empty() {
            self.spill(&mut s)
        } else if s.dirty {
            s.packs_file
                .sync_data()
                .map_err(io_at("cannot write its pack list", &self.dir))?;
            write_manifest(&self.dir, &s)?;
            s.dirty = false;
            Ok(())
        } else {
            Ok(())
        }
    }
}

fn read_pack_list(
    dir: &Path,
    file: &File,
    len: u64,
) -> Result<(Vec<PackMeta>, HashMap<PackId, u32>, u64)> {
    let mut packs = Vec::new();
    let mut by_id = HashMap::new();
    let mut entries = 0u64;
    let mut at = 0u64;
    let mut head = [0u8; PACK_HEAD];
    while at < len {
        file.read_exact_at(&mut head, at)
            .map_err(|_| damaged(dir, "a truncated pack list"))?;
        let id = PackId::from_slice(&head[..32]).ok_or_else(|| damaged(dir, "a bad pack ID"))?;
        let size = u64::from_le_bytes(head[32..40].try_into().unwrap_or_default());
        let blobs = u32::from_le_bytes(head[40..44].try_into().unwrap_or_default());
        let entries_at = at + PACK_HEAD as u64;
        at = entries_at + u64::from(blobs) * ENTRY as u64;
        if at > len {
            return Err(damaged(dir, "a truncated pack list"));
        }
        let ord = u32::try_from(packs.len()).map_err(|_| damaged(dir, "too many packs"))?;
        if by_id.insert(id, ord).is_some() {
            return Err(damaged(dir, "a pack listed twice"));
        }
        packs.push(PackMeta {
            id,
            size,
            entries_at,
            blobs,
        });
        entries += u64::from(blobs);
    }
    Ok((packs, by_id, entries))
}

fn write_manifest(dir: &Path, s: &State) -> Result<()> {
    write_manifest_parts(dir, s.packs_len, &s.runs, &s.loaded, &s.superseded)
}

fn write_manifest_parts(
    dir: &Path,
    packs_len: u64,
    runs: &RunStack<PREFIX>,
    loaded: &HashSet<IndexId>,
    superseded: &HashMap<IndexId, IndexId>,
) -> Result<()> {
    let mut loaded: Vec<IndexId> = loaded.iter().copied().collect();
    loaded.sort_unstable();
    let mut superseded: Vec<(IndexId, IndexId)> =
        superseded.iter().map(|(a, b)| (*a, *b)).collect();
    superseded.sort_unstable();
    let m = Manifest {
        packs_len,
        next_seq: runs.next_seq(),
        runs: runs.seqs(),
        loaded,
        superseded,
    };
    let tmp = dir.join("manifest.tmp");
    let err = io_at("cannot write its manifest", dir);
    let mut f = File::create(&tmp).map_err(&err)?;
    f.write_all(&m.encode()).map_err(&err)?;
    f.sync_data().map_err(&err)?;
    std::fs::rename(&tmp, dir.join("manifest")).map_err(&err)
}

/// Run files the manifest does not name: left by a crash between writing a
/// run and recording it.
fn remove_stray_runs(dir: &Path, runs: &RunStack<PREFIX>) {
    let current: HashSet<u64> = runs.seqs().into_iter().collect();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        if let Some(seq) = name.to_str().and_then(|n| runs.is_run_name(n)) {
            if !current.contains(&seq) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Removes the files of the sled database earlier versions kept here.
fn remove_legacy(dir: &Path) {
    for f in ["conf", "db"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let _ = std::fs::remove_dir_all(dir.join("blobs"));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("snap.") {
                let _ = std::fs::remove_file(e.path());
            }
        }
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

    fn blob(i: u32, kind: BlobKind) -> IndexBlob {
        IndexBlob {
            kind,
            id: BlobId::from_slice(blake3::hash(&i.to_le_bytes()).as_bytes()).unwrap(),
            compression: if i % 2 == 0 {
                Compression::Zstd
            } else {
                Compression::Raw
            },
            offset: u64::from(i) * 100 + (1 << 40),
            length: i,
            raw_len: i + 1,
        }
    }

    #[test]
    fn entries_survive_spills_merges_and_reopening_and_duplicates_resolve_to_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let per_pack = 1000u32;
        let packs: Vec<PackId> = (0..(MEMORY_ENTRIES as u32 * 3 / per_pack + 2))
            .map(|_| PackId::random())
            .collect();
        {
            let i = BlobIndex::open(Some(dir.path())).unwrap();
            for (n, p) in (0u32..).zip(&packs) {
                let blobs: Vec<IndexBlob> = (n * per_pack..(n + 1) * per_pack)
                    .map(|b| blob(b, BlobKind::Data))
                    .collect();
                i.add_pack(*p, u64::from(n), &blobs).unwrap();
            }
            // Blob 5 again, in a newer pack.
            let dup = PackId::random();
            i.add_pack(dup, 1, &[blob(5, BlobKind::Tree)]).unwrap();
            i.flush().unwrap();
            assert_eq!(
                i.get(&blob(5, BlobKind::Data).id).unwrap().unwrap().pack,
                dup
            );
            assert_eq!(i.blobs_in_pack(&packs[0]).unwrap().len(), per_pack as usize);
        }
        let i = BlobIndex::open(Some(dir.path())).unwrap();
        let total = packs.len() as u32 * per_pack;
        assert_eq!(i.len(), total as usize + 1);
        for b in (0..total).step_by(97) {
            let want = blob(b, BlobKind::Data);
            let loc = i.get(&want.id).unwrap().unwrap();
            if b != 5 {
                assert_eq!(loc.pack, packs[(b / per_pack) as usize]);
                assert_eq!(
                    (
                        loc.kind,
                        loc.compression,
                        loc.offset,
                        loc.length,
                        loc.raw_len
                    ),
                    (
                        want.kind,
                        want.compression,
                        want.offset,
                        want.length,
                        want.raw_len
                    )
                );
            }
        }
        assert!(!i.contains(&BlobId::random()).unwrap());
        let in_pack = i.blobs_in_pack(&packs[3]).unwrap();
        assert_eq!(in_pack.len(), per_pack as usize);
        assert!(in_pack.windows(2).all(|w| w[0].1.offset < w[1].1.offset));
        let mut seen = 0usize;
        let mut last: Option<BlobId> = None;
        i.for_each_blob(|id, _| {
            assert!(last.is_none_or(|l| l.as_bytes()[..PREFIX] <= id.as_bytes()[..PREFIX]));
            last = Some(id);
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, total as usize, "each blob once, the duplicate too");
        assert_eq!(i.packs().unwrap().len(), packs.len() + 1);
    }

    #[test]
    fn superseded_counts_only_while_what_superseded_it_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new, deleted, other) = (
            IndexId::random(),
            IndexId::random(),
            IndexId::random(),
            IndexId::random(),
        );
        {
            let i = BlobIndex::open(Some(dir.path())).unwrap();
            let f = IndexFile {
                supersedes: vec![old],
                packs: vec![],
            };
            i.add_index(new, &f).unwrap();
            i.mark_gone(deleted).unwrap();
            i.flush().unwrap();
        }
        // Through the manifest: the pairs survive a reopening.
        let i = BlobIndex::open(Some(dir.path())).unwrap();
        let set = |ids: &[IndexId]| ids.iter().copied().collect::<HashSet<_>>();
        assert_eq!(i.superseded().unwrap(), set(&[old, deleted]));
        // The superseding object is listed: the old one does not count.
        assert_eq!(
            i.superseded_among(&set(&[old, new])).unwrap(),
            set(&[old, deleted])
        );
        // Put back to before the prune (or a copy pruned on its own): the
        // old object is all there is, and counts again.
        assert_eq!(
            i.superseded_among(&set(&[old, other])).unwrap(),
            set(&[deleted])
        );
        // An object found deleted that is listed again counts too.
        assert!(i.superseded_among(&set(&[deleted])).unwrap().is_empty());
    }

    #[test]
    fn what_was_not_flushed_is_forgotten_and_a_damaged_manifest_means_a_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let kept = PackId::random();
        let idx = IndexId::random();
        let gone = IndexId::random();
        {
            let i = BlobIndex::open(Some(dir.path())).unwrap();
            let f = IndexFile {
                supersedes: vec![gone],
                packs: vec![IndexPack {
                    id: kept,
                    size: 10,
                    blobs: vec![blob(1, BlobKind::Data)],
                }],
            };
            i.add_index(idx, &f).unwrap();
            i.flush().unwrap();
            // Added, never flushed: as after a crash.
            i.add_pack(PackId::random(), 10, &[blob(2, BlobKind::Data)])
                .unwrap();
        }
        {
            let i = BlobIndex::open(Some(dir.path())).unwrap();
            assert!(i.contains(&blob(1, BlobKind::Data).id).unwrap());
            assert!(!i.contains(&blob(2, BlobKind::Data).id).unwrap());
            assert_eq!(i.packs().unwrap(), vec![(kept, 10)]);
            assert!(i.loaded().unwrap().contains(&idx));
            // clear() forgets entries and loaded objects, not what is superseded.
            i.clear().unwrap();
            assert!(i.is_empty() && i.loaded().unwrap().is_empty());
            assert!(i.superseded().unwrap().contains(&gone));
            i.add_pack(kept, 10, &[blob(1, BlobKind::Data)]).unwrap();
            i.flush().unwrap();
        }
        std::fs::write(dir.path().join("manifest"), b"garbage").unwrap();
        let i = BlobIndex::open(Some(dir.path())).unwrap();
        assert!(i.is_empty(), "a damaged cache starts again, empty");
        assert!(i.packs().unwrap().is_empty());
    }

    #[test]
    fn the_files_of_an_old_sled_cache_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conf"), b"segment_size: 524288").unwrap();
        std::fs::write(dir.path().join("db"), vec![0u8; 4096]).unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        std::fs::write(dir.path().join("snap.0000000000001234"), b"x").unwrap();
        let i = BlobIndex::open(Some(dir.path())).unwrap();
        assert!(i.is_empty());
        for f in ["conf", "db", "blobs", "snap.0000000000001234"] {
            assert!(!dir.path().join(f).exists(), "{f} left behind");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The cache's files are on the local disk, where damage and other
        /// local users reach them: whatever bytes they hold, opening and
        /// reading never panics nor allocates beyond the files' sizes (a
        /// wrong location is caught where the blob is read: its ID is
        /// its keyed hash).
        #[test]
        fn damaged_cache_files_never_panic(
            which in 0usize..3,
            at in proptest::prelude::any::<proptest::sample::Index>(),
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            truncate in proptest::prelude::any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let pack = PackId::random();
            {
                let i = BlobIndex::open(Some(dir.path())).unwrap();
                let blobs: Vec<IndexBlob> = (0..200).map(|b| blob(b, BlobKind::Data)).collect();
                i.add_pack(pack, 7, &blobs).unwrap();
                i.flush().unwrap();
            }
            let mut names: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| !p.ends_with("lock"))
                .collect();
            names.sort();
            let path = &names[which % names.len()];
            let mut bytes = std::fs::read(path).unwrap();
            if truncate {
                bytes.truncate(at.index(bytes.len() + 1));
            } else if !bytes.is_empty() {
                let o = at.index(bytes.len());
                for (k, g) in garbage.iter().enumerate() {
                    if let Some(b) = bytes.get_mut(o + k) {
                        *b ^= g | 1;
                    }
                }
            }
            std::fs::write(path, &bytes).unwrap();
            if let Ok(i) = BlobIndex::open(Some(dir.path())) {
                for b in 0..200 {
                    let id = blob(b, BlobKind::Data).id;
                    let _ = i.get(&id);
                }
                let _ = i.blobs_in_pack(&pack);
                let _ = i.for_each_blob(|_, _| Ok(()));
                let _ = i.packs();
            }
        }
    }
}
