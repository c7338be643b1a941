"""kvmfleet.iaas.dhcp_info on temporary hosts directories and lease files."""
import os
import time

import pytest

from ansible_collections.kvmfleet.iaas.plugins.modules import dhcp_info

MAC = "52:54:00:aa:aa:01"


@pytest.fixture
def paths(tmp_path):
    hosts = tmp_path / "hosts.d"
    hosts.mkdir()
    (hosts / "52-54-00-aa-aa-01.conf").write_text("52:54:00:aa:aa:01,10.9.0.50,web1\n")
    (hosts / "52-54-00-bb-bb-02.conf").write_text("52:54:00:BB:BB:02,10.9.0.51\n")
    (hosts / ".52-54-00-cc-cc-03.conf.x.tmp").write_text("52:54:00:cc:cc:03,10.9.0.52\n")
    now = int(time.time())
    leases = tmp_path / "leases"
    leases.write_text("%d 52:54:00:aa:aa:01 10.9.0.50 web1 01:52:54:00:aa:aa:01\n"
                      "%d 52:54:00:dd:dd:04 10.9.0.120 * *\n"
                      "0 52:54:00:ee:ee:05 10.9.0.121 forever *\n"
                      "duid 00:01:00:01\n1000 1234 fd00::5 * *\n" % (now + 3600, now - 60))
    return dict(hosts_dir=str(hosts), leases_file=str(leases), now=now)


def run(run_module, paths, **kw):
    args = dict(hosts_dir=paths["hosts_dir"], leases_file=paths["leases_file"])
    args.update(kw)
    return run_module(dhcp_info, args)


def test_everything(run_module, paths):
    result = run(run_module, paths)
    assert result["changed"] is False
    d = paths["hosts_dir"]
    assert result["reservations"] == [
        dict(mac=MAC, ip="10.9.0.50", name="web1", file=os.path.join(d, "52-54-00-aa-aa-01.conf")),
        dict(mac="52:54:00:bb:bb:02", ip="10.9.0.51", name=None, file=os.path.join(d, "52-54-00-bb-bb-02.conf")),
    ]
    assert result["leases"] == [
        dict(mac=MAC, ip="10.9.0.50", hostname="web1", expires=paths["now"] + 3600, active=True),
        dict(mac="52:54:00:dd:dd:04", ip="10.9.0.120", hostname=None, expires=paths["now"] - 60, active=False),
        dict(mac="52:54:00:ee:ee:05", ip="10.9.0.121", hostname="forever", expires=0, active=True),
    ]


def test_filter_by_mac_in_any_spelling(run_module, paths):
    result = run(run_module, paths, mac="52-54-00-AA-AA-01")
    assert [r["ip"] for r in result["reservations"]] == ["10.9.0.50"]
    assert [lease["ip"] for lease in result["leases"]] == ["10.9.0.50"]
    none = run(run_module, paths, mac="52:54:00:00:00:99")
    assert none["reservations"] == [] and none["leases"] == []


def test_bad_mac_fails(run_module, paths):
    result = run(run_module, paths, mac="nope")
    assert result["failed"] is True and "MAC address" in result["msg"] and result["field"] == "mac"


def test_missing_directory_and_lease_file_are_empty(run_module, tmp_path):
    result = run_module(dhcp_info, dict(hosts_dir=str(tmp_path / "a"), leases_file=str(tmp_path / "b")))
    assert result["reservations"] == [] and result["leases"] == [] and result["changed"] is False


def test_check_mode_reads_the_same_and_writes_nothing(run_module, paths):
    before = sorted(os.listdir(paths["hosts_dir"]))
    checked = run(run_module, paths, _ansible_check_mode=True)
    assert checked["reservations"] == run(run_module, paths)["reservations"]
    assert sorted(os.listdir(paths["hosts_dir"])) == before   # not even a lock file


def test_missing_netaddr_is_reported(run_module, paths, monkeypatch):
    monkeypatch.setattr(dhcp_info.dhcp_store.ipam, "HAS_NETADDR", False)
    result = run(run_module, paths)
    assert result["failed"] is True and "netaddr" in result["msg"]
