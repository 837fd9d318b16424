//! Looking across snapshots: `diff`, `find`, `mount`, and changing a
//! snapshot's `tag`s.

use custos::commands::{diff, find, tag};
use custos::human_bytes;
use custos::repository::select_snapshot;
use custos::{Error, Result};

use super::operator_audit::audit_cli;
use super::{open, parse_time, print_json, repo_url, Global, SnapshotFilter};

/// `custos diff A B`.
pub(crate) async fn diff(g: &Global, a: String, b: String) -> Result<u8> {
    let repo = open(g).await?.load_index().await?;
    let (snaps, _) = repo.snapshots().await?;
    let (ida, sa) = select_snapshot(&snaps, &a, |_| true)?;
    let (idb, sb) = select_snapshot(&snaps, &b, |_| true)?;
    let d = diff::diff(&repo, sa.tree, sb.tree).await?;
    if g.json {
        print_json(&serde_json::json!({
            "from": ida.to_hex(),
            "to": idb.to_hex(),
            "changes": d.changes,
            "stats": d.stats,
        }))?;
        return Ok(0);
    }
    println!("comparing snapshot {} to {}:", ida.short(), idb.short());
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for c in &d.changes {
        let dir = if c.kind == custos::repofile::tree::NodeKind::Dir {
            "/"
        } else {
            ""
        };
        let _ = writeln!(out, "{}    {}{dir}", c.change.mark(), c.path);
    }
    let s = &d.stats;
    let _ = writeln!(
        out,
        "\n{} added, {} removed, {} changed, {} metadata only; {} added, {} removed",
        s.added,
        s.removed,
        s.changed,
        s.metadata,
        human_bytes(s.bytes_added),
        human_bytes(s.bytes_removed)
    );
    Ok(0)
}

/// `custos find PATTERN`.
pub(crate) async fn find(
    g: &Global,
    pattern: String,
    snapshots: Vec<String>,
    filter: SnapshotFilter,
    newest: Option<String>,
    oldest: Option<String>,
) -> Result<u8> {
    let pattern = find::Pattern::new(&pattern)?;
    let newest = newest.map(|t| parse_time(&t, "--newest")).transpose()?;
    let oldest = oldest.map(|t| parse_time(&t, "--oldest")).transpose()?;
    let repo = open(g).await?.load_index().await?;
    let (snaps, _) = repo.snapshots().await?;
    let in_range = |s: &custos::repofile::snapshot::Snapshot| {
        let t = s.timestamp();
        filter.matches(s) && newest.is_none_or(|n| t <= n) && oldest.is_none_or(|o| t >= o)
    };
    let chosen: Vec<_> = if snapshots.is_empty() {
        snaps.iter().filter(|(_, s)| in_range(s)).collect()
    } else {
        snapshots
            .iter()
            .map(|spec| select_snapshot(&snaps, spec, |s| filter.matches(s)))
            .collect::<Result<_>>()?
    };
    let list = chosen
        .iter()
        .map(|(id, s)| (*id, s.time.clone(), s.service.clone(), s.tree))
        .collect();
    let found = find::find(&repo, pattern, list).await?;
    if g.json {
        print_json(&found)?;
        return Ok(0);
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut total = 0;
    for s in found.iter().filter(|s| !s.matches.is_empty()) {
        let _ = writeln!(
            out,
            "snapshot {} of {}{}:",
            s.snapshot.short(),
            s.time,
            s.service
                .as_deref()
                .map(|v| format!(" ({v})"))
                .unwrap_or_default()
        );
        for f in &s.matches {
            let _ = writeln!(
                out,
                "  {:>10}  {}  {}",
                human_bytes(f.size),
                f.mtime,
                f.path
            );
            total += 1;
        }
    }
    let _ = writeln!(
        out,
        "{total} matches in {} of {} snapshots",
        found.iter().filter(|s| !s.matches.is_empty()).count(),
        found.len()
    );
    Ok(0)
}

/// `custos tag SNAPSHOT --add/--remove/--set`.
pub(crate) async fn tag(
    g: &Global,
    snapshot: String,
    add: Vec<String>,
    remove: Vec<String>,
    set: Vec<String>,
) -> Result<u8> {
    if !set.is_empty() && (!add.is_empty() || !remove.is_empty()) {
        return Err(Error::Usage(
            "--set replaces every tag: it does not go with --add or --remove".into(),
        ));
    }
    let repo = open(g).await?;
    let (snaps, _) = repo.snapshots_naming(Some(&snapshot)).await?;
    let (id, _) = select_snapshot(&snaps, &snapshot, |_| true)?;
    let change = tag::TagChange {
        add,
        remove,
        set: (!set.is_empty()).then_some(set),
    };
    let r = tag::retag(&repo, id, &change).await?;
    if let Some(new) = r.new {
        audit_cli(
            "snapshot.tagged",
            serde_json::json!({"repository": repo_url(g)?, "snapshot": id.to_hex(), "replaced_by": new.to_hex(), "tags": r.tags}),
        )?;
    }
    if g.json {
        print_json(&r)?;
    } else {
        match r.new {
            Some(new) => println!(
                "snapshot {} now {} with tags [{}]",
                id.short(),
                new.short(),
                r.tags.join(", ")
            ),
            None => println!(
                "snapshot {} unchanged: tags [{}]",
                id.short(),
                r.tags.join(", ")
            ),
        }
    }
    Ok(0)
}

/// `custos mount DIR`: until Ctrl-C, SIGTERM, or an unmount.
pub(crate) async fn mount(
    g: &Global,
    dir: std::path::PathBuf,
    filter: SnapshotFilter,
) -> Result<u8> {
    let repo = open(g).await?.load_index().await?;
    let (snaps, bad) = repo.snapshots().await?;
    for (path, e) in &bad {
        eprintln!("warning: {path} is left out: {e}");
    }
    let snaps: Vec<_> = snaps
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect();
    if !g.quiet {
        eprintln!(
            "{} snapshots mounted read-only at {}; Ctrl-C (or fusermount3 -u) to unmount",
            snaps.len(),
            dir.display()
        );
    }
    let stop = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    };
    custos::commands::mount::mount(repo, snaps, &dir, stop).await?;
    if !g.quiet {
        eprintln!("{} unmounted", dir.display());
    }
    Ok(0)
}
