//! Damage to each kind of stored object — config, key slot, pack data, pack
//! header, index, snapshot, tree blob — three ways: a flipped byte, a
//! truncation, a deletion. For each: `check` finds it and names what is
//! affected; what is not affected still restores byte for byte; nothing is
//! written to the repository by the commands that find the damage.
//!
//! The fixture: two snapshots of two separate trees (A and B), written by two
//! backups, so that B's packs, index object, snapshot and tree pack are B's
//! alone; damage goes to B's objects and A must restore untouched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::cli::{assert_same_content, copy_tree, objects, pseudo_random, restored, Env};

#[derive(Clone, Copy, Debug)]
enum Damage {
    Flip,
    Truncate,
    Delete,
}

const DAMAGES: [Damage; 3] = [Damage::Flip, Damage::Truncate, Damage::Delete];

struct Fixture {
    /// Holds the pristine repository and the sources.
    _env: Env,
    repo: PathBuf,
    a: PathBuf,
    b: PathBuf,
    a_id: String,
    b_id: String,
    /// Objects written by B's backup.
    b_objects: Vec<String>,
    second_password: PathBuf,
}

fn fixture() -> Fixture {
    let env = Env::local();
    env.ok(&["init", "--chunk-avg-kib", "64", "--pack-size-mib", "1"]);
    let second = env.path("second.pass");
    crate::common::cli::write_secret(&second, "second passphrase\n");
    env.ok(&[
        "key",
        "add",
        "--new-password-file",
        second.to_str().unwrap(),
    ]);
    let a = env.path("a");
    let b = env.path("b");
    for (dir, seed) in [(&a, 10u64), (&b, 20u64)] {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        // About 1.8 MB each: at least two data packs per backup.
        for i in 0..6u64 {
            std::fs::write(
                dir.join(format!("f{i}.bin")),
                pseudo_random(300_000, seed + i),
            )
            .unwrap();
        }
        std::fs::write(
            dir.join("sub/notes.txt"),
            format!("tree {seed}\n").repeat(50),
        )
        .unwrap();
    }
    let a_id = env.json(&["backup", a.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = files(Path::new(&env.repo));
    let b_id = env.json(&["backup", b.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b_objects = files(Path::new(&env.repo))
        .into_keys()
        .filter(|p| !before.contains_key(p) && !p.starts_with("locks"))
        .collect();
    Fixture {
        repo: PathBuf::from(&env.repo),
        _env: env,
        a,
        b,
        a_id,
        b_id,
        b_objects,
        second_password: second,
    }
}

/// Every file of a repository with its content.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A fresh environment over a copy of the pristine repository.
fn copy_of(f: &Fixture) -> Env {
    let env = Env::local();
    copy_tree(&f.repo, Path::new(&env.repo));
    env
}

fn damage(path: &Path, how: Damage, offset: i64) {
    match how {
        Damage::Flip => {
            let mut data = std::fs::read(path).unwrap();
            let i = if offset < 0 {
                (data.len() as i64 + offset) as usize
            } else {
                (offset as usize).min(data.len() - 1)
            };
            data[i] ^= 0x40;
            std::fs::write(path, data).unwrap();
        }
        Damage::Truncate => {
            let data = std::fs::read(path).unwrap();
            std::fs::write(path, &data[..data.len() / 2]).unwrap();
        }
        Damage::Delete => std::fs::remove_file(path).unwrap(),
    }
}

/// Runs `check` (with `--read-data` when asked); returns exit code and stderr.
fn check(env: &Env, read_data: bool) -> (Option<i32>, String) {
    let mut args = vec!["check"];
    if read_data {
        args.push("--read-data");
    }
    let o = env.run(&args);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Restores `id` and compares it with `src` (all of it, or without
/// `exclude`).
fn restores(env: &Env, id: &str, src: &Path, what: &str) {
    let target = env.path(&format!("restore-{}", &id[..8]));
    let _ = std::fs::remove_dir_all(&target);
    let o = env.run(&["restore", id, "--target", target.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "{what}: restore of {id}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_same_content(src, &restored(&target, src));
}

/// The object of B's backup under `folder`; for packs, `tree` picks the
/// tree pack (the small one) or the data pack.
fn b_object(f: &Fixture, folder: &str, tree: bool) -> String {
    let mut hits: Vec<&String> = f
        .b_objects
        .iter()
        .filter(|p| p.starts_with(folder))
        .collect();
    assert!(!hits.is_empty(), "no {folder} object from B's backup");
    hits.sort_by_key(|p| std::fs::metadata(f.repo.join(p)).unwrap().len());
    if tree {
        hits[0].clone()
    } else {
        hits[hits.len() - 1].clone()
    }
}

/// The repository's files are what they were (a command that found damage
/// wrote nothing), locks and the cache aside.
fn assert_unchanged(env: &Env, before: &BTreeMap<String, Vec<u8>>, what: &str) {
    let mut after = files(Path::new(&env.repo));
    after.retain(|k, _| !k.starts_with("locks"));
    let mut before = before.clone();
    before.retain(|k, _| !k.starts_with("locks"));
    assert!(after == before, "{what}: the repository was changed");
}

#[test]
fn config_damage_is_refused_by_name() {
    let f = fixture();
    for how in DAMAGES {
        let env = copy_of(&f);
        let config = Path::new(&env.repo).join("config");
        damage(&config, how, 20);
        let before = files(Path::new(&env.repo));
        let (code, err) = check(&env, false);
        let what = format!("config {how:?}");
        assert_ne!(code, Some(0), "{what}: {err}");
        match how {
            Damage::Delete => assert!(err.contains("no repository"), "{what}: {err}"),
            _ => assert!(err.contains("config"), "{what}: {err}"),
        }
        // Nothing else runs on it, and nothing is written.
        let o = env.run(&["backup", f.a.to_str().unwrap()]);
        assert_ne!(o.status.code(), Some(0), "{what}: backup ran");
        assert_unchanged(&env, &before, &what);
    }
}

#[test]
fn key_slot_damage_leaves_the_other_slots_working() {
    let f = fixture();
    let slots: Vec<PathBuf> = objects(f.repo.to_str().unwrap(), "keys");
    assert_eq!(slots.len(), 2);
    for how in DAMAGES {
        // Damage each slot in turn; the passphrase of the other one opens
        // the repository, which checks clean and restores.
        for (i, slot) in slots.iter().enumerate() {
            let env = copy_of(&f);
            let rel = slot.strip_prefix(&f.repo).unwrap();
            damage(&Path::new(&env.repo).join(rel), how, 40);
            let what = format!("key slot {i} {how:?}");
            let first = env.run(&["--json", "check", "--read-data"]);
            let second = env
                .cmd()
                .env_remove("CUSTOS_PASSWORD")
                .env("CUSTOS_PASSWORD_FILE", &f.second_password)
                .args(["--json", "check", "--read-data"])
                .output()
                .unwrap();
            // Exit 2: the passphrase opens no slot; 0 or 1: it opened the
            // repository and check ran.
            let opened: Vec<bool> = [&first, &second]
                .iter()
                .map(|o| o.status.code() != Some(2))
                .collect();
            assert_eq!(
                opened.iter().filter(|o| **o).count(),
                1,
                "{what}: exactly one passphrase still opens it: {} / {}",
                String::from_utf8_lossy(&first.stderr),
                String::from_utf8_lossy(&second.stderr)
            );
            let (failed, worked) = if opened[0] {
                (&second, &first)
            } else {
                (&first, &second)
            };
            let e = String::from_utf8_lossy(&failed.stderr);
            assert!(
                e.contains("key") || e.contains("passphrase"),
                "{what}: says why: {e}"
            );
            let report: serde_json::Value = serde_json::from_slice(&worked.stdout).unwrap();
            let errors = report["errors"].as_array().unwrap();
            match how {
                // Gone: nothing to see.
                Damage::Delete => assert!(errors.is_empty(), "{what}: {report}"),
                // A slot that no longer decodes is reported by check; one
                // whose encrypted part was altered still decodes and only
                // fails its own passphrase.
                _ => assert!(
                    errors.is_empty() || report["errors"].to_string().contains("keys/"),
                    "{what}: {report}"
                ),
            }
            if matches!(how, Damage::Truncate) {
                assert!(!errors.is_empty(), "{what}: check names the slot: {report}");
            }
            let worked_with_second = opened[1];
            let env = if worked_with_second {
                let mut e = Env::local();
                e.password = std::fs::read_to_string(&f.second_password)
                    .unwrap()
                    .trim()
                    .to_string();
                copy_tree(Path::new(&env.repo), Path::new(&e.repo));
                e
            } else {
                env
            };
            restores(&env, &f.a_id, &f.a, &what);
            restores(&env, &f.b_id, &f.b, &what);
        }
    }
}

/// Whether `rel` (a path inside `root`) is among the `affected` entries
/// check printed: the file itself, or a directory whose tree was lost (the
/// file's own, one above it, or `root` or one of its ancestors).
fn is_affected(affected: &[String], root: &Path, rel: &str) -> bool {
    let root = root.to_string_lossy();
    affected
        .iter()
        .any(|a| match a.strip_suffix(" (whole directory)") {
            Some(dir) => {
                let dir = dir.trim_end_matches('/');
                if root.starts_with(dir) {
                    return true;
                }
                match dir.strip_prefix(root.as_ref()) {
                    Some(sub) => rel.starts_with(&format!("{}/", sub.trim_start_matches('/'))),
                    None => false,
                }
            }
            None => a == "/" || a.ends_with(&format!("/{rel}")),
        })
}

/// Each of B's packs (data packs and its tree pack) damaged in turn, three
/// ways: check names the snapshot and each affected file, or the directory
/// whose tree was lost; A is never named and restores; every file of B that
/// check did not name restores byte for byte.
#[test]
fn pack_and_tree_damage_is_named_down_to_the_file() {
    let f = fixture();
    let packs: Vec<&String> = f
        .b_objects
        .iter()
        .filter(|p| p.starts_with("data"))
        .collect();
    assert!(packs.len() >= 2, "B wrote data and tree packs");
    let b_short = format!("snapshot {}: ", &f.b_id[..8]);
    for how in DAMAGES {
        let (mut intact, mut files_named, mut trees_named) = (0, 0, 0);
        for pack in &packs {
            let env = copy_of(&f);
            // A flip early in the pack: inside its first blob (a blob is
            // at least a nonce and a tag long).
            damage(&Path::new(&env.repo).join(pack), how, 10);
            let what = format!("pack {pack} {how:?}");
            let before = files(Path::new(&env.repo));
            let (code, err) = check(&env, matches!(how, Damage::Flip));
            assert_eq!(code, Some(1), "{what}: {err}");
            assert!(err.contains(&b_short), "{what}: names B: {err}");
            assert!(
                !err.contains(&format!("snapshot {}", &f.a_id[..8])),
                "{what}: {err}"
            );
            if err.contains(": tree ") {
                trees_named += 1;
                // A lost directory is named as such; a lost root tree as
                // the snapshot's root, `/`.
                assert!(
                    err.contains("(whole directory)")
                        || err.lines().any(|l| l.trim() == format!("{b_short}/")),
                    "{what}: {err}"
                );
            } else {
                files_named += 1;
                assert!(err.contains("damaged data affects"), "{what}: {err}");
                assert!(
                    err.contains(".bin") || err.contains(".txt"),
                    "{what}: names the file: {err}"
                );
            }
            assert_unchanged(&env, &before, &what);
            restores(&env, &f.a_id, &f.a, &what);
            // Every file of B that check did not name restores byte for byte.
            let affected: Vec<String> = err
                .lines()
                .filter_map(|l| l.trim().strip_prefix(&b_short))
                .map(str::to_string)
                .collect();
            let t = env.path("b-partial");
            let o = env.run(&["restore", &f.b_id, "--target", t.to_str().unwrap()]);
            // (A restore may still succeed when what was cut off held only
            // the pack's header: check counts the whole pack as damaged, the
            // restore reads the blobs where the index says they are; then
            // every file must be right.)
            let all_ok = o.status.success();
            for (rel, content) in files(&f.b) {
                if is_affected(&affected, &f.b, &rel) && !all_ok {
                    continue;
                }
                intact += 1;
                assert_eq!(
                    std::fs::read(restored(&t, &f.b).join(&rel)).ok().as_ref(),
                    Some(&content),
                    "{what}: {rel} was not named as affected: {err}"
                );
            }
        }
        assert!(intact > 0, "{how:?}: some of B's files were not affected");
        assert!(files_named > 0, "{how:?}: a data pack was damaged");
        assert!(trees_named > 0, "{how:?}: the tree pack was damaged");
    }
}

#[test]
fn pack_header_damage_is_named() {
    let f = fixture();
    let pack = b_object(&f, "data", false);
    for how in [Damage::Flip, Damage::Truncate] {
        let env = copy_of(&f);
        let path = Path::new(&env.repo).join(&pack);
        match how {
            // Inside the encrypted header, just before its length field.
            Damage::Flip => damage(&path, how, -10),
            // Only the header cut off.
            _ => {
                let data = std::fs::read(&path).unwrap();
                std::fs::write(&path, &data[..data.len() - 20]).unwrap();
            }
        }
        let what = format!("pack header {how:?}");
        let (code, err) = check(&env, true);
        assert_eq!(code, Some(1), "{what}: {err}");
        assert!(
            err.contains(&pack[pack.len() - 64..]),
            "{what}: names the pack: {err}"
        );
        if matches!(how, Damage::Truncate) {
            // The pack's size no longer matches the index: all its blobs
            // count as damaged, and what uses them is named.
            assert!(
                err.contains(&format!("snapshot {}", &f.b_id[..8])),
                "{what}: {err}"
            );
        }
        // The blobs themselves are intact and the index says where they
        // are: both snapshots still restore.
        restores(&env, &f.a_id, &f.a, &what);
        restores(&env, &f.b_id, &f.b, &what);
    }
}

#[test]
fn index_damage_is_named_and_repaired() {
    let f = fixture();
    let index = b_object(&f, "index", false);
    for how in DAMAGES {
        let env = copy_of(&f);
        damage(&Path::new(&env.repo).join(&index), how, 30);
        let what = format!("index {how:?}");
        let (code, err) = check(&env, false);
        assert_eq!(code, Some(1), "{what}: {err}");
        if !matches!(how, Damage::Delete) {
            assert!(
                err.contains("index/") && err.contains("damaged"),
                "{what}: {err}"
            );
        }
        assert!(
            err.contains(&format!("snapshot {}", &f.b_id[..8])),
            "{what}: {err}"
        );
        restores(&env, &f.a_id, &f.a, &what);
        // repair rebuilds the index from the packs: everything restores.
        env.ok(&["repair"]);
        let (code, err) = check(&env, true);
        assert_eq!(code, Some(0), "{what}, repaired: {err}");
        restores(&env, &f.b_id, &f.b, &what);
    }
}

#[test]
fn snapshot_damage_is_named() {
    let f = fixture();
    let snap = b_object(&f, "snapshots", false);
    for how in DAMAGES {
        let env = copy_of(&f);
        damage(&Path::new(&env.repo).join(&snap), how, -5);
        let what = format!("snapshot {how:?}");
        let before = files(Path::new(&env.repo));
        let (code, err) = check(&env, true);
        match how {
            // A deleted snapshot is a forgotten one: its data is unused.
            Damage::Delete => assert_eq!(code, Some(0), "{what}: {err}"),
            _ => {
                assert_eq!(code, Some(1), "{what}: {err}");
                assert!(err.contains(&snap), "{what}: names the object: {err}");
            }
        }
        assert_unchanged(&env, &before, &what);
        restores(&env, &f.a_id, &f.a, &what);
    }
}

#[test]
fn key_slot_with_an_altered_argon2_cost_is_refused_not_run() {
    let f = fixture();
    let env = copy_of(&f);
    let slots = objects(&env.repo, "keys");
    let mut altered = 0;
    for slot in &slots {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(slot).unwrap()).unwrap();
        // Only the slot of the first passphrase: it is the one we open with
        // below, and it must fail fast instead of asking for 4 TiB.
        let kdf = &mut v["kdf"];
        if kdf.get("m_kib").is_some() && altered == 0 {
            kdf["m_kib"] = serde_json::json!(u32::MAX);
            std::fs::write(slot, serde_json::to_vec(&v).unwrap()).unwrap();
            altered += 1;
        }
    }
    assert_eq!(altered, 1, "a passphrase slot to alter");
    let both = [
        env.run(&["--json", "check"]),
        env.cmd()
            .env_remove("CUSTOS_PASSWORD")
            .env("CUSTOS_PASSWORD_FILE", &f.second_password)
            .args(["--json", "check"])
            .output()
            .unwrap(),
    ];
    // One passphrase still opens the repository, and its check names the
    // altered slot; the other is refused with a clear error, not run.
    let opened: Vec<&std::process::Output> =
        both.iter().filter(|o| o.status.code() != Some(2)).collect();
    assert_eq!(opened.len(), 1);
    let report: serde_json::Value = serde_json::from_slice(&opened[0].stdout).unwrap();
    assert!(
        report["errors"].to_string().contains("Argon2 parameters"),
        "{report}"
    );
    let refused = both.iter().find(|o| o.status.code() == Some(2)).unwrap();
    let e = String::from_utf8_lossy(&refused.stderr);
    assert!(e.contains("passphrase") || e.contains("key"), "{e}");
}
