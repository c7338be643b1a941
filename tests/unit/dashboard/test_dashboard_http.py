"""Pages and a real HTTP server on 127.0.0.1 (port 0) with a fixed fleet and a fake job runner."""
import html
import re

import pytest

from dashboard.app import Request

from dashboard_sample import HOSTILE, Client


def test_customer_page_lists_images_and_has_forms(client):
    status, headers, page = client.request("GET", "/")
    assert status == 200
    assert 'value="base.qcow2"' in page
    assert 'action="/create"' in page and 'enctype="multipart/form-data"' in page
    assert "kvf_session=" in headers["Set-Cookie"] and "HttpOnly" in headers["Set-Cookie"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_admin_page_shows_hosts_vms_and_escapes_hostile_name(client):
    status, _headers, page = client.request("GET", "/admin", admin=True)
    assert status == 200
    for text in ("node1", "node2", "node3", "web1", "41.5 %", "Failed to connect to the host via ssh",
                 "10.213.0.123", "52:54:00:aa:bb:cc", "6 / 16.0", "Return to service"):
        assert text in page, text
    assert HOSTILE not in page
    assert html.escape(HOSTILE) in page or "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # graphs listed in index.json and inside the dir; the ../ entry is not shown
    assert 'src="/admin/graphs/node1/cpu-1h.png"' in page
    assert "secret.png" not in page


def test_admin_needs_the_password(client):
    status, headers, _page = client.request("GET", "/admin")
    assert status == 401 and "Basic" in headers["WWW-Authenticate"]
    import base64
    bad = "Basic " + base64.b64encode(b"admin:wrong").decode()
    assert client.request("GET", "/admin", headers={"Authorization": bad})[0] == 401
    assert client.request("POST", "/admin/delete", body=b"vm=web1",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})[0] == 401
    assert client.request("GET", "/admin", headers={"Authorization": "Bearer s3cret-admin-pw"})[0] == 200


def test_admin_disabled_without_password(app):
    app.config.admin_password = None
    resp = app.handle(Request("GET", "/admin", {"Authorization": "Bearer anything"}))
    assert resp.status == 403 and b"--admin-password-file" in resp.body


def test_create_with_csrf_launches_one_job(client, jobs):
    token = client.csrf("/")
    status, headers, _page = client.post_form("/create", {
        "csrf": token, "name": "web2", "vcpus": "1", "memory_mb": "256", "disk_gb": "1", "image": "base.qcow2"})
    assert status == 303 and re.match(r"^/jobs/0001-", headers["Location"])
    assert len(jobs.submitted) == 1
    assert jobs.submitted[0]["argv"] == [
        "/venv/bin/ansible-playbook", "kvmfleet.iaas.create_vm", "-i", "/etc/kvmfleet/inventory.yml",
        "-e", "name=web2", "-e", "vcpus=1", "-e", "memory_mb=256", "-e", "disk_gb=1",
        "-e", "image=/srv/kvmfleet/images/base.qcow2"]
    # the job is the customer's: it shows on their page and its own page
    status, _headers, page = client.request("GET", headers["Location"])
    assert status == 200 and "create web2" in page and "&lt;b&gt;log&lt;/b&gt;" in page
    assert "create web2" in client.request("GET", "/")[2]


def test_another_browser_does_not_see_the_job(client, server, jobs):
    token = client.csrf("/")
    _status, headers, _page = client.post_form("/create", {
        "csrf": token, "name": "web2", "vcpus": "1", "memory_mb": "256", "disk_gb": "1"})
    other = Client(server.server_address[1])
    assert other.request("GET", headers["Location"])[0] == 404
    assert "create web2" not in other.request("GET", "/")[2]


@pytest.mark.parametrize("token", [None, "", "0" * 64, "forged"])
def test_post_without_valid_csrf_launches_nothing(client, jobs, token):
    client.csrf("/")          # the browser has a session cookie
    fields = {"name": "web2", "vcpus": "1", "memory_mb": "256", "disk_gb": "1"}
    if token is not None:
        fields["csrf"] = token
    status, _headers, page = client.post_form("/create", fields)
    assert status == 403 and "CSRF" in page
    assert jobs.submitted == []


def test_csrf_of_another_session_is_refused(client, server, jobs):
    token = client.csrf("/")
    other = Client(server.server_address[1])
    other.csrf("/")
    status, _headers, _page = other.post_form("/create", {
        "csrf": token, "name": "web2", "vcpus": "1", "memory_mb": "256", "disk_gb": "1"})
    assert status == 403 and jobs.submitted == []


@pytest.mark.parametrize("path, fields, words", [
    ("/create", {"name": "Bad Name", "vcpus": "1", "memory_mb": "256", "disk_gb": "1"}, "name="),
    ("/create", {"name": "web2", "vcpus": "1000", "memory_mb": "256", "disk_gb": "1"}, "vcpus="),
    ("/create", {"name": "web2", "vcpus": "1", "memory_mb": "256", "disk_gb": "1", "image": "x.qcow2"}, "image="),
    ("/admin/scale", {"vm": "web1", "resource": "gpu", "direction": "up"}, "resource="),
    ("/admin/scale", {"vm": "web1", "resource": "cpu", "direction": "both"}, "direction="),
    ("/admin/migrate", {"vm": "web1", "target": "elsewhere"}, "target="),
    ("/admin/evacuate", {"host": "node9"}, "host="),
    ("/admin/delete", {"vm": "ghost"}, "no such VM"),
])
def test_bad_input_gives_400_and_launches_nothing(client, jobs, path, fields, words):
    admin = path.startswith("/admin")
    token = client.csrf("/admin" if admin else "/", admin=admin)
    status, _headers, page = client.post_form(path, dict(fields, csrf=token), admin=admin)
    assert status == 400
    assert html.escape(words) in page and "Nothing was started" in page
    assert jobs.submitted == []


@pytest.mark.parametrize("path, fields, argv_tail", [
    ("/admin/scale", {"vm": "web1", "resource": "memory", "direction": "up"},
     ["kvmfleet.iaas.scale_vm", "-i", "/etc/kvmfleet/inventory.yml", "-e", "vm=web1", "-e", "resource=memory",
      "-e", "direction=up"]),
    ("/admin/migrate", {"vm": "web1", "target": ""},
     ["kvmfleet.iaas.migrate_vm", "-i", "/etc/kvmfleet/inventory.yml", "-e", "vm=web1"]),
    ("/admin/evacuate", {"host": "node1"},
     ["kvmfleet.iaas.evacuate_host", "-i", "/etc/kvmfleet/inventory.yml", "-e", "host=node1"]),
    ("/admin/delete", {"vm": "web1"},
     ["kvmfleet.iaas.delete_vm", "-i", "/etc/kvmfleet/inventory.yml", "-e", "name=web1"]),
])
def test_admin_actions_launch_their_playbook(client, jobs, path, fields, argv_tail):
    token = client.csrf("/admin", admin=True)
    status, headers, _page = client.post_form(path, dict(fields, csrf=token), admin=True)
    assert status == 303 and headers["Location"].startswith("/admin/jobs/")
    assert [s["argv"][1:] for s in jobs.submitted] == [argv_tail]
    assert jobs.submitted[0]["owner"] == "admin"
    assert client.request("GET", headers["Location"], admin=True)[0] == 200


def test_get_on_action_is_not_allowed(client, jobs):
    assert client.request("GET", "/create")[0] == 405
    assert client.request("GET", "/admin/scale?vm=web1&resource=cpu&direction=up", admin=True)[0] == 405
    assert jobs.submitted == []


def test_busy_runner_gives_503(client, jobs):
    jobs.busy = True
    token = client.csrf("/")
    status, _headers, page = client.post_form("/create", {
        "csrf": token, "name": "web2", "vcpus": "1", "memory_mb": "256", "disk_gb": "1"})
    assert status == 503 and jobs.submitted == []


def test_graph_file_served(client):
    status, headers, body = client.request("GET", "/admin/graphs/node1/cpu-1h.png", admin=True)
    assert status == 200 and headers["Content-Type"] == "image/png" and body.endswith("node1-cpu")
    assert client.request("GET", "/admin/graphs/node1/cpu-1h.png")[0] == 401


@pytest.mark.parametrize("path", [
    "/admin/graphs/../secret.png", "/admin/graphs/%2e%2e/secret.png", "/admin/graphs/..%2fsecret.png",
    "/admin/graphs/unlisted.png", "/admin/graphs/node1/../../secret.png", "/admin/graphs//etc/passwd",
    "/admin/graphs/index.json", "/admin/graphs/node1/nothere.png",
])
def test_graph_traversal_and_unlisted_refused(client, path):
    status, _headers, body = client.request("GET", path, admin=True)
    assert status == 404
    assert "outside the graphs dir" not in body and "unlisted" not in body.replace("/admin/graphs/", "")


def test_static_css(client):
    status, headers, body = client.request("GET", "/static/style.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css") and "table" in body


def multipart_body(fields, files, boundary="----kvfBoundary42"):
    out = b""
    for name, value in fields.items():
        out += (b"--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                % (boundary.encode(), name.encode(), value.encode()))
    for name, (filename, data) in files.items():
        out += (b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n%s\r\n"
                % (boundary.encode(), name.encode(), filename.encode(), data))
    out += b"--%s--\r\n" % boundary.encode()
    return out, {"Content-Type": "multipart/form-data; boundary=%s" % boundary}


def test_upload_submits_with_paths_in_a_private_dir(client, jobs, app):
    import os
    import stat
    token = client.csrf("/")
    image = b"QFI\xfb" + b"\r\n--not-the-boundary\r\n" * 10 + b"\x00" * 100
    body, headers = multipart_body({"name": "appliance1"},
                                   {"image": ("../../evil name.qcow2", image), "domain_xml": ("vm.xml", b"<domain/>")})
    status, resp_headers, _page = client.request("POST", "/submit?csrf=" + token, body=body, headers=headers)
    assert status == 303, _page
    argv = jobs.submitted[0]["argv"]
    assert argv[1] == "kvmfleet.iaas.submit_vm" and argv[4:6] == ["-e", "name=appliance1"]
    image_path = argv[7].split("=", 1)[1]
    xml_path = argv[9].split("=", 1)[1]
    assert argv[6] == "-e" and argv[7].startswith("image_src=") and argv[9].startswith("domain_xml=")
    uploads = os.path.realpath(app.upload_root)
    for path in (image_path, xml_path):
        assert os.path.realpath(path).startswith(uploads + os.sep)
    assert os.path.basename(image_path) == "evil_name.qcow2"
    with open(image_path, "rb") as fh:
        assert fh.read() == image                      # boundary-like bytes inside survive
    assert open(xml_path, "rb").read() == b"<domain/>"
    top = os.path.dirname(os.path.dirname(image_path))
    assert stat.S_IMODE(os.stat(top).st_mode) == 0o700
    assert jobs.submitted[0]["cleanup"] == (top,)


def test_upload_over_the_limit_is_refused_and_nothing_kept(client, jobs, app):
    import os
    token = client.csrf("/")
    body, headers = multipart_body({"name": "appliance1"}, {"image": ("big.qcow2", b"x" * 5000)})
    status, _headers, page = client.request("POST", "/submit?csrf=" + token, body=body, headers=headers)
    assert status == 413 and "limit" in page
    assert jobs.submitted == [] and os.listdir(app.upload_root) == []


def test_upload_part_over_the_limit_within_total_refused(client, jobs, app):
    import os
    token = client.csrf("/")
    # the XML part exceeds its 1024-byte limit although the whole body is under the total
    body, headers = multipart_body({"name": "appliance1"},
                                   {"image": ("a.qcow2", b"x" * 10), "domain_xml": ("d.xml", b"<" * 2000)})
    status, _headers, page = client.request("POST", "/submit?csrf=" + token, body=body, headers=headers)
    assert status == 413 and "domain_xml" in page
    assert jobs.submitted == [] and os.listdir(app.upload_root) == []


def test_upload_without_csrf_refused_before_reading(client, jobs, app):
    import os
    client.csrf("/")
    body, headers = multipart_body({"name": "appliance1"}, {"image": ("a.qcow2", b"x" * 10)})
    status, _headers, _page = client.request("POST", "/submit", body=body, headers=headers)
    assert status == 403 and jobs.submitted == [] and os.listdir(app.upload_root) == []


def test_upload_with_bad_name_refused_and_removed(client, jobs, app):
    import os
    token = client.csrf("/")
    body, headers = multipart_body({"name": "NOT OK"}, {"image": ("a.qcow2", b"x" * 10)})
    status, _headers, page = client.request("POST", "/submit?csrf=" + token, body=body, headers=headers)
    assert status == 400 and "name=" in html.unescape(page)
    assert jobs.submitted == [] and os.listdir(app.upload_root) == []
