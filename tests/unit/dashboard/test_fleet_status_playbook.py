"""playbooks/fleet_status.yml end to end on the controller only: one hypervisor on the local
connection reading libvirt's test driver (test:///default), one that cannot be reached
(SSH to 127.0.0.1 port 1). Checks the documented JSON shape, its types (numbers and nulls, not
strings, on every ansible-core of tests/cores.txt) and changed=0."""
import json
import os
import re
import subprocess
import sys

import pytest

from dashboard.fleet import ansible_env
from dashboard.devpath_import import REPO

PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
pytest.importorskip("libvirt")
pytestmark = pytest.mark.skipif(not os.access(PLAYBOOK, os.X_OK), reason="no ansible-playbook beside python")

HOST_KEYS = {"name", "reachable", "error", "hostname", "maintenance", "maintenance_mark", "disabled", "cpus",
             "memory_mb", "memory_free_mb", "storage", "utilization", "allocation", "capacity"}
VM_KEYS = {"name", "host", "state", "managed", "group", "tenant", "vcpus", "vcpus_max", "memory_mb", "memory_max_mb",
           "balloon_mb", "cpu_percent", "disk_gb", "addresses", "macs"}


def run_fleet_status(tmp_path, hypervisors, group_vars=None, extra=(), output=None):
    inventory = tmp_path / "inv.yml"
    inventory.write_text(json.dumps({"all": {"vars": group_vars or {},
                                             "children": {"hypervisors": {"hosts": hypervisors}}}}))
    report = tmp_path / "report.json"
    proc = subprocess.run([PLAYBOOK, "kvmfleet.iaas.fleet_status", "-i", str(inventory),
                           "-e", "report_file=%s" % report, "-e", "sample_seconds=0"] + list(extra),
                          env=ansible_env(), cwd=str(REPO), text=True, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.findall(r"changed=(\d+)", proc.stdout) and set(re.findall(r"changed=(\d+)", proc.stdout)) == {"0"}
    if output is not None:
        output.append(proc.stdout + proc.stderr)
    return json.loads(report.read_text())


@pytest.fixture(scope="module")
def two_host_report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("fleet_status")
    images = tmp_path / "images"
    images.mkdir()
    (images / "base.qcow2").write_bytes(b"x" * 2048)
    doc = run_fleet_status(tmp_path, {
        "hvlocal": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    "kvmfleet_libvirt_uri": "test:///default", "kvmfleet_image_dir": str(images)},
        "hvdead": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh"}})
    return doc, images


def test_fleet_status_report(two_host_report):
    doc, images = two_host_report
    assert set(doc) == {"generated", "image_dir", "hosts", "vms", "images", "unreachable"}
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert set(hosts) == {"hvlocal", "hvdead"} and all(set(h) == HOST_KEYS for h in doc["hosts"])
    assert hosts["hvlocal"]["reachable"] is True and hosts["hvlocal"]["cpus"] > 0
    assert hosts["hvlocal"]["capacity"]["vcpus"] == hosts["hvlocal"]["cpus"] * 4.0
    assert hosts["hvdead"]["reachable"] is False and "127.0.0.1" in hosts["hvdead"]["error"]
    assert doc["unreachable"] == ["hvdead"]
    assert doc["vms"] and all(set(vm) == VM_KEYS for vm in doc["vms"])
    assert {vm["host"] for vm in doc["vms"]} == {"hvlocal"}
    assert doc["images"] == [{"name": "base.qcow2", "path": str(images / "base.qcow2"), "size_mb": 0.0}]


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def test_fleet_status_report_types(two_host_report):
    """The dashboard computes with these values: a count is a number and an absent value is null,
    never "16" or "" (what a YAML mapping of templated leaves gave before ansible-core 2.19)."""
    doc = two_host_report[0]
    hosts = {h["name"]: h for h in doc["hosts"]}
    live, dead = hosts["hvlocal"], hosts["hvdead"]
    for host in (live, dead):
        assert isinstance(host["reachable"], bool) and isinstance(host["maintenance"], bool)
        assert isinstance(host["disabled"], bool)
    assert live["error"] is None and live["maintenance_mark"] is None
    assert all(is_number(live[key]) for key in ("cpus", "memory_mb", "memory_free_mb"))
    assert isinstance(live["hostname"], str) and isinstance(live["storage"], dict)
    assert is_number(live["utilization"]["memory_percent"])
    assert all(is_number(value) for value in live["allocation"].values())
    assert is_number(live["capacity"]["vcpus"]) and is_number(live["capacity"]["memory_mb"])
    assert live["capacity"]["disk_gb"] is None or is_number(live["capacity"]["disk_gb"])
    numeric = ("cpus", "memory_mb", "memory_free_mb", "storage", "hostname", "maintenance_mark")
    assert all(dead[key] is None for key in numeric)
    for section in ("utilization", "allocation", "capacity"):
        assert all(value is None for value in dead[section].values()), section
    for vm in doc["vms"]:
        assert all(is_number(vm[key]) for key in ("vcpus", "vcpus_max", "memory_mb", "memory_max_mb", "disk_gb"))


def test_fleet_status_report_without_hypervisors(tmp_path):
    doc = run_fleet_status(tmp_path, {})
    assert doc["image_dir"] is None and doc["hosts"] == doc["vms"] == doc["images"] == doc["unreachable"] == []


# ---------------------------------------------------------------- -e tenant=NAME (docs/tenancy.md)

TENANTS = {"kvmfleet_tenants": {"acme": {"quota": {"vcpus": 8, "vms": 3}}, "initech": {}},
           "kvmfleet_tenant_default_quota": {"memory_mb": 4096}, "kvmfleet_public_images": ["debian.qcow2"]}


@pytest.fixture(scope="module")
def tenant_fleet(tmp_path_factory):
    """A test driver node of acme's a-web1 and a-db1, initech's i-web1 and the operator's ops1 (disks
    in the image dir), beside an unreachable host; the operator's report and acme's, with its output."""
    tmp_path = tmp_path_factory.mktemp("fleet_status_tenant")
    images = tmp_path / "images"
    images.mkdir()
    ns = "https://kvmfleet.dev/iaas/1"

    def domain(name, tenant, vcpus):
        owner = "<kvmfleet:tenant>%s</kvmfleet:tenant>" % tenant if tenant else ""
        (images / (name + ".qcow2")).write_bytes(b"")
        return ("<domain type='test'><name>%s</name><metadata><kvmfleet:instance xmlns:kvmfleet='%s'>"
                "<kvmfleet:managed-by>kvmfleet.iaas</kvmfleet:managed-by>%s</kvmfleet:instance></metadata>"
                "<memory unit='MiB'>512</memory><vcpu>%d</vcpu><os><type>hvm</type></os><devices>"
                "<disk type='file' device='disk'><source file='%s'/><target dev='vda' bus='virtio'/></disk>"
                "</devices></domain>" % (name, ns, owner, vcpus, images / (name + ".qcow2")))
    for tenant, image, size in (("acme", "shop.image.qcow2", 3 << 29), ("initech", "secret.image.qcow2", 1)):
        (images / "tenants" / tenant).mkdir(parents=True)
        with open(str(images / "tenants" / tenant / image), "wb") as handle:
            handle.truncate(size)     # sparse: the listing reads the file's size
    (images / "tenants" / "acme" / "shop.image.qcow2.kvmfleet.json").write_text("{}")
    node = tmp_path / "node.xml"
    node.write_text("<node>%s</node>" % "".join(
        domain(*args) for args in (("a-web1", "acme", 2), ("a-db1", "acme", 1), ("i-web1", "initech", 4), ("ops1", None, 1))))
    hypervisors = {
        "hvlocal": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                    "kvmfleet_libvirt_uri": "test://%s" % node, "kvmfleet_image_dir": str(images)},
        "hvdead": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh"}}
    (tmp_path / "operator").mkdir()
    operator = run_fleet_status(tmp_path / "operator", hypervisors, TENANTS)
    output = []
    acme = run_fleet_status(tmp_path, hypervisors, TENANTS, ["-e", "tenant=acme"], output)
    return operator, acme, output[0], images


def test_the_operator_sees_every_vm_with_its_owner(tenant_fleet):
    operator = tenant_fleet[0]
    owners = {vm["name"]: vm["tenant"] for vm in operator["vms"]}
    assert owners == {"a-web1": "acme", "a-db1": "acme", "i-web1": "initech", "ops1": None}
    assert {host["name"] for host in operator["hosts"]} == {"hvlocal", "hvdead"}


def test_a_tenant_sees_its_vms_usage_and_quota_and_nothing_of_the_hosts(tenant_fleet):
    _operator, acme, _output, images = tenant_fleet
    assert set(acme) == {"generated", "tenant", "complete", "vms", "images", "public_images", "usage", "quota"}
    assert acme["tenant"] == "acme" and acme["complete"] is False          # hvdead could not be read
    assert [vm["name"] for vm in acme["vms"]] == ["a-db1", "a-web1"]
    assert all(vm["tenant"] == "acme" and "host" not in vm for vm in acme["vms"])
    # disk_gb: the test driver makes up each disk's capacity
    assert acme["usage"] == {"vcpus": 3, "memory_mb": 1024, "disk_gb": sum(vm["disk_gb"] for vm in acme["vms"]), "vms": 2,
                             "images": 1, "image_gb": 2}      # 1.5 GiB counts as 2
    assert acme["images"] == [{"name": "shop.image.qcow2", "size_gb": 2}]   # its own only, no record, no path
    assert acme["public_images"] == ["debian.qcow2"]
    assert acme["quota"] == {"vcpus": 8, "memory_mb": 4096, "disk_gb": None, "vms": 3, "images": None, "image_gb": None}
    text = json.dumps(acme)
    for secret in ("hvlocal", "hvdead", "127.0.0.1", str(images), "i-web1", "ops1", "initech", "managed", "secret"):
        assert secret not in text, secret


def test_a_tenants_job_output_names_no_other_vm_and_no_host_internals(tenant_fleet):
    """What AWX shows the tenant as the job's output: the inventory names of the hosts are in
    Ansible's own lines (ok: [hvlocal], the recap), nothing else of them, and no other VM."""
    _operator, _acme, output, images = tenant_fleet
    for secret in ("i-web1", "ops1", "initech", "127.0.0.1", "port 1", str(images), "test://"):
        assert secret not in output, secret
    assert "2 VM(s) of tenant acme (some hypervisors could not be read" in output
