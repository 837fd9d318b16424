//! What an object store answers about kept versions (`backend::versions`):
//! S3 `ListObjectVersions` and Azure `List Blobs` pages. The store is not
//! trusted: an answer must never panic or allocate without bound. The first
//! byte picks the parser.
#![no_main]

use custos::backend::versions::{parse_azure_blobs, parse_s3_versions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    if pick & 1 == 0 {
        let _ = parse_s3_versions(body, "tenant/");
    } else {
        let _ = parse_azure_blobs(body, "tenant/");
    }
});
