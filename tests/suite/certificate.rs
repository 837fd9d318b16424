//! `custos certificate keygen` and `verify`: a certificate checks out offline,
//! and any changed byte or another key is refused.

use custos::erasure::certificate::{
    merkle_root, read_signing_key, sign, Certificate, TargetReport,
};

#[test]
fn certificates_verify_offline_and_tampering_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("operator.key");
    let run = |args: &[&str]| {
        std::process::Command::new(crate::common::cli::bin())
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&["certificate", "keygen", "--out", key.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cert = Certificate {
        version: 1,
        tenant: "acme".into(),
        contract: Some("SV08-2026-0042".into()),
        notice_given: "2026-10-01T09:00:00Z".into(),
        erasure_started: "2026-10-22T09:00:00Z".into(),
        erasure_completed: "2026-10-22T09:05:00Z".into(),
        targets: vec![TargetReport {
            name: "par2".into(),
            url: "s3://b/acme".into(),
            objects_deleted: 2,
            bytes_deleted: 10,
            merkle_root: merkle_root(&[("config".into(), 4), ("keys/a".into(), 6)]),
            remaining_after: 0,
            store: None,
        }],
        destroyed_key_slots: vec!["a".into()],
        verification: "0 objects left".into(),
        audit_head: "00".repeat(32),
        issuer: "test".into(),
        local_key_material: None,
        early_start: None,
        host: None,
    };
    let signed = sign(cert, &read_signing_key(&key).unwrap()).unwrap();
    let file = dir.path().join("cert.json");
    let text = serde_json::to_string_pretty(&signed).unwrap();
    std::fs::write(&file, &text).unwrap();
    let public = dir.path().join("operator.pub");
    let verify = || {
        run(&[
            "certificate",
            "verify",
            file.to_str().unwrap(),
            "--public-key",
            public.to_str().unwrap(),
        ])
    };
    let o = verify();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("certificate valid: tenant acme"));

    std::fs::write(
        &file,
        text.replacen("\"bytes_deleted\": 10", "\"bytes_deleted\": 11", 1),
    )
    .unwrap();
    let o = verify();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("altered"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    std::fs::write(&file, &text).unwrap();
    let other = dir.path().join("other.key");
    run(&["certificate", "keygen", "--out", other.to_str().unwrap()]);
    let o = run(&[
        "certificate",
        "verify",
        file.to_str().unwrap(),
        "--public-key",
        dir.path().join("other.pub").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not by the trusted key"));
}
