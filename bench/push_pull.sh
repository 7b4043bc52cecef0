#!/usr/bin/env bash
# Push and pull of a large image (1 GiB by default, 4 layers of incompressible data): strata
# against `skopeo copy` and `docker push`/`docker pull`, in the same run, each push to a fresh
# Debian docker-registry on a free loopback port (so no tool finds blobs already there), each
# pull from the same registry. Wall time and peak RSS come from /usr/bin/time -v (for docker
# that is the CLI's; the work happens in the daemon, whose memory is not measured here).
#
#   sudo bench/push_pull.sh [SIZE_MIB]
#
# Environment: STRATA (default target/release/strata), DOCKER (default docker26; the docker
# rows are skipped if it is missing). Needs docker-registry, skopeo, /usr/bin/time, root.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
STRATA=$(realpath "${STRATA:-target/release/strata}")
DOCKER=${DOCKER:-docker26}
command -v "$DOCKER" >/dev/null 2>&1 || DOCKER=
work=$(mktemp -d /var/tmp/strata-bench.XXXXXX)
reg_pid=
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG"

start_registry() {
  [ -n "$reg_pid" ] && { kill "$reg_pid"; wait "$reg_pid" 2>/dev/null || true; }
  rm -rf "$work/registry"
  mkdir -p "$work/registry"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$work/registry/config.yml" <<EOF
version: 0.1
log: {level: error}
storage:
  filesystem: {rootdirectory: $work/registry/data}
http: {addr: "127.0.0.1:$port"}
EOF
  docker-registry serve "$work/registry/config.yml" > "$work/registry/log" 2>&1 &
  reg_pid=$!
  REG=127.0.0.1:$port
  for _ in $(seq 100); do curl -fs "http://$REG/v2/" >/dev/null && return; sleep 0.1; done
  echo "registry did not start" >&2; cat "$work/registry/log" >&2; exit 1
}

results=()
# measure LABEL CMD...: runs CMD under /usr/bin/time -v, records wall seconds and peak RSS.
measure() {
  local label=$1; shift
  sync
  /usr/bin/time -v -o "$work/time.txt" "$@" > "$work/out.txt" 2>&1 || { cat "$work/out.txt" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt" \
    | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$work/time.txt")
  results+=("| $label | $wall s | $rss MiB |")
  echo "$label: ${wall}s, peak RSS ${rss} MiB" >&2
}

echo "== making a ${SIZE_MIB} MiB image (4 layers of random data)" >&2
mkdir -p "$work/ctx"
for f in a b c d; do head -c "$((SIZE_MIB / 4))M" /dev/urandom > "$work/ctx/$f"; done
printf 'FROM scratch\nCOPY a /a\nCOPY b /b\nCOPY c /c\nCOPY d /d\n' > "$work/ctx/Dockerfile"
store="$work/store"
"$STRATA" --root "$store" build -q -t localhost/bench/big:1 "$work/ctx" >/dev/null
if [ -n "$DOCKER" ]; then
  "$STRATA" --root "$store" build -q -t localhost/bench/big:1 -o "type=docker,dest=$work/big.tar" "$work/ctx" >/dev/null
  "$DOCKER" load -q -i "$work/big.tar" >/dev/null
fi
rm -rf "$work/ctx"

echo "== push" >&2
start_registry
measure "strata push" "$STRATA" --root "$store" push localhost/bench/big:1 "$REG/bench/big:1"
start_registry
measure "skopeo copy (OCI layout → registry)" skopeo copy -q --dest-tls-verify=false \
  "oci:$store:localhost/bench/big:1" "docker://$REG/bench/big:1"
if [ -n "$DOCKER" ]; then
  start_registry
  "$DOCKER" tag localhost/bench/big:1 "$REG/bench/big:1"
  measure "docker push" "$DOCKER" push -q "$REG/bench/big:1"
  "$DOCKER" rmi -f "$REG/bench/big:1" >/dev/null
fi

echo "== pull" >&2
start_registry
"$STRATA" --root "$store" push localhost/bench/big:1 "$REG/bench/big:1" >/dev/null 2>&1
cat "$work"/registry/data/docker/registry/v2/blobs/sha256/*/*/data > /dev/null   # warm the page cache
measure "strata pull (download, verify, unpack)" "$STRATA" --root "$work/pull-store" pull -q "$REG/bench/big:1"
measure "skopeo copy (registry → OCI layout, no unpack)" skopeo copy -q --src-tls-verify=false \
  "docker://$REG/bench/big:1" "oci:$work/skopeo-pull:big"
if [ -n "$DOCKER" ]; then
  "$DOCKER" rmi -f localhost/bench/big:1 >/dev/null 2>&1 || true
  measure "docker pull (download, unpack)" "$DOCKER" pull -q "$REG/bench/big:1"
  "$DOCKER" rmi -f "$REG/bench/big:1" >/dev/null 2>&1 || true
fi

echo
echo "${SIZE_MIB} MiB image, 4 layers, loopback registry, $(nproc) CPUs:"
echo
echo "| | wall time | peak RSS |"
echo "|---|---|---|"
printf '%s\n' "${results[@]}"
