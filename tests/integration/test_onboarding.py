"""Onboarding bare lab nodes with the roles (issue: foundation)."""
import json

import pytest

pytestmark = pytest.mark.lab


def test_first_onboarding_changes_every_node(onboarded):
    run = onboarded.first_onboarding
    nodes = set(onboarded.hosts())
    # localhost runs the playbook's input check first (kvmfleet.iaas.decide), changing nothing
    assert set(run.recap) == nodes | {"localhost"} and run.changed()["localhost"] == 0, run
    assert all(counts["failed"] == 0 and counts["unreachable"] == 0 for counts in run.recap.values()), run
    # Bare nodes: every one of them had packages, libvirt and the bridge to set up.
    assert all(run.changed()[node] > 0 for node in nodes), run


def test_second_onboarding_changes_nothing(onboarded):
    run = onboarded.playbook("setup_node", check=True)
    assert run.changed() == dict({node: 0 for node in onboarded.hosts()}, localhost=0), run


def test_check_mode_predicts_no_change_on_onboarded_nodes(onboarded):
    run = onboarded.playbook("setup_node", "--check", check=True)
    assert run.changed() == dict({node: 0 for node in onboarded.hosts()}, localhost=0), run


def test_every_node_answers_libvirt_over_ssh(onboarded):
    hosts = onboarded.hosts()
    for node in hosts:
        proc = onboarded.ansible(node, "ansible.builtin.command", "virsh --quiet -c qemu:///system uri")
        assert "qemu:///system" in proc.stdout
    # Peer to peer, as migration will: qemu+ssh with the trust and pinned keys setup made.
    for node in hosts:
        for peer, info in hosts.items():
            if peer == node:
                continue
            uri = "qemu+ssh://root@%s/system" % info["ansible_host"]
            proc = onboarded.ansible(node, "ansible.builtin.command", "virsh --quiet -c %s hostname" % uri)
            assert peer in proc.stdout.split(), proc.stdout


def test_nodes_have_distinct_host_uuids_and_an_active_pool(onboarded):
    uuids = {}
    for node in onboarded.hosts():
        proc = onboarded.ansible(node, "ansible.builtin.command", "virsh --quiet capabilities")
        uuid = proc.stdout.split("<uuid>")[1].split("</uuid>")[0]
        uuids[node] = uuid
        pools = onboarded.ansible(node, "ansible.builtin.command", "virsh --quiet pool-list --name")
        assert "kvmfleet" in pools.stdout.split()
    assert len(set(uuids.values())) == len(uuids), uuids


def test_bridge_carries_the_node_address(onboarded):
    for node, info in onboarded.hosts().items():
        proc = onboarded.ansible(node, "ansible.builtin.command", "ip -j addr show dev br0")
        data = json.loads(proc.stdout.split("\n", 1)[1])
        addrs = [a["local"] for a in data[0]["addr_info"] if a["family"] == "inet"]
        assert addrs == [info["ansible_host"]]
        master = onboarded.ansible(node, "ansible.builtin.command", "cat /sys/class/net/host0/master/uevent")
        assert "INTERFACE=br0" in master.stdout


def test_dhcp_service_runs_on_the_dhcp_server_only(onboarded):
    proc = onboarded.ansible("hypervisors", "ansible.builtin.command",
                             "systemctl is-active kvmfleet-dhcp.service", check=False)
    active = {line.split()[0] for line in proc.stdout.splitlines() if "rc=0" in line}
    assert active == {"node1"}, proc.stdout
