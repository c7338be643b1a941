"""What the guest agent adds to a domain's facts: addresses the guest configured and its hostname,
asked only when the live XML says the agent is connected; a silent agent costs one short timeout
and the leases answer instead."""
import time

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt import domains
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.connection import VirtConnection
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import parse_domain_xml

libvirt = pytest.importorskip("libvirt")

CHANNEL = ("<domain><name>web1</name><devices><channel type='unix'><target type='virtio' "
           "name='org.qemu.guest_agent.0' %s/></channel></devices></domain>")
AGENT_ADDRS = {"eth0": {"hwaddr": "52:54:00:00:00:01", "addrs": [{"type": 0, "addr": "192.0.2.51", "prefix": 24}]},
               "lo": {"hwaddr": "00:00:00:00:00:00", "addrs": [{"type": 0, "addr": "127.0.0.1", "prefix": 8}]}}
LEASE_ADDRS = {"vnet0": {"hwaddr": "52:54:00:00:00:01", "addrs": [{"type": 0, "addr": "192.0.2.99", "prefix": 24}]}}


class FakeDomain:
    def __init__(self, agent_answers=True, agent_hangs=False):
        self.agent_answers = agent_answers
        self.agent_hangs = agent_hangs
        self.asked = []

    def name(self):
        return "web1"

    def interfaceAddresses(self, source):   # noqa: N802 (libvirt's name)
        self.asked.append(source)
        if source == 1:
            if self.agent_hangs:
                time.sleep(30)
            return AGENT_ADDRS
        return LEASE_ADDRS if source == 0 else {}

    def hostname(self, flags):
        self.asked.append(("hostname", flags))
        if self.agent_hangs:
            time.sleep(30)
        return "shop"


@pytest.mark.parametrize("state, connected", [("state='connected'", True), ("state='disconnected'", False), ("", False)])
def test_the_live_xml_says_whether_the_agent_is_connected(state, connected):
    assert parse_domain_xml(CHANNEL % state)["agent_connected"] is connected


def test_a_connected_agent_gives_the_guests_own_addresses_and_hostname():
    virt, dom = VirtConnection("test:///default"), FakeDomain()
    assert virt.interface_addresses(dom, agent=True) == (["192.0.2.51"], "agent")
    assert virt.guest_hostname(dom) == "shop"
    # without a connected agent it is never asked: the leases answer
    dom = FakeDomain()
    assert virt.interface_addresses(dom, agent=False) == (["192.0.2.99"], "lease") and dom.asked == [0]


def test_a_silent_agent_costs_one_short_timeout_then_the_leases_answer(monkeypatch):
    monkeypatch.setattr(domains, "AGENT_TIMEOUT", 0.3)
    virt, dom = VirtConnection("test:///default"), FakeDomain(agent_hangs=True)
    started = time.monotonic()
    assert virt.interface_addresses(dom, agent=True) == (["192.0.2.99"], "lease")
    assert virt.guest_hostname(dom) is None
    assert time.monotonic() - started < 2.0
    assert not virt._broken          # a domain's silence is not the connection's


def test_a_read_only_connection_asks_the_agent_over_a_full_one_and_keeps_its_own_calls_read_only():
    # libvirt refuses agent queries on a read-only connection (vm_info and hypervisor_info open
    # one): seen on the lab as a connected agent whose addresses never showed up.
    with VirtConnection("test:///default", readonly=True) as virt:
        dom = virt.lookup_domain("test")
        assert virt.interface_addresses(dom, agent=True) == (["192.168.122.3"], "agent")
        assert virt._agent_conn is not None and virt._agent_conn is not virt.conn
        assert virt.agent_domain(dom).UUIDString() == dom.UUIDString()
        with pytest.raises(libvirt.libvirtError, match="read only"):
            dom.setAutostart(1)               # the module's own connection stays read-only
    assert virt._agent_conn is None          # closed with the connection
    with VirtConnection("test:///default") as virt:
        dom = virt.lookup_domain("test")
        assert virt.agent_domain(dom) is dom and virt._agent_conn is None


def test_a_refused_full_connection_is_tried_once_and_the_leases_answer(monkeypatch):
    opened = []

    def refuse(uri):
        opened.append(uri)
        raise libvirt.libvirtError("authentication failed: access denied")
    with VirtConnection("test:///default", readonly=True) as virt:
        monkeypatch.setattr(libvirt, "open", refuse)
        dom = virt.lookup_domain("test")
        assert virt.interface_addresses(dom, agent=True) == (["192.168.122.3"], "lease")
        assert virt.guest_hostname(dom) is None
        assert opened == ["test:///default"]      # not once per question
