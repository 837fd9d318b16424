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

pub mod audit;
pub mod backend;
pub mod blob;
pub mod catalog;
pub mod chunker;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod daemon;
pub mod duration;
pub mod erasure;
pub mod error;
pub mod id;
pub mod index;
pub mod policy;
pub mod progress;
pub mod repofile;
pub mod repository;
pub mod secrets;

pub mod source;
pub mod switches;
pub mod util;

pub use error::{Error, ErrorKind, Result};
pub use id::{BlobId, IndexId, KeyId, PackId, RepoId, SnapshotId};
pub use repository::{IndexedRepository, Repository};
