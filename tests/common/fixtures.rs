//! Config fixtures under `tests/fixtures/`, filled in for one test.

use std::path::{Path, PathBuf};

/// The fixtures directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Writes `tests/fixtures/<name>` to `<dir>/custos.toml` with `@DIR@`
/// replaced by `dir` and each `@KEY@` of `vars` by its value; panics when a
/// placeholder is left, so a fixture and its callers cannot drift apart.
pub fn config(name: &str, dir: &Path, vars: &[(&str, &str)]) -> PathBuf {
    let text = std::fs::read_to_string(self::dir().join(name))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    // Comments describe the placeholders; only the settings are filled in.
    let mut body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    body = body.replace("@DIR@", &dir.display().to_string());
    for (k, v) in vars {
        body = body.replace(&format!("@{k}@"), v);
    }
    assert!(
        !body.contains('@'),
        "fixture {name}: a placeholder is not filled in:\n{body}"
    );
    let path = dir.join("custos.toml");
    std::fs::write(&path, body).unwrap();
    path
}
