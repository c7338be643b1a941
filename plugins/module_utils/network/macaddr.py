# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deterministic, cluster-unique MAC addresses for VM interfaces.

A VM's MAC for NIC ``index`` is ``52:54:00`` (the prefix QEMU and libvirt use; its first octet
has the locally-administered bit set and the multicast bit clear) followed by three bytes of
SHA-256 over ``"<name>/<index>"``. The same name always derives the same MAC, so a VM that is
deleted and made again keeps its MAC, and therefore its DHCP reservation.

Three bytes give 16.7 million MACs: two names collide with a probability of about n^2 / 33.5M
(1 % at ~580 NICs). A collision is resolved by rehashing ``"<name>/<index>/<attempt>"`` with
``attempt`` = 1, 2, ... until a MAC is free; that is deterministic for a given set of MACs in
use, and the result says it happened. Two VMs never share a MAC silently.

Pure logic: imports neither Ansible nor libvirt. See docs/vm-definition.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re
from dataclasses import dataclass, field
from typing import Mapping, Tuple

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, ValidationError

MAC_PREFIX = "52:54:00"
DEFAULT_MAX_ATTEMPTS = 64
UNKNOWN_OWNER = "(unknown owner)"

_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")
_MAC_BARE_RE = re.compile(r"^[0-9a-f]{12}$")


def normalize_mac(mac):
    """``mac`` as lowercase colon-separated text; accepts ``:`` or ``-`` separators or 12 hex digits.

    Raises ValidationError for anything else.
    """
    text = str(mac).strip().lower() if mac is not None else ""
    if _MAC_RE.match(text):
        return text.replace("-", ":")
    if _MAC_BARE_RE.match(text):
        return ":".join(text[i:i + 2] for i in range(0, 12, 2))
    raise ValidationError("MAC address %r is not six hex octets (e.g. 52:54:00:12:34:56)" % (mac,),
                          field="mac", value=mac)


def derive_mac(name, index=0, attempt=0):
    """The MAC for NIC ``index`` of VM ``name``; ``attempt`` > 0 gives the rehash used after a clash."""
    if index < 0 or attempt < 0:
        raise ValueError("index and attempt must be >= 0")
    seed = "%s/%d" % (name, index) if attempt == 0 else "%s/%d/%d" % (name, index, attempt)
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    return "%s:%02x:%02x:%02x" % (MAC_PREFIX, digest[0], digest[1], digest[2])


@dataclass(frozen=True)
class MacAllocation:
    """What ``allocate_macs`` chose for one NIC.

    ``reused``: the VM already had this MAC (from ``existing`` or from ``in_use`` under its own
    name). ``clashed_with``: owners of the MACs derived before this one that belonged to other
    VMs (empty when there was no clash). ``attempt``: the rehash counter that gave ``mac``.
    """

    index: int
    mac: str
    reused: bool = False
    attempt: int = 0
    clashed_with: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def clash_resolved(self):
        return bool(self.clashed_with)


def macs_in_use(hypervisors):
    """MAC -> frozenset of owning VM names, from ``kvmfleet_hypervisor`` facts.

    ``hypervisors`` is a mapping host -> facts or an iterable of facts; unreachable hosts (no
    ``domains``) contribute nothing, which the caller must weigh (their MACs are unknown).
    """
    facts_list = hypervisors.values() if isinstance(hypervisors, Mapping) else hypervisors
    owners = {}
    for facts in facts_list:
        for domain in (facts or {}).get("domains") or ():
            for mac in domain.get("macs") or ():
                owners.setdefault(normalize_mac(mac), set()).add(domain.get("name"))
    return {mac: frozenset(names) for mac, names in owners.items()}


def _owner_sets(in_use):
    """Normalise ``in_use`` (mac -> owner name, or mac -> iterable of names) to mac -> frozenset."""
    result = {}
    for mac, owners in (in_use or {}).items():
        if owners is None or isinstance(owners, str):
            owners = (owners,)
        result[normalize_mac(mac)] = frozenset(owners)
    return result


def _other_owners(holders, name):
    return sorted(UNKNOWN_OWNER if owner is None else str(owner) for owner in holders if owner != name)


def allocate_macs(name, count=1, in_use=None, existing=None, max_attempts=DEFAULT_MAX_ATTEMPTS):
    """MACs for ``count`` NICs of VM ``name``, unique across ``in_use``.

    ``in_use``: mac -> owner VM name (or a set of names, as ``macs_in_use`` returns; ``None``
    means a MAC whose owner is unknown and counts as someone else's). ``existing``: the VM's
    own MACs in interface order when it exists already; NIC ``i`` keeps ``existing[i]``.
    Returns a list of ``MacAllocation``. Raises Conflict when a MAC the VM keeps is also held by
    another VM, or when ``max_attempts`` rehashes all clash.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    owners = _owner_sets(in_use)
    existing = [normalize_mac(mac) for mac in (existing or ())]
    taken_here = set()
    result = []
    for index in range(count):
        if index < len(existing):
            mac = existing[index]
            others = _other_owners(owners.get(mac, ()), name)
            if others:
                raise Conflict("VM %s already has MAC %s on NIC %d, but %s also holds it; "
                               "two VMs must never share a MAC" % (name, mac, index, ", ".join(others)),
                               mac=mac, owners=others)
            taken_here.add(mac)
            result.append(MacAllocation(index=index, mac=mac, reused=True))
            continue
        clashed = []
        for attempt in range(max_attempts):
            mac = derive_mac(name, index, attempt)
            holders = owners.get(mac, frozenset())
            others = _other_owners(holders, name)
            if not others and mac not in taken_here:
                taken_here.add(mac)
                result.append(MacAllocation(index=index, mac=mac, reused=name in holders,
                                            attempt=attempt, clashed_with=tuple(clashed)))
                break
            clashed.extend(others or [name])
        else:
            raise Conflict("no free MAC for NIC %d of VM %s after %d attempts (held by %s)"
                           % (index, name, max_attempts, ", ".join(sorted(set(clashed)))),
                           name=name, index=index)
    return result


def allocate_mac(name, in_use=None, index=0, existing=None, max_attempts=DEFAULT_MAX_ATTEMPTS):
    """The ``MacAllocation`` of NIC ``index`` alone (see ``allocate_macs``)."""
    return allocate_macs(name, index + 1, in_use, existing, max_attempts)[index]


def normalize_hwaddr(token):
    """Ethernet addresses to our form; anything else (ARP-type prefix, wildcards) lowercased."""
    try:
        return normalize_mac(token)
    except ValidationError:
        return token.lower()
