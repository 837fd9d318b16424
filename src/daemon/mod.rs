//! `custos daemon`: per-service policies run on schedule.
//!
//! ```text
//!  config (TOML) ──▶ scheduler ──▶ job queue ──▶ runner (concurrency limits,
//!                     (cron+tz,                     retries, timeouts)
//!                      catch-up)                     │  backup · retention · check · replicate
//!  HTTP API ─────────────────────────▶ on-demand ────┘
//!  /metrics, status ◀── state ◀── catalog (job history, snapshot cache, last runs, counters)
//! ```
pub mod api;
pub mod catalog;
pub mod jobs;
pub mod metrics;
pub mod runner;
pub mod scheduler;
pub mod state;
