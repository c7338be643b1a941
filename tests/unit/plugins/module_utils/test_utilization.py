"""The one definition of a host's VM CPU, as hypervisor_info, placement and the patrol read it."""

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.api import Host
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.api import host_cpu
from ansible_collections.kvmfleet.iaas.plugins.module_utils.utilization import host_vm_cpu_percent, vm_cpu_percent


def running(cpu):
    return {"state": "running", "cpu_percent": cpu}


def test_running_domains_summed_over_host_cpus():
    doms = [running(100.0), running(50.0), {"state": "shutoff", "cpu_percent": 0.0},
            {"state": "paused", "cpu_percent": 30.0}]
    assert vm_cpu_percent(doms, 2) == 75.0
    assert vm_cpu_percent([], 2) == 0.0


def test_capped_at_all_host_cpus():
    # two VMs each at 80 % of one vCPU on a one-CPU host: the host is full, not 160 % busy
    assert vm_cpu_percent([running(80.0), running(80.0)], 1) == 100.0


def test_unsampled_running_domain_counts_as_idle():
    assert vm_cpu_percent([running(80.0), running(80.0), running(None)], 2) == 80.0


def test_unknown_cpu_count_gives_none():
    assert vm_cpu_percent([running(50.0)], 0) is None
    assert vm_cpu_percent([running(50.0)], None) is None


def test_host_facts_prefer_the_reported_field():
    facts = {"cpus": 2, "domains": [running(100.0)], "utilization": {"vm_cpu_percent": 70.0}}
    assert host_vm_cpu_percent(facts) == 70.0
    facts["utilization"]["vm_cpu_percent"] = None         # host not sampled
    assert host_vm_cpu_percent(facts) is None
    del facts["utilization"]["vm_cpu_percent"]            # facts from before the field
    assert host_vm_cpu_percent(facts) == 50.0


@pytest.mark.parametrize("doms,cpus,expected", [
    ([running(80.0), running(80.0)], 1, 100.0),
    ([running(80.0), running(80.0), running(None)], 1, 100.0),
    ([running(30.0), {"state": "shutoff", "cpu_percent": 90.0}], 2, 15.0),
])
def test_placement_and_patrol_read_the_same_figure(doms, cpus, expected):
    facts = {"reachable": True, "cpus": cpus, "memory_mb": 4096, "storage": {"total_gb": 100},
             "domains": [dict(d, name="vm%d" % i) for i, d in enumerate(doms)],
             "utilization": {"cpu_percent": 1.0, "memory_percent": 10.0}}
    placement_cpu = Host.from_facts("n1", facts, {"kvmfleet_cpu_source": "vms"}).cpu_percent
    patrol_cpu = host_cpu(facts, "vms")
    assert placement_cpu == patrol_cpu == vm_cpu_percent(facts["domains"], cpus) == expected
