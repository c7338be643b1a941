"""dnsmasq's reservation lines and lease files, rendered and parsed (network/dnsmasq.py)."""
import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network import dnsmasq
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.dnsmasq import DhcpHost, Lease

MAC = "52:54:00:00:00:01"


# --------------------------------------------------------------------------- dnsmasq hosts


def test_render_dhcp_host():
    assert dnsmasq.render_dhcp_host("52:54:00:AA:BB:CC", "192.0.2.20", "web1") == "52:54:00:aa:bb:cc,192.0.2.20,web1"
    assert dnsmasq.render_dhcp_host(MAC, "192.0.2.20") == MAC + ",192.0.2.20"
    assert dnsmasq.render_dhcp_host(MAC, "192.0.2.20", "web1", "12h") == MAC + ",192.0.2.20,web1,12h"


@pytest.mark.parametrize("hostname", ["123", "12h", "infinite", "ignore", "web_1", "-web", "a,b", "web 1", ""])
def test_render_dhcp_host_refuses_ambiguous_hostnames(hostname):
    with pytest.raises(ValidationError):
        dnsmasq.render_dhcp_host(MAC, "192.0.2.20", hostname)


@pytest.mark.parametrize("line, expected", [
    ("52:54:00:AA:BB:CC,192.0.2.20,web1",
     DhcpHost(macs=("52:54:00:aa:bb:cc",), ip="192.0.2.20", hostname="web1")),
    ("52:54:00:aa:bb:cc,set:vm,192.0.2.20,web1,12h",
     DhcpHost(macs=("52:54:00:aa:bb:cc",), ip="192.0.2.20", hostname="web1", set_tags=("vm",), lease_time="12h")),
    ("dhcp-host=52:54:00:aa:bb:cc,net:old,tag:lan,id:*,192.0.2.20,infinite",
     DhcpHost(macs=("52:54:00:aa:bb:cc",), ip="192.0.2.20", set_tags=("old",), match_tags=("lan",),
              client_id="*", lease_time="infinite")),
    ("11:22:33:44:55:66,12:34:56:78:90:12,192.0.2.2",
     DhcpHost(macs=("11:22:33:44:55:66", "12:34:56:78:90:12"), ip="192.0.2.2")),
    ("00:20:e0:3b:13:*,ignore", DhcpHost(macs=("00:20:e0:3b:13:*",), ignore=True)),
    ("06-00:20:E0:3B:13:AF,192.0.2.4", DhcpHost(macs=("06-00:20:e0:3b:13:af",), ip="192.0.2.4")),
    ("lap,192.0.2.199", DhcpHost(ip="192.0.2.199", hostname="lap")),
    ("laptop,[1234::56],3600", DhcpHost(hostname="laptop", ipv6=("1234::56",), lease_time="3600")),
    ("  52:54:00:aa:bb:cc , 192.0.2.20 , web1  ",
     DhcpHost(macs=("52:54:00:aa:bb:cc",), ip="192.0.2.20", hostname="web1")),
])
def test_parse_dhcp_host_line(line, expected):
    assert dnsmasq.parse_dhcp_host_line(line) == expected


@pytest.mark.parametrize("line", ["", "   ", "# a comment", "  # indented comment"])
def test_parse_dhcp_host_line_skips_blank_and_comments(line):
    assert dnsmasq.parse_dhcp_host_line(line) is None


def test_rendered_line_parses_back():
    line = dnsmasq.render_dhcp_host(MAC, "192.0.2.20", "web1", "1h")
    assert dnsmasq.parse_dhcp_host_line(line) == DhcpHost(macs=(MAC,), ip="192.0.2.20", hostname="web1", lease_time="1h")


def test_reservations_from_hosts_file():
    text = "\n".join([
        "# kvmfleet",
        "52:54:00:00:00:01,192.0.2.20,web1",
        "52:54:00:00:00:02,set:x,192.0.2.21",
        "52:54:00:00:00:03,ignore",
        "52:54:00:00:00:04,192.0.2.23,ignore",
        "laptop,192.0.2.24",
        "52:54:00:00:00:05,52:54:00:00:00:06,192.0.2.25",
    ])
    assert dnsmasq.reservations_from_hosts(dnsmasq.parse_dhcp_hosts(text)) == {
        "52:54:00:00:00:01": "192.0.2.20", "52:54:00:00:00:02": "192.0.2.21",
        "52:54:00:00:00:05": "192.0.2.25", "52:54:00:00:00:06": "192.0.2.25"}


# --------------------------------------------------------------------------- leases

LEASES = """\
1700000100 52:54:00:aa:00:01 192.0.2.101 web1 01:52:54:00:aa:00:01
1700000000 52:54:00:AA:00:02 192.0.2.102 * *
0 52:54:00:aa:00:03 192.0.2.103 fixed *
garbage line
1700000200 52:54:00:aa:00:04 not-an-ip host *
duid 00:01:00:01:2c:5f:4c:2a:52:54:00:aa:00:09
1700000300 1234567 2001:db8::5 web6 00:02:00:00:ab:11
"""


def test_parse_leases():
    leases = dnsmasq.parse_leases(LEASES)
    assert leases == [
        Lease(1700000100, "52:54:00:aa:00:01", "192.0.2.101", "web1", "01:52:54:00:aa:00:01"),
        Lease(1700000000, "52:54:00:aa:00:02", "192.0.2.102", None, None),
        Lease(0, "52:54:00:aa:00:03", "192.0.2.103", "fixed", None),
    ]


def test_parse_leases_drops_expired_but_keeps_infinite():
    assert [lease.ip for lease in dnsmasq.parse_leases(LEASES, now=1700000050)] == ["192.0.2.101", "192.0.2.103"]


def test_render_lease_round_trip():
    lease = Lease(1700000000, MAC, "192.0.2.5", None, None)
    assert dnsmasq.render_lease(lease) == "1700000000 52:54:00:00:00:01 192.0.2.5 * *"
    assert dnsmasq.parse_leases(dnsmasq.render_lease(lease)) == [lease]
