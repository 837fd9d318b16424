//! What custos leaves on local disk is private to its user whatever the
//! umask, and it refuses secret files that others can read.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::cli::{make_tree, write_secret, Env};

/// Runs custos with a permissive umask (022), as a careless shell has it.
fn run_umask_022(env: &Env, args: &[&str]) -> Output {
    let mut c = env.cmd();
    c.args(args);
    // SAFETY: umask is async-signal-safe and touches only the child.
    unsafe {
        c.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    c.output().unwrap()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every file and directory under `root` that group or others can reach.
fn not_private(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.mode() & 0o077 != 0 {
            out.push((p.clone(), md.mode() & 0o7777));
        }
        if md.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

#[test]
fn repository_cache_state_and_certificates_are_private_whatever_the_umask() {
    let env = Env::local();
    let src = env.path("src");
    make_tree(&src);
    ok(run_umask_022(&env, &["init"]));
    ok(run_umask_022(&env, &["backup", src.to_str().unwrap()]));
    let target = env.path("restore");
    ok(run_umask_022(
        &env,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    ));
    for dir in [Path::new(&env.repo).to_path_buf(), env.path("cache")] {
        let open = not_private(&dir);
        assert!(open.is_empty(), "readable by others: {open:?}");
    }
    // The restore target itself is private; what is in it has the
    // snapshot's modes.
    assert_eq!(target.metadata().unwrap().mode() & 0o777, 0o700);

    // The daemon's state: catalog, audit log, certificates.
    let d = env.path("daemon");
    std::fs::create_dir_all(&d).unwrap();
    write_secret(d.join("t.pass"), "tenant secret\n");
    let cfg = crate::common::fixtures::config("one-local-tenant.toml", &d, &[("TOKENS", "")]);
    ok(run_umask_022(
        &env,
        &[
            "certificate",
            "keygen",
            "--out",
            d.join("op.key").to_str().unwrap(),
        ],
    ));
    let cfg_s = cfg.to_str().unwrap();
    ok(run_umask_022(
        &env,
        &["erase", "notice", "--tenant", "t", "--config", cfg_s],
    ));
    ok(run_umask_022(
        &env,
        &[
            "erase", "execute", "--tenant", "t", "--now", "--yes", "--reason", "test", "--config",
            cfg_s,
        ],
    ));
    let open = not_private(&d.join("state"));
    assert!(open.is_empty(), "readable by others: {open:?}");
}

#[test]
fn secret_files_that_others_can_read_are_refused() {
    let env = Env::local();
    env.ok(&["init"]);
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    // A passphrase file.
    let pass = env.path("pass");
    std::fs::write(&pass, format!("{}\n", env.password)).unwrap();
    chmod(&pass, 0o644);
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args(["--password-file", pass.to_str().unwrap(), "snapshots"])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains(pass.to_str().unwrap()) && e.contains("0644") && e.contains("chmod 600"),
        "{e}"
    );
    chmod(&pass, 0o600);
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args(["--password-file", pass.to_str().unwrap(), "snapshots"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A key file given to `key add`.
    let key = env.path("k.key");
    std::fs::write(&key, [5u8; 64]).unwrap();
    chmod(&key, 0o640);
    let e = env.fails(&["key", "add", "--new-key-file", key.to_str().unwrap()], 2);
    assert!(e.contains("0640"), "{e}");

    // An API token's secret file and the certificate signing key.
    let d = env.path("daemon");
    std::fs::create_dir_all(&d).unwrap();
    write_secret(d.join("t.pass"), "tenant secret\n");
    std::fs::write(d.join("desk.token"), "a-long-enough-token-secret").unwrap();
    chmod(&d.join("desk.token"), 0o644);
    let cfg = crate::common::fixtures::config(
        "one-local-tenant.toml",
        &d,
        &[(
            "TOKENS",
            "[[daemon.token]]\nname = \"desk\"\nrole = \"operator\"\nsecret_file = \"desk.token\"",
        )],
    );
    let cfg_s = cfg.to_str().unwrap();
    let e = env.fails(&["config", "check", "--config", cfg_s], 2);
    assert!(e.contains("desk.token") && e.contains("0644"), "{e}");
    chmod(&d.join("desk.token"), 0o600);
    env.ok(&["config", "check", "--config", cfg_s]);

    env.ok(&[
        "certificate",
        "keygen",
        "--out",
        d.join("op.key").to_str().unwrap(),
    ]);
    chmod(&d.join("op.key"), 0o644);
    env.ok(&["erase", "notice", "--tenant", "t", "--config", cfg_s]);
    let e = env.fails(
        &[
            "erase", "execute", "--tenant", "t", "--now", "--yes", "--reason", "test", "--config",
            cfg_s,
        ],
        2,
    );
    assert!(e.contains("op.key") && e.contains("0644"), "{e}");
}
