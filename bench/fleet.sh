#!/usr/bin/env bash
# A CI fleet's rebuild: one runner builds and exports its cache to the registry; another runner
# with nothing local (empty store, no base image) rebuilds from that cache. strata with
# `--cache-to/--cache-from type=registry` against BuildKit 0.13 (`docker26 buildx build`, docker
# driver, whose only cache export is inline: `BUILDKIT_INLINE_CACHE=1` + `--cache-from IMAGE`),
# in the same run, on the same registry. Scenarios: the same commit again ("unchanged") and a
# commit that edits the copied source ("edit": the steps after the COPY run).
#
#   bench/fleet.sh [STRATA_BINARY]    (default: target/release/strata)
#
# Needs the development environment's peers (docker26, a registry on 127.0.0.1:5000 holding
# debian:bookworm), network access for apt-get inside the RUN step, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
STRATA=$(readlink -f "${1:-target/release/strata}")
REG=${REG:-127.0.0.1:5000}
BASE=$REG/debian:bookworm
DOCKER=${DOCKER:-docker26}
work=$(mktemp -d /var/tmp/strata-fleet.XXXXXX)
trap 'rm -rf "$work"' EXIT
run_id=$(date +%s)

mkdir -p "$work/ctx"
cat > "$work/ctx/Dockerfile" <<DOCKERFILE
FROM $BASE
RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY app.py ./
RUN python3 -c "import hashlib; h=b'x'; [h:=hashlib.sha256(h).digest() for _ in range(2000000)]; open('/app/h','w').write(h.hex())"
CMD ["python3", "app.py"]
DOCKERFILE
echo "print('fleet $run_id')" > "$work/ctx/app.py"

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
results=()
record() { results+=("| $1 | $2 s | $3 s | **$(python3 -c "print(f'{$2 / $3:.2f}')")×** |"); }

# A runner with nothing local: strata gets a fresh store; dockerd loses the images and build cache.
fresh_docker() {
  "$DOCKER" rmi -f "$REG/fleet/bk:$run_id" "fleet-bk:2" "$BASE" >/dev/null 2>&1 || true
  "$DOCKER" builder prune -af >/dev/null
}

echo "== runner A: build, push image and cache" >&2
"$STRATA" --root "$work/store-a" build -q --push -t "$REG/fleet/strata:$run_id" \
  --cache-to "type=registry,ref=$REG/fleet/strata:cache-$run_id,mode=max" "$work/ctx" >/dev/null
fresh_docker
"$DOCKER" buildx build -q --load --build-arg BUILDKIT_INLINE_CACHE=1 -t "$REG/fleet/bk:$run_id" "$work/ctx" >/dev/null
"$DOCKER" push -q "$REG/fleet/bk:$run_id" >/dev/null

for scenario in unchanged edit; do
  if [ "$scenario" = edit ]; then echo "print('fleet $run_id edited')" > "$work/ctx/app.py"; fi
  echo "== runner B ($scenario): empty store, cache from the registry" >&2
  rm -rf "$work/store-b"
  t0=$(now)
  "$STRATA" --root "$work/store-b" build -q -t fleet:2 \
    --cache-from "type=registry,ref=$REG/fleet/strata:cache-$run_id" "$work/ctx" >/dev/null
  t1=$(now)
  fresh_docker
  t2=$(now)
  "$DOCKER" buildx build -q --load -t fleet-bk:2 --cache-from "$REG/fleet/bk:$run_id" "$work/ctx" >/dev/null
  t3=$(now)
  record "$scenario" "$(secs "$t0" "$t1")" "$(secs "$t2" "$t3")"
done
"$DOCKER" pull -q "$BASE" >/dev/null   # leave dockerd as the other benchmarks expect it

echo
echo "Fleet rebuild on an empty runner from a registry cache, $(nproc) CPUs, $(date -u +%F),"
echo "BuildKit $("$DOCKER" buildx version 2>/dev/null | awk '{print $2}'):"
echo
echo "| scenario | strata | BuildKit | strata / BuildKit |"
echo "|---|---|---|---|"
printf '%s\n' "${results[@]}"
