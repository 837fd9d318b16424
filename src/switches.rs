//! Test switches: environment variables that only the test suite may use.
//!
//! | variable | effect |
//! |---|---|
//! | `CUSTOS_TEST_FAST_KDF` | new passphrase slots cost 1 MiB, 1 pass (instead of 64 MiB, 3) |
//! | `CUSTOS_TEST_LOCK_LEASE` | lock leases last this many seconds (instead of 300) |
//! | `CUSTOS_TEST_CRASH_AT`, `CUSTOS_TEST_CRASH_COUNT` | crash points ([`crate::util::crash_point`]) |
//! | `CUSTOS_FAULTS` | storage fault injection ([`crate::backend::faults`]) |
//! | `CUSTOS_BACKEND_RETRIES` | retries of a failing storage request (instead of 5) |
//!
//! They are read only in a build with the `test-switches` cargo feature,
//! which the test suite turns on (the package's dev-dependency on itself);
//! `cargo build --release` leaves it off, and such a binary ignores every one
//! of these variables: it cannot be talked into weak key slots, short
//! leases, crashes or faults.

/// True in a build that honours the test switches.
pub const ENABLED: bool = cfg!(feature = "test-switches");

/// The value of a test switch, in a build that honours them; `None`
/// otherwise (whatever the environment says).
pub fn get(name: &str) -> Option<String> {
    if !ENABLED {
        return None;
    }
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// `CUSTOS_TEST_FAST_KDF` is set (and honoured).
pub fn fast_kdf() -> bool {
    get("CUSTOS_TEST_FAST_KDF").is_some()
}

/// Key slots cheaper than the minimum may be written: with the fast KDF
/// switch, and in the library's own unit tests.
pub fn weak_kdf_allowed() -> bool {
    cfg!(test) || fast_kdf()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_build_honours_the_switches() {
        // Unit tests are built with the feature (see Cargo.toml).
        const { assert!(super::ENABLED) };
        std::env::set_var("CUSTOS_TEST_SWITCH_PROBE", "x");
        assert_eq!(super::get("CUSTOS_TEST_SWITCH_PROBE").as_deref(), Some("x"));
    }
}
