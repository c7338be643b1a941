# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.fleetview import prepare_vm
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.filter_errors import filter_errors
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.hostvars import facts_by_host, plain


@filter_errors
def vm_prepare(hostvars, request, hosts, image_dir=None, network=None, ignore_unreachable=False,
               tenant=None, tenant_image=None, public_images=None):
    """hostvars | kvmfleet.iaas.vm_prepare(request, groups['hypervisors'], ...) -> dict"""
    return prepare_vm(facts_by_host(hostvars, hosts), plain(request), image_dir=image_dir,
                      network=network, ignore_unreachable=bool(ignore_unreachable),
                      tenant=tenant or None, tenant_image=tenant_image or None, public_images=plain(public_images))


class FilterModule(object):
    def filters(self):
        return {"vm_prepare": vm_prepare}
