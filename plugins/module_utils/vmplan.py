# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the vm module must do to bring a VM to the requested state: pure decisions.

ops/vm.py gathers the current state through the libvirt layer, asks ``plan_vm`` for the steps and runs
them; check mode stops after planning. Imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.spec import (
    DiskSpec,
    DomainSpec,
    InterfaceSpec,
    seed_disk,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, NotManaged

try:
    from lxml import etree
except ImportError:  # the module reports the missing library before using this
    etree = None

STATES = ("present", "running", "stopped", "absent")
# Steps, in the order they run.
CREATE_DISK, WRITE_SEED, DEFINE, AUTOSTART, NOAUTOSTART, START, STOP, UNDEFINE, DELETE_DISK, DELETE_SEED = (
    "create_disk", "write_seed", "define", "autostart", "noautostart", "start", "stop", "undefine", "delete_disk",
    "delete_seed")
# Fields the vm module does not change on an existing VM; each names what does.
_RESIZE_HINT = {
    "vcpus": "kvmfleet.iaas.vm_scale (scale_vm.yml)",
    "memory_mb": "kvmfleet.iaas.vm_scale (scale_vm.yml)",
    "vcpus_max": "scale_vm.yml with allow_restart=true",
    "memory_max_mb": "scale_vm.yml with allow_restart=true",
}


def volume_name(vm_name):
    """The disk kvmfleet makes for a VM: one qcow2 volume named after it in the pool."""
    return "%s.qcow2" % vm_name


def volume_xml(name, capacity_gb, backing=None):
    """A qcow2 volume, blank or as an overlay on ``backing`` (a base image in the pool)."""
    volume = etree.Element("volume")
    etree.SubElement(volume, "name").text = name
    etree.SubElement(volume, "capacity", unit="GiB").text = str(int(capacity_gb))
    target = etree.SubElement(volume, "target")
    etree.SubElement(target, "format", type="qcow2")
    if backing:
        store = etree.SubElement(volume, "backingStore")
        etree.SubElement(store, "path").text = backing
        etree.SubElement(store, "format", type="qcow2")
    return etree.tostring(volume, encoding="unicode")


def desired_domain(spec, disk_path, mac, bridge, domain_type, console_dir, serial="file",
                   cpu_mode="auto", machine=None, seed_path=None, seed_digest=None, tenant=None):
    """The DomainSpec of a validated request (vmspec.VmSpec) on this host: its disk, the
    cloud-init seed when there is one, and the guest agent's channel (every new VM has it)."""
    disks = (DiskSpec(path=disk_path),) + ((seed_disk(seed_path),) if seed_path else ())
    return DomainSpec(
        name=spec.name, vcpus=spec.vcpus, vcpus_max=spec.vcpus_max, memory_mb=spec.memory_mb,
        memory_max_mb=spec.memory_max_mb, domain_type=domain_type, machine=machine,
        kernel=spec.kernel, initrd=spec.initrd, cmdline=spec.cmdline, cpu_mode=cpu_mode,
        disks=disks, interfaces=(InterfaceSpec(mac=mac, source=bridge),),
        serial=serial,
        serial_path=os.path.join(console_dir, "%s-console.log" % spec.name) if serial == "file" else None,
        guest_agent=True, group=spec.group, seed_digest=seed_digest, tenant=tenant)


def check_existing(name, current, differences, disk_gb=None, disk_capacity_gb=None):
    """Refuse to touch a domain we did not make, or to silently reshape one we did."""
    if not current["managed"]:
        raise NotManaged("a domain named %s exists on this host and was not made by kvmfleet; "
                         "it is left untouched (choose another name)" % name, name=name)
    if "tenant" in differences:
        # whose it is, is not the asker's business (docs/tenancy.md): only that the name is taken
        raise Conflict("the name %s is taken on this host; choose another" % name, name=name)
    problems = []
    for field in sorted(differences):
        change = differences[field]
        hint = _RESIZE_HINT.get(field)
        how = " (change it with %s)" % hint if hint else ""
        problems.append("%s is %r, asked %r%s" % (field, change["actual"], change["desired"], how))
    if disk_gb is not None and disk_capacity_gb is not None and disk_capacity_gb != disk_gb:
        problems.append("disk_gb is %s, asked %s (disks are not resized)" % (disk_capacity_gb, disk_gb))
    if problems:
        raise Conflict("VM %s exists on this host with other settings: %s" % (name, "; ".join(problems)),
                       name=name, differences=differences)


def plan_seed(current, wanted_digest, actual_digest, seed_exists):
    """[WRITE_SEED] when a seed is wanted and the VM has none yet, another one, or lost its file."""
    if wanted_digest is None:
        return []
    if current is None or wanted_digest != actual_digest or not seed_exists:
        return [WRITE_SEED]
    return []


def plan_vm(state, current, disk_exists, autostart=None, seed_steps=()):
    """Steps from ``current`` (None, or {managed, state, autostart}) to ``state``.

    ``disk_exists`` says whether the VM's volume exists. A new VM whose volume already exists is
    refused: the volume is someone else's (another host's VM of that name on shared storage, or
    data to keep), and kvmfleet never overwrites a disk.
    """
    steps = []
    if state == "absent":
        if current is None:
            return steps
        if current["state"] != "shutoff":
            steps.append(STOP)
        steps.append(UNDEFINE)
        if disk_exists:
            steps.append(DELETE_DISK)
        steps += list(seed_steps)
        return steps
    if current is None:
        if disk_exists:
            raise Conflict("its disk already exists and no VM of that name is defined on this host; "
                           "kvmfleet never overwrites a disk (remove it, or pick another name)")
        steps += [CREATE_DISK] + list(seed_steps) + [DEFINE]
        power = "shutoff"
        enabled = False
    else:
        steps += list(seed_steps)
        power = current["state"]
        enabled = current["autostart"]
    if autostart is not None and bool(autostart) != enabled:
        steps.append(AUTOSTART if autostart else NOAUTOSTART)
    if state == "running" and power not in ("running", "paused"):
        steps.append(START)
    if state == "stopped" and power != "shutoff":
        steps.append(STOP)
    return steps


def predicted_autostart(current, autostart=None):
    """Autostart after the plan: as asked, else as it is (off for a new VM)."""
    if current is None:
        return bool(autostart)
    return current["autostart"] if autostart is None else autostart


def predicted_state(state, current, steps):
    """Power state after ``steps`` (for check mode and the result)."""
    if state == "absent":
        return "absent"
    if START in steps:
        return "running"
    if STOP in steps:
        return "shutoff"
    return current["state"] if current else "shutoff"
