//! Store faults on the S3 emulator: with 10 % of requests refused, lost,
//! slow or timed out, backups and restores either complete through retries
//! with correct data or stop with exit code 3, and the repository is never
//! left with a corrupt snapshot. Listings that lag behind writes lose nothing.

use crate::common::cli::{assert_same_content, copy_tree, make_tree, pseudo_random, restored, Env};
use crate::common::servers::{missing, s3_env, start_moto};

#[test]
fn ten_percent_faults_on_s3_never_corrupt_anything() {
    let Some(s3) = start_moto() else {
        missing("moto_server");
        return;
    };
    let env = Env::remote(s3.repo_url("faults/repo"), s3_env(&s3));
    env.ok(&["init", "--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = env.path("src");
    make_tree(&src);
    let s = src.to_str().unwrap();

    let run = |args: &[&str], seed: u64| {
        env.cmd()
            .args(args)
            .env("CUSTOS_FAULTS", format!("rate=0.1,seed={seed},delay=5ms"))
            .env("CUSTOS_BACKEND_RETRIES", "4")
            .output()
            .unwrap()
    };
    let mut good = Vec::new();
    let (mut ok, mut stopped) = (0, 0);
    for seed in 1..=6u64 {
        // Each round changes the data a little.
        std::fs::write(
            src.join(format!("round-{seed}.bin")),
            pseudo_random(200_000, seed),
        )
        .unwrap();
        let o = run(&["--json", "backup", s], seed);
        match o.status.code() {
            Some(0) => {
                ok += 1;
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                let copy = env.path(&format!("expect-{seed}"));
                copy_tree(&src, &copy);
                good.push((v["id"].as_str().unwrap().to_string(), copy));
            }
            Some(3) => {
                stopped += 1;
                let e = String::from_utf8_lossy(&o.stderr);
                assert!(
                    e.contains("injected fault") || e.contains("storage"),
                    "exit 3 says why: {e}"
                );
            }
            other => panic!(
                "backup under faults exited {other:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
        }
        // A restore under faults: correct data or exit 3.
        if let Some((id, expect)) = good.last() {
            let target = env.path(&format!("r-{seed}"));
            let o = run(
                &[
                    "restore",
                    id,
                    "--target",
                    target.to_str().unwrap(),
                    "--verify",
                ],
                seed + 100,
            );
            match o.status.code() {
                Some(0) => assert_same_content(expect, &restored(&target, &src)),
                Some(3) => {}
                other => panic!(
                    "restore under faults exited {other:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
            }
        }
    }
    assert!(
        ok >= 3,
        "most backups get through their retries ({ok} ok, {stopped} stopped)"
    );

    // Without faults: the repository is sound and every snapshot restores.
    let report = env.json(&["check", "--read-data"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    for (id, expect) in &good {
        let target = env.path(&format!("final-{}", &id[..8]));
        env.ok(&[
            "restore",
            id,
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ]);
        assert_same_content(expect, &restored(&target, &src));
    }
}

/// Two backups of different services into one repository at once, on the S3
/// emulator: both land, `check --read-data` passes, both restore.
#[test]
fn concurrent_backups_of_two_services_on_s3() {
    let Some(s3) = start_moto() else {
        missing("moto_server");
        return;
    };
    let env = Env::remote(s3.repo_url("concurrent/repo"), s3_env(&s3));
    env.ok(&["init", "--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let a = env.path("a");
    let b = env.path("b");
    make_tree(&a);
    std::fs::create_dir_all(&b).unwrap();
    for i in 0..8u64 {
        std::fs::write(b.join(format!("f{i}.bin")), pseudo_random(300_000, 50 + i)).unwrap();
    }
    // Shared content too, so both deduplicate against what the other writes.
    std::fs::copy(a.join("big.bin"), b.join("big-copy.bin")).unwrap();
    for round in 0..2 {
        let spawn = |dir: &std::path::Path, service: &str| {
            env.cmd()
                .args([
                    "--json",
                    "backup",
                    dir.to_str().unwrap(),
                    "--service",
                    service,
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (ca, cb) = (spawn(&a, "web"), spawn(&b, "files"));
        for (c, what) in [(ca, "web"), (cb, "files")] {
            let o = c.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "round {round} {what}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    let report = env.json(&["check", "--read-data"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    for (dir, service) in [(&a, "web"), (&b, "files")] {
        let target = env.path(&format!("restore-{service}"));
        env.ok(&[
            "restore",
            "latest",
            "--service",
            service,
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ]);
        assert_same_content(dir, &restored(&target, dir));
    }
}

/// Listings that lag two seconds behind writes and deletions, in every
/// process (eventual
/// consistency), on the S3 emulator: a backup is checked, restored by ID and
/// listed at once; a backup that runs while prune plans and sweeps (with a
/// grace period longer than the lag) loses nothing.
#[test]
fn lagging_listings_on_s3_lose_nothing() {
    let Some(s3) = start_moto() else {
        missing("moto_server");
        return;
    };
    let lag = std::time::Duration::from_millis(2200);
    let env = Env::remote(s3.repo_url("lag/repo"), s3_env(&s3));
    env.ok(&["init", "--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = env.path("src");
    make_tree(&src);
    let only_a = pseudo_random(1_500_000, 77);
    std::fs::write(src.join("only-a.bin"), &only_a).unwrap();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s]);
    std::thread::sleep(lag);

    // Deletions lag too, for every process (a journal they share).
    let faults = format!("rate=0,lag=2s,ghosts={}", env.path("ghosts").display());
    let lagged = |args: &[&str]| {
        let o = env
            .cmd()
            .args(args)
            .env("CUSTOS_FAULTS", &faults)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?} with lagging listings: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Read our own writes at once: check, restore by ID, ls.
    std::fs::remove_file(src.join("only-a.bin")).unwrap();
    std::fs::write(src.join("b.bin"), pseudo_random(800_000, 78)).unwrap();
    let b: serde_json::Value = serde_json::from_str(&lagged(&["--json", "backup", s])).unwrap();
    let b_id = b["id"].as_str().unwrap().to_string();
    let expect_b = env.path("expect-b");
    copy_tree(&src, &expect_b);
    let report: serde_json::Value = serde_json::from_str(&lagged(&["--json", "check"])).unwrap();
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    let target = env.path("restore-b");
    lagged(&[
        "restore",
        &b_id,
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_content(&expect_b, &restored(&target, &src));
    assert!(lagged(&["ls", &b_id]).contains("b.bin"));

    // Forget the first snapshot; then a backup that brings its data back runs
    // while prune condemns that data.
    std::thread::sleep(lag);
    env.ok(&["forget", "--keep-last", "1"]);
    std::fs::write(src.join("only-a.bin"), &only_a).unwrap();
    std::fs::write(src.join("c.bin"), pseudo_random(2_000_000, 79)).unwrap();
    let spawn = |args: &[&str]| {
        env.cmd()
            .args(args)
            .env("CUSTOS_FAULTS", &faults)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let backup = spawn(&["--json", "backup", s]);
    let prune = spawn(&["--json", "prune", "--grace", "3s"]);
    let mut c_id = String::new();
    for (child, what) in [(backup, "backup"), (prune, "prune")] {
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if what == "backup" {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            c_id = v["id"].as_str().unwrap().to_string();
        }
    }
    let expect_c = env.path("expect-c");
    copy_tree(&src, &expect_c);
    // Later prunes sweep once the grace periods have run. A prune that
    // starts within the lag after another one rewrote the index cannot list
    // the new index objects yet: it refuses (exit 1, nothing deleted) rather
    // than taking their blobs for unused; the next one goes ahead.
    let mut swept = 0;
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let o = env
            .cmd()
            .args(["--json", "prune", "--grace", "3s"])
            .env("CUSTOS_FAULTS", &faults)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        if o.status.code() == Some(1) && stderr.contains("cannot be read completely") {
            continue;
        }
        assert!(o.status.success(), "prune with lagging listings: {stderr}");
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        swept += r["plans_swept"].as_u64().unwrap();
        if r["deferred"].as_array().unwrap().is_empty() && swept > 0 {
            break;
        }
    }
    assert!(swept > 0, "the plan was swept in the end");
    std::thread::sleep(lag);
    let report = env.json(&["check", "--read-data"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    for (id, expect) in [(&b_id, &expect_b), (&c_id, &expect_c)] {
        let target = env.path(&format!("final-{}", &id[..8]));
        env.ok(&[
            "restore",
            id,
            "--target",
            target.to_str().unwrap(),
            "--verify",
        ]);
        assert_same_content(expect, &restored(&target, &src));
    }
}

/// Snapshots name the index objects their backup wrote; once prunes have
/// replaced and deleted those, a reader with a new cache knows from the
/// newest replacement (which carries forward what earlier ones superseded)
/// that they are gone: no request per snapshot per command, not even the
/// first time.
#[test]
fn replaced_index_objects_named_by_snapshots_are_not_asked_for() {
    let env = Env::local();
    env.ok(&["init", "--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    // Each prune rewrites the index; a kept snapshot outlives two rewrites.
    for round in 0..4u64 {
        std::fs::write(src.join("data.bin"), pseudo_random(300_000, round)).unwrap();
        env.ok(&["backup", src.to_str().unwrap()]);
        env.ok(&["forget", "--keep-last", "2"]);
        env.ok(&["prune"]);
    }
    std::fs::remove_dir_all(env.path("cache")).unwrap();
    let asked = |what: &str| {
        let o = env
            .cmd()
            .env("RUST_LOG", "custos=debug")
            .args(["ls", "latest"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{what}");
        String::from_utf8_lossy(&o.stderr).contains("the listing does not show yet")
    };
    assert!(
        !asked("first"),
        "a new reader knows that the replaced objects are gone"
    );
    assert!(!asked("second"), "and so does the next");
    let report = env.json(&["check", "--read-data"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
}
