//! The repository handle.
//!
//! A [`Repository`] is opened (its key unwrapped, its config verified); an
//! [`IndexedRepository`] also has its blob index loaded and is the only handle
//! that can read blobs or back up (typestate: an unindexed repository cannot
//! deduplicate by mistake).
//!
//! Write order, which every command keeps: packs → index objects → snapshot.
//! A snapshot is written only after everything it references is durable.
//!
//! Layer 3 of `docs/architecture.md`: it uses `id`, `switches`, `util`, `crypto`, `repofile`, `backend`, `index`, and nothing of a layer above.

pub mod key_cache;
pub mod lock;
mod trees;
pub mod watch;

pub(crate) use trees::TreeReader;

use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::path::PathBuf;

use bytes::Bytes;

use crate::backend::{is_not_found, Backend};
use crate::crypto::keyslot::{KdfParams, KeySlot, Secret};
use crate::crypto::{Keys, MasterKey, ObjectKind};
use crate::id::{BlobId, IndexId, KeyId, PackId, RepoId, SnapshotId};
use crate::index::{BlobIndex, Location};
use crate::repofile::config::{ChunkerParams, RepoConfig};
use crate::repofile::index::{IndexFile, IndexPack};
use crate::repofile::pack::{open_blob, BlobKind, FinishedPack};
use crate::repofile::snapshot::Snapshot;
use crate::repofile::tree::Tree;
use crate::repofile::{open_object, seal_object};
use crate::{Error, Result};

/// Blobs per index object: objects stay small enough to read in one request
/// and to hold in memory while they are written.
pub(crate) const INDEX_OBJECT_BLOBS: usize = 50_000;

/// Superseded index objects that a replacement carries forward from earlier
/// ones (32 bytes each: at most 3.2 MB in one object). Older ones beyond
/// that drop out, and a reader whose memory is that old may see their
/// deletion as an alarm.
pub(crate) const SUPERSEDED_CARRIED: usize = 100_000;

/// The folder packs are stored under, in 256 directories by the first
/// byte of their ID.
pub(crate) const PACKS_FOLDER: &str = "data";

/// Where a pack is stored.
pub(crate) fn pack_path(id: &PackId) -> String {
    let h = id.to_hex();
    format!("{PACKS_FOLDER}/{}/{}", &h[..2], h)
}

/// Options for `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Chunker sizes.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u64,
    /// Argon2id cost for a passphrase slot.
    pub kdf: KdfParams,
}

impl Default for InitOptions {
    /// Default chunker sizes, 16 MiB packs (few objects, cheap listing, and a
    /// partly needed pack is read with ranged requests anyway), default Argon2id.
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            pack_size: 16 << 20,
            kdf: KdfParams::default(),
        }
    }
}

/// What `custos init --json` prints.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Created {
    /// The new repository's ID.
    pub id: RepoId,
    /// Where it is.
    pub repository: String,
}

/// What a pin (legal hold) records.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PinInfo {
    /// Why (ticket, court order).
    pub reason: String,
    /// When it was placed (RFC 3339).
    pub created: String,
    /// Who placed it (`user@host`).
    pub by: String,
}

/// A key slot as `custos key list --json` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeySlotInfo {
    /// The slot's ID.
    pub id: KeyId,
    /// `passphrase` or `key-file`.
    pub kind: &'static str,
    /// When it was added (RFC 3339).
    pub created: String,
    /// The host it was added on.
    pub hostname: String,
    /// The user who added it.
    pub username: String,
    /// A fingerprint of the slot (the deletion certificate names destroyed slots by it).
    pub fingerprint: String,
    /// Whether the secret given opens this slot.
    pub current: bool,
}

/// An opened repository.
#[derive(Clone)]
pub struct Repository {
    backend: Backend,
    keys: Keys,
    master: MasterKey,
    config: RepoConfig,
    cache_root: Option<PathBuf>,
    /// The key slot the secret opened (the one `init` wrote).
    slot: KeyId,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({}, {})", self.backend.url(), self.config.id)
    }
}

impl Repository {
    /// Creates a repository at an empty location.
    ///
    /// # Errors
    /// [`Error::RepositoryExists`] when a config or key slot is already there.
    pub async fn init(
        backend: Backend,
        secret: &Secret,
        opts: &InitOptions,
        cache_root: Option<PathBuf>,
    ) -> Result<Repository> {
        opts.chunker.validate()?;
        if backend.exists("config").await? || !backend.list("keys").await?.is_empty() {
            return Err(Error::RepositoryExists(backend.url().to_string()));
        }
        let master = MasterKey::generate();
        let keys = master.keys();
        let config = RepoConfig::new(opts.chunker, opts.pack_size);
        let slot = KeySlot::create(&master, secret, opts.kdf)?;
        let slot_bytes = serde_json::to_vec_pretty(&slot).unwrap_or_default();
        let slot_digest = key_cache::slot_digest(&slot_bytes);
        backend
            .put(&format!("keys/{}", slot.id), Bytes::from(slot_bytes))
            .await?;
        // The config is created last and atomically: two concurrent inits cannot
        // both succeed, and a crash before it leaves only an unusable key slot.
        if !backend
            .put_new("config", Bytes::from(config.encode(&keys)))
            .await?
        {
            backend.delete(&format!("keys/{}", slot.id)).await?;
            return Err(Error::RepositoryExists(backend.url().to_string()));
        }
        key_cache::remember(
            backend.url(),
            secret,
            key_cache::CachedKey {
                slot_path: format!("keys/{}", slot.id),
                slot_digest,
                master: master.clone(),
            },
        );
        Ok(Repository {
            backend,
            keys,
            master,
            config,
            cache_root,
            slot: slot.id,
        })
    }

    /// Opens the repository at `url`, creating it with `opts` first when
    /// there is none: the one open-or-init of `copy --to-init` and the
    /// daemon's first backup. A repository another process created meanwhile
    /// is opened. Returns whether this call created it.
    ///
    /// # Errors
    /// As [`Repository::open`] and [`Repository::init`].
    pub async fn open_or_init(
        url: &str,
        secret: &Secret,
        opts: &InitOptions,
        cache_root: Option<PathBuf>,
        limits: &crate::backend::Limits,
    ) -> Result<(Repository, bool)> {
        let open = |create| Backend::open(url, create).map(|b| b.with_limits(limits));
        let opened = match open(false) {
            Ok(b) => Repository::open(b, secret, cache_root.clone()).await,
            Err(e) => Err(e),
        };
        match opened {
            // No repository there (for a local one, not even its directory).
            Err(Error::NoRepository(_)) => {}
            r => return r.map(|r| (r, false)),
        }
        match Repository::init(open(true)?, secret, opts, cache_root.clone()).await {
            Err(Error::RepositoryExists(_)) => Repository::open(open(false)?, secret, cache_root)
                .await
                .map(|r| (r, false)),
            r => r.map(|r| (r, true)),
        }
    }

    /// Opens an existing repository with a passphrase or key file.
    ///
    /// # Errors
    /// [`Error::NoRepository`], [`Error::WrongKey`], [`Error::Integrity`] for a
    /// damaged config or key slot, [`Error::Backend`].
    pub async fn open(
        backend: Backend,
        secret: &Secret,
        cache_root: Option<PathBuf>,
    ) -> Result<Repository> {
        let raw = match backend.get("config").await {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => {
                return Err(Error::NoRepository(backend.url().to_string()))
            }
            Err(e) => return Err(e),
        };
        let (config, mac) = RepoConfig::decode_unverified(&raw)?;
        let _opening = key_cache::opening(backend.url()).await;
        let listed = backend.list("keys").await?;
        let cached = key_cache::lookup(backend.url(), secret);
        let mut damaged = Vec::new();
        for l in &listed {
            let data = backend.get(&l.path).await?;
            // The slot this secret opened before, unchanged: its key
            // without a second derivation (see `key_cache`).
            if let Some(c) = cached
                .as_ref()
                .filter(|c| c.slot_path == l.path && c.slot_digest == key_cache::slot_digest(&data))
            {
                if let Ok(slot) = serde_json::from_slice::<KeySlot>(&data) {
                    let keys = c.master.keys();
                    config.verify(&mac, &keys)?;
                    return Ok(Repository {
                        backend,
                        keys,
                        master: c.master.clone(),
                        config,
                        cache_root,
                        slot: slot.id,
                    });
                }
            }
            let slot: KeySlot = match serde_json::from_slice(&data) {
                Ok(s) => s,
                Err(e) => {
                    damaged.push(format!("{}: {e}", l.path));
                    continue;
                }
            };
            // Argon2id takes a quarter of a second and 64 MiB: on a blocking
            // thread, not on the runtime's.
            let (slot, opened) = {
                let secret = secret.clone();
                tokio::task::spawn_blocking(move || {
                    let r = slot.open(&secret);
                    (slot, r)
                })
                .await
                .map_err(|e| Error::Internal(format!("key derivation stopped: {e}")))?
            };
            let opened = match opened {
                Ok(m) => m,
                // A damaged slot must not keep the others from opening.
                Err(e) => {
                    tracing::warn!(slot = %l.path, error = %e, "skipping a damaged key slot");
                    damaged.push(format!("{}: {e}", l.path));
                    continue;
                }
            };
            if let Some(master) = opened {
                let keys = master.keys();
                config.verify(&mac, &keys)?;
                key_cache::remember(
                    backend.url(),
                    secret,
                    key_cache::CachedKey {
                        slot_path: l.path.to_string(),
                        slot_digest: key_cache::slot_digest(&data),
                        master: master.clone(),
                    },
                );
                return Ok(Repository {
                    backend,
                    keys,
                    master,
                    config,
                    cache_root,
                    slot: slot.id,
                });
            }
        }
        if !damaged.is_empty() && damaged.len() == listed.len() {
            return Err(Error::integrity("key slots", damaged.join("; ")));
        }
        if listed.is_empty() {
            return Err(Error::integrity("keys/", "the repository has no key slot"));
        }
        Err(Error::WrongKey {
            slots: listed.len(),
        })
    }

    /// The storage backend.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The derived keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The config.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The cache directory of this repository (`<cache root>/<repo id>`).
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.cache_root
            .as_ref()
            .map(|r| r.join(self.config.id.to_hex()))
    }

    /// Adds a key slot for another passphrase or key file.
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub async fn add_key(&self, secret: &Secret, kdf: KdfParams) -> Result<KeyId> {
        let slot = KeySlot::create(&self.master, secret, kdf)?;
        self.backend
            .put(
                &format!("keys/{}", slot.id),
                Bytes::from(serde_json::to_vec_pretty(&slot).unwrap_or_default()),
            )
            .await?;
        Ok(slot.id)
    }

    /// The key slots as `key list` shows them, the one in use marked.
    ///
    /// # Errors
    /// As `Repository::key_slots`.
    pub async fn key_slot_infos(&self) -> Result<Vec<KeySlotInfo>> {
        let in_use = self.slot_in_use();
        Ok(self
            .key_slots()
            .await?
            .iter()
            .map(|s| KeySlotInfo {
                id: s.id,
                kind: s.kind(),
                created: s.created.clone(),
                hostname: s.hostname.clone(),
                username: s.username.clone(),
                fingerprint: s.fingerprint(),
                current: s.id == in_use,
            })
            .collect())
    }

    /// What `init` reports for this repository at `url`.
    pub fn created(&self, url: &str) -> Created {
        Created {
            id: self.config().id,
            repository: url.to_string(),
        }
    }

    /// Lists key slots.
    ///
    /// # Errors
    /// [`Error::Backend`], [`Error::Integrity`] for a slot that does not decode.
    pub(crate) async fn key_slots(&self) -> Result<Vec<KeySlot>> {
        let mut out = Vec::new();
        for l in self.backend.list("keys").await? {
            let data = self.backend.get(&l.path).await?;
            out.push(
                serde_json::from_slice(&data)
                    .map_err(|e| Error::integrity(&l.path, e.to_string()))?,
            );
        }
        Ok(out)
    }

    /// The key slot that the secret given to [`Repository::open`] opened.
    pub(crate) fn slot_in_use(&self) -> KeyId {
        self.slot
    }

    /// The key slot whose ID starts with `prefix` (hex, any case).
    ///
    /// # Errors
    /// [`Error::NotFound`] when none does, [`Error::Usage`] when several do,
    /// [`Error::Backend`].
    pub async fn key_slot_by_prefix(&self, prefix: &str) -> Result<KeyId> {
        let prefix = prefix.to_ascii_lowercase();
        let slots = self.key_slots().await?;
        let hits: Vec<KeyId> = slots
            .iter()
            .filter(|s| s.id.to_hex().starts_with(&prefix))
            .map(|s| s.id)
            .collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NotFound(format!("key slot {prefix}"))),
            _ => Err(Error::Usage(format!(
                "key slot prefix {prefix} is ambiguous"
            ))),
        }
    }

    /// Removes a key slot; refuses to remove the last one, and the one in
    /// use (that the secret given opened) unless `force`: whoever removes
    /// it must hold another slot's secret, or loses the repository.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Refused`] for the last slot or the one
    /// in use.
    pub async fn remove_key(&self, id: &KeyId, force: bool) -> Result<()> {
        let slots = self.key_slots().await?;
        if !slots.iter().any(|s| &s.id == id) {
            return Err(Error::NotFound(format!("key slot {id}")));
        }
        if slots.len() == 1 {
            return Err(Error::Refused(
                "refusing to remove the last key slot: the repository would become unreadable"
                    .into(),
            ));
        }
        if *id == self.slot && !force {
            return Err(Error::Refused(format!(
                "key slot {} is the one your passphrase or key file opened: after removing it that secret no longer opens the repository; add --force if you hold the secret of another slot",
                id.short()
            )));
        }
        self.backend.delete(&format!("keys/{id}")).await
    }

    /// Reads and decrypts one snapshot.
    ///
    /// # Errors
    /// [`Error::Backend`], [`Error::Integrity`].
    pub async fn snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        let path = format!("snapshots/{id}");
        let data = self.backend.get(&path).await?;
        open_object(
            &self.keys,
            ObjectKind::Snapshot,
            id.as_bytes(),
            &path,
            &data,
        )
    }

    /// Every snapshot, oldest first. Snapshots that do not decode are returned in
    /// the second list with their error, never silently dropped.
    ///
    /// # Errors
    /// [`Error::Backend`] when listing or reading fails.
    pub async fn snapshots(&self) -> Result<(Vec<(SnapshotId, Snapshot)>, Vec<(String, Error)>)> {
        self.snapshots_naming(None).await
    }

    /// As [`Self::snapshots`]; when `spec` is a full snapshot ID that the
    /// listing does not show (yet: listings of eventually consistent stores
    /// lag behind writes), that snapshot is read by name and included.
    ///
    /// # Errors
    /// As [`Self::snapshots`].
    pub async fn snapshots_naming(
        &self,
        spec: Option<&str>,
    ) -> Result<(Vec<(SnapshotId, Snapshot)>, Vec<(String, Error)>)> {
        let mut listed = self.backend.list("snapshots").await?;
        if let Some(id) = spec.and_then(|s| s.parse::<SnapshotId>().ok()) {
            let path = format!("snapshots/{id}");
            if !listed.iter().any(|l| l.path == path) {
                listed.push(crate::backend::Listed { path, size: 0 });
            }
        }
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let reads = futures::future::join_all(listed.iter().map(|l| async move {
            let id: Result<SnapshotId> = l.path.trim_start_matches("snapshots/").parse();
            match id {
                Ok(id) => (l.path.clone(), self.snapshot(&id).await.map(|s| (id, s))),
                Err(e) => (l.path.clone(), Err(e)),
            }
        }))
        .await;
        for (path, r) in reads {
            match r {
                Ok(s) => good.push(s),
                // Deleted since the listing, or a named ID that is not there.
                Err(e) if is_not_found(&e) => {}
                Err(e @ Error::Backend { .. }) => return Err(e),
                Err(e) => bad.push((path, e)),
            }
        }
        good.sort_by(|a, b| a.1.timestamp().cmp(&b.1.timestamp()).then(a.0.cmp(&b.0)));
        Ok((good, bad))
    }

    /// Snapshots under legal hold (`pins/<snapshot id>`).
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub async fn pins(&self) -> Result<HashSet<SnapshotId>> {
        Ok(self
            .backend
            .list("pins")
            .await?
            .iter()
            .filter_map(|l| l.path.trim_start_matches("pins/").parse().ok())
            .collect())
    }

    /// Snapshots under legal hold with what their pin says (reason, when,
    /// by whom); a pin whose object cannot be read still counts, with an
    /// empty reason.
    ///
    /// # Errors
    /// [`Error::Backend`] for the listing.
    pub async fn pin_details(&self) -> Result<HashMap<SnapshotId, PinInfo>> {
        let mut out = HashMap::new();
        for id in self.pins().await? {
            let info = match self.backend.get(&format!("pins/{id}")).await {
                Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
                Err(e) if is_not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            out.insert(id, info);
        }
        Ok(out)
    }

    /// Places a snapshot under legal hold: `forget` never removes it.
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub async fn pin(&self, id: &SnapshotId, reason: &str) -> Result<()> {
        let body = serde_json::json!({
            "snapshot": id.to_hex(),
            "reason": reason,
            "created": crate::util::stamp(jiff::Timestamp::now()),
            "by": format!("{}@{}", crate::util::username(), crate::util::hostname()),
        });
        self.backend
            .put(
                &format!("pins/{id}"),
                Bytes::from(serde_json::to_vec_pretty(&body).unwrap_or_default()),
            )
            .await
    }

    /// Lifts a legal hold.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the snapshot is not pinned.
    pub async fn unpin(&self, id: &SnapshotId) -> Result<()> {
        let path = format!("pins/{id}");
        if !self.backend.exists(&path).await? {
            return Err(Error::NotFound(format!("a pin on snapshot {id}")));
        }
        self.backend.delete(&path).await
    }

    /// Deletes a snapshot object (its data goes at the next prune).
    ///
    /// # Errors
    /// [`Error::Refused`] for a pinned snapshot, [`Error::Backend`].
    pub(crate) async fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.delete_snapshot_because(id, "forget").await
    }

    /// [`Self::delete_snapshot`], recording `reason` (`forget`, `repair`)
    /// in the tombstone.
    ///
    /// # Errors
    /// [`Error::Refused`] for a pinned snapshot, [`Error::Backend`].
    pub(crate) async fn delete_snapshot_because(
        &self,
        id: &SnapshotId,
        reason: &str,
    ) -> Result<()> {
        if self.backend.exists(&format!("pins/{id}")).await? {
            return Err(Error::Refused(format!(
                "snapshot {id} is pinned (legal hold): unpin it first"
            )));
        }
        // The tombstone first: a snapshot gone without one was deleted by
        // someone else (repository::watch).
        let tomb = crate::repofile::snapshot::Tombstone {
            snapshot: id.to_hex(),
            time: crate::util::stamp(jiff::Timestamp::now()),
            hostname: crate::util::hostname(),
            username: crate::util::username(),
            reason: reason.into(),
        };
        let sealed = seal_object(&self.keys, ObjectKind::Tombstone, id.as_bytes(), &tomb);
        self.backend
            .put(&format!("forgotten/{id}"), Bytes::from(sealed))
            .await?;
        self.backend.delete(&format!("snapshots/{id}")).await
    }

    /// Reads and verifies the tombstone of a forgotten snapshot.
    ///
    /// # Errors
    /// [`Error::Backend`], [`Error::Integrity`] for one that does not
    /// authenticate (forged or damaged).
    pub async fn tombstone(&self, id: &SnapshotId) -> Result<crate::repofile::snapshot::Tombstone> {
        let path = format!("forgotten/{id}");
        let data = self.backend.get(&path).await?;
        let t: crate::repofile::snapshot::Tombstone = open_object(
            &self.keys,
            ObjectKind::Tombstone,
            id.as_bytes(),
            &path,
            &data,
        )?;
        if t.snapshot != id.to_hex() {
            return Err(Error::integrity(&path, "names another snapshot"));
        }
        Ok(t)
    }

    /// Writes a snapshot (after everything it references is durable).
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub(crate) async fn save_snapshot(&self, snap: &Snapshot) -> Result<SnapshotId> {
        let id = SnapshotId::random();
        let sealed = seal_object(&self.keys, ObjectKind::Snapshot, id.as_bytes(), snap);
        self.backend
            .put(&format!("snapshots/{id}"), Bytes::from(sealed))
            .await?;
        Ok(id)
    }

    /// Writes a pack held whole in memory; returns what the index records
    /// of it.
    ///
    /// # Errors
    /// [`Error::Backend`]; [`Error::Internal`] for a pack whose first part
    /// was spilled elsewhere.
    pub(crate) async fn put_pack(&self, pack: FinishedPack) -> Result<IndexPack> {
        let stored = IndexPack::from(&pack);
        let path = pack_path(&pack.id);
        self.backend
            .put(&path, Bytes::from(pack.into_whole()?))
            .await?;
        Ok(stored)
    }

    /// Writes an index object.
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub(crate) async fn save_index(&self, file: &IndexFile) -> Result<IndexId> {
        let id = IndexId::random();
        let sealed = seal_object(&self.keys, ObjectKind::Index, id.as_bytes(), file);
        self.backend
            .put(&format!("index/{id}"), Bytes::from(sealed))
            .await?;
        Ok(id)
    }

    /// Replaces the repository's index: writes index objects listing `packs`
    /// (at most [`INDEX_OBJECT_BLOBS`] blobs each), then one object that
    /// supersedes every ID in `old`. Until that last write, old and new objects
    /// both count (duplicate entries are harmless); from then on readers ignore
    /// the old ones, which the caller deletes. `what` names the crash points
    /// (`{what}:after-index`, `{what}:after-marker`) for crash tests.
    ///
    /// The last object also carries forward `history`, the objects that
    /// earlier replacements superseded (at most [`SUPERSEDED_CARRIED`]), so
    /// that a reader who remembers an older index can tell a replaced object
    /// from one deleted behind custos' back ([`watch`]), even once the marker
    /// that first superseded it is gone.
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub(crate) async fn replace_index(
        &self,
        packs: impl IntoIterator<Item = Result<IndexPack>>,
        old: &[IndexId],
        history: impl IntoIterator<Item = IndexId>,
        what: &str,
    ) -> Result<Vec<IndexId>> {
        let mut written = Vec::new();
        let mut file = IndexFile::default();
        for pack in packs {
            file.packs.push(pack?);
            if file.blob_count() >= INDEX_OBJECT_BLOBS {
                written.push(self.save_index(&std::mem::take(&mut file)).await?);
            }
        }
        if !file.packs.is_empty() {
            written.push(self.save_index(&file).await?);
        }
        crate::util::crash_point(&format!("{what}:after-index"));
        if !old.is_empty() {
            let mut supersedes: Vec<IndexId> = old.to_vec();
            let mut seen: HashSet<IndexId> = old.iter().copied().collect();
            let mut carried: Vec<IndexId> = history
                .into_iter()
                .filter(|i| seen.insert(*i) && !written.contains(i))
                .collect();
            carried.sort();
            carried.truncate(SUPERSEDED_CARRIED.saturating_sub(supersedes.len()));
            supersedes.extend(carried);
            written.push(
                self.save_index(&IndexFile {
                    supersedes,
                    packs: Vec::new(),
                })
                .await?,
            );
        }
        crate::util::crash_point(&format!("{what}:after-marker"));
        Ok(written)
    }

    /// The objects that the readable ones among `ids` supersede (for
    /// [`Self::replace_index`]'s history when no index cache is at hand).
    /// Unreadable objects are skipped.
    ///
    /// # Errors
    /// [`Error::Backend`] other than a missing object.
    pub(crate) async fn superseded_by(&self, ids: &[IndexId]) -> Result<HashSet<IndexId>> {
        let mut out = HashSet::new();
        for batch in ids.chunks(8) {
            let files = futures::future::join_all(batch.iter().map(|id| self.read_index(id))).await;
            for f in files {
                match f {
                    Ok(f) => out.extend(f.supersedes),
                    Err(e @ Error::Backend { .. }) if !is_not_found(&e) => return Err(e),
                    Err(_) => {}
                }
            }
        }
        Ok(out)
    }

    /// Reads one index object.
    ///
    /// # Errors
    /// [`Error::Backend`], [`Error::Integrity`].
    pub(crate) async fn read_index(&self, id: &IndexId) -> Result<IndexFile> {
        let path = format!("index/{id}");
        let data = self.backend.get(&path).await?;
        open_object(&self.keys, ObjectKind::Index, id.as_bytes(), &path, &data)
    }

    /// Lists index object IDs.
    ///
    /// # Errors
    /// [`Error::Backend`].
    pub(crate) async fn index_ids(&self) -> Result<Vec<IndexId>> {
        Ok(self
            .backend
            .list("index")
            .await?
            .iter()
            .filter_map(|l| l.path.trim_start_matches("index/").parse().ok())
            .collect())
    }

    /// Reads, authenticates, decompresses and ID-checks the blob `id` stored
    /// at `loc` (from the index, or from a pack header being verified).
    ///
    /// # Errors
    /// [`Error::Backend`], [`Error::Integrity`].
    pub(crate) async fn read_blob_at(&self, id: &BlobId, loc: &Location) -> Result<Vec<u8>> {
        let stored = self
            .backend
            .get_range(
                &pack_path(&loc.pack),
                loc.offset..loc.offset + u64::from(loc.length),
            )
            .await?;
        let keys = self.keys.clone();
        let (id, loc) = (*id, *loc);
        tokio::task::spawn_blocking(move || open_blob(&keys, &loc.pack, &loc.entry(id), &stored))
            .await
            .map_err(|e| Error::Internal(format!("decoder task failed: {e}")))?
    }

    /// Reads the tree blob `id` stored at `loc`.
    ///
    /// # Errors
    /// As [`Self::read_blob_at`], and [`Error::Integrity`] when it is not a tree.
    pub(crate) async fn read_tree_at(&self, id: &BlobId, loc: &Location) -> Result<Tree> {
        tree_kind(id, loc)?;
        let data = self.read_blob_at(id, loc).await?;
        Tree::decode(id, &data)
    }

    /// Loads the blob index (see the `index` module for the cache rules).
    ///
    /// # Errors
    /// [`Error::Backend`], [`Error::Integrity`] for an index object that does not
    /// decode (run `custos repair`), cache errors.
    pub async fn load_index(self) -> Result<IndexedRepository> {
        let dir = self.cache_dir().map(|d| d.join("index"));
        let mut index = BlobIndex::open(dir.as_deref())?;
        if let Err(e) = self.sync_index(&index).await {
            // A full cache disk must not stop a check or a restore: what
            // was not recorded there is forgotten at the next open, and this
            // run uses a private cache (elsewhere, as `open` does when the
            // cache is in use).
            if !e.is_disk_full() || dir.is_none() {
                return Err(e);
            }
            tracing::warn!(error = %e, "using a temporary index cache for this run");
            drop(index);
            index = BlobIndex::open(None)?;
            self.sync_index(&index).await?;
        }
        Ok(IndexedRepository {
            repo: self,
            index: std::sync::Arc::new(index),
        })
    }

    /// Brings the cache up to date with the index objects in the repository.
    async fn sync_index(&self, index: &BlobIndex) -> Result<()> {
        let mut listed: HashSet<IndexId> = self.index_ids().await?.into_iter().collect();
        let loaded = index.loaded()?;
        let history = index.superseded()?;
        // Loaded but not listed: deleted (replaced by a prune or repair), or
        // too new for a listing that lags (eventually consistent stores).
        // Asking by name tells which.
        for id in loaded.difference(&listed.clone()) {
            if !history.contains(id) && self.backend.exists(&format!("index/{id}")).await? {
                listed.insert(*id);
            }
        }
        // Superseded counts only where the superseding object is listed
        // (see `BlobIndex::superseded_among`).
        let superseded = index.superseded_among(&listed)?;
        if !loaded.is_subset(&listed) || !loaded.is_disjoint(&superseded) {
            tracing::info!(
                "index objects were replaced since the cache was built: rebuilding the index cache"
            );
            index.clear()?;
        }
        let back = listed
            .iter()
            .filter(|i| history.contains(i) && !superseded.contains(i))
            .count();
        if back > 0 {
            tracing::warn!(
                objects = back,
                "index objects this cache saw superseded are listed without what superseded them: the repository was put back to an older state, or a copy of it shares this cache (`custos check` tells which); they are read"
            );
        }
        let loaded = index.loaded()?;
        let mut todo: Vec<IndexId> = listed
            .iter()
            .filter(|i| !loaded.contains(i) && !superseded.contains(i))
            .copied()
            .collect();
        todo.sort();
        self.load_objects(index, &todo).await?;
        // A newly read object may supersede one loaded before (a prune or repair
        // was interrupted between writing the new index and deleting the old):
        // the old entries are stale, so rebuild without them.
        let superseded = index.superseded_among(&listed)?;
        if !index.loaded()?.is_disjoint(&superseded) {
            index.clear()?;
            let mut todo: Vec<IndexId> = listed.difference(&superseded).copied().collect();
            todo.sort();
            self.load_objects(index, &todo).await?;
        }
        index.flush()
    }

    async fn load_objects(&self, index: &BlobIndex, ids: &[IndexId]) -> Result<()> {
        // Read a few objects at a time; each is inserted as soon as it arrives.
        for batch in ids.chunks(8) {
            let files = futures::future::join_all(batch.iter().map(|id| self.read_index(id))).await;
            for (id, f) in batch.iter().zip(files) {
                match f {
                    Ok(f) => index.add_index(*id, &f)?,
                    // Deleted since the listing: a prune replaced it (its
                    // marker, written first, is listed too) — or the listing
                    // lags behind the deletion.
                    Err(e) if is_not_found(&e) => {
                        tracing::debug!(index = %id, "index object gone since the listing");
                    }
                    Err(e @ Error::Integrity { .. }) => {
                        // A damaged index object must not stop backups or restores of
                        // what other objects index; `check` reports it, `repair`
                        // rebuilds it. It is not marked loaded, so it is retried.
                        tracing::warn!(index = %id, error = %e, "skipping a damaged index object");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// A tree must be stored as one: the index says which kind a blob is.
fn tree_kind(id: &BlobId, loc: &Location) -> Result<()> {
    if loc.kind == BlobKind::Tree {
        Ok(())
    } else {
        Err(Error::integrity(
            format!("tree {id}"),
            "the index lists it as a data blob",
        ))
    }
}

/// An opened repository with its blob index loaded (cheap to clone: the
/// index is shared).
#[derive(Clone)]
pub struct IndexedRepository {
    repo: Repository,
    index: std::sync::Arc<BlobIndex>,
}

impl Deref for IndexedRepository {
    type Target = Repository;
    fn deref(&self) -> &Repository {
        &self.repo
    }
}

impl IndexedRepository {
    /// The blob index.
    pub fn index(&self) -> &BlobIndex {
        &self.index
    }

    /// Where a blob is.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the index does not know it.
    pub(crate) fn locate(&self, id: &BlobId) -> Result<Location> {
        self.index
            .get(id)?
            .ok_or_else(|| Error::NotFound(format!("blob {id} (not in the index)")))
    }

    /// Reads, authenticates, decompresses and ID-checks one blob.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Backend`], [`Error::Integrity`].
    pub(crate) async fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?;
        self.repo.read_blob_at(id, &loc).await
    }

    /// Reads a tree blob.
    ///
    /// # Errors
    /// As [`Self::read_blob`], and [`Error::Integrity`] when it is not a tree.
    pub(crate) async fn read_tree(&self, id: &BlobId) -> Result<Tree> {
        let loc = self.locate(id)?;
        self.repo.read_tree_at(id, &loc).await
    }

    /// Lists snapshots, then brings the index up to date: a backup writes its
    /// index objects before its snapshot, so every snapshot returned can be
    /// read, even one that a concurrent backup wrote after this repository's
    /// index was loaded.
    ///
    /// # Errors
    /// As [`Repository::snapshots`] and `refresh_index`.
    pub async fn snapshots(&self) -> Result<(Vec<(SnapshotId, Snapshot)>, Vec<(String, Error)>)> {
        self.snapshots_naming(None).await
    }

    /// As [`Repository::snapshots_naming`], with the index brought up to
    /// date as in [`Self::snapshots`]. Index objects that a snapshot names but
    /// the listing of `index/` does not show yet are read by name.
    ///
    /// # Errors
    /// As [`Self::snapshots`].
    pub async fn snapshots_naming(
        &self,
        spec: Option<&str>,
    ) -> Result<(Vec<(SnapshotId, Snapshot)>, Vec<(String, Error)>)> {
        let listed = self.repo.snapshots_naming(spec).await?;
        self.refresh_index().await?;
        let loaded = self.index.loaded()?;
        let superseded = self.index.superseded_among(&loaded)?;
        let mut unseen: Vec<IndexId> = listed
            .0
            .iter()
            .flat_map(|(_, s)| s.index.iter())
            .filter(|i| !loaded.contains(i) && !superseded.contains(i))
            .copied()
            .collect();
        unseen.sort();
        unseen.dedup();
        if !unseen.is_empty() {
            tracing::debug!(
                objects = unseen.len(),
                "reading index objects that the listing does not show yet"
            );
            for id in unseen {
                match self.repo.read_index(&id).await {
                    Ok(f) => self.index.add_index(id, &f)?,
                    // Gone: a prune replaced it; its blobs are in the objects
                    // that superseded it. Remembered, so as not to ask again.
                    Err(e) if is_not_found(&e) => self.index.mark_gone(id)?,
                    Err(e @ Error::Integrity { .. }) => {
                        tracing::warn!(index = %id, error = %e, "skipping a damaged index object");
                    }
                    Err(e) => return Err(e),
                }
            }
            self.index.flush()?;
        }
        Ok(listed)
    }

    /// Re-reads the repository's index objects into the cache (after taking a
    /// lock, so that what a prune removed is no longer used for deduplication).
    ///
    /// # Errors
    /// Backend and cache errors.
    pub(crate) async fn refresh_index(&self) -> Result<()> {
        self.repo.sync_index(&self.index).await
    }

    /// Gives back the plain repository handle.
    pub fn into_inner(self) -> Repository {
        self.repo
    }
}

/// Picks a snapshot by ID, unique ID prefix or `latest` (`spec`), or as the
/// newest at or before `at`; only among snapshots passing `filter`.
/// `snaps` must be sorted oldest first, as [`Repository::snapshots`] returns
/// them.
///
/// # Errors
/// [`Error::Usage`] when both or an ambiguous prefix are given,
/// [`Error::NotFound`] when nothing matches.
pub fn select_snapshot_at<'a>(
    snaps: &'a [(SnapshotId, Snapshot)],
    spec: Option<&str>,
    at: Option<jiff::Timestamp>,
    filter: impl Fn(&Snapshot) -> bool,
) -> Result<&'a (SnapshotId, Snapshot)> {
    match (spec, at) {
        (Some(_), Some(_)) => Err(Error::Usage(
            "give either a snapshot or a point in time (--at), not both".into(),
        )),
        (None, Some(t)) => snaps
            .iter()
            .rev()
            .find(|(_, s)| filter(s) && s.timestamp() <= t)
            .ok_or_else(|| Error::NotFound(format!("a snapshot at or before {t}"))),
        (spec, None) => select_snapshot(snaps, spec.unwrap_or("latest"), filter),
    }
}

/// Resolves a snapshot selector: `latest`, a full ID or a unique prefix.
/// `filter` limits `latest` (and prefixes) to matching snapshots.
///
/// # Errors
/// [`Error::NotFound`], [`Error::Usage`] for an ambiguous prefix.
pub fn select_snapshot<'a>(
    snaps: &'a [(SnapshotId, Snapshot)],
    spec: &str,
    filter: impl Fn(&Snapshot) -> bool,
) -> Result<&'a (SnapshotId, Snapshot)> {
    if spec == "latest" {
        return snaps
            .iter()
            .rev()
            .find(|(_, s)| filter(s))
            .ok_or_else(|| Error::NotFound("a snapshot matching the selection (latest)".into()));
    }
    let spec_l = spec.to_ascii_lowercase();
    let hits: Vec<_> = snaps
        .iter()
        .filter(|(id, _)| id.to_hex().starts_with(&spec_l))
        .collect();
    match hits.len() {
        0 => Err(Error::NotFound(format!("snapshot {spec}"))),
        1 => Ok(hits[0]),
        n => Err(Error::Usage(format!(
            "snapshot prefix {spec} is ambiguous: {n} snapshots match"
        ))),
    }
}

/// An empty repository in memory, its index loaded, with a cheap key slot:
/// for the unit tests of the commands.
#[cfg(test)]
pub(crate) async fn test_repository(name: &str) -> IndexedRepository {
    let secret = Secret::Passphrase(zeroize::Zeroizing::new(format!("{name} passphrase")));
    let opts = InitOptions {
        kdf: KdfParams {
            m_kib: 1024,
            t: 1,
            p: 1,
        },
        ..InitOptions::default()
    };
    let backend = Backend::open(&format!("memory://{name}"), true).unwrap();
    Repository::init(backend, &secret, &opts, None)
        .await
        .unwrap()
        .load_index()
        .await
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keyslot::KdfParams;

    #[tokio::test]
    async fn a_cached_key_is_not_used_once_its_slot_is_removed_or_changed() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("repo");
        let url = url.to_str().unwrap();
        let pass = |p: &str| Secret::Passphrase(zeroize::Zeroizing::new(p.into()));
        let kdf = KdfParams {
            m_kib: 1024,
            t: 1,
            p: 1,
        };
        let opts = InitOptions {
            kdf,
            ..InitOptions::default()
        };
        let (first, _) =
            Repository::open_or_init(url, &pass("first"), &opts, None, &Default::default())
                .await
                .unwrap();
        assert!(
            key_cache::lookup(url, &pass("first")).is_some(),
            "init remembers its key"
        );
        let second = first.add_key(&pass("second"), kdf).await.unwrap();
        let old = first.slot_in_use();
        // Another process removes the first slot: the cached key must not
        // open the repository with the first passphrase any more.
        let b = Backend::open(url, false).unwrap();
        b.delete(&format!("keys/{old}")).await.unwrap();
        let e = Repository::open(b.clone(), &pass("first"), None)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, Error::WrongKey { .. }), "{e}");
        let r = Repository::open(b.clone(), &pass("second"), None)
            .await
            .unwrap();
        assert_eq!(r.slot_in_use(), second);
        // The slot it came from rewritten (same path, other bytes): derived
        // again, so a slot that no longer opens with the secret refuses it.
        let path = format!("keys/{second}");
        let mut slot: KeySlot = serde_json::from_slice(&b.get(&path).await.unwrap()).unwrap();
        slot.wrapped = "00".repeat(48);
        b.put(&path, Bytes::from(serde_json::to_vec(&slot).unwrap()))
            .await
            .unwrap();
        assert!(Repository::open(b, &pass("second"), None).await.is_err());
        key_cache::forget(url);
    }

    #[tokio::test]
    async fn open_or_init_creates_once_then_opens() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("repo");
        let url = url.to_str().unwrap();
        let secret = Secret::Passphrase(zeroize::Zeroizing::new("pw".into()));
        let opts = InitOptions {
            kdf: KdfParams {
                m_kib: 1024,
                t: 1,
                p: 1,
            },
            ..InitOptions::default()
        };
        let (a, created) = Repository::open_or_init(url, &secret, &opts, None, &Default::default())
            .await
            .unwrap();
        assert!(created);
        let (b, created) = Repository::open_or_init(url, &secret, &opts, None, &Default::default())
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(a.config().id, b.config().id);
        let wrong = Secret::Passphrase(zeroize::Zeroizing::new("other".into()));
        let e = Repository::open_or_init(url, &wrong, &opts, None, &Default::default())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, Error::WrongKey { .. }), "{e}");
        // Key slots by prefix: unique, missing, ambiguous ("" matches all).
        let slot = a.slot_in_use();
        let hex = slot.to_hex();
        assert_eq!(
            a.key_slot_by_prefix(&hex[..6].to_ascii_uppercase())
                .await
                .unwrap(),
            slot
        );
        assert!(matches!(
            a.key_slot_by_prefix("zz").await,
            Err(Error::NotFound(_))
        ));
        a.add_key(&wrong, opts.kdf).await.unwrap();
        assert!(matches!(
            a.key_slot_by_prefix("").await,
            Err(Error::Usage(_))
        ));
    }
}
