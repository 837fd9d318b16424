//! Index object plaintext: CBOR `IndexFile` (the sealed path is `sealed_object`).
#![no_main]

use custos::repofile::from_cbor;
use custos::repofile::index::IndexFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = from_cbor::<IndexFile>("index", data) {
        let _ = idx.blob_count();
        for b in idx.packs.iter().flat_map(|p| &p.blobs) {
            let _ = b.to_entry();
        }
    }
});
