//! `link/startup-order.txt`, the functions build.rs has lld place first in
//! release builds (docs/performance.md, "The floor of the short steps"),
//! belongs to this tree: its names are mangled by one toolchain for one set
//! of dependency versions, so a list made for another rustc or another
//! Cargo.lock would silently stop applying.

use std::path::Path;
use std::process::Command;

const REMAKE: &str = "run `bash link/startup-order.sh` (needs valgrind) and commit the list";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn order() -> String {
    std::fs::read_to_string(root().join("link/startup-order.txt")).unwrap()
}

fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

#[test]
fn the_startup_order_was_made_with_this_toolchain_and_lockfile() {
    let text = order();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-V").output().unwrap();
    assert!(out.status.success());
    let rustc = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        header(&text, "# rustc:"),
        Some(rustc.trim()),
        "link/startup-order.txt was made with another rustc: {REMAKE}"
    );
    let lock = std::fs::read(root().join("Cargo.lock")).unwrap();
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &lock));
    assert_eq!(
        header(&text, "# Cargo.lock sha256:"),
        Some(digest.as_str()),
        "link/startup-order.txt was made for another Cargo.lock: {REMAKE}"
    );
}

#[test]
fn the_startup_order_lists_the_start_and_the_derivation_once_each() {
    let text = order();
    let names: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    for name in &names {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_$.".contains(&b)),
            "not a symbol name: {name:?}"
        );
    }
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a name is listed twice");
    // What runs before the derivation (custos's command line and opening
    // the repository) and the derivation itself.
    for part in [
        "clap_builder",
        "6custos3cli",
        "10repository",
        "hash_password_into",
        "Blake2b",
    ] {
        assert!(
            names.iter().any(|n| n.contains(part)),
            "no function of {part} listed: {REMAKE}"
        );
    }
}
