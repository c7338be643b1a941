"""What a user reads when a playbook is given bad input: the reason itself as the task's message,
before anything runs. Each playbook runs with ansible-playbook against a local inventory whose
only hypervisor cannot be reached (SSH to 127.0.0.1 port 1): a run that got past its checks would
show that host in its recap, so a recap of localhost alone proves nothing ran."""
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
pytestmark = pytest.mark.skipif(not os.access(str(PLAYBOOK), os.X_OK), reason="no ansible-playbook beside python")

WRAPPERS = ("Finalization of task args", "Error while resolving value", "The filter plugin", "Action failed: Task failed")
MO = "migrate_options"

# playbook, extra vars, the message shown (exactly): one or two typical mistakes per playbook;
# tests/unit/plugins/plugin_utils/test_playbook_inputs.py checks every rule without a run.
CASES = [
    ("create_vm", dict(name="web_1", vcpus=1, memory_mb=128, disk_gb=1),
     "name='web_1': must be an RFC 1123 hostname label: lowercase letters, digits and '-', "
     "not starting or ending with '-'"),
    ("create_vm", dict(name="web1", vcpus=1, memory_mb=128, disk_gb=1, address_timeout=0, strategy="best"),
     "address_timeout='0': must be >= 2; strategy='best': must be one of balanced, spread, pack"),
    ("create_vm", dict(name="web1", vcpus=1, memory_mb=128, disk_gb=1, ssh_authorized_keys=["ssh-rsa AAAA"]),
     "ssh_authorized_keys[0]='ssh-rsa AAAA': the key data is truncated"),
    ("create_vm", dict(name="web1", vcpus=1, memory_mb=128, disk_gb=1, user_data="#cloud-config\npassword: x\n"),
     "user_data: sets 'password': passwords in clear are not accepted; log in with ssh_authorized_keys "
     "(a user's hashed passwd is accepted)"),
    ("delete_vm", dict(), "give the VM to delete: -e name=NAME"),
    ("migrate_vm", dict(vm="web1", **{MO: {"bandwidth": -1}}), "migrate_options.bandwidth=-1: must be >= 1"),
    ("evacuate_host", dict(host="hvdead", parallel=0), "parallel='0': must be >= 1"),
    ("scale_vm", dict(vm="web1", memory_mb=-128), "memory_mb='-128': must be >= the site minimum (64 MiB)"),
    ("patrol", dict(mode="tidy"), "mode must be one of balance, consolidate, got 'tidy'"),
    ("patrol", dict(kvmfleet_patrol_cpu_threshold=150),
     "kvmfleet_patrol_cpu_threshold must be a percentage with 0 < value <= 100, or off; got '150' (on hvdead)"),
    ("create_vm", dict(name="web1", vcpus=1, memory_mb=128, disk_gb=1, kvmfleet_cpu_threshold=-5),
     "kvmfleet_cpu_threshold must be a percentage with 0 < value <= 100, or off; got '-5' (on hvdead)"),
    ("patrol", dict(kvmfleet_patrol_sample_seconds=600),
     "kvmfleet_patrol_sample_seconds='600': must be >= 0 and <= 60 (on hvdead)"),
    ("submit_vm", dict(name="web1", image_src="/etc/hostname", vcpus=0), "vcpus='0': must be >= 1"),
    ("fleet_status", dict(sample_seconds=-1), "sample_seconds='-1': must be >= 0 and <= 60"),
    ("fleet_status", dict(tenant="globex"), "tenant='globex': no such tenant (declare it in kvmfleet_tenants)"),
    ("fleet_status", dict(tenant="ac_me"), "tenant='ac_me': must be an RFC 1123 hostname label: lowercase letters, "
                                           "digits and '-', not starting or ending with '-'"),
    ("power_vm", dict(name="web1", state="paused", tenant="acme"), "state='paused': must be one of running, stopped"),
    ("power_vm", dict(state="stopped"), "say which VM and how: -e name=NAME -e state=running|stopped"),
    ("create_vm", dict(name="web1", vcpus=1, memory_mb=128, disk_gb=1, tenant="acme", host="hvdead",
                       ignore_unreachable=True),
     "host is not for a tenant's request: the fleet picks the host; ignore_unreachable is not for a tenant's "
     "request: a tenant's usage is counted over the whole fleet, so every hypervisor must be read"),
    ("create_vm", dict(name="web1", vcpus=1, memory_mb=128, disk_gb=1, tenant="acme", kernel="/srv/kvmfleet/images/x"),
     "kernel is not for a tenant's request: the kernel a VM boots is the operator's (kvmfleet_vm_defaults)"),
    ("submit_vm", dict(name="web1", image_src="/etc/hostname", vcpus=1, tenant="globex"),
     "tenant='globex': no such tenant (declare it in kvmfleet_tenants)"),
    ("submit_vm", dict(name="web1", image_src="/etc/hostname", vcpus=1, tenant="acme", host="hvdead"),
     "host is not for a tenant's request: the fleet picks the host"),
    ("migrate_vm", dict(vm="web1", tenant="acme", target="hvdead"),
     "target is not for a tenant's request: the fleet picks the host"),
    ("delete_vm", dict(name="web1", tenant="globex"), "tenant='globex': no such tenant (declare it in kvmfleet_tenants)"),
    ("scale_vm", dict(vm="web1", vcpus=2, tenant=""), "tenant='': must be a tenant's name; leave it out for the operator's view"),
    ("setup_node", dict(setup_nfs="maybe"), "setup_nfs='maybe': must be true or false"),
    ("graphs", dict(ganglia_graphs_fetch_dir=""), "ganglia_graphs_fetch_dir='': must be a non-empty string"),
]


def _extra(values):
    """-e arguments as a user types them: key=value (strings), JSON for dicts, lists and text of several lines."""
    args = []
    for key, value in values.items():
        as_json = isinstance(value, (dict, list)) or (isinstance(value, str) and "\n" in value)
        args += ["-e", json.dumps({key: value}) if as_json else "%s=%s" % (key, value)]
    return args


def _run(inventory, playbook, values):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_LOCAL_TEMP=str(inventory.parent),
               HOME=str(inventory.parent))
    return subprocess.run([str(PLAYBOOK), "kvmfleet.iaas." + playbook, "-i", str(inventory)] + _extra(values),
                          env=env, cwd=str(REPO), text=True, capture_output=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-input")
    inventory = tmp / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"vars": {"kvmfleet_tenants": {"acme": {}}}, "children": {"hypervisors": {"hosts": {
        "hvdead": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_connection": "ssh"}}}}}}))
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(_run, inventory, playbook, values) for playbook, values, _msg in CASES]
        return [future.result() for future in futures]


def _failure(proc):
    """(host, result) of the one failed task, from the callback's JSON."""
    found = re.findall(r"^fatal: \[(\S+)\]: FAILED! => (\{.*\})$", proc.stdout, re.M)
    assert len(found) == 1, proc.stdout + proc.stderr
    return found[0][0], json.loads(found[0][1])


@pytest.mark.parametrize("index", range(len(CASES)), ids=["%s-%d" % (c[0], i) for i, c in enumerate(CASES)])
def test_the_reason_is_the_message_and_nothing_ran(runs, index):
    playbook, _values, message = CASES[index]
    proc = runs[index]
    assert proc.returncode != 0, proc.stdout
    host, result = _failure(proc)
    assert host == "localhost" and result["msg"] == message, result
    assert not any(wrapper in proc.stdout + proc.stderr for wrapper in WRAPPERS), proc.stdout + proc.stderr
    recap = proc.stdout[proc.stdout.index("PLAY RECAP"):]
    assert "hvdead" not in recap, recap          # no task ran on a hypervisor
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", recap), recap


def test_every_playbook_has_a_case_and_checks_its_input_first():
    playbooks = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))
    assert sorted({c[0] for c in CASES}) == playbooks
    import yaml
    for name in playbooks:
        plays = yaml.safe_load((REPO / "playbooks" / (name + ".yml")).read_text())
        first = plays[0]
        assert first["hosts"] == "localhost", name
        assert first["tasks"][0].get("kvmfleet.iaas.decide") == {"inputs": name}, name
