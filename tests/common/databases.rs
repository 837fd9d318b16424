#![allow(dead_code)]
//! Real database servers for integration tests: PostgreSQL and MariaDB from
//! Debian's packages (`.ci/run` installs `postgresql` and `mariadb-server`),
//! each started in its own temporary directory on a Unix socket, with no
//! TCP listener, and stopped on drop. PostgreSQL refuses to run as root:
//! as root, its programs run as `nobody`, who is given the directory.
//!
//! Each server has an administrator with a password, and a private
//! credentials file for it (a passfile for PostgreSQL, an option file for
//! MariaDB), as custos's `credentials_file` expects.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The administrator's password of every test server.
pub const PASSWORD: &str = "s3cret-for-tests";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .filter(|p| p.join("initdb").exists())
}

/// Runs `argv`, as `user` when given; panics with its output on failure.
fn run(user: Option<&str>, argv: &[&str]) {
    let mut full: Vec<String> = Vec::new();
    if let Some(u) = user {
        full.extend(["runuser", "-u", u, "--"].map(String::from));
    }
    full.extend(argv.iter().map(|s| s.to_string()));
    let o = Command::new(&full[0])
        .args(&full[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{full:?}: {e}"));
    assert!(
        o.status.success(),
        "{full:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A PostgreSQL server on a Unix socket in a temporary directory.
pub struct Postgres {
    /// Its directory (data, socket, credentials).
    pub dir: tempfile::TempDir,
    /// The directory holding the socket (`host` in custos's config).
    pub socket_dir: PathBuf,
    /// The administrator's passfile (`credentials_file`).
    pub passfile: PathBuf,
    /// The administrator's name.
    pub user: String,
    bin: PathBuf,
    run_as: Option<String>,
}

impl Postgres {
    /// Starts one; `None` when PostgreSQL's server programs are missing.
    pub fn start() -> Option<Postgres> {
        let bin = postgres_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let run_as = is_root().then(|| "nobody".to_string());
        let server = dir.path().join("server");
        let sock = dir.path().join("sock");
        std::fs::create_dir_all(&server).unwrap();
        std::fs::create_dir_all(&sock).unwrap();
        let pw = server.join("pw");
        std::fs::write(&pw, PASSWORD).unwrap();
        if let Some(u) = &run_as {
            run(
                None,
                &[
                    "chown",
                    "-R",
                    &format!("{u}:"),
                    server.to_str().unwrap(),
                    sock.to_str().unwrap(),
                ],
            );
            // nobody must reach the directories.
            run(None, &["chmod", "755", dir.path().to_str().unwrap()]);
        }
        let data = server.join("data");
        run(
            run_as.as_deref(),
            &[
                bin.join("initdb").to_str().unwrap(),
                "--pgdata",
                data.to_str().unwrap(),
                "--username=admin",
                "--auth=scram-sha-256",
                &format!("--pwfile={}", pw.display()),
                "--no-sync",
            ],
        );
        run(
            run_as.as_deref(),
            &[
                bin.join("pg_ctl").to_str().unwrap(),
                "--pgdata",
                data.to_str().unwrap(),
                "--log",
                server.join("log").to_str().unwrap(),
                "--wait",
                "--options",
                &format!("-c listen_addresses='' -k {} -c fsync=off", sock.display()),
                "start",
            ],
        );
        let passfile = dir.path().join("admin.pgpass");
        private(&passfile, &format!("*:*:*:admin:{PASSWORD}\n"));
        Some(Postgres {
            socket_dir: sock,
            passfile,
            user: "admin".into(),
            bin,
            run_as,
            dir,
        })
    }

    /// Runs SQL in `database` as the administrator; returns the output.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let o = Command::new(self.bin.join("psql"))
            .args([
                "--no-psqlrc",
                "--quiet",
                "--tuples-only",
                "--no-align",
                "--set=ON_ERROR_STOP=1",
            ])
            .arg(format!("--host={}", self.socket_dir.display()))
            .arg("--username=admin")
            .arg(format!("--dbname={database}"))
            .arg(format!("--command={sql}"))
            .env("PGPASSFILE", &self.passfile)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("server/data");
        let mut argv = Vec::new();
        if let Some(u) = &self.run_as {
            argv.extend(["runuser".to_string(), "-u".into(), u.clone(), "--".into()]);
        }
        argv.push(self.bin.join("pg_ctl").display().to_string());
        argv.extend([
            "--pgdata".to_string(),
            data.display().to_string(),
            "--mode=immediate".into(),
            "stop".into(),
        ]);
        let _ = Command::new(&argv[0]).args(&argv[1..]).output();
    }
}

/// A MariaDB server on a Unix socket in a temporary directory.
pub struct Mariadb {
    /// Its directory.
    pub dir: tempfile::TempDir,
    /// The socket (`host` in custos's config).
    pub socket: PathBuf,
    /// The administrator's option file (`credentials_file`).
    pub options: PathBuf,
    child: std::process::Child,
}

impl Mariadb {
    /// Starts one; `None` when MariaDB's server is missing.
    pub fn start() -> Option<Mariadb> {
        let mariadbd = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())?;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let socket = dir.path().join("mysqld.sock");
        let me = if is_root() {
            "root".to_string()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "nobody".into())
        };
        run(
            None,
            &[
                "mariadb-install-db",
                "--no-defaults",
                &format!("--datadir={}", data.display()),
                &format!("--user={me}"),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
        );
        let child = Command::new(mariadbd)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--log-error={}", dir.path().join("log").display()))
            .arg("--skip-networking")
            .arg(format!("--user={me}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let m = Mariadb {
            options: dir.path().join("admin.cnf"),
            socket,
            child,
            dir,
        };
        let start = Instant::now();
        while !m.socket.exists()
            || !Command::new("mariadb")
                .arg(format!("--socket={}", m.socket.display()))
                .args(["--user=root", "--execute=SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success())
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "MariaDB did not start: {}",
                std::fs::read_to_string(m.dir.path().join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        run(
            None,
            &[
                "mariadb",
                &format!("--socket={}", m.socket.display()),
                "--user=root",
                &format!("--execute=ALTER USER 'root'@'localhost' IDENTIFIED BY '{PASSWORD}'"),
            ],
        );
        private(
            &m.options,
            &format!("[client]\nuser=root\npassword={PASSWORD}\n"),
        );
        Some(m)
    }

    /// Runs SQL (in `database`, if given) as the administrator.
    pub fn sql(&self, database: Option<&str>, sql: &str) -> String {
        let mut c = Command::new("mariadb");
        c.arg(format!("--defaults-extra-file={}", self.options.display()))
            .arg(format!("--socket={}", self.socket.display()))
            .args(["--batch", "--skip-column-names"])
            .arg(format!("--execute={sql}"));
        if let Some(d) = database {
            c.arg(d);
        }
        let o = c.stdin(Stdio::null()).output().unwrap();
        assert!(
            o.status.success(),
            "mariadb {sql:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
