# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host calls of ``VirtConnection``: name, size, capabilities, CPU counters, free memory, and
the ``kvmfleet_hypervisor`` fact assembled from them (facts.py) with the domains (domains.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.facts import (
    DEFAULT_SAMPLE_SECONDS,
    DEFAULT_STORAGE_PATH,
    available_mb_from_node_memory_stats,
    hypervisor_fact,
    parse_meminfo,
    same_total,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.error_map import nonfatal
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.uri import uri_is_this_host
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.capabilities import parse_host_uuid, parse_virt_types
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.units import MIB

_NODE_CPU_STATS_ALL_CPUS = -1       # VIR_NODE_CPU_STATS_ALL_CPUS
_NODE_MEMORY_STATS_ALL_CELLS = -1   # VIR_NODE_MEMORY_STATS_ALL_CELLS


class HostCalls:
    """Mixin of VirtConnection (connection.py)."""

    def hostname(self):
        return self.call(self.conn.getHostname)

    def host_info(self):
        """{model, memory_mb, cpus, mhz} from virNodeGetInfo."""
        info = self.call(self.conn.getInfo)
        return dict(model=info[0], memory_mb=info[1], cpus=info[2], mhz=info[3])

    def virt_types(self):
        return parse_virt_types(self.call(self.conn.getCapabilities))

    def host_uuid(self):
        """The host UUID from the capabilities (libvirt refuses to migrate between equal ones)."""
        return parse_host_uuid(self.call(self.conn.getCapabilities))

    def node_cpu_times(self):
        return self.call(self.conn.getCPUStats, _NODE_CPU_STATS_ALL_CPUS)

    def memory_available_mb(self, memory_mb=None):
        """MiB a new guest could take: MemAvailable when the host is this machine, else
        libvirt's node memory stats, else libvirt's free memory.

        A source whose total disagrees with libvirt's ``memory_mb`` describes another
        machine (a container sees its host's /proc/meminfo while libvirt counts only its
        NUMA nodes) and is passed over; the result never exceeds ``memory_mb``.
        """
        available = None
        if uri_is_this_host(self.uri):
            try:
                with open("/proc/meminfo") as handle:
                    meminfo = parse_meminfo(handle.read())
            except (IOError, OSError, ValueError):
                meminfo = {}
            if "MemAvailable" in meminfo and same_total(meminfo.get("MemTotal"), memory_mb):
                available = meminfo["MemAvailable"] // 1024
        if available is None:
            with nonfatal():
                stats = self.call(self.conn.getMemoryStats, _NODE_MEMORY_STATS_ALL_CELLS)
                if same_total(stats.get("total"), memory_mb):
                    available = available_mb_from_node_memory_stats(stats)
        if available is None:
            with nonfatal():
                available = self.call(self.conn.getFreeMemory) // MIB
        if available is not None and memory_mb is not None:
            available = min(available, memory_mb)
        return available

    def hypervisor_facts(self, storage_path=DEFAULT_STORAGE_PATH, sample_seconds=DEFAULT_SAMPLE_SECONDS):
        """(``kvmfleet_hypervisor`` dict, skipped domains) of the connected host."""
        def host_facts():
            info = self.host_info()
            return dict(hostname=self.hostname(), info=info, virt_types=self.virt_types(),
                        memory_free_mb=self.memory_available_mb(info["memory_mb"]),
                        storage=self.storage(storage_path))

        listing = self.list_domains(sample_seconds=sample_seconds, while_sampling=host_facts)
        host = listing["extra"]
        fact = hypervisor_fact(
            hostname=host["hostname"],
            virt_types=host["virt_types"],
            cpus=host["info"]["cpus"],
            memory_mb=host["info"]["memory_mb"],
            memory_free_mb=host["memory_free_mb"],
            storage=host["storage"],
            domains=listing["domains"],
            cpu_percent=listing["host_cpu_percent"],
            sample_seconds=sample_seconds,
        )
        return fact, listing["skipped"]
