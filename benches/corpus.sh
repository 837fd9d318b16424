#!/usr/bin/env bash
# Deterministic benchmark corpus for custos (and its peers restic / borg).
#
#   benches/corpus.sh DIR [SIZE_MIB]     build a corpus of about SIZE_MIB MiB (default 2048)
#   benches/corpus.sh --mutate DIR       apply a deterministic ~2 % change (insertions, edits,
#                                        new and deleted files); repeatable, each call differs
#   CORPUS_KIND=tree benches/corpus.sh DIR [SIZE_MIB]
#                                        the whole budget as real files (tree/ only, no vm/ or
#                                        sql/): with 2048 MiB, 50 000 or more files where /usr
#                                        holds that many
#
# Layout of DIR:
#   .custos-bench-corpus   marker (also used to find the corpus root inside a restore)
#   tree/                  ~40 %: real files copied from /usr/{include,share,lib,bin}
#                          (sorted walk, byte budget, symlinks kept, special files skipped)
#   vm/disk.img            ~40 %: "VM image": pseudo-random 4 KiB-aligned extents mixed with
#                          zero runs, repeated extents, low-entropy binary and log text
#   sql/dump.sql           ~20 %: generated SQL dump (CREATE TABLE + batched INSERTs)
#
# Everything generated comes from fixed seeds, so two builds on the same machine are
# byte-identical (the tree part depends on what is installed under /usr).
# Needs bash and python3 only.
set -euo pipefail

usage() {
    sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

PYTHON="${PYTHON:-$(command -v python3 || true)}"
[[ -n "$PYTHON" ]] || { echo "corpus.sh: python3 is required" >&2; exit 2; }

MARKER=".custos-bench-corpus"

mode=build
if [[ "${1:-}" == "--mutate" ]]; then
    mode=mutate
    shift
fi
[[ $# -ge 1 ]] || usage
case "${1:-}" in -h|--help) usage 0 ;; esac

DIR="$1"
SIZE_MIB="${2:-2048}"
[[ "$SIZE_MIB" =~ ^[0-9]+$ && "$SIZE_MIB" -ge 10 ]] || { echo "corpus.sh: SIZE_MIB must be an integer >= 10" >&2; exit 2; }

if [[ "$mode" == build ]]; then
    if [[ -e "$DIR" ]]; then
        if [[ -f "$DIR/$MARKER" ]]; then
            rm -rf -- "$DIR"            # an old corpus of ours: rebuild
        elif [[ -n "$(ls -A -- "$DIR")" ]]; then
            echo "corpus.sh: $DIR exists, is not empty and is not a corpus; refusing" >&2
            exit 2
        fi
    fi
    mkdir -p -- "$DIR"
else
    [[ -f "$DIR/$MARKER" ]] || { echo "corpus.sh: $DIR is not a corpus (no $MARKER)" >&2; exit 2; }
fi

case "${CORPUS_KIND:-mixed}" in mixed|tree) ;; *) echo "corpus.sh: CORPUS_KIND must be mixed or tree" >&2; exit 2 ;; esac

exec "$PYTHON" - "$mode" "$DIR" "$SIZE_MIB" "$MARKER" "${CORPUS_KIND:-mixed}" <<'PY'
import os, sys, stat, random, shutil, time

mode, DIR, SIZE_MIB, MARKER, KIND = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
MIB = 1 << 20
BLOCK = 4096
t0 = time.time()

def log(msg):
    print(f"corpus: {msg}", file=sys.stderr, flush=True)

# ---------------------------------------------------------------- text material
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron "
         "pi rho sigma tau upsilon phi chi psi omega backup restore snapshot chunk pack index "
         "tenant service retention policy daemon kernel systemd sshd cron nginx postgres "
         "connection accepted closed timeout retry error warning info debug request response "
         "user admin session token cache disk volume mount network interface eth0 lo started "
         "stopped failed succeeded queued scheduled worker thread process memory cpu load").split()
LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
HOSTS = ["web-01", "web-02", "db-01", "cache-01", "batch-07"]
UNITS = ["sshd[812]", "nginx[1020]", "postgres[933]", "cron[77]", "kernel", "custosd[4242]"]

def make_line_pool(rng, n=4096):
    pool = []
    for _ in range(n):
        k = rng.randint(4, 16)
        pool.append(f"{rng.choice(HOSTS)} {rng.choice(UNITS)}: {rng.choice(LEVELS)} "
                    + " ".join(rng.choice(WORDS) for _ in range(k)))
    return pool

def log_text(rng, pool, nbytes, t):
    """nbytes of syslog-like text (exactly nbytes)."""
    out, have = [], 0
    while have < nbytes:
        t += rng.randint(0, 3)
        lines = rng.choices(pool, k=256)
        chunk = "".join(f"2024-{1 + (t // 2592000) % 12:02d}-{1 + (t // 86400) % 28:02d}T"
                        f"{(t // 3600) % 24:02d}:{(t // 60) % 60:02d}:{t % 60:02d}Z {l}\n"
                        for l in lines).encode()
        out.append(chunk)
        have += len(chunk)
    return b"".join(out)[:nbytes], t

LOW_ENTROPY = bytes((b & 0x0F) * 17 if b & 0x30 else 0 for b in range(256))

# ---------------------------------------------------------------- (a) tree
ROOTS = [(b"/usr/include", 0.15), (b"/usr/share", 0.40), (b"/usr/lib", 0.35), (b"/usr/bin", 0.10)]

def build_tree(dst_root, budget):
    dst_root = os.fsencode(dst_root)
    os.makedirs(dst_root, exist_ok=True)
    cap = max(MIB, budget // 20)          # no single file above 5 % of the tree budget
    used_total = carry = 0
    nfiles = nlinks = ndirs = 0
    dir_stats = []                         # (dst, st) to fix dir mode/mtime afterwards
    for root, share in ROOTS:
        if not os.path.isdir(root):
            carry += int(budget * share)
            continue
        quota = int(budget * share) + carry
        used = 0
        stop = False
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
            dirnames.sort()
            rel = os.path.relpath(dirpath, b"/usr")
            ddst = os.path.join(dst_root, rel)
            try:
                dst_st = os.lstat(dirpath)
            except OSError:
                dirnames[:] = []
                continue
            os.makedirs(ddst, exist_ok=True)
            dir_stats.append((ddst, dst_st))
            ndirs += 1
            for name in sorted(filenames):
                src = os.path.join(dirpath, name)
                dst = os.path.join(ddst, name)
                try:
                    st = os.lstat(src)
                except OSError:
                    continue
                if stat.S_ISLNK(st.st_mode):
                    try:
                        os.symlink(os.readlink(src), dst)
                        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
                        nlinks += 1
                    except OSError:
                        pass
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue                  # fifos, sockets, devices
                if st.st_size > cap or used + st.st_size > quota:
                    continue
                try:
                    with open(src, "rb") as fi, open(dst, "wb") as fo:
                        shutil.copyfileobj(fi, fo, MIB)
                    os.chmod(dst, stat.S_IMODE(st.st_mode))
                    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
                except OSError:
                    try:
                        os.unlink(dst)
                    except OSError:
                        pass
                    continue
                used += st.st_size
                nfiles += 1
                if used >= quota * 0.995:
                    stop = True
                    break
            if stop:
                dirnames[:] = []
                break
        carry = max(0, quota - used)
        used_total += used
    for ddst, st in reversed(dir_stats):
        try:
            os.chmod(ddst, stat.S_IMODE(st.st_mode) | 0o700)
            os.utime(ddst, ns=(st.st_atime_ns, st.st_mtime_ns))
        except OSError:
            pass
    log(f"tree: {nfiles} files, {nlinks} symlinks, {ndirs} dirs, {used_total / MIB:.1f} MiB")

# ---------------------------------------------------------------- (b) VM image
def build_vm(path, nbytes, seed=0xC057_0001):
    rng = random.Random(seed)
    pool = make_line_pool(random.Random(seed + 1))
    maxseg = max(16 * BLOCK, min(4 * MIB, nbytes // 32))
    written = 0
    t = 1_700_000_000
    rand_extents = []                     # (sub-seed, length) of random extents, for repeats
    kinds = ["random", "zero", "repeat", "text", "lowent"]
    weights = [40, 25, 12, 15, 8]
    with open(path, "wb") as f:
        # a plausible header: MBR-ish boot sector, then a partition's first blocks
        hdr = bytearray(BLOCK)
        hdr[0:3] = b"\xeb\x63\x90"
        hdr[3:11] = b"CUSTOSVM"
        hdr[510:512] = b"\x55\xaa"
        f.write(hdr)
        written += BLOCK
        while written < nbytes:
            kind = rng.choices(kinds, weights)[0]
            # log-uniform extent length, in 4 KiB blocks
            n = int(2 ** rng.uniform(4, max(4.01, (maxseg // BLOCK).bit_length() - 1))) * BLOCK
            n = min(n, nbytes - written)
            if kind == "random" or (kind == "repeat" and not rand_extents):
                sub = rng.getrandbits(63)
                data = random.Random(sub).randbytes(n)
                rand_extents.append((sub, n))
            elif kind == "repeat":
                sub, ln = rng.choice(rand_extents)
                data = random.Random(sub).randbytes(min(n, ln))
            elif kind == "zero":
                data = bytes(n)
            elif kind == "text":
                data, t = log_text(rng, pool, n, t)
                # a filesystem leaves the tail of the last block zeroed
                cut = n - rng.randint(0, BLOCK - 1)
                data = data[:cut] + bytes(n - cut)
            else:
                data = rng.randbytes(n).translate(LOW_ENTROPY)
            f.write(data)
            written += len(data)
    log(f"vm image: {written / MIB:.1f} MiB")

# ---------------------------------------------------------------- (c) SQL dump
FIRST = "ada alan grace linus ken dennis barbara margaret edsger donald john tim guido larry".split()
LAST = "lovelace turing hopper torvalds thompson ritchie liskov hamilton dijkstra knuth backus lee rossum wall".split()
CITIES = ["Berlin", "Paris", "Lisboa", "Oslo", "Wien", "Praha", "Madrid", "Roma", "Dublin", "Warszawa"]
STATUS = ["'new'", "'paid'", "'shipped'", "'delivered'", "'cancelled'", "'refunded'"]

def sql_rows(rng, table, start_id, count, t):
    rows = []
    for i in range(start_id, start_id + count):
        t += rng.randint(0, 90)
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
        if table == "customers":
            fn, ln = rng.choice(FIRST), rng.choice(LAST)
            rows.append(f"({i},'{fn.title()} {ln.title()}','{fn}.{ln}{i}@example.com',"
                        f"'{rng.choice(CITIES)}','{ts}',{rng.randint(0, 10**7) / 100:.2f})")
        elif table == "orders":
            rows.append(f"({i},{rng.randint(1, 10**6)},{rng.choice(STATUS)},"
                        f"{rng.randint(100, 10**6) / 100:.2f},'{ts}',"
                        f"'{' '.join(rng.choices(WORDS, k=rng.randint(0, 6)))}')")
        else:
            rows.append(f"({i},'{ts}','{rng.choice(LEVELS)}','{rng.choice(HOSTS)}',"
                        f"'{' '.join(rng.choices(WORDS, k=rng.randint(3, 12)))}')")
    return rows, t

SCHEMA = """--
-- custos benchmark SQL dump (generated, deterministic)
--
SET NAMES utf8mb4;
SET FOREIGN_KEY_CHECKS = 0;

DROP TABLE IF EXISTS `customers`;
CREATE TABLE `customers` (
  `id` bigint NOT NULL,
  `name` varchar(120) NOT NULL,
  `email` varchar(200) NOT NULL,
  `city` varchar(60) DEFAULT NULL,
  `created_at` datetime NOT NULL,
  `balance` decimal(12,2) NOT NULL DEFAULT '0.00',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

DROP TABLE IF EXISTS `orders`;
CREATE TABLE `orders` (
  `id` bigint NOT NULL,
  `customer_id` bigint NOT NULL,
  `status` varchar(16) NOT NULL,
  `amount` decimal(12,2) NOT NULL,
  `created_at` datetime NOT NULL,
  `note` text,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

DROP TABLE IF EXISTS `events`;
CREATE TABLE `events` (
  `id` bigint NOT NULL,
  `ts` datetime NOT NULL,
  `level` varchar(8) NOT NULL,
  `host` varchar(32) NOT NULL,
  `message` text NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

"""

def build_sql(path, nbytes, seed=0xC057_0002):
    rng = random.Random(seed)
    shares = [("customers", 0.2), ("orders", 0.4), ("events", 0.4)]
    written = 0
    with open(path, "wb") as f:
        head = SCHEMA.encode()
        f.write(head)
        written += len(head)
        for table, share in shares:
            target = written + int((nbytes - len(head)) * share)
            if table == "events":
                target = nbytes - 20
            i, t = 1, 1_600_000_000
            f.write(f"LOCK TABLES `{table}` WRITE;\n".encode())
            while written < target:
                rows, t = sql_rows(rng, table, i, 40, t)
                i += 40
                stmt = f"INSERT INTO `{table}` VALUES {','.join(rows)};\n".encode()
                f.write(stmt)
                written += len(stmt)
            f.write(b"UNLOCK TABLES;\n\n")
        f.write(b"-- Dump completed\n")
    log(f"sql dump: {os.path.getsize(path) / MIB:.1f} MiB")

# ---------------------------------------------------------------- mutation
def insert_into(path, inserts):
    """Stream-copy path with inserts [(offset, bytes)] applied; keep the mode."""
    inserts = sorted(inserts, key=lambda x: x[0])
    tmp = path + ".mutating"
    st = os.stat(path)
    with open(path, "rb") as fi, open(tmp, "wb") as fo:
        pos = 0
        for off, data in inserts:
            remaining = off - pos
            while remaining > 0:
                buf = fi.read(min(remaining, 4 * MIB))
                if not buf:
                    break
                fo.write(buf)
                remaining -= len(buf)
            pos = off
            fo.write(data)
        shutil.copyfileobj(fi, fo, 4 * MIB)
    os.chmod(tmp, stat.S_IMODE(st.st_mode))
    os.replace(tmp, path)

def mutate(dir_):
    cnt_path = os.path.join(dir_, MARKER)
    with open(cnt_path) as fh:
        meta = dict(l.strip().split("=", 1) for l in fh if "=" in l)
    if meta.get("complete") != "1":
        sys.exit(f"corpus: {dir_} is an incomplete corpus; rebuild it")
    gen = int(meta.get("mutations", "0")) + 1
    rng = random.Random(0xC057_1000 + gen)
    pool = make_line_pool(random.Random(0xC057_1001))
    changed = 0

    # VM image: 8 insertions at arbitrary (unaligned) offsets, ~2 % of the image in total
    vm = os.path.join(dir_, "vm", "disk.img")
    mixed = os.path.exists(vm)
    size = os.path.getsize(vm) if mixed else 0
    total = max(8, size // 50)
    ins = []
    for k in range(8 if mixed else 0):
        n = total // 8
        off = rng.randrange(BLOCK, size)
        data = rng.randbytes(n) if k % 2 == 0 else log_text(rng, pool, n, 1_800_000_000)[0]
        ins.append((off, data))
        changed += n
    if mixed:
        insert_into(vm, ins)

    # SQL dump: 6 insertions of new INSERT lines at line boundaries, ~2 % of the dump
    sql = os.path.join(dir_, "sql", "dump.sql")
    size = os.path.getsize(sql) if mixed else 0
    with (open(sql, "rb") if mixed else open(os.devnull, "rb")) as fh:
        ins = []
        per = max(200, size // 50 // 6)
        for _ in range(6 if mixed else 0):
            off = rng.randrange(len(SCHEMA), size - 1)
            fh.seek(off)
            tail = fh.read(64 * 1024)
            nl = tail.find(b"\n")
            off = off + nl + 1 if nl >= 0 else size
            data, have, t = [], 0, 1_900_000_000 + gen
            base = 10**9 * gen + rng.randrange(10**8)
            while have < per:
                rows, t = sql_rows(rng, "events", base, 40, t)
                base += 40
                s = f"INSERT INTO `events` VALUES {','.join(rows)};\n".encode()
                data.append(s)
                have += len(s)
            ins.append((off, b"".join(data)))
            changed += have
    if mixed:
        insert_into(sql, ins)

    # tree: edit ~0.5 % of the regular files (insert a line in the middle), delete 3,
    # add a new directory with a few files (~1.5 % of the tree)
    tree = os.path.join(dir_, "tree")
    files, tree_bytes = [], 0
    for dp, dn, fn in os.walk(tree):
        dn.sort()
        for name in sorted(fn):
            p = os.path.join(dp, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                files.append(p)
                tree_bytes += st.st_size
    if files:
        nedit = max(3, len(files) // 200)
        for p in rng.sample(files, min(nedit, len(files))):
            sz = os.path.getsize(p)
            line = f"# custos-bench mutation {gen}: {' '.join(rng.choices(WORDS, k=8))}\n".encode()
            insert_into(p, [(sz // 2, line)])
            changed += len(line)
        for p in rng.sample(files, min(3, len(files))):
            if os.path.exists(p):
                os.unlink(p)
    newdir = os.path.join(tree, f"zz-new-{gen:03d}")
    os.makedirs(newdir, exist_ok=True)
    new_total = max(64 * 1024, tree_bytes * 3 // 200)
    for k in range(6):
        n = new_total // 6
        p = os.path.join(newdir, f"file-{k}.{'bin' if k % 2 else 'log'}")
        with open(p, "wb") as fo:
            fo.write(rng.randbytes(n) if k % 2 else log_text(rng, pool, n, 2_000_000_000)[0])
        changed += n
    meta["mutations"] = str(gen)
    with open(cnt_path, "w") as fh:
        fh.write("".join(f"{k}={v}\n" for k, v in meta.items()))
    log(f"mutation {gen}: {changed / MIB:.1f} MiB inserted/added in {time.time() - t0:.1f}s")

# ---------------------------------------------------------------- main
if mode == "mutate":
    mutate(DIR)
    sys.exit(0)

total = SIZE_MIB * MIB
with open(os.path.join(DIR, MARKER), "w") as fh:     # first, so a failed build can be redone
    fh.write(f"size_mib={SIZE_MIB}\nmutations=0\ncomplete=0\n")
if KIND == "tree":
    build_tree(os.path.join(DIR, "tree"), total)
else:
    for sub in ("tree", "vm", "sql"):
        os.makedirs(os.path.join(DIR, sub), exist_ok=True)
    build_tree(os.path.join(DIR, "tree"), int(total * 0.40))
    build_vm(os.path.join(DIR, "vm", "disk.img"), int(total * 0.40) // BLOCK * BLOCK)
    build_sql(os.path.join(DIR, "sql", "dump.sql"), int(total * 0.20))
with open(os.path.join(DIR, MARKER), "w") as fh:
    fh.write(f"size_mib={SIZE_MIB}\nmutations=0\ncomplete=1\n")
log(f"done in {time.time() - t0:.1f}s")
PY
