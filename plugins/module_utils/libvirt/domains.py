# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Domain calls of ``VirtConnection``: find, define, start, stop, undefine, autostart, metadata,
bulk stats and the sampled listing of domain facts (facts.py assembles them)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import DomainNotFound, VirtError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.facts import (
    ACTIVE_STATES,
    addresses_from_interfaces,
    block_stats,
    domain_cpu_percent,
    domain_cpu_time,
    domain_fact,
    host_cpu_percent,
    state_name,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.error_map import (
    ERR_NO_DOMAIN_METADATA,
    UNSUPPORTED_CODES,
    libvirt_code,
    nonfatal,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import parse_domain_xml
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.metadata import KVMFLEET_NS, KVMFLEET_PREFIX, parse_metadata

# libvirt's numeric constants are ABI; spelled out so this file needs no libvirt-python to import.
STATS_STATE = 1
STATS_CPU_TOTAL = 2
STATS_BALLOON = 4
STATS_VCPU = 8
STATS_INTERFACE = 16
STATS_BLOCK = 32
DOMAIN_STATS_FLAGS = STATS_STATE | STATS_VCPU | STATS_BALLOON | STATS_BLOCK | STATS_INTERFACE | STATS_CPU_TOTAL
# Skip, rather than wait for, domains whose job lock is held (a hung qemu monitor).
_STATS_NOWAIT = 1 << 29
_DEFINE_VALIDATE = 1          # VIR_DOMAIN_DEFINE_VALIDATE
_UNDEFINE_BASE_FLAGS = 1 | 2  # VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | SNAPSHOTS_METADATA
_UNDEFINE_NVRAM = 4           # VIR_DOMAIN_UNDEFINE_NVRAM
_UNDEFINE_KEEP_NVRAM = 8      # VIR_DOMAIN_UNDEFINE_KEEP_NVRAM
_XML_INACTIVE = 2             # VIR_DOMAIN_XML_INACTIVE
_METADATA_ELEMENT = 2         # VIR_DOMAIN_METADATA_ELEMENT
_AFFECT_LIVE, _AFFECT_CONFIG = 1, 2  # VIR_DOMAIN_AFFECT_*
_ADDRESSES_FROM = ((0, "lease"), (2, "arp"))   # VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, _SRC_ARP
_ADDRESSES_FROM_AGENT = 1     # VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT
_HOSTNAME_FROM_AGENT = 2      # VIR_DOMAIN_GET_HOSTNAME_AGENT
# A connected agent that does not answer must not hold up a read of the fleet.
AGENT_TIMEOUT = 3.0


class DomainCalls:
    """Mixin of VirtConnection (connection.py)."""

    def lookup_domain(self, name):
        """The virDomain called ``name``; DomainNotFound if there is none."""
        return self.call(self.conn.lookupByName, name, domain=name)

    def find_domain(self, name):
        """The virDomain called ``name``, or None."""
        try:
            return self.lookup_domain(name)
        except DomainNotFound:
            return None

    def define_domain(self, xml):
        """Define (or redefine) a persistent domain; libvirt validates the XML against its schema."""
        return self.call(self.conn.defineXMLFlags, xml, _DEFINE_VALIDATE, timeout=self._change_timeout())

    def domain_state(self, dom):
        return state_name(self.call(dom.state, 0, domain=dom.name())[0])

    def domain_uuid(self, dom):
        return self.call(dom.UUIDString, domain=dom.name())

    def start_domain(self, dom):
        self.call(dom.create, domain=dom.name(), timeout=self._change_timeout())

    def stop_domain(self, dom, graceful_seconds=0.0):
        """Shut the domain off: ACPI shutdown for up to ``graceful_seconds``, then power off."""
        name = dom.name()
        if graceful_seconds > 0:
            self.call(dom.shutdown, domain=name)
            deadline = time.monotonic() + graceful_seconds
            while time.monotonic() < deadline:
                if self.domain_state(dom) == "shutoff":
                    return
                time.sleep(0.5)
        if self.domain_state(dom) != "shutoff":
            self.call(dom.destroy, domain=name, timeout=self._change_timeout())

    def undefine_domain(self, dom, keep_nvram=True):
        """Remove a domain's persistent definition (and its snapshot metadata and managed save).

        ``keep_nvram``: a migration source keeps the NVRAM file, which lives on the shared store
        and now belongs to the destination; deleting a VM removes it. Disks are the caller's.
        """
        flags = _UNDEFINE_BASE_FLAGS | (_UNDEFINE_KEEP_NVRAM if keep_nvram else _UNDEFINE_NVRAM)
        try:
            self.call(dom.undefineFlags, flags, domain=dom.name(), timeout=self._change_timeout())
        except VirtError as err:
            # Drivers without NVRAM or managed save refuse those flags; they have none to remove.
            if libvirt_code(err) not in UNSUPPORTED_CODES:
                raise
            self.call(dom.undefine, domain=dom.name(), timeout=self._change_timeout())

    def autostart(self, dom):
        return bool(self.call(dom.autostart, domain=dom.name()))

    def set_autostart(self, dom, enabled):
        self.call(dom.setAutostart, 1 if enabled else 0, domain=dom.name())

    def domain_xml(self, dom, inactive=False):
        return self.call(dom.XMLDesc, _XML_INACTIVE if inactive else 0, domain=dom.name())

    def domain_metadata(self, dom):
        """Our metadata of a domain as {child: text}, or None when kvmfleet did not make it."""
        try:
            xml = self.call(dom.metadata, _METADATA_ELEMENT, KVMFLEET_NS, domain=dom.name())
        except VirtError as err:
            if libvirt_code(err) == ERR_NO_DOMAIN_METADATA:
                return None
            raise
        return parse_metadata(xml)

    def set_instance_metadata(self, dom, element_xml):
        """Replace our metadata element, in the definition and (when it runs) the live domain."""
        flags = _AFFECT_CONFIG | (_AFFECT_LIVE if self.call(dom.isActive, domain=dom.name()) else 0)
        self.call(dom.setMetadata, _METADATA_ELEMENT, element_xml, KVMFLEET_PREFIX, KVMFLEET_NS, flags,
                  domain=dom.name())

    def interface_addresses(self, dom, agent=False):
        """(addresses, source): from the guest agent when it is connected (what the guest itself
        configured), else DHCP leases, else the ARP table; ([], None) when none knows."""
        sources = (((_ADDRESSES_FROM_AGENT, "agent"),) if agent else ()) + _ADDRESSES_FROM
        for source, label in sources:
            found = []
            with nonfatal():
                target = self.agent_domain(dom) if label == "agent" else dom
                if target is not None:
                    found = addresses_from_interfaces(self.call(target.interfaceAddresses, source, domain=dom.name(),
                                                                timeout=AGENT_TIMEOUT if label == "agent" else None))
            if found:
                return found, label
        return [], None

    def guest_hostname(self, dom):
        """The hostname the guest agent reports, or None (no agent, no answer in time)."""
        with nonfatal():
            target = self.agent_domain(dom)
            if target is not None:
                return self.call(target.hostname, _HOSTNAME_FROM_AGENT, domain=dom.name(), timeout=AGENT_TIMEOUT) or None
        return None

    def domain_stats(self, doms=None, flags=DOMAIN_STATS_FLAGS):
        """[(virDomain, stats dict)] for all domains (or ``doms``) in one call."""
        if doms is None:
            return self.call(self.conn.getAllDomainStats, flags, _STATS_NOWAIT)
        return self.call(self.conn.domainListGetStats, list(doms), flags, _STATS_NOWAIT)

    def _block_fallback(self, dom, xml_info, stats):
        """Sizes the stats lacked (some drivers, unreadable images), from blockInfo."""
        known = block_stats(stats)
        sizes = {}
        for disk in xml_info["disks"]:
            target = disk["target"]
            if disk["device"] not in ("disk", "lun") or not target:
                continue
            if known.get(target, {}).get("capacity") is not None:
                continue
            with nonfatal():
                capacity, allocation, _physical = self.call(dom.blockInfo, target, domain=dom.name())
                sizes[target] = (capacity, allocation)
        return sizes

    def _domain_details(self, dom, stats, with_addresses):
        xml_info = parse_domain_xml(self.domain_xml(dom))
        active = state_name(stats.get("state.state")) in ACTIVE_STATES
        if active:
            # A running domain's live currentMemory follows the balloon (right after a start it is
            # the maximum until the guest's driver inflates): memory_mb is the definition's size,
            # which quotas and placement count; the live value is balloon_mb.
            with nonfatal():
                xml_info["memory_mb"] = parse_domain_xml(self.domain_xml(dom, inactive=True))["memory_mb"]
        guest = dict(agent=bool(active and xml_info["agent_connected"]), hostname=None, address_source=None)
        addresses = []
        if with_addresses and active:
            addresses, guest["address_source"] = self.interface_addresses(dom, agent=guest["agent"])
            if guest["agent"]:
                guest["hostname"] = self.guest_hostname(dom)
        xml_info["guest"] = guest
        return xml_info, addresses, self._block_fallback(dom, xml_info, stats)

    def list_domains(self, name=None, sample_seconds=0.0, with_addresses=True, with_metadata=False,
                     while_sampling=None):
        """Facts of every domain (or the one called ``name``), CPU sampled over ``sample_seconds``.

        One getAllDomainStats call opens the window and a second (state and cpu.time only)
        closes it; host CPU counters are read at both ends, so one sleep serves host and
        domains. The per-domain calls and ``while_sampling()`` run inside the window.

        Returns {domains: [fact], skipped: [{name, error}], host_cpu_percent, extra}
        where ``extra`` is what ``while_sampling`` returned. ``with_metadata`` adds each
        domain's kvmfleet metadata (dict or None) as ``metadata``. A domain whose own calls fail
        or time out is skipped, not fatal; a domain undefined meanwhile is left out.
        """
        sampling = sample_seconds > 0
        doms = None
        if name is not None:
            try:
                doms = [self.lookup_domain(name)]
            except DomainNotFound:
                doms = []
        host_before = self.node_cpu_times() if sampling else None
        entries = self.domain_stats(doms) if doms != [] else []
        opened = time.monotonic()
        extra = while_sampling() if while_sampling is not None else None

        rows, skipped = [], []
        for dom, stats in entries:
            with nonfatal() as outcome:
                try:
                    rows.append((dom, stats, self._domain_details(dom, stats, with_addresses)))
                except DomainNotFound:
                    continue
            if outcome.error is not None:
                skipped.append(dict(name=dom.name(), error=str(outcome.error)))

        host_cpu = None
        latest = {}
        elapsed = None
        if sampling:
            remaining = sample_seconds - (time.monotonic() - opened)
            if remaining > 0:
                time.sleep(remaining)
            host_after = self.node_cpu_times()
            if rows:
                try:
                    closing = self.domain_stats(None if name is None else [r[0] for r in rows],
                                                flags=STATS_STATE | STATS_CPU_TOTAL | STATS_VCPU)
                except DomainNotFound:
                    closing = []
                latest = dict((dom.UUIDString(), stats) for dom, stats in closing)
            elapsed = time.monotonic() - opened
            host_cpu = host_cpu_percent(host_before, host_after)

        facts = []
        for dom, stats, (xml_info, addresses, fallback) in rows:
            current = dict(stats)
            closing_stats = {}
            if sampling:
                closing_stats = latest.get(dom.UUIDString())
                if closing_stats is None:
                    continue  # undefined during the window
                current.update((k, v) for k, v in closing_stats.items() if k.startswith("state."))
            cpu = domain_cpu_percent(state_name(current.get("state.state")), domain_cpu_time(stats),
                                     domain_cpu_time(closing_stats), elapsed)
            fact = domain_fact(current, xml_info, cpu_percent=cpu, addresses=addresses, block_fallback=fallback)
            if with_metadata:
                fact["metadata"] = xml_info["metadata"]
            facts.append(fact)
        facts.sort(key=lambda fact: fact["name"])
        return dict(domains=facts, skipped=skipped, host_cpu_percent=host_cpu, extra=extra)
