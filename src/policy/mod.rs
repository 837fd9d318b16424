//! Policy as pure functions: what to keep, computed from data alone.
//!
//! - [`retention`]: which snapshots of one group a retention policy keeps, and
//!   why (`custos forget`); also the duration syntax of the command line and the
//!   config (`7d`, `90d`, `12h`, `1d12h`).
//! - [`schedule`]: cron expressions with seconds in a time zone, correct
//!   across daylight-saving changes.
//! - `cron_expr`: what operators write (five fields, six, seven, `@daily`),
//!   checked field by field and normalised for the `cron` crate.
//! - `window`: whether a restore request falls within a service's restore
//!   window.
//!
//! Nothing here does I/O or reads the clock: callers load the snapshots, group
//! them (by service, host, paths), pass the current time, and act on the
//! decisions. That keeps the rules property-testable against a reference model.
//!
//! Layer 5 of `docs/architecture.md`: it uses `duration`, and nothing of a layer above.

pub(crate) mod cron_expr;
pub(crate) mod retention;
pub(crate) mod schedule;
pub(crate) mod window;
