//! The daemon's API under abuse, as a process: half-sent and idle
//! connections do not hold it, failed tokens are throttled per address, TLS
//! serves the API when configured, a plain-HTTP API reachable from other
//! hosts is refused at load, and metrics are for operators and auditors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::cli::{make_tree, write_secret};
use crate::common::daemon::{custos, Daemon};
use crate::common::fixtures;
use crate::common::servers::free_port;

const OP: &str = "operator-token-for-hardening-tests";
const ACME: &str = "acme-token-for-hardening-tests-0";

/// A config with one tenant and service; `daemon_extra` goes into `[daemon]`.
fn config(dir: &Path, listen: &str, daemon_extra: &str) -> PathBuf {
    write_secret(dir.join("acme.pass"), "acme secret\n");
    write_secret(dir.join("op.token"), OP);
    write_secret(dir.join("acme.token"), ACME);
    make_tree(&dir.join("data"));
    let partner = r#"
[[daemon.token]]
name = "acme-portal"
role = "partner"
tenant = "acme"
secret_file = "acme.token"
"#;
    fixtures::config(
        "acme-web.toml",
        dir,
        &[
            ("LISTEN", listen),
            ("DAEMON", daemon_extra),
            ("MORE", partner),
        ],
    )
}

#[test]
fn half_sent_and_idle_connections_do_not_hold_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        "max_connections = 20\nheader_timeout = \"1s\"\nrequest_timeout = \"5s\"",
    );
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    // 60 connections that send half a request head and stop (slowloris).
    let mut held = Vec::new();
    for _ in 0..60 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
            held.push(s);
        }
    }
    // Within the header timeout, the daemon cuts them off and answers again.
    d.wait_until(Duration::from_secs(10), || d.get("/health", "").0 == 200);
    // Every one of them was closed by the daemon (read gives EOF or an
    // error), none stays open past a few seconds.
    let start = Instant::now();
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(start.elapsed() < Duration::from_secs(8));
    // An idle connection (nothing sent) is closed too.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"));
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "idle connection kept {:?}",
        t.elapsed()
    );
    assert_eq!(d.get("/v1/services", OP).0, 200);
    d.stop();
}

#[test]
fn failed_tokens_are_throttled_and_metrics_need_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(dir.path(), &format!("127.0.0.1:{port}"), "");
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    assert_eq!(d.get("/metrics", "").0, 401);
    assert_eq!(d.get("/metrics", ACME).0, 403);
    assert_eq!(d.get("/metrics", OP).0, 200);
    // That 401 was the first of ten failures allowed in a minute.
    for i in 1..10 {
        assert_eq!(d.get("/v1/services", &format!("guess-{i}")).0, 401);
    }
    // The address is throttled now, even with a good token.
    let (s, v) = d.get("/v1/services", OP);
    assert_eq!(s, 429, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("failed authentications"),
        "{v}"
    );
    d.stop();
}

#[test]
fn tls_serves_the_api_and_plain_http_beyond_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A plain-HTTP API reachable from other hosts: refused at load.
    let cfg = config(d, "0.0.0.0:8420", "");
    let o = custos(&[])
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("daemon.listen") && e.contains("plain HTTP"),
        "{e}"
    );
    // Unless allowed explicitly (behind a TLS proxy).
    let cfg = config(d, "0.0.0.0:8420", "allow_plain_http = true");
    let o = custos(&[])
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Metrics without a token only on loopback.
    let cfg = config(d, "127.0.0.1:8420", "metrics_listen = \"0.0.0.0:9420\"");
    let o = custos(&[])
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));

    // TLS: a test CA and a server certificate it signed.
    let (cert, key, ca) = (d.join("api.crt"), d.join("api.key"), d.join("ca.crt"));
    let openssl = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap_or_else(|e| panic!("openssl ({e}): .ci/run installs it"));
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=custos test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "api.key",
                "-out",
                "api.csr",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "api.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "api.crt",
    ]);
    assert!(cert.exists() && key.exists());
    // The key must be private.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let port = free_port();
    let extra =
        "tls_certificate = \"api.crt\"\ntls_key = \"api.key\"\nmetrics_listen = \"127.0.0.1:0\"";
    let cfg = config(d, &format!("127.0.0.1:{port}"), extra);
    let o = custos(&[])
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("api.key") && e.contains("0644"), "{e}");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    let log = d.join("daemon.log");
    let mut child = custos(&[])
        .args(["daemon", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "custos=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let mut ok = false;
    let mut last = String::new();
    for _ in 0..150 {
        let r = rt.block_on(async {
            client
                .get(format!("{url}/v1/services"))
                .bearer_auth(OP)
                .send()
                .await
        });
        match r {
            Ok(r) => {
                assert_eq!(r.status().as_u16(), 200);
                ok = true;
                break;
            }
            Err(e) => {
                let mut m = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    m.push_str(&format!(": {s}"));
                    src = s.source();
                }
                last = m;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(ok, "no HTTPS answer ({last}); log:\n{logged}");
    // The console's session cookie is Secure under TLS.
    let signed_in = rt.block_on(async {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap(),
            )
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{url}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={OP}&next=/"))
            .send()
            .await
            .unwrap()
    });
    assert_eq!(signed_in.status().as_u16(), 303);
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure", "Max-Age=28800"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    // Plain HTTP on the TLS port gets no API answer.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("ok"),
        "plain HTTP answered"
    );
    // SAFETY: kill on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
}
