# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt domain XML: build it from a typed spec, read it back, compare the two.

``build_domain_xml(spec)`` makes the XML with lxml (values are escaped by lxml, never pasted
into text). ``parse_domain(xml)`` reads any domain XML (ours, or one libvirt dumped with its
addresses, aliases, controllers and seclabels) back into a ``DomainSpec``. ``diff_domain``
says which fields of a desired spec differ from an existing domain, ignoring what libvirt adds
by itself. Compare against the *inactive* XML (``VIR_DOMAIN_XML_INACTIVE``): the live XML has a
host-model CPU expanded to a model and ``currentMemory`` following the balloon.

Our element in ``<metadata>`` marks domains kvmfleet made and carries their affinity group::

    <kvmfleet:instance xmlns:kvmfleet="https://kvmfleet.dev/iaas/1">
      <kvmfleet:managed-by>kvmfleet.iaas</kvmfleet:managed-by>
      <kvmfleet:group>web</kvmfleet:group>
    </kvmfleet:instance>

Pure logic: imports neither Ansible nor libvirt. See docs/vm-definition.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import uuid as uuid_module
from dataclasses import asdict, dataclass, replace
from typing import Optional, Tuple

try:
    from lxml import etree
except ImportError:  # modules report the missing library (base_module) before using it
    etree = None

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

# Same URI and element as KVMFLEET_METADATA_NS / KVMFLEET_METADATA_ELEMENT in virt.py.
KVMFLEET_NS = "https://kvmfleet.dev/iaas/1"
KVMFLEET_PREFIX = "kvmfleet"
METADATA_ELEMENT = "instance"
MANAGED_BY = "kvmfleet.iaas"
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"

DOMAIN_TYPES = ("kvm", "qemu")
CPU_MODES = ("auto", "none", "host-model", "host-passthrough", "maximum")
SERIAL_TYPES = ("pty", "file", "none")
LIFECYCLE_ACTIONS = ("destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart")
# libvirt expands a machine alias to a versioned type when it defines the domain.
MACHINE_ALIASES = {"pc": "pc-i440fx-", "q35": "pc-q35-"}
# Changed on a running domain without a restart (within vcpus_max / memory_max_mb).
LIVE_FIELDS = ("vcpus", "memory_mb")

_KIB = 1024
_MIB = 1024 * 1024
_UNIT_BYTES = {
    "b": 1, "bytes": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": _MIB, "mib": _MIB, "mb": 1000 ** 2,
    "g": 1024 ** 3, "gib": 1024 ** 3, "gb": 1000 ** 3,
    "t": 1024 ** 4, "tib": 1024 ** 4, "tb": 1000 ** 4,
    "p": 1024 ** 5, "pib": 1024 ** 5, "pb": 1000 ** 5,
    "e": 1024 ** 6, "eib": 1024 ** 6, "eb": 1000 ** 6,
}
_ANNOTATION_KEY_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_RESERVED_KEYS = ("managed-by", "group")


@dataclass(frozen=True)
class DiskSpec:
    """A file disk. ``cache`` 'none' because libvirt refuses to live-migrate a disk on shared
    storage (NFS) with host caching on; None leaves it unset (and uncompared)."""

    path: str
    target: str = "vda"
    bus: str = "virtio"
    format: str = "qcow2"
    cache: Optional[str] = "none"
    device: str = "disk"


@dataclass(frozen=True)
class InterfaceSpec:
    """A NIC. ``kind`` 'bridge' attaches to the host bridge ``source``; parsed foreign domains may
    show other kinds ('network', 'direct', ...) with their source name."""

    mac: str
    source: str = "br0"
    model: str = "virtio"
    kind: str = "bridge"


@dataclass(frozen=True)
class DomainSpec:
    """Everything kvmfleet sets in a domain's XML.

    ``vcpus_max`` / ``memory_max_mb`` None mean "same as current" (no hotplug headroom).
    ``cpu_mode`` 'auto' is host-model for kvm (migratable between unlike hosts) and no
    ``<cpu>`` for qemu (TCG's default model); 'none' omits ``<cpu>``. ``serial`` 'file'
    writes the console to ``serial_path``; 'pty' is for ``virsh console``. ``balloon_period``
    is the guest memory statistics period in seconds (0: no statistics). ``annotations`` are
    extra (key, text) children of our metadata element. ``managed`` is False for a parsed
    domain without our metadata.
    """

    name: str
    vcpus: int
    memory_mb: int
    vcpus_max: Optional[int] = None
    memory_max_mb: Optional[int] = None
    uuid: Optional[str] = None
    domain_type: str = "kvm"
    arch: str = "x86_64"
    machine: Optional[str] = None
    kernel: Optional[str] = None
    initrd: Optional[str] = None
    cmdline: Optional[str] = None
    cpu_mode: str = "auto"
    disks: Tuple[DiskSpec, ...] = ()
    interfaces: Tuple[InterfaceSpec, ...] = ()
    serial: str = "pty"
    serial_path: Optional[str] = None
    guest_agent: bool = False
    balloon: bool = True
    balloon_period: int = 10
    on_poweroff: str = "destroy"
    on_reboot: str = "restart"
    on_crash: str = "destroy"
    group: Optional[str] = None
    annotations: Tuple[Tuple[str, str], ...] = ()
    managed: bool = True

    @property
    def effective_vcpus_max(self):
        return self.vcpus if self.vcpus_max is None else self.vcpus_max

    @property
    def effective_memory_max_mb(self):
        return self.memory_mb if self.memory_max_mb is None else self.memory_max_mb

    @property
    def effective_cpu_mode(self):
        if self.cpu_mode == "auto":
            return "host-model" if self.domain_type == "kvm" else "none"
        return self.cpu_mode

    def to_dict(self):
        return asdict(self)


def _invalid(field_name, value, rule):
    raise ValidationError("domain %s=%r: %s" % (field_name, value, rule), field=field_name, value=value)


def check_spec(spec):
    """Refuse a spec that would build a broken or surprising domain; return it."""
    if spec.domain_type not in DOMAIN_TYPES:
        _invalid("domain_type", spec.domain_type, "must be one of %s" % ", ".join(DOMAIN_TYPES))
    for name in ("vcpus", "memory_mb"):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            _invalid(name, value, "must be an integer >= 1")
    if spec.effective_vcpus_max < spec.vcpus:
        _invalid("vcpus_max", spec.vcpus_max, "must be >= vcpus (%d)" % spec.vcpus)
    if spec.effective_memory_max_mb < spec.memory_mb:
        _invalid("memory_max_mb", spec.memory_max_mb, "must be >= memory_mb (%d)" % spec.memory_mb)
    if spec.uuid is not None:
        try:
            uuid_module.UUID(spec.uuid)
        except ValueError:
            _invalid("uuid", spec.uuid, "is not a UUID")
    if spec.cpu_mode not in CPU_MODES:
        _invalid("cpu_mode", spec.cpu_mode, "must be one of %s" % ", ".join(CPU_MODES))
    if spec.kernel is None and (spec.initrd is not None or spec.cmdline is not None):
        _invalid("kernel", None, "initrd and cmdline need a kernel (direct kernel boot)")
    if spec.serial not in SERIAL_TYPES:
        _invalid("serial", spec.serial, "must be one of %s" % ", ".join(SERIAL_TYPES))
    if (spec.serial == "file") != bool(spec.serial_path):
        _invalid("serial_path", spec.serial_path, "is required with serial='file' and only then")
    for action in ("on_poweroff", "on_reboot", "on_crash"):
        if getattr(spec, action) not in LIFECYCLE_ACTIONS:
            _invalid(action, getattr(spec, action), "must be one of %s" % ", ".join(LIFECYCLE_ACTIONS))
    targets = [disk.target for disk in spec.disks]
    if len(set(targets)) != len(targets):
        _invalid("disks", targets, "targets must be unique")
    if any(not nic.mac for nic in spec.interfaces):
        _invalid("interfaces", None, "every interface needs a MAC (macaddr.allocate_macs)")
    macs = [nic.mac.lower() for nic in spec.interfaces]
    if len(set(macs)) != len(macs):
        _invalid("interfaces", macs, "MACs must be unique")
    for key, _value in spec.annotations:
        if not _ANNOTATION_KEY_RE.match(key) or key in _RESERVED_KEYS:
            _invalid("annotations", key, "keys are lowercase words with '-' and not %s" % ", ".join(_RESERVED_KEYS))
    return spec


# --------------------------------------------------------------------------- building

def _sub(parent, tag, text=None, **attrs):
    element = etree.SubElement(parent, tag, {k.rstrip("_"): str(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        element.text = str(text)
    return element


def build_metadata_element(group=None, annotations=()):
    """Our ``<kvmfleet:instance>`` element."""
    instance = etree.Element("{%s}%s" % (KVMFLEET_NS, METADATA_ELEMENT), nsmap={KVMFLEET_PREFIX: KVMFLEET_NS})
    _sub(instance, "{%s}managed-by" % KVMFLEET_NS, MANAGED_BY)
    if group is not None:
        _sub(instance, "{%s}group" % KVMFLEET_NS, group)
    for key, value in annotations:
        _sub(instance, "{%s}%s" % (KVMFLEET_NS, key), value)
    return instance


def build_domain(spec):
    """The ``<domain>`` lxml element for ``spec`` (checked first)."""
    check_spec(spec)
    domain = etree.Element("domain", type=spec.domain_type)
    _sub(domain, "name", spec.name)
    if spec.uuid is not None:
        _sub(domain, "uuid", str(uuid_module.UUID(spec.uuid)))
    metadata = _sub(domain, "metadata")
    metadata.append(build_metadata_element(spec.group, spec.annotations))

    # Memory moves through the balloon: the guest is given the maximum, the balloon holds the
    # rest back. DIMM hotplug (<maxMemory slots>) would need a NUMA topology and cannot unplug
    # reliably.
    _sub(domain, "memory", spec.effective_memory_max_mb * _KIB, unit="KiB")
    _sub(domain, "currentMemory", spec.memory_mb * _KIB, unit="KiB")
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


def from_vm_spec(vm, disks, interfaces, **options):
    """A DomainSpec from a validated ``vmspec.VmSpec`` plus what placement and allocation decided
    (``disks``, ``interfaces``) and DomainSpec ``options`` (domain_type, serial, uuid, ...)."""
    return DomainSpec(name=vm.name, vcpus=vm.vcpus, vcpus_max=vm.vcpus_max, memory_mb=vm.memory_mb,
                      memory_max_mb=vm.memory_max_mb, kernel=vm.kernel, initrd=vm.initrd, cmdline=vm.cmdline,
                      group=vm.group, disks=tuple(disks), interfaces=tuple(interfaces), **options)


# --------------------------------------------------------------------------- parsing

def hardened_parser(remove_blank_text=False):
    """An lxml parser for XML we did not write: no network, no DTD, no entity expansion, no
    huge trees (lxml's limits on depth and text size stay on)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_pis=True, remove_blank_text=remove_blank_text)


def parse_xml(xml, remove_blank_text=False):
    """XML text/bytes (or an element, returned as is) -> root element, with the hardened parser.

    A DOCTYPE is refused: libvirt never writes one, and it is how entity bombs come in.
    """
    if hasattr(xml, "tag"):
        return xml
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        root = etree.fromstring(data, hardened_parser(remove_blank_text))
    except etree.XMLSyntaxError as err:
        raise ValidationError("domain XML is not well-formed: %s" % err, field="xml")
    if root.getroottree().docinfo.doctype:
        raise ValidationError("domain XML must not carry a DOCTYPE", field="xml")
    return root


def _size_mb(element):
    if element is None or not (element.text or "").strip():
        return None
    unit = (element.get("unit") or "KiB").lower()
    if unit not in _UNIT_BYTES:
        raise ValidationError("unknown memory unit %r in <%s>" % (element.get("unit"), element.tag), field=element.tag)
    return int(element.text.strip()) * _UNIT_BYTES[unit] // _MIB


def _text(element, path):
    value = element.findtext(path)
    return value.strip() if value is not None and value.strip() else None


def parse_metadata(root):
    """(managed, group, annotations) from a domain root's ``<metadata>``."""
    instance = root.find("metadata/{%s}%s" % (KVMFLEET_NS, METADATA_ELEMENT))
    if instance is None:
        return False, None, ()
    group = None
    annotations = []
    for child in instance:
        if not isinstance(child.tag, str) or etree.QName(child).namespace != KVMFLEET_NS:
            continue
        key = etree.QName(child).localname
        value = (child.text or "").strip()
        if key == "group":
            group = value or None
        elif key != "managed-by":
            annotations.append((key, value))
    return True, group, tuple(annotations)


def parse_domain(xml):
    """Any domain XML -> DomainSpec with what is there (defaults where an element is absent)."""
    root = parse_xml(xml)
    if root.tag != "domain":
        raise ValidationError("not a domain XML: root element is <%s>" % root.tag, field="xml")
    vcpu = root.find("vcpu")
    vcpus_max = int(vcpu.text.strip()) if vcpu is not None and (vcpu.text or "").strip() else 1
    vcpus = int(vcpu.get("current")) if vcpu is not None and vcpu.get("current") else vcpus_max
    memory_max_mb = _size_mb(root.find("memory"))
    memory_mb = _size_mb(root.find("currentMemory"))
    if memory_mb is None:
        memory_mb = memory_max_mb
    os_type = root.find("os/type")
    cpu = root.find("cpu")
    managed, group, annotations = parse_metadata(root)
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
        group=group,
        annotations=annotations,
        managed=managed,
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


# --------------------------------------------------------------------------- comparing

def _machine_matches(desired, actual):
    if desired is None or desired == actual:
        return True
    prefix = MACHINE_ALIASES.get(desired)
    return bool(prefix and actual and actual.startswith(prefix))


def _disk_key(disk, compare_cache):
    return dict(path=disk.path, target=disk.target, bus=disk.bus, format=disk.format, device=disk.device,
                **({"cache": disk.cache} if compare_cache else {}))


def _disks_view(disks, desired_disks):
    """Comparable dicts of ``disks``; cache only where the desired disk at that position sets it."""
    return [_disk_key(disk, index >= len(desired_disks) or desired_disks[index].cache is not None)
            for index, disk in enumerate(disks)]


def _nic_key(nic):
    return dict(mac=(nic.mac or "").lower(), kind=nic.kind, source=nic.source, model=nic.model)


def diff_domain(desired, actual):
    """Fields where ``actual`` (XML text, element or DomainSpec) differs from ``desired``.

    Returns {field: {"desired": value, "actual": value}}; empty when they agree. Ignored:
    whatever libvirt adds (addresses, aliases, controllers, seclabels, emulator, boot order with
    a kernel), uuid and machine when ``desired`` leaves them None, a machine alias ('pc', 'q35')
    against its versioned expansion, and disk cache when ``desired`` leaves it None.
    """
    if not isinstance(actual, DomainSpec):
        actual = parse_domain(actual)
    changes = {}

    def note(name, want, have):
        if want != have:
            changes[name] = {"desired": want, "actual": have}

    note("name", desired.name, actual.name)
    if desired.uuid is not None:
        note("uuid", desired.uuid.lower(), (actual.uuid or "").lower() or None)
    note("domain_type", desired.domain_type, actual.domain_type)
    note("vcpus", desired.vcpus, actual.vcpus)
    note("vcpus_max", desired.effective_vcpus_max, actual.effective_vcpus_max)
    note("memory_mb", desired.memory_mb, actual.memory_mb)
    note("memory_max_mb", desired.effective_memory_max_mb, actual.effective_memory_max_mb)
    note("arch", desired.arch, actual.arch)
    if not _machine_matches(desired.machine, actual.machine):
        note("machine", desired.machine, actual.machine)
    for name in ("kernel", "initrd", "cmdline"):
        note(name, getattr(desired, name), getattr(actual, name))
    # No <cpu> asked for: libvirt fills in its default model (e.g. custom qemu64 under TCG).
    if desired.effective_cpu_mode != "none":
        note("cpu_mode", desired.effective_cpu_mode, actual.effective_cpu_mode)
    # Order matters for both: it is the guest's device order (vda, vdb / eth0, eth1).
    note("disks", _disks_view(desired.disks, desired.disks), _disks_view(actual.disks, desired.disks))
    note("interfaces", [_nic_key(nic) for nic in desired.interfaces], [_nic_key(nic) for nic in actual.interfaces])
    note("serial", desired.serial, actual.serial)
    note("serial_path", desired.serial_path, actual.serial_path)
    note("guest_agent", desired.guest_agent, actual.guest_agent)
    note("balloon", desired.balloon, actual.balloon)
    if desired.balloon:
        note("balloon_period", desired.balloon_period, actual.balloon_period)
    for name in ("on_poweroff", "on_reboot", "on_crash"):
        note(name, getattr(desired, name), getattr(actual, name))
    note("managed", desired.managed, actual.managed)
    note("group", desired.group, actual.group)
    note("annotations", list(desired.annotations), list(actual.annotations))
    return changes


def split_changes(changes):
    """(live, offline) field names of a ``diff_domain`` result: live ones can be applied to a
    running domain (vcpus and memory_mb, when within the maxima the domain already has);
    offline ones need the domain redefined and take effect at its next start."""
    live = [name for name in changes if name in LIVE_FIELDS]
    offline = [name for name in changes if name not in LIVE_FIELDS]
    if "vcpus_max" in changes and "vcpus" in live:
        live.remove("vcpus")
        offline.append("vcpus")
    if "memory_max_mb" in changes and "memory_mb" in live:
        live.remove("memory_mb")
        offline.append("memory_mb")
    return live, offline


def with_uuid(spec, value):
    """``spec`` with ``uuid`` set (e.g. from the existing domain, so a redefine keeps it)."""
    return replace(spec, uuid=value)


def pretty(xml):
    """XML text/bytes/element re-indented consistently, for diff output."""
    if hasattr(xml, "tag"):
        xml = etree.tostring(xml)
    root = parse_xml(xml, remove_blank_text=True)
    return etree.tostring(root, pretty_print=True, encoding="unicode")
