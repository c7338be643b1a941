import contextlib
import json
import uuid

import pytest

from ansible.module_utils import basic

from ansible_collections.kvmfleet.iaas.plugins.module_utils import virt
from ansible_collections.kvmfleet.iaas.plugins.modules import vm_info

try:
    import libvirt
except ImportError:
    libvirt = None

try:
    from ansible.module_utils.testing import patch_module_args  # ansible-core >= 2.19
except ImportError:
    @contextlib.contextmanager
    def patch_module_args(args):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved

pytestmark = pytest.mark.skipif(libvirt is None, reason="libvirt-python is not installed")

VM_KEYS = {"name", "uuid", "host", "state", "managed", "group", "metadata", "vcpus", "vcpus_max", "memory_mb",
           "memory_max_mb", "balloon_mb", "disks", "macs", "addresses"}


def run_module(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            vm_info.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def test_driver():
    """test:///default (shared in-process while open) plus kvf-app1 running in group app."""
    conn = libvirt.open("test:///default")
    dom = conn.defineXML(
        "<domain type='test'><name>kvf-app1</name><uuid>%s</uuid>"
        "<metadata><k:instance xmlns:k='%s'><k:group>app</k:group><k:owner>ops</k:owner></k:instance></metadata>"
        "<memory unit='MiB'>1024</memory><vcpu current='1'>4</vcpu><os><type>hvm</type></os>"
        "<devices><interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/>"
        "</interface></devices></domain>" % (uuid.uuid4(), virt.KVMFLEET_METADATA_NS))
    dom.create()
    try:
        yield conn
    finally:
        dom.destroy()
        dom.undefine()
        conn.close()


def test_lists_every_vm_with_its_host(test_driver, capsys):
    result = run_module({"uri": "test:///default"}, capsys)
    assert result["changed"] is False and result["reachable"] is True and result["error"] is None
    host = test_driver.getHostname()
    assert result["host"] == host
    assert [vm["name"] for vm in result["vms"]] == ["kvf-app1", "test"]
    for vm in result["vms"]:
        assert set(vm) == VM_KEYS
        assert vm["host"] == host
    app = result["vms"][0]
    assert (app["state"], app["managed"], app["group"]) == ("running", True, "app")
    assert app["metadata"] == {"group": "app", "owner": "ops"}
    assert (app["vcpus"], app["vcpus_max"], app["memory_mb"]) == (1, 4, 1024)
    assert app["macs"] == ["52:54:00:12:34:56"]
    assert app["addresses"]  # the test driver makes some up for active domains
    assert result["vms"][1]["managed"] is False and result["vms"][1]["metadata"] is None


def test_one_vm_by_name_without_addresses(test_driver, capsys):
    result = run_module({"uri": "test:///default", "name": "kvf-app1", "addresses": False}, capsys)
    assert [vm["name"] for vm in result["vms"]] == ["kvf-app1"]
    assert result["vms"][0]["addresses"] == []


def test_a_missing_name_is_an_empty_list_not_a_failure(test_driver, capsys):
    result = run_module({"uri": "test:///default", "name": "kvf-nothing", "_ansible_check_mode": True}, capsys)
    assert not result.get("failed")
    assert result["reachable"] is True and result["vms"] == []


def test_unreachable_host_says_so(tmp_path, capsys):
    uri = "qemu+unix:///system?socket=%s" % (tmp_path / "gone.sock")
    result = run_module({"uri": uri}, capsys)
    assert not result.get("failed")
    assert result["reachable"] is False and "gone.sock" in result["error"]
    assert result["vms"] == [] and result["host"] is None


def test_unreachable_host_fails_when_asked(tmp_path, capsys):
    uri = "qemu+unix:///system?socket=%s" % (tmp_path / "gone.sock")
    result = run_module({"uri": uri, "fail_on_unreachable": True}, capsys)
    assert result["failed"] is True
    assert "gone.sock" in result["msg"] and result["uri"] == uri
