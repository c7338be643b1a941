"""Fixtures of the dashboard tests: a sample fleet report, fake job runner, app and a real
HTTP server on 127.0.0.1 (port 0) in a thread."""
import copy
import json
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from dashboard.app import App, Config  # noqa: E402
from dashboard.fleet import FixedFleetSource  # noqa: E402
from dashboard.jobs import Busy, Job  # noqa: E402
from dashboard.server import Server  # noqa: E402

from dashboard_sample import ADMIN_PASSWORD, SAMPLE, Client  # noqa: E402,F401


class FakeJobs:
    """Records what would be launched; launches nothing."""

    def __init__(self, max_running=2):
        self.submitted, self.max_running, self.busy = [], max_running, False
        self._jobs = {}

    def submit(self, argv, kind="job", label="", owner=None, cleanup=()):
        if self.busy:
            raise Busy("busy")
        job = Job("%04d-%s" % (len(self.submitted) + 1, "0123abcd"), kind, label, list(argv), owner, "/nonexistent")
        self.submitted.append({"argv": list(argv), "kind": kind, "owner": owner, "cleanup": tuple(cleanup),
                               "label": label})
        self._jobs[job.id] = job
        return job

    def running(self):
        return 0

    def jobs(self, owner=None):
        return [j for j in self._jobs.values() if owner is None or j.owner == owner]

    def get(self, job_id):
        return self._jobs.get(job_id)

    def log(self, job_id, limit=0):
        return "PLAY [fake] <b>log</b>" if job_id in self._jobs else None


@pytest.fixture
def fleet_doc():
    return copy.deepcopy(SAMPLE)


@pytest.fixture
def graphs_dir(tmp_path):
    root = tmp_path / "graphs"
    (root / "node1").mkdir(parents=True)
    (root / "node1" / "cpu-1h.png").write_bytes(b"\x89PNG\r\n\x1a\nnode1-cpu")
    (root / "node1" / "memory-1d.png").write_bytes(b"\x89PNG\r\n\x1a\nnode1-mem")
    (root / "unlisted.png").write_bytes(b"\x89PNG\r\n\x1a\nunlisted")
    (tmp_path / "secret.png").write_bytes(b"outside the graphs dir")
    (root / "index.json").write_text(json.dumps({"rendered": 1, "graphs": [
        {"file": "node1/cpu-1h.png", "host": "node1", "kind": "host", "graph": "cpu", "period": "1h"},
        {"file": "node1/memory-1d.png", "host": "node1", "kind": "host", "graph": "memory", "period": "1d"},
        {"file": "../secret.png", "host": "evil", "kind": "host", "graph": "cpu", "period": "1h"},
    ]}))
    return root


@pytest.fixture
def jobs():
    return FakeJobs()


@pytest.fixture
def app(tmp_path, fleet_doc, jobs, graphs_dir):
    config = Config(state_dir=str(tmp_path / "state"), graphs_dir=str(graphs_dir), admin_password=ADMIN_PASSWORD,
                    inventory="/etc/kvmfleet/inventory.yml", ansible_playbook="/venv/bin/ansible-playbook",
                    max_upload_bytes=4096, max_xml_bytes=1024)
    (tmp_path / "state").mkdir()
    return App(config, FixedFleetSource(fleet_doc), jobs)


@pytest.fixture
def server(app):
    srv = Server(("127.0.0.1", 0), app, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def client(server):
    return Client(server.server_address[1])
