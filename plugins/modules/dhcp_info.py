#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: dhcp_info
short_description: Read the kvmfleet DHCP service's reservations and leases
version_added: "0.1.0"
description:
  - Returns the reservations in dnsmasq's hosts directory and the leases in its lease database, on the
    host that runs C(kvmfleet-dhcp.service) (the C(dhcp_server) group).
  - Reads every file dnsmasq reads in I(hosts_dir) (not dot files or C(name~) backups), including ones
    written by hand. A reservation line naming several MACs gives one entry per MAC; lines without an
    IPv4 address or with C(ignore) are left out.
  - Reads under a shared lock on C(.kvmfleet-dhcp.lock), so it never sees a half-done
    M(kvmfleet.iaas.dhcp_host) change. Changes nothing.
options:
  mac:
    description: Return only the reservations and leases of this MAC (any common spelling).
    type: str
  hosts_dir:
    description: The directory dnsmasq reads reservations from; a missing directory has none.
    type: path
    default: /etc/kvmfleet/dhcp-hosts.d
  leases_file:
    description: dnsmasq's lease database; a missing file has no leases.
    type: path
    default: /var/lib/misc/kvmfleet-dhcp.leases
seealso:
  - module: kvmfleet.iaas.dhcp_host
attributes:
  check_mode:
    support: full
    description: Read-only; the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
requirements:
  - netaddr (python3-netaddr)
author:
  - kvmfleet developers (@kvmfleet)
"""

EXAMPLES = r"""
- name: Where did web1's NIC get its address
  kvmfleet.iaas.dhcp_info:
    mac: "52:54:00:12:34:56"
  delegate_to: "{{ groups['dhcp_server'][0] }}"
  register: dhcp

- name: Show the active lease
  ansible.builtin.debug:
    msg: "{{ dhcp.leases | selectattr('active') | map(attribute='ip') | list }}"
"""

RETURN = r"""
reservations:
  description: Reservations, in file name order.
  returned: always
  type: list
  elements: dict
  contains:
    mac:
      description: Normalized MAC.
      type: str
      returned: always
      sample: "52:54:00:12:34:56"
    ip:
      description: Reserved address.
      type: str
      returned: always
      sample: 10.213.0.50
    name:
      description: Host name label, or null.
      type: str
      returned: always
      sample: web1
    file:
      description: The file holding it.
      type: str
      returned: always
      sample: /etc/kvmfleet/dhcp-hosts.d/52-54-00-12-34-56.conf
leases:
  description: IPv4 leases in the order of the lease file, expired ones included (see C(active)).
  returned: always
  type: list
  elements: dict
  contains:
    mac:
      description: Normalized MAC.
      type: str
      returned: always
    ip:
      description: Leased address.
      type: str
      returned: always
    hostname:
      description: Host name the client sent, or null.
      type: str
      returned: always
    expires:
      description: Expiry in seconds since the epoch; 0 for an infinite lease.
      type: int
      returned: always
      sample: 1767225600
    active:
      description: The lease has not expired.
      type: bool
      returned: always
"""

import time

from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network import dhcp_store


class DhcpInfo(KvmfleetModule):
    """Reservations under a shared lock (never a half-done change), then the lease file."""

    uses_libvirt = False
    argument_spec = dict(
        mac=dict(type="str"),
        hosts_dir=dict(type="path", default=dhcp_store.DEFAULT_HOSTS_DIR),
        leases_file=dict(type="path", default=dhcp_store.DEFAULT_LEASES_FILE),
    )
    module_kwargs = dict(supports_check_mode=True)

    def missing_libraries(self):
        return dhcp_store.missing_libraries()

    def run(self):
        params, now = self.params, time.time()
        mac = dhcp_store.normalize_mac(params["mac"]) if params["mac"] else None
        hosts = dhcp_store.HostsDir(params["hosts_dir"])
        with hosts.lock(exclusive=False):
            reservations = hosts.reservations()
        leases = dhcp_store.read_leases(params["leases_file"])
        return dict(
            changed=False,
            reservations=[r.to_dict() for r in reservations if mac is None or r.mac == mac],
            leases=[dict(mac=lease.mac, ip=lease.ip, hostname=lease.hostname, expires=lease.expiry,
                         active=lease.active(now))
                    for lease in leases if mac is None or lease.mac == mac],
        )


def main():
    DhcpInfo.execute()


if __name__ == "__main__":
    main()
