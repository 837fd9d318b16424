//! `custos repair`: the index rebuilt from packs, damaged data left out and
//! healed by the next backup, damaged snapshots removed only when asked.

use crate::common::cli::{assert_same_content, flip_byte, make_tree, objects, restored, Env};

fn setup() -> (Env, String) {
    let env = Env::local();
    env.ok(&["init", "--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let src = env.path("src");
    make_tree(&src);
    let s = src.to_str().unwrap().to_string();
    env.ok(&["backup", &s, "--service", "vm"]);
    (env, s)
}

fn check_errors(env: &Env) -> Vec<serde_json::Value> {
    let o = env.run(&["--json", "check", "--read-data"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["errors"].as_array().unwrap().clone()
}

fn restore_matches(env: &Env, src: &str, name: &str) {
    let target = env.path(name);
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    let src = std::path::Path::new(src);
    assert_same_content(src, &restored(&target, src));
}

#[test]
fn lost_index_objects_are_rebuilt_from_packs() {
    let (env, src) = setup();
    for o in objects(&env.repo, "index") {
        std::fs::remove_file(o).unwrap();
    }
    // Without an index every blob looks missing.
    assert!(!check_errors(&env).is_empty());
    let r = env.json(&["repair"]);
    assert!(r["blobs"].as_u64().unwrap() > 10, "{r}");
    assert!(r["damaged_snapshots"].as_array().unwrap().is_empty(), "{r}");
    assert!(check_errors(&env).is_empty());
    restore_matches(&env, &src, "restore");
}

#[test]
fn a_damaged_blob_is_left_out_and_healed_by_the_next_backup() {
    let (env, src) = setup();
    // Damage the first blob of the biggest data pack.
    let mut packs = objects(&env.repo, "data");
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let pack = packs.last().unwrap().clone();
    flip_byte(&pack, 100);
    assert!(!check_errors(&env).is_empty());

    let o = env.run(&["--json", "repair"]);
    assert_eq!(o.status.code(), Some(1), "damage remains: exit 1");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["bad_blobs"], 1, "{r}");
    let damaged = r["damaged_snapshots"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{r}");
    assert_eq!(damaged[0]["removed"], false);
    assert!(
        damaged[0]["problem"].as_str().unwrap().contains("lost"),
        "{r}"
    );

    // The source still has the data: the next backup stores the blob again
    // (dedup no longer finds it), which heals the old snapshot too.
    env.ok(&["backup", &src, "--service", "vm"]);
    let r = env.json(&["repair", "--dry-run"]);
    assert!(r["damaged_snapshots"].as_array().unwrap().is_empty(), "{r}");
    restore_matches(&env, &src, "restore");
    let o = env.run(&["--json", "check", "--read-data"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["errors"].as_array().unwrap().is_empty(), "{v}");
    // Prune rewrites the pack that still holds the damaged copy.
    env.ok(&["prune"]);
    let v = env.json(&["check", "--read-data"]);
    assert!(v["warnings"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn snapshots_with_lost_data_are_removed_only_when_asked() {
    let (env, src) = setup();
    let first = env.json(&["snapshots"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Lose every data pack's header: nothing of the first snapshot survives.
    for p in objects(&env.repo, "data") {
        let len = std::fs::metadata(&p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len - 10).unwrap();
    }
    env.ok(&["pin", &first, "--reason", "test"]);
    let o = env.run(&["repair", "--drop-snapshots"]);
    assert_eq!(o.status.code(), Some(1), "a pinned damaged snapshot stays");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("pinned: kept"), "{out}");
    env.ok(&["unpin", &first]);
    let r = env.json(&["repair", "--drop-snapshots"]);
    assert_eq!(r["damaged_snapshots"][0]["removed"], true, "{r}");
    assert!(env.json(&["snapshots"]).as_array().unwrap().is_empty());
    assert!(check_errors(&env).is_empty());

    // The repository works on: a new backup, a restore, a prune.
    env.ok(&["backup", &src, "--service", "vm"]);
    env.ok(&["prune"]);
    assert!(check_errors(&env).is_empty());
    restore_matches(&env, &src, "restore");
}

#[test]
fn repair_waits_for_nobody_and_refuses_when_locked() {
    let (env, _src) = setup();
    let lock_dir = std::path::Path::new(&env.repo).join("locks");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let now = jiff::Timestamp::now();
    let body = serde_json::json!({
        "kind": "shared", "command": "backup", "hostname": custos::hostname(),
        "pid": std::process::id(), "username": "ops", "created": now.to_string(),
        "expires": (now + jiff::SignedDuration::from_secs(300)).to_string(),
    });
    std::fs::write(lock_dir.join("ab".repeat(32)), body.to_string()).unwrap();
    let e = env.fails(&["repair"], 3);
    assert!(e.contains("shared lock by `backup`"), "{e}");
}
