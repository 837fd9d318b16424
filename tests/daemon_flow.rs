//! The whole daemon in this process, from a fixture config, through
//! `daemon::run` on a listener the test binds. (The daemon's pieces
//! assembled by hand are tested in `src/daemon/flow_tests.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

/// The whole daemon in this process: the test binds the API on
/// 127.0.0.1:0, asks for a backup through it, reloads, and stops it through
/// the control channel (what the binary does with SIGHUP and SIGTERM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_in_process_on_a_listener_the_caller_binds() {
    use custos::config::Config;
    use custos::daemon::{Control, Listeners, Setup};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const OP: &str = "operator-token-for-in-process-test";
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    common::cli::write_secret(d.join("acme.pass"), "acme passphrase\n");
    common::cli::write_secret(d.join("op.token"), OP);
    common::cli::make_tree(&d.join("data"));
    let init = std::process::Command::new(env!("CARGO_BIN_EXE_custos"))
        .env_remove("CUSTOS_PASSWORD")
        .arg("-q")
        .arg("-r")
        .arg(d.join("target/acme"))
        .arg("--password-file")
        .arg(d.join("acme.pass"))
        .arg("init")
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let cfg = common::fixtures::config(
        "acme-web.toml",
        d,
        &[("LISTEN", "127.0.0.1:0"), ("DAEMON", ""), ("MORE", "")],
    );
    let setup = Setup::from_config(&Config::load(&cfg).unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (control, rx) = tokio::sync::mpsc::channel(4);
    let notices = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = notices.clone();
    let daemon = tokio::spawn(custos::daemon::run(
        setup,
        Box::new(move || Setup::from_config(&Config::load(&cfg)?)),
        Listeners {
            api: Some(listener),
            metrics: None,
        },
        rx,
        move |n| seen.lock().unwrap().push(format!("{n:?}")),
    ));
    let request = |method: &'static str, path: String| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {OP}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let body_of = |a: &str| a[a.find("\r\n\r\n").unwrap() + 4..].to_string();
    // Three on-demand backups, one after the other (a second apart: an
    // identical POST within a second is answered once).
    for round in 0..3 {
        let mut answer = String::new();
        for _ in 0..100 {
            answer = request("POST", "/v1/services/acme/web/backup".into()).await;
            if answer.starts_with("HTTP/1.1 202") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        let job: serde_json::Value = serde_json::from_str(&body_of(&answer)).unwrap();
        let mut state = String::new();
        for _ in 0..300 {
            let a = request("GET", format!("/v1/jobs/{}", job["id"])).await;
            let v: serde_json::Value = serde_json::from_str(&body_of(&a)).unwrap();
            state = v["state"].as_str().unwrap_or_default().to_string();
            if state == "succeeded" || state == "failed" || state == "warning" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(state, "succeeded", "backup {round}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // The repository existed before the daemon started (made by the CLI,
    // another process): the first job derived the tenant's key, the other
    // two found it in the daemon's key cache.
    let metrics = body_of(&request("GET", "/metrics".into()).await);
    let derivations = metrics
        .lines()
        .find_map(|l| l.strip_prefix("custos_key_derivations_total "))
        .unwrap_or_else(|| panic!("no key derivation counter in:\n{metrics}"));
    assert_eq!(derivations, "1", "{metrics}");
    control.send(Control::Reload).await.unwrap();
    control.send(Control::Stop).await.unwrap();
    daemon.await.unwrap().unwrap();
    let notices = notices.lock().unwrap().clone();
    assert_eq!(
        notices.first().map(String::as_str),
        Some("Ready(\"running\")")
    );
    assert!(notices.contains(&"Reloading".to_string()), "{notices:?}");
    assert_eq!(notices.last().map(String::as_str), Some("Stopping"));
}
