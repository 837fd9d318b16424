//! Storage backends: one small API over `object_store`, with retries.
//!
//! | URL | store | conditional create |
//! |---|---|---|
//! | `/path`, `file:///path` | local file system, fsync on every write | yes (hard link) |
//! | `s3://bucket/prefix` | S3 and compatible (`AWS_*` variables) | yes (`If-None-Match`) |
//! | `az://container/prefix` | Azure Blob (`AZURE_STORAGE_*`, emulator flag) | yes |
//! | `gs://bucket/prefix` | Google Cloud Storage | yes |
//! | `memory://name` | in-process memory, shared by name (tests) | yes |
//!
//! Transient failures are retried with exponential backoff; what still fails is
//! reported as [`Error::Backend`], which maps to exit code 3 (unreachable).
//!
//! Layer 2 of `docs/architecture.md`: it uses `duration`, `error`, `switches`, `util`, and nothing of a layer above.

mod dry_run;
#[cfg(feature = "test-switches")]
pub(crate) mod faults;
mod staged;
pub mod throttle;
pub mod versions;

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::{Error, Result};
pub(crate) use staged::StagedFile;
pub use throttle::Limits;

/// An object as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Path relative to the repository root, e.g. `data/ab/abcd…`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Retry policy for transient backend errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// Attempts after the first.
    pub retries: u32,
    /// First backoff delay; doubled each time.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 5 retries from 200 ms up to 5 s: rides out a restarting server or a short
    /// network blip (about 12 s in all) without hanging a job for minutes.
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

/// A repository's storage location.
#[derive(Clone)]
pub struct Backend {
    store: Arc<dyn ObjectStore>,
    url: String,
    retry: RetryPolicy,
    local_root: Option<std::path::PathBuf>,
    /// Where reads may go to the files themselves (a local repository with
    /// no injected faults): see [`Backend::start_read`].
    direct: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Backend({})", self.url)
    }
}

fn memory_registry() -> &'static Mutex<HashMap<String, Arc<object_store::memory::InMemory>>> {
    static REG: OnceLock<Mutex<HashMap<String, Arc<object_store::memory::InMemory>>>> =
        OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Installs the rustls crypto provider once (we build rustls with ring only).
pub(crate) fn install_tls_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Fails only when a provider is already installed, which is what we want.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn client_retry() -> object_store::RetryConfig {
    // object_store's own HTTP retries (for 5xx, timeouts, connection errors): a
    // short budget, since our layer retries again on top.
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
        ..Default::default()
    }
}

fn split_bucket(rest: &str) -> (String, String) {
    let rest = rest.trim_start_matches('/');
    match rest.split_once('/') {
        Some((b, p)) => (b.to_string(), p.trim_matches('/').to_string()),
        None => (rest.to_string(), String::new()),
    }
}

impl Backend {
    /// Opens the store named by `url` (see the module table). For local paths,
    /// `create` makes the directory when missing.
    ///
    /// # Errors
    /// [`Error::Usage`] for an unknown scheme or a bad URL, [`Error::NoRepository`]
    /// for a missing local directory when `create` is false.
    pub fn open(url: &str, create: bool) -> Result<Backend> {
        install_tls_provider();
        let bad =
            |e: object_store::Error| Error::Usage(format!("cannot use repository {url}: {e}"));
        let (store, local_root): (Arc<dyn ObjectStore>, _) = if let Some(name) =
            url.strip_prefix("memory://")
        {
            let mut reg = memory_registry()
                .lock()
                .map_err(|_| Error::Usage("memory registry poisoned".into()))?;
            let mem = reg.entry(name.to_string()).or_default().clone();
            (mem, None)
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = split_bucket(rest);
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(client_retry())
                .build()
                .map_err(bad)?;
            (wrap_prefix(s3, &prefix), None)
        } else if let Some(rest) = url
            .strip_prefix("az://")
            .or_else(|| url.strip_prefix("azure://"))
        {
            let (container, prefix) = split_bucket(rest);
            let az = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(container)
                .with_retry(client_retry())
                .build()
                .map_err(bad)?;
            (wrap_prefix(az, &prefix), None)
        } else if let Some(rest) = url.strip_prefix("gs://") {
            let (bucket, prefix) = split_bucket(rest);
            let gcs = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_retry(client_retry())
                .build()
                .map_err(bad)?;
            (wrap_prefix(gcs, &prefix), None)
        } else if url.contains("://") && !url.starts_with("file://") {
            return Err(Error::Usage(format!(
                "unknown repository scheme in {url}: use a path, file://, s3://, az://, gs:// or memory://"
            )));
        } else {
            let path = std::path::PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
            if !path.is_dir() {
                if create {
                    std::fs::create_dir_all(&path).map_err(crate::error::at(
                        "cannot create repository directory",
                        &path,
                    ))?;
                } else {
                    return Err(Error::NoRepository(url.to_string()));
                }
            }
            let path = path
                .canonicalize()
                .map_err(crate::error::at("cannot resolve", &path))?;
            let fs = object_store::local::LocalFileSystem::new_with_prefix(&path)
                .map_err(bad)?
                .with_fsync(true)
                .with_automatic_cleanup(true);
            (Arc::new(fs), Some(path))
        };
        // Every read must pass through a faulty store: no direct reads.
        #[cfg(feature = "test-switches")]
        let faulty = crate::switches::faults().is_some();
        #[cfg(not(feature = "test-switches"))]
        let faulty = false;
        let direct = local_root.clone().filter(|_| !faulty);
        // Reliability tests inject faults (a test switch, see
        // crate::switches; not compiled into a product build).
        #[cfg(feature = "test-switches")]
        let store: Arc<dyn ObjectStore> = match crate::switches::faults() {
            Some(spec) => {
                let cfg = faults::FaultConfig::parse(&spec).map_err(Error::Usage)?;
                tracing::warn!(?cfg, "injecting storage faults (a test switch)");
                Arc::new(faults::FaultyStore::new(store, cfg))
            }
            None => store,
        };
        let mut retry = RetryPolicy::default();
        // Tests shorten the retry budget (a test switch).
        if let Some(n) = crate::switches::backend_retries() {
            retry.retries = n;
        }
        Ok(Backend {
            store,
            url: url.to_string(),
            retry,
            local_root,
            direct,
        })
    }

    /// This backend behind bandwidth `limits` (see `throttle`): every read
    /// and write then goes through the store, a local repository's too.
    pub fn with_limits(mut self, limits: &Limits) -> Backend {
        if limits.any() {
            self.store = Arc::new(throttle::ThrottledStore::new(self.store, limits.clone()));
            self.direct = None;
        }
        self
    }

    /// This backend for a dry run: reads and locks go to the store, every
    /// other write is dropped (see `dry_run`); never written in parts.
    pub fn dry_run(mut self) -> Backend {
        self.store = Arc::new(dry_run::DryRunStore::new(self.store));
        self.direct = None;
        self
    }

    /// A backend over any object store (tests, fault injection).
    pub fn from_store(store: Arc<dyn ObjectStore>, url: &str) -> Backend {
        Backend {
            store,
            url: url.to_string(),
            retry: RetryPolicy::default(),
            local_root: None,
            direct: None,
        }
    }

    /// The underlying store (to wrap it, e.g. with fault injection).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The directory of a local repository.
    pub(crate) fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// True when objects can be written in parts with [`Backend::stage`]:
    /// a local repository read and written directly (not through a store
    /// with injected faults).
    pub(crate) fn stages_locally(&self) -> bool {
        self.direct.is_some()
    }

    /// Starts writing object `path` in parts, to be published whole by
    /// [`StagedFile::publish`] (see `staged`); `None` when the repository
    /// is not one [`Backend::stages_locally`] is true of, and the object
    /// must go whole through [`Backend::put`].
    ///
    /// # Errors
    /// [`Error::Backend`] when the file cannot be made.
    pub(crate) fn stage(&self, path: &str) -> Result<Option<StagedFile>> {
        match &self.direct {
            Some(root) => StagedFile::create(root, path).map(Some),
            None => Ok(None),
        }
    }

    /// For a local repository written directly, makes the 256 directories
    /// objects under `folder` fan out into, where missing (see
    /// `staged::make_fanout`); nothing for another store.
    ///
    /// # Errors
    /// [`Error::Backend`] when one cannot be made.
    pub(crate) fn make_fanout(&self, folder: &str) -> Result<()> {
        match &self.direct {
            Some(root) => staged::make_fanout(root, folder),
            None => Ok(()),
        }
    }

    /// Reads of a local repository's files on the caller's thread: `None`
    /// unless the repository is a local one read directly (not through a
    /// store with injected faults or bandwidth limits).
    pub(crate) fn direct_reads(&self) -> Option<DirectReads> {
        self.direct.clone().map(|root| DirectReads { root })
    }

    /// Starts reading bytes `range` of object `path` (`None`: all of it)
    /// into a caller's buffer, finished by [`Pending::into_buffer`] on a
    /// blocking thread. Another store's bytes are fetched here (as
    /// [`Backend::get_range`] or [`Backend::get`]); a local repository's
    /// file is left to be read there with `pread`, into a buffer the caller
    /// reuses, instead of a fresh allocation (and its page faults) per read.
    ///
    /// # Errors
    /// As [`Backend::get_range`]; [`Pending::into_buffer`] reports a local
    /// file's errors the same way.
    pub(crate) async fn start_read(
        &self,
        path: &str,
        range: Option<Range<u64>>,
    ) -> Result<Pending> {
        if let Some(local) = self.direct_reads() {
            return Ok(local.read(path, range));
        }
        Ok(Pending::Fetched(match range {
            Some(r) => self.get_range(path, r).await?,
            None => self.get(path).await?,
        }))
    }

    async fn retrying<T, F, Fut>(&self, op: &'static str, path: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let mut delay = self.retry.initial;
        let mut attempt = 0;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < self.retry.retries && is_transient(&e) => {
                    attempt += 1;
                    tracing::warn!(op, path, attempt, error = %e, "storage operation failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.retry.max);
                }
                Err(source) => {
                    return Err(Error::Backend {
                        op,
                        path: path.to_string(),
                        source,
                    })
                }
            }
        }
    }

    /// Reads a whole object.
    ///
    /// # Errors
    /// [`Error::Backend`] (with `NotFound` inside when absent).
    pub async fn get(&self, path: &str) -> Result<Bytes> {
        let p = StorePath::from(path);
        self.retrying("read", path, || async {
            self.store.get(&p).await?.bytes().await
        })
        .await
    }

    /// Reads a byte range of an object.
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub(crate) async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        let p = StorePath::from(path);
        let want = range.end - range.start;
        let got = match self
            .retrying("read", path, || self.store.get_range(&p, range.clone()))
            .await
        {
            Ok(g) => g,
            Err(e) => {
                // A range past the end is not a storage failure: the object
                // was truncated. Say so, so that it counts as damage.
                if let Ok(meta) = self.store.head(&p).await {
                    if meta.size < range.end {
                        return Err(Error::integrity(
                            path,
                            format!(
                                "truncated: {} bytes stored, reading bytes {}..{}",
                                meta.size, range.start, range.end
                            ),
                        ));
                    }
                }
                return Err(e);
            }
        };
        if got.len() as u64 != want {
            return Err(Error::integrity(
                path,
                format!("short read: {} of {want} bytes", got.len()),
            ));
        }
        Ok(got)
    }

    /// Writes an object, replacing any existing one.
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        crate::util::crash_point("store:write");
        let p = StorePath::from(path);
        let r = self
            .retrying("write", path, || {
                self.store.put(&p, PutPayload::from(data.clone()))
            })
            .await;
        if r.is_err() && is_content_object(path) {
            // A write that failed may have left the first part of the object
            // behind (stores whose uploads are not atomic). Content objects
            // are named uniquely and written once, so nothing else can be
            // there: remove it, best effort, rather than leave a truncated
            // snapshot or index for every reader to trip over.
            if let Err(e) = self.store.delete(&p).await {
                tracing::warn!(path, error = %e, "could not remove what a failed write may have left");
            }
        }
        r.map(|_| ())
    }

    /// Writes an object only if none exists there (conditional create).
    /// Returns `false` when one already existed.
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub(crate) async fn put_new(&self, path: &str, data: Bytes) -> Result<bool> {
        crate::util::crash_point("store:write");
        let p = StorePath::from(path);
        let opts = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .retrying("create", path, || {
                self.store
                    .put_opts(&p, PutPayload::from(data.clone()), opts())
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::Backend {
                source: object_store::Error::AlreadyExists { .. },
                ..
            }) => Ok(false),
            Err(Error::Backend {
                source: object_store::Error::Precondition { .. },
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// True when the object exists.
    ///
    /// # Errors
    /// [`Error::Backend`] for errors other than absence.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        let p = StorePath::from(path);
        match self.retrying("stat", path, || self.store.head(&p)).await {
            Ok(_) => Ok(true),
            Err(Error::Backend {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Lists objects under a prefix such as `snapshots` (recursively).
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let p = StorePath::from(prefix);
        let mut out: Vec<Listed> = self
            .retrying("list", prefix, || async {
                self.store
                    .list(Some(&p))
                    .map_ok(|m| Listed {
                        path: m.location.to_string(),
                        size: m.size,
                    })
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup_by(|a, b| a.path == b.path);
        Ok(out)
    }

    /// Deletes an object; absent objects are not an error.
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub async fn delete(&self, path: &str) -> Result<()> {
        crate::util::crash_point("store:write");
        let p = StorePath::from(path);
        match self
            .retrying("delete", path, || self.store.delete(&p))
            .await
        {
            Ok(()) => Ok(()),
            Err(Error::Backend {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn wrap_prefix<T: ObjectStore>(store: T, prefix: &str) -> Arc<dyn ObjectStore> {
    if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
    }
}

/// Objects named uniquely and written once: packs, index objects,
/// snapshots and tombstones.
fn is_content_object(path: &str) -> bool {
    ["data/", "index/", "snapshots/", "forgotten/"]
        .iter()
        .any(|p| path.starts_with(p))
}

/// Whether an error may go away on retry.
pub(crate) fn is_transient(e: &object_store::Error) -> bool {
    !matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::UnknownConfigurationKey { .. }
    )
}

/// A local repository's directory, whose objects are read with `pread`
/// on the caller's thread (see [`Backend::direct_reads`]).
#[derive(Debug, Clone)]
pub(crate) struct DirectReads {
    root: std::path::PathBuf,
}

impl DirectReads {
    /// A read of bytes `range` of object `path` (`None`: all of it), done
    /// by [`Pending::into_buffer`].
    pub(crate) fn read(&self, path: &str, range: Option<Range<u64>>) -> Pending {
        Pending::Local {
            root: self.root.clone(),
            path: path.to_string(),
            range,
        }
    }
}

/// An object read [`Backend::start_read`] began.
#[derive(Debug)]
pub(crate) enum Pending {
    /// Fetched from the store already.
    Fetched(Bytes),
    /// A local repository's file, still to be read.
    Local {
        /// The repository's directory.
        root: std::path::PathBuf,
        /// The object's path in it.
        path: String,
        /// The bytes wanted (`None`: all).
        range: Option<Range<u64>>,
    },
}

impl Pending {
    /// Puts the object's bytes in `buf` (replacing what it held): copies
    /// fetched bytes, or reads a local file with `pread` on this thread.
    ///
    /// # Errors
    /// A missing file is [`Error::Backend`] with `NotFound` (see
    /// [`is_not_found`]), a file shorter than the range an integrity error,
    /// any other failure [`Error::Backend`]: as a store would answer.
    pub(crate) fn into_buffer(self, buf: &mut Vec<u8>) -> Result<()> {
        match self {
            Pending::Fetched(b) => {
                buf.clear();
                buf.extend_from_slice(&b);
                Ok(())
            }
            Pending::Local { root, path, range } => read_file(&root, &path, range, buf),
        }
    }
}

/// `pread` of `range` (`None`: all) of `root/path` into `buf`, as
/// [`Pending::into_buffer`] describes.
fn read_file(
    root: &std::path::Path,
    path: &str,
    range: Option<Range<u64>>,
    buf: &mut Vec<u8>,
) -> Result<()> {
    LocalObject::open(root, path)?.read(range, buf)
}

/// A local repository's object file, open for any number of reads (a tree
/// walk reads many trees of one pack: one `open` for them all).
#[derive(Debug)]
pub(crate) struct LocalObject {
    path: String,
    file: std::fs::File,
}

impl DirectReads {
    /// Opens object `path` for [`LocalObject::read`]s.
    ///
    /// # Errors
    /// As [`Pending::into_buffer`].
    pub(crate) fn open(&self, path: &str) -> Result<LocalObject> {
        LocalObject::open(&self.root, path)
    }
}

impl LocalObject {
    fn open(root: &std::path::Path, path: &str) -> Result<LocalObject> {
        // Object paths are ours (pack_path and friends), never a caller's;
        // refuse anything that could leave the repository all the same.
        if path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(Error::Usage(format!("bad object path {path:?}")));
        }
        let file = std::fs::File::open(root.join(path)).map_err(|e| local_error(path, e))?;
        Ok(LocalObject {
            path: path.to_string(),
            file,
        })
    }

    /// The object's path in the repository.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// `pread` of `range` (`None`: all) into `buf`, as
    /// [`Pending::into_buffer`] describes.
    ///
    /// # Errors
    /// As [`Pending::into_buffer`].
    pub(crate) fn read(&self, range: Option<Range<u64>>, buf: &mut Vec<u8>) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let (path, f) = (self.path.as_str(), &self.file);
        let range = match range {
            Some(r) => r,
            None => 0..f.metadata().map_err(|e| local_error(path, e))?.len(),
        };
        let len = usize::try_from(range.end.saturating_sub(range.start))
            .map_err(|_| Error::integrity(path, "range too large"))?;
        // Every byte is overwritten by the reads below (a short file is an
        // error), so only bytes the buffer never held are zeroed: a reused
        // buffer is not cleared again for every range.
        if buf.len() < len {
            buf.resize(len, 0);
        } else {
            buf.truncate(len);
        }
        let mut done = 0;
        while done < len {
            match f.read_at(&mut buf[done..], range.start + done as u64) {
                Ok(0) => {
                    return Err(Error::integrity(
                        path,
                        format!(
                            "truncated: reading bytes {}..{}, the file ends at byte {}",
                            range.start,
                            range.end,
                            range.start + done as u64
                        ),
                    ))
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(local_error(path, e)),
            }
        }
        Ok(())
    }
}

/// A local object file's I/O error, as a store would report it.
fn local_error(path: &str, e: std::io::Error) -> Error {
    let source = if e.kind() == std::io::ErrorKind::NotFound {
        object_store::Error::NotFound {
            path: path.to_string(),
            source: Box::new(e),
        }
    } else {
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        }
    };
    Error::Backend {
        op: "read",
        path: path.to_string(),
        source,
    }
}

/// True when the error is "object not found".
pub(crate) fn is_not_found(e: &Error) -> bool {
    matches!(
        e,
        Error::Backend {
            source: object_store::Error::NotFound { .. },
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_round_trip_and_create() {
        let b = Backend::open("memory://backend-unit", true).unwrap();
        b.put("a/b", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(&b.get("a/b").await.unwrap()[..], b"x");
        assert!(!b.put_new("a/b", Bytes::from_static(b"y")).await.unwrap());
        assert!(b.put_new("a/c", Bytes::from_static(b"y")).await.unwrap());
        let l = b.list("a").await.unwrap();
        assert_eq!(l.len(), 2);
        b.delete("a/b").await.unwrap();
        b.delete("a/b").await.unwrap();
        assert!(!b.exists("a/b").await.unwrap());
        assert!(is_not_found(&b.get("a/b").await.unwrap_err()));
    }

    #[tokio::test]
    async fn local_create_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            Backend::open(missing.to_str().unwrap(), false),
            Err(Error::NoRepository(_))
        ));
        let b = Backend::open(missing.to_str().unwrap(), true).unwrap();
        b.put("config", Bytes::from_static(b"c")).await.unwrap();
        assert!(!b.put_new("config", Bytes::from_static(b"d")).await.unwrap());
        assert_eq!(&b.get_range("config", 0..1).await.unwrap()[..], b"c");
    }

    #[test]
    fn unknown_scheme() {
        assert!(matches!(
            Backend::open("ftp://x/y", false),
            Err(Error::Usage(_))
        ));
    }
}
