# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cloud-init for kvmfleet VMs: the NoCloud seed's documents (``seed``) and the checks of what a
user gives for them (``keys``: SSH public keys; ``seed``: user-data, hostname, network-config).
Pure logic; the seed image itself is made on the hypervisor (ops/seed.py)."""
