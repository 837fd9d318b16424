//! Repository locks: leases under `locks/<id>`.
//!
//! | held by | kind | conflicts with |
//! |---|---|---|
//! | backup, restore, check, forget, copy | shared | exclusive |
//! | prune | prune | prune, exclusive |
//! | repair, erase, unlock --all | exclusive | everything |
//!
//! Prune does not stop backups: it deletes in two phases (see
//! `commands::prune`), and a sweep waits until every lock that was alive when
//! its plan was made is gone, so a backup that deduplicated against a retired
//! pack has written its snapshot (and the pack is kept) before anything goes.
//!
//! A lock is created with a conditional put (never overwriting another), then the
//! lock list is read again: if a conflicting lock appeared meanwhile, ours is
//! withdrawn and the attempt fails, so two writers can never both believe they
//! hold conflicting locks. A lease expires unless refreshed; the holder refreshes
//! it every third of the lease. An expired lock is stale and is ignored (and
//! removed by `custos unlock` or by the next exclusive locker, with a log line).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::id::LockId;
use crate::{Error, Result};

/// How long a lease lasts without refresh. Long enough to survive a stalled
/// store for a while, short enough that a crashed holder blocks others briefly.
pub(crate) const LEASE: Duration = Duration::from_secs(300);

/// The lease in force: `LEASE` (300 s), or `CUSTOS_TEST_LOCK_LEASE` seconds (tests of
/// lease expiry only; a test switch, see `switches`).
pub fn lease() -> Duration {
    crate::switches::lock_lease().unwrap_or(LEASE)
}

/// The kind of a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    /// Readers and writers that add data.
    Shared,
    /// Prune: one at a time, alongside shared holders.
    Prune,
    /// Alone in the repository.
    Exclusive,
}

impl LockKind {
    fn conflicts(self, other: LockKind) -> bool {
        use LockKind::*;
        matches!(
            (self, other),
            (Exclusive, _) | (_, Exclusive) | (Prune, Prune)
        )
    }
}

/// A lock object's body (plain JSON: it holds nothing secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    /// Shared (backups, restores), exclusive, or prune.
    pub kind: LockKind,
    /// What holds it (command name).
    pub command: String,
    /// Host.
    pub hostname: String,
    /// Process ID.
    pub pid: u32,
    /// User.
    pub username: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Expiry, RFC 3339.
    pub expires: String,
}

impl LockInfo {
    /// True when the lease ran out (the holder is gone or stuck).
    pub fn expired(&self, now: jiff::Timestamp) -> bool {
        self.expires
            .parse::<jiff::Timestamp>()
            .map(|t| t < now)
            .unwrap_or(true)
    }

    /// True when the holder ran on this host and its process is gone: the lock
    /// can be taken over at once instead of waiting for the lease to run out.
    pub(crate) fn holder_gone(&self) -> bool {
        if self.hostname != crate::util::hostname() || self.pid == std::process::id() {
            return false;
        }
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 sends nothing; it only checks that the
        // process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }

    /// True when the lock no longer protects anything: its lease ran out, or
    /// its holder ran on this host and has exited.
    pub fn stale(&self, now: jiff::Timestamp) -> bool {
        self.expired(now) || self.holder_gone()
    }

    /// Why the lock is stale, for log lines.
    pub(crate) fn stale_reason(&self, now: jiff::Timestamp) -> &'static str {
        if self.expired(now) {
            "lease expired"
        } else {
            "holder process is gone"
        }
    }

    /// One-line description of the holder.
    pub fn holder(&self) -> String {
        format!(
            "{} lock by `{}` (pid {} on {}, user {}, since {})",
            match self.kind {
                LockKind::Shared => "shared",
                LockKind::Prune => "prune",
                LockKind::Exclusive => "exclusive",
            },
            self.command,
            self.pid,
            self.hostname,
            self.username,
            self.created
        )
    }
}

/// A held lock. Call [`Lock::release`]; dropping it stops the refresh and lets
/// the lease expire.
pub struct Lock {
    backend: Backend,
    id: LockId,
    refresher: JoinHandle<()>,
    /// When the lease was last written successfully (seconds since the epoch).
    renewed: Arc<AtomicI64>,
}

fn body(info: &LockInfo) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(info).unwrap_or_default())
}

fn new_info(kind: LockKind, command: &str) -> LockInfo {
    let now = jiff::Timestamp::now();
    LockInfo {
        kind,
        command: command.to_string(),
        hostname: crate::util::hostname(),
        pid: std::process::id(),
        username: crate::util::username(),
        created: now.to_string(),
        expires: (now + lease()).to_string(),
    }
}

/// Lists the locks with their IDs.
///
/// # Errors
/// [`Error::Backend`].
pub async fn list(backend: &Backend) -> Result<Vec<(LockId, LockInfo)>> {
    let mut out = Vec::new();
    for l in backend.list("locks").await? {
        let Ok(id) = l.path.trim_start_matches("locks/").parse::<LockId>() else {
            continue;
        };
        // A lock that does not decode may be a refresh caught half written
        // (stores whose uploads are not atomic): read it again a moment later
        // before ignoring it.
        for attempt in 0..2 {
            match backend.get(&l.path).await {
                Ok(b) => match serde_json::from_slice::<LockInfo>(&b) {
                    Ok(info) => {
                        out.push((id, info));
                        break;
                    }
                    Err(_) if attempt == 0 => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => {
                        tracing::warn!(lock = %l.path, error = %e, "ignoring a lock that does not decode")
                    }
                },
                Err(e) if crate::backend::is_not_found(&e) => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

impl Lock {
    /// Takes a lock.
    ///
    /// # Errors
    /// [`Error::Locked`] naming the holder of a conflicting live lock.
    pub async fn acquire(backend: &Backend, kind: LockKind, command: &str) -> Result<Lock> {
        let check = |locks: &[(LockId, LockInfo)], mine: Option<LockId>| -> Result<()> {
            let now = jiff::Timestamp::now();
            for (id, info) in locks {
                if Some(*id) == mine {
                    continue;
                }
                if info.stale(now) {
                    tracing::info!(
                        lock = %id,
                        holder = %info.holder(),
                        reason = info.stale_reason(now),
                        "taking over from a stale lock"
                    );
                    continue;
                }
                if kind.conflicts(info.kind) {
                    return Err(Error::Locked(format!(
                        "{} holds it (lock {})",
                        info.holder(),
                        id.short()
                    )));
                }
            }
            Ok(())
        };
        check(&list(backend).await?, None)?;
        let id = LockId::random();
        let info = new_info(kind, command);
        let path = format!("locks/{id}");
        if !backend.put_new(&path, body(&info)).await? {
            return Err(Error::Locked(format!("lock {id} already exists")));
        }
        if let Err(e) = check(&list(backend).await?, Some(id)) {
            backend.delete(&path).await?;
            return Err(e);
        }
        let b = backend.clone();
        let renewed = Arc::new(AtomicI64::new(jiff::Timestamp::now().as_second()));
        let last = renewed.clone();
        let lease = lease();
        let refresher = tokio::spawn(async move {
            let mut info = info;
            loop {
                tokio::time::sleep(lease / 3).await;
                let now = jiff::Timestamp::now();
                info.expires = (now + lease).to_string();
                match b.put(&path, body(&info)).await {
                    Ok(()) => last.store(now.as_second(), Ordering::Relaxed),
                    Err(e) => tracing::warn!(error = %e, "could not refresh the repository lock"),
                }
            }
        });
        Ok(Lock {
            backend: backend.clone(),
            id,
            refresher,
            renewed,
        })
    }

    /// This lock's ID.
    pub fn id(&self) -> LockId {
        self.id
    }

    /// Checks that the lock still protects us before a commit point (writing a
    /// snapshot): its lease was renewed in time and its object still exists.
    /// Another process may have taken over a lease that lapsed (a stalled
    /// store, a suspended machine) or an operator may have run `unlock --all`;
    /// then a prune may have retired packs this process relies on.
    ///
    /// # Errors
    /// [`Error::Locked`] when the lock was lost; backend errors.
    pub(crate) async fn ensure_held(&self) -> Result<()> {
        let now = jiff::Timestamp::now().as_second();
        let renewed = self.renewed.load(Ordering::Relaxed);
        let lease = i64::try_from(lease().as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(renewed) >= lease {
            return Err(Error::Locked(format!(
                "lost the repository lock {}: its lease was not renewed for {} s; nothing was committed",
                self.id.short(),
                now.saturating_sub(renewed)
            )));
        }
        match self.backend.get(&format!("locks/{}", self.id)).await {
            Ok(_) => Ok(()),
            Err(e) if crate::backend::is_not_found(&e) => Err(Error::Locked(format!(
                "lost the repository lock {}: someone removed it (custos unlock --all?); nothing was committed",
                self.id.short()
            ))),
            Err(e) => Err(e),
        }
    }

    /// Releases the lock.
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub async fn release(self) -> Result<()> {
        self.refresher.abort();
        self.backend.delete(&format!("locks/{}", self.id)).await
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// Removes stale locks (or all with `all`). Returns what was removed.
///
/// # Errors
/// [`Error::Backend`].
pub async fn unlock(backend: &Backend, all: bool) -> Result<Vec<LockInfo>> {
    let now = jiff::Timestamp::now();
    let mut removed = Vec::new();
    for (id, info) in list(backend).await? {
        if all || info.stale(now) {
            backend.delete(&format!("locks/{id}")).await?;
            tracing::info!(lock = %id, holder = %info.holder(), "removed lock");
            removed.push(info);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lock_matrix() {
        let b = Backend::open("memory://lock-unit", true).unwrap();
        let s1 = Lock::acquire(&b, LockKind::Shared, "backup").await.unwrap();
        let s2 = Lock::acquire(&b, LockKind::Shared, "backup").await.unwrap();
        let err = Lock::acquire(&b, LockKind::Exclusive, "erase")
            .await
            .err()
            .unwrap();
        assert!(
            matches!(err, Error::Locked(ref m) if m.contains("backup")),
            "{err}"
        );
        // Prune runs alongside backups, but not alongside another prune.
        let p = Lock::acquire(&b, LockKind::Prune, "prune").await.unwrap();
        let err = Lock::acquire(&b, LockKind::Prune, "prune")
            .await
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("prune lock by `prune`"), "{err}");
        p.release().await.unwrap();
        s1.release().await.unwrap();
        s2.release().await.unwrap();
        let x = Lock::acquire(&b, LockKind::Exclusive, "repair")
            .await
            .unwrap();
        let err = Lock::acquire(&b, LockKind::Shared, "backup")
            .await
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("repair"));
        x.release().await.unwrap();
        assert!(list(&b).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn stale_lock_is_ignored_and_removed() {
        let b = Backend::open("memory://lock-stale", true).unwrap();
        let mut info = new_info(LockKind::Exclusive, "erase");
        info.expires = "2000-01-01T00:00:00Z".into();
        b.put(&format!("locks/{}", LockId::random()), body(&info))
            .await
            .unwrap();
        let l = Lock::acquire(&b, LockKind::Shared, "backup").await.unwrap();
        l.release().await.unwrap();
        assert_eq!(unlock(&b, false).await.unwrap().len(), 1);
    }
}
