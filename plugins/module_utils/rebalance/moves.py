# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan being built, and the rules every move in it obeys.

``MovePlan`` holds the in-memory fleet (placement.Fleet; each move is committed to it, so later
decisions see earlier ones) and the actions so far. Its rules: only running or paused domains
move, only those kvmfleet made (``managed_only``), each VM at most once per plan, none within
``cooldown_seconds`` of its last move, never back to the host it left within that time, and at
most ``max_moves`` migrations.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import math

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    Conflict,
    PlacementError,
    ValidationError,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.api import Fleet, Request
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.model import THRESHOLD_OFF
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.measures import (
    migration_cost,
    rounded,
    shown_percent,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.options import number

LIVE_STATES = ("running", "paused")


class MovePlan:
    def __init__(self, fleet, views, opts, actions, acted, recent, domains, notes, now):
        self.fleet = fleet
        self.views = views
        self.opts = opts
        self.actions = actions      # the plan's actions, in order
        self.acted = acted          # VMs this plan moved or scaled
        self.recent = recent        # {vm: move} of the VMs in cooldown (history.in_cooldown)
        self.domains = domains      # {(host, vm): domain facts}
        self.notes = notes
        self.now = now
        self.cap_noted = False

    def trial(self):
        """A copy to try moves on (the fleet deep-copied; notes not shared)."""
        return MovePlan(Fleet(copy.deepcopy(self.fleet.hosts)), self.views, self.opts, list(self.actions),
                        set(self.acted), self.recent, self.domains, [], self.now)

    def adopt(self, trial):
        """Keep what ``trial`` planned."""
        self.fleet = trial.fleet
        self.actions[:] = trial.actions
        self.acted = trial.acted

    # ----- measures on the model
    def excess(self, name, hot):
        """Points of CPU and memory ``name`` must shed to reach its thresholds (less the margin)."""
        host = self.fleet.by_name[name]
        view = self.views[name]
        margin = self.opts["target_margin"]
        need_c = host.cpu_percent - (view.cpu_threshold - margin) if hot["hot_cpu"] else 0.0
        need_m = host.memory_percent - (view.memory_threshold - margin) if hot["hot_memory"] else 0.0
        return max(0.0, need_c), max(0.0, need_m)

    def severity(self, name):
        host = self.fleet.by_name[name]
        view = self.views[name]
        overs = [(now - limit) / max(limit, 1.0)
                 for now, limit in ((host.cpu_percent, view.cpu_threshold), (host.memory_percent, view.memory_threshold))
                 if limit != THRESHOLD_OFF]   # an off threshold never makes a host hot (and inf / inf is nan)
        return max(overs) if overs else -math.inf

    def moves_left(self):
        return self.opts["max_moves"] - sum(1 for a in self.actions if a["action"] == "migrate")

    def contribution(self, name, dom):
        """(cpu points, memory points, migration cost) that moving ``dom`` off ``name`` gives."""
        host = self.fleet.by_name[name]
        load = number(dom.get("cpu_percent"), 0.0)
        cpu = load / host.cpus if host.cpus else 0.0
        mem = 100.0 * (number(dom.get("memory_mb"), 0.0)) / host.memory_mb if host.memory_mb else 0.0
        cost = migration_cost(dom.get("memory_mb"), dom.get("dirty_rate_mib_s"), self.opts["migration_bandwidth_mib_s"])
        return cpu, mem, cost

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

    # ----- the rules
    def managed_or_allowed(self, dom):
        """False for a domain kvmfleet did not make while ``managed_only`` holds."""
        return not self.opts["managed_only"] or dom.get("managed", True)

    def movable(self, name, dom):
        """None when ``dom`` may move, else why not."""
        if dom.get("state") not in LIVE_STATES:
            return "not running"
        if not self.managed_or_allowed(dom):
            return "not made by kvmfleet"
        if dom["name"] in self.acted:
            return "already in this plan"
        if dom["name"] in self.recent:
            return "moved %s -> %s less than %ds ago" % (self.recent[dom["name"]].get("from"),
                                                         self.recent[dom["name"]].get("to"),
                                                         self.opts["cooldown_seconds"])
        return None

    def request(self, name, dom, strategy, exclude=()):
        """The placement request that migrates ``dom`` off ``name``, never back to a host it left
        within the cooldown."""
        view = self.views[name]
        disks = dom.get("disks") or ()
        left = self.recent.get(dom["name"])
        exclude = set(exclude)
        if left and left.get("from"):
            exclude.add(left["from"])  # never back where it came from
        return Request(
            name=dom["name"], vcpus=max(1, int(number(dom.get("vcpus"), 1))),
            memory_mb=max(1, int(number(dom.get("memory_mb"), 1))),
            disk_gb=0 if view.shared_storage else int(sum(number(d.get("capacity_gb"), 0) for d in disks)),
            group=dom.get("group"), current_host=name, migrate=True,
            cpu_percent=number(dom.get("cpu_percent"), 0.0), strategy=strategy,
            virt_type=view.virt_type, exclude=sorted(exclude - {name}))

    # ----- one migration
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
            "memory_mb": int(number(dom.get("memory_mb"), 0)), "vcpus": int(number(dom.get("vcpus"), 0)),
            "cpu_percent": rounded(number(dom.get("cpu_percent"))),
            "cost_mb": round(migration_cost(dom.get("memory_mb"), dom.get("dirty_rate_mib_s"),
                                            self.opts["migration_bandwidth_mib_s"]), 1),
            "predicted": {name: {"cpu_percent": shown_percent(src.cpu_percent), "memory_percent": shown_percent(src.memory_percent)},
                          placement.host: {"cpu_percent": shown_percent(dst.cpu_percent),
                                           "memory_percent": shown_percent(dst.memory_percent)}},
            "placement": placement.explanation,
        }
        self.actions.append(action)
        return action, None
