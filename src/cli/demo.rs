//! `custos demo`: a guided tour on a local repository, driving this same binary
//! through the commands an operator would type, so what it shows is real.

use std::path::{Path, PathBuf};
use std::process::Command;

use custos::{Error, Result};

const PASSPHRASE: &str = "demo passphrase (use a real one!)";

fn step(title: &str) {
    println!("\n=== {title} ===");
}

fn custos(exe: &Path, repo: &Path, cache: &Path, args: &[&str]) -> Result<()> {
    println!("$ custos {}", args.join(" "));
    let status = Command::new(exe)
        .args(args)
        .env("CUSTOS_REPOSITORY", repo)
        .env("CUSTOS_PASSWORD", PASSPHRASE)
        .env("CUSTOS_CACHE_DIR", cache)
        .status()
        .map_err(|e| Error::io("cannot run custos", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Problems(format!(
            "demo step `custos {}` failed ({status})",
            args.join(" ")
        )))
    }
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| Error::io_path("cannot create", p, e))?;
    }
    std::fs::write(path, data).map_err(|e| Error::io_path("cannot write", path, e))
}

/// A small service's data: configuration, logs, a VM-disk-like file.
fn make_source(src: &Path) -> Result<()> {
    for i in 0..20 {
        let text = format!("[service]\nname = \"web-{i}\"\nreplicas = {}\n", i % 3 + 1).repeat(20);
        write(&src.join(format!("etc/web-{i}.conf")), text.as_bytes())?;
    }
    let log: String = (0..20_000)
        .map(|i| {
            format!(
                "2026-11-22T10:{:02}:{:02}Z GET /api/v1/items/{i} 200\n",
                i / 60 % 60,
                i % 60
            )
        })
        .collect();
    write(&src.join("var/log/access.log"), log.as_bytes())?;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let disk: Vec<u8> = (0..24 << 20)
        .map(|i| {
            if (i / (1 << 20)) % 3 == 2 {
                0
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect();
    write(&src.join("images/disk.img"), &disk)
}

/// Runs the tour in `dir` (recreated).
pub(crate) fn run(dir: &Path) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find the custos binary", e))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io_path("cannot clear", dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io_path("cannot create", dir, e))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::io_path("cannot resolve", dir, e))?;
    let (repo, cache, src, out): (PathBuf, PathBuf, PathBuf, PathBuf) = (
        dir.join("repo"),
        dir.join("cache"),
        dir.join("source"),
        dir.join("restore"),
    );
    make_source(&src)?;
    let s = src.to_string_lossy().into_owned();
    let c = |args: &[&str]| custos(&exe, &repo, &cache, args);

    println!(
        "custos demo in {} (passphrase: {PASSPHRASE:?})",
        dir.display()
    );
    step("1. create an encrypted repository");
    c(&["init"])?;
    step("2. first backup of a service's files");
    c(&["backup", &s, "--service", "web", "--tag", "daily"])?;
    step("3. back up again: unchanged files are not even read");
    c(&["backup", &s, "--service", "web", "--tag", "daily"])?;
    step("4. change a little and back up: only new chunks are stored");
    let conf = src.join("etc/web-0.conf");
    let mut text = std::fs::read(&conf).map_err(|e| Error::io_path("cannot read", &conf, e))?;
    text.extend_from_slice(b"# changed by the demo\n");
    write(&conf, &text)?;
    c(&["backup", &s, "--service", "web", "--tag", "pre-change"])?;
    step("5. a database dump streamed from stdin");
    let dump_path = dir.join("dump.sql");
    let dump: String = (0..5_000)
        .map(|i| format!("INSERT INTO items VALUES ({i}, 'item {i}');\n"))
        .collect();
    write(&dump_path, dump.as_bytes())?;
    println!("$ custos backup --stdin --stdin-name items.sql --service db < dump.sql");
    let f = std::fs::File::open(&dump_path)
        .map_err(|e| Error::io_path("cannot open", &dump_path, e))?;
    let ok = Command::new(&exe)
        .args([
            "backup",
            "--stdin",
            "--stdin-name",
            "items.sql",
            "--service",
            "db",
        ])
        .env("CUSTOS_REPOSITORY", &repo)
        .env("CUSTOS_PASSWORD", PASSPHRASE)
        .env("CUSTOS_CACHE_DIR", &cache)
        .stdin(f)
        .status()
        .map_err(|e| Error::io("cannot run custos", e))?
        .success();
    if !ok {
        return Err(Error::Problems("demo stream backup failed".into()));
    }
    step("6. list snapshots");
    c(&["snapshots"])?;
    step("7. restore the newest web snapshot and verify every file");
    c(&[
        "restore",
        "latest",
        "--service",
        "web",
        "--target",
        &out.to_string_lossy(),
        "--verify",
    ])?;
    step("8. verify the whole repository, reading every blob");
    c(&["check", "--read-data"])?;
    step("9. sizes: deduplication and compression");
    c(&["stats"])?;
    println!(
        "\ndemo complete: repository in {}, restored files in {}",
        repo.display(),
        out.display()
    );
    Ok(())
}
