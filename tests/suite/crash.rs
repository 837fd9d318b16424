//! Crash consistency: `backup`, `prune`, `restore` and `erase` are killed with
//! SIGKILL at seeded points, round after round; after each kill `check
//! --read-data` passes, every earlier snapshot restores byte for byte, and the
//! next run of the same command completes.
//!
//! Where to kill: each command passes a counted point before every write it
//! makes (`store:write` before each object written or deleted, `restore:write`
//! before each write into the restore target). A run that completes reports
//! how many it passed (`CUSTOS_TEST_CRASH_COUNT`); the next round kills at a
//! seeded random one of them (`CUSTOS_TEST_CRASH_AT=point#n`: the process
//! SIGKILLs itself there, no destructor or flush runs). Backups are also
//! killed at seeded random moments from outside, which can land in the middle
//! of a write. `CUSTOS_CRASH_ROUNDS` sets the rounds per command (default 24);
//! `CUSTOS_CRASH_SEED` the seed.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::cli::{assert_same_content, copy_tree, pseudo_random, restored, Env};

fn rounds(default: u64) -> u64 {
    std::env::var("CUSTOS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);

impl Rng {
    fn new(salt: u64) -> Rng {
        let seed: u64 = std::env::var("CUSTOS_CRASH_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0x5eed);
        Rng((seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// 1..=n
    fn point(&mut self, n: u64) -> u64 {
        1 + self.next() % n.max(1)
    }
}

/// Runs `cmd` to be killed at the `n`-th pass of `point`. True when it was
/// killed; a run that ends before must have succeeded.
fn run_killed(cmd: &mut Command, point: &str, n: u64) -> bool {
    let o = cmd
        .env("CUSTOS_TEST_CRASH_AT", format!("{point}#{n}"))
        .output()
        .unwrap();
    match o.status.signal() {
        Some(9) => true,
        _ => {
            assert!(
                o.status.success(),
                "{point}#{n}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            false
        }
    }
}

/// Runs `cmd` to completion; returns its output and how often it passed
/// `point`.
fn run_counted(cmd: &mut Command, point: &str, scratch: &Path) -> (Output, u64) {
    let file = scratch.join("crash-count");
    let _ = std::fs::remove_file(&file);
    let o = cmd
        .env(
            "CUSTOS_TEST_CRASH_COUNT",
            format!("{point}={}", file.display()),
        )
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the next run completes: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let n = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    (o, n)
}

/// `check --read-data` finds no error.
fn assert_sound(env: &Env, when: &str) {
    let report = env.json(&["check", "--read-data"]);
    assert!(
        report["errors"].as_array().unwrap().is_empty(),
        "{when}: {report}"
    );
}

/// Every snapshot in `snaps` restores byte for byte.
fn assert_restores(env: &Env, snaps: &[(String, PathBuf)], src: &Path, when: &str) {
    for (id, expect) in snaps {
        let target = env.path("verify-restore");
        let _ = std::fs::remove_dir_all(&target);
        let o = env
            .cmd()
            .args(["restore", id, "--target", target.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{when}: restore {id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_same_content(expect, &restored(&target, src));
        std::fs::remove_dir_all(&target).unwrap();
    }
}

/// Rewrites a few files of `src` (new content for the next backup).
fn churn(src: &Path, round: u64, rng: &mut Rng) {
    for _ in 0..3 {
        let i = rng.next() % 10;
        std::fs::write(
            src.join(format!("f{i}.bin")),
            pseudo_random(200_000 + (rng.next() % 100_000) as usize, rng.next()),
        )
        .unwrap();
    }
    std::fs::write(src.join("round.txt"), format!("round {round}\n")).unwrap();
}

fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..10u64 {
        std::fs::write(src.join(format!("f{i}.bin")), pseudo_random(200_000, i)).unwrap();
    }
    std::fs::write(src.join("sub/text.txt"), b"custos\n".repeat(5000)).unwrap();
    src
}

fn snapshot_id(o: &Output) -> String {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[test]
fn backup_killed_at_every_kind_of_point_loses_nothing() {
    let env = Env::local();
    env.ok(&["init", "--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = source(&env);
    let s = src.to_str().unwrap().to_string();
    let mut rng = Rng::new(1);
    let (o, mut writes) = run_counted(
        env.cmd().args(["--json", "backup", &s]),
        "store:write",
        &env.path(""),
    );
    let mut snaps = vec![(snapshot_id(&o), env.path("expect-0"))];
    copy_tree(&src, &snaps[0].1);

    let mut killed = 0;
    let n_rounds = rounds(24);
    for round in 1..=n_rounds {
        churn(&src, round, &mut rng);
        if round % 4 == 0 {
            // From outside, at a random moment (may land inside a write).
            let mut child = env
                .cmd()
                .args(["backup", &s])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(20 + rng.next() % 250));
            if child.try_wait().unwrap().is_none() {
                killed += 1;
            }
            let _ = child.kill();
            child.wait().unwrap();
        } else {
            let n = rng.point(writes);
            eprintln!("crash: kill at {n} of {writes}");
            if run_killed(env.cmd().args(["backup", &s]), "store:write", n) {
                killed += 1;
            }
        }
        let when = format!("backup round {round}");
        assert_sound(&env, &when);
        assert_restores(&env, &snaps, &src, &when);
        let (o, n) = run_counted(
            env.cmd().args(["--json", "backup", &s]),
            "store:write",
            &env.path(""),
        );
        writes = n;
        let expect = env.path(&format!("expect-{round}"));
        copy_tree(&src, &expect);
        snaps.push((snapshot_id(&o), expect));
    }
    assert!(
        killed * 3 >= n_rounds * 2,
        "only {killed} of {n_rounds} backups were killed"
    );
    assert_restores(&env, &snaps, &src, "at the end");
    // Prune clears what the killed runs left; then not even a warning.
    env.ok(&["prune"]);
    let report = env.json(&["check", "--read-data"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

#[test]
fn prune_killed_at_seeded_points_loses_nothing() {
    let env = Env::local();
    env.ok(&["init", "--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = source(&env);
    let s = src.to_str().unwrap().to_string();
    let mut rng = Rng::new(2);
    let mut snaps: Vec<(String, PathBuf)> = Vec::new();
    let mut writes = 0;
    let mut killed = 0;
    let n_rounds = rounds(24);
    for round in 0..n_rounds {
        churn(&src, round, &mut rng);
        let o = env.cmd().args(["--json", "backup", &s]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let expect = env.path(&format!("expect-{round}"));
        copy_tree(&src, &expect);
        snaps.push((snapshot_id(&o), expect));
        env.ok(&["forget", "--keep-last", "3"]);
        if snaps.len() > 3 {
            let gone = snaps.remove(0);
            std::fs::remove_dir_all(gone.1).unwrap();
        }
        if round == 0 {
            let (_, n) = run_counted(env.cmd().arg("prune"), "store:write", &env.path(""));
            writes = n;
            continue;
        }
        let n = rng.point(writes);
        eprintln!("crash: kill at {n} of {writes}");
        if run_killed(env.cmd().arg("prune"), "store:write", n) {
            killed += 1;
        }
        let when = format!("prune round {round} (killed at write {n} of {writes})");
        assert_sound(&env, &when);
        assert_restores(&env, &snaps, &src, &when);
        let (_, n) = run_counted(env.cmd().arg("prune"), "store:write", &env.path(""));
        writes = n;
    }
    assert!(
        killed * 3 >= (n_rounds - 1) * 2,
        "only {killed} prunes were killed"
    );
    let report = env.json(&["check", "--read-data"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

#[test]
fn restore_killed_at_seeded_points_resumes() {
    let env = Env::local();
    env.ok(&["init", "--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = source(&env);
    // Sparse and empty files too.
    let mut sparse = vec![0u8; 1 << 20];
    sparse[700_000..700_100].copy_from_slice(&[7; 100]);
    std::fs::write(src.join("sparse.img"), &sparse).unwrap();
    std::fs::write(src.join("empty"), b"").unwrap();
    let s = src.to_str().unwrap().to_string();
    let first = env.json(&["backup", &s]);
    let expect_first = env.path("expect-first");
    copy_tree(&src, &expect_first);
    let mut rng = Rng::new(3);
    churn(&src, 1, &mut rng);
    let second = env.json(&["backup", &s]);
    let snaps = vec![
        (first["id"].as_str().unwrap().to_string(), expect_first),
        (second["id"].as_str().unwrap().to_string(), {
            let p = env.path("expect-second");
            copy_tree(&src, &p);
            p
        }),
    ];
    let restore = |id: &str, target: &Path| {
        let mut c = env.cmd();
        c.args(["restore", id, "--target", target.to_str().unwrap()]);
        c
    };
    // Writes of a whole restore of each snapshot.
    let writes: Vec<u64> = snaps
        .iter()
        .enumerate()
        .map(|(i, (id, _))| {
            let t = env.path(&format!("t-count-{i}"));
            let (_, n) = run_counted(&mut restore(id, &t), "restore:write", &env.path(""));
            std::fs::remove_dir_all(&t).unwrap();
            n
        })
        .collect();
    let mut killed = 0;
    let n_rounds = rounds(24);
    for round in 0..n_rounds {
        let (id, expect) = &snaps[(round % 2) as usize];
        let writes = writes[(round % 2) as usize];
        let target = env.path(&format!("t-{round}"));
        let n = rng.point(writes);
        eprintln!("crash: kill at {n} of {writes}");
        if run_killed(&mut restore(id, &target), "restore:write", n) {
            killed += 1;
        }
        let when = format!("restore round {round}");
        assert_sound(&env, &when);
        // Another snapshot is refused into the unfinished target...
        let other = &snaps[((round + 1) % 2) as usize].0;
        let o = restore(other, &target).output().unwrap();
        assert!(
            !o.status.success(),
            "{when}: another snapshot over an unfinished restore"
        );
        // ...the same one resumes and completes.
        // (A resumed run writes less: the next kill point is chosen among
        // the writes of a whole restore.)
        run_counted(&mut restore(id, &target), "restore:write", &env.path(""));
        assert_same_content(expect, &restored(&target, &src));
        std::fs::remove_dir_all(&target).unwrap();
    }
    assert!(
        killed * 3 >= n_rounds * 2,
        "only {killed} restores were killed"
    );
    assert_restores(&env, &snaps, &src, "at the end");
}

#[test]
fn erase_killed_at_seeded_points_resumes() {
    let n_rounds = rounds(24);
    let env = Env::local();
    let d = env.path("");
    let base = env.path("backups");
    std::fs::create_dir_all(&base).unwrap();
    let tenants: Vec<String> = (0..n_rounds).map(|i| format!("t{i}")).collect();
    let mut tables = String::new();
    for t in tenants.iter().chain(std::iter::once(&"keep".to_string())) {
        crate::common::cli::write_secret(d.join(format!("{t}.pass")), format!("{t} secret\n"));
        tables.push_str(&format!(
            "[[tenant]]\nid = \"{t}\"\npassword_file = \"{t}.pass\"\n\n"
        ));
    }
    let cfg_path = crate::common::fixtures::config(
        "many-tenants.toml",
        &d,
        &[("TARGET", base.to_str().unwrap()), ("TENANTS", &tables)],
    );
    env.ok(&[
        "certificate",
        "keygen",
        "--out",
        d.join("operator.key").to_str().unwrap(),
    ]);
    let src = source(&env);
    let tenant_cmd = |t: &str| {
        let mut c = env.cmd();
        c.env_remove("CUSTOS_PASSWORD")
            .env("CUSTOS_REPOSITORY", base.join(t))
            .env("CUSTOS_PASSWORD_FILE", d.join(format!("{t}.pass")));
        c
    };
    let ok = |mut c: Command| {
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    // The tenant that stays.
    ok({
        let mut c = tenant_cmd("keep");
        c.arg("init");
        c
    });
    let o = ok({
        let mut c = tenant_cmd("keep");
        c.args(["--json", "backup", src.to_str().unwrap()]);
        c
    });
    let keep_snap = [(snapshot_id(&o), env.path("expect-keep"))];
    copy_tree(&src, &keep_snap[0].1);
    let keep_env = |args: &[&str]| {
        let mut c = tenant_cmd("keep");
        c.args(args);
        c
    };

    let erase = |t: &str| {
        let mut c = env.cmd();
        c.args([
            "erase",
            "execute",
            "--tenant",
            t,
            "--now",
            "--yes",
            "--reason",
            "crash test",
            "--config",
        ])
        .arg(&cfg_path);
        c
    };
    let mut rng = Rng::new(4);
    let mut writes = 0;
    let mut killed = 0;
    for (round, t) in tenants.iter().enumerate() {
        ok({
            let mut c = tenant_cmd(t);
            c.arg("init");
            c
        });
        for _ in 0..2 {
            churn(&src, round as u64, &mut rng);
            ok({
                let mut c = tenant_cmd(t);
                c.args(["backup", src.to_str().unwrap()]);
                c
            });
        }
        ok({
            let mut c = env.cmd();
            c.args(["erase", "notice", "--tenant", t, "--config"])
                .arg(&cfg_path);
            c
        });
        let mut finished = false;
        if round > 0 {
            let n = rng.point(writes);
            eprintln!("crash: kill at {n} of {writes}");
            if run_killed(&mut erase(t), "store:write", n) {
                killed += 1;
            } else {
                finished = true;
            }
            // The other tenant is untouched.
            let o = keep_env(&["--json", "check", "--read-data"])
                .output()
                .unwrap();
            let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
            let target = env.path("keep-restore");
            ok(keep_env(&[
                "restore",
                &keep_snap[0].0,
                "--target",
                target.to_str().unwrap(),
            ]));
            assert_same_content(&keep_snap[0].1, &restored(&target, &src));
            std::fs::remove_dir_all(&target).unwrap();
        }
        if !finished {
            let (_, n) = run_counted(&mut erase(t), "store:write", &d);
            writes = n;
        }
        // Erased: nothing left.
        let o = tenant_cmd(t).arg("snapshots").output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let status = ok({
            let mut c = env.cmd();
            c.args(["--json", "erase", "status", "--config"])
                .arg(&cfg_path);
            c
        });
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let st = status
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["tenant"] == t.as_str())
            .unwrap_or_else(|| panic!("{status}"));
        assert_eq!(st["state"], "erased", "{st}");
    }
    assert!(
        killed * 3 >= (n_rounds - 1) * 2,
        "only {killed} erasures were killed"
    );
}
