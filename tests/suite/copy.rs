//! `custos copy`: replication to a standby repository with its own key,
//! incremental, verified, across real protocols.

use crate::common::cli::{
    assert_same_content, flip_byte, make_tree, objects, pseudo_random, restored, Env,
};
use crate::common::servers::{azure_env, missing, s3_env, start_azurite, start_moto};

/// Runs `copy` from `src` to `dst` (whose passphrase differs).
fn copy(src: &Env, dst: &Env, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut c = src.cmd();
    c.args(["--json", "copy", "--to", &dst.repo])
        .env("CUSTOS_TO_PASSWORD", &dst.password)
        .args(extra);
    for (k, v) in &dst.vars {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code(),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn scenario(src: &Env, dst: &Env) {
    src.ok(&["init"]);
    let tree = src.path("src");
    make_tree(&tree);
    let s = tree.to_str().unwrap();
    src.ok(&["backup", s, "--service", "web", "--tag", "daily"]);
    src.ok_stdin(
        &[
            "backup",
            "--stdin",
            "--stdin-name",
            "db.sql",
            "--service",
            "db",
        ],
        &pseudo_random(1 << 20, 5),
    );

    // First copy creates the destination (its own key) and copies everything.
    let (code, r, e) = copy(src, dst, &["--to-init"]);
    assert_eq!(code, Some(0), "{e}");
    assert_eq!(r["copied"], 2, "{r}");
    let first_bytes = r["bytes_added"].as_u64().unwrap();
    assert!(first_bytes > 3 << 20, "{r}");

    // Again: nothing to do, nothing uploaded.
    let (code, r, _) = copy(src, dst, &[]);
    assert_eq!(
        (code, r["copied"].as_u64(), r["present"].as_u64()),
        (Some(0), Some(0), Some(2)),
        "{r}"
    );
    assert_eq!(r["bytes_added"], 0);

    // A small change uploads about the change.
    std::fs::write(tree.join("docs/new.txt"), b"one more file\n").unwrap();
    src.ok(&["backup", s, "--service", "web"]);
    let (code, r, _) = copy(src, dst, &["--service", "web"]);
    assert_eq!((code, r["copied"].as_u64()), (Some(0), Some(1)), "{r}");
    assert!(r["bytes_added"].as_u64().unwrap() < 64 << 10, "{r}");

    // The destination stands on its own: its passphrase, its check, its restores.
    let dst_snaps = dst.json(&["snapshots"]);
    assert_eq!(dst_snaps.as_array().unwrap().len(), 3);
    let report = dst.json(&["check", "--read-data"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    let target = dst.path("restore");
    dst.ok(&[
        "restore",
        "latest",
        "--service",
        "web",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_content(&tree, &restored(&target, &tree));
    let db = dst_snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "db")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = dst.cmd().args(["dump", &db]).output().unwrap();
    assert!(
        o.stdout == pseudo_random(1 << 20, 5),
        "dump differs ({} bytes)",
        o.stdout.len()
    );
    // The source's passphrase does not open the destination.
    let o = dst
        .cmd()
        .env("CUSTOS_PASSWORD", &src.password)
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn local_to_local() {
    let src = Env::local();
    let mut dst = Env::local();
    dst.password = "another passphrase for the standby".into();
    scenario(&src, &dst);

    // Selection by ID, and a wrong destination passphrase.
    let (code, _, e) = {
        let mut wrong = Env::local();
        wrong.repo = dst.repo.clone();
        wrong.password = "wrong".into();
        copy(&src, &wrong, &[])
    };
    assert_eq!(code, Some(2), "{e}");
    assert!(e.contains("wrong passphrase"), "{e}");
    let (code, r, _) = copy(&src, &dst, &["latest", "--dry-run"]);
    assert_eq!(code, Some(0));
    assert_eq!(r["snapshots"].as_array().unwrap().len(), 1, "{r}");
}

#[test]
fn a_damaged_source_snapshot_fails_alone_and_the_destination_stays_sound() {
    let src = Env::local();
    let mut dst = Env::local();
    dst.password = "standby".into();
    src.ok(&["init"]);
    let a = src.path("a");
    let b = src.path("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("x.bin"), pseudo_random(2 << 20, 1)).unwrap();
    src.ok(&["backup", a.to_str().unwrap(), "--service", "a"]);
    let before: Vec<_> = objects(&src.repo, "data");
    std::fs::write(b.join("y.bin"), pseudo_random(2 << 20, 2)).unwrap();
    src.ok(&["backup", b.to_str().unwrap(), "--service", "b"]);
    // Damage the data pack of service a.
    let pack = before
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    flip_byte(pack, 200);

    let (code, r, e) = copy(&src, &dst, &["--to-init"]);
    assert_eq!(code, Some(1), "{r} {e}");
    assert_eq!(
        (r["copied"].as_u64(), r["failed"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    let failed = r["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["outcome"] == "failed")
        .unwrap();
    assert!(
        failed["error"].as_str().unwrap().contains("damaged")
            || failed["error"].as_str().unwrap().contains("authent"),
        "{failed}"
    );
    let report = dst.json(&["check", "--read-data"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(dst.json(&["snapshots"]).as_array().unwrap().len(), 1);
}

#[test]
fn s3_to_azurite() {
    let (Some(s3), Some(az)) = (start_moto(), start_azurite()) else {
        missing("moto_server or azurite-blob");
        return;
    };
    let src = Env::remote(s3.repo_url("primary/acme"), s3_env(&s3));
    let mut dst = Env::remote(az.repo_url("standby/acme"), azure_env(&az));
    dst.password = "standby passphrase".into();
    // One process reaches both stores: AWS_* and AZURE_* do not overlap.
    let mut both = src.vars.clone();
    both.extend(dst.vars.clone());
    let src = Env {
        vars: both.clone(),
        ..src
    };
    let dst = Env { vars: both, ..dst };
    scenario(&src, &dst);
}
