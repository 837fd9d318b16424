//! The master keys this process has unwrapped, so that opening the same
//! repository with the same secret again costs no second key derivation.
//!
//! Argon2id at the slot's cost (64 MiB, 3 passes: about a quarter of a
//! second of one core) is the price of every guess at a passphrase; it is
//! also what the daemon paid at every job of every service. A long-running
//! process (the daemon) now pays it once per repository and secret: the
//! first open derives the key and remembers it here; later opens find it.
//!
//! What a later open still checks, so that the cache never grants what a
//! fresh open would refuse:
//!
//! | change since the key was cached | what the next open does |
//! |---|---|
//! | the secret (password file) changed | another cache entry: the new secret is derived against the slots |
//! | the slot it opened was removed (`key remove`) or rewritten | the slot's bytes differ or it is not listed: derived again against the slots left (and refused when none opens) |
//! | the repository's config was replaced | the config's MAC is checked with the cached key, as on every open |
//!
//! Entries are kept under a keyed hash of the secret (the hash key is
//! random per process), never the secret itself; the master keys are
//! zeroed when dropped ([`MasterKey`]). [`forget`] drops the entries of a
//! repository (erasure calls it for every repository it erases).
//!
//! Layer 3 (part of `repository`): it uses `crypto`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::crypto::keyslot::Secret;
use crate::crypto::MasterKey;

/// What a cached key came from: the slot object and a digest of its bytes.
#[derive(Clone)]
pub(crate) struct CachedKey {
    /// The slot object's path (`keys/<id>`).
    pub(crate) slot_path: String,
    /// BLAKE3 of the slot object's bytes when it opened.
    pub(crate) slot_digest: [u8; 32],
    /// The master key it unwrapped.
    pub(crate) master: MasterKey,
}

struct Cache {
    /// Key of the secret hash; random per process.
    hash_key: [u8; 32],
    /// (repository URL, secret hash) → key.
    entries: HashMap<(String, [u8; 32]), CachedKey>,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| {
        Mutex::new(Cache {
            hash_key: rand::random(),
            entries: HashMap::new(),
        })
    })
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    // The cache holds no invariant a panicking holder could break halfway.
    cache()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn secret_hash(key: &[u8; 32], secret: &Secret) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key);
    match secret {
        Secret::Passphrase(p) => {
            h.update(b"passphrase\0");
            h.update(p.as_bytes());
        }
        Secret::KeyFile(k) => {
            h.update(b"key file\0");
            h.update(k);
        }
    }
    *h.finalize().as_bytes()
}

/// A lock per repository URL, held while a key is looked up or derived, so
/// that two opens of one repository at the same moment (a job and the
/// snapshot refresh) derive the key once, not once each.
pub(crate) async fn opening(url: &str) -> tokio::sync::OwnedMutexGuard<()> {
    static OPENING: OnceLock<Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>> =
        OnceLock::new();
    let m = {
        let mut map = OPENING
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Locks nobody holds or waits for are dropped as others are taken.
        map.retain(|_, m| std::sync::Arc::strong_count(m) > 1);
        map.entry(url.to_string()).or_default().clone()
    };
    m.lock_owned().await
}

/// The digest [`CachedKey::slot_digest`] holds for a slot object's bytes.
pub(crate) fn slot_digest(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// The key cached for the repository at `url` and `secret`, if any.
pub(crate) fn lookup(url: &str, secret: &Secret) -> Option<CachedKey> {
    let c = lock();
    let h = secret_hash(&c.hash_key, secret);
    c.entries.get(&(url.to_string(), h)).cloned()
}

/// Remembers the key `secret` unwrapped from a slot of the repository at
/// `url`.
pub(crate) fn remember(url: &str, secret: &Secret, key: CachedKey) {
    let mut c = lock();
    let h = secret_hash(&c.hash_key, secret);
    c.entries.insert((url.to_string(), h), key);
}

/// Drops every cached key of the repository at `url`; returns how many.
pub fn forget(url: &str) -> usize {
    let mut c = lock();
    let before = c.entries.len();
    c.entries.retain(|(u, _), _| u != url);
    before - c.entries.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(p: &str) -> Secret {
        Secret::Passphrase(zeroize::Zeroizing::new(p.to_string()))
    }

    #[test]
    fn entries_are_per_repository_and_secret_and_forgotten_per_repository() {
        let key = |path: &str| CachedKey {
            slot_path: path.into(),
            slot_digest: slot_digest(path.as_bytes()),
            master: MasterKey::generate(),
        };
        let (a, b) = ("memory://key-cache-a", "memory://key-cache-b");
        remember(a, &pass("one"), key("keys/1"));
        remember(b, &pass("one"), key("keys/2"));
        assert_eq!(
            lookup(a, &pass("one")).map(|k| k.slot_path),
            Some("keys/1".into())
        );
        assert!(lookup(a, &pass("two")).is_none(), "another secret");
        assert!(
            lookup(
                a,
                &Secret::KeyFile(zeroize::Zeroizing::new(b"one".to_vec()))
            )
            .is_none(),
            "a key file with the passphrase's bytes"
        );
        assert_eq!(forget(a), 1);
        assert!(lookup(a, &pass("one")).is_none());
        assert!(lookup(b, &pass("one")).is_some());
        assert_eq!(forget(b), 1);
    }
}
