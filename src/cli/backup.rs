//! `custos backup`: paths or stdin into a new snapshot.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use custos::commands::backup;
use custos::human_bytes;
use custos::Progress;
use custos::{Error, Result};

use super::{open, parse_time, print_json, Global};

#[derive(Args)]
pub(crate) struct BackupArgs {
    /// Paths to back up
    pub(crate) paths: Vec<PathBuf>,
    /// Service the snapshot belongs to
    #[arg(long)]
    pub(crate) service: Option<String>,
    /// Tenant the snapshot belongs to
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Tag (repeatable)
    #[arg(long)]
    pub(crate) tag: Vec<String>,
    /// Exclude glob (repeatable); without '/' it matches names at any depth
    #[arg(long)]
    pub(crate) exclude: Vec<String>,
    /// Back up stdin as one file
    #[arg(long)]
    pub(crate) stdin: bool,
    /// File name for --stdin
    #[arg(long, default_value = "stdin")]
    pub(crate) stdin_name: String,
    /// Parent snapshot for change detection (default: latest of the same service or paths)
    #[arg(long)]
    pub(crate) parent: Option<String>,
    /// Read every file even if unchanged
    #[arg(long)]
    pub(crate) force: bool,
    /// Record the snapshot at this time (RFC 3339)
    #[arg(long)]
    pub(crate) time: Option<String>,
    /// zstd compression level
    #[arg(long, default_value_t = 3)]
    pub(crate) compression: i32,
}

/// `custos backup`: one snapshot; exit 1 when entries could not be read.
pub(crate) async fn run(g: &Global, a: BackupArgs) -> Result<u8> {
    let repo = open(g).await?.load_index().await?;
    let stream = if a.stdin {
        if !a.paths.is_empty() {
            return Err(Error::Usage("--stdin takes no paths".into()));
        }
        Some(backup::StreamSource {
            name: a.stdin_name.clone(),
            reader: Box::new(std::io::stdin()) as Box<dyn Read + Send + Sync>,
        })
    } else {
        None
    };
    let opts = backup::BackupOptions {
        paths: a.paths,
        stream,
        service: a.service,
        tenant: a.tenant,
        tags: a.tag,
        excludes: a.exclude,
        parent: a.parent,
        force: a.force,
        time: a
            .time
            .as_deref()
            .map(|t| parse_time(t, "--time"))
            .transpose()?,
        compression_level: a.compression,
        workers: 0,
        progress: Progress::new("backup", g.quiet || g.json),
        cancel: None,
    };
    let r = backup::backup(&repo, opts).await?;
    let s = &r.snapshot.summary;
    if g.json {
        print_json(&r.report())?;
    } else {
        println!("{}", r.id);
        if !g.quiet {
            eprintln!(
                    "snapshot {} saved: {} files ({} unchanged), {} read, {} added ({} stored) in {:.1}s",
                    r.id.short(),
                    s.files,
                    s.files_unchanged,
                    human_bytes(s.bytes_read),
                    human_bytes(s.bytes_added_raw),
                    human_bytes(s.bytes_added),
                    s.duration_secs
                );
        }
    }
    if !s.errors.is_empty() {
        eprintln!(
            "error: {} entries could not be read and are missing from snapshot {}:",
            s.errors.len(),
            r.id.short()
        );
        for e in &s.errors {
            eprintln!("  {}: {}", e.path, e.error);
        }
        return Ok(1);
    }
    Ok(0)
}
