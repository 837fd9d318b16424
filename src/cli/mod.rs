//! The command line: one module per command group. Each turns its
//! arguments into the library's options, calls the library, and renders
//! text or JSON; `main.rs` only parses, sets up logging and the runtime, and
//! maps errors to exit codes.

mod backup;
mod check;
mod copy;
mod daemon;
mod demo;
mod erasure;
mod operator_audit;
mod repo;
mod restore;
mod retention;
mod snapshots;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use custos::backend::Backend;
use custos::crypto::keyslot::{KdfParams, KeySource, Secret};
use custos::repository::Repository;
use custos::{Error, Result};

#[derive(Parser)]
#[command(
    name = "custos",
    version,
    about = "Backup and retention for hosted services: deduplicated, compressed, encrypted snapshots in object storage"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args, Clone)]
pub(crate) struct Global {
    /// Repository: a path, file:///abs/path, s3://bucket/prefix, az://container/prefix, gs://bucket/prefix, memory://name
    #[arg(short = 'r', long = "repo", env = "CUSTOS_REPOSITORY", global = true)]
    pub(crate) repo: Option<String>,
    /// Read the passphrase from this file
    #[arg(long, env = "CUSTOS_PASSWORD_FILE", global = true)]
    pub(crate) password_file: Option<PathBuf>,
    /// Use a raw key file instead of a passphrase
    #[arg(long, env = "CUSTOS_KEY_FILE", global = true)]
    pub(crate) key_file: Option<PathBuf>,
    /// Machine-readable output on stdout (one JSON document)
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Less output
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// More log detail (repeat for more)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Cache directory (index cache); default $XDG_CACHE_HOME/custos
    #[arg(long, env = "CUSTOS_CACHE_DIR", global = true)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Do not keep an index cache between runs
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,
}

/// Which snapshots a command works on: defined once, flattened into each
/// command that filters.
#[derive(Args, Clone, Default)]
pub(crate) struct SnapshotFilter {
    /// Only snapshots of this service
    #[arg(long)]
    pub(crate) service: Option<String>,
    /// Only snapshots of this tenant
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Only snapshots with this tag (repeatable: all must match)
    #[arg(long)]
    pub(crate) tag: Vec<String>,
}

impl SnapshotFilter {
    /// Whether `s` passes.
    pub(crate) fn matches(&self, s: &custos::repofile::snapshot::Snapshot) -> bool {
        self.service
            .as_ref()
            .is_none_or(|v| s.service.as_ref() == Some(v))
            && self
                .tenant
                .as_ref()
                .is_none_or(|v| s.tenant.as_ref() == Some(v))
            && self.tag.iter().all(|t| s.tags.contains(t))
    }
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a repository (fails if one exists there)
    Init {
        /// Average chunk size in KiB (min is half, max eight times)
        #[arg(long, default_value_t = 1024)]
        chunk_avg_kib: u32,
        /// Target pack size in MiB
        #[arg(long, default_value_t = 16)]
        pack_size_mib: u64,
    },
    /// Back up paths, or a stream from stdin
    Backup(backup::BackupArgs),
    /// List snapshots
    Snapshots {
        #[command(flatten)]
        filter: SnapshotFilter,
    },
    /// List a snapshot's files
    Ls {
        /// Snapshot ID, prefix or `latest`
        snapshot: String,
        /// Path inside the snapshot
        path: Option<String>,
    },
    /// Write one file (or a stream snapshot) to stdout
    Dump {
        /// Snapshot ID, prefix or `latest`
        snapshot: String,
        /// Path of the file inside the snapshot (optional for a stream snapshot)
        path: Option<String>,
    },
    /// Restore a snapshot
    Restore(restore::RestoreArgs),
    /// Verify the repository
    Check {
        /// Read and verify every blob
        #[arg(long)]
        read_data: bool,
        /// Read and verify a random sample, e.g. 10%
        #[arg(long, value_name = "P%")]
        read_data_subset: Option<String>,
    },
    /// Show sizes and ratios
    Stats,
    /// Copy snapshots to another repository (the standby target)
    Copy(copy::CopyArgs),
    /// Apply a retention policy: remove the snapshots no rule keeps
    Forget(retention::ForgetArgs),
    /// Remove data no snapshot references (two-phase, safe with concurrent backups)
    Prune(retention::PruneArgs),
    /// Rebuild the index from the packs; remove snapshots that reference lost
    /// data only with --drop-snapshots
    Repair {
        /// Remove snapshots that cannot be read or reference lost data (never
        /// pinned ones)
        #[arg(long)]
        drop_snapshots: bool,
        /// Report what would be done; write nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Place a snapshot under legal hold: forget never removes it
    Pin {
        /// Snapshot ID or unique prefix
        snapshot: String,
        /// Why (ticket, court order)
        #[arg(long, default_value = "legal hold")]
        reason: String,
    },
    /// Lift a legal hold
    Unpin {
        /// Snapshot ID or unique prefix
        snapshot: String,
    },
    /// Manage key slots
    Key {
        #[command(subcommand)]
        action: repo::KeyAction,
    },
    /// Run a guided demo on a local repository (no server needed)
    Demo {
        /// Directory for the demo's repository, source and restore (recreated)
        #[arg(long, default_value = "custos-demo")]
        dir: PathBuf,
    },
    /// Run the scheduler daemon (backups, retention, checks, drills, API)
    Daemon {
        /// Config file
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
    },
    /// Daemon configuration
    Config {
        #[command(subcommand)]
        action: daemon::ConfigAction,
    },
    /// Services, newest good snapshot, RPO, last jobs (from the daemon's API
    /// with CUSTOS_TOKEN, or from its catalog when it is stopped)
    Status {
        /// Config file
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
        /// API token (operator or auditor)
        #[arg(long, env = "CUSTOS_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Accept TENANT's repositories as they now are: remove its rollback
        /// alarms (operators; audited), after investigating them
        #[arg(long, value_name = "TENANT")]
        accept_alarms: Option<String>,
    },
    /// End of contract: give notice, show state, erase a tenant's data
    Erase {
        #[command(subcommand)]
        action: erasure::EraseAction,
    },
    /// Deletion certificates: the operator's signing key, offline verification
    Certificate {
        #[command(subcommand)]
        action: erasure::CertificateAction,
    },
    /// The daemon's audit log
    Audit {
        #[command(subcommand)]
        action: erasure::AuditAction,
    },
    /// The daemon's local catalog
    Catalog {
        #[command(subcommand)]
        action: daemon::CatalogAction,
    },
    /// Remove stale locks (or all with --all)
    Unlock {
        /// Also remove locks that have not expired
        #[arg(long)]
        all: bool,
    },
}

pub(crate) fn read_secret(g: &Global, creating: bool) -> Result<Secret> {
    let source = KeySource::given(
        g.key_file.as_deref(),
        g.password_file.as_deref(),
        "CUSTOS_PASSWORD",
    )
    .ok_or(Error::NoKey)?;
    if !creating {
        return source.load();
    }
    let (secret, created) = source.load_or_create()?;
    if let (true, KeySource::KeyFile(kf)) = (created, &source) {
        eprintln!("created key file {} (keep a copy somewhere safe: without it the repository cannot be read)", kf.display());
    }
    Ok(secret)
}

pub(crate) fn repo_url(g: &Global) -> Result<String> {
    g.repo
        .clone()
        .ok_or_else(|| Error::Usage("no repository given: use --repo or CUSTOS_REPOSITORY".into()))
}

pub(crate) fn cache_root(g: &Global) -> Option<PathBuf> {
    if g.no_cache {
        None
    } else {
        g.cache_dir.clone().or_else(custos::default_cache_dir)
    }
}

pub(crate) async fn open(g: &Global) -> Result<Repository> {
    let backend = Backend::open(&repo_url(g)?, false)?;
    let secret = read_secret(g, false)?;
    Repository::open(backend, &secret, cache_root(g)).await
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| Error::Internal(format!("cannot encode JSON: {e}")))?;
    println!("{s}");
    Ok(())
}

pub(crate) fn parse_time(s: &str, what: &str) -> Result<jiff::Timestamp> {
    s.parse::<jiff::Timestamp>()
        .or_else(|_| {
            s.parse::<jiff::civil::DateTime>().and_then(|d| {
                d.to_zoned(jiff::tz::TimeZone::system())
                    .map(|z| z.timestamp())
            })
        })
        .map_err(|e| {
            Error::Usage(format!(
                "{what}: cannot parse {s:?} as a time (RFC 3339, e.g. 2026-11-22T10:00:00Z): {e}"
            ))
        })
}

/// Argon2id cost for new slots (see [`KdfParams::for_new_slots`]).
pub(crate) fn kdf_params() -> KdfParams {
    KdfParams::for_new_slots()
}

/// Runs the parsed command; the exit code on success (1: it ran and found
/// a problem, already reported).
///
/// # Errors
/// What stopped the command, mapped to its exit code by `main`.
pub(crate) async fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    // Commands that change a repository are audited, and refused when the
    // configured audit log cannot be written.
    let changes = match &cli.command {
        Command::Key { action } => !matches!(action, repo::KeyAction::List),
        Command::Forget(a) => !a.dry_run,
        Command::Prune(a) => !a.dry_run,
        Command::Pin { .. } | Command::Unpin { .. } | Command::Unlock { .. } => true,
        _ => false,
    };
    if changes {
        operator_audit::require_operator_audit()?;
    }
    match cli.command {
        Command::Init {
            chunk_avg_kib,
            pack_size_mib,
        } => repo::init(g, chunk_avg_kib, pack_size_mib).await,
        Command::Backup(a) => backup::run(g, a).await,
        Command::Snapshots { filter } => snapshots::list(g, filter).await,
        Command::Ls { snapshot, path } => snapshots::ls(g, snapshot, path).await,
        Command::Dump { snapshot, path } => snapshots::dump(g, snapshot, path).await,
        Command::Restore(a) if a.daemon.is_some() => restore::via_daemon(g, a).await,
        Command::Restore(a) => restore::run(g, a).await,
        Command::Check {
            read_data,
            read_data_subset,
        } => check::check(g, read_data, read_data_subset).await,
        Command::Stats => repo::stats(g).await,
        Command::Key { action } => repo::key(g, action).await,
        Command::Copy(a) => copy::run(g, a).await,
        Command::Forget(a) => retention::forget(g, a).await,
        Command::Prune(a) => retention::prune(g, a).await,
        Command::Repair {
            drop_snapshots,
            dry_run,
        } => check::repair(g, drop_snapshots, dry_run).await,
        Command::Pin { snapshot, reason } => snapshots::pin(g, snapshot, reason).await,
        Command::Unpin { snapshot } => snapshots::unpin(g, snapshot).await,
        Command::Demo { dir } => demo::run(&dir).map(|()| 0),
        Command::Daemon { config } => daemon::daemon(config).await,
        Command::Config {
            action: daemon::ConfigAction::Check { config, now },
        } => daemon::config_check(g, config, now),
        Command::Status {
            config,
            token,
            accept_alarms: Some(tenant),
        } => daemon::accept_alarms(g, config, token, tenant).await,
        Command::Status { config, token, .. } => daemon::status(g, config, token).await,
        Command::Erase { action } => erasure::erase(g, action).await,
        Command::Certificate {
            action: erasure::CertificateAction::Keygen { out },
        } => erasure::keygen(out),
        Command::Certificate {
            action: erasure::CertificateAction::Verify { file, public_key },
        } => erasure::verify_certificate(g, file, public_key),
        Command::Audit {
            action: erasure::AuditAction::Verify { log, public_key },
        } => erasure::audit_verify(g, log, public_key).await,
        Command::Audit {
            action: erasure::AuditAction::Show { log, tenant },
        } => erasure::audit_show(g, log, tenant),
        Command::Catalog { action } => daemon::catalog(action).await,
        Command::Unlock { all } => repo::unlock(g, all).await,
    }
}
