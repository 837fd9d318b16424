//! The web console in a real browser: headless Chromium driven by
//! Playwright (`tests/console/console.test.mjs`) against a real daemon.
//! A partner sees only its tenant, asks for a restore from the tree and
//! watches it finish, and is refused an old snapshot with the window's
//! sentence; an auditor finds no action and a forged POST refused; the
//! operator sees every tenant. Every page passes the same checks (a label
//! on every control, nothing wider than a phone), and a screenshot of each
//! is kept under `target/console-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::daemon::{custos, Daemon};
use crate::common::servers::{free_port, missing};
use crate::daemon::{ACME, AUDITOR, OP};

/// Where Playwright's `playwright-core` package is (`.ci/run` installs it).
fn playwright() -> Option<PathBuf> {
    let dir = std::env::var_os("CUSTOS_PLAYWRIGHT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/custos-test/node_modules/playwright-core"));
    dir.join("package.json").exists().then_some(dir)
}

/// The system's Chromium (Debian `chromium`).
fn chromium() -> Option<PathBuf> {
    let p = std::env::var_os("CUSTOS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    p.exists().then_some(p)
}

fn write_config(dir: &Path, port: u16) -> PathBuf {
    let w = crate::common::cli::write_secret;
    w(dir.join("acme.pass"), "acme secret\n");
    w(dir.join("globex.pass"), "globex secret\n");
    w(dir.join("op.token"), OP);
    w(dir.join("acme.token"), ACME);
    w(dir.join("auditor.token"), AUDITOR);
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.txt"), b"hello custos\n".repeat(200)).unwrap();
    std::fs::write(data.join("sub/b.bin"), vec![7u8; 300_000]).unwrap();
    std::fs::write(
        data.join("sub/[odd]*name.txt"),
        b"glob characters in a name\n",
    )
    .unwrap();
    let text = format!(
        r#"
[daemon]
state_dir = "state"
listen = "127.0.0.1:{port}"
jitter = "0s"
snapshot_refresh = "1s"
restore_root = "restores"
audit_mirror = "audit-mirror"

[[daemon.token]]
name = "desk"
role = "operator"
secret_file = "op.token"

[[daemon.token]]
name = "acme-portal"
role = "partner"
tenant = "acme"
secret_file = "acme.token"

[[daemon.token]]
name = "audit"
role = "auditor"
secret_file = "auditor.token"

[[target]]
name = "primary"
url = "repo"
region = "eu-west-par"
zone = "par2"

[[tenant]]
id = "acme"
contract = "ACME-2026-01"
password_file = "acme.pass"

[[tenant]]
id = "globex"
contract = "GLOBEX-2025-07"
password_file = "globex.pass"

[[service]]
tenant = "acme"
name = "k8s-shop"
class = "caas"
zone = "par1"
target = "primary"
schedule = "0 0 1 * * *"
source = {{ paths = ["{data}"] }}

[[service]]
tenant = "globex"
name = "share"
class = "staas-standard"
zone = "par1"
target = "primary"
schedule = "0 0 1 * * *"
rto = "5s"
source = {{ paths = ["{data}"] }}
drill = {{ schedule = "*/4 * * * * *", check_command = ["true"] }}
"#,
        data = data.display()
    );
    let path = dir.join("custos.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_console_in_a_real_browser() {
    let (Some(pw), Some(chrome)) = (playwright(), chromium()) else {
        missing("Chromium (Debian chromium) and playwright-core (npm, in /opt/custos-test)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(dir.path(), port);
    let data = dir.path().join("data");

    // An old snapshot of acme/k8s-shop (outside its 90-day window), made
    // with the command line as another host would.
    let repo = dir.path().join("repo/acme");
    let out = custos(&[])
        .args(["init", "--repo"])
        .arg(&repo)
        .args(["--password-file"])
        .arg(dir.path().join("acme.pass"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = custos(&[])
        .args(["--json", "backup", "--repo"])
        .arg(&repo)
        .args(["--password-file"])
        .arg(dir.path().join("acme.pass"))
        .args([
            "--tenant",
            "acme",
            "--service",
            "k8s-shop",
            "--time",
            "2025-01-10T01:00:00Z",
            "--tag",
            "pre-change",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = custos(&[])
        .args(["pin", "--repo"])
        .arg(&repo)
        .args(["--password-file"])
        .arg(dir.path().join("acme.pass"))
        .args(["--reason", "legal hold SD-77"])
        .arg(old["id"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    // Today's snapshots, a notice of erasure for globex.
    for (svc, body) in [
        ("acme/k8s-shop", r#"{"tags": ["post-change"]}"#),
        ("globex/share", ""),
    ] {
        let (s, job) = d.request("POST", &format!("/v1/services/{svc}/backup"), OP, body);
        assert_eq!(s, 202, "{job}");
        let id = job["id"].as_u64().unwrap();
        let done = d.wait_finished(&format!("/v1/jobs/{id}"), OP);
        assert_eq!(done["state"], "succeeded", "{done}");
    }
    let (s, rec) = d.request(
        "POST",
        "/v1/erasures/globex/notice",
        OP,
        r#"{"contract": "GLOBEX-2025-07"}"#,
    );
    assert_eq!(s, 201, "{rec}");
    // Two drills measured.
    d.wait_until(Duration::from_secs(60), || {
        let (_, jobs) = d.get("/v1/jobs?service=share", OP);
        jobs.as_array().is_some_and(|a| {
            a.iter()
                .filter(|j| j["kind"] == "drill" && j["state"] == "succeeded")
                .count()
                >= 2
        })
    });
    // Both acme snapshots seen by the daemon.
    d.wait_until(Duration::from_secs(30), || {
        let (_, s) = d.get("/v1/services/acme/k8s-shop/snapshots", OP);
        s.as_array().is_some_and(|a| a.len() == 2)
    });

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/console.test.mjs");
    let out = Command::new("node")
        .arg(&script)
        .env("CUSTOS_URL", format!("http://127.0.0.1:{port}"))
        .env("CUSTOS_PLAYWRIGHT", &pw)
        .env("CUSTOS_CHROMIUM", &chrome)
        .env("CUSTOS_SHOTS", &shots)
        .env("CUSTOS_DATA", &data)
        .env("TOKEN_OPERATOR", OP)
        .env("TOKEN_PARTNER", ACME)
        .env("TOKEN_AUDITOR", AUDITOR)
        .output()
        .unwrap();
    let log = d.stop();
    assert!(
        out.status.success(),
        "browser test failed:\n{}{}\ndaemon log:\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The partner's restore is on disk as it was backed up.
    let restored: Vec<PathBuf> = walk(&dir.path().join("restores/acme"));
    let b = restored
        .iter()
        .find(|p| p.ends_with("sub/b.bin"))
        .unwrap_or_else(|| panic!("no sub/b.bin among {restored:?}"));
    assert_eq!(std::fs::read(b).unwrap(), vec![7u8; 300_000]);
    assert!(
        restored.iter().any(|p| p.ends_with("sub/[odd]*name.txt")),
        "a name with glob characters is restored as chosen: {restored:?}"
    );
    assert!(
        !restored.iter().any(|p| p.ends_with("a.txt")),
        "only what was chosen: {restored:?}"
    );
    for name in [
        "partner-overview.png",
        "partner-tree.png",
        "partner-restore-done.png",
        "partner-restore-refused.png",
        "auditor-overview.png",
        "auditor-audit.png",
        "operator-overview.png",
        "operator-service.png",
        "operator-drills.png",
        "operator-erasures.png",
        "operator-audit.png",
        "phone-overview.png",
    ] {
        assert!(shots.join(name).exists(), "no screenshot {name}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
