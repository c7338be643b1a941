# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documentation of each filter is in its sidecar file: migration_uri.yml, peer_names.yml,
# tenant_fleet_status.yml, tenant_image_quota.yml.

from ansible_collections.kvmfleet.iaas.plugins.module_utils import transport
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.images import check_public_images, image_listing
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.quota import check_image_quota
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
def tenant_fleet_status(hostvars, tenant, hosts, tenants=None, default_quota=None, images=None,
                        image_dir=None, image_files=None, public_images=None):
    """fleet_status's report for one tenant: {tenant, complete, vms, images, public_images, usage,
    quota} from the ``kvmfleet_hypervisor`` facts of ``hosts`` (tenancy/views.py: nothing of the
    hosts). ``image_files`` ([{path, size}] of the tenant's image directory) give the listing."""
    declared = Tenants(plain(tenants), plain(default_quota))
    listing = plain(images or [])
    if image_files is not None:
        listing = image_listing(image_dir, plain(image_files), plain(tenant))
    view = tenant_fleet_view(facts_by_host(hostvars, list(hosts or ())), plain(tenant), declared, listing)
    view["public_images"] = sorted(check_public_images(plain(public_images)))
    return view


@filter_errors
def tenant_image_quota(tenant, name, size_bytes, image_dir, image_files, tenants=None, default_quota=None):
    """Refuse a new image of ``tenant`` that would pass its quota of images or image_gb, counted
    over ``image_files`` ([{path, size}] of its image directory); {used, asked, after} else."""
    declared = Tenants(plain(tenants), plain(default_quota))
    declared.check(plain(tenant))
    listing = image_listing(image_dir, plain(image_files or []), plain(tenant))
    return check_image_quota(plain(tenant), declared.quota(plain(tenant)), listing, plain(name), int(size_bytes or 0))


class FilterModule(object):
    def filters(self):
        return {"migration_uri": migration_uri, "peer_names": peer_names, "tenant_fleet_status": tenant_fleet_status,
                "tenant_image_quota": tenant_image_quota}
