//! `custos ls` and `custos dump`: browse a snapshot without restoring it
//! (a file, a stream snapshot, or a directory as a tar or zip archive).

use std::io::Write;

use crate::commands::restore::find_node;
use crate::id::SnapshotId;
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::{Node, NodeKind};
use crate::repository::{IndexedRepository, TreeReader};
use crate::{Error, Result};

/// A snapshot as `custos snapshots --json` lists it: its full and short
/// IDs beside what the snapshot object records.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotListing<'a> {
    /// The snapshot's ID (64 hex characters).
    pub id: String,
    /// Its first 8 hex characters.
    pub short_id: String,
    /// When it was taken, RFC 3339.
    pub time: &'a str,
    /// The service it belongs to.
    pub service: &'a Option<String>,
    /// The tenant it belongs to.
    pub tenant: &'a Option<String>,
    /// Its tags.
    pub tags: &'a [String],
    /// The paths it holds.
    pub paths: &'a [String],
    /// The host that took it.
    pub hostname: &'a str,
    /// The user that took it.
    pub username: &'a str,
    /// The snapshot it was taken against (full ID), if any.
    pub parent: Option<String>,
    /// It holds one stream (stdin or a dump command), not a tree of paths.
    pub stream: bool,
    /// Its counts and sizes.
    pub summary: &'a crate::repofile::snapshot::Summary,
}

impl<'a> SnapshotListing<'a> {
    /// The listing of snapshot `id`.
    pub fn new(id: &SnapshotId, s: &'a Snapshot) -> SnapshotListing<'a> {
        SnapshotListing {
            id: id.to_hex(),
            short_id: id.short(),
            time: &s.time,
            service: &s.service,
            tenant: &s.tenant,
            tags: &s.tags,
            paths: &s.paths,
            hostname: &s.hostname,
            username: &s.username,
            parent: s.parent.map(|p| p.to_hex()),
            stream: s.stream,
            summary: &s.summary,
        }
    }
}

/// One listed entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// Path inside the snapshot.
    pub path: String,
    /// File, directory, symlink, device, FIFO or socket.
    pub kind: NodeKind,
    /// Mode bits.
    pub mode: u32,
    /// Size (files).
    pub size: u64,
    /// Modification time, RFC 3339.
    pub mtime: String,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// A symlink's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Entry {
    /// `ls -l`'s mode column: the kind, then the permission bits
    /// (`drwxr-xr-x`, `lrwxrwxrwx`, `-rwsr-xr-x`).
    pub fn mode_string(&self) -> String {
        let kind = match self.kind {
            NodeKind::Dir => 'd',
            NodeKind::Symlink => 'l',
            NodeKind::CharDev => 'c',
            NodeKind::BlockDev => 'b',
            NodeKind::Fifo => 'p',
            NodeKind::Socket => 's',
            NodeKind::File => '-',
        };
        let m = self.mode;
        let bit = |mask: u32, c: char| if m & mask != 0 { c } else { '-' };
        let special = |x: u32, s: u32, set: char, unset: char| match (m & x != 0, m & s != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        };
        [
            kind,
            bit(0o400, 'r'),
            bit(0o200, 'w'),
            special(0o100, 0o4000, 's', 'S'),
            bit(0o040, 'r'),
            bit(0o020, 'w'),
            special(0o010, 0o2000, 's', 'S'),
            bit(0o004, 'r'),
            bit(0o002, 'w'),
            special(0o001, 0o1000, 't', 'T'),
        ]
        .iter()
        .collect()
    }
}

fn entry(path: String, n: &Node) -> Entry {
    // To the second: a listing is for people.
    let mtime = jiff::Timestamp::from_second(n.mtime_ns.div_euclid(1_000_000_000))
        .map(|t| t.to_string())
        .unwrap_or_default();
    Entry {
        path,
        kind: n.kind,
        mode: n.mode,
        size: n.size,
        mtime,
        uid: n.uid,
        gid: n.gid,
        target: (n.kind == NodeKind::Symlink)
            .then(|| String::from_utf8_lossy(&n.target).into_owned()),
    }
}

/// Lists a snapshot's entries below `path` (everything with `/` or none):
/// the whole tree when `recursive`, else `path` and the entries directly
/// in it.
///
/// # Errors
/// [`Error::NotFound`] for a missing path; read errors.
pub async fn ls(
    repo: &IndexedRepository,
    snap: &Snapshot,
    path: Option<&str>,
    recursive: bool,
) -> Result<Vec<Entry>> {
    let base = path.map(|p| p.trim_end_matches('/')).unwrap_or("");
    let mut out = Vec::new();
    let start = if base.is_empty() {
        snap.tree
    } else {
        let n = find_node(repo, snap, base).await?;
        out.push(entry(base.to_string(), &n));
        match n.subtree {
            Some(t) => t,
            None => return Ok(out),
        }
    };
    let mut stack = vec![(start, base.to_string())];
    while let Some((tid, prefix)) = stack.pop() {
        let tree = repo.read_tree(&tid).await?;
        // Push subdirectories in reverse so the listing comes out in name order.
        let mut subs = Vec::new();
        for n in &tree.nodes {
            let p = format!("{prefix}/{}", n.name_lossy());
            out.push(entry(p.clone(), n));
            if let (Some(s), true) = (n.subtree, recursive) {
                subs.push((s, p));
            }
        }
        stack.extend(subs.into_iter().rev());
    }
    Ok(out)
}

/// Writes one file's content (or a stream snapshot's) to `out`. For a stream
/// snapshot `path` may be omitted.
///
/// # Errors
/// [`Error::NotFound`], [`Error::Usage`] for a directory, read errors.
pub async fn dump(
    repo: &IndexedRepository,
    snap: &Snapshot,
    path: Option<&str>,
    out: &mut dyn Write,
) -> Result<u64> {
    let node = match path {
        Some(p) => find_node(repo, snap, p).await?,
        None => {
            let tree = repo.read_tree(&snap.tree).await?;
            match tree.nodes.as_slice() {
                [only] if snap.stream => only.clone(),
                _ => return Err(Error::Usage("give the path of the file to dump".into())),
            }
        }
    };
    if node.kind == NodeKind::Dir {
        return Err(Error::Usage(format!(
            "{} is a directory: dump it with --archive tar or --archive zip",
            path.unwrap_or("the entry")
        )));
    }
    if node.kind != NodeKind::File {
        return Err(Error::Usage(format!(
            "{} is not a regular file",
            path.unwrap_or("the entry")
        )));
    }
    let mut n = 0u64;
    // Read ahead a few blobs while writing the current one.
    let mut reads = futures::stream::iter(node.content.iter().map(|id| repo.read_blob(id)));
    use futures::StreamExt;
    let mut buffered = (&mut reads).buffered(4);
    while let Some(data) = buffered.next().await {
        let data = data?;
        out.write_all(&data)
            .map_err(|e| Error::io("cannot write output", e))?;
        n += data.len() as u64;
    }
    out.flush()
        .map_err(|e| Error::io("cannot write output", e))?;
    Ok(n)
}

/// The archive `dump --archive` writes a directory as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    /// POSIX tar (PAX headers for long names), streamed.
    Tar,
    /// ZIP with stored (uncompressed) entries.
    Zip,
}

/// A file's content as a reader: its blobs, read one after another.
struct Content<'a> {
    reader: &'a TreeReader,
    blobs: std::slice::Iter<'a, crate::id::BlobId>,
    current: Vec<u8>,
    at: usize,
}

impl std::io::Read for Content<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            let Some(id) = self.blobs.next() else {
                return Ok(0);
            };
            self.current = self
                .reader
                .block_on(self.reader.repo().read_blob(id))
                .map_err(std::io::Error::other)?;
            self.at = 0;
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Writes the directory at `path` (the whole snapshot without one) as an
/// archive to `out`: directories, files, symlinks, with modes, owners and
/// times; other entries (devices, FIFOs, sockets) are left out and
/// counted. Names inside the archive are relative to the directory.
/// Returns (entries written, entries left out).
///
/// # Errors
/// [`Error::NotFound`] for a missing path, [`Error::Usage`] when it is not
/// a directory; read and write errors.
pub async fn dump_archive(
    repo: &IndexedRepository,
    snap: &Snapshot,
    path: Option<&str>,
    format: Archive,
    out: Box<dyn Write + Send>,
) -> Result<(u64, u64)> {
    let base = path.map(|p| p.trim_end_matches('/')).unwrap_or("");
    let root = if base.is_empty() {
        snap.tree
    } else {
        let n = find_node(repo, snap, base).await?;
        n.subtree.ok_or_else(|| {
            Error::Usage(format!(
                "{base} is not a directory: dump it without --archive"
            ))
        })?
    };
    repo.walk_trees(move |r| {
        let mut sink = ArchiveSink::new(format, out);
        let mut stack = vec![(root, String::new())];
        while let Some((tid, prefix)) = stack.pop() {
            let tree = r.read(&tid)?;
            let mut subs = Vec::new();
            for n in &tree.nodes {
                let p = if prefix.is_empty() {
                    n.name_lossy()
                } else {
                    format!("{prefix}/{}", n.name_lossy())
                };
                sink.entry(r, &p, n)?;
                if let Some(s) = n.subtree {
                    subs.push((s, p));
                }
            }
            stack.extend(subs.into_iter().rev());
        }
        sink.finish()
    })
    .await
}

/// Writes entries into a tar or zip stream.
enum ArchiveSink {
    Tar(tar::Builder<Box<dyn Write + Send>>, u64, u64),
    Zip(
        zip::ZipWriter<zip::write::StreamWriter<Box<dyn Write + Send>>>,
        u64,
        u64,
    ),
}

fn write_err(e: impl std::fmt::Display) -> Error {
    Error::io(
        "cannot write the archive",
        std::io::Error::other(e.to_string()),
    )
}

impl ArchiveSink {
    fn new(format: Archive, out: Box<dyn Write + Send>) -> ArchiveSink {
        match format {
            Archive::Tar => {
                let mut b = tar::Builder::new(out);
                b.mode(tar::HeaderMode::Complete);
                b.follow_symlinks(false);
                ArchiveSink::Tar(b, 0, 0)
            }
            Archive::Zip => ArchiveSink::Zip(zip::ZipWriter::new_stream(out), 0, 0),
        }
    }

    fn entry(&mut self, r: &TreeReader, path: &str, n: &Node) -> Result<()> {
        let mtime = u64::try_from(n.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0);
        match self {
            ArchiveSink::Tar(b, written, skipped) => {
                let mut h = tar::Header::new_gnu();
                h.set_mode(n.mode & 0o7777);
                h.set_uid(u64::from(n.uid));
                h.set_gid(u64::from(n.gid));
                h.set_mtime(mtime);
                match n.kind {
                    NodeKind::Dir => {
                        h.set_entry_type(tar::EntryType::Directory);
                        h.set_size(0);
                        b.append_data(&mut h, format!("{path}/"), std::io::empty())
                            .map_err(write_err)?;
                    }
                    NodeKind::File => {
                        h.set_entry_type(tar::EntryType::Regular);
                        h.set_size(n.size);
                        let content = Content {
                            reader: r,
                            blobs: n.content.iter(),
                            current: Vec::new(),
                            at: 0,
                        };
                        b.append_data(&mut h, path, content).map_err(write_err)?;
                    }
                    NodeKind::Symlink => {
                        h.set_entry_type(tar::EntryType::Symlink);
                        h.set_size(0);
                        let target = String::from_utf8_lossy(&n.target).into_owned();
                        b.append_link(&mut h, path, target).map_err(write_err)?;
                    }
                    _ => {
                        *skipped += 1;
                        return Ok(());
                    }
                }
                *written += 1;
            }
            ArchiveSink::Zip(z, written, skipped) => {
                let opts = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored)
                    .unix_permissions(n.mode & 0o7777)
                    .large_file(n.size >= u64::from(u32::MAX));
                match n.kind {
                    NodeKind::Dir => z.add_directory(path, opts).map_err(write_err)?,
                    NodeKind::File => {
                        z.start_file(path, opts).map_err(write_err)?;
                        let mut content = Content {
                            reader: r,
                            blobs: n.content.iter(),
                            current: Vec::new(),
                            at: 0,
                        };
                        std::io::copy(&mut content, z).map_err(write_err)?;
                    }
                    NodeKind::Symlink => {
                        let target = String::from_utf8_lossy(&n.target).into_owned();
                        z.add_symlink(path, target, opts).map_err(write_err)?;
                    }
                    _ => {
                        *skipped += 1;
                        return Ok(());
                    }
                }
                *written += 1;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(u64, u64)> {
        match self {
            ArchiveSink::Tar(b, written, skipped) => {
                let mut out = b.into_inner().map_err(write_err)?;
                out.flush().map_err(write_err)?;
                Ok((written, skipped))
            }
            ArchiveSink::Zip(z, written, skipped) => {
                let mut out = z.finish().map_err(write_err)?.into_inner();
                out.flush().map_err(write_err)?;
                Ok((written, skipped))
            }
        }
    }
}
