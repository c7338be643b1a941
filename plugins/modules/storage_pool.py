#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: storage_pool
short_description: Manage a directory-backed libvirt storage pool
version_added: "0.1.0"
description:
  - Defines, starts, stops or undefines a libvirt storage pool of type C(dir) on the node it runs on.
  - The pool holds VM disks and base images; in a fleet its directory is the shared image store.
  - Undefining a pool never deletes the directory or its volumes.
extends_documentation_fragment:
  - kvmfleet.iaas.connection
options:
  name:
    description: Name of the pool.
    type: str
    required: true
  path:
    description:
      - Directory of the pool. Required unless I(state=absent).
      - An existing pool with another path is redefined only when it is not active.
    type: path
  state:
    description:
      - C(present) defines the pool, C(active) also starts it, C(inactive) defines it stopped,
        C(absent) stops and undefines it.
    type: str
    choices: [present, active, inactive, absent]
    default: active
  autostart:
    description: Start the pool when libvirtd starts. Left as it is when omitted.
    type: bool
requirements:
  - libvirt-python (python3-libvirt)
  - lxml
attributes:
  check_mode:
    support: full
    description: Reports the actions it would take and the pool it would leave.
  diff_mode:
    support: full
    description: Shows the pool's state before and after.
author:
  - kvmfleet developers (@kvmfleet)
"""

EXAMPLES = r"""
- name: Define and start the image pool
  kvmfleet.iaas.storage_pool:
    name: kvmfleet
    path: /srv/kvmfleet/images
    state: active
    autostart: true
"""

RETURN = r"""
actions:
  description: What was done (or would be done in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [define, create, autostart]
pool:
  description: The pool after the task.
  returned: success
  type: dict
  contains:
    name:
      description: Pool name.
      type: str
      returned: success
    path:
      description: Pool directory, or null when absent.
      type: str
      returned: success
    active:
      description: Whether the pool runs.
      type: bool
      returned: success
    autostart:
      description: Whether libvirtd starts it.
      type: bool
      returned: success
"""

from ansible_collections.kvmfleet.iaas.plugins.module_utils.base_module import KvmfleetModule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.errors import ValidationError


def describe(virt, pool):
    if pool is None:
        return {"active": False, "autostart": False, "path": None, "defined": False}
    return dict(virt.pool_state(pool), defined=True)


def plan(current, params):
    """The actions that bring ``current`` to the requested state, in order."""
    state, autostart, path = params["state"], params["autostart"], params["path"]
    if state == "absent":
        return [a for a, needed in (("destroy", current["active"]),
                                    ("undefine", current["defined"])) if needed]
    actions = []
    if not current["defined"]:
        actions.append("define")
    elif current["path"] != path:
        if current["active"] and state != "inactive":
            raise ValidationError("pool %s is active at %s; stop it (state=inactive) before moving it to %s"
                                  % (params["name"], current["path"], path))
        if current["active"]:
            actions.append("destroy")
        actions.append("define")
    running = current["active"] and "destroy" not in actions
    if state == "active" and not running:
        actions.append("create")
    if state == "inactive" and running:
        actions.append("destroy")
    if autostart is not None and bool(autostart) != (current["autostart"] and current["defined"]):
        actions.append("autostart" if autostart else "noautostart")
    return actions


def predicted(before, actions, params):
    """The pool as ``actions`` would leave it (check mode)."""
    after = dict(before)
    for action in actions:
        if action == "define":
            after.update(defined=True, path=params["path"])
        elif action == "create":
            after["active"] = True
        elif action == "destroy":
            after["active"] = False
        elif action == "undefine":
            after.update(defined=False, path=None, autostart=False)
        else:
            after["autostart"] = action == "autostart"
    return after


class StoragePoolModule(KvmfleetModule):
    argument_spec = dict(
        name=dict(type="str", required=True),
        path=dict(type="path"),
        state=dict(type="str", default="active", choices=["present", "active", "inactive", "absent"]),
        autostart=dict(type="bool"),
    )
    module_kwargs = dict(
        required_if=[("state", "present", ["path"]), ("state", "active", ["path"]),
                     ("state", "inactive", ["path"])],
        supports_check_mode=True,
    )

    def run(self):
        params = self.params
        with self.connect() as virt:
            pool = virt.lookup_pool(params["name"])
            before = describe(virt, pool)
            actions = plan(before, params)
            after = predicted(before, actions, params)
            if actions and not self.module.check_mode:
                for action in actions:
                    if action == "define":
                        pool = virt.define_pool(params["name"], params["path"])
                    elif action == "create":
                        virt.start_pool(pool)
                    elif action == "destroy":
                        virt.stop_pool(pool)
                    elif action == "undefine":
                        virt.undefine_pool(pool)
                    else:
                        virt.set_pool_autostart(pool, action == "autostart")
                after = describe(virt, None if "undefine" in actions else pool)
        result = dict(changed=bool(actions), actions=actions,
                      pool=dict(name=params["name"], path=after["path"], active=after["active"],
                                autostart=after["autostart"]))
        if self.module._diff:
            result["diff"] = dict(before=before, after=after)
        return result


def main():
    StoragePoolModule.execute()


if __name__ == "__main__":
    main()
