#!/usr/bin/env python3
"""Boot the kvmfleet lab guest under qemu TCG and check its console markers.

    lab/guest/selftest.py [--guest-dir DIR] [--timeout 90] [--no-build]
                          [--burn 1] [--dirty 20] [--dirty-buf 64] [--log FILE]
                          [--net user|tap]

Runs build.py (cached) unless --no-build, then boots DIR/vmlinuz + initrd.img
with qemu-system-x86_64 -accel tcg, user-mode networking with restrict=on
(slirp DHCP only; the guest cannot reach anything outside qemu), virtio-net,
virtio-blk on a temporary qcow2 overlay of base.qcow2, virtio-balloon,
-smp 1,maxcpus=2 and a QMP socket.  It checks, in order:

  * KVMFLEET-IP (DHCP lease) and the boot time to it
  * KVMFLEET-DISK size and label of base.qcow2 through the overlay
  * KVMFLEET-PING of the slirp gateway (ICMP works)
  * KVMFLEET-STATUS lines; with --burn, cpu_busy_pct >= 90
  * KVMFLEET-DIRTY achieved rate within 15% of --dirty
  * the same rate seen by qemu: query-migrate ram.dirty-pages-rate during a
    migration to `exec:cat >/dev/null` (cancelled or resumed afterwards)
  * vCPU hotplug (QMP device_add) -> cpus_online=2
  * balloon (QMP balloon) to 192 MiB -> mem_total_kb drops, then back up

The qemu it starts is always killed by its own PID (also on failure, Ctrl-C
or SIGTERM; PR_SET_PDEATHSIG covers SIGKILL of this script) and the temporary
directory is removed.  Prints a JSON summary; exit 0 when all checks pass.
Network traffic: none leaves the host (slirp restrict=on, no forwards).

--net tap instead puts qemu in a private network namespace (kvmfg<pid>) with a
tap device, busybox udhcpd as DHCP server (like dnsmasq on the lab bridge)
and checks that the guest answers ping from outside it.  The namespace has
no link to anything else; it is deleted at the end.  Needs root.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import build as guest_build  # noqa: E402

MIB = 1024 * 1024
TAP, TAP_NET = "tap0", "192.168.231"
TAP_GW = TAP_NET + ".1"
STATUS_RE = re.compile(r"KVMFLEET-STATUS (.*)")


class CheckFailed(Exception):
    pass


def _pdeathsig() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Serial:
    """Follows the serial log file qemu writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self._partial = ""
        self._pos = 0

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                chunk = f.read()
        except FileNotFoundError:
            return
        self._pos += len(chunk)
        text = self._partial + chunk.decode(errors="replace").replace("\r", "")
        *full, self._partial = text.split("\n")
        self.lines.extend(full)

    def statuses(self, start: int = 0) -> list[dict[str, str]]:
        out = []
        for line in self.lines[start:]:
            m = STATUS_RE.search(line)
            if m:
                out.append(dict(kv.split("=", 1) for kv in m.group(1).split() if "=" in kv))
        return out


class QMP:
    def __init__(self, path: Path, timeout: float = 10) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise CheckFailed("QMP socket did not come up")
                time.sleep(0.1)
        self.buf = b""
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self) -> dict:
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise CheckFailed("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name: str, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise CheckFailed(f"QMP {name}: {r['error']}")
            # asynchronous events are skipped

    def close(self) -> None:
        self.sock.close()


class Run:
    def __init__(self, args: argparse.Namespace, guest: dict, tmp: Path) -> None:
        self.args = args
        self.guest = guest
        self.tmp = tmp
        self.serial = Serial(tmp / "serial.log")
        self.t0 = 0.0
        self.deadline = 0.0
        self.result: dict = {"checks": {}, "net": args.net}
        self.proc: subprocess.Popen | None = None
        self.dhcpd: subprocess.Popen | None = None
        self.netns: str | None = None
        self.gateway = "10.0.2.2" if args.net == "user" else TAP_GW

    def setup_tap(self) -> None:
        """Private netns with tap0 and busybox udhcpd: nothing routes out of it."""
        ns = f"kvmfg{os.getpid()}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        self.netns = ns
        for c in (["link", "set", "lo", "up"], ["tuntap", "add", "dev", TAP, "mode", "tap"],
                  ["addr", "add", f"{TAP_GW}/24", "dev", TAP], ["link", "set", TAP, "up"]):
            subprocess.run(["ip", "-n", ns] + c, check=True)
        conf = self.tmp / "udhcpd.conf"
        conf.write_text(f"start {TAP_NET}.100\nend {TAP_NET}.110\ninterface {TAP}\n"
                        f"lease_file {self.tmp}/udhcpd.leases\npidfile {self.tmp}/udhcpd.pid\n"
                        f"option subnet 255.255.255.0\noption router {TAP_GW}\noption lease 600\n")
        self.dhcpd = subprocess.Popen(["ip", "netns", "exec", ns, "busybox", "udhcpd", "-f", str(conf)],
                                      stdin=subprocess.DEVNULL, stdout=open(self.tmp / "udhcpd.out", "wb"),
                                      stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)

    def teardown(self) -> None:
        stop(self.proc)
        stop(self.dhcpd)
        if self.netns:
            subprocess.run(["ip", "netns", "del", self.netns])

    def wait_for(self, what: str, pred, limit: float | None = None):
        """Poll the serial log until pred(serial) returns a truthy value."""
        end = self.deadline if limit is None else min(self.deadline, time.monotonic() + limit)
        while True:
            self.serial.poll()
            v = pred(self.serial)
            if v:
                return v
            if self.proc.poll() is not None:
                raise CheckFailed(f"qemu exited ({self.proc.returncode}) while waiting for {what}")
            if time.monotonic() > end:
                raise CheckFailed(f"timed out waiting for {what}")
            time.sleep(0.2)

    def ok(self, name: str, detail) -> None:
        self.result["checks"][name] = detail
        print(f"[selftest] ok {name}: {detail}", file=sys.stderr, flush=True)

    def qemu_cmd(self, overlay: Path, qmp: Path) -> list[str]:
        a, g = self.args, self.guest
        cmdline = g["cmdline_template"].format(burn=a.burn, dirty=a.dirty, dirty_buf=a.dirty_buf)
        cmdline += f" kvmfleet.ping={self.gateway}"
        if a.net == "tap":
            prefix = ["ip", "netns", "exec", self.netns]
            net = f"tap,id=n0,ifname={TAP},script=no,downscript=no"
        else:
            prefix = []
            net = "user,id=n0,restrict=on"
        return prefix + [
            a.qemu, "-machine", a.machine, "-accel", "tcg", "-nodefaults", "-display", "none", "-no-user-config",
            "-m", "256", "-smp", "1,maxcpus=2",
            "-kernel", g["vmlinuz"], "-initrd", g["initrd"], "-append", cmdline,
            "-serial", f"file:{self.serial.path}",
            "-netdev", net,
            "-device", "virtio-net-pci,netdev=n0",
            "-drive", f"file={overlay},if=none,id=d0,format=qcow2",
            "-device", "virtio-blk-pci,drive=d0",
            "-device", "virtio-balloon-pci,id=balloon0",
            "-qmp", f"unix:{qmp},server=on,wait=off",
        ]

    def migration_dirty_rate(self, qmp: QMP) -> None:
        """Independent check of the dirtier: qemu's own dirty-page rate.

        Starts a migration to `exec:cat >/dev/null` (nothing leaves the host)
        and reads ram.dirty-pages-rate from query-migrate, i.e. what live
        migration sees.  The migration is cancelled, or, if it converged and
        left the VM paused, the VM is resumed with `cont`.  The rate includes
        the rest of the guest (kernel, status loop): a little above the target.
        """
        a = self.args
        qmp.cmd("migrate-set-parameters", **{"max-bandwidth": max(48, 2 * a.dirty) * MIB, "downtime-limit": 1})
        qmp.cmd("migrate", uri="exec:cat >/dev/null")
        rates, status, t = [], "", time.monotonic()
        try:
            while time.monotonic() - t < 20 and len(rates) < 3:
                time.sleep(1)
                r = qmp.cmd("query-migrate")
                status = r.get("status", "")
                pages = r.get("ram", {}).get("dirty-pages-rate", 0)
                if status == "active" and pages:
                    rates.append(pages * 4096 / MIB)
                if status not in ("setup", "active", "pre-switchover", "device"):
                    break
        finally:
            if status in ("setup", "active", "pre-switchover", "device"):
                qmp.cmd("migrate_cancel")
            if qmp.cmd("query-status").get("status") != "running":
                qmp.cmd("cont")
        if not rates:
            raise CheckFailed(f"no dirty-pages-rate from query-migrate (migration {status})")
        rate = max(rates)
        self.result["migration_dirty_rate_mib_s"] = [round(x, 1) for x in rates]
        # a sync period is 1-2 s: a buffer smaller than ~3 s of dirtying
        # saturates (every page dirty each period) and caps what qemu sees
        if a.dirty_buf >= 3 * a.dirty and not (0.85 * a.dirty <= rate <= 1.3 * a.dirty + 2):
            raise CheckFailed(f"qemu sees {rate:.1f} MiB/s dirtied, target {a.dirty}")
        n = len(self.serial.lines)
        self.wait_for("a status line after the migration check", lambda s: s.statuses(n), 15)
        self.ok("migration_dirty_rate", f"query-migrate dirty-pages-rate {rate:.1f} MiB/s "
                f"(target {a.dirty}; migration {status}, guest running)")

    def execute(self) -> None:
        a, g = self.args, self.guest
        overlay, qmp_path = self.tmp / "overlay.qcow2", self.tmp / "qmp.sock"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", g["base_image"],
                        "-F", "qcow2", str(overlay)], check=True)
        if a.net == "tap":
            self.setup_tap()
        cmd = self.qemu_cmd(overlay, qmp_path)
        self.result["qemu_cmd"] = cmd
        self.t0 = time.monotonic()
        self.deadline = self.t0 + a.timeout
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.tmp / "qemu.out", "wb"),
                                     stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)
        self.result["qemu_pid"] = self.proc.pid

        def find(prefix):
            def pred(s):
                for line in s.lines:
                    i = line.find(prefix)
                    if i >= 0:
                        return line[i + len(prefix):].strip() or True
                return None
            return pred

        ip = self.wait_for("KVMFLEET-IP", find("KVMFLEET-IP "))
        self.result["boot_to_ip_s"] = round(time.monotonic() - self.t0, 1)
        self.ok("dhcp", f"{ip} after {self.result['boot_to_ip_s']} s")

        disk = self.wait_for("KVMFLEET-DISK", find("KVMFLEET-DISK "))
        want = f"vda={g['base_image_virtual_size']} label={g['base_image_label']}"
        if disk != want:
            raise CheckFailed(f"KVMFLEET-DISK {disk!r}, want {want!r}")
        self.ok("disk", disk)

        ping = self.wait_for("KVMFLEET-PING", find("KVMFLEET-PING "), 20)
        if not ping.endswith(" ok"):
            raise CheckFailed(f"KVMFLEET-PING {ping}")
        self.ok("ping", ping)
        if a.net == "tap":
            p = subprocess.run(["ip", "netns", "exec", self.netns, "ping", "-c", "3", "-i", "0.5", "-W", "2", ip],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            summary = [l for l in p.stdout.splitlines() if "packets transmitted" in l]
            if p.returncode != 0:
                raise CheckFailed(f"guest {ip} does not answer ping: {p.stdout.strip()}")
            self.ok("guest_answers_ping", summary[0] if summary else "ok")

        st = self.wait_for("KVMFLEET-STATUS with ip", lambda s: [x for x in s.statuses() if x.get("ip") == ip])
        first = st[-1]
        if first.get("cpus_online") != "1":
            raise CheckFailed(f"cpus_online={first.get('cpus_online')} before hotplug, want 1")
        self.ok("status", first)
        if a.burn:
            st = self.wait_for("a second status line", lambda s: len(s.statuses()) >= 2 and s.statuses())
            busy = int(st[-1]["cpu_busy_pct"])
            if busy < 90:
                raise CheckFailed(f"burn={a.burn} but cpu_busy_pct={busy}")
            self.ok("burn", f"cpu_busy_pct={busy}")

        if a.dirty:
            rates = self.wait_for("KVMFLEET-DIRTY", lambda s: [
                float(m.group(1)) for m in (re.search(r"KVMFLEET-DIRTY rate_mib_s=([0-9.]+)", l) for l in s.lines) if m])
            rate = rates[-1]
            if abs(rate - a.dirty) > 0.15 * a.dirty:
                raise CheckFailed(f"dirty rate {rate} MiB/s, target {a.dirty}")
            self.ok("dirty", f"{rate} MiB/s (target {a.dirty})")

        qmp = QMP(qmp_path)
        try:
            if a.dirty and not a.no_migrate_check:
                self.migration_dirty_rate(qmp)
            if not a.no_hotplug:
                cpus = qmp.cmd("query-hotpluggable-cpus")
                free = [c for c in cpus if "qom-path" not in c]
                if not free:
                    raise CheckFailed("no hotpluggable CPU slot")
                slot = free[0]
                qmp.cmd("device_add", driver=slot["type"], id="hotcpu1", **slot["props"])
                n = len(self.serial.lines)
                t = time.monotonic()
                self.wait_for("cpus_online=2", lambda s: any(x.get("cpus_online") == "2" for x in s.statuses(n)), 30)
                self.ok("cpu_hotplug", f"cpus_online=2 {time.monotonic() - t:.1f} s after device_add {slot['type']}")

            if not a.no_balloon:
                before = int(self.serial.statuses()[-1]["mem_total_kb"])
                target = 192 * MIB
                qmp.cmd("balloon", value=target)
                n = len(self.serial.lines)
                low = self.wait_for("mem_total_kb to drop", lambda s: [
                    int(x["mem_total_kb"]) for x in s.statuses(n) if int(x["mem_total_kb"]) <= before - 48 * 1024], 30)
                actual = qmp.cmd("query-balloon")["actual"]
                self.ok("balloon_inflate", f"mem_total_kb {before} -> {low[-1]}, query-balloon actual={actual // MIB} MiB")
                qmp.cmd("balloon", value=256 * MIB)
                n = len(self.serial.lines)
                high = self.wait_for("mem_total_kb to recover", lambda s: [
                    int(x["mem_total_kb"]) for x in s.statuses(n) if int(x["mem_total_kb"]) >= before - 1024], 30)
                self.ok("balloon_deflate", f"mem_total_kb back to {high[-1]}")
        finally:
            qmp.close()
        self.result["elapsed_s"] = round(time.monotonic() - self.t0, 1)


def stop(proc: subprocess.Popen | None) -> None:
    """Terminate the qemu we started, by its PID only."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--guest-dir", type=Path, default=guest_build.DEFAULT_OUT)
    ap.add_argument("--no-build", action="store_true", help="do not run build.py first")
    ap.add_argument("--timeout", type=float, default=90, help="overall limit in seconds (default 90)")
    ap.add_argument("--burn", type=int, default=1)
    ap.add_argument("--dirty", type=int, default=20, help="MiB/s (0: off)")
    ap.add_argument("--dirty-buf", type=int, default=64,
                    help="MiB (default 64; >= 3 x --dirty for the migration rate check to assert)")
    ap.add_argument("--no-hotplug", action="store_true")
    ap.add_argument("--no-balloon", action="store_true")
    ap.add_argument("--no-migrate-check", action="store_true",
                    help="skip measuring the dirty rate through a migration to /dev/null")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--machine", default="pc", help="qemu machine type (pc or q35)")
    ap.add_argument("--log", type=Path, help="copy the serial log here")
    ap.add_argument("--net", choices=("user", "tap"), default="user",
                    help="user: slirp restrict=on (default); tap: private netns + tap + udhcpd, ping the guest")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)

    if shutil.which(a.qemu) is None or shutil.which("qemu-img") is None:
        print(f"[selftest] {a.qemu} / qemu-img not found (apt-get install qemu-system-x86 qemu-utils)", file=sys.stderr)
        return 1
    if not a.no_build and guest_build.main(["--out", str(a.guest_dir)]) != 0:
        return 1
    guest = json.loads((a.guest_dir / "guest.json").read_text())

    run = None
    rc = 1
    with tempfile.TemporaryDirectory(prefix="kvmfleet-guest-selftest-") as tmpd:
        tmp = Path(tmpd)
        run = Run(a, guest, tmp)
        try:
            run.execute()
            run.result["passed"] = True
            rc = 0
        except (CheckFailed, OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
            run.result["passed"] = False
            run.result["error"] = f"{type(e).__name__}: {e}"
            print(f"[selftest] FAIL: {run.result['error']}", file=sys.stderr)
        except KeyboardInterrupt:
            run.result["passed"] = False
            run.result["error"] = "interrupted"
            rc = 130
        finally:
            run.teardown()
            run.serial.poll()
            if a.log:
                shutil.copyfile(run.serial.path, a.log) if run.serial.path.exists() else None
            if rc != 0:
                tail = "\n".join(run.serial.lines[-40:])
                qout = (tmp / "qemu.out").read_text(errors="replace") if (tmp / "qemu.out").exists() else ""
                print(f"[selftest] serial log tail:\n{tail}\n[selftest] qemu output:\n{qout}", file=sys.stderr)
    print(json.dumps(run.result, indent=2, default=str))
    return rc


if __name__ == "__main__":
    sys.exit(main())
