//! Erasure's tables in the catalog: the end-of-contract state machine per
//! tenant (`erasures`), every object an erasure deleted (`erased`), every
//! target a tenant ever used (`tenant_targets`), and what is kept of an
//! erased tenant ([`ErasedTenant`], under a hash of its ID). The keys are
//! listed in [`crate::catalog`].

use serde::{Deserialize, Serialize};

use super::ErasureRecord;
use crate::catalog::{Catalog, Json, Table};
use crate::Result;

/// A tenant erased: what is left of it in the catalog, under a hash of its ID
/// (so that nothing here names it), for refusing it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedTenant {
    /// When the erasure completed (RFC 3339).
    pub completed: String,
    /// BLAKE3 of the certificate file (its name holds the tenant ID).
    pub certificate_blake3: String,
}

impl Json for ErasureRecord {}

impl Catalog {
    fn erasure_table(&self) -> Table<str, ErasureRecord> {
        self.table("erasures")
    }

    fn erased_table(&self) -> Table<str, (u64, Option<String>)> {
        self.table("erased")
    }

    fn tenant_target_table(&self) -> Table<str, String> {
        self.table("tenant_targets")
    }

    /// A tenant's erasure record: the live one while notice is given or
    /// erasure runs, or, once it is erased, a record rebuilt from what the
    /// catalog keeps (state, completion, certificate digest).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn erasure(&self, tenant: &str) -> Result<Option<ErasureRecord>> {
        if let Some(rec) = self.erasure_table().get(tenant)? {
            return Ok(Some(rec));
        }
        Ok(self
            .erased_marker::<ErasedTenant>(tenant)?
            .map(|e| ErasureRecord::erased(tenant, &e)))
    }

    /// Every live erasure record (notice given, erasing). Erased tenants are
    /// not listed: nothing here names them; their certificates do.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn erasures(&self) -> Result<Vec<ErasureRecord>> {
        self.erasure_table().values("")
    }

    /// Stores a tenant's erasure record (synced: it is a legal record).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn put_erasure(&self, rec: &ErasureRecord) -> Result<()> {
        self.erasure_table().put(&rec.tenant, rec)?;
        self.flush()
    }

    /// Records one object an erasure deleted (synced before the next delete
    /// counts on it).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn record_erased_object(
        &self,
        tenant: &str,
        target: &str,
        name: &str,
        size: u64,
        fingerprint: Option<&str>,
    ) -> Result<()> {
        let table = self.erased_table();
        table.put(
            &format!("{tenant}/{target}/{name}"),
            &(size, fingerprint.map(str::to_string)),
        )?;
        table.flush()
    }

    /// Records objects an erasure is about to delete on `target`, synced
    /// once for all of them. Recorded before their delete: an object
    /// recorded and not yet deleted when the process stops is deleted (and
    /// recorded again) when the erasure resumes, and no certificate is
    /// issued before the target is verified empty.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn record_erasing(
        &self,
        tenant: &str,
        target: &str,
        objects: &[(String, u64, Option<String>)],
    ) -> Result<()> {
        let table = self.erased_table();
        for (name, size, fp) in objects {
            table.put(&format!("{tenant}/{target}/{name}"), &(*size, fp.clone()))?;
        }
        table.flush()
    }

    /// The objects an erasure deleted on one target: (name, size, key
    /// fingerprint for key slots).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn erased_objects(
        &self,
        tenant: &str,
        target: &str,
    ) -> Result<Vec<(String, u64, Option<String>)>> {
        Ok(self
            .erased_table()
            .scan(&format!("{tenant}/{target}/"))?
            .into_iter()
            .map(|(name, (size, fp))| (name, size, fp))
            .collect())
    }

    /// Remembers a repository ID whose index cache must be removed.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn note_erasure_cache(&self, tenant: &str, repo_id: &str) -> Result<()> {
        self.erased_table()
            .put(&format!("{tenant}//cache/{repo_id}"), &(0, None))
    }

    /// The repository IDs noted by [`Catalog::note_erasure_cache`].
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn erasure_caches(&self, tenant: &str) -> Result<Vec<String>> {
        Ok(self
            .erased_table()
            .scan(&format!("{tenant}//cache/"))?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Remembers that `tenant` keeps data on target `name` at `url` (the
    /// target's URL, without the tenant): an erasure erases every target the
    /// tenant ever used, also those a later config no longer has.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn note_tenant_target(&self, tenant: &str, name: &str, url: &str) -> Result<()> {
        let table = self.tenant_target_table();
        let key = format!("{tenant}/{name}");
        if table.get(&key)?.is_some_and(|v| v == url) {
            return Ok(());
        }
        table.put(&key, &url.to_string())?;
        table.flush()
    }

    /// The targets noted for `tenant`: (name, target URL).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub(crate) fn tenant_targets(&self, tenant: &str) -> Result<Vec<(String, String)>> {
        self.tenant_target_table().scan(&format!("{tenant}/"))
    }
}
