# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Policy check of user-submitted libvirt domain XML.

A customer may bring a domain XML with their disk image. It is never handed to libvirt: it is
parsed with a hardened parser, checked element by element against an allow list, and what is
kept becomes a ``DomainSpec`` from which ``xml.domain.build_domain_xml`` writes our own XML.
Anything that can reach the host (device passthrough, host files outside the pool or the
console directory, sockets, qemu command-line passthrough, emulator overrides, scripts) is
refused with a ValidationError naming the element; harmless elements we do not carry (input,
video, controllers, addresses, seclabels, ...) are listed in ``Sanitized.ignored`` so the
caller can tell the customer they were dropped.

Not covered here: the image's own qcow2 header may name a backing file anywhere on the host;
the image import must check the backing chain (``qemu-img info --backing-chain``) or flatten it.

Pure logic: imports neither Ansible nor libvirt. See docs/vm-definition.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.macaddr import normalize_mac
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import (
    CMDLINE_MAX_BYTES,
    Limits,
    check_name,
    coerce_int,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.parser import etree, parse_xml
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.spec import (
    GUEST_AGENT_CHANNEL,
    DiskSpec,
    DomainSpec,
    InterfaceSpec,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.units import MIB, UNIT_BYTES, unit_name

QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"

# Top-level elements: kept (read below), or dropped because ours replace them and they cannot
# reach the host when dropped. Anything else is refused.
_TOP_KEPT = frozenset(("name", "memory", "currentMemory", "vcpu", "os", "devices",
                       "on_poweroff", "on_reboot", "on_crash"))
_TOP_IGNORED = frozenset(("uuid", "genid", "title", "description", "metadata", "features", "cpu", "clock", "pm",
                          "seclabel", "vcpus", "iothreads", "cputune", "numatune", "memtune", "blkiotune",
                          "resource", "memoryBacking", "sysinfo", "keywrap", "maxMemory"))
_DEVICES_IGNORED = frozenset(("controller", "input", "video", "graphics", "sound", "audio", "watchdog", "panic",
                              "rng", "console"))
_DEVICES_REFUSED = {
    "emulator": "an emulator override runs a host binary of the customer's choosing",
    "hostdev": "host device passthrough exposes host hardware",
    "filesystem": "filesystem passthrough exposes a host directory",
    "smartcard": "smartcard passthrough uses host devices",
    "redirdev": "USB redirection uses host channels",
    "redirfilter": "USB redirection uses host channels",
    "parallel": "parallel ports are character devices on the host",
    "shmem": "shared memory is a host object",
    "tpm": "TPM passthrough or emulation uses host state",
    "vsock": "vsock opens a channel to the host",
    "memory": "memory devices can be backed by host files",
    "crypto": "crypto devices use host backends",
    "iommu": "not supported",
    "hub": "not supported",
    "lease": "lockd leases are host files",
}
_OS_IGNORED = frozenset(("boot", "bootmenu", "smbios", "bios", "acpi"))
_MACHINE_RE = re.compile(r"^(pc|q35|pc-i440fx-[0-9.]+|pc-q35-[0-9.]+)$")
_DISK_BUSES = ("virtio", "sata", "scsi")
_DISK_FORMATS = ("qcow2", "raw")
_NIC_MODELS = ("virtio", "e1000", "e1000e", "rtl8139")


@dataclass(frozen=True)
class XmlPolicy:
    """What user XML may refer to on the host.

    ``pool_dir``: disks, kernels and initrds must resolve inside it. ``bridges``: the only
    bridges an interface may join. ``console_dir``: where a file-backed serial console may
    write (None: file consoles refused, pty only). ``resolve_path``/``path_exists`` are
    injectable for tests, as in vmspec.
    """

    pool_dir: str
    bridges: Tuple[str, ...] = ("br0",)
    console_dir: Optional[str] = None
    domain_types: Tuple[str, ...] = ("kvm", "qemu")
    max_bytes: int = 256 * 1024
    limits: Limits = field(default_factory=Limits)
    resolve_path: Callable = os.path.realpath
    path_exists: Callable = os.path.isfile


@dataclass(frozen=True)
class Sanitized:
    """The spec built from what was kept, and the paths of elements dropped as harmless."""

    spec: DomainSpec
    ignored: Tuple[str, ...] = ()


def _where(element):
    return element.getroottree().getpath(element)


def _refuse(element, rule, value=None):
    where = _where(element)
    raise ValidationError("domain XML %s: %s" % (where, rule), field=where, value=value)


def _inside(path, directory, resolve_path):
    base = resolve_path(directory)
    resolved = resolve_path(path)
    return resolved if os.path.commonpath([base, resolved]) == base and resolved != base else None


def _pool_file(element, path, policy, what):
    if not path or not os.path.isabs(path) or "\x00" in path:
        _refuse(element, "%s must be an absolute path" % what, path)
    resolved = _inside(path, policy.pool_dir, policy.resolve_path)
    if resolved is None:
        _refuse(element, "%s %s is outside the storage pool %s" % (what, path, policy.pool_dir), path)
    if not policy.path_exists(resolved):
        _refuse(element, "%s %s does not exist in the storage pool" % (what, path), path)
    return resolved


def _check_namespaces(root):
    """No element or attribute from another namespace outside <metadata> (qemu:commandline,
    qemu:capabilities, qemu:override pass arguments straight to qemu)."""
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if any(ancestor.tag == "metadata" and ancestor.getparent() is root for ancestor in element.iterancestors()):
            continue
        namespace = etree.QName(element).namespace
        if namespace == QEMU_NS:
            _refuse(element, "qemu namespace elements (qemu:commandline and the like) are not allowed")
        if namespace is not None:
            _refuse(element, "elements of namespace %s are not allowed outside <metadata>" % namespace)
        for attribute in element.attrib:
            if etree.QName(attribute).namespace is not None:
                _refuse(element, "namespaced attribute %s is not allowed" % attribute)


def sanitize_domain_xml(xml, policy):
    """Check untrusted domain XML against ``policy``; return ``Sanitized`` or raise ValidationError."""
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    if len(data) > policy.max_bytes:
        raise ValidationError("domain XML is %d bytes, more than the %d allowed" % (len(data), policy.max_bytes),
                              field="xml")
    root = parse_xml(data)
    if root.tag != "domain":
        raise ValidationError("domain XML: root element is <%s>, not <domain>" % root.tag, field="xml")
    _check_namespaces(root)
    if root.get("type") not in policy.domain_types:
        _refuse(root, "domain type %r is not one of %s" % (root.get("type"), ", ".join(policy.domain_types)),
                root.get("type"))
    ignored = []
    for child in root:
        if not isinstance(child.tag, str):
            continue
        if child.tag in _TOP_IGNORED:
            ignored.append(_where(child))
        elif child.tag not in _TOP_KEPT:
            _refuse(child, "element <%s> is not allowed" % child.tag)

    name = check_name(root.findtext("name"))
    limits = policy.limits
    vcpu = root.find("vcpu")
    if vcpu is None:
        _refuse(root, "<vcpu> is required")
    vcpus_max = coerce_int("vcpu", (vcpu.text or "").strip(), 1, limits.vcpus_ceiling)
    vcpus = coerce_int("vcpu current", vcpu.get("current", vcpus_max), 1, vcpus_max)
    memory_max_mb = _memory_mb(root, "memory", required=True, limits=limits)
    memory_mb = _memory_mb(root, "currentMemory", required=False, limits=limits) or memory_max_mb
    if memory_mb > memory_max_mb:
        _refuse(root.find("currentMemory"), "currentMemory is larger than memory")

    os_fields = _check_os(root.find("os"), policy, ignored)
    devices = root.find("devices")
    device_fields = _check_devices(devices if devices is not None else etree.Element("devices"), policy, ignored)
    lifecycle = {}
    for action in ("on_poweroff", "on_reboot", "on_crash"):
        value = root.findtext(action)
        if value is not None:
            if value.strip() not in ("destroy", "restart"):
                _refuse(root.find(action), "%s must be destroy or restart" % action, value)
            lifecycle[action] = value.strip()

    spec = DomainSpec(name=name, vcpus=vcpus, vcpus_max=vcpus_max, memory_mb=memory_mb, memory_max_mb=memory_max_mb,
                      domain_type=root.get("type"), **dict(os_fields, **dict(device_fields, **lifecycle)))
    return Sanitized(spec=spec, ignored=tuple(ignored))


# Binary units only: a decimal KB/MB in user XML is more likely a mistake than meant.
_ALLOWED_UNITS = ("k", "kib", "m", "mib", "g", "gib", "t", "tib")


def _memory_mb(root, tag, required, limits):
    element = root.find(tag)
    if element is None:
        if required:
            _refuse(root, "<%s> is required" % tag)
        return None
    unit = unit_name(element)
    if unit not in _ALLOWED_UNITS:
        _refuse(element, "memory unit %r is not one of KiB, MiB, GiB, TiB" % element.get("unit"))
    amount = coerce_int(tag, (element.text or "").strip(), 1)
    mb = amount * UNIT_BYTES[unit] // MIB
    if not limits.memory_min_mb <= mb <= limits.memory_ceiling_mb:
        _refuse(element, "%d MiB is outside %d..%d MiB" % (mb, limits.memory_min_mb, limits.memory_ceiling_mb), mb)
    return mb


def _check_os(os_element, policy, ignored):
    if os_element is None:
        return {}
    fields = {}
    if os_element.get("firmware"):
        _refuse(os_element, "firmware selection is not supported", os_element.get("firmware"))
    for child in os_element:
        if not isinstance(child.tag, str):
            continue
        if child.tag == "type":
            if (child.text or "").strip() != "hvm":
                _refuse(child, "os type must be hvm", child.text)
            if child.get("arch", "x86_64") != "x86_64":
                _refuse(child, "arch must be x86_64", child.get("arch"))
            machine = child.get("machine")
            if machine is not None and not _MACHINE_RE.match(machine):
                _refuse(child, "machine %r is not pc, q35 or a versioned pc-i440fx/pc-q35" % machine, machine)
            fields["machine"] = machine
        elif child.tag in ("kernel", "initrd"):
            fields[child.tag] = _pool_file(child, (child.text or "").strip(), policy, child.tag)
        elif child.tag == "cmdline":
            text = child.text or ""
            if any(ord(ch) < 0x20 or ch == "\x7f" for ch in text) or len(text.encode("utf-8")) > CMDLINE_MAX_BYTES:
                _refuse(child, "cmdline must be one line of at most %d bytes" % CMDLINE_MAX_BYTES)
            fields["cmdline"] = text
        elif child.tag in _OS_IGNORED:
            ignored.append(_where(child))
        else:
            # loader, nvram, dtb, init*: host files or container settings
            _refuse(child, "<%s> is not allowed" % child.tag)
    if "kernel" not in fields and ("initrd" in fields or "cmdline" in fields):
        _refuse(os_element, "initrd and cmdline need a kernel")
    return fields


def _check_devices(devices, policy, ignored):
    disks, nics = [], []
    fields = dict(serial="none", serial_path=None, guest_agent=False, balloon=False, balloon_period=0)
    for device in devices:
        if not isinstance(device.tag, str):
            continue
        tag = device.tag
        if tag in _DEVICES_REFUSED:
            _refuse(device, "<%s> is not allowed: %s" % (tag, _DEVICES_REFUSED[tag]))
        elif tag == "disk":
            disks.append(_check_disk(device, policy))
        elif tag == "interface":
            nics.append(_check_interface(device, policy))
        elif tag == "serial":
            if fields["serial"] != "none":
                _refuse(device, "only one serial port is supported")
            fields["serial"], fields["serial_path"] = _check_chardev(device, policy)
        elif tag == "channel":
            _check_agent_channel(device)
            fields["guest_agent"] = True
        elif tag == "memballoon":
            model = device.get("model")
            if model not in ("virtio", "none"):
                _refuse(device, "memballoon model must be virtio or none", model)
            fields["balloon"] = model == "virtio"
            stats = device.find("stats")
            if fields["balloon"]:
                fields["balloon_period"] = coerce_int("memballoon stats period",
                                                      stats.get("period") if stats is not None else 10, 0, 3600)
        elif tag in _DEVICES_IGNORED:
            if tag == "console":
                _check_chardev(device, policy)   # a console can name a host path too
            ignored.append(_where(device))
        else:
            _refuse(device, "device <%s> is not allowed" % tag)
    fields["disks"] = tuple(disks)
    fields["interfaces"] = tuple(nics)
    return fields


def _check_disk(disk, policy):
    if disk.get("type") != "file":
        _refuse(disk, "only file disks are allowed (type=%r: block devices, network and volumes reach outside "
                      "the pool)" % disk.get("type"), disk.get("type"))
    if disk.get("device", "disk") not in ("disk", "cdrom"):
        _refuse(disk, "disk device %r is not allowed" % disk.get("device"), disk.get("device"))
    if disk.find(".//backingStore/source") is not None:
        _refuse(disk.find(".//backingStore"), "backing stores are taken from the image, not from XML")
    source = disk.find("source")
    if source is None or not source.get("file"):
        _refuse(disk, "a disk needs <source file=...> inside the storage pool")
    for attribute in source.attrib:
        if attribute not in ("file", "index", "startupPolicy"):
            _refuse(source, "source attribute %r is not allowed" % attribute)
    path = _pool_file(source, source.get("file"), policy, "disk")
    driver = disk.find("driver")
    disk_format = driver.get("type", "raw") if driver is not None else "raw"
    if driver is not None and driver.get("name", "qemu") != "qemu":
        _refuse(driver, "disk driver must be qemu", driver.get("name"))
    if disk_format not in _DISK_FORMATS:
        _refuse(driver, "disk format must be one of %s" % ", ".join(_DISK_FORMATS), disk_format)
    target = disk.find("target")
    if target is None or not target.get("dev"):
        _refuse(disk, "a disk needs <target dev=...>")
    bus = target.get("bus", "virtio")
    if bus not in _DISK_BUSES:
        _refuse(target, "disk bus must be one of %s" % ", ".join(_DISK_BUSES), bus)
    return DiskSpec(path=path, target=target.get("dev"), bus=bus, format=disk_format, device=disk.get("device", "disk"))


def _check_interface(nic, policy):
    if nic.get("type") != "bridge":
        _refuse(nic, "interfaces must be type='bridge' (got %r)" % nic.get("type"), nic.get("type"))
    for child in nic:
        if isinstance(child.tag, str) and child.tag in ("script", "downscript", "backend", "ip", "route"):
            _refuse(child, "<%s> in an interface configures the host side" % child.tag)
    source = nic.find("source")
    bridge = source.get("bridge") if source is not None else None
    if bridge not in policy.bridges:
        _refuse(nic, "bridge %r is not one of %s" % (bridge, ", ".join(policy.bridges)), bridge)
    mac_element = nic.find("mac")
    mac = None
    if mac_element is not None:
        mac = normalize_mac(mac_element.get("address"))
        if int(mac[:2], 16) & 1:
            _refuse(mac_element, "MAC %s is a multicast address" % mac, mac)
    model = nic.find("model")
    model_type = model.get("type") if model is not None else "virtio"
    if model_type not in _NIC_MODELS:
        _refuse(model, "NIC model must be one of %s" % ", ".join(_NIC_MODELS), model_type)
    return InterfaceSpec(mac=mac, source=bridge, model=model_type)


def _check_chardev(device, policy):
    """(type, path) of a serial/console: pty, or a file inside ``policy.console_dir``."""
    kind = device.get("type", "pty")
    for log in device.findall("log"):
        _console_file(log, log.get("file"), policy)
    if kind == "pty":
        return "pty", None
    if kind == "file":
        source = device.find("source")
        return "file", _console_file(device, source.get("path") if source is not None else None, policy)
    _refuse(device, "%s type %r is not allowed (only pty, or file in the console directory); sockets, host "
                    "devices and pipes reach the host" % (device.tag, kind), kind)


def _console_file(element, path, policy):
    if policy.console_dir is None:
        _refuse(element, "file consoles are not allowed here; use type='pty'", path)
    if not path or not os.path.isabs(path):
        _refuse(element, "console file must be an absolute path", path)
    if _inside(path, policy.console_dir, policy.resolve_path) is None:
        _refuse(element, "console file %s is outside %s" % (path, policy.console_dir), path)
    return policy.resolve_path(path)


def _check_agent_channel(channel):
    target = channel.find("target")
    if (channel.get("type") != "unix" or target is None or target.get("type") != "virtio"
            or target.get("name") != GUEST_AGENT_CHANNEL):
        _refuse(channel, "only the qemu guest agent channel (unix, virtio, %s) is allowed" % GUEST_AGENT_CHANNEL)
    if channel.find("source") is not None:
        _refuse(channel.find("source"), "the guest agent socket path is chosen by libvirt, not by the XML")
