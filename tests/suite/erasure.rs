//! End-of-contract erasure on the S3 emulator and Azurite: refused before the
//! notice period, resumed after a kill, nothing left under the tenant's
//! prefix on either target, the other tenant untouched, a certificate that
//! verifies offline, an audit log that verifies.

use std::path::Path;
use std::process::Command;

use crate::common::cli::{assert_same_content, bin, make_tree, restored};
use crate::common::servers::{azure_env, missing, s3_env, start_azurite, start_moto};

fn custos(vars: &[(String, String)]) -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("AZURE_") || k.starts_with("CUSTOS_") {
            c.env_remove(k);
        }
    }
    c.env("CUSTOS_TEST_FAST_KDF", "1")
        .env("CUSTOS_BACKEND_RETRIES", "2");
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{:?}: {}",
        c,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn erasure_on_s3_and_azurite() {
    let (Some(s3), Some(az)) = (start_moto(), start_azurite()) else {
        missing("moto_server or azurite-blob");
        return;
    };
    let mut vars = s3_env(&s3);
    vars.extend(azure_env(&az));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::common::cli::write_secret(d.join("acme.pass"), "acme secret\n");
    crate::common::cli::write_secret(d.join("globex.pass"), "globex secret\n");
    ok(custos(&vars)
        .args(["certificate", "keygen", "--out"])
        .arg(d.join("operator.key")));
    let primary = s3.repo_url("backups");
    let standby = az.repo_url("standby");
    let cfg = crate::common::fixtures::config(
        "erasure-two-targets.toml",
        d,
        &[("PRIMARY", &primary), ("STANDBY", &standby)],
    );

    // Data for both tenants; acme's is on both targets.
    let src = d.join("src");
    make_tree(&src);
    let repo = |base: &str, t: &str| format!("{base}/{t}");
    for t in ["acme", "globex"] {
        let pass = d.join(format!("{t}.pass"));
        ok(custos(&vars)
            .args(["-r", &repo(&primary, t), "--password-file"])
            .arg(&pass)
            .arg("init"));
        ok(custos(&vars)
            .args(["-r", &repo(&primary, t), "--password-file"])
            .arg(&pass)
            .arg("backup")
            .arg(&src));
    }
    ok(custos(&vars)
        .args(["-r", &repo(&primary, "acme"), "--password-file"])
        .arg(d.join("acme.pass"))
        .args([
            "copy",
            "--to-init",
            "--to",
            &repo(&standby, "acme"),
            "--to-password-file",
        ])
        .arg(d.join("acme.pass")));

    // Notice, then a refusal before the notice period ends.
    ok(custos(&vars)
        .args(["erase", "notice", "--tenant", "acme", "--config"])
        .arg(&cfg));
    let o = custos(&vars)
        .args(["erase", "execute", "--tenant", "acme", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("notice period") && e.contains("refused"), "{e}");

    // Early (audited), killed in the middle, resumed.
    let early = |crash: Option<&str>| {
        let mut c = custos(&vars);
        c.args([
            "erase",
            "execute",
            "--tenant",
            "acme",
            "--now",
            "--yes",
            "--reason",
            "partner asked in ticket SD-9",
            "--config",
        ])
        .arg(&cfg);
        if let Some(p) = crash {
            c.env("CUSTOS_TEST_CRASH_AT", p);
        }
        c.output().unwrap()
    };
    let o = early(Some("erase:mid-delete#5"));
    assert_eq!(
        o.status.code(),
        None,
        "killed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = early(None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let status = ok(custos(&vars)
        .args(["--json", "erase", "status", "--config"])
        .arg(&cfg));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status[0]["state"], "erased", "{status}");

    // The tenant's passphrase file is gone from this host; the other's stays.
    assert!(
        !d.join("acme.pass").exists(),
        "acme's passphrase file is still there"
    );
    assert!(d.join("globex.pass").exists());
    crate::common::cli::write_secret(d.join("acme.pass"), "acme secret\n");

    // Nothing left under acme's prefix on either target.
    for base in [&primary, &standby] {
        let o = custos(&vars)
            .args(["-r", &repo(base, "acme"), "--password-file"])
            .arg(d.join("acme.pass"))
            .arg("snapshots")
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains("no repository"));
    }
    // globex is untouched and restores.
    let target = d.join("restore");
    ok(custos(&vars)
        .args(["-r", &repo(&primary, "globex"), "--password-file"])
        .arg(d.join("globex.pass"))
        .args(["restore", "latest", "--target"])
        .arg(&target));
    assert_same_content(&src, &restored(&target, &src));

    // The certificate verifies offline; a changed byte does not.
    let cert_path = status[0]["certificate"].as_str().unwrap().to_string();
    // It says that erasure started before the end of the notice period,
    // when that was, and why.
    let cert: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cert_path).unwrap()).unwrap();
    let early = &cert["certificate"]["early_start"];
    assert_eq!(early["reason"], "partner asked in ticket SD-9", "{cert}");
    assert!(early["notice_period_ended"].is_string(), "{cert}");
    let md = std::fs::read_to_string(cert_path.replace(".json", ".md")).unwrap();
    assert!(md.contains("before the end of the notice period"), "{md}");
    let public = d.join("operator.pub");
    let out = ok(custos(&[])
        .args(["certificate", "verify", &cert_path, "--public-key"])
        .arg(&public));
    assert!(out.contains("tenant acme"), "{out}");
    let cert: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cert_path).unwrap()).unwrap();
    let targets = cert["certificate"]["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{cert}");
    for t in targets {
        assert!(t["objects_deleted"].as_u64().unwrap() > 3, "{t}");
        assert_eq!(t["remaining_after"], 0);
        // What the store keeps of deleted objects was read and recorded.
        assert!(t["store"]["versioning"].is_string(), "{t}");
        assert!(t["store"]["soft_delete"].is_string(), "{t}");
    }
    assert_eq!(cert["certificate"]["version"], 2);
    let keys = &cert["certificate"]["local_key_material"][0];
    assert_eq!(keys["source"], "password_file", "{cert}");
    assert_eq!(keys["erased"], true, "{cert}");
    assert_eq!(
        cert["certificate"]["destroyed_key_slots"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "one slot per target"
    );
    assert!(Path::new(&cert_path.replace(".json", ".md")).exists());
    let tampered = d.join("tampered.json");
    std::fs::write(
        &tampered,
        std::fs::read_to_string(&cert_path)
            .unwrap()
            .replacen("acme", "acmf", 1),
    )
    .unwrap();
    let o = custos(&[])
        .args(["certificate", "verify"])
        .arg(&tampered)
        .arg("--public-key")
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));

    // The audit log has every step and verifies.
    ok(custos(&[]).args(["audit", "verify", "--config"]).arg(&cfg));
    let log = std::fs::read_to_string(d.join("state/audit.log")).unwrap();
    for step in [
        "erasure.notice",
        "erasure.early",
        "erasure.started",
        "erasure.completed",
    ] {
        assert!(log.contains(step), "{step} missing");
    }
    // Notice cannot be given twice.
    let o = custos(&vars)
        .args(["erase", "notice", "--tenant", "acme", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

/// A config with one target and two tenants, `zqacme` (erased) and `globex`.
fn two_tenant_config(d: &Path, target_url: &str) -> std::path::PathBuf {
    crate::common::cli::write_secret(d.join("zqacme.pass"), "zqacme secret\n");
    crate::common::cli::write_secret(d.join("globex.pass"), "globex secret\n");
    crate::common::fixtures::config("erasure-one-target.toml", d, &[("TARGET", target_url)])
}

fn erase_now(vars: &[(String, String)], cfg: &Path) -> std::process::Output {
    ok(custos(vars)
        .args(["erase", "notice", "--tenant", "zqacme", "--config"])
        .arg(cfg));
    custos(vars)
        .args([
            "erase", "execute", "--tenant", "zqacme", "--now", "--yes", "--reason", "test",
            "--config",
        ])
        .arg(cfg)
        .output()
        .unwrap()
}

#[test]
fn erasure_on_a_versioned_bucket_deletes_every_version() {
    let Some(s3) = start_moto() else {
        missing("moto_server");
        return;
    };
    s3.enable_versioning();
    let vars = s3_env(&s3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(custos(&vars)
        .args(["certificate", "keygen", "--out"])
        .arg(d.join("operator.key")));
    let primary = s3.repo_url("backups");
    let cfg = two_tenant_config(d, &primary);
    let src = d.join("src");
    make_tree(&src);
    let repo = |t: &str| format!("{primary}/{t}");
    let run = |t: &str, args: &[&str]| {
        ok(custos(&vars)
            .args(["-r", &repo(t), "--password-file"])
            .arg(d.join(format!("{t}.pass")))
            .args(args))
    };
    for t in ["zqacme", "globex"] {
        run(t, &["init"]);
        run(t, &["backup", src.to_str().unwrap()]);
    }
    // Old versions of zqacme's data: a key slot added then removed, a
    // second backup, the first forgotten and pruned.
    crate::common::cli::write_secret(d.join("other.pass"), "another passphrase\n");
    let slot_ids = || -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&run("zqacme", &["--json", "key", "list"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    let first = slot_ids();
    run(
        "zqacme",
        &[
            "key",
            "add",
            "--new-password-file",
            d.join("other.pass").to_str().unwrap(),
        ],
    );
    let added = slot_ids()
        .into_iter()
        .find(|id| !first.contains(id))
        .expect("the added slot");
    run("zqacme", &["key", "remove", &added]);
    let as_backed_up = d.join("as-backed-up");
    crate::common::cli::copy_tree(&src, &as_backed_up);
    std::fs::write(src.join("docs/readme.txt"), b"changed").unwrap();
    run("zqacme", &["backup", src.to_str().unwrap()]);
    run("zqacme", &["forget", "--keep-last", "1", "--prune"]);
    let before = s3.list_versions(&s3.bucket, "backups/zqacme/");
    assert!(before.contains("<DeleteMarker>"), "{before}");

    let o = erase_now(&vars, &cfg);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Nothing under the prefix, not even a version or a delete marker.
    let after = s3.list_versions(&s3.bucket, "backups/zqacme/");
    assert!(!after.contains("<Key>backups/zqacme/"), "{after}");
    // The other tenant is untouched and restores.
    assert!(s3
        .list_versions(&s3.bucket, "backups/globex/")
        .contains("<Key>backups/globex/"));
    let target = d.join("restore");
    ok(custos(&vars)
        .args(["-r", &repo("globex"), "--password-file"])
        .arg(d.join("globex.pass"))
        .args(["restore", "latest", "--target"])
        .arg(&target));
    assert_same_content(&as_backed_up, &restored(&target, &src));

    let status: serde_json::Value = serde_json::from_str(&ok(custos(&vars)
        .args(["--json", "erase", "status", "--config"])
        .arg(&cfg)))
    .unwrap();
    let cert_path = status[0]["certificate"].as_str().unwrap();
    let cert: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cert_path).unwrap()).unwrap();
    let c = &cert["certificate"];
    let store = &c["targets"][0]["store"];
    assert_eq!(store["store"], "s3", "{cert}");
    assert_eq!(store["versioning"], "enabled", "{cert}");
    assert_eq!(store["object_lock"], "not configured", "{cert}");
    assert!(store["versions_deleted"].as_u64().unwrap() > 10, "{cert}");
    assert_eq!(store["versions_remaining_after"], 0, "{cert}");
    // Both key slots, the removed one included (found as an old version).
    assert_eq!(
        c["destroyed_key_slots"].as_array().unwrap().len(),
        2,
        "{cert}"
    );
    let v = c["verification"].as_str().unwrap();
    assert!(v.contains("versions"), "{v}");
    ok(custos(&[])
        .args(["certificate", "verify", cert_path, "--public-key"])
        .arg(d.join("operator.pub")));
}

#[test]
fn erasure_deletes_nothing_where_object_lock_would_keep_the_data() {
    let Some(s3) = start_moto() else {
        missing("moto_server");
        return;
    };
    let locked = s3.create_locked_bucket();
    let vars = s3_env(&s3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(custos(&vars)
        .args(["certificate", "keygen", "--out"])
        .arg(d.join("operator.key")));
    let url = format!("s3://{locked}/backups");
    let cfg = two_tenant_config(d, &url);
    let src = d.join("src");
    make_tree(&src);
    let repo = format!("{url}/zqacme");
    let pass = d.join("zqacme.pass");
    ok(custos(&vars)
        .args(["-r", &repo, "--password-file"])
        .arg(&pass)
        .arg("init"));
    ok(custos(&vars)
        .args(["-r", &repo, "--password-file"])
        .arg(&pass)
        .arg("backup")
        .arg(&src));
    let body = |r: String| r.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    let before = body(s3.list_versions(&locked, "backups/zqacme/"));

    let o = erase_now(&vars, &cfg);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("stopped before deleting anything")
            && e.contains("target primary")
            && e.contains("Object Lock"),
        "{e}"
    );
    // Not one object or version deleted; the key file is still there; the
    // tenant is `erasing` (refused everywhere) until the operator acts.
    assert_eq!(body(s3.list_versions(&locked, "backups/zqacme/")), before);
    assert!(pass.exists());
    ok(custos(&vars)
        .args(["-r", &repo, "--password-file"])
        .arg(&pass)
        .arg("snapshots"));
    let status: serde_json::Value = serde_json::from_str(&ok(custos(&vars)
        .args(["--json", "erase", "status", "--config"])
        .arg(&cfg)))
    .unwrap();
    assert_eq!(status[0]["state"], "erasing", "{status}");
    assert!(
        status[0]["targets"]["primary"]["retention"]["object_lock"] == "enabled",
        "{status}"
    );
}

#[test]
fn erasure_waits_for_the_exclusive_lock_and_deletes_nothing_before() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(custos(&[])
        .args(["certificate", "keygen", "--out"])
        .arg(d.join("operator.key")));
    let target = d.join("target");
    let cfg = two_tenant_config(d, target.to_str().unwrap());
    let repo = target.join("zqacme");
    let src = d.join("src");
    make_tree(&src);
    for args in [&["init"][..], &["backup", src.to_str().unwrap()]] {
        ok(custos(&[])
            .arg("-r")
            .arg(&repo)
            .arg("--password-file")
            .arg(d.join("zqacme.pass"))
            .args(args));
    }
    // A backup is running (this test process holds a live shared lock).
    let now = jiff::Timestamp::now();
    let lock = repo.join("locks").join("ab".repeat(32));
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(
        &lock,
        serde_json::to_vec(&serde_json::json!({
            "kind": "shared", "command": "backup", "hostname": custos::hostname(),
            "pid": std::process::id(), "username": "ops", "created": now.to_string(),
            "expires": (now + jiff::SignedDuration::from_secs(600)).to_string(),
        }))
        .unwrap(),
    )
    .unwrap();
    let count = || crate::common::cli::objects(repo.to_str().unwrap(), "").len();
    let before = count();
    let o = erase_now(&[], &cfg);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(e.contains("locked") && e.contains("backup"), "{e}");
    assert_eq!(count(), before, "erasure deleted something while locked");
    // Once the backup is gone, the same command completes.
    std::fs::remove_file(&lock).unwrap();
    let o = custos(&[])
        .args([
            "erase", "execute", "--tenant", "zqacme", "--now", "--yes", "--reason", "test",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!repo.exists() || crate::common::cli::objects(repo.to_str().unwrap(), "").is_empty());
}

#[test]
fn erasure_deletes_nothing_where_azure_soft_delete_would_keep_the_data() {
    let Some(az) = start_azurite() else {
        missing("azurite-blob");
        return;
    };
    az.set_soft_delete(7, false);
    let vars = azure_env(&az);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(custos(&vars)
        .args(["certificate", "keygen", "--out"])
        .arg(d.join("operator.key")));
    let url = az.repo_url("backups");
    let cfg = two_tenant_config(d, &url);
    let repo = format!("{url}/zqacme");
    let pass = d.join("zqacme.pass");
    let src = d.join("src");
    make_tree(&src);
    for args in [&["init"][..], &["backup", src.to_str().unwrap()]] {
        ok(custos(&vars)
            .args(["-r", &repo, "--password-file"])
            .arg(&pass)
            .args(args));
    }
    let o = erase_now(&vars, &cfg);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("stopped before deleting anything") && e.contains("soft delete"),
        "{e}"
    );
    // Everything still there.
    ok(custos(&vars)
        .args(["-r", &repo, "--password-file"])
        .arg(&pass)
        .args(["check"]));
}
