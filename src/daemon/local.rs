//! The daemon's local administration socket: `<state_dir>/daemon.sock`.
//!
//! The same API as the TCP listener, for the commands an operator runs on
//! the daemon's host (`status`, `erase`, `catalog rebuild`, `restore
//! --daemon`) while the daemon holds the catalog. No token: the caller is
//! whoever the kernel says is at the other end of the connection
//! (`SO_PEERCRED`), and only the daemon's own user and root are served,
//! as operators, recorded in the audit log as `local:<user>`.
//!
//! | check | how |
//! |---|---|
//! | who may connect | the socket is 0600 in the state directory (0700): only the daemon's user (and root) reach it |
//! | who is served | the peer's uid, from the kernel, is the daemon's or 0; anyone else's connection is closed unanswered |
//! | a stale socket | a socket file nobody answers on (a daemon that was killed) is replaced at start |
//! | a second daemon | a socket that answers is refused: the state directory is in use |

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};

use crate::{Error, Result};

/// The socket's name in the state directory.
pub const SOCKET: &str = "daemon.sock";

/// The socket of the daemon whose state directory is `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET)
}

/// A request that came through the local socket: the peer's credentials,
/// as the kernel gave them. Inserted by the server only; a TCP request
/// never carries it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalPeer {
    /// The peer's user ID.
    pub uid: u32,
    /// The peer's process ID, when the kernel gave one.
    pub pid: Option<i32>,
}

impl LocalPeer {
    /// The name recorded as the actor of what the peer does.
    pub(crate) fn actor(&self) -> String {
        let user = user_name(self.uid).unwrap_or_else(|| format!("uid {}", self.uid));
        format!("local:{user}")
    }
}

/// The name of user `uid` from the password database, if it has one.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// Whether a peer with `uid` is served: the daemon's own user, or root.
pub(crate) fn allowed(uid: u32) -> bool {
    uid == 0 || uid == rustix::process::geteuid().as_raw()
}

/// Binds the socket in `state_dir`, replacing a stale one.
///
/// # Errors
/// [`Error::Locked`] when another daemon answers on it; I/O errors.
pub(crate) async fn bind(state_dir: &Path) -> Result<UnixListener> {
    let path = socket_path(state_dir);
    if std::fs::symlink_metadata(&path).is_ok() {
        if UnixStream::connect(&path).await.is_ok() {
            return Err(Error::Locked(format!(
                "another daemon answers on {}: one daemon per state directory",
                path.display()
            )));
        }
        std::fs::remove_file(&path)
            .map_err(|e| Error::io_path("cannot remove the stale socket", &path, e))?;
    }
    let listener =
        UnixListener::bind(&path).map_err(|e| Error::io_path("cannot listen on", &path, e))?;
    // The umask already makes it 0600; say so whatever the umask was.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io_path("cannot set the mode of", &path, e))?;
    Ok(listener)
}

/// The peer of an accepted connection, if it may be served.
pub(crate) fn peer_of(stream: &UnixStream) -> std::result::Result<LocalPeer, String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    let peer = LocalPeer {
        uid: cred.uid(),
        pid: cred.pid(),
    };
    if allowed(peer.uid) {
        Ok(peer)
    } else {
        Err(format!(
            "uid {} is neither the daemon's user nor root",
            peer.uid
        ))
    }
}

/// A client of the local socket.
#[derive(Debug, Clone)]
pub struct LocalClient {
    path: PathBuf,
}

/// How long a call may wait for its answer (an erasure answers when done).
const CALL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

impl LocalClient {
    /// The daemon of `state_dir`, if one answers on its socket (`None`:
    /// no socket, or nobody there: the daemon is stopped).
    pub async fn connect(state_dir: &Path) -> Option<LocalClient> {
        let path = socket_path(state_dir);
        UnixStream::connect(&path).await.ok()?;
        Some(LocalClient { path })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GET `path` (or POST `body` to it) and decode the JSON answer.
    ///
    /// # Errors
    /// [`Error::DaemonUnreachable`] when the daemon does not answer; the
    /// API's refusals as errors of the matching kind (404 not found, 422
    /// refused, 400 usage, 409 busy, 403 usage).
    pub async fn call<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        let unreachable = |e: &dyn std::fmt::Display| {
            Error::DaemonUnreachable(format!("{}: {e}", self.path.display()))
        };
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        let driver = tokio::spawn(conn);
        let builder = hyper::Request::builder()
            .uri(path)
            .header(hyper::header::HOST, "localhost");
        let req = match body {
            Some(b) => builder
                .method(hyper::Method::POST)
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(b.to_string()))),
            None => builder
                .method(hyper::Method::GET)
                .body(http_body_util::Full::new(bytes::Bytes::new())),
        }
        .map_err(|e| Error::Internal(format!("cannot build the request: {e}")))?;
        let answer = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| unreachable(&e))?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(&e))?
                .to_bytes();
            Ok::<_, Error>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, answer)
            .await
            .map_err(|_| unreachable(&"no answer"))??;
        driver.abort();
        decode(status.as_u16(), &bytes)
    }
}

/// An API answer: the value on success, else an error of the matching
/// kind carrying the API's sentence.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<T> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body)
            .map_err(|e| Error::Internal(format!("unexpected answer from the daemon: {e}")));
    }
    let msg = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    Err(match status {
        400 | 401 | 403 => Error::Usage(msg),
        404 => Error::NotFound(msg),
        409 | 422 => Error::Refused(msg),
        429 => Error::Busy(msg),
        503 => Error::Locked(msg),
        _ => Error::Problems(format!("the daemon answered {status}: {msg}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_the_daemons_user_are_served_others_not() {
        assert!(allowed(0));
        assert!(allowed(rustix::process::geteuid().as_raw()));
        let other = if rustix::process::geteuid().as_raw() == 65_534 {
            65_533
        } else {
            65_534
        };
        assert!(!allowed(other));
    }

    #[test]
    fn answers_map_to_error_kinds() {
        let body = br#"{"error": "no service a/b"}"#;
        let e = decode::<serde_json::Value>(404, body).unwrap_err();
        assert!(
            matches!(e, Error::NotFound(ref m) if m == "no service a/b"),
            "{e}"
        );
        assert!(matches!(
            decode::<serde_json::Value>(422, body),
            Err(Error::Refused(_))
        ));
        assert!(matches!(
            decode::<serde_json::Value>(403, body),
            Err(Error::Usage(_))
        ));
        assert_eq!(
            decode::<serde_json::Value>(200, b"[1]").unwrap(),
            serde_json::json!([1])
        );
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A socket file nobody listens on (a killed daemon's).
        drop(std::os::unix::net::UnixListener::bind(socket_path(dir.path())).unwrap());
        let live = bind(dir.path()).await.unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(socket_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let e = bind(dir.path()).await.unwrap_err();
        assert!(matches!(e, Error::Locked(_)), "{e}");
        drop(live);
    }
}
