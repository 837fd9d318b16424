//! The restore target as a tree of open directories: every operation is
//! relative to an open directory descriptor and names exactly one component,
//! so nothing a restore does can follow a symlink or leave the target.
//!
//! | operation | how | why it cannot escape |
//! |---|---|---|
//! | open a directory or file | `openat2(dir, name, RESOLVE_BENEATH \| RESOLVE_NO_SYMLINKS \| RESOLVE_NO_MAGICLINKS)`, or `openat(O_NOFOLLOW)` where the kernel has no `openat2` | one component, validated when the tree was decoded (no `/`, `.`, `..`); a symlink there fails with `ELOOP` |
//! | create | `mkdirat`, `symlinkat`, `mknodat`, `openat(O_CREAT \| O_EXCL)` | these never follow a symlink at the new name; an entry in the way is unlinked first (a directory in the way of a non-directory is reported, not removed) |
//! | replace a file | content goes into a new file under a temporary name, then `renameat` over the old name | the old name is replaced, not written through: a symlink or a hard link to an outside file that stood there is left untouched |
//! | metadata | `fchown`, `fchmod`, `fsetxattr`, `futimens` on the open descriptor; for symlinks and special files `fchownat` / `utimensat` with `AT_SYMLINK_NOFOLLOW` | nothing is resolved by path |
//!
//! Paths of any length work: no operation ever takes more than one component.
//! Directories are created `0700` and get their own mode last, so nobody else
//! can enter them while the restore writes.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};

/// Open directory descriptors kept at once by all the restores of this
/// process together (the daemon runs several): half of what the soft
/// descriptor limit leaves after 256 for everything else, at least 64 (384
/// under the common default limit of 1 024; 32 640 under the packaged
/// units' 65 536). A restore of a tree with more directories reopens
/// evicted ones (one `openat` per component from the nearest cached
/// ancestor). The writers take the packs in ID order, not the tree's, so a
/// cache smaller than the tree, cleared when full, reopened each directory
/// about four times (14 400 opens for 3 232 directories).
fn dirs_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        usize::try_from(soft.saturating_sub(256) / 2)
            .unwrap_or(usize::MAX)
            .max(MIN_CACHED_DIRS)
    })
}

/// Directories one restore keeps open at most, and at least (whatever the
/// others hold).
const MAX_CACHED_DIRS: usize = 8192;
const MIN_CACHED_DIRS: usize = 64;

/// Directory descriptors all [`DirCache`]s of the process hold.
static CACHED_DIRS: AtomicUsize = AtomicUsize::new(0);

/// The open directories of one restore and when each was last used.
struct DirCache {
    open: HashMap<usize, (Arc<OwnedFd>, u64)>,
    uses: u64,
    /// At most this many of its own ([`MAX_CACHED_DIRS`]).
    capacity: usize,
}

impl DirCache {
    fn new(capacity: usize) -> DirCache {
        DirCache {
            open: HashMap::new(),
            uses: 0,
            capacity,
        }
    }

    fn get(&mut self, slot: usize) -> Option<Arc<OwnedFd>> {
        self.uses += 1;
        let uses = self.uses;
        self.open.get_mut(&slot).map(|(fd, used)| {
            *used = uses;
            fd.clone()
        })
    }

    /// Adds `fd`; when this cache is full, or the process's budget is spent
    /// and this cache holds twice its minimum or more, first closes the half
    /// used longest ago (the directories the writers moved on from, not the
    /// ones they are in).
    fn insert(&mut self, slot: usize, fd: Arc<OwnedFd>) {
        self.insert_within(slot, fd, dirs_budget());
    }

    /// [`DirCache::insert`] with the process's budget given.
    fn insert_within(&mut self, slot: usize, fd: Arc<OwnedFd>, budget: usize) {
        // Halving never takes a cache below its minimum.
        let over_budget =
            CACHED_DIRS.load(Ordering::Relaxed) >= budget && self.open.len() >= 2 * MIN_CACHED_DIRS;
        if self.open.len() >= self.capacity || over_budget {
            let mut used: Vec<u64> = self.open.values().map(|(_, u)| *u).collect();
            // The newest of the older half: it and everything older go.
            let oldest_half = (used.len() / 2).saturating_sub(1);
            let (_, &mut cut, _) = used.select_nth_unstable(oldest_half);
            let before = self.open.len();
            self.open.retain(|_, (_, u)| *u > cut);
            CACHED_DIRS.fetch_sub(before - self.open.len(), Ordering::Relaxed);
        }
        self.uses += 1;
        if self.open.insert(slot, (fd, self.uses)).is_none() {
            CACHED_DIRS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for DirCache {
    fn drop(&mut self) {
        CACHED_DIRS.fetch_sub(self.open.len(), Ordering::Relaxed);
    }
}

/// Set once `openat2` turned out to be missing (kernels before 5.6, some
/// seccomp filters): `openat` with `O_NOFOLLOW` on one component gives the
/// same guarantee.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// One directory of the restore: its parent's slot and its name. Slot 0 is
/// the target itself.
#[derive(Debug, Clone)]
pub(super) struct DirSlot {
    /// Slot of the parent (0 for entries of the target itself).
    pub parent: usize,
    /// Name inside the parent (empty for slot 0).
    pub name: Vec<u8>,
}

/// The snapshot path (`/a/b/name`) of entry `name` of directory `slot`:
/// computed when a message needs it rather than kept for every entry.
pub(super) fn path_in(slots: &[DirSlot], slot: usize, name: &[u8]) -> String {
    let mut names = vec![name];
    let mut at = slot;
    while at != 0 {
        match slots.get(at) {
            Some(s) => {
                names.push(&s.name);
                at = s.parent;
            }
            None => break,
        }
    }
    let mut path = String::new();
    for n in names.iter().rev() {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(n));
    }
    path
}

/// The target directory and descriptors of the directories under it.
pub(super) struct TargetDirs {
    slots: Vec<DirSlot>,
    root: Arc<OwnedFd>,
    cache: Mutex<DirCache>,
}

impl TargetDirs {
    /// Opens `path` (created when missing) as the root of `slots`.
    ///
    /// The path itself is the operator's choice and resolved normally;
    /// everything below it is resolved by this type only.
    pub(super) fn open(path: &Path, slots: Vec<DirSlot>) -> io::Result<TargetDirs> {
        std::fs::create_dir_all(path)?;
        let root = rustix::fs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(TargetDirs {
            slots,
            root: Arc::new(root),
            cache: Mutex::new(DirCache::new(MAX_CACHED_DIRS)),
        })
    }

    /// The snapshot path of entry `name` of directory `slot` (see [`path_in`]).
    pub(super) fn snapshot_path(&self, slot: usize, name: &[u8]) -> String {
        path_in(&self.slots, slot, name)
    }

    /// The target directory.
    pub(super) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The directory slots.
    #[cfg(test)]
    pub(super) fn slot(&self, i: usize) -> &DirSlot {
        &self.slots[i]
    }

    /// Remembers the descriptor of a directory just created or checked.
    pub(super) fn remember(&self, slot: usize, fd: OwnedFd) -> Arc<OwnedFd> {
        let fd = Arc::new(fd);
        crate::util::lock(&self.cache).insert(slot, fd.clone());
        fd
    }

    /// The open directory of `slot`, opening it (and any ancestor not
    /// cached) one component at a time, never following a symlink.
    pub(super) fn dir(&self, slot: usize) -> io::Result<Arc<OwnedFd>> {
        if slot == 0 {
            return Ok(self.root.clone());
        }
        // Walk up to the nearest cached ancestor, then open down from it.
        let mut chain = Vec::new();
        let mut at = slot;
        let base = loop {
            if at == 0 {
                break self.root.clone();
            }
            if let Some(fd) = crate::util::lock(&self.cache).get(at) {
                break fd;
            }
            chain.push(at);
            at = self.slots[at].parent;
        };
        let mut fd = base;
        for &s in chain.iter().rev() {
            let next = open_child(
                fd.as_fd(),
                &self.slots[s].name,
                OFlags::DIRECTORY | OFlags::RDONLY,
                Mode::empty(),
            )?;
            fd = self.remember(s, next);
        }
        Ok(fd)
    }
}

/// Opens the single component `name` of `dir` without following symlinks,
/// with `openat2` (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS`) where the kernel has it.
pub(super) fn open_child(
    dir: BorrowedFd<'_>,
    name: &[u8],
    flags: OFlags,
    mode: Mode,
) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        match rustix::fs::openat2(
            dir,
            name,
            flags,
            mode,
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(rustix::io::Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            // openat2 refuses unknown flags with EINVAL where openat would
            // ignore them; so does an old kernel's seccomp stub.
            Err(rustix::io::Errno::INVAL) => {}
            r => return r.map_err(io::Error::from),
        }
    }
    Ok(rustix::fs::openat(dir, name, flags, mode)?)
}

/// What stands at `name` in `dir`, without following a symlink (`None`:
/// nothing).
pub(super) fn lstat_child(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The file type of a `stat` result.
pub(super) fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// Makes room for a new non-directory entry at `name`: whatever stands
/// there (a file, a symlink, a special file) is unlinked, never followed. A
/// directory in the way is left alone and reported.
pub(super) fn clear_for_entry(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match lstat_child(dir, name)? {
        None => Ok(()),
        Some(st) if file_type(&st) == FileType::Directory => Err(io::Error::other(
            "a directory is in the way (it is left as it is)",
        )),
        Some(_) => match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        },
    }
}

/// Creates (or, in an occupied target, reuses) the directory `name` of
/// `dir` and opens it. A non-directory in the way, a symlink included, is
/// unlinked and replaced by a real directory; an existing real directory is
/// reused and made writable and searchable by its owner until the restore
/// sets its mode.
pub(super) fn make_dir(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let open = || open_child(dir, name, OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty());
    match rustix::fs::mkdirat(dir, name, Mode::RWXU) {
        Ok(()) => return open(),
        Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    match lstat_child(dir, name)? {
        Some(st) if file_type(&st) == FileType::Directory => {
            let fd = open()?;
            let st = rustix::fs::fstat(&fd)?;
            let owner = Mode::RWXU.bits();
            if st.st_mode & owner != owner && st.st_uid == rustix::process::geteuid().as_raw() {
                rustix::fs::fchmod(&fd, Mode::from_raw_mode((st.st_mode | owner) & 0o7777))?;
            }
            Ok(fd)
        }
        _ => {
            clear_for_entry(dir, name)?;
            rustix::fs::mkdirat(dir, name, Mode::RWXU)?;
            open()
        }
    }
}

/// Creates a new, empty file at `name` (`O_CREAT | O_EXCL`, mode 0600),
/// unlinking a leftover of the same name first.
pub(super) fn create_file(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<std::fs::File> {
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR;
    let fd = match open_child(dir, name, flags, Mode::RUSR | Mode::WUSR) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            clear_for_entry(dir, name)?;
            open_child(dir, name, flags, Mode::RUSR | Mode::WUSR)?
        }
        r => r?,
    };
    Ok(std::fs::File::from(fd))
}

/// Creates the symlink `name` → `target` in `dir`, replacing a
/// non-directory in the way.
pub(super) fn make_symlink(dir: BorrowedFd<'_>, name: &[u8], target: &[u8]) -> io::Result<()> {
    match rustix::fs::symlinkat(target, dir, name) {
        Err(rustix::io::Errno::EXIST) => {
            clear_for_entry(dir, name)?;
            Ok(rustix::fs::symlinkat(target, dir, name)?)
        }
        r => Ok(r?),
    }
}

/// Creates the special file `name` in `dir`, replacing a non-directory in
/// the way.
pub(super) fn make_node(
    dir: BorrowedFd<'_>,
    name: &[u8],
    kind: FileType,
    mode: u32,
    rdev: u64,
) -> io::Result<()> {
    let mode = Mode::from_raw_mode(mode & 0o777);
    match rustix::fs::mknodat(dir, name, kind, mode, rdev) {
        Err(rustix::io::Errno::EXIST) => {
            clear_for_entry(dir, name)?;
            Ok(rustix::fs::mknodat(dir, name, kind, mode, rdev)?)
        }
        r => Ok(r?),
    }
}

/// Makes `name` in `dir` a hard link to `from_name` in `from_dir` (not
/// following a symlink at either), replacing a non-directory in the way.
pub(super) fn make_hardlink(
    from_dir: BorrowedFd<'_>,
    from_name: &[u8],
    dir: BorrowedFd<'_>,
    name: &[u8],
) -> io::Result<()> {
    match rustix::fs::linkat(from_dir, from_name, dir, name, AtFlags::empty()) {
        Err(rustix::io::Errno::EXIST) => {
            clear_for_entry(dir, name)?;
            Ok(rustix::fs::linkat(
                from_dir,
                from_name,
                dir,
                name,
                AtFlags::empty(),
            )?)
        }
        r => Ok(r?),
    }
}

/// Renames `from` to `to` inside `dir`, replacing a file or symlink at `to`
/// (the name is replaced; nothing is written through it).
pub(super) fn rename_over(dir: BorrowedFd<'_>, from: &[u8], to: &[u8]) -> io::Result<()> {
    match rustix::fs::renameat(dir, from, dir, to) {
        Err(rustix::io::Errno::ISDIR | rustix::io::Errno::NOTEMPTY | rustix::io::Errno::EXIST) => {
            Err(io::Error::other(
                "a directory is in the way (it is left as it is)",
            ))
        }
        r => Ok(r?),
    }
}

/// Removes the file `name` of `dir` if it is there.
pub(super) fn remove_file(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn timestamps(mtime_ns: i64) -> rustix::fs::Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
    };
    rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn ids(uid: u32, gid: u32) -> (Option<rustix::fs::Uid>, Option<rustix::fs::Gid>) {
    // u32::MAX is "leave unchanged" to chown(2): never pass it on.
    (
        (uid != u32::MAX).then(|| rustix::fs::Uid::from_raw(uid)),
        (gid != u32::MAX).then(|| rustix::fs::Gid::from_raw(gid)),
    )
}

/// The metadata a restore sets, already filtered by what it may set.
pub(super) struct Meta<'a> {
    /// Owner and group, when running as root.
    pub owner: Option<(u32, u32)>,
    /// Permission bits (with or without setuid, setgid and sticky bits).
    pub mode: u32,
    /// Extended attributes to set.
    pub xattrs: Vec<(&'a [u8], &'a [u8])>,
    /// Modification (and access) time.
    pub mtime_ns: i64,
}

/// What setting metadata could not do (the content is there).
pub(super) type MetaProblems = Vec<String>;

/// Sets metadata on an open file or directory: owner first (chown clears
/// setuid bits), then mode, extended attributes and times.
pub(super) fn set_meta_fd(fd: BorrowedFd<'_>, meta: &Meta<'_>) -> io::Result<MetaProblems> {
    if let Some((uid, gid)) = meta.owner {
        let (u, g) = ids(uid, gid);
        rustix::fs::fchown(fd, u, g)?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777))?;
    let mut problems = Vec::new();
    for (name, value) in &meta.xattrs {
        if let Err(e) = rustix::fs::fsetxattr(fd, *name, value, rustix::fs::XattrFlags::empty()) {
            problems.push(format!(
                "extended attribute {} not restored: {}",
                String::from_utf8_lossy(name),
                io::Error::from(e)
            ));
        }
    }
    rustix::fs::futimens(fd, &timestamps(meta.mtime_ns))?;
    Ok(problems)
}

/// Sets metadata on a symlink or special file `name` of `dir` without
/// opening it (opening a FIFO would block; a symlink cannot be opened
/// without following it). The mode of a symlink is not set (Linux has none);
/// extended attributes go through `/proc/self/fd/N/name`, where the last
/// component is not followed.
pub(super) fn set_meta_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    symlink: bool,
    meta: &Meta<'_>,
) -> io::Result<MetaProblems> {
    // The entry must still be what the restore made: not a symlink where a
    // special file was created (chmodat would follow it).
    let st = lstat_child(dir, name)?.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    if (file_type(&st) == FileType::Symlink) != symlink {
        return Err(io::Error::other("was replaced during the restore"));
    }
    if let Some((uid, gid)) = meta.owner {
        let (u, g) = ids(uid, gid);
        rustix::fs::chownat(dir, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
    }
    if !symlink {
        rustix::fs::chmodat(
            dir,
            name,
            Mode::from_raw_mode(meta.mode & 0o7777),
            AtFlags::empty(),
        )?;
    }
    let mut problems = Vec::new();
    if !meta.xattrs.is_empty() {
        use std::os::fd::AsRawFd;
        use std::os::unix::ffi::OsStrExt;
        let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        path.extend_from_slice(name);
        let path = std::ffi::OsStr::from_bytes(&path);
        for (xname, value) in &meta.xattrs {
            if let Err(e) =
                rustix::fs::lsetxattr(path, *xname, value, rustix::fs::XattrFlags::empty())
            {
                problems.push(format!(
                    "extended attribute {} not restored: {}",
                    String::from_utf8_lossy(xname),
                    io::Error::from(e)
                ));
            }
        }
    }
    rustix::fs::utimensat(
        dir,
        name,
        &timestamps(meta.mtime_ns),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn slots(names: &[(usize, &str)]) -> Vec<DirSlot> {
        let mut v = vec![DirSlot {
            parent: 0,
            name: Vec::new(),
        }];
        v.extend(names.iter().map(|(p, n)| DirSlot {
            parent: *p,
            name: n.as_bytes().to_vec(),
        }));
        v
    }

    #[test]
    fn a_symlinked_directory_is_never_entered() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let target = tmp.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&outside, target.join("d")).unwrap();
        let t = TargetDirs::open(&target, slots(&[(0, "d")])).unwrap();
        // Opening through the symlink fails ...
        assert!(t.dir(1).is_err());
        // ... and making the directory replaces the link by a real one.
        let fd = make_dir(t.root(), b"d").unwrap();
        t.remember(1, fd);
        let f = create_file(t.dir(1).unwrap().as_fd(), b"x").unwrap();
        drop(f);
        assert!(target.join("d").symlink_metadata().unwrap().is_dir());
        assert!(target.join("d/x").exists());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn a_file_is_replaced_by_rename_not_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o640)).unwrap();
        let target = tmp.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&victim, target.join("f")).unwrap();
        std::fs::hard_link(&victim, target.join("h")).unwrap();
        let t = TargetDirs::open(&target, slots(&[])).unwrap();
        for name in [&b"f"[..], b"h"] {
            let f = create_file(t.root(), b".tmp").unwrap();
            std::io::Write::write_all(&mut &f, b"new").unwrap();
            set_meta_fd(
                f.as_fd(),
                &Meta {
                    owner: None,
                    mode: 0o755,
                    xattrs: Vec::new(),
                    mtime_ns: 0,
                },
            )
            .unwrap();
            rename_over(t.root(), b".tmp", name).unwrap();
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(
            victim.metadata().unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert_eq!(std::fs::read(target.join("f")).unwrap(), b"new");
    }

    #[test]
    fn a_directory_in_the_way_is_reported_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("d/keep")).unwrap();
        let t = TargetDirs::open(tmp.path(), slots(&[])).unwrap();
        let e = make_symlink(t.root(), b"d", b"/etc").unwrap_err();
        assert!(e.to_string().contains("directory is in the way"), "{e}");
        assert!(tmp.path().join("d/keep").is_dir());
    }

    #[test]
    fn deep_paths_open_one_component_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let name = "n".repeat(200);
        let depth = 40; // 40 × 201 bytes: far past PATH_MAX
        let s: Vec<(usize, &str)> = (0..depth).map(|i| (i, name.as_str())).collect();
        let t = TargetDirs::open(tmp.path(), slots(&s)).unwrap();
        for i in 1..=depth {
            let parent = t.dir(t.slot(i).parent).unwrap();
            let fd = make_dir(parent.as_fd(), name.as_bytes()).unwrap();
            t.remember(i, fd);
        }
        // Forget every cached descriptor: the deepest one reopens from the root.
        *t.cache.lock().unwrap() = DirCache::new(MAX_CACHED_DIRS);
        let deepest = t.dir(depth).unwrap();
        drop(create_file(deepest.as_fd(), b"leaf").unwrap());
        assert!(lstat_child(deepest.as_fd(), b"leaf").unwrap().is_some());
    }

    #[test]
    fn a_full_directory_cache_closes_the_half_used_longest_ago() {
        let tmp = tempfile::tempdir().unwrap();
        let fd =
            || Arc::new(rustix::fs::open(tmp.path(), OFlags::DIRECTORY, Mode::empty()).unwrap());
        let mut c = DirCache::new(8);
        for slot in 0..8 {
            c.insert(slot, fd());
        }
        // The first three are in use again: they stay.
        for slot in 0..3 {
            assert!(c.get(slot).is_some());
        }
        c.insert(8, fd());
        let mut kept: Vec<usize> = c.open.keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, [0, 1, 2, 7, 8]);
        assert!(c.get(3).is_none());
        assert!(dirs_budget() >= MIN_CACHED_DIRS);
    }

    #[test]
    fn the_restores_of_a_process_share_one_budget_of_open_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let fd =
            || Arc::new(rustix::fs::open(tmp.path(), OFlags::DIRECTORY, Mode::empty()).unwrap());
        let budget = 3 * MIN_CACHED_DIRS;
        let mut a = DirCache::new(MAX_CACHED_DIRS);
        for slot in 0..2 * MIN_CACHED_DIRS {
            a.insert_within(slot, fd(), budget);
        }
        // Another restore's cache fills the rest of the budget (other tests
        // of this process may hold some too: only more pressure).
        let mut b = DirCache::new(MAX_CACHED_DIRS);
        for slot in 0..MIN_CACHED_DIRS {
            b.insert_within(slot, fd(), budget);
        }
        assert!(CACHED_DIRS.load(Ordering::Relaxed) >= budget);
        // Over the budget: the second, at its minimum, keeps what it has;
        // the first gives back half of its own before it adds one.
        b.insert_within(1000, fd(), budget);
        assert_eq!(b.open.len(), MIN_CACHED_DIRS + 1);
        a.insert_within(1000, fd(), budget);
        assert_eq!(a.open.len(), MIN_CACHED_DIRS + 1);
    }
}
