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
