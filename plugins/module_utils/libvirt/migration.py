# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration calls of ``VirtConnection``: peer-to-peer migration watched while it runs, its job
statistics, post-copy, max downtime and abort. plugins/module_utils/migration.py decides the
flags and parameters by name; they become libvirt's values here."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError, VirtError, VirtTimeout
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.binding import is_libvirt_error, libvirt
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.error_map import map_libvirt_error, nonfatal


class MigrationCalls:
    """Mixin of VirtConnection (connection.py)."""

    @staticmethod
    def migration_flags(names):
        """libvirt's VIR_MIGRATE_* value for flag names ("LIVE", "PEER2PEER", ...)."""
        flags = 0
        for name in names:
            try:
                flags |= getattr(libvirt, "VIR_MIGRATE_" + name)
            except AttributeError:
                raise VirtError("this libvirt-python has no migration flag VIR_MIGRATE_%s" % name)
        return flags

    @staticmethod
    def migration_params(named):
        """{param name ("BANDWIDTH", ...): value} -> libvirt's typed parameter dict."""
        params = {}
        for name, value in named.items():
            try:
                params[getattr(libvirt, "VIR_MIGRATE_PARAM_" + name)] = value
            except AttributeError:
                raise VirtError("this libvirt-python has no migration parameter VIR_MIGRATE_PARAM_%s" % name)
        return params

    def job_stats(self, dom, completed=False):
        """The domain's job statistics (of the running job, or of the last completed one)."""
        flags = (libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED) \
            if completed else 0
        return self.call(dom.jobStats, flags, domain=dom.name())

    def abort_job(self, dom):
        return self.call(dom.abortJob, domain=dom.name())

    def start_postcopy(self, dom):
        return self.call(dom.migrateStartPostCopy, 0, domain=dom.name())

    def set_max_downtime(self, dom, milliseconds):
        return self.call(dom.migrateSetMaxDowntime, int(milliseconds), 0, domain=dom.name())

    def migrate_p2p(self, dom, destination_uri, flag_names, params=None, max_downtime_ms=None,
                    monitor=None, poll_interval=0.25, abort_grace=60.0, persist_inactive_xml=True,
                    fast_poll_until_postcopy=False):
        """Peer-to-peer migration of ``dom`` to ``destination_uri``, watched while it runs.

        ``migrateToURI3`` blocks until the migration ends, so it runs in a thread while this one
        polls ``jobStats`` (each poll under the connection's deadline) and asks
        ``monitor(elapsed, stats, switched)`` what to do: None, "postcopy"
        (``migrateStartPostCopy``) or "abort" (``abortJob``).

        With ``fast_poll_until_postcopy`` (a switch due at the start of a memory pass) polls
        come every 50 ms until the switch, so that it happens as the pass begins, as virsh's
        --postcopy-after-precopy does on libvirt's iteration event. In the lab (QEMU 7.2, TCG) a
        switch 100-250 ms into the pass killed the guest on the destination with corrupted
        memory in 16 of 36 migrations, one within 50 ms in none of 30 (docs/migration.md).

        Returns {elapsed, switched_postcopy, aborted, samples: [(elapsed, stats)], error}
        where ``error`` is the typed error the migration ended with, or None.
        """
        name = dom.name()
        flags = self.migration_flags(flag_names)
        typed = self.migration_params(params or {})
        if persist_inactive_xml and "PERSIST_DEST" in flag_names and "OFFLINE" not in flag_names:
            # the destination keeps the configured definition, not the live one (which has e.g.
            # currentMemory following the balloon)
            xml = self.call(dom.XMLDesc, libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_MIGRATABLE,
                            domain=name)
            typed[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = xml
        outcome = {}
        done = threading.Event()

        def worker():
            try:
                outcome["result"] = dom.migrateToURI3(destination_uri, typed, flags)
            except BaseException as err:
                outcome["error"] = err
            done.set()

        thread = threading.Thread(target=worker, name="kvmfleet-migrate-%s" % name)
        thread.daemon = True
        started = time.monotonic()
        thread.start()
        samples = []
        switched = aborted = False
        downtime_set = max_downtime_ms is None
        abort_at = None

        # Polls come every poll_interval, except at 50 ms until max_downtime is applied to the job
        # or a pending post-copy switch is made (each poll is a QEMU query; bench/migration.py
        # --poll-interval measures what they cost).
        def next_wait():
            urgent = not downtime_set or (fast_poll_until_postcopy and not switched)
            return min(poll_interval, 0.05) if urgent else poll_interval

        while not done.wait(next_wait()):
            elapsed = time.monotonic() - started
            stats = {}
            with nonfatal():
                stats = self.job_stats(dom)
            if stats.get("type", 0) in (1, 2):  # VIR_DOMAIN_JOB_BOUNDED / UNBOUNDED: running
                samples.append((elapsed, stats))
                if not downtime_set:
                    with nonfatal():
                        self.set_max_downtime(dom, max_downtime_ms)
                        downtime_set = True
            if aborted:
                if elapsed > abort_at + abort_grace:
                    raise VirtTimeout("%s: migration did not stop within %g s of being aborted" % (name, abort_grace),
                                      domain=name, operation="abortJob")
                continue
            action = monitor(elapsed, stats, switched) if monitor is not None else None
            if action == "postcopy":
                with nonfatal():
                    self.start_postcopy(dom)
                    switched = True
            elif action == "abort":
                with nonfatal():
                    self.abort_job(dom)
                aborted, abort_at = True, elapsed
        elapsed = time.monotonic() - started
        error = outcome.get("error")
        if error is not None:
            if is_libvirt_error(error):
                error = map_libvirt_error(error, uri=self.uri, domain=name, operation="migrateToURI3")
            elif not isinstance(error, KvmfleetError):
                error = VirtError("%s: migration failed: %s" % (name, error), domain=name)
        return dict(elapsed=elapsed, switched_postcopy=switched, aborted=aborted, samples=samples, error=error)
