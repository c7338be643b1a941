#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Patrol benchmark: the rebalance planner against a greedy rule, OpenStack Watcher's
workload_balance and oVirt's even distribution, on simulated clusters with hot spots built from
the placement bench's VM mix and host shapes. docs/benchmarks.md (## Patrol) records the result.

    python bench/patrol.py            # 100 and 1,000 hosts, two load levels (about a minute)
    python bench/patrol.py --quick    # smoke run
    python bench/patrol.py --against affe3f5   # decisions and planning rate against a revision

Every algorithm plans on the same cluster; its moves are then applied by one simulator (a VM
takes its measured CPU and its memory to the target) and judged there. Planning time is CPU time
of this process (time.process_time), one core; for the patrol it includes building the model
from the facts.

``--probe`` plans a fixed seeded set of cases (balance, a second run in cooldown, autoscale,
consolidate) and prints one JSON line: a hash of the decisions and of the whole results, and the
planning rate (plans per CPU second, each case timed by the best of ``--repeat`` runs). ``--against REV`` runs that probe on this tree and on REV
(bench/revisions.py) in alternating rounds and compares them.
"""

import argparse
import hashlib
import json
import math
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The placement bench's VM mix, host shapes and seed (it also puts the collection on sys.path).
from placement import HOST_SHAPES, RESERVED_MB, SEED, VM_MIX, _cpu_info, vm_sizes  # noqa: E402

try:
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance import api as R  # noqa: E402
except ImportError:  # a baseline revision (bench/revisions.py) from before api.py: the package held the names
    from ansible_collections.kvmfleet.iaas.plugins.module_utils import rebalance as R  # noqa: E402

CPU_T = 80.0
MEM_T = 85.0
RATIO = 4.0

# Scenarios: share of CPU-hot and memory-hot hosts, and the load range of the other hosts.
SCENARIOS = {
    "spots": dict(cpu_hot=0.10, mem_hot=0.03, cpu=(20, 65), mem=(0.35, 0.70)),
    "dense": dict(cpu_hot=0.15, mem_hot=0.05, cpu=(45, 75), mem=(0.55, 0.80)),
}


# --------------------------------------------------------------------------- cluster

class Cluster:
    """Hosts and VMs with running sums: what every algorithm reads, and the simulator."""

    def __init__(self):
        self.hosts = {}      # name -> dict(cpus, memory_mb, cap_cpu, cap_mem, disk_gb, vms={}, load, mem, vcpus)
        self.where = {}      # vm -> host

    def add_host(self, name, cpus, memory_mb, disk_gb):
        self.hosts[name] = dict(name=name, cpus=cpus, memory_mb=memory_mb, cap_cpu=cpus * RATIO,
                                cap_mem=memory_mb - RESERVED_MB, disk_gb=disk_gb, vms={}, load=0.0, mem=0, vcpus=0)

    def add_vm(self, host, vm):
        h = self.hosts[host]
        h["vms"][vm["name"]] = vm
        h["load"] += vm["load"]
        h["mem"] += vm["memory_mb"]
        h["vcpus"] += vm["vcpus"]
        self.where[vm["name"]] = host

    def move(self, vm_name, dst):
        src = self.where[vm_name]
        vm = self.hosts[src]["vms"].pop(vm_name)
        h = self.hosts[src]
        h["load"] -= vm["load"]
        h["mem"] -= vm["memory_mb"]
        h["vcpus"] -= vm["vcpus"]
        self.add_vm(dst, vm)
        return vm

    def cpu(self, name):
        h = self.hosts[name]
        return 100.0 * h["load"] / h["cpus"]

    def memp(self, name):
        h = self.hosts[name]
        return 100.0 * h["mem"] / h["memory_mb"]

    def fits(self, name, vm):
        h = self.hosts[name]
        return h["vcpus"] + vm["vcpus"] <= h["cap_cpu"] and h["mem"] + vm["memory_mb"] <= h["cap_mem"]

    def over(self):
        return sorted(n for n in self.hosts if self.cpu(n) > CPU_T + 1e-9 or self.memp(n) > MEM_T + 1e-9)

    def copy(self):
        other = Cluster()
        for name, h in self.hosts.items():
            other.hosts[name] = dict(h, vms=dict(h["vms"]))
        other.where = dict(self.where)
        return other

    def facts(self):
        """{host: kvmfleet_hypervisor} as hypervisor_info reports it."""
        out = {}
        for name, h in self.hosts.items():
            doms = [{"name": vm["name"], "state": "running", "managed": True, "group": None,
                     "vcpus": vm["vcpus"], "vcpus_max": vm["vcpus"], "memory_mb": vm["memory_mb"],
                     "cpu_percent": 100.0 * vm["load"], "disks": [{"capacity_gb": vm["disk_gb"]}]}
                    for vm in h["vms"].values()]
            out[name] = {"reachable": True, "cpus": h["cpus"], "memory_mb": h["memory_mb"],
                         "virt_types": ["kvm"], "storage": {"total_gb": h["disk_gb"]},
                         "allocated": {"vcpus": h["vcpus"], "memory_mb": h["mem"],
                                       "disk_gb": sum(vm["disk_gb"] for vm in h["vms"].values())},
                         "utilization": {"cpu_percent": self.cpu(name), "memory_percent": self.memp(name)},
                         "domains": doms}
        return out

    def spread(self):
        cpu = [self.cpu(n) for n in self.hosts]
        mem = [self.memp(n) for n in self.hosts]
        return _std(cpu), _std(mem)


def _std(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def make_cluster(count, scenario, seed):
    """Hosts of the placement bench's shapes filled with VMs of its mix; a share of hosts is
    CPU-hot (84..98 %) or memory-hot (87..95 %), the others within the scenario's ranges."""
    rng = random.Random(seed)
    cfg = SCENARIOS[scenario]
    cluster = Cluster()
    sizes = iter(vm_sizes(rng, count * 400))
    counter = 0
    for i in range(count):
        cpus, gib, disk, _ = rng.choices(HOST_SHAPES, weights=[s[3] for s in HOST_SHAPES])[0]
        name = "hv%05d" % i
        cluster.add_host(name, cpus, gib * 1024 + RESERVED_MB, disk)
        h = cluster.hosts[name]
        kind = rng.random()
        mem_hot = kind < cfg["mem_hot"]
        cpu_hot = cfg["mem_hot"] <= kind < cfg["mem_hot"] + cfg["cpu_hot"]
        mem_target = rng.uniform(0.87, 0.95) if mem_hot else rng.uniform(*cfg["mem"])
        cpu_target = rng.uniform(84, 98) if cpu_hot else rng.uniform(*cfg["cpu"])
        vms = []
        misses = used_v = used_m = 0
        while misses < 20:
            v, m, d = next(sizes)
            if used_v + v <= h["cap_cpu"] and used_m + m <= mem_target * h["memory_mb"] and used_m + m <= h["cap_mem"]:
                counter += 1
                vms.append(dict(name="vm%06d" % counter, vcpus=v, memory_mb=m, disk_gb=d))
                used_v += v
                used_m += m
                misses = 0
            else:
                misses += 1
        # loads: random weights per vCPU scaled to the CPU target, each VM at most all its vCPUs
        weights = [rng.uniform(0.1, 1.0) for _ in vms]
        want = cpu_target / 100.0 * cpus
        loads = [0.0] * len(vms)
        free = list(range(len(vms)))
        left = want
        for _ in range(10):
            total = sum(weights[j] * vms[j]["vcpus"] for j in free)
            if not free or left <= 1e-9 or total <= 0:
                break
            scale = left / total
            still = []
            for j in free:
                add = weights[j] * vms[j]["vcpus"] * scale
                room = vms[j]["vcpus"] - loads[j]
                loads[j] += min(add, room)
                if add < room:
                    still.append(j)
            left = want - sum(loads)
            free = still
        for vm, load in zip(vms, loads):
            vm["load"] = round(load, 4)   # in host CPUs; cpu_percent = 100 * load
            cluster.add_vm(name, vm)
    return cluster


# --------------------------------------------------------------------------- lower bound

def lower_bound(cluster):
    """Sum over the hot hosts of the fewest VMs whose removal cools the host (targets ignored);
    exact subset search (rebalance.min_cover, the exact path; ``exact`` False would say if a
    search was cut short)."""
    total, exact = 0, True
    for name in cluster.over():
        h = cluster.hosts[name]
        need_c = max(0.0, cluster.cpu(name) - CPU_T)
        need_m = max(0.0, cluster.memp(name) - MEM_T)
        items = [(100.0 * vm["load"] / h["cpus"], 100.0 * vm["memory_mb"] / h["memory_mb"], 1.0)
                 for vm in h["vms"].values()]
        picked, ok = R.min_cover(items, need_c, need_m, search_limit=10 ** 7)
        exact = exact and ok
        total += len(picked) if picked is not None else len(items)
    return total, exact


# --------------------------------------------------------------------------- algorithms

class Patrol:
    name = "kvmfleet patrol (rebalance)"

    def plan(self, cluster):
        facts = cluster.facts()
        started = time.process_time()
        result = R.plan(facts, None, None, now=1000.0, hot_observations=1, max_moves=100000)
        seconds = time.process_time() - started
        moves = [(a["vm"], a["to"]) for a in result["actions"] if a["action"] == "migrate"]
        return moves, seconds, {}


class Greedy:
    """The hottest host's largest VM (vCPUs, then memory) to the least loaded host with room,
    until no host is over a threshold; no check that the target stays under. Capped."""
    name = "greedy largest VM -> least loaded"

    def plan(self, cluster):
        c = cluster.copy()
        moves = []
        started = time.process_time()
        cap = 20 * max(1, len(c.over()))
        stuck = set()
        while len(moves) < cap:
            hot = [n for n in c.over() if n not in stuck]
            if not hot:
                break
            src = max(hot, key=lambda n: max((c.cpu(n) - CPU_T) / CPU_T, (c.memp(n) - MEM_T) / MEM_T))
            by_cpu = (c.cpu(src) - CPU_T) / CPU_T >= (c.memp(src) - MEM_T) / MEM_T
            vms = sorted(c.hosts[src]["vms"].values(), key=lambda v: (-v["vcpus"], -v["memory_mb"], v["name"]))
            done = False
            for vm in vms:
                targets = [n for n in c.hosts if n != src and c.fits(n, vm)]
                if targets:
                    dst = min(targets, key=lambda n: (c.cpu(n) if by_cpu else c.memp(n), n))
                    c.move(vm["name"], dst)
                    moves.append((vm["name"], dst))
                    done = True
                    break
            if not done:
                stuck.add(src)
        return moves, time.process_time() - started, {}


class Watcher:
    """OpenStack Watcher's workload_balance (CPU meter), one migration per audit as Watcher
    plans it; audits repeat until one plans nothing (the 'rounds' column). Source: hosts with
    utilization >= threshold, hottest first; VM: the one whose workload brings the source
    closest to the cluster average without going under it; target: enough free vCPU/RAM and
    (host + VM workload) < threshold, lowest utilization."""
    name = "Watcher workload_balance"

    def plan(self, cluster, max_rounds=100000):
        c = cluster.copy()
        moves = []
        rounds = 0
        started = time.process_time()
        while rounds < max_rounds:
            rounds += 1
            util = {n: c.cpu(n) for n in c.hosts}
            sources = [n for n in c.hosts if util[n] >= CPU_T]
            targets = [n for n in c.hosts if util[n] < CPU_T]
            if not sources or not targets:
                break
            avg = sum(c.hosts[n]["load"] for n in c.hosts) / len(c.hosts)
            chosen = None
            for src in sorted(sources, key=lambda n: -util[n]):
                delta = c.hosts[src]["load"] - avg
                best, best_d = None, None
                for vm in sorted(c.hosts[src]["vms"].values(), key=lambda v: v["name"]):
                    d = delta - vm["load"]
                    if 0 <= d and (best_d is None or d < best_d):
                        best, best_d = vm, d
                if best is not None:
                    chosen = (src, best)
                    break
            if chosen is None:
                break
            src, vm = chosen
            ok = [n for n in targets if c.fits(n, vm)
                  and vm["load"] + c.hosts[n]["load"] < CPU_T / 100.0 * c.hosts[n]["cpus"]]
            if not ok:
                break
            dst = min(ok, key=lambda n: (util[n], n))
            c.move(vm["name"], dst)
            moves.append((vm["name"], dst))
        return moves, time.process_time() - started, {"rounds": rounds}


class OvirtEven:
    """oVirt's even distribution: each balancing round moves one VM, the lowest-CPU VM of the
    most loaded over-utilized host (CPU, then memory), to the least loaded host that stays under
    both thresholds with it. Rounds repeat until one moves nothing."""
    name = "oVirt even distribution"

    def plan(self, cluster, max_rounds=100000):
        c = cluster.copy()
        moves = []
        rounds = 0
        moved = set()
        started = time.process_time()
        while rounds < max_rounds:
            rounds += 1
            over_cpu = [n for n in c.hosts if c.cpu(n) > CPU_T]
            over_mem = [n for n in c.hosts if c.memp(n) > MEM_T]
            if over_cpu:
                src = max(over_cpu, key=lambda n: (c.cpu(n), n))
            elif over_mem:
                src = max(over_mem, key=lambda n: (c.memp(n), n))
            else:
                break
            done = False
            # oVirt skips VMs it just migrated (they are mid-migration in the next round)
            for vm in sorted(c.hosts[src]["vms"].values(), key=lambda v: (v["load"], v["name"])):
                if vm["name"] in moved:
                    continue
                ok = [n for n in c.hosts if n != src and c.fits(n, vm)
                      and c.cpu(n) + 100.0 * vm["load"] / c.hosts[n]["cpus"] <= CPU_T
                      and c.memp(n) + 100.0 * vm["memory_mb"] / c.hosts[n]["memory_mb"] <= MEM_T]
                if ok:
                    dst = min(ok, key=lambda n: (c.cpu(n), n))
                    c.move(vm["name"], dst)
                    moves.append((vm["name"], dst))
                    moved.add(vm["name"])
                    done = True
                    break
            if not done:
                break
        return moves, time.process_time() - started, {"rounds": rounds}


ALGORITHMS = [Patrol, Greedy, Watcher, OvirtEven]


# --------------------------------------------------------------------------- run

def evaluate(cluster, algorithm):
    moves, seconds, extra = algorithm.plan(cluster)
    after = cluster.copy()
    memory = 0
    for vm, dst in moves:
        memory += after.move(vm, dst)["memory_mb"]
    second, _s, _e = algorithm.plan(after)
    cpu_after, mem_after = after.spread()
    return dict(name=algorithm.name, moves=len(moves), distinct=len(set(v for v, _ in moves)),
                left=len(after.over()), memory_gib=memory / 1024.0, seconds=seconds,
                spread_after=(cpu_after, mem_after), second=len(second), rounds=extra.get("rounds"))


def run(sizes, scenarios):
    rows = []
    for scenario in scenarios:
        for count in sizes:
            cluster = make_cluster(count, scenario, SEED + count)
            lb, exact = lower_bound(cluster)
            info = dict(scenario=scenario, hosts=count, vms=len(cluster.where), hot=len(cluster.over()),
                        lb=lb, lb_exact=exact, spread_before=cluster.spread(),
                        mean_cpu=sum(cluster.cpu(n) for n in cluster.hosts) / count,
                        mean_mem=sum(cluster.memp(n) for n in cluster.hosts) / count, results=[])
            for cls in ALGORITHMS:
                info["results"].append(evaluate(cluster, cls()))
                print("  %s %d hosts: %s done" % (scenario, count, cls.name), file=sys.stderr)
            rows.append(info)
    return rows


def report(rows, args):
    lines = []
    out = lines.append
    out("Machine: %s, Python %s, %s; command: `python bench/patrol.py%s`"
        % (platform.machine(), platform.python_version(), _cpu_info(), " --quick" if args.quick else ""))
    out("")
    out("Thresholds cpu %g %%, memory %g %%; a host is over when either is exceeded. VM mix: %d flavors "
        "(bench/placement.py). 'moves / LB': migrations planned over the lower bound. Spread: std dev "
        "of host utilization in points, cpu / memory." % (CPU_T, MEM_T, len(VM_MIX)))
    for info in rows:
        out("")
        out("### %s, %d hosts, %d VMs: %d hosts over threshold, lower bound %d migrations%s; mean load cpu %.0f %%, memory %.0f %%"
            % (info["scenario"], info["hosts"], info["vms"], info["hot"], info["lb"],
               "" if info["lb_exact"] else " (search cut short: not exact)", info["mean_cpu"], info["mean_mem"]))
        out("")
        out("| algorithm | hosts left over | moves | moves / LB | memory moved (GiB) | spread before | spread after "
            "| planning (CPU s) | moves by a 2nd run | rounds |")
        out("|---|---|---|---|---|---|---|---|---|---|")
        b = info["spread_before"]
        for r in info["results"]:
            out("| %s | %d | %d | %s | %.0f | %.1f / %.1f | %.1f / %.1f | %.3f | %d | %s |" % (
                r["name"], r["left"], r["moves"], "%.2f" % (r["moves"] / info["lb"]) if info["lb"] else "-",
                r["memory_gib"], b[0], b[1], r["spread_after"][0], r["spread_after"][1], r["seconds"],
                r["second"], r["rounds"] if r["rounds"] is not None else "1"))
    out("")
    out("Targets (kvmfleet patrol):")
    ok_all = True
    for info in rows:
        p = info["results"][0]
        checks = [("every host under threshold", p["left"] == 0),
                  ("moves <= 1.1 x LB (%d / %d)" % (p["moves"], info["lb"]), p["moves"] <= 1.1 * info["lb"]),
                  ("zero moves on a second run", p["second"] == 0)]
        if info["hosts"] >= 1000:
            checks.append(("planning <= 1 s (%.3f s)" % p["seconds"], p["seconds"] <= 1.0))
        ok_all = ok_all and all(c[1] for c in checks)
        out("- %s, %d hosts: %s" % (info["scenario"], info["hosts"],
                                    "; ".join("%s: %s" % (c[0], "met" if c[1] else "NOT met") for c in checks)))
    out("- all targets: %s" % ("met" if ok_all else "NOT met"))
    return "\n".join(lines)


# --------------------------------------------------------------------------- probe (refactorings)

def probe_cases():
    """[(label, facts, history, options)]: a fixed seeded set of plans covering every phase."""
    cases = []
    for count, scenario in ((100, "spots"), (100, "dense"), (300, "spots")):
        facts = make_cluster(count, scenario, SEED + count).facts()
        cases.append(("balance %s %d" % (scenario, count), facts, None, {}))
    # a second run: the first run's moves recorded, so they are in cooldown and never go back
    facts = make_cluster(100, "dense", SEED + 7).facts()
    first = R.plan(facts, None, None, now=1000.0, hot_observations=1, max_moves=100000)
    history = R.record_moves(first["history"], first["actions"], now=1000.0)
    cases.append(("cooldown dense 100", facts, history, {"now": 1060.0, "max_moves": 15}))
    # autoscale: VMs may grow to twice their vCPUs
    facts = make_cluster(100, "dense", SEED + 8).facts()
    for host in facts.values():
        for dom in host["domains"]:
            dom["vcpus_max"] = 2 * dom["vcpus"]
    cases.append(("autoscale dense 100", facts, None, {"autoscale": True, "vm_cpu_threshold": 60.0}))
    # consolidate: light hosts emptied whole
    facts = make_cluster(60, "spots", SEED + 9).facts()
    cases.append(("consolidate spots 60", facts, None,
                  {"mode": "consolidate", "low_cpu_threshold": 45.0, "low_memory_threshold": 60.0}))
    return cases


def _digest(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def probe(repeat):
    """One JSON line: decisions (and whole results) hashed, plans per CPU second."""
    cases = probe_cases()
    decisions, results = [], []
    best = [float("inf")] * len(cases)
    for _round in range(repeat):
        for number, (label, facts, history, options) in enumerate(cases):
            options = dict({"hot_observations": 1, "max_moves": 100000, "now": 1000.0}, **options)
            started = time.process_time()
            result = R.plan(facts, None, history, **options)
            best[number] = min(best[number], time.process_time() - started)
            if _round == 0:
                decisions.append([label, [(a["action"], a["vm"], a["from"], a["to"], a.get("vcpus"))
                                          for a in result["actions"]], result["emptied"], result["left_hot"]])
                results.append({k: v for k, v in result.items() if k != "options"})
    # the best of ``repeat`` runs of each case: what the code costs, less what other work on the
    # machine added to it
    seconds = sum(best)
    return {"decisions": _digest(decisions), "results": _digest(results), "plans": len(cases), "seconds": seconds,
            "rate": len(cases) / seconds, "case_seconds": [round(b, 4) for b in best], "actions": sum(len(d[1]) for d in decisions), "tree": R.__file__}


def against(rev, rounds, repeat):
    from revisions import side_by_side

    pairs = side_by_side(Path(__file__).resolve(), ["--repeat", str(repeat)], rev, rounds)
    same_decisions = all(c["decisions"] == b["decisions"] for c, b in pairs)
    same_results = all(c["results"] == b["results"] for c, b in pairs)
    ratios = sorted(c["rate"] / b["rate"] for c, b in pairs)
    median = ratios[len(ratios) // 2] if len(ratios) % 2 else sum(ratios[len(ratios) // 2 - 1:len(ratios) // 2 + 1]) / 2
    lines = ["patrol probe: this tree against %s, %d rounds (order alternating), %d cases, %d actions"
             % (rev, rounds, pairs[0][0]["plans"], pairs[0][0]["actions"]),
             "  planner imported from %s and %s" % (pairs[0][0]["tree"], pairs[0][1]["tree"])]
    for number, (c, b) in enumerate(pairs):
        lines.append("  round %d: rate %.1f vs %.1f plans/CPU s (ratio %.3f)" % (number + 1, c["rate"], b["rate"], c["rate"] / b["rate"]))
    lines.append("decisions identical: %s; whole results identical: %s"
                 % ("yes" if same_decisions else "NO", "yes" if same_results else "NO"))
    lines.append("median rate ratio new/baseline: %.3f (target >= 0.95)" % median)
    # each case's best time over all rounds: the least disturbed by other work on the machine
    best_current = sum(min(c["case_seconds"][k] for c, _b in pairs) for k in range(len(pairs[0][0]["case_seconds"])))
    best_baseline = sum(min(b["case_seconds"][k] for _c, b in pairs) for k in range(len(pairs[0][1]["case_seconds"])))
    lines.append("rate ratio of the best times over all rounds: %.3f" % (best_baseline / best_current))
    print("\n".join(lines))
    return 0 if same_decisions and median >= 0.95 else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 hosts only: a smoke run")
    parser.add_argument("--probe", action="store_true", help="plan the probe's cases; print one JSON line")
    parser.add_argument("--against", metavar="REV", help="compare the probe on this tree with revision REV")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of --against (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="times the probe plans each case (default 3)")
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.repeat)))
        return
    if args.against:
        sys.exit(against(args.against, args.rounds, args.repeat))
    sizes = (100,) if args.quick else (100, 1000)
    rows = run(sizes, ("spots",) if args.quick else ("spots", "dense"))
    print(report(rows, args))


if __name__ == "__main__":
    main()
