# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each playbook takes from the user, and the range of every value: checked before anything runs.

``INPUTS`` names, per playbook, the variables it reads on the controller (``-e`` or inventory of
localhost), the inventory variables it reads on each hypervisor (``host_vars``) and the checks
of whole requests (a VM request, migrate_options, a scale request) that the pure validators of
module_utils make. ``check_inputs`` returns the values converted (numbers from ``-e`` strings) or
raises one ValidationError naming every bad value. The ``kvmfleet.iaas.decide`` action runs it as
the first task of each playbook (``inputs: PLAYBOOK``), so a bad value fails with its reason as
the task's message. The patrol's own options are the planner's (rebalance.options_from); the
patrol runs the planner before sampling to check them. See docs/playbooks.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.kvmfleet.iaas.plugins.module_utils import migration, scaling
from ansible_collections.kvmfleet.iaas.plugins.module_utils.cloudinit.keys import check_authorized_keys
from ansible_collections.kvmfleet.iaas.plugins.module_utils.cloudinit.seed import check_user_data
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.model import threshold
from ansible_collections.kvmfleet.iaas.plugins.module_utils.tenancy.tenants import Tenants
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import (
    REQUEST_FIELDS,
    Limits,
    check_label,
    check_name,
    coerce_int,
    validate_vm_request,
)

MISSING = object()
_TRUE = ("true", "yes", "on", "1", "y", "t")
_FALSE = ("false", "no", "off", "0", "n", "f")
_NUMBER_RE = re.compile(r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\s*$")
_LIMITS = Limits()


def _fail(name, value, rule):
    raise ValidationError("%s=%r: %s" % (name, value, rule), field=name, value=value)


def boolean(name, value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, str)) and str(value).strip().lower() in _TRUE + _FALSE:
        return str(value).strip().lower() in _TRUE
    _fail(name, value, "must be true or false")


def integer(low, high):
    def check(name, value):
        return coerce_int(name, value, minimum=low, maximum=high)
    check.doc = "integer %s to %s" % (low, high)
    return check


def number(low, high, low_included=True):
    """A float in [low, high] (or (low, high] when ``low_included`` is false)."""
    def check(name, value):
        if isinstance(value, bool) or not (isinstance(value, (int, float)) or
                                           (isinstance(value, str) and _NUMBER_RE.match(value))):
            _fail(name, value, "must be a number")
        found = float(value)
        if found < low or (found == low and not low_included) or found > high:
            _fail(name, value, "must be %s %s and <= %s" % (">=" if low_included else ">", low, high))
        return found
    check.doc = "number %s%s to %s" % ("" if low_included else "above ", low, high)
    return check


def choice(*choices):
    def check(name, value):
        if value not in choices:
            _fail(name, value, "must be one of %s" % ", ".join(choices))
        return value
    check.doc = " | ".join(choices)
    return check


def text(name, value):
    if not isinstance(value, str) or not value.strip():
        _fail(name, value, "must be a non-empty string")
    return value


def absolute_path(name, value):
    if not isinstance(value, str) or not value.startswith("/"):
        _fail(name, value, "must be an absolute path")
    return value


def file_name(name, value):
    if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
        _fail(name, value, "must be a file name without '/'")
    return value


def as_given(_name, value):
    """Checked with its whole request (see ``requests``), in the validator's own words."""
    return value


def vm_name(name, value):
    return check_name(value, field=name)


def live_threshold(name, value):
    return threshold(value, name)


def public_keys(name, value):
    return check_authorized_keys(value, name)


def cloud_config(name, value):
    check_user_data(value, name)
    return value


def hostname_label(name, value):
    return check_label(value, name)


def tenant_name(name, value):
    """A tenant's name: a label. Empty is refused rather than read as the operator's view, so a
    job template whose tenant variable came out empty shows nothing instead of everything."""
    if value == "":
        _fail(name, value, "must be a tenant's name; leave it out for the operator's view")
    return check_label(value, name)


boolean.doc, text.doc, absolute_path.doc, file_name.doc, vm_name.doc, as_given.doc = (
    "true | false", "text", "absolute path", "file name", "VM name (RFC 1123 label)", "see the request")
live_threshold.doc = "percentage, 0 < value <= 100, or off"
public_keys.doc = "list of SSH public keys (authorized_keys lines, no options)"
cloud_config.doc = "cloud-config text (#cloud-config first), at most 64 KiB, no passwords in clear"
hostname_label.doc = "hostname (RFC 1123 label)"
tenant_name.doc = "tenant name (RFC 1123 label) declared in kvmfleet_tenants"

# ---------------------------------------------------------------- whole requests


def hypervisor(name, value, context):
    hosts = context["hypervisors"]
    if value not in hosts:
        raise ValidationError("%s %s is not a hypervisor of the inventory (hypervisors: %s)"
                              % (name, value, ", ".join(hosts)), field=name, value=value)


def vm_request(values, context):
    """create_vm's request (kvmfleet_vm_defaults under the values given), without the hosts'
    sizes; vm_prepare checks it again against the largest host once the facts are in."""
    request = dict(context.get("kvmfleet_vm_defaults") or {})
    request.update((key, values[key]) for key in REQUEST_FIELDS if values.get(key) is not None)
    validate_vm_request(request, pool_dir=context.get("kvmfleet_image_dir") or "/srv/kvmfleet/images",
                        network=context.get("kvmfleet_vm_network"), path_exists=lambda _path: True)


# vm_migrate's option types; the ranges and combinations are migration.plan_migration's.
MIGRATE_OPTIONS = dict(
    live=boolean, persistent=boolean, undefine_source=boolean, auto_converge=boolean, post_copy=boolean,
    storage=choice(*migration.STORAGE_MODES), compression=choice(*migration.COMPRESSION_METHODS),
    timeout_action=choice(*migration.TIMEOUT_ACTIONS),
    auto_converge_initial=integer(1, 99), auto_converge_increment=integer(1, 99),
    post_copy_after_seconds=number(0, 86400), post_copy_after_iterations=integer(0, 1000),
    bandwidth=integer(1, 1024 * 1024), max_downtime=integer(1, 3600 * 1000), parallel_connections=integer(1, 255),
    migration_timeout=number(0, 86400, low_included=False), timeout=number(0, 86400, low_included=False))


def migrate_options(values, context):
    options = values.get("migrate_options")
    if options is None:
        return
    if not isinstance(options, dict):
        _fail("migrate_options", options, "must be a dict of vm_migrate options, e.g. "
                                          "-e '{\"migrate_options\": {\"bandwidth\": 100}}'")
    unknown = sorted(set(options) - set(MIGRATE_OPTIONS))
    if unknown:
        raise ValidationError("unknown migrate_options %s; known: %s" % (", ".join(unknown), ", ".join(sorted(MIGRATE_OPTIONS))),
                              field="migrate_options")
    checked = {key: MIGRATE_OPTIONS[key]("migrate_options.%s" % key, value)
               for key, value in options.items() if value is not None}
    migration.plan_migration(checked)
    values["migrate_options"] = checked


# A VM as large as a VM may be: relative steps down from it never hit the minimum spuriously.
_LARGEST = scaling.Sizes(vcpus=_LIMITS.vcpus_ceiling, vcpus_max=_LIMITS.vcpus_ceiling,
                         memory_mb=_LIMITS.memory_ceiling_mb, memory_max_mb=_LIMITS.memory_ceiling_mb)


def scale_request(values, context):
    """scale_vm's new size as vm_scale works it out (its messages), without the VM's current
    sizes: those, and the VM's maxima, are the module's check on the host."""
    fields = ("vcpus", "memory_mb", "resource", "direction", "step")
    scaling.target_sizes(_LARGEST, **{key: values.get(key) for key in fields})
    coerce_int("vcpus", values.get("vcpus"), maximum=_LIMITS.vcpus_ceiling, required=False)
    coerce_int("memory_mb", values.get("memory_mb"), maximum=_LIMITS.memory_ceiling_mb, required=False)


# The inventory's tenants (docs/tenancy.md), read on the controller: declare them in group `all`.
TENANCY_VARS = ("kvmfleet_tenants", "kvmfleet_tenant_default_quota")


def known_tenant(values, context):
    """The tenant given is declared in kvmfleet_tenants (whose schema is checked with it)."""
    if values.get("tenant") is not None:
        Tenants(context.get("kvmfleet_tenants"), context.get("kvmfleet_tenant_default_quota")).check(values["tenant"])


def operator_only(*names, **why):
    """With a tenant, none of ``names`` may be given: they pick hosts or skip the checks that keep
    tenants apart (``why`` per name says why; the default: hosts are the operator's business)."""
    def check(values, context):
        if values.get("tenant") is None:
            return
        given = [name for name in names if values.get(name) not in (None, "", False)]
        if given:
            raise ValidationError("; ".join("%s is not for a tenant's request: %s"
                                            % (name, why.get(name, "the fleet picks the host")) for name in given),
                                  field=given[0])
    return check


_UNREACHABLE_WHY = dict(ignore_unreachable="a tenant's usage is counted over the whole fleet, "
                                           "so every hypervisor must be read")
# A kernel or initrd is any file of the pool that QEMU reads: a tenant boots its images, the
# operator's kernel (kvmfleet_vm_defaults) boots them.
_KERNEL_WHY = dict((name, "the kernel a VM boots is the operator's (kvmfleet_vm_defaults)")
                   for name in ("kernel", "initrd", "cmdline"))


def required(*names, **hint):
    """Each of ``names`` given (``a|b``: one of them at least), else the playbook's usage line."""
    def check(values, context):
        missing = [name for name in names if all(values.get(one) in (None, "") for one in name.split("|"))]
        if missing:
            raise ValidationError(hint["usage"], field=missing[0].split("|")[0])
    return check


# ---------------------------------------------------------------- the table

_COMMON = dict(ignore_unreachable=boolean, report_file=text)
_SAMPLE = dict(kvmfleet_sample_seconds=number(0, 60), kvmfleet_image_dir=absolute_path)


# Placement's live-utilization thresholds, per hypervisor (placement checks them again).
_THRESHOLDS = dict(kvmfleet_cpu_threshold=live_threshold, kvmfleet_memory_threshold=live_threshold)
_PLACED = dict(_SAMPLE, **_THRESHOLDS)
_VM_FIELDS = dict(
    name=vm_name, vcpus=integer(1, _LIMITS.vcpus_ceiling), vcpus_max=integer(1, _LIMITS.vcpus_ceiling),
    memory_mb=integer(_LIMITS.memory_min_mb, _LIMITS.memory_ceiling_mb),
    memory_max_mb=integer(_LIMITS.memory_min_mb, _LIMITS.memory_ceiling_mb),
    disk_gb=integer(0, _LIMITS.disk_ceiling_gb))
_PLACEMENT = dict(policy=choice("anti-affinity", "affinity"), strategy=choice("balanced", "spread", "pack"))
_SCALE_USAGE = ("say which VM and what size: -e vm=NAME -e vcpus=N -e memory_mb=M, "
                "or -e vm=NAME -e resource=cpu|memory -e direction=up|down [-e step=S]")
_CREATE = dict(dict.fromkeys(_VM_FIELDS, as_given), address_timeout=integer(2, 3600), **_PLACEMENT)

INPUTS = {
    "create_vm": dict(
        vars=dict(_CREATE, image=text, kernel=text, initrd=text, cmdline=text, ip=text, ip_range=text, group=text,
                  ssh_authorized_keys=public_keys, user_data=cloud_config, hostname=hostname_label,
                  tenant=tenant_name, **_COMMON),
        hosts=dict(host=hypervisor), host_vars=_PLACED,
        reads=("kvmfleet_vm_defaults", "kvmfleet_image_dir", "kvmfleet_vm_network", "kvmfleet_public_images") + TENANCY_VARS,
        requests=(vm_request, known_tenant, operator_only("host", "ignore_unreachable", "kernel", "initrd", "cmdline",
                                                          **dict(_UNREACHABLE_WHY, **_KERNEL_WHY)))),
    "delete_vm": dict(vars=dict(name=text, tenant=tenant_name, **_COMMON), reads=TENANCY_VARS,
                      requests=(required("name", usage="give the VM to delete: -e name=NAME"), known_tenant)),
    "power_vm": dict(vars=dict(name=vm_name, state=choice("running", "stopped"), tenant=tenant_name,
                               stop_timeout=number(0, 3600), **_COMMON), reads=TENANCY_VARS,
                     requests=(required("name", "state", usage="say which VM and how: -e name=NAME -e state=running|stopped"),
                               known_tenant)),
    "migrate_vm": dict(vars=dict(vm=text, policy=_PLACEMENT["policy"], migrate_options=dict, tenant=tenant_name),
                       hosts=dict(target=hypervisor), host_vars=_PLACED, reads=TENANCY_VARS,
                       requests=(required("vm", usage="say which VM: -e vm=NAME [-e target=HOST]"), migrate_options,
                                 known_tenant, operator_only("target", "migrate_options",
                                                             migrate_options="how a VM moves is the operator's"))),
    "evacuate_host": dict(vars=dict(parallel=integer(1, 100), maintenance=boolean, maintenance_reason=text,
                                    policy=_PLACEMENT["policy"], migrate_options=dict),
                          hosts=dict(host=hypervisor), host_vars=_PLACED,
                          requests=(required("host", usage="say which host: -e host=NODE [-e parallel=N] "
                                                           "[-e maintenance=false]"), migrate_options)),
    "scale_vm": dict(vars=dict(vm=text, vcpus=as_given, memory_mb=as_given, resource=as_given, direction=as_given,
                               step=as_given, allow_restart=boolean,
                               stop_timeout=number(0, 3600, low_included=False), wait=number(0, 3600),
                               report_file=text, tenant=tenant_name),
                     host_vars=_PLACED, reads=TENANCY_VARS,
                     requests=(required("vm", "vcpus|memory_mb|resource|direction", usage=_SCALE_USAGE),
                               scale_request, known_tenant)),
    "patrol": dict(vars=dict(apply=boolean, parallel=integer(1, 100), kvmfleet_patrol_parallel=integer(1, 100),
                             kvmfleet_patrol_state_dir=text, migrate_options=dict, report_file=text),
                   host_vars=dict(kvmfleet_patrol_sample_seconds=number(0, 60),
                                  kvmfleet_patrol_migration_timeout=number(0, 86400, low_included=False),
                                  kvmfleet_image_dir=absolute_path,
                                  kvmfleet_patrol_cpu_threshold=live_threshold, kvmfleet_patrol_memory_threshold=live_threshold,
                                  **_THRESHOLDS),
                   requests=(migrate_options,)),
    "submit_vm": dict(
        # image_src, domain_xml and image_checksum: the playbook's own checks (paths on the controller)
        vars=dict(_CREATE, **dict(_VM_FIELDS, image_src=text, domain_xml=text, image_name=file_name, image_format=choice("auto", "qcow2", "raw"),
                  kvmfleet_image_max_virtual_gb=integer(1, _LIMITS.disk_ceiling_gb), tenant=tenant_name, **_COMMON)),
        hosts=dict(host=hypervisor), host_vars=_PLACED, reads=TENANCY_VARS,
        requests=(required("name", "image_src", usage="give the VM's name and the disk image on this controller: "
                                                      "-e name=NAME -e image_src=/path/to/disk.qcow2"),
                  known_tenant, operator_only("host", "ignore_unreachable", "kernel", "initrd", "cmdline",
                                              **dict(_UNREACHABLE_WHY, **_KERNEL_WHY)))),
    "fleet_status": dict(vars=dict(sample_seconds=number(0, 60), report_file=text, tenant=tenant_name), host_vars=_SAMPLE,
                         reads=TENANCY_VARS + ("kvmfleet_public_images",), requests=(known_tenant,)),
    "setup_node": dict(vars=dict(target=text, setup_nfs=boolean, setup_ganglia=boolean)),
    "graphs": dict(vars=dict(ganglia_graphs_fetch_dir=text, ganglia_graphs_width=integer(100, 4000),
                             ganglia_graphs_height=integer(50, 2000))),
}


def names(playbook):
    """(controller variables, per-hypervisor variables) that ``check_inputs`` reads for ``playbook``."""
    spec = _spec(playbook)
    return (tuple(spec.get("vars", {})) + tuple(spec.get("hosts", {})) + tuple(spec.get("reads", ())),
            tuple(spec.get("host_vars", {})))


def check_inputs(playbook, given, host_given=None, hypervisors=()):
    """Check what the user gave ``playbook`` (``given``: {variable: value}, absent = not given;
    ``host_given``: {hypervisor: {variable: value}}); return {variable: converted value}.
    Raises one ValidationError that names every bad value, in table order."""
    spec = _spec(playbook)
    context = dict(given, hypervisors=list(hypervisors))
    problems, values = [], {}
    for name, rule in spec.get("vars", {}).items():
        value = given.get(name, MISSING)
        if value is MISSING or value is None:
            continue
        if rule is dict:
            values[name] = value
            continue
        try:
            values[name] = rule(name, value)
        except ValidationError as err:
            problems.append(str(err))
    for name, rule in spec.get("hosts", {}).items():
        value = given.get(name, MISSING)
        if value not in (MISSING, None, ""):
            try:
                rule(name, value, context)
                values[name] = value
            except ValidationError as err:
                problems.append(str(err))
    for host, found in sorted((host_given or {}).items()):
        for name, rule in spec.get("host_vars", {}).items():
            value = found.get(name, MISSING)
            if value is not MISSING and value is not None:
                try:
                    rule(name, value)
                except ValidationError as err:
                    problems.append("%s (on %s)" % (err, host))
    if not problems:
        for check in spec.get("requests", ()):
            try:
                check(values, context)
            except KvmfleetError as err:
                problems.append(str(err))
    if problems:
        raise ValidationError("; ".join(problems), problems=problems)
    return values


def _spec(playbook):
    try:
        return INPUTS[playbook]
    except KeyError:
        raise ValidationError("no input checks for playbook %r (known: %s)" % (playbook, ", ".join(sorted(INPUTS))))
