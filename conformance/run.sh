#!/usr/bin/env bash
# Run the conformance suite: Google's official Python clients against a live Runpool server,
# on both of their transports.
# Expects the binary already built (cargo build -p runpool-cli), or RUNPOOL_BIN pointing at one.
# Extra arguments go to pytest, e.g. `conformance/run.sh -k orgpolicy`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$HERE/python/requirements.txt"

# pytest runs from python/: a relative RUNPOOL_BIN means relative to where run.sh was called.
if [ -n "${RUNPOOL_BIN:-}" ]; then
  RUNPOOL_BIN="$(realpath "$RUNPOOL_BIN")"
  export RUNPOOL_BIN
fi
cd "$HERE/python"
# Twice: on the REST transport, then on each client's default transport (gRPC) by Google's
# host names through the server's proxy (conftest.py says how). RUNPOOL_TRANSPORT=rest or
# grpc runs one pass.
for transport in ${RUNPOOL_TRANSPORT:-rest grpc}; do
  echo "conformance: the $transport pass"
  RUNPOOL_TRANSPORT="$transport" "$VENV/bin/python" -m pytest -q "$@"
done
# Once more on REST, each server over PostgreSQL (a database of its own there) rather than
# SQLite, when RUNPOOL_TEST_POSTGRES names a PostgreSQL server (scripts/postgres starts one).
if [ -n "${RUNPOOL_TEST_POSTGRES:-}" ] && [ -z "${RUNPOOL_TRANSPORT:-}" ]; then
  echo "conformance: the rest pass, over PostgreSQL"
  RUNPOOL_TRANSPORT=rest RUNPOOL_CONFORMANCE_POSTGRES="$RUNPOOL_TEST_POSTGRES" \
    "$VENV/bin/python" -m pytest -q "$@"
fi
