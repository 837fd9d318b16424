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

/// Opens a file the walk found to be a regular file, without following a
/// symlink or blocking on a FIFO or device put in its place since: a local
/// user who swaps a file for a link to `/etc/shadow`, or for a pipe, between
/// the walk's `lstat` and the read gets that entry skipped, not another
/// file's content in the snapshot or a backup that hangs.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other("it became a symbolic link during the backup")
            } else {
                e
            }
        })?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other(
            "it is no longer a regular file (replaced during the backup)",
        ));
    }
    Ok(file)
}

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
    use std::io::Read;

    #[test]
    fn excludes() {
        let e = Excludes::new(&["*.tmp".into(), "/data/cache/**".into()]).unwrap();
        assert!(e.matches(Path::new("/a/b/x.tmp")));
        assert!(e.matches(Path::new("/data/cache/x/y")));
        assert!(!e.matches(Path::new("/data/keep")));
        assert!(Excludes::new(&["[".into()]).is_err());
    }

    #[test]
    fn a_file_swapped_for_a_link_or_a_pipe_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"not for this tenant").unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"data").unwrap();
        let mut read = String::new();
        open_regular(&file)
            .unwrap()
            .read_to_string(&mut read)
            .unwrap();
        assert_eq!(read, "data");

        // What a local user can put in place of a file the walk has seen.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        let e = open_regular(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");

        // A FIFO with no writer: opening it the usual way blocks for ever.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err();
        assert!(e.to_string().contains("no longer a regular file"), "{e}");
        assert!(open_regular(dir.path()).is_err());
    }
}
