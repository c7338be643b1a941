# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reservation files of dnsmasq's ``dhcp-hostsdir``: layout, locking, atomic writes.

Layout: one file per reservation, named by the MAC (``52-54-00-aa-bb-cc.conf``), holding one
hostsfile line ``MAC,IP[,NAME]``. dnsmasq reads a new file by itself (inotify on the
directory); a changed or removed file needs a SIGHUP, which is the caller's business
(``Change.needs_reload``). Names starting with ``.`` or ending with ``~`` are ignored by dnsmasq,
so the lock file (``.kvmfleet-dhcp.lock``) and temporary files (``.NAME.XXXX.tmp``) live in the
same directory without being read as reservations, and a rename onto the final name is one
inotify event with the complete content.

Allocation is read, choose, write under an exclusive ``flock`` on the lock file, so concurrent
callers (two create_vm runs) never choose the same address. Choosing is ``ipam``'s, the
line and lease formats are ``dnsmasq``'s; this file only reads and writes.

OS-level only: imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import fcntl
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Optional, Tuple

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import Conflict, KvmfleetError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network import ipam
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.dnsmasq import (
    parse_dhcp_hosts,
    parse_leases,
    render_dhcp_host,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.ipam import choose_ip
from ansible_collections.kvmfleet.iaas.plugins.module_utils.network.macaddr import normalize_mac


def missing_libraries():
    """What the DHCP modules need and cannot import: ipam's netaddr (as KvmfleetModule.missing_libraries)."""
    return ipam.missing_libraries()


DEFAULT_HOSTS_DIR = "/etc/kvmfleet/dhcp-hosts.d"
DEFAULT_LEASES_FILE = "/var/lib/misc/kvmfleet-dhcp.leases"
LOCK_NAME = ".kvmfleet-dhcp.lock"
SUFFIX = ".conf"
FILE_MODE = 0o644


def reservation_filename(mac):
    """The file name of ``mac``'s reservation: ``52-54-00-aa-bb-cc.conf``."""
    return normalize_mac(mac).replace(":", "-") + SUFFIX


def is_hosts_file(name):
    """Whether dnsmasq reads a file of this name in a hosts directory.

    dnsmasq skips dot files, editor backups (``name~``) and ``#autosave#`` files.
    """
    return bool(name) and not (name.startswith(".") or name.endswith("~")
                               or (name.startswith("#") and name.endswith("#")))


@dataclass(frozen=True)
class Reservation:
    """One MAC's IPv4 reservation and the file it is in."""

    mac: str
    ip: str
    name: Optional[str]
    file: str

    def to_dict(self):
        return dict(mac=self.mac, ip=self.ip, name=self.name, file=self.file)


@dataclass(frozen=True)
class Change:
    """A reservation file before and after (``None``: no file)."""

    file: str
    before: Optional[str]
    after: Optional[str]

    @property
    def changed(self):
        return self.before != self.after

    @property
    def action(self):
        if not self.changed:
            return "unchanged"
        if self.before is None:
            return "created"
        return "removed" if self.after is None else "updated"

    @property
    def needs_reload(self):
        """dnsmasq picks up new files by itself; changed and removed ones need a SIGHUP."""
        return self.changed and self.before is not None

    def diff(self):
        return dict(before=self.before or "", after=self.after or "",
                    before_header=self.file, after_header=self.file)


@dataclass(frozen=True)
class PresentPlan:
    """What reserving an address for a MAC does: the reservation, its file change, the choice."""

    reservation: Reservation
    change: Change
    previous: Optional[Reservation] = None
    reused: bool = False
    skipped: dict = field(default_factory=dict)


@dataclass(frozen=True)
class AbsentPlan:
    """The reservations removing by MAC or name deletes, and their file changes."""

    removed: Tuple[Reservation, ...] = ()
    changes: Tuple[Change, ...] = ()


class HostsDir:
    """A dnsmasq ``dhcp-hostsdir`` of one-file-per-MAC reservations."""

    def __init__(self, path):
        self.path = os.path.abspath(str(path))

    def exists(self):
        return os.path.isdir(self.path)

    def require(self):
        if not self.exists():
            raise KvmfleetError("hosts_dir %s does not exist; the kvmfleet.iaas.dhcp role creates it "
                                "(and points dnsmasq's dhcp-hostsdir at it)" % self.path, hosts_dir=self.path)

    def path_for(self, mac):
        return os.path.join(self.path, reservation_filename(mac))

    def files(self):
        """Paths of the files dnsmasq reads here, sorted; [] when the directory is missing."""
        try:
            names = os.listdir(self.path)
        except OSError as err:
            if err.errno == errno.ENOENT:
                return []
            raise
        return [os.path.join(self.path, name) for name in sorted(names)
                if is_hosts_file(name) and os.path.isfile(os.path.join(self.path, name))]

    @staticmethod
    def read_text(path):
        """A file's text, or None when it does not exist."""
        try:
            with open(path, "r") as handle:
                return handle.read()
        except (IOError, OSError) as err:
            if err.errno == errno.ENOENT:
                return None
            raise

    def reservations(self):
        """Every usable IPv4 reservation in the directory, one per MAC and file, in file order."""
        result = []
        for path in self.files():
            text = self.read_text(path)
            for host in parse_dhcp_hosts(text or ""):
                if host.ignore or host.ip is None:
                    continue
                for mac in host.macs:
                    result.append(Reservation(mac=mac, ip=host.ip, name=host.hostname, file=path))
        return result

    @contextlib.contextmanager
    def lock(self, exclusive=True):
        """Hold ``flock`` on the lock file: exclusive to change the directory, shared to read it.

        A shared lock never creates the lock file (check mode leaves no trace); without one
        there is no writer that could be holding it, so reading goes ahead unlocked.
        """
        lock_path = os.path.join(self.path, LOCK_NAME)
        fd = None
        if exclusive:
            self.require()
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        elif os.path.exists(lock_path):
            fd = os.open(lock_path, os.O_RDONLY)
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            if fd is not None:
                os.close(fd)  # closing releases the lock

    def write(self, path, content):
        """Replace ``path`` with ``content`` atomically: a hidden temporary file, fsync, rename."""
        directory = os.path.dirname(path)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
                handle.flush()
                os.fchmod(handle.fileno(), FILE_MODE)
                os.fsync(handle.fileno())
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._sync_dir(directory)

    def remove(self, path):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._sync_dir(os.path.dirname(path))

    @staticmethod
    def _sync_dir(directory):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def apply(self, changes):
        for change in changes:
            if not change.changed:
                continue
            if change.after is None:
                self.remove(change.file)
            else:
                self.write(change.file, change.after)


def read_leases(path, now=None):
    """dnsmasq's leases (``dnsmasq.Lease``) from ``path``; [] when the file does not exist yet."""
    text = HostsDir.read_text(path)
    return parse_leases(text or "", now=now)


def _foreign(reservations, mac, own_file):
    return [r for r in reservations if r.mac == mac and r.file != own_file]


def _refuse_foreign(foreign, mac):
    if foreign:
        raise Conflict("MAC %s is also reserved in %s, which kvmfleet does not manage (its reservations are "
                       "one file per MAC named like %s); remove that entry first"
                       % (mac, ", ".join(sorted(set(r.file for r in foreign))), reservation_filename(mac)),
                       mac=mac, files=sorted(set(r.file for r in foreign)))


def plan_present(hosts, mac, network, name=None, ip=None, ip_range=None, reserved=(), dhcp_pool=None,
                 leases=(), is_answering=None, order="lowest", reservations=None):
    """The reservation ``mac`` gets (``ipam.choose_ip`` decides) and the file change that makes it.

    Call it holding ``hosts.lock()``. ``reservations`` defaults to what ``hosts`` holds now.
    Raises ValidationError / Conflict as ``choose_ip`` does; a clash names the holder's file.
    """
    mac = normalize_mac(mac)
    own_file = hosts.path_for(mac)
    current = hosts.reservations() if reservations is None else list(reservations)
    _refuse_foreign(_foreign(current, mac, own_file), mac)
    # A MAC reserved twice by hand (two foreign files) still blocks both addresses.
    by_mac, extra = {}, []
    for entry in current:
        if entry.mac in by_mac and by_mac[entry.mac] != entry.ip:
            extra.append(entry.ip)
        else:
            by_mac[entry.mac] = entry.ip
    try:
        choice = choose_ip(network, mac, ip=ip, ip_range=ip_range, dhcp_pool=dhcp_pool,
                           reserved=list(reserved or ()) + extra, reservations=by_mac, leases=leases,
                           is_answering=is_answering, order=order)
    except Conflict as err:
        holders = err.details.get("macs")
        if holders:
            entries = [r for r in current if r.mac in holders and r.ip == err.details.get("ip")]
            where = "; ".join("reservation file %s%s" % (r.file, ", name %s" % r.name if r.name else "")
                              for r in entries) or "an active lease, no reservation"
            raise Conflict("%s: %s" % (err.msg, where),
                           holders=[r.to_dict() for r in entries], **err.details)
        raise
    after = render_dhcp_host(mac, choice.ip, name) + "\n"
    before = hosts.read_text(own_file)
    previous = next((r for r in current if r.mac == mac and r.file == own_file), None)
    reservation = Reservation(mac=mac, ip=choice.ip, name=name, file=own_file)
    return PresentPlan(reservation=reservation, change=Change(own_file, before, after), previous=previous,
                       reused=choice.reused, skipped=dict(choice.skipped))


def plan_absent(hosts, mac=None, name=None, reservations=None):
    """The files removing ``mac``'s reservation (or, without ``mac``, every one named ``name``) deletes."""
    if mac is None and name is None:
        raise ValueError("plan_absent needs mac or name")
    current = hosts.reservations() if reservations is None else list(reservations)
    if mac is not None:
        mac = normalize_mac(mac)
        own_file = hosts.path_for(mac)
        _refuse_foreign(_foreign(current, mac, own_file), mac)
        removed = [r for r in current if r.mac == mac]
        files = [own_file] if os.path.lexists(own_file) else []
    else:
        removed = [r for r in current if r.name == name]
        for entry in removed:
            _refuse_foreign([entry] if entry.file != hosts.path_for(entry.mac) else [], entry.mac)
        files = sorted(set(r.file for r in removed))
    changes = tuple(Change(path, hosts.read_text(path), None) for path in files)
    return AbsentPlan(removed=tuple(removed), changes=changes)


def reserve(hosts_dir, mac, network, leases_file=DEFAULT_LEASES_FILE, dry_run=False, **choice):
    """Read, choose and write ``mac``'s reservation in one exclusive lock; returns the PresentPlan.

    ``choice``: name, ip, ip_range, reserved, dhcp_pool, is_answering, order (see plan_present).
    ``dry_run`` takes a shared lock and writes nothing.
    """
    hosts = HostsDir(hosts_dir)
    hosts.require()
    with hosts.lock(exclusive=not dry_run):
        leases = read_leases(leases_file, now=time.time())
        plan = plan_present(hosts, mac, network, leases=leases, **choice)
        if not dry_run:
            hosts.apply([plan.change])
    return plan


def release(hosts_dir, mac=None, name=None, dry_run=False):
    """Remove ``mac``'s reservation (or those named ``name``) under the lock; returns the AbsentPlan."""
    hosts = HostsDir(hosts_dir)
    if not hosts.exists():
        return AbsentPlan()
    with hosts.lock(exclusive=not dry_run):
        plan = plan_absent(hosts, mac=mac, name=name)
        if not dry_run:
            hosts.apply(plan.changes)
    return plan
