#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, once: each is checked by a command it
# provides and installed only when missing (one `apt-get update` first). Idempotent; run
# by `make test`. Not root and something is missing: prints the apt command and fails.
set -euo pipefail

# command-it-provides:debian-package
REQUIRED=(
  /usr/bin/chromium:chromium   # GraphiQL's browser test (tests/peer/test_graphiql_browser.py)
)

missing=()
for entry in "${REQUIRED[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing system packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "not root: run  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
