#!/usr/bin/env bash
# Retention and space reclamation: custos against restic and borg, same data, same run.
#
#   benches/retention.sh [--size MIB] [--days N] [--workdir DIR] [--custos PATH] [--keep]
#
#   --size MIB      corpus size (default 256)
#   --days N        daily snapshots before retention (default 30)
#   --workdir DIR   scratch space (default ${TMPDIR:-/tmp}/custos-retention-bench)
#   --custos PATH   custos binary (default: cargo build --release)
#   --keep          keep corpus and repositories
#
# Builds the corpus once (benches/corpus.sh), then for day 1..N mutates it by ~2 %
# (inserted bytes) and backs it up with each tool, the snapshot time set to that day
# (so the retention calendar is the same for all). Then measures, per tool, the
# retention step with the same policy, keep 7 daily + 4 weekly:
#   custos  forget --keep-daily 7 --keep-weekly 4 --prune
#   restic  forget --keep-daily 7 --keep-weekly 4 --prune
#   borg    prune --keep-daily 7 --keep-weekly 4, then compact (one step)
# and prints wall time, CPU, peak RSS, repository size before/after, space reclaimed,
# snapshots left, and the custos/peer ratios. Each repository is then checked.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd)"
SIZE=256
DAYS=30
WORKDIR="${TMPDIR:-/tmp}/custos-retention-bench"
CUSTOS_BIN=""
KEEP=0

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "retention.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --size) SIZE="${2:?}"; shift 2 ;;
        --days) DAYS="${2:?}"; shift 2 ;;
        --workdir) WORKDIR="${2:?}"; shift 2 ;;
        --custos) CUSTOS_BIN="${2:?}"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage 0 ;;
        *) die "unknown option $1" ;;
    esac
done
[[ "$SIZE" =~ ^[0-9]+$ && "$DAYS" =~ ^[0-9]+$ ]] || die "--size and --days take numbers"
for t in restic borg; do command -v "$t" >/dev/null || die "$t is not installed (apt-get install restic borgbackup)"; done
[[ -x /usr/bin/time ]] || die "GNU time is required (apt-get install time)"

CORPUS="$WORKDIR/corpus"; REPOS="$WORKDIR/repos"; CACHES="$WORKDIR/caches"; LOGS="$WORKDIR/logs"
mkdir -p "$WORKDIR" "$LOGS"
rm -rf "$REPOS" "$CACHES"; mkdir -p "$REPOS" "$CACHES"
cleanup() { [[ "$KEEP" -eq 1 ]] || rm -rf "$CORPUS" "$REPOS" "$CACHES"; }
trap cleanup EXIT

if [[ -z "$CUSTOS_BIN" ]]; then
    (cd "$REPO_ROOT" && cargo build --release -q)
    CUSTOS_BIN="$REPO_ROOT/target/release/custos"
fi
[[ -x "$CUSTOS_BIN" ]] || die "no custos binary at $CUSTOS_BIN"

export CUSTOS_PASSWORD=bench CUSTOS_CACHE_DIR="$CACHES/custos"
export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$CACHES/restic"
export BORG_PASSPHRASE=bench BORG_BASE_DIR="$CACHES/borg" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
unset CUSTOS_REPOSITORY RESTIC_REPOSITORY BORG_REPO 2>/dev/null || true
TOOLS=(custos restic borg)
repo() { echo "$REPOS/$1"; }
bytes_of() { du -sb -- "$1" | cut -f1; }

# run LOG -- command...: runs quietly, output to the log; fails loudly.
run() {
    local log="$1"; shift
    "$@" >>"$log" 2>&1 || { echo "FAILED: $* (see $log)" >&2; tail -n 5 "$log" >&2; return 1; }
}

echo "building a ${SIZE} MiB corpus..." >&2
rm -rf "$CORPUS"
"$SCRIPT_DIR/corpus.sh" "$CORPUS" "$SIZE" >"$LOGS/corpus.log" 2>&1

run "$LOGS/init.log" "$CUSTOS_BIN" -r "$(repo custos)" init
run "$LOGS/init.log" restic -r "$(repo restic)" init --repository-version 2
run "$LOGS/init.log" borg init --encryption=repokey-blake2 "$(repo borg)"

START="$(date -u -d 2026-01-01T02:00:00Z +%s)"
echo "taking $DAYS daily snapshots with each tool (2 % change a day)..." >&2
for day in $(seq 1 "$DAYS"); do
    when="$(date -u -d "@$(( START + 86400 * (day - 1) ))" '+%Y-%m-%dT%H:%M:%S')"
    if [[ "$day" -gt 1 ]]; then
        "$SCRIPT_DIR/corpus.sh" --mutate "$CORPUS" >>"$LOGS/mutate.log" 2>&1
    fi
    run "$LOGS/backups.log" "$CUSTOS_BIN" -r "$(repo custos)" -q backup "$CORPUS" --service bench --time "${when}Z"
    run "$LOGS/backups.log" restic -r "$(repo restic)" -q backup --host bench --time "${when/T/ }" "$CORPUS"
    run "$LOGS/backups.log" borg create --compression zstd,3 --timestamp "$when" "$(repo borg)::day-$day" "$CORPUS"
    printf '  day %s/%s\r' "$day" "$DAYS" >&2
done
echo >&2

declare -A WALL CPU RSS BEFORE AFTER LEFT CHECK
measure() {   # tool log -- command...
    local tool="$1" log="$2"; shift 2
    local tf="$LOGS/$tool.time"
    sync
    /usr/bin/time -o "$tf" -f '%e %U %S %M' "$@" >>"$log" 2>&1 || { echo "FAILED: $*" >&2; tail -n 5 "$log" >&2; return 1; }
    read -r w u s m < <(tail -n 1 "$tf")
    WALL[$tool]=$(awk -v a="${WALL[$tool]:-0}" -v b="$w" 'BEGIN{printf "%.2f", a+b}')
    CPU[$tool]=$(awk -v a="${CPU[$tool]:-0}" -v b="$u" -v c="$s" 'BEGIN{printf "%.2f", a+b+c}')
    RSS[$tool]=$(( m > ${RSS[$tool]:-0} ? m : ${RSS[$tool]:-0} ))
}

echo "retention: keep 7 daily + 4 weekly" >&2
for t in "${TOOLS[@]}"; do BEFORE[$t]=$(bytes_of "$(repo "$t")"); done
measure custos "$LOGS/retention-custos.log" "$CUSTOS_BIN" -r "$(repo custos)" forget --keep-daily 7 --keep-weekly 4 --time-zone UTC --prune
measure restic "$LOGS/retention-restic.log" restic -r "$(repo restic)" forget --keep-daily 7 --keep-weekly 4 --prune
measure borg "$LOGS/retention-borg.log" borg prune --keep-daily 7 --keep-weekly 4 "$(repo borg)"
measure borg "$LOGS/retention-borg.log" borg compact "$(repo borg)"
for t in "${TOOLS[@]}"; do AFTER[$t]=$(bytes_of "$(repo "$t")"); done
LEFT[custos]=$("$CUSTOS_BIN" -r "$(repo custos)" --json snapshots | grep -c '"id"' || true)
LEFT[restic]=$(restic -r "$(repo restic)" snapshots --json | grep -o '"short_id"' | wc -l)
LEFT[borg]=$(borg list --short "$(repo borg)" | wc -l)

CHECK[custos]=OK; "$CUSTOS_BIN" -r "$(repo custos)" check --read-data >"$LOGS/check-custos.log" 2>&1 || CHECK[custos]=FAIL
CHECK[restic]=OK; restic -r "$(repo restic)" check --read-data >"$LOGS/check-restic.log" 2>&1 || CHECK[restic]=FAIL
CHECK[borg]=OK; borg check "$(repo borg)" >"$LOGS/check-borg.log" 2>&1 || CHECK[borg]=FAIL

mib() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
{
    echo "## Retention after $DAYS daily snapshots (${SIZE} MiB corpus, ~2 % change a day)"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); host: $(uname -srm); cpus: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- custos: $("$CUSTOS_BIN" --version 2>/dev/null || echo "$CUSTOS_BIN"); $(restic version | head -n1); $(borg --version)"
    echo
    echo "| tool | wall s | CPU s | peak MiB | repo before MiB | repo after MiB | reclaimed MiB | snapshots left | check |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
    for t in "${TOOLS[@]}"; do
        echo "| $t | ${WALL[$t]} | ${CPU[$t]} | $(( RSS[$t] / 1024 )) | $(mib "${BEFORE[$t]}") | $(mib "${AFTER[$t]}") | $(mib $(( BEFORE[$t] - AFTER[$t] ))) | ${LEFT[$t]} | ${CHECK[$t]} |"
    done
    echo
    for p in restic borg; do
        echo "custos/$p: wall $(ratio "${WALL[custos]}" "${WALL[$p]}")×, peak memory $(ratio "${RSS[custos]}" "${RSS[$p]}")×, reclaimed $(ratio $(( BEFORE[custos] - AFTER[custos] )) $(( BEFORE[$p] - AFTER[$p] )))×"
    done
    if [[ "${LEFT[custos]}" != "${LEFT[restic]}" || "${LEFT[custos]}" != "${LEFT[borg]}" ]]; then
        echo
        echo "WARNING: the tools kept different numbers of snapshots (${LEFT[custos]}/${LEFT[restic]}/${LEFT[borg]})"
    fi
} | tee "$WORKDIR/results.md"
