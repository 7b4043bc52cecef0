#!/usr/bin/env bash
# Runs strata's whole test suite: unit, conformance and end-to-end tests, against real peers
# (Debian's docker-registry, skopeo, umoci, oci-image-tool; overlayfs and namespaces).
# Installs the Debian packages the tests need when they are missing. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(docker-registry skopeo umoci oci-image-tool busybox-static apache2-utils tar gzip mmdebstrap gcc libc6-dev uidmap passwd git bzip2 xz-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The rootless end-to-end tests build as this user (useradd -m also gives it a subordinate id
# range in /etc/subuid and /etc/subgid).
id strata-rootless >/dev/null 2>&1 || useradd -m -s /bin/sh strata-rootless
cargo test --workspace --no-fail-fast "$@"
