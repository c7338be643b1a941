# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placement engine: filters, strategies, ties, groups, migration, resize, batch, index."""

import random

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement import api as P
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    Conflict,
    PlacementError,
    ValidationError,
)

# A host with round capacities: 8 CPUs x 4 = 32 vCPUs, 16896 - 512 = 16384 MiB, 100 GiB.
BASE = dict(cpus=8, memory_mb=16896, storage_total_gb=100)


def host(name, **kw):
    args = dict(BASE)
    args.update(kw)
    return P.Host(name, **args)


def req(name="vm", vcpus=2, memory_mb=2048, disk_gb=10, **kw):
    return P.Request(name, vcpus, memory_mb, disk_gb, **kw)


def dom(name, group=None, vcpus=2, memory_mb=2048, disk_gb=10, cpu_percent=None):
    return P.Domain(name, group, vcpus, memory_mb, disk_gb, cpu_percent)


def rejected_reasons(hosts, request):
    with pytest.raises(PlacementError) as err:
        P.Fleet(hosts).place(request)
    return err.value.details["rejected"], str(err.value)


# --------------------------------------------------------------------------- rejection reasons

REJECTIONS = [
    ("no facts", lambda: P.Host.from_facts("h", None), req(), "no facts gathered"),
    ("unreachable", lambda: P.Host.from_facts("h", {"reachable": False, "error": "connection refused"}),
     req(), "unreachable: connection refused"),
    ("maintenance", lambda: host("h", maintenance=True), req(), "in maintenance"),
    ("disabled", lambda: host("h", disabled=True), req(), "disabled (kvmfleet_disabled)"),
    ("no cpus", lambda: host("h", cpus=0), req(), "no CPU capacity"),
    ("memory all reserved", lambda: host("h", memory_mb=512), req(), "no usable memory"),
    ("no storage", lambda: host("h", storage_total_gb=0), req(), "no storage capacity"),
    ("virt type", lambda: host("h", virt_types=["qemu"]), req(virt_type="kvm"), "virt type kvm not offered (has: qemu)"),
    ("pinned elsewhere", lambda: host("h"), req(hosts=["other"]), "not among the pinned hosts (other)"),
    ("excluded", lambda: host("h"), req(exclude=["h"]), "excluded by the request"),
    ("migration source", lambda: host("h", domains=[dom("vm")]), req(current_host="h", migrate=True),
     "current host of vm (migration source)"),
    ("anti-affinity", lambda: host("h", domains=[dom("web1", "web")]), req(group="web"),
     "anti-affinity: group web already has web1 here"),
    ("vcpus", lambda: host("h", used_vcpus=31), req(vcpus=2), "vcpus: needs 2, 1 free of 32"),
    ("memory", lambda: host("h", used_memory_mb=15000), req(memory_mb=2048), "memory: needs 2048 MiB, 1384 free of 16384"),
    ("disk", lambda: host("h", used_disk_gb=95), req(disk_gb=10), "disk: needs 10 GiB, 5 free of 100"),
    ("cpu above threshold", lambda: host("h", cpu_percent=90.0), req(), "cpu utilization 90.0% is above the threshold 80%"),
    # 2 vCPUs at 100/4 % of a CPU each on 8 CPUs: 6.25 % host-wide
    ("cpu projected", lambda: host("h", cpu_percent=75.0), req(vcpus=2),
     "cpu utilization would reach 81.2% (75.0% now + 6.2% projected for the VM), above the threshold 80%"),
    ("memory above threshold", lambda: host("h", memory_percent=86.0), req(), "memory utilization 86.0% is above"),
    # 2048 MiB of 16896: 12.1 %
    ("memory projected", lambda: host("h", memory_percent=80.0), req(memory_mb=2048),
     "memory utilization would reach 92.1% (80.0% now + 12.1% projected for the VM)"),
]


@pytest.mark.parametrize("make, request_, expected", [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS])
def test_every_rejection_reason(make, request_, expected):
    hosts = [make()]
    if request_.hosts:
        hosts.append(host("other", maintenance=True))
    rejected, message = rejected_reasons(hosts, request_)
    assert any(expected in reason for reason in rejected["h"]), rejected["h"]
    assert "h: " in message and expected in message


def test_affinity_rejects_hosts_without_members():
    hosts = [host("a", domains=[dom("db1", "db")]), host("b")]
    placement = P.Fleet(hosts).place(req(group="db", policy="affinity"), explain=True)
    assert placement.host == "a"
    assert placement.rejected == {"b": ["affinity: group db runs on a"]}


def test_name_on_target_rejects_it_for_migration():
    hosts = [host("a", domains=[dom("vm")]), host("b", domains=[dom("vm")]), host("c", used_vcpus=30)]
    placement = P.Fleet(hosts).place(req(current_host="a", migrate=True), explain=True)
    assert placement.host == "c"
    assert placement.rejected["b"] == ["a domain named vm already exists here"]


def test_error_names_every_host_with_every_reason():
    hosts = [host("a", used_vcpus=31, used_disk_gb=100), host("b", maintenance=True), P.Host.from_facts("c", None)]
    rejected, message = rejected_reasons(hosts, req(vcpus=2, exclude=["a"]))
    assert set(rejected) == {"a", "b", "c"}
    assert rejected["a"][0] == "excluded by the request"
    assert [r.split(":")[0] for r in rejected["a"][1:]] == ["vcpus", "disk"]
    assert rejected["b"] == ["in maintenance (kvmfleet_maintenance)"]
    assert rejected["c"] == ["no facts gathered"]
    lines = message.splitlines()
    assert lines[0].startswith("no host can take vm (2 vCPUs, 2048 MiB, 10 GiB) among 3 hosts")
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["a", "b", "c"]


def test_creation_of_an_existing_name_is_a_conflict():
    hosts = [host("a"), host("b", domains=[dom("vm")])]
    with pytest.raises(Conflict) as err:
        P.Fleet(hosts).place(req())
    assert "already exists on b" in str(err.value)
    assert err.value.details == {"hosts": ["b"]}


def test_shrinking_is_not_checked_against_capacity_or_thresholds():
    overcommitted = host("a", used_vcpus=40, used_memory_mb=20000, cpu_percent=95.0, memory_percent=95.0,
                         domains=[dom("vm", vcpus=4, memory_mb=4096)])
    placement = P.Fleet([overcommitted]).place(req(vcpus=2, memory_mb=2048, current_host="a"))
    assert placement.host == "a"
    assert (placement.demand.vcpus, placement.demand.memory_mb, placement.demand.disk_gb) == (-2, -2048, 0)


# --------------------------------------------------------------------------- strategies

def strategy_cluster():
    # empty: nothing allocated; half: 50 % everywhere; cpu_heavy: 75 % cpu, 25 % memory and disk
    return [
        host("empty"),
        host("half", used_vcpus=16, used_memory_mb=8192, used_disk_gb=50),
        host("cpu_heavy", used_vcpus=24, used_memory_mb=4096, used_disk_gb=25),
    ]


@pytest.mark.parametrize("strategy, expected", [("spread", "empty"), ("pack", "half"), ("balanced", "empty")])
def test_strategy_choice(strategy, expected):
    # after a 2 vCPU / 2048 MiB / 10 GiB VM, mean allocated: empty .075, half .575, cpu_heavy .4
    fleet = P.Fleet(strategy_cluster())
    placement = fleet.place(req(strategy=strategy), explain=True)
    assert placement.host == expected
    scores = {name: b["score"] for name, b in placement.candidates.items()}
    assert sorted(scores, key=scores.get)[-1] == expected
    assert placement.explanation.startswith("%s chosen by %s" % (expected, strategy))


def complement_cluster():
    # same mean allocated fraction (.3), opposite imbalance
    return [host("cpu_heavy", used_vcpus=16, used_memory_mb=2048, used_disk_gb=30),
            host("mem_heavy", used_vcpus=4, used_memory_mb=8192, used_disk_gb=30)]


@pytest.mark.parametrize("use_index", [True, False])
@pytest.mark.parametrize("strategy, size, expected", [
    # memory-heavy VM (1 vCPU, 4 GiB): complements cpu_heavy -> (.53, .375, .35) vs (.16, .75, .35)
    ("balanced", (1, 4096, 5), "cpu_heavy"),
    # cpu-heavy VM (4 vCPUs, 512 MiB): complements mem_heavy -> (.25, .53, .35) vs (.625, .16, .35)
    ("balanced", (4, 512, 5), "mem_heavy"),
    # spread and pack see equal means both times: the tie goes to the first name
    ("spread", (4, 512, 5), "cpu_heavy"),
    ("pack", (4, 512, 5), "cpu_heavy"),
])
def test_balanced_prefers_the_complementing_host(use_index, strategy, size, expected):
    fleet = P.Fleet(complement_cluster(), use_index=use_index)
    assert fleet.place(req("vm", *size, strategy=strategy)).host == expected


def test_balanced_formula():
    # u = (0.75, 0.5, 0.25): mean .5, std sqrt(1/24); score = .5 - .2041
    assert P.score_balanced(0.75, 0.5, 0.25) == pytest.approx(0.5 - (1 / 24) ** 0.5)
    assert P.score_spread(0.75, 0.5, 0.25) == pytest.approx(0.5)
    assert P.score_pack(0.75, 0.5, 0.25) == pytest.approx(0.5)
    # equal mean, less imbalance wins
    assert P.score_balanced(0.5, 0.5, 0.5) > P.score_balanced(0.75, 0.5, 0.25)


def test_breakdown_reports_terms_and_fractions():
    placement = P.Fleet(complement_cluster()).place(req(vcpus=1, memory_mb=4096, disk_gb=5))
    b = placement.breakdown
    assert placement.host == "cpu_heavy"
    assert b["allocated_before"] == {"cpu": 0.5, "memory": 0.125, "disk": 0.3}
    assert b["allocated_after"] == {"cpu": 0.5312, "memory": 0.375, "disk": 0.35}
    assert b["terms"]["free"] - b["terms"]["imbalance"] == pytest.approx(b["score"], abs=1e-5)
    # 1 vCPU at 100 / 4 % of one of 8 CPUs; 4096 of 16896 MiB
    assert (b["demand"]["cpu_percent"], b["demand"]["memory_percent"]) == (3.12, 24.24)


@pytest.mark.parametrize("strategy", P.STRATEGIES)
@pytest.mark.parametrize("use_index", [True, False])
def test_ties_go_to_the_first_name(strategy, use_index):
    hosts = [host(name) for name in ("n3", "n1", "n2", "n10")]
    fleet = P.Fleet(hosts, use_index=use_index)
    assert fleet.place(req(strategy=strategy)).host == "n1"
    assert fleet.place(req(strategy=strategy, exclude=["n1"])).host == "n10"


# --------------------------------------------------------------------------- groups

def test_anti_affinity_spreads_a_group_and_ignores_the_vm_itself():
    hosts = [host("a", domains=[dom("web1", "web")]), host("b"), host("c", used_vcpus=8)]
    fleet = P.Fleet(hosts)
    assert fleet.place(req("web2", group="web", strategy="pack"), commit=True).host == "c"
    assert fleet.place(req("web3", group="web")).host == "b"
    # resizing web1 itself in place is not blocked by its own membership
    assert fleet.place(req("web1", vcpus=3, group="web", current_host="a")).host == "a"


def test_affinity_keeps_a_group_together_and_first_member_goes_anywhere():
    fleet = P.Fleet([host("a"), host("b", used_vcpus=8)])
    first = fleet.place(req("db1", group="db", policy="affinity", strategy="pack"), commit=True)
    assert first.host == "b"
    assert fleet.place(req("db2", group="db", policy="affinity", strategy="spread")).host == "b"


def test_affinity_source_only_host_means_no_migration():
    fleet = P.Fleet([host("a", domains=[dom("db1", "db"), dom("db2", "db")]), host("b")])
    with pytest.raises(PlacementError) as err:
        fleet.place(req("db1", group="db", policy="affinity", current_host="a", migrate=True))
    assert err.value.details["rejected"]["b"] == ["affinity: group db runs on a"]


# --------------------------------------------------------------------------- migration and resize

def test_migration_excludes_source_and_counts_full_demand():
    source = host("a", used_vcpus=4, used_memory_mb=4096, used_disk_gb=20, cpu_percent=50.0,
                  domains=[dom("vm", vcpus=4, memory_mb=4096, disk_gb=20, cpu_percent=200.0)])
    small = host("b", used_memory_mb=14000)        # 2384 MiB free: too small for 4096
    big = host("c", used_vcpus=30)                 # 2 vCPUs free: too small for 4
    roomy = host("d", used_vcpus=8, cpu_percent=50.0)
    fleet = P.Fleet([source, small, big, roomy])
    request = req("vm", vcpus=4, memory_mb=4096, disk_gb=20, current_host="a", migrate=True, cpu_percent=200.0)
    placement = fleet.place(request, explain=True)
    assert placement.host == "d"
    assert placement.rejected["a"] == ["current host of vm (migration source)"]
    assert placement.rejected["b"][0].startswith("memory: needs 4096 MiB")
    assert placement.rejected["c"][0].startswith("vcpus: needs 4")
    # measured load: 200 % of one CPU on 8 CPUs = 25 % host-wide
    assert placement.breakdown["demand"]["cpu_percent"] == 25.0
    fleet.apply(placement)
    a, d = fleet.by_name["a"], fleet.by_name["d"]
    assert (a.used_cpu, a.used_mem, a.used_disk, "vm" in a.domains) == (0, 0, 0, False)
    assert (d.used_cpu, d.used_mem, d.used_disk, "vm" in d.domains) == (12, 4096, 20, True)
    assert a.cpu_percent == pytest.approx(25.0) and d.cpu_percent == pytest.approx(75.0)
    assert fleet.domain_hosts["vm"] == {"d"}


def test_migration_size_comes_from_the_domain_when_not_given():
    fleet = P.Fleet([host("a", domains=[dom("vm", vcpus=3, memory_mb=3000, disk_gb=7)]), host("b")])
    placement = fleet.place(P.Request("vm", 3, 3000, 7, current_host="a", migrate=True))
    assert placement.host == "b"
    assert (placement.demand.vcpus, placement.demand.memory_mb, placement.demand.disk_gb) == (3, 3000, 7)


def test_resize_counts_only_the_delta_on_its_own_host():
    # a has 4 vCPUs free: growing the VM 4 -> 8 needs 4 more, though 8 would not fit as new demand
    a = host("a", used_vcpus=28, domains=[dom("vm", vcpus=4, memory_mb=2048, disk_gb=10)])
    fleet = P.Fleet([a, host("b")])
    placement = fleet.place(req("vm", vcpus=8, memory_mb=2048, disk_gb=10, current_host="a"))
    assert placement.host == "a"
    assert (placement.demand.vcpus, placement.demand.memory_mb, placement.demand.disk_gb) == (4, 0, 0)
    assert "resized in place (+4 vCPUs, +0 MiB, +0 GiB)" in placement.explanation
    fleet.apply(placement)
    assert fleet.by_name["a"].used_cpu == 32
    assert fleet.by_name["a"].domains["vm"].vcpus == 8


@pytest.mark.parametrize("use_index", [True, False])
def test_resize_moves_when_the_delta_does_not_fit(use_index):
    a = host("a", used_vcpus=30, domains=[dom("vm", vcpus=4, memory_mb=2048, disk_gb=10)])
    fleet = P.Fleet([a, host("b", used_vcpus=20), host("c", used_vcpus=22)], use_index=use_index)
    placement = fleet.place(req("vm", vcpus=8, memory_mb=2048, disk_gb=10, current_host="a", strategy="pack"))
    assert placement.host == "c"
    assert placement.demand.vcpus == 8          # full new size on another host
    assert "moves from a" in placement.explanation
    with pytest.raises(PlacementError) as err:
        fleet.place(req("vm", vcpus=8, memory_mb=2048, disk_gb=10, current_host="a", hosts=["a"]))
    assert err.value.details["rejected"]["a"] == ["vcpus: needs 4 more, 2 free of 32 (8 CPUs x 4, 30 allocated)"]


# --------------------------------------------------------------------------- batch

def test_batch_updates_state_between_decisions():
    fleet = P.Fleet([host("a"), host("b")])
    requests = [req("w%d" % i, vcpus=8, memory_mb=4096, disk_gb=10, group="web") for i in range(3)]
    # 12 more vCPUs: 37.5 % projected on top of a's 25 %
    requests.append(req("big", vcpus=12, memory_mb=1024, disk_gb=1))
    results = fleet.place_batch(requests)
    assert [getattr(r, "host", None) for r in results] == ["a", "b", None, "a"]
    assert isinstance(results[2], PlacementError)
    assert set(results[2].details["rejected"]) == {"a", "b"}
    assert fleet.by_name["a"].used_cpu == 20 and fleet.by_name["b"].used_cpu == 8
    assert fleet.group_hosts("web", None) == ["a", "b"]


def test_batch_reports_conflicts_and_continues():
    results = P.Fleet([host("a")]).place_batch([req("x"), req("x"), req("y")])
    assert isinstance(results[1], Conflict)
    assert [getattr(r, "host", None) for r in results] == ["a", None, "a"]


# --------------------------------------------------------------------------- index == exhaustive

def random_hosts(rng, count, shapes):
    hosts = []
    for i in range(count):
        cpus, memory, disk = rng.choice(shapes)
        hosts.append(P.Host(
            "h%03d" % rng.randrange(10 ** 3) + "-%d" % i, cpus=cpus, memory_mb=memory, storage_total_gb=disk,
            virt_types=rng.choice([["kvm", "qemu"], ["qemu"], ["kvm", "qemu"]]),
            used_vcpus=rng.choice([0, 0, rng.randint(0, cpus * 4)]),
            used_memory_mb=rng.choice([0, rng.randint(0, memory)]),
            used_disk_gb=rng.choice([0, rng.randint(0, disk)]),
            cpu_percent=rng.choice([0.0, rng.uniform(0, 100)]),
            memory_percent=rng.choice([0.0, rng.uniform(0, 100)]),
            maintenance=rng.random() < 0.05,
            cpu_allocation_ratio=rng.choice([4.0, 4.0, 2.0]),
            domains=[dom("d%d-%d" % (i, k), rng.choice([None, "g1", "g2"])) for k in range(rng.randint(0, 2))],
        ))
    return hosts


def random_request(rng, n, names):
    vcpus, memory, disk = rng.choice([(1, 1024, 10), (2, 4096, 20), (4, 8192, 40), (8, 32768, 100),
                                      (2, 2048, 0), (16, 16384, 80)])
    kw = dict(strategy=rng.choice(P.STRATEGIES))
    if rng.random() < 0.2:
        kw["virt_type"] = rng.choice(["kvm", "qemu"])
    if rng.random() < 0.2:
        kw["exclude"] = rng.sample(names, 3)
    if rng.random() < 0.3:
        kw["group"] = rng.choice(["g1", "g2"])
    if rng.random() < 0.2:
        kw["cpu_percent"] = rng.uniform(0, 100 * vcpus)
    return P.Request("vm%d" % n, vcpus, memory, disk, **kw)


def compare_index_with_exhaustive(indexed, exhaustive, requests):
    """Place ``requests`` in order on both fleets; the same host and score, or the same error, each time."""
    compared = rejected = 0
    for request in requests:
        got = indexed.place_batch([request])[0]
        want = exhaustive.place_batch([request])[0]
        if isinstance(want, P.Placement):
            assert isinstance(got, P.Placement), (request, got)
            assert (got.host, got.score) == (want.host, want.score), request
            compared += 1
        else:
            assert type(got) is type(want) and got.details == want.details
            rejected += 1
    return compared, rejected


@pytest.mark.parametrize("seed", range(12))
def test_index_equals_exhaustive_evaluation(seed):
    rng = random.Random(seed)
    shapes = rng.choice([
        [(8, 32768, 500)],                                   # one shape: many exact ties
        [(8, 32768, 500), (16, 65536, 1000), (32, 131072, 1000)],
        [(rng.choice([4, 8, 16]), rng.choice([16384, 65536]), rng.choice([200, 800])) for _unused in range(6)],
    ])
    count = rng.choice([20, 60, 150])
    hosts_a = random_hosts(random.Random(seed), count, shapes)
    hosts_b = random_hosts(random.Random(seed), count, shapes)
    indexed = P.Fleet(hosts_a, rebuild_every=rng.choice([5, 50, 1000]))
    exhaustive = P.Fleet(hosts_b, use_index=False)
    names = [h.name for h in hosts_a]
    requests = [random_request(rng, n, names) for n in range(250)]
    compared, _rejected = compare_index_with_exhaustive(indexed, exhaustive, requests)
    assert compared > 25


def test_index_ties_in_a_homogeneous_fleet_follow_names():
    hosts = [host("n%04d" % i) for i in range(500)]
    fleet = P.Fleet(hosts)
    reference = P.Fleet([host("n%04d" % i) for i in range(500)], use_index=False)
    for i in range(300):
        request = req("vm%d" % i, strategy=P.STRATEGIES[i % 3])
        assert fleet.place(request, commit=True).host == reference.place(request, commit=True).host


@pytest.mark.parametrize("seed", range(3))
def test_fits_agrees_with_the_reasons(seed):
    rng = random.Random(seed)
    judged = [rule for rule in P.FILTERS if rule.name in ("capacity", "live utilization")]
    for h in random_hosts(rng, 200, [(8, 32768, 500), (2, 4096, 50)]):
        if not h.usable:
            continue
        for _unused in range(5):
            vcpus, memory = rng.randint(-4, 16), rng.randint(-4096, 40000)
            measured = rng.random() < 0.3
            demand = P.Demand(vcpus, memory, rng.randint(-10, 600),
                              rng.uniform(0, 800) if measured else 100.0 * vcpus, measured, False)
            for rule in judged:
                assert rule.passes(h, demand, True) == (not rule.reasons(h, demand, True)), rule.name


# --------------------------------------------------------------------------- model and validation

def test_host_from_facts_reads_schema_and_inventory():
    facts = {
        "reachable": True, "virt_types": ["qemu", "kvm"], "cpus": 2, "memory_mb": 3900,
        "storage": {"path": "/srv", "total_gb": 250, "free_gb": 80},
        "allocated": {"vcpus": 6, "memory_mb": 4096, "disk_gb": 30, "domains": 3},
        "utilization": {"cpu_percent": None, "memory_percent": 46.2},
        "domains": [{"name": "web1", "group": "web", "vcpus": 2, "memory_mb": 1024, "cpu_percent": 12.0,
                     "disks": [{"capacity_gb": 10}, {"capacity_gb": 5}]}],
    }
    h = P.Host.from_facts("node1", facts, {"kvmfleet_cpu_allocation_ratio": 8, "kvmfleet_maintenance": "yes",
                                           "kvmfleet_reserved_host_memory_mb": 1024})
    assert (h.cap_cpu, h.cap_mem, h.cap_disk) == (16.0, 2876.0, 250.0)
    assert (h.used_cpu, h.used_mem, h.used_disk) == (6, 4096, 30)
    assert h.cpu_percent == 0.0 and h.memory_percent == 46.2
    assert h.maintenance and not h.usable
    assert h.domains["web1"].disk_gb == 15 and h.domains["web1"].group == "web"
    assert h.virt_types == ("kvm", "qemu")


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="", vcpus=1, memory_mb=1), "needs a name"),
    (dict(name="x", vcpus=0, memory_mb=1), "vcpus of x must be >= 1"),
    (dict(name="x", vcpus=1.5, memory_mb=1), "must be an integer"),
    (dict(name="x", vcpus=1, memory_mb=1, disk_gb=-1), "disk_gb of x must be >= 0"),
    (dict(name="x", vcpus=1, memory_mb=1, strategy="random"), "strategy of x must be one of"),
    (dict(name="x", vcpus=1, memory_mb=1, policy="soft"), "policy of x must be one of"),
    (dict(name="x", vcpus=1, memory_mb=1, migrate=True), "needs its current_host"),
    (dict(name="x", vcpus=1, memory_mb=1, hosts=[]), "pins no host"),
])
def test_request_validation(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        P.Request(**kwargs)


def test_request_from_dict_rejects_unknown_keys():
    with pytest.raises(ValidationError, match="unknown request keys: cpu"):
        P.Request.from_dict({"name": "x", "vcpus": 1, "memory_mb": 1, "cpu": 2})


@pytest.mark.parametrize("request_, message", [
    (req(hosts=["nowhere"]), "pinned host nowhere"),
    (req(current_host="nowhere"), "current_host nowhere"),
    (req(current_host="a"), "vm is not a domain of a"),
])
def test_request_against_fleet_validation(request_, message):
    with pytest.raises(ValidationError, match=message):
        P.Fleet([host("a")]).place(request_)


def test_bad_inventory_ratio():
    with pytest.raises(ValidationError, match="cpu allocation ratio of a must be > 0"):
        P.Host.from_facts("a", {"cpus": 2}, {"kvmfleet_cpu_allocation_ratio": 0})


def test_cpu_source_vms_measures_a_host_by_its_own_vms():
    facts = dict(reachable=True, cpus=2, memory_mb=8192, memory_free_mb=6000, virt_types=["qemu"],
                 storage=dict(total_gb=100, free_gb=90), allocated=dict(vcpus=2, memory_mb=512, disk_gb=2),
                 utilization=dict(cpu_percent=100.0, memory_percent=20.0),
                 domains=[dict(name="a", state="running", vcpus=1, memory_mb=256, cpu_percent=100.0),
                          dict(name="b", state="running", vcpus=1, memory_mb=256, cpu_percent=50.0)])
    by_host = P.Host.from_facts("n1", facts, {})
    by_vms = P.Host.from_facts("n1", facts, {"kvmfleet_cpu_source": "vms"})
    assert by_host.cpu_percent == 100.0 and by_vms.cpu_percent == 75.0
    with pytest.raises(ValidationError, match="kvmfleet_cpu_source of n1 must be one of host, vms"):
        P.Host.from_facts("n1", facts, {"kvmfleet_cpu_source": "guess"})


# --------------------------------------------------------------------------- host labels

def test_labels_pass_when_every_requested_label_matches():
    hosts = [host("a", labels={"rack": "r1"}), host("b", labels={"rack": "r2", "ssd": "true"}),
             host("c", labels={"rack": "r2", "ssd": "false"})]
    placement = P.Fleet(hosts).place(req(labels={"rack": "r2", "ssd": "true"}), explain=True)
    assert placement.host == "b"
    assert placement.rejected == {
        "a": ["label rack is r1, not r2 (kvmfleet_host_labels)", "label ssd=true missing (kvmfleet_host_labels)"],
        "c": ["label ssd is false, not true (kvmfleet_host_labels)"],
    }


@pytest.mark.parametrize("use_index", [True, False])
def test_labels_reject_every_host_without_them(use_index):
    fleet = P.Fleet([host("a"), host("b", labels={"rack": "r1"})], use_index=use_index)
    with pytest.raises(PlacementError) as err:
        fleet.place(req(labels={"rack": "r9"}))
    assert err.value.details["rejected"] == {"a": ["label rack=r9 missing (kvmfleet_host_labels)"],
                                             "b": ["label rack is r1, not r9 (kvmfleet_host_labels)"]}
    assert fleet.place(req(labels={"rack": "r1"})).host == "b"
    assert fleet.place(req(labels={})).host == "a"           # no labels asked: no constraint


def test_labels_come_from_the_inventory():
    facts = {"cpus": 8, "memory_mb": 16896, "storage": {"total_gb": 100}, "virt_types": ["kvm"]}
    h = P.Host.from_facts("n1", facts, {"kvmfleet_host_labels": {"zone": "east"}})
    assert h.labels == {"zone": "east"}
    assert P.Host.from_facts("n2", facts, {}).labels == {}


@pytest.mark.parametrize("make, message", [
    (lambda: P.Host("h", labels=["rack"]), "kvmfleet_host_labels of h must be a dict of label names to strings"),
    (lambda: P.Host("h", labels={"rack": 1}), "kvmfleet_host_labels of h: label rack must be a string, got 1"),
    (lambda: P.Host("h", labels={1: "x"}), "label names must be non-empty strings, got 1"),
    (lambda: req(labels="rack=r1"), "labels of vm must be a dict of label names to strings"),
    (lambda: req(labels={"rack": None}), "labels of vm: label rack must be a string, got None"),
])
def test_labels_validation(make, message):
    with pytest.raises(ValidationError, match=message):
        make()


@pytest.mark.parametrize("seed", range(6))
def test_index_equals_exhaustive_with_labels(seed):
    rng = random.Random(seed)
    shapes = [(8, 32768, 500), (16, 65536, 1000)]
    values = {"rack": ["r1", "r2", "r3"], "ssd": ["true", "false"], "zone": ["east"]}

    def labelled(hosts):
        pick = random.Random(seed + 100)
        for h in hosts:
            h.labels = {k: pick.choice(v) for k, v in values.items() if pick.random() < 0.6}
            h.label_pairs = frozenset(h.labels.items())
        return hosts

    hosts_a = labelled(random_hosts(random.Random(seed), 120, shapes))
    hosts_b = labelled(random_hosts(random.Random(seed), 120, shapes))
    indexed = P.Fleet(hosts_a, rebuild_every=rng.choice([5, 50, 1000]))
    exhaustive = P.Fleet(hosts_b, use_index=False)
    names = [h.name for h in hosts_a]
    requests = []
    for n in range(200):
        request = random_request(rng, n, names)
        if rng.random() < 0.7:
            request.labels = {k: rng.choice(v) for k, v in values.items() if rng.random() < 0.5} or None
        requests.append(request)
    compared, rejected = compare_index_with_exhaustive(indexed, exhaustive, requests)
    assert compared > 25 and rejected > 0


# --------------------------------------------------------------------------- live-utilization thresholds

def facts_of(cpu_percent, memory_percent=10.0):
    return {"reachable": True, "virt_types": ["kvm", "qemu"], "cpus": 8, "memory_mb": 16896,
            "storage": {"total_gb": 100}, "allocated": {"vcpus": 0, "memory_mb": 0, "disk_gb": 0},
            "utilization": {"cpu_percent": cpu_percent, "memory_percent": memory_percent}, "domains": []}


@pytest.mark.parametrize("variable", ["kvmfleet_cpu_threshold", "kvmfleet_memory_threshold"])
@pytest.mark.parametrize("value", [150, -5, 0, 100.01, "hot", True, "on", [80]])
def test_a_placement_threshold_outside_0_100_is_refused_naming_variable_and_host(variable, value):
    with pytest.raises(ValidationError) as err:
        P.Host.from_facts("node2", facts_of(10.0), {variable: value})
    assert str(err.value) == ("%s of node2 must be a percentage with 0 < value <= 100, or off; got %r"
                              % (variable, value))


@pytest.mark.parametrize("value, expected", [(100, 100.0), ("0.5", 0.5), (None, 80.0), ("off", P.THRESHOLD_OFF),
                                             ("OFF", P.THRESHOLD_OFF), (False, P.THRESHOLD_OFF),
                                             ("false", P.THRESHOLD_OFF)])
def test_placement_threshold_values(value, expected):
    assert P.Host.from_facts("node1", facts_of(10.0), {"kvmfleet_cpu_threshold": value}).cpu_threshold == expected


def test_a_threshold_that_is_off_turns_the_live_check_off_for_that_resource_only():
    busy = {"kvmfleet_cpu_threshold": "off"}
    hosts = [P.Host.from_facts("busy", facts_of(100.0), busy), P.Host.from_facts("hot", facts_of(99.0))]
    placed = P.Fleet(hosts).place(req(vcpus=8))
    assert placed.host == "busy"
    # allocation still limits a host whose live check is off
    with pytest.raises(PlacementError, match="vcpus: needs 33, 32 free"):
        P.Fleet([P.Host.from_facts("busy", facts_of(100.0), busy)]).place(req(vcpus=33))
    # and memory keeps its own threshold
    rejected, _msg = rejected_reasons([P.Host.from_facts("busy", facts_of(100.0, 99.0), busy)], req())
    assert rejected["busy"] == ["memory utilization 99.0% is above the threshold 85%"]


@pytest.mark.parametrize("seed", range(4))
def test_index_equals_exhaustive_with_thresholds_off(seed):
    shapes = [(8, 32768, 500), (16, 65536, 1000)]

    def some_off(hosts):
        pick = random.Random(seed + 200)
        for h in hosts:
            if pick.random() < 0.3:
                h.cpu_threshold = P.THRESHOLD_OFF
            if pick.random() < 0.2:
                h.memory_threshold = P.THRESHOLD_OFF
            h.refresh()
        return hosts

    hosts_a = some_off(random_hosts(random.Random(seed), 100, shapes))
    hosts_b = some_off(random_hosts(random.Random(seed), 100, shapes))
    rng = random.Random(seed)
    indexed = P.Fleet(hosts_a, rebuild_every=rng.choice([5, 50, 1000]))
    exhaustive = P.Fleet(hosts_b, use_index=False)
    names = [h.name for h in hosts_a]
    requests = [random_request(rng, n, names) for n in range(200)]
    compared, _rejected = compare_index_with_exhaustive(indexed, exhaustive, requests)
    assert compared > 25
