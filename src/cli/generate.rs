//! `custos generate`: shell completions and manual pages, made from the
//! same clap definitions as the command line itself (so they never drift),
//! and the daemon API's OpenAPI description, made from its routes.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use custos::{Error, Result};

#[derive(Subcommand)]
pub(crate) enum GenerateAction {
    /// Print the completion script for SHELL on stdout
    #[command(
        after_long_help = "Examples:\n  custos generate completions bash > /etc/bash_completion.d/custos\n  custos generate completions zsh > \"${fpath[1]}/_custos\""
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (custos.1 and one per command) into DIR
    #[command(after_long_help = "Example:\n  custos generate man /usr/local/share/man/man1")]
    Man {
        /// Directory to write the pages into (created if missing)
        dir: PathBuf,
    },
    /// Print the daemon API's OpenAPI 3.1 description (JSON) on stdout
    #[command(after_long_help = "Example:\n  custos generate openapi > custos-openapi.json")]
    Openapi,
}

/// Runs `custos generate …`.
pub(crate) fn run(action: GenerateAction) -> Result<u8> {
    match action {
        GenerateAction::Completions { shell } => {
            let mut cmd = super::command();
            clap_complete::generate(shell, &mut cmd, "custos", &mut std::io::stdout());
            Ok(0)
        }
        GenerateAction::Openapi => {
            println!("{}", custos::daemon::openapi_json());
            Ok(0)
        }
        GenerateAction::Man { dir } => {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io_path("cannot create", &dir, e))?;
            let n = write_pages(&super::command(), &dir, "custos")?;
            eprintln!("{n} manual pages written to {}", dir.display());
            Ok(0)
        }
    }
}

/// Writes `name.1` for `cmd`, then one page per subcommand
/// (`custos-backup.1`, `custos-key-add.1`, ...); returns how many.
fn write_pages(cmd: &clap::Command, dir: &Path, name: &str) -> Result<usize> {
    let path = dir.join(format!("{name}.1"));
    let mut out = Vec::new();
    // The command was built (`super::command`): its display name is the
    // page's title (`custos-backup`).
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .map_err(|e| Error::io_path("cannot render", &path, e))?;
    std::fs::write(&path, out).map_err(|e| Error::io_path("cannot write", &path, e))?;
    let mut n = 1;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        n += write_pages(sub, dir, &format!("{name}-{}", sub.get_name()))?;
    }
    Ok(n)
}
