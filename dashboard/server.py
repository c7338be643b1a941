"""HTTP around dashboard.app: the stdlib's ThreadingHTTPServer and a thin request handler."""
import http.server
import ipaddress
import socket
import sys

from dashboard.app import Request

MAX_HEADER_BYTES = 16 * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "kvmfleet-dashboard"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 120          # seconds of silence from a client before its socket is closed

    def _serve(self):
        app = self.server.app
        req = Request("GET" if self.command == "HEAD" else self.command, self.path, dict(self.headers.items()), self.rfile, self.client_address[0])
        resp = app.handle(req)
        body = b"" if self.command == "HEAD" else resp.body
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for key, value in resp.headers:
            self.send_header(key, value)
        if resp.close or self.command == "POST" and resp.status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, fmt, *args):
        if self.server.quiet:
            return
        sys.stderr.write("%s - - [%s] %s\n" % (self.client_address[0], self.log_date_time_string(), fmt % args))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address, app, quiet=False):
        host = address[0]
        try:
            self.address_family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        except ValueError:
            pass
        self.app, self.quiet = app, quiet
        super().__init__(address, Handler)


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def parse_listen(text):
    """'127.0.0.1:8080', '[::1]:8080', ':8080' (loopback) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("--listen wants HOST:PORT, got %r" % text)
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)
