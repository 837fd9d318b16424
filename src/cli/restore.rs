//! `custos restore`: a snapshot into a directory here, or through a
//! running daemon for a ticket (`--daemon`).

use std::path::PathBuf;

use clap::Args;
use custos::commands::restore;
use custos::human_bytes;
use custos::repository::select_snapshot_at;
use custos::Progress;
use custos::{Error, Result};

use super::{open, parse_time, print_json, Global};

#[derive(Args)]
pub(crate) struct RestoreArgs {
    /// Snapshot ID, unique prefix, or `latest` (default with --at)
    pub(crate) snapshot: Option<String>,
    /// Directory to restore into
    #[arg(long, required_unless_present_any = ["daemon", "into"])]
    pub(crate) target: Option<PathBuf>,
    /// Load a database snapshot into a new database instead of writing its
    /// dump: postgres://[USER@]HOST[:PORT]/NEWDB (or ?host=/socket/dir),
    /// mysql://[USER@]HOST[:PORT]/NEWDB (or ?socket=/path); refused when
    /// NEWDB exists
    #[arg(long, value_name = "URL", conflicts_with_all = ["target", "daemon"])]
    pub(crate) into: Option<String>,
    /// A disk image snapshot (`<name>.raw`) is written in this format
    /// instead (qcow2, vmdk, ...: converted with qemu-img, the raw file then
    /// removed)
    #[arg(long, value_name = "FORMAT", requires = "target")]
    pub(crate) image_format: Option<String>,
    /// With --into: the private credentials file (a PostgreSQL passfile, a
    /// MariaDB option file)
    #[arg(long, value_name = "FILE", requires = "into")]
    pub(crate) db_credentials: Option<PathBuf>,
    /// Ask a running daemon to restore for a ticket instead of restoring
    /// here: its API URL (e.g. http://127.0.0.1:8420, with CUSTOS_TOKEN), or
    /// on its host its config file or local socket (no token); needs
    /// --tenant, --service and --ticket
    #[arg(long, value_name = "URL|CONFIG|SOCKET", requires_all = ["tenant", "service", "ticket"])]
    pub(crate) daemon: Option<String>,
    /// Tenant of the service (with --daemon)
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Service-desk ticket reference (with --daemon)
    #[arg(long)]
    pub(crate) ticket: Option<String>,
    /// API token (with --daemon)
    #[arg(long, env = "CUSTOS_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// The newest snapshot at or before this time (RFC 3339)
    #[arg(long)]
    pub(crate) at: Option<String>,
    /// Only snapshots of this service
    #[arg(long)]
    pub(crate) service: Option<String>,
    /// Only snapshots with this tag (repeatable: all must match), e.g.
    /// db:shop for one database of a database service
    #[arg(long)]
    pub(crate) tag: Vec<String>,
    /// Only paths matching (repeatable)
    #[arg(long)]
    pub(crate) include: Vec<String>,
    /// Not paths matching (repeatable)
    #[arg(long)]
    pub(crate) exclude: Vec<String>,
    /// The service's restore window (e.g. 90d): a point in time or snapshot
    /// older than this is refused
    #[arg(long, value_name = "DURATION")]
    pub(crate) restore_window: Option<String>,
    /// Restore into a non-empty directory, replacing the files the snapshot has
    #[arg(long)]
    pub(crate) overwrite: bool,
    /// Read every restored file back and check it
    #[arg(long)]
    pub(crate) verify: bool,
    /// Also restore setuid and setgid bits of files, file capabilities
    /// (security.capability) and device nodes; without it they are left out
    /// and listed
    #[arg(long)]
    pub(crate) privileged: bool,
}

/// `custos restore`: exit 1 when something could not be restored.
pub(crate) async fn run(g: &Global, a: RestoreArgs) -> Result<u8> {
    if a.into.is_some() {
        return into_database(g, a).await;
    }
    let target = a
        .target
        .clone()
        .ok_or_else(|| Error::Usage("--target is required".into()))?;
    let repo = open(g).await?.load_index().await?;
    let (at, (id, snap)) = chosen(&repo, &a).await?;
    let snap = &snap;
    let window = a
        .restore_window
        .as_deref()
        .map(|w| {
            w.parse::<custos::HumanDuration>()
                .map_err(|e| Error::Usage(format!("--restore-window {w:?}: {e}")))
        })
        .transpose()?;
    let opts = restore::RestoreOptions {
        target: target.clone(),
        includes: a.include,
        excludes: a.exclude,
        verify: a.verify,
        overwrite: a.overwrite,
        privileged: a.privileged,
        concurrency: 4,
        progress: Progress::new("restore", g.quiet || g.json),
        window,
        at,
    };
    let r = restore::restore(&repo, snap, &opts).await?;
    if let Some(format) = &a.image_format {
        convert_image(snap, &target, format, r.errors.is_empty())?;
    }
    if g.json {
        print_json(&restore::RestoreReport {
            snapshot: id,
            target: &target,
            result: &r,
        })?;
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

/// The snapshot `a` asks for (an ID, `latest`, or the newest at `--at`,
/// among those of `--service` with every `--tag`), and the `--at` time.
async fn chosen(
    repo: &custos::IndexedRepository,
    a: &RestoreArgs,
) -> Result<(
    Option<jiff::Timestamp>,
    (custos::SnapshotId, custos::repofile::snapshot::Snapshot),
)> {
    let (snaps, _) = repo.snapshots_naming(a.snapshot.as_deref()).await?;
    let wanted = |s: &custos::repofile::snapshot::Snapshot| {
        a.service
            .as_ref()
            .is_none_or(|v| s.service.as_ref() == Some(v))
            && a.tag.iter().all(|t| s.tags.contains(t))
    };
    let at = a.at.as_deref().map(|t| parse_time(t, "--at")).transpose()?;
    let (id, snap) = select_snapshot_at(&snaps, a.snapshot.as_deref(), at, wanted)?;
    Ok((at, (*id, snap.clone())))
}

/// `restore --image-format`: the restored raw disk converted, in place,
/// into `format` (`vm1.raw` → `vm1.qcow2`), the raw file then removed.
fn convert_image(
    snap: &custos::repofile::snapshot::Snapshot,
    target: &std::path::Path,
    format: &str,
    restored: bool,
) -> Result<()> {
    let name = match (snap.stream, snap.paths.as_slice()) {
        (true, [one]) if one.ends_with(".raw") => one.trim_start_matches('/').to_string(),
        _ => return Err(Error::Usage(
            "--image-format: the snapshot is not a disk image (a stream snapshot of a `.raw` file)"
                .into(),
        )),
    };
    if !restored {
        return Err(Error::Problems(format!(
            "{name} was not restored whole: not converted to {format}"
        )));
    }
    let raw = target.join(&name);
    let out = raw.with_extension(format);
    if out.exists() {
        return Err(Error::Usage(format!(
            "{} exists: not replaced",
            out.display()
        )));
    }
    custos::image::convert(&raw, format, &out)?;
    std::fs::remove_file(&raw).map_err(|e| Error::io_path("cannot remove", &raw, e))?;
    eprintln!("converted {name} to {}", out.display());
    Ok(())
}

/// `custos restore --into URL`: a database snapshot's dump loaded into a
/// new database (created here; dropped again if the load fails, so nothing
/// is left half-loaded). The dump streams from the repository into
/// `pg_restore` or `mariadb`.
async fn into_database(g: &Global, a: RestoreArgs) -> Result<u8> {
    use custos::database::parse_url;
    let url = a.into.clone().unwrap_or_default();
    let (mut conn, database) = parse_url(&url)?;
    conn.credentials = a.db_credentials.clone();
    conn.check_credentials()?;
    let repo = open(g).await?.load_index().await?;
    let (at, (id, snap)) = chosen(&repo, &a).await?;
    let snap = &snap;
    if let Some(w) = a.restore_window.as_deref() {
        let w = w
            .parse::<custos::HumanDuration>()
            .map_err(|e| Error::Usage(format!("--restore-window {w:?}: {e}")))?;
        custos::commands::restore::check_window(Some(w), at, snap.timestamp())?;
    }
    let name = match (snap.stream, snap.paths.as_slice()) {
        (true, [one]) => one.trim_start_matches('/').to_string(),
        _ => {
            return Err(Error::Usage(format!(
                "snapshot {} is not a database dump (a stream snapshot): restore it with --target",
                id.short()
            )))
        }
    };
    let custom = name.ends_with(".dump");
    if custom && conn.kind != custos::database::DbKind::Postgres {
        return Err(Error::Usage(format!(
            "snapshot {} holds {name}, a PostgreSQL custom-format dump: load it with --into postgres://...",
            id.short()
        )));
    }
    let (snap, handle) = (snap.clone(), tokio::runtime::Handle::current());
    let db = database.clone();
    let bytes = tokio::task::spawn_blocking(move || -> Result<u64> {
        if conn.exists(&db)? {
            return Err(Error::Refused(format!(
                "database {db} already exists: custos loads a dump only into a new database (choose another name, or drop it first)"
            )));
        }
        conn.create(&db)?;
        let mut bytes = 0u64;
        let loaded = conn.load(&db, custom, &mut |input| {
            let mut w = custos::CountingWriter { inner: input, n: 0 };
            let r = handle.block_on(custos::commands::browse::dump(&repo, &snap, None, &mut w));
            bytes = w.n;
            r.map(|_| ())
        });
        if let Err(e) = loaded {
            // Created here: gone again, so that nothing half-loaded stays.
            if let Err(d) = conn.drop_database(&db) {
                tracing::warn!(error = %d, "cannot drop the half-loaded database {db}");
            }
            return Err(e);
        }
        Ok(bytes)
    })
    .await
    .map_err(|e| Error::Internal(format!("the load stopped: {e}")))??;
    if g.json {
        print_json(&serde_json::json!({
            "snapshot": id.to_hex(),
            "into": url,
            "database": database,
            "bytes": bytes,
        }))?;
    } else if !g.quiet {
        eprintln!(
            "snapshot {} ({name}, {}) loaded into the new database {database}",
            id.short(),
            human_bytes(bytes)
        );
    }
    Ok(0)
}

/// `custos restore --daemon`: a ticketed restore on the daemon's host,
/// followed until it ends.
pub(crate) async fn via_daemon(g: &Global, a: RestoreArgs) -> Result<u8> {
    let (Some(base), Some(tenant), Some(service), Some(ticket)) =
        (&a.daemon, &a.tenant, &a.service, &a.ticket)
    else {
        return Err(Error::Usage(
            "--daemon needs --tenant, --service and --ticket".into(),
        ));
    };
    let is_url = base.starts_with("http://") || base.starts_with("https://");
    let local = if is_url {
        None
    } else {
        // A socket, or a config whose state directory holds one.
        let path = std::path::Path::new(base);
        let is_config = path.extension().is_some_and(|e| e == "toml");
        let socket_dir = if is_config {
            custos::config::Config::load(path)?.state_dir
        } else {
            path.parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default()
        };
        let socket = custos::daemon::local::socket_path(&socket_dir);
        if !is_config && socket != path {
            return Err(Error::Usage(format!(
                "--daemon {base}: neither an http(s) URL, nor a config file (.toml), nor a daemon's {} socket",
                custos::daemon::local::SOCKET
            )));
        }
        Some(
            custos::daemon::local::LocalClient::connect(&socket_dir)
                .await
                .ok_or_else(|| {
                    Error::DaemonUnreachable(format!(
                        "no daemon answers on {} (is it running, and are you its user or root?)",
                        socket.display()
                    ))
                })?,
        )
    };
    let endpoint = match &local {
        Some(l) => custos::daemon::client::Endpoint::Local(l),
        None => custos::daemon::client::Endpoint::Http {
            base,
            token: a.token.as_deref().ok_or_else(|| {
                Error::Usage(
                    "--daemon with a URL needs an API token: --token or CUSTOS_TOKEN".into(),
                )
            })?,
        },
    };
    let request = custos::daemon::restores::RestoreRequest {
        ticket: ticket.clone(),
        snapshot: a.snapshot.clone(),
        at: a.at.clone(),
        include: a.include.clone(),
        paths: Vec::new(),
        exclude: a.exclude.clone(),
        verify: true,
    };
    let quiet = g.quiet || g.json;
    let rec = custos::daemon::client::restore(endpoint, tenant, service, &request, |r| {
        if !quiet {
            eprintln!(
                "restore {} ({}): {}, {}/{} files, {}/{}",
                r.id,
                r.ticket,
                r.state.word(),
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
            "restore {} for ticket {}: snapshot {} of {} restored to {} on the daemon's host ({})",
            rec.id,
            rec.ticket,
            rec.snapshot.short(),
            rec.snapshot_time,
            rec.target.display(),
            rec.state.word()
        );
        for e in &rec.errors {
            eprintln!("error: {e}");
        }
    }
    Ok(if rec.errors.is_empty() { 0 } else { 1 })
}
