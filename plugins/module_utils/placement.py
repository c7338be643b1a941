# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placement engine: which hypervisor takes a VM (creation, migration target, scaling).

Pure logic (stdlib only). docs/placement.md describes the filters, the projection of a VM's
demand, the strategies and their formulas, and the index; the short version:

* ``Host`` is the model of one hypervisor, built from its ``kvmfleet_hypervisor`` facts and
  inventory variables by ``Host.from_facts``.
* ``Request`` is one VM: name, size, group + policy, pinned / excluded hosts, virt type,
  strategy, and for an existing VM its current host and size (``migrate`` or resize).
* ``Fleet(hosts).place(request)`` returns a ``Placement`` (host, score breakdown, explanation)
  or raises ``PlacementError`` naming every host and every reason it was rejected.
  ``Fleet.place_batch`` places many requests in order, applying each to the in-memory state.
* A branch-and-bound tree over the hosts (boxes of allocation fractions, capacities, free
  capacity and live headroom) finds the same host as the exhaustive evaluation, which
  ``Fleet.place_exhaustive`` performs and the unit tests compare against.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import heapq
import math

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    Conflict,
    PlacementError,
    ValidationError,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.utilization import host_vm_cpu_percent

STRATEGIES = ("balanced", "spread", "pack")
POLICIES = ("anti-affinity", "affinity")
DEFAULT_STRATEGY = "balanced"
DEFAULT_POLICY = "anti-affinity"

# Inventory variables (docs/architecture.md) and their defaults.
INVENTORY_DEFAULTS = {
    "kvmfleet_maintenance": False,
    "kvmfleet_disabled": False,
    "kvmfleet_cpu_allocation_ratio": 4.0,
    "kvmfleet_ram_allocation_ratio": 1.0,
    "kvmfleet_disk_allocation_ratio": 1.0,
    "kvmfleet_reserved_host_memory_mb": 512,
    "kvmfleet_cpu_threshold": 80.0,
    "kvmfleet_memory_threshold": 85.0,
    # Where a host's live CPU comes from: "host" (the node's own CPU counters) or "vms" (the sum of
    # its VMs' CPU over its CPUs), for hosts whose counters are shared, like the lab's containers.
    "kvmfleet_cpu_source": "host",
}
CPU_SOURCES = ("host", "vms")

NO_FACTS = "no facts gathered"


# Slack added to the tree's upper bounds wherever they are not computed by the very same float
# operations as a host's score; far above rounding error, far below any meaningful score gap.
_BOUND_SLACK = 1e-9
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT6 = 1.0 / math.sqrt(6.0)
_INV_SQRT3 = 1.0 / math.sqrt(3.0)
_LEAF_SIZE = 8


# --------------------------------------------------------------------------- scores

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


SCORERS = {"spread": score_spread, "pack": score_pack, "balanced": score_balanced}


def _score_terms(strategy, u_cpu, u_mem, u_disk):
    mean = (u_cpu + u_mem + u_disk) / 3.0
    if strategy == "spread":
        return {"free": 1.0 - mean}
    if strategy == "pack":
        return {"allocated": mean}
    std = math.sqrt(((u_cpu - mean) ** 2 + (u_mem - mean) ** 2 + (u_disk - mean) ** 2) / 3.0)
    return {"free": 1.0 - mean, "imbalance": std}


# --------------------------------------------------------------------------- model

def _number(value, what, host, default=None, integer=False):
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValidationError("%s of %s must be a number, got %r" % (what, host, value))
    try:
        return int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ValidationError("%s of %s must be a number, got %r" % (what, host, value))


def _flag(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class Domain:
    """What placement needs of a domain: its group and size."""

    __slots__ = ("name", "group", "vcpus", "memory_mb", "disk_gb", "cpu_percent")

    def __init__(self, name, group=None, vcpus=0, memory_mb=0, disk_gb=0, cpu_percent=None):
        self.name = name
        self.group = group
        self.vcpus = vcpus
        self.memory_mb = memory_mb
        self.disk_gb = disk_gb
        self.cpu_percent = cpu_percent

    @classmethod
    def from_fact(cls, fact, host):
        disks = fact.get("disks") or []
        return cls(
            name=str(fact["name"]),
            group=None if fact.get("group") is None else str(fact["group"]),
            vcpus=_number(fact.get("vcpus"), "vcpus of domain %s" % fact["name"], host, 0, True),
            memory_mb=_number(fact.get("memory_mb"), "memory_mb of domain %s" % fact["name"], host, 0, True),
            disk_gb=sum(_number(d.get("capacity_gb"), "disk capacity_gb", host, 0, True) for d in disks),
            cpu_percent=_number(fact.get("cpu_percent"), "cpu_percent of domain %s" % fact["name"], host),
        )


class Host:
    """One hypervisor as placement sees it.

    Capacities (docs/placement.md): cpu = cpus * cpu ratio vCPUs; memory = memory_mb * ram ratio
    - reserved MiB; disk = storage total_gb * disk ratio GiB. ``used_*`` is what defined domains
    were promised (``allocated``), ``f_*`` = used / capacity, ``free_*`` = capacity - used.
    Live headroom is threshold - utilization percent.
    """

    __slots__ = (
        "name", "rank", "facts_missing", "reachable", "error", "maintenance", "disabled",
        "virt_types", "vmask", "cpus", "memory_mb", "storage_total_gb",
        "cpu_ratio", "ram_ratio", "disk_ratio", "reserved_mb", "cpu_threshold", "memory_threshold",
        "used_cpu", "used_mem", "used_disk", "cpu_percent", "memory_percent", "domains",
        "cap_cpu", "cap_mem", "cap_disk", "free_cpu", "free_mem", "free_disk",
        "f_cpu", "f_mem", "f_disk", "head_cpu", "head_mem", "usable",
    )

    def __init__(self, name, cpus=0, memory_mb=0, storage_total_gb=0, virt_types=("kvm", "qemu"),
                 used_vcpus=0, used_memory_mb=0, used_disk_gb=0, cpu_percent=0.0, memory_percent=0.0,
                 domains=(), reachable=True, error=None, facts_missing=False,
                 maintenance=False, disabled=False,
                 cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0, disk_allocation_ratio=1.0,
                 reserved_host_memory_mb=512, cpu_threshold=80.0, memory_threshold=85.0):
        self.name = str(name)
        self.rank = 0
        self.vmask = 0
        self.facts_missing = bool(facts_missing)
        self.reachable = bool(reachable)
        self.error = error
        self.maintenance = maintenance if maintenance == "mark" else bool(maintenance)
        self.disabled = bool(disabled)
        self.virt_types = tuple(sorted(set(str(v) for v in virt_types)))
        self.cpus = cpus or 0
        self.memory_mb = memory_mb or 0
        self.storage_total_gb = storage_total_gb or 0
        self.cpu_ratio = float(cpu_allocation_ratio)
        self.ram_ratio = float(ram_allocation_ratio)
        self.disk_ratio = float(disk_allocation_ratio)
        self.reserved_mb = reserved_host_memory_mb
        self.cpu_threshold = float(cpu_threshold)
        self.memory_threshold = float(memory_threshold)
        self.used_cpu = used_vcpus or 0
        self.used_mem = used_memory_mb or 0
        self.used_disk = used_disk_gb or 0
        self.cpu_percent = float(cpu_percent or 0.0)
        self.memory_percent = float(memory_percent or 0.0)
        self.domains = {}
        for dom in domains:
            if not isinstance(dom, Domain):
                dom = Domain(**dom)
            self.domains[dom.name] = dom
        for what, ratio in (("cpu", self.cpu_ratio), ("ram", self.ram_ratio), ("disk", self.disk_ratio)):
            if ratio <= 0:
                raise ValidationError("%s allocation ratio of %s must be > 0, got %s" % (what, self.name, ratio))
        self.refresh()

    @classmethod
    def from_facts(cls, name, facts, inventory=None):
        """Host from ``kvmfleet_hypervisor`` (None: not gathered) and the host's inventory vars."""
        inventory = inventory or {}

        def var(key):
            value = inventory.get(key)
            return INVENTORY_DEFAULTS[key] if value is None else value

        settings = dict(
            maintenance=_flag(var("kvmfleet_maintenance")),
            disabled=_flag(var("kvmfleet_disabled")),
            cpu_allocation_ratio=_number(var("kvmfleet_cpu_allocation_ratio"), "kvmfleet_cpu_allocation_ratio", name),
            ram_allocation_ratio=_number(var("kvmfleet_ram_allocation_ratio"), "kvmfleet_ram_allocation_ratio", name),
            disk_allocation_ratio=_number(var("kvmfleet_disk_allocation_ratio"), "kvmfleet_disk_allocation_ratio", name),
            reserved_host_memory_mb=_number(var("kvmfleet_reserved_host_memory_mb"),
                                            "kvmfleet_reserved_host_memory_mb", name, integer=True),
            cpu_threshold=_number(var("kvmfleet_cpu_threshold"), "kvmfleet_cpu_threshold", name),
            memory_threshold=_number(var("kvmfleet_memory_threshold"), "kvmfleet_memory_threshold", name),
        )
        if not facts:
            return cls(name, facts_missing=True, reachable=False, **settings)
        if not facts.get("reachable", True):
            return cls(name, reachable=False, error=facts.get("error"), **settings)
        if facts.get("maintenance") is True and not settings["maintenance"]:
            # hypervisor_info reports the host's own maintenance mark (/etc/kvmfleet/maintenance)
            settings["maintenance"] = "mark"
        allocated = facts.get("allocated") or {}
        utilization = facts.get("utilization") or {}
        storage = facts.get("storage") or {}
        cpu_source = var("kvmfleet_cpu_source")
        if cpu_source not in CPU_SOURCES:
            raise ValidationError("kvmfleet_cpu_source of %s must be one of %s, got %r"
                                  % (name, ", ".join(CPU_SOURCES), cpu_source))
        return cls(
            name,
            cpus=_number(facts.get("cpus"), "cpus", name, 0, True),
            memory_mb=_number(facts.get("memory_mb"), "memory_mb", name, 0, True),
            storage_total_gb=_number(storage.get("total_gb"), "storage.total_gb", name, 0, True),
            virt_types=facts.get("virt_types") or (),
            used_vcpus=_number(allocated.get("vcpus"), "allocated.vcpus", name, 0, True),
            used_memory_mb=_number(allocated.get("memory_mb"), "allocated.memory_mb", name, 0, True),
            used_disk_gb=_number(allocated.get("disk_gb"), "allocated.disk_gb", name, 0, True),
            # Unknown live figures (no CPU sample) are taken as idle: allocation still limits.
            cpu_percent=(_number(utilization.get("cpu_percent"), "utilization.cpu_percent", name, 0.0)
                         if cpu_source == "host" else host_vm_cpu_percent(facts) or 0.0),
            memory_percent=_number(utilization.get("memory_percent"), "utilization.memory_percent", name, 0.0),
            domains=[Domain.from_fact(d, name) for d in facts.get("domains") or ()],
            **settings
        )

    def refresh(self):
        """Recompute the derived figures after ``used_*`` or utilization changed."""
        self.cap_cpu = self.cpus * self.cpu_ratio
        self.cap_mem = self.memory_mb * self.ram_ratio - self.reserved_mb
        self.cap_disk = self.storage_total_gb * self.disk_ratio
        self.free_cpu = self.cap_cpu - self.used_cpu
        self.free_mem = self.cap_mem - self.used_mem
        self.free_disk = self.cap_disk - self.used_disk
        self.head_cpu = self.cpu_threshold - self.cpu_percent
        self.head_mem = self.memory_threshold - self.memory_percent
        self.usable = (not self.facts_missing and self.reachable and not self.maintenance
                       and not self.disabled and self.cap_cpu > 0 and self.cap_mem > 0
                       and self.cap_disk > 0 and self.memory_mb > 0)
        if self.usable:
            self.f_cpu = self.used_cpu / self.cap_cpu
            self.f_mem = self.used_mem / self.cap_mem
            self.f_disk = self.used_disk / self.cap_disk
        else:
            self.f_cpu = self.f_mem = self.f_disk = 0.0

    def static_reasons(self):
        """Reasons this host takes no VM at all, whatever the request."""
        if self.facts_missing:
            return [NO_FACTS]
        if not self.reachable:
            return ["unreachable: %s" % (self.error or "libvirt did not answer")]
        reasons = []
        if self.maintenance == "mark":
            reasons.append("in maintenance (mark /etc/kvmfleet/maintenance)")
        elif self.maintenance:
            reasons.append("in maintenance (kvmfleet_maintenance)")
        if self.disabled:
            reasons.append("disabled (kvmfleet_disabled)")
        if self.cap_cpu <= 0:
            reasons.append("no CPU capacity (%s CPUs reported)" % self.cpus)
        if self.cap_mem <= 0 or self.memory_mb <= 0:
            reasons.append("no usable memory (%s MiB x %g - %s MiB reserved)"
                           % (self.memory_mb, self.ram_ratio, self.reserved_mb))
        if self.cap_disk <= 0:
            reasons.append("no storage capacity (image store total %s GiB)" % self.storage_total_gb)
        return reasons


class Request:
    """One VM to place.

    Creation: ``current_host`` None. An existing VM: ``current_host`` and its current size
    (``current_vcpus``, ``current_memory_mb``, ``current_disk_gb``; ``Fleet`` fills them from the
    domain on the current host when left None).

    * ``migrate=True``: the current host is excluded; the VM is full new demand at the target.
    * ``migrate=False`` (resize): the current host needs only the delta of the new size against
      the current one, and is kept whenever it passes every filter; otherwise other hosts are
      scored for the full new size (resize by moving). Pin ``hosts=[current_host]`` to forbid moving.

    ``cpu_percent``: expected load of the VM in percent of one host CPU summed over its vCPUs (the
    unit of a domain's ``cpu_percent``), e.g. its measured load when migrating. None: each vCPU is
    projected to use 100 / cpu allocation ratio percent of one host CPU.
    """

    __slots__ = ("name", "vcpus", "memory_mb", "disk_gb", "group", "policy", "hosts", "exclude",
                 "virt_type", "strategy", "current_host", "current_vcpus", "current_memory_mb",
                 "current_disk_gb", "migrate", "cpu_percent")

    FIELDS = __slots__

    def __init__(self, name, vcpus, memory_mb, disk_gb=0, group=None, policy=DEFAULT_POLICY,
                 hosts=None, exclude=(), virt_type=None, strategy=DEFAULT_STRATEGY,
                 current_host=None, current_vcpus=None, current_memory_mb=None, current_disk_gb=None,
                 migrate=False, cpu_percent=None):
        if not name or not isinstance(name, str):
            raise ValidationError("request needs a name, got %r" % (name,))
        self.name = name
        self.vcpus = _request_int(vcpus, "vcpus", name, minimum=1)
        self.memory_mb = _request_int(memory_mb, "memory_mb", name, minimum=1)
        self.disk_gb = _request_int(disk_gb if disk_gb is not None else 0, "disk_gb", name, minimum=0)
        self.group = None if group in (None, "") else str(group)
        self.policy = policy or DEFAULT_POLICY
        if self.policy not in POLICIES:
            raise ValidationError("policy of %s must be one of %s, got %r" % (name, ", ".join(POLICIES), policy))
        self.strategy = strategy or DEFAULT_STRATEGY
        if self.strategy not in STRATEGIES:
            raise ValidationError("strategy of %s must be one of %s, got %r"
                                  % (name, ", ".join(STRATEGIES), strategy))
        self.hosts = None if hosts is None else _host_list(hosts, "hosts", name)
        if self.hosts is not None and not self.hosts:
            raise ValidationError("hosts of %s pins no host; leave it out to allow any" % name)
        self.exclude = tuple(_host_list(exclude or (), "exclude", name))
        self.virt_type = None if virt_type in (None, "") else str(virt_type)
        self.current_host = None if current_host in (None, "") else str(current_host)
        self.current_vcpus = None if current_vcpus is None else _request_int(current_vcpus, "current_vcpus", name, 0)
        self.current_memory_mb = (None if current_memory_mb is None
                                  else _request_int(current_memory_mb, "current_memory_mb", name, 0))
        self.current_disk_gb = (None if current_disk_gb is None
                                else _request_int(current_disk_gb, "current_disk_gb", name, 0))
        self.migrate = _flag(migrate)
        if self.migrate and self.current_host is None:
            raise ValidationError("migrating %s needs its current_host" % name)
        self.cpu_percent = None if cpu_percent is None else _number(cpu_percent, "cpu_percent", name)
        if self.cpu_percent is not None and self.cpu_percent < 0:
            raise ValidationError("cpu_percent of %s must be >= 0" % name)

    @classmethod
    def from_dict(cls, data):
        if not isinstance(data, dict):
            raise ValidationError("a placement request must be a dict, got %s" % type(data).__name__)
        unknown = sorted(set(data) - set(cls.FIELDS))
        if unknown:
            raise ValidationError("unknown request keys: %s (known: %s)" % (", ".join(unknown), ", ".join(cls.FIELDS)))
        for key in ("name", "vcpus", "memory_mb"):
            if data.get(key) is None:
                raise ValidationError("request is missing %s" % key)
        return cls(**data)

    def to_dict(self):
        return {key: getattr(self, key) for key in self.FIELDS}

    def __repr__(self):
        return "Request(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.FIELDS
                                         if getattr(self, k) not in (None, (), False))


def _request_int(value, what, name, minimum):
    if isinstance(value, bool):
        raise ValidationError("%s of %s must be an integer, got %r" % (what, name, value))
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError("%s of %s must be an integer, got %r" % (what, name, value))
    if isinstance(value, float) and number != value:
        raise ValidationError("%s of %s must be an integer, got %r" % (what, name, value))
    if number < minimum:
        raise ValidationError("%s of %s must be >= %d, got %d" % (what, name, minimum, number))
    return number


def _host_list(value, what, name):
    if isinstance(value, str):
        value = [value]
    try:
        hosts = [str(h) for h in value]
    except TypeError:
        raise ValidationError("%s of %s must be a list of host names, got %r" % (what, name, value))
    return sorted(set(hosts))


class Demand:
    """What a VM adds to one host: allocation deltas and projected live-utilization deltas."""

    __slots__ = ("vcpus", "memory_mb", "disk_gb", "cpu_load", "measured", "in_place")

    def __init__(self, vcpus, memory_mb, disk_gb, cpu_load, measured, in_place):
        self.vcpus = vcpus
        self.memory_mb = memory_mb
        self.disk_gb = disk_gb
        # cpu_load: percent of one host CPU when measured, else 100 * vcpus (divided by the
        # host's cpu capacity, i.e. cpus * ratio, it is the ratio-based projection).
        self.cpu_load = cpu_load
        self.measured = measured
        self.in_place = in_place

    def cpu_projection(self, host):
        """Host-wide cpu percent this demand adds on ``host``."""
        return self.cpu_load / host.cpus if self.measured else self.cpu_load / host.cap_cpu

    def memory_projection(self, host):
        return (100.0 * self.memory_mb) / host.memory_mb

    def as_dict(self, host):
        return {"vcpus": self.vcpus, "memory_mb": self.memory_mb, "disk_gb": self.disk_gb,
                "cpu_percent": round(self.cpu_projection(host), 2) if host.usable else None,
                "memory_percent": round(self.memory_projection(host), 2) if host.usable else None,
                "in_place": self.in_place}


def _fits(host, demand):
    """Whether ``host`` (usable) takes ``demand`` under capacity and live headroom.

    Resources the demand does not grow are not checked, so shrinking always fits.
    Must agree with ``_capacity_reasons`` (a unit test checks that).
    """
    dv = demand.vcpus
    if dv > 0:
        if dv > host.free_cpu:
            return False
        load = demand.cpu_load / host.cpus if demand.measured else demand.cpu_load / host.cap_cpu
        if load > host.head_cpu:
            return False
    dm = demand.memory_mb
    if dm > 0:
        if dm > host.free_mem:
            return False
        if (100.0 * dm) / host.memory_mb > host.head_mem:
            return False
    dd = demand.disk_gb
    if dd > 0 and dd > host.free_disk:
        return False
    return True


def _capacity_reasons(host, demand):
    more = " more" if demand.in_place else ""
    reasons = []
    if demand.vcpus > 0 and demand.vcpus > host.free_cpu:
        reasons.append("vcpus: needs %d%s, %g free of %g (%d CPUs x %g, %d allocated)"
                       % (demand.vcpus, more, host.free_cpu, host.cap_cpu, host.cpus, host.cpu_ratio, host.used_cpu))
    if demand.memory_mb > 0 and demand.memory_mb > host.free_mem:
        reasons.append("memory: needs %d MiB%s, %g free of %g (%d MiB x %g - %d reserved, %d allocated)"
                       % (demand.memory_mb, more, host.free_mem, host.cap_mem, host.memory_mb, host.ram_ratio,
                          host.reserved_mb, host.used_mem))
    if demand.disk_gb > 0 and demand.disk_gb > host.free_disk:
        reasons.append("disk: needs %d GiB%s, %g free of %g (%d GiB x %g, %d allocated)"
                       % (demand.disk_gb, more, host.free_disk, host.cap_disk, host.storage_total_gb,
                          host.disk_ratio, host.used_disk))
    if demand.vcpus > 0:
        load = demand.cpu_projection(host)
        if load > host.head_cpu:
            reasons.append(_live_reason("cpu", host.cpu_percent, load, host.cpu_threshold))
    if demand.memory_mb > 0:
        load = demand.memory_projection(host)
        if load > host.head_mem:
            reasons.append(_live_reason("memory", host.memory_percent, load, host.memory_threshold))
    return reasons


def _live_reason(what, now, projected, threshold):
    if now > threshold:
        return "%s utilization %.1f%% is above the threshold %g%%" % (what, now, threshold)
    return ("%s utilization would reach %.1f%% (%.1f%% now + %.1f%% projected for the VM), above the "
            "threshold %g%%" % (what, now + projected, now, projected, threshold))


class Placement:
    """The decision: ``host`` and why. ``candidates`` / ``rejected`` are complete only when
    the placement was made with ``explain=True``; otherwise they hold the chosen host only."""

    __slots__ = ("request", "host", "score", "strategy", "breakdown", "demand", "explanation",
                 "candidates", "rejected", "source")

    def __init__(self, request, host, score, breakdown, demand, explanation, candidates, rejected, source):
        self.request = request
        self.host = host
        self.score = score
        self.strategy = request.strategy
        self.breakdown = breakdown
        self.demand = demand
        self.explanation = explanation
        self.candidates = candidates
        self.rejected = rejected
        self.source = source

    def to_dict(self):
        return {"host": self.host, "strategy": self.strategy, "score": self.score,
                "explanation": self.explanation, "breakdown": self.breakdown,
                "scores": self.candidates, "rejected": self.rejected,
                "moved_from": self.source if self.source not in (None, self.host) else None}

    def __repr__(self):
        return "Placement(%s -> %s, %.6f)" % (self.request.name, self.host, self.score)


# --------------------------------------------------------------------------- index

class _Index:
    """Bounding-box tree over the usable hosts for exact branch and bound.

    Hosts are grouped by hardware shape (capacities, cpus, memory); each shape gets a k-d tree
    over the coordinates the scores depend on: the mean allocated fraction and the imbalance
    vector (x, y) of the allocated fractions. Each node keeps, over the hosts below it: min/max
    allocation fraction, min/max capacity and max free capacity per resource, max live headroom
    (cpu, memory), max cpus and host memory, the union of virt-type bits, the lowest name rank,
    min/max of the summed fractions and of x and y, its shape (or -1) and whether all its hosts
    are equal (a point box). From these a request gets, per node, (a) a proof that no host below
    fits, or (b) an upper bound on the score of any host below. Best-first search stops when the
    best host found beats every open node's bound, ties included (equal bound and a higher lowest
    rank), so the result is the exhaustive optimum (docs/placement.md gives the bounds).
    """

    # layout of a node's stats list
    FMIN, FMAX, CAPMIN, CAPMAX, FREEMAX = 0, 3, 6, 9, 12
    HCPU, HMEM, CPUS, MEMTOT, VMASK, RANK = 15, 16, 17, 18, 19, 20
    SUMMIN, SUMMAX, XMIN, XMAX, YMIN, YMAX, SHAPE, POINT = 21, 22, 23, 24, 25, 26, 27, 28

    def __init__(self, hosts, leaf_size=_LEAF_SIZE):
        self.leaf_size = leaf_size
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
            by_shape.setdefault(self._shape(host), []).append(host)
        self.shapes = sorted(by_shape)
        self.shape_of = {}
        for number, shape in enumerate(self.shapes):
            for host in by_shape[shape]:
                self.shape_of[host.name] = number
        self.root = self._join([by_shape[s] for s in self.shapes], -1) if hosts else None

    @staticmethod
    def _shape(host):
        return (host.cap_cpu, host.cap_mem, host.cap_disk, host.memory_mb, host.cpus)

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
            lambda h: (h.f_cpu - h.f_mem) * (_INV_SQRT2 * _INV_SQRT3),
            lambda h: (h.f_cpu + h.f_mem - 2.0 * h.f_disk) * (_INV_SQRT6 * _INV_SQRT3),
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
        point = all(h.f_cpu == first.f_cpu and h.f_mem == first.f_mem and h.f_disk == first.f_disk
                    for h in hosts)
        return [
            min(h.f_cpu for h in hosts), min(h.f_mem for h in hosts), min(h.f_disk for h in hosts),
            max(h.f_cpu for h in hosts), max(h.f_mem for h in hosts), max(h.f_disk for h in hosts),
            first.cap_cpu, first.cap_mem, first.cap_disk,
            first.cap_cpu, first.cap_mem, first.cap_disk,
            max(h.free_cpu for h in hosts), max(h.free_mem for h in hosts), max(h.free_disk for h in hosts),
            max(h.head_cpu for h in hosts), max(h.head_mem for h in hosts),
            first.cpus, first.memory_mb,
            _or_masks(h.vmask for h in hosts), min(h.rank for h in hosts),
            min(h.f_cpu + h.f_mem + h.f_disk for h in hosts), max(h.f_cpu + h.f_mem + h.f_disk for h in hosts),
            min((h.f_cpu - h.f_mem) * _INV_SQRT2 for h in hosts),
            max((h.f_cpu - h.f_mem) * _INV_SQRT2 for h in hosts),
            min((h.f_cpu + h.f_mem - 2.0 * h.f_disk) * _INV_SQRT6 for h in hosts),
            max((h.f_cpu + h.f_mem - 2.0 * h.f_disk) * _INV_SQRT6 for h in hosts),
            self.shape_of[first.name], point,
        ]

    @staticmethod
    def _merge(a, b):
        merged = [x if x < y else y for x, y in zip(a[0:3], b[0:3])]
        merged += [x if x > y else y for x, y in zip(a[3:6], b[3:6])]
        merged += [x if x < y else y for x, y in zip(a[6:9], b[6:9])]
        merged += [x if x > y else y for x, y in zip(a[9:19], b[9:19])]
        merged.append(a[19] | b[19])
        merged.append(a[20] if a[20] < b[20] else b[20])
        merged.append(a[21] if a[21] < b[21] else b[21])
        merged.append(a[22] if a[22] > b[22] else b[22])
        merged.append(a[23] if a[23] < b[23] else b[23])
        merged.append(a[24] if a[24] > b[24] else b[24])
        merged.append(a[25] if a[25] < b[25] else b[25])
        merged.append(a[26] if a[26] > b[26] else b[26])
        same_shape = a[27] == b[27]
        merged.append(a[27] if same_shape else -1)
        merged.append(same_shape and a[28] and b[28] and a[0:3] == b[0:3])
        return merged

    def update(self, host):
        """Recompute the boxes on the path of ``host`` after its state changed."""
        node = self.leaf_of.get(host.name)
        if node is None:
            return
        self.updates += 1
        self.stats[node] = self._leaf_stats(self.members[node])
        node = self.parent[node]
        while node >= 0:
            left, right = self.children[node]
            self.stats[node] = self._merge(self.stats[left], self.stats[right])
            node = self.parent[node]

    def search(self, demand, strategy, virt_bit, excluded_ranks):
        """(score, rank, host) of the best usable host for a full-size ``demand``, or None.

        The caller has made sure every host's demand is ``demand`` (no in-place delta).
        """
        if self.root is None:
            return None
        dv, dm, dd = demand.vcpus, demand.memory_mb, demand.disk_gb
        measured = demand.measured
        cpu_load = demand.cpu_load
        mem_load = 100.0 * dm
        scorer = SCORERS[strategy]
        spread = strategy == "spread"
        pack = strategy == "pack"
        stats = self.stats
        children = self.children
        members = self.members
        one = 1.0 + _BOUND_SLACK
        # Per shape: deltas d_r / cap_r, their sum and imbalance-plane shift, and the live
        # headroom a host of that shape needs.
        per_shape = []
        for cap_cpu, cap_mem, cap_disk, memory_mb, cpus in self.shapes:
            d0 = dv / cap_cpu
            d1 = dm / cap_mem
            d2 = dd / cap_disk
            per_shape.append((d0, d1, d2, d0 + d1 + d2, (d0 - d1) * _INV_SQRT2, (d0 + d1 - 2.0 * d2) * _INV_SQRT6,
                              (cpu_load / cpus if measured else cpu_load / cap_cpu) if dv > 0 else -math.inf,
                              mem_load / memory_mb if dm > 0 else -math.inf))

        def bound(st):
            # None when no host below can fit; else an upper bound on their scores.
            if (dv > 0 and st[12] < dv) or (dm > 0 and st[13] < dm) or (dd > 0 and st[14] < dd):
                return None
            if virt_bit and not st[19] & virt_bit:
                return None
            shape = st[27]
            if shape >= 0:
                d0, d1, d2, dsum, qx, qy, need_cpu, need_mem = per_shape[shape]
                if st[15] < need_cpu or st[16] < need_mem:
                    return None
                if st[28]:
                    # A point box: every host below has these very fractions, so the bound is
                    # their score computed by the same float operations (ties stay exact).
                    if pack:
                        return scorer(st[3] + d0, st[4] + d1, st[5] + d2)
                    return scorer(st[0] + d0, st[1] + d1, st[2] + d2)
                if spread:
                    return 1.0 - (st[21] + dsum) / 3.0 + _BOUND_SLACK
                if pack:
                    return (st[22] + dsum) / 3.0 + _BOUND_SLACK
                x_lo = st[23] + qx
                x_hi = st[24] + qx
                y_lo = st[25] + qy
                y_hi = st[26] + qy
                dsum_lo = dsum
            else:
                # Mixed shapes: deltas range between the largest and the smallest capacity.
                if dv > 0 and st[15] < (cpu_load / st[17] if measured else cpu_load / st[9]):
                    return None
                if dm > 0 and st[16] < mem_load / st[18]:
                    return None
                l0 = dv / st[9]
                l1 = dm / st[10]
                l2 = dd / st[11]
                h0 = dv / st[6]
                h1 = dm / st[7]
                h2 = dd / st[8]
                if spread:
                    return 1.0 - (st[21] + (l0 + l1 + l2)) / 3.0 + _BOUND_SLACK
                if pack:
                    # Fitting hosts have u <= 1 in every resource the VM grows.
                    hi0 = min(st[3] + h0, one) if dv > 0 else st[3] + h0
                    hi1 = min(st[4] + h1, one) if dm > 0 else st[4] + h1
                    hi2 = min(st[5] + h2, one) if dd > 0 else st[5] + h2
                    return min((st[22] + (h0 + h1 + h2)) / 3.0, (hi0 + hi1 + hi2) / 3.0) + _BOUND_SLACK
                x_lo = st[23] + (l0 - h1) * _INV_SQRT2
                x_hi = st[24] + (h0 - l1) * _INV_SQRT2
                y_lo = st[25] + (l0 + l1 - 2.0 * h2) * _INV_SQRT6
                y_hi = st[26] + (h0 + h1 - 2.0 * l2) * _INV_SQRT6
                dsum_lo = l0 + l1 + l2
            # Balanced: in the orthonormal basis (1,1,1)/sqrt3, (1,-1,0)/sqrt2, (1,1,-2)/sqrt6
            # the score is 1 - mean(u) - |(x, y)| / sqrt3, (x, y) the imbalance vector of u. The
            # mean is at least (smallest summed fraction + deltas) / 3; |(x, y)| at least the
            # distance from the origin to the rectangle of (x, y) shifted by the deltas.
            dx = x_lo if x_lo > 0.0 else (-x_hi if x_hi < 0.0 else 0.0)
            dy = y_lo if y_lo > 0.0 else (-y_hi if y_hi < 0.0 else 0.0)
            return (1.0 - (st[21] + dsum_lo) / 3.0 - math.sqrt(dx * dx + dy * dy) * _INV_SQRT3
                    + _BOUND_SLACK)

        best_score = -math.inf
        best_rank = math.inf
        best_host = None
        root_bound = bound(stats[self.root])
        if root_bound is None:
            return None
        heap = [(-root_bound, stats[self.root][20], self.root)]
        pop = heapq.heappop
        push = heapq.heappush
        while heap:
            neg, rank, node = pop(heap)
            upper = -neg
            if upper < best_score or (upper == best_score and rank > best_rank):
                break
            hosts = members[node]
            if hosts is None:
                for child in children[node]:
                    st = stats[child]
                    upper = bound(st)
                    if upper is None or upper < best_score or (upper == best_score and st[20] > best_rank):
                        continue
                    push(heap, (-upper, st[20], child))
                continue
            d0, d1, d2, _sum, _qx, _qy, need_cpu, need_mem = per_shape[stats[node][27]]
            for host in hosts:
                # _fits, inlined with the shape's constants (same float operations).
                if (virt_bit and not host.vmask & virt_bit) or host.rank in excluded_ranks:
                    continue
                if dv > 0 and (dv > host.free_cpu or need_cpu > host.head_cpu):
                    continue
                if dm > 0 and (dm > host.free_mem or need_mem > host.head_mem):
                    continue
                if dd > 0 and dd > host.free_disk:
                    continue
                score = scorer(host.f_cpu + d0, host.f_mem + d1, host.f_disk + d2)
                if score > best_score or (score == best_score and host.rank < best_rank):
                    best_score, best_rank, best_host = score, host.rank, host
        if best_host is None:
            return None
        return best_score, best_rank, best_host


def _or_masks(masks):
    result = 0
    for mask in masks:
        result |= mask
    return result


# --------------------------------------------------------------------------- fleet

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
        self.index = _Index([h for h in self.hosts if h.usable]) if use_index else None

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

    # ----- request -> per-host demand and request-level filters
    def _prepare(self, request):
        if request.virt_type is not None and request.virt_type not in self.virt_bits:
            virt_bit = -1  # no host offers it: every host is rejected for it
        else:
            virt_bit = self.virt_bits.get(request.virt_type, 0)
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
        measured = request.cpu_percent is not None
        full = Demand(request.vcpus, request.memory_mb, request.disk_gb,
                      request.cpu_percent if measured else 100.0 * request.vcpus, measured, False)
        delta = None
        if current is not None and not request.migrate:
            dv = request.vcpus - cur_v
            delta = Demand(dv, request.memory_mb - cur_m, request.disk_gb - cur_d, 100.0 * dv, False, True)
        # request-level exclusions: host name -> reasons
        blocked = {}

        def block(name, reason):
            if name in self.by_name:
                blocked.setdefault(name, []).append(reason)

        if request.hosts is not None:
            pinned = set(request.hosts)
            for host in self.hosts:
                if host.name not in pinned:
                    block(host.name, "not among the pinned hosts (%s)" % ", ".join(request.hosts))
        for name in request.exclude:
            block(name, "excluded by the request")
        if request.migrate:
            block(current.name, "current host of %s (migration source)" % request.name)
        for name in sorted(holders):
            if name != request.current_host:
                block(name, "a domain named %s already exists here" % request.name)
        allowed = None
        if request.group is not None:
            members = self.group_hosts(request.group, request.name)
            if request.policy == "anti-affinity":
                for name in members:
                    names = sorted(self.group_members[request.group][name] - {request.name})
                    block(name, "anti-affinity: group %s already has %s here" % (request.group, ", ".join(names)))
            elif members:
                allowed = set(members)
                for host in self.hosts:
                    if host.name not in allowed:
                        block(host.name, "affinity: group %s runs on %s" % (request.group, ", ".join(members)))
        return virt_bit, full, delta, current, (cur_v, cur_m, cur_d), blocked, allowed

    def _demand_for(self, host, full, delta, current):
        return delta if (delta is not None and host is current) else full

    def _reasons(self, host, request, virt_bit, demand, blocked):
        reasons = list(blocked.get(host.name, ()))
        static = host.static_reasons()
        if host.facts_missing or not host.reachable:
            return reasons + static
        reasons += static
        if request.virt_type is not None and not (virt_bit > 0 and host.vmask & virt_bit):
            reasons.append("virt type %s not offered (has: %s)"
                           % (request.virt_type, ", ".join(host.virt_types) or "none"))
        if host.usable:
            reasons += _capacity_reasons(host, demand)
        return reasons

    def _passes(self, host, virt_bit, demand, blocked):
        if not host.usable or host.name in blocked:
            return False
        if virt_bit and not (virt_bit > 0 and host.vmask & virt_bit):
            return False
        return _fits(host, demand)

    @staticmethod
    def _score(host, demand, strategy):
        return SCORERS[strategy](host.f_cpu + demand.vcpus / host.cap_cpu,
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
        virt_bit, full, delta, current, _cur, blocked, allowed = prepared
        candidates = {}
        rejected = {}
        chosen = None
        # Resize: stay on the current host whenever it passes every filter.
        if delta is not None and self._passes(current, virt_bit, delta, blocked):
            chosen = (self._score(current, delta, request.strategy), current.rank, current)
        if explain or not self.use_index or request.hosts is not None or allowed is not None:
            best = self._exhaustive(request, prepared, candidates, rejected if explain else None,
                                    restrict=None if explain else (allowed or request.hosts))
            if chosen is None:
                chosen = best
        elif chosen is None:
            excluded = set(self.by_name[name].rank for name in blocked)
            if current is not None:
                excluded.add(current.rank)  # the current host needs the delta; judged above
            if virt_bit == -1:
                chosen = None
            else:
                chosen = self.index.search(full, request.strategy, virt_bit, excluded)
        if chosen is None:
            if not explain:
                self._exhaustive(request, prepared, {}, rejected)
            raise PlacementError(_no_fit_message(request, rejected, len(self.hosts)), rejected=rejected)
        score, _rank, host = chosen
        demand = self._demand_for(host, full, delta, current)
        breakdown = _breakdown(host, demand, request.strategy, score)
        if not explain:
            candidates = {host.name: breakdown}
        placement = Placement(request, host.name, score, breakdown, demand,
                              _explanation(request, host, breakdown, len(candidates) if explain else None,
                                           current),
                              candidates, rejected, request.current_host)
        if commit:
            self.apply(placement)
        return placement

    def _exhaustive(self, request, prepared, candidates, rejected, restrict=None):
        virt_bit, full, delta, current, _cur, blocked, _allowed = prepared
        best = None
        hosts = self.hosts if restrict is None else [self.by_name[n] for n in sorted(restrict)]
        for host in hosts:
            demand = self._demand_for(host, full, delta, current)
            if self._passes(host, virt_bit, demand, blocked):
                score = self._score(host, demand, request.strategy)
                candidates[host.name] = _breakdown(host, demand, request.strategy, score)
                if best is None or score > best[0] or (score == best[0] and host.rank < best[1]):
                    best = (score, host.rank, host)
            elif rejected is not None:
                rejected[host.name] = self._reasons(host, request, virt_bit, demand, blocked)
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


def _breakdown(host, demand, strategy, score):
    before = (host.f_cpu, host.f_mem, host.f_disk)
    after = (host.f_cpu + demand.vcpus / host.cap_cpu, host.f_mem + demand.memory_mb / host.cap_mem,
             host.f_disk + demand.disk_gb / host.cap_disk)
    cpu_load = demand.cpu_projection(host)
    mem_load = demand.memory_projection(host)
    return {
        "score": round(score, 6),
        "terms": {k: round(v, 6) for k, v in _score_terms(strategy, *after).items()},
        "allocated_before": {k: round(v, 4) for k, v in zip(("cpu", "memory", "disk"), before)},
        "allocated_after": {k: round(v, 4) for k, v in zip(("cpu", "memory", "disk"), after)},
        "utilization_after": {"cpu_percent": round(host.cpu_percent + cpu_load, 1),
                              "memory_percent": round(host.memory_percent + mem_load, 1)},
        "demand": demand.as_dict(host),
    }


def _explanation(request, host, breakdown, n_candidates, current):
    terms = breakdown["terms"]
    if request.strategy == "balanced":
        formula = "free %.4f - imbalance %.4f" % (terms["free"], terms["imbalance"])
    elif request.strategy == "spread":
        formula = "mean free fraction %.4f" % terms["free"]
    else:
        formula = "mean allocated fraction %.4f" % terms["allocated"]
    after = breakdown["allocated_after"]
    live = breakdown["utilization_after"]
    text = "%s chosen by %s: score %.4f = %s" % (host.name, request.strategy, breakdown["score"], formula)
    if n_candidates is not None:
        text += " (best of %d fitting host%s)" % (n_candidates, "" if n_candidates == 1 else "s")
    text += ("; allocated after: cpu %.1f%%, memory %.1f%%, disk %.1f%%; projected utilization: "
             "cpu %.1f%%, memory %.1f%%" % (100 * after["cpu"], 100 * after["memory"], 100 * after["disk"],
                                            live["cpu_percent"], live["memory_percent"]))
    if current is not None:
        if host is current:
            demand = breakdown["demand"]
            text += "; resized in place (%+d vCPUs, %+d MiB, %+d GiB)" % (
                demand["vcpus"], demand["memory_mb"], demand["disk_gb"])
        else:
            text += "; moves from %s" % current.name
    return text


def _no_fit_message(request, rejected, n_hosts):
    lines = ["no host can take %s (%d vCPUs, %d MiB, %d GiB) among %d host%s:"
             % (request.name, request.vcpus, request.memory_mb, request.disk_gb, n_hosts,
                "" if n_hosts == 1 else "s")]
    for name in sorted(rejected):
        lines.append("  %s: %s" % (name, "; ".join(rejected[name])))
    return "\n".join(lines)


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
