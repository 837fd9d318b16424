//! Decoder robustness in the ordinary test run (coverage-guided fuzzing of
//! the same decoders is in `fuzz/`, run by `.ci/fuzz.sh`): every
//! decoder of a stored format is fed random bytes and mutated valid
//! encodings; it must return an error or a value, never panic, hang or
//! allocate without bound. Each property runs a few hundred cases in CI;
//! `PROPTEST_CASES=100000 cargo test --test decoders` runs a longer campaign.

use custos::crypto::keyslot::{KdfParams, KeySlot, Secret};
use custos::crypto::{MasterKey, ObjectKind};
use custos::repofile::config::RepoConfig;
use custos::repofile::index::IndexFile;
use custos::repofile::pack::{read_header, BlobKind, Compression, PackWriter};
use custos::repofile::snapshot::Snapshot;
use custos::repofile::tree::Tree;
use custos::repofile::{from_cbor, open_object, seal_object};
use custos::{BlobId, PackId};
use proptest::prelude::*;
use zeroize::Zeroizing;

/// Valid encodings to mutate: a pack, a tree, an index, a sealed object, a
/// key slot, a config.
struct Samples {
    keys: custos::crypto::Keys,
    pack_id: PackId,
    pack: Vec<u8>,
    tree: Vec<u8>,
    sealed: Vec<u8>,
    slot: Vec<u8>,
}

fn samples() -> Samples {
    let master = MasterKey::generate();
    let keys = master.keys();
    let mut w = PackWriter::new(&keys, 1 << 16);
    for i in 0..4u8 {
        let data = vec![i; 100 + usize::from(i)];
        w.add(
            BlobKind::Data,
            keys.blob_id(&data),
            Compression::Raw,
            &data,
            data.len() as u32,
        );
    }
    let finished = w.finish();
    let tree = Tree::default().encode();
    let sealed = seal_object(&keys, ObjectKind::Index, &[9; 32], &IndexFile::default());
    let slot = KeySlot::create(
        &master,
        &Secret::KeyFile(Zeroizing::new(vec![1; 64])),
        KdfParams {
            m_kib: 1024,
            t: 1,
            p: 1,
        },
    )
    .unwrap();
    Samples {
        keys,
        pack_id: finished.id,
        pack: finished.bytes,
        tree,
        sealed,
        slot: serde_json::to_vec(&slot).unwrap(),
    }
}

/// A valid encoding with a few bytes changed, or cut short, or extended.
fn mutate(base: &[u8], edits: &[(usize, u8)], cut: Option<usize>, extra: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for (at, x) in edits {
        if !v.is_empty() {
            let i = at % v.len();
            v[i] ^= x | 1;
        }
    }
    if let Some(c) = cut {
        v.truncate(c % (v.len() + 1));
    }
    v.extend_from_slice(extra);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let s = samples();
        let _ = read_header(&s.keys, &s.pack_id, &bytes);
        let _ = Tree::decode(&BlobId([0; 32]), &bytes);
        let _ = from_cbor::<IndexFile>("index", &bytes);
        let _ = from_cbor::<Snapshot>("snapshot", &bytes);
        let _ = open_object::<IndexFile>(&s.keys, ObjectKind::Index, &[9; 32], "index", &bytes);
        let _ = RepoConfig::decode_unverified(&bytes);
        if let Ok(slot) = serde_json::from_slice::<KeySlot>(&bytes) {
            let _ = slot.open(&Secret::KeyFile(Zeroizing::new(vec![1; 64])));
        }
    }

    #[test]
    fn mutated_encodings_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
        extra in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let s = samples();
        let pack = mutate(&s.pack, &edits, cut, &extra);
        if let Ok(entries) = read_header(&s.keys, &s.pack_id, &pack) {
            // A header that still authenticates is the original one.
            prop_assert!(edits.is_empty() || entries.len() == 4);
        }
        let _ = Tree::decode(&BlobId([0; 32]), &mutate(&s.tree, &edits, cut, &extra));
        let sealed = mutate(&s.sealed, &edits, cut, &extra);
        if open_object::<IndexFile>(&s.keys, ObjectKind::Index, &[9; 32], "index", &sealed).is_ok() {
            prop_assert_eq!(&sealed[..s.sealed.len().min(sealed.len())], &s.sealed[..s.sealed.len().min(sealed.len())]);
        }
        if let Ok(slot) = serde_json::from_slice::<KeySlot>(&mutate(&s.slot, &edits, cut, &extra)) {
            let _ = slot.open(&Secret::KeyFile(Zeroizing::new(vec![1; 64])));
        }
    }
}
