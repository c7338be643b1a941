#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placement benchmark: kvmfleet's engine against first-fit, first-fit-decreasing, a Nova-like
RAM weigher and Kubernetes-style scoring, in one run. docs/benchmarks.md records the result.

    python bench/placement.py            # full run (a few minutes on 2 cores)
    python bench/placement.py --quick    # smoke run
    python bench/placement.py --against affe3f5   # today's engine against a revision's, side by side

One file: the workload, the baselines, the report and the side-by-side probe share the seeded
cluster and VM mix, which bench/patrol.py imports from here too.

Rates are decisions per second of this process's CPU time (time.process_time), one core: the
machine is shared, and wall time would measure the neighbours. Each decision includes applying
it to the state (and, for kvmfleet, updating the index).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from devpath import ensure_collection_path  # noqa: E402

ensure_collection_path()

try:
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement import api as P  # noqa: E402
except ImportError:  # a baseline revision (bench/revisions.py) from before api.py: the package held the names
    from ansible_collections.kvmfleet.iaas.plugins.module_utils import placement as P  # noqa: E402

SEED = 20240611

# VM mix: (share, vCPUs, memory GiB, disk GiB, kind). Many small general-purpose VMs, some
# compute-optimised (1 vCPU : 2 GiB) and memory-optimised (1 : 8) shapes, a few large ones;
# shares after the usual public-cloud flavor families. Mean 3.36 vCPUs, 12 GiB, 64.4 GiB disk.
VM_MIX = [
    (0.30, 1, 2, 20, "small"),
    (0.25, 2, 4, 40, "general"),
    (0.10, 2, 8, 40, "memory"),
    (0.10, 4, 8, 80, "compute"),
    (0.08, 4, 16, 80, "general"),
    (0.05, 8, 16, 100, "compute"),
    (0.05, 4, 32, 100, "memory"),
    (0.03, 8, 64, 200, "memory"),
    (0.02, 16, 32, 200, "compute"),
    (0.01, 16, 128, 500, "large memory"),
    (0.01, 32, 128, 500, "large"),
]

# Host shapes of the heterogeneous clusters: (cpus, memory GiB, image store GiB, share).
HOST_SHAPES = [(32, 256, 2000, 0.3), (48, 384, 4000, 0.3), (64, 512, 4000, 0.3), (96, 768, 8000, 0.1)]
# The homogeneous batch host: 64 CPUs x 4 = 256 vCPUs, 512 GiB after the reserve, 4000 GiB.
BATCH_HOST = (64, 512, 4000)
RESERVED_MB = 512


def vm_sizes(rng, count):
    shares = [m[0] for m in VM_MIX]
    picks = rng.choices(VM_MIX, weights=shares, k=count)
    return [(v, g * 1024, d) for _s, v, g, d, _k in picks]


def host_specs(rng, count):
    """Heterogeneous hosts, pre-loaded: allocation fractions uniform 0..0.7 per resource,
    live cpu 5..70 %, memory 10..70 %."""
    specs = []
    for i in range(count):
        cpus, gib, disk, _ = rng.choices(HOST_SHAPES, weights=[s[3] for s in HOST_SHAPES])[0]
        cap_c, cap_m, cap_d = cpus * 4, gib * 1024, disk
        specs.append(dict(
            name="hv%05d" % i, cpus=cpus, memory_mb=cap_m + RESERVED_MB, storage_total_gb=disk,
            used_vcpus=int(cap_c * rng.uniform(0, 0.7)), used_memory_mb=int(cap_m * rng.uniform(0, 0.7)),
            used_disk_gb=int(cap_d * rng.uniform(0, 0.7)),
            cpu_percent=rng.uniform(5, 70), memory_percent=rng.uniform(10, 70)))
    return specs


# --------------------------------------------------------------------------- baselines

class Baseline:
    """Parallel lists of capacity and allocation; capacity filter only, naive loop."""

    def __init__(self, specs):
        self.names = [s["name"] for s in specs]
        self.cap = [(s["cpus"] * 4.0, s["memory_mb"] - RESERVED_MB, float(s["storage_total_gb"])) for s in specs]
        self.used = [[s["used_vcpus"], s["used_memory_mb"], s["used_disk_gb"]] for s in specs]

    def fits(self, i, v, m, d):
        cap, used = self.cap[i], self.used[i]
        return used[0] + v <= cap[0] and used[1] + m <= cap[1] and used[2] + d <= cap[2]

    def commit(self, i, v, m, d):
        used = self.used[i]
        used[0] += v
        used[1] += m
        used[2] += d

    def place(self, v, m, d):
        i = self.choose(v, m, d)
        if i is not None:
            self.commit(i, v, m, d)
        return i


class FirstFit(Baseline):
    name = "first-fit"

    def choose(self, v, m, d):
        cap, used = self.cap, self.used
        for i in range(len(cap)):
            c, u = cap[i], used[i]
            if u[0] + v <= c[0] and u[1] + m <= c[1] and u[2] + d <= c[2]:
                return i
        return None


class FirstFitDecreasing(FirstFit):
    """First-fit over the batch sorted by vCPUs (then memory), largest first: offline."""
    name = "first-fit-decreasing (CPU)"
    offline = True


class NovaRamWeigher(Baseline):
    """Nova's default weigher (RAMWeigher, multiplier 1.0): most free RAM wins. Nova normalises
    weights across hosts, which keeps the order; host_subset_size 1, ties by name."""
    name = "Nova RAM weigher (spread)"

    def choose(self, v, m, d):
        cap, used = self.cap, self.used
        best, best_free = None, -1.0
        for i in range(len(cap)):
            c, u = cap[i], used[i]
            if u[0] + v <= c[0] and u[1] + m <= c[1] and u[2] + d <= c[2]:
                free = c[1] - u[1]
                if free > best_free:
                    best, best_free = i, free
        return best


class KubeScore(Baseline):
    """kube-scheduler's default scores on cpu and memory, weight 1 each, integer 0..100:
    NodeResourcesFit LeastAllocated = mean of (cap - requested) * 100 // cap, and
    NodeResourcesBalancedAllocation = (1 - std dev of the requested fractions) * 100, both with
    the pod counted. Every node is scored (no percentageOfNodesToScore); ties by name."""
    name = "Kubernetes Least+BalancedAllocation"

    def choose(self, v, m, d):
        cap, used = self.cap, self.used
        best, best_score = None, -1
        for i in range(len(cap)):
            c, u = cap[i], used[i]
            rc, rm = u[0] + v, u[1] + m
            if rc <= c[0] and rm <= c[1] and u[2] + d <= c[2]:
                least = (int((c[0] - rc) * 100 // c[0]) + int((c[1] - rm) * 100 // c[1])) // 2
                fc, fm = rc / c[0], rm / c[1]
                balanced = int((1.0 - abs(fc - fm) / 2.0) * 100)
                score = least + balanced
                if score > best_score:
                    best, best_score = i, score
        return best


BASELINES = [FirstFit, FirstFitDecreasing, NovaRamWeigher, KubeScore]


class Engine:
    """kvmfleet's engine with one strategy."""

    def __init__(self, specs, strategy, thresholds=None):
        self.strategy = strategy
        self.name = "kvmfleet %s" % strategy
        extra = {}
        if thresholds is not None:
            extra = dict(cpu_threshold=thresholds, memory_threshold=thresholds)
        started = time.process_time()
        self.fleet = P.Fleet([P.Host(reserved_host_memory_mb=RESERVED_MB, **dict(spec, **extra)) for spec in specs])
        self.build_seconds = time.process_time() - started
        self.count = 0

    def place(self, v, m, d):
        self.count += 1
        request = P.Request("vm%d" % self.count, v, m, d, strategy=self.strategy)
        try:
            return self.fleet.place(request, commit=True).host
        except P.PlacementError:
            return None


# --------------------------------------------------------------------------- measurements

def decision_rate(algorithm, sizes, budget):
    """Decisions per CPU second, over at most len(sizes) decisions or about ``budget`` seconds."""
    started = time.process_time()
    done = 0
    for v, m, d in sizes:
        algorithm.place(v, m, d)
        done += 1
        if done % 20 == 0 and time.process_time() - started > budget:
            break
    return done / (time.process_time() - started), done


def rate_table(cluster_sizes, decisions, budget):
    rows = []
    for count in cluster_sizes:
        specs = host_specs(random.Random(SEED + count), count)
        sizes = vm_sizes(random.Random(SEED), decisions)
        row = {"hosts": count}
        for cls in BASELINES:
            if getattr(cls, "offline", False):
                continue  # per decision it is first-fit; only the order differs
            row[cls.name] = decision_rate(cls(specs), sizes, budget)
        for strategy in ("balanced", "spread", "pack"):
            engine = Engine(specs, strategy)
            row["kvmfleet %s" % strategy] = decision_rate(engine, sizes, budget)
            row["build %s" % strategy] = engine.build_seconds
        rows.append(row)
        print("  rates at %d hosts done" % count, file=sys.stderr)
    return rows


def batch_table(hosts, vms):
    cpus, gib, disk = BATCH_HOST
    cap = (cpus * 4.0, gib * 1024.0, float(disk))
    specs = [dict(name="hv%04d" % i, cpus=cpus, memory_mb=gib * 1024 + RESERVED_MB, storage_total_gb=disk,
                  used_vcpus=0, used_memory_mb=0, used_disk_gb=0, cpu_percent=0.0, memory_percent=0.0)
             for i in range(hosts)]
    sizes = vm_sizes(random.Random(SEED + 1), vms)
    totals = [sum(s[r] for s in sizes) for r in range(3)]
    lower_bound = max(math.ceil(totals[r] / cap[r]) for r in range(3))
    results = []
    algorithms = [cls(specs) for cls in BASELINES]
    # Live thresholds at 100 %: the baselines know only allocation, so kvmfleet is compared on
    # allocation alone (with default thresholds memory could not pass 85 % of a host).
    algorithms += [Engine(specs, s, thresholds=100.0) for s in ("balanced", "spread", "pack")]
    for algorithm in algorithms:
        order = sorted(sizes, key=lambda s: (-s[0], -s[1], -s[2])) if getattr(algorithm, "offline", False) else sizes
        started = time.process_time()
        failed = 0
        for v, m, d in order:
            if algorithm.place(v, m, d) is None:
                failed += 1
        seconds = time.process_time() - started
        if isinstance(algorithm, Engine):
            fractions = [(h.f_cpu, h.f_mem, h.f_disk) for h in algorithm.fleet.hosts]
        else:
            fractions = [(u[0] / c[0], u[1] / c[1], u[2] / c[2]) for u, c in zip(algorithm.used, algorithm.cap)]
        used = [f for f in fractions if any(f)]
        stds = [_std([f[r] for f in used]) for r in range(3)]
        imbalance = sum(_std(f) for f in used) / len(used)
        results.append(dict(name=algorithm.name, used=len(used), failed=failed, seconds=seconds,
                            std=stds, std3=sum(stds) / 3.0, std2=(stds[0] + stds[1]) / 2.0,
                            mean=[sum(f[r] for f in used) / len(used) for r in range(3)], imbalance=imbalance))
        print("  batch %s done" % algorithm.name, file=sys.stderr)
    return lower_bound, totals, results


def _std(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((x - mean) ** 2 for x in values) / len(values))


# --------------------------------------------------------------------------- report

def report(rate_rows, batch, args):
    lines = []
    out = lines.append
    out("Machine: %s, Python %s, %s; command: `python bench/placement.py%s`"
        % (platform.machine(), platform.python_version(), _cpu_info(), " --quick" if args.quick else ""))
    out("")
    out("### Decisions per second (CPU time, one core; each decision applied to the state)")
    out("")
    names = [c.name for c in BASELINES if not getattr(c, "offline", False)] + \
        ["kvmfleet balanced", "kvmfleet spread", "kvmfleet pack"]
    out("| hosts | " + " | ".join(names) + " | balanced / Nova | balanced / Kubernetes | index build (s) |")
    out("|---|" + "---|" * (len(names) + 3))
    for row in rate_rows:
        cells = ["%.0f" % row[n][0] for n in names]
        ours = row["kvmfleet balanced"][0]
        out("| %d | %s | %.1fx | %.1fx | %.2f |" % (
            row["hosts"], " | ".join(cells), ours / row[NovaRamWeigher.name][0], ours / row[KubeScore.name][0],
            row["build balanced"]))
    out("")
    out("First-fit stops at the first host with room, which on these partly loaded clusters is one of the")
    out("first few: its rate says little about scoring. The scoring baselines evaluate every host.")
    out("")
    lower_bound, totals, results = batch
    out("### Batch: %d VMs onto %d empty homogeneous hosts (%d CPUs x 4, %d GiB, %d GiB disk)"
        % (args.batch_vms, args.batch_hosts, BATCH_HOST[0], BATCH_HOST[1], BATCH_HOST[2]))
    out("")
    out("Demand: %d vCPUs, %.0f GiB, %d GiB disk. Lower bound = max over resources of "
        "ceil(total demand / host capacity) = **%d hosts**." % (totals[0], totals[1] / 1024, totals[2], lower_bound))
    out("Spread = std dev of the allocated fraction across used hosts, per resource; 'mean 3' over "
        "cpu, memory, disk, 'mean 2' over cpu and memory (the resources Kubernetes scores).")
    out("")
    out("| algorithm | hosts used | / lower bound | not placed | spread cpu | spread mem | spread disk | "
        "spread mean 3 | spread mean 2 | mean imbalance in host | CPU s |")
    out("|---|---|---|---|---|---|---|---|---|---|---|")
    balanced = next(r for r in results if r["name"] == "kvmfleet balanced")
    for r in results:
        out("| %s | %d | %.3f | %d | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.1f |"
            % (r["name"], r["used"], r["used"] / lower_bound, r["failed"], r["std"][0], r["std"][1], r["std"][2],
               r["std3"], r["std2"], r["imbalance"], r["seconds"]))
    out("")
    out("Spread of kvmfleet balanced as a ratio of each baseline's (below 1 is lower):")
    out("")
    out("| baseline | mean 3 | mean 2 |")
    out("|---|---|---|")
    for r in results:
        if not r["name"].startswith("kvmfleet"):
            out("| %s | %.2f | %.2f |" % (r["name"], balanced["std3"] / r["std3"], balanced["std2"] / r["std2"]))
    out("")
    pack = next(r for r in results if r["name"] == "kvmfleet pack")
    at_5000 = [row for row in rate_rows if row["hosts"] == 5000]
    out("Targets:")
    if at_5000:
        rate = at_5000[0]["kvmfleet balanced"][0]
        slowest = min(at_5000[0]["kvmfleet %s" % s][0] for s in ("balanced", "spread", "pack"))
        out("- >= 1,000 decisions/s at 5,000 hosts: balanced %.0f/s, slowest strategy %.0f/s: %s"
            % (rate, slowest, "met" if slowest >= 1000 else "NOT met"))
    out("- pack within 5 %% of the lower bound: %d / %d = %.3f: %s"
        % (pack["used"], lower_bound, pack["used"] / lower_bound,
           "met" if pack["used"] <= 1.05 * lower_bound else "NOT met"))
    worse = [r["name"] for r in results if not r["name"].startswith("kvmfleet") and r["std3"] <= balanced["std3"]]
    out("- balanced spread (mean 3) below every baseline: %s" % ("met" if not worse else "NOT met (%s)" % ", ".join(worse)))
    worse2 = [r["name"] for r in results if not r["name"].startswith("kvmfleet") and r["std2"] <= balanced["std2"]]
    out("- balanced spread (mean 2, cpu + memory only) below every baseline: %s"
        % ("yes" if not worse2 else "no (%s)" % ", ".join(worse2)))
    return "\n".join(lines)


def _cpu_info():
    try:
        import os
        cores = os.cpu_count()
        model = ""
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        return "%d cores %s" % (cores, model)
    except OSError:
        return "unknown CPU"


# --------------------------------------------------------------------------- probe / against

PROBE_SIZES = (1000, 5000)
PROBE_DECISIONS = 1500


def _mixed_requests(rng, names, count):
    """Requests with groups, policies, exclusions, virt types and measured loads (API of every revision)."""
    requests = []
    for n in range(count):
        v, m, d = vm_sizes(rng, 1)[0]
        kw = dict(strategy=rng.choice(("balanced", "spread", "pack")))
        if rng.random() < 0.2:
            kw["virt_type"] = rng.choice(["kvm", "qemu"])
        if rng.random() < 0.2:
            kw["exclude"] = rng.sample(names, 3)
        if rng.random() < 0.3:
            kw["group"] = rng.choice(["g1", "g2", "g3"])
            kw["policy"] = rng.choice(["anti-affinity", "anti-affinity", "affinity"])
        if rng.random() < 0.2:
            kw["cpu_percent"] = rng.uniform(0, 100 * v)
        requests.append(P.Request("mixed%d" % n, v, m, d, **kw))
    return requests


def probe():
    """A fixed seeded workload: one JSON line with a hash of every (request, host) decision and the
    rates per CPU second of each strategy at PROBE_SIZES hosts."""
    digest = hashlib.sha256()
    rates = {}
    decisions = 0
    for count in PROBE_SIZES:
        specs = host_specs(random.Random(SEED + count), count)
        sizes = vm_sizes(random.Random(SEED), PROBE_DECISIONS)
        for strategy in ("balanced", "spread", "pack"):
            engine = Engine(specs, strategy)
            chosen = []
            started = time.process_time()
            for v, m, d in sizes:
                chosen.append(engine.place(v, m, d))
            rates["%s@%d" % (strategy, count)] = len(sizes) / (time.process_time() - started)
            digest.update(json.dumps([strategy, count, chosen]).encode())
            decisions += len(chosen)
    # Filters in play (groups, virt types, exclusions, measured loads), indexed and exhaustive.
    rng = random.Random(SEED + 7)
    specs = host_specs(random.Random(SEED + 300), 300)
    for spec in specs:
        spec["virt_types"] = rng.choice([["kvm", "qemu"], ["qemu"]])
    names = [s["name"] for s in specs]
    requests = _mixed_requests(rng, names, 400)
    for use_index in (True, False):
        fleet = P.Fleet([P.Host(reserved_host_memory_mb=RESERVED_MB, **spec) for spec in specs], use_index=use_index)
        results = fleet.place_batch(requests)
        chosen = [(r.name, getattr(result, "host", None)) for r, result in zip(requests, results)]
        digest.update(json.dumps(chosen).encode())
        decisions += len(chosen)
    return {"decisions": digest.hexdigest(), "count": decisions, "rates": rates}


def against(rev, rounds):
    """Today's probe and REV's side by side (bench/revisions.py): identical decisions, rate ratios."""
    from revisions import side_by_side

    results = side_by_side(Path(__file__), [], rev, rounds)
    identical = all(cur["decisions"] == base["decisions"] and cur["count"] == base["count"] for cur, base in results)
    print("command: python bench/placement.py --against %s --rounds %d" % (rev, rounds))
    print("decisions identical (%d per probe, %d rounds): %s"
          % (results[0][0]["count"], rounds, "yes" if identical else "NO"))
    print("| workload | baseline / CPU s | new / CPU s | new / baseline (median of %d) |" % rounds)
    print("|---|---|---|---|")
    for key in results[0][0]["rates"]:
        ratios = [cur["rates"][key] / base["rates"][key] for cur, base in results]
        baseline = _median([base["rates"][key] for _c, base in results])
        current = _median([cur["rates"][key] for cur, _b in results])
        print("| %s | %.0f | %.0f | %.3f |" % (key, baseline, current, _median(ratios)))
    return identical


def _median(values):
    values = sorted(values)
    half = len(values) // 2
    return values[half] if len(values) % 2 else (values[half - 1] + values[half]) / 2.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, short budgets: a smoke run")
    parser.add_argument("--probe", action="store_true", help="fixed workload, one JSON line (bench/revisions.py)")
    parser.add_argument("--against", metavar="REV", help="compare with REV's engine in one run")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of --against")
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe()))
        return
    if args.against:
        sys.exit(0 if against(args.against, args.rounds) else 1)
    if args.quick:
        cluster_sizes, decisions, budget = (100, 1000), 300, 0.3
        args.batch_hosts, args.batch_vms = 200, 2000
    else:
        cluster_sizes, decisions, budget = (100, 1000, 5000, 10000), 3000, 2.0
        args.batch_hosts, args.batch_vms = 1000, 10000
    rows = rate_table(cluster_sizes, decisions, budget)
    batch = batch_table(args.batch_hosts, args.batch_vms)
    print(report(rows, batch, args))


if __name__ == "__main__":
    main()
