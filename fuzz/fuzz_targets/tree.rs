//! Tree blob plaintext: CBOR `Tree` with its invariant checks.
#![no_main]

use custos::BlobId;
use custos::repofile::tree::Tree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = Tree::decode(&BlobId([0; 32]), data) {
        for n in &tree.nodes {
            let _ = n.name_lossy();
            let _ = tree.find(&n.name);
        }
        let _ = tree.encode();
    }
});
