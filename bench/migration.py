#!/usr/bin/env python3
"""Migration benchmark on the lab, in one run.

1. The module (kvmfleet.iaas.vm_migrate) against plain `virsh migrate` of the same guest, same
   flags: total time and downtime, as a ratio module / virsh (target <= 1.1).
2. Ping continuity: the guest is pinged from the lab host every 50 ms while it moves; lost packets.
3. An idle, a CPU-busy and a memory-busy guest under pre-copy, auto-converge and post-copy,
   each with the same bandwidth cap and timeout (abort), so a busy guest that pre-copy cannot
   finish shows up as "aborted".

    bench/migration.py [--quick] [--json FILE]

Run as root with an onboarded lab (KVMFLEET_LAB_* select it). Uses and removes guests called
bench-*. The helpers (LabNodes, guest XML) are also used by tests/integration/test_migration.py.
"""
import argparse
import json
import os
import random
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
sys.path.insert(0, str(REPO / "tools"))
import devpath  # noqa: E402  (links the checkout as ansible_collections/kvmfleet/iaas)

devpath.ensure_collection_path()

UNSAFE_REASON = ("lab: one host directory bind-mounted at the same path on every node stands in for "
                 "NFS; libvirt cannot recognise it as shared")


class LabNodes:
    """SSH and Ansible access to the nodes of a lab, from its inventory."""

    def __init__(self, inventory):
        import yaml
        self.inventory = Path(inventory)
        inv = yaml.safe_load(self.inventory.read_text())
        allvars = inv["all"]["vars"]
        self.vars = allvars
        self.key = allvars["ansible_ssh_private_key_file"]
        self.ssh_args = allvars["ansible_ssh_common_args"].split()
        self.hosts = {name: (h or {}).get("ansible_host", name)
                      for name, h in inv["all"]["children"]["hypervisors"]["hosts"].items()}
        self.guest = allvars["kvmfleet_lab_guest"]
        self.subnet = allvars["kvmfleet_vm_network"]

    def ssh(self, node, command, input=None, check=True, timeout=120):
        cmd = ["ssh", "-i", self.key, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"] + self.ssh_args + \
              ["root@%s" % self.hosts[node], command]
        proc = subprocess.run(cmd, input=input, text=True, capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError("%s: %s: rc=%s\n%s%s" % (node, command, proc.returncode, proc.stdout, proc.stderr))
        return proc

    def env(self):
        env = dict(os.environ)
        env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_INVENTORY=str(self.inventory),
                   ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
                   ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal",
                   ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
        return env

    def module(self, node, module, args, timeout=900, check=False):
        """Run a module on a node ad hoc (in check mode with `check`); returns (rc, result dict)."""
        cmd = [str(VENV_BIN / "ansible"), node, "-m", module, "-a", json.dumps(args)] + (["--check"] if check else [])
        proc = subprocess.run(cmd, env=self.env(), text=True, capture_output=True, timeout=timeout)
        try:
            result = json.loads(proc.stdout[proc.stdout.index("=>") + 2:])
        except ValueError:
            result = {"failed": True, "msg": proc.stdout + proc.stderr}
        return proc.returncode, result

    def where(self, name):
        """{node: state} of the nodes that define the domain `name`."""
        found = {}
        for node in self.hosts:
            proc = self.ssh(node, "virsh domstate %s" % shlex.quote(name), check=False)
            if proc.returncode == 0:
                found[node] = proc.stdout.strip()
        return found

    def enable_postcopy(self):
        """Lab only: run qemu as root on the nodes so post-copy may use userfaultfd.

        qemu (as libvirt-qemu) gets EPERM from userfaultfd while the machine-wide sysctl
        vm.unprivileged_userfaultfd is 0, and the destination then answers "Postcopy is not
        supported". Rather than change that sysctl for every lab on the machine, the lab's own
        nodes run qemu as root (docs/migration.md). Idempotent; restarts libvirtd only on change
        (running guests keep running).
        """
        assert self.vars.get("kvmfleet_lab"), "only on lab nodes"
        # libvirt cannot label a shared kernel image for qemu as root while a guest started as
        # libvirt-qemu holds it ("Setting different DAC user or group"): say so up front.
        busy = {}
        owner = self.ssh(sorted(self.hosts)[0], "stat -c %%u %s" % shlex.quote(self.guest["kernel"])).stdout.strip()
        for node in self.hosts:
            proc = self.ssh(node, "virsh -q list --name", check=False)
            running = [n for n in proc.stdout.split() if not n.startswith("bench-")]
            if running and owner != "0":
                busy[node] = running
        if busy:
            raise SystemExit("the bench makes the lab's qemu run as root (post-copy), which needs nodes without "
                             "running guests first; delete these (delete_vm.yml): %s"
                             % "; ".join("%s on %s" % (", ".join(v), n) for n, v in sorted(busy.items())))
        for node in self.hosts:
            self.ssh(node, "grep -q '^user = \"root\"' /etc/libvirt/qemu.conf || { printf '%s' >> "
                           "/etc/libvirt/qemu.conf && systemctl restart libvirtd && "
                           "for i in $(seq 30); do virsh -q list >/dev/null 2>&1 && break; sleep 1; done; }"
                     % "\\n# kvmfleet lab: qemu as root, so post-copy may use userfaultfd\\nuser = \"root\"\\n"
                       "group = \"root\"\\n")

    # ---- guests

    def guest_xml(self, name, mac, burn=0, dirty=0, dirty_buf=32, memory_mb=192, group=None):
        from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml import spec as dx
        from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import build_domain_xml
        cmdline = "%s kvmfleet.burn=%d kvmfleet.dirty=%d kvmfleet.dirty_buf=%d kvmfleet.hostname=%s" % (
            self.guest["cmdline"], burn, dirty, dirty_buf, name)
        spec = dx.DomainSpec(
            name=name, vcpus=1, memory_mb=memory_mb, domain_type="qemu",
            kernel=self.guest["kernel"], initrd=self.guest["initrd"], cmdline=cmdline,
            disks=(dx.DiskSpec(path="/srv/kvmfleet/images/%s.qcow2" % name),),
            interfaces=(dx.InterfaceSpec(mac=mac, source="br0"),),
            serial="file", serial_path="/var/log/libvirt/qemu/%s.console" % name, group=group)
        return build_domain_xml(spec)

    def create_guest(self, node, name, mac, wait_ip=True, **workload):
        image = "/srv/kvmfleet/images/%s.qcow2" % name
        self.ssh(node, "rm -f %s && qemu-img create -q -f qcow2 -b %s -F qcow2 %s && "
                       "virsh define /dev/stdin >/dev/null && virsh start %s >/dev/null"
                 % (image, self.guest["image"], image, name), input=self.guest_xml(name, mac, **workload))
        return self.guest_ip(node, name) if wait_ip else None

    def guest_ip(self, node, name, timeout=90):
        """The guest's address from its console marker (the guest prints KVMFLEET-IP)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            proc = self.ssh(node, "cat /var/log/libvirt/qemu/%s.console 2>/dev/null" % name, check=False)
            found = re.findall(r"KVMFLEET-IP (\d+\.\d+\.\d+\.\d+)", proc.stdout)
            if found:
                return found[-1]
            time.sleep(2)
        raise RuntimeError("%s on %s got no address within %s s" % (name, node, timeout))

    def remove_guest(self, name):
        for node in self.hosts:
            self.ssh(node, "virsh destroy %s >/dev/null 2>&1; virsh undefine %s >/dev/null 2>&1; "
                           "rm -f /var/log/libvirt/qemu/%s.console; true" % (name, name, name), check=False)
        first = sorted(self.hosts)[0]
        self.ssh(first, "rm -f /srv/kvmfleet/images/%s.qcow2" % name, check=False)


def mac_for(name):
    import hashlib
    digest = hashlib.sha256(name.encode()).digest()
    return "52:54:00:%02x:%02x:%02x" % (digest[0], digest[1], digest[2])


class Pinger:
    """ping -i 0.05 from the lab host (the guest is on the lab bridge); needs root."""

    def __init__(self, address):
        self.proc = subprocess.Popen(["ping", "-n", "-i", "0.05", "-W", "1", address], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        sent, received = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        seqs = [int(s) for s in re.findall(r"icmp_seq=(\d+)", out)]
        longest = 0
        if seqs:
            # longest run of missing sequence numbers between first and last answer
            prev = seqs[0]
            for s in seqs[1:]:
                longest = max(longest, s - prev - 1)
                prev = s
        return dict(sent=sent, received=received, lost=sent - received, longest_gap_packets=longest,
                    longest_gap_ms=longest * 50)


def other(nodes, node):
    return [n for n in sorted(nodes.hosts) if n != node][0]


def module_migrate(nodes, name, src, dst, **options):
    args = dict(name=name, destination=dst, destination_uri="qemu+ssh://root@%s/system" % nodes.hosts[dst],
                unsafe_reason=UNSAFE_REASON)
    args.update(options)
    t0 = time.monotonic()
    rc, result = nodes.module(src, "kvmfleet.iaas.vm_migrate", args)
    result["wall_s"] = round(time.monotonic() - t0, 2)
    return rc, result


def virsh_migrate(nodes, name, src, dst, extra="", max_downtime_ms=None):
    """Plain virsh migrate with the module's default flags; stats from domjobinfo --completed.

    With ``max_downtime_ms`` the limit is set on the domain first (virsh migrate has no option
    for it), as the module sets it on the job it starts.
    """
    uri = "qemu+ssh://root@%s/system" % nodes.hosts[dst]
    cmd = ("virsh migrate --live --p2p --persistent --undefinesource --abort-on-error --unsafe %s %s %s && "
           "virsh domjobinfo --completed %s 2>/dev/null || true" % (extra, name, uri, name))
    if max_downtime_ms is not None:
        cmd = "virsh migrate-setmaxdowntime %s %d && %s" % (name, max_downtime_ms, cmd)
    t0 = time.monotonic()
    proc = nodes.ssh(src, cmd, check=False, timeout=600)
    wall = time.monotonic() - t0
    stats = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(":")
        stats[key.strip()] = value.strip()
    # --undefinesource removes the domain and its completed stats on the source: read the destination's
    if "Time elapsed" not in stats:
        stats = destination_stats(nodes, dst, name)
    return dict(rc=proc.returncode, total_time_ms=_ms(stats, "Time elapsed"),
                downtime_ms=_ms(stats, "Total downtime"), wall_s=round(wall, 2), err=proc.stderr.strip())


def destination_stats(nodes, dst, name):
    """`virsh domjobinfo --completed` on the destination, as a dict of its lines."""
    stats = {}
    for line in nodes.ssh(dst, "virsh domjobinfo --completed %s" % name, check=False).stdout.splitlines():
        key, _, value = line.partition(":")
        stats[key.strip()] = value.strip()
    return stats


def _ms(stats, key):
    value = stats.get(key)
    return int(value.split()[0]) if value else None


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def bootstrap_ratio_ci(rows, key, resamples=2000, seed=1):
    """95 % bootstrap interval of median(module) / median(virsh) over the rounds.

    Rounds are resampled whole (both tools of a round together: they ran back to back on the
    same machine state). Says how far the ratio of medians can be trusted with this many rounds;
    None with fewer than 4 rounds of both.
    """
    by_round = {}
    for r in rows:
        if r.get(key) is not None:
            by_round.setdefault(r["round"], {})[r["tool"]] = r[key]
    pairs = [v for v in by_round.values() if "module" in v and "virsh" in v]
    if len(pairs) < 4:
        return None
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        sample = [rng.choice(pairs) for _ in pairs]
        virsh = statistics.median(p["virsh"] for p in sample)
        if virsh:
            ratios.append(statistics.median(p["module"] for p in sample) / virsh)
    ratios.sort()
    return [round(ratios[int(0.025 * len(ratios))], 2), round(ratios[int(0.975 * len(ratios)) - 1], 2)]


def bench_compare(nodes, rounds, module_options=None, max_downtime_ms=None):
    """Module vs virsh, same idle guest, ping during each migration (both with the same maximum
    downtime when ``max_downtime_ms`` is given)."""
    module_options = dict(module_options or {})
    if max_downtime_ms is not None:
        module_options["max_downtime"] = max_downtime_ms
    name = "bench-cmp"
    nodes.remove_guest(name)
    a, b = sorted(nodes.hosts)[:2]
    ip = nodes.create_guest(a, name, mac_for(name))
    time.sleep(3)
    rows = []
    where = a
    for i in range(rounds):
        # The order flips every round, so each tool migrates in both directions equally often
        # (the nodes are not alike: node1 also runs the lab's services).
        for tool in (("module", "virsh") if i % 2 == 0 else ("virsh", "module")):
            dst = b if where == a else a
            pinger = Pinger(ip)
            time.sleep(1.0)
            if tool == "module":
                rc, res = module_migrate(nodes, name, where, dst, **module_options)
                # Both tools are judged by the destination's completed-job statistics: the module
                # reports the source's, whose elapsed time also spans the confirm phase.
                st = res.get("stats") or {}
                dest = destination_stats(nodes, dst, name)
                row = dict(tool=tool, round=i, rc=rc, total_time_ms=_ms(dest, "Time elapsed"),
                           downtime_ms=_ms(dest, "Total downtime"), wall_s=res["wall_s"], msg=res.get("msg"),
                           module_reported=dict(total_time_ms=st.get("total_time_ms"),
                                                downtime_ms=st.get("downtime_ms")))
            else:
                row = dict(tool=tool, round=i, **virsh_migrate(nodes, name, where, dst,
                                                               max_downtime_ms=max_downtime_ms))
            time.sleep(1.0)
            row["ping"] = pinger.stop()
            rows.append(row)
            where = dst
            print("  compare", json.dumps(row), file=sys.stderr)
    nodes.remove_guest(name)

    def med(tool, key):
        vals = [r[key] for r in rows if r["tool"] == tool and r.get(key) is not None]
        return statistics.median(vals) if vals else None
    summary = {}
    for key in ("total_time_ms", "downtime_ms", "wall_s"):
        summary[key] = dict(module=med("module", key), virsh=med("virsh", key),
                            ratio=ratio(med("module", key), med("virsh", key)),
                            ci95=bootstrap_ratio_ci(rows, key))
    summary["ping_lost"] = dict(module=sum(r["ping"]["lost"] for r in rows if r["tool"] == "module"),
                                virsh=sum(r["ping"]["lost"] for r in rows if r["tool"] == "virsh"),
                                sent=sum(r["ping"]["sent"] for r in rows))
    return dict(rows=rows, summary=summary)


WORKLOADS = {
    "idle": dict(burn=0, dirty=0, dirty_buf=32),
    "cpu": dict(burn=1, dirty=0, dirty_buf=32),
    # dirties 200 MiB/s of pages cycling through 96 MiB: its whole buffer in every pass, faster
    # than the cap; in proportion to the CPU it gets, so a vCPU throttle slows it
    "memory": dict(burn=0, dirty=200, dirty_buf=96),
}
MODES = {
    "pre-copy": dict(),
    "auto-converge": dict(auto_converge=True, auto_converge_initial=90, auto_converge_increment=9),
    "post-copy": dict(post_copy=True),
}


def bench_matrix(nodes, bandwidth, timeout, workloads, modes):
    rows = []
    a, b = sorted(nodes.hosts)[:2]
    for wl in workloads:
        name = "bench-%s" % wl
        nodes.remove_guest(name)
        ip = nodes.create_guest(a, name, mac_for(name), memory_mb=256 if wl == "memory" else 192, **WORKLOADS[wl])
        time.sleep(6 if wl == "memory" else 2)  # let the dirtier reach its rate
        where = a
        for mode in modes:
            dst = b if where == a else a
            pinger = Pinger(ip)
            time.sleep(0.5)
            rc, res = module_migrate(nodes, name, where, dst, bandwidth=bandwidth, migration_timeout=timeout,
                                     timeout_action="abort", **MODES[mode])
            ping = pinger.stop()
            st = res.get("stats") or {}
            ok = rc == 0 and not res.get("failed")
            row = dict(workload=wl, mode=mode, outcome="migrated" if ok else
                       ("aborted (timeout)" if res.get("aborted") else "failed"),
                       total_time_ms=st.get("total_time_ms"), downtime_ms=st.get("downtime_ms"),
                       data_mib=st.get("data_transferred_mib"), iterations=st.get("memory_iterations"),
                       dirty_rate_mib_s=st.get("dirty_rate_mib_s"),
                       throttle=st.get("auto_converge_throttle_percent"), postcopy=res.get("postcopy"),
                       ping_lost=ping["lost"], ping_sent=ping["sent"], wall_s=res["wall_s"],
                       where_after=nodes.where(name), msg=None if ok else res.get("msg", "")[:300])
            if not ok:
                prog = res.get("progress") or []
                row["last_progress"] = prog[-1] if prog else None
            rows.append(row)
            print("  matrix", json.dumps(row), file=sys.stderr)
            if ok:
                where = dst
        nodes.remove_guest(name)
    return rows


def _round(value):
    return None if value is None else round(value, 2)


def markdown(result):
    out = []
    s = result["compare"]["summary"]
    out.append("| measure (median of %d rounds) | module | virsh migrate | ratio | 95 %% interval of the ratio |"
               % result["rounds"])
    out.append("|---|---|---|---|---|")
    for key in ("total_time_ms", "downtime_ms", "wall_s"):
        ci = s[key].get("ci95")
        out.append("| %s | %s | %s | %s | %s |" % (key, _round(s[key]["module"]), _round(s[key]["virsh"]),
                                                   s[key]["ratio"], "%s-%s" % tuple(ci) if ci else "-"))
    out.append("")
    out.append("Ping every 50 ms during those migrations: %d sent, lost %d (module) and %d (virsh)."
               % (s["ping_lost"]["sent"], s["ping_lost"]["module"], s["ping_lost"]["virsh"]))
    out.append("")
    out.append("| guest | mode | outcome | total ms | downtime ms | data MiB | iterations | dirty MiB/s | "
               "throttle % | ping lost/sent |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in result["matrix"]:
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s/%s |" % (
            r["workload"], r["mode"], r["outcome"], r["total_time_ms"], r["downtime_ms"], r["data_mib"],
            r["iterations"], r["dirty_rate_mib_s"], r["throttle"], r["ping_lost"], r["ping_sent"]))
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", default=os.environ.get("KVMFLEET_LAB_INVENTORY",
                                                              str(REPO / "inventory" / "lab.yml")))
    parser.add_argument("--quick", action="store_true", help="1 comparison round; no CPU-busy guest in the matrix")
    parser.add_argument("--rounds", type=int, default=4, help="comparison rounds (even: both directions alike)")
    parser.add_argument("--compare-only", action="store_true", help="only module vs virsh, no matrix")
    parser.add_argument("--poll-interval", type=float, help="the module's poll_interval in the comparison")
    parser.add_argument("--max-downtime", type=int, metavar="MS",
                        help="the same maximum downtime for both tools in the comparison (default: QEMU's)")
    parser.add_argument("--bandwidth", type=int, default=40, help="MiB/s cap for the matrix")
    parser.add_argument("--timeout", type=float, default=45.0, help="migration_timeout for the matrix (abort)")
    parser.add_argument("--json", help="write the full result here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (ping at 50 ms intervals, the lab)")
    nodes = LabNodes(args.inventory)
    nodes.enable_postcopy()
    rounds = 1 if args.quick else args.rounds
    t0 = time.time()
    result = dict(rounds=rounds, bandwidth=args.bandwidth, timeout=args.timeout, max_downtime_ms=args.max_downtime)
    result["compare"] = bench_compare(nodes, rounds, {} if args.poll_interval is None
                                      else {"poll_interval": args.poll_interval}, max_downtime_ms=args.max_downtime)
    workloads = ["idle", "memory"] if args.quick else list(WORKLOADS)
    result["matrix"] = [] if args.compare_only else bench_matrix(nodes, args.bandwidth, args.timeout, workloads,
                                                                 list(MODES))
    result["elapsed_s"] = round(time.time() - t0, 1)
    text = markdown(result)
    print(text)
    print("\nbench took %.0f s" % result["elapsed_s"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
