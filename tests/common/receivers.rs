#![allow(dead_code)]
//! Receivers for notifications: a webhook receiver (an HTTP/1.1 server on
//! 127.0.0.1 in a thread of the test, recording every request and answering
//! as told), and an SMTP sink (aiosmtpd from PyPI, its messages in a
//! Maildir).
//!
//! | receiver | 1. env var | 2. fixed path | 3. `PATH` |
//! |---|---|---|---|
//! | aiosmtpd's Python | `CUSTOS_TEST_PYTHON` | `/opt/custos-test/py/bin/python` | — |

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request path.
    pub path: String,
    /// Headers, names in lower case.
    pub headers: BTreeMap<String, String>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A webhook receiver on 127.0.0.1.
pub struct WebhookReceiver {
    /// Its port.
    pub port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    /// Statuses to answer next, in order (then 200).
    pub answers: Arc<Mutex<VecDeque<u16>>>,
    stop: Arc<AtomicBool>,
}

impl WebhookReceiver {
    /// Starts one; it answers each request with the next of `answers`, then
    /// 200.
    pub fn start(answers: &[u16]) -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.iter().copied().collect::<VecDeque<_>>()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, a, s) = (got.clone(), answers.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let status = a.lock().unwrap().pop_front().unwrap_or(200);
                if let Some(r) = serve(conn, status) {
                    g.lock().unwrap().push(r);
                }
            }
        });
        WebhookReceiver {
            port,
            got,
            answers,
            stop,
        }
    }

    /// The URL of `path` on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(conn: TcpStream, status: u16) -> Option<Received> {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    let mut w = conn;
    let _ = write!(
        w,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    Some(Received {
        path,
        headers,
        body,
        status,
    })
}

/// aiosmtpd, writing what it receives into a Maildir.
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    maildir: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Every message received so far, as text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in rd.flatten() {
                    if let Ok(t) = std::fs::read_to_string(e.path()) {
                        out.push(t);
                    }
                }
            }
        }
        out
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python of the test tools (aiosmtpd, openapi-spec-validator), from
/// `CUSTOS_TEST_PYTHON` or `/opt/custos-test/py` (`.ci/run` installs it).
pub fn test_python() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("CUSTOS_TEST_PYTHON").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(v));
    }
    let fixed = Path::new("/opt/custos-test/py/bin/python");
    fixed.exists().then(|| fixed.to_path_buf())
}

/// Starts an SMTP sink; `None` when aiosmtpd is not installed (call
/// `servers::missing`).
pub fn start_smtp_sink() -> Option<SmtpSink> {
    let python = test_python()?;
    let ok = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    for attempt in 0..5 {
        let port = super::servers::free_port();
        let mut child = Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let mut banner = [0u8; 3];
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                if s.read_exact(&mut banner).is_ok() && &banner == b"220" {
                    return Some(SmtpSink {
                        port,
                        maildir,
                        child,
                        _dir: dir,
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(attempt < 4, "aiosmtpd did not start");
    }
    None
}
