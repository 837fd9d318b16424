//! One handler per route: the caller (from the extractor), the query, the
//! catalog or the runner, the JSON answer.

use super::auth::{not_found, Caller};
use super::*;
use crate::config::ServiceKey;

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

pub(super) async fn list_services(
    AxState(app): AxState<App>,
    Caller(token): Caller,
) -> ApiResult<Response> {
    Ok(Json(app.state.statuses(&token.role)?).into_response())
}

pub(super) async fn get_service(
    AxState(app): AxState<App>,
    Caller(token): Caller,
    Path((tenant, service)): Path<(String, String)>,
) -> ApiResult<Response> {
    let s = service_for(&app, &token, &tenant, &service, false)?;
    Ok(Json(app.state.status(&s)?).into_response())
}

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackupBody {
    #[serde(default)]
    tags: Vec<String>,
}

pub(super) async fn start_backup(
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
    app.state.audit_required(
        &token.name,
        "backup.requested",
        Some(&tenant),
        serde_json::json!({"service": service, "tags": body.tags}),
    )?;
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
pub(super) struct JobQuery {
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

pub(super) async fn request_restore(
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
    let req: crate::daemon::restores::RestoreRequest = serde_json::from_slice(&body)
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

#[derive(Debug, Deserialize)]
pub(super) struct AuditQuery {
    tenant: Option<String>,
}

pub(super) async fn list_alarms(
    AxState(app): AxState<App>,
    Caller(token): Caller,
) -> ApiResult<Response> {
    let list = app.state.catalog.alarms(|a| token.role.sees(&a.tenant))?;
    Ok(Json(list).into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct AcceptAlarms {
    tenant: String,
}

/// An operator accepts a tenant's repositories as they now are: the alarms
/// go (on record in the audit log), and the next looks compare with the
/// current state.
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
    let head = audit.head();
    Ok(Json(serde_json::json!({"head": head, "records": records})).into_response())
}
