//! A small client of the daemon's API for the command line: submit a
//! service-desk restore and follow it to the end, through the API with a
//! token or through the local socket on the daemon's host.

use std::time::Duration;

use super::restores::{RestoreRecord, RestoreRequest, RestoreState};
use crate::{Error, Result};

/// How often a followed restore is polled.
const POLL: Duration = Duration::from_secs(1);

fn client() -> Result<reqwest::Client> {
    http_client(None, Duration::from_secs(30))
}

/// An HTTP client for the daemon's API that trusts, for TLS, the
/// certificates (PEM) in `CUSTOS_CA_FILE` and in `extra` (the daemon's own
/// certificate when the config is at hand).
///
/// # Errors
/// [`Error::Usage`] for a certificate file that does not read or parse.
pub(crate) fn http_client(
    extra: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<reqwest::Client> {
    crate::backend::install_tls_provider();
    let mut b = reqwest::Client::builder().timeout(timeout);
    let env = std::env::var_os("CUSTOS_CA_FILE").map(std::path::PathBuf::from);
    for path in env.iter().map(|p| p.as_path()).chain(extra) {
        let pem = std::fs::read(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::Usage(format!("{}: not PEM certificates: {e}", path.display())))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| Error::Internal(format!("HTTP client: {e}")))
}

async fn call(req: reqwest::RequestBuilder, what: &str) -> Result<RestoreRecord> {
    let resp = req
        .send()
        .await
        .map_err(|e| Error::DaemonUnreachable(format!("{what}: {e}")))?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| Error::Problems(format!("{what}: {e}")))?;
    if status.is_success() {
        return serde_json::from_str(&body)
            .map_err(|e| Error::Problems(format!("{what}: unexpected answer: {e}")));
    }
    let msg = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or(body);
    Err(match status.as_u16() {
        400 | 401 | 403 => Error::Usage(format!("{what}: {msg}")),
        404 => Error::NotFound(msg),
        422 => Error::Refused(msg),
        _ => Error::Problems(format!("{what}: {status}: {msg}")),
    })
}

/// Where the daemon is asked.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    /// Its API at `base` (e.g. `http://127.0.0.1:8420`), with a token.
    Http {
        /// The API's base URL.
        base: &'a str,
        /// The bearer token.
        token: &'a str,
    },
    /// Its local socket, on its host (no token).
    Local(&'a super::local::LocalClient),
}

/// POSTs `body` to (or GETs) `path` on `endpoint`.
async fn ask(
    endpoint: Endpoint<'_>,
    path: &str,
    body: Option<serde_json::Value>,
    what: &str,
) -> Result<RestoreRecord> {
    match endpoint {
        Endpoint::Local(l) => l.call(path, body).await,
        Endpoint::Http { base, token } => {
            let http = client()?;
            let url = format!("{}{path}", base.trim_end_matches('/'));
            let req = match body {
                Some(b) => http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(b.to_string()),
                None => http.get(&url),
            };
            call(req.bearer_auth(token), what).await
        }
    }
}

/// Submits a restore request to the daemon at `endpoint` and follows it
/// until it ends, calling `progress` with each state seen.
///
/// # Errors
/// [`Error::Refused`] outside the restore window, [`Error::NotFound`] for an
/// unknown service or snapshot, [`Error::Usage`] for a bad token or request,
/// [`Error::DaemonUnreachable`] when the daemon does not answer.
pub async fn restore(
    endpoint: Endpoint<'_>,
    tenant: &str,
    service: &str,
    request: &RestoreRequest,
    mut progress: impl FnMut(&RestoreRecord),
) -> Result<RestoreRecord> {
    let body = serde_json::to_value(request)
        .map_err(|e| Error::Internal(format!("cannot encode the request: {e}")))?;
    let mut rec = ask(
        endpoint,
        &format!("/v1/services/{tenant}/{service}/restores"),
        Some(body),
        "restore request",
    )
    .await?;
    progress(&rec);
    while matches!(rec.state, RestoreState::Queued | RestoreState::Running) {
        tokio::time::sleep(POLL).await;
        rec = ask(
            endpoint,
            &format!("/v1/restores/{}", rec.id),
            None,
            "restore status",
        )
        .await?;
        progress(&rec);
    }
    Ok(rec)
}
