//! One service: its status, its snapshots with tags, pins and the
//! retention decision for each (from the same `forget` the retention job
//! runs, without removing anything), an on-demand backup; and a snapshot's
//! tree, a directory at a time, with paths to choose for a restore.

use std::sync::Arc;

use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use maud::html;

use super::layout::{self, age, badge, bytes, state_badge};
use super::overview::{policy_line, rpo_badge};
use super::{api_error_page, page_error, Action, Form, Viewer};
use crate::config::ServiceKey;
use crate::daemon::api::handlers::{backup_now, service_for};
use crate::daemon::api::{ApiError, App};
use crate::daemon::jobs::ServiceJobs;
use crate::daemon::records::SnapshotEntry;

/// What the daemon runs for `tenant/service`.
pub(super) fn jobs_of(app: &App, tenant: &str, service: &str) -> Option<Arc<ServiceJobs>> {
    let (_, jobs) = app.state.restores.as_ref()?;
    jobs.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&ServiceKey::new(tenant, service))
        .cloned()
}

/// The tags a partner of this class may give an on-demand backup from a
/// list (CaaS: before and after a change); other classes get a free field.
fn suggested_tags(class: &str) -> &'static [&'static str] {
    if class == "caas" {
        &["pre-change", "post-change"]
    } else {
        &[]
    }
}

/// Per snapshot: kept or not, and why; pins with their reason.
struct Retention {
    decisions: std::collections::HashMap<crate::SnapshotId, (bool, String)>,
    pins: std::collections::HashMap<crate::SnapshotId, crate::repository::PinInfo>,
}

/// What the service's retention would decide now, as its job decides it.
async fn retention(svc: &ServiceJobs) -> crate::Result<Retention> {
    use crate::commands::forget;
    let repo = svc.repo.open_unindexed().await?;
    let report = forget::forget(
        &repo,
        &forget::ForgetOptions {
            policy: svc.retention.clone(),
            service: Some(svc.service.clone()),
            tenant: Some(svc.tenant.clone()),
            host: None,
            tags: Vec::new(),
            group_by: "service".parse().map_err(crate::Error::Usage)?,
            dry_run: true,
            now: jiff::Timestamp::now(),
        },
    )
    .await?;
    let decisions = report
        .groups
        .iter()
        .flat_map(|g| g.decisions.iter())
        .map(|d| (d.id, (d.keep, d.explanation())))
        .collect();
    Ok(Retention {
        decisions,
        pins: repo.pin_details().await?,
    })
}

pub(super) async fn page(
    AxState(app): AxState<App>,
    viewer: Viewer,
    Path((tenant, service)): Path<(String, String)>,
) -> Response {
    let info = match service_for(&app, &viewer.token, &tenant, &service, false) {
        Ok(i) => i,
        Err(e) => return api_error_page(e),
    };
    let status = match app.state.status(&info) {
        Ok(s) => s,
        Err(e) => return api_error_page(e.into()),
    };
    let mut snaps = app
        .state
        .catalog
        .snapshots(&ServiceKey::new(&tenant, &service))
        .unwrap_or_default();
    snaps.reverse();
    let decided = match jobs_of(&app, &tenant, &service) {
        Some(svc) if !snaps.is_empty() => Some(retention(&svc).await),
        _ => None,
    };
    let acts = viewer.acts_on(&tenant);
    let tags = suggested_tags(&status.class);
    let body = html! {
        p.breadcrumbs { a href="/" { "Overview" } " › " (tenant) "/" (service) }
        h1 { (tenant) "/" (service) }
        dl.facts {
            dt { "Class" } dd { (status.class) }
            dt { "Policy" } dd { (policy_line(&app, &status)) }
            dt { "RPO" } dd { (rpo_badge(&status)) " " (age(status.rpo_secs)) }
            dt { "Newest good snapshot" } dd {
                @match (&status.last_good_snapshot, status.age_secs) {
                    (Some(t), Some(a)) => { (layout::when(t)) " (" (age(a)) " ago)" }
                    _ => { "none yet" }
                }
            }
            dt { "Next backup" } dd { (status.next_backup.as_deref().map_or_else(|| "—".to_string(), layout::when)) }
            dt { "Target" } dd { (status.target) @if let Some(s) = &status.standby { "; standby " (s) } }
            dt { "Last backup" } dd {
                @match &status.last_backup {
                    Some(j) => {
                        (state_badge(j.state.word()))
                        @if let Some(at) = &j.at { " " (layout::when(at)) }
                        @if let Some(e) = &j.error { br; span.muted { (e) } }
                    }
                    None => { "none yet" }
                }
            }
        }
        @if acts {
            h2 { "Back up now" }
            form method="post" action={ "/services/" (tenant) "/" (service) "/backup" } {
                input type="hidden" name="csrf" value=(viewer.csrf);
                @if tags.is_empty() {
                    label for="tag" { "Tag (optional)" }
                    input type="text" id="tag" name="tag" maxlength="64" pattern="[A-Za-z0-9._:-]+" placeholder="e.g. before-upgrade";
                } @else {
                    label for="tag" { "Tag" }
                    select id="tag" name="tag" {
                        option value="" { "none" }
                        @for t in tags { option value=(t) { (t) } }
                    }
                }
                p { button type="submit" { "Back up now" } }
            }
        }
        h2 { "Snapshots" }
        @if let Some(Err(e)) = &decided {
            p.note { "The retention decisions cannot be shown: " (e) }
        }
        @if snaps.is_empty() {
            p.note { "No snapshot yet." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Time" }
                        th scope="col" { "Snapshot" }
                        th scope="col" { "Tags" }
                        th scope="col" class="num" { "Size" }
                        th scope="col" { "Retention" }
                    } }
                    tbody {
                        @for s in &snaps {
                            (snapshot_row(&tenant, &service, s, decided.as_ref().and_then(|d| d.as_ref().ok())))
                        }
                    }
                }
            }
            @if acts {
                p { a.button href={ "/services/" (tenant) "/" (service) "/restore" } { "Ask for a restore" } }
            }
        }
    };
    layout::page(&viewer, "/", &format!("{tenant}/{service}"), None, body)
}

fn snapshot_row(
    tenant: &str,
    service: &str,
    s: &SnapshotEntry,
    decided: Option<&Retention>,
) -> maud::Markup {
    let pin = decided.and_then(|d| d.pins.get(&s.id));
    let decision = decided.and_then(|d| d.decisions.get(&s.id));
    html! {
        tr {
            td { (layout::when(&s.time)) }
            td.mono { a href={ "/services/" (tenant) "/" (service) "/snapshots/" (s.id.to_hex()) } aria-label={ "browse snapshot " (s.id.short()) } { (s.id.short()) } }
            td {
                @for t in &s.tags { (badge("none", t)) " " }
                @if let Some(p) = pin {
                    (badge("warn", "pinned"))
                    @if !p.reason.is_empty() { " " span.muted { (p.reason) } }
                }
                @if s.partial { " " (badge("warn", "partial")) }
            }
            td.num { (bytes(s.size)) }
            td {
                @match decision {
                    Some((true, why)) => { (badge("ok", "kept")) " " (why) }
                    Some((false, why)) => { (badge("bad", "forgotten at the next retention run")) " " span.muted { (why) } }
                    None => { span.muted { "—" } }
                }
            }
        }
    }
}

pub(super) async fn backup(
    AxState(app): AxState<App>,
    Path((tenant, service)): Path<(String, String)>,
    Action { viewer, form }: Action,
) -> Response {
    let tags = form
        .get("tag")
        .map(|t| vec![t.to_string()])
        .unwrap_or_default();
    match backup_now(&app, &viewer.token, &tenant, &service, tags).await {
        Ok(job) => layout::page(
            &viewer,
            "/",
            "Backup queued",
            None,
            html! {
                p.breadcrumbs { a href="/" { "Overview" } " › " a href={ "/services/" (tenant) "/" (service) } { (tenant) "/" (service) } }
                h1 { "Backup queued" }
                p role="status" { "Job " (job.id) " of " (tenant) "/" (service) " is " (state_badge(job.state.word())) "." }
                p { a href={ "/services/" (tenant) "/" (service) } { "Back to the service" } }
            },
        ),
        Err(e) => api_error_page(e),
    }
}

/// The snapshot `id` (full hex) of `tenant/service`, with the repository
/// to read it from.
async fn open_snapshot(
    app: &App,
    viewer: &Viewer,
    tenant: &str,
    service: &str,
    id: &str,
) -> Result<
    (
        crate::repository::IndexedRepository,
        crate::SnapshotId,
        crate::repofile::snapshot::Snapshot,
    ),
    ApiError,
> {
    service_for(app, &viewer.token, tenant, service, false)?;
    let svc = jobs_of(app, tenant, service)
        .ok_or_else(|| super::super::auth::not_found(tenant, service))?;
    let missing = || {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no snapshot {id} of {tenant}/{service}"),
        )
    };
    let sid: crate::SnapshotId = id.parse().map_err(|_| missing())?;
    let repo = svc.repo.open(false).await?;
    let (snaps, _) = repo.snapshots().await?;
    let (sid, snap) = snaps
        .into_iter()
        .find(|(i, s)| {
            *i == sid
                && s.tenant.as_deref() == Some(tenant)
                && s.service.as_deref() == Some(service)
        })
        .ok_or_else(missing)?;
    Ok((repo, sid, snap))
}

pub(super) async fn tree(
    AxState(app): AxState<App>,
    viewer: Viewer,
    Path((tenant, service, id)): Path<(String, String, String)>,
    uri: Uri,
) -> Response {
    let q = Form::query(&uri);
    let path = q.get("path").unwrap_or("/").to_string();
    if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
        return page_error(
            StatusCode::BAD_REQUEST,
            "Bad path",
            "A path starts with / and has no `..`.",
        );
    }
    let (repo, sid, snap) = match open_snapshot(&app, &viewer, &tenant, &service, &id).await {
        Ok(x) => x,
        Err(e) => return api_error_page(e),
    };
    let at = (path != "/").then_some(path.as_str());
    let entries = match crate::commands::browse::ls(&repo, &snap, at, false).await {
        Ok(e) => e,
        Err(e) => return api_error_page(e.into()),
    };
    // The first entry is the directory itself when a path was given.
    let base = path.trim_end_matches('/');
    let children: Vec<_> = entries
        .iter()
        .filter(|e| e.path != base && e.path.rsplit_once('/').is_some_and(|(p, _)| p == base))
        .collect();
    let acts = viewer.acts_on(&tenant);
    let mut crumbs = vec![("/".to_string(), "/".to_string())];
    let mut acc = String::new();
    for c in base.split('/').filter(|c| !c.is_empty()) {
        acc.push('/');
        acc.push_str(c);
        crumbs.push((acc.clone(), c.to_string()));
    }
    let link = |p: &str| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("path", p)
            .finish();
        format!(
            "/services/{tenant}/{service}/snapshots/{}?{q}",
            sid.to_hex()
        )
    };
    let body = html! {
        p.breadcrumbs { a href="/" { "Overview" } " › " a href={ "/services/" (tenant) "/" (service) } { (tenant) "/" (service) } " › snapshot " span.mono { (sid.short()) } }
        h1 { "Snapshot " span.mono { (sid.short()) } }
        p.muted { (layout::when(&snap.timestamp().to_string())) " · " (snap.summary.files) " files · " (bytes(snap.summary.total_bytes)) }
        nav aria-label="Path" {
            p {
                @for (i, (p, name)) in crumbs.iter().enumerate() {
                    @if i > 1 { " / " } @else if i == 1 { " " }
                    a href=(link(p)) { (name) }
                }
            }
        }
        form method="get" action={ "/services/" (tenant) "/" (service) "/restore" } {
            input type="hidden" name="snapshot" value=(sid.to_hex());
            div.table-wrap {
                table {
                    caption.muted { (children.len()) " entries in " (path) }
                    thead { tr {
                        @if acts { th scope="col" { span.skip { "Choose" } } }
                        th scope="col" { "Name" }
                        th scope="col" { "Kind" }
                        th scope="col" class="num" { "Size" }
                        th scope="col" class="hide-narrow" { "Modified" }
                    } }
                    tbody {
                        @for (i, e) in children.iter().enumerate() {
                            @let name = e.path.rsplit('/').next().unwrap_or(&e.path);
                            tr {
                                @if acts {
                                    td {
                                        input type="checkbox" id={ "p" (i) } name="path" value=(e.path);
                                        label.check for={ "p" (i) } { span.skip { "choose " (e.path) } }
                                    }
                                }
                                td {
                                    @if e.kind == crate::repofile::tree::NodeKind::Dir {
                                        a href=(link(&e.path)) { (name) "/" }
                                    } @else {
                                        (name)
                                        @if let Some(t) = &e.target { span.muted { " → " (t) } }
                                    }
                                }
                                td { (e.mode_string()) }
                                td.num { (bytes(e.size)) }
                                td class="hide-narrow" { (layout::when(&e.mtime)) }
                            }
                        }
                    }
                }
            }
            @if acts {
                p { button type="submit" { "Restore what is chosen" } " " span.muted { "(nothing chosen: the whole snapshot)" } }
            }
        }
    };
    layout::page(
        &viewer,
        "/",
        &format!("Snapshot {}", sid.short()),
        None,
        body,
    )
}
