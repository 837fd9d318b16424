//! [`Table<K, V>`]: one sled tree with typed keys and values, the same
//! get, put, scan and decode code for every table.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{db_err, Catalog};
use crate::Result;

/// A key's bytes in its table (they order the table's records).
pub trait Key {
    /// The bytes stored.
    fn key(&self) -> Vec<u8>;
}

impl Key for str {
    fn key(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl Key for String {
    fn key(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

/// Big-endian, so that keys sort by number.
impl Key for u64 {
    fn key(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }
}

impl Key for [u8] {
    fn key(&self) -> Vec<u8> {
        self.to_vec()
    }
}

/// How a value is stored.
pub trait Value: Sized {
    /// The bytes stored.
    ///
    /// # Errors
    /// Why it cannot be encoded.
    fn encode(&self) -> std::result::Result<Vec<u8>, String>;
    /// The value back from its bytes.
    ///
    /// # Errors
    /// Why the bytes are not such a value.
    fn decode(bytes: &[u8]) -> std::result::Result<Self, String>;
}

/// A value stored as JSON (the records of jobs, restores, erasures, …).
pub trait Json: Serialize + DeserializeOwned {}

impl<T: Json> Value for T {
    fn encode(&self) -> std::result::Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| e.to_string())
    }
    fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// An object an erasure deleted: its size and, for a key slot, the key's
/// fingerprint.
impl Json for (u64, Option<String>) {}

/// Counters: big-endian (an unreadable value counts as 0).
impl Value for u64 {
    fn encode(&self) -> std::result::Result<Vec<u8>, String> {
        Ok(self.to_be_bytes().to_vec())
    }
    fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        Ok(<[u8; 8]>::try_from(bytes).map_or(0, u64::from_be_bytes))
    }
}

/// Plain text (times, URLs).
impl Value for String {
    fn encode(&self) -> std::result::Result<Vec<u8>, String> {
        Ok(self.as_bytes().to_vec())
    }
    fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// One table of the catalog: keys `K`, values `V`. Cheap to make; every
/// call works on the database of the moment (a rewrite replaces it).
pub struct Table<K: ?Sized, V> {
    catalog: Catalog,
    name: &'static str,
    types: PhantomData<fn(&K) -> V>,
}

impl<K: Key + ?Sized, V: Value> Table<K, V> {
    pub(super) fn new(catalog: Catalog, name: &'static str) -> Table<K, V> {
        Table {
            catalog,
            name,
            types: PhantomData,
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<V> {
        V::decode(bytes).map_err(|e| db_err(self.name, e))
    }

    fn encode(&self, v: &V) -> Result<Vec<u8>> {
        v.encode().map_err(|e| db_err(self.name, e))
    }

    /// The value under `key`.
    ///
    /// # Errors
    /// [`crate::Error::Io`]: the database failed or the value does not decode.
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let raw = self.catalog.with_tree(self.name, |t| {
            t.get(key.key()).map_err(|e| db_err(self.name, e))
        })?;
        raw.map(|v| self.decode(&v)).transpose()
    }

    /// Stores `value` under `key` (insert or replace).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        let bytes = self.encode(value)?;
        self.catalog.with_tree(self.name, |t| {
            t.insert(key.key(), bytes)
                .map_err(|e| db_err(self.name, e))?;
            Ok(())
        })
    }

    /// Removes the value under `key`.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn remove(&self, key: &K) -> Result<()> {
        self.catalog.with_tree(self.name, |t| {
            t.remove(key.key()).map_err(|e| db_err(self.name, e))?;
            Ok(())
        })
    }

    /// Replaces the value under `key` by `f(old)` in one atomic step.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn update(&self, key: &K, f: impl Fn(Option<V>) -> V) -> Result<()> {
        self.catalog.with_tree(self.name, |t| {
            t.update_and_fetch(key.key(), |old| {
                let old = old.and_then(|b| V::decode(b).ok());
                f(old).encode().ok()
            })
            .map_err(|e| db_err(self.name, e))?;
            Ok(())
        })
    }

    /// Every record whose key starts with `prefix`, in key order: (the key
    /// after the prefix, value).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn scan(&self, prefix: &str) -> Result<Vec<(String, V)>> {
        let raw = self.catalog.with_tree(self.name, |t| {
            t.scan_prefix(prefix)
                .map(|item| item.map_err(|e| db_err(self.name, e)))
                .collect::<Result<Vec<_>>>()
        })?;
        raw.into_iter()
            .map(|(k, v)| {
                let rest = k.get(prefix.len()..).unwrap_or_default();
                Ok((String::from_utf8_lossy(rest).into_owned(), self.decode(&v)?))
            })
            .collect()
    }

    /// The values whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn values(&self, prefix: &str) -> Result<Vec<V>> {
        Ok(self.scan(prefix)?.into_iter().map(|(_, v)| v).collect())
    }

    /// The last `limit` values (in key order) under `prefix` that pass
    /// `filter`, last first.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn newest(
        &self,
        prefix: &str,
        limit: usize,
        filter: impl Fn(&V) -> bool,
    ) -> Result<Vec<V>> {
        self.catalog.with_tree(self.name, |t| {
            let mut out = Vec::new();
            for item in t.scan_prefix(prefix).rev() {
                if out.len() >= limit {
                    break;
                }
                let (_, v) = item.map_err(|e| db_err(self.name, e))?;
                let v = self.decode(&v)?;
                if filter(&v) {
                    out.push(v);
                }
            }
            Ok(out)
        })
    }

    /// Removes every record whose value passes `doomed`; returns how many.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn remove_where(&self, doomed: impl Fn(&V) -> bool) -> Result<usize> {
        self.catalog.with_tree(self.name, |t| {
            let mut n = 0;
            for item in t.iter() {
                let (k, v) = item.map_err(|e| db_err(self.name, e))?;
                // A record that does not decode is left for `rebuild`.
                if V::decode(&v).is_ok_and(|v| doomed(&v)) {
                    t.remove(k).map_err(|e| db_err(self.name, e))?;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// Removes every record under `prefix`; returns their values in key
    /// order.
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn remove_prefix(&self, prefix: &str) -> Result<Vec<V>> {
        self.catalog.with_tree(self.name, |t| {
            let mut out = Vec::new();
            for item in t.scan_prefix(prefix) {
                let (k, v) = item.map_err(|e| db_err(self.name, e))?;
                out.push(self.decode(&v)?);
                t.remove(k).map_err(|e| db_err(self.name, e))?;
            }
            Ok(out)
        })
    }

    /// Writes this table to disk (the records of legal weight are synced
    /// before the next step counts on them).
    ///
    /// # Errors
    /// [`crate::Error::Io`].
    pub fn flush(&self) -> Result<()> {
        crate::util::blocking(|| {
            self.catalog.with_tree(self.name, |t| {
                t.flush().map_err(|e| db_err(self.name, e))?;
                Ok(())
            })
        })
    }
}
