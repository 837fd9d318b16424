//! `custos find PATTERN`: which snapshots hold paths matching a glob.
//!
//! A pattern without `/` is matched against each entry's name (`*.conf`);
//! with `/` against its whole path inside the snapshot (`/etc/**/*.conf`).
//! `*` and `?` do not cross `/`; `**` does. What a directory tree holds is
//! worked out once per tree ID: the next snapshot that shares the tree (an
//! unchanged directory) reuses it, so finding across a hundred nightly
//! snapshots reads little more than one.

use std::collections::HashMap;
use std::sync::Arc;

use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;

use crate::id::{BlobId, SnapshotId};
use crate::repofile::tree::NodeKind;
use crate::repository::{IndexedRepository, TreeReader};
use crate::{Error, Result};

/// One matching entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// Path inside the snapshot.
    pub path: String,
    /// File, directory, symlink, ...
    pub kind: NodeKind,
    /// Size (files).
    pub size: u64,
    /// Modification time, RFC 3339.
    pub mtime: String,
}

/// The matches of one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotMatches {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Its time.
    pub time: String,
    /// Its service.
    pub service: Option<String>,
    /// The matching entries, in path order.
    pub matches: Vec<Found>,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    glob: GlobMatcher,
    whole_path: bool,
}

impl Pattern {
    /// Compiles `pattern` (see the module's rules).
    ///
    /// # Errors
    /// [`Error::Usage`] for a pattern that is not a valid glob.
    pub fn new(pattern: &str) -> Result<Pattern> {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| Error::Usage(format!("pattern {pattern:?} is not a glob: {e}")))?
            .compile_matcher();
        Ok(Pattern {
            glob,
            whole_path: pattern.contains('/'),
        })
    }

    fn matches(&self, path: &str, name: &str) -> bool {
        if self.whole_path {
            self.glob.is_match(path)
        } else {
            self.glob.is_match(name)
        }
    }
}

/// Matches under one tree, relative to it (`/name/...`), shared by every
/// snapshot holding the tree. Whole-path patterns depend on where the tree
/// is, so they are cached by (tree, prefix).
type Cache = HashMap<(BlobId, String), Arc<Vec<Found>>>;

/// Finds the entries matching `pattern` in each of `snapshots` (ID, time,
/// service, root tree), in the order given.
///
/// # Errors
/// A tree that cannot be read.
pub async fn find(
    repo: &IndexedRepository,
    pattern: Pattern,
    snapshots: Vec<(SnapshotId, String, Option<String>, BlobId)>,
) -> Result<Vec<SnapshotMatches>> {
    repo.walk_trees(move |r| {
        let mut cache = Cache::new();
        let mut out = Vec::with_capacity(snapshots.len());
        for (snapshot, time, service, root) in snapshots {
            let matches = under(r, &pattern, root, "", &mut cache)?;
            out.push(SnapshotMatches {
                snapshot,
                time,
                service,
                matches: matches.to_vec(),
            });
        }
        Ok(out)
    })
    .await
}

/// The matches under tree `id`, whose path is `prefix`.
fn under(
    r: &TreeReader,
    pattern: &Pattern,
    id: BlobId,
    prefix: &str,
    cache: &mut Cache,
) -> Result<Arc<Vec<Found>>> {
    // Name patterns do not depend on the prefix: key them on the tree alone
    // and add the prefix when copying out.
    let key = (
        id,
        if pattern.whole_path {
            prefix.to_string()
        } else {
            String::new()
        },
    );
    if let Some(hit) = cache.get(&key) {
        return Ok(if pattern.whole_path {
            hit.clone()
        } else {
            Arc::new(
                hit.iter()
                    .map(|f| Found {
                        path: format!("{prefix}{}", f.path),
                        ..f.clone()
                    })
                    .collect(),
            )
        });
    }
    let tree = r.read(&id)?;
    let mut found = Vec::new();
    for n in &tree.nodes {
        let name = n.name_lossy();
        let path = format!("{prefix}/{name}");
        if pattern.matches(&path, &name) {
            found.push(Found {
                path: path.clone(),
                kind: n.kind,
                size: n.size,
                mtime: jiff::Timestamp::from_second(n.mtime_ns.div_euclid(1_000_000_000))
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            });
        }
        if let Some(sub) = n.subtree {
            found.extend(under(r, pattern, sub, &path, cache)?.iter().cloned());
        }
    }
    let found = Arc::new(found);
    let stored = if pattern.whole_path {
        found.clone()
    } else {
        Arc::new(
            found
                .iter()
                .map(|f| Found {
                    path: f.path[prefix.len()..].to_string(),
                    ..f.clone()
                })
                .collect(),
        )
    };
    cache.insert(key, stored);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::backup::{backup, BackupOptions};

    #[test]
    fn names_and_paths() {
        let p = Pattern::new("*.conf").unwrap();
        assert!(p.matches("/etc/a.conf", "a.conf"));
        assert!(p.matches("/etc/x/b.conf", "b.conf"));
        let p = Pattern::new("/etc/*.conf").unwrap();
        assert!(p.matches("/etc/a.conf", "a.conf"));
        assert!(!p.matches("/etc/x/b.conf", "b.conf"));
        let p = Pattern::new("/etc/**/*.conf").unwrap();
        assert!(p.matches("/etc/x/b.conf", "b.conf"));
        assert!(matches!(Pattern::new("a[").unwrap_err(), Error::Usage(_)));
    }

    #[tokio::test]
    async fn matches_across_snapshots_sharing_trees() {
        let repo = crate::repository::test_repository("find-unit").await;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("etc/app")).unwrap();
        std::fs::write(d.join("etc/app/main.conf"), b"a").unwrap();
        std::fs::write(d.join("etc/other.txt"), b"b").unwrap();
        let mut snaps = Vec::new();
        for round in 0..2 {
            if round == 1 {
                std::fs::write(d.join("late.conf"), b"c").unwrap();
            }
            let r = backup(
                &repo,
                BackupOptions {
                    paths: vec![d.to_path_buf()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            snaps.push((r.id, r.snapshot.time.clone(), None, r.snapshot.tree));
        }
        let got = find(&repo, Pattern::new("*.conf").unwrap(), snaps.clone())
            .await
            .unwrap();
        let names = |i: usize| -> Vec<String> {
            got[i]
                .matches
                .iter()
                .map(|f| f.path.rsplit('/').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(names(0), ["main.conf"]);
        let mut second = names(1);
        second.sort();
        assert_eq!(second, ["late.conf", "main.conf"]);
        // The full path of a match found through the cache is right too.
        let root = d.to_string_lossy().into_owned();
        assert!(got[1]
            .matches
            .iter()
            .any(|f| f.path.ends_with(&format!("{root}/etc/app/main.conf"))));
        let whole = format!("{root}/etc/*");
        let got = find(&repo, Pattern::new(&whole).unwrap(), snaps)
            .await
            .unwrap();
        assert_eq!(got[0].matches.len(), 2, "{:?}", got[0].matches);
    }
}
