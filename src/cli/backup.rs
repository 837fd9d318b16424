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
    /// Also back up the paths listed in this file, one a line (`#` starts a
    /// comment; `-` reads stdin)
    #[arg(long, value_name = "FILE")]
    pub(crate) files_from: Vec<PathBuf>,
    /// Read exclude globs from this file, one a line (repeatable)
    #[arg(long, value_name = "FILE")]
    pub(crate) exclude_file: Vec<PathBuf>,
    /// Exclude glob, ignoring case (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub(crate) iexclude: Vec<String>,
    /// Leave out cache directories (holding a CACHEDIR.TAG with the standard
    /// signature)
    #[arg(long)]
    pub(crate) exclude_caches: bool,
    /// Leave out a directory holding a file of this name, or one starting
    /// with HEADER (repeatable)
    #[arg(long, value_name = "NAME[:HEADER]")]
    pub(crate) exclude_if_present: Vec<String>,
    /// Leave out files larger than this (e.g. 512M, 2G; bytes without a unit)
    #[arg(long, value_name = "SIZE")]
    pub(crate) exclude_larger_than: Option<String>,
    /// Stay on the file systems of the given paths: other mount points are
    /// kept as empty directories
    #[arg(short = 'x', long)]
    pub(crate) one_file_system: bool,
    /// Record this host name in the snapshot (default: this host's)
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// Read and count everything, say what would be added, store nothing
    #[arg(short = 'n', long)]
    pub(crate) dry_run: bool,
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
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<String>,
    /// Back up stdin as one file
    #[arg(long)]
    pub(crate) stdin: bool,
    /// Back up a VM disk image (raw, qcow2, vmdk, ...) as the guest sees
    /// it: one file `<name>.raw`, unallocated ranges not read
    #[arg(long, value_name = "FILE", conflicts_with_all = ["stdin", "paths"])]
    pub(crate) image: Option<PathBuf>,
    /// The image's format (default: asked of qemu-img)
    #[arg(long, value_name = "FORMAT", requires = "image")]
    pub(crate) image_format: Option<String>,
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

/// The non-empty, non-comment lines of `path` (`-`: stdin).
fn lines_of(path: &std::path::Path, what: &str) -> Result<Vec<String>> {
    let text = if path == std::path::Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::io(format!("cannot read {what} from stdin"), e))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("cannot read {what} {}: {e}", path.display())))?
    };
    Ok(text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// `custos backup`: one snapshot; exit 1 when entries could not be read.
pub(crate) async fn run(g: &Global, mut a: BackupArgs) -> Result<u8> {
    for f in &a.files_from {
        a.paths
            .extend(lines_of(f, "--files-from")?.into_iter().map(PathBuf::from));
    }
    if !a.files_from.is_empty() && a.paths.is_empty() {
        return Err(Error::Usage(
            "--files-from named no path: nothing to back up".into(),
        ));
    }
    for f in &a.exclude_file {
        a.exclude.extend(lines_of(f, "--exclude-file")?);
    }
    let exclude = custos::ExcludeOptions {
        patterns: Vec::new(),
        ipatterns: a.iexclude.clone(),
        if_present: a.exclude_if_present.clone(),
        caches: a.exclude_caches,
        larger_than: a
            .exclude_larger_than
            .as_deref()
            .map(|s| {
                custos::parse_size(s)
                    .map_err(|e| Error::Usage(format!("--exclude-larger-than {e}")))
            })
            .transpose()?,
        one_file_system: a.one_file_system,
    };
    let repo = if a.dry_run {
        // Writes dropped, and a throwaway index cache: nothing of the run
        // is believed stored afterwards.
        let scratch = tempfile::tempdir()
            .map_err(|e| Error::io("cannot make a scratch cache for the dry run", e))?;
        let backend = super::backend(g, &super::repo_url(g)?, false)?.dry_run();
        let secret = super::read_secret(g, false)?;
        let repo = custos::Repository::open(backend, &secret, Some(scratch.path().to_path_buf()))
            .await?
            .load_index()
            .await?;
        (repo, Some(scratch))
    } else {
        (open(g).await?.load_index().await?, None)
    };
    let (repo, _scratch) = repo;
    let stream = if let Some(path) = &a.image {
        let src = custos::image::ImageSource {
            path: path.clone(),
            format: a.image_format.clone(),
        };
        let name = src.stream_name();
        let reader = tokio::task::spawn_blocking(move || custos::image::ImageStream::open(&src))
            .await
            .map_err(|e| Error::Internal(format!("opening the image stopped: {e}")))??;
        Some(backup::StreamSource {
            name,
            reader: Box::new(reader) as Box<dyn Read + Send + Sync>,
        })
    } else if a.stdin {
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
        exclude,
        host: a.host,
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
    if a.dry_run {
        if g.json {
            let mut v = serde_json::to_value(r.report())
                .map_err(|e| Error::Internal(format!("cannot encode JSON: {e}")))?;
            if let Some(o) = v.as_object_mut() {
                o.remove("id");
                o.remove("short_id");
                o.insert("dry_run".into(), serde_json::Value::Bool(true));
            }
            print_json(&v)?;
        } else if !g.quiet {
            eprintln!(
                "dry run: {} files ({} unchanged), {} read, {} would be added ({} stored); nothing was written",
                s.files,
                s.files_unchanged,
                human_bytes(s.bytes_read),
                human_bytes(s.bytes_added_raw),
                human_bytes(s.bytes_added),
            );
        }
        return Ok(if s.errors.is_empty() { 0 } else { 1 });
    }
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
