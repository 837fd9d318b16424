//! The daemon and its host: `daemon`, `config check`, `status`,
//! `catalog rebuild`.

use std::path::PathBuf;

use clap::Subcommand;
use custos::{Error, Result};

use super::{parse_time, print_json, Global};

#[derive(Subcommand)]
pub(crate) enum ConfigAction {
    /// Validate a config; print each service's resolved policy and next run times
    Check {
        /// Config file
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
        /// Compute next runs from this time (RFC 3339) instead of now
        #[arg(long)]
        now: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum CatalogAction {
    /// Rebuild the catalog from the repositories (the daemon must be stopped)
    Rebuild {
        /// Config file
        #[arg(long, short = 'c', env = "CUSTOS_CONFIG")]
        config: PathBuf,
    },
}

/// `custos daemon`: binds the configured addresses, turns SIGHUP into a
/// reload and SIGTERM/SIGINT into a stop, tells systemd (`sd_notify`) what
/// the daemon does and pings its watchdog, and runs the daemon until it
/// stops.
pub(crate) async fn daemon(config: PathBuf) -> Result<u8> {
    use custos::daemon::{Control, Listeners, Notice};
    use sd_notify::NotifyState;
    use tokio::signal::unix::{signal, SignalKind};

    let path = config.clone();
    let loader: custos::daemon::Loader =
        Box::new(move || custos::daemon::Setup::from_config(&custos::config::Config::load(&path)?));
    let setup = loader()?;
    let listeners = Listeners::bind(&setup).await?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::io("SIGHUP handler", e))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM handler", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::io("SIGINT handler", e))?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let watchdog = sd_notify::watchdog_enabled();
    let signals = tokio::spawn(async move {
        let mut ping =
            tokio::time::interval(watchdog.map_or(std::time::Duration::from_secs(3600), |d| d / 2));
        loop {
            let control = tokio::select! {
                _ = hup.recv() => Control::Reload,
                _ = term.recv() => Control::Stop,
                _ = int.recv() => Control::Stop,
                _ = ping.tick() => {
                    if watchdog.is_some() {
                        notify(&[NotifyState::Watchdog]);
                    }
                    continue;
                }
            };
            if tx.send(control).await.is_err() || control == Control::Stop {
                return;
            }
        }
    });
    let notice = |n: Notice<'_>| match n {
        Notice::Ready(status) => notify(&[NotifyState::Ready, NotifyState::Status(status)]),
        Notice::Reloading => notify(&[NotifyState::Reloading]),
        Notice::Stopping => notify(&[NotifyState::Stopping]),
    };
    let r = custos::daemon::run(setup, loader, listeners, rx, notice).await;
    signals.abort();
    r.map(|()| 0)
}

/// Tells systemd; outside systemd (no `NOTIFY_SOCKET`) this does nothing.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// `custos config check`: validate, then print every resolved service.
pub(crate) fn config_check(g: &Global, config: PathBuf, now: Option<String>) -> Result<u8> {
    let cfg = custos::config::Config::load(&config)?;
    // Token secrets must be readable too.
    custos::daemon::Setup::from_config(&cfg)?;
    for w in custos::erasure::config_warnings(&cfg) {
        eprintln!("warning: {w}");
    }
    let now = now
        .as_deref()
        .map(|t| parse_time(t, "--now"))
        .transpose()?
        .unwrap_or_else(jiff::Timestamp::now);
    let report = cfg.report(now, 3);
    if g.json {
        print_json(&report)?;
    } else if !g.quiet {
        println!(
            "{}: valid; {} targets, {} tenants, {} services",
            config.display(),
            cfg.targets.len(),
            cfg.tenants.len(),
            cfg.services.len()
        );
        for r in &report {
            println!("\n{}/{} ({})", r.tenant, r.service, r.class);
            println!("  source:          {}", r.source);
            println!(
                "  target:          {} (workload zone {}) → {}",
                r.target, r.zone, r.repository
            );
            if let Some(s) = &r.standby {
                println!("  standby:         {s}");
            }
            println!("  schedule:        {}", r.schedule);
            println!("  next runs:       {}", r.next_runs.join(", "));
            println!(
                "  retention:       {} (runs {})",
                r.retention, r.retention_schedule
            );
            println!(
                "  restore window:  {}",
                r.restore_window.as_deref().unwrap_or("every kept snapshot")
            );
            println!(
                "  RPO:             {}{}",
                r.rpo,
                r.rto
                    .as_ref()
                    .map(|t| format!(", RTO {t}"))
                    .unwrap_or_default()
            );
            println!("  check:           {}", r.check);
            if let Some(d) = &r.drill {
                println!("  DR drill:        {d}");
            }
            println!(
                "  compression:     zstd {}{}",
                r.compression,
                if r.long_term { ", long_term" } else { "" }
            );
        }
    }
    Ok(0)
}

/// `custos status --accept-alarms TENANT`.
pub(crate) async fn accept_alarms(
    g: &Global,
    config: PathBuf,
    token: Option<String>,
    tenant: String,
) -> Result<u8> {
    let cfg = custos::config::Config::load(&config)?;
    let accepted = custos::daemon::status::accept_alarms(&cfg, token.as_deref(), &tenant).await?;
    if g.json {
        print_json(&accepted)?;
    } else {
        for a in &accepted {
            println!("accepted: {} ({}): {}", a.tenant, a.repository, a.text);
        }
        println!("{} alarms of {tenant} accepted", accepted.len());
    }
    Ok(0)
}

/// `custos status`: exit 1 while anything needs an operator.
pub(crate) async fn status(g: &Global, config: PathBuf, token: Option<String>) -> Result<u8> {
    let cfg = custos::config::Config::load(&config)?;
    let report = custos::daemon::status::report(&cfg, token.as_deref()).await?;
    if g.json {
        print_json(&report)?;
    } else {
        print!(
            "{}",
            custos::daemon::status::table(&report.overview.services)
        );
        print!(
            "{}",
            custos::daemon::status::erasure_lines(&report.overview.erasures)
        );
        print!("{}", custos::daemon::status::chain_line(&report.audit));
        print!(
            "{}",
            custos::daemon::status::alarm_lines(&report.overview.alarms)
        );
    }
    Ok(if report.needs_an_operator(jiff::Timestamp::now()) {
        1
    } else {
        0
    })
}

/// `custos catalog rebuild`.
pub(crate) async fn catalog(g: &Global, action: CatalogAction) -> Result<u8> {
    let CatalogAction::Rebuild { config } = action;
    let cfg = custos::config::Config::load(&config)?;
    let done: custos::daemon::status::Rebuilt =
        match custos::daemon::local::LocalClient::connect(&cfg.state_dir).await {
            Some(l) => {
                let v = custos::daemon::status::Via::Local(l);
                custos::daemon::status::call_json(
                    &cfg,
                    &v,
                    "/v1/catalog/rebuild",
                    Some(serde_json::json!({})),
                )
                .await?
            }
            None => custos::daemon::status::rebuild(&cfg).await?,
        };
    if g.json {
        print_json(&done)?;
    } else {
        for p in &done.problems {
            eprintln!("warning: {p}");
        }
        println!(
            "catalog rebuilt: {} services, {} snapshots",
            done.services, done.snapshots
        );
    }
    Ok(0)
}
