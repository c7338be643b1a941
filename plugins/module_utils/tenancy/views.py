# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a tenant may see of its VMs and of the fleet: the one definition, used by vm_info
(``tenant=``) and fleet_status (``-e tenant=``).

It is an allowlist, not a denylist: a field the facts gain later stays hidden from tenants until
it is added here. Never shown: the hypervisor a VM runs on (its name, address, storage), the
operator's metadata and annotations, disk paths, the host space a disk takes, raw libvirt errors,
and, because the view is built from the facts alone, nothing of the inventory (SSH users, key
paths, migration URIs). Pure logic: imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.quota import owner_of, tenant_domains, usage
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.tenants import RESOURCE_NAMES

# Scalar fields of a domain fact a tenant sees as they are. created/uptime_seconds: shown once
# the facts carry them.
VM_FIELDS = ("name", "uuid", "state", "group", "vcpus", "vcpus_max", "memory_mb", "memory_max_mb",
             "balloon_mb", "cpu_percent", "created", "uptime_seconds")
# Lists of plain values (the guest's MACs and IP addresses).
VM_LISTS = ("macs", "addresses")
# Of each disk: its device name in the guest and its virtual size; not its path on the host nor
# the space it takes there.
DISK_FIELDS = ("target", "capacity_gb")
# Of the guest agent's report: whether it answers and the guest's own hostname.
GUEST_FIELDS = ("agent", "hostname")
IMAGE_FIELDS = ("name", "size_gb")

# What a tenant is told when libvirt fails, instead of libvirt's words (host names, URIs, paths).
HOST_UNREADABLE = "the hypervisor could not be read; ask the operator"
SOME_UNREADABLE = "some VMs of this hypervisor could not be read; the list may be incomplete"


def _plain(value):
    """A scalar as itself; anything else (a nested structure smuggled into a scalar field) as None."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else None


def tenant_vm_view(domain_fact):
    """A domain fact (hypervisor_info, vm_info) as its tenant sees it: only the allowlisted fields."""
    fact = domain_fact or {}
    view = dict((key, _plain(fact.get(key))) for key in VM_FIELDS if key in fact)
    view["tenant"] = owner_of(fact)
    for key in VM_LISTS:
        view[key] = [str(item) for item in fact.get(key) or () if _plain(item) is not None]
    view["disks"] = [dict((key, _plain((disk or {}).get(key))) for key in DISK_FIELDS) for disk in fact.get("disks") or ()]
    view["disk_gb"] = sum(disk["capacity_gb"] or 0 for disk in view["disks"] if isinstance(disk["capacity_gb"], int))
    guest = fact.get("guest") or {}
    view["guest"] = dict((key, _plain(guest.get(key))) for key in GUEST_FIELDS)
    return view


def tenant_vms(domain_facts, tenant):
    """The views of those of ``domain_facts`` that ``tenant`` owns, sorted by name: a VM of
    another tenant or of the operator is left out, as if it did not exist."""
    _require_tenant(tenant)
    return sorted((tenant_vm_view(fact) for fact in domain_facts or () if owner_of(fact) == tenant),
                  key=lambda view: view.get("name") or "")


def tenant_fleet_view(facts_by_host, tenant, tenants=None, images=()):
    """The fleet as ``tenant`` sees it: {tenant, complete, vms, images, usage, quota}.

    ``facts_by_host``: {host: hypervisor facts, or None where none were read}; the host names go
    nowhere into the view. ``tenants``: the declared Tenants (refuses an unknown tenant and gives
    its quota: every resource, None for unlimited); without it ``quota`` is None. ``images``: the
    image store's listing, [{tenant, name, size_gb}]. ``usage`` is the sum over the facts of the
    tenant's VMs (tenancy.quota.usage); ``complete`` is false when a hypervisor could not be read,
    so that VMs, usage and all may be short (which hosts is the operator's business).
    """
    _require_tenant(tenant)
    if tenants is not None:
        tenants.check(tenant)
    facts_by_host = facts_by_host or {}
    complete = all(facts and facts.get("reachable", False) for facts in facts_by_host.values())
    vms = sorted((tenant_vm_view(dom) for _host, dom in tenant_domains(facts_by_host, tenant)),
                 key=lambda view: view.get("name") or "")
    own_images = sorted((dict((key, _plain((image or {}).get(key))) for key in IMAGE_FIELDS)
                         for image in images or () if (image or {}).get("tenant") == tenant),
                        key=lambda image: image.get("name") or "")
    quota = None
    if tenants is not None:
        limits = tenants.quota(tenant)
        quota = dict((name, limits.get(name)) for name in RESOURCE_NAMES)
    return dict(tenant=tenant, complete=complete, vms=vms, images=own_images,
                usage=usage(facts_by_host, tenant, images or ()), quota=quota)


def _require_tenant(tenant):
    if not isinstance(tenant, str) or not tenant:
        raise ValidationError("a tenant's view needs the tenant's name, got %r (the operator's view has no tenant)"
                              % (tenant,), field="tenant", value=tenant)
