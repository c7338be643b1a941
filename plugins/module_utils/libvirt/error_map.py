# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt's errors as the typed errors of errors.py, and which of them end a connection.

libvirt's numeric codes are ABI; spelled out here so the mapping works (and is tested) without
libvirt-python. No libvirt import.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from contextlib import contextmanager

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    ConnectionFailed,
    DomainNotFound,
    MigrationUnsafe,
    VirtError,
    VirtTimeout,
)

ERR_NO_SUPPORT = 3
ERR_NO_CONNECT = 5
ERR_INVALID_CONN = 6
ERR_INVALID_ARG = 8
ERR_SYSTEM_ERROR = 38
ERR_RPC = 39
ERR_NO_DOMAIN = 42
ERR_AUTH_FAILED = 45
ERR_NO_STORAGE_POOL = 49
ERR_NO_STORAGE_VOL = 50
ERR_OPERATION_TIMEOUT = 68
ERR_AUTH_CANCELLED = 79
ERR_NO_DOMAIN_METADATA = 80
ERR_MIGRATE_UNSAFE = 81
ERR_AGENT_UNRESPONSIVE = 86
ERR_AUTH_UNAVAILABLE = 94
# "Unsupported flag or argument": drivers without NVRAM, hotpluggable vCPUs, ... refuse those flags
UNSUPPORTED_CODES = frozenset((ERR_NO_SUPPORT, ERR_INVALID_ARG))

_FROM_RPC = 7
_FROM_REMOTE = 13
_FROM_SSH = 50
_FROM_LIBSSH = 66

_CONNECTION_CODES = frozenset((ERR_NO_CONNECT, ERR_INVALID_CONN, ERR_RPC, ERR_AUTH_FAILED,
                               ERR_AUTH_CANCELLED, ERR_AUTH_UNAVAILABLE))
_CONNECTION_SOURCES = frozenset((_FROM_RPC, _FROM_REMOTE, _FROM_SSH, _FROM_LIBSSH))
_TIMEOUT_CODES = frozenset((ERR_OPERATION_TIMEOUT, ERR_AGENT_UNRESPONSIVE))


def map_libvirt_error(err, uri=None, domain=None, operation=None):
    """The typed error for a libvirtError (or anything with its get_error_* methods).

    libvirt's own message is kept as the message; its code and source go in ``details``.
    """
    code = err.get_error_code()
    source = err.get_error_domain()
    message = err.get_error_message() or str(err)
    details = dict(libvirt_code=code, libvirt_source=source)
    if uri is not None:
        details["uri"] = uri
    if domain is not None:
        details["domain"] = domain
    if operation is not None:
        details["operation"] = operation
    if code == ERR_NO_DOMAIN:
        return DomainNotFound(message, **details)
    if code in _TIMEOUT_CODES:
        return VirtTimeout(message, **details)
    if code in _CONNECTION_CODES or source in _CONNECTION_SOURCES:
        return ConnectionFailed(message, **details)
    if code == ERR_MIGRATE_UNSAFE:
        return MigrationUnsafe(message, **details)
    return VirtError(message, **details)


def libvirt_code(err):
    """libvirt's error code of a typed error (None when libvirt did not raise it)."""
    return err.details.get("libvirt_code")


def is_fatal(err):
    """Errors after which the connection is of no more use."""
    return isinstance(err, ConnectionFailed) or (isinstance(err, VirtTimeout) and "domain" not in err.details)


class Outcome:
    """What ``nonfatal`` saw: ``error`` is the VirtError it swallowed, or None."""

    error = None


@contextmanager
def nonfatal():
    """Run a call whose failure the caller can do without (a fallback, an optional fact).

    A VirtError the connection survives is swallowed and kept in the yielded ``Outcome``; one
    that ends the connection (``is_fatal``) is raised, since every later call would fail too.
    """
    outcome = Outcome()
    try:
        yield outcome
    except VirtError as err:
        if is_fatal(err):
            raise
        outcome.error = err
