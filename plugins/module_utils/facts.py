# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hypervisor and domain facts (the ``kvmfleet_hypervisor`` schema of docs/architecture.md),
assembled from what libvirt returns: ``getAllDomainStats`` dicts, the fields xml.domain reads
from a domain's XML, ``nodeGetCPUStats`` counters, /proc/meminfo, statvfs.

Pure logic: imports neither Ansible nor libvirt, so it is tested without a hypervisor. The
calls that fetch these inputs are plugins/module_utils/libvirt/.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.kvmfleet.iaas.plugins.module_utils.utilization import vm_cpu_percent
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.units import GIB

DEFAULT_SAMPLE_SECONDS = 1.0
DEFAULT_STORAGE_PATH = "/srv/kvmfleet/images"

# virDomainState -> schema name. "blocked" and "shutting down" still run and hold their resources.
STATE_NAMES = {
    0: "other",
    1: "running",
    2: "running",
    3: "paused",
    4: "running",
    5: "shutoff",
    6: "crashed",
    7: "pmsuspended",
}
ACTIVE_STATES = ("running", "paused")


def state_name(code):
    if code is None:
        return "other"
    return STATE_NAMES.get(int(code), "other")


def block_stats(stats):
    """``block.N.*`` entries of a getAllDomainStats dict -> {target: {path, capacity, allocation}}.

    ``allocation`` is the space the disk takes on the host: the larger of libvirt's
    ``allocation`` and ``physical``, since for a running domain ``allocation`` is only the
    highest offset the guest wrote (0 for a freshly started qcow2).
    """
    blocks = {}
    for index in range(int(stats.get("block.count", 0))):
        prefix = "block.%d." % index
        name = stats.get(prefix + "name")
        if name is None or name in blocks:
            continue
        used = [stats[key] for key in (prefix + "allocation", prefix + "physical") if stats.get(key) is not None]
        blocks[name] = dict(path=stats.get(prefix + "path"), capacity=stats.get(prefix + "capacity"),
                            allocation=max(used) if used else None)
    return blocks


def _gib_up(size):
    return None if size is None else int(math.ceil(size / GIB))


def disk_facts(xml_disks, stats, fallback=None):
    """Disks (device ``disk`` only: CD-ROMs promise no storage) with sizes from the stats,
    else from ``fallback`` ({target: (capacity, allocation)}, e.g. from blockInfo)."""
    blocks = block_stats(stats)
    fallback = fallback or {}
    disks = []
    for disk in xml_disks:
        if disk["device"] not in ("disk", "lun"):
            continue
        target = disk["target"]
        block = blocks.get(target, {})
        capacity, allocation = block.get("capacity"), block.get("allocation")
        if capacity is None and target in fallback:
            capacity, allocation = fallback[target]
        disks.append(dict(target=target, path=block.get("path") or disk["path"],
                          capacity_gb=_gib_up(capacity), allocation_gb=_gib_up(allocation)))
    return disks


def addresses_from_interfaces(interfaces):
    """``virDomainInterfaceAddresses`` result -> address strings, without link-local/loopback."""
    found = []
    for name in sorted(interfaces or {}):
        for addr in (interfaces[name] or {}).get("addrs") or []:
            text = addr.get("addr")
            if not text or text.lower().startswith("fe80:") or text.startswith("127.") or text == "::1":
                continue
            if text not in found:
                found.append(text)
    return found


def domain_cpu_percent(state, before_ns, after_ns, seconds):
    """CPU used over the window, in percent of one host CPU (0..100*vcpus).

    Not running: 0.0. Running but not sampled (or the counter reset): None.
    """
    if state != "running":
        return 0.0
    if before_ns is None or after_ns is None or not seconds or seconds <= 0 or after_ns < before_ns:
        return None
    return round(100.0 * (after_ns - before_ns) / (seconds * 1e9), 1)


def domain_cpu_time(stats):
    """A domain's CPU time in ns from bulk stats: ``cpu.time``, or where libvirt cannot read it
    (no cpuacct cgroup, as for libvirtd in a container) the sum of the vCPU threads'
    ``vcpu.<n>.time``. None when neither is there."""
    if stats.get("cpu.time") is not None:
        return stats["cpu.time"]
    times = [value for key, value in stats.items()
             if key.startswith("vcpu.") and key.endswith(".time") and key.count(".") == 2]
    return sum(times) if times else None


def host_cpu_percent(before, after):
    """Host-wide busy percent between two ``nodeGetCPUStats`` samples (ns counters)."""
    if not before or not after:
        return None
    deltas = dict((key, after[key] - before[key]) for key in after if key in before)
    if "utilization" in deltas:
        # some drivers report a ready-made percentage instead of counters
        return round(float(after["utilization"]), 1)
    total = sum(deltas.values())
    if total <= 0:
        return 0.0
    idle = deltas.get("idle", 0) + deltas.get("iowait", 0)
    return round(min(100.0, max(0.0, 100.0 * (total - idle) / total)), 1)


def domain_fact(stats, xml_info, cpu_percent=None, addresses=None, block_fallback=None):
    """One entry of ``kvmfleet_hypervisor.domains``.

    Live numbers come from the stats; the XML fills in what the stats of a driver or an
    inactive domain lack, and gives what stats never carry (MACs, metadata).
    """
    state = state_name(stats.get("state.state"))
    metadata = xml_info.get("metadata")
    balloon = stats.get("balloon.current")
    memory_max = stats.get("balloon.maximum")
    return dict(
        name=xml_info["name"],
        uuid=xml_info["uuid"],
        state=state,
        managed=metadata is not None,
        group=(metadata or {}).get("group"),
        tenant=(metadata or {}).get("tenant"),
        vcpus=stats.get("vcpu.current", xml_info["vcpus"]),
        vcpus_max=stats.get("vcpu.maximum", xml_info["vcpus_max"]),
        memory_mb=xml_info["memory_mb"] if xml_info["memory_mb"] is not None
        else (balloon // 1024 if balloon is not None else None),
        memory_max_mb=xml_info["memory_max_mb"] if xml_info["memory_max_mb"] is not None
        else (memory_max // 1024 if memory_max is not None else None),
        balloon_mb=balloon // 1024 if balloon is not None and state in ACTIVE_STATES else None,
        cpu_percent=cpu_percent,
        disks=disk_facts(xml_info["disks"], stats, block_fallback),
        macs=list(xml_info["macs"]),
        addresses=list(addresses or []),
        # what the guest agent says (docs/cloud-init.md): agent connected, hostname, where addresses came from
        guest=dict(xml_info.get("guest") or dict(agent=False, hostname=None, address_source=None)),
    )


def allocated_summary(domains):
    """What the host promised to its defined domains, running or not."""
    return dict(
        vcpus=sum(d["vcpus"] or 0 for d in domains),
        memory_mb=sum(d["memory_mb"] or 0 for d in domains),
        disk_gb=sum(disk["capacity_gb"] or 0 for d in domains for disk in d["disks"]),
        domains=len(domains),
    )


def parse_meminfo(meminfo_text):
    """/proc/meminfo text -> {field: KiB}."""
    fields = {}
    for line in meminfo_text.splitlines():
        key, _colon, rest = line.partition(":")
        values = rest.split()
        if values and values[0].isdigit():
            fields[key.strip()] = int(values[0])
    return fields


def same_total(total_kib, memory_mb, tolerance=0.05):
    """Whether a memory source's total (KiB) is the host libvirt counts (MiB), within 5%.

    Unknown totals are taken to match.
    """
    if total_kib is None or not memory_mb:
        return True
    return abs(total_kib / 1024 - memory_mb) <= tolerance * memory_mb


def available_mb_from_node_memory_stats(stats):
    """``nodeGetMemoryStats`` (KiB) -> MiB a new guest could take: free + reclaimable cache."""
    if not stats or "free" not in stats:
        return None
    return (stats["free"] + stats.get("buffers", 0) + stats.get("cached", 0)) // 1024


def storage_fact(path, total_bytes, free_bytes):
    return dict(path=path,
                total_gb=None if total_bytes is None else int(total_bytes // GIB),
                free_gb=None if free_bytes is None else int(free_bytes // GIB))


def storage_from_statvfs(path, st):
    # f_bavail: what an unprivileged writer may use, the conservative figure
    return storage_fact(path, st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)


def memory_percent(memory_mb, memory_free_mb):
    if not memory_mb or memory_free_mb is None:
        return None
    return round(min(100.0, max(0.0, 100.0 * (1 - memory_free_mb / memory_mb))), 1)


def hypervisor_fact(hostname, virt_types, cpus, memory_mb, memory_free_mb, storage, domains,
                    cpu_percent, sample_seconds):
    """``kvmfleet_hypervisor`` for a reachable host (docs/architecture.md)."""
    return dict(
        reachable=True,
        error=None,
        hostname=hostname,
        virt_types=list(virt_types),
        cpus=cpus,
        memory_mb=memory_mb,
        memory_free_mb=memory_free_mb,
        storage=storage,
        allocated=allocated_summary(domains),
        utilization=dict(cpu_percent=cpu_percent,
                         memory_percent=memory_percent(memory_mb, memory_free_mb),
                         sample_seconds=float(sample_seconds),
                         vm_cpu_percent=vm_cpu_percent(domains, cpus) if sample_seconds else None),
        domains=list(domains),
    )


def unreachable_hypervisor(error, storage_path=DEFAULT_STORAGE_PATH, sample_seconds=0.0):
    """Every key present (so templates don't trip), nothing but ``error`` meaningful."""
    return dict(
        reachable=False,
        error=str(error),
        hostname=None,
        virt_types=[],
        cpus=None,
        memory_mb=None,
        memory_free_mb=None,
        storage=storage_fact(storage_path, None, None),
        allocated=dict(vcpus=None, memory_mb=None, disk_gb=None, domains=None),
        utilization=dict(cpu_percent=None, memory_percent=None, sample_seconds=float(sample_seconds),
                         vm_cpu_percent=None),
        domains=[],
    )
