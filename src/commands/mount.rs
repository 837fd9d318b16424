//! `custos mount DIR`: every snapshot, read-only, through FUSE.
//!
//! | path | what |
//! |---|---|
//! | `snapshots/<time>` | each snapshot's tree, named by its time (`2026-12-04T01:00:00Z`; `-<id>` added when two share a second) |
//! | `snapshots/latest` | a link to the newest |
//! | `services/<service>/<time>` | links to the service's snapshots, and `latest` |
//! | `ids/<short id>` | a link to the snapshot with that ID |
//! | `latest` | a link to the newest snapshot of all |
//!
//! File content is read blob by blob through the repository's verified read
//! path (the blob is authenticated, decrypted, decompressed and its ID
//! checked, as a restore does); a blob that fails reads as an I/O error,
//! never as wrong bytes. The mount is read-only and `nosuid`, `nodev`: a
//! snapshot's setuid binaries and device nodes grant nothing on the host
//! that mounts it. Only the user who mounted it may enter (FUSE's default).
//!
//! Directory listings are read when first entered; what was looked at stays
//! known (an inode per entry seen) until the mount ends.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};

use crate::id::{BlobId, SnapshotId};
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::{Node, NodeKind};
use crate::repository::IndexedRepository;
use crate::{Error, Result};

/// Attributes and entries may be cached this long by the kernel: nothing
/// in a mount changes.
const TTL: Duration = Duration::from_secs(3600);
/// Decoded blobs kept for sequential reads.
const CACHED_BLOBS: usize = 4;

/// What an inode is.
#[derive(Debug)]
enum Kind {
    /// A directory of the mount's own (`/`, `snapshots`, ...) with fixed
    /// children.
    Fixed(Vec<(Vec<u8>, u64)>),
    /// A link of the mount's own.
    Link(Vec<u8>),
    /// A snapshot's directory: its tree, listed when first entered.
    Tree {
        tree: BlobId,
        children: Option<Vec<(Vec<u8>, u64)>>,
    },
    /// Any other entry of a snapshot (file, link, device, FIFO).
    Entry {
        /// Where each blob of a file starts (read on first use).
        offsets: Option<Vec<u64>>,
    },
}

#[derive(Debug)]
struct Inode {
    attr: FileAttr,
    kind: Kind,
    /// The snapshot node behind it (for entries of a snapshot).
    node: Option<Node>,
}

/// The mounted view of a repository's snapshots.
pub struct SnapshotFs {
    repo: IndexedRepository,
    handle: tokio::runtime::Handle,
    inodes: RwLock<Vec<Inode>>,
    blobs: Mutex<Vec<(BlobId, std::sync::Arc<Vec<u8>>)>>,
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn dir_attr(ino: u64, mtime: SystemTime, uid: u32, gid: u32) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: mtime,
        mtime,
        ctime: mtime,
        crtime: mtime,
        kind: FileType::Directory,
        perm: 0o555,
        nlink: 2,
        uid,
        gid,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

fn link_attr(ino: u64, target: &[u8], mtime: SystemTime, uid: u32, gid: u32) -> FileAttr {
    FileAttr {
        size: target.len() as u64,
        kind: FileType::Symlink,
        perm: 0o777,
        nlink: 1,
        ..dir_attr(ino, mtime, uid, gid)
    }
}

fn node_attr(ino: u64, n: &Node) -> FileAttr {
    let kind = match n.kind {
        NodeKind::Dir => FileType::Directory,
        NodeKind::File => FileType::RegularFile,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::CharDev => FileType::CharDevice,
        NodeKind::BlockDev => FileType::BlockDevice,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
    };
    let size = match n.kind {
        NodeKind::File => n.size,
        NodeKind::Symlink => n.target.len() as u64,
        _ => 0,
    };
    let mtime = time_of(n.mtime_ns);
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: time_of(n.ctime_ns),
        crtime: mtime,
        kind,
        perm: (n.mode & 0o7777) as u16,
        nlink: if n.kind == NodeKind::Dir { 2 } else { 1 },
        uid: n.uid,
        gid: n.gid,
        rdev: n.rdev as u32,
        flags: 0,
        blksize: 4096,
    }
}

/// The names snapshots get under `snapshots/`: their time, to the second,
/// with the short ID added when two fall in the same second.
pub fn snapshot_names(snaps: &[(SnapshotId, Snapshot)]) -> Vec<String> {
    let times: Vec<String> = snaps
        .iter()
        .map(|(_, s)| s.timestamp().strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for t in &times {
        *count.entry(t.as_str()).or_default() += 1;
    }
    times
        .iter()
        .zip(snaps)
        .map(|(t, (id, _))| {
            if count[t.as_str()] > 1 {
                format!("{t}-{}", id.short())
            } else {
                t.clone()
            }
        })
        .collect()
}

impl SnapshotFs {
    /// The view of `snaps` (oldest first) in `repo`; reads go through
    /// `handle`'s runtime.
    pub fn new(
        repo: IndexedRepository,
        handle: tokio::runtime::Handle,
        snaps: &[(SnapshotId, Snapshot)],
    ) -> SnapshotFs {
        // SAFETY: getuid/getgid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let newest = snaps.last().map_or(UNIX_EPOCH, |(_, s)| {
            time_of(s.timestamp().as_nanosecond() as i64)
        });
        let names = snapshot_names(snaps);
        let mut inodes: Vec<Inode> = Vec::new();
        fn push(inodes: &mut Vec<Inode>, mut attr: FileAttr, kind: Kind) -> u64 {
            let ino = inodes.len() as u64;
            attr.ino = INodeNo(ino);
            inodes.push(Inode {
                attr,
                kind,
                node: None,
            });
            ino
        }
        let dir = |t| dir_attr(0, t, uid, gid);
        let link = |inodes: &mut Vec<Inode>, target: String| {
            let t = target.into_bytes();
            push(inodes, link_attr(0, &t, newest, uid, gid), Kind::Link(t))
        };
        // Inode 0 is unused (FUSE's root is 1): a placeholder keeps the
        // vector's index equal to the inode number.
        push(&mut inodes, dir(newest), Kind::Fixed(Vec::new()));
        let root = push(&mut inodes, dir(newest), Kind::Fixed(Vec::new()));
        // snapshots/<time>, and latest
        let mut by_time = Vec::new();
        for ((_, s), name) in snaps.iter().zip(&names) {
            let t = time_of(s.timestamp().as_nanosecond() as i64);
            let tree = Kind::Tree {
                tree: s.tree,
                children: None,
            };
            let ino = push(&mut inodes, dir(t), tree);
            by_time.push((name.clone().into_bytes(), ino));
        }
        if let Some(last) = names.last() {
            let l = link(&mut inodes, last.clone());
            by_time.push((b"latest".to_vec(), l));
        }
        // ids/<short id>
        let mut ids = Vec::new();
        for ((id, _), name) in snaps.iter().zip(&names) {
            let l = link(&mut inodes, format!("../snapshots/{name}"));
            ids.push((id.short().into_bytes(), l));
        }
        // services/<service>/<time>, and latest
        let mut services: std::collections::BTreeMap<String, Vec<(Vec<u8>, u64)>> =
            Default::default();
        for ((_, s), name) in snaps.iter().zip(&names) {
            if let Some(svc) = &s.service {
                let l = link(&mut inodes, format!("../../snapshots/{name}"));
                services
                    .entry(svc.clone())
                    .or_default()
                    .push((name.clone().into_bytes(), l));
            }
        }
        let mut service_dirs = Vec::new();
        for (svc, mut list) in services {
            if let Some((newest_name, _)) = list.last() {
                let target = format!("../../snapshots/{}", String::from_utf8_lossy(newest_name));
                let l = link(&mut inodes, target);
                list.push((b"latest".to_vec(), l));
            }
            let ino = push(&mut inodes, dir(newest), Kind::Fixed(list));
            service_dirs.push((svc.into_bytes(), ino));
        }
        let snapshots_dir = push(&mut inodes, dir(newest), Kind::Fixed(by_time));
        let services_dir = push(&mut inodes, dir(newest), Kind::Fixed(service_dirs));
        let ids_dir = push(&mut inodes, dir(newest), Kind::Fixed(ids));
        let mut top = vec![
            (b"snapshots".to_vec(), snapshots_dir),
            (b"services".to_vec(), services_dir),
            (b"ids".to_vec(), ids_dir),
        ];
        if let Some(last) = names.last() {
            let l = link(&mut inodes, format!("snapshots/{last}"));
            top.push((b"latest".to_vec(), l));
        }
        inodes[root as usize].kind = Kind::Fixed(top);
        SnapshotFs {
            repo,
            handle,
            inodes: RwLock::new(inodes),
            blobs: Mutex::new(Vec::new()),
        }
    }

    fn read_inodes(&self) -> std::sync::RwLockReadGuard<'_, Vec<Inode>> {
        self.inodes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_inodes(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Inode>> {
        self.inodes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The children of directory `ino`, listing a snapshot's tree the
    /// first time.
    fn children(&self, ino: u64) -> std::result::Result<Vec<(Vec<u8>, u64)>, Errno> {
        let tree = {
            let inodes = self.read_inodes();
            let i = inodes.get(ino as usize).ok_or(Errno::ENOENT)?;
            match &i.kind {
                Kind::Fixed(c) => return Ok(c.clone()),
                Kind::Tree {
                    children: Some(c), ..
                } => return Ok(c.clone()),
                Kind::Tree { tree, .. } => *tree,
                _ => return Err(Errno::ENOTDIR),
            }
        };
        let listed = self
            .handle
            .block_on(self.repo.read_tree(&tree))
            .map_err(|e| {
                tracing::warn!(error = %e, "mount: cannot read a directory");
                Errno::EIO
            })?;
        let mut inodes = self.write_inodes();
        // Another thread may have listed it meanwhile.
        if let Some(Inode {
            kind: Kind::Tree {
                children: Some(c), ..
            },
            ..
        }) = inodes.get(ino as usize)
        {
            return Ok(c.clone());
        }
        let mut out = Vec::with_capacity(listed.nodes.len());
        for n in listed.nodes {
            let child = inodes.len() as u64;
            let attr = node_attr(child, &n);
            let kind = match n.subtree {
                Some(t) if n.kind == NodeKind::Dir => Kind::Tree {
                    tree: t,
                    children: None,
                },
                _ => Kind::Entry { offsets: None },
            };
            out.push((n.name.clone(), child));
            inodes.push(Inode {
                attr,
                kind,
                node: Some(n),
            });
        }
        if let Some(Inode {
            kind: Kind::Tree { children, .. },
            ..
        }) = inodes.get_mut(ino as usize)
        {
            *children = Some(out.clone());
        }
        Ok(out)
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        self.read_inodes().get(ino as usize).map(|i| i.attr)
    }

    /// A decoded blob, from the small cache or the repository.
    fn blob(&self, id: &BlobId) -> Result<std::sync::Arc<Vec<u8>>> {
        {
            let cache = self
                .blobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((_, b)) = cache.iter().find(|(i, _)| i == id) {
                return Ok(b.clone());
            }
        }
        let data = std::sync::Arc::new(self.handle.block_on(self.repo.read_blob(id))?);
        let mut cache = self
            .blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHED_BLOBS {
            cache.remove(0);
        }
        cache.push((*id, data.clone()));
        Ok(data)
    }

    /// Bytes `offset..offset + size` of file `ino`.
    fn read_file(&self, ino: u64, offset: u64, size: u32) -> std::result::Result<Vec<u8>, Errno> {
        let (content, file_size, known) = {
            let inodes = self.read_inodes();
            let i = inodes.get(ino as usize).ok_or(Errno::ENOENT)?;
            let n = i.node.as_ref().ok_or(Errno::EISDIR)?;
            if n.kind != NodeKind::File {
                return Err(Errno::EINVAL);
            }
            let known = match &i.kind {
                Kind::Entry { offsets } => offsets.clone(),
                _ => None,
            };
            (n.content.clone(), n.size, known)
        };
        let offsets = match known {
            Some(o) => o,
            None => {
                let mut o = Vec::with_capacity(content.len() + 1);
                let mut at = 0u64;
                for id in &content {
                    o.push(at);
                    at += u64::from(self.repo.locate(id).map_err(|_| Errno::EIO)?.raw_len);
                }
                o.push(at);
                if let Some(Inode {
                    kind: Kind::Entry { offsets },
                    ..
                }) = self.write_inodes().get_mut(ino as usize)
                {
                    *offsets = Some(o.clone());
                }
                o
            }
        };
        let end = (offset + u64::from(size)).min(file_size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        while pos < end {
            // The blob holding `pos`.
            let i = match offsets.binary_search(&pos) {
                Ok(i) => i,
                Err(i) => i - 1,
            };
            let Some(id) = content.get(i) else { break };
            let data = self.blob(id).map_err(|e| {
                tracing::warn!(blob = %id, error = %e, "mount: a blob does not read");
                Errno::EIO
            })?;
            let from = (pos - offsets[i]) as usize;
            let to = ((end - offsets[i]) as usize).min(data.len());
            if from >= to {
                return Err(Errno::EIO);
            }
            out.extend_from_slice(&data[from..to]);
            pos += (to - from) as u64;
        }
        Ok(out)
    }
}

impl Filesystem for SnapshotFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.children(u64::from(parent)) {
            Ok(children) => {
                match children
                    .iter()
                    .find(|(n, _)| n.as_slice() == name.as_bytes())
                    .and_then(|(_, ino)| self.attr(*ino))
                {
                    Some(attr) => reply.entry(&TTL, &attr, fuser::Generation(0)),
                    None => reply.error(Errno::ENOENT),
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(u64::from(ino)) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let inodes = self.read_inodes();
        match inodes.get(u64::from(ino) as usize) {
            Some(Inode {
                kind: Kind::Link(t),
                ..
            }) => reply.data(t),
            Some(Inode { node: Some(n), .. }) if n.kind == NodeKind::Symlink => {
                reply.data(&n.target)
            }
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = (flags.0 & libc::O_ACCMODE) != libc::O_RDONLY;
        if write {
            return reply.error(Errno::EROFS);
        }
        match self.attr(u64::from(ino)) {
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.read_file(u64::from(ino), offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let children = match self.children(u64::from(ino)) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let mut all: Vec<(u64, FileType, Vec<u8>)> = vec![
            (u64::from(ino), FileType::Directory, b".".to_vec()),
            (u64::from(ino), FileType::Directory, b"..".to_vec()),
        ];
        for (name, child) in children {
            let kind = self.attr(child).map_or(FileType::RegularFile, |a| a.kind);
            all.push((child, kind, name));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(child),
                (i + 1) as u64,
                kind,
                OsStr::from_bytes(&name),
            ) {
                break;
            }
        }
        reply.ok();
    }
}

/// Mounts `snaps` of `repo` at `dir` until `stop` resolves (or the mount is
/// taken away with `fusermount3 -u`), then unmounts.
///
/// # Errors
/// [`Error::Usage`] for a mount point that is not an empty directory;
/// [`Error::Io`] when FUSE cannot mount (no `/dev/fuse`, no `fusermount3`).
pub async fn mount(
    repo: IndexedRepository,
    snaps: Vec<(SnapshotId, Snapshot)>,
    dir: &std::path::Path,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let md = std::fs::metadata(dir).map_err(crate::error::at("cannot use the mount point", dir))?;
    if !md.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let fs = SnapshotFs::new(repo, tokio::runtime::Handle::current(), &snaps);
    let mut cfg = fuser::Config::default();
    cfg.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoDev,
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::FSName("custos".into()),
        fuser::MountOption::Subtype("custos".into()),
    ];
    cfg.n_threads = Some(2);
    let session = tokio::task::spawn_blocking({
        let dir = dir.to_path_buf();
        move || fuser::spawn_mount(fs, &dir, &cfg)
    })
    .await
    .map_err(|e| Error::Internal(format!("mount stopped: {e}")))?
    .map_err(|e| {
        Error::io(
            format!(
                "cannot mount at {} (is fuse3 installed and /dev/fuse usable?)",
                dir.display()
            ),
            e,
        )
    })?;
    // Until asked to stop, or until the mount goes away on its own.
    let ended = async {
        while !session.guard.is_finished() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        () = stop => {}
        () = ended => {}
    }
    tokio::task::spawn_blocking(move || session.umount_and_join())
        .await
        .map_err(|e| Error::Internal(format!("unmount stopped: {e}")))?
        .map_err(|e| Error::io(format!("cannot unmount {}", dir.display()), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_times_and_ids_break_ties() {
        let mk = |t: &str| Snapshot {
            time: t.into(),
            tree: BlobId([0; 32]),
            paths: Vec::new(),
            hostname: String::new(),
            username: String::new(),
            service: None,
            tenant: None,
            tags: Vec::new(),
            parent: None,
            stream: false,
            original: None,
            index: Vec::new(),
            program: String::new(),
            summary: Default::default(),
        };
        let (a, b, c) = (
            SnapshotId::random(),
            SnapshotId::random(),
            SnapshotId::random(),
        );
        let snaps = vec![
            (a, mk("2026-12-01T01:00:00.2Z")),
            (b, mk("2026-12-01T01:00:00.7Z")),
            (c, mk("2026-12-02T01:00:00Z")),
        ];
        let names = snapshot_names(&snaps);
        assert_eq!(names[0], format!("2026-12-01T01:00:00Z-{}", a.short()));
        assert_eq!(names[1], format!("2026-12-01T01:00:00Z-{}", b.short()));
        assert_eq!(names[2], "2026-12-02T01:00:00Z");
    }
}
