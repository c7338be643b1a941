# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The patrol's decision for one run (``plan``) and its phases.

``plan`` reads the hosts (measures.host_view), adds this run's observations to the history and
judges each host hot or light (``judge_hosts``), builds the model (moves.MovePlan over a
placement.Fleet), then runs the phases in order: ``ScaleUp`` (autoscale: a saturated VM grows in
place, cheaper than a migration), then ``CoolHotHosts`` (mode balance) or ``Consolidate`` (mode
consolidate). docs/patrol.md describes the model.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    Conflict,
    PlacementError,
    ValidationError,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.api import Fleet, Request
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.model import shown_threshold
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.cover import min_cover
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.history import (
    append_observation,
    clean_history,
    in_cooldown,
    observe_vms,
    streak_over,
    streak_under,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.measures import (
    EPS,
    host_view,
    patrol_host,
    rounded,
    shown_percent,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.moves import LIVE_STATES, MovePlan
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.options import number, options_from
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.report import fleet_loads, spread
from ansible_collections.kvmfleet.iaas.plugins.module_utils.scaling import Sizes, target_sizes


def judge_hosts(history, views, now, opts, notes):
    """Each reachable host's observation appended to its series; {host: verdict} with its
    streaks over the thresholds, ``hot`` (K of them) and ``low`` (K under both low thresholds)."""
    hosts_out = {}
    k = opts["hot_observations"]
    for name in sorted(views):
        view = views[name]
        if not view.reachable:
            hosts_out[name] = {"reachable": False, "error": view.error, "hot": False}
            continue
        series = append_observation(history["hosts"].get(name), now, [rounded(view.cpu, 2), rounded(view.memory, 2)],
                                    opts["keep_observations"], opts["max_age_seconds"])
        history["hosts"][name] = series
        streak_cpu = streak_over(series, 1, view.cpu_threshold)
        streak_mem = streak_over(series, 2, view.memory_threshold)
        low = min(streak_under(series, 1, opts["low_cpu_threshold"]),
                  streak_under(series, 2, opts["low_memory_threshold"]))
        hot_cpu = streak_cpu >= k
        hot_mem = streak_mem >= k
        hosts_out[name] = {"reachable": True, "cpu_percent": rounded(view.cpu), "memory_percent": rounded(view.memory),
                           "cpu_threshold": shown_threshold(view.cpu_threshold),
                           "memory_threshold": shown_threshold(view.memory_threshold),
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
    for name in list(history["hosts"]):
        if name not in views:
            del history["hosts"][name]
    return hosts_out


class ScaleUp:
    """Autoscale: a running VM whose CPU stayed over ``vm_cpu_threshold`` percent of its vCPUs in
    its last K observations grows in place by ``autoscale_step`` when its host passes placement's
    resize check."""

    def __init__(self, moves):
        self.moves = moves

    def run(self, reachable, history):
        k = self.moves.opts["hot_observations"]
        for name in reachable:
            for dom in self.moves.views[name].facts.get("domains") or ():
                series = history["vms"].get(dom["name"]) or []
                if streak_over(series, 1, self.moves.opts["vm_cpu_threshold"]) >= k:
                    self.scale_up(name, dom)

    def scale_up(self, name, dom):
        moves, opts, notes = self.moves, self.moves.opts, self.moves.notes
        if dom["name"] in moves.acted or dom.get("state") != "running":
            return
        if not moves.managed_or_allowed(dom):
            return
        vcpus = int(number(dom.get("vcpus"), 1))
        vcpus_max = int(number(dom.get("vcpus_max"), vcpus))
        load = number(dom.get("cpu_percent"), 0.0)
        if vcpus >= vcpus_max:
            notes.append("%s on %s is saturated (%.0f%% of %d vCPUs) but at its maximum of %d vCPUs"
                         % (dom["name"], name, load / max(vcpus, 1), vcpus, vcpus_max))
            return
        # the new size as scale_vm.yml computes a relative request (scaling.target_sizes)
        memory = max(1, int(number(dom.get("memory_mb"), 1)))
        current = Sizes(vcpus=vcpus, vcpus_max=vcpus_max, memory_mb=memory,
                        memory_max_mb=int(number(dom.get("memory_max_mb"), memory)))
        new, _memory = target_sizes(current, resource="cpu", direction="up", step=opts["autoscale_step"])
        new = min(vcpus_max, new)
        disks = dom.get("disks") or ()
        request = Request(name=dom["name"], vcpus=new, memory_mb=max(1, int(number(dom.get("memory_mb"), 1))),
                          disk_gb=int(sum(number(d.get("capacity_gb"), 0) for d in disks)),
                          group=dom.get("group"), current_host=name, hosts=[name],
                          cpu_percent=load * new / vcpus)
        try:
            placement = moves.fleet.place(request, commit=True)
        except (PlacementError, Conflict, ValidationError) as err:
            reasons = err.details.get("rejected", {}).get(name, [str(err)]) if hasattr(err, "details") else [str(err)]
            notes.append("%s on %s is saturated but not scaled: %s" % (dom["name"], name, "; ".join(reasons)))
            return
        host = moves.fleet.by_name[name]
        moves.acted.add(dom["name"])
        moves.actions.append({
            "action": "scale", "vm": dom["name"], "from": name, "to": name,
            "vcpus_from": vcpus, "vcpus": new, "memory_mb": int(number(dom.get("memory_mb"), 0)),
            "cpu_percent": rounded(load),
            "why": "%s saturated: %.0f%% of its %d vCPUs over %g%% for %d observations; scaled in place to %d vCPUs"
                   % (dom["name"], load / vcpus, vcpus, opts["vm_cpu_threshold"], opts["hot_observations"], new),
            "predicted": {name: {"cpu_percent": shown_percent(host.cpu_percent),
                                 "memory_percent": shown_percent(host.memory_percent)}},
            "placement": placement.explanation,
        })


class CoolHotHosts:
    """Mode balance: hot hosts, hottest first, each shed the fewest VMs (cheapest among those,
    ``cover.min_cover``) that bring it under its thresholds, each to a target placement chooses.
    A VM that finds no target is set aside and the cover searched again without it."""

    def __init__(self, moves):
        self.moves = moves

    def run(self, reachable, hosts_out):
        hot = [n for n in reachable if hosts_out[n]["hot"]]
        hot.sort(key=lambda n: (-self.moves.severity(n), n))
        for name in hot:
            self.cool(name, hosts_out[name])

    def cool(self, name, hot):
        moves, opts = self.moves, self.moves.opts
        view = moves.views[name]
        unmovable = {}
        while True:
            need_c, need_m = moves.excess(name, hot)
            if need_c <= EPS and need_m <= EPS:
                return
            if moves.moves_left() <= 0:
                if not moves.cap_noted:
                    moves.notes.append("move cap reached (max_moves=%d): hot hosts left as they are" % opts["max_moves"])
                    moves.cap_noted = True
                hot["left"] = "move cap reached"
                return
            candidates = []
            for dom in moves.fleet_domains(name):
                reason = moves.movable(name, dom)
                if reason is None and dom["name"] not in unmovable:
                    candidates.append(dom)
            items = [moves.contribution(name, d) for d in candidates]
            picked, _exact = min_cover(items, need_c, need_m, opts["search_limit"])
            if not picked:
                why = "no set of movable VMs brings it under its thresholds"
                if unmovable:
                    why += " (no target for: %s)" % "; ".join("%s: %s" % kv for kv in sorted(unmovable.items()))
                hot["left"] = why
                moves.notes.append("%s stays hot: %s" % (name, why))
                return
            # most relief first, so a failure leaves the least undone
            picked.sort(key=lambda i: (-(items[i][0] / max(need_c, EPS) + items[i][1] / max(need_m, EPS)), i))
            progress = False
            for i in picked:
                if moves.moves_left() <= 0:
                    break
                dom = candidates[i]
                host = moves.fleet.by_name[name]
                parts = []
                if hot["hot_cpu"]:
                    parts.append("cpu %.1f%% > %g%%" % (host.cpu_percent, view.cpu_threshold))
                if hot["hot_memory"]:
                    parts.append("memory %.1f%% > %g%%" % (host.memory_percent, view.memory_threshold))
                why = "%s hot (%s for %d observations); %s gives cpu %.1f, memory %.1f points" % (
                    name, ", ".join(parts), opts["hot_observations"], dom["name"], items[i][0], items[i][1])
                action, error = moves.migrate(name, dom, why, opts["strategy"])
                if action is None:
                    unmovable[dom["name"]] = error
                    break
                progress = True
            if not progress and not unmovable:
                return


class Consolidate:
    """Mode consolidate: hosts light for K observations are emptied, lightest first, whole or not
    at all, with the pack strategy onto hosts that keep VMs (never onto an empty host: that saves
    nothing), leaving VMs on at least ``min_hosts`` hosts."""

    def __init__(self, moves):
        self.moves = moves

    def try_empty(self, name, doms, why, exclude):
        """All or nothing: plan every move of ``doms`` on a copy of the model; (copy, None) when
        every VM found a place, else (None, why not)."""
        trial = self.moves.trial()
        # largest first packs best
        for dom in sorted(doms, key=lambda d: (-number(d.get("memory_mb"), 0), d["name"])):
            if dom.get("state") not in LIVE_STATES:
                return None, "%s is %s (move it offline or delete it first)" % (dom["name"], dom.get("state"))
            _action, error = trial.migrate(name, dom, why, "pack", exclude=exclude)
            if error:
                return None, "%s: %s" % (dom["name"], error)
        return trial, None

    def blocked(self, name, doms):
        """Why ``name`` cannot be emptied now, or None."""
        moves = self.moves
        if len(moves.fleet.by_name[name].domains) != len(doms):
            return "it received VMs in this plan"
        blocked = [(d["name"], moves.movable(name, d)) for d in doms]
        blocked = [(vm, why) for vm, why in blocked if why and why != "not running"]
        if blocked:
            return "; ".join("%s %s" % b for b in blocked)
        if moves.moves_left() < len([d for d in doms if d.get("state") in LIVE_STATES]):
            return "it needs %d moves, %d left under max_moves" % (len(doms), moves.moves_left())
        return None

    def run(self, reachable, hosts_out):
        moves, opts = self.moves, self.moves.opts
        by_name = moves.fleet.by_name
        emptied = []
        usable = [n for n in reachable if by_name[n].usable]
        occupied = [n for n in usable if by_name[n].domains]
        lows = [n for n in occupied if hosts_out[n]["low"] and not hosts_out[n]["hot"]]
        lows.sort(key=lambda n: (by_name[n].cpu_percent + by_name[n].memory_percent, n))
        # never onto an empty host: that saves nothing
        empty = set(usable) - set(occupied)
        for name in sorted(empty):
            moves.notes.append("%s is already empty" % name)
        for name in lows:
            keeping = [n for n in occupied if n not in emptied and n != name]
            if len(keeping) < opts["min_hosts"]:
                moves.notes.append("%s not emptied: min_hosts=%d must keep VMs" % (name, opts["min_hosts"]))
                break
            doms = moves.fleet_domains(name)
            blocked = self.blocked(name, doms)
            if blocked:
                moves.notes.append("%s not emptied: %s" % (name, blocked))
                continue
            host = moves.fleet.by_name[name]
            why = ("%s lightly loaded (cpu %.1f%% < %g%%, memory %.1f%% < %g%%): emptied to save a host"
                   % (name, host.cpu_percent, opts["low_cpu_threshold"], host.memory_percent, opts["low_memory_threshold"]))
            # onto hosts that stay first; then also onto light hosts that come later (more loaded)
            position = lows.index(name)
            trial, failed = None, None
            for exclude in (set(lows) | set(emptied) | empty, set(lows[:position]) | set(emptied) | empty):
                trial, failed = self.try_empty(name, doms, why, sorted(exclude - {name}))
                if not failed:
                    break
            if failed:
                moves.notes.append("%s not emptied: %s" % (name, failed))
                continue
            moves.adopt(trial)
            emptied.append(name)
        return emptied


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
    views = {n: host_view(n, facts_by_host[n], inventory_by_host.get(n) or {}) for n in names}
    notes = []
    unreachable = {n: v.error for n, v in views.items() if not v.reachable}
    for name in sorted(unreachable):
        notes.append("%s skipped: %s" % (name, unreachable[name]))

    hosts_out = judge_hosts(history, views, now, opts, notes)
    observe_vms(history, [views[n] for n in names], now, opts)

    fleet = Fleet([patrol_host(views[n]) for n in names])
    reachable = [n for n in names if views[n].reachable]
    before = fleet_loads(fleet, reachable)
    domains = {}
    for name in reachable:
        for dom in views[name].facts.get("domains") or ():
            domains[(name, dom["name"])] = dom
    actions = []
    moves = MovePlan(fleet, views, opts, actions, set(), in_cooldown(history, now, opts["cooldown_seconds"]),
                     domains, notes, now)

    if opts["autoscale"]:
        ScaleUp(moves).run(reachable, history)
    emptied = []
    if opts["mode"] == "balance":
        CoolHotHosts(moves).run(reachable, hosts_out)
    else:
        emptied = Consolidate(moves).run(reachable, hosts_out)

    after = fleet_loads(moves.fleet, reachable)
    left_hot = []
    for n in reachable:
        entry = hosts_out[n]
        if ((entry["hot_cpu"] and (after[n]["cpu_percent"] or 0) > views[n].cpu_threshold + EPS)
                or (entry["hot_memory"] and (after[n]["memory_percent"] or 0) > views[n].memory_threshold + EPS)):
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
        "spread": {"before": spread(before), "after": spread(after)},
        "notes": notes,
        "history": history,
        "options": opts,
    }
