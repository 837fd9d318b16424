//! The local index cache (`index::BlobIndex`): its manifest, pack list and
//! run files are read back at every run, and a local user with access to the
//! cache directory could alter them. Opening a damaged cache must rebuild it
//! or fail with an error, and lookups in what it opened must answer or fail:
//! never panic, hang or allocate beyond what the files hold.
//!
//! Input: a flag byte (bit 0: append the manifest's BLAKE3 sum, so that the
//! fuzzer gets past it), three u16 LE lengths (manifest body, pack list,
//! first run), then those files and the rest as a second run.
#![no_main]

use std::collections::BTreeSet;

use custos::index_cache::BlobIndex;
use custos::BlobId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<7>() else {
        return;
    };
    let len = |i: usize| usize::from(u16::from_le_bytes([head[i], head[i + 1]]));
    let (manifest, rest) = rest.split_at(len(1).min(rest.len()));
    let (packs, rest) = rest.split_at(len(3).min(rest.len()));
    let (run0, run1) = rest.split_at(len(5).min(rest.len()));
    let mut manifest = manifest.to_vec();
    if head[0] & 1 == 1 {
        manifest.extend_from_slice(blake3::hash(&manifest).as_bytes());
    }
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let dir = tmp.path().join("index");
    let files: [(&str, &[u8]); 4] = [
        ("manifest", &manifest),
        ("packs", packs),
        ("run-0000000000000000", run0),
        ("run-0000000000000001", run1),
    ];
    if std::fs::create_dir(&dir).is_err()
        || files
            .iter()
            .any(|(name, bytes)| std::fs::write(dir.join(name), bytes).is_err())
    {
        return;
    }
    let Ok(index) = BlobIndex::open(Some(&dir)) else {
        return;
    };
    let _ = index.len();
    let _ = index.loaded();
    let _ = index.superseded();
    let mut ids = BTreeSet::new();
    let _ = index.for_each_blob(|id, _| {
        ids.insert(id);
        Ok(())
    });
    if let Ok(packs) = index.packs() {
        for (pack, _) in packs {
            if let Ok(blobs) = index.blobs_in_pack(&pack) {
                ids.extend(blobs.into_iter().map(|(id, _)| id));
            }
        }
    }
    // IDs found, and ones that share their first bytes with nothing.
    ids.insert(BlobId([0; 32]));
    ids.insert(BlobId([0xff; 32]));
    for id in &ids {
        let _ = index.get(id);
    }
});
