//! The integration suite: one test binary, one module per flow, so the
//! crate is linked once. Run one flow with `cargo test --test suite crash::`.
//!
//! `tests/daemon_flow.rs` is its own binary: it runs the daemon in this
//! process and sets a process-wide test switch, which must not leak into
//! the other flows' threads.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod api_docs;
mod api_hardening;
mod audit_trail;
mod backends;
mod build_layout;
mod certificate;
mod cli;
mod console;
mod copy;
mod corruption;
mod crash;
mod daemon;
mod databases;
mod decoders;
mod disk_full;
mod erasure;
mod erasure_lifecycle;
mod faults;
mod images;
mod layers;
mod local_privacy;
mod mount;
mod notifications;
mod operator_tools;
mod repair;
mod restore_safety;
mod restore_target;
mod retention;
mod rollback;
mod servers_smoke;
mod systemd_units;
