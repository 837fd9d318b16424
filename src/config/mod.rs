//! The daemon's configuration: TOML → checked, resolved policies.
//!
//! `schema` holds the file as written (unknown keys are errors); this module
//! checks every value, applies the class defaults of `classes`, enforces the
//! placement rules, and collects **every** problem before refusing, each as
//! `file: key: reason`. `custos config check` prints the resolved policies and
//! next run times; `custos daemon` turns them into a [`crate::daemon::Setup`]
//! (`Setup::from_config`).
//!
//! Placement (POLICIES.md, platform rules): a service's target (and standby)
//! must be outside the workload's availability zone, and in an allowed region
//! (`daemon.allowed_regions`, glob patterns, default `["eu-*"]`: all data
//! stays in the EU).
//!
//! Layer 7 of `docs/architecture.md`: it uses `duration`, `crypto`, `backend`, `repository`, `source`, `policy`, and nothing of a layer above.

pub(crate) mod classes;
pub(crate) mod model;
pub mod notify;
mod report;
mod resolve;
pub(crate) mod schema;

pub use report::ServiceReport;
use resolve::{relative_to, resolve, Problems};

pub(crate) use model::{DrillChecks, Hook, RepoAccess, Role, ServiceKey, SourceSpec, SqlCheck};

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::crypto::keyslot::KeySource;
use crate::duration::HumanDuration;
use crate::policy::retention::RetentionPolicy;
use crate::policy::schedule::CronSchedule;
use crate::source::command::CommandSpec;
use schema::{RawConfig, RawService};

/// Problems found in a config file: every one, each with its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The file.
    pub file: PathBuf,
    /// (key, reason) pairs.
    pub errors: Vec<(String, String)>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "config {} refused: {n} problem{}",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for (i, (key, reason)) in self.errors.iter().enumerate() {
            write!(f, "{}: {key}: {reason}", self.file.display())?;
            if i + 1 < n {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

impl From<ConfigErrors> for crate::Error {
    /// A configuration error: exit code 2.
    fn from(e: ConfigErrors) -> Self {
        crate::Error::Usage(e.to_string())
    }
}

/// Standby replication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StandbyMode {
    /// Daily copy.
    Cold,
    /// Right after each backup.
    Hot,
}

/// One storage target.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The target's name, which services and tenants refer to.
    pub name: String,
    /// Root URL.
    pub url: String,
    /// The region the target is in (placement rules compare it with the workload's).
    pub region: String,
    /// Availability zone.
    pub zone: String,
    /// Jobs at once.
    pub max_jobs: Option<usize>,
    /// Upload limit in KiB a second, shared by every job on the target.
    pub limit_upload: Option<u64>,
    /// Download limit in KiB a second, shared by every job on the target.
    pub limit_download: Option<u64>,
    /// The buckets of those limits (one pair per target, per daemon run).
    #[serde(skip)]
    pub limits: crate::backend::Limits,
}

/// One tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// The tenant's ID: the prefix of its repositories and the key of its records.
    pub id: String,
    /// Contract reference.
    pub contract: Option<String>,
    /// Where its key comes from.
    pub key: KeySource,
}

/// A service with every policy resolved.
#[derive(Debug, Clone)]
pub struct Service {
    /// The tenant's ID, as in the config.
    pub tenant: String,
    /// The service's name within its tenant.
    pub name: String,
    /// The service class from the catalogue (`vmaas-standard`, `dbaas`, …): the defaults of its policy.
    pub class: String,
    /// Workload zone.
    pub zone: String,
    /// Primary target.
    pub target: String,
    /// Standby target and mode.
    pub standby: Option<(String, StandbyMode)>,
    /// What to back up.
    pub source: SourceSpec,
    /// Hooks.
    pub pre_hook: Option<Hook>,
    /// Hooks.
    pub post_hook: Option<Hook>,
    /// Backup schedule.
    pub schedule: CronSchedule,
    /// Retention rules.
    pub retention: RetentionPolicy,
    /// When retention runs.
    pub retention_schedule: CronSchedule,
    /// How long condemned packs wait before prune deletes them.
    pub prune_grace: Duration,
    /// Sampled check: when and what share.
    pub check: (CronSchedule, f64),
    /// DR drill: when, and the check command.
    pub drill: Option<(CronSchedule, DrillChecks)>,
    /// How far back a restore may reach (`None`: every kept snapshot).
    pub restore_window: Option<HumanDuration>,
    /// Recovery point objective: a newest good snapshot older than this is a breach.
    pub rpo: Duration,
    /// Recovery time objective that DR drills are measured against.
    pub rto: Option<Duration>,
    /// Keep up to a year.
    pub long_term: bool,
    /// zstd level.
    pub compression: i32,
    /// Job timeout.
    pub timeout: Duration,
    /// Attempts after the first when a job fails in a way a retry can help.
    pub retries: u32,
    /// First retry delay.
    pub backoff: Duration,
    /// Jitter bound.
    pub jitter: Duration,
}

/// An API token's configuration.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// The token's name: the actor in the audit log and the job records.
    pub name: String,
    /// What the token may do: operator, auditor, or partner of one tenant.
    pub role: Role,
    /// Secret file or variable.
    pub secret: KeySource,
}

/// The resolved config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from.
    pub file: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// Cache directory.
    pub cache_dir: PathBuf,
    /// API address.
    pub listen: Option<SocketAddr>,
    /// The API's TLS certificate chain and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Loopback address of the unauthenticated `/metrics` listener.
    pub metrics_listen: Option<SocketAddr>,
    /// API connections at once.
    pub max_connections: usize,
    /// Time to send a request head.
    pub header_timeout: Duration,
    /// Time for one API connection.
    pub request_timeout: Duration,
    /// Restores queued or running per tenant.
    pub restores_per_tenant: usize,
    /// How long restored files are kept.
    pub restore_retention: Duration,
    /// How long finished job records are kept.
    pub job_history: Duration,
    /// How often RPO states and erasure deadlines are read for notifications.
    pub notify_interval: Duration,
    /// Allowed region patterns.
    pub allowed_regions: Vec<String>,
    /// Jobs at once.
    pub max_jobs: usize,
    /// Catch-up window.
    pub catch_up: Duration,
    /// Period of the snapshot list refresh.
    pub snapshot_refresh: Duration,
    /// Where ticketed restores are written on the daemon's host.
    pub restore_root: PathBuf,
    /// Restores at once.
    pub restore_concurrency: usize,
    /// Drill scratch space.
    pub scratch_dir: PathBuf,
    /// Signing key for deletion certificates.
    pub certificate_key: Option<PathBuf>,
    /// Audit log mirror URL.
    pub audit_mirror: Option<String>,
    /// The API tokens.
    pub tokens: Vec<TokenSpec>,
    /// Where repositories are stored.
    pub targets: Vec<Target>,
    /// The partners whose data is backed up, with their keys.
    pub tenants: Vec<Tenant>,
    /// What is backed up, with its class and policy.
    pub services: Vec<Service>,
    /// Where events are sent (`[[notify]]`).
    pub notify: Vec<notify::Channel>,
}

impl Config {
    /// Reads and resolves a config file.
    ///
    /// # Errors
    /// [`ConfigErrors`] with every problem found.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let fail = |key: &str, reason: String| ConfigErrors {
            file: path.to_path_buf(),
            errors: vec![(key.to_string(), reason)],
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail("(file)", format!("cannot read: {e}")))?;
        Config::parse(path, &text)
    }

    /// Resolves config text (as read from `path`).
    ///
    /// # Errors
    /// [`ConfigErrors`] with every problem found.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_else(|| "(syntax)".into());
            ConfigErrors {
                file: path.to_path_buf(),
                errors: vec![(key, e.message().trim().to_string())],
            }
        })?;
        let mut p = Problems(Vec::new());
        let base = path
            .parent()
            .filter(|b| !b.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let base = if base.is_absolute() {
            base
        } else {
            std::env::current_dir()
                .map(|d| d.join(&base))
                .unwrap_or(base)
        };
        let raw = relative_to(raw, &base);
        let cfg = resolve(&raw, &mut p);
        if p.0.is_empty() {
            Ok(Config {
                file: path.to_path_buf(),
                ..cfg
            })
        } else {
            Err(ConfigErrors {
                file: path.to_path_buf(),
                errors: p.0,
            })
        }
    }

    fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The tenant `id`.
    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id == id)
    }

    /// Where `tenant`'s repository on `target` is, and its key.
    pub fn repo(&self, target: &str, tenant: &Tenant) -> Option<RepoAccess> {
        let t = self.target(target)?;
        Some(RepoAccess {
            url: format!("{}/{}", t.url.trim_end_matches('/'), tenant.id),
            key: tenant.key.clone(),
            cache_dir: self.cache_dir.clone(),
            limits: t.limits.clone(),
        })
    }

    /// The environment variables that hold secrets: every tenant's
    /// `password_env`, every token's `secret_env` and the notification
    /// channels' variables (the daemon takes them
    /// out of its environment at start, see [`crate::secrets`]).
    pub fn secret_variables(&self) -> Vec<String> {
        self.tenants
            .iter()
            .map(|t| &t.key)
            .chain(self.tokens.iter().map(|t| &t.secret))
            .chain(self.notify.iter().filter_map(|n| match &n.via {
                notify::Via::Webhook { secret, .. } => Some(secret),
                notify::Via::Email(e) => e.login.as_ref().map(|(_, s)| s),
            }))
            .filter_map(|k| match k {
                KeySource::Env(v) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
