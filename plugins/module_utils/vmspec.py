# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of a VM request, before anything is made.

``validate_vm_request`` checks every field of a request (a dict as a module or playbook passes
it, values possibly strings from ``-e``), fills the defaults and returns a frozen ``VmSpec``.
Every rejection is a ValidationError whose message names the field, the value and the rule.

Pure logic: imports neither Ansible nor libvirt. See docs/vm-definition.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
from dataclasses import asdict, dataclass
from typing import Optional

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.ipam import (
    format_range,
    parse_ip,
    parse_ip_range,
    parse_network,
)

# RFC 1123 label, lowercase only (see _check_name for why uppercase is refused).
_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Names dnsmasq would read as something else in a dhcp-host line: a lease time or a keyword.
_DNSMASQ_AMBIGUOUS_RE = re.compile(r"^(\d+[smhdw]?|infinite|ignore)$")
_INT_TEXT_RE = re.compile(r"^[+-]?[0-9]+$")

# x86 COMMAND_LINE_SIZE; a longer cmdline is cut by the kernel without a word.
CMDLINE_MAX_BYTES = 2048

REQUEST_FIELDS = ("name", "vcpus", "vcpus_max", "memory_mb", "memory_max_mb", "disk_gb", "image",
                  "kernel", "initrd", "cmdline", "ip", "ip_range", "group")


@dataclass(frozen=True)
class Limits:
    """Bounds and default ratios of a request; a site may pass its own."""

    vcpus_ceiling: int = 256
    memory_min_mb: int = 64
    memory_ceiling_mb: int = 4 * 1024 * 1024          # 4 TiB
    disk_ceiling_gb: int = 64 * 1024                  # 64 TiB
    # Hotplug headroom when the request does not say: see default_vcpus_max/default_memory_max_mb.
    vcpus_max_default: int = 8
    memory_max_ratio: int = 4
    memory_max_default_cap_mb: int = 64 * 1024        # 64 GiB


@dataclass(frozen=True)
class VmSpec:
    """A validated, normalised VM request. Paths are resolved and absolute; ip_range is 'a-b'."""

    name: str
    vcpus: int
    vcpus_max: int
    memory_mb: int
    memory_max_mb: int
    disk_gb: int
    image: Optional[str] = None
    kernel: Optional[str] = None
    initrd: Optional[str] = None
    cmdline: Optional[str] = None
    ip: Optional[str] = None
    ip_range: Optional[str] = None
    group: Optional[str] = None

    def to_dict(self):
        return asdict(self)


def _fail(field, value, rule):
    raise ValidationError("%s=%r: %s" % (field, value, rule), field=field, value=value)


def coerce_int(field, value, minimum=None, maximum=None, required=True):
    """``value`` as an int, accepting what Ansible may hand over for an integer.

    Accepted: ints, floats without a fraction (YAML ``2.0``), and decimal integer strings
    (``-e vcpus=2`` gives ``'2'``; surrounding blanks are ignored). Refused: booleans (YAML
    ``yes`` is True, which Python would count as 1), fractions, other strings ('2.5', 'two',
    '0x10', '1_000', ''). ``None`` is refused when ``required`` and returned otherwise.
    """
    if value is None:
        if required:
            _fail(field, value, "is required")
        return None
    if isinstance(value, bool):
        _fail(field, value, "must be an integer, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            _fail(field, value, "must be a whole number")
        number = int(value)
    elif isinstance(value, str):
        if not _INT_TEXT_RE.match(value.strip()):
            _fail(field, value, "must be a decimal integer")
        number = int(value.strip())
    else:
        _fail(field, value, "must be an integer, not %s" % type(value).__name__)
    if minimum is not None and number < minimum:
        _fail(field, value, "must be >= %d" % minimum)
    if maximum is not None and number > maximum:
        _fail(field, value, "must be <= %d" % maximum)
    return number


def _ceilings(*pairs):
    """(limit, why) pairs from flat arguments, leaving out unknown (None) limits."""
    return [(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2) if pairs[i] is not None]


def _bounded(field, value, required, floors, ceilings):
    """``coerce_int`` plus bounds that name their reason: floors/ceilings are (limit, why) pairs."""
    number = coerce_int(field, value, required=required)
    if number is None:
        return None
    for floor, why in floors:
        if number < floor:
            _fail(field, value, "must be >= %s (%d)" % (why, floor))
    for ceiling, why in ceilings:
        if number > ceiling:
            _fail(field, value, "must be <= %s (%d)" % (why, ceiling))
    return number


def check_label(value, field):
    """``value`` must be an RFC 1123 hostname label in lowercase (see ``check_name``)."""
    if not isinstance(value, str) or value == "":
        _fail(field, value, "is required and must be a string")
    if len(value) > 63:
        _fail(field, value, "must be at most 63 characters (RFC 1123 label), it has %d" % len(value))
    if value.lower() != value and _LABEL_RE.match(value.lower()):
        _fail(field, value, "must be lowercase (libvirt names are case sensitive, DNS names are not); "
                            "use %r" % value.lower())
    if not _LABEL_RE.match(value):
        _fail(field, value, "must be an RFC 1123 hostname label: lowercase letters, digits and '-', "
                            "not starting or ending with '-'")
    return value


def check_name(value, field="name"):
    """A VM name: an RFC 1123 hostname label in lowercase.

    Uppercase is refused rather than folded: libvirt names are case sensitive and DNS/DHCP
    names are not, so 'Web1' and 'web1' would be two domains with one hostname, and silently
    lowering it would make a request for 'Web1' manage a domain it did not name. Names that are
    all digits, or digits with one of s/m/h/d/w, or 'infinite'/'ignore', are refused because
    dnsmasq reads those fields of a dhcp-host line as a lease time or a keyword.
    """
    check_label(value, field)
    if _DNSMASQ_AMBIGUOUS_RE.match(value):
        _fail(field, value, "dnsmasq would read this name as a lease time or keyword; add a letter")
    return value


def default_vcpus_max(vcpus, host_max_vcpus=None, limits=Limits()):
    """Hotplug ceiling when the request gives none: ``limits.vcpus_max_default`` (8), lowered to
    ``host_max_vcpus`` when known, and never below ``vcpus``.

    A possible-but-absent vCPU costs the guest kernel only per-CPU areas, so headroom is cheap;
    more vCPUs than the host runs would only contend with each other.
    """
    ceiling = limits.vcpus_max_default
    if host_max_vcpus is not None:
        ceiling = min(ceiling, host_max_vcpus)
    return max(vcpus, ceiling)


def default_memory_max_mb(memory_mb, host_memory_mb=None, limits=Limits()):
    """Balloon ceiling when the request gives none: ``memory_max_ratio`` (4) x memory, capped at
    ``memory_max_default_cap_mb`` (64 GiB) and at ``host_memory_mb`` when known, never below
    ``memory_mb``.

    The guest boots seeing the maximum and the balloon takes back the difference, so the guest
    pays struct page overhead (about 1.6 %) for the maximum: hence the cap.
    """
    ceiling = min(memory_mb * limits.memory_max_ratio, limits.memory_max_default_cap_mb)
    if host_memory_mb is not None:
        ceiling = min(ceiling, host_memory_mb)
    return max(memory_mb, ceiling)


def resolve_in_pool(field, value, pool_dir, resolve_path=os.path.realpath, path_exists=os.path.isfile):
    """``value`` (absolute, or relative to ``pool_dir``) resolved through '..' and symlinks; it
    must lie inside the resolved ``pool_dir`` and ``path_exists`` must hold for it."""
    if not isinstance(value, str) or not value.strip():
        _fail(field, value, "must be a non-empty path")
    if "\x00" in value:
        _fail(field, value, "must not contain NUL")
    if not pool_dir:
        _fail(field, value, "needs the storage pool directory to be known")
    pool = resolve_path(pool_dir)
    joined = value if os.path.isabs(value) else os.path.join(pool_dir, value)
    resolved = resolve_path(joined)
    if os.path.commonpath([pool, resolved]) != pool or resolved == pool:
        _fail(field, value, "must be a file inside the storage pool %s (it resolves to %s)" % (pool, resolved))
    if not path_exists(resolved):
        _fail(field, value, "does not exist or is not a file in the storage pool (%s)" % resolved)
    return resolved


def _check_text(field, value, max_bytes):
    if value is None:
        return None
    if not isinstance(value, str):
        _fail(field, value, "must be a string")
    if any(ord(ch) < 0x20 or ch == "\x7f" for ch in value):
        _fail(field, value, "must be one line without control characters")
    if len(value.encode("utf-8")) > max_bytes:
        _fail(field, value, "must be at most %d bytes" % max_bytes)
    return value


def validate_vm_request(request, limits=Limits(), host_max_vcpus=None, host_memory_mb=None,
                        pool_dir=None, network=None, resolve_path=os.path.realpath,
                        path_exists=os.path.isfile):
    """Check a VM request and return its ``VmSpec``; raise ValidationError on the first problem.

    ``request`` keys: name, vcpus, memory_mb, disk_gb (required); vcpus_max, memory_max_mb,
    image, kernel, initrd, cmdline, ip, ip_range, group (optional; None = not given). Unknown
    keys are refused (a misspelt 'vcpu' must not be ignored). ``host_max_vcpus`` and
    ``host_memory_mb`` bound vcpus_max and memory_max_mb when known. ``pool_dir`` is required
    for image/kernel/initrd, ``network`` (CIDR) for ip/ip_range. ``resolve_path`` and
    ``path_exists`` are injectable for tests.
    """
    unknown = sorted(set(request) - set(REQUEST_FIELDS))
    if unknown:
        raise ValidationError("unknown VM request field(s) %s; known: %s"
                              % (", ".join(unknown), ", ".join(REQUEST_FIELDS)),
                              field=unknown[0], value=request[unknown[0]])
    name = check_name(request.get("name"))

    vcpus = _bounded("vcpus", request.get("vcpus"), True, [(1, "at least one vCPU")],
                     _ceilings(limits.vcpus_ceiling, "the site ceiling", host_max_vcpus, "the host maximum"))
    vcpus_max = _bounded("vcpus_max", request.get("vcpus_max"), False, [(vcpus, "vcpus")],
                         _ceilings(limits.vcpus_ceiling, "the site ceiling", host_max_vcpus, "the host maximum"))
    if vcpus_max is None:
        vcpus_max = default_vcpus_max(vcpus, host_max_vcpus, limits)

    memory_ceilings = _ceilings(limits.memory_ceiling_mb, "the site ceiling", host_memory_mb, "the host memory")
    memory_mb = _bounded("memory_mb", request.get("memory_mb"), True,
                         [(limits.memory_min_mb, "the site minimum")], memory_ceilings)
    memory_max_mb = _bounded("memory_max_mb", request.get("memory_max_mb"), False, [(memory_mb, "memory_mb")],
                             memory_ceilings)
    if memory_max_mb is None:
        memory_max_mb = default_memory_max_mb(memory_mb, host_memory_mb, limits)

    disk_gb = _bounded("disk_gb", request.get("disk_gb"), True, [(1, "one GiB")],
                       [(limits.disk_ceiling_gb, "the site ceiling")])

    paths = {}
    for field in ("image", "kernel", "initrd"):
        if request.get(field) is not None:
            paths[field] = resolve_in_pool(field, request[field], pool_dir, resolve_path, path_exists)
    cmdline = _check_text("cmdline", request.get("cmdline"), CMDLINE_MAX_BYTES)
    if "kernel" not in paths:
        for field in ("initrd", "cmdline"):
            if request.get(field) is not None:
                _fail(field, request[field], "needs kernel (direct kernel boot)")

    ip = ip_range = None
    if request.get("ip") is not None and request.get("ip_range") is not None:
        _fail("ip", request["ip"], "give either ip or ip_range (%r), not both" % (request["ip_range"],))
    if request.get("ip") is not None or request.get("ip_range") is not None:
        if network is None:
            _fail("ip" if request.get("ip") is not None else "ip_range",
                  request.get("ip") or request.get("ip_range"), "needs the VM network (kvmfleet_vm_network)")
        net = parse_network(network, "network")
        if request.get("ip") is not None:
            address = parse_ip(request["ip"])
            if address not in net:
                _fail("ip", request["ip"], "must lie inside the VM network %s" % net.cidr)
            if net.prefixlen <= 30 and address in (net.network, net.broadcast):
                _fail("ip", request["ip"], "is the network or broadcast address of %s" % net.cidr)
            ip = str(address)
        else:
            span = parse_ip_range(request["ip_range"])
            if span.first < net.first or span.last > net.last:
                _fail("ip_range", request["ip_range"], "must lie inside the VM network %s" % net.cidr)
            ip_range = format_range(span)

    group = request.get("group")
    if group is not None:
        check_label(group, "group")

    return VmSpec(name=name, vcpus=vcpus, vcpus_max=vcpus_max, memory_mb=memory_mb, memory_max_mb=memory_max_mb,
                  disk_gb=disk_gb, image=paths.get("image"), kernel=paths.get("kernel"),
                  initrd=paths.get("initrd"), cmdline=cmdline, ip=ip, ip_range=ip_range, group=group)
