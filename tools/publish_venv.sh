#!/usr/bin/env bash
# The virtualenv of the publishing tools (antsibull-changelog, antsibull-docs) from
# requirements-publish.txt, apart from .venv: the controller and the tests do not need them.
# Safe to run again: it only acts when the venv is missing or the requirements changed.
# Prints the venv's path.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${KVMFLEET_PUBLISH_VENV:-$ROOT/.build/publish-venv}
stamp="$VENV/.kvmfleet-requirements"
if [ ! -x "$VENV/bin/antsibull-changelog" ] || ! cmp -s "$ROOT/requirements-publish.txt" "$stamp"; then
  echo "publish_venv: preparing $VENV" >&2
  [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
  log="$VENV.pip.log"
  { "$VENV/bin/pip" install -q --upgrade pip && "$VENV/bin/pip" install -q -r "$ROOT/requirements-publish.txt"; } \
    >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  cp "$ROOT/requirements-publish.txt" "$stamp"
fi
echo "$VENV"
