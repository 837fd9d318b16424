//! `custos daemon` as a process: the shipped example config, scheduled and
//! on-demand backups of three services of different classes on the S3
//! emulator, the API and `custos status`, reload on SIGHUP (a bad config is
//! refused and the old one kept), clean stop on SIGTERM; config errors.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::daemon::{custos, finished, Daemon};
use crate::common::servers::free_port;
use crate::common::servers::{missing, s3_env, start_moto};

#[test]
fn the_shipped_example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    // Copy it so that its example-run/ lands in the temporary directory.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    std::fs::copy(root.join("custos.toml"), dir.path().join("custos.toml")).unwrap();
    let keys = dir.path().join("example-keys");
    std::fs::create_dir_all(&keys).unwrap();
    for e in std::fs::read_dir(root.join("example-keys")).unwrap() {
        let e = e.unwrap();
        // Secret files must be private; a checkout makes them 0644.
        crate::common::cli::write_secret(
            keys.join(e.file_name()),
            std::fs::read(e.path()).unwrap(),
        );
    }
    let cfg = dir.path().join("custos.toml");
    let o = custos(&[])
        .args(["--json", "config", "check", "--config"])
        .arg(&cfg)
        .args(["--now", "2026-11-22T00:00:00Z"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let classes: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["class"].as_str().unwrap())
        .collect();
    for c in [
        "vmaas-standard",
        "vmaas-custom",
        "dbaas",
        "staas-critical",
        "staas-standard",
        "staas-low",
        "caas",
    ] {
        assert!(classes.contains(&c), "{c} missing from the example");
    }
    assert_eq!(v[0]["next_runs"].as_array().unwrap().len(), 3);

    // One file per class too, each valid on its own.
    let examples = root.join("examples");
    let mut seen = 0;
    for e in std::fs::read_dir(&examples).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let o = custos(&[])
            .args(["-q", "config", "check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        seen += 1;
    }
    assert_eq!(seen, 7, "an example per class");

    // And the daemon runs it out of the box (on its own port here).
    let port = free_port();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("127.0.0.1:8420", &format!("127.0.0.1:{port}"));
    std::fs::write(&cfg, text).unwrap();
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    let token = std::fs::read_to_string(keys.join("token-service-desk")).unwrap();
    let (s, job) = d.request(
        "POST",
        "/v1/services/acme/db-orders/backup",
        token.trim(),
        "",
    );
    assert_eq!(s, 202, "{job}");
    let path = format!("/v1/jobs/{}", job["id"]);
    d.wait_until(Duration::from_secs(60), || {
        finished(&d.get(&path, token.trim()).1)
    });
    assert_eq!(d.get(&path, token.trim()).1["state"], "succeeded");
    d.signal(libc::SIGTERM);
}

#[test]
fn config_errors_name_the_file_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    let write = |fixture: &str| {
        std::fs::copy(crate::common::fixtures::dir().join(fixture), &cfg).unwrap();
    };
    let check = || {
        let o = custos(&[])
            .args(["config", "check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    write("bad/unknown-key.toml");
    let e = check();
    assert!(
        e.contains("bad.toml: line 3") && e.contains("unknown field `listen_on`"),
        "{e}"
    );

    write("bad/five-mistakes.toml");
    let e = check();
    for want in [
        "target[0] (t).region: region \"us-east-1\" is outside the allowed regions",
        "service[0] (acme/db).target: target \"t\" is in zone \"z1\", the workload's own availability zone",
        "service[0] (acme/db).schedule: cron expression \"0 0 25 * * *\"",
        "service[0] (acme/db).rpo: bad duration \"soon\"",
        "service[1] (nobody/x).tenant: unknown tenant \"nobody\"",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

pub(crate) const OP: &str = "operator-token-for-tests-0123456789";
pub(crate) const ACME: &str = "acme-partner-token-for-tests-0123";
pub(crate) const AUDITOR: &str = "auditor-token-for-tests-0123456789";

pub(crate) fn write_config(dir: &Path, port: u16, target_url: &str, backup_every: &str) -> PathBuf {
    crate::common::cli::write_secret(dir.join("acme.pass"), "acme secret\n");
    crate::common::cli::write_secret(dir.join("globex.pass"), "globex secret\n");
    crate::common::cli::write_secret(dir.join("op.token"), OP);
    crate::common::cli::write_secret(dir.join("acme.token"), ACME);
    crate::common::cli::write_secret(dir.join("auditor.token"), AUDITOR);
    let src = dir.join("data");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"hello custos\n".repeat(500)).unwrap();
    std::fs::write(src.join("sub/b.bin"), vec![3u8; 200_000]).unwrap();
    crate::common::fixtures::config(
        "two-tenants.toml",
        dir,
        &[
            ("PORT", &port.to_string()),
            ("TARGET_URL", target_url),
            ("BACKUP_EVERY", backup_every),
            ("SRC", &src.display().to_string()),
        ],
    )
}

fn scenario(target_url: &str, env: &[(String, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(dir.path(), port, target_url, "*/3 * * * * *");
    let d = Daemon::start(&cfg, env, dir.path().join("daemon.log"));

    // Scheduled backups of acme/web happen by themselves (every 3 s here).
    d.wait_until(Duration::from_secs(60), || {
        let (_, v) = d.get("/v1/jobs?service=web", OP);
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|j| j["state"] == "succeeded" && j["trigger"]["type"] == "schedule")
        })
    });

    // On-demand backups of the two other classes, one tagged by the partner.
    let (s, db) = d.request("POST", "/v1/services/acme/db/backup", ACME, "");
    assert_eq!(s, 202, "{db}");
    let (s, shop) = d.request(
        "POST",
        "/v1/services/globex/shop/backup",
        OP,
        r#"{"tags": ["pre-change"]}"#,
    );
    assert_eq!(s, 202, "{shop}");
    for job in [&db, &shop] {
        let path = format!("/v1/jobs/{}", job["id"]);
        d.wait_until(Duration::from_secs(60), || finished(&d.get(&path, OP).1));
        let (_, j) = d.get(&path, OP);
        assert_eq!(j["state"], "succeeded", "{j}");
    }

    // The API shows them; the partner sees only its tenant.
    let (_, services) = d.get("/v1/services", OP);
    assert_eq!(services.as_array().unwrap().len(), 3);
    assert!(
        services
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["last_good_snapshot"].is_string()),
        "{services}"
    );
    assert!(
        services
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["rpo_ok"] == true),
        "{services}"
    );
    let (_, mine) = d.get("/v1/services", ACME);
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|s| s["tenant"] == "acme"),
        "{mine}"
    );
    assert_eq!(d.get("/v1/services/globex/shop/snapshots", ACME).0, 404);
    let (_, snaps) = d.get("/v1/services/globex/shop/snapshots", OP);
    assert_eq!(snaps[0]["tags"][0], "pre-change", "{snaps}");
    assert_eq!(d.get("/metrics", "").0, 401, "metrics need a token");
    assert_eq!(d.get("/metrics", ACME).0, 403, "not a partner's");
    let (_, metrics) = d.get("/metrics", OP);
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("custos_rpo_ok{tenant=\"globex\",service=\"shop\",class=\"caas\"} 1"),
        "{metrics}"
    );

    // custos status asks the API.
    let o = custos(env)
        .args(["status", "--config"])
        .arg(&cfg)
        .env("CUSTOS_TOKEN", OP)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        table.contains("acme/db") && table.contains("globex/shop"),
        "{table}"
    );

    // custos restore can hand the job to the daemon, for a ticket.
    let base = format!("http://127.0.0.1:{}", d.port);
    let o = custos(env)
        .args([
            "--json",
            "restore",
            "--daemon",
            &base,
            "--tenant",
            "acme",
            "--service",
            "web",
            "--ticket",
            "SD-1",
        ])
        .env("CUSTOS_TOKEN", ACME)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rec: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rec["state"], "done", "{rec}");
    // A partner never sees a host path; the service desk does.
    assert_eq!(rec["target"], "<host path>", "{rec}");
    let (_, rec) = d.get(&format!("/v1/restores/{}", rec["id"]), OP);
    let restored = std::path::PathBuf::from(rec["target"].as_str().unwrap());
    assert!(
        restored.starts_with(dir.path().join("restores").join("acme")),
        "{rec}"
    );
    let src = dir.path().join("data");
    assert_eq!(
        std::fs::read(restored.join(src.strip_prefix("/").unwrap()).join("a.txt")).unwrap(),
        std::fs::read(src.join("a.txt")).unwrap()
    );
    // Outside caas's 90-day window: refused, exit 1, naming the window.
    let o = custos(env)
        .args([
            "restore",
            "--daemon",
            &base,
            "--tenant",
            "globex",
            "--service",
            "shop",
            "--ticket",
            "SD-2",
            "--at",
            "2025-01-01T00:00:00Z",
        ])
        .env("CUSTOS_TOKEN", OP)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("90d restore window") && e.contains("2025-01-01"),
        "{e}"
    );

    // SIGHUP with a broken config: refused, the daemon goes on.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        good.replace("class = \"caas\"", "class = \"platinum\""),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_until(Duration::from_secs(20), || {
        d.log().contains("config refused on reload")
    });
    assert_eq!(d.get("/v1/services", OP).1.as_array().unwrap().len(), 3);
    // A good one (a service removed) is applied.
    let reduced = good
        .split("[[service]]\ntenant = \"globex\"")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&cfg, reduced).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_until(Duration::from_secs(20), || {
        d.get("/v1/services", OP)
            .1
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });

    // SIGTERM: a clean stop, well within the bound.
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    let mut d = d;
    let status = loop {
        if let Some(s) = d.try_wait() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(80),
            "daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit {status:?}");
    let log = d.log();
    assert!(log.contains("stopped"), "{log}");

    // Operators' commands append to the same log (CUSTOS_AUDIT_LOG).
    let pass2 = dir.path().join("second.pass");
    crate::common::cli::write_secret(&pass2, "a second passphrase\n");
    let o = custos(env)
        .args(["-r", &format!("{target_url}/acme"), "--password-file"])
        .arg(dir.path().join("acme.pass"))
        .args(["key", "add", "--new-password-file"])
        .arg(&pass2)
        .env("CUSTOS_AUDIT_LOG", dir.path().join("state/audit.log"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The daemon mirrored every record it wrote (the last at stop).
    let mirrored =
        std::fs::read_dir(dir.path().join("audit-mirror/audit")).map_or(0, |d| d.count());
    let local = std::fs::read_to_string(dir.path().join("state/audit.log")).unwrap();
    assert!(local.contains("\"key.added\""), "{local}");
    assert_eq!(
        mirrored + 1,
        local.lines().count(),
        "all but the operator's last record"
    );

    // The audit log recorded the acts, and any edit is found.
    let o = custos(env)
        .args(["audit", "verify", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = custos(env)
        .args(["--json", "audit", "show", "--tenant", "acme", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let recs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let actions: Vec<&str> = recs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"backup.requested") && actions.contains(&"restore.done"),
        "{actions:?}"
    );
    let log_path = dir.path().join("state/audit.log");
    let text = std::fs::read_to_string(&log_path).unwrap();
    std::fs::write(&log_path, text.replacen("acme-portal", "someone-else", 1)).unwrap();
    let o = custos(env)
        .args(["audit", "verify", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("line ") && e.contains("edited"), "{e}");
    std::fs::write(&log_path, text).unwrap();

    // With the daemon stopped, status reads the catalog, and the catalog can
    // be rebuilt from the repositories.
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let o = custos(env)
        .args(["catalog", "rebuild", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = custos(env)
        .args(["--json", "status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", String::from_utf8_lossy(&o.stderr)));
    assert!(
        v["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["last_good_snapshot"].is_string()),
        "{v}"
    );
    assert!(v["erasures"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn daemon_on_a_local_target() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&dir.path().join("target").to_string_lossy(), &[]);
}

#[test]
fn daemon_on_the_s3_emulator() {
    let Some(s3) = start_moto() else {
        missing("moto_server");
        return;
    };
    scenario(&s3.repo_url("daemon"), &s3_env(&s3));
}

/// On the daemon's host, without a token: `status`, `restore --daemon`,
/// `catalog rebuild` and `erase` go through the local socket while the
/// daemon holds the catalog; its journal says what it does.
#[test]
fn local_administration_through_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let target = dir.path().join("target");
    let cfg = write_config(dir.path(), port, target.to_str().unwrap(), "0 0 3 1 1 *");
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    let socket = dir.path().join("state/daemon.sock");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is its owner's only");

    let (s, job) = d.request("POST", "/v1/services/acme/web/backup", OP, "");
    assert_eq!(s, 202, "{job}");
    let j = d.wait_finished(&format!("/v1/jobs/{}", job["id"]), OP);
    assert_eq!(j["state"], "succeeded", "{j}");

    let run = |args: &[&str]| {
        let o = custos(&[]).args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let c = cfg.to_str().unwrap();
    let (code, out, err) = run(&["--json", "status", "--config", c]);
    assert_ne!(code, Some(3), "status reached the daemon: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services"].as_array().unwrap().len(), 3, "{v}");

    let (code, out, err) = run(&[
        "--json",
        "restore",
        "latest",
        "--daemon",
        c,
        "--tenant",
        "acme",
        "--service",
        "web",
        "--ticket",
        "SD-1",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["state"], "done", "{r}");
    assert!(
        r["bytes_total"].as_u64().unwrap() > 0,
        "a total is reported: {r}"
    );
    assert_eq!(r["bytes_total"], r["bytes_done"], "{r}");

    let (code, out, err) = run(&["--json", "catalog", "rebuild", "--config", c]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services"], 3, "{v}");

    let (code, _, err) = run(&["erase", "notice", "--config", c, "--tenant", "globex"]);
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = run(&["--json", "erase", "status", "--config", c]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["tenant"], "globex", "{v}");
    // An early erasure off a terminal needs --yes.
    let (code, _, err) = run(&[
        "erase", "execute", "--config", c, "--tenant", "globex", "--now", "--reason", "test",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--yes"), "{err}");

    let log = d.stop();
    for want in [
        "daemon started",
        "local administration socket listening",
        "backup started",
        "backup succeeded",
        "restore finished",
        "stopped",
    ] {
        assert!(log.contains(want), "the log lacks {want:?}:\n{log}");
    }
    assert!(!log.contains("custos init"), "no misleading advice:\n{log}");
    assert!(!socket.exists(), "the socket goes with the daemon");
}

/// Under journald (`JOURNAL_STREAM` naming the daemon's stderr) log lines
/// carry no time of their own; written elsewhere they start with it, to the
/// second.
#[test]
fn log_lines_have_no_time_under_journald() {
    use std::os::unix::fs::MetadataExt;
    for journald in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let target = dir.path().join("target");
        let cfg = write_config(dir.path(), port, target.to_str().unwrap(), "0 0 3 1 1 *");
        let log = dir.path().join("daemon.log");
        std::fs::write(&log, b"").unwrap();
        let md = std::fs::metadata(&log).unwrap();
        let env = if journald {
            vec![(
                "JOURNAL_STREAM".to_string(),
                format!("{}:{}", md.dev(), md.ino()),
            )]
        } else {
            Vec::new()
        };
        let d = Daemon::start(&cfg, &env, log);
        let text = d.stop();
        let started = text
            .lines()
            .find(|l| l.contains("daemon started"))
            .unwrap_or_else(|| panic!("{text}"));
        let timed =
            started.len() > 20 && started.as_bytes()[4] == b'-' && started[..20].ends_with('Z');
        assert_eq!(timed, !journald, "journald={journald}: {started}");
    }
}
