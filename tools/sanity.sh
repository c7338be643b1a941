#!/usr/bin/env bash
# ansible-test sanity on the *built* collection, as Galaxy users get it: build the tarball,
# install it into .build/sanity, and run the tests there in ansible-test's own virtualenvs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${KVMFLEET_VENV:-$ROOT/.venv}/bin
out="$ROOT/.build/dist"
rm -rf "$out" "$ROOT/.build/sanity"
mkdir -p "$out"
cd "$ROOT"
"$BIN/ansible-galaxy" collection build --force --output-path "$out" >/dev/null
"$BIN/ansible-galaxy" collection install --force -p "$ROOT/.build/sanity" "$out"/kvmfleet-iaas-*.tar.gz >/dev/null
cd "$ROOT/.build/sanity/ansible_collections/kvmfleet/iaas"
PY=$("$BIN/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PATH="$BIN:$PATH" "$BIN/ansible-test" sanity --venv --python "$PY" "$@"
