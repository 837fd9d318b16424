//! Sorted run files: the on-disk sets behind the blob index and prune's
//! used-blob set, so that their memory does not grow with the repository.
//!
//! A run is an immutable file of fixed-size records `(key, value)` sorted by
//! key, followed by a Bloom filter and one sampled key per block of
//! [`BLOCK`] records. Opening a run loads the filter and the samples (about
//! 1.3 bytes per record); a lookup asks the filter, finds the block in the
//! samples and reads that block with one `pread`. A [`RunStack`] holds
//! several runs and merges them as they come, each merge one streaming pass,
//! so that a stack of `n` records has about log₄ n runs.
//!
//! ```text
//! header (32 B): magic "CXRUN\0\0\x01", key length u32, reserved u32,
//!                record count u64, Bloom words u64        (little endian)
//! records:       count × (key [K], value u64)
//! Bloom filter:  words × u64
//! samples:       ceil(count / BLOCK) × u64 (first 8 key bytes, big endian)
//! ```
//!
//! Keys are keyed hashes (uniform), so the filter takes its probes from the
//! key bytes themselves.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::damaged;
use crate::{Error, Result};

/// Records per sampled key: a lookup reads one block of this many records.
pub(crate) const BLOCK: usize = 32;
const MAGIC: &[u8; 8] = b"CXRUN\0\0\x01";
const HEADER: usize = 32;
const PROBES: u32 = 4;
/// The longest key a run holds (a blob ID).
const MAX_KEY: usize = 32;

/// I/O errors name the run's directory, and a full disk gets the index
/// cache's one sentence for it. The directory is found only when an error
/// comes: this is made for every record read, and taking a path apart each
/// time was a tenth of a million-blob prune.
fn io_err<'a>(what: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> Error + 'a {
    move |e| super::io_at(what, path.parent().unwrap_or(path))(e)
}

/// A hasher for keys that are already uniform (keyed hashes, or their
/// prefixes): their bytes are the hash, folded into one word. A caller cannot choose such
/// keys without the repository's key, so nobody can make them collide;
/// SipHash over 32 bytes cost more than the lookup it served.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Keys are arrays: a length, then the key's bytes. Each write is
        // folded in whole, so a short key still counts every byte.
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(b);
        }
    }
}

/// A set or map of uniform keys, hashed by [`KeyHasher`].
pub(crate) type KeyBuild = std::hash::BuildHasherDefault<KeyHasher>;

fn sample_of(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[..8]);
    u64::from_be_bytes(b)
}

/// The Bloom filter's probe positions for a key (at least 12 bytes), from
/// its last 8 bytes and its first 8.
fn probes(key: &[u8], mask: u64) -> impl Iterator<Item = u64> {
    let mut a = [0u8; 8];
    a.copy_from_slice(&key[key.len() - 8..]);
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[..8]);
    let h1 = u64::from_le_bytes(a);
    let h2 = u64::from_le_bytes(b) | 1;
    (0..u64::from(PROBES)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & mask)
}

/// Filter words for `count` records, or `None` for a count no run can hold
/// (a damaged header can claim one).
fn bloom_words(count: u64) -> Option<u64> {
    // 10 to 20 bits per record: about 1 % false positives or fewer.
    Some(count.checked_mul(10)?.checked_next_power_of_two()?.max(64) / 64)
}

/// One immutable sorted run.
pub(crate) struct Run<const K: usize> {
    path: PathBuf,
    file: File,
    count: u64,
    bloom: Vec<u64>,
    samples: Vec<u64>,
}

impl<const K: usize> Run<K> {
    const REC: usize = K + 8;
    /// Keys must be long enough for the filter's two 8-byte probes.
    const KEY_OK: () = assert!(K >= 12 && K <= MAX_KEY, "run keys are 12 to 32 bytes long");

    /// Writes a run of `count` records from `records`, which must come sorted by key.
    ///
    /// # Errors
    /// On I/O errors, or when `records` does not yield `count` records in order.
    pub(crate) fn write(
        path: &Path,
        count: u64,
        records: impl Iterator<Item = Result<([u8; K], u64)>>,
    ) -> Result<Run<K>> {
        let () = Self::KEY_OK;
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_err("cannot create", path))?;
        let words = bloom_words(count).ok_or_else(|| {
            Error::Internal(format!("an index run of {count} records is too large"))
        })?;
        let mut bloom = vec![0u64; words as usize];
        let mask = words * 64 - 1;
        let mut samples = Vec::with_capacity(count.div_ceil(BLOCK as u64) as usize);
        let mut w = BufWriter::with_capacity(1 << 16, &file);
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&(K as u32).to_le_bytes());
        header[16..24].copy_from_slice(&count.to_le_bytes());
        header[24..32].copy_from_slice(&words.to_le_bytes());
        let wr = io_err("cannot write", path);
        w.write_all(&header).map_err(&wr)?;
        let mut n = 0u64;
        let mut last: Option<[u8; K]> = None;
        for r in records {
            let (key, value) = r?;
            if last.is_some_and(|l| l > key) {
                return Err(Error::Internal("index run records out of order".into()));
            }
            last = Some(key);
            if n % BLOCK as u64 == 0 {
                samples.push(sample_of(&key));
            }
            for p in probes(&key, mask) {
                bloom[(p / 64) as usize] |= 1 << (p % 64);
            }
            w.write_all(&key).map_err(&wr)?;
            w.write_all(&value.to_le_bytes()).map_err(&wr)?;
            n += 1;
        }
        if n != count {
            return Err(Error::Internal(format!(
                "index run: {n} records written, {count} announced"
            )));
        }
        for word in &bloom {
            w.write_all(&word.to_le_bytes()).map_err(&wr)?;
        }
        for s in &samples {
            w.write_all(&s.to_le_bytes()).map_err(&wr)?;
        }
        w.flush().map_err(&wr)?;
        drop(w);
        file.sync_data().map_err(&wr)?;
        Ok(Run {
            path: path.to_path_buf(),
            file,
            count,
            bloom,
            samples,
        })
    }

    /// Opens a run written by [`Run::write`].
    ///
    /// # Errors
    /// On I/O errors or a file that is not a whole run.
    pub(crate) fn open(path: &Path) -> Result<Run<K>> {
        let () = Self::KEY_OK;
        let file = File::open(path).map_err(io_err("cannot open", path))?;
        let len = file.metadata().map_err(io_err("cannot read", path))?.len();
        let mut header = [0u8; HEADER];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| damaged(path, "a run shorter than its header"))?;
        let u64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[o..o + 8]);
            u64::from_le_bytes(b)
        };
        if &header[..8] != MAGIC || header[8..12] != (K as u32).to_le_bytes() {
            return Err(damaged(path, "not an index run"));
        }
        let count = u64_at(16);
        let words = u64_at(24);
        let nsamples = count.div_ceil(BLOCK as u64);
        let expected = || -> Option<u64> {
            (HEADER as u64)
                .checked_add(count.checked_mul(Self::REC as u64)?)
                .and_then(|x| x.checked_add(words.checked_mul(8)?))
                .and_then(|x| x.checked_add(nsamples.checked_mul(8)?))
        };
        if Some(words) != bloom_words(count) || expected() != Some(len) {
            return Err(damaged(path, "a run of the wrong length"));
        }
        let tail_at = HEADER as u64 + count * Self::REC as u64;
        let mut tail = vec![0u8; ((words + nsamples) * 8) as usize];
        file.read_exact_at(&mut tail, tail_at)
            .map_err(io_err("cannot read", path))?;
        let word = |c: &[u8]| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        };
        let (b, s) = tail.split_at(words as usize * 8);
        Ok(Run {
            path: path.to_path_buf(),
            file,
            count,
            bloom: b.chunks_exact(8).map(word).collect(),
            samples: s.chunks_exact(8).map(word).collect(),
        })
    }

    /// Records in the run.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    fn may_contain(&self, key: &[u8; K]) -> bool {
        let mask = self.bloom.len() as u64 * 64 - 1;
        probes(key, mask).all(|p| self.bloom[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }

    /// Appends to `out` the values of every record with this key.
    ///
    /// # Errors
    /// On I/O errors.
    pub(crate) fn lookup(&self, key: &[u8; K], out: &mut Vec<u64>) -> Result<()> {
        if self.count == 0 || !self.may_contain(key) {
            return Ok(());
        }
        let s = sample_of(key);
        // The first block that can hold the key: equal samples may hide
        // equal keys at the end of the block before.
        let mut block = self.samples.partition_point(|&x| x < s).saturating_sub(1);
        let mut buf = [0u8; BLOCK * (MAX_KEY + 8)];
        loop {
            let first = (block * BLOCK) as u64;
            if first >= self.count {
                return Ok(());
            }
            let n = (self.count - first).min(BLOCK as u64) as usize;
            let bytes = &mut buf[..n * Self::REC];
            self.file
                .read_exact_at(bytes, HEADER as u64 + first * Self::REC as u64)
                .map_err(io_err("cannot read", &self.path))?;
            for rec in bytes.chunks_exact(Self::REC) {
                match rec[..K].cmp(&key[..]) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        let mut v = [0u8; 8];
                        v.copy_from_slice(&rec[K..]);
                        out.push(u64::from_le_bytes(v));
                    }
                    std::cmp::Ordering::Greater => return Ok(()),
                }
            }
            block += 1;
        }
    }

    /// Every record, in key order, read as one stream.
    pub(crate) fn iter(&self) -> RunIter<'_, K> {
        let mut r = BufReader::with_capacity(1 << 16, &self.file);
        let skip = std::io::Seek::seek(&mut r, std::io::SeekFrom::Start(HEADER as u64));
        RunIter {
            reader: r,
            left: if skip.is_ok() { self.count } else { 0 },
            path: &self.path,
        }
    }

    /// Removes the run's file.
    pub(crate) fn delete(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A streaming reader of one run's records.
pub(crate) struct RunIter<'a, const K: usize> {
    reader: BufReader<&'a File>,
    left: u64,
    path: &'a Path,
}

impl<const K: usize> Iterator for RunIter<'_, K> {
    type Item = Result<([u8; K], u64)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut key = [0u8; K];
        let mut v = [0u8; 8];
        let r = self
            .reader
            .read_exact(&mut key)
            .and_then(|()| self.reader.read_exact(&mut v));
        Some(
            r.map(|()| (key, u64::from_le_bytes(v)))
                .map_err(io_err("cannot read", self.path)),
        )
    }
}

/// Merges sorted streams into one sorted stream (duplicates kept).
pub(crate) fn merge<const K: usize, I>(
    streams: Vec<I>,
) -> impl Iterator<Item = Result<([u8; K], u64)>>
where
    I: Iterator<Item = Result<([u8; K], u64)>>,
{
    let mut streams: Vec<std::iter::Peekable<I>> =
        streams.into_iter().map(Iterator::peekable).collect();
    std::iter::from_fn(move || {
        let mut best: Option<(usize, [u8; K])> = None;
        for (i, s) in streams.iter_mut().enumerate() {
            match s.peek() {
                None => {}
                Some(Err(_)) => return s.next(),
                Some(Ok((k, _))) if best.is_none_or(|(_, bk)| *k < bk) => {
                    best = Some((i, *k));
                }
                Some(Ok(_)) => {}
            }
        }
        best.and_then(|(b, _)| streams[b].next())
    })
}

/// Runs in one directory, merged as they are added: a new run is merged with
/// the one before it while that one is less than four times its size, so the
/// stack stays at about log₄ of its record count and every record is
/// rewritten that many times at most.
pub(crate) struct RunStack<const K: usize> {
    dir: PathBuf,
    prefix: &'static str,
    runs: Vec<(u64, Run<K>)>,
    next_seq: u64,
}

impl<const K: usize> RunStack<K> {
    /// An empty stack writing `<prefix><seq>` files in `dir`.
    pub(crate) fn new(dir: &Path, prefix: &'static str, next_seq: u64) -> Self {
        RunStack {
            dir: dir.to_path_buf(),
            prefix,
            runs: Vec::new(),
            next_seq,
        }
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{}{seq:016x}", self.prefix))
    }

    /// Opens the runs named by `seqs` (oldest first).
    ///
    /// # Errors
    /// When one is missing or damaged.
    pub(crate) fn open(
        dir: &Path,
        prefix: &'static str,
        seqs: &[u64],
        next_seq: u64,
    ) -> Result<Self> {
        let mut s = RunStack::new(dir, prefix, next_seq);
        for &seq in seqs {
            let run = Run::open(&s.path(seq))?;
            s.runs.push((seq, run));
        }
        Ok(s)
    }

    /// The sequence numbers of the runs, oldest first.
    pub(crate) fn seqs(&self) -> Vec<u64> {
        self.runs.iter().map(|(s, _)| *s).collect()
    }

    /// The next sequence number this stack will use.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Whether a file name is one of this stack's runs (current or not).
    pub(crate) fn is_run_name(&self, name: &str) -> Option<u64> {
        let hex = name.strip_prefix(self.prefix)?;
        if hex.len() != 16 {
            return None;
        }
        u64::from_str_radix(hex, 16).ok()
    }

    /// Records in all runs.
    pub(crate) fn len(&self) -> u64 {
        self.runs.iter().map(|(_, r)| r.len()).sum()
    }

    /// Values of `key` in every run, oldest run first.
    ///
    /// # Errors
    /// On I/O errors.
    pub(crate) fn lookup(&self, key: &[u8; K], out: &mut Vec<u64>) -> Result<()> {
        for (_, r) in &self.runs {
            r.lookup(key, out)?;
        }
        Ok(())
    }

    /// Whether any run holds `key`: the runs are asked oldest (largest)
    /// first, and the first that has it ends the search.
    ///
    /// # Errors
    /// On I/O errors.
    pub(crate) fn contains(&self, key: &[u8; K]) -> Result<bool> {
        let mut found = Vec::new();
        for (_, r) in &self.runs {
            r.lookup(key, &mut found)?;
            if !found.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every record of every run, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<([u8; K], u64)>> + '_ {
        merge(self.runs.iter().map(|(_, r)| r.iter()).collect())
    }

    /// Adds a run of `records` (sorted), then merges as the size rule asks.
    /// Replaced runs are removed only once `commit` has recorded the new set,
    /// so that a crash leaves the old set whole.
    ///
    /// # Errors
    /// On I/O errors; the stack is unchanged then.
    pub(crate) fn push(
        &mut self,
        records: &[([u8; K], u64)],
        commit: &mut dyn FnMut(&Self) -> Result<()>,
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let run = Run::write(
            &self.path(seq),
            records.len() as u64,
            records.iter().map(|r| Ok(*r)),
        )?;
        self.runs.push((seq, run));
        let mut retired = Vec::new();
        while self.runs.len() >= 2 {
            let n = self.runs.len();
            let (newer, older) = (self.runs[n - 1].1.len(), self.runs[n - 2].1.len());
            if older >= newer.saturating_mul(4) && self.runs.len() <= 8 {
                break;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let path = self.path(seq);
            let merged = Run::write(
                &path,
                older + newer,
                merge(vec![self.runs[n - 2].1.iter(), self.runs[n - 1].1.iter()]),
            );
            let merged = match merged {
                Ok(m) => m,
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
            };
            retired.extend(self.runs.drain(n - 2..));
            self.runs.push((seq, merged));
        }
        commit(self)?;
        for (_, r) in retired {
            r.delete();
        }
        Ok(())
    }

    /// Removes every run.
    pub(crate) fn clear(&mut self) {
        for (_, r) in self.runs.drain(..) {
            r.delete();
        }
    }
}

/// A set of 32-byte IDs on disk: new IDs collect in memory and go to a run
/// file every [`IdSet::MEMORY`] IDs. Used by prune to mark what snapshots
/// use, so that marking a repository of millions of blobs stays in bounded
/// memory.
pub(crate) struct IdSet {
    stack: RunStack<32>,
    mem: std::collections::HashSet<[u8; 32], KeyBuild>,
    count: u64,
    _dir: tempfile::TempDir,
}

impl IdSet {
    /// IDs kept in memory before they go to a run.
    pub(crate) const MEMORY: usize = 1 << 16;

    /// An empty set in a new temporary directory under `parent` (or the
    /// system's temporary directory).
    ///
    /// # Errors
    /// When the directory cannot be made.
    pub(crate) fn new(parent: Option<&Path>) -> Result<IdSet> {
        let dir = match parent {
            Some(p) => std::fs::create_dir_all(p)
                .and_then(|_| tempfile::Builder::new().prefix("prune-").tempdir_in(p)),
            None => tempfile::Builder::new().prefix("custos-prune-").tempdir(),
        }
        .map_err(|e| Error::io("cannot create the prune work directory", e))?;
        Ok(IdSet {
            stack: RunStack::new(dir.path(), "ids-", 0),
            mem: std::collections::HashSet::default(),
            count: 0,
            _dir: dir,
        })
    }

    /// Distinct IDs inserted.
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    /// Whether the set holds `id`.
    ///
    /// # Errors
    /// On I/O errors.
    pub(crate) fn contains(&self, id: &[u8; 32]) -> Result<bool> {
        Ok(self.mem.contains(id) || self.stack.contains(id)?)
    }

    /// Inserts `id`; true when it was not there.
    ///
    /// # Errors
    /// On I/O errors.
    pub(crate) fn insert(&mut self, id: &[u8; 32]) -> Result<bool> {
        if self.contains(id)? {
            return Ok(false);
        }
        self.mem.insert(*id);
        self.count += 1;
        if self.mem.len() >= Self::MEMORY {
            let mut records: Vec<([u8; 32], u64)> = self.mem.drain().map(|k| (k, 0)).collect();
            records.sort_unstable();
            self.stack.push(&records, &mut |_| Ok(()))?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(i: u64) -> [u8; 16] {
        *blake3::hash(&i.to_le_bytes())
            .as_bytes()
            .first_chunk::<16>()
            .unwrap()
    }

    #[test]
    fn the_key_hasher_counts_every_byte_of_a_key() {
        use std::hash::BuildHasher;
        let hash = |k: &[u8; 12]| KeyBuild::default().hash_one(k);
        let a = [7u8; 12];
        // Keys that differ only past their first 8 bytes hash apart.
        let mut b = a;
        b[11] = 8;
        assert_ne!(hash(&a), hash(&b));
        // A map of such keys finds every one of them.
        let mut m: std::collections::HashMap<[u8; 12], u64, KeyBuild> = Default::default();
        for i in 0..10_000u64 {
            m.insert(*key(i).first_chunk::<12>().unwrap(), i);
        }
        for i in 0..10_000u64 {
            assert_eq!(m.get(key(i).first_chunk::<12>().unwrap()), Some(&i));
        }
    }

    #[test]
    fn a_stack_finds_every_key_it_was_given_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut s: RunStack<16> = RunStack::new(dir.path(), "run-", 0);
        let mut commits = 0;
        for batch in 0..40u64 {
            let mut recs: Vec<([u8; 16], u64)> = (batch * 100..batch * 100 + 100)
                .map(|i| (key(i), i))
                .collect();
            recs.sort_unstable();
            s.push(&recs, &mut |_| {
                commits += 1;
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(commits, 40);
        assert_eq!(s.len(), 4000);
        assert!(s.seqs().len() <= 8, "{} runs", s.seqs().len());
        for i in 0..4000u64 {
            let mut out = Vec::new();
            s.lookup(&key(i), &mut out).unwrap();
            assert_eq!(out, vec![i]);
            assert!(s.contains(&key(i)).unwrap());
        }
        for i in 4000..5000u64 {
            let mut out = Vec::new();
            s.lookup(&key(i), &mut out).unwrap();
            assert!(out.is_empty());
            assert!(!s.contains(&key(i)).unwrap());
        }
        let all: Vec<_> = s.iter().map(|r| r.unwrap()).collect();
        assert_eq!(all.len(), 4000);
        assert!(all.windows(2).all(|w| w[0].0 <= w[1].0));
        // Only the current runs are left on disk, and they open again.
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, s.seqs().len());
        let again: RunStack<16> =
            RunStack::open(dir.path(), "run-", &s.seqs(), s.next_seq()).unwrap();
        let mut out = Vec::new();
        again.lookup(&key(1234), &mut out).unwrap();
        assert_eq!(out, vec![1234]);
    }

    #[test]
    fn a_damaged_or_foreign_run_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r");
        Run::<16>::write(&p, 3, (0..3u64).map(|i| Ok(([i as u8; 16], i)))).unwrap();
        let full = std::fs::read(&p).unwrap();
        std::fs::write(&p, &full[..full.len() - 1]).unwrap();
        let e = Run::<16>::open(&p).err().unwrap().to_string();
        assert!(e.contains("delete the cache directory"), "{e}");
        std::fs::write(&p, b"not a run at all, not at all, no").unwrap();
        assert!(Run::<16>::open(&p).is_err());
        std::fs::write(&p, &full).unwrap();
        assert!(Run::<32>::open(&p).is_err(), "a run of another key size");
        assert_eq!(Run::<16>::open(&p).unwrap().len(), 3);
    }

    #[test]
    fn a_header_claiming_an_impossible_count_is_damaged_not_a_panic() {
        // Found by the damaged-cache property test: a count whose filter
        // size overflows (10 × count past 2^63) panicked in debug builds.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r");
        Run::<16>::write(&p, 3, (0..3u64).map(|i| Ok(([i as u8; 16], i)))).unwrap();
        let full = std::fs::read(&p).unwrap();
        for count in [u64::MAX, 1 << 63, (1 << 60) + 1, u64::MAX / 10] {
            let mut bytes = full.clone();
            bytes[16..24].copy_from_slice(&count.to_le_bytes());
            std::fs::write(&p, &bytes).unwrap();
            let e = Run::<16>::open(&p).err().unwrap().to_string();
            assert!(e.contains("delete the cache directory"), "{count}: {e}");
        }
        assert_eq!(bloom_words(u64::MAX / 10 + 1), None);
        assert_eq!(bloom_words(0), Some(1));
        assert_eq!(bloom_words(100), Some(16));
    }

    #[test]
    fn an_id_set_spills_to_disk_and_still_answers() {
        let mut s = IdSet::new(None).unwrap();
        let n = IdSet::MEMORY as u64 * 2 + 17;
        for i in 0..n {
            assert!(s.insert(blake3::hash(&i.to_le_bytes()).as_bytes()).unwrap());
        }
        for i in (0..n).step_by(7) {
            assert!(!s.insert(blake3::hash(&i.to_le_bytes()).as_bytes()).unwrap());
            assert!(s
                .contains(blake3::hash(&i.to_le_bytes()).as_bytes())
                .unwrap());
        }
        assert!(!s.contains(blake3::hash(b"other").as_bytes()).unwrap());
        assert_eq!(s.len(), n);
        assert!(s.mem.len() < IdSet::MEMORY);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn lookups_match_a_plain_multimap(
            batches in proptest::collection::vec(
                proptest::collection::vec((0u8..6, any::<u8>(), any::<u64>()), 0..80), 1..8),
            probe in proptest::collection::vec((0u8..6, any::<u8>()), 1..40),
        ) {
            // Few distinct leading bytes: many equal samples and duplicate keys
            // across block and run boundaries.
            let k = |a: u8, b: u8| { let mut x = [0u8; 16]; x[0] = a; x[15] = b; x };
            let dir = tempfile::tempdir().unwrap();
            let mut s: RunStack<16> = RunStack::new(dir.path(), "r-", 0);
            let mut model: Vec<([u8; 16], u64)> = Vec::new();
            for b in &batches {
                let mut recs: Vec<([u8; 16], u64)> = b.iter().map(|&(a, c, v)| (k(a, c), v)).collect();
                recs.sort_unstable();
                model.extend(recs.iter().copied());
                s.push(&recs, &mut |_| Ok(())).unwrap();
            }
            for &(a, c) in &probe {
                let mut got = Vec::new();
                s.lookup(&k(a, c), &mut got).unwrap();
                got.sort_unstable();
                let mut want: Vec<u64> = model.iter().filter(|(x, _)| *x == k(a, c)).map(|(_, v)| *v).collect();
                want.sort_unstable();
                prop_assert_eq!(got, want);
            }
            prop_assert_eq!(s.iter().count() as u64, model.len() as u64);
        }
    }
}
