//! Every example of `docs/api.md` runs, in order, against a real daemon:
//! the API page says only what works.

use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::servers::free_port;
use crate::daemon::{write_config, ACME, AUDITOR, OP};

/// The ```sh blocks of the page, in order.
fn examples(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                out.push(std::mem::take(block));
                current = None;
            }
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

#[test]
fn every_example_of_the_api_page_runs() {
    for tool in ["curl", "jq"] {
        if std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_err()
        {
            crate::common::servers::missing(tool);
            return;
        }
    }
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md"),
    )
    .unwrap();
    let blocks = examples(&page);
    assert!(blocks.len() >= 6, "the page lost its examples");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let target = dir.path().join("target");
    let cfg = write_config(dir.path(), port, target.to_str().unwrap(), "0 0 3 1 1 *");
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    // A first backup, so that restores have a snapshot.
    let (_, job) = d.request("POST", "/v1/services/acme/web/backup", OP, "");
    d.wait_finished(&format!("/v1/jobs/{}", job["id"]), OP);
    // Past the one-second answer-once window of the request above.
    std::thread::sleep(Duration::from_millis(1100));
    let script = format!("set -euo pipefail\n{}", blocks.join("\n"));
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("API", format!("http://127.0.0.1:{port}"))
        .env("TOKEN", OP)
        .env("PARTNER", ACME)
        .env("AUDITOR", AUDITOR)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "an example of docs/api.md failed:\nstdout:\n{}\nstderr:\n{}\ndaemon log:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        d.log()
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("acme/web rpo_ok="), "{out}");
    assert!(out.contains("succeeded: snapshot"), "{out}");
    assert!(out.contains("globex: erasure from"), "{out}");
}

/// The description the daemon serves is valid OpenAPI 3.1, as an
/// independent validator (openapi-spec-validator) reads it.
#[test]
fn the_openapi_description_is_valid() {
    let Some(python) = crate::common::receivers::test_python() else {
        crate::common::servers::missing("openapi-spec-validator (PyPI, in /opt/custos-test/py)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = crate::common::daemon::custos(&[])
        .args(["generate", "openapi"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &out.stdout).unwrap();
    let v = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}
