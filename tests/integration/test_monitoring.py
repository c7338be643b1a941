"""Shared storage and monitoring on the lab (issue 7): the NFS export, Ganglia RRDs of every node
and VM, graphs that show data, and gmond repaired by the next setup run."""
import json
import time

import pytest

from pngpixels import columns_with_colour, decode

pytestmark = pytest.mark.lab

RRDS = "/var/lib/ganglia/rrds/kvmfleet"
# A VM with no OS (SeaBIOS only) under TCG: enough for per-VM CPU and memory metrics.
VM_NAME = "montest"
VM_XML = ("<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
          "<os><type arch='x86_64'>hvm</type></os></domain>" % VM_NAME)


def run(lab, node, cmd, check=True):
    return lab.ansible(node, "ansible.builtin.command", cmd, check=check)


def output(proc):
    """stdout of a one-host ad-hoc command (after the `node | CHANGED | rc=0 >>` line)."""
    return proc.stdout.split("\n", 1)[1] if "\n" in proc.stdout else ""


def lastupdate(lab, collector, paths):
    """{rrd path: timestamp of its last update} read on the collector."""
    stamps = {}
    for path in paths:
        proc = run(lab, collector, "rrdtool lastupdate %s" % path)
        line = [ln for ln in output(proc).splitlines() if ":" in ln][-1]
        stamps[path] = int(line.split(":")[0])
    return stamps


@pytest.fixture(scope="module")
def monitored(onboarded):
    """The onboarded lab with one VM running on the last hypervisor (not the collector)."""
    lab = onboarded
    nodes = sorted(lab.hosts())
    lab.collector, lab.vm_node = nodes[0], nodes[-1]
    lab.ansible(lab.vm_node, "ansible.builtin.copy", "dest=/root/montest.xml content=\"%s\"" % VM_XML)
    run(lab, lab.vm_node, "virsh --quiet create /root/montest.xml")
    lab.vm_started = time.time()
    try:
        yield lab
    finally:
        run(lab, lab.vm_node, "virsh --quiet destroy %s" % VM_NAME, check=False)


def test_nfs_export_lists_writes_and_reads_back_from_another_node(monitored):
    lab = monitored
    server = lab.hosts()[lab.collector]["ansible_host"]      # node1: nfs_server in the lab
    client = lab.vm_node
    lab.ansible(client, "ansible.builtin.apt", "name=libnfs-utils state=present install_recommends=false")
    share = "nfs://%s/srv/kvmfleet/images" % server
    token = "kvmfleet-nfs-%d" % time.time()
    lab.ansible(client, "ansible.builtin.copy", "dest=/root/nfs-probe content=%s" % token)
    try:
        for version in (4, 3):
            listing = run(lab, client, "nfs-ls %s?version=%d" % (share, version))
            assert "lab-guest.qcow2" in listing.stdout or "boot" in listing.stdout, listing.stdout
        run(lab, client, "nfs-cp /root/nfs-probe %s/nfs-probe.txt?version=3" % share)
        back = run(lab, client, "nfs-cat %s/nfs-probe.txt?version=4" % share)
        assert token in back.stdout
        # The export is the very store the hypervisors' pool uses (the lab's bind mount).
        local = run(lab, client, "cat /srv/kvmfleet/images/nfs-probe.txt")
        assert token in local.stdout
    finally:
        lab.ansible(client, "ansible.builtin.file", "path=/srv/kvmfleet/images/nfs-probe.txt state=absent",
                    check=False)


def test_rrds_of_every_node_and_vm_advance(monitored):
    lab = monitored
    vm_host = "vm-" + VM_NAME
    paths = ["%s/%s/%s.rrd" % (RRDS, node, metric) for node in lab.hosts()
             for metric in ("cpu_user", "mem_free", "bytes_in")]
    paths += ["%s/%s/%s.rrd" % (RRDS, vm_host, metric) for metric in ("vm_cpu_percent", "vm_mem_mb")]
    deadline = time.time() + 90
    while True:      # the VM's RRDs appear one or two collector intervals after it starts
        missing = run(lab, lab.collector, "ls " + " ".join(paths), check=False)
        if "rc=0" in missing.stdout or time.time() > deadline:
            break
        time.sleep(5)
    assert "rc=0" in missing.stdout, missing.stdout
    first = lastupdate(lab, lab.collector, paths)
    time.sleep(35)     # gmetad's step is 15 s in the lab
    later = lastupdate(lab, lab.collector, paths)
    stalled = [p for p in paths if later[p] <= first[p]]
    print("RRD advance over 35 s:", {p.split(RRDS)[1]: later[p] - first[p] for p in paths})
    assert not stalled, (stalled, first, later)
    # And the VM's CPU holds numbers, not only unknowns.
    fetch = run(lab, lab.collector, "rrdtool fetch %s/%s/vm_cpu_percent.rrd AVERAGE --start -120"
                % (RRDS, vm_host))
    values = [ln.split(":")[1].strip() for ln in output(fetch).splitlines() if ":" in ln]
    assert any(v not in ("-nan", "nan") for v in values), fetch.stdout


def test_graphs_render_and_show_data(monitored, tmp_path):
    lab = monitored
    running = time.time() - lab.vm_started
    if running < 60:       # a minute of the VM's data, so its graphs have points to draw
        time.sleep(60 - running)
    run_ = lab.playbook("graphs", "-e", "ganglia_graphs_fetch_dir=%s" % tmp_path, check=True)
    index = json.loads((tmp_path / "index.json").read_text())["graphs"]
    hosts = set(lab.hosts()) | {"vm-" + VM_NAME}
    drawn = {(g["host"], g["graph"], g["period"]) for g in index}
    for host in hosts:
        for graph in ("cpu", "memory", "disk", "network"):
            for period in ("1h", "1d"):
                assert (host, graph, period) in drawn, (host, graph, period, run_)
    # Pixels: the main series' colour inside the plot area, over enough columns to be data
    # (the legend's colour box lies outside the plot area).
    must_show = [(h, g) for h in hosts for g in ("cpu", "memory")] + [(h, "network") for h in lab.hosts()]
    report = {}
    for g in index:
        width, height, rows = decode((tmp_path / g["file"]).read_bytes())
        assert (width, height) == (g["image"]["width"], g["image"]["height"])
        plot = g["plot"]
        cols = columns_with_colour(rows, g["colour"], plot["left"], plot["top"], plot["width"], plot["height"])
        if g["graph"] == "network":
            # A quiet node's received bytes sit at the bottom under the sent line, which is
            # drawn on top: either series drawn is data shown.
            cols |= columns_with_colour(rows, g["second_colour"], plot["left"], plot["top"],
                                        plot["width"], plot["height"])
        report[g["file"]] = len(cols)
        # A lab's data is minutes old: over a day that is less than one pixel column after
        # consolidation, so only the hour graphs are required to show it.
        if (g["host"], g["graph"]) in must_show and g["period"] == "1h":
            assert len(cols) >= 3, (g, len(cols))
    print("data columns per graph:", report)


def test_stopped_gmond_is_repaired_by_the_next_setup_run(monitored):
    lab = monitored
    node = lab.vm_node
    # A crash is repaired by systemd itself (Restart=always) ...
    run(lab, node, "systemctl kill --kill-who=main --signal=KILL ganglia-monitor.service")
    time.sleep(7)
    assert "rc=0" in run(lab, node, "systemctl is-active ganglia-monitor.service", check=False).stdout
    # ... a stop by hand by the next setup run.
    run(lab, node, "systemctl stop ganglia-monitor.service")
    assert "rc=0" not in run(lab, node, "systemctl is-active ganglia-monitor.service", check=False).stdout
    repair = lab.playbook("setup_node", "-e", "target=%s" % node, check=True)
    assert repair.changed()[node] >= 1, repair
    assert "rc=0" in run(lab, node, "systemctl is-active ganglia-monitor.service", check=False).stdout
