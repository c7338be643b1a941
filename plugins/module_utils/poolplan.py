# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the storage_pool module must do to bring a directory pool to the requested state: pure decisions.

A pool is described as ``{defined, active, autostart, path}``; ``plan`` lists the actions from that
to the request, ``predicted`` says how they leave it (check mode). ops/pool.py reads and acts.
Imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError

STATES = ("present", "active", "inactive", "absent")
# Actions, as they run and as the module returns them.
DEFINE, CREATE, DESTROY, UNDEFINE, AUTOSTART, NOAUTOSTART = (
    "define", "create", "destroy", "undefine", "autostart", "noautostart")
ABSENT = {"active": False, "autostart": False, "path": None, "defined": False}


def plan(current, params):
    """The actions that bring ``current`` to the request (``name``, ``state``, ``path``, ``autostart``), in order."""
    state, autostart, path = params["state"], params["autostart"], params["path"]
    if state == "absent":
        return [a for a, needed in ((DESTROY, current["active"]),
                                    (UNDEFINE, current["defined"])) if needed]
    actions = []
    if not current["defined"]:
        actions.append(DEFINE)
    elif current["path"] != path:
        if current["active"] and state != "inactive":
            raise ValidationError("pool %s is active at %s; stop it (state=inactive) before moving it to %s"
                                  % (params["name"], current["path"], path))
        if current["active"]:
            actions.append(DESTROY)
        actions.append(DEFINE)
    running = current["active"] and DESTROY not in actions
    if state == "active" and not running:
        actions.append(CREATE)
    if state == "inactive" and running:
        actions.append(DESTROY)
    if autostart is not None and bool(autostart) != (current["autostart"] and current["defined"]):
        actions.append(AUTOSTART if autostart else NOAUTOSTART)
    return actions


def predicted(before, actions, path):
    """The pool as ``actions`` would leave it (check mode); ``path`` is the requested one."""
    after = dict(before)
    for action in actions:
        if action == DEFINE:
            after.update(defined=True, path=path)
        elif action == CREATE:
            after["active"] = True
        elif action == DESTROY:
            after["active"] = False
        elif action == UNDEFINE:
            after.update(defined=False, path=None, autostart=False)
        else:
            after["autostart"] = action == AUTOSTART
    return after
