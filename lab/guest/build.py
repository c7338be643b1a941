#!/usr/bin/env python3
"""Build the kvmfleet lab guest: kernel, busybox initramfs and a qcow2 base disk.

    lab/guest/build.py [--out DIR] [--force] [--check] [--disk-size MIB]

Writes DIR/vmlinuz, DIR/initrd.img, DIR/base.qcow2 and DIR/guest.json
(default DIR: /var/cache/kvmfleet-lab/guest).  Everything the guest runs comes
from Debian packages fetched with `apt-get download` and unpacked with
`dpkg -x` in a temporary directory; nothing is installed on the host for the
guest.  Host tools used: apt-get/apt-cache, dpkg, gcc (static build of the
memory dirtier, dirty.c) and qemu-img (qemu-utils).

Idempotent and cached: DIR/.stamp records the package versions and hashes of
every input; when it matches and all outputs exist the build is skipped.
Outputs are replaced atomically, the stamp is written last, a lock file
serialises concurrent builds, and the temporary directory is always removed.

Exit status: 0 built or up to date, 1 build error, 2 usage, 3 (--check) stale.
See docs/lab-guest.md for the boot contract (cmdline, devices, console).
"""
from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = Path("/var/cache/kvmfleet-lab/guest")
KERNEL_META = "linux-image-cloud-amd64"
BUSYBOX_PKG = "busybox-static"
# wanted modules; their dependencies are resolved from modules.dep
MODULES = [
    "virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
    "virtio_pci", "failover", "net_failover", "virtio_net", "virtio_balloon",
    "virtio_blk",
]
CMDLINE_TEMPLATE = ("console=ttyS0 loglevel=4 kvmfleet.burn={burn} "
                    "kvmfleet.dirty={dirty} kvmfleet.dirty_buf={dirty_buf}")
CMDLINE_DEFAULTS = {"burn": 0, "dirty": 0, "dirty_buf": 32}
DISK_LABEL = b"kvmfleet-base-v1"
DEFAULT_DISK_MIB = 64
INPUT_FILES = ["build.py", "init.sh", "udhcpc.script", "dirty.c"]
OUTPUTS = ["vmlinuz", "initrd.img", "base.qcow2", "guest.json"]
FIXED_MTIME = 0  # reproducible cpio/gzip


class BuildError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[guest-build] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(cmd, env=env, **kw)


def must(cmd: list[str], **kw) -> str:
    try:
        p = run(cmd, **kw)
    except FileNotFoundError as e:
        raise BuildError(f"missing host tool: {cmd[0]} ({e})") from None
    if p.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed ({p.returncode}): {(p.stderr or '').strip()[-2000:]}")
    return p.stdout or ""


# ---------------------------------------------------------------- packages

def parse_control(text: str) -> dict[str, str]:
    """First stanza of apt-cache show / dpkg control output -> fields."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t" and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, val = line.partition(":")
            fields[key] = val.strip()
    return fields


def apt_show(pkg: str) -> dict[str, str] | None:
    p = run(["apt-cache", "show", "--no-all-versions", pkg])
    if p.returncode != 0 or not p.stdout.strip():
        return None
    f = parse_control(p.stdout)
    return f if f.get("Version") else None


def kernel_image_dep(depends: str) -> str:
    """The linux-image-X-cloud-amd64 package a metapackage depends on."""
    for alt in depends.split(","):
        name = alt.split("|")[0].strip().split(" ")[0]
        if re.fullmatch(r"linux-image-[0-9][\w.+-]*-cloud-amd64(-unsigned)?", name):
            return name
    raise BuildError(f"{KERNEL_META}: no linux-image dependency in {depends!r}")


def resolve_packages(allow_update: bool = True) -> dict[str, dict[str, str]]:
    meta = apt_show(KERNEL_META)
    busybox = apt_show(BUSYBOX_PKG)
    if (meta is None or busybox is None) and allow_update:
        log("package not found in the apt cache: running apt-get update once")
        must(["apt-get", "update", "-q"])
        return resolve_packages(allow_update=False)
    if meta is None or busybox is None:
        raise BuildError(f"{KERNEL_META} or {BUSYBOX_PKG} not available from apt")
    image_name = kernel_image_dep(meta.get("Depends", ""))
    image = apt_show(image_name)
    if image is None and allow_update:
        must(["apt-get", "update", "-q"])
        return resolve_packages(allow_update=False)
    if image is None:
        raise BuildError(f"{image_name} not available from apt")
    return {
        "meta": {"name": KERNEL_META, "version": meta["Version"]},
        "kernel": {"name": image_name, "version": image["Version"]},
        "busybox": {"name": BUSYBOX_PKG, "version": busybox["Version"]},
    }


def download_and_extract(pkgs: dict[str, dict[str, str]], tmp: Path) -> dict[str, Path]:
    debs = tmp / "debs"
    debs.mkdir()
    # apt-get download drops privileges to _apt, which must reach the directory
    os.chmod(tmp, 0o755)
    os.chmod(debs, 0o777)
    wanted = [f"{pkgs[k]['name']}={pkgs[k]['version']}" for k in ("kernel", "busybox")]
    must(["apt-get", "download", "-q"] + wanted, cwd=debs)
    roots = {}
    for key in ("kernel", "busybox"):
        found = sorted(debs.glob(f"{pkgs[key]['name']}_*.deb"))
        if len(found) != 1:
            raise BuildError(f"expected one .deb for {pkgs[key]['name']}, got {found}")
        root = tmp / f"root-{key}"
        must(["dpkg", "-x", str(found[0]), str(root)])
        roots[key] = root
    shutil.rmtree(debs)
    return roots


# ---------------------------------------------------------------- modules

def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep -> {module_name: (path, [dependency names])}."""
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, _, deps = line.partition(":")
        path = path.strip()
        out[module_name(path)] = (path, [module_name(d) for d in deps.split()])
    return out


def elf_modinfo(data: bytes) -> dict[str, str]:
    """Key=value strings of the .modinfo section of an ELF64 LE kernel module."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise BuildError("not an ELF64 little-endian module")
    shoff = int.from_bytes(data[0x28:0x30], "little")
    shentsize = int.from_bytes(data[0x3A:0x3C], "little")
    shnum = int.from_bytes(data[0x3C:0x3E], "little")
    shstrndx = int.from_bytes(data[0x3E:0x40], "little")

    def section(i: int) -> tuple[int, int, int]:
        h = data[shoff + i * shentsize: shoff + (i + 1) * shentsize]
        return (int.from_bytes(h[0:4], "little"), int.from_bytes(h[0x18:0x20], "little"),
                int.from_bytes(h[0x20:0x28], "little"))

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name_off, off, size = section(i)
        end = data.index(b"\0", stroff + name_off)
        if data[stroff + name_off:end] == b".modinfo":
            info: dict[str, str] = {}
            for item in data[off:off + size].split(b"\0"):
                k, sep, v = item.decode(errors="replace").partition("=")
                if sep and k not in info:
                    info[k] = v
            return info
    return {}


def modules_dep_from_tree(moddir: Path) -> dict[str, tuple[str, list[str]]]:
    """What depmod would put in modules.dep, from the modules' own 'depends='.

    The .deb ships no modules.dep (depmod runs in postinst) and the host has
    no depmod, so read each module's .modinfo; only modules reached from
    MODULES are parsed.  Direct dependencies suffice: resolve_module_order()
    walks them transitively.
    """
    paths = {module_name(p.name): p for p in moddir.rglob("*.ko*")
             if re.search(r"\.ko(\.(xz|zst|gz))?$", p.name)}

    class Lazy(dict):
        def __missing__(self, name):
            if name not in paths:
                raise KeyError(name)
            info = elf_modinfo(read_module(paths[name]))
            deps = [d.replace("-", "_") for d in info.get("depends", "").split(",") if d]
            val = (str(paths[name].relative_to(moddir)), deps)
            self[name] = val
            return val

        def __contains__(self, name):
            return name in paths

    return Lazy()


def module_name(path: str) -> str:
    base = os.path.basename(path)
    base = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base)
    return base.replace("-", "_")


def resolve_module_order(wanted: list[str], deps: dict[str, tuple[str, list[str]]],
                         builtin: set[str] = frozenset()) -> list[str]:
    """Load order: every module after its dependencies (depth-first), builtins dropped."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = name.replace("-", "_")
        if state.get(name) == 2 or (name in builtin and name not in deps):
            return
        if state.get(name) == 1:
            raise BuildError(f"module dependency cycle: {' -> '.join(chain + (name,))}")
        if name not in deps:
            raise BuildError(f"module {name} not in modules.dep (needed by {chain[-1] if chain else 'the guest'})")
        state[name] = 1
        for d in deps[name][1]:
            visit(d, chain + (name,))
        state[name] = 2
        order.append(name)

    for w in wanted:
        visit(w, ())
    return order


def read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return must_bytes(["zstd", "-dc", str(path)])
    return data


def must_bytes(cmd: list[str]) -> bytes:
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed: {p.stderr.decode(errors='replace')}")
    return p.stdout


# ---------------------------------------------------------------- cpio

class Cpio:
    """Minimal 'newc' cpio writer: lets us create /dev nodes without root."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.ino = 1000
        self.seen: set[str] = set()

    def _add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.lstrip("/")
        if name in self.seen:
            raise BuildError(f"duplicate initramfs entry {name}")
        self.seen.add(name)
        self.ino += 1
        nameb = name.encode() + b"\0"
        # ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        fields = [self.ino, mode, 0, 0, 1, FIXED_MTIME, len(data),
                  0, 0, rdev[0], rdev[1], len(nameb), 0]
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.buf += hdr + nameb
        self.buf += b"\0" * (-len(self.buf) % 4)
        self.buf += data
        self.buf += b"\0" * (-len(self.buf) % 4)

    def dir(self, name: str, perm: int = 0o755) -> None:
        self._add(name, stat.S_IFDIR | perm)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._add(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._add(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._add(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def finish(self) -> bytes:
        self._add("TRAILER!!!", 0)
        self.buf += b"\0" * (-len(self.buf) % 512)
        return bytes(self.buf)


def build_initramfs(busybox: bytes, dirty: bytes, init: bytes, udhcpc: bytes,
                    modules: list[tuple[str, bytes]]) -> bytes:
    c = Cpio()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "etc/kvmfleet",
              "lib", "lib/modules", "proc", "sys", "dev", "run", "tmp", "root"):
        c.dir(d, 0o1777 if d == "tmp" else 0o755)
    # nodes the kernel needs before devtmpfs is mounted (console for PID 1)
    c.chardev("dev/console", 5, 1)
    c.chardev("dev/ttyS0", 4, 64)
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("bin/busybox", busybox, 0o755)
    c.symlink("bin/sh", "busybox")
    c.file("bin/kvmfleet-dirty", dirty, 0o755)
    c.file("init", init, 0o755)
    c.file("etc/udhcpc.script", udhcpc, 0o755)
    c.file("etc/hostname", b"kvmfleet-guest\n")
    c.file("etc/kvmfleet/modules", "".join(f"{n}\n" for n, _ in modules).encode())
    for name, data in modules:
        c.file(f"lib/modules/{name}.ko", data)
    return gzip.compress(c.finish(), compresslevel=9, mtime=FIXED_MTIME)


# ---------------------------------------------------------------- build

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tool_versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            p = run(cmd)
        except FileNotFoundError:
            raise BuildError(f"missing host tool: {cmd[0]}") from None
        return (p.stdout or p.stderr).strip().splitlines()[0] if p.returncode == 0 else "?"
    libc = run(["dpkg-query", "-W", "-f=${Version}", "libc6-dev"]).stdout.strip()
    return {
        "gcc": first_line(["gcc", "-dumpfullversion"]),
        "libc6-dev": libc or "?",
        "qemu-img": first_line(["qemu-img", "--version"]),
    }


def stamp_for(pkgs: dict, disk_mib: int) -> dict:
    return {
        "packages": pkgs,
        "inputs": {f: sha256((HERE / f).read_bytes()) for f in INPUT_FILES},
        "tools": tool_versions(),
        "modules": MODULES,
        "disk_mib": disk_mib,
        "cmdline_template": CMDLINE_TEMPLATE,
    }


def up_to_date(out: Path, stamp: dict) -> bool:
    try:
        old = json.loads((out / ".stamp").read_text())
    except (OSError, ValueError):
        return False
    return old == stamp and all((out / o).is_file() for o in OUTPUTS)


def build(out: Path, pkgs: dict, stamp: dict, disk_mib: int) -> dict:
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out) as tmpd:
        tmp = Path(tmpd)
        log(f"downloading {pkgs['kernel']['name']}={pkgs['kernel']['version']} "
            f"and {pkgs['busybox']['name']}={pkgs['busybox']['version']}")
        roots = download_and_extract(pkgs, tmp)
        kroot, broot = roots["kernel"], roots["busybox"]

        vmlinuz = sorted((kroot / "boot").glob("vmlinuz-*"))
        if len(vmlinuz) != 1:
            raise BuildError(f"expected one vmlinuz in {pkgs['kernel']['name']}, got {vmlinuz}")
        release = vmlinuz[0].name[len("vmlinuz-"):]
        moddir = kroot / "lib" / "modules" / release
        if not moddir.is_dir():
            moddir = kroot / "usr" / "lib" / "modules" / release
        if (moddir / "modules.dep").is_file():
            deps = parse_modules_dep((moddir / "modules.dep").read_text())
        else:
            deps = modules_dep_from_tree(moddir)
        builtin_f = moddir / "modules.builtin"
        builtin = {module_name(l) for l in builtin_f.read_text().split()} if builtin_f.exists() else set()
        order = resolve_module_order(MODULES, deps, builtin)
        log(f"kernel {release}; module load order: {' '.join(order)}")
        modules = [(n, read_module(moddir / deps[n][0])) for n in order]

        bb = broot / "bin" / "busybox"
        if not bb.is_file():
            raise BuildError(f"no bin/busybox in {BUSYBOX_PKG}")

        dirty_bin = tmp / "kvmfleet-dirty"
        must(["gcc", "-static", "-O2", "-s", "-Wall", "-o", str(dirty_bin), str(HERE / "dirty.c")])

        initrd = build_initramfs(bb.read_bytes(), dirty_bin.read_bytes(),
                                 (HERE / "init.sh").read_bytes(),
                                 (HERE / "udhcpc.script").read_bytes(), modules)
        (tmp / "initrd.img").write_bytes(initrd)
        shutil.copyfile(vmlinuz[0], tmp / "vmlinuz")

        raw = tmp / "base.raw"
        with open(raw, "wb") as f:
            f.write(DISK_LABEL + b"\n")
            f.truncate(disk_mib * 1024 * 1024)
        must(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(tmp / "base.qcow2")])
        raw.unlink()

        info = {
            "vmlinuz": str(out / "vmlinuz"),
            "initrd": str(out / "initrd.img"),
            "base_image": str(out / "base.qcow2"),
            "base_image_format": "qcow2",
            "base_image_virtual_size": disk_mib * 1024 * 1024,
            "base_image_label": DISK_LABEL.decode(),
            "kernel_release": release,
            "cmdline_template": CMDLINE_TEMPLATE,
            "cmdline_defaults": CMDLINE_DEFAULTS,
            "cmdline_default": CMDLINE_TEMPLATE.format(**CMDLINE_DEFAULTS),
            "console": "ttyS0 (first ISA serial port; libvirt <serial> target port 0)",
            "required_devices": ["virtio-net-pci (eth0, DHCP)", "virtio-blk-pci (vda)",
                                 "virtio-balloon-pci", "isa-serial ttyS0"],
            "accel": "tcg (libvirt type='qemu'); the kernel hangs under nested KVM here",
            "modules": order,
            "markers": ["KVMFLEET-BOOT", "KVMFLEET-MODULES", "KVMFLEET-DISK", "KVMFLEET-IP",
                        "KVMFLEET-BURN", "KVMFLEET-WORKLOAD", "KVMFLEET-DIRTY",
                        "KVMFLEET-STATUS", "KVMFLEET-PING", "KVMFLEET-DHCP", "KVMFLEET-NET"],
            "packages": pkgs,
            "tools": stamp["tools"],
            "sha256": {n: sha256((tmp / n).read_bytes()) for n in ("vmlinuz", "initrd.img", "base.qcow2")},
        }
        (tmp / "guest.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        # stale stamp first, then outputs, then the new stamp: an interrupted
        # build never looks up to date
        (out / ".stamp").unlink(missing_ok=True)
        for name in OUTPUTS:
            os.chmod(tmp / name, 0o644)
            os.replace(tmp / name, out / name)
        st = tmp / ".stamp"
        st.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        os.replace(st, out / ".stamp")
    log(f"built in {time.monotonic() - t0:.1f}s: initrd {len(initrd) // 1024} KiB, "
        f"vmlinuz {os.path.getsize(out / 'vmlinuz') // 1024} KiB")
    return info


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument("--check", action="store_true", help="only report whether outputs are up to date (exit 3 if not)")
    ap.add_argument("--disk-size", type=int, default=DEFAULT_DISK_MIB, metavar="MIB",
                    help=f"virtual size of base.qcow2 in MiB (default {DEFAULT_DISK_MIB})")
    a = ap.parse_args(argv)
    if a.disk_size < 1:
        ap.error("--disk-size must be >= 1")
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    out = a.out.resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / ".lock", "w") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)
            pkgs = resolve_packages()
            stamp = stamp_for(pkgs, a.disk_size)
            if up_to_date(out, stamp) and not a.force:
                log(f"up to date: {out} (kernel {pkgs['kernel']['version']}, busybox {pkgs['busybox']['version']})")
                if not a.check:
                    print(out / "guest.json")
                return 0
            if a.check:
                log(f"stale or missing: {out}")
                return 3
            build(out, pkgs, stamp, a.disk_size)
            print(out / "guest.json")
            return 0
    except BuildError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
