//! An object of a local repository written in parts, published whole.
//!
//! The object is written to `<path>#<n>` beside its place (the staging name
//! `object_store`'s local store uses, which its listings skip), then synced,
//! renamed into place, and its directory synced: the same durability as
//! [`super::Backend::put`] with fsync, without the whole object in memory.
//! A staged file that is dropped unpublished is removed; one left by a
//! crash is never listed, so no reader sees a part of an object.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A local object being written.
pub(crate) struct StagedFile {
    file: File,
    staging: PathBuf,
    dest: PathBuf,
    /// The object's path in the repository (for errors).
    path: String,
    published: bool,
}

impl StagedFile {
    /// Starts object `path` (relative, of `/`-separated safe names) under
    /// `root`, making its directory if missing.
    pub(super) fn create(root: &Path, path: &str) -> Result<StagedFile> {
        if path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == ".." || c.contains('#'))
        {
            return Err(Error::Internal(format!(
                "not an object path of a local repository: {path:?}"
            )));
        }
        let dest = root.join(path);
        let fail = |op: &'static str| {
            let path = path.to_string();
            move |e: std::io::Error| backend_error(op, &path, e)
        };
        let mut n = 1u32;
        let mut made_dirs = false;
        loop {
            let mut staging = dest.clone().into_os_string();
            staging.push(format!("#{n}"));
            let staging = PathBuf::from(staging);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&staging)
            {
                Ok(file) => {
                    return Ok(StagedFile {
                        file,
                        staging,
                        dest,
                        path: path.to_string(),
                        published: false,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                // Made once: a directory that is gone again (the
                // repository's own, removed) is an error, not a loop.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !made_dirs => {
                    make_dirs(root, &dest).map_err(fail("create the directory of"))?;
                    made_dirs = true;
                }
                Err(e) => return Err(fail("write")(e)),
            }
            if n > 1000 {
                return Err(Error::Internal(format!(
                    "a thousand staged copies of {path} exist already"
                )));
            }
        }
    }

    /// Appends `bytes`.
    ///
    /// # Errors
    /// [`Error::Backend`] naming the object (a full disk, say).
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| backend_error("write", &self.path, e))
    }

    /// Syncs the file, renames it into place and syncs its directory.
    ///
    /// # Errors
    /// [`Error::Backend`] naming the object; the staged file is removed.
    pub(crate) fn publish(mut self) -> Result<()> {
        crate::util::crash_point("store:write");
        let path = self.path.clone();
        let fail = |op: &'static str| {
            let path = path.clone();
            move |e: std::io::Error| backend_error(op, &path, e)
        };
        self.file.sync_all().map_err(fail("sync"))?;
        drop_cached(&self.file);
        std::fs::rename(&self.staging, &self.dest).map_err(fail("publish"))?;
        self.published = true;
        sync_parent(&self.dest).map_err(fail("sync the directory of"))
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.published {
            // Best effort: a staged file left behind is never listed.
            let _ = std::fs::remove_file(&self.staging);
        }
    }
}

/// As the store's own errors: a local write that fails is a backend failure.
fn backend_error(op: &'static str, path: &str, e: std::io::Error) -> Error {
    Error::Backend {
        op,
        path: path.to_string(),
        source: object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        },
    }
}

/// Makes those of the 256 directories `root/folder/00` … `ff` that are
/// missing (and `folder` itself), syncing each parent once when it gained
/// an entry. Objects fan out into them by the first byte of their ID; made
/// on demand, each new one costs a sync of its parent on the thread about
/// to write an object (a backup's pack writer, which holds the pack being
/// filled meanwhile: about 10 ms each on this project's test machines).
///
/// # Errors
/// [`Error::Backend`] naming `folder`.
pub(super) fn make_fanout(root: &Path, folder: &str) -> Result<()> {
    make_fanout_dirs(&root.join(folder))
        .map_err(|e| backend_error("create the directories of", folder, e))
}

fn make_fanout_dirs(base: &Path) -> std::io::Result<()> {
    let made_base = match std::fs::create_dir(base) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e),
    };
    if made_base {
        sync_parent(base)?;
    }
    let mut made = false;
    for byte in 0..=255u8 {
        match std::fs::create_dir(base.join(format!("{byte:02x}"))) {
            Ok(()) => made = true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    if made {
        File::open(base)?.sync_all()?;
    }
    Ok(())
}

/// Makes `dest`'s missing directories under `root`, syncing each new one's
/// parent so the new entries survive a crash.
fn make_dirs(root: &Path, dest: &Path) -> std::io::Result<()> {
    let Some(parent) = dest.parent() else {
        return Ok(());
    };
    let mut missing = Vec::new();
    let mut dir = parent;
    while !dir.exists() && dir != root {
        missing.push(dir);
        match dir.parent() {
            Some(p) => dir = p,
            None => break,
        }
    }
    for d in missing.iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        sync_parent(d)?;
    }
    Ok(())
}

/// Syncs the directory holding `path`, so that its entry survives a crash.
/// Tells the kernel that a synced pack's pages need not stay cached, as
/// borg does with its segments: a backup writes far more than it will read
/// back soon, and a server's page cache is better spent on its own work.
/// Pages freed right away are also the ones the next pack gets; on a VM
/// whose host takes free memory back, fresh pages cost a fault each
/// (`docs/performance.md`, "Scale"). Advice only: an error changes nothing.
fn drop_cached(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise on a descriptor this process owns; no memory is involved.
    let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) => File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_makes_the_256_directories_and_keeps_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        make_fanout(dir.path(), "data").unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 256);
        assert_eq!((names[0].as_str(), names[255].as_str()), ("00", "ff"));
        // A second run over a repository with packs changes nothing.
        let mut f = StagedFile::create(dir.path(), "data/ab/abcd").unwrap();
        f.write_all(b"pack").unwrap();
        f.publish().unwrap();
        make_fanout(dir.path(), "data").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("data/ab/abcd")).unwrap(),
            b"pack"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("data")).unwrap().count(),
            256
        );
    }

    #[test]
    fn parts_are_published_whole_and_a_dropped_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = StagedFile::create(dir.path(), "data/ab/abcd").unwrap();
        f.write_all(b"first ").unwrap();
        f.write_all(b"second").unwrap();
        assert!(!dir.path().join("data/ab/abcd").exists());
        f.publish().unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("data/ab/abcd")).unwrap(),
            b"first second"
        );

        let mut g = StagedFile::create(dir.path(), "data/ab/ef01").unwrap();
        g.write_all(b"partial").unwrap();
        drop(g);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("data/ab"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("abcd")]);
    }

    #[test]
    fn paths_that_could_leave_the_repository_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../x", "data//x", "data/./x", "data/x#1", ""] {
            assert!(StagedFile::create(dir.path(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_repository_directory_that_is_gone_is_an_error_not_a_loop() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        assert!(StagedFile::create(&gone, "data/ab/abcd").is_err());
    }
}
