//! External programs a backup job runs: pre/post hooks (quiesce, snapshot,
//! thaw) and stream sources (a dump command whose stdout is the backup).
//!
//! Commands are argument vectors, never shell strings: a config value cannot
//! inject a command. Both kinds get the job's identity in the environment
//! (`CUSTOS_TENANT`, `CUSTOS_SERVICE`, `CUSTOS_JOB_ID`, `CUSTOS_HOOK`), and both
//! report the tail of their stderr when they fail.

use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{Error, Result};

/// How many stderr lines a failure message quotes.
const STDERR_TAIL_LINES: usize = 5;

/// A command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl CommandSpec {
    fn command(&self) -> Result<Command> {
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| Error::Usage("empty command".into()))?;
        let mut c = Command::new(program);
        c.args(args).stdin(Stdio::null());
        // A clean environment: no passphrase, token or cloud credential of
        // ours leaks into a hook or dump command (see crate::secrets).
        crate::secrets::clean_child_env(&mut c);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        Ok(c)
    }

    /// The program's name for messages.
    pub fn name(&self) -> &str {
        self.argv.first().map_or("(empty)", String::as_str)
    }
}

/// Keeps the last lines a child writes on stderr.
#[derive(Clone, Default)]
struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn collect(&self, stderr: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        let tail = self.0.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                tracing::debug!(target: "custos::hook", "{line}");
                if let Ok(mut t) = tail.lock() {
                    if t.len() == STDERR_TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
        })
    }

    fn text(&self) -> String {
        self.0
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join(" | "))
            .unwrap_or_default()
    }
}

fn failure(name: &str, status: ExitStatus, tail: &str) -> String {
    let how = match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => "was killed by a signal".to_string(),
    };
    if tail.is_empty() {
        format!("`{name}` {how}")
    } else {
        format!("`{name}` {how}: {tail}")
    }
}

/// Runs a hook to completion within `timeout`; a hook still running then is
/// killed.
///
/// # Errors
/// [`Error::Command`] naming the hook when it cannot start, fails, or times
/// out.
pub(crate) async fn run_hook(spec: &CommandSpec, what: &str, timeout: Duration) -> Result<()> {
    let mut cmd = spec.command()?;
    cmd.env("CUSTOS_HOOK", what)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Command(format!("{what} hook `{}` cannot start: {e}", spec.name())))?;
    let tail = StderrTail::default();
    let reader = child.stderr.take().map(|stderr| {
        let tail = tail.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut t) = tail.0.lock() {
                    if t.len() == STDERR_TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
        })
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(Error::Command(format!(
                "{what} hook `{}`: {e}",
                spec.name()
            )))
        }
        Err(_) => {
            let _ = child.kill().await;
            return Err(Error::Command(format!(
                "{what} hook `{}` timed out after {} s and was killed",
                spec.name(),
                timeout.as_secs()
            )));
        }
    };
    if let Some(r) = reader {
        let _ = r.await;
    }
    if status.success() {
        Ok(())
    } else {
        Err(Error::Command(format!(
            "{what} hook {}",
            failure(spec.name(), status, &tail.text())
        )))
    }
}

/// A dump command's stdout as a backup stream. At the end of the output the
/// command's exit status is checked: a command that fails makes the read fail,
/// so the backup fails and no snapshot of a truncated dump is written. The
/// command is killed if the reader is dropped early (backup failed or timed
/// out).
pub(crate) struct CommandStream {
    name: String,
    child: Child,
    stdout: std::process::ChildStdout,
    tail: StderrTail,
    stderr_thread: Option<std::thread::JoinHandle<()>>,
    done: bool,
}

impl CommandStream {
    /// Starts the command.
    ///
    /// # Errors
    /// [`Error::Command`] when it cannot start.
    pub(crate) fn spawn(spec: &CommandSpec) -> Result<CommandStream> {
        let mut cmd = spec.command()?;
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            Error::Command(format!(
                "source command `{}` cannot start: {e}",
                spec.name()
            ))
        })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Command(format!(
                "source command `{}`: no pipes",
                spec.name()
            )));
        };
        let tail = StderrTail::default();
        let stderr_thread = Some(tail.collect(stderr));
        Ok(CommandStream {
            name: spec.name().to_string(),
            child,
            stdout,
            tail,
            stderr_thread,
            done: false,
        })
    }
}

impl Read for CommandStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        // End of output: the dump is only complete if the command succeeded.
        let status = self.child.wait()?;
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        self.done = true;
        if status.success() {
            Ok(0)
        } else {
            Err(std::io::Error::other(failure(
                &self.name,
                status,
                &self.tail.text(),
            )))
        }
    }
}

impl Drop for CommandStream {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> CommandSpec {
        CommandSpec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("GREETING".into(), "hello".into())],
        }
    }

    #[tokio::test]
    async fn hooks_succeed_fail_with_stderr_and_time_out() {
        run_hook(
            &sh("test \"$GREETING\" = hello"),
            "pre",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let e = run_hook(
            &sh("echo quiesce failed >&2; exit 4"),
            "pre",
            Duration::from_secs(5),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("pre hook `sh` exited with status 4: quiesce failed"),
            "{e}"
        );
        let e = run_hook(&sh("sleep 30"), "post", Duration::from_millis(200))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("timed out"), "{e}");
        let e = run_hook(
            &CommandSpec {
                argv: vec!["/nonexistent/quiesce".into()],
                env: vec![],
            },
            "pre",
            Duration::from_secs(1),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot start"), "{e}");
    }

    #[test]
    fn a_stream_reads_all_output_then_checks_the_exit_status() {
        let mut out = Vec::new();
        CommandStream::spawn(&sh("printf 'dump of %s' \"$GREETING\""))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"dump of hello");

        let mut out = Vec::new();
        let e = CommandStream::spawn(&sh(
            "printf partial; echo 'pg_dump: connection refused' >&2; exit 1",
        ))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err()
        .to_string();
        assert_eq!(out, b"partial");
        assert!(
            e.contains("exited with status 1: pg_dump: connection refused"),
            "{e}"
        );
    }

    #[test]
    fn dropping_a_stream_kills_the_command() {
        let mut s = CommandStream::spawn(&sh("yes")).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap(), 16);
        drop(s);
    }
}
