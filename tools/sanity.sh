#!/usr/bin/env bash
# ansible-test sanity on the *built* collection, as Galaxy users get it: build the tarball,
# install it into .build/sanity, and run the tests there in ansible-test's own virtualenvs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${KVMFLEET_VENV:-$ROOT/.venv}/bin
out="$ROOT/.build/dist"
# Outside the checkout: inside it, ansible-test would ask the checkout's git which files count.
work=$(mktemp -d /var/tmp/kvmfleet-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
mkdir -p "$out"
cd "$ROOT"
"$BIN/ansible-galaxy" collection build --force --output-path "$out" >/dev/null
ANSIBLE_COLLECTIONS_PATH="$work" "$BIN/ansible-galaxy" collection install --force -p "$work" "$out"/kvmfleet-iaas-*.tar.gz >/dev/null
cd "$work/ansible_collections/kvmfleet/iaas"
# A virtualenv of its own: --requirements installs the sanity tools' pinned versions into it.
# (ansible-test's --venv would fetch pip from a host outside the package registries.)
SVENV="$ROOT/.build/sanity-venv"
core=$("$BIN/python" -c 'import ansible; print(ansible.__version__)')
if [ ! -x "$SVENV/bin/ansible-test" ] || [ "$("$SVENV/bin/python" -c 'import ansible; print(ansible.__version__)')" != "$core" ]; then
  /usr/bin/python3 -m venv "$SVENV"
  "$SVENV/bin/pip" install -q "ansible-core==$core"
fi
# ansible-test bootstraps pip in each of its virtualenvs with a get-pip script it downloads from
# a host outside the package registries. This stand-in does the same from what is reachable:
# pip from the interpreter's bundled wheel (ensurepip), then the pinned packages from PyPI.
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
PATH="$SVENV/bin:$PATH" "$SVENV/bin/ansible-test" sanity --local --requirements --python "$PY" "$@"
