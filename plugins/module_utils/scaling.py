# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scaling a VM's vCPUs and memory: pure decisions for the vm_scale module and scale_vm.yml.

``target_sizes`` turns a request (explicit ``vcpus``/``memory_mb``, or ``resource`` +
``direction`` [+ ``step``]) into the new size; ``check_maxima`` refuses sizes above the
domain's hotplug maxima (or, with ``allow_restart``, says which maxima to raise);
``plan_scale`` lists the libvirt steps from the current sizes to the new ones. ops/scale.py
gathers the current sizes through libvirt/resize.py and runs the steps. Imports neither Ansible
nor libvirt. See docs/scaling.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re
from dataclasses import asdict, dataclass
from typing import Optional

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import KvmfleetError, ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.vmspec import Limits, coerce_int

RESOURCES = ("cpu", "memory")
DIRECTIONS = ("up", "down")
# Default steps of resource/direction requests: one vCPU, 256 MiB.
DEFAULT_STEP = {"cpu": 1, "memory": 256}
# A running guest "has taken" a memory size when the balloon is this close to it (KiB).
BALLOON_TOLERANCE_KIB = 1024

# Steps, in the order they run.
VCPUS_MAX, MEMORY_MAX = "raise_vcpus_max", "raise_memory_max"
VCPUS_LIVE, VCPUS_CONFIG = "vcpus_live", "vcpus_config"
MEMORY_LIVE, MEMORY_CONFIG = "memory_live", "memory_config"
RESTART = "restart"
LIVE_STEPS = (VCPUS_LIVE, MEMORY_LIVE)

_STEP_RE = re.compile(r"^\s*([0-9]+)\s*(%|[mMgG](?:i?[bB])?)?\s*$")
_DIRECTION_SPLIT = re.compile(r"[\s,/+|&]+|\band\b")


@dataclass(frozen=True)
class Sizes:
    """A VM's sizes. For a running VM, ``vcpus_live`` is what the domain runs with and
    ``balloon_kib`` the balloon's actual size; both None for a shut-off VM."""

    vcpus: int
    vcpus_max: int
    memory_mb: int
    memory_max_mb: int
    vcpus_live: Optional[int] = None
    balloon_kib: Optional[int] = None

    @property
    def balloon_mb(self):
        return None if self.balloon_kib is None else self.balloon_kib // 1024

    def to_dict(self):
        data = asdict(self)
        data.pop("balloon_kib")
        data["balloon_mb"] = self.balloon_mb
        return data


def _fail(field, value, rule):
    raise ValidationError("%s=%r: %s" % (field, value, rule), field=field, value=value)


def _given(value):
    return value is not None and not (isinstance(value, str) and value.strip() == "")


def parse_direction(value):
    """'up' or 'down'; a request that says both (a list, 'up,down', 'both') is refused."""
    if isinstance(value, (list, tuple, set)):
        words = [str(v).strip().lower() for v in value]
    elif isinstance(value, str):
        words = [w for w in _DIRECTION_SPLIT.split(value.strip().lower()) if w]
    else:
        _fail("direction", value, "must be up or down")
    if "both" in words or ("up" in words and "down" in words):
        _fail("direction", value, "up and down together: scale one way at a time (direction=up or direction=down)")
    if len(words) != 1 or words[0] not in DIRECTIONS:
        _fail("direction", value, "must be up or down")
    return words[0]


def parse_step(resource, step):
    """('abs', amount) or ('pct', percent) for ``step`` of ``resource``.

    cpu: a whole number of vCPUs or 'N%'. memory: MiB ('256', '256M', '1G', '1GiB') or 'N%'.
    Default: one vCPU, 256 MiB.
    """
    if not _given(step):
        return "abs", DEFAULT_STEP[resource]
    if isinstance(step, bool):
        _fail("step", step, "must be a positive integer or a percentage")
    if isinstance(step, float):
        if not step.is_integer():
            _fail("step", step, "must be a whole number (or a percentage like 25%)")
        step = int(step)
    if isinstance(step, int):
        amount, unit = step, None
    else:
        match = _STEP_RE.match(str(step))
        if not match:
            _fail("step", step, "must be a positive integer%s or a percentage like 25%%"
                  % (" of MiB (or with M/G)" if resource == "memory" else " of vCPUs"))
        amount, unit = int(match.group(1)), match.group(2)
    if amount < 1:
        _fail("step", step, "must be at least 1")
    if unit == "%":
        return "pct", amount
    if unit is not None:
        if resource != "memory":
            _fail("step", step, "a cpu step is a number of vCPUs, without a unit")
        if unit[0] in "gG":
            amount *= 1024
    return "abs", amount


def _apply_step(resource, current, direction, step):
    kind, amount = parse_step(resource, step)
    if kind == "pct":
        delta = int(math.ceil(current * amount / 100.0))
        delta = max(1, delta)
    else:
        delta = amount
    return current + delta if direction == "up" else current - delta


def target_sizes(current, vcpus=None, memory_mb=None, resource=None, direction=None, step=None,
                 limits=Limits()):
    """(vcpus, memory_mb) the VM is to have.

    Either explicit sizes (one or both; the other stays) or ``resource`` + ``direction``
    [+ ``step``] relative to ``current`` (a Sizes), never both kinds. Raises ValidationError
    naming the field for zero, negative and non-integer sizes, unknown resources, both
    directions at once, and results below one vCPU or the memory minimum.
    """
    explicit = _given(vcpus) or _given(memory_mb)
    relative = _given(resource) or _given(direction) or _given(step)
    if explicit and relative:
        raise ValidationError("give either sizes (vcpus, memory_mb) or resource/direction/step, not both",
                              field="direction")
    if not explicit and not relative:
        raise ValidationError("say what to scale: vcpus and/or memory_mb, or resource=cpu|memory with "
                              "direction=up|down", field="vcpus")
    new_vcpus, new_memory = current.vcpus, current.memory_mb
    if explicit:
        if _given(vcpus):
            new_vcpus = coerce_int("vcpus", vcpus, minimum=1)
        if _given(memory_mb):
            new_memory = coerce_int("memory_mb", memory_mb)
            if new_memory < limits.memory_min_mb:
                _fail("memory_mb", memory_mb, "must be >= the site minimum (%d MiB)" % limits.memory_min_mb)
        return new_vcpus, new_memory
    if not _given(resource):
        _fail("resource", resource, "is required with direction: cpu or memory")
    name = str(resource).strip().lower()
    if name not in RESOURCES:
        _fail("resource", resource, "must be cpu or memory")
    if not _given(direction):
        _fail("direction", direction, "is required with resource: up or down")
    way = parse_direction(direction)
    if name == "cpu":
        new_vcpus = _apply_step("cpu", current.vcpus, way, step)
        if new_vcpus < 1:
            _fail("step", step if _given(step) else DEFAULT_STEP["cpu"],
                  "scaling down from %d vCPU(s) would leave %d; a VM keeps at least one" % (current.vcpus, new_vcpus))
    else:
        new_memory = _apply_step("memory", current.memory_mb, way, step)
        if new_memory < limits.memory_min_mb:
            _fail("step", step if _given(step) else DEFAULT_STEP["memory"],
                  "scaling memory down from %d MiB would leave %d MiB, below the site minimum (%d MiB)"
                  % (current.memory_mb, new_memory, limits.memory_min_mb))
    return new_vcpus, new_memory


def check_maxima(current, vcpus, memory_mb, allow_restart=False, host_cpus=None, host_memory_mb=None):
    """(vcpus_max, memory_max_mb) the VM needs for the new size.

    Within the maxima they are the current ones. Above: refused with a message naming the
    maximum, unless ``allow_restart`` (then the maximum becomes the new size; the host's CPUs
    and memory still bound it).
    """
    problems = []
    vcpus_max, memory_max = current.vcpus_max, current.memory_max_mb
    if vcpus > current.vcpus_max:
        problems.append("vcpus=%d is above the VM's maximum of %d vCPUs" % (vcpus, current.vcpus_max))
        vcpus_max = vcpus
    if memory_mb > current.memory_max_mb:
        problems.append("memory_mb=%d is above the VM's maximum of %d MiB" % (memory_mb, current.memory_max_mb))
        memory_max = memory_mb
    if problems and not allow_restart:
        raise ValidationError("%s; the maximum is set when the VM is made and only a restart raises it "
                              "(allow_restart=true redefines the VM and restarts it)" % "; ".join(problems),
                              field="vcpus" if vcpus > current.vcpus_max else "memory_mb",
                              vcpus_max=current.vcpus_max, memory_max_mb=current.memory_max_mb)
    if host_cpus is not None and vcpus > max(host_cpus, current.vcpus_max):
        _fail("vcpus", vcpus, "must be <= the host maximum (%d CPUs)" % host_cpus)
    if host_memory_mb is not None and memory_mb > max(host_memory_mb, current.memory_max_mb):
        _fail("memory_mb", memory_mb, "must be <= the host memory (%d MiB)" % host_memory_mb)
    return vcpus_max, memory_max


def balloon_at(balloon_kib, memory_mb):
    """Whether the balloon's actual size is the memory size (within BALLOON_TOLERANCE_KIB)."""
    return balloon_kib is not None and abs(balloon_kib - memory_mb * 1024) <= BALLOON_TOLERANCE_KIB


def plan_scale(current, running, vcpus, memory_mb, vcpus_max=None, memory_max_mb=None):
    """Steps from ``current`` (Sizes) to the new size.

    A running VM changes live and in its definition; a raised maximum (``vcpus_max`` /
    ``memory_max_mb`` above the current ones) is written to the definition and the VM is
    restarted (when running) instead of changed live. A shut-off VM changes its definition only.
    Steps that may be refused by the guest (unplugging a vCPU, inflating the balloon) come first
    among the live steps, so a refusal happens before anything else was changed.
    """
    vcpus_max = current.vcpus_max if vcpus_max is None else vcpus_max
    memory_max_mb = current.memory_max_mb if memory_max_mb is None else memory_max_mb
    steps = []
    raise_max = vcpus_max > current.vcpus_max or memory_max_mb > current.memory_max_mb
    if vcpus_max > current.vcpus_max:
        steps.append(VCPUS_MAX)
    if memory_max_mb > current.memory_max_mb:
        steps.append(MEMORY_MAX)
    live = []
    if running and not raise_max:
        if current.vcpus_live != vcpus:
            live.append((VCPUS_LIVE, vcpus < (current.vcpus_live or 0)))
        if not balloon_at(current.balloon_kib, memory_mb):
            live.append((MEMORY_LIVE, current.balloon_kib is not None and memory_mb * 1024 < current.balloon_kib))
        # shrinking steps (the guest may refuse) first
        live.sort(key=lambda item: not item[1])
    steps += [step for step, _shrink in live]
    if current.vcpus != vcpus:
        steps.append(VCPUS_CONFIG)
    if current.memory_mb != memory_mb:
        steps.append(MEMORY_CONFIG)
    if running and raise_max:
        steps.append(RESTART)
    return steps


def predicted(current, running, vcpus, memory_mb, vcpus_max, memory_max_mb):
    """The Sizes after a successful plan (for check mode and the diff)."""
    return Sizes(vcpus=vcpus, vcpus_max=vcpus_max, memory_mb=memory_mb, memory_max_mb=memory_max_mb,
                 vcpus_live=vcpus if running else None,
                 balloon_kib=memory_mb * 1024 if running else None)


def sizes_text(sizes, running):
    """The sizes as diff text: one 'key: value' line each."""
    lines = ["vcpus: %d" % sizes.vcpus, "vcpus_max: %d" % sizes.vcpus_max,
             "memory_mb: %d" % sizes.memory_mb, "memory_max_mb: %d" % sizes.memory_max_mb]
    if running:
        lines += ["vcpus_live: %s" % sizes.vcpus_live, "balloon_mb: %s" % sizes.balloon_mb]
    return "\n".join(lines) + "\n"


class GuestRefused(KvmfleetError):
    """The guest did not give back a vCPU or memory; ``details`` say what is in effect now."""
