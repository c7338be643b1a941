#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: dhcp_host
short_description: Reserve a VM's address in the kvmfleet DHCP service (dnsmasq)
version_added: "0.1.0"
description:
  - Adds, changes or removes one MAC's DHCP reservation on the host that runs C(kvmfleet-dhcp.service)
    (the C(dhcp_server) group; see the C(kvmfleet.iaas.dhcp) role).
  - Reservations are one file per MAC in I(hosts_dir), named like C(52-54-00-aa-bb-cc.conf) and holding
    dnsmasq's C(MAC,IP[,NAME]) line. Files are replaced atomically (hidden temporary file and rename).
  - A new reservation is picked up by dnsmasq by itself (inotify) and needs no signal. When an existing
    reservation changes or is removed, the module reloads the service (C(systemctl reload), which sends
    SIGHUP); it never restarts it. A service that is not running is not reloaded; it reads the
    directory when it starts.
  - With I(ip_range) the address is chosen by the collection's IPAM, lowest free first (or see I(order)).
    A candidate is skipped when it is in I(reserved), in I(dhcp_pool), the network or broadcast address,
    reserved for another MAC, leased (active lease in I(leases_file)) to another MAC, or, with I(probe),
    answers a ping. Reading, choosing and writing happen under an exclusive lock on
    C(.kvmfleet-dhcp.lock) in I(hosts_dir), so concurrent runs never reserve the same address.
  - Idempotent. A MAC that already holds a reservation inside I(ip_range) (or at I(ip)) keeps it,
    without probing. A MAC whose reservation lies outside what is asked for gets a new address in its
    same file, and the service is reloaded.
options:
  state:
    description:
      - C(present) makes sure I(mac) has a reservation; C(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  mac:
    description:
      - MAC address of the VM's NIC, in any common spelling (C(52:54:00:AA:BB:CC), C(52-54-00-aa-bb-cc),
        C(525400aabbcc)); it is normalized to lowercase with colons.
      - Required with I(state=present). With I(state=absent), either I(mac) or I(name) is required;
        when both are given only I(mac) selects what is removed.
    type: str
  name:
    description:
      - Host name label of the reservation, sent to the client (the VM name). The file holds exactly
        what the task asks for, so omitting I(name) drops a label the reservation had.
      - With I(state=absent) and no I(mac), every reservation labelled I(name) is removed (all NICs of
        a VM).
      - Letters, digits and C(-), not all digits and not a dnsmasq lease time like C(12h).
    type: str
  ip:
    description:
      - The address to reserve. Fails when it is reserved for or leased to another MAC (the message
        names the holder's file), inside I(dhcp_pool), in I(reserved), outside I(network), or, with
        I(probe), answering a ping while no reservation or lease explains it.
      - With I(state=present) one of I(ip) and I(ip_range) is required.
    type: str
  ip_range:
    description:
      - Choose the address from this range, C(FIRST-LAST) (inclusive) or a CIDR, inside I(network).
      - Fails when nothing in the range is free; the message and C(skipped) count the candidates by reason.
    type: str
  network:
    description:
      - The VM network in CIDR form, for example C(10.213.0.0/24). Required with I(state=present).
    type: str
  reserved:
    description:
      - Addresses, C(FIRST-LAST) ranges or CIDRs never to hand out, for example the gateway and the
        hypervisor nodes' own addresses.
    type: list
    elements: str
    default: []
  dhcp_pool:
    description:
      - The dynamic pool C(START-END) that dnsmasq leases to anyone; never chosen, and an explicit
        I(ip) inside it is refused.
    type: str
  order:
    description:
      - Walk the candidates from the lowest address (C(lowest)), or from a point derived from the MAC
        (C(hashed)), which spreads VMs over the range.
    type: str
    choices: [lowest, hashed]
    default: lowest
  probe:
    description:
      - Ping a candidate that no reservation or lease accounts for (C(ping -c 1 -W 1), about a second for
        a silent address) and skip it when it answers. Needs C(ping) on the host.
    type: bool
    default: true
  hosts_dir:
    description: The directory dnsmasq reads reservations from (its C(dhcp-hostsdir)); it must exist.
    type: path
    default: /etc/kvmfleet/dhcp-hosts.d
  leases_file:
    description: dnsmasq's lease database; a missing file means no leases.
    type: path
    default: /var/lib/misc/kvmfleet-dhcp.leases
  service:
    description: The systemd unit of dnsmasq, reloaded when a reservation changes or goes.
    type: str
    default: kvmfleet-dhcp.service
requirements:
  - netaddr (python3-netaddr)
notes:
  - Runs on the DHCP server itself (C(delegate_to) the C(dhcp_server) host). Needs root to write
    I(hosts_dir) and reload the service.
  - Leases outlive reservations. An address whose reservation was removed stays out of the choices
    while its lease is active.
seealso:
  - module: kvmfleet.iaas.dhcp_info
attributes:
  check_mode:
    support: full
    description: Predicts the address, the file change and whether the service would be reloaded, using
      the same choice (and probes) as a real run; writes nothing.
  diff_mode:
    support: full
    description: Shows the reservation file before and after.
author:
  - kvmfleet developers (@kvmfleet)
"""

EXAMPLES = r"""
- name: Reserve an address for web1's NIC from the reservation range
  kvmfleet.iaas.dhcp_host:
    mac: "52:54:00:12:34:56"
    name: web1
    ip_range: 10.213.0.50-10.213.0.99
    network: 10.213.0.0/24
    dhcp_pool: 10.213.0.100-10.213.0.199
    reserved: "{{ [kvmfleet_vm_gateway] + groups['hypervisors'] | map('extract', hostvars, 'ansible_host') | list }}"
  delegate_to: "{{ groups['dhcp_server'][0] }}"
  register: lease

- name: Reserve a fixed address
  kvmfleet.iaas.dhcp_host:
    mac: "52:54:00:12:34:57"
    name: db1
    ip: 10.213.0.60
    network: 10.213.0.0/24
  delegate_to: "{{ groups['dhcp_server'][0] }}"

- name: Remove every reservation of web1
  kvmfleet.iaas.dhcp_host:
    name: web1
    state: absent
  delegate_to: "{{ groups['dhcp_server'][0] }}"
"""

RETURN = r"""
reservation:
  description: The reservation after the task; null with I(state=absent).
  returned: always
  type: dict
  contains:
    mac:
      description: Normalized MAC.
      type: str
      returned: success
      sample: "52:54:00:12:34:56"
    ip:
      description: The reserved address.
      type: str
      returned: success
      sample: 10.213.0.50
    name:
      description: Host name label, or null.
      type: str
      returned: success
      sample: web1
    file:
      description: The reservation file.
      type: str
      returned: success
      sample: /etc/kvmfleet/dhcp-hosts.d/52-54-00-12-34-56.conf
action:
  description: What happened to the reservation file(s) (or would, in check mode).
  returned: always
  type: str
  choices: [created, updated, removed, unchanged]
  sample: created
previous:
  description: The MAC's reservation before the task when I(state=present) changed it, else null.
  returned: always
  type: dict
  sample: {mac: "52:54:00:12:34:56", ip: 10.213.0.70, name: web1, file: /etc/kvmfleet/dhcp-hosts.d/52-54-00-12-34-56.conf}
removed:
  description: The reservations removed (I(state=absent)), each with C(mac), C(ip), C(name), C(file).
  returned: always
  type: list
  elements: dict
  sample: []
reused:
  description: The MAC already held this address (no new choice was made).
  returned: always
  type: bool
skipped:
  description:
    - Candidates passed over before the chosen one, counted by reason C(reserved) (I(reserved),
      I(dhcp_pool), network or broadcast), C(reserved_for_other_mac), C(leased), C(answering).
    - Empty when no new address was chosen.
  returned: always
  type: dict
  sample: {reserved: 2, reserved_for_other_mac: 1, answering: 1}
reloaded:
  description: The service was (check mode - would be) reloaded with SIGHUP.
  returned: always
  type: bool
"""

from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network import dhcp_store
from ansible_collections.kvmfleet.iaas.plugins.module_utils.ops.dhcp_reservation import Pinger, reload_after


class DhcpHostModule(KvmfleetModule):
    """Reserve (or release) under dhcp_store's lock, then reload dnsmasq when a file changed or went."""

    uses_libvirt = False
    argument_spec = dict(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        mac=dict(type="str"),
        name=dict(type="str"),
        ip=dict(type="str"),
        ip_range=dict(type="str"),
        network=dict(type="str"),
        reserved=dict(type="list", elements="str", default=[]),
        dhcp_pool=dict(type="str"),
        order=dict(type="str", default="lowest", choices=["lowest", "hashed"]),
        probe=dict(type="bool", default=True),
        hosts_dir=dict(type="path", default=dhcp_store.DEFAULT_HOSTS_DIR),
        leases_file=dict(type="path", default=dhcp_store.DEFAULT_LEASES_FILE),
        service=dict(type="str", default="kvmfleet-dhcp.service"),
    )
    module_kwargs = dict(
        required_if=[("state", "present", ["mac", "network"]),
                     ("state", "present", ["ip", "ip_range"], True),
                     ("state", "absent", ["mac", "name"], True)],
        mutually_exclusive=[("ip", "ip_range")],
        supports_check_mode=True,
    )

    def missing_libraries(self):
        return dhcp_store.missing_libraries()

    def run(self):
        params = self.params
        result = dict(reservation=None, previous=None, removed=[], reused=False, skipped={})
        if params["state"] == "present":
            plan = dhcp_store.reserve(
                params["hosts_dir"], params["mac"], params["network"], leases_file=params["leases_file"],
                dry_run=self.check_mode, name=params["name"], ip=params["ip"], ip_range=params["ip_range"],
                reserved=params["reserved"], dhcp_pool=params["dhcp_pool"], order=params["order"],
                is_answering=Pinger(self.module) if params["probe"] else None)
            changes = [plan.change]
            result.update(reservation=plan.reservation.to_dict(), reused=plan.reused, skipped=plan.skipped,
                          previous=plan.previous.to_dict() if plan.previous and plan.change.changed else None)
        else:
            plan = dhcp_store.release(params["hosts_dir"], mac=params["mac"],
                                      name=None if params["mac"] else params["name"], dry_run=self.check_mode)
            changes = list(plan.changes)
            result["removed"] = [r.to_dict() for r in plan.removed]
        changed = [change for change in changes if change.changed]
        result.update(changed=bool(changed), action=changed[0].action if changed else "unchanged",
                      reloaded=reload_after(self.module, params["service"], params["hosts_dir"], changes,
                                            dry_run=self.check_mode))
        if self.module._diff and changes:
            diffs = [change.diff() for change in changes]
            result["diff"] = diffs[0] if len(diffs) == 1 else diffs
        return result


def main():
    DhcpHostModule.execute()


if __name__ == "__main__":
    main()
