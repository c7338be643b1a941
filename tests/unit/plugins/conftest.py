"""Fixtures of libvirt's test driver (test:///default) shared by the module and module_utils tests.

test:///default is one in-process hypervisor, shared by every connection while one is open. The
``conn`` fixture holds a connection for the test, so the code under test sees what the test
defined, and removes afterwards what the test made: every domain but the driver's own "test",
every volume of "default-pool", every other pool.
"""
import threading
import uuid

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt import binding
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.metadata import KVMFLEET_NS

try:
    import libvirt
except ImportError:
    libvirt = None

TEST_URI = "test:///default"
DEFAULT_POOL = "default-pool"


def driver_domain_xml(name, vcpus=1, memory_mib=512, current_memory_mib=None, vcpus_current=None, metadata=(),
                      disk=None, mac=None):
    """Domain XML the test driver takes. ``metadata``: (child, text) pairs of our <instance> element."""
    instance = ""
    if metadata:
        instance = ("<metadata><kvmfleet:instance xmlns:kvmfleet='%s'>%s</kvmfleet:instance></metadata>"
                    % (KVMFLEET_NS, "".join("<kvmfleet:%s>%s</kvmfleet:%s>" % (key, text, key) for key, text in metadata)))
    current = "<currentMemory unit='MiB'>%d</currentMemory>" % current_memory_mib if current_memory_mib else ""
    vcpu = "<vcpu current='%d'>%d</vcpu>" % (vcpus_current, vcpus) if vcpus_current else "<vcpu>%d</vcpu>" % vcpus
    devices = ""
    if disk:
        devices += "<disk type='file' device='disk'><source file='%s'/><target dev='vda' bus='virtio'/></disk>" % disk
    if mac:
        devices += "<interface type='network'><mac address='%s'/><source network='default'/></interface>" % mac
    return ("<domain type='test'><name>%s</name><uuid>%s</uuid>%s<memory unit='MiB'>%d</memory>%s%s"
            "<os><type>hvm</type></os><devices>%s</devices></domain>"
            % (name, uuid.uuid4(), instance, memory_mib, current, vcpu, devices))


@pytest.fixture
def domain_xml_for_driver():
    """``driver_domain_xml``, for tests that write a test driver node file."""
    return driver_domain_xml


@pytest.fixture
def conn():
    """An open connection to test:///default for the test; what the test made is removed after."""
    if libvirt is None:
        pytest.skip("libvirt-python is not installed")
    conn = libvirt.open(TEST_URI)
    try:
        yield conn
    finally:
        for dom in conn.listAllDomains():
            if dom.name() != "test":
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
        for pool in conn.listAllStoragePools():
            if pool.name() == DEFAULT_POOL:
                for vol in pool.listAllVolumes():
                    vol.delete(0)
                continue
            if pool.isActive():
                pool.destroy()
            pool.undefine()
        conn.close()


@pytest.fixture
def define_domain(conn):
    """define_domain(name, start=True, **driver_domain_xml options) -> the virDomain, defined (and started)."""
    def define(name, start=True, **options):
        dom = conn.defineXML(driver_domain_xml(name, **options))
        if start:
            dom.create()
        return dom
    return define


@pytest.fixture
def hung_open(monkeypatch):
    """libvirt.open and openReadOnly hang, as on a dead remote, until the test ends."""
    if libvirt is None:
        pytest.skip("libvirt-python is not installed")
    release = threading.Event()

    def hung(uri):
        release.wait(30)
        raise libvirt.libvirtError("too late")

    monkeypatch.setattr(binding.libvirt, "open", hung)
    monkeypatch.setattr(binding.libvirt, "openReadOnly", hung)
    try:
        yield
    finally:
        release.set()
