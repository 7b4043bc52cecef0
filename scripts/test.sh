#!/usr/bin/env bash
# Runs strata's whole test suite: unit, conformance and end-to-end tests, against real peers
# (Debian's docker-registry, skopeo, umoci, oci-image-tool; overlayfs and namespaces).
# Installs the Debian packages the tests need when they are missing. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(docker-registry skopeo umoci oci-image-tool busybox-static apache2-utils tar gzip mmdebstrap gcc libc6-dev uidmap passwd git bzip2 xz-utils qemu-user-static)
# tests/multiplatform.rs downloads busybox-static:arm64 (apt-get download): apt needs the arm64
# architecture and its package lists.
arm64_added=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  arm64_added=1
fi
if [ "$arm64_added" = 1 ] || ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
  apt-get update -qq
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# arm64 RUN steps run through QEMU: the kernel must have qemu-aarch64 registered in binfmt_misc
# with the F flag (interpreter opened at registration, so it works inside the sandbox's chroot).
# qemu-user-static ships the registration; without systemd-binfmt nothing loads it.
binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
if [ ! -e "$binfmt/qemu-aarch64" ]; then
  if [ -f /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
    cat /usr/lib/binfmt.d/qemu-aarch64.conf > "$binfmt/register"
  else
    update-binfmts --enable qemu-aarch64
  fi
fi
echo 1 > "$binfmt/qemu-aarch64"
grep -q '^flags:.*F' "$binfmt/qemu-aarch64" || { echo "test.sh: qemu-aarch64 is registered without the F flag" >&2; exit 1; }
# The rootless end-to-end tests build as this user (useradd -m also gives it a subordinate id
# range in /etc/subuid and /etc/subgid).
id strata-rootless >/dev/null 2>&1 || useradd -m -s /bin/sh strata-rootless
cargo test --workspace --no-fail-fast "$@"
