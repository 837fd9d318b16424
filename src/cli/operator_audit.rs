//! Operators' commands that change a repository are recorded in the audit
//! log when one is configured, and refused when it cannot be written.

use std::path::PathBuf;

use custos::{Error, Result};

/// The audit log operators' commands write to, opened (and verified) at
/// the start of a command that changes a repository, when one is
/// configured: `CUSTOS_AUDIT_LOG`, or `<state_dir>/audit.log` of the config
/// named by `CUSTOS_CONFIG`, or of `/etc/custos/custos.toml` when it exists.
static OPERATOR_AUDIT: std::sync::OnceLock<Option<custos::audit::AuditLog>> =
    std::sync::OnceLock::new();

/// Where operators' commands are audited, if anywhere.
fn operator_audit_path() -> Result<Option<PathBuf>> {
    if let Some(p) = std::env::var_os("CUSTOS_AUDIT_LOG").filter(|p| !p.is_empty()) {
        return Ok(Some(PathBuf::from(p)));
    }
    let (config, explicit) = match std::env::var_os("CUSTOS_CONFIG").filter(|p| !p.is_empty()) {
        Some(c) => (PathBuf::from(c), true),
        None => (PathBuf::from("/etc/custos/custos.toml"), false),
    };
    if !explicit && !config.exists() {
        return Ok(None);
    }
    match custos::config::Config::load(&config) {
        Ok(cfg) => Ok(Some(cfg.state_dir.join("audit.log"))),
        Err(e) if explicit => Err(e.into()),
        Err(e) => {
            eprintln!(
                "warning: {} does not load ({e}): this command is not audited",
                config.display()
            );
            Ok(None)
        }
    }
}

/// Opens the operators' audit log before an act: a configured log that
/// cannot be opened (or does not verify) refuses the act (fail closed).
pub(crate) fn require_operator_audit() -> Result<()> {
    let log = match operator_audit_path()? {
        Some(path) => Some(custos::audit::AuditLog::open(&path).map_err(|e| {
            Error::Refused(format!(
                "the audit log {} cannot be used ({e}): the command is refused",
                path.display()
            ))
        })?),
        None => None,
    };
    let _ = OPERATOR_AUDIT.set(log);
    Ok(())
}

/// Records an operator's act in the audit log opened by
/// [`require_operator_audit`], if any.
///
/// # Errors
/// When the record cannot be written (the act is done: exit 1 says the
/// audit trail is missing it).
pub(crate) fn audit_cli(action: &str, details: serde_json::Value) -> Result<()> {
    let Some(Some(log)) = OPERATOR_AUDIT.get() else {
        return Ok(());
    };
    let actor = format!("operator:{}@{}", custos::username(), custos::hostname());
    let tenant = details["tenant"].as_str().map(str::to_string);
    log.append(&actor, action, tenant.as_deref(), details)
        .map(|_| ())
        .map_err(|e| {
            Error::Problems(format!(
                "done, but the audit record could not be written: {e}"
            ))
        })
}
