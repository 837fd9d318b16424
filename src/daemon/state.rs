//! What the running daemon knows: its services, its API tokens, and the status
//! of each service computed from the catalog (newest good snapshot against
//! the RPO, last job, next run).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::records::{JobKind, JobRecord, JobState};
use super::runner::Runner;
use super::scheduler::Clock;
use crate::catalog::Catalog;
use crate::config::Role;
use crate::config::ServiceKey;
use crate::policy::schedule::Schedule;
use crate::Result;

/// One service as the daemon runs it (resolved from the config).
#[derive(Clone)]
pub struct ServiceInfo {
    /// Tenant ID.
    pub tenant: String,
    /// Service name (unique within the tenant).
    pub name: String,
    /// Service class (POLICIES.md).
    pub class: String,
    /// Primary target name.
    pub target: String,
    /// Standby target name and mode (`cold`, `hot`).
    pub standby: Option<(String, String)>,
    /// Newest good snapshot older than this breaks the RPO.
    pub rpo: Duration,
    /// How far back partners may ask to restore (`None`: every kept snapshot).
    pub restore_window: Option<Duration>,
    /// The backup schedule, for next-run times.
    pub schedule: Option<Arc<dyn Schedule>>,
    /// The backup schedule as written (cron and time zone), for people.
    pub schedule_text: String,
}

impl std::fmt::Debug for ServiceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceInfo")
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("class", &self.class)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// An API token: only its BLAKE3 hash is kept.
#[derive(Debug, Clone)]
pub struct Token {
    /// Name, recorded as the actor of what the token does.
    pub name: String,
    /// What the token may do: operator, auditor, or partner of one tenant.
    pub role: Role,
    /// BLAKE3 of the secret.
    pub hash: blake3::Hash,
}

impl Token {
    /// A token for `secret`.
    pub fn new(name: &str, role: Role, secret: &str) -> Token {
        Token {
            name: name.to_string(),
            role,
            hash: blake3::hash(secret.as_bytes()),
        }
    }
}

/// The last job of one kind.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LastJob {
    /// Job ID.
    pub id: super::records::JobId,
    /// Queued, running, or how it ended.
    pub state: JobState,
    /// When it ended (or started, if running).
    pub at: Option<String>,
    /// Duration in seconds.
    pub duration_secs: f64,
    /// Error, if it failed.
    pub error: Option<String>,
    /// One line for people.
    pub summary: Option<String>,
    /// DR drills: the RTO achieved and the objective.
    pub rto: Option<super::records::RtoMeasure>,
}

impl From<&JobRecord> for LastJob {
    fn from(j: &JobRecord) -> Self {
        LastJob {
            id: j.id,
            state: j.state,
            at: j.finished.clone().or_else(|| j.started.clone()),
            duration_secs: j.duration_secs,
            error: j.error.clone(),
            summary: j.summary.clone(),
            rto: j.rto,
        }
    }
}

/// A service's status, as `/v1/services`, `custos status` and `/metrics` show it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceStatus {
    /// The tenant's ID, as in the config.
    pub tenant: String,
    /// The service's name within its tenant.
    pub service: String,
    /// The service class from the catalogue (`vmaas-standard`, `dbaas`, …): the defaults of its policy.
    pub class: String,
    /// Primary target.
    pub target: String,
    /// Standby target, if any.
    pub standby: Option<String>,
    /// Backup schedule as written.
    pub schedule: String,
    /// Time of the newest complete snapshot.
    pub last_good_snapshot: Option<String>,
    /// Its ID.
    pub last_good_snapshot_id: Option<crate::SnapshotId>,
    /// Its age in seconds.
    pub age_secs: Option<u64>,
    /// The RPO in seconds.
    pub rpo_secs: u64,
    /// True when the newest complete snapshot is younger than the RPO.
    pub rpo_ok: bool,
    /// In time, late or breached ([`RpoState`]).
    #[serde(default)]
    pub rpo_state: RpoState,
    /// Next scheduled backup.
    pub next_backup: Option<String>,
    /// Last backup job.
    pub last_backup: Option<LastJob>,
    /// Last job of each other kind that ran.
    pub last_jobs: Vec<(JobKind, LastJob)>,
}

/// Where a service stands against its RPO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RpoState {
    /// Its newest complete snapshot is within the RPO and its last backup
    /// succeeded.
    InTime,
    /// Still within the RPO, but the last backup did not succeed (failed,
    /// or left files out), or the service has no complete snapshot yet and
    /// has not existed for an RPO: the next backup must succeed.
    #[default]
    Late,
    /// The newest complete snapshot is older than the RPO, or there is none
    /// and the service has had jobs for longer than its RPO.
    Breached,
}

impl RpoState {
    /// The state in words.
    pub fn word(self) -> &'static str {
        match self {
            RpoState::InTime => "in time",
            RpoState::Late => "late",
            RpoState::Breached => "breached",
        }
    }

    /// Where a service stands: `age` of its newest complete snapshot (if
    /// any), its `rpo`, whether its last backup succeeded, and the age of
    /// its oldest job record (`None`: it has none).
    pub(crate) fn of(
        age: Option<u64>,
        rpo: u64,
        last_backup_ok: Option<bool>,
        oldest_job_age: Option<u64>,
    ) -> RpoState {
        match age {
            Some(a) if a > rpo => RpoState::Breached,
            Some(_) if last_backup_ok == Some(false) => RpoState::Late,
            Some(_) => RpoState::InTime,
            None if oldest_job_age.is_some_and(|a| a > rpo) => RpoState::Breached,
            None => RpoState::Late,
        }
    }
}

/// Job records read for a service's status: the newest this many.
const STATUS_JOBS: usize = 200;

/// Shared daemon state (cheap to clone).
#[derive(Clone)]
pub(crate) struct State {
    /// The catalog.
    pub catalog: Catalog,
    /// The job runner.
    pub runner: Runner,
    /// Time.
    pub clock: Arc<dyn Clock>,
    services: Arc<RwLock<Arc<Vec<ServiceInfo>>>>,
    tokens: Arc<RwLock<Arc<Vec<Token>>>>,
    /// Restores, when the daemon takes restore requests.
    pub restores: Option<(super::restores::RestoreDesk, super::jobs::Services)>,
    /// The audit log, when the daemon keeps one.
    pub audit: Option<crate::audit::AuditLog>,
    /// The audit trail's health (chain and mirror).
    pub audit_chain: Arc<std::sync::Mutex<crate::audit::ChainStatus>>,
    /// The config in force (replaced on reload): erasures run from it.
    pub config: Arc<RwLock<Option<Arc<crate::config::Config>>>>,
    /// Held while an erasure runs, by the daemon's own round and by one
    /// asked for through the API: one erasure at a time.
    pub erasing: Arc<tokio::sync::Mutex<()>>,
    /// Sends events to the `[[notify]]` channels.
    pub notifier: Option<super::notify::Notifier>,
}

impl State {
    /// State for the given services and tokens.
    pub(crate) fn new(
        catalog: Catalog,
        runner: Runner,
        clock: Arc<dyn Clock>,
        services: Vec<ServiceInfo>,
        tokens: Vec<Token>,
    ) -> State {
        State {
            catalog,
            runner,
            clock,
            services: Arc::new(RwLock::new(Arc::new(services))),
            tokens: Arc::new(RwLock::new(Arc::new(tokens))),
            restores: None,
            audit: None,
            audit_chain: Arc::new(std::sync::Mutex::new(crate::audit::ChainStatus {
                ok: true,
                ..Default::default()
            })),
            config: Arc::new(RwLock::new(None)),
            erasing: Arc::new(tokio::sync::Mutex::new(())),
            notifier: None,
        }
    }

    /// Sends events through `notifier`.
    pub(crate) fn with_notifier(mut self, notifier: super::notify::Notifier) -> State {
        self.notifier = Some(notifier);
        self
    }

    /// The config in force, if the daemon runs from one.
    pub(crate) fn current_config(&self) -> Option<Arc<crate::config::Config>> {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records administrative acts in `audit`.
    pub(crate) fn with_audit(mut self, audit: crate::audit::AuditLog) -> State {
        self.audit = Some(audit);
        self
    }

    /// The audit trail's health.
    pub(crate) fn chain(&self) -> crate::audit::ChainStatus {
        let mut c = self
            .audit_chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // The count as it is now, not as of the last check: every record
        // since was appended through the verified log.
        if let (Some(a), true) = (&self.audit, c.problems.is_empty()) {
            c.records = a.records();
        }
        c
    }

    /// Records what a check of the audit trail found; problems stay.
    pub(crate) fn set_chain(&self, records: u64, mirrored: bool, problems: Vec<String>) {
        let mut c = self
            .audit_chain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.records = records;
        c.mirrored |= mirrored;
        c.checked = Some(crate::util::stamp(Timestamp::now()));
        for p in problems {
            if !c.problems.contains(&p) {
                tracing::error!(problem = %p, "the audit trail does not verify");
                c.problems.push(p);
            }
        }
        c.ok = c.problems.is_empty();
    }

    /// Writes an audit record before an act: the act must not go ahead
    /// when it cannot be written (fail closed). The append (a file lock and
    /// an fsync) leaves the runtime's worker free ([`crate::util::blocking`]).
    ///
    /// # Errors
    /// [`crate::Error::Io`] when the record cannot be written.
    pub(crate) fn audit_required(
        &self,
        actor: &str,
        action: &str,
        tenant: Option<&str>,
        details: serde_json::Value,
    ) -> Result<()> {
        if let Some(a) = &self.audit {
            a.append(actor, action, tenant, details).map_err(|e| {
                crate::Error::io(
                    format!("the audit log cannot be written ({e}): the request is refused"),
                    std::io::Error::other("audit log"),
                )
            })?;
        }
        Ok(())
    }

    /// Writes an audit record (logged, not fatal, when it cannot be written).
    pub(crate) fn audit(
        &self,
        actor: &str,
        action: &str,
        tenant: Option<&str>,
        details: serde_json::Value,
    ) {
        if let Some(a) = &self.audit {
            a.record(actor, action, tenant, details);
        }
    }

    /// Takes restore requests through `desk`, for the services in `jobs`.
    pub(crate) fn with_restores(
        mut self,
        desk: super::restores::RestoreDesk,
        jobs: super::jobs::Services,
    ) -> State {
        self.restores = Some((desk, jobs));
        self
    }

    /// Replaces services and tokens (config reload).
    pub(crate) fn replace(&self, services: Vec<ServiceInfo>, tokens: Vec<Token>) {
        *self
            .services
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(services);
        *self
            .tokens
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(tokens);
    }

    /// The services.
    pub(crate) fn services(&self) -> Arc<Vec<ServiceInfo>> {
        self.services
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// One service.
    pub(crate) fn service(&self, tenant: &str, name: &str) -> Option<ServiceInfo> {
        self.services()
            .iter()
            .find(|s| s.tenant == tenant && s.name == name)
            .cloned()
    }

    /// The token whose secret is `secret`.
    pub(crate) fn token(&self, secret: &str) -> Option<Token> {
        self.token_by_hash(&blake3::hash(secret.as_bytes()))
    }

    /// The token whose secret hashes to `hash` (a console session's).
    pub(crate) fn token_by_hash(&self, hash: &blake3::Hash) -> Option<Token> {
        // blake3::Hash compares in constant time.
        self.tokens().iter().find(|t| t.hash == *hash).cloned()
    }

    /// Every token (names and roles: who can reach what).
    pub(crate) fn tokens(&self) -> Arc<Vec<Token>> {
        self.tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The status of one service.
    ///
    /// # Errors
    /// Catalog errors.
    pub(crate) fn status(&self, s: &ServiceInfo) -> Result<ServiceStatus> {
        let now = self.clock.now();
        let good = self
            .catalog
            .newest_good_snapshot(&ServiceKey::new(&s.tenant, &s.name))?;
        let age = good.as_ref().and_then(|g| {
            let t: Timestamp = g.time.parse().ok()?;
            u64::try_from(now.duration_since(t).as_secs()).ok()
        });
        let rpo_secs = s.rpo.as_secs();
        let jobs = self
            .catalog
            .jobs(STATUS_JOBS, |j| j.tenant == s.tenant && j.service == s.name)?;
        let last = |k: JobKind| jobs.iter().find(|j| j.kind == k).map(LastJob::from);
        let last_backup_ok = jobs
            .iter()
            .find(|j| j.kind == JobKind::Backup && j.state.finished())
            .map(|j| j.state == JobState::Succeeded);
        // Read newest first: with fewer records than the limit the last one
        // read is the oldest; with as many, older ones exist.
        let oldest_job_age = if jobs.len() < STATUS_JOBS {
            jobs.last().map(|j| {
                j.queued.parse::<Timestamp>().map_or(0, |t| {
                    u64::try_from(now.duration_since(t).as_secs()).unwrap_or(0)
                })
            })
        } else {
            Some(u64::MAX)
        };
        Ok(ServiceStatus {
            tenant: s.tenant.clone(),
            service: s.name.clone(),
            class: s.class.clone(),
            target: s.target.clone(),
            standby: s.standby.as_ref().map(|(t, m)| format!("{t} ({m})")),
            schedule: s.schedule_text.clone(),
            last_good_snapshot: good.as_ref().map(|g| g.time.clone()),
            last_good_snapshot_id: good.as_ref().map(|g| g.id),
            age_secs: age,
            rpo_secs,
            rpo_ok: age.is_some_and(|a| a <= rpo_secs),
            rpo_state: RpoState::of(age, rpo_secs, last_backup_ok, oldest_job_age),
            next_backup: s
                .schedule
                .as_ref()
                .and_then(|sch| sch.next_after(now))
                .map(|t| t.to_string()),
            last_backup: last(JobKind::Backup),
            last_jobs: JobKind::ALL
                .iter()
                .filter(|k| **k != JobKind::Backup)
                .filter_map(|k| last(*k).map(|j| (*k, j)))
                .collect(),
        })
    }

    /// The status of every service `role` may see.
    ///
    /// # Errors
    /// Catalog errors.
    pub(crate) fn statuses(&self, role: &Role) -> Result<Vec<ServiceStatus>> {
        self.services()
            .iter()
            .filter(|s| role.sees(&s.tenant))
            .map(|s| self.status(s))
            .collect()
    }
}

#[cfg(test)]
mod rpo_tests {
    use super::RpoState;

    const DAY: u64 = 86_400;

    #[test]
    fn a_service_is_in_time_late_or_breached() {
        let of = RpoState::of;
        assert_eq!(
            of(Some(DAY / 2), DAY, Some(true), Some(3 * DAY)),
            RpoState::InTime
        );
        assert_eq!(
            of(Some(DAY / 2), DAY, Some(false), Some(3 * DAY)),
            RpoState::Late
        );
        assert_eq!(
            of(Some(DAY + 1), DAY, Some(true), Some(3 * DAY)),
            RpoState::Breached
        );
        // No complete snapshot: late while the service is new, breached
        // once it has had jobs for longer than its RPO.
        assert_eq!(of(None, DAY, None, None), RpoState::Late);
        assert_eq!(of(None, DAY, Some(false), Some(DAY / 2)), RpoState::Late);
        assert_eq!(
            of(None, DAY, Some(false), Some(DAY + 1)),
            RpoState::Breached
        );
        assert_eq!(of(None, DAY, None, Some(u64::MAX)), RpoState::Breached);
    }
}
