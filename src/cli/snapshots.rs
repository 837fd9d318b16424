//! Snapshots and browsing: `snapshots`, `ls`, `dump`, `pin`, `unpin`.

use std::io::Write;

use custos::commands::browse;
use custos::human_bytes;
use custos::repository::select_snapshot;
use custos::Result;

use super::operator_audit::audit_cli;
use super::{open, print_json, repo_url, Global, SnapshotFilter};

/// `custos snapshots`.
#[derive(clap::Args)]
pub(crate) struct SnapshotsArgs {
    #[command(flatten)]
    pub(crate) filter: SnapshotFilter,
    /// Only snapshots made on this host
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Only snapshots that backed up this path (repeatable: all of them)
    #[arg(long)]
    pub(crate) path: Vec<String>,
    /// Only the N newest of each group
    #[arg(long, value_name = "N")]
    pub(crate) latest: Option<usize>,
    /// Group by these fields (service, host, paths; empty: one list)
    #[arg(long, value_name = "service,host,paths", default_value = "")]
    pub(crate) group_by: String,
}

/// One snapshot as `custos snapshots --json` lists it: the manifest's
/// fields, and its legal hold if it has one.
#[derive(serde::Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    snapshot: browse::SnapshotListing<'a>,
    pin: Option<&'a custos::repository::PinInfo>,
}

/// `custos snapshots`: the snapshots that pass the filter, with their
/// legal holds, grouped when asked.
pub(crate) async fn list(g: &Global, a: SnapshotsArgs) -> Result<u8> {
    use custos::commands::forget::{GroupBy, GroupKey};
    let group_by: GroupBy = a.group_by.parse().map_err(custos::Error::Usage)?;
    let repo = open(g).await?;
    let (snaps, bad) = repo.snapshots().await?;
    for (path, e) in &bad {
        eprintln!("warning: {path}: {e}");
    }
    let pins = repo.pin_details().await?;
    let mut groups: std::collections::BTreeMap<
        GroupKey,
        Vec<&(custos::SnapshotId, custos::repofile::snapshot::Snapshot)>,
    > = std::collections::BTreeMap::new();
    for entry in snaps.iter().filter(|(_, s)| {
        a.filter.matches(s)
            && a.host.as_ref().is_none_or(|h| &s.hostname == h)
            && a.path.iter().all(|p| {
                s.paths
                    .iter()
                    .any(|q| q.trim_end_matches('/') == p.trim_end_matches('/'))
            })
    }) {
        groups
            .entry(GroupKey::of(&entry.1, group_by))
            .or_default()
            .push(entry);
    }
    if let Some(n) = a.latest {
        for list in groups.values_mut() {
            // Oldest first: keep the last n.
            let drop = list.len().saturating_sub(n);
            list.drain(..drop);
        }
    }
    if g.json {
        fn listed<'a>(
            list: &[&'a (custos::SnapshotId, custos::repofile::snapshot::Snapshot)],
            pins: &'a std::collections::HashMap<custos::SnapshotId, custos::repository::PinInfo>,
        ) -> Vec<Listed<'a>> {
            list.iter()
                .map(|(id, s)| Listed {
                    snapshot: browse::SnapshotListing::new(id, s),
                    pin: pins.get(id),
                })
                .collect()
        }
        if a.group_by.trim().is_empty() {
            let all: Vec<Listed<'_>> = groups.values().flat_map(|l| listed(l, &pins)).collect();
            print_json(&all)?;
        } else {
            let v: Vec<serde_json::Value> = groups
                .iter()
                .map(|(k, list)| serde_json::json!({"group": k, "snapshots": listed(list, &pins)}))
                .collect();
            print_json(&v)?;
        }
        return Ok(if bad.is_empty() { 0 } else { 1 });
    }
    let mut out = std::io::stdout().lock();
    let mut total = 0;
    for (k, list) in &groups {
        if !a.group_by.trim().is_empty() {
            let _ = writeln!(out, "group {k}:");
        }
        let _ = writeln!(
            out,
            "{:<8}  {:<20}  {:<16}  {:<16}  {:<20}  {:>10}  paths",
            "ID", "time", "host", "service", "tags", "size"
        );
        for (id, s) in list {
            let _ = writeln!(
                out,
                "{:<8}  {:<20}  {:<16}  {:<16}  {:<20}  {:>10}  {}",
                id.short(),
                s.timestamp().strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
                s.hostname,
                s.service.as_deref().unwrap_or("-"),
                if s.tags.is_empty() {
                    "-".to_string()
                } else {
                    s.tags.join(",")
                },
                human_bytes(s.summary.total_bytes),
                s.paths.join(" ")
            );
            if let Some(p) = pins.get(id) {
                let _ = writeln!(
                    out,
                    "          legal hold: {} (since {}, by {})",
                    p.reason,
                    p.created.get(..19).unwrap_or(&p.created).replace('T', " "),
                    p.by
                );
            }
            total += 1;
        }
        if !a.group_by.trim().is_empty() {
            let _ = writeln!(out);
        }
    }
    let held = groups
        .values()
        .flatten()
        .filter(|(id, _)| pins.contains_key(id))
        .count();
    let _ = writeln!(
        out,
        "{total} snapshots{}",
        if held > 0 {
            format!(", {held} under legal hold")
        } else {
            String::new()
        }
    );
    Ok(if bad.is_empty() { 0 } else { 1 })
}

/// `custos ls`: a snapshot's entries: every one without a path (as
/// restic), the directory's own with one, the whole subtree with
/// `--recursive`.
pub(crate) async fn ls(
    g: &Global,
    snapshot: String,
    path: Option<String>,
    long: bool,
    recursive: bool,
) -> Result<u8> {
    let repo = open(g).await?.load_index().await?;
    let (snaps, _) = repo.snapshots_naming(Some(&snapshot)).await?;
    let (_, snap) = select_snapshot(&snaps, &snapshot, |_| true)?;
    let recursive = recursive
        || path
            .as_deref()
            .is_none_or(|p| p.trim_matches('/').is_empty());
    let entries = browse::ls(&repo, snap, path.as_deref(), recursive).await?;
    if g.json {
        print_json(&entries)?;
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    for e in entries {
        let link = e
            .target
            .as_deref()
            .map(|t| format!(" -> {t}"))
            .unwrap_or_default();
        let slash = if e.kind == custos::repofile::tree::NodeKind::Dir {
            "/"
        } else {
            ""
        };
        let _ = if long {
            writeln!(
                out,
                "{} {:>6} {:>6} {:>12} {} {}{slash}{link}",
                e.mode_string(),
                e.uid,
                e.gid,
                e.size,
                e.mtime.replace('T', " ").trim_end_matches('Z'),
                e.path
            )
        } else {
            writeln!(out, "{}{slash}{link}", e.path)
        };
    }
    Ok(0)
}

/// `custos dump`: one file or a stream snapshot to stdout, or a directory
/// as an archive.
pub(crate) async fn dump(
    g: &Global,
    snapshot: String,
    path: Option<String>,
    archive: Option<DumpArchive>,
) -> Result<u8> {
    use std::io::IsTerminal;
    let repo = open(g).await?.load_index().await?;
    let (snaps, _) = repo.snapshots_naming(Some(&snapshot)).await?;
    let (_, snap) = select_snapshot(&snaps, &snapshot, |_| true)?;
    if let Some(format) = archive {
        if std::io::stdout().is_terminal() {
            return Err(custos::Error::Usage(
                "refusing to write an archive to a terminal: redirect it to a file (> out.tar) or a pipe".into(),
            ));
        }
        let format = match format {
            DumpArchive::Tar => browse::Archive::Tar,
            DumpArchive::Zip => browse::Archive::Zip,
        };
        let out: Box<dyn Write + Send> = Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        ));
        let (written, skipped) =
            browse::dump_archive(&repo, snap, path.as_deref(), format, out).await?;
        if skipped > 0 && !g.quiet {
            eprintln!(
                "{written} entries written; {skipped} devices, FIFOs or sockets left out (an archive does not hold them; restore does)"
            );
        }
        return Ok(0);
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    browse::dump(&repo, snap, path.as_deref(), &mut out).await?;
    Ok(0)
}

/// `dump --archive`'s formats.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum DumpArchive {
    /// POSIX tar
    Tar,
    /// ZIP (entries stored uncompressed)
    Zip,
}

/// `custos pin`: a legal hold.
pub(crate) async fn pin(g: &Global, snapshot: String, reason: String) -> Result<u8> {
    let repo = open(g).await?;
    let (snaps, _) = repo.snapshots_naming(Some(&snapshot)).await?;
    let (id, _) = select_snapshot(&snaps, &snapshot, |_| true)?;
    repo.pin(id, &reason).await?;
    audit_cli(
        "snapshot.pinned",
        serde_json::json!({"repository": repo_url(g)?, "snapshot": id.to_hex(), "reason": reason}),
    )?;
    super::report(
        g,
        serde_json::json!({"snapshot": id.to_hex(), "pinned": true, "reason": reason}),
        &format!("snapshot {} pinned ({reason})", id.short()),
    )?;
    Ok(0)
}

/// `custos unpin`: lift a legal hold.
pub(crate) async fn unpin(g: &Global, snapshot: String) -> Result<u8> {
    let repo = open(g).await?;
    let (snaps, _) = repo.snapshots_naming(Some(&snapshot)).await?;
    let (id, _) = select_snapshot(&snaps, &snapshot, |_| true)?;
    repo.unpin(id).await?;
    audit_cli(
        "snapshot.unpinned",
        serde_json::json!({"repository": repo_url(g)?, "snapshot": id.to_hex()}),
    )?;
    super::report(
        g,
        serde_json::json!({"snapshot": id.to_hex(), "pinned": false}),
        &format!("snapshot {} unpinned", id.short()),
    )?;
    Ok(0)
}
