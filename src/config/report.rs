//! What `custos config check` prints: every service's resolved policy and
//! its next run times.

use jiff::Timestamp;
use serde::Serialize;

use super::{Config, SourceSpec, StandbyMode};
use crate::duration::HumanDuration;

impl Config {
    /// Every service's resolved policy and next `runs` backup times after
    /// `now`, for `custos config check`.
    pub fn report(&self, now: Timestamp, runs: usize) -> Vec<ServiceReport> {
        self.services
            .iter()
            .map(|s| ServiceReport {
                tenant: s.tenant.clone(),
                service: s.name.clone(),
                class: s.class.clone(),
                zone: s.zone.clone(),
                target: s.target.clone(),
                repository: self
                    .tenant(&s.tenant)
                    .and_then(|t| self.repo(&s.target, t))
                    .map(|r| r.url)
                    .unwrap_or_default(),
                standby: s.standby.as_ref().map(|(t, m)| {
                    format!(
                        "{t} ({})",
                        if *m == StandbyMode::Hot {
                            "hot"
                        } else {
                            "cold"
                        }
                    )
                }),
                schedule: s.schedule.to_string(),
                next_runs: s
                    .schedule
                    .upcoming(now, runs)
                    .iter()
                    .map(|t| s.schedule.local(*t))
                    .collect(),
                retention: s.retention.to_string(),
                retention_schedule: s.retention_schedule.to_string(),
                check: format!("{}% of packs, {}", s.check.1, s.check.0),
                drill: s.drill.as_ref().map(|(d, _)| d.to_string()),
                restore_window: s.restore_window.map(|w| w.to_string()),
                rpo: HumanDuration::from_secs(s.rpo.as_secs()).to_string(),
                rto: s
                    .rto
                    .map(|r| HumanDuration::from_secs(r.as_secs()).to_string()),
                long_term: s.long_term,
                compression: s.compression,
                source: match &s.source {
                    SourceSpec::Paths { paths, exclude } => {
                        let listed = paths
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(" ");
                        if exclude.one_file_system {
                            format!("{listed} (one file system)")
                        } else {
                            listed
                        }
                    }
                    SourceSpec::Command { command, name } => {
                        format!("`{}` → {name}", command.argv.join(" "))
                    }
                    SourceSpec::Image(i) => format!(
                        "disk image {} ({}) → {}",
                        i.path.display(),
                        i.format.as_deref().unwrap_or("format detected"),
                        i.stream_name()
                    ),
                    SourceSpec::Database(d) => {
                        let at = d.conn.host.as_deref().unwrap_or("the default socket");
                        if d.instance {
                            format!("{} instance at {at}, one snapshot", d.conn.kind.name())
                        } else {
                            format!(
                                "{} databases {} at {at}, one snapshot each",
                                d.conn.kind.name(),
                                d.databases.join(", ")
                            )
                        }
                    }
                },
            })
            .collect()
    }
}

/// One service as `config check` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceReport {
    /// The tenant's ID, as in the config.
    pub tenant: String,
    /// The service's name within its tenant.
    pub service: String,
    /// The service class from the catalogue (`vmaas-standard`, `dbaas`, …): the defaults of its policy.
    pub class: String,
    /// Workload zone.
    pub zone: String,
    /// The target its repository is on.
    pub target: String,
    /// Repository URL.
    pub repository: String,
    /// The standby target and its mode, when the service has one.
    pub standby: Option<String>,
    /// Backup schedule.
    pub schedule: String,
    /// Next backup runs, local time.
    pub next_runs: Vec<String>,
    /// Retention rules.
    pub retention: String,
    /// When retention runs.
    pub retention_schedule: String,
    /// Sampled check.
    pub check: String,
    /// DR drill schedule.
    pub drill: Option<String>,
    /// How far back a restore may reach (`None`: every kept snapshot).
    pub restore_window: Option<String>,
    /// Recovery point objective: a newest good snapshot older than this is a breach.
    pub rpo: String,
    /// Recovery time objective that DR drills are measured against.
    pub rto: Option<String>,
    /// Long-term option.
    pub long_term: bool,
    /// zstd level.
    pub compression: i32,
    /// What is backed up.
    pub source: String,
}
