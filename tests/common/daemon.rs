#![allow(dead_code)]
//! `custos daemon` as a child process for integration tests: started on the
//! config's `listen` port with its log in a file, spoken to with plain HTTP,
//! killed and reaped on drop.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cli::bin;

/// The custos binary with a clean environment (no store credentials,
/// passphrases or log settings of the caller), fast key derivation, `env`
/// added, and no stdin.
pub fn custos(env: &[(String, String)]) -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("AZURE_") || k.starts_with("CUSTOS_") {
            c.env_remove(k);
        }
    }
    c.env("CUSTOS_TEST_FAST_KDF", "1").env_remove("RUST_LOG");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c
}

/// A running daemon.
pub struct Daemon {
    child: Child,
    /// The API port (from the config's `listen = "127.0.0.1:PORT"`).
    pub port: u16,
    log: PathBuf,
}

/// True once a job or restore record has ended.
pub fn finished(v: &serde_json::Value) -> bool {
    matches!(
        v["state"].as_str(),
        Some("succeeded" | "warning" | "failed" | "done")
    )
}

impl Daemon {
    /// Starts `custos daemon --config cfg` with `env`, logging (at info) to
    /// `log`, and waits until `/health` answers.
    pub fn start(cfg: &Path, env: &[(String, String)], log: PathBuf) -> Daemon {
        let port = std::fs::read_to_string(cfg)
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
            .and_then(|r| r.split('"').next()?.parse().ok())
            .expect("the config listens on 127.0.0.1:PORT");
        let child = custos(env)
            .args(["daemon", "--config"])
            .arg(cfg)
            .env("RUST_LOG", "custos=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon { child, port, log };
        d.wait_until(Duration::from_secs(30), || d.get("/health", "").0 == 200);
        d
    }

    /// One request with a bearer token; (status, JSON body or the body as a
    /// string; status 0 when the daemon does not answer).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        use std::io::Write;
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, serde_json::Value::Null);
        };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(req.as_bytes()).is_err() {
            return (0, serde_json::Value::Null);
        }
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        let status = resp
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
        // Chunked bodies: keep the JSON between the first { or [ and the last } or ].
        let json = body
            .find(['{', '['])
            .and_then(|a| body.rfind(['}', ']']).map(|b| &body[a..=b]))
            .unwrap_or(body);
        (
            status,
            serde_json::from_str(json).unwrap_or(serde_json::Value::String(body.to_string())),
        )
    }

    /// One raw HTTP exchange: (status, head, body).
    fn raw(&self, req: &str) -> (u16, String, String) {
        use std::io::Write;
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, String::new(), String::new());
        };
        if s.write_all(req.as_bytes()).is_err() {
            return (0, String::new(), String::new());
        }
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, head.to_string(), body.to_string())
    }

    /// Signs in to the web console with `token`: its session cookie
    /// (`custos_session=...`), or the status it answered.
    pub fn console_login(&self, token: &str) -> Result<String, u16> {
        let body = format!("token={token}&next=/");
        let (status, head, _) = self.raw(&format!(
            "POST /login HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        ));
        if status != 303 {
            return Err(status);
        }
        head.lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .and_then(|c| c.split(';').next())
            .map(str::to_string)
            .ok_or(status)
    }

    /// `GET path` of the web console with a session `cookie`: (status,
    /// body).
    pub fn console_get(&self, path: &str, cookie: &str) -> (u16, String) {
        let (status, _, body) = self.raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n",
            self.port
        ));
        (status, body)
    }

    /// `GET path`.
    pub fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        self.request("GET", path, token, "")
    }

    /// Polls `f` until it holds; panics with the daemon's log after `limit`.
    pub fn wait_until(&self, limit: Duration, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out; daemon log:\n{}", self.log());
    }

    /// Waits (at most 60 s) for the job or restore at `path` to end; returns it.
    pub fn wait_finished(&self, path: &str, token: &str) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        self.wait_until(Duration::from_secs(60), || {
            last = self.get(path, token).1;
            finished(&last)
        });
        last
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill on our own child's PID.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Stops it with SIGTERM, waits, and returns its log.
    pub fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let _ = self.child.wait();
        self.log()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
