//! `[[notify]]`: who hears of a failed job, a breached RPO, a failed drill
//! or an erasure that is due, and through what (a signed webhook or an
//! e-mail). Checked here; sent by `daemon::notify`.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::resolve::Problems;
use super::schema::{RawEmail, RawNotify, RawWebhook};
use crate::crypto::keyslot::KeySource;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A backup, retention, check or replication job failed after its
    /// retries.
    JobFailed,
    /// A service's newest complete snapshot became older than its RPO.
    RpoBreached,
    /// A breached service has a complete snapshot within its RPO again.
    RpoRecovered,
    /// A DR drill failed, or restored later than the RTO.
    DrillFailed,
    /// A tenant's notice period ended: its erasure starts.
    ErasureDue,
    /// A tenant's erasure deadline passed and it is not erased.
    ErasureOverdue,
}

impl EventKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [EventKind; 6] = [
        EventKind::JobFailed,
        EventKind::RpoBreached,
        EventKind::RpoRecovered,
        EventKind::DrillFailed,
        EventKind::ErasureDue,
        EventKind::ErasureOverdue,
    ];

    /// The name in the config and in payloads.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::JobFailed => "job-failed",
            EventKind::RpoBreached => "rpo-breached",
            EventKind::RpoRecovered => "rpo-recovered",
            EventKind::DrillFailed => "drill-failed",
            EventKind::ErasureDue => "erasure-due",
            EventKind::ErasureOverdue => "erasure-overdue",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown event {s:?}: {}",
                    EventKind::ALL.map(EventKind::name).join(", ")
                )
            })
    }
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: loopback servers only (a local relay).
    None,
}

/// An e-mail channel.
#[derive(Debug, Clone)]
pub struct EmailSpec {
    /// SMTP server's host name or address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub tls: SmtpTls,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// User name and where its password is.
    pub login: Option<(String, KeySource)>,
}

/// Where a channel sends.
#[derive(Debug, Clone)]
pub enum Via {
    /// A JSON POST with an HMAC-SHA256 signature header.
    Webhook {
        /// The receiver.
        url: url::Url,
        /// Where the signing secret is.
        secret: KeySource,
    },
    /// An e-mail.
    Email(EmailSpec),
}

/// One `[[notify]]` channel.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Its name (in logs).
    pub name: String,
    /// Only this tenant's events; every tenant's when `None`.
    pub tenant: Option<String>,
    /// The events it takes.
    pub events: Vec<EventKind>,
    /// Where it sends.
    pub via: Via,
    /// Retries after a failed delivery.
    pub retries: u32,
    /// First wait before a retry; doubles, up to an hour.
    pub backoff: Duration,
}

/// Longest wait between two delivery attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// True when `host` is a loopback address or `localhost`.
fn loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

/// Exactly one of a file and a variable.
fn secret_source(
    p: &mut Problems,
    key: &str,
    file: Option<&std::path::PathBuf>,
    env: Option<&String>,
    names: (&str, &str),
) -> Option<KeySource> {
    match (file, env) {
        (Some(f), None) => Some(KeySource::PasswordFile(f.clone())),
        (None, Some(v)) => Some(KeySource::Env(v.clone())),
        _ => {
            p.add(
                key,
                format!(
                    "give exactly one of {} and {} (never the secret itself)",
                    names.0, names.1
                ),
            );
            None
        }
    }
}

fn webhook(p: &mut Problems, key: &str, w: &RawWebhook) -> Option<Via> {
    let url = match url::Url::parse(&w.url) {
        Ok(u) => Some(u),
        Err(e) => {
            p.add(
                format!("{key}.url"),
                format!("{:?} is not a URL: {e}", w.url),
            );
            None
        }
    };
    if let Some(u) = &url {
        match u.scheme() {
            "https" => {}
            "http" if u.host_str().is_some_and(loopback_host) => {}
            "http" => p.add(
                format!("{key}.url"),
                format!("{u} would send tenants' events in clear: use https:// (http:// only to a loopback address)"),
            ),
            other => p.add(
                format!("{key}.url"),
                format!("unsupported scheme {other:?}: https:// (or http:// to a loopback address)"),
            ),
        }
    }
    let secret = secret_source(
        p,
        key,
        w.secret_file.as_ref(),
        w.secret_env.as_ref(),
        ("secret_file", "secret_env"),
    );
    Some(Via::Webhook {
        url: url?,
        secret: secret?,
    })
}

fn email(p: &mut Problems, key: &str, e: &RawEmail) -> Option<Via> {
    let tls = match e.tls.as_deref().unwrap_or("starttls") {
        "starttls" => Some(SmtpTls::StartTls),
        "tls" => Some(SmtpTls::Tls),
        "none" => Some(SmtpTls::None),
        other => {
            p.add(
                format!("{key}.tls"),
                format!("unknown value {other:?}: starttls, tls or none"),
            );
            None
        }
    };
    // host, host:port, [v6]:port
    let (host, port) = match e.smtp.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => {
            match port.parse::<u16>() {
                Ok(n) if n > 0 => (h.to_string(), Some(n)),
                _ => {
                    p.add(
                        format!("{key}.smtp"),
                        format!("bad port {port:?} in {:?}", e.smtp),
                    );
                    (h.to_string(), None)
                }
            }
        }
        _ => (e.smtp.clone(), None),
    };
    if host.is_empty() || host.contains('/') {
        p.add(
            format!("{key}.smtp"),
            format!("{:?} is not a host or host:port", e.smtp),
        );
    }
    if tls == Some(SmtpTls::None) && !loopback_host(&host) {
        p.add(
            format!("{key}.tls"),
            format!("{host} is not a loopback address: mail to it would cross the network in clear (use starttls or tls)"),
        );
    }
    for (name, a) in std::iter::once(("from", &e.from)).chain(e.to.iter().map(|t| ("to", t))) {
        if a.parse::<lettre::message::Mailbox>().is_err() {
            p.add(
                format!("{key}.{name}"),
                format!("{a:?} is not an e-mail address"),
            );
        }
    }
    if e.to.is_empty() {
        p.add(format!("{key}.to"), "no recipient");
    }
    let login = match (&e.username, &e.password_file, &e.password_env) {
        (None, None, None) => Some(None),
        (Some(u), f, v) => secret_source(
            p,
            key,
            f.as_ref(),
            v.as_ref(),
            ("password_file", "password_env"),
        )
        .map(|s| Some((u.clone(), s))),
        (None, _, _) => {
            p.add(key, "a password without a username");
            None
        }
    };
    if login.as_ref().is_some_and(Option::is_some) && tls == Some(SmtpTls::None) {
        p.add(format!("{key}.tls"), "a password is never sent without TLS");
    }
    let tls = tls?;
    Some(Via::Email(EmailSpec {
        port: port.unwrap_or(match tls {
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }),
        host,
        tls,
        from: e.from.clone(),
        to: e.to.clone(),
        login: login?,
    }))
}

/// The channels of `raw`, every problem in `p`.
pub(super) fn resolve(
    raw: &[RawNotify],
    tenants: &HashSet<&str>,
    p: &mut Problems,
) -> Vec<Channel> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (i, n) in raw.iter().enumerate() {
        let key = format!("notify[{i}] ({})", n.name);
        if !names.insert(n.name.as_str()) {
            p.add(&key, "duplicate notify name");
        }
        if let Some(t) = &n.tenant {
            if !tenants.contains(t.as_str()) {
                p.add(format!("{key}.tenant"), format!("unknown tenant {t:?}"));
            }
        }
        let events = match &n.events {
            None => EventKind::ALL.to_vec(),
            Some(list) if list.is_empty() => {
                p.add(
                    format!("{key}.events"),
                    "no event: leave the key out for all of them",
                );
                Vec::new()
            }
            Some(list) => list
                .iter()
                .filter_map(|e| match e.parse::<EventKind>() {
                    Ok(k) => Some(k),
                    Err(why) => {
                        p.add(format!("{key}.events"), why);
                        None
                    }
                })
                .collect(),
        };
        let via = match (&n.webhook, &n.email) {
            (Some(w), None) => webhook(p, &format!("{key}.webhook"), w),
            (None, Some(e)) => email(p, &format!("{key}.email"), e),
            _ => {
                p.add(&key, "give exactly one of webhook and email");
                None
            }
        };
        let backoff = p.duration(
            &format!("{key}.retry_backoff"),
            n.retry_backoff.as_deref(),
            "30s",
        );
        if let Some(via) = via {
            out.push(Channel {
                name: n.name.clone(),
                tenant: n.tenant.clone(),
                events,
                via,
                retries: n.retries.unwrap_or(5),
                backoff: backoff.max(Duration::from_secs(1)),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const BASE: &str = r#"
[daemon]
state_dir = "/tmp/custos-state"

[[tenant]]
id = "acme"
password_file = "/etc/custos/keys/acme.pass"
"#;

    fn problems(extra: &str) -> Vec<String> {
        match Config::parse(Path::new("custos.toml"), &format!("{BASE}{extra}")) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .errors
                .into_iter()
                .map(|(k, r)| format!("{k}: {r}"))
                .collect(),
        }
    }

    #[test]
    fn channels_resolve_with_their_defaults() {
        let c = Config::parse(
            Path::new("/etc/custos/custos.toml"),
            &format!(
                "{BASE}{}",
                r#"
[[notify]]
name = "ops"
webhook = { url = "https://hooks.example.eu/custos", secret_file = "keys/hook.secret" }

[[notify]]
name = "acme-mail"
tenant = "acme"
events = ["job-failed", "rpo-breached"]
email = { smtp = "mail.example.eu", from = "custos@example.eu", to = ["ops@acme.example"], username = "custos", password_env = "SMTP_PASSWORD" }
"#
            ),
        )
        .unwrap();
        assert_eq!(c.notify.len(), 2);
        let ops = &c.notify[0];
        assert_eq!(ops.events, super::EventKind::ALL.to_vec());
        assert_eq!((ops.retries, ops.backoff.as_secs()), (5, 30));
        match &ops.via {
            super::Via::Webhook { url, secret } => {
                assert_eq!(url.as_str(), "https://hooks.example.eu/custos");
                assert_eq!(
                    secret,
                    &crate::crypto::keyslot::KeySource::PasswordFile(
                        "/etc/custos/keys/hook.secret".into()
                    )
                );
            }
            other => panic!("{other:?}"),
        }
        match &c.notify[1].via {
            super::Via::Email(e) => {
                assert_eq!((e.host.as_str(), e.port), ("mail.example.eu", 587));
                assert_eq!(e.tls, super::SmtpTls::StartTls);
                assert!(e.login.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(c.secret_variables().contains(&"SMTP_PASSWORD".to_string()));
    }

    #[test]
    fn every_mistake_is_named() {
        let p = problems(
            r#"
[[notify]]
name = "a"
tenant = "nobody"
events = ["job-failed", "disk-full"]
webhook = { url = "http://hooks.example.eu/x", secret_file = "s", secret_env = "S" }

[[notify]]
name = "a"
email = { smtp = "mail.example.eu:99999", tls = "none", from = "not an address", to = [], username = "u", password_file = "p" }

[[notify]]
name = "c"
"#,
        );
        let want = [
            "notify[0] (a).tenant: unknown tenant \"nobody\"",
            "notify[0] (a).events: unknown event \"disk-full\"",
            "notify[0] (a).webhook.url: http://hooks.example.eu/x would send tenants' events in clear",
            "notify[0] (a).webhook: give exactly one of secret_file and secret_env",
            "notify[1] (a): duplicate notify name",
            "notify[1] (a).email.smtp: bad port \"99999\"",
            "notify[1] (a).email.tls: mail.example.eu is not a loopback address",
            "notify[1] (a).email.from: \"not an address\" is not an e-mail address",
            "notify[1] (a).email.to: no recipient",
            "notify[1] (a).email.tls: a password is never sent without TLS",
            "notify[2] (c): give exactly one of webhook and email",
        ];
        for w in want {
            assert!(p.iter().any(|x| x.contains(w)), "{w}\nnot in\n{p:#?}");
        }
        assert_eq!(p.len(), want.len(), "{p:#?}");
    }

    #[test]
    fn plain_transport_is_for_loopback_only() {
        assert!(problems(
            r#"
[[notify]]
name = "local"
webhook = { url = "http://127.0.0.1:9000/hook", secret_env = "HOOK" }

[[notify]]
name = "relay"
email = { smtp = "127.0.0.1:25", tls = "none", from = "custos@localhost", to = ["root@localhost"] }
"#
        )
        .is_empty());
    }
}
