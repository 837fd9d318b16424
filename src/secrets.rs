//! Where secrets come from, in one place: secret files, secret environment
//! variables, and the environment that child processes get.
//!
//! | source | rule |
//! |---|---|
//! | a file (passphrase, key file, API token, certificate signing key) | refused when group or others have any permission on it (`chmod 600`); read into memory that is wiped when dropped |
//! | a variable (`CUSTOS_PASSWORD`, a tenant's `password_env`, a token's `secret_env`, ...) | read once, its bytes in the process's environment block overwritten (so `/proc/<pid>/environ` no longer shows it), the variable removed, the value kept in wiped-on-drop memory: no child process inherits it |
//! | a hook, dump or drill command | starts from an empty environment plus `CHILD_ENV_ALLOWED` and its own `env`: no passphrase, token or cloud credential of the daemon leaks into it |
//!
//! Layer 0 of `docs/architecture.md`: it uses no other module of custos.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use zeroize::Zeroizing;

use crate::{Error, Result};

/// Variables a child process (hook, dump command, drill check) inherits
/// from the daemon; everything else it gets from its own `env`.
pub(crate) const CHILD_ENV_ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "TERM",
];

/// Reads a secret file, refusing one that group or others may access.
///
/// # Errors
/// [`Error::Usage`] naming the file and its mode when it is not private;
/// [`Error::Io`] when it cannot be read.
pub(crate) fn read_file(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    // A secret file that is missing or unreadable is a configuration error
    // (exit 2), not a failure of the operation.
    let f = std::fs::File::open(path)
        .map_err(|e| Error::Usage(format!("cannot read {what} {}: {e}", path.display())))?;
    let md = f
        .metadata()
        .map_err(|e| Error::io(format!("cannot read {what} {}", path.display()), e))?;
    check_private(path, what, md.mode())?;
    let mut buf = Zeroizing::new(Vec::with_capacity(md.len() as usize));
    std::io::Read::read_to_end(&mut &f, &mut buf)
        .map_err(|e| Error::io(format!("cannot read {what} {}", path.display()), e))?;
    Ok(buf)
}

/// Creates a new key file at `path`: 64 random bytes, mode 0600, synced;
/// never replaces an existing file.
///
/// # Errors
/// [`Error::Io`] naming the file (one that exists is an error too).
pub(crate) fn create_key_file(path: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key: Zeroizing<[u8; 64]> = Zeroizing::new(rand::random());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("cannot create key file {}", path.display()), e))?;
    f.write_all(&key[..])
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("cannot write key file {}", path.display()), e))
}

/// Refuses `mode` when group or others have any permission.
fn check_private(path: &Path, what: &str, mode: u32) -> Result<()> {
    if mode & 0o077 != 0 {
        return Err(Error::Usage(format!(
            "{what} {} has mode {:04o}: group and others can reach it; make it private with `chmod 600 {}`",
            path.display(),
            mode & 0o7777,
            path.display()
        )));
    }
    Ok(())
}

/// Secrets read from the environment, kept after their variable is gone.
fn taken() -> &'static Mutex<HashMap<String, Zeroizing<String>>> {
    static TAKEN: OnceLock<Mutex<HashMap<String, Zeroizing<String>>>> = OnceLock::new();
    TAKEN.get_or_init(Default::default)
}

/// The secret in the environment variable `name` (empty counts as unset):
/// read the first time, then removed from the process environment and
/// served from memory.
pub fn env(name: &str) -> Option<Zeroizing<String>> {
    let mut t = taken()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(v) = t.get(name) {
        return Some(v.clone());
    }
    let v = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    // Rust's own environment functions are serialised; the daemon harvests
    // its variables before it starts any thread (see `harvest`).
    scrub(name);
    std::env::remove_var(name);
    let v = Zeroizing::new(v);
    t.insert(name.to_string(), v.clone());
    Some(v)
}

/// Overwrites the value of `name` in the process's environment block with
/// zeros: the block is what `/proc/<pid>/environ` shows, and removing the
/// variable alone leaves its bytes there.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn scrub(name: &str) {
    // SAFETY: `environ` is the C library's NULL-terminated array of
    // NUL-terminated "NAME=value" strings; each entry is read up to its NUL
    // and only the value's bytes (before that NUL) are overwritten, so every
    // string stays NUL-terminated. Called while no other thread changes the
    // environment (Rust's env functions hold their own lock; `harvest` runs
    // before other threads exist).
    unsafe {
        let mut p = libc::environ;
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            let entry = std::ffi::CStr::from_ptr(*p).to_bytes();
            if entry.len() > name.len()
                && entry.starts_with(name.as_bytes())
                && entry[name.len()] == b'='
            {
                let value = (*p).add(name.len() + 1);
                std::ptr::write_bytes(value, 0, entry.len() - name.len() - 1);
            }
            p = p.add(1);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn scrub(_name: &str) {}

/// Takes every variable of `names` out of the environment now (call it
/// before other threads start, so that no foreign code reads the
/// environment while it changes).
pub fn harvest<'a>(names: impl IntoIterator<Item = &'a str>) {
    for n in names {
        let _ = env(n);
    }
}

/// Makes `cmd` start from a clean environment: [`CHILD_ENV_ALLOWED`] from
/// ours, nothing else (the caller adds the command's own `env` after).
pub(crate) fn clean_child_env(cmd: &mut std::process::Command) {
    cmd.env_clear();
    for k in CHILD_ENV_ALLOWED {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secret_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, b"secret").unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o644, false),
            (0o602, false),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = read_file(&p, "password file");
            assert_eq!(r.is_ok(), ok, "{mode:o}");
            if let Err(e) = r {
                let e = e.to_string();
                assert!(
                    e.contains(&format!("{mode:04o}")) && e.contains("chmod 600"),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn environment_secrets_are_taken_once_and_kept() {
        std::env::set_var("CUSTOS_SECRETS_UNIT_TEST", "s3cret");
        assert_eq!(
            env("CUSTOS_SECRETS_UNIT_TEST")
                .as_deref()
                .map(String::as_str),
            Some("s3cret")
        );
        assert!(std::env::var_os("CUSTOS_SECRETS_UNIT_TEST").is_none());
        assert_eq!(
            env("CUSTOS_SECRETS_UNIT_TEST")
                .as_deref()
                .map(String::as_str),
            Some("s3cret")
        );
        std::env::set_var("CUSTOS_SECRETS_UNIT_EMPTY", "");
        assert!(env("CUSTOS_SECRETS_UNIT_EMPTY").is_none());
    }

    #[test]
    fn a_taken_variable_is_gone_from_proc_environ() {
        // Start a child with the secret in its initial environment, have it
        // take the variable, then read its /proc/self/environ.
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "secrets::tests::probe_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CUSTOS_SECRETS_PROBE", "1")
            .env("CUSTOS_SECRETS_UNIT_SECRET", "hunter2-very-secret")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("PROBE-DONE"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn probe_child() {
        if std::env::var_os("CUSTOS_SECRETS_PROBE").is_none() {
            return;
        }
        assert!(env("CUSTOS_SECRETS_UNIT_SECRET").is_some());
        let environ = std::fs::read("/proc/self/environ").unwrap();
        println!("{}", String::from_utf8_lossy(&environ).replace('\0', "\n"));
        println!("PROBE-DONE");
    }

    #[test]
    fn children_get_only_the_allowed_variables() {
        std::env::set_var("CUSTOS_SECRETS_UNIT_CHILD", "leak");
        let mut c = std::process::Command::new("env");
        clean_child_env(&mut c);
        let out = String::from_utf8(c.output().unwrap().stdout).unwrap();
        assert!(!out.contains("CUSTOS_SECRETS_UNIT_CHILD"), "{out}");
        for line in out.lines() {
            let k = line.split('=').next().unwrap();
            assert!(CHILD_ENV_ALLOWED.contains(&k), "{k} leaked");
        }
    }
}
