#!/usr/bin/env bash
# A product build (no `test-switches` feature, as `cargo build --release`
# makes it) ignores every test switch of src/switches.rs: it writes full-cost
# key slots whatever CUSTOS_TEST_FAST_KDF says, injects no fault, never
# crashes itself at a crash point, and keeps the normal lock lease.
#
# Uses the dev profile (the test run compiled its dependencies already); the
# feature set is the only difference from a release build that matters here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --quiet --bin custos
bin="$PWD/target/debug/custos"
work="$(mktemp -d "${TMPDIR:-/tmp}/custos-product.XXXXXX")"
trap 'rm -rf "$work"' EXIT

export CUSTOS_REPOSITORY="$work/repo" CUSTOS_PASSWORD="a passphrase" XDG_CACHE_HOME="$work/cache"
# Every switch set, all at once.
export CUSTOS_TEST_FAST_KDF=1 CUSTOS_FAULTS="rate=1,seed=1" CUSTOS_TEST_CRASH_AT="store:write" \
    CUSTOS_TEST_LOCK_LEASE=1 CUSTOS_BACKEND_RETRIES=0

fail() { echo "!!! product build: $*" >&2; exit 1; }

"$bin" -q init >/dev/null || fail "init did not complete (a crash point or an injected fault ran)"
slot="$(find "$work/repo/keys" -type f | head -n 1)"
python3 - "$slot" <<'PY' || fail "the key slot was written with a weak Argon2 cost"
import json, sys
kdf = json.load(open(sys.argv[1]))["kdf"]
assert kdf["m_kib"] >= 65536 and kdf["t"] >= 3, kdf
PY
mkdir -p "$work/src" && echo data > "$work/src/f"
"$bin" -q backup "$work/src" >/dev/null || fail "backup did not complete"
"$bin" -q check >/dev/null || fail "check did not complete"
"$bin" -q snapshots >/dev/null || fail "snapshots did not complete"
echo "product build ignores the test switches: full-cost key slot, no fault, no crash"
