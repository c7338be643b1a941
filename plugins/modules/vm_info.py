#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vm_info
short_description: List the VMs of a libvirt host
version_added: "0.1.0"
description:
  - Lists the domains (VMs) of the hypervisor the task runs on, or the one called O(name),
    as libvirt sees them; libvirt is the source of truth for where a VM is.
  - Run it on every hypervisor and combine the results to see the whole fleet.
  - An unreachable or unresponsive libvirt does not fail the task unless O(fail_on_unreachable)
    is set; RV(reachable) is then V(false) and RV(vms) is empty. A playbook that concludes from
    this list that a VM does not exist must check RV(reachable) on every host first.
  - Read-only; the connection is opened read-only.
options:
  name:
    description:
      - Only the domain of this name. Without it, every domain of the host.
      - A name the host does not have gives an empty RV(vms), not a failure.
    type: str
  addresses:
    description:
      - Look up the guest IP addresses of active domains, from the guest agent when it is connected, else DHCP leases, else the ARP table.
      - V(false) saves one or two libvirt calls per domain.
    type: bool
    default: true
  fail_on_unreachable:
    description:
      - Fail the task when libvirt cannot be reached or stops answering, instead of returning
        RV(reachable=false).
    type: bool
    default: false
  tenant:
    description:
      - Only the VMs this tenant owns (the C(tenant) of their kvmfleet metadata, docs/tenancy.md),
        in the tenant's view, each VM with C(name), C(uuid), C(state), C(tenant), C(group),
        C(vcpus), C(vcpus_max), C(memory_mb), C(memory_max_mb), C(balloon_mb), C(disks) (C(target)
        and C(capacity_gb) only), C(disk_gb), C(macs), C(addresses) and C(guest) (C(agent),
        C(hostname)), and never the host, disk paths, metadata or libvirt's errors.
      - A VM of another tenant or of the operator is left out exactly like one that does not
        exist, also when asked for by O(name).
      - RV(host) is then null, RV(skipped_domains) empty (a warning says the list may be short),
        and an unreachable libvirt is reported without its error text.
      - Without it, every VM, with every field (the operator's view).
      - Must be an RFC 1123 label. The module cannot tell a declared tenant from an unknown one (it
        runs on the hypervisor); the playbooks check it against C(kvmfleet_tenants) first.
    type: str
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
    RV(vms) and listed in RV(skipped_domains), with a warning.
seealso:
  - module: kvmfleet.iaas.hypervisor_info
author:
  - kvmfleet developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: List the VMs of every hypervisor
  kvmfleet.iaas.vm_info:
  register: found

- name: Every VM of the fleet, with the host it runs on
  ansible.builtin.set_fact:
    fleet_vms: >-
      {{ ansible_play_hosts | map('extract', hostvars, ['found', 'vms']) | flatten }}
  run_once: true

- name: Where is web1?
  kvmfleet.iaas.vm_info:
    name: web1
    addresses: false
  register: web1

- name: Refuse to go on without a complete picture
  ansible.builtin.assert:
    that: web1.reachable

- name: What tenant acme sees of its VMs on this host
  kvmfleet.iaas.vm_info:
    tenant: acme
  register: acme_vms
"""

RETURN = r"""
reachable:
  description: Whether libvirt answered.
  returned: always
  type: bool
  sample: true
error:
  description: Why libvirt is unreachable; null when reachable.
  returned: always
  type: str
  sample: null
host:
  description: The hypervisor's host name, as libvirt reports it; null when unreachable or with O(tenant).
  returned: always
  type: str
  sample: node1
vms:
  description:
    - The domains, sorted by name. Sizes in MiB (memory) and GiB (disk).
    - With O(tenant), only that tenant's, with the fields O(tenant) lists.
  returned: always
  type: list
  elements: dict
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
    host:
      description: The hypervisor it is defined on (RV(host)).
      type: str
      returned: without O(tenant)
      sample: node1
    state:
      description: Run state. A domain that is shutting down still counts as running.
      type: str
      returned: always
      sample: running
      choices: [running, paused, shutoff, crashed, pmsuspended, other]
    managed:
      description: Whether the domain carries kvmfleet metadata (kvmfleet made it).
      type: bool
      returned: without O(tenant)
    tenant:
      description: The tenant that owns the VM (its kvmfleet metadata), or null for the operator's.
      type: str
      returned: always
      sample: acme
    group:
      description: Affinity group from the kvmfleet metadata, or null.
      type: str
      returned: always
      sample: web
    metadata:
      description: Every field of the kvmfleet metadata, or null when the domain has none.
      type: dict
      returned: without O(tenant)
      sample: {group: web}
    vcpus:
      description: Current vCPUs.
      type: int
      returned: always
    vcpus_max:
      description: Maximum vCPUs.
      type: int
      returned: always
    memory_mb:
      description: Current memory in MiB.
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
    disks:
      description:
        - Disks (not CD-ROMs), sizes in GiB rounded up, null when libvirt cannot tell.
        - C(capacity_gb) is the virtual size, C(allocation_gb) the space the disk takes on the host.
        - With O(tenant), C(target) and C(capacity_gb) only.
      type: list
      elements: dict
      returned: always
      sample: [{target: vda, path: /srv/kvmfleet/images/web1.qcow2, capacity_gb: 10, allocation_gb: 1}]
    disk_gb:
      description: The disks' virtual sizes added up, in GiB.
      type: int
      returned: with O(tenant)
      sample: 10
    macs:
      description: MAC addresses of the domain's interfaces.
      type: list
      elements: str
      returned: always
      sample: ["52:54:00:12:34:56"]
    addresses:
      description: Guest IP addresses (agent, else leases, else ARP); empty when the domain is not active or O(addresses=false).
      type: list
      elements: str
      returned: always
      sample: [10.213.0.123]
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
          description: Where O(addresses) came from, C(agent), C(lease) or C(arp); null when none knew.
          type: str
          returned: without O(tenant)
skipped_domains:
  description: Domains left out because their own libvirt calls failed or timed out; empty with O(tenant).
  returned: always
  type: list
  elements: dict
  sample: [{name: stuck1, error: "stuck1: XMLDesc did not answer within 10 s"}]
"""

from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import VirtError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy import views
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import check_label


class VmInfo(KvmfleetModule):
    argument_spec = dict(
        name=dict(type="str"),
        tenant=dict(type="str"),
        addresses=dict(type="bool", default=True),
        fail_on_unreachable=dict(type="bool", default=False),
    )
    module_kwargs = dict(supports_check_mode=True)
    readonly = True

    def run(self):
        params = self.params
        tenant = params["tenant"]
        if tenant is not None:
            check_label(tenant, "tenant")
        try:
            with self.connect() as virt:
                host = virt.hostname()
                listing = virt.list_domains(name=params["name"], with_addresses=params["addresses"],
                                            with_metadata=True)
        except VirtError as err:
            if tenant is not None:
                err = VirtError(views.HOST_UNREADABLE)   # libvirt's words name the host and its URI
            if params["fail_on_unreachable"]:
                raise err
            return dict(changed=False, reachable=False, error=str(err), host=None, vms=[], skipped_domains=[])
        if tenant is not None:
            if listing["skipped"]:
                # whose they are is unknown: neither their names nor libvirt's errors go to a tenant
                self.module.warn(views.SOME_UNREADABLE)
            return dict(changed=False, reachable=True, error=None, host=None,
                        vms=views.tenant_vms([vm_entry(fact, None) for fact in listing["domains"]], tenant),
                        skipped_domains=[])
        for entry in listing["skipped"]:
            self.module.warn("domain %s skipped: %s" % (entry["name"], entry["error"]))
        return dict(changed=False, reachable=True, error=None, host=host,
                    vms=[vm_entry(fact, host) for fact in listing["domains"]],
                    skipped_domains=listing["skipped"])


def vm_entry(fact, host):
    """A domain fact as vm_info shows it: with its host, without the (unsampled) CPU use."""
    entry = dict(fact, host=host)
    entry.pop("cpu_percent", None)
    return entry


def main():
    VmInfo.execute()


if __name__ == "__main__":
    main()
