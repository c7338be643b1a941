# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Storage pool XML: the directory pool we define, and a pool's target directory. Pure logic."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvmfleet.iaas.plugins.module_utils.xml.parser import etree, parse_xml


def pool_xml(name, path):
    """XML of a directory storage pool."""
    pool = etree.Element("pool", type="dir")
    etree.SubElement(pool, "name").text = name
    target = etree.SubElement(pool, "target")
    etree.SubElement(target, "path").text = path
    return etree.tostring(pool, encoding="unicode")


def pool_path(xml):
    """Target directory of a pool from its XML."""
    return parse_xml(xml).findtext("target/path")


def raw_volume_xml(name, size_bytes, mode="0600"):
    """A raw volume of ``size_bytes`` (e.g. a copy of a cloud-init seed), readable by root only."""
    volume = etree.Element("volume")
    etree.SubElement(volume, "name").text = name
    etree.SubElement(volume, "capacity", unit="bytes").text = str(int(size_bytes))
    target = etree.SubElement(volume, "target")
    etree.SubElement(target, "format", type="raw")
    etree.SubElement(etree.SubElement(target, "permissions"), "mode").text = mode
    return etree.tostring(volume, encoding="unicode")
