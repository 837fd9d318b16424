//! The audit trail: records filtered by tenant and kind (newest first),
//! the chain's state, and for a tenant, who can reach its data: the API
//! tokens that see it, the key slots of its repositories, and the host's
//! own operators.

use std::collections::BTreeSet;

use axum::extract::State as AxState;
use axum::http::Uri;
use axum::response::Response;
use maud::{html, Markup};

use super::layout::{self, badge};
use super::{api_error_page, Form, Viewer};
use crate::config::Role;
use crate::daemon::api::App;

/// Records shown at most.
const SHOWN: usize = 500;

/// The kind of a record: its action up to the first dot (`backup`,
/// `restore`, `erasure`, `console`, ...).
fn kind(action: &str) -> &str {
    action.split('.').next().unwrap_or(action)
}

/// Who can reach `tenant`'s data (operators and auditors only).
async fn access(app: &App, tenant: &str) -> Markup {
    let tokens = app.state.tokens();
    let who: Vec<_> = tokens.iter().filter(|t| t.role.sees(tenant)).collect();
    // The tenant's repositories: one per target its services use.
    let mut repos: Vec<crate::config::RepoAccess> = Vec::new();
    if let Some((_, jobs)) = &app.state.restores {
        let jobs = jobs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for j in jobs.values().filter(|j| j.tenant == tenant) {
            for r in std::iter::once(&j.repo).chain(j.standby.as_ref()) {
                if !repos.iter().any(|x| x.url == r.url) {
                    repos.push(r.clone());
                }
            }
        }
    }
    let mut slots = Vec::new();
    for r in &repos {
        let listed = async { r.open_unindexed().await?.key_slot_infos().await }.await;
        slots.push((r.url.clone(), r.key.clone(), listed));
    }
    html! {
        h2 id="access" { "Who can reach " (tenant) "'s data" }
        h3 { "API tokens" }
        div.table-wrap { table {
            thead { tr { th scope="col" { "Token" } th scope="col" { "Role" } th scope="col" { "May" } } }
            tbody {
                @for t in &who {
                    tr {
                        td { (t.name) }
                        td { @match &t.role { Role::Operator => "operator", Role::Auditor => "auditor", Role::Partner { .. } => "partner" } }
                        td { @match &t.role {
                            Role::Operator => "see and act on every tenant (backups, restores, erasure)",
                            Role::Auditor => "read every tenant, change nothing",
                            Role::Partner { .. } => "see and act on this tenant only",
                        } }
                    }
                }
            }
        } }
        h3 { "Key slots of its repositories" }
        @for (url, key, listed) in &slots {
            p { span.mono { (url) } " — opened with " @match key {
                crate::crypto::keyslot::KeySource::PasswordFile(p) => { "the passphrase in " span.mono { (p.display()) } }
                crate::crypto::keyslot::KeySource::KeyFile(p) => { "the key file " span.mono { (p.display()) } }
                crate::crypto::keyslot::KeySource::Env(v) => { "the passphrase in the variable " span.mono { (v) } }
            } }
            @match listed {
                Ok(list) => {
                    div.table-wrap { table {
                        thead { tr { th scope="col" { "Slot" } th scope="col" { "Kind" } th scope="col" { "Added" } th scope="col" { "By" } th scope="col" { "Fingerprint" } } }
                        tbody { @for s in list {
                            tr {
                                td.mono { (s.id.short()) @if s.current { " " (badge("none", "the daemon's")) } }
                                td { (s.kind) }
                                td { (s.created) }
                                td { (s.username) "@" (s.hostname) }
                                td.mono { (s.fingerprint) }
                            }
                        } }
                    } }
                }
                Err(crate::Error::NoRepository(_)) => { p.muted { "No repository yet (the first backup creates it)." } }
                Err(e) => { p.alert { "Cannot list the key slots: " (e) } }
            }
        }
        @if slots.is_empty() { p.muted { "No repository configured." } }
        h3 { "On the backup host" }
        p { "The daemon's user and root: they read the tenant's key as configured above, and use the local administration socket (" span.mono { "daemon.sock" } ") without a token, as operators. Anyone holding a key slot's passphrase or key file can open the repositories directly." }
    }
}

/// A record's details as `viewer` may see them: partners see no host path.
fn shown_details(viewer: &Viewer, d: &serde_json::Value) -> String {
    if viewer.sees_all() {
        d.to_string()
    } else {
        let mut d = d.clone();
        crate::daemon::redact::redact_paths(&mut d);
        d.to_string()
    }
}

pub(super) async fn page(AxState(app): AxState<App>, viewer: Viewer, uri: Uri) -> Response {
    let Some(log) = app.state.audit.clone() else {
        return api_error_page(crate::daemon::api::ApiError(
            axum::http::StatusCode::NOT_IMPLEMENTED,
            "this daemon keeps no audit log".into(),
        ));
    };
    let q = Form::query(&uri);
    let own = match &viewer.token.role {
        Role::Partner { tenant } => Some(tenant.clone()),
        _ => None,
    };
    let tenant = own.clone().or_else(|| q.get("tenant").map(str::to_string));
    let want_kind = q.get("kind").map(str::to_string);
    let all = match log.read(|r| match &viewer.token.role {
        Role::Partner { tenant: t } => r.tenant.as_deref() == Some(t.as_str()),
        _ => true,
    }) {
        Ok(a) => a,
        Err(e) => return api_error_page(e.into()),
    };
    let tenants: BTreeSet<&str> = all.iter().filter_map(|r| r.tenant.as_deref()).collect();
    let kinds: BTreeSet<&str> = all.iter().map(|r| kind(&r.action)).collect();
    let shown: Vec<_> = all
        .iter()
        .rev()
        .filter(|r| {
            tenant
                .as_deref()
                .is_none_or(|t| r.tenant.as_deref() == Some(t))
        })
        .filter(|r| want_kind.as_deref().is_none_or(|k| kind(&r.action) == k))
        .take(SHOWN)
        .collect();
    let chain = viewer.sees_all().then(|| app.state.chain());
    let access_part = match (&tenant, viewer.sees_all()) {
        (Some(t), true) => Some(access(&app, t).await),
        _ => None,
    };
    let configured: Vec<String> = app
        .state
        .services()
        .iter()
        .map(|s| s.tenant.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let body = html! {
        h1 { "Audit" }
        @if let Some(c) = &chain {
            p role="status" {
                "Audit trail: "
                @if c.ok { (badge("ok", "chain verifies")) } @else { (badge("bad", "chain broken")) }
                " " (c.records) " records"
                @if c.mirrored { ", compared with its mirror" } @else { ", no mirror compared" }
                @if let Some(t) = &c.checked { " (checked " (t) ")" }
            }
            @if !c.problems.is_empty() { p.alert { (layout::lines(&c.problems)) } }
        }
        form.filters method="get" action="/audit" aria-label="Filters" {
            @if own.is_none() {
                div {
                    label for="f-tenant" { "Tenant" }
                    select id="f-tenant" name="tenant" {
                        option value="" { "all" }
                        @for t in configured.iter().map(String::as_str).chain(tenants.iter().copied()).collect::<BTreeSet<_>>() {
                            option value=(t) selected[tenant.as_deref() == Some(t)] { (t) }
                        }
                    }
                }
            }
            div {
                label for="f-kind" { "Kind" }
                select id="f-kind" name="kind" {
                    option value="" { "all" }
                    @for k in &kinds {
                        option value=(k) selected[want_kind.as_deref() == Some(*k)] { (k) }
                    }
                }
            }
            div { button type="submit" { "Filter" } }
        }
        @if let Some(a) = &access_part { (a) }
        @else if viewer.sees_all() { p.muted { "Choose a tenant to see who can reach its data." } }
        h2 { "Records" }
        p.muted { (shown.len()) " shown, newest first" @if shown.len() == SHOWN { " (the newest " (SHOWN) ")" } }
        div.table-wrap { table {
            thead { tr {
                th scope="col" class="num" { "#" }
                th scope="col" { "Time" }
                th scope="col" { "Who" }
                th scope="col" { "What" }
                th scope="col" { "Tenant" }
                th scope="col" class="hide-narrow" { "Details" }
            } }
            tbody { @for r in &shown {
                tr {
                    td.num { (r.seq) }
                    td { (r.time) }
                    td { (r.actor) }
                    td { (r.action) }
                    td { (r.tenant.as_deref().unwrap_or("—")) }
                    td.mono.hide-narrow { (shown_details(&viewer, &r.details)) }
                }
            } }
        } }
    };
    layout::page(&viewer, "/audit", "Audit", None, body)
}
