#!/usr/bin/env bash
# Deduplication of nightly database dumps: a PostgreSQL table changing 1 % a
# day, dumped every night the way custos's postgres source dumps it
# (pg_dump --format=custom --compress=0), and the same dump fed on stdin to
# custos, restic and borg. Reports, per night, the bytes each repository
# grew by.
#
#   benches/nightly-dumps.sh [--nights N] [--rows N] [--pattern P] [--chunk-avg-kib K]
#                            [--workdir DIR] [--custos PATH] [--tools LIST]
#
#   --nights N     nights (default 30)
#   --rows N       rows of the table (default 1000000: a dump of about 60 MB)
#   --pattern P    how the 1 % changes each night: `scattered` (default: 1 % of the rows
#                  updated, spread over the whole table, so every MiB of the dump changes)
#                  or `recent` (the newest 0.5 % of the rows updated and 0.5 % new rows
#                  appended, as an order table changes)
#   --chunk-avg-kib K  custos's average chunk size for its repository (default its own, 1024)
#   --workdir DIR  scratch (default ${TMPDIR:-/tmp}/custos-nightly); must be outside the repo
#   --custos PATH  custos binary (default: cargo build --release)
#   --tools LIST   comma-separated subset of custos,restic,borg (default: all installed)
#
# Needs PostgreSQL's server programs (Debian postgresql); the server runs in
# the workdir on a Unix socket (as nobody when run as root). Peers: apt-get
# install restic borgbackup. Settings: custos defaults; restic repository v2
# with --compression auto; borg repokey-blake2 with --compression zstd,3.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd)"
NIGHTS=30
ROWS=1000000
PATTERN=scattered
CHUNK_AVG=""
WORKDIR="${TMPDIR:-/tmp}/custos-nightly"
CUSTOS_BIN=""
TOOLS_ARG=""

die() { echo "nightly-dumps.sh: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --nights) NIGHTS="$2"; shift 2 ;;
        --rows) ROWS="$2"; shift 2 ;;
        --pattern) PATTERN="$2"; shift 2 ;;
        --chunk-avg-kib) CHUNK_AVG="$2"; shift 2 ;;
        --workdir) WORKDIR="$2"; shift 2 ;;
        --custos) CUSTOS_BIN="$2"; shift 2 ;;
        --tools) TOOLS_ARG="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1'" ;;
    esac
done
[[ "$NIGHTS" =~ ^[0-9]+$ && "$ROWS" =~ ^[0-9]+$ ]] || die "--nights and --rows are numbers"
case "$PATTERN" in scattered|recent) ;; *) die "--pattern is scattered or recent" ;; esac
case "$WORKDIR" in "$REPO_ROOT"|"$REPO_ROOT"/*) die "--workdir must be outside the repository" ;; esac

PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[[ -x "$PGBIN/initdb" ]] || die "PostgreSQL's server programs are missing (apt-get install postgresql)"
if [[ -z "$CUSTOS_BIN" ]]; then
    (cd "$REPO_ROOT" && cargo build --release --quiet)
    CUSTOS_BIN="$REPO_ROOT/target/release/custos"
fi
if [[ -n "$TOOLS_ARG" ]]; then
    IFS=, read -r -a TOOLS <<<"$TOOLS_ARG"
else
    TOOLS=(custos)
    command -v restic >/dev/null && TOOLS+=(restic)
    command -v borg >/dev/null && TOOLS+=(borg)
fi

rm -rf "$WORKDIR"
mkdir -p "$WORKDIR"
chmod 755 "$WORKDIR"
PG="$WORKDIR/pg"
mkdir -p "$PG/sock"
AS=()
if [[ "$(id -u)" == 0 ]]; then
    chown -R nobody: "$PG"
    AS=(runuser -u nobody --)
fi
"${AS[@]}" "$PGBIN/initdb" -D "$PG/data" -U bench --auth=trust --no-sync >/dev/null
"${AS[@]}" "$PGBIN/pg_ctl" -D "$PG/data" -l "$PG/log" -w -o "-c listen_addresses='' -k $PG/sock -c fsync=off" start >/dev/null
trap '"${AS[@]}" "$PGBIN/pg_ctl" -D "$PG/data" -m immediate stop >/dev/null 2>&1 || true' EXIT
psql() { "$PGBIN/psql" -h "$PG/sock" -U bench -d shop -qtAX -v ON_ERROR_STOP=1 "$@"; }
"$PGBIN/createdb" -h "$PG/sock" -U bench shop
psql -c "CREATE TABLE orders (id int PRIMARY KEY, customer int, amount numeric(12,2), status text, note text)"
psql -c "INSERT INTO orders SELECT i, i % 9973, (i::bigint * 7919 % 100000) / 100.0, 'open', md5(i::text) FROM generate_series(1, $ROWS) i"

export CUSTOS_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export CUSTOS_CACHE_DIR="$WORKDIR/custos-cache" RESTIC_CACHE_DIR="$WORKDIR/restic-cache"
export BORG_BASE_DIR="$WORKDIR/borg-base" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
for t in "${TOOLS[@]}"; do
    case "$t" in
        custos) "$CUSTOS_BIN" -q -r "$WORKDIR/repo-custos" init ${CHUNK_AVG:+--chunk-avg-kib "$CHUNK_AVG"} >/dev/null ;;
        restic) restic -q -r "$WORKDIR/repo-restic" init >/dev/null ;;
        borg) borg init -e repokey-blake2 "$WORKDIR/repo-borg" >/dev/null ;;
        *) die "unknown tool $t" ;;
    esac
done

size() { du -sb "$1" | cut -f1; }
OUT="$WORKDIR/nightly.tsv"
printf 'night\tdump_bytes' >"$OUT"
for t in "${TOOLS[@]}"; do printf '\t%s_added' "$t" >>"$OUT"; done
printf '\n' >>"$OUT"
DUMP="$WORKDIR/shop.dump"
for night in $(seq 1 "$NIGHTS"); do
    if [[ "$night" -gt 1 && "$PATTERN" == scattered ]]; then
        # 1 % of the rows change, a different 1 % each night.
        psql -c "UPDATE orders SET status = 'night $night', amount = amount + 1 WHERE id % 100 = $((night % 100))"
    elif [[ "$night" -gt 1 ]]; then
        # The newest 0.5 % change, and 0.5 % new rows arrive.
        psql -c "UPDATE orders SET status = 'night $night' WHERE id > (SELECT max(id) FROM orders) - $((ROWS / 200))"
        psql -c "INSERT INTO orders SELECT i, i % 9973, (i::bigint * 7919 % 100000) / 100.0, 'open', md5(i::text) FROM generate_series((SELECT max(id) FROM orders) + 1, (SELECT max(id) FROM orders) + $((ROWS / 200))) i"
    fi
    "$PGBIN/pg_dump" -h "$PG/sock" -U bench --format=custom --compress=0 shop >"$DUMP"
    line="$night\t$(stat -c %s "$DUMP")"
    for t in "${TOOLS[@]}"; do
        before=$(size "$WORKDIR/repo-$t")
        case "$t" in
            custos) "$CUSTOS_BIN" -q -r "$WORKDIR/repo-custos" backup --stdin --stdin-name shop.dump --service db <"$DUMP" >/dev/null ;;
            restic) restic -q -r "$WORKDIR/repo-restic" backup --compression auto --stdin --stdin-filename shop.dump <"$DUMP" >/dev/null ;;
            borg) borg create --compression zstd,3 "$WORKDIR/repo-borg::night-$night" - <"$DUMP" >/dev/null ;;
        esac
        line="$line\t$(( $(size "$WORKDIR/repo-$t") - before ))"
    done
    printf "$line\n" >>"$OUT"
    echo "night $night: $(tail -n 1 "$OUT")" >&2
done

python3 - "$OUT" "${TOOLS[@]}" <<'PY'
import sys, statistics
path, tools = sys.argv[1], sys.argv[2:]
rows = [l.rstrip("\n").split("\t") for l in open(path)][1:]
mib = lambda b: b / 1048576
print(f"| | dump | " + " | ".join(tools) + " |")
print("|---|---:|" + "---:|" * len(tools))
first = rows[0]
print(f"| night 1 (first backup), MiB | {mib(int(first[1])):.1f} | " + " | ".join(f"{mib(int(first[2+i])):.1f}" for i in range(len(tools))) + " |")
later = rows[1:]
if later:
    print(f"| nights 2–{len(rows)}: median added a night, MiB | {mib(statistics.median(int(r[1]) for r in later)):.1f} | " + " | ".join(f"{mib(statistics.median(int(r[2+i]) for r in later)):.2f}" for i in range(len(tools))) + " |")
    print(f"| all {len(rows)} nights, MiB | {mib(sum(int(r[1]) for r in rows)):.1f} | " + " | ".join(f"{mib(sum(int(r[2+i]) for r in rows)):.1f}" for i in range(len(tools))) + " |")
print(f"\nraw: {path}")
PY
