# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error path of the filter plugins.

Pure code refuses with a typed error (module_utils/errors.py); a filter decorated with
``filter_errors`` turns that into AnsibleFilterError with the same message, for use in a
template. The undecorated function stays reachable as ``__wrapped__``: the ``kvmfleet.iaas.decide``
action calls it, so that a playbook task fails with the bare reason as its ``msg`` instead of
Ansible's templating wrapper around it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools

from ansible.errors import AnsibleFilterError

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError


def filter_errors(func):
    """Decorator: KvmfleetError raised by ``func`` -> AnsibleFilterError with its message."""
    @functools.wraps(func)
    def filter_function(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KvmfleetError as err:
            raise AnsibleFilterError(str(err))
    return filter_function
