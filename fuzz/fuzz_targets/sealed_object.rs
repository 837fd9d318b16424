//! Sealed metadata objects (`open_object`: version, AES-GCM, zstd, CBOR) under
//! the fixed key and object ID `common::OBJECT_ID`.
//!
//! The first byte picks the object kind (bit 0: index or snapshot) and how
//! the rest is used (bits 1-2):
//! * 0, 3: the rest is the stored object as is (mostly fails authentication);
//! * 1: the rest is sealed as the compressed payload, so zstd sees it;
//! * 2: the rest is zstd-compressed and sealed, so the CBOR decoder sees it
//!   through the full path.
#![no_main]

#[path = "../common.rs"]
mod common;

use custos::crypto::ObjectKind;
use custos::repofile::index::IndexFile;
use custos::repofile::snapshot::Snapshot;
use custos::repofile::{open_object, OBJECT_VERSION};
use libfuzzer_sys::fuzz_target;

fn seal(kind: ObjectKind, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![OBJECT_VERSION];
    out.extend_from_slice(
        &common::keys()
            .object_cipher(kind, &common::OBJECT_ID)
            .seal(0, &[OBJECT_VERSION], payload),
    );
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let kind = if mode & 1 == 0 {
        ObjectKind::Index
    } else {
        ObjectKind::Snapshot
    };
    let stored = match (mode >> 1) & 3 {
        1 => seal(kind, rest),
        2 => match zstd::bulk::compress(rest, 1) {
            Ok(c) => seal(kind, &c),
            Err(_) => return,
        },
        _ => rest.to_vec(),
    };
    let keys = common::keys();
    match kind {
        ObjectKind::Index => {
            let _ = open_object::<IndexFile>(keys, kind, &common::OBJECT_ID, "index", &stored);
        }
        _ => {
            let _ = open_object::<Snapshot>(keys, kind, &common::OBJECT_ID, "snapshot", &stored);
        }
    }
});
