# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one definition of "the CPU a host's VMs use" (docs/architecture.md, Hypervisor facts).

Pure logic (stdlib only). hypervisor_info reports it as ``utilization.vm_cpu_percent``;
placement (``kvmfleet_cpu_source: vms``) and the patrol (``kvmfleet_patrol_cpu_source: vms``)
read it through ``host_vm_cpu_percent``, so the three can never disagree.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def vm_cpu_percent(domains, cpus):
    """Percent (0..100) of the host's ``cpus`` that its running domains use.

    The sum of the running domains' ``cpu_percent`` (each in percent of one host CPU, summed
    over its vCPUs) over ``cpus``, capped at 100: a host cannot run more than all its CPUs,
    whatever rounding in the samples says. Domains that are not running use no CPU. A running
    domain without a sample (``cpu_percent`` None: it started during the sample) counts as idle,
    as placement takes every unknown live figure; it does not blind the whole host.
    None only when ``cpus`` is unknown.
    """
    if not cpus:
        return None
    used = sum(dom.get("cpu_percent") or 0.0 for dom in domains or () if dom.get("state") == "running")
    return round(min(100.0, used / cpus), 1)


def host_vm_cpu_percent(facts):
    """``utilization.vm_cpu_percent`` of a host's ``kvmfleet_hypervisor`` facts.

    Facts that predate the field are computed from their domains by ``vm_cpu_percent``. None when
    the host was not sampled (``sample_seconds`` 0) or its CPU count is unknown.
    """
    utilization = facts.get("utilization") or {}
    if "vm_cpu_percent" in utilization:
        value = utilization["vm_cpu_percent"]
        return None if value is None else float(value)
    return vm_cpu_percent(facts.get("domains"), facts.get("cpus"))
