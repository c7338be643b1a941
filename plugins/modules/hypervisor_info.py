#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: hypervisor_info
short_description: Capacity, allocation, utilization and domains of a libvirt host
version_added: "0.1.0"
description:
  - Reads what placement and rebalancing need to know about the hypervisor the task runs on
    (or the one O(uri) names) and returns it as RV(hypervisor), the schema of the
    C(kvmfleet_hypervisor) host variable.
  - Host and domain CPU use are sampled together over O(sample_seconds); the other libvirt
    calls run inside that window, so a host takes about O(sample_seconds) to answer.
  - Allocation counts every defined domain, running or not, since a stopped domain may start again.
  - An unreachable or unresponsive libvirt does not fail the task unless O(fail_on_unreachable)
    is set; RV(hypervisor.reachable) is then V(false) and RV(hypervisor.error) says why.
  - Read-only; the connection is opened read-only.
options:
  storage_path:
    description:
      - Directory of the image store whose size and free space are reported.
      - Measured with C(statvfs) when O(uri) is local, otherwise taken from the active
        libvirt storage pool whose target is this directory.
    type: path
    default: /srv/kvmfleet/images
  sample_seconds:
    description:
      - Length of the CPU sampling window in seconds.
      - V(0) skips sampling; the CPU percentages of running domains and of the host are then null.
    type: float
    default: 1.0
  fail_on_unreachable:
    description:
      - Fail the task when libvirt cannot be reached or stops answering, instead of returning
        RV(hypervisor.reachable=false).
    type: bool
    default: false
extends_documentation_fragment:
  - kvmfleet.iaas.connection
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
notes:
  - Domains whose own libvirt calls fail or time out (for example a hung qemu) are left out of
    RV(hypervisor.domains) and listed in RV(skipped_domains), with a warning.
  - The CPU percent of a domain is of one host CPU, so a busy 4-vCPU domain may show up to 400.
seealso:
  - module: kvmfleet.iaas.vm_info
author:
  - kvmfleet developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read the hypervisor facts of every node
  kvmfleet.iaas.hypervisor_info:
  register: hv

- name: Keep them as the host variable placement reads
  ansible.builtin.set_fact:
    kvmfleet_hypervisor: "{{ hv.hypervisor }}"

- name: Quick inventory without a CPU sample, image store elsewhere
  kvmfleet.iaas.hypervisor_info:
    sample_seconds: 0
    storage_path: /var/lib/libvirt/images

- name: Stop at a host whose libvirt is down
  kvmfleet.iaas.hypervisor_info:
    fail_on_unreachable: true
    timeout: 5
"""

RETURN = r"""
hypervisor:
  description: The host's facts, as kept in C(kvmfleet_hypervisor). Sizes are MiB (memory) and GiB (disk).
  returned: always
  type: dict
  contains:
    reachable:
      description: Whether libvirt answered. When V(false) only RV(hypervisor.error) is meaningful.
      type: bool
      returned: always
      sample: true
    error:
      description: Why the host is unreachable; null when reachable.
      type: str
      returned: always
      sample: null
    hostname:
      description: The hypervisor's host name, as libvirt reports it.
      type: str
      returned: always
      sample: node1
    virt_types:
      description: Domain types libvirt can run on this host.
      type: list
      elements: str
      returned: always
      sample: [qemu, kvm]
    cpus:
      description: Logical host CPUs.
      type: int
      returned: always
      sample: 2
    memory_mb:
      description: Host memory in MiB.
      type: int
      returned: always
      sample: 3900
    memory_free_mb:
      description: Memory available for new guests in MiB (MemAvailable; free plus cache on remote hosts).
      type: int
      returned: always
      sample: 2100
    storage:
      description: The image store. Sizes are null when O(storage_path) is neither a local directory nor a pool's target.
      type: dict
      returned: always
      sample: {path: /srv/kvmfleet/images, total_gb: 250, free_gb: 80}
      contains:
        path:
          description: O(storage_path).
          type: str
          returned: always
        total_gb:
          description: Size of the file system or pool in GiB.
          type: int
          returned: always
        free_gb:
          description: Space left in GiB.
          type: int
          returned: always
    allocated:
      description: What defined domains (running or not) were promised.
      type: dict
      returned: always
      sample: {vcpus: 6, memory_mb: 4096, disk_gb: 30, domains: 3}
      contains:
        vcpus:
          description: Sum of current vCPUs.
          type: int
          returned: always
        memory_mb:
          description: Sum of the domains' memory in MiB, as defined (see domains.memory_mb).
          type: int
          returned: always
        disk_gb:
          description: Sum of the virtual sizes of domain disks in GiB.
          type: int
          returned: always
        domains:
          description: Number of domains.
          type: int
          returned: always
    utilization:
      description: Live use, sampled over O(sample_seconds).
      type: dict
      returned: always
      sample: {cpu_percent: 41.5, memory_percent: 46.2, sample_seconds: 1.0, vm_cpu_percent: 6.0}
      contains:
        cpu_percent:
          description: Host-wide CPU use, 0 to 100; null when O(sample_seconds=0).
          type: float
          returned: always
        memory_percent:
          description: 100 * (1 - memory_free_mb / memory_mb).
          type: float
          returned: always
        sample_seconds:
          description: The sampling window.
          type: float
          returned: always
        vm_cpu_percent:
          description:
            - CPU used by this host's running domains, 0 to 100 of the host's CPUs (the sum of their
              RV(hypervisor.domains[].cpu_percent) over RV(hypervisor.cpus)).
            - Tells hosts apart where the host-wide figure cannot, for example containers sharing one
              machine. Null when O(sample_seconds=0).
          type: float
          returned: always
          version_added: "0.1.0"
    maintenance:
      description:
        - Whether the host carries the maintenance mark C(/etc/kvmfleet/maintenance) that
          C(kvmfleet.iaas.evacuate_host) sets; placement then skips it.
        - Null when O(uri) is not this machine (the mark cannot be read).
      type: bool
      returned: always
      sample: false
    domains:
      description: Every domain of the host.
      type: list
      elements: dict
      returned: always
      contains:
        name:
          description: Domain name.
          type: str
          returned: always
          sample: web1
        uuid:
          description: Domain UUID.
          type: str
          returned: always
        state:
          description: Run state. A domain that is shutting down still counts as running.
          type: str
          returned: always
          sample: running
          choices: [running, paused, shutoff, crashed, pmsuspended, other]
        managed:
          description: Whether the domain carries kvmfleet metadata (kvmfleet made it).
          type: bool
          returned: always
        group:
          description: Affinity group from the kvmfleet metadata, or null.
          type: str
          returned: always
          sample: web
        vcpus:
          description: Current vCPUs.
          type: int
          returned: always
        vcpus_max:
          description: Maximum vCPUs.
          type: int
          returned: always
        memory_mb:
          description: Memory at start in MiB, as the definition has it (the balloon's live size is C(balloon_mb)); what quotas and placement count.
          type: int
          returned: always
        memory_max_mb:
          description: Maximum memory in MiB.
          type: int
          returned: always
        balloon_mb:
          description: Memory the balloon currently gives the guest in MiB; null when the domain is not active or the driver does not say.
          type: int
          returned: always
        cpu_percent:
          description:
            - CPU used over the sampling window, in percent of one host CPU (0 to 100 times vCPUs).
            - V(0.0) when the domain is not running; null for a running domain when O(sample_seconds=0).
          type: float
          returned: always
        disks:
          description:
            - Disks (not CD-ROMs), sizes in GiB rounded up, null when libvirt cannot tell.
            - C(capacity_gb) is the virtual size, C(allocation_gb) the space the disk takes on the host.
          type: list
          elements: dict
          returned: always
          sample: [{target: vda, path: /srv/kvmfleet/images/web1.qcow2, capacity_gb: 10, allocation_gb: 1}]
        macs:
          description: MAC addresses of the domain's interfaces.
          type: list
          elements: str
          returned: always
        addresses:
          description: Guest IP addresses from the guest agent, else DHCP leases, else the ARP table; empty when the domain is not active.
          type: list
          elements: str
          returned: always
        guest:
          description: What the QEMU guest agent reports; it is asked only when the live domain shows it connected, with a 3 s limit.
          type: dict
          returned: always
          contains:
            agent:
              description: Whether the agent is connected.
              type: bool
              returned: always
            hostname:
              description: The guest's hostname from the agent, or null.
              type: str
              returned: always
            address_source:
              description: Where the addresses came from, C(agent), C(lease) or C(arp); null when none knew.
              type: str
              returned: always
skipped_domains:
  description: Domains left out because their own libvirt calls failed or timed out.
  returned: always
  type: list
  elements: dict
  sample: [{name: stuck1, error: "stuck1: XMLDesc did not answer within 10 s"}]
"""

import os

from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError, VirtError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.facts import DEFAULT_SAMPLE_SECONDS, DEFAULT_STORAGE_PATH, unreachable_hypervisor
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.uri import uri_is_this_host

# evacuate_host.yml writes it; its presence puts the host in maintenance (docs/migration.md)
MAINTENANCE_FILE = "/etc/kvmfleet/maintenance"


class HypervisorInfo(KvmfleetModule):
    argument_spec = dict(
        storage_path=dict(type="path", default=DEFAULT_STORAGE_PATH),
        sample_seconds=dict(type="float", default=DEFAULT_SAMPLE_SECONDS),
        fail_on_unreachable=dict(type="bool", default=False),
    )
    module_kwargs = dict(supports_check_mode=True)
    readonly = True

    def run(self):
        params = self.params
        if params["sample_seconds"] < 0:
            raise ValidationError("sample_seconds must be 0 or more, not %s" % params["sample_seconds"])
        skipped = []
        try:
            with self.connect() as virt:
                fact, skipped = virt.hypervisor_facts(params["storage_path"], params["sample_seconds"])
        except VirtError as err:
            # any libvirt failure at host level makes the host unusable for placement
            if params["fail_on_unreachable"]:
                raise
            fact = unreachable_hypervisor(err, params["storage_path"], params["sample_seconds"])
        for entry in skipped:
            self.module.warn("domain %s skipped: %s" % (entry["name"], entry["error"]))
        fact["maintenance"] = maintenance_mark(params["uri"])
        return dict(changed=False, hypervisor=fact, skipped_domains=skipped)


def maintenance_mark(uri):
    """Whether the host carries the maintenance mark; None when O(uri) is another machine."""
    if not uri_is_this_host(uri):
        return None
    return os.path.exists(MAINTENANCE_FILE)


def main():
    HypervisorInfo.execute()


if __name__ == "__main__":
    main()
