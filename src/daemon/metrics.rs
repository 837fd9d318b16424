//! `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! Per service (labels `tenant`, `service`, `class`):
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `custos_snapshot_age_seconds` | gauge | age of the newest complete snapshot (absent when there is none) |
//! | `custos_rpo_seconds` | gauge | the service's RPO |
//! | `custos_rpo_ok` | gauge | 1 when the newest complete snapshot is within the RPO |
//! | `custos_job_last_duration_seconds{kind}` | gauge | duration of the last finished job of each kind |
//! | `custos_job_last_success{kind}` | gauge | 1 when that job succeeded |
//! | `custos_jobs_total{kind,result}` | counter | jobs finished, by result (`succeeded`, `failed`) |
//! | `custos_bytes_read_total` | counter | bytes read from the source by backups |
//! | `custos_bytes_added_total` | counter | bytes added to the repository by backups |
//!
//! | `custos_drill_rto_seconds` | gauge | restore time achieved by the last DR drill |
//! | `custos_drill_rto_objective_seconds` | gauge | the policy's RTO |
//! | `custos_drill_rto_ok` | gauge | 1 when the last drill met the RTO |
//!
//! And `custos_jobs_active`: jobs queued or running;
//! `custos_notifications_sent_total` and `custos_notifications_failed_total`:
//! notifications delivered, and given up (refused, or failing after their
//! retries);
//! `custos_key_derivations_total`: passphrase derivations (Argon2id) the
//! daemon ran to open repositories, one per tenant and secret per run
//! (`repository::key_cache` keeps the keys).

use std::fmt::Write;

use super::records::{JobKind, JobState};
use super::state::State;
use crate::config::Role;
use crate::config::ServiceKey;
use crate::Result;

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn help(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
    }
}

/// Renders every metric.
///
/// # Errors
/// Catalog errors.
pub(crate) fn render(state: &State) -> Result<String> {
    let statuses = state.statuses(&Role::Auditor)?;
    let mut o = Out(String::new());
    let label = |s: &super::state::ServiceStatus| {
        format!(
            "tenant=\"{}\",service=\"{}\",class=\"{}\"",
            esc(&s.tenant),
            esc(&s.service),
            esc(&s.class)
        )
    };

    o.help(
        "custos_snapshot_age_seconds",
        "gauge",
        "Age of the newest complete snapshot.",
    );
    for s in &statuses {
        if let Some(a) = s.age_secs {
            o.sample("custos_snapshot_age_seconds", &label(s), a);
        }
    }
    o.help("custos_rpo_seconds", "gauge", "Recovery point objective.");
    for s in &statuses {
        o.sample("custos_rpo_seconds", &label(s), s.rpo_secs);
    }
    o.help(
        "custos_rpo_ok",
        "gauge",
        "1 when the newest complete snapshot is within the RPO.",
    );
    for s in &statuses {
        o.sample("custos_rpo_ok", &label(s), u8::from(s.rpo_ok));
    }

    o.help(
        "custos_job_last_duration_seconds",
        "gauge",
        "Duration of the last finished job of each kind.",
    );
    let mut success = Vec::new();
    for s in &statuses {
        let jobs = s
            .last_backup
            .iter()
            .map(|j| (JobKind::Backup, j))
            .chain(s.last_jobs.iter().map(|(k, j)| (*k, j)));
        for (kind, j) in jobs {
            if !j.state.finished() {
                continue;
            }
            let l = format!("{},kind=\"{}\"", label(s), kind.name());
            o.sample(
                "custos_job_last_duration_seconds",
                &l,
                format!("{:.3}", j.duration_secs),
            );
            success.push((l, u8::from(j.state != JobState::Failed)));
        }
    }
    o.help(
        "custos_job_last_success",
        "gauge",
        "1 when the last finished job of each kind succeeded.",
    );
    for (l, v) in success {
        o.sample("custos_job_last_success", &l, v);
    }

    let drills: Vec<_> = statuses
        .iter()
        .filter_map(|s| {
            s.last_jobs
                .iter()
                .find(|(k, _)| *k == JobKind::Drill)
                .and_then(|(_, j)| j.rto.map(|r| (label(s), r)))
        })
        .collect();
    o.help(
        "custos_drill_rto_seconds",
        "gauge",
        "Restore time achieved by the last DR drill.",
    );
    for (l, r) in &drills {
        o.sample(
            "custos_drill_rto_seconds",
            l,
            format!("{:.3}", r.achieved_secs),
        );
    }
    o.help(
        "custos_drill_rto_objective_seconds",
        "gauge",
        "The policy's RTO.",
    );
    for (l, r) in &drills {
        o.sample("custos_drill_rto_objective_seconds", l, r.objective_secs);
    }
    o.help(
        "custos_drill_rto_ok",
        "gauge",
        "1 when the last DR drill met the RTO.",
    );
    for (l, r) in &drills {
        o.sample("custos_drill_rto_ok", l, u8::from(r.met()));
    }

    let mut totals = Vec::new();
    let mut read = Vec::new();
    let mut added = Vec::new();
    for s in &statuses {
        for (name, n) in state
            .catalog
            .counters(&ServiceKey::new(&s.tenant, &s.service))?
        {
            match name.as_str() {
                "bytes_read" => read.push((label(s), n)),
                "bytes_added" => added.push((label(s), n)),
                other => {
                    if let Some((kind, result)) = other.rsplit_once('_') {
                        totals.push((
                            format!(
                                "{},kind=\"{}\",result=\"{}\"",
                                label(s),
                                esc(kind),
                                esc(result)
                            ),
                            n,
                        ));
                    }
                }
            }
        }
    }
    o.help(
        "custos_jobs_total",
        "counter",
        "Jobs finished, by kind and result.",
    );
    for (l, n) in totals {
        o.sample("custos_jobs_total", &l, n);
    }
    o.help(
        "custos_bytes_read_total",
        "counter",
        "Bytes read from the source by backups.",
    );
    for (l, n) in read {
        o.sample("custos_bytes_read_total", &l, n);
    }
    o.help(
        "custos_bytes_added_total",
        "counter",
        "Bytes added to the repository by backups (after deduplication and compression).",
    );
    for (l, n) in added {
        o.sample("custos_bytes_added_total", &l, n);
    }
    o.help(
        "custos_erasure_overdue",
        "gauge",
        "1 when a tenant's erasure deadline (notice + 30 days) passed before it was erased.",
    );
    let now = state.clock.now();
    let erasures = state.catalog.erasures()?;
    for r in &erasures {
        o.sample(
            "custos_erasure_overdue",
            &format!("tenant=\"{}\"", esc(&r.tenant)),
            u8::from(r.overdue(now)),
        );
    }
    o.help(
        "custos_erasure_state",
        "gauge",
        "1 for the state each tenant under erasure is in.",
    );
    for r in &erasures {
        let st = match r.state {
            crate::erasure::ErasureState::NoticeGiven => "notice_given",
            crate::erasure::ErasureState::Erasing => "erasing",
            crate::erasure::ErasureState::Erased => "erased",
        };
        o.sample(
            "custos_erasure_state",
            &format!("tenant=\"{}\",state=\"{st}\"", esc(&r.tenant)),
            1,
        );
    }
    o.help(
        "custos_key_derivations_total",
        "counter",
        "Passphrase key derivations (Argon2id) run to open repositories.",
    );
    let _ = writeln!(
        o.0,
        "custos_key_derivations_total {}",
        crate::crypto::keyslot::KeySlot::derivations()
    );
    if let Some(n) = &state.notifier {
        use std::sync::atomic::Ordering;
        o.help(
            "custos_notifications_sent_total",
            "counter",
            "Notifications delivered (webhooks answered 2xx, e-mails accepted).",
        );
        let sent = n.counts.sent.load(Ordering::Relaxed);
        let _ = writeln!(o.0, "custos_notifications_sent_total {sent}");
        o.help(
            "custos_notifications_failed_total",
            "counter",
            "Notifications given up: refused by their receiver, or still failing after their retries.",
        );
        let failed = n.counts.failed.load(Ordering::Relaxed);
        let _ = writeln!(o.0, "custos_notifications_failed_total {failed}");
    }
    o.help("custos_jobs_active", "gauge", "Jobs queued or running.");
    let _ = writeln!(o.0, "custos_jobs_active {}", state.runner.active());
    let chain = state.chain();
    o.help(
        "custos_audit_chain_ok",
        "gauge",
        "1 when the audit log's chain verifies and agrees with its mirror and signed checkpoints.",
    );
    let _ = writeln!(o.0, "custos_audit_chain_ok {}", u8::from(chain.ok));
    o.help("custos_audit_records", "gauge", "Records in the audit log.");
    let _ = writeln!(o.0, "custos_audit_records {}", chain.records);
    o.help(
        "custos_rollback_alarms",
        "gauge",
        "Changes in a tenant's repositories custos did not make (deleted snapshots, older index objects put back).",
    );
    let mut per_tenant: std::collections::BTreeMap<String, u64> =
        statuses.iter().map(|s| (s.tenant.clone(), 0)).collect();
    for a in state.catalog.alarms(|_| true)? {
        *per_tenant.entry(a.tenant).or_default() += 1;
    }
    for (tenant, n) in per_tenant {
        o.sample(
            "custos_rollback_alarms",
            &format!("tenant=\"{}\"", esc(&tenant)),
            n,
        );
    }
    Ok(o.0)
}
