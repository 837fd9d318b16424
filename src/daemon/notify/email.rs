//! An e-mail delivery through an SMTP server (`lettre`): STARTTLS (required,
//! not opportunistic), TLS from the first byte, or plain to a loopback
//! relay; a login only over TLS (the config refuses the rest).

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Event, Failure, ATTEMPT_TIMEOUT};
use crate::config::notify::{EmailSpec, SmtpTls};

/// Longest subject line, in characters.
const SUBJECT_CHARS: usize = 150;

/// The subject: the summary, cut to [`SUBJECT_CHARS`].
pub(super) fn subject(e: &Event) -> String {
    let mut s: String = e.summary.chars().take(SUBJECT_CHARS).collect();
    if s.len() < e.summary.len() {
        s.push('…');
    }
    format!("[custos] {s}")
}

/// The plain-text body.
pub(super) fn body(e: &Event) -> String {
    let mut b = format!("{}\n\nEvent:   {}\n", e.summary, e.event);
    if let Some(t) = &e.tenant {
        b.push_str(&format!("Tenant:  {t}\n"));
    }
    if let Some(s) = &e.service {
        b.push_str(&format!("Service: {s}\n"));
    }
    b.push_str(&format!("Time:    {}\nID:      {}\n", e.time, e.id));
    if !e.details.is_null() {
        b.push_str("\nDetails:\n");
        b.push_str(&serde_json::to_string_pretty(&e.details).unwrap_or_default());
        b.push('\n');
    }
    b
}

fn message(spec: &EmailSpec, e: &Event) -> Result<Message, Failure> {
    let bad = |what: &str, err: &dyn std::fmt::Display| {
        Failure::Permanent(format!("cannot write the e-mail ({what}): {err}"))
    };
    let mut m = Message::builder()
        .from(spec.from.parse().map_err(|err| bad("from", &err))?)
        .subject(subject(e))
        .header(ContentType::TEXT_PLAIN);
    for to in &spec.to {
        m = m.to(to.parse().map_err(|err| bad("to", &err))?);
    }
    m.body(body(e)).map_err(|err| bad("body", &err))
}

/// One attempt.
pub(super) async fn send(
    spec: &EmailSpec,
    password: Option<&str>,
    e: &Event,
) -> Result<(), Failure> {
    let msg = message(spec, e)?;
    let server = format!("{}:{}", spec.host, spec.port);
    let builder = match spec.tls {
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&spec.host),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&spec.host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &spec.host,
        )),
    }
    .map_err(|err| Failure::Permanent(format!("SMTP server {server}: {err}")))?;
    let mut builder = builder.port(spec.port).timeout(Some(ATTEMPT_TIMEOUT));
    if let (Some((user, _)), Some(pw)) = (&spec.login, password) {
        builder = builder.credentials(Credentials::new(user.clone(), pw.to_string()));
    }
    match builder.build().send(msg).await {
        Ok(_) => Ok(()),
        Err(err) if err.is_permanent() => Err(Failure::Permanent(format!(
            "SMTP server {server} refused the message: {err}"
        ))),
        Err(err) => Err(Failure::Transient(format!("SMTP server {server}: {err}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::notify::EventKind;

    #[test]
    fn subject_and_body_say_what_happened() {
        let e = Event::new(
            EventKind::RpoBreached,
            Some("acme"),
            Some("db"),
            format!("acme/db: {}", "x".repeat(300)),
            serde_json::json!({"rpo_secs": 93600}),
        );
        let s = subject(&e);
        assert!(s.starts_with("[custos] acme/db: xxx"), "{s}");
        assert!(s.chars().count() <= SUBJECT_CHARS + 10, "{s}");
        let b = body(&e);
        for want in [
            "Event:   rpo-breached",
            "Tenant:  acme",
            "Service: db",
            "\"rpo_secs\": 93600",
            &e.id,
        ] {
            assert!(b.contains(want), "{want} not in {b}");
        }
        let spec = EmailSpec {
            host: "127.0.0.1".into(),
            port: 25,
            tls: SmtpTls::None,
            from: "custos@localhost".into(),
            to: vec!["ops@localhost".into(), "Desk <desk@localhost>".into()],
            login: None,
        };
        let m = String::from_utf8(message(&spec, &e).unwrap().formatted()).unwrap();
        assert!(
            m.contains("To: ops@localhost, Desk <desk@localhost>"),
            "{m}"
        );
    }
}
