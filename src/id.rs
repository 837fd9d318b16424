//! Identifier newtypes: 32-byte IDs shown as lowercase hex.
//!
//! In human-readable formats (JSON) they serialize as hex strings, in binary
//! formats (CBOR) as byte strings.
//!
//! Layer 0 of `docs/architecture.md`: it uses no other module of custos.

use std::fmt;
use std::str::FromStr;

/// The short form of an ID shown to people: its first 8 hex characters
/// (all of it when shorter). The one rule for short IDs, typed or not.
pub(crate) fn short(hex: &str) -> &str {
    hex.get(..8).unwrap_or(hex)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// A new random ID.
            pub fn random() -> Self {
                Self(rand::random())
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// Lowercase hex, 64 characters.
            pub fn to_hex(self) -> String {
                hex::encode(self.0)
            }
            /// The first 8 hex characters, for display (`id::short`).
            pub fn short(&self) -> String {
                short(&self.to_hex()).to_string()
            }
            /// Parses from a 32-byte slice.
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                <[u8; 32]>::try_from(b).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<Self> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| {
                    crate::Error::Usage(format!(
                        "{s:?} is not a valid {}: 64 hex characters expected",
                        stringify!($name)
                    ))
                })?;
                Ok(Self(out))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        /// In the API's OpenAPI description: 64 lowercase hex characters.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some("^[0-9a-f]{64}$"))
                    .description(Some(concat!(stringify!($name), ": 64 lowercase hex characters")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::Error as _;
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    s.parse().map_err(|_| D::Error::custom("invalid hex ID"))
                } else {
                    let b: serde_bytes::ByteBuf = serde_bytes::ByteBuf::deserialize(d)?;
                    Self::from_slice(&b).ok_or_else(|| D::Error::custom("ID must be 32 bytes"))
                }
            }
        }
    };
}

id_type!(
    /// A blob: a chunk of file data or a serialized tree. Keyed BLAKE3 of the plaintext.
    BlobId
);
id_type!(
    /// A pack object under `data/`. Random.
    PackId
);
id_type!(
    /// An index object under `index/`. Random.
    IndexId
);
id_type!(
    /// A snapshot object under `snapshots/`. Random.
    SnapshotId
);
id_type!(
    /// A key slot under `keys/`. Random.
    KeyId
);
id_type!(
    /// A repository. Random, fixed at `init`.
    RepoId
);
id_type!(
    /// A lock object under `locks/`. Random.
    LockId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = BlobId::random();
        let parsed: BlobId = id.to_hex().parse().unwrap();
        assert_eq!(id, parsed);
        assert!("zz".parse::<BlobId>().is_err());
    }

    #[test]
    fn serde_forms() {
        let id = PackId::random();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.to_hex()));
        let mut cbor = Vec::new();
        ciborium::into_writer(&id, &mut cbor).unwrap();
        assert_eq!(cbor.len(), 34); // major type 2, length 32, 32 bytes
        let back: PackId = ciborium::from_reader(&cbor[..]).unwrap();
        assert_eq!(back, id);
    }
}
