//! Notifications from a real daemon to a webhook receiver and to a real SMTP
//! server (aiosmtpd): a failed job (retried after the receiver's 503), an
//! RPO breached then recovered, a failed drill, an erasure due and overdue;
//! signed, scoped by tenant, without host paths for partners, and not sent
//! twice across a restart.

use std::path::Path;
use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::receivers::{start_smtp_sink, Received, WebhookReceiver};
use crate::common::servers::{free_port, missing};
use crate::daemon::OP;

const HOOK_SECRET: &str = "webhook-signing-secret-for-tests";
const GLOBEX_SECRET: &str = "globex-webhook-secret-for-tests-0";

fn write_config(
    dir: &Path,
    port: u16,
    hook: &WebhookReceiver,
    smtp_port: u16,
) -> std::path::PathBuf {
    let w = crate::common::cli::write_secret;
    w(dir.join("acme.pass"), "acme secret\n");
    w(dir.join("globex.pass"), "globex secret\n");
    w(dir.join("op.token"), OP);
    w(dir.join("hook.secret"), HOOK_SECRET);
    w(dir.join("globex-hook.secret"), GLOBEX_SECRET);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), b"hello\n".repeat(100)).unwrap();
    let text = format!(
        r#"
[daemon]
state_dir = "state"
listen = "127.0.0.1:{port}"
jitter = "0s"
notify_interval = "1s"

[[daemon.token]]
name = "desk"
role = "operator"
secret_file = "op.token"

[[target]]
name = "primary"
url = "repo"
region = "eu-west-par"
zone = "par2"

[[tenant]]
id = "acme"
password_file = "acme.pass"

[[tenant]]
id = "globex"
password_file = "globex.pass"

[[service]]
tenant = "acme"
name = "web"
class = "staas-standard"
zone = "par1"
target = "primary"
schedule = "0 0 0 1 1 *"
rpo = "4s"
source = {{ paths = ["{data}"] }}

[[service]]
tenant = "acme"
name = "broken"
class = "staas-standard"
zone = "par1"
target = "primary"
schedule = "0 0 0 1 1 *"
retries = 0
source = {{ command = ["cat", "{data}/missing/secret.db"], stream_name = "x" }}

[[service]]
tenant = "acme"
name = "vm"
class = "staas-standard"
zone = "par1"
target = "primary"
schedule = "0 0 0 1 1 *"
retries = 0
source = {{ paths = ["{data}"] }}
drill = {{ schedule = "*/5 * * * * *", check_command = ["false"] }}

[[service]]
tenant = "globex"
name = "shop"
class = "staas-standard"
zone = "par1"
target = "primary"
schedule = "0 0 0 1 1 *"
source = {{ paths = ["{data}"] }}

[[notify]]
name = "ops-hook"
webhook = {{ url = "{ops}", secret_file = "hook.secret" }}
retry_backoff = "1s"

[[notify]]
name = "globex-hook"
tenant = "globex"
webhook = {{ url = "{globex}", secret_file = "globex-hook.secret" }}
retry_backoff = "1s"

[[notify]]
name = "acme-mail"
tenant = "acme"
events = ["job-failed", "rpo-breached"]
email = {{ smtp = "127.0.0.1:{smtp_port}", tls = "none", from = "custos@localhost", to = ["desk@acme.example"] }}
retry_backoff = "1s"
"#,
        data = data.display(),
        ops = hook.url("/ops"),
        globex = hook.url("/globex"),
    );
    let path = dir.join("custos.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The deliveries to `path` that were accepted (2xx).
fn delivered(hook: &WebhookReceiver, path: &str) -> Vec<Received> {
    hook.received()
        .into_iter()
        .filter(|r| r.path == path && r.status == 200)
        .collect()
}

fn events_of(rs: &[Received], event: &str) -> Vec<serde_json::Value> {
    rs.iter()
        .map(Received::json)
        .filter(|v| v["event"] == event)
        .collect()
}

/// What a receiver checks: the HMAC-SHA256 of `timestamp.body`.
fn signed_by(r: &Received, secret: &str) -> bool {
    let ts = &r.headers["x-custos-timestamp"];
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = ts.as_bytes().to_vec();
    msg.push(b'.');
    msg.extend_from_slice(&r.body);
    let want = format!(
        "sha256={}",
        hex_lower(ring::hmac::sign(&key, &msg).as_ref())
    );
    r.headers["x-custos-signature"] == want
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A message's text with quoted-printable soft breaks and escapes undone.
fn unquote(m: &str) -> String {
    let joined = m.replace("=\r\n", "").replace("=\n", "");
    let mut out = Vec::new();
    let b = joined.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The receiver's check in `docs/config-reference.md`, run by Python on a
/// delivery as received: true or false.
fn python_says_genuine(r: &Received, secret: &str) -> bool {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config-reference.md"),
    )
    .unwrap();
    let snippet = page
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a python block in the config reference");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), &r.body).unwrap();
    let driver = format!(
        "{snippet}\nimport sys\nh = {{'X-Custos-Timestamp': sys.argv[2], 'X-Custos-Signature': sys.argv[3]}}\nprint(genuine(sys.argv[1].encode(), h, open(sys.argv[4], 'rb').read()))\n"
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(driver)
        .arg(secret)
        .arg(&r.headers["x-custos-timestamp"])
        .arg(&r.headers["x-custos-signature"])
        .arg(dir.path().join("body"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}

#[test]
fn events_reach_webhooks_and_mail_once_each_scoped_by_tenant() {
    let Some(smtp) = start_smtp_sink() else {
        missing("aiosmtpd (PyPI, in /opt/custos-test/py)");
        return;
    };
    // The first delivery is refused with 503: it is retried.
    let hook = WebhookReceiver::start(&[503]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(dir.path(), port, &hook, smtp.port);
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    let long = Duration::from_secs(60);

    // A failed job.
    let (s, job) = d.request("POST", "/v1/services/acme/broken/backup", OP, "");
    assert_eq!(s, 202, "{job}");
    d.wait_until(long, || {
        !events_of(&delivered(&hook, "/ops"), "job-failed").is_empty()
    });
    let ops = delivered(&hook, "/ops");
    let failed = events_of(&ops, "job-failed");
    assert_eq!(failed[0]["tenant"], "acme");
    assert_eq!(failed[0]["service"], "broken");
    assert_eq!(failed[0]["details"]["state"], "failed");
    let summary = failed[0]["summary"].as_str().unwrap();
    assert!(
        summary.contains("missing/secret.db"),
        "operators see the path: {summary}"
    );
    // Refused once, then delivered with the same ID (whichever event came
    // first); every delivery signed.
    let first = hook.received()[0].clone();
    assert_eq!(first.status, 503);
    d.wait_until(long, || {
        delivered(&hook, &first.path)
            .iter()
            .any(|r| r.headers["x-custos-delivery"] == first.headers["x-custos-delivery"])
    });
    assert_eq!(
        delivered(&hook, &first.path)
            .iter()
            .find(|r| r.headers["x-custos-delivery"] == first.headers["x-custos-delivery"])
            .unwrap()
            .body,
        first.body,
        "the retry sends the same event"
    );
    let accepted = ops
        .iter()
        .find(|r| r.json()["event"] == "job-failed")
        .unwrap();
    assert_eq!(accepted.headers["x-custos-event"], "job-failed");
    assert_eq!(
        accepted.json()["id"].as_str(),
        Some(accepted.headers["x-custos-delivery"].as_str())
    );
    for r in &ops {
        assert!(signed_by(r, HOOK_SECRET), "bad signature: {:?}", r.headers);
        assert!(!signed_by(r, GLOBEX_SECRET));
    }
    // The documented receiver agrees, and refuses the wrong secret.
    assert!(python_says_genuine(accepted, HOOK_SECRET));
    assert!(!python_says_genuine(accepted, GLOBEX_SECRET));

    // An RPO of 4 s, breached after a good backup, then recovered.
    let (s, job) = d.request("POST", "/v1/services/acme/web/backup", OP, "");
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_u64().unwrap();
    let done = d.wait_finished(&format!("/v1/jobs/{id}"), OP);
    assert_eq!(done["state"], "succeeded", "{done}");
    d.wait_until(long, || {
        events_of(&delivered(&hook, "/ops"), "rpo-breached")
            .iter()
            .any(|e| e["service"] == "web")
    });
    let (_, st) = d.get("/v1/services/acme/web", OP);
    assert_eq!(st["rpo_state"], "breached", "{st}");
    let (s, job) = d.request("POST", "/v1/services/acme/web/backup", OP, "");
    assert_eq!(s, 202, "{job}");
    d.wait_until(long, || {
        events_of(&delivered(&hook, "/ops"), "rpo-recovered")
            .iter()
            .any(|e| e["service"] == "web")
    });

    // A drill that fails its check.
    d.wait_until(long, || {
        events_of(&delivered(&hook, "/ops"), "drill-failed")
            .iter()
            .any(|e| e["service"] == "vm")
    });

    // The end of globex's contract, noticed long ago: due and overdue (no
    // signing key, so the erasure cannot run).
    let (s, rec) = d.request(
        "POST",
        "/v1/erasures/globex/notice",
        OP,
        r#"{"at": "2020-01-01T00:00:00Z"}"#,
    );
    assert_eq!(s, 201, "{rec}");
    for path in ["/ops", "/globex"] {
        d.wait_until(long, || {
            let got = delivered(&hook, path);
            !events_of(&got, "erasure-due").is_empty()
                && !events_of(&got, "erasure-overdue").is_empty()
        });
    }
    // The tenant's own channel: its tenant's events only, signed with its
    // own secret.
    let globex = delivered(&hook, "/globex");
    for r in &globex {
        assert_eq!(
            r.json()["tenant"],
            "globex",
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(signed_by(r, GLOBEX_SECRET));
    }

    // The partner's mail: its two kinds of events, its tenant only, no
    // host path.
    d.wait_until(long, || {
        let m = smtp
            .messages()
            .iter()
            .map(|m| unquote(m))
            .collect::<Vec<_>>();
        m.iter().any(|t| t.contains("Event:   job-failed"))
            && m.iter().any(|t| t.contains("Event:   rpo-breached"))
    });
    for m in smtp.messages().iter().map(|m| unquote(m)) {
        assert!(m.contains("To: desk@acme.example"), "{m}");
        assert!(m.contains("Tenant:  acme"), "{m}");
        assert!(!m.contains("globex"), "{m}");
        assert!(
            !m.contains("drill-failed") && !m.contains("rpo-recovered"),
            "{m}"
        );
        assert!(
            !m.contains("/missing/secret.db"),
            "a host path reached a partner: {m}"
        );
        if m.contains("Event:   job-failed") {
            assert!(
                m.contains("Subject: [custos] backup of acme/broken failed"),
                "{m}"
            );
            assert!(m.contains("<host path>"), "{m}");
        }
    }

    let (_, metrics) = d.get("/metrics", OP);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("custos_notifications_failed_total 0"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("custos_notifications_sent_total 0\n"),
        "{metrics}"
    );

    // A restart sends nothing it already sent.
    let count = |kind: &str| events_of(&delivered(&hook, "/ops"), kind).len();
    let (due, overdue) = (count("erasure-due"), count("erasure-overdue"));
    let log = d.stop();
    assert!(log.contains("notification delivered"), "{log}");
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon2.log"));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        (count("erasure-due"), count("erasure-overdue")),
        (due, overdue)
    );
    d.stop();
}

#[test]
fn deliveries_waiting_for_a_retry_at_stop_are_said_to_be_dropped() {
    // Every delivery is refused for a while (the mail server is not there
    // at all): at stop, some wait for their retry.
    let hook = WebhookReceiver::start(&[503; 20]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(dir.path(), port, &hook, free_port());
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    let (s, job) = d.request("POST", "/v1/services/acme/broken/backup", OP, "");
    assert_eq!(s, 202, "{job}");
    d.wait_until(Duration::from_secs(60), || !hook.received().is_empty());
    let log = d.stop();
    assert!(
        log.contains(
            "notification deliveries still under way or waiting for a retry are dropped at stop"
        ),
        "{log}"
    );
}
