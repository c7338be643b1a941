#!/usr/bin/env bash
# What a published collection needs, checked (docs/release.md):
#   1. antsibull-changelog lint: changelogs/config.yaml, changelog.yaml and every fragment
#   2. CHANGELOG.md is what antsibull-changelog generates from changelogs/changelog.yaml
#   3. antsibull-docs lint-collection-docs --plugin-docs: docs/docsite/links.yml, every plugin's
#      and role's documentation, and their references to this collection and ansible.builtin
#   4. the built tarball: nothing lab-dependent shipped, its own unit tests pass once installed
#      (tests/unit/test_built_collection.py)
# The antsibull tools live in their own venv (tools/publish_venv.sh); the tests use .venv.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${KVMFLEET_VENV:-$ROOT/.venv}/bin/python
[ -x "$PY" ] || PY=python3
PUB=$(tools/publish_venv.sh) || { echo "publish_checks: cannot prepare the publishing venv" >&2; exit 1; }
passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@"; then
    echo "publish_checks: ok: $name"
    passed=$((passed + 1))
  else
    echo "publish_checks: FAILED: $name"
    failed=$((failed + 1))
  fi
}

changelog_is_generated() {
  # In a copy, so that nothing in the checkout changes.
  local work
  work=$(mktemp -d)
  cp -r galaxy.yml changelogs "$work"/
  (cd "$work" && "$PUB/bin/antsibull-changelog" generate --output "$work/CHANGELOG.generated.md" --output-format md) &&
    diff -u CHANGELOG.md "$work/CHANGELOG.generated.md"
  local status=$?
  rm -rf "$work"
  [ $status = 0 ] || echo "CHANGELOG.md is not what antsibull-changelog generates: run it (docs/release.md)"
  return $status
}

docs_lint() {
  # ansible-doc of the publishing venv's ansible-core reads the plugins' documentation.
  local out
  out=$(PATH="$PUB/bin:$PATH" "$PUB/bin/antsibull-docs" lint-collection-docs --plugin-docs --validate-collection-refs dependent . 2>&1)
  local status=$?
  [ -z "$out" ] || echo "$out"
  # The linter exits 3 on findings; any message is a finding.
  [ $status = 0 ] && [ -z "$out" ]
}

check "antsibull-changelog lint" "$PUB/bin/antsibull-changelog" lint
check "CHANGELOG.md generated from changelogs/" changelog_is_generated
check "antsibull-docs lint-collection-docs --plugin-docs" docs_lint
check "installed tarball (tests/unit/test_built_collection.py)" \
  "$PY" -m pytest tests/unit/test_built_collection.py -q -p no:cacheprovider
echo "publish_checks: $passed passed, $failed failed"
[ $failed = 0 ]
