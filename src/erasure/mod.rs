//! End of contract: erasure of a tenant's data and the deletion certificate.
//!
//! So far: the certificate (canonical JSON signed with the operator's Ed25519
//! key, Merkle roots over the deleted objects, offline verification). The
//! erasure state machine that fills it is the next step.

pub mod certificate;
