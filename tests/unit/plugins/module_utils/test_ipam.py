import pytest
from netaddr import IPAddress

from ansible_collections.kvmfleet.iaas.plugins.module_utils.network import ipam
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.dnsmasq import Lease, parse_leases
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.ipam import choose_ip

NET = "192.0.2.0/24"
MAC = "52:54:00:00:00:01"
OTHER = "52:54:00:00:00:02"
SITE = dict(gateway="192.0.2.1", dhcp_pool="192.0.2.100-192.0.2.199", reserved=["192.0.2.11", "192.0.2.12"])


def never_called(ip):
    raise AssertionError("is_answering(%s) must not be called" % ip)


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text, first, last", [
    ("192.0.2.50-192.0.2.60", "192.0.2.50", "192.0.2.60"),
    (" 192.0.2.50 - 192.0.2.50 ", "192.0.2.50", "192.0.2.50"),
    ("192.0.2.64/28", "192.0.2.64", "192.0.2.79"),
])
def test_parse_ip_range(text, first, last):
    span = ipam.parse_ip_range(text)
    assert (str(IPAddress(span.first)), str(IPAddress(span.last))) == (first, last)
    assert ipam.format_range(span) == "%s-%s" % (first, last)


@pytest.mark.parametrize("text, message", [
    ("192.0.2.60-192.0.2.50", "starts after it ends"),
    ("192.0.2.50", "neither"),
    ("192.0.2.50-192.0.2.55-192.0.2.60", "neither"),
    ("192.0.2.65/28", "host bits set"),
    ("192.0.2.50-192.0.2.256", "not an IPv4 address"),
    ("2001:db8::1-2001:db8::5", "not an IPv4 address"),
    ("", "neither"),
])
def test_parse_ip_range_refuses(text, message):
    with pytest.raises(ValidationError, match=message) as err:
        ipam.parse_ip_range(text)
    assert err.value.details["field"] == "ip_range"


@pytest.mark.parametrize("text", ["10.1", "10.0.0.256", "3232235777", "::1", "10.0.0.1/32", "", None, "a.b.c.d"])
def test_parse_ip_refuses(text):
    with pytest.raises(ValidationError, match="not an IPv4 address"):
        ipam.parse_ip(text)


@pytest.mark.parametrize("text", ["192.0.2.0", "2001:db8::/64", "192.0.2.0/33", "nonsense"])
def test_parse_network_refuses(text):
    with pytest.raises(ValidationError):
        ipam.parse_network(text)


# --------------------------------------------------------------------------- choosing


def test_lowest_free_skips_network_address_gateway_and_reserved():
    choice = choose_ip(NET, MAC, gateway="192.0.2.1", reserved=["192.0.2.2", "192.0.2.3/32", "192.0.2.4-192.0.2.5"])
    assert choice.ip == "192.0.2.6"
    assert choice.skipped == {"reserved": 6}   # .0 to .5
    assert not choice.reused


def test_dhcp_pool_reservations_leases_and_answering_are_skipped_with_reasons():
    answering = {"192.0.2.53"}
    probed = []

    def is_answering(ip):
        probed.append(ip)
        return ip in answering

    choice = choose_ip(NET, MAC, ip_range="192.0.2.50-192.0.2.120", reservations={OTHER: "192.0.2.50"},
                       leases=[Lease(0, "52:54:00:00:00:03", "192.0.2.51"), Lease(0, "52:54:00:00:00:04", "192.0.2.52")],
                       is_answering=is_answering, **SITE)
    assert choice.ip == "192.0.2.54"
    assert choice.skipped == {"reserved_for_other_mac": 1, "leased": 2, "answering": 1}
    # Only candidates no record accounts for are probed.
    assert probed == ["192.0.2.53", "192.0.2.54"]


def test_dhcp_pool_is_never_chosen():
    held = {OTHER: "192.0.2.98", "52:54:00:00:00:09": "192.0.2.99"}
    choice = choose_ip(NET, MAC, ip_range="192.0.2.98-192.0.2.200", reservations=held, **SITE)
    assert choice.ip == "192.0.2.200"
    assert choice.skipped == {"reserved_for_other_mac": 2, "reserved": 100}


def test_own_reservation_in_range_is_returned_without_probing():
    choice = choose_ip(NET, MAC, ip_range="192.0.2.20-192.0.2.30", reservations={MAC.upper(): "192.0.2.25"},
                       is_answering=never_called, **SITE)
    assert (choice.ip, choice.reused, choice.replaces) == ("192.0.2.25", True, None)


def test_own_reservation_outside_range_is_replaced():
    choice = choose_ip(NET, MAC, ip_range="192.0.2.20-192.0.2.30", reservations={MAC: "192.0.2.40"}, **SITE)
    assert (choice.ip, choice.reused, choice.replaces) == ("192.0.2.20", False, "192.0.2.40")


def test_own_lease_does_not_block():
    choice = choose_ip(NET, MAC, ip_range="192.0.2.20-192.0.2.30", leases={MAC: "192.0.2.20"})
    assert choice.ip == "192.0.2.20"


def test_range_full_says_how_many_and_why():
    with pytest.raises(Conflict) as err:
        choose_ip(NET, MAC, ip_range="192.0.2.10-192.0.2.14", reservations={OTHER: "192.0.2.10"},
                  leases={"52:54:00:00:00:03": "192.0.2.13"}, is_answering=lambda ip: ip == "192.0.2.14", **SITE)
    message = str(err.value)
    assert "no free address in ip_range 192.0.2.10-192.0.2.14: all 5 taken" in message
    assert "1 answering, 1 leased, 2 reserved, 1 reserved for other mac" in message
    assert err.value.details["skipped"] == {"reserved_for_other_mac": 1, "reserved": 2, "leased": 1, "answering": 1}


def test_too_many_unexplained_answers_stop_the_search():
    calls = []

    def is_answering(ip):
        calls.append(ip)
        return True

    with pytest.raises(Conflict, match="gave up .* after 3 addresses"):
        choose_ip(NET, MAC, is_answering=is_answering, max_probes=3)
    assert len(calls) == 3


def test_range_outside_network():
    with pytest.raises(ValidationError, match="not inside the VM network 192.0.2.0/24"):
        choose_ip(NET, MAC, ip_range="192.0.2.250-192.0.3.5")


def test_ip_and_range_together_are_refused():
    with pytest.raises(ValidationError, match="either"):
        choose_ip(NET, MAC, ip="192.0.2.20", ip_range="192.0.2.20/30")


def test_slash_31_has_no_network_or_broadcast_to_skip():
    assert choose_ip("192.0.2.0/31", MAC).ip == "192.0.2.0"


@pytest.mark.parametrize("order", ["lowest", "hashed"])
def test_order_is_deterministic_and_within_range(order):
    picks = [choose_ip(NET, "52:54:00:00:00:%02x" % n, ip_range="192.0.2.20-192.0.2.59", order=order).ip
             for n in range(10)]
    again = [choose_ip(NET, "52:54:00:00:00:%02x" % n, ip_range="192.0.2.20-192.0.2.59", order=order).ip
             for n in range(10)]
    assert picks == again
    assert all(IPAddress("192.0.2.20") <= IPAddress(ip) <= IPAddress("192.0.2.59") for ip in picks)
    # lowest gives every MAC the same first free address; hashed spreads them
    assert (len(set(picks)) == 1) == (order == "lowest")


def test_hashed_order_wraps_around_the_range():
    taken = {"52:54:00:00:01:%02x" % n: "192.0.2.%d" % n for n in range(20, 30)}
    mac_start = choose_ip(NET, MAC, ip_range="192.0.2.20-192.0.2.30", order="hashed").ip
    assert mac_start != "192.0.2.30"  # guards the test's premise: it must start before the free one
    assert choose_ip(NET, MAC, ip_range="192.0.2.20-192.0.2.30", reservations=taken, order="hashed").ip == "192.0.2.30"


# --------------------------------------------------------------------------- explicit ip


def test_explicit_free_ip():
    choice = choose_ip(NET, MAC, ip="192.0.2.20", is_answering=lambda ip: False, **SITE)
    assert (choice.ip, choice.reused) == ("192.0.2.20", False)


def test_explicit_ip_already_ours_is_not_probed():
    choice = choose_ip(NET, MAC, ip="192.0.2.20", reservations={MAC: "192.0.2.20"}, is_answering=never_called)
    assert (choice.ip, choice.reused) == ("192.0.2.20", True)


def test_explicit_ip_replaces_the_macs_old_reservation():
    assert choose_ip(NET, MAC, ip="192.0.2.21", reservations={MAC: "192.0.2.20"}).replaces == "192.0.2.20"


@pytest.mark.parametrize("ip, kwargs, error, message", [
    ("198.51.100.5", {}, ValidationError, "outside the VM network"),
    ("192.0.2.0", {}, ValidationError, "reserved"),
    ("192.0.2.255", {}, ValidationError, "reserved"),
    ("192.0.2.1", SITE, ValidationError, "reserved"),
    ("192.0.2.11", SITE, ValidationError, "reserved"),
    ("192.0.2.150", SITE, ValidationError, "DHCP dynamic pool"),
    ("192.0.2.20", dict(reservations={OTHER: "192.0.2.20"}), Conflict, "taken by MAC 52:54:00:00:00:02"),
    ("192.0.2.20", dict(leases=[Lease(0, OTHER, "192.0.2.20")]), Conflict, "taken by MAC 52:54:00:00:00:02"),
    ("192.0.2.20", dict(is_answering=lambda ip: True), Conflict, "answers on the network"),
    ("192.0.2.300", {}, ValidationError, "not an IPv4 address"),
])
def test_explicit_ip_refused(ip, kwargs, error, message):
    with pytest.raises(error, match=message):
        choose_ip(NET, MAC, ip=ip, **kwargs)


def test_parsed_leases_block_choice():
    leases = parse_leases("0 52:54:00:aa:00:03 192.0.2.20 x *\n")
    assert choose_ip(NET, MAC, ip_range="192.0.2.20-192.0.2.21", leases=leases).ip == "192.0.2.21"
