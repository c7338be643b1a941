#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the kvmfleet Debian lab guest: a small bookworm cloud image with cloud-init.

    lab/guest_debian/build.py [--out DIR] [--force] [--check] [--disk-size MIB]

Writes DIR/vmlinuz, DIR/initrd.img, DIR/base.qcow2 and DIR/guest.json
(default DIR: /var/cache/kvmfleet-lab/debian).  The root file system is made
by debootstrap (minbase) from the Debian mirror, then apt-get in the chroot
installs cloud-init, openssh-server, qemu-guest-agent, systemd and the cloud
kernel without recommends.  The image is `mkfs.ext4 -d ROOT` into a sparse raw
file and `qemu-img convert -c` to qcow2: no loop or nbd device is needed, so
it builds inside a container.  Needs root (chroot, file ownership).

The image carries no SSH host keys and no machine-id (each VM makes its own at
first boot), no apt lists or caches; cloud-init looks only for NoCloud (then
None), renders networks for systemd-networkd and prints the new host keys on
the serial console (ttyS0), where callers read them to pin the key.

Idempotent and cached like lab/guest/build.py: DIR/.stamp records the package
versions, the build inputs and the host tools; when it matches and all outputs
exist the build is skipped.  Outputs are replaced atomically, the stamp is
written last, a lock file serialises builds, and the temporary directory
(with anything mounted in it) is removed on error, Ctrl-C and SIGTERM.

Exit status: 0 built or up to date, 1 build error, 2 usage, 3 (--check) stale.
See docs/lab-guest.md for the boot contract (cmdline, devices, console).
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The busybox guest's builder has the subprocess and apt-output helpers; one copy serves both.
TINY_BUILD = HERE.parent / "guest" / "build.py"
_spec = importlib.util.spec_from_file_location("kvmfleet_guest_build", TINY_BUILD)
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)
BuildError, run, must, parse_control, _sigterm = _tiny.BuildError, _tiny.run, _tiny.must, _tiny.parse_control, _tiny._sigterm
DEFAULT_OUT = Path("/var/cache/kvmfleet-lab/debian")
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What the guest is; apt resolves their dependencies (no recommends).
PACKAGES = [
    "systemd", "systemd-sysv", "udev", "dbus", "iproute2", "openssh-server", "sudo",
    "cloud-init", "qemu-guest-agent", "initramfs-tools",
]
KERNEL_META = "linux-image-cloud-amd64"
# Versions recorded in the stamp and guest.json (the packages a caller cares about).
TRACKED = ["cloud-init", "qemu-guest-agent", "openssh-server", "systemd", KERNEL_META]
CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 loglevel=4"
ROOT_LABEL = "kvmfleet-debian"
DEFAULT_DISK_MIB = 2048
OUTPUTS = ["vmlinuz", "initrd.img", "base.qcow2", "guest.json"]
HOST_TOOLS = {"debootstrap": "debootstrap", "mkfs.ext4": "e2fsprogs", "qemu-img": "qemu-utils",
              "chroot": "coreutils", "mount": "mount"}

# ---------------------------------------------------------------- files put in the image
# Each is (path in the image, mode, content); their text is part of the stamp.

CLOUD_CFG = """\
# kvmfleet lab guest: the seed is a NoCloud 'cidata' volume (cloud-localds); nothing else is probed.
datasource_list: [ NoCloud, None ]
# the image's own locale (no locale-gen at first boot) and no DSA host key (OpenSSH 9 refuses it)
locale: C.UTF-8
ssh_genkeytypes: [ ed25519, ecdsa, rsa ]
system_info:
  network:
    renderers: [ networkd ]
    activators: [ networkd ]
"""

# Hot-added vCPUs and memory blocks come up offline; online them (issue 12, test 2).
HOTPLUG_RULES = """\
SUBSYSTEM=="cpu", ACTION=="add", ATTR{online}=="0", ATTR{online}="1"
SUBSYSTEM=="memory", ACTION=="add", ATTR{state}=="offline", ATTR{state}="online"
"""

# Only what a direct-kernel-booted virtio guest needs to mount its root: a small, quick initrd.
INITRAMFS_MODULES = ["virtio_pci", "virtio_blk", "virtio_scsi", "ext4", "crc32c_generic"]
INITRAMFS_CONF = "MODULES=list\nCOMPRESS=gzip\n"

FSTAB = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"
HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
SSHD_CONF = "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n"
DPKG_EXCLUDES = """\
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
"""
IMAGE_FILES = [
    ("etc/cloud/cloud.cfg.d/90_kvmfleet.cfg", 0o644, CLOUD_CFG),
    ("etc/udev/rules.d/80-kvmfleet-hotplug.rules", 0o644, HOTPLUG_RULES),
    ("etc/initramfs-tools/conf.d/kvmfleet.conf", 0o644, INITRAMFS_CONF),
    ("etc/initramfs-tools/modules", 0o644, "".join(m + "\n" for m in INITRAMFS_MODULES)),
    ("etc/fstab", 0o644, FSTAB),
    ("etc/hosts", 0o644, HOSTS),
    ("etc/hostname", 0o644, "localhost\n"),
    ("etc/default/locale", 0o644, "LANG=C.UTF-8\n"),
    ("etc/resolv.conf", 0o644, ""),
    ("etc/ssh/sshd_config.d/kvmfleet.conf", 0o644, SSHD_CONF),
    ("etc/dpkg/dpkg.cfg.d/kvmfleet-nodoc", 0o644, DPKG_EXCLUDES),
]
# Written for the build only, removed before the image is made.
POLICY_RC = "#!/bin/sh\n# no daemon starts in the build chroot\nexit 101\n"
# Units enabled/masked in the image; the guest agent is started by its udev rule when
# the virtio port org.qemu.guest_agent.0 appears, and its unit is checked to exist.
ENABLE_UNITS = ["systemd-networkd.service", "serial-getty@ttyS0.service", "ssh.service"]
MASK_UNITS = ["apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_reap.service",
              "systemd-timesyncd.service"]

# ---------------------------------------------------------------- console host keys

KEYS_BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
KEYS_END = "-----END SSH HOST KEY KEYS-----"
FPS_BEGIN = "-----BEGIN SSH HOST KEY FINGERPRINTS-----"
FPS_END = "-----END SSH HOST KEY FINGERPRINTS-----"
_KEY_RE = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-ssh-ed25519@openssh\.com|"
                     r"sk-ecdsa-sha2-nistp256@openssh\.com)\s+([A-Za-z0-9+/]+={0,2})(?=\s|$)")
_FP_RE = re.compile(r"(\d+)\s+(SHA256:[A-Za-z0-9+/]+)\s+.*\((\w+)\)\s*$")


def log(msg: str) -> None:
    print(f"[debian-guest-build] {msg}", file=sys.stderr, flush=True)


def _block(lines: list[str], begin: str, end: str) -> list[str] | None:
    """Lines of the last complete begin..end block (a reboot prints it again; the last one counts)."""
    found = None
    current = None
    for line in lines:
        if begin in line:
            current = []
        elif end in line and current is not None:
            found, current = current, None
        elif current is not None:
            current.append(line)
    return found


def _key_blob_ok(keytype: str, blob: str) -> bool:
    """An OpenSSH public key blob starts with its own type as an SSH string."""
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError:
        return False
    n = int.from_bytes(raw[:4], "big")
    return len(raw) > 4 + n and raw[4:4 + n] == keytype.encode()


def parse_console_host_keys(text: str) -> list[tuple[str, str]]:
    """[(type, base64 blob)] from cloud-init's SSH HOST KEY KEYS block on a console log.

    Console lines can carry a prefix ('ec2: ', a timestamp) or a carriage return; a key line
    that is cut or interleaved with kernel output does not decode and is dropped, so a caller
    pins only keys that are exactly what the guest printed.  [] when no complete block.
    """
    lines = text.replace("\r", "").split("\n")
    block = _block(lines, KEYS_BEGIN, KEYS_END)
    keys: list[tuple[str, str]] = []
    for line in block or []:
        m = _KEY_RE.search(line)
        if m and _key_blob_ok(m.group(1), m.group(2)) and (m.group(1), m.group(2)) not in keys:
            keys.append((m.group(1), m.group(2)))
    return keys


def parse_console_fingerprints(text: str) -> dict[str, str]:
    """{'ED25519': 'SHA256:...'} from cloud-init's SSH HOST KEY FINGERPRINTS block."""
    lines = text.replace("\r", "").split("\n")
    out: dict[str, str] = {}
    for line in _block(lines, FPS_BEGIN, FPS_END) or []:
        m = _FP_RE.search(line)
        if m:
            out[m.group(3).upper()] = m.group(2)
    return out


def key_fingerprint(blob: str) -> str:
    """OpenSSH SHA256 fingerprint of a base64 public key blob (as ssh-keygen -l prints it)."""
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_lines(host: str, port: int, keys: list[tuple[str, str]]) -> str:
    """known_hosts text pinning keys for host:port ([host]:port unless port 22)."""
    name = host if port == 22 else f"[{host}]:{port}"
    return "".join(f"{name} {t} {b}\n" for t, b in keys)


# ---------------------------------------------------------------- host side helpers

def parse_stanzas(text: str) -> dict[str, str]:
    """apt-cache show output for several packages -> {package: version} (first stanza of each)."""
    out: dict[str, str] = {}
    for stanza in re.split(r"\n\s*\n", text):
        fields = parse_control(stanza)
        if fields.get("Package") and fields.get("Version"):
            out.setdefault(fields["Package"], fields["Version"])
    return out


def resolve_versions(allow_update: bool = True) -> dict[str, str]:
    """Candidate versions of the tracked packages, from the host's apt (same suites as the guest).

    One apt-cache call for all of them: it is most of the time of an up-to-date run.
    """
    p = run(["apt-cache", "show", "--no-all-versions"] + TRACKED)
    found = parse_stanzas(p.stdout or "")
    versions = {pkg: found.get(pkg) for pkg in TRACKED}
    missing = [pkg for pkg, v in versions.items() if not v]
    if missing and allow_update:
        log(f"not in the apt cache ({', '.join(missing)}): running apt-get update once")
        must(["apt-get", "update", "-q"])
        return resolve_versions(allow_update=False)
    if missing:
        raise BuildError(f"not available from apt: {', '.join(missing)}")
    return versions


def tool_versions() -> dict[str, str]:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for tool, pkg in HOST_TOOLS.items():
        if not shutil.which(tool, path=path):
            raise BuildError(f"missing host tool: {tool} (Debian package {pkg}; tools/bootstrap.sh installs it)")
    pkgs = sorted(set(HOST_TOOLS.values()))
    p = run(["dpkg-query", "-W", "-f=${Package} ${Version}\n"] + pkgs)
    found = dict(line.split(" ", 1) for line in (p.stdout or "").splitlines() if " " in line)
    return {pkg: found.get(pkg, "?") for pkg in pkgs}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stamp_for(versions: dict[str, str], tools: dict[str, str], disk_mib: int) -> dict:
    return {
        "suite": SUITE,
        "mirror": MIRROR,
        "packages": PACKAGES + [KERNEL_META],
        "versions": versions,
        "tools": tools,
        "build_py": sha256_file(Path(__file__).resolve()),
        "helpers_py": sha256_file(TINY_BUILD),
        "image_files": {path: hashlib.sha256(text.encode()).hexdigest() for path, _, text in IMAGE_FILES},
        "cmdline": CMDLINE,
        "disk_mib": disk_mib,
    }


def up_to_date(out: Path, stamp: dict) -> bool:
    try:
        old = json.loads((out / ".stamp").read_text())
    except (OSError, ValueError):
        return False
    return old == stamp and all((out / o).is_file() for o in OUTPUTS)


def image_mib(used_kib: int, disk_mib: int) -> int:
    """Virtual size: the asked size, or the tree plus a third and 256 MiB when that is larger."""
    need = (used_kib * 4 // 3) // 1024 + 256
    return max(disk_mib, need)


# ---------------------------------------------------------------- chroot

class Chroot:
    """A root tree with /proc, /sys and /dev bound while apt and update-initramfs run in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounts: list[Path] = []

    def mount(self) -> None:
        # /dev is bound without its submounts (no devpts: apt only warns) and made private,
        # so nothing mounted or unmounted here reaches the host's /dev
        for src, dst, args in (("proc", "proc", ["-t", "proc"]), ("sysfs", "sys", ["-t", "sysfs"]),
                               ("/dev", "dev", ["--bind"])):
            target = self.root / dst
            target.mkdir(parents=True, exist_ok=True)
            must(["mount"] + args + [src, str(target)])
            self.mounts.append(target)
            must(["mount", "--make-private", str(target)])

    def umount(self) -> None:
        while self.mounts:
            target = self.mounts.pop()
            p = run(["umount", str(target)])
            if p.returncode != 0:
                run(["umount", "-l", str(target)])

    def run(self, *cmd: str) -> str:
        return must(["chroot", str(self.root)] + list(cmd))


def write_image_files(root: Path, skip: tuple[str, ...] = ()) -> None:
    for rel, mode, text in IMAGE_FILES:
        if rel in skip:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            path.unlink()
        path.write_text(text)
        os.chmod(path, mode)


def clean_root(root: Path) -> None:
    """What no two VMs may share and what the image does not need."""
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc" / "machine-id").write_text("")
    dbus_id = root / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    for rel in ("usr/sbin/policy-rc.d", "etc/apt/apt.conf.d/99kvmfleet-build"):
        (root / rel).unlink(missing_ok=True)
    for rel in ("var/lib/apt/lists", "var/cache/apt", "var/cache/debconf/tmp", "var/lib/cloud",
                "tmp", "var/tmp", "usr/share/man", "usr/share/info", "usr/share/lintian"):
        empty_dir(root / rel)
    for log_file in (root / "var" / "log").rglob("*"):
        if log_file.is_file() or log_file.is_symlink():
            log_file.unlink()
    for rel in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial"):
        (root / rel).mkdir(parents=True, exist_ok=True)
    # docs of packages debootstrap installed before the dpkg excludes were in place
    doc = root / "usr" / "share" / "doc"
    for pkg in doc.iterdir() if doc.is_dir() else ():
        for child in pkg.iterdir() if pkg.is_dir() and not pkg.is_symlink() else ():
            if child.name != "copyright":
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    loc = root / "usr" / "share" / "locale"
    for child in loc.iterdir() if loc.is_dir() else ():
        if child.name != "locale.alias":
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    for pattern in ("var/cache/ldconfig/aux-cache", "etc/ssh/ssh_host_*"):
        for p in root.glob(pattern):
            p.unlink()


def empty_dir(path: Path) -> None:
    for child in path.iterdir() if path.is_dir() else ():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def installed_versions(root: Path, pkgs: list[str]) -> dict[str, str]:
    out = {}
    for pkg in pkgs:
        p = run(["dpkg-query", "--admindir", str(root / "var" / "lib" / "dpkg"), "-W", "-f=${Version}", pkg])
        out[pkg] = p.stdout.strip() if p.returncode == 0 else ""
    return out


def build_root(root: Path) -> None:
    log(f"debootstrap --variant=minbase {SUITE} (about a minute)")
    must(["debootstrap", "--variant=minbase", SUITE, str(root), MIRROR])
    # the host's apt sources (same registries, incl. security and updates) and its apt tweaks, for the build
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        shutil.copyfile(sources, root / "etc" / "apt" / "sources.list.d" / "debian.sources")
        (root / "etc" / "apt" / "sources.list").write_text("")
    build_conf = Path("/etc/apt/apt.conf.d/99artifact-registry")
    if build_conf.is_file():
        shutil.copyfile(build_conf, root / "etc" / "apt" / "apt.conf.d" / "99kvmfleet-build")
    policy = root / "usr" / "sbin" / "policy-rc.d"
    policy.write_text(POLICY_RC)
    os.chmod(policy, 0o755)
    # resolv.conf stays the host's (debootstrap copied it) until apt is done
    write_image_files(root, skip=("etc/resolv.conf",))
    ch = Chroot(root)
    try:
        ch.mount()
        apt = ["apt-get", "-q", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold"]
        ch.run("apt-get", "-q", "update")
        log("apt-get install " + " ".join(PACKAGES))
        ch.run(*apt, "install", *PACKAGES)
        log(f"apt-get install {KERNEL_META} (initramfs with {', '.join(INITRAMFS_MODULES)})")
        ch.run(*apt, "install", KERNEL_META)
        ch.run("apt-get", "clean")
    finally:
        ch.umount()
    # the packages' postinsts may have rewritten some of these (hostname, resolv.conf)
    write_image_files(root)
    must(["systemctl", "--root", str(root), "enable"] + ENABLE_UNITS)
    must(["systemctl", "--root", str(root), "mask"] + MASK_UNITS)
    if not list(root.glob("lib/systemd/system/qemu-guest-agent.service")) + list(root.glob("usr/lib/systemd/system/qemu-guest-agent.service")):
        raise BuildError("qemu-guest-agent.service missing from the image")
    clean_root(root)


def check_initrd(root: Path, initrd: Path, release: str) -> None:
    """The root device must be mountable from the initrd: virtio_blk and ext4 inside (or built in)."""
    listing = must(["chroot", str(root), "lsinitramfs", "/boot/" + initrd.name])
    builtin_f = root / "lib" / "modules" / release / "modules.builtin"
    builtin = builtin_f.read_text() if builtin_f.is_file() else ""
    for mod in ("virtio_blk", "ext4", "virtio_pci"):
        if not re.search(rf"/{mod}\.ko", listing) and not re.search(rf"/{mod}\.ko", builtin):
            raise BuildError(f"initrd {initrd.name} has no {mod} module and the kernel does not build it in")


def make_image(root: Path, raw: Path, qcow2: Path, disk_mib: int) -> int:
    used_kib = int(must(["du", "-sk", "-x", str(root)]).split()[0])
    mib = image_mib(used_kib, disk_mib)
    with open(raw, "wb") as f:
        f.truncate(mib * 1024 * 1024)
    # -d copies the tree (owners, modes, xattrs, hard links) with no mount; -m 0: no reserved
    # blocks in a one-user VM; 'discard' lets the qcow2 overlays shrink with fstrim.
    must(["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,discard",
          "-d", str(root), str(raw)])
    must(["qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)])
    raw.unlink()
    return mib


def build(out: Path, versions: dict[str, str], stamp: dict, disk_mib: int) -> dict:
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out))
    try:
        root = tmp / "root"
        build_root(root)
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        if len(kernels) != 1:
            raise BuildError(f"expected one kernel in /boot, got {[k.name for k in kernels]}")
        release = kernels[0].name[len("vmlinuz-"):]
        initrd = root / "boot" / f"initrd.img-{release}"
        if not initrd.is_file():
            raise BuildError(f"no {initrd.name}: update-initramfs did not run")
        check_initrd(root, initrd, release)
        shutil.copyfile(kernels[0], tmp / "vmlinuz")
        shutil.copyfile(initrd, tmp / "initrd.img")
        got = installed_versions(root, TRACKED)
        got["kernel"] = installed_versions(root, [f"linux-image-{release}"])[f"linux-image-{release}"]
        if any(got[p] != versions[p] for p in TRACKED):
            log(f"note: installed versions differ from the host's apt cache: {got} vs {versions}")
        t_root = time.monotonic() - t0
        log(f"root tree ready in {t_root:.0f}s; making the image")
        mib = make_image(root, tmp / "base.raw", tmp / "base.qcow2", disk_mib)
        shutil.rmtree(root)
        info = {
            "vmlinuz": str(out / "vmlinuz"),
            "initrd": str(out / "initrd.img"),
            "base_image": str(out / "base.qcow2"),
            "base_image_format": "qcow2",
            "base_image_virtual_size": mib * 1024 * 1024,
            "base_image_file_size": os.path.getsize(tmp / "base.qcow2"),
            "root_label": ROOT_LABEL,
            "suite": SUITE,
            "kernel_release": release,
            "cmdline": CMDLINE,
            "console": "ttyS0 (first ISA serial port; libvirt <serial> target port 0); getty on it",
            "console_markers": {"host_keys": [KEYS_BEGIN, KEYS_END], "fingerprints": [FPS_BEGIN, FPS_END]},
            "required_devices": [
                "virtio-blk-pci: the base image (or an overlay of it) as /dev/vda",
                "NoCloud seed (cloud-localds, label cidata): read-only cdrom on IDE (machine pc) or on virtio-scsi "
                "(q35: the cloud kernel has no AHCI, a SATA cdrom is not seen)",
                "virtio-net-pci: eth0 (net.ifnames=0); DHCP unless network-config says otherwise",
                "virtio-serial with port org.qemu.guest_agent.0: qemu-guest-agent",
                "isa-serial: ttyS0 console",
            ],
            "defaults": {"machine": "pc (i440fx), or q35 with the seed on virtio-scsi", "memory_mib": 512, "min_memory_mib": 256,
                         "default_user": "debian", "accel": "tcg in the lab (nested KVM hangs the kernel here)"},
            "datasource_list": ["NoCloud", "None"],
            "network_renderer": "networkd",
            "versions": got,
            "sha256": {n: sha256_file(tmp / n) for n in ("vmlinuz", "initrd.img", "base.qcow2")},
            "build_seconds": round(time.monotonic() - t0, 1),
        }
        (tmp / "guest.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        # stale stamp first, then outputs, then the new stamp: an interrupted build never looks up to date
        (out / ".stamp").unlink(missing_ok=True)
        for name in OUTPUTS:
            os.chmod(tmp / name, 0o644)
            os.replace(tmp / name, out / name)
        st = tmp / ".stamp"
        st.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        os.replace(st, out / ".stamp")
    finally:
        unmount_leftovers(tmp)
        # never rmtree through a mount still bound into the tree (it would reach the host's /dev)
        if not mounted_under(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"left {tmp}: something is still mounted under it")
    log(f"built in {time.monotonic() - t0:.0f}s: base.qcow2 {info['base_image_file_size'] // (1024 * 1024)} MiB "
        f"(virtual {mib} MiB), initrd {os.path.getsize(out / 'initrd.img') // 1024} KiB")
    return info


def mounted_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(prefix)]


def unmount_leftovers(path: Path) -> None:
    """Mounts a killed build left under its temporary tree (deepest first)."""
    for target in sorted(mounted_under(path), key=len, reverse=True):
        if run(["umount", target]).returncode != 0:
            run(["umount", "-l", target])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    ap.add_argument("--check", action="store_true", help="only report whether outputs are up to date (exit 3 if not)")
    ap.add_argument("--disk-size", type=int, default=DEFAULT_DISK_MIB, metavar="MIB",
                    help=f"virtual size of base.qcow2 in MiB (default {DEFAULT_DISK_MIB}; grown if the tree needs more)")
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
            # a build killed with SIGKILL leaves its tree (and maybe mounts): clear it under the lock
            for old in out.glob(".build-*"):
                unmount_leftovers(old)
                if not mounted_under(old):
                    shutil.rmtree(old, ignore_errors=True)
            versions = resolve_versions()
            stamp = stamp_for(versions, tool_versions(), a.disk_size)
            if up_to_date(out, stamp) and not a.force:
                log(f"up to date: {out} (cloud-init {versions['cloud-init']}, kernel {versions[KERNEL_META]})")
                if not a.check:
                    print(out / "guest.json")
                return 0
            if a.check:
                log(f"stale or missing: {out}")
                return 3
            if os.geteuid() != 0:
                raise BuildError("building needs root (debootstrap, chroot, file ownership in the image)")
            build(out, versions, stamp, a.disk_size)
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
