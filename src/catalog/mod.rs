//! The catalog: one sled database under the state directory, made of typed
//! tables that the features above own.
//!
//! This module knows how to open, rewrite and purge the database, and gives
//! each feature a [`Table<K, V>`] by name; it knows no record type. It may
//! use `error`, `util`; nothing of `audit`, `erasure` or `daemon` (they use
//! it).
//!
//! | table | owner | key | value |
//! |---|---|---|---|
//! | `jobs` | `daemon::records` | job ID (8 bytes, big-endian, increasing) | `JobRecord` (JSON) |
//! | `last_runs` | `daemon::records` | `tenant/service/kind` | RFC 3339 time of the last scheduled run that was started |
//! | `snapshots` | `daemon::records` | `tenant/service/time/id` | `SnapshotEntry` (JSON) |
//! | `counters` | `daemon::records` | `tenant/service/name` | u64, big-endian (monotonic, for `/metrics`) |
//! | `watch` | `daemon::records` | `tenant/repository URL` | what the repository held at the last look (`repository::watch::Seen`): rollback detection |
//! | `alarms` | `daemon::records` | `tenant/<8-byte seq>` | `Alarm`: a change custos did not make |
//! | `restores` | `daemon::restores` | request ID (8 bytes, big-endian) | `RestoreRecord` (JSON) |
//! | `erasures` | `erasure::records` | tenant | `ErasureRecord` (JSON): the end-of-contract state machine, until the tenant is erased |
//! | `erased` | `erasure::records` | `tenant/target/object` (and `tenant//cache/<repo id>`) | `[size, key fingerprint]`: every object an erasure deleted, for the certificate |
//! | `tenant_targets` | `erasure::records` | `tenant/target` | the target's URL: every target a tenant used, erased at the end of its contract even after a config change |
//! | `erased_tenants` | this module | BLAKE3 of the tenant ID | what erasure keeps of an erased tenant: it is refused everywhere, and nothing here names it |
//! | `meta` | this module | `next_id`, `rewrite_owed` | the ID counter; set while a rewrite of the database is owed |
//!
//! When a tenant is erased ([`Catalog::purge_tenant`]), every record that
//! names it is removed (by key prefix, by key, or by the `tenant` field of
//! the JSON value: [`TABLES`] says which) and the database is rewritten into
//! new files (sled is log-structured: removed records would otherwise stay
//! in old log segments), the old files overwritten and removed: afterwards
//! no file of the catalog holds the tenant's ID.
//!
//! Everything here can be rebuilt: job history is informational, `last_runs`
//! only drives catch-up, and the snapshot cache is rebuilt from the
//! repositories by `custos catalog rebuild` (or on demand). The repositories
//! remain the truth.
//!
//! Layer 8 of `docs/architecture.md`: it uses `error`, `util`, and nothing of a layer above.

mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

pub(crate) use table::{Json, Key, Table, Value};

/// How the records of a table name their tenant, for the end-of-contract
/// purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TenantIn {
    /// The key starts with `tenant/`.
    KeyPrefix,
    /// The key is the tenant ID.
    Key,
    /// The value is JSON with a `tenant` field.
    Field,
    /// The table names no tenant.
    Nowhere,
}

/// Every table: its name and where its records name a tenant. A feature
/// opens a table with [`Catalog::table`] by one of these names.
pub(crate) const TABLES: &[(&str, TenantIn)] = &[
    ("jobs", TenantIn::Field),
    ("last_runs", TenantIn::KeyPrefix),
    ("snapshots", TenantIn::KeyPrefix),
    ("counters", TenantIn::KeyPrefix),
    ("watch", TenantIn::KeyPrefix),
    ("alarms", TenantIn::KeyPrefix),
    ("notices", TenantIn::KeyPrefix),
    ("restores", TenantIn::Field),
    ("erasures", TenantIn::Key),
    ("erased", TenantIn::KeyPrefix),
    ("tenant_targets", TenantIn::KeyPrefix),
    (ERASED_TENANTS, TenantIn::Nowhere),
    (META, TenantIn::Nowhere),
];

const ERASED_TENANTS: &str = "erased_tenants";
const META: &str = "meta";
/// The `meta` key of the ID counter.
const NEXT_ID: &[u8] = b"next_id";
/// The `meta` key set while a rewrite of the database is owed (an erasure
/// purged records whose old copies may still sit in sled's log).
const REWRITE_OWED: &[u8] = b"rewrite_owed";

/// The open trees, replaced as a whole when the database is rewritten.
struct Trees {
    db: sled::Db,
    by_name: HashMap<&'static str, sled::Tree>,
}

impl Trees {
    fn from_db(db: sled::Db) -> Result<Trees> {
        let mut by_name = HashMap::new();
        for (name, _) in TABLES {
            let tree = db.open_tree(name).map_err(|e| db_err(name, e))?;
            by_name.insert(*name, tree);
        }
        let t = Trees { db, by_name };
        // IDs come from a counter of our own (copied with the rest when the
        // database is rewritten); a catalog from before it starts above
        // every ID sled handed out.
        let meta = t.tree(META)?;
        if meta.get(NEXT_ID).map_err(|e| db_err(META, e))?.is_none() {
            let start = t.db.generate_id().map_err(|e| db_err("id", e))? + 1;
            meta.insert(NEXT_ID, &start.to_be_bytes())
                .map_err(|e| db_err(META, e))?;
        }
        Ok(t)
    }

    fn tree(&self, name: &str) -> Result<&sled::Tree> {
        self.by_name
            .get(name)
            .ok_or_else(|| db_err(name, "no such table (not in catalog::TABLES)"))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| db_err("flush", e))?;
        Ok(())
    }
}

/// The catalog: cheap to clone, shared by every task of the daemon.
#[derive(Clone)]
pub struct Catalog {
    trees: Arc<RwLock<Trees>>,
    /// The database directory (`None`: temporary).
    dir: Option<PathBuf>,
}

/// A catalog error: what was being done, with sled's (or the decoder's)
/// error kept as the source.
fn db_err<E>(what: &str, e: E) -> Error
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Error::io(format!("catalog: {what}"), std::io::Error::other(e))
}

/// The key an erased tenant is remembered under: a hash, not its ID.
fn erased_key(tenant: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"custos erased tenant v1\0");
    h.update(tenant.as_bytes());
    h.finalize().to_hex().to_string()
}

fn open_db(dir: &Path) -> Result<sled::Db> {
    sled::Config::new()
        .path(dir)
        .cache_capacity(32 << 20)
        .open()
        .map_err(|e| {
            db_err(
                &format!("cannot open {} (is another daemon running?)", dir.display()),
                e,
            )
        })
}

fn temporary_db() -> Result<sled::Db> {
    sled::Config::new()
        .temporary(true)
        .open()
        .map_err(|e| db_err("temporary", e))
}

/// Overwrites every file under `dir` with zeros, then removes the tree: the
/// old copy of a rewritten catalog holds records an erasure purged.
fn shred_dir(dir: &Path) -> Result<()> {
    // Another process may be shredding the same copy (a `config check`
    // opening the catalog while the daemon finishes a rewrite): what is gone
    // already is fine.
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(Error::io_path("cannot read", &d, e)),
        };
        for e in entries {
            let e = match e {
                Ok(e) => e,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(Error::io_path("cannot read", &d, e)),
            };
            let p = e.path();
            match e.file_type() {
                Ok(ft) if ft.is_dir() => stack.push(p),
                Ok(ft) if ft.is_file() => crate::util::overwrite_with_zeros(&p)?,
                Ok(_) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(Error::io_path("cannot read", &p, e)),
            }
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if !gone(&e) => Err(Error::io_path("cannot remove", dir, e)),
        _ => Ok(()),
    }
}

impl Catalog {
    /// Opens (or creates) the catalog under `state_dir/catalog`, finishing a
    /// rewrite that a crash interrupted, or one an erasure still owes.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created or the database is
    /// locked by another daemon.
    pub fn open(state_dir: &Path) -> Result<Catalog> {
        let dir = state_dir.join("catalog");
        let fresh = dir.with_extension("rewritten");
        let old = dir.with_extension("old");
        // A rewrite renames the live copy away only once the new one is
        // complete: with no live copy, the new one is it.
        if !dir.exists() && fresh.exists() {
            std::fs::rename(&fresh, &dir).map_err(crate::error::at("cannot rename", &fresh))?;
        }
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh).map_err(crate::error::at("cannot remove", &fresh))?;
        }
        shred_dir(&old)?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
        crate::util::private_dir(&dir)?;
        let trees = Trees::from_db(open_db(&dir)?)?;
        let owed = trees
            .tree(META)?
            .get(REWRITE_OWED)
            .map_err(|e| db_err(META, e))?
            .is_some();
        let c = Catalog {
            trees: Arc::new(RwLock::new(trees)),
            dir: Some(dir),
        };
        if owed {
            c.rewrite()?;
        }
        Ok(c)
    }

    /// A catalog in a temporary directory that sled removes on drop (tests).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn temporary() -> Result<Catalog> {
        Ok(Catalog {
            trees: Arc::new(RwLock::new(Trees::from_db(temporary_db()?)?)),
            dir: None,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Trees> {
        self.trees
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` on the sled tree of table `name` (the trees of the moment:
    /// a rewrite replaces them, so no handle outlives one call).
    fn with_tree<T>(&self, name: &str, f: impl FnOnce(&sled::Tree) -> Result<T>) -> Result<T> {
        let trees = self.read();
        f(trees.tree(name)?)
    }

    /// The table `name` (one of `TABLES`), with keys `K` and values `V`.
    pub fn table<K: Key + ?Sized, V: Value>(&self, name: &'static str) -> Table<K, V> {
        Table::new(self.clone(), name)
    }

    /// Rewrites the database into a fresh one and shreds the old files.
    ///
    /// sled is log-structured: a removed record stays in the old log
    /// segments until they are reused. After an erasure purged a tenant,
    /// copying every live record into a new database and overwriting the
    /// old files leaves no byte of the purged records in the catalog's
    /// files. (What the file system or the disk keeps of overwritten blocks
    /// is beyond what custos can verify.) Holds the catalog's write lock:
    /// every other use waits for the few milliseconds it takes.
    ///
    /// # Errors
    /// [`Error::Io`]; the old database stays in use when the copy fails.
    pub fn rewrite(&self) -> Result<()> {
        let mut trees = self
            .trees
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        trees.flush()?;
        let copy = |into: &sled::Db| -> Result<()> {
            for name in trees.db.tree_names() {
                let from = trees
                    .db
                    .open_tree(&name)
                    .map_err(|e| db_err("rewrite", e))?;
                let to = into.open_tree(&name).map_err(|e| db_err("rewrite", e))?;
                for item in from.iter() {
                    let (k, v) = item.map_err(|e| db_err("rewrite", e))?;
                    if name.as_ref() == META.as_bytes() && k.as_ref() == REWRITE_OWED {
                        continue;
                    }
                    to.insert(k, v).map_err(|e| db_err("rewrite", e))?;
                }
            }
            into.flush().map_err(|e| db_err("rewrite", e))?;
            Ok(())
        };
        let Some(dir) = &self.dir else {
            let db = temporary_db()?;
            copy(&db)?;
            *trees = Trees::from_db(db)?;
            return Ok(());
        };
        let fresh = dir.with_extension("rewritten");
        let old = dir.with_extension("old");
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh).map_err(crate::error::at("cannot remove", &fresh))?;
        }
        std::fs::create_dir_all(&fresh).map_err(crate::error::at("cannot create", &fresh))?;
        crate::util::private_dir(&fresh)?;
        {
            let db = open_db(&fresh)?;
            copy(&db)?;
        }
        // The new copy is complete: swap it in (`open` finishes a swap a
        // crash interrupted), then reopen.
        std::fs::rename(dir, &old).map_err(crate::error::at("cannot rename", dir))?;
        std::fs::rename(&fresh, dir).map_err(crate::error::at("cannot rename", &fresh))?;
        // sled releases the old files when the last handle goes: replace
        // the trees first, then shred.
        let placeholder = Trees::from_db(temporary_db()?)?;
        drop(std::mem::replace(&mut *trees, placeholder));
        *trees = Trees::from_db(open_db(dir)?)?;
        shred_dir(&old)
    }

    /// A fresh ID (jobs, restore requests and alarms share the sequence).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn next_id(&self) -> Result<u64> {
        let v = self.with_tree(META, |meta| {
            meta.update_and_fetch(NEXT_ID, |old| {
                let cur = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(1, u64::from_be_bytes);
                Some(cur.saturating_add(1).to_be_bytes().to_vec())
            })
            .map_err(|e| db_err("id", e))
        })?;
        let v = v
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(1, u64::from_be_bytes);
        Ok(v - 1)
    }

    /// Every (table, key) of a record that names `tenant`.
    fn tenant_keys(&self, trees: &Trees, tenant: &str) -> Result<Vec<(sled::Tree, sled::IVec)>> {
        let mut out = Vec::new();
        let prefix = format!("{tenant}/");
        for (name, how) in TABLES {
            let tree = trees.tree(name)?;
            let err = |e: sled::Error| db_err("purge", e);
            match how {
                TenantIn::KeyPrefix => {
                    for item in tree.scan_prefix(&prefix) {
                        let (k, _) = item.map_err(err)?;
                        out.push((tree.clone(), k));
                    }
                }
                TenantIn::Key => {
                    if tree.contains_key(tenant).map_err(err)? {
                        out.push((tree.clone(), sled::IVec::from(tenant.as_bytes())));
                    }
                }
                TenantIn::Field => {
                    for item in tree.iter() {
                        let (k, v) = item.map_err(err)?;
                        let rec: serde_json::Value = serde_json::from_slice(&v)
                            .map_err(|e| db_err(&format!("purge: {name}"), e))?;
                        if rec.get("tenant").and_then(|t| t.as_str()) == Some(tenant) {
                            out.push((tree.clone(), k));
                        }
                    }
                }
                TenantIn::Nowhere => {}
            }
        }
        Ok(out)
    }

    /// How many records name `tenant` (what [`Catalog::purge_tenant`]
    /// removes).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn tenant_records(&self, tenant: &str) -> Result<usize> {
        Ok(self.tenant_keys(&self.read(), tenant)?.len())
    }

    /// Removes every record about a tenant (end-of-contract erasure) and
    /// keeps `marker` under a hash of its ID ([`Catalog::erased_marker`]);
    /// then rewrites the database so that no old copy of a purged record
    /// stays in its files ([`Catalog::rewrite`]). Returns how many records
    /// were removed.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn purge_tenant<M: Serialize>(&self, tenant: &str, marker: &M) -> Result<usize> {
        let n = {
            let t = self.read();
            // Owed until the rewrite is done: `open` finishes it after a crash.
            t.tree(META)?
                .insert(REWRITE_OWED, b"1")
                .map_err(|e| db_err(META, e))?;
            let marker = serde_json::to_vec(marker).map_err(|e| db_err(ERASED_TENANTS, e))?;
            t.tree(ERASED_TENANTS)?
                .insert(erased_key(tenant), marker)
                .map_err(|e| db_err(ERASED_TENANTS, e))?;
            let keys = self.tenant_keys(&t, tenant)?;
            for (tree, k) in &keys {
                tree.remove(k).map_err(|e| db_err("purge", e))?;
            }
            t.flush()?;
            keys.len()
        };
        self.rewrite()?;
        Ok(n)
    }

    /// What [`Catalog::purge_tenant`] kept of `tenant` (`None`: never
    /// erased).
    ///
    /// # Errors
    /// [`Error::Io`]; a marker that does not decode as `M`.
    pub fn erased_marker<M: DeserializeOwned>(&self, tenant: &str) -> Result<Option<M>> {
        self.with_tree(ERASED_TENANTS, |t| {
            t.get(erased_key(tenant))
                .map_err(|e| db_err(ERASED_TENANTS, e))?
                .map(|v| serde_json::from_slice(&v).map_err(|e| db_err(ERASED_TENANTS, e)))
                .transpose()
        })
    }

    /// Writes everything to disk.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn flush(&self) -> Result<()> {
        crate::util::blocking(|| self.read().flush())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Rec {
        tenant: String,
        n: u32,
    }
    impl Json for Rec {}

    #[test]
    fn tables_are_typed_and_a_purge_finds_a_tenant_by_prefix_key_and_field() {
        let c = Catalog::temporary().unwrap();
        let by_field: Table<u64, Rec> = c.table("jobs");
        let by_prefix: Table<str, u64> = c.table("counters");
        let by_key: Table<str, Rec> = c.table("erasures");
        for (i, t) in ["acme", "acme-two"].into_iter().enumerate() {
            let rec = Rec {
                tenant: t.into(),
                n: i as u32,
            };
            by_field.put(&(i as u64), &rec).unwrap();
            by_key.put(t, &rec).unwrap();
            by_prefix
                .update(&format!("{t}/web/runs"), |n| n.unwrap_or(0) + 2)
                .unwrap();
            by_prefix
                .update(&format!("{t}/web/runs"), |n| n.unwrap_or(0) + 3)
                .unwrap();
        }
        assert_eq!(
            by_prefix.scan("acme/").unwrap(),
            [("web/runs".to_string(), 5)]
        );
        assert_eq!(
            by_field.newest("", 1, |_| true).unwrap()[0].tenant,
            "acme-two"
        );
        assert_eq!(c.tenant_records("acme").unwrap(), 3);
        assert_eq!(c.purge_tenant("acme", &"gone").unwrap(), 3);
        assert_eq!(
            c.erased_marker::<String>("acme").unwrap().as_deref(),
            Some("gone")
        );
        assert_eq!(c.erased_marker::<String>("acme-two").unwrap(), None);
        assert_eq!(by_field.values("").unwrap().len(), 1);
        assert!(by_key.get("acme").unwrap().is_none());
        assert_eq!(by_key.get("acme-two").unwrap().unwrap().n, 1);
        assert_eq!(c.tenant_records("acme-two").unwrap(), 3);
    }

    #[test]
    fn a_value_that_does_not_decode_is_an_error_naming_the_table() {
        let c = Catalog::temporary().unwrap();
        let raw: Table<str, String> = c.table("erasures");
        raw.put("acme", &"not json".to_string()).unwrap();
        let typed: Table<str, Rec> = c.table("erasures");
        let e = typed.get("acme").unwrap_err().to_string();
        assert!(e.contains("catalog: erasures"), "{e}");
    }
}
