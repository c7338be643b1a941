#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvmfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boot the Debian lab guest under qemu TCG with a NoCloud seed and log in over SSH.

    lab/guest_debian/selftest.py [--guest-dir DIR] [--no-build] [--timeout 420]
                                 [--net static|dhcp] [--machine pc|q35] [--log FILE]
                                 [--no-hotplug]

Runs build.py (cached) unless --no-build, then, in a temporary directory:
a fresh ed25519 key (ssh-keygen), a seed made by `cloud-localds` (user-data
with hostname + ssh_authorized_keys, meta-data with instance-id and
local-hostname, and with --net static (default) a network-config v2 giving
eth0 a static address), a qcow2 overlay of base.qcow2, and qemu-system-x86_64
-accel tcg with direct kernel boot, virtio-blk, the seed as an IDE/SATA cdrom,
virtio-net on slirp (restrict=on; one hostfwd from a loopback port to the
guest's sshd), the guest agent channel (virtio-serial port
org.qemu.guest_agent.0 on a unix socket), a QMP socket and the serial console
in a file.  It checks, in order:

  * cloud-init's SSH HOST KEY KEYS block on the console; the keys are pinned in
    a temporary known_hosts (fingerprints cross-checked with the console's)
  * ssh with the fresh key and StrictHostKeyChecking=yes: `hostname` is the seed's
  * the static address (--net static) is the one the guest configured
  * qemu-guest-agent: guest-sync, guest-ping, guest-get-host-name,
    guest-network-get-interfaces (the address is there)
  * a login prompt on ttyS0 (serial getty)
  * vCPU hotplug (QMP device_add) -> nproc 2; memory hotplug (pc-dimm 256 MiB) ->
    MemTotal grows; both onlined by the image's udev rule

Prints a JSON summary (boot-to-SSH time included); exit 0 when all pass.
The qemu it starts is stopped by its own PID (also on failure, Ctrl-C or
SIGTERM; PR_SET_PDEATHSIG covers SIGKILL of this script).  No traffic leaves
the host: slirp restrict=on, the forward listens on 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    """A module by path, under its own name (lab/guest/build.py is also a module called 'build')."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


guest_build = _load("kvmfleet_debian_guest_build", HERE / "build.py")
# QMP client, qemu stop-by-PID and PDEATHSIG from the busybox guest's selftest: one copy serves both
_tiny = _load("kvmfleet_guest_selftest", HERE.parent / "guest" / "selftest.py")
CheckFailed, QMP, stop, _pdeathsig, _sigterm = _tiny.CheckFailed, _tiny.QMP, _tiny.stop, _tiny._pdeathsig, _tiny._sigterm

HOSTNAME = "kvmfg-selftest"
MAC = "52:54:00:12:34:56"
STATIC_ADDR, SLIRP_GW, SLIRP_DNS, SLIRP_DHCP_ADDR = "10.0.2.20", "10.0.2.2", "10.0.2.3", "10.0.2.15"
HOTPLUG_MIB = 256


def user_data(pubkey: str, hostname: str) -> str:
    return ("#cloud-config\n"
            + json.dumps({"hostname": hostname, "ssh_authorized_keys": [pubkey]}, indent=1) + "\n")


def meta_data(instance_id: str, hostname: str) -> str:
    return json.dumps({"instance-id": instance_id, "local-hostname": hostname}) + "\n"


def network_config_static(mac: str, address: str, prefix: int, gateway: str, dns: str) -> str:
    """NoCloud network-config version 2 (JSON is YAML) for one NIC matched by its MAC."""
    cfg = {"version": 2, "ethernets": {"eth0": {
        "match": {"macaddress": mac}, "set-name": "eth0",
        "addresses": [f"{address}/{prefix}"], "gateway4": gateway,
        "nameservers": {"addresses": [dns]}}}}
    return json.dumps(cfg, indent=1) + "\n"


class GuestAgent(QMP):
    """The guest agent speaks QMP's JSON lines, without the greeting and capabilities handshake."""

    def __init__(self, path: Path, timeout: float = 5) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""


def agent_sync(path: Path, timeout: float) -> GuestAgent:
    """Connect to the agent and resynchronise: a 0xFF byte resets its parser (it answers that with a
    parse error, skipped here), then guest-sync echoes our token once the agent listens."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        agent = None
        try:
            agent = GuestAgent(path)
            token = int(time.time() * 1000) % 2**31
            agent.sock.sendall(b"\xff" + json.dumps({"execute": "guest-sync", "arguments": {"id": token}}).encode() + b"\n")
            while time.monotonic() < deadline:
                reply = agent._read()
                if reply.get("return") == token:
                    return agent
        except (OSError, CheckFailed, ValueError) as e:
            last = e
        if agent is not None:
            agent.close()
        time.sleep(1)
    raise CheckFailed(f"guest agent did not answer guest-sync ({last})")


def free_loopback_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Run:
    def __init__(self, args: argparse.Namespace, guest: dict, tmp: Path) -> None:
        self.args = args
        self.guest = guest
        self.tmp = tmp
        self.serial_path = tmp / "serial.log"
        self.proc: subprocess.Popen | None = None
        self.port = free_loopback_port()
        self.guest_addr = STATIC_ADDR if args.net == "static" else SLIRP_DHCP_ADDR
        self.result: dict = {"checks": {}, "net": args.net, "machine": args.machine}
        self.t0 = 0.0
        self.deadline = 0.0

    def ok(self, name: str, detail) -> None:
        self.result["checks"][name] = detail
        print(f"[selftest] ok {name}: {detail}", file=sys.stderr, flush=True)

    def console(self) -> str:
        try:
            return self.serial_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, what: str, pred, interval: float = 1.0):
        while True:
            v = pred()
            if v:
                return v
            if self.proc.poll() is not None:
                raise CheckFailed(f"qemu exited ({self.proc.returncode}) while waiting for {what}")
            if time.monotonic() > self.deadline:
                raise CheckFailed(f"timed out waiting for {what}")
            time.sleep(interval)

    def make_seed(self) -> None:
        t = self.tmp
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kvmfleet-selftest", "-f", str(t / "id")],
                       check=True)
        (t / "user-data").write_text(user_data((t / "id.pub").read_text().strip(), HOSTNAME))
        (t / "meta-data").write_text(meta_data(f"iid-kvmfg-{int(time.time())}", HOSTNAME))
        cmd = ["cloud-localds"]
        if self.args.net == "static":
            (t / "network-config").write_text(network_config_static(MAC, STATIC_ADDR, 24, SLIRP_GW, SLIRP_DNS))
            cmd += ["--network-config", str(t / "network-config")]
        subprocess.run(cmd + [str(t / "seed.iso"), str(t / "user-data"), str(t / "meta-data")], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def qemu_cmd(self) -> list[str]:
        g, t, a = self.guest, self.tmp, self.args
        fwd = f"tcp:127.0.0.1:{self.port}-{self.guest_addr}:22"
        # pc: the seed on the IDE bus (libvirt bus='ide', ata_piix). q35: the cloud kernel has no
        # AHCI driver, so a SATA cdrom is invisible; the seed goes on virtio-scsi (libvirt bus='scsi')
        cdrom = (["-device", "ide-cd,drive=seed0,bus=ide.1"] if a.machine == "pc"
                 else ["-device", "virtio-scsi-pci,id=scsi0", "-device", "scsi-cd,drive=seed0,bus=scsi0.0"])
        return [
            a.qemu, "-accel", "tcg", "-machine", a.machine, "-nodefaults", "-no-user-config",
            "-display", "none", "-cpu", "qemu64",
            "-m", f"{a.memory},slots=2,maxmem={a.memory + 2 * HOTPLUG_MIB}M", "-smp", "1,maxcpus=2",
            "-kernel", g["vmlinuz"], "-initrd", g["initrd"], "-append", g["cmdline"],
            "-drive", f"file={t / 'overlay.qcow2'},if=none,id=disk0,format=qcow2",
            "-device", "virtio-blk-pci,drive=disk0",
            "-drive", f"file={t / 'seed.iso'},if=none,id=seed0,format=raw,media=cdrom,readonly=on",
            *cdrom,
            "-netdev", f"user,id=net0,restrict=on,hostfwd={fwd}",
            "-device", f"virtio-net-pci,netdev=net0,mac={MAC}",
            "-chardev", f"socket,id=qga0,path={t / 'qga.sock'},server=on,wait=off",
            "-device", "virtio-serial-pci", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
            "-serial", f"file:{self.serial_path}",
            "-qmp", f"unix:{t / 'qmp.sock'},server=on,wait=off",
        ]

    def ssh(self, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess:
        t = self.tmp
        return subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(t / "id"), "-p", str(self.port),
             "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
             "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={t / 'known_hosts'}",
             "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
             "debian@127.0.0.1"] + list(cmd),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)

    def execute(self) -> None:
        a, t = self.args, self.tmp
        self.make_seed()
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", self.guest["base_image"],
                        str(t / "overlay.qcow2")], check=True)
        self.t0 = time.monotonic()
        self.deadline = self.t0 + a.timeout
        self.proc = subprocess.Popen(self.qemu_cmd(), stdin=subprocess.DEVNULL, stdout=open(t / "qemu.out", "wb"),
                                     stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)
        self.result["qemu_pid"] = self.proc.pid

        keys = self.wait_for("the SSH HOST KEY KEYS block on the console",
                             lambda: guest_build.parse_console_host_keys(self.console()))
        t_keys = time.monotonic() - self.t0
        fps = guest_build.parse_console_fingerprints(self.console())
        printed = set(fps.values())
        for keytype, blob in keys:
            if printed and guest_build.key_fingerprint(blob) not in printed:
                raise CheckFailed(f"console key {keytype} does not match the console's fingerprints {fps}")
        (t / "known_hosts").write_text(guest_build.known_hosts_lines("127.0.0.1", self.port, keys))
        self.ok("console_host_keys", {"seconds": round(t_keys, 1), "types": [k for k, _ in keys],
                                      "fingerprints": fps})

        def try_ssh():
            try:
                p = self.ssh("hostname", timeout=40)
            except subprocess.TimeoutExpired:
                return None
            if p.returncode == 0:
                return p.stdout.strip()
            if "REMOTE HOST IDENTIFICATION HAS CHANGED" in p.stderr or "Host key verification failed" in p.stderr:
                raise CheckFailed(f"host key not the one pinned from the console: {p.stderr.strip()}")
            return None
        hostname = self.wait_for("an SSH login with the seed's key", try_ssh, interval=2)
        t_ssh = time.monotonic() - self.t0
        self.result["boot_to_ssh_seconds"] = round(t_ssh, 1)
        if hostname != HOSTNAME:
            raise CheckFailed(f"hostname is {hostname!r}, the seed said {HOSTNAME!r}")
        self.ok("ssh_login", {"seconds": round(t_ssh, 1), "hostname": hostname, "strict_host_key_checking": "yes"})

        p = self.ssh("ip -4 -o addr show dev eth0; cloud-init status --wait >/dev/null; cloud-init status; "
                     "cat /proc/sys/kernel/random/boot_id; cat /etc/machine-id", timeout=120)
        if p.returncode not in (0, 2):  # cloud-init status exits 2 on recoverable warnings
            raise CheckFailed(f"guest facts: {p.stderr.strip()}")
        if f"inet {self.guest_addr}/" not in p.stdout:
            raise CheckFailed(f"eth0 has not {self.guest_addr}: {p.stdout.strip()}")
        if "status: done" not in p.stdout:
            raise CheckFailed(f"cloud-init not done: {p.stdout.strip()}")
        machine_id = p.stdout.strip().splitlines()[-1]
        self.ok("guest_network", {"eth0": self.guest_addr, "cloud_init": "done", "machine_id": machine_id})

        agent = agent_sync(t / "qga.sock", timeout=max(5.0, self.deadline - time.monotonic()))
        try:
            agent.cmd("guest-ping")
            agent_host = agent.cmd("guest-get-host-name").get("host-name")
            ifaces = agent.cmd("guest-network-get-interfaces")
            info = agent.cmd("guest-info")
        finally:
            agent.close()
        addrs = sorted(ip["ip-address"] for i in ifaces for ip in i.get("ip-addresses", []))
        if self.guest_addr not in addrs or agent_host != HOSTNAME:
            raise CheckFailed(f"guest agent reports host {agent_host!r}, addresses {addrs}")
        self.ok("guest_agent", {"version": info.get("version"), "host-name": agent_host, "addresses": addrs})

        self.wait_for("a login prompt on ttyS0", lambda: f"{HOSTNAME} login:" in self.console())
        self.ok("serial_getty", f"'{HOSTNAME} login:' on ttyS0")

        if not a.no_hotplug:
            self.hotplug()

    def guest_sizes(self) -> tuple[int, int]:
        p = self.ssh("nproc; grep MemTotal /proc/meminfo")
        if p.returncode != 0:
            raise CheckFailed(f"nproc/meminfo: {p.stderr.strip()}")
        lines = p.stdout.split("\n")
        return int(lines[0]), int(lines[1].split()[1])

    def hotplug(self) -> None:
        qmp = QMP(self.tmp / "qmp.sock")
        try:
            cpus0, mem0 = self.guest_sizes()
            free = [c for c in qmp.cmd("query-hotpluggable-cpus") if "qom-path" not in c]
            if not free:
                raise CheckFailed("no hotpluggable vCPU slot")
            qmp.cmd("device_add", driver=free[0]["type"], id="cpu1", **free[0]["props"])
            qmp.cmd("object-add", **{"qom-type": "memory-backend-ram", "id": "mem1", "size": HOTPLUG_MIB * 1024 * 1024})
            qmp.cmd("device_add", driver="pc-dimm", id="dimm1", memdev="mem1")

            def grown():
                cpus, mem = self.guest_sizes()
                return (cpus, mem) if cpus == cpus0 + 1 and mem >= mem0 + HOTPLUG_MIB * 1024 * 9 // 10 else None
            cpus, mem = self.wait_for("the hot-added vCPU and memory to be online in the guest", grown, interval=2)
            p = self.ssh("cat /sys/devices/system/memory/auto_online_blocks")
            self.ok("hotplug", {"nproc": [cpus0, cpus], "mem_total_kb": [mem0, mem],
                                "kernel_auto_online_blocks": p.stdout.strip()})
        finally:
            qmp.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--guest-dir", type=Path, default=guest_build.DEFAULT_OUT)
    ap.add_argument("--no-build", action="store_true", help="do not run build.py first")
    ap.add_argument("--timeout", type=float, default=420, help="overall limit in seconds (default 420; TCG is slow)")
    ap.add_argument("--net", choices=("static", "dhcp"), default="static",
                    help="static: network-config v2 with a fixed address (default); dhcp: no network-config")
    ap.add_argument("--machine", default="pc", choices=("pc", "q35"))
    ap.add_argument("--memory", type=int, default=512, help="MiB (default 512)")
    ap.add_argument("--no-hotplug", action="store_true")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--log", type=Path, help="copy the serial log here")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    for tool, pkg in ((a.qemu, "qemu-system-x86"), ("qemu-img", "qemu-utils"), ("cloud-localds", "cloud-image-utils"),
                      ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client")):
        if shutil.which(tool) is None:
            print(f"[selftest] {tool} not found (Debian package {pkg}; tools/bootstrap.sh installs it)", file=sys.stderr)
            return 1
    if not a.no_build and guest_build.main(["--out", str(a.guest_dir)]) != 0:
        return 1
    guest = json.loads((a.guest_dir / "guest.json").read_text())

    with tempfile.TemporaryDirectory(prefix="kvmfleet-debian-selftest-") as tmpd:
        run = Run(a, guest, Path(tmpd))
        error = None
        try:
            run.execute()
        except (CheckFailed, OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
            error = f"{type(e).__name__}: {e}"
        except KeyboardInterrupt:
            error = "interrupted"
        finally:
            stop(run.proc)
            if a.log and run.serial_path.exists():
                shutil.copyfile(run.serial_path, a.log)
        run.result["passed"] = error is None
        if error:
            run.result["error"] = error
            qemu_out = Path(tmpd) / "qemu.out"
            print(f"[selftest] FAIL: {error}\n[selftest] serial log tail:\n"
                  + "\n".join(run.console().replace("\r", "").split("\n")[-40:])
                  + "\n[selftest] qemu output:\n" + (qemu_out.read_text(errors="replace") if qemu_out.exists() else ""),
                  file=sys.stderr)
    print(json.dumps(run.result, indent=2, default=str))
    return 0 if error is None else 130 if error == "interrupted" else 1


if __name__ == "__main__":
    sys.exit(main())
