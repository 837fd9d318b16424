//! VM disk images: a qcow2 backed up as the guest sees it (through
//! qemu-nbd, unallocated ranges not read), restored as a sparse raw file
//! or converted back to qcow2, and `qemu-img compare` between the original
//! and the restore passes; two VMs cloned from one template share its
//! chunks.

use std::path::Path;
use std::process::Command;

use crate::common::cli::{pseudo_random, Env};

fn qemu_ok() -> bool {
    ["qemu-img", "qemu-nbd", "qemu-io"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn run(argv: &[&str]) {
    let o = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        o.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A 64 MiB template disk: 24 MiB of pseudo-random "OS", then nothing.
fn template(dir: &Path) -> std::path::PathBuf {
    let raw = dir.join("template.raw");
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(64 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&pseudo_random(24 << 20, 7), 0).unwrap();
    let qcow = dir.join("template.qcow2");
    run(&[
        "qemu-img",
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        raw.to_str().unwrap(),
        qcow.to_str().unwrap(),
    ]);
    std::fs::remove_file(&raw).unwrap();
    qcow
}

#[test]
fn qcow2_images_back_up_as_guest_views_restore_and_compare() {
    if !qemu_ok() {
        crate::common::servers::missing("qemu-img, qemu-nbd and qemu-io (Debian qemu-utils)");
        return;
    }
    let env = Env::local();
    env.ok(&["init"]);
    let t = template(env.dir.path());
    // Two VMs cloned from the template, each with 1 MiB of its own.
    let vm1 = env.path("vm1.qcow2");
    let vm2 = env.path("vm2.qcow2");
    std::fs::copy(&t, &vm1).unwrap();
    std::fs::copy(&t, &vm2).unwrap();
    for (vm, seed, at) in [(&vm1, 11, "40M"), (&vm2, 12, "48M")] {
        let own = env.path(&format!("own-{seed}"));
        std::fs::write(&own, pseudo_random(1 << 20, seed)).unwrap();
        run(&[
            "qemu-io",
            "-f",
            "qcow2",
            "-c",
            &format!("write -s {} {at} 1M", own.display()),
            vm.to_str().unwrap(),
        ]);
    }

    let first = env.json(&[
        "backup",
        "--image",
        vm1.to_str().unwrap(),
        "--service",
        "vm1",
    ]);
    let second = env.json(&[
        "backup",
        "--image",
        vm2.to_str().unwrap(),
        "--service",
        "vm2",
    ]);
    // Stored bytes (the random data does not compress).
    let (a1, a2) = (
        first["bytes_added"].as_u64().unwrap(),
        second["bytes_added"].as_u64().unwrap(),
    );
    assert!(
        a1 >= 25 << 20,
        "the first VM stores the template and its own MiB: {first}"
    );
    assert!(
        a2 < 3 << 20,
        "the second VM adds little more than its own MiB ({a2} bytes): {second}"
    );
    eprintln!("first VM added {a1} bytes, the second {a2}");
    let listing = env.json(&["ls", first["id"].as_str().unwrap()]);
    assert!(listing.to_string().contains("vm1.raw"), "{listing}");

    // Back as a sparse raw disk, and as qcow2: qemu-img compare agrees.
    let raw_dir = env.path("raw");
    env.ok(&[
        "restore",
        first["id"].as_str().unwrap(),
        "--target",
        raw_dir.to_str().unwrap(),
    ]);
    let raw = raw_dir.join("vm1.raw");
    let md = std::fs::metadata(&raw).unwrap();
    assert_eq!(md.len(), 64 << 20);
    use std::os::unix::fs::MetadataExt;
    assert!(
        md.blocks() * 512 < 40 << 20,
        "holes stay holes: {} bytes allocated",
        md.blocks() * 512
    );
    run(&[
        "qemu-img",
        "compare",
        "-f",
        "qcow2",
        "-F",
        "raw",
        vm1.to_str().unwrap(),
        raw.to_str().unwrap(),
    ]);
    let q_dir = env.path("qcow");
    env.ok(&[
        "restore",
        first["id"].as_str().unwrap(),
        "--target",
        q_dir.to_str().unwrap(),
        "--image-format",
        "qcow2",
    ]);
    assert!(!q_dir.join("vm1.raw").exists());
    run(&[
        "qemu-img",
        "compare",
        vm1.to_str().unwrap(),
        q_dir.join("vm1.qcow2").to_str().unwrap(),
    ]);
}
