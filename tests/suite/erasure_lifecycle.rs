//! The end of a contract seen from the daemon: every target the tenant ever
//! used is erased (also one a config change removed), the erased tenant is
//! refused everywhere (backups and restores 409, its partner token 401, no
//! job run, warnings at start and in `config check`), no file of the
//! catalog or the caches names it afterwards, leftover drill scratch is
//! wiped at start; and a snapshot made by the command line is restorable
//! through the API without any daemon job.

use std::path::{Path, PathBuf};

use crate::common::cli::make_tree;
use crate::common::daemon::Daemon;
use crate::common::servers::free_port;

const TENANT: &str = "zqacme";

fn custos() -> std::process::Command {
    crate::common::daemon::custos(&[])
}

fn ok(c: &mut std::process::Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const DESK: &str = "desk-secret-0123456789";
const ZQ: &str = "zqacme-portal-secret-0123";
const GX: &str = "globex-portal-secret-0123";

fn config(d: &Path, port: u16, with_old_target: bool) -> PathBuf {
    let old = if with_old_target {
        format!(
            "[[target]]\nname = \"old\"\nurl = \"{}\"\nregion = \"eu-west-par\"\nzone = \"par4\"\n",
            d.join("old").display()
        )
    } else {
        String::new()
    };
    let zq_target = if with_old_target { "old" } else { "primary" };
    crate::common::fixtures::config(
        "erasure-lifecycle.toml",
        d,
        &[
            ("PORT", &port.to_string()),
            ("TENANT", TENANT),
            ("OLD", &old),
            ("PRIMARY", &d.join("primary").display().to_string()),
            ("ZQ_TARGET", zq_target),
            ("SRC", &d.join("src").display().to_string()),
        ],
    )
}

/// True when some file under `dir` contains `needle`.
fn any_file_contains(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
            {
                hits.push(p);
            }
        }
    }
    hits
}

#[test]
fn an_erased_tenant_is_erased_everywhere_and_refused_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (f, s) in [("desk.token", DESK), ("zq.token", ZQ), ("gx.token", GX)] {
        crate::common::cli::write_secret(d.join(f), s);
    }
    crate::common::cli::write_secret(d.join(format!("{TENANT}.pass")), "zq passphrase\n");
    crate::common::cli::write_secret(d.join("globex.pass"), "globex passphrase\n");
    ok(custos()
        .args(["certificate", "keygen", "--out"])
        .arg(d.join("operator.key")));
    make_tree(&d.join("src"));
    let port = free_port();
    let cfg = config(d, port, true);

    // 1. Both tenants back up through the daemon; the tenant being erased
    // uses a target that a later config no longer has.
    let daemon = Daemon::start(&cfg, &[], d.join("daemon-1.log"));
    for tenant in [TENANT, "globex"] {
        let (s, job) = daemon.request(
            "POST",
            &format!("/v1/services/{tenant}/web/backup"),
            DESK,
            "",
        );
        assert_eq!(s, 202, "{job}");
        let job = daemon.wait_finished(&format!("/v1/jobs/{}", job["id"]), DESK);
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    // A ticketed restore of the tenant: its output is erased later.
    let (s, r) = daemon.request(
        "POST",
        &format!("/v1/services/{TENANT}/web/restores"),
        ZQ,
        r#"{"ticket": "SD-1"}"#,
    );
    assert_eq!(s, 202, "{r}");
    assert_eq!(
        daemon.wait_finished(&format!("/v1/restores/{}", r["id"]), DESK)["state"],
        "done"
    );

    // 2. A snapshot made by the command line is restorable through the
    // API at once (the refresh period is an hour: the request itself looks).
    let cli = custos()
        .args(["--json", "-r"])
        .arg(d.join("primary/globex"))
        .arg("--password-file")
        .arg(d.join("globex.pass"))
        .args(["backup", "--service", "web", "--tenant", "globex"])
        .arg(d.join("src"))
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let snap: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    let id = snap["id"].as_str().unwrap();
    let (s, r) = daemon.request(
        "POST",
        "/v1/services/globex/web/restores",
        GX,
        &format!(r#"{{"ticket": "SD-2", "snapshot": "{id}"}}"#),
    );
    assert_eq!(s, 202, "a CLI-made snapshot is not seen: {r}");
    let done = daemon.wait_finished(&format!("/v1/restores/{}", r["id"]), DESK);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["snapshot"], id);
    daemon.stop();

    // 3. A drill killed with the daemon left scratch behind.
    let leftover = d.join(format!("state/drills/{TENANT}/web-99"));
    std::fs::create_dir_all(&leftover).unwrap();
    std::fs::write(leftover.join("restored.sql"), b"tenant data").unwrap();

    // 4. The config moves the tenant's service to another target, then the
    // contract ends: the old target is erased too.
    let cfg = config(d, port, false);
    assert!(d.join(format!("old/{TENANT}/config")).exists());
    ok(custos()
        .args(["erase", "notice", "--tenant", TENANT, "--config"])
        .arg(&cfg));
    let out = ok(custos()
        .args([
            "erase", "execute", "--tenant", TENANT, "--now", "--yes", "--reason", "SD-3",
            "--config",
        ])
        .arg(&cfg));
    assert!(out.contains("old"), "{out}");
    assert!(
        !d.join(format!("old/{TENANT}")).exists()
            || std::fs::read_dir(d.join(format!("old/{TENANT}")))
                .unwrap()
                .next()
                .is_none(),
        "the old target still holds the tenant's data"
    );
    assert!(!d.join(format!("state/restores/{TENANT}")).exists());
    assert!(!d.join(format!("{TENANT}.pass")).exists());

    // 5. `config check` warns; the daemon starts, wipes the scratch, warns,
    // and refuses the tenant everywhere.
    let o = custos()
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success());
    let warn = String::from_utf8_lossy(&o.stderr);
    assert!(
        warn.contains(&format!("tenant {TENANT} was erased")),
        "{warn}"
    );
    let daemon = Daemon::start(&cfg, &[], d.join("daemon-2.log"));
    assert!(!leftover.exists(), "drill scratch not wiped at start");
    let (s, v) = daemon.request(
        "POST",
        &format!("/v1/services/{TENANT}/web/backup"),
        DESK,
        "",
    );
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("was erased"), "{v}");
    let (s, v) = daemon.request(
        "POST",
        &format!("/v1/services/{TENANT}/web/restores"),
        DESK,
        r#"{"ticket": "SD-4"}"#,
    );
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("was erased"), "{v}");
    let (s, v) = daemon.request("GET", "/v1/services", ZQ, "");
    assert_eq!(s, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("erased"), "{v}");
    // The console: the erased tenant's partner cannot sign in; the
    // operator finds the erasure and its certificate, which verifies.
    assert_eq!(daemon.console_login(ZQ), Err(401));
    let desk = daemon.console_login(DESK).unwrap();
    let (s, page) = daemon.console_get("/erasures", &desk);
    assert_eq!(s, 200);
    assert!(page.contains(TENANT) && page.contains("erased"), "{page}");
    let (s, page) = daemon.console_get(&format!("/erasures/{TENANT}/certificate"), &desk);
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("signature verifies"), "{page}");
    assert!(page.contains("SD-3"), "the early start's reason: {page}");
    let (s, json) = daemon.console_get(&format!("/erasures/{TENANT}/certificate.json"), &desk);
    assert_eq!(s, 200);
    let cert: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(cert["certificate"]["tenant"], TENANT);
    assert!(page.contains(cert["public_key"].as_str().unwrap()));
    // The other tenant goes on.
    let (s, job) = daemon.request("POST", "/v1/services/globex/web/backup", GX, "");
    assert_eq!(s, 202, "{job}");
    assert_eq!(
        daemon.wait_finished(&format!("/v1/jobs/{}", job["id"]), DESK)["state"],
        "succeeded"
    );
    let (_, jobs) = daemon.request("GET", "/v1/jobs", DESK, "");
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["tenant"] != TENANT),
        "{jobs}"
    );
    let log = daemon.stop();
    assert!(
        log.contains("erased") && log.contains("still in the config"),
        "{log}"
    );

    // 6. No file of the catalog or the caches names the tenant; the audit
    // log keeps the erasure's records, which the certificate anchors.
    for sub in ["state/catalog", "state/cache"] {
        let hits = any_file_contains(&d.join(sub), TENANT.as_bytes());
        assert!(hits.is_empty(), "{sub} still names the tenant: {hits:?}");
    }
    let audit = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    assert!(audit.contains("erasure.completed"));
}

#[test]
fn the_daemon_erases_on_the_due_date_and_keeps_nothing_naming_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (f, s) in [("desk.token", DESK), ("zq.token", ZQ), ("gx.token", GX)] {
        crate::common::cli::write_secret(d.join(f), s);
    }
    crate::common::cli::write_secret(d.join(format!("{TENANT}.pass")), "zq passphrase\n");
    crate::common::cli::write_secret(d.join("globex.pass"), "globex passphrase\n");
    ok(custos()
        .args(["certificate", "keygen", "--out"])
        .arg(d.join("operator.key")));
    make_tree(&d.join("src"));
    let port = free_port();
    let cfg = config(d, port, false);
    let daemon = Daemon::start(&cfg, &[], d.join("daemon-1.log"));
    for tenant in [TENANT, "globex"] {
        let (s, job) = daemon.request(
            "POST",
            &format!("/v1/services/{tenant}/web/backup"),
            DESK,
            "",
        );
        assert_eq!(s, 202, "{job}");
        let job = daemon.wait_finished(&format!("/v1/jobs/{}", job["id"]), DESK);
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    daemon.stop();
    // Notice was given 22 days ago: the notice period is over.
    let at = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(22 * 24)).to_string();
    ok(custos()
        .args([
            "erase", "notice", "--tenant", TENANT, "--at", &at, "--config",
        ])
        .arg(&cfg));
    // The daemon erases by itself at start, while serving the other tenant.
    let daemon = Daemon::start(&cfg, &[], d.join("daemon-2.log"));
    daemon.wait_until(std::time::Duration::from_secs(60), || {
        daemon.request("GET", "/v1/services", ZQ, "").0 == 401
            && std::fs::read_dir(d.join("state/certificates")).is_ok_and(|mut r| {
                r.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json")))
            })
    });
    let (s, v) = daemon.request(
        "POST",
        &format!("/v1/services/{TENANT}/web/backup"),
        DESK,
        "",
    );
    assert_eq!(s, 409, "{v}");
    let (s, job) = daemon.request("POST", "/v1/services/globex/web/backup", GX, "");
    assert_eq!(s, 202, "{job}");
    assert_eq!(
        daemon.wait_finished(&format!("/v1/jobs/{}", job["id"]), DESK)["state"],
        "succeeded"
    );
    let log = daemon.stop();
    assert!(log.contains("tenant erased"), "{log}");
    assert!(!d.join(format!("primary/{TENANT}/config")).exists());
    for sub in ["state/catalog", "state/cache"] {
        let hits = any_file_contains(&d.join(sub), TENANT.as_bytes());
        assert!(hits.is_empty(), "{sub} still names the tenant: {hits:?}");
    }
}
