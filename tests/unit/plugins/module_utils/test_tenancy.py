# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tenants and quotas: the inventory schema, usage from the facts, the check with its numbers,
claims of creates in flight, and two creates of one tenant at the same moment (real processes
on the controller's ledger)."""

import multiprocessing
import time

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy import quota as Q
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.tenants import Tenants
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.quota_ledger import QuotaLedger

DECLARED = {"acme": {"quota": {"vcpus": 4, "memory_mb": 4096, "vms": 2}}, "initech": None}
DEFAULT = {"vcpus": 2, "disk_gb": 20}


def dom(name, tenant=None, vcpus=1, memory_mb=512, disk_gb=2):
    return {"name": name, "vcpus": vcpus, "vcpus_max": 8, "memory_mb": memory_mb, "memory_max_mb": 4096,
            "disks": [{"capacity_gb": disk_gb}],
            "metadata": {"managed-by": "kvmfleet.iaas", "tenant": tenant} if tenant else {"managed-by": "kvmfleet.iaas"}}


FACTS = {"node1": {"domains": [dom("a1", "acme", vcpus=2, memory_mb=1024), dom("ops1")]},
         "node2": {"domains": [dom("a2", "acme"), dom("i1", "initech")]}, "node3": None}


def test_quotas_from_the_inventory_with_the_default_under_each():
    tenants = Tenants(DECLARED, DEFAULT)
    assert tenants.names() == ["acme", "initech"]
    assert tenants.quota("acme") == {"vcpus": 4, "memory_mb": 4096, "vms": 2, "disk_gb": 20}
    assert tenants.quota("initech") == {"vcpus": 2, "disk_gb": 20}
    assert tenants.check(None) is None                       # the operator
    with pytest.raises(ValidationError, match=r"^tenant='globex': no such tenant \(declare it in kvmfleet_tenants\)$"):
        tenants.check("globex")
    with pytest.raises(ValidationError, match="tenant='Acme': must be lowercase"):
        tenants.check("Acme")


@pytest.mark.parametrize("declared, default, message", [
    ({"acme": {"quota": {"vcpus": -1}}}, None, r"kvmfleet_tenants\.acme\.quota\.vcpus: must be a whole number >= 0"),
    ({"acme": {"quota": {"vcpus": "lots"}}}, None, r"kvmfleet_tenants\.acme\.quota\.vcpus: must be a whole number >= 0, got 'lots'"),
    ({"acme": {"quota": {"vcpus": 1.5}}}, None, r"must be a whole number >= 0, got 1\.5"),
    ({"acme": {"quota": {"vcpus": True}}}, None, r"must be a whole number >= 0, got True"),
    ({"acme": {"quota": {"cpus": 4}}}, None, r"kvmfleet_tenants\.acme\.quota: unknown quota key cpus \(known: vcpus,"),
    ({"acme": {"quotas": {}}}, None, r"kvmfleet_tenants\.acme: unknown key quotas \(known: quota, description\)"),
    ({"Acme": {}}, None, r"kvmfleet_tenants key='Acme': must be lowercase"),
    ({"ac_me": {}}, None, r"must be an RFC 1123 hostname label"),
    (["acme"], None, r"kvmfleet_tenants: must be a mapping"),
    ({}, {"vms": 10 ** 10}, r"kvmfleet_tenant_default_quota\.vms: must be a whole number >= 0 and <= 1000000000"),
])
def test_bad_tenant_declarations_are_refused_with_the_place(declared, default, message):
    with pytest.raises(ValidationError, match=message):
        Tenants(declared, default)


def test_usage_is_the_sum_over_the_facts_of_the_tenants_vms():
    images = [{"tenant": "acme", "size_gb": 3}, {"tenant": "initech", "size_gb": 9}, {"tenant": None, "size_gb": 1}]
    assert Q.usage(FACTS, "acme", images) == {"vcpus": 3, "memory_mb": 1536, "disk_gb": 4, "vms": 2, "images": 1,
                                              "image_gb": 3}
    assert [d["name"] for _h, d in Q.tenant_domains(FACTS, None)] == ["ops1"]   # made before tenancy: the operator's
    assert Q.owner_of(dom("x", "acme")) == "acme" and Q.owner_of({"name": "foreign"}) is None


def test_over_quota_names_every_resource_over_with_its_numbers():
    used = Q.usage(FACTS, "acme")
    quota = Tenants(DECLARED, DEFAULT).quota("acme")
    with pytest.raises(Q.QuotaExceeded) as err:
        Q.check_request("acme", quota, used, Q.vm_demand(2, 4096, 10))
    assert str(err.value) == ("tenant acme is over its quota: vCPUs: 3 used + 2 asked > 4 allowed; "
                              "MiB of memory: 1536 used + 4096 asked > 4096 allowed; "
                              "VMs: 2 used + 1 asked > 2 allowed")
    assert sorted(err.value.details["over"]) == ["memory_mb", "vcpus", "vms"]   # disk: 4 + 10 <= 20
    assert err.value.details["over"]["vcpus"] == {"used": 3, "asked": 2, "limit": 4}
    # within it: the usage after
    assert Q.check_request("initech", {"vcpus": 2}, Q.usage(FACTS, "initech"), Q.vm_demand(1, 512, 2))["vcpus"] == 2
    # an unlimited resource is never checked; shrinking never blocks
    assert Q.check_request("x", {}, {"vcpus": 10 ** 6}, {"vcpus": 5})["vcpus"] == 10 ** 6 + 5
    assert Q.scale_demand(4, 4096, 2, 8192) == {"vcpus": 0, "memory_mb": 4096}
    with pytest.raises(Q.QuotaExceeded, match=r"MiB of memory: 1536 used \+ 4096 asked > 4096 allowed"):
        Q.check_request("acme", quota, used, Q.scale_demand(1, 512, 1, 4608))


def test_claims_count_until_the_vm_shows_in_the_facts_or_expires():
    quota = {"vms": 2}
    used = {"vms": 1}
    claims = Q.claim("t", quota, used, {}, "web1", {"vms": 1}, now=100.0)
    with pytest.raises(Q.QuotaExceeded, match=r"VMs: 2 used \+ 1 asked > 2 allowed"):
        Q.claim("t", quota, used, claims, "web2", {"vms": 1}, now=101.0)
    # web1 defined: the facts count it (used 2 now), its claim no more
    with pytest.raises(Q.QuotaExceeded, match=r"VMs: 2 used \+ 1 asked"):
        Q.claim("t", quota, {"vms": 2}, claims, "web2", {"vms": 1}, now=101.0, visible_vms=["web1"])
    # a re-run of web1's create replaces its own claim rather than adding one
    assert Q.claim("t", quota, used, claims, "web1", {"vms": 1}, now=102.0)["web1"]["expires"] == 102.0 + Q.CLAIM_SECONDS
    # an abandoned claim expires
    assert "web2" in Q.claim("t", quota, used, claims, "web2", {"vms": 1}, now=100.0 + Q.CLAIM_SECONDS + 1)


class SlowLedger(QuotaLedger):
    """Reads, then dawdles before writing: without the lock every racer would read the same ledger."""

    def _read(self, tenant):
        claims = super()._read(tenant)
        time.sleep(0.2)
        return claims


def _race(state_dir, vm, barrier, results):
    barrier.wait()
    try:
        SlowLedger(state_dir).claim("acme", {"vms": 2}, {"vms": 1}, vm, {"vms": 1})
        results.put((vm, "claimed"))
    except Q.QuotaExceeded as err:
        results.put((vm, str(err)))


def test_two_creates_at_the_same_moment_cannot_together_pass_the_quota(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_race, args=(str(tmp_path), "web%d" % n, barrier, results)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    outcomes = sorted(results.get(timeout=5) for _worker in workers)
    assert [o for _vm, o in outcomes].count("claimed") == 1, outcomes
    assert all("VMs: 2 used + 1 asked > 2 allowed" in o for _vm, o in outcomes if o != "claimed")
    ledger = QuotaLedger(str(tmp_path))
    winner = next(vm for vm, o in outcomes if o == "claimed")
    assert ledger.release("acme", winner) is True and ledger.release("acme", winner) is False
    assert ledger.claim("acme", {"vms": 2}, {"vms": 1}, "web9", {"vms": 1})   # room again


def test_a_corrupt_ledger_is_a_clear_error(tmp_path):
    (tmp_path / "acme.json").write_text("{not json")
    with pytest.raises(ValidationError, match="is not JSON .*remove it to start afresh"):
        QuotaLedger(str(tmp_path)).claim("acme", {"vms": 2}, {"vms": 0}, "web1", {"vms": 1})


def test_the_operator_acts_on_every_vm_a_tenant_on_its_own_only():
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.quota import acts_on
    assert acts_on(None, None) and acts_on(None, "acme")
    assert acts_on("acme", "acme")
    assert not acts_on("acme", None)          # the operator's VMs (and VMs made before tenancy)
    assert not acts_on("acme", "initech")
