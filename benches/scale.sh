#!/usr/bin/env bash
# Scale benchmark: custos beside restic on trees of many small files of unique content.
#
#   benches/scale.sh [--files LIST] [--tools LIST] [--load N] [--workdir DIR]
#                    [--custos PATH] [--tree-dir DIR] [--keep]
#
#   --files LIST    comma-separated file counts (default 100000,1000000)
#   --tools LIST    comma-separated subset of custos,restic,rustic (default custos,restic;
#                   rustic is used from PATH or ~/.cargo/bin, see compare.sh --build-rustic)
#   --load N        run N CPU-bound processes for the whole run (default 0): the peak
#                   memory of a pipeline with bounded queues does not depend on which
#                   stage is slower, so it must not change under load
#   --workdir DIR   scratch space (default ${TMPDIR:-/tmp}/custos-scale); must be outside the repo
#   --custos PATH   custos binary (default: cargo build --release)
#   --tree-dir DIR  where the trees are made (default WORKDIR). A tmpfs (/dev/shm) keeps
#                   them in memory where the kernel evicts cold page cache on its own
#                   (DAMON pageout): reading a million files once takes longer than such a
#                   kernel keeps them, so on a disk the larger tree is partly read from it
#   --keep          keep trees and repositories (results.tsv and logs/ are always kept)
#
# Each tree has N files of 512-2560 bytes (1.5 KiB average) of pseudo-random content, so
# every file is one blob and no two are alike, 1000 files per directory. For each N and
# each tool, in this order: first backup, unchanged re-backup, backup after adding 1 % new
# files, check (structure), restore of one file, forget --keep-last 1 --prune. Every step
# runs under GNU time (wall, user, system, peak RSS); before each step what it reads (the
# tree for a backup, the repository otherwise) is read once,
# so that every tool finds it in the page cache. The report gives, per step, the
# figures for every N, the growth from the smallest to the largest N, and custos/peer
# ratios at the largest N.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd)"

FILES_ARG="100000,1000000"
TOOLS_ARG="custos,restic"
LOAD=0
WORKDIR="${TMPDIR:-/tmp}/custos-scale"
CUSTOS_BIN=""
KEEP=0
TREE_DIR=""

usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "scale.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --files) [[ $# -ge 2 ]] || die "--files needs a value"; FILES_ARG="$2"; shift 2 ;;
        --tools) [[ $# -ge 2 ]] || die "--tools needs a value"; TOOLS_ARG="$2"; shift 2 ;;
        --load) [[ $# -ge 2 ]] || die "--load needs a value"; LOAD="$2"; shift 2 ;;
        --workdir) [[ $# -ge 2 ]] || die "--workdir needs a value"; WORKDIR="$2"; shift 2 ;;
        --custos) [[ $# -ge 2 ]] || die "--custos needs a value"; CUSTOS_BIN="$2"; shift 2 ;;
        --tree-dir) [[ $# -ge 2 ]] || die "--tree-dir needs a value"; TREE_DIR="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ "$LOAD" =~ ^[0-9]+$ ]] || die "--load takes a number"
IFS=',' read -r -a COUNTS <<<"$FILES_ARG"
for n in "${COUNTS[@]}"; do [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1000 ]] || die "file counts must be integers >= 1000"; done
IFS=',' read -r -a TOOLS <<<"$TOOLS_ARG"
for t in "${TOOLS[@]}"; do case "$t" in custos|restic|rustic) ;; *) die "unknown tool '$t'" ;; esac; done
has_tool() { local x; for x in "${TOOLS[@]}"; do [[ "$x" == "$1" ]] && return 0; done; return 1; }

WORKDIR="$(realpath -m -- "$WORKDIR")"
case "$WORKDIR/" in "$(realpath -m -- "$REPO_ROOT")/"*) die "--workdir must be outside the repository" ;; esac
[[ "$WORKDIR" != "/" ]] || die "--workdir must not be /"
TREE_DIR="$(realpath -m -- "${TREE_DIR:-$WORKDIR}")"
[[ "$TREE_DIR" != "/" ]] || die "--tree-dir must not be /"
LOGS="$WORKDIR/logs"; RESULTS="$WORKDIR/results.tsv"
mkdir -p -- "$LOGS"

LOAD_PIDS=()
cleanup() {
    local rc=$?
    local p; for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [[ "$KEEP" -eq 0 ]]; then rm -rf -- "$TREE_DIR"/tree-* "$WORKDIR"/repos "$WORKDIR"/caches "$WORKDIR"/restore 2>/dev/null || true; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ tools
[[ -x /usr/bin/time ]] || die "GNU time is required (apt-get install time)"
if has_tool restic && ! command -v restic >/dev/null 2>&1; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q restic >"$LOGS/apt.log" 2>&1 || true
    fi
    command -v restic >/dev/null 2>&1 || die "restic is not installed (apt-get install restic)"
fi
RUSTIC_BIN="$(command -v rustic 2>/dev/null || true)"
[[ -z "$RUSTIC_BIN" && -x "$HOME/.cargo/bin/rustic" ]] && RUSTIC_BIN="$HOME/.cargo/bin/rustic"
if has_tool rustic && [[ -z "$RUSTIC_BIN" ]]; then
    die "rustic is not installed (benches/compare.sh --build-rustic installs it)"
fi
if has_tool custos; then
    if [[ -z "$CUSTOS_BIN" ]]; then
        (cd "$REPO_ROOT" && cargo build --release -q) || die "cargo build --release failed"
        CUSTOS_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/custos"
    fi
    [[ "$CUSTOS_BIN" == /* ]] || CUSTOS_BIN="$PWD/$CUSTOS_BIN"
    [[ -x "$CUSTOS_BIN" ]] || die "no custos binary at $CUSTOS_BIN"
fi

export CUSTOS_PASSWORD="custos-bench-password" RESTIC_PASSWORD="custos-bench-password"
export RUSTIC_PASSWORD="custos-bench-password"
unset CUSTOS_REPOSITORY CUSTOS_PASSWORD_FILE CUSTOS_KEY_FILE RESTIC_REPOSITORY RESTIC_PASSWORD_FILE \
      RUSTIC_REPOSITORY 2>/dev/null || true

# ------------------------------------------------------------------ trees
gen_tree() {   # DIR COUNT FIRST_INDEX: COUNT files numbered from FIRST_INDEX, 1000 per directory
    python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
root, count, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(first, first + count):
    d = os.path.join(root, "d%05d" % (i // 1000))
    if i % 1000 == 0 or i == first:
        os.makedirs(d, exist_ok=True)
    rng = random.Random(i * 2654435761 + 17)
    size = rng.randint(512, 2560)
    with open(os.path.join(d, "f%07d" % i), "wb") as f:
        f.write(b"custos-scale %d\n" % i)
        f.write(rng.randbytes(size))
PY
}

# ------------------------------------------------------------------ commands
# cmd TOOL STEP N: fills CMD for the step on the tree of N files
cmd() {
    local tool="$1" step="$2" n="$3"
    local repo="$WORKDIR/repos/$tool-$n" tree="$TREE_DIR/tree-$n" cache="$WORKDIR/caches/$tool-$n"
    local one
    one="$tree/d$(printf %05d $((n / 2000)))/f$(printf %07d $((n / 2000 * 1000 + 7)))"
    local target="$WORKDIR/restore/$tool-$n"
    case "$tool/$step" in
        custos/init)    CMD=(env CUSTOS_CACHE_DIR="$cache" "$CUSTOS_BIN" -r "$repo" init) ;;
        custos/backup*) CMD=(env CUSTOS_CACHE_DIR="$cache" "$CUSTOS_BIN" -r "$repo" backup "$tree") ;;
        custos/check)   CMD=(env CUSTOS_CACHE_DIR="$cache" "$CUSTOS_BIN" -r "$repo" check) ;;
        custos/restore-one) CMD=(env CUSTOS_CACHE_DIR="$cache" "$CUSTOS_BIN" -r "$repo" restore latest --target "$target" --include "$one") ;;
        custos/forget-prune) CMD=(env CUSTOS_CACHE_DIR="$cache" "$CUSTOS_BIN" -r "$repo" forget --keep-last 1 --prune) ;;
        restic/init)    CMD=(restic --cache-dir "$cache" -r "$repo" init --repository-version 2) ;;
        restic/backup*) CMD=(restic --cache-dir "$cache" -r "$repo" -q backup --host scale "$tree") ;;
        restic/check)   CMD=(restic --cache-dir "$cache" -r "$repo" check) ;;
        restic/restore-one) CMD=(restic --cache-dir "$cache" -r "$repo" -q restore latest --target "$target" --include "$one") ;;
        restic/forget-prune) CMD=(restic --cache-dir "$cache" -r "$repo" forget --keep-last 1 --prune) ;;
        rustic/init)    CMD=("$RUSTIC_BIN" --cache-dir "$cache" -r "$repo" init) ;;
        rustic/backup*) CMD=("$RUSTIC_BIN" --cache-dir "$cache" -r "$repo" backup --host scale "$tree") ;;
        rustic/check)   CMD=("$RUSTIC_BIN" --cache-dir "$cache" -r "$repo" check) ;;
        rustic/restore-one) CMD=("$RUSTIC_BIN" --cache-dir "$cache" -r "$repo" restore "latest:$one" "$target/f") ;;
        rustic/forget-prune) CMD=("$RUSTIC_BIN" --cache-dir "$cache" -r "$repo" forget --keep-last 1 --prune) ;;
    esac
}

STEPS=(backup-1st backup-unchanged backup-1pct-new check restore-one forget-prune)
declare -A WALL CPU RSS STATUS

measure() {   # tool step n
    local tool="$1" step="$2" n="$3"
    local log="$LOGS/$n-$step-$tool.log" tf="$LOGS/$n-$step-$tool.time" rc=0
    cmd "$tool" "$step" "$n"
    # Every step finds what it reads in the page cache, whoever goes first: the
    # tree for a backup, the repository otherwise.
    local warm="$WORKDIR/repos/$tool-$n"
    [[ "$step" == backup* ]] && warm="$TREE_DIR/tree-$n"
    find "$warm" -type f -print0 | xargs -0 -r cat >/dev/null
    sync
    { printf '# cmd:'; printf ' %q' "${CMD[@]}"; echo; } >"$log"
    /usr/bin/time -o "$tf" -f '%e %U %S %M' "${CMD[@]}" >>"$log" 2>&1 || rc=$?
    local w u s m
    read -r w u s m < <(tail -n 1 "$tf") || true
    local k="$n/$step/$tool"
    if [[ "$rc" -ne 0 || ! "$w" =~ ^[0-9.]+$ ]]; then
        STATUS[$k]=FAIL; WALL[$k]=""; CPU[$k]=""; RSS[$k]=""
        echo "  $tool $step ($n): FAILED (exit $rc), see $log" >&2
        tail -n 5 "$log" | sed 's/^/    /' >&2
    else
        STATUS[$k]=OK; WALL[$k]="$w"; CPU[$k]="$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.2f", u+s}')"
        RSS[$k]="$(awk -v k="$m" 'BEGIN{printf "%.0f", k/1024}')"
        echo "  $tool $step ($n): ${w}s, CPU ${CPU[$k]}s, ${RSS[$k]} MiB" >&2
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$RUN_ID" "$LOAD" "$n" "$step" "$tool" \
        "${STATUS[$k]}" "${WALL[$k]}" "$u" "$s" "${RSS[$k]}" >>"$RESULTS"
}

# ------------------------------------------------------------------ main
RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
[[ -f "$RESULTS" ]] || printf 'run\tload\tfiles\tstep\ttool\tstatus\twall_s\tuser_s\tsys_s\tpeak_rss_mib\n' >"$RESULTS"
{
    echo "## Machine"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); $(uname -srm); $(nproc) cores; $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg); CPU-bound processes added: $LOAD"
    echo "- workdir: $WORKDIR ($(df -PT -- "$WORKDIR" | awk 'NR==2 {print $2}'))"
    mkdir -p -- "$TREE_DIR"
    echo "- trees in: $TREE_DIR ($(df -PT -- "$TREE_DIR" | awk 'NR==2 {print $2}'))"
    has_tool custos && echo "- $("$CUSTOS_BIN" --version | head -n 1) ($CUSTOS_BIN, repo at $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    has_tool restic && echo "- $(restic version | head -n 1)"
    has_tool rustic && echo "- $("$RUSTIC_BIN" --version | head -n 1)"
    echo
} | tee "$WORKDIR/machine.txt"

for ((i = 0; i < LOAD; i++)); do
    ( exec python3 -c 'while True: pass' ) &
    LOAD_PIDS+=("$!")
done

for n in "${COUNTS[@]}"; do
    tree="$TREE_DIR/tree-$n"
    if [[ ! -f "$tree/.complete" ]]; then
        echo "generating $n files in $tree..." >&2
        rm -rf -- "$tree"; mkdir -p -- "$tree"
        gen_tree "$tree" "$n" 0
        touch "$tree/.complete"
    fi
    rm -rf -- "$tree/added"
    for t in "${TOOLS[@]}"; do
        rm -rf -- "$WORKDIR/repos/$t-$n" "$WORKDIR/caches/$t-$n" "$WORKDIR/restore/$t-$n"
        mkdir -p -- "$WORKDIR/repos" "$WORKDIR/caches/$t-$n" "$WORKDIR/restore/$t-$n"
        cmd "$t" init "$n"; "${CMD[@]}" >"$LOGS/$n-init-$t.log" 2>&1 || die "$t init failed (see $LOGS/$n-init-$t.log)"
    done
    for step in "${STEPS[@]}"; do
        if [[ "$step" == backup-1pct-new ]]; then
            gen_tree "$tree/added" $((n / 100)) $((n * 10))
        fi
        echo "== $n files: $step" >&2
        for t in "${TOOLS[@]}"; do measure "$t" "$step" "$n"; done
    done
    rm -rf -- "$tree/added"
    [[ "$KEEP" -eq 1 ]] || rm -rf -- "$WORKDIR/repos" "$WORKDIR/caches" "$WORKDIR/restore"
done

# ------------------------------------------------------------------ report
first="${COUNTS[0]}"; last="${COUNTS[${#COUNTS[@]}-1]}"
echo
echo "## Results (run $RUN_ID, $LOAD CPU-bound processes beside)"
echo
hdr="| step | tool |"; sep="|---|---|"
for n in "${COUNTS[@]}"; do hdr+=" $n files: wall s (CPU s) / peak MiB |"; sep+="---:|"; done
if [[ "$first" != "$last" ]]; then hdr+=" growth time / memory |"; sep+="---:|"; fi
echo "$hdr"; echo "$sep"
for step in "${STEPS[@]}"; do
    for t in "${TOOLS[@]}"; do
        row="| $step | $t |"
        for n in "${COUNTS[@]}"; do
            k="$n/$step/$t"
            if [[ "${STATUS[$k]:-}" == OK ]]; then row+=" ${WALL[$k]} (${CPU[$k]}) / ${RSS[$k]} |"; else row+=" ${STATUS[$k]:--} |"; fi
        done
        if [[ "$first" != "$last" ]]; then
            a="$first/$step/$t"; b="$last/$step/$t"
            if [[ "${STATUS[$a]:-}" == OK && "${STATUS[$b]:-}" == OK ]]; then
                row+="$(awk -v w1="${WALL[$a]}" -v w2="${WALL[$b]}" -v m1="${RSS[$a]}" -v m2="${RSS[$b]}" \
                    'BEGIN{ if (w1 < 0.01) w1 = 0.01; printf " %.1f× / %.2f× |", w2/w1, m2/m1 }')"
            else
                row+=" - |"
            fi
        fi
        echo "$row"
    done
done
echo
if has_tool custos; then
    for peer in restic rustic; do
        has_tool "$peer" || continue
        echo "custos/$peer at $last files (time ratio, memory ratio; below 1 is better):"
        for step in "${STEPS[@]}"; do
            c="$last/$step/custos"; p="$last/$step/$peer"
            if [[ "${STATUS[$c]:-}" == OK && "${STATUS[$p]:-}" == OK ]]; then
                awk -v s="$step" -v cw="${WALL[$c]}" -v pw="${WALL[$p]}" -v cm="${RSS[$c]}" -v pm="${RSS[$p]}" \
                    'BEGIN{ if (pw < 0.01) pw = 0.01; printf "- %s: %.2f× time, %.2f× memory\n", s, cw/pw, cm/pm }'
            fi
        done
        echo
    done
fi
echo "raw results: $RESULTS (appended per run); logs: $LOGS"
