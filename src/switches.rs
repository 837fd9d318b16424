//! Test switches: environment variables that only the test suite may use.
//!
//! | variable | effect | read by |
//! |---|---|---|
//! | `CUSTOS_TEST_FAST_KDF` | new passphrase slots cost 1 MiB, 1 pass (instead of 64 MiB, 3) | [`fast_kdf`] |
//! | `CUSTOS_TEST_LOCK_LEASE` | lock leases last this many seconds (instead of 300) | [`lock_lease`] |
//! | `CUSTOS_TEST_CRASH_AT`, `CUSTOS_TEST_CRASH_COUNT` | crash points (`crate::util::crash_point`) | `crash_at`, `crash_count` |
//! | `CUSTOS_FAULTS` | storage fault injection (`backend::faults`) | `faults` |
//! | `CUSTOS_BACKEND_RETRIES` | retries of a failing storage request (instead of 5) | [`backend_retries`] |
//!
//! Each variable is read in one place, here, by a function that exists only
//! in a build with the `test-switches` cargo feature, which the test suite
//! turns on (the package's dev-dependency on itself). `cargo build
//! --release` leaves it off: each function is then a constant "not set",
//! the fault injector and the crash points are not compiled in, and the
//! binary cannot be talked into weak key slots, short leases, crashes or
//! faults whatever its environment says (`.ci/product-switches.sh`).
//!
//! Layer 0 of `docs/architecture.md`: it uses no other module of custos.

use std::time::Duration;

/// True in a build that honours the test switches.
#[cfg(test)]
pub(crate) const ENABLED: bool = cfg!(feature = "test-switches");

/// `name`'s value, when set.
#[cfg(feature = "test-switches")]
fn var(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// `CUSTOS_TEST_FAST_KDF` is set.
#[cfg(feature = "test-switches")]
pub(crate) fn fast_kdf() -> bool {
    var("CUSTOS_TEST_FAST_KDF").is_some()
}

/// Never, in a build without the test switches.
#[cfg(not(feature = "test-switches"))]
pub(crate) fn fast_kdf() -> bool {
    false
}

/// The lease `CUSTOS_TEST_LOCK_LEASE` sets (whole seconds, more than 0).
#[cfg(feature = "test-switches")]
pub(crate) fn lock_lease() -> Option<Duration> {
    let secs = var("CUSTOS_TEST_LOCK_LEASE")?.parse::<u64>().ok();
    secs.filter(|&s| s > 0).map(Duration::from_secs)
}

/// None, in a build without the test switches.
#[cfg(not(feature = "test-switches"))]
pub(crate) fn lock_lease() -> Option<Duration> {
    None
}

/// The fault specification `CUSTOS_FAULTS` sets (not empty).
#[cfg(feature = "test-switches")]
pub(crate) fn faults() -> Option<String> {
    var("CUSTOS_FAULTS").filter(|s| !s.is_empty())
}

/// The number of retries `CUSTOS_BACKEND_RETRIES` sets.
#[cfg(feature = "test-switches")]
pub(crate) fn backend_retries() -> Option<u32> {
    var("CUSTOS_BACKEND_RETRIES")?.parse().ok()
}

/// None, in a build without the test switches.
#[cfg(not(feature = "test-switches"))]
pub(crate) fn backend_retries() -> Option<u32> {
    None
}

/// The crash point `CUSTOS_TEST_CRASH_AT` arms: `point` or `point#N` (the
/// N-th pass, 1 when not given).
#[cfg(feature = "test-switches")]
pub(crate) fn crash_at() -> Option<(String, u64)> {
    let w = var("CUSTOS_TEST_CRASH_AT")?;
    Some(match w.split_once('#') {
        Some((n, k)) => (n.to_string(), k.parse::<u64>().unwrap_or(1)),
        None => (w, 1),
    })
}

/// The point whose passes `CUSTOS_TEST_CRASH_COUNT=point=FILE` counts, and
/// the file.
#[cfg(feature = "test-switches")]
pub(crate) fn crash_count() -> Option<(String, String)> {
    let c = var("CUSTOS_TEST_CRASH_COUNT")?;
    c.split_once('=')
        .map(|(n, f)| (n.to_string(), f.to_string()))
}

/// Key slots cheaper than the minimum may be written: with the fast KDF
/// switch, and in the library's own unit tests.
pub(crate) fn weak_kdf_allowed() -> bool {
    cfg!(test) || fast_kdf()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_build_honours_the_switches() {
        // Unit tests are built with the feature (see Cargo.toml).
        const { assert!(super::ENABLED) };
        std::env::set_var("CUSTOS_SWITCHES_UNIT_PROBE", "x");
        assert_eq!(
            super::var("CUSTOS_SWITCHES_UNIT_PROBE").as_deref(),
            Some("x")
        );
        assert_eq!(super::var("CUSTOS_SWITCHES_UNIT_UNSET"), None);
    }
}
