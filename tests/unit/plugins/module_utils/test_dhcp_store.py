"""dhcp_store: the hosts directory layout, reading, locking, atomic writes, plans, concurrency."""
import multiprocessing
import os
import stat
import time

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.network import dhcp_store
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.dhcp_store import HostsDir
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, KvmfleetError, ValidationError

NET = "10.9.0.0/24"
MAC_A = "52:54:00:aa:aa:01"
MAC_B = "52:54:00:bb:bb:02"


@pytest.fixture
def hosts(tmp_path):
    d = tmp_path / "hosts.d"
    d.mkdir()
    return HostsDir(d)


def put(hosts, name, text):
    path = os.path.join(hosts.path, name)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def test_filename_is_the_normalized_mac():
    assert dhcp_store.reservation_filename("52:54:00:AA:BB:CC") == "52-54-00-aa-bb-cc.conf"
    assert dhcp_store.reservation_filename("525400aabbcc") == "52-54-00-aa-bb-cc.conf"
    with pytest.raises(ValidationError):
        dhcp_store.reservation_filename("not-a-mac")


@pytest.mark.parametrize("name,read", [("52-54-00-aa-bb-cc.conf", True), ("hand-written", True),
                                       (".kvmfleet-dhcp.lock", False), (".x.conf.abc.tmp", False),
                                       ("x.conf~", False), ("#x.conf#", False), ("", False)])
def test_files_dnsmasq_reads(name, read):
    assert dhcp_store.is_hosts_file(name) is read


def test_reservations_from_every_file_dnsmasq_reads(hosts):
    own = put(hosts, "52-54-00-aa-aa-01.conf", "52:54:00:aa:aa:01,10.9.0.50,web1\n")
    hand = put(hosts, "legacy", "# by hand\n52:54:00:cc:cc:03,52:54:00:cc:cc:04,10.9.0.60\n"
                                "52:54:00:dd:dd:05,ignore\n52:54:00:ee:ee:06,oldname\n")
    put(hosts, "legacy~", "52:54:00:ff:ff:07,10.9.0.70\n")
    put(hosts, ".hidden", "52:54:00:ff:ff:08,10.9.0.71\n")
    os.mkdir(os.path.join(hosts.path, "subdir"))
    got = [r.to_dict() for r in hosts.reservations()]
    assert got == [
        dict(mac=MAC_A, ip="10.9.0.50", name="web1", file=own),
        dict(mac="52:54:00:cc:cc:03", ip="10.9.0.60", name=None, file=hand),
        dict(mac="52:54:00:cc:cc:04", ip="10.9.0.60", name=None, file=hand),
    ]


def test_missing_directory_has_no_reservations(tmp_path):
    assert HostsDir(tmp_path / "nope").reservations() == []


def test_atomic_write_leaves_only_the_final_file(hosts):
    path = hosts.path_for(MAC_A)
    hosts.write(path, "one\n")
    hosts.write(path, "two\n")
    assert os.listdir(hosts.path) == ["52-54-00-aa-aa-01.conf"]
    assert open(path).read() == "two\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_failed_write_removes_its_temporary_file(hosts, monkeypatch):
    def boom(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(dhcp_store.os, "rename", boom)
    with pytest.raises(OSError):
        hosts.write(hosts.path_for(MAC_A), "x\n")
    assert os.listdir(hosts.path) == []


def test_shared_lock_creates_nothing_exclusive_lock_makes_a_hidden_file(hosts):
    with hosts.lock(exclusive=False):
        pass
    assert os.listdir(hosts.path) == []
    with hosts.lock():
        pass
    assert os.listdir(hosts.path) == [".kvmfleet-dhcp.lock"]
    with hosts.lock(exclusive=False):  # now it exists: a real shared lock
        pass


def test_exclusive_lock_needs_the_directory(tmp_path):
    with pytest.raises(KvmfleetError, match="does not exist"):
        with HostsDir(tmp_path / "nope").lock():
            pass


# --------------------------------------------------------------------------- plans

def test_allocates_lowest_free_and_writes_the_line(hosts):
    plan = dhcp_store.plan_present(hosts, MAC_A, NET, name="web1", ip_range="10.9.0.50-10.9.0.59",
                                   reserved=["10.9.0.50"])
    assert plan.reservation.to_dict() == dict(mac=MAC_A, ip="10.9.0.51", name="web1", file=hosts.path_for(MAC_A))
    assert plan.change.action == "created" and not plan.change.needs_reload
    assert plan.change.after == "52:54:00:aa:aa:01,10.9.0.51,web1\n"
    assert plan.skipped == {"reserved": 1}
    assert not os.path.exists(hosts.path_for(MAC_A))   # a plan writes nothing
    hosts.apply([plan.change])
    again = dhcp_store.plan_present(hosts, MAC_A, NET, name="web1", ip_range="10.9.0.50-10.9.0.59",
                                    reserved=["10.9.0.50"])
    assert again.reused and again.change.action == "unchanged" and again.reservation.ip == "10.9.0.51"


def test_new_name_or_address_updates_the_same_file_and_needs_reload(hosts):
    path = put(hosts, "52-54-00-aa-aa-01.conf", "52:54:00:aa:aa:01,10.9.0.50,web1\n")
    renamed = dhcp_store.plan_present(hosts, MAC_A, NET, name="web2", ip_range="10.9.0.50-10.9.0.59")
    assert renamed.change.action == "updated" and renamed.change.needs_reload
    assert renamed.previous.to_dict() == dict(mac=MAC_A, ip="10.9.0.50", name="web1", file=path)
    moved = dhcp_store.plan_present(hosts, MAC_A, NET, name="web1", ip_range="10.9.0.70-10.9.0.79")
    assert moved.change.file == path and moved.reservation.ip == "10.9.0.70" and moved.change.needs_reload


def test_explicit_ip_of_another_mac_names_the_holder(hosts):
    path = put(hosts, "52-54-00-bb-bb-02.conf", "52:54:00:bb:bb:02,10.9.0.55,db1\n")
    with pytest.raises(Conflict) as err:
        dhcp_store.plan_present(hosts, MAC_A, NET, ip="10.9.0.55")
    assert "52:54:00:bb:bb:02" in str(err.value) and path in str(err.value) and "db1" in str(err.value)
    assert err.value.details["holders"] == [dict(mac=MAC_B, ip="10.9.0.55", name="db1", file=path)]


def test_explicit_ip_leased_to_another_mac(hosts):
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.dnsmasq import Lease
    with pytest.raises(Conflict, match="an active lease, no reservation"):
        dhcp_store.plan_present(hosts, MAC_A, NET, ip="10.9.0.55",
                                leases=[Lease(expiry=0, mac=MAC_B, ip="10.9.0.55")])


def test_full_range_counts_reasons(hosts):
    put(hosts, "52-54-00-bb-bb-02.conf", "52:54:00:bb:bb:02,10.9.0.52\n")
    from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.dnsmasq import Lease
    with pytest.raises(Conflict) as err:
        dhcp_store.plan_present(hosts, MAC_A, NET, ip_range="10.9.0.50-10.9.0.54", reserved=["10.9.0.50"],
                                leases=[Lease(expiry=0, mac="52:54:00:cc:cc:03", ip="10.9.0.51")],
                                is_answering=lambda ip: ip in ("10.9.0.53", "10.9.0.54"))
    assert err.value.details["skipped"] == {"reserved": 1, "leased": 1, "reserved_for_other_mac": 1,
                                            "answering": 2}
    assert "all 5 taken" in str(err.value)


def test_probe_is_asked_only_for_unexplained_candidates(hosts):
    asked = []

    def answering(ip):
        asked.append(ip)
        return ip == "10.9.0.51"
    put(hosts, "52-54-00-bb-bb-02.conf", "52:54:00:bb:bb:02,10.9.0.50\n")
    plan = dhcp_store.plan_present(hosts, MAC_A, NET, ip_range="10.9.0.50-10.9.0.59", is_answering=answering)
    assert plan.reservation.ip == "10.9.0.52"
    assert asked == ["10.9.0.51", "10.9.0.52"]
    assert plan.skipped == {"reserved_for_other_mac": 1, "answering": 1}


def test_dynamic_pool_is_never_chosen(hosts):
    plan = dhcp_store.plan_present(hosts, MAC_A, NET, ip_range="10.9.0.98-10.9.0.200",
                                   dhcp_pool="10.9.0.100-10.9.0.199", reserved=["10.9.0.98", "10.9.0.99"])
    assert plan.reservation.ip == "10.9.0.200"
    assert plan.skipped == {"reserved": 102}


def test_mac_reserved_in_a_foreign_file_is_refused(hosts):
    put(hosts, "legacy", "52:54:00:aa:aa:01,10.9.0.60\n")
    with pytest.raises(Conflict, match="legacy"):
        dhcp_store.plan_present(hosts, MAC_A, NET, ip_range="10.9.0.50-10.9.0.59")
    with pytest.raises(Conflict, match="legacy"):
        dhcp_store.plan_absent(hosts, mac=MAC_A)


def test_a_mac_reserved_twice_by_hand_blocks_both_addresses(hosts):
    put(hosts, "a", "52:54:00:cc:cc:03,10.9.0.50\n")
    put(hosts, "b", "52:54:00:cc:cc:03,10.9.0.51\n")
    plan = dhcp_store.plan_present(hosts, MAC_A, NET, ip_range="10.9.0.50-10.9.0.59")
    assert plan.reservation.ip == "10.9.0.52"


def test_absent_by_mac_and_by_name(hosts):
    a = put(hosts, "52-54-00-aa-aa-01.conf", "52:54:00:aa:aa:01,10.9.0.50,web1\n")
    b = put(hosts, "52-54-00-bb-bb-02.conf", "52:54:00:bb:bb:02,10.9.0.51,web1\n")
    put(hosts, "52-54-00-cc-cc-03.conf", "52:54:00:cc:cc:03,10.9.0.52,db1\n")
    by_mac = dhcp_store.plan_absent(hosts, mac="52-54-00-AA-AA-01")
    assert [c.file for c in by_mac.changes] == [a] and by_mac.changes[0].needs_reload
    assert [r.ip for r in by_mac.removed] == ["10.9.0.50"]
    by_name = dhcp_store.plan_absent(hosts, name="web1")
    assert [c.file for c in by_name.changes] == [a, b]
    assert dhcp_store.plan_absent(hosts, name="nobody").changes == ()
    assert dhcp_store.plan_absent(hosts, mac="52:54:00:00:00:99").changes == ()


def test_reserve_and_release_round_trip(tmp_path, hosts):
    leases = str(tmp_path / "leases")
    plan = dhcp_store.reserve(hosts.path, MAC_A, NET, leases_file=leases, ip_range="10.9.0.50-10.9.0.51")
    assert plan.reservation.ip == "10.9.0.50" and os.path.exists(plan.reservation.file)
    dry = dhcp_store.release(hosts.path, mac=MAC_A, dry_run=True)
    assert dry.changes[0].action == "removed" and os.path.exists(plan.reservation.file)
    dhcp_store.release(hosts.path, mac=MAC_A)
    assert not os.path.exists(plan.reservation.file)
    assert dhcp_store.release(str(tmp_path / "nope"), mac=MAC_A).changes == ()


def test_reserve_needs_the_directory(tmp_path):
    with pytest.raises(KvmfleetError, match="dhcp role creates it"):
        dhcp_store.reserve(str(tmp_path / "nope"), MAC_A, NET, leases_file=str(tmp_path / "l"), ip="10.9.0.50")


def test_reserve_skips_active_leases_only(tmp_path, hosts):
    leases = tmp_path / "leases"
    now = int(time.time())
    leases.write_text("%d 52:54:00:cc:cc:03 10.9.0.50 * *\n%d 52:54:00:cc:cc:04 10.9.0.51 * *\n"
                      % (now + 3600, now - 10))
    plan = dhcp_store.reserve(hosts.path, MAC_A, NET, leases_file=str(leases), ip_range="10.9.0.50-10.9.0.59")
    assert plan.reservation.ip == "10.9.0.51" and plan.skipped == {"leased": 1}


# --------------------------------------------------------------------------- concurrency

def _slow_probe(ip):
    time.sleep(0.4)   # widens the window between choosing and writing
    return False


def _worker(hosts_dir, leases, mac, barrier, queue, locked):
    barrier.wait()
    try:
        if locked:
            plan = dhcp_store.reserve(hosts_dir, mac, NET, leases_file=leases, ip_range="10.9.0.50-10.9.0.51",
                                      is_answering=_slow_probe)
        else:   # the same steps without the lock: the race the lock exists for
            hosts = HostsDir(hosts_dir)
            plan = dhcp_store.plan_present(hosts, mac, NET, ip_range="10.9.0.50-10.9.0.51",
                                           is_answering=_slow_probe)
            hosts.apply([plan.change])
        queue.put((mac, plan.reservation.ip))
    except Exception as err:  # pylint: disable=broad-except
        queue.put((mac, "error: %s" % err))


def _race(tmp_path, hosts, locked):
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    leases = str(tmp_path / "leases")
    procs = [ctx.Process(target=_worker, args=(hosts.path, leases, mac, barrier, queue, locked))
             for mac in (MAC_A, MAC_B)]
    for proc in procs:
        proc.start()
    got = dict(queue.get(timeout=30) for _proc in procs)
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0
    return got


def test_concurrent_allocations_from_a_two_address_range_differ(tmp_path, hosts):
    got = _race(tmp_path, hosts, locked=True)
    assert sorted(got.values()) == ["10.9.0.50", "10.9.0.51"], got
    on_disk = {r.mac: r.ip for r in hosts.reservations()}
    assert on_disk == got


def test_without_the_lock_the_same_race_collides(tmp_path, hosts):
    """Control: proves the test above would catch a missing lock."""
    got = _race(tmp_path, hosts, locked=False)
    assert list(got.values()) == ["10.9.0.50", "10.9.0.50"], got


def test_third_allocation_after_the_race_finds_the_range_full(tmp_path, hosts):
    _race(tmp_path, hosts, locked=True)
    with pytest.raises(Conflict, match="no free address") as err:
        dhcp_store.reserve(hosts.path, "52:54:00:cc:cc:03", NET, leases_file=str(tmp_path / "leases"),
                           ip_range="10.9.0.50-10.9.0.51")
    assert err.value.details["skipped"] == {"reserved_for_other_mac": 2}
