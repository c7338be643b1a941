"""python3 -m dashboard --listen 127.0.0.1:8080 --inventory inventory/example.yml --graphs-dir DIR
    [--admin-password-file FILE] [--state-dir DIR] ...   (docs/dashboard.md)"""
import argparse
import os
import sys

from dashboard.app import App, Config
from dashboard.fleet import FixedFleetSource, FleetSource, ansible_env
from dashboard.devpath_import import REPO
from dashboard.jobs import JobRunner
from dashboard.server import Server, is_loopback, parse_listen


def _read_secret(path, what):
    if not path:
        return None
    with open(path) as fh:
        value = fh.read().strip()
    if len(value) < 8:
        sys.exit("%s in %s is shorter than 8 characters" % (what, path))
    return value


def _default_ansible_playbook():
    beside = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return beside if os.access(beside, os.X_OK) else "ansible-playbook"


def build(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m dashboard", description="kvmfleet web dashboard")
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (default 127.0.0.1:8080)")
    p.add_argument("--inventory", "-i", help="inventory passed to every playbook (-i); default: ansible.cfg's")
    p.add_argument("--graphs-dir", help="directory with the PNGs and index.json of graphs.yml")
    p.add_argument("--admin-password-file", help="file holding the admin password; without it /admin is off")
    p.add_argument("--customer-password-file", help="file holding a password for the customer page")
    p.add_argument("--open-customer-page", action="store_true",
                   help="allow the customer page without a password on a non-loopback address")
    p.add_argument("--state-dir", default=os.path.expanduser("~/.cache/kvmfleet-dashboard"),
                   help="job logs, fleet report, uploads (made 0700)")
    p.add_argument("--ansible-playbook", default=_default_ansible_playbook())
    p.add_argument("--ansible-config", help="ANSIBLE_CONFIG (default: the checkout's ansible.cfg)")
    p.add_argument("--fleet-ttl", type=float, default=30.0, help="seconds a fleet status is kept (30)")
    p.add_argument("--fleet-json", help="serve this fleet_status JSON file instead of running the playbook")
    p.add_argument("--max-jobs", type=int, default=2, help="playbooks running at once (2)")
    p.add_argument("--max-upload-mb", type=int, default=8192, help="largest disk image upload, MiB (8192)")
    p.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure (behind TLS)")
    p.add_argument("--quiet", action="store_true", help="no access log")
    args = p.parse_args(argv)

    host, port = parse_listen(args.listen)
    admin_pw = _read_secret(args.admin_password_file, "the admin password")
    customer_pw = _read_secret(args.customer_password_file, "the customer password")
    if not is_loopback(host) and customer_pw is None and not args.open_customer_page:
        p.error("listening on %s (not loopback) opens the customer page to that network: give "
                "--customer-password-file, or --open-customer-page to mean it" % host)
    os.makedirs(args.state_dir, mode=0o700, exist_ok=True)
    env = ansible_env(ansible_config=args.ansible_config)
    if args.fleet_json:
        fleet = FixedFleetSource(path=args.fleet_json)
    else:
        fleet = FleetSource(os.path.join(args.state_dir, "fleet"), ansible_playbook=args.ansible_playbook,
                            inventory=args.inventory, ttl=args.fleet_ttl, env=env, cwd=str(REPO))
    jobs = JobRunner(os.path.join(args.state_dir, "jobs"), env=env, cwd=str(REPO), max_running=args.max_jobs,
                     on_finish=lambda job: fleet.invalidate())
    config = Config(state_dir=args.state_dir, graphs_dir=args.graphs_dir, admin_password=admin_pw,
                    customer_password=customer_pw, inventory=args.inventory, ansible_playbook=args.ansible_playbook,
                    max_upload_bytes=args.max_upload_mb * 1024 * 1024, secure_cookies=args.secure_cookies)
    app = App(config, fleet, jobs)
    return Server((host, port), app, quiet=args.quiet), admin_pw is not None


def main(argv=None):
    server, admin = build(argv)
    host, port = server.server_address[:2]
    print("kvmfleet dashboard on http://%s:%d/ (admin pages %s)"
          % (host if ":" not in host else "[%s]" % host, port,
             "at /admin" if admin else "off: no --admin-password-file"), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
