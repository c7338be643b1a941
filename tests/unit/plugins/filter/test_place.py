# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvmfleet.iaas.place with a dict standing in for hostvars."""

import copy
import json

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.kvmfleet.iaas.plugins.filter import place as place_plugin
from ansible_collections.kvmfleet.iaas.plugins.filter.place import FilterModule, place


def facts(cpus=4, memory_mb=8704, total_gb=100, vcpus=0, used_mb=0, disk_gb=0, cpu=10.0, mem=20.0,
          domains=(), virt_types=("kvm", "qemu")):
    # 4 CPUs x 4 = 16 vCPUs; 8704 - 512 = 8192 MiB; 100 GiB
    return {
        "reachable": True, "error": None, "hostname": "x", "virt_types": list(virt_types),
        "cpus": cpus, "memory_mb": memory_mb, "memory_free_mb": 4000,
        "storage": {"path": "/srv/kvmfleet/images", "total_gb": total_gb, "free_gb": total_gb - disk_gb},
        "allocated": {"vcpus": vcpus, "memory_mb": used_mb, "disk_gb": disk_gb, "domains": len(domains)},
        "utilization": {"cpu_percent": cpu, "memory_percent": mem, "sample_seconds": 1.0},
        "domains": list(domains),
    }


def domain(name, group=None, vcpus=2, memory_mb=1024, disk_gb=10, cpu_percent=40.0):
    return {"name": name, "uuid": "u-" + name, "state": "running", "managed": True, "group": group,
            "vcpus": vcpus, "vcpus_max": 8, "memory_mb": memory_mb, "memory_max_mb": 4096,
            "balloon_mb": memory_mb, "cpu_percent": cpu_percent,
            "disks": [{"target": "vda", "path": "/srv/x.qcow2", "capacity_gb": disk_gb, "allocation_gb": 1}],
            "macs": [], "addresses": []}


@pytest.fixture
def hostvars():
    return {
        "node1": {"kvmfleet_hypervisor": facts(vcpus=2, used_mb=1024, disk_gb=10, domains=[domain("web1", "web")])},
        "node2": {"kvmfleet_hypervisor": facts(vcpus=8, used_mb=4096, disk_gb=40)},
        "node3": {"kvmfleet_hypervisor": facts(), "kvmfleet_maintenance": True},
        "node4": {},                                          # in the group, never gathered
        "controller": {"ansible_host": "10.0.0.1"},           # not a hypervisor
    }


HYPERVISORS = ["node1", "node2", "node3", "node4"]


def test_registered_under_its_name():
    assert FilterModule().filters() == {"place": place}


def test_documentation_is_yaml():
    doc = yaml.safe_load(place_plugin.DOCUMENTATION)
    assert doc["name"] == "place"
    assert set(doc["options"]) == {"_input", "request", "hosts"}
    assert set(doc["options"]["request"]["suboptions"]) == set(place_plugin.Request.FIELDS)
    yaml.safe_load(place_plugin.EXAMPLES)
    assert set(yaml.safe_load(place_plugin.RETURN)["_value"]["contains"]) == {
        "host", "strategy", "score", "explanation", "breakdown", "scores", "rejected", "moved_from"}


def test_creation_chooses_and_explains(hostvars):
    result = place(hostvars, {"name": "web2", "vcpus": 2, "memory_mb": 1024, "disk_gb": 10, "group": "web"},
                   hosts=HYPERVISORS)
    assert result["host"] == "node2"
    assert result["rejected"] == {
        "node1": ["anti-affinity: group web already has web1 here"],
        "node3": ["in maintenance (kvmfleet_maintenance)"],
        "node4": ["no facts gathered"],
    }
    assert set(result["scores"]) == {"node2"}
    assert result["explanation"].startswith("node2 chosen by balanced")
    assert result["breakdown"]["allocated_after"] == {"cpu": 0.625, "memory": 0.625, "disk": 0.5}
    assert result["moved_from"] is None
    json.dumps(result)                                        # plain data for Ansible


def test_default_hosts_are_those_with_facts(hostvars):
    result = place(hostvars, {"name": "db1", "vcpus": 1, "memory_mb": 512, "strategy": "spread"})
    assert result["host"] == "node1"
    assert set(result["scores"]) == {"node1", "node2"}
    assert set(result["rejected"]) == {"node3"}


def test_inventory_variables_are_read(hostvars):
    hostvars["node1"]["kvmfleet_cpu_allocation_ratio"] = 1.0  # 4 vCPUs, 2 allocated
    hostvars["node2"]["kvmfleet_disabled"] = True
    with pytest.raises(AnsibleFilterError) as err:
        place(hostvars, {"name": "db1", "vcpus": 4, "memory_mb": 512}, hosts=HYPERVISORS)
    message = str(err.value)
    assert "no host can take db1 (4 vCPUs, 512 MiB, 0 GiB) among 4 hosts" in message
    for line in ("node1: vcpus: needs 4, 2 free of 4 (4 CPUs x 1, 2 allocated)",
                 "node2: disabled (kvmfleet_disabled)",
                 "node3: in maintenance (kvmfleet_maintenance)",
                 "node4: no facts gathered"):
        assert line in message


def test_migration_takes_size_and_load_from_the_domain(hostvars):
    result = place(hostvars, {"name": "web1", "current_host": "node1", "migrate": True}, hosts=HYPERVISORS)
    assert result["host"] == "node2"
    assert result["moved_from"] == "node1"
    assert result["rejected"]["node1"] == ["current host of web1 (migration source)"]
    demand = result["breakdown"]["demand"]
    # measured 40 % of one CPU over 4 CPUs: 10 % host-wide
    assert (demand["vcpus"], demand["memory_mb"], demand["disk_gb"], demand["cpu_percent"]) == (2, 1024, 10, 10.0)


def test_resize_in_place_counts_the_delta(hostvars):
    request = {"name": "web1", "vcpus": 4, "memory_mb": 2048, "disk_gb": 10, "current_host": "node1",
               "hosts": ["node1"]}
    result = place(hostvars, request, hosts=HYPERVISORS)
    assert result["host"] == "node1"
    assert result["breakdown"]["demand"]["vcpus"] == 2
    assert result["breakdown"]["demand"]["memory_mb"] == 1024
    assert "resized in place" in result["explanation"]


def test_unreachable_host_reason(hostvars):
    hostvars["node2"]["kvmfleet_hypervisor"] = {"reachable": False, "error": "libvirt timed out"}
    result = place(hostvars, {"name": "x", "vcpus": 1, "memory_mb": 256}, hosts=HYPERVISORS)
    assert result["rejected"]["node2"] == ["unreachable: libvirt timed out"]


@pytest.mark.parametrize("request_, hosts, message", [
    ({"name": "web1", "vcpus": 1, "memory_mb": 256}, HYPERVISORS, "a domain named web1 already exists on node1"),
    ({"name": "x", "vcpus": 0, "memory_mb": 256}, HYPERVISORS, "vcpus of x must be >= 1"),
    ({"name": "x", "memory_mb": 256}, HYPERVISORS, "request is missing vcpus"),
    ({"name": "x", "vcpus": 1, "memory_mb": 256, "colour": "red"}, HYPERVISORS, "unknown request keys: colour"),
    ({"name": "x", "vcpus": 1, "memory_mb": 256}, ["node1", "nodeX"], "nodeX is not in the inventory"),
    ("x", HYPERVISORS, "request must be a dict"),
])
def test_errors_become_filter_errors(hostvars, request_, hosts, message):
    with pytest.raises(AnsibleFilterError, match=message):
        place(hostvars, request_, hosts=hosts)


def test_hostvars_are_not_modified(hostvars):
    before = copy.deepcopy(hostvars)
    request = {"name": "web1", "current_host": "node1", "migrate": True}
    place(hostvars, request, hosts=HYPERVISORS)
    assert hostvars == before
    assert request == {"name": "web1", "current_host": "node1", "migrate": True}


def test_maintenance_mark_in_the_facts_is_honoured(hostvars):
    hostvars["node2"]["kvmfleet_hypervisor"]["maintenance"] = True
    with pytest.raises(AnsibleFilterError) as err:
        place(hostvars, {"name": "web2", "vcpus": 1, "memory_mb": 256, "group": "web"}, hosts=HYPERVISORS)
    assert "node2: in maintenance (mark /etc/kvmfleet/maintenance)" in str(err.value)


def test_labels_select_hosts_by_their_inventory_labels(hostvars):
    hostvars["node1"]["kvmfleet_host_labels"] = {"rack": "r1"}
    hostvars["node2"]["kvmfleet_host_labels"] = {"rack": "r2"}
    result = place(hostvars, {"name": "db1", "vcpus": 1, "memory_mb": 512, "labels": {"rack": "r1"}},
                   hosts=HYPERVISORS)
    assert result["host"] == "node1"
    assert result["rejected"]["node2"] == ["label rack is r2, not r1 (kvmfleet_host_labels)"]
    hostvars["node2"]["kvmfleet_host_labels"] = "rack=r2"
    with pytest.raises(AnsibleFilterError, match="kvmfleet_host_labels of node2 must be a dict"):
        place(hostvars, {"name": "db1", "vcpus": 1, "memory_mb": 512}, hosts=HYPERVISORS)


def test_create_path_carries_labels_from_vm_prepare_to_place(hostvars):
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.fleetview import prepare_vm
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

    hostvars["node2"]["kvmfleet_host_labels"] = {"ssd": "true"}
    facts = {name: hostvars[name].get("kvmfleet_hypervisor") for name in HYPERVISORS}
    request = {"name": "db2", "vcpus": 1, "memory_mb": 512, "disk_gb": 1, "labels": {"ssd": "true"}}
    prepared = prepare_vm(facts, request, ignore_unreachable=True)
    assert prepared["request"]["labels"] == {"ssd": "true"}
    asked = {key: prepared["request"][key] for key in ("name", "vcpus", "memory_mb", "disk_gb", "labels")}
    assert place(hostvars, asked, hosts=HYPERVISORS)["host"] == "node2"
    assert prepare_vm(facts, dict(request, labels=None), ignore_unreachable=True)["request"]["labels"] == {}
    with pytest.raises(ValidationError, match="labels: label ssd must be a string, got True"):
        prepare_vm(facts, dict(request, labels={"ssd": True}), ignore_unreachable=True)
