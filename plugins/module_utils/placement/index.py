# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The index: a bounding-box tree over the usable hosts for exact branch and bound.

Hosts are grouped by hardware shape (capacities, cpus, memory); each shape gets a k-d tree over
the coordinates the scores depend on: the mean allocated fraction and the imbalance vector (x, y)
of the allocated fractions. Each node keeps stats over the hosts below it: the core ones of
``Slot`` (what the strategies' bounds read) and those the filters declare (``NodeStat``, what
their node tests read). Per request, a node is pruned when a filter's node test proves that no
host below passes it, else the strategy bounds the score of every host below. Best-first search
stops when the best host found beats every open node's bound, ties included (equal bound and a
higher lowest rank), so the result is the exhaustive optimum (docs/placement.md gives the bounds).

The index knows no filter or strategy: it is handed them (fleet.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import heapq
import math
import operator
from collections import namedtuple

# Slack added to the tree's upper bounds wherever they are not computed by the very same float
# operations as a host's score; far above rounding error, far below any meaningful score gap.
BOUND_SLACK = 1e-9
INV_SQRT2 = 1.0 / math.sqrt(2.0)
INV_SQRT6 = 1.0 / math.sqrt(6.0)
INV_SQRT3 = 1.0 / math.sqrt(3.0)
LEAF_SIZE = 8

# What a filter's node test says of the hosts below a node.
NONE_PASS, MAY_PASS, ALL_PASS = 0, 1, 2

# A hardware shape: within one, a request's d_r = demand_r / capacity_r is the same for every host.
Shape = namedtuple("Shape", "cap_cpu cap_mem cap_disk memory_mb cpus")

# A stat a filter keeps per node: ``name`` (how the filter finds its slot), ``op`` how children
# combine ("min", "max", or "or" for bit masks and frozensets), ``value`` host -> value.
NodeStat = namedtuple("NodeStat", "name op value")


class Slot:
    """Named offsets of the core stats of a node (filters' stats follow, from ``END``).

    Over the hosts below: min / max allocated fraction (F_*), min / max capacity (CAP_*), min / max
    of the summed fractions, of x and of y; the lowest name rank; the shape number (-1: several
    shapes); whether every host has the same fractions (a point box).
    """

    F_CPU_MIN, F_MEM_MIN, F_DISK_MIN = 0, 1, 2
    F_CPU_MAX, F_MEM_MAX, F_DISK_MAX = 3, 4, 5
    CAP_CPU_MIN, CAP_MEM_MIN, CAP_DISK_MIN = 6, 7, 8
    CAP_CPU_MAX, CAP_MEM_MAX, CAP_DISK_MAX = 9, 10, 11
    SUM_MIN, SUM_MAX, X_MIN, X_MAX, Y_MIN, Y_MAX = 12, 13, 14, 15, 16, 17
    RANK_MIN = 18
    SHAPE, POINT = 19, 20
    END = 21

    MIN = (F_CPU_MIN, F_MEM_MIN, F_DISK_MIN, CAP_CPU_MIN, CAP_MEM_MIN, CAP_DISK_MIN, SUM_MIN, X_MIN, Y_MIN, RANK_MIN)
    MAX = (F_CPU_MAX, F_MEM_MAX, F_DISK_MAX, CAP_CPU_MAX, CAP_MEM_MAX, CAP_DISK_MAX, SUM_MAX, X_MAX, Y_MAX)


def _union(values):
    """Bitwise or of ints, union of frozensets."""
    return functools.reduce(operator.or_, values)


class _Index:
    """The tree, its node stats and the search (see the module docstring)."""

    def __init__(self, hosts, node_stats=(), leaf_size=LEAF_SIZE):
        self.leaf_size = leaf_size
        self.node_stats = tuple(node_stats)
        # name -> offset of each filter stat, and the offsets by how they combine
        self.slot = {}
        ops = {"min": [], "max": [], "or": []}
        for number, stat in enumerate(self.node_stats):
            self.slot[stat.name] = Slot.END + number
            ops[stat.op].append(Slot.END + number)
        self._min_slots = Slot.MIN + tuple(ops["min"])
        self._max_slots = Slot.MAX + tuple(ops["max"])
        self._or_slots = tuple(ops["or"])
        self._leaf_ops = [({"min": min, "max": max}.get(stat.op, _union), stat.value) for stat in self.node_stats]
        self.build(hosts)

    def build(self, hosts):
        self.stats = []
        self.children = []
        self.members = []
        self.parent = []
        self.leaf_of = {}
        self.updates = 0
        self.size = len(hosts)
        by_shape = {}
        for host in hosts:
            by_shape.setdefault(Shape(host.cap_cpu, host.cap_mem, host.cap_disk, host.memory_mb, host.cpus),
                                []).append(host)
        self.shapes = sorted(by_shape)
        self.shape_of = {}
        for number, shape in enumerate(self.shapes):
            for host in by_shape[shape]:
                self.shape_of[host.name] = number
        self.root = self._join([by_shape[s] for s in self.shapes], -1) if hosts else None

    def _new_node(self, parent):
        self.stats.append(None)
        self.children.append(None)
        self.members.append(None)
        self.parent.append(parent)
        return len(self.stats) - 1

    def _join(self, groups, parent):
        # One subtree per hardware shape: within it the request's deltas d_r / cap_r are the
        # same for every host, and boxes of equal hosts are points.
        if len(groups) == 1:
            return self._build_shape(groups[0], parent)
        node = self._new_node(parent)
        half = len(groups) // 2
        left = self._join(groups[:half], node)
        right = self._join(groups[half:], node)
        self.children[node] = (left, right)
        self.stats[node] = self._merge(self.stats[left], self.stats[right])
        return node

    def _build_shape(self, hosts, parent):
        """k-d split on (mean allocated fraction, x, y), the coordinates the scores depend on."""
        node = self._new_node(parent)
        if len(hosts) <= self.leaf_size:
            self.members[node] = hosts
            for host in hosts:
                self.leaf_of[host.name] = node
            self.stats[node] = self._leaf_stats(hosts)
            return node
        keys = (
            lambda h: (h.f_cpu + h.f_mem + h.f_disk) / 3.0,
            # weighted as in the balanced score: |(x, y)| / sqrt3
            lambda h: (h.f_cpu - h.f_mem) * (INV_SQRT2 * INV_SQRT3),
            lambda h: (h.f_cpu + h.f_mem - 2.0 * h.f_disk) * (INV_SQRT6 * INV_SQRT3),
        )
        spans = []
        for number, key in enumerate(keys):
            values = [key(h) for h in hosts]
            spans.append((max(values) - min(values), -number))
        key = keys[-max(spans)[1]]
        hosts.sort(key=lambda h: (key(h), h.rank))
        half = len(hosts) // 2
        left = self._build_shape(hosts[:half], node)
        right = self._build_shape(hosts[half:], node)
        self.children[node] = (left, right)
        self.stats[node] = self._merge(self.stats[left], self.stats[right])
        return node

    def _leaf_stats(self, hosts):
        first = hosts[0]
        f_cpu = [h.f_cpu for h in hosts]
        f_mem = [h.f_mem for h in hosts]
        f_disk = [h.f_disk for h in hosts]
        sums = [h.f_cpu + h.f_mem + h.f_disk for h in hosts]
        # x and y of the imbalance plane, inline: leaf stats are recomputed on every placement.
        xs = [(h.f_cpu - h.f_mem) * INV_SQRT2 for h in hosts]
        ys = [(h.f_cpu + h.f_mem - 2.0 * h.f_disk) * INV_SQRT6 for h in hosts]
        point = all(h.f_cpu == first.f_cpu and h.f_mem == first.f_mem and h.f_disk == first.f_disk
                    for h in hosts)
        st = [
            min(f_cpu), min(f_mem), min(f_disk), max(f_cpu), max(f_mem), max(f_disk),
            first.cap_cpu, first.cap_mem, first.cap_disk, first.cap_cpu, first.cap_mem, first.cap_disk,
            min(sums), max(sums), min(xs), max(xs), min(ys), max(ys),
            min(h.rank for h in hosts), self.shape_of[first.name], point,
        ]
        for combine, value in self._leaf_ops:
            st.append(combine(map(value, hosts)))
        return st

    def _merge(self, a, b):
        merged = list(a)
        for i in self._min_slots:
            if b[i] < merged[i]:
                merged[i] = b[i]
        for i in self._max_slots:
            if b[i] > merged[i]:
                merged[i] = b[i]
        for i in self._or_slots:
            merged[i] = a[i] | b[i]
        same_shape = a[Slot.SHAPE] == b[Slot.SHAPE]
        if not same_shape:
            merged[Slot.SHAPE] = -1
        merged[Slot.POINT] = bool(same_shape and a[Slot.POINT] and b[Slot.POINT]
                                  and a[Slot.F_CPU_MIN] == b[Slot.F_CPU_MIN] and a[Slot.F_MEM_MIN] == b[Slot.F_MEM_MIN]
                                  and a[Slot.F_DISK_MIN] == b[Slot.F_DISK_MIN])
        return merged

    def update(self, host):
        """Recompute the boxes on the path of ``host`` after its state changed; the path above a
        node whose stats did not change is left as it is (its stats depend on its children only)."""
        node = self.leaf_of.get(host.name)
        if node is None:
            return
        self.updates += 1
        stats = self.stats
        new = self._leaf_stats(self.members[node])
        while True:
            if new == stats[node]:
                return
            stats[node] = new
            node = self.parent[node]
            if node < 0:
                return
            left, right = self.children[node]
            new = self._merge(stats[left], stats[right])

    def shape_deltas(self, demand):
        """Per shape: (d_cpu, d_mem, d_disk, their sum, their shift of x, of y) for ``demand``."""
        result = []
        for shape in self.shapes:
            d0 = demand.vcpus / shape.cap_cpu
            d1 = demand.memory_mb / shape.cap_mem
            d2 = demand.disk_gb / shape.cap_disk
            result.append((d0, d1, d2, d0 + d1 + d2, (d0 - d1) * INV_SQRT2, (d0 + d1 - 2.0 * d2) * INV_SQRT6))
        return result

    def search(self, demand, strategy, checks, excluded_ranks):
        """(score, rank, host) of the best host for a full-size ``demand``, or None.

        ``checks``: (filter, context) of the filters in play that the index tests itself: each
        prunes nodes by its ``node_test`` and keeps the hosts of a leaf that pass by its ``leaf_test``.
        Hosts of ``excluded_ranks`` (rejected by a request rule) are skipped. The caller has made
        sure every host's demand is ``demand`` (no in-place delta).
        """
        if self.root is None:
            return None
        deltas = self.shape_deltas(demand)
        bound = strategy.node_bound(deltas, demand)
        score_of = strategy.score
        checks = [(rule, context) for rule, context in checks if not rule.every_host_passes(self, demand, context)]
        node_tests = []
        for rule, context in checks:
            test = rule.node_test(self, demand, context)
            if test is not None:
                node_tests.append(test)
        leaf_tests = [rule.leaf_test(demand, context) for rule, context in checks]
        stats = self.stats
        children = self.children
        members = self.members
        rank_min, shape_ = Slot.RANK_MIN, Slot.SHAPE

        # A filter without a node test is asked of every host: then no node is proven.
        can_prove = len(node_tests) == len(checks)
        pair = len(node_tests) == 2
        first_test, second_test = node_tests if pair else (None, None)
        leaf_test = leaf_tests[0] if len(leaf_tests) == 1 else None

        best_score = -math.inf
        best_rank = math.inf
        best_host = None
        root = stats[self.root]
        # Entries: (-bound, lowest rank, node, True when every host below passes the filters, or
        # None: not judged yet). A node is judged when the search reaches it, not when it is
        # bounded: nodes never reached are never judged.
        heap = [(-bound(root), root[rank_min], self.root, None if checks else True)]
        pop = heapq.heappop
        push = heapq.heappush
        while heap:
            neg, rank, node, proven = pop(heap)
            upper = -neg
            if upper < best_score or (upper == best_score and rank > best_rank):
                break
            st = stats[node]
            hosts = members[node]
            if proven is None and hosts is not None:
                proven = False   # a leaf: its hosts are tested one by one anyway
            if proven is None:
                # The filters' verdict: drop the node when one says no host below passes; below
                # a node where every one says all pass, nothing is tested again.
                if pair:
                    # Two node tests (capacity and live utilization, the usual request): unrolled.
                    answer = first_test(st)
                    if answer == NONE_PASS:
                        continue
                    second = second_test(st)
                    if second == NONE_PASS:
                        continue
                    proven = can_prove and answer == ALL_PASS and second == ALL_PASS
                else:
                    proven = can_prove
                    for test in node_tests:
                        answer = test(st)
                        if answer != ALL_PASS:
                            proven = False
                            if answer == NONE_PASS:
                                break
                    else:
                        answer = MAY_PASS
                    if answer == NONE_PASS:
                        continue
            if hosts is None:
                for child in children[node]:
                    st = stats[child]
                    upper = bound(st)
                    if upper < best_score or (upper == best_score and st[rank_min] > best_rank):
                        continue
                    push(heap, (-upper, st[rank_min], child, proven or None))
                continue
            d0, d1, d2 = deltas[st[shape_]][:3]
            if excluded_ranks:
                hosts = [host for host in hosts if host.rank not in excluded_ranks]
            if not proven:
                if leaf_test is not None:
                    hosts = leaf_test(hosts)
                else:
                    for test in leaf_tests:
                        hosts = test(hosts)
            for host in hosts:
                score = score_of(host.f_cpu + d0, host.f_mem + d1, host.f_disk + d2)
                if score > best_score or (score == best_score and host.rank < best_rank):
                    best_score, best_rank, best_host = score, host.rank, host
        if best_host is None:
            return None
        return best_score, best_rank, best_host
