//! Repository and keys: `init`, `key list|add|remove`, `unlock`, `stats`.

use std::path::PathBuf;

use clap::Subcommand;
use custos::commands::stats;
use custos::crypto::keyslot::KeySource;
use custos::human_bytes;
use custos::repository::{lock, InitOptions, Repository};
use custos::{Error, Result};

use super::operator_audit::audit_cli;
use super::{cache_root, kdf_params, open, print_json, read_secret, repo_url, Global};

#[derive(Subcommand)]
pub(crate) enum KeyAction {
    /// List key slots
    List,
    /// Add a key slot for another passphrase (--new-password-file) or key file (--new-key-file)
    Add {
        /// File holding the new passphrase
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        /// New key file (created with 64 random bytes if missing)
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Change the passphrase of the slot in use: a slot for the new
    /// passphrase is added, then the old one removed (restic's `key passwd`)
    #[command(
        after_long_help = "Examples:\n  custos key passwd                              # asks for the new passphrase twice\n  custos key passwd --new-password-file new.pass"
    )]
    Passwd {
        /// File holding the new passphrase (without it, asked on the terminal)
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
    /// Remove a key slot (never the last; the one in use only with --force)
    Remove {
        /// Slot ID or unique prefix
        id: String,
        /// Also remove the slot that the given passphrase or key file opens
        /// (you must hold another slot's secret)
        #[arg(long)]
        force: bool,
    },
}

/// `custos init`: a new repository (refused where one exists).
pub(crate) async fn init(g: &Global, chunk_avg_kib: u32, pack_size_mib: u64) -> Result<u8> {
    let url = repo_url(g)?;
    let backend = super::backend(g, &url, true)?;
    let secret = read_secret(g, true)?;
    let avg = chunk_avg_kib * 1024;
    let opts = InitOptions {
        chunker: custos::repofile::config::ChunkerParams {
            min: avg / 2,
            avg,
            max: avg * 8,
        },
        pack_size: pack_size_mib << 20,
        kdf: kdf_params(),
    };
    let repo = Repository::init(backend, &secret, &opts, cache_root(g)).await?;
    if g.json {
        print_json(&repo.created(&url))?;
    } else {
        println!("created repository {} at {url}", repo.config().id.short());
    }
    Ok(0)
}

/// `custos key …`: list, add and remove key slots.
pub(crate) async fn key(g: &Global, action: KeyAction) -> Result<u8> {
    let repo = open(g).await?;
    match action {
        KeyAction::List => {
            let slots = repo.key_slot_infos().await?;
            if g.json {
                print_json(&slots)?;
            } else {
                for s in slots {
                    println!(
                        "{} {}  {:<10}  {}  {}@{}",
                        if s.current { "*" } else { " " },
                        s.id.short(),
                        s.kind,
                        s.created,
                        s.username,
                        s.hostname
                    );
                }
                println!("(* the slot your passphrase or key file opens)");
            }
        }
        KeyAction::Add {
            new_password_file,
            new_key_file,
        } => {
            // The same checks as every other secret: no empty
            // passphrase, key files of at least 32 bytes.
            let source = match (new_password_file, new_key_file) {
                (Some(p), None) => KeySource::PasswordFile(p),
                (None, Some(k)) => KeySource::KeyFile(k),
                _ => {
                    return Err(Error::Usage(
                        "give exactly one of --new-password-file or --new-key-file".into(),
                    ))
                }
            };
            let (secret, _) = source.load_or_create()?;
            let id = repo.add_key(&secret, kdf_params()).await?;
            audit_cli(
                "key.added",
                serde_json::json!({"repository": repo_url(g)?, "slot": id.to_hex()}),
            )?;
            super::report(
                g,
                serde_json::json!({"added": id.to_hex()}),
                &format!("added key slot {}", id.short()),
            )?;
        }
        KeyAction::Passwd { new_password_file } => {
            let secret = match new_password_file {
                Some(p) => KeySource::PasswordFile(p).load()?,
                None => super::prompt_new_passphrase()?,
            };
            let current = repo
                .key_slot_infos()
                .await?
                .into_iter()
                .find(|s| s.current)
                .ok_or_else(|| Error::Internal("no slot is marked as the one in use".into()))?;
            // Added first: if the removal fails, both passphrases still open
            // the repository; nothing is ever left without a slot.
            let id = repo.add_key(&secret, kdf_params()).await?;
            repo.remove_key(&current.id, true).await?;
            audit_cli(
                "key.changed",
                serde_json::json!({"repository": repo_url(g)?, "old_slot": current.id.to_hex(), "new_slot": id.to_hex()}),
            )?;
            if g.json {
                print_json(
                    &serde_json::json!({"old_slot": current.id.to_hex(), "new_slot": id.to_hex()}),
                )?;
            } else {
                println!(
                    "passphrase changed: key slot {} replaces {}",
                    id.short(),
                    current.id.short()
                );
            }
        }
        KeyAction::Remove { id, force } => {
            let slot = repo.key_slot_by_prefix(&id).await?;
            repo.remove_key(&slot, force).await?;
            audit_cli(
                "key.removed",
                serde_json::json!({"repository": repo_url(g)?, "slot": slot.to_hex()}),
            )?;
            super::report(
                g,
                serde_json::json!({"removed": slot.to_hex()}),
                &format!("removed key slot {}", slot.short()),
            )?;
        }
    }
    Ok(0)
}

/// `custos unlock`: remove stale locks (all with `--all`).
pub(crate) async fn unlock(g: &Global, all: bool) -> Result<u8> {
    let backend = super::backend(g, &repo_url(g)?, false)?;
    let removed = lock::unlock(&backend, all).await?;
    if !removed.is_empty() {
        audit_cli(
            "locks.removed",
            serde_json::json!({"repository": repo_url(g)?, "all": all, "count": removed.len()}),
        )?;
    }
    for r in &removed {
        eprintln!("removed {}", r.holder());
    }
    super::report(
        g,
        serde_json::json!({"locks_removed": removed.len()}),
        &format!("{} locks removed", removed.len()),
    )?;
    Ok(0)
}

/// `custos stats`: sizes and ratios.
pub(crate) async fn stats(g: &Global, snapshots: Vec<String>, mode: Option<String>) -> Result<u8> {
    let repo = open(g).await?.load_index().await?;
    if !snapshots.is_empty() || mode.is_some() {
        let mode: stats::Mode = mode
            .as_deref()
            .unwrap_or("restore-size")
            .parse()
            .map_err(|e| Error::Usage(format!("--mode: {e}")))?;
        let (snaps, _) = repo.snapshots().await?;
        let roots = if snapshots.is_empty() {
            snaps.iter().map(|(_, s)| s.tree).collect()
        } else {
            snapshots
                .iter()
                .map(|spec| {
                    custos::repository::select_snapshot(&snaps, spec, |_| true).map(|(_, s)| s.tree)
                })
                .collect::<Result<Vec<_>>>()?
        };
        let s = stats::snapshot_stats(&repo, roots, mode).await?;
        if g.json {
            print_json(&s)?;
        } else {
            println!("snapshots:          {} ({})", s.snapshots, s.mode);
            match mode {
                stats::Mode::RawData => {
                    println!("blobs:              {}", s.blobs);
                    println!("plaintext size:     {}", human_bytes(s.raw_bytes));
                    println!("stored size:        {}", human_bytes(s.stored_bytes));
                }
                stats::Mode::RestoreSize => {
                    println!("files:              {}", s.files);
                    println!("directories:        {}", s.dirs);
                    println!("total size:         {}", human_bytes(s.total_bytes));
                }
                stats::Mode::FilesByContents => {
                    println!("distinct files:     {}", s.files);
                    println!("total size:         {}", human_bytes(s.total_bytes));
                }
            }
        }
        return Ok(0);
    }
    let s = stats::stats(&repo).await?;
    if g.json {
        print_json(&s)?;
    } else {
        println!("snapshots:          {}", s.snapshots);
        println!("logical size:       {}", human_bytes(s.logical_bytes));
        println!(
            "unique data:        {} in {} blobs ({} data, {} trees)",
            human_bytes(s.unique_bytes),
            s.blobs,
            s.data_blobs,
            s.tree_blobs
        );
        println!(
            "stored size:        {} in {} packs",
            human_bytes(s.stored_bytes),
            s.packs
        );
        println!("deduplication:      {:.2}x", s.dedup_ratio);
        println!("compression:        {:.2}x", s.compression_ratio);
        println!("total reduction:    {:.2}x", s.total_ratio);
    }
    Ok(0)
}
