# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resize calls of ``VirtConnection``: vCPU and memory counts of a domain, live and in its
definition. plugins/module_utils/scaling.py decides the sizes; libvirt's flag values are ABI."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import VirtError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.facts import ACTIVE_STATES
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.error_map import (
    UNSUPPORTED_CODES,
    libvirt_code,
    nonfatal,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import parse_domain_xml


class ResizeCalls:
    """Mixin of VirtConnection (connection.py)."""

    _AFFECT_LIVE = 1              # VIR_DOMAIN_AFFECT_LIVE
    _AFFECT_CONFIG = 2            # VIR_DOMAIN_AFFECT_CONFIG
    _VCPU_MAXIMUM = 4             # VIR_DOMAIN_VCPU_MAXIMUM
    _VCPU_HOTPLUGGABLE = 16       # VIR_DOMAIN_VCPU_HOTPLUGGABLE
    _MEM_MAXIMUM = 4              # VIR_DOMAIN_MEM_MAXIMUM

    def vcpu_counts(self, dom):
        """{config, config_max, live, live_max}: vCPUs of the definition and, for a running
        domain, of the running one (None when it is not running)."""
        name = dom.name()
        counts = dict(config=self.call(dom.vcpusFlags, self._AFFECT_CONFIG, domain=name),
                      config_max=self.call(dom.vcpusFlags, self._AFFECT_CONFIG | self._VCPU_MAXIMUM, domain=name),
                      live=None, live_max=None)
        if self.domain_state(dom) in ACTIVE_STATES:
            counts["live"] = self.call(dom.vcpusFlags, self._AFFECT_LIVE, domain=name)
            counts["live_max"] = self.call(dom.vcpusFlags, self._AFFECT_LIVE | self._VCPU_MAXIMUM, domain=name)
        return counts

    def vcpus_running(self, dom):
        """vCPUs the running domain has (its vcpu info), or None when it is not running."""
        if self.domain_state(dom) not in ACTIVE_STATES:
            return None
        return len(self.call(dom.vcpus, domain=dom.name())[0])

    def set_vcpus(self, dom, count, live=False, config=False):
        """Set the vCPU count of the running domain (hot(un)plug) and/or of its definition.

        The definition marks added vCPUs hotpluggable where libvirt supports that, so they can be
        unplugged again after a restart. An unplug the guest does not answer makes libvirt fail
        or time out; the caller reads ``vcpu_counts`` afterwards to see what happened.
        """
        name = dom.name()
        if live:
            self.call(dom.setVcpusFlags, int(count), self._AFFECT_LIVE, domain=name, timeout=self._change_timeout())
        if config:
            try:
                self.call(dom.setVcpusFlags, int(count), self._AFFECT_CONFIG | self._VCPU_HOTPLUGGABLE,
                          domain=name, timeout=self._change_timeout())
            except VirtError as err:
                if libvirt_code(err) not in UNSUPPORTED_CODES:
                    raise
                self.call(dom.setVcpusFlags, int(count), self._AFFECT_CONFIG, domain=name,
                          timeout=self._change_timeout())

    def set_vcpus_maximum(self, dom, count):
        """Raise (or lower) the definition's vCPU maximum; takes effect at the next start."""
        self.call(dom.setVcpusFlags, int(count), self._AFFECT_CONFIG | self._VCPU_MAXIMUM, domain=dom.name(),
                  timeout=self._change_timeout())

    def memory_sizes_kib(self, dom):
        """{config, config_max, live, live_max} in KiB: currentMemory and memory of the definition
        and, for a running domain, the balloon's actual size and the live maximum (else None)."""
        info = parse_domain_xml(self.domain_xml(dom, inactive=True))
        sizes = dict(config=info["memory_mb"] * 1024 if info["memory_mb"] is not None else None,
                     config_max=info["memory_max_mb"] * 1024 if info["memory_max_mb"] is not None else None,
                     live=None, live_max=None)
        if self.domain_state(dom) in ACTIVE_STATES:
            sizes["live"] = self.balloon_actual_kib(dom)
            sizes["live_max"] = self.call(dom.maxMemory, domain=dom.name())
        return sizes

    def balloon_actual_kib(self, dom):
        """The balloon's actual size (KiB) of a running domain: what the guest has now."""
        name = dom.name()
        stats = {}
        with nonfatal():
            stats = self.call(dom.memoryStats, domain=name)
        if stats.get("actual") is not None:
            return int(stats["actual"])
        return int(self.call(dom.info, domain=name)[2])

    def set_memory(self, dom, kib, live=False, config=False):
        """Set the running domain's balloon target and/or the definition's currentMemory (KiB).

        Two calls: some drivers refuse LIVE and CONFIG together. The balloon moves after the
        call returns; read ``balloon_actual_kib`` to see what the guest took.
        """
        name = dom.name()
        if live:
            self.call(dom.setMemoryFlags, int(kib), self._AFFECT_LIVE, domain=name, timeout=self._change_timeout())
        if config:
            self.call(dom.setMemoryFlags, int(kib), self._AFFECT_CONFIG, domain=name, timeout=self._change_timeout())

    def set_memory_maximum(self, dom, kib):
        """Raise (or lower) the definition's memory maximum (KiB); takes effect at the next start."""
        self.call(dom.setMemoryFlags, int(kib), self._AFFECT_CONFIG | self._MEM_MAXIMUM, domain=dom.name(),
                  timeout=self._change_timeout())
