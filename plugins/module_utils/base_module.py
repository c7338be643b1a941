# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A thin base for kvmfleet modules that talk to libvirt.

A module subclasses ``KvmfleetModule``, declares ``argument_spec`` (the connection options
``uri`` and ``timeout`` are added; document them with the ``kvmfleet.iaas.connection`` doc
fragment) and implements ``run()`` returning the result dict. ``main()`` is then
``MyModule.execute()``: it checks the libraries, runs ``run()`` and turns ``KvmfleetError``
into ``fail_json(msg=..., **details)``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.deadline import DEFAULT_TIMEOUT
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.uri import DEFAULT_URI
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.parser import HAS_LXML, LXML_IMPORT_ERROR

CONNECTION_ARGUMENT_SPEC = dict(
    uri=dict(type="str", default=DEFAULT_URI),
    timeout=dict(type="float", default=DEFAULT_TIMEOUT),
)

# keys fail_json sets itself; an error's details must not overwrite them
_RESERVED_RESULT_KEYS = frozenset(("msg", "failed", "changed", "exception", "invocation", "warnings"))


class KvmfleetModule:
    """Base of a kvmfleet module. Subclasses set the class attributes and write ``run()``."""

    argument_spec = {}
    # further AnsibleModule keyword arguments: supports_check_mode, required_if, ...
    module_kwargs = {}
    # open libvirt read-only (info modules)
    readonly = False

    def __init__(self, module=None):
        if module is None:
            spec = dict(CONNECTION_ARGUMENT_SPEC)
            spec.update(self.argument_spec)
            module = AnsibleModule(argument_spec=spec, **self.module_kwargs)
        self.module = module
        self.params = module.params

    def connect(self):
        """A VirtConnection to the module's ``uri``; use it as a context manager."""
        # imported here, so that importing base_module does not import libvirt
        from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.connection import VirtConnection

        return VirtConnection(self.params["uri"], timeout=self.params["timeout"], readonly=self.readonly)

    def run(self):
        """Do the work; return the result dict for exit_json. Raise KvmfleetError to fail."""
        raise NotImplementedError

    def fail(self, err):
        details = dict((k, v) for k, v in err.details.items() if k not in _RESERVED_RESULT_KEYS)
        self.module.fail_json(msg=str(err), **details)

    @classmethod
    def execute(cls):
        """The module's entry point."""
        instance = cls()
        module = instance.module
        from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.binding import (
            HAS_LIBVIRT,
            LIBVIRT_IMPORT_ERROR,
        )

        if not HAS_LIBVIRT:
            module.fail_json(msg=missing_required_lib("libvirt-python"), exception=LIBVIRT_IMPORT_ERROR)
        if not HAS_LXML:
            module.fail_json(msg=missing_required_lib("lxml"), exception=LXML_IMPORT_ERROR)
        try:
            result = instance.run()
        except KvmfleetError as err:
            instance.fail(err)
            return
        result.setdefault("changed", False)
        module.exit_json(**result)
