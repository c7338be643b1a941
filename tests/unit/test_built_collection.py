"""The built collection (ansible-galaxy collection build + install) is usable on its own: its
playbooks resolve by FQCN, the dashboard starts from the installed copy, without the checkout's
tools/ (not shipped), nothing that needs the lab or the checkout is shipped (galaxy.yml's
build_ignore), and the unit tests it ships pass from the installed copy."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def clean_env(**settings):
    """os.environ without any ANSIBLE_* of the checkout's set-up, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="1", **settings)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("galaxy")
    (tmp / "ansible.cfg").write_text("[defaults]\n")       # not the checkout's (its collections path)
    # Nothing of the checkout's set-up may leak in (another test's ANSIBLE_* settings, or the
    # checkout linked as an installed collection, which makes galaxy skip the install).
    env = clean_env(ANSIBLE_CONFIG=str(tmp / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(tmp / "collections"))
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(tmp)],
                   check=True, capture_output=True, env=env)
    tarball = next(tmp.glob("kvmfleet-iaas-*.tar.gz"))
    target = tmp / "collections"
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--force", str(tarball), "-p", str(target)],
                   check=True, capture_output=True, env=env)
    return target


# What needs the lab, the benches or the checkout: kept out by galaxy.yml's build_ignore.
NOT_SHIPPED = ("tools", "lab", "bench", ".venv", ".build", "ansible.cfg", "conftest.py", "pytest.ini",
               "tests/integration", "tests/run", "extensions", "tests/unit/test_guest_build.py",
               "tests/unit/test_bench_migration_stats.py", "tests/unit/roles/test_pngpixels.py",
               "tests/unit/test_built_collection.py", "requirements-publish.txt")
# A shipped test must not reach for what is not shipped.
CHECKOUT_ONLY = re.compile(r"^\s*(from|import) (lab|bench|devpath|kvmlab|pngpixels)\b|pytest\.mark\.lab\b", re.M)


def test_the_tarball_ships_no_checkout_tooling(installed):
    root = installed / "ansible_collections" / "kvmfleet" / "iaas"
    assert (root / "plugins" / "modules" / "vm.py").is_file() and (root / "playbooks" / "create_vm.yml").is_file()
    for absent in NOT_SHIPPED:
        assert not (root / absent).exists(), absent
    for required in ("LICENSE", "CHANGELOG.md", "changelogs/changelog.yaml", "meta/runtime.yml", "tests/unit"):
        assert (root / required).exists(), required


def test_no_shipped_test_needs_the_lab_or_the_checkout(installed):
    root = installed / "ansible_collections" / "kvmfleet" / "iaas"
    tests = sorted((root / "tests").rglob("*.py"))
    assert tests
    offending = [str(path.relative_to(root)) for path in tests if CHECKOUT_ONLY.search(path.read_text())]
    assert offending == []


def test_the_shipped_unit_tests_pass_from_the_installed_copy(installed):
    """As a user of the tarball runs them: in the installed collection, importing it from there."""
    root = installed / "ansible_collections" / "kvmfleet" / "iaas"
    env = clean_env(ANSIBLE_CONFIG=str(installed.parent / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(installed),
                    PYTHONPATH=str(installed), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/unit", "-q", "-p", "no:cacheprovider"], cwd=root,
                          capture_output=True, text=True, env=env, timeout=900, check=False)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"\b[1-9][0-9]* passed", summary) and "failed" not in summary and "error" not in summary, summary


def test_a_playbook_resolves_by_fqcn_from_the_installed_collection(installed):
    env = clean_env(ANSIBLE_CONFIG=str(installed.parent / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(installed))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
                           "kvmfleet.iaas.create_vm"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_dashboard_runs_from_the_installed_collection(installed):
    root = installed / "ansible_collections" / "kvmfleet" / "iaas"
    probe = ("import json, dashboard.devpath_import as d, dashboard.fleet as f\n"
             "from ansible_collections.kvmfleet.iaas.plugins.module_utils import placement\n"
             "print(json.dumps(dict(installed=d.INSTALLED, collections=str(d.COLLECTIONS),\n"
             "                      placement=placement.__file__, env=f.ansible_env({}))))\n")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, env=env,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["installed"] is True and seen["collections"] == str(installed)
    assert seen["placement"].startswith(str(root)), seen      # the installed copy, not the checkout
    assert seen["env"]["ANSIBLE_COLLECTIONS_PATH"] == str(installed) and "ANSIBLE_CONFIG" not in seen["env"]
    usage = subprocess.run([sys.executable, "-m", "dashboard", "--help"], cwd=root, capture_output=True,
                           text=True, env=env, check=False)
    assert usage.returncode == 0 and "--admin-password-file" in usage.stdout, usage.stderr
