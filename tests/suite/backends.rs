//! The same scenarios against real object-store protocols: an S3 server (moto)
//! and the Azure Blob emulator (Azurite), each started on 127.0.0.1 on a free
//! port for this test. Skipped loudly when the server is not installed, and a
//! failure under CI (`CI=true`), where `.ci/run` installs both.

use crate::common::cli::{assert_same_content, make_tree, pseudo_random, restored, Env};
use crate::common::servers::{azure_env, missing, s3_builder, s3_env, start_azurite, start_moto};

/// init, backup, re-backup, snapshots, ls, dump, restore --verify, check
/// --read-data, stats, wrong passphrase, init refused, concurrent init.
fn scenario(env: &Env, fresh_url: impl Fn(&str) -> String) {
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    let s = src.to_str().unwrap();
    let first = env.json(&["backup", s, "--service", "vm1", "--tag", "daily"]);
    assert!(first["bytes_added"].as_u64().unwrap() > 3 << 20);
    let second = env.json(&["backup", s, "--service", "vm1"]);
    assert_eq!(second["bytes_read"].as_u64(), Some(0), "{second}");

    let dump = pseudo_random(2 << 20, 9);
    env.ok_stdin(
        &[
            "backup",
            "--stdin",
            "--stdin-name",
            "db.sql",
            "--service",
            "db1",
        ],
        &dump,
    );

    let snaps = env.json(&["snapshots", "--service", "vm1"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    assert_eq!(snaps[0]["tags"][0], "daily");

    let listing = env.ok(&["ls", "--recursive", second["id"].as_str().unwrap(), s]);
    assert!(listing.contains("big.bin"));
    let o = env.cmd().args(["dump", "latest"]).output().unwrap();
    assert_eq!(o.stdout, dump, "stream snapshot dumps back");

    let target = env.path("restore");
    env.ok(&[
        "restore",
        "latest",
        "--service",
        "vm1",
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    assert_same_content(&src, &restored(&target, &src));

    let report = env.json(&["check", "--read-data"]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert!(report["blobs_read"].as_u64().unwrap() > 3);
    let stats = env.json(&["stats"]);
    assert_eq!(stats["snapshots"], 3);
    assert!(stats["stored_bytes"].as_u64().unwrap() > 0);

    // Bad input against a remote store.
    let o = env
        .cmd()
        .env("CUSTOS_PASSWORD", "wrong")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong passphrase"));
    assert!(env.fails(&["init"], 2).contains("already exists"));
    let missing_repo = Env::remote(fresh_url("nothing-here"), env.vars.clone());
    assert!(missing_repo
        .fails(&["snapshots"], 2)
        .contains("no repository"));

    // Conditional create: of several concurrent inits on one prefix, exactly one wins.
    let race = Env::remote(fresh_url("race"), env.vars.clone());
    let children: Vec<_> = (0..4)
        .map(|_| {
            race.cmd()
                .arg("init")
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap_or(-1))
        .collect();
    assert_eq!(
        codes.iter().filter(|&&c| c == 0).count(),
        1,
        "exit codes {codes:?}"
    );
    assert!(
        codes.iter().all(|&c| c == 0 || c == 2),
        "exit codes {codes:?}"
    );
    race.ok(&["snapshots"]);
}

#[test]
fn s3_scenario() {
    let Some(s3) = start_moto() else {
        missing("moto_server");
        return;
    };
    let env = Env::remote(s3.repo_url("tenant-a/repo"), s3_env(&s3));
    scenario(&env, |p| s3.repo_url(p));
}

#[test]
fn azure_scenario() {
    let Some(az) = start_azurite() else {
        missing("azurite-blob");
        return;
    };
    let env = Env::remote(az.repo_url("tenant-b/repo"), azure_env(&az));
    scenario(&env, |p| az.repo_url(p));
}

/// Locks on S3: a live exclusive lock refuses a backup with exit code 3 and
/// names the holder; `unlock --all` clears it.
#[test]
fn s3_locks() {
    let Some(s3) = start_moto() else {
        missing("moto_server");
        return;
    };
    let env = Env::remote(s3.repo_url("locks"), s3_env(&s3));
    env.ok(&["init"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Built from explicit settings: the suite's other flows run in this
        // process, so its environment is left alone.
        crate::common::servers::install_crypto_provider();
        let store = s3_builder(&s3).build().unwrap();
        let prefix = env.repo.rsplit('/').next().unwrap().to_string();
        let store = object_store::prefix::PrefixStore::new(store, prefix);
        let backend = custos::backend::Backend::from_store(std::sync::Arc::new(store), &env.repo);
        let lock = custos::repository::lock::Lock::acquire(
            &backend,
            custos::repository::lock::LockKind::Exclusive,
            "repair",
        )
        .await
        .unwrap();
        let src = env.path("src");
        make_tree(&src);
        let e = env.fails(&["backup", src.to_str().unwrap()], 3);
        assert!(e.contains("locked") && e.contains("repair"), "{e}");
        lock.release().await.unwrap();
        env.ok(&["backup", src.to_str().unwrap()]);
    });
}
