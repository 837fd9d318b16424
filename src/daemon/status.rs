//! `custos status` and `custos catalog rebuild`: the operator's view from the
//! command line.
//!
//! Status asks the running daemon: on its host through its local socket
//! (`super::local`, no token), elsewhere through its API with the token in
//! `CUSTOS_TOKEN`; when the daemon is not running it reads the catalog
//! directly. Rebuild fills the catalog from the repositories, for a new host
//! or a lost state directory (through the running daemon, or directly).

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

/// How the command line reaches a running daemon.
#[derive(Debug, Clone)]
pub enum Via {
    /// Its local socket, on its host.
    Local(super::local::LocalClient),
    /// Its API, with a token.
    Token(String),
}

impl Via {
    /// The running daemon of `cfg`: its local socket when one answers, else
    /// its API when a token is given and the config has an address; `None`
    /// when the daemon is to be treated as stopped.
    pub async fn find(cfg: &Config, token: Option<&str>) -> Option<Via> {
        if let Some(l) = super::local::LocalClient::connect(&cfg.state_dir).await {
            return Some(Via::Local(l));
        }
        match token {
            Some(t) if cfg.listen.is_some() => Some(Via::Token(t.to_string())),
            _ => None,
        }
    }
}

async fn from_api(cfg: &Config, via: &Via) -> Result<Overview> {
    Ok(Overview {
        services: get_json(cfg, via, "/v1/services").await?,
        erasures: get_json(cfg, via, "/v1/erasures").await?,
        alarms: get_json(cfg, via, "/v1/alarms").await?,
    })
}

async fn get_json<T: for<'de> serde::Deserialize<'de>>(
    cfg: &Config,
    via: &Via,
    path: &str,
) -> Result<T> {
    call_json(cfg, via, path, None).await
}

/// GET `path` (or POST `body` to it) on the running daemon.
///
/// # Errors
/// [`Error::DaemonUnreachable`] when it does not answer; its refusals as
/// errors of the matching kind.
pub async fn call_json<T: for<'de> serde::Deserialize<'de>>(
    cfg: &Config,
    via: &Via,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<T> {
    let token = match via {
        Via::Local(l) => return l.call(path, body).await,
        Via::Token(t) => t,
    };
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
        .bytes()
        .await
        .map_err(|e| Error::DaemonUnreachable(format!("{url}: {e}")))?;
    super::local::decode(status.as_u16(), &body)
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
/// running daemon `via` its socket or API, else from the catalog.
///
/// # Errors
/// The API's or the catalog's errors.
pub async fn overview(cfg: &Config, via: Option<&Via>) -> Result<Overview> {
    match via {
        Some(v) => from_api(cfg, v).await,
        None => from_catalog(cfg).await.map_err(|e| match e {
            Error::Io { context, .. } if context.contains("another daemon") => Error::Locked(format!(
                "the daemon is running and holds the catalog, and its local socket does not answer: run this as the daemon's user (or root), or set CUSTOS_TOKEN to ask its API ({context})"
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
    let via = Via::find(cfg, token).await;
    Ok(StatusReport {
        overview: overview(cfg, via.as_ref()).await?,
        audit: chain(cfg, via.as_ref()).await?,
    })
}

/// The audit trail's health: from the running daemon `via` its socket or
/// API (the daemon's view), else checked here (the local chain and, with
/// `audit_mirror`, the mirror and its signed checkpoints).
///
/// # Errors
/// Reading the log or the mirror.
pub async fn chain(cfg: &Config, via: Option<&Via>) -> Result<crate::audit::ChainStatus> {
    if let Some(v) = via {
        return get_json(cfg, v, "/v1/audit/chain").await;
    }
    let path = cfg.state_dir.join("audit.log");
    let mut st = crate::audit::ChainStatus {
        checked: Some(crate::util::stamp(jiff::Timestamp::now())),
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
/// through the running daemon (its local socket, or its API with an
/// operator's token; the daemon audits it), else in
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
    match Via::find(cfg, token).await {
        Some(v) => {
            call_json(
                cfg,
                &v,
                "/v1/alarms/accept",
                Some(serde_json::json!({ "tenant": tenant })),
            )
            .await
        }
        None => {
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
                .map_or_else(|| "-".into(), |j| j.state.word().to_string()),
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
                "erasure {}: {}, notice {}, due {}, deadline {}{}\n",
                r.tenant,
                crate::erasure::state_name(r.state),
                r.notice_given,
                r.due,
                r.deadline,
                if r.overdue(now) { "  OVERDUE" } else { "" }
            )
        })
        .collect()
}

/// What a catalog rebuild did.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Rebuilt {
    /// Services whose snapshots were read again.
    pub services: usize,
    /// Snapshots now in the catalog.
    pub snapshots: usize,
    /// Services with no snapshot, or whose repository could not be read.
    pub problems: Vec<String>,
}

/// Rebuilds the catalog of a stopped daemon from the repositories of
/// `cfg`'s services (a running daemon does it through its API:
/// `POST /v1/catalog/rebuild`).
///
/// # Errors
/// The catalog's errors (another daemon holding it among them).
pub async fn rebuild(cfg: &Config) -> Result<Rebuilt> {
    let catalog = Catalog::open(&cfg.state_dir)?;
    let setup = super::Setup::services_only(cfg)?;
    let done = rebuild_services(&catalog, setup.services.iter().map(|s| &s.jobs)).await?;
    catalog.flush()?;
    Ok(done)
}

/// Reads every service's snapshots into `catalog` again, and its last
/// backup time from the newest.
///
/// # Errors
/// The catalog's errors.
pub(crate) async fn rebuild_services<'a>(
    catalog: &Catalog,
    services: impl Iterator<Item = &'a super::jobs::ServiceJobs>,
) -> Result<Rebuilt> {
    let mut done = Rebuilt {
        services: 0,
        snapshots: 0,
        problems: Vec::new(),
    };
    for s in services {
        super::jobs::refresh_snapshots(s, catalog).await;
        let key = ServiceKey::new(&s.tenant, &s.service);
        let snaps = catalog.snapshots(&key)?;
        if let Some(newest) = snaps.last().and_then(|n| n.time.parse().ok()) {
            catalog.set_last_run(&key, JobKind::Backup, newest)?;
        }
        if snaps.is_empty() {
            done.problems.push(format!(
                "{}/{}: no snapshot found in {}",
                s.tenant, s.service, s.repo.url
            ));
        }
        done.services += 1;
        done.snapshots += snaps.len();
    }
    Ok(done)
}
