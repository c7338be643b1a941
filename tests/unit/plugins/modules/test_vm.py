"""The vm module against libvirt's test driver (test:///default): real libvirt calls, no daemon."""
import json

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import VirtError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.connection import VirtConnection
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import parse_domain_xml
from ansible_collections.kvmfleet.iaas.plugins.modules import vm

libvirt = pytest.importorskip("libvirt")

URI = "test:///default"
BASE = dict(name="web1", vcpus=2, memory_mb=512, disk_gb=3, pool="default-pool", uri=URI,
            virt_type="qemu", serial="pty", stop_timeout=0)


def names(conn):
    return sorted(d.name() for d in conn.listAllDomains())


def volumes(conn):
    return sorted(v.name() for v in conn.storagePoolLookupByName("default-pool").listAllVolumes())


def test_creates_disk_and_domain_and_starts_it(conn, run_module):
    result = run_module(vm, BASE)
    assert result["changed"] is True
    assert result["steps"] == ["create_disk", "define", "start"]
    assert volumes(conn) == ["web1.qcow2"]
    dom = conn.lookupByName("web1")
    assert dom.isActive()
    info = result["vm"]
    assert (info["vcpus"], info["vcpus_max"], info["memory_mb"], info["disk_gb"]) == (2, 8, 512, 3)
    assert info["disk"] == "/default-pool/web1.qcow2" and info["state"] == "running"
    assert info["mac"].startswith("52:54:00:") and info["uuid"] == dom.UUIDString()
    capacity = conn.storagePoolLookupByName("default-pool").storageVolLookupByName("web1.qcow2").info()[1]
    assert capacity == 3 * 1024 ** 3
    assert parse_domain_xml(dom.XMLDesc(2))["vcpus_max"] == 8


def test_second_run_changes_nothing(conn, run_module):
    run_module(vm, BASE)
    again = run_module(vm, BASE)
    assert again["changed"] is False and again["steps"] == []


def test_check_mode_predicts_and_makes_nothing(conn, run_module):
    result = run_module(vm, dict(BASE, _ansible_check_mode=True, _ansible_diff=True))
    assert result["changed"] is True and result["steps"] == ["create_disk", "define", "start"]
    assert result["vm"]["state"] == "running" and result["vm"]["uuid"] is None
    assert result["diff"]["before"] == "" and "<name>web1</name>" in result["diff"]["after"]
    assert names(conn) == ["test"] and volumes(conn) == []


def test_other_sizes_on_an_existing_vm_are_refused_with_the_way_to_resize(conn, run_module):
    run_module(vm, BASE)
    result = run_module(vm, dict(BASE, vcpus=1))
    assert result["failed"] is True
    assert "vcpus is 2, asked 1" in result["msg"] and "vm_scale" in result["msg"]
    assert conn.lookupByName("web1").isActive()


def test_a_disk_size_change_is_refused(conn, run_module):
    run_module(vm, BASE)
    result = run_module(vm, dict(BASE, disk_gb=4))
    assert result["failed"] is True and "disk_gb is 3, asked 4" in result["msg"]


def test_a_domain_kvmfleet_did_not_make_is_never_touched(conn, run_module):
    before = conn.lookupByName("test").XMLDesc(0)
    result = run_module(vm, dict(BASE, name="test"))
    assert result["failed"] is True and "was not made by kvmfleet" in result["msg"]
    gone = run_module(vm, dict(name="test", state="absent", uri=URI))
    assert gone["failed"] is True
    assert conn.lookupByName("test").XMLDesc(0) == before and volumes(conn) == []


def test_an_existing_disk_is_never_overwritten(conn, run_module):
    pool = conn.storagePoolLookupByName("default-pool")
    pool.createXML("<volume><name>web1.qcow2</name><capacity unit='G'>1</capacity></volume>", 0)
    result = run_module(vm, BASE)
    assert result["failed"] is True and "never overwrites a disk" in result["msg"]
    assert names(conn) == ["test"]
    assert pool.storageVolLookupByName("web1.qcow2").info()[1] == 1024 ** 3


def test_a_failure_after_the_disk_was_made_leaves_nothing_behind(conn, run_module, monkeypatch):
    def broken_start(self, dom):
        raise VirtError("QEMU could not start: simulated")
    monkeypatch.setattr(VirtConnection, "start_domain", broken_start)
    result = run_module(vm, BASE)
    assert result["failed"] is True
    assert "simulated" in result["msg"] and "rolled back: removed the definition and disk" in result["msg"]
    assert result["rolled_back"] == ["definition", "disk"]
    assert names(conn) == ["test"] and volumes(conn) == []


def test_stop_then_start(conn, run_module):
    run_module(vm, BASE)
    stopped = run_module(vm, dict(BASE, state="stopped"))
    assert stopped["steps"] == ["stop"] and not conn.lookupByName("web1").isActive()
    started = run_module(vm, dict(BASE, state="running", autostart=True))
    assert started["steps"] == ["autostart", "start"] and conn.lookupByName("web1").autostart()


def test_absent_removes_domain_and_its_disk_once(conn, run_module):
    run_module(vm, BASE)
    predicted = run_module(vm, dict(name="web1", state="absent", uri=URI, _ansible_check_mode=True))
    assert predicted["steps"] == ["stop", "undefine", "delete_disk"] and names(conn) == ["test", "web1"]
    gone = run_module(vm, dict(name="web1", state="absent", uri=URI))
    assert gone["changed"] is True and names(conn) == ["test"] and volumes(conn) == []
    again = run_module(vm, dict(name="web1", state="absent", uri=URI))
    assert again["changed"] is False


@pytest.mark.parametrize("change, message", [
    (dict(name="Web_1"), "name="),
    (dict(vcpus=0), "vcpus=0: must be >= at least one vCPU"),
    (dict(vcpus=64), "vcpus=64: must be <= the host maximum (16)"),
    (dict(memory_mb=-5), "memory_mb=-5"),
    (dict(disk_gb=10 ** 9), "disk_gb="),
    (dict(image="/etc/passwd"), "image="),
    (dict(pool="nope"), "storage pool nope does not exist"),
])
def test_bad_input_is_refused_before_anything_is_made(conn, run_module, change, message):
    result = run_module(vm, dict(BASE, **change))
    assert result["failed"] is True and message in result["msg"]
    assert names(conn) == ["test"] and volumes(conn) == []


def test_sizes_are_required_unless_absent(conn, run_module):
    result = run_module(vm, dict(name="web1", uri=URI, state="running"))
    assert result["failed"] is True and "vcpus" in result["msg"] and "memory_mb" in result["msg"]
    assert names(conn) == ["test"]


@pytest.mark.parametrize("first, then", [
    (None, dict(BASE)),                                        # a new VM: disk, definition, start
    (dict(BASE), dict(BASE, state="stopped", autostart=True)),  # an existing one: autostart, stop
    (dict(BASE, autostart=True), dict(BASE, state="stopped")),  # autostart omitted: kept as it is
    (dict(BASE), dict(name="web1", state="absent", uri=URI)),   # delete with its disk
])
def test_check_mode_predicts_exactly_what_the_real_run_does(conn, run_module, first, then):
    if first is not None:
        run_module(vm, first)
    predicted = run_module(vm, dict(then, _ansible_check_mode=True, _ansible_diff=True))
    done = run_module(vm, dict(then, _ansible_diff=True))
    assert not done.get("failed"), done
    assert (predicted["changed"], predicted["steps"]) == (done["changed"], done["steps"])
    assert dict(predicted["vm"], uuid=None) == dict(done["vm"], uuid=None)
    assert predicted["diff"] == done["diff"]


def test_diff_mode_shows_the_domain_xml_before_and_after(conn, run_module):
    run_module(vm, BASE)
    same = run_module(vm, dict(BASE, state="stopped", _ansible_diff=True))
    assert "<name>web1</name>" in same["diff"]["before"] and same["diff"]["before"] == same["diff"]["after"]
    assert same["diff"]["before_header"] == "web1 (defined)" and same["diff"]["after_header"] == "web1"
    gone = run_module(vm, dict(name="web1", state="absent", uri=URI, _ansible_diff=True))
    assert "<name>web1</name>" in gone["diff"]["before"] and gone["diff"]["after"] == ""
    assert "diff" not in run_module(vm, BASE)


def test_the_owner_is_kept_in_the_metadata_and_another_owner_only_hears_the_name_is_taken(conn, run_module):
    made = run_module(vm, dict(BASE, tenant="acme"))
    assert made["changed"] is True
    xml = conn.lookupByName("web1").XMLDesc(2)
    assert "<kvmfleet:tenant>acme</kvmfleet:tenant>" in xml
    assert run_module(vm, dict(BASE, tenant="acme"))["changed"] is False
    refused = run_module(vm, dict(BASE, tenant="initech"))
    assert refused["failed"] is True and refused["msg"] == "the name web1 is taken on this host; choose another"
    assert "acme" not in json.dumps(refused)
    # the operator (no tenant) acts on any tenant's VM
    stopped = run_module(vm, dict(BASE, state="stopped"))
    assert stopped["steps"] == ["stop"] and "<kvmfleet:tenant>acme</kvmfleet:tenant>" in conn.lookupByName("web1").XMLDesc(2)
    bad = run_module(vm, dict(BASE, name="web2", tenant="Acme"))
    assert bad["failed"] is True and "tenant='Acme'" in bad["msg"] and names(conn) == ["test", "web1"]


def test_start_and_stop_only_need_no_sizes_and_change_nothing_else(conn, run_module):
    run_module(vm, dict(BASE, tenant="acme"))
    power = dict(name="web1", uri=URI, stop_timeout=0)
    predicted = run_module(vm, dict(power, state="stopped", _ansible_check_mode=True))
    assert predicted["changed"] is True and predicted["steps"] == ["stop"] and predicted["vm"]["state"] == "shutoff"
    assert conn.lookupByName("web1").isActive()
    stopped = run_module(vm, dict(power, state="stopped", tenant="acme"))
    assert stopped["steps"] == ["stop"] and stopped["vm"]["state"] == "shutoff"
    assert not conn.lookupByName("web1").isActive()
    assert run_module(vm, dict(power, state="stopped", tenant="acme"))["changed"] is False
    started = run_module(vm, dict(power, state="running"))       # the operator starts any VM
    assert started["steps"] == ["start"] and conn.lookupByName("web1").isActive()
    # the definition is as it was: sizes, owner
    assert "<kvmfleet:tenant>acme</kvmfleet:tenant>" in conn.lookupByName("web1").XMLDesc(2)
    assert parse_domain_xml(conn.lookupByName("web1").XMLDesc(2))["vcpus"] == 2


def test_another_tenants_vm_cannot_be_stopped_or_deleted_and_is_not_named_as_theirs(conn, run_module):
    run_module(vm, dict(BASE, tenant="acme"))
    run_module(vm, dict(BASE, name="ops1"))        # the operator's own VM
    power = dict(uri=URI, stop_timeout=0, state="stopped", tenant="initech")
    missing = run_module(vm, dict(power, name="web9"))
    assert missing["failed"] is True
    for name in ("web1", "ops1"):
        refused = run_module(vm, dict(power, name=name))
        assert refused["failed"] is True
        assert refused["msg"] == missing["msg"].replace("web9", name)
        assert "acme" not in json.dumps(refused)
        kept = run_module(vm, dict(name=name, uri=URI, state="absent", tenant="initech"))
        assert kept["changed"] is False and kept["vm"]["state"] == "absent" and kept["steps"] == []
        assert conn.lookupByName(name).isActive()
    assert volumes(conn) == ["ops1.qcow2", "web1.qcow2"]
    deleted = run_module(vm, dict(name="web1", uri=URI, state="absent", tenant="acme"))
    assert deleted["changed"] is True and names(conn) == ["ops1", "test"] and volumes(conn) == ["ops1.qcow2"]


def test_start_or_stop_of_a_vm_that_is_not_there_says_how_to_create_it(conn, run_module):
    result = run_module(vm, dict(name="web1", uri=URI, state="running"))
    assert result["failed"] is True
    assert result["msg"] == "VM web1 does not exist; to create it give vcpus, memory_mb and disk_gb"
    partial = run_module(vm, dict(name="web1", uri=URI, state="running", vcpus=2, memory_mb=512))
    assert partial["failed"] is True
    assert partial["msg"] == ("give all of vcpus, memory_mb, disk_gb to make or check a VM, or none of them to "
                              "only start or stop it; got only vcpus, memory_mb")
    assert names(conn) == ["test"] and volumes(conn) == []
    present = run_module(vm, dict(name="web1", uri=URI, state="present"))
    assert present["failed"] is True and "vcpus" in present["msg"] and names(conn) == ["test"]


@pytest.mark.parametrize("image", ["/default-pool/tenants/initech/shop.image.qcow2",
                                   "tenants/initech/shop.image.qcow2",
                                   "tenants/acme/../initech/shop.image.qcow2"])
def test_a_tenant_cannot_boot_another_tenants_image_on_the_host(conn, run_module, image):
    """The host's own check, behind the controller's: the same "not found" whether the file exists or not."""
    result = run_module(vm, dict(BASE, tenant="acme", image=image))
    assert result["failed"] is True
    assert result["msg"] == "image %s: not found among tenant acme's images and the public ones" % image
    assert names(conn) == ["test"] and volumes(conn) == []
