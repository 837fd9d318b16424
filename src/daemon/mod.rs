//! `custos daemon`: per-service policies run on schedule.
//!
//! ```text
//!  config (TOML) ──▶ scheduler ──▶ job queue ──▶ runner (concurrency limits,
//!                     (cron+tz,                     retries, timeouts)
//!                      catch-up)                     │  backup · retention · check · replicate
//!  HTTP API ─────────────────────────▶ on-demand ────┘
//!  /metrics, status ◀── state ◀── catalog (job history, snapshot cache, last runs, counters)
//! ```
//!
//! Layer 11 of `docs/architecture.md`: it uses `duration`, `error`, `id`, `progress`, `secrets`, `util`, `crypto`, `repofile`, `backend`, `repository`, `source`, `policy`, `commands`, `config`, `catalog`, `audit`, `erasure`, and nothing of a layer above.
pub(crate) mod api;
pub mod client;
pub(crate) mod http;
pub(crate) mod jobs;
pub mod local;
pub(crate) mod metrics;
pub(crate) mod notify;
pub(crate) mod records;
pub(crate) mod redact;
pub mod restores;
pub(crate) mod runner;
pub(crate) mod scheduler;
pub(crate) mod setup;
pub(crate) mod state;
pub mod status;

#[cfg(test)]
mod flow_tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::catalog::Catalog;
use crate::{Error, Result};
use runner::{JobSettings, Limits, Runner};
use scheduler::{Clock, Entry, SystemClock};
use state::{ServiceInfo, State, Token};

/// The API's OpenAPI 3.1 description as JSON (what `GET /v1/openapi.json`
/// serves and `custos generate openapi` prints).
pub fn openapi_json() -> String {
    serde_json::to_string_pretty(api::openapi()).unwrap_or_default()
}

/// Everything the daemon runs, resolved from the config.
pub struct Setup {
    /// State directory (catalog, caches).
    pub state_dir: PathBuf,
    /// Where service-desk restores are written (`<root>/<tenant>/<ticket>-<id>`).
    pub restore_root: PathBuf,
    /// Restores running at once.
    pub restore_concurrency: usize,
    /// How long finished job records stay in the catalog.
    pub job_history: std::time::Duration,
    /// API address; `None`: no API.
    pub listen: Option<SocketAddr>,
    /// How the API is served and limited.
    pub api: ApiSetup,
    /// Concurrency limits.
    pub limits: Limits,
    /// API tokens.
    pub tokens: Vec<Token>,
    /// The services.
    pub services: Vec<ServiceSetup>,
    /// Where events are sent, secrets read.
    pub(crate) notify: Vec<notify::LoadedChannel>,
    /// The config it came from (end-of-contract erasures run from it).
    pub config: Option<Arc<crate::config::Config>>,
}

/// How the API is served and what it allows.
#[derive(Debug, Clone)]
pub struct ApiSetup {
    /// Connection limits, timeouts, TLS.
    pub server: http::ServerOptions,
    /// A loopback listener for `/metrics` without a token.
    pub metrics_listen: Option<SocketAddr>,
    /// Restores queued or running per tenant.
    pub restores_per_tenant: usize,
    /// How long restored files stay in the restore root.
    pub restore_retention: std::time::Duration,
}

/// One service: what the API shows, how the runner treats it, what its jobs
/// do, and when they run.
pub struct ServiceSetup {
    /// For status, API and metrics.
    pub info: ServiceInfo,
    /// For the runner.
    pub settings: JobSettings,
    /// For the executor.
    pub jobs: jobs::ServiceJobs,
    /// Scheduled job kinds.
    pub entries: Vec<Entry>,
}

/// Loads (or reloads) the setup: the config file, parsed and resolved.
pub type Loader = Box<dyn Fn() -> Result<Setup> + Send + Sync>;

fn key(s: &ServiceSetup) -> crate::config::ServiceKey {
    crate::config::ServiceKey::new(&s.info.tenant, &s.info.name)
}

/// Tenants of the setup that were erased: their services are not run (and
/// nothing is recorded about them), with a warning to take them out of the
/// config. The others have their targets noted, so that the end of their
/// contract erases every target they ever used.
fn erased_tenants(setup: &Setup, catalog: &Catalog) -> std::collections::HashSet<String> {
    let mut erased = std::collections::HashSet::new();
    let tenants: std::collections::BTreeSet<&str> = setup
        .services
        .iter()
        .map(|s| s.info.tenant.as_str())
        .chain(
            setup
                .config
                .iter()
                .flat_map(|c| c.tenants.iter().map(|t| t.id.as_str())),
        )
        .collect();
    for tenant in tenants {
        match catalog.erasure(tenant) {
            Ok(Some(r)) if r.state == crate::erasure::ErasureState::Erased => {
                tracing::warn!(
                    %tenant,
                    completed = r.completed.as_deref().unwrap_or("-"),
                    "tenant was erased at the end of its contract but is still in the config: its services are not run; remove it from the config"
                );
                erased.insert(tenant.to_string());
            }
            Ok(_) => {
                if let Some(cfg) = &setup.config {
                    if let Err(e) = crate::erasure::note_config_targets(cfg, catalog, tenant) {
                        tracing::warn!(%tenant, error = %e, "cannot note the tenant's targets");
                    }
                }
            }
            Err(e) => tracing::warn!(%tenant, error = %e, "cannot read the erasure state"),
        }
    }
    erased
}

/// Applies a setup: services to the runner, state and executor; returns the
/// scheduler entries to start. Services of erased tenants are left out.
fn apply(
    setup: &Setup,
    catalog: &Catalog,
    runner: &Runner,
    state: &State,
    services: &jobs::Services,
) -> Vec<Entry> {
    let erased = erased_tenants(setup, catalog);
    let live: Vec<&ServiceSetup> = setup
        .services
        .iter()
        .filter(|s| !erased.contains(&s.info.tenant))
        .collect();
    runner.set_services(live.iter().map(|s| (key(s), s.settings.clone())).collect());
    *services
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = live
        .iter()
        .map(|s| (key(s), Arc::new(s.jobs.clone())))
        .collect::<HashMap<_, _>>();
    state.replace(
        live.iter().map(|s| s.info.clone()).collect(),
        setup.tokens.clone(),
    );
    if let Some(n) = &state.notifier {
        n.set_channels(setup.notify.clone());
    }
    live.iter().flat_map(|s| s.entries.clone()).collect()
}

/// What a reload changed, in words: services added, removed and changed
/// (any resolved setting), and whether tokens, tenants or targets changed.
fn reload_changes(
    old: Option<&crate::config::Config>,
    new: Option<&crate::config::Config>,
) -> String {
    let (Some(old), Some(new)) = (old, new) else {
        return "the whole config (the previous one is not known)".into();
    };
    let by_key = |c: &crate::config::Config| {
        c.services
            .iter()
            .map(|s| (format!("{}/{}", s.tenant, s.name), format!("{s:?}")))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let (before, after) = (by_key(old), by_key(new));
    let added: Vec<&str> = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .map(String::as_str)
        .collect();
    let removed: Vec<&str> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .map(String::as_str)
        .collect();
    let changed: Vec<&str> = after
        .iter()
        .filter(|(k, v)| before.get(*k).is_some_and(|b| b != *v))
        .map(|(k, _)| k.as_str())
        .collect();
    let mut parts = Vec::new();
    for (what, list) in [("added", added), ("removed", removed), ("changed", changed)] {
        if !list.is_empty() {
            let n = list.len();
            parts.push(format!(
                "{n} service{} {what} ({})",
                if n == 1 { "" } else { "s" },
                list.join(", ")
            ));
        }
    }
    let differs = |a: String, b: String| a != b;
    if differs(format!("{:?}", old.tokens), format!("{:?}", new.tokens)) {
        parts.push("API tokens changed".into());
    }
    if differs(format!("{:?}", old.tenants), format!("{:?}", new.tenants)) {
        parts.push("tenants changed".into());
    }
    if differs(format!("{:?}", old.targets), format!("{:?}", new.targets)) {
        parts.push("targets changed".into());
    }
    if parts.is_empty() {
        "nothing changed".into()
    } else {
        parts.join("; ")
    }
}

/// Wipes what drills left in the scratch directory (a drill killed with
/// the daemon leaves its restore there): drill data must not linger.
fn wipe_scratch(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => {
                tracing::warn!(path = %p.display(), "wiped drill scratch left by an earlier run")
            }
            Err(e) => tracing::error!(path = %p.display(), error = %e, "cannot wipe drill scratch"),
        }
    }
}

/// Re-reads every service's snapshot list into the catalog, one service
/// after the other (best effort: failures are logged).
async fn refresh_all(services: &jobs::Services, catalog: &Catalog) {
    let all: Vec<Arc<jobs::ServiceJobs>> = services
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
        .cloned()
        .collect();
    for svc in all {
        // Not for a tenant being erased: its repository is going away.
        if catalog
            .erasure(&svc.tenant)
            .ok()
            .flatten()
            .is_some_and(|e| e.state.refused())
        {
            continue;
        }
        jobs::refresh_snapshots_if_changed(&svc, catalog).await;
    }
}

/// Starts or resumes the erasures that are due: notice period over, or
/// interrupted. Problems are logged (and visible in `erase status` and
/// `/metrics`); the next round tries again.
async fn run_due_erasures(
    cfg: &crate::config::Config,
    catalog: &Catalog,
    audit: &crate::audit::AuditLog,
) {
    use crate::erasure::ErasureState;
    let now = jiff::Timestamp::now();
    let records = match catalog.erasures() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read erasure records");
            return;
        }
    };
    for r in records {
        let due = r.due.parse::<jiff::Timestamp>().is_ok_and(|d| d <= now);
        let run = match r.state {
            ErasureState::NoticeGiven => due,
            ErasureState::Erasing => true,
            ErasureState::Erased => false,
        };
        if !run {
            continue;
        }
        tracing::info!(tenant = %r.tenant, "running the end-of-contract erasure");
        match crate::erasure::execute(cfg, catalog, audit, &r.tenant, "daemon", None, now).await {
            Ok(done) => {
                tracing::info!(tenant = %r.tenant, certificate = ?done.certificate, "tenant erased")
            }
            Err(e) => tracing::error!(tenant = %r.tenant, error = %e, "erasure not complete"),
        }
    }
}

/// One round of the notifications' watch (RPO states, erasure deadlines),
/// off the runtime's workers; problems are logged and the next round tries
/// again.
async fn notify_round(state: &State) {
    let Some(n) = state.notifier.clone() else {
        return;
    };
    let st = state.clone();
    match tokio::task::spawn_blocking(move || notify::watch(&st, &n, jiff::Timestamp::now())).await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the states notifications watch"),
        Err(e) => tracing::warn!(error = %e, "a notifications round stopped"),
    }
}

/// Threads of the API's own runtime.
const API_THREADS: usize = 2;

/// The nice value of the threads the daemon's jobs run on (its main
/// runtime's workers and blocking threads, and the threads a backup starts
/// from them, which inherit it). The API's runtime keeps the process's: a
/// request then gets the processor as soon as it needs it, where at equal
/// priority it waited for a job thread's time slice (`benches/fleet.sh`,
/// two backups on two cores: p99 8.8 and 9.0 ms at nice 10, 10.9 and
/// 11.3 ms without). Jobs lose nothing on an idle machine.
pub const JOB_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`JOB_NICE`] (on Linux a nice
/// value is per thread); the daemon's main runtime calls it as each of its
/// threads starts. A failure only leaves the thread at the process's
/// priority, so it is ignored.
pub fn lower_job_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority only read and change this thread's
    // scheduling attributes.
    unsafe {
        let tid = libc::gettid();
        let now = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        if now < JOB_NICE {
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, JOB_NICE);
        }
    }
}

/// Serves the API on a runtime of its own ([`API_THREADS`] threads), so that
/// a request waits for the processor, not behind the jobs' tasks on the
/// daemon's runtime: with two job slots running, the API's 99th percentile
/// was 137 ms when both shared one runtime. Jobs that a request starts are
/// spawned on the daemon's runtime (the runner and the restore desk keep its
/// handle). The returned task ends with the server. Its thread inherits the
/// caller's priority, so it is started from [`run`] itself (the main thread
/// under `custos daemon`), never from a task on the jobs' lowered threads.
fn serve_apart<F, Fut>(
    listener: tokio::net::TcpListener,
    serve: F,
) -> tokio::task::JoinHandle<Result<()>>
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The socket moves to the new runtime's reactor.
    let started = listener
        .into_std()
        .map_err(|e| Error::io("cannot hand the API socket to its runtime", e))
        .and_then(|std_listener| {
            std::thread::Builder::new()
                .name("custos-api".into())
                .spawn(move || {
                    let served = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(API_THREADS)
                        .thread_name("custos-api")
                        .enable_all()
                        .build()
                        .map_err(|e| Error::io("cannot start the API's runtime", e))
                        .and_then(|rt| {
                            rt.block_on(async move {
                                let listener = tokio::net::TcpListener::from_std(std_listener)
                                    .map_err(|e| Error::io("cannot serve the API socket", e))?;
                                serve(listener).await
                            })
                        });
                    let _ = tx.send(served);
                })
                .map_err(|e| Error::io("cannot start the API's thread", e))
        });
    tokio::spawn(async move {
        started?;
        rx.await.unwrap_or_else(|_| {
            Err(Error::Internal(
                "the API thread ended without a result".into(),
            ))
        })
    })
}

/// The sockets the daemon serves on, bound by the caller (the binary binds
/// the configured addresses; a test binds `127.0.0.1:0`).
#[derive(Default)]
pub struct Listeners {
    /// The API (`[daemon] listen`).
    pub api: Option<tokio::net::TcpListener>,
    /// Metrics on loopback without a token (`[daemon] metrics_listen`).
    pub metrics: Option<tokio::net::TcpListener>,
}

impl Listeners {
    /// Binds the addresses `setup` names.
    ///
    /// # Errors
    /// [`Error::Io`] naming an address that cannot be bound.
    pub async fn bind(setup: &Setup) -> Result<Listeners> {
        async fn bind(addr: Option<SocketAddr>) -> Result<Option<tokio::net::TcpListener>> {
            match addr {
                Some(addr) => tokio::net::TcpListener::bind(addr)
                    .await
                    .map(Some)
                    .map_err(|e| Error::io(format!("cannot listen on {addr}"), e)),
                None => Ok(None),
            }
        }
        Ok(Listeners {
            api: bind(setup.listen).await?,
            metrics: bind(setup.api.metrics_listen).await?,
        })
    }
}

/// What the daemon is told to do while it runs (the binary turns SIGHUP
/// and SIGTERM/SIGINT into these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Load the config again; a config that does not load is refused and
    /// the running one kept.
    Reload,
    /// Stop: running jobs get `runner::STOP_GRACE` to finish.
    Stop,
}

/// What the daemon tells its supervisor (the binary passes these to
/// systemd's `sd_notify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice<'a> {
    /// Serving; the status line.
    Ready(&'a str),
    /// Reloading the config.
    Reloading,
    /// Stopping: running jobs get their grace period.
    Stopping,
}

/// Runs the daemon with `setup` until told to stop (or `control` is
/// closed). [`Control::Reload`] calls `reload` for a new setup.
///
/// # Errors
/// A catalog or audit log that cannot be opened.
pub async fn run(
    setup: Setup,
    reload: Loader,
    listeners: Listeners,
    mut control: mpsc::Receiver<Control>,
    notice: impl Fn(Notice<'_>),
) -> Result<()> {
    let catalog = Catalog::open(&setup.state_dir)?;
    if let Some(cfg) = &setup.config {
        wipe_scratch(&cfg.scratch_dir);
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let interrupted =
        catalog.fail_interrupted(clock.now())? + catalog.fail_interrupted_restores(clock.now())?;
    if interrupted > 0 {
        tracing::warn!(
            jobs = interrupted,
            "jobs interrupted by the last stop were marked failed"
        );
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let services: jobs::Services = Arc::new(RwLock::new(HashMap::new()));
    let audit = crate::audit::AuditLog::open(&setup.state_dir.join("audit.log"))?;
    let runner = Runner::new(
        catalog.clone(),
        clock.clone(),
        jobs::executor(services.clone(), catalog.clone(), Some(audit.clone())),
        setup.limits.clone(),
        stop_rx.clone(),
    );
    let state = State::new(
        catalog.clone(),
        runner.clone(),
        clock.clone(),
        Vec::new(),
        Vec::new(),
    )
    .with_restores(
        restores::RestoreDesk::new(
            catalog.clone(),
            setup.restore_root.clone(),
            setup.restore_concurrency,
        )
        .with_per_tenant(setup.api.restores_per_tenant)
        .with_audit(audit.clone()),
        services.clone(),
    )
    .with_audit(audit.clone())
    .with_notifier(notify::Notifier::new()?);
    if let Some(n) = state.notifier.clone() {
        runner.on_end(move |job| n.job_ended(job));
    }
    let entries = apply(&setup, &catalog, &runner, &state, &services);

    // The audit trail at start: the local chain verified when it was
    // opened; compare it with its mirror and signed checkpoints.
    let records = crate::audit::verify(&setup.state_dir.join("audit.log")).map_or(0, |(n, _)| n);
    let mirror_check = match setup.config.as_ref().and_then(|c| c.audit_mirror.clone()) {
        Some(url) => {
            let trusted = setup
                .config
                .as_ref()
                .and_then(|c| c.certificate_key.as_deref())
                .and_then(crate::audit::checkpoint_key)
                .map(|k| k.verifying_key());
            let checked = async {
                let b = crate::backend::Backend::open(&url, true)?;
                crate::audit::check_mirror(&setup.state_dir.join("audit.log"), &b, trusted.as_ref())
                    .await
            }
            .await;
            match checked {
                Ok(c) => Some(c.problems),
                Err(e) => {
                    tracing::warn!(error = %e, mirror = %url, "cannot compare the audit log with its mirror");
                    None
                }
            }
        }
        None => None,
    };
    let mirrored = mirror_check.is_some();
    state.set_chain(records, mirrored, mirror_check.unwrap_or_default());

    let (queue_tx, queue_rx) = mpsc::channel(1024);
    let serve_runner = runner.clone();
    let serving = tokio::spawn(async move { serve_runner.serve(queue_rx).await });

    // Scheduler tasks, restarted on reload (each generation has its own stop).
    let start_entries = |entries: Vec<Entry>| {
        let (gen_tx, gen_rx) = watch::channel(false);
        let mut set = JoinSet::new();
        for e in entries {
            let (catalog, clock, queue, stop) = (
                catalog.clone(),
                clock.clone(),
                queue_tx.clone(),
                gen_rx.clone(),
            );
            set.spawn(async move {
                let (tenant, service, kind) = (e.tenant.clone(), e.service.clone(), e.kind);
                if let Err(err) = scheduler::run_entry(e, catalog, clock, queue, stop).await {
                    tracing::error!(%tenant, %service, job = kind.name(), error = %err, "schedule stopped");
                }
            });
        }
        (gen_tx, set)
    };
    let (mut gen_stop, mut gen_tasks) = start_entries(entries);

    // The snapshot cache: filled at start, then refreshed on a period, so
    // that snapshots written by the command line or another host are seen
    // (a restore request that names one also refreshes its service first).
    let refresh_every = setup
        .config
        .as_ref()
        .map_or(std::time::Duration::from_secs(60), |c| c.snapshot_refresh);
    let refreshing = {
        let (services, catalog, mut stop) = (services.clone(), catalog.clone(), stop_rx.clone());
        tokio::spawn(async move {
            loop {
                refresh_all(&services, &catalog).await;
                tokio::select! {
                    () = tokio::time::sleep(refresh_every) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    };

    // End-of-contract erasures (run on time, resumed if interrupted) and the
    // audit log's mirror: at start and every minute.
    let erasing = {
        let (catalog, audit, mut stop) = (catalog.clone(), audit.clone(), stop_rx.clone());
        let (expiring, restore_retention) = (state.clone(), setup.api.restore_retention);
        let job_history = setup.job_history;
        let mut jobs_expired_at: Option<std::time::Instant> = None;
        let chain_state = state.clone();
        *state
            .config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = setup.config.clone();
        let config = state.config.clone();
        let handle = config.clone();
        let erasure_lock = state.erasing.clone();
        let task = tokio::spawn(async move {
            loop {
                // Before a due erasure starts: its event goes out first.
                notify_round(&chain_state).await;
                let cfg = config
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                if let Some((desk, _)) = &expiring.restores {
                    if let Err(e) = desk.expire_outputs(restore_retention, jiff::Timestamp::now()) {
                        tracing::warn!(error = %e, "cannot expire old restores");
                    }
                }
                // Old job records, at start and hourly: the catalog grows
                // with the jobs of `job_history`, not with the daemon's age.
                if jobs_expired_at
                    .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(3600))
                {
                    jobs_expired_at = Some(std::time::Instant::now());
                    let c = catalog.clone();
                    let now = jiff::Timestamp::now();
                    match tokio::task::spawn_blocking(move || c.expire_jobs(job_history, now)).await
                    {
                        Ok(Ok(0)) => {}
                        Ok(Ok(n)) => tracing::info!(removed = n, "expired old job records"),
                        Ok(Err(e)) => tracing::warn!(error = %e, "cannot expire old job records"),
                        Err(e) => tracing::warn!(error = %e, "job record expiry stopped"),
                    }
                }
                if let Some(cfg) = cfg {
                    {
                        let _one_at_a_time = erasure_lock.lock().await;
                        run_due_erasures(&cfg, &catalog, &audit).await;
                    }
                    if let Some(url) = &cfg.audit_mirror {
                        let signer = cfg
                            .certificate_key
                            .as_deref()
                            .and_then(crate::audit::checkpoint_key);
                        let copied = async {
                            let b = crate::backend::Backend::open(url, true)?;
                            crate::audit::mirror(
                                &cfg.state_dir.join("audit.log"),
                                &b,
                                signer.as_ref(),
                            )
                            .await
                        }
                        .await;
                        match copied {
                            Ok(n) => {
                                if n > 0 {
                                    tracing::info!(records = n, mirror = %url, "audit log mirrored");
                                }
                                let records =
                                    crate::audit::verify(&cfg.state_dir.join("audit.log"))
                                        .map_or(0, |(n, _)| n);
                                chain_state.set_chain(records, true, Vec::new());
                            }
                            Err(e @ Error::Integrity { .. }) => {
                                chain_state.set_chain(0, true, vec![e.to_string()]);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, mirror = %url, "cannot mirror the audit log")
                            }
                        }
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
        (handle, task)
    };

    // Notifications of states (RPO, erasure deadlines), on their own period.
    let watching = {
        let (state, mut stop) = (state.clone(), stop_rx.clone());
        let every = setup
            .config
            .as_ref()
            .map_or(std::time::Duration::from_secs(60), |c| c.notify_interval);
        tokio::spawn(async move {
            loop {
                notify_round(&state).await;
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    };

    let api = listeners.api.map(|listener| {
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        tracing::info!(%addr, tls = setup.api.server.tls.is_some(), "API listening");
        let (state, opts, stop) = (state.clone(), setup.api.server.clone(), stop_rx.clone());
        serve_apart(listener, move |listener| {
            api::serve_with(listener, state, opts, stop)
        })
    });
    let local_api = match local::bind(&setup.state_dir).await {
        Ok(listener) => {
            tracing::info!(socket = %local::socket_path(&setup.state_dir).display(), "local administration socket listening (owner and root only)");
            let (router, opts, stop) = (
                api::router(state.clone(), false),
                setup.api.server.clone(),
                stop_rx.clone(),
            );
            Some(tokio::spawn(http::serve_local(
                listener, router, opts, stop,
            )))
        }
        Err(e @ Error::Locked(_)) => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "no local administration socket: commands on this host need the API and a token");
            None
        }
    };
    let metrics_api = listeners.metrics.map(|listener| {
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        tracing::info!(%addr, "metrics listening (loopback, no token)");
        tokio::spawn(http::serve(
            listener,
            api::metrics_router(state.clone()),
            http::ServerOptions {
                tls: None,
                ..setup.api.server.clone()
            },
            stop_rx.clone(),
        ))
    });

    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %setup.config.as_ref().map_or_else(|| "(none)".to_string(), |c| c.file.display().to_string()),
        state = %setup.state_dir.display(),
        listen = %setup.listen.map_or_else(|| "(no API)".to_string(), |a| a.to_string()),
        services = setup.services.len(),
        "daemon started"
    );
    audit.record(
        "daemon",
        "daemon.started",
        None,
        serde_json::json!({"services": setup.services.len(), "pid": std::process::id()}),
    );
    notice(Notice::Ready("running"));
    while let Some(Control::Reload) = control.recv().await {
        notice(Notice::Reloading);
        match reload() {
            Ok(new) => {
                let changes = {
                    let old = erasing
                        .0
                        .read()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    reload_changes(old.as_deref(), new.config.as_deref())
                };
                let entries = apply(&new, &catalog, &runner, &state, &services);
                *erasing
                    .0
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = new.config.clone();
                let _ = gen_stop.send(true);
                while gen_tasks.join_next().await.is_some() {}
                (gen_stop, gen_tasks) = start_entries(entries);
                tracing::info!(services = new.services.len(), "config reloaded: {changes}");
                audit.record(
                    "daemon",
                    "config.reloaded",
                    None,
                    serde_json::json!({"services": new.services.len(), "changes": changes}),
                );
                notice(Notice::Ready("running (config reloaded)"));
            }
            Err(e) => {
                tracing::error!(error = %e, "config refused on reload; keeping the running one");
                audit.record(
                    "daemon",
                    "config.refused",
                    None,
                    serde_json::json!({"error": e.to_string()}),
                );
                notice(Notice::Ready("running (last reload refused: see the log)"));
            }
        }
    }
    tracing::info!(
        active = runner.active(),
        "stopping: running jobs get {} s to finish",
        runner::STOP_GRACE.as_secs()
    );
    notice(Notice::Stopping);
    let _ = stop_tx.send(true);
    let _ = gen_stop.send(true);
    while gen_tasks.join_next().await.is_some() {}
    runner.drain().await;
    serving.abort();
    erasing.1.abort();
    refreshing.abort();
    watching.abort();
    if let Some(m) = metrics_api {
        m.abort();
    }
    if let Some(l) = local_api {
        l.abort();
        let _ = std::fs::remove_file(local::socket_path(&setup.state_dir));
    }
    if let Some(api) = api {
        match api.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "API server"),
            Err(e) => tracing::warn!(error = %e, "API task"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(n) = &state.notifier {
        n.log_dropped_at_stop();
    }
    catalog.flush()?;
    audit.record("daemon", "daemon.stopped", None, serde_json::json!({}));
    let (mirror_url, signer) = erasing
        .0
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .map_or((None, None), |c| {
            (
                c.audit_mirror.clone(),
                c.certificate_key
                    .as_deref()
                    .and_then(crate::audit::checkpoint_key),
            )
        });
    if let Some(url) = mirror_url {
        let done = async {
            let b = crate::backend::Backend::open(&url, true)?;
            crate::audit::mirror(&setup.state_dir.join("audit.log"), &b, signer.as_ref()).await
        }
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "cannot mirror the audit log at stop");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod priority_tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_job_thread_runs_at_the_job_nice_value_and_its_children_inherit_it() {
        let nice = |tid: libc::pid_t| unsafe {
            // SAFETY: reads a thread's nice value.
            libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t)
        };
        let here = nice(unsafe { libc::gettid() });
        let (job, child) = std::thread::spawn(move || {
            lower_job_thread_priority();
            let job = nice(unsafe { libc::gettid() });
            let child = std::thread::spawn(move || nice(unsafe { libc::gettid() }))
                .join()
                .unwrap();
            (job, child)
        })
        .join()
        .unwrap();
        assert_eq!(job, JOB_NICE.max(here));
        assert_eq!(child, job, "threads a job starts inherit its priority");
        assert_eq!(
            nice(unsafe { libc::gettid() }),
            here,
            "the caller's own thread is untouched"
        );
    }
}
