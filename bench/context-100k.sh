#!/usr/bin/env bash
# Times `COPY . /ctx` of a 100,000-file build context with strata and with BuildKit
# (`docker26 buildx build`, BuildKit 0.13), cold and warm, in the same run, and prints the
# ratio strata / BuildKit.
#
#   cold: a context directory neither builder has seen before (BuildKit keeps a per-path
#         transfer cache, strata a content-digest cache), with --no-cache; strata uses a fresh
#         store whose only content is the base image;
#   warm: the same build again with nothing changed (every step cached).
#
# Usage: bench/context-100k.sh [STRATA_BINARY]   (default: target/release/strata)
# Needs: docker26 with its registry at 127.0.0.1:5000 holding busybox:latest (the shared peers'
# setup), python3. Files: 1,000 directories x 100 files of 100-400 random bytes.
set -euo pipefail
STRATA=${1:-$(dirname "$0")/../target/release/strata}
STRATA=$(readlink -f "$STRATA")
BASE=${BASE:-127.0.0.1:5000/busybox:latest}
N_DIRS=${N_DIRS:-1000}
N_FILES=${N_FILES:-100}
WORK=$(mktemp -d /tmp/strata-bench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

make_context() {
  local dir=$1
  python3 - "$dir" "$N_DIRS" "$N_FILES" <<'PY'
import os, random, sys
root, nd, nf = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(100000)
for d in range(nd):
    p = os.path.join(root, "data", f"d{d:04}")
    os.makedirs(p)
    for f in range(nf):
        with open(os.path.join(p, f"f{f:03}.txt"), "wb") as fh:
            fh.write(r.randbytes(r.randint(100, 400)))
PY
  printf 'FROM %s\nCOPY . /ctx\n' "$BASE" > "$dir/Dockerfile"
}

secs() { python3 -c 'import sys,time; print(f"{time.time():.3f}")'; }
timed() { local s e; s=$(secs); "$@" > "$WORK/last.log" 2>&1 || { cat "$WORK/last.log"; exit 1; }; e=$(secs); python3 -c "print(f'{$e-$s:.2f}')"; }

echo "generating $((N_DIRS * N_FILES)) files..." >&2
make_context "$WORK/ctx-strata"
make_context "$WORK/ctx-buildkit"

ROOT="$WORK/store"
"$STRATA" --root "$ROOT" pull "$BASE" > /dev/null 2>&1
docker26 pull -q "$BASE" > /dev/null 2>&1 || true

s_cold=$(timed "$STRATA" --root "$ROOT" build --progress plain --no-cache -t bench:1 "$WORK/ctx-strata")
s_warm=$(timed "$STRATA" --root "$ROOT" build --progress plain -t bench:1 "$WORK/ctx-strata")
b_cold=$(timed docker26 buildx build --progress plain --no-cache --load -t 127.0.0.1:5000/bench/ctx100k:1 "$WORK/ctx-buildkit")
b_warm=$(timed docker26 buildx build --progress plain --load -t 127.0.0.1:5000/bench/ctx100k:1 "$WORK/ctx-buildkit")
docker26 rmi -f 127.0.0.1:5000/bench/ctx100k:1 > /dev/null 2>&1 || true

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
printf '%-6s %10s %10s %8s\n' "" strata buildkit ratio
printf '%-6s %9ss %9ss %8s\n' cold "$s_cold" "$b_cold" "$(ratio "$s_cold" "$b_cold")"
printf '%-6s %9ss %9ss %8s\n' warm "$s_warm" "$b_warm" "$(ratio "$s_warm" "$b_warm")"
