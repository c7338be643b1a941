"""Where the dashboard's picture of the fleet comes from.

``FleetSource`` runs ``ansible-playbook kvmfleet.iaas.fleet_status -e report_file=...`` (an
argument list, no shell) and keeps the report for ``ttl`` seconds. ``FixedFleetSource`` serves a
fixed document (tests, demos: ``--fleet-json FILE``). Both answer ``get()`` with the report plus
``_source`` = {fetched (epoch), age_s, stale, error}.
"""
import copy
import json
import os
import subprocess
import threading
import time

from dashboard.actions import playbook_argv
from dashboard.devpath_import import COLLECTIONS, REPO


def ansible_env(base=None, ansible_config=None):
    """The environment ansible-playbook runs in: the checkout's ansible.cfg and collections path
    (as tests/integration/conftest.py's Lab.ansible_env), no colours. An installed collection
    ships no ansible.cfg: there the operator's own configuration applies."""
    env = dict(os.environ if base is None else base)
    config = ansible_config or (REPO / "ansible.cfg" if (REPO / "ansible.cfg").is_file() else None)
    if config:
        env["ANSIBLE_CONFIG"] = str(config)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", PYTHONUNBUFFERED="1")
    return env


EMPTY = {"generated": None, "image_dir": None, "hosts": [], "vms": [], "images": [], "unreachable": []}


def _with_source(doc, fetched, stale, error, now):
    out = copy.deepcopy(doc)
    out["_source"] = {"fetched": fetched, "age_s": None if fetched is None else round(now - fetched, 1),
                      "stale": stale, "error": error}
    return out


class FixedFleetSource:
    """A report given once (a dict or a JSON file read at each get)."""

    def __init__(self, doc=None, path=None):
        self.doc, self.path = doc, path
        self.invalidated = 0

    def get(self, refresh=False):
        doc = self.doc
        if self.path:
            with open(self.path) as fh:
                doc = json.load(fh)
        return _with_source(doc or EMPTY, time.time(), False, None, time.time())

    def invalidate(self):
        self.invalidated += 1


class FleetSource:
    """fleet_status.yml's report, cached for ``ttl`` seconds; one refresh at a time.

    A failed refresh keeps the last good report (marked stale, with the error) and is not
    retried before ``retry_s``.
    """

    def __init__(self, report_dir, ansible_playbook="ansible-playbook", inventory=None, ttl=30.0,
                 timeout=300.0, retry_s=10.0, env=None, run=subprocess.run, clock=time.time, cwd=None,
                 background=True):
        self.report_dir = str(report_dir)
        os.makedirs(self.report_dir, mode=0o700, exist_ok=True)
        self.report_file = os.path.join(self.report_dir, "fleet_status.json")
        self.ansible_playbook, self.inventory = ansible_playbook, inventory
        self.ttl, self.timeout, self.retry_s = ttl, timeout, retry_s
        self.env = env if env is not None else ansible_env()
        self.run, self.clock, self.cwd = run, clock, cwd or str(REPO)
        self._lock = threading.Lock()
        self.background = background
        self._doc, self._fetched, self._error, self._tried = None, None, None, None
        self._expired, self._refreshing = False, False
        self.last_output = ""

    def argv(self):
        return playbook_argv("fleet_status", [("report_file", self.report_file)],
                             ansible_playbook=self.ansible_playbook, inventory=self.inventory)

    def invalidate(self):
        """The next get() refreshes (a job changed the fleet)."""
        with self._lock:
            self._expired, self._tried = True, None

    def _fresh(self, now):
        return (self._doc is not None and not self._expired and self._fetched is not None
                and now - self._fetched < self.ttl)

    def _due(self, now):
        return self._tried is None or now - self._tried >= self.retry_s

    def get(self, refresh=False):
        """The report. Without any report yet, waits for the playbook; with an old one, answers
        it at once (``_source.stale``) while a background refresh runs (``background``)."""
        with self._lock:
            now = self.clock()
            if not self._refreshing and (refresh or (not self._fresh(now) and self._due(now))):
                if self._doc is None or not self.background:
                    self._refresh_locked(now)
                else:
                    self._refreshing = True
                    threading.Thread(target=self._refresh_bg, name="fleet-refresh", daemon=True).start()
            now = self.clock()
            if self._doc is None:
                return _with_source(EMPTY, None, True, self._error or "no fleet status yet", now)
            stale = self._error is not None or not self._fresh(now)
            return _with_source(self._doc, self._fetched, stale, self._error, now)

    def _refresh_bg(self):
        with self._lock:
            try:
                self._refresh_locked(self.clock())
            finally:
                self._refreshing = False

    def _refresh_locked(self, now):
        self._tried = now
        try:
            os.unlink(self.report_file)
        except FileNotFoundError:
            pass
        try:
            proc = self.run(self.argv(), env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=self.timeout, check=False)
        except (OSError, subprocess.SubprocessError) as err:
            self._error = "fleet_status could not run: %s" % err
            return
        self.last_output = proc.stdout or ""
        try:
            with open(self.report_file) as fh:
                doc = json.load(fh)
        except (OSError, ValueError) as err:
            tail = "\n".join(self.last_output.strip().splitlines()[-5:])
            self._error = "fleet_status.yml failed (rc %s): %s%s" % (proc.returncode, err,
                                                                     ("\n" + tail) if tail else "")
            return
        if proc.returncode != 0:
            self._error = "fleet_status.yml returned rc %s (report read anyway)" % proc.returncode
        else:
            self._error = None
        self._doc, self._fetched, self._expired = doc, self.clock(), False
