# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rebalance package's public names (its __init__.py stays empty, as ansible-core 2.16's
empty-init sanity test requires of module_utils packages).

Rebalancing: what the patrol does about hot hosts (pure logic, stdlib and placement only).

docs/patrol.md describes the model; the short version:

* Each run adds one observation per host (CPU and memory percent) to a small history kept by
  the caller between runs (``history``). A host is **hot** when a threshold is exceeded in its
  last K observations (oVirt's CpuOverCommitDurationMinutes, counted in samples).
* For a hot host, ``cover.min_cover`` finds the fewest VMs whose removal brings every exceeded
  resource under its threshold, and among those the cheapest to migrate
  (``measures.migration_cost``). ``placement.Fleet`` chooses each VM's target, so a target stays
  under its thresholds after the move. Moves are applied to the in-memory fleet as they are
  planned (``moves.MovePlan``), so later decisions see earlier ones.
* A VM moves at most once per plan, never within ``cooldown_seconds`` of its last move, and
  never back to a host it left within that time: no VM bounces.
* ``autoscale``, ``mode='consolidate'``: the phases of ``planner``.

Files: ``options`` (defaults and range checks), ``history`` (observations, streaks, moves,
cooldown), ``measures`` (host views, host CPU, migration cost), ``cover``, ``moves`` (the plan
being built and the rules of a move), ``planner`` (``plan`` and its phases), ``report``.
The names below are what the filter plugin and the bench use.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.cover import min_cover
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.history import (
    HISTORY_VERSION,
    clean_history,
    empty_history,
    record_moves,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.measures import (
    CPU_SOURCES,
    PATROL_VARS,
    host_cpu,
    migration_cost,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.options import DEFAULTS, MODES, options_from
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.planner import plan
from ansible_collections.kvmfleet.iaas.plugins.module_utils.rebalance.report import loads_of, table

__all__ = ["CPU_SOURCES", "DEFAULTS", "HISTORY_VERSION", "MODES", "PATROL_VARS", "clean_history", "empty_history",
           "host_cpu", "loads_of", "migration_cost", "min_cover", "options_from", "plan", "record_moves", "table"]
