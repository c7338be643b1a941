# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvmfleet.iaas.tenant_fleet_status (plugins/filter/fleet.py), the tenant's fleet_status report,
with a dict standing in for hostvars, as a filter and as the decide action calls it."""

import json

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.kvmfleet.iaas.plugins.action.decide import decisions
from ansible_collections.kvmfleet.iaas.plugins.filter import fleet
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

TENANTS = {"acme": {"quota": {"vms": 2}}, "initech": {}}


def domain(name, tenant=None):
    return {"name": name, "uuid": "u-" + name, "state": "running", "managed": True, "group": None, "tenant": tenant,
            "metadata": {"managed-by": "kvmfleet.iaas", "tenant": tenant} if tenant else {"managed-by": "kvmfleet.iaas"},
            "vcpus": 2, "vcpus_max": 8, "memory_mb": 1024, "memory_max_mb": 4096, "balloon_mb": 1024, "cpu_percent": 3.0,
            "disks": [{"target": "vda", "path": "/srv/kvmfleet/images/%s.qcow2" % name, "capacity_gb": 10, "allocation_gb": 1}],
            "macs": ["52:54:00:00:00:01"], "addresses": ["10.213.0.9"],
            "guest": {"agent": False, "hostname": None, "address_source": "lease"}}


def facts(hostname, domains):
    return {"reachable": True, "error": None, "hostname": hostname, "cpus": 4, "memory_mb": 8000,
            "storage": {"path": "/srv/kvmfleet/images", "total_gb": 100, "free_gb": 90}, "domains": domains}


HOSTVARS = {
    "node1": {"ansible_host": "10.0.0.11", "ansible_user": "root", "ansible_ssh_private_key_file": "/keys/fleet",
              "kvmfleet_hypervisor": facts("node1.internal", [domain("a-web1", "acme"), domain("ops1")])},
    "node2": {"ansible_host": "10.0.0.12", "kvmfleet_hypervisor": facts("node2.internal", [domain("i-web1", "initech")])},
    "node3": {"ansible_host": "10.0.0.13"},          # not sampled
}


def test_the_tenants_report_from_the_hosts_facts():
    report = fleet.tenant_fleet_status(HOSTVARS, "acme", ["node1", "node2"], tenants=TENANTS)
    assert [vm["name"] for vm in report["vms"]] == ["a-web1"] and report["complete"] is True
    assert report["usage"]["vms"] == 1 and report["quota"]["vms"] == 2
    text = json.dumps(report)
    for secret in ("node1", "node2", "10.0.0", "root", "/keys", "/srv/kvmfleet", "ops1", "i-web1", "lease"):
        assert secret not in text, secret


def test_a_host_without_facts_makes_it_incomplete():
    report = fleet.tenant_fleet_status(HOSTVARS, "acme", ["node1", "node2", "node3"], tenants=TENANTS)
    assert report["complete"] is False and "node3" not in json.dumps(report)


def test_an_unknown_tenant_is_a_filter_error_and_the_bare_reason_for_decide():
    with pytest.raises(AnsibleFilterError, match=r"^tenant='globex': no such tenant \(declare it in kvmfleet_tenants\)$"):
        fleet.tenant_fleet_status(HOSTVARS, "globex", ["node1"], tenants=TENANTS)
    with pytest.raises(ValidationError, match="kvmfleet_tenants.acme.quota: unknown quota key cpus"):
        decisions()["tenant_fleet_status"](hostvars=HOSTVARS, tenant="acme", hosts=["node1"],
                                           tenants={"acme": {"quota": {"cpus": 1}}})


def test_the_sidecar_documents_the_filters_arguments():
    import inspect
    import os
    doc = yaml.safe_load(open(os.path.join(os.path.dirname(fleet.__file__), "tenant_fleet_status.yml")))
    assert doc["DOCUMENTATION"]["name"] == "tenant_fleet_status"
    assert set(doc["DOCUMENTATION"]["options"]) == set(inspect.signature(fleet.tenant_fleet_status.__wrapped__).parameters)
