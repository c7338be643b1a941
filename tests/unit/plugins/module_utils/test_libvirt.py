import io
import os
import threading
import time
from collections import namedtuple

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils import facts
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt import host
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.connection import VirtConnection
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.deadline import call_with_deadline
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.error_map import map_libvirt_error, nonfatal
from ansible_collections.kvmfleet.iaas.plugins.module_utils.libvirt.uri import uri_is_this_host
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.capabilities import parse_virt_types
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import parse_domain_xml
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.metadata import parse_metadata
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.pool import pool_path
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.units import size_bytes
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    ConnectionFailed,
    DomainNotFound,
    MigrationUnsafe,
    ValidationError,
    VirtError,
    VirtTimeout,
)

try:
    import libvirt
except ImportError:
    libvirt = None

needs_libvirt = pytest.mark.skipif(libvirt is None, reason="libvirt-python is not installed")

GIB = 1024 ** 3

WEB1_XML = """
<domain type='kvm' id='3'>
  <name>web1</name>
  <uuid>11111111-2222-3333-4444-555555555555</uuid>
  <metadata>
    <kvmfleet:instance xmlns:kvmfleet="https://kvmfleet.dev/iaas/1">
      <kvmfleet:group>web</kvmfleet:group>
      <kvmfleet:image>debian-12</kvmfleet:image>
    </kvmfleet:instance>
    <other:thing xmlns:other="https://example.org/other"><other:group>nope</other:group></other:thing>
  </metadata>
  <memory unit='KiB'>4194304</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <vcpu placement='static' current='2'>8</vcpu>
  <devices>
    <disk type='file' device='disk'>
      <source file='/srv/kvmfleet/images/web1.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <source file='/srv/kvmfleet/images/web1-seed.iso'/>
      <target dev='sda' bus='sata'/>
    </disk>
    <disk type='volume' device='disk'>
      <source pool='kvmfleet' volume='web1-data.qcow2'/>
      <target dev='vdb' bus='virtio'/>
    </disk>
    <interface type='bridge'>
      <mac address='52:54:00:AA:BB:01'/>
      <source bridge='br0'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:aa:bb:02'/>
      <source bridge='br1'/>
    </interface>
  </devices>
</domain>
"""

# what qemu's getAllDomainStats returns for web1, running, with the flags libvirt/domains.py asks for
WEB1_STATS = {
    "state.state": 1, "state.reason": 1,
    "cpu.time": 52000000000, "cpu.user": 30000000000, "cpu.system": 12000000000,
    "balloon.current": 1048576, "balloon.maximum": 4194304,
    "vcpu.current": 2, "vcpu.maximum": 8,
    "vcpu.0.state": 1, "vcpu.0.time": 26000000000,
    "vcpu.1.state": 1, "vcpu.1.time": 26000000000,
    "net.count": 1, "net.0.name": "vnet3", "net.0.rx.bytes": 1000,
    "block.count": 3,
    "block.0.name": "vda", "block.0.path": "/srv/kvmfleet/images/web1.qcow2",
    "block.0.capacity": 10 * GIB, "block.0.allocation": 1 * GIB + 5, "block.0.physical": 2 * GIB,
    "block.1.name": "sda", "block.1.path": "/srv/kvmfleet/images/web1-seed.iso",
    "block.1.capacity": 366592, "block.1.allocation": 366592,
    "block.2.name": "vdb", "block.2.path": "/srv/kvmfleet/images/web1-data.qcow2",
    # a running qcow2: allocation is the highest written offset, physical the file's size
    "block.2.capacity": 20 * GIB, "block.2.allocation": 0, "block.2.physical": 3 * GIB - 7,
    "block.2.backingIndex": 1,
}

DB1_XML = """
<domain type='kvm'>
  <name>db1</name>
  <uuid>aaaaaaaa-2222-3333-4444-555555555555</uuid>
  <memory unit='GiB'>2</memory>
  <vcpu>4</vcpu>
  <devices>
    <disk type='block' device='disk'>
      <source dev='/dev/vg0/db1'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
"""

# a shut-off domain: qemu still reports its configured sizes, but no cpu or net
DB1_STATS = {
    "state.state": 5, "state.reason": 1,
    "balloon.current": 2097152, "balloon.maximum": 2097152,
    "vcpu.current": 4, "vcpu.maximum": 4,
    "block.count": 1, "block.0.name": "vda", "block.0.path": "/dev/vg0/db1",
    "block.0.capacity": 30 * GIB + 1, "block.0.allocation": 30 * GIB, "block.0.physical": 30 * GIB + 1,
    # libvirt reports the cgroup's CPU time even for an inactive domain
    "cpu.time": 650000000,
}


class FakeLibvirtError(Exception):
    """Shaped like libvirt.libvirtError: code, source (error domain) and message."""

    def __init__(self, code, source, message):
        super(FakeLibvirtError, self).__init__(message)
        self.err = (code, source, message)

    def get_error_code(self):
        return self.err[0]

    def get_error_domain(self):
        return self.err[1]

    def get_error_message(self):
        return self.err[2]


def real_libvirt_error(code, source, message):
    if libvirt is None:
        pytest.skip("libvirt-python is not installed")
    err = libvirt.libvirtError(message)
    err.err = (code, source, message, 2, None, None, None, 0, 0)
    return err


# ------------------------------------------------------------------ pure conversions

def test_domain_xml_gives_sizes_disks_macs_and_our_metadata_only():
    info = parse_domain_xml(WEB1_XML)
    assert info["name"] == "web1"
    assert info["uuid"] == "11111111-2222-3333-4444-555555555555"
    assert (info["vcpus"], info["vcpus_max"]) == (2, 8)
    assert (info["memory_mb"], info["memory_max_mb"]) == (1024, 4096)
    assert [d["target"] for d in info["disks"]] == ["vda", "sda", "vdb"]
    assert info["disks"][2]["path"] == "kvmfleet/web1-data.qcow2"
    assert info["macs"] == ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"]
    assert info["metadata"] == {"group": "web", "image": "debian-12"}


def test_domain_xml_without_current_values_or_metadata():
    info = parse_domain_xml(DB1_XML)
    assert (info["vcpus"], info["vcpus_max"]) == (4, 4)
    assert (info["memory_mb"], info["memory_max_mb"]) == (2048, 2048)
    assert info["metadata"] is None
    assert info["macs"] == []


def test_running_domain_fact_follows_the_schema():
    fact = facts.domain_fact(WEB1_STATS, parse_domain_xml(WEB1_XML), cpu_percent=12.0, addresses=["10.213.0.123"])
    assert fact == {
        "name": "web1",
        "uuid": "11111111-2222-3333-4444-555555555555",
        "state": "running",
        "managed": True,
        "group": "web",
        "tenant": None,
        "vcpus": 2,
        "vcpus_max": 8,
        "memory_mb": 1024,
        "memory_max_mb": 4096,
        "balloon_mb": 1024,
        "cpu_percent": 12.0,
        "disks": [
            {"target": "vda", "path": "/srv/kvmfleet/images/web1.qcow2", "capacity_gb": 10, "allocation_gb": 2},
            {"target": "vdb", "path": "/srv/kvmfleet/images/web1-data.qcow2", "capacity_gb": 20,
             "allocation_gb": 3},
        ],
        "macs": ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"],
        "addresses": ["10.213.0.123"],
        "guest": {"agent": False, "hostname": None, "address_source": None},
    }


def test_shutoff_domain_has_no_balloon_and_rounds_disks_up():
    fact = facts.domain_fact(DB1_STATS, parse_domain_xml(DB1_XML), cpu_percent=0.0)
    assert fact["state"] == "shutoff"
    assert fact["managed"] is False and fact["group"] is None
    assert fact["balloon_mb"] is None
    assert fact["disks"] == [{"target": "vda", "path": "/dev/vg0/db1", "capacity_gb": 31, "allocation_gb": 31}]
    assert fact["addresses"] == []


def test_stats_lacking_sizes_fall_back_to_the_xml_and_block_info():
    fact = facts.domain_fact({"state.state": 1}, parse_domain_xml(WEB1_XML), block_fallback={"vda": (5 * GIB, GIB // 2)})
    assert (fact["vcpus"], fact["vcpus_max"], fact["memory_mb"], fact["memory_max_mb"]) == (2, 8, 1024, 4096)
    assert fact["balloon_mb"] is None
    assert fact["disks"][0] == {"target": "vda", "path": "/srv/kvmfleet/images/web1.qcow2",
                                "capacity_gb": 5, "allocation_gb": 1}
    assert fact["disks"][1]["capacity_gb"] is None


# recorded from qemu 7.2 / libvirt 9.0 (a lab node): a guest sitting in its firmware, whose
# balloon has not yet reached the 96 MiB asked for, and the same domain defined but shut off
QEMU_PROBE_XML = """<domain type='qemu'><name>probe</name><uuid>0b9f5bd4-8a1e-4c3e-9a55-3f0c1e0e2a10</uuid>
<memory unit='KiB'>131072</memory><currentMemory unit='KiB'>98304</currentMemory><vcpu current='1'>2</vcpu>
<devices><disk type='file' device='disk'><source file='/tmp/kvf-virt-probe.qcow2'/><target dev='vda'/></disk>
</devices></domain>"""
QEMU_PROBE_RUNNING = {
    "balloon.current": 131072, "balloon.last-update": 0, "balloon.maximum": 131072, "balloon.rss": 45220,
    "block.0.allocation": 0, "block.0.backingIndex": 1, "block.0.capacity": 1073741824, "block.0.fl.reqs": 0,
    "block.0.name": "vda", "block.0.path": "/tmp/kvf-virt-probe.qcow2", "block.0.physical": 200704,
    "block.0.rd.bytes": 512, "block.0.rd.reqs": 1, "block.count": 1, "cpu.time": 650000000,
    "cpu.system": 220000000, "cpu.user": 430000000, "net.count": 0, "state.reason": 5, "state.state": 1,
    "vcpu.0.delay": 674542, "vcpu.0.state": 1, "vcpu.0.time": 130000000, "vcpu.0.wait": 0,
    "vcpu.current": 1, "vcpu.maximum": 2,
}
QEMU_PROBE_SHUTOFF = {
    "balloon.current": 98304, "balloon.maximum": 131072, "block.0.allocation": 200704,
    "block.0.capacity": 1073741824, "block.0.name": "vda", "block.0.path": "/tmp/kvf-virt-probe.qcow2",
    "block.0.physical": 196624, "block.count": 1, "cpu.system": 220000000, "cpu.time": 650000000,
    "cpu.user": 430000000, "state.reason": 0, "state.state": 5, "vcpu.current": 1, "vcpu.maximum": 2,
}


def test_recorded_qemu_stats():
    xml_info = parse_domain_xml(QEMU_PROBE_XML)
    running = facts.domain_fact(QEMU_PROBE_RUNNING, xml_info)
    assert (running["memory_mb"], running["memory_max_mb"], running["balloon_mb"]) == (96, 128, 128)
    assert (running["vcpus"], running["vcpus_max"]) == (1, 2)
    assert running["disks"] == [{"target": "vda", "path": "/tmp/kvf-virt-probe.qcow2", "capacity_gb": 1,
                                 "allocation_gb": 1}]
    shutoff = facts.domain_fact(QEMU_PROBE_SHUTOFF, xml_info, cpu_percent=facts.domain_cpu_percent("shutoff", 650000000, 650000000, 1.0))
    assert (shutoff["state"], shutoff["balloon_mb"], shutoff["cpu_percent"]) == ("shutoff", None, 0.0)
    assert shutoff["disks"][0]["capacity_gb"] == 1


@pytest.mark.parametrize("code, name", [
    (0, "other"), (1, "running"), (2, "running"), (3, "paused"), (4, "running"),
    (5, "shutoff"), (6, "crashed"), (7, "pmsuspended"), (99, "other"), (None, "other"),
])
def test_state_names(code, name):
    assert facts.state_name(code) == name


def test_block_stats_by_target():
    assert facts.block_stats(DB1_STATS) == {
        "vda": {"path": "/dev/vg0/db1", "capacity": 30 * GIB + 1, "allocation": 30 * GIB + 1}}
    assert facts.block_stats({"state.state": 5}) == {}


def test_allocated_counts_every_defined_domain():
    web1 = facts.domain_fact(WEB1_STATS, parse_domain_xml(WEB1_XML))
    db1 = facts.domain_fact(DB1_STATS, parse_domain_xml(DB1_XML))
    assert facts.allocated_summary([web1, db1]) == {"vcpus": 6, "memory_mb": 3072, "disk_gb": 61, "domains": 2}
    assert facts.allocated_summary([]) == {"vcpus": 0, "memory_mb": 0, "disk_gb": 0, "domains": 0}


def test_domain_cpu_percent_is_of_one_host_cpu():
    # 1.5 s of CPU over a 1 s window: one and a half host CPUs
    assert facts.domain_cpu_percent("running", 10 ** 9, 2.5 * 10 ** 9, 1.0) == 150.0
    assert facts.domain_cpu_percent("running", 0, 123456789, 2.0) == 6.2
    assert facts.domain_cpu_percent("shutoff", None, None, None) == 0.0
    assert facts.domain_cpu_percent("paused", 5, 5, 1.0) == 0.0
    assert facts.domain_cpu_percent("running", None, None, None) is None
    assert facts.domain_cpu_percent("running", 10 ** 9, 1, 1.0) is None  # restarted: counter reset


def test_host_cpu_percent_counts_iowait_as_idle():
    before = {"kernel": 1000, "user": 3000, "idle": 10000, "iowait": 500}
    after = {"kernel": 1500, "user": 4500, "idle": 12500, "iowait": 1000}
    assert facts.host_cpu_percent(before, after) == 40.0  # 2000 busy of 5000
    assert facts.host_cpu_percent(before, before) == 0.0
    assert facts.host_cpu_percent(None, after) is None
    assert facts.host_cpu_percent({"utilization": 10}, {"utilization": 41.54}) == 41.5


def test_virt_types_from_capabilities():
    caps = """<capabilities><host/>
      <guest><os_type>hvm</os_type><arch name='x86_64'>
        <domain type='qemu'/><domain type='kvm'/></arch></guest>
      <guest><os_type>hvm</os_type><arch name='aarch64'><domain type='qemu'/></arch></guest>
    </capabilities>"""
    assert parse_virt_types(caps) == ["qemu", "kvm"]
    assert parse_virt_types("<capabilities><host/></capabilities>") == []


def test_addresses_skip_link_local_and_duplicates():
    ifaces = {
        "vnet1": {"hwaddr": "52:54:00:aa:bb:02", "addrs": [{"type": 0, "addr": "10.0.1.5", "prefix": 24}]},
        "vnet0": {"hwaddr": "52:54:00:aa:bb:01", "addrs": [
            {"type": 0, "addr": "10.213.0.123", "prefix": 24},
            {"type": 1, "addr": "fe80::5054:ff:feaa:bb01", "prefix": 64},
            {"type": 1, "addr": "2001:db8::7", "prefix": 64},
        ]},
        "lo": {"hwaddr": None, "addrs": [{"type": 0, "addr": "127.0.0.1", "prefix": 8}]},
        "vnet2": {"hwaddr": "52:54:00:aa:bb:03", "addrs": [{"type": 0, "addr": "10.0.1.5", "prefix": 24}]},
    }
    assert facts.addresses_from_interfaces(ifaces) == ["10.213.0.123", "2001:db8::7", "10.0.1.5"]
    assert facts.addresses_from_interfaces({}) == []
    assert facts.addresses_from_interfaces(None) == []


def test_memory_available_sources():
    meminfo = ("MemTotal:        3993792 kB\nMemFree:          200000 kB\nMemAvailable:    2150400 kB\n"
               "HugePages_Total:       0\n")
    assert facts.parse_meminfo(meminfo) == {"MemTotal": 3993792, "MemFree": 200000, "MemAvailable": 2150400, "HugePages_Total": 0}
    assert facts.available_mb_from_node_memory_stats(
        {"total": 3993792, "free": 204800, "buffers": 102400, "cached": 1843200}) == 2100
    assert facts.available_mb_from_node_memory_stats({}) is None


def test_a_memory_source_must_describe_the_host_libvirt_counts():
    assert facts.same_total(3993792, 3900)
    # a container's /proc/meminfo shows its machine's 24 GiB; libvirt counts one NUMA node
    assert not facts.same_total(24684092, 5850)
    assert facts.same_total(None, 5850) and facts.same_total(1, None)


class MemoryConnection:
    """A virConnect with a node memory view: getMemoryStats (KiB) and getFreeMemory (bytes)."""

    def __init__(self, stats, free_bytes):
        self.stats = stats
        self.free_bytes = free_bytes

    def getMemoryStats(self, cell, flags=0):
        return self.stats

    def getFreeMemory(self):
        return self.free_bytes


def fake_meminfo(monkeypatch, text):
    monkeypatch.setattr(host, "open", lambda path: io.StringIO(text), raising=False)


CONTAINER_MEMINFO = "MemTotal:       24684092 kB\nMemFree:        23419280 kB\nMemAvailable:   24033664 kB\n"
CONTAINER_STATS = {"total": 24684092, "free": 23419280, "buffers": 8544, "cached": 710788}


def test_memory_available_on_this_host_is_mem_available(monkeypatch):
    fake_meminfo(monkeypatch, "MemTotal:        3993792 kB\nMemAvailable:    2150400 kB\n")
    conn = VirtConnection("qemu:///system")
    conn._conn = MemoryConnection({}, 0)
    assert conn.memory_available_mb(3900) == 2100


def test_memory_available_in_a_container_comes_from_libvirts_numa_view(monkeypatch):
    fake_meminfo(monkeypatch, CONTAINER_MEMINFO)
    conn = VirtConnection("qemu:///system")
    conn._conn = MemoryConnection(CONTAINER_STATS, 4818892 * 1024)
    assert conn.memory_available_mb(5850) == 4705


def test_memory_available_of_a_remote_host_and_the_cap(monkeypatch):
    conn = VirtConnection("qemu+ssh://root@node2/system")
    conn._conn = MemoryConnection({"total": 3993792, "free": 204800, "buffers": 102400, "cached": 1843200}, 0)
    assert conn.memory_available_mb(3900) == 2100
    conn._conn = MemoryConnection(CONTAINER_STATS, 64 * GIB)
    assert conn.memory_available_mb(5850) == 5850


def test_storage_sizes_are_whole_gib_rounded_down():
    statvfs = namedtuple("statvfs", "f_frsize f_blocks f_bavail")
    st = statvfs(4096, (250 * GIB + 4095) // 4096, (80 * GIB + GIB // 2) // 4096)
    assert facts.storage_from_statvfs("/srv/x", st) == {"path": "/srv/x", "total_gb": 250, "free_gb": 80}
    assert facts.storage_fact("/srv/x", None, None) == {"path": "/srv/x", "total_gb": None, "free_gb": None}


def test_hypervisor_fact_and_its_unreachable_form_have_the_same_keys():
    domains = [facts.domain_fact(WEB1_STATS, parse_domain_xml(WEB1_XML), cpu_percent=12.0)]
    fact = facts.hypervisor_fact("node1", ["qemu", "kvm"], 2, 3900, 2100,
                                 facts.storage_fact("/srv/kvmfleet/images", 250 * GIB, 80 * GIB),
                                 domains, 41.5, 1)
    assert fact["reachable"] is True and fact["error"] is None
    assert fact["allocated"] == {"vcpus": 2, "memory_mb": 1024, "disk_gb": 30, "domains": 1}
    # web1 (running, 12 % of one CPU) on 2 CPUs: the host's domains use 6 % of it
    assert fact["utilization"] == {"cpu_percent": 41.5, "memory_percent": 46.2, "sample_seconds": 1.0,
                                   "vm_cpu_percent": 6.0}
    down = facts.unreachable_hypervisor(ConnectionFailed("no route to host"))
    assert down["reachable"] is False and down["error"] == "no route to host"
    assert set(down) == set(fact)
    assert set(down["allocated"]) == set(fact["allocated"])
    assert set(down["utilization"]) == set(fact["utilization"])
    assert down["domains"] == []


@pytest.mark.parametrize("uri, local", [
    ("qemu:///system", True),
    ("qemu:///session", True),
    ("qemu+unix:///system", True),
    ("qemu://localhost/system", True),
    ("qemu+ssh://root@node2/system", False),
    ("qemu+tls://node2/system", False),
    ("test:///default", False),
    (None, True),
])
def test_uri_is_this_host(uri, local):
    assert uri_is_this_host(uri) is local


# ------------------------------------------------------------------ error mapping

@pytest.mark.parametrize("make", [FakeLibvirtError, real_libvirt_error])
@pytest.mark.parametrize("code, source, message, expected", [
    (42, 10, "Domain not found: no domain with matching name 'web9'", DomainNotFound),
    (38, 7, "Cannot recv data: ssh: connect to host node2 port 22: Connection refused", ConnectionFailed),
    (5, 0, "no connection driver available", ConnectionFailed),
    (45, 7, "authentication failed", ConnectionFailed),
    (39, 7, "End of file while reading data", ConnectionFailed),
    (68, 10, "Timed out during operation: cannot acquire state change lock", VirtTimeout),
    (86, 10, "Guest agent is not responding", VirtTimeout),
    (81, 10, "Unsafe migration: Migration without shared storage is unsafe", MigrationUnsafe),
    (55, 10, "Requested operation is not valid: domain is not running", VirtError),
])
def test_libvirt_errors_map_to_typed_errors_and_keep_the_message(make, code, source, message, expected):
    err = map_libvirt_error(make(code, source, message), uri="qemu:///system", domain="web9", operation="create")
    assert err.__class__ is expected
    assert str(err) == message
    assert err.details == {"libvirt_code": code, "libvirt_source": source, "uri": "qemu:///system",
                           "domain": "web9", "operation": "create"}


@needs_libvirt
def test_connection_calls_map_errors_from_the_test_driver():
    with VirtConnection("test:///default", readonly=True) as conn:
        with pytest.raises(DomainNotFound) as caught:
            conn.lookup_domain("no-such-domain")
    assert caught.value.details["domain"] == "no-such-domain"
    assert caught.value.details["libvirt_code"] == libvirt.VIR_ERR_NO_DOMAIN


@needs_libvirt
def test_unreachable_uri_is_connection_failed(tmp_path):
    uri = "qemu+unix:///system?socket=%s" % (tmp_path / "missing.sock")
    with pytest.raises(ConnectionFailed) as caught:
        VirtConnection(uri, timeout=5).open()
    assert uri in str(caught.value) and "missing.sock" in str(caught.value)
    assert caught.value.details["uri"] == uri


# ------------------------------------------------------------------ deadlines

def test_deadline_returns_results_and_reraises_errors_in_the_caller():
    assert call_with_deadline(lambda a, b=0: a + b, (1,), {"b": 2}, timeout=5) == 3
    with pytest.raises(ZeroDivisionError):
        call_with_deadline(lambda: 1 // 0, timeout=5)
    assert call_with_deadline(lambda: "inline", timeout=0) == "inline"


def test_hung_call_raises_virt_timeout_within_the_deadline():
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(VirtTimeout, match=r"hung_call did not answer within 0.2 s"):
        call_with_deadline(lambda: release.wait(30), timeout=0.2, description="hung_call")
    assert time.monotonic() - started < 1.0
    release.set()


def test_late_result_of_an_abandoned_call_is_handed_over():
    late = []
    done = threading.Event()

    def slow():
        time.sleep(0.3)
        return "late connection"

    def abandoned(result):
        late.append(result)
        done.set()

    with pytest.raises(VirtTimeout):
        call_with_deadline(slow, timeout=0.05, on_abandoned=abandoned)
    assert done.wait(5)
    assert late == ["late connection"]


class StuckConnection:
    """Stands in for a virConnect whose daemon stopped answering."""

    def __init__(self, release):
        self.release = release

    def getAllDomainStats(self, flags, extra):
        self.release.wait(30)
        return []

    def getHostname(self):
        return "node1"


def test_connection_level_timeout_makes_later_calls_fail_at_once():
    release = threading.Event()
    conn = VirtConnection("qemu+ssh://root@node2/system", timeout=0.2)
    conn._conn = StuckConnection(release)
    started = time.monotonic()
    with pytest.raises(VirtTimeout) as caught:
        conn.domain_stats()
    assert time.monotonic() - started < 1.0
    assert caught.value.details["uri"] == "qemu+ssh://root@node2/system"
    assert caught.value.details["operation"] == "getAllDomainStats"
    with pytest.raises(VirtTimeout, match="stopped answering"):
        conn.hostname()
    conn.close()  # does not wait for the hung connection
    assert time.monotonic() - started < 1.0
    release.set()


def test_domain_level_timeout_leaves_the_connection_usable():
    release = threading.Event()
    conn = VirtConnection("qemu:///system", timeout=0.2)
    conn._conn = StuckConnection(release)
    with pytest.raises(VirtTimeout) as caught:
        conn.call(lambda: release.wait(30), domain="stuck1")
    assert caught.value.details["domain"] == "stuck1"
    assert str(caught.value).startswith("stuck1: ")
    assert conn.hostname() == "node1"
    release.set()


def test_hung_open_times_out(hung_open):
    started = time.monotonic()
    with pytest.raises(VirtTimeout, match=r"cannot connect to libvirt at qemu\+ssh://root@node9/system"):
        VirtConnection("qemu+ssh://root@node9/system", timeout=0.2).open()
    assert time.monotonic() - started < 1.0


# ------------------------------------------------------------------ against libvirt's test driver

@pytest.fixture
def test_driver(conn, define_domain):
    """test:///default with two more domains: kvf-web (running, group web) and kvf-db (shut off).

    The default test driver is shared within the process while a connection to it is open,
    so the code under test sees these domains.
    """
    define_domain("kvf-web", vcpus=2, memory_mib=1024, metadata=[("group", "web")],
                  disk="/srv/kvmfleet/images/kvf-web.qcow2", mac="52:54:00:00:00:01")
    define_domain("kvf-db", start=False, vcpus=4, memory_mib=2048, metadata=[("group", "db")],
                  disk="/srv/kvmfleet/images/kvf-db.qcow2")
    return conn


@needs_libvirt
def test_list_domains_on_the_test_driver(test_driver):
    with VirtConnection("test:///default", readonly=True) as conn:
        listing = conn.list_domains(with_metadata=True)
    by_name = dict((d["name"], d) for d in listing["domains"])
    assert sorted(by_name) == ["kvf-db", "kvf-web", "test"]
    web, db = by_name["kvf-web"], by_name["kvf-db"]
    assert (web["state"], web["managed"], web["group"], web["vcpus"], web["memory_mb"]) == (
        "running", True, "web", 2, 1024)
    assert web["macs"] == ["52:54:00:00:00:01"] and web["addresses"]
    assert web["metadata"] == {"group": "web"}
    assert web["cpu_percent"] is None  # running, not sampled
    assert (db["state"], db["group"], db["vcpus"], db["memory_mb"], db["addresses"]) == (
        "shutoff", "db", 4, 2048, [])
    assert db["cpu_percent"] == 0.0
    assert db["disks"][0]["path"] == "/srv/kvmfleet/images/kvf-db.qcow2"
    assert by_name["test"]["managed"] is False and by_name["test"]["metadata"] is None
    assert listing["skipped"] == [] and listing["host_cpu_percent"] is None


@needs_libvirt
def test_list_one_domain_and_a_missing_one(test_driver):
    with VirtConnection("test:///default", readonly=True) as conn:
        assert [d["name"] for d in conn.list_domains(name="kvf-db")["domains"]] == ["kvf-db"]
        assert conn.list_domains(name="kvf-none")["domains"] == []


@needs_libvirt
def test_metadata_through_the_metadata_api(test_driver):
    with VirtConnection("test:///default", readonly=True) as conn:
        assert conn.domain_metadata(conn.lookup_domain("kvf-web")) == {"group": "web"}
        assert conn.domain_metadata(conn.lookup_domain("test")) is None


@needs_libvirt
def test_hypervisor_facts_sample_once_for_host_and_domains(test_driver):
    with VirtConnection("test:///default", readonly=True) as conn:
        started = time.monotonic()
        fact, skipped = conn.hypervisor_facts("/default-pool", sample_seconds=0.3)
        took = time.monotonic() - started
    assert 0.3 <= took < 2.0
    assert skipped == []
    assert fact["reachable"] is True and fact["hostname"]
    assert fact["virt_types"] == ["test"]
    assert fact["storage"] == {"path": "/default-pool", "total_gb": 100, "free_gb": 100}
    assert fact["allocated"]["domains"] == 3
    assert fact["allocated"]["vcpus"] == 2 + 2 + 4  # the shut-off one counts
    assert fact["utilization"]["sample_seconds"] == 0.3
    assert isinstance(fact["utilization"]["cpu_percent"], float)


@needs_libvirt
def test_storage_of_an_unknown_path_has_no_sizes(test_driver):
    with VirtConnection("test:///default", readonly=True) as conn:
        assert conn.storage("/nowhere") == {"path": "/nowhere", "total_gb": None, "free_gb": None}


def test_storage_of_a_local_directory_uses_statvfs(tmp_path):
    conn = VirtConnection("qemu:///system", timeout=5)
    st = os.statvfs(str(tmp_path))
    assert conn.storage(str(tmp_path)) == facts.storage_from_statvfs(str(tmp_path), st)


class DomainProxy:
    """A virDomain whose XMLDesc hangs."""

    def __init__(self, dom, release):
        self._dom = dom
        self._release = release

    def __getattr__(self, name):
        return getattr(self._dom, name)

    def XMLDesc(self, flags=0):
        self._release.wait(30)
        return self._dom.XMLDesc(flags)


class ConnectionProxy:
    """A virConnect whose domain ``hang`` does not answer XMLDesc."""

    def __init__(self, conn, hang, release):
        self._conn = conn
        self._hang = hang
        self._release = release

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def getAllDomainStats(self, flags, extra):
        return [(DomainProxy(dom, self._release) if dom.name() == self._hang else dom, stats)
                for dom, stats in self._conn.getAllDomainStats(flags, extra)]


@needs_libvirt
def test_a_hung_domain_is_skipped_not_fatal(test_driver):
    release = threading.Event()
    conn = VirtConnection("test:///default", timeout=0.3, readonly=True).open()
    try:
        conn._conn = ConnectionProxy(conn._conn, "kvf-web", release)
        started = time.monotonic()
        listing = conn.list_domains()
        assert time.monotonic() - started < 2.0
    finally:
        release.set()
        conn.close()
    assert [d["name"] for d in listing["domains"]] == ["kvf-db", "test"]
    assert [s["name"] for s in listing["skipped"]] == ["kvf-web"]
    assert "did not answer within 0.3 s" in listing["skipped"][0]["error"]


def test_unsampled_hypervisor_fact_has_no_vm_cpu_figure():
    unsampled = facts.hypervisor_fact("n", ["qemu"], 2, 3900, 2100, facts.storage_fact("/x", None, None), [], None, 0)
    assert unsampled["utilization"]["vm_cpu_percent"] is None


def test_domain_cpu_time_falls_back_to_the_vcpu_threads():
    assert facts.domain_cpu_time({"cpu.time": 5, "vcpu.0.time": 1}) == 5
    # libvirtd without a cpuacct cgroup (a container) reports only the vCPU threads
    assert facts.domain_cpu_time({"vcpu.current": 2, "vcpu.0.time": 3, "vcpu.1.time": 4, "vcpu.0.wait": 9}) == 7
    assert facts.domain_cpu_time({"state.state": 1}) is None


@pytest.mark.parametrize("read", [parse_domain_xml, parse_virt_types, pool_path, parse_metadata])
def test_every_reader_of_libvirt_xml_refuses_a_doctype(read):
    with pytest.raises(ValidationError, match="DOCTYPE"):
        read("<!DOCTYPE d [<!ENTITY x 'y'>]><domain type='kvm'><name>&x;</name></domain>")


@pytest.mark.parametrize("element, size", [
    ("<memory>4</memory>", 4096),                       # no unit: KiB
    ("<memory unit='KiB'>4</memory>", 4096),
    ("<memory unit='KB'>4</memory>", 4000),
    ("<memory unit='M'>2</memory>", 2 * 1024 ** 2),
    ("<memory unit='GiB'>2</memory>", 2 * GIB),
    ("<memory unit='bytes'>7</memory>", 7),
    ("<memory unit='KiB'> </memory>", None),
])
def test_one_unit_table_for_every_size(element, size):
    from lxml import etree
    assert size_bytes(etree.fromstring(element)) == size


def test_an_unknown_unit_is_refused_not_guessed():
    with pytest.raises(ValidationError, match="unknown memory unit 'parsec'"):
        parse_domain_xml("<domain><memory unit='parsec'>1</memory></domain>")


@pytest.mark.parametrize("err, swallowed", [
    (VirtError("no such thing", libvirt_code=55), True),
    (VirtTimeout("web1: hung", domain="web1"), True),     # one domain's timeout: the connection lives
    (VirtTimeout("libvirt hung"), False),                 # the connection's: every later call would fail
    (ConnectionFailed("gone"), False),
])
def test_nonfatal_swallows_only_what_the_connection_survives(err, swallowed):
    def run():
        with nonfatal() as outcome:
            raise err
        return outcome
    if swallowed:
        assert run().error is err
    else:
        with pytest.raises(type(err)):
            run()
