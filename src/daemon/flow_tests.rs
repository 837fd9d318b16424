//! The daemon's pieces assembled by hand on a local repository: on-demand
//! backups through the API (paths and a dump command, with hooks), the
//! service-desk restore flow with its window, retention, erasure refusals,
//! restore limits and tenant isolation. (`tests/daemon_flow.rs` runs the
//! whole daemon from a config, through `daemon::run`.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::catalog::Catalog;
use crate::config::{Hook, RepoAccess, Role, ServiceKey, SourceSpec};
use crate::crypto::keyslot::KeySource;
use crate::daemon::jobs::{self, ServiceJobs};
use crate::daemon::restores::RestoreDesk;
use crate::daemon::runner::{JobSettings, Limits, Runner};
use crate::daemon::scheduler::SystemClock;
use crate::daemon::state::{ServiceInfo, State, Token};
use crate::source::command::CommandSpec;

/// Writes a secret file the way an operator must (0600).
fn write_secret(path: PathBuf, text: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

struct Daemon {
    runner: Runner,
    catalog: Catalog,
    desk: RestoreDesk,
    base: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn sh(script: &str) -> CommandSpec {
    CommandSpec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![],
    }
}

fn service(dir: &Path, tenant: &str, name: &str, source: SourceSpec) -> ServiceJobs {
    ServiceJobs {
        tenant: tenant.into(),
        service: name.into(),
        repo: RepoAccess {
            url: dir
                .join("target")
                .join(tenant)
                .to_string_lossy()
                .into_owned(),
            key: KeySource::PasswordFile(dir.join(format!("{tenant}.pass"))),
            cache_dir: dir.join("cache"),
            limits: Default::default(),
        },
        standby: None,
        source,
        pre_hook: None,
        post_hook: None,
        compression_level: 3,
        retention: crate::policy::retention::RetentionPolicy {
            keep_daily: Some(7),
            ..Default::default()
        },
        rpo: Duration::from_secs(26 * 3600),
        prune: Default::default(),
        check_subset: 10.0,
        drill: None,
    }
}

async fn start() -> Daemon {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for t in ["acme", "globex"] {
        write_secret(d.join(format!("{t}.pass")), format!("{t} passphrase\n"));
    }
    let src = d.join("www");
    std::fs::create_dir_all(src.join("img")).unwrap();
    std::fs::write(src.join("index.html"), b"<h1>acme</h1>\n".repeat(1000)).unwrap();
    std::fs::write(src.join("img/logo.bin"), vec![7u8; 300_000]).unwrap();

    let mut web = service(
        d,
        "acme",
        "web",
        SourceSpec::Paths {
            paths: vec![src.clone()],
            exclude: Default::default(),
        },
    );
    web.pre_hook = Some(Hook {
        command: sh(&format!(
            "echo \"$CUSTOS_SERVICE\" > {d}/pre-ran; env > {d}/pre-env",
            d = d.display()
        )),
        timeout: Duration::from_secs(10),
    });
    web.post_hook = Some(Hook {
        command: sh(&format!("echo thawed > {}/post-ran", d.display())),
        timeout: Duration::from_secs(10),
    });
    let mut db = service(
        d,
        "acme",
        "db",
        SourceSpec::Command {
            command: sh("printf 'CREATE TABLE t (id int);\\n'; seq 1 20000"),
            name: "db.sql".into(),
        },
    );
    db.drill = Some(jobs::DrillSpec {
        check: Some(Hook {
            command: sh(&format!(
                "grep -qx 20000 \"$CUSTOS_DRILL_DIR/db.sql\" && ls \"$CUSTOS_DRILL_DIR\" > {}/drill-saw",
                d.display()
            )),
            timeout: Duration::from_secs(30),
        }),
        sql: Vec::new(),
        run_as: "nobody".into(),
        rto: Duration::from_secs(86_400),
        scratch_root: d.join("scratch"),
    });
    let mut broken = service(
        d,
        "acme",
        "broken-db",
        SourceSpec::Command {
            command: sh("printf partial; echo 'pg_dump: connection refused' >&2; exit 1"),
            name: "db.sql".into(),
        },
    );
    broken.post_hook = Some(Hook {
        command: sh(&format!("touch {}/broken-post-ran", d.display())),
        timeout: Duration::from_secs(10),
    });
    let other = service(
        d,
        "globex",
        "web",
        SourceSpec::Paths {
            paths: vec![src.clone()],
            exclude: Default::default(),
        },
    );
    let archive = service(
        d,
        "acme",
        "archive",
        SourceSpec::Paths {
            paths: vec![src.clone()],
            exclude: Default::default(),
        },
    );
    let all = [web, db, broken, other, archive];

    let catalog = Catalog::open(&d.join("state")).unwrap();
    let audit = crate::audit::AuditLog::open(&d.join("state/audit.log")).unwrap();
    let services: jobs::Services = Arc::new(RwLock::new(
        all.iter()
            .map(|s| (ServiceKey::new(&s.tenant, &s.service), Arc::new(s.clone())))
            .collect(),
    ));
    let (stop, rx) = tokio::sync::watch::channel(false);
    let runner = Runner::new(
        catalog.clone(),
        Arc::new(SystemClock),
        jobs::executor(services.clone(), catalog.clone(), Some(audit.clone())),
        Limits {
            global: 2,
            per_target: HashMap::new(),
        },
        rx.clone(),
    );
    runner.set_services(
        all.iter()
            .map(|s| {
                (
                    ServiceKey::new(&s.tenant, &s.service),
                    JobSettings {
                        retries: 0,
                        ..Default::default()
                    },
                )
            })
            .collect(),
    );
    let infos = all
        .iter()
        .map(|s| ServiceInfo {
            tenant: s.tenant.clone(),
            name: s.service.clone(),
            class: "caas".into(),
            target: "local".into(),
            standby: None,
            rpo: Duration::from_secs(26 * 3600),
            restore_window: Some(Duration::from_secs(90 * 86_400)),
            schedule: None,
            schedule_text: "0 0 1 * * *".into(),
        })
        .collect();
    let state = State::new(
        catalog.clone(),
        runner.clone(),
        Arc::new(SystemClock),
        infos,
        vec![
            Token::new("desk", Role::Operator, "op"),
            Token::new(
                "acme-portal",
                Role::Partner {
                    tenant: "acme".into(),
                },
                "acme",
            ),
            Token::new(
                "globex-portal",
                Role::Partner {
                    tenant: "globex".into(),
                },
                "globex",
            ),
        ],
    );
    let state_catalog = catalog.clone();
    let desk = RestoreDesk::new(catalog, d.join("restores"), 1).with_audit(audit.clone());
    let state = state
        .with_restores(desk.clone(), services)
        .with_audit(audit);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(crate::daemon::api::serve(listener, state, rx));
    Daemon {
        runner,
        desk,
        catalog: state_catalog,
        base,
        client: reqwest::Client::new(),
        dir,
        _stop: stop,
    }
}

impl Daemon {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let resp = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Polls `path` until `done` says so (at most 60 s).
    async fn wait(
        &self,
        path: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        for _ in 0..600 {
            let (s, v) = self.call("GET", path, "op", "").await;
            assert_eq!(s, 200, "{v}");
            if done(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} did not finish");
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

fn finished(v: &serde_json::Value) -> bool {
    matches!(
        v["state"].as_str(),
        Some("succeeded" | "warning" | "failed" | "done")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_restores_and_isolation_through_the_api() {
    let d = start().await;

    // On-demand backup of a path service, with hooks around it.
    let (s, job) = d
        .call(
            "POST",
            "/v1/services/acme/web/backup",
            "acme",
            r#"{"tags": ["pre-change"]}"#,
        )
        .await;
    assert_eq!(s, 202, "{job}");
    let job = d.wait(&format!("/v1/jobs/{}", job["id"]), finished).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job["snapshot"].as_str().is_some());
    assert_eq!(
        std::fs::read_to_string(d.path("pre-ran")).unwrap().trim(),
        "web"
    );
    assert!(d.path("post-ran").exists());
    // Hooks start from a clean environment: the job's variables, not ours.
    let hook_env = std::fs::read_to_string(d.path("pre-env")).unwrap();
    assert!(hook_env.contains("CUSTOS_SERVICE=web"), "{hook_env}");
    let allowed = |k: &str| {
        k.starts_with("CUSTOS_") && !k.contains("PASSWORD")
            || crate::secrets::CHILD_ENV_ALLOWED.contains(&k)
            || ["PWD", "SHLVL", "_", "OLDPWD"].contains(&k)
    };
    for line in hook_env.lines() {
        let k = line.split('=').next().unwrap_or("");
        assert!(allowed(k), "{k} leaked into a hook");
    }
    // This process's own variables that a hook must not see (cargo sets
    // CARGO_MANIFEST_DIR and friends for every test run: stand-ins for any
    // secret of the daemon's environment).
    let ours: Vec<String> = std::env::vars()
        .filter(|(k, _)| !allowed(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(
        !ours.is_empty(),
        "the test process has no variable a hook must not see"
    );
    for kv in &ours {
        assert!(
            !hook_env.lines().any(|l| l == kv),
            "{kv} leaked into a hook"
        );
    }
    let (_, snaps) = d
        .call("GET", "/v1/services/acme/web/snapshots", "acme", "")
        .await;
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
    assert_eq!(snaps[0]["tags"][0], "pre-change");

    // A dump command's output is the snapshot.
    let (_, job) = d
        .call("POST", "/v1/services/acme/db/backup", "op", "")
        .await;
    let job = d.wait(&format!("/v1/jobs/{}", job["id"]), finished).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // A DR drill restores it into scratch space, checks it, measures, wipes.
    let drill = d
        .runner
        .submit(crate::daemon::scheduler::Request {
            tenant: "acme".into(),
            service: "db".into(),
            kind: crate::daemon::records::JobKind::Drill,
            trigger: crate::daemon::records::Trigger::Schedule,
            tags: vec![],
            due: None,
        })
        .await
        .unwrap()
        .unwrap();
    let drill = d.wait(&format!("/v1/jobs/{}", drill.id), finished).await;
    assert_eq!(drill["state"], "succeeded", "{drill}");
    assert!(
        drill["rto"]["achieved_secs"].as_f64().unwrap() > 0.0,
        "{drill}"
    );
    assert_eq!(drill["rto"]["objective_secs"], 86_400.0);
    assert_eq!(
        std::fs::read_to_string(d.path("drill-saw")).unwrap().trim(),
        "db.sql"
    );
    assert_eq!(
        std::fs::read_dir(d.path("scratch")).unwrap().count(),
        0,
        "scratch wiped"
    );
    let (_, status) = d.call("GET", "/v1/services/acme/db", "op", "").await;
    assert!(
        status["last_jobs"].to_string().contains("drill"),
        "{status}"
    );
    let metrics = d
        .client
        .get(format!("{}/metrics", d.base))
        .bearer_auth("op")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("custos_drill_rto_ok{tenant=\"acme\",service=\"db\",class=\"caas\"} 1"),
        "{metrics}"
    );

    // A failing dump command fails the job: no snapshot of a truncated dump,
    // and the post hook still ran.
    let (_, job) = d
        .call("POST", "/v1/services/acme/broken-db/backup", "op", "")
        .await;
    let job = d.wait(&format!("/v1/jobs/{}", job["id"]), finished).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{job}"
    );
    assert!(d.path("broken-post-ran").exists());
    let (_, snaps) = d
        .call("GET", "/v1/services/acme/broken-db/snapshots", "op", "")
        .await;
    assert!(snaps.as_array().unwrap().is_empty(), "{snaps}");

    // The service desk restores for a ticket; the partner follows it.
    let (s, req) = d
        .call(
            "POST",
            "/v1/services/acme/web/restores",
            "acme",
            r#"{"ticket": "SD-4711", "include": ["**/img/**"]}"#,
        )
        .await;
    assert_eq!(s, 202, "{req}");
    assert_eq!(req["requested_by"], "acme-portal");
    let done = d
        .wait(&format!("/v1/restores/{}", req["id"]), finished)
        .await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["files_done"], 1, "{done}");
    let target = PathBuf::from(done["target"].as_str().unwrap());
    assert!(
        target.starts_with(d.path("restores/acme")),
        "{}",
        target.display()
    );
    let src = d.path("www");
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("img/logo.bin")).unwrap(),
        std::fs::read(src.join("img/logo.bin")).unwrap()
    );
    assert!(!restored.join("index.html").exists(), "only what was asked");

    // Outside the 90-day window: refused with the window and the date.
    let (s, v) = d
        .call(
            "POST",
            "/v1/services/acme/web/restores",
            "acme",
            r#"{"ticket": "SD-4712", "at": "2026-01-01T00:00:00Z"}"#,
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(
        e.contains("2026-01-01") && e.contains("90d restore window"),
        "{e}"
    );
    let (s, v) = d
        .call(
            "POST",
            "/v1/services/acme/web/restores",
            "acme",
            r#"{"ticket": "../etc"}"#,
        )
        .await;
    assert_eq!(s, 400, "{v}");

    // The audit trail: who asked what, when, and how it ended; verifiable.
    let (s, audit) = d.call("GET", "/v1/audit", "op", "").await;
    assert_eq!(s, 200, "{audit}");
    let actions: Vec<(String, String)> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("backup.requested", "acme-portal"),
        ("restore.requested", "acme-portal"),
        ("restore.done", "daemon"),
        ("restore.refused", "acme-portal"),
    ] {
        assert!(
            actions.iter().any(|(a, b)| a == want.0 && b == want.1),
            "{want:?} not in {actions:?}"
        );
    }
    let (n, head) = crate::audit::verify(&d.path("state/audit.log"))
        .map_err(|_| "broken")
        .unwrap();
    assert!(n >= 4);
    assert_eq!(audit["head"], head);
    let (_, theirs) = d.call("GET", "/v1/audit", "globex", "").await;
    assert!(theirs["records"].as_array().unwrap().is_empty(), "{theirs}");

    // Another tenant sees none of it.
    let (s, _) = d
        .call("GET", &format!("/v1/restores/{}", req["id"]), "globex", "")
        .await;
    assert_eq!(s, 404);
    let (s, _) = d
        .call(
            "POST",
            "/v1/services/acme/web/restores",
            "globex",
            r#"{"ticket": "X"}"#,
        )
        .await;
    assert_eq!(s, 404);
    let (_, list) = d.call("GET", "/v1/restores", "globex", "").await;
    assert!(list.as_array().unwrap().is_empty());
    let (_, list) = d.call("GET", "/v1/jobs", "globex", "").await;
    assert!(list.as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_forgets_nothing_while_a_service_misses_its_rpo() {
    let d = start().await;
    let src = d.path("www");
    // Backups stopped 100 and 101 days ago: every snapshot is older than
    // the 7-day policy and the RPO.
    let old = |days: i64| {
        jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_hours(24 * days))
            .unwrap()
    };
    let access = service(
        d.dir.path(),
        "acme",
        "archive",
        SourceSpec::Paths {
            paths: vec![],
            exclude: Default::default(),
        },
    )
    .repo;
    for days in [101, 100] {
        let repo = access.open(true).await.unwrap();
        crate::commands::backup::backup(
            &repo,
            crate::commands::backup::BackupOptions {
                paths: vec![src.clone()],
                service: Some("archive".into()),
                tenant: Some("acme".into()),
                time: Some(old(days)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let job = d
        .runner
        .submit(crate::daemon::scheduler::Request {
            tenant: "acme".into(),
            service: "archive".into(),
            kind: crate::daemon::records::JobKind::Retention,
            trigger: crate::daemon::records::Trigger::Schedule,
            tags: vec![],
            due: None,
        })
        .await
        .unwrap()
        .unwrap();
    let job = d.wait(&format!("/v1/jobs/{}", job.id), finished).await;
    assert_eq!(job["state"], "warning", "{job}");
    let summary = job["summary"].as_str().unwrap();
    assert!(
        summary.contains("forgot nothing") && summary.contains("RPO"),
        "{summary}"
    );
    let repo = access.open(false).await.unwrap();
    let (snaps, problems) = repo.snapshots().await.unwrap();
    assert!(problems.is_empty());
    let archive = snaps
        .iter()
        .filter(|(_, s)| s.service.as_deref() == Some("archive"))
        .count();
    assert_eq!(archive, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_being_erased_is_refused_everywhere() {
    let d = start().await;
    let (s, job) = d
        .call("POST", "/v1/services/acme/web/backup", "op", "")
        .await;
    assert_eq!(s, 202, "{job}");
    d.wait(&format!("/v1/jobs/{}", job["id"]), finished).await;
    // Erasure starts (as `custos erase execute` or the daemon records it).
    let now = jiff::Timestamp::now().to_string();
    d.catalog
        .put_erasure(&crate::erasure::ErasureRecord {
            tenant: "acme".into(),
            contract: None,
            state: crate::erasure::ErasureState::Erasing,
            notice_given: now.clone(),
            notice_by: "test".into(),
            due: now.clone(),
            deadline: now.clone(),
            started: Some(now),
            completed: None,
            early_reason: None,
            targets: Default::default(),
            certificate: None,
        })
        .unwrap();
    // (A second apart: the API answers an identical action sent again
    // within a second, a double submit, with the first answer.)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // On-demand backups and restores: 409 with one sentence.
    let (s, v) = d
        .call("POST", "/v1/services/acme/web/backup", "op", "")
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("being erased"), "{v}");
    let (s, v) = d
        .call(
            "POST",
            "/v1/services/acme/web/restores",
            "op",
            r#"{"ticket": "SD-1"}"#,
        )
        .await;
    assert_eq!(s, 409, "{v}");
    // Its partner token stops working; the other tenant's goes on.
    let (s, v) = d.call("GET", "/v1/services", "acme", "").await;
    assert_eq!(s, 401, "{v}");
    let (s, _) = d.call("GET", "/v1/services", "globex", "").await;
    assert_eq!(s, 200);
    // Scheduled jobs are not even queued (nothing is recorded for it).
    let before = d.catalog.jobs(1000, |j| j.tenant == "acme").unwrap().len();
    for kind in [
        crate::daemon::records::JobKind::Backup,
        crate::daemon::records::JobKind::Retention,
    ] {
        let r = d
            .runner
            .submit(crate::daemon::scheduler::Request {
                tenant: "acme".into(),
                service: "web".into(),
                kind,
                trigger: crate::daemon::records::Trigger::Schedule,
                tags: vec![],
                due: None,
            })
            .await;
        assert!(
            matches!(&r, Err(crate::Error::Refused(m)) if m.contains("being erased")),
            "{r:?}"
        );
    }
    assert_eq!(
        d.catalog.jobs(1000, |j| j.tenant == "acme").unwrap().len(),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restores_are_limited_per_tenant_sized_against_the_disk_and_expire() {
    let d = start().await;
    let (_, job) = d
        .call("POST", "/v1/services/acme/web/backup", "op", "")
        .await;
    assert_eq!(
        d.wait(&format!("/v1/jobs/{}", job["id"]), finished).await["state"],
        "succeeded"
    );
    // A restore, done; its files expire after the retention period.
    let (s, r) = d
        .call(
            "POST",
            "/v1/services/acme/web/restores",
            "acme",
            r#"{"ticket": "SD-1"}"#,
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let done = d.wait(&format!("/v1/restores/{}", r["id"]), finished).await;
    assert_eq!(done["state"], "done", "{done}");
    let target = PathBuf::from(done["target"].as_str().unwrap());
    assert!(target.exists());
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
    assert_eq!(
        d.desk
            .expire_outputs(Duration::from_secs(7 * 86_400), later)
            .unwrap(),
        0
    );
    assert_eq!(
        d.desk
            .expire_outputs(Duration::from_secs(60), later)
            .unwrap(),
        1
    );
    assert!(!target.exists(), "expired restore still on disk");
    // (Another token than the polling one: identical requests within a
    // second are answered once.)
    let (_, rec) = d
        .call("GET", &format!("/v1/restores/{}", r["id"]), "acme", "")
        .await;
    assert!(rec["expired"].is_string(), "{rec}");

    // Two restores queued or running: the third is 429 with Retry-After.
    let mut busy = done.clone();
    for id in [9_001u64, 9_002] {
        busy["id"] = id.into();
        busy["state"] = "running".into();
        d.catalog
            .put_restore(&serde_json::from_value(busy.clone()).unwrap())
            .unwrap();
    }
    let resp = d
        .client
        .post(format!("{}/v1/services/acme/web/restores", d.base))
        .bearer_auth("acme")
        .body(r#"{"ticket": "SD-2"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "60");
    let v: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert!(v["error"].as_str().unwrap().contains("2 restores"), "{v}");
    // Another tenant is not held up by it.
    let (_, job) = d
        .call("POST", "/v1/services/globex/web/backup", "op", "")
        .await;
    d.wait(&format!("/v1/jobs/{}", job["id"]), finished).await;
    let (s, v) = d
        .call(
            "POST",
            "/v1/services/globex/web/restores",
            "globex",
            r#"{"ticket": "SD-3"}"#,
        )
        .await;
    assert_eq!(s, 202, "{v}");
    d.wait(&format!("/v1/restores/{}", v["id"]), finished).await;

    // A snapshot larger than the free space of the restore disk: 507,
    // before anything is written.
    d.catalog
        .put_snapshot(&crate::daemon::records::SnapshotEntry {
            id: crate::SnapshotId([0xff; 32]),
            tenant: "globex".into(),
            service: "web".into(),
            time: jiff::Timestamp::now().to_string(),
            tags: vec![],
            size: u64::MAX / 4,
            partial: false,
        })
        .unwrap();
    let (s, v) = d
        .call(
            "POST",
            "/v1/services/globex/web/restores",
            "globex",
            &format!(r#"{{"ticket": "SD-4", "snapshot": "{}"}}"#, "f".repeat(64)),
        )
        .await;
    assert_eq!(s, 507, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("free"), "{e}");
    assert!(
        !e.contains(d.dir.path().to_str().unwrap()),
        "a host path: {e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_see_no_host_path_and_no_global_audit_head() {
    let d = start().await;
    let (_, job) = d
        .call("POST", "/v1/services/acme/web/backup", "acme", "")
        .await;
    d.wait(&format!("/v1/jobs/{}", job["id"]), finished).await;
    let (_, r) = d
        .call(
            "POST",
            "/v1/services/acme/web/restores",
            "acme",
            r#"{"ticket": "SD-1"}"#,
        )
        .await;
    d.wait(&format!("/v1/restores/{}", r["id"]), finished).await;
    let host = d.dir.path().to_str().unwrap().to_string();
    for path in [
        "/v1/services",
        "/v1/jobs",
        "/v1/restores",
        &format!("/v1/restores/{}", r["id"]),
        "/v1/audit",
    ] {
        let (s, v) = d.call("GET", path, "acme", "").await;
        assert_eq!(s, 200, "{path}: {v}");
        let text = v.to_string();
        assert!(!text.contains(&host), "{path} shows a host path: {text}");
        if path == "/v1/audit" {
            assert!(v.get("head").is_none(), "{v}");
            assert!(!v["records"].as_array().unwrap().is_empty());
        }
    }
    // The service desk still sees everything.
    let (_, v) = d.call("GET", "/v1/audit", "op", "").await;
    assert!(v["head"].is_string());
    let (_, v) = d
        .call("GET", &format!("/v1/restores/{}", r["id"]), "op", "")
        .await;
    assert!(v["target"].as_str().unwrap().starts_with(&host));
}
