# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's ledger of quota claims: one JSON file per tenant in a state directory,
read, checked and written under an exclusive ``flock``, so that two creates of one tenant at
the same moment cannot both pass its quota (the second sees the first's claim). As the DHCP
reservations' store does on the DHCP server (module_utils/network/dhcp_store.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import fcntl
import json
import os
import tempfile
import time

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.quota import assess, live_claims

DEFAULT_STATE_DIR = "~/.local/state/kvmfleet/quota"


class QuotaLedger:
    def __init__(self, state_dir=None, clock=time.time):
        self.state_dir = os.path.expanduser(state_dir or DEFAULT_STATE_DIR)
        self.clock = clock

    def _path(self, tenant):
        return os.path.join(self.state_dir, "%s.json" % tenant)

    @contextlib.contextmanager
    def _locked(self, tenant):
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.state_dir, "%s.lock" % tenant), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self, tenant):
        try:
            with open(self._path(tenant)) as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return {}
        except ValueError as err:
            raise ValidationError("the quota ledger %s is not JSON (%s); remove it to start afresh"
                                  % (self._path(tenant), err))
        return data if isinstance(data, dict) else {}

    def _write(self, tenant, claims):
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".%s." % tenant)
        with os.fdopen(fd, "w") as handle:
            json.dump(claims, handle, sort_keys=True)
        os.replace(tmp, self._path(tenant))

    def claims(self, tenant):
        """The tenant's live claims {key: {demand, expires}}. Read without the lock: a write
        replaces the file whole (os.replace), so a reader sees the old ledger or the new one."""
        return live_claims(self._read(tenant), self.clock())

    def request(self, tenant, quota, used, vm, demand, visible_vms=(), record=True):
        """Check ``vm``'s claim (tenancy.quota.assess) and, with ``record``, write it, under the
        tenant's lock; {used, asked, after}. Without ``record`` (check mode) nothing is written,
        not even the state directory or the lock file."""
        if not record:
            return assess(tenant, quota, used, self._read(tenant), vm, demand, self.clock(), visible_vms)[1]
        with self._locked(tenant):
            claims, report = assess(tenant, quota, used, self._read(tenant), vm, demand, self.clock(), visible_vms)
            self._write(tenant, claims)
            return report

    def claim(self, tenant, quota, used, vm, demand, visible_vms=()):
        """Check and record ``vm``'s claim under the tenant's lock; the tenant's claims after it."""
        self.request(tenant, quota, used, vm, demand, visible_vms)
        return self.claims(tenant)

    def release(self, tenant, vm, record=True):
        """Drop ``vm``'s claim (its create finished, or failed and removed what it made); whether
        there was one. Without ``record`` (check mode) only says whether there is one."""
        if not record:
            return vm in self.claims(tenant)
        with self._locked(tenant):
            claims = live_claims(self._read(tenant), self.clock())
            had = claims.pop(vm, None) is not None
            self._write(tenant, claims)
            return had
