# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rebalancing: what the patrol does about hot hosts (pure logic, stdlib only).

docs/patrol.md describes the model; the short version:

* Each run adds one observation per host (CPU and memory percent) to a small history kept by
  the caller between runs. A host is **hot** when a threshold is exceeded in its last K
  observations (oVirt's CpuOverCommitDurationMinutes, counted in samples).
* For a hot host, ``min_cover`` finds the fewest VMs whose removal brings every exceeded
  resource under its threshold, and among those the cheapest to migrate (memory to copy,
  stretched by the dirty rate). ``placement.Fleet`` chooses each VM's target: every placement
  filter applies (capacity, anti-affinity, maintenance, live utilization), so a target stays
  under its thresholds after the move. Moves are applied to the in-memory fleet as they are
  planned, so later decisions see earlier ones.
* A VM moves at most once per plan, never within ``cooldown_seconds`` of its last move, and
  never back to a host it left within that time: no VM bounces.
* ``autoscale``: a VM whose own CPU stays over ``vm_cpu_threshold`` percent of its vCPUs is
  first scaled up in place when its host passes placement's resize check.
* ``mode='consolidate'``: hosts whose CPU and memory stay under the low thresholds are emptied
  onto the others (strategy pack), whole hosts only, and reported.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import math
import time

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    Conflict,
    PlacementError,
    ValidationError,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement import (
    INVENTORY_DEFAULTS,
    Fleet,
    Host,
    Request,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.scaling import Sizes, target_sizes
from ansible_collections.kvmfleet.iaas.plugins.module_utils.utilization import host_vm_cpu_percent

MODES = ("balance", "consolidate")
CPU_SOURCES = ("host", "vms")
HISTORY_VERSION = 1

# Options of ``plan`` and their defaults (docs/patrol.md).
DEFAULTS = {
    "mode": "balance",
    "hot_observations": 3,          # K: consecutive observations over a threshold
    "max_moves": 10,                # migrations per run
    "cooldown_seconds": 3600.0,     # a moved VM stays put, and never returns, for this long
    "max_age_seconds": 1800.0,      # observations older than this are forgotten
    "keep_observations": 10,        # observations kept per host and per VM
    "autoscale": False,
    "vm_cpu_threshold": 90.0,       # percent of the VM's vCPUs
    "autoscale_step": 1,            # vCPUs added per scale-up, or a percentage such as "50%" (scaling.py)
    "low_cpu_threshold": 20.0,      # consolidate: hosts under both low thresholds are emptied
    "low_memory_threshold": 50.0,
    "min_hosts": 1,                 # consolidate: hosts that keep running VMs at least
    "strategy": "balanced",         # placement strategy for balancing targets (consolidate: pack)
    "managed_only": True,           # move only domains kvmfleet made
    "migration_bandwidth_mib_s": 1000.0,
    "target_margin": 0.0,           # aim this many points under the threshold
    "search_limit": 200000,         # nodes of the exact subset search per host, then greedy
}

# Per-host inventory variables of the patrol (docs/patrol.md); thresholds default to placement's.
PATROL_VARS = ("kvmfleet_patrol_cpu_source", "kvmfleet_cpu_source", "kvmfleet_patrol_cpu_threshold",
               "kvmfleet_patrol_memory_threshold", "kvmfleet_migration_storage", "kvmfleet_virt_type")
_EPS = 1e-9
_INF = float("inf")


# --------------------------------------------------------------------------- small helpers

def _num(value, default=None):
    if value is None or isinstance(value, bool):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _flag(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _std(values):
    values = [v for v in values if v is not None]
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _r(value, digits=1):
    return None if value is None else round(value, digits)


def _pct(value):
    """A predicted percentage for display: rounded, never below 0 (the model subtracts a VM's
    full memory, which a host's live figure may not have counted)."""
    return None if value is None else round(max(0.0, value), 1)


def options_from(**given):
    """DEFAULTS overlaid with ``given`` (None means default), checked."""
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ValidationError("unknown patrol options: %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    opts = dict(DEFAULTS)
    for key, value in given.items():
        if value is not None:
            opts[key] = value
    if opts["mode"] not in MODES:
        raise ValidationError("mode must be one of %s, got %r" % (", ".join(MODES), opts["mode"]))
    for key in ("hot_observations", "max_moves", "keep_observations", "min_hosts", "search_limit"):
        try:
            opts[key] = int(opts[key])
        except (TypeError, ValueError):
            raise ValidationError("%s must be an integer, got %r" % (key, opts[key]))
    if opts["hot_observations"] < 1:
        raise ValidationError("hot_observations must be 1 or more")
    if opts["max_moves"] < 0:
        raise ValidationError("max_moves must be 0 or more")
    opts["keep_observations"] = max(opts["keep_observations"], opts["hot_observations"])
    for key in ("cooldown_seconds", "max_age_seconds", "vm_cpu_threshold", "low_cpu_threshold",
                "low_memory_threshold", "migration_bandwidth_mib_s", "target_margin"):
        number = _num(opts[key])
        if number is None:
            raise ValidationError("%s must be a number, got %r" % (key, opts[key]))
        opts[key] = number
    opts["autoscale"] = _flag(opts["autoscale"])
    opts["managed_only"] = _flag(opts["managed_only"])
    return opts


# --------------------------------------------------------------------------- measures

def host_cpu(facts, source="host"):
    """The host CPU percent the patrol reads: host-wide (``utilization.cpu_percent``) or the
    sum of its domains' CPU over its CPUs (``utilization.vm_cpu_percent``, computed from the
    domains when the facts predate that field). None when not sampled."""
    utilization = facts.get("utilization") or {}
    if source == "vms":
        return host_vm_cpu_percent(facts)
    return _num(utilization.get("cpu_percent"))


def migration_cost(memory_mb, dirty_mib_s=None, bandwidth_mib_s=1000.0):
    """MiB a pre-copy live migration sends: memory / (1 - dirty / bandwidth), the geometric
    series of re-sent dirty pages (capped at 10x when the guest dirties as fast as the link)."""
    memory_mb = max(0.0, float(memory_mb or 0))
    ratio = 0.0
    if dirty_mib_s and bandwidth_mib_s and bandwidth_mib_s > 0:
        ratio = min(0.9, max(0.0, float(dirty_mib_s) / bandwidth_mib_s))
    return memory_mb / (1.0 - ratio)


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
    return _greedy_cover(items, need_cpu, need_mem), False


def _greedy_cover(items, need_cpu, need_mem):
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


# --------------------------------------------------------------------------- history

def empty_history():
    return {"version": HISTORY_VERSION, "hosts": {}, "vms": {}, "moves": {}}


def clean_history(history):
    """A usable history from whatever the state file held (unknown content starts over)."""
    if not isinstance(history, dict) or history.get("version") != HISTORY_VERSION:
        return empty_history()
    out = empty_history()
    for key in ("hosts", "vms", "moves"):
        value = history.get(key)
        if isinstance(value, dict):
            out[key] = copy.deepcopy(value)
    return out


def _append(series, now, values, keep, max_age):
    kept = [o for o in (series or []) if isinstance(o, list) and o and _num(o[0]) is not None
            and now - o[0] <= max_age and o[0] < now]
    kept.append([now] + list(values))
    return kept[-keep:]


def _streak(series, index, threshold):
    """Trailing observations whose value at ``index`` exceeds ``threshold``."""
    count = 0
    for obs in reversed(series):
        value = obs[index] if len(obs) > index else None
        if value is None or value <= threshold:
            break
        count += 1
    return count


def _streak_under(series, index, threshold):
    count = 0
    for obs in reversed(series):
        value = obs[index] if len(obs) > index else None
        if value is None or value >= threshold:
            break
        count += 1
    return count


def record_moves(history, actions, now=None):
    """The history with the migrations that were carried out (each {vm, from, to}) recorded,
    so that later runs keep them in cooldown and never send them back."""
    now = time.time() if now is None else float(now)
    history = clean_history(history)
    for action in actions or ():
        if not isinstance(action, dict) or not action.get("vm") or not action.get("to"):
            continue
        if action.get("action", "migrate") != "migrate" or action.get("from") == action.get("to"):
            continue
        history["moves"][str(action["vm"])] = {"from": action.get("from"), "to": action["to"], "time": now}
    history["moves"] = {vm: m for vm, m in history["moves"].items()
                        if isinstance(m, dict) and now - (_num(m.get("time"), 0.0)) <= 7 * 86400}
    return history


# --------------------------------------------------------------------------- the plan

class _HostView:
    __slots__ = ("name", "facts", "inventory", "cpu_source", "cpu_threshold", "memory_threshold",
                 "cpu", "memory", "reachable", "error", "maintenance", "shared_storage", "virt_type")


def _host_view(name, facts, inventory):
    view = _HostView()
    view.name = name
    view.facts = facts
    view.inventory = inventory
    # the patrol's own source, else placement's (kvmfleet_cpu_source), else the host's counters
    source = inventory.get("kvmfleet_patrol_cpu_source") or inventory.get("kvmfleet_cpu_source") or "host"
    if source not in CPU_SOURCES:
        raise ValidationError("kvmfleet_patrol_cpu_source (or kvmfleet_cpu_source) of %s must be one of %s, got %r"
                              % (name, ", ".join(CPU_SOURCES), source))
    view.cpu_source = source

    def threshold(patrol_key, placement_key):
        value = _num(inventory.get(patrol_key))
        if value is None:
            value = _num(inventory.get(placement_key), INVENTORY_DEFAULTS[placement_key])
        return value

    view.cpu_threshold = threshold("kvmfleet_patrol_cpu_threshold", "kvmfleet_cpu_threshold")
    view.memory_threshold = threshold("kvmfleet_patrol_memory_threshold", "kvmfleet_memory_threshold")
    view.reachable = bool(facts) and bool(facts.get("reachable", True))
    view.error = None if view.reachable else ((facts or {}).get("error") or "no facts gathered (host unreachable)")
    view.cpu = host_cpu(facts, source) if view.reachable else None
    view.memory = _num(((facts or {}).get("utilization") or {}).get("memory_percent")) if view.reachable else None
    view.maintenance = (_flag(inventory.get("kvmfleet_maintenance")) or _flag(inventory.get("kvmfleet_disabled"))
                        or (facts or {}).get("maintenance") is True)
    view.shared_storage = (inventory.get("kvmfleet_migration_storage") or "shared") == "shared"
    view.virt_type = inventory.get("kvmfleet_virt_type") or None
    return view


def _patrol_host(view):
    """placement.Host with the patrol's CPU figure and thresholds."""
    facts = view.facts
    if view.reachable:
        facts = dict(facts)
        facts["utilization"] = dict(facts.get("utilization") or {}, cpu_percent=view.cpu)
    inventory = dict(view.inventory)
    if "kvmfleet_cpu_source" in INVENTORY_DEFAULTS:
        inventory["kvmfleet_cpu_source"] = "host"  # utilization.cpu_percent holds the patrol's figure
    inventory["kvmfleet_cpu_threshold"] = view.cpu_threshold
    inventory["kvmfleet_memory_threshold"] = view.memory_threshold
    return Host.from_facts(view.name, facts if view.reachable else (facts or None), inventory)


def _loads(fleet, names):
    return {n: {"cpu_percent": _pct(fleet.by_name[n].cpu_percent), "memory_percent": _pct(fleet.by_name[n].memory_percent)}
            for n in names}


def _spread(loads):
    return {"cpu": round(_std([v["cpu_percent"] for v in loads.values()]), 2),
            "memory": round(_std([v["memory_percent"] for v in loads.values()]), 2)}


def plan(facts_by_host, inventory_by_host=None, history=None, now=None, **options):
    """The patrol's decision for one run.

    facts_by_host: {host: kvmfleet_hypervisor or None (unreachable / not gathered)}.
    inventory_by_host: {host: {variable: value}} (placement's variables and PATROL_VARS).
    history: what the previous run returned as ``history`` (or None).
    Returns a dict: ``actions`` (ordered; each {action: migrate|scale, vm, from, to, why,
    predicted, ...}), ``hosts`` (per-host observation and verdict), ``unreachable``, ``hot``,
    ``before`` / ``after`` (predicted) loads and ``spread``, ``emptied`` (consolidate),
    ``notes``, ``history`` (to store for the next run; moves are added by ``record_moves``).
    """
    opts = options_from(**options)
    now = time.time() if now is None else float(now)
    inventory_by_host = inventory_by_host or {}
    history = clean_history(history)
    names = sorted(facts_by_host)
    views = {n: _host_view(n, facts_by_host[n], inventory_by_host.get(n) or {}) for n in names}
    notes = []
    unreachable = {n: v.error for n, v in views.items() if not v.reachable}
    for name in sorted(unreachable):
        notes.append("%s skipped: %s" % (name, unreachable[name]))

    # 1. observations and hotness
    hosts_out = {}
    for name in names:
        view = views[name]
        if not view.reachable:
            hosts_out[name] = {"reachable": False, "error": view.error, "hot": False}
            continue
        series = _append(history["hosts"].get(name), now, [_r(view.cpu, 2), _r(view.memory, 2)],
                         opts["keep_observations"], opts["max_age_seconds"])
        history["hosts"][name] = series
        streak_cpu = _streak(series, 1, view.cpu_threshold)
        streak_mem = _streak(series, 2, view.memory_threshold)
        low = min(_streak_under(series, 1, opts["low_cpu_threshold"]),
                  _streak_under(series, 2, opts["low_memory_threshold"]))
        k = opts["hot_observations"]
        hot_cpu = streak_cpu >= k
        hot_mem = streak_mem >= k
        entry = {"reachable": True, "cpu_percent": _r(view.cpu), "memory_percent": _r(view.memory),
                 "cpu_threshold": view.cpu_threshold, "memory_threshold": view.memory_threshold,
                 "cpu_source": view.cpu_source, "over_cpu": streak_cpu, "over_memory": streak_mem,
                 "hot_cpu": hot_cpu, "hot_memory": hot_mem, "hot": hot_cpu or hot_mem,
                 "low": low >= k, "maintenance": view.maintenance}
        if view.cpu is None:
            notes.append("%s: no CPU sample (sample_seconds 0?); CPU not judged" % name)
        for what, streak, hot, value, limit in (("cpu", streak_cpu, hot_cpu, view.cpu, view.cpu_threshold),
                                                ("memory", streak_mem, hot_mem, view.memory, view.memory_threshold)):
            if streak and not hot:
                notes.append("%s: %s %.1f%% over %g%% in %d of the %d consecutive observations needed; waiting"
                             % (name, what, value, limit, streak, k))
        hosts_out[name] = entry
    # VM observations (autoscale); VMs not seen now keep their series until it ages out
    vms = {}
    for name in names:
        view = views[name]
        if not view.reachable:
            continue
        for dom in view.facts.get("domains") or ():
            load = _num(dom.get("cpu_percent"))
            vcpus = _num(dom.get("vcpus"))
            if dom.get("state") == "running" and load is not None and vcpus:
                vms[dom["name"]] = _append(history["vms"].get(dom["name"]), now, [round(load / vcpus, 2)],
                                           opts["keep_observations"], opts["max_age_seconds"])
    for vm, series in history["vms"].items():
        if vm not in vms and isinstance(series, list) and series and isinstance(series[-1], list) \
                and now - _num(series[-1][0], 0.0) <= opts["max_age_seconds"]:
            vms[vm] = series
    history["vms"] = vms
    for name in list(history["hosts"]):
        if name not in views:
            del history["hosts"][name]

    # 2. the model
    fleet = Fleet([_patrol_host(views[n]) for n in names])
    reachable = [n for n in names if views[n].reachable]
    before = _loads(fleet, reachable)
    actions = []
    acted = set()
    recent = {}
    for vm, move in history["moves"].items():
        if isinstance(move, dict) and now - _num(move.get("time"), 0.0) < opts["cooldown_seconds"]:
            recent[vm] = move
    domains = {}
    for name in reachable:
        for dom in views[name].facts.get("domains") or ():
            domains[(name, dom["name"])] = dom

    ctx = _Context(fleet, views, opts, actions, acted, recent, domains, notes, now)

    # 3. autoscale first: cheaper than a migration
    if opts["autoscale"]:
        k = opts["hot_observations"]
        for name in reachable:
            for dom in views[name].facts.get("domains") or ():
                series = history["vms"].get(dom["name"]) or []
                if _streak(series, 1, opts["vm_cpu_threshold"]) >= k:
                    ctx.scale_up(name, dom)

    emptied = []
    if opts["mode"] == "balance":
        hot = [n for n in reachable if hosts_out[n]["hot"]]
        hot.sort(key=lambda n: (-ctx.severity(n), n))
        for name in hot:
            ctx.cool(name, hosts_out[name])
    else:
        emptied = ctx.consolidate(reachable, hosts_out)

    after = _loads(ctx.fleet, reachable)
    left_hot = []
    for n in reachable:
        entry = hosts_out[n]
        if ((entry["hot_cpu"] and (after[n]["cpu_percent"] or 0) > views[n].cpu_threshold + _EPS)
                or (entry["hot_memory"] and (after[n]["memory_percent"] or 0) > views[n].memory_threshold + _EPS)):
            left_hot.append(n)
    return {
        "mode": opts["mode"],
        "time": now,
        "actions": actions,
        "moves": sum(1 for a in actions if a["action"] == "migrate"),
        "hosts": hosts_out,
        "hot": sorted(n for n in reachable if hosts_out[n]["hot"]),
        "left_hot": left_hot,
        "unreachable": unreachable,
        "emptied": emptied,
        "before": before,
        "after": after,
        "spread": {"before": _spread(before), "after": _spread(after)},
        "notes": notes,
        "history": history,
        "options": opts,
    }


class _Context:
    def __init__(self, fleet, views, opts, actions, acted, recent, domains, notes, now):
        self.fleet = fleet
        self.views = views
        self.opts = opts
        self.actions = actions
        self.acted = acted
        self.recent = recent
        self.domains = domains
        self.notes = notes
        self.now = now
        self.cap_noted = False

    # ----- measures on the model
    def excess(self, name, hot):
        host = self.fleet.by_name[name]
        view = self.views[name]
        margin = self.opts["target_margin"]
        need_c = host.cpu_percent - (view.cpu_threshold - margin) if hot["hot_cpu"] else 0.0
        need_m = host.memory_percent - (view.memory_threshold - margin) if hot["hot_memory"] else 0.0
        return max(0.0, need_c), max(0.0, need_m)

    def severity(self, name):
        host = self.fleet.by_name[name]
        view = self.views[name]
        return max((host.cpu_percent - view.cpu_threshold) / max(view.cpu_threshold, 1.0),
                   (host.memory_percent - view.memory_threshold) / max(view.memory_threshold, 1.0))

    def moves_left(self):
        return self.opts["max_moves"] - sum(1 for a in self.actions if a["action"] == "migrate")

    def movable(self, name, dom):
        """None when ``dom`` may move, else why not."""
        if dom.get("state") not in ("running", "paused"):
            return "not running"
        if self.opts["managed_only"] and not dom.get("managed", True):
            return "not made by kvmfleet"
        if dom["name"] in self.acted:
            return "already in this plan"
        if dom["name"] in self.recent:
            return "moved %s -> %s less than %ds ago" % (self.recent[dom["name"]].get("from"),
                                                         self.recent[dom["name"]].get("to"),
                                                         self.opts["cooldown_seconds"])
        return None

    def contribution(self, name, dom):
        host = self.fleet.by_name[name]
        load = _num(dom.get("cpu_percent"), 0.0)
        cpu = load / host.cpus if host.cpus else 0.0
        mem = 100.0 * (_num(dom.get("memory_mb"), 0.0)) / host.memory_mb if host.memory_mb else 0.0
        cost = migration_cost(dom.get("memory_mb"), dom.get("dirty_rate_mib_s"), self.opts["migration_bandwidth_mib_s"])
        return cpu, mem, cost

    # ----- one migration
    def request(self, name, dom, strategy, exclude=()):
        view = self.views[name]
        disks = dom.get("disks") or ()
        left = self.recent.get(dom["name"])
        exclude = set(exclude)
        if left and left.get("from"):
            exclude.add(left["from"])  # never back where it came from
        return Request(
            name=dom["name"], vcpus=max(1, int(_num(dom.get("vcpus"), 1))),
            memory_mb=max(1, int(_num(dom.get("memory_mb"), 1))),
            disk_gb=0 if view.shared_storage else int(sum(_num(d.get("capacity_gb"), 0) for d in disks)),
            group=dom.get("group"), current_host=name, migrate=True,
            cpu_percent=_num(dom.get("cpu_percent"), 0.0), strategy=strategy,
            virt_type=view.virt_type, exclude=sorted(exclude - {name}))

    def migrate(self, name, dom, why, strategy, exclude=()):
        """Place and commit; the action, or the reason it could not move."""
        try:
            placement = self.fleet.place(self.request(name, dom, strategy, exclude), commit=True)
        except (PlacementError, Conflict, ValidationError) as err:
            return None, str(err).splitlines()[0]
        src = self.fleet.by_name[name]
        dst = self.fleet.by_name[placement.host]
        self.acted.add(dom["name"])
        action = {
            "action": "migrate", "vm": dom["name"], "from": name, "to": placement.host, "why": why,
            "memory_mb": int(_num(dom.get("memory_mb"), 0)), "vcpus": int(_num(dom.get("vcpus"), 0)),
            "cpu_percent": _r(_num(dom.get("cpu_percent"))),
            "cost_mb": round(migration_cost(dom.get("memory_mb"), dom.get("dirty_rate_mib_s"),
                                            self.opts["migration_bandwidth_mib_s"]), 1),
            "predicted": {name: {"cpu_percent": _pct(src.cpu_percent), "memory_percent": _pct(src.memory_percent)},
                          placement.host: {"cpu_percent": _pct(dst.cpu_percent), "memory_percent": _pct(dst.memory_percent)}},
            "placement": placement.explanation,
        }
        self.actions.append(action)
        return action, None

    # ----- balance
    def cool(self, name, hot):
        view = self.views[name]
        unmovable = {}
        while True:
            need_c, need_m = self.excess(name, hot)
            if need_c <= _EPS and need_m <= _EPS:
                return
            if self.moves_left() <= 0:
                if not self.cap_noted:
                    self.notes.append("move cap reached (max_moves=%d): hot hosts left as they are"
                                      % self.opts["max_moves"])
                    self.cap_noted = True
                hot["left"] = "move cap reached"
                return
            candidates = []
            for dom in self.fleet_domains(name):
                reason = self.movable(name, dom)
                if reason is None and dom["name"] not in unmovable:
                    candidates.append(dom)
            items = [self.contribution(name, d) for d in candidates]
            picked, _exact = min_cover(items, need_c, need_m, self.opts["search_limit"])
            if not picked:
                why = "no set of movable VMs brings it under its thresholds"
                if unmovable:
                    why += " (no target for: %s)" % "; ".join("%s: %s" % kv for kv in sorted(unmovable.items()))
                hot["left"] = why
                self.notes.append("%s stays hot: %s" % (name, why))
                return
            # most relief first, so a failure leaves the least undone
            picked.sort(key=lambda i: (-(items[i][0] / max(need_c, _EPS) + items[i][1] / max(need_m, _EPS)), i))
            progress = False
            for i in picked:
                if self.moves_left() <= 0:
                    break
                dom = candidates[i]
                host = self.fleet.by_name[name]
                parts = []
                if hot["hot_cpu"]:
                    parts.append("cpu %.1f%% > %g%%" % (host.cpu_percent, view.cpu_threshold))
                if hot["hot_memory"]:
                    parts.append("memory %.1f%% > %g%%" % (host.memory_percent, view.memory_threshold))
                why = "%s hot (%s for %d observations); %s gives cpu %.1f, memory %.1f points" % (
                    name, ", ".join(parts), self.opts["hot_observations"], dom["name"], items[i][0], items[i][1])
                action, error = self.migrate(name, dom, why, self.opts["strategy"])
                if action is None:
                    unmovable[dom["name"]] = error
                    break
                progress = True
            if not progress and not unmovable:
                return

    def fleet_domains(self, name):
        """Facts of the domains the model has on ``name`` now (moved-in ones excluded: they
        are in ``acted``)."""
        host = self.fleet.by_name[name]
        out = []
        for vm in sorted(host.domains):
            dom = self.domains.get((name, vm))
            if dom is not None:
                out.append(dom)
        return out

    # ----- autoscale
    def scale_up(self, name, dom):
        if dom["name"] in self.acted or dom.get("state") != "running":
            return
        if self.opts["managed_only"] and not dom.get("managed", True):
            return
        vcpus = int(_num(dom.get("vcpus"), 1))
        vcpus_max = int(_num(dom.get("vcpus_max"), vcpus))
        load = _num(dom.get("cpu_percent"), 0.0)
        if vcpus >= vcpus_max:
            self.notes.append("%s on %s is saturated (%.0f%% of %d vCPUs) but at its maximum of %d vCPUs"
                              % (dom["name"], name, load / max(vcpus, 1), vcpus, vcpus_max))
            return
        # the new size as scale_vm.yml computes a relative request (scaling.target_sizes)
        memory = max(1, int(_num(dom.get("memory_mb"), 1)))
        current = Sizes(vcpus=vcpus, vcpus_max=vcpus_max, memory_mb=memory,
                        memory_max_mb=int(_num(dom.get("memory_max_mb"), memory)))
        new, _memory = target_sizes(current, resource="cpu", direction="up", step=self.opts["autoscale_step"])
        new = min(vcpus_max, new)
        disks = dom.get("disks") or ()
        request = Request(name=dom["name"], vcpus=new, memory_mb=max(1, int(_num(dom.get("memory_mb"), 1))),
                          disk_gb=int(sum(_num(d.get("capacity_gb"), 0) for d in disks)),
                          group=dom.get("group"), current_host=name, hosts=[name],
                          cpu_percent=load * new / vcpus)
        try:
            placement = self.fleet.place(request, commit=True)
        except (PlacementError, Conflict, ValidationError) as err:
            reasons = err.details.get("rejected", {}).get(name, [str(err)]) if hasattr(err, "details") else [str(err)]
            self.notes.append("%s on %s is saturated but not scaled: %s" % (dom["name"], name, "; ".join(reasons)))
            return
        host = self.fleet.by_name[name]
        self.acted.add(dom["name"])
        self.actions.append({
            "action": "scale", "vm": dom["name"], "from": name, "to": name,
            "vcpus_from": vcpus, "vcpus": new, "memory_mb": int(_num(dom.get("memory_mb"), 0)),
            "cpu_percent": _r(load),
            "why": "%s saturated: %.0f%% of its %d vCPUs over %g%% for %d observations; scaled in place to %d vCPUs"
                   % (dom["name"], load / vcpus, vcpus, self.opts["vm_cpu_threshold"],
                      self.opts["hot_observations"], new),
            "predicted": {name: {"cpu_percent": _pct(host.cpu_percent), "memory_percent": _pct(host.memory_percent)}},
            "placement": placement.explanation,
        })

    # ----- consolidate
    def try_empty(self, name, doms, why, exclude):
        """All or nothing: plan every move of ``doms`` on a copy of the model; (copy, None) when
        every VM found a place, else (None, why not)."""
        trial = _Context(Fleet(copy.deepcopy(self.fleet.hosts)), self.views, self.opts, list(self.actions),
                         set(self.acted), self.recent, self.domains, [], self.now)
        # largest first packs best
        for dom in sorted(doms, key=lambda d: (-_num(d.get("memory_mb"), 0), d["name"])):
            if dom.get("state") not in ("running", "paused"):
                return None, "%s is %s (move it offline or delete it first)" % (dom["name"], dom.get("state"))
            _action, error = trial.migrate(name, dom, why, "pack", exclude=exclude)
            if error:
                return None, "%s: %s" % (dom["name"], error)
        return trial, None

    def consolidate(self, reachable, hosts_out):
        emptied = []
        usable = [n for n in reachable if self.fleet.by_name[n].usable]
        occupied = [n for n in usable if self.fleet.by_name[n].domains]
        lows = [n for n in occupied if hosts_out[n]["low"] and not hosts_out[n]["hot"]]
        lows.sort(key=lambda n: (self.fleet.by_name[n].cpu_percent + self.fleet.by_name[n].memory_percent, n))
        for name in sorted(set(usable) - set(occupied)):
            self.notes.append("%s is already empty" % name)
        for name in lows:
            keeping = [n for n in occupied if n not in emptied and n != name]
            if len(keeping) < self.opts["min_hosts"]:
                self.notes.append("%s not emptied: min_hosts=%d must keep VMs" % (name, self.opts["min_hosts"]))
                break
            doms = self.fleet_domains(name)
            if len(self.fleet.by_name[name].domains) != len(doms):
                self.notes.append("%s not emptied: it received VMs in this plan" % name)
                continue
            blocked = [(d["name"], self.movable(name, d)) for d in doms]
            blocked = [(vm, why) for vm, why in blocked if why and why != "not running"]
            if blocked:
                self.notes.append("%s not emptied: %s" % (name, "; ".join("%s %s" % b for b in blocked)))
                continue
            if self.moves_left() < len([d for d in doms if d.get("state") in ("running", "paused")]):
                self.notes.append("%s not emptied: it needs %d moves, %d left under max_moves"
                                  % (name, len(doms), self.moves_left()))
                continue
            host = self.fleet.by_name[name]
            why = ("%s lightly loaded (cpu %.1f%% < %g%%, memory %.1f%% < %g%%): emptied to save a host"
                   % (name, host.cpu_percent, self.opts["low_cpu_threshold"], host.memory_percent,
                      self.opts["low_memory_threshold"]))
            # onto hosts that stay first; then also onto light hosts that come later (more loaded)
            position = lows.index(name)
            trial, failed = None, None
            # never onto an empty host: that saves nothing
            empty = set(usable) - set(occupied)
            for exclude in (set(lows) | set(emptied) | empty, set(lows[:position]) | set(emptied) | empty):
                trial, failed = self.try_empty(name, doms, why, sorted(exclude - {name}))
                if not failed:
                    break
            if failed:
                self.notes.append("%s not emptied: %s" % (name, failed))
                continue
            self.fleet = trial.fleet
            self.actions[:] = trial.actions
            self.acted = trial.acted
            emptied.append(name)
        return emptied


# --------------------------------------------------------------------------- presentation

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
        view = _host_view(name, facts_by_host[name], inventory_by_host.get(name) or {})
        if view.reachable:
            loads[name] = {"cpu_percent": _r(view.cpu), "memory_percent": _r(view.memory),
                           "cpu_threshold": view.cpu_threshold, "memory_threshold": view.memory_threshold,
                           "over": bool((view.cpu or 0) > view.cpu_threshold or (view.memory or 0) > view.memory_threshold)}
    return {"hosts": loads, "spread": _spread(loads),
            "over": sorted(n for n, v in loads.items() if v["over"]),
            "unreachable": sorted(n for n in facts_by_host if n not in loads)}
