# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the patrol remembers between runs: observations per host and per VM, their streaks over
a threshold, and the moves carried out (which keep a VM in cooldown and away from the host it left).

The caller keeps the history (the playbook's patrol-history.json); it is plain JSON.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import time

from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.options import MOVE_MEMORY_SECONDS, number

HISTORY_VERSION = 1


def empty_history():
    return {"version": HISTORY_VERSION, "hosts": {}, "vms": {}, "moves": {}}


def clean_history(history):
    """A usable history from whatever the state file held (unknown content starts over)."""
    if not isinstance(history, dict) or history.get("version") != HISTORY_VERSION:
        return empty_history()
    out = empty_history()
    for key in ("hosts", "vms", "moves"):
        value = history.get(key)
        if isinstance(value, dict):
            out[key] = copy.deepcopy(value)
    return out


def append_observation(series, now, values, keep, max_age):
    """``series`` without observations older than ``max_age`` (or not before ``now``), plus
    [now, *values], at most ``keep`` long."""
    kept = [o for o in (series or []) if isinstance(o, list) and o and number(o[0]) is not None
            and now - o[0] <= max_age and o[0] < now]
    kept.append([now] + list(values))
    return kept[-keep:]


def streak_over(series, index, threshold):
    """Trailing observations whose value at ``index`` exceeds ``threshold``."""
    count = 0
    for obs in reversed(series):
        value = obs[index] if len(obs) > index else None
        if value is None or value <= threshold:
            break
        count += 1
    return count


def streak_under(series, index, threshold):
    """Trailing observations whose value at ``index`` is under ``threshold``."""
    count = 0
    for obs in reversed(series):
        value = obs[index] if len(obs) > index else None
        if value is None or value >= threshold:
            break
        count += 1
    return count


def observe_vms(history, views, now, opts):
    """Each running VM's CPU (percent of its vCPUs) appended to its series (autoscale reads them);
    VMs not seen now keep their series until it ages out."""
    vms = {}
    for view in views:
        if not view.reachable:
            continue
        for dom in view.facts.get("domains") or ():
            load = number(dom.get("cpu_percent"))
            vcpus = number(dom.get("vcpus"))
            if dom.get("state") == "running" and load is not None and vcpus:
                vms[dom["name"]] = append_observation(history["vms"].get(dom["name"]), now, [round(load / vcpus, 2)],
                                                      opts["keep_observations"], opts["max_age_seconds"])
    for vm, series in history["vms"].items():
        if vm not in vms and isinstance(series, list) and series and isinstance(series[-1], list) \
                and now - number(series[-1][0], 0.0) <= opts["max_age_seconds"]:
            vms[vm] = series
    history["vms"] = vms


def record_moves(history, actions, now=None):
    """The history with the migrations that were carried out (each {vm, from, to}) recorded,
    so that later runs keep them in cooldown and never send them back."""
    now = time.time() if now is None else float(now)
    history = clean_history(history)
    for action in actions or ():
        if not isinstance(action, dict) or not action.get("vm") or not action.get("to"):
            continue
        if action.get("action", "migrate") != "migrate" or action.get("from") == action.get("to"):
            continue
        history["moves"][str(action["vm"])] = {"from": action.get("from"), "to": action["to"], "time": now}
    history["moves"] = {vm: m for vm, m in history["moves"].items()
                        if isinstance(m, dict) and now - (number(m.get("time"), 0.0)) <= MOVE_MEMORY_SECONDS}
    return history


def in_cooldown(history, now, cooldown_seconds):
    """{vm: its last move} for the VMs moved less than ``cooldown_seconds`` ago."""
    recent = {}
    for vm, move in history["moves"].items():
        if isinstance(move, dict) and now - number(move.get("time"), 0.0) < cooldown_seconds:
            recent[vm] = move
    return recent
