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
      - C(running) or C(stopped) without I(vcpus), I(memory_mb) and I(disk_gb) only starts or stops
        a VM that exists (power_vm.yml), changing nothing else; a VM that does not exist is refused.
    type: str
    choices: [present, running, stopped, absent]
    default: running
  vcpus:
    description: vCPUs at start. Required to create a VM and with I(state=present).
    type: int
  vcpus_max:
    description: vCPUs the VM can be hot-scaled to; default min(8, host CPUs), at least I(vcpus).
    type: int
  memory_mb:
    description: Memory at start in MiB. Required to create a VM and with I(state=present).
    type: int
  memory_max_mb:
    description: Memory the balloon can grow to, in MiB; default 4 x I(memory_mb) capped by host memory and 64 GiB.
    type: int
  disk_gb:
    description: Size of the VM's disk in GiB. Required to create a VM and with I(state=present).
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
  ssh_authorized_keys:
    description:
      - Public SSH keys (one C(authorized_keys) line each, without options) for the guest's default
        user, given to cloud-init through a NoCloud seed (see docs/cloud-init.md).
      - Any cloud-init option makes a seed, C(NAME-seed.iso) beside the disk, attached read-only;
        a changed option rewrites it in place and is reported as a change.
    type: list
    elements: str
  user_data:
    description:
      - cloud-config (first line C(#cloud-config)), at most 64 KiB, no passwords in clear. Merged with
        I(ssh_authorized_keys) and I(hostname).
    type: str
  hostname:
    description: The guest's hostname, an RFC 1123 label; default the VM's name (with a seed).
    type: str
  tenant:
    description:
      - The tenant that owns a new VM, kept in its kvmfleet metadata (docs/tenancy.md); none for the operator's.
      - A VM of that name owned by someone else is refused as a taken name, without saying whose.
      - With I(state=absent), or to start or stop only, a VM owned by someone else is treated as one
        that does not exist (nothing is deleted; starting or stopping it is refused as not found).
    type: str
  ipv4:
    description: A fixed address the guest configures itself (cloud-init network-config version 2).
    type: dict
    suboptions:
      address:
        description: The address.
        type: str
        required: true
      network:
        description: The VM network in CIDR form.
        type: str
        required: true
      gateway:
        description: Default gateway.
        type: str
      nameservers:
        description: DNS servers.
        type: list
        elements: str
requirements:
  - libvirt-python (python3-libvirt)
  - lxml
  - cloud-image-utils (C(cloud-localds)) on the host and PyYAML, for a cloud-init seed
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
    seed:
      description: Path of the VM's cloud-init seed, or null.
      type: str
      returned: when defined
    autostart:
      description: Whether the VM starts with the host.
      type: bool
      returned: when defined
"""

from ansible_collections.kvmfleet.iaas.plugins.module_utils import vmplan
from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.ops.seed import SeedMaker
from ansible_collections.kvmfleet.iaas.plugins.module_utils.ops.vm import VmOps

_REQUEST_FIELDS = ("name", "vcpus", "vcpus_max", "memory_mb", "memory_max_mb", "disk_gb", "image",
                   "kernel", "initrd", "cmdline", "group")
# module option -> keyword of vmplan.desired_domain
_SIZES = ("vcpus", "memory_mb", "disk_gb")     # all three make a VM; none: power only
_CLOUD_INIT_FIELDS = ("ssh_authorized_keys", "user_data", "hostname", "ipv4")
_DOMAIN_OPTIONS = dict(bridge="bridge", virt_type="domain_type", console_dir="console_dir", serial="serial",
                       cpu_mode="cpu_mode", machine="machine", tenant="tenant")


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
        ssh_authorized_keys=dict(type="list", elements="str", no_log=False),
        user_data=dict(type="str", no_log=True),
        hostname=dict(type="str"),
        tenant=dict(type="str"),
        ipv4=dict(type="dict", options=dict(address=dict(type="str", required=True), network=dict(type="str", required=True),
                                            gateway=dict(type="str"), nameservers=dict(type="list", elements="str"))),
    )
    module_kwargs = dict(
        required_if=[("state", "present", ["vcpus", "memory_mb", "disk_gb"])],
        supports_check_mode=True,
    )

    def run(self):
        params = self.params
        with self.connect() as virt:
            ops = VmOps(virt, self.connect, check_mode=self.module.check_mode, diff=self.module._diff,
                        seeds=SeedMaker(self.module.run_command, self.module.get_bin_path))
            if params["state"] == "absent":
                return ops.remove(params["name"], tenant=params["tenant"])
            given = [size for size in _SIZES if params[size] is not None]
            if given and len(given) < len(_SIZES):
                raise ValidationError("give all of %s to make or check a VM, or none of them to only start or stop it; "
                                      "got only %s" % (", ".join(_SIZES), ", ".join(given)), field=given[0])
            if not given:     # start or stop only
                return ops.power(params["name"], params["state"], tenant=params["tenant"],
                                 autostart=params["autostart"], stop_timeout=params["stop_timeout"])
            return ops.ensure(params["state"], dict((f, params[f]) for f in _REQUEST_FIELDS if params[f] is not None),
                              params["pool"], dict((kw, params[opt]) for opt, kw in _DOMAIN_OPTIONS.items()),
                              mac=params["mac"], autostart=params["autostart"], stop_timeout=params["stop_timeout"],
                              cloud_init=dict((f, params[f]) for f in _CLOUD_INIT_FIELDS))


def main():
    VmModule.execute()


if __name__ == "__main__":
    main()
