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

import time

from ansible_collections.kvmfleet.iaas.plugins.module_utils import scaling
from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    DomainNotFound,
    KvmfleetError,
    NotManaged,
    VirtError,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.facts import ACTIVE_STATES

_POLL = 0.5


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
    )
    module_kwargs = dict(supports_check_mode=True)

    def run(self):
        params = self.params
        with self.connect() as virt:
            self.virt = virt
            dom = virt.find_domain(params["name"])
            if dom is None:
                raise DomainNotFound("no VM named %s on %s" % (params["name"], virt.hostname()),
                                     name=params["name"], host=virt.hostname())
            if virt.domain_metadata(dom) is None:
                raise NotManaged("the domain %s on this host was not made by kvmfleet; it is left untouched"
                                 % params["name"], name=params["name"])
            return self.scale(dom)

    def sizes(self, dom):
        virt = self.virt
        cpus, mem = virt.vcpu_counts(dom), virt.memory_sizes_kib(dom)
        return scaling.Sizes(vcpus=cpus["config"], vcpus_max=cpus["config_max"], memory_mb=mem["config"] // 1024,
                             memory_max_mb=mem["config_max"] // 1024, vcpus_live=cpus["live"], balloon_kib=mem["live"])

    def scale(self, dom):
        params, virt = self.params, self.virt
        name = params["name"]
        running = virt.domain_state(dom) in ACTIVE_STATES
        before = self.sizes(dom)
        vcpus, memory_mb = scaling.target_sizes(before, vcpus=params["vcpus"], memory_mb=params["memory_mb"],
                                                resource=params["resource"], direction=params["direction"],
                                                step=params["step"])
        host = virt.host_info()
        vcpus_max, memory_max_mb = scaling.check_maxima(before, vcpus, memory_mb, params["allow_restart"],
                                                        host_cpus=host["cpus"], host_memory_mb=host["memory_mb"])
        steps = scaling.plan_scale(before, running, vcpus, memory_mb, vcpus_max, memory_max_mb)
        if steps and not self.module.check_mode:
            self.apply(dom, steps, before, vcpus, memory_mb, vcpus_max, memory_max_mb)
            running = virt.domain_state(dom) in ACTIVE_STATES
            if running:
                self.wait_balloon(dom, memory_mb)
            after = self.sizes(dom)
        elif steps:
            after = scaling.predicted(before, running, vcpus, memory_mb, vcpus_max, memory_max_mb)
        else:
            after = before
        guest = None
        if running:
            seen_vcpus = after.vcpus_live if self.module.check_mode else virt.vcpus_running(dom)
            guest = dict(vcpus=seen_vcpus, balloon_mb=after.balloon_mb, vcpus_taken=seen_vcpus == vcpus,
                         memory_taken=scaling.balloon_at(after.balloon_kib, memory_mb))
        result = dict(changed=bool(steps), steps=steps, restarted=scaling.RESTART in steps,
                      vm=dict(name=name, host=virt.hostname(), state=virt.domain_state(dom)),
                      before=before.to_dict(), after=after.to_dict(), guest=guest)
        if guest is not None and not self.module.check_mode and not (guest["vcpus_taken"] and guest["memory_taken"]):
            self.module.warn("%s: the guest has not taken the whole new size yet: %d vCPU(s) of %d, balloon at %s MiB "
                             "of %d" % (name, guest["vcpus"], vcpus, guest["balloon_mb"], memory_mb))
        if self.module._diff:
            result["diff"] = dict(before=scaling.sizes_text(before, running), after=scaling.sizes_text(after, running),
                                  before_header="%s (before)" % name, after_header="%s (after)" % name)
        return result

    # ---- applying, with undo of what a refused step leaves half done

    def apply(self, dom, steps, before, vcpus, memory_mb, vcpus_max, memory_max_mb):
        virt = self.virt
        undo = []
        try:
            for step in steps:
                if step == scaling.VCPUS_MAX:
                    virt.set_vcpus_maximum(dom, vcpus_max)
                    undo.append((step, lambda: virt.set_vcpus_maximum(dom, before.vcpus_max)))
                elif step == scaling.MEMORY_MAX:
                    virt.set_memory_maximum(dom, memory_max_mb * 1024)
                    undo.append((step, lambda: virt.set_memory_maximum(dom, before.memory_max_mb * 1024)))
                elif step == scaling.VCPUS_LIVE:
                    self.vcpus_live(dom, before.vcpus_live, vcpus)
                    undo.append((step, lambda: virt.set_vcpus(dom, before.vcpus_live, live=True)))
                elif step == scaling.MEMORY_LIVE:
                    self.memory_live(dom, before.balloon_kib, memory_mb)
                    undo.append((step, lambda: virt.set_memory(dom, before.balloon_kib, live=True)))
                elif step == scaling.VCPUS_CONFIG:
                    virt.set_vcpus(dom, vcpus, config=True)
                    undo.append((step, lambda: virt.set_vcpus(dom, before.vcpus, config=True)))
                elif step == scaling.MEMORY_CONFIG:
                    virt.set_memory(dom, memory_mb * 1024, config=True)
                    undo.append((step, lambda: virt.set_memory(dom, before.memory_mb * 1024, config=True)))
                elif step == scaling.RESTART:
                    virt.stop_domain(dom, self.params["stop_timeout"])
                    virt.start_domain(dom)
        except KvmfleetError as err:
            self.undo(dom, undo, before, err)
            raise
        if scaling.RESTART not in steps and virt.domain_state(dom) in ACTIVE_STATES:
            self.align_config(dom)

    def undo(self, dom, undo, before, err):
        """Put back the steps done before ``err``, then say in ``err`` what is in effect now."""
        undone, failed = [], []
        for step, revert in reversed(undo):
            try:
                revert()
                undone.append(step)
            except KvmfleetError as undo_err:
                failed.append("%s: %s" % (step, undo_err))
        try:
            if self.virt.domain_state(dom) in ACTIVE_STATES:
                self.align_config(dom)
            now = self.sizes(dom)
        except KvmfleetError as read_err:
            failed.append("reading the sizes back: %s" % read_err)
            now = None
        unchanged = now is not None and (now.vcpus, now.vcpus_max, now.memory_mb, now.memory_max_mb,
                                         now.vcpus_live) == (before.vcpus, before.vcpus_max, before.memory_mb,
                                                             before.memory_max_mb, before.vcpus_live)
        err.msg = "%s; %s" % (err.msg, "the VM keeps its size (nothing changed)" if unchanged and not failed
                              else "put back: %s%s; now: %s" % (", ".join(undone) or "nothing",
                                                                (" (failed: %s)" % "; ".join(failed)) if failed else "",
                                                                now.to_dict() if now else "unknown"))
        err.details.update(before=before.to_dict(), now=now.to_dict() if now else None, undone=undone,
                           unchanged=unchanged)

    def align_config(self, dom):
        """The definition's vCPU count follows the running VM's, whatever an unplug did."""
        counts = self.virt.vcpu_counts(dom)
        if counts["live"] is not None and counts["config"] != counts["live"]:
            self.virt.set_vcpus(dom, counts["live"], config=True)

    def vcpus_live(self, dom, old, new):
        """Hot(un)plug to ``new`` vCPUs; a refused unplug is put back and raised as GuestRefused."""
        virt, name = self.virt, self.params["name"]
        try:
            virt.set_vcpus(dom, new, live=True)
            return
        except VirtError as err:
            failure = err
        deadline = time.monotonic() + self.params["wait"]
        live = virt.vcpu_counts(dom)["live"]
        while live != new and time.monotonic() < deadline:
            time.sleep(_POLL)
            live = virt.vcpu_counts(dom)["live"]
        if live == new:
            return  # libvirt gave up waiting, the guest answered later
        if live != old:
            try:
                virt.set_vcpus(dom, old, live=True)
            except VirtError:
                pass
        if new < old:
            raise scaling.GuestRefused(
                "%s: the guest did not release the CPU: unplugging from %d to %d vCPUs, libvirt answered \"%s\" and "
                "still counts %s vCPUs after %g s more; the definition keeps the count libvirt runs"
                % (name, old, new, failure, virt.vcpu_counts(dom)["live"], self.params["wait"]),
                name=name, libvirt_error=str(failure))
        failure.msg = "%s: adding vCPUs (%d to %d) failed: %s" % (name, old, new, failure.msg)
        raise failure

    def memory_live(self, dom, old_kib, new_mb):
        """Move the balloon to ``new_mb``; a shrink the guest does not make is put back."""
        virt, name = self.virt, self.params["name"]
        virt.set_memory(dom, new_mb * 1024, live=True)
        if old_kib is None or new_mb * 1024 >= old_kib:
            return
        actual = self.wait_balloon(dom, new_mb)
        if scaling.balloon_at(actual, new_mb):
            return
        try:
            virt.set_memory(dom, old_kib, live=True)
        except VirtError:
            pass
        raise scaling.GuestRefused(
            "%s: the guest did not release the memory: its balloon is at %d MiB after %g s, asked %d MiB "
            "(was %d MiB); it needs the virtio_balloon driver and that much free memory"
            % (name, actual // 1024, self.params["wait"], new_mb, old_kib // 1024), name=name,
            balloon_mb=actual // 1024)

    def wait_balloon(self, dom, memory_mb):
        deadline = time.monotonic() + self.params["wait"]
        actual = self.virt.balloon_actual_kib(dom)
        while not scaling.balloon_at(actual, memory_mb) and time.monotonic() < deadline:
            time.sleep(_POLL)
            actual = self.virt.balloon_actual_kib(dom)
        return actual


def main():
    VmScaleModule.execute()


if __name__ == "__main__":
    main()
