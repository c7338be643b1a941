# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules' own check of a tenant's request: a VM another tenant (or the operator) owns is,
for that tenant, a VM that does not exist.

The playbooks filter by owner before they call a module; the modules check again on the host, so
that a task run by hand or from another playbook with ``tenant`` set cannot reach past it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.quota import acts_on


def find_visible_domain(virt, name, tenant=None):
    """The domain ``name`` when ``tenant`` may act on it (None: the operator, who acts on every
    VM), else None, exactly as when there is no such domain."""
    dom = virt.find_domain(name)
    if dom is None or tenant is None:
        return dom
    owner = (virt.domain_metadata(dom) or {}).get("tenant")
    return dom if acts_on(tenant, owner) else None
