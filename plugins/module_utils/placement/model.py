# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placement's model: a hypervisor (``Host``), its domains, one VM to place (``Request``) and
what that VM adds to a host (``Demand``), with the inventory variables and their validation.

Pure logic (stdlib only). One file because Host and Request are the two halves of every
placement rule's input and are validated by the same helpers.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.strategies import STRATEGIES
from ansible_collections.kvmfleet.iaas.plugins.module_utils.utilization import host_vm_cpu_percent

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
    # Labels a request's ``labels`` select on (docs/placement.md), like Kubernetes node labels.
    "kvmfleet_host_labels": {},
}
CPU_SOURCES = ("host", "vms")

NO_FACTS = "no facts gathered"

# A threshold of ``off`` (or false) turns a host's live-utilization check off for that resource:
# nothing is refused for its live load, and the patrol never counts it hot. Kept as infinity so
# every comparison and the index's bounds stay plain arithmetic.
THRESHOLD_OFF = math.inf
_OFF_WORDS = ("off", "false", "no")


def threshold(value, what, host=None, default=None):
    """A threshold variable as a percentage in (0, 100], ``THRESHOLD_OFF`` for off/false, or
    ``default`` when unset; anything else is a ValidationError naming the variable (and host)."""
    if value is None:
        return default
    if (value is False or (isinstance(value, str) and value.strip().lower() in _OFF_WORDS)
            or (isinstance(value, float) and value == THRESHOLD_OFF)):
        return THRESHOLD_OFF
    number = None
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            pass
    if number is None or not 0.0 < number <= 100.0:
        raise ValidationError("%s%s must be a percentage with 0 < value <= 100, or off; got %r"
                              % (what, "" if host is None else " of %s" % host, value), option=what, value=value)
    return number


def shown_threshold(value):
    """A threshold for reports: the percentage, or None when it is off (JSON has no infinity)."""
    return None if value == THRESHOLD_OFF else value


def _number(value, what, host, default=None, integer=False):
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValidationError("%s of %s must be a number, got %r" % (what, host, value))
    try:
        return int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ValidationError("%s of %s must be a number, got %r" % (what, host, value))


def check_labels(value, what):
    """``value`` as a dict of label names to strings (None: no labels), or ValidationError."""
    if value is None:
        return {}
    if not isinstance(value, dict) and not hasattr(value, "items"):
        raise ValidationError("%s must be a dict of label names to strings, got %r" % (what, value))
    labels = {}
    for key, text in value.items():
        if not isinstance(key, str) or not key:
            raise ValidationError("%s: label names must be non-empty strings, got %r" % (what, key))
        if not isinstance(text, str):
            raise ValidationError("%s: label %s must be a string, got %r" % (what, key, text))
        labels[key] = text
    return labels


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
        "f_cpu", "f_mem", "f_disk", "head_cpu", "head_mem", "usable", "labels", "label_pairs",
    )

    def __init__(self, name, cpus=0, memory_mb=0, storage_total_gb=0, virt_types=("kvm", "qemu"),
                 used_vcpus=0, used_memory_mb=0, used_disk_gb=0, cpu_percent=0.0, memory_percent=0.0,
                 domains=(), reachable=True, error=None, facts_missing=False,
                 maintenance=False, disabled=False,
                 cpu_allocation_ratio=4.0, ram_allocation_ratio=1.0, disk_allocation_ratio=1.0,
                 reserved_host_memory_mb=512, cpu_threshold=80.0, memory_threshold=85.0, labels=None):
        self.name = str(name)
        self.labels = check_labels(labels, "kvmfleet_host_labels of %s" % name)
        self.label_pairs = frozenset(self.labels.items())   # what the index keeps per node
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
            cpu_threshold=threshold(inventory.get("kvmfleet_cpu_threshold"), "kvmfleet_cpu_threshold", name,
                                    INVENTORY_DEFAULTS["kvmfleet_cpu_threshold"]),
            memory_threshold=threshold(inventory.get("kvmfleet_memory_threshold"), "kvmfleet_memory_threshold", name,
                                       INVENTORY_DEFAULTS["kvmfleet_memory_threshold"]),
            labels=var("kvmfleet_host_labels"),
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

    ``labels``: {name: value} a host must carry (its ``kvmfleet_host_labels``), every one of them.
    """

    __slots__ = ("name", "vcpus", "memory_mb", "disk_gb", "group", "policy", "hosts", "exclude",
                 "virt_type", "strategy", "current_host", "current_vcpus", "current_memory_mb",
                 "current_disk_gb", "migrate", "cpu_percent", "labels")

    FIELDS = __slots__

    def __init__(self, name, vcpus, memory_mb, disk_gb=0, group=None, policy=DEFAULT_POLICY,
                 hosts=None, exclude=(), virt_type=None, strategy=DEFAULT_STRATEGY,
                 current_host=None, current_vcpus=None, current_memory_mb=None, current_disk_gb=None,
                 migrate=False, cpu_percent=None, labels=None):
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
        self.labels = None if labels is None else (check_labels(labels, "labels of %s" % name) or None)

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
