import re

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.network import macaddr
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.macaddr import allocate_mac, allocate_macs, derive_mac

MAC_RE = re.compile(r"^52:54:00(:[0-9a-f]{2}){3}$")


def test_derived_mac_is_deterministic_and_in_the_qemu_prefix():
    mac = derive_mac("web1")
    assert MAC_RE.match(mac)
    assert derive_mac("web1") == mac
    first_octet = int(mac[:2], 16)
    assert first_octet & 0b10 and not first_octet & 0b01   # locally administered, unicast


def test_derived_mac_depends_on_name_index_and_attempt():
    macs = {derive_mac("web1"), derive_mac("web2"), derive_mac("web1", 1), derive_mac("web1", 0, 1),
            derive_mac("web1", 1, 1)}
    assert len(macs) == 5


def test_derived_mac_is_a_known_value():
    # Pinned: changing the scheme would move every VM to a new MAC (and a new DHCP reservation).
    assert derive_mac("web1") == "52:54:00:ee:1d:7e"


@pytest.mark.parametrize("text, expected", [
    ("52:54:00:AB:cd:EF", "52:54:00:ab:cd:ef"),
    ("52-54-00-ab-cd-ef", "52:54:00:ab:cd:ef"),
    ("525400abcdef", "52:54:00:ab:cd:ef"),
    (" 52:54:00:ab:cd:ef\n", "52:54:00:ab:cd:ef"),
])
def test_normalize_mac(text, expected):
    assert macaddr.normalize_mac(text) == expected


@pytest.mark.parametrize("text", ["", None, "52:54:00:ab:cd", "52:54:00:ab:cd:eg", "52:54-00:ab:cd:ef",
                                  "52:54:00:ab:cd:ef:01", "5254.00ab.cdef"])
def test_normalize_mac_refuses(text):
    with pytest.raises(ValidationError):
        macaddr.normalize_mac(text)


def test_free_mac_is_the_derived_one():
    allocation = allocate_mac("web1", {"52:54:00:00:00:01": "db1"})
    assert (allocation.mac, allocation.reused, allocation.attempt, allocation.clash_resolved) == \
        (derive_mac("web1"), False, 0, False)


def test_mac_held_by_another_vm_is_rehashed_and_reported():
    in_use = {derive_mac("web1"): "db1"}
    allocation = allocate_mac("web1", in_use)
    assert allocation.mac == derive_mac("web1", 0, 1)
    assert allocation.mac not in in_use
    assert allocation.clashed_with == ("db1",)
    assert allocation.clash_resolved
    assert allocate_mac("web1", in_use) == allocation   # deterministic


def test_consecutive_clashes_are_all_reported():
    in_use = {derive_mac("web1").upper(): "db1", derive_mac("web1", 0, 1): {"db2", "db3"}}
    allocation = allocate_mac("web1", in_use)
    assert allocation.mac == derive_mac("web1", 0, 2)
    assert allocation.attempt == 2
    assert allocation.clashed_with == ("db1", "db2", "db3")


def test_mac_of_unknown_owner_counts_as_taken():
    allocation = allocate_mac("web1", {derive_mac("web1"): None})
    assert allocation.mac == derive_mac("web1", 0, 1)
    assert allocation.clashed_with == ("(unknown owner)",)


def test_same_vm_keeps_its_mac():
    allocation = allocate_mac("web1", {derive_mac("web1"): "web1"})
    assert (allocation.mac, allocation.reused, allocation.clash_resolved) == (derive_mac("web1"), True, False)


def test_same_vm_keeps_a_mac_it_got_after_a_clash():
    in_use = {derive_mac("web1"): "db1", derive_mac("web1", 0, 1): "web1"}
    allocation = allocate_mac("web1", in_use)
    assert (allocation.mac, allocation.reused) == (derive_mac("web1", 0, 1), True)


def test_existing_vm_keeps_its_macs_even_when_not_derived():
    existing = ["52:54:00:AA:AA:AA", "52:54:00:bb:bb:bb"]
    allocations = allocate_macs("web1", 3, {"52:54:00:aa:aa:aa": "web1"}, existing=existing)
    assert [a.mac for a in allocations] == ["52:54:00:aa:aa:aa", "52:54:00:bb:bb:bb", derive_mac("web1", 2)]
    assert [a.reused for a in allocations] == [True, True, False]


def test_existing_mac_shared_with_another_vm_is_a_conflict():
    with pytest.raises(Conflict, match="db1 also holds it"):
        allocate_macs("web1", 1, {"52:54:00:aa:aa:aa": {"web1", "db1"}}, existing=["52:54:00:aa:aa:aa"])


def test_nics_of_one_vm_never_share(monkeypatch):
    real = macaddr.derive_mac
    # Force NIC 0 and NIC 1 to derive the same first MAC.
    monkeypatch.setattr(macaddr, "derive_mac", lambda name, index=0, attempt=0: real(name, 0, attempt))
    allocations = allocate_macs("web1", 2, {})
    assert allocations[0].mac != allocations[1].mac
    assert allocations[1].attempt == 1


def test_gives_up_after_max_attempts():
    in_use = {derive_mac("web1", 0, attempt): "db%d" % attempt for attempt in range(3)}
    with pytest.raises(Conflict, match="after 3 attempts"):
        allocate_mac("web1", in_use, max_attempts=3)
    assert allocate_mac("web1", in_use, max_attempts=4).attempt == 3


def test_macs_in_use_from_facts():
    facts = {
        "hv1": {"domains": [{"name": "web1", "macs": ["52:54:00:AA:00:01"]},
                            {"name": "web2", "macs": ["52:54:00:aa:00:02", "52:54:00:aa:00:03"]}]},
        "hv2": {"domains": [{"name": "db1", "macs": ["52:54:00:aa:00:01"]}]},
        "hv3": {"reachable": False, "error": "timeout"},
    }
    owners = macaddr.macs_in_use(facts)
    assert owners == {"52:54:00:aa:00:01": frozenset({"web1", "db1"}),
                      "52:54:00:aa:00:02": frozenset({"web2"}),
                      "52:54:00:aa:00:03": frozenset({"web2"})}
    assert macaddr.macs_in_use(list(facts.values())) == owners
