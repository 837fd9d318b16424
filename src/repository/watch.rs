//! Rollback detection: what a repository held when custos last looked, and
//! what changed since that custos did not do.
//!
//! Someone with write access to the store can delete objects or put back
//! older ones; they cannot forge an authenticated object. custos records
//! each snapshot it forgets as an authenticated tombstone
//! (`forgotten/<snapshot id>`), and every index object names the ones it
//! supersedes. Against the memory of the last look ([`Seen`], kept by the
//! daemon's catalog per repository, by `custos check` in the cache):
//!
//! | change | legitimate when | otherwise |
//! |---|---|---|
//! | a snapshot seen before is gone | a verified tombstone names it | alarm: deleted without a forget |
//! | a snapshot that was forgotten and gone is back | never | alarm: an older state was restored |
//! | an index object seen before is gone | a loaded index object supersedes it | alarm: deleted |
//! | an index object superseded and gone is back | never | alarm: an older state was restored |
//!
//! The first look only records (there is nothing to compare with). Without
//! a memory (a new host, `--no-cache`) the changes since are not seen: the
//! alarms cover what happened between two looks by the same host.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::id::{IndexId, SnapshotId};
use crate::{Error, Result};

/// What a repository held at the last look.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Snapshots listed.
    pub snapshots: BTreeSet<String>,
    /// Snapshots whose tombstone verified.
    pub forgotten: BTreeSet<String>,
    /// Snapshots that were forgotten and are gone.
    pub gone_snapshots: BTreeSet<String>,
    /// Index objects listed (`None` before the first look with the index).
    pub index: Option<BTreeSet<String>>,
    /// Index objects superseded and gone.
    pub gone_index: BTreeSet<String>,
}

/// What a repository holds now.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Snapshots listed.
    pub snapshots: BTreeSet<String>,
    /// Snapshots with a verified tombstone.
    pub forgotten: BTreeSet<String>,
    /// Index objects listed, and those that loaded index objects supersede
    /// (when the index was loaded).
    pub index: Option<(BTreeSet<String>, BTreeSet<String>)>,
}

/// Compares `now` with `seen` (the last look, `None` on the first):
/// returns the new memory and one sentence per unexplained change.
pub fn compare(seen: Option<&Seen>, now: &Observed) -> (Seen, Vec<String>) {
    let mut alarms = Vec::new();
    let prev = seen.cloned().unwrap_or_default();
    let forgotten: BTreeSet<String> = prev.forgotten.union(&now.forgotten).cloned().collect();
    let mut gone_snapshots = prev.gone_snapshots.clone();
    if seen.is_some() {
        for id in prev.snapshots.difference(&now.snapshots) {
            if forgotten.contains(id) {
                gone_snapshots.insert(id.clone());
            } else {
                alarms.push(format!(
                    "snapshot {} is gone without a recorded forget: someone with write access to the store deleted it",
                    short(id)
                ));
            }
        }
        for id in now.snapshots.intersection(&prev.gone_snapshots) {
            alarms.push(format!(
                "snapshot {} was forgotten and is back: an older state of the repository was restored",
                short(id)
            ));
        }
    }
    let (index, gone_index) = match (&now.index, &prev.index) {
        (Some((listed, superseded)), Some(before)) => {
            let mut gone = prev.gone_index.clone();
            for id in before.difference(listed) {
                if superseded.contains(id) {
                    gone.insert(id.clone());
                } else {
                    alarms.push(format!(
                        "index object {} is gone and no index object supersedes it: someone with write access to the store deleted it",
                        short(id)
                    ));
                }
            }
            for id in listed.intersection(&prev.gone_index) {
                alarms.push(format!(
                    "index object {} was superseded and removed, and is back: an older state of the repository was restored",
                    short(id)
                ));
            }
            (Some(listed.clone()), gone)
        }
        (Some((listed, _)), None) => (Some(listed.clone()), prev.gone_index.clone()),
        (None, _) => (prev.index.clone(), prev.gone_index.clone()),
    };
    (
        Seen {
            snapshots: now.snapshots.clone(),
            forgotten,
            gone_snapshots,
            index,
            gone_index,
        },
        alarms,
    )
}

/// A [`Seen`] kept in a file (what `custos check` remembers, in the cache
/// directory of the repository).
#[derive(Debug, Clone)]
pub struct Memory {
    path: std::path::PathBuf,
}

impl Memory {
    /// The memory in `path`.
    pub fn new(path: std::path::PathBuf) -> Self {
        Memory { path }
    }

    /// Where it is kept.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// What the last look saw; `None` when nothing was recorded yet.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Problems`] when
    /// it does not decode (it names the file to remove).
    pub fn load(&self) -> Result<Option<Seen>> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                Error::Problems(format!(
                    "{} is damaged ({e}): remove it to start a new memory",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("cannot read {}", self.path.display()), e)),
        }
    }

    /// Replaces the memory with `seen` (written beside, then renamed).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn store(&self, seen: &Seen) -> Result<()> {
        let body = serde_json::to_vec(seen)
            .map_err(|e| Error::Internal(format!("cannot encode {}: {e}", self.path.display())))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::io(format!("cannot write {}", self.path.display()), e)
            })
    }
}

use crate::id::short;

/// Looks at `repo`: its snapshots and verified tombstones (tombstones
/// already verified in `seen` are not read again), and, given the loaded
/// index's superseded set, its index objects.
///
/// # Errors
/// The store's errors. A tombstone that does not verify is not counted
/// (and is no excuse for a missing snapshot).
pub(crate) async fn observe(
    repo: &super::Repository,
    seen: Option<&Seen>,
    superseded: Option<BTreeSet<IndexId>>,
) -> Result<Observed> {
    let names = |listed: Vec<crate::backend::Listed>, dir: &str| -> BTreeSet<String> {
        listed
            .into_iter()
            .filter_map(|l| {
                l.path
                    .strip_prefix(dir)
                    .map(|n| n.trim_start_matches('/').to_string())
            })
            .collect()
    };
    // A listing may lag behind the store (eventually consistent stores, or
    // one that just changed): what the last look saw and this listing
    // misses is asked for by name before it counts as gone.
    let confirm = |mut listed: BTreeSet<String>, before: Option<&BTreeSet<String>>, dir: &str| {
        let missing: Vec<String> = before
            .map(|b| b.difference(&listed).cloned().collect())
            .unwrap_or_default();
        let dir = dir.to_string();
        async move {
            for id in missing {
                if repo.backend().exists(&format!("{dir}/{id}")).await? {
                    listed.insert(id);
                }
            }
            Ok::<_, Error>(listed)
        }
    };
    let snapshots = confirm(
        names(repo.backend().list("snapshots").await?, "snapshots"),
        seen.map(|s| &s.snapshots),
        "snapshots",
    )
    .await?;
    let mut forgotten = BTreeSet::new();
    for id in names(repo.backend().list("forgotten").await?, "forgotten") {
        if seen.is_some_and(|s| s.forgotten.contains(&id)) {
            forgotten.insert(id);
            continue;
        }
        let Ok(sid) = id.parse::<SnapshotId>() else {
            continue;
        };
        match repo.tombstone(&sid).await {
            Ok(_) => {
                forgotten.insert(id);
            }
            Err(e @ Error::Backend { .. }) => return Err(e),
            Err(e) => {
                tracing::warn!(tombstone = %id, error = %e, "a tombstone does not verify: ignored")
            }
        }
    }
    let index = match superseded {
        Some(sup) => Some((
            confirm(
                names(repo.backend().list("index").await?, "index"),
                seen.and_then(|s| s.index.as_ref()),
                "index",
            )
            .await?,
            sup.iter().map(|id| id.to_hex()).collect(),
        )),
        None => None,
    };
    Ok(Observed {
        snapshots,
        forgotten,
        index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn obs(snaps: &[&str], forgotten: &[&str], index: Option<(&[&str], &[&str])>) -> Observed {
        Observed {
            snapshots: set(snaps),
            forgotten: set(forgotten),
            index: index.map(|(l, s)| (set(l), set(s))),
        }
    }

    #[test]
    fn the_first_look_only_records() {
        let (seen, alarms) = compare(None, &obs(&["a", "b"], &[], Some((&["i1"], &[]))));
        assert!(alarms.is_empty());
        assert_eq!(seen.snapshots, set(&["a", "b"]));
        assert_eq!(seen.index, Some(set(&["i1"])));
    }

    #[test]
    fn a_forgotten_snapshot_may_go_a_deleted_one_may_not() {
        let (seen, _) = compare(None, &obs(&["a", "b", "c"], &[], None));
        let (seen, alarms) = compare(Some(&seen), &obs(&["c"], &["a"], None));
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert!(
            alarms[0].contains("snapshot b ") && alarms[0].contains("without a recorded forget")
        );
        assert_eq!(seen.gone_snapshots, set(&["a"]));
        // The forgotten one comes back (a restored older state).
        let (_, alarms) = compare(Some(&seen), &obs(&["a", "c"], &["a"], None));
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert!(alarms[0].contains("snapshot a ") && alarms[0].contains("is back"));
        // A tombstone written but the snapshot not deleted yet (a forget
        // killed in between) is no alarm.
        let (seen, alarms) = compare(Some(&seen), &obs(&["c"], &["a", "c"], None));
        assert!(alarms.is_empty(), "{alarms:?}");
        let (_, alarms) = compare(Some(&seen), &obs(&["c"], &["a", "c"], None));
        assert!(alarms.is_empty(), "{alarms:?}");
    }

    #[test]
    fn index_objects_go_only_when_superseded_and_never_come_back() {
        let (seen, _) = compare(None, &obs(&[], &[], Some((&["old", "x"], &[]))));
        // A prune: "new" supersedes "old", which is then deleted.
        let (seen, alarms) = compare(Some(&seen), &obs(&[], &[], Some((&["new", "x"], &["old"]))));
        assert!(alarms.is_empty(), "{alarms:?}");
        // "x" deleted by someone, "old" put back.
        let (_, alarms) = compare(Some(&seen), &obs(&[], &[], Some((&["new", "old"], &[]))));
        assert_eq!(alarms.len(), 2, "{alarms:?}");
        assert!(alarms
            .iter()
            .any(|a| a.contains("index object x ") && a.contains("deleted")));
        assert!(alarms
            .iter()
            .any(|a| a.contains("index object old ") && a.contains("is back")));
        // A look without the index keeps the index memory as it was.
        let (kept, alarms) = compare(Some(&seen), &obs(&[], &[], None));
        assert!(alarms.is_empty());
        assert_eq!(kept.index, seen.index);
    }
}
