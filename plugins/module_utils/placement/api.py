# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The placement package's public names (its __init__.py stays empty, as ansible-core 2.16's
empty-init sanity test requires of module_utils packages).

Placement engine: which hypervisor takes a VM (creation, migration target, resize).

Pure logic (stdlib only); docs/placement.md describes it. By concern:

* ``model``: ``Host`` (one hypervisor from its facts and inventory), ``Domain``, ``Request`` (one
  VM), ``Demand`` (what it adds to a host), the inventory variables and their validation;
* ``filters``: the rules a host must pass, one class each, registered in ``FILTERS``;
* ``strategies``: the scores that rank the hosts that pass, one class each, in ``STRATEGY_CLASSES``;
* ``index``: the branch-and-bound tree that finds the exhaustive optimum without scoring every host;
* ``explain``: the ``Placement`` result, score breakdown, explanation and no-fit message;
* ``fleet``: ``Fleet.place`` / ``place_batch`` / ``place_exhaustive``, running the pipeline.

The names below are the public API: ``from ...module_utils.placement import api as P; P.Fleet``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.explain import Placement
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.filters import FILTERS, HostFilter, RequestRule
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.fleet import (
    Fleet,
    fleet_from_facts,
    place,
    place_batch,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.model import (
    CPU_SOURCES,
    DEFAULT_POLICY,
    DEFAULT_STRATEGY,
    INVENTORY_DEFAULTS,
    NO_FACTS,
    POLICIES,
    THRESHOLD_OFF,
    Demand,
    Domain,
    Host,
    Request,
    check_labels,
    shown_threshold,
    threshold,
)
from ansible_collections.kvmfleet.iaas.plugins.module_utils.placement.strategies import (
    STRATEGIES,
    STRATEGY_CLASSES,
    Strategy,
    score_balanced,
    score_pack,
    score_spread,
)

__all__ = [
    "CPU_SOURCES", "DEFAULT_POLICY", "DEFAULT_STRATEGY", "FILTERS", "INVENTORY_DEFAULTS", "NO_FACTS", "POLICIES",
    "STRATEGIES", "STRATEGY_CLASSES", "THRESHOLD_OFF", "Demand", "Domain", "Fleet", "Host", "HostFilter", "Placement", "Request",
    "RequestRule", "Strategy", "check_labels", "fleet_from_facts", "place", "place_batch", "score_balanced",
    "score_pack", "score_spread", "shown_threshold", "threshold",
]
