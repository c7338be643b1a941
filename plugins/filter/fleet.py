# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documentation of each filter is in its sidecar file: migration_uri.yml, peer_names.yml.

from ansible.errors import AnsibleFilterError

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError
from ansible_collections.kvmfleet.iaas.plugins.module_utils import transport


def _host_vars(host, hostvars):
    try:
        return hostvars[host]
    except KeyError:
        raise AnsibleFilterError("%s is not in the inventory" % host)


def migration_uri(host, hostvars):
    """'node2' | kvmfleet.iaas.migration_uri(hostvars) -> 'qemu+ssh://root@10.0.0.12/system'"""
    try:
        return transport.migration_uri(host, _host_vars(host, hostvars))
    except KvmfleetError as err:
        raise AnsibleFilterError(str(err))


def peer_names(host, hostvars):
    """'node2' | kvmfleet.iaas.peer_names(hostvars) -> [['node2', 'node2'], ['node2', '10.0.0.12']]"""
    try:
        return [list(pair) for pair in transport.peer_names(host, _host_vars(host, hostvars))]
    except KvmfleetError as err:
        raise AnsibleFilterError(str(err))


class FilterModule(object):
    def filters(self):
        return {"migration_uri": migration_uri, "peer_names": peer_names}
