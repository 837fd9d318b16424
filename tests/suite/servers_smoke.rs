//! Smoke tests for the test servers in `tests/common/servers.rs`: each server
//! starts, holds a bucket/container, round-trips an object through
//! object_store, and rejects `PutMode::Create` on an existing object (the
//! primitive custos' locks rely on).
//!
//! The `*_from_env` tests check the environment-variable route a spawned
//! `custos` process takes (`s3_env`, `azure_env`, `repo_url`). object_store
//! reads the Azurite port from the process environment, which parallel tests
//! must not modify, so those checks run in a child process: the test binary
//! re-runs itself with just the ignored test `env_child` and the variables set.

use crate::common::servers::{
    azure_builder, azure_env, install_crypto_provider, missing, s3_builder, s3_env, start_azurite,
    start_moto,
};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};

/// Tells `env_child` which store to build from the environment.
const CHILD_KIND: &str = "CUSTOS_SMOKE_CHILD_KIND";
/// Gives `env_child` the repository URL (`s3://...` or `az://...`).
const CHILD_URL: &str = "CUSTOS_SMOKE_CHILD_URL";

/// Put/get round trip, then conditional create on an existing and a new path.
async fn check_store(store: &dyn ObjectStore, prefix: &str) {
    let path = Path::from(format!("{prefix}/hello.txt"));
    let body = b"hello from custos".to_vec();
    store
        .put(&path, PutPayload::from(body.clone()))
        .await
        .expect("put");
    let got = store
        .get(&path)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("get body");
    assert_eq!(got.as_ref(), body.as_slice(), "get returned other bytes");

    let err = store
        .put_opts(
            &path,
            PutPayload::from_static(b"other"),
            PutMode::Create.into(),
        )
        .await
        .expect_err("PutMode::Create on an existing object must fail");
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "expected AlreadyExists, got {err:?}"
    );
    let got = store
        .get(&path)
        .await
        .expect("get after refused create")
        .bytes()
        .await
        .expect("get body after refused create");
    assert_eq!(
        got.as_ref(),
        body.as_slice(),
        "refused create changed the object"
    );

    let fresh = Path::from(format!("{prefix}/fresh.txt"));
    store
        .put_opts(
            &fresh,
            PutPayload::from_static(b"new"),
            PutMode::Create.into(),
        )
        .await
        .expect("PutMode::Create on a new path");
}

#[tokio::test]
async fn moto_put_get_and_create_conflict() {
    install_crypto_provider();
    let Some(s3) = start_moto() else {
        missing("moto_server");
        return;
    };
    let store = s3_builder(&s3).build().expect("build S3 client for moto");
    check_store(&store, "smoke").await;
}

#[tokio::test]
async fn azurite_put_get_and_create_conflict() {
    install_crypto_provider();
    let Some(az) = start_azurite() else {
        missing("azurite-blob");
        return;
    };
    let store = azure_builder(&az)
        .build()
        .expect("build Azure client for Azurite");
    check_store(&store, "smoke").await;
}

#[tokio::test]
async fn servers_run_in_parallel() {
    install_crypto_provider();
    let (Some(a), Some(b)) = (start_moto(), start_moto()) else {
        missing("moto_server");
        return;
    };
    assert_ne!(a.port, b.port);
    let a_store = s3_builder(&a).build().expect("build S3 client a");
    let b_store = s3_builder(&b).build().expect("build S3 client b");
    let path = Path::from("only-in-a");
    a_store
        .put(&path, PutPayload::from_static(b"a"))
        .await
        .expect("put into a");
    let err = b_store
        .head(&path)
        .await
        .expect_err("server b must not see server a's object");
    assert!(
        matches!(err, object_store::Error::NotFound { .. }),
        "expected NotFound, got {err:?}"
    );
}

#[test]
fn moto_from_env() {
    let Some(s3) = start_moto() else {
        missing("moto_server");
        return;
    };
    run_env_child("s3", &s3.repo_url("smoke-env"), s3_env(&s3));
}

#[test]
fn azurite_from_env() {
    let Some(az) = start_azurite() else {
        missing("azurite-blob");
        return;
    };
    run_env_child("azure", &az.repo_url("smoke-env"), azure_env(&az));
}

/// Re-runs this test binary with only `env_child` and `vars` set.
fn run_env_child(kind: &str, url: &str, vars: Vec<(String, String)>) {
    let exe = std::env::current_exe().expect("path of the test binary");
    let output = std::process::Command::new(exe)
        .args([
            "servers_smoke::env_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_KIND, kind)
        .env(CHILD_URL, url)
        .envs(vars)
        .output()
        .expect("run the test binary again for env_child");
    assert!(
        output.status.success(),
        "env_child ({kind}, {url}) failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Make sure the child really ran the test rather than filtering it out.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("1 passed"),
        "env_child did not run:\n{stdout}"
    );
}

/// Builds a client purely from the environment, the way a `custos` process
/// would, and runs `check_store`. Only meaningful when started by
/// `run_env_child`; does nothing otherwise.
#[tokio::test]
#[ignore = "run in a child process by moto_from_env / azurite_from_env"]
async fn env_child() {
    let (Ok(kind), Ok(url)) = (std::env::var(CHILD_KIND), std::env::var(CHILD_URL)) else {
        eprintln!("env_child: not started by run_env_child, nothing to do");
        return;
    };
    install_crypto_provider();
    let (store, prefix): (Box<dyn ObjectStore>, String) = match kind.as_str() {
        "s3" => {
            let prefix = url
                .strip_prefix("s3://")
                .and_then(|rest| rest.split_once('/'))
                .map(|(_, prefix)| prefix.to_string())
                .expect("s3://BUCKET/PREFIX");
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_url(&url)
                .build()
                .expect("build S3 client from env");
            (Box::new(store), prefix)
        }
        "azure" => {
            let prefix = url
                .strip_prefix("az://")
                .and_then(|rest| rest.split_once('/'))
                .map(|(_, prefix)| prefix.to_string())
                .expect("az://CONTAINER/PREFIX");
            let store = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(&url)
                .build()
                .expect("build Azure client from env");
            (Box::new(store), prefix)
        }
        other => panic!("unknown {CHILD_KIND}={other}"),
    };
    check_store(store.as_ref(), &prefix).await;
}
