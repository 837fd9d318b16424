//! The API against an in-memory daemon state: routes, roles, limits.

use super::*;
use crate::catalog::Catalog;
use crate::config::Role;
use crate::daemon::records::SnapshotEntry;
use crate::daemon::redact::{redact_paths, redact_text};
use crate::daemon::runner::{Executor, JobOutcome, JobSettings, Limits, Runner};
use crate::daemon::scheduler::TokioClock;
use crate::daemon::state::ServiceInfo;

struct Api {
    base: String,
    client: reqwest::Client,
    catalog: Catalog,
    state: State,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, serde_json::Value, bool) {
        let mut r = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .body(body.to_string());
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let repeated = resp.headers().contains_key("x-custos-repeated");
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        (status, v, repeated)
    }
}

fn service(tenant: &str, name: &str) -> ServiceInfo {
    ServiceInfo {
        tenant: tenant.into(),
        name: name.into(),
        class: "dbaas".into(),
        target: "eu-west".into(),
        standby: None,
        rpo: Duration::from_secs(26 * 3600),
        restore_window: None,
        schedule: None,
        schedule_text: "0 0 1 * * * Europe/Paris".into(),
    }
}

async fn start() -> Api {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let catalog = Catalog::temporary().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let clock = Arc::new(TokioClock::starting_at(
        "2026-11-22T10:00:00Z".parse().unwrap(),
    ));
    let exec: Executor = Arc::new(|_| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(JobOutcome::default())
        })
    });
    let runner = Runner::new(
        catalog.clone(),
        clock.clone(),
        exec,
        Limits {
            global: 2,
            per_target: HashMap::new(),
        },
        rx.clone(),
    );
    let services = vec![
        service("acme", "db"),
        service("acme", "web"),
        service("globex", "db"),
    ];
    runner.set_services(
        services
            .iter()
            .map(|s| {
                (
                    crate::config::ServiceKey::new(&s.tenant, &s.name),
                    JobSettings::default(),
                )
            })
            .collect(),
    );
    catalog
        .put_snapshot(&SnapshotEntry {
            id: crate::SnapshotId([0xaa; 32]),
            tenant: "acme".into(),
            service: "db".into(),
            time: "2026-11-22T01:00:00Z".into(),
            tags: vec![],
            size: 10,
            partial: false,
        })
        .unwrap();
    let state = State::new(
        catalog.clone(),
        runner,
        clock,
        services,
        vec![
            Token::new("desk", Role::Operator, "op-secret"),
            Token::new(
                "acme-portal",
                Role::Partner {
                    tenant: "acme".into(),
                },
                "acme-secret",
            ),
            Token::new("audit", Role::Auditor, "audit-secret"),
        ],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, state.clone(), rx));
    Api {
        base,
        client: reqwest::Client::new(),
        catalog,
        state,
        _stop: stop,
    }
}

#[tokio::test]
async fn only_an_operator_accepts_a_tenants_alarms() {
    let api = start().await;
    api.catalog
        .add_alarm("acme", "s3://b/acme", "snapshot 1 is gone")
        .unwrap();
    api.catalog
        .add_alarm("globex", "s3://b/globex", "snapshot 2 is gone")
        .unwrap();
    let body = r#"{"tenant": "acme"}"#;
    for token in ["acme-secret", "audit-secret"] {
        let (s, v, _) = api
            .call("POST", "/v1/alarms/accept", Some(token), body)
            .await;
        assert_eq!(s, 403, "{token}: {v}");
    }
    let (s, v, _) = api
        .call("POST", "/v1/alarms/accept", Some("op-secret"), "{")
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v, _) = api
        .call("POST", "/v1/alarms/accept", Some("op-secret"), body)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    // Read before and after: a read is never answered from the
    // double-submit memory.
    let (_, v, _) = api.call("GET", "/v1/alarms", Some("op-secret"), "").await;
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    api.catalog
        .add_alarm("globex", "s3://b/globex", "snapshot 3 is gone")
        .unwrap();
    let (_, v, _) = api.call("GET", "/v1/alarms", Some("op-secret"), "").await;
    let left: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["globex", "globex"]);
}

#[tokio::test]
async fn a_partner_token_never_sees_another_tenant() {
    let api = start().await;
    let (s, v, _) = api
        .call("GET", "/v1/services", Some("acme-secret"), "")
        .await;
    assert_eq!(s, 200);
    let tenants: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme", "acme"]);
    for path in [
        "/v1/services/globex/db",
        "/v1/services/globex/db/snapshots",
        "/v1/services/globex/nope",
    ] {
        let (s, v, _) = api.call("GET", path, Some("acme-secret"), "").await;
        assert_eq!(s, 404, "{path}: {v}");
    }
    let (s, _, _) = api
        .call(
            "POST",
            "/v1/services/globex/db/backup",
            Some("acme-secret"),
            "",
        )
        .await;
    assert_eq!(s, 404);
    // A globex job is invisible to acme, listed or by ID.
    let (s, job, _) = api
        .call(
            "POST",
            "/v1/services/globex/db/backup",
            Some("op-secret"),
            "",
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_u64().unwrap();
    let (s, _, _) = api
        .call("GET", &format!("/v1/jobs/{id}"), Some("acme-secret"), "")
        .await;
    assert_eq!(s, 404);
    let (_, jobs, _) = api.call("GET", "/v1/jobs", Some("acme-secret"), "").await;
    assert!(jobs.as_array().unwrap().is_empty(), "{jobs}");
    let (_, jobs, _) = api
        .call("GET", "/v1/jobs?tenant=globex", Some("acme-secret"), "")
        .await;
    assert!(jobs.as_array().unwrap().is_empty(), "{jobs}");
    let (s, _, _) = api
        .call("GET", &format!("/v1/jobs/{id}"), Some("audit-secret"), "")
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn roles_and_authentication() {
    let api = start().await;
    assert_eq!(api.call("GET", "/v1/services", None, "").await.0, 401);
    assert_eq!(
        api.call("GET", "/v1/services", Some("guess"), "").await.0,
        401
    );
    let (s, v, _) = api
        .call("GET", "/v1/services", Some("audit-secret"), "")
        .await;
    assert_eq!((s, v.as_array().unwrap().len()), (200, 3));
    let (s, v, _) = api
        .call(
            "POST",
            "/v1/services/acme/db/backup",
            Some("audit-secret"),
            "",
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v, _) = api
        .call(
            "POST",
            "/v1/services/acme/db/backup",
            Some("acme-secret"),
            "{\"tags\": [\"pre-change\"]}",
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["tags"][0], "pre-change");
    assert_eq!(v["trigger"]["actor"], "acme-portal");
    let (s, v, _) = api
        .call(
            "POST",
            "/v1/services/acme/web/backup",
            Some("acme-secret"),
            "{\"tags\": [\"bad tag!\"]}",
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v, _) = api
        .call(
            "POST",
            "/v1/services/acme/web/backup",
            Some("acme-secret"),
            "{\"tagz\": []}",
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v, _) = api
        .call(
            "GET",
            "/v1/services/acme/db/snapshots",
            Some("acme-secret"),
            "",
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v[0]["id"], "a".repeat(64));
    let (s, _, _) = api.call("GET", "/health", None, "").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn identical_requests_within_a_second_are_answered_once() {
    let api = start().await;
    let body = "{\"tags\": [\"post-change\"]}";
    let (s1, first, rep1) = api
        .call(
            "POST",
            "/v1/services/acme/web/backup",
            Some("acme-secret"),
            body,
        )
        .await;
    let (s2, second, rep2) = api
        .call(
            "POST",
            "/v1/services/acme/web/backup",
            Some("acme-secret"),
            body,
        )
        .await;
    assert_eq!((s1, rep1), (202, false));
    assert_eq!((s2, rep2), (202, true));
    assert_eq!(first, second);
    assert_eq!(api.catalog.jobs(10, |_| true).unwrap().len(), 1, "ran once");
    // After the window (and once the job is done), a new request runs again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s3, third, rep3) = api
        .call(
            "POST",
            "/v1/services/acme/web/backup",
            Some("acme-secret"),
            body,
        )
        .await;
    assert_eq!((s3, rep3), (202, false), "{third}");
    assert_ne!(third["id"], first["id"]);
}

#[test]
fn host_paths_are_redacted_and_urls_kept() {
    for (from, to) in [
        (
            "cannot read password file /etc/custos/keys/acme.pass: No such file",
            "cannot read password file <host path>: No such file",
        ),
        (
            "restored to /srv/restores/acme/SD-1-2 (done)",
            "restored to <host path> (done)",
        ),
        ("path=/x/y, then", "path=<host path>, then"),
        ("\"/a b\"", "\"<host path> b\""),
        ("s3://bucket/prefix/acme", "s3://bucket/prefix/acme"),
        ("a/b is relative", "a/b is relative"),
        ("/", "<host path>"),
    ] {
        assert_eq!(redact_text(from), to, "{from}");
    }
    let mut v = serde_json::json!({"head": "h", "n": [{"target": "/srv/x"}], "k": 1});
    redact_paths(&mut v);
    assert_eq!(v["n"][0]["target"], "<host path>");
}

#[tokio::test]
async fn metrics_show_rpo_per_service() {
    let api = start().await;
    // Not to anyone: every tenant is in there.
    let get = |token: Option<&'static str>| {
        let mut r = api.client.get(format!("{}/metrics", api.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(get(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(
        get(Some("acme-secret")).await.unwrap().status().as_u16(),
        403
    );
    assert_eq!(
        get(Some("audit-secret")).await.unwrap().status().as_u16(),
        200
    );
    let resp = get(Some("op-secret")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("# TYPE custos_rpo_ok gauge"), "{text}");
    let age: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "custos_snapshot_age_seconds{tenant=\"acme\",service=\"db\",class=\"dbaas\"} ",
            )
        })
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (32_400..32_500).contains(&age),
        "9 h after the snapshot: {age}"
    );
    assert!(
        text.contains("custos_rpo_ok{tenant=\"acme\",service=\"db\",class=\"dbaas\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("custos_rpo_ok{tenant=\"globex\",service=\"db\",class=\"dbaas\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_description_is_the_routes_and_the_api_page() {
    let api = start().await;
    let doc = serde_json::to_value(openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let (s, _, _) = api.call("GET", "/v1/openapi.json", None, "").await;
    assert_eq!(s, 401);
    let (s, served, _) = api
        .call("GET", "/v1/openapi.json", Some("acme-secret"), "")
        .await;
    assert_eq!(s, 200);
    assert!(served == doc, "a partner gets the description as it is");
    // Every described operation reaches a handler: not the router's own
    // 404 (an empty body) or 405.
    let paths = doc["paths"].as_object().unwrap();
    let mut described = Vec::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let m = method.to_uppercase();
            described.push(format!("{m} {path}"));
            let concrete = path
                .replace("{tenant}", "nobody")
                .replace("{service}", "nothing")
                .replace("{id}", "999999");
            let (s, body, _) = api.call(&m, &concrete, Some("audit-secret"), "").await;
            assert_ne!(s, 405, "{m} {path}");
            assert!(
                !(s == 404 && body == serde_json::Value::String(String::new())),
                "{m} {path} is described but not routed"
            );
            // Each answer it gives is described.
            assert!(
                ops[method]["responses"].get(s.to_string()).is_some(),
                "{m} {path} answered {s}, which its description does not list: {body}"
            );
        }
    }
    // And docs/api.md lists exactly these.
    let page = include_str!("../../../docs/api.md");
    let mut listed: Vec<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|l| l.starts_with("GET /") || l.starts_with("POST /"))
        .map(|l| l.split('[').next().unwrap_or(l).to_string())
        .collect();
    listed.sort();
    described.sort();
    assert_eq!(listed, described);
    // Schemas are there for what the answers name.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ServiceStatus",
        "JobRecord",
        "RestoreRecord",
        "ErasureRecord",
        "ErrorBody",
        "RpoState",
    ] {
        assert!(schemas.contains_key(name), "{name} missing");
    }
}

/// Signs in to the console with `token`: the session cookie, or the status.
async fn console_session(api: &Api, token: &str) -> Result<String, u16> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/login", api.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&next=/"))
        .send()
        .await
        .unwrap();
    if r.status().as_u16() != 303 {
        return Err(r.status().as_u16());
    }
    let c = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Strict"),
        "{c}"
    );
    assert!(!c.contains("Secure"), "plain HTTP: no Secure flag ({c})");
    Ok(c.split(';').next().unwrap().to_string())
}

async fn console_get(api: &Api, cookie: &str, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .get(format!("{}{path}", api.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn console_sessions_follow_their_token() {
    let api = start().await;
    // No session: the sign-in page; an unknown token is refused (401).
    let (s, _) = console_get(&api, "custos_session=nothing", "/").await;
    assert_eq!(s, 303);
    assert_eq!(console_session(&api, "not-a-token").await, Err(401));
    let partner = console_session(&api, "acme-secret").await.unwrap();
    let (s, page) = console_get(&api, &partner, "/").await;
    assert_eq!(s, 200);
    assert!(
        page.contains("acme/db") && !page.contains("globex"),
        "{page}"
    );
    // Another tenant's service page does not exist for a partner.
    let (s, _) = console_get(&api, &partner, "/services/globex/db").await;
    assert_eq!(s, 404);
    // Every page is served with a policy that forbids scripts and framing.
    let r = reqwest::Client::new()
        .get(format!("{}/", api.base))
        .header("cookie", &partner)
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    // The token removed (a reload): its sessions end at their next request.
    let services = api.state.services().as_ref().clone();
    let tokens: Vec<Token> = api
        .state
        .tokens()
        .iter()
        .filter(|t| t.name != "acme-portal")
        .cloned()
        .collect();
    api.state.replace(services, tokens);
    let (s, _) = console_get(&api, &partner, "/").await;
    assert_eq!(s, 303, "a removed token's session is over");
}

#[tokio::test]
async fn failed_console_sign_ins_are_throttled_like_the_apis() {
    let api = start().await;
    for _ in 0..AUTH_FAILURES {
        assert_eq!(console_session(&api, "guess").await, Err(401));
    }
    // Even the right token now waits.
    assert_eq!(console_session(&api, "op-secret").await, Err(429));
    let (s, _, _) = api.call("GET", "/v1/services", Some("op-secret"), "").await;
    assert_eq!(s, 429);
}
