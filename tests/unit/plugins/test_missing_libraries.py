# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A missing Python library is reported by name by every module and filter that needs it.

Each library is hidden in a subprocess of its own (an import blocker first on sys.meta_path, before
anything of the collection is imported), which then runs every module's main() and calls every
filter. A module that needs the library fails with Ansible's missing_required_lib message for it; a
filter that needs it raises AnsibleFilterError naming it; the others work, or fail for another
reason without claiming the library. The dashboard (outside Ansible) names jinja2.
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.basic import missing_required_lib

from ansible_collections.kvmfleet.iaas.plugins.module_utils import errors as collection_file

REPO = Path(__file__).resolve().parents[3]
# The directory holding ansible_collections/ that this test imports the collection from: the
# checkout's link (.build/collections) or, in an installed copy, the install path.
COLLECTIONS = Path(collection_file.__file__).parents[5]
TEST_URI = "test:///default"
LIBRARIES = {"netaddr": "netaddr", "lxml": "lxml", "libvirt-python": "libvirt", "jinja2": "jinja2"}  # pip -> import
VM_REQUEST = {"name": "web1", "vcpus": 1, "memory_mb": 256, "disk_gb": 1}
HOST_FACTS = {   # one hypervisor's kvmfleet_hypervisor facts, as hypervisor_info returns them
    "reachable": True, "error": None, "hostname": "node1", "virt_types": ["kvm"], "cpus": 4, "memory_mb": 8704,
    "memory_free_mb": 4000, "storage": {"path": "/srv/kvmfleet/images", "total_gb": 100, "free_gb": 100},
    "allocated": {"vcpus": 0, "memory_mb": 0, "disk_gb": 0, "domains": 0},
    "utilization": {"cpu_percent": 10.0, "memory_percent": 20.0, "sample_seconds": 1.0}, "domains": [],
}
FLEET = {"node1": {"kvmfleet_hypervisor": HOST_FACTS, "ansible_host": "192.0.2.1"}}

# module -> (arguments that pass its argument checks, libraries it needs); arguments may name {tmp}
MODULES = {
    "hypervisor_info": ({"uri": TEST_URI, "sample_seconds": 0.1}, {"libvirt-python", "lxml"}),
    "vm_info": ({"uri": TEST_URI}, {"libvirt-python", "lxml"}),
    "vm": ({"uri": TEST_URI, "name": "absent-vm", "state": "absent", "_ansible_check_mode": True},
           {"libvirt-python", "lxml"}),
    "vm_migrate": ({"uri": TEST_URI, "name": "absent-vm", "destination_uri": "test:///default",
                    "_ansible_check_mode": True}, {"libvirt-python", "lxml"}),
    "vm_scale": ({"uri": TEST_URI, "name": "absent-vm", "vcpus": 2, "_ansible_check_mode": True},
                 {"libvirt-python", "lxml"}),
    "storage_pool": ({"uri": TEST_URI, "name": "absent-pool", "path": "{tmp}/pool", "_ansible_check_mode": True},
                     {"libvirt-python", "lxml"}),
    "image": ({"name": "absent.image.qcow2", "state": "absent", "pool_dir": "{tmp}", "_ansible_check_mode": True}, set()),
    "dhcp_host": ({"state": "absent", "mac": "52:54:00:00:00:01", "hosts_dir": "{tmp}", "_ansible_check_mode": True},
                  {"netaddr"}),
    "dhcp_info": ({"hosts_dir": "{tmp}", "leases_file": "{tmp}/leases"}, {"netaddr"}),
}

# (plugin file, filter, positional arguments, keyword arguments, libraries it needs for them)
FILTERS = [
    ("place", "place", [FLEET, VM_REQUEST], {"hosts": ["node1"]}, set()),
    ("vm_prepare", "vm_prepare", [FLEET, VM_REQUEST, ["node1"]], {}, set()),
    ("vm_prepare", "vm_prepare", [FLEET, dict(VM_REQUEST, ip="10.0.0.5"), ["node1"]], {"network": "10.0.0.0/24"},
     {"netaddr"}),
    ("domain_policy", "domain_policy", ["<domain type='kvm'><name>app1</name><memory unit='MiB'>256</memory>"
                                        "<vcpu>1</vcpu><os><type>hvm</type></os></domain>"], {}, {"lxml"}),
    ("rebalance", "rebalance", [FLEET, ["node1"]], {}, set()),
    ("rebalance", "patrol_loads", [FLEET, ["node1"]], {}, set()),
    ("rebalance", "patrol_record", [None, []], {}, set()),
    ("fleet", "migration_uri", ["node1", FLEET], {}, set()),
    ("fleet", "peer_names", ["node1", FLEET], {}, set()),
    ("fleet", "tenant_fleet_status", [FLEET, "acme", ["node1"]], {"tenants": {"acme": {}}}, set()),
    ("fleet", "tenant_image_quota", ["acme", "shop.image.qcow2", 1, "/srv/kvmfleet/images", []],
     {"tenants": {"acme": {}}}, set()),
]

PROBE = r'''
import contextlib, importlib, io, json, sys
hidden, cases = sys.argv[1], json.loads(sys.argv[2])


class HideLibrary:
    """Refuses to find ``hidden`` and its submodules, as on a Python without it."""

    def find_spec(self, name, path=None, target=None):
        if name == hidden or name.startswith(hidden + "."):
            raise ModuleNotFoundError("No module named %r" % name, name=name)


sys.meta_path.insert(0, HideLibrary())
from ansible.errors import AnsibleFilterError
from ansible.module_utils import basic
try:
    from ansible.module_utils.testing import patch_module_args   # ansible-core >= 2.19
except ImportError:
    @contextlib.contextmanager
    def patch_module_args(args):
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        yield

COLLECTION = "ansible_collections.kvmfleet.iaas.plugins."
outcomes = []
for case in cases:
    if case["kind"] == "module":
        module = importlib.import_module(COLLECTION + "modules." + case["name"])
        out = io.StringIO()
        with patch_module_args(case["args"]), contextlib.redirect_stdout(out):
            try:
                module.main()
            except SystemExit:
                pass
        result = json.loads(out.getvalue())
        outcomes.append(dict(failed=bool(result.get("failed")), msg=result.get("msg", "")))
    else:
        function = importlib.import_module(COLLECTION + "filter." + case["file"]).FilterModule().filters()[case["name"]]
        try:
            function(*case["args"], **case["kwargs"])
            outcomes.append(dict(failed=False, msg=""))
        except AnsibleFilterError as err:
            outcomes.append(dict(failed=True, msg=str(err)))
print(json.dumps(outcomes))
'''


def run_hidden(import_name, cases):
    """The outcome of each case in a Python where ``import_name`` cannot be imported."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run([sys.executable, "-c", PROBE, import_name, json.dumps(cases)], cwd=str(REPO),
                          capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """library -> [(kind, plugin, needs the library, outcome)] for every module and filter."""
    tmp = str(tmp_path_factory.mktemp("libs"))
    results = {}
    for library in ("netaddr", "lxml", "libvirt-python"):
        cases, labels = [], []
        for name, (args, needs) in sorted(MODULES.items()):
            args = {key: value.format(tmp=tmp) if isinstance(value, str) else value for key, value in args.items()}
            cases.append(dict(kind="module", name=name, args=args))
            labels.append(("module", name, library in needs))
        for file_name, name, args, kwargs, needs in FILTERS:
            cases.append(dict(kind="filter", file=file_name, name=name, args=args, kwargs=kwargs))
            labels.append(("filter", name, library in needs))
        results[library] = [label + (outcome,) for label, outcome in zip(labels, run_hidden(LIBRARIES[library], cases))]
    return results


def test_every_module_and_filter_is_covered():
    modules = {path.stem for path in (REPO / "plugins" / "modules").glob("*.py")
               if "def main(" in path.read_text()}                # decide.py documents an action only
    assert modules == set(MODULES)
    filters = set()
    for path in (REPO / "plugins" / "filter").glob("*.py"):
        plugin = importlib.import_module("ansible_collections.kvmfleet.iaas.plugins.filter." + path.stem)
        filters |= set(plugin.FilterModule().filters())
    assert filters == {name for _file, name, _args, _kwargs, _needs in FILTERS}


@pytest.mark.parametrize("library", ["netaddr", "lxml", "libvirt-python"])
def test_a_hidden_library_is_named_by_what_needs_it_and_by_nothing_else(outcomes, library):
    for kind, name, needs, outcome in outcomes[library]:
        where = "%s %s without %s: %s" % (kind, name, library, outcome["msg"])
        if needs and kind == "module":
            assert outcome["failed"] and outcome["msg"] == missing_required_lib(library), where
        elif needs:
            assert outcome["failed"] and "(%s)" % library in outcome["msg"], where
        else:
            assert "required Python library" not in outcome["msg"], where
            if kind == "filter":
                assert not outcome["failed"], where


def test_the_filter_cases_work_with_every_library_present():
    """Valid calls: what makes them fail above is the hidden library (jinja2 is Ansible's own need)."""
    cases = [dict(kind="filter", file=f, name=n, args=a, kwargs=k) for f, n, a, k, _needs in FILTERS]
    for (_file, name, _args, _kwargs, _needs), outcome in zip(FILTERS, run_hidden("no-such-library", cases)):
        assert not outcome["failed"], (name, outcome["msg"])


def test_the_dashboard_names_jinja2():
    probe = ("import sys\n"
             "class HideJinja2:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] == 'jinja2':\n"
             "            raise ModuleNotFoundError('No module named %r' % name, name=name)\n"
             "sys.meta_path.insert(0, HideJinja2())\n"
             "sys.argv = ['dashboard', '--help']\n"
             "import runpy\n"
             "runpy.run_module('dashboard', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=str(REPO), capture_output=True, text=True,
                          check=False)
    assert proc.returncode != 0 and "No module named 'jinja2'" in proc.stderr, proc.stderr
