//! Crash consistency of backup: SIGKILL at seeded moments, then `check
//! --read-data` passes, every earlier snapshot restores byte for byte, and the
//! next backup completes. (Prune and restore have their own crash tests in
//! `retention.rs` and `restore_target.rs`.) `CUSTOS_CRASH_ROUNDS` runs more
//! rounds than the default.

#[allow(dead_code)]
mod common;

use std::process::Stdio;
use std::time::Duration;

use common::cli::{assert_same_content, copy_tree, pseudo_random, restored, Env};

#[test]
fn backup_killed_at_random_moments_loses_nothing() {
    let rounds: u64 = std::env::var("CUSTOS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let env = Env::local();
    env.ok(&["init", "--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..20u64 {
        std::fs::write(src.join(format!("f{i}.bin")), pseudo_random(400_000, i)).unwrap();
    }
    let s = src.to_str().unwrap().to_string();
    let first = env.json(&["backup", &s]);
    let first_id = first["id"].as_str().unwrap().to_string();
    let expect = env.path("expect");
    copy_tree(&src, &expect);

    let mut x = 0x5eed_u64;
    let mut killed = 0;
    for round in 0..rounds {
        // New data each round, so the backup has work to be killed in.
        for i in 0..6u64 {
            std::fs::write(
                src.join(format!("new-{round}-{i}.bin")),
                pseudo_random(500_000, 1000 + round * 10 + i),
            )
            .unwrap();
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = Duration::from_millis(30 + x % 400);
        let mut child = env
            .cmd()
            .args(["backup", &s])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = child.kill();
        child.wait().unwrap();

        let report = env.json(&["check", "--read-data"]);
        assert!(
            report["errors"].as_array().unwrap().is_empty(),
            "round {round}: {report}"
        );
        let target = env.path(&format!("restore-{round}"));
        env.ok(&[
            "restore",
            &first_id,
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ]);
        assert_same_content(&expect, &restored(&target, &src));
        std::fs::remove_dir_all(&target).unwrap();
    }
    assert!(killed > 0, "no backup was killed while running");

    // The next backup completes and holds everything; prune clears the debris.
    let last = env.json(&["backup", &s]);
    let target = env.path("restore-last");
    env.ok(&[
        "restore",
        last["id"].as_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_content(&src, &restored(&target, &src));
    env.ok(&["prune"]);
    let report = env.json(&["check", "--read-data"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "prune removed what the killed backups left: {report}"
    );
}
