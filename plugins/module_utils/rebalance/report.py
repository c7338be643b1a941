# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the patrol shows a plan: host loads before and after, their spread, the plan as a table,
and the loads alone (``loads_of``, the playbook's after-report)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.model import shown_threshold
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.measures import host_view, rounded, shown_percent


def _std(values):
    values = [v for v in values if v is not None]
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def fleet_loads(fleet, names):
    """{host: {cpu_percent, memory_percent}} of the model's hosts ``names``, for display."""
    return {n: {"cpu_percent": shown_percent(fleet.by_name[n].cpu_percent),
                "memory_percent": shown_percent(fleet.by_name[n].memory_percent)}
            for n in names}


def spread(loads):
    """Standard deviation of the hosts' CPU and memory percent, in points."""
    return {"cpu": round(_std([v["cpu_percent"] for v in loads.values()]), 2),
            "memory": round(_std([v["memory_percent"] for v in loads.values()]), 2)}


def table(result):
    """The plan as text lines: VM, from, to, why, predicted host loads."""
    rows = [("VM", "action", "from", "to", "predicted after (cpu% / mem%)", "why")]
    for a in result["actions"]:
        pred = ", ".join("%s %s/%s" % (h, v["cpu_percent"], v["memory_percent"]) for h, v in a["predicted"].items())
        what = a["action"] if a["action"] == "migrate" else "scale %s->%s vCPUs" % (a["vcpus_from"], a["vcpus"])
        rows.append((a["vm"], what, a["from"], a["to"], pred, a["why"]))
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    lines = []
    for row in rows:
        lines.append("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row[:5])) + "  " + str(row[5]))
    if not result["actions"]:
        lines.append("(nothing to do)")
    lines.append("")
    lines.append("host loads (cpu% / mem%): " + ", ".join(
        "%s %s/%s -> %s/%s" % (h, result["before"][h]["cpu_percent"], result["before"][h]["memory_percent"],
                               result["after"][h]["cpu_percent"], result["after"][h]["memory_percent"])
        for h in sorted(result["before"])))
    lines.append("spread (std dev, points): cpu %.2f -> %.2f, memory %.2f -> %.2f" % (
        result["spread"]["before"]["cpu"], result["spread"]["after"]["cpu"],
        result["spread"]["before"]["memory"], result["spread"]["after"]["memory"]))
    return lines


def loads_of(facts_by_host, inventory_by_host=None):
    """Per reachable host {cpu_percent, memory_percent} as the patrol reads them, and the spread."""
    inventory_by_host = inventory_by_host or {}
    loads = {}
    for name in sorted(facts_by_host):
        view = host_view(name, facts_by_host[name], inventory_by_host.get(name) or {})
        if view.reachable:
            loads[name] = {"cpu_percent": rounded(view.cpu), "memory_percent": rounded(view.memory),
                           "cpu_threshold": shown_threshold(view.cpu_threshold),
                           "memory_threshold": shown_threshold(view.memory_threshold),
                           "over": bool((view.cpu or 0) > view.cpu_threshold or (view.memory or 0) > view.memory_threshold)}
    return {"hosts": loads, "spread": spread(loads),
            "over": sorted(n for n, v in loads.items() if v["over"]),
            "unreachable": sorted(n for n in facts_by_host if n not in loads)}
