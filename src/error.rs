//! The public error type of the library.
//!
//! Every failure carries enough context to be printed as one clear sentence, and
//! maps to one of the exit codes that `CONTRACT.md` fixes (see [`Error::exit_code`]).

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms an operator can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line or a configuration value is wrong.
    #[error("{0}")]
    Usage(String),
    /// No repository exists at the given location.
    #[error("no repository at {0}: run `custos init` first, or check --repo")]
    NoRepository(String),
    /// `init` found an existing repository.
    #[error("a repository already exists at {0}: refusing to overwrite it")]
    RepositoryExists(String),
    /// No key slot opens with the passphrase or key file given.
    #[error(
        "wrong passphrase or key file: none of the repository's {slots} key slot(s) opens with it"
    )]
    WrongKey {
        /// How many slots were tried.
        slots: usize,
    },
    /// No passphrase or key file was given.
    #[error("no passphrase: set CUSTOS_PASSWORD, --password-file or --key-file")]
    NoKey,
    /// An object failed authentication, decoding or its ID check.
    #[error("{what} is damaged: {reason}")]
    Integrity {
        /// The object (path in the repository, or blob ID).
        what: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A referenced object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The repository is locked by another process.
    #[error("repository is locked: {0}")]
    Locked(String),
    /// The storage backend failed (after retries where the error was transient).
    #[error("storage backend failed to {op} {path}: {source}")]
    Backend {
        /// The operation attempted.
        op: &'static str,
        /// The object path.
        path: String,
        /// The underlying error.
        #[source]
        source: object_store::Error,
    },
    /// A local file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The operation ran to its end and found problems (reported before).
    #[error("{0}")]
    Problems(String),
    /// A restore or request was refused by policy.
    #[error("{0}")]
    Refused(String),
    /// Too much is asked at once (a per-tenant limit): try again later.
    #[error("{0}")]
    Busy(String),
}

impl Error {
    /// The process exit code for this error, as `CONTRACT.md` fixes them:
    /// 1 the operation ran and found a problem, 2 usage or configuration error,
    /// 3 repository locked or unreachable.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_)
            | Error::NoRepository(_)
            | Error::RepositoryExists(_)
            | Error::WrongKey { .. }
            | Error::NoKey => 2,
            Error::Locked(_) | Error::Busy(_) => 3,
            Error::Backend { source, .. } => match source {
                object_store::Error::NotFound { .. } => 1,
                object_store::Error::Unauthenticated { .. }
                | object_store::Error::PermissionDenied { .. } => 2,
                _ => 3,
            },
            Error::Integrity { .. }
            | Error::NotFound(_)
            | Error::Io { .. }
            | Error::Problems(_)
            | Error::Refused(_) => 1,
        }
    }

    /// Whether trying the same operation again later can succeed: the one
    /// rule the daemon's runner retries by.
    ///
    /// No for what says the same on every attempt: a usage or configuration
    /// error, a missing or existing repository, a wrong or missing key, a
    /// refusal, damaged data, credentials the store rejects. Yes for a lock
    /// (its holder ends), a limit (`Busy`), storage and local I/O failures
    /// (outages, a full disk that is freed), and problems found on the way
    /// (a hook that failed, a timeout).
    pub fn retry_can_help(&self) -> bool {
        match self {
            Error::Usage(_)
            | Error::NoRepository(_)
            | Error::RepositoryExists(_)
            | Error::WrongKey { .. }
            | Error::NoKey
            | Error::Refused(_)
            | Error::Integrity { .. } => false,
            Error::Backend { source, .. } => !matches!(
                source,
                object_store::Error::Unauthenticated { .. }
                    | object_store::Error::PermissionDenied { .. }
            ),
            Error::NotFound(_)
            | Error::Locked(_)
            | Error::Busy(_)
            | Error::Io { .. }
            | Error::Problems(_) => true,
        }
    }

    /// Shorthand for an integrity error.
    pub fn integrity(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Integrity {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for an I/O error on a path.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Shorthand for an I/O error with the path in the context.
    pub fn io_path(what: &str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }

    /// True when the error is an I/O error that a full disk caused.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }
}

/// Builds an I/O error closure for `map_err` with a path in the message.
pub(crate) fn at(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |e| Error::io_path(what, &path, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_for_what_can_change() {
        assert!(!Error::integrity("pack 1", "bad tag").retry_can_help());
        assert!(!Error::Refused("erased".into()).retry_can_help());
        assert!(!Error::WrongKey { slots: 2 }.retry_can_help());
        assert!(!Error::Backend {
            op: "get",
            path: "config".into(),
            source: object_store::Error::PermissionDenied {
                path: "config".into(),
                source: "denied".into(),
            },
        }
        .retry_can_help());
        assert!(Error::Backend {
            op: "get",
            path: "config".into(),
            source: object_store::Error::Generic {
                store: "S3",
                source: "connection reset".into(),
            },
        }
        .retry_can_help());
        assert!(Error::Locked("prune on host b".into()).retry_can_help());
        assert!(Error::io("cannot write x", std::io::Error::other("disk full")).retry_can_help());
    }
}
