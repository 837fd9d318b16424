//! `custos mount`: every snapshot read-only through FUSE (fuse3's
//! fusermount3 and /dev/fuse, which `.ci/run` installs), files read through
//! the mount compared with the originals, then unmounted on SIGTERM.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::cli::{assert_same_content, make_tree, Env};

fn fuse_usable() -> bool {
    Path::new("/dev/fuse").exists()
        && std::process::Command::new("fusermount3")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn snapshots_read_through_the_mount_match_the_originals() {
    if !fuse_usable() {
        crate::common::servers::missing("FUSE (/dev/fuse and fusermount3, Debian fuse3)");
        return;
    }
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    std::os::unix::fs::symlink("docs/readme.txt", src.join("link")).unwrap();
    let s = src.to_str().unwrap();
    let first = env.json(&["backup", s, "--service", "web-1"]);
    std::fs::write(src.join("docs/readme.txt"), b"changed\n").unwrap();
    env.ok(&["backup", s, "--service", "web-1"]);

    let mnt = env.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut child = env
        .cmd()
        .arg("mount")
        .arg(&mnt)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let latest = mnt.join("latest");
    let mounted = wait_for(Duration::from_secs(30), || latest.exists());
    if !mounted {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("not mounted: {}", String::from_utf8_lossy(&out.stderr));
    }
    let inside = |root: &Path| root.join(src.strip_prefix("/").unwrap());

    // The newest snapshot, by the root link and by the service's.
    assert_same_content(&src, &inside(&latest));
    assert_same_content(&src, &inside(&mnt.join("services/web-1/latest")));
    assert_eq!(
        std::fs::read_link(inside(&latest).join("link")).unwrap(),
        Path::new("docs/readme.txt")
    );
    // The first snapshot by its ID still holds the old content.
    let short = &first["id"].as_str().unwrap()[..8];
    let old = std::fs::read(inside(&mnt.join("ids").join(short)).join("docs/readme.txt")).unwrap();
    assert_eq!(old, b"custos test tree\n".repeat(100));
    let names: Vec<_> = std::fs::read_dir(mnt.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "two snapshots and latest: {names:?}");
    // Read-only.
    let e = std::fs::write(inside(&latest).join("docs/new"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");

    // SIGTERM unmounts and exits cleanly.
    // SAFETY: kill on our own child's PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!latest.exists(), "unmounted");
}
