"""The ansible-core matrix of tests/run (docs/cores.md) starts where the collection says it does:
tests/cores.txt's first line, meta/runtime.yml's requires_ansible and requirements.txt's lower
bound of ansible-core name the same release line, and every module_utils package's __init__.py
is empty (ansible-core 2.16's empty-init sanity test)."""
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CORES = REPO / "tests" / "cores.txt"
REQUIREMENTS = REPO / "requirements.txt"


def core_lines():
    return [line.split("#")[0].split()[0] for line in CORES.read_text().splitlines() if line.split("#")[0].strip()]


@pytest.mark.skipif(not CORES.exists() or not REQUIREMENTS.exists(), reason="not in a checkout")
def test_the_matrix_starts_at_the_declared_floor():
    lines = core_lines()
    floor = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"]
    match = re.fullmatch(r">=\s*(\d+\.\d+)(\.0)?", floor)
    assert match, "requires_ansible should be a plain lower bound: %r" % floor
    assert lines[0] == match.group(1)
    bound = re.search(r"^ansible-core\s*>=\s*(\d+\.\d+)(\.0)?\s*$", REQUIREMENTS.read_text(), re.M)
    assert bound and bound.group(1) == lines[0]
    numbers = [tuple(int(part) for part in line.split(".")) for line in lines]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_module_utils_packages_have_empty_inits():
    inits = sorted((REPO / "plugins" / "module_utils").rglob("__init__.py"))
    assert inits
    assert [str(p.relative_to(REPO)) for p in inits if p.stat().st_size] == []
