//! Restore targets: live data is never overwritten by accident, and an
//! interrupted restore resumes.

use crate::common::cli::{assert_same_content, make_tree, pseudo_random, restored, Env};

const MARKER: &str = ".custos-restore-in-progress";

#[test]
fn a_non_empty_target_is_refused_unless_overwrite() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    env.ok(&["backup", src.to_str().unwrap()]);

    let target = env.path("live");
    let inside = restored(&target, &src);
    std::fs::create_dir_all(inside.join("docs")).unwrap();
    std::fs::write(inside.join("docs/readme.txt"), b"live data").unwrap();
    std::fs::write(inside.join("local-only.txt"), b"keep me").unwrap();

    let e = env.fails(
        &["restore", "latest", "--target", target.to_str().unwrap()],
        1,
    );
    assert!(
        e.contains("is not empty") && e.contains("--overwrite"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(inside.join("docs/readme.txt")).unwrap(),
        b"live data"
    );
    assert!(!target.join(MARKER).exists());

    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--overwrite",
        "--verify",
    ]);
    assert_eq!(
        std::fs::read(inside.join("docs/readme.txt")).unwrap(),
        std::fs::read(src.join("docs/readme.txt")).unwrap()
    );
    assert_eq!(
        std::fs::read(inside.join("local-only.txt")).unwrap(),
        b"keep me"
    );
    assert!(
        !target.join(MARKER).exists(),
        "marker removed after a complete restore"
    );

    // A fresh or empty directory needs nothing.
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    env.ok(&["restore", "latest", "--target", empty.to_str().unwrap()]);
    assert_same_content(&src, &restored(&empty, &src));
}

#[test]
fn a_killed_restore_resumes_and_only_the_same_snapshot_may_resume() {
    let env = Env::local();
    env.ok(&["init", "--pack-size-mib", "4"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..24u64 {
        std::fs::write(
            src.join(format!("f{i:02}.bin")),
            pseudo_random(2 << 20, i + 1),
        )
        .unwrap();
    }
    let first = env.json(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("f00.bin"), b"changed").unwrap();
    let second = env.json(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("f00.bin"), pseudo_random(2 << 20, 1)).unwrap();

    let target = env.path("t");
    let id = first["id"].as_str().unwrap();
    // Killed (SIGKILL) once 9 of the 12 packs are written: most files are
    // complete, some are not.
    let o = env
        .cmd()
        .args(["restore", id, "--target", target.to_str().unwrap()])
        .env("CUSTOS_TEST_CRASH_AT", "restore:after-pack#9")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), None, "restore was not killed");
    assert!(target.join(MARKER).exists());
    // Another snapshot may not land on top of the unfinished one.
    let e = env.fails(
        &[
            "restore",
            second["id"].as_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
        ],
        1,
    );
    assert!(e.contains("unfinished restore of another snapshot"), "{e}");
    let out = env.json(&[
        "restore",
        id,
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    let r = &out["result"];
    assert!(r["errors"].as_array().unwrap().is_empty(), "{out}");
    assert_eq!(r["files_verified"], 24, "{out}");
    assert!(r["files_skipped"].as_u64().unwrap() > 0, "resumed: {out}");
    assert!(
        r["bytes_written"].as_u64().unwrap() < 48 << 20,
        "resumed: {out}"
    );
    assert_same_content(&src, &restored(&target, &src));
    assert!(!target.join(MARKER).exists());
}

#[test]
fn requests_outside_the_restore_window_are_refused() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    let old = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 100);
    let recent = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 10);
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--service",
        "app",
        "--time",
        &old.to_string(),
    ]);
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--service",
        "app",
        "--time",
        &recent.to_string(),
    ]);
    let target = env.path("t");
    let t = target.to_str().unwrap();

    // The 100-day-old snapshot, asked for by point in time: refused, naming
    // the window and the date.
    let at = (old + jiff::SignedDuration::from_hours(1)).to_string();
    let e = env.fails(
        &[
            "restore",
            "--at",
            &at,
            "--target",
            t,
            "--restore-window",
            "90d",
        ],
        1,
    );
    assert!(e.contains("outside the 90d restore window"), "{e}");
    assert!(e.contains(&at[..10]), "{e}");
    // By ID too.
    let first = env.json(&["snapshots"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = env.fails(
        &["restore", &first, "--target", t, "--restore-window", "90d"],
        1,
    );
    assert!(e.contains("snapshot of"), "{e}");
    assert!(!target.exists(), "nothing written");
    // Within the window, and without one, restores work.
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t,
        "--restore-window",
        "90d",
    ]);
    env.ok(&[
        "restore",
        &first,
        "--target",
        env.path("u").to_str().unwrap(),
    ]);
}

#[test]
fn a_file_whose_blob_no_index_lists_is_named_and_the_rest_restored() {
    use crate::common::cli::objects;
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("old.bin"), pseudo_random(300 << 10, 7)).unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    let first_index = objects(&env.repo, "index");
    std::fs::write(src.join("new.bin"), pseudo_random(200 << 10, 8)).unwrap();
    std::fs::write(src.join("small.txt"), b"new and small").unwrap();
    env.ok(&["backup", src.to_str().unwrap()]);
    // The first backup's index objects gone (and no cache remembering
    // them): the second snapshot's trees and new files are still listed,
    // old.bin's blob is not.
    for p in &first_index {
        std::fs::remove_file(p).unwrap();
    }
    std::fs::remove_dir_all(env.path("cache")).unwrap();
    let target = env.path("t");
    let e = env.fails(
        &["restore", "latest", "--target", target.to_str().unwrap()],
        1,
    );
    assert!(
        e.contains("old.bin") && e.contains("not in the index"),
        "{e}"
    );
    let inside = restored(&target, &src);
    assert!(!inside.join("old.bin").exists(), "nothing half-written");
    assert_eq!(
        std::fs::read(inside.join("new.bin")).unwrap(),
        pseudo_random(200 << 10, 8)
    );
    assert_eq!(
        std::fs::read(inside.join("small.txt")).unwrap(),
        b"new and small"
    );
}
