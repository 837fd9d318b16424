//! The audit log cannot be cut or rewritten silently: `audit verify` and
//! the daemon compare it with its mirror and the signed checkpoints there; a
//! request whose record cannot be written is refused; operators' commands
//! are audited whenever a config names the log.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::cli::{make_tree, write_secret};
use crate::common::daemon::{custos, Daemon};
use crate::common::fixtures;
use crate::common::servers::free_port;

const OP: &str = "operator-token-for-audit-tests-01";

fn ok(c: &mut std::process::Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn setup(dir: &Path) -> PathBuf {
    write_secret(dir.join("acme.pass"), "acme secret\n");
    write_secret(dir.join("op.token"), OP);
    make_tree(&dir.join("data"));
    ok(custos(&[])
        .args(["certificate", "keygen", "--out"])
        .arg(dir.join("operator.key")));
    let listen = format!("127.0.0.1:{}", free_port());
    let daemon = format!(
        "audit_mirror = \"{}\"\ncertificate_key = \"operator.key\"",
        dir.join("mirror").display()
    );
    fixtures::config(
        "acme-web.toml",
        dir,
        &[("LISTEN", &listen), ("DAEMON", &daemon), ("MORE", "")],
    )
}

fn verify(cfg: &Path) -> (Option<i32>, String) {
    let o = custos(&[])
        .args(["audit", "verify", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// The log without its last `n` lines.
fn cut(log: &Path, n: usize) {
    let text = std::fs::read_to_string(log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let kept = lines[..lines.len() - n].join("\n") + "\n";
    std::fs::write(log, kept).unwrap();
}

#[test]
fn a_cut_log_is_found_by_verify_and_by_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = setup(d);
    // The daemon writes records and mirrors them (and a signed checkpoint)
    // when it stops.
    let daemon = Daemon::start(&cfg, &[], d.join("daemon-1.log"));
    let (s, job) = daemon.request("POST", "/v1/services/acme/web/backup", OP, "");
    assert_eq!(s, 202, "{job}");
    daemon.wait_finished(&format!("/v1/jobs/{}", job["id"]), OP);
    daemon.stop();
    let (code, out) = verify(&cfg);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("signatures verified") && !out.contains("(0 signatures"),
        "{out}"
    );

    // Someone removes the last records: the chain alone still holds, the
    // mirror and the checkpoint say it was cut.
    let log = d.join("state/audit.log");
    assert!(custos::audit::verify(&log).is_ok());
    cut(&log, 2);
    assert!(
        custos::audit::verify(&log).is_ok(),
        "a cut tail is a valid chain"
    );
    let (code, out) = verify(&cfg);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cut"), "{out}");

    // The daemon sees it at start, and again when the regrown log diverges
    // from the mirror: status and /metrics say so.
    let daemon = Daemon::start(&cfg, &[], d.join("daemon-2.log"));
    let (s, chain) = daemon.get("/v1/audit/chain", OP);
    assert_eq!(s, 200, "{chain}");
    assert_eq!(chain["ok"], false, "{chain}");
    assert!(chain["problems"].to_string().contains("cut"), "{chain}");
    let (_, metrics) = daemon.get("/metrics", OP);
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("custos_audit_chain_ok 0"),
        "{metrics}"
    );
    let log_text = daemon.stop();
    assert!(log_text.contains("does not verify"), "{log_text}");
    let (code, out) = verify(&cfg);
    assert_eq!(code, Some(1), "after regrowing: {out}");
}

#[test]
fn requests_whose_audit_record_cannot_be_written_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = setup(d);
    let daemon = Daemon::start(&cfg, &[], d.join("daemon.log"));
    let (s, job) = daemon.request("POST", "/v1/services/acme/web/backup", OP, "");
    assert_eq!(s, 202, "{job}");
    daemon.wait_finished(&format!("/v1/jobs/{}", job["id"]), OP);
    let jobs_before = daemon.get("/v1/jobs", OP).1.as_array().unwrap().len();
    // The log can no longer be written.
    let log = d.join("state/audit.log");
    std::fs::rename(&log, d.join("audit.log.moved")).unwrap();
    std::fs::create_dir(&log).unwrap();
    let (s, v) = daemon.request(
        "POST",
        "/v1/services/acme/web/backup",
        OP,
        r#"{"tags": ["x"]}"#,
    );
    assert!(s >= 500, "{s} {v}");
    assert!(v["error"].as_str().unwrap().contains("audit log"), "{v}");
    let (s, v) = daemon.request(
        "POST",
        "/v1/services/acme/web/restores",
        OP,
        r#"{"ticket": "SD-1"}"#,
    );
    assert!(s >= 500, "{s} {v}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        daemon.get("/v1/jobs", OP).1.as_array().unwrap().len(),
        jobs_before,
        "a backup ran without its audit record"
    );
    assert!(daemon
        .get("/v1/restores", OP)
        .1
        .as_array()
        .unwrap()
        .is_empty());
    daemon.stop();
}

#[test]
fn operators_commands_are_audited_when_a_config_names_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = setup(d);
    let repo = d.join("target/acme");
    let run = |extra: &[(&str, &str)], args: &[&str]| {
        let mut c = custos(&[]);
        c.arg("-r")
            .arg(&repo)
            .arg("--password-file")
            .arg(d.join("acme.pass"))
            .env("CUSTOS_CONFIG", &cfg);
        for (k, v) in extra {
            c.env(k, v);
        }
        c.args(args).output().unwrap()
    };
    assert!(run(&[], &["init"]).status.success());
    let o = run(&[], &["--json", "backup", d.join("data").to_str().unwrap()]);
    assert!(o.status.success());
    let id = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = run(&[], &["pin", &id, "--reason", "legal hold L-1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    assert!(
        log.contains("snapshot.pinned") && log.contains("operator:"),
        "{log}"
    );
    // With the log unusable, the command is refused and nothing changes.
    let log_path = d.join("state/audit.log");
    std::fs::rename(&log_path, d.join("moved.log")).unwrap();
    std::fs::create_dir(&log_path).unwrap();
    let o = run(&[], &["unpin", &id]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("audit log"));
    // Still pinned: forget (a dry run, which changes nothing and needs no
    // audit record) says so.
    let o = run(&[], &["--json", "forget", "--keep-last", "1", "--dry-run"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v.to_string().contains("pinned"), "{v}");
}
