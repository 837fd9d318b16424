//! The web console: the service desk's, partners' and auditors' pages,
//! served by the daemon on the API's listener with the API's tokens and
//! roles.
//!
//! | path | page |
//! |---|---|
//! | `GET /login`, `POST /login`, `POST /logout` | sign in with a token, sign out |
//! | `GET /` | the overview: every service the caller may see, filtered by tenant, class and RPO state |
//! | `GET /services/{tenant}/{service}` | one service: status, snapshots with tags, pins and the retention decision, an on-demand backup |
//! | `GET /services/{tenant}/{service}/snapshots/{id}?path=` | a snapshot's tree, a directory at a time, with paths to choose for a restore |
//! | `GET`, `POST /services/{tenant}/{service}/restore` | the ticketed restore form |
//! | `POST /services/{tenant}/{service}/backup` | an on-demand backup |
//! | `GET /restores`, `GET /restores/{id}` | restore history; one restore's progress, live |
//! | `GET /drills` | DR drills: measured RTO against the objective, with a chart |
//! | `GET /erasures`, `GET /erasures/{tenant}/certificate[.json]` | end-of-contract erasures; the certificate |
//! | `GET /audit` | audit records by tenant and kind, the chain's state, who can reach a tenant's data |
//!
//! **Sessions.** Signing in with a token gives a session cookie
//! (`custos_session`: random, `HttpOnly`, `SameSite=Strict`, `Secure` when
//! the listener speaks TLS, `Path=/`, expiring after
//! [`SESSION_LIFETIME`]); the daemon keeps only the session's token hash,
//! so a token removed on reload, or a partner's once its erasure has
//! started, ends its sessions at their next request. Failed sign-ins count
//! towards the API's per-address throttle. Sessions live in memory: a
//! restart signs everyone out.
//!
//! **Actions.** Every `POST` but the sign-in carries the session's CSRF
//! token (a hidden field), compared in constant time; a request a browser
//! marks as cross-site (`Sec-Fetch-Site`) or whose `Origin` is not this
//! host is refused before that. Actions go through the same checks as the
//! API's (roles, tenant scope, restore windows, erasures), through the
//! same functions.
//!
//! **Pages.** Server-side HTML (`maud`), one stylesheet, no script: a
//! running restore's page reloads itself every two seconds. Charts are SVG
//! drawn on the server. Nothing is fetched from elsewhere; the
//! `Content-Security-Policy` allows this host's stylesheet and nothing else.

mod audit;
mod drills;
mod erasures;
mod layout;
mod overview;
mod restores;
mod service;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};

use super::{ApiError, App};
use crate::config::Role;
use crate::daemon::state::Token;

/// How long a session lasts after sign-in.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// Sessions at once; beyond, the oldest goes.
const MAX_SESSIONS: usize = 10_000;

/// The session cookie's name.
const COOKIE: &str = "custos_session";

/// One signed-in browser.
#[derive(Debug, Clone)]
pub(super) struct Session {
    /// The token it signed in with (its hash: the secret is not kept).
    token: blake3::Hash,
    /// The CSRF token of its forms.
    csrf: String,
    /// When it ends.
    expires: Instant,
}

/// Sessions by the BLAKE3 of their cookie value.
pub(super) type Sessions = Arc<Mutex<HashMap<blake3::Hash, Session>>>;

fn sessions(app: &App) -> std::sync::MutexGuard<'_, HashMap<blake3::Hash, Session>> {
    app.sessions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The signed-in caller of a console page.
#[derive(Debug, Clone)]
pub(super) struct Viewer {
    /// Its token (name and role).
    pub(super) token: Token,
    /// Its session's CSRF token, for the forms of the page.
    pub(super) csrf: String,
    /// Its session's key (to end it).
    session: blake3::Hash,
}

impl Viewer {
    /// True when the viewer may start work (operators; partners on their
    /// own tenant).
    pub(super) fn acts_on(&self, tenant: &str) -> bool {
        self.token.role.acts_on(tenant)
    }

    /// True for operators and auditors.
    pub(super) fn sees_all(&self) -> bool {
        !matches!(self.token.role, Role::Partner { .. })
    }

    /// Who, for the page's header.
    pub(super) fn who(&self) -> String {
        match &self.token.role {
            Role::Operator => format!("{} (operator)", self.token.name),
            Role::Auditor => format!("{} (auditor)", self.token.name),
            Role::Partner { tenant } => format!("{} (partner, {tenant})", self.token.name),
        }
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Where an unauthenticated browser is sent.
fn to_login(uri: &axum::http::Uri) -> Response {
    let next = uri
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str);
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    Redirect::to(&format!("/login?{q}")).into_response()
}

impl axum::extract::FromRequestParts<App> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &App,
    ) -> Result<Self, Self::Rejection> {
        let refuse = |parts: &axum::http::request::Parts| {
            if parts.method == axum::http::Method::GET {
                to_login(&parts.uri)
            } else {
                page_error(
                    StatusCode::UNAUTHORIZED,
                    "Signed out",
                    "Your session has ended: sign in again.",
                )
            }
        };
        let Some(value) = cookie_value(&parts.headers) else {
            return Err(refuse(parts));
        };
        let key = blake3::hash(value.as_bytes());
        let session = {
            let mut s = sessions(app);
            match s.get(&key) {
                Some(sess) if sess.expires > Instant::now() => sess.clone(),
                Some(_) => {
                    s.remove(&key);
                    return Err(refuse(parts));
                }
                None => return Err(refuse(parts)),
            }
        };
        // The token as it is now: removed on reload, or a partner's after
        // its contract ended, the session ends with it.
        let token = app
            .state
            .token_by_hash(&session.token)
            .ok_or(())
            .and_then(|t| super::auth::still_valid(app, t).map_err(|_| ()));
        match token {
            Ok(token) => Ok(Viewer {
                token,
                csrf: session.csrf,
                session: key,
            }),
            Err(()) => {
                sessions(app).remove(&key);
                Err(refuse(parts))
            }
        }
    }
}

/// A form's fields (`application/x-www-form-urlencoded`), repeated names
/// kept.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub(super) fn parse(bytes: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The query string of `uri`.
    pub(super) fn query(uri: &axum::http::Uri) -> Form {
        Form::parse(uri.query().unwrap_or("").as_bytes())
    }

    /// The first value of `name`, trimmed; `None` when absent or empty.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// Every non-empty value of `name`.
    pub(super) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// A form posted by a signed-in viewer with the session's CSRF token: what
/// every action takes, so that none can skip the check.
pub(super) struct Action {
    pub(super) viewer: Viewer,
    pub(super) form: Form,
}

impl axum::extract::FromRequest<App> for Action {
    type Rejection = Response;

    async fn from_request(req: Request, app: &App) -> Result<Self, Self::Rejection> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, app).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), app)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = Form::parse(&body);
        match forged(&viewer, &form) {
            Some(refused) => Err(refused),
            None => Ok(Action { viewer, form }),
        }
    }
}

/// The refusal of a forged action (a missing or wrong CSRF token), or
/// `None` when the form is the session's own.
fn forged(viewer: &Viewer, form: &Form) -> Option<Response> {
    let given = form.get("csrf").unwrap_or_default();
    // Constant time: compare hashes (blake3::Hash's equality is).
    if blake3::hash(given.as_bytes()) == blake3::hash(viewer.csrf.as_bytes()) && !given.is_empty() {
        None
    } else {
        Some(page_error(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form did not come from this console (its security token is missing or stale): reload the page and try again.",
        ))
    }
}

/// A page answering `status` with one sentence.
pub(super) fn page_error(status: StatusCode, title: &str, sentence: &str) -> Response {
    let body = layout::bare(
        title,
        html! {
            h1 { (title) }
            p role="alert" { (sentence) }
            p { a href="/" { "Back to the overview" } }
        },
    );
    (status, body).into_response()
}

/// An API error as a page (the same sentence the API answers).
pub(super) fn api_error_page(e: ApiError) -> Response {
    let title = match e.0 {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::UNPROCESSABLE_ENTITY => "Refused",
        StatusCode::CONFLICT => "Not now",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        s if s.is_server_error() => "Error",
        _ => "Cannot do that",
    };
    page_error(e.0, title, &e.1)
}

/// Refuses what a browser says came from another site, and a `POST` whose
/// `Origin` is not this host.
async fn same_origin(req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::POST {
        let h = req.headers();
        let cross = h
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "cross-site" || v == "same-site");
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        let foreign_origin = h
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .filter(|o| *o != "null")
            .is_some_and(|o| {
                let authority = o.split_once("://").map_or(o, |(_, a)| a);
                host.is_none_or(|h| h != authority)
            });
        if cross || foreign_origin {
            return page_error(
                StatusCode::FORBIDDEN,
                "Refused",
                "This request came from another site: the console only takes its own forms.",
            );
        }
    }
    next.run(req).await
}

/// Headers of every console answer: no caching, no framing, no script,
/// nothing from elsewhere.
async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    resp
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        layout::CSS,
    )
        .into_response()
}

async fn login_page(AxState(app): AxState<App>, uri: axum::http::Uri) -> Response {
    let q = Form::query(&uri);
    layout::login(q.get("next").unwrap_or("/"), None, app.secure).into_response()
}

/// A `next` that stays on this site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

async fn login(AxState(app): AxState<App>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let next = safe_next(form.get("next"));
    let token = form
        .get("token")
        .and_then(|s| app.state.token(s))
        .ok_or_else(|| ApiError(StatusCode::UNAUTHORIZED, "unknown token".into()))
        .and_then(|t| super::auth::still_valid(&app, t));
    let token = match token {
        Ok(t) => t,
        Err(e) => {
            let page = layout::login(&next, Some(&e.1), app.secure);
            // 401: counted by the per-address throttle, as the API's are.
            return (StatusCode::UNAUTHORIZED, page).into_response();
        }
    };
    let cookie: [u8; 32] = rand::random();
    let cookie = hex::encode(cookie);
    let csrf: [u8; 32] = rand::random();
    {
        let mut s = sessions(&app);
        let now = Instant::now();
        s.retain(|_, v| v.expires > now);
        if s.len() >= MAX_SESSIONS {
            if let Some(oldest) = s.iter().min_by_key(|(_, v)| v.expires).map(|(k, _)| *k) {
                s.remove(&oldest);
            }
        }
        s.insert(
            blake3::hash(cookie.as_bytes()),
            Session {
                token: token.hash,
                csrf: hex::encode(csrf),
                expires: now + SESSION_LIFETIME,
            },
        );
    }
    app.state.audit(
        &token.name,
        "console.signed_in",
        match &token.role {
            Role::Partner { tenant } => Some(tenant.as_str()),
            _ => None,
        },
        serde_json::json!({}),
    );
    let mut resp = Redirect::to(&next).into_response();
    let set = format!(
        "{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME.as_secs(),
        if app.secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&set) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn logout(AxState(app): AxState<App>, Action { viewer, .. }: Action) -> Response {
    sessions(&app).remove(&viewer.session);
    let mut resp = Redirect::to("/login").into_response();
    let clear = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if app.secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The console's routes.
pub(super) fn routes(app: &App) -> Router<App> {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/console.css", get(stylesheet))
        .route("/services/{tenant}/{service}", get(service::page))
        .route(
            "/services/{tenant}/{service}/snapshots/{id}",
            get(service::tree),
        )
        .route(
            "/services/{tenant}/{service}/backup",
            axum::routing::post(service::backup),
        )
        .route(
            "/services/{tenant}/{service}/restore",
            get(restores::form).post(restores::submit),
        )
        .route("/restores", get(restores::history))
        .route("/restores/{id}", get(restores::detail))
        .route("/drills", get(drills::page))
        .route("/erasures", get(erasures::page))
        .route(
            "/erasures/{tenant}/certificate",
            get(erasures::certificate_html),
        )
        .route(
            "/erasures/{tenant}/certificate.json",
            get(erasures::certificate_json),
        )
        .route("/audit", get(audit::page))
        .layer(axum::middleware::from_fn(headers))
        .layer(axum::middleware::from_fn(same_origin))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            super::auth::throttle,
        ))
}

/// Renders `m` as an HTML answer.
pub(super) fn html_page(m: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        m.into_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/services/acme/db")), "/services/acme/db");
        for bad in [
            "//evil.example/x",
            "https://evil.example",
            "\\\\evil",
            "/\\evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn forms_keep_repeated_fields() {
        let f = Form::parse(b"path=%2Fa&path=%2Fb%20c&ticket=SD-1&empty=");
        assert_eq!(f.all("path"), ["/a", "/b c"]);
        assert_eq!(f.get("ticket"), Some("SD-1"));
        assert_eq!(f.get("empty"), None);
    }
}
