import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.fleetview import locate_vm, prepare_vm, unreachable_hosts
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.macaddr import derive_mac

REQUEST = dict(name="web1", vcpus=2, memory_mb=1024, disk_gb=10)


def host(*domains, reachable=True, cpus=8, memory_mb=16384):
    return dict(reachable=reachable, error=None if reachable else "libvirt did not answer", domains=list(domains),
                cpus=cpus, memory_mb=memory_mb)


def dom(name, mac):
    return dict(name=name, macs=[mac])


def test_locates_an_existing_vm_and_keeps_its_mac():
    facts = {"node1": host(dom("db1", "52:54:00:00:00:01")), "node2": host(dom("web1", "52:54:00:aa:bb:cc"))}
    prepared = prepare_vm(facts, REQUEST)
    assert prepared["existing_host"] == "node2" and prepared["mac"] == "52:54:00:aa:bb:cc"
    assert prepared["request"]["vcpus_max"] >= 2 and prepared["unreachable"] == {}


def test_a_new_vm_gets_its_derived_mac_unless_another_vm_holds_it():
    assert prepare_vm({"node1": host()}, REQUEST)["mac"] == derive_mac("web1")
    taken = {"node1": host(dom("other", derive_mac("web1")))}
    prepared = prepare_vm(taken, REQUEST)
    assert prepared["mac"] != derive_mac("web1") and prepared["mac_clash"] == ["other"]


def test_a_vm_on_two_hosts_is_a_conflict():
    facts = {"node1": host(dom("web1", "52:54:00:00:00:01")), "node2": host(dom("web1", "52:54:00:00:00:02"))}
    with pytest.raises(Conflict, match="defined on several hosts: node1, node2"):
        locate_vm(facts, "web1")


def test_unreachable_hosts_stop_creation_unless_accepted():
    facts = {"node1": host(), "node2": host(reachable=False), "node3": None}
    assert unreachable_hosts(facts) == {"node2": "libvirt did not answer", "node3": "no facts gathered"}
    with pytest.raises(ValidationError, match="node2: libvirt did not answer; node3: no facts gathered"):
        prepare_vm(facts, REQUEST)
    assert prepare_vm(facts, REQUEST, ignore_unreachable=True)["unreachable"].keys() == {"node2", "node3"}


@pytest.mark.parametrize("change, message", [
    (dict(name="web_1"), "name="),
    (dict(vcpus="two"), "vcpus='two'"),
    (dict(ip="10.9.9.9"), "must lie inside the VM network 10.213.0.0/24"),
    (dict(image="/etc/shadow"), "image="),
])
def test_bad_requests_are_refused(change, message):
    with pytest.raises(ValidationError) as err:
        prepare_vm({"node1": host()}, dict(REQUEST, **change), image_dir="/srv/kvmfleet/images",
                   network="10.213.0.0/24")
    assert message in str(err.value)


def test_no_vm_larger_than_the_largest_reachable_host():
    facts = {"node1": host(cpus=2), "node2": host(cpus=4, memory_mb=4096), "node3": host(cpus=64, reachable=False)}
    with pytest.raises(ValidationError, match="vcpus=8: must be <= the host maximum \\(4\\)"):
        prepare_vm(facts, dict(REQUEST, vcpus=8), ignore_unreachable=True)
    with pytest.raises(ValidationError, match="memory_mb=20000: must be <= the host memory \\(16384\\)"):
        prepare_vm(facts, dict(REQUEST, memory_mb=20000), ignore_unreachable=True)
    assert prepare_vm(facts, dict(REQUEST, vcpus=4), ignore_unreachable=True)["request"]["vcpus"] == 4
