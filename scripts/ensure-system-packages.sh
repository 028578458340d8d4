#!/usr/bin/env bash
# System tools the test suite drives for real: PgBouncer (the transaction-pooler tests),
# OpenSSL and the PostgreSQL server binaries (a throwaway TLS cluster), Chromium
# (GraphiQL's browser test), wrk (the benchmark's load generator). Idempotent: it
# installs only what is missing, with one `apt-get update` first.
set -euo pipefail

missing=()
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages (${missing[*]}) and no apt-get to install them" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
# policy-rc.d would be system-wide: instead, stop the packaged pgbouncer service if the
# install started one (the tests start their own on free ports)
"${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
if [[ " ${missing[*]} " == *" pgbouncer "* ]] && command -v service >/dev/null 2>&1; then
  "${sudo[@]}" service pgbouncer stop >/dev/null 2>&1 || true
fi
