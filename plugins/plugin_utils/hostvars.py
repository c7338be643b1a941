# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side helpers shared by the filter plugins: reading facts out of hostvars."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

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
        raise AnsibleFilterError("%s is not in the inventory" % host)


def facts_by_host(hostvars, hosts):
    """{host: kvmfleet_hypervisor facts as plain data, or None where none were gathered}."""
    if isinstance(hosts, str):
        hosts = [hosts]
    result = {}
    for name in sorted(set(str(h) for h in hosts)):
        facts = host_vars(hostvars, name).get(FACTS_VAR)
        result[name] = plain(facts) if facts else None
    return result
