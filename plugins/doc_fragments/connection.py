# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The libvirt connection options every kvmfleet module shares (base_module.connection_argument_spec()).
    DOCUMENTATION = r"""
options:
  uri:
    description:
      - libvirt connection URI.
      - The default is the system instance of the node the task runs on.
    type: str
    default: qemu:///system
  timeout:
    description:
      - Seconds a libvirt read may take before it is abandoned.
      - libvirt calls can block indefinitely on a dead remote or a hung qemu; past this
        deadline the call raises a timeout instead of hanging the run.
      - Calls that change a domain or a volume (define, start, power off, undefine, vCPU and
        memory changes, volume create and delete) get at least 120 seconds, since qemu may
        legitimately take that long. vm_migrate watches a migration by its own timeout.
      - Use V(0) to wait without limit for reads.
    type: float
    default: 10.0
requirements:
  - libvirt-python (python3-libvirt) on the node
  - lxml (python3-lxml) on the node
"""
