//! Build script: the layout of the release binary's start-up code.
//!
//! Every short command (`check`, an unchanged backup, `forget --prune`)
//! peaks while Argon2id derives the key: 64 MiB, plus whatever else is
//! resident at that moment, and most of that is pages of this binary. The
//! kernel maps a file's pages in blocks (64 KiB around a fault, or a whole
//! cached folio), so the ~1 MiB of functions run before the derivation,
//! spread over 22 MB of code, kept about 7 MiB of it resident.
//! `link/startup-order.txt` lists those functions (written by
//! `link/startup-order.sh` from a release build) and lld places them first
//! in `.text`. `-z pack-relative-relocs` stores the relative relocations
//! packed (RELR, glibc >= 2.36), so the loader reads kilobytes of them
//! instead of 850 KiB. docs/performance.md has the measurements.
//!
//! Only release builds of the `custos` binary for x86_64-unknown-linux-gnu
//! by rustc >= 1.90 without a linker of their own get these options: that
//! toolchain links with its own lld, which has `--symbol-ordering-file`.
//! Any other build keeps the default layout, and `CUSTOS_LINK_ORDER=off`
//! turns it off. Names the list has and a build lacks (another toolchain,
//! changed dependencies) are skipped by lld: the binary is then only laid
//! out less well. The list's header names the rustc and the Cargo.lock it
//! was made for; tests/suite/build_layout.rs fails when they are not this
//! tree's.

use std::env;
use std::path::Path;
use std::process::Command;

const ORDER_FILE: &str = "link/startup-order.txt";

fn main() {
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    println!("cargo:rerun-if-env-changed=CUSTOS_LINK_ORDER");
    if env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    if let Some(why) = default_layout_reason() {
        println!("cargo:warning=custos: default code layout ({why})");
        return;
    }
    let manifest = env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let order = Path::new(&manifest).join(ORDER_FILE);
    if let Err(e) = std::fs::metadata(&order) {
        println!(
            "cargo:warning=custos: default code layout ({}: {e})",
            order.display()
        );
        return;
    }
    for arg in [
        format!("-Wl,--symbol-ordering-file={}", order.display()),
        "-Wl,--no-warn-symbol-ordering".to_string(),
        "-Wl,-z,pack-relative-relocs".to_string(),
    ] {
        println!("cargo:rustc-link-arg-bin=custos={arg}");
    }
}

/// Why this release build keeps the default layout, or `None` when it gets
/// the start-up order.
fn default_layout_reason() -> Option<String> {
    if env::var("CUSTOS_LINK_ORDER").as_deref() == Ok("off") {
        return Some("CUSTOS_LINK_ORDER=off".into());
    }
    let target = env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" {
        return Some(format!("target {target}"));
    }
    if env::var_os("RUSTC_LINKER").is_some() {
        return Some("a linker is configured".into());
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") || flags.contains("fuse-ld") {
        return Some("RUSTFLAGS choose the linker".into());
    }
    match rustc_version() {
        Some((1, minor)) if minor >= 90 => None,
        Some((major, minor)) => Some(format!(
            "rustc {major}.{minor} does not link with its own lld"
        )),
        None => Some("rustc's version unknown".into()),
    }
}

/// (major, minor) of `rustc -V`: "rustc 1.95.0 (59807616e 2026-04-14)".
fn rustc_version() -> Option<(u32, u32)> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-V").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let version = line.split_whitespace().nth(1)?;
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}
