//! One module per command: plain options in, a result out. The binary
//! (`main.rs`) parses arguments, calls these, and prints.
//!
//! Layer 6 of `docs/architecture.md`: it uses `duration`, `error`, `id`, `progress`, `util`, `crypto`, `repofile`, `backend`, `blob`, `chunker`, `index`, `repository`, `source`, `policy`, and nothing of a layer above.

pub mod backup;
pub mod browse;
pub mod check;
pub mod copy;
pub mod diff;
pub mod find;
pub mod forget;
pub mod mount;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod stats;
pub mod tag;
