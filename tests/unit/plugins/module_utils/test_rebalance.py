# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The patrol's pure planner: hotness over observations, least-cost covers, targets, bounces,
caps, unreachable hosts, autoscale and consolidation; the ranges of its options; and one test per
rule (cooldown, move history, never back, managed_only, never onto an empty host) that fails
when the rule is deleted."""

import itertools
import json
import random

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance import api as R
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError


def dom(name, cpu=10.0, memory_mb=1024, vcpus=1, vcpus_max=4, group=None, state="running", managed=True, **extra):
    d = {"name": name, "uuid": "u-" + name, "state": state, "managed": managed, "group": group,
         "vcpus": vcpus, "vcpus_max": vcpus_max, "memory_mb": memory_mb, "memory_max_mb": 4 * memory_mb,
         "cpu_percent": cpu, "disks": [{"target": "vda", "capacity_gb": 2}], "macs": [], "addresses": []}
    d.update(extra)
    return d


def facts(domains=(), cpus=4, memory_mb=16896, cpu=None, mem=None, maintenance=False):
    """4 CPUs (16 vCPUs), 16 GiB usable. cpu: host-wide percent (default: the domains' sum)."""
    domains = list(domains)
    if cpu is None:
        cpu = sum(d["cpu_percent"] or 0 for d in domains if d["state"] == "running") / cpus
    if mem is None:
        mem = 100.0 * sum(d["memory_mb"] for d in domains) / memory_mb
    return {"reachable": True, "error": None, "hostname": "x", "virt_types": ["qemu", "kvm"], "cpus": cpus,
            "memory_mb": memory_mb, "memory_free_mb": 0, "maintenance": maintenance,
            "storage": {"path": "/srv", "total_gb": 500, "free_gb": 400},
            "allocated": {"vcpus": sum(d["vcpus"] for d in domains), "memory_mb": sum(d["memory_mb"] for d in domains),
                          "disk_gb": 2 * len(domains), "domains": len(domains)},
            "utilization": {"cpu_percent": cpu, "memory_percent": mem, "sample_seconds": 1.0},
            "domains": domains}


def hot_cluster():
    # node1: 4 x 90 % of one CPU = 90 % host-wide; node2, node3 idle.
    return {"node1": facts([dom("a", 90), dom("b", 90), dom("c", 90), dom("d", 90)]),
            "node2": facts([dom("e", 20)]), "node3": facts([])}


def run(f, inv=None, history=None, now=1000.0, **opts):
    opts.setdefault("hot_observations", 1)
    return R.plan(f, inv, history, now=now, **opts)


def apply(f, result):
    """The cluster after the plan's migrations (loads move with the VMs)."""
    f = {n: (None if v is None else dict(v, domains=list(v["domains"]))) for n, v in f.items()}
    for a in result["actions"]:
        if a["action"] != "migrate":
            continue
        d = next(x for x in f[a["from"]]["domains"] if x["name"] == a["vm"])
        f[a["from"]]["domains"].remove(d)
        f[a["to"]]["domains"].append(d)
    return {n: (None if v is None else facts(v["domains"], v["cpus"], v["memory_mb"])) for n, v in f.items()}


# --------------------------------------------------------------------------- min_cover

def brute(items, nc, nm):
    for k in range(len(items) + 1):
        best = None
        for combo in itertools.combinations(range(len(items)), k):
            if sum(items[i][0] for i in combo) + 1e-9 >= nc and sum(items[i][1] for i in combo) + 1e-9 >= nm:
                cost = sum(items[i][2] for i in combo)
                if best is None or cost < best[0] - 1e-9:
                    best = (cost, combo)
        if best:
            return k, best[0]
    return None


@pytest.mark.parametrize("seed", range(40))
def test_min_cover_is_exact(seed):
    rng = random.Random(seed)
    items = [(rng.choice([0, 1, 5, 10, 20, 40]), rng.choice([0, 2, 8, 16]), rng.choice([512, 1024, 2048, 8192]))
             for _unused in range(rng.randint(1, 9))]
    nc, nm = rng.uniform(0, 60), rng.choice([0, 0, 10, 30])
    picked, exact = R.min_cover(items, nc, nm)
    want = brute(items, nc, nm)
    assert exact
    if want is None:
        assert picked is None
    else:
        assert len(picked) == want[0]
        assert sum(items[i][2] for i in picked) == pytest.approx(want[1])


def test_min_cover_prefers_few_then_cheap():
    items = [(10, 0, 100), (10, 0, 100), (20, 0, 5000), (20, 0, 3000)]
    assert R.min_cover(items, 20, 0) == ([3], True)
    assert R.min_cover(items, 0, 0) == ([], True)
    assert R.min_cover(items, 100, 0) == (None, True)


def test_min_cover_falls_back_to_greedy_when_the_search_is_cut():
    items = [(1, 0, 1)] * 30
    picked, exact = R.min_cover(items, 12, 0, search_limit=5)
    assert not exact and len(picked) == 12


def test_migration_cost_grows_with_dirty_rate():
    assert R.migration_cost(1024) == 1024
    assert R.migration_cost(1024, 500, 1000) == pytest.approx(2048)
    assert R.migration_cost(1024, 5000, 1000) == pytest.approx(10240)


# --------------------------------------------------------------------------- hotness

def test_a_hot_host_sheds_to_under_threshold_and_targets_stay_under():
    f = hot_cluster()
    result = run(f)
    assert result["hot"] == ["node1"]
    moves = [a for a in result["actions"] if a["action"] == "migrate"]
    # 90 % -> under 80 % needs one VM of 22.5 points
    assert len(moves) == 1 and moves[0]["from"] == "node1" and moves[0]["to"] in ("node2", "node3")
    assert result["after"]["node1"]["cpu_percent"] <= 80
    assert all(v["cpu_percent"] <= 80 for v in result["after"].values())
    assert result["left_hot"] == []
    assert "node1 hot (cpu 90.0% > 80%" in moves[0]["why"]
    # the cluster after the moves: a second run plans nothing
    again = run(apply(f, result), history=result["history"], now=1060.0)
    assert again["actions"] == [] and again["hot"] == []


def test_hot_needs_k_consecutive_observations():
    f = hot_cluster()
    first = run(f, hot_observations=3, now=1000.0)
    assert first["hot"] == [] and first["actions"] == []
    assert any("1 of the 3 consecutive observations" in n for n in first["notes"])
    second = run(f, history=first["history"], hot_observations=3, now=1060.0)
    assert second["hot"] == []
    third = run(f, history=second["history"], hot_observations=3, now=1120.0)
    assert third["hot"] == ["node1"] and third["moves"] == 1


def test_a_cool_observation_breaks_the_streak_and_old_ones_are_forgotten():
    hot = hot_cluster()
    cool = {n: facts(v["domains"], cpu=10.0) for n, v in hot.items()}
    h = run(hot, hot_observations=2, now=1000.0)["history"]
    h = run(cool, history=h, hot_observations=2, now=1060.0)["history"]
    assert run(hot, history=h, hot_observations=2, now=1120.0)["hot"] == []
    # two hot observations, but the first is older than max_age_seconds
    h = run(hot, hot_observations=2, now=1000.0)["history"]
    assert run(hot, history=h, hot_observations=2, now=5000.0, max_age_seconds=1800)["hot"] == []
    assert run(hot, history=h, hot_observations=2, now=1500.0, max_age_seconds=1800)["hot"] == ["node1"]


def test_memory_hot_host():
    f = {"node1": facts([dom("big", 5, memory_mb=6144), dom("m1", 5, memory_mb=4096), dom("m2", 5, memory_mb=4096)]),
         "node2": facts([])}
    # 14336 / 16896 = 84.8 %: under the default 85 %, over a patrol threshold of 60 %
    assert run(f)["hot"] == []
    inv = {n: {"kvmfleet_patrol_memory_threshold": 60} for n in f}
    result = run(f, inv)
    assert result["hosts"]["node1"]["hot_memory"] and not result["hosts"]["node1"]["hot_cpu"]
    moves = [a["vm"] for a in result["actions"]]
    # 84.8 % -> 60 % needs 24.8 points = 4195 MiB: the one 6 GiB VM is the only single cover
    assert moves == ["big"]


def test_least_migration_cost_among_equal_counts():
    f = {"node1": facts([dom("fat", 90, memory_mb=4096), dom("thin", 90, memory_mb=512),
                         dom("x", 90, memory_mb=1024), dom("y", 90, memory_mb=1024)]),
         "node2": facts([])}
    assert [a["vm"] for a in run(f)["actions"]] == ["thin"]
    # a dirty guest costs more to copy than its memory says
    f["node1"]["domains"][1]["dirty_rate_mib_s"] = 950
    assert [a["vm"] for a in run(f)["actions"]] == ["x"]


def test_vms_cpu_source_and_patrol_thresholds():
    # host-wide CPU says 100 % everywhere (a shared machine); the VMs say where the load is
    f = {"node1": facts([dom("a", 100), dom("b", 100)], cpus=2, cpu=100.0),
         "node2": facts([], cpus=2, cpu=100.0), "node3": facts([], cpus=2, cpu=100.0)}
    inv = {n: {"kvmfleet_cpu_threshold": 100, "kvmfleet_patrol_cpu_source": "vms",
               "kvmfleet_patrol_cpu_threshold": 60} for n in f}
    result = run(f, inv)
    assert result["hot"] == ["node1"]
    assert result["hosts"]["node1"]["cpu_percent"] == 100.0 and result["hosts"]["node2"]["cpu_percent"] == 0.0
    assert result["moves"] == 1 and result["after"]["node1"]["cpu_percent"] == 50.0
    # the field hypervisor_info reports wins over the computed sum
    f["node2"]["utilization"]["vm_cpu_percent"] = 70.0
    result = run(f, inv)
    assert result["actions"][0]["to"] == "node3"
    with pytest.raises(ValidationError):
        run(f, {"node1": {"kvmfleet_patrol_cpu_source": "guess"}})


# --------------------------------------------------------------------------- constraints

def test_anti_affinity_maintenance_and_unreachable_are_respected():
    f = hot_cluster()
    f["node2"] = facts([dom("e", 20, group="web")])
    for d in f["node1"]["domains"]:
        d["group"] = "web" if d["name"] != "d" else None
        d["cpu_percent"] = 110
    f["node1"]["domains"][3]["cpu_percent"] = 10  # 85 %: d alone (2.5 points) cannot cool node1
    f["node1"] = facts(f["node1"]["domains"])
    f["node4"] = None                              # unreachable: no facts
    f["node5"] = dict(facts([]), reachable=False, error="libvirt did not answer")
    inv = {"node3": {"kvmfleet_maintenance": True}}
    result = run(f, inv)
    assert result["unreachable"] == {"node4": "no facts gathered (host unreachable)", "node5": "libvirt did not answer"}
    assert any("node5 skipped" in n for n in result["notes"])
    # node2 holds a member of web, node3 is in maintenance, node4/5 unreachable: nowhere to go
    assert result["actions"] == [] and result["left_hot"] == ["node1"]
    assert "no target for" in result["hosts"]["node1"]["left"]
    # a maintenance mark reported by the host itself counts the same
    f["node3"] = facts([], maintenance=True)
    assert run(f)["actions"] == []
    f["node3"] = facts([])
    moved = run(f)["actions"]
    assert [(a["to"]) for a in moved] == ["node3"]


def test_no_bounce_cooldown_and_never_back():
    f = hot_cluster()
    first = run(f, now=1000.0)
    history = R.record_moves(first["history"], first["actions"], now=1000.0)
    vm = first["actions"][0]["vm"]
    assert history["moves"][vm]["from"] == "node1"
    # the VM's new host turns hot: the moved VM stays (cooldown), another one goes
    f2 = apply(f, first)
    target = first["actions"][0]["to"]
    f2[target] = facts(f2[target]["domains"] + [dom("z", 300)])
    second = run(f2, history=history, now=1100.0)
    assert vm not in [a["vm"] for a in second["actions"]]
    # after the cooldown it may move, but never back to node1 while the move is remembered
    third = run(f2, history=history, now=1100.0, cooldown_seconds=10)
    for a in third["actions"]:
        assert a["vm"] != vm or a["to"] != "node1"
    assert all(a["action"] == "migrate" for a in third["actions"])


def test_each_vm_moves_once_and_max_moves_caps_the_plan():
    f = {"node1": facts([dom("a%d" % i, 50) for i in range(8)]),   # 100 %
         "node2": facts([dom("b%d" % i, 50) for i in range(8)]),   # 100 %
         "node3": facts([]), "node4": facts([])}
    result = run(f, max_moves=3)
    assert result["moves"] == 3
    assert len({a["vm"] for a in result["actions"]}) == 3
    assert any("move cap reached" in n for n in result["notes"])
    assert result["left_hot"]
    full = run(f)
    assert full["left_hot"] == [] and full["moves"] == 4  # 100 % -> 80 %: two VMs of 12.5 points each
    assert run(f, max_moves=0)["actions"] == []


def test_unmanaged_and_stopped_domains_stay():
    f = {"node1": facts([dom("theirs", 200, managed=False), dom("off", 0, state="shutoff"), dom("ours", 200)]),
         "node2": facts([])}
    result = run(f)
    assert [a["vm"] for a in result["actions"]] == ["ours"]
    result = run(f, managed_only=False)
    assert len(result["actions"]) == 1


# --------------------------------------------------------------------------- autoscale

def test_autoscale_scales_a_saturated_vm_in_place_first():
    f = {"node1": facts([dom("busy", 195, vcpus=2, vcpus_max=4), dom("calm", 10)]), "node2": facts([])}
    result = run(f, autoscale=True)
    scale = [a for a in result["actions"] if a["action"] == "scale"]
    assert scale and scale[0]["vm"] == "busy" and scale[0]["vcpus"] == 3 and scale[0]["to"] == "node1"
    assert "saturated" in scale[0]["why"]
    assert "scale 2->3 vCPUs" in "\n".join(R.table(result))
    # without the option nothing scales; at its maximum it is only noted
    assert not [a for a in run(f)["actions"] if a["action"] == "scale"]
    f["node1"]["domains"][0]["vcpus_max"] = 2
    result = run(f, autoscale=True)
    assert not [a for a in result["actions"] if a["action"] == "scale"]
    assert any("at its maximum" in n for n in result["notes"])


def test_autoscale_needs_room_on_the_host_and_k_observations():
    # the host is at its vCPU capacity (4 CPUs x 4): no room to grow in place
    f = {"node1": facts([dom("busy", 100, vcpus=1)] + [dom("f%d" % i, 0, vcpus=5) for i in range(3)]),
         "node2": facts([])}
    result = run(f, autoscale=True)
    assert not result["actions"] and any("not scaled" in n for n in result["notes"])
    f = {"node1": facts([dom("busy", 100, vcpus=1)]), "node2": facts([])}
    first = run(f, autoscale=True, hot_observations=2, now=1000.0)
    assert first["actions"] == []
    second = run(f, autoscale=True, hot_observations=2, history=first["history"], now=1060.0)
    assert [a["action"] for a in second["actions"]] == ["scale"]


# --------------------------------------------------------------------------- consolidate

def test_consolidate_empties_light_hosts_whole():
    f = {"node1": facts([dom("a", 20), dom("b", 20)]),        # 10 %
         "node2": facts([dom("c", 40)]),                      # 10 %
         "node3": facts([dom("d", 200), dom("e", 40)]),       # 60 %: not light
         "node4": facts([])}
    result = run(f, mode="consolidate")
    assert result["emptied"] == ["node1", "node2"] or result["emptied"] == ["node2", "node1"]
    assert {a["from"] for a in result["actions"]} == {"node1", "node2"}
    assert all(a["to"] == "node3" for a in result["actions"])   # never the empty node4
    assert all(v["cpu_percent"] <= 80 for v in result["after"].values())
    assert any("node4 is already empty" in n for n in result["notes"])
    # min_hosts keeps VMs on at least that many hosts
    light = {"node1": facts([dom("a", 20)]), "node2": facts([dom("c", 20)])}
    assert len(run(light, mode="consolidate")["emptied"]) == 1
    assert run(light, mode="consolidate", min_hosts=2)["emptied"] == []


def test_consolidate_is_all_or_nothing_per_host():
    # node1's VMs do not all fit on node2 under the 80 % threshold: node1 stays as it was
    f = {"node1": facts([dom("a", 60), dom("b", 60)], cpu=15), "node2": facts([dom("c", 200)], cpu=55)}
    inv = {n: {"kvmfleet_patrol_cpu_source": "host"} for n in f}
    result = run(f, inv, mode="consolidate", low_cpu_threshold=40)
    assert result["emptied"] == [] and result["actions"] == []
    assert any("node1 not emptied" in n for n in result["notes"])


def test_options_are_checked():
    with pytest.raises(ValidationError):
        R.options_from(mode="shuffle")
    with pytest.raises(ValidationError):
        R.options_from(hot_observations=0)
    with pytest.raises(ValidationError):
        R.options_from(bogus=1)
    assert R.options_from(max_moves="3")["max_moves"] == 3


def test_history_survives_garbage_and_loads_report():
    assert R.clean_history("junk") == R.empty_history()
    assert R.clean_history({"version": 99}) == R.empty_history()
    h = R.record_moves(None, [{"vm": "a", "from": "n1", "to": "n2"}, {"vm": "b", "action": "scale", "from": "n1", "to": "n1"},
                              {"vm": "c", "from": "n1", "to": None}], now=5.0)
    assert list(h["moves"]) == ["a"]
    loads = R.loads_of(hot_cluster())
    assert loads["over"] == ["node1"] and loads["hosts"]["node1"]["cpu_percent"] == 90.0
    assert loads["spread"]["cpu"] > 0


def test_placement_cpu_source_is_the_default_source():
    f = {"node1": facts([dom("a", 100), dom("b", 100)], cpus=2, cpu=100.0),
         "node2": facts([], cpus=2, cpu=100.0)}
    inv = {n: {"kvmfleet_cpu_source": "vms", "kvmfleet_patrol_cpu_threshold": 60} for n in f}
    result = run(f, inv)
    assert result["hosts"]["node1"]["cpu_source"] == "vms" and result["moves"] == 1
    inv["node1"]["kvmfleet_patrol_cpu_source"] = "host"   # the patrol's own variable wins
    assert run(f, inv)["hosts"]["node1"]["cpu_source"] == "host"


def test_autoscale_step_follows_scale_vm_rules():
    f = {"node1": facts([dom("busy", 195, vcpus=2, vcpus_max=8)]), "node2": facts([])}
    scale = run(f, autoscale=True, autoscale_step="100%")["actions"][0]
    assert (scale["vcpus_from"], scale["vcpus"]) == (2, 4)
    f["node1"]["domains"][0]["vcpus_max"] = 3
    capped = run(f, autoscale=True, autoscale_step=20)["actions"][0]
    assert capped["vcpus"] == 3
    with pytest.raises(ValidationError):
        run(f, autoscale=True, autoscale_step="lots")


# --------------------------------------------------------------------------- ranges of the options

@pytest.mark.parametrize("option, value", [
    ("hot_observations", 0), ("hot_observations", 101), ("hot_observations", -5), ("hot_observations", True),
    ("keep_observations", 0), ("keep_observations", 1001),
    ("max_moves", -1), ("max_moves", 100001),
    ("min_hosts", 0), ("min_hosts", 100001),
    ("search_limit", -1), ("search_limit", 10 ** 8 + 1),
    ("cooldown_seconds", -1), ("cooldown_seconds", 7 * 86400 + 1), ("cooldown_seconds", float("nan")),
    ("max_age_seconds", 0), ("max_age_seconds", -60), ("max_age_seconds", float("inf")),
    ("vm_cpu_threshold", 0), ("vm_cpu_threshold", -5), ("vm_cpu_threshold", 150),
    ("low_cpu_threshold", 0), ("low_cpu_threshold", -5), ("low_cpu_threshold", 100.5),
    ("low_memory_threshold", 0), ("low_memory_threshold", 150),
    ("migration_bandwidth_mib_s", 0), ("migration_bandwidth_mib_s", -1000), ("migration_bandwidth_mib_s", 2e6),
    ("target_margin", -1), ("target_margin", 100),
])
def test_an_option_out_of_its_range_is_refused_naming_it(option, value):
    with pytest.raises(ValidationError) as err:
        R.options_from(**{option: value})
    assert str(err.value).startswith(option)
    assert err.value.details["option"] == option
    if not isinstance(value, bool):
        assert "out of range" in str(err.value) and "value" in str(err.value)


def test_the_message_names_option_value_and_range():
    with pytest.raises(ValidationError, match=r"^vm_cpu_threshold=150\.0 is out of range: must be a number with 0 < value <= 100$"):
        R.options_from(vm_cpu_threshold=150)
    with pytest.raises(ValidationError, match=r"^hot_observations=0 is out of range: must be an integer with 1 <= value <= 100$"):
        R.options_from(hot_observations=0)


@pytest.mark.parametrize("option, value", [
    ("hot_observations", 1), ("hot_observations", 100), ("max_moves", 0), ("min_hosts", 1), ("search_limit", 0),
    ("cooldown_seconds", 0), ("cooldown_seconds", 7 * 86400), ("max_age_seconds", 1), ("vm_cpu_threshold", 100),
    ("low_cpu_threshold", 0.5), ("low_memory_threshold", 100), ("migration_bandwidth_mib_s", 1), ("target_margin", 0),
    ("target_margin", 99.5),
])
def test_the_ends_of_each_range_are_accepted(option, value):
    assert R.options_from(**{option: value})[option] == value


@pytest.mark.parametrize("option, value", [
    ("mode", "shuffle"), ("strategy", "random"), ("autoscale_step", "lots"), ("autoscale_step", 0),
    ("autoscale_step", "-5"), ("autoscale_step", "2G"), ("max_moves", "many"), ("cooldown_seconds", "soon"),
])
def test_a_value_of_the_wrong_kind_is_refused_naming_the_option(option, value):
    with pytest.raises(ValidationError, match="^%s" % option):
        R.options_from(**{option: value})


def test_options_are_checked_before_anything_is_planned():
    # no VM is saturated and autoscale is off: the bad step is refused all the same
    with pytest.raises(ValidationError, match="autoscale_step"):
        run(hot_cluster(), autoscale_step="lots")


@pytest.mark.parametrize("variable", ["kvmfleet_patrol_cpu_threshold", "kvmfleet_patrol_memory_threshold",
                                      "kvmfleet_cpu_threshold", "kvmfleet_memory_threshold"])
@pytest.mark.parametrize("value", [150, -5, 0, 100.01, "hot", True])
def test_a_host_threshold_out_of_range_is_refused_naming_variable_and_host(variable, value):
    with pytest.raises(ValidationError) as err:
        run(hot_cluster(), {"node2": {variable: value}})
    assert str(err.value).startswith(variable) and "node2" in str(err.value)
    with pytest.raises(ValidationError, match=variable):
        R.loads_of(hot_cluster(), {"node2": {variable: value}})


def test_a_cpu_threshold_of_minus_5_no_longer_makes_every_host_hot():
    f = hot_cluster()
    with pytest.raises(ValidationError, match=r"^kvmfleet_patrol_cpu_threshold of node1 must be a percentage with 0 < value <= 100, or off; got -5$"):
        run(f, {n: {"kvmfleet_patrol_cpu_threshold": -5} for n in f})
    assert run(f, {n: {"kvmfleet_patrol_cpu_threshold": 100} for n in f})["hot"] == []


# --------------------------------------------------------------------------- rules that must each have a failing test

def cheap_first_cluster():
    """node1 at 90 %: one VM of 22.5 points cools it; ``a`` is the cheapest to move (512 MiB)."""
    return {"node1": facts([dom("a", 90, memory_mb=512), dom("b", 90), dom("c", 90), dom("d", 90)]),
            "node2": facts([]), "node3": facts([])}


def moved(vm, src, dst, when):
    """A history in which ``vm`` moved from ``src`` to ``dst`` at ``when``."""
    return R.record_moves(None, [{"vm": vm, "from": src, "to": dst}], now=when)


def test_cooldown_a_vm_moved_recently_stays_even_when_it_is_the_best_choice():
    f = cheap_first_cluster()
    assert [a["vm"] for a in run(f)["actions"]] == ["a"]
    history = moved("a", "node9", "node1", 900.0)
    result = run(f, history=history, now=1000.0)
    assert [a["vm"] for a in result["actions"]] == ["b"]
    # the cooldown is measured: 100 s after the move, a 50 s cooldown is over
    assert [a["vm"] for a in run(f, history=history, now=1000.0, cooldown_seconds=50)["actions"]] == ["a"]
    assert [a["vm"] for a in run(f, history=history, now=1000.0, cooldown_seconds=101)["actions"]] == ["b"]


def test_cooldown_blocks_consolidation_of_a_host_with_a_recently_moved_vm():
    f = {"node1": facts([dom("a", 20)]), "node2": facts([dom("d", 200), dom("e", 40)])}
    assert run(f, mode="consolidate")["emptied"] == ["node1"]
    result = run(f, history=moved("a", "node9", "node1", 900.0), now=1000.0, mode="consolidate")
    assert result["emptied"] == [] and result["actions"] == []
    assert any("node1 not emptied: a moved node9 -> node1 less than" in n for n in result["notes"])


def test_move_history_records_migrations_and_carries_them_through_every_run():
    f = cheap_first_cluster()
    first = run(f, now=1000.0)
    assert [a["vm"] for a in first["actions"]] == ["a"]
    history = R.record_moves(first["history"], first["actions"], now=1000.0)
    assert history["moves"] == {"a": {"from": "node1", "to": first["actions"][0]["to"], "time": 1000.0}}
    # as the playbook keeps it: JSON on disk, each run's history handed to the next
    history = json.loads(json.dumps(history))
    second = run(f, history=history, now=1060.0)
    assert "a" not in [x["vm"] for x in second["actions"]]
    assert second["history"]["moves"] == history["moves"]
    third = run(f, history=json.loads(json.dumps(second["history"])), now=1120.0)
    assert "a" not in [x["vm"] for x in third["actions"]]
    # scale actions and moves to nowhere are not moves
    assert R.record_moves(None, [{"vm": "s", "action": "scale", "from": "n", "to": "n"}], now=1.0)["moves"] == {}


def test_move_history_forgets_moves_after_a_week():
    week = 7 * 86400
    history = moved("old", "n1", "n2", 0.0)
    history = R.record_moves(history, [{"vm": "new", "from": "n1", "to": "n3"}], now=week)
    assert sorted(history["moves"]) == ["new", "old"]
    history = R.record_moves(history, [], now=week + 1)
    assert sorted(history["moves"]) == ["new"]
    assert R.clean_history(history)["moves"] == history["moves"]


def test_never_back_a_vm_in_cooldown_is_never_placed_on_the_host_it_left():
    # Within the cooldown the planner does not move the VM at all (the cooldown test); the rule
    # "never back" is the request's exclusion, checked here on the plan's own move step.
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.api import Fleet
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.measures import host_view, patrol_host
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.moves import MovePlan

    f = {"node1": facts([]), "node2": facts([dom("a", 10)]), "node3": facts([dom("y", 200)])}

    def move_plan(recent):
        views = {n: host_view(n, f[n], {}) for n in f}
        domains = {(n, d["name"]): d for n in f for d in f[n]["domains"]}
        return MovePlan(Fleet([patrol_host(views[n]) for n in sorted(f)]), views, R.options_from(), [], set(), recent,
                        domains, [], 1000.0)

    a = f["node2"]["domains"][0]
    # spread prefers the emptiest host: node1
    action, _error = move_plan({}).migrate("node2", a, "test", "spread")
    assert action["to"] == "node1"
    action, _error = move_plan({"a": {"from": "node1", "to": "node2", "time": 900.0}}).migrate("node2", a, "test", "spread")
    assert action["to"] == "node3"
    f["node3"] = facts([dom("z", 10, vcpus=16)])   # no room left on node3: nowhere but back
    action, error = move_plan({"a": {"from": "node1", "to": "node2", "time": 900.0}}).migrate("node2", a, "test", "spread")
    assert action is None and error


def test_managed_only_an_unmanaged_vm_is_never_migrated_even_when_cheapest():
    f = {"node1": facts([dom("theirs", 90, memory_mb=256, managed=False), dom("b", 90), dom("c", 90), dom("d", 90)]),
         "node2": facts([])}
    assert [a["vm"] for a in run(f, managed_only=False)["actions"]] == ["theirs"]
    assert [a["vm"] for a in run(f)["actions"]] == ["b"]


def test_managed_only_an_unmanaged_vm_is_never_scaled():
    f = {"node1": facts([dom("theirs", 195, vcpus=2, vcpus_max=4, managed=False)]), "node2": facts([])}
    assert [a["vm"] for a in run(f, autoscale=True, managed_only=False)["actions"]] == ["theirs"]
    assert run(f, autoscale=True)["actions"] == []


def test_managed_only_a_host_with_an_unmanaged_vm_is_not_consolidated():
    f = {"node1": facts([dom("theirs", 20, managed=False)]), "node2": facts([dom("d", 200), dom("e", 40)])}
    assert run(f, mode="consolidate", managed_only=False)["emptied"] == ["node1"]
    result = run(f, mode="consolidate")
    assert result["emptied"] == [] and result["actions"] == []
    assert any("node1 not emptied: theirs not made by kvmfleet" in n for n in result["notes"])


def test_never_consolidate_onto_an_empty_host():
    # node1 is light; node2 keeps VMs but has no vCPU left (4 CPUs x 4); node3 is empty
    f = {"node1": facts([dom("a", 20)]), "node2": facts([dom("full", 100, vcpus=16)]), "node3": facts([])}
    result = run(f, mode="consolidate")
    assert result["emptied"] == [] and result["actions"] == []
    assert any(n.startswith("node1 not emptied: a: ") for n in result["notes"])
    # with room on node2 it goes there
    f["node2"] = facts([dom("big", 100, vcpus=8)])
    result = run(f, mode="consolidate")
    assert result["emptied"] == ["node1"] and [a["to"] for a in result["actions"]] == ["node2"]


def test_a_threshold_that_is_off_never_makes_a_host_hot_and_is_reported_as_null():
    f = hot_cluster()
    for variable in ("kvmfleet_patrol_cpu_threshold", "kvmfleet_cpu_threshold"):
        result = run(f, {"node1": {variable: "off"}})
        assert result["hot"] == [] and result["actions"] == []
        assert result["hosts"]["node1"]["cpu_threshold"] is None
        json.dumps(result, allow_nan=False)
        assert R.loads_of(f, {"node1": {variable: False}})["hosts"]["node1"]["cpu_threshold"] is None
    # the patrol's own threshold, when given, wins over placement's off
    assert run(f, {"node1": {"kvmfleet_cpu_threshold": "off", "kvmfleet_patrol_cpu_threshold": 80}})["hot"] == ["node1"]


def test_the_most_severe_hot_host_sheds_first_when_another_resource_is_off():
    # both hot on memory (threshold 60); node2 more so, and its cpu threshold is off
    f = {"node1": facts([dom("a", 5, memory_mb=5120), dom("b", 5, memory_mb=5120)]),
         "node2": facts([dom("c", 5, memory_mb=7168), dom("d", 5, memory_mb=7168)]),
         "node3": facts([])}
    inv = {n: {"kvmfleet_patrol_memory_threshold": 60} for n in f}
    inv["node2"]["kvmfleet_cpu_threshold"] = "off"
    result = run(f, inv, max_moves=1)
    assert sorted(result["hot"]) == ["node1", "node2"]
    assert [(a["vm"], a["from"]) for a in result["actions"] if a["action"] == "migrate"][0][1] == "node2"
