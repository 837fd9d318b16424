//! The HTTP API (axum): service desk, partners and auditors.
//!
//! | method and path | who | does |
//! |---|---|---|
//! | `GET /health` | anyone | `ok` |
//! | `GET /metrics` | operator, auditor (partners: 403); or anyone on the separate loopback listener `daemon.metrics_listen` | Prometheus text |
//! | `GET /v1/services` | all roles | status of every service the token may see |
//! | `GET /v1/services/{tenant}/{service}` | all roles | one service's status |
//! | `GET /v1/services/{tenant}/{service}/snapshots` | all roles | the service's snapshots |
//! | `POST /v1/services/{tenant}/{service}/backup` | operator, partner | on-demand backup; body `{"tags": ["pre-change"]}` (optional); 202 with the job; 409 while one is queued or running, or once the tenant's erasure has started |
//! | `GET /v1/jobs[?tenant=&service=&limit=]` | all roles | recent jobs |
//! | `GET /v1/jobs/{id}` | all roles | one job |
//! | `POST /v1/services/{tenant}/{service}/restores` | operator, partner | restore request: `{"ticket": "SD-1", "snapshot": "latest" \| ID \| prefix, "at": RFC 3339, "include": [globs], "exclude": [globs], "verify": true}`; 202 with the request, 422 outside the restore window, 409 once the tenant's erasure has started. A snapshot the daemon has not seen yet (written by the command line or another host) is looked up in the repository before the request is refused. Privileged content (setuid bits, capabilities, device nodes) is never restored |
//! | `GET /v1/restores[?tenant=&service=&limit=]` | all roles | recent restore requests |
//! | `GET /v1/erasures` | operator, auditor (all); partner (its tenant) | end-of-contract erasure states and deadlines |
//! | `GET /v1/audit[?tenant=]` | operator, auditor (all); partner (its tenant) | audit records, oldest first, with the chain's head |
//! | `GET /v1/restores/{id}` | all roles | one request: state (`queued`, `running`, `done`, `failed`), files and bytes so far, errors |
//! | `GET /v1/audit/chain` | operator, auditor | the audit trail's health: `ok`, records, whether the mirror was compared, problems (a cut, edited or diverged log) |
//! | `GET /v1/alarms` | operator, auditor (all); partner (its tenant) | changes in a repository custos did not make: a snapshot deleted without a forget, an older index object put back (rollback detection) |
//! | `POST /v1/alarms/accept` | operator | `{"tenant": "..."}`: accept the tenant's repositories as they now are; removes and returns its alarms (audited) |
//!
//! Authentication: `Authorization: Bearer <token>`. A partner token only ever
//! sees its own tenant: anything of another tenant answers 404, exactly as if
//! it did not exist. Auditors read everything and change nothing (403). A
//! partner token stops working (401) once its tenant's erasure has started.
//!
//! Identical requests (same token, method, path and body) within one second
//! are answered once: the second gets the first's response, and nothing runs
//! twice.
//!
//! Abuse: after [`AUTH_FAILURES`] failed authentications within
//! [`AUTH_WINDOW`] from one address, every request from it answers 429 until
//! the window has passed. A tenant has at most `daemon.restores_per_tenant`
//! restores queued or running (429 with `Retry-After` beyond it), and a
//! restore that would not fit in the free space of the restore root is
//! refused (507). Connections are limited and timed out by `super::http`.
//!
//! What partners see: never a host path (absolute paths in any answer are
//! replaced by `<host path>`), never the audit log's global head, never the
//! text of an internal error (5xx answers carry a reference that the
//! daemon's log explains).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::records::{JobKind, Trigger};
use super::scheduler::Request as JobRequest;
use super::state::{State, Token};
use crate::Error;

/// Identical actions within this window are answered once.
const DEDUP_WINDOW: Duration = Duration::from_secs(1);

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Responses of the last second, by request hash: when, status, body.
type Recent = HashMap<blake3::Hash, (Instant, StatusCode, Bytes)>;

#[derive(Clone)]
struct App {
    state: State,
    recent: Arc<Mutex<Recent>>,
    failures: Arc<Mutex<Failures>>,
}

/// An API error: status and one sentence.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        r
    }
}

/// `Retry-After` of a 429: a restore or a throttled address frees up within
/// about a minute.
const RETRY_AFTER_SECS: &str = "60";

/// Failed authentications from one address before it is throttled.
pub const AUTH_FAILURES: usize = 10;
/// The window they are counted in, and how long the address then waits.
pub const AUTH_WINDOW: Duration = Duration::from_secs(60);

/// Failed authentications per client address (their times).
type Failures = HashMap<std::net::IpAddr, std::collections::VecDeque<Instant>>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Usage(_) => StatusCode::BAD_REQUEST,
            Error::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Locked(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            e if e.is_disk_full() => StatusCode::INSUFFICIENT_STORAGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

/// The router, ready to serve.
pub fn router(state: State) -> Router {
    let app = App {
        state,
        recent: Arc::new(Mutex::new(HashMap::new())),
        failures: Arc::new(Mutex::new(HashMap::new())),
    };
    let v1 = Router::new()
        .route("/v1/services", get(list_services))
        .route("/v1/services/{tenant}/{service}", get(get_service))
        .route(
            "/v1/services/{tenant}/{service}/snapshots",
            get(list_snapshots),
        )
        .route("/v1/services/{tenant}/{service}/backup", post(start_backup))
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route(
            "/v1/services/{tenant}/{service}/restores",
            post(request_restore),
        )
        .route("/v1/restores", get(list_restores))
        .route("/v1/restores/{id}", get(get_restore))
        .route("/v1/audit", get(list_audit))
        .route("/v1/audit/chain", get(audit_chain))
        .route("/v1/alarms", get(list_alarms))
        .route("/v1/alarms/accept", post(accept_alarms))
        .route("/v1/erasures", get(list_erasures))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(app.clone(), answer_once))
        .layer(middleware::from_fn_with_state(app.clone(), partner_view))
        .layer(middleware::from_fn_with_state(app.clone(), throttle));
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .merge(v1)
        .with_state(app)
}

/// `/metrics` alone, without authentication: for the separate listener
/// `daemon.metrics_listen` (loopback only).
pub fn metrics_router(state: State) -> Router {
    let app = App {
        state,
        recent: Arc::new(Mutex::new(HashMap::new())),
        failures: Arc::new(Mutex::new(HashMap::new())),
    };
    Router::new()
        .route("/metrics", get(open_metrics))
        .with_state(app)
}

/// The client's address, when the server recorded it.
fn peer(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Refuses addresses with too many recent failed authentications (429),
/// and counts the failures (401 answers).
async fn throttle(AxState(app): AxState<App>, req: Request, next: Next) -> Response {
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
async fn partner_view(AxState(app): AxState<App>, req: Request, next: Next) -> Response {
    let partner = bearer(req.headers())
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
    redact_paths(&mut v);
    let out = serde_json::to_vec(&v).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(out))
}

/// Replaces every absolute host path in the strings of `v` with `<host path>`.
fn redact_paths(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains('/') => *s = redact_text(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_paths),
        serde_json::Value::Object(o) => o.values_mut().for_each(redact_paths),
        _ => {}
    }
}

/// A text with its absolute paths (a `/` at the start or after a space, a
/// quote, `(`, `=` or `:` followed by a space) replaced. URLs keep their
/// scheme and host (`s3://bucket/...` is not a host path).
fn redact_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    let mut prev: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        let starts = c == '/'
            && prev.is_none_or(|p| p.is_whitespace() || "\"'(=[{,".contains(p))
            && !s[i..].starts_with("//");
        if starts {
            // Up to a space, a closing quote or bracket, or a `:` that ends
            // the path (followed by a space or the end).
            while let Some(&(j, c)) = chars.peek() {
                let colon_ends =
                    c == ':' && s[j + 1..].chars().next().is_none_or(char::is_whitespace);
                if c.is_whitespace() || "\"'),;]}".contains(c) || colon_ends {
                    break;
                }
                chars.next();
            }
            out.push_str("<host path>");
            prev = Some('>');
            continue;
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
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
struct Caller(Token);

impl axum::extract::FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &App,
    ) -> Result<Self, Self::Rejection> {
        authenticate(app, &parts.headers).map(Caller)
    }
}

fn authenticate(app: &App, headers: &HeaderMap) -> ApiResult<Token> {
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
    // A partner's token ends with its contract: from `erasing` on.
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

fn not_found(tenant: &str, service: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no service {tenant}/{service}"),
    )
}

/// Answers identical actions (a double-submitted POST) within
/// [`DEDUP_WINDOW`] once. Reads always go through: a GET right after a
/// change sees it.
async fn answer_once(AxState(app): AxState<App>, req: Request, next: Next) -> Response {
    if matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large".into(),
        )
        .into_response();
    };
    let mut h = blake3::Hasher::new();
    h.update(bearer(&parts.headers).unwrap_or("").as_bytes());
    h.update(b"\0");
    h.update(parts.method.as_str().as_bytes());
    h.update(b"\0");
    h.update(parts.uri.to_string().as_bytes());
    h.update(b"\0");
    h.update(&body);
    let key = h.finalize();
    {
        let mut recent = app
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.retain(|_, (at, _, _)| at.elapsed() < DEDUP_WINDOW);
        if let Some((_, status, bytes)) = recent.get(&key) {
            let mut r = Response::new(Body::from(bytes.clone()));
            *r.status_mut() = *status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut()
                .insert("x-custos-repeated", HeaderValue::from_static("1"));
            return r;
        }
    }
    let resp = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot buffer the response".into(),
        )
        .into_response();
    };
    app.recent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(key, (Instant::now(), parts.status, bytes.clone()));
    Response::from_parts(parts, Body::from(bytes))
}

async fn metrics(AxState(app): AxState<App>, Caller(token): Caller) -> ApiResult<Response> {
    if matches!(token.role, crate::config::Role::Partner { .. }) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "token {} may not read the metrics of every tenant",
                token.name
            ),
        ));
    }
    open_metrics(AxState(app)).await
}

async fn open_metrics(AxState(app): AxState<App>) -> ApiResult<Response> {
    let text = super::metrics::render(&app.state)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn list_services(AxState(app): AxState<App>, Caller(token): Caller) -> ApiResult<Response> {
    Ok(Json(app.state.statuses(&token.role)?).into_response())
}

async fn get_service(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path((tenant, service)): Path<(String, String)>,
) -> ApiResult<Response> {
    let s = service_for(&app, &token, &tenant, &service, false)?;
    Ok(Json(app.state.status(&s)?).into_response())
}

async fn list_snapshots(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path((tenant, service)): Path<(String, String)>,
) -> ApiResult<Response> {
    service_for(&app, &token, &tenant, &service, false)?;
    let mut snaps = app.state.catalog.snapshots(&tenant, &service)?;
    snaps.reverse();
    Ok(Json(snaps).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackupBody {
    #[serde(default)]
    tags: Vec<String>,
}

async fn start_backup(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path((tenant, service)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    service_for(&app, &token, &tenant, &service, true)?;
    let body: BackupBody = if body.is_empty() {
        BackupBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))?
    };
    for t in &body.tags {
        if t.is_empty()
            || t.len() > 64
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("bad tag {t:?}: 1-64 characters of letters, digits, - _ . :"),
            ));
        }
    }
    // Fail closed: no backup is started unless its request is on record.
    app.state
        .audit_required(
            &token.name,
            "backup.requested",
            Some(&tenant),
            serde_json::json!({"service": service, "tags": body.tags}),
        )
        .await?;
    let job = app
        .state
        .runner
        .submit(JobRequest {
            tenant: tenant.clone(),
            service: service.clone(),
            kind: JobKind::Backup,
            trigger: Trigger::OnDemand {
                actor: token.name.clone(),
            },
            tags: body.tags,
            due: None,
        })
        .await?;
    match job {
        Some(job) => {
            app.state.audit(
                &token.name,
                "backup.queued",
                Some(&tenant),
                serde_json::json!({"service": service, "job": job.id, "tags": job.tags}),
            );
            Ok((StatusCode::ACCEPTED, Json(job)).into_response())
        }
        None => Err(ApiError(
            StatusCode::CONFLICT,
            format!("a backup of {tenant}/{service} is already queued or running"),
        )),
    }
}

/// `?tenant=&service=&limit=` of the listing endpoints.
#[derive(Debug, Deserialize)]
struct JobQuery {
    tenant: Option<String>,
    service: Option<String>,
    limit: Option<usize>,
}

impl JobQuery {
    /// At most 1000 rows, 50 by default.
    fn limit(&self) -> usize {
        self.limit.unwrap_or(50).min(1000)
    }

    /// True when `token` may see a record of (tenant, service) and it matches
    /// the query.
    fn allows(&self, token: &Token, tenant: &str, service: &str) -> bool {
        token.role.sees(tenant)
            && self.tenant.as_deref().is_none_or(|t| t == tenant)
            && self.service.as_deref().is_none_or(|s| s == service)
    }
}

/// The service `tenant/service` if `token` may see it (404 otherwise, as if
/// it did not exist) and, with `act`, start work on it (403 for read-only
/// tokens).
fn service_for(
    app: &App,
    token: &Token,
    tenant: &str,
    service: &str,
    act: bool,
) -> ApiResult<super::state::ServiceInfo> {
    if !token.role.sees(tenant) {
        return Err(not_found(tenant, service));
    }
    if act && !token.role.acts_on(tenant) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("token {} is read-only", token.name),
        ));
    }
    // Nothing is started for a tenant being erased or erased (whose
    // services the daemon no longer runs, even while still configured).
    if act {
        if let Some(e) = app.state.catalog.erasure(tenant)? {
            if e.state.refused() {
                return Err(ApiError(StatusCode::CONFLICT, e.refusal()));
            }
        }
    }
    app.state
        .service(tenant, service)
        .ok_or_else(|| not_found(tenant, service))
}

async fn list_jobs(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Query(q): Query<JobQuery>,
) -> ApiResult<Response> {
    let jobs = app
        .state
        .catalog
        .jobs(q.limit(), |j| q.allows(&token, &j.tenant, &j.service))?;
    Ok(Json(jobs).into_response())
}

async fn get_job(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path(id): Path<super::records::JobId>,
) -> ApiResult<Response> {
    let job = app
        .state
        .catalog
        .job(id)?
        .filter(|j| token.role.sees(&j.tenant))
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id}")))?;
    Ok(Json(job).into_response())
}

async fn request_restore(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path((tenant, service)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let info = service_for(&app, &token, &tenant, &service, true)?;
    let Some((desk, jobs)) = &app.state.restores else {
        return Err(ApiError(
            StatusCode::NOT_IMPLEMENTED,
            "this daemon takes no restore requests".into(),
        ));
    };
    let req: super::restores::RestoreRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))?;
    let svc = jobs
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&crate::config::ServiceKey::new(&tenant, &service))
        .cloned()
        .ok_or_else(|| not_found(&tenant, &service))?;
    let window = info
        .restore_window
        .map(|w| crate::duration::HumanDuration::from_secs(w.as_secs()));
    let rec = desk
        .submit(svc, window, req, &token.name, app.state.clock.now())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(rec)).into_response())
}

async fn list_restores(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Query(q): Query<JobQuery>,
) -> ApiResult<Response> {
    let list = app
        .state
        .catalog
        .restores(q.limit(), |r| q.allows(&token, &r.tenant, &r.service))?;
    Ok(Json(list).into_response())
}

async fn get_restore(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path(id): Path<super::records::RestoreId>,
) -> ApiResult<Response> {
    let rec = app
        .state
        .catalog
        .restore(id)?
        .filter(|r| token.role.sees(&r.tenant))
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no restore request {id}")))?;
    Ok(Json(rec).into_response())
}

async fn list_erasures(AxState(app): AxState<App>, Caller(token): Caller) -> ApiResult<Response> {
    let list: Vec<_> = app
        .state
        .catalog
        .erasures()?
        .into_iter()
        .filter(|r| token.role.sees(&r.tenant))
        .collect();
    Ok(Json(list).into_response())
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    tenant: Option<String>,
}

async fn list_alarms(AxState(app): AxState<App>, Caller(token): Caller) -> ApiResult<Response> {
    let list = app.state.catalog.alarms(|a| token.role.sees(&a.tenant))?;
    Ok(Json(list).into_response())
}

#[derive(Debug, Deserialize)]
struct AcceptAlarms {
    tenant: String,
}

/// An operator accepts a tenant's repositories as they now are: the alarms
/// go (on record in the audit log), and the next looks compare with the
/// current state.
async fn accept_alarms(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    if !matches!(token.role, crate::config::Role::Operator) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "token {} may not accept alarms (operators only)",
                token.name
            ),
        ));
    }
    let req: AcceptAlarms = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the body must be {{\"tenant\": \"...\"}}: {e}"),
        )
    })?;
    let pending = app.state.catalog.alarms(|a| a.tenant == req.tenant)?;
    app.state
        .audit_required(
            &token.name,
            "alarms.accepted",
            Some(&req.tenant),
            serde_json::json!({"alarms": pending.iter().map(|a| &a.text).collect::<Vec<_>>()}),
        )
        .await?;
    let accepted = app.state.catalog.accept_alarms(&req.tenant)?;
    Ok(Json(accepted).into_response())
}

async fn audit_chain(AxState(app): AxState<App>, Caller(token): Caller) -> ApiResult<Response> {
    if matches!(token.role, crate::config::Role::Partner { .. }) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "token {} may not read the state of the whole audit trail",
                token.name
            ),
        ));
    }
    Ok(Json(app.state.chain()).into_response())
}

async fn list_audit(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    let Some(audit) = &app.state.audit else {
        return Err(ApiError(
            StatusCode::NOT_IMPLEMENTED,
            "this daemon keeps no audit log".into(),
        ));
    };
    // Reading the whole log is file work: on a blocking thread.
    let (audit, role) = (audit.clone(), token.role.clone());
    let records = tokio::task::spawn_blocking(move || {
        audit
            .read(|r| {
                let tenant = r.tenant.as_deref();
                let visible = match &role {
                    crate::config::Role::Partner { tenant: t } => tenant == Some(t.as_str()),
                    _ => true,
                };
                visible && q.tenant.as_deref().is_none_or(|t| tenant == Some(t))
            })
            .map(|records| (records, audit.head()))
    })
    .await
    .map_err(|e| Error::Internal(format!("reading the audit log stopped: {e}")))?;
    let (records, head) = records?;
    Ok(Json(serde_json::json!({"head": head, "records": records})).into_response())
}

/// Serves the API on `listener` with the default limits and no TLS until
/// `shutdown` turns true.
///
/// # Errors
/// As `super::http::serve`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: State,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> crate::Result<()> {
    serve_with(
        listener,
        state,
        super::http::ServerOptions::default(),
        shutdown,
    )
    .await
}

/// Serves the API on `listener` with `opts` until `shutdown` turns true.
///
/// # Errors
/// As `super::http::serve`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: State,
    opts: super::http::ServerOptions,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> crate::Result<()> {
    super::http::serve(listener, router(state), opts, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::config::Role;
    use crate::daemon::records::SnapshotEntry;
    use crate::daemon::runner::{Executor, JobOutcome, JobSettings, Limits, Runner};
    use crate::daemon::scheduler::TokioClock;
    use crate::daemon::state::ServiceInfo;

    struct Api {
        base: String,
        client: reqwest::Client,
        catalog: Catalog,
        _stop: tokio::sync::watch::Sender<bool>,
    }

    impl Api {
        async fn call(
            &self,
            method: &str,
            path: &str,
            token: Option<&str>,
            body: &str,
        ) -> (u16, serde_json::Value, bool) {
            let mut r = self
                .client
                .request(method.parse().unwrap(), format!("{}{path}", self.base))
                .body(body.to_string());
            if let Some(t) = token {
                r = r.header("authorization", format!("Bearer {t}"));
            }
            let resp = r.send().await.unwrap();
            let status = resp.status().as_u16();
            let repeated = resp.headers().contains_key("x-custos-repeated");
            let text = resp.text().await.unwrap();
            let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
            (status, v, repeated)
        }
    }

    fn service(tenant: &str, name: &str) -> ServiceInfo {
        ServiceInfo {
            tenant: tenant.into(),
            name: name.into(),
            class: "dbaas".into(),
            target: "eu-west".into(),
            standby: None,
            rpo: Duration::from_secs(26 * 3600),
            restore_window: None,
            schedule: None,
            schedule_text: "0 0 1 * * * Europe/Paris".into(),
        }
    }

    async fn start() -> Api {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let catalog = Catalog::temporary().unwrap();
        let (stop, rx) = tokio::sync::watch::channel(false);
        let clock = Arc::new(TokioClock::starting_at(
            "2026-11-22T10:00:00Z".parse().unwrap(),
        ));
        let exec: Executor = Arc::new(|_| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(JobOutcome::default())
            })
        });
        let runner = Runner::new(
            catalog.clone(),
            clock.clone(),
            exec,
            Limits {
                global: 2,
                per_target: HashMap::new(),
            },
            rx.clone(),
        );
        let services = vec![
            service("acme", "db"),
            service("acme", "web"),
            service("globex", "db"),
        ];
        runner.set_services(
            services
                .iter()
                .map(|s| {
                    (
                        crate::config::ServiceKey::new(&s.tenant, &s.name),
                        JobSettings::default(),
                    )
                })
                .collect(),
        );
        catalog
            .put_snapshot(&SnapshotEntry {
                id: "a".repeat(64),
                tenant: "acme".into(),
                service: "db".into(),
                time: "2026-11-22T01:00:00Z".into(),
                tags: vec![],
                size: 10,
                partial: false,
            })
            .unwrap();
        let state = State::new(
            catalog.clone(),
            runner,
            clock,
            services,
            vec![
                Token::new("desk", Role::Operator, "op-secret"),
                Token::new(
                    "acme-portal",
                    Role::Partner {
                        tenant: "acme".into(),
                    },
                    "acme-secret",
                ),
                Token::new("audit", Role::Auditor, "audit-secret"),
            ],
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(serve(listener, state, rx));
        Api {
            base,
            client: reqwest::Client::new(),
            catalog,
            _stop: stop,
        }
    }

    #[tokio::test]
    async fn only_an_operator_accepts_a_tenants_alarms() {
        let api = start().await;
        api.catalog
            .add_alarm("acme", "s3://b/acme", "snapshot 1 is gone")
            .unwrap();
        api.catalog
            .add_alarm("globex", "s3://b/globex", "snapshot 2 is gone")
            .unwrap();
        let body = r#"{"tenant": "acme"}"#;
        for token in ["acme-secret", "audit-secret"] {
            let (s, v, _) = api
                .call("POST", "/v1/alarms/accept", Some(token), body)
                .await;
            assert_eq!(s, 403, "{token}: {v}");
        }
        let (s, v, _) = api
            .call("POST", "/v1/alarms/accept", Some("op-secret"), "{")
            .await;
        assert_eq!(s, 400, "{v}");
        let (s, v, _) = api
            .call("POST", "/v1/alarms/accept", Some("op-secret"), body)
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
        // Read before and after: a read is never answered from the
        // double-submit memory.
        let (_, v, _) = api.call("GET", "/v1/alarms", Some("op-secret"), "").await;
        assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
        api.catalog
            .add_alarm("globex", "s3://b/globex", "snapshot 3 is gone")
            .unwrap();
        let (_, v, _) = api.call("GET", "/v1/alarms", Some("op-secret"), "").await;
        let left: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["tenant"].as_str().unwrap())
            .collect();
        assert_eq!(left, ["globex", "globex"]);
    }

    #[tokio::test]
    async fn a_partner_token_never_sees_another_tenant() {
        let api = start().await;
        let (s, v, _) = api
            .call("GET", "/v1/services", Some("acme-secret"), "")
            .await;
        assert_eq!(s, 200);
        let tenants: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["tenant"].as_str().unwrap())
            .collect();
        assert_eq!(tenants, ["acme", "acme"]);
        for path in [
            "/v1/services/globex/db",
            "/v1/services/globex/db/snapshots",
            "/v1/services/globex/nope",
        ] {
            let (s, v, _) = api.call("GET", path, Some("acme-secret"), "").await;
            assert_eq!(s, 404, "{path}: {v}");
        }
        let (s, _, _) = api
            .call(
                "POST",
                "/v1/services/globex/db/backup",
                Some("acme-secret"),
                "",
            )
            .await;
        assert_eq!(s, 404);
        // A globex job is invisible to acme, listed or by ID.
        let (s, job, _) = api
            .call(
                "POST",
                "/v1/services/globex/db/backup",
                Some("op-secret"),
                "",
            )
            .await;
        assert_eq!(s, 202, "{job}");
        let id = job["id"].as_u64().unwrap();
        let (s, _, _) = api
            .call("GET", &format!("/v1/jobs/{id}"), Some("acme-secret"), "")
            .await;
        assert_eq!(s, 404);
        let (_, jobs, _) = api.call("GET", "/v1/jobs", Some("acme-secret"), "").await;
        assert!(jobs.as_array().unwrap().is_empty(), "{jobs}");
        let (_, jobs, _) = api
            .call("GET", "/v1/jobs?tenant=globex", Some("acme-secret"), "")
            .await;
        assert!(jobs.as_array().unwrap().is_empty(), "{jobs}");
        let (s, _, _) = api
            .call("GET", &format!("/v1/jobs/{id}"), Some("audit-secret"), "")
            .await;
        assert_eq!(s, 200);
    }

    #[tokio::test]
    async fn roles_and_authentication() {
        let api = start().await;
        assert_eq!(api.call("GET", "/v1/services", None, "").await.0, 401);
        assert_eq!(
            api.call("GET", "/v1/services", Some("guess"), "").await.0,
            401
        );
        let (s, v, _) = api
            .call("GET", "/v1/services", Some("audit-secret"), "")
            .await;
        assert_eq!((s, v.as_array().unwrap().len()), (200, 3));
        let (s, v, _) = api
            .call(
                "POST",
                "/v1/services/acme/db/backup",
                Some("audit-secret"),
                "",
            )
            .await;
        assert_eq!(s, 403, "{v}");
        let (s, v, _) = api
            .call(
                "POST",
                "/v1/services/acme/db/backup",
                Some("acme-secret"),
                "{\"tags\": [\"pre-change\"]}",
            )
            .await;
        assert_eq!(s, 202, "{v}");
        assert_eq!(v["tags"][0], "pre-change");
        assert_eq!(v["trigger"]["actor"], "acme-portal");
        let (s, v, _) = api
            .call(
                "POST",
                "/v1/services/acme/web/backup",
                Some("acme-secret"),
                "{\"tags\": [\"bad tag!\"]}",
            )
            .await;
        assert_eq!(s, 400, "{v}");
        let (s, v, _) = api
            .call(
                "POST",
                "/v1/services/acme/web/backup",
                Some("acme-secret"),
                "{\"tagz\": []}",
            )
            .await;
        assert_eq!(s, 400, "{v}");
        let (s, v, _) = api
            .call(
                "GET",
                "/v1/services/acme/db/snapshots",
                Some("acme-secret"),
                "",
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(v[0]["id"], "a".repeat(64));
        let (s, _, _) = api.call("GET", "/health", None, "").await;
        assert_eq!(s, 200);
    }

    #[tokio::test]
    async fn identical_requests_within_a_second_are_answered_once() {
        let api = start().await;
        let body = "{\"tags\": [\"post-change\"]}";
        let (s1, first, rep1) = api
            .call(
                "POST",
                "/v1/services/acme/web/backup",
                Some("acme-secret"),
                body,
            )
            .await;
        let (s2, second, rep2) = api
            .call(
                "POST",
                "/v1/services/acme/web/backup",
                Some("acme-secret"),
                body,
            )
            .await;
        assert_eq!((s1, rep1), (202, false));
        assert_eq!((s2, rep2), (202, true));
        assert_eq!(first, second);
        assert_eq!(api.catalog.jobs(10, |_| true).unwrap().len(), 1, "ran once");
        // After the window (and once the job is done), a new request runs again.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (s3, third, rep3) = api
            .call(
                "POST",
                "/v1/services/acme/web/backup",
                Some("acme-secret"),
                body,
            )
            .await;
        assert_eq!((s3, rep3), (202, false), "{third}");
        assert_ne!(third["id"], first["id"]);
    }

    #[test]
    fn host_paths_are_redacted_and_urls_kept() {
        for (from, to) in [
            (
                "cannot read password file /etc/custos/keys/acme.pass: No such file",
                "cannot read password file <host path>: No such file",
            ),
            (
                "restored to /srv/restores/acme/SD-1-2 (done)",
                "restored to <host path> (done)",
            ),
            ("path=/x/y, then", "path=<host path>, then"),
            ("\"/a b\"", "\"<host path> b\""),
            ("s3://bucket/prefix/acme", "s3://bucket/prefix/acme"),
            ("a/b is relative", "a/b is relative"),
            ("/", "<host path>"),
        ] {
            assert_eq!(redact_text(from), to, "{from}");
        }
        let mut v = serde_json::json!({"head": "h", "n": [{"target": "/srv/x"}], "k": 1});
        redact_paths(&mut v);
        assert_eq!(v["n"][0]["target"], "<host path>");
    }

    #[tokio::test]
    async fn metrics_show_rpo_per_service() {
        let api = start().await;
        // Not to anyone: every tenant is in there.
        let get = |token: Option<&'static str>| {
            let mut r = api.client.get(format!("{}/metrics", api.base));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        assert_eq!(get(None).await.unwrap().status().as_u16(), 401);
        assert_eq!(
            get(Some("acme-secret")).await.unwrap().status().as_u16(),
            403
        );
        assert_eq!(
            get(Some("audit-secret")).await.unwrap().status().as_u16(),
            200
        );
        let resp = get(Some("op-secret")).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let text = resp.text().await.unwrap();
        assert!(text.contains("# TYPE custos_rpo_ok gauge"), "{text}");
        let age: u64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "custos_snapshot_age_seconds{tenant=\"acme\",service=\"db\",class=\"dbaas\"} ",
                )
            })
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (32_400..32_500).contains(&age),
            "9 h after the snapshot: {age}"
        );
        assert!(
            text.contains("custos_rpo_ok{tenant=\"acme\",service=\"db\",class=\"dbaas\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("custos_rpo_ok{tenant=\"globex\",service=\"db\",class=\"dbaas\"} 0"),
            "{text}"
        );
    }
}
