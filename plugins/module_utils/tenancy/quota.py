# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tenant's usage, summed over the fleet's fresh facts (the owner is in each domain's kvmfleet
metadata: libvirt is the source of truth, there is no separate count to drift), and the check
of a request against the tenant's quota, with every resource's numbers in the error.

Pure logic: imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.fleetview import unreachable_hosts
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.tenants import RESOURCE_NAMES, RESOURCES, check_quota

OWNER_KEY = "tenant"


class QuotaExceeded(ValidationError):
    """A request would take a tenant over its quota. ``details['over']``: {resource: {used, asked, limit}}."""


def owner_of(domain):
    """The tenant a domain fact belongs to (its ``tenant``, from its metadata), or None (the operator's)."""
    domain = domain or {}
    return domain.get(OWNER_KEY) or (domain.get("metadata") or {}).get(OWNER_KEY) or None


def acts_on(tenant, owner):
    """Whether a request made for ``tenant`` may act on a VM (or image) ``owner`` owns: the
    operator (None) acts on everything, a tenant on its own only."""
    return tenant is None or (owner is not None and owner == tenant)


def tenant_domains(facts_by_host, tenant):
    """(host, domain fact) of every domain ``tenant`` owns, over the reachable hosts."""
    found = []
    for host, facts in sorted(facts_by_host.items()):
        for dom in (facts or {}).get("domains") or ():
            if owner_of(dom) == tenant:
                found.append((host, dom))
    return found


def usage(facts_by_host, tenant, images=()):
    """What ``tenant`` holds: vcpus, memory_mb, disk_gb (defined VMs, running or not), vms, and
    images/image_gb of ``images`` ([{tenant, size_gb}], the image store's listing)."""
    used = dict((name, 0) for name, _label in RESOURCES)
    for _host, dom in tenant_domains(facts_by_host, tenant):
        used["vms"] += 1
        used["vcpus"] += dom.get("vcpus") or 0
        used["memory_mb"] += dom.get("memory_mb") or 0
        used["disk_gb"] += sum(disk.get("capacity_gb") or 0 for disk in dom.get("disks") or ())
    for image in images:
        if image.get("tenant") == tenant:
            used["images"] += 1
            used["image_gb"] += image.get("size_gb") or 0
    return used


def check_request(tenant, quota, used, asked):
    """Refuse ``asked`` ({resource: amount}) when any resource would pass ``quota``; return the
    usage after it. The message names each resource with used, asked and limit."""
    over = {}
    for name, label in RESOURCES:
        want = asked.get(name) or 0
        limit = quota.get(name)
        if limit is None or want <= 0:
            continue
        if used.get(name, 0) + want > limit:
            over[name] = dict(used=used.get(name, 0), asked=want, limit=limit)
    if over:
        labels = dict(RESOURCES)
        parts = ["%s: %d used + %d asked > %d allowed" % (labels[name], entry["used"], entry["asked"], entry["limit"])
                 for name, entry in over.items()]
        raise QuotaExceeded("tenant %s is over its quota: %s" % (tenant, "; ".join(parts)), tenant=tenant, over=over)
    return dict((name, used.get(name, 0) + (asked.get(name) or 0)) for name, _label in RESOURCES)


def vm_demand(vcpus, memory_mb, disk_gb):
    """What one new VM counts against a quota: its size at start and its disk (a later scale-up
    is checked for its increase)."""
    return dict(vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb, vms=1)


def scale_demand(current_vcpus, current_memory_mb, vcpus, memory_mb):
    """What a resize asks of the quota: the increase only (shrinking frees, never blocks)."""
    return dict(vcpus=max(0, vcpus - current_vcpus), memory_mb=max(0, memory_mb - current_memory_mb))


# ---------------------------------------------------------------- claims of creates in flight
#
# A create is seen in the facts only once its domain is defined, minutes after the quota check.
# Until then it holds a claim in the tenant's ledger on the controller (plugin_utils/quota_ledger.py
# keeps it under a lock); usage counts the claims whose VM the facts do not show yet.

CLAIM_SECONDS = 1800.0   # a create that neither finished nor released its claim by then is gone


def live_claims(claims, now):
    """The claims ({vm name: {demand, expires}}) not yet expired at ``now``."""
    return dict((name, claim) for name, claim in (claims or {}).items() if claim.get("expires", 0) > now)


def with_claims(used, claims, visible_vms):
    """``used`` plus the demand of every claim whose VM is not among ``visible_vms`` (the facts'
    domain names): a VM counts once, from the facts as soon as they show it."""
    total = dict(used)
    for name, claim in claims.items():
        if name in visible_vms:
            continue
        for resource, amount in (claim.get("demand") or {}).items():
            total[resource] = total.get(resource, 0) + (amount or 0)
    return total


def assess(tenant, quota, used, claims, key, demand, now, visible_vms=()):
    """Check ``demand`` for the claim ``key`` against ``quota`` counting the other live claims.

    Returns (the ledger with this claim added, a re-run for the same key replacing its own;
    {used: the usage with the other claims, asked, after}). Raises QuotaExceeded."""
    current = live_claims(claims, now)
    current.pop(key, None)
    counted = with_claims(used, current, set(visible_vms))
    after = check_request(tenant, quota, counted, demand)
    current[key] = dict(demand=dict(demand), expires=now + CLAIM_SECONDS)
    return current, dict(used=counted, asked=dict(demand), after=after)


def claim(tenant, quota, used, claims, vm, demand, now, visible_vms=()):
    """The ledger with ``vm``'s claim added, once ``demand`` fits (see assess)."""
    return assess(tenant, quota, used, claims, vm, demand, now, visible_vms)[0]


# ---------------------------------------------------------------- what the quota action is asked

# What a claim may ask for: a VM's size at start, or a resize's increase (images are counted
# from the image store, not claimed).
DEMAND_KEYS = ("vcpus", "memory_mb", "disk_gb", "vms")
CLAIM_KINDS = ("create", "scale")
# A scale's claim is keyed apart from the VM's name: the VM is in the facts while it is resized,
# and with_claims drops the claim of a VM the facts show (they count it at its old size).
SCALE_PREFIX = "scale:"


def claim_key(vm, kind="create"):
    """The ledger key of ``vm``'s claim: its name for a create, ``scale:NAME`` for a scale."""
    if kind not in CLAIM_KINDS:
        raise ValidationError("kind=%r: must be one of %s" % (kind, ", ".join(CLAIM_KINDS)), field="kind", value=kind)
    return SCALE_PREFIX + vm if kind == "scale" else vm


def check_demand(value):
    """A demand {vcpus, memory_mb, disk_gb, vms}: whole numbers >= 0, every key there (0 if left out)."""
    if value is not None and isinstance(value, dict):
        unknown = sorted(str(key) for key in value if key not in DEMAND_KEYS)
        if unknown:
            raise ValidationError("demand: unknown key%s %s (known: %s)" % ("s" if len(unknown) > 1 else "",
                                  ", ".join(unknown), ", ".join(DEMAND_KEYS)), field="demand")
    elif value is not None:
        raise ValidationError("demand: must be a mapping of %s to whole numbers, got %r" % (", ".join(DEMAND_KEYS), value),
                              field="demand")
    return dict(dict((key, 0) for key in DEMAND_KEYS), **check_quota(value, "demand"))


def require_complete(facts_by_host, tenant, ignore_unreachable=False):
    """Refuse to count ``tenant``'s usage while a hypervisor's facts are missing or say it could
    not be read (its VMs would be missed: the usage undercounted), unless ``ignore_unreachable``.
    Returns {host: reason} of those hosts."""
    if not facts_by_host:
        raise ValidationError("no hypervisors to count tenant %s's usage on (hosts is empty)" % tenant, field="hosts")
    unreachable = unreachable_hosts(facts_by_host)
    if unreachable and not ignore_unreachable:
        # The tenant reads this message (a job's output): it names no host and no SSH or libvirt
        # error; the operator finds them in the facts tasks' results above it.
        raise ValidationError(
            "cannot count tenant %s's usage while %d hypervisor(s) cannot be read (their VMs would be missed); "
            "try again later, or ask the operator" % (tenant, len(unreachable)),
            tenant=tenant, unreachable=unreachable)
    return unreachable


def visible_vms(facts_by_host, tenant):
    """The names of ``tenant``'s VMs the facts show (their create claims are counted by the facts)."""
    return sorted(set(dom.get("name") for _host, dom in tenant_domains(facts_by_host, tenant)))


def full_quota(quota):
    """Every resource of ``quota``, None for unlimited (as reports show it)."""
    return dict((name, quota.get(name)) for name in RESOURCE_NAMES)


def image_demand(size_bytes):
    """What one new image counts against a quota: one image, its size in whole GiB (rounded up)."""
    size = int(size_bytes or 0)
    if size < 0:
        raise ValidationError("an image's size cannot be negative, got %d" % size, field="size_bytes", value=size)
    return dict(images=1, image_gb=-(-size // (1 << 30)))


def check_image_quota(tenant, quota, listing, name, size_bytes):
    """Refuse a new image ``name`` of ``size_bytes`` that would pass ``tenant``'s quota (images,
    image_gb) over ``listing`` (image_listing); an image of that name the tenant has already
    counts nothing new (a re-run). Returns {used, asked, after}."""
    used = usage({}, tenant, listing)
    if any(entry.get("tenant") == tenant and entry.get("name") == name for entry in listing or ()):
        asked = dict(images=0, image_gb=0)
    else:
        asked = image_demand(size_bytes)
    after = check_request(tenant, quota, used, asked)
    return dict(used=dict(images=used["images"], image_gb=used["image_gb"]), asked=asked,
                after=dict(images=after["images"], image_gb=after["image_gb"]))
