# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt domain XML: build it from a ``DomainSpec`` (spec.py), read it back.

``build_domain_xml(spec)`` makes the XML with lxml (values are escaped by lxml, never pasted
into text). ``parse_domain(xml)`` reads any domain XML (ours, or one libvirt dumped with its
addresses, aliases, controllers and seclabels) back into a ``DomainSpec``; diff.py compares
the two. ``parse_domain_xml(xml)`` reads the fields the hypervisor facts need (facts.py).
Our metadata element is metadata.py's.

Pure logic: imports neither Ansible nor libvirt. See docs/vm-definition.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import uuid as uuid_module

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.metadata import (
    INSTANCE_PATH,
    build_metadata_element,
    parse_metadata,
    read_instance,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.parser import etree, parse_xml
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.spec import (
    GUEST_AGENT_CHANNEL,
    DiskSpec,
    DomainSpec,
    InterfaceSpec,
    check_spec,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.units import KIB, MIB, size_bytes, size_mb


# --------------------------------------------------------------------------- building

def _sub(parent, tag, text=None, **attrs):
    element = etree.SubElement(parent, tag, {k.rstrip("_"): str(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        element.text = str(text)
    return element


def build_domain(spec):
    """The ``<domain>`` lxml element for ``spec`` (checked first)."""
    check_spec(spec)
    domain = etree.Element("domain", type=spec.domain_type)
    _sub(domain, "name", spec.name)
    if spec.uuid is not None:
        _sub(domain, "uuid", str(uuid_module.UUID(spec.uuid)))
    metadata = _sub(domain, "metadata")
    metadata.append(build_metadata_element(spec.group, spec.annotations, spec.seed_digest, spec.tenant))

    # Memory moves through the balloon: the guest is given the maximum, the balloon holds the
    # rest back. DIMM hotplug (<maxMemory slots>) would need a NUMA topology and cannot unplug
    # reliably.
    _sub(domain, "memory", spec.effective_memory_max_mb * KIB, unit="KiB")
    _sub(domain, "currentMemory", spec.memory_mb * KIB, unit="KiB")
    vcpus_max = spec.effective_vcpus_max
    # libvirt drops current= when it equals the maximum; do the same so read-backs match.
    _sub(domain, "vcpu", vcpus_max, placement="static", current=spec.vcpus if spec.vcpus < vcpus_max else None)

    os_element = _sub(domain, "os")
    _sub(os_element, "type", "hvm", arch=spec.arch, machine=spec.machine)
    if spec.kernel is not None:
        _sub(os_element, "kernel", spec.kernel)
        if spec.initrd is not None:
            _sub(os_element, "initrd", spec.initrd)
        if spec.cmdline is not None:
            _sub(os_element, "cmdline", spec.cmdline)
    else:
        _sub(os_element, "boot", dev="hd")

    # ACPI: graceful shutdown and vCPU hotplug go through it.
    features = _sub(domain, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    cpu_mode = spec.effective_cpu_mode
    if cpu_mode != "none":
        _sub(domain, "cpu", mode=cpu_mode, check="partial" if cpu_mode == "host-model" else None)
    clock = _sub(domain, "clock", offset="utc")
    # Timer policy virt-install uses for Linux guests: no lost-tick storms after a pause.
    _sub(clock, "timer", name="rtc", tickpolicy="catchup")
    _sub(clock, "timer", name="pit", tickpolicy="delay")
    _sub(clock, "timer", name="hpet", present="no")
    _sub(domain, "on_poweroff", spec.on_poweroff)
    _sub(domain, "on_reboot", spec.on_reboot)
    _sub(domain, "on_crash", spec.on_crash)

    devices = _sub(domain, "devices")
    for disk in spec.disks:
        disk_element = _sub(devices, "disk", type="file", device=disk.device)
        _sub(disk_element, "driver", name="qemu", type=disk.format, cache=disk.cache)
        _sub(disk_element, "source", file=disk.path)
        _sub(disk_element, "target", dev=disk.target, bus=disk.bus)
        if disk.device == "cdrom":
            _sub(disk_element, "readonly")
    if any(disk.bus == "scsi" for disk in spec.disks):
        # libvirt's own default would be an emulated LSI controller
        _sub(devices, "controller", type="scsi", index="0", model="virtio-scsi")
    for nic in spec.interfaces:
        nic_element = _sub(devices, "interface", type=nic.kind)
        _sub(nic_element, "mac", address=nic.mac.lower())
        _sub(nic_element, "source", **{_SOURCE_ATTR.get(nic.kind, "bridge"): nic.source})
        _sub(nic_element, "model", type=nic.model)
    if spec.serial != "none":
        for tag, target in (("serial", dict(port="0")), ("console", dict(type_="serial", port="0"))):
            element = _sub(devices, tag, type=spec.serial)
            if spec.serial == "file":
                _sub(element, "source", path=spec.serial_path)
            _sub(element, "target", **target)
    if spec.guest_agent:
        channel = _sub(devices, "channel", type="unix")
        _sub(channel, "target", type_="virtio", name=GUEST_AGENT_CHANNEL)
    if spec.balloon:
        balloon = _sub(devices, "memballoon", model="virtio")
        if spec.balloon_period:
            _sub(balloon, "stats", period=spec.balloon_period)
    else:
        _sub(devices, "memballoon", model="none")
    return domain


_SOURCE_ATTR = {"bridge": "bridge", "network": "network", "direct": "dev"}


def build_domain_xml(spec):
    """``spec`` as pretty-printed domain XML text."""
    return etree.tostring(build_domain(spec), pretty_print=True, encoding="unicode")


# --------------------------------------------------------------------------- reading

def _text(element, path):
    value = element.findtext(path)
    return value.strip() if value is not None and value.strip() else None


def parse_domain(xml):
    """Any domain XML -> DomainSpec with what is there (defaults where an element is absent)."""
    root = parse_xml(xml)
    if root.tag != "domain":
        raise ValidationError("not a domain XML: root element is <%s>" % root.tag, field="xml")
    vcpu = root.find("vcpu")
    vcpus_max = int(vcpu.text.strip()) if vcpu is not None and (vcpu.text or "").strip() else 1
    vcpus = int(vcpu.get("current")) if vcpu is not None and vcpu.get("current") else vcpus_max
    memory_max_mb = size_mb(root.find("memory"))
    memory_mb = size_mb(root.find("currentMemory"))
    if memory_mb is None:
        memory_mb = memory_max_mb
    os_type = root.find("os/type")
    cpu = root.find("cpu")
    instance = read_instance(root)
    devices = root.find("devices")
    if devices is None:
        devices = etree.Element("devices")

    serial = devices.find("serial")
    if serial is None:
        serial_type, serial_path = "none", None
    else:
        serial_type = serial.get("type", "pty")
        serial_path = serial.find("source").get("path") if serial.find("source") is not None else None
        if serial_type == "pty":
            serial_path = None  # the live XML names the allocated /dev/pts/N
    balloon = devices.find("memballoon")
    balloon_on = balloon is not None and balloon.get("model") != "none"
    period = balloon.find("stats").get("period") if balloon_on and balloon.find("stats") is not None else None

    return DomainSpec(
        name=_text(root, "name"),
        uuid=_text(root, "uuid"),
        domain_type=root.get("type"),
        vcpus=vcpus,
        vcpus_max=vcpus_max,
        memory_mb=memory_mb,
        memory_max_mb=memory_max_mb,
        arch=os_type.get("arch") if os_type is not None else None,
        machine=os_type.get("machine") if os_type is not None else None,
        kernel=_text(root, "os/kernel"),
        initrd=_text(root, "os/initrd"),
        cmdline=root.findtext("os/cmdline"),
        cpu_mode="none" if cpu is None else cpu.get("mode", "custom"),
        disks=tuple(_parse_disk(disk) for disk in devices.findall("disk")),
        interfaces=tuple(_parse_interface(nic) for nic in devices.findall("interface")),
        serial=serial_type,
        serial_path=serial_path,
        guest_agent=any(target.get("name") == GUEST_AGENT_CHANNEL for target in devices.findall("channel/target")),
        balloon=balloon_on,
        balloon_period=int(period) if period else 0,
        on_poweroff=_text(root, "on_poweroff") or "destroy",
        on_reboot=_text(root, "on_reboot") or "restart",
        on_crash=_text(root, "on_crash") or "destroy",
        group=instance.group,
        annotations=instance.annotations,
        managed=instance.managed,
        seed_digest=instance.seed_digest,
        tenant=instance.tenant,
    )


def _parse_disk(disk):
    source = disk.find("source")
    path = None
    if source is not None:
        path = source.get("file") or source.get("dev") or source.get("dir") or source.get("name")
        if path is None and source.get("volume"):
            path = "%s/%s" % (source.get("pool"), source.get("volume"))
    target = disk.find("target")
    driver = disk.find("driver")
    return DiskSpec(path=path,
                    target=target.get("dev") if target is not None else None,
                    bus=target.get("bus") if target is not None else None,
                    format=driver.get("type") if driver is not None else None,
                    cache=driver.get("cache") if driver is not None else None,
                    device=disk.get("device", "disk"))


def _parse_interface(nic):
    kind = nic.get("type")
    source = nic.find("source")
    source_name = None
    if source is not None:
        source_name = source.get(_SOURCE_ATTR.get(kind, "bridge")) or source.get("bridge") or source.get("network")
    mac = nic.find("mac")
    model = nic.find("model")
    return InterfaceSpec(mac=mac.get("address").lower() if mac is not None and mac.get("address") else None,
                         source=source_name, model=model.get("type") if model is not None else None, kind=kind)


def domain_facts(xml):
    """The fact fields (docs/architecture.md) a domain's XML gives: name, uuid, managed, group,
    vcpus, vcpus_max, memory_mb, memory_max_mb, disks [{target, path}], macs."""
    spec = parse_domain(xml)
    return dict(name=spec.name, uuid=spec.uuid, managed=spec.managed, group=spec.group,
                vcpus=spec.vcpus, vcpus_max=spec.effective_vcpus_max, memory_mb=spec.memory_mb,
                memory_max_mb=spec.effective_memory_max_mb,
                disks=[dict(target=disk.target, path=disk.path) for disk in spec.disks if disk.device == "disk"],
                macs=[nic.mac for nic in spec.interfaces if nic.mac])


def parse_domain_xml(xml):
    """The parts of a domain's XML the facts need (facts.domain_fact): every disk with its
    device, MACs and our metadata as a dict. Unlike ``parse_domain`` it leaves out what the
    facts do not carry and keeps None where the XML says nothing (no <vcpu>: vcpus None)."""
    root = parse_xml(xml)
    vcpu = root.find("vcpu")
    vcpus_max = int(vcpu.text.strip()) if vcpu is not None and vcpu.text else None
    vcpus = int(vcpu.get("current")) if vcpu is not None and vcpu.get("current") else vcpus_max
    memory = size_bytes(root.find("memory"))
    current = size_bytes(root.find("currentMemory"))
    disks = []
    for disk in root.findall("devices/disk"):
        target = disk.find("target")
        source = disk.find("source")
        path = None
        if source is not None:
            path = source.get("file") or source.get("dev") or source.get("name")
            if path is None and source.get("volume"):
                path = "%s/%s" % (source.get("pool"), source.get("volume"))
        disks.append(dict(target=target.get("dev") if target is not None else None,
                          device=disk.get("device", "disk"), path=path))
    macs = [mac.get("address").lower() for mac in root.findall("devices/interface/mac")
            if mac.get("address")]
    # The live XML says whether the guest agent is there (state='connected'); only then is it asked.
    agent = any(target.get("name") == GUEST_AGENT_CHANNEL and target.get("state") == "connected"
                for target in root.findall("devices/channel/target"))
    return dict(
        name=root.findtext("name"),
        uuid=root.findtext("uuid"),
        type=root.get("type"),
        vcpus=vcpus,
        vcpus_max=vcpus_max,
        memory_mb=current // MIB if current is not None else (memory // MIB if memory is not None else None),
        memory_max_mb=memory // MIB if memory is not None else None,
        disks=disks,
        macs=macs,
        metadata=parse_metadata(root.find(INSTANCE_PATH)),
        agent_connected=agent,
    )


def pretty(xml):
    """XML text/bytes/element re-indented consistently, for diff output."""
    if hasattr(xml, "tag"):
        xml = etree.tostring(xml)
    root = parse_xml(xml, remove_blank_text=True)
    return etree.tostring(root, pretty_print=True, encoding="unicode")
