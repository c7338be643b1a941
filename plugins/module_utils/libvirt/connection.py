# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``VirtConnection``: a libvirt connection whose every call has a deadline and raises typed errors.

The connection itself (open, close, call) is here; its calls come from one mixin per concern:
host.py, storage.py, domains.py, migration.py, resize.py. They use only ``self.call``,
``self.conn``, ``self.uri``, ``self._change_timeout()`` and
``self.agent_domain()``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ConnectionFailed, VirtError, VirtTimeout
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.binding import HAS_LIBVIRT, is_libvirt_error, libvirt
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.deadline import (
    DEFAULT_TIMEOUT,
    MUTATION_TIMEOUT,
    call_with_deadline,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.domains import DomainCalls
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.error_map import map_libvirt_error
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.host import HostCalls
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.migration import MigrationCalls
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.resize import ResizeCalls
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.storage import StorageCalls
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.uri import DEFAULT_URI


def _ignore_libvirt_error(_context, _error):
    """libvirt prints every error to stderr unless a handler is set; we raise them instead."""


def _close_quietly(conn):
    try:
        conn.close()
    except Exception:
        pass


class VirtConnection(HostCalls, StorageCalls, DomainCalls, MigrationCalls, ResizeCalls):
    """A libvirt connection whose every call has a deadline and raises typed errors.

        with VirtConnection("qemu:///system", timeout=10) as virt:
            dom = virt.lookup_domain("web1")
            virt.start_domain(dom)

    A call that times out at the connection level (not one domain's) leaves the connection
    unusable: later calls fail at once instead of queueing behind the hung one.
    """

    def __init__(self, uri=DEFAULT_URI, timeout=DEFAULT_TIMEOUT, readonly=False):
        self.uri = uri or DEFAULT_URI
        self.timeout = timeout
        self.readonly = readonly
        self._conn = None
        self._broken = None
        self._agent_conn = None
        self._agent_refused = False
        self._agent_domains = {}

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    @property
    def conn(self):
        """The raw virConnect, for the calls of this package (run them via call())."""
        if self._conn is None:
            raise ConnectionFailed("not connected to libvirt at %s" % self.uri, uri=self.uri)
        return self._conn

    def _connect(self, opener, purpose=""):
        """A new virConnect from ``opener`` (libvirt.open or openReadOnly), typed errors."""
        try:
            return call_with_deadline(opener, (self.uri,), timeout=self.timeout,
                                      description="connecting to %s%s" % (self.uri, purpose),
                                      on_abandoned=_close_quietly)
        except VirtTimeout as err:
            raise VirtTimeout("cannot connect to libvirt at %s: %s" % (self.uri, err), uri=self.uri,
                              timeout=self.timeout)
        except libvirt.libvirtError as err:
            # whatever went wrong, the host is not reachable
            mapped = map_libvirt_error(err, uri=self.uri, operation="open")
            raise ConnectionFailed("cannot connect to libvirt at %s: %s" % (self.uri, mapped), **mapped.details)

    def open(self):
        if not HAS_LIBVIRT:
            raise VirtError("libvirt-python is not installed", uri=self.uri)
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        self._conn = self._connect(libvirt.openReadOnly if self.readonly else libvirt.open)
        self._broken = None
        return self

    def agent_domain(self, dom):
        """``dom`` on a connection that may talk to its guest agent, or None when there is none.

        libvirt refuses guest agent queries (addresses, hostname) on a read-only connection:
        the agent is guest-controlled. A read-only connection keeps every other call read-only
        and opens a full one, once and only when an agent is to be asked; if that is refused
        (a user with read-only access), agents are not asked and the leases answer.
        """
        if not self.readonly:
            return dom
        if self._agent_conn is None and not self._agent_refused:
            try:
                self._agent_conn = self._connect(libvirt.open, " for the guest agent")
            except (VirtTimeout, ConnectionFailed):
                self._agent_refused = True
        if self._agent_conn is None:
            return None
        uuid = dom.UUIDString()
        if uuid not in self._agent_domains:     # addresses and hostname: one lookup per domain
            self._agent_domains[uuid] = self.call(self._agent_conn.lookupByUUIDString, uuid, domain=dom.name())
        return self._agent_domains[uuid]

    def _close_with_deadline(self, conn):
        try:
            call_with_deadline(conn.close, timeout=min(self.timeout or 5.0, 5.0))
        except Exception:
            pass

    def close(self):
        agent_conn, self._agent_conn = self._agent_conn, None
        self._agent_domains = {}
        if agent_conn is not None:
            self._close_with_deadline(agent_conn)
        conn, self._conn = self._conn, None
        if conn is None or self._broken:
            return  # a hung connection's close would hang too; the process exit drops it
        self._close_with_deadline(conn)

    def call(self, func, *args, timeout=None, domain=None):
        """``func(*args)`` under the deadline (``timeout`` or the connection's), errors typed.

        Pass ``domain`` (a name) for per-domain calls: their timeout then marks only that
        domain, not the connection, as lost.
        """
        what = getattr(func, "__name__", "libvirt call")
        if self._broken:
            raise VirtTimeout("libvirt at %s stopped answering (%s)" % (self.uri, self._broken),
                              uri=self.uri, operation=what)
        try:
            return call_with_deadline(func, args, timeout=self.timeout if timeout is None else timeout,
                                      description=what)
        except VirtTimeout as err:
            details = dict(err.details, uri=self.uri, operation=what)
            if domain is None:
                self._broken = str(err)
            else:
                details["domain"] = domain
            raise VirtTimeout("%s%s" % ("%s: " % domain if domain else "", err), **details)
        except Exception as err:
            if is_libvirt_error(err):
                raise map_libvirt_error(err, uri=self.uri, domain=domain, operation=what)
            raise

    def _change_timeout(self):
        return max(self.timeout or 0, MUTATION_TIMEOUT)
