"""kvmfleet-graphs: PNG graphs of every host and VM from gmetad's RRDs, with rrdtool.

For each host directory under RRD_DIR (one per node, one per VM: VMs are the spoofed hosts
that carry vm_cpu_percent) it draws CPU, memory, disk and network over each period into
OUT/HOST/GRAPH-PERIOD.png, and writes OUT/index.json: per picture the host, kind, graph,
period, the colours of its main and second data series and where rrdtool put the plot area, so a dashboard
(or a test) can find and check it.

Installed by the kvmfleet.iaas.ganglia role; stdlib + the rrdtool command only.
"""
import argparse
import json
import os
import subprocess
import sys
import time

PERIODS = {"1h": ("-1h", "last hour"), "6h": ("-6h", "last 6 hours"), "1d": ("-1d", "last day"),
           "1w": ("-1w", "last week")}
GRAPHS = ("cpu", "memory", "disk", "network")
# Main series colours: distinct and used nowhere else in a picture (the test counts them).
COLOURS = {"cpu": "1F77B4", "memory": "2CA02C", "disk": "9467BD", "network": "FF7F0E"}
SECOND = {"cpu": "D62728", "memory": "98DF8A", "disk": "C5B0D5", "network": "8C564B"}
LINE = "000000"


def legend(vname, unit_fmt):
    """GPRINTs for last / average / maximum of a series, in rrdtool 1.4+ syntax."""
    return ["GPRINT:%s:LAST:last %s" % (vname, unit_fmt),
            "GPRINT:%s:AVERAGE:avg %s" % (vname, unit_fmt),
            "GPRINT:%s:MAX:max %s\\l" % (vname, unit_fmt)]


def series(host_dir, kind, graph):
    """(vertical label, extra options, rrdtool DEF/CDEF/draw items) of one graph, or None.

    Ganglia units: cpu_* percent, mem_* KiB, disk_* GB, bytes_* bytes/s; vm_* as published by
    kvmfleet-vmstats (percent, MiB, bytes/s).
    """
    def rrd(metric):
        path = os.path.join(host_dir, metric + ".rrd")
        return path if os.path.exists(path) else None

    def dfn(vname, metric):
        return "DEF:%s=%s:sum:AVERAGE" % (vname, rrd(metric).replace(":", "\\:"))

    main, second = COLOURS[graph], SECOND[graph]
    num = "%6.1lf%s"
    if kind == "host" and graph == "cpu":
        if not (rrd("cpu_user") and rrd("cpu_system")):
            return None
        items = [dfn("user", "cpu_user"), dfn("system", "cpu_system"),
                 "AREA:user#%s:user  " % main] + legend("user", "%5.1lf%%")
        items += ["AREA:system#%s:system:STACK" % second] + legend("system", "%5.1lf%%")
        if rrd("cpu_wio"):
            items += [dfn("wio", "cpu_wio"), "AREA:wio#FFBB78:I/O wait:STACK"] + legend("wio", "%5.1lf%%")
        return "percent", ["--upper-limit", "100", "--rigid"], items
    if kind == "host" and graph == "memory":
        if not (rrd("mem_total") and rrd("mem_free")):
            return None
        items = [dfn("total_k", "mem_total"), dfn("free_k", "mem_free")]
        cache = []
        for vname, metric in (("cached_k", "mem_cached"), ("buffers_k", "mem_buffers")):
            if rrd(metric):
                items.append(dfn(vname, metric))
                cache.append(vname)
        cache_expr = ",".join(cache) + (",+" * (len(cache) - 1)) if cache else "0"
        items += ["CDEF:total=total_k,1024,*",
                  "CDEF:cache=%s,1024,*" % cache_expr,
                  "CDEF:used=total_k,free_k,-,1024,*,cache,-",
                  "AREA:used#%s:used   " % main] + legend("used", num)
        items += ["AREA:cache#%s:cache  :STACK" % second] + legend("cache", num)
        items += ["LINE1:total#%s:total  " % LINE] + legend("total", num)
        return "bytes", ["--base", "1024"], items
    if kind == "host" and graph == "disk":
        if not (rrd("disk_total") and rrd("disk_free")):
            return None
        items = [dfn("total_g", "disk_total"), dfn("free_g", "disk_free"),
                 "CDEF:total=total_g,1000000000,*", "CDEF:used=total_g,free_g,-,1000000000,*",
                 "AREA:used#%s:used   " % main] + legend("used", num)
        items += ["LINE1:total#%s:total  " % LINE] + legend("total", num)
        return "bytes (local disks)", [], items
    if kind == "host" and graph == "network":
        if not (rrd("bytes_in") and rrd("bytes_out")):
            return None
        items = [dfn("rx", "bytes_in"), dfn("tx", "bytes_out"),
                 "AREA:rx#%s:received" % main] + legend("rx", num)
        items += ["LINE2:tx#%s:sent    " % second] + legend("tx", num)
        return "bytes/s", [], items
    if kind == "vm" and graph == "cpu":
        if not rrd("vm_cpu_percent"):
            return None
        items = [dfn("cpu", "vm_cpu_percent"), "AREA:cpu#%s:CPU   " % main] + legend("cpu", "%5.1lf%%")
        return "percent of one host CPU", [], items
    if kind == "vm" and graph == "memory":
        if not rrd("vm_mem_mb"):
            return None
        items = [dfn("mem_m", "vm_mem_mb"), "CDEF:mem=mem_m,1048576,*"]
        if rrd("vm_mem_used_mb"):
            items += [dfn("used_m", "vm_mem_used_mb"), "CDEF:used=used_m,1048576,*",
                      "AREA:used#%s:used    " % main] + legend("used", num)
            items += ["LINE1:mem#%s:assigned" % LINE] + legend("mem", num)
        else:
            items += ["AREA:mem#%s:assigned" % main] + legend("mem", num)
        return "bytes", ["--base", "1024"], items
    if kind == "vm" and graph in ("disk", "network"):
        first, other, labels = (("vm_disk_read_bps", "vm_disk_write_bps", ("read   ", "written"))
                                if graph == "disk" else
                                ("vm_net_rx_bps", "vm_net_tx_bps", ("received", "sent    ")))
        if not (rrd(first) and rrd(other)):
            return None
        items = [dfn("a", first), dfn("b", other),
                 "AREA:a#%s:%s" % (main, labels[0])] + legend("a", num)
        items += ["LINE2:b#%s:%s" % (second, labels[1])] + legend("b", num)
        return "bytes/s", [], items
    return None


def graph_command(host, host_dir, kind, graph, period, out, width, height, rrdtool="rrdtool"):
    """The rrdtool graphv argument list (no shell) for one picture, or None without data."""
    spec = series(host_dir, kind, graph)
    if spec is None:
        return None
    vlabel, options, items = spec
    start, words = PERIODS[period]
    what = "VM" if kind == "vm" else "host"
    title = "%s %s: %s, %s" % (what, host, graph if graph != "cpu" else "CPU", words)
    return ([rrdtool, "graphv", out, "--imgformat", "PNG", "--start", start, "--end", "now",
             "--width", str(width), "--height", str(height), "--title", title,
             "--vertical-label", vlabel, "--lower-limit", "0", "--slope-mode",
             "--watermark", "kvmfleet " + time.strftime("%Y-%m-%d %H:%M:%S %Z")]
            + options + items)


def parse_graphv(text):
    """rrdtool graphv's `key = value` lines into a dict of ints/strings."""
    info = {}
    for line in text.splitlines():
        if " = " in line:
            key, value = line.split(" = ", 1)
            value = value.strip().strip('"')
            info[key.strip()] = int(value) if value.lstrip("-").isdigit() else value
    return info


def host_kind(host_dir):
    return "vm" if os.path.exists(os.path.join(host_dir, "vm_cpu_percent.rrd")) else "host"


def hosts(rrd_dir):
    for name in sorted(os.listdir(rrd_dir)):
        path = os.path.join(rrd_dir, name)
        if os.path.isdir(path) and not name.startswith("__"):
            yield name, path


def render(args):
    os.makedirs(args.out, exist_ok=True)
    index, failures = [], 0
    for host, host_dir in hosts(args.rrd_dir):
        kind = host_kind(host_dir)
        os.makedirs(os.path.join(args.out, host), exist_ok=True)
        for graph in GRAPHS:
            for period in args.period:
                rel = "%s/%s-%s.png" % (host, graph, period)
                cmd = graph_command(host, host_dir, kind, graph, period, os.path.join(args.out, rel),
                                    args.width, args.height, args.rrdtool)
                if cmd is None:
                    continue
                proc = subprocess.run(cmd, text=True, capture_output=True, timeout=60, check=False)
                if proc.returncode != 0:
                    failures += 1
                    print("kvmfleet-graphs: %s: %s" % (rel, proc.stderr.strip()), file=sys.stderr)
                    continue
                info = parse_graphv(proc.stdout)
                index.append({"file": rel, "host": host, "kind": kind, "graph": graph,
                              "period": period, "colour": COLOURS[graph],
                              "second_colour": SECOND[graph],
                              "plot": {k: info.get("graph_" + k) for k in ("left", "top", "width", "height")},
                              "image": {k: info.get("image_" + k) for k in ("width", "height")}})
    tmp = os.path.join(args.out, "index.json.tmp")
    with open(tmp, "w") as fh:
        json.dump({"rendered": int(time.time()), "graphs": index}, fh, indent=1, sort_keys=True)
    os.replace(tmp, os.path.join(args.out, "index.json"))
    print("kvmfleet-graphs: %d graph(s) of %d host(s) in %s, %d failure(s)"
          % (len(index), len({g["host"] for g in index}), args.out, failures))
    return 1 if failures else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rrd-dir", required=True, help="gmetad's RRD directory of the cluster")
    parser.add_argument("--out", required=True)
    parser.add_argument("--period", action="append", choices=sorted(PERIODS))
    parser.add_argument("--width", type=int, default=600)
    parser.add_argument("--height", type=int, default=200)
    parser.add_argument("--rrdtool", default="rrdtool")
    args = parser.parse_args(argv)
    args.period = args.period or ["1h", "1d"]
    return render(args)


if __name__ == "__main__":
    sys.exit(main())
