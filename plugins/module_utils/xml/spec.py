# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The typed spec of a libvirt domain (``DomainSpec`` with its disks and NICs) and the checks
that refuse a spec which would build a broken or surprising domain. See docs/vm-definition.md.

Pure logic: imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import uuid as uuid_module
from dataclasses import asdict, dataclass, replace
from typing import Optional, Tuple

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"
DOMAIN_TYPES = ("kvm", "qemu")
CPU_MODES = ("auto", "none", "host-model", "host-passthrough", "maximum")
SERIAL_TYPES = ("pty", "file", "none")
LIFECYCLE_ACTIONS = ("destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart")
# Changed on a running domain without a restart (within vcpus_max / memory_max_mb).
LIVE_FIELDS = ("vcpus", "memory_mb")

_ANNOTATION_KEY_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_RESERVED_KEYS = ("managed-by", "group", "seed-sha256", "tenant")
# The cloud-init seed: a read-only cdrom on a virtio-scsi controller, which every machine type
# has and the Debian cloud kernel reads (it has no AHCI for a q35 SATA cdrom).
SEED_SUFFIX = "-seed.iso"
SEED_TARGET = "sda"
DISK_DEVICES = ("disk", "cdrom")


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
    domain without our metadata. ``seed_digest`` is the sha256 of the cloud-init seed's
    documents (metadata ``seed-sha256``), by which the vm module tells whether the seed changed.
    ``tenant`` is the VM's owner (metadata ``tenant``, docs/tenancy.md); None: the operator's.
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
    seed_digest: Optional[str] = None
    tenant: Optional[str] = None

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
    for disk in spec.disks:
        if disk.device not in DISK_DEVICES:
            _invalid("disks", disk.device, "device must be one of %s" % ", ".join(DISK_DEVICES))
    targets = [disk.target for disk in spec.disks]
    if len(set(targets)) != len(targets):
        _invalid("disks", targets, "targets must be unique")
    if any(not nic.mac for nic in spec.interfaces):
        _invalid("interfaces", None, "every interface needs a MAC (macaddr.allocate_macs)")
    macs = [nic.mac.lower() for nic in spec.interfaces]
    if len(set(macs)) != len(macs):
        _invalid("interfaces", macs, "MACs must be unique")
    if spec.tenant is not None and not _ANNOTATION_KEY_RE.match(spec.tenant):
        _invalid("tenant", spec.tenant, "must be a tenant name (RFC 1123 label)")
    for key, _value in spec.annotations:
        if not _ANNOTATION_KEY_RE.match(key) or key in _RESERVED_KEYS:
            _invalid("annotations", key, "keys are lowercase words with '-' and not %s" % ", ".join(_RESERVED_KEYS))
    return spec


def from_vm_spec(vm, disks, interfaces, **options):
    """A DomainSpec from a validated ``vmspec.VmSpec`` plus what placement and allocation decided
    (``disks``, ``interfaces``) and DomainSpec ``options`` (domain_type, serial, uuid, ...)."""
    return DomainSpec(name=vm.name, vcpus=vm.vcpus, vcpus_max=vm.vcpus_max, memory_mb=vm.memory_mb,
                      memory_max_mb=vm.memory_max_mb, kernel=vm.kernel, initrd=vm.initrd, cmdline=vm.cmdline,
                      group=vm.group, disks=tuple(disks), interfaces=tuple(interfaces), **options)


def with_uuid(spec, value):
    """``spec`` with ``uuid`` set (e.g. from the existing domain, so a redefine keeps it)."""
    return replace(spec, uuid=value)


def seed_disk(path):
    """The DiskSpec of a cloud-init seed image (an ISO 9660 file labelled cidata)."""
    return DiskSpec(path=path, target=SEED_TARGET, bus="scsi", format="raw", cache=None, device="cdrom")


def seed_of(spec):
    """The path of the domain's kvmfleet seed (a cdrom named NAME-seed.iso), or None."""
    wanted = "%s%s" % (spec.name, SEED_SUFFIX)
    for disk in spec.disks:
        if disk.device == "cdrom" and disk.path and disk.path.rsplit("/", 1)[-1] == wanted:
            return disk.path
    return None
