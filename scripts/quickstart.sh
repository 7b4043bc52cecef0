#!/usr/bin/env bash
# strata's quick start, on a fresh Debian machine with no access to Docker Hub:
#   1. installs busybox-static (Debian) if missing and builds strata (cargo build --release);
#   2. makes a base image `busybox:latest` from the static busybox binary (`strata import`);
#   3. builds testdata/demo (two stages, RUN and COPY) into the store;
#   4. runs the result in strata's sandbox and shows its config.
# Needs root (namespaces and overlay mounts). The store goes to $STRATA_ROOT (default: the
# repository's .strata-demo/), so the demo leaves the rest of the system alone.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "quickstart: run as root (strata needs namespaces and overlay mounts)" >&2; exit 1; fi
if [ ! -x /bin/busybox ]; then
  echo "quickstart: installing busybox-static" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
cargo build --release --quiet
strata=target/release/strata
export STRATA_ROOT="${STRATA_ROOT:-$PWD/.strata-demo}"

# A minimal root filesystem: the static busybox, its applets, and users root/nobody.
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs"/{bin,etc,tmp,root,usr/bin,usr/sbin,sbin}
cp /bin/busybox "$rootfs/bin/busybox"
chroot "$rootfs" /bin/busybox --install -s
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"

echo "== strata import (base image busybox:latest)"
$strata import "$rootfs" -t busybox:latest
echo "== strata build testdata/demo"
$strata build --progress=plain -t demo:latest testdata/demo
echo "== strata images"
$strata images
echo "== strata run demo:latest"
$strata run demo:latest
echo "== its config"
$strata inspect demo:latest | python3 -c 'import json,sys; c=json.load(sys.stdin)["Config"]["config"]; print(json.dumps(c, indent=1))' 2>/dev/null \
  || $strata inspect demo:latest
