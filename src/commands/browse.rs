//! `custos ls` and `custos dump`: browse a snapshot without restoring it.

use std::io::Write;

use crate::commands::restore::find_node;
use crate::id::SnapshotId;
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::{Node, NodeKind};
use crate::repository::IndexedRepository;
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
}

fn entry(path: String, n: &Node) -> Entry {
    let mtime = jiff::Timestamp::from_nanosecond(i128::from(n.mtime_ns))
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
    }
}

/// Lists a snapshot's entries below `path` (everything with `/` or none).
///
/// # Errors
/// [`Error::NotFound`] for a missing path; read errors.
pub async fn ls(
    repo: &IndexedRepository,
    snap: &Snapshot,
    path: Option<&str>,
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
            if let Some(s) = n.subtree {
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
    out: &mut (dyn Write + Send),
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
