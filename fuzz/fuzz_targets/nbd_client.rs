//! The NBD client of the image source (`source::image`): it talks only to
//! a `qemu-nbd` that custos starts, but what that server answers about an
//! image (a damaged or hostile one) is decoded here. The handshake and the
//! reads must fail with an error, never panic, hang or allocate beyond
//! what a reply may hold.
//!
//! Input: a count byte (reads = count % 4), per read an offset (u32 BE) and
//! a length (u16 BE), then the server's side of the conversation (what the
//! client writes is dropped).
#![no_main]

use custos::image::fuzzing::nbd_client;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&count, mut rest)) = data.split_first() else {
        return;
    };
    let mut reads = Vec::new();
    for _ in 0..count % 4 {
        let Some((r, tail)) = rest.split_first_chunk::<6>() else {
            return;
        };
        let offset = u64::from(u32::from_be_bytes([r[0], r[1], r[2], r[3]]));
        reads.push((offset, u32::from(u16::from_be_bytes([r[4], r[5]]))));
        rest = tail;
    }
    let _ = nbd_client(rest, &reads);
});
