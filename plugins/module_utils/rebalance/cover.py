# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fewest VMs that cool a host: an exact branch-and-bound cover over subsets by size, cheapest
first, and a greedy cover when the search is cut short."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

_EPS = 1e-9
_INF = float("inf")


def min_cover(items, need_cpu, need_mem, search_limit=200000):
    """Fewest items whose (cpu, mem) sums reach (need_cpu, need_mem); among those the least
    total cost. ``items``: sequence of (cpu, mem, cost). Returns (indices, exact) with indices
    None when even all items fall short; ``exact`` False when the search hit ``search_limit``
    and a greedy cover was returned instead."""
    need_cpu = max(0.0, need_cpu)
    need_mem = max(0.0, need_mem)
    if need_cpu <= _EPS and need_mem <= _EPS:
        return [], True
    n = len(items)
    if sum(i[0] for i in items) + _EPS < need_cpu or sum(i[1] for i in items) + _EPS < need_mem:
        return None, True
    order = sorted(range(n), key=lambda i: (items[i][2], -items[i][0] - items[i][1], i))
    cs = [items[i][0] for i in order]
    ms = [items[i][1] for i in order]
    costs = [items[i][2] for i in order]
    top_c = [0.0]
    for v in sorted(cs, reverse=True):
        top_c.append(top_c[-1] + v)
    top_m = [0.0]
    for v in sorted(ms, reverse=True):
        top_m.append(top_m[-1] + v)
    budget = [search_limit]

    for k in range(1, n + 1):
        if top_c[k] + _EPS < need_cpu or top_m[k] + _EPS < need_mem:
            continue
        best = [_INF, None]
        chosen = []

        def dfs(start, depth, sc, sm, cost):
            budget[0] -= 1
            if budget[0] < 0:
                return
            left = k - depth
            if left == 1:
                rc = need_cpu - sc - _EPS
                rm = need_mem - sm - _EPS
                for j in range(start, n):
                    if cost + costs[j] >= best[0]:
                        return  # sorted by cost: nothing cheaper follows
                    if cs[j] >= rc and ms[j] >= rm:
                        best[0] = cost + costs[j]
                        best[1] = chosen + [j]
                        return
                return
            for j in range(start, n - left + 1):
                # the cheapest completion from here costs at least the next ``left`` costs
                if cost + sum(costs[j:j + left]) >= best[0]:
                    return
                if sc + cs[j] + top_c[left - 1] + _EPS < need_cpu or sm + ms[j] + top_m[left - 1] + _EPS < need_mem:
                    continue
                chosen.append(j)
                dfs(j + 1, depth + 1, sc + cs[j], sm + ms[j], cost + costs[j])
                chosen.pop()
                if budget[0] < 0:
                    return

        dfs(0, 0, 0.0, 0.0, 0.0)
        if budget[0] < 0:
            break
        if best[1] is not None:
            return sorted(order[j] for j in best[1]), True
    return greedy_cover(items, need_cpu, need_mem), False


def greedy_cover(items, need_cpu, need_mem):
    """Items taken by the largest share of the remaining need (then cheapest) until it is met;
    None when they cannot meet it."""
    left = set(range(len(items)))
    picked = []
    nc, nm = need_cpu, need_mem
    while (nc > _EPS or nm > _EPS) and left:
        def gain(i):
            c, m, cost = items[i]
            g = (min(c, nc) / nc if nc > _EPS else 0.0) + (min(m, nm) / nm if nm > _EPS else 0.0)
            return (g, -cost, -i)
        i = max(left, key=gain)
        if gain(i)[0] <= 0:
            return None
        left.discard(i)
        picked.append(i)
        nc -= items[i][0]
        nm -= items[i][1]
    return sorted(picked) if nc <= _EPS and nm <= _EPS else None
