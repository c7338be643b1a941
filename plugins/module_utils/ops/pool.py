# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage_pool module's work: read a directory pool, run poolplan's actions on it.

``ensure_pool`` returns the module's result dict (check mode predicts it, diff mode adds the pool
before and after). The decisions are poolplan's; this file only reads and acts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils import poolplan


def describe(virt, pool):
    """``{defined, active, autostart, path}`` of ``pool`` (a virStoragePool, or None when not defined)."""
    if pool is None:
        return dict(poolplan.ABSENT)
    return dict(virt.pool_state(pool), defined=True)


def apply(virt, pool, actions, name, path):
    """Run ``actions`` on the pool ``name``; return the pool (None once undefined)."""
    for action in actions:
        if action == poolplan.DEFINE:
            pool = virt.define_pool(name, path)
        elif action == poolplan.CREATE:
            virt.start_pool(pool)
        elif action == poolplan.DESTROY:
            virt.stop_pool(pool)
        elif action == poolplan.UNDEFINE:
            virt.undefine_pool(pool)
            pool = None
        else:
            virt.set_pool_autostart(pool, action == poolplan.AUTOSTART)
    return pool


def ensure_pool(virt, params, check_mode=False, diff=False):
    """Bring the pool of ``params`` (``name``, ``state``, ``path``, ``autostart``) to its state."""
    pool = virt.lookup_pool(params["name"])
    before = describe(virt, pool)
    actions = poolplan.plan(before, params)
    after = poolplan.predicted(before, actions, params["path"])
    if actions and not check_mode:
        after = describe(virt, apply(virt, pool, actions, params["name"], params["path"]))
    result = dict(changed=bool(actions), actions=actions,
                  pool=dict(name=params["name"], path=after["path"], active=after["active"],
                            autostart=after["autostart"]))
    if diff:
        result["diff"] = dict(before=before, after=after)
    return result
