#!/usr/bin/env bash
# Compare custos with restic and borg on the same corpus, in the same run.
#
#   benches/compare.sh [--size MIB] [--workdir DIR] [--custos PATH] [--tools LIST] [--keep]
#
#   --size MIB      corpus size (default 2048; 100-200 for a quick run)
#   --workdir DIR   scratch space (default ${TMPDIR:-/tmp}/custos-bench); must be outside the repo
#   --custos PATH   use this custos binary instead of `cargo build --release`
#   --tools LIST    comma-separated subset of custos,restic,borg (default: all three)
#   --keep          keep corpus, repositories, caches and restores (default: removed at exit;
#                   results.tsv, machine.txt and logs/ are always kept)
#
# Phases, each run for every tool before the next phase starts (so all tools see the same
# corpus state): 1 first backup, 2 unchanged re-backup, 3 backup after `corpus.sh --mutate`,
# 4 full restore of the latest snapshot into a fresh directory (verified against the corpus).
# Page cache is not dropped (not reliably possible here): the corpus is read once before
# phase 1 and every tool runs on the same warm corpus. `sync` runs before each measurement.
# A tool that fails is recorded as FAIL and the others go on.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd)"

SIZE=2048
WORKDIR="${TMPDIR:-/tmp}/custos-bench"
CUSTOS_BIN=""
TOOLS_ARG="custos,restic,borg"
KEEP=0

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "compare.sh: $*" >&2; exit 2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --size) [[ $# -ge 2 ]] || die "--size needs a value"; SIZE="$2"; shift 2 ;;
        --size=*) SIZE="${1#*=}"; shift ;;
        --workdir) [[ $# -ge 2 ]] || die "--workdir needs a value"; WORKDIR="$2"; shift 2 ;;
        --workdir=*) WORKDIR="${1#*=}"; shift ;;
        --custos) [[ $# -ge 2 ]] || die "--custos needs a value"; CUSTOS_BIN="$2"; shift 2 ;;
        --custos=*) CUSTOS_BIN="${1#*=}"; shift ;;
        --tools) [[ $# -ge 2 ]] || die "--tools needs a value"; TOOLS_ARG="$2"; shift 2 ;;
        --tools=*) TOOLS_ARG="${1#*=}"; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ "$SIZE" =~ ^[0-9]+$ && "$SIZE" -ge 10 ]] || die "--size must be an integer >= 10"

IFS=',' read -r -a TOOLS <<<"$TOOLS_ARG"
for t in "${TOOLS[@]}"; do
    case "$t" in custos|restic|borg) ;; *) die "unknown tool '$t' in --tools" ;; esac
done
has_tool() { local x; for x in "${TOOLS[@]}"; do [[ "$x" == "$1" ]] && return 0; done; return 1; }

WORKDIR="$(realpath -m -- "$WORKDIR")"
case "$WORKDIR/" in
    "$(realpath -m -- "$REPO_ROOT")/"*) die "--workdir must be outside the repository ($REPO_ROOT)" ;;
esac
[[ "$WORKDIR" != "/" ]] || die "--workdir must not be /"
mkdir -p -- "$WORKDIR"

CORPUS="$WORKDIR/corpus"
REPOS="$WORKDIR/repos"
CACHES="$WORKDIR/cache"
RESTORES="$WORKDIR/restore"
LOGS="$WORKDIR/logs"
RESULTS="$WORKDIR/results.tsv"
MACHINE="$WORKDIR/machine.txt"
MARKER=".custos-bench-corpus"

cleanup() {
    local rc=$?
    if [[ "$KEEP" -eq 0 ]]; then
        rm -rf -- "$REPOS" "$CACHES" "$RESTORES" "$CORPUS" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ tools present?
ensure_pkgs() {
    local missing=()
    [[ -x /usr/bin/time ]] || missing+=(time)
    has_tool restic && ! command -v restic >/dev/null 2>&1 && missing+=(restic)
    has_tool borg && ! command -v borg >/dev/null 2>&1 && missing+=(borgbackup)
    if [[ ${#missing[@]} -gt 0 ]]; then
        if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "installing: ${missing[*]}" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$LOGS/apt.log" 2>&1 || {
                apt-get update -q >>"$LOGS/apt.log" 2>&1 || true
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >>"$LOGS/apt.log" 2>&1 || true
            }
        fi
    fi
    [[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is required: apt-get install time"
}

# ------------------------------------------------------------------ environment for the tools
export CUSTOS_PASSWORD="custos-bench-password"
export CUSTOS_CACHE_DIR="$CACHES/custos"
export RESTIC_PASSWORD="custos-bench-password"
export RESTIC_CACHE_DIR="$CACHES/restic"
export BORG_PASSPHRASE="custos-bench-password"
export BORG_BASE_DIR="$CACHES/borg"        # cache, config, security and keys dirs under it
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_CHECK_I_KNOW_WHAT_I_AM_DOING=NO
export BORG_DELETE_I_KNOW_WHAT_I_AM_DOING=NO
unset CUSTOS_REPOSITORY CUSTOS_PASSWORD_FILE CUSTOS_KEY_FILE RESTIC_REPOSITORY RESTIC_PASSWORD_FILE \
      BORG_REPO BORG_PASSCOMMAND BORG_CACHE_DIR BORG_CONFIG_DIR BORG_SECURITY_DIR BORG_KEYS_DIR 2>/dev/null || true

repo_of() { echo "$REPOS/$1"; }

# Each cmd_* fills the global array CMD with the command line for tool $1.
cmd_init() {
    local r; r="$(repo_of "$1")"
    case "$1" in
        custos) CMD=("$CUSTOS_BIN" -r "$r" init) ;;
        restic) CMD=(restic --cache-dir "$RESTIC_CACHE_DIR" -r "$r" init --repository-version 2) ;;
        borg)   CMD=(borg init --encryption=repokey-blake2 "$r") ;;
    esac
}
cmd_backup() {   # tool, run number
    local r; r="$(repo_of "$1")"
    case "$1" in
        custos) CMD=("$CUSTOS_BIN" -r "$r" backup "$CORPUS" --json) ;;
        restic) CMD=(restic --cache-dir "$RESTIC_CACHE_DIR" -r "$r" --compression auto -q
                     backup --host custos-bench "$CORPUS") ;;
        borg)   CMD=(borg create --compression zstd,3 "$r::bench-$2" "$CORPUS") ;;
    esac
}
cmd_restore() {  # tool, last run number (borg: run from inside the target dir)
    local r; r="$(repo_of "$1")"
    case "$1" in
        # --privileged: setuid/setgid bits and capabilities back, as restic and borg
        # restore them (custos leaves them out unless asked).
        custos) CMD=("$CUSTOS_BIN" -r "$r" restore latest --privileged --target "$RESTORES/$1") ;;
        restic) CMD=(restic --cache-dir "$RESTIC_CACHE_DIR" -r "$r" -q restore latest --target "$RESTORES/$1") ;;
        borg)   CMD=(borg extract "$r::bench-$2") ;;
    esac
}

# ------------------------------------------------------------------ measurement
# measure PHASE TOOL [DIR] -- runs "${CMD[@]}" (in DIR if given) under GNU time.
# Sets M_STATUS (OK/FAIL), M_WALL, M_USER, M_SYS, M_RSS (KiB).
measure() {
    local phase="$1" tool="$2" dir="${3:-$WORKDIR}"
    local log="$LOGS/$phase-$tool.log" tf="$LOGS/$phase-$tool.time"
    sync
    {
        echo "# cwd: $dir"
        printf '# cmd:'; printf ' %q' "${CMD[@]}"; echo
    } >"$log"
    local rc=0
    ( cd -- "$dir" && exec /usr/bin/time -o "$tf" -f '%e %U %S %M' "${CMD[@]}" ) >>"$log" 2>&1 || rc=$?
    M_STATUS=OK; M_WALL=""; M_USER=""; M_SYS=""; M_RSS=""
    if [[ -s "$tf" ]]; then
        read -r M_WALL M_USER M_SYS M_RSS < <(tail -n 1 "$tf") || true
    fi
    [[ "$M_WALL" =~ ^[0-9.]+$ ]] || { M_WALL=""; M_USER=""; M_SYS=""; M_RSS=""; }
    if [[ "$rc" -ne 0 ]]; then
        M_STATUS=FAIL
        echo "  $tool: $phase FAILED (exit $rc); last lines of $log:" >&2
        tail -n 8 "$log" | sed 's/^/    /' >&2
    fi
}

bytes_of() { if [[ -e "$1" ]]; then du -sb -- "$1" 2>/dev/null | cut -f1; else echo 0; fi; }
corpus_bytes() { find "$CORPUS" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d\n", s}'; }

# results: one row per phase x tool
declare -A R_STATUS R_WALL R_CPU R_RSS R_REPO R_DELTA R_IN R_VERIFY
PHASES=(backup-1st backup-unchanged backup-mutated restore)
declare -A PHASE_TITLE=(
    [backup-1st]="Phase 1: first backup"
    [backup-unchanged]="Phase 2: unchanged re-backup"
    [backup-mutated]="Phase 3: backup after ~2 % mutation (insertions)"
    [restore]="Phase 4: full restore of the latest snapshot"
)

record() {   # phase tool input_bytes repo_bytes delta_bytes verify
    local phase="$1" tool="$2" in="$3" repo="$4" delta="$5" verify="$6" cpu="" mibs=""
    local k="$phase/$tool"
    if [[ -n "$M_USER" ]]; then cpu="$(awk -v u="$M_USER" -v s="$M_SYS" 'BEGIN{printf "%.2f", u+s}')"; fi
    R_STATUS[$k]="$M_STATUS"; R_WALL[$k]="$M_WALL"; R_CPU[$k]="$cpu"; R_RSS[$k]="$M_RSS"
    R_REPO[$k]="$repo"; R_DELTA[$k]="$delta"; R_IN[$k]="$in"; R_VERIFY[$k]="$verify"
    if [[ "$M_STATUS" == OK && -n "$M_WALL" ]]; then
        mibs="$(awk -v b="$in" -v w="$M_WALL" 'BEGIN{ if (w < 0.01) w = 0.01; printf "%.1f", b/1048576/w }')"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$RUN_ID" "$phase" "$tool" "$M_STATUS" "$M_WALL" "$M_USER" "$M_SYS" "$cpu" "$M_RSS" \
        "$repo" "$delta" "$(bytes_of "$CACHES/$tool")" "$in" "$mibs" "$verify" >>"$RESULTS"
}

# ------------------------------------------------------------------ restore verification
manifest() {   # type, mode, size (and mtime seconds for regular files), path, link target
    ( cd -- "$1" && find . -mindepth 1 -printf '%y\t%m\t%s\t%T@\t%P\t%l\n' ) |
        awk -F'\t' 'BEGIN{OFS="\t"} { if ($1 == "f") { split($4, a, "."); $4 = a[1] } else { $4 = "-"; if ($1 != "l") $3 = "-" } print }' |
        LC_ALL=C sort
}

verify_restore() {   # tool -> sets V_RESULT (OK / FAIL(content) / FAIL(meta) / FAIL(missing))
    local tool="$1" target="$RESTORES/$1" root
    root="$(find "$target" -name "$MARKER" -type f -print -quit 2>/dev/null || true)"
    if [[ -z "$root" ]]; then V_RESULT="FAIL(missing)"; return; fi
    root="$(dirname -- "$root")"
    local vlog="$LOGS/verify-$tool.log"
    echo "# restored root: $root" >"$vlog"
    if ! diff -rq --no-dereference -- "$CORPUS" "$root" >>"$vlog" 2>&1; then
        V_RESULT="FAIL(content)"; return
    fi
    if ! diff <(manifest "$CORPUS") <(manifest "$root") >>"$vlog" 2>&1; then
        V_RESULT="FAIL(meta)"; return
    fi
    V_RESULT=OK
}

# ------------------------------------------------------------------ machine info
tool_version() {
    local v rev
    case "$1" in
        custos)
            if [[ -n "$CUSTOS_BIN" && -x "$CUSTOS_BIN" ]]; then
                v="$("$CUSTOS_BIN" --version 2>/dev/null | head -n 1)" || true
                rev="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null)" || rev=""
                echo "${v:-custos (version unknown)} ($CUSTOS_BIN${rev:+, repo at $rev})"
            else
                echo "custos: not available"
            fi ;;
        restic) v="$(restic version 2>/dev/null | head -n 1)" || true; echo "${v:-restic: not available}" ;;
        borg)   v="$(borg --version 2>/dev/null | head -n 1)" || true; echo "${v:-borg: not available}" ;;
    esac
}

machine_info() {
    local cpu mem
    cpu="$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
    mem="$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null || true)"
    echo "## Machine"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- host: $(uname -srm)"
    echo "- cpu: ${cpu:-unknown} × $(nproc) (nproc)"
    echo "- memory: ${mem:-unknown}"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) (other work on the machine skews the figures)"
    echo "- workdir: $WORKDIR ($(df -PT -- "$WORKDIR" | awk 'NR==2 {print $2}'), $(df -Ph -- "$WORKDIR" | awk 'NR==2 {print $4}') free)"
    local t; for t in "${TOOLS[@]}"; do echo "- $(tool_version "$t")"; done
    echo "- settings: custos defaults; restic repo v2 --compression auto; borg repokey-blake2 --compression zstd,3"
    echo "- page cache: warm (not dropped); corpus read once before phase 1; sync before each step"
    echo
}

# ------------------------------------------------------------------ report
fmt_mib() { [[ -n "$1" ]] && awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}' || echo "-"; }

print_phase() {
    local phase="$1" t k thr repo delta rss
    echo "### ${PHASE_TITLE[$phase]}"
    echo
    local inb=""
    for t in "${TOOLS[@]}"; do [[ -n "${R_IN[$phase/$t]:-}" ]] && { inb="${R_IN[$phase/$t]}"; break; }; done
    if [[ -n "$inb" ]]; then echo "input: $(fmt_mib "$inb") MiB"; echo; fi
    if [[ "$phase" == restore ]]; then
        echo "| tool | status | wall s | CPU s | peak MiB | MiB/s | verify |"
        echo "|---|---|---:|---:|---:|---:|---|"
    else
        echo "| tool | status | wall s | CPU s | peak MiB | repo MiB | added MiB | MiB/s |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|"
    fi
    for t in "${TOOLS[@]}"; do
        k="$phase/$t"
        [[ -n "${R_STATUS[$k]:-}" ]] || continue
        thr="-"
        if [[ "${R_STATUS[$k]}" == OK && -n "${R_WALL[$k]}" ]]; then
            thr="$(awk -v b="${R_IN[$k]}" -v w="${R_WALL[$k]}" 'BEGIN{ if (w < 0.01) w = 0.01; printf "%.1f", b/1048576/w }')"
        fi
        rss="-"; [[ -n "${R_RSS[$k]}" ]] && rss="$(awk -v k="${R_RSS[$k]}" 'BEGIN{printf "%.0f", k/1024}')"
        if [[ "$phase" == restore ]]; then
            printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" "${R_STATUS[$k]}" "${R_WALL[$k]:--}" \
                "${R_CPU[$k]:--}" "$rss" "$thr" "${R_VERIFY[$k]:--}"
        else
            repo="$(fmt_mib "${R_REPO[$k]}")"; delta="$(fmt_mib "${R_DELTA[$k]}")"
            printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "${R_STATUS[$k]}" "${R_WALL[$k]:--}" \
                "${R_CPU[$k]:--}" "$rss" "$repo" "$delta" "$thr"
        fi
    done
    echo
    if has_tool custos; then
        local peer c="$phase/custos" p line=""
        for peer in restic borg; do
            has_tool "$peer" || continue
            p="$phase/$peer"
            if [[ "${R_STATUS[$c]:-}" == OK && "${R_STATUS[$p]:-}" == OK && -n "${R_WALL[$c]}" && -n "${R_WALL[$p]}" ]]; then
                line+="$(awk -v c="${R_WALL[$c]}" -v p="${R_WALL[$p]}" -v n="$peer" 'BEGIN{
                    if (c < 0.01) c = 0.01; if (p < 0.01) p = 0.01;
                    printf "custos/%s: wall %.2f×, throughput %.2f×; ", n, c/p, p/c }')"
            else
                line+="custos/$peer: n/a; "
            fi
        done
        if [[ -n "$line" ]]; then echo "${line%; }"; echo; fi
    fi
    return 0
}

# ================================================================== main
mkdir -p -- "$LOGS" "$REPOS" "$CACHES" "$RESTORES"
rm -rf -- "$REPOS"/* "$CACHES"/* "$RESTORES"/*
ensure_pkgs
RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"

# custos binary
if has_tool custos; then
    if [[ -z "$CUSTOS_BIN" ]]; then
        echo "building custos (cargo build --release)..." >&2
        if ( cd -- "$REPO_ROOT" && cargo build --release ) >"$LOGS/cargo-build.log" 2>&1; then
            CUSTOS_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/custos"
            [[ "$CUSTOS_BIN" == /* ]] || CUSTOS_BIN="$REPO_ROOT/$CUSTOS_BIN"
        else
            echo "  custos: cargo build --release FAILED; see $LOGS/cargo-build.log" >&2
            tail -n 8 "$LOGS/cargo-build.log" | sed 's/^/    /' >&2
            CUSTOS_BIN=""
        fi
    else
        [[ "$CUSTOS_BIN" == /* ]] || CUSTOS_BIN="$PWD/$CUSTOS_BIN"
    fi
    if [[ -n "$CUSTOS_BIN" && ! -x "$CUSTOS_BIN" ]]; then
        echo "  custos: $CUSTOS_BIN is not executable" >&2
        CUSTOS_BIN=""
    fi
fi
# peers that are still missing after ensure_pkgs are reported as FAIL, not fatal
declare -A AVAILABLE BROKEN_WHY
for t in "${TOOLS[@]}"; do
    BROKEN_WHY[$t]="FAIL(missing)"
    case "$t" in
        custos) [[ -n "$CUSTOS_BIN" ]] && AVAILABLE[$t]=1 || { AVAILABLE[$t]=0; BROKEN_WHY[$t]="FAIL(build)"; } ;;
        *) command -v "$t" >/dev/null 2>&1 && AVAILABLE[$t]=1 || AVAILABLE[$t]=0 ;;
    esac
done

need_kib=$(( SIZE * 1024 * (3 + ${#TOOLS[@]}) ))
avail_kib="$(df -Pk -- "$WORKDIR" | awk 'NR==2 {print $4}')"
if [[ "$avail_kib" =~ ^[0-9]+$ && "$avail_kib" -lt "$need_kib" ]]; then
    echo "warning: $WORKDIR has $((avail_kib / 1024)) MiB free; this run may need ~$((need_kib / 1024)) MiB" >&2
fi

machine_info | tee "$MACHINE"

echo "building corpus of $SIZE MiB in $CORPUS..." >&2
"$SCRIPT_DIR/corpus.sh" "$CORPUS" "$SIZE" 2>&1 | sed 's/^/  /' >&2
IN_BYTES="$(corpus_bytes)"
echo "warming the page cache..." >&2
find "$CORPUS" -type f -print0 | xargs -0 -r cat >/dev/null

printf 'run\tphase\ttool\tstatus\twall_s\tuser_s\tsys_s\tcpu_s\tpeak_rss_kib\trepo_bytes\trepo_added_bytes\tcache_bytes\tinput_bytes\tmib_per_s\tverify\n' >"$RESULTS.new"
[[ -f "$RESULTS" ]] && tail -n +2 "$RESULTS" >>"$RESULTS.new"
mv -- "$RESULTS.new" "$RESULTS"

declare -A BROKEN LAST_REPO
for t in "${TOOLS[@]}"; do
    BROKEN[$t]=0; LAST_REPO[$t]=0
    if [[ "${AVAILABLE[$t]}" -ne 1 ]]; then BROKEN[$t]=1; continue; fi
    cmd_init "$t"
    measure init "$t"
    if [[ "$M_STATUS" != OK ]]; then BROKEN[$t]=1; BROKEN_WHY[$t]="FAIL(init)"; fi
    LAST_REPO[$t]="$(bytes_of "$(repo_of "$t")")"
done

skip_row() {  # phase tool reason -- a tool that could not take part in this phase
    M_STATUS="${3:-FAIL}"; M_WALL=""; M_USER=""; M_SYS=""; M_RSS=""
    record "$1" "$2" "$IN_BYTES" "" "" "-"
}

run_backup_phase() {   # phase run-number
    local phase="$1" n="$2" t repo
    echo "== $phase" >&2
    for t in "${TOOLS[@]}"; do
        if [[ "${BROKEN[$t]}" -ne 0 ]]; then skip_row "$phase" "$t" "${BROKEN_WHY[$t]}"; continue; fi
        cmd_backup "$t" "$n"
        measure "$phase" "$t"
        repo="$(bytes_of "$(repo_of "$t")")"
        record "$phase" "$t" "$IN_BYTES" "$repo" "$((repo - LAST_REPO[$t]))" ""
        LAST_REPO[$t]="$repo"
        echo "  $t: $M_STATUS ${M_WALL:-?}s" >&2
        # a failed first backup leaves nothing to compare later
        if [[ "$M_STATUS" != OK && "$n" -eq 1 ]]; then BROKEN[$t]=1; BROKEN_WHY[$t]="FAIL(first backup)"; fi
    done
}

run_backup_phase backup-1st 1
run_backup_phase backup-unchanged 2
echo "mutating the corpus..." >&2
"$SCRIPT_DIR/corpus.sh" --mutate "$CORPUS" 2>&1 | sed 's/^/  /' >&2
IN_BYTES="$(corpus_bytes)"
run_backup_phase backup-mutated 3

echo "== restore" >&2
for t in "${TOOLS[@]}"; do
    if [[ "${BROKEN[$t]}" -ne 0 ]]; then skip_row restore "$t" "${BROKEN_WHY[$t]}"; continue; fi
    rm -rf -- "${RESTORES:?}/$t"
    mkdir -p -- "$RESTORES/$t"
    cmd_restore "$t" 3
    measure restore "$t" "$RESTORES/$t"
    V_RESULT="-"
    if [[ "$M_STATUS" == OK ]]; then verify_restore "$t"; else V_RESULT="FAIL(restore)"; fi
    record restore "$t" "$IN_BYTES" "" "" "$V_RESULT"
    echo "  $t: $M_STATUS ${M_WALL:-?}s verify $V_RESULT" >&2
    [[ "$KEEP" -eq 1 ]] || rm -rf -- "${RESTORES:?}/$t"
done

echo
echo "## Results ($SIZE MiB corpus, run $RUN_ID)"
echo
for p in "${PHASES[@]}"; do print_phase "$p"; done
echo "Restore verification: $(for t in "${TOOLS[@]}"; do printf '%s %s; ' "$t" "${R_VERIFY[restore/$t]:--}"; done | sed 's/; $//')"
echo
echo "raw results: $RESULTS (appended per run); logs: $LOGS"
