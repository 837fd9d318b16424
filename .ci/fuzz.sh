#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder of a stored format (fuzz/, cargo-fuzz
# + libFuzzer), on a STABLE toolchain: RUSTC_BOOTSTRAP=1 lets stable rustc take
# the -Z flags cargo-fuzz passes (-Zsanitizer=address works on stable 1.95).
#
#   CUSTOS_FUZZ_SECONDS    time per target (default 20)
#   CUSTOS_FUZZ_SANITIZER  cargo fuzz sanitizer: address (default) or none
#   CUSTOS_FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (default 10)
#   CUSTOS_FUZZ_SEED       libFuzzer's seed (default 0: a new one each run; CI fixes it)
#   CUSTOS_FUZZ_TARGETS    space-separated subset of targets (default: all, `cargo fuzz list`)
#
# Corpora and artifacts live in a temporary directory removed at exit; seeds
# come from fuzz/corpus-seed/<target>/ (and config/*.toml for daemon_config).
# A crashing input is copied to fuzz/artifacts/<target>/ (git-ignored) and the
# script exits non-zero. The first build of all targets takes several minutes;
# later runs reuse fuzz/target.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export RUSTC_BOOTSTRAP=1
FUZZ_SECONDS="${CUSTOS_FUZZ_SECONDS:-20}"
SANITIZER="${CUSTOS_FUZZ_SANITIZER:-address}"
UNIT_TIMEOUT="${CUSTOS_FUZZ_TIMEOUT:-10}"
FUZZ_SEED="${CUSTOS_FUZZ_SEED:-0}"
KEEP_DIR="fuzz/artifacts"

# Runs "$@"; on failure waits a little and runs it once more.
retry() {
    if "$@"; then
        return 0
    fi
    echo "!!! '$*' failed; retrying once in 15 s" >&2
    sleep 15
    "$@"
}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "=== installing cargo-fuzz"
    retry cargo install cargo-fuzz --locked
fi
cargo fuzz --version

work="$(mktemp -d "${TMPDIR:-/tmp}/custos-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The same build flags for build and run, so that run does not rebuild.
build_flags=(--sanitizer "$SANITIZER")

echo "=== building all fuzz targets (sanitizer: $SANITIZER)"
build_start=$SECONDS
retry cargo fuzz build "${build_flags[@]}"
echo "=== build took $((SECONDS - build_start)) s"

if [[ -n "${CUSTOS_FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$CUSTOS_FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "no fuzz targets found" >&2
    exit 1
fi

failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    artifacts="$work/artifacts/$t"
    log="$work/$t.log"
    mkdir -p "$corpus" "$artifacts"
    if [[ -d "fuzz/corpus-seed/$t" ]]; then
        cp fuzz/corpus-seed/"$t"/* "$corpus"/
    fi
    if [[ "$t" == daemon_config ]]; then
        cp config/*.toml config/examples/*.toml "$corpus"/ 2>/dev/null || true
    fi

    echo "=== fuzzing $t for ${FUZZ_SECONDS} s"
    rc=0
    cargo fuzz run "${build_flags[@]}" "$t" "$corpus" -- \
        -artifact_prefix="$artifacts/" \
        -max_total_time="$FUZZ_SECONDS" \
        -seed="$FUZZ_SEED" \
        -rss_limit_mb=2048 \
        -max_len=65536 \
        -timeout="$UNIT_TIMEOUT" \
        -print_final_stats=1 \
        >"$log" 2>&1 || rc=$?

    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    if [[ -z "$execs" ]]; then
        # No final stats (crash): the last status line "#N ..." has the count.
        execs="$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')"
    fi
    status_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)"
    echo "    executions: ${execs:-?}  ${status_line}"

    mapfile -t found < <(find "$artifacts" -type f)
    if [[ $rc -ne 0 || ${#found[@]} -gt 0 ]]; then
        echo "!!! $t FAILED (exit code $rc)" >&2
        # The panic message (the line after "panicked at") or the sanitizer's verdict.
        grep -E -A 2 "panicked at|==[0-9]+== ?ERROR|^SUMMARY:|ALARM:|out-of-memory" "$log" | head -n 30 >&2 || true
        if [[ ${#found[@]} -eq 0 ]]; then
            tail -n 40 "$log" >&2
        fi
        mkdir -p "$KEEP_DIR/$t"
        for a in "${found[@]}"; do
            kept="$KEEP_DIR/$t/$(basename "$a")"
            cp "$a" "$kept"
            echo "!!! $t: crashing input saved as $kept ($(wc -c <"$kept") bytes)" >&2
            if [[ $(wc -c <"$kept") -le 256 ]]; then
                echo "    hex: $(od -An -v -tx1 "$kept" | tr -d ' \n')" >&2
            fi
            echo "    reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run ${build_flags[*]} $t $kept" >&2
        done
        failed+=("$t")
        summary+=("$t: FAILED after ${execs:-?} executions")
    else
        summary+=("$t: ok, ${execs:-?} executions")
    fi
done

echo
echo "=== summary (${FUZZ_SECONDS} s per target, sanitizer $SANITIZER)"
printf '    %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "!!! fuzz targets with crashes: ${failed[*]}" >&2
    exit 1
fi
echo "=== no crashes; total $SECONDS s"
