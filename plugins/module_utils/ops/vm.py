# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vm module's work on one host: gather the VM's state, run vmplan's steps, undo a failed create.

``VmOps.ensure`` brings a VM to present/running/stopped, ``VmOps.remove`` deletes it with the disk
kvmfleet made for it. Both return the module's result dict (check mode predicts it, diff mode adds
the domain XML before and after). The decisions are vmplan's; this file only reads and acts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.kvmfleet.iaas.plugins.module_utils import vmplan
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError, NotManaged, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.macaddr import derive_mac, normalize_mac
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import validate_vm_request
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.diff import diff_domain
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import build_domain_xml, domain_facts, pretty

_GIB = 1024 ** 3


class VmOps:
    """The vm module's steps over ``virt`` (a VirtConnection).

    ``reconnect`` opens a fresh VirtConnection (a context manager) for the rollback: the failed call
    may have timed out, which leaves ``virt`` unusable.
    """

    def __init__(self, virt, reconnect, check_mode=False, diff=False):
        self.virt = virt
        self.reconnect = reconnect
        self.check_mode = check_mode
        self.diff = diff

    # ---- present / running / stopped

    def ensure(self, state, request, pool_name, domain_options, mac=None, autostart=None, stop_timeout=60.0):
        """Bring the VM of ``request`` (vmspec request fields) to ``state``.

        ``domain_options`` are vmplan.desired_domain's keyword arguments (bridge, domain_type,
        console_dir, serial, cpu_mode, machine).
        """
        virt = self.virt
        dom = virt.find_domain(request["name"])
        pool = virt.lookup_pool(pool_name)
        if pool is None:
            raise ValidationError("storage pool %s does not exist on %s (onboard the node with the setup role)"
                                  % (pool_name, virt.hostname()), field="pool", value=pool_name)
        pool_dir = virt.pool_dir(pool)
        host = virt.host_info()
        spec = validate_vm_request(request, host_max_vcpus=host["cpus"], host_memory_mb=host["memory_mb"],
                                   pool_dir=pool_dir)
        disk_name = vmplan.volume_name(spec.name)
        disk_path = "%s/%s" % (pool_dir.rstrip("/"), disk_name)
        desired = vmplan.desired_domain(spec, disk_path, normalize_mac(mac) if mac else derive_mac(spec.name),
                                        **domain_options)
        volume = virt.lookup_volume(pool, disk_name)
        current, before_xml = None, ""
        if dom is not None:
            before_xml = virt.domain_xml(dom, inactive=True)
            current = dict(managed=domain_facts(before_xml)["managed"], state=virt.domain_state(dom),
                           autostart=virt.autostart(dom))
            capacity = self.volume_gb(volume) if volume is not None else None
            vmplan.check_existing(spec.name, current, diff_domain(desired, before_xml) if current["managed"] else {},
                                  spec.disk_gb, capacity)
        try:
            steps = vmplan.plan_vm(state, current, volume is not None, autostart)
        except KvmfleetError as err:
            err.msg = "VM %s: %s" % (spec.name, err.msg)
            raise
        after_xml = build_domain_xml(desired) if dom is None else before_xml
        if steps and not self.check_mode:
            dom = self.apply(steps, pool, dom, spec, after_xml, pool_name, stop_timeout)
        result = dict(changed=bool(steps), steps=steps,
                      vm=self.describe(dom, spec, desired, disk_path, steps, vmplan.predicted_state(state, current, steps),
                                       vmplan.predicted_autostart(current, autostart)))
        if self.diff:
            result["diff"] = dict(before=pretty(before_xml) if before_xml else "", after=pretty(after_xml),
                                  before_header="%s (defined)" % spec.name if before_xml else "(none)",
                                  after_header=spec.name)
        return result

    def apply(self, steps, pool, dom, spec, xml, pool_name, stop_timeout):
        """Run ``steps``; when a new VM fails half-way, roll back what this run made and re-raise."""
        virt = self.virt
        try:
            for step in steps:
                if step == vmplan.CREATE_DISK:
                    virt.create_volume(pool, vmplan.volume_xml(vmplan.volume_name(spec.name), spec.disk_gb, spec.image))
                elif step == vmplan.DEFINE:
                    dom = virt.define_domain(xml)
                elif step in (vmplan.AUTOSTART, vmplan.NOAUTOSTART):
                    virt.set_autostart(dom, step == vmplan.AUTOSTART)
                elif step == vmplan.START:
                    virt.start_domain(dom)
                elif step == vmplan.STOP:
                    virt.stop_domain(dom, stop_timeout)
        except KvmfleetError as err:
            if vmplan.CREATE_DISK in steps:
                self.roll_back(spec.name, pool_name, err)
            raise
        return dom

    def roll_back(self, name, pool_name, err):
        """A new VM failed half-way: remove what this run made, so nothing is left behind.

        A fresh connection, and lookups by name: the failed call may have timed out (which
        leaves the first connection unusable) and still have completed inside libvirt.
        """
        undone = []
        try:
            with self.reconnect() as virt:
                dom = virt.find_domain(name)
                if dom is not None and domain_facts(virt.domain_xml(dom, inactive=True))["managed"]:
                    if virt.domain_state(dom) != "shutoff":
                        virt.stop_domain(dom)
                    virt.undefine_domain(dom, keep_nvram=False)
                    undone.append("definition")
                pool = virt.lookup_pool(pool_name)
                volume = virt.lookup_volume(pool, vmplan.volume_name(name)) if pool is not None else None
                if volume is not None:
                    virt.delete_volume(volume)
                    undone.append("disk")
        except KvmfleetError as cleanup_err:
            err.details["cleanup_error"] = str(cleanup_err)
        err.msg = "%s (rolled back: %s)" % (err.msg, "removed the %s it made" % " and ".join(undone)
                                            if undone else "nothing had been made")
        err.details["rolled_back"] = undone

    def describe(self, dom, spec, desired, disk_path, steps, predicted_state, predicted_autostart):
        """The result's ``vm``: as libvirt has it after a real run, as predicted in check mode or for a new VM."""
        virt = self.virt
        vm = dict(name=spec.name, host=virt.hostname(), vcpus=spec.vcpus, vcpus_max=spec.vcpus_max,
                  memory_mb=spec.memory_mb, memory_max_mb=spec.memory_max_mb, disk=disk_path,
                  disk_gb=spec.disk_gb, image=spec.image, mac=desired.interfaces[0].mac, group=spec.group,
                  console=desired.serial_path)
        if dom is not None and not (self.check_mode and steps):
            vm.update(uuid=virt.domain_uuid(dom), state=virt.domain_state(dom), autostart=virt.autostart(dom))
        else:
            vm.update(uuid=None, state=predicted_state, autostart=predicted_autostart)
        return vm

    def volume_gb(self, volume):
        return int(math.ceil(self.virt.volume_capacity(volume) / float(_GIB)))

    # ---- absent

    def remove(self, name):
        """Stop the VM, remove its definition and the disk kvmfleet made for it (never a base image)."""
        virt = self.virt
        dom = virt.find_domain(name)
        if dom is None:
            return dict(changed=False, steps=[], vm=dict(name=name, host=virt.hostname(), state="absent"))
        before_xml = virt.domain_xml(dom, inactive=True)
        facts = domain_facts(before_xml)
        if not facts["managed"]:
            raise NotManaged("a domain named %s exists on this host and was not made by kvmfleet; "
                             "it is left untouched" % name, name=name)
        disk_name = vmplan.volume_name(name)
        ours = [d["path"] for d in facts["disks"] if d["path"] and d["path"].endswith("/" + disk_name)]
        current = dict(managed=True, state=virt.domain_state(dom), autostart=virt.autostart(dom))
        steps = vmplan.plan_vm("absent", current, bool(ours))
        if not self.check_mode:
            volume = None
            if ours:
                pool = virt.pool_for_path(ours[0].rsplit("/", 1)[0])
                volume = virt.lookup_volume(pool, disk_name) if pool is not None else None
            for step in steps:
                if step == vmplan.STOP:
                    virt.stop_domain(dom, 0)
                elif step == vmplan.UNDEFINE:
                    virt.undefine_domain(dom, keep_nvram=False)
                elif step == vmplan.DELETE_DISK and volume is not None:
                    virt.delete_volume(volume)
        result = dict(changed=True, steps=steps,
                      vm=dict(name=name, host=virt.hostname(), state="absent", disk=ours[0] if ours else None))
        if self.diff:
            result["diff"] = dict(before=pretty(before_xml), after="")
        return result
