//! The HTTP server under the API: our own accept loop over hyper, so that a
//! hostile client cannot hold the daemon's descriptors.
//!
//! | limit | default | why |
//! |---|---|---|
//! | connections at once | 256 (`daemon.max_connections`) | beyond it a new connection is closed at once: descriptors are what backups need too |
//! | time to send the request head | 10 s (`daemon.header_timeout`) | a client that sends its headers byte by byte (slowloris) is cut off |
//! | time for a whole connection | 60 s (`daemon.request_timeout`) | one request per connection (no keep-alive): no idle connection stays open |
//! | TLS handshake | within the header timeout | |
//!
//! With `daemon.tls_certificate` and `daemon.tls_key`, every connection is
//! TLS (rustls, TLS 1.2 and 1.3). Each request carries the client's address
//! as [`axum::extract::ConnectInfo`]. The local socket (`super::local`) is
//! served by the same code, with the peer's credentials instead.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::{Error, Result};

/// How the server treats connections.
#[derive(Clone)]
pub struct ServerOptions {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request head (and finish TLS).
    pub header_timeout: Duration,
    /// Time a whole connection may take.
    pub request_timeout: Duration,
    /// TLS, when configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// A rustls server config from a PEM certificate chain and a PEM private
/// key (a secret file: refused when group or others may read it).
///
/// # Errors
/// [`Error::Usage`] naming the file that does not hold what it should.
pub(crate) fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    crate::backend::install_tls_provider();
    let bad = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
        Error::Usage(format!("{what} {}: {e}", p.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("cannot read the TLS certificate", cert, &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad("not a PEM certificate chain:", cert, &e))?;
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "TLS certificate {} holds no certificate",
            cert.display()
        )));
    }
    let key_pem = crate::secrets::read_file(key, "TLS private key")?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| bad("not a PEM private key:", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Usage(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            Error::Usage(format!(
                "TLS certificate {} and key {} do not go together: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Serves `router` on `listener` until `shutdown` turns true.
///
/// # Errors
/// Only on a listener that fails for good; a failed accept (out of
/// descriptors, a reset) is logged and retried.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    opts: ServerOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let tls = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    return Ok(());
                }
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or a connection reset before accept:
                // wait a little instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = opts.max_connections, "connection limit reached: connection closed");
            drop(stream);
            continue;
        };
        let (router, tls, opts) = (router.clone(), tls.clone(), opts.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let work = async {
                match tls {
                    Some(acceptor) => {
                        match tokio::time::timeout(opts.header_timeout, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => {
                                serve_connection(
                                    TokioIo::new(s),
                                    router,
                                    axum::extract::ConnectInfo(peer),
                                    peer.to_string(),
                                    &opts,
                                )
                                .await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                    None => {
                        serve_connection(
                            TokioIo::new(stream),
                            router,
                            axum::extract::ConnectInfo(peer),
                            peer.to_string(),
                            &opts,
                        )
                        .await
                    }
                }
            };
            if tokio::time::timeout(opts.request_timeout, work)
                .await
                .is_err()
            {
                tracing::debug!(%peer, "connection took too long: closed");
            }
        });
    }
}

/// Serves `router` on the local socket until `shutdown` turns true: only
/// peers that `super::local` allows (the daemon's user, root) are served,
/// each request carrying their credentials as [`super::local::LocalPeer`].
/// No time limit on a whole connection: an erasure asked for here answers
/// when it is done (the request head still has `header_timeout`).
///
/// # Errors
/// None in practice: a failed accept is logged and retried.
pub(crate) async fn serve_local(
    listener: tokio::net::UnixListener,
    router: axum::Router,
    opts: ServerOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() {
                    return Ok(());
                }
                continue;
            }
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a local connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = match super::local::peer_of(&stream) {
            Ok(p) => p,
            Err(why) => {
                tracing::warn!("local connection refused: {why}");
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = opts.max_connections,
                "connection limit reached: local connection closed"
            );
            continue;
        };
        let (router, opts) = (router.clone(), opts.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let label = match peer.pid {
                Some(pid) => format!("local uid {} pid {pid}", peer.uid),
                None => format!("local uid {}", peer.uid),
            };
            serve_connection(TokioIo::new(stream), router, peer, label, &opts).await;
        });
    }
}

/// Serves one connection, inserting `ext` (who the peer is) into every
/// request; `label` names the peer in debug logs.
async fn serve_connection<I, E>(
    io: I,
    router: axum::Router,
    ext: E,
    label: String,
    opts: &ServerOptions,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: Clone + Send + Sync + 'static,
{
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ext.clone());
            let mut router = router.clone();
            async move { tower::Service::call(&mut router, req).await }
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .keep_alive(false);
    if let Err(e) = builder.serve_connection(io, service).await {
        tracing::debug!(peer = %label, error = %e, "connection ended with an error");
    }
}
