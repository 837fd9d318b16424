//! Real object-store servers for integration tests: moto (S3) and Azurite
//! (Azure Blob).
//!
//! Every `start_*` call launches its own server process on its own free port
//! on 127.0.0.1 and creates one uniquely named bucket or container in it, so
//! any number of tests can run in parallel without sharing state. Dropping the
//! returned handle kills and reaps the process; both servers keep everything
//! in memory, so nothing is left on disk.
//!
//! A test that needs a server does:
//!
//! ```ignore
//! let Some(s3) = start_moto() else { missing("moto_server"); return; };
//! ```
//!
//! [`missing`] fails the test when `CI=true` (CI must install the servers, see
//! `.ci/run`) and only prints a SKIP banner otherwise.
//!
//! # Where the binaries come from
//!
//! | server | 1. env var | 2. fixed path | 3. `PATH` |
//! |---|---|---|---|
//! | moto | `CUSTOS_MOTO_SERVER` | `/opt/custos-test/moto/bin/moto_server` | `moto_server` |
//! | Azurite | `CUSTOS_AZURITE_BLOB` | `/opt/custos-test/node_modules/.bin/azurite-blob` | `azurite-blob` |
//!
//! # Pointing object_store 0.14.2 at Azurite on a custom port
//!
//! `MicrosoftAzureBuilder::with_use_emulator(true)` **ignores** `with_endpoint`
//! and the `AZURE_STORAGE_ENDPOINT` config key: in `build()` the emulator branch
//! reads the *process environment* variable `AZURITE_BLOB_STORAGE_URL`
//! (default `http://127.0.0.1:10000`, see `url_from_env` in
//! `src/azure/builder.rs`), and the client then puts the account name as the
//! first path segment (`AzureConfig::path_url` in `src/azure/client.rs`).
//! Since the environment is process-global, that only works per process: use
//! [`azure_env`] for a spawned `custos` process. Inside a test process with
//! several servers in parallel, use [`azure_builder`] instead: it does not set
//! the emulator flag but passes the full endpoint
//! `http://127.0.0.1:PORT/devstoreaccount1`, the account and the well-known
//! key, and allows plain HTTP. That produces the very same URLs and SharedKey
//! signatures as emulator mode. The only behavioural differences are that
//! object_store then sends `startFrom` for `list_with_offset` (which Azurite
//! ignores; emulator mode filters client-side instead) and attempts blob tags.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// The well-known Azurite (and legacy Azure Storage Emulator) account name.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";

/// The well-known, public key of [`AZURITE_ACCOUNT`] (the same string as
/// Azurite's `EMULATOR_ACCOUNT_KEY` and object_store's constant).
pub const AZURITE_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Credentials moto accepts (it accepts any; these are the conventional ones).
pub const MOTO_ACCESS_KEY_ID: &str = "testing";
/// See [`MOTO_ACCESS_KEY_ID`].
pub const MOTO_SECRET_ACCESS_KEY: &str = "testing";
/// The region the moto bucket is created in.
pub const MOTO_REGION: &str = "us-east-1";

/// How many fresh ports to try when a server exits right after starting
/// (typically because something else grabbed the port in between).
const START_ATTEMPTS: usize = 4;
/// How long a server may take to answer HTTP. Generous: on a loaded two-core
/// machine with several tests starting servers at once, moto takes seconds.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Socket timeouts for our own small HTTP requests.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The API version sent when creating a container (the one object_store 0.14.2
/// uses; Azurite runs with `--skipApiVersionCheck` anyway).
const AZURE_API_VERSION: &str = "2023-11-03";

// ---------------------------------------------------------------------------
// moto (S3)
// ---------------------------------------------------------------------------

/// A running moto S3 server with one empty bucket. Killed on drop.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`, for `AmazonS3Builder::with_endpoint` or
    /// `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    /// The bucket created for this server; path-style addressing.
    pub bucket: String,
    /// The TCP port the server listens on.
    pub port: u16,
    child: Child,
}

impl S3Server {
    /// `s3://BUCKET/PREFIX` (or `s3://BUCKET` for an empty prefix).
    pub fn repo_url(&self, prefix: &str) -> String {
        join_url("s3", &self.bucket, prefix)
    }

    /// Turns object versioning on for the bucket.
    pub fn enable_versioning(&self) {
        let body = "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status></VersioningConfiguration>";
        let r = http_request_body(
            self.port,
            "PUT",
            &format!("/{}?versioning", self.bucket),
            &[],
            body,
        )
        .expect("PUT ?versioning");
        assert_eq!(r.status, 200, "enable versioning: {}", r.text);
    }

    /// Creates another bucket, with S3 Object Lock enabled; returns its name.
    pub fn create_locked_bucket(&self) -> String {
        let name = unique_name("custos-locked");
        let r = http_request(
            self.port,
            "PUT",
            &format!("/{name}"),
            &[("x-amz-bucket-object-lock-enabled", "true".to_string())],
        )
        .expect("PUT bucket");
        assert_eq!(r.status, 200, "create locked bucket: {}", r.text);
        name
    }

    /// The raw `ListObjectVersions` answer for keys under `prefix`.
    pub fn list_versions(&self, bucket: &str, prefix: &str) -> String {
        let r = http_request(
            self.port,
            "GET",
            &format!("/{bucket}?versions&prefix={prefix}"),
            &[],
        )
        .expect("GET ?versions");
        assert_eq!(r.status, 200, "list versions: {}", r.text);
        r.text
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Starts a private moto server and creates a bucket in it.
///
/// Returns `None` if no `moto_server` binary is found (see the module docs
/// for the search order); the caller should then call [`missing`].
///
/// # Panics
///
/// If the binary exists but the server cannot be started, does not answer
/// within 30 s, or refuses to create the bucket.
pub fn start_moto() -> Option<S3Server> {
    let binary = find_binary(
        "CUSTOS_MOTO_SERVER",
        "/opt/custos-test/moto/bin/moto_server",
        "moto_server",
    )?;
    let (child, port) = spawn_ready("moto_server", &binary, "/", |port| {
        let mut cmd = Command::new(&binary);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        cmd
    });
    // Build the handle first so the child is killed if bucket creation panics.
    let server = S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        bucket: unique_name("custos-test"),
        port,
        child,
    };
    // moto does not check signatures, so a bare PUT creates the bucket (in
    // us-east-1, as there is no CreateBucketConfiguration body).
    let path = format!("/{}", server.bucket);
    let response = http_request(port, "PUT", &path, &[]).unwrap_or_else(|e| {
        panic!("moto_server on port {port}: PUT {path} (create bucket) failed: {e}")
    });
    assert_eq!(
        response.status, 200,
        "moto_server on port {port}: PUT {path} (create bucket) answered:\n{}",
        response.text
    );
    Some(server)
}

/// Environment variables that make `object_store::aws::AmazonS3Builder::from_env()`
/// (and so a spawned `custos` process) talk to `server`.
///
/// Add the bucket yourself (`s3://BUCKET/...` URL or `AWS_BUCKET`).
pub fn s3_env(server: &S3Server) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", server.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", MOTO_REGION),
        ("AWS_ACCESS_KEY_ID", MOTO_ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET_ACCESS_KEY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Installs rustls' ring provider for clients built in the test process.
pub fn install_crypto_provider() {
    // Fails only if a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An `AmazonS3Builder` configured for `server` and its bucket, ready to
/// `build()`. Uses no environment variables, so it is safe in parallel tests.
pub fn s3_builder(server: &S3Server) -> object_store::aws::AmazonS3Builder {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&server.endpoint)
        .with_allow_http(true)
        .with_region(MOTO_REGION)
        .with_bucket_name(&server.bucket)
        .with_access_key_id(MOTO_ACCESS_KEY_ID)
        .with_secret_access_key(MOTO_SECRET_ACCESS_KEY)
}

// ---------------------------------------------------------------------------
// Azurite (Azure Blob)
// ---------------------------------------------------------------------------

/// A running Azurite blob server with one empty container. Killed on drop.
pub struct AzuriteServer {
    /// `http://127.0.0.1:PORT/devstoreaccount1`: the account endpoint
    /// (path-style, the account is the first path segment).
    pub endpoint: String,
    /// The TCP port the server listens on.
    pub port: u16,
    /// The container created for this server.
    pub container: String,
    child: Child,
}

impl AzuriteServer {
    /// `az://CONTAINER/PREFIX` (or `az://CONTAINER` for an empty prefix).
    pub fn repo_url(&self, prefix: &str) -> String {
        join_url("az", &self.container, prefix)
    }

    /// `http://127.0.0.1:PORT`: the value `AZURITE_BLOB_STORAGE_URL` needs
    /// (without the account segment, which object_store appends itself).
    pub fn blob_storage_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets the account's soft delete (`DeleteRetentionPolicy`) through Set
    /// Blob Service Properties.
    pub fn set_soft_delete(&self, days: u32, allow_permanent_delete: bool) {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><StorageServiceProperties><DeleteRetentionPolicy><Enabled>true</Enabled><Days>{days}</Days><AllowPermanentDelete>{allow_permanent_delete}</AllowPermanentDelete></DeleteRetentionPolicy></StorageServiceProperties>"
        );
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&jiff::Timestamp::now())
            .expect("formatting the current time as an HTTP date");
        let signature = shared_key_signature_with_body(
            "PUT",
            &[("x-ms-date", &date), ("x-ms-version", AZURE_API_VERSION)],
            &format!("/{AZURITE_ACCOUNT}/"),
            &[("restype", "service"), ("comp", "properties")],
            Some((body.len(), "application/xml")),
        );
        let path = format!("/{AZURITE_ACCOUNT}/?restype=service&comp=properties");
        let headers = [
            ("x-ms-date", date.clone()),
            ("x-ms-version", AZURE_API_VERSION.to_string()),
            ("Content-Type", "application/xml".to_string()),
            (
                "Authorization",
                format!("SharedKey {AZURITE_ACCOUNT}:{signature}"),
            ),
        ];
        let r = http_request_body(self.port, "PUT", &path, &headers, &body)
            .expect("PUT service properties");
        assert_eq!(r.status, 202, "set service properties: {}", r.text);
    }
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Starts a private Azurite blob server and creates a container in it.
///
/// Returns `None` if no `azurite-blob` binary is found (see the module docs
/// for the search order); the caller should then call [`missing`].
///
/// # Panics
///
/// If the binary exists but the server cannot be started, does not answer
/// within 30 s, or refuses to create the container.
pub fn start_azurite() -> Option<AzuriteServer> {
    let binary = find_binary(
        "CUSTOS_AZURITE_BLOB",
        "/opt/custos-test/node_modules/.bin/azurite-blob",
        "azurite-blob",
    )?;
    // Any HTTP answer means ready; unsigned requests get a 403, which is fine.
    let probe = format!("/{AZURITE_ACCOUNT}?comp=list");
    let (child, port) = spawn_ready("azurite-blob", &binary, &probe, |port| {
        let mut cmd = Command::new(&binary);
        cmd.args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--inMemoryPersistence",
            "--silent",
            "--skipApiVersionCheck",
            "--loose",
            "--disableTelemetry",
        ]);
        // With --inMemoryPersistence nothing is written to the workspace
        // (--location, default: cwd); run in the temp dir all the same.
        cmd.current_dir(std::env::temp_dir());
        cmd
    });
    let server = AzuriteServer {
        endpoint: format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"),
        port,
        // Container names: 3-63 chars, lowercase letters, digits, single hyphens.
        container: unique_name("custos-test"),
        child,
    };
    create_container(port, &server.container);
    Some(server)
}

/// Environment variables that make `object_store::azure::MicrosoftAzureBuilder::from_env()`
/// (and so a spawned `custos` process) talk to `server` in emulator mode.
///
/// `AZURITE_BLOB_STORAGE_URL` is read by object_store's emulator branch at
/// `build()` time and is the only way to give it a port other than 10000.
/// Add the container yourself (`az://CONTAINER/...` URL or
/// `AZURE_CONTAINER_NAME`).
pub fn azure_env(server: &AzuriteServer) -> Vec<(String, String)> {
    [
        ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
        ("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT.to_string()),
        ("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_ACCOUNT_KEY.to_string()),
        ("AZURITE_BLOB_STORAGE_URL", server.blob_storage_url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A `MicrosoftAzureBuilder` configured for `server` and its container, ready
/// to `build()`, without touching the process environment (see the module
/// docs for why this does not use `with_use_emulator(true)`).
pub fn azure_builder(server: &AzuriteServer) -> object_store::azure::MicrosoftAzureBuilder {
    object_store::azure::MicrosoftAzureBuilder::new()
        .with_endpoint(server.endpoint.clone())
        .with_allow_http(true)
        .with_account(AZURITE_ACCOUNT)
        .with_access_key(AZURITE_ACCOUNT_KEY)
        .with_container_name(&server.container)
}

/// `PUT /devstoreaccount1/CONTAINER?restype=container`, SharedKey-signed.
///
/// object_store has no "create container" call, so we do it by hand.
fn create_container(port: u16, container: &str) {
    let date = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&jiff::Timestamp::now())
        .expect("formatting the current time as an HTTP date");
    let signature = shared_key_signature(
        "PUT",
        &[("x-ms-date", &date), ("x-ms-version", AZURE_API_VERSION)],
        &format!("/{AZURITE_ACCOUNT}/{container}"),
        &[("restype", "container")],
    );
    let path = format!("/{AZURITE_ACCOUNT}/{container}?restype=container");
    let headers = [
        ("x-ms-date", date.clone()),
        ("x-ms-version", AZURE_API_VERSION.to_string()),
        (
            "Authorization",
            format!("SharedKey {AZURITE_ACCOUNT}:{signature}"),
        ),
    ];
    let response = http_request(port, "PUT", &path, &headers).unwrap_or_else(|e| {
        panic!("azurite-blob on port {port}: PUT {path} (create container) failed: {e}")
    });
    assert_eq!(
        response.status, 201,
        "azurite-blob on port {port}: PUT {path} (create container) answered:\n{}",
        response.text
    );
}

/// The SharedKey signature of a request without body and without standard
/// conditional headers (Blob service, version 2015-02-21 or later).
///
/// `x_ms_headers` must be lowercase; `path` is the URL path (starting with the
/// account, path-style); `query` the query parameters, each name once.
/// See <https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key>.
fn shared_key_signature(
    verb: &str,
    x_ms_headers: &[(&str, &str)],
    path: &str,
    query: &[(&str, &str)],
) -> String {
    shared_key_signature_with_body(verb, x_ms_headers, path, query, None)
}

/// [`shared_key_signature`] for a request with a body of (length, type).
fn shared_key_signature_with_body(
    verb: &str,
    x_ms_headers: &[(&str, &str)],
    path: &str,
    query: &[(&str, &str)],
    body: Option<(usize, &str)>,
) -> String {
    let mut string_to_sign = String::new();
    string_to_sign.push_str(verb);
    string_to_sign.push('\n');
    // Content-Encoding, Content-Language, Content-Length (empty when 0),
    // Content-MD5, Content-Type, Date, If-Modified-Since, If-Match,
    // If-None-Match, If-Unmodified-Since, Range.
    match body {
        None => string_to_sign.push_str(&"\n".repeat(11)),
        Some((len, kind)) => {
            string_to_sign.push_str(&format!("\n\n{len}\n\n{kind}\n"));
            string_to_sign.push_str(&"\n".repeat(6));
        }
    }
    let mut headers: Vec<_> = x_ms_headers.to_vec();
    headers.sort();
    for (name, value) in headers {
        string_to_sign.push_str(&format!("{name}:{value}\n"));
    }
    // CanonicalizedResource: "/" + account + URL path, then "name:value" lines.
    string_to_sign.push_str(&format!("/{AZURITE_ACCOUNT}{path}"));
    let mut query: Vec<_> = query.to_vec();
    query.sort();
    for (name, value) in query {
        string_to_sign.push_str(&format!("\n{}:{value}", name.to_lowercase()));
    }

    let key = base64::engine::general_purpose::STANDARD
        .decode(AZURITE_ACCOUNT_KEY)
        .expect("the well-known Azurite account key is valid base64");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let tag = ring::hmac::sign(&key, string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

// ---------------------------------------------------------------------------
// Skipping
// ---------------------------------------------------------------------------

/// Reports that the server `what` is not installed.
///
/// # Panics
///
/// When the environment variable `CI` is `true` (or `1`): CI must run every
/// test, so a missing server is a CI setup bug. Otherwise prints a SKIP
/// banner to stderr and returns; the caller then returns early.
pub fn missing(what: &str) {
    let ci = std::env::var("CI").unwrap_or_default();
    if ci.eq_ignore_ascii_case("true") || ci == "1" {
        panic!("{what} is not installed but CI=true: .ci/run must install it");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    // Written to the real stderr, not with eprintln!: the test harness
    // captures eprintln! output of passing tests, which would hide the skip.
    let _ = writeln!(
        std::io::stderr(),
        "\n\
         ************************************************************\n\
         *** SKIP {test}: {what} is not installed.\n\
         *** Run .ci/run once (or set CUSTOS_MOTO_SERVER /\n\
         *** CUSTOS_AZURITE_BLOB) to run this test for real.\n\
         ************************************************************\n"
    );
}

// ---------------------------------------------------------------------------
// Process and network plumbing
// ---------------------------------------------------------------------------

/// Finds a server binary: `$env_var` if set (and then only there), else
/// `fixed`, else `name` on `PATH`.
fn find_binary(env_var: &str, fixed: &str, name: &str) -> Option<PathBuf> {
    if let Some(value) = std::env::var_os(env_var).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        if is_executable(&path) {
            return Some(path);
        }
        let _ = writeln!(
            std::io::stderr(),
            "warning: {env_var}={} is not an executable file; treating {name} as missing",
            path.display()
        );
        return None;
    }
    let fixed = PathBuf::from(fixed);
    if is_executable(&fixed) {
        return Some(fixed);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Ports handed out by this process, never handed out twice, so parallel tests
/// in one test binary cannot race each other for the same port.
static PORTS_HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port on 127.0.0.1 that was free a moment ago (the usual bind-to-0 trick;
/// the server may still lose a race for it, which [`spawn_ready`] retries).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 to find a port");
        let port = listener
            .local_addr()
            .expect("local address of a bound listener")
            .port();
        drop(listener);
        let mut used = PORTS_HANDED_OUT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if used.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 after 100 tries");
}

/// Starts `make(port)` on fresh ports until one answers HTTP `GET probe`.
///
/// Retries with a new port when the process exits during start-up (lost the
/// port race); panics when it cannot be spawned at all, keeps exiting, or does
/// not answer within [`READY_TIMEOUT`].
fn spawn_ready(
    what: &str,
    binary: &Path,
    probe: &str,
    make: impl Fn(u16) -> Command,
) -> (Child, u16) {
    let mut exits = Vec::new();
    for _ in 0..START_ATTEMPTS {
        let port = free_port();
        let mut cmd = make(port);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({}): {e}", binary.display()));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    exits.push(format!("port {port}: {status}"));
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    stop(&mut child);
                    panic!("cannot check on {what} (port {port}): {e}");
                }
            }
            // Any HTTP status line means the server is up.
            if http_request(port, "GET", probe, &[]).is_ok() {
                return (child, port);
            }
            if Instant::now() >= deadline {
                stop(&mut child);
                panic!(
                    "{what} ({}) did not answer HTTP on 127.0.0.1:{port} within {READY_TIMEOUT:?}; \
                     run it by hand to see its output",
                    binary.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!(
        "{what} ({}) exited during start-up {START_ATTEMPTS} times ({}); \
         run it by hand to see why",
        binary.display(),
        exits.join(", ")
    );
}

/// Kills and reaps a server process; errors mean it is already gone.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A parsed HTTP response: the status code and the raw response for messages.
struct Response {
    status: u16,
    text: String,
}

/// One HTTP/1.1 request without body on a fresh connection to 127.0.0.1:port,
/// read until the server closes (`Connection: close`).
fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
) -> std::io::Result<Response> {
    http_request_body(port, method, path, headers, "")
}

/// [`http_request`] with a body.
fn http_request_body(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> std::io::Result<Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP response: {text:?}"),
            )
        })?;
    Ok(Response { status, text })
}

/// A name unique across processes and calls: lowercase letters, digits and
/// single hyphens, at most 63 characters (valid for S3 buckets and Azure
/// containers).
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!("{prefix}-{}-{n}-{nanos}", std::process::id());
    debug_assert!(name.len() <= 63);
    name
}

fn join_url(scheme: &str, root: &str, prefix: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("{scheme}://{root}")
    } else {
        format!("{scheme}://{root}/{prefix}")
    }
}
