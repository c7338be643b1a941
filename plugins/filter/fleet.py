# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documentation of each filter is in its sidecar file: migration_uri.yml, peer_names.yml.

from ansible_collections.kvmfleet.iaas.plugins.module_utils import transport
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.filter_errors import filter_errors
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.hostvars import host_vars


@filter_errors
def migration_uri(host, hostvars):
    """'node2' | kvmfleet.iaas.migration_uri(hostvars) -> 'qemu+ssh://root@10.0.0.12/system'"""
    return transport.migration_uri(host, host_vars(hostvars, host))


@filter_errors
def peer_names(host, hostvars):
    """'node2' | kvmfleet.iaas.peer_names(hostvars) -> [['node2', 'node2'], ['node2', '10.0.0.12']]"""
    return [list(pair) for pair in transport.peer_names(host, host_vars(hostvars, host))]


class FilterModule(object):
    def filters(self):
        return {"migration_uri": migration_uri, "peer_names": peer_names}
