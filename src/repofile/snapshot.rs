//! Snapshot manifests under `snapshots/<id>`: the root tree and what the backup was.

use serde::{Deserialize, Serialize};

use crate::id::{BlobId, IndexId, SnapshotId};

/// What a backup run did, stored with its snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Regular files in the snapshot.
    pub files: u64,
    /// Directories in the snapshot.
    pub dirs: u64,
    /// Files read (new or changed).
    pub files_read: u64,
    /// Files whose content came from the parent snapshot unread.
    pub files_unchanged: u64,
    /// Total logical size of the files in the snapshot.
    pub total_bytes: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_added_raw: u64,
    /// Stored bytes of new blobs (compressed, encrypted).
    pub bytes_added: u64,
    /// New blobs.
    pub blobs_added: u64,
    /// Seconds the backup took.
    pub duration_secs: f64,
    /// Entries that could not be read and are missing from the snapshot.
    #[serde(default)]
    pub errors: Vec<SkippedEntry>,
}

/// A source entry that could not be backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedEntry {
    /// Its path.
    pub path: String,
    /// Why.
    pub error: String,
}

/// The body of a tombstone (`forgotten/<snapshot id>`): the authenticated
/// record that custos forgot a snapshot, written before the snapshot is
/// deleted. A snapshot that disappears without one was deleted by someone
/// else (see `repository::watch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The snapshot forgotten (hex ID).
    pub snapshot: String,
    /// When (RFC 3339).
    pub time: String,
    /// Host that forgot it.
    pub hostname: String,
    /// User that forgot it.
    pub username: String,
    /// Why (`forget`, `repair`, `tag`: replaced by a copy with other tags).
    pub reason: String,
}

/// The body of a snapshot object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Time of the snapshot, RFC 3339 (UTC).
    pub time: String,
    /// Root tree.
    pub tree: BlobId,
    /// Paths backed up (or `/<name>` for a stream).
    pub paths: Vec<String>,
    /// Host that made it.
    pub hostname: String,
    /// User that made it.
    pub username: String,
    /// Service it belongs to, if any.
    #[serde(default)]
    pub service: Option<String>,
    /// Tenant it belongs to, if any.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Tags of the snapshot (`pre-change`, a ticket reference, …): filters and `keep_tags` use them.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Parent snapshot used for change detection.
    #[serde(default)]
    pub parent: Option<SnapshotId>,
    /// True for a stream snapshot (`--stdin` or a command's output).
    #[serde(default)]
    pub stream: bool,
    /// For a copy (`custos copy`, standby replication): the snapshot it was
    /// copied from, in the source repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<SnapshotId>,
    /// The index objects written by the run that made this snapshot, so
    /// that a reader whose listing of `index/` lags behind (eventually
    /// consistent stores) can still find every blob the snapshot adds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index: Vec<IndexId>,
    /// Version of custos that wrote it.
    pub program: String,
    /// What the run did.
    pub summary: Summary,
}

impl Snapshot {
    /// The time parsed, or the Unix epoch if unparsable (never happens for
    /// snapshots we wrote; old or foreign data sorts first).
    pub fn timestamp(&self) -> jiff::Timestamp {
        self.time.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}
