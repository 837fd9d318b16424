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

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
            time: jiff::Timestamp::now().to_string(),
            actor: actor.to_string(),
            action: action.to_string(),
            tenant: tenant.map(str::to_string),
            details,
            prev: st.head.clone(),
            hash: String::new(),
        };
        rec.hash = rec.compute_hash();
        let mut line = serde_json::to_vec(&rec)
            .map_err(|e| Error::Problems(format!("cannot encode an audit record: {e}")))?;
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
        read(&self.path, filter)
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

/// Copies the records not yet mirrored to `mirror` as `audit/<seq>.json`
/// (conditional creates: a mirrored record is never replaced). Returns how
/// many were copied.
///
/// # Errors
/// Reading the local log, or the store.
pub async fn mirror(path: &Path, mirror: &crate::backend::Backend) -> Result<usize> {
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
    let mut copied = 0;
    for rec in read(path, |r| !have.contains(&r.seq))? {
        let body = serde_json::to_vec(&rec)
            .map_err(|e| Error::Problems(format!("cannot encode an audit record: {e}")))?;
        if mirror
            .put_new(
                &format!("audit/{:020}.json", rec.seq),
                bytes::Bytes::from(body),
            )
            .await?
        {
            copied += 1;
        }
    }
    Ok(copied)
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
