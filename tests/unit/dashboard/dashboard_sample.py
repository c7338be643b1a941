"""The sample fleet report of the dashboard tests (fleet_status.yml's shape)."""
import base64
import http.client
import re

ADMIN_PASSWORD = "s3cret-admin-pw"
HOSTILE = "<script>alert(1)</script>"

SAMPLE = {
    "generated": "2025-01-01T00:00:00Z", "image_dir": "/srv/kvmfleet/images",
    "hosts": [
        {"name": "node1", "reachable": True, "error": None, "hostname": "node1", "maintenance": False,
         "maintenance_mark": False, "disabled": False, "cpus": 4, "memory_mb": 7900, "memory_free_mb": 4100,
         "storage": {"path": "/srv/kvmfleet/images", "total_gb": 250, "free_gb": 80},
         "utilization": {"cpu_percent": 41.5, "memory_percent": 48.1, "vm_cpu_percent": 6.0},
         "allocation": {"vcpus": 6, "memory_mb": 4096, "disk_gb": 30, "domains": 2},
         "capacity": {"vcpus": 16.0, "memory_mb": 7388, "disk_gb": 250}},
        {"name": "node2", "reachable": True, "error": None, "hostname": "node2", "maintenance": True,
         "maintenance_mark": True, "disabled": False, "cpus": 2, "memory_mb": 3900, "memory_free_mb": 3000,
         "storage": {"path": "/srv/kvmfleet/images", "total_gb": 250, "free_gb": 80},
         "utilization": {"cpu_percent": 3.25, "memory_percent": 23.1, "vm_cpu_percent": 0.0},
         "allocation": {"vcpus": 0, "memory_mb": 0, "disk_gb": 0, "domains": 0},
         "capacity": {"vcpus": 8.0, "memory_mb": 3388, "disk_gb": 250}},
        {"name": "node3", "reachable": False, "error": "Failed to connect to the host via ssh: refused",
         "hostname": None, "maintenance": False, "maintenance_mark": None, "disabled": False, "cpus": None,
         "memory_mb": None, "memory_free_mb": None, "storage": None,
         "utilization": {"cpu_percent": None, "memory_percent": None, "vm_cpu_percent": None},
         "allocation": {"vcpus": None, "memory_mb": None, "disk_gb": None, "domains": None},
         "capacity": {"vcpus": None, "memory_mb": None, "disk_gb": None}},
    ],
    "vms": [
        {"name": "web1", "host": "node1", "state": "running", "managed": True, "group": "web", "vcpus": 2,
         "vcpus_max": 8, "memory_mb": 1024, "memory_max_mb": 4096, "balloon_mb": 1024, "cpu_percent": 12.0,
         "disk_gb": 10, "addresses": ["10.213.0.123"], "macs": ["52:54:00:aa:bb:cc"]},
        {"name": HOSTILE, "host": "node1", "state": "shutoff", "managed": False, "group": None, "vcpus": 4,
         "vcpus_max": 4, "memory_mb": 3072, "memory_max_mb": 3072, "balloon_mb": None, "cpu_percent": None,
         "disk_gb": 20, "addresses": [], "macs": ["52:54:00:dd:ee:ff"]},
    ],
    "images": [{"name": "base.qcow2", "path": "/srv/kvmfleet/images/base.qcow2", "size_mb": 310.5}],
    "unreachable": ["node3"],
}


class Client:
    """An HTTP client of the test server on 127.0.0.1 that keeps the session cookie."""

    def __init__(self, port):
        self.port, self.cookie = port, None

    def request(self, method, path, body=None, headers=None, admin=False):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = dict(headers or {})
        if self.cookie:
            headers["Cookie"] = self.cookie
        if admin:
            headers["Authorization"] = "Basic " + base64.b64encode(b"admin:" + ADMIN_PASSWORD.encode()).decode()
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        set_cookie = resp.getheader("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";")[0]
        return resp.status, dict(resp.getheaders()), data.decode("utf-8", "replace")

    def csrf(self, path="/", admin=False):
        status, _headers, page = self.request("GET", path, admin=admin)
        assert status == 200
        return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)

    def post_form(self, path, fields, admin=False):
        from urllib.parse import urlencode
        body = urlencode(fields, doseq=True).encode()
        return self.request("POST", path, body=body, admin=admin,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
