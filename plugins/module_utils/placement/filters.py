# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placement filters: the rules a host must pass to take a VM (Nova's BaseHostFilter.host_passes,
kube-scheduler's filter plugins). Each rule is one class:

* ``prepare(fleet, request)``: what the rule needs of this request (its context), or None when
  the rule is not in play for it (no labels asked, no group, ...);
* ``passes(host, demand, context)`` and ``reasons(host, demand, context)``: the verdict and, for
  a host that fails, every reason as the user reads it (a unit test checks that they agree);
* ``judges(host)``: whether the rule has a say on that host at all (the capacity rules need a
  usable host's figures; a host that cannot be read is only told why);
* for the index, one of: ``RequestRule`` (the request rejects named hosts; the index skips them
  by rank and ``allowed`` may restrict the candidates to a few hosts, evaluated directly),
  ``INDEX_HOLDS_PASSING`` (the index holds only hosts that pass), or ``node_test(index, demand,
  context)``: a function of a node's stats, reading the ``NODE_STATS`` the rule declares, that
  answers NONE_PASS only when no host below can pass, ALL_PASS only when every host below passes
  (then the search asks nothing more below that node), else MAY_PASS; None: no pruning; and
  ``leaf_test``, which keeps the hosts of a leaf that pass.

A new filter is one class here, listed in ``FILTERS`` (the order is the order of the reasons).
One file of small classes because the registry's order is the order of a rejected host's
reasons: the filters are read together, as the reasons are.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
from operator import attrgetter

from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.index import (
    ALL_PASS,
    MAY_PASS,
    NONE_PASS,
    NodeStat,
    Slot,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.model import NO_FACTS


class HostFilter:
    """Base of the filters: a rule on the host's own state, judged on every host."""

    name = None
    NODE_STATS = ()
    INDEX_HOLDS_PASSING = False

    def prepare(self, fleet, request):
        return True

    def judges(self, host):
        return True

    def passes(self, host, demand, context):
        raise NotImplementedError

    def reasons(self, host, demand, context):
        raise NotImplementedError

    def node_test(self, index, demand, context):
        return None

    def every_host_passes(self, index, demand, context):
        """True when the index's root stats prove that every host in it passes (then the rule is
        not asked again for this request)."""
        return False

    def leaf_test(self, demand, context):
        """A function of a leaf's hosts giving those that pass, for the index (a rule may give a
        faster one with the request's figures bound in; it must agree with ``passes``)."""
        passes = self.passes
        return lambda hosts: [host for host in hosts if passes(host, demand, context)]


def _readable(host):
    return not host.facts_missing and host.reachable


def _usable(host):
    return host.usable


# --------------------------------------------------------------------------- request rules

class RequestRule(HostFilter):
    """A rule of the request that rejects hosts by name: the context is {host name: reason}."""

    def prepare(self, fleet, request):
        rejected = {}
        for name, reason in self.rejects(fleet, request):
            if name in fleet.by_name:
                rejected[name] = reason
        return rejected or None

    def rejects(self, fleet, request):
        """(host name, reason) pairs."""
        raise NotImplementedError

    def allowed(self, fleet, request):
        """The only hosts that can pass (a few; evaluated without the index), or None."""
        return None

    def passes(self, host, demand, context):
        return host.name not in context

    def reasons(self, host, demand, context):
        reason = context.get(host.name)
        return [] if reason is None else [reason]


class Pinned(RequestRule):
    name = "pinned"

    def rejects(self, fleet, request):
        if request.hosts is None:
            return ()
        pinned = set(request.hosts)
        return [(host.name, "not among the pinned hosts (%s)" % ", ".join(request.hosts))
                for host in fleet.hosts if host.name not in pinned]

    def allowed(self, fleet, request):
        return None if request.hosts is None else set(request.hosts)


class Excluded(RequestRule):
    name = "excluded"

    def rejects(self, fleet, request):
        return [(name, "excluded by the request") for name in request.exclude]


class MigrationSource(RequestRule):
    name = "migration source"

    def rejects(self, fleet, request):
        if not request.migrate:
            return ()
        return [(request.current_host, "current host of %s (migration source)" % request.name)]


class NameTaken(RequestRule):
    """A host that holds another domain of the VM's name (names are unique in the fleet)."""

    name = "name taken"

    def rejects(self, fleet, request):
        return [(name, "a domain named %s already exists here" % request.name)
                for name in sorted(fleet.domain_hosts.get(request.name, ())) if name != request.current_host]


class AntiAffinity(RequestRule):
    name = "anti-affinity"

    def rejects(self, fleet, request):
        if request.group is None or request.policy != "anti-affinity":
            return ()
        members = fleet.group_members[request.group] if request.group in fleet.group_members else {}
        return [(name, "anti-affinity: group %s already has %s here"
                 % (request.group, ", ".join(sorted(members[name] - {request.name}))))
                for name in fleet.group_hosts(request.group, request.name)]


class Affinity(RequestRule):
    name = "affinity"

    def rejects(self, fleet, request):
        members = self.allowed(fleet, request)
        if not members:
            return ()
        text = "affinity: group %s runs on %s" % (request.group, ", ".join(sorted(members)))
        return [(host.name, text) for host in fleet.hosts if host.name not in members]

    def allowed(self, fleet, request):
        if request.group is None or request.policy != "affinity":
            return None
        return set(fleet.group_hosts(request.group, request.name)) or None


# --------------------------------------------------------------------------- host rules

class HostState(HostFilter):
    """Facts gathered, reachable, not in maintenance nor disabled, every capacity above zero."""

    name = "host state"
    INDEX_HOLDS_PASSING = True      # the index is built over the usable hosts only

    def passes(self, host, demand, context):
        return host.usable

    def reasons(self, host, demand, context):
        if host.facts_missing:
            return [NO_FACTS]
        if not host.reachable:
            return ["unreachable: %s" % (host.error or "libvirt did not answer")]
        reasons = []
        if host.maintenance == "mark":
            reasons.append("in maintenance (mark /etc/kvmfleet/maintenance)")
        elif host.maintenance:
            reasons.append("in maintenance (kvmfleet_maintenance)")
        if host.disabled:
            reasons.append("disabled (kvmfleet_disabled)")
        if host.cap_cpu <= 0:
            reasons.append("no CPU capacity (%s CPUs reported)" % host.cpus)
        if host.cap_mem <= 0 or host.memory_mb <= 0:
            reasons.append("no usable memory (%s MiB x %g - %s MiB reserved)"
                           % (host.memory_mb, host.ram_ratio, host.reserved_mb))
        if host.cap_disk <= 0:
            reasons.append("no storage capacity (image store total %s GiB)" % host.storage_total_gb)
        return reasons


class VirtType(HostFilter):
    """The host offers the requested domain type. Context: (its bit in the fleet's virt masks,
    its name); the bit is 0 when no host offers it, and then nothing passes."""

    name = "virt type"
    NODE_STATS = (NodeStat("virt types", "or", attrgetter("vmask")),)

    def prepare(self, fleet, request):
        if request.virt_type is None:
            return None
        return fleet.virt_bits.get(request.virt_type, 0), request.virt_type

    judges = staticmethod(_readable)

    def passes(self, host, demand, context):
        return bool(host.vmask & context[0])

    def reasons(self, host, demand, context):
        if host.vmask & context[0]:
            return []
        return ["virt type %s not offered (has: %s)" % (context[1], ", ".join(host.virt_types) or "none")]

    def node_test(self, index, demand, context):
        slot, bit = index.slot["virt types"], context[0]
        return lambda st: MAY_PASS if st[slot] & bit else NONE_PASS


class Labels(HostFilter):
    """The host carries every label the request asks for, with the same value (a Kubernetes
    nodeSelector, Nova's aggregate metadata). Nodes keep the union of their hosts' label pairs:
    a host with every pair asked has them all in that union."""

    name = "labels"
    NODE_STATS = (NodeStat("label pairs", "or", attrgetter("label_pairs")),)

    def prepare(self, fleet, request):
        return frozenset(request.labels.items()) if request.labels else None

    judges = staticmethod(_readable)

    def passes(self, host, demand, context):
        labels = host.labels
        for key, value in context:
            if labels.get(key) != value:
                return False
        return True

    def reasons(self, host, demand, context):
        reasons = []
        for key, value in sorted(context):
            has = host.labels.get(key)
            if has is None:
                reasons.append("label %s=%s missing (kvmfleet_host_labels)" % (key, value))
            elif has != value:
                reasons.append("label %s is %s, not %s (kvmfleet_host_labels)" % (key, has, value))
        return reasons

    def node_test(self, index, demand, context):
        slot = index.slot["label pairs"]
        return lambda st: MAY_PASS if context <= st[slot] else NONE_PASS


class Capacity(HostFilter):
    """Free allocation (capacity - allocated) for every resource the demand grows; shrinking always fits."""

    name = "capacity"
    NODE_STATS = (NodeStat("free cpu", "max", attrgetter("free_cpu")),
                  NodeStat("free memory", "max", attrgetter("free_mem")),
                  NodeStat("free disk", "max", attrgetter("free_disk")),
                  NodeStat("least free cpu", "min", attrgetter("free_cpu")),
                  NodeStat("least free memory", "min", attrgetter("free_mem")),
                  NodeStat("least free disk", "min", attrgetter("free_disk")))

    judges = staticmethod(_usable)

    def passes(self, host, demand, context):
        return not ((demand.vcpus > 0 and demand.vcpus > host.free_cpu)
                    or (demand.memory_mb > 0 and demand.memory_mb > host.free_mem)
                    or (demand.disk_gb > 0 and demand.disk_gb > host.free_disk))

    def reasons(self, host, demand, context):
        more = " more" if demand.in_place else ""
        reasons = []
        if demand.vcpus > 0 and demand.vcpus > host.free_cpu:
            reasons.append("vcpus: needs %d%s, %g free of %g (%d CPUs x %g, %d allocated)"
                           % (demand.vcpus, more, host.free_cpu, host.cap_cpu, host.cpus, host.cpu_ratio,
                              host.used_cpu))
        if demand.memory_mb > 0 and demand.memory_mb > host.free_mem:
            reasons.append("memory: needs %d MiB%s, %g free of %g (%d MiB x %g - %d reserved, %d allocated)"
                           % (demand.memory_mb, more, host.free_mem, host.cap_mem, host.memory_mb, host.ram_ratio,
                              host.reserved_mb, host.used_mem))
        if demand.disk_gb > 0 and demand.disk_gb > host.free_disk:
            reasons.append("disk: needs %d GiB%s, %g free of %g (%d GiB x %g, %d allocated)"
                           % (demand.disk_gb, more, host.free_disk, host.cap_disk, host.storage_total_gb,
                              host.disk_ratio, host.used_disk))
        return reasons

    def node_test(self, index, demand, context):
        # A need of -inf for a resource the demand does not grow: always met.
        need_cpu = demand.vcpus if demand.vcpus > 0 else -math.inf
        need_mem = demand.memory_mb if demand.memory_mb > 0 else -math.inf
        need_disk = demand.disk_gb if demand.disk_gb > 0 else -math.inf
        cpu, mem, disk = index.slot["free cpu"], index.slot["free memory"], index.slot["free disk"]
        least_cpu, least_mem, least_disk = (index.slot["least free cpu"], index.slot["least free memory"],
                                            index.slot["least free disk"])

        def test(st):
            if st[cpu] < need_cpu or st[mem] < need_mem or st[disk] < need_disk:
                return NONE_PASS
            if st[least_cpu] >= need_cpu and st[least_mem] >= need_mem and st[least_disk] >= need_disk:
                return ALL_PASS
            return MAY_PASS
        return test

    def every_host_passes(self, index, demand, context):
        root = index.stats[index.root]
        return (root[index.slot["least free cpu"]] >= demand.vcpus and root[index.slot["least free memory"]] >= demand.memory_mb
                and root[index.slot["least free disk"]] >= demand.disk_gb)

    def leaf_test(self, demand, context):
        need_cpu = demand.vcpus if demand.vcpus > 0 else -math.inf
        need_mem = demand.memory_mb if demand.memory_mb > 0 else -math.inf
        need_disk = demand.disk_gb if demand.disk_gb > 0 else -math.inf
        return lambda hosts: [h for h in hosts
                              if h.free_cpu >= need_cpu and h.free_mem >= need_mem and h.free_disk >= need_disk]


def _live_reason(what, now, projected, threshold):
    if now > threshold:
        return "%s utilization %.1f%% is above the threshold %g%%" % (what, now, threshold)
    return ("%s utilization would reach %.1f%% (%.1f%% now + %.1f%% projected for the VM), above the "
            "threshold %g%%" % (what, now + projected, now, projected, threshold))


class LiveUtilization(HostFilter):
    """Live utilization plus the VM's projected load stays within the host's thresholds, for cpu
    and memory, when the demand grows them (headroom = threshold - utilization)."""

    name = "live utilization"
    NODE_STATS = (NodeStat("cpu headroom", "max", attrgetter("head_cpu")),
                  NodeStat("memory headroom", "max", attrgetter("head_mem")),
                  NodeStat("cpus", "max", attrgetter("cpus")),
                  NodeStat("host memory", "max", attrgetter("memory_mb")),
                  NodeStat("least cpu headroom", "min", attrgetter("head_cpu")),
                  NodeStat("least memory headroom", "min", attrgetter("head_mem")))

    judges = staticmethod(_usable)

    def passes(self, host, demand, context):
        if demand.vcpus > 0 and demand.cpu_projection(host) > host.head_cpu:
            return False
        return not (demand.memory_mb > 0 and demand.memory_projection(host) > host.head_mem)

    def reasons(self, host, demand, context):
        reasons = []
        if demand.vcpus > 0:
            load = demand.cpu_projection(host)
            if load > host.head_cpu:
                reasons.append(_live_reason("cpu", host.cpu_percent, load, host.cpu_threshold))
        if demand.memory_mb > 0:
            load = demand.memory_projection(host)
            if load > host.head_mem:
                reasons.append(_live_reason("memory", host.memory_percent, load, host.memory_threshold))
        return reasons

    @staticmethod
    def _needs(index, demand):
        """The headroom (cpu, memory) a host of each shape needs (Demand's projections, same float operations)."""
        dv, dm = demand.vcpus, demand.memory_mb
        cpu_load, measured, mem_load = demand.cpu_load, demand.measured, 100.0 * dm
        return [((cpu_load / shape.cpus if measured else cpu_load / shape.cap_cpu) if dv > 0 else -math.inf,
                 mem_load / shape.memory_mb if dm > 0 else -math.inf) for shape in index.shapes]

    def every_host_passes(self, index, demand, context):
        root = index.stats[index.root]
        needs = self._needs(index, demand)
        return (root[index.slot["least cpu headroom"]] >= max(n[0] for n in needs)
                and root[index.slot["least memory headroom"]] >= max(n[1] for n in needs))

    def node_test(self, index, demand, context):
        dv, dm = demand.vcpus, demand.memory_mb
        cpu_load, measured, mem_load = demand.cpu_load, demand.measured, 100.0 * dm
        need = self._needs(index, demand)
        head_cpu, head_mem = index.slot["cpu headroom"], index.slot["memory headroom"]
        least_cpu, least_mem = index.slot["least cpu headroom"], index.slot["least memory headroom"]
        cpus, memory = index.slot["cpus"], index.slot["host memory"]
        shape_, cap_cpu_max = Slot.SHAPE, Slot.CAP_CPU_MAX

        def test(st):
            shape = st[shape_]
            if shape >= 0:
                need_cpu, need_mem = need[shape]
                if st[head_cpu] < need_cpu or st[head_mem] < need_mem:
                    return NONE_PASS
                return ALL_PASS if st[least_cpu] >= need_cpu and st[least_mem] >= need_mem else MAY_PASS
            # Several shapes: the smallest projection is over the largest host.
            if dv > 0 and st[head_cpu] < (cpu_load / st[cpus] if measured else cpu_load / st[cap_cpu_max]):
                return NONE_PASS
            return NONE_PASS if dm > 0 and st[head_mem] < mem_load / st[memory] else MAY_PASS
        return test

    def leaf_test(self, demand, context):
        # Demand.cpu_projection and memory_projection, with the request's figures bound in.
        dv, dm = demand.vcpus, demand.memory_mb
        cpu_load, measured, mem_load = demand.cpu_load, demand.measured, 100.0 * dm
        if dv > 0 and dm > 0:
            # Both resources grow (the common case): one pass over the leaf.
            if measured:
                return lambda hosts: [h for h in hosts if not (cpu_load / h.cpus > h.head_cpu or mem_load / h.memory_mb > h.head_mem)]
            return lambda hosts: [h for h in hosts if not (cpu_load / h.cap_cpu > h.head_cpu or mem_load / h.memory_mb > h.head_mem)]
        if dv > 0:
            def hosts_cpu(hosts):
                if measured:
                    return [h for h in hosts if not cpu_load / h.cpus > h.head_cpu]
                return [h for h in hosts if not cpu_load / h.cap_cpu > h.head_cpu]
        else:
            hosts_cpu = list
        if dm > 0:
            return lambda hosts: [h for h in hosts_cpu(hosts) if not mem_load / h.memory_mb > h.head_mem]
        return hosts_cpu


# The registry, in the order a rejected host's reasons are listed.
FILTERS = (Pinned(), Excluded(), MigrationSource(), NameTaken(), AntiAffinity(), Affinity(),
           HostState(), VirtType(), Labels(), Capacity(), LiveUtilization())
