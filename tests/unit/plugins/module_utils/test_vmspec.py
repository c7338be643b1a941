import os
from dataclasses import FrozenInstanceError

import pytest

from ansible_collections.kvmfleet.iaas.plugins.module_utils import vmspec
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import Limits, VmSpec, validate_vm_request

BASE = dict(name="web1", vcpus=2, memory_mb=1024, disk_gb=10)
NET = "192.0.2.0/24"


def validate(pool_dir=None, network=NET, **overrides):
    request = dict(BASE)
    request.update(overrides)
    return validate_vm_request(request, pool_dir=pool_dir, network=network)


def refused(field, **kwargs):
    """The ValidationError for a request; asserts it names ``field``."""
    with pytest.raises(ValidationError) as err:
        validate(**kwargs)
    assert err.value.details["field"] == field
    assert str(err.value).startswith(field + "=")
    return err.value


@pytest.fixture
def pool(tmp_path):
    """A pool directory with an image, a subdirectory and a file outside it."""
    pool_dir = tmp_path / "pool"
    (pool_dir / "guest").mkdir(parents=True)
    (pool_dir / "debian.qcow2").write_bytes(b"QFI\xfb")
    (pool_dir / "guest" / "vmlinuz").write_bytes(b"k")
    (pool_dir / "guest" / "initrd.img").write_bytes(b"i")
    (tmp_path / "secret.qcow2").write_bytes(b"s")
    return pool_dir


def test_minimal_request_normalised_with_defaults():
    spec = validate()
    assert spec == VmSpec(name="web1", vcpus=2, vcpus_max=8, memory_mb=1024, memory_max_mb=4096, disk_gb=10)
    with pytest.raises(FrozenInstanceError):
        spec.vcpus = 3
    assert spec.to_dict()["memory_max_mb"] == 4096


def test_strings_from_extra_vars_are_accepted():
    spec = validate(vcpus="2", vcpus_max=" 4 ", memory_mb="512", memory_max_mb=1024.0, disk_gb="+10")
    assert (spec.vcpus, spec.vcpus_max, spec.memory_mb, spec.memory_max_mb, spec.disk_gb) == (2, 4, 512, 1024, 10)


@pytest.mark.parametrize("value, rule", [
    (True, "not a boolean"),
    (False, "not a boolean"),
    (2.5, "whole number"),
    ("2.5", "decimal integer"),
    ("two", "decimal integer"),
    ("", "decimal integer"),
    ("0x10", "decimal integer"),
    ("1_000", "decimal integer"),
    ("٣", "decimal integer"),          # Arabic-Indic three: str.isdigit() would say yes
    ("-1", ">= at least one vCPU (1)"),
    (-1, ">= at least one vCPU (1)"),
    (0, ">= at least one vCPU (1)"),
    (257, "<= the site ceiling (256)"),
    (None, "is required"),
    ([2], "not list"),
])
def test_vcpus_refused(value, rule):
    err = refused("vcpus", vcpus=value)
    assert rule in str(err)
    assert err.details["value"] == value


@pytest.mark.parametrize("field, value, rule", [
    ("vcpus_max", 1, ">= vcpus (2)"),
    ("vcpus_max", 300, "<= the site ceiling (256)"),
    ("memory_mb", 63, ">= the site minimum (64)"),
    ("memory_mb", 4 * 1024 * 1024 + 1, "<= the site ceiling (4194304)"),
    ("memory_max_mb", 1023, ">= memory_mb (1024)"),
    ("memory_max_mb", "lots", "decimal integer"),
    ("disk_gb", 0, ">= one GiB (1)"),
    ("disk_gb", 64 * 1024 + 1, "<= the site ceiling (65536)"),
    ("disk_gb", None, "is required"),
    ("memory_mb", None, "is required"),
])
def test_sizes_refused(field, value, rule):
    assert rule in str(refused(field, **{field: value}))


def test_host_limits():
    request = dict(BASE, vcpus=2)
    spec = validate_vm_request(request, host_max_vcpus=4, host_memory_mb=3000)
    assert (spec.vcpus_max, spec.memory_max_mb) == (4, 3000)
    with pytest.raises(ValidationError, match=r"vcpus=5: must be <= the host maximum \(4\)"):
        validate_vm_request(dict(BASE, vcpus=5), host_max_vcpus=4)
    with pytest.raises(ValidationError, match=r"vcpus_max=5: must be <= the host maximum \(4\)"):
        validate_vm_request(dict(BASE, vcpus_max=5), host_max_vcpus=4)
    with pytest.raises(ValidationError, match=r"memory_max_mb=4096: must be <= the host memory \(3000\)"):
        validate_vm_request(dict(BASE, memory_max_mb=4096), host_memory_mb=3000)


@pytest.mark.parametrize("vcpus, host, expected", [(1, None, 8), (8, None, 8), (12, None, 12), (1, 2, 2), (4, 2, 4)])
def test_default_vcpus_max(vcpus, host, expected):
    assert vmspec.default_vcpus_max(vcpus, host) == expected


@pytest.mark.parametrize("memory, host, expected", [
    (256, None, 1024),
    (32 * 1024, None, 64 * 1024),      # capped at 64 GiB
    (100 * 1024, None, 100 * 1024),    # never below current
    (1024, 3000, 3000),                # capped at the host
])
def test_default_memory_max(memory, host, expected):
    assert vmspec.default_memory_max_mb(memory, host) == expected


def test_custom_limits():
    limits = Limits(vcpus_ceiling=4, memory_min_mb=128, vcpus_max_default=2, memory_max_ratio=2)
    spec = validate_vm_request(dict(BASE, vcpus=1, memory_mb=128), limits=limits)
    assert (spec.vcpus_max, spec.memory_max_mb) == (2, 256)
    with pytest.raises(ValidationError, match=">= the site minimum"):
        validate_vm_request(dict(BASE, memory_mb=64), limits=limits)
    with pytest.raises(ValidationError, match="<= the site ceiling"):
        validate_vm_request(dict(BASE, vcpus=5), limits=limits)


@pytest.mark.parametrize("name", ["web1", "a", "1web", "web-1-db", "a" * 63, "x12h", "12hx", "infinite2"])
def test_valid_names(name):
    assert validate(name=name).name == name


@pytest.mark.parametrize("name, rule", [
    ("Web1", "must be lowercase"),
    ("WEB", "use 'web'"),
    ("-web", "RFC 1123"),
    ("web-", "RFC 1123"),
    ("web_1", "RFC 1123"),
    ("web.example", "RFC 1123"),
    ("wéb", "RFC 1123"),
    ("web 1", "RFC 1123"),
    ("a" * 64, "at most 63"),
    ("", "required"),
    (None, "required"),
    (5, "string"),
    ("123", "dnsmasq"),
    ("12h", "dnsmasq"),
    ("ignore", "dnsmasq"),
    ("infinite", "dnsmasq"),
])
def test_names_refused(name, rule):
    assert rule in str(refused("name", name=name))


def test_unknown_field_refused():
    with pytest.raises(ValidationError, match="unknown VM request field.*vcpu\\b"):
        validate_vm_request(dict(BASE, vcpu=2))


def test_group_checked_like_a_label():
    assert validate(group="web").group == "web"
    assert validate(group="123").group == "123"     # groups never reach dnsmasq
    assert "lowercase" in str(refused("group", group="Web"))


# --------------------------------------------------------------------------- paths


def test_image_relative_or_absolute_inside_pool(pool):
    expected = os.path.realpath(str(pool / "debian.qcow2"))
    assert validate(pool_dir=str(pool), image="debian.qcow2").image == expected
    assert validate(pool_dir=str(pool), image=str(pool / "guest" / ".." / "debian.qcow2")).image == expected


def test_image_symlink_inside_pool_is_resolved(pool):
    (pool / "latest.qcow2").symlink_to(pool / "debian.qcow2")
    assert validate(pool_dir=str(pool), image="latest.qcow2").image == os.path.realpath(str(pool / "debian.qcow2"))


def test_pool_dir_behind_a_symlink(pool, tmp_path):
    (tmp_path / "link").symlink_to(pool)
    assert validate(pool_dir=str(tmp_path / "link"), image="debian.qcow2").image == \
        os.path.realpath(str(pool / "debian.qcow2"))


@pytest.mark.parametrize("image, rule", [
    ("../secret.qcow2", "inside the storage pool"),
    ("guest/../../secret.qcow2", "inside the storage pool"),
    ("/etc/passwd", "inside the storage pool"),
    (".", "inside the storage pool"),
    ("missing.qcow2", "does not exist"),
    ("guest", "does not exist"),             # a directory is not an image
    ("", "non-empty path"),
    ("a\x00b", "NUL"),
])
def test_image_refused(pool, image, rule):
    assert rule in str(refused("image", pool_dir=str(pool), image=image))


def test_image_symlink_escaping_pool_is_refused(pool, tmp_path):
    (pool / "escape.qcow2").symlink_to(tmp_path / "secret.qcow2")
    assert "resolves to %s" % os.path.realpath(str(tmp_path / "secret.qcow2")) in \
        str(refused("image", pool_dir=str(pool), image="escape.qcow2"))


def test_sibling_directory_with_pool_prefix_is_outside(pool, tmp_path):
    sibling = tmp_path / "pool2"
    sibling.mkdir()
    (sibling / "x.qcow2").write_bytes(b"x")
    assert "inside the storage pool" in str(refused("image", pool_dir=str(pool), image=str(sibling / "x.qcow2")))


def test_image_needs_pool_dir():
    assert "storage pool directory" in str(refused("image", image="debian.qcow2"))


def test_injected_resolver_and_existence_check():
    seen = []
    spec = validate_vm_request(dict(BASE, image="img.qcow2"), pool_dir="/pool", resolve_path=os.path.normpath,
                               path_exists=lambda path: seen.append(path) or True)
    assert spec.image == "/pool/img.qcow2"
    assert seen == ["/pool/img.qcow2"]


def test_direct_kernel_boot(pool):
    spec = validate(pool_dir=str(pool), kernel="guest/vmlinuz", initrd="guest/initrd.img",
                    cmdline='console=ttyS0 msg="a & b"')
    assert spec.kernel.endswith("/guest/vmlinuz") and spec.initrd.endswith("/guest/initrd.img")
    assert spec.cmdline == 'console=ttyS0 msg="a & b"'


@pytest.mark.parametrize("overrides, field, rule", [
    (dict(initrd="guest/initrd.img"), "initrd", "needs kernel"),
    (dict(cmdline="quiet"), "cmdline", "needs kernel"),
    (dict(kernel="../secret.qcow2"), "kernel", "inside the storage pool"),
    (dict(kernel="guest/vmlinuz", cmdline="a\nb"), "cmdline", "control characters"),
    (dict(kernel="guest/vmlinuz", cmdline="x" * 2049), "cmdline", "at most 2048 bytes"),
    (dict(kernel="guest/vmlinuz", cmdline=5), "cmdline", "string"),
])
def test_kernel_boot_refused(pool, overrides, field, rule):
    assert rule in str(refused(field, pool_dir=str(pool), **overrides))


# --------------------------------------------------------------------------- addresses


def test_ip_and_range_normalised():
    assert validate(ip=" 192.0.2.20 ").ip == "192.0.2.20"
    assert validate(ip_range="192.0.2.64/28").ip_range == "192.0.2.64-192.0.2.79"
    assert validate(ip_range="192.0.2.50-192.0.2.60").ip_range == "192.0.2.50-192.0.2.60"


@pytest.mark.parametrize("overrides, field, rule", [
    (dict(ip="198.51.100.4"), "ip", "inside the VM network 192.0.2.0/24"),
    (dict(ip="192.0.2.255"), "ip", "broadcast"),
    (dict(ip="192.0.2.0"), "ip", "network or broadcast"),
    (dict(ip="192.0.2"), "ip", "not an IPv4 address"),
    (dict(ip_range="192.0.2.250-192.0.3.4"), "ip_range", "inside the VM network"),
    (dict(ip_range="198.51.100.0/28"), "ip_range", "inside the VM network"),
    (dict(ip_range="192.0.2.60-192.0.2.50"), "ip_range", "starts after it ends"),
    (dict(ip="192.0.2.20", ip_range="192.0.2.64/28"), "ip", "not both"),
    (dict(ip="192.0.2.20", network=None), "ip", "needs the VM network"),
    (dict(ip_range="192.0.2.64/28", network=None), "ip_range", "needs the VM network"),
])
def test_addresses_refused(overrides, field, rule):
    assert rule in str(refused(field, **overrides))
