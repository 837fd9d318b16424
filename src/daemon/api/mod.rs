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
//! | `POST /v1/erasures/{tenant}/notice` | operator | notice of the end of the contract: `{"contract": "...", "at": RFC 3339}` (both optional); 201 with the erasure record |
//! | `POST /v1/erasures/{tenant}/execute` | operator | erase now that the notice period is over, or before with `{"now": true, "reason": "..."}` (audited, in the certificate); answers when done with the record and its certificate; 422 before the period ends without `now` |
//! | `POST /v1/catalog/rebuild` | operator | read every service's snapshots from its repository again; `{"services", "snapshots", "problems"}` |
//! | `GET /v1/audit[?tenant=]` | operator, auditor (all); partner (its tenant) | audit records, oldest first, with the chain's head |
//! | `GET /v1/restores/{id}` | all roles | one request: state (`queued`, `running`, `done`, `failed`), files and bytes so far, errors |
//! | `GET /v1/audit/chain` | operator, auditor | the audit trail's health: `ok`, records, whether the mirror was compared, problems (a cut, edited or diverged log) |
//! | `GET /v1/alarms` | operator, auditor (all); partner (its tenant) | changes in a repository custos did not make: a snapshot deleted without a forget, an older index object put back (rollback detection) |
//! | `POST /v1/alarms/accept` | operator | `{"tenant": "..."}`: accept the tenant's repositories as they now are; removes and returns its alarms (audited) |
//!
//! Authentication: `Authorization: Bearer <token>`; on the daemon's local
//! socket (`<state_dir>/daemon.sock`, see `super::local`) none: the kernel
//! names the caller, who must be the daemon's user or root, and is served as
//! an operator. A partner token only ever
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
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::records::{JobKind, Trigger};
use super::scheduler::Request as JobRequest;
use super::state::{State, Token};
use crate::Error;

mod admin;
mod auth;
mod console;
mod dedup;
mod handlers;

use admin::*;
use auth::{partner_view, throttle};
use dedup::answer_once;
use handlers::*;

/// Where the API's OpenAPI description is served.
const OPENAPI_PATH: &str = "/v1/openapi.json";

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
    /// The console's signed-in browsers.
    sessions: console::Sessions,
    /// The listener speaks TLS: the console's cookie is `Secure`.
    secure: bool,
}

impl App {
    fn new(state: State, secure: bool) -> App {
        App {
            state,
            recent: Arc::new(Mutex::new(HashMap::new())),
            failures: Arc::new(Mutex::new(HashMap::new())),
            sessions: Arc::new(Mutex::new(HashMap::new())),
            secure,
        }
    }
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
pub(crate) const AUTH_FAILURES: usize = 10;
/// The window they are counted in, and how long the address then waits.
pub(crate) const AUTH_WINDOW: Duration = Duration::from_secs(60);

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

/// What every error answers: one sentence.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct ErrorBody {
    /// What is wrong, and where it helps, what to do.
    error: String,
}

/// The refusals every route behind a token may answer, for its
/// `#[utoipa::path]` (`responses(..., Refusals)`).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "only described: ApiError gives these answers")]
pub(super) enum Refusals {
    /// 401.
    #[response(
        status = 401,
        description = "no token, an unknown one, or a partner's after its contract ended"
    )]
    Unauthorized(ErrorBody),
    /// 429.
    #[response(
        status = 429,
        description = "too many failed authentications from this address"
    )]
    Throttled(ErrorBody),
    /// 500.
    #[response(
        status = 500,
        description = "an internal error (to partners: a reference the daemon's log explains)"
    )]
    Internal(ErrorBody),
}

/// The OpenAPI description's frame; its paths come from the routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "custos",
        description = "The custos daemon's API: services, jobs, restores, erasures and the audit trail. Every route but /health needs `Authorization: Bearer <token>`; a partner token sees only its own tenant (anything else answers 404), an auditor's changes nothing (403). docs/api.md tells the rest."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "services", description = "status, snapshots, on-demand backups"),
        (name = "jobs", description = "scheduled and on-demand jobs"),
        (name = "restores", description = "ticketed restores"),
        (name = "erasures", description = "end-of-contract erasure"),
        (name = "audit", description = "the audit trail and rollback alarms"),
        (name = "operations", description = "metrics, health, the catalog, this description")
    )
)]
struct ApiDoc;

/// The bearer token scheme every route but `/health` uses.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "the daemon answers", content_type = "text/plain", body = String)))]
async fn health() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses(
        (status = 200, description = "this description (OpenAPI 3.1)", content_type = "application/json"),
        (status = 401, description = "no token, or an unknown one", body = ErrorBody)))]
async fn openapi_json(_caller: auth::Caller) -> Response {
    Json(openapi()).into_response()
}

/// The authenticated routes, each registered from its `#[utoipa::path]`.
fn v1_routes() -> utoipa_axum::router::OpenApiRouter<App> {
    use utoipa::OpenApi as _;
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::<App>::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_services))
        .routes(routes!(get_service))
        .routes(routes!(list_snapshots))
        .routes(routes!(start_backup))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(request_restore))
        .routes(routes!(list_restores))
        .routes(routes!(get_restore))
        .routes(routes!(list_audit))
        .routes(routes!(audit_chain))
        .routes(routes!(list_alarms))
        .routes(routes!(accept_alarms))
        .routes(routes!(list_erasures))
        .routes(routes!(give_notice))
        .routes(routes!(execute_erasure))
        .routes(routes!(rebuild_catalog))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
}

/// The routes anyone may call.
fn open_routes() -> utoipa_axum::router::OpenApiRouter<App> {
    utoipa_axum::router::OpenApiRouter::<App>::new().routes(utoipa_axum::routes!(health))
}

/// The API's OpenAPI description, made from the same routes as the router.
pub(crate) fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = v1_routes().split_for_parts().1;
        doc.merge(open_routes().split_for_parts().1);
        doc
    })
}

/// The router, ready to serve: the API and the web console (`console`);
/// `secure` when the listener speaks TLS.
pub(crate) fn router(state: State, secure: bool) -> Router {
    let app = App::new(state, secure);
    let console = console::routes(&app);
    let v1 = v1_routes()
        .split_for_parts()
        .0
        .layer(middleware::from_fn_with_state(app.clone(), answer_once))
        .layer(middleware::from_fn_with_state(app.clone(), partner_view))
        .layer(middleware::from_fn_with_state(app.clone(), throttle));
    open_routes()
        .split_for_parts()
        .0
        .merge(v1)
        .merge(console)
        .with_state(app)
}

/// `/metrics` alone, without authentication: for the separate listener
/// `daemon.metrics_listen` (loopback only).
pub(crate) fn metrics_router(state: State) -> Router {
    let app = App::new(state, false);
    Router::new()
        .route("/metrics", get(open_metrics))
        .with_state(app)
}

/// Serves the API on `listener` with the default limits and no TLS until
/// `shutdown` turns true.
///
/// # Errors
/// As `super::http::serve`.
#[cfg(test)]
pub(crate) async fn serve(
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
pub(crate) async fn serve_with(
    listener: tokio::net::TcpListener,
    state: State,
    opts: super::http::ServerOptions,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> crate::Result<()> {
    let secure = opts.tls.is_some();
    super::http::serve(listener, router(state, secure), opts, shutdown).await
}

#[cfg(test)]
mod tests;
