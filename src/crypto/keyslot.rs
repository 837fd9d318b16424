//! Key slots: the master key wrapped by a key-encryption key (KEK).
//!
//! A passphrase slot derives its KEK with Argon2id (64 MiB, t=3, p=1 by default,
//! parameters stored in the slot); a key-file slot derives it with BLAKE3
//! `derive_key` from the file's bytes (which must hold at least 32 bytes of
//! entropy). The master key is sealed with AES-256-GCM under the KEK with a random
//! nonce; the slot's ID is the AAD, so a slot cannot be swapped for another.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Cipher, MasterKey};
use crate::id::KeyId;
use crate::{Error, Result};

const CTX_KEYFILE: &str = "custos 2026-11 key file kek v1";

/// How a slot's key-encryption key is obtained.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Kdf {
    /// Argon2id over a passphrase.
    Argon2id {
        /// Memory in KiB.
        m_kib: u32,
        /// Iterations.
        t: u32,
        /// Parallelism.
        p: u32,
        /// Random salt, hex.
        salt: String,
    },
    /// BLAKE3 derive_key over a key file's contents.
    KeyFile,
}

/// The secret that opens a slot (wiped from memory when dropped; a clone
/// is wiped too).
#[derive(Clone)]
pub enum Secret {
    /// A passphrase.
    Passphrase(Zeroizing<String>),
    /// The contents of a key file.
    KeyFile(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Passphrase(_) => f.write_str("Secret::Passphrase(..)"),
            Secret::KeyFile(_) => f.write_str("Secret::KeyFile(..)"),
        }
    }
}

impl Secret {
    /// The passphrase in a file (its first line; a trailing newline is not part
    /// of it).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Usage`] when it is
    /// empty.
    pub(crate) fn from_password_file(path: &std::path::Path) -> Result<Secret> {
        let bytes = crate::secrets::read_file(path, "password file")?;
        let s = std::str::from_utf8(&bytes).map_err(|_| {
            Error::Usage(format!(
                "password file {} is not UTF-8 text",
                path.display()
            ))
        })?;
        let s = s.trim_end_matches(['\n', '\r']);
        if s.is_empty() {
            return Err(Error::Usage(format!(
                "password file {} is empty",
                path.display()
            )));
        }
        Ok(Secret::Passphrase(Zeroizing::new(s.to_string())))
    }

    /// A key file's contents.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Usage`] when it is
    /// shorter than 32 bytes or group or others may read it.
    pub(crate) fn from_key_file(path: &std::path::Path) -> Result<Secret> {
        let bytes = crate::secrets::read_file(path, "key file")?;
        if bytes.len() < 32 {
            return Err(Error::Usage(format!(
                "key file {} holds {} bytes: at least 32 are needed",
                path.display(),
                bytes.len()
            )));
        }
        Ok(Secret::KeyFile(bytes))
    }
}

/// Where a repository's key comes from: the one way every command, the
/// daemon and erasure turn a configured or given secret into a [`Secret`],
/// with the same checks (a private file, no empty passphrase, a key file of
/// at least 32 bytes, a variable taken once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A file holding the passphrase.
    PasswordFile(std::path::PathBuf),
    /// A key file.
    KeyFile(std::path::PathBuf),
    /// An environment variable holding the passphrase.
    Env(String),
}

impl KeySource {
    /// The source a command line gives: a key file, else a password file,
    /// else the variable `env` when it is set (and not empty); `None` when
    /// none is.
    pub fn given(
        key_file: Option<&std::path::Path>,
        password_file: Option<&std::path::Path>,
        env: &str,
    ) -> Option<KeySource> {
        if let Some(k) = key_file {
            return Some(KeySource::KeyFile(k.to_path_buf()));
        }
        if let Some(p) = password_file {
            return Some(KeySource::PasswordFile(p.to_path_buf()));
        }
        crate::secrets::env(env).map(|_| KeySource::Env(env.to_string()))
    }

    /// The secret as text, trimmed (an API token, a webhook's signing
    /// secret, an SMTP password): a file's contents (refused unless
    /// private) or a variable's value; `what` names it in errors.
    ///
    /// # Errors
    /// [`Error::Usage`] when the file cannot be read or is not private, or
    /// the variable is not set.
    pub fn text(&self, what: &str) -> Result<Zeroizing<String>> {
        match self {
            KeySource::PasswordFile(f) | KeySource::KeyFile(f) => {
                let bytes = crate::secrets::read_file(f, &format!("{what} file"))?;
                Ok(Zeroizing::new(
                    String::from_utf8_lossy(&bytes).trim().to_string(),
                ))
            }
            KeySource::Env(v) => crate::secrets::env(v).ok_or_else(|| {
                Error::Usage(format!("{what}: environment variable {v} is not set"))
            }),
        }
    }

    /// Reads the secret.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Usage`] naming the file or variable.
    pub fn load(&self) -> Result<Secret> {
        match self {
            KeySource::PasswordFile(p) => Secret::from_password_file(p),
            KeySource::KeyFile(p) => Secret::from_key_file(p),
            KeySource::Env(v) => crate::secrets::env(v)
                .map(Secret::Passphrase)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "environment variable {v} (a passphrase) is not set"
                    ))
                }),
        }
    }

    /// [`Self::load`], first creating a missing key file with 64 random
    /// bytes (mode 0600), as `init` and `key add` do; returns whether it
    /// was created.
    ///
    /// # Errors
    /// As [`Self::load`]; [`Error::Io`] when the key file cannot be created.
    pub fn load_or_create(&self) -> Result<(Secret, bool)> {
        let created = match self {
            KeySource::KeyFile(p) if !p.exists() => {
                crate::secrets::create_key_file(p)?;
                true
            }
            _ => false,
        };
        Ok((self.load()?, created))
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism.
    pub p: u32,
}

impl KdfParams {
    /// The cost for new passphrase slots: the default, or a cheap one in the
    /// library's unit tests and when `CUSTOS_TEST_FAST_KDF` is set in a test
    /// build (it weakens passphrases; see `switches`).
    pub fn for_new_slots() -> KdfParams {
        if cfg!(test) || crate::switches::fast_kdf() {
            KdfParams {
                m_kib: 1024,
                t: 1,
                p: 1,
            }
        } else {
            KdfParams::default()
        }
    }
}

impl KdfParams {
    /// Refuses a cost below what custos writes (64 MiB, 3 passes, 1 lane):
    /// no slot is ever cheaper to guess, unless `weak_allowed` (tests).
    ///
    /// # Errors
    /// [`Error::Usage`] naming the cost and the minimum.
    pub(crate) fn check_minimum(&self, weak_allowed: bool) -> Result<()> {
        let min = KdfParams::default();
        if !weak_allowed && (self.m_kib < min.m_kib || self.t < min.t || self.p < min.p) {
            return Err(Error::Usage(format!(
                "refusing to write a key slot with Argon2id cost m={} KiB, t={}, p={}: the minimum is m={} KiB, t={}, p={}",
                self.m_kib, self.t, self.p, min.m_kib, min.t, min.p
            )));
        }
        Ok(())
    }
}

/// Largest Argon2 memory cost a slot may ask for when opened (4 GiB).
pub(crate) const MAX_M_KIB: u32 = 4 << 20;
/// Largest Argon2 pass count a slot may ask for.
pub(crate) const MAX_T: u32 = 64;
/// Largest Argon2 lane count a slot may ask for.
pub(crate) const MAX_P: u32 = 64;

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about 235 ms on the reference machine, which
    /// makes an offline guess cost as much while opening stays quick.
    fn default() -> Self {
        KdfParams {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

/// A key slot as stored (JSON) under `keys/<id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySlot {
    /// Format version (1).
    pub version: u32,
    /// The slot's ID (also its object name).
    pub id: KeyId,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Host that created the slot.
    pub hostname: String,
    /// User that created the slot.
    pub username: String,
    /// How the KEK is derived.
    pub kdf: Kdf,
    /// AES-GCM nonce, hex (12 bytes).
    pub nonce: String,
    /// The sealed master key, hex (32 + 16 bytes).
    pub wrapped: String,
}

/// Counts [`KeySlot::open`]'s passphrase derivations (see
/// [`KeySlot::derivations`]).
static DERIVATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl KeySlot {
    /// Wraps `master` under `secret`.
    pub fn create(master: &MasterKey, secret: &Secret, params: KdfParams) -> Result<KeySlot> {
        if matches!(secret, Secret::Passphrase(_)) {
            params.check_minimum(crate::switches::weak_kdf_allowed())?;
        }
        let id = KeyId::random();
        let kdf = match secret {
            Secret::Passphrase(_) => {
                let salt: [u8; 16] = rand::random();
                Kdf::Argon2id {
                    m_kib: params.m_kib,
                    t: params.t,
                    p: params.p,
                    salt: hex::encode(salt),
                }
            }
            Secret::KeyFile(_) => Kdf::KeyFile,
        };
        let kek = derive_kek(&kdf, secret)?;
        let nonce: [u8; 12] = rand::random();
        let sealed = Cipher::new(&kek).seal_with_nonce(nonce, id.as_bytes(), master.expose());
        Ok(KeySlot {
            version: 1,
            id,
            created: crate::util::stamp(jiff::Timestamp::now()),
            hostname: crate::util::hostname(),
            username: crate::util::username(),
            kdf,
            nonce: hex::encode(nonce),
            wrapped: hex::encode(sealed),
        })
    }

    /// Passphrase derivations (Argon2id) this process has run to open slots:
    /// the daemon's `custos_key_derivations_total`, which stays at one per
    /// tenant and secret while `repository::key_cache` serves the rest.
    pub fn derivations() -> u64 {
        DERIVATIONS.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Tries to unwrap the master key. `Ok(None)` when the secret does not open
    /// this slot (or the slot is of another kind).
    ///
    /// # Errors
    /// When the slot is malformed.
    pub fn open(&self, secret: &Secret) -> Result<Option<MasterKey>> {
        match (&self.kdf, secret) {
            (Kdf::Argon2id { .. }, Secret::Passphrase(_)) | (Kdf::KeyFile, Secret::KeyFile(_)) => {}
            _ => return Ok(None),
        }
        let bad = |r: &str| Error::integrity(format!("key slot keys/{}", self.id), r.to_string());
        // A slot names its own Argon2 cost; one altered to ask for terabytes
        // or years must not take the machine down before it is found wrong.
        if let Some(why) = self.excessive_cost() {
            return Err(bad(&why));
        }
        if matches!(self.kdf, Kdf::Argon2id { .. }) {
            DERIVATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let kek = derive_kek(&self.kdf, secret)?;
        let nonce: [u8; 12] = hex::decode(&self.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| bad("bad nonce"))?;
        let wrapped = hex::decode(&self.wrapped).map_err(|_| bad("bad hex in wrapped key"))?;
        match Cipher::new(&kek).open_with_nonce(nonce, self.id.as_bytes(), &wrapped) {
            Ok(plain) => {
                let plain = Zeroizing::new(plain);
                let key: [u8; 32] = plain[..]
                    .try_into()
                    .map_err(|_| bad("wrapped key has the wrong length"))?;
                Ok(Some(MasterKey::from_bytes(key)))
            }
            Err(_) => Ok(None),
        }
    }

    /// Why the slot's Argon2 cost is beyond what custos ever writes (the slot
    /// was altered), or `None` when it is within bounds.
    pub fn excessive_cost(&self) -> Option<String> {
        match &self.kdf {
            Kdf::Argon2id { m_kib, t, p, .. } if *m_kib > MAX_M_KIB || *t > MAX_T || *p > MAX_P => {
                Some(format!(
                    "its Argon2 parameters (m={m_kib} KiB, t={t}, p={p}) are beyond what custos ever writes (m ≤ {MAX_M_KIB} KiB, t ≤ {MAX_T}, p ≤ {MAX_P}): the slot was altered"
                ))
            }
            _ => None,
        }
    }

    /// A fingerprint of the slot (BLAKE3 of its JSON), for certificates and `key list`.
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        blake3::hash(&json).to_hex().to_string()
    }

    /// A short description of the slot kind.
    pub fn kind(&self) -> &'static str {
        match self.kdf {
            Kdf::Argon2id { .. } => "passphrase",
            Kdf::KeyFile => "key-file",
        }
    }
}

/// Argon2's working memory: fresh anonymous pages, which the kernel hands
/// out zeroed, rather than the crate's own allocation, which zeroes all of
/// it again before the first pass (at 64 MiB a fifth of the derivation,
/// on the critical path of every command that opens a repository). Wiped
/// before it goes back to the system, which the crate does not do: what
/// the passes leave behind is derived from the passphrase.
struct KdfMemory {
    blocks: std::ptr::NonNull<argon2::Block>,
    count: usize,
}

impl KdfMemory {
    fn new(count: usize) -> Result<KdfMemory> {
        let bytes = count
            .checked_mul(argon2::Block::SIZE)
            .filter(|&b| b > 0)
            .ok_or_else(|| Error::integrity("key slot", "bad Argon2 memory size"))?;
        // SAFETY: a new private anonymous mapping; no memory of this
        // process is touched.
        let at = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                bytes,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }
        .map_err(|e| {
            Error::io(
                "cannot allocate the key derivation's memory",
                std::io::Error::from(e),
            )
        })?;
        let blocks = std::ptr::NonNull::new(at.cast::<argon2::Block>())
            .ok_or_else(|| Error::Internal("the kernel mapped memory at address 0".into()))?;
        Ok(KdfMemory { blocks, count })
    }

    fn blocks(&mut self) -> &mut [argon2::Block] {
        // SAFETY: the mapping holds `count` blocks, is page-aligned (a
        // block needs 64 bytes), zero-filled (any bytes are a valid block),
        // owned by `self` and borrowed mutably here only.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.count) }
    }
}

impl KdfMemory {
    /// Overwrites every word with zeros (volatile writes: not elided).
    fn wipe(&mut self) {
        // SAFETY: the mapping's words (a block is 128 of them), owned by
        // `self`, borrowed mutably here only.
        let words = unsafe {
            std::slice::from_raw_parts_mut(
                self.blocks.as_ptr().cast::<u64>(),
                self.count * (argon2::Block::SIZE / 8),
            )
        };
        zeroize::Zeroize::zeroize(words);
    }
}

impl Drop for KdfMemory {
    fn drop(&mut self) {
        self.wipe();
        // SAFETY: the mapping made by `new`, unmapped once, never used after.
        let _ = unsafe {
            rustix::mm::munmap(
                self.blocks.as_ptr().cast(),
                self.count * argon2::Block::SIZE,
            )
        };
    }
}

fn derive_kek(kdf: &Kdf, secret: &Secret) -> Result<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    match (kdf, secret) {
        (Kdf::Argon2id { m_kib, t, p, salt }, Secret::Passphrase(pw)) => {
            let salt = hex::decode(salt).map_err(|_| Error::integrity("key slot", "bad salt"))?;
            let params = argon2::Params::new(*m_kib, *t, *p, Some(32))
                .map_err(|e| Error::integrity("key slot", format!("bad Argon2 parameters: {e}")))?;
            let mut memory = KdfMemory::new(params.block_count())?;
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into_with_memory(pw.as_bytes(), &salt, &mut out[..], memory.blocks())
                .map_err(|e| Error::integrity("key slot", format!("Argon2 failed: {e}")))?;
        }
        (Kdf::KeyFile, Secret::KeyFile(bytes)) => {
            if bytes.len() < 32 {
                return Err(Error::Usage(
                    "key file holds fewer than 32 bytes: generate one with `head -c 64 /dev/urandom`".into(),
                ));
            }
            *out = blake3::derive_key(CTX_KEYFILE, bytes);
        }
        _ => {
            return Err(Error::Usage(
                "key slot kind does not match the secret".into(),
            ))
        }
    }
    Ok(out)
}

impl Cipher {
    fn seal_with_nonce(&self, nonce: [u8; 12], aad: &[u8], plain: &[u8]) -> Vec<u8> {
        use aes_gcm::aead::AeadInOut;
        let mut buf = plain.to_vec();
        if self
            .0
            .encrypt_in_place(&aes_gcm::Nonce::from(nonce), aad, &mut buf)
            .is_err()
        {
            unreachable!("AES-GCM encryption of 32 bytes into a Vec cannot fail");
        }
        buf
    }

    fn open_with_nonce(
        &self,
        nonce: [u8; 12],
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, super::AuthError> {
        use aes_gcm::aead::AeadInOut;
        let mut buf = sealed.to_vec();
        self.0
            .decrypt_in_place(&aes_gcm::Nonce::from(nonce), aad, &mut buf)
            .map_err(|_| super::AuthError)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_source_applies_the_same_checks() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Which flag wins: key file, then password file, then the variable.
        let kf = d.join("key");
        let pf = d.join("pass");
        assert_eq!(
            KeySource::given(Some(&kf), Some(&pf), "CUSTOS_KEYSOURCE_UNIT_UNSET"),
            Some(KeySource::KeyFile(kf.clone()))
        );
        assert_eq!(
            KeySource::given(None, Some(&pf), "CUSTOS_KEYSOURCE_UNIT_UNSET"),
            Some(KeySource::PasswordFile(pf.clone()))
        );
        assert_eq!(
            KeySource::given(None, None, "CUSTOS_KEYSOURCE_UNIT_UNSET"),
            None
        );
        std::env::set_var("CUSTOS_KEYSOURCE_UNIT_EMPTY", "");
        assert_eq!(
            KeySource::given(None, None, "CUSTOS_KEYSOURCE_UNIT_EMPTY"),
            None
        );
        std::env::set_var("CUSTOS_KEYSOURCE_UNIT_SET", "pw");
        let env = KeySource::given(None, None, "CUSTOS_KEYSOURCE_UNIT_SET").unwrap();
        assert!(matches!(env.load().unwrap(), Secret::Passphrase(p) if p.as_str() == "pw"));
        // An empty passphrase file is refused, also for a new slot.
        std::fs::write(&pf, "\n").unwrap();
        std::fs::set_permissions(&pf, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = KeySource::PasswordFile(pf.clone())
            .load_or_create()
            .unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        // A missing key file is created private, once.
        let (secret, created) = KeySource::KeyFile(kf.clone()).load_or_create().unwrap();
        assert!(created && matches!(secret, Secret::KeyFile(ref b) if b.len() == 64));
        assert_eq!(
            std::fs::metadata(&kf).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (_, created) = KeySource::KeyFile(kf.clone()).load_or_create().unwrap();
        assert!(!created);
        // A short key file is refused.
        let short = d.join("short");
        std::fs::write(&short, [1u8; 8]).unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(KeySource::KeyFile(short).load().is_err());
    }

    fn fast() -> KdfParams {
        KdfParams {
            m_kib: 256,
            t: 1,
            p: 1,
        }
    }

    #[test]
    fn slots_cheaper_than_the_minimum_are_refused() {
        assert!(fast().check_minimum(false).is_err());
        assert!(KdfParams::default().check_minimum(false).is_ok());
        let more = KdfParams {
            m_kib: 128 * 1024,
            t: 4,
            p: 2,
        };
        assert!(more.check_minimum(false).is_ok());
        assert!(fast().check_minimum(true).is_ok());
    }

    #[test]
    fn the_derivation_in_fresh_pages_is_argon2id_as_the_crate_computes_it() {
        // The reference is the crate's own call, which allocates (and
        // zeroes) its memory itself; two sizes.
        for (m_kib, t) in [(64u32, 3u32), (4096, 1)] {
            let salt = "00112233445566778899aabbccddeeff".to_string();
            let kdf = Kdf::Argon2id {
                m_kib,
                t,
                p: 1,
                salt: salt.clone(),
            };
            let pw = Secret::Passphrase(Zeroizing::new("correct horse".into()));
            let ours = derive_kek(&kdf, &pw).unwrap();
            let params = argon2::Params::new(m_kib, t, 1, Some(32)).unwrap();
            let mut reference = [0u8; 32];
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(
                    b"correct horse",
                    &hex::decode(&salt).unwrap(),
                    &mut reference,
                )
                .unwrap();
            assert_eq!(*ours, reference, "m={m_kib} t={t}");
        }
    }

    #[test]
    fn the_derivation_memory_is_wiped() {
        let mut m = KdfMemory::new(256).unwrap();
        let kdf = argon2::Params::new(256, 1, 1, Some(32)).unwrap();
        let mut out = [0u8; 32];
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, kdf)
            .hash_password_into_with_memory(b"pw", b"saltsaltsaltsalt", &mut out, m.blocks())
            .unwrap();
        let nonzero = |m: &mut KdfMemory| {
            m.blocks()
                .iter()
                .filter(|b| b.as_ref().iter().any(|w| *w != 0))
                .count()
        };
        assert_eq!(nonzero(&mut m), 256, "every block was filled");
        m.wipe();
        assert_eq!(nonzero(&mut m), 0);
    }

    #[test]
    fn passphrase_slot() {
        let mk = MasterKey::generate();
        let pw = Secret::Passphrase(Zeroizing::new("correct horse".into()));
        let slot = KeySlot::create(&mk, &pw, fast()).unwrap();
        let json = serde_json::to_string(&slot).unwrap();
        let slot: KeySlot = serde_json::from_str(&json).unwrap();
        let got = slot.open(&pw).unwrap().unwrap();
        assert_eq!(got.expose(), mk.expose());
        let wrong = Secret::Passphrase(Zeroizing::new("wrong".into()));
        assert!(slot.open(&wrong).unwrap().is_none());
        let kf = Secret::KeyFile(Zeroizing::new(vec![7u8; 64]));
        assert!(slot.open(&kf).unwrap().is_none());
    }

    #[test]
    fn altered_argon2_cost_is_refused_before_it_runs() {
        let mk = MasterKey::generate();
        let pw = Secret::Passphrase(Zeroizing::new("correct horse".into()));
        let mut slot = KeySlot::create(&mk, &pw, fast()).unwrap();
        if let Kdf::Argon2id { m_kib, .. } = &mut slot.kdf {
            *m_kib = u32::MAX;
        }
        let e = slot.open(&pw).unwrap_err().to_string();
        assert!(e.contains("altered") && e.contains("keys/"), "{e}");
    }

    #[test]
    fn key_file_slot() {
        let mk = MasterKey::generate();
        let kf = Secret::KeyFile(Zeroizing::new(vec![9u8; 64]));
        let slot = KeySlot::create(&mk, &kf, fast()).unwrap();
        assert_eq!(slot.open(&kf).unwrap().unwrap().expose(), mk.expose());
        let other = Secret::KeyFile(Zeroizing::new(vec![8u8; 64]));
        assert!(slot.open(&other).unwrap().is_none());
        let short = Secret::KeyFile(Zeroizing::new(vec![1u8; 8]));
        assert!(KeySlot::create(&mk, &short, fast()).is_err());
    }

    #[test]
    fn tampered_slot_does_not_open() {
        let mk = MasterKey::generate();
        let pw = Secret::Passphrase(Zeroizing::new("pw".into()));
        let mut slot = KeySlot::create(&mk, &pw, fast()).unwrap();
        let mut w = hex::decode(&slot.wrapped).unwrap();
        w[0] ^= 0x80;
        slot.wrapped = hex::encode(w);
        assert!(slot.open(&pw).unwrap().is_none());
    }
}
