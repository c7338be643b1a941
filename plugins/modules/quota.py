# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The documentation of the kvmfleet.iaas.quota action (plugins/action/quota.py): an action
# runs on the controller and has no module code of its own.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: quota
short_description: Claim, release or report a tenant's quota around a create or a scale
description:
  - Counts a tenant's usage from the C(kvmfleet_hypervisor) facts of O(hosts) (the tenant's VMs,
    running or not) plus its live claims on the controller, and checks a request against the
    tenant's quota from the inventory's C(kvmfleet_tenants) and C(kvmfleet_tenant_default_quota).
  - O(state=claimed) records the claim in the tenant's ledger, one JSON file in O(state_dir), under
    an exclusive lock, so that two creates of one tenant at the same moment cannot both pass the
    quota. A create's claim counts until the facts show its VM, until it is released, or for
    30 minutes at most; a scale's counts until released or for 30 minutes.
  - Over the quota, the task fails with every resource over and its numbers as C(msg), and
    RV(over).
  - An undeclared tenant, a name that is not a label, and a hypervisor whose facts are missing or
    say it could not be read (see O(ignore_unreachable)) fail the task with the reason as C(msg).
  - It never reports C(changed), since the ledger is bookkeeping on the controller, not a change to the
    fleet.
version_added: 0.1.0
author:
  - kvmfleet developers (@kvmfleet)
options:
  tenant:
    description: The tenant, declared in C(kvmfleet_tenants).
    type: str
    required: true
  vm:
    description: The VM the claim is for. Required with O(state=claimed) and O(state=released).
    type: str
  demand:
    description:
      - What the claim asks for. Resources left out ask for nothing.
      - For a create, the VM's size at start, its disk and C(vms=1); for a scale, the increase only
        (shrinking asks for nothing).
    type: dict
    suboptions:
      vcpus:
        description: vCPUs, a whole number 0 or more.
        type: int
      memory_mb:
        description: MiB of memory, a whole number 0 or more.
        type: int
      disk_gb:
        description: GiB of disk, a whole number 0 or more.
        type: int
      vms:
        description: VMs, a whole number 0 or more.
        type: int
  kind:
    description:
      - V(create) or V(scale). A scale's claim is kept as C(scale:VM), apart from the VM's name, since
        its VM is in the facts at its old size while it is resized, and a create's claim stops
        counting once the facts show its VM.
    type: str
    choices: [create, scale]
    default: create
  state:
    description:
      - V(claimed) checks O(demand) against the quota, counting the other live claims, and records it
        (a claim again for the same VM and kind replaces its own).
      - V(released) drops the claim; releasing one that is not there is not an error
        (RV(released) is V(false)).
      - V(query) reports the quota and the usage with the live claims.
    type: str
    choices: [claimed, released, query]
    default: claimed
  hosts:
    description: The hypervisors whose facts are counted; default the C(hypervisors) group.
    type: list
    elements: str
  state_dir:
    description:
      - The directory of the ledgers, on the controller.
      - Default the inventory's C(kvmfleet_quota_state_dir), else C(~/.local/state/kvmfleet/quota).
    type: path
  ignore_unreachable:
    description:
      - Count although a hypervisor's facts are missing or say it could not be read. Its VMs are
        then not counted, so the usage can be short and a request pass that should not.
      - Without it such a host fails the task, naming it (not with O(state=released), which reads
        no facts).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Checks the quota and reports as the real run would, and writes nothing.
  diff_mode:
    support: none
    description: It has nothing to show a diff of.
  platform:
    support: full
    platforms: all
    description: Runs on the controller.
notes:
  - Runs on the controller only; the hypervisors' C(kvmfleet_hypervisor) facts must have been
    gathered before (kvmfleet.iaas.hypervisor_info).
  - Images are counted by the image store, not here.
seealso:
  - module: kvmfleet.iaas.hypervisor_info
"""

EXAMPLES = r"""
- name: Claim the new VM's share of the tenant's quota
  kvmfleet.iaas.quota:
    tenant: "{{ tenant }}"
    vm: "{{ name }}"
    demand: {vcpus: "{{ vcpus }}", memory_mb: "{{ memory_mb }}", disk_gb: "{{ disk_gb }}", vms: 1}

- name: Claim a resize's increase
  kvmfleet.iaas.quota:
    tenant: "{{ tenant }}"
    vm: "{{ vm }}"
    kind: scale
    demand: {vcpus: 2, memory_mb: 0}

- name: Release the claim (the create finished, or was rolled back)
  kvmfleet.iaas.quota:
    tenant: "{{ tenant }}"
    vm: "{{ name }}"
    state: released

- name: The tenant's usage against its quota
  kvmfleet.iaas.quota:
    tenant: acme
    state: query
  register: acme_quota
"""

RETURN = r"""
tenant:
  description: The tenant.
  returned: always
  type: str
  sample: acme
key:
  description: The claim's key in the ledger, the VM's name or C(scale:VM).
  returned: with O(state=claimed) or O(state=released)
  type: str
  sample: scale:web1
quota:
  description: The tenant's quota of vcpus, memory_mb, disk_gb and vms; null is unlimited.
  returned: with O(state=claimed) or O(state=query)
  type: dict
  sample: {vcpus: 16, memory_mb: 32768, disk_gb: 500, vms: 10}
used:
  description:
    - What the tenant holds, from the facts, plus its live claims whose VM the facts do not show.
    - With O(state=claimed), the claims other than this one (what the request was checked against).
  returned: with O(state=claimed) or O(state=query)
  type: dict
  sample: {vcpus: 4, memory_mb: 4096, disk_gb: 40, vms: 2}
asked:
  description: The demand, every resource (0 if left out).
  returned: with O(state=claimed), on success
  type: dict
  sample: {vcpus: 2, memory_mb: 1024, disk_gb: 10, vms: 1}
after:
  description: RV(used) plus RV(asked).
  returned: with O(state=claimed), on success
  type: dict
  sample: {vcpus: 6, memory_mb: 5120, disk_gb: 50, vms: 3}
claimed:
  description: The claim passed (and, out of check mode, is recorded).
  returned: with O(state=claimed), on success
  type: bool
released:
  description: Whether there was a live claim to drop.
  returned: with O(state=released)
  type: bool
claims:
  description: The live claims counted in RV(used), {key, demand}.
  returned: with O(state=query)
  type: dict
  sample: {web3: {vcpus: 2, memory_mb: 1024, disk_gb: 10, vms: 1}}
complete:
  description: False when O(ignore_unreachable) let it count without some hypervisor's facts.
  returned: with O(state=claimed) or O(state=query)
  type: bool
over:
  description: Over the quota, each resource over, with its numbers.
  returned: when over the quota
  type: dict
  sample: {vms: {used: 2, asked: 1, limit: 2}}
"""
