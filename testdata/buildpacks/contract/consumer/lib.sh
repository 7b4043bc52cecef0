# Shared helpers of the contract buildpacks (sourced from $CNB_BUILDPACK_DIR/../../).
check() {
  # check 'SHELL TEST' 'what it shows'
  if eval "$1"; then
    echo "contract: ok: $2"
  else
    echo "contract: FAILED: $2 [$1]" >&2
    exit 1
  fi
}
value() {
  # value FILE KEY: a `KEY = "v"` or `KEY = n` line's value
  sed -n "s/^$2 = \"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$1" 2>/dev/null | head -n 1
}
