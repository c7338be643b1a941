# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Live migration, the pure part: options -> flags and parameters, monitoring decisions,
completed-job statistics -> result, and what to do given where the VM is.

Flags and parameters are named by the suffix of libvirt's constant (``"LIVE"`` for
``VIR_MIGRATE_LIVE``, ``"BANDWIDTH"`` for ``VIR_MIGRATE_PARAM_BANDWIDTH``); libvirt/migration.py
(``migration_flags``, ``migration_params``) turns the names into libvirt's values, and
ops/migrate.py runs the migration. This file imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from urllib.parse import urlsplit

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

STORAGE_MODES = ("shared", "copy_all", "copy_incremental")
COMPRESSION_METHODS = ("none", "xbzrle", "mt")
TIMEOUT_ACTIONS = ("abort", "postcopy")
SECURE_SCHEMES = ("qemu+ssh", "qemu+tls")
INSECURE_SCHEMES = ("qemu+tcp",)

# What the module does, given where the VM is (decide()).
MIGRATE = "migrate"              # running (or paused) on the source: live migration
MIGRATE_OFFLINE = "offline"      # defined but shut off on the source: move the definition
ALREADY_THERE = "already_there"  # not on the source, present on the destination: ok, unchanged
FINISH = "finish"                # on both, running only on the destination: undefine the source
NOT_FOUND = "not_found"

_MIB = 1024 * 1024

# default for post_copy without a trigger: switch once the first full pass of memory is sent
DEFAULT_POSTCOPY_AFTER_ITERATIONS = 1
# The options of plan_migration, as the vm_migrate module names them.
PLAN_OPTIONS = ("live", "persistent", "undefine_source", "storage", "unsafe_reason", "auto_converge",
                "auto_converge_initial", "auto_converge_increment", "post_copy",
                "post_copy_after_seconds", "post_copy_after_iterations", "bandwidth", "max_downtime",
                "compression", "parallel_connections", "migration_timeout", "timeout_action")


class MigrationPlan:
    """What one migration will do. ``flags``: libvirt flag names; ``params``: {param name: value}."""

    __slots__ = ("flags", "params", "max_downtime_ms", "timeout", "timeout_action", "postcopy",
                 "postcopy_after_seconds", "postcopy_after_iterations", "undefine_source", "unsafe_reason",
                 "offline")

    def __init__(self, **kwargs):
        for key in self.__slots__:
            setattr(self, key, kwargs.get(key))

    def to_dict(self):
        return dict((key, getattr(self, key)) for key in self.__slots__)


def _positive(options, key, integer=True, allow_zero=False):
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and int(value) != value):
        raise ValidationError("%s must be a%s number, not %r" % (key, "n integer" if integer else "", value),
                              option=key)
    if value < 0 or (value == 0 and not allow_zero):
        raise ValidationError("%s must be %s, not %r" % (key, ">= 0" if allow_zero else "> 0", value), option=key)
    return int(value) if integer else float(value)


def check_destination_uri(uri, allow_insecure=False):
    """Refuse a destination URI that is not remote libvirt over SSH or TLS (TCP only if allowed)."""
    if not uri or not isinstance(uri, str):
        raise ValidationError("destination_uri is required")
    parts = urlsplit(uri)
    scheme = parts.scheme
    if not parts.hostname:
        raise ValidationError("destination_uri %s names no host" % uri, option="destination_uri")
    if scheme in INSECURE_SCHEMES:
        if not allow_insecure:
            raise ValidationError(
                "destination_uri %s is plain TCP (no authentication, no encryption); set "
                "allow_insecure_transport only where the inventory asks for it (kvm_migration_transport: tcp)"
                % uri, option="destination_uri")
    elif scheme not in SECURE_SCHEMES:
        raise ValidationError("destination_uri %s: the transport must be one of %s%s"
                              % (uri, ", ".join(SECURE_SCHEMES),
                                 " (or qemu+tcp with allow_insecure_transport)"),
                              option="destination_uri")
    if parts.path not in ("/system", "/system/"):
        raise ValidationError("destination_uri %s must name the system instance (/system)" % uri,
                              option="destination_uri")
    return uri


def plan_migration(options, active=True):
    """A MigrationPlan from the module's options (a dict; absent keys take the defaults).

    ``active``: whether the VM runs on the source; a shut-off VM is moved offline (its definition
    only). Raises ValidationError before anything is touched.
    """
    o = dict(options)
    live = o.get("live", True)
    persistent = o.get("persistent", True)
    undefine_source = o.get("undefine_source", True)
    storage = o.get("storage") or "shared"
    compression = o.get("compression") or "none"
    timeout_action = o.get("timeout_action") or "abort"
    post_copy = bool(o.get("post_copy", False))
    auto_converge = bool(o.get("auto_converge", False))
    unsafe_reason = o.get("unsafe_reason")

    if storage not in STORAGE_MODES:
        raise ValidationError("storage must be one of %s, not %r" % (", ".join(STORAGE_MODES), storage),
                              option="storage")
    if compression not in COMPRESSION_METHODS:
        raise ValidationError("compression must be one of %s, not %r" % (", ".join(COMPRESSION_METHODS), compression),
                              option="compression")
    if timeout_action not in TIMEOUT_ACTIONS:
        raise ValidationError("timeout_action must be one of %s, not %r" % (", ".join(TIMEOUT_ACTIONS), timeout_action),
                              option="timeout_action")
    bandwidth = _positive(o, "bandwidth")
    max_downtime = _positive(o, "max_downtime")
    parallel = _positive(o, "parallel_connections")
    timeout = _positive(o, "migration_timeout", integer=False)
    after_seconds = _positive(o, "post_copy_after_seconds", integer=False, allow_zero=True)
    after_iterations = _positive(o, "post_copy_after_iterations", allow_zero=True)
    ac_initial = _positive(o, "auto_converge_initial")
    ac_increment = _positive(o, "auto_converge_increment")
    for key, value in (("auto_converge_initial", ac_initial), ("auto_converge_increment", ac_increment)):
        if value is not None and not auto_converge:
            raise ValidationError("%s needs auto_converge=true" % key, option=key)
        if value is not None and value > 99:
            raise ValidationError("%s is a percentage of CPU time, 1 to 99, not %s" % (key, value), option=key)

    if undefine_source and not persistent:
        raise ValidationError("undefine_source without persistent would leave the VM defined nowhere",
                              option="undefine_source")
    if unsafe_reason is not None and not str(unsafe_reason).strip():
        raise ValidationError("unsafe_reason must say why libvirt's storage check may be skipped",
                              option="unsafe_reason")
    if unsafe_reason and storage != "shared":
        raise ValidationError("unsafe_reason only applies to storage=shared (copying storage is safe)",
                              option="unsafe_reason")
    if (after_seconds is not None or after_iterations is not None) and not post_copy:
        raise ValidationError("post_copy_after_seconds/iterations need post_copy=true", option="post_copy")
    if post_copy or timeout_action == "postcopy":
        if not live:
            raise ValidationError("post-copy needs a live migration (live=true)", option="post_copy")
    if timeout_action == "postcopy" and timeout is None:
        raise ValidationError("timeout_action=postcopy needs migration_timeout", option="timeout_action")
    if compression != "none" and parallel is not None:
        raise ValidationError("compression %s cannot be combined with parallel_connections on this libvirt"
                              % compression, option="compression")

    if not active:
        # Offline: only the definition moves; there is nothing to stream, converge or copy.
        if not persistent:
            raise ValidationError("a shut-off VM can only be moved with persistent=true", option="persistent")
        live_only = [k for k in ("bandwidth", "max_downtime", "parallel_connections", "migration_timeout",
                                 "auto_converge_initial", "auto_converge_increment")
                     if o.get(k) is not None]
        if post_copy or auto_converge or compression != "none" or storage != "shared" or live_only:
            raise ValidationError("the VM is shut off: only its definition moves, so live-migration options "
                                  "(%s) do not apply" % ", ".join(live_only + [k for k, v in (
                                      ("post_copy", post_copy), ("auto_converge", auto_converge),
                                      ("compression", compression != "none"),
                                      ("storage", storage != "shared")) if v]),
                                  option="live")
        return MigrationPlan(flags=("PEER2PEER", "OFFLINE", "PERSIST_DEST"), params={}, max_downtime_ms=None,
                             timeout=None, timeout_action=None, postcopy=False, postcopy_after_seconds=None,
                             postcopy_after_iterations=None, undefine_source=undefine_source,
                             unsafe_reason=None, offline=True)

    flags = ["PEER2PEER", "ABORT_ON_ERROR"]
    if live:
        flags.append("LIVE")
    if persistent:
        flags.append("PERSIST_DEST")
    if storage == "copy_all":
        flags.append("NON_SHARED_DISK")
    elif storage == "copy_incremental":
        flags.append("NON_SHARED_INC")
    elif unsafe_reason:
        flags.append("UNSAFE")
    if auto_converge:
        flags.append("AUTO_CONVERGE")
    postcopy = post_copy or timeout_action == "postcopy"
    if postcopy:
        flags.append("POSTCOPY")
    params = {}
    if bandwidth is not None:
        params["BANDWIDTH"] = bandwidth
        if postcopy:
            params["BANDWIDTH_POSTCOPY"] = bandwidth
    if ac_initial is not None:
        params["AUTO_CONVERGE_INITIAL"] = ac_initial
    if ac_increment is not None:
        params["AUTO_CONVERGE_INCREMENT"] = ac_increment
    if compression != "none":
        flags.append("COMPRESSED")
        params["COMPRESSION"] = compression
    if parallel is not None:
        flags.append("PARALLEL")
        params["PARALLEL_CONNECTIONS"] = parallel
    if post_copy and after_seconds is None and after_iterations is None:
        after_iterations = DEFAULT_POSTCOPY_AFTER_ITERATIONS
    return MigrationPlan(flags=tuple(flags), params=params, max_downtime_ms=max_downtime, timeout=timeout,
                         timeout_action=timeout_action if timeout is not None else None, postcopy=postcopy,
                         postcopy_after_seconds=after_seconds if post_copy else None,
                         postcopy_after_iterations=after_iterations if post_copy else None,
                         undefine_source=undefine_source, unsafe_reason=unsafe_reason, offline=False)


def monitor_action(plan, elapsed, stats, switched):
    """What to do now during a running migration: None, "postcopy" or "abort".

    ``stats``: the current job stats (raw libvirt dict, may be empty); ``switched``: whether
    post-copy was already started. After the switch nothing can be aborted: the destination
    has the only up-to-date copy of part of the memory.
    """
    if switched:
        return None
    stats = stats or {}
    if plan.postcopy_after_seconds is not None and elapsed >= plan.postcopy_after_seconds:
        return "postcopy"
    iteration = stats.get("memory_iteration")
    if plan.postcopy_after_iterations is not None and iteration is not None \
            and iteration > plan.postcopy_after_iterations:
        return "postcopy"
    if plan.timeout is not None and elapsed >= plan.timeout:
        return "postcopy" if plan.timeout_action == "postcopy" else "abort"
    return None


def _mib(value, digits=1):
    return None if value is None else round(value / _MIB, digits)


def convert_job_stats(stats):
    """libvirt (completed) job stats -> the module's ``stats`` result."""
    stats = stats or {}
    page = stats.get("memory_page_size") or 4096
    dirty_pages = stats.get("memory_dirty_rate")
    data = stats.get("data_processed")
    memory = stats.get("memory_processed")
    return dict(
        total_time_ms=stats.get("time_elapsed"),
        downtime_ms=stats.get("downtime"),
        setup_time_ms=stats.get("setup_time"),
        data_transferred_mib=_mib(data),
        data_transferred_bytes=data,
        memory_transferred_mib=_mib(memory),
        memory_total_mib=_mib(stats.get("memory_total")),
        disk_transferred_mib=_mib(stats.get("disk_processed")),
        memory_iterations=stats.get("memory_iteration"),
        dirty_rate_mib_s=None if dirty_pages is None else round(dirty_pages * page / _MIB, 2),
        bandwidth_mib_s=_mib(stats.get("memory_bps"), 2),
        postcopy_requests=stats.get("memory_postcopy_requests"),
        auto_converge_throttle_percent=stats.get("auto_converge_throttle"),
    )


def progress_sample(elapsed, stats):
    """One line of the migration's progress (what the monitor saw at ``elapsed`` seconds)."""
    stats = stats or {}
    page = stats.get("memory_page_size") or 4096
    dirty = stats.get("memory_dirty_rate")
    return dict(elapsed_s=round(elapsed, 2), iteration=stats.get("memory_iteration"),
                remaining_mib=_mib(stats.get("memory_remaining")),
                transferred_mib=_mib(stats.get("data_processed")),
                dirty_rate_mib_s=None if dirty is None else round(dirty * page / _MIB, 2),
                throttle_percent=stats.get("auto_converge_throttle"))


def thin_samples(samples, every=1.0):
    """Progress samples (``(elapsed, stats)`` pairs), at most one per ``every`` seconds, plus the last one."""
    out, last = [], None
    for elapsed, stats in samples:
        if last is None or elapsed - last >= every:
            out.append(progress_sample(elapsed, stats))
            last = elapsed
    if samples and (not out or out[-1]["elapsed_s"] != round(samples[-1][0], 2)):
        out.append(progress_sample(*samples[-1]))
    return out


def decide(source_state, destination_state):
    """What to do given the VM's state on each side (a state name, or None when not defined).

    States as in facts.state_name(): running, paused, shutoff, crashed, pmsuspended, other.
    """
    active = ("running", "paused", "pmsuspended")
    if source_state in active:
        return MIGRATE
    if source_state is None:
        return ALREADY_THERE if destination_state is not None else NOT_FOUND
    # defined but not running on the source
    if destination_state in active:
        return FINISH
    return MIGRATE_OFFLINE


def same_host(source_hostname, destination_hostname, source_uuid=None, destination_uuid=None):
    """Whether both connections reach the same hypervisor."""
    if source_uuid and destination_uuid and source_uuid == destination_uuid:
        return True
    return bool(source_hostname) and source_hostname == destination_hostname
