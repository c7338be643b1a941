# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""IPv4 address choice for VMs.

``choose_ip`` picks the address a VM's DHCP reservation will hold. Candidates are walked in a
deterministic order (lowest first by default; ``order='hashed'`` starts at a point derived from
the MAC, so VMs spread over the range and a VM made again with the same MAC tends to get its old
address). A candidate is skipped when it is reserved (network, broadcast, gateway, the DHCP
dynamic pool, the hypervisors' own addresses, anything in ``reserved``), held by another MAC's
DHCP reservation, leased to another MAC, or answers ``is_answering`` (the caller pings; this
module only calls the callable, and only for candidates that passed every other test).

dnsmasq's file formats (reservation lines, leases) are in dnsmasq.py beside this file.

Pure logic: imports neither Ansible nor libvirt. See docs/vm-definition.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re
import traceback
from dataclasses import dataclass, field
from typing import Optional

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, MissingLibrary, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.macaddr import normalize_hwaddr, normalize_mac

NETADDR_IMPORT_ERROR = None
try:
    from netaddr import AddrFormatError, IPAddress, IPNetwork, IPRange, IPSet
    HAS_NETADDR = True
except ImportError:  # modules declare it (missing_libraries); every parse raises MissingLibrary naming it
    AddrFormatError = ValueError
    IPAddress = IPNetwork = IPRange = IPSet = None
    HAS_NETADDR = False
    NETADDR_IMPORT_ERROR = traceback.format_exc()

ORDERS = ("lowest", "hashed")
# Pinging costs about a second per silent address; an unmanaged network where dozens of free
# looking addresses answer needs an operator, not a longer loop.
DEFAULT_MAX_PROBES = 16

REASON_RESERVED = "reserved"
REASON_RESERVATION = "reserved_for_other_mac"
REASON_LEASED = "leased"
REASON_ANSWERING = "answering"


def missing_libraries():
    """``[("netaddr", traceback)]`` when netaddr cannot be imported, else ``[]`` (as KvmfleetModule's)."""
    return [] if HAS_NETADDR else [("netaddr", NETADDR_IMPORT_ERROR)]


def require_netaddr():
    """Raise MissingLibrary naming netaddr when it cannot be imported.

    Without it every address would fail to parse, and the caller would be told that its network
    or address is malformed.
    """
    if not HAS_NETADDR:
        raise MissingLibrary("netaddr", NETADDR_IMPORT_ERROR)


# --------------------------------------------------------------------------- parsing addresses

def parse_network(network, field_name="network"):
    """``network`` ('10.0.0.0/24') as an IPv4 IPNetwork; the host bits must be zero."""
    require_netaddr()
    try:
        net = IPNetwork(str(network).strip(), flags=0)
    except (AddrFormatError, ValueError, TypeError):
        raise ValidationError("%s=%r is not an IPv4 network in CIDR form (e.g. 192.0.2.0/24)"
                              % (field_name, network), field=field_name, value=network)
    if net.version != 4 or "/" not in str(network):
        raise ValidationError("%s=%r is not an IPv4 network in CIDR form (e.g. 192.0.2.0/24)"
                              % (field_name, network), field=field_name, value=network)
    if net.ip != net.network:
        raise ValidationError("%s=%r has host bits set; did you mean %s?" % (field_name, network, net.cidr),
                              field=field_name, value=network)
    return net


def parse_ip(ip, field_name="ip"):
    """``ip`` as an IPv4 IPAddress (dotted quad only: no '10.1', no integers, no IPv6)."""
    require_netaddr()
    text = str(ip).strip() if ip is not None else ""
    if not re.match(r"^\d{1,3}(\.\d{1,3}){3}$", text):
        raise ValidationError("%s=%r is not an IPv4 address (dotted quad, e.g. 192.0.2.10)" % (field_name, ip),
                              field=field_name, value=ip)
    try:
        return IPAddress(text, version=4, flags=0)
    except (AddrFormatError, ValueError):
        raise ValidationError("%s=%r is not an IPv4 address (dotted quad, e.g. 192.0.2.10)" % (field_name, ip),
                              field=field_name, value=ip)


def parse_ip_range(text, field_name="ip_range"):
    """'a-b' (inclusive, a <= b) or a CIDR ('10.0.0.64/28') as an IPRange."""
    value = str(text).strip() if text is not None else ""
    if "/" in value:
        net = parse_network(value, field_name)
        return IPRange(net.first, net.last)
    parts = value.split("-")
    if len(parts) != 2:
        raise ValidationError("%s=%r is neither 'FIRST-LAST' nor a CIDR (e.g. 192.0.2.50-192.0.2.60 or "
                              "192.0.2.64/28)" % (field_name, text), field=field_name, value=text)
    first = parse_ip(parts[0], field_name)
    last = parse_ip(parts[1], field_name)
    if first > last:
        raise ValidationError("%s=%r starts after it ends (%s > %s)" % (field_name, text, first, last),
                              field=field_name, value=text)
    return IPRange(first, last)


def format_range(ip_range):
    """An IPRange as the canonical 'a-b' text."""
    require_netaddr()
    return "%s-%s" % (IPAddress(ip_range.first, 4), IPAddress(ip_range.last, 4))


def _as_ipset(items, field_name):
    """Addresses, 'a-b' ranges and CIDRs (strings or netaddr objects) as an IPSet."""
    result = IPSet()
    for item in items or ():
        if item is None or item == "":
            continue
        if isinstance(item, (IPAddress, IPNetwork, IPRange)):
            result.add(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            result.add(parse_ip_range("%s-%s" % tuple(item), field_name))
        elif "-" in str(item) or "/" in str(item):
            result.add(parse_ip_range(item, field_name))
        else:
            result.add(parse_ip(item, field_name))
    return result


# --------------------------------------------------------------------------- choosing

@dataclass(frozen=True)
class IpChoice:
    """The address chosen for ``mac``.

    ``reused``: the MAC already had a DHCP reservation for it. ``replaces``: the MAC's previous
    reservation, outside what was asked for, that the caller must remove. ``skipped``: reason ->
    how many candidates before ``ip`` were passed over for it.
    """

    ip: str
    mac: str
    reused: bool = False
    replaces: Optional[str] = None
    skipped: dict = field(default_factory=dict)


def _reservations_by_ip(reservations):
    by_ip = {}
    for mac, ip in (reservations or {}).items():
        if ip is None:
            continue
        by_ip.setdefault(str(parse_ip(ip, "reservations")), set()).add(normalize_mac(mac))
    return by_ip


def _leases_by_ip(leases):
    """Leases (Lease objects, or mac -> ip) as ip -> set of MACs."""
    by_ip = {}
    if isinstance(leases, dict):
        pairs = leases.items()
    else:
        pairs = ((lease.mac, lease.ip) for lease in leases or ())
    for mac, ip in pairs:
        try:
            address = str(parse_ip(ip, "leases"))
        except ValidationError:
            continue  # IPv6 or odd lease lines are not ours to judge
        by_ip.setdefault(address, set()).add(normalize_hwaddr(mac))
    return by_ip


def _candidates(pool, mac, order):
    """Integers of ``pool`` (an IPRange) in the walk order."""
    size = pool.size
    start = 0
    if order == "hashed":
        start = int.from_bytes(hashlib.sha256(mac.encode("ascii")).digest()[:8], "big") % size
    for offset in range(size):
        yield pool.first + (start + offset) % size


def choose_ip(network, mac, ip=None, ip_range=None, gateway=None, dhcp_pool=None, reserved=(),
              reservations=None, leases=(), is_answering=None, order="lowest",
              max_probes=DEFAULT_MAX_PROBES):
    """The address to reserve for ``mac`` in ``network``.

    ``ip``: a wanted address; ``ip_range``: 'a-b' or CIDR to pick from (default: the whole
    network). ``gateway``, ``dhcp_pool`` ('a-b', CIDR or (a, b); dnsmasq hands those out by
    itself) and ``reserved`` (addresses, ranges or CIDRs: the hypervisors' own addresses,
    anything else) are never chosen; the network and broadcast addresses of networks up to /30
    neither. ``reservations``: mac -> ip of every DHCP reservation; ``leases``: current leases
    (``Lease`` objects from ``parse_leases`` or mac -> ip). ``is_answering(ip_text) -> bool``
    is called for a candidate no record accounts for; an address that answers belongs to
    something we do not know about.

    Idempotent: a MAC that already has a reservation inside what is asked for gets it back,
    without probing. Raises ValidationError (ip or range outside the network, ip reserved or in
    the DHCP pool) or Conflict (ip held by another MAC or answering, nothing free in the range,
    more than ``max_probes`` candidates answering).
    """
    if order not in ORDERS:
        raise ValueError("order must be one of %s" % (ORDERS,))
    if ip is not None and ip_range is not None:
        raise ValidationError("give either ip=%r or ip_range=%r, not both" % (ip, ip_range),
                              field="ip", value=ip)
    net = parse_network(network)
    mac = normalize_mac(mac)

    blocked = IPSet()
    if net.prefixlen <= 30:
        blocked.add(net.network)
        blocked.add(net.broadcast)
    if gateway:
        blocked.add(parse_ip(gateway, "gateway"))
    blocked |= _as_ipset(reserved, "reserved")
    pool_set = _as_ipset([dhcp_pool], "dhcp_pool")
    by_reservation = _reservations_by_ip(reservations)
    by_lease = _leases_by_ip(leases)
    own = [address for address, macs in by_reservation.items() if mac in macs]

    if ip is not None:
        wanted = parse_ip(ip)
        if wanted not in net:
            raise ValidationError("ip=%s is outside the VM network %s" % (wanted, net.cidr), field="ip", value=ip)
        text = str(wanted)
        if text in own:
            return IpChoice(ip=text, mac=mac, reused=True)
        if wanted in blocked:
            raise ValidationError("ip=%s is reserved (network/broadcast, gateway, hypervisor or listed in "
                                  "reserved addresses)" % text, field="ip", value=ip)
        if wanted in pool_set:
            raise ValidationError("ip=%s is inside the DHCP dynamic pool %s, which dnsmasq may hand to "
                                  "anyone; pick an address outside it" % (text, dhcp_pool), field="ip", value=ip)
        holders = (by_reservation.get(text, set()) | by_lease.get(text, set())) - {mac}
        if holders:
            raise Conflict("ip=%s is already taken by MAC %s" % (text, ", ".join(sorted(holders))),
                           ip=text, macs=sorted(holders))
        if is_answering is not None and is_answering(text):
            raise Conflict("ip=%s answers on the network but no reservation or lease explains it; "
                           "something unmanaged uses it" % text, ip=text)
        return IpChoice(ip=text, mac=mac, replaces=_first_other(own, text))

    if ip_range is not None:
        pool = parse_ip_range(ip_range)
        if pool.first < net.first or pool.last > net.last:
            raise ValidationError("ip_range=%s is not inside the VM network %s" % (format_range(pool), net.cidr),
                                  field="ip_range", value=ip_range)
        label = "ip_range %s" % format_range(pool)
    else:
        pool = IPRange(net.first, net.last)
        label = "network %s" % net.cidr

    for address in sorted(own):
        if IPAddress(address) in pool:
            return IpChoice(ip=address, mac=mac, reused=True)

    skipped = {}
    probes = 0
    for value in _candidates(pool, mac, order):
        candidate = IPAddress(value, 4)
        text = str(candidate)
        if candidate in blocked or candidate in pool_set:
            reason = REASON_RESERVED
        elif by_reservation.get(text, set()) - {mac}:
            reason = REASON_RESERVATION
        elif by_lease.get(text, set()) - {mac}:
            reason = REASON_LEASED
        elif is_answering is not None and is_answering(text):
            reason = REASON_ANSWERING
            probes += 1
            if probes >= max_probes:
                skipped[reason] = skipped.get(reason, 0) + 1
                raise Conflict("gave up in %s after %d addresses that no reservation or lease explains "
                               "answered (%s); check for unmanaged hosts on the network"
                               % (label, probes, _describe(skipped)), skipped=skipped)
        else:
            return IpChoice(ip=text, mac=mac, replaces=_first_other(own, text), skipped=skipped)
        skipped[reason] = skipped.get(reason, 0) + 1
    raise Conflict("no free address in %s: all %d taken (%s)" % (label, pool.size, _describe(skipped)),
                   skipped=skipped, size=pool.size)


def _first_other(own, chosen):
    others = sorted(address for address in own if address != chosen)
    return others[0] if others else None


def _describe(skipped):
    return ", ".join("%d %s" % (count, reason.replace("_", " ")) for reason, count in sorted(skipped.items()))
