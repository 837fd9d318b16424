//! Retention and space reclamation through the binary: forget with its
//! explanations, pins and legal holds, prune's two phases, locks, crashes in
//! the middle of prune, and a backup running while prune runs on S3.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::common::cli::{assert_same_content, copy_tree, pseudo_random, restored, Env};
use crate::common::servers::{missing, s3_env, start_moto};

/// Files in the test source, and how many change per "day".
const FILES: usize = 12;
const CHANGED_PER_DAY: usize = 3;

/// Writes day `day`'s version of the source: every file exists from day 0,
/// and `CHANGED_PER_DAY` of them get new content each day. Returns a copy of
/// the tree as it was backed up, for later comparison.
fn write_day(env: &Env, day: usize) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for f in 0..FILES {
        let changed_on = if day == 0 {
            true
        } else {
            (f + day) % (FILES / CHANGED_PER_DAY) == 0
        };
        if changed_on {
            let seed = (day * 1000 + f) as u64;
            let dir = if f % 2 == 0 {
                src.clone()
            } else {
                src.join("sub")
            };
            std::fs::write(dir.join(format!("f{f}.bin")), pseudo_random(96 << 10, seed)).unwrap();
        }
    }
    let copy = env.path(&format!("expect/{day}"));
    copy_tree(&src, &copy);
    copy
}

/// A repository with small chunks and packs (so prune has packs to condemn
/// and repack) and `days` daily snapshots of service `db`. Returns the
/// snapshot IDs, oldest first, with the expected tree of each.
fn history(env: &Env, days: usize) -> Vec<(String, PathBuf)> {
    env.ok(&["init", "--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = env.path("src");
    let mut out = Vec::new();
    for day in 0..days {
        let expect = write_day(env, day);
        let time = format!("2026-10-{:02}T02:00:00Z", day + 1);
        let r = env.json(&[
            "backup",
            src.to_str().unwrap(),
            "--service",
            "db",
            "--time",
            &time,
        ]);
        out.push((r["id"].as_str().unwrap().to_string(), expect));
    }
    out
}

fn stored_bytes(env: &Env) -> u64 {
    env.json(&["stats"])["stored_bytes"].as_u64().unwrap()
}

/// `check --read-data` finds nothing wrong.
fn assert_sound(env: &Env) {
    let report = env.json(&["check", "--read-data"]);
    assert!(
        report["errors"].as_array().unwrap().is_empty(),
        "check found errors: {report}"
    );
}

/// Every snapshot in `expected` that still exists restores byte for byte.
fn assert_restores(env: &Env, expected: &[(String, PathBuf)]) {
    let src = env.path("src");
    let present = env.snapshot_ids();
    for (id, tree) in expected.iter().filter(|(id, _)| present.contains(id)) {
        let target = env.path(&format!("restore-{}", &id[..8]));
        let _ = std::fs::remove_dir_all(&target);
        env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
        assert_same_content(tree, &restored(&target, &src));
        std::fs::remove_dir_all(&target).unwrap();
    }
}

#[test]
fn forget_and_prune_give_space_back_and_keep_the_rest_intact() {
    let env = Env::local();
    let snaps = history(&env, 6);
    let before = stored_bytes(&env);

    let out = env.json(&["forget", "--keep-last", "2", "--prune"]);
    assert_eq!(out["removed"], 4, "{out}");
    assert_eq!(out["kept"], 2, "{out}");
    let prune = &out["prune"];
    assert!(prune["packs_deleted"].as_u64().unwrap() > 0, "{prune}");
    assert!(prune["bytes_freed"].as_u64().unwrap() > 0, "{prune}");

    let after = stored_bytes(&env);
    assert!(
        after < before,
        "stored size did not shrink: {before} -> {after}"
    );
    assert_eq!(env.snapshot_ids().len(), 2);
    assert_sound(&env);
    assert_restores(&env, &snaps);

    // Nothing left to do: a second prune condemns nothing and leaves no plan.
    let again = env.json(&["prune"]);
    assert_eq!(again["packs_unused"], 0, "{again}");
    assert_eq!(again["packs_unindexed"], 0, "{again}");
    assert!(crate::common::cli::objects(&env.repo, "prune").is_empty());
}

#[test]
fn prune_repacks_partly_used_packs() {
    let env = Env::local();
    let snaps = history(&env, 4);
    env.ok(&["forget", "--keep-last", "1"]);
    let dry = env.json(&["prune", "--dry-run", "--repack-below", "100"]);
    assert!(dry["packs_repacked"].as_u64().unwrap() > 0, "{dry}");
    assert_eq!(dry["packs_deleted"], 0);
    let packs_before = crate::common::cli::objects(&env.repo, "data").len();
    let stored_before = stored_bytes(&env);
    assert_eq!(
        crate::common::cli::objects(&env.repo, "data").len(),
        packs_before,
        "dry run changed nothing"
    );

    let r = env.json(&["prune", "--repack-below", "100"]);
    assert!(r["blobs_repacked"].as_u64().unwrap() > 0, "{r}");
    assert!(stored_bytes(&env) < stored_before);
    assert_sound(&env);
    assert_restores(&env, &snaps);
    // Every remaining pack is fully used now.
    let again = env.json(&["prune", "--dry-run", "--repack-below", "100"]);
    assert_eq!(again["packs_repacked"], 0, "{again}");
    assert_eq!(again["packs_unused"], 0, "{again}");
}

#[test]
fn forget_dry_run_explains_every_decision_and_changes_nothing() {
    let env = Env::local();
    history(&env, 10);
    let out = env.json(&[
        "forget",
        "--keep-daily",
        "3",
        "--keep-weekly",
        "2",
        "--time-zone",
        "Europe/Paris",
        "--dry-run",
    ]);
    assert_eq!(out["dry_run"], true);
    assert_eq!(out["removed"], 0);
    let groups = out["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{out}");
    assert_eq!(groups[0]["service"], "db");
    let decisions = groups[0]["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 10);
    // Newest first: the three newest days are kept by the daily rule.
    for d in &decisions[..3] {
        assert_eq!(d["keep"], true, "{d}");
        assert!(
            d["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r.as_str().unwrap().starts_with("daily 2026-10-")),
            "{d}"
        );
    }
    // 2026-10-01..10: ISO weeks 40 (1-4 Oct) and 41 (5-10 Oct). Weekly keeps
    // the newest of week 41 (day 10, also daily) and of week 40 (4 Oct).
    let kept: Vec<&str> = decisions
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["time"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        [
            "2026-10-10T02:00:00Z",
            "2026-10-09T02:00:00Z",
            "2026-10-08T02:00:00Z",
            "2026-10-04T02:00:00Z"
        ]
    );
    for d in decisions.iter().filter(|d| d["keep"] == false) {
        assert!(d["reasons"].as_array().unwrap().is_empty());
        assert!(!d["misses"].as_array().unwrap().is_empty(), "{d}");
    }
    assert_eq!(env.snapshot_ids().len(), 10, "dry run removed nothing");

    // The human form names each snapshot's fate and reason.
    let text = env.ok(&["forget", "--keep-last", "1", "--dry-run"]);
    assert!(text.contains("keep") && text.contains("last"), "{text}");
    assert!(text.contains("not among the last 1"), "{text}");
}

#[test]
fn pinned_and_legal_hold_snapshots_are_never_forgotten() {
    let env = Env::local();
    let snaps = history(&env, 4);
    let src = env.path("src");
    // A second service: retention is per service.
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--service",
        "web",
        "--tag",
        "legal-hold",
        "--time",
        "2026-09-01T00:00:00Z",
    ]);
    env.ok(&["backup", src.to_str().unwrap(), "--service", "web"]);
    env.ok(&["pin", &snaps[0].0, "--reason", "ticket SD-4711"]);

    let out = env.json(&["forget", "--keep-last", "1"]);
    // db: newest + pinned; web: newest + legal-hold tag.
    assert_eq!(out["kept"], 4, "{out}");
    assert_eq!(out["removed"], 2, "{out}");
    let ids = env.snapshot_ids();
    assert!(ids.contains(&snaps[0].0));
    let pinned = out["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["decisions"].as_array().unwrap().clone())
        .filter(|d| {
            d["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "pinned")
        })
        .count();
    assert_eq!(pinned, 2, "{out}");

    // Only the given service.
    env.ok(&["unpin", &snaps[0].0]);
    let out = env.json(&["forget", "--keep-last", "1", "--service", "db"]);
    assert_eq!(out["removed"], 1, "{out}");
    assert_eq!(env.snapshot_ids().len(), 3);
    env.ok(&["prune"]);
    assert_sound(&env);
    assert_restores(&env, &snaps);
}

#[test]
fn keep_within_counts_from_the_newest_snapshot_of_a_failing_service() {
    // A caas-like service (keep within 90d) whose backups stopped: its
    // newest snapshot is 100 days old. Counting from now would forget
    // everything; counting from the newest keeps the last 90 days of it.
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let now = jiff::Timestamp::now();
    let mut ids = Vec::new();
    for days_ago in [300i64, 195, 150, 100] {
        std::fs::write(src.join("f"), format!("{days_ago}")).unwrap();
        let t = now
            .checked_sub(jiff::SignedDuration::from_hours(24 * days_ago))
            .unwrap()
            .to_string();
        let r = env.json(&[
            "backup",
            src.to_str().unwrap(),
            "--service",
            "apps",
            "--time",
            &t,
        ]);
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let v = env.json(&["forget", "--keep-within", "90d", "--service", "apps"]);
    assert_eq!(v["removed"], 2, "{v}");
    let left = env.snapshot_ids();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&ids[2]) && left.contains(&ids[3]), "{left:?}");
    // Whatever the rules, the newest snapshot stays.
    let v = env.json(&["forget", "--keep-tag", "never-used", "--service", "apps"]);
    assert_eq!(v["removed"], 1, "{v}");
    assert_eq!(env.snapshot_ids(), vec![ids[3].clone()]);
}

#[test]
fn forget_refuses_bad_policies() {
    let env = Env::local();
    history(&env, 2);
    let e = env.fails(&["forget"], 2);
    assert!(e.contains("no retention rule"), "{e}");
    let e = env.fails(&["forget", "--keep-within", "ten days"], 2);
    assert!(e.contains("--keep-within"), "{e}");
    let e = env.fails(
        &["forget", "--keep-last", "1", "--time-zone", "Mars/Olympus"],
        2,
    );
    assert!(e.contains("--time-zone"), "{e}");
    assert_eq!(env.snapshot_ids().len(), 2);
}

/// Writes a lock object as another process would.
fn plant_lock(env: &Env, kind: &str, pid: u32, expires_in: i64) -> PathBuf {
    let now = jiff::Timestamp::now();
    let body = serde_json::json!({
        "kind": kind,
        "command": kind,
        "hostname": hostname(),
        "pid": pid,
        "username": "ops",
        "created": now.to_string(),
        "expires": (now + jiff::SignedDuration::from_secs(expires_in)).to_string(),
    });
    let id = hex::encode(pseudo_random(32, u64::from(pid) ^ expires_in as u64));
    let path = Path::new(&env.repo).join("locks").join(id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_vec(&body).unwrap()).unwrap();
    path
}

fn hostname() -> String {
    custos::hostname()
}

/// The PID of a process that has exited.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn a_second_prune_is_refused_and_stale_locks_are_taken_over() {
    let env = Env::local();
    history(&env, 2);
    env.ok(&["forget", "--keep-last", "1"]);

    // A live prune (this test process stands in for it).
    let live = plant_lock(&env, "prune", std::process::id(), 300);
    let e = env.fails(&["prune"], 3);
    assert!(e.contains("prune lock by `prune`"), "{e}");
    assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
    // Backups and restores are not blocked by prune.
    env.ok(&[
        "backup",
        env.path("src").to_str().unwrap(),
        "--service",
        "db",
    ]);
    // unlock leaves a live lock alone; --all removes it.
    env.ok(&["unlock"]);
    assert!(live.exists());
    env.ok(&["unlock", "--all"]);
    assert!(!live.exists());

    // A prune whose process is gone: taken over at once, with a log line.
    let gone = plant_lock(&env, "prune", dead_pid(), 300);
    let o = env.cmd().args(["-v", "prune"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("stale lock"), "{stderr}");
    assert!(stderr.contains("holder process is gone"), "{stderr}");

    // An expired lease from another host: taken over too; unlock removes it.
    std::fs::remove_file(&gone).unwrap();
    let expired = plant_lock(&env, "exclusive", std::process::id(), -10);
    env.ok(&["prune"]);
    let out = env.ok(&["unlock"]);
    assert!(out.contains("1 locks removed"), "{out}");
    assert!(!expired.exists());
    assert_sound(&env);
}

/// Prune is stopped dead (SIGKILL) at every step between two of its writes;
/// each time the repository stays sound and the next prune finishes the work.
#[test]
fn prune_killed_at_each_step_leaves_a_sound_repository() {
    let points = [
        "prune:after-repack",
        "prune:after-index",
        "prune:after-marker",
        "prune:after-plan",
        "prune:mid-index-delete",
        "prune:mid-sweep",
        "prune:before-plan-removal",
    ];
    for point in points {
        let env = Env::local();
        let snaps = history(&env, 4);
        env.ok(&["forget", "--keep-last", "2"]);
        let o = env
            .cmd()
            .args(["prune", "--repack-below", "100"])
            .env("CUSTOS_TEST_CRASH_AT", point)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            None,
            "{point}: prune was not killed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_sound(&env);
        assert_restores(&env, &snaps);
        // The next prune takes over the dead one's lock and finishes.
        let r = env.json(&["prune", "--repack-below", "100"]);
        assert!(r["deferred"].as_array().unwrap().is_empty(), "{point}: {r}");
        assert!(
            crate::common::cli::objects(&env.repo, "prune").is_empty(),
            "{point}: a plan is left"
        );
        let again = env.json(&["prune", "--dry-run", "--repack-below", "100"]);
        assert_eq!(again["packs_unused"], 0, "{point}: {again}");
        assert_eq!(again["packs_repacked"], 0, "{point}: {again}");
        assert_eq!(again["packs_unindexed"], 0, "{point}: {again}");
        assert_sound(&env);
        assert_restores(&env, &snaps);
    }
}

/// SIGKILL at seeded random moments of a prune.
#[test]
fn prune_killed_at_random_moments_leaves_a_sound_repository() {
    let mut seed = 0x5eed_u64;
    for _ in 0..4 {
        let env = Env::local();
        let snaps = history(&env, 4);
        env.ok(&["forget", "--keep-last", "1"]);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(20 + seed % 300);
        let mut child = env
            .cmd()
            .args(["prune", "--repack-below", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();
        assert_sound(&env);
        assert_restores(&env, &snaps);
        env.ok(&["prune", "--repack-below", "100"]);
        let again = env.json(&["prune", "--dry-run", "--repack-below", "100"]);
        assert_eq!(again["packs_unused"], 0, "{again}");
        assert_eq!(again["packs_unindexed"], 0, "{again}");
        assert_sound(&env);
        assert_restores(&env, &snaps);
    }
}

/// On the S3 emulator: backups run while prune runs, again and again. No
/// backup loses a blob it deduplicated against.
#[test]
fn s3_backup_while_prune_runs() {
    let Some(s3) = start_moto() else {
        missing("moto_server");
        return;
    };
    let env = Env::remote(s3.repo_url("retention/repo"), s3_env(&s3));
    let mut snaps = history(&env, 4);
    env.ok(&["forget", "--keep-last", "1"]);
    let src = env.path("src");

    for round in 0..3 {
        // New data that shares most chunks with what prune is condemning.
        let expect = write_day(&env, 10 + round);
        let backup = env
            .cmd()
            .args(["--json", "backup", src.to_str().unwrap(), "--service", "db"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let prune = env.run(&["--json", "prune", "--repack-below", "100"]);
        assert!(
            prune.status.success(),
            "prune: {}",
            String::from_utf8_lossy(&prune.stderr)
        );
        let out = backup.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "backup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        snaps.push((r["id"].as_str().unwrap().to_string(), expect));
        env.ok(&["forget", "--keep-last", "2"]);
    }
    env.ok(&["prune", "--repack-below", "100"]);
    assert_sound(&env);
    assert_restores(&env, &snaps);
    assert_eq!(env.snapshot_ids().len(), 2);
}
