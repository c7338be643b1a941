# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that talks to libvirt.

``VirtConnection`` opens a connection, runs every call that can block under a deadline and
turns ``libvirt.libvirtError`` into the typed errors of ``errors.py``. The functions above it
are pure (no libvirt): they turn what libvirt returns (``getAllDomainStats`` dicts, XML,
``nodeGetCPUStats`` counters) into the ``kvmfleet_hypervisor`` schema of docs/architecture.md,
so they are tested without a hypervisor.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
import threading
import time
import traceback

from urllib.parse import urlsplit

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    ConnectionFailed,
    DomainNotFound,
    KvmfleetError,
    VirtError,
    VirtTimeout,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.utilization import vm_cpu_percent

LIBVIRT_IMPORT_ERROR = None
try:
    import libvirt
    HAS_LIBVIRT = True
except ImportError:
    libvirt = None
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()

LXML_IMPORT_ERROR = None
try:
    from lxml import etree
    HAS_LXML = True
except ImportError:
    etree = None
    HAS_LXML = False
    LXML_IMPORT_ERROR = traceback.format_exc()

DEFAULT_URI = "qemu:///system"
DEFAULT_TIMEOUT = 10.0
DEFAULT_SAMPLE_SECONDS = 1.0
DEFAULT_STORAGE_PATH = "/srv/kvmfleet/images"

# Our element inside a domain's <metadata>; plugins/module_utils/domain_xml.py writes it.
KVMFLEET_METADATA_NS = "https://kvmfleet.dev/iaas/1"
KVMFLEET_METADATA_ELEMENT = "instance"

# libvirt's numeric constants are ABI; spelled out here so the pure functions and the error
# mapping work (and are tested) without libvirt-python.
STATS_STATE = 1
STATS_CPU_TOTAL = 2
STATS_BALLOON = 4
STATS_VCPU = 8
STATS_INTERFACE = 16
STATS_BLOCK = 32
DOMAIN_STATS_FLAGS = STATS_STATE | STATS_VCPU | STATS_BALLOON | STATS_BLOCK | STATS_INTERFACE | STATS_CPU_TOTAL
# Skip, rather than wait for, domains whose job lock is held (a hung qemu monitor).
_STATS_NOWAIT = 1 << 29

_ERR_NO_SUPPORT = 3
_ERR_NO_CONNECT = 5
_ERR_INVALID_ARG = 8
_ERR_INVALID_CONN = 6
_ERR_SYSTEM_ERROR = 38
_ERR_RPC = 39
_ERR_NO_DOMAIN = 42
_ERR_NO_STORAGE_POOL = 49
_ERR_NO_STORAGE_VOL = 50
_DEFINE_VALIDATE = 1          # VIR_DOMAIN_DEFINE_VALIDATE
# Changes can take far longer than reads: the first define on a host makes libvirt probe QEMU's
# capabilities, and a start waits for QEMU. Their deadline is at least this many seconds.
MUTATION_TIMEOUT = 120.0
_UNDEFINE_BASE_FLAGS = 1 | 2  # VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | SNAPSHOTS_METADATA
_UNDEFINE_NVRAM = 4           # VIR_DOMAIN_UNDEFINE_NVRAM
_UNDEFINE_KEEP_NVRAM = 8      # VIR_DOMAIN_UNDEFINE_KEEP_NVRAM
_ERR_AUTH_FAILED = 45
_ERR_OPERATION_TIMEOUT = 68
_ERR_AUTH_CANCELLED = 79
_ERR_NO_DOMAIN_METADATA = 80
_ERR_AGENT_UNRESPONSIVE = 86
_ERR_AUTH_UNAVAILABLE = 94
_FROM_RPC = 7
_FROM_REMOTE = 13
_FROM_SSH = 50
_FROM_LIBSSH = 66

_CONNECTION_CODES = frozenset((_ERR_NO_CONNECT, _ERR_INVALID_CONN, _ERR_RPC, _ERR_AUTH_FAILED,
                               _ERR_AUTH_CANCELLED, _ERR_AUTH_UNAVAILABLE))
_CONNECTION_SOURCES = frozenset((_FROM_RPC, _FROM_REMOTE, _FROM_SSH, _FROM_LIBSSH))
_TIMEOUT_CODES = frozenset((_ERR_OPERATION_TIMEOUT, _ERR_AGENT_UNRESPONSIVE))

# virDomainState -> schema name. "blocked" and "shutting down" still run and hold their resources.
_STATE_NAMES = {
    0: "other",
    1: "running",
    2: "running",
    3: "paused",
    4: "running",
    5: "shutoff",
    6: "crashed",
    7: "pmsuspended",
}
ACTIVE_STATES = ("running", "paused")

_MIB = 1024 * 1024
_GIB = 1024 * 1024 * 1024
_UNIT_BYTES = {
    "b": 1, "bytes": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": _MIB, "mib": _MIB, "mb": 1000 ** 2,
    "g": _GIB, "gib": _GIB, "gb": 1000 ** 3,
    "t": 1024 ** 4, "tib": 1024 ** 4, "tb": 1000 ** 4,
}


# --------------------------------------------------------------------------- errors and deadlines

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
    if code == _ERR_NO_DOMAIN:
        return DomainNotFound(message, **details)
    if code in _TIMEOUT_CODES:
        return VirtTimeout(message, **details)
    if code in _CONNECTION_CODES or source in _CONNECTION_SOURCES:
        return ConnectionFailed(message, **details)
    return VirtError(message, **details)


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


def _fatal(err):
    """Errors after which the connection is of no more use."""
    return isinstance(err, ConnectionFailed) or (isinstance(err, VirtTimeout) and "domain" not in err.details)


# --------------------------------------------------------------------------- pure conversions

def uri_is_this_host(uri):
    """Whether the URI's hypervisor is the machine we run on (so /proc and statvfs describe it).

    The test driver is in-process and fake: its host is not this one.
    """
    parts = urlsplit(uri or DEFAULT_URI)
    driver, _plus, transport = parts.scheme.partition("+")
    if driver == "test":
        return False
    if transport and transport != "unix":
        return False
    return parts.hostname in (None, "", "localhost")


def state_name(code):
    if code is None:
        return "other"
    return _STATE_NAMES.get(int(code), "other")


def _xml_root(xml):
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(xml, parser)


def parse_virt_types(capabilities_xml):
    """Domain types this host can run (``<guest><arch><domain type=...>``), first-seen order."""
    types = []
    for node in _xml_root(capabilities_xml).findall("guest/arch/domain"):
        kind = node.get("type")
        if kind and kind not in types:
            types.append(kind)
    return types


def _size_bytes(node):
    if node is None or not (node.text or "").strip():
        return None
    unit = (node.get("unit") or "KiB").lower()
    return int(node.text.strip()) * _UNIT_BYTES.get(unit, 1024)


def parse_metadata(element):
    """Our ``<instance>`` element (an lxml element or XML text) -> {child local name: text}."""
    if element is None:
        return None
    if not hasattr(element, "tag"):
        element = _xml_root(element)
    data = {}
    for child in element:
        if isinstance(child.tag, str):
            data[etree.QName(child).localname] = (child.text or "").strip() or None
    return data


def parse_domain_xml(xml):
    """The parts of a domain's XML the facts need."""
    root = _xml_root(xml)
    vcpu = root.find("vcpu")
    vcpus_max = int(vcpu.text.strip()) if vcpu is not None and vcpu.text else None
    vcpus = int(vcpu.get("current")) if vcpu is not None and vcpu.get("current") else vcpus_max
    memory = _size_bytes(root.find("memory"))
    current = _size_bytes(root.find("currentMemory"))
    disks = []
    for disk in root.findall("devices/disk"):
        target = disk.find("target")
        source = disk.find("source")
        path = None
        if source is not None:
            path = source.get("file") or source.get("dev") or source.get("name")
            if path is None and source.get("volume"):
                path = "%s/%s" % (source.get("pool"), source.get("volume"))
        disks.append(dict(target=target.get("dev") if target is not None else None,
                          device=disk.get("device", "disk"), path=path))
    macs = [mac.get("address").lower() for mac in root.findall("devices/interface/mac")
            if mac.get("address")]
    instance = root.find("metadata/{%s}%s" % (KVMFLEET_METADATA_NS, KVMFLEET_METADATA_ELEMENT))
    return dict(
        name=root.findtext("name"),
        uuid=root.findtext("uuid"),
        type=root.get("type"),
        vcpus=vcpus,
        vcpus_max=vcpus_max,
        memory_mb=current // _MIB if current is not None else (memory // _MIB if memory is not None else None),
        memory_max_mb=memory // _MIB if memory is not None else None,
        disks=disks,
        macs=macs,
        metadata=parse_metadata(instance),
    )


def block_stats(stats):
    """``block.N.*`` entries of a getAllDomainStats dict -> {target: {path, capacity, allocation}}.

    ``allocation`` is the space the disk takes on the host: the larger of libvirt's
    ``allocation`` and ``physical``, since for a running domain ``allocation`` is only the
    highest offset the guest wrote (0 for a freshly started qcow2).
    """
    blocks = {}
    for index in range(int(stats.get("block.count", 0))):
        prefix = "block.%d." % index
        name = stats.get(prefix + "name")
        if name is None or name in blocks:
            continue
        used = [stats[key] for key in (prefix + "allocation", prefix + "physical") if stats.get(key) is not None]
        blocks[name] = dict(path=stats.get(prefix + "path"), capacity=stats.get(prefix + "capacity"),
                            allocation=max(used) if used else None)
    return blocks


def _gib_up(size):
    return None if size is None else int(math.ceil(size / _GIB))


def disk_facts(xml_disks, stats, fallback=None):
    """Disks (device ``disk`` only: CD-ROMs promise no storage) with sizes from the stats,
    else from ``fallback`` ({target: (capacity, allocation)}, e.g. from blockInfo)."""
    blocks = block_stats(stats)
    fallback = fallback or {}
    disks = []
    for disk in xml_disks:
        if disk["device"] not in ("disk", "lun"):
            continue
        target = disk["target"]
        block = blocks.get(target, {})
        capacity, allocation = block.get("capacity"), block.get("allocation")
        if capacity is None and target in fallback:
            capacity, allocation = fallback[target]
        disks.append(dict(target=target, path=block.get("path") or disk["path"],
                          capacity_gb=_gib_up(capacity), allocation_gb=_gib_up(allocation)))
    return disks


def addresses_from_interfaces(interfaces):
    """``virDomainInterfaceAddresses`` result -> address strings, without link-local/loopback."""
    found = []
    for name in sorted(interfaces or {}):
        for addr in (interfaces[name] or {}).get("addrs") or []:
            text = addr.get("addr")
            if not text or text.lower().startswith("fe80:") or text.startswith("127.") or text == "::1":
                continue
            if text not in found:
                found.append(text)
    return found


def domain_cpu_percent(state, before_ns, after_ns, seconds):
    """CPU used over the window, in percent of one host CPU (0..100*vcpus).

    Not running: 0.0. Running but not sampled (or the counter reset): None.
    """
    if state != "running":
        return 0.0
    if before_ns is None or after_ns is None or not seconds or seconds <= 0 or after_ns < before_ns:
        return None
    return round(100.0 * (after_ns - before_ns) / (seconds * 1e9), 1)


def domain_cpu_time(stats):
    """A domain's CPU time in ns from bulk stats: ``cpu.time``, or where libvirt cannot read it
    (no cpuacct cgroup, as for libvirtd in a container) the sum of the vCPU threads'
    ``vcpu.<n>.time``. None when neither is there."""
    if stats.get("cpu.time") is not None:
        return stats["cpu.time"]
    times = [value for key, value in stats.items()
             if key.startswith("vcpu.") and key.endswith(".time") and key.count(".") == 2]
    return sum(times) if times else None


def host_cpu_percent(before, after):
    """Host-wide busy percent between two ``nodeGetCPUStats`` samples (ns counters)."""
    if not before or not after:
        return None
    deltas = dict((key, after[key] - before[key]) for key in after if key in before)
    if "utilization" in deltas:
        # some drivers report a ready-made percentage instead of counters
        return round(float(after["utilization"]), 1)
    total = sum(deltas.values())
    if total <= 0:
        return 0.0
    idle = deltas.get("idle", 0) + deltas.get("iowait", 0)
    return round(min(100.0, max(0.0, 100.0 * (total - idle) / total)), 1)


def domain_fact(stats, xml_info, cpu_percent=None, addresses=None, block_fallback=None):
    """One entry of ``kvmfleet_hypervisor.domains``.

    Live numbers come from the stats; the XML fills in what the stats of a driver or an
    inactive domain lack, and gives what stats never carry (MACs, metadata).
    """
    state = state_name(stats.get("state.state"))
    metadata = xml_info.get("metadata")
    balloon = stats.get("balloon.current")
    memory_max = stats.get("balloon.maximum")
    return dict(
        name=xml_info["name"],
        uuid=xml_info["uuid"],
        state=state,
        managed=metadata is not None,
        group=(metadata or {}).get("group"),
        vcpus=stats.get("vcpu.current", xml_info["vcpus"]),
        vcpus_max=stats.get("vcpu.maximum", xml_info["vcpus_max"]),
        memory_mb=xml_info["memory_mb"] if xml_info["memory_mb"] is not None
        else (balloon // 1024 if balloon is not None else None),
        memory_max_mb=xml_info["memory_max_mb"] if xml_info["memory_max_mb"] is not None
        else (memory_max // 1024 if memory_max is not None else None),
        balloon_mb=balloon // 1024 if balloon is not None and state in ACTIVE_STATES else None,
        cpu_percent=cpu_percent,
        disks=disk_facts(xml_info["disks"], stats, block_fallback),
        macs=list(xml_info["macs"]),
        addresses=list(addresses or []),
    )


def allocated_summary(domains):
    """What the host promised to its defined domains, running or not."""
    return dict(
        vcpus=sum(d["vcpus"] or 0 for d in domains),
        memory_mb=sum(d["memory_mb"] or 0 for d in domains),
        disk_gb=sum(disk["capacity_gb"] or 0 for d in domains for disk in d["disks"]),
        domains=len(domains),
    )


def parse_meminfo(meminfo_text):
    """/proc/meminfo text -> {field: KiB}."""
    fields = {}
    for line in meminfo_text.splitlines():
        key, _colon, rest = line.partition(":")
        values = rest.split()
        if values and values[0].isdigit():
            fields[key.strip()] = int(values[0])
    return fields


def same_total(total_kib, memory_mb, tolerance=0.05):
    """Whether a memory source's total (KiB) is the host libvirt counts (MiB), within 5%.

    Unknown totals are taken to match.
    """
    if total_kib is None or not memory_mb:
        return True
    return abs(total_kib / 1024 - memory_mb) <= tolerance * memory_mb


def available_mb_from_node_memory_stats(stats):
    """``nodeGetMemoryStats`` (KiB) -> MiB a new guest could take: free + reclaimable cache."""
    if not stats or "free" not in stats:
        return None
    return (stats["free"] + stats.get("buffers", 0) + stats.get("cached", 0)) // 1024


def storage_fact(path, total_bytes, free_bytes):
    return dict(path=path,
                total_gb=None if total_bytes is None else int(total_bytes // _GIB),
                free_gb=None if free_bytes is None else int(free_bytes // _GIB))


def storage_from_statvfs(path, st):
    # f_bavail: what an unprivileged writer may use, the conservative figure
    return storage_fact(path, st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)


def memory_percent(memory_mb, memory_free_mb):
    if not memory_mb or memory_free_mb is None:
        return None
    return round(min(100.0, max(0.0, 100.0 * (1 - memory_free_mb / memory_mb))), 1)


def hypervisor_fact(hostname, virt_types, cpus, memory_mb, memory_free_mb, storage, domains,
                    cpu_percent, sample_seconds):
    """``kvmfleet_hypervisor`` for a reachable host (docs/architecture.md)."""
    return dict(
        reachable=True,
        error=None,
        hostname=hostname,
        virt_types=list(virt_types),
        cpus=cpus,
        memory_mb=memory_mb,
        memory_free_mb=memory_free_mb,
        storage=storage,
        allocated=allocated_summary(domains),
        utilization=dict(cpu_percent=cpu_percent,
                         memory_percent=memory_percent(memory_mb, memory_free_mb),
                         sample_seconds=float(sample_seconds),
                         vm_cpu_percent=vm_cpu_percent(domains, cpus) if sample_seconds else None),
        domains=list(domains),
    )


def unreachable_hypervisor(error, storage_path=DEFAULT_STORAGE_PATH, sample_seconds=0.0):
    """Every key present (so templates don't trip), nothing but ``error`` meaningful."""
    return dict(
        reachable=False,
        error=str(error),
        hostname=None,
        virt_types=[],
        cpus=None,
        memory_mb=None,
        memory_free_mb=None,
        storage=storage_fact(storage_path, None, None),
        allocated=dict(vcpus=None, memory_mb=None, disk_gb=None, domains=None),
        utilization=dict(cpu_percent=None, memory_percent=None, sample_seconds=float(sample_seconds),
                         vm_cpu_percent=None),
        domains=[],
    )


# --------------------------------------------------------------------------- the connection

def _ignore_libvirt_error(_context, _error):
    """libvirt prints every error to stderr unless a handler is set; we raise them instead."""


def _close_quietly(conn):
    try:
        conn.close()
    except Exception:
        pass


def pool_xml(name, path):
    """XML of a directory storage pool."""
    pool = etree.Element("pool", type="dir")
    etree.SubElement(pool, "name").text = name
    target = etree.SubElement(pool, "target")
    etree.SubElement(target, "path").text = path
    return etree.tostring(pool, encoding="unicode")


def pool_path(xml):
    """Target directory of a pool from its XML."""
    return _xml_root(xml).findtext("target/path")


class VirtConnection:
    """A libvirt connection whose every call has a deadline and raises typed errors.

        with VirtConnection("qemu:///system", timeout=10) as virt:
            dom = virt.lookup_domain("web1")
            virt.call(dom.create)

    A call that times out at the connection level (not one domain's) leaves the connection
    unusable: later calls fail at once instead of queueing behind the hung one.
    """

    def __init__(self, uri=DEFAULT_URI, timeout=DEFAULT_TIMEOUT, readonly=False):
        self.uri = uri or DEFAULT_URI
        self.timeout = timeout
        self.readonly = readonly
        self._conn = None
        self._broken = None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    @property
    def conn(self):
        """The raw virConnect, for calls this class has no helper for (run them via call())."""
        if self._conn is None:
            raise ConnectionFailed("not connected to libvirt at %s" % self.uri, uri=self.uri)
        return self._conn

    def open(self):
        if not HAS_LIBVIRT:
            raise VirtError("libvirt-python is not installed", uri=self.uri)
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        opener = libvirt.openReadOnly if self.readonly else libvirt.open
        try:
            self._conn = call_with_deadline(opener, (self.uri,), timeout=self.timeout,
                                            description="connecting to %s" % self.uri,
                                            on_abandoned=_close_quietly)
        except VirtTimeout as err:
            raise VirtTimeout("cannot connect to libvirt at %s: %s" % (self.uri, err), uri=self.uri,
                              timeout=self.timeout)
        except libvirt.libvirtError as err:
            # whatever went wrong, the host is not reachable
            mapped = map_libvirt_error(err, uri=self.uri, operation="open")
            raise ConnectionFailed("cannot connect to libvirt at %s: %s" % (self.uri, mapped), **mapped.details)
        self._broken = None
        return self

    def close(self):
        conn, self._conn = self._conn, None
        if conn is None or self._broken:
            return  # a hung connection's close would hang too; the process exit drops it
        try:
            call_with_deadline(conn.close, timeout=min(self.timeout or 5.0, 5.0))
        except Exception:
            pass

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
            if HAS_LIBVIRT and isinstance(err, libvirt.libvirtError):
                raise map_libvirt_error(err, uri=self.uri, domain=domain, operation=what)
            raise

    # ---- host

    def hostname(self):
        return self.call(self.conn.getHostname)

    def host_info(self):
        """{model, memory_mb, cpus, mhz} from virNodeGetInfo."""
        info = self.call(self.conn.getInfo)
        return dict(model=info[0], memory_mb=info[1], cpus=info[2], mhz=info[3])

    def virt_types(self):
        return parse_virt_types(self.call(self.conn.getCapabilities))

    def node_cpu_times(self):
        return self.call(self.conn.getCPUStats, -1)  # VIR_NODE_CPU_STATS_ALL_CPUS

    def memory_available_mb(self, memory_mb=None):
        """MiB a new guest could take: MemAvailable when the host is this machine, else
        libvirt's node memory stats, else libvirt's free memory.

        A source whose total disagrees with libvirt's ``memory_mb`` describes another
        machine (a container sees its host's /proc/meminfo while libvirt counts only its
        NUMA nodes) and is passed over; the result never exceeds ``memory_mb``.
        """
        available = None
        if uri_is_this_host(self.uri):
            try:
                with open("/proc/meminfo") as handle:
                    meminfo = parse_meminfo(handle.read())
            except (IOError, OSError, ValueError):
                meminfo = {}
            if "MemAvailable" in meminfo and same_total(meminfo.get("MemTotal"), memory_mb):
                available = meminfo["MemAvailable"] // 1024
        if available is None:
            try:
                stats = self.call(self.conn.getMemoryStats, -1)  # VIR_NODE_MEMORY_STATS_ALL_CELLS
                if same_total(stats.get("total"), memory_mb):
                    available = available_mb_from_node_memory_stats(stats)
            except VirtError as err:
                if _fatal(err):
                    raise
        if available is None:
            try:
                available = self.call(self.conn.getFreeMemory) // _MIB
            except VirtError as err:
                if _fatal(err):
                    raise
        if available is not None and memory_mb is not None:
            available = min(available, memory_mb)
        return available

    def storage(self, path=DEFAULT_STORAGE_PATH):
        """{path, total_gb, free_gb} of the image store: statvfs on this host, else the
        active libvirt pool whose target is ``path``; sizes None when neither exists."""
        path = os.path.normpath(path)
        if uri_is_this_host(self.uri) and os.path.isdir(path):
            try:
                # statvfs of a hung NFS mount blocks like a libvirt call does
                st = call_with_deadline(os.statvfs, (path,), timeout=self.timeout,
                                        description="statvfs %s" % path)
            except OSError:
                return storage_fact(path, None, None)
            return storage_from_statvfs(path, st)
        pool = self.pool_for_path(path)
        if pool is None:
            return storage_fact(path, None, None)
        _state, capacity, _allocation, available = self.call(pool.info)
        return storage_fact(path, capacity, available)

    def pool_for_path(self, path):
        """The active storage pool whose target directory is ``path``, or None."""
        path = os.path.normpath(path)
        for pool in self.call(self.conn.listAllStoragePools, 2):  # VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE
            target = _xml_root(self.call(pool.XMLDesc, 0)).findtext("target/path")
            if target and os.path.normpath(target) == path:
                return pool
        return None

    def lookup_pool(self, name):
        """The storage pool called ``name``, or None when there is none."""
        try:
            return self.call(self.conn.storagePoolLookupByName, name)
        except VirtError as err:
            if err.details.get("libvirt_code") == _ERR_NO_STORAGE_POOL:
                return None
            raise

    def lookup_volume(self, pool, name):
        """The volume ``name`` of ``pool`` (refreshed first: the store may be shared), or None."""
        self.call(pool.refresh, 0)
        try:
            return self.call(pool.storageVolLookupByName, name)
        except VirtError as err:
            if err.details.get("libvirt_code") == _ERR_NO_STORAGE_VOL:
                return None
            raise

    def _change_timeout(self):
        return max(self.timeout or 0, MUTATION_TIMEOUT)

    def create_volume(self, pool, xml):
        return self.call(pool.createXML, xml, 0, timeout=self._change_timeout())

    def delete_volume(self, volume):
        self.call(volume.delete, 0, timeout=self._change_timeout())

    # ---- domains

    def find_domain(self, name):
        """The virDomain called ``name``, or None."""
        try:
            return self.lookup_domain(name)
        except DomainNotFound:
            return None

    def define_domain(self, xml):
        """Define (or redefine) a persistent domain; libvirt validates the XML against its schema."""
        return self.call(self.conn.defineXMLFlags, xml, _DEFINE_VALIDATE, timeout=self._change_timeout())

    def domain_state(self, dom):
        return state_name(self.call(dom.state, 0, domain=dom.name())[0])

    def start_domain(self, dom):
        self.call(dom.create, domain=dom.name(), timeout=self._change_timeout())

    def stop_domain(self, dom, graceful_seconds=0.0):
        """Shut the domain off: ACPI shutdown for up to ``graceful_seconds``, then power off."""
        name = dom.name()
        if graceful_seconds > 0:
            self.call(dom.shutdown, domain=name)
            deadline = time.monotonic() + graceful_seconds
            while time.monotonic() < deadline:
                if self.domain_state(dom) == "shutoff":
                    return
                time.sleep(0.5)
        if self.domain_state(dom) != "shutoff":
            self.call(dom.destroy, domain=name, timeout=self._change_timeout())

    def undefine_domain(self, dom, keep_nvram=True):
        """Remove a domain's persistent definition (and its snapshot metadata and managed save).

        ``keep_nvram``: a migration source keeps the NVRAM file, which lives on the shared store
        and now belongs to the destination; deleting a VM removes it. Disks are the caller's.
        """
        flags = _UNDEFINE_BASE_FLAGS | (_UNDEFINE_KEEP_NVRAM if keep_nvram else _UNDEFINE_NVRAM)
        try:
            self.call(dom.undefineFlags, flags, domain=dom.name(), timeout=self._change_timeout())
        except VirtError as err:
            # Drivers without NVRAM or managed save refuse those flags; they have none to remove.
            if err.details.get("libvirt_code") not in (_ERR_NO_SUPPORT, _ERR_INVALID_ARG):
                raise
            self.call(dom.undefine, domain=dom.name(), timeout=self._change_timeout())

    def autostart(self, dom):
        return bool(self.call(dom.autostart, domain=dom.name()))

    def set_autostart(self, dom, enabled):
        self.call(dom.setAutostart, 1 if enabled else 0, domain=dom.name())

    # ---- domains

    def lookup_domain(self, name):
        """The virDomain called ``name``; DomainNotFound if there is none."""
        return self.call(self.conn.lookupByName, name, domain=name)

    def domain_xml(self, dom, inactive=False):
        return self.call(dom.XMLDesc, 2 if inactive else 0, domain=dom.name())  # 2: VIR_DOMAIN_XML_INACTIVE

    def domain_metadata(self, dom):
        """Our metadata of a domain as {child: text}, or None when kvmfleet did not make it."""
        try:
            xml = self.call(dom.metadata, 2, KVMFLEET_METADATA_NS, domain=dom.name())  # 2: METADATA_ELEMENT
        except VirtError as err:
            if err.details.get("libvirt_code") == _ERR_NO_DOMAIN_METADATA:
                return None
            raise
        return parse_metadata(xml)

    def interface_addresses(self, dom):
        """Guest addresses from DHCP leases, else from the ARP table; [] when neither knows."""
        for source in (0, 2):  # VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, _SRC_ARP
            try:
                found = addresses_from_interfaces(self.call(dom.interfaceAddresses, source, domain=dom.name()))
            except VirtError as err:
                if _fatal(err):
                    raise
                continue
            if found:
                return found
        return []

    def domain_stats(self, doms=None, flags=DOMAIN_STATS_FLAGS):
        """[(virDomain, stats dict)] for all domains (or ``doms``) in one call."""
        if doms is None:
            return self.call(self.conn.getAllDomainStats, flags, _STATS_NOWAIT)
        return self.call(self.conn.domainListGetStats, list(doms), flags, _STATS_NOWAIT)

    def _block_fallback(self, dom, xml_info, stats):
        """Sizes the stats lacked (some drivers, unreadable images), from blockInfo."""
        known = block_stats(stats)
        sizes = {}
        for disk in xml_info["disks"]:
            target = disk["target"]
            if disk["device"] not in ("disk", "lun") or not target:
                continue
            if known.get(target, {}).get("capacity") is not None:
                continue
            try:
                capacity, allocation, _physical = self.call(dom.blockInfo, target, domain=dom.name())
            except VirtError as err:
                if _fatal(err):
                    raise
                continue
            sizes[target] = (capacity, allocation)
        return sizes

    def _domain_details(self, dom, stats, with_addresses):
        xml_info = parse_domain_xml(self.domain_xml(dom))
        active = state_name(stats.get("state.state")) in ACTIVE_STATES
        addresses = self.interface_addresses(dom) if with_addresses and active else []
        return xml_info, addresses, self._block_fallback(dom, xml_info, stats)

    def list_domains(self, name=None, sample_seconds=0.0, with_addresses=True, with_metadata=False,
                     while_sampling=None):
        """Facts of every domain (or the one called ``name``), CPU sampled over ``sample_seconds``.

        One getAllDomainStats call opens the window and a second (state and cpu.time only)
        closes it; host CPU counters are read at both ends, so one sleep serves host and
        domains. The per-domain calls and ``while_sampling()`` run inside the window.

        Returns {domains: [fact], skipped: [{name, error}], host_cpu_percent, extra}
        where ``extra`` is what ``while_sampling`` returned. ``with_metadata`` adds each
        domain's kvmfleet metadata (dict or None) as ``metadata``. A domain whose own calls fail
        or time out is skipped, not fatal; a domain undefined meanwhile is left out.
        """
        sampling = sample_seconds > 0
        doms = None
        if name is not None:
            try:
                doms = [self.lookup_domain(name)]
            except DomainNotFound:
                doms = []
        host_before = self.node_cpu_times() if sampling else None
        entries = self.domain_stats(doms) if doms != [] else []
        opened = time.monotonic()
        extra = while_sampling() if while_sampling is not None else None

        rows, skipped = [], []
        for dom, stats in entries:
            try:
                rows.append((dom, stats, self._domain_details(dom, stats, with_addresses)))
            except DomainNotFound:
                continue
            except VirtError as err:
                if _fatal(err):
                    raise
                skipped.append(dict(name=dom.name(), error=str(err)))

        host_cpu = None
        latest = {}
        elapsed = None
        if sampling:
            remaining = sample_seconds - (time.monotonic() - opened)
            if remaining > 0:
                time.sleep(remaining)
            host_after = self.node_cpu_times()
            if rows:
                try:
                    closing = self.domain_stats(None if name is None else [r[0] for r in rows],
                                                flags=STATS_STATE | STATS_CPU_TOTAL | STATS_VCPU)
                except DomainNotFound:
                    closing = []
                latest = dict((dom.UUIDString(), stats) for dom, stats in closing)
            elapsed = time.monotonic() - opened
            host_cpu = host_cpu_percent(host_before, host_after)

        facts = []
        for dom, stats, (xml_info, addresses, fallback) in rows:
            current = dict(stats)
            closing_stats = {}
            if sampling:
                closing_stats = latest.get(dom.UUIDString())
                if closing_stats is None:
                    continue  # undefined during the window
                current.update((k, v) for k, v in closing_stats.items() if k.startswith("state."))
            cpu = domain_cpu_percent(state_name(current.get("state.state")), domain_cpu_time(stats),
                                     domain_cpu_time(closing_stats), elapsed)
            fact = domain_fact(current, xml_info, cpu_percent=cpu, addresses=addresses, block_fallback=fallback)
            if with_metadata:
                fact["metadata"] = xml_info["metadata"]
            facts.append(fact)
        facts.sort(key=lambda fact: fact["name"])
        return dict(domains=facts, skipped=skipped, host_cpu_percent=host_cpu, extra=extra)

    def hypervisor_facts(self, storage_path=DEFAULT_STORAGE_PATH, sample_seconds=DEFAULT_SAMPLE_SECONDS):
        """(``kvmfleet_hypervisor`` dict, skipped domains) of the connected host."""
        def host_facts():
            info = self.host_info()
            return dict(hostname=self.hostname(), info=info, virt_types=self.virt_types(),
                        memory_free_mb=self.memory_available_mb(info["memory_mb"]),
                        storage=self.storage(storage_path))

        listing = self.list_domains(sample_seconds=sample_seconds, while_sampling=host_facts)
        host = listing["extra"]
        fact = hypervisor_fact(
            hostname=host["hostname"],
            virt_types=host["virt_types"],
            cpus=host["info"]["cpus"],
            memory_mb=host["info"]["memory_mb"],
            memory_free_mb=host["memory_free_mb"],
            storage=host["storage"],
            domains=listing["domains"],
            cpu_percent=listing["host_cpu_percent"],
            sample_seconds=sample_seconds,
        )
        return fact, listing["skipped"]

    # ---- migration (plugins/module_utils/migration.py computes the flags and params by name)

    def host_uuid(self):
        """The host UUID from the capabilities (libvirt refuses to migrate between equal ones)."""
        return _xml_root(self.call(self.conn.getCapabilities)).findtext("host/uuid")

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
            try:
                stats = self.job_stats(dom)
            except VirtError as err:
                if _fatal(err):
                    raise
                stats = {}
            if stats.get("type", 0) in (1, 2):  # VIR_DOMAIN_JOB_BOUNDED / UNBOUNDED: running
                samples.append((elapsed, stats))
                if not downtime_set:
                    try:
                        self.set_max_downtime(dom, max_downtime_ms)
                        downtime_set = True
                    except VirtError as err:
                        if _fatal(err):
                            raise
            if aborted:
                if elapsed > abort_at + abort_grace:
                    raise VirtTimeout("%s: migration did not stop within %g s of being aborted" % (name, abort_grace),
                                      domain=name, operation="abortJob")
                continue
            action = monitor(elapsed, stats, switched) if monitor is not None else None
            if action == "postcopy":
                try:
                    self.start_postcopy(dom)
                    switched = True
                except VirtError as err:
                    if _fatal(err):
                        raise
            elif action == "abort":
                try:
                    self.abort_job(dom)
                except VirtError as err:
                    if _fatal(err):
                        raise
                aborted, abort_at = True, elapsed
        elapsed = time.monotonic() - started
        error = outcome.get("error")
        if error is not None:
            if HAS_LIBVIRT and isinstance(error, libvirt.libvirtError):
                error = map_libvirt_error(error, uri=self.uri, domain=name, operation="migrateToURI3")
            elif not isinstance(error, KvmfleetError):
                error = VirtError("%s: migration failed: %s" % (name, error), domain=name)
        return dict(elapsed=elapsed, switched_postcopy=switched, aborted=aborted, samples=samples, error=error)

    # ---- scaling (plugins/module_utils/scaling.py decides the sizes; libvirt's flag values are ABI)

    _AFFECT_LIVE = 1              # VIR_DOMAIN_AFFECT_LIVE
    _AFFECT_CONFIG = 2            # VIR_DOMAIN_AFFECT_CONFIG
    _VCPU_MAXIMUM = 4             # VIR_DOMAIN_VCPU_MAXIMUM
    _VCPU_HOTPLUGGABLE = 16       # VIR_DOMAIN_VCPU_HOTPLUGGABLE
    _MEM_MAXIMUM = 4              # VIR_DOMAIN_MEM_MAXIMUM

    def vcpu_counts(self, dom):
        """{config, config_max, live, live_max}: vCPUs of the definition and, for a running
        domain, of the running one (None when it is not running)."""
        name = dom.name()
        counts = dict(config=self.call(dom.vcpusFlags, self._AFFECT_CONFIG, domain=name),
                      config_max=self.call(dom.vcpusFlags, self._AFFECT_CONFIG | self._VCPU_MAXIMUM, domain=name),
                      live=None, live_max=None)
        if self.domain_state(dom) in ACTIVE_STATES:
            counts["live"] = self.call(dom.vcpusFlags, self._AFFECT_LIVE, domain=name)
            counts["live_max"] = self.call(dom.vcpusFlags, self._AFFECT_LIVE | self._VCPU_MAXIMUM, domain=name)
        return counts

    def vcpus_running(self, dom):
        """vCPUs the running domain has (its vcpu info), or None when it is not running."""
        if self.domain_state(dom) not in ACTIVE_STATES:
            return None
        return len(self.call(dom.vcpus, domain=dom.name())[0])

    def set_vcpus(self, dom, count, live=False, config=False):
        """Set the vCPU count of the running domain (hot(un)plug) and/or of its definition.

        The definition marks added vCPUs hotpluggable where libvirt supports that, so they can be
        unplugged again after a restart. An unplug the guest does not answer makes libvirt fail
        or time out; the caller reads ``vcpu_counts`` afterwards to see what happened.
        """
        name = dom.name()
        if live:
            self.call(dom.setVcpusFlags, int(count), self._AFFECT_LIVE, domain=name, timeout=self._change_timeout())
        if config:
            try:
                self.call(dom.setVcpusFlags, int(count), self._AFFECT_CONFIG | self._VCPU_HOTPLUGGABLE,
                          domain=name, timeout=self._change_timeout())
            except VirtError as err:
                if err.details.get("libvirt_code") not in (_ERR_NO_SUPPORT, _ERR_INVALID_ARG):
                    raise
                self.call(dom.setVcpusFlags, int(count), self._AFFECT_CONFIG, domain=name,
                          timeout=self._change_timeout())

    def set_vcpus_maximum(self, dom, count):
        """Raise (or lower) the definition's vCPU maximum; takes effect at the next start."""
        self.call(dom.setVcpusFlags, int(count), self._AFFECT_CONFIG | self._VCPU_MAXIMUM, domain=dom.name(),
                  timeout=self._change_timeout())

    def memory_sizes_kib(self, dom):
        """{config, config_max, live, live_max} in KiB: currentMemory and memory of the definition
        and, for a running domain, the balloon's actual size and the live maximum (else None)."""
        info = parse_domain_xml(self.domain_xml(dom, inactive=True))
        sizes = dict(config=info["memory_mb"] * 1024 if info["memory_mb"] is not None else None,
                     config_max=info["memory_max_mb"] * 1024 if info["memory_max_mb"] is not None else None,
                     live=None, live_max=None)
        if self.domain_state(dom) in ACTIVE_STATES:
            sizes["live"] = self.balloon_actual_kib(dom)
            sizes["live_max"] = self.call(dom.maxMemory, domain=dom.name())
        return sizes

    def balloon_actual_kib(self, dom):
        """The balloon's actual size (KiB) of a running domain: what the guest has now."""
        name = dom.name()
        try:
            stats = self.call(dom.memoryStats, domain=name)
        except VirtError as err:
            if _fatal(err):
                raise
            stats = {}
        if stats.get("actual") is not None:
            return int(stats["actual"])
        return int(self.call(dom.info, domain=name)[2])

    def set_memory(self, dom, kib, live=False, config=False):
        """Set the running domain's balloon target and/or the definition's currentMemory (KiB).

        Two calls: some drivers refuse LIVE and CONFIG together. The balloon moves after the
        call returns; read ``balloon_actual_kib`` to see what the guest took.
        """
        name = dom.name()
        if live:
            self.call(dom.setMemoryFlags, int(kib), self._AFFECT_LIVE, domain=name, timeout=self._change_timeout())
        if config:
            self.call(dom.setMemoryFlags, int(kib), self._AFFECT_CONFIG, domain=name, timeout=self._change_timeout())

    def set_memory_maximum(self, dom, kib):
        """Raise (or lower) the definition's memory maximum (KiB); takes effect at the next start."""
        self.call(dom.setMemoryFlags, int(kib), self._AFFECT_CONFIG | self._MEM_MAXIMUM, domain=dom.name(),
                  timeout=self._change_timeout())
