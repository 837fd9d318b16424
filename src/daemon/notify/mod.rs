//! Notifications: a failed job, a breached (and recovered) RPO, a failed
//! DR drill, an erasure due or overdue, sent to the `[[notify]]` channels
//! that take them: signed webhooks (`webhook`) and e-mail (`email`).
//!
//! Events come from two places: the runner's end of every job
//! ([`Notifier::job_ended`]), and a round every minute over the services'
//! RPO states and the erasure records (`watch`), which sends an event once
//! when a state is entered and remembers it in the catalog (table
//! `notices`), so a restart sends nothing twice.
//!
//! Each delivery runs on its own: tried, then retried after the channel's
//! backoff (doubling, at most an hour) when the failure may pass (network,
//! time-out, HTTP 408, 429 or 5xx, SMTP 4xx); given up at once when it will
//! not (other HTTP 4xx, SMTP 5xx). What was delivered and what was given up
//! is counted in `/metrics` and logged. Deliveries still waiting when the
//! daemon stops are dropped (the log says so); the states they told of are
//! on the status pages and in `/metrics`.
//!
//! A channel with a `tenant` is a partner's address: it gets that tenant's
//! events only, with the daemon host's paths replaced as in the API's
//! answers to partners.

mod email;
mod watch;
mod webhook;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use zeroize::Zeroizing;

use super::records::{JobKind, JobRecord, JobState};
use crate::config::notify::{Channel, EventKind, Via, MAX_BACKOFF};
use crate::{Error, Result};

pub(crate) use watch::watch;

/// One event, as every channel receives it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Event {
    /// Unique: receivers can drop a repeated delivery by it.
    pub id: String,
    /// What happened.
    pub event: EventKind,
    /// When it was noticed (RFC 3339).
    pub time: String,
    /// The tenant, if the event is about one.
    pub tenant: Option<String>,
    /// The service, if the event is about one.
    pub service: Option<String>,
    /// One sentence for people.
    pub summary: String,
    /// The record behind it (a job, a service's status, an erasure).
    pub details: serde_json::Value,
}

impl Event {
    /// An event of `kind` now.
    pub(crate) fn new(
        kind: EventKind,
        tenant: Option<&str>,
        service: Option<&str>,
        summary: String,
        details: serde_json::Value,
    ) -> Event {
        let id: [u8; 16] = rand::random();
        Event {
            id: hex::encode(id),
            event: kind,
            time: crate::util::stamp(jiff::Timestamp::now()),
            tenant: tenant.map(str::to_string),
            service: service.map(str::to_string),
            summary,
            details,
        }
    }

    /// The event as a partner's channel gets it: no host path.
    fn for_partner(&self) -> Event {
        let mut e = self.clone();
        e.summary = super::redact::redact_text(&e.summary);
        super::redact::redact_paths(&mut e.details);
        e
    }

    /// The event a finished job gives, if any: a drill that failed or
    /// missed its RTO, another job that failed after its retries.
    pub(crate) fn of_job(job: &JobRecord) -> Option<Event> {
        let kind = match (job.kind, job.state) {
            (JobKind::Drill, JobState::Failed | JobState::Warning) => EventKind::DrillFailed,
            (_, JobState::Failed) => EventKind::JobFailed,
            _ => return None,
        };
        let what = job.kind.name();
        let attempts = match job.attempts {
            1 => "1 attempt".to_string(),
            n => format!("{n} attempts"),
        };
        let summary = match (job.state, &job.error, &job.summary) {
            (JobState::Failed, Some(e), _) => format!(
                "{what} of {}/{} failed after {attempts}: {e}",
                job.tenant, job.service
            ),
            (_, _, Some(s)) => format!("{what} of {}/{}: {s}", job.tenant, job.service),
            _ => format!("{what} of {}/{} failed", job.tenant, job.service),
        };
        Some(Event::new(
            kind,
            Some(&job.tenant),
            Some(&job.service),
            summary,
            serde_json::to_value(job).unwrap_or_default(),
        ))
    }
}

/// A channel with its secret read (at start and on reload: a missing
/// secret file refuses the config, as a token's does).
#[derive(Clone)]
pub(crate) struct LoadedChannel {
    /// As configured.
    pub spec: Channel,
    /// The webhook's signing secret, or the SMTP password.
    secret: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for LoadedChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedChannel")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl LoadedChannel {
    /// True when this channel takes `e`.
    fn takes(&self, e: &Event) -> bool {
        self.spec.events.contains(&e.event)
            && self
                .spec
                .tenant
                .as_deref()
                .is_none_or(|t| e.tenant.as_deref() == Some(t))
    }
}

/// Reads the channels' secrets.
///
/// # Errors
/// [`Error::Usage`] naming the channel when a secret file cannot be read
/// or a variable is not set.
pub(crate) fn load(channels: &[Channel]) -> Result<Vec<LoadedChannel>> {
    channels
        .iter()
        .map(|c| {
            let what = format!("notify {}", c.name);
            let secret = match &c.via {
                Via::Webhook { secret, .. } => {
                    let s = secret.text(&format!("{what} webhook secret"))?;
                    if s.len() < 16 {
                        return Err(Error::Usage(format!(
                            "{what}: the webhook secret is shorter than 16 characters"
                        )));
                    }
                    Some(s)
                }
                Via::Email(e) => match &e.login {
                    Some((_, src)) => Some(src.text(&format!("{what} SMTP password"))?),
                    None => None,
                },
            };
            Ok(LoadedChannel {
                spec: c.clone(),
                secret,
            })
        })
        .collect()
}

/// Why a delivery failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// It may pass: try again later.
    Transient(String),
    /// It will not pass (the receiver refused the request itself).
    Permanent(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient(s) | Failure::Permanent(s) => f.write_str(s),
        }
    }
}

/// Counts for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Deliveries that succeeded.
    pub sent: AtomicU64,
    /// Deliveries given up (permanent failure, or retries exhausted).
    pub failed: AtomicU64,
    /// Deliveries under way or waiting for a retry.
    pub pending: AtomicU64,
}

/// Sends events to the channels (cheap to clone).
#[derive(Clone)]
pub(crate) struct Notifier {
    channels: Arc<RwLock<Arc<Vec<LoadedChannel>>>>,
    http: reqwest::Client,
    /// Delivered and given-up deliveries.
    pub counts: Arc<Counts>,
    /// Where deliveries run (the daemon's runtime).
    runtime: tokio::runtime::Handle,
    /// Held by a round of `watch`: two rounds at once would both send
    /// what neither has remembered yet.
    round: Arc<std::sync::Mutex<()>>,
}

/// Time one delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

impl Notifier {
    /// A notifier with no channel yet. Must be called inside a tokio
    /// runtime: deliveries run there.
    ///
    /// # Errors
    /// [`Error::Io`] when the HTTP client cannot be built.
    pub(crate) fn new() -> Result<Notifier> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            // A signed request goes where it was configured to go, nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("custos/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::io("cannot build the webhook client", std::io::Error::other(e)))?;
        Ok(Notifier {
            channels: Arc::new(RwLock::new(Arc::new(Vec::new()))),
            http,
            counts: Arc::new(Counts::default()),
            runtime: tokio::runtime::Handle::current(),
            round: Arc::new(std::sync::Mutex::new(())),
        })
    }

    /// Sets (or replaces, on reload) the channels.
    pub(crate) fn set_channels(&self, channels: Vec<LoadedChannel>) {
        *self
            .channels
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(channels);
    }

    /// Says in the log how many deliveries the daemon's stop drops (those
    /// under way or waiting for a retry: they live in memory only).
    pub(crate) fn log_dropped_at_stop(&self) {
        let n = self.counts.pending.load(Ordering::Relaxed);
        if n > 0 {
            tracing::warn!(
                dropped = n,
                "notification deliveries still under way or waiting for a retry are dropped at stop: their events are not sent again"
            );
        }
    }

    fn channels(&self) -> Arc<Vec<LoadedChannel>> {
        self.channels
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Called by the runner as each job ends.
    pub(crate) fn job_ended(&self, job: &JobRecord) {
        if let Some(e) = Event::of_job(job) {
            self.send(&e);
        }
    }

    /// Sends `e` to every channel that takes it; returns how many.
    /// Each delivery runs (and is retried) on its own.
    pub(crate) fn send(&self, e: &Event) -> usize {
        let mut n = 0;
        for c in self.channels().iter().filter(|c| c.takes(e)) {
            let event = if c.spec.tenant.is_some() {
                e.for_partner()
            } else {
                e.clone()
            };
            let (channel, http, counts) = (c.clone(), self.http.clone(), self.counts.clone());
            counts.pending.fetch_add(1, Ordering::Relaxed);
            self.runtime.spawn(async move {
                deliver(&channel, &http, &event, &counts).await;
                counts.pending.fetch_sub(1, Ordering::Relaxed);
            });
            n += 1;
        }
        if n == 0 {
            tracing::debug!(event = %e.event, summary = %e.summary, "no channel takes this event");
        }
        n
    }
}

/// One attempt through `c`.
async fn attempt(
    c: &LoadedChannel,
    http: &reqwest::Client,
    e: &Event,
) -> std::result::Result<(), Failure> {
    match &c.spec.via {
        Via::Webhook { url, .. } => {
            webhook::post(http, url, c.secret.as_ref().map_or("", |s| s.as_str()), e).await
        }
        Via::Email(spec) => email::send(spec, c.secret.as_ref().map(|s| s.as_str()), e).await,
    }
}

/// The wait before retry `n` (0 for the first): `backoff` doubled `n`
/// times, at most [`MAX_BACKOFF`].
fn wait_before(backoff: Duration, n: u32) -> Duration {
    backoff
        .checked_mul(1u32 << n.min(20))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

async fn deliver(c: &LoadedChannel, http: &reqwest::Client, e: &Event, counts: &Counts) {
    let name = &c.spec.name;
    for n in 0..=c.spec.retries {
        match attempt(c, http, e).await {
            Ok(()) => {
                counts.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(channel = %name, event = %e.event, id = %e.id, attempts = n + 1, "notification delivered");
                return;
            }
            Err(Failure::Permanent(why)) => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(channel = %name, event = %e.event, id = %e.id, error = %why, "notification refused by its receiver: not retried");
                return;
            }
            Err(Failure::Transient(why)) if n < c.spec.retries => {
                let wait = wait_before(c.spec.backoff, n);
                tracing::warn!(channel = %name, event = %e.event, id = %e.id, error = %why, retry_in_s = wait.as_secs(), "notification not delivered; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(Failure::Transient(why)) => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(channel = %name, event = %e.event, id = %e.id, error = %why, attempts = n + 1, "notification given up after its retries");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::notify::EmailSpec;

    fn channel(tenant: Option<&str>, events: &[EventKind]) -> LoadedChannel {
        LoadedChannel {
            spec: Channel {
                name: "c".into(),
                tenant: tenant.map(str::to_string),
                events: events.to_vec(),
                via: Via::Email(EmailSpec {
                    host: "127.0.0.1".into(),
                    port: 25,
                    tls: crate::config::notify::SmtpTls::None,
                    from: "custos@localhost".into(),
                    to: vec!["root@localhost".into()],
                    login: None,
                }),
                retries: 0,
                backoff: Duration::from_secs(1),
            },
            secret: None,
        }
    }

    fn job(kind: JobKind, state: JobState) -> JobRecord {
        JobRecord {
            id: crate::daemon::records::JobId(7),
            kind,
            tenant: "acme".into(),
            service: "db".into(),
            trigger: crate::daemon::records::Trigger::Schedule,
            tags: Vec::new(),
            state,
            queued: "2026-12-04T01:00:00Z".into(),
            started: None,
            finished: None,
            attempts: 4,
            error: Some("cannot read /srv/acme/db: permission denied".into()),
            snapshot: None,
            bytes_read: 0,
            bytes_added: 0,
            files: 0,
            duration_secs: 1.0,
            summary: Some("drill of snapshot 1a2b: RTO 60 s MISSED".into()),
            rto: None,
        }
    }

    #[test]
    fn jobs_give_the_events_they_should() {
        let e = Event::of_job(&job(JobKind::Backup, JobState::Failed)).unwrap();
        assert_eq!(e.event, EventKind::JobFailed);
        assert_eq!(
            e.summary,
            "backup of acme/db failed after 4 attempts: cannot read /srv/acme/db: permission denied"
        );
        assert_eq!(
            Event::of_job(&job(JobKind::Drill, JobState::Warning))
                .unwrap()
                .event,
            EventKind::DrillFailed
        );
        assert!(Event::of_job(&job(JobKind::Backup, JobState::Warning)).is_none());
        assert!(Event::of_job(&job(JobKind::Check, JobState::Succeeded)).is_none());
    }

    #[test]
    fn a_channel_takes_its_events_of_its_tenant() {
        let e = Event::of_job(&job(JobKind::Backup, JobState::Failed)).unwrap();
        assert!(channel(None, &EventKind::ALL).takes(&e));
        assert!(channel(Some("acme"), &[EventKind::JobFailed]).takes(&e));
        assert!(!channel(Some("globex"), &EventKind::ALL).takes(&e));
        assert!(!channel(None, &[EventKind::RpoBreached]).takes(&e));
        // An erasure event of another tenant, a daemon-wide one.
        let other = Event::new(
            EventKind::ErasureDue,
            Some("globex"),
            None,
            "x".into(),
            serde_json::json!({}),
        );
        assert!(!channel(Some("acme"), &EventKind::ALL).takes(&other));
    }

    #[test]
    fn a_partner_never_gets_a_host_path() {
        let e = Event::of_job(&job(JobKind::Backup, JobState::Failed)).unwrap();
        let p = e.for_partner();
        assert!(!p.summary.contains("/srv"), "{}", p.summary);
        assert!(!serde_json::to_string(&p.details).unwrap().contains("/srv"));
        assert!(p.summary.contains("<host path>"));
    }

    #[test]
    fn waits_double_up_to_an_hour() {
        let b = Duration::from_secs(30);
        assert_eq!(wait_before(b, 0), b);
        assert_eq!(wait_before(b, 3), Duration::from_secs(240));
        assert_eq!(wait_before(b, 10), MAX_BACKOFF);
        assert_eq!(wait_before(b, 40), MAX_BACKOFF);
    }

    #[test]
    fn a_secret_that_cannot_be_read_refuses_the_channels() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = channel(None, &EventKind::ALL).spec;
        c.name = "ops".into();
        c.via = Via::Webhook {
            url: "https://hooks.example.eu/x".parse().unwrap(),
            secret: crate::crypto::keyslot::KeySource::PasswordFile(dir.path().join("nope")),
        };
        let e = load(std::slice::from_ref(&c)).unwrap_err().to_string();
        assert!(e.contains("notify ops webhook secret file"), "{e}");
        let short = dir.path().join("short");
        std::fs::write(&short, "tiny").unwrap();
        std::fs::set_permissions(&short, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        c.via = Via::Webhook {
            url: "https://hooks.example.eu/x".parse().unwrap(),
            secret: crate::crypto::keyslot::KeySource::PasswordFile(short),
        };
        let e = load(&[c]).unwrap_err().to_string();
        assert!(e.contains("shorter than 16 characters"), "{e}");
    }
}
