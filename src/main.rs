//! The `custos` binary: parses arguments, sets up logging, calls the library,
//! prints results, and maps errors to the exit codes of CONTRACT.md.

use std::io::IsTerminal;
use std::process::ExitCode;

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
    let json = wants_json();
    let command = cli::command();
    if let Some(var) = empty_option_variable(&command) {
        let message = format!("{var} is set but empty: unset it or give it a value");
        if json {
            cli::print_json_error("usage", &message, None);
        }
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let parsed = command
        .try_get_matches()
        .and_then(|mut m| <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) if json && e.use_stderr() => {
            let message = e.kind().to_string();
            let detail = e.to_string();
            cli::print_json_error(
                "usage",
                first_line(&detail).unwrap_or(&message),
                Some(&detail),
            );
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    init_tracing(&cli.global, matches!(cli.command, Command::Daemon { .. }));
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
            if json {
                cli::print_json_error("internal", &format!("cannot start the runtime: {e}"), None);
            } else {
                eprintln!("error: cannot start the runtime: {e}");
            }
            return ExitCode::from(1);
        }
    };
    match rt.block_on(cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let mut causes = Vec::new();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                causes.push(s.to_string());
                src = s.source();
            }
            if json {
                let kind = serde_json::to_value(e.kind())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "internal".into());
                let detail = (!causes.is_empty()).then(|| causes.join("; "));
                cli::print_json_error(&kind, &e.to_string(), detail.as_deref());
            }
            // With --json too: the document is on stdout, the sentence for
            // the person watching on stderr.
            eprintln!("error: {e}");
            for c in causes {
                eprintln!("  caused by: {c}");
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// The first variable behind an option (`CUSTOS_PASSWORD_FILE`, ...) that
/// is set to nothing: clap would report it as the option given without a
/// value, naming a flag the user never typed.
fn empty_option_variable(cmd: &clap::Command) -> Option<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            if let Some(v) = a.get_env() {
                out.push(v.to_string_lossy().into_owned());
            }
        }
        for s in cmd.get_subcommands() {
            walk(s, out);
        }
    }
    let mut vars = Vec::new();
    walk(cmd, &mut vars);
    vars.sort();
    vars.dedup();
    vars.into_iter()
        .find(|v| std::env::var_os(v).is_some_and(|x| x.is_empty()))
}

/// Whether `--json` is on the command line (known before parsing, so that
/// a command line clap refuses is answered in JSON too).
fn wants_json() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

fn first_line(s: &str) -> Option<&str> {
    s.lines()
        .map(|l| l.trim().trim_start_matches("error: "))
        .find(|l| !l.is_empty())
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

/// Log lines' time, to the second in UTC (journald adds its own, so lines
/// it captures carry none).
struct Seconds;

impl tracing_subscriber::fmt::time::FormatTime for Seconds {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(
            w,
            "{}",
            jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    }
}

/// Whether stderr is the stream systemd connected to the journal
/// (`JOURNAL_STREAM` names its device and inode; a child that inherited the
/// variable but not the stream does not match).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let stderr = std::io::stderr();
    let fd = std::os::fd::AsFd::as_fd(&stderr);
    fd.try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Logs go to stderr. The daemon logs at `info` (start, every job, reload,
/// stop); other commands at `warn`, since what they do is their output.
/// `-v`/`-q` move the level, `RUST_LOG` overrides it. Text lines carry the
/// time to the second, except under journald, which records its own; `--log-format json`
/// gives one JSON object a line.
fn init_tracing(g: &Global, daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let base = if daemon { 1 } else { 0 };
    let default = match (g.quiet, base + g.verbose) {
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
        .with_writer(std::io::stderr)
        .with_target(false);
    match g.log_format {
        cli::LogFormat::Json => builder.json().with_timer(Seconds).init(),
        cli::LogFormat::Text if daemon && !stderr_is_journal() => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_timer(Seconds)
            .init(),
        cli::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .without_time()
            .init(),
    }
}
