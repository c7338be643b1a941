"""VirtConnection.migrate_p2p's polling around a post-copy switch, with a scripted domain.

The switch due at the start of a memory pass is made from polls 50 ms apart (in the lab a
switch 100-250 ms into the pass killed TCG guests); after it, and without such a trigger,
polls come every poll_interval. The wait timeouts the loop asks for are recorded, so nothing
here depends on how fast the machine is.
"""
import sys
import threading

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils import migration
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.connection import VirtConnection

try:
    import libvirt
except ImportError:
    libvirt = None

Event = threading.Event  # the real one, for the scripted domain; the loop's own is recorded

pytestmark = pytest.mark.skipif(libvirt is None, reason="libvirt-python is not installed")


class ScriptedDomain:
    """A running migration: pass 1 for the first 3 polls, pass 2 after; ends 3 polls after the switch."""

    def __init__(self):
        self.polls = 0
        self.switched_at = None
        self.finished = Event()

    def name(self):
        return "kvf-poll"

    def XMLDesc(self, flags=0):
        return "<domain type='qemu'><name>kvf-poll</name></domain>"

    def migrateToURI3(self, uri, params, flags):
        assert self.finished.wait(30)
        return 0

    def jobStats(self, flags=0):
        self.polls += 1
        if self.switched_at is not None and self.polls >= self.switched_at + 3:
            self.finished.set()
        return {"type": 2, "memory_iteration": 1 if self.polls <= 3 else 2}

    def migrateStartPostCopy(self, flags=0):
        self.switched_at = self.polls


class RecordingEvent(Event):
    timeouts = []

    def wait(self, timeout=None):
        # only the polling loop's waits (call_with_deadline waits on events too)
        if timeout is not None and sys._getframe(1).f_code.co_name == "migrate_p2p":
            RecordingEvent.timeouts.append(timeout)
            timeout = 0.001
        return super().wait(timeout)


@pytest.fixture
def recorded(monkeypatch):
    RecordingEvent.timeouts = []
    monkeypatch.setattr(threading, "Event", RecordingEvent)
    conn = VirtConnection("test:///default")
    yield conn, RecordingEvent.timeouts
    conn.close()


# post_copy with the default trigger: switch once the first pass is done (as vm_migrate plans it)
PLAN = migration.plan_migration(dict(post_copy=True))
URI = "qemu+ssh://root@192.0.2.12/system"


def monitor(elapsed, stats, switched):
    return migration.monitor_action(PLAN, elapsed, stats, switched)


def test_pending_iteration_switch_is_polled_every_50_ms_then_poll_interval(recorded):
    conn, timeouts = recorded
    dom = ScriptedDomain()
    assert PLAN.postcopy_after_iterations is not None  # what vm_migrate passes as fast_poll_until_postcopy
    run = conn.migrate_p2p(dom, URI, PLAN.flags, monitor=monitor, poll_interval=0.25,
                           fast_poll_until_postcopy=True)
    assert run["error"] is None and run["switched_postcopy"] is True
    # polls 1-3 in pass 1, the 4th sees pass 2 and switches: all four waited 50 ms
    assert dom.switched_at == 4
    assert timeouts[:4] == [0.05] * 4
    assert timeouts[4:] and set(timeouts[4:]) == {0.25}


def test_without_a_pending_switch_polls_every_poll_interval(recorded):
    conn, timeouts = recorded
    dom = ScriptedDomain()
    run = conn.migrate_p2p(dom, URI, PLAN.flags, monitor=monitor, poll_interval=0.25)
    assert run["error"] is None and run["switched_postcopy"] is True and dom.switched_at == 4
    assert timeouts and set(timeouts) == {0.25}
