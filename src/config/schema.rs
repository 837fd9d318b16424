//! The config file as written: plain serde types, every table with
//! `deny_unknown_fields`, so a misspelt key is an error naming it (and its
//! line) instead of a silently ignored setting. Values are checked and
//! resolved in `config::resolve`.

use std::path::PathBuf;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// `[daemon]`.
    #[serde(default)]
    pub daemon: RawDaemon,
    /// `[[target]]`.
    #[serde(default)]
    pub target: Vec<RawTarget>,
    /// `[[tenant]]`.
    #[serde(default)]
    pub tenant: Vec<RawTenant>,
    /// `[[service]]`.
    #[serde(default)]
    pub service: Vec<RawService>,
    /// `[[notify]]`.
    #[serde(default)]
    pub notify: Vec<RawNotify>,
}

/// `[[notify]]`: where events are sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    /// Name (in logs).
    pub name: String,
    /// Only this tenant's events (a partner's address); every tenant's
    /// when absent (operators).
    pub tenant: Option<String>,
    /// Which events (default: all).
    pub events: Option<Vec<String>>,
    /// A JSON POST, signed.
    pub webhook: Option<RawWebhook>,
    /// An e-mail through an SMTP server.
    pub email: Option<RawEmail>,
    /// Retries after a failed delivery (default 5).
    pub retries: Option<u32>,
    /// First wait before a retry (default `30s`, doubling up to `1h`).
    pub retry_backoff: Option<String>,
}

/// `notify.webhook`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    /// `https://...` (`http://` only to a loopback address).
    pub url: String,
    /// File holding the HMAC secret.
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding it.
    pub secret_env: Option<String>,
}

/// `notify.email`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmail {
    /// SMTP server, `host` or `host:port`.
    pub smtp: String,
    /// `starttls` (default), `tls`, or `none` (loopback servers only).
    pub tls: Option<String>,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// SMTP user name.
    pub username: Option<String>,
    /// File holding the SMTP password.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding it.
    pub password_env: Option<String>,
}

/// `[daemon]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    /// Catalog and caches (default `/var/lib/custos`).
    pub state_dir: Option<PathBuf>,
    /// Index caches (default `<state_dir>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// API address, e.g. `127.0.0.1:8420` (no API when absent).
    pub listen: Option<String>,
    /// Region patterns targets must match (default `["eu-*"]`).
    pub allowed_regions: Option<Vec<String>>,
    /// Jobs at once in the whole daemon (default 2).
    pub max_jobs: Option<usize>,
    /// Default time zone of schedules and retention buckets (default UTC).
    pub time_zone: Option<String>,
    /// Default jitter bound (default `5min`).
    pub jitter: Option<String>,
    /// Catch-up window for runs missed while down (default `24h`).
    pub catch_up: Option<String>,
    /// How often each service's snapshot list is re-read from its
    /// repository, to see snapshots written by the command line or another
    /// host (default `1min`).
    pub snapshot_refresh: Option<String>,
    /// Where service-desk restores are written (default `<state_dir>/restores`).
    pub restore_root: Option<PathBuf>,
    /// Restores at once (default 1).
    pub restore_concurrency: Option<usize>,
    /// Scratch space for DR drills (default `<state_dir>/drills`).
    pub scratch_dir: Option<PathBuf>,
    /// The operator's Ed25519 signing key for deletion certificates
    /// (`custos certificate keygen`).
    pub certificate_key: Option<PathBuf>,
    /// Where the audit log is mirrored (object store URL; each record becomes
    /// `audit/<seq>.json`, written once).
    pub audit_mirror: Option<String>,
    /// The API's TLS certificate chain (PEM); with `tls_key`.
    pub tls_certificate: Option<PathBuf>,
    /// The API's TLS private key (PEM, a private file).
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback `listen` (behind a TLS proxy).
    pub allow_plain_http: Option<bool>,
    /// A separate loopback address serving `/metrics` without a token.
    pub metrics_listen: Option<String>,
    /// API connections at once (default 256).
    pub max_connections: Option<usize>,
    /// Time a client has to send a request head (default `10s`).
    pub header_timeout: Option<String>,
    /// Time one API connection may take (default `60s`).
    pub request_timeout: Option<String>,
    /// Restores a tenant may have queued or running (default 2).
    pub restores_per_tenant: Option<usize>,
    /// How long restored files stay in the restore root (default `7d`).
    pub restore_retention: Option<String>,
    /// How long finished job records stay in the catalog (default `90d`).
    pub job_history: Option<String>,
    /// How often RPO states and erasure deadlines are read for
    /// notifications (default `1min`).
    pub notify_interval: Option<String>,
    /// API tokens.
    #[serde(default)]
    pub token: Vec<RawToken>,
}

/// `[[daemon.token]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    /// Name (recorded as the actor).
    pub name: String,
    /// `operator`, `partner` or `auditor`.
    pub role: String,
    /// The tenant of a partner token.
    pub tenant: Option<String>,
    /// File holding the secret.
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the secret.
    pub secret_env: Option<String>,
}

/// `[[target]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    /// Name services refer to.
    pub name: String,
    /// Repository root URL; each tenant gets `<url>/<tenant>`.
    pub url: String,
    /// Region (e.g. `eu-west-par`).
    pub region: String,
    /// Availability zone.
    pub zone: String,
    /// Jobs at once on this target (default: the daemon's).
    pub max_jobs: Option<usize>,
    /// Upload at most this many KiB a second to the target (all its jobs
    /// together).
    pub limit_upload: Option<u64>,
    /// Download at most this many KiB a second from the target.
    pub limit_download: Option<u64>,
}

/// `[[tenant]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenant {
    /// Tenant ID (also the repository prefix): letters, digits, `-`, `_`.
    pub id: String,
    /// Contract reference (erasure certificates quote it).
    pub contract: Option<String>,
    /// File holding the repository passphrase.
    pub password_file: Option<PathBuf>,
    /// A raw key file instead of a passphrase.
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the passphrase.
    pub password_env: Option<String>,
    /// Targets this tenant's services may use (default: any).
    pub targets: Option<Vec<String>>,
}

/// `[[service]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    /// Tenant ID.
    pub tenant: String,
    /// Name, unique within the tenant.
    pub name: String,
    /// Class from POLICIES.md.
    pub class: String,
    /// Availability zone of the workload.
    pub zone: String,
    /// Primary target.
    pub target: String,
    /// What to back up.
    pub source: RawSource,
    /// Backup schedule (cron, 5–7 fields).
    pub schedule: Option<String>,
    /// Time zone of the schedule and retention buckets.
    pub time_zone: Option<String>,
    /// Retention overrides (replace the class's rules when given).
    pub retention: Option<RawRetention>,
    /// Keep up to one year (12 monthly) on top of the class's rules.
    pub long_term: Option<bool>,
    /// Restore window (e.g. `90d`).
    pub restore_window: Option<String>,
    /// RPO (default: one schedule interval + 2 h).
    pub rpo: Option<String>,
    /// RTO (for drills).
    pub rto: Option<String>,
    /// Standby target name.
    pub standby_target: Option<String>,
    /// `cold` (daily copy) or `hot` (after each backup).
    pub standby: Option<String>,
    /// zstd level 1–19.
    pub compression: Option<i32>,
    /// Longest a job may run (default `6h`).
    pub timeout: Option<String>,
    /// Retries after a failed attempt (default 3).
    pub retries: Option<u32>,
    /// First retry delay (default `1min`, doubling).
    pub retry_backoff: Option<String>,
    /// Jitter bound for this service.
    pub jitter: Option<String>,
    /// When forget + prune run (default daily 05:30).
    pub retention_schedule: Option<String>,
    /// Prune's grace period (default `0s`).
    pub prune_grace: Option<String>,
    /// Sampled check.
    pub check: Option<RawCheck>,
    /// Commands run before and after each backup.
    pub hooks: Option<RawHooks>,
    /// DR drill (dbaas has one by default).
    pub drill: Option<RawDrill>,
}

/// `source`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    /// Paths to back up.
    pub paths: Option<Vec<PathBuf>>,
    /// Exclude globs.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Exclude globs, ignoring case.
    #[serde(default)]
    pub iexclude: Vec<String>,
    /// Leave out cache directories (`CACHEDIR.TAG`).
    #[serde(default)]
    pub exclude_caches: bool,
    /// Leave out directories holding one of these files (`NAME[:HEADER]`).
    #[serde(default)]
    pub exclude_if_present: Vec<String>,
    /// Leave out files larger than this (`512M`, `2G`).
    pub exclude_larger_than: Option<String>,
    /// Do not cross into other file systems (a mounted share's backup
    /// stays on the share).
    #[serde(default)]
    pub one_file_system: bool,
    /// A command whose stdout is the backup (argument vector).
    pub command: Option<Vec<String>>,
    /// File name of the stream in the snapshot (default `<service>.dump`).
    pub stream_name: Option<String>,
    /// Extra environment for the command.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// A PostgreSQL server's databases (`pg_dump --format=custom`, one
    /// snapshot each) or instance (`pg_dumpall`).
    pub postgres: Option<RawDb>,
    /// A MariaDB/MySQL server's databases (`mariadb-dump`, one snapshot
    /// each) or instance.
    pub mysql: Option<RawDb>,
    /// A VM disk image (raw, qcow2, ...), backed up as the guest sees it.
    pub image: Option<RawImage>,
}

/// `source.image`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawImage {
    /// The image file.
    pub path: PathBuf,
    /// Its format (`raw`, `qcow2`, `vmdk`, ...); default: asked of
    /// `qemu-img info`.
    pub format: Option<String>,
}

/// `source.postgres`, `source.mysql`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDb {
    /// Host name, or a Unix socket (PostgreSQL: its directory; MariaDB:
    /// the socket file).
    pub host: Option<String>,
    /// TCP port.
    pub port: Option<u16>,
    /// User name.
    pub user: Option<String>,
    /// Databases to dump, one snapshot each.
    #[serde(default)]
    pub databases: Vec<String>,
    /// Dump the whole instance instead.
    #[serde(default)]
    pub instance: bool,
    /// Private credentials file (a passfile for PostgreSQL, an option file
    /// for MariaDB).
    pub credentials_file: Option<PathBuf>,
}

/// `retention`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetention {
    /// Keep the N newest.
    pub keep_last: Option<u32>,
    /// Hourly.
    pub keep_hourly: Option<u32>,
    /// Daily.
    pub keep_daily: Option<u32>,
    /// Weekly.
    pub keep_weekly: Option<u32>,
    /// Monthly.
    pub keep_monthly: Option<u32>,
    /// Yearly.
    pub keep_yearly: Option<u32>,
    /// Within a duration.
    pub keep_within: Option<String>,
    /// Tags.
    #[serde(default)]
    pub keep_tags: Vec<String>,
}

/// `check`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    /// When (default weekly, Sunday 06:00).
    pub schedule: Option<String>,
    /// Percentage of packs read, e.g. `5%` (default 5 %).
    pub subset: Option<String>,
}

/// `hooks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHooks {
    /// Before the backup (quiesce, snapshot).
    pub pre: Option<Vec<String>>,
    /// After the backup, always (thaw).
    pub post: Option<Vec<String>>,
    /// Longest each may run (default `5min`).
    pub timeout: Option<String>,
}

/// `drill`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDrill {
    /// When (default monthly, the 1st at 04:00); `"never"` disables.
    pub schedule: Option<String>,
    /// Run on the restored data.
    pub check_command: Option<Vec<String>>,
    /// Longest the check may run (default `1h`).
    pub check_timeout: Option<String>,
    /// Database services: queries run on the scratch server once the
    /// dumps are loaded; each must answer one number of at least its
    /// minimum (1 for a plain query).
    #[serde(default)]
    pub check_sql: Vec<RawSqlCheck>,
    /// As root, the scratch database server runs as this user (default
    /// `nobody`): PostgreSQL refuses to run as root.
    pub run_as: Option<String>,
}

/// One of `drill.check_sql`: a query (on the only, or first, database), or
/// a table with its database and minimum.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawSqlCheck {
    /// `"SELECT count(*) FROM orders"`: at least 1.
    Query(String),
    /// `{ database = "shop", query = "...", min = 1000 }`.
    Full {
        /// The database (default: the service's first).
        database: Option<String>,
        /// The query: one number.
        query: String,
        /// The least acceptable answer (default 1).
        min: Option<i64>,
    },
}
