"""Unit tests for lab/guest/build.py (no network, no apt, no qemu)."""
import gzip
import importlib.util
import json
import stat
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "lab" / "guest" / "build.py"
_spec = importlib.util.spec_from_file_location("kvmfleet_guest_build", _PATH)
gb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gb)


def parse_newc(data: bytes) -> dict:
    """Tiny newc reader: {name: (mode, body, rdevmajor, rdevminor)}."""
    out, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701"
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        pos += 110
        name = data[pos:pos + namesize - 1].decode()
        pos += namesize
        pos += -pos % 4
        body = data[pos:pos + size]
        pos += size
        pos += -pos % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body, rmaj, rmin)


def test_control_and_kernel_dep():
    text = "Package: linux-image-cloud-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)\n\nPackage: x\n"
    f = gb.parse_control(text)
    assert f["Version"] == "6.1.192-2"
    assert gb.kernel_image_dep(f["Depends"]) == "linux-image-6.1.0-56-cloud-amd64"
    assert gb.kernel_image_dep("foo, linux-image-6.1.0-9-cloud-amd64-unsigned | bar") == \
        "linux-image-6.1.0-9-cloud-amd64-unsigned"
    with pytest.raises(gb.BuildError):
        gb.kernel_image_dep("linux-image-6.1.0-9-amd64")


def test_module_order_from_modules_dep():
    dep = gb.parse_modules_dep(
        "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n"
        "kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n"
        "kernel/net/core/failover.ko:\n"
        "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko "
        "kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko:\n"
        "kernel/drivers/virtio/virtio.ko:\n"
        "kernel/drivers/virtio/virtio_ring.ko:\n")
    order = gb.resolve_module_order(["virtio_net", "virtio_pci"], dep)
    for before, after in [("failover", "net_failover"), ("net_failover", "virtio_net"),
                          ("virtio_ring", "virtio_pci"), ("virtio", "virtio_pci")]:
        assert order.index(before) < order.index(after)
    assert len(order) == len(set(order)) == 7
    # builtins are skipped; unknown modules and cycles are errors
    no_failover = {k: v for k, v in dep.items() if k != "failover"}
    assert gb.resolve_module_order(["virtio_net"], no_failover, builtin={"failover"}) == \
        ["net_failover", "virtio_net"]
    with pytest.raises(gb.BuildError):
        gb.resolve_module_order(["nope"], dep)
    with pytest.raises(gb.BuildError):
        gb.resolve_module_order(["a"], {"a": ("a.ko", ["b"]), "b": ("b.ko", ["a"])})


def test_module_name():
    assert gb.module_name("kernel/x/virtio-net.ko.xz") == "virtio_net"
    assert gb.module_name("virtio_blk.ko") == "virtio_blk"


def _fake_module(modinfo: bytes) -> bytes:
    """Minimal ELF64 LE with a .shstrtab and a .modinfo section."""
    shstr = b"\0.shstrtab\0.modinfo\0"
    body_off = 64
    shstr_off, modinfo_off = body_off, body_off + len(shstr)
    shoff = modinfo_off + len(modinfo)
    shoff += -shoff % 8
    hdr = bytearray(64)
    hdr[0:4] = b"\x7fELF"
    hdr[4], hdr[5] = 2, 1
    hdr[0x28:0x30] = shoff.to_bytes(8, "little")
    hdr[0x3A:0x3C] = (64).to_bytes(2, "little")
    hdr[0x3C:0x3E] = (3).to_bytes(2, "little")
    hdr[0x3E:0x40] = (1).to_bytes(2, "little")

    def sh(name, off, size):
        h = bytearray(64)
        h[0:4] = name.to_bytes(4, "little")
        h[0x18:0x20] = off.to_bytes(8, "little")
        h[0x20:0x28] = size.to_bytes(8, "little")
        return bytes(h)

    data = bytes(hdr) + shstr + modinfo
    data += b"\0" * (shoff - len(data))
    return data + sh(0, 0, 0) + sh(1, shstr_off, len(shstr)) + sh(11, modinfo_off, len(modinfo))


def test_elf_modinfo_and_tree(tmp_path):
    mod = _fake_module(b"license=GPL\0depends=virtio,virtio_ring\0name=virtio_pci\0")
    assert gb.elf_modinfo(mod)["depends"] == "virtio,virtio_ring"
    d = tmp_path / "kernel" / "drivers"
    d.mkdir(parents=True)
    (d / "virtio_pci.ko").write_bytes(mod)
    (d / "virtio.ko").write_bytes(_fake_module(b"depends=virtio_ring\0"))
    (d / "virtio_ring.ko").write_bytes(_fake_module(b"depends=\0"))
    deps = gb.modules_dep_from_tree(tmp_path)
    assert gb.resolve_module_order(["virtio_pci"], deps) == ["virtio_ring", "virtio", "virtio_pci"]


def test_initramfs_layout():
    img = gb.build_initramfs(b"BB", b"DIRTY", b"#!/bin/busybox sh\n", b"#!/bin/sh\n",
                             [("virtio_ring", b"R"), ("virtio", b"V")])
    assert img == gb.build_initramfs(b"BB", b"DIRTY", b"#!/bin/busybox sh\n", b"#!/bin/sh\n",
                                     [("virtio_ring", b"R"), ("virtio", b"V")]), "not reproducible"
    ents = parse_newc(gzip.decompress(img))
    mode, body, maj, mn = ents["dev/console"]
    assert stat.S_ISCHR(mode) and (maj, mn) == (5, 1)
    assert stat.S_ISREG(ents["init"][0]) and ents["init"][0] & 0o111
    assert ents["bin/busybox"][1] == b"BB"
    assert stat.S_ISLNK(ents["bin/sh"][0]) and ents["bin/sh"][1] == b"busybox"
    assert ents["etc/kvmfleet/modules"][1] == b"virtio_ring\nvirtio\n"
    assert ents["lib/modules/virtio.ko"][1] == b"V"


def test_up_to_date(tmp_path):
    stamp = {"packages": {"kernel": {"version": "1"}}}
    assert not gb.up_to_date(tmp_path, stamp)
    for o in gb.OUTPUTS:
        (tmp_path / o).write_text("x")
    (tmp_path / ".stamp").write_text(json.dumps(stamp))
    assert gb.up_to_date(tmp_path, stamp)
    assert not gb.up_to_date(tmp_path, {"packages": {"kernel": {"version": "2"}}})
    (tmp_path / "vmlinuz").unlink()
    assert not gb.up_to_date(tmp_path, stamp)


def test_cmdline_template():
    line = gb.CMDLINE_TEMPLATE.format(**gb.CMDLINE_DEFAULTS)
    assert line.startswith("console=ttyS0 ")
    assert "kvmfleet.burn=0" in line and "kvmfleet.dirty=0" in line
