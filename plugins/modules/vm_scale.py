#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vm_scale
short_description: Change a VM's vCPUs and memory live and in its definition
version_added: "0.1.0"
description:
  - Runs on the hypervisor that holds the VM (use C(delegate_to)) and brings the VM O(name) to a
    new number of vCPUs and a new memory size, on the running VM and in its persistent definition
    together, without a restart.
  - vCPUs are hot-plugged (and unplugged) up to the maximum the VM was made with; memory moves
    through the virtio balloon up to its maximum.
  - The new size is given as O(vcpus) and/or O(memory_mb), or relative to the current one as
    O(resource), O(direction) and O(step).
  - Scaling down needs the guest's cooperation (it must release the vCPU, and its balloon driver
    must give the memory back). When the guest does not, the module fails saying so and puts back
    what it had changed, so the running VM and its definition keep the old size.
  - A size above the VM's maximum is refused with the maximum named, unless O(allow_restart),
    which raises the maximum in the definition and restarts the VM (reported in RV(restarted)).
  - A shut-off VM gets the new size in its definition only.
  - Choosing whether the VM stays on its host or moves first is C(scale_vm.yml)'s work.
extends_documentation_fragment:
  - kvmfleet.iaas.connection
options:
  name:
    description: Name of the VM (libvirt domain); it must have been made by kvmfleet.
    type: str
    required: true
  vcpus:
    description:
      - vCPUs the VM is to have, an integer >= 1.
      - With O(memory_mb), or alone (memory stays). Not together with O(resource)/O(direction).
    type: raw
  memory_mb:
    description: Memory the VM is to have in MiB, an integer >= 64.
    type: raw
  resource:
    description: Scale this resource by O(step) instead of giving sizes.
    type: str
    choices: [cpu, memory]
  direction:
    description: With O(resource), V(up) or V(down); one direction at a time.
    type: str
  step:
    description:
      - How much O(direction) moves O(resource). For V(cpu) a number of vCPUs (default V(1)); for
        V(memory) MiB, or with a unit V(512M), V(1G) (default V(256)). Either may be a percentage of
        the current size such as V(25%) (rounded up, at least one unit).
    type: raw
  allow_restart:
    description:
      - Accept a size above the VM's maximum by raising the maximum in the definition and restarting
        the VM (shut down for up to O(stop_timeout) seconds, then powered off and started).
    type: bool
    default: false
  stop_timeout:
    description: Seconds a graceful shutdown may take on a restart before the VM is powered off.
    type: float
    default: 60
  wait:
    description:
      - Seconds to wait for the guest to take the new size (balloon at the new size, a vCPU
        released). A shrink the guest has not made by then is undone and reported as refused.
    type: float
    default: 30
  tenant:
    description:
      - Act only on a VM this tenant owns (the C(tenant) of its kvmfleet metadata, docs/tenancy.md);
        a VM of another tenant or of the operator is refused exactly as a VM that does not exist.
      - Unset, the operator acts on every VM.
    type: str
attributes:
  check_mode:
    support: full
    description: Computes and validates the new size and reports the steps, changing nothing.
  diff_mode:
    support: full
    description: Shows the sizes before and after.
notes:
  - Memory is given to the guest at its maximum at boot and held back by the balloon, so a guest
    without a virtio balloon driver always has the maximum and cannot be scaled down.
  - A vCPU can be unplugged only if it was plugged as a separate device (added after boot, or
    marked hotpluggable in the definition, which this module does for vCPUs it adds there);
    the boot vCPUs of a VM made with several vCPUs stay.
seealso:
  - module: kvmfleet.iaas.vm
  - module: kvmfleet.iaas.vm_migrate
author:
  - kvmfleet developers (@kvmfleet)
"""

EXAMPLES = r"""
- name: Give web1 four vCPUs and 2 GiB, live
  kvmfleet.iaas.vm_scale:
    name: web1
    vcpus: 4
    memory_mb: 2048
  delegate_to: node1

- name: One vCPU less
  kvmfleet.iaas.vm_scale:
    name: web1
    resource: cpu
    direction: down
  delegate_to: node1

- name: A quarter more memory
  kvmfleet.iaas.vm_scale:
    name: web1
    resource: memory
    direction: up
    step: 25%
  delegate_to: node1

- name: Above the maximum it was made with, by restarting it
  kvmfleet.iaas.vm_scale:
    name: web1
    memory_mb: 8192
    allow_restart: true
    stop_timeout: 30
  delegate_to: node1
"""

RETURN = r"""
steps:
  description:
    - What was done (or would be in check mode), in order. V(vcpus_live), V(memory_live) change the
      running VM; V(vcpus_config), V(memory_config) its definition; V(raise_vcpus_max),
      V(raise_memory_max) and V(restart) come with O(allow_restart).
  returned: always
  type: list
  elements: str
  sample: [vcpus_live, memory_live, vcpus_config, memory_config]
restarted:
  description: Whether the VM was (or would be) restarted to raise its maximum.
  returned: always
  type: bool
vm:
  description: The VM.
  returned: always
  type: dict
  contains:
    name: {description: VM name., type: str, returned: always}
    host: {description: Hostname of the hypervisor., type: str, returned: always}
    state: {description: "Power state: running, paused, shutoff, ...", type: str, returned: always}
before:
  description: Sizes before the task.
  returned: always
  type: dict
  contains:
    vcpus: {description: vCPUs in the definition., type: int, returned: always}
    vcpus_max: {description: vCPU maximum., type: int, returned: always}
    memory_mb: {description: Memory in the definition (MiB)., type: int, returned: always}
    memory_max_mb: {description: Memory maximum (MiB)., type: int, returned: always}
    vcpus_live: {description: vCPUs of the running VM; null when shut off., type: int, returned: always}
    balloon_mb: {description: Balloon actual of the running VM (MiB); null when shut off., type: int, returned: always}
after:
  description: Sizes after the task (predicted in check mode), as RV(before).
  returned: always
  type: dict
guest:
  description: What the guest has taken, read after the change; null for a shut-off VM.
  returned: always
  type: dict
  contains:
    vcpus: {description: vCPUs the running VM has (libvirt's vcpu info)., type: int, returned: when running}
    balloon_mb: {description: "The balloon's actual size: the memory the guest has (MiB).", type: int, returned: when running}
    vcpus_taken: {description: The running VM has the requested vCPUs., type: bool, returned: when running}
    memory_taken: {description: The balloon reached the requested memory (within 1 MiB)., type: bool, returned: when running}
"""

from ansible_collections.kvmfleet.iaas.plugins.module_utils import scaling
from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.ops.scale import ScaleOps


class VmScaleModule(KvmfleetModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        vcpus=dict(type="raw"),
        memory_mb=dict(type="raw"),
        resource=dict(type="str", choices=list(scaling.RESOURCES)),
        direction=dict(type="str"),
        step=dict(type="raw"),
        allow_restart=dict(type="bool", default=False),
        stop_timeout=dict(type="float", default=60.0),
        wait=dict(type="float", default=30.0),
        tenant=dict(type="str"),
    )
    module_kwargs = dict(supports_check_mode=True)

    def run(self):
        params = self.params
        with self.connect() as virt:
            ops = ScaleOps(virt, params["name"], wait=params["wait"], stop_timeout=params["stop_timeout"],
                           check_mode=self.module.check_mode, diff=self.module._diff, warn=self.module.warn,
                           tenant=params["tenant"])
            request = dict((key, params[key]) for key in ("vcpus", "memory_mb", "resource", "direction", "step"))
            return ops.scale(request, allow_restart=params["allow_restart"])


def main():
    VmScaleModule.execute()


if __name__ == "__main__":
    main()
