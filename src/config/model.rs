//! The resolved service model that the daemon runs and erasure reads: where
//! a tenant's repository is and how to open it, what a service backs up,
//! its hooks, and what an API token may do.
//!
//! Built by the config's checks (the parent module); below the daemon, which
//! only uses it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::backend::Backend;
use crate::crypto::keyslot::{KdfParams, KeySource};
use crate::repository::{IndexedRepository, InitOptions, Repository};
use crate::source::command::CommandSpec;
use crate::Result;

/// A service by its tenant and name: the key of everything the daemon keeps
/// per service. Shown as `tenant/service`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub(crate) struct ServiceKey {
    /// The tenant's ID.
    pub tenant: String,
    /// The service's name within the tenant.
    pub service: String,
}

impl ServiceKey {
    /// The key of `service` of `tenant`.
    pub(crate) fn new(tenant: impl Into<String>, service: impl Into<String>) -> ServiceKey {
        ServiceKey {
            tenant: tenant.into(),
            service: service.into(),
        }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.service)
    }
}

/// A repository the daemon writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoAccess {
    /// Repository URL (target URL + `/` + tenant).
    pub url: String,
    /// The tenant's key.
    pub key: KeySource,
    /// Index cache directory.
    pub cache_dir: PathBuf,
    /// The target's bandwidth limits (shared by its jobs).
    pub limits: crate::backend::Limits,
}

impl RepoAccess {
    /// Opens the repository, creating it first if `create` and it is missing.
    ///
    /// # Errors
    /// Backend, key and cache errors.
    pub async fn open(&self, create: bool) -> Result<IndexedRepository> {
        let repo = if create {
            let secret = self.key.load()?;
            let cache = Some(self.cache_dir.clone());
            let opts = InitOptions {
                kdf: KdfParams::for_new_slots(),
                ..InitOptions::default()
            };
            let (repo, created) =
                Repository::open_or_init(&self.url, &secret, &opts, cache, &self.limits).await?;
            if created {
                tracing::info!(repo = %self.url, "created the repository");
            }
            repo
        } else {
            self.open_unindexed().await?
        };
        repo.load_index().await
    }

    /// Opens the repository without loading its index: for what needs its
    /// snapshots, pins and key slots only (a retention decision, the list
    /// of who holds a key), not its data.
    ///
    /// # Errors
    /// Backend and key errors; [`crate::Error::NoRepository`] when there is none.
    pub async fn open_unindexed(&self) -> Result<Repository> {
        Repository::open(
            Backend::open(&self.url, false)?.with_limits(&self.limits),
            &self.key.load()?,
            Some(self.cache_dir.clone()),
        )
        .await
    }
}

/// What a service backs up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// Paths, with what to leave out.
    Paths {
        /// Absolute paths to back up.
        paths: Vec<PathBuf>,
        /// What to leave out: globs, cache directories, marker files,
        /// sizes, other file systems (a storage share's backup never
        /// wanders into another mount with `one_file_system`).
        exclude: crate::source::ExcludeOptions,
    },
    /// A database server: one snapshot per database (or one of the
    /// instance), each dump streamed through the pipeline.
    Database(crate::source::database::DbSource),
    /// A VM disk image, as the guest sees it (one file, `<name>.raw`).
    Image(crate::source::image::ImageSource),
    /// A command whose stdout is the backup (a database dump).
    Command {
        /// The command.
        command: CommandSpec,
        /// File name of the stream in the snapshot (e.g. `db.sql`).
        name: String,
    },
}

/// A DR drill's check query on the scratch database server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlCheck {
    /// The database it runs in.
    pub database: String,
    /// The query: it answers one number.
    pub query: String,
    /// The least acceptable answer.
    pub min: i64,
}

/// What a DR drill checks once the snapshot is restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrillChecks {
    /// A command run on the restored files.
    pub command: Option<Hook>,
    /// Database services: queries on the scratch server.
    pub sql: Vec<SqlCheck>,
    /// As root, the user the scratch server runs as.
    pub run_as: String,
}

/// A hook and its time limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The command.
    pub command: CommandSpec,
    /// Longest it may run.
    pub timeout: Duration,
}

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "role")]
pub enum Role {
    /// Service desk: every tenant, every action.
    Operator,
    /// A partner: its own tenant only.
    Partner {
        /// The tenant.
        tenant: String,
    },
    /// Read-only, every tenant, and the audit log.
    Auditor,
}

impl Role {
    /// True when this role may see `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        match self {
            Role::Operator | Role::Auditor => true,
            Role::Partner { tenant: t } => t == tenant,
        }
    }

    /// True when this role may start jobs and restores for `tenant`.
    pub(crate) fn acts_on(&self, tenant: &str) -> bool {
        match self {
            Role::Operator => true,
            Role::Partner { tenant: t } => t == tenant,
            Role::Auditor => false,
        }
    }
}
