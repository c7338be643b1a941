# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documentation of each filter is in its sidecar file: migration_uri.yml, peer_names.yml,
# tenant_fleet_status.yml.

from ansible_collections.kvmfleet.iaas.plugins.module_utils import transport
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.tenants import Tenants
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.views import tenant_fleet_view
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.filter_errors import filter_errors
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.hostvars import facts_by_host, host_vars, plain


@filter_errors
def migration_uri(host, hostvars):
    """'node2' | kvmfleet.iaas.migration_uri(hostvars) -> 'qemu+ssh://root@10.0.0.12/system'"""
    return transport.migration_uri(host, host_vars(hostvars, host))


@filter_errors
def peer_names(host, hostvars):
    """'node2' | kvmfleet.iaas.peer_names(hostvars) -> [['node2', 'node2'], ['node2', '10.0.0.12']]"""
    return [list(pair) for pair in transport.peer_names(host, host_vars(hostvars, host))]


@filter_errors
def tenant_fleet_status(hostvars, tenant, hosts, tenants=None, default_quota=None, images=None):
    """fleet_status's report for one tenant: {tenant, complete, vms, images, usage, quota} from the
    ``kvmfleet_hypervisor`` facts of ``hosts`` (tenancy/views.py: nothing of the hosts)."""
    declared = Tenants(plain(tenants), plain(default_quota))
    return tenant_fleet_view(facts_by_host(hostvars, list(hosts or ())), plain(tenant), declared, plain(images or []))


class FilterModule(object):
    def filters(self):
        return {"migration_uri": migration_uri, "peer_names": peer_names, "tenant_fleet_status": tenant_fleet_status}
