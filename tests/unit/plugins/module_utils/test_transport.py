import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils import transport
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError


@pytest.mark.parametrize("host_vars, expected", [
    ({"ansible_host": "10.0.0.12"}, "qemu+ssh://root@10.0.0.12/system"),
    ({"ansible_host": "10.0.0.12", "kvm_migration_address": "192.0.2.12"}, "qemu+ssh://root@192.0.2.12/system"),
    ({"ansible_host": "10.0.0.12", "kvm_migration_transport": "tls"}, "qemu+tls://node2/system"),
    ({"kvm_migration_transport": "tls", "kvm_migration_hostname": "node2.example.org"},
     "qemu+tls://node2.example.org/system"),
    ({"ansible_host": "10.0.0.12", "kvm_migration_transport": "tcp"}, "qemu+tcp://10.0.0.12/system"),
    ({}, "qemu+ssh://root@node2/system"),
])
def test_migration_uri_follows_the_inventory(host_vars, expected):
    assert transport.migration_uri("node2", host_vars) == expected


def test_unknown_transport_is_refused_with_the_host_named():
    with pytest.raises(ValidationError, match=r"node2: kvm_migration_transport must be one of ssh, tls, tcp"):
        transport.migration_uri("node2", {"kvm_migration_transport": "telnet"})


def test_peer_names_pin_both_name_and_address_once():
    assert transport.peer_names("node2", {"ansible_host": "10.0.0.12"}) == [("node2", "node2"), ("node2", "10.0.0.12")]
    assert transport.peer_names("node2", {}) == [("node2", "node2")]
