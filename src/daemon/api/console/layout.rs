//! The frame of every console page (header, navigation, sign-out), the
//! sign-in page, the stylesheet, and small pieces the pages share: sizes,
//! ages, state badges.

use axum::response::Response;
use maud::{html, Markup, DOCTYPE};

use super::{html_page, Viewer};

/// The one stylesheet: readable on a phone (one column under 700 px),
/// visible focus for keyboard users, colours that also say it in words.
pub(crate) const CSS: &str = r#"
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #ffffff; --head: #0b3d62;
        --ok: #1a7f37; --ok-bg: #dafbe1; --warn: #9a6700; --warn-bg: #fff8c5; --bad: #cf222e; --bad-bg: #ffebe9; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { background: var(--head); color: #fff; padding: .5rem 1rem; display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; }
header a { color: #fff; }
header .brand { font-weight: 700; font-size: 1.1rem; text-decoration: none; }
header nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: .25rem 1rem; margin: 0; padding: 0; }
header nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
header .who { margin-left: auto; display: flex; gap: .75rem; align-items: center; }
header form { margin: 0; }
main { padding: 1rem; max-width: 1200px; margin: 0 auto; }
h1 { font-size: 1.5rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.2rem; margin: 1.5rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.table-wrap { overflow-x: auto; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 1rem; font-size: .85rem; font-weight: 600; white-space: nowrap; border: 1px solid; }
.badge.ok { color: var(--ok); background: var(--ok-bg); }
.badge.warn { color: var(--warn); background: var(--warn-bg); }
.badge.bad { color: var(--bad); background: var(--bad-bg); }
.badge.none { color: var(--muted); background: #f6f8fa; }
.muted { color: var(--muted); }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9rem; word-break: break-all; }
form.inline { display: inline; }
fieldset { border: 1px solid var(--line); border-radius: .4rem; margin: 0 0 1rem; }
label { display: block; font-weight: 600; margin: .5rem 0 .2rem; }
label.check { display: inline; font-weight: 400; }
input[type=text], input[type=password], input[type=datetime-local], select, textarea { font: inherit; padding: .35rem .5rem; border: 1px solid #8c959f; border-radius: .3rem; width: 100%; max-width: 32rem; }
textarea { min-height: 5rem; }
button, .button { font: inherit; padding: .4rem .9rem; border-radius: .3rem; border: 1px solid #1f6feb; background: #1f6feb; color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
button.secondary { background: #fff; color: #1f6feb; }
header button { background: transparent; border-color: #fff; color: #fff; padding: .15rem .6rem; }
a:focus, button:focus, input:focus, select:focus, textarea:focus, summary:focus { outline: 3px solid #f2cc60; outline-offset: 2px; }
.filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; margin-bottom: 1rem; }
.filters label { margin: 0; }
.filters select { width: auto; }
.alert { border: 1px solid var(--bad); background: var(--bad-bg); padding: .5rem .75rem; border-radius: .3rem; }
.note { border: 1px solid var(--line); background: #f6f8fa; padding: .5rem .75rem; border-radius: .3rem; }
progress { width: 100%; max-width: 32rem; height: 1.2rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
svg.chart { max-width: 100%; height: auto; }
svg.chart .objective { stroke: var(--bad); stroke-dasharray: 6 4; }
svg.chart .achieved { stroke: #1f6feb; fill: none; stroke-width: 2; }
svg.chart .point { fill: #1f6feb; }
svg.chart .point.missed { fill: var(--bad); }
svg.chart text { font-size: 12px; fill: var(--muted); }
.breadcrumbs { margin: .25rem 0 .75rem; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: .5rem; background: #fff; color: var(--fg); padding: .25rem .5rem; z-index: 2; }
@media (max-width: 700px) {
  header .who { margin-left: 0; }
  table.cards thead { display: none; }
  table.cards tr { display: block; border: 1px solid var(--line); border-radius: .4rem; margin: 0 0 .6rem; padding: .3rem .5rem; }
  table.cards td { display: block; border: none; padding: .1rem 0; }
  table.cards td.hide-narrow { display: none; }
  table.cards td[data-label]::before { content: attr(data-label) ": "; font-weight: 600; }
  th, td { padding: .3rem .35rem; }
  .hide-narrow { display: none; }
}
"#;

/// The sections of the navigation: (path, label).
const SECTIONS: [(&str, &str); 5] = [
    ("/", "Overview"),
    ("/restores", "Restores"),
    ("/drills", "DR drills"),
    ("/erasures", "Erasures"),
    ("/audit", "Audit"),
];

fn head(title: &str, refresh: Option<u32>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            @if let Some(s) = refresh {
                meta http-equiv="refresh" content=(s);
            }
            title { (title) " · custos" }
            link rel="stylesheet" href="/console.css";
        }
    }
}

/// A page of the console for `viewer`: `section` is the navigation entry
/// it belongs to; `refresh` reloads it every so many seconds.
pub(crate) fn page(
    viewer: &Viewer,
    section: &str,
    title: &str,
    refresh: Option<u32>,
    body: Markup,
) -> Response {
    html_page(html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, refresh))
            body {
                a.skip href="#main" { "Skip to the content" }
                header {
                    a.brand href="/" { "custos" }
                    nav aria-label="Sections" {
                        ul {
                            @for (path, label) in SECTIONS {
                                li {
                                    @if path == section {
                                        a href=(path) aria-current="page" { (label) }
                                    } @else {
                                        a href=(path) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    div.who {
                        span { "Signed in as " (viewer.who()) }
                        form.inline method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    })
}

/// A page without navigation (errors, sign-in).
pub(crate) fn bare(title: &str, body: Markup) -> Response {
    html_page(html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, None))
            body {
                header { a.brand href="/" { "custos" } }
                main id="main" { (body) }
            }
        }
    })
}

/// The sign-in page; `error` is why the last attempt failed.
pub(crate) fn login(next: &str, error: Option<&str>, secure: bool) -> Response {
    bare(
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(e) = error {
                p.alert role="alert" { (e) }
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input type="password" id="token" name="token" autocomplete="current-password" required autofocus;
                p { button type="submit" { "Sign in" } }
            }
            p.muted {
                "Use the token your operator gave you (the same one the API takes). "
                "The session lasts " (super::SESSION_LIFETIME.as_secs() / 3600) " hours."
                @if !secure { " This listener does not use TLS: use it on this host or behind a TLS proxy only." }
            }
        },
    )
}

/// A time for people, to the second, in UTC (`2026-12-05 00:25:20 UTC`);
/// what does not parse as a time is shown as it is.
pub(crate) fn when(t: &str) -> String {
    t.parse::<jiff::Timestamp>().map_or_else(
        |_| t.to_string(),
        |ts| ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Bytes for people (`1.5 GiB`).
pub(crate) fn bytes(n: u64) -> String {
    crate::util::human_bytes(n)
}

/// An age for people (`3 h 20 min`, `2 d 4 h`).
pub(crate) fn age(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// A badge: `class` is `ok`, `warn`, `bad` or `none`; the text says it too.
pub(crate) fn badge(class: &str, text: &str) -> Markup {
    html! { span class={ "badge " (class) } { (text) } }
}

/// A job or restore state as a badge.
pub(crate) fn state_badge(word: &str) -> Markup {
    let class = match word {
        "succeeded" | "done" => "ok",
        "warning" | "queued" | "running" => "warn",
        "failed" => "bad",
        _ => "none",
    };
    badge(class, word)
}

/// Text with line breaks kept (error lists).
pub(crate) fn lines(items: &[String]) -> Markup {
    html! {
        @for (i, l) in items.iter().enumerate() {
            @if i > 0 { br; }
            (l)
        }
    }
}
