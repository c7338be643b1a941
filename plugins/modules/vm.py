#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vm
short_description: Create, start, stop and delete a VM with its disk on this hypervisor
version_added: "0.1.0"
description:
  - Brings one libvirt domain and its disk to the requested state on the host it runs on.
  - A new VM gets a qcow2 disk in the storage pool, blank or as an overlay on a base image of the
    pool, and a domain built from typed options (XML made with lxml, validated by libvirt).
  - The domain gets hotplug headroom (I(vcpus_max), I(memory_max_mb)) so it can be scaled live later.
  - It never touches a domain it did not make, never overwrites a disk, and when a step fails after
    the disk was made it removes what it made, so no disk or definition is left behind.
  - On an existing VM it changes only power state and autostart; a request with other sizes is
    refused with the differences (resize with C(kvmfleet.iaas.vm_scale)).
  - C(state=absent) stops the VM, removes its definition and the disk kvmfleet made for it; base
    images are never deleted.
  - Choosing the host, the MAC and the address is the playbook's work (C(create_vm.yml)).
extends_documentation_fragment:
  - kvmfleet.iaas.connection
options:
  name:
    description: VM name, a lower-case hostname label (RFC 1123, at most 63 characters).
    type: str
    required: true
  state:
    description:
      - C(running) defines and starts, C(stopped) defines and shuts off, C(present) defines and
        leaves the power state, C(absent) deletes the VM and its disk.
    type: str
    choices: [present, running, stopped, absent]
    default: running
  vcpus:
    description: vCPUs at start. Required unless I(state=absent).
    type: int
  vcpus_max:
    description: vCPUs the VM can be hot-scaled to; default min(8, host CPUs), at least I(vcpus).
    type: int
  memory_mb:
    description: Memory at start in MiB. Required unless I(state=absent).
    type: int
  memory_max_mb:
    description: Memory the balloon can grow to, in MiB; default 4 x I(memory_mb) capped by host memory and 64 GiB.
    type: int
  disk_gb:
    description: Size of the VM's disk in GiB. Required unless I(state=absent).
    type: int
  image:
    description: Base image in the pool directory; the disk is a qcow2 overlay on it. Blank disk when omitted.
    type: path
  kernel:
    description: Kernel in the pool directory for direct kernel boot.
    type: path
  initrd:
    description: Initramfs in the pool directory; needs I(kernel).
    type: path
  cmdline:
    description: Kernel command line; needs I(kernel).
    type: str
  group:
    description: Affinity group, kept in the domain's kvmfleet metadata for placement.
    type: str
  mac:
    description: MAC address of the NIC; default derived from the name (create_vm.yml passes a cluster-unique one).
    type: str
  bridge:
    description: Host bridge the NIC attaches to.
    type: str
    default: br0
  virt_type:
    description: Domain type; C(qemu) (TCG) where guests cannot use KVM.
    type: str
    choices: [kvm, qemu]
    default: kvm
  cpu_mode:
    description: CPU model; C(auto) is host-model for kvm and QEMU's default for qemu.
    type: str
    choices: [auto, none, host-model, host-passthrough, maximum]
    default: auto
  machine:
    description: Machine type (C(pc), C(q35) or a versioned name); libvirt's default when omitted.
    type: str
  pool:
    description: Storage pool of the disk and the images.
    type: str
    default: kvmfleet
  serial:
    description: Serial console to a file under I(console_dir) (readable after the fact) or a pty.
    type: str
    choices: [file, pty]
    default: file
  console_dir:
    description: Directory of console files.
    type: path
    default: /var/log/libvirt/qemu
  autostart:
    description: Start the VM when the host boots. Left as it is when omitted (off for a new VM).
    type: bool
  stop_timeout:
    description: Seconds an ACPI shutdown may take before the VM is powered off (C(state=stopped)); 0 powers off at once.
    type: float
    default: 60
requirements:
  - libvirt-python (python3-libvirt)
  - lxml
attributes:
  check_mode:
    support: full
    description: Reports the steps it would take and the domain XML it would define.
  diff_mode:
    support: full
    description: Shows the domain XML before and after.
author:
  - kvmfleet developers (@kvmfleet)
"""

EXAMPLES = r"""
- name: A VM from the lab guest image
  kvmfleet.iaas.vm:
    name: web1
    vcpus: 1
    memory_mb: 256
    disk_gb: 1
    image: /srv/kvmfleet/images/lab-guest.qcow2
    kernel: /srv/kvmfleet/images/boot/lab-guest.vmlinuz
    initrd: /srv/kvmfleet/images/boot/lab-guest.initrd
    cmdline: console=ttyS0 loglevel=4
    mac: "52:54:00:12:34:56"
    virt_type: qemu
    state: running

- name: Delete it with its disk
  kvmfleet.iaas.vm:
    name: web1
    state: absent
"""

RETURN = r"""
steps:
  description: What was done (or would be in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [create_disk, define, start]
vm:
  description: The VM after the task; C(state) is C(absent) once deleted.
  returned: always
  type: dict
  contains:
    name:
      description: VM name.
      type: str
      returned: always
    host:
      description: Hostname of the hypervisor.
      type: str
      returned: always
    state:
      description: Power state (running, paused, shutoff, ...), or absent once deleted.
      type: str
      returned: always
    uuid:
      description: Domain UUID; null in check mode for a new VM.
      type: str
      returned: when defined
    vcpus:
      description: vCPUs at start.
      type: int
      returned: when defined
    vcpus_max:
      description: Hotplug maximum.
      type: int
      returned: when defined
    memory_mb:
      description: Memory at start in MiB.
      type: int
      returned: when defined
    memory_max_mb:
      description: Balloon maximum in MiB.
      type: int
      returned: when defined
    disk:
      description: Path of the VM's disk.
      type: str
      returned: when defined
    disk_gb:
      description: Virtual size of the disk in GiB.
      type: int
      returned: when defined
    image:
      description: Base image of the disk, or null.
      type: str
      returned: when defined
    mac:
      description: MAC of the NIC.
      type: str
      returned: when defined
    group:
      description: Affinity group, or null.
      type: str
      returned: when defined
    console:
      description: Console file when the serial console goes to a file, else null.
      type: str
      returned: when defined
    autostart:
      description: Whether the VM starts with the host.
      type: bool
      returned: when defined
"""

import math

from ansible_collections.kvmfleet.iaas.plugins.module_utils import vmplan
from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError, NotManaged, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.macaddr import derive_mac, normalize_mac
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import validate_vm_request
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.diff import diff_domain
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import build_domain_xml, domain_facts, pretty

_GIB = 1024 ** 3
_REQUEST_FIELDS = ("name", "vcpus", "vcpus_max", "memory_mb", "memory_max_mb", "disk_gb", "image",
                   "kernel", "initrd", "cmdline", "group")


class VmModule(KvmfleetModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="running", choices=list(vmplan.STATES)),
        vcpus=dict(type="int"),
        vcpus_max=dict(type="int"),
        memory_mb=dict(type="int"),
        memory_max_mb=dict(type="int"),
        disk_gb=dict(type="int"),
        image=dict(type="path"),
        kernel=dict(type="path"),
        initrd=dict(type="path"),
        cmdline=dict(type="str"),
        group=dict(type="str"),
        mac=dict(type="str"),
        bridge=dict(type="str", default="br0"),
        virt_type=dict(type="str", default="kvm", choices=["kvm", "qemu"]),
        cpu_mode=dict(type="str", default="auto",
                      choices=["auto", "none", "host-model", "host-passthrough", "maximum"]),
        machine=dict(type="str"),
        pool=dict(type="str", default="kvmfleet"),
        serial=dict(type="str", default="file", choices=["file", "pty"]),
        console_dir=dict(type="path", default="/var/log/libvirt/qemu"),
        autostart=dict(type="bool"),
        stop_timeout=dict(type="float", default=60.0),
    )
    module_kwargs = dict(
        required_if=[("state", state, ["vcpus", "memory_mb", "disk_gb"]) for state in ("present", "running", "stopped")],
        supports_check_mode=True,
    )

    def run(self):
        params = self.params
        with self.connect() as virt:
            self.virt = virt
            dom = virt.find_domain(params["name"])
            if params["state"] == "absent":
                return self.absent(dom)
            return self.present(dom)

    # ---- present / running / stopped

    def present(self, dom):
        params, virt = self.params, self.virt
        pool = virt.lookup_pool(params["pool"])
        if pool is None:
            raise ValidationError("storage pool %s does not exist on %s (onboard the node with the setup role)"
                                  % (params["pool"], virt.hostname()), field="pool", value=params["pool"])
        pool_dir = virt.pool_dir(pool)
        host = virt.host_info()
        spec = validate_vm_request(dict((f, params[f]) for f in _REQUEST_FIELDS if params[f] is not None),
                                   host_max_vcpus=host["cpus"], host_memory_mb=host["memory_mb"], pool_dir=pool_dir)
        mac = normalize_mac(params["mac"]) if params["mac"] else derive_mac(spec.name)
        disk_name = vmplan.volume_name(spec.name)
        disk_path = "%s/%s" % (pool_dir.rstrip("/"), disk_name)
        desired = vmplan.desired_domain(spec, disk_path, mac, params["bridge"], params["virt_type"],
                                        params["console_dir"], params["serial"], params["cpu_mode"],
                                        params["machine"])
        volume = virt.lookup_volume(pool, disk_name)
        current, before_xml = None, ""
        if dom is not None:
            before_xml = virt.domain_xml(dom, inactive=True)
            current = dict(managed=domain_facts(before_xml)["managed"], state=virt.domain_state(dom),
                           autostart=virt.autostart(dom))
            capacity = self.volume_gb(volume) if volume is not None else None
            vmplan.check_existing(spec.name, current, diff_domain(desired, before_xml) if current["managed"] else {},
                                  spec.disk_gb, capacity)
        steps = self.plan(params["state"], current, volume is not None, spec.name)
        after_xml = build_domain_xml(desired) if dom is None else before_xml
        if steps and not self.module.check_mode:
            dom = self.apply(steps, pool, dom, spec, after_xml)
        result = dict(changed=bool(steps), steps=steps,
                      vm=self.describe(dom, spec, desired, disk_path, steps, current))
        if self.module._diff:
            result["diff"] = dict(before=pretty(before_xml) if before_xml else "",
                                  after=pretty(after_xml),
                                  before_header="%s (defined)" % spec.name if before_xml else "(none)",
                                  after_header=spec.name)
        return result

    def plan(self, state, current, disk_exists, name):
        try:
            return vmplan.plan_vm(state, current, disk_exists, self.params["autostart"])
        except KvmfleetError as err:
            err.msg = "VM %s: %s" % (name, err.msg)
            raise

    def apply(self, steps, pool, dom, spec, xml):
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
                    virt.stop_domain(dom, self.params["stop_timeout"])
        except KvmfleetError as err:
            if vmplan.CREATE_DISK in steps:
                self.roll_back(spec, err)
            raise
        return dom

    def roll_back(self, spec, err):
        """A new VM failed half-way: remove what this run made, so nothing is left behind.

        A fresh connection, and lookups by name: the failed call may have timed out (which
        leaves the first connection unusable) and still have completed inside libvirt.
        """
        undone = []
        try:
            with self.connect() as virt:
                dom = virt.find_domain(spec.name)
                if dom is not None and domain_facts(virt.domain_xml(dom, inactive=True))["managed"]:
                    if virt.domain_state(dom) != "shutoff":
                        virt.stop_domain(dom)
                    virt.undefine_domain(dom, keep_nvram=False)
                    undone.append("definition")
                pool = virt.lookup_pool(self.params["pool"])
                volume = virt.lookup_volume(pool, vmplan.volume_name(spec.name)) if pool is not None else None
                if volume is not None:
                    virt.delete_volume(volume)
                    undone.append("disk")
        except KvmfleetError as cleanup_err:
            err.details["cleanup_error"] = str(cleanup_err)
        err.msg = "%s (rolled back: %s)" % (err.msg, "removed the %s it made" % " and ".join(undone)
                                            if undone else "nothing had been made")
        err.details["rolled_back"] = undone

    # ---- absent

    def absent(self, dom):
        virt, name = self.virt, self.params["name"]
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
        if not self.module.check_mode:
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
        gone = dict(name=name, host=virt.hostname(), state="absent", disk=ours[0] if ours else None)
        result = dict(changed=True, steps=steps, vm=gone)
        if self.module._diff:
            result["diff"] = dict(before=pretty(before_xml), after="")
        return result

    # ---- results

    def volume_gb(self, volume):
        return int(math.ceil(self.virt.volume_capacity(volume) / float(_GIB)))

    def describe(self, dom, spec, desired, disk_path, steps, current):
        virt = self.virt
        vm = dict(name=spec.name, host=virt.hostname(), vcpus=spec.vcpus, vcpus_max=spec.vcpus_max,
                  memory_mb=spec.memory_mb, memory_max_mb=spec.memory_max_mb, disk=disk_path,
                  disk_gb=spec.disk_gb, image=spec.image, mac=desired.interfaces[0].mac, group=spec.group,
                  console=desired.serial_path)
        if dom is not None and not (self.module.check_mode and steps):
            vm.update(uuid=virt.domain_uuid(dom), state=virt.domain_state(dom), autostart=virt.autostart(dom))
        else:
            vm.update(uuid=None, state=vmplan.predicted_state(self.params["state"], current, steps),
                      autostart=bool(self.params["autostart"]) if current is None
                      else (current["autostart"] if self.params["autostart"] is None else self.params["autostart"]))
        return vm


def main():
    VmModule.execute()


if __name__ == "__main__":
    main()
