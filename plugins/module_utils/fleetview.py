# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet as the hypervisor facts show it: where a VM is, which hosts could not be read,
which MAC a VM gets. Pure: imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.macaddr import allocate_mac, macs_in_use
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.model import check_labels
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.images import resolve_tenant_image
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import validate_vm_request


def unreachable_hosts(facts_by_host):
    """Hosts whose facts are missing or say unreachable, with the reason."""
    return {host: (facts or {}).get("error") or "no facts gathered"
            for host, facts in sorted(facts_by_host.items())
            if not facts or not facts.get("reachable", False)}


def locate_vm(facts_by_host, name):
    """(host, domain facts) of the VM called ``name``, or (None, None).

    Two hosts with a domain of that name is an inconsistency kvmfleet must not paper over.
    """
    found = [(host, dom) for host, facts in sorted(facts_by_host.items())
             for dom in (facts or {}).get("domains") or () if dom.get("name") == name]
    if len(found) > 1:
        raise Conflict("VM %s is defined on several hosts: %s; resolve that by hand first"
                       % (name, ", ".join(host for host, _dom in found)), hosts=[h for h, _d in found])
    return found[0] if found else (None, None)


def prepare_vm(facts_by_host, request, image_dir=None, network=None, ignore_unreachable=False,
               tenant=None, tenant_image=None, public_images=None):
    """Everything about a create request that the controller can settle before placement.

    Returns {request (normalised; ``labels`` for placement, {} when none), existing_host,
    existing (domain facts), mac, mac_clash, unreachable}. Raises ValidationError for bad input,
    and refuses while hosts are unreachable (a VM of that name, or its MAC, could be on them)
    unless ``ignore_unreachable``. For a ``tenant``, ``tenant_image`` (the image the tenant
    asked for; None: the request's own, the operator's default) is resolved among its own and
    the ``public_images`` (tenancy/images.py), and the refusals name no host.
    """
    unreachable = unreachable_hosts(facts_by_host)
    request = dict(request)
    if tenant is not None and tenant_image is not None:
        request["image"] = resolve_tenant_image(image_dir, tenant_image, tenant, public_images)
    labels = check_labels(request.pop("labels", None), "labels")   # placement's, not the domain's
    # No VM can be larger than the largest host; that host's own check (vm module) is exact.
    reachable = [facts for host, facts in facts_by_host.items() if host not in unreachable]
    spec = validate_vm_request(request, pool_dir=image_dir, network=network,
                               host_max_vcpus=max((f.get("cpus") or 0 for f in reachable), default=None) or None,
                               host_memory_mb=max((f.get("memory_mb") or 0 for f in reachable), default=None) or None,
                               path_exists=lambda _path: True)  # the chosen host checks the file
    if unreachable and not ignore_unreachable and tenant is not None:
        # A tenant reads this (a job's output): no host names, no SSH or libvirt errors.
        raise ValidationError(
            "cannot check that the name %s is unique while %d hypervisor(s) cannot be read; try again later, "
            "or ask the operator" % (spec.name, len(unreachable)), field="name", value=spec.name, unreachable=unreachable)
    if unreachable and not ignore_unreachable:
        raise ValidationError(
            "cannot check that the name %s and its MAC are unique while these hypervisors cannot be read: %s "
            "(bring them back, or pass ignore_unreachable=true to accept the risk)"
            % (spec.name, "; ".join("%s: %s" % item for item in unreachable.items())),
            field="name", value=spec.name, unreachable=unreachable)
    host, existing = locate_vm(facts_by_host, spec.name)
    allocation = allocate_mac(spec.name, macs_in_use(facts_by_host),
                              existing=(existing or {}).get("macs") or None)
    return dict(request=dict(spec.to_dict(), labels=labels), existing_host=host, existing=existing, mac=allocation.mac,
                mac_clash=list(allocation.clashed_with), unreachable=unreachable)
