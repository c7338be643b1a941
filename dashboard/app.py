"""The dashboard's request handling, without HTTP: ``App.handle(Request) -> Response``.

Pages are jinja2 templates with autoescape. Every action is a POST carrying a CSRF token (an
HMAC of the browser's session cookie); its form is validated (dashboard.actions) before a job is
started, and a refused request starts nothing. /admin needs the admin password (HTTP basic auth,
any user name, or ``Authorization: Bearer PASSWORD``).
"""
import base64
import hashlib
import hmac
import json
import mimetypes
import os
import re
import secrets
import shutil
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import jinja2

from dashboard import actions, multipart
from dashboard.jobs import Busy

HERE = os.path.dirname(os.path.abspath(__file__))
SESSION_COOKIE = "kvf_session"
_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_JOB_ID_RE = re.compile(r"^[0-9]{4,}-[0-9a-f]{8}$")
FORM_LIMIT = 64 * 1024
SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
]


@dataclass
class Config:
    state_dir: str
    graphs_dir: Optional[str] = None
    admin_password: Optional[str] = None
    customer_password: Optional[str] = None
    inventory: Optional[str] = None
    ansible_playbook: str = "ansible-playbook"
    max_upload_bytes: int = 8 * 1024 ** 3      # the disk image
    max_xml_bytes: int = 1024 * 1024           # the domain XML
    secure_cookies: bool = False               # behind a TLS reverse proxy


@dataclass
class Request:
    method: str
    target: str                                  # path?query
    headers: Dict[str, str] = field(default_factory=dict)   # lower-case names
    body: object = None                          # a stream with read(n)
    client: str = "127.0.0.1"

    def __post_init__(self):
        self.headers = {k.lower(): v for k, v in self.headers.items()}
        parts = urllib.parse.urlsplit(self.target)
        self.path = urllib.parse.unquote(parts.path)
        self.query = urllib.parse.parse_qs(parts.query)
        self.cookies = {}
        for item in self.headers.get("cookie", "").split(";"):
            if "=" in item:
                key, value = item.strip().split("=", 1)
                self.cookies.setdefault(key, value)

    @property
    def content_length(self):
        try:
            value = int(self.headers.get("content-length", ""))
        except ValueError:
            return None
        return value if value >= 0 else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: List[Tuple[str, str]] = field(default_factory=list)
    close: bool = False


def _fmt_pct(value):
    return "–" if value is None else "%.1f %%" % float(value)


def _fmt_mib(value):
    if value is None:
        return "–"
    value = float(value)
    return "%.1f GiB" % (value / 1024) if abs(value) >= 1024 else "%d MiB" % value


def _ratio(used, cap):
    if used is None or not cap:
        return None
    return 100.0 * float(used) / float(cap)


class App:
    def __init__(self, config, fleet, jobs, now=time.time):
        self.config, self.fleet, self.jobs, self.now = config, fleet, jobs, now
        self.secret = secrets.token_bytes(32)
        self.upload_root = os.path.join(config.state_dir, "uploads")
        os.makedirs(self.upload_root, mode=0o700, exist_ok=True)
        os.chmod(config.state_dir, 0o700)
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
                                      autoescape=True, undefined=jinja2.StrictUndefined,
                                      trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(pct=_fmt_pct, mib=_fmt_mib,
                                clock=lambda t: "–" if not t else time.strftime("%H:%M:%S", time.localtime(t)))
        self.env.globals.update(ratio=_ratio)

    # --- sessions, CSRF, auth --------------------------------------------------------------
    def csrf_token(self, session):
        return hmac.new(self.secret, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()

    def _session(self, req):
        """(session id, is new). A new browser gets a random id in a cookie."""
        sid = req.cookies.get(SESSION_COOKIE, "")
        if _SESSION_RE.match(sid):
            return sid, False
        return secrets.token_urlsafe(24), True

    def _csrf_ok(self, req, token):
        sid = req.cookies.get(SESSION_COOKIE, "")
        return bool(_SESSION_RE.match(sid)) and bool(token) and hmac.compare_digest(
            str(token), self.csrf_token(sid))

    @staticmethod
    def _password_ok(req, password):
        auth = req.headers.get("authorization", "")
        given = None
        if auth.startswith("Basic "):
            try:
                given = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").split(":", 1)[1]
            except (ValueError, IndexError, UnicodeDecodeError):
                given = None
        elif auth.startswith("Bearer "):
            given = auth[7:].strip()
        return given is not None and hmac.compare_digest(given.encode(), password.encode())

    def _auth_failure(self, req, admin):
        if admin and self.config.admin_password is None:
            return self._error(403, "The admin pages are disabled: start the dashboard with "
                                    "--admin-password-file.")
        password = self.config.admin_password if admin else self.config.customer_password
        if password is None or self._password_ok(req, password):
            return None
        resp = self._error(401, "This page needs the %s password." % ("admin" if admin else "customer"))
        resp.headers.append(("WWW-Authenticate", 'Basic realm="kvmfleet %s", charset="UTF-8"'
                             % ("admin" if admin else "dashboard")))
        return resp

    # --- responses ---------------------------------------------------------------------------
    def _render(self, template, code=200, **ctx):
        body = self.env.get_template(template).render(**ctx).encode("utf-8")
        return Response(code, body)

    def _error(self, status, message, title=None):
        titles = {400: "Request refused", 401: "Password needed", 403: "Forbidden", 404: "Not found",
                  405: "Method not allowed", 411: "Length required", 413: "Upload too large",
                  503: "Busy"}
        return self._render("error.html", status, title=title or titles.get(status, "Error"), message=message,
                            status=status, csrf="", admin=False)

    @staticmethod
    def _redirect(location):
        return Response(303, b"", headers=[("Location", location)])

    def handle(self, req):
        sid, new_session = self._session(req)
        try:
            resp = self._route(req, sid)
        except actions.BadRequest as err:
            resp = self._error(400, str(err))
        except multipart.UploadError as err:
            resp = self._error(err.status, err.message)
            resp.close = True
        except Busy as err:
            resp = self._error(503, str(err))
        if new_session:
            resp.headers.append(("Set-Cookie", "%s=%s; Path=/; HttpOnly; SameSite=Strict%s"
                                 % (SESSION_COOKIE, sid, "; Secure" if self.config.secure_cookies else "")))
        if resp.content_type.startswith("text/html"):
            resp.headers.append(("Cache-Control", "no-store"))
        resp.headers.extend(SECURITY_HEADERS)
        return resp

    def _route(self, req, sid):
        path, method = req.path, req.method
        if path == "/static/style.css" and method in ("GET", "HEAD"):
            with open(os.path.join(HERE, "static", "style.css"), "rb") as fh:
                return Response(200, fh.read(), "text/css; charset=utf-8",
                                [("Cache-Control", "max-age=300")])
        admin = path == "/admin" or path.startswith("/admin/")
        failure = self._auth_failure(req, admin)
        if failure is not None:
            return failure
        routes = {
            ("GET", "/"): self.customer_page,
            ("POST", "/create"): self.post_create,
            ("POST", "/submit"): self.post_submit,
            ("GET", "/admin"): self.admin_page,
            ("POST", "/admin/scale"): self.post_admin(actions.validate_scale),
            ("POST", "/admin/migrate"): self.post_admin(actions.validate_migrate),
            ("POST", "/admin/delete"): self.post_admin(actions.validate_delete),
            ("POST", "/admin/evacuate"): self.post_admin(actions.validate_evacuate),
            ("POST", "/admin/refresh"): self.post_refresh,
        }
        handler = routes.get((method, path))
        if handler is not None:
            return handler(req, sid)
        m = re.match(r"^(/admin)?/jobs/([^/]+)$", path)
        if m and method == "GET":
            return self.job_page(req, sid, m.group(2), admin=bool(m.group(1)))
        if path.startswith("/admin/graphs/") and method == "GET":
            return self.graph_file(path[len("/admin/graphs/"):])
        if any(p == path for (_method, p) in routes):
            return self._error(405, "%s is not allowed on %s." % (method, path))
        return self._error(404, "There is no page %s." % path)

    # --- forms ---------------------------------------------------------------------------------
    def _form(self, req):
        if req.content_length is None:
            raise multipart.UploadError(411, "a POST needs a Content-Length")
        if req.content_length > FORM_LIMIT:
            raise multipart.UploadError(413, "the form is larger than %d bytes" % FORM_LIMIT)
        ctype = req.headers.get("content-type", "").split(";")[0].strip()
        if ctype != "application/x-www-form-urlencoded":
            raise actions.BadRequest("expected a form (application/x-www-form-urlencoded)")
        data = req.body.read(req.content_length) if req.content_length else b""
        try:
            return urllib.parse.parse_qs(data.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
        except (UnicodeDecodeError, ValueError):
            raise actions.BadRequest("the form is not valid UTF-8 form data")

    def _check_csrf(self, req, token):
        if not self._csrf_ok(req, token):
            raise _Forbidden()

    def _launch(self, action, owner):
        argv = actions.playbook_argv(action, ansible_playbook=self.config.ansible_playbook,
                                     inventory=self.config.inventory)
        return self.jobs.submit(argv, kind=action.kind, label=action.label, owner=owner,
                                cleanup=action.cleanup)

    def _posted(self, validate, req, sid, owner, job_prefix):
        try:
            form = self._form(req)
            token = (form.get("csrf") or [""])[0]
            self._check_csrf(req, token)
        except _Forbidden:
            return self._error(403, "The form's security token is missing or wrong (CSRF check). Reload the "
                                    "page and send the form again.")
        action = validate(form, self.fleet.get())
        job = self._launch(action, owner)
        return self._redirect("%s/jobs/%s" % (job_prefix, job.id))

    def post_create(self, req, sid):
        return self._posted(actions.validate_create, req, sid, sid, "")

    def post_admin(self, validate):
        return lambda req, sid: self._posted(validate, req, sid, "admin", "/admin")

    def post_refresh(self, req, sid):
        try:
            self._check_csrf(req, (self._form(req).get("csrf") or [""])[0])
        except _Forbidden:
            return self._error(403, "The form's security token is missing or wrong (CSRF check).")
        self.fleet.get(refresh=True)
        return self._redirect("/admin")

    def post_submit(self, req, sid):
        # The token rides in the form's URL, so a forged upload is refused before it is read.
        if not self._csrf_ok(req, (req.query.get("csrf") or [""])[0]):
            resp = self._error(403, "The form's security token is missing or wrong (CSRF check). Reload the "
                                    "page and send the form again.")
            resp.close = True      # the unread body must not be taken for the next request
            return resp
        length = req.content_length
        if length is None:
            raise multipart.UploadError(411, "an upload needs a Content-Length")
        total = self.config.max_upload_bytes + self.config.max_xml_bytes + FORM_LIMIT
        if length > total:
            raise multipart.UploadError(413, "the upload (%d bytes) is larger than the limit of %d bytes"
                                        % (length, self.config.max_upload_bytes))
        dest = tempfile.mkdtemp(prefix="submit-", dir=self.upload_root)      # mode 0700
        keep = False
        try:
            fields, files = multipart.parse(
                req.body, length, req.headers.get("content-type", ""), dest,
                {"image": self.config.max_upload_bytes, "domain_xml": self.config.max_xml_bytes})
            image = files.get("image", {}).get("path")
            xml = files.get("domain_xml", {}).get("path")
            action = actions.validate_submit(fields.get("name"), image, xml, self.fleet.get(),
                                             cleanup=(dest,), sizes=fields)
            job = self._launch(action, sid)
            keep = True            # the job removes the upload when it ends
            return self._redirect("/jobs/%s" % job.id)
        finally:
            if not keep:
                shutil.rmtree(dest, ignore_errors=True)

    # --- pages ---------------------------------------------------------------------------------
    def customer_page(self, req, sid):
        return self._render("customer.html", fleet=self.fleet.get(), jobs=self.jobs.jobs(owner=sid),
                            csrf=self.csrf_token(sid), admin=False, limits=actions,
                            max_upload=self.config.max_upload_bytes)

    def admin_page(self, req, sid):
        graphs, graphs_error = self.graph_index()
        periods = sorted({g["period"] for g in graphs})
        period = (req.query.get("period") or [""])[0]
        if period not in periods:
            period = "1h" if "1h" in periods else (periods[0] if periods else "")
        by_host = {}
        for g in graphs:
            if g["period"] == period:
                by_host.setdefault(g["host"], []).append(g)
        return self._render("admin.html", fleet=self.fleet.get(), jobs=self.jobs.jobs(), csrf=self.csrf_token(sid),
                            admin=True, graphs=sorted(by_host.items()), graphs_error=graphs_error,
                            periods=periods, period=period, graphs_dir=self.config.graphs_dir,
                            running=self.jobs.running(), max_running=self.jobs.max_running)

    def job_page(self, req, sid, job_id, admin):
        job = self.jobs.get(job_id) if _JOB_ID_RE.match(job_id) else None
        if job is None or (not admin and job.owner != sid):
            return self._error(404, "There is no job %s (of yours)." % job_id)
        return self._render("job.html", job=job, log=self.jobs.log(job_id), admin=admin,
                            csrf=self.csrf_token(sid))

    # --- graphs --------------------------------------------------------------------------------
    def graph_index(self):
        """([graph entries of index.json whose file is a PNG inside the graphs dir], error)."""
        root = self.config.graphs_dir
        if not root:
            return [], "no graphs directory given (--graphs-dir)"
        try:
            with open(os.path.join(root, "index.json")) as fh:
                index = json.load(fh)
        except (OSError, ValueError) as err:
            return [], "cannot read %s: %s" % (os.path.join(root, "index.json"), err)
        out = []
        for g in index.get("graphs", []) if isinstance(index, dict) else []:
            if not isinstance(g, dict) or not isinstance(g.get("file"), str):
                continue
            if self._graph_path(g["file"]) is None:
                continue
            out.append({"file": g["file"], "host": str(g.get("host", "?")), "graph": str(g.get("graph", "")),
                        "period": str(g.get("period", "")), "kind": str(g.get("kind", ""))})
        return out, None

    def _graph_path(self, rel):
        """The real path of ``rel`` when it is a .png file inside the graphs dir, else None."""
        root = self.config.graphs_dir
        if not root or not rel or "\x00" in rel or rel.startswith("/") or not rel.endswith(".png"):
            return None
        base = os.path.realpath(root)
        path = os.path.realpath(os.path.join(base, rel))
        if os.path.commonpath([base, path]) != base or path == base or not os.path.isfile(path):
            return None
        return path

    def graph_file(self, rel):
        listed = {g["file"] for g in self.graph_index()[0]}
        path = self._graph_path(rel) if rel in listed else None
        if path is None:
            return self._error(404, "No such graph.")
        with open(path, "rb") as fh:
            data = fh.read()
        return Response(200, data, mimetypes.types_map.get(".png", "image/png"), [("Cache-Control", "max-age=60")])


class _Forbidden(Exception):
    pass
