//! The `custos` binary: parses arguments, sets up logging, calls the library,
//! prints results, and maps errors to the exit codes of CONTRACT.md.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

mod cli;

use cli::{Cli, Command, Global};

/// Large buffers (packs, ranges, chunks) are allocated and freed over and
/// over. glibc raises its mmap threshold after the first large free, after
/// which such buffers come from the heap and fragment it: peak RSS grew with
/// the work done, not with what was in flight. A fixed threshold keeps them
/// mmapped and gives them back to the system when freed.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    // Whatever custos creates (repositories on local disk, caches, state,
    // audit log, certificates) is private to its user, whatever the umask.
    // SAFETY: umask only changes this process's file creation mask.
    unsafe {
        libc::umask(0o077);
    }
    let cli = Cli::parse();
    init_tracing(&cli.global);
    take_secret_variables(&cli);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if matches!(cli.command, Command::Daemon { .. }) {
        // Jobs yield to the API, which serves from a runtime of its own
        // started by this (main) thread, at the process's priority.
        builder.on_thread_start(custos::daemon::lower_job_thread_priority);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// Takes every secret variable custos will read out of the environment
/// before any other thread starts (see `custos::secrets`): the command
/// line's passphrases and token, and for the daemon every tenant's
/// `password_env` and token `secret_env` its config names.
fn take_secret_variables(cli: &Cli) {
    custos::secrets::harvest(["CUSTOS_PASSWORD", "CUSTOS_TO_PASSWORD", "CUSTOS_TOKEN"]);
    if let Command::Daemon { config } = &cli.command {
        if let Ok(cfg) = custos::config::Config::load(config) {
            custos::secrets::harvest(cfg.secret_variables().iter().map(String::as_str));
        }
    }
}

fn init_tracing(g: &Global) {
    use tracing_subscriber::EnvFilter;
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("custos={default},warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("CUSTOS_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .with_target(false)
            .init();
    }
}
