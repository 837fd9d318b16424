//! Backup sources: file metadata to tree nodes, excludes, and what a walk needs.
//!
//! The walk itself lives in `commands::backup` (it drives the pipeline); this
//! module turns what the file system says into [`Node`]s and decides what to skip.
//!
//! Layer 4 of `docs/architecture.md`: it uses `secrets`, `repofile`, and nothing of a layer above.

pub(crate) mod command;
pub mod database;
pub mod image;

use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use globset::{GlobSet, GlobSetBuilder};

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

/// What a backup leaves out, as given (restic's options of the same names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcludeOptions {
    /// Globs (`--exclude`, `--exclude-file`): with a `/` they match the whole
    /// absolute path, without one the entry's name at any depth.
    pub patterns: Vec<String>,
    /// The same, case-insensitive (`--iexclude`).
    pub ipatterns: Vec<String>,
    /// Leave out a directory holding a file of this name
    /// (`--exclude-if-present NAME[:HEADER]`: with a header, only when the
    /// file starts with it).
    pub if_present: Vec<String>,
    /// Leave out cache directories (a `CACHEDIR.TAG` with the standard
    /// signature, bford.info/cachedir).
    pub caches: bool,
    /// Leave out files larger than this many bytes.
    pub larger_than: Option<u64>,
    /// Do not descend into other file systems: a mount point is kept as an
    /// empty directory.
    pub one_file_system: bool,
}

/// The signature a cache directory's `CACHEDIR.TAG` starts with.
pub(crate) const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// [`ExcludeOptions`] compiled. A pattern with a `/` matches the whole
/// absolute path; one without matches the entry's name at any depth (as in
/// restic and rsync).
#[derive(Debug, Clone)]
pub(crate) struct Excludes {
    by_path: GlobSet,
    by_name: GlobSet,
    /// (file name, header it must start with).
    markers: Vec<(std::ffi::OsString, Option<Vec<u8>>)>,
    larger_than: Option<u64>,
    one_file_system: bool,
}

impl Excludes {
    /// Compiles patterns (case-sensitive only; see [`Excludes::from_options`]).
    ///
    /// # Errors
    /// [`Error::Usage`] for an invalid glob.
    #[cfg(test)]
    pub(crate) fn new(patterns: &[String]) -> Result<Self> {
        Self::from_options(&ExcludeOptions {
            patterns: patterns.to_vec(),
            ..Default::default()
        })
    }

    /// Compiles every rule of `o`.
    ///
    /// # Errors
    /// [`Error::Usage`] for an invalid glob or an empty marker name.
    pub(crate) fn from_options(o: &ExcludeOptions) -> Result<Self> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        let tagged = o
            .patterns
            .iter()
            .map(|p| (p, false))
            .chain(o.ipatterns.iter().map(|p| (p, true)));
        for (p, insensitive) in tagged {
            let g = globset::GlobBuilder::new(p)
                .case_insensitive(insensitive)
                .build()
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
        let mut markers = Vec::new();
        for m in &o.if_present {
            let (name, header) = match m.split_once(':') {
                Some((n, h)) => (n, Some(h.as_bytes().to_vec())),
                None => (m.as_str(), None),
            };
            if name.is_empty() || name.contains('/') {
                return Err(Error::Usage(format!(
                    "--exclude-if-present {m:?}: give a file name (and optionally :HEADER)"
                )));
            }
            markers.push((name.into(), header));
        }
        if o.caches {
            markers.push(("CACHEDIR.TAG".into(), Some(CACHEDIR_SIGNATURE.to_vec())));
        }
        Ok(Excludes {
            by_path: build(by_path)?,
            by_name: build(by_name)?,
            markers,
            larger_than: o.larger_than,
            one_file_system: o.one_file_system,
        })
    }

    /// True when the path is excluded by a pattern.
    pub(crate) fn matches(&self, path: &Path) -> bool {
        self.by_path.is_match(path) || path.file_name().is_some_and(|n| self.by_name.is_match(n))
    }

    /// True when a file of `size` bytes is too large to back up.
    pub(crate) fn too_large(&self, size: u64) -> bool {
        self.larger_than.is_some_and(|l| size > l)
    }

    /// Whether the walk stays on one file system.
    pub(crate) fn one_file_system(&self) -> bool {
        self.one_file_system
    }

    /// True when directory `dir` holds one of the marker files (with its
    /// header, when one is asked): the directory is left out.
    pub(crate) fn marked(&self, dir: &Path) -> bool {
        self.markers.iter().any(|(name, header)| {
            let p = dir.join(name);
            match header {
                None => std::fs::symlink_metadata(&p).is_ok(),
                Some(h) => {
                    let Ok(f) = open_regular(&p) else {
                        return false;
                    };
                    let mut buf = vec![0u8; h.len()];
                    std::io::Read::read_exact(&mut &f, &mut buf).is_ok() && buf == *h
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn exclude_rules() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let fake = dir.path().join("fake");
        let marked = dir.path().join("marked");
        for d in [&cache, &fake, &marked] {
            std::fs::create_dir(d).unwrap();
        }
        let mut tag = CACHEDIR_SIGNATURE.to_vec();
        tag.extend_from_slice(b"\n# a cache\n");
        std::fs::write(cache.join("CACHEDIR.TAG"), &tag).unwrap();
        std::fs::write(fake.join("CACHEDIR.TAG"), b"not a signature").unwrap();
        std::fs::write(marked.join(".nobackup"), b"").unwrap();
        let e = Excludes::from_options(&ExcludeOptions {
            ipatterns: vec!["*.LOG".into()],
            if_present: vec![".nobackup".into()],
            caches: true,
            larger_than: Some(100),
            ..Default::default()
        })
        .unwrap();
        assert!(e.matches(Path::new("/x/app.log")) && e.matches(Path::new("/x/APP.Log")));
        assert!(e.marked(&cache), "a real cache directory");
        assert!(!e.marked(&fake), "a tag without the signature");
        assert!(e.marked(&marked));
        assert!(e.too_large(101) && !e.too_large(100));
        assert!(Excludes::from_options(&ExcludeOptions {
            if_present: vec![":x".into()],
            ..Default::default()
        })
        .is_err());
    }

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
