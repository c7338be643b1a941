# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""create_vm, the patrol and delete_vm run by ansible-runner, AWX's engine, against the lab.

Each job gets a private data directory of its own, laid out as AWX lays one out for a job
(docs/awx.md): project/ (the project's playbooks importing the collection's, its
collections/requirements.yml naming the built tarball, its known_hosts), requirements_collections/
(what AWX's project update installs from collections/requirements.yml), inventory/hosts (an
executable script printing the inventory as JSON), env/extravars (survey answers, as strings
where AWX sends strings), env/envvars, env/settings and env/ssh_key (the Machine credential's key:
ansible-runner hands it to an ssh-agent; no key file in the inventory). Host keys stay pinned by
the project's known_hosts with StrictHostKeyChecking=yes. What runs is ansible-runner itself on
this machine: AWX would run the same inside the execution environment's container.
"""
from __future__ import absolute_import, division, print_function

import json
import shutil
import subprocess
import sys
import time
from ipaddress import ip_address
from pathlib import Path

import ansible_runner
import pytest
import yaml

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
VM = "awx1"

CREATE_VM_TASKS = [
    "Check every value given, with its range",
    "Sample the hypervisor (in parallel across the fleet)",
    "Keep the facts for placement",
    "Check the request and what the fleet already holds",
    "Choose the host",
    "Check the request on the chosen host (image present, sizes within the host) before making anything",
    "Reserve a fixed address with the VM network's DHCP service",
    "Create and start the VM",
    "Wait for the VM's DHCP lease",
    "Put the answer together",
    "Report the VM",
]
PATROL_TASKS = [
    "Check every value given, with its range",
    "Check the patrol's options and thresholds (kvmfleet.iaas.rebalance on no facts)",
    "The state directory",
    "Take the lock (held while this patrol runs)",
    "Note whether this patrol runs",
    "Sample CPU and memory of the host and each VM over the window",
    "Keep the fresh facts",
    "Read the history of earlier runs",
    "Decide (kvmfleet.iaas.rebalance)",
    "Keep the plan",
    "Keep the observation for the next run",
    "The plan",
    "One entry per action (each becomes a host of the play that carries them out)",
    "Collect the results",
    "Put the report together",
    "Report",
    "Release the lock",
    "Every planned action must have been carried out",
]
DELETE_VM_TASKS = [
    "Check every value given, with its range",
    "Look for the VM",
    "Delete the VM and its disk",
    "Remove its address reservations",
    "Put the answer together",
    "Report",
]
PROJECT_PLAYBOOKS = ("create_vm", "patrol", "delete_vm")


class Job:
    """One finished ansible-runner job: its status, rc and events (as AWX stores them)."""

    def __init__(self, runner, private_data_dir, elapsed):
        self.status = runner.status
        self.rc = runner.rc
        self.events = list(runner.events)
        self.stdout = runner.stdout.read()
        self.dir = private_data_dir
        self.env = json.loads(next((private_data_dir / "artifacts").glob("*/command")).read_text())["env"]
        self.elapsed = elapsed

    def of(self, kind):
        return [e for e in self.events if e["event"] == kind]

    def started_tasks(self):
        names = []
        for event in self.of("playbook_on_task_start"):
            name = event["event_data"]["task"]
            if name not in names:
                names.append(name)
        return names

    def ok_result(self, task):
        results = [e["event_data"]["res"] for e in self.of("runner_on_ok") if e["event_data"]["task"] == task]
        assert len(results) == 1, (task, results, self)
        return results[0]

    def __repr__(self):
        return "<job %s rc=%s in %s>\n%s" % (self.status, self.rc, self.dir, self.stdout[-6000:])


def awx_inventory(lab, known_hosts):
    """The lab inventory as AWX's inventory script prints it: groups with host lists, _meta.hostvars.
    The Machine credential brings the key, so the inventory names none; host keys: the project's file."""
    inventory = yaml.safe_load(lab.inventory.read_text())["all"]
    top = dict(inventory["vars"])
    top.pop("ansible_ssh_private_key_file")
    top["ansible_ssh_common_args"] = "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes" % known_hosts
    # ansible-runner (so AWX) sets ANSIBLE_HOST_KEY_CHECKING=False, which puts StrictHostKeyChecking=no
    # before the options above on ssh's command line, where the first value wins: the variable beats it
    top["ansible_host_key_checking"] = True
    data = {"all": {"children": ["ungrouped"] + sorted(inventory["children"]), "vars": top},
            "ungrouped": {"hosts": []}, "_meta": {"hostvars": {}}}
    for group, body in inventory["children"].items():
        data[group] = {"hosts": sorted(body["hosts"]), "vars": body.get("vars") or {}, "children": []}
        for host, host_vars in body["hosts"].items():
            data["_meta"]["hostvars"].setdefault(host, {}).update(host_vars or {})
    return data


@pytest.fixture(scope="module")
def awx(onboarded, tmp_path_factory):
    """A project as AWX syncs it, and a function that runs one job of it in its own private data dir."""
    lab = onboarded
    base = tmp_path_factory.mktemp("awx")
    (base / "ansible.cfg").write_text("[defaults]\n")
    galaxy_env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "ANSIBLE_CONFIG": str(base / "ansible.cfg"),
                  "ANSIBLE_COLLECTIONS_PATH": str(base / "none")}
    subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(base)],
                   check=True, capture_output=True, env=galaxy_env)
    tarball = next(base.glob("kvmfleet-iaas-*.tar.gz"))
    # the project (what AWX checks out of Git): playbooks importing the collection's, its collection
    # requirements, the hypervisors' pinned host keys
    project = base / "project"
    (project / "collections").mkdir(parents=True)
    for name in PROJECT_PLAYBOOKS:
        (project / ("%s.yml" % name)).write_text(
            "---\n- name: Run kvmfleet.iaas.%s\n  ansible.builtin.import_playbook: kvmfleet.iaas.%s\n" % (name, name))
    (project / "ping.yml").write_text("---\n- name: Reach the hypervisors\n  hosts: hypervisors\n  gather_facts: false\n"
                                      "  tasks:\n    - name: Ping\n      ansible.builtin.ping:\n")
    (project / "collections" / "requirements.yml").write_text(
        yaml.safe_dump({"collections": [{"name": str(tarball), "type": "file"}]}))
    shutil.copy(lab.state / "ssh" / "known_hosts", project / "known_hosts")
    # the project update: ansible-galaxy installs collections/requirements.yml next to the project
    collections = base / "requirements_collections"
    subprocess.run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "-r",
                    str(project / "collections" / "requirements.yml"), "-p", str(collections)],
                   check=True, capture_output=True, env=galaxy_env, cwd=str(project))
    assert (collections / "ansible_collections" / "kvmfleet" / "iaas" / "MANIFEST.json").is_file()
    ssh_key = (lab.state / "ssh" / "id_ed25519").read_text()
    jobs = []

    def job(playbook, extravars, known_hosts=None):
        pdd = base / ("job-%d" % (len(jobs) + 1))
        shutil.copytree(project, pdd / "project")
        if known_hosts is not None:
            (pdd / "project" / "known_hosts").write_text(known_hosts)
        shutil.copytree(collections, pdd / "requirements_collections")
        (pdd / "inventory").mkdir()
        hosts = pdd / "inventory" / "hosts"
        hosts.write_text("#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(%r)\n"
                         % json.dumps(awx_inventory(lab, pdd / "project" / "known_hosts")))
        hosts.chmod(0o700)
        env = pdd / "env"
        env.mkdir()
        (env / "extravars").write_text(yaml.safe_dump(extravars))
        (env / "envvars").write_text(yaml.safe_dump({
            "ANSIBLE_COLLECTIONS_PATH": "%s:/usr/share/ansible/collections" % (pdd / "requirements_collections"),
            # the EE's PATH has ansible-playbook; here it is the test's virtualenv
            "PATH": "%s:/usr/bin:/bin" % VENV_BIN,
            "ANSIBLE_FORCE_COLOR": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(pdd / "cp")}))
        (env / "settings").write_text(yaml.safe_dump({"job_timeout": 900, "suppress_ansible_output": True}))
        (env / "ssh_key").write_text(ssh_key)
        (env / "ssh_key").chmod(0o600)
        t0 = time.time()
        runner = ansible_runner.run(private_data_dir=str(pdd), playbook="%s.yml" % playbook, quiet=True)
        done = Job(runner, pdd, time.time() - t0)
        jobs.append((playbook, done.elapsed))
        return done

    awx = type("Awx", (), {})()
    awx.job, awx.lab = job, lab
    awx.volume = base / "persistent-volume"     # the patrol's history outlives a job (docs/awx.md)
    try:
        yield awx
    finally:
        job("delete_vm", {"name": VM, "ignore_unreachable": "true"})
        print("ansible-runner jobs: %s" % ", ".join("%s %.0f s" % j for j in jobs), file=sys.stderr)


def assert_clean(job, tasks):
    assert job.status == "successful" and job.rc == 0, job
    assert not job.of("runner_on_failed") and not job.of("runner_on_unreachable"), job
    started = job.started_tasks()
    assert [t for t in started if t in tasks] == tasks, (started, job)


def test_0_host_keys_stay_pinned_under_ansible_runner(awx):
    """ansible-runner turns host key checking off; the inventory's setting keeps the project's
    known_hosts binding: with each node's line carrying another node's keys, no node is reached."""
    job = awx.job("ping", {})
    assert_clean(job, ["Ping"])
    assert job.env["ANSIBLE_HOST_KEY_CHECKING"] == "False"        # what AWX's engine sets by itself
    lines = (awx.lab.state / "ssh" / "known_hosts").read_text().splitlines()
    names = sorted({line.split()[0] for line in lines})
    keys = {name: [line.split(None, 1)[1] for line in lines if line.split()[0] == name] for name in names}
    swapped = ["%s %s" % (name, key) for name, other in zip(names, names[1:] + names[:1]) for key in keys[other]]
    job = awx.job("ping", {}, known_hosts="\n".join(swapped) + "\n")
    assert job.status == "failed", job
    unreachable = {e["event_data"]["host"]: e["event_data"]["res"].get("msg", "") for e in job.of("runner_on_unreachable")}
    assert sorted(unreachable) == sorted(awx.lab.hosts()), job
    assert all("Host key verification failed" in msg for msg in unreachable.values()), unreachable


def test_1_create_vm_runs_under_ansible_runner_and_its_events_carry_the_address(awx):
    job = awx.job("create_vm", {"name": VM, "vcpus": 1, "memory_mb": 128, "disk_gb": 1,
                                "ip_range": "%s-%s" % (awx.lab.network().network_address + 90,
                                                       awx.lab.network().network_address + 94)})
    assert_clean(job, CREATE_VM_TASKS)
    report = job.ok_result("Report the VM")["kvmfleet_vm_report"]
    assert report["name"] == VM and report["host"] in awx.lab.hosts() and report["state"] == "running", report
    assert ip_address(report["ip"]) in awx.lab.network(), report
    # the address is the reservation's (dhcp_host) and the lease's (dhcp_info), as events show them
    lease = [e["event_data"]["res"] for e in job.of("runner_on_ok") if e["event_data"]["task"] == "Wait for the VM's DHCP lease"]
    assert lease and any(entry["ip"] == report["ip"] for entry in lease[-1]["leases"]), lease
    awx.created = report


def test_2_patrol_dry_run_under_ansible_runner_plans_without_changing_anything(awx):
    created = getattr(awx, "created", None)
    if created is None:
        pytest.skip("create_vm did not run")
    # survey answers arrive as strings (multiple choice) and integers
    job = awx.job("patrol", {"apply": "false", "mode": "balance", "max_moves": 10, "parallel": 2,
                             "hot_observations": 1, "autoscale": "false", "kvmfleet_patrol_sample_seconds": 2,
                             "kvmfleet_patrol_state_dir": str(awx.volume / "kvmfleet-patrol")})
    assert_clean(job, PATROL_TASKS)
    report = job.ok_result("Put the report together")["ansible_facts"]["kvmfleet_patrol_report"]
    assert report["applied"] is False and report["done"] == [] and report["failed"] == [], report
    assert sorted(report["before"]) == sorted(awx.lab.hosts()), report
    plan = job.ok_result("The plan")["msg"]
    assert "dry run: nothing changes" in plan[0], plan
    assert "Record the result" not in job.started_tasks(), job      # no action became a host
    # nothing moved: the VM is where create_vm put it
    where = awx.lab.ansible(created["host"], "ansible.builtin.command", "virsh domstate %s" % VM)
    assert "running" in where.stdout, where.stdout


def test_3_delete_vm_under_ansible_runner(awx):
    if getattr(awx, "created", None) is None:
        pytest.skip("create_vm did not run")
    job = awx.job("delete_vm", {"name": VM})
    assert_clean(job, DELETE_VM_TASKS)
    report = job.ok_result("Report")["kvmfleet_vm_report"]
    assert report["deleted_from"] == [awx.created["host"]] and report["reservations_removed"] == [awx.created["ip"]], report
