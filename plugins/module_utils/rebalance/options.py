# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The patrol's options: defaults, and the checks that refuse a bad one before anything runs.

Every number has a range (docs/patrol.md, "Limits of the options"); a value outside it raises a
ValidationError that names the option, the value and the range.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.api import STRATEGIES
from ansible_collections.kvmfleet.iaas.plugins.module_utils.scaling import parse_step

MODES = ("balance", "consolidate")

# Options of ``plan`` and their defaults (docs/patrol.md).
DEFAULTS = {
    "mode": "balance",
    "hot_observations": 3,          # K: consecutive observations over a threshold
    "max_moves": 10,                # migrations per run
    "cooldown_seconds": 3600.0,     # a moved VM stays put, and never returns, for this long
    "max_age_seconds": 1800.0,      # observations older than this are forgotten
    "keep_observations": 10,        # observations kept per host and per VM
    "autoscale": False,
    "vm_cpu_threshold": 90.0,       # percent of the VM's vCPUs
    "autoscale_step": 1,            # vCPUs added per scale-up, or a percentage such as "50%" (scaling.py)
    "low_cpu_threshold": 20.0,      # consolidate: hosts under both low thresholds are emptied
    "low_memory_threshold": 50.0,
    "min_hosts": 1,                 # consolidate: hosts that keep running VMs at least
    "strategy": "balanced",         # placement strategy for balancing targets (consolidate: pack)
    "managed_only": True,           # move only domains kvmfleet made
    "migration_bandwidth_mib_s": 1000.0,
    "target_margin": 0.0,           # aim this many points under the threshold
    "search_limit": 200000,         # nodes of the exact subset search per host, then greedy
}

# How long the move history remembers a migration (history.record_moves); a longer cooldown
# could not be kept.
MOVE_MEMORY_SECONDS = 7 * 86400

# Ranges: (low, low_included, high, high_included).
_PERCENT = (0.0, False, 100.0, True)
INTEGER_RANGES = {
    "hot_observations": (1, True, 100, True),
    "keep_observations": (1, True, 1000, True),
    "max_moves": (0, True, 100000, True),
    "min_hosts": (1, True, 100000, True),
    "search_limit": (0, True, 10 ** 8, True),
}
NUMBER_RANGES = {
    "cooldown_seconds": (0.0, True, float(MOVE_MEMORY_SECONDS), True),
    "max_age_seconds": (0.0, False, float(MOVE_MEMORY_SECONDS), True),
    "vm_cpu_threshold": _PERCENT,
    "low_cpu_threshold": _PERCENT,
    "low_memory_threshold": _PERCENT,
    "migration_bandwidth_mib_s": (0.0, False, 1e6, True),
    "target_margin": (0.0, True, 100.0, False),
}


def number(value, default=None):
    """``value`` as a float; ``default`` for None, booleans and what is not a number."""
    if value is None or isinstance(value, bool):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def flag(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def describe_range(bounds):
    low, low_in, high, high_in = bounds
    return "%g %s value %s %g" % (low, "<=" if low_in else "<", "<=" if high_in else "<", high)


def in_range(value, bounds):
    low, low_in, high, high_in = bounds
    return (value >= low if low_in else value > low) and (value <= high if high_in else value < high)


def checked(name, value, bounds, what="a number", where=""):
    """``value`` (already a number) when inside ``bounds``, else a ValidationError naming ``name``
    (and ``where``, such as the host whose variable it is)."""
    if not in_range(value, bounds):
        raise ValidationError("%s=%r%s is out of range: must be %s with %s"
                              % (name, value, where, what, describe_range(bounds)), option=name, value=value)
    return value


def _integer(name, value):
    if isinstance(value, bool):
        raise ValidationError("%s must be an integer, got %r" % (name, value), option=name, value=value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError("%s must be an integer, got %r" % (name, value), option=name, value=value)


def _choice(name, value, choices):
    if value not in choices:
        raise ValidationError("%s must be one of %s, got %r" % (name, ", ".join(choices), value), option=name, value=value)
    return value


def _autoscale_step(value):
    try:
        parse_step("cpu", value)
    except ValidationError as err:
        rule = err.msg.split(": ", 1)[-1]
        raise ValidationError("autoscale_step=%r: %s" % (value, rule), option="autoscale_step", value=value)
    return value


def options_from(**given):
    """DEFAULTS overlaid with ``given`` (None means default), each checked against its range."""
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ValidationError("unknown patrol options: %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    opts = dict(DEFAULTS)
    for key, value in given.items():
        if value is not None:
            opts[key] = value
    _choice("mode", opts["mode"], MODES)
    _choice("strategy", opts["strategy"], STRATEGIES)
    for key, bounds in INTEGER_RANGES.items():
        opts[key] = checked(key, _integer(key, opts[key]), bounds, "an integer")
    opts["keep_observations"] = max(opts["keep_observations"], opts["hot_observations"])
    for key, bounds in NUMBER_RANGES.items():
        value = number(opts[key])
        if value is None:
            raise ValidationError("%s must be a number, got %r" % (key, opts[key]), option=key, value=opts[key])
        opts[key] = checked(key, value, bounds)
    _autoscale_step(opts["autoscale_step"])
    opts["autoscale"] = flag(opts["autoscale"])
    opts["managed_only"] = flag(opts["managed_only"])
    return opts
