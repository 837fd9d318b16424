//! `custos status` and `custos catalog rebuild`: the operator's view from the
//! command line.
//!
//! Status asks the running daemon's API when the config has one (with the
//! token in `CUSTOS_TOKEN`), and reads the catalog directly otherwise (or when
//! the daemon is not running). Rebuild fills the catalog from the
//! repositories, for a new host or a lost state directory.

use std::sync::Arc;
use std::time::Duration;

use super::records::JobKind;
use super::runner::{Limits, Runner};
use super::scheduler::SystemClock;
use super::state::{ServiceStatus, State};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::config::Role;
use crate::config::ServiceKey;
use crate::erasure::ErasureRecord;
use crate::{Error, Result};

/// What `custos status` shows about the daemon's services.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Overview {
    /// Every service's status.
    pub services: Vec<ServiceStatus>,
    /// Erasures under way or done.
    pub erasures: Vec<ErasureRecord>,
    /// Rollback alarms not yet accepted.
    pub alarms: Vec<super::records::Alarm>,
}

async fn from_api(cfg: &Config, token: &str) -> Result<Overview> {
    Ok(Overview {
        services: get_json(cfg, token, "/v1/services").await?,
        erasures: get_json(cfg, token, "/v1/erasures").await?,
        alarms: get_json(cfg, token, "/v1/alarms").await?,
    })
}

async fn get_json<T: for<'de> serde::Deserialize<'de>>(
    cfg: &Config,
    token: &str,
    path: &str,
) -> Result<T> {
    call_json(cfg, token, path, None).await
}

/// GET `path` (or POST `body` to it) on the daemon's API.
async fn call_json<T: for<'de> serde::Deserialize<'de>>(
    cfg: &Config,
    token: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<T> {
    let Some(addr) = cfg.listen else {
        return Err(Error::Usage(
            "the config has no daemon.listen address".into(),
        ));
    };
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}{path}");
    let client = super::client::http_client(
        cfg.tls.as_ref().map(|(cert, _)| cert.as_path()),
        Duration::from_secs(10),
    )?;
    let req = match body {
        Some(b) => client
            .post(&url)
            .header("content-type", "application/json")
            .body(b.to_string()),
        None => client.get(&url),
    };
    let resp = req
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| Error::DaemonUnreachable(format!("its API at {url}: {e}")))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| Error::Problems(format!("{url}: {e}")))?;
    if !status.is_success() {
        return Err(Error::Usage(format!("{url}: {status}: {body}")));
    }
    serde_json::from_str(&body).map_err(|e| Error::Problems(format!("{url}: bad answer: {e}")))
}

/// Statuses read from the catalog (the daemon must not be running: sled
/// allows one process, and one open at a time in it: the catalog is opened
/// once for everything).
async fn from_catalog(cfg: &Config) -> Result<Overview> {
    let catalog = Catalog::open(&cfg.state_dir)?;
    let alarms = catalog.alarms(|_| true)?;
    let (_stop, rx) = tokio::sync::watch::channel(false);
    let exec: super::runner::Executor =
        Arc::new(|_| Box::pin(async { Err(Error::Refused("read-only".into())) }));
    let runner = Runner::new(
        catalog.clone(),
        Arc::new(SystemClock),
        exec,
        Limits {
            global: 1,
            per_target: Default::default(),
        },
        rx,
    );
    let setup = super::Setup::services_only(cfg)?;
    let erasures = catalog.erasures()?;
    let state = State::new(
        catalog,
        runner,
        Arc::new(SystemClock),
        setup.services.into_iter().map(|s| s.info).collect(),
        Vec::new(),
    );
    Ok(Overview {
        services: state.statuses(&Role::Auditor)?,
        erasures,
        alarms,
    })
}

/// Every service's status, the erasures and the rollback alarms: from the
/// API when a token is given, else from the catalog.
///
/// # Errors
/// The API's or the catalog's errors.
pub async fn overview(cfg: &Config, token: Option<&str>) -> Result<Overview> {
    match token {
        Some(t) if cfg.listen.is_some() => from_api(cfg, t).await,
        _ => from_catalog(cfg).await.map_err(|e| match e {
            Error::Io { context, .. } if context.contains("another daemon") => Error::Locked(format!(
                "the daemon is running and holds the catalog: set CUSTOS_TOKEN to ask its API ({context})"
            )),
            e => e,
        }),
    }
}

/// What `custos status` reports: the services, erasures and alarms, and
/// the state of the audit chain.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReport {
    /// Services, erasures and alarms.
    #[serde(flatten)]
    pub overview: Overview,
    /// The audit chain.
    pub audit: crate::audit::ChainStatus,
}

impl StatusReport {
    /// Whether anything needs an operator at `now`: a breached RPO, an
    /// overdue erasure, a broken audit chain, an alarm.
    pub fn needs_an_operator(&self, now: jiff::Timestamp) -> bool {
        !self.overview.services.iter().all(|s| s.rpo_ok)
            || self.overview.erasures.iter().any(|r| r.overdue(now))
            || !self.audit.ok
            || !self.overview.alarms.is_empty()
    }
}

/// The status report, from the daemon's API with a token, or from its
/// catalog when it is stopped.
///
/// # Errors
/// As [`overview`] and [`chain`].
pub async fn report(cfg: &Config, token: Option<&str>) -> Result<StatusReport> {
    Ok(StatusReport {
        overview: overview(cfg, token).await?,
        audit: chain(cfg, token).await?,
    })
}

/// The audit trail's health: from the API when a token is given (the
/// daemon's view), else checked here (the local chain and, with
/// `audit_mirror`, the mirror and its signed checkpoints).
///
/// # Errors
/// Reading the log or the mirror.
pub async fn chain(cfg: &Config, token: Option<&str>) -> Result<crate::audit::ChainStatus> {
    if let (Some(t), Some(_)) = (token, cfg.listen) {
        return get_json(cfg, t, "/v1/audit/chain").await;
    }
    let path = cfg.state_dir.join("audit.log");
    let mut st = crate::audit::ChainStatus {
        checked: Some(jiff::Timestamp::now().to_string()),
        ..Default::default()
    };
    match crate::audit::verify(&path) {
        Ok((n, _)) => st.records = n,
        Err(crate::audit::VerifyError::Missing) => {}
        Err(crate::audit::VerifyError::Io(e)) => return Err(e),
        Err(crate::audit::VerifyError::Broken(b)) => st.problems.push(b.to_string()),
    }
    if let (Some(url), true) = (&cfg.audit_mirror, st.problems.is_empty()) {
        let trusted = cfg
            .certificate_key
            .as_deref()
            .and_then(crate::audit::checkpoint_key)
            .map(|k| k.verifying_key());
        let b = crate::backend::Backend::open(url, true)?;
        let m = crate::audit::check_mirror(&path, &b, trusted.as_ref()).await?;
        st.mirrored = true;
        st.problems.extend(m.problems);
    }
    st.ok = st.problems.is_empty();
    Ok(st)
}

/// Accepts `tenant`'s repositories as they now are: removes its alarms
/// through the API with an operator's token (the daemon audits it), else in
/// the catalog (the daemon not running), after recording it in the daemon's
/// audit log (refused when that cannot be written). Returns the alarms
/// removed.
///
/// # Errors
/// The API's, the catalog's or the audit log's errors.
pub async fn accept_alarms(
    cfg: &Config,
    token: Option<&str>,
    tenant: &str,
) -> Result<Vec<super::records::Alarm>> {
    match token {
        Some(t) if cfg.listen.is_some() => {
            call_json(
                cfg,
                t,
                "/v1/alarms/accept",
                Some(serde_json::json!({ "tenant": tenant })),
            )
            .await
        }
        _ => {
            let catalog = Catalog::open(&cfg.state_dir)?;
            let pending = catalog.alarms(|a| a.tenant == tenant)?;
            if !pending.is_empty() {
                let log = crate::audit::AuditLog::open(&cfg.state_dir.join("audit.log"))?;
                log.append(
                    &format!(
                        "operator:{}@{}",
                        crate::util::username(),
                        crate::util::hostname()
                    ),
                    "alarms.accepted",
                    Some(tenant),
                    serde_json::json!({
                        "alarms": pending.iter().map(|a| &a.text).collect::<Vec<_>>(),
                    }),
                )?;
            }
            catalog.accept_alarms(tenant)
        }
    }
}

/// The alarm lines under the status table.
pub fn alarm_lines(alarms: &[super::records::Alarm]) -> String {
    alarms
        .iter()
        .map(|a| {
            format!(
                "ALARM {} {} ({}): {}\n",
                a.time, a.tenant, a.repository, a.text
            )
        })
        .collect()
}

/// One line about the audit trail under the status table.
pub fn chain_line(c: &crate::audit::ChainStatus) -> String {
    if c.ok {
        format!(
            "audit log: {} records, chain intact{}\n",
            c.records,
            if c.mirrored {
                ", matches its mirror"
            } else {
                ""
            }
        )
    } else {
        format!("audit log: DOES NOT VERIFY: {}\n", c.problems.join("; "))
    }
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 3600 => format!("{}min", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The status table.
pub fn table(statuses: &[ServiceStatus]) -> String {
    let mut out = format!(
        "{:<28} {:<15} {:>7} {:>7} {:<4} {:<10} {:<26} {}\n",
        "SERVICE", "CLASS", "AGE", "RPO", "OK", "LAST", "NEXT BACKUP", "LAST DRILL"
    );
    for s in statuses {
        let drill = s
            .last_jobs
            .iter()
            .find(|(k, _)| *k == JobKind::Drill)
            .and_then(|(_, j)| j.rto)
            .map(|r| {
                format!(
                    "{:.0}s of {:.0}s {}",
                    r.achieved_secs,
                    r.objective_secs,
                    if r.met() { "met" } else { "MISSED" }
                )
            })
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<28} {:<15} {:>7} {:>7} {:<4} {:<10} {:<26} {}\n",
            format!("{}/{}", s.tenant, s.service),
            s.class,
            s.age_secs.map_or_else(|| "never".into(), age),
            age(s.rpo_secs),
            if s.rpo_ok { "yes" } else { "NO" },
            s.last_backup
                .as_ref()
                .map_or_else(|| "-".into(), |j| format!("{:?}", j.state).to_lowercase()),
            s.next_backup.clone().unwrap_or_else(|| "-".into()),
            drill
        ));
    }
    out
}

/// The erasure lines under the status table (overdue ones flagged).
pub fn erasure_lines(erasures: &[ErasureRecord]) -> String {
    let now = jiff::Timestamp::now();
    erasures
        .iter()
        .map(|r| {
            format!(
                "erasure {}: {:?}, notice {}, due {}, deadline {}{}\n",
                r.tenant,
                r.state,
                r.notice_given,
                r.due,
                r.deadline,
                if r.overdue(now) { "  OVERDUE" } else { "" }
            )
        })
        .collect()
}

/// Rebuilds the catalog's snapshot cache and last-run times from the
/// repositories. The daemon must be stopped. Returns (services, snapshots).
///
/// # Errors
/// The catalog's errors; a repository that cannot be read is reported and
/// skipped (returned in the list of problems).
pub async fn rebuild(cfg: &Config) -> Result<(usize, usize, Vec<String>)> {
    let catalog = Catalog::open(&cfg.state_dir)?;
    let setup = super::Setup::services_only(cfg)?;
    let (mut services, mut snapshots, mut problems) = (0, 0, Vec::new());
    for s in &setup.services {
        super::jobs::refresh_snapshots(&s.jobs, &catalog).await;
        let key = ServiceKey::new(&s.jobs.tenant, &s.jobs.service);
        let snaps = catalog.snapshots(&key)?;
        if let Some(newest) = snaps.last().and_then(|n| n.time.parse().ok()) {
            catalog.set_last_run(&key, JobKind::Backup, newest)?;
        }
        if snaps.is_empty() {
            problems.push(format!(
                "{}/{}: no snapshot found in {}",
                s.jobs.tenant, s.jobs.service, s.jobs.repo.url
            ));
        }
        services += 1;
        snapshots += snaps.len();
    }
    catalog.flush()?;
    Ok((services, snapshots, problems))
}
