"""The built collection (ansible-galaxy collection build + install) is usable on its own: its
playbooks resolve by FQCN and the dashboard starts from the installed copy, without the
checkout's tools/ (not shipped)."""
import json
import os
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


def test_the_tarball_ships_no_checkout_tooling(installed):
    root = installed / "ansible_collections" / "kvmfleet" / "iaas"
    assert (root / "plugins" / "modules" / "vm.py").is_file() and (root / "playbooks" / "create_vm.yml").is_file()
    for absent in ("tools", "lab", "bench", ".venv", ".build", "ansible.cfg"):
        assert not (root / absent).exists(), absent


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
