# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare a desired ``DomainSpec`` with an existing domain, ignoring what libvirt adds itself.

Compare against the *inactive* XML (``VIR_DOMAIN_XML_INACTIVE``): the live XML has a host-model
CPU expanded to a model and ``currentMemory`` following the balloon. Pure logic.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import parse_domain
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.spec import LIVE_FIELDS, DomainSpec

# libvirt expands a machine alias to a versioned type when it defines the domain.
MACHINE_ALIASES = {"pc": "pc-i440fx-", "q35": "pc-q35-"}


def _machine_matches(desired, actual):
    if desired is None or desired == actual:
        return True
    prefix = MACHINE_ALIASES.get(desired)
    return bool(prefix and actual and actual.startswith(prefix))


def _disk_key(disk, compare_cache):
    return dict(path=disk.path, target=disk.target, bus=disk.bus, format=disk.format, device=disk.device,
                **({"cache": disk.cache} if compare_cache else {}))


def _disks_view(disks, desired_disks):
    """Comparable dicts of ``disks``; cache only where the desired disk at that position sets it."""
    return [_disk_key(disk, index >= len(desired_disks) or desired_disks[index].cache is not None)
            for index, disk in enumerate(disks)]


def _nic_key(nic):
    return dict(mac=(nic.mac or "").lower(), kind=nic.kind, source=nic.source, model=nic.model)


def diff_domain(desired, actual):
    """Fields where ``actual`` (XML text, element or DomainSpec) differs from ``desired``.

    Returns {field: {"desired": value, "actual": value}}; empty when they agree. Ignored:
    whatever libvirt adds (addresses, aliases, controllers, seclabels, emulator, boot order with
    a kernel), uuid and machine when ``desired`` leaves them None, a machine alias ('pc', 'q35')
    against its versioned expansion, and disk cache when ``desired`` leaves it None.
    """
    if not isinstance(actual, DomainSpec):
        actual = parse_domain(actual)
    changes = {}

    def note(name, want, have):
        if want != have:
            changes[name] = {"desired": want, "actual": have}

    note("name", desired.name, actual.name)
    if desired.uuid is not None:
        note("uuid", desired.uuid.lower(), (actual.uuid or "").lower() or None)
    note("domain_type", desired.domain_type, actual.domain_type)
    note("vcpus", desired.vcpus, actual.vcpus)
    note("vcpus_max", desired.effective_vcpus_max, actual.effective_vcpus_max)
    note("memory_mb", desired.memory_mb, actual.memory_mb)
    note("memory_max_mb", desired.effective_memory_max_mb, actual.effective_memory_max_mb)
    note("arch", desired.arch, actual.arch)
    if not _machine_matches(desired.machine, actual.machine):
        note("machine", desired.machine, actual.machine)
    for name in ("kernel", "initrd", "cmdline"):
        note(name, getattr(desired, name), getattr(actual, name))
    # No <cpu> asked for: libvirt fills in its default model (e.g. custom qemu64 under TCG).
    if desired.effective_cpu_mode != "none":
        note("cpu_mode", desired.effective_cpu_mode, actual.effective_cpu_mode)
    # Order matters for both: it is the guest's device order (vda, vdb / eth0, eth1).
    note("disks", _disks_view(desired.disks, desired.disks), _disks_view(actual.disks, desired.disks))
    note("interfaces", [_nic_key(nic) for nic in desired.interfaces], [_nic_key(nic) for nic in actual.interfaces])
    note("serial", desired.serial, actual.serial)
    note("serial_path", desired.serial_path, actual.serial_path)
    note("guest_agent", desired.guest_agent, actual.guest_agent)
    note("balloon", desired.balloon, actual.balloon)
    if desired.balloon:
        note("balloon_period", desired.balloon_period, actual.balloon_period)
    for name in ("on_poweroff", "on_reboot", "on_crash"):
        note(name, getattr(desired, name), getattr(actual, name))
    note("managed", desired.managed, actual.managed)
    note("group", desired.group, actual.group)
    note("tenant", desired.tenant, actual.tenant)
    note("annotations", list(desired.annotations), list(actual.annotations))
    return changes


def split_changes(changes):
    """(live, offline) field names of a ``diff_domain`` result: live ones can be applied to a
    running domain (vcpus and memory_mb, when within the maxima the domain already has);
    offline ones need the domain redefined and take effect at its next start."""
    live = [name for name in changes if name in LIVE_FIELDS]
    offline = [name for name in changes if name not in LIVE_FIELDS]
    if "vcpus_max" in changes and "vcpus" in live:
        live.remove("vcpus")
        offline.append("vcpus")
    if "memory_max_mb" in changes and "memory_mb" in live:
        live.remove("memory_mb")
        offline.append("memory_mb")
    return live, offline
