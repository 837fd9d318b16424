//! Key slot (JSON under `keys/<id>`): decoding, and opening where that is cheap.
//!
//! A slot carries its own Argon2 parameters and `KeySlot::open` runs Argon2
//! with them, unbounded (up to 4 TiB of memory / 2^32 passes from the input).
//! So a passphrase slot is only opened when its parameters are tiny; otherwise
//! only the decoding is fuzzed. Key-file slots (BLAKE3) are always opened.
#![no_main]

use custos::crypto::keyslot::{Kdf, KeySlot, Secret};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let Ok(slot) = serde_json::from_slice::<KeySlot>(data) else {
        return;
    };
    let _ = slot.fingerprint();
    let _ = slot.kind();
    let _ = slot.open(&Secret::KeyFile(Zeroizing::new(vec![1; 64])));
    if let Kdf::Argon2id { m_kib, t, p, .. } = &slot.kdf {
        if *m_kib <= 64 && *t <= 2 && *p <= 2 {
            let _ = slot.open(&Secret::Passphrase(Zeroizing::new("fuzz".into())));
        }
    }
});
