#![allow(dead_code)]
//! Runs the `custos` binary against a repository, with an isolated cache and
//! environment, and checks exit codes and output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A repository for one test: its URL, the environment to reach it, and a
/// private scratch directory (removed on drop).
pub struct Env {
    /// Scratch directory: cache, sources, restore targets.
    pub dir: tempfile::TempDir,
    /// Repository URL.
    pub repo: String,
    /// Extra environment (store credentials).
    pub vars: Vec<(String, String)>,
    /// Passphrase.
    pub password: String,
}

/// The built binary.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_custos")
}

impl Env {
    /// A local repository in a fresh temporary directory.
    pub fn local() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo").to_string_lossy().into_owned();
        Env {
            dir,
            repo,
            vars: Vec::new(),
            password: "correct horse battery staple".into(),
        }
    }

    /// A repository at `url` reached with `vars`.
    pub fn remote(url: String, vars: Vec<(String, String)>) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        Env {
            dir,
            repo: url,
            vars,
            password: "correct horse battery staple".into(),
        }
    }

    /// A path inside the scratch directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command with the repository, passphrase and cache set; the caller's
    /// store variables and passwords are cleared so tests do not leak into
    /// each other.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_")
                || k.starts_with("AZURE_")
                || k.starts_with("AZURITE_")
                || k.starts_with("CUSTOS_")
            {
                c.env_remove(k);
            }
        }
        c.env("CUSTOS_REPOSITORY", &self.repo)
            .env("CUSTOS_PASSWORD", &self.password)
            .env("CUSTOS_CACHE_DIR", self.dir.path().join("cache"))
            .env("CUSTOS_TEST_FAST_KDF", "1")
            .env("CUSTOS_BACKEND_RETRIES", "2")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    /// Runs with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run custos")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "custos {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs and expects exit code `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let o = self.run(args);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(code),
            "custos {args:?}: expected exit {code}\nstdout:\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&o.stdout)
        );
        stderr
    }

    /// Runs with `--json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("custos {args:?}: bad JSON ({e}):\n{out}"))
    }

    /// The IDs `snapshots --json` lists, in its order.
    pub fn snapshot_ids(&self) -> Vec<String> {
        self.json(&["snapshots"])
            .as_array()
            .expect("snapshots --json gives an array")
            .iter()
            .map(|s| s["id"].as_str().expect("an id").to_string())
            .collect()
    }

    /// Runs with data on stdin and expects success; returns stdout.
    pub fn ok_stdin(&self, args: &[&str], input: &[u8]) -> String {
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn custos");
        let mut stdin = child.stdin.take().expect("stdin");
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let o = child.wait_with_output().expect("wait custos");
        writer.join().expect("writer");
        assert!(
            o.status.success(),
            "custos {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Writes a small mixed tree: text, random data, a multi-chunk file, nesting.
pub fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("docs/deep/er")).expect("mkdir");
    std::fs::write(
        root.join("docs/readme.txt"),
        b"custos test tree\n".repeat(100),
    )
    .expect("write");
    std::fs::write(
        root.join("docs/deep/er/data.bin"),
        pseudo_random(300_000, 1),
    )
    .expect("write");
    std::fs::write(root.join("big.bin"), pseudo_random(3 << 20, 2)).expect("write");
    std::fs::write(root.join("empty"), b"").expect("write");
}

/// Asserts two trees hold the same names and file contents.
pub fn assert_same_content(a: &Path, b: &Path) {
    let mut left = Vec::new();
    let mut right = Vec::new();
    list(a, a, &mut left);
    list(b, b, &mut right);
    assert_eq!(
        left.len(),
        right.len(),
        "different entry counts between {} and {}",
        a.display(),
        b.display()
    );
    for (l, r) in left.iter().zip(&right) {
        assert_eq!(l, r, "entries differ");
    }
}

fn list(root: &Path, p: &Path, out: &mut Vec<(PathBuf, Option<Vec<u8>>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(p)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for e in entries {
        let md = std::fs::symlink_metadata(&e).expect("lstat");
        let rel = e.strip_prefix(root).expect("prefix").to_path_buf();
        if md.is_dir() {
            out.push((rel, None));
            list(root, &e, out);
        } else if md.is_file() {
            out.push((rel, Some(std::fs::read(&e).expect("read"))));
        } else {
            out.push((rel, None));
        }
    }
}

/// Where a restored copy of the absolute path `src` lands under `target`.
pub fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").expect("absolute source"))
}

/// Flips one bit of the byte at `offset` (from the end when negative) of a file.
pub fn flip_byte(path: &Path, offset: i64) {
    let mut data = std::fs::read(path).expect("read");
    let i = if offset < 0 {
        (data.len() as i64 + offset) as usize
    } else {
        offset as usize
    };
    data[i] ^= 0x01;
    std::fs::write(path, data).expect("write");
}

/// All files under a local repository's folder (e.g. `data`), sorted.
pub fn objects(repo: &str, folder: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![Path::new(repo).join(folder)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Copies a tree of directories and regular files (an expected state to
/// compare restores with later).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

/// Writes a secret file (passphrase, key, token) private to its owner (mode
/// 0600), as custos requires of secret files.
pub fn write_secret(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt;
    let path = path.as_ref();
    std::fs::write(path, contents).expect("write secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}
