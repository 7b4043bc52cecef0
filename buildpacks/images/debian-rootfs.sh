#!/usr/bin/env bash
# Makes the root filesystem of strata's default buildpack images from Debian packages, as a tar
# archive for `strata import`, and prints the archive's path.
#
#   buildpacks/images/debian-rootfs.sh run|build [CACHE_DIR]
#
# - run:   Debian bookworm (minbase) + the language runtimes apps need at launch
#          (python3, nodejs, ca-certificates).
# - build: the run packages + the toolchains buildpacks use at build time (python3-venv/pip,
#          npm, golang-go, Rust from cargo-web/rustc-web, gcc, libc6-dev, busybox-static).
#
# Both come from the Debian archive through mmdebstrap (Debian package `mmdebstrap`); no
# container registry is involved. The images trust the host's CA bundle
# (/etc/ssl/certs/ca-certificates.crt is copied in), so builds behind a TLS-intercepting proxy
# the host trusts can still reach PyPI, npm and crates.io.
#
# Archives are cached in CACHE_DIR (default: $STRATA_IMAGE_CACHE, else /var/tmp/strata-images)
# under a name keyed by the sha256 of this script, the package list and the host CA bundle:
# any change to one of them makes a new archive, an unchanged setup reuses the old one.
set -euo pipefail
kind="${1:?usage: debian-rootfs.sh run|build [CACHE_DIR]}"
cache="${2:-${STRATA_IMAGE_CACHE:-/var/tmp/strata-images}}"
suite=bookworm
run_packages="ca-certificates,python3,nodejs"
build_packages="$run_packages,python3-venv,python3-pip,npm,golang-go,cargo-web,rustc-web,gcc,libc6-dev,busybox-static"
case "$kind" in
  run) packages="$run_packages" ;;
  build) packages="$build_packages" ;;
  *) echo "debian-rootfs.sh: unknown kind $kind (run or build)" >&2; exit 2 ;;
esac
ca=/etc/ssl/certs/ca-certificates.crt
key=$( { cat "$0"; echo "$kind $suite $packages"; cat "$ca" 2>/dev/null || true; } | sha256sum | cut -c1-16)
out="$cache/debian-$suite-$kind-$key.tar"
if [ -f "$out" ] && [ -s "$out" ]; then
  echo "$out"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "debian-rootfs.sh: mmdebstrap is not installed: apt-get install mmdebstrap" >&2; exit 1; }
mkdir -p "$cache"
# Concurrent test processes may ask at once: one builds, the others wait for it.
exec 9>"$cache/.lock-$kind"
flock 9
if [ -f "$out" ] && [ -s "$out" ]; then
  echo "$out"
  exit 0
fi
# mmdebstrap picks the output format from the name: keep the .tar suffix.
tmp="$cache/.tmp-$$-${out##*/}"
trap 'rm -f "$tmp"' EXIT
hooks=()
if [ -f "$ca" ]; then
  hooks+=(--customize-hook="cp $ca \"\$1/etc/ssl/certs/ca-certificates.crt\"")
fi
# Documentation, manual pages and translations are left out (a smaller image to import).
mmdebstrap --quiet --mode=root --variant=minbase --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  "${hooks[@]}" "$suite" "$tmp" >&2
mv "$tmp" "$out"
trap - EXIT
echo "$out"
