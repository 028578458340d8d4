#!/bin/sh
# The container's start logic, kept out of the Dockerfile so that the tests run it as is
# (tests/test_deployment.py):
#   (no arguments)    taskchat serve: migrations once (under a lock), then WORKERS processes
#   healthcheck       exit 0 when /health answers 200 on this machine (Docker HEALTHCHECK)
#   a taskchat command (serve, migrate, token, schema, …) with its arguments
#   anything else     run as given (e.g. `sh` for a shell in the image)
# In a container the server must listen on every interface: HOST defaults to 0.0.0.0.
set -eu

: "${HOST:=0.0.0.0}"
: "${PORT:=8000}"
export HOST PORT

if [ "$#" -eq 0 ]; then
  set -- serve
fi

case "$1" in
  healthcheck)
    exec python -c '
import os, sys, urllib.request
url = "http://127.0.0.1:%s/health" % os.environ["PORT"]
try:
    with urllib.request.urlopen(url, timeout=3) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as error:
    print("unhealthy: %s" % error, file=sys.stderr)
    sys.exit(1)
'
    ;;
  -*)
    exec taskchat "$@"
    ;;
esac

if command -v -- "$1" >/dev/null 2>&1; then
  exec "$@"
fi
exec taskchat "$@"
