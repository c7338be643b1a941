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

from collections import namedtuple

from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.parser import etree, parse_xml

KVMFLEET_NS = "https://kvmfleet.dev/iaas/1"
KVMFLEET_PREFIX = "kvmfleet"
METADATA_ELEMENT = "instance"
MANAGED_BY = "kvmfleet.iaas"
# where the element sits in a domain's XML, for root.find()
INSTANCE_PATH = "metadata/{%s}%s" % (KVMFLEET_NS, METADATA_ELEMENT)


def _sub(parent, local_name, text):
    etree.SubElement(parent, "{%s}%s" % (KVMFLEET_NS, local_name)).text = str(text)


SEED_KEY = "seed-sha256"
TENANT_KEY = "tenant"

# What read_instance finds in a domain's metadata.
Instance = namedtuple("Instance", "managed group annotations seed_digest tenant")


def build_metadata_element(group=None, annotations=(), seed_digest=None, tenant=None):
    """Our ``<kvmfleet:instance>`` element."""
    instance = etree.Element("{%s}%s" % (KVMFLEET_NS, METADATA_ELEMENT), nsmap={KVMFLEET_PREFIX: KVMFLEET_NS})
    _sub(instance, "managed-by", MANAGED_BY)
    if group is not None:
        _sub(instance, "group", group)
    if tenant is not None:
        _sub(instance, TENANT_KEY, tenant)
    if seed_digest is not None:
        _sub(instance, SEED_KEY, seed_digest)
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
    """An ``Instance`` from a domain root's ``<metadata>``; the DomainSpec form."""
    instance = root.find(INSTANCE_PATH)
    if instance is None:
        return Instance(False, None, (), None, None)
    group = seed = tenant = None
    annotations = []
    for child in instance:
        if not isinstance(child.tag, str) or etree.QName(child).namespace != KVMFLEET_NS:
            continue
        key = etree.QName(child).localname
        value = (child.text or "").strip()
        if key == "group":
            group = value or None
        elif key == SEED_KEY:
            seed = value or None
        elif key == TENANT_KEY:
            tenant = value or None
        elif key != "managed-by":
            annotations.append((key, value))
    return Instance(True, group, tuple(annotations), seed, tenant)


def with_seed_digest(xml, digest):
    """(domain XML text, our instance element as XML text) with the seed digest set to ``digest``:
    what the vm module shows as the domain after a seed change and hands to setMetadata."""
    root = parse_xml(xml)
    instance = root.find(INSTANCE_PATH)
    if instance is None:
        raise ValueError("not a kvmfleet domain")
    tag = "{%s}%s" % (KVMFLEET_NS, SEED_KEY)
    child = instance.find(tag)
    if child is None:
        child = etree.SubElement(instance, tag)
    child.text = digest
    # libvirt's setMetadata wants the element without namespaces: it puts its own on every node.
    bare = etree.Element(METADATA_ELEMENT)
    for node in instance:
        if isinstance(node.tag, str):
            etree.SubElement(bare, etree.QName(node).localname).text = node.text
    return etree.tostring(root, encoding="unicode"), etree.tostring(bare, encoding="unicode")
