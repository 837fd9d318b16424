#!/usr/bin/env bash
# Fleet benchmark: one custos daemon holding hundreds of tenants and thousands of services,
# and a burst of on-demand backups through its API.
#
#   benches/fleet.sh [--tenants N] [--services N] [--files N] [--max-jobs N]
#                    [--workdir DIR] [--custos PATH] [--keep]
#
#   --tenants N     tenants (default 200), each with its own passphrase and repository
#   --services N    services per tenant (default 5), each backing up its own tree
#   --files N       files of 100 KiB of unique content per service tree (default 10: 1 MiB)
#   --max-jobs N    the daemon's job slots (default 2)
#   --workdir DIR   scratch space (default ${TMPDIR:-/tmp}/custos-fleet); outside the repo
#   --custos PATH   custos binary (default: cargo build --release)
#   --keep          keep the trees, the target and the state directory
#
# Measures: `config check` time; daemon start until /health answers; idle RSS; a burst of
# one POST /v1/services/<tenant>/<service>/backup per service (8 clients at once) with the
# latency of every POST; while the jobs run, a probe of GET /v1/services/<t>/<s> and
# GET /v1/jobs every 20 ms with its latency; the time until every job has ended; the jobs'
# results; key derivations (custos_key_derivations_total); the state directory's size and
# its growth per job; the daemon's peak RSS (VmHWM).
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd)"
TENANTS=200; SERVICES=5; FILES=10; MAX_JOBS=2
WORKDIR="${TMPDIR:-/tmp}/custos-fleet"; CUSTOS_BIN=""; KEEP=0

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
die() { echo "fleet.sh: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --tenants) TENANTS="${2:?}"; shift 2 ;;
        --services) SERVICES="${2:?}"; shift 2 ;;
        --files) FILES="${2:?}"; shift 2 ;;
        --max-jobs) MAX_JOBS="${2:?}"; shift 2 ;;
        --workdir) WORKDIR="${2:?}"; shift 2 ;;
        --custos) CUSTOS_BIN="${2:?}"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
for v in "$TENANTS" "$SERVICES" "$FILES" "$MAX_JOBS"; do [[ "$v" =~ ^[0-9]+$ && "$v" -ge 1 ]] || die "counts must be positive integers"; done
WORKDIR="$(realpath -m -- "$WORKDIR")"
case "$WORKDIR/" in "$(realpath -m -- "$REPO_ROOT")/"*) die "--workdir must be outside the repository" ;; esac
[[ "$WORKDIR" != "/" ]] || die "--workdir must not be /"
if [[ -z "$CUSTOS_BIN" ]]; then
    (cd "$REPO_ROOT" && cargo build --release -q) || die "cargo build --release failed"
    CUSTOS_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/custos"
fi
[[ "$CUSTOS_BIN" == /* ]] || CUSTOS_BIN="$PWD/$CUSTOS_BIN"
[[ -x "$CUSTOS_BIN" ]] || die "no custos binary at $CUSTOS_BIN"
command -v python3 >/dev/null || die "python3 is required"

DAEMON_PID=""
cleanup() {
    local rc=$?
    [[ -n "$DAEMON_PID" ]] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
    if [[ "$KEEP" -eq 0 ]]; then rm -rf -- "$WORKDIR"/trees "$WORKDIR"/target "$WORKDIR"/state "$WORKDIR"/keys 2>/dev/null || true; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p -- "$WORKDIR"
rm -rf -- "$WORKDIR"/target "$WORKDIR"/state "$WORKDIR"/keys "$WORKDIR"/custos.toml
mkdir -p -- "$WORKDIR"/keys "$WORKDIR"/logs
chmod 700 "$WORKDIR"/keys
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
TOKEN="fleet-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

echo "generating $TENANTS tenants × $SERVICES services ($FILES × 100 KiB each)..." >&2
python3 - "$WORKDIR" "$TENANTS" "$SERVICES" "$FILES" "$PORT" "$TOKEN" "$MAX_JOBS" <<'PY'
import os, random, sys
wd, tenants, services, files, port, token, max_jobs = sys.argv[1], *map(int, sys.argv[2:4]), int(sys.argv[4]), sys.argv[5], sys.argv[6], sys.argv[7]
def secret(path, value):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, value.encode()); os.close(fd)
secret(f"{wd}/keys/token", token)
out = [f'''[daemon]
state_dir = "state"
listen = "127.0.0.1:{port}"
max_jobs = {max_jobs}
restore_root = "restores"
scratch_dir = "drills"

[[daemon.token]]
name = "fleet-operator"
role = "operator"
secret_file = "keys/token"

[[target]]
name = "local"
url = "target"
region = "eu-west-par"
zone = "par2"
''']
for t in range(tenants):
    tid = f"t{t:04d}"
    secret(f"{wd}/keys/{tid}.pass", f"passphrase of {tid} " + os.urandom(8).hex())
    out.append(f'[[tenant]]\nid = "{tid}"\ncontract = "FLEET-{t:04d}"\npassword_file = "keys/{tid}.pass"\n')
    for s in range(services):
        tree = f"{wd}/trees/{tid}/s{s}"
        if not os.path.isfile(f"{tree}/.complete"):
            os.makedirs(tree, exist_ok=True)
            rng = random.Random(t * 1000 + s)
            for f in range(files):
                with open(f"{tree}/f{f:03d}", "wb") as fh:
                    fh.write(rng.randbytes(100 * 1024))
            open(f"{tree}/.complete", "w").close()
        out.append(f'[[service]]\ntenant = "{tid}"\nname = "s{s}"\nclass = "staas-standard"\nzone = "par1"\ntarget = "local"\nsource = {{ paths = ["{tree}"] }}\n')
open(f"{wd}/custos.toml", "w").write("\n".join(out))
PY

CONF="$WORKDIR/custos.toml"
{
    echo "## Machine"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); $(uname -srm); $(nproc) cores; load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $("$CUSTOS_BIN" --version | head -n 1) ($CUSTOS_BIN, repo at $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo "- $TENANTS tenants × $SERVICES services, $FILES × 100 KiB per service, max_jobs $MAX_JOBS"
    echo
} | tee "$WORKDIR/machine.txt"

t0=$(date +%s.%N)
"$CUSTOS_BIN" config check --config "$CONF" >"$WORKDIR/logs/config-check.log" 2>&1 || die "config check failed (see $WORKDIR/logs/config-check.log)"
t1=$(date +%s.%N)
CHECK_S="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')"

t0=$(date +%s.%N)
"$CUSTOS_BIN" daemon --config "$CONF" >"$WORKDIR/logs/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 6000); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/health', timeout=1)" 2>/dev/null; then break; fi
    kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon stopped (see $WORKDIR/logs/daemon.log)"
    sleep 0.05
done
t1=$(date +%s.%N)
START_S="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')"
sleep 2
IDLE_KIB="$(awk '/^VmRSS/ {print $2}' "/proc/$DAEMON_PID/status")"
STATE_BEFORE="$(du -sb "$WORKDIR/state" | cut -f1)"

echo "burst of $((TENANTS * SERVICES)) backups..." >&2
python3 - "$PORT" "$TOKEN" "$TENANTS" "$SERVICES" >"$WORKDIR/burst.txt" <<'PY'
import http.client, json, sys, threading, time
port, token, tenants, services = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
H = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
def req(conn, method, path, body=None):
    t = time.perf_counter()
    conn.request(method, path, body=body, headers=H)
    r = conn.getresponse(); data = r.read()
    return r.status, data, time.perf_counter() - t
targets = [(f"t{t:04d}", f"s{s}") for t in range(tenants) for s in range(services)]
post_lat, jobs, errors, lock = [], [], [], threading.Lock()
def poster(items):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for tid, s in items:
        st, data, dt = req(c, "POST", f"/v1/services/{tid}/{s}/backup", b"{}")
        with lock:
            post_lat.append(dt)
            if st == 202: jobs.append(json.loads(data)["id"])
            else: errors.append((tid, s, st, data[:200]))
probe_lat, stop = [], threading.Event()
def prober():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    i = 0
    while not stop.is_set():
        tid, s = targets[i % len(targets)]; i += 1
        path = f"/v1/services/{tid}/{s}" if i % 2 else "/v1/jobs?limit=20"
        st, _, dt = req(c, "GET", path)
        if st == 200: probe_lat.append(dt)
        time.sleep(0.02)
start = time.perf_counter()
pt = threading.Thread(target=prober); pt.start()
clients = [threading.Thread(target=poster, args=(targets[i::8],)) for i in range(8)]
for t in clients: t.start()
for t in clients: t.join()
posted = time.perf_counter() - start
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
pending, results = set(jobs), {}
while pending:
    for j in list(pending):
        st, data, _ = req(c, "GET", f"/v1/jobs/{j}")
        if st == 200:
            rec = json.loads(data)
            if rec["state"] in ("succeeded", "warning", "failed"):
                results[rec["state"]] = results.get(rec["state"], 0) + 1
                pending.discard(j)
    time.sleep(0.5)
done = time.perf_counter() - start
stop.set(); pt.join()
def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000 if xs else float("nan")
print(f"jobs accepted\t{len(jobs)}\nrefused\t{len(errors)}")
for e in errors[:5]: print(f"refusal\t{e}")
print(f"POSTs answered after\t{posted:.1f} s")
print(f"POST latency p50 / p99 / max\t{pct(post_lat,50):.1f} / {pct(post_lat,99):.1f} / {max(post_lat)*1000:.1f} ms")
print(f"probe requests while jobs ran\t{len(probe_lat)}")
print(f"probe latency p50 / p99 / max\t{pct(probe_lat,50):.1f} / {pct(probe_lat,99):.1f} / {max(probe_lat or [0])*1000:.1f} ms")
print(f"burst finished after\t{done:.1f} s ({done / max(1, len(jobs)):.3f} s a job)")
print(f"results\t{json.dumps(results)}")
PY
METRICS="$(python3 -c "
import urllib.request
r = urllib.request.Request('http://127.0.0.1:$PORT/metrics', headers={'Authorization': 'Bearer $TOKEN'})
print(urllib.request.urlopen(r).read().decode())")"
DERIVATIONS="$(awk '/^custos_key_derivations_total/ {print $2}' <<<"$METRICS")"
PEAK_KIB="$(awk '/^VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")"
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=""
STATE_AFTER="$(du -sb "$WORKDIR/state" | cut -f1)"
JOBS="$(awk -F'\t' '$1=="jobs accepted" {print $2}' "$WORKDIR/burst.txt")"

echo
echo "## Results"
echo
echo "| measure | value |"
echo "|---|---|"
echo "| config check | $CHECK_S s |"
echo "| start until /health answers | $START_S s |"
echo "| idle RSS | $((IDLE_KIB / 1024)) MiB |"
awk -F'\t' '$1 != "refusal" {printf "| %s | %s |\n", $1, $2}' "$WORKDIR/burst.txt"
echo "| key derivations (custos_key_derivations_total) | ${DERIVATIONS:-?} for $TENANTS tenants |"
echo "| daemon peak RSS | $((PEAK_KIB / 1024)) MiB |"
echo "| state directory before → after | $((STATE_BEFORE / 1048576)) → $((STATE_AFTER / 1048576)) MiB ($(( (STATE_AFTER - STATE_BEFORE) / (${JOBS:-0} > 0 ? ${JOBS:-0} : 1) )) bytes a job) |"
grep '^refusal' "$WORKDIR/burst.txt" || true
