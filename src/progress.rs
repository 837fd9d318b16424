//! Progress reporting for long operations: a bar on stderr when it is a
//! terminal (files, bytes, rate, ETA), nothing otherwise.
//!
//! Layer 0 of `docs/architecture.md`: it uses no other module of custos.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Shared progress counters with an optional terminal bar.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    bar: ProgressBar,
    files: AtomicU64,
    total_files: AtomicU64,
    /// Kept here, not only in the bar: a hidden bar has no length to add to
    /// (a daemon's restore reported a total of 0 bytes).
    bytes: AtomicU64,
    total_bytes: AtomicU64,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

impl Progress {
    /// A progress display for `verb` ("backup", "restore"). Hidden when stderr is
    /// not a terminal or `quiet` is set.
    pub fn new(verb: &str, quiet: bool) -> Progress {
        let visible = !quiet && std::io::stderr().is_terminal();
        let bar = if visible {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
            let style = ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style);
            b.set_prefix(verb.to_string());
            b.enable_steady_tick(Duration::from_millis(250));
            b
        } else {
            ProgressBar::hidden()
        };
        Progress {
            inner: Arc::new(Inner {
                bar,
                files: AtomicU64::new(0),
                total_files: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                total_bytes: AtomicU64::new(0),
            }),
        }
    }

    /// A progress that shows nothing.
    pub fn hidden() -> Progress {
        Progress::new("", true)
    }

    /// Whether anything is drawn (a terminal, not quiet): only then is it
    /// worth scanning ahead for totals.
    pub fn is_shown(&self) -> bool {
        !self.inner.bar.is_hidden()
    }

    /// Adds to the expected totals (from a scan running alongside).
    pub fn add_total(&self, files: u64, bytes: u64) {
        self.inner.total_files.fetch_add(files, Ordering::Relaxed);
        self.inner.total_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.inner.bar.inc_length(bytes);
    }

    /// Records processed bytes.
    pub fn add_bytes(&self, n: u64) {
        self.inner.bytes.fetch_add(n, Ordering::Relaxed);
        self.inner.bar.inc(n);
    }

    /// Records one finished file.
    pub fn file_done(&self) {
        let done = self.inner.files.fetch_add(1, Ordering::Relaxed) + 1;
        self.refresh(done);
    }

    fn refresh(&self, done: u64) {
        if !self.inner.bar.is_hidden() {
            let total = self.inner.total_files.load(Ordering::Relaxed);
            self.inner.bar.set_message(format!("{done}/{total} files"));
        }
    }

    /// Files done, files expected, bytes done, bytes expected (for status
    /// reports; works when the bar is hidden too).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        (
            self.inner.files.load(Ordering::Relaxed),
            self.inner.total_files.load(Ordering::Relaxed),
            self.inner.bytes.load(Ordering::Relaxed),
            self.inner.total_bytes.load(Ordering::Relaxed),
        )
    }

    /// Prints a line above the bar (warnings).
    pub fn println(&self, line: &str) {
        if self.inner.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.inner.bar.println(line);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.inner.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a daemon's restore (hidden progress) reported a total of
    /// 0 bytes, because a hidden bar has no length to add to.
    #[test]
    fn hidden_progress_counts_totals() {
        let p = Progress::hidden();
        p.add_total(2, 1000);
        p.add_total(1, 24);
        p.add_bytes(600);
        p.file_done();
        assert_eq!(p.counts(), (1, 3, 600, 1024));
    }
}
