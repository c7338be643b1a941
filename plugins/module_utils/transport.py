# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How one hypervisor reaches another's libvirtd: URIs per migration transport.

Pure: imports neither Ansible nor libvirt, so filters, modules and tools share it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

TRANSPORTS = ("ssh", "tls", "tcp")


def peer_endpoint(name, host_vars):
    """(transport, address, tls_name) of a hypervisor from its inventory variables."""
    transport = host_vars.get("kvm_migration_transport", "ssh")
    if transport not in TRANSPORTS:
        raise ValidationError("%s: kvm_migration_transport must be one of %s, not %r"
                              % (name, ", ".join(TRANSPORTS), transport))
    address = host_vars.get("kvm_migration_address") or host_vars.get("ansible_host") or name
    return transport, str(address), str(host_vars.get("kvm_migration_hostname") or name)


def libvirt_uri(transport, address, tls_name=None, user="root"):
    """The libvirt URI for a peer.

    ssh: authenticated by the root keys and pinned host keys the setup role distributes.
    tls: authenticated by the site's PKI; the certificate names the host, so the name is used.
    tcp: no authentication at all; only for isolated labs that ask for it explicitly.
    """
    if transport == "ssh":
        return "qemu+ssh://%s@%s/system" % (user, address)
    if transport == "tls":
        return "qemu+tls://%s/system" % (tls_name or address)
    if transport == "tcp":
        return "qemu+tcp://%s/system" % address
    raise ValidationError("unknown migration transport %r (use one of %s)" % (transport, ", ".join(TRANSPORTS)))


def migration_uri(name, host_vars):
    transport, address, tls_name = peer_endpoint(name, host_vars)
    return libvirt_uri(transport, address, tls_name)


def peer_names(name, host_vars):
    """Every name a peer is reached by, for pinning its host key under each: [(host, name)]."""
    _transport, address, _tls = peer_endpoint(name, host_vars)
    names = [name] + ([address] if address != name else [])
    return [(name, n) for n in names]
