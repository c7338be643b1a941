# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side helpers shared by the filter plugins: reading facts and variables out of hostvars."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

FACTS_VAR = "kvmfleet_hypervisor"


def plain(value):
    """Ansible's lazy/tagged containers -> plain dicts, lists and str (what pure code expects)."""
    if isinstance(value, dict) or hasattr(value, "keys"):
        return {str(k): plain(value[k]) for k in value.keys()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def host_vars(hostvars, host):
    try:
        return hostvars[host]
    except KeyError:
        raise ValidationError("%s is not in the inventory" % host, host=str(host))


def candidate_hosts(hostvars, hosts=None):
    """Sorted host names: ``hosts`` (a name or a list), or every host of hostvars with facts."""
    if hosts is None:
        hosts = [h for h in hostvars.keys() if host_vars(hostvars, h).get(FACTS_VAR)]
    elif isinstance(hosts, str):
        hosts = [hosts]
    return sorted(set(str(h) for h in hosts))


def facts_by_host(hostvars, hosts):
    """{host: kvmfleet_hypervisor facts as plain data, or None where none were gathered}."""
    return {name: _facts(host_vars(hostvars, name)) for name in candidate_hosts(hostvars, hosts)}


def fleet_vars(hostvars, hosts, variables):
    """({host: facts or None}, {host: {variable: plain value}}) for ``hosts`` (see candidate_hosts)."""
    facts, inventory = {}, {}
    for name in candidate_hosts(hostvars, hosts):
        found = host_vars(hostvars, name)
        facts[name] = _facts(found)
        inventory[name] = {key: plain(found.get(key)) for key in variables}
    return facts, inventory


def _facts(variables):
    facts = variables.get(FACTS_VAR)
    return plain(facts) if facts else None
