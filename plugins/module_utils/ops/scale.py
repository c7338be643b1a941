# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vm_scale module's work on one VM: read its sizes, run scaling's steps, put back what a refusal leaves.

``ScaleOps.scale`` returns the module's result dict (check mode predicts it, diff mode adds the
sizes before and after) and warns when the guest has not taken the whole size yet.
The decisions (target, maxima, step plan) are scaling's; this file only reads, acts and polls.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kvmfleet.iaas.plugins.module_utils import scaling
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    DomainNotFound,
    KvmfleetError,
    NotManaged,
    VirtError,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.facts import ACTIVE_STATES
from ansible_collections.kvmfleet.iaas.plugins.module_utils.ops.ownership import find_visible_domain

# seconds between reads of the guest's vCPU count and balloon while waiting for it
_POLL = 0.5


class ScaleOps:
    """Scaling of the VM ``name`` over ``virt`` (a VirtConnection).

    ``wait`` is how long the guest may take to release or take a size; ``stop_timeout`` how long
    the ACPI shutdown of a restart may take; ``warn`` shows a warning to the user.
    """

    def __init__(self, virt, name, wait=30.0, stop_timeout=60.0, check_mode=False, diff=False, warn=None,
                 tenant=None):
        self.virt = virt
        self.name = name
        self.tenant = tenant     # set: only that tenant's VM; another's is not found (ops/ownership.py)
        self.wait = wait
        self.stop_timeout = stop_timeout
        self.check_mode = check_mode
        self.diff = diff
        self.warn = warn or (lambda message: None)

    def managed_domain(self):
        """The VM's domain; DomainNotFound when absent, NotManaged when kvmfleet did not make it."""
        virt, name = self.virt, self.name
        dom = find_visible_domain(virt, name, self.tenant)
        if dom is None:
            raise DomainNotFound("no VM named %s on %s" % (name, virt.hostname()), name=name, host=virt.hostname())
        if virt.domain_metadata(dom) is None:
            raise NotManaged("the domain %s on this host was not made by kvmfleet; it is left untouched" % name,
                             name=name)
        return dom

    def sizes(self, dom):
        virt = self.virt
        cpus, mem = virt.vcpu_counts(dom), virt.memory_sizes_kib(dom)
        return scaling.Sizes(vcpus=cpus["config"], vcpus_max=cpus["config_max"], memory_mb=mem["config"] // 1024,
                             memory_max_mb=mem["config_max"] // 1024, vcpus_live=cpus["live"], balloon_kib=mem["live"])

    def scale(self, request, allow_restart=False):
        """Scale to ``request`` (scaling.target_sizes' keywords); return the result dict."""
        virt, name = self.virt, self.name
        dom = self.managed_domain()
        running = virt.domain_state(dom) in ACTIVE_STATES
        before = self.sizes(dom)
        vcpus, memory_mb = scaling.target_sizes(before, **request)
        host = virt.host_info()
        vcpus_max, memory_max_mb = scaling.check_maxima(before, vcpus, memory_mb, allow_restart,
                                                        host_cpus=host["cpus"], host_memory_mb=host["memory_mb"])
        steps = scaling.plan_scale(before, running, vcpus, memory_mb, vcpus_max, memory_max_mb)
        if steps and not self.check_mode:
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
            seen_vcpus = after.vcpus_live if self.check_mode else virt.vcpus_running(dom)
            guest = dict(vcpus=seen_vcpus, balloon_mb=after.balloon_mb, vcpus_taken=seen_vcpus == vcpus,
                         memory_taken=scaling.balloon_at(after.balloon_kib, memory_mb))
        if guest is not None and not self.check_mode and not (guest["vcpus_taken"] and guest["memory_taken"]):
            self.warn("%s: the guest has not taken the whole new size yet: %d vCPU(s) of %d, balloon at %s MiB "
                      "of %d" % (name, guest["vcpus"], vcpus, guest["balloon_mb"], memory_mb))
        result = dict(changed=bool(steps), steps=steps, restarted=scaling.RESTART in steps,
                      vm=dict(name=name, host=virt.hostname(), state=virt.domain_state(dom)),
                      before=before.to_dict(), after=after.to_dict(), guest=guest)
        if self.diff:
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
                    virt.stop_domain(dom, self.stop_timeout)
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
        virt, name = self.virt, self.name
        try:
            virt.set_vcpus(dom, new, live=True)
            return
        except VirtError as err:
            failure = err
        deadline = time.monotonic() + self.wait
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
                % (name, old, new, failure, virt.vcpu_counts(dom)["live"], self.wait),
                name=name, libvirt_error=str(failure))
        failure.msg = "%s: adding vCPUs (%d to %d) failed: %s" % (name, old, new, failure.msg)
        raise failure

    def memory_live(self, dom, old_kib, new_mb):
        """Move the balloon to ``new_mb``; a shrink the guest does not make is put back."""
        virt, name = self.virt, self.name
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
            % (name, actual // 1024, self.wait, new_mb, old_kib // 1024), name=name,
            balloon_mb=actual // 1024)

    def wait_balloon(self, dom, memory_mb):
        deadline = time.monotonic() + self.wait
        actual = self.virt.balloon_actual_kib(dom)
        while not scaling.balloon_at(actual, memory_mb) and time.monotonic() < deadline:
            time.sleep(_POLL)
            actual = self.virt.balloon_actual_kib(dom)
        return actual
