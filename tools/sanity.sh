#!/usr/bin/env bash
# ansible-test sanity on the *built* collection, as Galaxy users get it: build the tarball,
# install it into a scratch collection tree, and run the tests there with the ansible-test of
# one ansible-core release.
#   tools/sanity.sh [--venv DIR] [ansible-test sanity options...]
# DIR (default: $KVMFLEET_VENV or .venv) is the venv whose ansible-core is tested, e.g. one of
# the matrix's .build/venvs/core-X.Y (tools/bootstrap.sh test makes them).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${KVMFLEET_VENV:-$ROOT/.venv}
if [ "${1:-}" = --venv ]; then
  VENV=$(cd "$2" && pwd)
  shift 2
fi
BIN=$VENV/bin
core=$("$BIN/python" -c 'import ansible; print(ansible.__version__)')
out="$ROOT/.build/dist/core-$core"
# Outside the checkout: inside it, ansible-test would ask the checkout's git which files count.
work=$(mktemp -d /var/tmp/kvmfleet-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out"
cd "$ROOT"
"$BIN/ansible-galaxy" collection build --force --output-path "$out" >/dev/null
ANSIBLE_COLLECTIONS_PATH="$work" "$BIN/ansible-galaxy" collection install --force -p "$work" "$out"/kvmfleet-iaas-*.tar.gz >/dev/null
cd "$work/ansible_collections/kvmfleet/iaas"
# A virtualenv of its own per release: --requirements installs that release's pinned versions
# of the sanity tools (pylint, pycodestyle, ...) into it, and they differ between releases.
# (ansible-test's --venv would fetch pip from a host outside the package registries.)
SVENV="$ROOT/.build/venvs/sanity-$core"
if [ ! -x "$SVENV/bin/ansible-test" ]; then
  /usr/bin/python3 -m venv "$SVENV"
  "$SVENV/bin/pip" install -qq "ansible-core==$core"
fi
# ansible-test bootstraps pip in each of its virtualenvs with a get-pip script it downloads from
# a host outside the package registries. This stand-in does the same from what is reachable:
# pip from the interpreter's bundled wheel (ensurepip), then the pinned packages from PyPI.
# Each release pins its own pip, so each gets its own cached script.
pipver=$("$SVENV/bin/python" -c 'import re, ansible_test._internal.python_requirements as r, inspect; print(re.search(r"pip=.([0-9.]+).", inspect.getsource(r.get_venv_packages)).group(1))')
getpip="$HOME/.ansible/test/cache/get_pip_${pipver//./_}.py"
if [ ! -f "$getpip" ] || ! grep -q kvmfleet "$getpip"; then
  mkdir -p "$(dirname "$getpip")"
  cat > "$getpip" <<'PYEOF'
# kvmfleet stand-in for get-pip.py: ensurepip, then the requested packages from the configured index.
import subprocess
import sys
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q"] + args)
PYEOF
fi
PY=$("$SVENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
echo "sanity: ansible-core $core, the built collection in $work"
PATH="$SVENV/bin:$PATH" "$SVENV/bin/ansible-test" sanity --local --requirements --python "$PY" "$@"
