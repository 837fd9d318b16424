//! Keys and authenticated encryption.
//!
//! * A random 256-bit [`MasterKey`] per repository, never stored unwrapped.
//! * Sub-keys come from BLAKE3 `derive_key` with distinct context strings:
//!   the blob-ID key, the config MAC key, the chunker seed, one key per metadata
//!   object (index, snapshot: derived from the object's random ID), and one data
//!   key per pack (derived from the pack's random ID).
//! * Within a pack the AES-256-GCM nonce is the blob's byte offset in the pack
//!   (the header uses `u64::MAX`): nonces never repeat under one key, and no key
//!   encrypts more than one pack's worth of data, far below the GCM usage limits.
//! * Metadata objects are encrypted once under their own derived key with nonce 0.
//!
//! Key slots (wrapping the master key under a passphrase or key file) are in
//! [`keyslot`].
//!
//! Layer 1 of `docs/architecture.md`: it uses `id`, `secrets`, `switches`, `util`, and nothing of a layer above.

pub mod keyslot;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::id::{BlobId, PackId};

/// Size in bytes of the AES-GCM authentication tag appended to every ciphertext.
pub(crate) const TAG_LEN: usize = 16;

const CTX_BLOB_ID: &str = "custos 2026-11 blob id key v1";
const CTX_CONFIG_MAC: &str = "custos 2026-11 config mac key v1";
const CTX_CHUNKER: &str = "custos 2026-11 chunker seed v1";
const CTX_PACK: &str = "custos 2026-11 pack data key v1";
const CTX_OBJECT: &str = "custos 2026-11 metadata object key v1";

/// Error from opening a sealed message: it was altered, truncated, or the key is wrong.
#[derive(Debug, thiserror::Error)]
#[error("authentication failed (wrong key, or the data was altered)")]
pub struct AuthError;

/// The repository's master key. Zeroed on drop.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Self {
        Self(Zeroizing::new(rand::random()))
    }

    /// Wraps raw key bytes (from an unwrapped key slot).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(Zeroizing::new(b))
    }

    /// The raw bytes (for wrapping into a key slot only).
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn derive(&self, context: &str, extra: &[&[u8]]) -> Zeroizing<[u8; 32]> {
        let mut h = blake3::Hasher::new_derive_key(context);
        h.update(&self.0[..]);
        for e in extra {
            h.update(e);
        }
        Zeroizing::new(*h.finalize().as_bytes())
    }

    /// Derives all the sub-keys the repository needs.
    pub fn keys(&self) -> Keys {
        Keys {
            blob_id: self.derive(CTX_BLOB_ID, &[]),
            config_mac: self.derive(CTX_CONFIG_MAC, &[]),
            chunker_seed: {
                let k = self.derive(CTX_CHUNKER, &[]);
                let mut s = [0u8; 8];
                s.copy_from_slice(&k[..8]);
                u64::from_le_bytes(s)
            },
            master: self.clone(),
        }
    }
}

/// Which kind of metadata object a key is for; part of the key derivation so
/// that an object cannot be passed off as one of another kind.
#[derive(Clone, Copy, Debug)]
pub enum ObjectKind {
    /// An object under `index/`.
    Index = 1,
    /// An object under `snapshots/`.
    Snapshot = 2,
    /// An object under `locks/` (not encrypted today, reserved).
    Lock = 3,
    /// An object under `forgotten/`: the record that custos forgot a snapshot.
    Tombstone = 4,
}

/// The sub-keys of an opened repository.
#[derive(Clone)]
pub struct Keys {
    blob_id: Zeroizing<[u8; 32]>,
    config_mac: Zeroizing<[u8; 32]>,
    chunker_seed: u64,
    master: MasterKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// The content ID of a blob: keyed BLAKE3 of its plaintext, so IDs reveal nothing
    /// about content to someone without the key.
    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        // One thread per chunk: the backup's workers hash chunks side by side.
        let mut h = blake3::Hasher::new_keyed(&self.blob_id);
        h.update(data);
        BlobId(*h.finalize().as_bytes())
    }

    /// MAC over the plaintext repository config.
    pub(crate) fn config_mac(&self, data: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.config_mac, data).as_bytes()
    }

    /// Seed for the chunker's gear table: chunk boundaries depend on the key, so
    /// chunk sizes do not fingerprint known files.
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// The data key of one pack.
    pub fn pack_cipher(&self, pack: &PackId) -> Cipher {
        Cipher::new(&self.master.derive(CTX_PACK, &[pack.as_bytes()]))
    }

    /// The key of one metadata object.
    pub fn object_cipher(&self, kind: ObjectKind, id: &[u8; 32]) -> Cipher {
        Cipher::new(&self.master.derive(CTX_OBJECT, &[&[kind as u8], id]))
    }
}

/// An AES-256-GCM cipher under one derived key, with 64-bit positional nonces.
pub struct Cipher(Aes256Gcm);

impl Cipher {
    /// A cipher for a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Cipher(Aes256Gcm::new(&(*key).into()))
    }

    fn nonce(position: u64) -> Nonce<aes_gcm::aead::consts::U12> {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&position.to_le_bytes());
        Nonce::from(n)
    }

    /// Encrypts `buf` in place and appends the tag. `position` must be unique for
    /// this key.
    pub(crate) fn seal_in_place(&self, position: u64, aad: &[u8], buf: &mut Vec<u8>) {
        // Encryption only fails if the buffer cannot grow, which Vec always can,
        // or if the message exceeds 64 GiB, which blobs never do (max 16 MiB).
        if self
            .0
            .encrypt_in_place(&Self::nonce(position), aad, buf)
            .is_err()
        {
            unreachable!("AES-GCM encryption of a bounded message into a Vec cannot fail");
        }
    }

    /// Encrypts `buf[start..]` in place and appends the tag: no copy of the payload.
    pub(crate) fn seal_tail(&self, position: u64, aad: &[u8], buf: &mut Vec<u8>, start: usize) {
        match self
            .0
            .encrypt_inout_detached(&Self::nonce(position), aad, (&mut buf[start..]).into())
        {
            Ok(tag) => buf.extend_from_slice(tag.as_slice()),
            Err(_) => unreachable!("AES-GCM encryption of a bounded message cannot fail"),
        }
    }

    /// Encrypts a copy of `plain`.
    pub fn seal(&self, position: u64, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(plain.len() + TAG_LEN);
        buf.extend_from_slice(plain);
        self.seal_in_place(position, aad, &mut buf);
        buf
    }

    /// Decrypts and authenticates `sealed` (ciphertext and tag) where it
    /// lies; returns the plaintext, the start of `sealed`. Nothing is
    /// copied or allocated.
    ///
    /// # Errors
    /// As [`Cipher::open`]; `sealed` then holds no plaintext that counts.
    pub(crate) fn open_in_place<'a>(
        &self,
        position: u64,
        aad: &[u8],
        sealed: &'a mut [u8],
    ) -> Result<&'a [u8], AuthError> {
        let n = sealed.len().checked_sub(TAG_LEN).ok_or(AuthError)?;
        let (text, tag) = sealed.split_at_mut(n);
        let tag = aes_gcm::Tag::try_from(&*tag).map_err(|_| AuthError)?;
        self.0
            .decrypt_inout_detached(&Self::nonce(position), aad, text.into(), &tag)
            .map_err(|_| AuthError)?;
        Ok(text)
    }

    /// Decrypts and authenticates `sealed` into `out` (replacing what it
    /// held), reusing its allocation.
    ///
    /// # Errors
    /// As [`Cipher::open`]; `out` is then empty.
    pub(crate) fn open_into(
        &self,
        position: u64,
        aad: &[u8],
        sealed: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), AuthError> {
        out.clear();
        out.extend_from_slice(sealed);
        self.0
            .decrypt_in_place(&Self::nonce(position), aad, out)
            .map_err(|_| {
                out.clear();
                AuthError
            })
    }

    /// Decrypts and authenticates `sealed`.
    ///
    /// # Errors
    /// [`AuthError`] if the ciphertext, tag, AAD or key do not match.
    pub fn open(&self, position: u64, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, AuthError> {
        let mut buf = sealed.to_vec();
        self.0
            .decrypt_in_place(&Self::nonce(position), aad, &mut buf)
            .map_err(|_| AuthError)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let keys = MasterKey::generate().keys();
        let pack = PackId::random();
        let c = keys.pack_cipher(&pack);
        let sealed = c.seal(42, b"", b"hello world");
        assert_eq!(c.open(42, b"", &sealed).unwrap(), b"hello world");
        assert!(
            c.open(43, b"", &sealed).is_err(),
            "wrong position must fail"
        );
        let mut bad = sealed.clone();
        bad[3] ^= 1;
        assert!(c.open(42, b"", &bad).is_err(), "flipped byte must fail");
        let other = keys.pack_cipher(&PackId::random());
        assert!(
            other.open(42, b"", &sealed).is_err(),
            "other pack key must fail"
        );
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = MasterKey::generate().keys();
        let b = MasterKey::generate().keys();
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.chunker_seed(), b.chunker_seed());
    }
}
