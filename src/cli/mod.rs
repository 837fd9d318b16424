//! The command line: one module per command group. Each turns its
//! arguments into the library's options, calls the library, and renders
//! text or JSON; `main.rs` only parses, sets up logging and the runtime, and
//! maps errors to exit codes.

mod backup;
mod browse;
mod check;
mod copy;
mod daemon;
mod demo;
mod erasure;
mod generate;
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
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
    /// Repository: a path, file:///abs/path, s3://bucket/prefix, az://container/prefix, gs://bucket/prefix, memory://name
    #[arg(short = 'r', long = "repo", env = "CUSTOS_REPOSITORY", global = true)]
    pub(crate) repo: Option<String>,
    /// Read the passphrase from this file
    #[arg(long, env = "CUSTOS_PASSWORD_FILE", global = true)]
    pub(crate) password_file: Option<PathBuf>,
    /// Run this command (with sh -c) and use its first line of output as
    /// the passphrase
    #[arg(
        long,
        env = "CUSTOS_PASSWORD_COMMAND",
        value_name = "COMMAND",
        global = true
    )]
    pub(crate) password_command: Option<String>,
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
    /// Log format on stderr: text, or json (one object a line)
    #[arg(long, value_enum, env = "CUSTOS_LOG_FORMAT", default_value_t = LogFormat::Text, global = true)]
    pub(crate) log_format: LogFormat,
    /// Upload at most this many KiB a second (to the repository)
    #[arg(long, value_name = "KIB/S", env = "CUSTOS_LIMIT_UPLOAD", global = true)]
    pub(crate) limit_upload: Option<u64>,
    /// Download at most this many KiB a second (from the repository)
    #[arg(
        long,
        value_name = "KIB/S",
        env = "CUSTOS_LIMIT_DOWNLOAD",
        global = true
    )]
    pub(crate) limit_download: Option<u64>,
    /// Cache directory (index cache); default $XDG_CACHE_HOME/custos
    #[arg(long, env = "CUSTOS_CACHE_DIR", global = true)]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Do not keep an index cache between runs
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines with `key=value` fields.
    Text,
    /// One JSON object a line.
    Json,
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
    #[command(
        after_long_help = "Examples:\n  custos -r /srv/backup/tenant-a --password-file /etc/custos/tenant-a.pass init\n  CUSTOS_REPOSITORY=s3://backups/tenant-a custos init        # asks for the passphrase twice on a terminal"
    )]
    Init {
        /// Average chunk size in KiB (min is half, max eight times)
        #[arg(long, default_value_t = 1024)]
        chunk_avg_kib: u32,
        /// Target pack size in MiB
        #[arg(long, default_value_t = 16)]
        pack_size_mib: u64,
    },
    /// Back up paths, or a stream from stdin
    #[command(
        after_long_help = "Examples:\n  custos backup /srv/www --service web-1 --tag daily\n  custos backup /home --exclude-caches --exclude '*.tmp' --one-file-system\n  pg_dump --format=custom shop | custos backup --stdin --stdin-name shop.dump --service db-1\n  custos backup --files-from /etc/custos/paths.txt --dry-run"
    )]
    Backup(backup::BackupArgs),
    /// List snapshots, with their legal holds
    #[command(
        after_long_help = "Examples:\n  custos snapshots --service web-1 --latest 7\n  custos snapshots --group-by service --latest 1\n  custos snapshots --json | jq '.[] | select(.pin)'"
    )]
    Snapshots(snapshots::SnapshotsArgs),
    /// List a snapshot's files: all of them, or one directory's
    #[command(
        after_long_help = "Examples:\n  custos ls latest                  # every entry\n  custos ls -l latest /srv/www      # that directory, long format\n  custos ls --recursive latest /etc"
    )]
    Ls {
        /// Snapshot ID, prefix or `latest`
        snapshot: String,
        /// Directory inside the snapshot (without it: every entry)
        path: Option<String>,
        /// Long format: type and permissions, owner, size, time, link target
        #[arg(short = 'l', long)]
        long: bool,
        /// Everything under the directory, not only its own entries
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Write one file (or a stream snapshot) to stdout, or a directory as a
    /// tar or zip archive
    #[command(
        after_long_help = "Examples:\n  custos dump latest /etc/hosts\n  custos dump 9b0d44a2 > shop.sql                     # a stream snapshot\n  custos dump --archive tar latest /srv/www > www.tar\n  custos dump --archive zip 3f2a9c1e /home/ann > ann.zip"
    )]
    Dump {
        /// Snapshot ID, prefix or `latest`
        snapshot: String,
        /// Path inside the snapshot (optional for a stream snapshot; a
        /// directory needs --archive)
        path: Option<String>,
        /// Write the directory at PATH (the whole snapshot without one) as
        /// this archive
        #[arg(long, value_enum)]
        archive: Option<snapshots::DumpArchive>,
    },
    /// Restore a snapshot
    #[command(
        after_long_help = "Examples:\n  custos restore latest --service web-1 --target /tmp/restore --verify\n  custos restore --at 2026-11-30T12:00:00Z --service web-1 --include '/srv/www/**' --target /tmp/www\n  custos restore latest --daemon /etc/custos/custos.toml --tenant acme --service web-1 --ticket SD-4711   # on the daemon's host"
    )]
    Restore(restore::RestoreArgs),
    /// What changed between two snapshots: added (+), removed (-), changed
    /// (M), metadata only (U)
    #[command(
        after_long_help = "Examples:\n  custos diff 3f2a9c1e latest\n  custos diff --json 3f2a9c1e 9b0d44a2 | jq '.stats'"
    )]
    Diff {
        /// The older snapshot (ID, prefix or `latest`)
        a: String,
        /// The newer snapshot
        b: String,
    },
    /// Files matching a glob across snapshots (a pattern without `/` matches
    /// names, with `/` whole paths; `**` crosses directories)
    #[command(
        after_long_help = "Examples:\n  custos find '*.conf'\n  custos find '/srv/www/**/index.html' --service web-1 --newest 2026-11-30T00:00:00Z"
    )]
    Find {
        /// The glob
        pattern: String,
        /// Only this snapshot (repeatable; ID, prefix or `latest`)
        #[arg(long = "snapshot", short = 's')]
        snapshots: Vec<String>,
        #[command(flatten)]
        filter: SnapshotFilter,
        /// Only snapshots made at or before this time (RFC 3339)
        #[arg(long)]
        newest: Option<String>,
        /// Only snapshots made at or after this time (RFC 3339)
        #[arg(long)]
        oldest: Option<String>,
    },
    /// Browse every snapshot read-only through FUSE until interrupted (by
    /// time under snapshots/, by service under services/, latest)
    #[command(
        after_long_help = "Examples:\n  mkdir -p /mnt/backup && custos mount /mnt/backup &\n  ls /mnt/backup/services/web-1/latest/srv/www\n  cp /mnt/backup/snapshots/2026-12-01T01:00:00Z/etc/hosts /tmp/\n  fusermount3 -u /mnt/backup        # or Ctrl-C on custos mount\n\nNeeds fuse3 (fusermount3) and /dev/fuse. The mount is read-only, nosuid and nodev, and only the user who mounted it can enter it."
    )]
    Mount {
        /// An empty directory to mount on
        dir: std::path::PathBuf,
        #[command(flatten)]
        filter: SnapshotFilter,
    },
    /// Change a snapshot's tags (the snapshot is written again; never one
    /// under legal hold)
    #[command(
        after_long_help = "Examples:\n  custos tag 3f2a9c1e --add ticket-4711\n  custos tag latest --service web-1 --remove pre-change --add post-change"
    )]
    Tag {
        /// Snapshot ID, prefix or `latest`
        snapshot: String,
        /// Add this tag (repeatable)
        #[arg(long)]
        add: Vec<String>,
        /// Remove this tag (repeatable)
        #[arg(long)]
        remove: Vec<String>,
        /// Replace every tag with these (repeatable)
        #[arg(long)]
        set: Vec<String>,
    },
    /// Verify the repository: structure, or also content
    #[command(
        after_long_help = "Examples:\n  custos check                              # structure: every snapshot's trees, every index entry\n  custos check --read-data                  # decrypt and verify every blob\n  custos check --read-data-subset 3/7       # one seventh of the packs (one each day of the week)"
    )]
    Check {
        /// Read and verify every blob
        #[arg(long)]
        read_data: bool,
        /// Read and verify a part: a percentage of packs at random (10%), a
        /// group of packs (n/t: 1/7 to 7/7 cover everything), or an amount
        /// (500M, 2G)
        #[arg(long, value_name = "P%|n/t|SIZE")]
        read_data_subset: Option<String>,
    },
    /// Sizes and ratios of the repository, or of some snapshots by mode
    #[command(
        after_long_help = "Examples:\n  custos stats                              # the whole repository: stored size, deduplication, compression\n  custos stats latest                       # what restoring it would write\n  custos stats --mode raw-data 3f2a9c1e     # the distinct data it references, stored size"
    )]
    Stats {
        /// Only these snapshots (IDs, prefixes, `latest`); with none and a
        /// --mode, every snapshot
        snapshots: Vec<String>,
        /// restore-size (what restoring writes), files-by-contents (each
        /// distinct file once), raw-data (distinct blobs, stored size)
        #[arg(long, value_name = "MODE")]
        mode: Option<String>,
    },
    /// Copy snapshots to another repository (the standby target)
    #[command(
        after_long_help = "Example:\n  CUSTOS_TO_PASSWORD_FILE=/etc/custos/standby.pass custos copy --to s3://standby/tenant-a --to-init --service web-1"
    )]
    Copy(copy::CopyArgs),
    /// Apply a retention policy: remove the snapshots no rule keeps
    #[command(
        after_long_help = "Examples:\n  custos forget --keep-daily 7 --keep-weekly 4 --dry-run\n  custos forget --service web-1 --keep-daily 7 --keep-monthly 12 --prune"
    )]
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
    /// Services, newest good snapshot, RPO, last jobs: from the running
    /// daemon (its local socket on its host, else its API with CUSTOS_TOKEN),
    /// or from its catalog when it is stopped
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
    /// Shell completions and manual pages
    Generate {
        #[command(subcommand)]
        action: generate::GenerateAction,
    },
    /// Remove stale locks (or all with --all)
    Unlock {
        /// Also remove locks that have not expired
        #[arg(long)]
        all: bool,
    },
}

/// Refuses an empty path given for a secret, naming where it came from: the
/// option when it was typed, else its environment variable.
fn nonempty_path(p: Option<&std::path::Path>, flag: &str, env: &str) -> Result<()> {
    if p.is_some_and(|p| p.as_os_str().is_empty()) {
        let typed = std::env::args_os()
            .any(|a| a == flag || a.to_string_lossy().starts_with(&format!("{flag}=")));
        return Err(Error::Usage(if typed {
            format!("{flag} was given an empty path")
        } else {
            format!("{env} is set but empty: unset it or name a file")
        }));
    }
    Ok(())
}

/// The global options that only matter to commands that open a
/// repository.
const REPOSITORY_OPTIONS: [&str; 8] = [
    "repo",
    "password_file",
    "password_command",
    "key_file",
    "cache_dir",
    "no_cache",
    "limit_upload",
    "limit_download",
];

/// Commands that open no repository of the command line's.
const NO_REPOSITORY: [&str; 9] = [
    "daemon",
    "config",
    "status",
    "erase",
    "certificate",
    "audit",
    "catalog",
    "generate",
    "demo",
];

/// Hides the repository's options in `cmd` and its subcommands. Done on
/// the built command with `mut_args`/`mut_subcommands`, which keep the
/// order clap's lookup tables were built with (`mut_arg` moves the argument
/// to the end, and a built command then finds the wrong one).
fn hide_repository_options(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| {
        if REPOSITORY_OPTIONS.contains(&a.get_id().as_str()) {
            a.hide(true)
        } else {
            a
        }
    })
    .mut_subcommands(hide_repository_options)
}

/// The command line as parsed and documented: the clap definitions, with
/// the repository's options left out of the help of commands that open
/// none (they are global, so clap would list them everywhere).
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    cmd.mut_subcommands(|s| {
        if NO_REPOSITORY.contains(&s.get_name()) {
            hide_repository_options(s)
        } else {
            s
        }
    })
}

pub(crate) fn read_secret(g: &Global, creating: bool) -> Result<Secret> {
    nonempty_path(
        g.password_file.as_deref(),
        "--password-file",
        "CUSTOS_PASSWORD_FILE",
    )?;
    nonempty_path(g.key_file.as_deref(), "--key-file", "CUSTOS_KEY_FILE")?;
    let source = KeySource::given(
        g.key_file.as_deref(),
        g.password_file.as_deref(),
        "CUSTOS_PASSWORD",
    );
    let Some(source) = source else {
        return match &g.password_command {
            Some(cmd) => password_from_command(cmd),
            None => prompt_passphrase(g, creating),
        };
    };
    if !creating {
        return source.load();
    }
    let (secret, created) = source.load_or_create()?;
    if let (true, KeySource::KeyFile(kf)) = (created, &source) {
        eprintln!("created key file {} (keep a copy somewhere safe: without it the repository cannot be read)", kf.display());
    }
    Ok(secret)
}

/// The passphrase a command prints (its first line), as restic's
/// `--password-command`: for a secret manager or a hardware token.
fn password_from_command(cmd: &str) -> Result<Secret> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::Usage(format!("--password-command: cannot run it: {e}")))?;
    let text = zeroize::Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "--password-command failed ({}): no passphrase",
            out.status
        )));
    }
    let first = std::str::from_utf8(&text)
        .map_err(|_| Error::Usage("--password-command printed no UTF-8 text".into()))?
        .lines()
        .next()
        .unwrap_or("");
    if first.is_empty() {
        return Err(Error::Usage(
            "--password-command printed an empty passphrase".into(),
        ));
    }
    Ok(Secret::Passphrase(zeroize::Zeroizing::new(
        first.to_string(),
    )))
}

/// Asks twice on the terminal for a new passphrase (`key passwd`).
pub(crate) fn prompt_new_passphrase() -> Result<Secret> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "no new passphrase: give --new-password-file, or run on a terminal to be asked".into(),
        ));
    }
    ask_twice("new passphrase: ")
}

fn ask_twice(prompt: &str) -> Result<Secret> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| Error::Usage(format!("cannot read the passphrase from the terminal: {e}")))
    };
    let first = ask(prompt)?;
    if first.is_empty() {
        return Err(Error::Usage("an empty passphrase is not accepted".into()));
    }
    let again = ask("the same passphrase again: ")?;
    if *again != *first {
        return Err(Error::Usage(
            "the two passphrases differ: nothing was changed".into(),
        ));
    }
    Ok(Secret::Passphrase(first))
}

/// Asks for the passphrase on the terminal (twice for a new repository);
/// without a terminal there is no passphrase ([`Error::NoKey`]).
fn prompt_passphrase(g: &Global, creating: bool) -> Result<Secret> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(Error::NoKey);
    }
    let repo = g.repo.as_deref().unwrap_or("the repository");
    if creating {
        return ask_twice(&format!("passphrase for the new repository {repo}: "));
    }
    let first = rpassword::prompt_password(format!("passphrase for {repo}: "))
        .map(zeroize::Zeroizing::new)
        .map_err(|e| Error::Usage(format!("cannot read the passphrase from the terminal: {e}")))?;
    if first.is_empty() {
        return Err(Error::Usage("an empty passphrase is not accepted".into()));
    }
    Ok(Secret::Passphrase(first))
}

pub(crate) fn repo_url(g: &Global) -> Result<String> {
    g.repo
        .clone()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| Error::Usage("no repository given: use --repo or CUSTOS_REPOSITORY".into()))
}

pub(crate) fn cache_root(g: &Global) -> Option<PathBuf> {
    if g.no_cache {
        None
    } else {
        g.cache_dir.clone().or_else(custos::default_cache_dir)
    }
}

/// The bandwidth limits of this process: one pair of buckets shared by
/// every repository it opens.
pub(crate) fn limits(g: &Global) -> custos::backend::Limits {
    static LIMITS: std::sync::OnceLock<custos::backend::Limits> = std::sync::OnceLock::new();
    LIMITS
        .get_or_init(|| custos::backend::Limits::kib_per_sec(g.limit_upload, g.limit_download))
        .clone()
}

/// The repository's backend, with this process's limits.
pub(crate) fn backend(g: &Global, url: &str, create: bool) -> Result<Backend> {
    Ok(Backend::open(url, create)?.with_limits(&limits(g)))
}

pub(crate) async fn open(g: &Global) -> Result<Repository> {
    let backend = backend(g, &repo_url(g)?, false)?;
    let secret = read_secret(g, false)?;
    Repository::open(backend, &secret, cache_root(g)).await
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(v)
        .map_err(|e| Error::Internal(format!("cannot encode JSON: {e}")))?;
    println!("{s}");
    Ok(())
}

/// What a command that changes one thing says: `value` as the JSON
/// document with `--json`, else `text` (nothing with `--quiet`).
pub(crate) fn report(g: &Global, value: serde_json::Value, text: &str) -> Result<()> {
    if g.json {
        print_json(&value)
    } else {
        if !g.quiet {
            println!("{text}");
        }
        Ok(())
    }
}

/// The one JSON document an error gives on stdout with `--json`:
/// `{"error": {"kind", "message", "detail"?}}`; the exit code is unchanged.
pub(crate) fn print_json_error(kind: &str, message: &str, detail: Option<&str>) {
    let mut e = serde_json::json!({ "kind": kind, "message": message });
    if let Some(d) = detail {
        e["detail"] = serde_json::Value::String(d.to_string());
    }
    println!("{}", serde_json::json!({ "error": e }));
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
        Command::Tag { .. } => true,
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
        Command::Snapshots(a) => snapshots::list(g, a).await,
        Command::Ls {
            snapshot,
            path,
            long,
            recursive,
        } => snapshots::ls(g, snapshot, path, long, recursive).await,
        Command::Dump {
            snapshot,
            path,
            archive,
        } => snapshots::dump(g, snapshot, path, archive).await,
        Command::Diff { a, b } => browse::diff(g, a, b).await,
        Command::Find {
            pattern,
            snapshots,
            filter,
            newest,
            oldest,
        } => browse::find(g, pattern, snapshots, filter, newest, oldest).await,
        Command::Tag {
            snapshot,
            add,
            remove,
            set,
        } => browse::tag(g, snapshot, add, remove, set).await,
        Command::Mount { dir, filter } => browse::mount(g, dir, filter).await,
        Command::Restore(a) if a.daemon.is_some() => restore::via_daemon(g, a).await,
        Command::Restore(a) => restore::run(g, a).await,
        Command::Check {
            read_data,
            read_data_subset,
        } => check::check(g, read_data, read_data_subset).await,
        Command::Stats { snapshots, mode } => repo::stats(g, snapshots, mode).await,
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
        Command::Demo { dir } => demo::run(&dir, g.json).map(|()| 0),
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
        Command::Catalog { action } => daemon::catalog(g, action).await,
        Command::Unlock { all } => repo::unlock(g, all).await,
        Command::Generate { action } => generate::run(action),
    }
}

#[cfg(test)]
mod help_tests {
    /// Every option and argument of every command says what it is for, and
    /// every command too.
    #[test]
    fn every_option_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if cmd.get_about().is_none() && !path.is_empty() {
                missing.push(format!("command `{path}`"));
            }
            for a in cmd.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if !a.is_hide_set() && !builtin && a.get_help().is_none() {
                    missing.push(format!("`{path}` option `{}`", a.get_id()));
                }
            }
            for s in cmd.get_subcommands() {
                walk(s, format!("{path} {}", s.get_name()).trim(), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::command(), "", &mut missing);
        assert!(missing.is_empty(), "undescribed: {missing:#?}");
    }

    /// The main commands' long help ends with examples.
    #[test]
    fn main_commands_have_examples() {
        let cmd = super::command();
        for name in [
            "init",
            "backup",
            "restore",
            "snapshots",
            "check",
            "forget",
            "copy",
            "diff",
            "find",
            "mount",
            "dump",
            "ls",
            "stats",
            "tag",
        ] {
            let sub = cmd
                .get_subcommands()
                .find(|s| s.get_name() == name)
                .unwrap_or_else(|| panic!("no command {name}"));
            let after = sub
                .get_after_long_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                after.starts_with("Example"),
                "`{name} --help` has no examples"
            );
        }
    }
}
