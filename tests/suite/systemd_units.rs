//! The shipped systemd units carry the hardening the security model relies
//! on, and `systemd-analyze verify` (where installed) accepts them.

use std::path::Path;

fn unit(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("systemd")
            .join(name),
    )
    .unwrap()
}

fn has(text: &str, line: &str) -> bool {
    text.lines().any(|l| l.trim() == line)
}

#[test]
fn both_units_are_hardened() {
    let common = [
        "UMask=0077",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "PrivateIPC=yes",
        "LimitCORE=0",
        "LimitNOFILE=65536",
        "RestrictSUIDSGID=true",
        "SystemCallFilter=@system-service",
    ];
    for name in ["custos.service", "custos-backup@.service"] {
        let text = unit(name);
        for line in common {
            assert!(has(&text, line), "{name} lacks {line}");
        }
    }
}

#[test]
fn systemd_accepts_the_units() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("SKIP: systemd-analyze is not installed");
        return;
    };
    if !out.status.success() {
        eprintln!("SKIP: systemd-analyze does not run here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, as_name) in [
        ("custos.service", "custos.service"),
        ("custos-backup@.service", "custos-backup@web.service"),
    ] {
        let path = dir.path().join(as_name);
        std::fs::write(
            &path,
            unit(name).replace("/usr/bin/custos", crate::common::cli::bin()),
        )
        .unwrap();
        files.push(path);
    }
    let o = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&files)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        !err.contains("Unknown key") && !err.contains("Failed to parse"),
        "{err}"
    );
}
