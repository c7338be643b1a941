# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the kvmfleet.iaas.quota action does, without Ansible: claim, release or report a
tenant's quota from the declared tenants, the hypervisors' facts and the controller's ledger
(docs/tenancy.md#claims). The action (plugins/action/quota.py) only gathers its inputs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy import quota as Q
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.tenants import Tenants
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import check_name
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.hostvars import facts_by_host
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.quota_ledger import QuotaLedger

STATES = ("claimed", "released", "query")


def _counted(resources):
    """The resources a claim counts (images are the image store's, not known here)."""
    return dict((name, resources.get(name)) for name in Q.DEMAND_KEYS)


def quota_task(args, tenants, default_quota, hostvars, state_dir=None, check_mode=False, clock=None):
    """``args``: the action's options (tenant, vm, demand, kind, state, hosts, ignore_unreachable).
    ``tenants``, ``default_quota``: the inventory's kvmfleet_tenants and
    kvmfleet_tenant_default_quota; ``hostvars``: where each host's kvmfleet_hypervisor facts are.
    Returns the task's result; raises QuotaExceeded or another KvmfleetError."""
    declared = Tenants(tenants, default_quota)
    tenant = args.get("tenant")
    if not tenant:
        raise ValidationError("tenant is required: a quota is a tenant's (the operator has none)", field="tenant")
    quota = declared.quota(tenant)          # refuses an undeclared tenant or one that is not a label
    state = args.get("state") or "claimed"
    if state not in STATES:
        raise ValidationError("state=%r: must be one of %s" % (state, ", ".join(STATES)), field="state", value=state)
    ledger = QuotaLedger(state_dir) if clock is None else QuotaLedger(state_dir, clock=clock)
    result = dict(tenant=tenant, state=state)
    key = None
    if state != "query":
        if not args.get("vm"):
            raise ValidationError("vm is required with state=%s: the VM the claim is for" % state, field="vm")
        key = Q.claim_key(check_name(args["vm"], "vm"), args.get("kind") or "create")
        result.update(vm=args["vm"], kind=args.get("kind") or "create", key=key)
    demand = Q.check_demand(args.get("demand")) if state == "claimed" else None
    if state == "released":
        result["released"] = ledger.release(tenant, key, record=not check_mode)
        return result

    facts = facts_by_host(hostvars, list(args.get("hosts") or ()))
    unreachable = Q.require_complete(facts, tenant, args.get("ignore_unreachable", False))
    used = Q.usage(facts, tenant)
    visible = Q.visible_vms(facts, tenant)
    result.update(quota=_counted(Q.full_quota(quota)), complete=not unreachable)
    if state == "query":
        claims = dict((name, claim) for name, claim in ledger.claims(tenant).items() if name not in visible)
        result.update(used=_counted(Q.with_claims(used, claims, visible)),
                      claims=dict((name, claim.get("demand") or {}) for name, claim in sorted(claims.items())))
        return result
    report = ledger.request(tenant, quota, used, key, demand, visible, record=not check_mode)
    result.update(claimed=True, used=_counted(report["used"]), asked=_counted(report["asked"]),
                  after=_counted(report["after"]))
    return result
