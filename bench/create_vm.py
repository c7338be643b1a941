#!/usr/bin/env python3
"""Wall time of create_vm.yml against the same steps done by hand with plain virsh.

Both sides, on the running lab (lab/kvmlab.py up; nodes onboarded), start from the same
request and end when the VM holds a DHCP lease:

* kvmfleet: `ansible-playbook kvmfleet.iaas.create_vm -e name=... -e vcpus=1 -e memory_mb=256
  -e disk_gb=1` (facts from every node, placement, check, disk, domain, start, lease wait);
* virsh: over SSH to a fixed node, `qemu-img create` of the overlay, `virsh define` of an XML the
  bench writes, `virsh start`, then polling the DHCP server's lease file for the MAC. No facts,
  no placement, no validation, no rollback: the floor of what creating a VM costs here.

Runs alternate (kvmfleet, virsh, kvmfleet, ...) so both see the same machine load; each VM is
deleted after its run. Prints a markdown table and the ratio of medians.

    .venv/bin/python bench/create_vm.py [--runs 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from devpath import ensure_collection_path  # noqa: E402

ensure_collection_path()
import yaml  # noqa: E402

from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import build_domain_xml  # noqa: E402
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.spec import DiskSpec, DomainSpec, InterfaceSpec  # noqa: E402
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.macaddr import derive_mac  # noqa: E402

BIN = Path(sys.executable).parent
INVENTORY = Path(os.environ.get("KVMFLEET_LAB_INVENTORY", REPO / "inventory" / "lab.yml"))
LEASES = "/var/lib/misc/kvmfleet-dhcp.leases"


def ssh_cmd(inv, host):
    all_vars = inv["all"]["vars"]
    address = inv["all"]["children"]["hypervisors"]["hosts"][host]["ansible_host"]
    return ["ssh", "-i", all_vars["ansible_ssh_private_key_file"], "-o", "BatchMode=yes"] \
        + all_vars["ansible_ssh_common_args"].split() + ["root@" + address]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def kvmfleet_create(name):
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ["PATH"]), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    t0 = time.monotonic()
    run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "kvmfleet.iaas.create_vm", "-e", "name=" + name,
         "-e", "vcpus=1", "-e", "memory_mb=256", "-e", "disk_gb=1"], env=env, cwd=REPO)
    return time.monotonic() - t0


def kvmfleet_delete(name):
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ["PATH"]), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "kvmfleet.iaas.delete_vm", "-e", "name=" + name],
        env=env, cwd=REPO)


def virsh_create(inv, node, dhcp, name):
    guest = inv["all"]["vars"]["kvmfleet_vm_defaults"]
    image_dir = inv["all"]["vars"]["kvmfleet_image_dir"]
    disk = "%s/%s.qcow2" % (image_dir, name)
    mac = derive_mac(name)
    xml = build_domain_xml(DomainSpec(
        name=name, vcpus=1, vcpus_max=2, memory_mb=256, memory_max_mb=1024, domain_type="qemu",
        kernel=guest["kernel"], initrd=guest["initrd"], cmdline=guest["cmdline"],
        disks=(DiskSpec(path=disk),), interfaces=(InterfaceSpec(mac=mac, source="br0"),), serial="pty"))
    with tempfile.NamedTemporaryFile("w", suffix=".xml") as handle:
        handle.write(xml)
        handle.flush()
        t0 = time.monotonic()
        run(ssh_cmd(inv, node) + ["qemu-img", "create", "-q", "-f", "qcow2", "-b", guest["image"], "-F", "qcow2",
                                  disk, "1G"])
        run(ssh_cmd(inv, node) + ["virsh", "define", "/dev/stdin"], input=xml)
        run(ssh_cmd(inv, node) + ["virsh", "start", name])
        while mac not in run(ssh_cmd(inv, dhcp) + ["cat", LEASES]).stdout:
            if time.monotonic() - t0 > 180:
                raise SystemExit("no lease for %s after 180 s" % name)
            time.sleep(0.5)
        return time.monotonic() - t0


def virsh_delete(inv, node, name):
    image_dir = inv["all"]["vars"]["kvmfleet_image_dir"]
    subprocess.run(ssh_cmd(inv, node) + ["virsh", "destroy", name], capture_output=True, check=False)
    subprocess.run(ssh_cmd(inv, node) + ["virsh", "undefine", name], capture_output=True, check=False)
    subprocess.run(ssh_cmd(inv, node) + ["rm", "-f", "%s/%s.qcow2" % (image_dir, name)], capture_output=True,
                   check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    inv = yaml.safe_load(INVENTORY.read_text())
    nodes = sorted(inv["all"]["children"]["hypervisors"]["hosts"])
    dhcp = sorted(inv["all"]["children"]["dhcp_server"]["hosts"])[0]
    results = {"kvmfleet create_vm.yml": [], "plain virsh": []}
    for index in range(args.runs):
        name = "benchk%d" % index
        try:
            results["kvmfleet create_vm.yml"].append(kvmfleet_create(name))
        finally:
            kvmfleet_delete(name)
        name = "benchv%d" % index
        node = nodes[index % len(nodes)]
        try:
            results["plain virsh"].append(virsh_create(inv, node, dhcp, name))
        finally:
            virsh_delete(inv, node, name)
    print("| method | runs (s) | median (s) |\n|---|---|---|")
    for method, times in results.items():
        print("| %s | %s | %.1f |" % (method, ", ".join("%.1f" % t for t in times), statistics.median(times)))
    ratio = statistics.median(results["kvmfleet create_vm.yml"]) / statistics.median(results["plain virsh"])
    print("\nratio kvmfleet / virsh (medians): %.2f" % ratio)
    print(json.dumps({k: v for k, v in results.items()}))


if __name__ == "__main__":
    main()
