//! Retention: `forget` (with `--prune`) and `prune`.

use clap::Args;
use custos::commands::{forget, prune};
use custos::human_bytes;
use custos::{Error, Result};

use super::operator_audit::audit_cli;
use super::{open, print_json, repo_url, Global, SnapshotFilter};

#[derive(Args)]
pub(crate) struct ForgetArgs {
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N")]
    pub(crate) keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours
    #[arg(long, value_name = "N")]
    pub(crate) keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest days
    #[arg(long, value_name = "N")]
    pub(crate) keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N newest ISO weeks
    #[arg(long, value_name = "N")]
    pub(crate) keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest months
    #[arg(long, value_name = "N")]
    pub(crate) keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest years
    #[arg(long, value_name = "N")]
    pub(crate) keep_yearly: Option<u32>,
    /// Keep every snapshot newer than this (e.g. 90d, 1y2w, 12h)
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within: Option<String>,
    /// Keep every snapshot with this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    pub(crate) keep_tag: Vec<String>,
    /// Time zone of the calendar buckets (IANA name; default: the system's)
    #[arg(long, value_name = "TZ")]
    pub(crate) time_zone: Option<String>,
    #[command(flatten)]
    pub(crate) filter: SnapshotFilter,
    /// Only snapshots from this host
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Group snapshots by these fields before applying the policy
    #[arg(
        long,
        default_value = "service,host,paths",
        value_name = "service,host,paths"
    )]
    pub(crate) group_by: String,
    /// Say what would be kept and removed; remove nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Run prune afterwards to give the space back
    #[arg(long)]
    pub(crate) prune: bool,
    /// Evaluate keep-within against this time instead of now (RFC 3339; for
    /// imports and tests)
    #[arg(long, hide = true)]
    pub(crate) now: Option<String>,
    /// With --prune: repack packs whose live fraction is below this percentage
    #[arg(long, default_value_t = 80.0)]
    pub(crate) repack_below: f64,
    /// With --prune: minimum age of condemned packs before deletion
    #[arg(long, default_value = "0s")]
    pub(crate) grace: String,
}

#[derive(Args)]
pub(crate) struct PruneArgs {
    /// Report what would be freed; change nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Repack packs whose live fraction is below this percentage
    #[arg(long, default_value_t = 80.0)]
    pub(crate) repack_below: f64,
    /// Condemned packs are deleted once every process that was in the
    /// repository when they were condemned is gone (in the same run when
    /// nothing else holds a lock) and at least this much time has passed
    #[arg(long, default_value = "0s")]
    pub(crate) grace: String,
}

/// `custos forget`: apply a retention policy, then prune if asked.
pub(crate) async fn forget(g: &Global, a: ForgetArgs) -> Result<u8> {
    let opts = forget_options(&a)?;
    let repo = open(g).await?;
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
            serde_json::json!({"repository": repo_url(g)?, "tenant": a.filter.tenant, "service": a.filter.service, "removed": report.removed, "kept": report.kept, "freed": pruned.as_ref().map(|p| p.bytes_freed)}),
        )?;
    }
    print_forget(g, &report, pruned.as_ref())?;
    Ok(0)
}

/// `custos prune`: give back the space no snapshot uses.
pub(crate) async fn prune(g: &Global, a: PruneArgs) -> Result<u8> {
    let repo = open(g).await?.load_index().await?;
    let r = run_prune(&repo, &a).await?;
    if !r.dry_run {
        audit_cli(
            "prune",
            serde_json::json!({"repository": repo_url(g)?, "packs_deleted": r.packs_deleted, "freed": r.bytes_freed}),
        )?;
    }
    print_prune(g, &r)?;
    Ok(0)
}

async fn run_prune(repo: &custos::IndexedRepository, a: &PruneArgs) -> Result<prune::PruneReport> {
    if !(0.0..=100.0).contains(&a.repack_below) {
        return Err(Error::Usage(format!(
            "--repack-below {} is not a percentage",
            a.repack_below
        )));
    }
    let grace =
        custos::parse_duration(&a.grace).map_err(|e| Error::Usage(format!("--grace: {e}")))?;
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

fn forget_options(a: &ForgetArgs) -> Result<forget::ForgetOptions> {
    use custos::HumanDuration;
    use custos::RetentionPolicy;
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
        service: a.filter.service.clone(),
        tenant: a.filter.tenant.clone(),
        host: a.host.clone(),
        tags: a.filter.tag.clone(),
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
        return print_json(&forget::ForgetPruneReport {
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
                d.id.short(),
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
