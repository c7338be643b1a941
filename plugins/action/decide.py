# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""kvmfleet.iaas.decide: one of the collection's controller-side decisions, run as a task.

A filter that refuses in a template fails its task under Ansible's own wrapper ("Task failed:
Finalization of task args for 'ansible.builtin.set_fact' failed: Error while resolving value
for ...: The filter plugin ... failed: <reason>"). The playbooks run their decisions through this
action instead: the task fails with the reason itself as ``msg`` (and the error's details), or
returns the decision as ``value``. ``inputs: PLAYBOOK`` checks every value the playbook takes
(plugin_utils/playbook_inputs.py) before anything runs. See docs/playbooks.md.

    - name: Choose the host
      kvmfleet.iaas.decide:
        place:                       # a filter of this collection, with its keyword arguments
          request: "{{ request }}"   # hostvars, the filter's input, is the play's own
          hosts: "{{ groups['hypervisors'] }}"
      register: placement            # placement.value is what the filter returns
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect

from ansible.plugins.action import ActionBase

from ansible_collections.kvmfleet.iaas.plugins.filter import domain_policy, fleet, place, rebalance, vm_prepare
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils import playbook_inputs
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.hostvars import plain

FILTER_MODULES = (domain_policy, fleet, place, rebalance, vm_prepare)


def decisions():
    """{filter name: the undecorated function} of every filter plugin of the collection."""
    found = {}
    for module in FILTER_MODULES:
        for name, function in module.FilterModule().filters().items():
            found[name] = getattr(function, "__wrapped__", function)
    return found


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        result["changed"] = False
        known = decisions()
        asked = sorted(self._task.args)
        if len(asked) != 1 or asked[0] not in set(known) | {"inputs"}:
            result.update(failed=True, msg="decide takes one of inputs, %s; got %s"
                                           % (", ".join(sorted(known)), ", ".join(asked) or "nothing"))
            return result
        name = asked[0]
        arguments = self._task.args[name]
        try:
            if name == "inputs":
                result["value"] = self._inputs(arguments, task_vars)
            else:
                function = known[name]
                kwargs = dict(arguments or {})
                if next(iter(inspect.signature(function).parameters)) == "hostvars":
                    kwargs["hostvars"] = task_vars["hostvars"]
                result["value"] = function(**kwargs)
        except KvmfleetError as err:
            result.update(failed=True, msg=str(err))
            if err.details and name != "inputs":     # an input's details would only repeat msg
                result["details"] = plain(err.details)
        return result

    def _inputs(self, playbook, task_vars):
        controller, per_host = playbook_inputs.names(playbook)
        hypervisors = list(task_vars.get("groups", {}).get("hypervisors", []))
        given = {name: self._templar.template(task_vars[name]) for name in controller if name in task_vars}
        host_given = {}
        for host in hypervisors if per_host else ():
            variables = task_vars["hostvars"][host]
            host_given[host] = {name: variables[name] for name in per_host if name in variables}
        return playbook_inputs.check_inputs(playbook, plain(given), plain(host_given), hypervisors)
