//! The `custos` binary: parses arguments, sets up logging, calls the library,
//! prints results, and maps errors to the exit codes of CONTRACT.md.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use custos::backend::Backend;
use custos::commands::{backup, browse, check, copy, forget, prune, repair, restore, stats};
use custos::crypto::keyslot::{KdfParams, KeySource, Secret};
use custos::progress::Progress;
use custos::repository::{lock, select_snapshot, select_snapshot_at, InitOptions, Repository};
use custos::util::human_bytes;
use custos::{Error, Result};

mod demo;

#[derive(Parser)]
#[command(
    name = "custos",
    version,
    about = "Backup and retention for hosted services: deduplicated, compressed, encrypted snapshots in object storage"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Global {
    /// Repository: a path, file:///abs/path, s3://bucket/prefix, az://container/prefix, gs://bucket/prefix, memory://name
    #[arg(short = 'r', long = "repo", env = "CUSTOS_REPOSITORY", global = true)]
    repo: Option<String>,
    /// Read the passphrase from this file
    #[arg(long, env = "CUSTOS_PASSWORD_FILE", global = true)]
    password_file: Option<PathBuf>,
    /// Use a raw key file instead of a passphrase
    #[arg(long, env = "CUSTOS_KEY_FILE", global = true)]
    key_file: Option<PathBuf>,
    /// Machine-readable output on stdout (one JSON document)
    #[arg(long, global = true)]
    json: bool,
    /// Less output
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More log detail (repeat for more)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Cache directory (index cache); default $XDG_CACHE_HOME/custos
    #[arg(long, env = "CUSTOS_CACHE_DIR", global = true)]
    cache_dir: Option<PathBuf>,
    /// Do not keep an index cache between runs
    #[arg(long, global = true)]
    no_cache: bool,
}

#[derive(Subcommand)]
enum Command {
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
    Backup(BackupArgs),
    /// List snapshots
    Snapshots {
        /// Only this service
        #[arg(long)]
        service: Option<String>,
        /// Only snapshots with this tag
        #[arg(long)]
        tag: Vec<String>,
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
    Restore(RestoreArgs),
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
    Copy(CopyArgs),
    /// Apply a retention policy: remove the snapshots no rule keeps
    Forget(ForgetArgs),
    /// Remove data no snapshot references (two-phase, safe with concurrent backups)
    Prune(PruneArgs),
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
        action: KeyAction,
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
        action: ConfigAction,
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
        action: EraseAction,
    },
    /// Deletion certificates: the operator's signing key, offline verification
    Certificate {
        #[command(subcommand)]
        action: CertificateAction,
    },
    /// The daemon's audit log
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// The daemon's local catalog
    Catalog {
        #[command(subcommand)]
        action: CatalogAction,
    },
    /// Remove stale locks (or all with --all)
    Unlock {
        /// Also remove locks that have not expired
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate a config; print each service's resolved policy and next run times
    Check {
        /// Config file
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
        /// Compute next runs from this time (RFC 3339) instead of now
        #[arg(long)]
        now: Option<String>,
    },
}

#[derive(Subcommand)]
enum EraseAction {
    /// Record the notice (erasure may start 21 days later, must end within 30)
    Notice {
        /// Daemon config
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
        /// Tenant
        #[arg(long)]
        tenant: String,
        /// Contract reference (default: the tenant's in the config)
        #[arg(long)]
        contract: Option<String>,
        /// When notice was given (RFC 3339; default now)
        #[arg(long)]
        at: Option<String>,
    },
    /// Show erasure states and deadlines
    Status {
        /// Daemon config
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
    },
    /// Erase (or resume erasing) a tenant's data on every target, then issue
    /// the signed certificate
    Execute {
        /// Daemon config
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
        /// Tenant
        #[arg(long)]
        tenant: String,
        /// Start before the notice period ends (needs --reason; audited)
        #[arg(long, requires = "reason")]
        now: bool,
        /// Why erasure starts early
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
enum CertificateAction {
    /// Create the operator's Ed25519 signing key (FILE, mode 600) and FILE.pub
    Keygen {
        /// Where to write the signing key
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a certificate offline: exit 0 when intact and signed by the key
    Verify {
        /// The certificate (JSON)
        file: PathBuf,
        /// The operator's public key (FILE.pub from keygen)
        #[arg(long)]
        public_key: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check the hash chain; name the first edited, removed or reordered
    /// record; with the config's audit_mirror, compare the log with the
    /// mirror record by record and with its signed checkpoints
    Verify {
        #[command(flatten)]
        log: AuditLogArg,
        /// The operator's public key (certificates.pub) to check the
        /// checkpoints' signatures (default: derived from the config's
        /// certificate_key when readable)
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Show records (for auditors), optionally of one tenant
    Show {
        #[command(flatten)]
        log: AuditLogArg,
        /// Only this tenant's records
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Args)]
struct AuditLogArg {
    /// Daemon config (the log is <state_dir>/audit.log)
    #[arg(
        long,
        short = 'c',
        env = "CUSTOS_CONFIG",
        default_value = "/etc/custos/custos.toml"
    )]
    config: Option<PathBuf>,
    /// The log file itself
    #[arg(long)]
    file: Option<PathBuf>,
}

impl AuditLogArg {
    fn path(&self) -> Result<PathBuf> {
        match (&self.file, &self.config) {
            (Some(f), _) => Ok(f.clone()),
            (None, Some(c)) => Ok(custos::config::Config::load(c)?.state_dir.join("audit.log")),
            (None, None) => Err(Error::Usage("give --config or --file".into())),
        }
    }
}

#[derive(Subcommand)]
enum CatalogAction {
    /// Rebuild the catalog from the repositories (the daemon must be stopped)
    Rebuild {
        /// Config file
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeyAction {
    /// List key slots
    List,
    /// Add a key slot for another passphrase (--new-password-file) or key file (--new-key-file)
    Add {
        /// File holding the new passphrase
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        /// New key file (created with 64 random bytes if missing)
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Remove a key slot (never the last; the one in use only with --force)
    Remove {
        /// Slot ID or unique prefix
        id: String,
        /// Also remove the slot that the given passphrase or key file opens
        /// (you must hold another slot's secret)
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
struct BackupArgs {
    /// Paths to back up
    paths: Vec<PathBuf>,
    /// Service the snapshot belongs to
    #[arg(long)]
    service: Option<String>,
    /// Tenant the snapshot belongs to
    #[arg(long)]
    tenant: Option<String>,
    /// Tag (repeatable)
    #[arg(long)]
    tag: Vec<String>,
    /// Exclude glob (repeatable); without '/' it matches names at any depth
    #[arg(long)]
    exclude: Vec<String>,
    /// Back up stdin as one file
    #[arg(long)]
    stdin: bool,
    /// File name for --stdin
    #[arg(long, default_value = "stdin")]
    stdin_name: String,
    /// Parent snapshot for change detection (default: latest of the same service or paths)
    #[arg(long)]
    parent: Option<String>,
    /// Read every file even if unchanged
    #[arg(long)]
    force: bool,
    /// Record the snapshot at this time (RFC 3339)
    #[arg(long)]
    time: Option<String>,
    /// zstd compression level
    #[arg(long, default_value_t = 3)]
    compression: i32,
}

#[derive(Args)]
struct CopyArgs {
    /// Destination repository URL
    #[arg(long, env = "CUSTOS_TO_REPOSITORY")]
    to: String,
    /// Destination passphrase file (or CUSTOS_TO_PASSWORD)
    #[arg(long, env = "CUSTOS_TO_PASSWORD_FILE")]
    to_password_file: Option<PathBuf>,
    /// Destination key file
    #[arg(long, env = "CUSTOS_TO_KEY_FILE")]
    to_key_file: Option<PathBuf>,
    /// Create the destination if it does not exist (same chunker and pack sizes
    /// as the source, its own master key)
    #[arg(long)]
    to_init: bool,
    /// Snapshots to copy (IDs, prefixes, `latest`); all by default
    snapshots: Vec<String>,
    /// Only snapshots of this service
    #[arg(long)]
    service: Option<String>,
    /// Only snapshots of this tenant
    #[arg(long)]
    tenant: Option<String>,
    /// Only snapshots with this tag (repeatable)
    #[arg(long)]
    tag: Vec<String>,
    /// Say what would be copied; write nothing
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct ForgetArgs {
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours
    #[arg(long, value_name = "N")]
    keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest days
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N newest ISO weeks
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest months
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest years
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u32>,
    /// Keep every snapshot newer than this (e.g. 90d, 1y2w, 12h)
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep every snapshot with this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    keep_tag: Vec<String>,
    /// Time zone of the calendar buckets (IANA name; default: the system's)
    #[arg(long, value_name = "TZ")]
    time_zone: Option<String>,
    /// Only snapshots of this service
    #[arg(long)]
    service: Option<String>,
    /// Only snapshots of this tenant
    #[arg(long)]
    tenant: Option<String>,
    /// Only snapshots from this host
    #[arg(long)]
    host: Option<String>,
    /// Only snapshots with this tag (repeatable: all must match)
    #[arg(long)]
    tag: Vec<String>,
    /// Group snapshots by these fields before applying the policy
    #[arg(
        long,
        default_value = "service,host,paths",
        value_name = "service,host,paths"
    )]
    group_by: String,
    /// Say what would be kept and removed; remove nothing
    #[arg(long)]
    dry_run: bool,
    /// Run prune afterwards to give the space back
    #[arg(long)]
    prune: bool,
    /// Evaluate keep-within against this time instead of now (RFC 3339; for
    /// imports and tests)
    #[arg(long, hide = true)]
    now: Option<String>,
    /// With --prune: repack packs whose live fraction is below this percentage
    #[arg(long, default_value_t = 80.0)]
    repack_below: f64,
    /// With --prune: minimum age of condemned packs before deletion
    #[arg(long, default_value = "0s")]
    grace: String,
}

#[derive(Args)]
struct PruneArgs {
    /// Report what would be freed; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Repack packs whose live fraction is below this percentage
    #[arg(long, default_value_t = 80.0)]
    repack_below: f64,
    /// Condemned packs are deleted once every process that was in the
    /// repository when they were condemned is gone (in the same run when
    /// nothing else holds a lock) and at least this much time has passed
    #[arg(long, default_value = "0s")]
    grace: String,
}

#[derive(Args)]
struct RestoreArgs {
    /// Snapshot ID, unique prefix, or `latest` (default with --at)
    snapshot: Option<String>,
    /// Directory to restore into
    #[arg(long, required_unless_present = "daemon")]
    target: Option<PathBuf>,
    /// Ask a running daemon (its API URL, e.g. http://127.0.0.1:8420) to
    /// restore for a ticket instead of restoring here; needs --tenant,
    /// --service, --ticket and CUSTOS_TOKEN
    #[arg(long, requires_all = ["tenant", "service", "ticket"])]
    daemon: Option<String>,
    /// Tenant of the service (with --daemon)
    #[arg(long)]
    tenant: Option<String>,
    /// Service-desk ticket reference (with --daemon)
    #[arg(long)]
    ticket: Option<String>,
    /// API token (with --daemon)
    #[arg(long, env = "CUSTOS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The newest snapshot at or before this time (RFC 3339)
    #[arg(long)]
    at: Option<String>,
    /// Only snapshots of this service
    #[arg(long)]
    service: Option<String>,
    /// Only paths matching (repeatable)
    #[arg(long)]
    include: Vec<String>,
    /// Not paths matching (repeatable)
    #[arg(long)]
    exclude: Vec<String>,
    /// The service's restore window (e.g. 90d): a point in time or snapshot
    /// older than this is refused
    #[arg(long, value_name = "DURATION")]
    restore_window: Option<String>,
    /// Restore into a non-empty directory, replacing the files the snapshot has
    #[arg(long)]
    overwrite: bool,
    /// Read every restored file back and check it
    #[arg(long)]
    verify: bool,
    /// Also restore setuid and setgid bits of files, file capabilities
    /// (security.capability) and device nodes; without it they are left out
    /// and listed
    #[arg(long)]
    privileged: bool,
}

/// Large buffers (packs, ranges, chunks) are allocated and freed over and
/// over. glibc raises its mmap threshold after the first large free, after
/// which such buffers come from the heap and fragment it: peak RSS grew with
/// the work done, not with what was in flight. A fixed threshold keeps them
/// mmapped and gives them back to the system when freed.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    // Whatever custos creates (repositories on local disk, caches, state,
    // audit log, certificates) is private to its user, whatever the umask.
    // SAFETY: umask only changes this process's file creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let cli = Cli::parse();
    init_tracing(&cli.global);
    take_secret_variables(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Takes every secret variable custos will read out of the environment
/// before any other thread starts (see `custos::secrets`): the command
/// line's passphrases and token, and for the daemon every tenant's
/// `password_env` and token `secret_env` its config names.
fn take_secret_variables(cli: &Cli) {
    custos::secrets::harvest(["CUSTOS_PASSWORD", "CUSTOS_TO_PASSWORD", "CUSTOS_TOKEN"]);
    if let Command::Daemon { config } = &cli.command {
        if let Ok(cfg) = custos::config::Config::load(config) {
            custos::secrets::harvest(cfg.secret_variables().iter().map(String::as_str));
        }
    }
}

fn init_tracing(g: &Global) {
    use tracing_subscriber::EnvFilter;
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("custos={default},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("CUSTOS_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .with_target(false)
            .init();
    }
}

fn read_secret(g: &Global, creating: bool) -> Result<Secret> {
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

fn repo_url(g: &Global) -> Result<String> {
    g.repo
        .clone()
        .ok_or_else(|| Error::Usage("no repository given: use --repo or CUSTOS_REPOSITORY".into()))
}

fn cache_root(g: &Global) -> Option<PathBuf> {
    if g.no_cache {
        None
    } else {
        g.cache_dir
            .clone()
            .or_else(custos::index::default_cache_dir)
    }
}

async fn open(g: &Global) -> Result<Repository> {
    let backend = Backend::open(&repo_url(g)?, false)?;
    let secret = read_secret(g, false)?;
    Repository::open(backend, &secret, cache_root(g)).await
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| Error::Problems(format!("cannot encode JSON: {e}")))?;
    println!("{s}");
    Ok(())
}

fn parse_time(s: &str, what: &str) -> Result<jiff::Timestamp> {
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

#[derive(serde::Serialize)]
struct SnapshotJson<'a> {
    id: String,
    short_id: String,
    time: &'a str,
    service: &'a Option<String>,
    tenant: &'a Option<String>,
    tags: &'a [String],
    paths: &'a [String],
    hostname: &'a str,
    username: &'a str,
    parent: Option<String>,
    stream: bool,
    summary: &'a custos::repofile::snapshot::Summary,
}

async fn run(cli: Cli) -> Result<u8> {
    let g = cli.global;
    // Commands that change a repository are audited, and refused when the
    // configured audit log cannot be written.
    let changes = match &cli.command {
        Command::Key { action } => !matches!(action, KeyAction::List),
        Command::Forget(a) => !a.dry_run,
        Command::Prune(a) => !a.dry_run,
        Command::Pin { .. } | Command::Unpin { .. } | Command::Unlock { .. } => true,
        _ => false,
    };
    if changes {
        require_operator_audit()?;
    }
    match cli.command {
        Command::Init {
            chunk_avg_kib,
            pack_size_mib,
        } => {
            let url = repo_url(&g)?;
            let backend = Backend::open(&url, true)?;
            let secret = read_secret(&g, true)?;
            let avg = chunk_avg_kib * 1024;
            let opts = InitOptions {
                chunker: custos::repofile::config::ChunkerParams {
                    min: avg / 2,
                    avg,
                    max: avg * 8,
                },
                pack_size: pack_size_mib << 20,
                kdf: kdf_params(),
            };
            let repo = Repository::init(backend, &secret, &opts, cache_root(&g)).await?;
            if g.json {
                print_json(
                    &serde_json::json!({ "id": repo.config().id.to_hex(), "repository": url }),
                )?;
            } else {
                println!("created repository {} at {url}", repo.config().id.short());
            }
            Ok(0)
        }
        Command::Backup(a) => {
            let repo = open(&g).await?.load_index().await?;
            let stream = if a.stdin {
                if !a.paths.is_empty() {
                    return Err(Error::Usage("--stdin takes no paths".into()));
                }
                Some(backup::StreamSource {
                    name: a.stdin_name.clone(),
                    reader: Box::new(std::io::stdin()) as Box<dyn Read + Send + Sync>,
                })
            } else {
                None
            };
            let opts = backup::BackupOptions {
                paths: a.paths,
                stream,
                service: a.service,
                tenant: a.tenant,
                tags: a.tag,
                excludes: a.exclude,
                parent: a.parent,
                force: a.force,
                time: a
                    .time
                    .as_deref()
                    .map(|t| parse_time(t, "--time"))
                    .transpose()?,
                compression_level: a.compression,
                workers: 0,
                progress: Progress::new("backup", g.quiet || g.json),
                cancel: None,
            };
            let r = backup::backup(&repo, opts).await?;
            let s = &r.snapshot.summary;
            if g.json {
                print_json(&serde_json::json!({
                    "id": r.id.to_hex(),
                    "short_id": r.id.short(),
                    "time": r.snapshot.time,
                    "files": s.files,
                    "dirs": s.dirs,
                    "files_read": s.files_read,
                    "files_unchanged": s.files_unchanged,
                    "total_bytes": s.total_bytes,
                    "bytes_read": s.bytes_read,
                    "bytes_added": s.bytes_added,
                    "bytes_added_raw": s.bytes_added_raw,
                    "blobs_added": s.blobs_added,
                    "duration": s.duration_secs,
                    "errors": s.errors,
                }))?;
            } else {
                println!("{}", r.id);
                if !g.quiet {
                    eprintln!(
                        "snapshot {} saved: {} files ({} unchanged), {} read, {} added ({} stored) in {:.1}s",
                        r.id.short(),
                        s.files,
                        s.files_unchanged,
                        human_bytes(s.bytes_read),
                        human_bytes(s.bytes_added_raw),
                        human_bytes(s.bytes_added),
                        s.duration_secs
                    );
                }
            }
            if !s.errors.is_empty() {
                eprintln!(
                    "error: {} entries could not be read and are missing from snapshot {}:",
                    s.errors.len(),
                    r.id.short()
                );
                for e in &s.errors {
                    eprintln!("  {}: {}", e.path, e.error);
                }
                return Ok(1);
            }
            Ok(0)
        }
        Command::Snapshots { service, tag } => {
            let repo = open(&g).await?;
            let (snaps, bad) = repo.snapshots().await?;
            for (path, e) in &bad {
                eprintln!("warning: {path}: {e}");
            }
            let sel: Vec<_> = snaps
                .iter()
                .filter(|(_, s)| {
                    service
                        .as_ref()
                        .is_none_or(|v| s.service.as_ref() == Some(v))
                })
                .filter(|(_, s)| tag.iter().all(|t| s.tags.contains(t)))
                .collect();
            if g.json {
                let v: Vec<SnapshotJson> = sel
                    .iter()
                    .map(|(id, s)| SnapshotJson {
                        id: id.to_hex(),
                        short_id: id.short(),
                        time: &s.time,
                        service: &s.service,
                        tenant: &s.tenant,
                        tags: &s.tags,
                        paths: &s.paths,
                        hostname: &s.hostname,
                        username: &s.username,
                        parent: s.parent.map(|p| p.to_hex()),
                        stream: s.stream,
                        summary: &s.summary,
                    })
                    .collect();
                print_json(&v)?;
            } else {
                println!(
                    "{:<8}  {:<25}  {:<16}  {:<20}  {:>10}  paths",
                    "ID", "time", "service", "tags", "size"
                );
                for (id, s) in &sel {
                    println!(
                        "{:<8}  {:<20}  {:<16}  {:<20}  {:>10}  {}",
                        id.short(),
                        s.timestamp().strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
                        s.service.as_deref().unwrap_or("-"),
                        s.tags.join(","),
                        human_bytes(s.summary.total_bytes),
                        s.paths.join(" ")
                    );
                }
                println!("{} snapshots", sel.len());
            }
            Ok(if bad.is_empty() { 0 } else { 1 })
        }
        Command::Ls { snapshot, path } => {
            let repo = open(&g).await?.load_index().await?;
            let (snaps, _) = repo.snapshots_naming(Some(&snapshot)).await?;
            let (_, snap) = select_snapshot(&snaps, &snapshot, |_| true)?;
            let entries = browse::ls(&repo, snap, path.as_deref()).await?;
            if g.json {
                print_json(&entries)?;
            } else {
                let mut out = std::io::stdout().lock();
                for e in entries {
                    let _ = writeln!(
                        out,
                        "{:>7o} {:>12} {:<30} {}",
                        e.mode & 0o7777,
                        e.size,
                        e.mtime,
                        e.path
                    );
                }
            }
            Ok(0)
        }
        Command::Dump { snapshot, path } => {
            let repo = open(&g).await?.load_index().await?;
            let (snaps, _) = repo.snapshots_naming(Some(&snapshot)).await?;
            let (_, snap) = select_snapshot(&snaps, &snapshot, |_| true)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
            browse::dump(&repo, snap, path.as_deref(), &mut out).await?;
            Ok(0)
        }
        Command::Restore(a) if a.daemon.is_some() => restore_via_daemon(&g, a).await,
        Command::Restore(a) => {
            let target = a
                .target
                .clone()
                .ok_or_else(|| Error::Usage("--target is required".into()))?;
            let repo = open(&g).await?.load_index().await?;
            let (snaps, _) = repo.snapshots_naming(a.snapshot.as_deref()).await?;
            let service_ok = |s: &custos::repofile::snapshot::Snapshot| {
                a.service
                    .as_ref()
                    .is_none_or(|v| s.service.as_ref() == Some(v))
            };
            let at = a.at.as_deref().map(|t| parse_time(t, "--at")).transpose()?;
            let (id, snap) = select_snapshot_at(&snaps, a.snapshot.as_deref(), at, service_ok)?;
            let window = a
                .restore_window
                .as_deref()
                .map(|w| {
                    w.parse::<custos::duration::HumanDuration>()
                        .map_err(|e| Error::Usage(format!("--restore-window {w:?}: {e}")))
                })
                .transpose()?;
            custos::policy::window::check(window, at, snap.timestamp(), jiff::Timestamp::now())?;
            let opts = restore::RestoreOptions {
                target: target.clone(),
                includes: a.include,
                excludes: a.exclude,
                verify: a.verify,
                overwrite: a.overwrite,
                privileged: a.privileged,
                concurrency: 4,
                progress: Progress::new("restore", g.quiet || g.json),
            };
            let r = restore::restore(&repo, snap, &opts).await?;
            if g.json {
                print_json(
                    &serde_json::json!({ "snapshot": id.to_hex(), "target": target, "result": r }),
                )?;
            } else if !g.quiet {
                eprintln!(
                    "restored snapshot {} to {}: {} files, {} dirs, {} others, {} written{}{}",
                    id.short(),
                    target.display(),
                    r.files,
                    r.dirs,
                    r.others,
                    human_bytes(r.bytes_written),
                    if r.files_skipped > 0 {
                        format!(", {} already complete", r.files_skipped)
                    } else {
                        String::new()
                    },
                    if a.verify {
                        format!(", {} verified", r.files_verified)
                    } else {
                        String::new()
                    }
                );
            }
            if !g.quiet {
                for w in &r.warnings {
                    eprintln!("warning: {w}");
                }
            }
            if !r.dropped.is_empty() && !g.quiet {
                eprintln!(
                    "note: {} privileged attributes or device nodes were left out (restore them with --privileged):",
                    r.dropped.len()
                );
                for d in &r.dropped {
                    eprintln!("  {}: {}", d.path, d.reason);
                }
            }
            if !r.errors.is_empty() {
                eprintln!(
                    "error: {} problems ({} entries not restored); everything else was restored:",
                    r.errors.len(),
                    r.skipped.len()
                );
                for e in &r.errors {
                    eprintln!("  {e}");
                }
                return Ok(1);
            }
            Ok(0)
        }
        Command::Check {
            read_data,
            read_data_subset,
        } => {
            let subset = read_data_subset
                .map(|s| {
                    s.trim_end_matches('%')
                        .parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=100.0).contains(p))
                        .ok_or_else(|| {
                            Error::Usage(format!(
                                "--read-data-subset: {s:?} is not a percentage such as 10%"
                            ))
                        })
                })
                .transpose()?;
            let repo = open(&g).await?.load_index().await?;
            // Rollback detection against what the last check from this
            // cache saw (custos::repository::watch).
            let memory = repo
                .cache_dir()
                .map(|d| custos::repository::watch::Memory::new(d.join("watch.json")));
            let previous = match &memory {
                Some(m) => Some(m.load()?),
                None => {
                    eprintln!("note: without a cache, check cannot compare the repository with what it saw before (rollback detection)");
                    None
                }
            };
            let report = check::check(
                &repo,
                &check::CheckOptions {
                    read_data,
                    read_data_subset: subset,
                    rollback: previous,
                },
            )
            .await?;
            if let (Some(m), Some(seen)) = (&memory, &report.seen) {
                if report.rollback.is_empty() {
                    // The memory is a convenience: a check that cannot keep
                    // it still checked (the next compares with the older one).
                    if let Err(e) = m.store(seen) {
                        eprintln!("warning: what this check saw is not remembered: {e}");
                    }
                } else {
                    // Kept as it was, so that the next check raises the
                    // same alarms until an operator accepts the change.
                    eprintln!(
                        "note: the changes above are reported again by every check until {} is removed (which accepts the repository as it is now)",
                        m.path().display()
                    );
                }
            }
            if g.json {
                print_json(&report)?;
            } else {
                for w in &report.warnings {
                    eprintln!("warning: {w}");
                }
                for e in &report.errors {
                    eprintln!("error: {e}");
                }
                if !report.affected.is_empty() {
                    eprintln!("damaged data affects:");
                    for a in &report.affected {
                        eprintln!("  snapshot {}: {}", a.snapshot.short(), a.path);
                    }
                }
                println!(
                    "checked {} snapshots, {} trees, {} packs ({} read, {} blobs verified): {}",
                    report.snapshots,
                    report.trees,
                    report.packs,
                    report.packs_read,
                    report.blobs_read,
                    if report.ok() {
                        "no errors".to_string()
                    } else {
                        format!("{} errors", report.errors.len())
                    }
                );
            }
            Ok(if report.ok() { 0 } else { 1 })
        }
        Command::Stats => {
            let repo = open(&g).await?.load_index().await?;
            let s = stats::stats(&repo).await?;
            if g.json {
                print_json(&s)?;
            } else {
                println!("snapshots:          {}", s.snapshots);
                println!("logical size:       {}", human_bytes(s.logical_bytes));
                println!(
                    "unique data:        {} in {} blobs ({} data, {} trees)",
                    human_bytes(s.unique_bytes),
                    s.blobs,
                    s.data_blobs,
                    s.tree_blobs
                );
                println!(
                    "stored size:        {} in {} packs",
                    human_bytes(s.stored_bytes),
                    s.packs
                );
                println!("deduplication:      {:.2}x", s.dedup_ratio);
                println!("compression:        {:.2}x", s.compression_ratio);
                println!("total reduction:    {:.2}x", s.total_ratio);
            }
            Ok(0)
        }
        Command::Key { action } => {
            let repo = open(&g).await?;
            match action {
                KeyAction::List => {
                    let slots = repo.key_slots().await?;
                    let in_use = repo.slot_in_use();
                    if g.json {
                        let v: Vec<_> = slots
                            .iter()
                            .map(|s| serde_json::json!({"id": s.id.to_hex(), "kind": s.kind(), "created": s.created, "hostname": s.hostname, "username": s.username, "fingerprint": s.fingerprint(), "current": s.id == in_use}))
                            .collect();
                        print_json(&v)?;
                    } else {
                        for s in slots {
                            println!(
                                "{} {}  {:<10}  {}  {}@{}",
                                if s.id == in_use { "*" } else { " " },
                                s.id.short(),
                                s.kind(),
                                s.created,
                                s.username,
                                s.hostname
                            );
                        }
                        println!("(* the slot your passphrase or key file opens)");
                    }
                }
                KeyAction::Add {
                    new_password_file,
                    new_key_file,
                } => {
                    // The same checks as every other secret: no empty
                    // passphrase, key files of at least 32 bytes.
                    let source = match (new_password_file, new_key_file) {
                        (Some(p), None) => KeySource::PasswordFile(p),
                        (None, Some(k)) => KeySource::KeyFile(k),
                        _ => {
                            return Err(Error::Usage(
                                "give exactly one of --new-password-file or --new-key-file".into(),
                            ))
                        }
                    };
                    let (secret, _) = source.load_or_create()?;
                    let id = repo.add_key(&secret, kdf_params()).await?;
                    audit_cli(
                        "key.added",
                        serde_json::json!({"repository": repo_url(&g)?, "slot": id.to_hex()}),
                    )?;
                    println!("added key slot {}", id.short());
                }
                KeyAction::Remove { id, force } => {
                    let slot = repo.key_slot_by_prefix(&id).await?;
                    repo.remove_key(&slot, force).await?;
                    audit_cli(
                        "key.removed",
                        serde_json::json!({"repository": repo_url(&g)?, "slot": slot.to_hex()}),
                    )?;
                    println!("removed key slot {}", slot.short());
                }
            }
            Ok(0)
        }
        Command::Copy(a) => {
            let src = open(&g).await?.load_index().await?;
            let secret = KeySource::given(
                a.to_key_file.as_deref(),
                a.to_password_file.as_deref(),
                "CUSTOS_TO_PASSWORD",
            )
            .ok_or_else(|| {
                Error::Usage(
                    "no key for the destination: --to-password-file, --to-key-file or CUSTOS_TO_PASSWORD".into(),
                )
            })?
            .load()?;
            let dst = if a.to_init {
                let opts = InitOptions {
                    chunker: src.config().chunker,
                    pack_size: src.config().pack_size,
                    kdf: kdf_params(),
                };
                let (r, created) =
                    Repository::open_or_init(&a.to, &secret, &opts, cache_root(&g)).await?;
                if created {
                    eprintln!("created repository {} at {}", r.config().id.short(), a.to);
                }
                r
            } else {
                Repository::open(Backend::open(&a.to, false)?, &secret, cache_root(&g)).await?
            }
            .load_index()
            .await?;
            let r = copy::copy(
                &src,
                &dst,
                &copy::CopyOptions {
                    snapshots: a.snapshots,
                    service: a.service,
                    tenant: a.tenant,
                    tags: a.tag,
                    dry_run: a.dry_run,
                    compression_level: 3,
                },
            )
            .await?;
            if g.json {
                print_json(&r)?;
            } else {
                for s in &r.snapshots {
                    match (&s.copy, &s.error) {
                        (Some(c), _) => println!(
                            "copied snapshot {} → {}: {} blobs, {} uploaded",
                            &s.source[..8],
                            &c[..8],
                            s.blobs_added,
                            human_bytes(s.bytes_added)
                        ),
                        (None, Some(e)) => println!("snapshot {} not copied: {e}", &s.source[..8]),
                        (None, None) => println!("snapshot {}: {}", &s.source[..8], s.outcome),
                    }
                }
                println!(
                    "{} copied, {} already present, {} failed; {} uploaded",
                    r.copied,
                    r.present,
                    r.failed,
                    human_bytes(r.bytes_added)
                );
            }
            Ok(if r.failed > 0 { 1 } else { 0 })
        }
        Command::Forget(a) => {
            let opts = forget_options(&a)?;
            let repo = open(&g).await?;
            let report = forget::forget(&repo, &opts).await?;
            let pruned = if a.prune {
                let repo = repo.load_index().await?;
                Some(
                    run_prune(
                        &repo,
                        &PruneArgs {
                            dry_run: a.dry_run,
                            repack_below: a.repack_below,
                            grace: a.grace.clone(),
                        },
                    )
                    .await?,
                )
            } else {
                None
            };
            if !report.dry_run {
                audit_cli(
                    "forget",
                    serde_json::json!({"repository": repo_url(&g)?, "tenant": a.tenant, "service": a.service, "removed": report.removed, "kept": report.kept, "freed": pruned.as_ref().map(|p| p.bytes_freed)}),
                )?;
            }
            print_forget(&g, &report, pruned.as_ref())?;
            Ok(0)
        }
        Command::Prune(a) => {
            let repo = open(&g).await?.load_index().await?;
            let r = run_prune(&repo, &a).await?;
            if !r.dry_run {
                audit_cli(
                    "prune",
                    serde_json::json!({"repository": repo_url(&g)?, "packs_deleted": r.packs_deleted, "freed": r.bytes_freed}),
                )?;
            }
            print_prune(&g, &r)?;
            Ok(0)
        }
        Command::Repair {
            drop_snapshots,
            dry_run,
        } => {
            let repo = open(&g).await?;
            let r = repair::repair(
                &repo,
                &repair::RepairOptions {
                    drop_snapshots,
                    dry_run,
                },
            )
            .await?;
            if g.json {
                print_json(&r)?;
            } else {
                println!(
                    "{} packs read, {} blobs indexed{}",
                    r.packs,
                    r.blobs,
                    if r.dry_run {
                        " (dry run: nothing written)"
                    } else {
                        ""
                    }
                );
                if r.bad_blobs > 0 {
                    println!(
                        "{} blobs failed verification and were left out",
                        r.bad_blobs
                    );
                }
                for p in &r.bad_packs {
                    println!("pack left out: {p}");
                }
                for d in &r.damaged_snapshots {
                    println!(
                        "snapshot {}: {}{}",
                        d.snapshot,
                        d.problem,
                        if d.removed { " (removed)" } else { "" }
                    );
                }
                if r.damaged_snapshots.iter().any(|d| !d.removed) && !drop_snapshots {
                    println!("back up the affected sources again to heal them, or run `custos repair --drop-snapshots`");
                }
            }
            Ok(if r.damaged_snapshots.iter().all(|d| d.removed) {
                0
            } else {
                1
            })
        }
        Command::Pin { snapshot, reason } => {
            let repo = open(&g).await?;
            let (snaps, _) = repo.snapshots_naming(Some(&snapshot)).await?;
            let (id, _) = select_snapshot(&snaps, &snapshot, |_| true)?;
            repo.pin(id, &reason).await?;
            audit_cli(
                "snapshot.pinned",
                serde_json::json!({"repository": repo_url(&g)?, "snapshot": id.to_hex(), "reason": reason}),
            )?;
            println!("snapshot {} pinned ({reason})", id.short());
            Ok(0)
        }
        Command::Unpin { snapshot } => {
            let repo = open(&g).await?;
            let (snaps, _) = repo.snapshots_naming(Some(&snapshot)).await?;
            let (id, _) = select_snapshot(&snaps, &snapshot, |_| true)?;
            repo.unpin(id).await?;
            audit_cli(
                "snapshot.unpinned",
                serde_json::json!({"repository": repo_url(&g)?, "snapshot": id.to_hex()}),
            )?;
            println!("snapshot {} unpinned", id.short());
            Ok(0)
        }
        Command::Demo { dir } => demo::run(&dir).map(|()| 0),
        Command::Daemon { config } => {
            let path = config.clone();
            custos::config::Config::load(&path)?;
            let loader: custos::daemon::Loader = Box::new(move || {
                custos::daemon::Setup::from_config(&custos::config::Config::load(&path)?)
            });
            custos::daemon::run(loader).await.map(|()| 0)
        }
        Command::Config {
            action: ConfigAction::Check { config, now },
        } => {
            let cfg = custos::config::Config::load(&config)?;
            // Token secrets must be readable too.
            custos::daemon::Setup::from_config(&cfg)?;
            for w in erased_tenant_warnings(&cfg) {
                eprintln!("warning: {w}");
            }
            let now = now
                .as_deref()
                .map(|t| parse_time(t, "--now"))
                .transpose()?
                .unwrap_or_else(jiff::Timestamp::now);
            let report = cfg.report(now, 3);
            if g.json {
                print_json(&report)?;
            } else if !g.quiet {
                println!(
                    "{}: valid; {} targets, {} tenants, {} services",
                    config.display(),
                    cfg.targets.len(),
                    cfg.tenants.len(),
                    cfg.services.len()
                );
                for r in &report {
                    println!("\n{}/{} ({})", r.tenant, r.service, r.class);
                    println!("  source:          {}", r.source);
                    println!(
                        "  target:          {} (workload zone {}) → {}",
                        r.target, r.zone, r.repository
                    );
                    if let Some(s) = &r.standby {
                        println!("  standby:         {s}");
                    }
                    println!("  schedule:        {}", r.schedule);
                    println!("  next runs:       {}", r.next_runs.join(", "));
                    println!(
                        "  retention:       {} (runs {})",
                        r.retention, r.retention_schedule
                    );
                    println!(
                        "  restore window:  {}",
                        r.restore_window.as_deref().unwrap_or("every kept snapshot")
                    );
                    println!(
                        "  RPO:             {}{}",
                        r.rpo,
                        r.rto
                            .as_ref()
                            .map(|t| format!(", RTO {t}"))
                            .unwrap_or_default()
                    );
                    println!("  check:           {}", r.check);
                    if let Some(d) = &r.drill {
                        println!("  DR drill:        {d}");
                    }
                    println!(
                        "  compression:     zstd {}{}",
                        r.compression,
                        if r.long_term { ", long_term" } else { "" }
                    );
                }
            }
            Ok(0)
        }
        Command::Status {
            config,
            token,
            accept_alarms: Some(tenant),
        } => {
            let cfg = custos::config::Config::load(&config)?;
            let accepted =
                custos::daemon::status::accept_alarms(&cfg, token.as_deref(), &tenant).await?;
            if g.json {
                print_json(&accepted)?;
            } else {
                for a in &accepted {
                    println!("accepted: {} ({}): {}", a.tenant, a.repository, a.text);
                }
                println!("{} alarms of {tenant} accepted", accepted.len());
            }
            Ok(0)
        }
        Command::Status { config, token, .. } => {
            let cfg = custos::config::Config::load(&config)?;
            let custos::daemon::status::Overview {
                services: statuses,
                erasures,
                alarms,
            } = custos::daemon::status::overview(&cfg, token.as_deref()).await?;
            let chain = custos::daemon::status::chain(&cfg, token.as_deref()).await?;
            if g.json {
                print_json(&serde_json::json!({
                    "services": statuses, "erasures": erasures, "audit": chain, "alarms": alarms,
                }))?;
            } else {
                print!("{}", custos::daemon::status::table(&statuses));
                print!("{}", custos::daemon::status::erasure_lines(&erasures));
                print!("{}", custos::daemon::status::chain_line(&chain));
                print!("{}", custos::daemon::status::alarm_lines(&alarms));
            }
            let now = jiff::Timestamp::now();
            let alarm = !statuses.iter().all(|s| s.rpo_ok)
                || erasures.iter().any(|r| r.overdue(now))
                || !chain.ok
                || !alarms.is_empty();
            Ok(if alarm { 1 } else { 0 })
        }
        Command::Erase { action } => run_erase(&g, action).await,
        Command::Certificate {
            action: CertificateAction::Keygen { out },
        } => {
            let public = custos::erasure::certificate::keygen(&out)?;
            println!(
                "signing key {} created; public key {} in {}",
                out.display(),
                hex::encode(public.to_bytes()),
                out.with_extension("pub").display()
            );
            Ok(0)
        }
        Command::Certificate {
            action: CertificateAction::Verify { file, public_key },
        } => {
            let key = custos::erasure::certificate::read_public_key(&public_key)?;
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
            match custos::erasure::certificate::verify(&text, &key) {
                Ok(c) => {
                    if g.json {
                        print_json(&c)?;
                    } else {
                        println!(
                            "certificate valid: tenant {} erased {} on {} targets, signed by {}",
                            c.certificate.tenant,
                            c.certificate.erasure_completed,
                            c.certificate.targets.len(),
                            c.public_key
                        );
                    }
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("error: certificate {} is not valid: {e}", file.display());
                    Ok(1)
                }
            }
        }
        Command::Audit {
            action: AuditAction::Verify { log, public_key },
        } => {
            let path = log.path()?;
            match custos::audit::verify(&path) {
                Ok((n, head)) => {
                    // The chain holds; does it still match what was mirrored?
                    let cfg = match (&log.file, &log.config) {
                        (None, Some(c)) => Some(custos::config::Config::load(c)?),
                        _ => None,
                    };
                    let mirror = match cfg.as_ref().and_then(|c| c.audit_mirror.clone()) {
                        Some(url) => {
                            let trusted = match &public_key {
                                Some(p) => Some(custos::erasure::certificate::read_public_key(p)?),
                                None => cfg
                                    .as_ref()
                                    .and_then(|c| c.certificate_key.as_deref())
                                    .and_then(custos::audit::checkpoint_key)
                                    .map(|k| k.verifying_key()),
                            };
                            let b = Backend::open(&url, false)?;
                            Some((
                                url,
                                custos::audit::check_mirror(&path, &b, trusted.as_ref()).await?,
                            ))
                        }
                        None => None,
                    };
                    let problems: Vec<String> = mirror
                        .as_ref()
                        .map(|(_, m)| m.problems.clone())
                        .unwrap_or_default();
                    if g.json {
                        print_json(&serde_json::json!({
                            "records": n, "head": head, "ok": problems.is_empty(),
                            "mirror": mirror.as_ref().map(|(u, m)| serde_json::json!({"url": u, "check": m})),
                        }))?;
                    } else {
                        println!("{}: {n} records, chain intact, head {head}", path.display());
                        if let Some((url, m)) = &mirror {
                            println!(
                                "mirror {url}: {} records, {} checkpoints ({} signatures verified)",
                                m.mirrored, m.checkpoints, m.checkpoints_verified
                            );
                        }
                    }
                    if problems.is_empty() {
                        return Ok(0);
                    }
                    eprintln!(
                        "error: the audit log does not match its mirror: {}",
                        problems.join("; ")
                    );
                    Ok(1)
                }
                Err(custos::audit::VerifyError::Missing) => {
                    Err(Error::NotFound(format!("audit log {}", path.display())))
                }
                Err(custos::audit::VerifyError::Io(e)) => Err(e),
                Err(custos::audit::VerifyError::Broken(b)) => {
                    if g.json {
                        print_json(
                            &serde_json::json!({"ok": false, "line": b.line, "problem": b.problem}),
                        )?;
                    }
                    eprintln!("error: {b}");
                    Ok(1)
                }
            }
        }
        Command::Audit {
            action: AuditAction::Show { log, tenant },
        } => {
            let path = log.path()?;
            let records = custos::audit::read(&path, |r| {
                tenant
                    .as_deref()
                    .is_none_or(|t| r.tenant.as_deref() == Some(t))
            })?;
            if g.json {
                print_json(&records)?;
            } else {
                for r in &records {
                    println!(
                        "{:>6}  {}  {:<18} {:<20} {:<12} {}",
                        r.seq,
                        r.time,
                        r.action,
                        r.actor,
                        r.tenant.as_deref().unwrap_or("-"),
                        r.details
                    );
                }
            }
            Ok(0)
        }
        Command::Catalog {
            action: CatalogAction::Rebuild { config },
        } => {
            let cfg = custos::config::Config::load(&config)?;
            let (services, snapshots, problems) = custos::daemon::status::rebuild(&cfg).await?;
            for p in &problems {
                eprintln!("warning: {p}");
            }
            println!("catalog rebuilt: {services} services, {snapshots} snapshots");
            Ok(0)
        }
        Command::Unlock { all } => {
            let backend = Backend::open(&repo_url(&g)?, false)?;
            let removed = lock::unlock(&backend, all).await?;
            if !removed.is_empty() {
                audit_cli(
                    "locks.removed",
                    serde_json::json!({"repository": repo_url(&g)?, "all": all, "count": removed.len()}),
                )?;
            }
            for r in &removed {
                eprintln!("removed {}", r.holder());
            }
            if !g.quiet {
                println!("{} locks removed", removed.len());
            }
            Ok(0)
        }
    }
}

async fn run_prune(repo: &custos::IndexedRepository, a: &PruneArgs) -> Result<prune::PruneReport> {
    if !(0.0..=100.0).contains(&a.repack_below) {
        return Err(Error::Usage(format!(
            "--repack-below {} is not a percentage",
            a.repack_below
        )));
    }
    let grace = custos::duration::parse_duration(&a.grace)
        .map_err(|e| Error::Usage(format!("--grace: {e}")))?;
    prune::prune(
        repo,
        &prune::PruneOptions {
            dry_run: a.dry_run,
            repack_below: a.repack_below / 100.0,
            grace,
        },
    )
    .await
}

/// The audit log operators' commands write to, opened (and verified) at
/// the start of a command that changes a repository, when one is
/// configured: `CUSTOS_AUDIT_LOG`, or `<state_dir>/audit.log` of the config
/// named by `CUSTOS_CONFIG`, or of `/etc/custos/custos.toml` when it exists.
static OPERATOR_AUDIT: std::sync::OnceLock<Option<custos::audit::AuditLog>> =
    std::sync::OnceLock::new();

/// Where operators' commands are audited, if anywhere.
fn operator_audit_path() -> Result<Option<PathBuf>> {
    if let Some(p) = std::env::var_os("CUSTOS_AUDIT_LOG").filter(|p| !p.is_empty()) {
        return Ok(Some(PathBuf::from(p)));
    }
    let (config, explicit) = match std::env::var_os("CUSTOS_CONFIG").filter(|p| !p.is_empty()) {
        Some(c) => (PathBuf::from(c), true),
        None => (PathBuf::from("/etc/custos/custos.toml"), false),
    };
    if !explicit && !config.exists() {
        return Ok(None);
    }
    match custos::config::Config::load(&config) {
        Ok(cfg) => Ok(Some(cfg.state_dir.join("audit.log"))),
        Err(e) if explicit => Err(e.into()),
        Err(e) => {
            eprintln!(
                "warning: {} does not load ({e}): this command is not audited",
                config.display()
            );
            Ok(None)
        }
    }
}

/// Opens the operators' audit log before an act: a configured log that
/// cannot be opened (or does not verify) refuses the act (fail closed).
fn require_operator_audit() -> Result<()> {
    let log = match operator_audit_path()? {
        Some(path) => Some(custos::audit::AuditLog::open(&path).map_err(|e| {
            Error::Refused(format!(
                "the audit log {} cannot be used ({e}): the command is refused",
                path.display()
            ))
        })?),
        None => None,
    };
    let _ = OPERATOR_AUDIT.set(log);
    Ok(())
}

/// Records an operator's act in the audit log opened by
/// [`require_operator_audit`], if any.
///
/// # Errors
/// When the record cannot be written (the act is done: exit 1 says the
/// audit trail is missing it).
fn audit_cli(action: &str, details: serde_json::Value) -> Result<()> {
    let Some(Some(log)) = OPERATOR_AUDIT.get() else {
        return Ok(());
    };
    let actor = format!(
        "operator:{}@{}",
        custos::util::username(),
        custos::util::hostname()
    );
    let tenant = details["tenant"].as_str().map(str::to_string);
    log.append(&actor, action, tenant.as_deref(), details)
        .map(|_| ())
        .map_err(|e| {
            Error::Problems(format!(
                "done, but the audit record could not be written: {e}"
            ))
        })
}

/// Tenants of `cfg` whose contract has ended: erased (a certificate exists,
/// or the catalog says so) or being erased. Read without disturbing a
/// running daemon: its catalog is only opened when nothing holds it.
fn erased_tenant_warnings(cfg: &custos::config::Config) -> Vec<String> {
    let mut out: Vec<String> = custos::erasure::erased_still_configured(cfg)
        .into_iter()
        .map(|(t, cert)| {
            format!(
                "tenant {t} was erased at the end of its contract (certificate {}) but is still in the config: its services are not run; remove it and its services",
                cert.display()
            )
        })
        .collect();
    if cfg.state_dir.join("catalog").exists() {
        if let Ok(catalog) = custos::catalog::Catalog::open(&cfg.state_dir) {
            for t in &cfg.tenants {
                let Ok(Some(r)) = catalog.erasure(&t.id) else {
                    continue;
                };
                let known = out
                    .iter()
                    .any(|w| w.starts_with(&format!("tenant {} ", t.id)));
                match r.state {
                    custos::erasure::ErasureState::Erased if !known => out.push(format!(
                        "tenant {} was erased at the end of its contract but is still in the config: its services are not run; remove it and its services",
                        t.id
                    )),
                    custos::erasure::ErasureState::Erasing => out.push(format!(
                        "tenant {} is being erased: its services run no more jobs",
                        t.id
                    )),
                    _ => {}
                }
            }
        }
    }
    out
}

async fn run_erase(g: &Global, action: EraseAction) -> Result<u8> {
    use custos::erasure;
    let config = match &action {
        EraseAction::Notice { config, .. }
        | EraseAction::Status { config }
        | EraseAction::Execute { config, .. } => config,
    };
    let cfg = custos::config::Config::load(config)?;
    let catalog = custos::catalog::Catalog::open(&cfg.state_dir).map_err(|e| {
        Error::Locked(format!(
            "cannot open the catalog ({e}): stop the daemon first"
        ))
    })?;
    let audit = custos::audit::AuditLog::open(&cfg.state_dir.join("audit.log"))?;
    let actor = format!(
        "operator:{}@{}",
        custos::util::username(),
        custos::util::hostname()
    );
    match action {
        EraseAction::Notice {
            tenant,
            contract,
            at,
            ..
        } => {
            let at = at
                .as_deref()
                .map(|t| parse_time(t, "--at"))
                .transpose()?
                .unwrap_or_else(jiff::Timestamp::now);
            let r = erasure::give_notice(
                &cfg,
                &catalog,
                &audit,
                &tenant,
                contract.as_deref(),
                &actor,
                at,
            )?;
            if g.json {
                print_json(&r)?;
            } else {
                println!(
                    "notice recorded for {tenant}: erasure from {} and by {} at the latest",
                    r.due, r.deadline
                );
            }
            Ok(0)
        }
        EraseAction::Status { .. } => {
            let mut list = catalog.erasures()?;
            // Erased tenants still in the config: the catalog keeps only
            // their state; the certificate is found by name.
            let certs = erasure::erased_still_configured(&cfg);
            for t in &cfg.tenants {
                if list.iter().any(|r| r.tenant == t.id) {
                    continue;
                }
                if let Some(mut r) = catalog.erasure(&t.id)? {
                    if let Some((_, path)) = certs.iter().find(|(id, _)| *id == t.id) {
                        r.certificate = Some(path.display().to_string());
                    }
                    list.push(r);
                }
            }
            let now = jiff::Timestamp::now();
            if g.json {
                print_json(&list)?;
            } else {
                for r in &list {
                    if r.state == erasure::ErasureState::Erased {
                        println!(
                            "{:<20} {:<12} completed {}  certificate {}",
                            r.tenant,
                            erasure::state_name(r.state),
                            r.completed.as_deref().unwrap_or("-"),
                            r.certificate.as_deref().unwrap_or("-")
                        );
                        continue;
                    }
                    println!(
                        "{:<20} {:<12} notice {}  due {}  deadline {}{}",
                        r.tenant,
                        erasure::state_name(r.state),
                        r.notice_given,
                        r.due,
                        r.deadline,
                        if r.overdue(now) { "  OVERDUE" } else { "" }
                    );
                }
            }
            Ok(if list.iter().any(|r| r.overdue(now)) {
                1
            } else {
                0
            })
        }
        EraseAction::Execute {
            tenant,
            now,
            reason,
            ..
        } => {
            let early = if now { reason.as_deref() } else { None };
            let r = erasure::execute(
                &cfg,
                &catalog,
                &audit,
                &tenant,
                &actor,
                early,
                jiff::Timestamp::now(),
            )
            .await?;
            if g.json {
                print_json(&r)?;
            } else {
                for (name, t) in &r.targets {
                    println!(
                        "{name}: {} objects, {} deleted; {} key slots destroyed; verified empty{}",
                        t.objects,
                        human_bytes(t.bytes),
                        t.keys_destroyed.len(),
                        t.retention
                            .as_ref()
                            .filter(|r| r.keeps_versions)
                            .map(|r| format!(
                                " (versioning {}: every version deleted)",
                                r.versioning
                            ))
                            .unwrap_or_default()
                    );
                }
                println!(
                    "{tenant} erased; certificate {}",
                    r.certificate.as_deref().unwrap_or("-")
                );
            }
            Ok(0)
        }
    }
}

async fn restore_via_daemon(g: &Global, a: RestoreArgs) -> Result<u8> {
    let (Some(base), Some(tenant), Some(service), Some(ticket)) =
        (&a.daemon, &a.tenant, &a.service, &a.ticket)
    else {
        return Err(Error::Usage(
            "--daemon needs --tenant, --service and --ticket".into(),
        ));
    };
    let token = a.token.as_deref().ok_or_else(|| {
        Error::Usage("--daemon needs an API token: --token or CUSTOS_TOKEN".into())
    })?;
    let request = custos::daemon::restores::RestoreRequest {
        ticket: ticket.clone(),
        snapshot: a.snapshot.clone(),
        at: a.at.clone(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        verify: true,
    };
    let quiet = g.quiet || g.json;
    let rec = custos::daemon::client::restore(base, token, tenant, service, &request, |r| {
        if !quiet {
            eprintln!(
                "restore {} ({}): {:?}, {}/{} files, {}/{}",
                r.id,
                r.ticket,
                r.state,
                r.files_done,
                r.files_total,
                human_bytes(r.bytes_done),
                human_bytes(r.bytes_total)
            );
        }
    })
    .await?;
    if g.json {
        print_json(&rec)?;
    } else {
        println!(
            "restore {} for ticket {}: snapshot {} of {} restored to {} on the daemon's host ({:?})",
            rec.id,
            rec.ticket,
            &rec.snapshot[..8.min(rec.snapshot.len())],
            rec.snapshot_time,
            rec.target.display(),
            rec.state
        );
        for e in &rec.errors {
            eprintln!("error: {e}");
        }
    }
    Ok(if rec.errors.is_empty() { 0 } else { 1 })
}

fn forget_options(a: &ForgetArgs) -> Result<forget::ForgetOptions> {
    use custos::duration::HumanDuration;
    use custos::policy::retention::RetentionPolicy;
    let keep_within = a
        .keep_within
        .as_deref()
        .map(|s| {
            s.parse::<HumanDuration>()
                .map_err(|e| Error::Usage(format!("--keep-within {s:?}: {e}")))
        })
        .transpose()?;
    let time_zone = match &a.time_zone {
        Some(name) => jiff::tz::TimeZone::get(name)
            .map_err(|e| Error::Usage(format!("--time-zone {name:?}: {e}")))?,
        None => jiff::tz::TimeZone::system(),
    };
    let now = match &a.now {
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map_err(|e| Error::Usage(format!("--now {t:?}: {e}")))?,
        None => jiff::Timestamp::now(),
    };
    let group_by = a
        .group_by
        .parse::<forget::GroupBy>()
        .map_err(|e| Error::Usage(format!("--group-by: {e}")))?;
    Ok(forget::ForgetOptions {
        policy: RetentionPolicy {
            keep_last: a.keep_last,
            keep_hourly: a.keep_hourly,
            keep_daily: a.keep_daily,
            keep_weekly: a.keep_weekly,
            keep_monthly: a.keep_monthly,
            keep_yearly: a.keep_yearly,
            keep_within,
            keep_tags: a.keep_tag.clone(),
            time_zone,
        },
        service: a.service.clone(),
        tenant: a.tenant.clone(),
        host: a.host.clone(),
        tags: a.tag.clone(),
        group_by,
        dry_run: a.dry_run,
        now,
    })
}

fn print_forget(
    g: &Global,
    r: &forget::ForgetReport,
    pruned: Option<&prune::PruneReport>,
) -> Result<()> {
    if g.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            forget: &'a forget::ForgetReport,
            #[serde(skip_serializing_if = "Option::is_none")]
            prune: Option<&'a prune::PruneReport>,
        }
        return print_json(&Out {
            forget: r,
            prune: pruned,
        });
    }
    for u in &r.unreadable {
        eprintln!("warning: left alone, cannot be read: {u}");
    }
    let verb = if r.dry_run { "would remove" } else { "remove" };
    for group in &r.groups {
        println!(
            "{}: keep {}, {verb} {}",
            group.key,
            group.keep.len(),
            group.remove.len()
        );
        for d in &group.decisions {
            println!(
                "  {:<6}  {}  {}  {}",
                if d.keep { "keep" } else { "remove" },
                &d.id[..8.min(d.id.len())],
                d.time,
                d.explanation()
            );
        }
    }
    if r.dry_run {
        println!(
            "dry run: {} snapshots would be kept, {} removed",
            r.kept,
            r.groups.iter().map(|g| g.remove.len()).sum::<usize>()
        );
    } else {
        println!("{} snapshots kept, {} removed", r.kept, r.removed);
    }
    if let Some(p) = pruned {
        print_prune(g, p)?;
    }
    Ok(())
}

fn print_prune(g: &Global, r: &prune::PruneReport) -> Result<()> {
    if g.json {
        return print_json(r);
    }
    let verb = if r.dry_run {
        "would condemn"
    } else {
        "condemned"
    };
    println!(
        "{} snapshots use {} blobs; {verb} {} packs ({} unused, {} repacked with {} live blobs, {} unindexed): {}",
        r.snapshots,
        r.used_blobs,
        r.packs_unused + r.packs_repacked + r.packs_unindexed,
        r.packs_unused,
        r.packs_repacked,
        r.blobs_repacked,
        r.packs_unindexed,
        human_bytes(r.bytes_condemned)
    );
    if r.plans_swept > 0 || r.packs_deleted > 0 {
        println!(
            "deleted {} packs, freed {}",
            r.packs_deleted,
            human_bytes(r.bytes_freed)
        );
    }
    if r.packs_resurrected > 0 {
        println!(
            "kept {} condemned packs that newer snapshots use",
            r.packs_resurrected
        );
    }
    for d in &r.deferred {
        println!("pending: {d}");
    }
    Ok(())
}

/// Argon2id cost for new slots (see [`KdfParams::for_new_slots`]).
fn kdf_params() -> KdfParams {
    KdfParams::for_new_slots()
}
