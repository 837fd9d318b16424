//! Shared by the fuzz targets (included with `#[path]`): fixed keys, so that
//! seed inputs sealed under them (see `corpus-seed/`) stay valid.
#![allow(dead_code)]

use std::sync::OnceLock;

use custos::crypto::{Keys, MasterKey};
use custos::PackId;

/// The master key every target uses.
pub const MASTER: [u8; 32] = [0x42; 32];
/// The pack ID the `pack_header` target authenticates headers under.
pub const PACK_ID: PackId = PackId([0x07; 32]);
/// The object ID the `sealed_object` target opens objects under.
pub const OBJECT_ID: [u8; 32] = [0x09; 32];

/// Sub-keys of [`MASTER`], derived once.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| MasterKey::from_bytes(MASTER).keys())
}
