//! Pack header: the plaintext decoder (`decode_header`, where the parsing is)
//! and the authenticated path from a whole pack (`read_header`).
//!
//! Input: `data_len (u64 LE) | header plaintext` for `decode_header`; the
//! whole input is also read as a pack (ID `common::PACK_ID`).
#![no_main]

#[path = "../common.rs"]
mod common;

use custos::repofile::pack::{decode_header, read_header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((len, header)) = data.split_first_chunk::<8>() {
        let _ = decode_header("pack", header, u64::from_le_bytes(*len));
    }
    let _ = read_header(common::keys(), &common::PACK_ID, data);
});
