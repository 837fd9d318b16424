//! Writes small valid encodings for each fuzz target into
//! `<dir>/<target>/<name>`, under the fixed keys of `../../common.rs`.

#[path = "../../common.rs"]
mod common;

use std::path::{Path, PathBuf};

use custos::crypto::keyslot::{KdfParams, KeySlot, Secret};
use custos::crypto::ObjectKind;
use custos::repofile::config::{ChunkerParams, RepoConfig};
use custos::repofile::index::{IndexBlob, IndexFile, IndexPack};
use custos::repofile::pack::{BlobKind, Compression, HEADER_POSITION};
use custos::repofile::snapshot::Snapshot;
use custos::repofile::tree::{Node, NodeKind, Tree, Xattr};
use custos::repofile::{seal_object, to_cbor};
use custos::{BlobId, IndexId, PackId};
use zeroize::Zeroizing;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create seed directory");
    std::fs::write(d.join(name), bytes).expect("write seed");
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o100644,
        uid: 1000,
        gid: 1000,
        mtime_ns: 1_700_000_000_000_000_000,
        ctime_ns: 1_700_000_000_000_000_000,
        inode: 42,
        device: 2049,
        links: 1,
        size: 3,
        content: Vec::new(),
        subtree: None,
        target: Vec::new(),
        rdev: 0,
        xattrs: Vec::new(),
    }
}

fn tree() -> Tree {
    let mut dir = node(b"dir", NodeKind::Dir);
    dir.subtree = Some(BlobId([3; 32]));
    let mut file = node(b"file", NodeKind::File);
    file.content = vec![BlobId([1; 32]), BlobId([2; 32])];
    file.xattrs = vec![Xattr {
        name: b"user.x".to_vec(),
        value: b"v".to_vec(),
    }];
    let mut link = node(b"link", NodeKind::Symlink);
    link.target = b"file".to_vec();
    Tree {
        nodes: vec![dir, file, link],
    }
}

fn index() -> IndexFile {
    let blob = |i: u8, offset: u64| IndexBlob {
        kind: if i % 2 == 0 {
            BlobKind::Data
        } else {
            BlobKind::Tree
        },
        id: BlobId([i; 32]),
        compression: if i % 2 == 0 {
            Compression::Raw
        } else {
            Compression::Zstd
        },
        offset,
        length: 36,
        raw_len: 20,
    };
    IndexFile {
        supersedes: vec![IndexId([5; 32])],
        packs: vec![
            IndexPack {
                id: PackId([6; 32]),
                size: 200,
                blobs: vec![blob(1, 0), blob(2, 36)],
            },
            IndexPack {
                id: PackId([7; 32]),
                size: 100,
                blobs: vec![blob(3, 0)],
            },
        ],
    }
}

/// Built from JSON so that fields added later with a default do not break it.
fn snapshot() -> Snapshot {
    let hex = |b: u8| hex::encode([b; 32]);
    serde_json::from_value(serde_json::json!({
        "time": "2026-11-30T11:00:00Z",
        "tree": hex(3),
        "paths": ["/srv"],
        "hostname": "host",
        "username": "root",
        "service": "web",
        "tenant": "acme",
        "tags": ["daily"],
        "parent": hex(4),
        "stream": false,
        "program": "custos 0.1.0",
        "summary": {
            "files": 1, "dirs": 1, "files_read": 1, "files_unchanged": 0,
            "total_bytes": 3, "bytes_read": 3, "bytes_added_raw": 3,
            "bytes_added": 19, "blobs_added": 1, "duration_secs": 0.5,
            "errors": [{"path": "/srv/x", "error": "denied"}]
        }
    }))
    .expect("snapshot seed matches the Snapshot type")
}

/// A pack under `common::PACK_ID` holding two blobs, and its header plaintext.
fn pack() -> (Vec<u8>, Vec<u8>) {
    let cipher = common::keys().pack_cipher(&common::PACK_ID);
    let mut bytes = Vec::new();
    let mut header = b"CPK1".to_vec();
    header.extend_from_slice(&2u32.to_le_bytes());
    for (i, payload) in [&b"first blob"[..], &b"second"[..]].into_iter().enumerate() {
        let sealed = cipher.seal(bytes.len() as u64, &[], payload);
        header.push(i as u8); // kind: data, tree
        header.push(0); // raw
        header.extend_from_slice(&[i as u8 + 1; 32]);
        header.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        header.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&sealed);
    }
    let mut plain = (bytes.len() as u64).to_le_bytes().to_vec();
    plain.extend_from_slice(&header);
    let sealed = cipher.seal(HEADER_POSITION, b"CPK1", &header);
    bytes.extend_from_slice(&sealed);
    bytes.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    (bytes, plain)
}

fn main() {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("fuzz/corpus-seed"));
    let keys = common::keys();

    let (pack, header) = pack();
    write(&dir, "pack_header", "pack", &pack);
    write(&dir, "pack_header", "header-plaintext", &header);

    write(&dir, "index", "index", &to_cbor(&index()));
    write(&dir, "index", "empty", &to_cbor(&IndexFile::default()));
    write(&dir, "snapshot", "snapshot", &to_cbor(&snapshot()));
    write(&dir, "tree", "tree", &tree().encode());
    write(&dir, "tree", "empty", &Tree::default().encode());

    // sealed_object: first byte = kind (bit 0) | path << 1 (0 stored, 1 payload, 2 plaintext).
    let id = &common::OBJECT_ID;
    let stored = |b: u8, v: Vec<u8>| [vec![b], v].concat();
    let sealed_index = seal_object(keys, ObjectKind::Index, id, &index());
    let sealed_snap = seal_object(keys, ObjectKind::Snapshot, id, &snapshot());
    write(
        &dir,
        "sealed_object",
        "index-stored",
        &stored(0, sealed_index.clone()),
    );
    write(
        &dir,
        "sealed_object",
        "snapshot-stored",
        &stored(1, sealed_snap.clone()),
    );
    write(
        &dir,
        "sealed_object",
        "index-plaintext",
        &stored(4, to_cbor(&index())),
    );
    write(
        &dir,
        "sealed_object",
        "snapshot-plaintext",
        &stored(5, to_cbor(&snapshot())),
    );
    // The payload path: the zstd frame inside the stored object.
    let payload = |s: &[u8], kind| {
        keys.object_cipher(kind, id)
            .open(0, &[1], &s[1..])
            .expect("own object opens")
    };
    write(
        &dir,
        "sealed_object",
        "index-payload",
        &stored(2, payload(&sealed_index, ObjectKind::Index)),
    );
    write(
        &dir,
        "sealed_object",
        "snapshot-payload",
        &stored(3, payload(&sealed_snap, ObjectKind::Snapshot)),
    );

    // key_slot: slots the target's secrets open (key file [1; 64], passphrase "fuzz").
    // A passphrase slot this cheap is written only with the fast-KDF test switch.
    std::env::set_var("CUSTOS_TEST_FAST_KDF", "1");
    let master = custos::crypto::MasterKey::from_bytes(common::MASTER);
    let kf = KeySlot::create(
        &master,
        &Secret::KeyFile(Zeroizing::new(vec![1; 64])),
        KdfParams::default(),
    )
    .expect("key file slot");
    let pw = KeySlot::create(
        &master,
        &Secret::Passphrase(Zeroizing::new("fuzz".into())),
        KdfParams {
            m_kib: 8,
            t: 1,
            p: 1,
        },
    )
    .expect("passphrase slot");
    let (mut kf, mut pw) = (kf, pw);
    for s in [&mut kf, &mut pw] {
        s.hostname = "host".into();
        s.username = "user".into();
        s.created = "2026-11-30T11:00:00Z".into();
    }
    write(
        &dir,
        "key_slot",
        "key-file",
        &serde_json::to_vec(&kf).expect("json"),
    );
    write(
        &dir,
        "key_slot",
        "passphrase",
        &serde_json::to_vec(&pw).expect("json"),
    );

    let mut cfg = RepoConfig::new(ChunkerParams::default(), 16 << 20);
    cfg.created = "2026-11-30T11:00:00Z".into();
    write(&dir, "repo_config", "config", &cfg.encode(keys));

    write(&dir, "index_cache", "cache", &index_cache());
    write(&dir, "nbd_client", "session", &nbd_session());
    // What `qemu-img map --output=json` prints for a small qcow2.
    write(
        &dir,
        "qemu_img_map",
        "map",
        br#"[{ "start": 0, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true, "compressed": false, "offset": 327680},
{ "start": 65536, "length": 1048576, "depth": 0, "present": false, "zero": true, "data": false, "compressed": false}]
"#,
    );
}

/// A real index cache of two runs (4 entries, then 1: the size rule keeps
/// them apart), framed as the `index_cache` target reads it.
fn index_cache() -> Vec<u8> {
    use custos::index_cache::BlobIndex;
    let dir = std::env::temp_dir().join(format!("custos-seedgen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = dir.join("index");
    {
        let file = index();
        let index = BlobIndex::open(Some(&cache)).expect("open a new index cache");
        for p in &file.packs {
            index.add_pack(p.id, p.size, &p.blobs).expect("add a pack");
        }
        let more = IndexBlob {
            id: BlobId([4; 32]),
            offset: 72,
            ..file.packs[0].blobs[0].clone()
        };
        index
            .add_pack(PackId([8; 32]), 120, &[more.clone()])
            .expect("add a pack");
        index.flush().expect("flush");
        let last = IndexBlob {
            id: BlobId([9; 32]),
            ..more
        };
        index
            .add_pack(PackId([10; 32]), 120, &[last])
            .expect("add a pack");
        index.flush().expect("flush");
    }
    let read = |name: &str| std::fs::read(cache.join(name)).expect("read the cache");
    let manifest = read("manifest");
    let body = &manifest[..manifest.len() - 32];
    let (packs, run0, run1) = (
        read("packs"),
        read("run-0000000000000000"),
        read("run-0000000000000001"),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let len = |b: &[u8]| u16::try_from(b.len()).expect("a small seed").to_le_bytes();
    let mut out = vec![1];
    for part in [body, &packs, &run0] {
        out.extend_from_slice(&len(part));
    }
    for part in [body, &packs, &run0, &run1] {
        out.extend_from_slice(part);
    }
    out
}

/// The `nbd_client` target's input: one read of 4 bytes at offset 0 (count,
/// then offset u32 BE and length u16 BE), then what qemu-nbd answers: its
/// greeting, the export's size, the acknowledgement and the read's reply.
fn nbd_session() -> Vec<u8> {
    const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
    let option_reply = |kind: u32, data: &[u8]| {
        [
            &REPLY_MAGIC.to_be_bytes()[..],
            &7u32.to_be_bytes(),
            &kind.to_be_bytes(),
            &u32::try_from(data.len()).expect("small").to_be_bytes(),
            data,
        ]
        .concat()
    };
    [
        &[1u8, 0, 0, 0, 0, 0, 4][..],
        b"NBDMAGIC",
        b"IHAVEOPT",
        &3u16.to_be_bytes(),
        &option_reply(
            3,
            &[&[0u8, 0][..], &4096u64.to_be_bytes(), &[0, 0]].concat(),
        ),
        &option_reply(1, &[]),
        &0x6744_6698u32.to_be_bytes(),
        &0u32.to_be_bytes(),
        &1u64.to_be_bytes(),
        b"abcd",
    ]
    .concat()
}
