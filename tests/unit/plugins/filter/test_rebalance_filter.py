# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvmfleet.iaas.rebalance, patrol_record and patrol_loads with a dict standing in for hostvars.

(Not test_rebalance.py: pytest imports test files by basename here, and
tests/unit/plugins/module_utils/test_rebalance.py has that name.)"""

import json

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.kvmfleet.iaas.plugins.filter.rebalance import FilterModule, patrol_loads, patrol_record, rebalance


def dom(name, cpu, memory_mb=512, group=None):
    return {"name": name, "uuid": "u-" + name, "state": "running", "managed": True, "group": group,
            "vcpus": 1, "vcpus_max": 2, "memory_mb": memory_mb, "memory_max_mb": 1024, "cpu_percent": cpu,
            "disks": [{"target": "vda", "capacity_gb": 1}], "macs": [], "addresses": []}


def facts(domains, host_cpu=100.0):
    vm_cpu = sum(d["cpu_percent"] for d in domains) / 2
    return {"reachable": True, "error": None, "hostname": "x", "virt_types": ["qemu"], "cpus": 2,
            "memory_mb": 24000, "memory_free_mb": 20000, "maintenance": False,
            "storage": {"path": "/srv", "total_gb": 100, "free_gb": 90},
            "allocated": {"vcpus": len(domains), "memory_mb": 512 * len(domains), "disk_gb": len(domains),
                          "domains": len(domains)},
            "utilization": {"cpu_percent": host_cpu, "memory_percent": 8.0, "sample_seconds": 3.0,
                            "vm_cpu_percent": vm_cpu},
            "domains": domains}


LAB = {"kvmfleet_cpu_threshold": 100, "kvmfleet_patrol_cpu_source": "vms", "kvmfleet_patrol_cpu_threshold": 60,
       "kvmfleet_virt_type": "qemu"}


@pytest.fixture
def hostvars():
    # the lab: every node reports the machine's CPU; three burning guests on node1
    return {"node1": dict(LAB, kvmfleet_hypervisor=facts([dom("b1", 66), dom("b2", 66), dom("b3", 66)])),
            "node2": dict(LAB, kvmfleet_hypervisor=facts([])),
            "node3": dict(LAB),                       # unreachable: no facts this run
            "localhost": {}}


def test_plan_moves_the_burners_off_the_hot_node(hostvars):
    plan = rebalance(hostvars, hosts=["node1", "node2", "node3"], now=100.0, hot_observations=1)
    assert plan["hot"] == ["node1"] and plan["unreachable"] == {"node3": "no facts gathered (host unreachable)"}
    assert [(a["from"], a["to"]) for a in plan["actions"]] == [("node1", "node2")]
    assert plan["after"]["node1"]["cpu_percent"] == 66.0 and plan["after"]["node2"]["cpu_percent"] == 33.0
    assert any(line.startswith("VM ") for line in plan["table"])
    json.dumps(plan)  # the playbook writes it as JSON


def test_history_round_trip_and_k(hostvars):
    first = rebalance(hostvars, hosts=["node1", "node2"], now=100.0, hot_observations=2)
    assert first["actions"] == []
    stored = json.loads(json.dumps(first["history"]))
    second = rebalance(hostvars, hosts=["node1", "node2"], history=stored, now=160.0, hot_observations=2)
    assert second["moves"] == 1
    recorded = patrol_record(second["history"], second["actions"], now=170.0)
    third = rebalance(hostvars, hosts=["node1", "node2"], history=recorded, now=200.0, hot_observations=2)
    moved = second["actions"][0]["vm"]
    assert moved not in [a["vm"] for a in third["actions"]]


def test_hosts_default_to_those_with_facts_and_errors_are_filter_errors(hostvars):
    assert sorted(rebalance(hostvars, hot_observations=1)["hosts"]) == ["node1", "node2"]
    with pytest.raises(AnsibleFilterError, match="not in the inventory"):
        rebalance(hostvars, hosts=["nodeX"])
    with pytest.raises(AnsibleFilterError, match="mode"):
        rebalance(hostvars, mode="shuffle")
    # numbers are range-checked before anything is planned, the message naming option and range
    with pytest.raises(AnsibleFilterError, match=r"max_moves=-1 is out of range: must be an integer with 0 <= value <= 100000"):
        rebalance(hostvars, max_moves=-1)
    hostvars["node2"]["kvmfleet_patrol_cpu_threshold"] = 150
    with pytest.raises(AnsibleFilterError, match=r"kvmfleet_patrol_cpu_threshold of node2 must be a percentage with 0 < value <= 100, or off; got 150"):
        rebalance(hostvars, hot_observations=1)
    with pytest.raises(AnsibleFilterError, match="kvmfleet_patrol_cpu_threshold"):
        patrol_loads(hostvars, ["node2"])


def test_loads(hostvars):
    loads = patrol_loads(hostvars, ["node1", "node2", "node3"])
    assert loads["hosts"]["node1"]["cpu_percent"] == 99.0 and loads["hosts"]["node2"]["cpu_percent"] == 0.0
    assert loads["over"] == ["node1"] and loads["unreachable"] == ["node3"]
    # the host-wide source sees the machine: the same everywhere
    hostvars["node2"]["kvmfleet_patrol_cpu_source"] = "host"
    assert patrol_loads(hostvars, ["node2"])["hosts"]["node2"]["cpu_percent"] == 100.0


def test_filters_are_registered_and_documented():
    assert set(FilterModule().filters()) == {"rebalance", "patrol_record", "patrol_loads"}
    from pathlib import Path
    here = Path(__file__).resolve().parents[4] / "plugins" / "filter"
    for name in ("rebalance", "patrol_record", "patrol_loads"):
        doc = yaml.safe_load((here / (name + ".yml")).read_text())
        assert doc["DOCUMENTATION"]["name"] == name
