"""kvmfleet.iaas.decide runs a filter of the collection as a task: the value on success, the bare
reason as msg on a refusal (no templating wrapper), in one ansible-playbook run on localhost."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.kvmfleet.iaas.plugins.action import decide

REPO = Path(__file__).resolve().parents[4]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

FACTS = {"reachable": True, "hostname": "hv1", "cpus": 4, "memory_mb": 8192, "memory_free_mb": 8000,
         "virt_types": ["kvm"], "storage": {"total_gb": 100, "free_gb": 90},
         "allocated": {"vcpus": 0, "memory_mb": 0, "disk_gb": 0, "domains": 0},
         "utilization": {"cpu_percent": 1.0, "memory_percent": 2.0}, "domains": []}

PLAY = """
- hosts: hv1
  gather_facts: false
  tasks:
    - ansible.builtin.set_fact:
        kvmfleet_hypervisor: %s
- hosts: localhost
  gather_facts: false
  tasks:
    - name: fits
      kvmfleet.iaas.decide:
        place: {request: {name: small, vcpus: 1, memory_mb: 512, disk_gb: 1}, hosts: [hv1]}
      register: fits
    - name: too big
      kvmfleet.iaas.decide:
        place: {request: {name: huge, vcpus: 1, memory_mb: 900000, disk_gb: 1}, hosts: [hv1]}
      register: too_big
      ignore_errors: true
    - name: two decisions
      kvmfleet.iaas.decide:
        place: {request: {name: a}}
        rebalance: {}
      register: two
      ignore_errors: true
    - ansible.builtin.debug:
        msg: "RESULTS {{ {'fits': fits.value.host, 'too_big': too_big.msg, 'details': too_big.details | default({}),
                          'two': two.msg} | to_json }}"
"""


def test_every_filter_module_is_a_decision():
    modules = sorted(p.stem for p in (REPO / "plugins" / "filter").glob("*.py"))
    assert sorted(m.__name__.rsplit(".", 1)[1] for m in decide.FILTER_MODULES) == modules
    assert set(decide.decisions()) >= {"place", "vm_prepare", "rebalance", "patrol_loads", "domain_policy",
                                       "migration_uri", "peer_names", "patrol_record"}


@pytest.mark.skipif(not os.access(str(PLAYBOOK), os.X_OK), reason="no ansible-playbook beside python")
def test_a_refusal_is_the_task_message(tmp_path):
    play = tmp_path / "play.yml"
    play.write_text(PLAY % json.dumps(FACTS))
    inventory = tmp_path / "inv.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {"hv1": {"ansible_connection": "local"}}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build" / "collections"),
               ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_LOCAL_TEMP=str(tmp_path), HOME=str(tmp_path))
    proc = subprocess.run([str(PLAYBOOK), str(play), "-i", str(inventory)], env=env, text=True, capture_output=True,
                          timeout=300, check=False)
    found = re.search(r"^ok: \[localhost\] => (\{\n\s+\"msg\": \"RESULTS .*?\n\})$", proc.stdout, re.M | re.S)
    assert found, proc.stdout + proc.stderr
    results = json.loads(json.loads(found.group(1))["msg"].split(" ", 1)[1])
    assert results["fits"] == "hv1"
    assert results["too_big"].startswith("no host can take huge") and "hv1" in results["too_big"], results
    assert "rejected" in results["details"], results
    assert results["two"].startswith("decide takes one of inputs, domain_policy, migration_uri"), results
    assert "Finalization of task args" not in proc.stdout and "The filter plugin" not in proc.stdout
