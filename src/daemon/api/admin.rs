//! Operators' acts that change the daemon's own state: end-of-contract
//! notice and erasure, and a rebuild of the snapshot catalog. Through the
//! local socket (`custos erase`, `custos catalog rebuild` on the daemon's
//! host) or with an operator's token; audited with the caller's name.
//!
//! Long work (an erasure, a rebuild) runs on the daemon's runtime as a
//! task of its own: a client that goes away does not stop it half-way.

use super::auth::Caller;
use super::*;
use crate::erasure::ErasureRecord;

fn operator_only(token: &Token, what: &str) -> ApiResult<()> {
    if matches!(token.role, crate::config::Role::Operator) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("token {} may not {what} (operators only)", token.name),
        ))
    }
}

fn config_of(app: &App) -> ApiResult<Arc<crate::config::Config>> {
    app.state.current_config().ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            "this daemon runs without a config file: nothing to erase from".into(),
        )
    })
}

fn audit_of(app: &App) -> ApiResult<crate::audit::AuditLog> {
    app.state.audit.clone().ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            "this daemon keeps no audit log: erasure needs one".into(),
        )
    })
}

fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8], shape: &str) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the body must be {shape}: {e}"),
        )
    })
}

/// Runs `work` on the daemon's runtime and waits for it.
async fn on_daemon_runtime<T: Send + 'static>(
    app: &App,
    work: impl std::future::Future<Output = crate::Result<T>> + Send + 'static,
) -> ApiResult<T> {
    app.state
        .runner
        .runtime()
        .spawn(work)
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the task stopped: {e}"),
            )
        })?
        .map_err(ApiError::from)
}

/// The body of a notice of erasure.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NoticeBody {
    /// Contract reference (quoted in the certificate).
    contract: Option<String>,
    /// When the notice was given (RFC 3339); now by default.
    at: Option<String>,
}

/// `POST /v1/erasures/{tenant}/notice`: the end of the tenant's contract is
/// notified; erasure follows after the notice period.
#[utoipa::path(post, path = "/v1/erasures/{tenant}/notice", tag = "erasures",
    params(("tenant" = String, Path, description = "the tenant's ID")),
    request_body(content = Option<NoticeBody>, description = "optional: contract reference and when notice was given"),
    responses(
        (status = 201, description = "notice recorded; erasure follows after the notice period", body = ErasureRecord),
        (status = 400, description = "a bad body or time, or an unknown tenant", body = ErrorBody),
        (status = 409, description = "the daemon runs without a config file or an audit log", body = ErrorBody),
        (status = 422, description = "notice was already given, or the tenant is erased", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        Refusals))]
pub(super) async fn give_notice(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path(tenant): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    operator_only(&token, "give notice of erasure")?;
    let req: NoticeBody = body(&bytes, r#"{"contract": "...", "at": "RFC 3339"}"#)?;
    let at = match req.at.as_deref() {
        Some(t) => t.parse::<jiff::Timestamp>().map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("at: {t:?} is not an RFC 3339 time: {e}"),
            )
        })?,
        None => jiff::Timestamp::now(),
    };
    let (cfg, audit) = (config_of(&app)?, audit_of(&app)?);
    let rec = crate::erasure::give_notice(
        &cfg,
        &app.state.catalog,
        &audit,
        &tenant,
        req.contract.as_deref(),
        &token.name,
        at,
    )?;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

/// The body of an erasure asked for now.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecuteBody {
    /// Start before the notice period ends.
    #[serde(default)]
    now: bool,
    /// Why (required with `now`; audited and in the certificate).
    reason: Option<String>,
}

/// `POST /v1/erasures/{tenant}/execute`: erases the tenant now (when the
/// notice period is over, or with `now` and a reason) and answers with the
/// finished record and its certificate's path. One erasure at a time.
#[utoipa::path(post, path = "/v1/erasures/{tenant}/execute", tag = "erasures",
    params(("tenant" = String, Path, description = "the tenant's ID")),
    request_body(content = Option<ExecuteBody>, description = "optional: start before the notice period ends, with a reason"),
    responses(
        (status = 200, description = "erased: the finished record, with its certificate", body = ErasureRecord),
        (status = 400, description = "an early erasure without a reason", body = ErrorBody),
        (status = 409, description = "the daemon runs without a config file or an audit log", body = ErrorBody),
        (status = 422, description = "no notice was given, the notice period is not over, or no signing key is configured", body = ErrorBody),
        (status = 503, description = "a repository of the tenant is locked: try again later", body = ErrorBody),
        (status = 507, description = "no room to write the certificate", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        Refusals))]
pub(super) async fn execute_erasure(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path(tenant): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    operator_only(&token, "erase a tenant")?;
    let req: ExecuteBody = body(&bytes, r#"{"now": true, "reason": "..."}"#)?;
    let early = match (req.now, req.reason) {
        (true, Some(r)) if !r.trim().is_empty() => Some(r),
        (true, _) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "an early erasure needs a reason".into(),
            ))
        }
        (false, _) => None,
    };
    let (cfg, audit) = (config_of(&app)?, audit_of(&app)?);
    let (catalog, lock, by) = (
        app.state.catalog.clone(),
        app.state.erasing.clone(),
        token.name.clone(),
    );
    let rec = on_daemon_runtime(&app, async move {
        let _one_at_a_time = lock.lock().await;
        crate::erasure::execute(
            &cfg,
            &catalog,
            &audit,
            &tenant,
            &by,
            early.as_deref(),
            jiff::Timestamp::now(),
        )
        .await
    })
    .await?;
    Ok(Json(rec).into_response())
}

/// `POST /v1/catalog/rebuild`: reads every service's snapshots from its
/// repository again.
#[utoipa::path(post, path = "/v1/catalog/rebuild", tag = "operations",
    responses(
        (status = 200, description = "every service's snapshots read again", body = crate::daemon::status::Rebuilt),
        (status = 409, description = "this daemon runs no services", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        Refusals))]
pub(super) async fn rebuild_catalog(
    AxState(app): AxState<App>,
    Caller(token): Caller,
) -> ApiResult<Response> {
    operator_only(&token, "rebuild the catalog")?;
    let Some((_, services)) = app.state.restores.clone() else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "this daemon runs no services".into(),
        ));
    };
    let catalog = app.state.catalog.clone();
    let all: Vec<Arc<crate::daemon::jobs::ServiceJobs>> = services
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
        .cloned()
        .collect();
    let done = on_daemon_runtime(&app, async move {
        crate::daemon::status::rebuild_services(&catalog, all.iter().map(|s| s.as_ref())).await
    })
    .await?;
    app.state.audit(
        &token.name,
        "catalog.rebuilt",
        None,
        serde_json::json!({"services": done.services, "snapshots": done.snapshots}),
    );
    Ok(Json(done).into_response())
}
