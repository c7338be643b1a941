# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvmfleet.iaas.quota: claim, release or report a tenant's quota on the controller, around a
create or a scale (docs/tenancy.md#claims). The work is plugin_utils/quota_task.py's; this only
gathers the options, the inventory's tenants and the hypervisors' facts.

    - name: Claim the new VM's share of the tenant's quota
      kvmfleet.iaas.quota:
        tenant: "{{ tenant }}"
        vm: "{{ name }}"
        demand: {vcpus: "{{ vcpus }}", memory_mb: "{{ memory_mb }}", disk_gb: "{{ disk_gb }}", vms: 1}
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.quota import QuotaExceeded
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.hostvars import plain
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.quota_task import quota_task

ARGUMENT_SPEC = dict(
    tenant=dict(type="str", required=True),
    vm=dict(type="str"),
    demand=dict(type="dict"),
    kind=dict(type="str", default="create", choices=["create", "scale"]),
    state=dict(type="str", default="claimed", choices=["claimed", "released", "query"]),
    hosts=dict(type="list", elements="str"),
    state_dir=dict(type="path"),
    ignore_unreachable=dict(type="bool", default=False),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        _spec, args = self.validate_argument_spec(ARGUMENT_SPEC, required_if=[("state", "claimed", ("vm",)),
                                                                              ("state", "released", ("vm",))])
        args = dict(args)
        if args["hosts"] is None:
            args["hosts"] = list(task_vars.get("groups", {}).get("hypervisors", []))
        inventory = dict((name, plain(self._templar.template(task_vars.get(name))))
                         for name in ("kvmfleet_tenants", "kvmfleet_tenant_default_quota", "kvmfleet_quota_state_dir"))
        try:
            result.update(quota_task(plain(args), inventory["kvmfleet_tenants"], inventory["kvmfleet_tenant_default_quota"],
                                     task_vars["hostvars"], args["state_dir"] or inventory["kvmfleet_quota_state_dir"],
                                     check_mode=bool(self._play_context.check_mode)))
        except QuotaExceeded as err:
            result.update(failed=True, msg=str(err), over=plain(err.details.get("over")))
        except KvmfleetError as err:
            result.update(failed=True, msg=str(err))
        # Bookkeeping on the controller, not a change to the fleet.
        result["changed"] = False
        return result
