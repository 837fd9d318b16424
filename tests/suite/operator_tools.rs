//! The operator's daily tools, as a newcomer from restic would use them:
//! `diff`, `find`, `tag`, `snapshots` with pins, `ls -l`, `dump --archive`,
//! `stats --mode`, the backup's exclusion options and `--dry-run`,
//! `check --read-data-subset n/t`, `key passwd`, `--json` errors, and
//! `generate`.

use std::path::Path;

use crate::common::cli::{make_tree, Env};

fn write(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

#[test]
fn diff_find_and_tag_across_two_nightly_snapshots() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    write(&src.join("etc/app.conf"), b"v=1\n");
    write(&src.join("etc/old.conf"), b"gone soon\n");
    let s = src.to_str().unwrap();
    let first = env.json(&["backup", s, "--service", "web", "--tag", "daily"]);
    write(&src.join("etc/app.conf"), b"v=2\n");
    std::fs::remove_file(src.join("etc/old.conf")).unwrap();
    write(&src.join("etc/new.conf"), b"new\n");
    let second = env.json(&["backup", s, "--service", "web", "--tag", "daily"]);
    let (a, b) = (
        first["id"].as_str().unwrap().to_string(),
        second["id"].as_str().unwrap().to_string(),
    );

    let d = env.json(&["diff", &a, &b]);
    let change = |suffix: &str| {
        d["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["path"].as_str().unwrap().ends_with(suffix))
            .map(|c| c["change"].as_str().unwrap().to_string())
    };
    assert_eq!(change("/etc/app.conf").as_deref(), Some("changed"));
    assert_eq!(change("/etc/old.conf").as_deref(), Some("removed"));
    assert_eq!(change("/etc/new.conf").as_deref(), Some("added"));
    assert_eq!(
        change("/docs/readme.txt"),
        None,
        "unchanged files are not listed"
    );
    assert_eq!(d["stats"]["added"], 1);
    let text = env.ok(&["diff", &a, &b]);
    assert!(
        text.lines()
            .any(|l| l.starts_with('+') && l.ends_with("/etc/new.conf")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with('M') && l.ends_with("/etc/app.conf")),
        "{text}"
    );

    let found = env.json(&["find", "*.conf"]);
    let counts: Vec<usize> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["matches"].as_array().unwrap().len())
        .collect();
    assert_eq!(counts, [2, 2], "{found}");
    let only_new = env.json(&["find", "new.conf", "--snapshot", &b]);
    assert_eq!(only_new.as_array().unwrap().len(), 1);
    let none_before = env.json(&["find", "new.conf", "--newest", "2000-01-01T00:00:00Z"]);
    assert!(none_before.as_array().unwrap().is_empty());

    let t = env.json(&["tag", &b, "--add", "ticket-4711", "--remove", "daily"]);
    assert_eq!(t["tags"], serde_json::json!(["ticket-4711"]));
    let tagged = env.json(&["snapshots", "--tag", "ticket-4711"]);
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    assert!(env
        .fails(&["tag", "latest", "--set", "x", "--add", "y"], 2)
        .contains("--set"));
    // A pinned snapshot keeps its tags, and the listing shows its hold.
    env.ok(&["pin", &a, "--reason", "court order 12/2026"]);
    let e = env.fails(&["tag", &a, "--add", "z"], 1);
    assert!(e.contains("legal hold"), "{e}");
    let listed = env.ok(&["snapshots"]);
    assert!(
        listed.contains("legal hold: court order 12/2026"),
        "{listed}"
    );
    assert!(listed.contains("1 under legal hold"), "{listed}");
    assert_eq!(
        env.json(&["snapshots", "--path", s])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(env
        .json(&["snapshots", "--path", "/elsewhere"])
        .as_array()
        .unwrap()
        .is_empty());
    let js = env.json(&["snapshots", "--latest", "1", "--group-by", "service"]);
    assert_eq!(js.as_array().unwrap().len(), 1);
    assert_eq!(js[0]["snapshots"].as_array().unwrap().len(), 1);
}

#[test]
fn ls_long_and_dump_archives() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    make_tree(&src);
    std::os::unix::fs::symlink("docs/readme.txt", src.join("link")).unwrap();
    let s = src.to_str().unwrap();
    env.ok(&["backup", s]);
    let top = env.ok(&["ls", "-l", "latest", s]);
    assert!(
        top.lines()
            .any(|l| l.starts_with("lrwxrwxrwx") && l.ends_with("link -> docs/readme.txt")),
        "{top}"
    );
    assert!(
        top.lines()
            .any(|l| l.starts_with('d') && l.ends_with("/docs/")),
        "{top}"
    );
    assert!(
        !top.lines().any(|l| l.ends_with("/docs/readme.txt")),
        "a directory's listing is not recursive: {top}"
    );
    let deep = env.ok(&["ls", "--recursive", "latest", s]);
    assert!(deep.contains("docs/readme.txt"), "{deep}");

    let tar = env
        .cmd()
        .args(["dump", "--archive", "tar", "latest", s])
        .output()
        .unwrap();
    assert!(
        tar.status.success(),
        "{}",
        String::from_utf8_lossy(&tar.stderr)
    );
    let dir = env.path("untar");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new("tar")
        .args(["-x", "-C"])
        .arg(&dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    assert!(child.wait().unwrap().success());
    crate::common::cli::assert_same_content(&src.join("docs"), &dir.join("docs"));
    assert_eq!(
        std::fs::read_link(dir.join("link")).unwrap(),
        Path::new("docs/readme.txt")
    );

    let zip = env
        .cmd()
        .args(["dump", "--archive", "zip", "latest", s])
        .output()
        .unwrap();
    assert!(zip.status.success());
    assert_eq!(&zip.stdout[..2], b"PK");
    let e = env.fails(&["dump", "latest", s], 2);
    assert!(e.contains("--archive"), "{e}");
}

#[test]
fn backup_exclusions_dry_run_and_host() {
    let env = Env::local();
    env.ok(&["init"]);
    let src = env.path("src");
    write(&src.join("keep.txt"), b"keep");
    write(&src.join("Debug.LOG"), b"case");
    write(&src.join("big.bin"), &vec![7u8; 4096]);
    write(
        &src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n",
    );
    write(&src.join("cache/blob"), b"cached");
    write(&src.join("private/.nobackup"), b"");
    write(&src.join("private/secret"), b"s");
    write(&src.join("skip.tmp"), b"t");
    let list = env.path("files.txt");
    std::fs::write(&list, format!("# paths\n{}\n", src.display())).unwrap();
    let excl = env.path("excludes.txt");
    std::fs::write(&excl, "*.tmp\n").unwrap();

    let dry = env.json(&[
        "backup",
        "--files-from",
        list.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(dry["dry_run"], true);
    assert!(
        env.snapshot_ids().is_empty(),
        "a dry run writes no snapshot"
    );
    let data = std::fs::read_dir(env.path("repo/data")).map_or(0, |d| d.count());
    assert_eq!(data, 0, "nor any pack");

    env.ok(&[
        "backup",
        "--files-from",
        list.to_str().unwrap(),
        "--exclude-file",
        excl.to_str().unwrap(),
        "--iexclude",
        "*.log",
        "--exclude-caches",
        "--exclude-if-present",
        ".nobackup",
        "--exclude-larger-than",
        "1K",
        "--host",
        "web-01.example",
    ]);
    let names: Vec<String> = env
        .json(&["ls", "latest"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(names.contains(&"keep.txt".to_string()), "{names:?}");
    for gone in ["Debug.LOG", "big.bin", "cache", "private", "skip.tmp"] {
        assert!(
            !names.contains(&gone.to_string()),
            "{gone} should be left out: {names:?}"
        );
    }
    let snaps = env.json(&["snapshots", "--host", "web-01.example"]);
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert!(env
        .fails(
            &[
                "backup",
                src.to_str().unwrap(),
                "--exclude-larger-than",
                "12Q"
            ],
            2
        )
        .contains("--exclude-larger-than"));
}

#[test]
fn check_subsets_stats_modes_and_key_passwd() {
    let env = Env::local();
    env.ok(&["init", "--pack-size-mib", "1"]);
    let src = env.path("src");
    make_tree(&src);
    env.ok(&["backup", src.to_str().unwrap()]);
    let mut read = 0;
    for n in 1..=3 {
        let r = env.json(&["check", "--read-data-subset", &format!("{n}/3")]);
        read += r["packs_read"].as_u64().unwrap();
    }
    let all = env.json(&["check", "--read-data"])["packs_read"]
        .as_u64()
        .unwrap();
    assert_eq!(read, all, "the three groups read every pack once");
    env.json(&["check", "--read-data-subset", "1M"]);
    assert!(env
        .fails(&["check", "--read-data-subset", "4/3"], 2)
        .contains("1 <= n <= t"));

    let size = env.json(&["stats", "latest"]);
    assert_eq!(size["mode"], "restore-size");
    assert!(size["files"].as_u64().unwrap() > 0);
    let raw = env.json(&["stats", "--mode", "raw-data"]);
    assert!(raw["stored_bytes"].as_u64().unwrap() > 0);
    env.fails(&["stats", "--mode", "blobs"], 2);

    let new_pass = env.path("new.pass");
    crate::common::cli::write_secret(&new_pass, "a brand new passphrase");
    env.ok(&[
        "key",
        "passwd",
        "--new-password-file",
        new_pass.to_str().unwrap(),
    ]);
    env.fails(&["snapshots"], 2);
    env.cmd()
        .env("CUSTOS_PASSWORD", "a brand new passphrase")
        .args(["snapshots"])
        .output()
        .map(|o| assert!(o.status.success()))
        .unwrap();
}

#[test]
fn json_errors_and_messages_for_people() {
    let env = Env::local();
    // No repository: one JSON document on stdout, the exit code kept.
    let o = env.run(&["--json", "snapshots"]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "repository");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("custos init"));
    // A command line clap refuses.
    let o = env.run(&["--json", "snapshots", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["kind"], "usage");
    // --password-command.
    env.cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args([
            "--password-command",
            &format!("echo '{}'", env.password),
            "init",
        ])
        .output()
        .map(|o| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr)))
        .unwrap();
    // A missing password file is a usage error (2), naming the file.
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .env("CUSTOS_PASSWORD_FILE", env.path("missing.pass"))
        .args(["snapshots"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("missing.pass"), "{err}");
    // An empty variable is named as such, not as a flag never typed.
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .env("CUSTOS_PASSWORD_FILE", "")
        .args(["snapshots"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("CUSTOS_PASSWORD_FILE is set but empty"),
        "{err}"
    );
    let o = env
        .cmd()
        .env_remove("CUSTOS_PASSWORD")
        .args(["--password-command", "false", "snapshots"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn completions_and_manual_pages_come_from_the_command_line() {
    let env = Env::local();
    let bash = env.ok(&["generate", "completions", "bash"]);
    assert!(bash.contains("custos") && bash.contains("--read-data-subset"));
    let dir = env.path("man");
    env.ok(&["generate", "man", dir.to_str().unwrap()]);
    let page = std::fs::read_to_string(dir.join("custos-backup.1")).unwrap();
    assert!(
        page.contains("exclude\\-caches") || page.contains("exclude-caches"),
        "{page}"
    );
    assert!(dir.join("custos.1").exists() && dir.join("custos-key-passwd.1").exists());
    // Help: global options under their own heading, not the repository's
    // where none is opened.
    let help = env.ok(&["backup", "--help"]);
    assert!(
        help.contains("Global options:") && help.contains("--repo"),
        "{help}"
    );
    let daemon_help = env.ok(&["daemon", "--help"]);
    assert!(!daemon_help.contains("--repo"), "{daemon_help}");
}

#[test]
fn every_command_gives_one_json_document() {
    let env = Env::local();
    let src = env.path("src");
    make_tree(&src);
    let s = src.to_str().unwrap();
    let extra = env.path("extra.key");
    for args in [
        vec!["init"],
        vec!["backup", s, "--tag", "a"],
        vec!["backup", s, "--dry-run"],
        vec!["snapshots"],
        vec!["ls", "latest"],
        vec!["diff", "latest", "latest"],
        vec!["find", "*.bin"],
        vec!["tag", "latest", "--add", "b"],
        vec!["pin", "latest"],
        vec!["unpin", "latest"],
        vec!["stats"],
        vec!["stats", "latest"],
        vec!["check"],
        vec!["key", "list"],
        vec!["key", "add", "--new-key-file", extra.to_str().unwrap()],
        vec!["forget", "--keep-last", "1", "--dry-run"],
        vec!["prune", "--dry-run"],
        vec!["unlock"],
    ] {
        let v = env.json(&args);
        assert!(v.is_object() || v.is_array(), "{args:?}: {v}");
    }
}

/// A storage share's backup stays on the share: with --one-file-system
/// (the config's `one_file_system`), another file system mounted inside
/// the tree is kept as an empty directory. The mount is made in a private
/// mount namespace (`unshare -m`, root only), so the host never sees it.
#[test]
fn one_file_system_stops_at_a_mount_point() {
    let unshare_works = std::process::Command::new("unshare")
        .args(["-m", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !unshare_works {
        crate::common::servers::missing("a private mount namespace (unshare -m, as root)");
        return;
    }
    let env = Env::local();
    env.ok(&["init"]);
    let share = env.path("share");
    write(&share.join("on-share.txt"), b"mine");
    std::fs::create_dir(share.join("other")).unwrap();
    let bin = crate::common::cli::bin();
    let script = format!(
        "set -e; mount --make-rprivate /; mount -t tmpfs elsewhere '{other}'; \
         echo foreign > '{other}/foreign.txt'; \
         '{bin}' --json backup '{share}' --one-file-system --tag one; \
         '{bin}' --json backup '{share}' --tag all",
        other = share.join("other").display(),
        share = share.display(),
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-m", "sh", "-c", &script]);
    for (k, v) in env.cmd().get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        !share.join("other/foreign.txt").exists(),
        "the mount stayed in its namespace"
    );
    let names = |tag: &str| -> Vec<String> {
        let id = env.json(&["snapshots", "--tag", tag])[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        env.json(&["ls", &id])
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect()
    };
    let one = names("one");
    assert!(
        one.iter().any(|p| p.ends_with("/share/on-share.txt")),
        "{one:?}"
    );
    assert!(
        one.iter().any(|p| p.ends_with("/share/other")),
        "the mount point is kept: {one:?}"
    );
    assert!(!one.iter().any(|p| p.ends_with("foreign.txt")), "{one:?}");
    let all = names("all");
    assert!(
        all.iter().any(|p| p.ends_with("/share/other/foreign.txt")),
        "{all:?}"
    );
}
