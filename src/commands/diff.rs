//! `custos diff A B`: what changed between two snapshots.
//!
//! Both trees are walked side by side, name by name (tree nodes are sorted
//! by name); a subtree with the same ID on both sides is the same content
//! and metadata all the way down, and is skipped unread. Each path is
//! reported once:
//!
//! | change | meaning |
//! |---|---|
//! | `added` | only in B (everything under an added directory too) |
//! | `removed` | only in A |
//! | `changed` | content differs: a file's chunks, a link's target, a device's number, or the kind of entry |
//! | `metadata` | same content, other mode, owner, time or extended attributes |

use std::cmp::Ordering;

use serde::Serialize;

use crate::id::BlobId;
use crate::repofile::tree::{Node, NodeKind};
use crate::repository::{IndexedRepository, TreeReader};
use crate::Result;

/// How a path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only in the second snapshot.
    Added,
    /// Only in the first.
    Removed,
    /// Content (or kind) differs.
    Changed,
    /// Only metadata differs.
    Metadata,
}

impl Change {
    /// restic's one-letter marks: `+`, `-`, `M`, `U`.
    pub fn mark(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Changed => 'M',
            Change::Metadata => 'U',
        }
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathChange {
    /// Path inside the snapshots (`/`-separated, from the root).
    pub path: String,
    /// How it changed.
    pub change: Change,
    /// Directory, file, symlink, ... (in B, or in A when removed).
    pub kind: NodeKind,
}

/// Counts of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiffStats {
    /// Paths added.
    pub added: u64,
    /// Paths removed.
    pub removed: u64,
    /// Paths whose content changed.
    pub changed: u64,
    /// Paths whose metadata only changed.
    pub metadata: u64,
    /// Bytes of files added, and the new size of changed files.
    pub bytes_added: u64,
    /// Bytes of files removed, and the old size of changed files.
    pub bytes_removed: u64,
}

/// What `diff` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diff {
    /// Every changed path, in path order.
    pub changes: Vec<PathChange>,
    /// Their counts.
    pub stats: DiffStats,
}

impl Diff {
    fn push(&mut self, path: String, change: Change, n: &Node, old_size: u64) {
        let s = &mut self.stats;
        match change {
            Change::Added => {
                s.added += 1;
                s.bytes_added += n.size;
            }
            Change::Removed => {
                s.removed += 1;
                s.bytes_removed += n.size;
            }
            Change::Changed => {
                s.changed += 1;
                s.bytes_added += n.size;
                s.bytes_removed += old_size;
            }
            Change::Metadata => s.metadata += 1,
        }
        self.changes.push(PathChange {
            path,
            change,
            kind: n.kind,
        });
    }
}

/// Whether two nodes of the same name differ in content, metadata, or not.
fn compare(a: &Node, b: &Node) -> Option<Change> {
    let content = a.kind != b.kind
        || match a.kind {
            NodeKind::File => a.content != b.content || a.size != b.size,
            NodeKind::Symlink => a.target != b.target,
            NodeKind::CharDev | NodeKind::BlockDev => a.rdev != b.rdev,
            _ => false,
        };
    if content {
        return Some(Change::Changed);
    }
    let meta = a.mode != b.mode
        || a.uid != b.uid
        || a.gid != b.gid
        || a.mtime_ns != b.mtime_ns
        || a.xattrs != b.xattrs;
    meta.then_some(Change::Metadata)
}

/// Compares the trees of snapshots whose roots are `a` and `b`.
///
/// # Errors
/// A tree that cannot be read (missing from the index, damaged).
pub async fn diff(repo: &IndexedRepository, a: BlobId, b: BlobId) -> Result<Diff> {
    repo.walk_trees(move |r| {
        let mut out = Diff::default();
        walk(r, Some(a), Some(b), "", &mut out)?;
        Ok(out)
    })
    .await
}

/// Compares directory `a` with `b` (either may be missing: everything
/// under the other is added or removed).
fn walk(
    r: &TreeReader,
    a: Option<BlobId>,
    b: Option<BlobId>,
    prefix: &str,
    out: &mut Diff,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let ta = a.map(|id| r.read(&id)).transpose()?;
    let tb = b.map(|id| r.read(&id)).transpose()?;
    let (na, nb) = (
        ta.as_ref().map_or(&[][..], |t| &t.nodes[..]),
        tb.as_ref().map_or(&[][..], |t| &t.nodes[..]),
    );
    let (mut i, mut j) = (0, 0);
    while i < na.len() || j < nb.len() {
        let order = match (na.get(i), nb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                let n = &na[i];
                let path = format!("{prefix}/{}", n.name_lossy());
                out.push(path.clone(), Change::Removed, n, 0);
                if n.subtree.is_some() {
                    walk(r, n.subtree, None, &path, out)?;
                }
                i += 1;
            }
            Ordering::Greater => {
                let n = &nb[j];
                let path = format!("{prefix}/{}", n.name_lossy());
                out.push(path.clone(), Change::Added, n, 0);
                if n.subtree.is_some() {
                    walk(r, None, n.subtree, &path, out)?;
                }
                j += 1;
            }
            Ordering::Equal => {
                let (x, y) = (&na[i], &nb[j]);
                let path = format!("{prefix}/{}", y.name_lossy());
                if let Some(c) = compare(x, y) {
                    out.push(path.clone(), c, y, x.size);
                }
                let (sa, sb) = (x.subtree, y.subtree);
                if sa.is_some() || sb.is_some() {
                    walk(r, sa, sb, &path, out)?;
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::backup::{backup, BackupOptions};

    #[tokio::test]
    async fn additions_removals_changes_and_metadata_are_told_apart() {
        let repo = crate::repository::test_repository("diff-unit").await;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("keep/deep")).unwrap();
        std::fs::create_dir_all(d.join("gone/sub")).unwrap();
        std::fs::write(d.join("keep/same"), b"same").unwrap();
        std::fs::write(d.join("keep/edit"), b"before").unwrap();
        std::fs::write(d.join("keep/chmod"), b"mode").unwrap();
        std::fs::write(d.join("keep/deep/x"), b"x").unwrap();
        std::fs::write(d.join("gone/sub/y"), b"yy").unwrap();
        let snap = |repo: &IndexedRepository| {
            let opts = BackupOptions {
                paths: vec![d.to_path_buf()],
                ..Default::default()
            };
            let repo = repo.clone();
            async move { backup(&repo, opts).await.unwrap().snapshot.tree }
        };
        let first = snap(&repo).await;
        std::fs::write(d.join("keep/edit"), b"after!").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("keep/chmod"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::remove_dir_all(d.join("gone")).unwrap();
        std::fs::write(d.join("new"), b"new file").unwrap();
        let second = snap(&repo).await;

        let none = diff(&repo, first, first).await.unwrap();
        assert!(none.changes.is_empty());
        let got = diff(&repo, first, second).await.unwrap();
        let root = d.to_string_lossy().into_owned();
        let find = |suffix: &str| {
            got.changes
                .iter()
                .find(|c| c.path.ends_with(&format!("{root}{suffix}")))
                .map(|c| c.change)
        };
        assert_eq!(find("/keep/edit"), Some(Change::Changed));
        assert_eq!(find("/keep/chmod"), Some(Change::Metadata));
        assert_eq!(find("/keep/same"), None);
        assert_eq!(find("/keep/deep/x"), None);
        assert_eq!(find("/gone"), Some(Change::Removed));
        assert_eq!(find("/gone/sub/y"), Some(Change::Removed));
        assert_eq!(find("/new"), Some(Change::Added));
        assert_eq!(got.stats.added, 1);
        assert_eq!(got.stats.removed, 3);
        assert_eq!(got.stats.changed, 1);
        assert_eq!(got.stats.bytes_added, 8 + 6);
        assert_eq!(got.stats.bytes_removed, 2 + 6);
        // The other way round, additions and removals swap.
        let back = diff(&repo, second, first).await.unwrap();
        assert_eq!((back.stats.added, back.stats.removed), (3, 1));
    }
}
