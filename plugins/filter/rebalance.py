# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documentation of each filter is in its sidecar file: rebalance.yml, patrol_record.yml,
# patrol_loads.yml. The logic is plugins/module_utils/rebalance.py; docs/patrol.md explains it.

from ansible.errors import AnsibleFilterError

from ansible_collections.kvmfleet.iaas.plugins.module_utils import rebalance as R
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement import INVENTORY_DEFAULTS

FACTS_VAR = "kvmfleet_hypervisor"
_VARS = tuple(INVENTORY_DEFAULTS) + tuple(v for v in R.PATROL_VARS if v not in INVENTORY_DEFAULTS)


def _plain(value):
    """Ansible's lazy/unsafe containers -> plain dicts, lists and strings."""
    if isinstance(value, dict) or hasattr(value, "keys"):
        return {str(k): _plain(value[k]) for k in value.keys()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _fleet(hostvars, hosts):
    if hosts is None:
        hosts = [h for h in hostvars.keys() if hostvars[h].get(FACTS_VAR)]
    elif isinstance(hosts, str):
        hosts = [hosts]
    facts, inventory = {}, {}
    for name in sorted(set(str(h) for h in hosts)):
        try:
            variables = hostvars[name]
        except KeyError:
            raise AnsibleFilterError("%s is not in the inventory" % name)
        value = variables.get(FACTS_VAR)
        facts[name] = _plain(value) if value else None
        inventory[name] = {key: _plain(variables.get(key)) for key in _VARS}
    return facts, inventory


def rebalance(hostvars, hosts=None, history=None, now=None, **options):
    """hostvars | kvmfleet.iaas.rebalance(hosts=groups['hypervisors'], history=..., max_moves=5)"""
    facts, inventory = _fleet(hostvars, hosts)
    try:
        result = R.plan(facts, inventory, _plain(history) if history else None, now=now, **_plain(options))
    except KvmfleetError as err:
        raise AnsibleFilterError("rebalance: %s" % err)
    result["table"] = R.table(result)
    return result


def patrol_record(history, actions, now=None):
    """history | kvmfleet.iaas.patrol_record(migrations carried out) -> history"""
    return R.record_moves(_plain(history) if history else None, _plain(actions or []), now=now)


def patrol_loads(hostvars, hosts=None):
    """hostvars | kvmfleet.iaas.patrol_loads(groups['hypervisors']) -> loads, spread, over, unreachable"""
    facts, inventory = _fleet(hostvars, hosts)
    try:
        return R.loads_of(facts, inventory)
    except KvmfleetError as err:
        raise AnsibleFilterError("patrol_loads: %s" % err)


class FilterModule(object):
    def filters(self):
        return {"rebalance": rebalance, "patrol_record": patrol_record, "patrol_loads": patrol_loads}
