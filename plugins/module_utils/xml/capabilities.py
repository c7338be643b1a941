# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host's capabilities XML (virConnectGetCapabilities) tells us. Pure logic."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.parser import parse_xml


def parse_virt_types(capabilities_xml):
    """Domain types this host can run (``<guest><arch><domain type=...>``), first-seen order."""
    types = []
    for node in parse_xml(capabilities_xml).findall("guest/arch/domain"):
        kind = node.get("type")
        if kind and kind not in types:
            types.append(kind)
    return types


def parse_host_uuid(capabilities_xml):
    """The host UUID (``<host><uuid>``), or None."""
    return parse_xml(capabilities_xml).findtext("host/uuid")
