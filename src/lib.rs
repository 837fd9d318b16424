//! # custos
//!
//! A backup and retention engine for a hosting provider: chunked, deduplicated,
//! compressed, encrypted snapshots in object storage.
//!
//! The data flow of a backup, module by module:
//!
//! ```text
//! source (walk paths, stdin) → chunker (FastCDC) → crypto (keyed BLAKE3 ID)
//!   → index (dedup lookup) → blob (zstd, AES-256-GCM, packer) → backend (upload)
//!   → repofile::index → repofile::tree → repofile::snapshot
//! ```
//!
//! and of a restore: `repofile::snapshot` → `repofile::tree` → `restore` (plan by
//! pack, ranged reads, decrypt + verify, sparse writes, metadata last).
//!
//! `commands` holds one function per repository operation; the binary's
//! `cli` modules turn arguments into their options, and `main.rs` only parses
//! arguments and maps errors to exit codes.
//!
//! ## The public API
//!
//! What a caller outside this crate (the `custos` binary, the tests, an
//! embedding program) starts from; everything else is reached through
//! these. The modules are listed below by layer (`docs/architecture.md`).
//!
//! | to … | use |
//! |---|---|
//! | open or create a repository | [`Repository::open`], [`Repository::init`], [`Repository::open_or_init`], then [`Repository::load_index`] for an [`IndexedRepository`] |
//! | back up, restore, browse, check, copy, forget, prune, repair | [`commands::backup::backup`], [`commands::restore::restore`], [`commands::browse`], [`commands::check::check`], [`commands::copy::copy`], [`commands::forget::forget`], [`commands::prune::prune`], [`commands::repair::repair`] |
//! | read the daemon's config | [`config::Config::load`] |
//! | run the daemon | [`daemon::Setup::from_config`], [`daemon::Listeners::bind`], [`daemon::run`] |
//! | the daemon's state from outside | [`daemon::status`], [`daemon::client`] |
//! | end a contract | [`erasure`] and [`erasure::certificate`] |
//! | the audit trail | [`audit::AuditLog`], [`audit::verify`] |
//! | what went wrong | [`Error`], [`Error::kind`], [`Error::exit_code`] |

// The modules, by layer. Those marked `pub` are part of the API; the others
// are the crate's own, and what callers need of them is re-exported below.

// Layer 0: foundations.
mod duration;
mod error;
mod id;
mod progress;
pub mod secrets;
mod switches;
mod util;
// Layer 1: formats and crypto.
pub mod crypto;
pub mod repofile;
// Layer 2: storage.
pub mod backend;
mod blob;
mod chunker;
mod index;
// Layer 3.
pub mod repository;
// Layer 4.
mod source;
// Layer 5.
mod policy;
// Layer 6.
pub mod commands;
// Layer 7.
pub mod config;
// Layer 8.
mod catalog;
// Layer 9.
pub mod audit;
// Layer 10.
pub mod erasure;
// Layer 11.
pub mod daemon;

pub use catalog::Catalog;
pub use duration::{parse_duration, HumanDuration};
pub use error::{Error, ErrorKind, Result};
pub use id::{BlobId, IndexId, KeyId, PackId, RepoId, SnapshotId};
pub use index::default_cache_dir;
pub use policy::retention::RetentionPolicy;
pub use progress::Progress;
pub use repository::{IndexedRepository, Repository};
pub use source::ExcludeOptions;
pub use source::{database, image};
pub use util::{hostname, human_bytes, parse_size, username, CountingWriter};

/// The local index cache on its own, for its fuzz target (`fuzz/`): its
/// files are read back at every run, and a local user with access to the
/// cache directory could alter them.
pub mod index_cache {
    pub use crate::index::{BlobIndex, Location};
}

/// The backup pipeline's stages on their own, for the benchmarks
/// (`benches/stages.rs`): content-defined chunking, compression, packing.
pub mod stages {
    pub use crate::blob::{compress, Packer};
    pub use crate::chunker::{ChunkBuffer, Chunker};
}
