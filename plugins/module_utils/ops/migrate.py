# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vm_migrate module's work: find the VM on both sides, migrate it peer to peer, check the result.

``MigrateOps.move`` returns the module's result dict (check mode stops after planning). A failed
migration leaves the VM on the source with its definition; the source definition goes only once
the destination runs the VM. The decisions (flags, monitoring, what to do where) are migration's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.kvmfleet.iaas.plugins.module_utils import migration
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import (
    Conflict,
    DomainNotFound,
    MigrationUnsafe,
    ValidationError,
    VirtError,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.ops.ownership import find_visible_domain
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.domain import parse_domain
from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.spec import seed_of


class MigrateOps:
    """Migration of the VM ``name`` from ``src`` (a VirtConnection) to ``destination_uri``.

    ``connect_destination()`` opens the destination's VirtConnection (a context manager), after the
    source was read; ``destination`` is the destination's inventory name for the result (default:
    its hostname); ``warn`` shows a warning to the user.
    """

    def __init__(self, src, connect_destination, name, destination_uri, destination=None, poll_interval=0.25,
                 check_mode=False, warn=None, tenant=None):
        self.src = src
        self.tenant = tenant     # set: only that tenant's VM; another's is not found (ops/ownership.py)
        self.connect_destination = connect_destination
        self.name = name
        self.destination_uri = destination_uri
        self.destination = destination
        self.poll_interval = poll_interval
        self.check_mode = check_mode
        self.warn = warn or (lambda message: None)

    def move(self, options):
        """Bring the VM to the destination as ``options`` (migration.PLAN_OPTIONS) say."""
        src, name = self.src, self.name
        src_host = src.hostname()
        dom = find_visible_domain(src, name, self.tenant)
        src_state = src.domain_state(dom) if dom is not None else None
        with self.connect_destination() as dst:
            dst_host = dst.hostname()
            if migration.same_host(src_host, dst_host, src.host_uuid(), dst.host_uuid()):
                raise Conflict("%s: the destination %s is the source host %s" % (name, self.destination_uri, src_host),
                               source=src_host, destination=self.destination or dst_host)
            dst_dom = find_visible_domain(dst, name, self.tenant)
            dst_state = dst.domain_state(dst_dom) if dst_dom is not None else None
            result = dict(changed=False, source=src_host, destination=self.destination or dst_host,
                          unsafe_reason=None, postcopy=False, stats=None)
            action = migration.decide(src_state, dst_state)
            if action == migration.NOT_FOUND:
                raise DomainNotFound("VM %s is defined neither on %s nor on %s" % (name, src_host, dst_host),
                                     domain=name, source=src_host, destination=result["destination"])
            if action == migration.ALREADY_THERE:
                return dict(result, action="already_there")
            if action == migration.FINISH:
                result.update(action="finished", changed=True)
                if options["undefine_source"] and not self.check_mode:
                    src.undefine_domain(dom)
                return result
            plan = migration.plan_migration(options, active=(action == migration.MIGRATE))
            result.update(changed=True, flags=list(plan.flags), progress=[],
                          action="migrated" if action == migration.MIGRATE else "moved_offline")
            if plan.unsafe_reason:
                result["unsafe_reason"] = plan.unsafe_reason
                self.warn("libvirt's shared-storage check skipped: %s" % plan.unsafe_reason)
            seed = self.seed_to_carry(dom, plan)
            if seed is not None:
                result["seed_copied"] = True
            if self.check_mode:
                return result
            if seed is not None:
                self.carry_seed(dst, seed, result)
            return self.migrate(dst, dom, plan, result)

    def seed_to_carry(self, dom, plan):
        """The VM's cloud-init seed when its disks are copied: libvirt copies no read-only disk,
        so the destination needs the seed at the same path before the domain starts there."""
        if not ({"NON_SHARED_DISK", "NON_SHARED_INC"} & set(plan.flags)):
            return None
        return seed_of(parse_domain(self.src.domain_xml(dom, inactive=True)))

    def carry_seed(self, dst, path, result):
        directory, name = os.path.split(path)
        pool = dst.pool_for_path(directory)
        if pool is None:
            raise ValidationError("%s: the destination %s has no storage pool at %s for the VM's cloud-init seed"
                                  % (self.name, result["destination"], directory), path=path)
        if dst.lookup_volume(pool, name) is None:
            dst.upload_file(pool, name, path)

    def migrate(self, dst, dom, plan, result):
        src, name = self.src, self.name
        run = src.migrate_p2p(dom, self.destination_uri, plan.flags, plan.params,
                              max_downtime_ms=plan.max_downtime_ms,
                              monitor=lambda elapsed, stats, switched:
                                  migration.monitor_action(plan, elapsed, stats, switched),
                              poll_interval=self.poll_interval,
                              fast_poll_until_postcopy=plan.postcopy_after_iterations is not None)
        result["postcopy"] = run["switched_postcopy"]
        result["progress"] = migration.thin_samples(run["samples"])
        where = dict(domain=name, source=result["source"], destination=result["destination"],
                     progress=result["progress"])
        if run["error"] is not None:
            err = run["error"]
            if run["aborted"]:
                msg = ("%s: migration to %s did not finish within %g s and was aborted (%s); the VM still runs on %s"
                       % (name, result["destination"], plan.timeout, err, result["source"]))
                raise VirtError(msg, aborted=True, **where)
            state = self.state_after_failure(dom)
            hint = ""
            if isinstance(err, MigrationUnsafe):
                hint = (" (if both hosts see the disks at the same path through shared storage libvirt does "
                        "not recognise, say why in unsafe_reason: inventory kvmfleet_migration_unsafe_reason; "
                        "otherwise copy them with storage=copy_all or copy_incremental)")
            raise VirtError("%s: migration to %s failed: %s%s; on %s the VM is %s"
                            % (name, result["destination"], err, hint, result["source"], state),
                            aborted=False, source_state=state, **dict(err.details, **where))
        # The destination must run the VM before the source definition goes.
        dst_dom = dst.find_domain(name)
        dst_state = dst.domain_state(dst_dom) if dst_dom is not None else None
        expected = ("shutoff",) if plan.offline else ("running", "paused")
        if dst_state not in expected:
            raise VirtError("%s: libvirt reported the migration done, but on %s the VM is %s; the source "
                            "definition on %s is kept" % (name, result["destination"], dst_state or "missing",
                                                          result["source"]), **where)
        if not plan.offline:
            result["stats"] = migration.convert_job_stats(self.completed_stats(dom, dst, dst_dom))
        if plan.undefine_source:
            try:
                src.undefine_domain(dom)
            except DomainNotFound:
                pass
        return result

    def state_after_failure(self, dom):
        try:
            return self.src.domain_state(dom)
        except VirtError as err:
            return "unknown (%s)" % err

    def completed_stats(self, dom, dst, dst_dom):
        """Completed-job stats: the source keeps them on the (now inactive) domain; else the destination's."""
        for virt, domain in ((self.src, dom), (dst, dst_dom)):
            try:
                stats = virt.job_stats(domain, completed=True)
            except VirtError:
                continue
            if stats and stats.get("time_elapsed") is not None:
                return stats
        return {}
