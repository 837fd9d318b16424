//! `custos tag`: change a snapshot's tags. A snapshot object is never
//! edited in place: the snapshot is written again with the new tags, then
//! the old object is removed with a tombstone saying why (`tag`), so that
//! rollback detection knows the removal was ours. Both exist for a moment,
//! never neither, so a concurrent prune keeps the data either way.

use crate::id::SnapshotId;
use crate::repository::lock::{Lock, LockKind};
use crate::repository::Repository;
use crate::{Error, Result};

/// How the tags change: `set` replaces them all; otherwise `remove`, then
/// `add`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagChange {
    /// Tags to add.
    pub add: Vec<String>,
    /// Tags to remove.
    pub remove: Vec<String>,
    /// The tags to have, replacing every other.
    pub set: Option<Vec<String>>,
}

impl TagChange {
    /// `tags` after the change: sorted, without duplicates.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = match &self.set {
            Some(s) => s.clone(),
            None => tags
                .iter()
                .filter(|t| !self.remove.contains(t))
                .chain(self.add.iter())
                .cloned()
                .collect(),
        };
        out.sort();
        out.dedup();
        out
    }
}

/// What [`retag`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Retagged {
    /// The snapshot as it was.
    pub old: SnapshotId,
    /// Its new object (`None`: the tags did not change, nothing written).
    pub new: Option<SnapshotId>,
    /// The tags it has now.
    pub tags: Vec<String>,
}

/// Changes the tags of snapshot `id`.
///
/// # Errors
/// [`Error::Usage`] for an empty tag or a change that removes and adds
/// nothing; [`Error::Refused`] for a snapshot under legal hold (its record
/// must not change while held); storage and lock errors.
pub async fn retag(repo: &Repository, id: &SnapshotId, change: &TagChange) -> Result<Retagged> {
    let all = change
        .add
        .iter()
        .chain(&change.remove)
        .chain(change.set.iter().flatten());
    if let Some(bad) = all.clone().find(|t| t.trim().is_empty() || t.contains(',')) {
        return Err(Error::Usage(format!(
            "tag {bad:?} is not a tag: tags are non-empty and hold no comma"
        )));
    }
    if change.set.is_none() && change.add.is_empty() && change.remove.is_empty() {
        return Err(Error::Usage(
            "nothing to change: give --add, --remove or --set".into(),
        ));
    }
    let lock = Lock::acquire(repo.backend(), LockKind::Shared, "tag").await?;
    let r = retag_locked(repo, id, change).await;
    let released = lock.release().await;
    let r = r?;
    released?;
    Ok(r)
}

async fn retag_locked(repo: &Repository, id: &SnapshotId, change: &TagChange) -> Result<Retagged> {
    if repo.pins().await?.contains(id) {
        return Err(Error::Refused(format!(
            "snapshot {} is under legal hold: its tags do not change until it is unpinned",
            id.short()
        )));
    }
    let mut snap = repo.snapshot(id).await?;
    let tags = change.apply(&snap.tags);
    if tags == snap.tags {
        return Ok(Retagged {
            old: *id,
            new: None,
            tags,
        });
    }
    snap.tags = tags.clone();
    let new = repo.save_snapshot(&snap).await?;
    repo.delete_snapshot_because(id, "tag").await?;
    Ok(Retagged {
        old: *id,
        new: Some(new),
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn changes_apply_in_order() {
        let tags = s(&["daily", "pre-change"]);
        let c = TagChange {
            add: s(&["ticket-7", "daily"]),
            remove: s(&["pre-change"]),
            set: None,
        };
        assert_eq!(c.apply(&tags), s(&["daily", "ticket-7"]));
        let set = TagChange {
            set: Some(s(&["b", "a", "a"])),
            ..Default::default()
        };
        assert_eq!(set.apply(&tags), s(&["a", "b"]));
    }

    #[tokio::test]
    async fn a_retag_replaces_the_snapshot_and_refuses_a_pinned_one() {
        let repo = crate::repository::test_repository("tag-unit").await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        let id = crate::commands::backup::backup(
            &repo,
            crate::commands::backup::BackupOptions {
                paths: vec![dir.path().to_path_buf()],
                tags: s(&["daily"]),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id;
        let plain: &Repository = &repo;
        let change = TagChange {
            add: s(&["legal"]),
            ..Default::default()
        };
        let r = retag(plain, &id, &change).await.unwrap();
        let new = r.new.unwrap();
        assert_eq!(
            plain.snapshot(&new).await.unwrap().tags,
            s(&["daily", "legal"])
        );
        assert!(plain.snapshot(&id).await.is_err(), "the old object is gone");
        assert_eq!(plain.tombstone(&id).await.unwrap().reason, "tag");
        // The same change again writes nothing.
        assert!(retag(plain, &new, &change).await.unwrap().new.is_none());
        plain.pin(&new, "court order").await.unwrap();
        let e = retag(
            plain,
            &new,
            &TagChange {
                remove: s(&["legal"]),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Refused(_)), "{e}");
        let e = retag(plain, &new, &TagChange::default()).await.unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
    }
}
