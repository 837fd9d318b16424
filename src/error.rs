//! The public error type of the library.
//!
//! Every failure carries enough context to be printed as one clear sentence, and
//! maps to one of the exit codes that `CONTRACT.md` fixes (see [`Error::exit_code`]).
//!
//! Layer 0 of `docs/architecture.md`: it uses no other module of custos.

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
    #[error("no passphrase: give --password-file, --password-command or --key-file, set CUSTOS_PASSWORD, or run on a terminal to be asked")]
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
    /// The daemon's API does not answer (it is not running, or not at that
    /// address): distinct from a repository lock.
    #[error("the daemon does not answer: {0}")]
    DaemonUnreachable(String),
    /// A hook or a source command could not start, failed, or was killed
    /// at its time limit (its stderr is in the message).
    #[error("{0}")]
    Command(String),
    /// The operation ran out of its time limit.
    #[error("{0}")]
    Timeout(String),
    /// The operation was cancelled (a job's time limit, the daemon
    /// stopping) and left nothing half-written.
    #[error("{0}")]
    Cancelled(String),
    /// A failure inside custos (a worker thread that stopped, a record that
    /// cannot be encoded): a bug to report, not something a retry mends.
    #[error("{0}")]
    Internal(String),
}

/// What kind of failure an [`Error`] is: what an operator (or the daemon's
/// runner) does about it. [`Error::kind`] gives it; the exit code and
/// whether a retry can help follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The command line or the config is wrong: fix it.
    Usage,
    /// No repository there, or one already there.
    Repository,
    /// No key given, or none of the slots opens with it.
    Key,
    /// Stored data is damaged: check, repair, back up again.
    Integrity,
    /// Something asked for does not exist.
    NotFound,
    /// Another process holds the repository: wait, or `unlock` a stale lock.
    Locked,
    /// The storage could not be reached or failed: try again later.
    Unreachable,
    /// The storage refused the credentials: fix them.
    Denied,
    /// The daemon's API does not answer: start it, or check the address.
    DaemonUnreachable,
    /// A local file-system operation failed.
    Io,
    /// The operation ran and found problems (already reported).
    Problems,
    /// Refused by policy (restore window, erased tenant, legal hold).
    Refused,
    /// A limit is reached: try again later.
    Busy,
    /// A hook or source command failed: see its stderr.
    Command,
    /// A time limit ran out.
    Timeout,
    /// Cancelled on purpose.
    Cancelled,
    /// A failure inside custos: report it.
    Internal,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(_) => ErrorKind::Usage,
            Error::NoRepository(_) | Error::RepositoryExists(_) => ErrorKind::Repository,
            Error::WrongKey { .. } | Error::NoKey => ErrorKind::Key,
            Error::Integrity { .. } => ErrorKind::Integrity,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Locked(_) => ErrorKind::Locked,
            Error::Backend { source, .. } => match source {
                object_store::Error::NotFound { .. } => ErrorKind::NotFound,
                object_store::Error::Unauthenticated { .. }
                | object_store::Error::PermissionDenied { .. } => ErrorKind::Denied,
                _ => ErrorKind::Unreachable,
            },
            Error::Io { .. } => ErrorKind::Io,
            Error::Problems(_) => ErrorKind::Problems,
            Error::Refused(_) => ErrorKind::Refused,
            Error::Busy(_) => ErrorKind::Busy,
            Error::DaemonUnreachable(_) => ErrorKind::DaemonUnreachable,
            Error::Command(_) => ErrorKind::Command,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Cancelled(_) => ErrorKind::Cancelled,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The process exit code for this error, as `CONTRACT.md` fixes them:
    /// 1 the operation ran and found a problem, 2 usage or configuration error,
    /// 3 repository locked or unreachable (the daemon too).
    pub fn exit_code(&self) -> i32 {
        match self.kind() {
            ErrorKind::Usage | ErrorKind::Repository | ErrorKind::Key | ErrorKind::Denied => 2,
            ErrorKind::Locked
            | ErrorKind::Busy
            | ErrorKind::Unreachable
            | ErrorKind::DaemonUnreachable => 3,
            ErrorKind::Integrity
            | ErrorKind::NotFound
            | ErrorKind::Io
            | ErrorKind::Problems
            | ErrorKind::Refused
            | ErrorKind::Command
            | ErrorKind::Timeout
            | ErrorKind::Cancelled
            | ErrorKind::Internal => 1,
        }
    }

    /// Whether trying the same operation again later can succeed: the one
    /// rule the daemon's runner retries by.
    ///
    /// No for what says the same on every attempt: a usage or configuration
    /// error, a missing or existing repository, a wrong or missing key, a
    /// refusal, damaged data, credentials the store rejects, a cancellation,
    /// a failure inside custos. Yes for a lock
    /// (its holder ends), a limit (`Busy`), storage, daemon and local I/O
    /// failures (outages, a full disk that is freed), a hook or command that
    /// failed, a time limit, and problems found on the way.
    pub fn retry_can_help(&self) -> bool {
        match self.kind() {
            ErrorKind::Usage
            | ErrorKind::Repository
            | ErrorKind::Key
            | ErrorKind::Refused
            | ErrorKind::Integrity
            | ErrorKind::Denied
            | ErrorKind::Cancelled
            | ErrorKind::Internal => false,
            ErrorKind::NotFound
            | ErrorKind::Locked
            | ErrorKind::Busy
            | ErrorKind::Unreachable
            | ErrorKind::DaemonUnreachable
            | ErrorKind::Io
            | ErrorKind::Problems
            | ErrorKind::Command
            | ErrorKind::Timeout => true,
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
    fn locked_unreachable_and_daemon_unreachable_are_kinds_of_their_own_with_exit_3() {
        let backend = Error::Backend {
            op: "get",
            path: "config".into(),
            source: object_store::Error::Generic {
                store: "S3",
                source: "connection refused".into(),
            },
        };
        let kinds = [
            Error::Locked("backup on host a".into()).kind(),
            backend.kind(),
            Error::DaemonUnreachable("connection refused".into()).kind(),
        ];
        assert_eq!(
            kinds,
            [
                ErrorKind::Locked,
                ErrorKind::Unreachable,
                ErrorKind::DaemonUnreachable
            ]
        );
        assert_eq!(backend.exit_code(), 3);
        assert_eq!(Error::DaemonUnreachable(String::new()).exit_code(), 3);
        assert_eq!(Error::NoKey.exit_code(), 2);
        assert_eq!(Error::Refused(String::new()).exit_code(), 1);
    }

    #[test]
    fn a_cancellation_or_a_failure_inside_custos_is_not_retried_a_timeout_is() {
        assert!(!Error::Cancelled("stopped".into()).retry_can_help());
        assert!(!Error::Internal("worker panicked".into()).retry_can_help());
        assert!(Error::Timeout("timed out after 60 s".into()).retry_can_help());
        assert!(Error::Command("pre hook `pg_dump` exited 1".into()).retry_can_help());
        for e in [
            Error::Cancelled(String::new()),
            Error::Internal(String::new()),
            Error::Timeout(String::new()),
            Error::Command(String::new()),
        ] {
            assert_eq!(e.exit_code(), 1, "{:?}", e.kind());
        }
    }

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
        assert!(Error::DaemonUnreachable("connection refused".into()).retry_can_help());
        assert!(Error::io("cannot write x", std::io::Error::other("disk full")).retry_can_help());
    }
}
