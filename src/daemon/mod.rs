//! `custos daemon`: per-service policies run on schedule.
//!
//! ```text
//!  config (TOML) ──▶ scheduler ──▶ job queue ──▶ runner (concurrency limits,
//!                     (cron+tz,      (catalog)     retries, timeouts)
//!                      catch-up)                     │  backup · retention · check · replicate
//!  HTTP API ─────────────────────────▶ on-demand ────┘
//!  /metrics, status ◀── catalog (job history, snapshot cache, last runs)
//! ```
pub mod catalog;
pub mod runner;
pub mod scheduler;
