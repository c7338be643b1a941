# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placement strategies: how the hosts that pass every filter are ranked (kube-scheduler's score
plugins, Nova's weighers). Each strategy is one class with

* ``score(u_cpu, u_mem, u_disk)``: higher wins; the u are allocated fractions after placement;
* ``terms(u_cpu, u_mem, u_disk)`` and ``formula(terms)``: the score's parts for the explanation;
* ``node_bound(deltas, demand)``: a function of a node's stats (index.Slot) giving an upper bound on the
  score of every host below it, for the index's branch and bound (docs/placement.md).

A new strategy is one class here, listed in ``STRATEGY_CLASSES``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.index import (
    BOUND_SLACK,
    INV_SQRT2,
    INV_SQRT3,
    INV_SQRT6,
    Slot,
)


def score_spread(u_cpu, u_mem, u_disk):
    """Least allocated: mean free fraction after placement (Kubernetes LeastAllocated)."""
    return 1.0 - (u_cpu + u_mem + u_disk) / 3.0


def score_pack(u_cpu, u_mem, u_disk):
    """Most allocated: mean allocated fraction after placement (Kubernetes MostAllocated)."""
    return (u_cpu + u_mem + u_disk) / 3.0


def score_balanced(u_cpu, u_mem, u_disk):
    """Mean free fraction minus the imbalance (population std dev) of the three fractions.

    The std dev is the length of Mishra & Sahoo's resource-imbalance vector divided by sqrt(3);
    Kubernetes' NodeResourcesBalancedAllocation scores 1 - std dev the same way.
    """
    mean = (u_cpu + u_mem + u_disk) / 3.0
    a = u_cpu - mean
    b = u_mem - mean
    c = u_disk - mean
    return (1.0 - mean) - math.sqrt((a * a + b * b + c * c) / 3.0)


class Strategy:
    """Base of the strategies. ``deltas`` (from the index) holds per hardware shape the request's
    (d_cpu, d_mem, d_disk, their sum, their shift of x, their shift of y), d_r = demand_r / capacity_r."""

    name = None
    score = None

    def terms(self, u_cpu, u_mem, u_disk):
        raise NotImplementedError

    def formula(self, terms):
        raise NotImplementedError

    def node_bound(self, deltas, demand):
        raise NotImplementedError


def _mixed_deltas(st, dv, dm, dd):
    """Lowest and highest d_r over a node of several shapes: demand over its largest and smallest capacity."""
    return (dv / st[Slot.CAP_CPU_MAX], dm / st[Slot.CAP_MEM_MAX], dd / st[Slot.CAP_DISK_MAX],
            dv / st[Slot.CAP_CPU_MIN], dm / st[Slot.CAP_MEM_MIN], dd / st[Slot.CAP_DISK_MIN])


class Spread(Strategy):
    name = "spread"
    score = staticmethod(score_spread)

    def terms(self, u_cpu, u_mem, u_disk):
        return {"free": 1.0 - (u_cpu + u_mem + u_disk) / 3.0}

    def formula(self, terms):
        return "mean free fraction %.4f" % terms["free"]

    def node_bound(self, deltas, demand):
        score = self.score
        dv, dm, dd = demand.vcpus, demand.memory_mb, demand.disk_gb
        shape_, point, sum_min = Slot.SHAPE, Slot.POINT, Slot.SUM_MIN
        f_cpu, f_mem, f_disk = Slot.F_CPU_MIN, Slot.F_MEM_MIN, Slot.F_DISK_MIN

        def bound(st):
            shape = st[shape_]
            if shape >= 0:
                d0, d1, d2, dsum, _qx, _qy = deltas[shape]
                if st[point]:
                    # Every host below has these very fractions: their score by the same float
                    # operations, so exact ties stay exact.
                    return score(st[f_cpu] + d0, st[f_mem] + d1, st[f_disk] + d2)
                return 1.0 - (st[sum_min] + dsum) / 3.0 + BOUND_SLACK
            l0, l1, l2, _h0, _h1, _h2 = _mixed_deltas(st, dv, dm, dd)
            return 1.0 - (st[sum_min] + (l0 + l1 + l2)) / 3.0 + BOUND_SLACK
        return bound


class Pack(Strategy):
    name = "pack"
    score = staticmethod(score_pack)

    def terms(self, u_cpu, u_mem, u_disk):
        return {"allocated": (u_cpu + u_mem + u_disk) / 3.0}

    def formula(self, terms):
        return "mean allocated fraction %.4f" % terms["allocated"]

    def node_bound(self, deltas, demand):
        score = self.score
        dv, dm, dd = demand.vcpus, demand.memory_mb, demand.disk_gb
        one = 1.0 + BOUND_SLACK
        shape_, point, sum_max = Slot.SHAPE, Slot.POINT, Slot.SUM_MAX
        f_cpu, f_mem, f_disk = Slot.F_CPU_MAX, Slot.F_MEM_MAX, Slot.F_DISK_MAX

        def bound(st):
            shape = st[shape_]
            if shape >= 0:
                d0, d1, d2, dsum, _qx, _qy = deltas[shape]
                if st[point]:
                    return score(st[f_cpu] + d0, st[f_mem] + d1, st[f_disk] + d2)
                return (st[sum_max] + dsum) / 3.0 + BOUND_SLACK
            _l0, _l1, _l2, h0, h1, h2 = _mixed_deltas(st, dv, dm, dd)
            # Hosts that pass the capacity filter have u <= 1 in every resource the VM grows.
            hi0 = min(st[f_cpu] + h0, one) if dv > 0 else st[f_cpu] + h0
            hi1 = min(st[f_mem] + h1, one) if dm > 0 else st[f_mem] + h1
            hi2 = min(st[f_disk] + h2, one) if dd > 0 else st[f_disk] + h2
            return min((st[sum_max] + (h0 + h1 + h2)) / 3.0, (hi0 + hi1 + hi2) / 3.0) + BOUND_SLACK
        return bound


class Balanced(Strategy):
    name = "balanced"
    score = staticmethod(score_balanced)

    def terms(self, u_cpu, u_mem, u_disk):
        mean = (u_cpu + u_mem + u_disk) / 3.0
        std = math.sqrt(((u_cpu - mean) ** 2 + (u_mem - mean) ** 2 + (u_disk - mean) ** 2) / 3.0)
        return {"free": 1.0 - mean, "imbalance": std}

    def formula(self, terms):
        return "free %.4f - imbalance %.4f" % (terms["free"], terms["imbalance"])

    def node_bound(self, deltas, demand):
        score = self.score
        dv, dm, dd = demand.vcpus, demand.memory_mb, demand.disk_gb
        sqrt = math.sqrt
        shape_, point, sum_min = Slot.SHAPE, Slot.POINT, Slot.SUM_MIN
        f_cpu, f_mem, f_disk = Slot.F_CPU_MIN, Slot.F_MEM_MIN, Slot.F_DISK_MIN
        x_min, x_max, y_min, y_max = Slot.X_MIN, Slot.X_MAX, Slot.Y_MIN, Slot.Y_MAX

        def bound(st):
            shape = st[shape_]
            if shape >= 0:
                d0, d1, d2, dsum, qx, qy = deltas[shape]
                if st[point]:
                    return score(st[f_cpu] + d0, st[f_mem] + d1, st[f_disk] + d2)
                x_lo = st[x_min] + qx
                x_hi = st[x_max] + qx
                y_lo = st[y_min] + qy
                y_hi = st[y_max] + qy
            else:
                l0, l1, l2, h0, h1, h2 = _mixed_deltas(st, dv, dm, dd)
                x_lo = st[x_min] + (l0 - h1) * INV_SQRT2
                x_hi = st[x_max] + (h0 - l1) * INV_SQRT2
                y_lo = st[y_min] + (l0 + l1 - 2.0 * h2) * INV_SQRT6
                y_hi = st[y_max] + (h0 + h1 - 2.0 * l2) * INV_SQRT6
                dsum = l0 + l1 + l2
            # In the orthonormal basis (1,1,1)/sqrt3, (1,-1,0)/sqrt2, (1,1,-2)/sqrt6 the score is
            # 1 - mean(u) - |(x, y)| / sqrt3, (x, y) the imbalance vector of u. The mean is at least
            # (smallest summed fraction + deltas) / 3; |(x, y)| at least the distance from the
            # origin to the rectangle of (x, y) shifted by the deltas.
            dx = x_lo if x_lo > 0.0 else (-x_hi if x_hi < 0.0 else 0.0)
            dy = y_lo if y_lo > 0.0 else (-y_hi if y_hi < 0.0 else 0.0)
            return 1.0 - (st[sum_min] + dsum) / 3.0 - sqrt(dx * dx + dy * dy) * INV_SQRT3 + BOUND_SLACK
        return bound


# The registry: request.strategy names one of these. Order is the documented one.
STRATEGY_CLASSES = (Balanced, Spread, Pack)
BY_NAME = dict((cls.name, cls()) for cls in STRATEGY_CLASSES)
STRATEGIES = tuple(cls.name for cls in STRATEGY_CLASSES)
