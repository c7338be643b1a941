#!/usr/bin/env python3
"""kvmlab: a local lab of real hypervisor nodes for kvmfleet.iaas.

Each node is a systemd-nspawn container booted with systemd as PID 1 on a Linux bridge of the
host, with its own overlay root file system, hostname, machine-id, SSH host keys and address.
Ansible reaches the nodes over real SSH with a lab key; their host keys are generated here and
pinned in a known_hosts file before the nodes ever boot, so nothing is trusted on first use.

    kvmlab.py up [--nodes N]     bring the lab up (idempotent)
    kvmlab.py status             show nodes and addresses
    kvmlab.py down [--keep]      remove every process, mount, interface and rule the lab made
    kvmlab.py ssh NODE [CMD...]  open a shell (or run a command) on a node

Everything the lab makes is recorded in STATE/state.json; `down` undoes exactly that, and
finds the rest by the names and paths the lab owns (never by process-name patterns).
Stdlib only: it runs before any virtualenv exists.
"""

import argparse
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("KVMFLEET_LAB_STATE", "/var/lib/kvmfleet-lab"))
CACHE = Path(os.environ.get("KVMFLEET_LAB_CACHE", "/var/cache/kvmfleet-lab"))
INVENTORY = Path(os.environ.get("KVMFLEET_LAB_INVENTORY", REPO / "inventory" / "lab.yml"))

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What a freshly installed Debian cloud host has: enough for Ansible to reach it. Everything a
# hypervisor needs beyond that is installed by the roles, so onboarding starts from bare nodes.
BASE_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt",
    "iproute2", "iputils-ping", "procps", "ca-certificates",
]
BASE_STAMP = "kvmlab-base-v2 " + SUITE + " " + ",".join(BASE_PACKAGES)

BRIDGE = os.environ.get("KVMFLEET_LAB_BRIDGE", "kvmlab0")
SUBNET = ipaddress.ip_network(os.environ.get("KVMFLEET_LAB_SUBNET", "10.213.0.0/24"))
GATEWAY = SUBNET.network_address + 1
NODE_OFFSET = 10          # node1 is .11
SHARED_IMAGES = "/srv/kvmfleet/images"   # same path on every node, like an NFS mount
NAT_CHAIN = ("KVMLAB-" + BRIDGE)[:28]   # one chain per lab, so two labs can coexist
# Nodes may reach package registries through the host (HTTP/HTTPS and DNS) and nothing else.
NAT_ALLOWED = [("udp", "53"), ("tcp", "53"), ("tcp", "80"), ("tcp", "443")]


def log(msg):
    print("kvmlab: " + msg, flush=True)


def run(cmd, check=True, capture=False, **kw):
    """Run an argument list (never a shell string)."""
    if capture:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
    res = subprocess.run(cmd, check=False, text=True, **kw)
    if check and res.returncode != 0:
        detail = (res.stderr or "").strip() if capture else ""
        raise SystemExit("kvmlab: command failed (%d): %s %s" % (res.returncode, " ".join(cmd), detail))
    return res


# ---------------------------------------------------------------------------- state

def load_state():
    try:
        return json.loads((STATE / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return {"nodes": {}}


def save_state(state):
    STATE.mkdir(parents=True, exist_ok=True)
    tmp = STATE / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(STATE / "state.json")


def node_names(count):
    return ["node%d" % i for i in range(1, count + 1)]


def node_ip(index):
    return str(SUBNET.network_address + NODE_OFFSET + index)


def node_dir(name):
    return STATE / "nodes" / name


# ---------------------------------------------------------------------------- host set-up

HOST_TOOLS = {  # command -> Debian package
    "debootstrap": "debootstrap", "systemd-nspawn": "systemd-container", "iptables": "iptables",
    "ssh-keygen": "openssh-client", "ssh": "openssh-client", "ip": "iproute2", "ping": "iputils-ping",
}


def ensure_host_tools():
    missing = sorted({pkg for cmd, pkg in HOST_TOOLS.items() if shutil.which(cmd) is None})
    if missing:
        log("installing host tools: " + " ".join(missing))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq"] + missing, env=env)


def build_base():
    """Debootstrap the node root file system once; cached under CACHE/rootfs."""
    base = CACHE / "rootfs" / SUITE
    stamp = base / ".kvmlab-stamp"
    if stamp.exists() and stamp.read_text().strip() == BASE_STAMP:
        return base
    tmp = CACHE / "rootfs" / (SUITE + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    log("building the node root file system with debootstrap (once; about a minute)")
    t0 = time.time()
    run(["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
         SUITE, str(tmp), MIRROR], stdout=subprocess.DEVNULL)
    # Each node gets its own host keys and machine-id; none may be shared through the base.
    for key in (tmp / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (tmp / "etc" / "machine-id").write_text("")
    dbus_id = tmp / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    # Use the host's package sources, so nodes install from the same registries as the host.
    for rel in ("etc/apt/sources.list.d/debian.sources", "etc/apt/apt.conf.d/99artifact-registry"):
        src = Path("/") / rel
        if src.exists():
            shutil.copy2(src, tmp / rel)
            if rel.endswith("debian.sources"):
                (tmp / "etc" / "apt" / "sources.list").write_text("")
    run(["systemctl", "--root", str(tmp), "enable", "systemd-networkd.service"], capture=True)
    # Units with nothing to do in a container, masked to keep boots quick and quiet.
    run(["systemctl", "--root", str(tmp), "mask", "e2scrub_reap.service",
         "systemd-timesyncd.service", "apt-daily.timer", "apt-daily-upgrade.timer"], capture=True)
    (tmp / "etc" / "ssh" / "sshd_config.d").mkdir(exist_ok=True)
    (tmp / "etc" / "ssh" / "sshd_config.d" / "kvmlab.conf").write_text(
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
    stamp_tmp = tmp / ".kvmlab-stamp"
    stamp_tmp.write_text(BASE_STAMP + "\n")
    if base.exists():
        shutil.rmtree(base)
    tmp.rename(base)
    log("root file system built in %.0f s" % (time.time() - t0))
    return base


def ensure_ssh_key():
    key = STATE / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kvmlab", "-f", str(key)])
    return key


def ensure_bridge(state):
    exists = run(["ip", "link", "show", BRIDGE], check=False, capture=True).returncode == 0
    if not exists:
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        state["bridge"] = BRIDGE
        save_state(state)
    addr = "%s/%d" % (GATEWAY, SUBNET.prefixlen)
    shown = run(["ip", "-o", "addr", "show", "dev", BRIDGE], capture=True).stdout
    if addr not in shown:
        run(["ip", "addr", "add", addr, "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])


def iptables_rules():
    """The rules the lab adds, as (table, chain, rule) triples."""
    rules = [("nat", "POSTROUTING", ["-s", str(SUBNET), "!", "-o", BRIDGE, "-j", "MASQUERADE"]),
             ("filter", "FORWARD", ["-i", BRIDGE, "-j", NAT_CHAIN]),
             ("filter", "FORWARD", ["-o", BRIDGE, "-m", "conntrack", "--ctstate",
                                    "RELATED,ESTABLISHED", "-j", "ACCEPT"])]
    for proto, port in NAT_ALLOWED:
        rules.append(("filter", NAT_CHAIN, ["-s", str(SUBNET), "!", "-o", BRIDGE, "-p", proto,
                                            "--dport", port, "-j", "ACCEPT"]))
    rules.append(("filter", NAT_CHAIN, ["!", "-o", BRIDGE, "-j", "DROP"]))
    return rules


def ensure_nat(state):
    if "ip_forward_before" not in state:
        state["ip_forward_before"] = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
        save_state(state)
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    if run(["iptables", "-n", "-L", NAT_CHAIN], check=False, capture=True).returncode != 0:
        run(["iptables", "-N", NAT_CHAIN])
    for table, chain, rule in iptables_rules():
        if run(["iptables", "-t", table, "-C", chain] + rule, check=False, capture=True).returncode:
            run(["iptables", "-t", table, "-A", chain] + rule)
    state["nat"] = True
    save_state(state)


def bridge_ports():
    """Interfaces enslaved to the lab bridge (the nodes' host-side veths)."""
    res = run(["ip", "-o", "link", "show", "master", BRIDGE], check=False, capture=True)
    return [line.split(":")[1].strip().split("@")[0] for line in res.stdout.splitlines() if ":" in line]


def remove_nat(state):
    if shutil.which("iptables") is None:
        return
    for table, chain, rule in reversed(iptables_rules()):
        while run(["iptables", "-t", table, "-C", chain] + rule, check=False, capture=True).returncode == 0:
            run(["iptables", "-t", table, "-D", chain] + rule)
    if run(["iptables", "-n", "-L", NAT_CHAIN], check=False, capture=True).returncode == 0:
        run(["iptables", "-X", NAT_CHAIN])
    before = state.get("ip_forward_before")
    if before is not None:
        Path("/proc/sys/net/ipv4/ip_forward").write_text(before + "\n")


# ---------------------------------------------------------------------------- nodes

def mounted(path):
    target = str(path)
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


def prepare_node(name, index, base, count, pubkey):
    ndir = node_dir(name)
    root, upper, work = ndir / "root", ndir / "upper", ndir / "work"
    for d in (root, upper, work):
        d.mkdir(parents=True, exist_ok=True)
    if not mounted(root):
        run(["mount", "-t", "overlay", "overlay", "-o",
             "lowerdir=%s,upperdir=%s,workdir=%s" % (base, upper, work), str(root)])
    etc = root / "etc"
    (etc / "hostname").write_text(name + "\n")
    machine_id = etc / "machine-id"
    if len(machine_id.read_text().strip()) != 32:
        # Distinct machine-ids give distinct libvirt host UUIDs, which migration requires.
        machine_id.write_text(secrets.token_hex(16) + "\n")
    hosts = ["127.0.0.1\tlocalhost", "127.0.1.1\t%s" % name, "%s\tkvmlab-gateway" % GATEWAY]
    hosts += ["%s\t%s" % (node_ip(i), n) for i, n in enumerate(node_names(count), start=1)]
    (etc / "hosts").write_text("\n".join(hosts) + "\n")
    netdir = etc / "systemd" / "network"
    netdir.mkdir(parents=True, exist_ok=True)
    # The lab's first-boot network. The bridge role's files sort before it and take over host0,
    # moving this address onto the VM bridge.
    (netdir / "10-host0.network").write_text(
        "[Match]\nName=host0\n\n[Network]\nAddress=%s/%d\nGateway=%s\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n" % (node_ip(index), SUBNET.prefixlen, GATEWAY))
    # The host's resolver, reached through the lab's NAT, resolves the package registries.
    resolv = etc / "resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    shutil.copy2("/etc/resolv.conf", resolv)
    ssh = root / "root" / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh / "authorized_keys").write_text(pubkey)
    os.chmod(ssh / "authorized_keys", 0o600)
    if not (etc / "ssh" / "ssh_host_ed25519_key").exists():
        run(["ssh-keygen", "-q", "-A", "-f", str(root)])
    return root


def machine_name(name):
    """nspawn machine name; prefixed by the bridge so two labs' host-side veths differ."""
    return "%s-%s" % (BRIDGE, name)


def pid_is_our_nspawn(pid, name):
    """True when PID is the systemd-nspawn the lab started for NAME (checked, not guessed)."""
    try:
        cmdline = Path("/proc/%d/cmdline" % pid).read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return (bool(cmdline) and cmdline[0].endswith(b"systemd-nspawn")
            and ("--machine=" + machine_name(name)).encode() in cmdline)


def start_node(name, root, shared):
    ndir = node_dir(name)
    cmd = ["systemd-nspawn", "-D", str(root), "--machine=" + machine_name(name), "--register=no", "--keep-unit",
           "--boot", "--network-bridge=" + BRIDGE, "--capability=all", "--console=read-only",
           "--bind=%s:%s" % (shared, SHARED_IMAGES),
           # nspawn's seccomp filter denies open_by_handle_at, which nfs-ganesha's VFS backend
           # needs for every file it serves (the nodes already have every capability).
           "--system-call-filter=open_by_handle_at"]
    for dev in ("/dev/kvm", "/dev/net/tun"):
        if os.path.exists(dev):
            cmd.append("--bind=" + dev)
    logf = open(ndir / "console.log", "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                            start_new_session=True)
    logf.close()
    return proc.pid


def wait_for_ssh(ip, deadline):
    while time.time() < deadline:
        try:
            with socket.create_connection((ip, 22), timeout=2) as sock:
                if sock.recv(4).startswith(b"SSH"):
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def ssh_base(key):
    known = STATE / "ssh" / "known_hosts"
    return ["ssh", "-i", str(key), "-o", "UserKnownHostsFile=" + str(known),
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-o", "LogLevel=ERROR"]


def write_known_hosts(state):
    lines = []
    for name, info in sorted(state["nodes"].items()):
        root = node_dir(name) / "root"
        for pub in sorted((root / "etc" / "ssh").glob("ssh_host_*_key.pub")):
            keytype, key = pub.read_text().split()[:2]
            lines.append("%s,%s %s %s" % (info["ip"], name, keytype, key))
    known = STATE / "ssh" / "known_hosts"
    known.write_text("\n".join(lines) + "\n")


def write_inventory(state, key, guest, debian):
    known = STATE / "ssh" / "known_hosts"
    nodes = sorted(state["nodes"].items(), key=lambda kv: kv[1]["index"])
    first = nodes[0][0]
    out = ["---",
           "# Written by lab/kvmlab.py up; do not edit: the next `up` rewrites it.",
           "all:",
           "  vars:",
           "    ansible_user: root",
           "    ansible_python_interpreter: /usr/bin/python3",
           "    ansible_ssh_private_key_file: %s" % key,
           "    ansible_ssh_common_args: >-",
           "      -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes" % known,
           "    # Also under ansible-runner/AWX, which turn Ansible's host key checking off otherwise.",
           "    ansible_host_key_checking: true",
           "    kvmfleet_lab: true",
           "    kvmfleet_vm_network: %s" % SUBNET,
           "    kvmfleet_vm_gateway: %s" % GATEWAY,
           "    kvmfleet_image_dir: %s" % SHARED_IMAGES,
           "    # Lab guests run under TCG: guest kernels hang under nested KVM on these machines.",
           "    kvmfleet_virt_type: qemu",
           "    kvm_virt_type: qemu",
           "    # libvirtd in a container cannot create cgroup v1 controllers.",
           "    kvm_qemu_cgroup_controllers: []",
           "    # The lab guest (lab/guest): direct kernel boot, DHCP on its virtio NIC, serial markers.",
           "    kvmfleet_lab_guest:",
           "      image: %s" % guest["base.qcow2"],
           "      kernel: %s" % guest["vmlinuz"],
           "      initrd: %s" % guest["initrd.img"],
           "      cmdline: console=ttyS0 loglevel=4",
           "    # The Debian cloud guest (lab/guest_debian): cloud-init from the VM's seed, sshd, guest",
           "    # agent; user debian with the seed's keys, host keys on the console (docs/lab-guest.md).",
           "    kvmfleet_lab_debian:",
           "      image: %s" % debian["base.qcow2"],
           "      kernel: %s" % debian["vmlinuz"],
           "      initrd: %s" % debian["initrd.img"],
           "      cmdline: %s" % debian["info"]["cmdline"],
           "      user: %s" % debian["info"]["defaults"]["default_user"],
           "      disk_gb: %d" % -(-debian["info"]["base_image_virtual_size"] // 1024 ** 3),
           "      memory_mb: %d" % debian["info"]["defaults"]["memory_mib"],
           "    # create_vm.yml boots the lab guest unless a request says otherwise.",
           "    kvmfleet_vm_defaults:",
           "      image: %s" % guest["base.qcow2"],
           "      kernel: %s" % guest["vmlinuz"],
           "      initrd: %s" % guest["initrd.img"],
           "      cmdline: console=ttyS0 loglevel=4",
           "    # Every node sees the whole machine's CPUs in /proc/stat, so its own counters show the",
           "    # machine's load: a node's CPU is measured from its own VMs instead.",
           "    kvmfleet_cpu_source: vms",
           "    # The image store is one host directory bind-mounted at the same path on every node: as",
           "    # shared as NFS, but libvirt only trusts real shared file systems, so migrations say why.",
           "    kvmfleet_migration_unsafe_reason: lab image store is one host directory bind-mounted on every node",
           "    # The patrol (same CPU source) calls a node hot above 35 % of its 2 CPUs: lab guests share the",
           "    # machine's 2 cores, so two busy ones on a node exceed it and one stays under (docs/patrol.md).",
           "    kvmfleet_patrol_cpu_threshold: 35",
           "    bridge_uplink: host0",
           "    bridge_name: br0",
           "    dhcp_interface: br0",
           "    dhcp_range_start: %s" % (SUBNET.network_address + 100),
           "    dhcp_range_end: %s" % (SUBNET.network_address + 199),
           "    dhcp_gateway: %s" % GATEWAY,
           "    # The lab kernel has no NFS client or server: nfs-ganesha exports the shared image",
           "    # directory (ext4 through the bind mount; the overlay root gives no file handles) and",
           "    # the hypervisors keep the bind mount as their share instead of mounting it.",
           "    nfs_server_backend: ganesha",
           "    nfs_export_path: %s" % SHARED_IMAGES,
           "    nfs_ganesha_graceless: true",
           "    nfs_client_mount: false",
           "    # Short Ganglia intervals, so tests see RRDs advance within a minute.",
           "    ganglia_collect_every: 10",
           "    ganglia_time_threshold: 20",
           "    ganglia_gmetad_interval: 15",
           "    ganglia_vm_interval: 10",
           "    ganglia_vm_timeout: 5",
           "  children:",
           "    hypervisors:",
           "      hosts:"]
    for name, info in nodes:
        out += ["        %s:" % name, "          ansible_host: %s" % info["ip"]]
    for group in ("dhcp_server", "ganglia_collector", "nfs_server"):
        out += ["    %s:" % group, "      hosts:", "        %s:" % first]
    INVENTORY.parent.mkdir(parents=True, exist_ok=True)
    INVENTORY.write_text("\n".join(out) + "\n")


# The lab's guests: (builder, cache directory, name in the image store). The busybox guest
# (lab/guest) serves the load and migration tests; the Debian cloud guest (lab/guest_debian:
# cloud-init, sshd, guest agent) the tests where a customer logs in.
GUESTS = {
    "busybox": (REPO / "lab" / "guest" / "build.py", CACHE / "guest", "lab-guest"),
    "debian": (REPO / "lab" / "guest_debian" / "build.py", CACHE / "debian", "lab-debian"),
}


def publish_guest(shared, kind="busybox"):
    """Build a lab guest (cached) and put it in the shared image store the nodes see.

    The base image sits at the top of the store, so it is a volume of the nodes' storage pool;
    kernel and initrd go to boot/. A file already there with the cache's size and no older
    mtime is kept, so a warm `up` copies nothing. Returns the paths as the nodes see them, and
    the build's guest.json under "info".
    """
    builder, cache, name = GUESTS[kind]
    t0 = time.time()
    run([sys.executable, str(builder), "--out", str(cache)], stdout=subprocess.DEVNULL)
    if time.time() - t0 > 10:
        log("%s guest built in %.0f s (cached in %s)" % (kind, time.time() - t0, cache))
    boot = shared / "boot"
    boot.mkdir(exist_ok=True)
    placed = {}
    for src, rel in (("base.qcow2", name + ".qcow2"), ("vmlinuz", "boot/%s.vmlinuz" % name),
                     ("initrd.img", "boot/%s.initrd" % name)):
        dest = shared / rel
        source = cache / src
        if not dest.exists() or dest.stat().st_size != source.stat().st_size \
                or dest.stat().st_mtime < source.stat().st_mtime:
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.copy2(source, tmp)
            os.chmod(tmp, 0o644)
            tmp.replace(dest)
        placed[src] = "%s/%s" % (SHARED_IMAGES, rel)
    placed["info"] = json.loads((cache / "guest.json").read_text())
    return placed


def cmd_up(args):
    if os.geteuid() != 0:
        raise SystemExit("kvmlab: run as root (containers, bridges and mounts need it)")
    t0 = time.time()
    ensure_host_tools()
    state = load_state()
    old = set(state["nodes"])
    wanted = node_names(args.nodes)
    if old - set(wanted):
        raise SystemExit("kvmlab: the lab runs %s; `down` first to change the node count"
                         % ", ".join(sorted(old)))
    base = build_base()
    key = ensure_ssh_key()
    pubkey = Path(str(key) + ".pub").read_text()
    ensure_bridge(state)
    ensure_nat(state)
    shared = STATE / "shared" / "images"
    shared.mkdir(parents=True, exist_ok=True)
    guest = publish_guest(shared)
    debian = publish_guest(shared, "debian")
    started = []
    for index, name in enumerate(wanted, start=1):
        info = state["nodes"].get(name, {})
        if info.get("pid") and pid_is_our_nspawn(info["pid"], name):
            continue
        root = prepare_node(name, index, base, args.nodes, pubkey)
        pid = start_node(name, root, shared)
        state["nodes"][name] = {"index": index, "ip": node_ip(index), "pid": pid}
        save_state(state)
        started.append(name)
    write_known_hosts(state)
    deadline = time.time() + args.timeout
    for name in wanted:
        ip = state["nodes"][name]["ip"]
        if not wait_for_ssh(ip, deadline):
            raise SystemExit("kvmlab: %s (%s) did not answer SSH in %d s; see %s"
                             % (name, ip, args.timeout, node_dir(name) / "console.log"))
        res = run(ssh_base(key) + ["root@" + ip, "systemctl", "is-system-running", "--wait"],
                  check=False, capture=True)
        status = res.stdout.strip()
        if status not in ("running", "degraded"):
            raise SystemExit("kvmlab: %s booted to state %r: %s" % (name, status, res.stderr))
    write_inventory(state, key, guest, debian)
    log("up: %s (started %s) in %.1f s; inventory %s"
        % (", ".join(wanted), ", ".join(started) or "none", time.time() - t0, INVENTORY))


def container_init(nspawn_pid):
    """(pid, pid namespace) of the node's init: the child of its nspawn that is PID 1 of a PID
    namespace of its own; None when there is none."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            nspid = fields.get("NSpid", "").split()
            if fields.get("PPid", "").strip() == str(nspawn_pid) and len(nspid) > 1 and nspid[-1] == "1":
                return int(entry.name), os.readlink(entry / "ns" / "pid")
        except OSError:          # the process ended while being read
            continue
    return None


def same_process(init):
    """True while the init found by container_init still runs (same PID, same namespace)."""
    try:
        return os.readlink("/proc/%d/ns/pid" % init[0]) == init[1]
    except OSError:
        return False


def stop_node(name, info, timeout=30):
    pid = info.get("pid")
    if pid and pid_is_our_nspawn(pid, name):
        init = container_init(pid)
        os.kill(pid, signal.SIGTERM)   # nspawn turns SIGTERM into an orderly container shutdown
        deadline = time.time() + timeout
        while time.time() < deadline and pid_is_our_nspawn(pid, name):
            time.sleep(0.2)
        if pid_is_our_nspawn(pid, name):
            log("%s did not shut down in %d s; killing its nspawn (pid %d)" % (name, timeout, pid))
            os.kill(pid, signal.SIGKILL)
            while pid_is_our_nspawn(pid, name):
                time.sleep(0.1)
        # A killed nspawn leaves the node's init running, with whatever it still waited for (a
        # guest that ignores the shutdown request holds libvirt-guests for minutes). Killing that
        # init, found by PID and namespace, ends every process of the node's PID namespace.
        if init and same_process(init):
            log("%s: its init (pid %d) outlived nspawn; killing it and so the node's every process"
                % (name, init[0]))
            os.kill(init[0], signal.SIGKILL)
            deadline = time.time() + 30
            while same_process(init) and time.time() < deadline:
                time.sleep(0.1)
    root = node_dir(name) / "root"
    for _ in range(20):
        if not mounted(root):
            break
        if run(["umount", str(root)], check=False, capture=True).returncode:
            time.sleep(0.5)


def cmd_down(args):
    state = load_state()
    names = set(state["nodes"])
    if (STATE / "nodes").exists():
        names |= {p.name for p in (STATE / "nodes").iterdir()}
    for name in sorted(names):
        stop_node(name, state["nodes"].get(name, {}))
        state["nodes"].pop(name, None)
        save_state(state)
        if not args.keep and not mounted(node_dir(name) / "root"):
            shutil.rmtree(node_dir(name), ignore_errors=True)
    # Only the bridge the lab made, found by its name. Its ports are the nodes' veths, which go
    # when the last process of a node's network namespace has exited; that can lag behind the
    # node's nspawn (QEMU guests take a moment to die), and a leftover veth would block the next
    # `up`. So wait for the ports to go before the bridge, which is how they are found.
    if run(["ip", "link", "show", BRIDGE], check=False, capture=True).returncode == 0:
        deadline = time.time() + 120
        while bridge_ports() and time.time() < deadline:
            time.sleep(0.5)
        left = bridge_ports()
        if left:
            log("veths %s of %s are still there after 120 s; removing them" % (", ".join(left), BRIDGE))
            for port in left:
                run(["ip", "link", "del", port], check=False, capture=True)
        run(["ip", "link", "del", BRIDGE])
    remove_nat(state)
    if not args.keep:
        shutil.rmtree(STATE / "shared", ignore_errors=True)
    for path in (STATE / "state.json", INVENTORY):
        if path.exists():
            path.unlink()
    log("down: no lab process, mount, interface or rule remains")


def cmd_status(_args):
    state = load_state()
    if not state["nodes"]:
        print("lab is down")
        return 1
    print("%-8s %-14s %-8s %s" % ("node", "address", "pid", "state"))
    key = STATE / "ssh" / "id_ed25519"
    worst = 0
    for name, info in sorted(state["nodes"].items(), key=lambda kv: kv[1]["index"]):
        alive = info.get("pid") and pid_is_our_nspawn(info["pid"], name)
        status = "stopped"
        if alive:
            res = run(ssh_base(key) + ["root@" + info["ip"], "systemctl", "is-system-running"],
                      check=False, capture=True)
            status = res.stdout.strip() or "no ssh"
        worst = worst or (status not in ("running", "degraded"))
        print("%-8s %-14s %-8s %s" % (name, info["ip"], info.get("pid", "-"), status))
    print("bridge %s %s/%d; inventory %s" % (BRIDGE, GATEWAY, SUBNET.prefixlen, INVENTORY))
    return 1 if worst else 0


def cmd_ssh(args):
    state = load_state()
    info = state["nodes"].get(args.node)
    if not info:
        raise SystemExit("kvmlab: no node %r in the lab" % args.node)
    key = STATE / "ssh" / "id_ed25519"
    os.execvp("ssh", ssh_base(key) + ["-t" if not args.command else "-T", "root@" + info["ip"]]
              + args.command)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="bring the lab up (idempotent)")
    up.add_argument("--nodes", type=int, default=int(os.environ.get("KVMFLEET_LAB_NODES", "3")))
    up.add_argument("--timeout", type=int, default=180, help="seconds to wait for the nodes")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="remove every process, mount, interface and rule")
    down.add_argument("--keep", action="store_true", help="keep node disks for a faster next up")
    down.set_defaults(func=cmd_down)
    sub.add_parser("status", help="show the nodes").set_defaults(func=cmd_status)
    ssh = sub.add_parser("ssh", help="ssh to a node")
    ssh.add_argument("node")
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    ssh.set_defaults(func=cmd_ssh)
    args = parser.parse_args(argv)
    if args.cmd == "up" and not 1 <= args.nodes <= 50:
        parser.error("--nodes must be between 1 and 50")
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
