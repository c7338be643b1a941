# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a tenant sees (tenancy/views.py): its own VMs only, the allowlisted fields only, from facts
shaped as hypervisor_info makes them (facts.domain_fact of a parsed domain XML and qemu's stats),
with usage against quota over the fleet."""

import json

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils import facts
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy import views
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.tenants import RESOURCE_NAMES, Tenants
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import parse_domain_xml

GIB = 1024 ** 3

# Strings only the host knows: none may reach a tenant.
HOST_SECRETS = ("node1.dc.internal", "/srv/kvmfleet/images", "/var/lib/secret-pool", "br-internal", "vnet7",
                "ops-annotation", "root@", "qemu+ssh", "Connection refused")


def domain_xml(name, tenant=None, mac="52:54:00:aa:bb:01", disk="/srv/kvmfleet/images/%s.qcow2"):
    owner = "<kvmfleet:tenant>%s</kvmfleet:tenant>" % tenant if tenant else ""
    return """
<domain type='kvm' id='3'>
  <name>%(name)s</name>
  <uuid>11111111-2222-3333-4444-%(uuid)s</uuid>
  <metadata>
    <kvmfleet:instance xmlns:kvmfleet="https://kvmfleet.dev/iaas/1">
      <kvmfleet:managed-by>kvmfleet.iaas</kvmfleet:managed-by>
      <kvmfleet:group>web</kvmfleet:group>
      %(owner)s
      <kvmfleet:seed-sha256>0123abcd</kvmfleet:seed-sha256>
      <kvmfleet:note>ops-annotation</kvmfleet:note>
    </kvmfleet:instance>
  </metadata>
  <memory unit='KiB'>4194304</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <vcpu placement='static' current='2'>8</vcpu>
  <devices>
    <disk type='file' device='disk'>
      <source file='%(disk)s'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/srv/kvmfleet/images/%(name)s-seed.iso'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <disk type='file' device='disk'>
      <source file='/var/lib/secret-pool/%(name)s-data.qcow2'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <interface type='bridge'>
      <mac address='%(mac)s'/>
      <source bridge='br-internal'/>
    </interface>
  </devices>
</domain>
""" % dict(name=name, uuid=("%012d" % abs(hash(name)))[:12], owner=owner, mac=mac, disk=disk % name)


def stats(name, state=1):
    return {
        "state.state": state, "cpu.time": 52000000000, "balloon.current": 1048576, "balloon.maximum": 4194304,
        "vcpu.current": 2, "vcpu.maximum": 8, "net.count": 1, "net.0.name": "vnet7",
        "block.count": 3,
        "block.0.name": "vda", "block.0.path": "/srv/kvmfleet/images/%s.qcow2" % name,
        "block.0.capacity": 10 * GIB, "block.0.allocation": GIB, "block.0.physical": 2 * GIB,
        "block.1.name": "sda", "block.1.path": "/srv/kvmfleet/images/%s-seed.iso" % name,
        "block.1.capacity": 366592, "block.1.allocation": 366592,
        "block.2.name": "vdb", "block.2.path": "/var/lib/secret-pool/%s-data.qcow2" % name,
        "block.2.capacity": 20 * GIB, "block.2.allocation": 0, "block.2.physical": 3 * GIB,
    }


def domain(name, tenant=None, state=1):
    info = parse_domain_xml(domain_xml(name, tenant))
    info["guest"] = dict(agent=True, hostname="%s-guest" % name, address_source="agent")
    fact = facts.domain_fact(stats(name, state), info, cpu_percent=12.5, addresses=["10.213.0.%d" % (len(name) + 10)])
    fact["metadata"] = info["metadata"]          # as vm_info lists them (with_metadata)
    return fact


def host_facts(hostname, domains):
    return facts.hypervisor_fact(hostname, ["qemu", "kvm"], 8, 32000, 20000,
                                 facts.storage_fact("/srv/kvmfleet/images", 500 * GIB, 200 * GIB),
                                 domains, 30.0, 1.0)


FLEET = {
    "node1": host_facts("node1.dc.internal", [domain("a-web1", "acme"), domain("ops1"), domain("i-db1", "initech")]),
    "node2": host_facts("node2.dc.internal", [domain("a-db1", "acme", state=5)]),
}
TENANTS = Tenants({"acme": {"quota": {"vcpus": 16, "vms": 3, "images": 2}}, "initech": {}},
                  {"memory_mb": 16384, "disk_gb": 100})
IMAGES = [{"tenant": "acme", "name": "mine.qcow2", "size_gb": 4, "path": "/srv/kvmfleet/images/tenants/acme/mine.qcow2"},
          {"tenant": "initech", "name": "theirs.qcow2", "size_gb": 9}, {"tenant": None, "name": "debian.qcow2", "size_gb": 2}]

VM_KEYS = {"name", "uuid", "state", "tenant", "group", "vcpus", "vcpus_max", "memory_mb", "memory_max_mb", "balloon_mb",
           "cpu_percent", "disks", "disk_gb", "macs", "addresses", "guest"}


def keys_anywhere(value):
    """Every mapping key in ``value``, at any depth."""
    if isinstance(value, dict):
        return set(value) | set().union(*(keys_anywhere(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(set(), *(keys_anywhere(v) for v in value))
    return set()


def test_a_vm_as_its_tenant_sees_it():
    fact = domain("a-web1", "acme")
    # the fact is the operator's: it holds the host-side details the view must drop
    assert fact["disks"][0]["path"] == "/srv/kvmfleet/images/a-web1.qcow2" and fact["metadata"]["note"] == "ops-annotation"
    view = views.tenant_vm_view(fact)
    assert set(view) == VM_KEYS
    assert view["name"] == "a-web1" and view["tenant"] == "acme" and view["state"] == "running"
    assert (view["vcpus"], view["vcpus_max"], view["memory_mb"], view["memory_max_mb"]) == (2, 8, 1024, 4096)
    assert view["disks"] == [{"target": "vda", "capacity_gb": 10}, {"target": "vdb", "capacity_gb": 20}]
    assert view["disk_gb"] == 30
    assert view["macs"] == ["52:54:00:aa:bb:01"] and view["addresses"] == ["10.213.0.16"]
    assert view["guest"] == {"agent": True, "hostname": "a-web1-guest"}


def test_nothing_host_internal_leaks_into_a_tenants_view():
    """Fails on any field of the facts that is not on the allowlist: a new field stays hidden."""
    seen = views.tenant_fleet_view(FLEET, "acme", TENANTS, IMAGES)
    text = json.dumps(seen)
    for secret in HOST_SECRETS + ("node1", "node2", "path", "allocation_gb", "metadata", "seed", "managed",
                                  "address_source", "hostname\": \"node", "theirs", "initech", "ops1", "i-db1"):
        assert secret not in text, secret
    allowed = VM_KEYS | {"target", "capacity_gb", "agent", "hostname", "tenant", "complete", "vms", "images", "usage",
                         "quota", "size_gb"} | set(RESOURCE_NAMES)
    assert keys_anywhere(seen) <= allowed
    # a field the facts gain later is not shown until added to the allowlist
    fact = dict(domain("a-web1", "acme"), host="node1.dc.internal", migration_uri="qemu+ssh://root@10.0.0.1/system",
                error="Cannot recv data: Connection refused", ssh_user="root", key_path="/root/.ssh/id_ed25519")
    fact["guest"]["ip_of_host"] = "10.0.0.1"
    fact["disks"][0]["pool"] = "/var/lib/secret-pool"
    view_text = json.dumps(views.tenant_vm_view(fact))
    for secret in ("node1", "qemu+ssh", "Connection refused", "root", "id_ed25519", "10.0.0.1", "secret-pool"):
        assert secret not in view_text, secret


def test_a_structure_smuggled_into_a_scalar_field_is_not_shown():
    fact = dict(domain("a-web1", "acme"), state={"host": "node1.dc.internal"}, macs=[{"bridge": "br-internal"}, "52:54:00:aa:bb:01"])
    view = views.tenant_vm_view(fact)
    assert view["state"] is None and view["macs"] == ["52:54:00:aa:bb:01"]


def test_the_fleet_as_a_tenant_sees_it_with_usage_against_quota():
    seen = views.tenant_fleet_view(FLEET, "acme", TENANTS, IMAGES)
    assert set(seen) == {"tenant", "complete", "vms", "images", "usage", "quota"}
    assert seen["tenant"] == "acme" and seen["complete"] is True
    assert [vm["name"] for vm in seen["vms"]] == ["a-db1", "a-web1"]          # over every host, sorted
    assert [vm["state"] for vm in seen["vms"]] == ["shutoff", "running"]
    assert seen["images"] == [{"name": "mine.qcow2", "size_gb": 4}]
    # usage: the sum over the fleet's facts of its VMs, stopped ones included
    assert seen["usage"] == {"vcpus": 4, "memory_mb": 2048, "disk_gb": 60, "vms": 2, "images": 1, "image_gb": 4}
    # the effective quota, every resource; None: unlimited
    assert seen["quota"] == {"vcpus": 16, "memory_mb": 16384, "disk_gb": 100, "vms": 3, "images": 2, "image_gb": None}
    other = views.tenant_fleet_view(FLEET, "initech", TENANTS, IMAGES)
    assert [vm["name"] for vm in other["vms"]] == ["i-db1"] and other["images"] == [{"name": "theirs.qcow2", "size_gb": 9}]


def test_a_tenant_without_vms_sees_an_empty_fleet_and_without_tenants_no_quota():
    seen = views.tenant_fleet_view(FLEET, "globex")
    assert seen["vms"] == [] and seen["quota"] is None and seen["usage"]["vms"] == 0


def test_an_unreadable_host_makes_the_view_incomplete_without_naming_it():
    fleet = dict(FLEET, node3=facts.unreachable_hypervisor("ssh: connect to host node3.dc.internal port 22: Connection refused"),
                 node4=None)
    seen = views.tenant_fleet_view(fleet, "acme", TENANTS)
    assert seen["complete"] is False and len(seen["vms"]) == 2
    assert "node3" not in json.dumps(seen) and "refused" not in json.dumps(seen)


@pytest.mark.parametrize("tenant, message", [
    ("globex", r"^tenant='globex': no such tenant \(declare it in kvmfleet_tenants\)$"),
    ("Acme", r"tenant='Acme': must be lowercase"),
    ("", r"a tenant's view needs the tenant's name, got ''"),
    (None, r"a tenant's view needs the tenant's name, got None"),
])
def test_an_unknown_or_bad_tenant_is_refused(tenant, message):
    with pytest.raises(ValidationError, match=message):
        views.tenant_fleet_view(FLEET, tenant, TENANTS)


def test_tenant_vms_leaves_out_other_tenants_and_the_operators_vms():
    listing = FLEET["node1"]["domains"]
    assert [vm["name"] for vm in views.tenant_vms(listing, "acme")] == ["a-web1"]
    assert views.tenant_vms(listing, "nobody") == []
    with pytest.raises(ValidationError):
        views.tenant_vms(listing, None)
