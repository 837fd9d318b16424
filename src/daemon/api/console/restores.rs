//! Ticketed restores: the form (a snapshot or a point in time, paths chosen
//! in the tree), refused with the restore window's sentence when out of
//! window; the history; one restore's progress, reloading itself while it
//! runs.

use axum::extract::{Path, State as AxState};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::layout::{self, bytes, lines, state_badge};
use super::{api_error_page, Action, Form, Viewer};
use crate::config::ServiceKey;
use crate::daemon::api::handlers::{restore_now, service_for};
use crate::daemon::api::{ApiError, App};
use crate::daemon::records::RestoreId;
use crate::daemon::restores::{RestoreRecord, RestoreRequest, RestoreState};

/// What the form shows: the values given so far and why the last try was
/// refused.
#[derive(Default)]
struct Filled {
    ticket: String,
    snapshot: String,
    at: String,
    paths: Vec<String>,
    verify: bool,
    error: Option<String>,
}

fn render_form(
    app: &App,
    viewer: &Viewer,
    tenant: &str,
    service: &str,
    f: &Filled,
    status: StatusCode,
) -> Response {
    let mut snaps = app
        .state
        .catalog
        .snapshots(&ServiceKey::new(tenant, service))
        .unwrap_or_default();
    snaps.reverse();
    let window = app
        .state
        .service(tenant, service)
        .and_then(|i| i.restore_window)
        .map(|w| crate::duration::HumanDuration::from_secs(w.as_secs()).to_string());
    let body = html! {
        p.breadcrumbs { a href="/" { "Overview" } " › " a href={ "/services/" (tenant) "/" (service) } { (tenant) "/" (service) } " › restore" }
        h1 { "Restore from " (tenant) "/" (service) }
        @if let Some(e) = &f.error {
            p.alert role="alert" id="refusal" { (e) }
        }
        @if let Some(w) = &window {
            p.note { "Restores reach back " (w) " (this service's restore window)." }
        }
        form method="post" action={ "/services/" (tenant) "/" (service) "/restore" } {
            input type="hidden" name="csrf" value=(viewer.csrf);
            label for="ticket" { "Ticket" }
            input type="text" id="ticket" name="ticket" required maxlength="64" pattern="[A-Za-z0-9._-]+" value=(f.ticket) placeholder="SD-1234";
            fieldset {
                legend { "What to restore from" }
                label for="snapshot" { "Snapshot" }
                select id="snapshot" name="snapshot" {
                    option value="latest" selected[f.snapshot.is_empty() || f.snapshot == "latest"] { "the newest" }
                    @for s in &snaps {
                        @let hex = s.id.to_hex();
                        option value=(hex) selected[f.snapshot == hex] { (layout::when(&s.time)) " — " (s.id.short()) @if !s.tags.is_empty() { " (" (s.tags.join(", ")) ")" } }
                    }
                }
                label for="at" { "Or the newest snapshot at or before (UTC)" }
                input type="datetime-local" id="at" name="at" value=(f.at);
            }
            label for="paths" { "Paths (one per line; none: everything)" }
            textarea id="paths" name="paths" { (f.paths.join("\n")) }
            p {
                input type="checkbox" id="verify" name="verify" value="1" checked[f.verify];
                " "
                label.check for="verify" { "Read everything back after writing" }
            }
            p { button type="submit" { "Ask for the restore" } }
        }
    };
    let mut r = layout::page(viewer, "/restores", "Restore", None, body);
    *r.status_mut() = status;
    r
}

pub(super) async fn form(
    AxState(app): AxState<App>,
    viewer: Viewer,
    Path((tenant, service)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    if let Err(e) = service_for(&app, &viewer.token, &tenant, &service, true) {
        return api_error_page(e);
    }
    let q = Form::query(&uri);
    let filled = Filled {
        snapshot: q.get("snapshot").unwrap_or("latest").to_string(),
        paths: q.all("path").into_iter().map(str::to_string).collect(),
        verify: true,
        ..Filled::default()
    };
    render_form(&app, &viewer, &tenant, &service, &filled, StatusCode::OK)
}

/// A `datetime-local` value (`2026-12-04T10:30`, seconds optional) as
/// RFC 3339 in UTC; an RFC 3339 time as it is.
fn at_utc(v: &str) -> Result<String, String> {
    if let Ok(t) = v.parse::<jiff::Timestamp>() {
        return Ok(t.to_string());
    }
    v.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp().to_string())
        .ok_or_else(|| format!("{v:?} is not a date and time"))
}

pub(super) async fn submit(
    AxState(app): AxState<App>,
    Path((tenant, service)): Path<(String, String)>,
    Action { viewer, form }: Action,
) -> Response {
    let mut filled = Filled {
        ticket: form.get("ticket").unwrap_or_default().to_string(),
        snapshot: form.get("snapshot").unwrap_or("latest").to_string(),
        at: form.get("at").unwrap_or_default().to_string(),
        paths: form
            .get("paths")
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        verify: form.get("verify").is_some(),
        error: None,
    };
    let at = match (filled.at.is_empty(), at_utc(&filled.at)) {
        (true, _) => None,
        (false, Ok(t)) => Some(t),
        (false, Err(e)) => {
            filled.error = Some(e);
            return render_form(
                &app,
                &viewer,
                &tenant,
                &service,
                &filled,
                StatusCode::BAD_REQUEST,
            );
        }
    };
    let req = RestoreRequest {
        ticket: filled.ticket.clone(),
        // A time given wins over the snapshot list's default.
        snapshot: if at.is_some() && filled.snapshot == "latest" {
            None
        } else {
            Some(filled.snapshot.clone())
        },
        at,
        include: Vec::new(),
        // Paths as chosen, not patterns: a name with `*` or `[` means itself.
        paths: filled.paths.clone(),
        exclude: Vec::new(),
        verify: filled.verify,
    };
    match restore_now(&app, &viewer.token, &tenant, &service, req).await {
        Ok(rec) => Redirect::to(&format!("/restores/{}", rec.id)).into_response(),
        Err(ApiError(status, sentence)) => {
            filled.error = Some(sentence);
            render_form(&app, &viewer, &tenant, &service, &filled, status)
        }
    }
}

/// Where a restore's files are, as `viewer` may see it: partners never see
/// a host path.
fn target_for(viewer: &Viewer, r: &RestoreRecord) -> String {
    let t = r.target.display().to_string();
    if viewer.sees_all() {
        t
    } else {
        crate::daemon::redact::redact_text(&t)
    }
}

pub(super) async fn history(AxState(app): AxState<App>, viewer: Viewer) -> Response {
    let list = match app
        .state
        .catalog
        .restores(200, |r| viewer.token.role.sees(&r.tenant))
    {
        Ok(l) => l,
        Err(e) => return api_error_page(e.into()),
    };
    let body = html! {
        h1 { "Restores" }
        p.muted { "Ask for a restore from a service's page (Overview › service), or from a snapshot's tree." }
        @if list.is_empty() {
            p.note { "No restore yet." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Request" }
                        th scope="col" { "Ticket" }
                        th scope="col" { "Service" }
                        th scope="col" { "Snapshot" }
                        th scope="col" class="hide-narrow" { "Asked" }
                        th scope="col" { "State" }
                        th scope="col" class="num" { "Files" }
                        th scope="col" class="num" { "Bytes" }
                    } }
                    tbody {
                        @for r in &list {
                            tr {
                                td { a href={ "/restores/" (r.id) } { "#" (r.id) } }
                                td { (r.ticket) }
                                td { (r.tenant) "/" (r.service) }
                                td.mono { (r.snapshot.short()) }
                                td class="hide-narrow" { (r.requested_at) " by " (r.requested_by) }
                                td { (state_badge(r.state.word())) }
                                td.num { (r.files_done) " / " (r.files_total) }
                                td.num { (bytes(r.bytes_done)) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&viewer, "/restores", "Restores", None, body)
}

/// Bytes a second so far.
fn rate(r: &RestoreRecord) -> Option<f64> {
    let secs = if r.state == RestoreState::Running {
        r.started
            .as_deref()?
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|t| jiff::Timestamp::now().duration_since(t).as_secs_f64())?
    } else {
        r.duration_secs
    };
    (secs > 0.0).then(|| r.bytes_done as f64 / secs)
}

pub(super) async fn detail(
    AxState(app): AxState<App>,
    viewer: Viewer,
    Path(id): Path<u64>,
) -> Response {
    let rec = match app.state.catalog.restore(RestoreId(id)) {
        Ok(Some(r)) if viewer.token.role.sees(&r.tenant) => r,
        Ok(_) => {
            return api_error_page(ApiError(
                StatusCode::NOT_FOUND,
                format!("no restore request {id}"),
            ))
        }
        Err(e) => return api_error_page(e.into()),
    };
    let live = matches!(rec.state, RestoreState::Queued | RestoreState::Running);
    let body = html! {
        p.breadcrumbs { a href="/restores" { "Restores" } " › #" (rec.id) }
        h1 { "Restore #" (rec.id) " — " (rec.ticket) }
        p role="status" id="state" { (state_badge(rec.state.word())) @if live { " " span.muted { "(this page reloads every 2 seconds)" } } }
        @if rec.bytes_total > 0 {
            label for="progress" { "Progress" }
            progress id="progress" max=(rec.bytes_total) value=(rec.bytes_done) { (rec.bytes_done * 100 / rec.bytes_total.max(1)) " %" }
        }
        dl.facts {
            dt { "Service" } dd { a href={ "/services/" (rec.tenant) "/" (rec.service) } { (rec.tenant) "/" (rec.service) } }
            dt { "Snapshot" } dd.mono { (rec.snapshot.to_hex()) " (" (rec.snapshot_time) ")" }
            dt { "Asked" } dd { (rec.requested_at) " by " (rec.requested_by) }
            dt { "Files" } dd id="files" { (rec.files_done) " of " (rec.files_total) }
            dt { "Bytes" } dd id="bytes" { (bytes(rec.bytes_done)) " of " (bytes(rec.bytes_total)) }
            dt { "Rate" } dd { @if let Some(r) = rate(&rec) { (bytes(r as u64)) "/s" } @else { "—" } }
            dt { "Started" } dd { (rec.started.as_deref().map_or_else(|| "—".to_owned(), layout::when)) }
            dt { "Finished" } dd { (rec.finished.as_deref().map_or_else(|| "—".to_owned(), layout::when)) }
            dt { "Paths" } dd {
                @if rec.request.include.is_empty() && rec.request.paths.is_empty() { "everything" }
                @else { (lines(&rec.request.paths)) (lines(&rec.request.include)) }
            }
            dt { "Written to" } dd.mono { (target_for(&viewer, &rec)) }
            @if let Some(e) = &rec.expired { dt { "Removed" } dd { (e) } }
        }
        @if !rec.errors.is_empty() {
            h2 { "Problems" }
            p.alert { (lines(&rec.errors)) }
        }
        @if !rec.dropped.is_empty() {
            h2 { "Left out" }
            p.note { "Privileged content is never restored by the service desk: " (rec.dropped.len()) " entries." }
        }
    };
    layout::page(
        &viewer,
        "/restores",
        &format!("Restore #{}", rec.id),
        live.then_some(2),
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::at_utc;

    #[test]
    fn a_local_time_is_taken_as_utc() {
        assert_eq!(at_utc("2026-12-04T10:30").unwrap(), "2026-12-04T10:30:00Z");
        assert_eq!(
            at_utc("2026-12-04T10:30:15").unwrap(),
            "2026-12-04T10:30:15Z"
        );
        assert_eq!(
            at_utc("2026-12-04T10:30:00+01:00").unwrap(),
            "2026-12-04T09:30:00Z"
        );
        assert!(at_utc("yesterday").is_err());
    }
}
