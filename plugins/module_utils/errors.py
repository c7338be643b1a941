# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed exceptions shared by every layer of kvmfleet.iaas.

Pure logic raises these; only a module's entry point turns them into ``fail_json``.
This file imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class KvmfleetError(Exception):
    """Base of every error the collection raises on purpose.

    ``details`` is a dict of extra, JSON-serialisable facts a module returns beside ``msg``.
    """

    def __init__(self, msg, **details):
        super(KvmfleetError, self).__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self):
        return self.msg


class ValidationError(KvmfleetError):
    """A user input is wrong; raised before anything is made."""


class PlacementError(KvmfleetError):
    """No host can take the request. ``details['rejected']`` maps host -> list of reasons."""


class CommandFailed(KvmfleetError):
    """A command run on the host (qemu-img, systemctl) failed for a reason other than a policy."""


class VirtError(KvmfleetError):
    """A libvirt operation failed."""


class ConnectionFailed(VirtError):
    """libvirt could not be reached at the URI."""


class VirtTimeout(VirtError):
    """A libvirt call did not answer in time."""


class DomainNotFound(VirtError):
    """No domain of that name."""


class NotManaged(VirtError):
    """A domain exists with that name but kvmfleet did not make it."""


class Conflict(KvmfleetError):
    """The request clashes with something that exists (a name on another host, a disk, a MAC)."""


class MigrationUnsafe(VirtError):
    """libvirt refused a migration as unsafe (VIR_ERR_MIGRATE_UNSAFE: disks not on storage it knows is shared)."""


class MissingLibrary(KvmfleetError):
    """A Python library the code needs cannot be imported. ``library``: its name as pip knows it.

    Raised where the library is first used, so a filter names it (AnsibleFilterError) and a module
    fails with Ansible's missing_required_lib message (base_module), never with a misleading error
    from the code that went on without it.
    """

    def __init__(self, library, import_error=None):
        super(MissingLibrary, self).__init__(
            "Failed to import the required Python library (%s) on this Python: install %s where the "
            "code runs (the controller for filters, the managed host for modules)" % (library, library),
            library=library)
        self.library = library
        self.import_error = import_error
