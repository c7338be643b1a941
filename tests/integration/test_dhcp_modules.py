"""dhcp_host and dhcp_info on the lab: dnsmasq serves a reservation without a restart.

The reservation is made on the DHCP server (node1) through Ansible; the lab guest then boots as
a transient libvirt domain on another node, with the reserved MAC on br0, and must print
``KVMFLEET-IP <reserved address>`` on its serial console. Changing the reservation reloads
dnsmasq (same main PID) and the guest booted again gets the new address; removing it reloads too.
"""
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import build_domain_xml
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.spec import DomainSpec, InterfaceSpec

MAC = "52:54:00:d4:c0:01"
DOMAIN = "kvmf-dhcp-test"
SERVICE = "kvmfleet-dhcp.service"
BOOT_TIMEOUT = 180
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def run_json(lab, host, module, args, check=False):
    """One module on one host through the ``ansible`` CLI (``--check --diff`` with check); its result.

    ``--tree`` saves each host's result as JSON, whatever the module (command output included).
    """
    with tempfile.TemporaryDirectory() as tree:
        cmd = [str(VENV_BIN / "ansible"), host, "-m", module, "-a", json.dumps(args), "--tree", tree]
        if check:
            cmd += ["--check", "--diff"]
        proc = subprocess.run(cmd, env=lab.ansible_env(), text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, cwd=REPO, timeout=600, check=False)
        saved = Path(tree) / host
        assert saved.exists(), proc.stdout
        result = json.loads(saved.read_text())
    result["_rc"] = proc.returncode
    return result


def ok(result):
    assert not result.get("failed") and not result.get("unreachable") and result["_rc"] == 0, result
    return result


def command(lab, host, argv):
    return ok(run_json(lab, host, "ansible.builtin.command", {"argv": argv}))


def main_pid(lab, server):
    out = command(lab, server, ["systemctl", "show", "-p", "MainPID", "--value", SERVICE])["stdout"].strip()
    assert out.isdigit() and int(out) > 0, out
    return int(out)


def inventory_vars(lab):
    import yaml
    inv = yaml.safe_load(lab.inventory.read_text())
    return inv["all"]["vars"], inv["all"]["children"]


def boot_guest_for_ip(lab, node, guest, log):
    """Boot the lab guest transiently on ``node`` with our MAC; the address it reports by DHCP."""
    xml = build_domain_xml(DomainSpec(
        name=DOMAIN, vcpus=1, memory_mb=256, domain_type="qemu",
        kernel=guest["kernel"], initrd=guest["initrd"],
        cmdline=guest["cmdline"] + " kvmfleet.hostname=dhcptest",
        interfaces=(InterfaceSpec(mac=MAC, source="br0"),),
        serial="file", serial_path=log, balloon=False))
    path = "/tmp/%s.xml" % DOMAIN
    ok(run_json(lab, node, "ansible.builtin.copy", {"content": xml, "dest": path, "mode": "0600"}))
    command(lab, node, ["rm", "-f", log])
    try:
        command(lab, node, ["virsh", "-c", "qemu:///system", "create", path])
        deadline = time.time() + BOOT_TIMEOUT
        console = ""
        while time.time() < deadline:
            console = run_json(lab, node, "ansible.builtin.command", {"argv": ["cat", log]}).get("stdout", "")
            found = re.search(r"KVMFLEET-IP (\d+\.\d+\.\d+\.\d+)", console)
            if found:
                return found.group(1)
            time.sleep(3)
        pytest.fail("no KVMFLEET-IP on the console of %s within %ds:\n%s" % (node, BOOT_TIMEOUT, console[-3000:]))
    finally:
        run_json(lab, node, "ansible.builtin.command", {"argv": ["virsh", "-c", "qemu:///system", "destroy", DOMAIN]})
        run_json(lab, node, "ansible.builtin.command", {"argv": ["rm", "-f", path, log]})


def test_reservation_is_served_without_restart_and_changes_reload(onboarded):
    lab = onboarded
    variables, groups = inventory_vars(lab)
    server = sorted(groups["dhcp_server"]["hosts"])[0]
    nodes = lab.hosts()
    guest_node = sorted(n for n in nodes if n != server)[0] if len(nodes) > 1 else server
    network = variables["kvmfleet_vm_network"]
    base = network.split("/")[0].rsplit(".", 1)[0]
    pool = "%s-%s" % (variables["dhcp_range_start"], variables["dhcp_range_end"])
    reserved = [variables["kvmfleet_vm_gateway"]] + [info["ansible_host"] for info in nodes.values()]
    common = dict(mac=MAC, name="dhcptest", network=network, dhcp_pool=pool, reserved=reserved)
    log = "/var/log/libvirt/qemu/%s.console.log" % DOMAIN

    pid = main_pid(lab, server)
    try:
        # Check mode predicts the address and writes nothing.
        predicted = ok(run_json(lab, server, "kvmfleet.iaas.dhcp_host",
                                dict(common, ip_range="%s.60-%s.69" % (base, base)), check=True))
        assert predicted["changed"] is True and predicted["action"] == "created"
        assert predicted["reservation"]["ip"] == "%s.60" % base
        assert ok(run_json(lab, server, "kvmfleet.iaas.dhcp_info", {"mac": MAC}))["reservations"] == []

        made = ok(run_json(lab, server, "kvmfleet.iaas.dhcp_host",
                           dict(common, ip_range="%s.60-%s.69" % (base, base))))
        assert made["changed"] is True and made["reloaded"] is False, made
        reserved_ip = made["reservation"]["ip"]
        assert reserved_ip == predicted["reservation"]["ip"]
        again = ok(run_json(lab, server, "kvmfleet.iaas.dhcp_host",
                            dict(common, ip_range="%s.60-%s.69" % (base, base))))
        assert again["changed"] is False and again["reservation"]["ip"] == reserved_ip
        assert main_pid(lab, server) == pid

        # dnsmasq picked up the new file by itself: the guest gets exactly the reserved address.
        assert boot_guest_for_ip(lab, guest_node, variables["kvmfleet_lab_guest"], log) == reserved_ip
        assert main_pid(lab, server) == pid
        info = ok(run_json(lab, server, "kvmfleet.iaas.dhcp_info", {"mac": MAC}))
        assert [r["ip"] for r in info["reservations"]] == [reserved_ip]
        assert [(lease["ip"], lease["active"]) for lease in info["leases"]] == [(reserved_ip, True)]

        # An explicit address held by our MAC's reservation cannot go to another MAC.
        clash = run_json(lab, server, "kvmfleet.iaas.dhcp_host",
                         dict(common, mac="52:54:00:d4:c0:02", ip=reserved_ip))
        assert clash["_rc"] != 0 and MAC in clash["msg"] and clash["holders"][0]["mac"] == MAC, clash

        # Changing the reservation rewrites its file and reloads (SIGHUP), never restarts.
        new_ip = "%s.61" % base
        moved = ok(run_json(lab, server, "kvmfleet.iaas.dhcp_host", dict(common, ip=new_ip)))
        assert moved["action"] == "updated" and moved["reloaded"] is True, moved
        assert main_pid(lab, server) == pid
        assert boot_guest_for_ip(lab, guest_node, variables["kvmfleet_lab_guest"], log) == new_ip
    finally:
        removed = ok(run_json(lab, server, "kvmfleet.iaas.dhcp_host", {"mac": MAC, "state": "absent"}))
    assert removed["changed"] is True and removed["reloaded"] is True, removed
    assert main_pid(lab, server) == pid
    active = run_json(lab, server, "ansible.builtin.command", {"argv": ["systemctl", "is-active", SERVICE]})
    assert active["stdout"].strip() == "active"
    assert ok(run_json(lab, server, "kvmfleet.iaas.dhcp_info", {"mac": MAC}))["reservations"] == []
