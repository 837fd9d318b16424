#!/usr/bin/env bash
# Writes link/startup-order.txt: the functions a release build of custos runs
# before and during the derivation of a repository key, which build.rs has
# lld place first in the binary's code (see build.rs and the section
# "The floor of the short steps" in docs/performance.md).
#
#   bash link/startup-order.sh [--custos PATH] [--out FILE]
#
#   --custos PATH   profile this release binary instead of `cargo build --release`
#                   (it must be built from this tree with this toolchain: the
#                   list holds its mangled names)
#   --out FILE      write here instead of link/startup-order.txt
#
# Needs valgrind (callgrind). Runs in a temporary directory it removes: a small
# tree, a repository, then each short command under callgrind, dumped when
# Argon2 starts, and once more collecting only inside the derivation; the
# functions of the custos binary with cost in those parts are the list, in
# the order callgrind reports them, the commands' lists merged. Make it again when Cargo.lock or the toolchain
# changes (tests/suite/build_layout.rs fails until then) and after changes to
# custos's code: generic functions instantiated in custos (closures of std's
# Once, iterator adapters, serde and clap helpers) are named with a hash of
# their codegen unit (`.llvm.<n>`), which changes with the code, and lld
# silently skips names it does not find (after c7822c6's changes 56 of 874
# names were stale, and `check` peaked 2 MiB higher).
set -euo pipefail

REPO_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$REPO_ROOT/link/startup-order.txt"
CUSTOS_BIN=""

die() { echo "startup-order.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --custos) [[ $# -ge 2 ]] || die "--custos needs a value"; CUSTOS_BIN="$2"; shift 2 ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a value"; OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) die "unknown option $1" ;;
    esac
done

command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
command -v python3 >/dev/null || die "python3 is not installed"

if [[ -z "$CUSTOS_BIN" ]]; then
    (cd -- "$REPO_ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
    CUSTOS_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/custos"
fi
[[ -x "$CUSTOS_BIN" ]] || die "$CUSTOS_BIN is not an executable"
CUSTOS_BIN="$(cd -- "$(dirname -- "$CUSTOS_BIN")" && pwd)/$(basename -- "$CUSTOS_BIN")"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/custos-startup-order.XXXXXX")"
trap 'rm -rf -- "$WORK"' EXIT

export CUSTOS_PASSWORD="startup-order"
unset CUSTOS_PASSWORD_FILE CUSTOS_KEY_FILE CUSTOS_REPOSITORY
REPO="$WORK/repo"
TREE="$WORK/tree"
mkdir -p "$TREE/a/b" "$WORK/restore"
for i in $(seq 1 50); do head -c $((i * 997)) /dev/urandom > "$TREE/a/f$i"; done
seq 1 200000 > "$TREE/a/b/numbers.txt"
ln -s a/f1 "$TREE/link"

"$CUSTOS_BIN" -r "$REPO" init >/dev/null
"$CUSTOS_BIN" -r "$REPO" backup "$TREE" >/dev/null 2>&1
"$CUSTOS_BIN" -r "$REPO" backup "$TREE" >/dev/null 2>&1

# The short steps of benches/compare.sh and benches/scale.sh, check first.
COMMANDS=(
    "check"
    "backup $TREE --json"
    "forget --keep-last 1 --prune"
    "check --read-data"
    "snapshots"
    "restore latest --target $WORK/restore/1 --include $TREE/a/f1"
    "restore latest --privileged --target $WORK/restore/2"
    "ls latest"
    "stats"
)

DERIVE='*Argon2*hash_password_into*'
PARTS=()
n=0
for cmd in "${COMMANDS[@]}"; do
    n=$((n + 1))
    # shellcheck disable=SC2086 # the command's words
    valgrind --tool=callgrind --demangle=no --dump-before="$DERIVE" \
        --callgrind-out-file="$WORK/cg.$n.%p" \
        "$CUSTOS_BIN" -r "$REPO" $cmd >"$WORK/log.$n" 2>&1 \
        || die "\`custos $cmd\` failed under callgrind: $(tail -n 3 "$WORK/log.$n")"
    part=("$WORK"/cg."$n".*.1)
    [[ -f "${part[0]}" ]] || die "\`custos $cmd\` derived no key (no dump at Argon2)"
    PARTS+=("${part[0]}")
done
# The derivation itself (the same in every command): collected only inside it.
valgrind --tool=callgrind --demangle=no --collect-atstart=no --toggle-collect="$DERIVE" \
    --callgrind-out-file="$WORK/cg.derive" "$CUSTOS_BIN" -r "$REPO" check >"$WORK/log.derive" 2>&1 \
    || die "\`custos check\` failed under callgrind: $(tail -n 3 "$WORK/log.derive")"
PARTS+=("$WORK/cg.derive")

LOCK_SHA256="$(sha256sum "$REPO_ROOT/Cargo.lock" | cut -d' ' -f1)"
python3 - "$CUSTOS_BIN" "$OUT" "$LOCK_SHA256" "$(rustc -V)" "${PARTS[@]}" <<'EOF'
import re, sys

binary, out, lock, rustc = sys.argv[1:5]
parts = sys.argv[5:]
NAME = re.compile(r"[A-Za-z0-9_$.]+")

def functions(path):
    """Functions of `binary` with cost in one callgrind dump, in file order."""
    tables = {"ob": {}, "fn": {}}
    ob, found = None, []
    def name(kind, text):
        m = re.match(r"\((\d+)\)(?: (.*))?$", text)
        if not m:
            return text
        if m.group(2) is not None:
            tables[kind][m.group(1)] = m.group(2)
        return tables[kind].get(m.group(1))
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("ob="):
                ob = name("ob", line[3:])
            elif line.startswith("cob="):
                name("ob", line[4:])
            elif line.startswith("fn="):
                fn = name("fn", line[3:])
                if ob == binary and fn:
                    found.append(fn)
            elif line.startswith("cfn="):
                name("fn", line[4:])
    return found

order, seen = [], set()
for part in parts:
    for fn in functions(part):
        fn = re.sub(r"'\d+$", "", fn)  # callgrind's recursion depth
        # (callgrind names a function without a symbol by its address)
        if NAME.fullmatch(fn) and not fn.startswith("0x") and fn not in seen:
            seen.add(fn)
            order.append(fn)
if len(order) < 100:
    sys.exit(f"startup-order.sh: only {len(order)} functions found; is {binary} a release build with symbols?")

with open(out, "w") as f:
    f.write("# Functions custos runs before and during the key derivation, for lld's\n")
    f.write("# --symbol-ordering-file (build.rs). Written by link/startup-order.sh.\n")
    f.write(f"# rustc: {rustc}\n")
    f.write(f"# Cargo.lock sha256: {lock}\n")
    for fn in order:
        f.write(fn + "\n")
print(f"{out}: {len(order)} functions", file=sys.stderr)
EOF
