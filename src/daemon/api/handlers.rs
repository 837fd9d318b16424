//! One handler per route: the caller (from the extractor), the query, the
//! catalog or the runner, the JSON answer.

use super::auth::{not_found, Caller};
use super::*;
use crate::audit::ChainStatus;
use crate::config::ServiceKey;
use crate::daemon::records::{Alarm, JobRecord, SnapshotEntry};
use crate::daemon::restores::{RestoreRecord, RestoreRequest};
use crate::daemon::state::ServiceStatus;
use crate::erasure::ErasureRecord;

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text (version 0.0.4)", content_type = "text/plain", body = String),
        (status = 403, description = "partner tokens", body = ErrorBody),
        Refusals))]
pub(super) async fn metrics(
    AxState(app): AxState<App>,
    Caller(token): Caller,
) -> ApiResult<Response> {
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

pub(super) async fn open_metrics(AxState(app): AxState<App>) -> ApiResult<Response> {
    let text = crate::daemon::metrics::render(&app.state)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

#[utoipa::path(get, path = "/v1/services", tag = "services",
    responses(
        (status = 200, description = "every service the token may see", body = Vec<ServiceStatus>),
        Refusals))]
pub(super) async fn list_services(
    AxState(app): AxState<App>,
    Caller(token): Caller,
) -> ApiResult<Response> {
    Ok(Json(app.state.statuses(&token.role)?).into_response())
}

#[utoipa::path(get, path = "/v1/services/{tenant}/{service}", tag = "services", params(("tenant" = String, Path, description = "the tenant's ID"), ("service" = String, Path, description = "the service's name within its tenant")),
    responses(
        (status = 200, description = "one service's status", body = ServiceStatus),
        (status = 404, description = "no such service, or one of another tenant", body = ErrorBody),
        Refusals))]
pub(super) async fn get_service(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path((tenant, service)): Path<(String, String)>,
) -> ApiResult<Response> {
    let s = service_for(&app, &token, &tenant, &service, false)?;
    Ok(Json(app.state.status(&s)?).into_response())
}

#[utoipa::path(get, path = "/v1/services/{tenant}/{service}/snapshots", tag = "services", params(("tenant" = String, Path, description = "the tenant's ID"), ("service" = String, Path, description = "the service's name within its tenant")),
    responses(
        (status = 200, description = "the service's snapshots, newest first", body = Vec<SnapshotEntry>),
        (status = 404, description = "no such service, or one of another tenant", body = ErrorBody),
        Refusals))]
pub(super) async fn list_snapshots(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path((tenant, service)): Path<(String, String)>,
) -> ApiResult<Response> {
    service_for(&app, &token, &tenant, &service, false)?;
    let mut snaps = app
        .state
        .catalog
        .snapshots(&ServiceKey::new(&tenant, &service))?;
    snaps.reverse();
    Ok(Json(snaps).into_response())
}

/// The body of an on-demand backup.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BackupBody {
    /// Tags for the snapshot: 1-64 letters, digits, `-`, `_`, `.`, `:`.
    #[serde(default)]
    tags: Vec<String>,
}

#[utoipa::path(post, path = "/v1/services/{tenant}/{service}/backup", tag = "services", params(("tenant" = String, Path, description = "the tenant's ID"), ("service" = String, Path, description = "the service's name within its tenant")),
    request_body(content = Option<BackupBody>, description = "optional: tags for the snapshot"),
    responses(
        (status = 202, description = "queued", body = JobRecord),
        (status = 400, description = "a bad body or tag", body = ErrorBody),
        (status = 403, description = "read-only tokens", body = ErrorBody),
        (status = 404, description = "no such service, or one of another tenant", body = ErrorBody),
        (status = 409, description = "a backup of the service is already queued or running, or the tenant's erasure has started", body = ErrorBody),
        Refusals))]
pub(super) async fn start_backup(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path((tenant, service)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: BackupBody = if body.is_empty() {
        BackupBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))?
    };
    let job = backup_now(&app, &token, &tenant, &service, body.tags).await?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

/// Queues an on-demand backup of `tenant/service` for `token` with `tags`
/// (the API's and the console's): scope and role checked, the request
/// audited before it is queued.
///
/// # Errors
/// 404 for a service the token may not see, 403 for read-only tokens,
/// 400 for a bad tag, 409 while one is queued or running or once the
/// tenant's erasure has started.
pub(super) async fn backup_now(
    app: &App,
    token: &Token,
    tenant: &str,
    service: &str,
    tags: Vec<String>,
) -> ApiResult<JobRecord> {
    service_for(app, token, tenant, service, true)?;
    for t in &tags {
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
    app.state.audit_required(
        &token.name,
        "backup.requested",
        Some(tenant),
        serde_json::json!({"service": service, "tags": tags}),
    )?;
    let job = app
        .state
        .runner
        .submit(JobRequest {
            tenant: tenant.to_string(),
            service: service.to_string(),
            kind: JobKind::Backup,
            trigger: Trigger::OnDemand {
                actor: token.name.clone(),
            },
            tags,
            due: None,
        })
        .await?;
    match job {
        Some(job) => {
            app.state.audit(
                &token.name,
                "backup.queued",
                Some(tenant),
                serde_json::json!({"service": service, "job": job.id, "tags": job.tags}),
            );
            Ok(job)
        }
        None => Err(ApiError(
            StatusCode::CONFLICT,
            format!("a backup of {tenant}/{service} is already queued or running"),
        )),
    }
}

/// `?tenant=&service=&limit=` of the listing endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct JobQuery {
    /// Only this tenant's.
    tenant: Option<String>,
    /// Only this service's.
    service: Option<String>,
    /// At most this many (default 50, at most 1000).
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
pub(super) fn service_for(
    app: &App,
    token: &Token,
    tenant: &str,
    service: &str,
    act: bool,
) -> ApiResult<crate::daemon::state::ServiceInfo> {
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

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobQuery),
    responses(
        (status = 200, description = "recent jobs the token may see, newest first", body = Vec<JobRecord>),
        Refusals))]
pub(super) async fn list_jobs(
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

/// One record of a tenant as JSON, when the caller may see that tenant; a
/// record it may not see is answered exactly like a missing one (404,
/// `missing`), so IDs tell a partner nothing about other tenants.
fn visible<T: serde::Serialize>(
    token: &Token,
    record: Option<(&String, &T)>,
    missing: String,
) -> ApiResult<Response> {
    match record {
        Some((tenant, r)) if token.role.sees(tenant) => Ok(Json(r).into_response()),
        _ => Err(ApiError(StatusCode::NOT_FOUND, missing)),
    }
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(("id" = u64, Path, description = "the job's ID")),
    responses(
        (status = 200, description = "one job", body = JobRecord),
        (status = 404, description = "no such job, or one of another tenant", body = ErrorBody),
        Refusals))]
pub(super) async fn get_job(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path(id): Path<crate::daemon::records::JobId>,
) -> ApiResult<Response> {
    let job = app.state.catalog.job(id)?;
    visible(
        &token,
        job.as_ref().map(|j| (&j.tenant, j)),
        format!("no job {id}"),
    )
}

#[utoipa::path(post, path = "/v1/services/{tenant}/{service}/restores", tag = "restores", params(("tenant" = String, Path, description = "the tenant's ID"), ("service" = String, Path, description = "the service's name within its tenant")),
    request_body = RestoreRequest,
    responses(
        (status = 202, description = "queued", body = RestoreRecord),
        (status = 400, description = "a bad body", body = ErrorBody),
        (status = 403, description = "read-only tokens", body = ErrorBody),
        (status = 404, description = "no such service or snapshot", body = ErrorBody),
        (status = 409, description = "the tenant's erasure has started", body = ErrorBody),
        (status = 422, description = "outside the restore window (the sentence names the window and the date)", body = ErrorBody),
        (status = 501, description = "this daemon takes no restore requests", body = ErrorBody),
        (status = 503, description = "the repository is locked (an erasure or a prune holds it): try again later", body = ErrorBody),
        (status = 507, description = "the restore would not fit in the restore root's free space", body = ErrorBody),
        Refusals))]
pub(super) async fn request_restore(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path((tenant, service)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: RestoreRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))?;
    let rec = restore_now(&app, &token, &tenant, &service, req).await?;
    Ok((StatusCode::ACCEPTED, Json(rec)).into_response())
}

/// Queues a ticketed restore of `tenant/service` for `token` (the API's
/// and the console's): scope, role, restore window, per-tenant limit and
/// free space checked by the restore desk.
///
/// # Errors
/// As `POST /v1/services/{tenant}/{service}/restores`.
pub(super) async fn restore_now(
    app: &App,
    token: &Token,
    tenant: &str,
    service: &str,
    req: RestoreRequest,
) -> ApiResult<RestoreRecord> {
    let info = service_for(app, token, tenant, service, true)?;
    let Some((desk, jobs)) = &app.state.restores else {
        return Err(ApiError(
            StatusCode::NOT_IMPLEMENTED,
            "this daemon takes no restore requests".into(),
        ));
    };
    let svc = jobs
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&crate::config::ServiceKey::new(tenant, service))
        .cloned()
        .ok_or_else(|| not_found(tenant, service))?;
    let window = info
        .restore_window
        .map(|w| crate::duration::HumanDuration::from_secs(w.as_secs()));
    Ok(desk
        .submit(svc, window, req, &token.name, app.state.clock.now())
        .await?)
}

#[utoipa::path(get, path = "/v1/restores", tag = "restores", params(JobQuery),
    responses(
        (status = 200, description = "recent restore requests the token may see, newest first", body = Vec<RestoreRecord>),
        Refusals))]
pub(super) async fn list_restores(
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

#[utoipa::path(get, path = "/v1/restores/{id}", tag = "restores", params(("id" = u64, Path, description = "the request's ID")),
    responses(
        (status = 200, description = "one request: state, files and bytes so far, errors", body = RestoreRecord),
        (status = 404, description = "no such request, or one of another tenant", body = ErrorBody),
        Refusals))]
pub(super) async fn get_restore(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path(id): Path<crate::daemon::records::RestoreId>,
) -> ApiResult<Response> {
    let rec = app.state.catalog.restore(id)?;
    visible(
        &token,
        rec.as_ref().map(|r| (&r.tenant, r)),
        format!("no restore request {id}"),
    )
}

#[utoipa::path(get, path = "/v1/erasures", tag = "erasures",
    responses(
        (status = 200, description = "end-of-contract erasures the token may see", body = Vec<ErasureRecord>),
        Refusals))]
pub(super) async fn list_erasures(
    AxState(app): AxState<App>,
    Caller(token): Caller,
) -> ApiResult<Response> {
    let all = match app.state.current_config() {
        Some(cfg) => crate::erasure::status_list(&cfg, &app.state.catalog)?,
        None => app.state.catalog.erasures()?,
    };
    let list: Vec<_> = all
        .into_iter()
        .filter(|r| token.role.sees(&r.tenant))
        .collect();
    Ok(Json(list).into_response())
}

/// `?tenant=` of the audit listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only this tenant's records.
    tenant: Option<String>,
}

/// The audit records, with the chain's head (partners: without it).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct AuditListing {
    /// Hash of the newest record of the whole log.
    head: Option<String>,
    /// The records, oldest first.
    records: Vec<crate::audit::Record>,
}

#[utoipa::path(get, path = "/v1/alarms", tag = "audit",
    responses(
        (status = 200, description = "changes in a repository custos did not make", body = Vec<Alarm>),
        Refusals))]
pub(super) async fn list_alarms(
    AxState(app): AxState<App>,
    Caller(token): Caller,
) -> ApiResult<Response> {
    let list = app.state.catalog.alarms(|a| token.role.sees(&a.tenant))?;
    Ok(Json(list).into_response())
}

/// Which tenant's alarms to accept.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(super) struct AcceptAlarms {
    /// The tenant.
    tenant: String,
}

/// An operator accepts a tenant's repositories as they now are: the alarms
/// go (on record in the audit log), and the next looks compare with the
/// current state.
#[utoipa::path(post, path = "/v1/alarms/accept", tag = "audit", request_body = AcceptAlarms,
    responses(
        (status = 200, description = "the alarms accepted (audited)", body = Vec<Alarm>),
        (status = 400, description = "a bad body", body = ErrorBody),
        (status = 403, description = "not an operator", body = ErrorBody),
        Refusals))]
pub(super) async fn accept_alarms(
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
    app.state.audit_required(
        &token.name,
        "alarms.accepted",
        Some(&req.tenant),
        serde_json::json!({"alarms": pending.iter().map(|a| &a.text).collect::<Vec<_>>()}),
    )?;
    let accepted = app.state.catalog.accept_alarms(&req.tenant)?;
    Ok(Json(accepted).into_response())
}

#[utoipa::path(get, path = "/v1/audit/chain", tag = "audit",
    responses(
        (status = 200, description = "the audit trail's health", body = ChainStatus),
        (status = 403, description = "partner tokens", body = ErrorBody),
        Refusals))]
pub(super) async fn audit_chain(
    AxState(app): AxState<App>,
    Caller(token): Caller,
) -> ApiResult<Response> {
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

#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "audit records the token may see, oldest first, with the chain's head (not for partners)", body = AuditListing),
        (status = 501, description = "this daemon keeps no audit log", body = ErrorBody),
        Refusals))]
pub(super) async fn list_audit(
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
    let records = audit.read(|r| {
        let tenant = r.tenant.as_deref();
        let visible = match &token.role {
            crate::config::Role::Partner { tenant: t } => tenant == Some(t.as_str()),
            _ => true,
        };
        visible && q.tenant.as_deref().is_none_or(|t| tenant == Some(t))
    })?;
    Ok(Json(AuditListing {
        head: Some(audit.head()),
        records,
    })
    .into_response())
}
