//! `custos copy`: snapshots into another repository (the standby target).

use std::path::PathBuf;

use clap::Args;
use custos::commands::copy;
use custos::crypto::keyslot::KeySource;
use custos::human_bytes;
use custos::repository::{InitOptions, Repository};
use custos::{Error, Result};

use super::{cache_root, kdf_params, open, print_json, Global, SnapshotFilter};

#[derive(Args)]
pub(crate) struct CopyArgs {
    /// Destination repository URL
    #[arg(long, env = "CUSTOS_TO_REPOSITORY")]
    pub(crate) to: String,
    /// Destination passphrase file (or CUSTOS_TO_PASSWORD)
    #[arg(long, env = "CUSTOS_TO_PASSWORD_FILE")]
    pub(crate) to_password_file: Option<PathBuf>,
    /// Destination key file
    #[arg(long, env = "CUSTOS_TO_KEY_FILE")]
    pub(crate) to_key_file: Option<PathBuf>,
    /// Create the destination if it does not exist (same chunker and pack sizes
    /// as the source, its own master key)
    #[arg(long)]
    pub(crate) to_init: bool,
    /// Snapshots to copy (IDs, prefixes, `latest`); all by default
    pub(crate) snapshots: Vec<String>,
    #[command(flatten)]
    pub(crate) filter: SnapshotFilter,
    /// Say what would be copied; write nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `custos copy`: exit 1 when a snapshot could not be copied.
pub(crate) async fn run(g: &Global, a: CopyArgs) -> Result<u8> {
    let src = open(g).await?.load_index().await?;
    let secret = KeySource::given(
        a.to_key_file.as_deref(),
        a.to_password_file.as_deref(),
        "CUSTOS_TO_PASSWORD",
    )
    .ok_or_else(|| {
        Error::Usage(
            "no key for the destination: --to-password-file, --to-key-file or CUSTOS_TO_PASSWORD"
                .into(),
        )
    })?
    .load()?;
    let dst = if a.to_init {
        let opts = InitOptions {
            chunker: src.config().chunker,
            pack_size: src.config().pack_size,
            kdf: kdf_params(),
        };
        let (r, created) =
            Repository::open_or_init(&a.to, &secret, &opts, cache_root(g), &super::limits(g))
                .await?;
        if created {
            eprintln!("created repository {} at {}", r.config().id.short(), a.to);
        }
        r
    } else {
        Repository::open(super::backend(g, &a.to, false)?, &secret, cache_root(g)).await?
    }
    .load_index()
    .await?;
    let r = copy::copy(
        &src,
        &dst,
        &copy::CopyOptions {
            snapshots: a.snapshots,
            service: a.filter.service,
            tenant: a.filter.tenant,
            tags: a.filter.tag,
            dry_run: a.dry_run,
            compression_level: 3,
        },
    )
    .await?;
    if g.json {
        print_json(&r)?;
    } else {
        for s in &r.snapshots {
            match (&s.copy, &s.error) {
                (Some(c), _) => println!(
                    "copied snapshot {} → {}: {} blobs, {} uploaded",
                    s.source.short(),
                    c.short(),
                    s.blobs_added,
                    human_bytes(s.bytes_added)
                ),
                (None, Some(e)) => println!("snapshot {} not copied: {e}", s.source.short()),
                (None, None) => println!("snapshot {}: {}", s.source.short(), s.outcome),
            }
        }
        println!(
            "{} copied, {} already present, {} failed; {} uploaded",
            r.copied,
            r.present,
            r.failed,
            human_bytes(r.bytes_added)
        );
    }
    Ok(if r.failed > 0 { 1 } else { 0 })
}
