#!/usr/bin/env bash
# Install what the controller, the lab and the tests need: Debian packages from bindep.txt and
# a virtualenv with requirements.txt. Safe to run again: each step checks before it acts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${KVMFLEET_VENV:-$ROOT/.venv}

[ "$(id -u)" = 0 ] || { echo "bootstrap: run as root (it installs Debian packages)" >&2; exit 1; }

# Debian packages: the platform:dpkg lines (the platform:rpm ones are the execution environment's).
wanted=$(sed -e 's/#.*//' "$ROOT/bindep.txt" | awk '/platform:dpkg/ {print $1}' | sort -u)
missing=()
for pkg in $wanted; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The venv is built from Debian's python3, the interpreter a fresh Debian 12 machine has.
stamp="$VENV/.kvmfleet-requirements"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$ROOT/requirements.txt" "$stamp"; then
  echo "bootstrap: preparing the virtualenv $VENV"
  [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -r "$ROOT/requirements.txt"
  cp "$ROOT/requirements.txt" "$stamp"
fi

# The checkout doubles as the installed collection: .build/collections/ansible_collections/kvmfleet/iaas
"$VENV/bin/python" -c "import sys; sys.path.insert(0, '$ROOT/tools'); import devpath; devpath.ensure_collection_path()"
