"""VM creation end to end on the lab: facts, placement, disk, domain, MAC, address (issue 3),
and the lab guest booting on every node with an address from the dhcp role's server (issue 2)."""
import json
import shutil
import subprocess
from ipaddress import ip_address

import pytest

pytestmark = pytest.mark.lab

SMALL = dict(vcpus=1, memory_mb=128, disk_gb=1)


def create(lab, tmp_path, name, **request):
    report = tmp_path / ("create-%s.json" % name)
    args = ["-e", "name=%s" % name, "-e", "report_file=%s" % report]
    for key, value in dict(SMALL, **request).items():
        args += ["-e", "%s=%s" % (key, value)]
    run = lab.playbook("create_vm", *args)
    run.report = json.loads(report.read_text()) if run.rc == 0 else None
    return run


def delete(lab, tmp_path, name):
    report = tmp_path / ("delete-%s.json" % name)
    run = lab.playbook("delete_vm", "-e", "name=%s" % name, "-e", "report_file=%s" % report, check=True)
    return json.loads(report.read_text())


def pings(address):
    return subprocess.run(["ping", "-c", "2", "-W", "2", address], capture_output=True,
                          check=False).returncode == 0


def domains(lab, node):
    proc = lab.ansible(node, "ansible.builtin.command", "virsh --quiet list --all --name")
    return set(proc.stdout.split("\n", 1)[1].split())


def image_files(lab):
    return {p.name for p in (lab.state / "shared" / "images").iterdir() if p.is_file()}


def reservations(lab):
    proc = lab.ansible("dhcp_server", "ansible.builtin.command", "ls /etc/kvmfleet/dhcp-hosts.d")
    return [f for f in proc.stdout.split("\n", 1)[1].split() if f.endswith(".conf")]


@pytest.fixture
def vms(onboarded, tmp_path):
    """Names created by a test; deleted afterwards, also when the test fails."""
    names = []
    yield names
    for name in names:
        onboarded.playbook("delete_vm", "-e", "name=%s" % name, "-e", "ignore_unreachable=true")


def test_lab_guest_boots_on_every_node_with_an_address_from_the_dhcp_role(onboarded, tmp_path, vms):
    network = onboarded.network()
    for node in onboarded.hosts():
        name = "boot-%s" % node
        vms.append(name)
        run = create(onboarded, tmp_path, name, host=node)
        assert run.rc == 0, run
        assert run.report["host"] == node and run.report["state"] == "running"
        assert run.report["ip"] and ip_address(run.report["ip"]) in network, run.report
        assert pings(run.report["ip"]), run.report


def test_create_runs_on_the_chosen_host_answers_ping_and_is_idempotent(onboarded, tmp_path, vms):
    vms.append("web1")
    first = create(onboarded, tmp_path, "web1")
    assert first.rc == 0, first
    report = first.report
    assert report["changed"] is True and report["state"] == "running"
    assert "web1" in domains(onboarded, report["host"])
    assert report["mac"].startswith("52:54:00:") and pings(report["ip"])
    again = create(onboarded, tmp_path, "web1")
    assert again.rc == 0 and again.report["changed"] is False, again
    assert set(again.changed().values()) == {0}, again
    assert {k: again.report[k] for k in ("host", "ip", "mac")} == {k: report[k] for k in ("host", "ip", "mac")}


def test_ip_range_gives_an_address_inside_it(onboarded, tmp_path, vms):
    vms.append("fixed1")
    net = onboarded.network()
    first, last = net.network_address + 50, net.network_address + 52
    run = create(onboarded, tmp_path, "fixed1", ip_range="%s-%s" % (first, last))
    assert run.rc == 0, run
    assert first <= ip_address(run.report["ip"]) <= last, run.report
    assert pings(run.report["ip"])


def test_anti_affinity_group_members_land_on_different_hosts(onboarded, tmp_path, vms):
    hosts = []
    for name in ("app1", "app2"):
        vms.append(name)
        run = create(onboarded, tmp_path, name, group="app")
        assert run.rc == 0, run
        hosts.append(run.report["host"])
    assert hosts[0] != hosts[1], hosts


def test_delete_leaves_no_disk_no_domain_and_no_reservation(onboarded, tmp_path, vms):
    vms.append("gone1")
    net = onboarded.network()
    run = create(onboarded, tmp_path, "gone1", ip="%s" % (net.network_address + 60))
    assert run.rc == 0, run
    assert "gone1.qcow2" in image_files(onboarded) and len(reservations(onboarded)) >= 1
    before = set(reservations(onboarded))
    report = delete(onboarded, tmp_path, "gone1")
    assert report["deleted_from"] == [run.report["host"]] and report["reservations_removed"] == [run.report["ip"]]
    assert "gone1.qcow2" not in image_files(onboarded)
    assert all("gone1" not in domains(onboarded, node) for node in onboarded.hosts())
    assert len(set(reservations(onboarded))) == len(before) - 1
    assert delete(onboarded, tmp_path, "gone1")["changed"] is False


def test_placement_refuses_with_every_host_and_its_reason_when_the_cluster_is_full(onboarded, tmp_path, vms):
    # Fill by disk: each node counts the image store's size (disk ratio 1.0), so a VM with a
    # sparse disk of 60 % of it takes a node. Cheap to boot, and the same refusal path as CPU.
    store_gb = shutil.disk_usage(onboarded.state / "shared" / "images").total // 1024 ** 3
    big = dict(disk_gb=int(store_gb * 0.6), memory_mb=128)
    placed = set()
    for index in range(len(onboarded.hosts())):
        name = "fill%d" % index
        vms.append(name)
        run = create(onboarded, tmp_path, name, **big)
        assert run.rc == 0, run
        placed.add(run.report["host"])
    assert placed == set(onboarded.hosts())
    vms.append("overflow")
    run = create(onboarded, tmp_path, "overflow", **big)
    assert run.rc != 0, run
    assert "no host can take overflow" in run.output, run
    for node in onboarded.hosts():
        assert "%s: disk: needs %d GiB" % (node, big["disk_gb"]) in run.output, run


@pytest.mark.parametrize("request_vars, message", [
    (dict(name="Bad_Name"), "name="),
    (dict(name="a" * 64), "name="),
    # -e gives strings, and the message quotes the value as given.
    (dict(name="zero1", vcpus=0), "vcpus='0': must be >= at least one vCPU"),
    (dict(name="neg1", memory_mb=-1), "memory_mb='-1': must be >="),
    (dict(name="huge1", disk_gb=10 ** 9), "disk_gb="),
    (dict(name="wide1", vcpus=64), "host maximum"),
    (dict(name="noimg1", image="/srv/kvmfleet/images/missing.qcow2"), "image="),
    (dict(name="outside1", image="/etc/passwd"), "image="),
    (dict(name="farip1", ip="192.0.2.10"), "must lie inside the VM network"),
])
def test_bad_input_gets_a_clear_error_and_leaves_nothing(onboarded, tmp_path, request_vars, message):
    name = request_vars.pop("name")
    disks, reserved = image_files(onboarded), set(reservations(onboarded))
    run = create(onboarded, tmp_path, name, **request_vars)
    assert run.rc != 0 and message in run.output, run
    assert image_files(onboarded) == disks and set(reservations(onboarded)) == reserved
    assert all(name not in domains(onboarded, node) for node in onboarded.hosts())


def test_a_full_range_and_a_taken_name_are_refused(onboarded, tmp_path, vms):
    net = onboarded.network()
    one = net.network_address + 70
    vms.append("holder1")
    assert create(onboarded, tmp_path, "holder1", ip=str(one)).rc == 0
    full = create(onboarded, tmp_path, "late1", ip_range="%s-%s" % (one, one))
    assert full.rc != 0 and "late1" not in image_files(onboarded), full
    assert "no free address" in full.output or "taken" in full.output or "full" in full.output, full
    # The same name with another size is refused on the host that has it, and changes nothing there.
    other = create(onboarded, tmp_path, "holder1", vcpus=2)
    assert other.rc != 0 and "exists on this host with other settings" in other.output, other
