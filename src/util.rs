//! Small helpers shared by several modules.
//!
//! Layer 0 of `docs/architecture.md`: it uses `switches`, and nothing of a layer above.

/// Runs `f`, which blocks (file locks, fsyncs, whole-file reads), without
/// holding up the async runtime: on a worker of a multi-thread runtime the
/// worker hands its other tasks on first (`block_in_place`); elsewhere (a
/// blocking thread, a current-thread runtime, no runtime) `f` just runs.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Locks `m`, going on when a thread panicked while holding it: for state
/// whose every change is one step (an insert, a counter, a swapped value),
/// so a panic cannot leave it half-changed.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs `work` on every item of `items` on `threads` blocking threads, each
/// taking the next item when it is done with one and keeping its own
/// scratch value (`scratch()`) from item to item; returns the items'
/// results, in no particular order.
///
/// For CPU-bound work on local data (reading a local repository's packs):
/// threads that never wait for each other stay on their cores. A blocking
/// task per item makes the threads sleep and wake at every item, and on
/// two cores the scheduler often ran the two busy ones on one core for
/// several milliseconds while the other idled (13 % of a restore's CPU
/// time, seen with `perf sched`).
///
/// The first error stops the threads after their current item and is
/// returned. When the returned future is dropped (a daemon's job cancelled
/// or timed out), the threads stop after their current item too.
pub(crate) async fn on_threads<I, S, R>(
    items: I,
    threads: usize,
    scratch: impl Fn() -> S + Send + Sync + 'static,
    work: impl Fn(&mut S, I::Item) -> crate::Result<R> + Send + Sync + 'static,
) -> crate::Result<Vec<R>>
where
    I: Iterator + Send + 'static,
    R: Send + 'static,
{
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    /// Sets its flag when dropped.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let queue = Arc::new(Mutex::new(items));
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let (scratch, work) = (Arc::new(scratch), Arc::new(work));
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let (queue, stop) = (queue.clone(), stop.clone());
            let (scratch, work) = (scratch.clone(), work.clone());
            tokio::task::spawn_blocking(move || {
                let mut own = scratch();
                let mut done = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let next = queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .next();
                    let Some(item) = next else { break };
                    match work(&mut own, item) {
                        Ok(r) => done.push(r),
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
                Ok(done)
            })
        })
        .collect();
    joined(handles).await
}

/// As [`on_threads`], for work that finds more work (a walk over a tree of
/// trees): `work` returns its result and the items it found, which join the
/// queue. Items are taken last in, first out, so the queue stays as small
/// as a depth-first walk's stack. It ends when the queue is empty and no
/// thread holds an item; a thread finding the queue empty while another
/// still works waits for what that one finds.
///
/// The first error (or a panic in `work`, returned as
/// [`crate::Error::Internal`]) stops the threads after their current item
/// and is returned; so does dropping the returned future.
pub(crate) async fn on_threads_expanding<T, S, R>(
    start: Vec<T>,
    threads: usize,
    scratch: impl Fn() -> S + Send + Sync + 'static,
    work: impl Fn(&mut S, T) -> crate::Result<(R, Vec<T>)> + Send + Sync + 'static,
) -> crate::Result<Vec<R>>
where
    T: Send + 'static,
    R: Send + 'static,
{
    use std::sync::{Arc, Condvar, Mutex, PoisonError};
    /// The items waiting, how many threads hold one, and whether to stop.
    struct Queue<T> {
        items: Vec<T>,
        busy: usize,
        stop: bool,
    }
    type Shared<T> = Arc<(Mutex<Queue<T>>, Condvar)>;
    /// Stops the threads when dropped (they may be waiting: wakes them).
    struct StopOnDrop<T>(Shared<T>);
    impl<T> Drop for StopOnDrop<T> {
        fn drop(&mut self) {
            lock(&self.0 .0).stop = true;
            self.0 .1.notify_all();
        }
    }
    let shared: Shared<T> = Arc::new((
        Mutex::new(Queue {
            items: start,
            busy: 0,
            stop: false,
        }),
        Condvar::new(),
    ));
    let _stop = StopOnDrop(shared.clone());
    let (scratch, work) = (Arc::new(scratch), Arc::new(work));
    let handles: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let shared = shared.clone();
            let (scratch, work) = (scratch.clone(), work.clone());
            tokio::task::spawn_blocking(move || {
                let mut own = scratch();
                let mut done = Vec::new();
                loop {
                    let item = {
                        let mut q = lock(&shared.0);
                        loop {
                            if q.stop {
                                return Ok(done);
                            }
                            if let Some(item) = q.items.pop() {
                                q.busy += 1;
                                break item;
                            }
                            if q.busy == 0 {
                                return Ok(done);
                            }
                            q = shared.1.wait(q).unwrap_or_else(PoisonError::into_inner);
                        }
                    };
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        work(&mut own, item)
                    }))
                    .unwrap_or_else(|_| {
                        Err(crate::Error::Internal("a worker thread panicked".into()))
                    });
                    let mut q = lock(&shared.0);
                    q.busy -= 1;
                    match outcome {
                        Ok((r, found)) => {
                            done.push(r);
                            q.items.extend(found);
                            // Waiting threads take what was found, or
                            // leave when nothing is left to find.
                            if !q.items.is_empty() || q.busy == 0 {
                                shared.1.notify_all();
                            }
                        }
                        Err(e) => {
                            q.stop = true;
                            shared.1.notify_all();
                            return Err(e);
                        }
                    }
                }
            })
        })
        .collect();
    joined(handles).await
}

/// Waits for every one of `handles` (threads of [`on_threads`] or
/// [`on_threads_expanding`]) and returns all their results, or the first
/// error one returned or met (a panic).
async fn joined<R>(
    handles: Vec<tokio::task::JoinHandle<crate::Result<Vec<R>>>>,
) -> crate::Result<Vec<R>> {
    let mut results = Vec::new();
    let mut first_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(done)) => results.extend(done),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(crate::Error::Internal(format!(
                    "a worker thread failed: {e}"
                )));
            }
        }
    }
    first_error.map_or(Ok(results), Err)
}

/// Reusable scratch values (buffers) shared by the tasks of one operation:
/// a task takes one, and it goes back when the guard drops. The pool holds
/// at most as many values as were in use at once, so the memory it keeps
/// is bounded by the operation's concurrency, and it is freed with the
/// pool when the operation ends.
pub(crate) struct Pool<T> {
    free: std::sync::Mutex<Vec<T>>,
    /// At most this many values are kept by [`Pool::put`].
    keep: usize,
}

impl<T> Pool<T> {
    /// An empty pool.
    pub(crate) fn new() -> Pool<T> {
        Self::keeping(usize::MAX)
    }

    /// An empty pool that keeps at most `keep` values given back with
    /// [`Pool::put`] (the others are dropped).
    pub(crate) fn keeping(keep: usize) -> Pool<T> {
        Pool {
            free: std::sync::Mutex::new(Vec::new()),
            keep,
        }
    }

    /// A value from the pool, or `make()`'s when none is free.
    pub(crate) fn take(&self, make: impl FnOnce() -> T) -> Pooled<'_, T> {
        let value = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_else(make);
        Pooled {
            pool: self,
            value: Some(value),
        }
    }
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool::new()
    }
}

impl<T> Pool<T> {
    /// A value from the pool, or `make()`'s, owned by the caller: it comes
    /// back only through [`Pool::put`] (values that cross threads, such as
    /// a backup's chunk and pack buffers). What the pool holds is still
    /// bounded by how many values were alive at once.
    pub(crate) fn take_owned(&self, make: impl FnOnce() -> T) -> T {
        self.free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_else(make)
    }

    /// Gives a value back (dropped when the pool keeps enough).
    pub(crate) fn put(&self, value: T) {
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if free.len() < self.keep {
            free.push(value);
        }
    }
}

/// A value taken from a [`Pool`]; derefs to it and returns it on drop.
pub(crate) struct Pooled<'a, T> {
    pool: &'a Pool<T>,
    value: Option<T>,
}

impl<T> std::ops::Deref for Pooled<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Some until drop.
        #[allow(clippy::unwrap_used)]
        self.value.as_ref().unwrap()
    }
}

impl<T> std::ops::DerefMut for Pooled<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // Some until drop.
        #[allow(clippy::unwrap_used)]
        self.value.as_mut().unwrap()
    }
}

impl<T> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        if let Some(v) = self.value.take() {
            self.pool
                .free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(v);
        }
    }
}

/// The host name, or `unknown`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The user name, or the numeric UID.
pub fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| {
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            uid.to_string()
        })
}

/// Human-readable byte count (binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// True when running as root (owners and special files are restored only then).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A named point where crash tests stop the process dead.
///
/// When `CUSTOS_TEST_CRASH_AT` equals `point` (or `point#N`: the N-th time the
/// point is reached), the process sends itself SIGKILL: no destructor, flush
/// or lock release runs, exactly as if the machine had died there. Crash
/// tests use it to stop a command between two writes that random timing would
/// rarely separate. `CUSTOS_TEST_CRASH_COUNT=point=FILE` appends a byte to
/// FILE each time the point is passed. Both are read once per process; unset,
/// a point costs one check of a cached value. Test switches (see
/// [`crate::switches`]): a build without them has no crash points.
#[cfg(feature = "test-switches")]
pub(crate) fn crash_point(point: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    /// (point to kill at, at its N-th pass), (point to count, file).
    type Armed = (Option<(String, u64)>, Option<(String, String)>);
    static ARMED: OnceLock<Armed> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let (kill_at, count) =
        ARMED.get_or_init(|| (crate::switches::crash_at(), crate::switches::crash_count()));
    // Crash tests count how often a point is passed (one byte per pass
    // appended to a file), to choose where to kill the next run.
    if let Some((name, file)) = count {
        if name == point {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(file)
            {
                let _ = std::io::Write::write_all(&mut f, b".");
            }
        }
    }
    let Some((name, nth)) = kill_at else {
        return;
    };
    if name != point {
        return;
    }
    // One counter is enough: a test arms one point per run.
    if HITS.fetch_add(1, Ordering::SeqCst) + 1 >= *nth {
        // SAFETY: getpid and kill have no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// No crash points in a build without the test switches.
#[cfg(not(feature = "test-switches"))]
#[inline(always)]
pub(crate) fn crash_point(_point: &str) {}

/// Overwrites a regular file with zeros over its whole length, syncs it,
/// then removes it: what custos can do so that a removed file's bytes are
/// not left in its blocks for the file system to hand out again. (Copies
/// the file system or the disk keep elsewhere, journals, snapshots,
/// remapped flash pages, are beyond it.) A file that is gone already is
/// fine.
///
/// # Errors
/// [`crate::Error::Io`] naming the file.
pub(crate) fn overwrite_with_zeros(path: &std::path::Path) -> crate::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let f = match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(crate::Error::io_path("cannot overwrite", path, e)),
    };
    let len = f
        .metadata()
        .map_err(|e| crate::Error::io_path("cannot overwrite", path, e))?
        .len();
    let zeros = vec![0u8; 1 << 16];
    let mut w = std::io::BufWriter::new(&f);
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        w.write_all(&zeros[..n])
            .map_err(|e| crate::Error::io_path("cannot overwrite", path, e))?;
        left -= n as u64;
    }
    w.flush()
        .and_then(|()| f.sync_all())
        .map_err(|e| crate::Error::io_path("cannot overwrite", path, e))?;
    drop(w);
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(crate::Error::io_path("cannot remove", path, e))
        }
        _ => Ok(()),
    }
}

/// Makes a directory custos created readable by its owner only (0700).
///
/// # Errors
/// [`crate::Error::Io`] naming the directory.
pub(crate) fn private_dir(dir: &std::path::Path) -> crate::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| crate::Error::io_path("cannot make private", dir, e))
}

/// A time as custos writes it in records and messages: RFC 3339 in UTC, to
/// the second (`2026-12-04T21:15:58Z`); sub-second digits are noise to
/// people and to the records' readers.
pub(crate) fn stamp(t: jiff::Timestamp) -> String {
    jiff::Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

#[cfg(test)]
mod stamp_tests {
    #[test]
    fn times_are_written_to_the_second() {
        let t: jiff::Timestamp = "2026-12-04T21:15:58.123456789Z".parse().unwrap();
        assert_eq!(super::stamp(t), "2026-12-04T21:15:58Z");
    }
}

/// A size with an optional unit: `512`, `100K`, `512M`, `2G`, `1T` (powers
/// of 1024, as restic), for the command line and the config alike.
///
/// # Errors
/// One sentence naming the value and the accepted units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'B' => 1,
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("{s:?}: unknown unit {c:?} (use K, M, G or T)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 512M or 2G"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("100K"), Ok(102_400));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}

/// A writer that counts the bytes that pass through it (a dump streamed
/// into a database loader).
pub struct CountingWriter<'a> {
    /// Where the bytes go.
    pub inner: &'a mut dyn std::io::Write,
    /// How many went.
    pub n: u64,
}

impl std::io::Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::{on_threads, on_threads_expanding};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_threads_does_every_item_once_with_a_scratch_per_thread() {
        let made = Arc::new(AtomicUsize::new(0));
        let counted = made.clone();
        let mut done = on_threads(
            0..1000u32,
            3,
            move || {
                counted.fetch_add(1, Ordering::Relaxed);
                0usize
            },
            |mine: &mut usize, i| {
                // A thread's scratch counts only what that thread did.
                *mine += 1;
                Ok((i, *mine))
            },
        )
        .await
        .unwrap();
        assert_eq!(made.load(Ordering::Relaxed), 3);
        done.sort_unstable();
        let items: Vec<u32> = done.iter().map(|(i, _)| *i).collect();
        assert_eq!(items, (0..1000).collect::<Vec<_>>());
        // Each thread's count starts at 1: as many firsts as threads that
        // took an item.
        let firsts = done.iter().filter(|(_, n)| *n == 1).count();
        assert!((1..=3).contains(&firsts), "{firsts}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_threads_stops_at_the_first_error() {
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = seen.clone();
        let r = on_threads(
            0..1_000_000u32,
            2,
            || (),
            move |(), i| {
                counted.fetch_add(1, Ordering::Relaxed);
                if i == 10 {
                    return Err(crate::Error::Internal("item 10".into()));
                }
                Ok(i)
            },
        )
        .await;
        assert!(matches!(r, Err(crate::Error::Internal(m)) if m == "item 10"));
        assert!(seen.load(Ordering::Relaxed) < 1000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_threads_expanding_does_what_is_found_once_each() {
        // Item n finds 2n+1 and 2n+2 below 10 000: a binary tree, visited
        // from its root; a slow item now and then makes threads wait for
        // what another finds.
        let mut done = on_threads_expanding(
            vec![0u32],
            3,
            || (),
            |(), n| {
                if n % 997 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let found = [2 * n + 1, 2 * n + 2].into_iter().filter(|c| *c < 10_000);
                Ok((n, found.collect()))
            },
        )
        .await
        .unwrap();
        done.sort_unstable();
        assert_eq!(done, (0..10_000).collect::<Vec<_>>());
        let none = on_threads_expanding(Vec::<u32>::new(), 2, || (), |(), n| Ok((n, vec![])))
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_threads_expanding_stops_at_an_error_or_a_panic() {
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = seen.clone();
        let r = on_threads_expanding(
            vec![0u64],
            2,
            || (),
            move |(), n| {
                counted.fetch_add(1, Ordering::Relaxed);
                if n == 10 {
                    return Err(crate::Error::Internal("item 10".into()));
                }
                // Two found each time, the next one taken first.
                Ok((n, vec![n + 1_000_000_000, n + 1]))
            },
        )
        .await;
        assert!(matches!(r, Err(crate::Error::Internal(m)) if m == "item 10"));
        assert!(seen.load(Ordering::Relaxed) < 1000);
        // A panic is an error too, and the other threads do not wait for
        // the panicked one's findings forever.
        let r = on_threads_expanding(
            vec![0u64],
            2,
            || (),
            |(), n| {
                assert!(n != 5, "item 5");
                Ok((n, vec![n + 1]))
            },
        )
        .await;
        assert!(matches!(r, Err(crate::Error::Internal(m)) if m.contains("panicked")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_threads_expanding_stops_when_dropped() {
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = seen.clone();
        // Every item finds the next: endless, and one thread always waits.
        let task = tokio::spawn(on_threads_expanding(
            vec![0u64],
            2,
            || (),
            move |(), n| {
                counted.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
                Ok((n, vec![n + 1]))
            },
        ));
        aborted_when_started(task, &seen).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_threads_stops_when_dropped() {
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = seen.clone();
        let task = tokio::spawn(on_threads(
            0u64..,
            2,
            || (),
            move |(), i| {
                counted.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
                Ok(i)
            },
        ));
        aborted_when_started(task, &seen).await;
    }

    /// Aborts `task` once it has counted 10 items in `seen`, then asserts
    /// that the count settles: with endless items it does only if the
    /// threads stopped.
    async fn aborted_when_started<T>(task: tokio::task::JoinHandle<T>, seen: &AtomicUsize) {
        while seen.load(Ordering::Relaxed) < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        let mut last = seen.load(Ordering::Relaxed);
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = seen.load(Ordering::Relaxed);
            if now == last {
                return;
            }
            last = now;
        }
        panic!("the threads kept taking items after the drop");
    }
}
