//! Snapshots and browsing: `snapshots`, `ls`, `dump`, `pin`, `unpin`.

use std::io::Write;

use custos::commands::browse;
use custos::human_bytes;
use custos::repository::select_snapshot;
use custos::Result;

use super::operator_audit::audit_cli;
use super::{open, print_json, repo_url, Global, SnapshotFilter};

/// `custos snapshots`: the snapshots that pass the filter.
pub(crate) async fn list(g: &Global, filter: SnapshotFilter) -> Result<u8> {
    let repo = open(g).await?;
    let (snaps, bad) = repo.snapshots().await?;
    for (path, e) in &bad {
        eprintln!("warning: {path}: {e}");
    }
    let sel: Vec<_> = snaps.iter().filter(|(_, s)| filter.matches(s)).collect();
    if g.json {
        let v: Vec<_> = sel
            .iter()
            .map(|(id, s)| browse::SnapshotListing::new(id, s))
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

/// `custos ls`: a snapshot's entries.
pub(crate) async fn ls(g: &Global, snapshot: String, path: Option<String>) -> Result<u8> {
    let repo = open(g).await?.load_index().await?;
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

/// `custos dump`: one file or a stream snapshot to stdout.
pub(crate) async fn dump(g: &Global, snapshot: String, path: Option<String>) -> Result<u8> {
    let repo = open(g).await?.load_index().await?;
    let (snaps, _) = repo.snapshots_naming(Some(&snapshot)).await?;
    let (_, snap) = select_snapshot(&snaps, &snapshot, |_| true)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    browse::dump(&repo, snap, path.as_deref(), &mut out).await?;
    Ok(0)
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
    println!("snapshot {} pinned ({reason})", id.short());
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
    println!("snapshot {} unpinned", id.short());
    Ok(0)
}
