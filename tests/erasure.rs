//! End-of-contract erasure on the S3 emulator and Azurite: refused before the
//! notice period, resumed after a kill, nothing left under the tenant's
//! prefix on either target, the other tenant untouched, a certificate that
//! verifies offline, an audit log that verifies.

#[allow(dead_code)]
mod common;

use std::path::Path;
use std::process::Command;

use common::cli::{assert_same_content, bin, make_tree, restored};
use common::servers::{azure_env, missing, s3_env, start_azurite, start_moto};

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
    std::fs::write(d.join("acme.pass"), "acme secret\n").unwrap();
    std::fs::write(d.join("globex.pass"), "globex secret\n").unwrap();
    ok(custos(&vars)
        .args(["certificate", "keygen", "--out"])
        .arg(d.join("operator.key")));
    let primary = s3.repo_url("backups");
    let standby = az.repo_url("standby");
    let cfg = d.join("custos.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[daemon]
state_dir = "state"
certificate_key = "operator.key"

[[target]]
name = "primary"
url = "{primary}"
region = "eu-west-par"
zone = "par2"

[[target]]
name = "standby"
url = "{standby}"
region = "eu-west-par"
zone = "par3"

[[tenant]]
id = "acme"
contract = "SV08-2026-0042"
password_file = "acme.pass"

[[tenant]]
id = "globex"
password_file = "globex.pass"

[[service]]
tenant = "acme"
name = "web"
class = "vmaas-standard"
zone = "par1"
target = "primary"
standby_target = "standby"
source = {{ paths = ["/tmp"] }}
"#
        ),
    )
    .unwrap();

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
    std::fs::write(d.join("acme.pass"), "acme secret\n").unwrap();

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
