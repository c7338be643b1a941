"""Pure parts of the ganglia role's programs: kvmfleet-vmstats and kvmfleet-graphs."""
import importlib.util
import ipaddress
import threading
from pathlib import Path

import pytest

FILES = Path(__file__).resolve().parents[3] / "roles" / "ganglia" / "files"


def load(name):
    spec = importlib.util.spec_from_file_location(name, FILES / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


vmstats = load("kvmfleet_vmstats")
graphs = load("kvmfleet_graphs")

RECORD = {"state.state": 1, "cpu.time": 2_000_000_000, "balloon.current": 1048576,
          "balloon.rss": 300_000, "vcpu.current": 2, "vcpu.maximum": 4,
          "block.count": 2, "block.0.rd.bytes": 1000, "block.0.wr.bytes": 10,
          "block.1.rd.bytes": 500, "block.1.wr.bytes": 0,
          "net.count": 1, "net.0.rx.bytes": 4000, "net.0.tx.bytes": 2000}


def test_spoof_address_is_stable_reserved_and_distinct():
    a = vmstats.spoof_address("0b8e1a8e-8f8e-4d5c-9d7e-1a2b3c4d5e6f")
    assert a == vmstats.spoof_address("0B8E1A8E-8F8E-4D5C-9D7E-1A2B3C4D5E6F")
    assert ipaddress.ip_address(a) in ipaddress.ip_network("240.0.0.0/4")
    addrs = {vmstats.spoof_address("uuid-%d" % i) for i in range(2000)}
    assert len(addrs) == 2000


def test_first_sample_gives_gauges_only():
    cur = vmstats.sample(RECORD, now=100.0)
    assert vmstats.metrics(None, cur) == {"vm_vcpus": 2, "vm_mem_mb": 1024.0, "vm_mem_used_mb": 293.0}


def test_rates_from_two_samples():
    prev = vmstats.sample(RECORD, now=100.0)
    later = dict(RECORD, **{"cpu.time": 2_000_000_000 + 15_000_000_000, "block.0.rd.bytes": 1000 + 3000,
                            "block.1.wr.bytes": 1500, "net.0.rx.bytes": 4000 + 150, "net.0.tx.bytes": 2000})
    out = vmstats.metrics(prev, vmstats.sample(later, now=110.0))
    assert out["vm_cpu_percent"] == 150.0         # 1.5 host CPUs busy over 10 s
    assert out["vm_disk_read_bps"] == 300.0
    assert out["vm_disk_write_bps"] == 150.0
    assert out["vm_net_rx_bps"] == 15.0
    assert out["vm_net_tx_bps"] == 0.0


def test_counter_reset_and_missing_counters_publish_nothing_false():
    prev = vmstats.sample(RECORD, now=100.0)
    reset = dict(RECORD, **{"cpu.time": 5})           # domain restarted or migrated in
    assert "vm_cpu_percent" not in vmstats.metrics(prev, vmstats.sample(reset, now=110.0))
    bare = {"state.state": 1}
    out = vmstats.metrics(vmstats.sample(bare, 1.0), vmstats.sample(bare, 2.0))
    assert "vm_cpu_percent" not in out and out["vm_disk_read_bps"] == 0.0


def test_cpu_falls_back_to_vcpu_times_without_cgroup_accounting():
    rec = {"vcpu.current": 2, "vcpu.maximum": 2, "vcpu.0.time": 1_000_000_000, "vcpu.1.time": 500_000_000}
    assert vmstats.sample(rec, 0.0)["cpu_ns"] == 1_500_000_000


def test_memory_used_prefers_the_guest_view():
    rec = dict(RECORD, **{"balloon.available": 1_000_000, "balloon.unused": 400_000})
    assert vmstats.metrics(None, vmstats.sample(rec, 0.0))["vm_mem_used_mb"] == round(600_000 / 1024, 1)


def test_gmetric_commands_are_argument_lists_with_heartbeat_and_spoof():
    cmds = vmstats.gmetric_commands("vm-web1", "u-1", {"vm_cpu_percent": 12.5, "vm_vcpus": 2}, 15)
    spoof = vmstats.spoof_address("u-1") + ":vm-web1"
    assert cmds[0] == ["gmetric", "--spoof", spoof, "--heartbeat"]
    names = [c[c.index("--name") + 1] for c in cmds[1:]]
    assert names == ["vm_cpu_percent", "vm_vcpus"]
    cpu = cmds[1]
    assert cpu[cpu.index("--value") + 1] == "12.5" and cpu[cpu.index("--type") + 1] == "float"
    assert cpu[cpu.index("--spoof") + 1] == spoof and cpu[cpu.index("--tmax") + 1] == "60"


def test_hung_libvirt_read_times_out_and_is_abandoned():
    release = threading.Event()
    reader = vmstats.Reader("test:///default", timeout=0.2)
    reader._read = lambda box: release.wait(5)
    with pytest.raises(TimeoutError):
        reader.read()
    assert len(reader.stuck) == 1 and reader.conn is None
    release.set()


def make_host(tmp_path, name, metrics):
    d = tmp_path / name
    d.mkdir()
    for m in metrics:
        (d / (m + ".rrd")).write_text("")
    return d


def test_graph_commands_for_a_host(tmp_path):
    host = make_host(tmp_path, "node1", ["cpu_user", "cpu_system", "mem_total", "mem_free", "mem_cached",
                                         "bytes_in", "bytes_out", "disk_total", "disk_free"])
    assert graphs.host_kind(str(host)) == "host"
    cpu = graphs.graph_command("node1", str(host), "host", "cpu", "1h", "/o/cpu.png", 600, 200)
    assert cpu[:3] == ["rrdtool", "graphv", "/o/cpu.png"]
    assert cpu[cpu.index("--title") + 1] == "host node1: CPU, last hour"
    assert cpu[cpu.index("--vertical-label") + 1] == "percent"
    assert "AREA:user#%s:user  " % graphs.COLOURS["cpu"] in cpu
    assert not any("cpu_wio" in a for a in cpu)      # no RRD, no series
    mem = graphs.graph_command("node1", str(host), "host", "memory", "1d", "/o/m.png", 600, 200)
    assert "CDEF:cache=cached_k,1024,*" in mem and mem[mem.index("--base") + 1] == "1024"
    assert mem[mem.index("--start") + 1] == "-1d"
    for graph in graphs.GRAPHS:
        assert graphs.graph_command("node1", str(host), "host", graph, "1h", "x.png", 600, 200)


def test_graph_commands_for_a_vm_and_missing_data(tmp_path):
    vm = make_host(tmp_path, "vm-web1", ["vm_cpu_percent", "vm_mem_mb", "vm_disk_read_bps",
                                         "vm_disk_write_bps"])
    assert graphs.host_kind(str(vm)) == "vm"
    cpu = graphs.graph_command("vm-web1", str(vm), "vm", "cpu", "1h", "c.png", 600, 200)
    assert cpu[cpu.index("--title") + 1] == "VM vm-web1: CPU, last hour"
    assert any(a.startswith("DEF:cpu=") and a.endswith("vm_cpu_percent.rrd:sum:AVERAGE") for a in cpu)
    mem = graphs.graph_command("vm-web1", str(vm), "vm", "memory", "1h", "m.png", 600, 200)
    assert "AREA:mem#%s:assigned" % graphs.COLOURS["memory"] in mem
    assert graphs.graph_command("vm-web1", str(vm), "vm", "network", "1h", "n.png", 600, 200) is None
    assert graphs.graph_command("vm-web1", str(vm), "vm", "disk", "1h", "d.png", 600, 200)


def test_colours_are_distinct_and_parse_graphv():
    assert len(set(graphs.COLOURS.values()) | set(graphs.SECOND.values())) == 8
    info = graphs.parse_graphv('graph_left = 67\ngraph_top = 22\nimage_width = 697\ntitle = "x"\n')
    assert info == {"graph_left": 67, "graph_top": 22, "image_width": 697, "title": "x"}
