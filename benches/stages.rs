//! Throughput of each stage of the backup pipeline, and of the whole pipeline.
//!
//! Run with `cargo bench --bench stages` (a few minutes on 2 cores), or
//! `cargo bench --bench stages -- <filter>` for one group, e.g. `-- compression`.
//! `cargo bench --bench stages -- --test` (and `cargo test --all-targets`) runs
//! every benchmark once as a smoke test.
//!
//! Stage groups run on three deterministic 32 MiB inputs, generated here from a
//! xorshift so every run sees the same bytes:
//!
//! * `random`: incompressible bytes (media, archives, encrypted files);
//! * `log`: access-log lines (`2026-11-22T10:00:00Z GET /api/v1/items/1234 200 0.003s`);
//! * `source`: source-code-like text.
//!
//! | group         | what one iteration does with the 32 MiB input                           |
//! |---------------|-------------------------------------------------------------------------|
//! | `chunking`    | FastCDC with the default parameters: `stream` is `Chunker::next_chunk` |
//! |               | (a reader, as for large files), `cuts` is `Chunker::cuts` (in memory, as|
//! |               | for files up to `whole_file_limit`)                                     |
//! | `hashing`     | keyed BLAKE3 blob IDs (`Keys::blob_id`) of 1 MiB pieces                 |
//! | `compression` | `blob::compress` of 1 MiB pieces at zstd levels 1 and 3 (the default);  |
//! |               | the compression ratios are printed to stderr before the group runs      |
//! | `encryption`  | AES-256-GCM `Cipher::seal` of 1 MiB pieces under one pack key           |
//! | `packing`     | `blob::Packer` with 16 MiB packs: seal each 1 MiB piece into the pack   |
//! |               | buffer, write the headers of the finished packs, `flush`                |
//!
//! The `pipeline` group measures the library end to end on a 64 MiB source tree
//! (three 8 MiB random files, a 24 MiB log file, 16 MiB of small source-like
//! files in 32 directories), on a local repository in a temporary directory:
//!
//! * `backup`: `commands::backup::backup` into a fresh, empty repository each
//!   iteration (creating the repository is not timed), so deduplication against
//!   an earlier iteration never makes it free;
//! * `restore`: `commands::restore::restore` of that backup into a fresh target
//!   directory each iteration (removing the target is not timed).
//!
//! Throughput is bytes of input (source bytes for `pipeline`) per second. Disk
//! writes go to the page cache of the temporary directory, so `pipeline` is the
//! CPU cost of the pipeline rather than of a disk or a network.
//!
//! These are absolute numbers for this machine. Ratios against restic and borg
//! on the same machine and corpus come from `benches/compare.sh`.

// A benchmark aborts on any failure: nothing to recover.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};

use custos::commands::backup::{backup, BackupOptions};
use custos::commands::restore::{restore, RestoreOptions};
use custos::crypto::keyslot::{KdfParams, Secret};
use custos::crypto::MasterKey;
use custos::repofile::config::ChunkerParams;
use custos::repofile::pack::{BlobKind, Compression};
use custos::repository::InitOptions;
use custos::stages::Chunker;
use custos::stages::{compress, Packer};
use custos::{IndexedRepository, PackId, Repository};

const MIB: usize = 1 << 20;
/// Size of each stage input.
const INPUT_LEN: usize = 32 * MIB;
/// Piece size for hashing, compression, encryption and packing: the default
/// average chunk size.
const PIECE: usize = MIB;
/// Pack size for the packing stage (the repository default).
const PACK_SIZE: usize = 16 * MIB;

/// A small deterministic PRNG (xorshift64).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Zero is a fixed point of xorshift.
        XorShift(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift::new(seed);
    let mut out = vec![0u8; len];
    for word in out.chunks_mut(8) {
        let r = rng.next().to_le_bytes();
        word.copy_from_slice(&r[..word.len()]);
    }
    out
}

/// Access-log lines: `2026-11-22T10:00:00Z GET /api/v1/items/1234 200 0.003s`.
fn log_text(len: usize, seed: u64) -> Vec<u8> {
    use std::fmt::Write;
    const METHODS: &[&str] = &[
        "GET", "GET", "GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE",
    ];
    const RESOURCES: &[&str] = &[
        "items", "items", "items", "users", "orders", "orders", "carts", "search", "sessions",
    ];
    const STATUS: &[u16] = &[
        200, 200, 200, 200, 200, 200, 200, 200, 201, 204, 301, 304, 400, 403, 404, 404, 500, 503,
    ];
    let mut rng = XorShift::new(seed);
    let mut out = String::with_capacity(len + 128);
    // 2026-11-22T10:00:00Z, in seconds since the start of the day.
    let mut t: u64 = 10 * 3600;
    while out.len() < len {
        t += rng.below(3);
        let (day, s) = (22 + t / 86_400, t % 86_400);
        let method = rng.pick(METHODS);
        let resource = rng.pick(RESOURCES);
        let _ = write!(
            out,
            "2026-11-{day:02}T{:02}:{:02}:{:02}Z {method} /api/v1/{resource}",
            s / 3600,
            s / 60 % 60,
            s % 60,
        );
        match rng.below(4) {
            0 => {}
            1 => {
                let _ = write!(out, "/{}", rng.below(100_000));
            }
            2 => {
                let _ = write!(out, "/{}/history?page={}", rng.below(10_000), rng.below(20));
            }
            _ => {
                let _ = write!(
                    out,
                    "?limit={}&offset={}",
                    10 << rng.below(4),
                    rng.below(50) * 10
                );
            }
        }
        let slow = rng.below(3000) + 1;
        let ms = rng.below(slow) + 1;
        let _ = writeln!(out, " {} {}.{:03}s", rng.pick(STATUS), ms / 1000, ms % 1000);
    }
    let mut out = out.into_bytes();
    out.truncate(len);
    out
}

/// Rust-like source code: documented functions built from a small vocabulary.
fn source_text(len: usize, seed: u64) -> Vec<u8> {
    use std::fmt::Write;
    const NOUNS: &[&str] = &[
        "index", "pack", "blob", "tree", "snapshot", "chunk", "key", "lock", "config", "cache",
        "entry", "node", "path", "size", "offset", "header", "buffer", "reader", "writer",
        "policy", "tenant", "service", "backend", "range", "digest",
    ];
    const VERBS: &[&str] = &[
        "read", "write", "load", "store", "find", "check", "open", "seal", "parse", "encode",
        "decode", "merge", "split", "flush", "insert", "remove", "verify", "resolve",
    ];
    const TYPES: &[&str] = &[
        "u64", "usize", "String", "PathBuf", "Vec<u8>", "BlobId", "PackId", "Node", "Tree",
        "Snapshot", "Bytes", "Location",
    ];
    const VARIANTS: &[&str] = &["NotFound", "Integrity", "Usage", "Backend", "Locked"];
    let mut rng = XorShift::new(seed);
    let mut out = String::with_capacity(len + 1024);
    while out.len() < len {
        let verb = rng.pick(VERBS);
        let noun = rng.pick(NOUNS);
        let arg = rng.pick(NOUNS);
        let var = rng.pick(NOUNS);
        let field = rng.pick(NOUNS);
        let (ty_in, ty_out) = (rng.pick(TYPES), rng.pick(TYPES));
        let _ = write!(
            out,
            "    /// {verb}s the {noun} of one {arg}.\n    ///\n    \
             /// # Errors\n    /// [`Error::{v}`] when the {noun} is missing.\n    \
             pub fn {verb}_{noun}(&self, {arg}: &{ty_in}) -> Result<{ty_out}> {{\n        \
             let {var} = self.{field}s.get({arg}).ok_or_else(|| Error::{v}(\"{noun}\".into()))?;\n",
            v = rng.pick(VARIANTS),
        );
        for _ in 0..rng.below(4) {
            let _ = write!(
                out,
                "        if {var}.len() > {lim} {{\n            \
                 tracing::debug!({noun} = %{arg}, \"{verb}: {field} over {lim}\");\n            \
                 return Err(Error::{v}(format!(\"{noun} too large: {{}}\", {var}.len())));\n        \
                 }}\n",
                lim = 1u64 << rng.below(24),
                v = rng.pick(VARIANTS),
            );
        }
        let _ = writeln!(out, "        Ok({ty_out}::from({var}))\n    }}\n");
    }
    let mut out = out.into_bytes();
    out.truncate(len);
    out
}

struct Input {
    name: &'static str,
    data: Vec<u8>,
}

fn inputs() -> &'static [Input] {
    static INPUTS: OnceLock<Vec<Input>> = OnceLock::new();
    INPUTS.get_or_init(|| {
        vec![
            Input {
                name: "random",
                data: random_bytes(INPUT_LEN, 0x5eed_0001),
            },
            Input {
                name: "log",
                data: log_text(INPUT_LEN, 0x5eed_0002),
            },
            Input {
                name: "source",
                data: source_text(INPUT_LEN, 0x5eed_0003),
            },
        ]
    })
}

fn stage_group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

fn chunking(c: &mut Criterion) {
    let seed = MasterKey::generate().keys().chunker_seed();
    let chunker = Chunker::new(ChunkerParams::default(), seed);
    let mut g = stage_group(c, "chunking");
    for input in inputs() {
        g.throughput(Throughput::Bytes(input.data.len() as u64));
        g.bench_with_input(BenchmarkId::new("stream", input.name), input, |b, input| {
            b.iter(|| {
                // As a backup cuts a stream (a large file, a dump).
                let mut n = 0usize;
                let mut buf = custos::stages::ChunkBuffer::new();
                let mut source = &input.data[..];
                while let Some(chunk) = chunker.next_chunk(&mut buf, &mut source).unwrap() {
                    n += black_box(chunk).len();
                }
                assert_eq!(n, input.data.len());
            })
        });
        g.bench_with_input(BenchmarkId::new("cuts", input.name), input, |b, input| {
            b.iter(|| black_box(chunker.cuts(&input.data).count()))
        });
    }
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let keys = MasterKey::generate().keys();
    let mut g = stage_group(c, "hashing");
    for input in inputs() {
        g.throughput(Throughput::Bytes(input.data.len() as u64));
        g.bench_with_input(BenchmarkId::new("blake3", input.name), input, |b, input| {
            b.iter(|| {
                for piece in input.data.chunks(PIECE) {
                    black_box(keys.blob_id(piece));
                }
            })
        });
    }
    g.finish();
}

fn compression(c: &mut Criterion) {
    let mut g = stage_group(c, "compression");
    for level in [1, 3] {
        let mut compressor = zstd::bulk::Compressor::new(level).unwrap();
        for input in inputs() {
            let stored: usize = input
                .data
                .chunks(PIECE)
                .map(|p| compress(&mut compressor, p).1.map_or(p.len(), |z| z.len()))
                .sum();
            eprintln!(
                "compression: zstd-{level} on {}: {:.2}x ({} -> {} bytes)",
                input.name,
                input.data.len() as f64 / stored as f64,
                input.data.len(),
                stored
            );
            g.throughput(Throughput::Bytes(input.data.len() as u64));
            g.bench_with_input(
                BenchmarkId::new(format!("zstd-{level}"), input.name),
                input,
                |b, input| {
                    b.iter(|| {
                        for piece in input.data.chunks(PIECE) {
                            let (kind, out) = compress(&mut compressor, piece);
                            black_box((kind, out));
                        }
                    })
                },
            );
        }
    }
    g.finish();
}

fn encryption(c: &mut Criterion) {
    let keys = MasterKey::generate().keys();
    let mut g = stage_group(c, "encryption");
    for input in inputs() {
        g.throughput(Throughput::Bytes(input.data.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("aes-256-gcm", input.name),
            input,
            |b, input| {
                b.iter(|| {
                    let cipher = keys.pack_cipher(&PackId::random());
                    let mut position = 0u64;
                    for piece in input.data.chunks(PIECE) {
                        let sealed = cipher.seal(position, &[], piece);
                        position += sealed.len() as u64;
                        black_box(sealed);
                    }
                })
            },
        );
    }
    g.finish();
}

fn packing(c: &mut Criterion) {
    let keys = MasterKey::generate().keys();
    let mut g = stage_group(c, "packing");
    for input in inputs() {
        let pieces: Vec<_> = input
            .data
            .chunks(PIECE)
            .map(|p| (keys.blob_id(p), p))
            .collect();
        g.throughput(Throughput::Bytes(input.data.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("packer", input.name),
            &pieces,
            |b, pieces| {
                b.iter(|| {
                    let mut packer = Packer::new(keys.clone(), PACK_SIZE);
                    let mut packed = 0usize;
                    for (id, piece) in pieces {
                        let finished = packer.add(
                            BlobKind::Data,
                            *id,
                            Compression::Raw,
                            piece,
                            piece.len() as u32,
                        );
                        if let Some(pack) = finished {
                            packed += black_box(pack).bytes.len();
                        }
                    }
                    if let Some(pack) = packer.flush() {
                        packed += black_box(pack).bytes.len();
                    }
                    assert!(packed > input_len(pieces));
                })
            },
        );
    }
    g.finish();
}

fn input_len(pieces: &[(custos::BlobId, &[u8])]) -> usize {
    pieces.iter().map(|(_, p)| p.len()).sum()
}

/// Writes the 64 MiB source tree of the `pipeline` group; returns its size.
fn write_source_tree(root: &Path) -> u64 {
    let write = |rel: &str, data: &[u8]| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
        data.len() as u64
    };
    let mut total = 0;
    for (i, name) in ["media.bin", "archive.tar.zst", "disk.img"]
        .into_iter()
        .enumerate()
    {
        total += write(
            &format!("random/{name}"),
            &random_bytes(8 * MIB, 0xf11e_0000 + i as u64),
        );
    }
    total += write("logs/access.log", &log_text(24 * MIB, 0xf11e_0010));
    let text = source_text(16 * MIB, 0xf11e_0020);
    let mut rng = XorShift::new(0xf11e_0030);
    let mut rest = &text[..];
    let mut n = 0;
    while !rest.is_empty() {
        let len = (rng.below(15 * 1024) as usize + 1024).min(rest.len());
        let (file, tail) = rest.split_at(len);
        total += write(&format!("src/m{:02}/f{n:05}.rs", n % 32), file);
        rest = tail;
        n += 1;
    }
    total
}

/// A new, empty repository under `dir` (repository in `dir/repo`, cache in
/// `dir/cache`), with its index loaded. Cheap key derivation: only the
/// pipeline is measured.
fn fresh_repo(rt: &tokio::runtime::Runtime, dir: &Path) -> IndexedRepository {
    let backend = custos::backend::Backend::open(dir.join("repo").to_str().unwrap(), true).unwrap();
    let secret = Secret::Passphrase(zeroize::Zeroizing::new("pw".to_string()));
    let opts = InitOptions {
        kdf: KdfParams {
            m_kib: 1024,
            t: 1,
            p: 1,
        },
        ..Default::default()
    };
    let repo = rt
        .block_on(Repository::init(
            backend,
            &secret,
            &opts,
            Some(dir.join("cache")),
        ))
        .unwrap();
    rt.block_on(repo.load_index()).unwrap()
}

fn backup_options(src: &Path) -> BackupOptions {
    BackupOptions {
        paths: vec![src.to_path_buf()],
        ..Default::default()
    }
}

fn pipeline(c: &mut Criterion) {
    // The benchmark's repositories use cheap key slots (the test build
    // honours this switch; see `custos::switches`). Set before any thread
    // of the runtime exists.
    std::env::set_var("CUSTOS_TEST_FAST_KDF", "1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let src = scratch.path().join("source");
    let total = write_source_tree(&src);

    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(total));

    let mut run = 0u64;
    let mut next_dir = |what: &str| -> PathBuf {
        run += 1;
        scratch.path().join(format!("{what}-{run}"))
    };

    g.bench_function("backup", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let dir = next_dir("backup");
                let repo = fresh_repo(&rt, &dir);
                let start = Instant::now();
                let r = rt.block_on(backup(&repo, backup_options(&src))).unwrap();
                elapsed += start.elapsed();
                assert!(r.snapshot.summary.errors.is_empty());
                assert_eq!(r.snapshot.summary.bytes_read, total);
                drop(repo);
                std::fs::remove_dir_all(&dir).unwrap();
            }
            elapsed
        })
    });

    let repo = fresh_repo(&rt, &next_dir("restore-repo"));
    let r = rt.block_on(backup(&repo, backup_options(&src))).unwrap();
    let s = &r.snapshot.summary;
    eprintln!(
        "pipeline: {} files, {} bytes read, {} bytes stored ({:.2}x), {} blobs",
        s.files,
        s.bytes_read,
        s.bytes_added,
        s.bytes_read as f64 / s.bytes_added as f64,
        s.blobs_added
    );
    let snapshot = rt.block_on(repo.snapshot(&r.id)).unwrap();

    g.bench_function("restore", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let target = next_dir("restore");
                let opts = RestoreOptions {
                    target: target.clone(),
                    ..Default::default()
                };
                let start = Instant::now();
                let r = rt.block_on(restore(&repo, &snapshot, &opts)).unwrap();
                elapsed += start.elapsed();
                assert!(r.errors.is_empty(), "{:?}", r.errors);
                assert_eq!(r.total_bytes, total);
                std::fs::remove_dir_all(&target).unwrap();
            }
            elapsed
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    chunking,
    hashing,
    compression,
    encryption,
    packing,
    pipeline
);
criterion_main!(benches);
