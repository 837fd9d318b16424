//! A restore writes only inside its target, whatever the target already
//! holds (symlinks at a file's, a directory's or a parent's path, a symlinked
//! marker), for `--overwrite`, a resumed restore and `--verify`; it does all
//! it can when one entry cannot be made; paths longer than PATH_MAX restore;
//! privileged content (setuid and setgid bits, file capabilities, device
//! nodes) needs `--privileged`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::common::cli::{assert_same_content, make_tree, pseudo_random, restored, Env};

const MARKER: &str = ".custos-restore-in-progress";

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Files outside every target that a restore must never touch: a setuid
/// "binary", a plain file and an empty directory.
struct Outside {
    dir: PathBuf,
}

impl Outside {
    fn new(env: &Env) -> Outside {
        let dir = env.path("outside");
        std::fs::create_dir_all(dir.join("empty-dir")).unwrap();
        std::fs::write(dir.join("victim"), b"precious, not to be overwritten").unwrap();
        std::fs::set_permissions(dir.join("victim"), std::fs::Permissions::from_mode(0o4750))
            .unwrap();
        std::fs::write(dir.join("victim2"), b"also precious").unwrap();
        std::fs::set_permissions(dir.join("victim2"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        Outside { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Everything is as it was: same bytes, same modes, nothing added.
    fn assert_untouched(&self, when: &str) {
        let check = |name: &str, content: &[u8], mode: u32| {
            let p = self.dir.join(name);
            assert_eq!(
                std::fs::read(&p).unwrap(),
                content,
                "{when}: {name} changed"
            );
            assert_eq!(
                p.metadata().unwrap().permissions().mode() & 0o7777,
                mode,
                "{when}: mode of {name} changed"
            );
        };
        check("victim", b"precious, not to be overwritten", 0o4750);
        check("victim2", b"also precious", 0o600);
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["empty-dir", "victim", "victim2"],
            "{when}: entries added outside"
        );
        assert_eq!(
            std::fs::read_dir(self.dir.join("empty-dir"))
                .unwrap()
                .count(),
            0,
            "{when}: something was written into a directory outside the target"
        );
    }
}

fn symlink(to: &Path, at: &Path) {
    std::os::unix::fs::symlink(to, at).unwrap();
}

fn restore_json(env: &Env, args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut a = vec!["--json", "restore"];
    a.extend_from_slice(args);
    let o = env.run(&a);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn overwrite_never_follows_a_symlink_at_a_file_a_directory_or_a_parent() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let outside = Outside::new(&env);

    // A symlink where the snapshot has a file.
    let t1 = env.path("t-file");
    let inside = restored(&t1, &src);
    std::fs::create_dir_all(&inside).unwrap();
    symlink(&outside.path("victim"), &inside.join("big.bin"));
    symlink(&outside.path("victim2"), &inside.join("empty"));
    // A symlink where the snapshot has a directory.
    let t2 = env.path("t-dir");
    let inside2 = restored(&t2, &src);
    std::fs::create_dir_all(&inside2).unwrap();
    symlink(&outside.path("empty-dir"), &inside2.join("docs"));
    // A symlink at the first component of every restored path.
    let t3 = env.path("t-parent");
    std::fs::create_dir_all(&t3).unwrap();
    let first = src.components().nth(1).unwrap().as_os_str().to_owned();
    symlink(&outside.path("empty-dir"), &t3.join(&first));
    // A symlinked marker.
    let t4 = env.path("t-marker");
    std::fs::create_dir_all(&t4).unwrap();
    std::fs::write(t4.join("live"), b"live").unwrap();
    symlink(&outside.path("victim"), &t4.join(MARKER));

    for t in [&t1, &t2, &t3, &t4] {
        env.ok(&[
            "restore",
            "latest",
            "--target",
            t.to_str().unwrap(),
            "--overwrite",
            "--verify",
        ]);
        outside.assert_untouched(&format!("restore into {}", t.display()));
        let out = restored(t, &src);
        assert_same_content(&src, &out);
        assert!(std::fs::symlink_metadata(out.join("big.bin"))
            .unwrap()
            .is_file());
        assert!(std::fs::symlink_metadata(out.join("docs"))
            .unwrap()
            .is_dir());
        assert!(
            !t.join(MARKER).exists(),
            "marker left after a complete restore"
        );
    }
    assert!(std::fs::symlink_metadata(t3.join(&first)).unwrap().is_dir());
    assert_eq!(std::fs::read(t4.join("live")).unwrap(), b"live");
}

#[test]
fn a_resumed_restore_never_follows_symlinks_and_goes_on_past_an_entry_it_cannot_make() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let outside = Outside::new(&env);

    // A directory in the way of the file `empty`: that entry is skipped,
    // named, everything else restored, exit 1, the marker kept for a rerun.
    let t = env.path("t");
    let inside = restored(&t, &src);
    std::fs::create_dir_all(inside.join("empty/in-the-way")).unwrap();
    let (code, v, stderr) = restore_json(
        &env,
        &["latest", "--target", t.to_str().unwrap(), "--overwrite"],
    );
    assert_eq!(code, 1, "{stderr}");
    let skipped = v["result"]["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{v}");
    assert!(
        skipped[0]["path"].as_str().unwrap().ends_with("/empty")
            && skipped[0]["reason"]
                .as_str()
                .unwrap()
                .contains("directory is in the way"),
        "{v}"
    );
    assert!(stderr.contains("/empty"), "{stderr}");
    assert_eq!(
        std::fs::read(inside.join("big.bin")).unwrap(),
        std::fs::read(src.join("big.bin")).unwrap()
    );
    assert!(
        inside.join("empty/in-the-way").is_dir(),
        "the directory was removed"
    );
    assert!(t.join(MARKER).exists());

    // Between the runs, someone puts symlinks where files and directories
    // were restored.
    std::fs::remove_dir_all(inside.join("empty")).unwrap();
    std::fs::remove_file(inside.join("big.bin")).unwrap();
    symlink(&outside.path("victim"), &inside.join("big.bin"));
    std::fs::remove_dir_all(inside.join("docs/deep")).unwrap();
    symlink(&outside.path("empty-dir"), &inside.join("docs/deep"));
    // The rerun resumes (no --overwrite) and replaces them.
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    outside.assert_untouched("resumed restore");
    assert_same_content(&src, &inside);
    assert!(std::fs::symlink_metadata(inside.join("docs/deep"))
        .unwrap()
        .is_dir());
    assert!(!t.join(MARKER).exists());
    let leftovers: Vec<_> = walk(&t)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".custos-partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            v.push(p);
        }
    }
    v
}

#[test]
fn a_file_whose_data_is_lost_is_named_and_not_left_looking_restored() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("kept.bin"), pseudo_random(200_000, 1)).unwrap();
    // Stored by the first backup, restored after the lost file in the
    // second: one file's loss does not stop the rest.
    std::fs::write(src.join("zz-after.txt"), b"restored after the lost one").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let first_packs = crate::common::cli::objects(&env.repo, "data");
    std::fs::write(src.join("lost.bin"), pseudo_random(300_000, 2)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    // The second backup wrote a data pack (lost.bin's content, the larger
    // one) and a tree pack: delete the data pack.
    let data_pack = crate::common::cli::objects(&env.repo, "data")
        .into_iter()
        .filter(|p| !first_packs.contains(p))
        .max_by_key(|p| p.metadata().unwrap().len())
        .unwrap();
    std::fs::remove_file(data_pack).unwrap();
    let t = env.path("t");
    let (code, v, stderr) = restore_json(&env, &["latest", "--target", t.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    let out = restored(&t, &src);
    let skipped: Vec<&str> = v["result"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert!(skipped.iter().any(|p| p.ends_with("/lost.bin")), "{v}");
    // No zero-filled file with a fresh mtime under the real name, no
    // temporary file left; everything else is there.
    assert!(!out.join("lost.bin").exists());
    assert!(walk(&t)
        .iter()
        .all(|p| !p.to_string_lossy().contains(".custos-partial")));
    assert_eq!(
        std::fs::read(out.join("kept.bin")).unwrap(),
        pseudo_random(200_000, 1)
    );
    assert_eq!(
        std::fs::read(out.join("zz-after.txt")).unwrap(),
        b"restored after the lost one"
    );
}

#[test]
fn a_path_longer_than_path_max_under_the_target_restores() {
    let env = Env::local();
    env.ok(&["init"]);
    // A source path of about 3 000 bytes ...
    let src = env.path("src");
    let mut deep = src.clone();
    for i in 0..14 {
        deep = deep.join(format!("{i:02}{}", "s".repeat(198)));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("leaf.txt"), b"far, far away").unwrap();
    std::fs::write(src.join("near.txt"), b"near").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    // ... under a target of about 1 400 bytes: more than 4 096 in all.
    let mut t = env.path("t");
    for i in 0..7 {
        t = t.join(format!("{i}{}", "t".repeat(199)));
    }
    std::fs::create_dir_all(&t).unwrap();
    let rel_leaf = restored(Path::new(""), &deep).join("leaf.txt");
    assert!(t.as_os_str().len() + 1 + rel_leaf.as_os_str().len() > 4096);
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--verify",
    ]);
    // Read it back relative to the target (the whole path is too long for
    // one system call).
    let out = std::process::Command::new("cat")
        .arg(&rel_leaf)
        .current_dir(&t)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"far, far away");
    assert_eq!(
        std::fs::read(restored(&t, &src).join("near.txt")).unwrap(),
        b"near"
    );
}

/// A valid version 2 `security.capability` value granting CAP_NET_RAW.
fn capability_value() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes()); // revision 2, effective
    v.extend_from_slice(&(1u32 << 13).to_le_bytes()); // permitted: CAP_NET_RAW
    v.extend_from_slice(&0u32.to_le_bytes()); // inheritable
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

#[test]
fn privileged_content_is_restored_only_when_asked() {
    if !is_root() {
        eprintln!("SKIP: privileged content is only created by root");
        return;
    }
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let suid = src.join("su-like");
    std::fs::write(&suid, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let sgid = src.join("sg-like");
    std::fs::write(&sgid, b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&sgid, std::fs::Permissions::from_mode(0o2755)).unwrap();
    let capped = src.join("ping-like");
    std::fs::write(&capped, b"#!/bin/sh\n").unwrap();
    let caps = xattr::set(&capped, "security.capability", &capability_value()).is_ok();
    let dev = src.join("null");
    let c = std::ffi::CString::new(dev.to_str().unwrap()).unwrap();
    // SAFETY: valid path.
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) },
        0
    );
    std::fs::write(src.join("plain"), b"plain").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);

    // Without the flag: dropped, listed, exit 0.
    let t = env.path("plain-restore");
    let (code, v, stderr) = restore_json(&env, &["latest", "--target", t.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let out = restored(&t, &src);
    let mode = |p: &Path| p.metadata().unwrap().mode() & 0o7777;
    assert_eq!(mode(&out.join("su-like")), 0o755);
    assert_eq!(mode(&out.join("sg-like")), 0o755);
    assert!(!out.join("null").exists());
    assert!(xattr::get(out.join("ping-like"), "security.capability")
        .unwrap()
        .is_none());
    let dropped: Vec<String> = v["result"]["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d["path"].as_str().unwrap(),
                d["reason"].as_str().unwrap()
            )
        })
        .collect();
    let listed = |name: &str, what: &str| {
        assert!(
            dropped.iter().any(|d| d.contains(name) && d.contains(what)),
            "{name} ({what}) not listed: {dropped:?}"
        );
    };
    listed("/su-like", "setuid");
    listed("/sg-like", "setgid");
    listed("/null", "device node");
    if caps {
        listed("/ping-like", "security.capability");
    }
    // Text output names them too.
    let t_text = env.path("text-restore");
    let o = env.run(&["restore", "latest", "--target", t_text.to_str().unwrap()]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(
        text.contains("--privileged") && text.contains("su-like"),
        "{text}"
    );

    // With it: everything, as the snapshot has it.
    let t2 = env.path("privileged-restore");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t2.to_str().unwrap(),
        "--privileged",
    ]);
    let out2 = restored(&t2, &src);
    assert_eq!(mode(&out2.join("su-like")), 0o4755);
    assert_eq!(mode(&out2.join("sg-like")), 0o2755);
    assert_eq!(
        out2.join("null").metadata().unwrap().rdev(),
        libc::makedev(1, 3)
    );
    if caps {
        assert_eq!(
            xattr::get(out2.join("ping-like"), "security.capability").unwrap(),
            Some(capability_value())
        );
    } else {
        eprintln!("note: this file system takes no security.capability: that part was not checked");
    }
}
