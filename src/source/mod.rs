//! Backup sources: file metadata to tree nodes, excludes, and what a walk needs.
//!
//! The walk itself lives in `commands::backup` (it drives the pipeline); this
//! module turns what the file system says into [`Node`]s and decides what to skip.
//!
//! Layer 4 of `docs/architecture.md`: it uses `secrets`, `repofile`, and nothing of a layer above.

pub(crate) mod command;

use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::repofile::tree::{Node, NodeKind, Xattr};
use crate::{Error, Result};

/// Builds a node (without content or subtree) from `lstat` metadata.
pub(crate) fn node_from_metadata(name: &OsStr, path: &Path, md: &Metadata) -> Node {
    let ft = md.file_type();
    let kind = if ft.is_file() {
        NodeKind::File
    } else if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::CharDev
    } else if ft.is_block_device() {
        NodeKind::BlockDev
    } else {
        NodeKind::Socket
    };
    let target = if kind == NodeKind::Symlink {
        std::fs::read_link(path)
            .map(|t| t.as_os_str().as_bytes().to_vec())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Node {
        name: name.as_bytes().to_vec(),
        kind,
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        mtime_ns: md
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(md.mtime_nsec()),
        ctime_ns: md
            .ctime()
            .saturating_mul(1_000_000_000)
            .saturating_add(md.ctime_nsec()),
        inode: md.ino(),
        device: md.dev(),
        links: md.nlink(),
        size: if kind == NodeKind::File { md.len() } else { 0 },
        content: Vec::new(),
        subtree: None,
        target,
        rdev: md.rdev(),
        xattrs: read_xattrs(path),
    }
}

/// Extended attributes of a path (not following symlinks). Unsupported file
/// systems give none.
pub(crate) fn read_xattrs(path: &Path) -> Vec<Xattr> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|n| {
            let value = xattr::get(path, &n).ok().flatten()?;
            Some(Xattr {
                name: n.as_bytes().to_vec(),
                value,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// True when two nodes describe the same unchanged file (so the parent's chunk
/// list can be reused without reading it): same kind, size, mtime, ctime, inode.
pub(crate) fn unchanged(new: &Node, old: &Node) -> bool {
    new.kind == NodeKind::File
        && old.kind == NodeKind::File
        && new.size == old.size
        && new.mtime_ns == old.mtime_ns
        && new.ctime_ns == old.ctime_ns
        && new.inode == old.inode
        && (new.size == 0 || !old.content.is_empty())
}

/// Exclude patterns. A pattern with a `/` matches the whole absolute path; one
/// without matches the entry's name at any depth (as in restic and rsync).
#[derive(Debug, Clone)]
pub(crate) struct Excludes {
    by_path: GlobSet,
    by_name: GlobSet,
}

impl Excludes {
    /// Compiles patterns.
    ///
    /// # Errors
    /// [`Error::Usage`] for an invalid glob.
    pub(crate) fn new(patterns: &[String]) -> Result<Self> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in patterns {
            let g = Glob::new(p)
                .map_err(|e| Error::Usage(format!("invalid exclude pattern {p:?}: {e}")))?;
            if p.contains('/') {
                by_path.add(g);
            } else {
                by_name.add(g);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::Usage(format!("invalid exclude patterns: {e}")))
        };
        Ok(Excludes {
            by_path: build(by_path)?,
            by_name: build(by_name)?,
        })
    }

    /// True when the path is excluded.
    pub(crate) fn matches(&self, path: &Path) -> bool {
        self.by_path.is_match(path) || path.file_name().is_some_and(|n| self.by_name.is_match(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes() {
        let e = Excludes::new(&["*.tmp".into(), "/data/cache/**".into()]).unwrap();
        assert!(e.matches(Path::new("/a/b/x.tmp")));
        assert!(e.matches(Path::new("/data/cache/x/y")));
        assert!(!e.matches(Path::new("/data/keep")));
        assert!(Excludes::new(&["[".into()]).is_err());
    }
}
