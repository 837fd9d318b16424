//! Database sources: PostgreSQL and MariaDB/MySQL, through their own
//! tools.
//!
//! | | PostgreSQL | MariaDB / MySQL |
//! |---|---|---|
//! | dump of a database (one snapshot each) | `pg_dump --format=custom --compress=0` (custos compresses; a compressed dump would not deduplicate) | `mariadb-dump --single-transaction --routines --events --triggers` (`mysqldump` when that is what is installed) |
//! | dump of an instance | `pg_dumpall` | `mariadb-dump --all-databases` |
//! | credentials | a passfile (`host:port:db:user:password`), given as `PGPASSFILE` to the tool only | an option file (`[client]` `user`, `password`), given as `--defaults-extra-file` |
//! | loading a dump | `pg_restore --no-owner` (custom) or `psql` (SQL) | `mariadb` |
//! | a scratch server (DR drills) | `initdb` + `pg_ctl` on a Unix socket in the scratch directory | `mariadb-install-db` + `mariadbd` on a Unix socket, no networking |
//!
//! A credentials file must be private (mode 0600): the password is never on
//! a command line nor in the environment of any process. The dump streams
//! straight into the backup pipeline (no temporary file); a tool that fails
//! makes the backup fail, and its stderr is in the error. Database names
//! are checked (letters, digits, `_`, `-`, `$`) before they reach SQL.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::command::CommandSpec;
use crate::{Error, Result};

/// What writes a dump into a loader's input.
pub type Feed<'a> = &'a mut dyn FnMut(&mut dyn std::io::Write) -> Result<()>;

/// Which database system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbKind {
    /// PostgreSQL.
    Postgres,
    /// MariaDB or MySQL.
    Mysql,
}

impl DbKind {
    /// The name in configs and URLs (`postgres`, `mysql`).
    pub fn name(self) -> &'static str {
        match self {
            DbKind::Postgres => "postgres",
            DbKind::Mysql => "mysql",
        }
    }
}

/// How to reach a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConn {
    /// PostgreSQL or MariaDB.
    pub kind: DbKind,
    /// A host name, or a Unix socket: for PostgreSQL the directory holding
    /// it, for MariaDB the socket file (an absolute path either way).
    pub host: Option<String>,
    /// TCP port.
    pub port: Option<u16>,
    /// User name.
    pub user: Option<String>,
    /// The credentials file (see the module's table).
    pub credentials: Option<PathBuf>,
}

/// What a database service dumps: some databases (one snapshot each), or
/// the whole instance (one snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSource {
    /// The server.
    pub conn: DbConn,
    /// Databases to dump, one snapshot each.
    pub databases: Vec<String>,
    /// Dump the whole instance instead (roles and every database).
    pub instance: bool,
}

/// One dump to run: what it is called in the snapshot and its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    /// The database (`None`: the instance).
    pub database: Option<String>,
    /// The file name in the snapshot (`shop.dump`, `shop.sql`,
    /// `instance.sql`); `.dump` is PostgreSQL's custom format.
    pub stream_name: String,
    /// The snapshot's tag naming it (`db:shop`, `db:instance`).
    pub tag: String,
    /// The command whose stdout is the dump.
    pub command: CommandSpec,
}

/// The tag a database's snapshots carry.
pub fn db_tag(database: Option<&str>) -> String {
    format!("db:{}", database.unwrap_or("instance"))
}

/// Checks a database name before it is used in a command or a query.
///
/// # Errors
/// [`Error::Usage`] for an empty name, one longer than 63 bytes, or one with
/// other characters than letters, digits, `_`, `-`, `$`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-$".contains(c))
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "database name {name:?}: 1 to 63 letters, digits, '_', '-' or '$' (not starting with '-')"
        )))
    }
}

/// The first of `names` found on `PATH` (or in `extra` directories), else
/// the first name (so that the error names it).
fn tool(names: &[&str], extra: &[PathBuf]) -> String {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = extra
        .iter()
        .cloned()
        .chain(std::env::split_paths(&path))
        .collect();
    for n in names {
        for d in &dirs {
            let p = d.join(n);
            if p.is_file() {
                return if extra.contains(d) {
                    p.to_string_lossy().into_owned()
                } else {
                    (*n).to_string()
                };
            }
        }
    }
    names.first().map_or_else(String::new, |n| (*n).to_string())
}

/// Where Debian puts PostgreSQL's server programs (`initdb`, `pg_ctl`),
/// newest version first.
fn postgres_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    dirs.into_iter().map(|(_, p)| p).collect()
}

impl DbConn {
    /// Checks the credentials file is private and readable.
    ///
    /// # Errors
    /// [`Error::Usage`] naming the file.
    pub fn check_credentials(&self) -> Result<()> {
        if let Some(c) = &self.credentials {
            crate::secrets::read_file(c, "database credentials file").map(|_| ())?;
        }
        Ok(())
    }

    /// A command for `program` with the connection's options and, for
    /// PostgreSQL, `PGPASSFILE`; `args` after them.
    fn command(&self, program: &str, args: &[String]) -> CommandSpec {
        let mut argv = vec![program.to_string()];
        let mut env = Vec::new();
        match self.kind {
            DbKind::Postgres => {
                if let Some(h) = &self.host {
                    argv.push(format!("--host={h}"));
                }
                if let Some(p) = self.port {
                    argv.push(format!("--port={p}"));
                }
                if let Some(u) = &self.user {
                    argv.push(format!("--username={u}"));
                }
                argv.push("--no-password".into());
                if let Some(c) = &self.credentials {
                    env.push(("PGPASSFILE".into(), c.to_string_lossy().into_owned()));
                }
            }
            DbKind::Mysql => {
                // Must come first, as MariaDB's tools require.
                if let Some(c) = &self.credentials {
                    argv.push(format!("--defaults-extra-file={}", c.display()));
                }
                match &self.host {
                    Some(h) if h.starts_with('/') => argv.push(format!("--socket={h}")),
                    Some(h) => argv.push(format!("--host={h}")),
                    None => {}
                }
                if let Some(p) = self.port {
                    argv.push(format!("--port={p}"));
                }
                if let Some(u) = &self.user {
                    argv.push(format!("--user={u}"));
                }
            }
        }
        argv.extend(args.iter().cloned());
        CommandSpec { argv, env }
    }

    fn client(&self) -> String {
        match self.kind {
            DbKind::Postgres => tool(&["psql"], &postgres_bin_dirs()),
            DbKind::Mysql => tool(&["mariadb", "mysql"], &[]),
        }
    }

    /// Runs an SQL statement on `database` (the server's default one when
    /// `None`) and returns its output (tab-separated, no headers).
    ///
    /// # Errors
    /// [`Error::Command`] with the client's stderr when it fails.
    pub fn sql(&self, database: Option<&str>, statement: &str) -> Result<String> {
        let mut args: Vec<String> = match self.kind {
            DbKind::Postgres => vec![
                "--no-psqlrc".into(),
                "--quiet".into(),
                "--tuples-only".into(),
                "--no-align".into(),
                "--set=ON_ERROR_STOP=1".into(),
                format!("--dbname={}", database.unwrap_or("postgres")),
                format!("--command={statement}"),
            ],
            DbKind::Mysql => vec![
                "--batch".into(),
                "--skip-column-names".into(),
                format!("--execute={statement}"),
            ],
        };
        if let (DbKind::Mysql, Some(db)) = (self.kind, database) {
            args.push(db.to_string());
        }
        let spec = self.command(&self.client(), &args);
        run_captured(&spec, None)
    }

    /// Whether `database` exists on the server.
    ///
    /// # Errors
    /// As [`DbConn::sql`]; [`Error::Usage`] for a bad name.
    pub fn exists(&self, database: &str) -> Result<bool> {
        check_name(database)?;
        let q = match self.kind {
            DbKind::Postgres => {
                format!("SELECT 1 FROM pg_database WHERE datname = '{database}'")
            }
            DbKind::Mysql => format!(
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{database}'"
            ),
        };
        Ok(self.sql(None, &q)?.trim() == "1")
    }

    fn quoted(&self, database: &str) -> String {
        match self.kind {
            DbKind::Postgres => format!("\"{database}\""),
            DbKind::Mysql => format!("`{database}`"),
        }
    }

    /// Creates `database`.
    ///
    /// # Errors
    /// As [`DbConn::sql`].
    pub fn create(&self, database: &str) -> Result<()> {
        check_name(database)?;
        self.sql(None, &format!("CREATE DATABASE {}", self.quoted(database)))
            .map(|_| ())
    }

    /// Drops `database` (after a load that failed into a database this
    /// restore created).
    ///
    /// # Errors
    /// As [`DbConn::sql`].
    pub fn drop_database(&self, database: &str) -> Result<()> {
        check_name(database)?;
        self.sql(None, &format!("DROP DATABASE {}", self.quoted(database)))
            .map(|_| ())
    }

    /// Loads a dump into `database`, which must exist: `feed` writes the
    /// dump into the loader's input. A PostgreSQL custom-format dump
    /// (`custom`) goes through `pg_restore --no-owner`, SQL through the
    /// client.
    ///
    /// # Errors
    /// [`Error::Command`] with the loader's stderr when it fails; what
    /// `feed` returns.
    pub fn load(&self, database: &str, custom: bool, feed: Feed<'_>) -> Result<()> {
        check_name(database)?;
        let spec = match (self.kind, custom) {
            (DbKind::Postgres, true) => self.command(
                &tool(&["pg_restore"], &postgres_bin_dirs()),
                &[
                    "--no-owner".into(),
                    "--exit-on-error".into(),
                    format!("--dbname={database}"),
                ],
            ),
            (DbKind::Postgres, false) => self.command(
                &self.client(),
                &[
                    "--no-psqlrc".into(),
                    "--quiet".into(),
                    "--set=ON_ERROR_STOP=1".into(),
                    format!("--dbname={database}"),
                ],
            ),
            (DbKind::Mysql, _) => self.command(&self.client(), &[database.to_string()]),
        };
        run_captured(&spec, Some(feed)).map(|_| ())
    }

    /// The value of a query that returns one integer (a drill's check).
    ///
    /// # Errors
    /// As [`DbConn::sql`]; [`Error::Problems`] when the answer is not one
    /// integer.
    pub fn count(&self, database: &str, query: &str) -> Result<i64> {
        let out = self.sql(Some(database), query)?;
        out.trim().parse::<i64>().map_err(|_| {
            Error::Problems(format!(
                "check query {query:?} on {database} answered {:?}, not one number",
                out.trim()
            ))
        })
    }
}

/// Runs `spec` with `input` on its stdin; returns its stdout.
///
/// # Errors
/// [`Error::Command`] naming the program with its stderr's tail when it
/// cannot start or fails.
fn run_captured(spec: &CommandSpec, input: Option<Feed<'_>>) -> Result<String> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| Error::Usage("empty command".into()))?;
    let mut c = Command::new(program);
    c.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::secrets::clean_child_env(&mut c);
    for (k, v) in &spec.env {
        c.env(k, v);
    }
    let mut child = c
        .spawn()
        .map_err(|e| Error::Command(format!("`{program}` cannot start: {e}")))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut o) = stdout {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let mut fed: Result<()> = Ok(());
    if let (Some(feed), Some(mut stdin)) = (input, child.stdin.take()) {
        fed = feed(&mut stdin);
        drop(stdin);
    }
    let status = child
        .wait()
        .map_err(|e| Error::Command(format!("`{program}`: {e}")))?;
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(5)..].join(" | ");
    if !status.success() {
        let how = status
            .code()
            .map_or("was killed by a signal".to_string(), |c| {
                format!("exited with status {c}")
            });
        return Err(Error::Command(if tail.is_empty() {
            format!("`{program}` {how}")
        } else {
            format!("`{program}` {how}: {tail}")
        }));
    }
    fed?;
    Ok(out)
}

impl DbSource {
    /// The dumps a backup of this source runs, in order.
    ///
    /// # Errors
    /// [`Error::Usage`] for a bad database name.
    pub fn dumps(&self) -> Result<Vec<Dump>> {
        let c = &self.conn;
        if self.instance {
            let command = match c.kind {
                DbKind::Postgres => c.command(&tool(&["pg_dumpall"], &postgres_bin_dirs()), &[]),
                DbKind::Mysql => c.command(
                    &tool(&["mariadb-dump", "mysqldump"], &[]),
                    &[
                        "--single-transaction".into(),
                        "--routines".into(),
                        "--events".into(),
                        "--triggers".into(),
                        "--all-databases".into(),
                    ],
                ),
            };
            return Ok(vec![Dump {
                database: None,
                stream_name: "instance.sql".into(),
                tag: db_tag(None),
                command,
            }]);
        }
        self.databases
            .iter()
            .map(|db| {
                check_name(db)?;
                let (command, ext) = match c.kind {
                    DbKind::Postgres => (
                        c.command(
                            &tool(&["pg_dump"], &postgres_bin_dirs()),
                            // Uncompressed: custos compresses with zstd,
                            // and a compressed dump would not deduplicate
                            // from one night to the next.
                            &[
                                "--format=custom".into(),
                                "--compress=0".into(),
                                format!("--dbname={db}"),
                            ],
                        ),
                        "dump",
                    ),
                    // One database without --databases: no CREATE DATABASE
                    // or USE in the dump, so it loads into any name.
                    DbKind::Mysql => (
                        c.command(
                            &tool(&["mariadb-dump", "mysqldump"], &[]),
                            &[
                                "--single-transaction".into(),
                                "--routines".into(),
                                "--events".into(),
                                "--triggers".into(),
                                db.clone(),
                            ],
                        ),
                        "sql",
                    ),
                };
                Ok(Dump {
                    database: Some(db.clone()),
                    stream_name: format!("{db}.{ext}"),
                    tag: db_tag(Some(db)),
                    command,
                })
            })
            .collect()
    }
}

/// Parses a connection URL for `restore --into`:
/// `postgres://[USER@][HOST][:PORT]/DATABASE[?host=/socket/dir]` or
/// `mysql://[USER@][HOST][:PORT]/DATABASE[?socket=/path/to.sock]`. Returns
/// the connection (without credentials) and the database.
///
/// # Errors
/// [`Error::Usage`] naming what is wrong.
pub fn parse_url(url: &str) -> Result<(DbConn, String)> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "--into {url:?}: {why} (e.g. postgres://backup@db.internal:5432/shop_restored, postgres:///shop_restored?host=/run/postgresql, mysql:///shop_restored?socket=/run/mysqld/mysqld.sock)"
        ))
    };
    let (kind, rest) = if let Some(r) = url.strip_prefix("postgres://") {
        (DbKind::Postgres, r)
    } else if let Some(r) = url.strip_prefix("postgresql://") {
        (DbKind::Postgres, r)
    } else if let Some(r) = url.strip_prefix("mysql://") {
        (DbKind::Mysql, r)
    } else if let Some(r) = url.strip_prefix("mariadb://") {
        (DbKind::Mysql, r)
    } else {
        return Err(bad("not a postgres:// or mysql:// URL"));
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, db) = rest
        .split_once('/')
        .ok_or_else(|| bad("no database after the host"))?;
    check_name(db).map_err(|e| bad(&e.to_string()))?;
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()).filter(|u| !u.is_empty()), h),
        None => (None, authority),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            Some(
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?,
            ),
        ),
        None => (hostport, None),
    };
    let mut host = Some(host.to_string()).filter(|h| !h.is_empty());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("host" | "socket", v)) if v.starts_with('/') => host = Some(v.to_string()),
            _ => return Err(bad(&format!("unknown parameter {pair:?}"))),
        }
    }
    Ok((
        DbConn {
            kind,
            host,
            port,
            user,
            credentials: None,
        },
        db.to_string(),
    ))
}

/// A throw-away server for a DR drill: its data and socket in `dir`, no
/// TCP listener, stopped (and its files left for the caller to wipe) on
/// [`ScratchServer::stop`] or drop.
pub struct ScratchServer {
    /// How to reach it.
    pub conn: DbConn,
    dir: PathBuf,
    /// As root, the server lives in a private directory of its user's
    /// under the system's temporary directory (which that user can reach,
    /// where the daemon's own state directory it could not), removed on
    /// drop.
    own_dir: Option<tempfile::TempDir>,
    /// Runs the server's programs as this user (root may not run them).
    run_as: Option<String>,
    child: Option<std::process::Child>,
    stopped: bool,
}

/// How long a scratch server may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn as_user(run_as: Option<&str>, argv: Vec<String>) -> Vec<String> {
    match run_as {
        Some(u) => {
            let mut v = vec![
                "runuser".to_string(),
                "-u".into(),
                u.to_string(),
                "--".into(),
            ];
            v.extend(argv);
            v
        }
        None => argv,
    }
}

fn run_plain(argv: &[String], what: &str) -> Result<()> {
    run_captured(
        &CommandSpec {
            argv: argv.to_vec(),
            env: Vec::new(),
        },
        None,
    )
    .map(|_| ())
    .map_err(|e| Error::Command(format!("{what}: {e}")))
}

impl ScratchServer {
    /// Starts a server of `kind` in `dir` (created, empty). As root, the
    /// server runs as `run_as` (which must exist; `dir` is given to it).
    ///
    /// # Errors
    /// [`Error::Command`] when a server program is missing or fails, with
    /// its output.
    pub fn start(kind: DbKind, dir: &Path, run_as: Option<&str>) -> Result<ScratchServer> {
        let run_as = run_as
            .filter(|_| crate::util::is_root())
            .map(str::to_string);
        let own_dir = match &run_as {
            Some(u) => {
                let t = tempfile::Builder::new()
                    .prefix("custos-drill-")
                    .tempdir()
                    .map_err(|e| Error::io("cannot make the drill server's directory", e))?;
                run_plain(
                    &[
                        "chown".into(),
                        format!("{u}:"),
                        t.path().display().to_string(),
                    ],
                    "cannot give the drill server's directory to its user",
                )?;
                Some(t)
            }
            None => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io_path("cannot create", dir, e))?;
                None
            }
        };
        let dir = own_dir.as_ref().map_or(dir, |t| t.path());
        let data = dir.join("data");
        let sock = dir.join("sock");
        let mut server = ScratchServer {
            conn: DbConn {
                kind,
                host: None,
                port: None,
                user: None,
                credentials: None,
            },
            dir: dir.to_path_buf(),
            own_dir: None,
            run_as: run_as.clone(),
            child: None,
            // Nothing to stop until the server is up.
            stopped: true,
        };
        let user = run_as.as_deref();
        match kind {
            DbKind::Postgres => {
                let bins = postgres_bin_dirs();
                let initdb = tool(&["initdb"], &bins);
                let pg_ctl = tool(&["pg_ctl"], &bins);
                run_plain(
                    &as_user(
                        user,
                        vec![
                            initdb,
                            "--pgdata".into(),
                            data.display().to_string(),
                            "--username=custos".into(),
                            "--auth=trust".into(),
                            "--encoding=UTF8".into(),
                            "--no-sync".into(),
                        ],
                    ),
                    "initdb of the drill's scratch server",
                )?;
                std::fs::create_dir_all(&sock)
                    .map_err(|e| Error::io_path("cannot create", &sock, e))?;
                if let Some(u) = user {
                    run_plain(
                        &["chown".into(), format!("{u}:"), sock.display().to_string()],
                        "cannot give the socket directory to the drill's user",
                    )?;
                }
                run_plain(
                    &as_user(
                        user,
                        vec![
                            pg_ctl,
                            "--pgdata".into(),
                            data.display().to_string(),
                            "--log".into(),
                            dir.join("server.log").display().to_string(),
                            "--wait".into(),
                            "--timeout=60".into(),
                            "--options".into(),
                            format!(
                                "-c listen_addresses='' -k {} -c fsync=off -c full_page_writes=off",
                                sock.display()
                            ),
                            "start".into(),
                        ],
                    ),
                    "the drill's scratch PostgreSQL did not start",
                )?;
                server.stopped = false;
                server.conn.host = Some(sock.display().to_string());
                server.conn.user = Some("custos".into());
            }
            DbKind::Mysql => {
                let me = user.map_or_else(crate::util::username, str::to_string);
                run_plain(
                    &as_user(
                        user,
                        vec![
                            tool(&["mariadb-install-db", "mysql_install_db"], &[]),
                            "--no-defaults".into(),
                            format!("--datadir={}", data.display()),
                            format!("--user={me}"),
                            "--auth-root-authentication-method=normal".into(),
                            "--skip-test-db".into(),
                        ],
                    ),
                    "mariadb-install-db of the drill's scratch server",
                )?;
                let socket = dir.join("mysqld.sock");
                let mut argv = as_user(
                    user,
                    vec![
                        tool(&["mariadbd", "mysqld"], &[PathBuf::from("/usr/sbin")]),
                        "--no-defaults".into(),
                        format!("--datadir={}", data.display()),
                        format!("--socket={}", socket.display()),
                        format!("--pid-file={}", dir.join("mysqld.pid").display()),
                        format!("--log-error={}", dir.join("server.log").display()),
                        "--skip-networking".into(),
                        format!("--user={me}"),
                        "--innodb-flush-log-at-trx-commit=0".into(),
                    ],
                );
                let program = argv.remove(0);
                let mut c = Command::new(&program);
                c.args(&argv)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                crate::secrets::clean_child_env(&mut c);
                let child = c.spawn().map_err(|e| {
                    Error::Command(format!(
                        "the drill's scratch MariaDB cannot start: `{program}`: {e}"
                    ))
                })?;
                server.child = Some(child);
                server.stopped = false;
                server.conn.host = Some(socket.display().to_string());
                server.conn.user = Some("root".into());
                let start = Instant::now();
                loop {
                    if socket.exists() && server.conn.sql(None, "SELECT 1").is_ok() {
                        break;
                    }
                    if let Some(Some(status)) =
                        server.child.as_mut().map(|c| c.try_wait().ok().flatten())
                    {
                        let log =
                            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(3).collect();
                        return Err(Error::Command(format!(
                            "the drill's scratch MariaDB stopped ({status}): {}",
                            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                        )));
                    }
                    if start.elapsed() > START_TIMEOUT {
                        return Err(Error::Command(
                            "the drill's scratch MariaDB did not come up within 60 s".into(),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        server.own_dir = own_dir;
        Ok(server)
    }

    /// Stops the server (waits for it).
    ///
    /// # Errors
    /// [`Error::Command`] when it does not stop cleanly (it is killed).
    pub fn stop(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let user = self.run_as.as_deref();
        match self.conn.kind {
            DbKind::Postgres => run_plain(
                &as_user(
                    user,
                    vec![
                        tool(&["pg_ctl"], &postgres_bin_dirs()),
                        "--pgdata".into(),
                        self.dir.join("data").display().to_string(),
                        "--mode=fast".into(),
                        "--wait".into(),
                        "stop".into(),
                    ],
                ),
                "the drill's scratch PostgreSQL did not stop",
            ),
            DbKind::Mysql => {
                let shut = self.conn.sql(None, "SHUTDOWN");
                if let Some(mut c) = self.child.take() {
                    let start = Instant::now();
                    while c.try_wait().ok().flatten().is_none() {
                        if start.elapsed() > START_TIMEOUT {
                            let _ = c.kill();
                            let _ = c.wait();
                            return Err(Error::Command(
                                "the drill's scratch MariaDB did not stop within 60 s: killed"
                                    .into(),
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                shut.map(|_| ())
            }
        }
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "scratch database server");
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Writes `data` to a new private file (a credentials file for tests and
/// drills).
#[cfg(test)]
fn write_private(path: &Path, data: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_sql() {
        for ok in ["shop", "shop_2026", "a-b", "x$y"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "x'; DROP DATABASE y; --",
            "-rf",
            "a\"b",
            &"x".repeat(64),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        let (c, db) = parse_url("postgres://backup@db.internal:5433/shop_restored").unwrap();
        assert_eq!(
            (
                c.kind,
                c.host.as_deref(),
                c.port,
                c.user.as_deref(),
                db.as_str()
            ),
            (
                DbKind::Postgres,
                Some("db.internal"),
                Some(5433),
                Some("backup"),
                "shop_restored"
            )
        );
        let (c, _) = parse_url("postgres:///x?host=/run/postgresql").unwrap();
        assert_eq!(c.host.as_deref(), Some("/run/postgresql"));
        let (c, db) = parse_url("mysql:///shop?socket=/run/mysqld/mysqld.sock").unwrap();
        assert_eq!(
            (c.kind, c.host.as_deref(), db.as_str()),
            (DbKind::Mysql, Some("/run/mysqld/mysqld.sock"), "shop")
        );
        for bad in [
            "http://x/y",
            "postgres://host",
            "postgres://h/bad name",
            "postgres://h:port/x",
            "mysql:///x?user=y",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dumps_keep_the_password_off_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let cred = dir.path().join("pgpass");
        write_private(&cred, b"*:*:*:backup:s3cret\n");
        let src = DbSource {
            conn: DbConn {
                kind: DbKind::Postgres,
                host: Some("/run/postgresql".into()),
                port: None,
                user: Some("backup".into()),
                credentials: Some(cred.clone()),
            },
            databases: vec!["shop".into(), "crm".into()],
            instance: false,
        };
        let dumps = src.dumps().unwrap();
        assert_eq!(dumps.len(), 2);
        assert_eq!(
            (dumps[0].stream_name.as_str(), dumps[0].tag.as_str()),
            ("shop.dump", "db:shop")
        );
        let d = &dumps[0].command;
        assert!(d.argv.iter().any(|a| a == "--format=custom"));
        assert!(d.argv.iter().any(|a| a == "--no-password"));
        assert!(!d.argv.iter().any(|a| a.contains("s3cret")));
        assert_eq!(
            d.env,
            vec![("PGPASSFILE".to_string(), cred.display().to_string())]
        );
        let my = DbSource {
            conn: DbConn {
                kind: DbKind::Mysql,
                credentials: Some(cred.clone()),
                ..src.conn.clone()
            },
            ..src.clone()
        };
        let d = &my.dumps().unwrap()[0].command;
        assert_eq!(
            d.argv[1],
            format!("--defaults-extra-file={}", cred.display())
        );
        assert!(d.argv.contains(&"--single-transaction".to_string()));
        assert_eq!(d.argv.last().map(String::as_str), Some("shop"));
        assert!(d.env.is_empty());
        let bad = DbSource {
            databases: vec!["x; rm".into()],
            ..src
        };
        assert!(bad.dumps().is_err());
    }
}
