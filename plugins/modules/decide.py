# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# The documentation of the kvmfleet.iaas.decide action (plugins/action/decide.py): an action
# runs on the controller and has no module code of its own.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: decide
short_description: Run one of the collection's controller-side decisions as a task
description:
  - Runs one filter of this collection (its keyword arguments given as the option's value) and
    returns what it returns as RV(value), or checks every value a playbook takes.
  - A typed error fails the task with the reason itself as C(msg), not under Ansible's wrapper for
    a failed template, which is why the collection's playbooks decide through this action.
  - Give exactly one option.
version_added: 0.1.0
author:
  - kvmfleet developers (@kvmfleet)
options:
  inputs:
    description:
      - Check every value the named playbook takes, from the play's variables and the
        C(hypervisors) hosts' inventory, against its range (plugin_utils/playbook_inputs.py).
    type: str
    choices: [create_vm, delete_vm, evacuate_host, fleet_status, graphs, migrate_vm, patrol, power_vm, scale_vm, setup_node, submit_vm]
  place:
    description: Keyword arguments of the C(kvmfleet.iaas.place) filter; C(hostvars) is the play's own.
    type: dict
  vm_prepare:
    description: Keyword arguments of the C(kvmfleet.iaas.vm_prepare) filter.
    type: dict
  domain_policy:
    description: Keyword arguments of the C(kvmfleet.iaas.domain_policy) filter.
    type: dict
  rebalance:
    description: Keyword arguments of the C(kvmfleet.iaas.rebalance) filter.
    type: dict
  patrol_loads:
    description: Keyword arguments of the C(kvmfleet.iaas.patrol_loads) filter.
    type: dict
  patrol_record:
    description: Keyword arguments of the C(kvmfleet.iaas.patrol_record) filter.
    type: dict
  migration_uri:
    description: Keyword arguments of the C(kvmfleet.iaas.migration_uri) filter.
    type: dict
  peer_names:
    description: Keyword arguments of the C(kvmfleet.iaas.peer_names) filter.
    type: dict
  tenant_fleet_status:
    description: Keyword arguments of the C(kvmfleet.iaas.tenant_fleet_status) filter; C(hostvars) is the play's own.
    type: dict
attributes:
  check_mode:
    support: full
    description: It changes nothing, in check mode or not.
  diff_mode:
    support: none
    description: It has nothing to show a diff of.
  platform:
    support: full
    platforms: all
    description: Runs on the controller.
notes:
  - Runs on the controller only.
"""

EXAMPLES = r"""
- name: Check what the playbook was given, before anything runs
  kvmfleet.iaas.decide:
    inputs: create_vm

- name: Choose the host
  kvmfleet.iaas.decide:
    place:
      request: "{{ request }}"
      hosts: "{{ groups['hypervisors'] }}"
  register: placement
"""

RETURN = r"""
value:
  description: What the filter returned; for O(inputs), the checked values.
  returned: success
  type: raw
"""
