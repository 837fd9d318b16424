//! The overview: every service the caller may see, with its class,
//! policy, RPO state, newest good snapshot, next run and last job;
//! filtered by tenant, class and RPO state.

use axum::extract::State as AxState;
use axum::http::Uri;
use axum::response::Response;
use maud::html;

use super::layout::{self, age, badge, state_badge};
use super::{api_error_page, Form, Viewer};
use crate::daemon::api::App;
use crate::daemon::state::{RpoState, ServiceStatus};

/// The RPO state as a badge, in words.
pub(super) fn rpo_badge(s: &ServiceStatus) -> maud::Markup {
    match s.rpo_state {
        RpoState::InTime => badge("ok", "in time"),
        RpoState::Late => badge("warn", "late"),
        RpoState::Breached => badge("bad", "breached"),
    }
}

/// The RPO state's name in filters and URLs.
fn rpo_key(s: RpoState) -> &'static str {
    match s {
        RpoState::InTime => "in_time",
        RpoState::Late => "late",
        RpoState::Breached => "breached",
    }
}

/// The service's policy in one line: schedule, retention, restore window.
pub(super) fn policy_line(app: &App, s: &ServiceStatus) -> String {
    let retention = super::service::jobs_of(app, &s.tenant, &s.service)
        .map(|j| j.retention.to_string())
        .unwrap_or_default();
    let window = app
        .state
        .service(&s.tenant, &s.service)
        .and_then(|i| i.restore_window)
        .map(|w| {
            format!(
                "; restores within {}",
                crate::duration::HumanDuration::from_secs(w.as_secs())
            )
        })
        .unwrap_or_default();
    format!("{}; {retention}{window}", s.schedule)
}

pub(super) async fn page(AxState(app): AxState<App>, viewer: Viewer, uri: Uri) -> Response {
    let all = match app.state.statuses(&viewer.token.role) {
        Ok(s) => s,
        Err(e) => return api_error_page(e.into()),
    };
    let q = Form::query(&uri);
    let (tenant, class, status) = (q.get("tenant"), q.get("class"), q.get("status"));
    let mut tenants: Vec<&str> = all.iter().map(|s| s.tenant.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut classes: Vec<&str> = all.iter().map(|s| s.class.as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    let shown: Vec<&ServiceStatus> = all
        .iter()
        .filter(|s| tenant.is_none_or(|t| s.tenant == t))
        .filter(|s| class.is_none_or(|c| s.class == c))
        .filter(|s| status.is_none_or(|st| rpo_key(s.rpo_state) == st))
        .collect();
    let count = |st: RpoState| all.iter().filter(|s| s.rpo_state == st).count();
    let body = html! {
        h1 { "Overview" }
        p {
            (all.len()) " services: "
            (badge("ok", &format!("{} in time", count(RpoState::InTime)))) " "
            (badge("warn", &format!("{} late", count(RpoState::Late)))) " "
            (badge("bad", &format!("{} breached", count(RpoState::Breached))))
        }
        form.filters method="get" action="/" aria-label="Filters" {
            @if viewer.sees_all() {
                div {
                    label for="f-tenant" { "Tenant" }
                    select id="f-tenant" name="tenant" {
                        option value="" { "all" }
                        @for t in &tenants {
                            option value=(t) selected[tenant == Some(*t)] { (t) }
                        }
                    }
                }
            }
            div {
                label for="f-class" { "Class" }
                select id="f-class" name="class" {
                    option value="" { "all" }
                    @for c in &classes {
                        option value=(c) selected[class == Some(*c)] { (c) }
                    }
                }
            }
            div {
                label for="f-status" { "RPO" }
                select id="f-status" name="status" {
                    option value="" { "all" }
                    @for (k, label) in [("in_time", "in time"), ("late", "late"), ("breached", "breached")] {
                        option value=(k) selected[status == Some(k)] { (label) }
                    }
                }
            }
            div { button type="submit" { "Filter" } }
        }
        @if shown.is_empty() {
            p.note { "No service matches." }
        } @else {
            div.table-wrap {
                table.cards {
                    caption.muted { (shown.len()) " of " (all.len()) " services" }
                    thead { tr {
                        th scope="col" { "Service" }
                        th scope="col" { "Class" }
                        th scope="col" class="hide-narrow" { "Policy" }
                        th scope="col" { "RPO" }
                        th scope="col" { "Newest good snapshot" }
                        th scope="col" class="hide-narrow" { "Next backup" }
                        th scope="col" { "Last backup" }
                    } }
                    tbody {
                        @for s in &shown {
                            tr {
                                td { a href={ "/services/" (s.tenant) "/" (s.service) } { (s.tenant) "/" (s.service) } }
                                td data-label="Class" { (s.class) }
                                td class="hide-narrow" { (policy_line(&app, s)) }
                                td data-label="RPO" { (rpo_badge(s)) " " span.muted { (age(s.rpo_secs)) } }
                                td data-label="Newest good snapshot" {
                                    @match (&s.last_good_snapshot, s.age_secs) {
                                        (Some(t), Some(a)) => { (layout::when(t)) " " span.muted { "(" (age(a)) " ago)" } }
                                        _ => { span.muted { "none yet" } }
                                    }
                                }
                                td class="hide-narrow" { (s.next_backup.as_deref().map_or_else(|| "—".to_string(), layout::when)) }
                                td data-label="Last backup" {
                                    @match &s.last_backup {
                                        Some(j) => {
                                            (state_badge(j.state.word()))
                                            @if let Some(at) = &j.at { " " span.muted { (layout::when(at)) } }
                                        }
                                        None => { span.muted { "none yet" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&viewer, "/", "Overview", None, body)
}
