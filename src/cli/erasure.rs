//! End of contract and its proofs: `erase`, `certificate`, `audit`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use custos::backend::Backend;
use custos::human_bytes;
use custos::{Error, Result};

use super::{parse_time, print_json, Global};

#[derive(Subcommand)]
pub(crate) enum EraseAction {
    /// Record the notice (erasure may start 21 days later, must end within 30)
    Notice {
        /// Daemon config
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
        /// Tenant
        #[arg(long)]
        tenant: String,
        /// Contract reference (default: the tenant's in the config)
        #[arg(long)]
        contract: Option<String>,
        /// When notice was given (RFC 3339; default now)
        #[arg(long)]
        at: Option<String>,
    },
    /// Show erasure states and deadlines
    Status {
        /// Daemon config
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
    },
    /// Erase (or resume erasing) a tenant's data on every target, then issue
    /// the signed certificate
    Execute {
        /// Daemon config
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
        /// Tenant
        #[arg(long)]
        tenant: String,
        /// Start before the notice period ends (needs --reason; audited and
        /// stated in the certificate)
        #[arg(long, requires = "reason")]
        now: bool,
        /// Why erasure starts early
        #[arg(long)]
        reason: Option<String>,
        /// Do not ask for confirmation of an early erasure (needed when not
        /// on a terminal)
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum CertificateAction {
    /// Create the operator's Ed25519 signing key (mode 600) and its public
    /// key beside it, with the extension .pub (certificates.key →
    /// certificates.pub)
    Keygen {
        /// Where to write the signing key
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a certificate offline: exit 0 when intact and signed by the key
    Verify {
        /// The certificate (JSON)
        file: PathBuf,
        /// The operator's public key (FILE.pub from keygen)
        #[arg(long)]
        public_key: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum AuditAction {
    /// Check the hash chain; name the first edited, removed or reordered
    /// record; with the config's audit_mirror, compare the log with the
    /// mirror record by record and with its signed checkpoints
    Verify {
        #[command(flatten)]
        log: AuditLogArg,
        /// The operator's public key (certificates.pub) to check the
        /// checkpoints' signatures (default: derived from the config's
        /// certificate_key when readable)
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Show records (for auditors), optionally of one tenant
    Show {
        #[command(flatten)]
        log: AuditLogArg,
        /// Only this tenant's records
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Args)]
pub(crate) struct AuditLogArg {
    /// Daemon config (the log is <state_dir>/audit.log)
    #[arg(
        long,
        short = 'c',
        env = "CUSTOS_CONFIG",
        default_value = "/etc/custos/custos.toml"
    )]
    pub(crate) config: Option<PathBuf>,
    /// The log file itself
    #[arg(long)]
    pub(crate) file: Option<PathBuf>,
}

impl AuditLogArg {
    fn path(&self) -> Result<PathBuf> {
        match (&self.file, &self.config) {
            (Some(f), _) => Ok(f.clone()),
            (None, Some(c)) => Ok(custos::config::Config::load(c)?.state_dir.join("audit.log")),
            (None, None) => Err(Error::Usage("give --config or --file".into())),
        }
    }
}

/// Asks on the terminal before an early erasure; refuses without a
/// terminal unless `--yes`.
fn confirm_early(tenant: &str, yes: bool) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "erasing {tenant} before the end of its notice period needs confirmation: add --yes (not on a terminal)"
        )));
    }
    eprint!(
        "Erase every backup of tenant {tenant} now, before its notice period ends? This cannot be undone. Type the tenant's ID to confirm: "
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io("cannot read the confirmation", e))?;
    if line.trim() == tenant {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "not confirmed: {tenant} was not erased"
        )))
    }
}

/// `custos erase …`: through the running daemon's local socket on its
/// host, else on the catalog directly (the daemon stopped).
pub(crate) async fn erase(g: &Global, action: EraseAction) -> Result<u8> {
    use custos::daemon::status::{call_json, Via};
    use custos::erasure;
    let config = match &action {
        EraseAction::Notice { config, .. }
        | EraseAction::Status { config }
        | EraseAction::Execute { config, .. } => config,
    };
    let cfg = custos::config::Config::load(config)?;
    if let EraseAction::Execute {
        tenant,
        now: true,
        yes,
        ..
    } = &action
    {
        confirm_early(tenant, *yes)?;
    }
    let daemon = custos::daemon::local::LocalClient::connect(&cfg.state_dir)
        .await
        .map(Via::Local);
    // The daemon stopped: this process works on the catalog itself.
    let direct = || -> Result<(custos::Catalog, custos::audit::AuditLog, String)> {
        let catalog = custos::Catalog::open(&cfg.state_dir).map_err(|e| {
            Error::Locked(format!(
                "cannot open the catalog ({e}): the daemon holds it and its local socket does not answer; run this as the daemon's user or root"
            ))
        })?;
        let audit = custos::audit::AuditLog::open(&cfg.state_dir.join("audit.log"))?;
        let actor = format!("operator:{}@{}", custos::username(), custos::hostname());
        Ok((catalog, audit, actor))
    };
    match action {
        EraseAction::Notice {
            tenant,
            contract,
            at,
            ..
        } => {
            let at = at
                .as_deref()
                .map(|t| parse_time(t, "--at"))
                .transpose()?
                .unwrap_or_else(jiff::Timestamp::now);
            let r: erasure::ErasureRecord = match &daemon {
                Some(v) => {
                    call_json(
                        &cfg,
                        v,
                        &format!("/v1/erasures/{tenant}/notice"),
                        Some(serde_json::json!({"contract": contract, "at": at.to_string()})),
                    )
                    .await?
                }
                None => {
                    let (catalog, audit, actor) = direct()?;
                    erasure::give_notice(
                        &cfg,
                        &catalog,
                        &audit,
                        &tenant,
                        contract.as_deref(),
                        &actor,
                        at,
                    )?
                }
            };
            if g.json {
                print_json(&r)?;
            } else {
                println!(
                    "notice recorded for {tenant}: erasure from {} and by {} at the latest",
                    r.due, r.deadline
                );
            }
            Ok(0)
        }
        EraseAction::Status { .. } => {
            let list: Vec<erasure::ErasureRecord> = match &daemon {
                Some(v) => call_json(&cfg, v, "/v1/erasures", None).await?,
                None => {
                    let (catalog, _, _) = direct()?;
                    erasure::status_list(&cfg, &catalog)?
                }
            };
            let now = jiff::Timestamp::now();
            if g.json {
                print_json(&list)?;
            } else {
                for r in &list {
                    if r.state == erasure::ErasureState::Erased {
                        println!(
                            "{:<20} {:<12} completed {}  certificate {}",
                            r.tenant,
                            erasure::state_name(r.state),
                            r.completed.as_deref().unwrap_or("-"),
                            r.certificate.as_deref().unwrap_or("-")
                        );
                        continue;
                    }
                    println!(
                        "{:<20} {:<12} notice {}  due {}  deadline {}{}",
                        r.tenant,
                        erasure::state_name(r.state),
                        r.notice_given,
                        r.due,
                        r.deadline,
                        if r.overdue(now) { "  OVERDUE" } else { "" }
                    );
                }
            }
            Ok(if list.iter().any(|r| r.overdue(now)) {
                1
            } else {
                0
            })
        }
        EraseAction::Execute {
            tenant,
            now,
            reason,
            ..
        } => {
            let early = if now { reason.as_deref() } else { None };
            let r: erasure::ErasureRecord = match &daemon {
                Some(v) => {
                    call_json(
                        &cfg,
                        v,
                        &format!("/v1/erasures/{tenant}/execute"),
                        Some(serde_json::json!({"now": now, "reason": early})),
                    )
                    .await?
                }
                None => {
                    let (catalog, audit, actor) = direct()?;
                    erasure::execute(
                        &cfg,
                        &catalog,
                        &audit,
                        &tenant,
                        &actor,
                        early,
                        jiff::Timestamp::now(),
                    )
                    .await?
                }
            };
            if g.json {
                print_json(&r)?;
            } else {
                for (name, t) in &r.targets {
                    println!(
                        "{name}: {} objects, {} deleted; {} key slots destroyed; verified empty{}",
                        t.objects,
                        human_bytes(t.bytes),
                        t.keys_destroyed.len(),
                        t.retention
                            .as_ref()
                            .filter(|r| r.keeps_versions)
                            .map(|r| format!(
                                " (versioning {}: every version deleted)",
                                r.versioning
                            ))
                            .unwrap_or_default()
                    );
                }
                println!(
                    "{tenant} erased; certificate {}",
                    r.certificate.as_deref().unwrap_or("-")
                );
            }
            Ok(0)
        }
    }
}

/// `custos certificate keygen`.
pub(crate) fn keygen(out: PathBuf) -> Result<u8> {
    let public = custos::erasure::certificate::keygen(&out)?;
    println!(
        "signing key {} created; public key {} in {}",
        out.display(),
        hex::encode(public.to_bytes()),
        custos::erasure::certificate::public_key_path(&out).display()
    );
    Ok(0)
}

/// `custos certificate verify`: exit 1 when the certificate is not valid.
pub(crate) fn verify_certificate(g: &Global, file: PathBuf, public_key: PathBuf) -> Result<u8> {
    let key = custos::erasure::certificate::read_public_key(&public_key)?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
    match custos::erasure::certificate::verify(&text, &key) {
        Ok(c) => {
            if g.json {
                print_json(&c)?;
            } else {
                println!(
                    "certificate valid: tenant {} erased {} on {} targets, signed by {}",
                    c.certificate.tenant,
                    c.certificate.erasure_completed,
                    c.certificate.targets.len(),
                    c.public_key
                );
            }
            Ok(0)
        }
        Err(e) => {
            let message = format!("certificate {} is not valid: {e}", file.display());
            if g.json {
                super::print_json_error("integrity", &message, None);
            }
            eprintln!("error: {message}");
            Ok(1)
        }
    }
}

/// `custos audit verify`: exit 1 when the chain or its mirror does not hold.
pub(crate) async fn audit_verify(
    g: &Global,
    log: AuditLogArg,
    public_key: Option<PathBuf>,
) -> Result<u8> {
    let path = log.path()?;
    match custos::audit::verify(&path) {
        Ok((n, head)) => {
            // The chain holds; does it still match what was mirrored?
            let cfg = match (&log.file, &log.config) {
                (None, Some(c)) => Some(custos::config::Config::load(c)?),
                _ => None,
            };
            let mirror = match cfg.as_ref().and_then(|c| c.audit_mirror.clone()) {
                Some(url) => {
                    let trusted = match &public_key {
                        Some(p) => Some(custos::erasure::certificate::read_public_key(p)?),
                        None => cfg
                            .as_ref()
                            .and_then(|c| c.certificate_key.as_deref())
                            .and_then(custos::audit::checkpoint_key)
                            .map(|k| k.verifying_key()),
                    };
                    let b = Backend::open(&url, false)?;
                    let check = custos::audit::check_mirror(&path, &b, trusted.as_ref()).await?;
                    Some(custos::audit::MirrorReport { url, check })
                }
                None => None,
            };
            let report = custos::audit::VerifyReport::new(n, head, mirror);
            if g.json {
                print_json(&report)?;
            } else {
                println!(
                    "{}: {} records, chain intact, head {}",
                    path.display(),
                    report.records,
                    report.head
                );
                if let Some(m) = &report.mirror {
                    println!(
                        "mirror {}: {} records, {} checkpoints ({} signatures verified)",
                        m.url, m.check.mirrored, m.check.checkpoints, m.check.checkpoints_verified
                    );
                }
            }
            match report.mirror.filter(|_| !report.ok) {
                None => Ok(0),
                Some(m) => {
                    eprintln!(
                        "error: the audit log does not match its mirror: {}",
                        m.check.problems.join("; ")
                    );
                    Ok(1)
                }
            }
        }
        Err(custos::audit::VerifyError::Missing) => {
            Err(Error::NotFound(format!("audit log {}", path.display())))
        }
        Err(custos::audit::VerifyError::Io(e)) => Err(e),
        Err(custos::audit::VerifyError::Broken(b)) => {
            if g.json {
                print_json(&custos::audit::BrokenReport::from(&b))?;
            }
            eprintln!("error: {b}");
            Ok(1)
        }
    }
}

/// `custos audit show`.
pub(crate) fn audit_show(g: &Global, log: AuditLogArg, tenant: Option<String>) -> Result<u8> {
    let path = log.path()?;
    let records = custos::audit::read(&path, |r| {
        tenant
            .as_deref()
            .is_none_or(|t| r.tenant.as_deref() == Some(t))
    })?;
    if g.json {
        print_json(&records)?;
    } else {
        for r in &records {
            println!(
                "{:>6}  {}  {:<18} {:<20} {:<12} {}",
                r.seq,
                r.time,
                r.action,
                r.actor,
                r.tenant.as_deref().unwrap_or("-"),
                r.details
            );
        }
    }
    Ok(0)
}
