//! `custos check` and `custos repair`.

use custos::commands::{check, repair};
use custos::{Error, Result};

use super::{open, print_json, Global};

/// `custos check`: exit 1 when it found errors.
pub(crate) async fn check(
    g: &Global,
    read_data: bool,
    read_data_subset: Option<String>,
) -> Result<u8> {
    let subset = read_data_subset
        .map(|s| {
            check::Subset::parse(&s).map_err(|e| Error::Usage(format!("--read-data-subset {e}")))
        })
        .transpose()?;
    let repo = open(g).await?.load_index().await?;
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

/// `custos repair`: exit 1 while a damaged snapshot stays.
pub(crate) async fn repair(g: &Global, drop_snapshots: bool, dry_run: bool) -> Result<u8> {
    let repo = open(g).await?;
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
