//! Snapshot object plaintext: CBOR `Snapshot` (the sealed path is `sealed_object`).
#![no_main]

use custos::repofile::from_cbor;
use custos::repofile::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(snap) = from_cbor::<Snapshot>("snapshot", data) {
        let _ = snap.timestamp();
    }
});
