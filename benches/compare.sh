#!/usr/bin/env bash
# Compare custos with restic, borg and rustic on the same corpus, in the same run.
#
#   benches/compare.sh [--size MIB] [--kind mixed|tree] [--rounds N] [--workdir DIR]
#                      [--restore-dir DIR] [--custos PATH] [--tools LIST] [--build-rustic] [--keep]
#
#   --size MIB        corpus size (default 2048; 100-200 for a quick run)
#   --kind K          mixed: real files, a VM-like image and a SQL dump (default); tree: the
#                     whole size as real files copied from /usr (50 000+ files at 2048 MiB)
#   --rounds N        rounds (default 3): the corpus is rebuilt, every repository made anew and
#                     the order of the tools rotated each round; the report gives medians
#   --workdir DIR     scratch space (default ${TMPDIR:-/tmp}/custos-bench); must be outside the repo
#   --restore-dir DIR where restores go (default WORKDIR/restore; a tmpfs keeps the file
#                     system's inode allocator out of the figures)
#   --custos PATH     use this custos binary instead of `cargo build --release`
#   --tools LIST      comma-separated subset of custos,restic,borg,rustic (default: custos,restic,
#                     borg, and rustic when installed)
#   --build-rustic    install rustic first (cargo install rustic-rs --locked --no-default-features;
#                     about 12 minutes on 2 cores) unless it is on PATH or in ~/.cargo/bin
#   --keep            keep corpus, repositories, caches and restores (default: removed at exit;
#                     results.tsv, machine.txt and logs/ are always kept)
#
# Phases, each run for every tool before the next phase starts (so all tools see the same
# corpus state): 1 first backup, 2 unchanged re-backup, 3 backup after `corpus.sh --mutate`,
# 4 full restore of the latest snapshot into a new directory (verified against the corpus),
# 5 check of the repository's structure, 6 check reading all data, 7 forget all but the
# latest snapshot and prune (borg: prune, then compact).
# Page cache is not dropped (not reliably possible here): just before each measured step
# the corpus (backups) or the tool's repository (other steps) is read once, so every tool
# runs warm whatever the kernel reclaimed in between. `sync` runs before each measurement.
# A tool that fails is recorded as FAIL and the others go on.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd)"

SIZE=2048
KIND=mixed
ROUNDS=3
WORKDIR="${TMPDIR:-/tmp}/custos-bench"
RESTORE_DIR=""
CUSTOS_BIN=""
TOOLS_ARG=""
BUILD_RUSTIC=0
KEEP=0

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
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
        --kind) [[ $# -ge 2 ]] || die "--kind needs a value"; KIND="$2"; shift 2 ;;
        --rounds) [[ $# -ge 2 ]] || die "--rounds needs a value"; ROUNDS="$2"; shift 2 ;;
        --restore-dir) [[ $# -ge 2 ]] || die "--restore-dir needs a value"; RESTORE_DIR="$2"; shift 2 ;;
        --build-rustic) BUILD_RUSTIC=1; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ "$SIZE" =~ ^[0-9]+$ && "$SIZE" -ge 10 ]] || die "--size must be an integer >= 10"
[[ "$ROUNDS" =~ ^[0-9]+$ && "$ROUNDS" -ge 1 ]] || die "--rounds must be a positive integer"
case "$KIND" in mixed|tree) ;; *) die "--kind is mixed or tree" ;; esac

# rustic: from PATH or cargo's bin directory; built when asked
RUSTIC_BIN="$(command -v rustic 2>/dev/null || true)"
[[ -z "$RUSTIC_BIN" && -x "$HOME/.cargo/bin/rustic" ]] && RUSTIC_BIN="$HOME/.cargo/bin/rustic"
if [[ "$BUILD_RUSTIC" -eq 1 && -z "$RUSTIC_BIN" ]]; then
    echo "building rustic (cargo install rustic-rs --locked --no-default-features)..." >&2
    cargo install rustic-rs --locked --no-default-features >&2 || die "cargo install rustic-rs failed"
    RUSTIC_BIN="$HOME/.cargo/bin/rustic"
fi
if [[ -z "$TOOLS_ARG" ]]; then
    TOOLS_ARG="custos,restic,borg"
    [[ -n "$RUSTIC_BIN" ]] && TOOLS_ARG+=",rustic"
fi
IFS=',' read -r -a TOOLS <<<"$TOOLS_ARG"
for t in "${TOOLS[@]}"; do
    case "$t" in custos|restic|borg|rustic) ;; *) die "unknown tool '$t' in --tools" ;; esac
done
ALL_TOOLS=("${TOOLS[@]}")
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
RESTORES="${RESTORE_DIR:-$WORKDIR/restore}"
RESTORES="$(realpath -m -- "$RESTORES")"
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
export RUSTIC_PASSWORD="custos-bench-password"
export RUSTIC_CACHE_DIR="$CACHES/rustic"
unset CUSTOS_REPOSITORY CUSTOS_PASSWORD_FILE CUSTOS_KEY_FILE RESTIC_REPOSITORY RESTIC_PASSWORD_FILE \
      BORG_REPO BORG_PASSCOMMAND BORG_CACHE_DIR BORG_CONFIG_DIR BORG_SECURITY_DIR BORG_KEYS_DIR \
      RUSTIC_REPOSITORY RUSTIC_PASSWORD_FILE 2>/dev/null || true

repo_of() { echo "$REPOS/$1"; }

# Each cmd_* fills the global array CMD with the command line for tool $1.
cmd_init() {
    local r; r="$(repo_of "$1")"
    case "$1" in
        custos) CMD=("$CUSTOS_BIN" -r "$r" init) ;;
        restic) CMD=(restic --cache-dir "$RESTIC_CACHE_DIR" -r "$r" init --repository-version 2) ;;
        borg)   CMD=(borg init --encryption=repokey-blake2 "$r") ;;
        rustic) CMD=("$RUSTIC_BIN" --cache-dir "$RUSTIC_CACHE_DIR" -r "$r" init) ;;
    esac
}
cmd_backup() {   # tool, run number
    local r; r="$(repo_of "$1")"
    case "$1" in
        custos) CMD=("$CUSTOS_BIN" -r "$r" backup "$CORPUS" --json) ;;
        restic) CMD=(restic --cache-dir "$RESTIC_CACHE_DIR" -r "$r" --compression auto -q
                     backup --host custos-bench "$CORPUS") ;;
        borg)   CMD=(borg create --compression zstd,3 "$r::bench-$2" "$CORPUS") ;;
        rustic) CMD=("$RUSTIC_BIN" --cache-dir "$RUSTIC_CACHE_DIR" -r "$r" backup --host custos-bench "$CORPUS") ;;
    esac
}
cmd_step() {   # tool, phase (check, check-read-data, forget-prune)
    local r; r="$(repo_of "$1")"
    case "$1/$2" in
        custos/check) CMD=("$CUSTOS_BIN" -r "$r" check) ;;
        custos/check-read-data) CMD=("$CUSTOS_BIN" -r "$r" check --read-data) ;;
        custos/forget-prune) CMD=("$CUSTOS_BIN" -r "$r" forget --keep-last 1 --prune) ;;
        restic/check) CMD=(restic --cache-dir "$RESTIC_CACHE_DIR" -r "$r" check) ;;
        restic/check-read-data) CMD=(restic --cache-dir "$RESTIC_CACHE_DIR" -r "$r" check --read-data) ;;
        restic/forget-prune) CMD=(restic --cache-dir "$RESTIC_CACHE_DIR" -r "$r" forget --keep-last 1 --prune) ;;
        borg/check) CMD=(borg check "$r") ;;
        borg/check-read-data) CMD=(borg check --verify-data "$r") ;;
        borg/forget-prune) CMD=(sh -c 'borg prune --keep-last 1 "$1" && borg compact "$1"' sh "$r") ;;
        rustic/check) CMD=("$RUSTIC_BIN" --cache-dir "$RUSTIC_CACHE_DIR" -r "$r" check) ;;
        rustic/check-read-data) CMD=("$RUSTIC_BIN" --cache-dir "$RUSTIC_CACHE_DIR" -r "$r" check --read-data) ;;
        rustic/forget-prune) CMD=("$RUSTIC_BIN" --cache-dir "$RUSTIC_CACHE_DIR" -r "$r" forget --keep-last 1 --prune) ;;
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
        rustic) CMD=("$RUSTIC_BIN" --cache-dir "$RUSTIC_CACHE_DIR" -r "$r" restore latest "$RESTORES/$1") ;;
    esac
}

# ------------------------------------------------------------------ measurement
# measure PHASE TOOL [DIR] -- runs "${CMD[@]}" (in DIR if given) under GNU time.
# Sets M_STATUS (OK/FAIL), M_WALL, M_USER, M_SYS, M_RSS (KiB).
# Reads what a step reads (the corpus for a backup, the tool's repository
# otherwise) just before it runs. Warming once per round is not enough where
# the kernel reclaims cold page cache on its own (DAMON's pageout scheme on
# the VMs of docs/performance.md evicts file pages a minute after their last
# use, so the second tool of a round found part of the corpus on disk).
warm() {   # phase tool
    local what
    case "$1" in backup*) what="$CORPUS" ;; *) what="$(repo_of "$2")" ;; esac
    [[ -e "$what" ]] && find "$what" -type f -print0 | xargs -0 -r cat >/dev/null
    return 0
}

measure() {
    local phase="$1" tool="$2" dir="${3:-$WORKDIR}"
    local log="$LOGS/$phase-$tool.log" tf="$LOGS/$phase-$tool.time"
    # (a restore warms before its target is prefaulted: see there)
    [[ "$phase" == init || "$phase" == restore ]] || warm "$phase" "$tool"
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

# results: one row per round x phase x tool; R_* keyed "phase/tool/round"
declare -A R_STATUS R_WALL R_CPU R_RSS R_REPO R_DELTA R_IN R_VERIFY
PHASES=(backup-1st backup-unchanged backup-mutated restore check check-read-data forget-prune)
declare -A PHASE_TITLE=(
    [backup-1st]="Phase 1: first backup"
    [backup-unchanged]="Phase 2: unchanged re-backup"
    [backup-mutated]="Phase 3: backup after ~2 % mutation (insertions)"
    [restore]="Phase 4: full restore of the latest snapshot"
    [check]="Phase 5: check (structure)"
    [check-read-data]="Phase 6: check reading all data"
    [forget-prune]="Phase 7: forget all but the latest snapshot, prune"
)

record() {   # phase tool input_bytes repo_bytes delta_bytes verify
    local phase="$1" tool="$2" in="$3" repo="$4" delta="$5" verify="$6" cpu="" mibs=""
    local k="$phase/$tool/$ROUND"
    if [[ -n "$M_USER" ]]; then cpu="$(awk -v u="$M_USER" -v s="$M_SYS" 'BEGIN{printf "%.2f", u+s}')"; fi
    R_STATUS[$k]="$M_STATUS"; R_WALL[$k]="$M_WALL"; R_CPU[$k]="$cpu"; R_RSS[$k]="$M_RSS"
    R_REPO[$k]="$repo"; R_DELTA[$k]="$delta"; R_IN[$k]="$in"; R_VERIFY[$k]="$verify"
    if [[ "$M_STATUS" == OK && -n "$M_WALL" ]]; then
        mibs="$(awk -v b="$in" -v w="$M_WALL" 'BEGIN{ if (w < 0.01) w = 0.01; printf "%.1f", b/1048576/w }')"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$RUN_ID" "$ROUND" "$KIND" "$phase" "$tool" "$M_STATUS" "$M_WALL" "$M_USER" "$M_SYS" "$cpu" "$M_RSS" \
        "$repo" "$delta" "$(bytes_of "$CACHES/$tool")" "$in" "$mibs" "$verify" >>"$RESULTS"
}

# ------------------------------------------------------------------ memory before a restore
# On a tmpfs, a restore writes its files into memory. In a virtual machine,
# memory the guest has not touched for a while can cost the first touch ten to
# twenty times more system time (measured: `dd` of 672 MiB into a new file, 10.3 s
# of system time, then 0.46 s right after), so whichever tool restores first after
# memory was handed back pays for it. Writing and deleting a file of the corpus's
# size just before each restore gives every tool memory touched a moment ago.
prefault_restore_dir() {
    [[ "$(df -PT -- "$RESTORES" | awk 'NR==2 {print $2}')" == tmpfs ]] || return 0
    dd if=/dev/zero of="$RESTORES/.prefault" bs=1M count="$(( IN_BYTES / 1048576 + 1 ))" status=none 2>/dev/null || true
    rm -f -- "$RESTORES/.prefault"
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
        rustic) v="$("${RUSTIC_BIN:-rustic}" --version 2>/dev/null | head -n 1)" || true; echo "${v:-rustic: not available}" ;;
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
    echo "- settings: custos defaults; restic repo v2 --compression auto; borg repokey-blake2 --compression zstd,3; rustic defaults"
    echo "- corpus: $KIND, $SIZE MiB; $ROUNDS rounds, tools rotated; restores into $RESTORES ($(df -PT -- "$WORKDIR" >/dev/null 2>&1; mkdir -p -- "$RESTORES"; df -PT -- "$RESTORES" | awk 'NR==2 {print $2}'))"
    echo "- page cache: warm (not dropped); before each step what it reads (corpus or repository) is read once (see warm); sync before each step; before each restore into a tmpfs, a file of the corpus's size is written there and deleted (see prefault_restore_dir)"
    echo
}

# ------------------------------------------------------------------ report
fmt_mib() { [[ -n "$1" ]] && awk -v b="$1" 'BEGIN{printf "%.1f", b/1048576}' || echo "-"; }

# median FIELD phase tool: median over the rounds where the step succeeded (empty if none)
median() {
    local -n arr="$1"
    local r vals=()
    for ((r = 1; r <= ROUNDS; r++)); do
        [[ "${R_STATUS[$2/$3/$r]:-}" == OK && -n "${arr[$2/$3/$r]:-}" ]] && vals+=("${arr[$2/$3/$r]}")
    done
    [[ ${#vals[@]} -gt 0 ]] || return 0
    printf '%s\n' "${vals[@]}" | sort -g | awk '{v[NR] = $1} END {
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
oks() { local r n=0; for ((r = 1; r <= ROUNDS; r++)); do [[ "${R_STATUS[$1/$2/$r]:-}" == OK ]] && n=$((n + 1)); done; echo "$n"; }
verdicts() { local r out=""; for ((r = 1; r <= ROUNDS; r++)); do out+="${R_VERIFY[$1/$2/$r]:--} "; done; echo "${out% }"; }

print_phase() {
    local phase="$1" t wall cpu rss repo delta thr inb=""
    echo "### ${PHASE_TITLE[$phase]}"
    echo
    for t in "${ALL_TOOLS[@]}"; do [[ -n "${R_IN[$phase/$t/1]:-}" ]] && { inb="${R_IN[$phase/$t/1]}"; break; }; done
    if [[ -n "$inb" ]]; then echo "input: $(fmt_mib "$inb") MiB; medians of $ROUNDS rounds"; echo; fi
    echo "| tool | ok rounds | wall s | CPU s | peak MiB | repo MiB | added MiB | MiB/s | verify |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
    declare -gA MED_WALL MED_RSS
    for t in "${ALL_TOOLS[@]}"; do
        wall="$(median R_WALL "$phase" "$t")"; cpu="$(median R_CPU "$phase" "$t")"
        rss="$(median R_RSS "$phase" "$t")"; repo="$(median R_REPO "$phase" "$t")"; delta="$(median R_DELTA "$phase" "$t")"
        MED_WALL[$phase/$t]="$wall"; MED_RSS[$phase/$t]="$rss"
        thr="-"
        [[ -n "$wall" && -n "$inb" ]] && thr="$(awk -v b="$inb" -v w="$wall" 'BEGIN{ if (w < 0.01) w = 0.01; printf "%.1f", b/1048576/w }')"
        [[ -n "$rss" ]] && rss="$(awk -v k="$rss" 'BEGIN{printf "%.0f", k/1024}')"
        printf '| %s | %s/%s | %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$(oks "$phase" "$t")" "$ROUNDS" \
            "${wall:--}" "${cpu:--}" "${rss:--}" "$(fmt_mib "$repo")" "$(fmt_mib "$delta")" "$thr" \
            "$([[ "$phase" == restore ]] && verdicts "$phase" "$t" || echo -)"
    done
    echo
    if has_tool custos; then
        local peer line="" c p
        for peer in restic borg rustic; do
            has_tool "$peer" || continue
            c="${MED_WALL[$phase/custos]}"; p="${MED_WALL[$phase/$peer]}"
            if [[ -n "$c" && -n "$p" ]]; then
                line+="$(awk -v c="$c" -v p="$p" -v cm="${MED_RSS[$phase/custos]}" -v pm="${MED_RSS[$phase/$peer]}" -v n="$peer" 'BEGIN{
                    if (c < 0.01) c = 0.01; if (p < 0.01) p = 0.01;
                    printf "custos/%s: throughput %.2f×, memory %.2f×; ", n, p/c, cm/pm }')"
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
        rustic) [[ -n "$RUSTIC_BIN" ]] && AVAILABLE[$t]=1 || AVAILABLE[$t]=0 ;;
        *) command -v "$t" >/dev/null 2>&1 && AVAILABLE[$t]=1 || AVAILABLE[$t]=0 ;;
    esac
done

need_kib=$(( SIZE * 1024 * (3 + ${#TOOLS[@]}) ))
avail_kib="$(df -Pk -- "$WORKDIR" | awk 'NR==2 {print $4}')"
if [[ "$avail_kib" =~ ^[0-9]+$ && "$avail_kib" -lt "$need_kib" ]]; then
    echo "warning: $WORKDIR has $((avail_kib / 1024)) MiB free; this run may need ~$((need_kib / 1024)) MiB" >&2
fi

machine_info | tee "$MACHINE"

printf 'run\tround\tkind\tphase\ttool\tstatus\twall_s\tuser_s\tsys_s\tcpu_s\tpeak_rss_kib\trepo_bytes\trepo_added_bytes\tcache_bytes\tinput_bytes\tmib_per_s\tverify\n' >"$RESULTS.new"
[[ -f "$RESULTS" ]] && tail -n +2 "$RESULTS" | awk -F'\t' 'NF == 17' >>"$RESULTS.new"
mv -- "$RESULTS.new" "$RESULTS"
RESTORE_BASE="$RESTORES"

skip_row() {  # phase tool reason -- a tool that could not take part in this phase
    M_STATUS="${3:-FAIL}"; M_WALL=""; M_USER=""; M_SYS=""; M_RSS=""
    record "$1" "$2" "$IN_BYTES" "" "" "-"
}

run_backup_phase() {   # phase run-number
    local phase="$1" n="$2" t repo
    echo "== round $ROUND: $phase" >&2
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

run_step_phase() {   # phase (check, check-read-data, forget-prune)
    local phase="$1" t repo
    echo "== round $ROUND: $phase" >&2
    for t in "${TOOLS[@]}"; do
        if [[ "${BROKEN[$t]}" -ne 0 ]]; then skip_row "$phase" "$t" "${BROKEN_WHY[$t]}"; continue; fi
        cmd_step "$t" "$phase"
        measure "$phase" "$t"
        repo="$(bytes_of "$(repo_of "$t")")"
        record "$phase" "$t" "$IN_BYTES" "$repo" "$((repo - LAST_REPO[$t]))" ""
        LAST_REPO[$t]="$repo"
        echo "  $t: $M_STATUS ${M_WALL:-?}s" >&2
    done
}

declare -A BROKEN LAST_REPO
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    # rotate the order of the tools: each goes first in some round
    TOOLS=()
    for ((i = 0; i < ${#ALL_TOOLS[@]}; i++)); do
        TOOLS+=("${ALL_TOOLS[$(( (i + ROUND - 1) % ${#ALL_TOOLS[@]} ))]}")
    done
    echo "=== round $ROUND of $ROUNDS: ${TOOLS[*]}" >&2
    rm -rf -- "${REPOS:?}"/* "${CACHES:?}"/*
    echo "building the $KIND corpus of $SIZE MiB in $CORPUS..." >&2
    CORPUS_KIND="$KIND" "$SCRIPT_DIR/corpus.sh" "$CORPUS" "$SIZE" 2>&1 | sed 's/^/  /' >&2
    IN_BYTES="$(corpus_bytes)"

    for t in "${TOOLS[@]}"; do
        BROKEN[$t]=0; LAST_REPO[$t]=0
        if [[ "${AVAILABLE[$t]}" -ne 1 ]]; then BROKEN[$t]=1; continue; fi
        cmd_init "$t"
        measure init "$t"
        if [[ "$M_STATUS" != OK ]]; then BROKEN[$t]=1; BROKEN_WHY[$t]="FAIL(init)"; fi
        LAST_REPO[$t]="$(bytes_of "$(repo_of "$t")")"
    done

    run_backup_phase backup-1st 1
    run_backup_phase backup-unchanged 2
    echo "mutating the corpus..." >&2
    "$SCRIPT_DIR/corpus.sh" --mutate "$CORPUS" 2>&1 | sed 's/^/  /' >&2
    IN_BYTES="$(corpus_bytes)"
    run_backup_phase backup-mutated 3

    # Every tool restores into a directory of its own made for this round; the
    # restores are removed only after all tools restored, so no restore runs
    # into inodes just freed by another's.
    echo "== round $ROUND: restore" >&2
    RESTORES="$RESTORE_BASE/r$ROUND"
    for t in "${TOOLS[@]}"; do
        if [[ "${BROKEN[$t]}" -ne 0 ]]; then skip_row restore "$t" "${BROKEN_WHY[$t]}"; continue; fi
        rm -rf -- "${RESTORES:?}/$t"
        mkdir -p -- "$RESTORES/$t"
        # Repository first: reading it after the prefault would give the page
        # cache the pages the prefault touched for the restore's files.
        warm restore "$t"
        prefault_restore_dir
        cmd_restore "$t" 3
        measure restore "$t" "$RESTORES/$t"
        V_RESULT="-"
        if [[ "$M_STATUS" == OK ]]; then verify_restore "$t"; else V_RESULT="FAIL(restore)"; fi
        record restore "$t" "$IN_BYTES" "" "" "$V_RESULT"
        echo "  $t: $M_STATUS ${M_WALL:-?}s verify $V_RESULT" >&2
    done
    [[ "$KEEP" -eq 1 ]] || rm -rf -- "${RESTORES:?}"
    RESTORES="$RESTORE_BASE"

    run_step_phase check
    run_step_phase check-read-data
    run_step_phase forget-prune
done

echo
echo "## Results ($KIND corpus of $SIZE MiB, $ROUNDS rounds, run $RUN_ID)"
echo
for p in "${PHASES[@]}"; do print_phase "$p"; done
echo "raw results: $RESULTS (appended per run); logs: $LOGS (of the last round)"
