# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the patrol measures: a host as it sees it (its CPU source, thresholds, live figures),
the placement Host built from that view, and the cost of migrating a VM."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.api import INVENTORY_DEFAULTS, Host
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.model import threshold
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.options import flag, number
from ansible_collections.kvmfleet.iaas.plugins.module_utils.utilization import host_vm_cpu_percent

CPU_SOURCES = ("host", "vms")
# Per-host inventory variables of the patrol (docs/patrol.md); thresholds default to placement's.
PATROL_VARS = ("kvmfleet_patrol_cpu_source", "kvmfleet_cpu_source", "kvmfleet_patrol_cpu_threshold",
               "kvmfleet_patrol_memory_threshold", "kvmfleet_migration_storage", "kvmfleet_virt_type")
EPS = 1e-9


def rounded(value, digits=1):
    return None if value is None else round(value, digits)


def shown_percent(value):
    """A predicted percentage for display: rounded, never below 0 (the model subtracts a VM's
    full memory, which a host's live figure may not have counted)."""
    return None if value is None else round(max(0.0, value), 1)


def host_cpu(facts, source="host"):
    """The host CPU percent the patrol reads: host-wide (``utilization.cpu_percent``) or the
    sum of its domains' CPU over its CPUs (``utilization.vm_cpu_percent``, computed from the
    domains when the facts predate that field). None when not sampled."""
    utilization = facts.get("utilization") or {}
    if source == "vms":
        return host_vm_cpu_percent(facts)
    return number(utilization.get("cpu_percent"))


def migration_cost(memory_mb, dirty_mib_s=None, bandwidth_mib_s=1000.0):
    """MiB a pre-copy live migration sends: memory / (1 - dirty / bandwidth), the geometric
    series of re-sent dirty pages (capped at 10x when the guest dirties as fast as the link)."""
    memory_mb = max(0.0, float(memory_mb or 0))
    ratio = 0.0
    if dirty_mib_s and bandwidth_mib_s and bandwidth_mib_s > 0:
        ratio = min(0.9, max(0.0, float(dirty_mib_s) / bandwidth_mib_s))
    return memory_mb / (1.0 - ratio)


class HostView:
    """One host as the patrol reads it this run."""
    __slots__ = ("name", "facts", "inventory", "cpu_source", "cpu_threshold", "memory_threshold",
                 "cpu", "memory", "reachable", "error", "maintenance", "shared_storage", "virt_type")


def _threshold(name, inventory, patrol_key, placement_key):
    """The patrol's threshold of a host, else placement's, else placement's default: a percentage
    in (0, 100], or off (THRESHOLD_OFF: never hot), checked as placement checks it."""
    for key in (patrol_key, placement_key):
        if inventory.get(key) is not None:
            return threshold(inventory[key], key, name, None)
    return INVENTORY_DEFAULTS[placement_key]


def host_view(name, facts, inventory):
    view = HostView()
    view.name = name
    view.facts = facts
    view.inventory = inventory
    # the patrol's own source, else placement's (kvmfleet_cpu_source), else the host's counters
    source = inventory.get("kvmfleet_patrol_cpu_source") or inventory.get("kvmfleet_cpu_source") or "host"
    if source not in CPU_SOURCES:
        raise ValidationError("kvmfleet_patrol_cpu_source (or kvmfleet_cpu_source) of %s must be one of %s, got %r"
                              % (name, ", ".join(CPU_SOURCES), source))
    view.cpu_source = source
    view.cpu_threshold = _threshold(name, inventory, "kvmfleet_patrol_cpu_threshold", "kvmfleet_cpu_threshold")
    view.memory_threshold = _threshold(name, inventory, "kvmfleet_patrol_memory_threshold", "kvmfleet_memory_threshold")
    view.reachable = bool(facts) and bool(facts.get("reachable", True))
    view.error = None if view.reachable else ((facts or {}).get("error") or "no facts gathered (host unreachable)")
    view.cpu = host_cpu(facts, source) if view.reachable else None
    view.memory = number(((facts or {}).get("utilization") or {}).get("memory_percent")) if view.reachable else None
    view.maintenance = (flag(inventory.get("kvmfleet_maintenance")) or flag(inventory.get("kvmfleet_disabled"))
                        or (facts or {}).get("maintenance") is True)
    view.shared_storage = (inventory.get("kvmfleet_migration_storage") or "shared") == "shared"
    view.virt_type = inventory.get("kvmfleet_virt_type") or None
    return view


def patrol_host(view):
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
