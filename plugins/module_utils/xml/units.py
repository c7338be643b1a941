# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one table of libvirt's memory and size units (``unit=`` of <memory>, <capacity>, ...).

libvirt reads k/KiB as 1024 and KB as 1000 (formatdomain, "Memory Allocation"); an element
without a unit is in KiB. Pure logic: imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

KIB = 1024
MIB = 1024 ** 2
GIB = 1024 ** 3

UNIT_BYTES = {
    "b": 1, "bytes": 1,
    "k": KIB, "kib": KIB, "kb": 1000,
    "m": MIB, "mib": MIB, "mb": 1000 ** 2,
    "g": GIB, "gib": GIB, "gb": 1000 ** 3,
    "t": 1024 ** 4, "tib": 1024 ** 4, "tb": 1000 ** 4,
    "p": 1024 ** 5, "pib": 1024 ** 5, "pb": 1000 ** 5,
    "e": 1024 ** 6, "eib": 1024 ** 6, "eb": 1000 ** 6,
}
DEFAULT_UNIT = "KiB"


def unit_name(element):
    """The element's unit, lowercased (KiB when it has none)."""
    return (element.get("unit") or DEFAULT_UNIT).lower()


def size_bytes(element):
    """Bytes of a sized element (<memory unit='MiB'>512</memory>); None when absent or empty.

    An unknown unit is a ValidationError naming the element.
    """
    if element is None or not (element.text or "").strip():
        return None
    unit = unit_name(element)
    if unit not in UNIT_BYTES:
        raise ValidationError("unknown memory unit %r in <%s>" % (element.get("unit"), element.tag), field=element.tag)
    return int(element.text.strip()) * UNIT_BYTES[unit]


def size_mb(element):
    """``size_bytes`` in whole MiB (rounded down)."""
    size = size_bytes(element)
    return None if size is None else size // MIB
