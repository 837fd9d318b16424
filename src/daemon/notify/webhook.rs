//! A webhook delivery: the event as JSON, POSTed with an HMAC-SHA256
//! signature the receiver checks with the shared secret.
//!
//! | header | value |
//! |---|---|
//! | `Content-Type` | `application/json` |
//! | `X-Custos-Event` | the event's name (`job-failed`, ...) |
//! | `X-Custos-Delivery` | the event's ID (the same on every retry) |
//! | `X-Custos-Timestamp` | seconds since 1970 when this attempt was signed |
//! | `X-Custos-Signature` | `sha256=` and the lowercase hex HMAC-SHA256, keyed with the secret, of the timestamp, a `.`, and the body's bytes |
//!
//! Signing the timestamp with the body lets a receiver refuse a replayed
//! request (one whose timestamp is minutes old). Redirects are not
//! followed: a signed request goes to the configured URL only.

use super::{Event, Failure};

/// The signature header's value for `body` sent at `timestamp`.
pub(super) fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex::encode(ctx.sign().as_ref()))
}

/// One attempt.
pub(super) async fn post(
    http: &reqwest::Client,
    url: &url::Url,
    secret: &str,
    e: &Event,
) -> Result<(), Failure> {
    let body = serde_json::to_vec(e)
        .map_err(|err| Failure::Permanent(format!("cannot encode the event: {err}")))?;
    let ts = jiff::Timestamp::now().as_second();
    let resp = http
        .post(url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Custos-Event", e.event.name())
        .header("X-Custos-Delivery", &e.id)
        .header("X-Custos-Timestamp", ts.to_string())
        .header(
            "X-Custos-Signature",
            signature(secret.as_bytes(), ts, &body),
        )
        .body(body)
        .send()
        .await
        .map_err(|err| Failure::Transient(format!("{}: {}", url, error_chain(&err))))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let why = format!("{url} answered {status}");
    if status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        Err(Failure::Transient(why))
    } else {
        Err(Failure::Permanent(why))
    }
}

/// An error with its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // The primitive: RFC 4231, test case 2.
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"Jefe");
        let tag = ring::hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The construction: the timestamp, a dot, the body.
        let sig = signature(b"Jefe", 1_700_000_000, b"{\"a\":1}");
        let expect = ring::hmac::sign(&key, b"1700000000.{\"a\":1}");
        assert_eq!(sig, format!("sha256={}", hex::encode(expect.as_ref())));
        // Any change of timestamp or body changes it.
        assert_ne!(sig, signature(b"Jefe", 1_700_000_001, b"{\"a\":1}"));
        assert_ne!(sig, signature(b"Jefe", 1_700_000_000, b"{\"a\":2}"));
    }

    /// A receiver on 127.0.0.1 answering every request with `status`.
    async fn receiver(status: u16) -> url::Url {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut c, _)) = l.accept().await {
                let mut buf = vec![0u8; 65536];
                let _ = c.read(&mut buf).await;
                let _ = c
                    .write_all(
                        format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            }
        });
        format!("http://127.0.0.1:{port}/hook").parse().unwrap()
    }

    #[tokio::test]
    async fn what_may_pass_is_retried_and_what_will_not_is_not() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let e = Event::new(
            crate::config::notify::EventKind::JobFailed,
            Some("acme"),
            None,
            "x".into(),
            serde_json::Value::Null,
        );
        for (status, transient) in [
            (503, true),
            (429, true),
            (408, true),
            (400, false),
            (404, false),
        ] {
            let url = receiver(status).await;
            match post(&http, &url, "secret", &e).await {
                Err(Failure::Transient(why)) => assert!(transient, "{status}: {why}"),
                Err(Failure::Permanent(why)) => assert!(!transient, "{status}: {why}"),
                Ok(()) => panic!("{status} accepted"),
            }
        }
        assert!(post(&http, &receiver(204).await, "secret", &e)
            .await
            .is_ok());
        // Nobody listening: may pass.
        let closed: url::Url = "http://127.0.0.1:9/hook".parse().unwrap();
        assert!(matches!(
            post(&http, &closed, "secret", &e).await,
            Err(Failure::Transient(_))
        ));
    }
}
