//! Key slot (JSON under `keys/<id>`): decoding, and opening where that is cheap.
//!
//! A slot carries its own Argon2 parameters. `KeySlot::open` refuses costs
//! beyond what custos writes (`KeySlot::excessive_cost`), but even the allowed
//! ones (up to 4 GiB, 64 passes) are far too slow for fuzzing, so a passphrase
//! slot is only opened when its parameters are tiny; otherwise only the
//! decoding and the cost check are fuzzed. Key-file slots (BLAKE3) are always
//! opened.
#![no_main]

use custos::crypto::keyslot::{Kdf, KeySlot, Secret};
use libfuzzer_sys::fuzz_target;
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let Ok(slot) = serde_json::from_slice::<KeySlot>(data) else {
        return;
    };
    let _ = slot.fingerprint();
    let _ = slot.excessive_cost();
    let _ = slot.kind();
    let _ = slot.open(&Secret::KeyFile(Zeroizing::new(vec![1; 64])));
    if let Kdf::Argon2id { m_kib, t, p, .. } = &slot.kdf {
        if *m_kib <= 64 && *t <= 2 && *p <= 2 {
            let _ = slot.open(&Secret::Passphrase(Zeroizing::new("fuzz".into())));
        }
    }
});
