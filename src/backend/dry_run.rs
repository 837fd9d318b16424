//! A store that reads through and writes nothing: `backup --dry-run`.
//!
//! Every object a backup would write (packs, index objects, its snapshot)
//! is accepted and dropped; reads, listings and lock objects go to the real
//! store, so the run takes a real (shared) lock and sees the repository as
//! it is. What the run would add is counted by the backup as usual. The
//! caller gives the dry run a throwaway index cache, so that nothing it
//! "wrote" is ever believed stored.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Objects under this prefix are written for real (locks).
const WRITTEN: &str = "locks/";

/// See the module's overview.
#[derive(Debug)]
pub(crate) struct DryRunStore {
    inner: Arc<dyn ObjectStore>,
}

impl DryRunStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> DryRunStore {
        DryRunStore { inner }
    }
}

impl std::fmt::Display for DryRunStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DryRun({})", self.inner)
    }
}

fn kept(location: &Path) -> bool {
    location.as_ref().starts_with(WRITTEN)
}

/// A multipart upload whose parts go nowhere.
#[derive(Debug)]
struct Dropped;

#[async_trait]
impl MultipartUpload for Dropped {
    fn put_part(&mut self, _data: PutPayload) -> object_store::UploadPart {
        Box::pin(async { Ok(()) })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        Ok(PutResult {
            e_tag: None,
            version: None,
            extensions: Default::default(),
        })
    }

    async fn abort(&mut self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for DryRunStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if kept(location) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        Ok(PutResult {
            e_tag: None,
            version: None,
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        if kept(location) {
            return self.inner.put_multipart_opts(location, opts).await;
        }
        Ok(Box::new(Dropped))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        use futures::StreamExt;
        use object_store::ObjectStoreExt;
        // Only locks are deleted for real; anything else "goes" unread.
        let inner = self.inner.clone();
        locations
            .then(move |r| {
                let inner = inner.clone();
                async move {
                    match r {
                        Ok(p) if kept(&p) => inner.delete(&p).await.map(|()| p),
                        other => other,
                    }
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        if kept(to) {
            return self.inner.copy_opts(from, to, options).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn data_is_dropped_locks_are_written_reads_pass() {
        let inner: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        inner
            .put(&Path::from("data/ab/old"), b"x".to_vec().into())
            .await
            .unwrap();
        let dry = DryRunStore::new(inner.clone());
        dry.put(&Path::from("data/ab/new"), b"y".to_vec().into())
            .await
            .unwrap();
        dry.put(&Path::from("snapshots/s"), b"z".to_vec().into())
            .await
            .unwrap();
        dry.put(&Path::from("locks/l"), b"l".to_vec().into())
            .await
            .unwrap();
        assert!(inner.head(&Path::from("data/ab/new")).await.is_err());
        assert!(inner.head(&Path::from("snapshots/s")).await.is_err());
        assert!(inner.head(&Path::from("locks/l")).await.is_ok());
        let old = dry
            .get(&Path::from("data/ab/old"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&old[..], b"x");
    }
}
