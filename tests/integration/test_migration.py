"""Live migration on the lab (issue 4): the module, migrate_vm.yml, evacuate_host.yml, faults,
busy guests.

Guests are the lab guest (lab/guest) defined with domain_xml and `virsh define` by the helpers
of bench/migration.py. Every fault test asserts that the VM still runs where it was, with its
definition, and did not reboot (one KVMFLEET-BOOT marker on its console).
"""
import importlib.util
import json
import re
import time

import pytest

from conftest import REPO

pytestmark = pytest.mark.lab

_spec = importlib.util.spec_from_file_location("kvmfleet_bench_migration", REPO / "bench" / "migration.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# The lab's image store is one host directory bind-mounted on every node: shared, but not a
# file system libvirt recognises as shared. The machine's 2 cores are shared with other labs,
# so live CPU figures say little about capacity here: the threshold is lifted.
EXTRA_INVENTORY = """\
all:
  vars:
    kvmfleet_migration_unsafe_reason: >-
      {reason}
    kvmfleet_cpu_threshold: "off"
"""


class Mig:
    def __init__(self, lab, tmp):
        self.lab = lab
        self.nodes = bench.LabNodes(lab.inventory)
        self.extra = tmp / "migration-vars.yml"
        self.extra.write_text(EXTRA_INVENTORY.format(reason=bench.UNSAFE_REASON))
        self.born = {}

    def playbook(self, name, *args):
        return self.lab.playbook(name, "-i", str(self.lab.inventory), "-i", str(self.extra), *args)

    def module(self, node, **args):
        args.setdefault("unsafe_reason", bench.UNSAFE_REASON)
        return self.nodes.module(node, "kvmfleet.iaas.vm_migrate", args)

    def uri(self, node):
        return "qemu+ssh://root@%s/system" % self.nodes.hosts[node]

    def where(self, name):
        return self.nodes.where(name)

    def boots(self, node, name):
        out = self.nodes.ssh(node, "cat /var/log/libvirt/qemu/%s.console" % name).stdout
        return out.count("KVMFLEET-BOOT")

    def uptime(self, node, name, timeout=20):
        """The guest's uptime from the newest KVMFLEET-STATUS line printed on `node` (3 s apart)."""
        deadline = time.time() + timeout
        while True:
            out = self.nodes.ssh(node, "cat /var/log/libvirt/qemu/%s.console" % name).stdout
            found = re.findall(r"KVMFLEET-STATUS .*uptime=([0-9.]+)", out)
            if found or time.time() > deadline:
                return float(found[-1]) if found else None
            time.sleep(2)

    def console_tail(self, node, name):
        """What a failed assertion shows: the end of the console and the domain's vCPU time."""
        return self.nodes.ssh(node, "tail -c 1500 /var/log/libvirt/qemu/%s.console; virsh domstats --state "
                                    "--vcpu %s" % (name, name), check=False).stdout

    def assert_moved(self, name, node, born):
        """Runs on `node` only, and is the same guest: no boot there (a console file starts empty
        on the destination), and the uptime it reports there covers its whole life."""
        assert self.where(name) == {node: "running"}
        assert self.boots(node, name) == 0
        uptime = self.uptime(node, name)
        assert uptime is not None and uptime >= time.time() - born - 30, (uptime, time.time() - born,
                                                                          self.console_tail(node, name))

    def assert_intact(self, name, node):
        """Still running on `node` only, persistent, never rebooted (its uptime covers its life)."""
        assert self.where(name) == {node: "running"}
        info = self.nodes.ssh(node, "virsh dominfo %s" % name).stdout
        assert "Persistent:     yes" in info, info
        uptime = self.uptime(node, name)
        assert uptime is not None and uptime >= time.time() - self.born[name] - 30, uptime


@pytest.fixture(scope="module")
def migration_lab(lab):
    """The lab onboarded for migration: kvm, bridge, DHCP, SSH trust. Ganglia and NFS are not
    needed here (the image store is the lab's bind mount), so a run of this module alone skips
    them; after the suite's full onboarding this is an idempotent re-run."""
    run = lab.playbook("setup_node", "-e", '{"setup_ganglia": false, "setup_nfs": false}')
    assert run.rc == 0, run
    return lab


@pytest.fixture(scope="module")
def mig(migration_lab, tmp_path_factory):
    m = Mig(migration_lab, tmp_path_factory.mktemp("mig"))
    m.nodes.enable_postcopy()
    names = ["mg-web1", "mg-web2", "mg-busy"]
    try:
        yield m
    finally:
        for name in names:
            m.nodes.remove_guest(name)


@pytest.fixture(scope="module")
def web1(mig):
    """An idle guest in group web on node1, with its address."""
    mig.born["mg-web1"] = time.time()
    ip = mig.nodes.create_guest("node1", "mg-web1", bench.mac_for("mg-web1"), group="web")
    return ip


def test_migrate_vm_to_a_target_keeps_the_guest_answering(mig, web1):
    pinger = bench.Pinger(web1)
    time.sleep(1)
    run = mig.playbook("migrate_vm", "-e", "vm=mg-web1", "-e", "target=node2")
    time.sleep(1)
    ping = pinger.stop()
    assert run.rc == 0, run
    mig.assert_moved("mg-web1", "node2", mig.born["mg-web1"])
    assert "total_time_ms" in run.output and "downtime_ms" in run.output
    # 50 ms pings across the move: at most a few lost in the switch-over
    assert ping["sent"] > 40 and ping["lost"] <= 5, ping


def test_module_is_idempotent_and_check_mode_moves_nothing(mig, web1):
    rc, again = mig.module("node1", name="mg-web1", destination="node2", destination_uri=mig.uri("node2"))
    assert rc == 0 and again["changed"] is False and again["action"] == "already_there", again
    rc, check = mig.nodes.module("node2", "kvmfleet.iaas.vm_migrate",
                                 dict(name="mg-web1", destination_uri=mig.uri("node3"),
                                      unsafe_reason=bench.UNSAFE_REASON), check=True)
    assert rc == 0 and check["changed"] is True and check["stats"] is None, check
    mig.assert_intact("mg-web1", "node2")


def test_without_target_placement_honours_anti_affinity(mig, web1):
    mig.born["mg-web2"] = time.time()
    mig.nodes.create_guest("node1", "mg-web2", bench.mac_for("mg-web2"), group="web", wait_ip=False)
    # mg-web1 (group web) runs on node2: the only other host mg-web2 may go to is node3
    run = mig.playbook("migrate_vm", "-e", "vm=mg-web2")
    assert run.rc == 0, run
    mig.assert_moved("mg-web2", "node3", mig.born["mg-web2"])


@pytest.mark.parametrize("args,message", [
    (["-e", "vm=mg-nosuch"], "VM mg-nosuch does not exist on any hypervisor"),
    (["-e", "vm=mg-web1", "-e", "target=node2"], "target node2 is the host mg-web1 already runs on"),
    (["-e", "vm=mg-web1", "-e", "target=node9"], "target node9 is not a hypervisor of the inventory"),
    (["-e", "vm=mg-web1", "-e", "kvmfleet_reserved_host_memory_mb=1000000"], "no host can take mg-web1"),
    (["-e", "vm=mg-web1", "-e", "target=node3"], "anti-affinity"),
])
def test_bad_requests_fail_clearly_and_move_nothing(mig, web1, args, message):
    run = mig.playbook("migrate_vm", *args)
    assert run.rc != 0 and message in run.output, run
    mig.assert_intact("mg-web1", "node2")


def test_target_in_maintenance_is_refused(mig, web1):
    mig.nodes.ssh("node1", "mkdir -p /etc/kvmfleet && echo '{}' > /etc/kvmfleet/maintenance")
    try:
        run = mig.playbook("migrate_vm", "-e", "vm=mg-web1", "-e", "target=node1")
        assert run.rc != 0 and "node1: in maintenance" in run.output, run
    finally:
        mig.nodes.ssh("node1", "rm -f /etc/kvmfleet/maintenance")
    mig.assert_intact("mg-web1", "node2")


def test_destination_libvirt_stopped(mig, web1):
    units = "libvirtd.service libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket"
    mig.nodes.ssh("node1", "systemctl stop %s" % units)
    try:
        rc, res = mig.module("node2", name="mg-web1", destination="node1", destination_uri=mig.uri("node1"))
    finally:
        mig.nodes.ssh("node1", "systemctl start libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket "
                               "libvirtd.service")
    assert rc != 0 and "cannot connect to libvirt at %s" % mig.uri("node1") in res["msg"], res
    mig.assert_intact("mg-web1", "node2")


def test_destination_unreachable(mig, web1):
    nowhere = "qemu+ssh://root@%s.29/system" % ".".join(mig.nodes.hosts["node1"].split(".")[:3])
    t0 = time.monotonic()
    rc, res = mig.module("node2", name="mg-web1", destination_uri=nowhere, timeout=15)
    assert rc != 0 and "cannot connect to libvirt" in res["msg"], res
    assert time.monotonic() - t0 < 60
    mig.assert_intact("mg-web1", "node2")


# A guest that dirties 200 MiB/s of pages over a 96 MiB buffer: its whole buffer in every
# pass, faster than the 40 MiB/s cap, so plain pre-copy never converges. The dirtier writes in
# proportion to the CPU it gets (lab/guest/dirty.c), so auto-converge's vCPU throttle slows it.
BUSY = dict(memory_mb=256, dirty=200, dirty_buf=96)
CAP = dict(bandwidth=40, migration_timeout=45, timeout_action="abort")


@pytest.fixture(scope="module")
def busy(mig):
    mig.born["mg-busy"] = time.time()
    mig.nodes.create_guest("node1", "mg-busy", bench.mac_for("mg-busy"), **BUSY)
    time.sleep(5)
    return "mg-busy"


def test_busy_guest_pre_copy_times_out_and_aborts(mig, busy):
    t0 = time.monotonic()
    rc, res = mig.module("node1", name=busy, destination="node2", destination_uri=mig.uri("node2"), **CAP)
    assert rc != 0 and res["aborted"] is True, json.dumps(res)
    assert "did not finish within 45 s and was aborted" in res["msg"] and "still runs on node1" in res["msg"]
    assert time.monotonic() - t0 < 75
    last = res["progress"][-1]
    assert last["iteration"] >= 5 and last["dirty_rate_mib_s"] > 10, res["progress"]
    mig.assert_intact(busy, "node1")


def test_busy_guest_converges_with_auto_converge(mig, busy):
    rc, res = mig.module("node1", name=busy, destination="node2", destination_uri=mig.uri("node2"),
                         auto_converge=True, auto_converge_initial=90, auto_converge_increment=9, **CAP)
    assert rc == 0 and res["action"] == "migrated", json.dumps(res)
    print("auto-converge", json.dumps(res["stats"]))
    assert max(p["throttle_percent"] or 0 for p in res["progress"]) >= 90
    # converged because the throttle slowed the guest, not by luck: the dirty rate libvirt saw
    # under the heaviest throttle is well below the unthrottled one
    free = [p["dirty_rate_mib_s"] for p in res["progress"] if not p["throttle_percent"] and p["dirty_rate_mib_s"]]
    held = [p["dirty_rate_mib_s"] for p in res["progress"] if (p["throttle_percent"] or 0) >= 90]
    assert free and held and min(held) < 0.5 * max(free), json.dumps(res["progress"])
    mig.assert_moved(busy, "node2", mig.born[busy])


def test_busy_guest_converges_with_post_copy(mig, busy):
    rc, res = mig.module("node2", name=busy, destination="node1", destination_uri=mig.uri("node1"),
                         post_copy=True, **CAP)
    assert rc == 0 and res["postcopy"] is True, json.dumps(res)
    print("post-copy", json.dumps(res["stats"]))
    assert res["stats"]["postcopy_requests"] is not None
    mig.assert_moved(busy, "node1", mig.born[busy])
    mig.nodes.remove_guest(busy)  # it keeps a core busy


def test_evacuate_host_and_return_it(mig, web1):
    # node3 runs mg-web2; node2 runs mg-web1 (both group web): evacuating node3 leaves node1
    run = mig.playbook("evacuate_host", "-e", "host=node3")
    assert run.rc == 0, run
    mig.assert_moved("mg-web2", "node1", mig.born["mg-web2"])
    assert "node3 is empty and in maintenance" in run.output
    # placement now skips node3, also in a later run
    run = mig.playbook("migrate_vm", "-e", "vm=mg-web1", "-e", "target=node3")
    assert run.rc != 0 and "node3: in maintenance" in run.output, run
    run = mig.playbook("evacuate_host", "-e", "host=node3", "-e", "maintenance=false")
    assert run.rc == 0 and "node3 is back in service" in run.output, run
    run = mig.playbook("migrate_vm", "-e", "vm=mg-web1", "-e", "target=node3")
    assert run.rc == 0, run
    mig.assert_moved("mg-web1", "node3", mig.born["mg-web1"])
