//! Shared support code for the integration tests.
//!
//! Include it from a test binary with `mod common;`. Each submodule is a
//! self-contained helper; not every test binary uses every helper.

pub mod cli;
pub mod daemon;
pub mod databases;
pub mod fixtures;
pub mod receivers;
pub mod servers;
