#!/usr/bin/env bash
# strata vs BuildKit on the public comparison cases, in one run, with the peers' harness:
#   bench/compare.sh [compare.py options, e.g. --only basic,parallel]
# Needs the development environment's peers (../shared/peers: a registry on 127.0.0.1:5000,
# dockerd 26 with BuildKit 0.13); setup.sh is run first (idempotent). Builds strata in release
# mode, pre-pulls the base images into strata's store (BuildKit has them already, and
# compare.py's "cold" means "--no-cache with bases present"), runs compare.py with a fresh
# store, and prints a markdown table of times and strata/BuildKit ratios (bench/table.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
[ -f "$PEERS/compare.py" ] || { echo "bench: $PEERS/compare.py not found (set PEERS)" >&2; exit 1; }
bash "$PEERS/setup.sh" >&2
cargo build --release --quiet
export PATH="$PWD/target/release:$PATH"
export STRATA_ROOT=${STRATA_ROOT:-/var/lib/strata}
rm -rf "$STRATA_ROOT"
for base in 127.0.0.1:5000/busybox:latest 127.0.0.1:5000/debian:bookworm; do
  strata pull -q "$base" >/dev/null
  docker26 pull -q "$base" >/dev/null
done
out=${BENCH_JSON:-bench/last.json}
python3 "$PEERS/compare.py" "$PEERS/cases" --builders buildkit,candidate --json "$out" "$@" >&2
python3 bench/table.py "$out" "$(docker26 buildx version 2>/dev/null | awk '{print $2}')"
