"""kvmfleet.iaas.dhcp_host on temporary hosts directories; ping and systemctl are faked."""
import os

import pytest

from ansible.module_utils import basic

from ansible_collections.kvmfleet.iaas.plugins.modules import dhcp_host

NET = "10.9.0.0/24"
RANGE = "10.9.0.50-10.9.0.59"
MAC = "52:54:00:aa:aa:01"
FILE = "52-54-00-aa-aa-01.conf"


class Host:
    """Stands in for the DHCP server's commands: ping answers for ``answering``; the service runs."""

    def __init__(self):
        self.answering = set()
        self.active = True
        self.reload_rc = 0
        self.commands = []

    def run_command(self, args, **kwargs):
        assert isinstance(args, list), "commands must be argument lists, not shell strings"
        self.commands.append(list(args))
        if args[0] == "/bin/ping":
            return (0 if args[-1] in self.answering else 1), "", ""
        if args[:2] == ["/bin/systemctl", "is-active"]:
            return (0 if self.active else 3), "", ""
        if args[:2] == ["/bin/systemctl", "reload"]:
            return self.reload_rc, "", "Job for the unit failed" if self.reload_rc else ""
        raise AssertionError("unexpected command %r" % (args,))

    def pings(self):
        return [c[-1] for c in self.commands if c[0] == "/bin/ping"]

    def reloads(self):
        return [c for c in self.commands if c[:2] == ["/bin/systemctl", "reload"]]


@pytest.fixture
def host(monkeypatch):
    fake = Host()
    monkeypatch.setattr(basic.AnsibleModule, "run_command", fake.run_command)   # bound: no module argument
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda module, name, *a, **kw: "/bin/" + name)
    return fake


@pytest.fixture
def paths(tmp_path):
    hosts = tmp_path / "hosts.d"
    hosts.mkdir()
    return dict(hosts_dir=str(hosts), leases_file=str(tmp_path / "leases"))


@pytest.fixture
def dhcp(run_module, paths):
    def run(check=False, diff=False, **kw):
        args = dict(paths, **kw)
        if check:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        return run_module(dhcp_host, args)
    return run


def present(**kw):
    args = dict(mac=MAC, name="web1", ip_range=RANGE, network=NET)
    args.update(kw)
    return dict((k, v) for k, v in args.items() if v is not None)


def listing(paths):
    return sorted(os.listdir(paths["hosts_dir"]))


def content(paths, name=FILE):
    with open(os.path.join(paths["hosts_dir"], name)) as handle:
        return handle.read()


def write(paths, name, text):
    with open(os.path.join(paths["hosts_dir"], name), "w") as handle:
        handle.write(text)


def test_allocates_writes_one_file_and_does_not_reload(dhcp, host, paths):
    result = dhcp(**present(reserved=["10.9.0.50"], mac="52-54-00-AA-AA-01"))
    assert result["changed"] is True, result
    assert result["action"] == "created"
    assert result["reservation"] == dict(mac=MAC, ip="10.9.0.51", name="web1",
                                         file=os.path.join(paths["hosts_dir"], FILE))
    assert result["skipped"] == {"reserved": 1}
    assert result["reloaded"] is False and host.reloads() == []   # dnsmasq reads new files itself
    assert content(paths) == "52:54:00:aa:aa:01,10.9.0.51,web1\n"
    assert listing(paths) == [".kvmfleet-dhcp.lock", FILE]
    assert host.pings() == ["10.9.0.51"]
    assert ["/bin/ping", "-c", "1", "-W", "1", "10.9.0.51"] in host.commands


def test_second_run_is_unchanged_without_probing(dhcp, host, paths):
    first = dhcp(**present())
    host.commands.clear()
    second = dhcp(**present())
    assert second["changed"] is False and second["action"] == "unchanged" and second["reused"] is True
    assert second["reservation"] == first["reservation"]
    assert host.commands == []


def test_explicit_ip_is_idempotent(dhcp, host, paths):
    assert dhcp(**present(ip_range=None, ip="10.9.0.77"))["reservation"]["ip"] == "10.9.0.77"
    again = dhcp(**present(ip_range=None, ip="10.9.0.77"))
    assert again["changed"] is False and again["reused"] is True


def test_name_change_rewrites_and_reloads(dhcp, host, paths):
    dhcp(**present())
    result = dhcp(**present(name="web2"))
    assert result["changed"] is True and result["action"] == "updated" and result["reloaded"] is True
    assert result["previous"]["name"] == "web1"
    assert host.reloads() == [["/bin/systemctl", "reload", "kvmfleet-dhcp.service"]]
    assert content(paths) == "52:54:00:aa:aa:01,10.9.0.50,web2\n"


def test_reservation_outside_a_new_range_moves_in_place(dhcp, host, paths):
    dhcp(**present())
    result = dhcp(**present(ip_range="10.9.0.60/30"))
    assert result["reservation"]["ip"] == "10.9.0.60"     # /30: .60 is a plain address of the range
    assert result["previous"]["ip"] == "10.9.0.50" and result["reloaded"] is True
    assert listing(paths) == [".kvmfleet-dhcp.lock", FILE]


def test_explicit_ip_held_by_another_mac_fails_naming_it(dhcp, host, paths):
    write(paths, "52-54-00-bb-bb-02.conf", "52:54:00:bb:bb:02,10.9.0.55,db1\n")
    result = dhcp(**present(ip_range=None, ip="10.9.0.55"))
    assert result["failed"] is True
    assert "52:54:00:bb:bb:02" in result["msg"] and "52-54-00-bb-bb-02.conf" in result["msg"]
    assert "db1" in result["msg"]
    assert result["holders"][0]["mac"] == "52:54:00:bb:bb:02"
    assert FILE not in listing(paths)


def test_explicit_ip_in_the_dynamic_pool_is_refused(dhcp, host, paths):
    result = dhcp(**present(ip_range=None, ip="10.9.0.150", dhcp_pool="10.9.0.100-10.9.0.199"))
    assert result["failed"] is True and "dynamic pool" in result["msg"]
    assert result["field"] == "ip"


def test_full_range_fails_with_counts_by_reason(dhcp, host, paths):
    write(paths, "52-54-00-bb-bb-02.conf", "52:54:00:bb:bb:02,10.9.0.52\n")
    with open(paths["leases_file"], "w") as handle:
        handle.write("0 52:54:00:cc:cc:03 10.9.0.51 * *\n")
    host.answering = {"10.9.0.53"}
    result = dhcp(**present(ip_range="10.9.0.50-10.9.0.53", reserved=["10.9.0.50"]))
    assert result["failed"] is True
    assert "no free address in ip_range 10.9.0.50-10.9.0.53: all 4 taken" in result["msg"]
    assert "1 answering, 1 leased, 1 reserved, 1 reserved for other mac" in result["msg"]
    assert result["skipped"] == {"reserved": 1, "leased": 1, "reserved_for_other_mac": 1, "answering": 1}
    assert FILE not in listing(paths)


def test_probe_skips_answering_addresses(dhcp, host, paths):
    host.answering = {"10.9.0.50", "10.9.0.51"}
    result = dhcp(**present())
    assert result["reservation"]["ip"] == "10.9.0.52"
    assert result["skipped"] == {"answering": 2}
    assert host.pings() == ["10.9.0.50", "10.9.0.51", "10.9.0.52"]


def test_probe_false_pings_nothing(dhcp, host, paths):
    host.answering = {"10.9.0.50"}
    result = dhcp(**present(probe=False))
    assert result["reservation"]["ip"] == "10.9.0.50" and host.pings() == []


def test_missing_ping_fails_clearly(dhcp, host, paths, monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda module, name, *a, **kw: None)
    result = dhcp(**present())
    assert result["failed"] is True and "probe=false" in result["msg"]


def test_absent_by_mac_removes_and_reloads(dhcp, host, paths):
    dhcp(**present())
    result = dhcp(mac=MAC.upper(), state="absent")
    assert result["changed"] is True and result["action"] == "removed" and result["reloaded"] is True
    assert result["reservation"] is None
    assert result["removed"] == [dict(mac=MAC, ip="10.9.0.50", name="web1",
                                      file=os.path.join(paths["hosts_dir"], FILE))]
    assert listing(paths) == [".kvmfleet-dhcp.lock"]
    assert len(host.reloads()) == 1
    again = dhcp(mac=MAC, state="absent")
    assert again["changed"] is False and again["reloaded"] is False and len(host.reloads()) == 1


def test_absent_by_name_removes_every_nic_of_the_vm(dhcp, host, paths):
    dhcp(**present())
    dhcp(**present(mac="52:54:00:aa:aa:02"))
    dhcp(**present(mac="52:54:00:aa:aa:03", name="db1"))
    result = dhcp(name="web1", state="absent")
    assert sorted(r["ip"] for r in result["removed"]) == ["10.9.0.50", "10.9.0.51"]
    assert listing(paths) == [".kvmfleet-dhcp.lock", "52-54-00-aa-aa-03.conf"]
    assert len(host.reloads()) == 1


def test_absent_on_a_missing_directory_is_unchanged(run_module, host, tmp_path):
    result = run_module(dhcp_host, dict(mac=MAC, state="absent", hosts_dir=str(tmp_path / "nope")))
    assert result["changed"] is False and result["removed"] == []


def test_present_needs_the_directory(run_module, host, tmp_path):
    result = run_module(dhcp_host, dict(present(), hosts_dir=str(tmp_path / "nope")))
    assert result["failed"] is True and "does not exist" in result["msg"]


def test_service_not_running_is_not_reloaded(dhcp, host, paths, monkeypatch):
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda module, text, **kw: warned.append(text))
    dhcp(**present())
    host.active = False
    result = dhcp(mac=MAC, state="absent")
    assert result["changed"] is True and result["reloaded"] is False and host.reloads() == []
    assert len(warned) == 1 and "not running" in warned[0]


def test_a_failed_reload_fails_the_task(dhcp, host, paths):
    dhcp(**present())
    host.reload_rc = 1
    result = dhcp(**present(name="web2"))
    assert result["failed"] is True, result
    assert "systemctl reload kvmfleet-dhcp.service failed (rc=1): Job for the unit failed" in result["msg"]
    assert result["service"] == "kvmfleet-dhcp.service" and result["rc"] == 1


@pytest.mark.parametrize("args,needle", [
    (dict(mac=MAC, network=NET), "ip, ip_range"),
    (dict(mac=MAC, ip_range=RANGE), "network"),
    (dict(mac=MAC, network=NET, ip="10.9.0.50", ip_range=RANGE), "mutually exclusive"),
    (dict(state="absent"), "mac, name"),
    (dict(mac="xx", network=NET, ip_range=RANGE), "MAC address"),
    (dict(mac=MAC, name="12h", network=NET, ip_range=RANGE), "hostname"),
    (dict(mac=MAC, network=NET, ip_range="10.8.0.1-10.8.0.9"), "not inside the VM network"),
])
def test_bad_arguments_fail_before_anything_is_written(dhcp, host, paths, args, needle):
    result = dhcp(**args)
    assert result["failed"] is True and needle in result["msg"], result
    assert listing(paths) in ([], [".kvmfleet-dhcp.lock"])
    assert [f for f in listing(paths) if not f.startswith(".")] == []


# --------------------------------------------------------------------------- check mode

def _comparable(result):
    return dict((k, v) for k, v in result.items() if k not in ("invocation", "diff"))


@pytest.mark.parametrize("setup,args", [
    ([], present()),                                              # create
    ([present()], present()),                                     # unchanged
    ([present()], present(name="web2")),                          # update + reload
    ([present()], present(ip_range="10.9.0.70-10.9.0.79")),       # move + reload
    ([present()], dict(mac=MAC, state="absent")),                 # remove + reload
    ([present(), present(mac="52:54:00:aa:aa:02")], dict(name="web1", state="absent")),
    ([], dict(mac=MAC, state="absent")),                          # nothing to remove
])
def test_check_mode_predicts_exactly_and_changes_nothing(dhcp, host, paths, setup, args):
    for step in setup:
        dhcp(**step)
    files_before = {name: content(paths, name) for name in listing(paths)}
    host.commands.clear()
    predicted = dhcp(check=True, diff=True, **args)
    assert {name: content(paths, name) for name in listing(paths)} == files_before
    assert host.reloads() == []
    real = dhcp(diff=True, **args)
    assert _comparable(predicted) == _comparable(real)
    assert predicted.get("diff") == real.get("diff")


def test_check_mode_on_a_fresh_directory_leaves_no_lock_file(dhcp, host, paths):
    result = dhcp(check=True, **present())
    assert result["changed"] is True and result["reservation"]["ip"] == "10.9.0.50"
    assert listing(paths) == []


def test_diff_shows_the_file_before_and_after(dhcp, host, paths):
    created = dhcp(diff=True, **present())
    path = os.path.join(paths["hosts_dir"], FILE)
    assert created["diff"] == dict(before="", after="52:54:00:aa:aa:01,10.9.0.50,web1\n",
                                   before_header=path, after_header=path)
    updated = dhcp(diff=True, **present(name="web2"))
    assert updated["diff"]["before"] == "52:54:00:aa:aa:01,10.9.0.50,web1\n"
    assert updated["diff"]["after"] == "52:54:00:aa:aa:01,10.9.0.50,web2\n"
    removed = dhcp(diff=True, mac=MAC, state="absent")
    assert removed["diff"]["before"] == "52:54:00:aa:aa:01,10.9.0.50,web2\n" and removed["diff"]["after"] == ""


def test_missing_netaddr_is_reported(dhcp, host, paths, monkeypatch):
    monkeypatch.setattr(dhcp_host.dhcp_store.ipam, "HAS_NETADDR", False)
    result = dhcp(**present())
    assert result["failed"] is True and "netaddr" in result["msg"]
