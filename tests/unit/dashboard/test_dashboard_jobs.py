"""JobRunner with real (harmless) processes; FleetSource with a fake ansible-playbook run."""
import json
import os
import subprocess
import sys

import pytest

from dashboard.fleet import FleetSource
from dashboard.jobs import Busy, JobRunner


def test_job_runs_and_records_output_and_exit_code(tmp_path):
    finished = []
    runner = JobRunner(tmp_path / "jobs", max_running=2, on_finish=finished.append)
    ok = runner.submit([sys.executable, "-c", "print('ok')"], kind="test", label="print ok", owner="s1")
    bad = runner.submit([sys.executable, "-c", "import sys; print('oops', file=sys.stderr); sys.exit(3)"],
                        kind="test", owner="s2")
    assert runner.wait(ok.id, 30) and runner.wait(bad.id, 30)
    assert (ok.state, ok.rc) == ("succeeded", 0) and runner.log(ok.id) == "ok\n"
    assert (bad.state, bad.rc) == ("failed", 3) and "oops" in runner.log(bad.id)
    assert [j.id for j in runner.jobs(owner="s1")] == [ok.id]
    assert {j.id for j in finished} == {ok.id, bad.id}
    assert oct(os.stat(tmp_path / "jobs").st_mode & 0o777) == "0o700"


def test_argv_is_not_a_shell(tmp_path):
    runner = JobRunner(tmp_path / "jobs")
    marker = tmp_path / "pwned"
    job = runner.submit([sys.executable, "-c", "import sys; print(sys.argv[1:])", "x; touch %s" % marker])
    runner.wait(job.id, 30)
    assert "x; touch" in runner.log(job.id) and not marker.exists()
    with pytest.raises(TypeError):
        runner.submit("echo hi")


def test_concurrent_jobs_are_bounded(tmp_path):
    runner = JobRunner(tmp_path / "jobs", max_running=1)
    slow = runner.submit([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(Busy):
            runner.submit([sys.executable, "-c", "print(1)"])
        assert len(runner.jobs()) == 1
    finally:
        assert runner.cancel(slow.id)
    assert runner.wait(slow.id, 30) and slow.state == "failed" and slow.rc == -15
    again = runner.submit([sys.executable, "-c", "print(1)"])
    assert runner.wait(again.id, 30) and again.rc == 0


def test_missing_program_is_a_failed_job(tmp_path):
    runner = JobRunner(tmp_path / "jobs")
    job = runner.submit([str(tmp_path / "no-such-program")])
    assert job.state == "failed" and "could not start" in runner.log(job.id)


def test_cleanup_dirs_removed_when_job_ends(tmp_path):
    upload = tmp_path / "upload"
    upload.mkdir()
    (upload / "image").write_bytes(b"x")
    runner = JobRunner(tmp_path / "jobs")
    job = runner.submit([sys.executable, "-c", "print(1)"], cleanup=[str(upload)])
    runner.wait(job.id, 30)
    assert not upload.exists()


class FakeRun:
    def __init__(self, doc, rc=0):
        self.calls, self.doc, self.rc = [], doc, rc

    def __call__(self, argv, **kw):
        self.calls.append((argv, kw))
        path = argv[argv.index("-e") + 1].split("=", 1)[1]
        if self.doc is not None:
            with open(path, "w") as fh:
                json.dump(self.doc, fh)
        return subprocess.CompletedProcess(argv, self.rc, stdout="PLAY RECAP\n")


def test_fleet_source_runs_the_playbook_and_caches(tmp_path):
    clock = [1000.0]
    run = FakeRun({"hosts": [{"name": "node1"}], "vms": [], "images": []})
    src = FleetSource(tmp_path / "fleet", ansible_playbook="/v/ansible-playbook", inventory="inv.yml", ttl=30,
                      run=run, clock=lambda: clock[0], env={"ANSIBLE_CONFIG": "x"}, background=False)
    doc = src.get()
    assert doc["hosts"] == [{"name": "node1"}] and doc["_source"]["stale"] is False
    argv, kw = run.calls[0]
    assert argv == ["/v/ansible-playbook", "kvmfleet.iaas.fleet_status", "-i", "inv.yml",
                    "-e", "report_file=" + str(tmp_path / "fleet" / "fleet_status.json")]
    assert kw["env"] == {"ANSIBLE_CONFIG": "x"} and "shell" not in kw
    clock[0] += 10
    src.get()
    assert len(run.calls) == 1              # cached
    clock[0] += 25
    src.get()
    assert len(run.calls) == 2              # expired
    src.invalidate()
    src.get()
    assert len(run.calls) == 3


def test_fleet_source_keeps_last_good_report_on_failure(tmp_path):
    clock = [1000.0]
    run = FakeRun({"hosts": [{"name": "node1"}]})
    src = FleetSource(tmp_path / "fleet", run=run, clock=lambda: clock[0], ttl=5, retry_s=10, env={},
                      background=False)
    src.get()
    run.doc, run.rc = None, 2
    clock[0] += 20
    doc = src.get()
    assert doc["hosts"] == [{"name": "node1"}]
    assert doc["_source"]["stale"] and "rc 2" in doc["_source"]["error"]
    clock[0] += 1
    src.get()
    assert len(run.calls) == 2              # not retried before retry_s


def test_ansible_env_points_at_the_checkout_or_the_installed_collection():
    from dashboard.fleet import ansible_env
    from dashboard.devpath_import import COLLECTIONS, INSTALLED, REPO
    env = ansible_env(base={"PATH": "/usr/bin"})
    if INSTALLED:       # the unit tests of an installed copy (tests/unit/test_built_collection.py)
        assert "ANSIBLE_CONFIG" not in env and env["ANSIBLE_COLLECTIONS_PATH"] == str(COLLECTIONS)
    else:
        assert env["ANSIBLE_CONFIG"] == str(REPO / "ansible.cfg")
        assert env["ANSIBLE_COLLECTIONS_PATH"] == str(REPO / ".build" / "collections")
    assert env["PATH"] == "/usr/bin"
