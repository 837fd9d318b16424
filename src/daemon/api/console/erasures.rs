//! End-of-contract erasures: state, notice date, start and deadline with
//! the time left; the deletion certificate as a page and as its signed
//! JSON, with the signing key and whether the signature verifies against
//! this daemon's key.

use axum::extract::{Path, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{self, age, badge, bytes};
use super::{api_error_page, Viewer};
use crate::daemon::api::{ApiError, App};
use crate::erasure::certificate::SignedCertificate;
use crate::erasure::{ErasureRecord, ErasureState};

/// Every erasure record `viewer` may see.
fn records(app: &App, viewer: &Viewer) -> Result<Vec<ErasureRecord>, ApiError> {
    let all = match app.state.current_config() {
        Some(cfg) => crate::erasure::status_list(&cfg, &app.state.catalog)?,
        None => app.state.catalog.erasures()?,
    };
    Ok(all
        .into_iter()
        .filter(|r| viewer.token.role.sees(&r.tenant))
        .collect())
}

/// `until` from `now` in words: `in 3 d 4 h`, or `5 h ago`.
fn from_now(until: &str, now: jiff::Timestamp) -> String {
    let Ok(t) = until.parse::<jiff::Timestamp>() else {
        return String::new();
    };
    let secs = t.duration_since(now).as_secs();
    if secs >= 0 {
        format!("in {}", age(secs.unsigned_abs()))
    } else {
        format!("{} ago", age(secs.unsigned_abs()))
    }
}

pub(super) async fn page(AxState(app): AxState<App>, viewer: Viewer) -> Response {
    let list = match records(&app, &viewer) {
        Ok(l) => l,
        Err(e) => return api_error_page(e),
    };
    let now = jiff::Timestamp::now();
    let body = html! {
        h1 { "Erasures" }
        p.muted { "At the end of a contract, notice is given; after the notice period the daemon erases the tenant's data on every target and issues a signed deletion certificate." }
        @if list.is_empty() {
            p.note { "No erasure: no contract has ended." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Tenant" }
                        th scope="col" { "State" }
                        th scope="col" { "Notice given" }
                        th scope="col" { "Erasure starts" }
                        th scope="col" { "Deadline" }
                        th scope="col" { "Certificate" }
                    } }
                    tbody {
                        @for r in &list {
                            tr {
                                td { (r.tenant) @if let Some(c) = &r.contract { br; span.muted { (c) } } }
                                td {
                                    @match r.state {
                                        ErasureState::NoticeGiven => { (badge("warn", "notice given")) }
                                        ErasureState::Erasing => { (badge("warn", "erasing")) }
                                        ErasureState::Erased => { (badge("ok", "erased")) }
                                    }
                                    @if r.overdue(now) { " " (badge("bad", "overdue")) }
                                }
                                td { (r.notice_given) @if !r.notice_by.is_empty() { br; span.muted { "by " (r.notice_by) } } }
                                td {
                                    (r.due)
                                    @if r.state == ErasureState::NoticeGiven { br; strong { (from_now(&r.due, now)) } }
                                    @if let Some(s) = &r.started { br; span.muted { "started " (layout::when(s)) } }
                                }
                                td {
                                    (r.deadline)
                                    @if r.state != ErasureState::Erased { br; strong { (from_now(&r.deadline, now)) } }
                                }
                                td {
                                    @if r.certificate.as_deref().is_some_and(|c| c.ends_with(".json")) {
                                        a href={ "/erasures/" (r.tenant) "/certificate" } { "certificate" }
                                        " · "
                                        a href={ "/erasures/" (r.tenant) "/certificate.json" } { "JSON" }
                                    } @else if let Some(c) = &r.certificate {
                                        span.mono { (c) }
                                    } @else {
                                        span.muted { "when erased" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&viewer, "/erasures", "Erasures", None, body)
}

/// The tenant's certificate file, its text and what it says.
fn certificate(
    app: &App,
    viewer: &Viewer,
    tenant: &str,
) -> Result<(String, SignedCertificate), ApiError> {
    let missing = || {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no deletion certificate for {tenant}"),
        )
    };
    let rec = records(app, viewer)?
        .into_iter()
        .find(|r| r.tenant == tenant)
        .ok_or_else(missing)?;
    let path = rec
        .certificate
        .filter(|c| c.ends_with(".json"))
        .ok_or_else(missing)?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the certificate {path}: {e}"),
        )
    })?;
    let signed: SignedCertificate = serde_json::from_str(&text).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the certificate {path} does not parse: {e}"),
        )
    })?;
    Ok((text, signed))
}

pub(super) async fn certificate_json(
    AxState(app): AxState<App>,
    viewer: Viewer,
    Path(tenant): Path<String>,
) -> Response {
    match certificate(&app, &viewer, &tenant) {
        Ok((text, _)) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"deletion-certificate.json\"",
                ),
            ],
            text,
        )
            .into_response(),
        Err(e) => api_error_page(e),
    }
}

pub(super) async fn certificate_html(
    AxState(app): AxState<App>,
    viewer: Viewer,
    Path(tenant): Path<String>,
) -> Response {
    let (text, signed) = match certificate(&app, &viewer, &tenant) {
        Ok(x) => x,
        Err(e) => return api_error_page(e),
    };
    // Checked against this daemon's key, as a third party checks it with
    // `custos certificate verify`.
    let verdict = app
        .state
        .current_config()
        .and_then(|c| c.certificate_key.clone())
        .map(|k| crate::erasure::certificate::public_key_path(&k))
        .map(|p| {
            crate::erasure::certificate::read_public_key(&p)
                .map_err(|e| e.to_string())
                .and_then(|key| {
                    crate::erasure::certificate::verify(&text, &key).map_err(|e| e.to_string())
                })
        });
    let c = &signed.certificate;
    let body = html! {
        p.breadcrumbs { a href="/erasures" { "Erasures" } " › " (tenant) }
        h1 { "Deletion certificate: " (c.tenant) }
        @match &verdict {
            Some(Ok(_)) => { p role="status" { (badge("ok", "signature verifies")) " with this daemon's certificate key." } }
            Some(Err(e)) => { p.alert role="alert" { "The signature does not verify with this daemon's key: " (e) } }
            None => { p.note { "This daemon has no certificate key configured: the signature was not checked here. Check it with " code { "custos certificate verify" } "." } }
        }
        dl.facts {
            dt { "Contract" } dd { (c.contract.as_deref().unwrap_or("—")) }
            dt { "Notice given" } dd { (c.notice_given) }
            dt { "Erasure started" } dd { (layout::when(&c.erasure_started)) }
            dt { "Completed" } dd { (c.erasure_completed) }
            @if let Some(e) = &c.early_start { dt { "Started early" } dd { (e.reason) } }
            dt { "Verification" } dd { (c.verification) }
            dt { "Issuer" } dd { (c.issuer) }
            dt { "Audit log head" } dd.mono { (c.audit_head) }
            dt { "Signing key (Ed25519)" } dd.mono { (signed.public_key) }
            dt { "Key fingerprint" } dd.mono { (blake3::hash(signed.public_key.as_bytes()).to_hex()[..16]) }
            dt { "Signature" } dd.mono { (signed.signature) }
        }
        h2 { "Targets" }
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Target" }
                    th scope="col" { "Repository" }
                    th scope="col" class="num" { "Objects deleted" }
                    th scope="col" class="num" { "Bytes" }
                    th scope="col" class="num" { "Left after" }
                    th scope="col" { "Store" }
                } }
                tbody {
                    @for t in &c.targets {
                        tr {
                            td { (t.name) }
                            td.mono { (t.url) }
                            td.num { (t.objects_deleted) }
                            td.num { (bytes(t.bytes_deleted)) }
                            td.num { (t.remaining_after) }
                            td { @if let Some(s) = &t.store { (s.store) ": versioning " (s.versioning) ", soft delete " (s.soft_delete) ", object lock " (s.object_lock) "; " (s.versions_deleted) " versions deleted" } @else { "—" } }
                        }
                    }
                }
            }
        }
        h2 { "Key slots destroyed" }
        @if c.destroyed_key_slots.is_empty() { p { "none" } }
        ul { @for k in &c.destroyed_key_slots { li.mono { (k) } } }
        @if let Some(keys) = &c.local_key_material {
            h2 { "Key material on the erasing host" }
            ul { @for k in keys { li { (k.source) " " span.mono { (k.location) } ": " (k.detail) } } }
        }
        @if let Some(h) = &c.host {
            h2 { "Technical data on the erasing host" }
            p { (h.catalog_records_purged) " catalog records removed; " (h.index_caches_removed) " index caches and " (h.restore_and_drill_dirs_removed) " restore or drill directories removed." }
        }
        p { a href={ "/erasures/" (tenant) "/certificate.json" } { "The signed certificate (JSON)" } }
    };
    layout::page(&viewer, "/erasures", "Deletion certificate", None, body)
}
