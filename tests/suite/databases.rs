//! The catalogue's databases for real: PostgreSQL and MariaDB servers from
//! Debian's packages, backed up by the daemon on schedule (one snapshot per
//! database, tagged), changed, backed up again, the first snapshot loaded
//! into a new database and compared, and a DR drill that starts a scratch
//! server, loads the dump, runs the check queries and measures the RTO.

use std::path::Path;
use std::time::Duration;

use crate::common::daemon::{custos, finished, Daemon};
use crate::common::databases::{Mariadb, Postgres};
use crate::common::servers::{free_port, missing};

const OP: &str = "operator-token-for-database-tests";

fn config(dir: &Path, port: u16, source: &str, drill: &str) -> std::path::PathBuf {
    crate::common::cli::write_secret(dir.join("acme.pass"), "acme secret\n");
    crate::common::cli::write_secret(dir.join("op.token"), OP);
    let cfg = dir.join("custos.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[daemon]
state_dir = "state"
listen = "127.0.0.1:{port}"
time_zone = "UTC"
jitter = "0s"
restore_root = "restores"
scratch_dir = "scratch"

[[daemon.token]]
name = "desk"
role = "operator"
secret_file = "op.token"

[[target]]
name = "t"
url = "target"
region = "eu-west-par"
zone = "par2"

[[tenant]]
id = "acme"
password_file = "acme.pass"

[[service]]
tenant = "acme"
name = "db"
class = "dbaas"
zone = "par1"
target = "t"
schedule = "*/2 * * * * *"
rto = "10min"
retries = 0
source = {source}
drill = {drill}
"#
        ),
    )
    .unwrap();
    cfg
}

/// Waits for the first drill that succeeds (one scheduled before the first
/// backup finds nothing to drill, and fails); returns it.
fn first_good_drill(d: &Daemon) -> serde_json::Value {
    let mut found = serde_json::Value::Null;
    d.wait_until(Duration::from_secs(120), || {
        let (_, jobs) = d.get("/v1/jobs?limit=200", OP);
        if let Some(j) = jobs.as_array().and_then(|a| {
            a.iter()
                .find(|j| j["kind"] == "drill" && j["state"] == "succeeded")
        }) {
            found = j.clone();
            true
        } else {
            false
        }
    });
    found
}

/// Waits for the first job of `kind` that ends; returns it.
fn first_finished(d: &Daemon, kind: &str, after: u64) -> serde_json::Value {
    let mut found = serde_json::Value::Null;
    d.wait_until(Duration::from_secs(120), || {
        let (_, jobs) = d.get("/v1/jobs?limit=200", OP);
        if let Some(j) = jobs.as_array().and_then(|a| {
            a.iter()
                .filter(|j| j["kind"] == kind && j["id"].as_u64().unwrap_or(0) > after)
                .filter(|j| finished(j))
                .min_by_key(|j| j["id"].as_u64())
        }) {
            found = j.clone();
            true
        } else {
            false
        }
    });
    found
}

fn restore_into(dir: &Path, snapshot: &str, url: &str, credentials: &Path) -> std::process::Output {
    custos(&[])
        .args(["-r"])
        .arg(dir.join("target/acme"))
        .arg("--password-file")
        .arg(dir.join("acme.pass"))
        .arg("--cache-dir")
        .arg(dir.join("cli-cache"))
        .args(["restore", snapshot, "--into", url, "--db-credentials"])
        .arg(credentials)
        .output()
        .unwrap()
}

#[test]
fn postgres_dumped_on_schedule_loaded_into_a_new_database_and_drilled() {
    let Some(pg) = Postgres::start() else {
        missing("PostgreSQL server programs (Debian postgresql)");
        return;
    };
    pg.sql("postgres", "CREATE DATABASE shop");
    pg.sql("postgres", "CREATE DATABASE crm");
    pg.sql(
        "shop",
        "CREATE TABLE orders (id int PRIMARY KEY, amount numeric, note text); \
         INSERT INTO orders SELECT i, i * 1.5, 'order ' || i FROM generate_series(1, 10000) i",
    );
    pg.sql(
        "crm",
        "CREATE TABLE people (id int); INSERT INTO people VALUES (1), (2)",
    );
    let checksum =
        "SELECT md5(string_agg(id || ':' || amount || ':' || note, ',' ORDER BY id)) FROM orders";
    let before = pg.sql("shop", checksum);

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let source = format!(
        r#"{{ postgres = {{ host = "{}", user = "admin", databases = ["shop", "crm"], credentials_file = "{}" }} }}"#,
        pg.socket_dir.display(),
        pg.passfile.display()
    );
    let drill = r#"{ schedule = "*/3 * * * * *", check_sql = [{ database = "shop", query = "SELECT count(*) FROM orders", min = 10000 }, "SELECT count(*) FROM pg_tables WHERE tablename = 'orders'"] }"#;
    let cfg = config(dir.path(), port, &source, drill);
    let o = custos(&[])
        .args(["config", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("postgres databases shop, crm"));

    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    // A scheduled backup: one snapshot per database, tagged.
    let first = first_finished(&d, "backup", 0);
    assert_eq!(first["state"], "succeeded", "{first}\n{}", d.log());
    assert_eq!(first["trigger"]["type"], "schedule", "{first}");
    let (_, snaps) = d.get("/v1/services/acme/db/snapshots", OP);
    let tagged = |tag: &str| {
        snaps
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["tags"].as_array().unwrap().iter().any(|t| t == tag))
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let shop_first = tagged("db:shop")
        .last()
        .cloned()
        .expect("a snapshot of shop");
    assert!(!tagged("db:crm").is_empty(), "{snaps}");

    // 1 % of the rows change; the next scheduled backup takes them.
    pg.sql(
        "shop",
        "UPDATE orders SET amount = amount + 1 WHERE id % 100 = 0",
    );
    let changed = pg.sql("shop", checksum);
    assert_ne!(before, changed);
    let second = first_finished(&d, "backup", first["id"].as_u64().unwrap());
    assert_eq!(second["state"], "succeeded", "{second}");

    // The drill: a scratch server, the dumps loaded, the queries checked.
    let drill = first_good_drill(&d);
    let summary = drill["summary"].as_str().unwrap();
    assert!(summary.contains("2 databases"), "{summary}");
    assert!(
        summary.contains("loaded into a scratch postgres server"),
        "{summary}"
    );
    assert!(
        summary.contains("SELECT count(*) FROM orders: 10000 ≥ 10000"),
        "{summary}"
    );
    assert!(
        drill["rto"]["achieved_secs"].as_f64().unwrap() > 0.0,
        "{drill}"
    );
    let log = d.stop();
    // Shown with --nocapture: what the operator guide's drill runbook quotes.
    eprintln!("drill job: {drill}\ndaemon log:\n{log}");
    assert!(
        std::fs::read_dir(dir.path().join("scratch")).map_or(0, |d| d.count()) == 0,
        "the drill's scratch is wiped:\n{log}"
    );

    // The first snapshot, loaded into a new database, is the data as it was.
    let url = format!(
        "postgres://admin@/shop_restored?host={}",
        pg.socket_dir.display()
    );
    let o = restore_into(dir.path(), &shop_first, &url, &pg.passfile);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        pg.sql("shop_restored", "SELECT count(*) FROM orders"),
        "10000"
    );
    assert_eq!(pg.sql("shop_restored", checksum), before);
    // The newest of one database, chosen by its tag.
    let crm = format!(
        "postgres://admin@/crm_restored?host={}",
        pg.socket_dir.display()
    );
    let o = custos(&[])
        .args(["-r"])
        .arg(dir.path().join("target/acme"))
        .arg("--password-file")
        .arg(dir.path().join("acme.pass"))
        .args([
            "restore",
            "latest",
            "--tag",
            "db:crm",
            "--into",
            &crm,
            "--db-credentials",
        ])
        .arg(&pg.passfile)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(pg.sql("crm_restored", "SELECT count(*) FROM people"), "2");
    // Never over an existing database: refused, nothing changed.
    let o = restore_into(
        dir.path(),
        &shop_first,
        &url.replace("shop_restored", "shop"),
        &pg.passfile,
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(pg.sql("shop", checksum), changed);
}

#[test]
fn a_failing_dump_never_becomes_a_snapshot_and_its_error_is_in_the_job() {
    let Some(pg) = Postgres::start() else {
        missing("PostgreSQL server programs (Debian postgresql)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let source = format!(
        r#"{{ postgres = {{ host = "{}", user = "admin", databases = ["nope"], credentials_file = "{}" }} }}"#,
        pg.socket_dir.display(),
        pg.passfile.display()
    );
    let cfg = config(dir.path(), port, &source, r#"{ schedule = "never" }"#);
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    let job = first_finished(&d, "backup", 0);
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("dump of nope failed"), "{error}");
    assert!(
        error.contains("does not exist"),
        "pg_dump's stderr is in the record: {error}"
    );
    let (_, snaps) = d.get("/v1/services/acme/db/snapshots", OP);
    assert_eq!(snaps.as_array().map_or(0, Vec::len), 0, "{snaps}");
}

#[test]
fn mariadb_dumped_loaded_into_a_new_database_and_drilled() {
    let Some(db) = Mariadb::start() else {
        missing("MariaDB server (Debian mariadb-server)");
        return;
    };
    db.sql(None, "CREATE DATABASE shop");
    db.sql(
        Some("shop"),
        "CREATE TABLE orders (id INT PRIMARY KEY, amount DECIMAL(10,2)); \
         INSERT INTO orders SELECT seq, seq * 1.5 FROM seq_1_to_5000",
    );
    let checksum =
        "SELECT MD5(GROUP_CONCAT(id, ':', amount ORDER BY id SEPARATOR ',')) FROM orders";
    db.sql(Some("shop"), "SET SESSION group_concat_max_len = 1000000");
    let before = db.sql(
        Some("shop"),
        &format!("SET SESSION group_concat_max_len = 1000000; {checksum}"),
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let source = format!(
        r#"{{ mysql = {{ host = "{}", databases = ["shop"], credentials_file = "{}" }} }}"#,
        db.socket.display(),
        db.options.display()
    );
    let drill = r#"{ schedule = "*/3 * * * * *", check_sql = [{ query = "SELECT count(*) FROM orders", min = 5000 }] }"#;
    let cfg = config(dir.path(), port, &source, drill);
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    let first = first_finished(&d, "backup", 0);
    assert_eq!(first["state"], "succeeded", "{first}\n{}", d.log());
    let snapshot = first["snapshot"].as_str().unwrap().to_string();
    let drill = first_good_drill(&d);
    assert!(
        drill["summary"]
            .as_str()
            .unwrap()
            .contains("SELECT count(*) FROM orders: 5000 ≥ 5000"),
        "{drill}"
    );
    d.stop();
    let url = format!("mysql:///shop_restored?socket={}", db.socket.display());
    let o = restore_into(dir.path(), &snapshot, &url, &db.options);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = db.sql(
        Some("shop_restored"),
        &format!("SET SESSION group_concat_max_len = 1000000; {checksum}"),
    );
    assert_eq!(after, before);
}

/// A drill whose check query answers under its minimum is a failed drill,
/// with the query, the answer and the minimum in its record; an instance
/// source (pg_dumpall) is one snapshot tagged db:instance.
#[test]
fn a_check_under_its_minimum_fails_the_drill_and_an_instance_is_one_snapshot() {
    let Some(pg) = Postgres::start() else {
        missing("PostgreSQL server programs (Debian postgresql)");
        return;
    };
    pg.sql("postgres", "CREATE DATABASE shop");
    pg.sql(
        "shop",
        "CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2), (3)",
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let source = format!(
        r#"{{ postgres = {{ host = "{}", user = "admin", databases = ["shop"], credentials_file = "{}" }} }}"#,
        pg.socket_dir.display(),
        pg.passfile.display()
    );
    let drill = r#"{ schedule = "*/3 * * * * *", check_sql = [{ query = "SELECT count(*) FROM orders", min = 1000 }] }"#;
    let cfg = config(dir.path(), port, &source, drill);
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    let backup = first_finished(&d, "backup", 0);
    assert_eq!(backup["state"], "succeeded", "{backup}");
    let mut failed = serde_json::Value::Null;
    d.wait_until(Duration::from_secs(120), || {
        let (_, jobs) = d.get("/v1/jobs?limit=200", OP);
        match jobs.as_array().and_then(|a| {
            a.iter().find(|j| {
                j["kind"] == "drill"
                    && j["state"] == "failed"
                    && j["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("drill check failed"))
            })
        }) {
            Some(j) => {
                failed = j.clone();
                true
            }
            None => false,
        }
    });
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("answered 3, at least 1000 expected"),
        "{error}"
    );
    d.stop();
    assert_eq!(
        std::fs::read_dir(dir.path().join("scratch")).map_or(0, |d| d.count()),
        0,
        "a failed drill's scratch is wiped too"
    );

    // The whole instance: one snapshot, tagged db:instance.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let source = format!(
        r#"{{ postgres = {{ host = "{}", user = "admin", instance = true, credentials_file = "{}" }} }}"#,
        pg.socket_dir.display(),
        pg.passfile.display()
    );
    let cfg = config(dir.path(), port, &source, r#"{ schedule = "never" }"#);
    let d = Daemon::start(&cfg, &[], dir.path().join("daemon.log"));
    let backup = first_finished(&d, "backup", 0);
    assert_eq!(backup["state"], "succeeded", "{backup}");
    let (_, snaps) = d.get("/v1/services/acme/db/snapshots", OP);
    assert!(
        snaps[0]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "db:instance"),
        "{snaps}"
    );
}
