//! The repository config: plaintext JSON, authenticated with a MAC under a key
//! derived from the master key (a forged config, e.g. with tiny chunk sizes, is
//! rejected once the repository is opened).

use serde::{Deserialize, Serialize};

use crate::crypto::Keys;
use crate::id::RepoId;
use crate::{Error, Result};

/// Current repository format version.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Content-defined chunking parameters.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    /// Minimum chunk size in bytes.
    pub min: u32,
    /// Average (target) chunk size in bytes.
    pub avg: u32,
    /// Maximum chunk size in bytes.
    pub max: u32,
}

impl Default for ChunkerParams {
    /// 512 KiB / 1 MiB / 8 MiB: large enough to keep the index small (about one
    /// entry per MiB of unique data), small enough that an edit re-uploads little.
    fn default() -> Self {
        ChunkerParams {
            min: 512 * 1024,
            avg: 1024 * 1024,
            max: 8 * 1024 * 1024,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds FastCDC accepts.
    ///
    /// # Errors
    /// When a size is out of range or they are not ordered.
    pub fn validate(&self) -> Result<()> {
        let ok = (64..=1 << 20).contains(&self.min)
            && (256..=4 << 20).contains(&self.avg)
            && (1024..=16 << 20).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max
            && self.min % 2 == 0
            && self.avg % 2 == 0
            && self.max % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "invalid chunker sizes {}/{}/{}: need even min ≤ avg ≤ max, min ≤ 1 MiB, avg ≤ 4 MiB, max ≤ 16 MiB",
                self.min, self.avg, self.max
            )))
        }
    }
}

/// The body of the `config` object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Format version.
    pub version: u32,
    /// Repository ID.
    pub id: RepoId,
    /// Chunker parameters (the gear seed is derived from the master key).
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u64,
    /// Creation time, RFC 3339.
    pub created: String,
}

/// The stored form: the body and its MAC.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    config: RepoConfig,
    /// Hex BLAKE3 keyed hash of the canonical JSON of `config`.
    mac: String,
}

impl RepoConfig {
    /// A new config with a random ID.
    pub fn new(chunker: ChunkerParams, pack_size: u64) -> Self {
        RepoConfig {
            version: FORMAT_VERSION,
            id: RepoId::random(),
            chunker,
            pack_size,
            created: crate::util::stamp(jiff::Timestamp::now()),
        }
    }

    fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Encodes the stored form with its MAC.
    pub fn encode(&self, keys: &Keys) -> Vec<u8> {
        let stored = Stored {
            config: self.clone(),
            mac: hex::encode(keys.config_mac(&self.canonical())),
        };
        serde_json::to_vec_pretty(&stored).unwrap_or_default()
    }

    /// Decodes without checking the MAC (needed before the key is known).
    ///
    /// # Errors
    /// When the JSON is malformed or the version is unknown.
    pub fn decode_unverified(data: &[u8]) -> Result<(RepoConfig, String)> {
        let s: Stored = serde_json::from_slice(data)
            .map_err(|e| Error::integrity("config", format!("cannot decode: {e}")))?;
        if s.config.version != FORMAT_VERSION {
            return Err(Error::integrity(
                "config",
                format!(
                    "format version {} is not supported (this custos reads {FORMAT_VERSION})",
                    s.config.version
                ),
            ));
        }
        s.config
            .chunker
            .validate()
            .map_err(|e| Error::integrity("config", e.to_string()))?;
        Ok((s.config, s.mac))
    }

    /// Checks the MAC once the master key is known.
    ///
    /// # Errors
    /// When the MAC does not match.
    pub fn verify(&self, mac: &str, keys: &Keys) -> Result<()> {
        let expected = hex::encode(keys.config_mac(&self.canonical()));
        if expected == mac {
            Ok(())
        } else {
            Err(Error::integrity(
                "config",
                "MAC mismatch: the config was altered or belongs to another repository",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn mac_detects_edit() {
        let keys = MasterKey::generate().keys();
        let c = RepoConfig::new(ChunkerParams::default(), 16 << 20);
        let enc = c.encode(&keys);
        let (d, mac) = RepoConfig::decode_unverified(&enc).unwrap();
        d.verify(&mac, &keys).unwrap();
        let text = String::from_utf8(enc)
            .unwrap()
            .replace("\"min\": 524288", "\"min\": 65536");
        let (d, mac) = RepoConfig::decode_unverified(text.as_bytes()).unwrap();
        assert!(d.verify(&mac, &keys).is_err());
    }
}
