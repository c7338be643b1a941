# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dnsmasq's file formats: ``--dhcp-hostsfile``/``--dhcp-hostsdir`` reservation lines and lease files.

Rendered and parsed here, so that address choice (ipam.py) and the reservation store
(dhcp_store.py) share one reading of them. See dnsmasq(8), ``--dhcp-host`` and ``--dhcp-leasefile``.

Pure logic: imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from dataclasses import dataclass
from typing import Optional, Tuple

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.ipam import parse_ip
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.macaddr import normalize_hwaddr, normalize_mac

_HWADDR_RE = re.compile(r"^([0-9a-fA-F]{1,2}-)?([0-9a-fA-F*]{1,2}:){1,19}[0-9a-fA-F*]{1,2}$")
_LEASE_TIME_RE = re.compile(r"^(\d+[smhdw]?|infinite)$", re.IGNORECASE)
_IPV4_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


@dataclass(frozen=True)
class DhcpHost:
    """One dnsmasq ``--dhcp-host`` / hostsfile line (see dnsmasq(8), ``--dhcp-host``)."""

    macs: Tuple[str, ...] = ()
    ip: Optional[str] = None
    hostname: Optional[str] = None
    client_id: Optional[str] = None
    set_tags: Tuple[str, ...] = ()
    match_tags: Tuple[str, ...] = ()
    ipv6: Tuple[str, ...] = ()
    lease_time: Optional[str] = None
    ignore: bool = False


def render_dhcp_host(mac, ip, hostname=None, lease_time=None):
    """A hostsfile line ``MAC,IP[,HOSTNAME][,LEASE_TIME]`` (no newline), validated first.

    dnsmasq reads an all-digit field or one like '12h' as a lease time and 'ignore' as a
    keyword, so such hostnames are refused rather than written ambiguously.
    """
    fields = [normalize_mac(mac), str(parse_ip(ip))]
    if hostname is not None:
        if (not re.match(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$", hostname)
                or _LEASE_TIME_RE.match(hostname) or hostname.lower() == "ignore"):
            raise ValidationError("hostname %r cannot go into a dnsmasq dhcp-host line" % (hostname,),
                                  field="hostname", value=hostname)
        fields.append(hostname)
    if lease_time is not None:
        if not _LEASE_TIME_RE.match(str(lease_time)):
            raise ValidationError("lease_time %r is not a dnsmasq lease time (e.g. 12h, 3600, infinite)"
                                  % (lease_time,), field="lease_time", value=lease_time)
        fields.append(str(lease_time))
    return ",".join(fields)


def parse_dhcp_host_line(line):
    """One hostsfile line (or a ``dhcp-host=...`` config line) -> DhcpHost; None for blank/comment.

    Fields are classified as dnsmasq does: ``id:``, ``set:``/``net:`` (old spelling),
    ``tag:``, ``ignore``, ``[ipv6]``, dotted quads, hardware addresses (optionally with an
    ARP type like ``01-`` and ``*`` wildcards), lease times; what is left is the hostname.
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("dhcp-host="):
        text = text[len("dhcp-host="):]
    macs, set_tags, match_tags, ipv6 = [], [], [], []
    ip = hostname = client_id = lease_time = None
    ignore = False
    for token in (part.strip() for part in text.split(",")):
        lowered = token.lower()
        if not token:
            continue
        if lowered.startswith("id:"):
            client_id = token[3:]
        elif lowered.startswith("set:") or lowered.startswith("net:"):
            set_tags.append(token[4:])
        elif lowered.startswith("tag:"):
            match_tags.append(token[4:])
        elif lowered == "ignore":
            ignore = True
        elif token.startswith("[") and token.endswith("]"):
            ipv6.append(token[1:-1])
        elif _IPV4_RE.match(token):
            ip = token
        elif _HWADDR_RE.match(token):
            macs.append(normalize_hwaddr(token))
        elif _LEASE_TIME_RE.match(token):
            lease_time = lowered
        else:
            hostname = token
    return DhcpHost(macs=tuple(macs), ip=ip, hostname=hostname, client_id=client_id,
                    set_tags=tuple(set_tags), match_tags=tuple(match_tags), ipv6=tuple(ipv6),
                    lease_time=lease_time, ignore=ignore)


def parse_dhcp_hosts(text):
    """Every host line of a hostsfile's text, in order."""
    return [host for host in (parse_dhcp_host_line(line) for line in text.splitlines()) if host is not None]


def reservations_from_hosts(hosts):
    """mac -> ip of the usable IPv4 reservations among ``DhcpHost`` entries (``ignore`` lines skipped)."""
    result = {}
    for host in hosts:
        if host.ignore or host.ip is None:
            continue
        for mac in host.macs:
            result[mac] = host.ip
    return result


@dataclass(frozen=True)
class Lease:
    """One dnsmasq lease: ``expiry`` is epoch seconds, 0 for an infinite lease."""

    expiry: int
    mac: str
    ip: str
    hostname: Optional[str] = None
    client_id: Optional[str] = None

    def active(self, now):
        return self.expiry == 0 or self.expiry > now


def parse_leases(text, now=None):
    """DHCPv4 leases of a dnsmasq lease file: lines ``EXPIRY MAC IP HOSTNAME CLIENTID``.

    ``*`` stands for an unknown hostname or client id. Everything after a ``duid`` line is
    DHCPv6 (``EXPIRY IAID IPv6 ...``) and skipped, as are malformed lines. With ``now``,
    expired leases are dropped.
    """
    leases = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "duid":
            break
        if len(parts) < 3 or not parts[0].isdigit() or not _IPV4_RE.match(parts[2]):
            continue
        lease = Lease(expiry=int(parts[0]), mac=normalize_hwaddr(parts[1]), ip=parts[2],
                      hostname=_star_none(parts[3] if len(parts) > 3 else "*"),
                      client_id=_star_none(parts[4] if len(parts) > 4 else "*"))
        if now is None or lease.active(now):
            leases.append(lease)
    return leases


def _star_none(value):
    return None if value == "*" else value


def render_lease(lease):
    """A lease as its lease-file line (for tests and fixtures)."""
    return "%d %s %s %s %s" % (lease.expiry, lease.mac, lease.ip, lease.hostname or "*", lease.client_id or "*")
