//! Tree blobs: one directory's entries with their metadata, sorted by name.
//!
//! Names, link targets and extended attributes are byte strings, so names that
//! are not valid UTF-8 survive. Trees are blobs like file chunks: they are
//! deduplicated, so an unchanged directory costs nothing in a new snapshot.

use serde::{Deserialize, Serialize};

use crate::id::BlobId;
use crate::{Error, Result};

/// Kind of a tree entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
    /// Unix socket (recorded, not recreated).
    Socket,
}

/// One extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// The attribute's name, e.g. `user.comment` or `security.capability`.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// The attribute's value, as stored by the file system.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name (bytes).
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// File, directory, symlink, device, FIFO or socket.
    pub kind: NodeKind,
    /// Permission bits and file type bits (`st_mode`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch (change detection only).
    pub ctime_ns: i64,
    /// Inode number (change detection and hardlinks).
    pub inode: u64,
    /// Device of the file system holding it (hardlinks).
    pub device: u64,
    /// Number of hard links.
    pub links: u64,
    /// Size in bytes (files).
    pub size: u64,
    /// Content chunks, in order (files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    /// Subtree (directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    /// Link target (symlinks).
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<u8>,
    /// Device number (device files).
    #[serde(default)]
    pub rdev: u64,
    /// Extended attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
}

impl Node {
    /// The name as a lossy string, for display.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries sorted by name.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Encodes as CBOR (the blob's plaintext).
    pub fn encode(&self) -> Vec<u8> {
        super::to_cbor(self)
    }

    /// Decodes a tree blob and checks its invariants (sorted, unique names that
    /// are valid path components).
    ///
    /// # Errors
    /// When the blob does not decode or breaks an invariant.
    pub fn decode(id: &BlobId, data: &[u8]) -> Result<Tree> {
        let what = format!("tree {id}");
        let t: Tree = super::from_cbor(&what, data)?;
        for w in t.nodes.windows(2) {
            if w[0].name >= w[1].name {
                return Err(Error::integrity(
                    &what,
                    "entries are not sorted or not unique",
                ));
            }
        }
        for n in &t.nodes {
            if n.name.is_empty()
                || n.name == b"."
                || n.name == b".."
                || n.name.contains(&b'/')
                || n.name.contains(&0)
            {
                return Err(Error::integrity(
                    &what,
                    format!("invalid entry name {:?}", n.name_lossy()),
                ));
            }
        }
        Ok(t)
    }

    /// Finds an entry by name.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(name: &[u8]) -> Node {
        Node {
            name: name.to_vec(),
            kind: NodeKind::File,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            mtime_ns: 1,
            ctime_ns: 2,
            inode: 3,
            device: 4,
            links: 1,
            size: 5,
            content: vec![BlobId::random()],
            subtree: None,
            target: vec![],
            rdev: 0,
            xattrs: vec![Xattr {
                name: b"user.a".to_vec(),
                value: vec![0xff, 0],
            }],
        }
    }

    #[test]
    fn round_trip_non_utf8() {
        let t = Tree {
            nodes: vec![node(b"a"), node(&[0xff, 0xfe])],
        };
        let id = BlobId::random();
        assert_eq!(Tree::decode(&id, &t.encode()).unwrap(), t);
    }

    #[test]
    fn rejects_unsorted_and_bad_names() {
        let id = BlobId::random();
        let t = Tree {
            nodes: vec![node(b"b"), node(b"a")],
        };
        assert!(Tree::decode(&id, &t.encode()).is_err());
        let t = Tree {
            nodes: vec![node(b"../x")],
        };
        assert!(Tree::decode(&id, &t.encode()).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Tree::decode(&BlobId([0; 32]), &data);
        }
    }
}
