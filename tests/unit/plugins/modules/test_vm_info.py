
import pytest


from ansible_collections.kvmfleet.iaas.plugins.modules import vm_info

try:
    import libvirt
except ImportError:
    libvirt = None

pytestmark = pytest.mark.skipif(libvirt is None, reason="libvirt-python is not installed")

VM_KEYS = {"name", "uuid", "host", "state", "managed", "group", "tenant", "metadata", "vcpus", "vcpus_max", "memory_mb",
           "memory_max_mb", "balloon_mb", "disks", "macs", "addresses", "guest"}


@pytest.fixture
def test_driver(conn, define_domain):
    """test:///default (shared in-process while open) plus kvf-app1 running in group app."""
    define_domain("kvf-app1", vcpus=4, vcpus_current=1, memory_mib=1024, metadata=[("group", "app"), ("owner", "ops")],
                  mac="52:54:00:12:34:56")
    return conn


def test_lists_every_vm_with_its_host(test_driver, run_module):
    result = run_module(vm_info, {"uri": "test:///default"})
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


def test_one_vm_by_name_without_addresses(test_driver, run_module):
    result = run_module(vm_info, {"uri": "test:///default", "name": "kvf-app1", "addresses": False})
    assert [vm["name"] for vm in result["vms"]] == ["kvf-app1"]
    assert result["vms"][0]["addresses"] == []


def test_a_missing_name_is_an_empty_list_not_a_failure(test_driver, run_module):
    result = run_module(vm_info, {"uri": "test:///default", "name": "kvf-nothing", "_ansible_check_mode": True})
    assert not result.get("failed")
    assert result["reachable"] is True and result["vms"] == []


def test_unreachable_host_says_so(tmp_path, run_module):
    uri = "qemu+unix:///system?socket=%s" % (tmp_path / "gone.sock")
    result = run_module(vm_info, {"uri": uri})
    assert not result.get("failed")
    assert result["reachable"] is False and "gone.sock" in result["error"]
    assert result["vms"] == [] and result["host"] is None


def test_unreachable_host_fails_when_asked(tmp_path, run_module):
    uri = "qemu+unix:///system?socket=%s" % (tmp_path / "gone.sock")
    result = run_module(vm_info, {"uri": uri, "fail_on_unreachable": True})
    assert result["failed"] is True
    assert "gone.sock" in result["msg"] and result["uri"] == uri
