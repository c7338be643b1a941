"""Background jobs: one ansible-playbook process per action, with its log and exit code.

``JobRunner.submit(argv, ...)`` starts the process (an argument list, never a shell, stdin from
/dev/null, its own session) with stdout+stderr to a log file, and a thread waits for it. At most
``max_running`` jobs run at once: beyond that ``submit`` raises ``Busy`` and starts nothing.
"""
import itertools
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional


class Busy(Exception):
    """Too many jobs run already; nothing was started."""


@dataclass
class Job:
    id: str
    kind: str
    label: str
    argv: List[str]
    owner: Optional[str]            # customer session id, or "admin"
    log_path: str
    state: str = "running"          # running | succeeded | failed
    rc: Optional[int] = None
    started: float = field(default_factory=time.time)
    finished: Optional[float] = None
    error: Optional[str] = None

    @property
    def duration_s(self):
        return round((self.finished or time.time()) - self.started, 1)


class JobRunner:
    def __init__(self, log_dir, env=None, cwd=None, max_running=2, max_kept=200,
                 popen=subprocess.Popen, on_finish=None):
        self.log_dir = str(log_dir)
        os.makedirs(self.log_dir, mode=0o700, exist_ok=True)
        self.env, self.cwd = env, cwd
        self.max_running, self.max_kept = max_running, max_kept
        self.popen, self.on_finish = popen, on_finish
        self._lock = threading.Lock()
        self._jobs = {}
        self._seq = itertools.count(1)
        self._threads = {}
        self._procs = {}

    def running(self):
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.state == "running")

    def submit(self, argv, kind="job", label="", owner=None, cleanup=()):
        if isinstance(argv, str) or not all(isinstance(a, str) for a in argv):
            raise TypeError("argv must be a list of str")
        with self._lock:
            if sum(1 for j in self._jobs.values() if j.state == "running") >= self.max_running:
                raise Busy("%d job(s) are running, the most this dashboard runs at once; try again "
                           "when one has finished" % self.max_running)
            job_id = "%04d-%s" % (next(self._seq), secrets.token_hex(4))
            job = Job(job_id, kind, label or kind, list(argv), owner, os.path.join(self.log_dir, job_id + ".log"))
            log = open(job.log_path, "wb")
            try:
                proc = self.popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  env=self.env, cwd=self.cwd, start_new_session=True)
            except OSError as err:
                log.write(("could not start %s: %s\n" % (argv[0], err)).encode())
                log.close()
                job.state, job.rc, job.finished, job.error = "failed", None, time.time(), str(err)
                self._keep(job)
                self._cleanup(cleanup)
                return job
            log.close()
            self._keep(job)
            self._procs[job_id] = proc
            thread = threading.Thread(target=self._wait, args=(job, proc, tuple(cleanup)),
                                      name="job-" + job_id, daemon=True)
            self._threads[job_id] = thread
            thread.start()
            return job

    def _keep(self, job):
        self._jobs[job.id] = job
        done = [j for j in self._jobs.values() if j.state != "running"]
        for old in sorted(done, key=lambda j: j.started)[:max(0, len(self._jobs) - self.max_kept)]:
            self._jobs.pop(old.id, None)

    @staticmethod
    def _cleanup(dirs):
        for path in dirs:
            shutil.rmtree(path, ignore_errors=True)

    def _wait(self, job, proc, cleanup):
        rc = proc.wait()
        with self._lock:
            self._procs.pop(job.id, None)
            job.rc, job.finished = rc, time.time()
            job.state = "succeeded" if rc == 0 else "failed"
        self._cleanup(cleanup)
        if self.on_finish:
            try:
                self.on_finish(job)
            except Exception:     # a hook must not kill the waiter
                pass

    def cancel(self, job_id, sig=signal.SIGTERM):
        """Signal a running job's process group (it runs in its own session). True if signalled."""
        with self._lock:
            proc = self._procs.get(job_id)
        if proc is None:
            return False
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def wait(self, job_id, timeout=None):
        """Wait for a job's process (tests, shutdown). True when it has finished."""
        thread = self._threads.get(job_id)
        if thread:
            thread.join(timeout)
        return self.get(job_id).state != "running"

    def get(self, job_id):
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self, owner=None):
        with self._lock:
            jobs = [j for j in self._jobs.values() if owner is None or j.owner == owner]
        return sorted(jobs, key=lambda j: j.started, reverse=True)

    def log(self, job_id, limit=256 * 1024):
        """The end of a job's log (at most ``limit`` bytes), as text."""
        job = self.get(job_id)
        if job is None:
            return None
        try:
            with open(job.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - limit))
                data = fh.read()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        return ("[... %d bytes cut ...]\n" % (size - limit) + text) if size > limit else text
