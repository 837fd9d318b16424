//! A fault-injecting object store for reliability tests: failed requests,
//! lost responses (the write happened, the answer did not arrive), slow and
//! timed-out requests, at a configurable rate and seed.
//!
//! Enabled from tests or the command line with the hidden variable
//! `CUSTOS_FAULTS`, e.g. `rate=0.1,seed=7` or
//! `rate=0.05,seed=1,ops=put+get,delay=20ms`:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `rate` | probability that a request is faulted | 0.1 |
//! | `seed` | seed of the fault sequence (same seed, same faults) | 0 |
//! | `ops` | which requests: `put`, `get`, `list`, `head`, `delete` joined by `+` | all |
//! | `delay` | how long a slow or timed-out request takes | `20ms` |
//!
//! A faulted request is, with equal chances: refused before it reaches the
//! store; carried out with its answer lost (writes that replace, and reads);
//! slow (delayed, then carried out); or timed out (delayed, then refused).
//! Conditional creates never lose their answer here: that would turn our own
//! lock into somebody else's, a case the retry policy cannot tell apart.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// What to inject.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Probability of a fault per request.
    pub rate: f64,
    /// Seed.
    pub seed: u64,
    /// Faulted operations.
    pub ops: Vec<String>,
    /// Delay of slow and timed-out requests.
    pub delay: Duration,
}

impl FaultConfig {
    /// Parses `rate=0.1,seed=7,ops=put+get,delay=20ms`.
    ///
    /// # Errors
    /// A message naming the bad part.
    pub fn parse(s: &str) -> std::result::Result<FaultConfig, String> {
        let mut c = FaultConfig {
            rate: 0.1,
            seed: 0,
            ops: ["put", "get", "list", "head", "delete"]
                .map(str::to_string)
                .to_vec(),
            delay: Duration::from_millis(20),
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("CUSTOS_FAULTS: {part:?} is not key=value"))?;
            match k {
                "rate" => {
                    c.rate = v
                        .parse::<f64>()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| format!("CUSTOS_FAULTS: rate {v:?} is not in 0..1"))?;
                }
                "seed" => {
                    c.seed = v
                        .parse()
                        .map_err(|_| format!("CUSTOS_FAULTS: seed {v:?}"))?
                }
                "ops" => c.ops = v.split('+').map(str::to_string).collect(),
                "delay" => {
                    c.delay = crate::policy::retention::parse_duration(v)
                        .or_else(|_| {
                            v.strip_suffix("ms")
                                .and_then(|n| n.parse().ok())
                                .map(Duration::from_millis)
                                .ok_or_else(|| "bad".to_string())
                        })
                        .map_err(|_| format!("CUSTOS_FAULTS: delay {v:?}"))?;
                }
                other => return Err(format!("CUSTOS_FAULTS: unknown key {other:?}")),
            }
        }
        Ok(c)
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Refused,
    LostAnswer,
    Slow,
    TimedOut,
}

/// The wrapper.
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    config: FaultConfig,
    state: Mutex<u64>,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, config: FaultConfig) -> FaultyStore {
        let seed = config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        FaultyStore {
            inner,
            config,
            state: Mutex::new(seed),
        }
    }

    fn next(&self) -> u64 {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // xorshift64*: a deterministic sequence per seed.
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fault(&self, op: &str) -> Fault {
        if !self.config.ops.iter().any(|o| o == op) {
            return Fault::None;
        }
        let r = self.next();
        if (r >> 11) as f64 / (1u64 << 53) as f64 >= self.config.rate {
            return Fault::None;
        }
        match r % 4 {
            0 => Fault::Refused,
            1 => Fault::LostAnswer,
            2 => Fault::Slow,
            _ => Fault::TimedOut,
        }
    }

    fn error(op: &str, what: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "faults",
            source: format!("injected fault: {op} {what}").into(),
        }
    }

    /// Applies the fault around `f`.
    async fn around<T, F>(&self, op: &str, lose_ok: bool, f: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        match self.fault(op) {
            Fault::None => f.await,
            Fault::Refused => Err(Self::error(op, "refused")),
            Fault::Slow => {
                tokio::time::sleep(self.config.delay).await;
                f.await
            }
            Fault::TimedOut => {
                tokio::time::sleep(self.config.delay).await;
                Err(Self::error(op, "timed out"))
            }
            Fault::LostAnswer if lose_ok => {
                let _ = f.await;
                Err(Self::error(op, "answer lost"))
            }
            Fault::LostAnswer => Err(Self::error(op, "refused")),
        }
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({:?})", self.config)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let replaceable = matches!(opts.mode, PutMode::Overwrite);
        self.around(
            "put",
            replaceable,
            self.inner.put_opts(location, payload, opts),
        )
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.around("put", false, self.inner.put_multipart_opts(location, opts))
            .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { "head" } else { "get" };
        self.around(op, true, self.inner.get_opts(location, options))
            .await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.around("get", true, self.inner.get_ranges(location, ranges))
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        match self.fault("delete") {
            Fault::None | Fault::Slow | Fault::LostAnswer => self.inner.delete_stream(locations),
            Fault::Refused | Fault::TimedOut => locations
                .map(|_| Err(Self::error("delete", "refused")))
                .boxed(),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.fault("list") {
            Fault::None | Fault::Slow | Fault::LostAnswer => self.inner.list(prefix),
            Fault::Refused | Fault::TimedOut => {
                futures::stream::once(async { Err(Self::error("list", "refused")) }).boxed()
            }
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.around("list", true, self.inner.list_with_delimiter(prefix))
            .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.around("put", false, self.inner.copy_opts(from, to, options))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[test]
    fn config_parses_and_refuses_nonsense() {
        let c = FaultConfig::parse("rate=0.25,seed=9,ops=put+get,delay=5ms").unwrap();
        assert_eq!(
            (c.rate, c.seed, c.ops.len(), c.delay),
            (0.25, 9, 2, Duration::from_millis(5))
        );
        assert!(FaultConfig::parse("rate=2").is_err());
        assert!(FaultConfig::parse("colour=red").is_err());
    }

    #[tokio::test]
    async fn faults_follow_the_rate_and_the_seed() {
        let mem: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let store = |seed| {
            FaultyStore::new(
                mem.clone(),
                FaultConfig::parse(&format!("rate=0.3,seed={seed},delay=1ms")).unwrap(),
            )
        };
        let a = store(1);
        let b = store(1);
        let seq = |s: &FaultyStore| (0..200).map(|_| s.fault("get")).collect::<Vec<_>>();
        let (sa, sb) = (seq(&a), seq(&b));
        assert_eq!(sa, sb, "same seed, same faults");
        let faulted = sa.iter().filter(|f| **f != Fault::None).count();
        assert!((30..90).contains(&faulted), "{faulted} of 200 at rate 0.3");
        assert_ne!(seq(&store(2)), sa);
        // A refused put writes nothing; a put with a lost answer does.
        let s = store(3);
        let p = Path::from("x");
        for _ in 0..50 {
            let _ = s
                .put_opts(&p, PutPayload::from_static(b"data"), PutOptions::default())
                .await;
        }
        assert!(mem.head(&p).await.is_ok());
    }
}
