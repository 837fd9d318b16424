//! A fault-injecting object store for reliability tests: failed requests,
//! lost responses (the write happened, the answer did not arrive), slow and
//! timed-out requests, partial writes, and listings that lag behind writes
//! and deletions (eventual consistency), at a configurable rate and seed.
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
//! | `lag` | how long listings lag behind writes and deletions | `0` (none) |
//! | `ghosts` | a journal file shared by processes, so that deletions lag for all of them | none (this process only) |
//!
//! A faulted request is, with equal chances: refused before it reaches the
//! store; carried out with its answer lost (writes that replace, and reads);
//! slow (delayed, then carried out); timed out (delayed, then refused); or,
//! for writes that replace, cut off part way: the first part of the object
//! is stored, then the connection drops (as on a store whose uploads are not
//! atomic). Conditional creates never lose their answer or half-write here:
//! that would turn our own lock into somebody else's, a case the retry policy
//! cannot tell apart. Requests other than writes that would be cut off are
//! refused instead.
//!
//! With `lag`, a listing leaves out objects written less than `lag` ago (by
//! any process: the object's modification time decides) and still shows
//! objects this process deleted less than `lag` ago — or, with
//! `ghosts=FILE`, that any process sharing FILE deleted. Reads by name are
//! not affected: stores with lagging listings still read their own writes.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// What to inject.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FaultConfig {
    /// Probability of a fault per request.
    pub rate: f64,
    /// Seed of the fault sequence, so a failing run can be repeated.
    pub seed: u64,
    /// Faulted operations.
    pub ops: Vec<String>,
    /// Delay of slow and timed-out requests.
    pub delay: Duration,
    /// How far listings lag behind writes and deletions.
    pub lag: Duration,
    /// A file shared by processes in which deletions are journalled, so
    /// that listings of every process still show them during the lag.
    pub ghosts: Option<std::path::PathBuf>,
}

impl FaultConfig {
    /// Parses `rate=0.1,seed=7,ops=put+get,delay=20ms`.
    ///
    /// # Errors
    /// A message naming the bad part.
    pub(crate) fn parse(s: &str) -> std::result::Result<FaultConfig, String> {
        let mut c = FaultConfig {
            rate: 0.1,
            seed: 0,
            ops: ["put", "get", "list", "head", "delete"]
                .map(str::to_string)
                .to_vec(),
            delay: Duration::from_millis(20),
            lag: Duration::ZERO,
            ghosts: None,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("fault injection: {part:?} is not key=value"))?;
            match k {
                "rate" => {
                    c.rate = v
                        .parse::<f64>()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| format!("fault injection: rate {v:?} is not in 0..1"))?;
                }
                "seed" => {
                    c.seed = v
                        .parse()
                        .map_err(|_| format!("fault injection: seed {v:?}"))?
                }
                "ops" => c.ops = v.split('+').map(str::to_string).collect(),
                "delay" => c.delay = parse_delay(k, v)?,
                "lag" => c.lag = parse_delay(k, v)?,
                "ghosts" => c.ghosts = Some(std::path::PathBuf::from(v)),
                other => return Err(format!("fault injection: unknown key {other:?}")),
            }
        }
        Ok(c)
    }
}

fn parse_delay(key: &str, v: &str) -> std::result::Result<Duration, String> {
    if v == "0" {
        return Ok(Duration::ZERO);
    }
    crate::duration::parse_duration(v)
        .or_else(|_| {
            v.strip_suffix("ms")
                .and_then(|n| n.parse().ok())
                .map(Duration::from_millis)
                .ok_or_else(|| "bad".to_string())
        })
        .map_err(|_| format!("fault injection: {key} {v:?}"))
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Refused,
    LostAnswer,
    Slow,
    TimedOut,
    Partial,
}

/// The wrapper.
pub(crate) struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    config: FaultConfig,
    state: Mutex<u64>,
    /// Objects this process deleted, with their last listing and when.
    deleted: Arc<Mutex<Vec<(ObjectMeta, Instant)>>>,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, config: FaultConfig) -> FaultyStore {
        let seed = config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        FaultyStore {
            inner,
            config,
            state: Mutex::new(seed),
            deleted: Arc::default(),
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
        match r % 5 {
            0 => Fault::Refused,
            1 => Fault::LostAnswer,
            2 => Fault::Slow,
            3 => Fault::TimedOut,
            _ => Fault::Partial,
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
        self.apply(self.fault(op), op, lose_ok, f).await
    }

    /// Applies a decided fault around `f`.
    async fn apply<T, F>(&self, fault: Fault, op: &str, lose_ok: bool, f: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        match fault {
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
            Fault::LostAnswer | Fault::Partial => Err(Self::error(op, "refused")),
        }
    }

    /// Objects modified after this are left out of listings.
    fn cutoff(&self) -> chrono::DateTime<chrono::Utc> {
        let lag = chrono::Duration::from_std(self.config.lag).unwrap_or(chrono::Duration::MAX);
        chrono::Utc::now()
            .checked_sub_signed(lag)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
    }

    /// Deleted objects that a listing of `prefix` still shows.
    fn ghosts(&self, prefix: Option<&Path>) -> Vec<ObjectMeta> {
        let matches = |m: &ObjectMeta| prefix.is_none_or(|p| m.location.prefix_matches(p));
        if let Some(j) = &self.config.ghosts {
            return journalled_deletions(j, self.config.lag)
                .into_iter()
                .filter(matches)
                .collect();
        }
        let mut d = self
            .deleted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        d.retain(|(_, at)| at.elapsed() < self.config.lag);
        d.iter()
            .filter(|(m, _)| matches(m))
            .map(|(m, _)| m.clone())
            .collect()
    }
}

/// Appends a deletion to the shared journal: `millis size path` per line.
fn journal_deletion(file: &std::path::Path, meta: &ObjectMeta) {
    use std::io::Write;
    let now = chrono::Utc::now().timestamp_millis();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(file)
    {
        // One write per line: appends from several processes do not mix.
        let _ = f.write_all(format!("{now} {} {}\n", meta.size, meta.location).as_bytes());
    }
}

/// Objects the journal says were deleted less than `lag` ago (the last
/// deletion of each path counts).
fn journalled_deletions(file: &std::path::Path, lag: Duration) -> Vec<ObjectMeta> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let now = chrono::Utc::now();
    let since = now.timestamp_millis() - i64::try_from(lag.as_millis()).unwrap_or(i64::MAX);
    let mut out: std::collections::BTreeMap<String, ObjectMeta> = Default::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(at), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(at), Ok(size)) = (at.parse::<i64>(), size.parse::<u64>()) else {
            continue;
        };
        if at >= since {
            out.insert(
                path.to_string(),
                ObjectMeta {
                    location: Path::from(path),
                    last_modified: now,
                    size,
                    e_tag: None,
                    version: None,
                },
            );
        }
    }
    out.into_values().collect()
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
        match self.fault("put") {
            Fault::Partial if replaceable => {
                let whole = Bytes::from(payload);
                let cut = whole.slice(..whole.len() / 2);
                let _ = self
                    .inner
                    .put_opts(location, PutPayload::from(cut), opts)
                    .await;
                Err(Self::error("put", "connection dropped part way"))
            }
            fault => {
                self.apply(
                    fault,
                    "put",
                    replaceable,
                    self.inner.put_opts(location, payload, opts),
                )
                .await
            }
        }
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
        let locations = if self.config.lag.is_zero() {
            locations
        } else {
            // Remember what goes, so that listings can still show it a while.
            let inner = self.inner.clone();
            let deleted = self.deleted.clone();
            let journal = self.config.ghosts.clone();
            locations
                .then(move |r| {
                    let inner = inner.clone();
                    let deleted = deleted.clone();
                    let journal = journal.clone();
                    async move {
                        if let Ok(p) = &r {
                            if let Ok(meta) = inner.head(p).await {
                                if let Some(j) = &journal {
                                    journal_deletion(j, &meta);
                                }
                                let mut d = deleted
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                                d.retain(|(m, _)| m.location != meta.location);
                                d.push((meta, Instant::now()));
                            }
                        }
                        r
                    }
                })
                .boxed()
        };
        match self.fault("delete") {
            Fault::None | Fault::Slow | Fault::LostAnswer | Fault::Partial => {
                self.inner.delete_stream(locations)
            }
            Fault::Refused | Fault::TimedOut => locations
                .map(|_| Err(Self::error("delete", "refused")))
                .boxed(),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.fault("list") {
            Fault::None | Fault::Slow | Fault::LostAnswer | Fault::Partial => {
                if self.config.lag.is_zero() {
                    return self.inner.list(prefix);
                }
                let cutoff = self.cutoff();
                let ghosts = self.ghosts(prefix);
                self.inner
                    .list(prefix)
                    .filter(move |r| {
                        futures::future::ready(
                            r.as_ref().map_or(true, |m| m.last_modified <= cutoff),
                        )
                    })
                    .chain(futures::stream::iter(ghosts.into_iter().map(Ok)))
                    .boxed()
            }
            Fault::Refused | Fault::TimedOut => {
                futures::stream::once(async { Err(Self::error("list", "refused")) }).boxed()
            }
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut r = self
            .around("list", true, self.inner.list_with_delimiter(prefix))
            .await?;
        if !self.config.lag.is_zero() {
            let cutoff = self.cutoff();
            r.objects.retain(|m| m.last_modified <= cutoff);
        }
        Ok(r)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.around("put", false, self.inner.copy_opts(from, to, options))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_and_refuses_nonsense() {
        let c = FaultConfig::parse("rate=0.25,seed=9,ops=put+get,delay=5ms").unwrap();
        assert_eq!(
            (c.rate, c.seed, c.ops.len(), c.delay),
            (0.25, 9, 2, Duration::from_millis(5))
        );
        assert_eq!(
            FaultConfig::parse("lag=2s").unwrap().lag,
            Duration::from_secs(2)
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

    #[tokio::test]
    async fn partial_writes_leave_half_an_object_and_an_error() {
        let mem: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let s = FaultyStore::new(
            mem.clone(),
            FaultConfig::parse("rate=1,seed=4,ops=put,delay=1ms").unwrap(),
        );
        let p = Path::from("obj");
        let mut halves = 0;
        for _ in 0..40 {
            let r = s
                .put_opts(
                    &p,
                    PutPayload::from_static(b"0123456789"),
                    PutOptions::default(),
                )
                .await;
            assert!(r.is_err() || mem.get(&p).await.is_ok());
            if let Ok(got) = mem.get(&p).await {
                let b = got.bytes().await.unwrap();
                if b.len() == 5 {
                    halves += 1;
                }
            }
            let _ = mem.delete(&p).await;
        }
        assert!(halves > 0, "some puts were cut off part way");
    }

    #[tokio::test]
    async fn lagging_listings_hide_new_objects_and_show_deleted_ones() {
        let mem: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let old = Path::from("d/old");
        mem.put(&old, PutPayload::from_static(b"x")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let s = FaultyStore::new(mem.clone(), FaultConfig::parse("rate=0,lag=300ms").unwrap());
        let new = Path::from("d/new");
        s.put(&new, PutPayload::from_static(b"y")).await.unwrap();
        let names = |s: &FaultyStore| {
            let prefix = Path::from("d");
            let list = s.list(Some(&prefix));
            async move {
                let mut v: Vec<String> = list
                    .map(|m| m.unwrap().location.to_string())
                    .collect()
                    .await;
                v.sort();
                v
            }
        };
        assert_eq!(names(&s).await, ["d/old"], "the new object lags");
        // Reads by name see it at once.
        assert!(s.head(&new).await.is_ok());
        s.delete(&old).await.unwrap();
        assert_eq!(
            names(&s).await,
            ["d/old"],
            "the deleted one is still listed"
        );
        assert!(s.head(&old).await.is_err());
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(
            names(&s).await,
            ["d/new"],
            "after the lag, listings catch up"
        );
    }
}
