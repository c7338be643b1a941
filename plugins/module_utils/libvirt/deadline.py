# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deadlines for calls that can block forever (a dead remote, a hung qemu, a hung NFS mount).
No libvirt import."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import VirtTimeout

DEFAULT_TIMEOUT = 10.0
# Changes can take far longer than reads: the first define on a host makes libvirt probe QEMU's
# capabilities, and a start waits for QEMU. Their deadline is at least this many seconds.
MUTATION_TIMEOUT = 120.0


def call_with_deadline(func, args=(), kwargs=None, timeout=None, description=None, on_abandoned=None):
    """``func(*args, **kwargs)``, or VirtTimeout once ``timeout`` seconds have passed.

    libvirt calls can block forever (a dead remote, a hung qemu). The call runs in a daemon
    thread, so an abandoned call never keeps the process from exiting. If it returns after
    being abandoned, ``on_abandoned(result)`` gets the result (to close a late connection).
    ``timeout`` None or <= 0 runs the call in this thread, without a deadline.
    """
    kwargs = kwargs or {}
    if timeout is None or timeout <= 0:
        return func(*args, **kwargs)
    outcome = {}
    finished = threading.Event()
    lock = threading.Lock()

    def worker():
        try:
            outcome["result"] = func(*args, **kwargs)
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err
        with lock:
            finished.set()
            abandoned = outcome.get("abandoned", False)
        if abandoned and on_abandoned is not None and "result" in outcome:
            try:
                on_abandoned(outcome["result"])
            except Exception:
                pass

    what = description or getattr(func, "__name__", "libvirt call")
    thread = threading.Thread(target=worker, name="kvmfleet-virt-%s" % what)
    thread.daemon = True
    thread.start()
    finished.wait(timeout)
    with lock:
        if not finished.is_set():
            outcome["abandoned"] = True
            raise VirtTimeout("%s did not answer within %g s" % (what, timeout), timeout=timeout)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
