#!/usr/bin/env bash
# Install what the controller, the lab and the tests need: Debian packages from bindep.txt and
# a virtualenv with requirements.txt. Safe to run again: each step checks before it acts.
#   tools/bootstrap.sh          Debian packages, the main .venv, the collection link
#   tools/bootstrap.sh test     and the test matrix's virtualenvs (tests/cores.txt, docs/cores.md):
#                               .build/venvs/core-X.Y per older ansible-core line, .build/venvs/lint
# Root is needed only when a Debian package is missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${KVMFLEET_VENV:-$ROOT/.venv}
what=${1:-main}

# Debian packages: the platform:dpkg lines (the platform:rpm ones are the execution environment's).
wanted=$(sed -e 's/#.*//' "$ROOT/bindep.txt" | awk '/platform:dpkg/ {print $1}' | sort -u)
missing=()
for pkg in $wanted; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "bootstrap: run as root (it installs Debian packages: ${missing[*]})" >&2; exit 1; }
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# make_venv DIR REQUIREMENTS [pip options...]: a virtualenv with REQUIREMENTS installed, made
# again only when REQUIREMENTS or the options (constraint files included) changed since.
# Venvs are built from Debian's python3, the interpreter a fresh Debian 12 machine has.
make_venv() {
  local dir=$1 req=$2
  shift 2
  local stamp="$dir/.kvmfleet-requirements" want
  want=$(cat "$req"; echo "# options: $*"; for arg in "$@"; do [ -f "$arg" ] && cat "$arg"; done; true)
  if [ -x "$dir/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "bootstrap: preparing the virtualenv $dir"
  [ -x "$dir/bin/python" ] || /usr/bin/python3 -m venv "$dir"
  "$dir/bin/pip" install -qq --upgrade pip >/dev/null
  "$dir/bin/pip" install -qq -r "$req" "$@"
  printf '%s\n' "$want" > "$stamp"
}

make_venv "$VENV" "$ROOT/requirements.txt"

# The checkout doubles as the installed collection: .build/collections/ansible_collections/kvmfleet/iaas
"$VENV/bin/python" -c "import sys; sys.path.insert(0, '$ROOT/tools'); import devpath; devpath.ensure_collection_path()"

[ "$what" = test ] || exit 0

# The ansible-core matrix. The newest line is the main .venv's; each older line gets a venv.
mapfile -t lines < <(sed -e 's/#.*//' -e '/^\s*$/d' "$ROOT/tests/cores.txt" | awk '{print $1}')
newest=${lines[-1]}
have=$("$VENV/bin/python" -c 'import ansible; print(ansible.__version__)')
case "$have" in
  "$newest".*) ;;
  *) echo "bootstrap: $VENV has ansible-core $have, but the newest line of tests/cores.txt is $newest" >&2; exit 1 ;;
esac
mkdir -p "$ROOT/.build/venvs"
# The floor leg: every lower bound of requirements.txt as an exact pin, so the oldest line is
# tested with the oldest versions the collection claims to work with.
floor="$ROOT/.build/venvs/floor-constraints.txt"
want=$(sed -n 's/^\([A-Za-z0-9_.-]*\)\s*>=\s*\([0-9][0-9A-Za-z.]*\).*/\1==\2/p' "$ROOT/requirements.txt")
[ "$(cat "$floor" 2>/dev/null)" = "$want" ] || printf '%s\n' "$want" > "$floor"
for line in "${lines[@]:0:${#lines[@]}-1}"; do
  if [ "$line" = "${lines[0]}" ]; then
    make_venv "$ROOT/.build/venvs/core-$line" "$ROOT/requirements.txt" -c "$floor"
  else
    make_venv "$ROOT/.build/venvs/core-$line" "$ROOT/requirements.txt" "ansible-core==$line.*"
  fi
done
make_venv "$ROOT/.build/venvs/lint" "$ROOT/tests/requirements-lint.txt"
# The publishing tools (antsibull-changelog, antsibull-docs) in a venv of their own, for
# tools/publish_checks.sh (docs/release.md).
"$ROOT/tools/publish_venv.sh" >/dev/null
