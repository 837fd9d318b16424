//! From the file as written to the resolved config: every value checked,
//! class defaults applied, placement rules enforced, every problem kept
//! with its key.

use super::*;

fn glob_match(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Collects problems while resolving.
pub(super) struct Problems(pub(super) Vec<(String, String)>);

impl Problems {
    pub(super) fn add(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push((key.into(), reason.into()));
    }

    pub(super) fn duration(&mut self, key: &str, v: Option<&str>, default: &str) -> Duration {
        let text = v.unwrap_or(default);
        match text.parse::<HumanDuration>() {
            Ok(d) => d.as_std(),
            Err(e) => {
                self.add(
                    key,
                    format!("bad duration {text:?}: {e} (write e.g. 90d, 12h, 30min)"),
                );
                Duration::ZERO
            }
        }
    }

    fn schedule(&mut self, key: &str, expr: &str, tz: &str) -> Option<CronSchedule> {
        match CronSchedule::new(expr, tz) {
            Ok(s) => Some(s),
            Err(e) => {
                self.add(key, e);
                None
            }
        }
    }
}

/// `source.postgres` / `source.mysql`.
fn database_source(
    p: &mut Problems,
    key: &str,
    kind: crate::source::database::DbKind,
    d: &schema::RawDb,
) -> Option<SourceSpec> {
    use crate::source::database::{check_name, DbConn, DbSource};
    match (d.instance, d.databases.is_empty()) {
        (true, false) => p.add(
            key.to_string(),
            "give `databases` or `instance = true`, not both",
        ),
        (false, true) => p.add(
            key.to_string(),
            "no databases: list them in `databases`, or dump the whole `instance = true`",
        ),
        _ => {}
    }
    for db in &d.databases {
        if let Err(e) = check_name(db) {
            p.add(format!("{key}.databases"), e.to_string());
        }
    }
    Some(SourceSpec::Database(DbSource {
        conn: DbConn {
            kind,
            host: d.host.clone(),
            port: d.port,
            user: d.user.clone(),
            credentials: d.credentials_file.clone(),
        },
        databases: d.databases.clone(),
        instance: d.instance,
    }))
}

fn key_source(
    p: &mut Problems,
    key: &str,
    file: &Option<PathBuf>,
    keyfile: &Option<PathBuf>,
    env: &Option<String>,
) -> Option<KeySource> {
    match (file, keyfile, env) {
        (Some(f), None, None) => Some(KeySource::PasswordFile(f.clone())),
        (None, Some(f), None) => Some(KeySource::KeyFile(f.clone())),
        (None, None, Some(v)) => Some(KeySource::Env(v.clone())),
        (None, None, None) => {
            p.add(key, "no key: give password_file, key_file or password_env");
            None
        }
        _ => {
            p.add(
                key,
                "give only one of password_file, key_file and password_env",
            );
            None
        }
    }
}

pub(super) fn resolve(raw: &RawConfig, p: &mut Problems) -> Config {
    let d = &raw.daemon;
    let state_dir = d
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/custos"));
    let default_tz = d.time_zone.clone().unwrap_or_else(|| "UTC".into());
    if jiff::tz::TimeZone::get(&default_tz).is_err() {
        p.add(
            "daemon.time_zone",
            format!("unknown time zone {default_tz:?}"),
        );
    }
    let listen = d
        .listen
        .as_ref()
        .and_then(|l| match l.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                p.add(
                    "daemon.listen",
                    format!("{l:?}: {e} (write e.g. 127.0.0.1:8420)"),
                );
                None
            }
        });
    let tls = match (&d.tls_certificate, &d.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        _ => {
            p.add(
                "daemon.tls_certificate",
                "daemon.tls_certificate and daemon.tls_key go together",
            );
            None
        }
    };
    if let Some(addr) = listen {
        if !addr.ip().is_loopback() && tls.is_none() && d.allow_plain_http != Some(true) {
            p.add(
                "daemon.listen",
                format!("{addr} is reachable from other hosts and the API would speak plain HTTP, tokens in clear: set daemon.tls_certificate and daemon.tls_key, or allow_plain_http = true behind a TLS proxy"),
            );
        }
    }
    let metrics_listen = d
        .metrics_listen
        .as_ref()
        .and_then(|l| match l.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Some(a),
            Ok(a) => {
                p.add(
                    "daemon.metrics_listen",
                    format!("{a} is not a loopback address: metrics name every tenant; read them from other hosts through the API with an auditor token"),
                );
                None
            }
            Err(e) => {
                p.add(
                    "daemon.metrics_listen",
                    format!("{l:?}: {e} (write e.g. 127.0.0.1:9420)"),
                );
                None
            }
        });
    let header_timeout = p.duration("daemon.header_timeout", d.header_timeout.as_deref(), "10s");
    let request_timeout = p.duration(
        "daemon.request_timeout",
        d.request_timeout.as_deref(),
        "60s",
    );
    let restore_retention = p.duration(
        "daemon.restore_retention",
        d.restore_retention.as_deref(),
        "7d",
    );
    let job_history = p.duration("daemon.job_history", d.job_history.as_deref(), "90d");
    let notify_interval = p
        .duration(
            "daemon.notify_interval",
            d.notify_interval.as_deref(),
            "1min",
        )
        .max(std::time::Duration::from_secs(1));
    let jitter = p.duration("daemon.jitter", d.jitter.as_deref(), "5min");
    let catch_up = p.duration("daemon.catch_up", d.catch_up.as_deref(), "24h");
    let snapshot_refresh = p.duration(
        "daemon.snapshot_refresh",
        d.snapshot_refresh.as_deref(),
        "1min",
    );
    if snapshot_refresh.is_zero()
        && d.snapshot_refresh
            .as_deref()
            .is_some_and(|v| v.parse::<HumanDuration>().is_ok())
    {
        p.add(
            "daemon.snapshot_refresh",
            "must be longer than 0s (e.g. 1min)",
        );
    }
    let allowed_regions = d
        .allowed_regions
        .clone()
        .unwrap_or_else(|| vec!["eu-*".into()]);

    let mut tokens = Vec::new();
    let mut token_names = HashSet::new();
    for (i, t) in d.token.iter().enumerate() {
        let key = format!("daemon.token[{i}] ({})", t.name);
        if !token_names.insert(t.name.clone()) {
            p.add(&key, "duplicate token name");
        }
        let role = match (t.role.as_str(), &t.tenant) {
            ("operator", None) => Some(Role::Operator),
            ("auditor", None) => Some(Role::Auditor),
            ("partner", Some(tenant)) => {
                if !raw.tenant.iter().any(|x| &x.id == tenant) {
                    p.add(
                        format!("{key}.tenant"),
                        format!("unknown tenant {tenant:?}"),
                    );
                }
                Some(Role::Partner {
                    tenant: tenant.clone(),
                })
            }
            ("partner", None) => {
                p.add(&key, "a partner token needs `tenant`");
                None
            }
            ("operator" | "auditor", Some(_)) => {
                p.add(&key, "only partner tokens have a tenant");
                None
            }
            (other, _) => {
                p.add(
                    format!("{key}.role"),
                    format!("unknown role {other:?}: operator, partner or auditor"),
                );
                None
            }
        };
        let secret = match (&t.secret_file, &t.secret_env) {
            (Some(f), None) => Some(KeySource::PasswordFile(f.clone())),
            (None, Some(v)) => Some(KeySource::Env(v.clone())),
            _ => {
                p.add(
                    &key,
                    "give exactly one of secret_file and secret_env (never the secret itself)",
                );
                None
            }
        };
        if let (Some(role), Some(secret)) = (role, secret) {
            tokens.push(TokenSpec {
                name: t.name.clone(),
                role,
                secret,
            });
        }
    }

    let mut targets = Vec::new();
    let mut target_names = HashSet::new();
    for (i, t) in raw.target.iter().enumerate() {
        let key = format!("target[{i}] ({})", t.name);
        if !target_names.insert(t.name.clone()) {
            p.add(&key, "duplicate target name");
        }
        if !allowed_regions.iter().any(|pat| glob_match(pat, &t.region)) {
            p.add(
                format!("{key}.region"),
                format!(
                    "region {:?} is outside the allowed regions {:?}: data must stay in the EU (daemon.allowed_regions)",
                    t.region, allowed_regions
                ),
            );
        }
        if let Err(e) = url_scheme_ok(&t.url) {
            p.add(format!("{key}.url"), e);
        }
        targets.push(Target {
            name: t.name.clone(),
            url: t.url.clone(),
            region: t.region.clone(),
            zone: t.zone.clone(),
            max_jobs: t.max_jobs,
            limit_upload: t.limit_upload,
            limit_download: t.limit_download,
            limits: crate::backend::Limits::kib_per_sec(t.limit_upload, t.limit_download),
        });
    }

    let mut tenants = Vec::new();
    let mut tenant_ids = HashSet::new();
    for (i, t) in raw.tenant.iter().enumerate() {
        let key = format!("tenant[{i}] ({})", t.id);
        if !valid_id(&t.id) {
            p.add(
                format!("{key}.id"),
                "1-64 letters, digits, '-' or '_' (it is the repository prefix)",
            );
        }
        if !tenant_ids.insert(t.id.clone()) {
            p.add(&key, "duplicate tenant id");
        }
        for name in t.targets.iter().flatten() {
            if !target_names.contains(name) {
                p.add(format!("{key}.targets"), format!("unknown target {name:?}"));
            }
        }
        if let Some(k) = key_source(p, &key, &t.password_file, &t.key_file, &t.password_env) {
            tenants.push(Tenant {
                id: t.id.clone(),
                contract: t.contract.clone(),
                key: k,
            });
        }
    }

    let mut services = Vec::new();
    let mut service_names = HashSet::new();
    let target_by_name: HashMap<&str, &schema::RawTarget> =
        raw.target.iter().map(|t| (t.name.as_str(), t)).collect();
    for (i, s) in raw.service.iter().enumerate() {
        let key = format!("service[{i}] ({}/{})", s.tenant, s.name);
        if !service_names.insert((s.tenant.clone(), s.name.clone())) {
            p.add(&key, "duplicate service (tenant and name)");
        }
        if !valid_id(&s.name) {
            p.add(format!("{key}.name"), "1-64 letters, digits, '-' or '_'");
        }
        let Some(tenant) = raw.tenant.iter().find(|t| t.id == s.tenant) else {
            p.add(
                format!("{key}.tenant"),
                format!("unknown tenant {:?}", s.tenant),
            );
            continue;
        };
        if let Some(svc) = resolve_service(s, &key, tenant, &target_by_name, &default_tz, jitter, p)
        {
            services.push(svc);
        }
    }

    let tenant_ids: HashSet<&str> = raw.tenant.iter().map(|t| t.id.as_str()).collect();
    let notify = super::notify::resolve(&raw.notify, &tenant_ids, p);
    Config {
        file: PathBuf::new(),
        certificate_key: d.certificate_key.clone(),
        audit_mirror: d.audit_mirror.clone(),
        cache_dir: d
            .cache_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("cache")),
        restore_root: d
            .restore_root
            .clone()
            .unwrap_or_else(|| state_dir.join("restores")),
        scratch_dir: d
            .scratch_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("drills")),
        state_dir,
        listen,
        tls,
        metrics_listen,
        max_connections: d.max_connections.unwrap_or(256).max(1),
        header_timeout,
        request_timeout,
        restores_per_tenant: d.restores_per_tenant.unwrap_or(2).max(1),
        restore_retention,
        job_history,
        notify_interval,
        allowed_regions,
        max_jobs: d.max_jobs.unwrap_or(2).max(1),
        catch_up,
        snapshot_refresh,
        restore_concurrency: d.restore_concurrency.unwrap_or(1).max(1),
        tokens,
        targets,
        tenants,
        services,
        notify,
    }
}

/// Paths in the file (state, keys, token secrets, local targets) may be
/// relative: they are taken relative to the config file's directory.
pub(super) fn relative_to(mut raw: RawConfig, base: &Path) -> RawConfig {
    let fix = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    let d = &mut raw.daemon;
    for p in [
        &mut d.state_dir,
        &mut d.cache_dir,
        &mut d.restore_root,
        &mut d.scratch_dir,
        &mut d.certificate_key,
        &mut d.tls_certificate,
        &mut d.tls_key,
    ]
    .into_iter()
    .flatten()
    {
        fix(p);
    }
    for t in &mut d.token {
        if let Some(f) = &mut t.secret_file {
            fix(f);
        }
    }
    for n in &mut raw.notify {
        let files = [
            n.webhook.as_mut().and_then(|w| w.secret_file.as_mut()),
            n.email.as_mut().and_then(|e| e.password_file.as_mut()),
        ];
        for f in files.into_iter().flatten() {
            fix(f);
        }
    }
    for t in &mut raw.tenant {
        for f in [&mut t.password_file, &mut t.key_file]
            .into_iter()
            .flatten()
        {
            fix(f);
        }
    }
    for s in &mut raw.service {
        for db in [&mut s.source.postgres, &mut s.source.mysql]
            .into_iter()
            .flatten()
        {
            if let Some(f) = &mut db.credentials_file {
                fix(f);
            }
        }
    }
    let fix_url = |u: &mut String| {
        if !u.contains("://") && !u.starts_with('/') {
            *u = base.join(&*u).to_string_lossy().into_owned();
        }
    };
    for t in &mut raw.target {
        fix_url(&mut t.url);
    }
    if let Some(m) = &mut raw.daemon.audit_mirror {
        fix_url(m);
    }
    raw
}

fn url_scheme_ok(url: &str) -> Result<(), String> {
    const SCHEMES: [&str; 6] = [
        "file://",
        "s3://",
        "az://",
        "azure://",
        "gs://",
        "memory://",
    ];
    if SCHEMES.iter().any(|s| url.starts_with(s)) || url.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "{url:?}: expected an absolute path, file://, s3://, az://, gs:// or memory:// URL"
        ))
    }
}

fn check_placement(
    p: &mut Problems,
    key: &str,
    what: &str,
    target: &str,
    zone: &str,
    tenant: &schema::RawTenant,
    targets: &HashMap<&str, &schema::RawTarget>,
) -> bool {
    let Some(t) = targets.get(target) else {
        p.add(
            format!("{key}.{what}"),
            format!("unknown target {target:?}"),
        );
        return false;
    };
    if t.zone == zone {
        p.add(
            format!("{key}.{what}"),
            format!(
                "target {target:?} is in zone {:?}, the workload's own availability zone: backups must live outside it",
                t.zone
            ),
        );
    }
    if let Some(allowed) = &tenant.targets {
        if !allowed.iter().any(|a| a == target) {
            p.add(
                format!("{key}.{what}"),
                format!(
                    "tenant {:?} may not use target {target:?} (tenant.targets)",
                    tenant.id
                ),
            );
        }
    }
    true
}

fn command_spec(
    p: &mut Problems,
    key: &str,
    argv: &[String],
    env: &[(String, String)],
) -> Option<CommandSpec> {
    if argv.first().is_none_or(|a| a.is_empty()) {
        p.add(
            key,
            "empty command: give the program and its arguments as a list",
        );
        return None;
    }
    Some(CommandSpec {
        argv: argv.to_vec(),
        env: env.to_vec(),
    })
}

fn resolve_service(
    s: &RawService,
    key: &str,
    tenant: &schema::RawTenant,
    targets: &HashMap<&str, &schema::RawTarget>,
    default_tz: &str,
    default_jitter: Duration,
    p: &mut Problems,
) -> Option<Service> {
    let Some(class) = classes::class(&s.class) else {
        p.add(
            format!("{key}.class"),
            format!("unknown class {:?}: {}", s.class, classes::names()),
        );
        return None;
    };
    let ok_target = check_placement(p, key, "target", &s.target, &s.zone, tenant, targets);
    let standby = match (&s.standby_target, &s.standby) {
        (None, None) => None,
        (Some(t), mode) => {
            if t == &s.target {
                p.add(
                    format!("{key}.standby_target"),
                    "the standby target must differ from the primary",
                );
            }
            check_placement(p, key, "standby_target", t, &s.zone, tenant, targets);
            let mode = match mode.as_deref().unwrap_or("cold") {
                "cold" => StandbyMode::Cold,
                "hot" => StandbyMode::Hot,
                other => {
                    p.add(
                        format!("{key}.standby"),
                        format!("{other:?}: \"cold\" or \"hot\""),
                    );
                    StandbyMode::Cold
                }
            };
            Some((t.clone(), mode))
        }
        (None, Some(_)) => {
            p.add(
                format!("{key}.standby"),
                "a standby mode needs standby_target",
            );
            None
        }
    };
    let tz = s
        .time_zone
        .clone()
        .unwrap_or_else(|| default_tz.to_string());
    let time_zone = match jiff::tz::TimeZone::get(&tz) {
        Ok(z) => z,
        Err(_) => {
            p.add(
                format!("{key}.time_zone"),
                format!("unknown time zone {tz:?}"),
            );
            jiff::tz::TimeZone::UTC
        }
    };
    let schedule = p.schedule(
        &format!("{key}.schedule"),
        s.schedule.as_deref().unwrap_or(class.schedule),
        &tz,
    );
    let retention_schedule = p.schedule(
        &format!("{key}.retention_schedule"),
        s.retention_schedule.as_deref().unwrap_or("0 30 5 * * *"),
        &tz,
    );
    let check_raw = s.check.clone().unwrap_or(schema::RawCheck {
        schedule: None,
        subset: None,
    });
    let check_schedule = p.schedule(
        &format!("{key}.check.schedule"),
        check_raw.schedule.as_deref().unwrap_or("0 0 6 * * Sun"),
        &tz,
    );
    let subset_text = check_raw.subset.unwrap_or_else(|| "5%".into());
    let subset = match subset_text.trim_end_matches('%').parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 100.0 => v,
        _ => {
            p.add(
                format!("{key}.check.subset"),
                format!("{subset_text:?}: a percentage above 0 and at most 100, e.g. \"5%\""),
            );
            5.0
        }
    };

    // Retention: the service's rules replace the class's; long_term adds 12 monthly.
    let r = s.retention.clone().unwrap_or_default();
    let overridden = s.retention.is_some();
    let pick = |own: Option<u32>, class: Option<u32>| if overridden { own } else { class };
    let keep_within_text = if overridden {
        r.keep_within.clone()
    } else {
        class.keep_within.map(str::to_string)
    };
    let keep_within = keep_within_text
        .as_deref()
        .and_then(|w| match w.parse::<HumanDuration>() {
            Ok(d) => Some(d),
            Err(e) => {
                p.add(
                    format!("{key}.retention.keep_within"),
                    format!("bad duration {w:?}: {e}"),
                );
                None
            }
        });
    let long_term = s.long_term.unwrap_or(false);
    let mut retention = RetentionPolicy {
        keep_last: if overridden { r.keep_last } else { None },
        keep_hourly: pick(r.keep_hourly, class.keep[0]),
        keep_daily: pick(r.keep_daily, class.keep[1]),
        keep_weekly: pick(r.keep_weekly, class.keep[2]),
        keep_monthly: pick(r.keep_monthly, class.keep[3]),
        keep_yearly: if overridden { r.keep_yearly } else { None },
        keep_within,
        keep_tags: r.keep_tags.clone(),
        time_zone,
    };
    if long_term {
        retention.keep_monthly = Some(retention.keep_monthly.unwrap_or(0).max(12));
    }
    if retention.is_empty() {
        p.add(
            format!("{key}.retention"),
            "no retention rule: every snapshot would be forgotten",
        );
    }

    let restore_window = s
        .restore_window
        .as_deref()
        .or(class.restore_window)
        .and_then(|w| match w.parse::<HumanDuration>() {
            Ok(d) => Some(d),
            Err(e) => {
                p.add(
                    format!("{key}.restore_window"),
                    format!("bad duration {w:?}: {e}"),
                );
                None
            }
        });
    if let (Some(w), Some(k)) = (restore_window, retention.keep_within) {
        if w.as_secs() > k.as_secs()
            && retention.keep_daily.is_none()
            && retention.keep_monthly.is_none()
        {
            p.add(
                format!("{key}.restore_window"),
                format!("the restore window ({w}) is longer than what retention keeps (keep_within {k}): partners would be promised snapshots that are gone"),
            );
        }
    }
    let interval = schedule
        .as_ref()
        .and_then(|sch| sch.interval(Timestamp::now()))
        .unwrap_or(Duration::from_secs(86_400));
    let rpo = match &s.rpo {
        Some(r) => p.duration(&format!("{key}.rpo"), Some(r), "26h"),
        None => interval + Duration::from_secs(2 * 3600),
    };
    let rto = s
        .rto
        .as_deref()
        .or(class.rto)
        .map(|r| p.duration(&format!("{key}.rto"), Some(r), "1d"));
    let compression = s.compression.unwrap_or(3);
    if !(1..=19).contains(&compression) {
        p.add(
            format!("{key}.compression"),
            format!("zstd level {compression}: 1 to 19"),
        );
    }
    let timeout = p.duration(&format!("{key}.timeout"), s.timeout.as_deref(), "6h");
    let backoff = p.duration(
        &format!("{key}.retry_backoff"),
        s.retry_backoff.as_deref(),
        "1min",
    );
    let jitter = match &s.jitter {
        Some(j) => p.duration(&format!("{key}.jitter"), Some(j), "5min"),
        None => default_jitter,
    };
    let prune_grace = p.duration(
        &format!("{key}.prune_grace"),
        s.prune_grace.as_deref(),
        "0s",
    );

    let env: Vec<(String, String)> = s
        .source
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let db = match (&s.source.postgres, &s.source.mysql) {
        (Some(d), None) => Some((crate::source::database::DbKind::Postgres, d)),
        (None, Some(d)) => Some((crate::source::database::DbKind::Mysql, d)),
        // Both: refused below with every other mix of sources.
        _ => None,
    };
    let given = [
        s.source.paths.is_some(),
        s.source.command.is_some(),
        s.source.postgres.is_some(),
        s.source.mysql.is_some(),
        s.source.image.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given > 1 {
        p.add(
            format!("{key}.source"),
            "give only one of `paths`, `command`, `postgres`, `mysql` or `image`",
        );
    }
    let source = match (&s.source.paths, &s.source.command, db) {
        (None, None, None) if s.source.image.is_some() => s.source.image.as_ref().map(|i| {
            if !i.path.is_absolute() {
                p.add(
                    format!("{key}.source.image.path"),
                    format!("{} is not absolute", i.path.display()),
                );
            }
            SourceSpec::Image(crate::source::image::ImageSource {
                path: i.path.clone(),
                format: i.format.clone(),
            })
        }),
        (None, None, Some((kind, d))) => {
            database_source(p, &format!("{key}.source.{}", kind.name()), kind, d)
        }
        (Some(paths), None, None) => {
            if paths.is_empty() {
                p.add(format!("{key}.source.paths"), "no paths");
            }
            for path in paths {
                if !path.is_absolute() {
                    p.add(
                        format!("{key}.source.paths"),
                        format!("{} is not absolute", path.display()),
                    );
                }
            }
            let larger_than =
                s.source.exclude_larger_than.as_deref().and_then(
                    |t| match crate::util::parse_size(t) {
                        Ok(n) => Some(n),
                        Err(e) => {
                            p.add(format!("{key}.source.exclude_larger_than"), e);
                            None
                        }
                    },
                );
            let exclude = crate::source::ExcludeOptions {
                patterns: s.source.exclude.clone(),
                ipatterns: s.source.iexclude.clone(),
                if_present: s.source.exclude_if_present.clone(),
                caches: s.source.exclude_caches,
                larger_than,
                one_file_system: s.source.one_file_system,
            };
            if let Err(e) = crate::source::Excludes::from_options(&exclude) {
                p.add(format!("{key}.source"), e.to_string());
            }
            Some(SourceSpec::Paths {
                paths: paths.clone(),
                exclude,
            })
        }
        (None, Some(cmd), None) => command_spec(p, &format!("{key}.source.command"), cmd, &env)
            .map(|command| SourceSpec::Command {
                command,
                name: s
                    .source
                    .stream_name
                    .clone()
                    .unwrap_or_else(|| format!("{}.dump", s.name)),
            }),
        _ => {
            p.add(
                format!("{key}.source"),
                "give one of `paths`, `command`, `postgres`, `mysql` or `image`",
            );
            None
        }
    };
    let hook_timeout = s
        .hooks
        .as_ref()
        .map(|h| {
            p.duration(
                &format!("{key}.hooks.timeout"),
                h.timeout.as_deref(),
                "5min",
            )
        })
        .unwrap_or(Duration::from_secs(300));
    let hook = |p: &mut Problems, which: &str, argv: Option<&Vec<String>>| {
        argv.and_then(|a| command_spec(p, &format!("{key}.hooks.{which}"), a, &[]))
            .map(|command| Hook {
                command,
                timeout: hook_timeout,
            })
    };
    let pre_hook = hook(p, "pre", s.hooks.as_ref().and_then(|h| h.pre.as_ref()));
    let post_hook = hook(p, "post", s.hooks.as_ref().and_then(|h| h.post.as_ref()));
    let drill_schedule = s
        .drill
        .as_ref()
        .and_then(|d| d.schedule.clone())
        .or(class.drill.map(str::to_string))
        .filter(|d| d != "never");
    let drill = match drill_schedule {
        Some(expr) => {
            let sch = p.schedule(&format!("{key}.drill.schedule"), &expr, &tz);
            let check_timeout = p.duration(
                &format!("{key}.drill.check_timeout"),
                s.drill.as_ref().and_then(|d| d.check_timeout.as_deref()),
                "1h",
            );
            let command = s
                .drill
                .as_ref()
                .and_then(|d| d.check_command.as_ref())
                .and_then(|a| command_spec(p, &format!("{key}.drill.check_command"), a, &[]))
                .map(|command| Hook {
                    command,
                    timeout: check_timeout,
                });
            let databases: Vec<String> = match &source {
                Some(SourceSpec::Database(d)) if !d.instance => d.databases.clone(),
                _ => Vec::new(),
            };
            let raw_sql = s.drill.as_ref().map_or(&[][..], |d| &d.check_sql[..]);
            if !raw_sql.is_empty() && databases.is_empty() {
                p.add(
                    format!("{key}.drill.check_sql"),
                    "only a `postgres` or `mysql` source of named databases has check queries",
                );
            }
            let sql = raw_sql
                .iter()
                .enumerate()
                .filter_map(|(i, c)| {
                    let (database, query, min) = match c {
                        schema::RawSqlCheck::Query(q) => (None, q.clone(), 1),
                        schema::RawSqlCheck::Full {
                            database,
                            query,
                            min,
                        } => (database.clone(), query.clone(), min.unwrap_or(1)),
                    };
                    let database = database.or_else(|| databases.first().cloned())?;
                    if !databases.contains(&database) {
                        p.add(
                            format!("{key}.drill.check_sql[{i}]"),
                            format!("database {database:?} is not one the source dumps"),
                        );
                        return None;
                    }
                    Some(SqlCheck {
                        database,
                        query,
                        min,
                    })
                })
                .collect();
            let checks = DrillChecks {
                command,
                sql,
                run_as: s
                    .drill
                    .as_ref()
                    .and_then(|d| d.run_as.clone())
                    .unwrap_or_else(|| "nobody".into()),
            };
            sch.map(|sch| (sch, checks))
        }
        None => None,
    };

    Some(Service {
        tenant: s.tenant.clone(),
        name: s.name.clone(),
        class: class.name.to_string(),
        zone: s.zone.clone(),
        target: s.target.clone(),
        standby,
        source: source?,
        pre_hook,
        post_hook,
        schedule: schedule?,
        retention,
        retention_schedule: retention_schedule?,
        prune_grace,
        check: (check_schedule?, subset),
        drill,
        restore_window,
        rpo,
        rto,
        long_term,
        compression,
        timeout,
        retries: s.retries.unwrap_or(3),
        backoff,
        jitter,
    })
    .filter(|_| ok_target)
}
