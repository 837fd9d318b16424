//! What `qemu-img map --output=json` prints about an image (the image
//! source's extents): a damaged image must give an error, never a panic,
//! an overflow or extents that do not cover the disk from 0.
#![no_main]

use custos::image::fuzzing::qemu_img_map;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = qemu_img_map(data);
});
