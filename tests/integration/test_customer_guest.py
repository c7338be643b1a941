"""A customer's VM on the lab (issue 12): the Debian cloud guest made by create_vm with the user's
SSH key and a fixed address, entered over SSH with its host key pinned from its console.

One VM, booted once for the module (cloud-init's first boot under TCG takes one to two minutes),
deleted at the end, also when a test fails. The tests run in file order and build on each other:
log in (issue test 1), the address the guest configured (test 4), scaling seen inside the guest
(test 2), and last delete_vm removing the seed with the disk (test 4).
"""
import importlib.util
import json
import re
import subprocess
import time
from ipaddress import ip_address, ip_interface
from pathlib import Path

import pytest
import yaml

from test_scaling import scale, sizes
from test_vm_lifecycle import domains, image_files, reservations

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]

NAME = "cust1"
# The lab's fixed-address range is .50-.99; the other lab tests use .50-.70.
RANGE = (80, 82)
# What cloud-init's first boot may take under TCG on the shared 2 cores, to the host keys.
BOOT_TIMEOUT = 420

_spec = importlib.util.spec_from_file_location("kvmfleet_guest_debian_build", REPO / "lab" / "guest_debian" / "build.py")
guest_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(guest_build)


def console_log(lab, node, name):
    """The VM's serial console as the vm module writes it (console_dir on the node), read
    through the node's root file system on the lab host."""
    path = lab.state / "nodes" / node / "root" / "var" / "log" / "libvirt" / "qemu" / ("%s-console.log" % name)
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def pinned_host_keys(lab, node, name, deadline):
    """The host keys the guest printed on its console, each checked against the fingerprint it
    printed too; waits for cloud-init's final stage to print them."""
    while time.time() < deadline:
        text = console_log(lab, node, name)
        keys = guest_build.parse_console_host_keys(text)
        if keys:
            fingerprints = guest_build.parse_console_fingerprints(text)
            for keytype, blob in keys:
                label = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA"}.get(keytype, "ECDSA")
                assert fingerprints.get(label) == guest_build.key_fingerprint(blob), (keytype, fingerprints)
            return keys
        time.sleep(2)
    raise AssertionError("no SSH host keys on %s's console in time; its tail:\n%s"
                         % (name, console_log(lab, node, name)[-3000:]))


class Guest:
    def __init__(self, lab, tmp, report, key, known_hosts, user):
        self.lab, self.tmp, self.report = lab, tmp, report
        self.key, self.known_hosts, self.user = key, known_hosts, user
        self.name, self.host, self.ip = report["name"], report["host"], report["ip"]
        self.times = {}

    def ssh_argv(self, key=None):
        return ["ssh", "-F", "/dev/null", "-i", str(key or self.key), "-o", "IdentitiesOnly=yes",
                "-o", "UserKnownHostsFile=%s" % self.known_hosts, "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                "-o", "LogLevel=ERROR", "%s@%s" % (self.user, self.ip)]

    def ssh(self, command, key=None, check=True, timeout=60):
        proc = subprocess.run(self.ssh_argv(key) + [command], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check:
            assert proc.returncode == 0, (command, proc.returncode, proc.stderr)
        return proc

    def until(self, command, ok, timeout=90):
        """The output of ``command`` in the guest once ``ok(output)`` holds."""
        deadline = time.time() + timeout
        out = None
        while time.time() < deadline:
            proc = self.ssh(command, check=False)
            out = proc.stdout
            if proc.returncode == 0 and ok(out):
                return out
            time.sleep(2)
        raise AssertionError("%r in %s never gave what was expected; last output %r" % (command, self.name, out))


def meminfo_kb(text):
    return int(re.search(r"^MemTotal:\s+(\d+) kB", text, re.M).group(1))


@pytest.fixture(scope="module")
def customer_lab(lab):
    """The lab onboarded without Ganglia (none of it is needed; the machine is shared)."""
    run = lab.playbook("setup_node", "-e", '{"setup_ganglia": false}')
    assert run.rc == 0, run
    return lab


@pytest.fixture(scope="module")
def guest(customer_lab, tmp_path_factory):
    lab = customer_lab
    tmp = tmp_path_factory.mktemp("customer")
    debian = yaml.safe_load(lab.inventory.read_text())["all"]["vars"]["kvmfleet_lab_debian"]
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "customer@test", "-f", str(key)], check=True)
    net = lab.network()
    first, last = (net.network_address + offset for offset in RANGE)
    node = list(lab.hosts())[0]
    report_file = tmp / "create.json"
    request = dict(name=NAME, host=node, vcpus=1, vcpus_max=2, memory_mb=debian["memory_mb"], memory_max_mb=1024,
                   disk_gb=debian["disk_gb"], image=debian["image"], kernel=debian["kernel"], initrd=debian["initrd"],
                   cmdline=debian["cmdline"], ip_range="%s-%s" % (first, last),
                   ssh_authorized_keys=[(tmp / "id_ed25519.pub").read_text().strip()],
                   kvmfleet_cpu_threshold="off", address_timeout=BOOT_TIMEOUT, report_file=str(report_file))
    t0 = time.time()
    try:
        run = lab.playbook("create_vm", "-e", json.dumps(request))
        assert run.rc == 0, run
        report = json.loads(report_file.read_text())
        created = time.time() - t0
        keys = pinned_host_keys(lab, report["host"], NAME, t0 + BOOT_TIMEOUT)
        host_keys_at = time.time() - t0
        known_hosts = tmp / "known_hosts"
        known_hosts.write_text(guest_build.known_hosts_lines(report["ip"], 22, keys))
        vm = Guest(lab, tmp, report, key, known_hosts, debian["user"])
        vm.first_run = run
        vm.until("true", lambda out: True, timeout=60)
        vm.times = dict(create_vm_s=round(created, 1), host_keys_s=round(host_keys_at, 1),
                        ssh_s=round(time.time() - t0, 1))
        print("customer guest %s on %s at %s: %s" % (NAME, report["host"], report["ip"], vm.times))
        yield vm
    finally:
        lab.playbook("delete_vm", "-e", "name=%s" % NAME, "-e", "ignore_unreachable=true")


def test_ssh_with_the_users_key_reaches_the_vm_at_the_reported_address_as_its_hostname(guest):
    net = guest.lab.network()
    first, last = (net.network_address + offset for offset in RANGE)
    assert guest.report["state"] == "running" and guest.report["changed"] is True, guest.report
    assert first <= ip_address(guest.ip) <= last, guest.report
    assert guest.ssh("hostname").stdout.strip() == NAME
    assert guest.ssh("cloud-init status --wait", timeout=300).stdout.split() == ["status:", "done"]
    # The pinned host keys are the only ones trusted: an empty known_hosts refuses the guest.
    empty = guest.tmp / "known_hosts.empty"
    empty.write_text("")
    proc = subprocess.run([a if not a.startswith("UserKnownHostsFile=") else "UserKnownHostsFile=%s" % empty
                           for a in guest.ssh_argv()] + ["true"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 255 and "Host key verification failed" in proc.stderr, proc.stderr
    # Only the user's key enters: another fresh key is refused.
    other = guest.tmp / "other_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    proc = guest.ssh("true", key=other, check=False)
    assert proc.returncode == 255 and "Permission denied" in proc.stderr, proc.stderr


def test_the_guest_configured_the_reserved_address_and_the_agent_reports_it(guest):
    net = guest.lab.network()
    shown = guest.ssh("ip -4 -o addr show dev eth0").stdout
    addresses = [ip_interface(a) for a in re.findall(r"\binet (\S+)", shown)]
    assert addresses == [ip_interface("%s/%d" % (guest.ip, net.prefixlen))], shown
    assert "dynamic" not in shown, shown          # configured from the seed, not leased
    facts = guest.lab.ansible(guest.host, "kvmfleet.iaas.vm_info", "name=%s" % NAME).stdout
    vm = yaml.safe_load(facts.split("=>", 1)[1])["vms"][0]      # ansible.cfg: YAML results
    assert [a for a in vm["addresses"] if ":" not in a] == [guest.ip], vm
    assert vm["guest"]["address_source"] == "agent", vm
    assert vm["guest"]["hostname"] == NAME, vm


def test_scale_up_by_a_vcpu_and_memory_the_guest_sees_both_and_down_again(guest):
    assert guest.ssh("nproc").stdout.strip() == "1"
    before = meminfo_kb(guest.ssh("cat /proc/meminfo").stdout)
    t0 = time.time()
    up = scale(guest.lab, guest.tmp, NAME, vcpus=2, memory_mb=768)
    assert up.rc == 0, up
    assert up.report["scale"]["after"]["vcpus"] == 2 and up.report["scale"]["after"]["memory_mb"] == 768, up.report
    guest.until("nproc", lambda out: out.strip() == "2")
    grown = meminfo_kb(guest.until("cat /proc/meminfo", lambda out: meminfo_kb(out) >= before + 200 * 1024))
    print("scale up in %.0f s: nproc 1 -> 2, MemTotal %d -> %d kB" % (time.time() - t0, before, grown))
    down = scale(guest.lab, guest.tmp, NAME, "down.json", memory_mb=512)
    assert down.rc == 0, down
    shrunk = meminfo_kb(guest.until("cat /proc/meminfo", lambda out: meminfo_kb(out) <= grown - 200 * 1024))
    cpu = scale(guest.lab, guest.tmp, NAME, "cpu-down.json", vcpus=1)
    live, config, _balloon, _mem = sizes(guest.lab, guest.host, NAME)
    if cpu.rc == 0:
        assert (live, config) == (1, 1)
        guest.until("nproc", lambda out: out.strip() == "1")
    else:
        # as with the busybox guest: a CPU the guest does not give back is said clearly
        assert "did not release the CPU" in cpu.output, cpu
        assert live == config, (live, config)
    print("scale down: MemTotal %d -> %d kB; vCPU unplug %s (libvirt live=%d config=%d)"
          % (grown, shrunk, "done" if cpu.rc == 0 else "refused", live, config))


def test_delete_vm_removes_the_seed_with_the_disk_and_the_reservation(guest):
    lab = guest.lab
    assert {"%s.qcow2" % NAME, "%s-seed.iso" % NAME} <= image_files(lab)
    reserved = set(reservations(lab))
    report_file = guest.tmp / "delete.json"
    run = lab.playbook("delete_vm", "-e", "name=%s" % NAME, "-e", "report_file=%s" % report_file, check=True)
    report = json.loads(report_file.read_text())
    assert report["deleted_from"] == [guest.host] and report["reservations_removed"] == [guest.ip], report
    assert not {"%s.qcow2" % NAME, "%s-seed.iso" % NAME} & image_files(lab), image_files(lab)
    assert all(NAME not in domains(lab, node) for node in lab.hosts())
    assert len(set(reservations(lab))) == len(reserved) - 1
    assert run.rc == 0
