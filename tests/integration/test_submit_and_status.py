"""A customer's image (and domain XML) submitted and run on the lab, hostile submissions refused
with nothing left behind; the fleet report the dashboard reads (fleet_status.yml)."""
import json
import shutil
import subprocess
from ipaddress import ip_address

import pytest

pytestmark = pytest.mark.lab

GOOD_XML = """<domain type='qemu'>
  <name>appliance</name>
  <memory unit='MiB'>512</memory>
  <currentMemory unit='MiB'>256</currentMemory>
  <vcpu current='1'>2</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/kvmfleet/images/appliance.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='bridge'><source bridge='br0'/><model type='virtio'/></interface>
    %s
  </devices>
</domain>
"""
HOSTDEV = ("<hostdev mode='subsystem' type='pci'><source>"
           "<address domain='0' bus='0' slot='2' function='0'/></source></hostdev>")


def pool(lab):
    return lab.state / "shared" / "images"


def pool_files(lab):
    return {p.name for p in pool(lab).iterdir() if p.is_file()}


def uploads_left(lab):
    """Files in the incoming directory of every node (the upload goes to one of them)."""
    proc = lab.ansible("hypervisors", "ansible.builtin.find", "paths=/var/lib/kvmfleet/incoming", check=False)
    return [line for line in proc.stdout.splitlines() if '"path"' in line]


def domains(lab):
    names = set()
    for node in lab.hosts():
        proc = lab.ansible(node, "ansible.builtin.command", "virsh --quiet list --all --name")
        names |= set(proc.stdout.split("\n", 1)[1].split())
    return names


def submit(lab, tmp_path, name, image, xml=None, *extra):
    report = tmp_path / ("submit-%s.json" % name)
    args = ["-e", "name=%s" % name, "-e", "image_src=%s" % image, "-e", "report_file=%s" % report]
    if xml is not None:
        path = tmp_path / ("%s.xml" % name)
        path.write_text(xml)
        args += ["-e", "domain_xml=%s" % path]
    run = lab.playbook("submit_vm", *(args + list(extra)))
    run.report = json.loads(report.read_text()) if run.rc == 0 and report.exists() else None
    return run


@pytest.fixture
def customer_image(onboarded, tmp_path):
    """The lab guest's disk, as a customer would upload it from the controller."""
    path = tmp_path / "customer-disk.qcow2"
    shutil.copyfile(pool(onboarded) / "lab-guest.qcow2", path)
    return path


@pytest.fixture
def submitted(onboarded):
    """Names submitted by a test: the VM and its imported image are removed afterwards."""
    names = []
    yield names
    for name in names:
        onboarded.playbook("delete_vm", "-e", "name=%s" % name, "-e", "ignore_unreachable=true")
        onboarded.ansible(sorted(onboarded.hosts())[0], "kvmfleet.iaas.image",
                          "name=%s.image.qcow2 state=absent" % name, check=False)


def test_fleet_status_reports_every_node_and_changes_nothing(onboarded, tmp_path):
    report = tmp_path / "fleet.json"
    run = onboarded.playbook("fleet_status", "-e", "report_file=%s" % report, check=True)
    assert set(run.changed().values()) == {0}, run
    doc = json.loads(report.read_text())
    assert sorted(h["name"] for h in doc["hosts"]) == sorted(onboarded.hosts())
    assert all(h["reachable"] and h["cpus"] >= 1 and h["memory_mb"] > 0 for h in doc["hosts"]), doc["hosts"]
    assert "lab-guest.qcow2" in {i["name"] for i in doc["images"]}, doc["images"]


def test_submitted_image_with_domain_xml_runs_and_a_second_run_changes_nothing(
        onboarded, tmp_path, customer_image, submitted):
    submitted.append("appliance1")
    first = submit(onboarded, tmp_path, "appliance1", customer_image, GOOD_XML % "<serial type='pty'/>")
    assert first.rc == 0, first
    report = first.report
    # Sizes come from the XML; the VM runs with an address of the lab network and answers.
    assert (report["vcpus"], report["memory_mb"]) == (1, 256), report
    assert report["state"] == "running" and ip_address(report["ip"]) in onboarded.network(), report
    assert subprocess.run(["ping", "-c", "2", "-W", "2", report["ip"]], capture_output=True,
                          check=False).returncode == 0
    # The image was converted into the pool with its record; the upload is gone.
    assert {"appliance1.image.qcow2", "appliance1.image.qcow2.kvmfleet.json"} <= pool_files(onboarded)
    assert uploads_left(onboarded) == []
    record = json.loads((pool(onboarded) / "appliance1.image.qcow2.kvmfleet.json").read_text())
    assert json.dumps(record).find(_sha256(customer_image)) >= 0, record
    again = submit(onboarded, tmp_path, "appliance1", customer_image, GOOD_XML % "<serial type='pty'/>")
    assert again.rc == 0 and set(again.changed().values()) == {0}, again
    assert again.report["host"] == report["host"] and again.report["ip"] == report["ip"]


@pytest.mark.parametrize("kind, words", [
    ("backing-file", "backing file"),
    ("hostdev-xml", "host device passthrough"),
])
def test_hostile_submissions_are_refused_and_leave_nothing(onboarded, tmp_path, customer_image, kind, words):
    before_pool, before_domains = pool_files(onboarded), domains(onboarded)
    xml = None
    image = customer_image
    if kind == "backing-file":
        # A qcow2 whose header names a host file as its backing file: run as is, the guest would
        # read the host's /etc/shadow.
        image = tmp_path / "evil.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", "-u",
                        str(image), "64M"], check=True)
    else:
        xml = GOOD_XML % HOSTDEV
    # Sizes given, so that only the image or the XML can be what is refused.
    run = submit(onboarded, tmp_path, "evil1", image, xml, "-e", "vcpus=1", "-e", "memory_mb=128")
    assert run.rc != 0, run
    assert words in run.output, run
    assert pool_files(onboarded) == before_pool
    assert domains(onboarded) == before_domains
    assert uploads_left(onboarded) == []


def _sha256(path):
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()
