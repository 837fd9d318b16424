//! The audit log: append-only, hash-chained records of every administrative
//! act (on-demand backups, restore requests and outcomes, retention, config
//! reloads, daemon start and stop).
//!
//! One JSON object per line in `<state_dir>/audit.log`:
//! `{seq, time, actor, action, tenant, details, prev, hash}` where `hash` is
//! the BLAKE3 of `prev` followed by the canonical JSON of the record without
//! `hash` (keys sorted, no spaces), and `prev` is the previous record's hash
//! (64 zeros for the first). An edited record no longer matches its hash; a
//! removed or reordered one breaks the chain or the sequence. `verify` says
//! which line.
//!
//! Lines are appended with `O_APPEND` and synced before the act is
//! acknowledged.
//!
//! Layer 9 of `docs/architecture.md`: it uses `error`, `secrets`, `backend`, and nothing of a layer above.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The hash before the first record.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Record {
    /// Position, from 1.
    pub seq: u64,
    /// When (RFC 3339).
    pub time: String,
    /// Who: a token's name, `operator:<user>` on the command line, or `daemon`.
    pub actor: String,
    /// What, e.g. `backup.requested`, `restore.done`, `config.reloaded`.
    pub action: String,
    /// The tenant concerned.
    pub tenant: Option<String>,
    /// Details (service, ticket, snapshot, outcome...).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Hash of the previous record.
    pub prev: String,
    /// BLAKE3 of `prev` + this record without `hash`.
    #[serde(default)]
    pub hash: String,
}

impl Record {
    fn compute_hash(&self) -> String {
        let body = serde_json::json!({
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "tenant": self.tenant,
            "details": self.details,
            "prev": self.prev,
        });
        // serde_json's Value map is sorted (BTreeMap): canonical enough here.
        let canonical = serde_json::to_string(&body).unwrap_or_default();
        let mut h = blake3::Hasher::new();
        h.update(self.prev.as_bytes());
        h.update(canonical.as_bytes());
        h.finalize().to_hex().to_string()
    }
}

/// Where verification failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit log {file}, line {line}: {problem}")]
pub struct Broken {
    /// The log.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

struct State {
    seq: u64,
    head: String,
}

/// An open audit log (cheap to clone; appends are serialized).
#[derive(Clone)]
pub struct AuditLog {
    path: PathBuf,
    state: Arc<Mutex<State>>,
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, verifying it first.
    ///
    /// # Errors
    /// [`Error::Integrity`] when the existing log does not verify (the daemon
    /// refuses to append to a tampered log), I/O errors.
    pub fn open(path: &Path) -> Result<AuditLog> {
        let (seq, head) = match verify(path) {
            Ok(v) => v,
            Err(VerifyError::Missing) => (0, GENESIS.to_string()),
            Err(VerifyError::Io(e)) => return Err(e),
            Err(VerifyError::Broken(b)) => {
                return Err(Error::integrity(
                    format!("audit log {}", path.display()),
                    b.to_string(),
                ))
            }
        };
        Ok(AuditLog {
            path: path.to_path_buf(),
            state: Arc::new(Mutex::new(State { seq, head })),
        })
    }

    /// Appends a record and syncs it.
    ///
    /// # Errors
    /// I/O errors (the act should then be refused or reported).
    pub fn append(
        &self,
        actor: &str,
        action: &str,
        tenant: Option<&str>,
        details: serde_json::Value,
    ) -> Result<Record> {
        // A file lock and an fsync: not on a runtime worker's time.
        crate::util::blocking(|| self.append_now(actor, action, tenant, details))
    }

    fn append_now(
        &self,
        actor: &str,
        action: &str,
        tenant: Option<&str>,
        details: serde_json::Value,
    ) -> Result<Record> {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(crate::error::at("cannot create", dir))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(crate::error::at("cannot open the audit log", &self.path))?;
        // Other processes (the daemon, operators' commands) append to the same
        // log: take the file lock, then continue the chain from its last line.
        // SAFETY: flock on a descriptor we own; released when `f` is closed.
        if unsafe { libc::flock(std::os::unix::io::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) } != 0 {
            return Err(Error::io(
                format!("cannot lock the audit log {}", self.path.display()),
                std::io::Error::last_os_error(),
            ));
        }
        if let Some(last) = last_record(&mut f)
            .map_err(crate::error::at("cannot read the audit log", &self.path))?
        {
            st.seq = last.seq;
            st.head = last.hash;
        }
        let mut rec = Record {
            seq: st.seq + 1,
            time: crate::util::stamp(jiff::Timestamp::now()),
            actor: actor.to_string(),
            action: action.to_string(),
            tenant: tenant.map(str::to_string),
            details,
            prev: st.head.clone(),
            hash: String::new(),
        };
        rec.hash = rec.compute_hash();
        let mut line = serde_json::to_vec(&rec)
            .map_err(|e| Error::Internal(format!("cannot encode an audit record: {e}")))?;
        line.push(b'\n');
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .map_err(crate::error::at("cannot write the audit log", &self.path))?;
        st.seq = rec.seq;
        st.head = rec.hash.clone();
        Ok(rec)
    }

    /// Appends, logging instead of failing (for acts already done).
    pub fn record(
        &self,
        actor: &str,
        action: &str,
        tenant: Option<&str>,
        details: serde_json::Value,
    ) {
        if let Err(e) = self.append(actor, action, tenant, details) {
            tracing::error!(error = %e, action, "cannot write the audit log");
        }
    }

    /// The records, oldest first, passing `filter`.
    ///
    /// # Errors
    /// I/O errors, or a line that does not decode.
    pub fn read(&self, filter: impl Fn(&Record) -> bool) -> Result<Vec<Record>> {
        // The whole file: not on a runtime worker's time.
        crate::util::blocking(|| read(&self.path, filter))
    }

    /// How many records the log holds now.
    pub fn records(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .seq
    }

    /// The hash of the newest record.
    pub fn head(&self) -> String {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .head
            .clone()
    }
}

/// A signed statement, mirrored as `audit/checkpoints/<seq>.json`, that the
/// log's record `seq` has hash `head`: whoever holds the operator's public
/// key can tell a cut or rewritten log from the real one, even where the
/// mirror's records were deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// Record number.
    pub seq: u64,
    /// That record's hash.
    pub head: String,
    /// When it was signed.
    pub time: String,
    /// Ed25519 public key of the signer (hex).
    pub public_key: String,
    /// Ed25519 signature over [`checkpoint_message`] (hex).
    pub signature: String,
}

/// The bytes a checkpoint signs.
pub(crate) fn checkpoint_message(seq: u64, head: &str) -> Vec<u8> {
    format!("custos audit checkpoint\0{seq}\0{head}").into_bytes()
}

impl Checkpoint {
    /// Signs record `seq` with hash `head`.
    pub(crate) fn sign(seq: u64, head: &str, key: &ed25519_dalek::SigningKey) -> Checkpoint {
        use ed25519_dalek::Signer;
        Checkpoint {
            seq,
            head: head.to_string(),
            time: crate::util::stamp(jiff::Timestamp::now()),
            public_key: hex::encode(key.verifying_key().to_bytes()),
            signature: hex::encode(key.sign(&checkpoint_message(seq, head)).to_bytes()),
        }
    }

    /// True when `trusted` signed this checkpoint.
    pub(crate) fn verify(&self, trusted: &ed25519_dalek::VerifyingKey) -> bool {
        let Some(sig) = hex::decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        self.public_key == hex::encode(trusted.to_bytes())
            && trusted
                .verify_strict(
                    &checkpoint_message(self.seq, &self.head),
                    &ed25519_dalek::Signature::from_bytes(&sig),
                )
                .is_ok()
    }
}

fn record_name(seq: u64) -> String {
    format!("audit/{seq:020}.json")
}

fn checkpoint_name(seq: u64) -> String {
    format!("audit/checkpoints/{seq:020}.json")
}

/// Copies the records not yet mirrored to `mirror` as `audit/<seq>.json`
/// (conditional creates: a mirrored record is never replaced), then, with
/// `signer`, a signed checkpoint of the head. Returns how many records were
/// copied.
///
/// # Errors
/// Reading the local log, or the store; [`Error::Integrity`] when the
/// mirror holds another record under a number the local log uses (the
/// local log was cut or rewritten and grew again): that is never let pass
/// in silence.
pub async fn mirror(
    path: &Path,
    mirror: &crate::backend::Backend,
    signer: Option<&ed25519_dalek::SigningKey>,
) -> Result<usize> {
    let have: std::collections::HashSet<u64> = mirror
        .list("audit")
        .await?
        .iter()
        .filter_map(|l| {
            l.path
                .strip_prefix("audit/")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect();
    let local = read(path, |_| true)?;
    let mut copied = 0;
    for rec in local.iter().filter(|r| !have.contains(&r.seq)) {
        let body = serde_json::to_vec(rec)
            .map_err(|e| Error::Internal(format!("cannot encode an audit record: {e}")))?;
        if mirror
            .put_new(&record_name(rec.seq), bytes::Bytes::from(body))
            .await?
        {
            copied += 1;
        } else {
            same_as_mirrored(mirror, rec).await?;
        }
    }
    // The newest mirrored record must be ours too (a log cut and regrown
    // past it would otherwise go unnoticed until it grew that far).
    if let Some(last) = have.iter().max() {
        match local.iter().find(|r| r.seq == *last) {
            Some(rec) => same_as_mirrored(mirror, rec).await?,
            None => {
                return Err(Error::integrity(
                    format!("audit log {}", path.display()),
                    format!(
                        "the mirror holds records up to {last} and the local log ends at {}: the local log was cut",
                        local.last().map_or(0, |r| r.seq)
                    ),
                ))
            }
        }
    }
    if let (Some(key), Some(head)) = (signer, local.last()) {
        let cp = Checkpoint::sign(head.seq, &head.hash, key);
        let body = serde_json::to_vec(&cp)
            .map_err(|e| Error::Internal(format!("cannot encode a checkpoint: {e}")))?;
        mirror
            .put_new(&checkpoint_name(head.seq), bytes::Bytes::from(body))
            .await?;
    }
    Ok(copied)
}

/// Fails when the mirror's record `rec.seq` is not `rec`.
async fn same_as_mirrored(mirror: &crate::backend::Backend, rec: &Record) -> Result<()> {
    let theirs = mirror.get(&record_name(rec.seq)).await?;
    let theirs: Record = serde_json::from_slice(&theirs)
        .map_err(|e| Error::integrity(record_name(rec.seq), e.to_string()))?;
    if theirs.hash != rec.hash {
        return Err(Error::integrity(
            "audit log",
            format!(
                "record {} differs from the mirrored one: the local log was cut or rewritten",
                rec.seq
            ),
        ));
    }
    Ok(())
}

/// The audit trail's health as the daemon last saw it (for `status`,
/// `/metrics` and `GET /v1/audit/chain`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainStatus {
    /// True when the local chain verified and agreed with its mirror.
    pub ok: bool,
    /// When it was last checked.
    pub checked: Option<String>,
    /// Records in the local log.
    pub records: u64,
    /// Whether a mirror is configured and was compared.
    pub mirrored: bool,
    /// What is wrong (a problem stays until the daemon restarts).
    pub problems: Vec<String>,
}

/// Reads the signing key for checkpoints from the operator's certificate
/// key file (hex Ed25519, a private file), or `None` (logged) when it
/// cannot be read.
pub fn checkpoint_key(path: &Path) -> Option<ed25519_dalek::SigningKey> {
    let bytes = match crate::secrets::read_file(path, "certificate signing key") {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "audit checkpoints are not signed");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let raw: [u8; 32] = hex::decode(text.trim()).ok()?.try_into().ok()?;
    Some(ed25519_dalek::SigningKey::from_bytes(&raw))
}

/// What a comparison of the local log with its mirror found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorCheck {
    /// Records in the local log.
    pub local: u64,
    /// Records in the mirror.
    pub mirrored: u64,
    /// Checkpoints in the mirror, and how many `trusted` signed.
    pub checkpoints: u64,
    /// Checkpoints whose signature verified with the trusted key.
    pub checkpoints_verified: u64,
    /// Every discrepancy, one sentence each (empty: the logs agree).
    pub problems: Vec<String>,
}

/// What `custos audit verify --json` prints for a log whose chain holds.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Records in the log.
    pub records: u64,
    /// The hash of the newest record.
    pub head: String,
    /// The chain holds and, when there is a mirror, matches it.
    pub ok: bool,
    /// The comparison with the mirror, when the config names one.
    pub mirror: Option<MirrorReport>,
}

/// The comparison of a log with its mirror.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorReport {
    /// The mirror's URL.
    pub url: String,
    /// What the comparison found.
    pub check: MirrorCheck,
}

impl VerifyReport {
    /// The report for a chain of `records` ending at `head`, compared with
    /// `mirror` when there is one.
    pub fn new(records: u64, head: String, mirror: Option<MirrorReport>) -> VerifyReport {
        VerifyReport {
            records,
            head,
            ok: mirror.as_ref().is_none_or(|m| m.check.problems.is_empty()),
            mirror,
        }
    }
}

/// What `custos audit verify --json` prints for a broken chain.
#[derive(Debug, Clone, Serialize)]
pub struct BrokenReport {
    /// Always false.
    pub ok: bool,
    /// The first line that does not hold.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

impl From<&Broken> for BrokenReport {
    fn from(b: &Broken) -> BrokenReport {
        BrokenReport {
            ok: false,
            line: b.line,
            problem: b.problem.clone(),
        }
    }
}

/// Compares the local log with its mirror record by record, and with the
/// mirror's signed checkpoints (signatures checked with `trusted` when
/// given): a record that differs, one the mirror has beyond the local end
/// (a cut), or a checkpoint the local log does not match, is a problem.
///
/// # Errors
/// Reading the local log or the store.
pub async fn check_mirror(
    path: &Path,
    mirror: &crate::backend::Backend,
    trusted: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<MirrorCheck> {
    let local = read(path, |_| true)?;
    let by_seq: std::collections::HashMap<u64, &Record> =
        local.iter().map(|r| (r.seq, r)).collect();
    let last_local = local.last().map_or(0, |r| r.seq);
    let mut out = MirrorCheck {
        local: local.len() as u64,
        ..Default::default()
    };
    let mut cut_reported = false;
    for l in mirror.list("audit").await? {
        let Some(name) = l.path.strip_prefix("audit/") else {
            continue;
        };
        if let Some(cp) = name.strip_prefix("checkpoints/") {
            if !cp.ends_with(".json") {
                continue;
            }
            out.checkpoints += 1;
            let body = mirror.get(&l.path).await?;
            let Ok(cp) = serde_json::from_slice::<Checkpoint>(&body) else {
                out.problems.push(format!("{}: not a checkpoint", l.path));
                continue;
            };
            if let Some(key) = trusted {
                if cp.verify(key) {
                    out.checkpoints_verified += 1;
                } else {
                    out.problems
                        .push(format!("{}: the signature is not the operator's", l.path));
                    continue;
                }
            }
            match by_seq.get(&cp.seq) {
                Some(r) if r.hash == cp.head => {}
                Some(_) => out.problems.push(format!(
                    "checkpoint {}: record {} of the local log has another hash: the log was rewritten",
                    cp.seq, cp.seq
                )),
                None => out.problems.push(format!(
                    "checkpoint {}: the local log ends at record {last_local}: it was cut",
                    cp.seq
                )),
            }
            continue;
        }
        let Some(seq) = name
            .strip_suffix(".json")
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.mirrored += 1;
        match by_seq.get(&seq) {
            None if !cut_reported => {
                cut_reported = true;
                out.problems.push(format!(
                    "the mirror holds record {seq} and the local log ends at record {last_local}: it was cut"
                ));
            }
            None => {}
            Some(r) => {
                let body = mirror.get(&l.path).await?;
                match serde_json::from_slice::<Record>(&body) {
                    Ok(m) if m.hash == r.hash => {}
                    Ok(_) => out.problems.push(format!(
                        "record {seq} differs from the mirrored one: the local log was edited or rewritten"
                    )),
                    Err(e) => out.problems.push(format!("{}: not a record ({e})", l.path)),
                }
            }
        }
    }
    Ok(out)
}

/// The last record of an open log (read from its tail).
fn last_record(f: &mut std::fs::File) -> std::io::Result<Option<Record>> {
    use std::io::{Read, Seek, SeekFrom};
    let len = f.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(1 << 20);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    let text = String::from_utf8_lossy(&tail);
    Ok(text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str(l).ok()))
}

/// Reads a log's records.
///
/// # Errors
/// I/O errors, or a line that does not decode.
pub fn read(path: &Path, filter: impl Fn(&Record) -> bool) -> Result<Vec<Record>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let rec: Record = serde_json::from_str(&line).map_err(|e| {
            Error::integrity(
                format!("audit log {}", path.display()),
                format!("line {}: {e}", i + 1),
            )
        })?;
        if filter(&rec) {
            out.push(rec);
        }
    }
    Ok(out)
}

/// Why verification stopped.
#[derive(Debug)]
pub enum VerifyError {
    /// No log yet.
    Missing,
    /// It cannot be read.
    Io(Error),
    /// It was tampered with.
    Broken(Broken),
}

/// Verifies the whole chain; returns the number of records and the head hash.
///
/// # Errors
/// [`VerifyError::Broken`] naming the first bad line: an edited record, a
/// removed or reordered one, a line that does not decode.
pub fn verify(path: &Path) -> std::result::Result<(u64, String), VerifyError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(VerifyError::Missing),
        Err(e) => {
            return Err(VerifyError::Io(Error::io(
                format!("cannot read {}", path.display()),
                e,
            )))
        }
    };
    let broken = |line: usize, problem: String| {
        VerifyError::Broken(Broken {
            file: path.to_path_buf(),
            line,
            problem,
        })
    };
    let (mut seq, mut head) = (0u64, GENESIS.to_string());
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| {
            VerifyError::Io(Error::io(format!("cannot read {}", path.display()), e))
        })?;
        let rec: Record =
            serde_json::from_str(&line).map_err(|e| broken(n, format!("not a record ({e})")))?;
        if rec.seq != seq + 1 {
            return Err(broken(
                n,
                format!(
                    "record {} where {} was expected: a record was removed or the order changed",
                    rec.seq,
                    seq + 1
                ),
            ));
        }
        if rec.prev != head {
            return Err(broken(
                n,
                format!(
                    "record {} does not follow the previous one (chain broken)",
                    rec.seq
                ),
            ));
        }
        if rec.compute_hash() != rec.hash {
            return Err(broken(
                n,
                format!("record {} was edited (hash mismatch)", rec.seq),
            ));
        }
        seq = rec.seq;
        head = rec.hash;
    }
    Ok((seq, head))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        for i in 0..n {
            log.append(
                "desk",
                "restore.requested",
                Some("acme"),
                serde_json::json!({"ticket": format!("SD-{i}")}),
            )
            .unwrap();
        }
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_clean_log_verifies_and_reopens_at_its_head() {
        let (_d, path) = log_with(5);
        let (n, head) = verify(&path).unwrap();
        assert_eq!(n, 5);
        let log = AuditLog::open(&path).unwrap();
        assert_eq!(log.head(), head);
        log.append("daemon", "daemon.stopped", None, serde_json::json!({}))
            .unwrap();
        assert_eq!(verify(&path).unwrap().0, 6);
        assert_eq!(
            log.read(|r| r.tenant.as_deref() == Some("acme"))
                .unwrap()
                .len(),
            5
        );
    }

    #[test]
    fn two_writers_keep_one_chain() {
        let (_d, path) = log_with(2);
        // As if the daemon and an operator's command each had the log open.
        let a = AuditLog::open(&path).unwrap();
        let b = AuditLog::open(&path).unwrap();
        for i in 0..5 {
            a.append("daemon", "x", None, serde_json::json!({"i": i}))
                .unwrap();
            b.append(
                "operator:root@host",
                "key.added",
                Some("acme"),
                serde_json::json!({"i": i}),
            )
            .unwrap();
        }
        assert_eq!(verify(&path).unwrap().0, 12);
    }

    #[test]
    fn edits_removals_and_reorders_are_found_with_their_line() {
        let (_d, path) = log_with(5);
        let orig = lines(&path);

        let mut edited = orig.clone();
        edited[2] = edited[2].replace("SD-2", "SD-9");
        std::fs::write(&path, edited.join("\n") + "\n").unwrap();
        let Err(VerifyError::Broken(b)) = verify(&path) else {
            panic!("edit not found")
        };
        assert_eq!(b.line, 3);
        assert!(b.problem.contains("edited"), "{b}");
        assert!(
            AuditLog::open(&path).is_err(),
            "no appending to a tampered log"
        );

        let mut removed = orig.clone();
        removed.remove(1);
        std::fs::write(&path, removed.join("\n") + "\n").unwrap();
        let Err(VerifyError::Broken(b)) = verify(&path) else {
            panic!("removal not found")
        };
        assert_eq!(b.line, 2);
        assert!(b.problem.contains("removed"), "{b}");

        let mut swapped = orig.clone();
        swapped.swap(3, 4);
        std::fs::write(&path, swapped.join("\n") + "\n").unwrap();
        let Err(VerifyError::Broken(b)) = verify(&path) else {
            panic!("reorder not found")
        };
        assert_eq!(b.line, 4);

        // Removing the last record cannot be seen from the file alone: the
        // head hash kept elsewhere (certificates, the mirror) catches it.
        let mut truncated = orig;
        truncated.pop();
        std::fs::write(&path, truncated.join("\n") + "\n").unwrap();
        assert_eq!(verify(&path).unwrap().0, 4);
    }
}
