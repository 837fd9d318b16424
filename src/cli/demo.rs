//! `custos demo`: a guided tour on a local repository, driving this same binary
//! through the commands an operator would type, so what it shows is real.

use std::path::{Path, PathBuf};
use std::process::Command;

use custos::{Error, Result};

const PASSPHRASE: &str = "demo passphrase (use a real one!)";

/// The tour's runner: in text mode each step's command and output go to the
/// terminal; with `--json` the narrative goes to stderr and every step's
/// JSON output is collected into the one document printed at the end.
struct Tour {
    exe: PathBuf,
    repo: PathBuf,
    cache: PathBuf,
    json: bool,
    title: String,
    steps: Vec<serde_json::Value>,
}

impl Tour {
    fn step(&mut self, title: &str) {
        if self.json {
            eprintln!("\n=== {title} ===");
        } else {
            println!("\n=== {title} ===");
        }
        self.title = title.to_string();
    }

    /// Runs `custos ARGS` on the demo repository, stdin from `input`.
    fn run(&mut self, args: &[&str], input: Option<&Path>) -> Result<()> {
        let shown = match input {
            Some(p) => format!(
                "$ custos {} < {}",
                args.join(" "),
                p.file_name().unwrap_or_default().to_string_lossy()
            ),
            None => format!("$ custos {}", args.join(" ")),
        };
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .env("CUSTOS_REPOSITORY", &self.repo)
            .env("CUSTOS_PASSWORD", PASSPHRASE)
            .env("CUSTOS_CACHE_DIR", &self.cache);
        if let Some(p) = input {
            let f = std::fs::File::open(p).map_err(|e| Error::io_path("cannot open", p, e))?;
            cmd.stdin(f);
        }
        let failed = |status: std::process::ExitStatus| {
            Error::Problems(format!(
                "demo step `custos {}` failed ({status})",
                args.join(" ")
            ))
        };
        if !self.json {
            println!("{shown}");
            let status = cmd
                .status()
                .map_err(|e| Error::io("cannot run custos", e))?;
            return if status.success() {
                Ok(())
            } else {
                Err(failed(status))
            };
        }
        eprintln!("{shown}");
        let out = cmd
            .arg("--json")
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| Error::io("cannot run custos", e))?;
        if !out.status.success() {
            return Err(failed(out.status));
        }
        let output: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            Error::Internal(format!(
                "demo step `custos {}` gave no JSON: {e}",
                args.join(" ")
            ))
        })?;
        self.steps.push(serde_json::json!({
            "step": self.title,
            "command": shown.trim_start_matches("$ "),
            "output": output,
        }));
        Ok(())
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

/// Runs the tour in `dir` (recreated); with `json`, prints one JSON
/// document of every step's output.
pub(crate) fn run(dir: &Path, json: bool) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::io("cannot find the custos binary", e))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io_path("cannot clear", dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io_path("cannot create", dir, e))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::io_path("cannot resolve", dir, e))?;
    let (src, out) = (dir.join("source"), dir.join("restore"));
    let mut t = Tour {
        exe,
        repo: dir.join("repo"),
        cache: dir.join("cache"),
        json,
        title: String::new(),
        steps: Vec::new(),
    };
    make_source(&src)?;
    let s = src.to_string_lossy().into_owned();

    let intro = format!(
        "custos demo in {} (passphrase: {PASSPHRASE:?})",
        dir.display()
    );
    if json {
        eprintln!("{intro}");
    } else {
        println!("{intro}");
    }
    t.step("1. create an encrypted repository");
    t.run(&["init"], None)?;
    t.step("2. first backup of a service's files");
    t.run(&["backup", &s, "--service", "web", "--tag", "daily"], None)?;
    t.step("3. back up again: unchanged files are not even read");
    t.run(&["backup", &s, "--service", "web", "--tag", "daily"], None)?;
    t.step("4. change a little and back up: only new chunks are stored");
    let conf = src.join("etc/web-0.conf");
    let mut text = std::fs::read(&conf).map_err(|e| Error::io_path("cannot read", &conf, e))?;
    text.extend_from_slice(b"# changed by the demo\n");
    write(&conf, &text)?;
    t.run(
        &["backup", &s, "--service", "web", "--tag", "pre-change"],
        None,
    )?;
    t.step("5. a database dump streamed from stdin");
    let dump_path = dir.join("dump.sql");
    let dump: String = (0..5_000)
        .map(|i| format!("INSERT INTO items VALUES ({i}, 'item {i}');\n"))
        .collect();
    write(&dump_path, dump.as_bytes())?;
    t.run(
        &[
            "backup",
            "--stdin",
            "--stdin-name",
            "items.sql",
            "--service",
            "db",
        ],
        Some(&dump_path),
    )?;
    t.step("6. list snapshots");
    t.run(&["snapshots"], None)?;
    t.step("7. restore the newest web snapshot and verify every file");
    let target = out.to_string_lossy().into_owned();
    t.run(
        &[
            "restore",
            "latest",
            "--service",
            "web",
            "--target",
            &target,
            "--verify",
        ],
        None,
    )?;
    t.step("8. verify the whole repository, reading every blob");
    t.run(&["check", "--read-data"], None)?;
    t.step("9. sizes: deduplication and compression");
    t.run(&["stats"], None)?;
    if json {
        super::print_json(&serde_json::json!({
            "dir": dir,
            "repository": t.repo,
            "restored_to": out,
            "passphrase": PASSPHRASE,
            "steps": t.steps,
        }))?;
    } else {
        println!(
            "\ndemo complete: repository in {}, restored files in {}",
            t.repo.display(),
            out.display()
        );
    }
    Ok(())
}
