# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our element inside a domain's <metadata>: it marks domains kvmfleet made and carries their
affinity group and annotations::

    <kvmfleet:instance xmlns:kvmfleet="https://kvmfleet.dev/iaas/1">
      <kvmfleet:managed-by>kvmfleet.iaas</kvmfleet:managed-by>
      <kvmfleet:group>web</kvmfleet:group>
    </kvmfleet:instance>

The namespace is defined here only; libvirt's metadata API is asked for it by the same URI.
Pure logic: imports neither Ansible nor libvirt.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.parser import etree, parse_xml

KVMFLEET_NS = "https://kvmfleet.dev/iaas/1"
KVMFLEET_PREFIX = "kvmfleet"
METADATA_ELEMENT = "instance"
MANAGED_BY = "kvmfleet.iaas"
# where the element sits in a domain's XML, for root.find()
INSTANCE_PATH = "metadata/{%s}%s" % (KVMFLEET_NS, METADATA_ELEMENT)


def _sub(parent, local_name, text):
    etree.SubElement(parent, "{%s}%s" % (KVMFLEET_NS, local_name)).text = str(text)


def build_metadata_element(group=None, annotations=()):
    """Our ``<kvmfleet:instance>`` element."""
    instance = etree.Element("{%s}%s" % (KVMFLEET_NS, METADATA_ELEMENT), nsmap={KVMFLEET_PREFIX: KVMFLEET_NS})
    _sub(instance, "managed-by", MANAGED_BY)
    if group is not None:
        _sub(instance, "group", group)
    for key, value in annotations:
        _sub(instance, key, value)
    return instance


def parse_metadata(element):
    """Our ``<instance>`` element (an lxml element or XML text) -> {child local name: text or None}.

    This is the form the facts carry (``metadata`` of a domain fact); None when there is none.
    """
    if element is None:
        return None
    element = parse_xml(element)
    data = {}
    for child in element:
        if isinstance(child.tag, str):
            data[etree.QName(child).localname] = (child.text or "").strip() or None
    return data


def read_instance(root):
    """(managed, group, annotations) from a domain root's ``<metadata>``; the DomainSpec form."""
    instance = root.find(INSTANCE_PATH)
    if instance is None:
        return False, None, ()
    group = None
    annotations = []
    for child in instance:
        if not isinstance(child.tag, str) or etree.QName(child).namespace != KVMFLEET_NS:
            continue
        key = etree.QName(child).localname
        value = (child.text or "").strip()
        if key == "group":
            group = value or None
        elif key != "managed-by":
            annotations.append((key, value))
    return True, group, tuple(annotations)
