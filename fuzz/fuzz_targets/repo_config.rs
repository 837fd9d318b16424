//! Repository `config` object (JSON + MAC): decode, then verify the MAC under
//! the fixed key.
#![no_main]

#[path = "../common.rs"]
mod common;

use custos::repofile::config::RepoConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((cfg, mac)) = RepoConfig::decode_unverified(data) {
        let _ = cfg.verify(&mac, common::keys());
        let _ = cfg.encode(common::keys());
    }
});
