# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet placement chooses from: ``Fleet.place`` runs a request through the pipeline of
filters (filters.FILTERS) and ranks the hosts that pass by the request's strategy
(strategies.BY_NAME), with the index (index.py) or, for the reference, every host evaluated;
``Fleet.apply`` records a decision and ``place_batch`` places many in order.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    Conflict,
    PlacementError,
    ValidationError,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.explain import (
    Placement,
    breakdown,
    explanation,
    no_fit_message,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.filters import FILTERS, RequestRule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.index import _Index
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.model import Demand, Domain, Host, Request
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.strategies import BY_NAME

# Every stat the filters ask the index to keep per node.
NODE_STATS = tuple(stat for rule in FILTERS for stat in rule.NODE_STATS)


def _or_masks(masks):
    result = 0
    for mask in masks:
        result |= mask
    return result


class _Prepared:
    """A request against this fleet: its demands, current host, and the filters in play with
    their contexts (``rules``); ``blocked`` are the hosts a request rule rejects, ``allowed``
    the few hosts the candidates are restricted to (pinned, affinity), or None."""

    __slots__ = ("request", "strategy", "full", "delta", "current", "rules", "blocked", "allowed")

    def demand_for(self, host):
        return self.delta if (self.delta is not None and host is self.current) else self.full


class Fleet:
    """The hosts placement chooses from, with an index kept current as VMs are placed.

    ``use_index=False`` evaluates every host for every decision (the reference).
    ``rebuild_every``: rebuild the index after that many host updates (default: hosts / 4,
    at least 64) so that its boxes stay tight; the result never depends on it.
    """

    def __init__(self, hosts, use_index=True, rebuild_every=None):
        names = [h.name for h in hosts]
        if len(set(names)) != len(names):
            raise ValidationError("duplicate host names in the fleet")
        self.hosts = sorted(hosts, key=lambda h: h.name)
        self.by_name = {}
        virt_bits = {}
        for rank, host in enumerate(self.hosts):
            host.rank = rank
            self.by_name[host.name] = host
            for virt in host.virt_types:
                virt_bits.setdefault(virt, 1 << len(virt_bits))
        self.virt_bits = virt_bits
        for host in self.hosts:
            host.vmask = _or_masks(virt_bits[v] for v in host.virt_types)
        # name -> hosts holding a domain of that name; group -> host -> member names
        self.domain_hosts = {}
        self.group_members = {}
        for host in self.hosts:
            for dom in host.domains.values():
                self._add_domain(host, dom)
        self.use_index = use_index
        self.rebuild_every = rebuild_every or max(64, len(self.hosts) // 4)
        self.index = _Index([h for h in self.hosts if h.usable], NODE_STATS) if use_index else None

    # ----- bookkeeping
    def _add_domain(self, host, dom):
        self.domain_hosts.setdefault(dom.name, set()).add(host.name)
        if dom.group is not None:
            self.group_members.setdefault(dom.group, {}).setdefault(host.name, set()).add(dom.name)

    def _remove_domain(self, host, dom):
        holders = self.domain_hosts.get(dom.name)
        if holders is not None:
            holders.discard(host.name)
            if not holders:
                del self.domain_hosts[dom.name]
        if dom.group is not None:
            members = self.group_members.get(dom.group, {}).get(host.name)
            if members is not None:
                members.discard(dom.name)
                if not members:
                    del self.group_members[dom.group][host.name]

    def group_hosts(self, group, ignore_name):
        """Hosts running a member of ``group`` other than ``ignore_name``."""
        return sorted(host for host, names in self.group_members.get(group, {}).items()
                      if names - {ignore_name})

    # ----- request -> per-host demand and the filters in play
    def _prepare(self, request):
        for pinned in request.hosts or ():
            if pinned not in self.by_name:
                raise ValidationError("pinned host %s of %s is not a hypervisor of the fleet"
                                      % (pinned, request.name))
        current = None
        current_dom = None
        holders = self.domain_hosts.get(request.name, set())
        if request.current_host is None:
            if holders:
                raise Conflict("a domain named %s already exists on %s" % (request.name, ", ".join(sorted(holders))),
                               hosts=sorted(holders))
        else:
            current = self.by_name.get(request.current_host)
            if current is None:
                raise ValidationError("current_host %s of %s is not a hypervisor of the fleet"
                                      % (request.current_host, request.name))
            current_dom = current.domains.get(request.name)
        cur_v = request.current_vcpus
        cur_m = request.current_memory_mb
        cur_d = request.current_disk_gb
        if current is not None and None in (cur_v, cur_m, cur_d):
            if current_dom is None:
                raise ValidationError("%s is not a domain of %s; give its current size"
                                      % (request.name, current.name))
            cur_v = current_dom.vcpus if cur_v is None else cur_v
            cur_m = current_dom.memory_mb if cur_m is None else cur_m
            cur_d = current_dom.disk_gb if cur_d is None else cur_d
        prepared = _Prepared()
        prepared.request = request
        prepared.strategy = BY_NAME[request.strategy]
        prepared.current = current
        measured = request.cpu_percent is not None
        prepared.full = Demand(request.vcpus, request.memory_mb, request.disk_gb,
                               request.cpu_percent if measured else 100.0 * request.vcpus, measured, False)
        prepared.delta = None
        if current is not None and not request.migrate:
            dv = request.vcpus - cur_v
            prepared.delta = Demand(dv, request.memory_mb - cur_m, request.disk_gb - cur_d, 100.0 * dv, False, True)
        prepared.rules = []
        prepared.blocked = set()
        prepared.allowed = None
        for rule in FILTERS:
            context = rule.prepare(self, request)
            if context is None:
                continue
            prepared.rules.append((rule, context))
            if isinstance(rule, RequestRule):
                prepared.blocked.update(context)
                allowed = rule.allowed(self, request)
                if allowed is not None:
                    prepared.allowed = allowed if prepared.allowed is None else prepared.allowed & allowed
        return prepared

    @staticmethod
    def _passes(host, prepared, demand):
        for rule, context in prepared.rules:
            if not rule.passes(host, demand, context):
                return False
        return True

    @staticmethod
    def _reasons(host, prepared, demand):
        reasons = []
        for rule, context in prepared.rules:
            if rule.judges(host):
                reasons += rule.reasons(host, demand, context)
        return reasons

    @staticmethod
    def _score(host, demand, strategy):
        return strategy.score(host.f_cpu + demand.vcpus / host.cap_cpu,
                              host.f_mem + demand.memory_mb / host.cap_mem,
                              host.f_disk + demand.disk_gb / host.cap_disk)

    # ----- decisions
    def place(self, request, explain=False, commit=False):
        """Choose a host for ``request`` (a Request or a dict).

        explain: evaluate every host and return every candidate's score and every rejected
        host's reasons (what the filter plugin does). Otherwise the index finds the same host.
        commit: apply the placement to the in-memory state.
        Raises ValidationError, Conflict (creation of a name that exists) or PlacementError.
        """
        if isinstance(request, dict):
            request = Request.from_dict(request)
        prepared = self._prepare(request)
        strategy = prepared.strategy
        current = prepared.current
        candidates = {}
        rejected = {}
        chosen = None
        # Resize: stay on the current host whenever it passes every filter.
        if prepared.delta is not None and self._passes(current, prepared, prepared.delta):
            chosen = (self._score(current, prepared.delta, strategy), current.rank, current)
        if explain or not self.use_index or prepared.allowed is not None:
            best = self._exhaustive(prepared, candidates, rejected if explain else None,
                                    restrict=None if explain else prepared.allowed)
            if chosen is None:
                chosen = best
        elif chosen is None:
            excluded = set(self.by_name[name].rank for name in prepared.blocked)
            if current is not None:
                excluded.add(current.rank)  # the current host needs the delta; judged above
            # The index holds only the hosts that pass HostState, and skips the request rules' hosts by rank.
            checks = [(rule, context) for rule, context in prepared.rules
                      if not rule.INDEX_HOLDS_PASSING and not isinstance(rule, RequestRule)]
            chosen = self.index.search(prepared.full, strategy, checks, excluded)
        if chosen is None:
            if not explain:
                self._exhaustive(prepared, {}, rejected)
            raise PlacementError(no_fit_message(request, rejected, len(self.hosts)), rejected=rejected)
        score, _rank, host = chosen
        demand = prepared.demand_for(host)
        details = breakdown(host, demand, strategy, score)
        if not explain:
            candidates = {host.name: details}
        placement = Placement(request, host.name, score, details, demand,
                              explanation(request, strategy, host, details, len(candidates) if explain else None,
                                          current),
                              candidates, rejected, request.current_host)
        if commit:
            self.apply(placement)
        return placement

    def _exhaustive(self, prepared, candidates, rejected, restrict=None):
        strategy = prepared.strategy
        best = None
        hosts = self.hosts if restrict is None else [self.by_name[n] for n in sorted(restrict)]
        for host in hosts:
            demand = prepared.demand_for(host)
            if self._passes(host, prepared, demand):
                score = self._score(host, demand, strategy)
                candidates[host.name] = breakdown(host, demand, strategy, score)
                if best is None or score > best[0] or (score == best[0] and host.rank < best[1]):
                    best = (score, host.rank, host)
            elif rejected is not None:
                rejected[host.name] = self._reasons(host, prepared, demand)
        return best

    def place_exhaustive(self, request):
        """The reference: every host evaluated, no index. Same result as ``place``."""
        use_index = self.use_index
        self.use_index = False
        try:
            return self.place(request)
        finally:
            self.use_index = use_index

    def apply(self, placement):
        """Record ``placement`` in the in-memory state (allocation, projected load, domains)."""
        request = placement.request
        host = self.by_name[placement.host]
        demand = placement.demand
        source = self.by_name.get(request.current_host) if request.current_host else None
        old = source.domains.get(request.name) if source is not None else None
        cpu_load = demand.cpu_projection(host)
        mem_load = demand.memory_projection(host)
        if source is not None and source is not host:
            # The VM leaves its source: it gives back its current size and projected load.
            cur_v = request.current_vcpus if request.current_vcpus is not None else (old.vcpus if old else 0)
            cur_m = request.current_memory_mb if request.current_memory_mb is not None else (old.memory_mb if old else 0)
            cur_d = request.current_disk_gb if request.current_disk_gb is not None else (old.disk_gb if old else 0)
            source.used_cpu -= cur_v
            source.used_mem -= cur_m
            source.used_disk -= cur_d
            if request.cpu_percent is not None and source.cpus:
                source.cpu_percent -= request.cpu_percent / source.cpus
            elif source.cap_cpu > 0:
                source.cpu_percent -= 100.0 * cur_v / source.cap_cpu
            if source.memory_mb:
                source.memory_percent -= 100.0 * cur_m / source.memory_mb
            if old is not None:
                del source.domains[request.name]
                self._remove_domain(source, old)
            source.refresh()
            self._touch(source)
        host.used_cpu += demand.vcpus
        host.used_mem += demand.memory_mb
        host.used_disk += demand.disk_gb
        host.cpu_percent += cpu_load
        host.memory_percent += mem_load
        if old is not None and source is host:
            self._remove_domain(host, old)
        dom = Domain(request.name, request.group, request.vcpus, request.memory_mb, request.disk_gb,
                     request.cpu_percent)
        host.domains[request.name] = dom
        self._add_domain(host, dom)
        host.refresh()
        self._touch(host)

    def _touch(self, host):
        if self.index is None:
            return
        self.index.update(host)
        if self.index.updates >= self.rebuild_every:
            self.index.build([h for h in self.hosts if h.usable])

    def place_batch(self, requests, explain=False):
        """Place ``requests`` in order, each seeing the previous ones. Returns one entry per
        request: a committed Placement, or the KvmfleetError that request raised."""
        results = []
        for request in requests:
            try:
                results.append(self.place(request, explain=explain, commit=True))
            except (PlacementError, Conflict, ValidationError) as err:
                results.append(err)
        return results


# --------------------------------------------------------------------------- convenience

def fleet_from_facts(facts_by_host, inventory_by_host=None, **fleet_options):
    """Fleet from {host: kvmfleet_hypervisor or None} and {host: inventory vars}."""
    inventory_by_host = inventory_by_host or {}
    return Fleet([Host.from_facts(name, facts, inventory_by_host.get(name))
                  for name, facts in facts_by_host.items()], **fleet_options)


def place(hosts, request, explain=True):
    """One decision over ``hosts`` (Host objects): a Placement, or PlacementError."""
    return Fleet(hosts, use_index=not explain).place(request, explain=explain)


def place_batch(hosts, requests):
    """Place ``requests`` in order on ``hosts`` (modified in place); see ``Fleet.place_batch``."""
    return Fleet(hosts).place_batch(requests)
