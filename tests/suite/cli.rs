//! End-to-end tests of the command line on local repositories: backup and
//! restore fidelity, deduplication, streams, keys, and bad input.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::common::cli::{
    assert_same_content, flip_byte, make_tree, objects, pseudo_random, restored, Env,
};

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn set_mtime(p: &Path, secs: i64, nsec: i64) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let ts = libc::timespec {
        tv_sec: secs as _,
        tv_nsec: nsec as _,
    };
    // SAFETY: valid path and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [ts, ts].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", p.display());
}

fn mknod(p: &Path, mode: u32, dev: u64) {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid path.
    let r = unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev as libc::dev_t) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

/// Every item of CONTRACT.md's "Restore fidelity" list, checked field by field.
#[test]
fn restore_fidelity() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();

    // Regular file with content, mode and mtime (nanoseconds).
    let a = src.join("a.txt");
    std::fs::write(&a, b"hello fidelity\n").unwrap();
    std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o640)).unwrap();
    // Extended attribute with binary value (skipped where the fs has none).
    let xattrs_supported = xattr::set(&a, "user.custos.test", b"\x00\xffvalue").is_ok();
    set_mtime(&a, 1_600_000_000, 123_456_789);
    // Setuid executable.
    let exe = src.join("tool");
    std::fs::write(&exe, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
    // Empty file and empty directory with its own mode.
    std::fs::write(src.join("empty"), b"").unwrap();
    std::fs::create_dir(src.join("emptydir")).unwrap();
    std::fs::set_permissions(src.join("emptydir"), std::fs::Permissions::from_mode(0o750)).unwrap();
    // Symlinks, one dangling.
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    // Hard links.
    std::fs::write(src.join("hard1"), b"linked content").unwrap();
    std::fs::hard_link(src.join("hard1"), src.join("hard2")).unwrap();
    // Sparse file: 64 MiB with two bytes of data.
    let sparse = src.join("sparse.img");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&sparse).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(b"X", 10 << 20).unwrap();
        f.write_all_at(b"Y", (64 << 20) - 1).unwrap();
    }
    // Name that is not valid UTF-8.
    let latin1 = src.join(OsStr::from_bytes(b"caf\xe9.txt"));
    std::fs::write(&latin1, b"latin-1 name").unwrap();
    // Very long path: nested 200-byte names to about 3 000 bytes, and a 255-byte file name.
    let mut deep = src.join("deep");
    for i in 0..14 {
        deep = deep.join(format!("{i:02}{}", "d".repeat(198)));
    }
    std::fs::create_dir_all(&deep).unwrap();
    let long_file = deep.join("f".repeat(255));
    std::fs::write(&long_file, b"far away").unwrap();
    // FIFO; device and owner only as root.
    mknod(&src.join("fifo"), libc::S_IFIFO | 0o600, 0);
    if is_root() {
        mknod(
            &src.join("null"),
            libc::S_IFCHR | 0o666,
            libc::makedev(1, 3),
        );
        std::os::unix::fs::chown(&a, Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(src.join("link"), Some(4321), Some(8765)).unwrap();
    }
    set_mtime(&src.join("emptydir"), 1_500_000_000, 1);
    set_mtime(&src.join("link"), 1_400_000_000, 5);

    let src_s = src.to_str().unwrap();
    env.ok(&["backup", src_s]);
    let target = env.path("restore");
    // CONTRACT's fidelity list holds with --privileged (setuid, devices).
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
        "--privileged",
    ]);
    let out = restored(&target, &src);

    let walk = |root: &Path| {
        let mut v = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                    stack.push(p.clone());
                }
                v.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
        v.sort();
        v
    };
    let names = walk(&src);
    assert_eq!(names, walk(&out), "restored tree has other entries");
    for rel in &names {
        let (s, r) = (src.join(rel), out.join(rel));
        let (ms, mr) = (
            std::fs::symlink_metadata(&s).unwrap(),
            std::fs::symlink_metadata(&r).unwrap(),
        );
        let what = rel.display();
        assert_eq!(ms.file_type(), mr.file_type(), "type of {what}");
        if !ms.file_type().is_symlink() {
            assert_eq!(ms.mode(), mr.mode(), "mode of {what}");
        }
        assert_eq!(
            (ms.mtime(), ms.mtime_nsec()),
            (mr.mtime(), mr.mtime_nsec()),
            "mtime of {what}"
        );
        if is_root() {
            assert_eq!(
                (ms.uid(), ms.gid()),
                (mr.uid(), mr.gid()),
                "owner of {what}"
            );
        }
        if ms.is_file() {
            assert_eq!(
                std::fs::read(&s).unwrap(),
                std::fs::read(&r).unwrap(),
                "content of {what}"
            );
        }
        if ms.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(&s).unwrap(),
                std::fs::read_link(&r).unwrap(),
                "target of {what}"
            );
        }
        if ms.file_type().is_char_device() {
            assert_eq!(ms.rdev(), mr.rdev(), "device of {what}");
        }
    }
    use std::os::unix::fs::FileTypeExt;
    if xattrs_supported {
        assert_eq!(
            xattr::get(out.join("a.txt"), "user.custos.test")
                .unwrap()
                .as_deref(),
            Some(&b"\x00\xffvalue"[..]),
            "extended attribute"
        );
    }
    let (h1, h2) = (
        std::fs::metadata(out.join("hard1")).unwrap(),
        std::fs::metadata(out.join("hard2")).unwrap(),
    );
    assert_eq!(h1.ino(), h2.ino(), "hard links restored as hard links");
    let sp = std::fs::metadata(out.join("sparse.img")).unwrap();
    assert_eq!(sp.len(), 64 << 20);
    assert!(
        sp.blocks() * 512 < 1 << 20,
        "sparse file restored with holes ({} blocks)",
        sp.blocks()
    );
    assert!(std::fs::symlink_metadata(out.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(out.join(long_file.strip_prefix(&src).unwrap()).exists());
}

#[test]
fn dedup_and_change_detection() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    let vm = src.join("vm.img");
    let base = pseudo_random(24 << 20, 7);
    std::fs::write(&vm, &base).unwrap();
    let s = src.to_str().unwrap();

    let first = env.json(&["backup", s]);
    assert!(first["bytes_added"].as_u64().unwrap() > 20 << 20);

    // Unchanged: nothing read, nothing added.
    let second = env.json(&["backup", s]);
    assert_eq!(second["bytes_read"].as_u64(), Some(0), "{second}");
    // Only the tree of the ancestor directory (whose mtime moved as the cache
    // and repository inside it changed) is new.
    assert!(second["bytes_added"].as_u64().unwrap() < 4096, "{second}");
    assert_eq!(second["files_unchanged"], first["files"]);

    // Insert bytes in the middle: only the chunks around the edit are new.
    let mut edited = base.clone();
    edited.splice(12 << 20..12 << 20, b"a few inserted bytes".iter().copied());
    std::fs::write(&vm, &edited).unwrap();
    let third = env.json(&["backup", s]);
    let added = third["bytes_added_raw"].as_u64().unwrap();
    assert!(added < 6 << 20, "inserting 20 bytes added {added} bytes");
    assert_eq!(
        third["files_read"].as_u64(),
        Some(1),
        "only the changed file is read: {third}"
    );

    // --force reads everything and still adds nothing new.
    let forced = env.json(&["backup", "--force", s]);
    assert!(forced["bytes_read"].as_u64().unwrap() > 24 << 20);
    assert!(forced["bytes_added"].as_u64().unwrap() < 4096, "{forced}");

    let stats = env.json(&["stats"]);
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 3.0, "{stats}");

    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_content(&src, &restored(&target, &src));
    env.ok(&["check", "--read-data"]);
}

#[test]
fn stdin_stream_and_dump() {
    let env = Env::local();
    env.ok(&["init"]);
    let dump = pseudo_random(5 << 20, 3);
    let id = env.ok_stdin(
        &[
            "backup",
            "--stdin",
            "--stdin-name",
            "db.sql",
            "--service",
            "db1",
            "--tag",
            "nightly",
        ],
        &dump,
    );
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let out = env.cmd().args(["dump", id, "/db.sql"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, dump);
    let out = env.cmd().args(["dump", &id[..8]]).output().unwrap();
    assert_eq!(out.stdout, dump, "a stream snapshot dumps without a path");
    let snaps = env.json(&["snapshots", "--service", "db1"]);
    let s = &snaps[0];
    assert_eq!(s["id"], id);
    assert_eq!(s["service"], "db1");
    assert_eq!(s["tags"][0], "nightly");
    assert_eq!(s["paths"][0], "/db.sql");
    assert!(s["time"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .is_ok());
    assert_eq!(
        env.json(&["snapshots", "--service", "other"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn ls_dump_and_partial_restore() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    let s = src.to_str().unwrap();
    env.ok(&["backup", s, "--time", "2026-01-01T00:00:00Z"]);
    let listing = env.ok(&["ls", "--recursive", "latest", s]);
    assert!(listing.contains("docs/readme.txt"), "{listing}");
    let file = format!("{s}/docs/deep/er/data.bin");
    let out = env.cmd().args(["dump", "latest", &file]).output().unwrap();
    assert_eq!(out.stdout, pseudo_random(300_000, 1));
    let target = env.path("partial");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--include",
        "*.txt",
    ]);
    let r = restored(&target, &src);
    assert!(r.join("docs/readme.txt").exists());
    assert!(!r.join("big.bin").exists());
    // A plain path: only the trees on its way are read, and only it and its
    // parents come back.
    let one = env.path("one");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        one.to_str().unwrap(),
        "--include",
        &file,
    ]);
    let r = restored(&one, &src);
    assert_eq!(
        std::fs::read(r.join("docs/deep/er/data.bin")).unwrap(),
        pseudo_random(300_000, 1)
    );
    assert!(!r.join("docs/readme.txt").exists());
    assert!(!r.join("big.bin").exists());
    let snaps = env.json(&["snapshots"]);
    assert_eq!(snaps[0]["time"], "2026-01-01T00:00:00Z");
    // --at picks the newest snapshot at or before the time.
    env.fails(
        &[
            "restore",
            "--at",
            "2025-06-01T00:00:00Z",
            "--target",
            env.path("x").to_str().unwrap(),
        ],
        1,
    );
    env.ok(&[
        "restore",
        "--at",
        "2026-02-01T00:00:00Z",
        "--target",
        env.path("y").to_str().unwrap(),
    ]);
}

#[test]
fn excludes_and_unreadable_file_is_reported() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    std::fs::write(src.join("skip.tmp"), b"temporary").unwrap();
    // An entry whose read fails: as root permissions do not stop reads, so use a
    // file the kernel refuses to read at offset 0 (/proc/self/mem).
    let unreadable = if is_root() {
        "/proc/self/mem".to_string()
    } else {
        let p = src.join("secret");
        std::fs::write(&p, b"no").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).unwrap();
        p.to_string_lossy().into_owned()
    };
    let mut args = vec![
        "--json",
        "backup",
        "--exclude",
        "*.tmp",
        src.to_str().unwrap(),
    ];
    if is_root() {
        args.push(&unreadable);
    }
    let o = env.run(&args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "unreadable entry must give exit code 1: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&unreadable),
        "warning names the file: {stderr}"
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["errors"][0]["path"], unreadable.as_str());
    // The snapshot exists and lists the error; everything else is in it.
    let snaps = env.json(&["snapshots"]);
    assert_eq!(
        snaps[0]["summary"]["errors"][0]["path"],
        unreadable.as_str()
    );
    let listing = env.ok(&["ls", "latest"]);
    assert!(!listing.contains("skip.tmp"));
    assert!(listing.contains("big.bin"));
}

#[test]
fn bad_input_gives_clear_errors() {
    let env = Env::local();
    // Missing repository.
    let e = env.fails(&["snapshots"], 2);
    assert!(e.contains("no repository at"), "{e}");
    env.ok(&["init"]);
    // init on an existing repository.
    let e = env.fails(&["init"], 2);
    assert!(e.contains("already exists"), "{e}");
    // Wrong passphrase.
    let mut wrong = env.cmd();
    wrong.env("CUSTOS_PASSWORD", "not it").arg("snapshots");
    let o = wrong.output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.starts_with("error: wrong passphrase"), "{e}");
    // No passphrase at all.
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no passphrase"));
    // Unknown scheme, missing source path, ambiguous or unknown snapshot.
    assert!(env
        .fails(&["-r", "ftp://x/y", "snapshots"], 2)
        .contains("unknown repository scheme"));
    assert!(env
        .fails(&["backup", "/definitely/not/here"], 2)
        .contains("no such file"));
    assert!(env.fails(&["ls", "deadbeef"], 1).contains("not found"));
    // Unreachable object store: exit code 3 after retries.
    let o = env
        .cmd()
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .env("CUSTOS_BACKEND_RETRIES", "1")
        .args(["-r", "s3://bucket/prefix", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The repository is still sound after all that.
    env.ok(&["check"]);
}

#[test]
fn damaged_objects_are_detected_and_named() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["check", "--read-data"]);

    // A flipped byte in the pack holding big.bin's data: check names the file,
    // and files stored elsewhere still restore. big.bin is nine tenths of
    // the data; the workers decide where the other files' blobs lie, which
    // can be around any one offset but not around three a quarter apart.
    let data_packs = objects(&env.repo, "data");
    let mut found = false;
    for (i, pack) in data_packs.iter().enumerate() {
        let before = std::fs::read(pack).unwrap();
        for quarter in 1..=3i64 {
            flip_byte(pack, before.len() as i64 * quarter / 4);
            let o = env.run(&["check", "--read-data"]);
            let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
            assert_eq!(
                o.status.code(),
                Some(1),
                "flip in {} not detected: {stderr}",
                pack.display()
            );
            let hit = stderr.contains("big.bin");
            if hit {
                found = true;
                assert!(stderr.contains("damaged data affects"), "{stderr}");
                // Structure-only check does not read packs.
                env.ok(&["check"]);
                // Restoring the damaged file fails with exit 1; the others restore.
                let t = env.path(&format!("t1-{i}"));
                let e = env.fails(&["restore", "latest", "--target", t.to_str().unwrap()], 1);
                assert!(e.contains("big.bin"), "{e}");
                let t = env.path(&format!("t2-{i}"));
                env.ok(&[
                    "restore",
                    "latest",
                    "--target",
                    t.to_str().unwrap(),
                    "--exclude",
                    "big.bin",
                ]);
                assert!(restored(&t, &src).join("docs/readme.txt").exists());
            }
            std::fs::write(pack, &before).unwrap();
            if hit {
                break;
            }
        }
    }
    assert!(found, "no pack held big.bin");
    env.ok(&["check", "--read-data"]);

    // Truncated pack: reported as truncated, named.
    let pack = &data_packs[0];
    let before = std::fs::read(pack).unwrap();
    std::fs::write(pack, &before[..before.len() / 2]).unwrap();
    let e = env.fails(&["check"], 1);
    assert!(e.contains("truncated"), "{e}");
    std::fs::write(pack, &before).unwrap();

    // Truncated index object: a clear error from check; backups still work.
    let index = &objects(&env.repo, "index")[0];
    let before = std::fs::read(index).unwrap();
    std::fs::write(index, &before[..before.len() / 2]).unwrap();
    std::fs::remove_dir_all(env.path("cache")).unwrap();
    let e = env.fails(&["check"], 1);
    assert!(e.contains("index/") && e.contains("damaged"), "{e}");
    std::fs::write(index, &before).unwrap();
    std::fs::remove_dir_all(env.path("cache")).unwrap();

    // Tampered snapshot: listed as damaged, exit 1.
    let snap = &objects(&env.repo, "snapshots")[0];
    let before = std::fs::read(snap).unwrap();
    flip_byte(snap, -3);
    let e = env.fails(&["snapshots"], 1);
    assert!(e.contains("damaged"), "{e}");
    env.fails(&["check"], 1);
    std::fs::write(snap, &before).unwrap();

    // Tampered config: refused with the reason.
    let config = Path::new(&env.repo).join("config");
    let before = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, before.replace("16777216", "16777218")).unwrap();
    let e = env.fails(&["snapshots"], 1);
    assert!(e.contains("config is damaged"), "{e}");
    std::fs::write(&config, before).unwrap();

    // Tampered key slot: it no longer opens.
    let key = &objects(&env.repo, "keys")[0];
    let before = std::fs::read_to_string(key).unwrap();
    let v: serde_json::Value = serde_json::from_str(&before).unwrap();
    let w = v["wrapped"].as_str().unwrap();
    let flipped = format!("{}{}", if w.starts_with('0') { "1" } else { "0" }, &w[1..]);
    std::fs::write(key, before.replace(w, &flipped)).unwrap();
    env.fails(&["snapshots"], 2);
    std::fs::write(key, before).unwrap();

    env.ok(&["check", "--read-data"]);
}

#[test]
fn key_file_and_key_slots() {
    let env = Env::local();
    let kf = env.path("repo.key");
    let kfs = kf.to_str().unwrap();
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args(["--key-file", kfs, "init"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::metadata(&kf).unwrap().len(), 64);
    let src = env.path("src");
    make_tree(&src);
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args(["--key-file", kfs, "backup", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    // The passphrase does not open a key-file repository...
    env.fails(&["snapshots"], 2);
    // ...until a passphrase slot is added.
    let pw = env.path("pw");
    crate::common::cli::write_secret(&pw, "second passphrase\n");
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args([
            "--key-file",
            kfs,
            "key",
            "add",
            "--new-password-file",
            pw.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args([
            "--password-file",
            pw.to_str().unwrap(),
            "--json",
            "key",
            "list",
        ])
        .output()
        .unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    // Remove the key-file slot; the passphrase still opens, the key file no longer does.
    let kf_slot = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "key-file")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args([
            "--password-file",
            pw.to_str().unwrap(),
            "key",
            "remove",
            &kf_slot[..8],
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args(["--key-file", kfs, "snapshots"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    // The last slot cannot be removed.
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args([
            "--password-file",
            pw.to_str().unwrap(),
            "key",
            "remove",
            &keys[0]["id"].as_str().unwrap()[..8],
        ])
        .output()
        .unwrap();
    let last = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "passphrase")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let _ = o;
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args([
            "--password-file",
            pw.to_str().unwrap(),
            "key",
            "remove",
            &last[..8],
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn key_add_checks_its_secret_and_the_slot_in_use_is_kept_unless_forced() {
    let env = Env::local();
    env.ok(&["init"]);
    // An empty passphrase and a short key file make no slot.
    let empty = env.path("empty.pass");
    crate::common::cli::write_secret(&empty, "\n");
    let e = env.fails(
        &["key", "add", "--new-password-file", empty.to_str().unwrap()],
        2,
    );
    assert!(e.contains("is empty"), "{e}");
    let short = env.path("short.key");
    crate::common::cli::write_secret(&short, [7u8; 16]);
    let e = env.fails(
        &["key", "add", "--new-key-file", short.to_str().unwrap()],
        2,
    );
    assert!(e.contains("at least 32"), "{e}");
    let keys = env.json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");

    // A second slot; `key list` marks the one the passphrase opens.
    let other = env.path("other.pass");
    crate::common::cli::write_secret(&other, "the other passphrase\n");
    env.ok(&["key", "add", "--new-password-file", other.to_str().unwrap()]);
    let keys = env.json(&["key", "list"]);
    let current: Vec<&serde_json::Value> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{keys}");
    let mine = current[0]["id"].as_str().unwrap().to_string();
    assert!(env
        .ok(&["key", "list"])
        .contains(&format!("* {}", &mine[..8])));

    // Removing the slot in use is refused without --force ...
    let e = env.fails(&["key", "remove", &mine[..8]], 1);
    assert!(e.contains("--force"), "{e}");
    env.ok(&["snapshots"]);
    // ... and with it, the passphrase no longer opens; the other one does.
    env.ok(&["key", "remove", &mine[..8], "--force"]);
    env.fails(&["snapshots"], 2);
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args(["--password-file", other.to_str().unwrap(), "snapshots"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
