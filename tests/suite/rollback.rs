//! Someone with write access to the store deletes a snapshot or puts back an
//! older state: `check` says so (what custos forgot itself is not flagged),
//! and so does the daemon (`/v1/alarms`, `/metrics`, `status`).

use std::path::Path;
use std::time::Duration;

use crate::common::cli::{make_tree, objects, restored, write_secret, Env};
use crate::common::daemon::{custos, Daemon};
use crate::common::fixtures;
use crate::common::servers::free_port;

/// A repository with three snapshots of a tree whose `changing.txt` says
/// `version 0`, `1`, `2`.
fn three_backups() -> (Env, std::path::PathBuf) {
    let env = Env::local();
    env.ok(&["init", "--pack-size-mib", "1"]);
    let src = env.path("src");
    make_tree(&src);
    for i in 0..3 {
        std::fs::write(src.join("changing.txt"), format!("version {i}")).unwrap();
        env.ok(&["backup", src.to_str().unwrap()]);
    }
    (env, src)
}

#[test]
fn check_notices_deleted_snapshots_and_restored_older_objects() {
    let (env, _) = three_backups();
    let repo = Path::new(&env.repo);
    // The first look only records.
    env.ok(&["check"]);
    // What custos forgets itself is no alarm (a tombstone records it).
    let before = env.snapshot_ids();
    let forgotten = before[0].clone();
    let kept_bytes = std::fs::read(repo.join("snapshots").join(&forgotten)).unwrap();
    let index_before: Vec<_> = objects(&env.repo, "index");
    let index_bytes: Vec<(std::path::PathBuf, Vec<u8>)> = index_before
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    env.ok(&["forget", "--keep-last", "2", "--prune"]);
    assert!(repo.join("forgotten").join(&forgotten).exists());
    env.ok(&["check"]);

    // A snapshot deleted behind custos's back.
    let victim = env.snapshot_ids()[0].clone();
    std::fs::remove_file(repo.join("snapshots").join(&victim)).unwrap();
    let e = env.fails(&["check"], 1);
    assert!(
        e.contains(&format!(
            "snapshot {} is gone without a recorded forget",
            &victim[..8]
        )),
        "{e}"
    );
    // A forged tombstone (any object under its name) is no excuse either.
    let other = env
        .snapshot_ids()
        .into_iter()
        .find(|i| *i != victim)
        .expect("another snapshot");
    std::fs::remove_file(repo.join("snapshots").join(&other)).unwrap();
    std::fs::write(repo.join("forgotten").join(&other), b"not a tombstone").unwrap();
    let e = env.fails(&["check"], 1);
    assert!(
        e.contains(&format!(
            "snapshot {} is gone without a recorded forget",
            &other[..8]
        )),
        "{e}"
    );
    // An alarm is raised again by every check until it is accepted.
    assert!(
        e.contains(&format!(
            "snapshot {} is gone without a recorded forget",
            &victim[..8]
        )),
        "{e}"
    );

    // The forgotten snapshot put back (an older state restored).
    std::fs::write(repo.join("snapshots").join(&forgotten), &kept_bytes).unwrap();
    let e = env.fails(&["check"], 1);
    assert!(
        e.contains(&format!(
            "snapshot {} was forgotten and is back",
            &forgotten[..8]
        )),
        "{e}"
    );

    // Index objects the prune superseded and removed, put back.
    let after: Vec<_> = objects(&env.repo, "index");
    let mut put_back = 0;
    for (p, b) in &index_bytes {
        if !after.contains(p) {
            std::fs::write(p, b).unwrap();
            put_back += 1;
        }
    }
    assert!(put_back > 0, "the prune superseded no index object");
    let e = env.fails(&["check"], 1);
    assert!(e.contains("was superseded and removed, and is back"), "{e}");

    // Removing the memory the note names accepts the repository as it is
    // (once the snapshot put back, whose data the prune removed, is gone:
    // that is damage, not a rollback alarm).
    std::fs::remove_file(repo.join("snapshots").join(&forgotten)).unwrap();
    let memory = e
        .lines()
        .find_map(|l| {
            l.strip_prefix("note: the changes above are reported again by every check until ")
                .and_then(|r| r.split(" is removed").next())
        })
        .expect("the note names the memory file")
        .to_string();
    std::fs::remove_file(&memory).unwrap();
    env.ok(&["check"]);
    env.ok(&["check"]);
}

#[test]
fn the_daemon_raises_an_alarm_for_a_snapshot_deleted_behind_its_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_secret(d.join("acme.pass"), "acme secret\n");
    write_secret(d.join("op.token"), "operator-token-for-rollback-test");
    make_tree(&d.join("data"));
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = fixtures::config(
        "acme-web.toml",
        d,
        &[
            ("LISTEN", &listen),
            ("DAEMON", "snapshot_refresh = \"1s\""),
            ("MORE", ""),
        ],
    );
    let op = "operator-token-for-rollback-test";
    let daemon = Daemon::start(&cfg, &[], d.join("daemon.log"));
    for _ in 0..2 {
        let (s, job) = daemon.request("POST", "/v1/services/acme/web/backup", op, "");
        assert_eq!(s, 202, "{job}");
        daemon.wait_finished(&format!("/v1/jobs/{}", job["id"]), op);
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert!(daemon
        .get("/v1/alarms", op)
        .1
        .as_array()
        .unwrap()
        .is_empty());
    let snaps = objects(d.join("target/acme").to_str().unwrap(), "snapshots");
    std::fs::remove_file(&snaps[0]).unwrap();
    daemon.wait_until(Duration::from_secs(30), || {
        !daemon
            .get("/v1/alarms", op)
            .1
            .as_array()
            .unwrap()
            .is_empty()
    });
    let (_, alarms) = daemon.get("/v1/alarms", op);
    assert!(
        alarms[0]["text"]
            .as_str()
            .unwrap()
            .contains("without a recorded forget"),
        "{alarms}"
    );
    let (_, metrics) = daemon.get("/metrics", op);
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("custos_rollback_alarms{tenant=\"acme\"} 1"),
        "{metrics}"
    );
    let o = custos(&[])
        .args(["status", "--config"])
        .arg(&cfg)
        .env("CUSTOS_TOKEN", op)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ALARM"));

    // Only an operator accepts them; then status is clean again, and the
    // acceptance is on record.
    let (s, _) = daemon.request(
        "POST",
        "/v1/alarms/accept",
        "not-a-token-at-all-here",
        r#"{"tenant": "acme"}"#,
    );
    assert_eq!(s, 401);
    let o = custos(&[])
        .args(["status", "--accept-alarms", "acme", "--config"])
        .arg(&cfg)
        .env("CUSTOS_TOKEN", op)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 alarms of acme accepted"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let (_, left) = daemon.get("/v1/alarms", op);
    assert!(
        left.as_array().unwrap().is_empty(),
        "{left}\n{}",
        std::fs::read_to_string(d.join("daemon.log")).unwrap_or_default()
    );
    let o = custos(&[])
        .args(["status", "--config"])
        .arg(&cfg)
        .env("CUSTOS_TOKEN", op)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("ALARM"));
    let log = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    assert!(log.contains("alarms.accepted"), "{log}");

    // With the daemon stopped, the command line accepts in the catalog and
    // writes the audit record itself.
    std::fs::remove_file(&snaps[1]).unwrap();
    daemon.wait_until(Duration::from_secs(30), || {
        !daemon
            .get("/v1/alarms", op)
            .1
            .as_array()
            .unwrap()
            .is_empty()
    });
    daemon.stop();
    let o = custos(&[])
        .args(["status", "--accept-alarms", "acme", "--config"])
        .arg(&cfg)
        .env_remove("CUSTOS_TOKEN")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 alarms of acme accepted"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let log = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    assert_eq!(log.matches("alarms.accepted").count(), 2, "{log}");
    let o = custos(&[])
        .args(["audit", "verify", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A copy of a repository (same ID, so the same cache) pruned on its own
/// replaces index objects the original still has: the original must still
/// read everything it holds, not skip its objects as superseded.
#[test]
fn a_pruned_copy_sharing_the_cache_hides_nothing_of_the_original() {
    let (env, src) = three_backups();
    let first = env.snapshot_ids()[0].clone();
    let copy = env.path("copy");
    let status = std::process::Command::new("cp")
        .args(["-a", &env.repo, copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    env.ok(&[
        "-r",
        copy.to_str().unwrap(),
        "forget",
        "--keep-last",
        "1",
        "--prune",
    ]);
    // The original: every snapshot restores, and check finds nothing wrong.
    let target = env.path("restored");
    env.ok(&["restore", &first, "--target", target.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(restored(&target, &src).join("changing.txt")).unwrap(),
        "version 0"
    );
    env.ok(&["check", "--read-data"]);
    // And the copy still reads too, after the original rebuilt the cache.
    env.ok(&["-r", copy.to_str().unwrap(), "check", "--read-data"]);
}
