//! Runs queued jobs: concurrency limits (global and per target), one job per
//! (service, kind) at a time, per-job timeouts, retries with exponential
//! backoff, and a clean stop on shutdown. Every state change is written to the
//! catalog.
//!
//! What a job *does* is the [`Executor`]'s business (`daemon::jobs` in the
//! daemon, a fake in tests); the runner only decides when and how often.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::records::{JobKind, JobRecord, JobState, Trigger};
use super::scheduler::{Clock, Request};
use crate::catalog::Catalog;
use crate::config::ServiceKey;
use crate::util::lock;
use crate::{Error, Result};

/// How a job ended well.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct JobOutcome {
    /// True when it finished with a problem that retrying will not fix (a
    /// backup that skipped unreadable files).
    pub warning: bool,
    /// Snapshot written.
    pub snapshot: Option<crate::SnapshotId>,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Bytes added to the repository.
    pub bytes_added: u64,
    /// Files in the snapshot written.
    pub files: u64,
    /// One line for people.
    pub summary: Option<String>,
    /// DR drills: what was measured.
    pub rto: Option<super::records::RtoMeasure>,
}

/// What the executor gets for one attempt.
#[derive(Debug, Clone)]
pub(crate) struct JobContext {
    /// The job.
    pub job: JobRecord,
    /// Set when the job must stop (timeout, shutdown); long jobs poll it.
    pub cancel: Arc<AtomicBool>,
}

/// The future an executor returns.
pub(crate) type JobFuture = Pin<Box<dyn Future<Output = Result<JobOutcome>> + Send>>;

/// Runs one attempt of a job.
pub(crate) type Executor = Arc<dyn Fn(JobContext) -> JobFuture + Send + Sync>;

/// Per-service settings the runner needs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSettings {
    /// The service's backup target (for per-target limits).
    pub target: String,
    /// Longest an attempt may run.
    pub timeout: Duration,
    /// Retries after a failed attempt.
    pub retries: u32,
    /// Wait before the first retry; doubles each time, up to `max_backoff`.
    pub backoff: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// Replicate to the standby target right after each successful backup
    /// (`standby = "hot"`).
    pub replicate_after_backup: bool,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            target: "default".into(),
            timeout: Duration::from_secs(6 * 3600),
            retries: 3,
            backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(3600),
            replicate_after_backup: false,
        }
    }
}

/// Concurrency limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Jobs running at once in the whole daemon.
    pub global: usize,
    /// Jobs running at once per target; targets not listed get `global`.
    pub per_target: HashMap<String, usize>,
}

/// How long running jobs get to stop after a shutdown request.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(60);

type Key = (String, String, JobKind);

struct Inner {
    catalog: Catalog,
    clock: Arc<dyn Clock>,
    exec: Executor,
    global: Arc<Semaphore>,
    limits: Limits,
    targets: Mutex<HashMap<String, Arc<Semaphore>>>,
    settings: Mutex<HashMap<ServiceKey, JobSettings>>,
    active: Mutex<HashSet<Key>>,
    shutdown: watch::Receiver<bool>,
    /// Follow-up jobs (hot standby), submitted by a forwarding task.
    follow: tokio::sync::mpsc::UnboundedSender<Request>,
    /// The daemon's runtime, where jobs run (a request submits from the
    /// API's runtime).
    runtime: tokio::runtime::Handle,
    /// Told of every job as it ends (notifications).
    on_end: std::sync::OnceLock<EndHook>,
}

/// What the runner calls as each job ends.
type EndHook = Box<dyn Fn(&JobRecord) + Send + Sync>;

/// The job runner.
#[derive(Clone)]
pub(crate) struct Runner {
    inner: Arc<Inner>,
    tasks: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

impl Runner {
    /// A runner; it stops taking and running jobs when `shutdown` turns true.
    /// Must be called inside a tokio runtime (it starts a small task).
    pub(crate) fn new(
        catalog: Catalog,
        clock: Arc<dyn Clock>,
        exec: Executor,
        limits: Limits,
        shutdown: watch::Receiver<bool>,
    ) -> Runner {
        let global = Arc::new(Semaphore::new(limits.global.max(1)));
        let (follow, mut follow_rx) = tokio::sync::mpsc::unbounded_channel::<Request>();
        let mut stop = shutdown.clone();
        let runner = Runner {
            inner: Arc::new(Inner {
                catalog,
                clock,
                exec,
                global,
                limits,
                targets: Mutex::new(HashMap::new()),
                settings: Mutex::new(HashMap::new()),
                active: Mutex::new(HashSet::new()),
                shutdown,
                follow,
                runtime: tokio::runtime::Handle::current(),
                on_end: std::sync::OnceLock::new(),
            }),
            tasks: Arc::new(tokio::sync::Mutex::new(JoinSet::new())),
        };
        let forwarder = runner.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = follow_rx.recv() => match r {
                        Some(req) => {
                            if let Err(e) = forwarder.submit(req).await {
                                tracing::warn!(error = %e, "could not queue a follow-up job");
                            }
                        }
                        None => return,
                    },
                    () = stopped(&mut stop) => return,
                }
            }
        });
        runner
    }

    /// The daemon's runtime, where jobs run: long work asked for through the
    /// API (an erasure, a catalog rebuild) runs there too, not on the API's.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.runtime
    }

    /// Calls `hook` with the record of every job as it ends (once; a
    /// second hook is ignored).
    pub(crate) fn on_end(&self, hook: impl Fn(&JobRecord) + Send + Sync + 'static) {
        let _ = self.inner.on_end.set(Box::new(hook));
    }

    /// Sets (or replaces, on reload) the settings of every service.
    pub(crate) fn set_services(&self, settings: HashMap<ServiceKey, JobSettings>) {
        *lock(&self.inner.settings) = settings;
    }

    /// Queues a job unless one of the same kind for the same service is
    /// already queued or running (then returns `None`: the request is
    /// coalesced, as a backup queued twice would only back up the same data).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown service; [`Error::Refused`] once the
    /// daemon is stopping; catalog errors.
    pub(crate) async fn submit(&self, req: Request) -> Result<Option<JobRecord>> {
        if *self.inner.shutdown.borrow() {
            return Err(Error::Refused("the daemon is stopping".into()));
        }
        let settings = lock(&self.inner.settings)
            .get(&ServiceKey::new(&req.tenant, &req.service))
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("service {}/{}", req.tenant, req.service)))?;
        // A tenant being erased, or erased, gets no job (and no record that
        // names it).
        if let Some(e) = self.inner.catalog.erasure(&req.tenant)? {
            if e.state.refused() {
                return Err(Error::Refused(e.refusal()));
            }
        }
        let key: Key = (req.tenant.clone(), req.service.clone(), req.kind);
        if !lock(&self.inner.active).insert(key.clone()) {
            tracing::info!(tenant = %req.tenant, service = %req.service, job = req.kind.name(),
                "a job of this kind is already queued or running: request coalesced");
            return Ok(None);
        }
        let rec = match self.inner.catalog.queue_job(
            req.kind,
            &req.tenant,
            &req.service,
            req.trigger.clone(),
            req.tags.clone(),
            self.inner.clock.now(),
        ) {
            Ok(r) => r,
            Err(e) => {
                lock(&self.inner.active).remove(&key);
                return Err(e);
            }
        };
        let inner = self.inner.clone();
        let job = rec.clone();
        let runtime = self.inner.runtime.clone();
        self.tasks.lock().await.spawn_on(
            async move {
                let id = job.id;
                let (tenant, service, kind) = (job.tenant.clone(), job.service.clone(), job.kind);
                let ok = run_job(&inner, job, &settings).await;
                lock(&inner.active).remove(&key);
                if ok && kind == JobKind::Backup && settings.replicate_after_backup {
                    let follow = Request {
                        tenant,
                        service,
                        kind: JobKind::Replicate,
                        trigger: Trigger::Follows { job: id },
                        tags: Vec::new(),
                        due: None,
                    };
                    if inner.follow.send(follow).is_err() {
                        tracing::warn!(job = %id, "could not queue the standby replication");
                    }
                }
            },
            &runtime,
        );
        Ok(Some(rec))
    }

    /// Takes requests from `queue` until it closes or shutdown.
    pub(crate) async fn serve(&self, mut queue: tokio::sync::mpsc::Receiver<Request>) {
        let mut shutdown = self.inner.shutdown.clone();
        loop {
            tokio::select! {
                r = queue.recv() => match r {
                    Some(req) => {
                        if let Err(e) = self.submit(req.clone()).await {
                            tracing::warn!(tenant = %req.tenant, service = %req.service, job = req.kind.name(), error = %e, "job not queued");
                        }
                    }
                    None => return,
                },
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return },
            }
        }
    }

    /// Waits for every job to end (after shutdown, within the jobs' own stop
    /// grace).
    pub(crate) async fn drain(&self) {
        // Take the set out so that jobs queued meanwhile (follow-ups) can be
        // spawned; they are waited for in the next round.
        loop {
            let mut tasks = std::mem::take(&mut *self.tasks.lock().await);
            if tasks.is_empty() {
                return;
            }
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Jobs queued or running now.
    pub(crate) fn active(&self) -> usize {
        lock(&self.inner.active).len()
    }
}

fn target_semaphore(inner: &Inner, target: &str) -> Arc<Semaphore> {
    lock(&inner.targets)
        .entry(target.to_string())
        .or_insert_with(|| {
            let n = inner
                .limits
                .per_target
                .get(target)
                .copied()
                .unwrap_or(inner.limits.global);
            Arc::new(Semaphore::new(n.max(1)))
        })
        .clone()
}

/// Resolves once shutdown is requested (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The one line that says how a job ended: its result in words, the
/// snapshot it made, what it read and added, and how long it took (info when
/// it succeeded, warn otherwise).
fn log_end(job: &JobRecord) {
    let snapshot = job.snapshot.map(|s| s.short()).unwrap_or_default();
    let duration_s = (job.duration_secs * 10.0).round() / 10.0;
    let what = job.kind.name();
    match job.state {
        JobState::Succeeded if job.kind == JobKind::Backup => tracing::info!(
            result = job.state.word(),
            snapshot,
            files = job.files,
            bytes_read = job.bytes_read,
            bytes_added = job.bytes_added,
            duration_s,
            attempts = job.attempts,
            "{what} succeeded"
        ),
        // A drill, check, retention or copy says what it found.
        JobState::Succeeded => tracing::info!(
            result = job.state.word(),
            snapshot,
            duration_s,
            attempts = job.attempts,
            rto_s = job.rto.map(|r| (r.achieved_secs * 10.0).round() / 10.0),
            rto_objective_s = job.rto.map(|r| r.objective_secs),
            summary = job.summary.as_deref().unwrap_or_default(),
            "{what} succeeded"
        ),
        JobState::Warning => tracing::warn!(
            result = job.state.word(),
            snapshot,
            files = job.files,
            bytes_read = job.bytes_read,
            bytes_added = job.bytes_added,
            duration_s,
            attempts = job.attempts,
            summary = job.summary.as_deref().unwrap_or_default(),
            "{what} finished with warnings"
        ),
        _ => tracing::warn!(
            result = job.state.word(),
            duration_s,
            attempts = job.attempts,
            error = job.error.as_deref().unwrap_or_default(),
            "{what} failed"
        ),
    }
}

/// Runs a job through its attempts, in a tracing span naming it; returns true
/// when it succeeded.
async fn run_job(inner: &Inner, job: JobRecord, settings: &JobSettings) -> bool {
    use tracing::Instrument;
    let span = tracing::info_span!("job", id = %job.id, tenant = %job.tenant, service = %job.service, kind = job.kind.name());
    attempts(inner, job, settings).instrument(span).await
}

async fn attempts(inner: &Inner, mut job: JobRecord, settings: &JobSettings) -> bool {
    let mut shutdown = inner.shutdown.clone();
    let save = |job: &JobRecord| {
        if let Err(e) = inner.catalog.put_job(job) {
            tracing::error!(error = %e, "cannot record the job in the catalog");
        }
    };
    // Wait for a slot (the global one first: a job waiting for a busy target
    // holds no global slot... it does, briefly; targets are few).
    let permits = tokio::select! {
        p = async {
            let g = inner.global.clone().acquire_owned().await;
            let t = target_semaphore(inner, &settings.target).acquire_owned().await;
            (g, t)
        } => p,
        () = stopped(&mut shutdown) => {
            job.state = JobState::Failed;
            job.error = Some("not started: the daemon stopped".into());
            job.finished = Some(crate::util::stamp(inner.clock.now()));
            save(&job);
            return false;
        }
    };
    let (Ok(_global), Ok(_target)) = permits else {
        return false;
    };
    let started = tokio::time::Instant::now();
    job.state = JobState::Running;
    job.started = Some(crate::util::stamp(inner.clock.now()));
    save(&job);
    tracing::info!(trigger = %job.trigger.word(), "{} started", job.kind.name());

    let mut result: Result<JobOutcome> = Err(Error::Problems("not run".into()));
    for attempt in 1..=settings.retries.saturating_add(1) {
        job.attempts = attempt;
        save(&job);
        let cancel = Arc::new(AtomicBool::new(false));
        let ctx = JobContext {
            job: job.clone(),
            cancel: cancel.clone(),
        };
        let mut handle = tokio::spawn((inner.exec)(ctx));
        let mut stopping = false;
        result = tokio::select! {
            r = &mut handle => r.unwrap_or_else(|e| Err(Error::Internal(format!("job task failed: {e}")))),
            () = tokio::time::sleep(settings.timeout) => {
                cancel.store(true, Ordering::Relaxed);
                let _ = tokio::time::timeout(STOP_GRACE, &mut handle).await;
                handle.abort();
                Err(Error::Timeout(format!("timed out after {} s", settings.timeout.as_secs())))
            }
            () = stopped(&mut shutdown) => {
                stopping = true;
                cancel.store(true, Ordering::Relaxed);
                match tokio::time::timeout(STOP_GRACE, &mut handle).await {
                    Ok(r) => r.unwrap_or_else(|e| Err(Error::Internal(format!("job task failed: {e}")))),
                    Err(_) => {
                        handle.abort();
                        Err(Error::Cancelled("stopped: the daemon is shutting down".into()))
                    }
                }
            }
        };
        match &result {
            Ok(_) => break,
            Err(e) if stopping || !e.retry_can_help() || attempt > settings.retries => {
                tracing::warn!(attempt, error = %e, "job failed");
                break;
            }
            Err(e) => {
                let exp = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
                let wait = settings
                    .backoff
                    .saturating_mul(exp)
                    .min(settings.max_backoff);
                tracing::warn!(attempt, error = %e, retry_in_s = wait.as_secs(), "job attempt failed; retrying");
                job.error = Some(e.to_string());
                save(&job);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stopped(&mut shutdown) => break,
                }
            }
        }
    }
    job.finished = Some(crate::util::stamp(inner.clock.now()));
    job.duration_secs = started.elapsed().as_secs_f64();
    let ok = match result {
        Ok(o) => {
            job.state = if o.warning {
                JobState::Warning
            } else {
                JobState::Succeeded
            };
            job.error = None;
            job.snapshot = o.snapshot;
            job.bytes_read = o.bytes_read;
            job.bytes_added = o.bytes_added;
            job.files = o.files;
            job.summary = o.summary;
            job.rto = o.rto;
            true
        }
        Err(e) => {
            job.state = JobState::Failed;
            job.error = Some(e.to_string());
            false
        }
    };
    log_end(&job);
    save(&job);
    if let Some(hook) = inner.on_end.get() {
        hook(&job);
    }
    let count = |name: &str, n: u64| {
        if let Err(e) =
            inner
                .catalog
                .add_counter(&ServiceKey::new(&job.tenant, &job.service), name, n)
        {
            tracing::error!(error = %e, "cannot update a counter");
        }
    };
    let kind = job.kind.name();
    if ok {
        count(&format!("{kind}_succeeded"), 1);
        count("bytes_read", job.bytes_read);
        count("bytes_added", job.bytes_added);
    } else {
        count(&format!("{kind}_failed"), 1);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snapshot the fake executor reports for a job: named after it.
    fn fake_snapshot(job: crate::daemon::records::JobId) -> crate::SnapshotId {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&job.0.to_be_bytes());
        crate::SnapshotId(b)
    }
    use crate::daemon::scheduler::TokioClock;
    use std::sync::atomic::AtomicUsize;

    fn req(service: &str, kind: JobKind) -> Request {
        Request {
            tenant: "acme".into(),
            service: service.into(),
            kind,
            trigger: Trigger::Schedule,
            tags: vec![],
            due: None,
        }
    }

    struct Fake {
        running: AtomicUsize,
        peak: AtomicUsize,
        calls: Mutex<Vec<(String, JobKind, u32)>>,
    }

    /// An executor that takes `work` of (tokio) time; fails the first
    /// `fail_first` attempts of every job; never ends for service "stuck"
    /// unless cancelled.
    fn fake(work: Duration, fail_first: u32) -> (Arc<Fake>, Executor) {
        let f = Arc::new(Fake {
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            calls: Mutex::new(Vec::new()),
        });
        let state = f.clone();
        let exec: Executor = Arc::new(move |ctx: JobContext| {
            let f = state.clone();
            Box::pin(async move {
                lock(&f.calls).push((ctx.job.service.clone(), ctx.job.kind, ctx.job.attempts));
                let now = f.running.fetch_add(1, Ordering::SeqCst) + 1;
                f.peak.fetch_max(now, Ordering::SeqCst);
                if ctx.job.service == "stuck" {
                    while !ctx.cancel.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    f.running.fetch_sub(1, Ordering::SeqCst);
                    return Err(Error::Cancelled("cancelled".into()));
                }
                tokio::time::sleep(work).await;
                f.running.fetch_sub(1, Ordering::SeqCst);
                if ctx.job.attempts <= fail_first {
                    return Err(Error::Locked("connection refused".into()));
                }
                Ok(JobOutcome {
                    snapshot: Some(fake_snapshot(ctx.job.id)),
                    ..Default::default()
                })
            })
        });
        (f, exec)
    }

    fn runner(
        exec: Executor,
        global: usize,
        per_target: &[(&str, usize)],
    ) -> (Runner, watch::Sender<bool>, Catalog) {
        let catalog = Catalog::temporary().unwrap();
        let (tx, rx) = watch::channel(false);
        let r = Runner::new(
            catalog.clone(),
            Arc::new(TokioClock::starting_at(
                "2026-11-22T10:00:00Z".parse().unwrap(),
            )),
            exec,
            Limits {
                global,
                per_target: per_target
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
            },
            rx,
        );
        (r, tx, catalog)
    }

    fn settings(services: &[(&str, &str)], s: JobSettings) -> HashMap<ServiceKey, JobSettings> {
        services
            .iter()
            .map(|(svc, target)| {
                (
                    ServiceKey::new("acme", *svc),
                    JobSettings {
                        target: target.to_string(),
                        ..s.clone()
                    },
                )
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn limits_hold_globally_and_per_target() {
        let (f, exec) = fake(Duration::from_secs(10), 0);
        let (r, _stop, catalog) = runner(exec, 3, &[("slow-s3", 1)]);
        r.set_services(settings(
            &[
                ("a", "slow-s3"),
                ("b", "slow-s3"),
                ("c", "fast"),
                ("d", "fast"),
                ("e", "fast"),
                ("f", "fast"),
            ],
            JobSettings::default(),
        ));
        for s in ["a", "b", "c", "d", "e", "f"] {
            r.submit(req(s, JobKind::Backup)).await.unwrap().unwrap();
        }
        r.drain().await;
        assert_eq!(f.peak.load(Ordering::SeqCst), 3);
        let jobs = catalog.jobs(10, |_| true).unwrap();
        assert_eq!(jobs.len(), 6);
        assert!(
            jobs.iter().all(|j| j.state == JobState::Succeeded),
            "{jobs:?}"
        );
        // a and b shared one slot: they did not overlap.
        let start = |s: &str| {
            jobs.iter()
                .find(|j| j.service == s)
                .unwrap()
                .started
                .clone()
                .unwrap()
        };
        let end = |s: &str| {
            jobs.iter()
                .find(|j| j.service == s)
                .unwrap()
                .finished
                .clone()
                .unwrap()
        };
        assert!(end("a") <= start("b") || end("b") <= start("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_request_for_a_running_job_is_coalesced() {
        let (f, exec) = fake(Duration::from_secs(10), 0);
        let (r, _stop, _) = runner(exec, 2, &[]);
        r.set_services(settings(&[("a", "t")], JobSettings::default()));
        assert!(r.submit(req("a", JobKind::Backup)).await.unwrap().is_some());
        assert!(r.submit(req("a", JobKind::Backup)).await.unwrap().is_none());
        assert!(r.submit(req("a", JobKind::Check)).await.unwrap().is_some());
        r.drain().await;
        assert_eq!(lock(&f.calls).len(), 2);
        assert!(
            r.submit(req("a", JobKind::Backup)).await.unwrap().is_some(),
            "free again"
        );
        r.drain().await;
        let e = r.submit(req("nope", JobKind::Backup)).await.unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_with_backoff_then_recorded() {
        let (f, exec) = fake(Duration::from_secs(1), 2);
        let (r, _stop, catalog) = runner(exec, 1, &[]);
        let s = JobSettings {
            retries: 2,
            backoff: Duration::from_secs(30),
            ..Default::default()
        };
        r.set_services(settings(&[("a", "t")], s.clone()));
        let t0 = tokio::time::Instant::now();
        let job = r.submit(req("a", JobKind::Backup)).await.unwrap().unwrap();
        r.drain().await;
        // 3 attempts of 1 s, waits of 30 s and 60 s.
        assert_eq!(t0.elapsed(), Duration::from_secs(93));
        let rec = catalog.job(job.id).unwrap().unwrap();
        assert_eq!(rec.state, JobState::Succeeded);
        assert_eq!(rec.attempts, 3);
        assert_eq!(rec.snapshot, Some(fake_snapshot(job.id)));
        assert_eq!(lock(&f.calls).len(), 3);

        // Out of retries: failed, with the error.
        let (_, exec) = fake(Duration::from_secs(1), 10);
        let (r, _stop, catalog) = runner(exec, 1, &[]);
        r.set_services(settings(&[("a", "t")], s));
        let job = r.submit(req("a", JobKind::Backup)).await.unwrap().unwrap();
        r.drain().await;
        let rec = catalog.job(job.id).unwrap().unwrap();
        assert_eq!(rec.state, JobState::Failed);
        assert!(rec.error.unwrap().contains("connection refused"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_over_its_timeout_is_cancelled() {
        let (_, exec) = fake(Duration::from_secs(1), 0);
        let (r, _stop, catalog) = runner(exec, 1, &[]);
        r.set_services(settings(
            &[("stuck", "t")],
            JobSettings {
                timeout: Duration::from_secs(600),
                retries: 0,
                ..Default::default()
            },
        ));
        let job = r
            .submit(req("stuck", JobKind::Backup))
            .await
            .unwrap()
            .unwrap();
        r.drain().await;
        let rec = catalog.job(job.id).unwrap().unwrap();
        assert_eq!(rec.state, JobState::Failed);
        assert!(rec.error.unwrap().contains("timed out after 600 s"));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_running_jobs_and_refuses_new_ones() {
        let (_, exec) = fake(Duration::from_secs(1), 0);
        let (r, stop, catalog) = runner(exec, 1, &[]);
        r.set_services(settings(
            &[("stuck", "t"), ("a", "t")],
            JobSettings::default(),
        ));
        let stuck = r
            .submit(req("stuck", JobKind::Backup))
            .await
            .unwrap()
            .unwrap();
        let waiting = r.submit(req("a", JobKind::Backup)).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.send(true).unwrap();
        r.drain().await;
        let rec = catalog.job(stuck.id).unwrap().unwrap();
        assert_eq!(rec.state, JobState::Failed);
        assert_eq!(rec.attempts, 1, "no retry while stopping");
        let rec = catalog.job(waiting.id).unwrap().unwrap();
        assert_eq!(rec.state, JobState::Failed);
        assert!(rec.error.unwrap().contains("not started"));
        assert!(matches!(
            r.submit(req("a", JobKind::Backup)).await,
            Err(Error::Refused(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn hot_standby_replicates_after_each_good_backup() {
        let (f, exec) = fake(Duration::from_secs(1), 0);
        let (r, _stop, catalog) = runner(exec, 2, &[]);
        r.set_services(settings(
            &[("a", "t")],
            JobSettings {
                replicate_after_backup: true,
                ..Default::default()
            },
        ));
        let b = r.submit(req("a", JobKind::Backup)).await.unwrap().unwrap();
        // The follow-up is queued from the backup's task: wait for both.
        tokio::time::sleep(Duration::from_secs(10)).await;
        r.drain().await;
        let calls = lock(&f.calls).clone();
        assert_eq!(
            calls.iter().map(|c| c.1).collect::<Vec<_>>(),
            [JobKind::Backup, JobKind::Replicate]
        );
        let rep = catalog.jobs(1, |j| j.kind == JobKind::Replicate).unwrap();
        assert_eq!(rep[0].trigger, Trigger::Follows { job: b.id });
    }
}
