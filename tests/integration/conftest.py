"""Integration tests on the lab: real nodes (systemd-nspawn), real SSH, libvirt, qemu, DHCP.

The suite brings up its own lab (bridge kvmtest0, subnet 10.213.8.0/24, its own state and
inventory), so it neither needs nor disturbs a demo lab, and takes it down at the end, also
when a test fails.
"""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BUILD = REPO / ".build"
# KVMFLEET_TEST_LAB_<X> overrides KVMFLEET_LAB_<X>, so two developers' suites can run at once.
_TEST_LAB_DEFAULTS = {
    "KVMFLEET_LAB_STATE": "/var/lib/kvmfleet-lab-test",
    "KVMFLEET_LAB_BRIDGE": "kvmtest0",
    "KVMFLEET_LAB_SUBNET": "10.213.8.0/24",
    "KVMFLEET_LAB_INVENTORY": str(BUILD / "test-lab.yml"),
}
TEST_LAB_ENV = {key: os.environ.get(key.replace("KVMFLEET_LAB_", "KVMFLEET_TEST_LAB_"), default)
                for key, default in _TEST_LAB_DEFAULTS.items()}
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                   r"\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)", re.M)


class PlaybookRun:
    def __init__(self, proc, elapsed):
        self.rc = proc.returncode
        self.output = proc.stdout
        self.elapsed = elapsed
        self.recap = {m.group(1): dict(zip(("ok", "changed", "unreachable", "failed", "skipped",
                                            "rescued", "ignored"), map(int, m.groups()[1:])))
                      for m in RECAP.finditer(proc.stdout)}

    def changed(self):
        return {host: counts["changed"] for host, counts in self.recap.items()}

    def __repr__(self):
        return "<playbook rc=%s recap=%s>\n%s" % (self.rc, self.recap, self.output[-6000:])


class Lab:
    def __init__(self, env):
        self.env = env
        self.inventory = Path(env["KVMFLEET_LAB_INVENTORY"])
        self.state = Path(env["KVMFLEET_LAB_STATE"])

    def kvmlab(self, *args, check=True):
        return subprocess.run([sys.executable, str(REPO / "lab" / "kvmlab.py")] + list(args),
                              env=self.env, check=check, text=True, capture_output=True)

    def ansible_env(self):
        env = dict(self.env)
        env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   ANSIBLE_INVENTORY=str(self.inventory),
                   ANSIBLE_COLLECTIONS_PATH=str(BUILD / "collections"),
                   ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
                   PATH="%s:%s" % (VENV_BIN, env.get("PATH", "")))
        return env

    def playbook(self, name, *args, check=False):
        """Run a collection playbook by FQCN, as a user would."""
        cmd = [str(VENV_BIN / "ansible-playbook"), "kvmfleet.iaas." + name] + list(args)
        t0 = time.time()
        proc = subprocess.run(cmd, env=self.ansible_env(), text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, cwd=REPO, timeout=1800, check=False)
        run = PlaybookRun(proc, time.time() - t0)
        if check:
            assert run.rc == 0, run
        return run

    def ansible(self, pattern, module, args, check=True):
        cmd = [str(VENV_BIN / "ansible"), pattern, "-m", module, "-a", args]
        proc = subprocess.run(cmd, env=self.ansible_env(), text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, cwd=REPO, timeout=600, check=False)
        if check:
            assert proc.returncode == 0, proc.stdout
        return proc

    def network(self):
        import ipaddress
        return ipaddress.ip_network(self.env["KVMFLEET_LAB_SUBNET"])

    def hosts(self):
        import yaml
        inv = yaml.safe_load(self.inventory.read_text())
        return inv["all"]["children"]["hypervisors"]["hosts"]


@pytest.fixture(scope="session")
def lab():
    if os.geteuid() != 0:
        pytest.fail("the lab needs root: run the suite as root (tests/run does)")
    env = dict(os.environ, **TEST_LAB_ENV)
    lab = Lab(env)
    lab.kvmlab("down", check=False)      # a lab left by a killed run starts over from bare nodes
    try:
        up = lab.kvmlab("up", check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        print(up.stdout, file=sys.stderr)
        yield lab
    finally:
        down = lab.kvmlab("down", check=False)
        print(down.stdout + down.stderr, file=sys.stderr)


@pytest.fixture(scope="session")
def onboarded(lab):
    """The lab after a first onboarding run; the run itself is kept for assertions."""
    run = lab.playbook("setup_node")
    lab.first_onboarding = run
    assert run.rc == 0, run
    return lab
