import json

import pytest
from ansible.module_utils import basic


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


# ---------------------------------------------------------------- tenant= (docs/tenancy.md)

TENANT_VM_KEYS = {"name", "uuid", "state", "tenant", "group", "vcpus", "vcpus_max", "memory_mb", "memory_max_mb",
                  "balloon_mb", "disks", "disk_gb", "macs", "addresses", "guest"}


@pytest.fixture
def two_tenants(conn, define_domain, tmp_path):
    """acme's a-web1 (running, a disk), initech's i-web1, the operator's ops1, beside the driver's "test"."""
    disk = tmp_path / "a-web1.qcow2"
    disk.write_bytes(b"")
    define_domain("a-web1", vcpus=2, memory_mib=1024, disk=str(disk), mac="52:54:00:00:00:a1",
                  metadata=[("managed-by", "kvmfleet.iaas"), ("group", "web"), ("tenant", "acme"), ("note", "ops-only")])
    define_domain("a-db1", start=False, metadata=[("managed-by", "kvmfleet.iaas"), ("tenant", "acme")])
    define_domain("i-web1", metadata=[("managed-by", "kvmfleet.iaas"), ("tenant", "initech")])
    define_domain("ops1", metadata=[("managed-by", "kvmfleet.iaas")])
    return conn, disk


def test_a_tenant_sees_only_its_own_vms_in_its_view(two_tenants, run_module):
    conn, disk = two_tenants
    result = run_module(vm_info, {"uri": "test:///default", "tenant": "acme"})
    assert not result.get("failed") and result["reachable"] is True
    assert [vm["name"] for vm in result["vms"]] == ["a-db1", "a-web1"]
    assert all(set(vm) == TENANT_VM_KEYS for vm in result["vms"])
    web = result["vms"][1]
    assert (web["tenant"], web["group"], web["state"], web["vcpus"], web["memory_mb"]) == ("acme", "web", "running", 2, 1024)
    assert web["disks"] == [{"target": "vda", "capacity_gb": web["disks"][0]["capacity_gb"]}]
    assert web["macs"] == ["52:54:00:00:00:a1"] and web["addresses"]
    assert set(web["guest"]) == {"agent", "hostname"}
    # nothing of the host: not its name, not the disk's path, not the operator's annotations
    text = json.dumps(dict(result, invocation=None))
    for secret in ('"%s"' % conn.getHostname(), str(disk), str(disk.parent), "ops-only", "managed-by"):
        assert secret not in text, secret
    assert result["host"] is None and result["skipped_domains"] == []


@pytest.mark.parametrize("name", ["i-web1", "ops1", "test", "nothing"])
def test_another_tenants_or_the_operators_vm_is_absent_like_a_missing_one(two_tenants, run_module, name):
    result = run_module(vm_info, {"uri": "test:///default", "tenant": "acme", "name": name})
    missing = run_module(vm_info, {"uri": "test:///default", "tenant": "acme", "name": "nothing"})
    assert not result.get("failed")
    assert dict(result, invocation=None) == dict(missing, invocation=None) and result["vms"] == []


def test_a_tenant_asking_for_its_own_vm_by_name_gets_it(two_tenants, run_module):
    result = run_module(vm_info, {"uri": "test:///default", "tenant": "initech", "name": "i-web1", "addresses": False})
    assert [(vm["name"], vm["tenant"], vm["addresses"]) for vm in result["vms"]] == [("i-web1", "initech", [])]


def test_without_tenant_the_operator_sees_every_vm_with_its_owner(two_tenants, run_module):
    result = run_module(vm_info, {"uri": "test:///default"})
    owners = {vm["name"]: vm["tenant"] for vm in result["vms"]}
    assert owners == {"a-db1": "acme", "a-web1": "acme", "i-web1": "initech", "ops1": None, "test": None}
    assert all(set(vm) == VM_KEYS for vm in result["vms"])
    assert result["host"] == two_tenants[0].getHostname()


def test_a_tenant_is_not_told_libvirts_error(tmp_path, run_module):
    uri = "qemu+unix:///system?socket=%s" % (tmp_path / "gone.sock")
    result = run_module(vm_info, {"uri": uri, "tenant": "acme"})
    assert result["reachable"] is False and result["vms"] == [] and result["host"] is None
    assert result["error"] == "the hypervisor could not be read; ask the operator"
    failed = run_module(vm_info, {"uri": uri, "tenant": "acme", "fail_on_unreachable": True})
    assert failed["failed"] is True and failed["msg"] == "the hypervisor could not be read; ask the operator"
    assert "gone.sock" not in json.dumps(dict(failed, invocation=None))


def test_a_tenant_is_not_told_which_domains_could_not_be_read(two_tenants, run_module, monkeypatch):
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt import domains
    real = domains.DomainCalls.list_domains

    def with_a_stuck_one(self, *args, **kwargs):
        listing = real(self, *args, **kwargs)
        listing["skipped"].append({"name": "i-stuck", "error": "i-stuck: XMLDesc did not answer within 10 s"})
        return listing
    monkeypatch.setattr(domains.DomainCalls, "list_domains", with_a_stuck_one)
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda module, text, **kw: warned.append(text))
    result = run_module(vm_info, {"uri": "test:///default", "tenant": "acme"})
    assert result["skipped_domains"] == [] and "i-stuck" not in json.dumps(result)
    assert warned == ["some VMs of this hypervisor could not be read; the list may be incomplete"]
    operator = run_module(vm_info, {"uri": "test:///default"})
    assert [entry["name"] for entry in operator["skipped_domains"]] == ["i-stuck"]
    assert "i-stuck" in warned[1]


@pytest.mark.parametrize("tenant", ["Acme", "ac_me", ""])
def test_a_tenant_that_is_not_a_label_is_refused(test_driver, run_module, tenant):
    result = run_module(vm_info, {"uri": "test:///default", "tenant": tenant})
    assert result["failed"] is True and result["msg"].startswith("tenant=%r: " % tenant)
