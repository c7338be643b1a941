# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure XML of libvirt: one hardened parser (parser.py), one memory-unit table (units.py), our
metadata element (metadata.py), domain specs, building, reading and comparing (spec.py,
domain.py, diff.py), the policy check of user XML (policy.py), capabilities and pool XML
(capabilities.py, pool.py). Imports neither Ansible nor libvirt."""
