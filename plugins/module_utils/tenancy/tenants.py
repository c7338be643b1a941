# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tenants and their quotas as the inventory declares them (docs/tenancy.md)::

    kvmfleet_tenants:
      acme: {quota: {vcpus: 16, memory_mb: 32768, disk_gb: 500, vms: 10, images: 5, image_gb: 100}}
      initech: {}                       # the default quota
    kvmfleet_tenant_default_quota: {vcpus: 4, memory_mb: 8192, disk_gb: 100, vms: 4, images: 2, image_gb: 20}

A quota key left out of a tenant's quota comes from the default quota; a key the default leaves
out too is unlimited. Pure logic: imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import check_label

# What a quota limits, in the order errors list them, with how each is shown.
RESOURCES = (
    ("vcpus", "vCPUs"),
    ("memory_mb", "MiB of memory"),
    ("disk_gb", "GiB of disk"),
    ("vms", "VMs"),
    ("images", "images"),
    ("image_gb", "GiB of images"),
)
RESOURCE_NAMES = tuple(name for name, _label in RESOURCES)
TENANT_KEYS = ("quota", "description")
# A sane ceiling: a typo of three extra zeros is refused rather than granted.
QUOTA_CEILING = 10 ** 9


def _fail(where, rule, **details):
    raise ValidationError("%s: %s" % (where, rule), **details)


def check_quota(value, where):
    """A quota mapping {resource: non-negative integer}; unknown keys and bad numbers refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(where, "must be a mapping of %s to whole numbers, got %r" % (", ".join(RESOURCE_NAMES), value))
    unknown = sorted(str(key) for key in value if key not in RESOURCE_NAMES)
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        _fail(where, "unknown quota key%s %s (known: %s)" % (plural, ", ".join(unknown), ", ".join(RESOURCE_NAMES)))
    quota = {}
    for key, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int):
            try:
                parsed = int(str(number).strip(), 10)
            except (TypeError, ValueError):
                _fail("%s.%s" % (where, key), "must be a whole number >= 0, got %r" % (number,))
            number = parsed
        if number < 0 or number > QUOTA_CEILING:
            _fail("%s.%s" % (where, key), "must be a whole number >= 0 and <= %d, got %r" % (QUOTA_CEILING, number))
        quota[key] = number
    return quota


class Tenants:
    """The declared tenants: ``quota(name)`` is the effective quota, ``check(name)`` refuses an
    unknown tenant or a name that is not a label."""

    def __init__(self, declared=None, default_quota=None):
        self.default_quota = check_quota(default_quota, "kvmfleet_tenant_default_quota")
        if declared is None:
            declared = {}
        if not isinstance(declared, dict):
            _fail("kvmfleet_tenants", "must be a mapping of tenant names to {quota: ...}, got %r" % (declared,))
        self.quotas = {}
        for name, entry in declared.items():
            check_label(name, "kvmfleet_tenants key")
            entry = {} if entry is None else entry
            if not isinstance(entry, dict):
                _fail("kvmfleet_tenants.%s" % name, "must be a mapping (quota, description), got %r" % (entry,))
            unknown = sorted(str(key) for key in entry if key not in TENANT_KEYS)
            if unknown:
                _fail("kvmfleet_tenants.%s" % name, "unknown key%s %s (known: %s)"
                      % ("s" if len(unknown) > 1 else "", ", ".join(unknown), ", ".join(TENANT_KEYS)))
            own = check_quota(entry.get("quota"), "kvmfleet_tenants.%s.quota" % name)
            self.quotas[name] = dict(self.default_quota, **own)

    def names(self):
        return sorted(self.quotas)

    def check(self, name, field="tenant"):
        """``name`` as a declared tenant; None (the operator) passes through."""
        if name is None or name == "":
            return None
        check_label(name, field)
        if name not in self.quotas:
            raise ValidationError("%s=%r: no such tenant (declare it in kvmfleet_tenants)" % (field, name),
                                  field=field, value=name)
        return name

    def quota(self, name):
        return dict(self.quotas[self.check(name)])
