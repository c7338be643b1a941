"""kvmfleet-vmstats: per-VM CPU, memory, disk and network load from libvirt into Ganglia.

Once per interval it reads every running domain's statistics with ONE libvirt call
(getAllDomainStats, with the NOWAIT flag where libvirt has it, so a domain whose monitor is busy
is reported without the blocked parts instead of stalling the call), turns counters into rates,
and announces each VM as its own Ganglia host through gmetric --spoof, so gmetad keeps one RRD
directory per VM. The libvirt call runs in a worker thread with a timeout: a hung libvirtd or
domain skips that interval and never stalls the collector; a reader that stays stuck makes the
process exit so that systemd (Restart=always) starts a fresh one.

Installed by the kvmfleet.iaas.ganglia role; stdlib + python3-libvirt only.

A second libvirt client, apart from plugins/module_utils/libvirt/ on purpose: it runs on the
node as a long-lived systemd service, outside any Ansible run, from one copied file, so it
cannot import the collection (no ansible_collections on the node's path, no AnsiballZ to pack
module_utils). It therefore keeps its own deadline and its own reading of the stats (see
docs/architecture.md, "The libvirt layer"); it only reads, never changes a domain.
"""
import argparse
import hashlib
import ipaddress
import logging
import subprocess
import sys
import threading
import time

LOG = logging.getLogger("kvmfleet-vmstats")

# (metric, gmetric type, units, title): what each VM host carries in Ganglia.
METRICS = [
    ("vm_cpu_percent", "float", "%", "CPU (percent of one host CPU, summed over vCPUs)"),
    ("vm_vcpus", "uint16", "vCPUs", "Virtual CPUs"),
    ("vm_mem_mb", "float", "MiB", "Memory assigned"),
    ("vm_mem_used_mb", "float", "MiB", "Memory used (guest view, else host RSS)"),
    ("vm_disk_read_bps", "float", "bytes/s", "Disk read"),
    ("vm_disk_write_bps", "float", "bytes/s", "Disk write"),
    ("vm_net_rx_bps", "float", "bytes/s", "Network received"),
    ("vm_net_tx_bps", "float", "bytes/s", "Network sent"),
]
METRIC_TYPES = {name: (kind, units, title) for name, kind, units, title in METRICS}
# Spoofed hosts need an address; gmond keys hosts by it. VMs get a stable one from their UUID
# in 240.0.0.0/4 (reserved, never a real host), so a VM keeps its RRDs across migrations.
SPOOF_NET = ipaddress.ip_network("240.0.0.0/4")


def spoof_address(uuid):
    """A stable, practically unique address in 240.0.0.0/4 for a domain UUID."""
    digest = int(hashlib.sha256(uuid.lower().encode()).hexdigest(), 16)
    offset = 1 + digest % (SPOOF_NET.num_addresses - 2)
    return str(SPOOF_NET.network_address + offset)


def sample(record, now):
    """Counters of one domain from a getAllDomainStats record (a flat dict of typed params)."""
    def total(prefix, count_key, field):
        values = [record.get("%s.%d.%s" % (prefix, i, field)) for i in range(record.get(count_key, 0))]
        values = [v for v in values if v is not None]
        return sum(values) if values else 0
    mem_kib = record.get("balloon.current")
    used_kib = None
    if record.get("balloon.available") is not None and record.get("balloon.unused") is not None:
        used_kib = record["balloon.available"] - record["balloon.unused"]
    elif record.get("balloon.rss") is not None:
        used_kib = record["balloon.rss"]
    cpu_ns = record.get("cpu.time")
    if cpu_ns is None:
        # No cgroup CPU accounting (libvirt in a container): the vCPU threads' times.
        vcpu_times = [record.get("vcpu.%d.time" % i) for i in range(record.get("vcpu.maximum", 0))]
        vcpu_times = [t for t in vcpu_times if t is not None]
        cpu_ns = sum(vcpu_times) if vcpu_times else None
    return {
        "time": now,
        "cpu_ns": cpu_ns,
        "vcpus": record.get("vcpu.current"),
        "mem_kib": mem_kib,
        "used_kib": used_kib,
        "rd_bytes": total("block", "block.count", "rd.bytes"),
        "wr_bytes": total("block", "block.count", "wr.bytes"),
        "rx_bytes": total("net", "net.count", "rx.bytes"),
        "tx_bytes": total("net", "net.count", "tx.bytes"),
    }


def _rate(prev, cur, key, dt):
    if prev.get(key) is None or cur.get(key) is None or cur[key] < prev[key]:
        return None          # first sample, or a counter reset (restart, migration)
    return (cur[key] - prev[key]) / dt


def metrics(prev, cur):
    """Metric values from two samples of one domain; rates need both, gauges only the current."""
    out = {}
    if cur["vcpus"] is not None:
        out["vm_vcpus"] = int(cur["vcpus"])
    if cur["mem_kib"] is not None:
        out["vm_mem_mb"] = round(cur["mem_kib"] / 1024.0, 1)
    if cur["used_kib"] is not None:
        out["vm_mem_used_mb"] = round(cur["used_kib"] / 1024.0, 1)
    dt = cur["time"] - prev["time"] if prev else 0
    if prev and dt > 0:
        cpu = _rate(prev, cur, "cpu_ns", dt)
        if cpu is not None:
            out["vm_cpu_percent"] = round(100.0 * cpu / 1e9, 2)
        for key, name in (("rd_bytes", "vm_disk_read_bps"), ("wr_bytes", "vm_disk_write_bps"),
                          ("rx_bytes", "vm_net_rx_bps"), ("tx_bytes", "vm_net_tx_bps")):
            value = _rate(prev, cur, key, dt)
            if value is not None:
                out[name] = round(value, 1)
    return out


def gmetric_commands(host, uuid, values, interval, gmetric="gmetric"):
    """Argument lists (no shell) announcing one VM host: a heartbeat, then each metric."""
    spoof = "%s:%s" % (spoof_address(uuid), host)
    tmax, dmax = interval * 4, interval * 20
    cmds = [[gmetric, "--spoof", spoof, "--heartbeat"]]
    for name in sorted(values):
        kind, units, title = METRIC_TYPES[name]
        cmds.append([gmetric, "--name", name, "--value", str(values[name]), "--type", kind,
                     "--units", units, "--title", title, "--group", "vm", "--slope", "both",
                     "--tmax", str(tmax), "--dmax", str(dmax), "--spoof", spoof])
    return cmds


def host_name(prefix, domain_name):
    return prefix + domain_name


class Reader:
    """getAllDomainStats in a worker thread with a timeout; one connection, reopened on errors."""

    def __init__(self, uri, timeout):
        self.uri = uri
        self.timeout = timeout
        self.conn = None
        self.stuck = []

    def _read(self, box):
        try:
            import libvirt   # python3-libvirt; imported here so the pure parts load without it
            if self.conn is None:
                self.conn = libvirt.open(self.uri)
            stats = (libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
                     | libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_VCPU
                     | libvirt.VIR_DOMAIN_STATS_INTERFACE | libvirt.VIR_DOMAIN_STATS_BLOCK)
            flags = (libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_RUNNING
                     | getattr(libvirt, "VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT", 0))
            box["result"] = [(dom.name(), dom.UUIDString(), record)
                             for dom, record in self.conn.getAllDomainStats(stats, flags)]
        except Exception as err:  # libvirtError and connection loss alike: retry next interval
            box["error"] = err
            self.conn = None

    def read(self):
        self.stuck = [t for t in self.stuck if t.is_alive()]
        box = {}
        worker = threading.Thread(target=self._read, args=(box,), daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            self.stuck.append(worker)
            self.conn = None      # never reuse a connection a stuck call holds
            raise TimeoutError("libvirt did not answer in %s s (%d reader(s) stuck)"
                               % (self.timeout, len(self.stuck)))
        if "error" in box:
            raise box["error"]
        return box["result"]


def run(args):
    reader = Reader(args.uri, args.timeout)
    previous = {}
    while True:
        started = time.monotonic()
        try:
            domains = reader.read()
        except TimeoutError as err:
            LOG.warning("skipping this interval: %s", err)
            if len(reader.stuck) >= 3:
                LOG.error("libvirt reads stay stuck; exiting for a fresh start")
                return 1
            domains = None
        except Exception as err:
            LOG.warning("skipping this interval: libvirt: %s", err)
            domains = None
        if domains is not None:
            now = time.monotonic()
            current = {}
            for name, uuid, record in domains:
                cur = sample(record, now)
                current[uuid] = cur
                values = metrics(previous.get(uuid), cur)
                for cmd in gmetric_commands(host_name(args.prefix, name), uuid, values, args.interval,
                                            args.gmetric):
                    try:
                        subprocess.run(cmd, check=True, timeout=5, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
                    except (subprocess.SubprocessError, OSError) as err:
                        LOG.warning("gmetric for %s failed: %s", name, err)
                        break
            previous = current
            LOG.debug("published %d domain(s)", len(current))
        if args.once:
            return 0
        time.sleep(max(0.5, args.interval - (time.monotonic() - started)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--uri", default="qemu:///system")
    parser.add_argument("--interval", type=int, default=15)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--prefix", default="vm-", help="Ganglia host name prefix of VMs")
    parser.add_argument("--gmetric", default="gmetric")
    parser.add_argument("--once", action="store_true", help="one interval, then exit")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format="%(levelname)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
