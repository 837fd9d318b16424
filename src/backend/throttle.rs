//! Bandwidth limits (`--limit-upload`, `--limit-download`, and per target
//! `limit_upload` / `limit_download` in the daemon's config): a token
//! bucket per direction, shared by every backend opened with the same
//! [`Limits`], in front of the object store.
//!
//! | direction | counted | when it waits |
//! |---|---|---|
//! | upload | every byte put (whole objects, parts of multipart uploads) | before the request is sent |
//! | download | every byte of a ranged or whole read | after the answer's head, before its body is read |
//!
//! The bucket holds at most one second of the rate (at least 256 KiB), so
//! a burst after a pause is short; a request larger than that is let
//! through and the next one waits for the debt, so over any stretch longer
//! than a request the rate is at most the limit. A limited local
//! repository is read and written through the store too (not with `pread`
//! or staged files), so that the limit holds for it as well.

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock: the same as std's, except under a paused test clock.
use tokio::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// One direction's limit.
#[derive(Debug)]
pub struct Bucket {
    /// Bytes a second.
    rate: u64,
    /// (tokens, last refill): tokens go negative for a large request.
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A limit of `rate` bytes a second (at least 1).
    pub fn new(rate: u64) -> Bucket {
        let rate = rate.max(1);
        Bucket {
            rate,
            state: Mutex::new((Self::capacity_of(rate), Instant::now())),
        }
    }

    fn capacity_of(rate: u64) -> f64 {
        rate.max(256 * 1024) as f64
    }

    /// The limit in bytes a second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// How long to wait before `n` bytes may pass, taking them now.
    fn take(&self, n: u64, now: Instant) -> Duration {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let refill = now.saturating_duration_since(s.1).as_secs_f64() * self.rate as f64;
        s.0 = (s.0 + refill).min(Self::capacity_of(self.rate)) - n as f64;
        s.1 = now;
        if s.0 >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-s.0 / self.rate as f64)
        }
    }

    /// Waits until `n` bytes may pass.
    pub async fn consume(&self, n: u64) {
        let wait = self.take(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The limits a backend is opened with: none by default. Cheap to clone;
/// clones share their buckets.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Upload limit.
    pub upload: Option<Arc<Bucket>>,
    /// Download limit.
    pub download: Option<Arc<Bucket>>,
}

impl Limits {
    /// Limits of `upload` and `download` KiB a second (`None` or 0: none).
    pub fn kib_per_sec(upload: Option<u64>, download: Option<u64>) -> Limits {
        let bucket = |k: Option<u64>| {
            k.filter(|k| *k > 0)
                .map(|k| Arc::new(Bucket::new(k.saturating_mul(1024))))
        };
        Limits {
            upload: bucket(upload),
            download: bucket(download),
        }
    }

    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.upload.is_some() || self.download.is_some()
    }
}

impl PartialEq for Limits {
    /// Equal when the rates are (for config comparisons).
    fn eq(&self, other: &Limits) -> bool {
        let r = |b: &Option<Arc<Bucket>>| b.as_ref().map(|b| b.rate);
        r(&self.upload) == r(&other.upload) && r(&self.download) == r(&other.download)
    }
}

impl Eq for Limits {}

/// An object store behind [`Limits`].
#[derive(Debug)]
pub(crate) struct ThrottledStore {
    inner: Arc<dyn ObjectStore>,
    limits: Limits,
}

impl ThrottledStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, limits: Limits) -> ThrottledStore {
        ThrottledStore { inner, limits }
    }

    async fn up(&self, n: u64) {
        if let Some(b) = &self.limits.upload {
            b.consume(n).await;
        }
    }

    async fn down(&self, n: u64) {
        if let Some(b) = &self.limits.download {
            b.consume(n).await;
        }
    }
}

impl std::fmt::Display for ThrottledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Throttled({})", self.inner)
    }
}

/// A multipart upload whose parts are counted.
#[derive(Debug)]
struct ThrottledUpload {
    inner: Box<dyn MultipartUpload>,
    upload: Option<Arc<Bucket>>,
}

#[async_trait]
impl MultipartUpload for ThrottledUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        let n = data.content_length() as u64;
        let bucket = self.upload.clone();
        let part = self.inner.put_part(data);
        Box::pin(async move {
            if let Some(b) = bucket {
                b.consume(n).await;
            }
            part.await
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for ThrottledStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.up(payload.content_length() as u64).await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(ThrottledUpload {
            inner,
            upload: self.limits.upload.clone(),
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let head = options.head;
        let r = self.inner.get_opts(location, options).await?;
        if !head {
            self.down(r.range.end.saturating_sub(r.range.start)).await;
        }
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let got = self.inner.get_ranges(location, ranges).await?;
        self.down(got.iter().map(|b| b.len() as u64).sum()).await;
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[test]
    fn the_bucket_lets_a_second_through_then_paces() {
        let b = Bucket::new(1 << 20);
        let t0 = Instant::now();
        // A full bucket: one second's worth passes at once.
        assert_eq!(b.take(1 << 20, t0), Duration::ZERO);
        // The next MiB waits a second, the one after two.
        assert_eq!(b.take(1 << 20, t0), Duration::from_secs(1));
        assert_eq!(b.take(1 << 20, t0), Duration::from_secs(2));
        // Time pays the debt back.
        let later = t0 + Duration::from_secs(3);
        assert_eq!(b.take(0, later), Duration::ZERO);
        // Never more than a second's worth saved up.
        let much_later = t0 + Duration::from_secs(100);
        assert_eq!(b.take(1 << 20, much_later), Duration::ZERO);
        assert_eq!(b.take(1 << 19, much_later), Duration::from_millis(500));
    }

    #[test]
    fn limits_from_kib() {
        let l = Limits::kib_per_sec(Some(100), Some(0));
        assert_eq!(l.upload.as_ref().map(|b| b.rate()), Some(102_400));
        assert!(l.download.is_none());
        assert!(l.any());
        assert!(!Limits::kib_per_sec(None, None).any());
        assert_eq!(l, Limits::kib_per_sec(Some(100), None));
    }

    #[tokio::test(start_paused = true)]
    async fn writes_and_reads_are_paced() {
        let inner: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let store = ThrottledStore::new(inner, Limits::kib_per_sec(Some(256), Some(256)));
        let p = Path::from("a");
        let t0 = tokio::time::Instant::now();
        // 256 KiB pass at once (the bucket's least capacity), the next 512
        // KiB take two seconds.
        store.put(&p, vec![0u8; 256 << 10].into()).await.unwrap();
        assert!(t0.elapsed() < Duration::from_millis(10));
        store.put(&p, vec![0u8; 512 << 10].into()).await.unwrap();
        let e = t0.elapsed();
        assert!(
            e >= Duration::from_secs(2) && e < Duration::from_millis(2100),
            "{e:?}"
        );
        let t1 = tokio::time::Instant::now();
        let got = store.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(got.len(), 512 << 10);
        let e = t1.elapsed();
        assert!(e >= Duration::from_secs(1), "{e:?}");
    }
}
