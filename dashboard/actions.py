"""Requests of the dashboard's forms -> validated actions -> ansible-playbook argument lists.

Pure: no HTTP, no subprocess. Every ``validate_*`` takes the form fields (a dict of str) and the
fleet report (fleet_status.yml's JSON) and returns an ``Action``, or raises ``BadRequest`` with a
message for the user before anything is launched. ``playbook_argv`` turns an action into the
argument list of ``ansible-playbook``: one ``-e`` item per variable, never a shell string.
"""
import json
import re
from dataclasses import dataclass, field
from typing import Optional, Tuple

# devpath_import puts ansible_collections on sys.path
from dashboard import devpath_import  # noqa: F401 pylint: disable=unused-import
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError  # noqa: E402
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import check_name, coerce_int  # noqa: E402

# Sizes a dashboard user may ask for. The playbooks check again against the hosts.
VCPUS_RANGE = (1, 64)
MEMORY_MB_RANGE = (64, 1024 * 1024)        # 64 MiB .. 1 TiB
DISK_GB_RANGE = (1, 16 * 1024)             # 1 GiB .. 16 TiB
PARALLEL_RANGE = (1, 8)
RESOURCES = ("cpu", "memory")
DIRECTIONS = ("up", "down")
# scale_vm's step forms (docs/scaling.md): units, M/G for memory, or N%.
_STEP_RE = {"cpu": re.compile(r"^[1-9][0-9]{0,2}%?$"),
            "memory": re.compile(r"^[1-9][0-9]{0,6}[MG]?$|^[1-9][0-9]{0,2}%$")}
# Values passed as key=value; anything else goes as a one-key JSON object (no parsing surprises).
_PLAIN_VALUE_RE = re.compile(r"^[A-Za-z0-9._/:@+,%-]*$")


class BadRequest(Exception):
    """A request refused before anything is launched; the message is shown to the user."""


@dataclass(frozen=True)
class Action:
    kind: str                                   # create, delete, scale, migrate, evacuate, submit
    playbook: str                               # collection playbook, without kvmfleet.iaas.
    extra_vars: Tuple[Tuple[str, object], ...]  # in order
    label: str                                  # what the jobs list shows
    cleanup: Tuple[str, ...] = field(default=())  # directories to remove when the job ends


def _vm_names(fleet):
    return {vm.get("name") for vm in fleet.get("vms") or []}


def _host_names(fleet):
    return [h.get("name") for h in fleet.get("hosts") or []]


def _field(form, name, required=True):
    value = form.get(name)
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise BadRequest("%s: give one value" % name)
        value = value[0]
    value = "" if value is None else str(value).strip()
    if required and not value:
        raise BadRequest("%s: required" % name)
    return value


def _name(form, key="name"):
    try:
        return check_name(_field(form, key), key)
    except ValidationError as err:
        raise BadRequest(str(err))


def _int(form, key, bounds, required=True):
    text = _field(form, key, required)
    if not text:
        return None
    try:
        return coerce_int(key, text, minimum=bounds[0], maximum=bounds[1])
    except ValidationError as err:
        raise BadRequest(str(err))


def _known_vm(form, fleet, key="vm"):
    name = _name(form, key)
    if name not in _vm_names(fleet):
        raise BadRequest("%s=%r: no such VM in the fleet status" % (key, name))
    return name


def _choice(form, key, choices):
    value = _field(form, key)
    if value not in choices:
        raise BadRequest("%s=%r: must be one of %s" % (key, value, ", ".join(choices)))
    return value


def validate_create(form, fleet):
    """Customer form: name, vcpus, memory_mb, disk_gb, image (one of the fleet's images, or none)."""
    name = _name(form)
    if name in _vm_names(fleet):
        raise BadRequest("name=%r: a VM of that name exists already" % name)
    vcpus = _int(form, "vcpus", VCPUS_RANGE)
    memory_mb = _int(form, "memory_mb", MEMORY_MB_RANGE)
    disk_gb = _int(form, "disk_gb", DISK_GB_RANGE)
    extra = [("name", name), ("vcpus", vcpus), ("memory_mb", memory_mb), ("disk_gb", disk_gb)]
    image = _field(form, "image", required=False)
    if image:
        images = {i.get("name"): i.get("path") for i in fleet.get("images") or []}
        if image not in images:
            raise BadRequest("image=%r: not an image of the pool (known: %s)"
                             % (image, ", ".join(sorted(images)) or "none"))
        extra.append(("image", images[image]))
    return Action("create", "create_vm", tuple(extra),
                  "create %s (%d vCPU, %d MiB, %d GiB%s)"
                  % (name, vcpus, memory_mb, disk_gb, ", " + image if image else ""))


def validate_delete(form, fleet):
    vm = _known_vm(form, fleet, "vm")
    return Action("delete", "delete_vm", (("name", vm),), "delete %s" % vm)


def validate_scale(form, fleet):
    vm = _known_vm(form, fleet, "vm")
    resource = _choice(form, "resource", RESOURCES)
    direction = _choice(form, "direction", DIRECTIONS)
    extra = [("vm", vm), ("resource", resource), ("direction", direction)]
    step = _field(form, "step", required=False)
    if step:
        if not _STEP_RE[resource].match(step):
            hint = "vCPUs (2) or N%" if resource == "cpu" else "MiB (512), 512M, 1G or N%"
            raise BadRequest("step=%r: for %s give %s" % (step, resource, hint))
        extra.append(("step", step))
    return Action("scale", "scale_vm", tuple(extra),
                  "scale %s %s %s%s" % (vm, resource, direction, " by " + step if step else ""))


def validate_migrate(form, fleet):
    vm = _known_vm(form, fleet, "vm")
    target = _field(form, "target", required=False)
    extra = [("vm", vm)]
    if target:
        if target not in _host_names(fleet):
            raise BadRequest("target=%r: not a hypervisor of the fleet (%s)"
                             % (target, ", ".join(_host_names(fleet))))
        on = {v.get("host") for v in fleet.get("vms") or [] if v.get("name") == vm}
        if on == {target}:
            raise BadRequest("target=%r: %s runs there already" % (target, vm))
        extra.append(("target", target))
    return Action("migrate", "migrate_vm", tuple(extra),
                  "migrate %s to %s" % (vm, target or "the host placement chooses"))


def validate_evacuate(form, fleet):
    """Drain a host (maintenance mark + move its VMs) or, with maintenance=false, return it to service."""
    host = _field(form, "host")
    if host not in _host_names(fleet):
        raise BadRequest("host=%r: not a hypervisor of the fleet (%s)" % (host, ", ".join(_host_names(fleet))))
    maintenance = _field(form, "maintenance", required=False) or "true"
    if maintenance not in ("true", "false"):
        raise BadRequest("maintenance=%r: must be true or false" % maintenance)
    extra = [("host", host)]
    if maintenance == "false":
        return Action("evacuate", "evacuate_host", (("host", host), ("maintenance", "false")),
                      "return %s to service" % host)
    parallel = _int(form, "parallel", PARALLEL_RANGE, required=False)
    if parallel is not None:
        extra.append(("parallel", parallel))
    return Action("evacuate", "evacuate_host", tuple(extra), "drain %s" % host)


def validate_submit(name, image_path, domain_xml_path, fleet, cleanup=(), sizes=None):
    """An uploaded image (and optional domain XML) saved by the server at the given paths.

    ``sizes``: the form's optional vcpus, memory_mb and disk_gb. Without a domain XML, vcpus and
    memory_mb are needed (submit_vm.yml takes them from the XML otherwise); disk_gb defaults to
    the image's virtual size there.
    """
    try:
        name = check_name((name or "").strip())
    except ValidationError as err:
        raise BadRequest(str(err))
    if name in _vm_names(fleet):
        raise BadRequest("name=%r: a VM of that name exists already" % name)
    if not image_path:
        raise BadRequest("image: a disk image file is required")
    sizes = sizes or {}
    given = [(key, _int(sizes, key, bounds, required=False))
             for key, bounds in (("vcpus", VCPUS_RANGE), ("memory_mb", MEMORY_MB_RANGE), ("disk_gb", DISK_GB_RANGE))]
    given = [(key, value) for key, value in given if value is not None]
    if not domain_xml_path and not {"vcpus", "memory_mb"} <= {key for key, _value in given}:
        raise BadRequest("vcpus and memory_mb: give both, or a domain XML that has them")
    extra = [("name", name), ("image_src", image_path)] + given
    if domain_xml_path:
        extra.append(("domain_xml", domain_xml_path))
    return Action("submit", "submit_vm", tuple(extra),
                  "submit %s (uploaded image%s)" % (name, " + domain XML" if domain_xml_path else ""),
                  cleanup=tuple(cleanup))


def extra_var_item(key, value):
    """One ``-e`` argument: ``key=value`` when the value is plain, else ``{"key": value}`` (JSON)."""
    if not re.match(r"^[a-z_][a-z0-9_]*$", key):
        raise ValueError("bad variable name %r" % key)
    text = str(value)
    if isinstance(value, (int, str)) and not isinstance(value, bool) and _PLAIN_VALUE_RE.match(text) \
            and not text.startswith("@"):
        return "%s=%s" % (key, text)
    return json.dumps({key: value})


def playbook_argv(action_or_playbook, extra_vars=None, ansible_playbook="ansible-playbook",
                  inventory: Optional[str] = None):
    """``[ansible-playbook, kvmfleet.iaas.NAME, (-i INV), -e k=v, ...]`` for an Action (or a
    playbook name and a sequence of (key, value))."""
    if isinstance(action_or_playbook, Action):
        playbook, extra_vars = action_or_playbook.playbook, action_or_playbook.extra_vars
    else:
        playbook = action_or_playbook
    argv = [ansible_playbook, "kvmfleet.iaas." + playbook]
    if inventory:
        argv += ["-i", inventory]
    for key, value in extra_vars or ():
        argv += ["-e", extra_var_item(key, value)]
    return argv
