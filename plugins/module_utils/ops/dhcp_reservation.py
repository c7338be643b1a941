# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host side of a DHCP reservation change: probing candidates with ping, and reloading dnsmasq.

``network.dhcp_store`` reads and writes the reservation files under its lock; what it cannot do
alone is run commands on the DHCP server. Commands run through ``host`` (an AnsibleModule:
``run_command``, ``get_bin_path``, ``warn``) as argument lists.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import CommandFailed, KvmfleetError


class Pinger:
    """``is_answering`` for ipam.choose_ip: ``ping -c 1 -W 1 IP`` as an argument list."""

    def __init__(self, host):
        self.host = host
        self.binary = None
        self.probed = []

    def __call__(self, ip):
        if self.binary is None:
            self.binary = self.host.get_bin_path("ping")
            if not self.binary:
                raise KvmfleetError("probe=true needs the ping command on the DHCP server (package "
                                    "iputils-ping); install it or set probe=false")
        rc, _out, _err = self.host.run_command([self.binary, "-c", "1", "-W", "1", ip])
        self.probed.append(ip)
        return rc == 0


class Service:
    """The DHCP service: is it running, reload it (SIGHUP through its ExecReload)."""

    def __init__(self, host, name):
        self.host = host
        self.name = name
        self.systemctl = host.get_bin_path("systemctl")

    def active(self):
        if not self.systemctl:
            return False
        rc, _out, _err = self.host.run_command([self.systemctl, "is-active", "--quiet", self.name])
        return rc == 0

    def reload(self):
        rc, out, err = self.host.run_command([self.systemctl, "reload", self.name])
        if rc != 0:
            raise CommandFailed("systemctl reload %s failed (rc=%d): %s" % (self.name, rc, (err or out).strip()),
                                service=self.name, rc=rc)


def reload_after(host, service, hosts_dir, changes, dry_run=False):
    """Reload ``service`` when a change needs it (a file changed or went); whether it was (would be) reloaded.

    A service that is not running is left alone, with a warning: it reads ``hosts_dir`` when it starts.
    """
    if not any(change.needs_reload for change in changes):
        return False
    unit = Service(host, service)
    if not unit.active():
        host.warn("%s is not running, so it was not reloaded; it reads %s when it starts" % (service, hosts_dir))
        return False
    if not dry_run:
        unit.reload()
    return True
