//! Deletion certificates: canonical JSON signed with the operator's Ed25519
//! key, verifiable offline by anyone holding the public key.
//!
//! Canonical form: the certificate as JSON with object keys sorted at every
//! level, no whitespace, UTF-8. The signature covers exactly those bytes, so
//! any changed byte of the certificate (a date, a count, a Merkle root) makes
//! verification fail.
//!
//! Per target, the certificate holds a BLAKE3 Merkle root over the deleted
//! objects' names and sizes: leaves are `BLAKE3("custos-leaf" ‖ name ‖ 0x00 ‖
//! size as 8 little-endian bytes)` in name order, inner nodes `BLAKE3(
//! "custos-node" ‖ left ‖ right)`, an odd node is carried up unchanged, and
//! the root of no object is `BLAKE3("custos-empty")`. Whoever kept the object
//! listing can recompute it.

use std::collections::BTreeMap;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What was erased on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetReport {
    /// Target name.
    pub name: String,
    /// Repository URL (target URL and tenant prefix).
    pub url: String,
    /// Objects (current ones and older versions) deleted on the target.
    pub objects_deleted: u64,
    /// Bytes those objects held.
    pub bytes_deleted: u64,
    /// Merkle root over the deleted objects' names and sizes.
    pub merkle_root: String,
    /// Objects found under the prefix by the verification listing (must be 0).
    pub remaining_after: u64,
    /// What the store does with deleted objects, as read before anything
    /// was deleted, and the kept versions deleted (format version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreReport>,
}

/// A target's store settings and kept versions (format version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreReport {
    /// `s3`, `azure`, `local`, `memory`.
    pub store: String,
    /// Object versioning as read (`enabled`, `never enabled`, ...).
    pub versioning: String,
    /// Soft delete as read.
    pub soft_delete: String,
    /// Object lock, immutability policy or legal hold as read.
    pub object_lock: String,
    /// Kept versions, delete markers, snapshots and soft-deleted blobs
    /// deleted one by one.
    pub versions_deleted: u64,
    /// Their bytes.
    pub version_bytes_deleted: u64,
    /// Versions a listing of versions found under the prefix afterwards
    /// (must be 0), or `None` when the store keeps none to list.
    pub versions_remaining_after: Option<u64>,
}

/// What became of the tenant's key material on the erasing host (format
/// version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalKeyReport {
    /// `password_file`, `key_file`, `environment`, `unknown`.
    pub source: String,
    /// The file or variable.
    pub location: String,
    /// True when custos overwrote and removed it (or found it gone).
    pub erased: bool,
    /// What was done, or why not.
    pub detail: String,
}

/// The tenant's technical data on the erasing host (format version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostReport {
    /// Catalog records removed (jobs, restores, snapshot cache, counters).
    pub catalog_records_purged: u64,
    /// The catalog database was rewritten and its old files overwritten
    /// and removed.
    pub catalog_rewritten: bool,
    /// Index cache directories removed.
    pub index_caches_removed: u64,
    /// Restore outputs and drill scratch directories removed.
    pub restore_and_drill_dirs_removed: u64,
}

/// The certificate's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// Format version: 1, or 2 with `store`, `local_key_material` and `host`.
    pub version: u32,
    /// Tenant erased.
    pub tenant: String,
    /// Contract reference.
    pub contract: Option<String>,
    /// When notice was given (RFC 3339).
    pub notice_given: String,
    /// When erasure started.
    pub erasure_started: String,
    /// When it completed.
    pub erasure_completed: String,
    /// Per target.
    pub targets: Vec<TargetReport>,
    /// Fingerprints (BLAKE3 of the slot object) of the key slots destroyed.
    pub destroyed_key_slots: Vec<String>,
    /// The verification listing's result, in words.
    pub verification: String,
    /// Head hash of the audit log when erasure completed.
    pub audit_head: String,
    /// Who issued it.
    pub issuer: String,
    /// The tenant's key material on the erasing host (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_key_material: Option<Vec<LocalKeyReport>>,
    /// The tenant's technical data on the erasing host (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostReport>,
    /// Erasure started before the notice period ended, and why (absent:
    /// it started when the period was over).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_start: Option<EarlyStart>,
}

/// An erasure started before the end of the notice period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlyStart {
    /// When the notice period would have ended (RFC 3339).
    pub notice_period_ended: String,
    /// The operator's reason, as given to `erase execute --now --reason`.
    pub reason: String,
}

/// A certificate with its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCertificate {
    /// The content.
    pub certificate: Certificate,
    /// Ed25519 public key of the signer (hex).
    pub public_key: String,
    /// Ed25519 signature over the canonical content (hex).
    pub signature: String,
}

/// Why a certificate does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The file is not a certificate.
    #[error("not a custos deletion certificate: {0}")]
    Malformed(String),
    /// It was signed by another key than the one trusted.
    #[error("signed by key {found}, not by the trusted key {trusted}")]
    OtherSigner {
        /// The key in the certificate.
        found: String,
        /// The key given.
        trusted: String,
    },
    /// The content changed after signing (or the signature is forged).
    #[error("the signature does not match the content: the certificate was altered")]
    BadSignature,
}

/// The canonical bytes of a JSON value: keys sorted at every level, compact.
pub(crate) fn canonical(value: &serde_json::Value) -> String {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let sorted: BTreeMap<&String, serde_json::Value> =
                    m.iter().map(|(k, v)| (k, sort(v))).collect();
                serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    // serde_json writes object entries in map order; the map above was built
    // sorted, and without `preserve_order` it is a BTreeMap anyway.
    serde_json::to_string(&sort(value)).unwrap_or_default()
}

fn content_bytes(c: &Certificate) -> Result<String> {
    let v = serde_json::to_value(c)
        .map_err(|e| Error::Internal(format!("cannot encode the certificate: {e}")))?;
    Ok(canonical(&v))
}

/// The Merkle root over (name, size) pairs, in any order.
pub fn merkle_root(objects: &[(String, u64)]) -> String {
    let mut sorted: Vec<&(String, u64)> = objects.iter().collect();
    sorted.sort();
    let mut level: Vec<blake3::Hash> = sorted
        .iter()
        .map(|(name, size)| {
            let mut h = blake3::Hasher::new();
            h.update(b"custos-leaf");
            h.update(name.as_bytes());
            h.update(&[0]);
            h.update(&size.to_le_bytes());
            h.finalize()
        })
        .collect();
    if level.is_empty() {
        return blake3::hash(b"custos-empty").to_hex().to_string();
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => {
                    let mut h = blake3::Hasher::new();
                    h.update(b"custos-node");
                    h.update(l.as_bytes());
                    h.update(r.as_bytes());
                    h.finalize()
                }
                [one] => *one,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
    }
    level[0].to_hex().to_string()
}

/// Signs a certificate.
///
/// # Errors
/// When the certificate cannot be encoded.
pub fn sign(c: Certificate, key: &SigningKey) -> Result<SignedCertificate> {
    let bytes = content_bytes(&c)?;
    let sig: Signature = key.sign(bytes.as_bytes());
    Ok(SignedCertificate {
        certificate: c,
        public_key: hex::encode(key.verifying_key().to_bytes()),
        signature: hex::encode(sig.to_bytes()),
    })
}

/// Verifies a signed certificate (its JSON text) against the trusted public key.
///
/// # Errors
/// [`CertificateError`] saying what is wrong.
pub fn verify(
    text: &str,
    trusted: &VerifyingKey,
) -> std::result::Result<SignedCertificate, CertificateError> {
    let signed: SignedCertificate =
        serde_json::from_str(text).map_err(|e| CertificateError::Malformed(e.to_string()))?;
    let trusted_hex = hex::encode(trusted.to_bytes());
    if signed.public_key != trusted_hex {
        return Err(CertificateError::OtherSigner {
            found: signed.public_key.clone(),
            trusted: trusted_hex,
        });
    }
    let sig_bytes: [u8; 64] = hex::decode(&signed.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CertificateError::BadSignature)?;
    let bytes = content_bytes(&signed.certificate)
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    // The file must hold the content exactly as signed: re-encoding what was
    // parsed would forgive changes serde ignores (duplicate keys, extra fields).
    let raw: serde_json::Value =
        serde_json::from_str(text).map_err(|e| CertificateError::Malformed(e.to_string()))?;
    if canonical(&raw["certificate"]) != bytes {
        return Err(CertificateError::BadSignature);
    }
    trusted
        .verify_strict(bytes.as_bytes(), &Signature::from_bytes(&sig_bytes))
        .map_err(|_| CertificateError::BadSignature)?;
    Ok(signed)
}

/// Creates a signing key file (hex, mode 600) and `<file>.pub` next to it.
///
/// # Errors
/// [`Error::Io`]; an existing file is never overwritten.
pub fn keygen(path: &Path) -> Result<VerifyingKey> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let secret: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&secret);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(crate::error::at("cannot create the signing key", path))?;
    f.write_all(hex::encode(secret).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(crate::error::at("cannot write the signing key", path))?;
    let public = key.verifying_key();
    let pub_path = public_key_path(path);
    std::fs::write(&pub_path, hex::encode(public.to_bytes()) + "\n")
        .map_err(crate::error::at("cannot write the public key", &pub_path))?;
    Ok(public)
}

/// Where `keygen` writes the public key of the signing key at `path`: the
/// same name with the extension `.pub` (`certificates.key` →
/// `certificates.pub`).
pub fn public_key_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("pub")
}

fn read_hex32(path: &Path, what: &str) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read the {what} {}", path.display()), e))?;
    parse_hex32(&text, path, what)
}

fn parse_hex32(text: &str, path: &Path, what: &str) -> Result<[u8; 32]> {
    hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            Error::Usage(format!(
                "{}: not a {what} (64 hex characters)",
                path.display()
            ))
        })
}

/// Reads a signing key written by [`keygen`].
///
/// # Errors
/// [`Error::Io`], [`Error::Usage`] for a malformed file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    // A secret: refused when group or others may read it.
    let bytes = crate::secrets::read_file(path, "certificate signing key")?;
    let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
    let mut raw = parse_hex32(&text, path, "signing key")?;
    let key = SigningKey::from_bytes(&raw);
    zeroize::Zeroize::zeroize(&mut raw);
    Ok(key)
}

/// Reads a public key (`<key>.pub`).
///
/// # Errors
/// [`Error::Io`], [`Error::Usage`] for a malformed file.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    VerifyingKey::from_bytes(&read_hex32(path, "public key")?).map_err(|e| {
        Error::Usage(format!(
            "{}: not an Ed25519 public key: {e}",
            path.display()
        ))
    })
}

/// A rendering for people (Markdown).
pub(crate) fn render_markdown(s: &SignedCertificate) -> String {
    let c = &s.certificate;
    let mut out = format!(
        "# Certificate of erasure\n\nThe data custos held for tenant **{}**{} was erased as stated below.\n\n| | |\n|---|---|\n| notice given | {} |\n| erasure started | {} |\n| erasure completed | {} |\n| issuer | {} |\n| audit log head | `{}` |\n\n## Targets\n\n| target | repository | objects deleted | bytes deleted | Merkle root | left after |\n|---|---|---:|---:|---|---:|\n",
        c.tenant,
        c.contract.as_deref().map(|r| format!(" (contract {r})")).unwrap_or_default(),
        c.notice_given,
        c.erasure_started,
        c.erasure_completed,
        c.issuer,
        c.audit_head
    );
    if let Some(e) = &c.early_start {
        out.insert_str(
            out.find("\n## Targets").unwrap_or(out.len()),
            &format!(
                "\n**Erasure started before the end of the notice period** ({}), on the operator's decision: {}\n",
                e.notice_period_ended, e.reason
            ),
        );
    }
    for t in &c.targets {
        out.push_str(&format!(
            "| {} | {} | {} | {} | `{}` | {} |\n",
            t.name, t.url, t.objects_deleted, t.bytes_deleted, t.merkle_root, t.remaining_after
        ));
    }
    if c.targets.iter().any(|t| t.store.is_some()) {
        out.push_str("\n## What each store keeps of deleted objects\n\n| target | store | versioning | soft delete | object lock | versions deleted | versions left after |\n|---|---|---|---|---|---:|---:|\n");
        for t in &c.targets {
            if let Some(st) = &t.store {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} ({} bytes) | {} |\n",
                    t.name,
                    st.store,
                    st.versioning,
                    st.soft_delete,
                    st.object_lock,
                    st.versions_deleted,
                    st.version_bytes_deleted,
                    st.versions_remaining_after
                        .map_or("no versions kept by this store".to_string(), |n| n
                            .to_string())
                ));
            }
        }
    }
    if let Some(keys) = &c.local_key_material {
        out.push_str("\n## Key material on the erasing host\n\n| source | location | erased | detail |\n|---|---|---|---|\n");
        for k in keys {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                k.source,
                k.location,
                if k.erased { "yes" } else { "**no**" },
                k.detail
            ));
        }
    }
    if let Some(h) = &c.host {
        out.push_str(&format!(
            "\n## Technical data on the erasing host\n\n{} catalog records removed{}; {} index caches and {} restore or drill directories removed.\n",
            h.catalog_records_purged,
            if h.catalog_rewritten { ", the catalog rewritten and its old files overwritten and removed" } else { "" },
            h.index_caches_removed,
            h.restore_and_drill_dirs_removed
        ));
    }
    out.push_str(&format!(
        "\nKey slots destroyed (crypto-shredding): {}\n\nVerification: {}\n\nSigned with Ed25519 key `{}`; signature `{}`. Check it with\n`custos certificate verify <file> --public-key <key.pub>`.\n",
        if c.destroyed_key_slots.is_empty() { "none".to_string() } else { c.destroyed_key_slots.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ") },
        c.verification,
        s.public_key,
        s.signature
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Certificate {
        Certificate {
            version: 1,
            tenant: "acme".into(),
            contract: Some("SV08-2026-0042".into()),
            notice_given: "2026-10-01T09:00:00Z".into(),
            erasure_started: "2026-10-22T09:00:00Z".into(),
            erasure_completed: "2026-10-22T09:12:30Z".into(),
            targets: vec![TargetReport {
                name: "par2".into(),
                url: "s3://backups-par2/custos/acme".into(),
                objects_deleted: 3,
                bytes_deleted: 4096,
                merkle_root: merkle_root(&[
                    ("config".into(), 300),
                    ("data/ab/ab12".into(), 3700),
                    ("keys/k1".into(), 96),
                ]),
                remaining_after: 0,
                store: None,
            }],
            destroyed_key_slots: vec!["k1-fingerprint".into()],
            verification: "listing after erasure: 0 objects under every prefix".into(),
            audit_head: "ab".repeat(32),
            issuer: "operator@backup1".into(),
            local_key_material: None,
            host: None,
            early_start: None,
        }
    }

    #[test]
    fn signed_certificates_verify_and_any_change_breaks_them() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let signed = sign(sample(), &key).unwrap();
        let text = serde_json::to_string_pretty(&signed).unwrap();
        assert_eq!(verify(&text, &key.verifying_key()).unwrap(), signed);

        // Any changed byte of the content.
        for (from, to) in [
            ("\"objects_deleted\": 3", "\"objects_deleted\": 2"),
            ("2026-10-22T09:12:30Z", "2026-10-21T09:12:30Z"),
            ("acme", "acmf"),
        ] {
            let tampered = text.replacen(from, to, 1);
            assert_ne!(tampered, text);
            assert!(
                verify(&tampered, &key.verifying_key()).is_err(),
                "{from} → {to}"
            );
        }
        // An extra field is a change too.
        let extra = text.replacen("\"tenant\"", "\"note\": \"x\", \"tenant\"", 1);
        assert_eq!(
            verify(&extra, &key.verifying_key()),
            Err(CertificateError::BadSignature)
        );
        // Another key.
        let other = SigningKey::from_bytes(&[8u8; 32]);
        assert!(matches!(
            verify(&text, &other.verifying_key()),
            Err(CertificateError::OtherSigner { .. })
        ));
        assert!(render_markdown(&signed)
            .contains("| par2 | s3://backups-par2/custos/acme | 3 | 4096 |"));
    }

    #[test]
    fn merkle_roots_ignore_order_and_see_every_name_and_size() {
        let a = vec![
            ("x".to_string(), 1),
            ("y".to_string(), 2),
            ("z".to_string(), 3),
        ];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(merkle_root(&a), merkle_root(&b));
        assert_ne!(merkle_root(&a), merkle_root(&a[..2]));
        let mut c = a.clone();
        c[1].1 = 20;
        assert_ne!(merkle_root(&a), merkle_root(&c));
        assert_eq!(
            merkle_root(&[]),
            blake3::hash(b"custos-empty").to_hex().to_string()
        );
    }

    #[test]
    fn keys_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("operator.key");
        let public = keygen(&path).unwrap();
        assert!(keygen(&path).is_err(), "never overwritten");
        assert_eq!(read_signing_key(&path).unwrap().verifying_key(), public);
        assert_eq!(
            read_public_key(&path.with_extension("pub")).unwrap(),
            public
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
