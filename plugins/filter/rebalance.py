# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Documentation of each filter is in its sidecar file: rebalance.yml, patrol_record.yml,
# patrol_loads.yml. The logic is the package plugins/module_utils/rebalance/; docs/patrol.md explains it.

from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance import api as R
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.api import INVENTORY_DEFAULTS
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.filter_errors import filter_errors
from ansible_collections.kvmfleet.iaas.plugins.plugin_utils.hostvars import fleet_vars, plain

_VARS = tuple(INVENTORY_DEFAULTS) + tuple(v for v in R.PATROL_VARS if v not in INVENTORY_DEFAULTS)


@filter_errors
def rebalance(hostvars, hosts=None, history=None, now=None, **options):
    """hostvars | kvmfleet.iaas.rebalance(hosts=groups['hypervisors'], history=..., max_moves=5)"""
    facts, inventory = fleet_vars(hostvars, hosts, _VARS)
    result = R.plan(facts, inventory, plain(history) if history else None, now=now, **plain(options))
    result["table"] = R.table(result)
    return result


@filter_errors
def patrol_record(history, actions, now=None):
    """history | kvmfleet.iaas.patrol_record(migrations carried out) -> history"""
    return R.record_moves(plain(history) if history else None, plain(actions or []), now=now)


@filter_errors
def patrol_loads(hostvars, hosts=None):
    """hostvars | kvmfleet.iaas.patrol_loads(groups['hypervisors']) -> loads, spread, over, unreachable"""
    facts, inventory = fleet_vars(hostvars, hosts, _VARS)
    return R.loads_of(facts, inventory)


class FilterModule(object):
    def filters(self):
        return {"rebalance": rebalance, "patrol_record": patrol_record, "patrol_loads": patrol_loads}
