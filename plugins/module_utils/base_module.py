# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of every kvmfleet module, and the one place a typed error becomes ``fail_json``.

A module subclasses ``KvmfleetModule``, declares ``argument_spec`` (plus ``module_kwargs`` for
AnsibleModule: ``supports_check_mode``, ``required_if``, ...) and writes ``run()``, which returns
the result dict or raises ``KvmfleetError``. ``main()`` is ``MyModule.execute()``.

libvirt is opt-out: a module with ``uses_libvirt = False`` gets no ``uri``/``timeout`` options and
never imports the libvirt layer, so it runs without libvirt-python. The others get the options
(document them with the ``kvmfleet.iaas.connection`` doc fragment) and ``connect()``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError, MissingLibrary

# keys fail_json sets itself; an error's details must not overwrite them
_RESERVED_RESULT_KEYS = frozenset(("msg", "failed", "changed", "exception", "invocation", "warnings"))


def libvirt_layer():
    """The libvirt layer's connection module (``VirtConnection``), imported on first use.

    The base reaches libvirt only through here and ``missing_libraries``: imported inside the
    functions rather than at the top, so that modules without libvirt neither import it nor need
    libvirt-python.
    """
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt import connection
    return connection


def connection_argument_spec():
    """The ``uri`` and ``timeout`` options of modules that talk to libvirt."""
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.deadline import DEFAULT_TIMEOUT
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.uri import DEFAULT_URI
    return dict(uri=dict(type="str", default=DEFAULT_URI), timeout=dict(type="float", default=DEFAULT_TIMEOUT))


def error_result(err):
    """``fail_json`` keyword arguments for a typed error: its message and its details."""
    details = dict((k, v) for k, v in err.details.items() if k not in _RESERVED_RESULT_KEYS)
    return dict(details, msg=str(err))


class KvmfleetModule:
    """Base of a kvmfleet module. Subclasses set the class attributes and write ``run()``."""

    argument_spec = {}
    # further AnsibleModule keyword arguments: supports_check_mode, required_if, ...
    module_kwargs = {}
    # False: the module needs no libvirt (no uri/timeout options, no connect())
    uses_libvirt = True
    # open libvirt read-only (info modules)
    readonly = False

    def __init__(self, module=None):
        if module is None:
            spec = connection_argument_spec() if self.uses_libvirt else {}
            spec.update(self.argument_spec)
            module = AnsibleModule(argument_spec=spec, **self.module_kwargs)
        self.module = module
        self.params = module.params

    @property
    def check_mode(self):
        return self.module.check_mode

    def connect(self):
        """A VirtConnection to the module's ``uri``; use it as a context manager."""
        if not self.uses_libvirt:
            raise TypeError("%s declares uses_libvirt = False" % type(self).__name__)
        return libvirt_layer().VirtConnection(self.params["uri"], timeout=self.params["timeout"],
                                              readonly=self.readonly)

    def missing_libraries(self):
        """``(name, import traceback)`` of each Python library the module needs and cannot import.

        Read when the module runs, not when it is defined. Modules with other needs extend it.
        """
        if not self.uses_libvirt:
            return []
        from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt import binding
        from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml import parser
        return [(name, error) for name, present, error in (
            ("libvirt-python", binding.HAS_LIBVIRT, binding.LIBVIRT_IMPORT_ERROR),
            ("lxml", parser.HAS_LXML, parser.LXML_IMPORT_ERROR),
        ) if not present]

    def run(self):
        """Do the work; return the result dict for exit_json. Raise KvmfleetError to fail."""
        raise NotImplementedError

    def with_diff(self, result, before, after, header=None):
        """``result`` with ``diff`` set from ``before``/``after`` when the task runs in diff mode."""
        if self.module._diff:
            result["diff"] = dict(before=before, after=after)
            if header is not None:
                result["diff"].update(before_header=header, after_header=header)
        return result

    def fail(self, err):
        if isinstance(err, MissingLibrary):   # a library the module did not declare, found missing in use
            self.module.fail_json(msg=missing_required_lib(err.library), exception=err.import_error)
        self.module.fail_json(**error_result(err))

    @classmethod
    def execute(cls):
        """The module's entry point: libraries checked, ``run()`` run, typed errors failed here only."""
        instance = cls()
        module = instance.module
        for name, error in instance.missing_libraries():
            module.fail_json(msg=missing_required_lib(name), exception=error)
        try:
            result = instance.run()
        except KvmfleetError as err:
            instance.fail(err)
            return
        result.setdefault("changed", False)
        module.exit_json(**result)
