//! DR drills: for each service that has them, each drill's measured RTO
//! against the policy's, and a small chart of the measurements over time
//! (SVG, drawn here).

use std::collections::BTreeMap;

use axum::extract::State as AxState;
use axum::response::Response;
use maud::{html, Markup};

use super::layout::{self, badge, state_badge};
use super::{api_error_page, Viewer};
use crate::daemon::api::App;
use crate::daemon::records::{JobKind, JobRecord};

/// Drill records read per page.
const DRILLS_READ: usize = 1000;
/// Points per chart (the newest).
const CHART_POINTS: usize = 30;

/// A measured time: to the millisecond under 10 s.
fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.1} s")
    }
}

/// The chart of `drills` (oldest first): achieved RTO per drill, the
/// objective as a dashed line, missed drills in red. Text alternative in
/// its title and description.
pub(super) fn chart(id: &str, drills: &[&JobRecord]) -> Markup {
    let (w, h, left, bottom, top) = (640.0_f64, 180.0_f64, 48.0_f64, 24.0_f64, 10.0_f64);
    let pts: Vec<(f64, f64, bool)> = drills
        .iter()
        .filter_map(|j| j.rto.map(|r| (r.achieved_secs, r.objective_secs, r.met())))
        .collect();
    if pts.is_empty() {
        return html! { p.muted { "No drill has measured a restore time yet." } };
    }
    let objective = pts.last().map_or(0.0, |p| p.1);
    let max = pts.iter().map(|p| p.0).fold(objective, f64::max).max(1.0) * 1.15;
    let x = |i: usize| {
        if pts.len() <= 1 {
            left + (w - left) / 2.0
        } else {
            left + (w - left - 10.0) * i as f64 / (pts.len() - 1) as f64
        }
    };
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / max);
    let line: String = pts
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.0)))
        .collect::<Vec<_>>()
        .join(" ");
    let missed = pts.iter().filter(|p| !p.2).count();
    let desc = format!(
        "{} drills; restore time from {} to {}; objective {:.0} s; {} missed",
        pts.len(),
        seconds(pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min)),
        seconds(pts.iter().map(|p| p.0).fold(0.0, f64::max)),
        objective,
        missed
    );
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (w) " " (h) } width=(w) height=(h) role="img" aria-labelledby={ (id) "-t " (id) "-d" } {
            title id={ (id) "-t" } { "Measured RTO of each drill against the objective" }
            desc id={ (id) "-d" } { (desc) }
            line x1=(left) y1=(h - bottom) x2=(w) y2=(h - bottom) stroke="#8c959f" {}
            line x1=(left) y1=(top) x2=(left) y2=(h - bottom) stroke="#8c959f" {}
            text x="4" y=(y(max / 1.15) + 4.0) { (format!("{:.0} s", max / 1.15)) }
            text x="4" y=(h - bottom + 4.0) { "0 s" }
            @if objective > 0.0 {
                line.objective x1=(left) y1=(y(objective)) x2=(w) y2=(y(objective)) {}
                text x=(w - 110.0) y=(y(objective) - 4.0) { (format!("objective {objective:.0} s")) }
            }
            @if pts.len() > 1 { polyline.achieved points=(line) {} }
            @for (i, p) in pts.iter().enumerate() {
                circle class={ "point" @if !p.2 { " missed" } } cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(p.0))) r="4" {
                    title { (seconds(p.0)) @if !p.2 { " (missed)" } }
                }
            }
        }
    }
}

pub(super) async fn page(AxState(app): AxState<App>, viewer: Viewer) -> Response {
    let jobs = match app.state.catalog.jobs(DRILLS_READ, |j| {
        j.kind == JobKind::Drill && viewer.token.role.sees(&j.tenant)
    }) {
        Ok(j) => j,
        Err(e) => return api_error_page(e.into()),
    };
    // Per service, oldest first.
    let mut by: BTreeMap<(String, String), Vec<&JobRecord>> = BTreeMap::new();
    for j in jobs.iter().rev() {
        by.entry((j.tenant.clone(), j.service.clone()))
            .or_default()
            .push(j);
    }
    let body = html! {
        h1 { "DR drills" }
        p.muted { "A drill restores the newest complete snapshot into scratch space, checks it, and measures the time against the service's RTO." }
        @if by.is_empty() {
            p.note { "No drill has run yet." }
        }
        @for (i, ((tenant, service), list)) in by.iter().enumerate() {
            @let recent: Vec<&JobRecord> = list.iter().rev().take(CHART_POINTS).rev().copied().collect();
            section aria-labelledby={ "d" (i) } {
                h2 id={ "d" (i) } { a href={ "/services/" (tenant) "/" (service) } { (tenant) "/" (service) } }
                (chart(&format!("c{i}"), &recent))
                div.table-wrap {
                    table {
                        thead { tr {
                            th scope="col" { "Drill" }
                            th scope="col" { "When" }
                            th scope="col" { "Result" }
                            th scope="col" class="num" { "Restore time" }
                            th scope="col" class="num" { "Objective" }
                            th scope="col" class="hide-narrow" { "Summary" }
                        } }
                        tbody {
                            @for j in list.iter().rev().take(10) {
                                tr {
                                    td { "#" (j.id) }
                                    td { (layout::when(j.finished.as_deref().or(j.started.as_deref()).unwrap_or(&j.queued))) }
                                    td {
                                        @match (j.state.word(), j.rto) {
                                            ("succeeded", Some(r)) if r.met() => { (badge("ok", "RTO met")) }
                                            (_, Some(r)) if !r.met() => { (badge("bad", "RTO missed")) }
                                            (w, _) => { (state_badge(w)) }
                                        }
                                    }
                                    td.num { @if let Some(r) = j.rto { (seconds(r.achieved_secs)) } @else { "—" } }
                                    td.num { @if let Some(r) = j.rto { (format!("{:.0} s", r.objective_secs)) } @else { "—" } }
                                    td class="hide-narrow" { (j.summary.as_deref().or(j.error.as_deref()).unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&viewer, "/drills", "DR drills", None, body)
}
