//! Content-defined chunking (FastCDC 2020), keyed by a seed derived from the
//! master key so that chunk boundaries do not reveal known files.
//!
//! Inserting bytes in the middle of a file changes only the chunks around the
//! edit: boundaries depend on content, not offsets.
//!
//! Layer 2 of `docs/architecture.md`: it uses `repofile`, and nothing of a layer above.

use std::io::Read;

use fastcdc::v2020::{FastCDC, Normalization, StreamCDC};

use crate::repofile::config::ChunkerParams;

/// A chunker configured for one repository.
#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
}

impl Chunker {
    /// A chunker with the repository's sizes and key-derived seed.
    pub fn new(params: ChunkerParams, seed: u64) -> Self {
        Chunker { params, seed }
    }

    /// Splits a stream into chunks. Each item is one chunk's bytes, or the read
    /// error that stopped the stream.
    pub fn chunks<R: Read>(&self, source: R) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
        StreamCDC::with_level_and_seed(
            source,
            self.params.min as usize,
            self.params.avg as usize,
            self.params.max as usize,
            Normalization::Level1,
            self.seed,
        )
        .map(|r| r.map(|c| c.data).map_err(std::io::Error::from))
    }
}

impl Chunker {
    /// Chunk boundaries of an in-memory buffer, as `(offset, length)` pairs.
    ///
    /// Gives the same cuts as [`Chunker::chunks`] on the same bytes, without
    /// the streaming chunker's `max`-sized buffer: for the many files smaller
    /// than a few chunks, allocating and zeroing that buffer per file costs more
    /// than everything else.
    pub fn cuts<'a>(&self, data: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
        FastCDC::with_level_and_seed(
            data,
            self.params.min as usize,
            self.params.avg as usize,
            self.params.max as usize,
            Normalization::Level1,
            self.seed,
        )
        .map(|c| (c.offset, c.length))
    }

    /// Files up to this size are read whole and cut in memory.
    pub fn whole_file_limit(&self) -> u64 {
        u64::from(self.params.max) * 2
    }
}

/// The buffer one stream is cut in ([`Chunker::next_chunk`]): the streaming
/// chunker of `fastcdc` also allocates a fresh vector for every chunk, and
/// fresh memory costs a page fault per 4 KiB.
#[derive(Default)]
pub struct ChunkBuffer {
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    eof: bool,
}

impl ChunkBuffer {
    /// An empty buffer (it grows to twice the largest chunk at first use).
    pub fn new() -> Self {
        Self::default()
    }
}

impl Chunker {
    /// The next chunk of `source`, cut in `b` (one buffer per stream);
    /// `None` at its end. The cuts are those of
    /// [`Chunker::chunks`]: a cut is looked for only once the largest chunk
    /// size is buffered, or the stream has ended.
    ///
    /// # Errors
    /// The read error that stopped the stream.
    pub fn next_chunk<'b, R: Read>(
        &self,
        b: &'b mut ChunkBuffer,
        source: &mut R,
    ) -> std::io::Result<Option<&'b [u8]>> {
        let max = self.params.max as usize;
        if b.buf.len() < 2 * max {
            b.buf.resize(2 * max, 0);
        }
        while !b.eof && b.filled - b.pos < max {
            if b.filled == b.buf.len() {
                b.buf.copy_within(b.pos..b.filled, 0);
                b.filled -= b.pos;
                b.pos = 0;
            }
            match source.read(&mut b.buf[b.filled..]) {
                Ok(0) => b.eof = true,
                Ok(n) => b.filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let window = &b.buf[b.pos..b.filled];
        if window.is_empty() {
            return Ok(None);
        }
        let len = self.cuts(window).next().map_or(window.len(), |(_, l)| l);
        let start = b.pos;
        b.pos += len;
        Ok(Some(&b.buf[start..start + len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn insert_in_middle_reuses_most_chunks() {
        let params = ChunkerParams {
            min: 16 * 1024,
            avg: 64 * 1024,
            max: 256 * 1024,
        };
        let c = Chunker::new(params, 42);
        let a = data(4 << 20, 7);
        let mut b = a.clone();
        b.splice(2 << 20..2 << 20, b"inserted bytes".iter().copied());
        let ca: Vec<_> = c.chunks(&a[..]).map(|r| r.unwrap()).collect();
        let cb: Vec<_> = c.chunks(&b[..]).map(|r| r.unwrap()).collect();
        assert_eq!(ca.concat(), a);
        assert_eq!(cb.concat(), b);
        let set: std::collections::HashSet<_> = ca.iter().collect();
        let new = cb.iter().filter(|x| !set.contains(x)).count();
        assert!(new <= 3, "{new} chunks changed of {}", cb.len());
    }

    #[test]
    fn in_memory_cuts_match_streaming() {
        let params = ChunkerParams {
            min: 16 * 1024,
            avg: 64 * 1024,
            max: 256 * 1024,
        };
        let c = Chunker::new(params, 99);
        let d = data(3 << 20, 5);
        let streamed: Vec<usize> = c.chunks(&d[..]).map(|r| r.unwrap().len()).collect();
        let cut: Vec<usize> = c.cuts(&d).map(|(_, l)| l).collect();
        assert_eq!(streamed, cut);
        assert_eq!(c.cuts(&[]).count(), 0);
    }

    /// A reader that hands out at most `step` bytes a call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    proptest::proptest! {
        #[test]
        fn buffered_cuts_match_streaming(
            len in 0usize..(3 << 20),
            seed in 0u64..1000,
            step in 1usize..(600 << 10),
            streams in 1usize..3,
        ) {
            let params = ChunkerParams {
                min: 16 * 1024,
                avg: 64 * 1024,
                max: 256 * 1024,
            };
            let c = Chunker::new(params, seed);
            for s in 0..streams {
                let d = data(len / (s + 1), seed + s as u64 + 1);
                let streamed: Vec<Vec<u8>> = c.chunks(&d[..]).map(|r| r.unwrap()).collect();
                let mut r = Trickle { data: &d, step };
                let mut b = ChunkBuffer::new();
                let mut cut = Vec::new();
                while let Some(chunk) = c.next_chunk(&mut b, &mut r).unwrap() {
                    cut.push(chunk.to_vec());
                }
                proptest::prop_assert_eq!(&streamed, &cut);
            }
        }
    }

    #[test]
    fn seed_changes_boundaries() {
        let params = ChunkerParams {
            min: 16 * 1024,
            avg: 64 * 1024,
            max: 256 * 1024,
        };
        let d = data(2 << 20, 3);
        let a: Vec<usize> = Chunker::new(params, 1)
            .chunks(&d[..])
            .map(|r| r.unwrap().len())
            .collect();
        let b: Vec<usize> = Chunker::new(params, 2)
            .chunks(&d[..])
            .map(|r| r.unwrap().len())
            .collect();
        assert_ne!(a, b);
    }
}
