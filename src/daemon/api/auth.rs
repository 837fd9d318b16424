//! Who is calling: bearer tokens, the failed-attempt throttle, and what a
//! partner may see of an answer.

use super::*;

/// The client's address, when the server recorded it.
pub(super) fn peer(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Refuses addresses with too many recent failed authentications (429),
/// and counts the failures (401 answers).
pub(super) async fn throttle(AxState(app): AxState<App>, req: Request, next: Next) -> Response {
    let ip = peer(&req);
    if let Some(ip) = ip {
        let mut f = app
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.retain(|_, times| {
            while times.front().is_some_and(|t| t.elapsed() > AUTH_WINDOW) {
                times.pop_front();
            }
            !times.is_empty()
        });
        if f.get(&ip).is_some_and(|t| t.len() >= AUTH_FAILURES) {
            return ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed authentications from {ip}: try again in a minute"),
            )
            .into_response();
        }
    }
    let resp = next.run(req).await;
    if let (Some(ip), StatusCode::UNAUTHORIZED) = (ip, resp.status()) {
        app.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(ip)
            .or_default()
            .push_back(Instant::now());
    }
    resp
}

/// What a partner's token gets back: no host path, no global audit head,
/// no internal error text.
pub(super) async fn partner_view(AxState(app): AxState<App>, req: Request, next: Next) -> Response {
    // The API's description names no host path; its own paths stay whole.
    let partner = req.uri().path() != OPENAPI_PATH
        && bearer(req.headers())
            .and_then(|s| app.state.token(s))
            .is_some_and(|t| matches!(t.role, crate::config::Role::Partner { .. }));
    let resp = next.run(req).await;
    if !partner {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot buffer the response".into(),
        )
        .into_response();
    };
    // Internal errors only: 503 (locked) and 507 (no room) say what to do.
    if parts.status == StatusCode::INTERNAL_SERVER_ERROR {
        let reference = blake3::hash(&bytes).to_hex()[..12].to_string();
        tracing::error!(reference = %reference, answer = %String::from_utf8_lossy(&bytes), "internal error answered to a partner");
        return ApiError(
            parts.status,
            format!("internal error (reference {reference}): the service desk can look it up"),
        )
        .into_response();
    }
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let Some(o) = v.as_object_mut() {
        o.remove("head");
    }
    crate::daemon::redact::redact_paths(&mut v);
    let out = serde_json::to_vec(&v).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The authenticated caller of a request: its token, checked by the
/// extractor before the handler runs (an unknown token, a missing one, or
/// a partner's token after its contract ended is answered 401).
pub(super) struct Caller(pub(super) Token);

impl axum::extract::FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &App,
    ) -> Result<Self, Self::Rejection> {
        // Through the local socket the kernel said who called (and the
        // server served only the daemon's user or root): an operator.
        if let Some(peer) = parts.extensions.get::<crate::daemon::local::LocalPeer>() {
            return Ok(Caller(Token {
                name: peer.actor(),
                role: crate::config::Role::Operator,
                hash: blake3::hash(b""),
            }));
        }
        authenticate(app, &parts.headers).map(Caller)
    }
}

pub(super) fn authenticate(app: &App, headers: &HeaderMap) -> ApiResult<Token> {
    let secret = bearer(headers).ok_or_else(|| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "missing bearer token (Authorization: Bearer ...)".into(),
        )
    })?;
    let token = app
        .state
        .token(secret)
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "unknown token".into()))?;
    still_valid(app, token)
}

/// `token` if it still works: a partner's token ends with its contract,
/// from `erasing` on (401).
pub(super) fn still_valid(app: &App, token: Token) -> ApiResult<Token> {
    if let crate::config::Role::Partner { tenant } = &token.role {
        if let Some(e) = app.state.catalog.erasure(tenant)? {
            if e.state.refused() {
                return Err(ApiError(
                    StatusCode::UNAUTHORIZED,
                    format!("token {} no longer works: {}", token.name, e.refusal()),
                ));
            }
        }
    }
    Ok(token)
}

pub(super) fn not_found(tenant: &str, service: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no service {tenant}/{service}"),
    )
}
